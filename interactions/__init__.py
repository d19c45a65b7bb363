"""Clinical decision support for medloop: knowledge built from one FEST catalogue version, pure
checks over a medication list, and the ``Alert`` they return.

Never imports ``medloop`` or ``fest`` and never touches a database: the caller hands in a
``CatalogueSnapshot`` and resolved list entries.
"""

from interactions.alerts import Alert, Kind, Severity, Source
from interactions.catalogue import CatalogueSnapshot
from interactions.dosage import Dosage
from interactions.drugs import AmbiguousReference, ResolvedDrug, UnknownReference
from interactions.engine import check
from interactions.knowledge import Knowledge
from interactions.medication import Allergy, HandledAlert, Medication, Patient

__all__ = [
    "Alert",
    "Allergy",
    "AmbiguousReference",
    "CatalogueSnapshot",
    "Dosage",
    "HandledAlert",
    "Kind",
    "Knowledge",
    "Medication",
    "Patient",
    "ResolvedDrug",
    "Severity",
    "Source",
    "UnknownReference",
    "check",
]
