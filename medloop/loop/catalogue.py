"""The catalogue handle of the loop: one FEST catalogue version as commands use it, built once
per version per process.

``medloop.catalogue`` reads a version's rows from the FEST tables into the plain records of
``interactions.catalogue`` (a reader beside the store, used by the CLI and checks too); this
module turns such a snapshot into what the loop decides with — the decision-support
``Knowledge``, the packages by varenr and by EAN/GTIN, the substitution groups and the products'
validities — and keeps the newest few versions built. It lives in ``loop`` because resolving a
caller's ``DrugOrder`` raises the loop's refusals (``UnknownDrug``, ``NoCatalogueInForce``)
and finding the version in force reads the store.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import model_validator
from sqlalchemy import Connection

from interactions import Knowledge, UnknownReference
from interactions.catalogue import Package, SubstitutionGroup
from interactions.drugs import ReferenceKind
from medloop.catalogue import load_snapshot
from medloop.domain._model import Frozen
from medloop.domain.drug_reference import CatalogueDrug
from medloop.loop.errors import NoCatalogueInForce, UnknownDrug
from medloop.store.patients import catalogue_key_in_force

__all__ = ["KEEP_CATALOGUES", "Catalogue", "DrugOrder", "catalogue_in_force", "catalogue_of"]


class DrugOrder(Frozen):
    """A catalogue drug as a caller names it: a FEST id (package, brand, generic group, dose
    unit) or a package's varenr."""

    fest_id: str | None = None
    varenr: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DrugOrder:
        if (self.fest_id is None) == (self.varenr is None):
            raise ValueError("a drug is named by a FEST id or a varenr")
        return self


@dataclass(frozen=True)
class Catalogue:
    """One catalogue version as the loop uses it: decision-support knowledge, packages (by
    varenr, and by EAN/GTIN on first use) and substitution groups."""

    version: int
    knowledge: Knowledge
    packages_by_varenr: Mapping[str, tuple[Package, ...]]
    substitution_groups: tuple[SubstitutionGroup, ...]
    product_validity: Mapping[str, tuple[str, ...]]
    _by_gtin: dict[str, Package] | None = field(default=None, init=False, repr=False, compare=False)
    _by_gtin_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _drugs: dict[tuple[str | None, str | None], CatalogueDrug] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Each order's drug as ``resolve`` made it, by (fest id, varenr): the same frozen value
    every time, built and validated once per reference (only references this version
    resolves are kept, so no more than the catalogue names)."""

    _validities: dict[tuple[str, ...], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """``validity_of``'s answers by the drug's product ids (at most ``_VALIDITIES_KEPT``)."""

    def resolve(self, order: DrugOrder) -> CatalogueDrug:
        """The drug ``order`` names, resolved at this version; ``UnknownDrug`` otherwise."""
        key = (order.fest_id, order.varenr)
        found = self._drugs.get(key)
        if found is None:
            found = self._drugs[key] = self._resolve(order)
        return found

    def _resolve(self, order: DrugOrder) -> CatalogueDrug:
        try:
            resolved = self.knowledge.resolve(fest_id=order.fest_id, varenr=order.varenr)
        except UnknownReference as error:
            raise UnknownDrug(
                str(error),
                fest_id=order.fest_id,
                varenr=order.varenr,
                catalogue_version=self.version,
            ) from error
        varenr = order.varenr if resolved.reference_kind is ReferenceKind.PACKAGE else None
        try:
            return CatalogueDrug(resolved=resolved, catalogue_version=self.version, varenr=varenr)
        except ValueError as error:
            raise UnknownDrug(
                f"{resolved.name} cannot be put on a list: {error}",
                fest_id=order.fest_id,
                varenr=order.varenr,
                catalogue_version=self.version,
            ) from error

    def package(self, varenr: str) -> Package:
        found = self.packages_by_varenr.get(varenr, ())
        if len(found) != 1:
            raise UnknownDrug(
                f"varenr {varenr} names {len(found)} packages in catalogue version {self.version}",
                varenr=varenr,
                catalogue_version=self.version,
            )
        return found[0]

    @property
    def packages_by_gtin(self) -> Mapping[str, Package]:
        """This version's packages by EAN (``fest_package_ean``): built on first use, once,
        and owned by this object (so it goes when the version does)."""
        found = self._by_gtin
        if found is None:
            with self._by_gtin_lock:
                found = self._by_gtin
                if found is None:
                    found = {
                        ean: package
                        for packages in self.packages_by_varenr.values()
                        for package in packages
                        for ean in package.eans
                    }
                    object.__setattr__(self, "_by_gtin", found)
        return found

    def search(
        self,
        *,
        name: str | None = None,
        varenr: str | None = None,
        ean: str | None = None,
        atc: str | None = None,
    ) -> list[Package]:
        """The packages that match every criterion given: ``name`` a substring (any case),
        ``varenr`` exactly, ``ean`` as a GTIN (leading zeros ignored), ``atc`` a code prefix;
        by name, varenr and id."""
        wanted_name = name.casefold() if name else None
        wanted_atc = atc.upper() if atc else None
        wanted_ean = ean.zfill(14) if ean else None
        found = []
        for packages in self.packages_by_varenr.values():
            for package in packages:
                if varenr is not None and package.varenr != varenr:
                    continue
                if wanted_ean is not None and wanted_ean not in {e.zfill(14) for e in package.eans}:
                    continue
                if wanted_atc is not None and not (package.atc or "").startswith(wanted_atc):
                    continue
                if wanted_name is not None and wanted_name not in package.name.casefold():
                    continue
                found.append(package)
        return sorted(found, key=lambda p: (p.name, p.varenr, p.id))

    def validity_of(self, drug: CatalogueDrug) -> tuple[str, ...]:
        """The products' own prescription validities (``Reseptgyldighet``) for ``drug``: per
        set of product ids, worked out once per version (every prescription asks; issue #20)."""
        products = drug.resolved.product_ids
        found = self._validities.get(products)
        if found is None:
            found = tuple(sorted({v for p in products for v in self.product_validity.get(p, ())}))
            if len(self._validities) >= _VALIDITIES_KEPT:
                self._validities.clear()
            self._validities[products] = found
        return found


KEEP_CATALOGUES = 4
"""Catalogue versions kept built; the newest is the one in force."""

_VALIDITIES_KEPT = 4_096

_catalogues: dict[tuple[int, str], Catalogue] = {}
_catalogues_lock = threading.Lock()


def catalogue_in_force(conn: Connection) -> Catalogue:
    """The catalogue version in force, built once per version (and file) in this process."""
    return catalogue_of(conn, catalogue_key_in_force(conn))


def catalogue_of(conn: Connection, key: tuple[int, str] | None) -> Catalogue:
    """The catalogue version ``key`` (id, file hash) names, as read in this transaction."""
    # The file's hash is part of the key: another database may number another file alike.
    if key is None:
        raise NoCatalogueInForce("no FEST catalogue has been imported")
    with _catalogues_lock:
        found = _catalogues.get(key)
        if found is None:
            found = _catalogues[key] = _build(conn, key[0])
            for stale in list(_catalogues)[:-KEEP_CATALOGUES]:
                del _catalogues[stale]
    return found


def _build(conn: Connection, version: int) -> Catalogue:
    snapshot = load_snapshot(conn, version)
    by_varenr: dict[str, list[Package]] = {}
    for package in snapshot.packages:
        by_varenr.setdefault(package.varenr, []).append(package)
    return Catalogue(
        version=version,
        knowledge=Knowledge.build(snapshot),
        packages_by_varenr={k: tuple(v) for k, v in by_varenr.items()},
        substitution_groups=snapshot.substitution_groups,
        product_validity={p.id: p.prescription_validity for p in snapshot.products},
    )


def catalogue_at(conn: Connection, version: int) -> Catalogue | None:
    """Catalogue version ``version`` (in force or older), built once; ``None`` when no such
    version was imported."""
    from sqlalchemy import select

    from fest.schema import fest_version

    row = conn.execute(
        select(fest_version.c.id, fest_version.c.sha256).where(fest_version.c.id == version)
    ).first()
    if row is None:
        return None
    return catalogue_of(conn, (int(row.id), str(row.sha256)))
