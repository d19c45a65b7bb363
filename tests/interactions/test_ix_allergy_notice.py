"""Allergy/CAVE, safety notices and not-assessed notices."""

from interactions import Alert, Allergy, Kind, Medication, Patient, Severity, check
from interactions.alerts import AllergyDetail, NotAssessedDetail, NoticeDetail
from tests.interactions.helpers import (
    NOTICE_PARACET_PRODUCT,
    NOTICE_SIMVASTATIN_GROUP,
    detail,
    knowledge,
    med,
)


def alerts_of(
    kind: Kind, medications: list[Medication], patient: Patient | None = None
) -> list[Alert]:
    return [a for a in check(knowledge(), medications, patient=patient) if a.kind is kind]


def allergic_to(**allergy: str) -> Patient:
    return Patient(allergies=(Allergy.model_validate(allergy),))


def test_allergy_to_an_atc_class_covers_the_drugs_below_it() -> None:
    nsaid = allergic_to(atc="M01A", label="NSAID")
    [alert] = alerts_of(Kind.ALLERGY, [med("PK_IBUX"), med("PK_MAREVAN")], nsaid)
    assert alert.medications == ("PK_IBUX",)
    assert alert.severity is Severity.AVOID and alert.requires_override
    assert detail(alert, AllergyDetail).via == "M01AE01"


def test_allergy_to_a_component_hits_the_combination_product() -> None:
    [alert] = alerts_of(Kind.ALLERGY, [med("PK_PARALGIN_FORTE")], allergic_to(atc="R05DA04"))
    assert detail(alert, AllergyDetail).via == "R05DA04"


def test_allergy_to_a_substance_matches_its_salts_and_products() -> None:
    codeine = allergic_to(substance_id="ID_CODEINE")
    [alert] = alerts_of(Kind.ALLERGY, [med("PK_PARALGIN_FORTE")], codeine)
    assert detail(alert, AllergyDetail).allergen_kind == "substance"


def test_allergy_level5_code_does_not_cover_a_sibling() -> None:
    assert alerts_of(Kind.ALLERGY, [med("PK_VOLTAREN")], allergic_to(atc="M01AE01")) == []


def test_allergy_to_without_never_matches() -> None:
    assert alerts_of(Kind.ALLERGY, [med("P_ARNICA")], allergic_to(atc="WITHOUT")) == []


def test_notice_on_a_generic_group_covers_its_products_and_packages() -> None:
    for entry in ("PK_ZOCOR", "P_SIMVASTATIN_KRKA", "GG_SIMVASTATIN_20"):
        [alert] = alerts_of(Kind.NOTICE, [med(entry)])
        found = detail(alert, NoticeDetail)
        assert found.notice_id == NOTICE_SIMVASTATIN_GROUP
        assert found.link == "https://www.dmp.no/varsel/simvastatin"
        assert found.type_name == "Sikkerhetsinformasjon"
        assert alert.source.fest_id == NOTICE_SIMVASTATIN_GROUP


def test_notice_on_a_product_covers_its_packages_and_dose_units_not_other_products() -> None:
    for entry in ("P_PARACET", "PK_PARACET", "DU_PARACET"):
        [alert] = alerts_of(Kind.NOTICE, [med(entry)])
        assert detail(alert, NoticeDetail).notice_id == NOTICE_PARACET_PRODUCT
        assert alert.severity is Severity.INFO
    assert alerts_of(Kind.NOTICE, [med("PK_PARALGIN_FORTE")]) == []


def test_not_assessed_level5_code_gives_a_notice() -> None:
    [alert] = alerts_of(Kind.NOT_ASSESSED, [med("P_BETANEKOL")])
    assert detail(alert, NotAssessedDetail).atc == "N07AB02"
    assert alert.severity is Severity.INFO


def test_not_assessed_short_code_covers_every_code_below_it() -> None:
    [alert] = alerts_of(Kind.NOT_ASSESSED, [med("P_GALAFOLD")])
    found = detail(alert, NotAssessedDetail)
    assert (found.atc, found.drug_atc) == ("A16AX", "A16AX14")
