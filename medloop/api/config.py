"""The API's fixed configuration (the development keys, the accepted algorithms) and its view of
the application's settings.

Everything configurable is in :class:`medloop.settings.Settings` (read from the environment in
one place); the API takes that object as it is. ``ApiSettings`` is the same class under the name
the API's callers have always used (``ApiSettings.from_env(database_url)``).
"""

from __future__ import annotations

from pathlib import Path

from medloop.settings import (
    DEFAULT_AUDIENCE,
    DEFAULT_MAX_LIFETIME_SECONDS,
    DEV_ISSUER,
    MAX_LIFETIME_RANGE,
    InvalidSetting,
    Settings,
)

DEV_KEYS = Path(__file__).resolve().parents[1] / "dev_keys"
DEV_PRIVATE_KEY = DEV_KEYS / "dev-private.pem"
DEV_PUBLIC_KEY = DEV_KEYS / "dev-public.pem"
ALGORITHMS = (
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
)  # fmt: skip
"""Asymmetric algorithms only: a shared-secret (HS*) or ``none`` token is never accepted; each
key accepts only those of its own type (``medloop.api.auth.algorithms_for``)."""

ApiSettings = Settings

__all__ = [
    "ALGORITHMS",
    "DEFAULT_AUDIENCE",
    "DEFAULT_MAX_LIFETIME_SECONDS",
    "DEV_ISSUER",
    "DEV_KEYS",
    "DEV_PRIVATE_KEY",
    "DEV_PUBLIC_KEY",
    "MAX_LIFETIME_RANGE",
    "ApiSettings",
    "InvalidSetting",
]
