"""The ``Alert`` every check returns: kind, severity, the entries involved, a one-line summary,
structured detail per kind, and provenance.

An alert maps 1:1 onto an HL7 CDS Hooks card: ``summary`` → ``summary``, ``severity`` →
``indicator`` (``avoid`` critical, ``precautions`` warning, otherwise info), ``source`` →
``source``, ``detail`` → ``detail``; ``key`` identifies the alert for acknowledgement
(FEST implementation guide §8.3: a handled alert does not re-appear for the same patient).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from interactions.values import StrEnum

SUMMARY_LENGTH = 140


class Kind(StrEnum):
    INTERACTION = "interaction"
    DUPLICATE = "duplicate"
    DOSE = "dose"
    DOSE_NOT_CHECKED = "dose-not-checked"
    ALLERGY = "allergy"
    NOTICE = "notice"
    NOT_ASSESSED = "not-assessed"
    SUBSTITUTION_RESTRICTION = "substitution-restriction"


class Severity(StrEnum):
    """``avoid`` interrupts and needs an override; ``no-action`` is shown only on request."""

    AVOID = "avoid"
    PRECAUTIONS = "precautions"
    INFO = "info"
    NO_ACTION = "no-action"

    @property
    def rank(self) -> int:
        """The severity's place in the order above (0: most severe)."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: index for index, severity in enumerate(Severity)}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Model):
    """Provenance: the catalogue version the alert was made with, and the FEST record (by its
    FEST id) or our rule (by its rule id) behind it."""

    catalogue_version: int
    hentet_dato: str
    fest_id: str | None = None
    rule_id: str | None = None


class Reference(_Model):
    text: str
    url: str | None = None


class Handling(_Model):
    """``Handtering`` split into its paragraphs; ``other`` holds text before any known prefix."""

    dose_adjustment: str | None = None
    administration: str | None = None
    monitoring: str | None = None
    alternatives: str | None = None
    other: str | None = None


class Match(_Model):
    """How one entry met one side of an interaction: the group and the key (ATC code or
    substance id) it matched through."""

    medication: str
    group: str | None
    via: str


class InteractionDetail(_Model):
    kind: Literal["interaction"] = "interaction"
    interaction_id: str
    relevance: int
    situation: str | None
    consequence: str
    mechanism: str | None
    source_basis: str | None
    handling: Handling
    display_rules: tuple[str, ...]
    references: tuple[Reference, ...]
    matches: tuple[Match, ...]

    @property
    def record(self) -> str:
        return self.interaction_id


DuplicateReason = Literal["same-substance", "same-substitution-group", "same-atc-level4"]


class DuplicateDetail(_Model):
    kind: Literal["duplicate"] = "duplicate"
    reasons: tuple[DuplicateReason, ...]
    atc_codes: tuple[str, ...]
    substance_ids: tuple[str, ...]
    substitution_group_ids: tuple[str, ...]

    @property
    def record(self) -> str:
        return f"duplicate:{self.reasons[0]}"


class Contribution(_Model):
    medication: str
    amount: float


DoseMeasure = Literal[
    "single",
    "daily",
    "weekly",
    "course",
    "schedule",
    "regimen",
    "contraindicated",
    "duration",
    "pause",
]


class DoseDetail(_Model):
    """A dose above a limit. For ``schedule`` the amounts are dosing days per week, for
    ``duration`` days of treatment (``amount`` ``None``: no stop date), for ``pause`` days
    between two courses; ``contraindicated`` and ``regimen`` carry the dose that was checked.

    ``condition`` names the patients the rule is for (``None``: every adult) and ``patient``
    the facts it was judged on; ``reviewed`` whether a clinical pharmacist has signed the rule.
    """

    kind: Literal["dose"] = "dose"
    measure: DoseMeasure
    substance: str
    atc: str
    amount: float | None
    limit: str
    limit_amount: float
    unit: str
    contributions: tuple[Contribution, ...]
    weight_kg: float | None
    rule_id: str
    citation: str
    url: str | None
    note: str | None
    condition: str | None = None
    patient: str | None = None
    section: str | None = None
    amount_of: str | None = None
    reviewed: bool = False

    @property
    def record(self) -> str:
        return f"{self.rule_id}:{self.measure}"


class DoseNotCheckedDetail(_Model):
    kind: Literal["dose-not-checked"] = "dose-not-checked"
    substance: str
    atc: str
    reason_code: str
    reason: str
    rule_id: str

    @property
    def record(self) -> str:
        return f"{self.rule_id}:{self.reason_code}"


class AllergyDetail(_Model):
    kind: Literal["allergy"] = "allergy"
    allergen: str
    allergen_kind: Literal["atc", "substance"]
    label: str | None
    via: str

    @property
    def record(self) -> str:
        return f"allergy:{self.allergen}"


class NoticeDetail(_Model):
    kind: Literal["notice"] = "notice"
    notice_id: str
    type_code: str
    type_name: str | None
    headline: str
    text: str | None
    link: str | None
    from_date: date | None

    @property
    def record(self) -> str:
        return self.notice_id


class NotAssessedDetail(_Model):
    kind: Literal["not-assessed"] = "not-assessed"
    atc: str
    name: str | None
    drug_atc: str

    @property
    def record(self) -> str:
        return f"not-assessed:{self.atc}"


class SubstitutionRestrictionDetail(_Model):
    """Generic substitution within a substitution group FEST marks with a substitution remark
    (``Byttegruppe/MerknadTilByttbarhet``, text ``BeskrivelseByttbarhet``): substitution is
    limited to a patient's first prescription, or not allowed for part of the indication
    (IG 3.5 §6.5.3), so the pharmacist must decide, with a reason, whether it applies.

    ``prescription`` is the decision point (the prescription dispensed against);
    ``earlier_dispenses`` counts this patient's earlier dispenses of the drug or of the group
    (0: this looks like a first prescription)."""

    kind: Literal["substitution-restriction"] = "substitution-restriction"
    substitution_group_id: str
    group_code: str
    group_name: str | None
    restriction: str | None
    prescribed: str
    dispensed: str
    prescription: str
    earlier_dispenses: int

    @property
    def record(self) -> str:
        return f"substitution-restriction:{self.group_code}:{self.prescription}"


Detail = Annotated[
    InteractionDetail
    | DuplicateDetail
    | DoseDetail
    | DoseNotCheckedDetail
    | AllergyDetail
    | NoticeDetail
    | NotAssessedDetail
    | SubstitutionRestrictionDetail,
    Field(discriminator="kind"),
]

_KIND_OF = {kind.value: kind for kind in Kind}
"""Each kind by its value (``Kind(value)`` for a detail's ``kind``)."""

_OVERRIDE_KINDS = frozenset({Kind.ALLERGY, Kind.DOSE, Kind.SUBSTITUTION_RESTRICTION})


class Alert(BaseModel):
    """One finding of decision support about one or more list entries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    severity: Severity
    medications: tuple[str, ...]
    summary: str = Field(max_length=SUMMARY_LENGTH)
    detail: Detail
    source: Source

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kind(self) -> Kind:
        # ``Kind(self.detail.kind)``: the same member, by a dict look-up instead of the enum's
        # call (an alert's kind is read a dozen times on its way to the response; issue #20).
        return _KIND_OF[self.detail.kind]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def requires_override(self) -> bool:
        """Avoid-tier interactions, allergies, doses above a limit and a substitution within a
        restricted group (the pharmacist's decision) need a reasoned override."""
        return self.severity is Severity.AVOID or self.kind in _OVERRIDE_KINDS

    @computed_field  # type: ignore[prop-decorator]
    @property
    def key(self) -> str:
        """Stable identity: kind, FEST record or rule, and the entries involved (sorted)."""
        # Kept per alert object (frozen, and so are its detail and medications): an alert's key
        # is read five times on its way to the response and the stored rows (issue #20). The
        # alert is kept beside its id, so the id cannot name another object meanwhile.
        known = _KEYS.get(id(self))
        if known is not None and known[0] is self:
            return known[1]
        found = f"{self.kind}/{self.detail.record}/{','.join(sorted(self.medications))}"
        if len(_KEYS) >= _KEYS_KEPT:
            _KEYS.clear()
        _KEYS[id(self)] = (self, found)
        return found


_KEYS: dict[int, tuple[Alert, str]] = {}
_KEYS_KEPT = 4_096


_KIND_ORDER = {kind: index for index, kind in enumerate(Kind)}


def sort_key(alert: Alert) -> tuple[int, int, str]:
    """Most severe first; then by kind and key, so the order never depends on input order."""
    return (alert.severity.rank, _KIND_ORDER[alert.kind], alert.key)


def shorten(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """``text`` on one line, cut with an ellipsis to at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# Alerts made from parts already what validating them gives (issue #20): the instance pydantic
# would make — its fields in declared order, the fields given as its ``__pydantic_fields_set__``,
# no extra or private values — made by ``object.__new__`` and ``BaseModel``'s own slot setters
# (``object.__setattr__`` where those are not the descriptors pydantic 2 has), without the
# validator's walk over the values. Only for parts of exactly the checked types; anything else
# is validated as before (``tests/interactions/test_ix_fast_paths.py`` compares both ways).
_object_new = object.__new__
_object_setattr = object.__setattr__


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    found = BaseModel.__dict__.get(name)
    if type(found) in (GetSetDescriptorType, MemberDescriptorType) and (
        getattr(found, "__objclass__", None) is BaseModel
    ):
        setter: Callable[[Any, Any], None] = found.__set__
        return setter

    def fallback(instance: Any, value: Any) -> None:
        _object_setattr(instance, name, value)

    return fallback


_set_dict = _slot_setter("__dict__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")

_NOT_CHECKED_SET = frozenset({"substance", "atc", "reason_code", "reason", "rule_id"})
_ALERT_SET = frozenset({"severity", "medications", "summary", "detail", "source"})
_NOT_CHECKED_KIND: str = DoseNotCheckedDetail.model_fields["kind"].default


def _constructed(cls: type[BaseModel], values: dict[str, Any], fields_set: frozenset[str]) -> Any:
    instance = _object_new(cls)
    _set_dict(instance, values)
    _set_fields_set(instance, set(fields_set))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def dose_not_checked_alert(
    medication: str,
    substance: str,
    atc: str,
    reason_code: str,
    reason: str,
    rule_id: str,
    summary: str,
    source: Source,
) -> Alert:
    """``Alert(severity=INFO, medications=(medication,), summary=summary,
    detail=DoseNotCheckedDetail(substance=…, atc=…, reason_code=…, reason=…, rule_id=…),
    source=source)``: the same alert, made without validating it when every part is exactly
    of its checked type (``str``, a ``Source``) and the summary within its length; otherwise
    validated."""
    if (
        type(medication) is str
        and type(substance) is str
        and type(atc) is str
        and type(reason_code) is str
        and type(reason) is str
        and type(rule_id) is str
        and type(summary) is str
        and len(summary) <= SUMMARY_LENGTH
        and type(source) is Source
    ):
        detail = _constructed(
            DoseNotCheckedDetail,
            {
                "kind": _NOT_CHECKED_KIND,
                "substance": substance,
                "atc": atc,
                "reason_code": reason_code,
                "reason": reason,
                "rule_id": rule_id,
            },
            _NOT_CHECKED_SET,
        )
        made: Alert = _constructed(
            Alert,
            {
                "severity": Severity.INFO,
                "medications": (medication,),
                "summary": summary,
                "detail": detail,
                "source": source,
            },
            _ALERT_SET,
        )
        return made
    return Alert(
        severity=Severity.INFO,
        medications=(medication,),
        summary=summary,
        detail=DoseNotCheckedDetail(
            substance=substance,
            atc=atc,
            reason_code=reason_code,
            reason=reason,
            rule_id=rule_id,
        ),
        source=source,
    )
