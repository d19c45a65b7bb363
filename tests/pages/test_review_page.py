"""The GP's medication review page without a browser (TestClient, SQLite and PostgreSQL): the
findings of a demo resident with criterion, set, summary, detail and source, the ACB score and
what could not be assessed; signing stops a drug through the loop's review command; a refusal of
the domain is said next to the field and saves nothing; the CSRF token; who may open it."""

from __future__ import annotations

import io
import re
import uuid

import pypdf
from lxml import html as lxml_html

from interactions.review_rules import shipped_review_criteria
from medloop import queries
from medloop.domain.codes import EntryStatus
from tests.pages.gp_helpers import as_claims, as_person, hidden, resident
from tests.pages.helpers import csrf_of


def _review(client, patient_id: str) -> str:
    answer = client.get(f"/app/gp/patients/{patient_id}/review")
    assert answer.status_code == 200, answer.text[:2000]
    return answer.text


def _assessment(pages_world, patient_id: str):
    with pages_world.engine.connect() as conn:
        return queries.review_assessment(conn, uuid.UUID(patient_id), pages_world.clock.at.date())


def _state(pages_world, patient_id: str):
    with pages_world.engine.connect() as conn:
        return queries.patient_state(conn, uuid.UUID(patient_id))


def _form(page: str, assessment, *, stop: str | None, decide: bool = True) -> dict[str, str]:
    """The form: stop ``stop`` (an entry id) on the findings naming it, continue the rest."""
    body = {
        "csrf_token": csrf_of(page),
        "based_on": hidden(page, "based_on"),
        "idempotency_key": hidden(page, "idempotency_key"),
        "review_id": hidden(page, "review_id"),
        "participant-doctor": "Anja Fos Eidsvik",
        "participant-doctor-hpr": hidden_value(page, "participant-doctor-hpr"),
        "participant-nurse": "Nina Sykepleier",
        "participant-nurse-hpr": "1234567",
        "participant-pharmacist": "Per Apoteker",
        "note": "Årlig legemiddelgjennomgang",
    }
    for i, finding in enumerate(assessment.findings):
        body[f"finding-{i}-key"] = finding.key
        if len(finding.medications) == 1:
            body[f"finding-{i}-entry"] = finding.medications[0]
        if not decide:
            continue
        if stop is not None and stop in finding.medications:
            body[f"finding-{i}-action"] = "stop"
            body[f"finding-{i}-entry"] = stop
            body[f"finding-{i}-reason"] = "seponeres med observasjon"
            body[f"finding-{i}-code"] = "A"
        else:
            body[f"finding-{i}-action"] = "continue"
            body[f"finding-{i}-reason"] = "vurdert, fortsetter"
    return body


def hidden_value(page: str, name: str) -> str:
    """The value the page put in input ``name`` (hidden or not)."""
    (value,) = lxml_html.fromstring(page).xpath(f'//input[@name="{name}"]/@value')
    return value


def _quetiapine(assessment) -> str:
    return next(str(e.entry_id) for e in assessment.entries if e.name.startswith("Kvetiapin"))


def test_the_list_page_links_to_the_review_which_shows_every_finding_with_its_source(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    assert f'href="/app/gp/patients/{patient_id}/review"' in listed
    assert "Legemiddelgjennomgang" in listed

    page = _review(client, patient_id)
    assessment, since = _assessment(pages_world, patient_id)
    assert since is None and "Ingen signert gjennomgang før denne." in page
    tree = lxml_html.fromstring(page)
    legends = [" ".join(e.text_content().split()) for e in tree.xpath("//fieldset/legend")]
    text = " ".join(tree.text_content().split())
    assert len(assessment.findings) >= 5
    criteria = shipped_review_criteria()
    for finding in assessment.findings:
        assert any(legend.startswith(f"{finding.criterion} ·") for legend in legends), finding
        # the summary in bokmål from the criteria file (a RENAL finding keeps the engine's)
        summary = criteria.summary_in(finding.criterion, "nb") or finding.summary
        for part in (summary, finding.detail, finding.source.citation):
            assert " ".join(part.split()) in text, part
    assert {"NORGEP-NH:25", "STOPP:L2", "START:K2"} <= {f.criterion for f in assessment.findings}
    assert f"ACB-skår: {assessment.acb.score}" in text
    acb = assessment.acb.medications
    acb_names = [e.name for e in assessment.entries if str(e.entry_id) in acb]
    assert acb_names and all(name in text for name in acb_names)
    for item in assessment.not_assessed:
        assert all(" ".join(m.split()) in text for m in item.missing), item
    assert f"Listeversjon {assessment.list_version}." in text
    assert hidden(page, "based_on") == str(assessment.list_version)


def test_signing_stops_a_drug_through_the_loop_and_the_review_is_listed_with_its_pdf(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    quetiapine = _quetiapine(assessment)

    signed = client.post(
        f"/app/gp/patients/{patient_id}/review", data=_form(page, assessment, stop=quetiapine)
    )
    assert signed.status_code == 303, signed.text[:3000]
    state = _state(pages_world, patient_id)
    entry = next(e for e in state.medication_list.entries if str(e.id) == quetiapine)
    assert entry.status is EntryStatus.DISCONTINUED
    assert entry.discontinuation.reason.value == "A"  # treatment ended, as chosen
    assert state.medication_list.version == assessment.list_version + 1
    with pages_world.engine.connect() as conn:
        (stored,) = queries.medication_reviews(conn, uuid.UUID(patient_id))
    assert str(stored.id) == hidden(page, "review_id")
    assert {p.role for p in stored.participants} == {"doctor", "nurse", "pharmacist"}

    after = client.get(signed.headers["location"]).text
    assert "Legemiddelgjennomgangen er signert." in after
    # the next meeting shows what changed since this review
    assert "Siden forrige gjennomgang" in after and "Kvetiapin" in after.split("Seponert")[1]
    pdf_link = re.search(r'href="(/app/gp/patients/[^"]+/pdf)"', after)[1]
    pdf = client.get(pdf_link)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    # shown by the browser's own viewer: no page policy that could stop it, no sniffing
    assert "content-security-policy" not in pdf.headers
    assert pdf.headers["x-content-type-options"] == "nosniff"
    assert pdf.headers["cache-control"] == "no-store"  # names the patient: no cache keeps it
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in (
        "Per Hansen",
        "NORGEP-NH:25",
        "Seponer",
        "Sykepleier: Nina Sykepleier (HPR 1234567)",
        # the criterion's bokmål summary (its first words: the table cell wraps the rest)
        " ".join(shipped_review_criteria().summary_in("NORGEP-NH:25", "nb").split()[:2]),
    ):
        assert expected in text, expected

    # a double submit of the same form signs once
    again = client.post(
        f"/app/gp/patients/{patient_id}/review", data=_form(page, assessment, stop=quetiapine)
    )
    assert again.status_code == 303
    with pages_world.engine.connect() as conn:
        assert len(queries.medication_reviews(conn, uuid.UUID(patient_id))) == 1


def test_an_undecided_finding_is_refused_next_to_it_in_norwegian_and_nothing_is_saved(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=None)
    del body["finding-0-action"]
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422, refused.text[:2000]
    tree = lxml_html.fromstring(refused.text)
    (error,) = tree.xpath('//*[@id="finding-0-error"]')
    assert error.text_content() == "Velg en beslutning for hvert funn før du signerer."
    assert tree.xpath('//input[@id="finding-1-continue"]/@checked')  # the form kept
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version
    with pages_world.engine.connect() as conn:
        assert queries.medication_reviews(conn, uuid.UUID(patient_id)) == []


def test_a_review_without_a_doctor_is_refused_at_the_participants(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=_quetiapine(assessment))
    body["participant-doctor"] = body["participant-doctor-hpr"] = ""
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422
    (error,) = lxml_html.fromstring(refused.text).xpath('//*[@id="participants-error"]')
    assert "Skriv navnet på legen som deltok" in error.text_content()
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version


def test_the_summaries_follow_the_chosen_language(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    criteria = shipped_review_criteria()
    norgep = next(f for f in assessment.findings if f.set == "NORGEP-NH")
    nb = criteria.summary_in(norgep.criterion, "nb")
    en = criteria.summary_in(norgep.criterion, "en")
    assert nb in page and en not in page
    back = f"/app/gp/patients/{patient_id}/review"
    client.post("/app/language", data={"csrf_token": csrf_of(page), "lang": "en", "next": back})
    english = client.get(back).text
    assert en in english and nb not in english


def test_participants_carry_hpr_numbers_and_the_doctor_is_the_signer(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    signer_hpr = hidden_value(page, "participant-doctor-hpr")
    assert signer_hpr.isdigit()  # the form offers the session's own HPR number for the doctor

    body = _form(page, assessment, stop=None)
    body["participant-nurse-hpr"] = "12a45"
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422
    (error,) = lxml_html.fromstring(refused.text).xpath(
        '//*[@id="participant-nurse-hpr"]/following::*[contains(@class,"field-error")][1]'
    )
    assert "HPR-nummer består bare av sifre" in error.text_content()

    body = _form(page, assessment, stop=None)
    body["participant-doctor-hpr"] = "9" + signer_hpr[1:] if signer_hpr[0] != "9" else "1"
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422, refused.text[:2000]
    assert "oppgi ditt eget HPR-nummer" in refused.text
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version
    with pages_world.engine.connect() as conn:
        assert queries.medication_reviews(conn, uuid.UUID(patient_id)) == []

    signed = client.post(
        f"/app/gp/patients/{patient_id}/review", data=_form(page, assessment, stop=None)
    )
    assert signed.status_code == 303, signed.text[:2000]
    with pages_world.engine.connect() as conn:
        (stored,) = queries.medication_reviews(conn, uuid.UUID(patient_id))
    by_role = {p.role: p.hpr_number for p in stored.participants}
    assert by_role == {"doctor": signer_hpr, "nurse": "1234567", "pharmacist": None}
    after = client.get(signed.headers["location"]).text
    assert f"(HPR {signer_hpr})" in after and "(HPR 1234567)" in after

    # the PDF speaks the chosen language: English headings and summaries after switching
    pdf_link = re.search(r'href="(/app/gp/patients/[^"]+/pdf)"', after)[1]
    client.post("/app/language", data={"csrf_token": csrf_of(after), "lang": "en", "next": "/"})
    pdf = client.get(pdf_link)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    text = " ".join(text.split())
    norgep = next(f for f in stored.assessment.findings if f.set == "NORGEP-NH")
    english = shipped_review_criteria().summary_in(norgep.criterion, "en")
    assert "Medication review" in text and "Legemiddelgjennomgang" not in text
    assert " ".join(english.split()[:2]) in text
    assert f"Doctor: Anja Fos Eidsvik (HPR {signer_hpr})" in text


def test_continuing_without_a_reason_is_said_at_the_finding(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=None)
    body["finding-1-reason"] = ""
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422
    (error,) = lxml_html.fromstring(refused.text).xpath('//*[@id="finding-1-error"]')
    assert error.text_content() == "Skriv hvorfor legemidlet fortsetter."
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version


def test_signing_without_the_csrf_token_is_refused_and_nothing_is_saved(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=_quetiapine(assessment))
    del body["csrf_token"]
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 403
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version
    with pages_world.engine.connect() as conn:
        assert queries.medication_reviews(conn, uuid.UUID(patient_id)) == []


def test_a_nurse_a_pharmacist_and_a_nurse_of_another_home_can_neither_open_nor_sign(
    client, pages_world
):
    _, patient_id = resident(pages_world.world, 1)
    as_person(client, "gp")
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=_quetiapine(assessment))
    others = [
        lambda: as_person(client, "nurse"),
        lambda: as_person(client, "pharmacist"),
        lambda: as_claims(
            client,
            pages_world,
            {"sub": "5557777", "role": "nurse", "org": "974600999", "name": "Siv Annenhjem"},
        ),
    ]
    for sign_in_as in others:
        sign_in_as()
        opened = client.get(f"/app/gp/patients/{patient_id}/review")
        assert opened.status_code == 403
        assert "Legemiddelgjennomgang" not in opened.text and "Kvetiapin" not in opened.text
        # with a valid CSRF token of their own session (the error page's language switch)
        posted = client.post(
            f"/app/gp/patients/{patient_id}/review",
            data={**body, "csrf_token": csrf_of(opened.text)},
        )
        assert posted.status_code == 403
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version
    with pages_world.engine.connect() as conn:
        assert queries.medication_reviews(conn, uuid.UUID(patient_id)) == []


def test_stopping_without_choosing_which_medicine_is_said_at_the_finding(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    index = next(i for i, f in enumerate(assessment.findings) if len(f.medications) > 1)
    body = _form(page, assessment, stop=None)
    body[f"finding-{index}-action"] = "stop"
    body[f"finding-{index}-entry"] = ""
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422
    (error,) = lxml_html.fromstring(refused.text).xpath(f'//*[@id="finding-{index}-error"]')
    assert error.text_content() == "Velg legemidlet som skal seponeres."
    assert _state(pages_world, patient_id).medication_list.version == assessment.list_version


def test_a_refused_form_corrected_and_sent_again_changes_a_dosage_through_the_loop(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    oxazepam = next(str(e.entry_id) for e in assessment.entries if e.name.startswith("Oksazepam"))
    body = _form(page, assessment, stop=None)
    changed = [i for i, f in enumerate(assessment.findings) if oxazepam in f.medications]
    assert changed
    for i in changed:
        body[f"finding-{i}-action"] = "change"
        body[f"finding-{i}-entry"] = oxazepam
        body.update(
            {
                f"finding-{i}-use": "regular",
                f"finding-{i}-amount": "0,5",
                f"finding-{i}-unit": "tablett",
                f"finding-{i}-slot": "evening",
            }
        )
    body["participant-doctor"] = body["participant-doctor-hpr"] = ""
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 422
    # the form comes back as sent: the change and its dosage kept
    tree = lxml_html.fromstring(refused.text)
    i = changed[0]
    assert tree.xpath(f'//input[@id="finding-{i}-change"]/@checked')
    assert tree.xpath(f'//input[@id="finding-{i}-amount"]/@value') == ["0,5"]

    body["participant-doctor"] = "Anja Fos Eidsvik"
    signed = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert signed.status_code == 303, signed.text[:3000]
    entry = next(
        e for e in _state(pages_world, patient_id).medication_list.entries if str(e.id) == oxazepam
    )
    assert entry.status is EntryStatus.ACTIVE
    assert [d.amount.value for d in entry.dosage.fixed] == [0.5]


def test_a_form_made_from_an_older_list_is_refused_as_stale_and_saves_nothing(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = _review(client, patient_id)
    assessment, _ = _assessment(pages_world, patient_id)
    body = _form(page, assessment, stop=None)
    body["based_on"] = str(assessment.list_version - 1)
    refused = client.post(f"/app/gp/patients/{patient_id}/review", data=body)
    assert refused.status_code == 412  # the API's status for a stale list version
    assert "Noen andre endret listen etter at du åpnet siden." in refused.text
    assert hidden(refused.text, "based_on") == str(assessment.list_version)
    with pages_world.engine.connect() as conn:
        assert queries.medication_reviews(conn, uuid.UUID(patient_id)) == []
