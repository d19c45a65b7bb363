"""All tables medloop migrates: the FEST catalogue tables and the engine's own.

The engine's modules define their tables on the one shared ``fest.schema.metadata``;
importing them here is what puts those tables in front of Alembic.
"""

from fest.schema import metadata
from medloop.store import (  # noqa: F401  (registers their tables)
    access,
    administration,
    alerts,
    audit,
    exports,
    idempotency,
    list_changes,
    messages,
    multidose,
    outbox,
    patients,
    prescriptions,
    reviews,
    sessions,
)

__all__ = ["metadata"]
