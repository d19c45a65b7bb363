"""Decision support on request: the JSON contract of ``medloop check`` and its orchestration.

A request names list entries by varenr, ATC code or FEST domain id, with optional structured
dosage and dates, plus the patient's facts: allergies, ``age``, ``sex``, ``weight_kg``, ``renal``
(``{"egfr": N, "measured": "YYYY-MM-DD"}`` or ``"crcl"`` instead of ``"egfr"``) and
``hepatic_risk``. It is checked against the catalogue
version in force: parse → load snapshot → ``Knowledge.build`` → resolve every entry → ``check``.
The response carries the catalogue version and ``HentetDato`` the alerts were made with.

Request::

    {"medications": [{"id": "m1", "varenr": "079353"}, {"id": "m2", "atc": "D01BA02"},
                     {"id": "m3", "fest_id": "ID_…", "dosage": {…}, "start": "2026-01-01",
                      "indication": "L88 Revmatoid artritt"}],
     "patient": {"allergies": [{"atc": "J01C"}], "weight_kg": 70},
     "proposed": ["m3"], "handled": [{"key": "…", "handled_by": "…", "handled_at": "…",
                                      "reason": "…"}]}

Response: ``{"catalogue": {"version": n, "hentet_dato": "…"}, "alerts": [Alert as JSON, …]}``.

What can go wrong is one of three domain errors — ``InvalidCheckRequest``,
``UnresolvedMedications`` or ``NoCatalogue`` — and ``problem_for`` maps each to an RFC 9457
problem object, in this one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import Engine

from interactions import (
    Alert,
    AmbiguousReference,
    Dosage,
    HandledAlert,
    Knowledge,
    Medication,
    Patient,
    UnknownReference,
    check,
)
from interactions.catalogue import CatalogueInfo
from interactions.values import MAX_ITEMS, MODEL_CONFIG, Day, Reason
from medloop import json_input
from medloop.catalogue import NoCatalogue, load_snapshot
from medloop.domain.oslo import today as oslo_today
from medloop.settings import renal_max_age_days
from medloop.store.db import reader

PROBLEM_BASE = "https://medloop.dev/problems/"
REFERENCE_FIELDS = ("varenr", "atc", "fest_id")

# -- request ---------------------------------------------------------------------------------


class _Request(BaseModel):
    # A misspelt field (``"alergies"``) must fail loudly, never be checked as if absent.
    model_config = MODEL_CONFIG


class RequestedMedication(_Request):
    """One list entry of a request: the caller's entry id and exactly one drug reference.

    ``fest_id`` may name a package (Legemiddelpakning), brand product (LegemiddelMerkevare),
    substance prescribing group (LegemiddelVirkestoff), dose unit (Legemiddeldose) or substance
    (Virkestoff); ``atc`` a code at any level the catalogue uses.
    """

    id: str = Field(min_length=1)
    varenr: str | None = Field(default=None, min_length=1)
    atc: str | None = Field(default=None, min_length=1)
    fest_id: str | None = Field(default=None, min_length=1)
    dosage: Dosage | None = None
    start: Day | None = None
    stop: Day | None = None
    indication: Reason | None = None
    """The indication as the list records it; a dose rule for one indication reads an ICPC-2
    code at its start (``"L88 Revmatoid artritt"``)."""

    @model_validator(mode="after")
    def _names_exactly_one_drug(self) -> RequestedMedication:
        if len(self.reference) != 1:
            raise ValueError(f"a medication names exactly one of {', '.join(REFERENCE_FIELDS)}")
        return self

    @model_validator(mode="after")
    def _stops_after_it_starts(self) -> RequestedMedication:
        if self.start is not None and self.stop is not None and self.stop < self.start:
            raise ValueError("stop is before start")
        return self

    @property
    def reference(self) -> dict[str, str]:
        """The drug reference as given, e.g. ``{"varenr": "079353"}``."""
        given = {"varenr": self.varenr, "atc": self.atc, "fest_id": self.fest_id}
        return {name: value for name, value in given.items() if value is not None}


class CheckRequest(_Request):
    """A medication list to check; with ``proposed`` only what involves those entries."""

    medications: tuple[RequestedMedication, ...] = Field(max_length=MAX_ITEMS)
    patient: Patient = Patient()
    proposed: tuple[str, ...] | None = Field(default=None, max_length=MAX_ITEMS)
    handled: tuple[HandledAlert, ...] = Field(default=(), max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _ids_are_unique(self) -> CheckRequest:
        ids = [m.id for m in self.medications]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"medication ids must be unique; repeated: {', '.join(repeated)}")
        return self

    @model_validator(mode="after")
    def _proposed_are_on_the_list(self) -> CheckRequest:
        missing = sorted(set(self.proposed or ()) - {m.id for m in self.medications})
        if missing:
            raise ValueError(f"proposed ids not among the medications: {', '.join(missing)}")
        return self


# -- domain errors ---------------------------------------------------------------------------


class InvalidCheckRequest(ValueError):
    """The request is not JSON or does not have the contract's shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"the request is invalid ({len(errors)} error(s))")
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A requested medication the catalogue version in force does not know."""

    medication: RequestedMedication
    error: UnknownReference


class UnresolvedMedications(LookupError):
    """Some requested medications are not in the catalogue version in force (all are named)."""

    def __init__(self, unresolved: Sequence[Unresolved], catalogue: CatalogueInfo) -> None:
        ids = ", ".join(u.medication.id for u in unresolved)
        super().__init__(f"not in catalogue version {catalogue.version}: {ids}")
        self.unresolved = tuple(unresolved)
        self.catalogue = catalogue


CheckError = InvalidCheckRequest | UnresolvedMedications | NoCatalogue
CHECK_ERRORS = (InvalidCheckRequest, UnresolvedMedications, NoCatalogue)

# -- orchestration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The alerts for a request and the catalogue version they were made with."""

    catalogue: CatalogueInfo
    alerts: tuple[Alert, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "catalogue": {
                "version": self.catalogue.version,
                "hentet_dato": self.catalogue.hentet_dato,
            },
            "alerts": [alert.model_dump(mode="json") for alert in self.alerts],
        }


def parse_request(text: str | bytes) -> CheckRequest:
    """The request in ``text``; raises ``InvalidCheckRequest`` with every validation error."""
    try:
        return CheckRequest.model_validate(json_input.loads(text))
    except json_input.InvalidJson as invalid:
        raise InvalidCheckRequest(
            [{"loc": [], "msg": f"Invalid JSON: {invalid.msg}", "type": "json_invalid"}]
        ) from None
    except ValidationError as invalid:
        raise InvalidCheckRequest(validation_errors(invalid)) from None


def validation_errors(invalid: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as plain JSON: where (``loc``), what (``msg``) and its ``type``."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in invalid.errors(include_url=False)
    ]


def resolve_medications(knowledge: Knowledge, request: CheckRequest) -> tuple[Medication, ...]:
    """Every requested medication resolved against ``knowledge``; raises
    ``UnresolvedMedications`` naming each one that cannot be."""
    resolved: list[Medication] = []
    unresolved: list[Unresolved] = []
    for requested in request.medications:
        try:
            drug = knowledge.resolve(**requested.reference)
        except UnknownReference as error:
            unresolved.append(Unresolved(requested, error))
            continue
        resolved.append(
            Medication(
                requested.id,
                drug,
                requested.dosage,
                requested.start,
                requested.stop,
                indication=requested.indication,
            )
        )
    if unresolved:
        raise UnresolvedMedications(unresolved, knowledge.info)
    return tuple(resolved)


def run_check(
    knowledge: Knowledge, request: CheckRequest, include_all: bool, today: date | None = None
) -> CheckOutcome:
    """Resolve and check ``request`` against ``knowledge`` on ``today`` (default: today in Oslo,
    against which the age of a renal function value is judged); no database is touched."""
    alerts = check(
        knowledge,
        resolve_medications(knowledge, request),
        patient=request.patient,
        handled=request.handled,
        include_all=include_all,
        proposed=request.proposed,
        today=today or oslo_today(),
        renal_max_age_days=renal_max_age_days(),
    )
    return CheckOutcome(knowledge.info, tuple(alerts))


def load_knowledge(engine: Engine) -> Knowledge:
    """Knowledge of the catalogue version in force; raises ``NoCatalogue`` before any import."""
    with reader(engine).connect() as conn:
        snapshot = load_snapshot(conn)
    return Knowledge.build(snapshot)


def check_request(engine: Engine, text: str | bytes, include_all: bool) -> CheckOutcome:
    """The whole ``medloop check``: parse ``text``, then check it against the catalogue in
    force. Raises one of the ``CheckError`` exceptions."""
    request = parse_request(text)
    return run_check(load_knowledge(engine), request, include_all)


# -- problems (RFC 9457) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """An RFC 9457 problem object; ``errors`` lists the individual faults."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": self.errors,
        }


def problem_for(error: CheckError) -> Problem:
    """The problem object for each domain error of a check."""
    if isinstance(error, InvalidCheckRequest):
        return Problem(
            type=PROBLEM_BASE + "invalid-request",
            title="The request is not a valid check request",
            status=422,
            detail=str(error),
            errors=error.errors,
        )
    if isinstance(error, UnresolvedMedications):
        return Problem(
            type=PROBLEM_BASE + "unknown-medication",
            title="Medications not in the catalogue",
            status=422,
            detail=str(error),
            errors=[_unresolved_error(u) for u in error.unresolved],
        )
    return Problem(
        type=PROBLEM_BASE + "no-catalogue",
        title="No catalogue in force",
        status=503,
        detail=str(error),
    )


def _unresolved_error(unresolved: Unresolved) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": unresolved.medication.id,
        "reference": unresolved.medication.reference,
        "reason": str(unresolved.error),
    }
    if isinstance(unresolved.error, AmbiguousReference):
        found["candidates"] = list(unresolved.error.candidates)
    return found


# -- human-readable text ---------------------------------------------------------------------


def describe(outcome: CheckOutcome) -> list[str]:
    """Short lines for a terminal: the catalogue used, then one line per alert."""
    info = outcome.catalogue
    count = len(outcome.alerts)
    lines = [
        f"Catalogue version {info.version} (HentetDato {info.hentet_dato}): "
        f"{count} alert{'' if count == 1 else 's'}"
    ]
    for alert in outcome.alerts:
        override = " [override required]" if alert.requires_override else ""
        lines.append(
            f"{alert.severity:<11} {alert.kind:<16} {', '.join(alert.medications)}: "
            f"{alert.summary}{override}"
        )
    return lines


def describe_problem(problem: Problem) -> list[str]:
    """The problem for a terminal: title and detail, then each fault."""
    lines = [f"{problem.title}: {problem.detail}"]
    for error in problem.errors:
        if "id" in error:
            lines.append(f"  {error['id']}: {error['reason']}")
        else:
            where = ".".join(str(part) for part in error["loc"]) or "request"
            lines.append(f"  {where}: {error['msg']}")
    return lines
