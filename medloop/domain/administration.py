"""Administration (``utdeling`` / ``administrering``): charting a dose as given, not given,
refused or held, corrections (entered-in-error), the chart status of a planned dose, and the
closed-loop rules a charting must pass (architecture invariant 4):

- a planned dose belongs to the entry, is still in force (not superseded by a newer schedule),
  is not charted already and is inside its window; nothing is charted as given in the future;
- as-needed (PRN) doses respect the prescription's maximum per 24 h, maximum per period and
  minimum interval over rolling windows, unless an override reason is given;
- the dose given has the prescribed unit and is not above the prescribed amount without an
  override reason;
- a witness (a second, different person) signs when the ward's policy demands it;
- a scanned pack (GS1 element string or plain EAN/NTIN) resolves to a package of the entry's
  product or of its substitution group and is not expired; skipping the scan takes a reason.

Everything here is pure: the command layer (``medloop.loop.administration``) loads the inputs and
stores the record returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from interactions.catalogue import Package
from interactions.dosage import AsNeededDose, Quantity, TimeOfDay, Use
from interactions.values import Count
from medloop.domain._model import Frozen
from medloop.domain.codes import EntryStatus
from medloop.domain.drug_reference import CatalogueDrug, DrugReference
from medloop.domain.entry import ListEntry
from medloop.domain.errors import DomainError
from medloop.domain.medication_list import MedicationList
from medloop.domain.oslo import local_date
from medloop.domain.personnel import Actor
from medloop.domain.ward import Admission, PatientNotAdmitted, WardConfig, WardNotFound

CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future a ``given`` time may lie (clocks of hand-held devices drift)."""


# -- errors ------------------------------------------------------------------------------------


class AdministrationRefused(DomainError):
    """A charting the closed-loop administration rules do not allow."""


class ChartingIncomplete(AdministrationRefused):
    code = "charting-incomplete"


class PlannedDoseNotFound(AdministrationRefused):
    code = "planned-dose-not-found"


class PlannedDoseRequired(AdministrationRefused):
    code = "planned-dose-required"


class PlannedDoseOfAnotherEntry(AdministrationRefused):
    code = "planned-dose-of-another-entry"


class PlannedDoseSuperseded(AdministrationRefused):
    code = "planned-dose-superseded"


class DoseAlreadyCharted(AdministrationRefused):
    code = "dose-already-charted"


class DoseNotYetDue(AdministrationRefused):
    code = "dose-not-yet-due"


class ChartedInTheFuture(AdministrationRefused):
    code = "charted-in-the-future"


class EntryNotAdministrable(AdministrationRefused):
    code = "entry-not-administrable"


class AsNeededDoseIsNotPlanned(AdministrationRefused):
    code = "as-needed-dose-is-not-planned"


class AdministeredDoseUnitMismatch(AdministrationRefused):
    code = "administered-dose-unit-mismatch"


class AdministeredDoseAbovePrescribed(AdministrationRefused):
    code = "administered-dose-above-prescribed"


class PrnLimitExceeded(AdministrationRefused):
    code = "prn-limit-exceeded"


class WitnessRequired(AdministrationRefused):
    code = "witness-required"


class WitnessSamePerson(AdministrationRefused):
    code = "witness-same-person"


class WitnessOfAnotherOrganisation(AdministrationRefused):
    code = "witness-of-another-organisation"


class WitnessSignatureUsed(AdministrationRefused):
    """The witness's one-use signature (a grant) is gone: used for a charting already, or
    expired, between the form and the save."""

    code = "witness-signature-used"


class ScanRequired(AdministrationRefused):
    code = "scan-or-skip-reason-required"


class ScanUnreadable(AdministrationRefused):
    code = "scan-unreadable"


class ScannedPackUnknown(AdministrationRefused):
    code = "scanned-pack-unknown"


class ScannedPackMismatch(AdministrationRefused):
    code = "scanned-pack-mismatch"


class ScannedPackExpired(AdministrationRefused):
    code = "scanned-pack-expired"


class WristbandMismatch(AdministrationRefused):
    """The scanned wristband is another person's: wrong resident."""

    code = "wristband-mismatch"


class WristbandNotRegistered(AdministrationRefused):
    """The wristband carries a GSRN, and no GSRN is registered for this resident's stay."""

    code = "wristband-not-registered"


class InvalidGsrn(AdministrationRefused):
    """Not a GS1 GSRN: 18 digits whose last is the GS1 check digit of the first 17."""

    code = "gsrn-invalid"


class GsrnInUse(AdministrationRefused):
    """The GSRN is registered for another stay already (a GSRN is never reused)."""

    code = "gsrn-in-use"


class AdministrationNotFound(AdministrationRefused):
    code = "administration-not-found"


class AdministrationAlreadyInError(AdministrationRefused):
    code = "administration-already-entered-in-error"


# -- values ------------------------------------------------------------------------------------


class Outcome(StrEnum):
    """What a charting says happened to a dose."""

    GIVEN = "given"
    NOT_GIVEN = "not-given"
    REFUSED = "refused"  # the patient refused
    HELD = "held"  # withheld on clinical judgement
    MISSED = "missed"  # nobody charted it within the ward's window (set by the system)


class DoseStatus(StrEnum):
    """A planned dose on the chart."""

    PLANNED = "planned"  # its window has not opened
    DUE = "due"
    OVERDUE = "overdue"  # late, not yet missed
    MISSED = "missed"
    GIVEN = "given"
    NOT_GIVEN = "not-given"
    REFUSED = "refused"
    HELD = "held"


class ScanSkipReason(StrEnum):
    """Why a dose was given without scanning its pack."""

    NO_BARCODE = "no-barcode"
    BARCODE_UNREADABLE = "barcode-unreadable"
    MULTIDOSE_BAG = "multidose-bag"
    SCANNER_UNAVAILABLE = "scanner-unavailable"
    EMERGENCY = "emergency"


class PlannedDose(Frozen):
    """A planned intake as stored: of ``entry_id`` under its schedule ``schedule_version``."""

    id: UUID
    patient_id: UUID
    ward_id: UUID
    entry_id: UUID
    schedule_version: Count
    drug: str
    local_time: datetime
    due_at: AwareDatetime
    dose_index: Count
    amount: Quantity
    time_of_day: TimeOfDay | None = None
    exact: bool = False
    shifted: bool = False
    multidose: bool = False


class ScheduleVersion(Protocol):
    """A version of an entry's schedule, as ``dose_in_force`` needs it: planned doses of older
    versions due from ``effective_from`` on are superseded."""

    @property
    def version(self) -> int: ...

    @property
    def effective_from(self) -> datetime: ...


def dose_in_force(
    dose: PlannedDose,
    schedules: Sequence[ScheduleVersion],
    charted: bool,
) -> bool:
    """Whether ``dose`` stands on the chart: it is charted, or no newer schedule of its entry
    took over at or before its due time."""
    if charted:
        return True
    return not any(
        s.version > dose.schedule_version and s.effective_from <= dose.due_at for s in schedules
    )


class ScannedPack(Frozen):
    """A scanned pack code and what it resolved to."""

    code: str
    gtin: str
    expiry: date | None = None
    batch: str | None = None
    serial: str | None = None
    package_id: str
    varenr: str
    name: str
    substituted: bool


class Administration(Frozen):
    """One charting (append-only). ``performer`` is ``None`` for the system's ``missed``
    records; ``late`` says a given dose came after the ward's late window; ``limit_override``
    holds the reason a PRN limit or the prescribed amount was exceeded."""

    id: UUID
    patient_id: UUID
    entry_id: UUID
    planned_dose_id: UUID | None = None
    outcome: Outcome
    at: AwareDatetime
    recorded_at: AwareDatetime
    dose: Quantity | None = None
    performer: Actor | None = None
    witness: Actor | None = None
    reason: str | None = None
    scan: ScannedPack | None = None
    scan_skipped: ScanSkipReason | None = None
    late: bool = False
    limit_override: str | None = None
    limits_exceeded: tuple[str, ...] = ()


class AdministrationCorrection(Frozen):
    """An administration marked entered-in-error: who, when, why (the record stays)."""

    administration_id: UUID
    at: AwareDatetime
    by: Actor
    reason: str = Field(min_length=1)


class ChartRequest(Frozen):
    """What a nurse charts. ``given_at`` and ``dose`` are required for ``given``; ``reason`` for
    the other outcomes. ``scan`` is the scanned pack code, or ``scan_skipped`` says why there is
    none; ``limit_override`` lets a dose through a PRN limit or above the prescribed amount."""

    administration_id: UUID
    entry_id: UUID
    planned_dose_id: UUID | None = None
    outcome: Outcome
    given_at: AwareDatetime | None = None
    dose: Quantity | None = None
    reason: str | None = None
    scan: str | None = None
    scan_skipped: ScanSkipReason | None = None
    limit_override: str | None = None


# -- the chart ---------------------------------------------------------------------------------


class ChartingOrder(Protocol):
    """What ``effective_charting`` compares of a charting (an ``Administration``, or a lighter
    row the chart queries read without validating the whole record again)."""

    @property
    def recorded_at(self) -> datetime: ...

    @property
    def outcome(self) -> Outcome: ...


_Charting = TypeVar("_Charting", bound=ChartingOrder)


def effective_charting(chartings: Iterable[_Charting]) -> _Charting | None:
    """The charting that stands for a dose: the latest one not entered in error (a nurse's
    charting after a ``missed`` record replaces it)."""
    latest = None
    for record in chartings:
        if latest is None or (record.recorded_at, record.outcome is not Outcome.MISSED) >= (
            latest.recorded_at,
            latest.outcome is not Outcome.MISSED,
        ):
            latest = record
    return latest


def dose_status(
    due_at: datetime, charting: Administration | None, config: WardConfig, now: datetime
) -> DoseStatus:
    """Where a planned dose stands at ``now``: its charting's outcome, else by the ward's
    windows."""
    if charting is not None:
        return DoseStatus(charting.outcome.value)
    if now < due_at - config.early:
        return DoseStatus.PLANNED
    if now < due_at + config.late_after:
        return DoseStatus.DUE
    if now < due_at + config.missed_after:
        return DoseStatus.OVERDUE
    return DoseStatus.MISSED


def is_missed(due_at: datetime, config: WardConfig, now: datetime) -> bool:
    return now >= due_at + config.missed_after


# -- PRN limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intake:
    at: datetime
    amount: float


@dataclass(frozen=True)
class PrnCheck:
    """Which of the PRN limits a dose would break, and which could not be checked (a limit in
    another unit than the dose)."""

    exceeded: tuple[str, ...]
    not_checked: tuple[str, ...]


def check_prn_limits(
    dose: AsNeededDose, earlier: Sequence[Intake], at: datetime, amount: Quantity
) -> PrnCheck:
    """The limits ``dose`` sets that an intake of ``amount`` at ``at`` would break, given the
    other intakes ``earlier`` (any time, also after ``at`` when charted late).

    Windows are rolling and half-open: a maximum over a period P holds in every window
    ``(t - P, t]``, so an intake exactly P earlier no longer counts. Intakes exactly the minimum
    interval apart are allowed.
    """
    exceeded: list[str] = []
    not_checked: list[str] = []
    intakes = [*earlier, Intake(at, amount.value)]
    limits: list[tuple[str, Quantity, timedelta]] = []
    if dose.max_per_24h is not None:
        limits.append(("max-per-24h", dose.max_per_24h, timedelta(hours=24)))
    if dose.max_per_period is not None and dose.period is not None:
        limits.append(("max-per-period", dose.max_per_period, timedelta(hours=dose.period.hours)))
    for name, limit, window in limits:
        if limit.unit != amount.unit:
            not_checked.append(name)
        elif _most_in_a_window(intakes, at, window) > limit.value + 1e-9:
            exceeded.append(name)
    if dose.min_interval is not None:
        gap = timedelta(hours=dose.min_interval.hours)
        if any(abs(other.at - at) < gap for other in earlier):
            exceeded.append("min-interval")
    return PrnCheck(tuple(exceeded), tuple(not_checked))


def _most_in_a_window(intakes: Sequence[Intake], at: datetime, window: timedelta) -> float:
    """The largest total in any window ``(t - window, t]`` that contains ``at``; such a window
    ends at ``at`` or at a later intake less than ``window`` after it."""
    ends = [at, *(i.at for i in intakes if at < i.at < at + window)]
    return max(sum(i.amount for i in intakes if end - window < i.at <= end) for end in ends)


@dataclass(frozen=True)
class PrnStatus:
    """Where one as-needed dose of an entry stands at ``at``, as the ward chart shows it: the
    limits ``dose`` sets, the amount given in the last 24 h (in the unit of ``dose.amount``;
    doses in other units are not counted), how many more doses of
    ``dose.amount`` the maxima (24 h, period) allow now, and from when the next one breaks no
    limit. ``None`` (remaining, next allowed) when a limit is in another unit than the dose and
    so cannot be checked (``not_checked`` names it); ``doses_remaining`` is also ``None`` when
    no maximum is set."""

    dose: AsNeededDose
    given_last_24h: float
    doses_remaining: int | None
    next_allowed_at: datetime | None
    not_checked: tuple[str, ...]


PRN_REMAINING_MAX = 100
"""``prn_status`` counts the doses remaining up to this many (a maximum that allows more is
effectively none)."""


def prn_status(dose: AsNeededDose, given: Sequence[Intake], at: datetime) -> PrnStatus:
    """``PrnStatus`` of ``dose`` at ``at`` over the entry's doses ``given`` (in the dose's unit),
    decided by ``check_prn_limits`` itself: the doses remaining are the most doses of
    ``dose.amount`` given at ``at`` that break neither maximum (the minimum interval is about
    when, not how many), and the next allowed moment is the first of ``at`` and the moments an
    earlier dose stops counting (its minimum interval, 24 h or period after it) at which one
    dose breaks no limit."""
    amount = dose.amount
    day = sum(i.amount for i in given if at - timedelta(hours=24) < i.at <= at)
    probe = check_prn_limits(dose, given, at, amount)
    not_checked = probe.not_checked
    given_last_24h = round(day, 9)
    if not_checked:
        return PrnStatus(dose, given_last_24h, None, None, not_checked)
    remaining: int | None = None
    if dose.max_per_24h is not None or dose.max_per_period is not None:
        maxima = dose.model_copy(update={"min_interval": None})
        remaining = 0
        while (
            remaining < PRN_REMAINING_MAX
            and not check_prn_limits(
                maxima, [*given, *[Intake(at, amount.value)] * remaining], at, amount
            ).exceeded
        ):
            remaining += 1
    spans = [timedelta(hours=24)]
    if dose.period is not None:
        spans.append(timedelta(hours=dose.period.hours))
    if dose.min_interval is not None:
        spans.append(timedelta(hours=dose.min_interval.hours))
    moments = sorted({at, *(i.at + span for i in given for span in spans if i.at + span > at)})
    allowed = next(
        (m for m in moments if not check_prn_limits(dose, given, m, amount).exceeded), None
    )
    return PrnStatus(dose, given_last_24h, remaining, allowed, ())


# -- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackCode:
    """What a pack barcode says: the GTIN (as 13 digits when it fits) and, from a GS1 element
    string, expiry (AI 17), batch (AI 10) and serial (AI 21). ``medloop.loop.scanning`` reads
    it from the scanned text."""

    gtin: str
    expiry: date | None = None
    batch: str | None = None
    serial: str | None = None


def check_scanned_pack(
    code: str,
    read: PackCode,
    drug: DrugReference,
    packages_by_gtin: Mapping[str, Package],
    on: date,
) -> ScannedPack:
    """Resolve the scanned ``code`` (read as ``read``) to a catalogue package and accept it only
    when it is what ``drug`` names or in one of its substitution groups, and not expired on
    ``on``."""
    package = packages_by_gtin.get(read.gtin)
    if package is None:
        raise ScannedPackUnknown(
            f"no package in the catalogue in force has the code {read.gtin}", gtin=read.gtin
        )
    if not isinstance(drug, CatalogueDrug):
        raise ScannedPackMismatch(
            f"{package.name} is not {drug.name}: the entry is not a catalogue drug",
            gtin=read.gtin,
            varenr=package.varenr,
        )
    substituted = not drug.names_package(package)
    if substituted and (
        package.substitution_group_id is None
        or package.substitution_group_id not in drug.resolved.substitution_group_ids
    ):
        raise ScannedPackMismatch(
            f"the scanned pack {package.name} ({package.varenr}) is neither {drug.name} nor in "
            "its substitution group",
            gtin=read.gtin,
            varenr=package.varenr,
            entry_drug=drug.name,
        )
    if read.expiry is not None and read.expiry < on:
        raise ScannedPackExpired(
            f"the scanned pack {package.name} expired on {read.expiry}",
            gtin=read.gtin,
            expiry=read.expiry,
            batch=read.batch,
        )
    return ScannedPack(
        code=code,
        gtin=read.gtin,
        expiry=read.expiry,
        batch=read.batch,
        serial=read.serial,
        package_id=package.id,
        varenr=package.varenr,
        name=package.name,
        substituted=substituted,
    )


# -- charting ----------------------------------------------------------------------------------


def check_witness(
    entry: ListEntry, config: WardConfig, performer: Actor, witness: Actor | None
) -> None:
    """Refuse a dose the ward's witness policy covers without a second, different person."""
    drug = entry.drug
    if not isinstance(drug, CatalogueDrug):
        return
    resolved = drug.resolved
    if not config.witness.requires_witness(resolved.prescription_group, resolved.atc_codes):
        return
    if witness is None:
        raise WitnessRequired(
            f"{drug.name} needs a witness by the ward's policy",
            entry_id=entry.id,
            prescription_group=resolved.prescription_group,
        )
    if witness.personnel.hpr_number == performer.personnel.hpr_number:
        raise WitnessSamePerson(
            "the witness must be another person than the one giving the dose",
            hpr_number=witness.personnel.hpr_number,
        )
    if witness.organisation.id != performer.organisation.id:
        raise WitnessOfAnotherOrganisation(
            "the witness must work for the organisation giving the dose",
            witness_organisation=witness.organisation.id,
        )


def check_entry_in_use(entry: ListEntry, at: datetime) -> None:
    """Refuse a dose of an entry that is not in use at ``at``: entered in error, on hold since
    before ``at``, or discontinued by then."""
    status = entry.status
    stopped = (
        status is EntryStatus.ENTERED_IN_ERROR
        or (status is EntryStatus.ON_HOLD and at >= entry.changed_at)
        or (entry.discontinuation is not None and at >= entry.discontinuation.at)
    )
    if stopped:
        raise EntryNotAdministrable(
            f"entry {entry.id} is {status.value}: no dose can be given at {at.isoformat()}",
            entry_id=entry.id,
            status=status,
        )


def check_planned_dose(
    request: ChartRequest,
    planned: PlannedDose,
    in_force: bool,
    charted: Administration | None,
    config: WardConfig,
    now: datetime,
) -> bool:
    """Refuse charting ``planned`` when it is another entry's, superseded, already charted, or
    (as given) before its window opens; returns whether a given dose is late."""
    if planned.entry_id != request.entry_id:
        raise PlannedDoseOfAnotherEntry(
            f"planned dose {planned.id} belongs to entry {planned.entry_id}",
            planned_dose_id=planned.id,
            entry_id=planned.entry_id,
        )
    if charted is not None and charted.outcome is not Outcome.MISSED:
        raise DoseAlreadyCharted(
            f"the dose due {planned.local_time:%Y-%m-%d %H:%M} is already charted as "
            f"{charted.outcome.value}; mark that charting entered-in-error first",
            planned_dose_id=planned.id,
            administration_id=charted.id,
        )
    if not in_force:
        raise PlannedDoseSuperseded(
            f"the dose due {planned.local_time:%Y-%m-%d %H:%M} was replaced by a newer schedule",
            planned_dose_id=planned.id,
        )
    moment = request.given_at or now
    if request.outcome is Outcome.GIVEN and moment < planned.due_at - config.early:
        raise DoseNotYetDue(
            f"the dose due {planned.local_time:%Y-%m-%d %H:%M} cannot be given before "
            f"{planned.due_at - config.early:%Y-%m-%d %H:%M} UTC",
            planned_dose_id=planned.id,
            due_at=planned.due_at,
        )
    return request.outcome is Outcome.GIVEN and moment > planned.due_at + config.late_after


def check_request_shape(request: ChartRequest, now: datetime) -> None:
    """Refuse a charting that lacks what its outcome needs, or gives a dose in the future."""
    if request.outcome is Outcome.MISSED:
        raise ChartingIncomplete("only the system marks a dose missed", outcome="missed")
    if request.outcome is Outcome.GIVEN:
        if request.given_at is None or request.dose is None:
            raise ChartingIncomplete("a given dose needs the time given and the dose given")
        if request.given_at > now + CLOCK_SKEW:
            raise ChartedInTheFuture(
                f"a dose cannot be charted as given at {request.given_at.isoformat()}, "
                "which is in the future",
                given_at=request.given_at,
            )
        if request.scan is None and request.scan_skipped is None:
            raise ScanRequired("give the scanned pack code or the reason the scan was skipped")
    elif not (request.reason or "").strip():
        raise ChartingIncomplete(
            f"a dose charted as {request.outcome.value} needs a reason", outcome=request.outcome
        )


def check_amount(prescribed: Quantity, given: Quantity, override: str | None) -> bool:
    """Refuse a dose in another unit than prescribed, or above the prescribed amount without an
    override reason; returns whether it was above."""
    if prescribed.unit != given.unit:
        raise AdministeredDoseUnitMismatch(
            f"the dose is prescribed in {prescribed.unit}, not {given.unit}",
            prescribed_unit=prescribed.unit,
            given_unit=given.unit,
        )
    above = given.value > prescribed.value + 1e-9
    if above and not (override or "").strip():
        raise AdministeredDoseAbovePrescribed(
            f"{given.value:g} {given.unit} is above the prescribed {prescribed.value:g} "
            f"{prescribed.unit}; give an override reason",
            prescribed=prescribed.value,
            given=given.value,
            unit=given.unit,
        )
    return above


# -- the charting decision ---------------------------------------------------------------------

PRN_WINDOW_MAX = timedelta(days=35)
"""The longest PRN period looked at (a month counts as 28 days in dosages)."""


@dataclass(frozen=True, slots=True)
class GivenDose:
    """A standing charting of a dose given to the patient (any entry), as the checks of a new
    charting see it."""

    entry_id: UUID
    at: datetime
    amount: float
    unit: str


@dataclass(frozen=True)
class ChartingFacts:
    """Everything charting decides on, loaded before the decision (``medloop.loop``'s charting
    command reads it in one go). ``admission`` is the patient's stay on a ward of the
    performer's organisation at the moment charted (``None``: not admitted there) and
    ``config`` that ward's configuration (``None``: the ward is gone); ``planned`` is the
    planned dose the request names, when it is the patient's; ``in_force`` and ``charted`` say
    whether it is still in force and which charting stands for it; ``earlier`` are the
    patient's given doses from ``PRN_WINDOW_MAX`` (at least 24 h) before the dose on."""

    patient_id: UUID
    request: ChartRequest
    now: datetime
    performer: Actor
    witness: Actor | None
    medication_list: MedicationList
    admission: Admission | None
    config: WardConfig | None
    planned: PlannedDose | None = None
    in_force: bool = False
    charted: Administration | None = None
    earlier: tuple[GivenDose, ...] = ()


@dataclass(frozen=True)
class Charting:
    """What charting decided: the record to store, whether a given dose is late, and the
    limits that could not be checked (a PRN limit in another unit than the dose)."""

    record: Administration
    late: bool
    not_checked: tuple[str, ...]


def decide_charting(
    facts: ChartingFacts,
    *,
    read_pack: Callable[[str], PackCode],
    packages_by_gtin: Mapping[str, Package],
) -> Charting:
    """The closed-loop decision on one charting, every refusal in one place and in this order:
    the request's shape, the stay, the planned dose (or none for an as-needed entry), then for
    a given dose the entry in use, the amount, the PRN limits, the witness and the scanned
    pack (``read_pack`` reads a barcode, ``packages_by_gtin`` resolves it)."""
    request, now = facts.request, facts.now
    check_request_shape(request, now)
    entry = facts.medication_list.entry(request.entry_id)
    moment = request.given_at or now
    if facts.admission is None:
        raise PatientNotAdmitted(
            f"patient {facts.patient_id} is not admitted to a ward of organisation "
            f"{facts.performer.organisation.id} at {moment.isoformat()}",
            patient_id=facts.patient_id,
            organisation_id=facts.performer.organisation.id,
        )
    config = facts.config
    if config is None:
        raise WardNotFound(
            f"there is no ward {facts.admission.ward_id}", ward_id=facts.admission.ward_id
        )
    late = _check_planned(facts, entry, config)
    given = request.outcome is Outcome.GIVEN
    scan: ScannedPack | None = None
    exceeded: tuple[str, ...] = ()
    not_checked: tuple[str, ...] = ()
    if given:
        scan, exceeded, not_checked = _check_given(
            facts, entry, config, read_pack, packages_by_gtin
        )
    record = Administration(
        id=request.administration_id,
        patient_id=facts.patient_id,
        entry_id=entry.id,
        planned_dose_id=request.planned_dose_id,
        outcome=request.outcome,
        at=moment,
        recorded_at=now,
        dose=request.dose if given else None,
        performer=facts.performer,
        witness=facts.witness if given else None,
        reason=request.reason,
        scan=scan,
        scan_skipped=request.scan_skipped if given and scan is None else None,
        late=late,
        limit_override=request.limit_override if exceeded else None,
        limits_exceeded=exceeded,
    )
    return Charting(record, late, not_checked)


def is_as_needed(entry: ListEntry) -> bool:
    return entry.use is Use.AS_NEEDED


def _check_planned(facts: ChartingFacts, entry: ListEntry, config: WardConfig) -> bool:
    request = facts.request
    if is_as_needed(entry):
        if request.planned_dose_id is not None:
            raise AsNeededDoseIsNotPlanned(
                f"entry {entry.id} is as needed: its doses have no planned dose",
                entry_id=entry.id,
            )
        return False
    if request.planned_dose_id is None:
        raise PlannedDoseRequired(
            f"entry {entry.id} is regular: chart one of its planned doses", entry_id=entry.id
        )
    planned = facts.planned
    if planned is None or planned.patient_id != facts.patient_id:
        raise PlannedDoseNotFound(
            f"patient {facts.patient_id} has no planned dose {request.planned_dose_id}",
            planned_dose_id=request.planned_dose_id,
        )
    return check_planned_dose(request, planned, facts.in_force, facts.charted, config, facts.now)


def _check_given(
    facts: ChartingFacts,
    entry: ListEntry,
    config: WardConfig,
    read_pack: Callable[[str], PackCode],
    packages_by_gtin: Mapping[str, Package],
) -> tuple[ScannedPack | None, tuple[str, ...], tuple[str, ...]]:
    """The checks of a dose charted as given: the scanned pack, the limits it exceeded with an
    override reason (PRN limits, ``above-prescribed``) and the limits not checked."""
    request, planned = facts.request, facts.planned
    assert request.dose is not None and request.given_at is not None
    check_entry_in_use(entry, request.given_at)
    on = local_date(request.given_at)
    as_needed = is_as_needed(entry)
    if as_needed and not entry.in_use(on):
        raise EntryNotAdministrable(
            f"entry {entry.id} is {entry.status.value} or outside its dates on {on}",
            entry_id=entry.id,
            status=entry.status,
        )
    if as_needed or planned is None:
        prescribed = _prn_amount(entry, request.dose)
    else:
        prescribed = planned.amount
    above = check_amount(prescribed, request.dose, request.limit_override)
    limits: tuple[str, ...] = ()
    not_checked: tuple[str, ...] = ()
    if as_needed:
        limits, not_checked = _check_prn(entry, request, facts.earlier)
    check_witness(entry, config, facts.performer, facts.witness)
    scan = None
    if request.scan is not None:
        scan = check_scanned_pack(
            request.scan, read_pack(request.scan), entry.drug, packages_by_gtin, on
        )
    return scan, limits + (("above-prescribed",) if above else ()), not_checked


def _prn_amount(entry: ListEntry, given: Quantity) -> Quantity:
    doses = () if entry.dosage is None else entry.dosage.as_needed
    if not doses:
        raise EntryNotAdministrable(
            f"entry {entry.id} has no structured as-needed dose to chart against",
            entry_id=entry.id,
        )
    return next((d.amount for d in doses if d.amount.unit == given.unit), doses[0].amount)


def _check_prn(
    entry: ListEntry, request: ChartRequest, earlier: Sequence[GivenDose]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The PRN limits, over the entry's doses given within ``PRN_WINDOW_MAX`` of this one."""
    assert request.given_at is not None and request.dose is not None
    assert entry.dosage is not None
    since = request.given_at - PRN_WINDOW_MAX
    until = request.given_at + PRN_WINDOW_MAX
    intakes = [
        Intake(g.at, g.amount)
        for g in earlier
        if since <= g.at < until and g.entry_id == entry.id and g.unit == request.dose.unit
    ]
    exceeded: list[str] = []
    not_checked: list[str] = []
    for dose in entry.dosage.as_needed:
        result = check_prn_limits(dose, intakes, request.given_at, request.dose)
        exceeded += [x for x in result.exceeded if x not in exceeded]
        not_checked += [x for x in result.not_checked if x not in not_checked]
    if exceeded and not (request.limit_override or "").strip():
        raise PrnLimitExceeded(
            f"the dose breaks the as-needed limits {', '.join(exceeded)}; "
            "give an override reason to chart it anyway",
            entry_id=entry.id,
            limits=exceeded,
        )
    return tuple(exceeded), tuple(not_checked)


def check_wristband(
    national_id: str,
    scanned_national_id: str | None,
    gsrn: str | None,
    registered_gsrn: str | None = None,
) -> None:
    """The first of the five rights: the wristband scanned at the bedside is this resident's
    (their national id, or the GS1 GSRN registered for their stay). A GSRN when none is
    registered for the resident is refused as not registered; another GSRN as another person's
    (the same refusal as a wrong national id)."""
    if scanned_national_id is not None:
        if scanned_national_id != national_id:
            raise WristbandMismatch("the wristband is another person's")
        return
    if registered_gsrn is None:
        raise WristbandNotRegistered(
            "the wristband carries a GSRN, and no GSRN is registered for this resident",
            gsrn=gsrn,
        )
    if gsrn != registered_gsrn:
        raise WristbandMismatch("the wristband is another person's")
