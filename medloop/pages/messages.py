"""The ONE place where a refusal becomes words on a page: ``explain(error, lang)``.

The loop's and the domain's refusals (``DomainError`` with its stable ``code``,
``medloop.loop.errors``; the API's ``Forbidden``/``Unauthenticated``) are mapped to a
``Refusal``: a sentence a nurse, pharmacist or doctor understands (translated, ``nb`` first),
the form field it belongs next to (``field``), and what the page can offer: for a stale list
version the changes made since the page was loaded (``changes``) so the page can show them and
let the user redo the action on the fresh list; for an override the alerts that need a reason
(``alerts``). Nothing was saved whenever a ``Refusal`` is shown: the commands are atomic.

Page code catches the errors of a command and renders the refusal into the same form it
came from (``status`` is the HTTP status the page answers with, the API's for the same code).
A code without its own sentence gets a general one that still names the code, never the
technical detail alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any

from medloop.api.auth import Unauthenticated
from medloop.api.problems import Forbidden, status_for
from medloop.domain.errors import DomainError
from medloop.pages.i18n import N_
from medloop.pages.web import translator


@dataclass(frozen=True)
class Refusal:
    """What the page says when a command or read was refused (nothing saved)."""

    code: str
    text: str
    field: str | None = None
    status: int = 409
    changes: list[dict[str, Any]] = _field(default_factory=list)
    alerts: list[dict[str, Any]] = _field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.code == "stale-list-version"


# code -> (field it belongs next to, the sentence in the catalogue's source language)
SENTENCES: dict[str, tuple[str | None, str]] = {
    # someone else changed the list, or the page is old
    "stale-list-version": (
        None,
        N_(
            "Someone else changed this list after you opened the page. Nothing was saved. "
            "Look at what changed below, then do it again on the updated list."
        ),
    ),
    "override-required": (
        "override_reason",
        N_(
            "This needs a reason before it can be saved: read the warning and write why you "
            "go ahead."
        ),
    ),
    "reason-required": ("reason", N_("Write a reason.")),
    # bedside charting
    "charting-incomplete": (None, N_("Fill in what is missing before saving.")),
    "planned-dose-not-found": (None, N_("This dose is no longer on the chart. Reload the page.")),
    "planned-dose-required": (None, N_("Choose the planned dose you are charting.")),
    "planned-dose-of-another-entry": (None, N_("That dose belongs to another medicine.")),
    "planned-dose-superseded": (
        None,
        N_("The prescription changed after this dose was planned. Chart the new dose instead."),
    ),
    "dose-already-charted": (None, N_("This dose has already been charted.")),
    "dose-not-yet-due": (None, N_("This dose is not due yet.")),
    "charted-in-the-future": ("at", N_("The time cannot be later than now.")),
    "entry-not-administrable": (None, N_("This medicine cannot be given now (held or stopped).")),
    "as-needed-dose-is-not-planned": (
        None,
        N_("An as-needed medicine is charted as a PRN dose, not on a planned time."),
    ),
    "administered-dose-unit-mismatch": ("amount", N_("Use the unit of the prescription.")),
    "administered-dose-above-prescribed": ("amount", N_("More than the prescribed dose.")),
    "prn-limit-exceeded": (
        "override_reason",
        N_(
            "This is over the maximum or too soon after the last dose. Write why it is given "
            "anyway, or do not give it."
        ),
    ),
    "witness-required": (
        "witness",
        N_(
            "Another nurse or a doctor of this nursing home must sign as witness for this medicine."
        ),
    ),
    "witness-same-person": ("witness", N_("The witness must be someone other than you.")),
    "witness-of-another-organisation": (
        "witness",
        N_("The witness must work at this nursing home."),
    ),
    "witness-signature-used": (
        "witness",
        N_(
            "The witness's signature was already used for a dose or has expired. Nothing was "
            "saved: the witness signs again for this dose."
        ),
    ),
    "scan-or-skip-reason-required": (
        "scan",
        N_("Scan the resident's wristband, or choose why it was not scanned."),
    ),
    "scan-unreadable": ("scan", N_("The barcode could not be read. Scan again or type it.")),
    "scanned-pack-unknown": ("pack", N_("This pack is not in the drug catalogue.")),
    "scanned-pack-mismatch": (
        "pack",
        N_("Wrong pack: this is not the prescribed medicine or one that can replace it."),
    ),
    "scanned-pack-expired": ("pack", N_("This pack has expired. Do not use it.")),
    "wristband-mismatch": (
        "wristband",
        N_(
            "Wrong resident: this wristband belongs to someone else. Do not give any medicine; "
            "check who the resident is."
        ),
    ),
    "wristband-not-registered": (
        "wristband",
        N_(
            "This wristband has a GSRN, and no GSRN is registered for this resident. Scan the "
            "national id or choose why not."
        ),
    ),
    "gsrn-invalid": (
        "gsrn",
        N_("This is not a GSRN: 18 digits, the last a check digit. Scan the wristband again."),
    ),
    "gsrn-in-use": ("gsrn", N_("This GSRN is already registered for another resident's stay.")),
    "administration-not-found": (None, N_("This charting no longer exists. Reload the page.")),
    "administration-already-entered-in-error": (
        None,
        N_("This charting was already marked as entered in error."),
    ),
    # wards and access
    "patient-not-admitted": (
        None,
        N_("This resident is not admitted to your nursing home now."),
    ),
    "ward-of-another-organisation": (None, N_("This ward belongs to another organisation.")),
    "ward-not-found": (None, N_("There is no such ward.")),
    "patient-not-found": (None, N_("There is no patient with this id.")),
    "entry-not-found": (None, N_("This medicine is no longer on the list. Reload the page.")),
    "no-catalogue-in-force": (
        None,
        N_("The drug catalogue is not loaded yet. Try again later."),
    ),
    # the medication review (h3-reviewpage)
    "review-incomplete": (None, N_("Choose a decision for every finding before signing.")),
    "review-decision-invalid": (
        None,
        N_(
            "A decision does not fit its finding: choose a medicine the finding names, and "
            "decide each medicine one way."
        ),
    ),
    "review-participants-missing": (
        "participants",
        N_("Write the name of the doctor who took part: a review is signed by the doctor."),
    ),
    "review-signer-not-participant": (
        "participant-doctor-hpr",
        N_("The doctor who signs takes part: give your own HPR number for the doctor."),
    ),
    "review-not-found": (None, N_("There is no such review.")),
    # the GP's prescribe and entry forms (h4-pagesux); the field is the form's, FORM_FIELDS
    "unknown-drug": (None, N_("This medicine is not in the drug catalogue in force.")),
    "entry-not-prescribable": (
        None,
        N_("Only a medicine in use or on hold can be prescribed."),
    ),
    "non-catalogue-item-not-prescribable": (
        None,
        N_("This medicine is not in the drug catalogue, so it cannot be prescribed here."),
    ),
    "repeats-not-allowed": (
        "repeats",
        N_("This medicine's prescription group allows no repeats. Write 0 repeats."),
    ),
    "validity-too-long": (
        None,
        N_(
            "The prescription would be valid for longer than the rules allow. Choose an earlier "
            "stop date."
        ),
    ),
    "expiry-before-issue": (None, N_("The prescription would expire before it is issued.")),
    "invalid-duration": (None, N_("The period of validity is not possible.")),
    "invalid-entry": (None, N_("The medicine cannot be saved like this: check the dosage.")),
    "empty-change": (None, N_("Nothing would change: the new dosage is the same as the old.")),
    "entry-already-exists": (None, N_("This medicine is already saved. Reload the list.")),
    "id-already-used": (None, N_("This form was already used. Reload the page.")),
    "entry-already-on-hold": (None, N_("This medicine is already on hold.")),
    "entry-not-on-hold": (None, N_("This medicine is not on hold.")),
    "entry-already-discontinued": (None, N_("This medicine is already discontinued.")),
    "entry-discontinued": (None, N_("This medicine is discontinued.")),
    "entry-entered-in-error": (None, N_("This medicine was marked as entered in error.")),
    "entry-not-active": (None, N_("This medicine is not in use.")),
    "prescription-not-found": (None, N_("There is no such prescription. Reload the page.")),
    "prescription-still-valid": (
        None,
        N_(
            "This prescription is still valid: it is renewed only when it has expired or is "
            "used up."
        ),
    ),
    "prescription-recalled": (None, N_("This prescription was recalled.")),
    "prescription-expired": (None, N_("This prescription has expired.")),
    # the pharmacist's urgent pack and annulment (h4-pagesux)
    "multidose-urgent-pack-refused": (
        None,
        N_("An urgent pack cannot be ordered for this period now."),
    ),
    "multidose-period-not-found": (None, N_("There is no such packing period. Reload the page.")),
    "no-multidose-responsibility": (
        None,
        N_("No multidose doctor and pharmacy are registered for this patient."),
    ),
    "not-the-multidose-pharmacy": (
        None,
        N_("Your pharmacy is not this patient's multidose pharmacy."),
    ),
    "dispense-not-found": (None, N_("There is no such dispense. Reload the page.")),
    "dispense-already-annulled": (None, N_("This dispense is already annulled.")),
    "annulment-by-another-pharmacy": (
        None,
        N_("Only the pharmacy that dispensed it can annul a dispense."),
    ),
    "forbidden": (None, N_("You do not have access to this.")),
    "unauthenticated": (None, N_("Sign in again.")),
}

GENERAL = N_("Not saved: the request was refused (%(code)s).")

# The GP's prescribe and entry forms: the field each refusal concerns, by the form's own names
# (``dosage`` the dosage fields, ``drug`` the package chosen, ``validity`` the start and stop
# dates, ``repeats``, ``override_reason`` the reasons next to the alerts, ``reason`` the change's
# reason, ``version`` the list version the form was made from: shown by the save button with
# what changed, the form filled in again on the fresh list). Codes not here are shown by the
# failed action's button.
GP_FORM_FIELDS: dict[str, str] = {
    "stale-list-version": "version",
    "override-required": "override_reason",
    "reason-required": "reason",
    "unknown-drug": "drug",
    "no-catalogue-in-force": "drug",
    "non-catalogue-item-not-prescribable": "drug",
    "substitution-group-not-valid-on-date": "drug",
    "repeats-not-allowed": "repeats",
    "validity-too-long": "validity",
    "expiry-before-issue": "validity",
    "invalid-duration": "validity",
    "prescription-still-valid": "validity",
    "prescription-expired": "validity",
    "prescription-recalled": "validity",
    "invalid-entry": "dosage",
    "empty-change": "dosage",
}


def explain(error: Exception, lang: str, fields: dict[str, str] | None = None) -> Refusal:
    """The page's sentence for ``error`` (a refusal of the loop, the domain or the policy);
    ``fields``: the form's own field for a code (``GP_FORM_FIELDS``), over ``SENTENCES``'."""
    _ = translator(lang)
    if isinstance(error, Forbidden):
        return Refusal("forbidden", _(SENTENCES["forbidden"][1]), status=403)
    if isinstance(error, Unauthenticated):
        return Refusal("unauthenticated", _(SENTENCES["unauthenticated"][1]), status=401)
    if not isinstance(error, DomainError):
        raise TypeError(f"not a refusal: {type(error).__name__}")
    code = error.code
    field_name, sentence = SENTENCES.get(code, (None, None))
    if fields is not None:
        field_name = fields.get(code, field_name)
    status = status_for(code)
    # A refusal of access carries no patient data, as in the API.
    text = _(sentence) if sentence else _(GENERAL, code=code)
    if status in (401, 403):
        return Refusal(code, text, field_name, status)
    return Refusal(
        code,
        text,
        field_name,
        status,
        changes=list(error.context.get("changes_since") or []),
        alerts=list(error.context.get("alerts") or []),
    )
