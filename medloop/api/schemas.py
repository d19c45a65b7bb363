"""Request and response bodies of the native API. Requests reuse the commands' own orders
(``PrescribeOrder``, ``DispenseOrder`` …) plus ``reason`` and ``overrides``; responses reuse the
domain values (``ListEntry``, ``Alert`` …), so the OpenAPI schema is the domain's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

from interactions import Alert
from interactions.dosage import Dosage, Period, Quantity
from interactions.values import MAX_REASON, MODEL_CONFIG, Day, Moment, text
from medloop.domain._model import constructed, field_names
from medloop.domain.administration import Administration, AdministrationCorrection, DoseStatus
from medloop.domain.codes import DiscontinuationReason
from medloop.domain.entry import EntryEdit, ListEntry
from medloop.domain.medication_list import EntryVersion
from medloop.domain.multidose.periods import PackingPeriod, UrgentPack
from medloop.domain.multidose.proposals import Proposal, ProposalDecision
from medloop.domain.multidose.responsibility import Responsibility
from medloop.domain.multidose.tasks import MultidoseTask
from medloop.domain.reconciliation import Reconciliation
from medloop.domain.ward import Admission, WardConfig
from medloop.loop.catalogue import DrugOrder
from medloop.loop.change import EntryOrder
from medloop.loop.dispense import DispenseOrder
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms
from medloop.loop.reconcile import ReconciliationOrder
from medloop.queries import OverrideOnRecord, PrescriptionSummary

__all__ = ["OverrideOnRecord", "PrescriptionSummary", "Reconciliation"]  # response models too

Order = TypeVar("Order", bound=BaseModel)

Reason = Field(default=None, max_length=MAX_REASON, description="Why (shown in the audit log)")


class Intent(BaseModel):
    """What every write may carry besides its order: why, and the reasons for overriding
    alerts (alert key → reason) when a first attempt answered 409 override-required."""

    model_config = MODEL_CONFIG

    reason: Annotated[str, text(MAX_REASON)] | None = Reason
    overrides: dict[Annotated[str, text(500, 1)], Annotated[str, text(MAX_REASON, 1)]] = Field(
        default_factory=dict, max_length=100
    )


def order_of(body: BaseModel, order: type[Order]) -> Order:
    """The command's order inside a request body (the body minus ``reason``/``overrides``).

    A body of a class ``_BUILT`` names for ``order`` (the order's own fields, inherited as they
    are, validated a moment before by the same definitions) gives the order built from its
    values: the instance validating them again gives (``constructed``; the fields' validation
    gives a validated value back as it is), without that validation (issue #20;
    ``tests/api/test_api_order_of.py`` compares the two)."""
    names = field_names(order)
    values = {name: getattr(body, name) for name in names}
    if type(body) in _BUILT.get(order, ()):
        return constructed(order, **values)
    return order.model_validate(values)


class PrescribeRequest(PrescribeOrder, Intent):
    pass


def built_from(body: type[BaseModel], order: type[BaseModel]) -> bool:
    """Whether ``order_of`` may build ``order`` from a validated ``body``'s values: ``body`` is a
    subclass of ``order`` that keeps every field of it as ``order`` defines it (redefined by no
    class in between), with the same configuration, and ``order`` has no validators, private
    attributes or configuration that would validate an instance's value into another."""
    if not issubclass(body, order) or body is order:
        return False
    names = set(order.model_fields)
    between = body.__mro__[: body.__mro__.index(order)]
    if any(names & set(vars(cls).get("__annotations__", {})) for cls in between):
        return False
    decorators = order.__pydantic_decorators__
    config = order.model_config
    return (
        body.model_config == config
        and config.get("revalidate_instances", "never") == "never"
        and not order.__private_attributes__
        and not (
            decorators.validators
            or decorators.field_validators
            or decorators.root_validators
            or decorators.model_validators
        )
        and all(repr(body.model_fields[name]) == repr(order.model_fields[name]) for name in names)
    )


_BUILT: dict[type[BaseModel], frozenset[type[BaseModel]]] = {
    PrescribeOrder: frozenset(
        body for body in (PrescribeRequest,) if built_from(body, PrescribeOrder)
    ),
}
"""The bodies ``order_of`` builds an order from (the prescribe's: issue #20), when
``built_from`` holds. Only an order whose fields' validation gives its own validated values
back as they are (ids, days, bounded strings, an enum, a flag, instances of models) belongs
here; ``tests/api/test_api_order_of.py`` checks that for each."""


class RenewRequest(Intent):
    """New terms for the prescription the URL names, optionally changing its entry."""

    terms: PrescriptionTerms
    change: EntryEdit | None = None


class AddEntryRequest(EntryOrder, Intent):
    pass


class DispenseRequest(DispenseOrder, Intent):
    pass


class ReconcileRequest(ReconciliationOrder, Intent):
    pass


class DosageChange(Intent):
    dosage: Dosage


class Discontinue(Intent):
    at: Moment | None = Field(default=None, description="When it takes effect (default: now)")
    code: DiscontinuationReason = Field(description="Reason code, OID 2.16.578.1.12.4.1.1.7494")
    note: Annotated[str, text(MAX_REASON)] | None = None


class ReasonOnly(BaseModel):
    model_config = MODEL_CONFIG

    reason: Annotated[str, text(MAX_REASON)] | None = Reason


class ReasonRequiredBody(BaseModel):
    model_config = MODEL_CONFIG

    reason: Annotated[str, text(MAX_REASON, 1)]


class Acknowledge(BaseModel):
    model_config = MODEL_CONFIG

    alert_key: Annotated[str, text(500, 1)]
    reason: Annotated[str, text(MAX_REASON, 1)]


class ProposedDrug(BaseModel):
    model_config = MODEL_CONFIG

    id: Annotated[str, text(100, 1)] = "proposed"
    drug: DrugOrder
    dosage: Dosage | None = None
    start: Day | None = None
    stop: Day | None = None


class CheckRequest(BaseModel):
    """Drugs about to be ordered, checked against the list without writing anything."""

    model_config = MODEL_CONFIG

    proposed: list[ProposedDrug] = Field(min_length=1, max_length=20)


# -- responses -------------------------------------------------------------------------------


class CommandResponse(BaseModel):
    """A write's answer: the list version after it (also the ETag), the alerts shown, the
    overrides it carried, and the command's own fields (ids, statuses …)."""

    model_config = ConfigDict(extra="allow")

    patient_id: UUID
    list_version: int
    catalogue_version: int
    alerts: list[Alert]
    overridden: list[str]


class ListView(BaseModel):
    """The current list (active, on hold, discontinued within 90 days), its open alerts and
    the overrides on record. ``list_version`` is also the ETag; send it back as If-Match."""

    patient_id: UUID
    list_version: int
    entries: list[ListEntry]
    open_alerts: list[Alert]
    overrides: list[OverrideOnRecord]


class DispensableView(BaseModel):
    """What a pharmacy needs to dispense: the dispensable prescriptions (status E or U) with
    their entries, and the overrides prescribers recorded (shown downstream)."""

    patient_id: UUID
    list_version: int
    prescriptions: list[PrescriptionSummary]
    entries: list[ListEntry]
    overrides: list[OverrideOnRecord]


class CheckResponse(BaseModel):
    patient_id: UUID
    list_version: int
    catalogue_version: int
    alerts: list[Alert]


class PatientRef(BaseModel):
    patient_id: UUID


class AccessEvent(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_role: str
    organisation: str | None
    action: str
    outcome: str
    reason: str | None
    decision_reference: str | None = None


class AccessLog(BaseModel):
    """Who did what with the patient's data, newest first; ``next_before`` pages on."""

    events: list[AccessEvent]
    next_before: int | None


class EntryHistory(BaseModel):
    """Every version of one entry, oldest first: who, when, why and what changed."""

    entry_id: UUID
    versions: list[EntryVersion]


class ChartLine(BaseModel):
    """One planned dose on a ward chart with its status now and its charting, if any."""

    planned_dose_id: UUID
    entry_id: UUID
    drug: str
    local_time: str = Field(description="The intended Oslo wall time (ISO 8601, no offset)")
    due_at: datetime
    amount: Quantity
    status: DoseStatus
    late: bool
    multidose: bool
    charting: Administration | None


class PrnLimits(BaseModel):
    """The limits an as-needed dose's prescription sets (``null``: none set)."""

    max_per_24h: Quantity | None
    max_per_period: Quantity | None
    period: Period | None
    min_interval: Period | None


class PrnLine(BaseModel):
    """An as-needed (PRN) entry in use, one line per as-needed dose of its dosage: the dose, its
    limits, and where it stands at the moment of the read."""

    entry_id: UUID
    drug: str
    amount: Quantity = Field(description="The dose prescribed for one intake")
    limits: PrnLimits
    given_last_24h: float = Field(
        ge=0, description="Given of this entry in the 24 h up to now, in the unit of `amount`"
    )
    doses_remaining: int | None = Field(
        description="How many more doses of `amount` the 24 h and period maxima allow now "
        "(the minimum interval aside); null when no maximum is set or a limit is in another "
        "unit than the dose (see `not_checked`)"
    )
    next_allowed_at: datetime | None = Field(
        description="From when the next dose of `amount` breaks no limit (now when it may be "
        "given now); null when a limit cannot be checked or no dose of `amount` ever fits"
    )
    not_checked: list[str] = Field(
        description="Limits in another unit than the dose, which could not be checked"
    )


class UnreadableRecord(BaseModel):
    """A stored record that no longer loads, named as the `stored-record-unreadable` problem
    names it (never its stored value); `medloop records check` lists it."""

    table: str
    key: dict[str, str]
    detail: str


class PatientChart(BaseModel):
    """One admitted patient's doses of the day, the PRN doses given that day, and every PRN
    entry in use with its limits and what remains (``prn``: empty for a patient no longer on
    the ward)."""

    patient_id: UUID
    admission_id: UUID
    doses: list[ChartLine]
    as_needed: list[Administration]
    prn: list[PrnLine]
    unreadable: UnreadableRecord | None = Field(
        default=None,
        description="A stored record of this resident's day that no longer loads: `doses`, "
        "`as_needed` and `prn` are then empty, not a partial day. Such residents come first; "
        "every other resident's chart is as ever",
    )


class WardChart(BaseModel):
    """A ward's chart for one Oslo calendar day."""

    ward_id: UUID
    day: date
    patients: list[PatientChart]


class AdministrationRecord(BaseModel):
    """A charting as recorded, with its correction when it was entered in error (then it no
    longer ``stands``)."""

    administration: Administration
    correction: AdministrationCorrection | None
    stands: bool


class AdmissionRecord(BaseModel):
    """An admission as recorded, with its discharge (``discharged_at``) once it ended."""

    admission: Admission


class WardCreated(BaseModel):
    ward_id: UUID
    organisation_id: str
    name: str
    config_version: int


class WardRecord(WardCreated):
    """A ward as it stands: its name, organisation and current configuration (version and
    settings)."""

    config: WardConfig


class WardConfigured(BaseModel):
    ward_id: UUID
    config_version: int


class ProposalRecord(BaseModel):
    """A pharmacy's proposal with the prescriber's decision (``null`` while pending)."""

    proposal: Proposal
    decision: ProposalDecision | None


class DeadlineFlag(BaseModel):
    """The list changed for multidose after the pharmacy took its plan (or none was taken) and
    the period's order deadline has passed."""

    model_config = ConfigDict(extra="allow")

    list_version: int
    flagged_at: datetime
    order_deadline: str
    plan_list_version: int
    entries: list[UUID]


class PeriodOverview(BaseModel):
    """A packing period with its urgent packs, the list version the pharmacy took its plan
    from and the deadline flags."""

    period: PackingPeriod
    urgent_packs: list[UrgentPack]
    plan_list_version: int | None
    deadline_flags: list[DeadlineFlag]


class MultidoseOverview(BaseModel):
    """The patient's multidose doctor and pharmacy, packing periods, pending proposals and
    open tasks."""

    responsibility: Responsibility | None
    periods: list[PeriodOverview]
    pending_proposals: list[Proposal]
    open_tasks: list[MultidoseTask]


def dump(value: Any) -> Any:
    """A pydantic value (or a list of them) for a response body: its JSON as pydantic writes
    it, embedded as is by the response's orjson rendering (``medloop.api.responses``) rather
    than turned into Python dicts and encoded again."""
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    if isinstance(value, BaseModel):
        return orjson.Fragment(value.__pydantic_serializer__.to_json(value))
    return value
