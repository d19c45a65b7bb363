"""The pharmacist's pages: the multidose worklist (the pharmacy's patients whose order
deadline is near, those whose list changed since the plan was taken first), a patient's
multidose periods with the production plan of each, the upload of a packing report (the API's
JSON or a CSV, ``medloop.packing_report_input``) and its reconciliation line by line with what
to do, proposals to the multidose doctor and their state, and dispensing a prescription with
generic substitution in the FEST substitution group.

The same policy (``Action.MULTIDOSE_READ``/``MULTIDOSE_WRITE``/``DISPENSING_READ``/``DISPENSE``),
commands (``medloop.loop.multidose``, ``medloop.loop.dispense``) and audited reads as the JSON
API's multidose and pharmacy routes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from interactions.catalogue import Package
from medloop import queries
from medloop.api.auth import Role
from medloop.api.policy import Action
from medloop.api.problems import Forbidden
from medloop.api.routing import BlockingRoute
from medloop.api.views import DISPENSABLE
from medloop.domain.dispense import Dispense, DispenseQuantity
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.multidose.proposals import ProposalKind
from medloop.domain.multidose.rules import LineClass
from medloop.domain.oslo import local_date
from medloop.domain.patient import Patient
from medloop.loop import dispense, multidose
from medloop.loop.catalogue import catalogue_in_force
from medloop.loop.dispense import DispenseOrder
from medloop.loop.errors import OverrideRequired
from medloop.loop.multidose import ProposalOrder, load_packing_rules
from medloop.packing_report_input import (
    PackingReportInvalid,
    pack_report_from_csv,
    pack_report_from_json,
)
from medloop.pages import signin
from medloop.pages.dosage_form import SLOTS, USES, DosageForm, dosage_text
from medloop.pages.gp import overrides_posted
from medloop.pages.i18n import N_, format_datetime, format_decimal
from medloop.pages.messages import Refusal, explain
from medloop.pages.web import FormDep, Page, PageDep, url

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)
signin.LANDINGS[Role.PHARMACIST] = url("pharmacy")

MAX_WORKLIST_DAYS = 14

CLASS_NAMES: dict[LineClass, str] = {
    LineClass.OK: N_("Correct"),
    LineClass.OK_SUBSTITUTED: N_("Correct, substituted"),
    LineClass.MISSING_FROM_BAGS: N_("Missing from the bags"),
    LineClass.PACKED_NOT_ON_LIST: N_("Packed but not on the list"),
    LineClass.PACKED_DISCONTINUED: N_("Packed but discontinued"),
    LineClass.DOSE_MISMATCH: N_("Wrong dose"),
    LineClass.TIME_MISMATCH: N_("Wrong time"),
    LineClass.NOT_IN_SUBSTITUTION_GROUP: N_("Product not in the substitution group"),
    LineClass.NOT_PACKABLE_PACKED: N_("Packed but not packable"),
    LineClass.PRESCRIPTION_NOT_VALID: N_("Prescription expired or recalled"),
    LineClass.CHANGE_AFTER_DEADLINE: N_("Changed after the deadline"),
}
WHAT_TO_DO: dict[LineClass, str] = {
    LineClass.OK: N_("Nothing to do."),
    LineClass.OK_SUBSTITUTED: N_("Nothing to do: a package of the same substitution group."),
    LineClass.MISSING_FROM_BAGS: N_("Pack the missing dose before the bags go out."),
    LineClass.PACKED_NOT_ON_LIST: N_(
        "Take it out of the bags: the medicine is not on the list. Ask the doctor if it should be."
    ),
    LineClass.PACKED_DISCONTINUED: N_("Take it out of the bags: the doctor discontinued it."),
    LineClass.DOSE_MISMATCH: N_("Correct the amount to the prescribed dose."),
    LineClass.TIME_MISMATCH: N_("Move it to the prescribed intake time."),
    LineClass.NOT_IN_SUBSTITUTION_GROUP: N_(
        "Replace it with the prescribed product or one of its substitution group."
    ),
    LineClass.NOT_PACKABLE_PACKED: N_(
        "Take it out of the bags: this form is given outside multidose."
    ),
    LineClass.PRESCRIPTION_NOT_VALID: N_(
        "Do not pack it: ask the multidose doctor to renew the prescription."
    ),
    LineClass.CHANGE_AFTER_DEADLINE: N_(
        "The change reaches the next period, unless an urgent pack is ordered."
    ),
}
OK_CLASSES = frozenset({LineClass.OK, LineClass.OK_SUBSTITUTED})
PROPOSAL_KINDS: tuple[tuple[ProposalKind, str], ...] = (
    (ProposalKind.QUESTION, N_("Question")),
    (ProposalKind.CHANGE_DOSAGE, N_("Change the dosage")),
    (ProposalKind.DISCONTINUE, N_("Discontinue")),
)
PROPOSAL_KIND_NAMES = {
    "new-entry": N_("New medicine"),
    "change-dosage": N_("Change the dosage"),
    "discontinue": N_("Discontinue"),
    "renew": N_("Renew the prescription"),
    "question": N_("Question"),
}


def _common(page: Page) -> dict[str, Any]:
    def number(value: float) -> str:
        return format_decimal(value, page.lang)

    return {
        "number": number,
        "dosage_text": lambda d: dosage_text(d, page._, number),
        "CLASS_NAMES": CLASS_NAMES,
        "WHAT_TO_DO": WHAT_TO_DO,
        "OK_CLASSES": OK_CLASSES,
        "PROPOSAL_KINDS": PROPOSAL_KINDS,
        "PROPOSAL_KIND_NAMES": PROPOSAL_KIND_NAMES,
        "SLOTS": SLOTS,
        "USES": USES,
        "new_key": lambda: str(uuid.uuid4()),
        "unit_name": lambda unit: page._("package") if unit in ("package", "packages") else unit,
        "intake_name": lambda intake: (
            page._(_SLOT_NAMES[intake]) if intake in _SLOT_NAMES else intake
        ),
        "discrepancies_first": lambda lines: sorted(
            lines, key=lambda line: line.line_class in OK_CLASSES
        ),
    }


_SLOT_NAMES = {slot.value: name for slot, name in SLOTS}


# -- the worklist and finding a patient ---------------------------------------------------------


@router.get("/app/pharmacy", response_class=HTMLResponse)
def worklist(
    page: PageDep,
    days: Annotated[int | None, Query(ge=1, le=MAX_WORKLIST_DAYS)] = None,
) -> Response:
    pharmacy = page.principal.organisation
    if page.principal.role is not Role.PHARMACIST or pharmacy is None:
        raise Forbidden("the multidose worklist is a pharmacy's")
    start = page.caller.at
    horizon = load_packing_rules().deadline_horizon if days is None else timedelta(days=days)

    def read(conn: Connection) -> tuple[Any, list[UUID]]:
        # A patient a record of whose does not load is listed apart, naming the record: the
        # rest of the worklist is shown as ever.
        unreadable: list[multidose.UnreadableOnWorklist] = []
        items = multidose.pharmacy_worklist(conn, pharmacy, start, start + horizon, unreadable)
        ids = {i.patient.id for i in items} | {u.patient_id for u in unreadable}
        return (items, unreadable), sorted(ids, key=str)

    items, unreadable = page.caller.read_many("multidose.read.worklist", read)
    return page.render(
        "pharmacy/worklist.html",
        items=items,
        unreadable=unreadable,
        days=days,
        horizon_hours=int(horizon.total_seconds() // 3600),
        now=start,
        national_id="",
        error=None,
    )


@router.post("/app/pharmacy/find", response_class=HTMLResponse)
def find(page: PageDep, form: FormDep) -> Response:
    national_id = str(form.get("national_id") or "").strip().replace(" ", "")
    page.caller.authorize(Action.PATIENT_LOOKUP)
    if not re.fullmatch(r"\d{11}", national_id):
        return _worklist_error(page, national_id, page._("A national id has 11 digits."), 422)
    found = page.state.read_unaudited(lambda conn: queries.find_patient_id(conn, national_id))
    page.caller.authorize(Action.PATIENT_LOOKUP, found)
    if found is None:
        message = page._("No medication list is kept for this national id.")
        return _worklist_error(page, national_id, message, 404)
    page.caller.read(found, "lookup", lambda conn: None)
    return page.redirect(url(f"pharmacy/patients/{found}"))


def _worklist_error(page: Page, national_id: str, error: str, status: int) -> Response:
    return page.render(
        "pharmacy/worklist.html",
        status,
        items=None,
        days=None,
        horizon_hours=0,
        now=page.caller.at,
        national_id=national_id,
        error=error,
    )


# -- dispensing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispensable:
    patient: Patient
    list_version: int
    prescriptions: list[queries.PrescriptionSummary]
    entries: dict[UUID, ListEntry]
    choices: dict[UUID, list[Package]]
    """Prescription id → the packages that may be handed out: the prescribed one and the
    others of its FEST substitution group (the command checks the choice)."""
    dispensed: list[Dispense] = field(default_factory=list)
    """This pharmacy's dispenses of the last ``ANNUL_DAYS`` days that still count, newest
    first: the ones it may annul (the command checks that too)."""


ANNUL_DAYS = 30
"""How far back the dispensing page lists the pharmacy's own dispenses to annul."""


def _dispensable(
    conn: Connection, patient_id: UUID, at: datetime, pharmacy: str | None = None
) -> Dispensable:
    current = queries.current_list(conn, patient_id, at)
    state = queries.patient_state(conn, patient_id)
    found = [p for p in queries.prescriptions(conn, patient_id) if p.status in DISPENSABLE]
    entries = {e.id: e for e in current.entries}
    catalogue = catalogue_in_force(conn)
    choices: dict[UUID, list[Package]] = {}
    for prescription in found:
        entry = entries.get(prescription.entry_id)
        varenr = getattr(entry.drug, "varenr", None) if entry is not None else None
        prescribed = catalogue.packages_by_varenr.get(varenr or "", ())
        group = {p.substitution_group_id for p in prescribed} - {None}
        members = [
            p
            for ps in catalogue.packages_by_varenr.values()
            for p in ps
            if p.substitution_group_id in group and p not in prescribed
        ]
        choices[prescription.id] = [*prescribed, *sorted(members, key=lambda p: p.varenr)]
    since = local_date(at) - timedelta(days=ANNUL_DAYS)
    dispensed = sorted(
        (
            d
            for d in state.dispenses
            if d.annulment is None and d.pharmacy.id == pharmacy and d.dispensed_on >= since
        ),
        key=lambda d: (d.dispensed_on, str(d.id)),
        reverse=True,
    )
    return Dispensable(state.patient, current.list_version, found, entries, choices, dispensed)


@router.get("/app/pharmacy/patients/{patient_id}", response_class=HTMLResponse)
def dispensing(
    page: PageDep, patient_id: UUID, saved: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    return _dispensing_page(page, patient_id, saved=saved)


def _dispensing_page(
    page: Page,
    patient_id: UUID,
    *,
    status: int = 200,
    saved: str | None = None,
    refusal: Refusal | None = None,
    failed: UUID | None = None,
    alerts: list[Any] | None = None,
    annul_failed: UUID | None = None,
) -> Response:
    page.caller.authorize(Action.DISPENSING_READ, patient_id)
    found = page.caller.read(
        patient_id,
        "dispensable",
        lambda conn: _dispensable(conn, patient_id, page.caller.at, page.principal.organisation),
    )
    return page.render(
        "pharmacy/dispensing.html",
        status,
        found=found,
        patient_id=patient_id,
        saved=saved,
        refusal=refusal,
        failed=failed,
        alerts=alerts or [],
        annul_failed=annul_failed,
        annul_days=ANNUL_DAYS,
        today=page.caller.day.isoformat(),
        # The multidose page only for a patient whose multidose pharmacy this is: a link to it
        # for anyone else would lead to a refusal (and its audit record).
        multidose_link=page.permits(Action.MULTIDOSE_READ, patient_id),
        **_common(page),
    )


@router.post("/app/pharmacy/patients/{patient_id}/dispenses", response_class=HTMLResponse)
def dispense_post(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.DISPENSE, patient_id)
    prescription_id = _uuid(form.get("prescription_id"))
    overrides = overrides_posted(form)
    try:
        packages = float(str(form.get("packages") or "").replace(",", "."))
        order = DispenseOrder(
            dispense_id=_uuid(form.get("dispense_id")) or uuid.uuid4(),
            prescription_id=prescription_id or uuid.uuid4(),
            varenr=str(form.get("varenr") or ""),
            dispensed_on=page.caller.day,
            quantity=DispenseQuantity(packages=packages),
            batch=str(form.get("batch") or "").strip(),
            expiry=date.fromisoformat(str(form.get("expiry") or "")),
        )
    except (ValidationError, ValueError):
        return _dispensing_page(
            page,
            patient_id,
            status=422,
            failed=prescription_id,
            refusal=Refusal(
                "invalid",
                page._("Fill in the package, the number of packages, the batch and the expiry."),
                status=422,
            ),
        )
    try:
        dispense.dispense(
            page.caller.engine,
            patient_id,
            order,
            page.caller.call(overrides=overrides, idempotency_key=f"page-{order.dispense_id}"),
            based_on=int(str(form.get("based_on") or "-1")),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        alerts = list(error.alerts) if isinstance(error, OverrideRequired) else []
        return _dispensing_page(
            page,
            patient_id,
            status=refusal.status,
            refusal=refusal,
            failed=prescription_id,
            alerts=alerts,
        )
    return page.redirect(url(f"pharmacy/patients/{patient_id}?saved=dispensed"))


@router.post(
    "/app/pharmacy/patients/{patient_id}/dispenses/{dispense_id}/annul",
    response_class=HTMLResponse,
)
def annul_post(page: PageDep, patient_id: UUID, dispense_id: UUID, form: FormDep) -> Response:
    """Annul one of the pharmacy's dispenses (``loop.dispense.annul_dispense``, as the API's
    ``annulDispense``): a reason is required; the prescription reopens."""
    page.caller.authorize(Action.DISPENSE, patient_id)
    reason = str(form.get("reason") or "").strip()
    if not reason:
        return _dispensing_page(
            page,
            patient_id,
            status=422,
            annul_failed=dispense_id,
            refusal=Refusal(
                "reason-required", page._("Write why the dispense is annulled."), "reason", 422
            ),
        )
    key = _uuid(form.get("idempotency_key")) or uuid.uuid4()
    try:
        dispense.annul_dispense(
            page.caller.engine,
            patient_id,
            dispense_id,
            page.caller.call(reason=reason, idempotency_key=f"page-annul-{key}"),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        return _dispensing_page(
            page, patient_id, status=refusal.status, refusal=refusal, annul_failed=dispense_id
        )
    return page.redirect(url(f"pharmacy/patients/{patient_id}?saved=annulled"))


# -- multidose ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultidoseView:
    patient: Patient
    list_version: int
    entries: tuple[ListEntry, ...]
    names: dict[str, str]
    responsibility: Any
    periods: list[multidose.PeriodView]
    reconciliations: list[Any]
    proposals: list[tuple[Any, Any]]


def _multidose(conn: Connection, patient_id: UUID, at: datetime) -> MultidoseView:
    state = queries.patient_state(conn, patient_id)
    current = queries.current_list(conn, patient_id, at)
    return MultidoseView(
        patient=state.patient,
        list_version=current.list_version,
        entries=current.entries,
        names={str(e.id): e.drug.name for e in state.medication_list.entries},
        responsibility=multidose.responsibility(conn, patient_id),
        periods=multidose.periods(conn, patient_id),
        reconciliations=list(reversed(multidose.reconciliations(conn, patient_id))),
        proposals=list(reversed(multidose.proposals(conn, patient_id))),
    )


def _read_multidose(page: Page, patient_id: UUID) -> MultidoseView:
    page.caller.authorize(Action.MULTIDOSE_READ, patient_id)
    return page.caller.read(
        patient_id, "multidose", lambda conn: _multidose(conn, patient_id, page.caller.at)
    )


@router.get("/app/pharmacy/patients/{patient_id}/multidose", response_class=HTMLResponse)
def multidose_page(
    page: PageDep, patient_id: UUID, saved: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    return _multidose_page(page, patient_id, saved=saved)


def _multidose_page(
    page: Page,
    patient_id: UUID,
    *,
    status: int = 200,
    saved: str | None = None,
    upload_problems: list[str] | None = None,
    refusal: Refusal | None = None,
    proposal_form: DosageForm | None = None,
    urgent_refusal: Refusal | None = None,
) -> Response:
    view = _read_multidose(page, patient_id)
    return page.render(
        "pharmacy/multidose.html",
        status,
        view=view,
        patient_id=patient_id,
        saved=saved,
        upload_problems=upload_problems or [],
        refusal=refusal,
        dosage_form=proposal_form or DosageForm(),
        report_id=str(uuid.uuid4()),
        urgent_refusal=urgent_refusal,
        now=page.caller.at,
        # The worklist and dispensing are a pharmacist's; a GP or a nurse may read this page.
        pharmacy_links=page.principal.role is Role.PHARMACIST,
        may_write=_may_write_multidose(page, patient_id),
        **_common(page),
    )


@router.get(
    "/app/pharmacy/patients/{patient_id}/multidose/periods/{period_id}/plan",
    response_class=HTMLResponse,
)
def plan_page(page: PageDep, patient_id: UUID, period_id: UUID) -> Response:
    page.caller.authorize(Action.MULTIDOSE_READ, patient_id)
    plan, view = page.caller.read(
        patient_id,
        "multidose-plan",
        lambda conn: (
            multidose.plan_of(conn, patient_id, period_id),
            _multidose(conn, patient_id, page.caller.at),
        ),
    )
    return page.render(
        "pharmacy/plan.html",
        plan=plan,
        view=view,
        patient_id=patient_id,
        may_write=_may_write_multidose(page, patient_id),
        **_common(page),
    )


def _may_write_multidose(page: Page, patient_id: UUID) -> bool:
    """Whether the multidose pages show their forms (urgent pack, packing report, proposal,
    taking a plan): a GP or a nurse may read them, and the forms would refuse them."""
    return page.permits(Action.MULTIDOSE_WRITE, patient_id)


@router.post(
    "/app/pharmacy/patients/{patient_id}/multidose/urgent-packs", response_class=HTMLResponse
)
def urgent_pack_post(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    """Order an urgent pack (hastepakk) for the rest of a period (``loop.multidose.order_urgent``,
    as the API's ``orderUrgentPack``): the reason is required, the order deadline must have
    passed and the period not ended (the domain decides and says which)."""
    page.caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    period_id = _uuid(form.get("period_id"))
    pack_id = _uuid(form.get("pack_id")) or uuid.uuid4()
    reason = str(form.get("reason") or "").strip()
    if period_id is None or not reason:
        field_name = "urgent_period" if period_id is None else "urgent_reason"
        text = (
            page._("Choose the period.")
            if period_id is None
            else page._("Write why the urgent pack is needed.")
        )
        refusal = Refusal("urgent-pack-incomplete", text, field_name, 422)
        return _multidose_page(page, patient_id, status=422, urgent_refusal=refusal)
    try:
        multidose.order_urgent(
            page.caller.engine,
            patient_id,
            period_id,
            pack_id,
            page.caller.call(reason=reason, idempotency_key=f"page-urgent-{pack_id}"),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        text = refusal.text
        # one code, three reasons: which one is in the refusal's structured context
        if "order_deadline" in error.context:
            text = page._(
                "The order deadline (%(when)s) has not passed: the change reaches this period "
                "without an urgent pack.",
                when=format_datetime(
                    datetime.fromisoformat(str(error.context["order_deadline"])), page.lang
                ),
            )
        elif "last_day" in error.context:
            text = page._("This period has ended.")
        refusal = Refusal(refusal.code, text, "urgent_period", refusal.status)
        return _multidose_page(page, patient_id, status=refusal.status, urgent_refusal=refusal)
    return page.redirect(url(f"pharmacy/patients/{patient_id}/multidose?saved=urgent-pack"))


@router.post(
    "/app/pharmacy/patients/{patient_id}/multidose/periods/{period_id}/plan/take",
    response_class=HTMLResponse,
)
def take_plan(page: PageDep, patient_id: UUID, period_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    try:
        multidose.take_production_plan(
            page.caller.engine,
            patient_id,
            period_id,
            page.caller.call(idempotency_key=f"page-{_uuid(form.get('idempotency_key'))}"),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        return _multidose_page(page, patient_id, status=refusal.status, refusal=refusal)
    return page.redirect(url(f"pharmacy/patients/{patient_id}/multidose?saved=plan-taken"))


@router.post(
    "/app/pharmacy/patients/{patient_id}/multidose/packing-reports", response_class=HTMLResponse
)
async def upload_report(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    period_id = _uuid(form.get("period_id"))
    report_id = _uuid(form.get("report_id")) or uuid.uuid4()
    upload = form.get("report")
    if period_id is None or not isinstance(upload, UploadFile) or not upload.filename:
        return _multidose_page(
            page,
            patient_id,
            status=422,
            upload_problems=[page._("Choose the period and the file to upload.")],
        )
    data = await upload.read()
    name = upload.filename
    try:
        if name.lower().endswith(".json") or data.lstrip()[:1] == b"{":
            report = pack_report_from_json(data, period_id=period_id, source=name)
        else:
            report = pack_report_from_csv(
                data, report_id=report_id, period_id=period_id, source=name
            )
    except PackingReportInvalid as invalid:
        return _multidose_page(
            page,
            patient_id,
            status=422,
            upload_problems=[p.located(invalid.source) for p in invalid.problems],
        )
    try:
        multidose.reconcile_packing(
            page.caller.engine,
            patient_id,
            report,
            page.caller.call(idempotency_key=f"page-{report.report_id}"),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        return _multidose_page(page, patient_id, status=refusal.status, refusal=refusal)
    return page.redirect(
        url(f"pharmacy/patients/{patient_id}/multidose/reconciliations/{report.report_id}")
    )


@router.get(
    "/app/pharmacy/patients/{patient_id}/multidose/reconciliations/{report_id}",
    response_class=HTMLResponse,
)
def reconciliation_page(page: PageDep, patient_id: UUID, report_id: UUID) -> Response:
    view = _read_multidose(page, patient_id)
    found = next((r for r in view.reconciliations if r.report_id == report_id), None)
    if found is None:
        raise HTTPException(404)
    return page.render(
        "pharmacy/reconciliation.html",
        view=view,
        reconciliation=found,
        patient_id=patient_id,
        **_common(page),
    )


@router.post("/app/pharmacy/patients/{patient_id}/multidose/proposals", response_class=HTMLResponse)
def propose(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.MULTIDOSE_WRITE, patient_id)
    kind_text = str(form.get("kind") or "")
    entry_id = _uuid(form.get("entry_id"))
    note = str(form.get("note") or "").strip() or None
    dosage_form = DosageForm.posted(form, form.getlist)
    try:
        kind = ProposalKind(kind_text)
        dosage = None
        if kind is ProposalKind.CHANGE_DOSAGE:
            dosage = dosage_form.read(page._)
            if dosage is None:
                return _multidose_page(
                    page,
                    patient_id,
                    status=422,
                    proposal_form=dosage_form,
                    refusal=Refusal(
                        "invalid", page._("The proposed dosage is not complete."), status=422
                    ),
                )
        discontinuation = None
        if kind is ProposalKind.DISCONTINUE:
            from medloop.domain.codes import DiscontinuationReason
            from medloop.domain.entry import Discontinuation

            discontinuation = Discontinuation(
                at=page.caller.at, reason=DiscontinuationReason.OTHER, note=note
            )
        order = ProposalOrder(
            proposal_id=_uuid(form.get("proposal_id")) or uuid.uuid4(),
            kind=kind,
            note=note,
            entry_id=None if kind is ProposalKind.QUESTION else entry_id,
            dosage=dosage,
            discontinuation=discontinuation,
            question=note if kind is ProposalKind.QUESTION else None,
        )
    except (ValidationError, ValueError):
        return _multidose_page(
            page,
            patient_id,
            status=422,
            proposal_form=dosage_form,
            refusal=Refusal(
                "invalid", page._("Choose what you propose and write a note."), status=422
            ),
        )
    try:
        multidose.propose_change(
            page.caller.engine,
            patient_id,
            order,
            page.caller.call(idempotency_key=f"page-{order.proposal_id}"),
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        return _multidose_page(
            page, patient_id, status=refusal.status, refusal=refusal, proposal_form=dosage_form
        )
    return page.redirect(url(f"pharmacy/patients/{patient_id}/multidose?saved=proposed"))


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
