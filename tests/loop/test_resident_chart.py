"""The read side the nurse's pages use: a resident's chart over days (``resident_chart``), the
PRN doses given (``as_needed_given``), the pack check before charting (``check_pack``) and the
wristband (``read_wristband`` + ``check_wristband``), on the demo world."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from interactions.dosage import Quantity
from medloop import demo
from medloop.domain.administration import (
    ChartRequest,
    DoseStatus,
    InvalidGsrn,
    Outcome,
    ScannedPackExpired,
    ScannedPackMismatch,
    ScanUnreadable,
    WristbandMismatch,
    WristbandNotRegistered,
    check_wristband,
)
from medloop.loop import administration
from medloop.loop.runner import Call
from medloop.loop.scanning import check_pack, read_wristband
from medloop.queries import current_list
from medloop.settings import Settings

BUILT = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
MORNING = datetime(2026, 12, 7, 7, 5, tzinfo=UTC)
MONDAY = date(2026, 12, 7)


@pytest.fixture
def world(engine):
    return demo.build(engine, Settings().demo_catalogue, now=BUILT)


def _resident(world, index: int):
    national_id = demo.national_id(demo.RESIDENTS[index].birth, 100 + 37 * index)
    return national_id, world.patients[national_id]


def test_a_residents_chart_lists_each_days_doses_with_their_state(engine, world):
    _, ingrid = _resident(world, 2)
    with engine.connect() as conn:
        days = administration.resident_chart(conn, ingrid, MONDAY, 2, MORNING)
    assert [d.day for d in days] == [MONDAY, date(2026, 12, 8)]
    monday = {(line.drug.split()[0], line.local_time.hour): line for line in days[0].doses}
    assert monday[("Levotyroksin", 8)].status is DoseStatus.DUE
    assert monday[("Metformin", 18)].status is DoseStatus.PLANNED
    assert not any(line.superseded for line in days[0].doses)
    assert [line.due_at for line in days[0].doses] == sorted(line.due_at for line in days[0].doses)


def test_a_residents_chart_shows_only_the_stays_of_the_organisation_asked_for(engine, world):
    _, ingrid = _resident(world, 2)
    with engine.connect() as conn:
        own = administration.resident_chart(
            conn, ingrid, MONDAY, 1, MORNING, organisation_id=demo.NURSING_HOME.id
        )
        other = administration.resident_chart(
            conn, ingrid, MONDAY, 1, MORNING, organisation_id="999888777"
        )
    assert own[0].doses and other[0].doses == ()


def _paracetamol(engine, kari):
    with engine.connect() as conn:
        listed = current_list(conn, kari, MORNING)
    return next(e for e in listed.entries if e.drug.name.startswith("Paracet"))


def test_the_prn_doses_given_are_listed_for_their_organisation_only(engine, world):
    _, kari = _resident(world, 0)
    entry = _paracetamol(engine, kari)
    administration.chart(
        engine,
        kari,
        ChartRequest(
            administration_id=uuid.uuid4(),
            entry_id=entry.id,
            outcome=Outcome.GIVEN,
            given_at=MORNING,
            dose=Quantity(value=1, unit="tablett"),
            scan_skipped="no-barcode",
        ),
        Call(actor=demo.NURSE, at=MORNING),
    )
    with engine.connect() as conn:
        since = datetime(2026, 12, 6, 7, 5, tzinfo=UTC)
        own = administration.as_needed_given(
            conn, [kari], since, MORNING.replace(minute=6), organisation_id=demo.NURSING_HOME.id
        )
        other = administration.as_needed_given(
            conn, [kari], since, MORNING.replace(minute=6), organisation_id="999888777"
        )
        day = administration.resident_chart(conn, kari, MONDAY, 1, MORNING)
    assert [g.entry_id for g in own[kari]] == [entry.id]
    assert other == {}
    assert [g.entry_id for g in day[0].as_needed] == [entry.id]


def test_a_pack_is_checked_against_the_entry_before_anything_is_charted(engine, world):
    _, kari = _resident(world, 0)
    entry = _paracetamol(engine, kari)
    with engine.connect() as conn:
        right = check_pack(conn, entry, "7046260900288", MONDAY)
        assert right.varenr == "090028" and not right.substituted
        with pytest.raises(ScannedPackMismatch):
            check_pack(conn, entry, "7046260906068", MONDAY)  # levotyroksin
        with pytest.raises(ScannedPackExpired):
            check_pack(conn, entry, "(01)07046260900288(17)261130(10)X1", MONDAY)
        with pytest.raises(ScanUnreadable):
            check_pack(conn, entry, "not a barcode", MONDAY)


def test_a_wristband_is_read_as_a_national_id_or_a_gsrn():
    assert read_wristband(" 14033810012 ").national_id == "14033810012"
    assert read_wristband("(8018)709999900000000017").gsrn == "709999900000000017"
    assert read_wristband("8018709999900000000017").gsrn == "709999900000000017"
    assert read_wristband("709999900000000017").gsrn == "709999900000000017"  # bare 18 digits
    with pytest.raises(InvalidGsrn):  # the GS1 check digit is 7, not 9
        read_wristband("(8018)709999900000000019")
    with pytest.raises(InvalidGsrn):
        read_wristband("709999900000000019")
    with pytest.raises(ScanUnreadable):
        read_wristband("(01)07046260900288")
    with pytest.raises(ScanUnreadable):
        read_wristband("hello")


def test_the_wristband_must_be_the_residents_own():
    check_wristband("14033810012", "14033810012", None)
    with pytest.raises(WristbandMismatch):
        check_wristband("14033810012", "02094110037", None)
    with pytest.raises(WristbandNotRegistered):
        check_wristband("14033810012", None, "709999900000000017")
    check_wristband("14033810012", None, "709999900000000017", "709999900000000017")
    with pytest.raises(WristbandMismatch):  # another resident's GSRN: a wrong resident
        check_wristband("14033810012", None, "709999900000000024", "709999900000000017")


def test_a_dose_of_a_changed_dosage_is_shown_superseded_beside_the_new_one(engine, world):
    from datetime import timedelta

    from interactions.dosage import Dosage, FixedDose, TimeOfDay, Use
    from medloop.loop.administration import roll_forward
    from medloop.loop.change import change_dosage

    _, ingrid = _resident(world, 2)
    changed_at = MORNING - timedelta(hours=2)  # 06:05 in Oslo, before the 08:00 round
    with engine.connect() as conn:
        listed = current_list(conn, ingrid, changed_at)
    entry = next(e for e in listed.entries if e.drug.name.startswith("Levotyroksin"))
    two = Dosage(
        use=Use.REGULAR,
        fixed=(FixedDose(amount=Quantity(value=2, unit="tablett"), time_of_day=TimeOfDay.MORNING),),
        text="2 tabletter om morgenen",
    )
    change_dosage(
        engine,
        ingrid,
        entry.id,
        two,
        Call(actor=demo.GP, at=changed_at, overrides={}),
        based_on=listed.list_version,
    )
    roll_forward(engine, changed_at)
    with engine.connect() as conn:
        (monday,) = administration.resident_chart(conn, ingrid, MONDAY, 1, MORNING)
    lines = [line for line in monday.doses if line.entry_id == entry.id]
    assert {(line.superseded, line.amount.value) for line in lines} == {(True, 1), (False, 2)}
