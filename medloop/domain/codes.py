"""The code systems the domain speaks: national e-resept code systems (value = the national code,
so export needs no mapping table) and medloop's own value sets (value = a kebab-case word).

National code systems (OIDs under 2.16.578.1.12.4.1.1):

- 7494 discontinuation reason (``Årsak til seponering``),
- 7408 prescription status (``Status for resept``),
- 7500 recall reason (``Årsak til tilbakekalling``),
- 7421 prescription group (``Reseptgruppe``; a CS, no OID in messages).
"""

from __future__ import annotations

from interactions.values import StrEnum

DISCONTINUATION_REASON_OID = "2.16.578.1.12.4.1.1.7494"
PRESCRIPTION_STATUS_OID = "2.16.578.1.12.4.1.1.7408"
RECALL_REASON_OID = "2.16.578.1.12.4.1.1.7500"


class EntryStatus(StrEnum):
    """Status of a list entry. Only ``active`` entries count as in use."""

    ACTIVE = "active"
    ON_HOLD = "on-hold"
    DISCONTINUED = "discontinued"
    ENTERED_IN_ERROR = "entered-in-error"

    @property
    def is_live(self) -> bool:
        """Active or on hold: the entry is part of the current treatment."""
        return self in (EntryStatus.ACTIVE, EntryStatus.ON_HOLD)


class DiscontinuationReason(StrEnum):
    """Discontinuation (``seponering``) reason, code system 7494."""

    TREATMENT_ENDED = "A"
    DUPLICATE_ENTRY = "D"
    INTERACTION = "I"
    DRUG_REACTION = "L"
    LACK_OF_EFFECT = "M"
    PATIENT_HAS_NOT_USED = "P"
    PATIENT_STOPPED = "S"
    OTHER = "X"


class PrescriptionStatus(StrEnum):
    """Prescription status, code system 7408."""

    DISPENSABLE = "E"
    BEING_DISPENSED = "U"
    FULLY_DISPENSED = "R"
    RECALLED = "T"
    EXPIRED = "F"


class RecallReason(StrEnum):
    """Recall (``tilbakekalling``) reason, code system 7500."""

    RENEWAL = "1"
    DISCONTINUATION = "2"
    RENEWAL_WITH_CHANGE = "3"
    OTHER = "4"


class PrescriptionGroup(StrEnum):
    """``Reseptgruppe`` (CS 7421): A narcotics, B other controlled, C, CF, and F (over the
    counter)."""

    A = "A"
    B = "B"
    C = "C"
    CF = "CF"
    F = "F"


GROUPS_WITHOUT_REPEATS = frozenset({PrescriptionGroup.A, PrescriptionGroup.B})


class OrganisationKind(StrEnum):
    GP_PRACTICE = "gp-practice"
    PHARMACY = "pharmacy"
    NURSING_HOME = "nursing-home"
    HOSPITAL = "hospital"


class PersonnelRole(StrEnum):
    DOCTOR = "doctor"
    NURSE = "nurse"
    PHARMACIST = "pharmacist"
    SYSTEM = "system"  # medloop's own scheduled jobs (expiry); never a person or a token role


class EntryChangeKind(StrEnum):
    """What one entry version did to the entry."""

    ADDED = "added"
    EDITED = "edited"
    PUT_ON_HOLD = "put-on-hold"
    RESUMED = "resumed"
    DISCONTINUED = "discontinued"
    ENTERED_IN_ERROR = "entered-in-error"
    PRESCRIPTION_LINKED = "prescription-linked"
    PRESCRIPTION_RENEWED = "prescription-renewed"


class PrescriptionChangeKind(StrEnum):
    """What one prescription version did to the prescription."""

    ISSUED = "issued"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    PARTIALLY_DISPENSED = "partially-dispensed"
    FULLY_DISPENSED = "fully-dispensed"
    REOPENED = "reopened"
    RECALLED = "recalled"
    EXPIRED = "expired"


class ReconciliationOutcome(StrEnum):
    """What reconciliation (``samstemming``) concluded about one entry."""

    CONFIRMED = "confirmed"
    CHANGED = "changed"
    DISCONTINUED = "discontinued"
    ADDED = "added"
    NOT_IN_USE = "not-in-use"


class SourceKind(StrEnum):
    """A source consulted during reconciliation: ``prescription-broker`` is Reseptformidleren,
    ``summary-care-record`` Kjernejournal, ``hospital-discharge`` the discharge letter
    (epikrise)."""

    PATIENT = "patient"
    NEXT_OF_KIN = "next-of-kin"
    PRESCRIPTION_BROKER = "prescription-broker"
    SUMMARY_CARE_RECORD = "summary-care-record"
    PHARMACY = "pharmacy"
    MULTIDOSE_PHARMACY = "multidose-pharmacy"
    NURSING_HOME_CHART = "nursing-home-chart"
    HOSPITAL_DISCHARGE = "hospital-discharge"
    GP_RECORD = "gp-record"
    OTHER = "other"
