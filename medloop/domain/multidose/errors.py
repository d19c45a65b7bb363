"""The refusals of the multidose commands: one family, ``MultidoseError``, with a stable code
per refusal (mapped to HTTP statuses in ``medloop.api.problems``)."""

from __future__ import annotations

from medloop.domain.errors import DomainError


class MultidoseError(DomainError):
    """A multidose command is refused."""


class InvalidResponsibility(MultidoseError):
    code = "multidose-responsibility-invalid"


class NoMultidoseResponsibility(MultidoseError):
    code = "no-multidose-responsibility"


class NotTheMultidosePharmacy(MultidoseError):
    code = "not-the-multidose-pharmacy"


class InvalidPackingPeriod(MultidoseError):
    code = "multidose-period-invalid"


class PackingPeriodOverlaps(MultidoseError):
    code = "multidose-period-overlaps"


class PackingPeriodNotFound(MultidoseError):
    code = "multidose-period-not-found"


class UrgentPackNotFound(MultidoseError):
    code = "multidose-urgent-pack-not-found"


class PackReconciliationNotFound(MultidoseError):
    """No packing reconciliation with that id for this patient."""

    code = "multidose-reconciliation-not-found"


class UrgentPackRefused(MultidoseError):
    code = "multidose-urgent-pack-refused"


class InvalidPackReport(MultidoseError):
    code = "multidose-pack-report-invalid"


class PharmacistRequired(MultidoseError):
    code = "pharmacist-required"


class PrescriberRequired(MultidoseError):
    """Only a prescriber (``PersonnelRole.DOCTOR``) may do this."""

    code = "prescriber-required"


class InvalidProposal(MultidoseError):
    code = "multidose-proposal-invalid"


class ProposalNotFound(MultidoseError):
    code = "multidose-proposal-not-found"


class ProposalAlreadyDecided(MultidoseError):
    code = "multidose-proposal-already-decided"


class TaskNotFound(MultidoseError):
    code = "multidose-task-not-found"


class TaskAlreadyResolved(MultidoseError):
    code = "multidose-task-already-resolved"


class TaskNoteRequired(MultidoseError):
    code = "multidose-task-note-required"
