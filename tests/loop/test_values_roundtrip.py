"""Whatever the validators accept is stored and loads again equal (issue #13), on SQLite and
PostgreSQL, through the code production uses: the loop's command (``run_command``, whose
appends go through the PostgreSQL batch pipeline of ``store/batch.py``) and the list's own
load (``load_patient_state``, not the state cache). The strategies are drawn from the bounds
of ``interactions.values``: the extremes (the largest and the smallest subnormal dose, texts of
any Unicode plane at their maximum length) are where a stored value used to come back as
``null`` or not at all."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.types import JSON

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
    Weekday,
)
from interactions.values import MAX_DOSE, MAX_PACKAGES, MAX_PERIOD, MAX_REASON
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop.catalogue import DrugOrder
from medloop.loop.errors import OverrideRequired
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe
from medloop.store import batch
from medloop.store.columns import parsed
from medloop.store.list_changes import list_version
from medloop.store.patient_state import load_patient_state
from medloop.store.patients import read_patient
from medloop.store.records import stored_records
from tests.api.helpers import make_world
from tests.loop.helpers import SIMVASTATIN_28, TODAY, call, demo_world

TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
"""Any Unicode character a text may hold: every plane, but no surrogate and no NUL."""


def texts(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(TEXT, min_size=min_size, max_size=min(max_size, 60)),
        st.builds(lambda c: c * max_size, TEXT),  # exactly at the limit
    )


def positive(maximum: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(
            min_value=0, max_value=maximum, exclude_min=True, allow_nan=False, allow_infinity=False
        ),
        st.sampled_from([5e-324, 2.2250738585072014e-308, maximum, 0.1 + 0.2]),
    )


quantities = st.builds(Quantity, value=positive(MAX_DOSE), unit=texts(50, 1))
periods = st.builds(Period, value=positive(MAX_PERIOD), unit=st.sampled_from(TimeUnit))
fixed = st.builds(
    FixedDose,
    amount=quantities,
    time_of_day=st.none() | st.sampled_from(TimeOfDay),
    interval=st.none() | periods,
    weekdays=st.lists(st.sampled_from(Weekday), max_size=7, unique=True).map(tuple),
)
as_needed = st.builds(
    AsNeededDose,
    amount=quantities,
    max_per_24h=st.none() | quantities,
    min_interval=st.none() | periods,
)
short = st.builds(ShortDose, code=texts(20, 1), text=st.none() | texts(500))
dosages = st.one_of(
    st.builds(
        Dosage,
        use=st.just(Use.REGULAR),
        fixed=st.lists(fixed, min_size=1, max_size=3).map(tuple),
        short_dose=st.none() | short,
        text=st.none() | texts(2000),
    ),
    st.builds(
        Dosage,
        use=st.just(Use.AS_NEEDED),
        as_needed=st.lists(as_needed, min_size=1, max_size=2).map(tuple),
        text=st.none() | texts(2000),
    ),
)

_SETTINGS = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def _prescribed(engine, patient_id, order, reason) -> None:
    """Prescribe ``order``, overriding whatever alert needs an override."""
    with engine.connect() as conn:
        version = list_version(conn, patient_id)
    try:
        prescribe(engine, patient_id, order, call(reason=reason), based_on=version)
    except OverrideRequired as refused:
        overrides = dict.fromkeys(refused.context["alert_keys"], "accepted in the test")
        prescribe(
            engine, patient_id, order, call(reason=reason, overrides=overrides), based_on=version
        )


def test_a_prescription_with_any_accepted_value_loads_again_equal(engine):
    patient_id = demo_world(engine)

    @_SETTINGS
    @given(
        dosage=dosages,
        indication=st.none() | texts(10_000),
        reason=st.none() | texts(MAX_REASON),
        packages=positive(MAX_PACKAGES),
    )
    def prescribed_and_loaded(dosage, indication, reason, packages):
        order = PrescribeOrder(
            entry_id=uuid.uuid4(),
            drug=DrugOrder(varenr=SIMVASTATIN_28),
            use=dosage.use,
            dosage=dosage,
            indication=indication,
            start=TODAY,
            terms=PrescriptionTerms(
                prescription_id=uuid.uuid4(), quantity=PrescribedQuantity(packages=packages)
            ),
        )
        _prescribed(engine, patient_id, order, reason)
        with engine.connect() as conn:
            state = load_patient_state(conn, read_patient(conn, patient_id))
        entry = state.medication_list.entry(order.entry_id)
        assert (entry.dosage, entry.indication) == (dosage, indication)
        assert state.changes[-1].reason == reason
        assert state.prescriptions[order.terms.prescription_id].quantity.packages == packages

    prescribed_and_loaded()


# -- every stored record type ---------------------------------------------------------------------

_SCRATCH = MetaData()
scratch = Table(
    "values_roundtrip",
    _SCRATCH,
    Column("id", Integer, primary_key=True),
    Column("kind", String(64)),
    Column("record", JSON, nullable=False),
)


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(value, dict):
        return [leaf for key, inner in value.items() for leaf in _leaves(inner, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, inner in enumerate(value) for leaf in _leaves(inner, (*path, i))]
    return [(path, value)]


def _with(value: Any, path: tuple, leaf: Any) -> Any:
    if not path:
        return leaf
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: _with(value[head], tuple(rest), leaf)}
    return [_with(v, tuple(rest), leaf) if i == head else v for i, v in enumerate(value)]


def _free_text(value: Any) -> bool:
    """A string leaf that is free text rather than an id, a code, a date or a number."""
    return isinstance(value, str) and " " in value or value in ("", "tablett", "kapsel")


def _samples(engine) -> dict[str, list[tuple[type, Any]]]:
    """A record of every stored type the world below has, as stored (JSON)."""
    found: dict[str, list[tuple[type, Any]]] = {}
    with engine.connect() as conn:
        for stored in stored_records():
            rows = conn.execute(select(stored.table.c[stored.column])).scalars()
            # A table may keep more than one record (an alert and the override's author), and
            # a column may be empty (``None``: an alert nobody overrode).
            taken = [row for row in rows if row is not None][:3]
            found.setdefault(stored.table.name, []).extend((stored.model, row) for row in taken)
    return {table: rows for table, rows in found.items() if rows}


def _more_records(world) -> None:
    """A dispense and its annulment, a reconciliation, a handled alert, a proposal and its
    decision, through the API as in production."""
    from tests.api.helpers import PHARMACIST_TOKEN, dispense_body, pharmacy_version, prescribe_body
    from tests.loop.helpers import SIMVASTATIN_NORDKYST

    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    path = f"/pharmacy/patients/{world.patient_id}/dispenses"
    dispensed = world.post(
        path,
        dispense_body(body["terms"]["prescription_id"], SIMVASTATIN_NORDKYST),
        token=PHARMACIST_TOKEN,
        **{"If-Match": pharmacy_version(world)},
    )
    assert dispensed.status_code == 201, dispensed.text
    annulled = world.post(
        f"{path}/{dispensed.json()['dispense_id']}/annul",
        {"reason": "wrong package"},
        token=PHARMACIST_TOKEN,
    )
    assert annulled.status_code == 200, annulled.text
    entries = world.get(f"/patients/{world.patient_id}/list").json()["entries"]
    reconciled = world.write(
        f"/patients/{world.patient_id}/list/reconciliations",
        {
            "reconciliation_id": str(uuid.uuid4()),
            "sources": [{"kind": "patient"}],
            "outcomes": [
                {"entry_id": e["id"], "outcome": "confirmed"}
                for e in entries
                if e["status"] in ("active", "on-hold")
            ],
        },
    )
    assert reconciled.status_code == 201, reconciled.text
    acknowledged = world.post(
        f"/patients/{world.patient_id}/alerts/acknowledge",
        {"alert_key": "interaction/X/a,b", "reason": "known"},
    )
    assert acknowledged.status_code == 200, acknowledged.text
    base = f"/multidose/patients/{world.patient_id}"
    question = {
        "proposal_id": str(uuid.uuid4()),
        "kind": "question",
        "question": "Kan simvastatin gis om morgenen?",
    }
    assert world.post(f"{base}/proposals", question, token=PHARMACIST_TOKEN).status_code == 201
    accepted = world.post(
        f"{base}/proposals/{question['proposal_id']}/accept",
        {"reason": "Ja, om morgenen er fint"},
        **{"If-Match": f'"{world.version()}"'},
    )
    assert accepted.status_code == 200, accepted.text
    # a signed medication review, a decision per finding
    current = world.get(f"/patients/{world.patient_id}/review")
    assert current.status_code == 200, current.text
    review = {
        "review_id": str(uuid.uuid4()),
        "participants": [{"role": "doctor", "name": "Anja Fos Eidsvik"}],
        "decisions": [
            {"finding": key, "action": "continue", "reason": "reviewed, keep"}
            for key in current.json()["finding_keys"]
        ],
        "note": "årlig legemiddelgjennomgang",
    }
    signed = world.post(
        f"/patients/{world.patient_id}/reviews", review, **{"If-Match": current.headers["ETag"]}
    )
    assert signed.status_code == 201, signed.text


def _charted(world, ward_id: str, entry_id: str) -> None:
    """The next morning's dose given, then marked entered-in-error (administration and its
    correction), through the API."""
    from tests.api.helpers import NURSE_TOKEN, given_next_morning

    _, administration_id = given_next_morning(world, ward_id, entry_id)
    path = f"/nursing/patients/{world.patient_id}/administrations"
    corrected = world.post(
        f"{path}/{administration_id}/entered-in-error",
        {"reason": "charted on the wrong patient"},
        token=NURSE_TOKEN,
    )
    assert corrected.status_code == 200, corrected.text


def _packed_with_a_discrepancy(world, period_id: str) -> None:
    """An urgent pack, a packing report with a double dose in the first bag (a multidose
    reconciliation and a task for the doctor), and the task resolved, through the API."""
    from tests.api.helpers import PHARMACIST_TOKEN

    base = f"/multidose/patients/{world.patient_id}"
    world.clock.at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # past the order deadline
    urgent = world.post(
        f"{base}/periods/{period_id}/urgent-packs",
        {"pack_id": str(uuid.uuid4()), "reason": "dosage changed today"},
        token=PHARMACIST_TOKEN,
    )
    assert urgent.status_code == 201, urgent.text
    bags = world.get(f"{base}/periods/{period_id}/plan", token=PHARMACIST_TOKEN).json()["bags"]

    def packed(line: dict, factor: int) -> dict:
        quantity = {**line["quantity"], "value": line["quantity"]["value"] * factor}
        return {"varenr": line["varenr"], "quantity": quantity, "entry_id": line["entry_id"]}

    report = {
        "report_id": str(uuid.uuid4()),
        "period_id": period_id,
        "bags": [
            {
                "day": b["day"],
                "intake": b["intake"],
                "lines": [packed(line, 2 if n == 0 else 1) for line in b["lines"]],
            }
            for n, b in enumerate(bags)
        ],
    }
    reconciled = world.post(f"{base}/packing-reports", report, token=PHARMACIST_TOKEN)
    assert reconciled.status_code == 201, reconciled.text
    assert reconciled.json()["discrepancies"] >= 1
    tasks = world.get(base).json()["open_tasks"]
    assert tasks, "a dose mismatch opens a task for the doctor"
    resolved = world.post(
        f"{base}/tasks/{tasks[0]['id']}/resolve", {"reason": "pharmacy repacks the first day"}
    )
    assert resolved.status_code == 200, resolved.text


def _answered_m25_2(world) -> None:
    """A multidose pharmacy's M25.2 received, the doctor's rejection of its question (an answer
    in the outbox) and the answer marked sent, through the API."""
    from medloop.loop import multidose
    from tests.api.helpers import PHARMACIST_TOKEN, auth
    from tests.eresept.importing import m25_2_from_pharmacy
    from tests.loop.helpers import GP, PHARMACIST, call

    multidose.set_responsibility(
        world.engine,
        world.patient_id,
        multidose.ResponsibilityOrder(
            doctor=GP, pharmacy=PHARMACIST.organisation, valid_from=date(2019, 1, 1)
        ),
        call(),
    )
    proposed = world.client.post(
        "/eresept/messages",
        content=m25_2_from_pharmacy(),
        headers=auth(PHARMACIST_TOKEN, **{"Content-Type": "application/xml"}),
    )
    assert proposed.status_code == 200, proposed.text
    with world.engine.connect() as conn:
        pending = multidose.pending_proposals(conn, world.patient_id)
    question = next(p for p in pending if p.kind.value == "question")
    multidose.reject_proposal(
        world.engine, world.patient_id, question.id, call(GP, reason="ikke nå")
    )
    outbox = f"/patients/{world.patient_id}/eresept/outbox"
    (message,) = world.get(outbox).json()["messages"]
    sent = world.post(f"{outbox}/{message['msg_id']}/sent", {})
    assert sent.status_code == 200, sent.text


def test_every_stored_record_type_loads_again_equal_with_any_accepted_text_or_number(engine):
    from tests.api.helpers import GP_TOKEN, admitted, auth, multidose_patient
    from tests.eresept.importing import with_demo_drugs
    from tests.eresept.messages import SHARED_PRESENT, example

    world = make_world(engine)
    ward_id, simvastatin, _ = admitted(world)
    period_id = multidose_patient(world)
    _more_records(world)
    _charted(world, ward_id, simvastatin)
    _packed_with_a_discrepancy(world, period_id)
    expected = {stored.table.name for stored in stored_records()}
    if SHARED_PRESENT:  # a received M25.1, kept as a proposal against the list above
        received = world.client.post(
            "/eresept/messages",
            content=with_demo_drugs(example("M25.1")),
            headers=auth(GP_TOKEN, **{"Content-Type": "application/xml"}),
        )
        assert received.status_code == 200 and received.json()["result"] == "proposed"
        msg_id = received.json()["message_id"]
        path = f"/patients/{world.patient_id}/eresept/proposals/{msg_id}/accept"
        taken = world.write(path, {"entries": None, "reason": "samstemt"})
        assert taken.status_code == 200, taken.text
        _answered_m25_2(world)
    else:
        expected -= {"received_message", "list_proposal_decision", "outbox_message", "outbox_sent"}
    found = _samples(engine)
    samples = [sample for rows in found.values() for sample in rows]
    # Every table with a stored record (medloop.store.records.stored_records) has one here.
    assert expected <= found.keys()
    _SCRATCH.create_all(engine)

    @settings(
        max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def stored_and_loaded(data):
        model, record = data.draw(st.sampled_from(samples))
        changes = [
            (path, leaf)
            for path, leaf in _leaves(record)
            if _free_text(leaf) or isinstance(leaf, float)
        ]
        value = record
        for path, leaf in data.draw(
            st.lists(st.sampled_from(changes), max_size=4) if changes else st.just([])
        ):
            new = data.draw(texts(200)) if isinstance(leaf, str) else data.draw(positive(MAX_DOSE))
            value = _with(value, path, new)
        try:
            accepted = model.model_validate(value)
        except ValueError:
            return  # not accepted: nothing to store
        with engine.begin() as conn, batch.batched(conn):
            batch.insert(
                conn,
                scratch,
                [{"kind": model.__name__, "record": accepted.model_dump(mode="json")}],
            )
        with engine.begin() as conn:
            (row,) = conn.execute(select(scratch.c.id, scratch.c.record)).all()
            loaded = parsed(model, row.record, scratch, {"id": row.id})
            conn.execute(scratch.delete())
        assert loaded == accepted

    stored_and_loaded()
