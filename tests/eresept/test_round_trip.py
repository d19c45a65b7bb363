"""Round trips: a list exported as an M25.1 and imported into a fresh database is the same list
(entries, drugs, dosage text and structure, prescriptions, statuses), and a hypothesis property
over generated lists (export → read → translate gives back every entry). Every exported
message validates against the official XSDs."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fest.loader import import_catalogue
from interactions.dosage import (
    AsNeededDose,
    Dosage,
    FixedDose,
    Period,
    Quantity,
    ShortDose,
    TimeOfDay,
    TimeUnit,
    Use,
)
from medloop import queries
from medloop.domain.codes import DiscontinuationReason, EntryStatus, PrescriptionStatus
from medloop.domain.entry import Discontinuation, ListEntry
from medloop.eresept import read_message
from medloop.eresept_export import m25_1
from medloop.loop import change, prescribe
from medloop.loop.catalogue import DrugOrder, catalogue_in_force
from medloop.loop.messages import import_message, incoming_entry
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.eresept.importing import PATIENT, demo_world, reader_config, register
from tests.eresept.messages import needs_shared
from tests.loop.helpers import GP, call
from tests.reference import DEMO

pytestmark = needs_shared

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _state(engine, patient_id):
    with engine.connect() as conn:
        return queries.patient_state(conn, patient_id)


def _export(engine, patient_id) -> bytes:
    with engine.begin() as conn:
        return queries.list_as_m25_1(conn, patient_id, GP, msg_id=str(uuid.uuid4()), at=NOW)


def _prescribe(engine, patient_id, varenr: str, dosage: Dosage, **fields):
    order = prescribe.PrescribeOrder(
        entry_id=uuid.uuid4(),
        drug=DrugOrder(varenr=varenr),
        use=dosage.use,
        dosage=dosage,
        start=date(2026, 11, 1),
        terms=prescribe.PrescriptionTerms(
            prescription_id=uuid.uuid4(),
            quantity={"packages": 2},
            repeats=fields.pop("repeats", 0),
        ),
        **fields,
    )
    version = _state(engine, patient_id).medication_list.version
    prescribe.prescribe(engine, patient_id, order, call(at=NOW), based_on=version)
    return order


def _comparable(state):
    found = {}
    for entry in state.medication_list.entries:
        prescriptions = [state.prescriptions[p] for p in entry.prescription_ids]
        found[entry.id] = (
            getattr(entry.drug, "fest_id", None) or entry.drug.name,
            entry.use,
            entry.dosage,
            entry.indication,
            entry.start,
            entry.stop,
            entry.status,
            entry.discontinuation.reason if entry.discontinuation else None,
            tuple(
                (p.id, p.expires, p.quantity, p.repeats, p.status, p.drug.fest_id)
                for p in prescriptions
            ),
        )
    return found


def test_a_list_exported_as_m25_1_and_imported_into_a_fresh_database_is_the_same_list(
    engine, tmp_path
):
    patient_id = demo_world(engine)
    regular = Dosage(
        use=Use.REGULAR,
        fixed=(
            FixedDose(amount=Quantity(value=1, unit="tablett"), time_of_day=TimeOfDay.MORNING),
            FixedDose(
                amount=Quantity(value=0.5, unit="tablett"),
                clock_time=time(20, 0),
                exact=True,
            ),
        ),
        text="1 tablett morgen, ½ tablett kl 20",
    )
    as_needed = Dosage(
        use=Use.AS_NEEDED,
        as_needed=(
            AsNeededDose(
                amount=Quantity(value=1, unit="tablett"),
                max_per_24h=Quantity(value=4, unit="tablett"),
                max_per_period=Quantity(value=2, unit="tablett"),
                period=Period(value=8, unit=TimeUnit.HOUR),
                min_interval=Period(value=4, unit=TimeUnit.HOUR),
            ),
        ),
        short_dose=ShortDose(code="233", text="1 tablett ved behov"),
        text="1 tablett ved behov, høyst 4 i døgnet",
    )
    _prescribe(engine, patient_id, "090470", regular, indication="Kolesterol", repeats=2)
    _prescribe(engine, patient_id, "090011", as_needed)
    stopped = _prescribe(engine, patient_id, "090283", regular)
    version = _state(engine, patient_id).medication_list.version
    change.discontinue(
        engine,
        patient_id,
        stopped.entry_id,
        Discontinuation(at=NOW - timedelta(days=2), reason=DiscontinuationReason.DRUG_REACTION),
        call(at=NOW),
        based_on=version,
    )
    exported = _export(engine, patient_id)
    message = read_message(exported, source="export", config=reader_config())
    assert all(d.validation == "valid" for d in message.documents)
    assert len(message.documents) == 4  # the list and three embedded prescriptions

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)
    import_catalogue(fresh, DEMO)
    fresh_patient = register(fresh, PATIENT)
    receipt = import_message(fresh, exported, source="export", config=reader_config())
    assert (receipt.result, receipt.entries) == ("applied", 3)
    before, after = (
        _comparable(_state(engine, patient_id)),
        _comparable(_state(fresh, fresh_patient)),
    )
    assert after == before
    statuses = {v[6] for v in after.values()}
    assert statuses == {EntryStatus.ACTIVE, EntryStatus.DISCONTINUED}
    recalled = [p for v in after.values() for p in v[8] if p[4] is PrescriptionStatus.RECALLED]
    assert len(recalled) == 1  # the discontinued entry's prescription, recalled with it
    fresh.dispose()


# -- the property: export → read → translate gives every entry back ----------------------------


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('cat') / 'demo.db'}")
    upgrade(engine)
    import_catalogue(engine, DEMO)
    with engine.connect() as conn:
        found = catalogue_in_force(conn)
    engine.dispose()
    return found


VARENRS = ("090470", "090011", "090283", "090334", "090606", "090861", "091048")
words = st.from_regex(
    r"[A-Za-zÆØÅæøå0-9][A-Za-zÆØÅæøå0-9 ,.½-]{0,28}[A-Za-zæøå0-9]", fullmatch=True
)
amounts = st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 10.0, 250.0])
units = st.sampled_from(["tablett", "mg", "ml", "dråpe", "stk"])
periods = st.builds(
    Period,
    value=st.sampled_from([2.0, 4.0, 8.0, 12.0]),
    unit=st.sampled_from([TimeUnit.HOUR, TimeUnit.WEEK]),
)
fixed_doses = st.builds(
    FixedDose,
    amount=st.builds(Quantity, value=amounts, unit=units),
    time_of_day=st.none() | st.sampled_from(list(TimeOfDay)),
    clock_time=st.none() | st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30])),
    exact=st.booleans(),
    interval=st.none() | periods,
)
as_needed_doses = st.builds(
    AsNeededDose,
    amount=st.builds(Quantity, value=amounts, unit=units),
    max_per_24h=st.builds(Quantity, value=amounts, unit=units),
    max_per_period=st.builds(Quantity, value=amounts, unit=units),
    period=periods,
    min_interval=periods,
)
short_doses = st.none() | st.builds(
    ShortDose, code=st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True), text=st.none() | words
)


@st.composite
def dosages(draw, use: Use):
    text = draw(st.none() | words)
    short = draw(short_doses)
    doses = draw(st.lists(as_needed_doses if use is Use.AS_NEEDED else fixed_doses, max_size=3))
    if not doses and short is None and text is None:
        return None  # a dosage that says nothing is no dosage (the use is the entry's)
    if use is Use.AS_NEEDED:
        return Dosage(use=use, as_needed=tuple(doses), short_dose=short, text=text)
    return Dosage(use=use, fixed=tuple(doses), short_dose=short, text=text)


@st.composite
def entries(draw, catalogue):
    use = draw(st.sampled_from(list(Use)))
    start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 300)))
    stop = draw(st.none() | st.integers(0, 90).map(lambda d: start + timedelta(days=d)))
    dosage = draw(dosages(use))
    if dosage is None or not (dosage.fixed or dosage.as_needed):
        stop = None  # an entry's planned stop travels in its structured dosage only
    discontinued = draw(st.booleans())
    discontinuation = None
    if discontinued:
        discontinuation = Discontinuation(
            at=datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
            + timedelta(minutes=draw(st.integers(0, 10_000))),
            reason=draw(st.sampled_from(list(DiscontinuationReason))),
            note=draw(st.none() | words),
        )
    return ListEntry(
        id=uuid.uuid4(),
        version=1,
        drug=catalogue.resolve(DrugOrder(varenr=draw(st.sampled_from(VARENRS)))),
        dosage=dosage,
        use=use,
        indication=draw(st.none() | words),
        start=start,
        stop=stop,
        status=EntryStatus.DISCONTINUED if discontinued else EntryStatus.ACTIVE,
        discontinuation=discontinuation,
        prescriber=GP,
        changed_at=NOW,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_generated_list_comes_back_entry_for_entry_from_its_m25_1(catalogue, data):
    listed = data.draw(st.lists(entries(catalogue), min_size=1, max_size=6))
    from medloop.domain.patient import NationalId, Patient

    patient = Patient(
        id=uuid.uuid4(),
        national_id=NationalId(PATIENT),
        given_name="Ottar",
        family_name="Knutsen",
        birth_date=date(1946, 1, 21),
    )
    exported = m25_1(patient, listed, {}, sender=GP, msg_id=str(uuid.uuid4()), at=NOW)
    message = read_message(exported, source="generated", config=reader_config())
    assert all(d.validation == "valid" for d in message.documents)
    (lib,) = message.lists
    back = [incoming_entry(e, catalogue, NOW.date()) for e in lib.entries]
    assert [str(e.id) for e in listed] == [b.message_entry_id for b in back]
    for entry, found in zip(listed, back, strict=True):
        assert found.drug.fest_id == entry.drug.fest_id
        assert found.use is entry.use
        assert found.dosage == entry.dosage
        assert found.indication == entry.indication
        assert (found.start, found.stop) == (entry.start, entry.stop)
        assert found.discontinuation == entry.discontinuation
