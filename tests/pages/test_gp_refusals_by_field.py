"""The GP's forms show a domain refusal next to the field it concerns (SQLite and PostgreSQL):
the control is marked ``aria-invalid`` and described by the refusal's words, the notice at the
top only links there, and nothing is saved. A stale version is said by the save button with
what changed, on the fresh list. Marking an entry entered-in-error from its page."""

from __future__ import annotations

import re
import uuid

from lxml import html as lxml_html

from medloop import queries
from tests.pages.gp_helpers import (
    KLARITROMYCIN,
    as_person,
    hidden,
    list_version,
    prescribe_form,
    prescription,
    resident,
)
from tests.pages.helpers import csrf_of


def _entry_url(client, patient_id: str) -> str:
    listed = client.get(f"/app/gp/patients/{patient_id}").text
    return re.search(rf'href="(/app/gp/patients/{patient_id}/entries/[^"]+)"', listed)[1]


def _post(client, url: str, page: str, **fields: str):
    return client.post(
        url,
        data={
            "csrf_token": csrf_of(page),
            "based_on": hidden(page, "based_on"),
            "idempotency_key": hidden(page, "idempotency_key"),
            **fields,
        },
    )


def _refused_control(tree, control_id: str, field: str) -> str:
    """The words of the refusal that describes ``control_id``; checks the control and the top
    notice's link name the same element."""
    control = tree.get_element_by_id(control_id)
    assert control.get("aria-invalid") == "true"
    assert f"{field}-refusal" in control.get("aria-describedby").split()
    assert tree.xpath(f'//*[@id="refusal"]//a[@href="#{field}-refusal"]')
    return tree.get_element_by_id(f"{field}-refusal").text_content()


def test_a_missing_override_reason_is_said_by_the_alerts_reason_fields(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    before = list_version(client, patient_id)
    page = prescribe_form(client, patient_id, q=KLARITROMYCIN)
    refused = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, KLARITROMYCIN, "save"),
    )
    assert refused.status_code == 409
    tree = lxml_html.fromstring(refused.text)
    words = _refused_control(tree, "override-0", "override_reason")
    assert "trenger en begrunnelse" in words
    # the words are inside the alerts section, not above the form
    section = tree.xpath('//section[@aria-labelledby="alerts-heading"]')[0]
    assert section.xpath('.//*[@id="override_reason-refusal"]')
    assert list_version(client, patient_id) == before


def test_a_stale_prescription_is_said_by_the_save_button_and_redone_on_the_fresh_list(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    page = prescribe_form(client, patient_id, q=KLARITROMYCIN)
    entry_url = _entry_url(client, patient_id)
    other = client.get(entry_url).text
    held = _post(client, f"{entry_url}/hold", other, reason="Sykehusinnleggelse")
    assert held.status_code == 303
    before = list_version(client, patient_id)

    stale = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, KLARITROMYCIN, "save"),
    )
    assert stale.status_code == 412
    tree = lxml_html.fromstring(stale.text)
    version = tree.get_element_by_id("version-refusal")
    assert "Noen andre endret listen" in version.text_content()
    assert "Sykehusinnleggelse" in version.text_content()  # what changed, with its reason
    # by the save button: the next element is the form's buttons
    assert version.getnext().xpath('.//button[@value="save"]')
    assert int(hidden(stale.text, "based_on")) == before
    assert list_version(client, patient_id) == before

    redone = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(stale.text, KLARITROMYCIN, "save"),
    )
    assert redone.status_code in (303, 409), redone.text[:2000]


def test_a_dosage_that_changes_nothing_is_said_by_the_dosage_fields(client, pages_world):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    entry_url = _entry_url(client, patient_id)
    page = client.get(entry_url).text
    tree = lxml_html.fromstring(page)
    same = {
        "use": tree.xpath('//select[@id="use"]/option[@selected]/@value')[0],
        "amount": tree.get_element_by_id("amount").get("value"),
        "unit": tree.get_element_by_id("unit").get("value"),
        "slot": tree.xpath('//input[@name="slot"][@checked]/@value'),
        "dosage_text": tree.get_element_by_id("dosage_text").get("value") or "",
    }
    before = list_version(client, patient_id)
    refused = _post(client, f"{entry_url}/dosage", page, **same)
    assert refused.status_code in (409, 422), refused.text[:2000]
    tree = lxml_html.fromstring(refused.text)
    words = _refused_control(tree, "amount", "dosage")
    assert "Ingenting ville blitt endret" in words
    assert list_version(client, patient_id) == before


def test_entered_in_error_needs_a_reason_by_its_field_then_keeps_the_entry_out_of_the_list(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    entry_url = _entry_url(client, patient_id)
    entry_id = uuid.UUID(entry_url.rsplit("/", 1)[1])
    page = client.get(entry_url).text
    before = list_version(client, patient_id)

    refused = _post(client, f"{entry_url}/entered-in-error", page, reason="  ")
    assert refused.status_code == 422, refused.text[:2000]
    tree = lxml_html.fromstring(refused.text)
    assert "Skriv en begrunnelse" in _refused_control(tree, "error-reason", "reason")
    assert list_version(client, patient_id) == before

    marked = _post(
        client, f"{entry_url}/entered-in-error", page, reason="Registrert på feil pasient"
    )
    assert marked.status_code == 303, marked.text[:2000]
    assert list_version(client, patient_id) == before + 1
    with pages_world.engine.connect() as conn:
        history = queries.entry_history(conn, uuid.UUID(patient_id), entry_id)
    assert history[-1].kind.value == "entered-in-error"
    assert history[-1].reason == "Registrert på feil pasient"
    # the same form sent twice saves once; the old form sent anew is stale, said by its button
    twice = _post(
        client, f"{entry_url}/entered-in-error", page, reason="Registrert på feil pasient"
    )
    assert twice.status_code == 303
    again = _post(
        client,
        f"{entry_url}/entered-in-error",
        page,
        reason="Igjen",
        idempotency_key=str(uuid.uuid4()),
    )
    assert again.status_code in (404, 412), again.text[:2000]
    assert list_version(client, patient_id) == before + 1
