"""Decision support's alerts on the pages in Norwegian by default, worded from the alert's kind,
severity and structured detail (never from its English summary), English only when English is
selected, and a text only available in English marked as such."""

from __future__ import annotations

import uuid

import pytest

from interactions import Alert
from interactions.alerts import (
    AllergyDetail,
    DoseDetail,
    DoseNotCheckedDetail,
    DuplicateDetail,
    Handling,
    InteractionDetail,
    NotAssessedDetail,
    Severity,
    Source,
    SubstitutionRestrictionDetail,
)
from medloop.pages.alert_text import NOT_CHECKED_REASONS, alert_text
from tests.pages.gp_helpers import (
    KLARITROMYCIN,
    as_person,
    prescribe_form,
    prescription,
    resident,
)

A, B = str(uuid.uuid4()), str(uuid.uuid4())
NAMES = {A: "Simvastatin Nordkyst", uuid.UUID(B): "Klaritromycin"}
SOURCE = Source(catalogue_version=1, hentet_dato="2026-12-01", rule_id="r")
# an English summary that the Norwegian line must not be made from
ENGLISH = "ENGLISH SUMMARY"


def _alert(detail, severity=Severity.AVOID, medications=(A, B)) -> Alert:
    return Alert(
        severity=severity,
        medications=medications,
        summary=ENGLISH,
        detail=detail,
        source=SOURCE,
    )


def _dose(measure: str, amount: float | None, limit: float, unit: str) -> DoseDetail:
    return DoseDetail(
        measure=measure,
        substance="paracetamol",
        atc="N02BE01",
        amount=amount,
        limit=f"{limit} {unit}",
        limit_amount=limit,
        unit=unit,
        contributions=(),
        weight_kg=None,
        rule_id="paracetamol-max",
        citation="SPC 4.2",
        url=None,
        note=None,
    )


INTERACTION = InteractionDetail(
    interaction_id="ID_1",
    relevance=1,
    situation=None,
    consequence="Økt risiko for muskelskade.",
    mechanism=None,
    source_basis=None,
    handling=Handling(),
    display_rules=(),
    references=(),
    matches=(),
)


@pytest.mark.parametrize(
    ("detail", "medications", "expected"),
    [
        (INTERACTION, (A, B), "Interaksjon, bør unngås: Simvastatin Nordkyst + Klaritromycin"),
        (
            DuplicateDetail(
                reasons=("same-substance",),
                atc_codes=(),
                substance_ids=(),
                substitution_group_ids=(),
            ),
            (A, B),
            "Dobbeltbehandling (samme virkestoff): Simvastatin Nordkyst + Klaritromycin",
        ),
        (
            DuplicateDetail(
                reasons=("same-atc-level4",),
                atc_codes=(),
                substance_ids=(),
                substitution_group_ids=(),
            ),
            (A, B),
            "Dobbeltbehandling (samme ATC-gruppe): Simvastatin Nordkyst + Klaritromycin",
        ),
        (
            _dose("daily", 5.0, 4.0, "g"),
            (A,),
            "Døgndose av paracetamol 5 g er over maksimum 4 g (Simvastatin Nordkyst)",
        ),
        (
            _dose("duration", 10.5, 7, "days"),
            (A,),
            "paracetamol: høyst 7 dager; 10,5 dager forskrevet (Simvastatin Nordkyst)",
        ),
        (
            AllergyDetail(allergen="J01FA", allergen_kind="atc", label="Makrolider", via="J01FA09"),
            (B,),
            "Allergi/CAVE Makrolider: Klaritromycin",
        ),
        (
            NotAssessedDetail(atc="J01FA09", name=None, drug_atc="J01FA09"),
            (str(uuid.uuid4()),),
            "Interaksjoner er ikke vurdert for et legemiddel (J01FA09)",
        ),
        (
            SubstitutionRestrictionDetail(
                substitution_group_id="g",
                group_code="C10AA01-1",
                group_name=None,
                restriction="Kun ved første gangs forskrivning",
                prescribed="Zocor",
                dispensed="Simvastatin Nordkyst",
                prescription="rx",
                earlier_dispenses=0,
            ),
            (A,),
            "Begrenset bytte (Kun ved første gangs forskrivning): Simvastatin Nordkyst i stedet "
            "for Zocor",
        ),
    ],
)
def test_an_alert_is_worded_in_norwegian_from_its_structure(detail, medications, expected):
    alert = _alert(detail, medications=medications)
    worded = alert_text(alert, NAMES, "nb")
    assert worded.summary == expected and worded.english is None
    # as a command's response carries it (JSON), e.g. the alerts after a charting
    assert alert_text(alert.model_dump(mode="json"), NAMES, "nb") == worded
    # English selected: the alert's own summary as it is
    assert alert_text(alert, NAMES, "en").summary == ENGLISH


def test_a_reason_only_the_dose_rules_word_in_english_is_marked_as_english():
    known = DoseNotCheckedDetail(
        substance="metotreksat",
        atc="L01BA01",
        reason_code="weight-unknown",
        reason="x",
        rule_id="r",
    )
    worded = alert_text(_alert(known, Severity.INFO, (A,)), NAMES, "nb")
    assert worded.summary == (
        "Dosen av metotreksat er ikke kontrollert (Simvastatin Nordkyst): pasientens vekt trengs"
    )
    assert worded.english is None
    no_indication = known.model_copy(update={"reason_code": "indication-unknown"})
    worded = alert_text(_alert(no_indication, Severity.INFO, (A,)), NAMES, "nb")
    assert worded.summary == (
        "Dosen av metotreksat er ikke kontrollert (Simvastatin Nordkyst): indikasjonen på "
        "oppføringen trengs, med en ICPC-2-kode først"
    )
    unknown = DoseNotCheckedDetail(
        substance="metotreksat",
        atc="L01BA01",
        reason_code="egfr-unknown",
        reason="the patient's eGFR is not known",
        rule_id="r",
    )
    worded = alert_text(_alert(unknown, Severity.INFO, (A,)), NAMES, "nb")
    assert worded.summary == "Dosen av metotreksat er ikke kontrollert (Simvastatin Nordkyst)."
    assert worded.english == "the patient's eGFR is not known"


@pytest.mark.parametrize(
    ("reason_code", "bokmal"),
    [
        ("age-unknown", "pasientens alder trengs"),
        ("weight-unknown", "pasientens vekt trengs"),
        (
            "renal-function-unknown",
            "pasientens nyrefunksjon (eGFR eller kreatininclearance) trengs",
        ),
        ("renal-function-outdated", "nyrefunksjonen ble målt for lenge siden; en ny måling trengs"),
        (
            "hepatic-risk-unknown",
            "det trengs opplysning om pasienten har risikofaktorer for leverskade",
        ),
    ],
)
def test_each_missing_patient_fact_a_dose_rule_needs_is_named_in_norwegian(reason_code, bokmal):
    missing = DoseNotCheckedDetail(
        substance="paracetamol",
        atc="N02BE01",
        reason_code=reason_code,
        reason="the English reason, with the values the check saw",
        rule_id="r",
    )
    worded = alert_text(_alert(missing, Severity.INFO, (A,)), NAMES, "nb")
    assert worded.summary == (
        f"Dosen av paracetamol er ikke kontrollert (Simvastatin Nordkyst): {bokmal}"
    )
    assert worded.english is None


def test_every_missing_fact_code_of_the_dose_check_has_its_own_wording():
    from interactions.checks import dose

    assert dose._MISSING_FACTS <= set(NOT_CHECKED_REASONS)


def test_the_prescribe_page_shows_the_interaction_in_norwegian_and_english_on_request(
    client, pages_world
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    page = prescribe_form(client, patient_id, q=KLARITROMYCIN)
    checked = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, KLARITROMYCIN, "check"),
    )
    assert checked.status_code == 200
    assert "Interaksjon, bør unngås: " in checked.text
    assert "Interaction, avoid" not in checked.text

    client.cookies.set("medloop_lang", "en", domain="testserver.local", path="/")
    english = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, KLARITROMYCIN, "check"),
    )
    assert english.status_code == 200
    assert "Interaction, avoid" in english.text and "Interaksjon" not in english.text
