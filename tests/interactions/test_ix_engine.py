"""The check entry point: ordering, provenance, acknowledgement, focus."""

from datetime import datetime

import pytest

from interactions import Alert, Allergy, HandledAlert, Kind, Medication, Patient, Severity, check
from interactions.alerts import SUMMARY_LENGTH
from interactions.medication import Substitution
from tests.interactions.helpers import INFO, fixed, knowledge, med

EVERYTHING = [
    med("PK_MAREVAN"),
    med("PK_IBUX", dosage=fixed(3)),
    med("PK_ZOCOR"),
    med("PK_SIMVASTATIN_KRKA"),
    med("PK_KLACID", dosage=fixed(1)),
    med("PK_PARACET", dosage=fixed(2)),
    med("PK_PARALGIN_FORTE", dosage=fixed(2)),
    med("PK_IMOVANE", dosage=fixed(1)),
    med("P_PERIKUM"),
    med("P_BETANEKOL"),
    med("P_DIVISUN", dosage=fixed(1)),
    med("PK_METHOTREXATE", dosage=fixed(1)),
    med("PK_ZYRTEC"),
    med("PK_NORVASC"),
    Medication(
        id="SUBSTITUTED",
        drug=med("PK_ZYRTEC").drug,
        substitution=Substitution(
            prescribed="Prescribed", group_id="SG_RESTRICTED", prescription="RX_1"
        ),
    ),
]
ALLERGIC = Patient(allergies=(Allergy(atc="J01FA"),))


def everything(proposed: list[str] | None = None) -> list[Alert]:
    return check(knowledge(), EVERYTHING, patient=ALLERGIC, include_all=True, proposed=proposed)


def test_every_kind_is_produced_and_every_alert_repeats_its_provenance() -> None:
    alerts = everything()
    assert {a.kind for a in alerts} == set(Kind)
    for alert in alerts:
        assert alert.source.catalogue_version == INFO.version
        assert alert.source.hentet_dato == INFO.hentet_dato
        assert alert.source.fest_id or alert.source.rule_id
        assert 0 < len(alert.summary) <= SUMMARY_LENGTH


def test_alerts_are_sorted_most_severe_first() -> None:
    ranks = [a.severity.rank for a in everything()]
    assert ranks == sorted(ranks)
    assert everything()[0].severity is Severity.AVOID


def test_only_avoid_allergy_dose_and_substitution_restriction_alerts_require_an_override() -> None:
    for alert in everything():
        expected = alert.severity is Severity.AVOID or alert.kind in (
            Kind.ALLERGY,
            Kind.DOSE,
            Kind.SUBSTITUTION_RESTRICTION,
        )
        assert alert.requires_override is expected


def test_alert_keys_are_unique_and_stable() -> None:
    keys = [a.key for a in everything()]
    assert len(keys) == len(set(keys))
    [simvastatin] = [
        a
        for a in everything()
        if a.kind is Kind.INTERACTION and a.medications == ("PK_KLACID", "PK_ZOCOR")
    ]
    assert simvastatin.key == "interaction/IX_SIMVASTATIN_CLARITHROMYCIN/PK_KLACID,PK_ZOCOR"


def test_a_handled_alert_is_not_raised_again_for_the_same_pair() -> None:
    pair = [med("PK_ZOCOR"), med("PK_KLACID")]
    [alert] = [a for a in check(knowledge(), pair) if a.kind is Kind.INTERACTION]
    handled = HandledAlert(
        key=alert.key,
        handled_by="HPR 1234567",
        handled_at=datetime(2026, 3, 2, 10, 0),
        reason="Klaritromycin i 5 dager, simvastatin pauses",
    )
    assert alert.key not in {a.key for a in check(knowledge(), pair, handled=[handled])}
    other_pair = [med("PK_SIMVASTATIN_KRKA"), med("PK_KLACID")]
    still_raised = check(knowledge(), other_pair, handled=[handled])
    assert any(a.kind is Kind.INTERACTION for a in still_raised)


def test_alerts_round_trip_as_json_for_cds_hooks_cards() -> None:
    for alert in everything():
        data = alert.model_dump(mode="json")
        assert {
            "kind",
            "severity",
            "medications",
            "summary",
            "detail",
            "source",
            "requires_override",
            "key",
        } <= set(data)
        assert Alert.model_validate(data) == alert


def test_proposed_checks_only_what_involves_the_new_entry() -> None:
    proposed = everything(proposed=["PK_KLACID"])
    assert proposed
    assert all("PK_KLACID" in a.medications for a in proposed)
    full = {a.key for a in everything() if "PK_KLACID" in a.medications}
    assert {a.key for a in proposed} == full


def test_duplicate_entry_ids_and_unknown_proposed_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        check(knowledge(), [med("PK_ZOCOR"), med("PK_ZOCOR")])
    with pytest.raises(ValueError, match="proposed"):
        check(knowledge(), [med("PK_ZOCOR")], proposed=["nope"])


def test_empty_list_gives_no_alerts() -> None:
    medications: list[Medication] = []
    assert check(knowledge(), medications) == []


def test_an_alerts_kept_key_is_the_one_its_parts_give() -> None:
    # ``Alert.key`` is kept per alert object (``interactions.alerts._KEYS``): read again it is
    # the same text, an equal alert made anew gets its own, and a copy with other entries
    # gets the key of its own entries.
    from interactions import alerts as alerts_module

    for alert in everything():
        expected = f"{alert.kind}/{alert.detail.record}/{','.join(sorted(alert.medications))}"
        assert alert.key == expected
        assert alert.key is alert.key
        assert alerts_module._KEYS[id(alert)] == (alert, expected)
        again = Alert.model_validate(alert.model_dump(mode="json"))
        assert again.key == expected
        other = alert.model_copy(update={"medications": ("zz",)})
        assert other.key == f"{alert.kind}/{alert.detail.record}/zz"
        assert alert.key == expected


def test_kept_alert_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from interactions import alerts as alerts_module

    monkeypatch.setattr(alerts_module, "_KEYS_KEPT", 2)
    monkeypatch.setattr(alerts_module, "_KEYS", {})
    keys = [alert.key for alert in everything()]
    assert len(alerts_module._KEYS) <= 2
    assert keys == [alert.key for alert in everything()]
