"""The nurse's pages: the ward round on a tablet (768 px and up, touch and keyboard).

- ``/app/nurse``: the wards of the nurse's organisation (one ward: straight to it).
- ``/app/nurse/wards/{ward}``: today's overview: every admitted resident, the doses per time
  slot with their state (due, late, missed, given …), PRN given in the last 24 h, open alerts.
  ``…/overview`` is the same table alone, which the page's own script fetches every minute
  (``static/nurse.js``) so the overview refreshes without a full reload; with JavaScript off a
  link reloads it.
- ``/app/nurse/residents/{patient}``: the resident's administration chart (MAR) for a day or a
  week (``?view=week``): each planned dose's state, who charted it and when, the witness, the
  dosage and the prescriber's overrides on each entry.
- ``/app/nurse/residents/{patient}/bedside``: the five rights at the bedside. First the
  wristband: scanned (national id, or a GS1 GSRN) and matched to the resident
  (``medloop.domain.administration.check_wristband``), or skipped with a reason; either is
  recorded in the audit log (an access with that reason). Then the doses to chart.
- ``/app/nurse/residents/{patient}/entries/{entry}/chart``: charting one dose (``?dose=`` the
  planned dose; without it a PRN dose): the pack scan (a keyboard-wedge scanner types the
  code and Enter; ``…/pack`` answers at once whether it is a right pack,
  ``medloop.loop.scanning.check_pack``), given / not given / refused / held with a reason code,
  the PRN limits written on the prescription and the PRN doses given in the last 24 h, a limit
  override reason, and the witness, who signs with their own credentials at the identity
  provider (``medloop.pages.witness``; demo: the demo nurse chooses to sign). Either way the
  signature is a one-use grant for this nurse's session, resident, medicine and planned dose
  (``witness_grant``), used up by the charting command in its own transaction.

Everything goes through the same policy (``medloop.api.policy``), commands
(``medloop.loop.administration.chart``) and audited reads as the JSON API's nursing routes
(``medloop.api.routes.nursing``); a refusal is shown next to its field, nothing saved.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from interactions.dosage import Quantity, Use
from medloop import queries
from medloop.api.auth import Principal, Role, Unauthenticated, principal_from_claims
from medloop.api.policy import Action, authorize_ward, authorize_witness
from medloop.api.problems import Forbidden
from medloop.api.routing import BlockingRoute
from medloop.domain.administration import (
    ChartRequest,
    DoseStatus,
    Outcome,
    ScanSkipReason,
    WitnessSignatureUsed,
    check_wristband,
)
from medloop.domain.errors import DomainError
from medloop.domain.oslo import local_date
from medloop.loop import administration
from medloop.loop.scanning import check_pack, read_wristband
from medloop.pages import signin
from medloop.pages.i18n import N_
from medloop.pages.messages import Refusal, explain
from medloop.pages.web import FormDep, Page, PageDep, url
from medloop.store import sessions
from medloop.store.columns import StoredRecordUnreadable

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)
signin.LANDINGS[Role.NURSE] = url("nurse")

WITNESS_SIGNATURE = timedelta(minutes=10)
"""How long a witness's signature stays usable for the charting it was given for."""

OUTCOMES = (
    (Outcome.GIVEN, N_("Given")),
    (Outcome.NOT_GIVEN, N_("Not given")),
    (Outcome.REFUSED, N_("Refused by the resident")),
    (Outcome.HELD, N_("Held")),
)
REASONS: dict[str, list[tuple[str, str]]] = {
    # The reason codes offered per outcome; the code is stored, with the nurse's note after it.
    Outcome.NOT_GIVEN.value: [
        ("asleep", N_("Resident asleep")),
        ("absent", N_("Resident not on the ward")),
        ("nil-by-mouth", N_("Nil by mouth")),
        ("vomiting", N_("Vomiting")),
        ("drug-unavailable", N_("Medicine not available")),
        ("other", N_("Other (write in the note)")),
    ],
    Outcome.REFUSED.value: [
        ("refused", N_("The resident said no")),
        ("spat-out", N_("Spat out")),
        ("other", N_("Other (write in the note)")),
    ],
    Outcome.HELD.value: [
        ("clinical-judgement", N_("Clinical judgement")),
        ("vital-signs", N_("Vital signs out of range")),
        ("doctor-order", N_("On the doctor's order")),
        ("other", N_("Other (write in the note)")),
    ],
}
SCAN_SKIPS = (
    (ScanSkipReason.MULTIDOSE_BAG, N_("Multidose bag (checked against the bag's label)")),
    (ScanSkipReason.NO_BARCODE, N_("The pack has no barcode")),
    (ScanSkipReason.BARCODE_UNREADABLE, N_("The barcode cannot be read")),
    (ScanSkipReason.SCANNER_UNAVAILABLE, N_("No scanner at hand")),
    (ScanSkipReason.EMERGENCY, N_("Emergency")),
)
WRISTBAND_SKIPS = (
    ("no-wristband", N_("The resident wears no wristband")),
    ("unreadable", N_("The wristband cannot be read")),
    ("scanner-unavailable", N_("No scanner at hand")),
    ("resident-distressed", N_("Scanning would distress the resident")),
)
STATES = {
    # How each state of a planned dose is named on the pages.
    DoseStatus.PLANNED.value: N_("Later"),
    DoseStatus.DUE.value: N_("Due now"),
    DoseStatus.OVERDUE.value: N_("Late"),
    DoseStatus.MISSED.value: N_("Missed"),
    DoseStatus.GIVEN.value: N_("Given"),
    DoseStatus.NOT_GIVEN.value: N_("Not given"),
    DoseStatus.REFUSED.value: N_("Refused"),
    DoseStatus.HELD.value: N_("Held"),
    "superseded": N_("Superseded"),
}
SUMMARY_STATES = ("due", "overdue", "missed", "planned", "given")


# -- reads ------------------------------------------------------------------------------------


def _ward_organisation(page: Page, ward_id: UUID) -> str | None:
    return page.state.read_unaudited(lambda conn: queries.ward_organisation(conn, ward_id))


@router.get("/app/nurse")
def wards(page: PageDep) -> Response:
    _nurse_only(page)
    organisation = page.principal.organisation or ""
    found = page.state.read_unaudited(lambda conn: queries.wards_of(conn, organisation))
    if len(found) == 1:
        return page.redirect(url(f"nurse/wards/{found[0].id}"))
    return page.render("nurse/wards.html", wards=found)


def _overview(page: Page, ward_id: UUID) -> dict[str, Any]:
    authorize_ward(
        page.state.engine,
        page.principal,
        Action.WARD_READ,
        _ward_organisation(page, ward_id),
        request_id=page.caller.request_id,
    )
    at = page.caller.at
    today = local_date(at)

    def read(conn: Any) -> tuple[dict[str, Any], list[UUID]]:
        # The overview shows no PRN limits: the residents' lists are not read for them.
        chart = administration.ward_chart(conn, ward_id, today, at, prn_limits=False)
        ids = [p.patient_id for p in chart.patients]
        try:
            residents = _resident_rows(conn, page, chart.patients)
        except StoredRecordUnreadable:
            # One resident's record among them does not load: each resident alone, so that
            # the others' rows are shown and that one names the record.
            residents = []
            for p in chart.patients:
                try:
                    residents += _resident_rows(conn, page, [p])
                except StoredRecordUnreadable as error:
                    residents.append(_unreadable_row(conn, p.patient_id, error))
        residents.sort(key=lambda r: r["unreadable"] is None)  # those not shown first
        return {
            "ward": queries.ward_of(conn, ward_id),
            "day": today,
            "slots": sorted({slot for r in residents for slot in r["by_slot"]}),
            "residents": residents,
        }, ids

    return page.caller.read_many("administration.read.ward-chart", read)


def _resident_rows(conn: Any, page: Page, charts: Sequence[Any]) -> list[dict[str, Any]]:
    """The overview's rows of the residents of ``charts`` (``_resident_row``), their names,
    open alerts and PRN doses of the last 24 h read in one query each for all of them."""
    at = page.caller.at
    readable = [p for p in charts if p.unreadable is None]
    ids = [p.patient_id for p in charts]
    names = queries.residents(conn, ids)
    open_alerts = queries.open_alert_counts(conn, [p.patient_id for p in readable])
    prn = administration.as_needed_given(
        conn,
        [p.patient_id for p in readable],
        at - timedelta(hours=24),
        _through(at),
        organisation_id=page.principal.organisation,
    )
    # The PRN doses' medicines (name; entry since entered in error?), in one query.
    drugs = administration.prn_medicines(conn, prn)
    slot_of = _SlotLabels()
    return [
        _unreadable_row(conn, p.patient_id, p.unreadable, names.get(p.patient_id))
        if p.unreadable is not None
        else _resident_row(
            p,
            names.get(p.patient_id),
            [(g, drugs.get(g.entry_id)) for g in prn.get(p.patient_id, [])],
            open_alerts[p.patient_id],
            slot_of,
        )
        for p in charts
    ]


def _unreadable_row(
    conn: Any, patient_id: UUID, error: StoredRecordUnreadable, patient: Any = None
) -> dict[str, Any]:
    """The overview's row of a resident a stored record of whose does not load: who (when the
    patient's own record loads) and the record that does not, nothing of their day."""
    if patient is None and error.table != "patient":
        try:
            patient = queries.residents(conn, [patient_id]).get(patient_id)
        except StoredRecordUnreadable:
            patient = None
    return {
        "patient_id": patient_id,
        "name": _name(patient),
        "by_slot": {},
        "counts": dict.fromkeys(SUMMARY_STATES, 0),
        "prn": [],
        "open_alerts": 0,
        "unreadable": error.record,
    }


def _name(patient: Any) -> str:
    return "" if patient is None else f"{patient.given_name} {patient.family_name}"


class _SlotLabels(dict[datetime, str]):
    """A dose's time slot as the overview heads it ("08:00"), formatted once per wall time for a
    whole overview (a ward's ~1 000 doses fall on a handful of times)."""

    def __missing__(self, local_time: datetime) -> str:
        label = self[local_time] = local_time.strftime("%H:%M")
        return label


def _resident_row(
    chart: Any, patient: Any, prn: list[Any], open_alerts: int, slot_of: _SlotLabels
) -> dict[str, Any]:
    """One resident's line of the overview: per time slot how many doses are in each state, and
    how many in each of ``SUMMARY_STATES`` in all."""
    by_slot: dict[str, dict[str, int]] = {}
    total = dict.fromkeys(SUMMARY_STATES, 0)
    for line in chart.doses:
        state = line.status.value
        counts = by_slot.setdefault(slot_of[line.local_time], {})
        counts[state] = counts.get(state, 0) + 1
        if state in total:
            total[state] += 1
    return {
        "patient_id": chart.patient_id,
        "name": _name(patient),
        "by_slot": by_slot,
        "counts": total,
        "prn": prn,
        "open_alerts": open_alerts,
        "unreadable": None,
    }


@router.get("/app/nurse/wards/{ward_id}")
def ward(page: PageDep, ward_id: UUID) -> Response:
    _nurse_only(page)
    return page.render("nurse/ward.html", states=STATES, **_overview(page, ward_id))


@router.get("/app/nurse/wards/{ward_id}/overview")
def ward_overview(page: PageDep, ward_id: UUID) -> Response:
    """The overview table alone (the page's script swaps it in every minute)."""
    _nurse_only(page)
    return page.render("nurse/_overview.html", states=STATES, **_overview(page, ward_id))


def _nurse_only(page: Page) -> None:
    if page.principal.role is not Role.NURSE:
        raise Forbidden("the ward round pages are for nurses")


def _resident(
    page: Page, patient_id: UUID, first_day: date, days: int, *, prn: bool = False
) -> dict[str, Any]:
    page.caller.authorize(Action.CHART_READ, patient_id)
    at = page.caller.at
    organisation = page.principal.organisation

    def read(conn: Any) -> dict[str, Any]:
        listed = queries.current_list(conn, patient_id, at)
        return {
            "patient": queries.residents(conn, [patient_id]).get(patient_id),
            "days": administration.resident_chart(
                conn, patient_id, first_day, days, at, organisation_id=organisation
            ),
            "entries": listed.entries,
            "list_version": listed.list_version,
            "alerts": queries.open_alerts(conn, patient_id),
            "overrides": queries.overrides(conn, patient_id),
            "prn_24h": administration.as_needed_given(
                conn,
                [patient_id],
                at - timedelta(hours=24),
                _through(at),
                organisation_id=organisation,
            ).get(patient_id, []),
            # the ward chart's PRN lines (doses remaining, next allowed), for the charting page
            "prn_lines": administration.prn_lines(conn, patient_id, at) if prn else [],
        }

    found = page.caller.read(patient_id, "administration-chart", read)
    found["drugs"] = {e.id: e for e in found["entries"]}
    return found


@router.get("/app/nurse/residents/{patient_id}")
def resident(
    page: PageDep,
    patient_id: UUID,
    day: Annotated[date | None, Query()] = None,
    view: Annotated[str, Query(pattern="^(day|week)$")] = "day",
) -> Response:
    _nurse_only(page)
    today = page.caller.day
    shown = day or today
    first = shown - timedelta(days=shown.weekday()) if view == "week" else shown
    days = 7 if view == "week" else 1
    found = _resident(page, patient_id, first, days)
    return page.render(
        "nurse/resident.html",
        patient_id=patient_id,
        view=view,
        shown=shown,
        today=today,
        previous=first - timedelta(days=days),
        following=first + timedelta(days=days),
        states=STATES,
        reasons=_reason_labels(),
        **found,
    )


def _reason_labels() -> dict[str, str]:
    return {code: label for options in REASONS.values() for code, label in options}


# -- the bedside: wristband, then the doses ----------------------------------------------------


@router.get("/app/nurse/residents/{patient_id}/bedside")
def bedside(
    page: PageDep,
    patient_id: UUID,
    identity: Annotated[str | None, Query(max_length=100)] = None,
    charted: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    _nurse_only(page)
    return _bedside(page, patient_id, identity=_identity(identity), charted=charted)


def _identity(value: str | None) -> str | None:
    """``scan`` or ``skip:<reason>`` when the resident was confirmed at this bedside visit."""
    if value == "scan":
        return value
    if value and value.startswith("skip:") and value[5:] in dict(WRISTBAND_SKIPS):
        return value
    return None


def _bedside(
    page: Page,
    patient_id: UUID,
    *,
    identity: str | None,
    refusal: Refusal | None = None,
    charted: str | None = None,
    status: int = 200,
    alerts: list[Any] | None = None,
) -> HTMLResponse:
    today = page.caller.day
    found = _resident(page, patient_id, today, 1)
    return page.render(
        "nurse/bedside.html",
        status=status,
        patient_id=patient_id,
        identity=identity,
        refusal=refusal,
        charted=charted,
        wristband_skips=WRISTBAND_SKIPS,
        states=STATES,
        today=found["days"][0],
        given_alerts=alerts or [],
        **found,
    )


@router.post("/app/nurse/residents/{patient_id}/bedside")
def confirm_resident(page: PageDep, form: FormDep, patient_id: UUID) -> Response:
    """The wristband scanned (or why not): matched to the resident, recorded in the audit log."""
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    code = str(form.get("wristband") or "").strip()
    skip = str(form.get("wristband_skipped") or "")
    if not code and skip not in dict(WRISTBAND_SKIPS):
        refusal = Refusal(
            "wristband-required",
            page._(N_("Scan the resident's wristband, or choose why it cannot be scanned.")),
            "wristband",
            422,
        )
        return _bedside(page, patient_id, identity=None, refusal=refusal, status=422)
    try:
        if code:
            band = read_wristband(code)

            def check(conn: Any) -> None:
                patient = queries.residents(conn, [patient_id]).get(patient_id)
                national_id = "" if patient is None else str(patient.national_id)
                registered = (
                    None
                    if band.gsrn is None
                    else administration.wristband_gsrn(
                        conn, patient_id, page.principal.actor, page.caller.at
                    )
                )
                check_wristband(national_id, band.national_id, band.gsrn, registered)

            page.caller.read(
                patient_id, "administration.bedside.wristband", check, reason="wristband scanned"
            )
            identity = "scan"
        else:
            page.caller.read(
                patient_id,
                "administration.bedside.wristband",
                lambda conn: None,
                reason=f"wristband not scanned: {skip}",
            )
            identity = f"skip:{skip}"
    except DomainError as error:
        refusal = explain(error, page.lang)
        refusal = Refusal(refusal.code, refusal.text, "wristband", refusal.status)
        return _bedside(page, patient_id, identity=None, refusal=refusal, status=refusal.status)
    return page.redirect(url(f"nurse/residents/{patient_id}/bedside?identity={identity}"))


# -- charting a dose ---------------------------------------------------------------------------


def _chart_context(
    page: Page, patient_id: UUID, entry_id: UUID, dose_id: UUID | None
) -> dict[str, Any]:
    today = page.caller.day
    found = _resident(page, patient_id, today - timedelta(days=1), 2, prn=True)
    entry = found["drugs"].get(entry_id)
    if entry is None:
        raise _NotOnList()
    line = None
    if dose_id is not None:
        line = next(
            (d for day in found["days"] for d in day.doses if d.planned_dose_id == dose_id), None
        )
        if line is None:
            raise _NotOnList()
    as_needed = entry.dosage.as_needed[0] if entry.dosage and entry.dosage.as_needed else None
    amount = line.amount if line is not None else (as_needed.amount if as_needed else None)
    return {
        **found,
        "entry": entry,
        "line": line,
        "prn": entry.use is Use.AS_NEEDED,
        "as_needed": as_needed,
        "dose_amount": amount,
        "prn_given": [g for g in found["prn_24h"] if g.entry_id == entry_id],
        "prn_now": page.caller.at,
        "prn_status": next(
            (line.status for line in found["prn_lines"] if line.entry_id == entry_id), None
        ),
        "entry_overrides": [o for o in found["overrides"] if str(entry_id) in o.alert.medications],
    }


class _NotOnList(Exception):
    """The entry or planned dose is not on the resident's chart (any more)."""


def _chart_page(
    page: Page,
    patient_id: UUID,
    entry_id: UUID,
    dose_id: UUID | None,
    *,
    values: dict[str, str],
    refusal: Refusal | None = None,
    pack: Any = None,
    pack_refusal: Refusal | None = None,
    witness: Principal | None = None,
    witness_session: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    try:
        context = _chart_context(page, patient_id, entry_id, dose_id)
    except _NotOnList:
        return page.render(
            "error.html",
            status=404,
            title_key=N_("Not found"),
            message_key=N_("This dose is no longer on the chart. Reload the page."),
        )
    return page.render(
        "nurse/chart.html",
        status=status,
        patient_id=patient_id,
        entry_id=entry_id,
        dose_id=dose_id,
        values=values,
        refusal=refusal,
        pack=pack,
        pack_refusal=pack_refusal,
        scanned=values.get("pack", "").strip() if pack or pack_refusal else "",
        witness=witness,
        witness_session=witness_session,
        witness_people=_witness_people(page),
        witness_oidc=page.request.app.state.pages.oidc is not None,
        outcomes=OUTCOMES,
        reasons=REASONS,
        scan_skips=SCAN_SKIPS,
        states=STATES,
        **context,
    )


def _witness_people(page: Page) -> list[signin.DemoPerson]:
    """Who may sign as witness here: in the demo, the other demo nurses of the organisation."""
    if not page.request.app.state.pages.demo_sign_in:
        return []
    return [
        p
        for p in signin.demo_people()
        if p.claims["role"] == Role.NURSE.value
        and p.claims.get("org") == page.principal.organisation
        and p.claims["sub"] != page.principal.subject
    ]


@router.get("/app/nurse/residents/{patient_id}/entries/{entry_id}/chart")
def chart_form(
    page: PageDep,
    patient_id: UUID,
    entry_id: UUID,
    dose: Annotated[UUID | None, Query()] = None,
    identity: Annotated[str | None, Query(max_length=100)] = None,
    witness: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The charting form; ``witness`` is the grant of a witness who just signed at the
    identity provider (``medloop.pages.witness``): the form comes back as it was, signed."""
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    values: dict[str, str] = {}
    signed = None
    if witness:
        try:
            signed = find_witness_grant(page, witness, patient_id, entry_id, dose)
        except WitnessGrantRefused as refused:
            return _chart_page(
                page,
                patient_id,
                entry_id,
                dose,
                values={"identity": _identity(identity) or ""},
                refusal=refused.refusal,
                status=refused.refusal.status,
            )
        if signed is not None:
            values = {k: str(v) for k, v in (signed[1].get("values") or {}).items()}
    confirmed = _identity(identity) or _identity(values.get("identity"))
    if confirmed is None:
        return page.redirect(url(f"nurse/residents/{patient_id}/bedside"))
    return _chart_page(
        page,
        patient_id,
        entry_id,
        dose,
        values={**values, "identity": confirmed},
        witness=None if signed is None else signed[0],
        witness_session=witness if signed is not None else None,
    )


def _values(form: FormData) -> dict[str, str]:
    keep = (
        "identity", "outcome", "reason_code", "reason_note", "pack", "scan_skipped",
        "amount", "limit_override", "administration_id",
    )  # fmt: skip
    return {name: str(form.get(name) or "") for name in keep}


@router.post("/app/nurse/residents/{patient_id}/entries/{entry_id}/pack")
def check_pack_page(
    page: PageDep,
    form: FormDep,
    patient_id: UUID,
    entry_id: UUID,
    dose: Annotated[UUID | None, Query()] = None,
    partial: Annotated[bool, Query()] = False,
) -> Response:
    """Is the scanned pack right for this entry? Answered at once (the page's script shows
    the partial in place; with JavaScript off the whole form comes back with the answer)."""
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    values = _values(form)
    code = values["pack"].strip()
    pack, refusal = None, None
    at = page.caller.at

    def read(conn: Any) -> Any:
        listed = queries.current_list(conn, patient_id, at)
        entry = next((e for e in listed.entries if e.id == entry_id), None)
        if entry is None:
            raise _NotOnList()
        return check_pack(conn, entry, code, local_date(at))

    if not code:
        refusal = Refusal("scan-empty", page._(N_("Scan the pack first.")), "pack", 422)
    else:
        try:
            pack = page.caller.read(patient_id, "administration.bedside.pack-check", read)
        except DomainError as error:
            refusal = explain(error, page.lang)
        except _NotOnList:
            refusal = Refusal(
                "entry-not-found",
                page._(N_("This medicine is no longer on the list. Reload the page.")),
                "pack",
                404,
            )
    if partial:
        return page.render(
            "nurse/_pack.html",
            status=200 if refusal is None else refusal.status,
            pack=pack,
            pack_refusal=refusal,
            scanned=code,
        )
    witness, witness_session = _witness_of(page, form, patient_id, entry_id, dose)
    return _chart_page(
        page,
        patient_id,
        entry_id,
        dose,
        values=values,
        pack=pack,
        pack_refusal=refusal,
        witness=witness,
        witness_session=witness_session,
        status=200 if refusal is None else refusal.status,
    )


@router.post("/app/nurse/residents/{patient_id}/entries/{entry_id}/witness")
def witness_signs(
    page: PageDep,
    form: FormDep,
    patient_id: UUID,
    entry_id: UUID,
    dose: Annotated[UUID | None, Query()] = None,
) -> Response:
    """The second nurse signs as witness with their own sign-in (a short signature session of
    their own, never the charting nurse's); the form comes back with the signature on it."""
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    values = _values(form)
    chosen = next((p for p in _witness_people(page) if p.key == form.get("witness_person")), None)
    if chosen is None:
        refusal = Refusal(
            "witness-required",
            page._(N_("Choose who signs as witness, and let them sign.")),
            "witness",
            422,
        )
        return _chart_page(
            page, patient_id, entry_id, dose, values=values, refusal=refusal, status=422
        )
    grant = witness_grant(page, chosen.claims, patient_id, entry_id, dose, values)
    return _chart_page(
        page,
        patient_id,
        entry_id,
        dose,
        values=values,
        witness=principal_from_claims(chosen.claims),
        witness_session=grant,
    )


def witness_grant(
    page: Page,
    witness_claims: dict[str, Any],
    patient_id: UUID,
    entry_id: UUID,
    dose_id: UUID | None,
    values: dict[str, str],
) -> str:
    """A witness's signature for ONE charting: a one-use grant kept server-side (a row of the
    session table, under claims no session accepts — no top-level role — so its id cannot be
    used as the witness's session), bound to this nurse's session, the resident, the entry and
    the planned dose, for ``WITNESS_SIGNATURE``; ``values`` is the form as it was when the
    witness was asked. The charting command consumes it in its own transaction."""
    return store_witness_grant(
        page.state.engine,
        page.caller.at,
        witness_claims,
        {
            "for": page.principal.subject,
            "session": sessions.digest(page.session_id),
            "patient": str(patient_id),
            "entry": str(entry_id),
            "dose": None if dose_id is None else str(dose_id),
            "values": values,
        },
    )


def store_witness_grant(
    engine: Any, at: Any, witness_claims: dict[str, Any], binding: dict[str, Any]
) -> str:
    """Keep a witness grant (see ``witness_grant``); ``binding`` names the nurse (``for``), the
    nurse's session digest, the resident, entry and dose, and the form's values."""
    grant, _ = sessions.start(
        engine,
        {"witness_signature": witness_claims, **binding},
        now=at,
        expires_at=at + WITNESS_SIGNATURE,
    )
    return grant


class WitnessGrantRefused(Exception):
    """The witness's signature in the form cannot be used for this charting."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


def find_witness_grant(
    page: Page, grant: str | None, patient_id: UUID, entry_id: UUID, dose_id: UUID | None
) -> tuple[Principal, dict[str, Any]] | None:
    """The witness of the grant ``grant`` and the grant's claims; ``None`` without one.
    ``WitnessGrantRefused`` when it is gone (used, expired) or was given for another nurse's
    session, resident, medicine or dose."""
    if not grant:
        return None
    found = sessions.find(page.state.engine, grant, now=page.caller.at)
    if found is None or not isinstance(found.claims.get("witness_signature"), dict):
        raise WitnessGrantRefused(explain(WitnessSignatureUsed("gone"), page.lang))
    claims = found.claims
    if (
        claims.get("for") != page.principal.subject
        or claims.get("session") != sessions.digest(page.session_id)
        or claims.get("patient") != str(patient_id)
        or claims.get("entry") != str(entry_id)
        or claims.get("dose") != (None if dose_id is None else str(dose_id))
    ):
        raise WitnessGrantRefused(
            Refusal(
                "witness-signature-of-another-dose",
                page._(
                    N_(
                        "The witness signed for another dose. Nothing was saved: the witness "
                        "signs again for this dose."
                    )
                ),
                "witness",
                409,
            )
        )
    try:
        return principal_from_claims(claims["witness_signature"]), claims
    except Unauthenticated:
        raise WitnessGrantRefused(explain(WitnessSignatureUsed("gone"), page.lang)) from None


def _witness_of(
    page: Page, form: FormData, patient_id: UUID, entry_id: UUID, dose_id: UUID | None
) -> tuple[Principal | None, str | None]:
    """The witness who signed for this form, carried along while the form is worked on (the
    pack check); a signature that cannot be used is dropped here and refused on saving."""
    grant = str(form.get("witness_session") or "") or None
    try:
        found = find_witness_grant(page, grant, patient_id, entry_id, dose_id)
    except WitnessGrantRefused:
        return None, None
    return (None, None) if found is None else (found[0], grant)


@router.post("/app/nurse/residents/{patient_id}/entries/{entry_id}/chart")
def chart(
    page: PageDep,
    form: FormDep,
    patient_id: UUID,
    entry_id: UUID,
    dose: Annotated[UUID | None, Query()] = None,
) -> Response:
    _nurse_only(page)
    page.caller.authorize(Action.CHART_WRITE, patient_id)
    values = _values(form)
    identity = _identity(values["identity"])
    if identity is None:
        return page.redirect(url(f"nurse/residents/{patient_id}/bedside"))
    witness_session = str(form.get("witness_session") or "") or None
    try:
        found = find_witness_grant(page, witness_session, patient_id, entry_id, dose)
    except WitnessGrantRefused as refused:
        saved = _saved_already(page, patient_id, entry_id, _uuid(values["administration_id"]))
        if refused.refusal.code == WitnessSignatureUsed.code and saved is not None:
            # The same form saved twice (a double tap): its grant went with the first save,
            # which the second answers, as the idempotency key does for a dose without one.
            return _bedside(page, patient_id, identity=identity, charted=saved)
        return _chart_page(
            page,
            patient_id,
            entry_id,
            dose,
            values=values,
            refusal=refused.refusal,
            status=refused.refusal.status,
        )
    witness = None if found is None else found[0]
    outcome_value = values["outcome"]
    again = {
        "values": values,
        "witness": witness,
        "witness_session": witness_session,
    }
    if outcome_value not in {o.value for o, _ in OUTCOMES}:
        refusal = Refusal(
            "outcome-required", page._(N_("Choose what happened to the dose.")), "outcome", 422
        )
        return _chart_page(page, patient_id, entry_id, dose, refusal=refusal, status=422, **again)
    outcome = Outcome(outcome_value)
    try:
        context = _chart_context(page, patient_id, entry_id, dose)
    except _NotOnList:
        return _chart_page(page, patient_id, entry_id, dose, **again)
    reason = None
    if outcome is not Outcome.GIVEN:
        code = values["reason_code"]
        if code not in dict(REASONS[outcome.value]):
            refusal = Refusal("reason-required", page._(N_("Choose a reason.")), "reason_code", 422)
            return _chart_page(
                page, patient_id, entry_id, dose, refusal=refusal, status=422, **again
            )
        note = values["reason_note"].strip()
        if code == "other" and not note:
            refusal = Refusal(
                "reason-required",
                page._(N_("Write what happened in the note.")),
                "reason_note",
                422,
            )
            return _chart_page(
                page, patient_id, entry_id, dose, refusal=refusal, status=422, **again
            )
        reason = code + (f": {note}" if note else "")
    amount = context["dose_amount"]
    given_dose = None
    if outcome is Outcome.GIVEN and amount is not None:
        value = _number(values["amount"]) if values["amount"] else amount.value
        if value is None or value <= 0:
            refusal = Refusal(
                "amount-invalid", page._(N_("Write the amount as a number.")), "amount", 422
            )
            return _chart_page(
                page, patient_id, entry_id, dose, refusal=refusal, status=422, **again
            )
        given_dose = Quantity(value=value, unit=amount.unit)
    skip = values["scan_skipped"]
    administration_id = _uuid(values["administration_id"]) or uuid.uuid4()
    values["administration_id"] = str(administration_id)
    try:
        request = ChartRequest(
            administration_id=administration_id,
            entry_id=entry_id,
            planned_dose_id=dose,
            outcome=outcome,
            given_at=page.caller.at if outcome is Outcome.GIVEN else None,
            dose=given_dose,
            reason=reason,
            scan=(values["pack"].strip() or None) if outcome is Outcome.GIVEN else None,
            scan_skipped=ScanSkipReason(skip)
            if outcome is Outcome.GIVEN and skip and not values["pack"].strip()
            else None,
            limit_override=values["limit_override"].strip() or None,
        )
    except ValueError:
        refusal = Refusal(
            "charting-incomplete",
            page._(N_("Fill in what is missing before saving.")),
            None,
            422,
        )
        return _chart_page(page, patient_id, entry_id, dose, refusal=refusal, status=422, **again)
    try:
        if witness is not None:
            authorize_witness(page.principal, witness)
        result = administration.chart(
            page.state.engine,
            patient_id,
            request,
            # The form's charting id is the idempotency key: a double tap charts once.
            page.caller.call(idempotency_key=f"page-chart:{administration_id}"),
            witness=None if witness is None else witness.actor,
            # The grant is used up by this charting, in its transaction (once, whatever
            # happens to the form afterwards).
            witness_signature=None
            if witness_session is None
            else lambda conn: sessions.take(conn, witness_session, now=page.caller.at) is not None,
        )
    except (DomainError, Forbidden) as error:
        refusal = explain(error, page.lang)
        return _chart_page(
            page, patient_id, entry_id, dose, refusal=refusal, status=refusal.status, **again
        )
    alerts = [a.model_dump(mode="json") for a in result.alerts]
    return _bedside(
        page,
        patient_id,
        identity=identity,
        charted=context["entry"].drug.name,
        alerts=alerts,
    )


def _saved_already(
    page: Page, patient_id: UUID, entry_id: UUID, administration_id: UUID | None
) -> str | None:
    """The medicine's name when this form's charting (``administration_id``) was saved already
    by this nurse for this entry; ``None`` otherwise."""
    if administration_id is None:
        return None

    def read(conn: Any) -> str | None:
        try:
            found = administration.charting(conn, patient_id, administration_id).administration
        except DomainError:
            return None
        mine = found.performer is not None and (
            found.performer.personnel.hpr_number == page.principal.subject
        )
        if found.entry_id != entry_id or not mine:
            return None
        listed = queries.current_list(conn, patient_id, page.caller.at)
        return next((e.drug.name for e in listed.entries if e.id == entry_id), "")

    return page.caller.read(patient_id, "administration.chart.saved", read)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ".").replace(" ", ""))
    except ValueError:
        return None


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


__all__ = ["router"]


def _through(at: Any) -> Any:
    """The end of a window that includes ``at`` itself (the queries' windows are half-open):
    a dose given this very moment counts as given in the last 24 hours."""
    return at + timedelta(microseconds=1)
