"""Duplicate therapy across all prescribers."""

from datetime import date

from interactions import Alert, Kind, Medication, Severity, check
from interactions.alerts import DuplicateDetail
from tests.interactions.helpers import detail, knowledge, med


def duplicates(medications: list[Medication]) -> list[Alert]:
    return [a for a in check(knowledge(), medications) if a.kind is Kind.DUPLICATE]


def test_same_substance_in_a_combination_product_is_a_duplicate() -> None:
    [alert] = duplicates([med("PK_PARACET"), med("PK_PARALGIN_FORTE")])
    assert alert.severity is Severity.PRECAUTIONS
    found = detail(alert, DuplicateDetail)
    assert found.reasons == ("same-substance",)
    assert found.atc_codes == ("N02BE01",)
    assert found.substance_ids == ("ID_PARACETAMOL",)


def test_same_substitution_group_is_a_duplicate_whatever_the_brand() -> None:
    [alert] = duplicates([med("PK_ZOCOR"), med("PK_SIMVASTATIN_KRKA")])
    found = detail(alert, DuplicateDetail)
    assert found.reasons == ("same-substance", "same-substitution-group")
    assert found.substitution_group_ids == ("SG_SIMVASTATIN_20",)


def test_same_parent_substance_is_a_duplicate_without_any_atc() -> None:
    [alert] = duplicates([med("codeine", "ID_CODEINE"), med("PK_PARALGIN_FORTE")])
    assert "ID_CODEINE" in detail(alert, DuplicateDetail).substance_ids


def test_same_atc_level4_is_a_softer_notice() -> None:
    [alert] = duplicates([med("PK_ZYPREXA"), med("P_SEROQUEL")])
    assert alert.severity is Severity.INFO
    assert not alert.requires_override
    found = detail(alert, DuplicateDetail)
    assert found.reasons == ("same-atc-level4",)
    assert found.atc_codes == ("N05AH",)


def test_different_substances_are_no_duplicate() -> None:
    assert duplicates([med("PK_MAREVAN"), med("PK_ZOCOR"), med("PK_IBUX"), med("P_ARNICA")]) == []


def test_duplicates_only_while_both_are_in_use() -> None:
    old = med("PK_ZOCOR", stop=date(2026, 1, 1))
    new = med("PK_SIMVASTATIN_KRKA", start=date(2026, 1, 2))
    assert duplicates([old, new]) == []
