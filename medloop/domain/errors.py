"""The base of every refusal: ``DomainError``, with a stable machine ``code``.

The codes are a public contract: the API maps each one to an RFC 9457 problem type
(``…/problems/<code>``) in one place (``medloop.api.problems``). Never rename or reuse a code;
add a class instead (a reused code is refused when the class is defined). ``detail`` is a
sentence for people; ``context`` holds the ids and values involved, as JSON-able scalars.

Where errors live: each family's refusals are defined beside the code that raises them — at the
top of the family's module under ``# -- errors`` (``medloop.domain.medication_list``,
``prescription``, ``dispense``, ``reconciliation``, ``patient``, ``personnel``, ``validity``,
``ward``, ``administration``), or in the family package's ``errors.py``
(``medloop.domain.multidose.errors``, ``medloop.loop.errors`` for the command layer's own
refusals). Each family has a base class to catch when the precise cause does not matter
(``ListError``, ``PrescriptionError``, ``DispenseError``, ``MultidoseError``, …).

This module holds only what crosses families:

- ``InvalidValue``: a value that cannot exist (also a ``ValueError``, so pydantic reports it;
  the API answers 422 for every one);
- ``NotDispensable``: a marker for the refusals that stop a dispense, shared by the
  dispensing, prescription and list errors.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import ClassVar
from uuid import UUID

_CODES: dict[str, type[DomainError]] = {}


def _jsonable(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID | date | datetime):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    if isinstance(value, tuple | list | set | frozenset):
        return [_jsonable(item) for item in value]
    return value


class DomainError(Exception):
    """A refusal by the domain. Concrete subclasses set a unique ``code``."""

    code: ClassVar[str] = "domain-error"

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = {name: _jsonable(value) for name, value in context.items()}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in _CODES:
                raise TypeError(f"error code {cls.code!r} is already used by {_CODES[cls.code]}")
            _CODES[cls.code] = cls


def error_codes() -> dict[str, type[DomainError]]:
    """Every concrete error code and its class, of the modules imported so far (a class
    registers its code when it is defined, wherever it lives)."""
    return dict(_CODES)


class InvalidValue(DomainError, ValueError):
    """A value that cannot exist."""


class NotDispensable(DomainError):
    """Marker: the error stops a dispense (raised by the closed-loop dispensing checks)."""
