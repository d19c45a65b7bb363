"""The GP's page for the medication review meeting (legemiddelgjennomgang, issue #19): the list
at its version, every finding of the review criteria with its criterion, set, summary, detail
and source, the ACB score with the drugs that make it, what could not be assessed and why, what
changed since the last signed review; a form to record a decision per finding (continue with a
reason, change the dosage, stop) and who took part, and sign; the signed reviews with their PDF.

The same policy actions (``Action.LIST_READ`` to read, ``Action.LIST_WRITE`` to sign — the
page is the signing form, so opening it needs both), the same audited reads
(``queries.review_assessment``, ``medication_reviews``, ``medication_review``) and exactly the
command the API's ``POST /patients/{id}/reviews`` runs (``medloop.loop.review.sign_review``),
with the list version the form was made from and an idempotency key. Whether a review may be
signed is the domain's rule (``domain.review.check_decisions`` and ``Decision``'s validation);
a refusal is shown next to the field it belongs to (``messages.explain``) and nothing is saved.
The PDF is the API's own bytes (``api.review_pdf.review_pdf``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from interactions.review_rules import shipped_review_criteria
from interactions.values import MAX_ITEMS
from medloop import queries
from medloop.api.policy import Action
from medloop.api.review_pdf import review_pdf
from medloop.api.routing import BlockingRoute
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.errors import DomainError
from medloop.domain.patient import Patient
from medloop.domain.review import Assessment, Decision, MedicationReview, Participant, SinceLast
from medloop.loop import review
from medloop.loop.review import ReviewSubmission
from medloop.pages.dosage_form import DosageForm
from medloop.pages.gp import _common, _int, _uuid_text
from medloop.pages.i18n import N_
from medloop.pages.messages import Refusal, explain
from medloop.pages.web import FormDep, Page, PageDep, url

router = APIRouter(route_class=BlockingRoute, include_in_schema=False)

ROLES: tuple[tuple[str, str], ...] = (
    ("doctor", N_("Doctor")),
    ("nurse", N_("Nurse")),
    ("pharmacist", N_("Pharmacist")),
)
ACTIONS: tuple[tuple[str, str], ...] = (
    ("continue", N_("Continue")),
    ("change", N_("Change the dosage")),
    ("stop", N_("Stop")),
)
ACTION_NAMES = dict(ACTIONS)
ROLE_NAMES = dict(ROLES)
# why a decision is not complete, by its action (the rule is ``Decision``'s own validation)
HPR_NUMBER = re.compile(r"[0-9]{1,9}")
INCOMPLETE = {
    "continue": N_("Write why the medicine is continued."),
    "change": N_("Choose the medicine and give its new dosage."),
    "stop": N_("Choose the medicine to stop."),
}


@dataclass(frozen=True)
class ReviewView:
    """What the review page shows, read in one audited transaction."""

    patient: Patient
    assessment: Assessment
    since_last: SinceLast | None
    reviews: list[MedicationReview]


def _read(page: Page, patient_id: UUID) -> ReviewView:
    page.caller.authorize(Action.LIST_READ, patient_id)
    today = page.caller.day

    def read(conn: Connection) -> ReviewView:
        assessment, since = queries.review_assessment(conn, patient_id, today)
        return ReviewView(
            patient=queries.patient_state(conn, patient_id).patient,
            assessment=assessment,
            since_last=since,
            reviews=list(reversed(queries.medication_reviews(conn, patient_id))),
        )

    return page.caller.read(patient_id, "review", read)


@dataclass
class ReviewForm:
    """The form as shown (again): ids chosen when first shown, so a double submit signs once."""

    review_id: str
    idempotency_key: str
    based_on: int
    actions: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)
    dosages: dict[str, DosageForm] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    participants: dict[str, str] = field(default_factory=dict)
    hpr_numbers: dict[str, str] = field(default_factory=dict)
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    """By field: ``finding-<key>``, ``participants``, ``participant-<role>``,
    ``participant-<role>-hpr``."""

    @classmethod
    def fresh(cls, based_on: int) -> ReviewForm:
        return cls(str(uuid.uuid4()), str(uuid.uuid4()), based_on)

    @classmethod
    def posted(cls, form: FormData) -> ReviewForm:
        """The form as posted: the findings by the keys the page showed (``finding-<n>-key``,
        the list at ``based_on``), so a decision names the finding the doctor saw."""
        made = cls(
            review_id=_uuid_text(form.get("review_id")),
            idempotency_key=_uuid_text(form.get("idempotency_key")),
            based_on=_int(form.get("based_on")),
            note=str(form.get("note") or "").strip(),
        )
        for role, _name in ROLES:
            made.participants[role] = str(form.get(f"participant-{role}") or "").strip()
            made.hpr_numbers[role] = str(form.get(f"participant-{role}-hpr") or "").strip()
        for i in range(MAX_ITEMS):
            prefix = f"finding-{i}-"
            key = str(form.get(prefix + "key") or "")
            if not key:
                break
            made.actions[key] = str(form.get(prefix + "action") or "")
            made.reasons[key] = str(form.get(prefix + "reason") or "").strip()
            made.entries[key] = str(form.get(prefix + "entry") or "")
            made.codes[key] = str(form.get(prefix + "code") or DiscontinuationReason.OTHER.value)
            fields = {k[len(prefix) :]: form.get(k) for k in form.keys() if k.startswith(prefix)}
            made.dosages[key] = DosageForm.posted(fields, lambda n, p=prefix: form.getlist(p + n))
        return made

    def submission(self, page: Page) -> ReviewSubmission | None:
        """The submission, or ``None`` with ``errors`` by field (values the form could not
        read; whether the review may be signed is the loop's and the domain's to say)."""
        _ = page._
        decisions = []
        for key, action in self.actions.items():
            if not action:
                continue  # the domain says which findings have no decision
            if action not in ACTION_NAMES:
                self.errors[f"finding-{key}"] = _("Choose continue, change or stop.")
                continue
            entry = self.entries.get(key, "")
            dosage = None
            if action == "change":
                dosage = self.dosages[key].read(_)
                if dosage is None:
                    self.errors[f"finding-{key}"] = _(INCOMPLETE["change"])
                    continue
            try:
                decisions.append(
                    Decision(
                        finding=key,
                        action=action,  # type: ignore[arg-type]
                        reason=self.reasons.get(key) or None,
                        entry_id=UUID(entry) if action != "continue" and entry else None,
                        dosage=dosage,
                        discontinuation_reason=DiscontinuationReason(self.codes.get(key, "X")),
                    )
                )
            except (ValidationError, ValueError):
                self.errors[f"finding-{key}"] = _(INCOMPLETE[action])
        participants = []
        for role, _name in ROLES:
            name = self.participants.get(role, "")
            hpr = self.hpr_numbers.get(role, "")
            if not name:
                if hpr:
                    self.errors[f"participant-{role}"] = _("Write the name with the HPR number.")
                continue
            if hpr and not HPR_NUMBER.fullmatch(hpr):
                self.errors[f"participant-{role}-hpr"] = _(
                    "An HPR number is digits only, at most nine."
                )
                continue
            try:
                participants.append(
                    Participant(role=role, name=name, hpr_number=hpr or None)  # type: ignore[arg-type]
                )
            except ValidationError:
                self.errors[f"participant-{role}"] = _("Write the name (at most 200 letters).")
        if self.errors:
            return None
        try:
            return ReviewSubmission(
                review_id=UUID(self.review_id),
                participants=tuple(participants),
                decisions=tuple(decisions),
                note=self.note or None,
            )
        except ValidationError:
            self.errors["participants"] = _("Name who took part: at least the doctor.")
            return None


@router.get("/app/gp/patients/{patient_id}/review", response_class=HTMLResponse)
def review_page(
    page: PageDep, patient_id: UUID, signed: Annotated[UUID | None, Query()] = None
) -> Response:
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    view = _read(page, patient_id)
    form = ReviewForm.fresh(view.assessment.list_version)
    form.participants["doctor"] = page.principal.name
    form.hpr_numbers["doctor"] = page.principal.subject
    return _render(page, patient_id, view, form, signed=signed)


@router.post("/app/gp/patients/{patient_id}/review", response_class=HTMLResponse)
def sign(page: PageDep, patient_id: UUID, form: FormDep) -> Response:
    page.caller.authorize(Action.LIST_WRITE, patient_id)
    posted = ReviewForm.posted(form)
    submission = posted.submission(page)
    if submission is None:
        view = _read(page, patient_id)
        return _render(page, patient_id, view, posted, status=422)
    try:
        review.sign_review(
            page.caller.engine,
            patient_id,
            submission,
            page.caller.call(idempotency_key=f"page-{posted.idempotency_key}"),
            based_on=posted.based_on,
        )
    except DomainError as error:
        refusal = explain(error, page.lang)
        view = _read(page, patient_id)
        if refusal.stale:
            posted.based_on = view.assessment.list_version
        named = [*(error.context.get("findings") or ()), error.context.get("finding")]
        for key in named:
            if key:
                posted.errors[f"finding-{key}"] = refusal.text
        if refusal.field:
            posted.errors[refusal.field] = refusal.text
        return _render(page, patient_id, view, posted, status=refusal.status, refusal=refusal)
    return page.redirect(url(f"gp/patients/{patient_id}/review?signed={submission.review_id}"))


@router.get("/app/gp/patients/{patient_id}/reviews/{review_id}/pdf")
def review_pdf_page(page: PageDep, patient_id: UUID, review_id: UUID) -> Response:
    """The signed review as PDF: the API's route's bytes, made by the same function."""
    page.caller.authorize(Action.LIST_READ, patient_id)

    def read(conn: Any) -> tuple[MedicationReview, str]:
        found = queries.medication_review(conn, patient_id, review_id)
        patient = queries.patient_state(conn, patient_id).patient
        return found, f"{patient.given_name} {patient.family_name} ({patient.birth_date})"

    found, name = page.caller.read(patient_id, "review-pdf", read)
    return Response(
        review_pdf(found, name, lang=page.lang),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="review-{review_id}.pdf"',
            "Cache-Control": "no-store",  # the patient's review: no cache keeps it
        },
    )


def _render(
    page: Page,
    patient_id: UUID,
    view: ReviewView,
    form: ReviewForm,
    *,
    status: int = 200,
    refusal: Refusal | None = None,
    signed: UUID | None = None,
) -> Response:
    names = {str(e.entry_id): e.name for e in view.assessment.entries}
    criteria = shipped_review_criteria()

    def criterion_summary(criterion: str, recorded: str) -> str:
        """The criterion's summary in the reader's language (the criteria files carry both);
        a ``RENAL:`` finding keeps the summary the engine wrote."""
        return criteria.summary_in(criterion, page.lang) or recorded

    return page.render(
        "gp/review.html",
        status,
        view=view,
        patient_id=patient_id,
        form=form,
        refusal=refusal,
        names=names,
        signed=signed,
        ROLES=ROLES,
        ACTIONS=ACTIONS,
        ACTION_NAMES=ACTION_NAMES,
        ROLE_NAMES=ROLE_NAMES,
        criterion_summary=criterion_summary,
        **_common(page),
    )
