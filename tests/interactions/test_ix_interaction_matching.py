"""The interaction matching policy, one test per rule."""

from datetime import date

from interactions import Alert, Kind, Medication, Severity, check
from interactions.alerts import InteractionDetail, Match
from interactions.checks.interaction import split_handling
from tests.interactions.helpers import (
    IX_CETIRIZINE_AMLODIPINE,
    IX_CODEINE_HYPNOTIC,
    IX_GINKGO_EXTRACT_WARFARIN,
    IX_HYPERICUM_WARFARIN,
    IX_SIMVASTATIN_CLARITHROMYCIN,
    IX_SMOKING_OLANZAPINE,
    IX_WARFARIN_NSAID,
    detail,
    knowledge,
    med,
)


def interactions(medications: list[Medication], include_all: bool = False) -> list[Alert]:
    alerts = check(knowledge(), medications, include_all=include_all)
    return [a for a in alerts if a.kind is Kind.INTERACTION]


def ids(alerts: list[Alert]) -> list[str]:
    return [detail(a, InteractionDetail).interaction_id for a in alerts]


def match_of(alert: Alert, medication: str) -> Match:
    return next(m for m in detail(alert, InteractionDetail).matches if m.medication == medication)


def test_level4_group_code_covers_level5_drug() -> None:
    [alert] = interactions([med("PK_MAREVAN"), med("PK_IBUX")])
    assert ids([alert]) == [IX_WARFARIN_NSAID]
    assert alert.medications == ("PK_IBUX", "PK_MAREVAN")


def test_level5_group_code_matches_exactly() -> None:
    assert ids(interactions([med("PK_MAREVAN"), med("PK_VOLTAREN")])) == [IX_WARFARIN_NSAID]
    assert interactions([med("P_SEROQUEL"), med("smoking", atc="ZV80AA01")]) == []


def test_six_level_fictional_code_matches_like_any_code() -> None:
    alerts = interactions([med("PK_ZYPREXA"), med("smoking", atc="ZV80AA01")])
    assert ids(alerts) == [IX_SMOKING_OLANZAPINE]


def test_redundant_group_codes_give_one_alert_per_pair() -> None:
    [alert] = interactions([med("PK_MAREVAN"), med("PK_IBUX")])
    assert match_of(alert, "PK_IBUX") == Match(medication="PK_IBUX", group="NSAIDs", via="M01AE01")


def test_substance_only_group_entry_matches_through_the_parent_substance() -> None:
    alerts = interactions([med("PK_MAREVAN"), med("P_PERIKUM")])
    assert ids(alerts) == [IX_HYPERICUM_WARFARIN]
    assert match_of(alerts[0], "P_PERIKUM").via == "ID_HYPERICUM"


def test_group_entry_naming_a_salt_matches_a_drug_given_on_the_moiety() -> None:
    alerts = interactions([med("PK_MAREVAN"), med("P_GINKGO")])
    assert ids(alerts) == [IX_GINKGO_EXTRACT_WARFARIN]


def test_combination_product_matches_through_component_atc() -> None:
    alerts = interactions([med("PK_PARALGIN_FORTE"), med("PK_IMOVANE")])
    assert ids(alerts) == [IX_CODEINE_HYPNOTIC]
    assert match_of(alerts[0], "PK_PARALGIN_FORTE").via == "R05DA04"


def test_pseudo_code_without_never_matches() -> None:
    assert interactions([med("PK_MAREVAN"), med("P_ARNICA")]) == []


def test_an_entry_never_interacts_with_itself() -> None:
    assert interactions([med("PK_MAREVAN")]) == []
    assert interactions([med("PK_PARALGIN_FORTE")]) == []


def test_two_entries_of_the_same_drug_pair_with_a_third_but_not_with_each_other() -> None:
    alerts = interactions([med("a", "PK_ZOCOR"), med("b", "PK_ZOCOR"), med("PK_KLACID")])
    assert sorted(a.medications for a in alerts) == [("PK_KLACID", "a"), ("PK_KLACID", "b")]


def test_relevance_maps_to_severity_and_override() -> None:
    [avoid] = interactions([med("PK_ZOCOR"), med("PK_KLACID")])
    assert (avoid.severity, avoid.requires_override) == (Severity.AVOID, True)
    [precautions] = interactions([med("PK_MAREVAN"), med("PK_IBUX")])
    assert (precautions.severity, precautions.requires_override) == (Severity.PRECAUTIONS, False)


def test_relevance3_is_reported_only_when_everything_is_asked_for() -> None:
    pair = [med("PK_ZYRTEC"), med("PK_NORVASC")]
    assert interactions(pair) == []
    [alert] = interactions(pair, include_all=True)
    assert alert.severity is Severity.NO_ACTION
    assert ids([alert]) == [IX_CETIRIZINE_AMLODIPINE]


def test_alert_carries_situation_consequence_mechanism_handling_and_references() -> None:
    [alert] = interactions([med("PK_ZOCOR"), med("PK_KLACID")])
    found = detail(alert, InteractionDetail)
    assert found.interaction_id == IX_SIMVASTATIN_CLARITHROMYCIN
    assert found.situation == "Gjelder ved alle doser."
    assert found.consequence.startswith("Klinisk konsekvens")
    assert found.mechanism == "Farmakodynamisk."
    assert found.references[0].url == "https://pubmed.ncbi.nlm.nih.gov/1"
    [nsaid] = interactions([med("PK_MAREVAN"), med("PK_IBUX")])
    handling = detail(nsaid, InteractionDetail).handling
    assert handling.dose_adjustment == "Bruk lavest mulig dose."
    assert handling.monitoring == "Følg INR tett."
    assert handling.alternatives == "Paracetamol."
    assert handling.administration is None


def test_handling_splits_on_prefixes_and_keeps_text_before_them() -> None:
    handling = split_handling(
        "Unngå om mulig. Justering av administrering: Ta med 2 timers mellomrom. "
        "Monitorering: Blodtrykk."
    )
    assert handling.other == "Unngå om mulig."
    assert handling.administration == "Ta med 2 timers mellomrom."
    assert handling.monitoring == "Blodtrykk."


def test_only_entries_in_use_at_the_same_time_are_paired() -> None:
    earlier = med("PK_ZOCOR", start=date(2026, 1, 1), stop=date(2026, 1, 31))
    later = med("PK_KLACID", start=date(2026, 2, 1), stop=date(2026, 2, 10))
    assert interactions([earlier, later]) == []
    same_day = med("PK_KLACID", start=date(2026, 1, 31))
    assert len(interactions([earlier, same_day])) == 1


def test_unknown_dates_count_as_open() -> None:
    stopped = med("PK_ZOCOR", stop=date(2026, 1, 31))
    future = med("PK_KLACID", start=date(2030, 1, 1))
    assert interactions([stopped, future]) == []
    assert len(interactions([med("PK_ZOCOR"), future])) == 1
