"""The GP's pages: find a patient by national id; the list (active, held, discontinued in the
last 90 days) with each entry's dosage, prescriptions and dispensed totals, open alerts by
severity with their source, and the overrides on record; prescribe with a catalogue search as
you type, a structured dosage, the alerts before saving and an override reason where one is
needed; change dosage, hold, resume, discontinue, renew; accept or reject a multidose
pharmacy's proposal; the medication timeline.

The same policy (``Action.LIST_READ``/``LIST_WRITE``/``PROPOSAL_DECIDE``), commands
(``medloop.loop.prescribe``, ``change``, ``multidose``) and audited reads as the JSON API's
prescriber routes (``medloop/api/routes/gp.py``). Every form carries the list version it was
made from (``based_on``) and an idempotency key; a refusal is shown next to the field and
nothing is saved; a stale list shows what changed and the form again on the fresh list.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from interactions import Alert
from interactions.catalogue import Package
from medloop import queries
from medloop.api.auth import Role
from medloop.api.policy import Action
from medloop.api.routing import BlockingRoute
from medloop.api.screening import Proposal as Screening
from medloop.api.screening import screen
from medloop.domain.codes import DiscontinuationReason, EntryStatus
from medloop.domain.entry import Discontinuation, ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.multidose.proposals import Proposal
from medloop.domain.patient import Patient
from medloop.domain.prescription import PrescribedQuantity
from medloop.loop import change, multidose, prescribe
from medloop.loop.catalogue import DrugOrder, catalogue_in_force
from medloop.loop.errors import OverrideRequired
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, RenewOrder
from medloop.pages import signin
from medloop.pages.dosage_form import SLOTS, USES, DosageForm, dosage_text
from medloop.pages.i18n import N_
from medloop.pages.messages import GP_FORM_FIELDS, Refusal, explain
from medloop.pages.timeline import DAYS_SHOWN, TimelineRequest, timeline_page, timeline_request
from medloop.pages.web import FormDep, Page, PageDep, url
from medloop.timeline import Timeline

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)
signin.LANDINGS[Role.GP] = url("gp")

NATIONAL_ID = re.compile(r"\d{11}")
SEARCH_RESULTS = 20
DISCONTINUATION_REASONS: tuple[tuple[DiscontinuationReason, str], ...] = (
    (DiscontinuationReason.TREATMENT_ENDED, N_("Treatment ended")),
    (DiscontinuationReason.DRUG_REACTION, N_("Adverse reaction")),
    (DiscontinuationReason.LACK_OF_EFFECT, N_("No effect")),
    (DiscontinuationReason.INTERACTION, N_("Interaction")),
    (DiscontinuationReason.DUPLICATE_ENTRY, N_("Duplicate entry")),
    (DiscontinuationReason.PATIENT_STOPPED, N_("The patient stopped")),
    (DiscontinuationReason.PATIENT_HAS_NOT_USED, N_("The patient has not used it")),
    (DiscontinuationReason.OTHER, N_("Other reason")),
)
STATUS_NAMES = {
    EntryStatus.ACTIVE: N_("In use"),
    EntryStatus.ON_HOLD: N_("On hold"),
    EntryStatus.DISCONTINUED: N_("Discontinued"),
    EntryStatus.ENTERED_IN_ERROR: N_("Entered in error"),
}
CHANGE_NAMES = {
    "added": N_("Added"),
    "edited": N_("Changed"),
    "put-on-hold": N_("Put on hold"),
    "resumed": N_("Resumed"),
    "discontinued": N_("Discontinued"),
    "entered-in-error": N_("Entered in error"),
    "prescription-linked": N_("Prescribed"),
    "prescription-renewed": N_("Renewed"),
}
SEVERITY_NAMES = {
    "avoid": N_("Avoid"),
    "precautions": N_("Take precautions"),
    "info": N_("Information"),
    "no-action": N_("No action needed"),
}
PRESCRIPTION_STATUS_NAMES = {
    "E": N_("Dispensable"),
    "U": N_("Being dispensed"),
    "R": N_("Fully dispensed"),
    "T": N_("Recalled"),
    "F": N_("Expired"),
}
PROPOSAL_KIND_NAMES = {
    "new-entry": N_("New medicine"),
    "change-dosage": N_("Change the dosage"),
    "discontinue": N_("Discontinue"),
    "renew": N_("Renew the prescription"),
    "question": N_("Question"),
}


# -- reading the list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientList:
    """What the list page shows, read in one audited transaction."""

    patient: Patient
    list_version: int
    entries: tuple[ListEntry, ...]
    prescriptions: dict[UUID, list[queries.PrescriptionSummary]]
    alerts: list[Alert]
    overrides: list[queries.OverrideOnRecord]
    proposals: list[Proposal]
    names: dict[str, str]


def _patient_list(conn: Connection, patient_id: UUID, at: datetime) -> PatientList:
    current = queries.current_list(conn, patient_id, at)
    state = queries.patient_state(conn, patient_id)
    by_entry: dict[UUID, list[queries.PrescriptionSummary]] = {}
    for found in queries.prescriptions(conn, patient_id):
        by_entry.setdefault(found.entry_id, []).append(found)
    return PatientList(
        patient=state.patient,
        list_version=current.list_version,
        entries=current.entries,
        prescriptions=by_entry,
        alerts=sorted(queries.open_alerts(conn, patient_id), key=lambda a: a.severity.rank),
        overrides=list(reversed(queries.overrides(conn, patient_id))),
        proposals=multidose.pending_proposals(conn, patient_id),
        names={str(e.id): e.drug.name for e in state.medication_list.entries},
    )


def _read_list(page: Page, patient_id: UUID) -> PatientList:
    page.caller.authorize(Action.LIST_READ, patient_id)
    return page.caller.read(
        patient_id, "list", lambda conn: _patient_list(conn, patient_id, page.caller.at)
    )


def _common(page: Page) -> dict[str, Any]:
    """What every GP template uses to word codes and dosages."""
    _ = page._

    def number(value: float) -> str:
        from medloop.pages.i18n import format_decimal

        return format_decimal(value, page.lang)

    return {
        "dosage_text": lambda d: dosage_text(d, _, number),
        "number": number,
        "STATUS_NAMES": STATUS_NAMES,
        "CHANGE_NAMES": CHANGE_NAMES,
        "SEVERITY_NAMES": SEVERITY_NAMES,
        "PRESCRIPTION_STATUS_NAMES": PRESCRIPTION_STATUS_NAMES,
        "PROPOSAL_KIND_NAMES": PROPOSAL_KIND_NAMES,
        "DISCONTINUATION_REASONS": DISCONTINUATION_REASONS,
        "SLOTS": SLOTS,
        "USES": USES,
        "new_key": lambda: str(uuid.uuid4()),
        "day": lambda text: date.fromisoformat(text[:10]),
        # the dispensing tally counts packages when the prescription names packages
        "unit_name": lambda unit: _("package") if unit in ("package", "packages") else unit,
    }


# -- find a patient -----------------------------------------------------------------------------


@router.get("/app/gp", response_class=HTMLResponse)
def find_form(page: PageDep) -> Response:
    page.caller.authorize(Action.PATIENT_LOOKUP)
    return page.render("gp/find.html", national_id="", error=None)


@router.post("/app/gp/find", response_class=HTMLResponse)
def find(page: PageDep, form: FormDep) -> Response:
    national_id = str(form.get("national_id") or "").strip().replace(" ", "")
    page.caller.authorize(Action.PATIENT_LOOKUP)
    if not NATIONAL_ID.fullmatch(national_id):
        error = page._("A national id has 11 digits.")
        return page.render("gp/find.html", 422, national_id=national_id, error=error)
    found = page.state.read_unaudited(lambda conn: queries.find_patient_id(conn, national_id))
    # As the API's lookup: authorised against the patient found, so a refusal is audited there.
    page.caller.authorize(Action.PATIENT_LOOKUP, found)
    if found is None:
        error = page._("No medication list is kept for this national id.")
        return page.render("gp/find.html", 404, national_id=national_id, error=error)
    page.caller.read(found, "lookup", lambda conn: None)
    return page.redirect(url(f"gp/patients/{found}"))


# -- the list -----------------------------------------------------------------------------------


@router.get("/app/gp/patients/{patient_id}", response_class=HTMLResponse)
def patient_list(
    page: PageDep, patient_id: UUID, saved: Annotated[str | None, Query(max_length=40)] = None
) -> Response:
    listed = _read_list(page, patient_id)
    return page.render(
        "gp/list.html",
        listed=listed,
        patient_id=patient_id,
        saved=saved,
        **_permitted(page, patient_id),
        **_common(page),
    )


def _permitted(page: Page, patient_id: UUID) -> dict[str, bool]:
    """What of the prescriber's the list page shows: ``may_write`` its actions (prescribe,
    change, review, find another patient), ``may_decide`` the multidose proposals' forms. A
    nurse may read the list here, and those links and forms would refuse her."""

    return {
        "may_write": page.permits(Action.LIST_WRITE, patient_id),
        "may_decide": page.permits(Action.PROPOSAL_DECIDE, patient_id),
    }


# -- prescribe ----------------------------------------------------------------------------------


@dataclass
class PrescribeForm:
    """The prescribe form as shown (again): ids chosen when it was first shown, so that a
    retry with override reasons names the same alerts and a double submit saves once."""

    entry_id: str
    prescription_id: str
    idempotency_key: str
    based_on: int
    q: str = ""
    varenr: str = ""
    dosage: DosageForm = field(default_factory=DosageForm)
    indication: str = ""
    start: str = ""
    stop: str = ""
    packages: str = "1"
    repeats: str = "0"
    multidose: bool = False
    overrides: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fresh(cls, based_on: int, today: date) -> PrescribeForm:
        return cls(
            entry_id=str(uuid.uuid4()),
            prescription_id=str(uuid.uuid4()),
            idempotency_key=str(uuid.uuid4()),
            based_on=based_on,
            start=today.isoformat(),
        )

    @classmethod
    def posted(cls, form: FormData) -> PrescribeForm:
        overrides = overrides_posted(form)
        return cls(
            entry_id=_uuid_text(form.get("entry_id")),
            prescription_id=_uuid_text(form.get("prescription_id")),
            idempotency_key=_uuid_text(form.get("idempotency_key")),
            based_on=_int(form.get("based_on")),
            q=str(form.get("q") or "").strip(),
            varenr=str(form.get("varenr") or "").strip(),
            dosage=DosageForm.posted(form, form.getlist),
            indication=str(form.get("indication") or "").strip(),
            start=str(form.get("start") or "").strip(),
            stop=str(form.get("stop") or "").strip(),
            packages=str(form.get("packages") or "").strip(),
            repeats=str(form.get("repeats") or "").strip(),
            multidose=form.get("multidose") == "on",
            overrides=overrides,
        )

    def order(self, _: Callable[..., str]) -> PrescribeOrder | None:
        """The order, or ``None`` with ``errors`` by field."""
        dosage = self.dosage.read(_)
        self.errors = dict(self.dosage.errors)
        if not re.fullmatch(r"\d{6}", self.varenr):
            self.errors["varenr"] = _("Search for the medicine and choose a package.")
        start = _day(self.start)
        if start is None:
            self.errors["start"] = _("Write the start date as a date.")
        stop = _day(self.stop) if self.stop else None
        if self.stop and stop is None:
            self.errors["stop"] = _("Write the stop date as a date.")
        packages = _float(self.packages)
        if packages is None or packages <= 0:
            self.errors["packages"] = _("Write how many packages, above 0.")
        repeats = int(self.repeats) if self.repeats.isdigit() else None
        if repeats is None:
            self.errors["repeats"] = _("Write the number of repeats, 0 or more.")
        if self.errors or dosage is None:
            return None
        try:
            return PrescribeOrder(
                entry_id=UUID(self.entry_id),
                drug=DrugOrder(varenr=self.varenr),
                use=dosage.use,
                dosage=dosage,
                indication=self.indication or None,
                start=start,
                stop=stop,
                multidose=self.multidose,
                terms=PrescriptionTerms(
                    prescription_id=UUID(self.prescription_id),
                    quantity=PrescribedQuantity(packages=packages),
                    repeats=repeats,
                ),
            )
        except (ValidationError, ValueError) as error:
            self.errors["form"] = _("The prescription is not possible: %(why)s", why=_why(error))
            return None


_MAX_OVERRIDES = 50


def overrides_posted(form: FormData) -> dict[str, str]:
    """Alert key → the reason written next to it (``override-<n>-key`` with
    ``override-<n>-reason``; only the alerts that need one have the pair, so ``n`` skips)."""
    found = {}
    for name in list(form.keys())[: 10 * _MAX_OVERRIDES]:
        matched = re.fullmatch(r"override-(\d{1,3})-key", name)
        if matched is None:
            continue
        reason = str(form.get(f"override-{matched[1]}-reason") or "").strip()
        if reason:
            found[str(form.get(name))] = reason
    return found


@router.get("/app/gp/patients/{patient_id}/prescribe", response_class=HTMLResponse)
def prescribe_form(
    page: PageDep,
    patient_id: UUID,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    listed = _read_list(page, patient_id)
    form = PrescribeForm.fresh(listed.list_version, page.caller.day)
    form.q = q.strip()
    return _prescribe_page(page, patient_id, listed, form)


@router.get("/app/gp/catalogue-options", response_class=HTMLResponse)
def catalogue_options(
    page: PageDep,
    q: Annotated[str, Query(max_length=100)] = "",
    varenr: Annotated[str, Query(max_length=6)] = "",
) -> Response:
    """The search results as the prescribe form's radio buttons (the page's script fetches
    them as the GP types; without JavaScript the search button reloads the form)."""
    page.caller.authorize(Action.CATALOGUE_READ)
    return page.render(
        "gp/_package_options.html", packages=_search(page, q.strip()), q=q.strip(), varenr=varenr
    )


@router.post("/app/gp/patients/{patient_id}/prescribe", response_class=HTMLResponse)
def prescribe_post(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    posted = PrescribeForm.posted(form)
    action = form.get("action")
    if action == "search":
        listed = _read_list(page, patient_id)
        return _prescribe_page(page, patient_id, listed, posted)
    order = posted.order(page._)
    if order is None:
        listed = _read_list(page, patient_id)
        return _prescribe_page(page, patient_id, listed, posted, status=422)
    if action == "check":
        screened = page.caller.read(
            patient_id,
            "check",
            lambda conn: screen(
                conn,
                patient_id,
                [Screening(str(order.entry_id), order.drug, order.dosage, order.start, order.stop)],
                page.caller.day,
            ),
        )
        listed = _read_list(page, patient_id)
        return _prescribe_page(
            page, patient_id, listed, posted, checked=list(screened.alerts), names=screened.names
        )
    try:
        prescribe.prescribe(
            page.caller.engine,
            patient_id,
            order,
            page.caller.call(
                overrides=posted.overrides, idempotency_key=f"page-{posted.idempotency_key}"
            ),
            based_on=posted.based_on,
        )
    except DomainError as error:
        refusal = explain(error, page.lang, GP_FORM_FIELDS)
        listed = _read_list(page, patient_id)
        if refusal.stale:
            posted.based_on = listed.list_version
        alerts = list(error.alerts) if isinstance(error, OverrideRequired) else []
        return _prescribe_page(
            page,
            patient_id,
            listed,
            posted,
            status=refusal.status,
            refusal=refusal,
            checked=alerts or None,
        )
    return page.redirect(url(f"gp/patients/{patient_id}?saved=prescribed"))


def _prescribe_page(
    page: Page,
    patient_id: UUID,
    listed: PatientList,
    form: PrescribeForm,
    *,
    status: int = 200,
    refusal: Refusal | None = None,
    checked: list[Alert] | None = None,
    names: dict[str, str] | None = None,
) -> Response:
    packages = _search(page, form.q) if form.q else []
    if form.varenr and all(p.varenr != form.varenr for p in packages):
        packages = [*_search(page, form.varenr), *packages]
    return page.render(
        "gp/prescribe.html",
        status,
        listed=listed,
        patient_id=patient_id,
        form=form,
        packages=packages,
        refusal=refusal,
        checked=checked,
        alert_names={**listed.names, **(names or {})},
        **_common(page),
    )


def _search(page: Page, q: str) -> list[Package]:
    """Packages by varenr (six digits), ATC code (a letter and two digits, then more) or name
    (two letters or more), at most ``SEARCH_RESULTS``."""
    if len(q) < 2:
        return []
    catalogue = page.state.read_behind(catalogue_in_force)
    if re.fullmatch(r"\d{6}", q):
        found = catalogue.search(varenr=q)
    elif re.fullmatch(r"[A-Za-z]\d{2}[A-Za-z0-9]{0,4}", q):
        found = catalogue.search(atc=q) or catalogue.search(name=q)
    else:
        found = catalogue.search(name=q)
    return found[:SEARCH_RESULTS]


# -- one entry: change dosage, hold, resume, discontinue, renew ---------------------------------


@router.get("/app/gp/patients/{patient_id}/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(page: PageDep, patient_id: UUID, entry_id: UUID) -> Response:
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    listed = _read_list(page, patient_id)
    return _entry_page(page, patient_id, entry_id, listed)


def _entry_page(
    page: Page,
    patient_id: UUID,
    entry_id: UUID,
    listed: PatientList,
    *,
    status: int = 200,
    refusal: Refusal | None = None,
    failed: str | None = None,
    dosage: DosageForm | None = None,
) -> Response:
    entry = next((e for e in listed.entries if e.id == entry_id), None)
    if entry is None:
        from medloop.domain.medication_list import EntryNotFound

        raise EntryNotFound(f"the list has no entry {entry_id}", entry_id=entry_id)
    history = page.caller.read(
        patient_id, "entry-history", lambda conn: queries.entry_history(conn, patient_id, entry_id)
    )
    return page.render(
        "gp/entry.html",
        status,
        listed=listed,
        patient_id=patient_id,
        entry=entry,
        history=history,
        prescriptions=listed.prescriptions.get(entry_id, []),
        refusal=refusal,
        failed=failed,
        dosage_form=dosage or DosageForm.of(entry.dosage),
        **_common(page),
    )


_ENTRY_ACTIONS = ("dosage", "hold", "resume", "discontinue", "renew", "entered-in-error")


@router.post(
    "/app/gp/patients/{patient_id}/entries/{entry_id}/{action}", response_class=HTMLResponse
)
def entry_action(
    page: PageDep, patient_id: UUID, entry_id: UUID, action: str, form: FormDep
) -> Response:
    if action not in _ENTRY_ACTIONS:
        from starlette.exceptions import HTTPException

        raise HTTPException(404)
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    based_on = _int(form.get("based_on"))
    reason = str(form.get("reason") or "").strip() or None
    call = page.caller.call(
        reason=reason, idempotency_key=f"page-{_uuid_text(form.get('idempotency_key'))}"
    )
    engine = page.caller.engine
    dosage_form: DosageForm | None = None
    try:
        if action == "dosage":
            dosage_form = DosageForm.posted(form, form.getlist)
            dosage = dosage_form.read(page._)
            if dosage is None:
                listed = _read_list(page, patient_id)
                return _entry_page(
                    page,
                    patient_id,
                    entry_id,
                    listed,
                    status=422,
                    failed=action,
                    dosage=dosage_form,
                )
            change.change_dosage(engine, patient_id, entry_id, dosage, call, based_on=based_on)
        elif action == "hold":
            change.hold(engine, patient_id, entry_id, call, based_on=based_on)
        elif action == "resume":
            change.resume(engine, patient_id, entry_id, call, based_on=based_on)
        elif action == "entered-in-error":
            # the reason is required: the command refuses an empty one (reason-required)
            change.mark_entered_in_error(engine, patient_id, entry_id, call, based_on=based_on)
        elif action == "discontinue":
            code = DiscontinuationReason(str(form.get("code") or "X"))
            note = str(form.get("note") or "").strip() or None
            change.discontinue(
                engine,
                patient_id,
                entry_id,
                Discontinuation(at=page.caller.at, reason=code, note=note),
                call,
                based_on=based_on,
            )
        else:
            packages = _float(str(form.get("packages") or ""))
            repeats = str(form.get("repeats") or "0")
            prescription_id = UUID(_uuid_text(form.get("prescription_id")))
            order = RenewOrder(
                prescription_id=prescription_id,
                terms=PrescriptionTerms(
                    prescription_id=uuid.uuid4(),
                    quantity=PrescribedQuantity(packages=packages or 1),
                    repeats=int(repeats) if repeats.isdigit() else 0,
                ),
            )
            prescribe.renew(engine, patient_id, order, call, based_on=based_on)
    except DomainError as error:
        refusal = explain(error, page.lang, GP_FORM_FIELDS)
        listed = _read_list(page, patient_id)
        return _entry_page(
            page,
            patient_id,
            entry_id,
            listed,
            status=refusal.status,
            refusal=refusal,
            failed=action,
            dosage=dosage_form,
        )
    except (ValidationError, ValueError):
        listed = _read_list(page, patient_id)
        return _entry_page(
            page,
            patient_id,
            entry_id,
            listed,
            status=422,
            failed=action,
            dosage=dosage_form,
            refusal=Refusal("invalid", page._("A value in the form is not valid."), status=422),
        )
    return page.redirect(url(f"gp/patients/{patient_id}?saved={action}"))


# -- multidose proposals -------------------------------------------------------------------------


@router.post(
    "/app/gp/patients/{patient_id}/proposals/{proposal_id}/{decision}",
    response_class=HTMLResponse,
)
def decide_proposal(
    page: PageDep, patient_id: UUID, proposal_id: UUID, decision: str, form: FormDep
) -> Response:
    if decision not in ("accept", "reject"):
        from starlette.exceptions import HTTPException

        raise HTTPException(404)
    page.caller.authorize(Action.PROPOSAL_DECIDE, patient_id)
    reason = str(form.get("reason") or "").strip() or None
    call = page.caller.call(
        reason=reason, idempotency_key=f"page-{_uuid_text(form.get('idempotency_key'))}"
    )
    try:
        if decision == "accept":
            multidose.accept_proposal(
                page.caller.engine,
                patient_id,
                proposal_id,
                call,
                based_on=_int(form.get("based_on")),
            )
        else:
            multidose.reject_proposal(page.caller.engine, patient_id, proposal_id, call)
    except DomainError as error:
        refusal = explain(error, page.lang)
        listed = _read_list(page, patient_id)
        return page.render(
            "gp/list.html",
            refusal.status,
            listed=listed,
            patient_id=patient_id,
            saved=None,
            refusal=refusal,
            failed_proposal=proposal_id,
            **_permitted(page, patient_id),
            **_common(page),
        )
    return page.redirect(url(f"gp/patients/{patient_id}?saved=proposal-{decision}"))


# -- the timeline ---------------------------------------------------------------------------------


@router.get("/app/gp/patients/{patient_id}/timeline", response_class=HTMLResponse)
def timeline(
    page: PageDep,
    patient_id: UUID,
    days: Annotated[int, Query(ge=7, le=3660)] = DAYS_SHOWN,
) -> Response:
    page.caller.authorize(Action.LIST_READ, patient_id)

    def read(conn: Connection) -> tuple[Patient, TimelineRequest, Timeline | None]:
        # the mark first: a picture stored under it is never older than it
        mark = queries.timeline_mark(conn, patient_id)
        patient = queries.patient_state(conn, patient_id).patient
        request = timeline_request(page, patient_id, mark, days=days)
        drawn_from = None if request.cached else queries.timeline(conn, patient_id)
        return patient, request, drawn_from

    patient, request, drawn_from = page.caller.read(patient_id, "timeline", read)
    drawn = timeline_page(page, request, drawn_from)
    return page.render(
        "gp/timeline.html",
        patient=patient,
        patient_id=patient_id,
        drawn=drawn,
        days=days,
    )


# -- small readers of form values -----------------------------------------------------------------


def _int(value: Any) -> int:
    text = str(value or "")
    return int(text) if text.isdigit() and len(text) < 18 else -1


def _float(text: str) -> float | None:
    text = text.replace(",", ".")
    if not re.fullmatch(r"\d+(?:\.\d+)?", text):
        return None
    return float(text)


def _day(text: str) -> date | None:
    norwegian = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", text)
    try:
        if norwegian:
            return date(int(norwegian[3]), int(norwegian[2]), int(norwegian[1]))
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _uuid_text(value: Any) -> str:
    try:
        return str(UUID(str(value)))
    except ValueError:
        return str(uuid.uuid4())


def _why(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(e["msg"] for e in error.errors())
    return str(error)
