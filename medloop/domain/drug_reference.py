"""What a list entry or prescription names as its drug: a FEST catalogue reference resolved
against one catalogue version, or a non-catalogue item (supplement, magistral preparation).

A catalogue reference keeps the whole ``interactions.drugs.ResolvedDrug`` (substances, ATC,
strengths, packages, substitution groups) as resolved at ``catalogue_version``, so an entry means
the same thing after the catalogue moves on (architecture invariant 7).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from interactions.catalogue import Package
from interactions.drugs import ReferenceKind, ResolvedDrug
from interactions.values import PositiveCount
from medloop.domain._model import Frozen

PRESCRIBABLE_KINDS = frozenset(
    {
        ReferenceKind.PACKAGE,  # Legemiddelpakning, by FEST id (and varenr)
        ReferenceKind.PRODUCT,  # LegemiddelMerkevare (brand)
        ReferenceKind.GENERIC_GROUP,  # LegemiddelVirkestoff (substance prescribing)
        ReferenceKind.DOSE_UNIT,  # Legemiddeldose
    }
)
_VARENR_LENGTH = 6


class CatalogueDrug(Frozen):
    """A FEST package, brand, generic group or dose unit, resolved at ``catalogue_version``."""

    source: Literal["catalogue"] = "catalogue"
    resolved: ResolvedDrug
    catalogue_version: PositiveCount
    varenr: str | None = None

    @model_validator(mode="after")
    def _is_a_prescribable_reference(self) -> CatalogueDrug:
        if self.resolved.reference_kind not in PRESCRIBABLE_KINDS:
            raise ValueError(
                f"a list entry names a package, product, generic group or dose unit, "
                f"not a {self.resolved.reference_kind.value}"
            )
        if self.varenr is not None:
            if self.resolved.reference_kind is not ReferenceKind.PACKAGE:
                raise ValueError("only a package reference has a varenr")
            if len(self.varenr) != _VARENR_LENGTH or not self.varenr.isdigit():
                raise ValueError(f"a varenr is six digits, not {self.varenr!r}")
        return self

    @property
    def fest_id(self) -> str:
        return self.resolved.reference_id

    @property
    def name(self) -> str:
        return self.resolved.name

    def names_package(self, package: Package) -> bool:
        """Whether handing out ``package`` is handing out what this reference names (no
        substitution): the package itself, or for a brand, generic group or dose unit any
        package of its products."""
        if package.id in self.resolved.package_ids:
            return True
        return self.resolved.reference_kind is not ReferenceKind.PACKAGE and bool(
            set(package.product_ids) & set(self.resolved.product_ids)
        )


class NonCatalogueItem(Frozen):
    """Something used that is not in FEST (a supplement, a magistral preparation): a name and
    free text."""

    source: Literal["non-catalogue"] = "non-catalogue"
    name: str = Field(min_length=1)
    text: str | None = None


class UnresolvedDrug(Frozen):
    """A drug a received message names that the catalogue version in force does not hold (or
    that is not a reference a list entry can name): kept with everything the message said about
    it, so the list never silently loses a drug. Decision support cannot check it; ``notice``
    says so, visibly, wherever the entry is shown."""

    source: Literal["unresolved"] = "unresolved"
    name: str = Field(min_length=1)
    text: str | None = None
    fest_id: str | None = None
    varenr: str | None = None
    atc: str | None = None
    prescription_group: str | None = None
    catalogue_version: PositiveCount | None = None
    notice: str = Field(min_length=1)


DrugReference = Annotated[
    CatalogueDrug | NonCatalogueItem | UnresolvedDrug, Field(discriminator="source")
]
