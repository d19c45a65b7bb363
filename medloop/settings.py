"""Settings read from the environment (``MEDLOOP_*``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///medloop.db"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    database_url: str
    fest_xsd_dir: Path | None
    demo_catalogue: Path

    @classmethod
    def from_env(cls) -> Settings:
        xsd = os.environ.get("MEDLOOP_FEST_XSD_DIR")
        return cls(
            database_url=os.environ.get("MEDLOOP_DATABASE_URL", DEFAULT_DATABASE_URL),
            fest_xsd_dir=Path(xsd) if xsd else _shared_xsd_dir(),
            demo_catalogue=Path(
                os.environ.get("MEDLOOP_DEMO_CATALOGUE", REPO_ROOT / "seeds" / "demo-fest.xml")
            ),
        )


def _shared_xsd_dir() -> Path | None:
    """The official schemas in the team's shared reference folder, when it is beside us."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd" / "eresept"
    return candidate if candidate.is_dir() else None


def renal_max_age_days() -> int | None:
    """``MEDLOOP_RENAL_MAX_AGE_DAYS``: how many days old a kidney-function value may be and still
    be trusted by dose checks; unset, the rule file's ``renal_max_age_days`` (90) applies."""
    value = os.environ.get("MEDLOOP_RENAL_MAX_AGE_DAYS", "").strip()
    if not value:
        return None
    days = int(value)
    if days <= 0:
        raise ValueError("MEDLOOP_RENAL_MAX_AGE_DAYS must be a positive number of days")
    return days
