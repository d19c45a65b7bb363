"""Multidose commands and queries: responsibility (doctor and pharmacy), flagging entries for
multidose, packing periods and urgent packs, taking the production plan, reconciling what the
pharmacy packed (with tasks for the prescriber), pharmacy proposals and the prescriber's
decision on them, and ``flag_deadlines`` for the scheduler.

Every command runs through ``runner.run_command`` (one transaction, audit, idempotency key);
the decisions are ``medloop.domain.multidose``'s and the records go to
``medloop.store.multidose`` through ``Effect.writes``. Accepting a proposal runs the loop's own
prescribe / change-dosage / discontinue / renew decision and records the decision in the same
transaction, so a proposal is accepted exactly when its change is on the list. A decision on a
proposal that came in an M25.2 also stores its answer, the updated M25.1, in the outbox
(``medloop.store.outbox``) in that transaction: an answer exists exactly when its decision does.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from interactions.dosage import Dosage
from interactions.values import Day, Moment, PeriodDays
from medloop import queries
from medloop.domain._model import Frozen
from medloop.domain.entry import Discontinuation, EntryEdit
from medloop.domain.medication_list import EditEntry
from medloop.domain.multidose.errors import (
    InvalidProposal,
    PackingPeriodNotFound,
    PackReconciliationNotFound,
    ProposalNotFound,
    UrgentPackNotFound,
)
from medloop.domain.multidose.periods import (
    PackingPeriod,
    UrgentPack,
    open_period,
    order_urgent_pack,
)
from medloop.domain.multidose.plan import ProductionPlan, production_plan, touches_multidose
from medloop.domain.multidose.proposals import (
    Proposal,
    ProposalDecision,
    ProposalKind,
    answer_due,
    decide_proposal,
    propose,
)
from medloop.domain.multidose.reconciliation import (
    PackedProduct,
    PackReconciliation,
    PackReport,
    reconcile_report,
)
from medloop.domain.multidose.responsibility import (
    Responsibility,
    assign_responsibility,
    require_pharmacist_of,
    require_prescriber,
    responsibility_on,
)
from medloop.domain.multidose.rules import PackingRules
from medloop.domain.multidose.tasks import MultidoseTask, resolve_task, tasks_for
from medloop.domain.oslo import local_date
from medloop.domain.patient import Patient, PatientNotFound
from medloop.domain.personnel import Actor, Organisation
from medloop.domain.prescription import PrescriptionNotFound
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import change_dosage_decision, discontinue_decision
from medloop.loop.prescribe import (
    PrescribeOrder,
    RenewOrder,
    prescribe_decision,
    renew_decision,
)
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Decide,
    Done,
    Effect,
    Note,
    WorkContext,
    run_command,
    run_work,
    skipping_unreadable,
)
from medloop.store import multidose as store
from medloop.store import outbox
from medloop.store.columns import StoredRecordUnreadable
from medloop.store.db import reader
from medloop.store.patients import national_id_of, read_patient

Write = Callable[[Connection], None]


RULES_FILE = Path(__file__).resolve().parents[1] / "rules" / "multidose.json"


def load_packing_rules(path: Path | None = None) -> PackingRules:
    """The packing rules from ``path`` (default ``medloop/rules/multidose.json``), read once
    per file."""
    return _load_rules(path or RULES_FILE)


@functools.lru_cache(maxsize=8)
def _load_rules(path: Path) -> PackingRules:
    return PackingRules.model_validate(json.loads(path.read_text(encoding="utf-8")))


def _rules(rules: PackingRules | None) -> PackingRules:
    return rules if rules is not None else load_packing_rules()


def _run(
    engine: Engine,
    action: str,
    patient_id: UUID,
    call: Call,
    decide: Decide,
    request: dict[str, Any],
    based_on: int | None = None,
) -> CommandResult:
    return run_command(engine, action, patient_id, call, decide, based_on=based_on, request=request)


# -- responsibility ----------------------------------------------------------------------------


class ResponsibilityOrder(Frozen):
    """A new multidose doctor and/or pharmacy (what is left out is kept) from ``valid_from``."""

    doctor: Actor | None = None
    pharmacy: Organisation | None = None
    valid_from: Day
    valid_to: Day | None = None


def set_responsibility(
    engine: Engine, patient_id: UUID, order: ResponsibilityOrder, call: Call
) -> CommandResult:
    """Register or change the patient's multidose doctor and pharmacy (a new version)."""

    def decide(ctx: Context) -> Effect:
        current = store.current_responsibility(ctx.conn, patient_id)
        record = assign_responsibility(
            current,
            patient_id,
            doctor=order.doctor,
            pharmacy=order.pharmacy,
            valid_from=order.valid_from,
            valid_to=order.valid_to,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        return Effect(
            writes=(lambda conn: store.append_responsibility(conn, record),),
            response={
                "responsibility_version": record.version,
                "doctor": record.doctor.personnel.hpr_number,
                "pharmacy": record.pharmacy.id,
            },
        )

    return _run(
        engine, "multidose-responsibility", patient_id, call, decide, order.model_dump(mode="json")
    )


def change_multidose_doctor(
    engine: Engine, patient_id: UUID, doctor: Actor, call: Call, *, valid_from: date
) -> CommandResult:
    return set_responsibility(
        engine, patient_id, ResponsibilityOrder(doctor=doctor, valid_from=valid_from), call
    )


def change_multidose_pharmacy(
    engine: Engine, patient_id: UUID, pharmacy: Organisation, call: Call, *, valid_from: date
) -> CommandResult:
    return set_responsibility(
        engine, patient_id, ResponsibilityOrder(pharmacy=pharmacy, valid_from=valid_from), call
    )


# -- the list: which entries are packed --------------------------------------------------------


def set_multidose(
    engine: Engine,
    patient_id: UUID,
    entry_id: UUID,
    multidose: bool,
    call: Call,
    *,
    based_on: int,
) -> CommandResult:
    """Flag an entry as packed in multidose (or given outside it); a list change, so only a
    prescriber makes it."""

    def decide(ctx: Context) -> Effect:
        require_prescriber(call.actor)
        _, change = ctx.state.medication_list.apply(
            EditEntry(
                author=call.actor,
                at=call.at,
                reason=call.reason,
                entry_id=entry_id,
                edit=EntryEdit(multidose=multidose),
            )
        )
        return Effect(list_change=change, response={"entry_id": str(entry_id)})

    return _run(
        engine,
        "multidose-flag",
        patient_id,
        call,
        decide,
        {"entry_id": str(entry_id), "multidose": multidose},
        based_on=based_on,
    )


# -- packing periods ---------------------------------------------------------------------------


class PeriodOrder(Frozen):
    """A packing period: its first dosing day, its order deadline and its length in days
    (default: the rules' period)."""

    period_id: UUID
    first_day: Day
    order_deadline: Moment
    days: PeriodDays | None = None


def open_packing_period(
    engine: Engine,
    patient_id: UUID,
    order: PeriodOrder,
    call: Call,
    rules: PackingRules | None = None,
) -> CommandResult:
    """The multidose pharmacy opens a packing period with this patient's order deadline."""

    def decide(ctx: Context) -> Effect:
        record = open_period(
            store.periods_of(ctx.conn, patient_id),
            _responsible(ctx.conn, patient_id, order.first_day),
            _rules(rules),
            period_id=order.period_id,
            patient_id=patient_id,
            first_day=order.first_day,
            order_deadline=order.order_deadline,
            days=order.days,
            at=call.at,
            by=call.actor,
        )
        return Effect(
            writes=(lambda conn: store.append_period(conn, record),),
            response={
                "period_id": str(record.id),
                "first_day": record.first_day.isoformat(),
                "last_day": record.last_day.isoformat(),
            },
        )

    return _run(
        engine, "multidose-open-period", patient_id, call, decide, order.model_dump(mode="json")
    )


def _responsible(conn: Connection, patient_id: UUID, on: date) -> Responsibility | None:
    return responsibility_on(store.responsibility_history(conn, patient_id), on)


def _period(conn: Connection, patient_id: UUID, period_id: UUID) -> PackingPeriod:
    found = store.find_period(conn, patient_id, period_id)
    if found is None or found.patient_id != patient_id:
        raise PackingPeriodNotFound(
            f"patient {patient_id} has no packing period {period_id}", period_id=period_id
        )
    return found


def order_urgent(
    engine: Engine, patient_id: UUID, period_id: UUID, pack_id: UUID, call: Call
) -> CommandResult:
    """Order an urgent pack (``hastepakk``, ``call.reason`` says why): the list as it stands
    now is packed for the rest of the period."""

    def decide(ctx: Context) -> Effect:
        period = _period(ctx.conn, patient_id, period_id)
        record = order_urgent_pack(
            period,
            _responsible(ctx.conn, patient_id, period.first_day),
            pack_id=pack_id,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        return Effect(
            writes=(lambda conn: store.append_urgent_pack(conn, patient_id, record),),
            response={"period_id": str(period_id), "urgent_pack_id": str(pack_id)},
        )

    return _run(
        engine,
        "multidose-urgent-pack",
        patient_id,
        call,
        decide,
        {"period_id": str(period_id), "pack_id": str(pack_id)},
    )


def take_production_plan(
    engine: Engine,
    patient_id: UUID,
    period_id: UUID,
    call: Call,
    rules: PackingRules | None = None,
) -> CommandResult:
    """The multidose pharmacy takes the period's production plan (read it with ``plan_of``);
    the list version it came from is recorded, so ``flag_deadlines`` knows which changes the
    plan does not have."""

    def decide(ctx: Context) -> Effect:
        period = _period(ctx.conn, patient_id, period_id)
        require_pharmacist_of(
            _responsible(ctx.conn, patient_id, period.first_day), call.actor, period.first_day
        )
        plan = production_plan(
            period,
            ctx.state.changes,
            store.urgent_packs_of(ctx.conn, patient_id, [period_id]),
            _rules(rules),
        )
        taken = store.plan_taken_version(ctx.conn, patient_id, period_id)
        writes: tuple[Write, ...] = ()
        if taken is None or taken < plan.list_version:
            writes = (
                lambda conn: store.append_plan_taken(
                    conn, patient_id, period_id, plan.list_version, call.at, call.actor
                ),
            )
        return Effect(
            writes=writes,
            response={
                "period_id": str(period_id),
                "plan_list_version": plan.list_version,
                "bags": len(plan.bags),
                "urgent": plan.urgent,
            },
        )

    return _run(
        engine, "multidose-take-plan", patient_id, call, decide, {"period_id": str(period_id)}
    )


# -- reconciliation of a packing report --------------------------------------------------------


def reconcile_packing(
    engine: Engine,
    patient_id: UUID,
    report: PackReport,
    call: Call,
    rules: PackingRules | None = None,
) -> CommandResult:
    """Reconcile what the multidose pharmacy reports it packed against the list: every line
    classified and stored, and a task for the multidose doctor for each discrepancy that
    needs a prescriber. The reconciliation's id is the report's."""

    def decide(ctx: Context) -> Effect:
        return packing_reconciliation(ctx, patient_id, report, call, rules)

    request = report.model_dump(mode="json")
    return _run(engine, "multidose-reconcile", patient_id, call, decide, request)


def packing_reconciliation(
    ctx: Context,
    patient_id: UUID,
    report: PackReport,
    call: Call,
    rules: PackingRules | None = None,
) -> Effect:
    """The decision of ``reconcile_packing``, for a command that reconciles a report it
    translated (an M25.3 received: ``loop.messages``) in its own transaction."""
    request = report.model_dump(mode="json")
    packing = _rules(rules)
    period = _period(ctx.conn, patient_id, report.period_id)
    responsibility = _responsible(ctx.conn, patient_id, period.first_day)
    require_pharmacist_of(responsibility, call.actor, period.first_day)
    result = reconcile_report(
        report,
        period,
        ctx.state.changes,
        ctx.state.medication_list,
        ctx.state.prescriptions,
        store.urgent_packs_of(ctx.conn, period.patient_id, [period.id]),
        _products(ctx, report),
        ctx.catalogue.substitution_groups,
        packing,
        reconciliation_id=report.report_id,
        at=call.at,
        by=call.actor,
    )
    tasks = tasks_for(result, packing, responsibility)

    def write(conn: Connection) -> None:
        store.append_reconciliation(conn, result, request)
        store.append_tasks(conn, tasks)

    return Effect(
        writes=(write,),
        response={
            "reconciliation_id": str(result.id),
            "period_id": str(period.id),
            "plan_list_version": result.plan_list_version,
            "counts": {k.value: v for k, v in result.counts.items() if v},
            "discrepancies": len(result.discrepancies),
            "tasks": [str(t.id) for t in tasks],
        },
    )


def _products(ctx: Context, report: PackReport) -> dict[str, PackedProduct]:
    found = {}
    for varenr in {line.varenr for bag in report.bags for line in bag.lines}:
        package = ctx.catalogue.package(varenr)
        drug = ctx.catalogue.resolve(DrugOrder(varenr=varenr))
        found[varenr] = PackedProduct(
            package=package, form_code=drug.resolved.form_code, name=package.name
        )
    return found


def resolve_multidose_task(
    engine: Engine, patient_id: UUID, task_id: UUID, call: Call
) -> CommandResult:
    """A prescriber closes a task with a note (``call.reason``)."""

    def decide(ctx: Context) -> Effect:
        found = store.find_task(ctx.conn, patient_id, task_id)
        task = found[0] if found is not None and found[0].patient_id == patient_id else None
        record = resolve_task(
            task,
            found is not None and found[1],
            task_id=task_id,
            note=call.reason,
            at=call.at,
            by=call.actor,
        )
        return Effect(
            writes=(lambda conn: store.append_task_resolution(conn, patient_id, record),),
            response={"task_id": str(task_id)},
        )

    return _run(
        engine, "multidose-resolve-task", patient_id, call, decide, {"task_id": str(task_id)}
    )


# -- proposals ---------------------------------------------------------------------------------


class ProposalOrder(Frozen):
    """A pharmacy proposal (M25.2) as the pharmacy sends it."""

    proposal_id: UUID
    kind: ProposalKind
    note: str | None = None
    entry_id: UUID | None = None
    dosage: Dosage | None = None
    discontinuation: Discontinuation | None = None
    new_entry: PrescribeOrder | None = None
    renewal: RenewOrder | None = None
    question: str | None = None


def propose_change(
    engine: Engine, patient_id: UUID, order: ProposalOrder, call: Call
) -> CommandResult:
    """The multidose pharmacy proposes a change or asks a question; it waits for a
    prescriber."""

    def decide(ctx: Context) -> Effect:
        try:
            record = Proposal(
                id=order.proposal_id,
                patient_id=patient_id,
                kind=order.kind,
                proposed_at=call.at,
                proposed_by=call.actor,
                note=order.note,
                entry_id=order.entry_id,
                dosage=order.dosage,
                discontinuation=order.discontinuation,
                new_entry=_json(order.new_entry),
                renewal=_json(order.renewal),
                question=order.question,
            )
        except ValidationError as error:
            raise InvalidProposal(
                "; ".join(e["msg"] for e in error.errors()), proposal_id=order.proposal_id
            ) from error
        propose(
            _responsible(ctx.conn, patient_id, call.day),
            record,
            ctx.state.medication_list,
        )
        if order.renewal is not None and order.renewal.prescription_id not in (
            ctx.state.prescriptions
        ):
            raise PrescriptionNotFound(
                f"patient {patient_id} has no prescription {order.renewal.prescription_id}",
                prescription_id=order.renewal.prescription_id,
            )
        if order.new_entry is not None:
            ctx.catalogue.resolve(order.new_entry.drug)
        return Effect(
            writes=(lambda conn: store.append_proposal(conn, record),),
            response={"proposal_id": str(record.id), "kind": record.kind.value},
        )

    return _run(
        engine, "multidose-propose", patient_id, call, decide, order.model_dump(mode="json")
    )


def _json(order: Frozen | None) -> dict[str, Any] | None:
    return None if order is None else order.model_dump(mode="json")


def accept_proposal(
    engine: Engine, patient_id: UUID, proposal_id: UUID, call: Call, *, based_on: int
) -> CommandResult:
    """A prescriber accepts a proposal: its change is made by the loop's own command decision
    (with its checks, decision support and overrides) and the decision is recorded in the same
    transaction. A question is accepted with an answer (``call.reason``) and changes no
    entry."""

    def decide(ctx: Context) -> Effect:
        require_prescriber(call.actor)
        proposal, decided = _proposal(ctx.conn, patient_id, proposal_id)
        decision = decide_proposal(
            proposal,
            decided,
            proposal_id=proposal_id,
            accepted=True,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        effect = _accepted_change(ctx, proposal)
        version = None if effect.list_change is None else effect.list_change.list_version
        result = {k: v for k, v in effect.response.items() if isinstance(v, str | int | None)}
        decision = decision.model_copy(update={"list_version": version, "result": result})
        answer, answer_writes = _answer(ctx, proposal, decision, effect)
        return replace(
            effect,
            writes=(
                *effect.writes,
                lambda conn: store.append_decision(conn, patient_id, decision),
                *answer_writes,
            ),
            response={
                **effect.response,
                "proposal_id": str(proposal_id),
                "decision": "accepted",
                **answer,
            },
        )

    return _run(
        engine,
        "multidose-accept-proposal",
        patient_id,
        call,
        decide,
        {"proposal_id": str(proposal_id)},
        based_on=based_on,
    )


def _accepted_change(ctx: Context, proposal: Proposal) -> Effect:
    call = ctx.call
    if proposal.kind is ProposalKind.NEW_ENTRY:
        order = PrescribeOrder.model_validate(proposal.new_entry)
        return prescribe_decision(order, call)(ctx)
    if proposal.kind is ProposalKind.CHANGE_DOSAGE:
        assert proposal.entry_id is not None and proposal.dosage is not None
        return change_dosage_decision(proposal.entry_id, proposal.dosage, call)(ctx)
    if proposal.kind is ProposalKind.DISCONTINUE:
        assert proposal.entry_id is not None and proposal.discontinuation is not None
        return discontinue_decision(proposal.entry_id, proposal.discontinuation, call)(ctx)
    if proposal.kind is ProposalKind.RENEW:
        order = RenewOrder.model_validate(proposal.renewal)
        return renew_decision(proposal.patient_id, order, call)(ctx)
    if not (call.reason or "").strip():
        raise InvalidProposal("accepting a question needs an answer", proposal_id=proposal.id)
    return Effect(response={"answer": call.reason})


def reject_proposal(
    engine: Engine, patient_id: UUID, proposal_id: UUID, call: Call
) -> CommandResult:
    """A prescriber rejects a proposal with a reason (``call.reason``); the list is
    unchanged."""

    def decide(ctx: Context) -> Effect:
        require_prescriber(call.actor)
        proposal, decided = _proposal(ctx.conn, patient_id, proposal_id)
        decision = decide_proposal(
            proposal,
            decided,
            proposal_id=proposal_id,
            accepted=False,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        answer, answer_writes = _answer(ctx, proposal, decision, Effect())
        return Effect(
            writes=(
                lambda conn: store.append_decision(conn, patient_id, decision),
                *answer_writes,
            ),
            response={"proposal_id": str(proposal_id), "decision": "rejected", **answer},
        )

    return _run(
        engine,
        "multidose-reject-proposal",
        patient_id,
        call,
        decide,
        {"proposal_id": str(proposal_id)},
    )


def _answer(
    ctx: Context, proposal: Proposal, decision: ProposalDecision, effect: Effect
) -> tuple[dict[str, str], tuple[Write, ...]]:
    """The answer a decision makes due (``answer_due``: a proposal that came in an M25.2) as
    its response field and its write: the M25.1 of the list as the decision leaves it (the
    state ``effect`` makes of the locked one), spelled by the read side's writer and stored in
    the outbox in the decision's own transaction, with its SHA-256. No answer, no write."""
    change = effect.list_change
    version = ctx.state.medication_list.version if change is None else change.list_version
    answer = answer_due(proposal, decision, version)
    if answer is None:
        return {}, ()
    after = ctx.state.advanced(
        list_change=change,
        prescription_versions=effect.prescription_versions,
        dispenses=effect.dispenses,
        annulments=effect.annulments,
        handled=(),
        recorded_at=ctx.call.at,
    )
    data = queries.proposal_answer_as_m25_1(ctx.conn, after, answer)
    digest = hashlib.sha256(data).hexdigest()
    return {"answer_msg_id": answer.msg_id}, (
        lambda conn: outbox.append_answer(conn, answer, data, digest, type_="ERM251"),
    )


def _proposal(
    conn: Connection, patient_id: UUID, proposal_id: UUID
) -> tuple[Proposal, ProposalDecision | None]:
    found = store.find_proposal(conn, patient_id, proposal_id)
    if found is None or found[0].patient_id != patient_id:
        raise ProposalNotFound(
            f"patient {patient_id} has no proposal {proposal_id}", proposal_id=proposal_id
        )
    return found


# -- the scheduler's job -----------------------------------------------------------------------


def flag_deadlines(
    engine: Engine,
    now: datetime,
    rules: PackingRules | None = None,
    skipped: list[str] | None = None,
) -> int:
    """Flag the periods whose order deadline falls within the rules' horizon from ``now`` and
    whose list has multidose changes newer than the plan the pharmacy took (all of them when it
    took none). A flag is keyed by period and list version, so a second run without new
    changes flags nothing. Returns how many periods were flagged now; a patient whose stored
    record cannot be read is left out and added to ``skipped`` (``skipping_unreadable``)."""
    horizon = _rules(rules).deadline_horizon
    with reader(engine).connect() as conn:
        due = store.periods_with_deadline_between(conn, now, now + horizon)
    flagged = 0
    left_out: list[str] = [] if skipped is None else skipped
    for period in due:
        try:
            found = skipping_unreadable(
                "multidose.deadline-flag",
                period.patient_id,
                lambda period=period: _flag(engine, period, now),
                left_out,
            )
        except IntegrityError:
            continue  # another runner flagged the same period and version first
        flagged += found or 0
    return flagged


def _flag(engine: Engine, period: PackingPeriod, now: datetime) -> int:
    def work(ctx: WorkContext) -> Done:
        conn = ctx.conn
        planned = store.plan_taken_version(conn, period.patient_id, period.id) or 0
        versions = [
            v
            for v in store.entry_versions_after(conn, period.patient_id, planned)
            if touches_multidose(v)
        ]
        if not versions:
            return Done(response={"flagged": 0})
        latest = max(v.list_version for v in versions)
        if store.deadline_flagged(conn, period.patient_id, period.id, latest):
            return Done(response={"flagged": 0})
        record = {
            "order_deadline": period.order_deadline.isoformat(),
            "plan_list_version": planned,
            "entries": sorted({str(v.entry_id) for v in versions}),
        }
        store.append_deadline_flag(conn, period.patient_id, period.id, latest, now, record)
        detail = {"period_id": str(period.id), "list_version": latest, **record}
        return Done(
            response={"flagged": 1},
            notes=(Note("multidose.deadline-flag", detail, occurred_at=now),),
        )

    return run_work(engine, "multidose.deadline-flag", work, patient_id=period.patient_id)[
        "flagged"
    ]


# -- queries (plain reads; wrap them in ``medloop.queries.read_for`` to audit the access) ----


@dataclass(frozen=True)
class PeriodView:
    """A packing period with what happened to it: urgent packs, the list version the pharmacy
    took its plan from, and the deadline flags."""

    period: PackingPeriod
    urgent_packs: tuple[UrgentPack, ...]
    plan_list_version: int | None
    deadline_flags: tuple[dict[str, Any], ...]


def _known(conn: Connection, patient_id: UUID) -> None:
    if national_id_of(conn, patient_id) is None:
        raise PatientNotFound(f"there is no patient {patient_id}", patient_id=patient_id)


def responsibility(conn: Connection, patient_id: UUID) -> Responsibility | None:
    _known(conn, patient_id)
    return store.current_responsibility(conn, patient_id)


def periods(conn: Connection, patient_id: UUID) -> list[PeriodView]:
    _known(conn, patient_id)
    found = store.periods_of(conn, patient_id)
    packs = store.urgent_packs_of(conn, patient_id, [p.id for p in found])
    return [
        PeriodView(
            period=p,
            urgent_packs=tuple(u for u in packs if u.period_id == p.id),
            plan_list_version=store.plan_taken_version(conn, patient_id, p.id),
            deadline_flags=tuple(store.deadline_flags(conn, patient_id, p.id)),
        )
        for p in found
    ]


def period(conn: Connection, patient_id: UUID, period_id: UUID) -> PeriodView:
    """One of the patient's packing periods with what happened to it;
    ``PackingPeriodNotFound`` when the patient has no such period."""
    _known(conn, patient_id)
    found = _period(conn, patient_id, period_id)
    return PeriodView(
        period=found,
        urgent_packs=tuple(store.urgent_packs_of(conn, patient_id, [period_id])),
        plan_list_version=store.plan_taken_version(conn, patient_id, period_id),
        deadline_flags=tuple(store.deadline_flags(conn, patient_id, period_id)),
    )


def plan_of(
    conn: Connection, patient_id: UUID, period_id: UUID, rules: PackingRules | None = None
) -> ProductionPlan:
    """The production plan of a period (before the deadline: from the list as it stands)."""
    state = queries.patient_state(conn, patient_id)
    period = _period(conn, patient_id, period_id)
    return production_plan(
        period, state.changes, store.urgent_packs_of(conn, patient_id, [period_id]), _rules(rules)
    )


def reconciliations(
    conn: Connection, patient_id: UUID, period_id: UUID | None = None
) -> list[PackReconciliation]:
    _known(conn, patient_id)
    return store.reconciliations_of(conn, patient_id, period_id)


def reconciliation(
    conn: Connection, patient_id: UUID, reconciliation_id: UUID
) -> PackReconciliation:
    """One packing reconciliation of the patient (its id is its report's);
    ``PackReconciliationNotFound`` when the patient has none with that id."""
    _known(conn, patient_id)
    found = store.reconciliation_of(conn, patient_id, reconciliation_id)
    if found is None:
        raise PackReconciliationNotFound(
            f"patient {patient_id} has no packing reconciliation {reconciliation_id}",
            reconciliation_id=reconciliation_id,
        )
    return found


def open_tasks(
    conn: Connection, patient_id: UUID | None = None, *, assigned_to: str | None = None
) -> list[MultidoseTask]:
    """Open tasks of a patient, or of a doctor (HPR number) across patients."""
    if patient_id is not None:
        _known(conn, patient_id)
    return store.open_tasks(conn, patient_id=patient_id, assigned_to=assigned_to)


def pending_proposals(conn: Connection, patient_id: UUID) -> list[Proposal]:
    _known(conn, patient_id)
    return [p for p, _ in store.proposals_of(conn, patient_id, pending_only=True)]


def proposals(conn: Connection, patient_id: UUID) -> list[tuple[Proposal, ProposalDecision | None]]:
    _known(conn, patient_id)
    return store.proposals_of(conn, patient_id, pending_only=False)


def proposal(
    conn: Connection, patient_id: UUID, proposal_id: UUID
) -> tuple[Proposal, ProposalDecision | None]:
    """One of the patient's proposals with the prescriber's decision (``None``: pending);
    ``ProposalNotFound`` when the patient has no such proposal."""
    _known(conn, patient_id)
    return _proposal(conn, patient_id, proposal_id)


def urgent_pack(conn: Connection, patient_id: UUID, period_id: UUID, pack_id: UUID) -> UrgentPack:
    """One urgent pack of the patient's packing period; ``PackingPeriodNotFound`` or
    ``UrgentPackNotFound`` when the patient has no such period or pack."""
    _known(conn, patient_id)
    _period(conn, patient_id, period_id)
    packs = store.urgent_packs_of(conn, patient_id, [period_id])
    found = next((u for u in packs if u.id == pack_id), None)
    if found is None:
        raise UrgentPackNotFound(
            f"packing period {period_id} has no urgent pack {pack_id}", pack_id=pack_id
        )
    return found


@dataclass(frozen=True)
class WorklistItem:
    """A period of one of the pharmacy's multidose patients whose order deadline is near: the
    list version the plan was taken from (``None``: not taken) and the entries whose multidose
    changes came after it (what the pharmacy has not packed for yet)."""

    period: PackingPeriod
    patient: Patient
    plan_list_version: int | None
    changed_entries: tuple[UUID, ...]

    @property
    def changed_since_plan(self) -> bool:
        return bool(self.changed_entries)


@dataclass(frozen=True)
class UnreadableOnWorklist:
    """A patient of the pharmacy's worklist a stored record of whose (a packing period, the
    responsibility, the list, the patient) no longer loads: who (``patient``, when the
    patient's own record loads) and the error naming the record. Their order deadline cannot be
    shown, so they are listed apart, never left out silently."""

    patient_id: UUID
    patient: Patient | None
    error: StoredRecordUnreadable


def pharmacy_worklist(
    conn: Connection,
    pharmacy_id: str,
    now: datetime,
    until: datetime,
    unreadable: list[UnreadableOnWorklist] | None = None,
) -> list[WorklistItem]:
    """The periods of the patients whose multidose pharmacy ``pharmacy_id`` is today (the
    policy's own test) with an order deadline up to ``until``: those still ahead, and those
    already passed whose period has not begun (the most urgent). Those changed since their plan
    first, then by deadline. A read of several patients: audit each (``Caller.read_many``).

    Without ``unreadable`` a stored record that does not load fails the whole list (named).
    With it, such a patient is added there instead, when the pharmacy is theirs by a record
    that does load (the period's, or else their responsibility's); every other patient is
    listed as ever."""
    found = []
    today = local_date(now)
    periods_unread: list[tuple[str, StoredRecordUnreadable]] | None = (
        None if unreadable is None else []
    )
    named: dict[tuple[UUID, str], UnreadableOnWorklist] = {}

    def cannot_read(patient_id: UUID, error: StoredRecordUnreadable) -> None:
        key = (patient_id, error.record)
        if key not in named:
            named[key] = UnreadableOnWorklist(
                patient_id, _patient_if_readable(conn, patient_id), error
            )

    lookback = now - WORKLIST_LOOKBACK
    for period in store.periods_with_deadline_between(
        conn, lookback, until, unreadable=periods_unread
    ):
        if period.pharmacy.id != pharmacy_id:
            continue
        if period.order_deadline < now and period.first_day <= today:
            continue
        try:
            item = _worklist_item(conn, period, pharmacy_id, today)
        except StoredRecordUnreadable as error:
            if unreadable is None:
                raise
            cannot_read(period.patient_id, error)
            continue
        if item is not None:
            found.append(item)
    for patient_id, error in periods_unread or ():
        # The pharmacy is in the period's record: theirs when the responsibility says so.
        try:
            current = store.current_responsibility(conn, UUID(patient_id))
        except StoredRecordUnreadable:
            continue  # whose patient cannot be told; ``medloop records check`` lists both
        if current is not None and current.pharmacy.id == pharmacy_id and current.in_force(today):
            cannot_read(UUID(patient_id), error)
    if unreadable is not None:
        unreadable.extend(named.values())
    return sorted(
        found, key=lambda i: (not i.changed_since_plan, i.period.order_deadline, str(i.period.id))
    )


def _worklist_item(
    conn: Connection, period: PackingPeriod, pharmacy_id: str, today: date
) -> WorklistItem | None:
    """The worklist's line of ``period`` (of ``pharmacy_id``), or ``None`` when the patient's
    multidose pharmacy today is another (or none), or there is no such patient."""
    current = store.current_responsibility(conn, period.patient_id)
    if current is None or current.pharmacy.id != pharmacy_id or not current.in_force(today):
        return None
    patient = read_patient(conn, period.patient_id)
    if patient is None:
        return None
    planned = store.plan_taken_version(conn, period.patient_id, period.id)
    changed = {
        v.entry_id
        for v in store.entry_versions_after(conn, period.patient_id, planned or 0)
        if touches_multidose(v)
    }
    return WorklistItem(period, patient, planned, tuple(sorted(changed, key=str)))


def _patient_if_readable(conn: Connection, patient_id: UUID) -> Patient | None:
    try:
        return read_patient(conn, patient_id)
    except StoredRecordUnreadable:
        return None


WORKLIST_LOOKBACK = timedelta(days=31)
"""How far back ``pharmacy_worklist`` looks for deadlines passed of periods not yet begun."""
