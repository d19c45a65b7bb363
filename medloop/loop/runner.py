"""The machinery every command of the loop shares (architecture: "load list → run checks →
write change + alerts + audit in ONE transaction"), and the only place that writes.

``run_command`` opens one write transaction, locks and loads the patient, checks the caller's
expected list version (``based_on``, the HTTP ``If-Match``; the only check of it), lets the
command decide its ``Effect`` with the pure domain functions, runs decision support on the
result, refuses with ``OverrideRequired`` while an alert that needs an override has no reason,
stores everything append-only, and appends the audit record last. With an idempotency key the
work runs through ``run_once``: a retry returns the first response and has no second effect. A
refusal rolls everything back and is then audited in a transaction of its own.

``run_work`` is its one variant, for writes that are not a command on a patient's list (a
ward's set-up, registering a patient, the scheduled jobs' work on one patient): the same
transaction, lock, idempotency key, audit and metrics, kept here too. Two narrow forms of it
for what is no change to a patient's data: ``run_audited`` (CDS Hooks cards and feedback,
appended inside the audited access that shows them) and ``claim_once`` (a one-time claim such
as a CDS client token's ``jti``).

The catalogue version in force is resolved once per transaction (``medloop.loop.catalogue``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from interactions import Alert, HandledAlert, Medication, check
from interactions import Patient as CheckedPatient
from interactions.values import Moment
from medloop.domain._model import Frozen, id_text
from medloop.domain.codes import EntryStatus
from medloop.domain.dispense import Annulment, Dispense, DispenseNotFound
from medloop.domain.drug_reference import CatalogueDrug, DrugReference
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import (
    EntryVersion,
    ListChange,
    MedicationList,
    StaleListVersion,
)
from medloop.domain.oslo import local_date
from medloop.domain.patient import Patient, PatientNotFound
from medloop.domain.personnel import Actor
from medloop.domain.prescription import PrescriptionNotFound, PrescriptionVersion
from medloop.domain.reconciliation import Reconciliation
from medloop.domain.state import PatientState, StoredAlert
from medloop.loop.catalogue import Catalogue, catalogue_of
from medloop.loop.errors import IdAlreadyUsed, OverrideRequired
from medloop.ops import logs, metrics
from medloop.settings import current as current_settings
from medloop.store import access, audit, batch, idempotency, light, state_cache
from medloop.store.alerts import RaisedAlert, add_handled_alerts, append_alerts
from medloop.store.columns import LOAD_FAILURES, StoredRecordUnreadable, unreadable_behind, why
from medloop.store.db import reader, writer
from medloop.store.idempotency import IdempotencyError, request_fingerprint, run_once
from medloop.store.list_changes import append_list_change, changes_since, list_version
from medloop.store.patient_state import load_patient_state, patient_state_at
from medloop.store.patients import (
    Locked,
    lock_for_command,
    lock_patient_revision,
    national_id_of,
    update_patient_record,
)
from medloop.store.prescriptions import (
    append_annulment,
    append_dispense,
    append_prescription_versions,
    append_reconciliation,
)
from medloop.store.state_cache import StateCache, cache_for

__all__ = [
    "Call",
    "CommandResult",
    "Context",
    "DispenseNotFound",
    "Effect",
    "OverrideRequired",
    "PatientNotFound",
    "PrescriptionNotFound",
    "Screening",
    "medications_of",
    "run_command",
]

_log = logs.get_logger(__name__)

# -- what a call carries and what a command decides --------------------------------------------


class Call(Frozen):
    """Who calls, when and why, with the overrides (alert key → reason) and the idempotency key
    the call carries."""

    actor: Actor
    at: Moment
    reason: str | None = None
    overrides: dict[str, str] = {}
    override_every: str | None = None
    """A reason for every alert of this command that needs an override and has none in
    ``overrides`` (FHIR's override-reason extension without an alert key): the alerts are
    answered in the command's one run, so a retry with the same Idempotency-Key is the same
    call and gets the first answer back."""
    idempotency_key: str | None = None
    request_id: str | None = None

    @property
    def day(self) -> date:
        """The command's "today": the Oslo calendar day of ``at`` (not its UTC date, which is
        yesterday in Norway for the hour or two after Oslo's midnight)."""
        return local_date(self.at)

    def answering(self, alerts: Iterable[Alert]) -> Call:
        """This call with ``override_every`` given to each of ``alerts`` that needs one."""
        if not (self.override_every or "").strip():
            return self
        blanket = dict.fromkeys((a.key for a in alerts if a.requires_override), self.override_every)
        return self.model_copy(update={"overrides": {**blanket, **self.overrides}})


@dataclass(frozen=True)
class Screening:
    """What decision support checks: the medications and the ids of those the command
    changed (only alerts involving them are raised)."""

    medications: tuple[Medication, ...]
    proposed: tuple[str, ...]


@dataclass(frozen=True)
class Effect:
    """Everything a command decided, for the runner to check and store."""

    list_change: ListChange | None = None
    prescription_versions: tuple[PrescriptionVersion, ...] = ()
    dispenses: tuple[Dispense, ...] = ()
    annulments: tuple[tuple[UUID, Annulment], ...] = ()
    handled: Mapping[str, str] = field(default_factory=dict)
    reconciliation: Reconciliation | None = None
    screening: Screening | None = None
    response: Mapping[str, Any] = field(default_factory=dict)
    writes: tuple[Callable[[Connection], None], ...] = ()
    """Further appends of other modules' records (multidose, administration …), run in the
    command's transaction after the list's own records and before the audit record."""
    patient: Patient | None = None
    """The patient's record as the command changed it (new weight, renal function …)."""


@dataclass(frozen=True)
class Context:
    """What a command decides on: the locked patient's state, the catalogue in force, the
    call, and the connection (for reads only)."""

    conn: Connection
    state: PatientState
    catalogue: Catalogue
    call: Call


@dataclass(frozen=True)
class CommandResult:
    """The outcome of a command: the list version after it, the alerts shown, the command's
    own response fields, and whether this is the replay of an earlier identical call."""

    patient_id: UUID
    list_version: int
    alerts: tuple[Alert, ...]
    response: dict[str, Any]
    replayed: bool = False


Decide = Callable[[Context], Effect]

_new = object.__new__
"""Makes a frozen dataclass's instance whose ``__dict__`` the hot path then fills with every
field in the class's order: what its generated ``__init__`` stores, without the Python frame
and the ``object.__setattr__`` call per field (issue #20). Only for classes without
``__post_init__`` (tests/loop/test_runner_made.py compares each such value with the
constructor's)."""


def run_command(
    engine: Engine,
    action: str,
    patient_id: UUID,
    call: Call,
    decide: Decide,
    *,
    based_on: int | None,
    request: Mapping[str, Any],
) -> CommandResult:
    """Run one command in one transaction (see the module docstring). ``based_on`` is the list
    version the caller saw (``None``: the command does not depend on it); ``request`` is the
    command's JSON input, fingerprinted for the idempotency key."""
    cache = cache_for(engine)
    committed: list[tuple[int, PatientState]] = []
    try:
        # Light on PostgreSQL: SQLAlchemy's Connection only if a query needs it (store.light).
        with light.begin(writer(engine)) as conn:
            result = _run(
                conn, action, patient_id, call, decide, based_on, request, cache, committed
            )
        for revision, state in committed:
            cache.put(patient_id, revision, state)
    except DomainError as refusal:
        metrics.command_finished(action, refusal.code)
        _audit_refusal(
            engine,
            _ON_LIST + action,
            patient_id,
            call,
            refusal.code,
            refusal.detail,
            _override_refusal(patient_id, call, refusal),
        )
        raise
    except IdempotencyError as refusal:
        metrics.command_finished(action, "idempotency-key")
        _audit_refusal(engine, _ON_LIST + action, patient_id, call, "idempotency-key", str(refusal))
        raise
    except IntegrityError as error:
        conflict = _conflict(engine, patient_id, based_on)
        metrics.command_finished(action, conflict.code)
        _audit_refusal(engine, _ON_LIST + action, patient_id, call, conflict.code, conflict.detail)
        raise conflict from error
    if result.replayed:
        metrics.command_finished(action, "replayed")
    else:
        metrics.command_finished(action, "ok")
        # ``call.answering(alerts).overrides``, which is ``call.overrides`` without a blanket
        # reason (the usual call): no second call of it.
        overrides = (
            call.answering(result.alerts).overrides
            if (call.override_every or "").strip()
            else call.overrides
        )
        metrics.alerts_raised(result.alerts, overrides)
    return result


def _run(
    conn: Connection,
    action: str,
    patient_id: UUID,
    call: Call,
    decide: Decide,
    based_on: int | None,
    request: Mapping[str, Any],
    cache: StateCache,
    committed: list[tuple[int, PatientState]],
) -> CommandResult:
    computed: list[tuple[Alert, ...]] = []
    # (A ``partial``, not a closure: calling it is no Python frame of its own.)
    compute = partial(
        _decide_and_store,
        conn,
        action,
        patient_id,
        call,
        decide,
        based_on,
        cache,
        committed,
        computed,
    )

    # The appends go out together with the audit record (PostgreSQL: one round trip).
    with batch.batched(conn):
        # (``_once`` stays the one caller of ``run_once`` for both runners:
        # tests/loop/test_loop_write_path.py.)
        response, replayed = _once(
            conn,
            call,
            action,
            patient_id,
            compute,
            {
                "action": action,
                "patient_id": id_text(patient_id),
                "based_on": based_on,
                "overrides": call.overrides,
                **({"override_every": call.override_every} if call.override_every else {}),
                # (A dict the caller made is not copied: nothing here changes it.)
                "request": request if type(request) is dict else dict(request),
            },
        )
        national_id = (
            str(committed[-1][1].patient.national_id)
            if committed
            else national_id_of(conn, patient_id)
        )
        # The audit record is the transaction's last statement: the COMMIT goes in its round
        # trip (PostgreSQL), and ``run_command``'s commit finds the transaction over.
        batch.commit_with_next_row(conn)
        _audit(conn, action, national_id, call, response, replayed)
    # ``CommandResult(…)`` without the frozen dataclass's ``__init__`` (a ``object.__setattr__``
    # a field): the same fields in the same order (issue #20; tests/loop/test_runner_made.py).
    result = _new(CommandResult)
    # This run's alerts as decision support made them (validated ``Alert`` values, whose dumps
    # are ``response["alerts"]``); a replay's are read back from the stored response.
    if computed and not replayed:
        list_version, alerts = response["list_version"], computed[-1]
    else:
        list_version, alerts = _replayed(response, call, action)
    result.__dict__.update(
        patient_id=patient_id,
        list_version=list_version,
        alerts=alerts,
        response=response,
        replayed=replayed,
    )
    return result


def _replayed(
    response: Mapping[str, Any], call: Call, action: str
) -> tuple[int, tuple[Alert, ...]]:
    """The list version and the alerts of a response stored with an idempotency key, loaded
    again: a stored response that no longer loads is named by its key's row (never its value),
    not an anonymous failure."""
    try:
        list_version = response["list_version"]
        if type(list_version) is not int or list_version < 0:
            raise ValueError("list_version: not a list version")
        return list_version, tuple(Alert.model_validate(a) for a in response["alerts"])
    except LOAD_FAILURES as error:
        raise _unreadable_replay(_scope(call, action), call.idempotency_key, error) from None


def _loads_again(model: type[BaseModel], response: Any, scope: str, key: Any) -> None:
    """``response``, read back from the idempotency key ``(scope, key)``, loads as ``model``
    (what the work answers); else the key's row is named. The answer stays as stored: a
    retry gets the first response back."""
    try:
        model.model_validate(response)
    except LOAD_FAILURES as error:
        raise _unreadable_replay(scope, key, error) from None


def _unreadable_replay(scope: str, key: Any, error: Exception) -> StoredRecordUnreadable:
    """The idempotency key ``(scope, key)`` named as a stored record that no longer loads (its
    row's key, what is wrong; never the stored value)."""
    named = {"scope": scope, "key": key}
    return StoredRecordUnreadable(idempotency.idempotency_key.name, named, why(error))


def _scope(call: Call, action: str) -> str:
    """The idempotency scope of ``call``'s keys for ``action``: its organisation, its author
    and the action."""
    return f"{call.actor.organisation.id}/{call.actor.personnel.hpr_number}/{action}"


def _once(
    conn: Connection,
    call: Call,
    action: str,
    patient_id: UUID | None,
    compute: Callable[[], dict[str, Any]],
    fingerprinted: Mapping[str, Any],
) -> tuple[dict[str, Any], bool]:
    """``compute()`` once per idempotency key of the caller and action (a retry with the same
    ``fingerprinted`` request gets the first response back); at once without a key. No
    savepoint: a refusal rolls the whole transaction back."""
    if call.idempotency_key is None:
        return compute(), False
    result = run_once(
        conn,
        _scope(call, action),
        call.idempotency_key,
        request_fingerprint(fingerprinted),  # (both callers' own new dict: not copied)
        compute,
        savepoint=False,
        patient_id=patient_id,
    )
    if result.replayed and type(result.response) is not dict:
        not_object = TypeError("the response: not a JSON object")
        raise _unreadable_replay(_scope(call, action), call.idempotency_key, not_object)
    return dict(result.response), result.replayed


def _locked(
    conn: Connection, patient_id: UUID, cache: StateCache, *, bump: bool
) -> tuple[Locked | None, PatientState | None]:
    """The patient locked to the end of the transaction, and its state (from the cache when
    it holds the state of the revision before this transaction's work, else read).

    ``bump``: a command bumps the revision (which locks the row), so the state cached for the
    revision before it is current. Without: the row is locked as it is (system and ward work
    that leaves the list and the patient's record alone, so states cached in other processes
    stay valid) and the state cached for the current revision is current."""
    if bump:
        locked = lock_for_command(conn, patient_id)
    else:
        found = lock_patient_revision(conn, patient_id)
        locked = None if found is None else Locked(found[0], found[1], None)
    if locked is None:
        return None, None
    before = locked.revision - 1 if bump else locked.revision
    state = cache.get(patient_id, before)
    if bump:
        metrics.state_cache_lookup(state is not None)
    if state is None:
        state = patient_state_at(conn, locked.patient(patient_id), before)
    elif state_cache.VERIFY:
        fresh = load_patient_state(conn, locked.patient(patient_id))
        state_cache.verified(state, fresh)
    return locked, state


def _decide_and_store(
    conn: Connection,
    action: str,
    patient_id: UUID,
    call: Call,
    decide: Decide,
    based_on: int | None,
    cache: StateCache,
    committed: list[tuple[int, PatientState]],
    computed: list[tuple[Alert, ...]],
) -> dict[str, Any]:
    locked, state = _locked(conn, patient_id, cache, bump=True)
    if locked is None or state is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
    revision = locked.revision
    current = state.medication_list.version
    if based_on is not None and based_on != current:
        raise _stale(conn, patient_id, based_on, current)
    catalogue = catalogue_of(conn, locked.catalogue)
    context = _new(Context)  # ``Context(conn, state, catalogue, call)``, as ``CommandResult``
    context.__dict__.update(conn=conn, state=state, catalogue=catalogue, call=call)
    try:
        effect = decide(context)
    except LOAD_FAILURES as error:
        raise _unreadable_or(error, conn, patient_id) from None
    alerts = _screen(catalogue, state, effect.screening, call.day)
    # (Each step below that has nothing to do without alerts, a blanket reason or handled
    # alerts is skipped then, as most commands raise none: a comprehension is a Python call.)
    if (call.override_every or "").strip():  # ``answering`` returns the call itself else
        call = call.answering(alerts)
    if alerts:
        _refuse_without_override(alerts, call.overrides)
    version = current if effect.list_change is None else effect.list_change.list_version
    # Each alert dumped once, for the response and for its stored row (the same JSON): its
    # serialiser's ``to_python``, what ``model_dump(mode="json")`` calls with the same defaults,
    # without that Python frame (issue #20; ``tests/loop/test_prescribe_built.py``).
    dumped = [a.__pydantic_serializer__.to_python(a, mode="json") for a in alerts] if alerts else []
    handled, stored_alerts = _store(
        conn, action, patient_id, call, effect, alerts, dumped, version, state
    )
    after = state.advanced(
        list_change=effect.list_change,
        prescription_versions=effect.prescription_versions,
        dispenses=effect.dispenses,
        annulments=effect.annulments,
        handled=[
            HandledAlert(
                key=key,
                handled_by=call.actor.personnel.hpr_number,
                handled_at=call.at,
                reason=reason,
            )
            for key, reason in handled.items()
        ]
        if handled
        else [],
        recorded_at=call.at,
        alerts=stored_alerts,
        patient=effect.patient,
    )
    if effect.list_change is not None and locked.ever_admitted:
        _with_plan(conn, after, call.at, effect.list_change.entry_versions)
    committed.append((revision, after))
    computed.append(tuple(alerts))
    if dumped and call.overrides:
        keys = {a["key"] for a in dumped}
        overridden = sorted(k for k in call.overrides if k in keys)
    else:  # no alert's key is in it
        overridden = []
    return {
        "patient_id": id_text(patient_id),
        "list_version": version,
        "catalogue_version": catalogue.version,
        "alerts": dumped,
        "overridden": overridden,
        **effect.response,
    }


def _with_plan(
    conn: Connection, after: PatientState, at: datetime, changed: Sequence[EntryVersion]
) -> None:
    """The administration plan of the entries ``changed`` by a command, for a patient on a
    ward, brought up to date with the list in the command's transaction (a refusal rolls it
    back with the rest): the ward chart never shows a stale plan. Only for patients ever
    admitted (``lock_for_command`` says so in the lock's own statement), so other patients pay
    no query for it."""
    # Imported here: the administration commands are built on this module.
    from medloop.loop.administration.planning import plan_after_change

    plan_after_change(
        conn,
        after,
        at,
        {v.entry_id for v in changed},
        new_entries=all(v.version == 1 for v in changed),
    )


def _store(
    conn: Connection,
    action: str,
    patient_id: UUID,
    call: Call,
    effect: Effect,
    alerts: Sequence[Alert],
    dumped: Sequence[dict[str, Any]],
    version: int,
    state: PatientState,
) -> tuple[dict[str, str], tuple[StoredAlert, ...]]:
    """Append everything; returns the alerts newly handled for the patient (key → reason) and
    the alerts stored."""
    if effect.list_change is not None:
        append_list_change(conn, effect.list_change)
    append_prescription_versions(conn, patient_id, effect.prescription_versions)
    for record in effect.dispenses:
        append_dispense(conn, patient_id, record, call.at)
    for dispense_id, annulment in effect.annulments:
        append_annulment(conn, patient_id, dispense_id, annulment)
    if effect.reconciliation is not None:
        append_reconciliation(conn, effect.reconciliation)
    for write in effect.writes:
        write(conn)
    if effect.patient is not None:
        update_patient_record(conn, effect.patient)
    if alerts:
        raised = [
            RaisedAlert(
                alert=a,
                override_by=call.actor if record["key"] in call.overrides else None,
                override_reason=call.overrides.get(record["key"]),
                record=record,
            )
            for a, record in zip(alerts, dumped, strict=True)
        ]
        stored = append_alerts(conn, patient_id, action, version, call.at, raised)
        # An override is the handling of that alert for this patient: it does not re-alert.
        handled = {r.alert.key: r.override_reason for r in raised if r.override_reason is not None}
        handled.update(effect.handled)
    else:  # ``append_alerts`` of none stores nothing and returns ``()``
        stored = ()
        handled = dict(effect.handled)
    if not handled:
        return {}, stored
    known = {h.key for h in state.handled}
    return add_handled_alerts(conn, patient_id, call.actor, call.at, handled, known), stored


# -- the variant for work beside a patient's list -----------------------------------------------


@dataclass(frozen=True)
class Note:
    """An audit record system work asks for (``occurred_at``: when it happened, if not now)."""

    action: str
    detail: Mapping[str, Any]
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Done:
    """What a piece of work did: its response and, for system work, the audit records of what
    it changed (none when it changed nothing). ``patient`` is the national id a person's work
    is about when no patient is locked (a registration)."""

    response: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[Note, ...] = ()
    patient: str | None = None


@dataclass(frozen=True)
class WorkContext:
    """What work runs in: the write transaction, the caller (``None``: the system), and the
    locked patient's state when the work is on one patient."""

    conn: Connection
    call: Call | None
    state: PatientState | None


Work = Callable[[WorkContext], Done]


def skipping_unreadable(
    job: str,
    patient_id: UUID,
    run: Callable[[], Any],
    skipped: list[str],
    on_skip: Callable[[StoredRecordUnreadable], Any] | None = None,
) -> Any:
    """``run()``, one patient's part of a job over many patients; ``None`` when a stored record
    of the patient does not load (``StoredRecordUnreadable``, which rolled the patient's work
    back): the patient's id is added to ``skipped``, a warning names the record (table and
    key, never the value) and ``on_skip`` gets the error, so one patient's unreadable record
    holds up no other patient's work. The job's next run tries the patient again."""
    try:
        return run()
    except StoredRecordUnreadable as unreadable:
        skip_patient(job, patient_id, unreadable, skipped)
        if on_skip is not None:
            on_skip(unreadable)
        return None


def skip_patient(
    job: str, patient_id: UUID | str, unreadable: StoredRecordUnreadable, skipped: list[str]
) -> None:
    """Leave the patient out of ``job``'s run: its id added to ``skipped``, and a warning
    naming the record that does not load (table and key, never the value)."""
    skipped.append(str(patient_id))
    _log.warning(
        "job skipped a patient: a stored record cannot be read",
        job=job,
        patient_id=str(patient_id),
        table=unreadable.table,
        key=unreadable.key,
        reason=unreadable.reason,
    )


def with_skipped(result: dict[str, Any], skipped: list[str]) -> dict[str, Any]:
    """A job's ``result``, with the patients it skipped for an unreadable record when there
    were any (``skipped_unreadable``: their ids, sorted)."""
    return {**result, "skipped_unreadable": sorted(skipped)} if skipped else result


def run_work(
    engine: Engine,
    action: str,
    work: Work,
    *,
    call: Call | None = None,
    patient_id: UUID | None = None,
    request: Mapping[str, Any] | None = None,
    replayed_as: type[BaseModel] | None = None,
) -> Mapping[str, Any]:
    """The one variant of ``run_command``, for writes that are not a command on a patient's list:
    a ward's set-up, registering a patient, and the scheduled jobs' work on one patient
    (planning doses, marking missed doses, flagging a multidose deadline). One write
    transaction, like a command: ``work`` appends through the store on ``ctx.conn``; the runner
    owns the transaction, the lock, the idempotency key, the audit and the metrics.

    - ``patient_id``: the patient's row is locked (without bumping its revision: such work
      leaves the list and the patient's record alone) and ``ctx.state`` is the patient's
      state; ``PatientNotFound`` when there is no such patient.
    - ``call`` (a person's work, audited as ``action`` with the response as detail): the
      idempotency key, the command metrics, and a refusal audited in a transaction of its own
      (detail: the code and ``request``). ``call=None`` is the system: the work's own
      ``Done.notes`` are audited (actor ``system``); jobs count their runs themselves.
    - ``replayed_as``: the model of the work's response; a retry's response, read back from
      its idempotency key, must load as it, and one that no longer loads is named by the key's
      row (``StoredRecordUnreadable``, never the value) rather than handed to the caller."""
    cache = cache_for(engine)
    committed: list[tuple[int, PatientState]] = []
    try:
        with writer(engine).begin() as conn:
            response, replayed = _work(
                conn, action, work, call, patient_id, request, cache, committed, replayed_as
            )
        for revision, state in committed:
            cache.put(patient_id, revision, state)  # type: ignore[arg-type]
    except (DomainError, IdempotencyError) as refusal:
        if call is None:
            raise
        code = refusal.code if isinstance(refusal, DomainError) else "idempotency-key"
        why = refusal.detail if isinstance(refusal, DomainError) else str(refusal)
        metrics.command_finished(action, code)
        _audit_refusal(
            engine,
            action,
            patient_id,
            call,
            code,
            why,
            {"code": code, "detail": why, **dict(request or {})},
        )
        raise
    if call is not None:
        metrics.command_finished(action, "replayed" if replayed else "ok")
    return response


def _work(
    conn: Connection,
    action: str,
    work: Work,
    call: Call | None,
    patient_id: UUID | None,
    request: Mapping[str, Any] | None,
    cache: StateCache,
    committed: list[tuple[int, PatientState]],
    replayed_as: type[BaseModel] | None,
) -> tuple[dict[str, Any], bool]:
    state = None
    if patient_id is not None:
        locked, state = _locked(conn, patient_id, cache, bump=False)
        if locked is None or state is None:
            raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)
        committed.append((locked.revision, state))
        audit.note_patient(conn, str(state.patient.national_id), patient_id)
    national_id = None if state is None else str(state.patient.national_id)
    ctx = WorkContext(conn, call, state)
    if patient_id is not None:  # a stored record the work loads itself is named
        work = partial(_named_failures, work, conn, patient_id)
    if call is None:
        done = work(ctx)
        for note in done.notes:
            audit.append(
                conn,
                _event(
                    note.action, None, national_id, audit.Outcome.OK, note.detail, note.occurred_at
                ),
            )
        return dict(done.response), False
    seen: list[Done] = []

    def compute() -> dict[str, Any]:
        seen.append(work(ctx))
        return dict(seen[-1].response)

    response, replayed = _once(
        conn, call, action, patient_id, compute, {"action": action, "request": dict(request or {})}
    )
    if replayed and replayed_as is not None:
        _loads_again(replayed_as, response, _scope(call, action), call.idempotency_key)
    if seen and seen[-1].patient is not None:
        national_id = seen[-1].patient
    audit.append(
        conn,
        _event(action, call, national_id, audit.Outcome.OK, {**response, "replayed": replayed}),
    )
    return response, replayed


# -- the variants for what is no change to a patient's list ------------------------------------


@dataclass(frozen=True)
class Once:
    """An idempotency key: the caller's ``scope``, the ``key`` and the request's
    ``fingerprint`` (``store.idempotency.request_fingerprint``)."""

    scope: str
    key: str
    fingerprint: str


def run_audited(
    engine: Engine,
    who: access.Accessor,
    patient_id: UUID,
    action: str,
    work: Callable[[Connection], Mapping[str, Any]],
    *,
    once: Once | None = None,
    replayed_as: type[BaseModel] | None = None,
) -> Mapping[str, Any]:
    """The variant for decision support shown to a user about a patient (CDS Hooks cards and
    the feedback on them): an audited access to the patient (``store.access.audited``: the
    transaction begins with the patient's access row and ends with the audit record of
    ``action``), in which ``work`` appends what it issued; with ``once`` the first answer for
    the key is returned and nothing is appended again (in a savepoint: a failing ``work``
    frees the key), once it loads as ``replayed_as`` (else the key's row is named, as
    ``run_work`` names it). Not a command: the patient's list and revision are left alone."""

    def body(conn: Connection) -> Mapping[str, Any]:
        if once is None:
            return work(conn)
        result = run_once(
            conn, once.scope, once.key, once.fingerprint, lambda: work(conn), patient_id=patient_id
        )
        if result.replayed and replayed_as is not None:
            _loads_again(replayed_as, result.response, once.scope, once.key)
        return result.response

    return access.audited(engine, who, patient_id, action, body)


def claim_once(engine: Engine, once: Once, *, forget_before: datetime | None = None) -> bool:
    """The variant for a one-time claim that is no patient's data (a CDS client token's
    ``jti``): in one write transaction through ``run_work`` (the system's, unaudited: it
    changes nothing but the claim), the scope's claims made before ``forget_before`` are
    deleted and ``once.key`` is claimed. ``True`` the first time, ``False`` when the key was
    claimed before (a replay)."""

    def work(ctx: WorkContext) -> Done:
        if forget_before is not None:
            idempotency.forget_before(ctx.conn, once.scope, forget_before)
        claimed = run_once(ctx.conn, once.scope, once.key, once.fingerprint, lambda: {})
        return Done(response={"replayed": claimed.replayed})

    try:
        return not run_work(engine, "claim", work)["replayed"]
    except IdempotencyError:
        return False


# -- decision support --------------------------------------------------------------------------


def _unreadable_or(error: Exception, conn: Connection, patient_id: UUID) -> Exception:
    """For a load that failed in a command's or work's own code (a stored record read as it
    was stored, ``ctx.state.alerts``): the error naming the first of the patient's stored
    records that does not load, or ``error`` itself when a refusal (``DomainError``) or when
    every record loads. Looked for only once something has failed."""
    if isinstance(error, DomainError):
        return error
    return unreadable_behind(conn, patient_id) or error


def _named_failures(work: Work, conn: Connection, patient_id: UUID, ctx: WorkContext) -> Done:
    try:
        return work(ctx)
    except LOAD_FAILURES as error:
        raise _unreadable_or(error, conn, patient_id) from None


def _screen(
    catalogue: Catalogue, state: PatientState, screening: Screening | None, today: date
) -> list[Alert]:
    if screening is None or not screening.proposed:
        return []
    # ``_checked``'s memory read here (a Python call saved a command).
    patient = state.patient
    known = _CHECKED.get(id(patient))
    checked = (
        known[2]
        if known is not None and known[0] is patient and known[1] == today
        else _checked(patient, today)
    )
    return check(
        catalogue.knowledge,
        screening.medications,
        checked,
        handled=state.handled,
        proposed=screening.proposed,
        today=today,
        # ``settings.renal_max_age_days()`` is this (its frame saved a command).
        renal_max_age_days=current_settings().renal_max_age_days,
    )


def _checked(patient: Patient, today: date) -> CheckedPatient:
    """``patient.for_checks(today)``, kept per patient object and day (a patient's record is
    the same frozen object from command to command while it does not change)."""
    known = _CHECKED.get(id(patient))
    if known is not None and known[0] is patient and known[1] == today:
        return known[2]
    found = patient.for_checks(today)
    if len(_CHECKED) >= _CHECKED_KEPT:
        _CHECKED.clear()
    # The patient is kept beside its id, so the id cannot name another object meanwhile.
    _CHECKED[id(patient)] = (patient, today, found)
    return found


_CHECKED: dict[int, tuple[Patient, date, CheckedPatient]] = {}
_CHECKED_KEPT = 8_192


def _refuse_without_override(alerts: Iterable[Alert], overrides: Mapping[str, str]) -> None:
    missing = [
        a for a in alerts if a.requires_override and not (overrides.get(a.key) or "").strip()
    ]
    if missing:
        raise OverrideRequired(missing)


def medications_of(
    medication_list: MedicationList, replace: Mapping[UUID, CatalogueDrug] | None = None
) -> list[Medication]:
    """The list's catalogue entries as decision support sees them: live entries, and
    discontinued ones up to their discontinuation (so only entries that overlap in time pair);
    entered-in-error entries and non-catalogue items never. ``replace`` swaps an entry's drug
    (the package actually dispensed, say)."""
    found = []
    for entry in medication_list.entries:
        if replace and entry.id in replace:
            medication = _medication(entry, replace[entry.id])
        else:
            known = _MEDICATIONS.get(id(entry))
            if known is not None and known[0] is entry:
                medication = known[1]
            else:
                medication = _medication(entry, entry.drug)
                if len(_MEDICATIONS) >= _MEDICATIONS_KEPT:
                    _MEDICATIONS.clear()
                # The entry is kept beside its id, so the id cannot name another object.
                _MEDICATIONS[id(entry)] = (entry, medication)
        if medication is not None:
            found.append(medication)
    return found


_MEDICATIONS: dict[int, tuple[ListEntry, Medication | None]] = {}
"""Each entry's ``Medication`` (``None``: none), by the entry object: a patient's entries are
the same frozen objects from command to command (``MedicationList.apply`` and the state cache
carry them on), and every command on the list screens them all again (issue #20)."""
_MEDICATIONS_KEPT = 8_192


def _medication(entry: ListEntry, drug: DrugReference) -> Medication | None:
    if entry.status is EntryStatus.ENTERED_IN_ERROR or not isinstance(drug, CatalogueDrug):
        return None
    stop = entry.stop
    if entry.discontinuation is not None:
        ended = local_date(entry.discontinuation.at)
        stop = ended if stop is None else min(stop, ended)
        if stop < entry.start:
            return None
    return Medication(
        id=id_text(entry.id),
        drug=drug.resolved,
        dosage=entry.dosage,
        start=entry.start,
        stop=stop,
        indication=entry.indication,
    )


# -- conflicts and audit -----------------------------------------------------------------------


def _stale(conn: Connection, patient_id: UUID, based_on: int, current: int) -> StaleListVersion:
    return StaleListVersion(
        f"the change is based on list version {based_on}, but the list is at version {current}",
        based_on=based_on,
        current_version=current,
        changes_since=changes_since(conn, patient_id, based_on),
    )


def _conflict(
    engine: Engine, patient_id: UUID, based_on: int | None
) -> StaleListVersion | IdAlreadyUsed:
    """A write refused by a unique key: a lost race on the list version (what the list looks
    like now), or else an entry, prescription or dispense id that is already taken."""
    with reader(engine).connect() as conn:
        current = list_version(conn, patient_id)
        if based_on is not None and based_on != current:
            return _stale(conn, patient_id, based_on, current)
    return IdAlreadyUsed(
        "an id in the request (entry, prescription or dispense) is already used",
        patient_id=patient_id,
    )


def _audit(
    conn: Connection,
    action: str,
    national_id: str | None,
    call: Call,
    response: Mapping[str, Any],
    replayed: bool,
) -> None:
    # The response's keys in its order but ``alerts``, which goes last as its keys (taken
    # out and put back: no comprehension's call).
    detail = dict(response)
    alerts = detail.pop("alerts")
    detail["alerts"] = [a["key"] for a in alerts] if alerts else []
    detail["replayed"] = replayed
    # ``_event(…)`` written out (a Python call saved a command; ``detail`` is this call's own),
    # and the ``AuditEvent`` made without its frozen dataclass's ``__init__``: every field, in
    # the class's order (tests/loop/test_runner_made.py compares it with the constructor's).
    event = _new(_AuditEvent)
    personnel = call.actor.personnel
    event.__dict__.update(
        actor=personnel.hpr_number,
        actor_role=personnel.role.value,
        action=_ON_LIST + action,
        outcome=_OK,
        organisation=call.actor.organisation.id,
        patient=national_id,
        request_id=call.request_id,
        reason=call.reason,
        detail=detail,
        occurred_at=None,
        patient_id=None,
    )
    audit.append(conn, event)


_AuditEvent = audit.AuditEvent
_OK = audit.Outcome.OK

_CONFLICTS = frozenset({StaleListVersion.code, IdAlreadyUsed.code, "idempotency-key"})


_ON_LIST = "medication-list."
"""The audit action of a command on a patient's list is ``medication-list.<command>``."""


def _override_refusal(patient_id: UUID, call: Call, refusal: DomainError) -> dict[str, Any] | None:
    """The audited detail of a refusal for want of an override: besides the code and text, the
    command's moment (``at``) and the alerts that needed an override (key, kind, severity,
    summary) — what the prescriber report counts as heeded when no override follows. ``None``
    for any other refusal (the ordinary detail)."""
    if not isinstance(refusal, OverrideRequired):
        return None
    return {
        "patient_id": str(patient_id),
        "code": refusal.code,
        "detail": refusal.detail,
        "at": call.at.isoformat(),
        "alerts": [
            {
                "key": a.key,
                "kind": a.kind.value,
                "severity": a.severity.value,
                "summary": a.summary,
            }
            for a in refusal.alerts
        ],
    }


def _audit_refusal(
    engine: Engine,
    action: str,
    patient_id: UUID | None,
    call: Call,
    code: str,
    why: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """The refusal of a command (``action`` as audited), in a transaction of its own."""
    outcome = audit.Outcome.CONFLICT if code in _CONFLICTS else audit.Outcome.REFUSED
    if detail is None:
        detail = {"patient_id": str(patient_id), "code": code, "detail": why}
    with writer(engine).begin() as conn:
        national_id = None if patient_id is None else national_id_of(conn, patient_id)
        audit.append(conn, _event(action, call, national_id, outcome, detail))


SYSTEM = "system"
"""The actor and role of the audit records of system work (the scheduled jobs)."""


def _event(
    action: str,
    call: Call | None,
    national_id: str | None,
    outcome: audit.Outcome,
    detail: Mapping[str, Any],
    occurred_at: datetime | None = None,
) -> audit.AuditEvent:
    if call is None:
        return audit.AuditEvent(
            actor=SYSTEM,
            actor_role=SYSTEM,
            patient=national_id,
            action=action,
            outcome=outcome,
            detail=dict(detail),
            occurred_at=occurred_at,
        )
    return audit.AuditEvent(
        actor=call.actor.personnel.hpr_number,
        actor_role=call.actor.personnel.role.value,
        organisation=call.actor.organisation.id,
        patient=national_id,
        action=action,
        outcome=outcome,
        request_id=call.request_id,
        reason=call.reason,
        detail=dict(detail),
        occurred_at=occurred_at,
    )
