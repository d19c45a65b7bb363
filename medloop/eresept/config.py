"""Configuration of the reading layer: ``MEDLOOP_ERESEPT_*`` as ``medloop.settings`` read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_EMBEDDING = 4


@dataclass(frozen=True)
class Limits:
    """What the hardened parser accepts: bytes of one XML document (the message, and each
    decoded base64 document on its own), element nesting depth, and how many base64 layers
    deep documents may be embedded."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_embedding: int = DEFAULT_MAX_EMBEDDING


@dataclass(frozen=True)
class ReaderConfig:
    xsd_dir: Path | None
    trust_store: Path | None = None
    limits: Limits = Limits()

    @classmethod
    def from_env(cls) -> ReaderConfig:
        """The reader's configuration from the process's settings (``MEDLOOP_ERESEPT_*``, read
        by ``medloop.settings``)."""
        from medloop.settings import current

        found = current().eresept
        return cls(
            xsd_dir=found.xsd_dir,
            trust_store=found.trust_store,
            limits=Limits(
                max_bytes=found.max_bytes,
                max_depth=found.max_depth,
                max_embedding=found.max_embedding,
            ),
        )


def default_xsd_dir() -> Path | None:
    """``../shared/reference/xsd`` beside the repository (holding ``eresept/`` and
    ``felleskomponenter/``), when it is there."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd"
    return candidate if candidate.is_dir() else None
