"""A drug reference resolved against one catalogue version: the description checks work on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from interactions.values import MAX_ITEMS, StrEnum, Total


class ReferenceKind(StrEnum):
    """What a resolved drug was resolved from."""

    PACKAGE = "package"
    PRODUCT = "product"
    GENERIC_GROUP = "generic-group"
    DOSE_UNIT = "dose-unit"
    SUBSTANCE = "substance"
    ATC = "atc"


class UnknownReference(LookupError):
    """A drug reference that is not in this catalogue version."""

    def __init__(self, kind: str, value: str, reason: str = "is not in the catalogue") -> None:
        super().__init__(f"{kind} {value!r} {reason}")
        self.kind = kind
        self.value = value


class AmbiguousReference(UnknownReference):
    """A varenr shared by several packages (parallel imports): resolve by package id instead."""

    def __init__(self, kind: str, value: str, candidates: tuple[str, ...]) -> None:
        super().__init__(kind, value, f"names several packages: {', '.join(candidates)}")
        self.candidates = candidates


Ids = Annotated[tuple[str, ...], Field(max_length=MAX_ITEMS)]
"""The ids of a resolved drug (bounded where a stored or sent drug is validated)."""


@dataclass(frozen=True, slots=True)
class ResolvedStrength:
    """One component's strength; ``atc`` is the component's ATC code where known."""

    strength_id: str
    substance_id: str
    substance_name: str | None
    atc: str | None
    value: Total
    unit: str
    denominator_value: Total | None
    denominator_unit: str | None
    operator: str | None
    upper_value: Total | None


@dataclass(frozen=True, slots=True)
class ResolvedDrug:
    """A catalogue drug reference resolved to what checks need.

    ``atc_codes`` holds the drug's own code first, then each component's; ``substance_ids`` are the
    substances named by the drug, ``parent_substance_ids`` the moieties above them.
    """

    reference_kind: ReferenceKind
    reference_id: str
    name: str
    atc: str | None = None
    atc_codes: Ids = ()
    substance_ids: Ids = ()
    parent_substance_ids: Ids = ()
    strengths: Annotated[tuple[ResolvedStrength, ...], Field(max_length=MAX_ITEMS)] = ()
    product_ids: Ids = ()
    package_ids: Ids = ()
    generic_group_ids: Ids = ()
    substitution_group_ids: Ids = ()
    form_code: str | None = None
    form_name: str | None = None
    route_codes: Ids = ()
    dose_unit_codes: Ids = ()
    prescription_group: str | None = None
