"""Configuration of the reading layer, from ``MEDLOOP_ERESEPT_*`` environment variables."""

from __future__ import annotations

import os
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
        xsd = os.environ.get("MEDLOOP_ERESEPT_XSD_DIR")
        trust = os.environ.get("MEDLOOP_ERESEPT_TRUST_STORE")
        return cls(
            xsd_dir=Path(xsd) if xsd else default_xsd_dir(),
            trust_store=Path(trust) if trust else None,
            limits=Limits(
                max_bytes=_int_env("MEDLOOP_ERESEPT_MAX_BYTES", DEFAULT_MAX_BYTES),
                max_depth=_int_env("MEDLOOP_ERESEPT_MAX_DEPTH", DEFAULT_MAX_DEPTH),
                max_embedding=_int_env("MEDLOOP_ERESEPT_MAX_EMBEDDING", DEFAULT_MAX_EMBEDDING),
            ),
        )


def default_xsd_dir() -> Path | None:
    """``../shared/reference/xsd`` beside the repository (holding ``eresept/`` and
    ``felleskomponenter/``), when it is there."""
    candidate = REPO_ROOT.parent / "shared" / "reference" / "xsd"
    return candidate if candidate.is_dir() else None


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}")
    return value
