"""The catalogue handle (``medloop.loop.catalogue``): the EAN/GTIN index belongs to the
catalogue object, is built once and lazily, and can never be another version's."""

from __future__ import annotations

import threading

import pytest

from interactions.catalogue import Package
from medloop.loop.catalogue import Catalogue, DrugOrder
from medloop.loop.errors import UnknownDrug
from tests.interactions.helpers import knowledge


def _package(varenr: str, ean: str) -> Package:
    return Package(
        id=f"ID_{varenr}",
        varenr=varenr,
        eans=(ean,),
        name=f"pack {varenr}",
        atc=None,
        product_ids=(),
        substitution_group_id=None,
        substitution_valid_from=None,
        substitution_valid_to=None,
        prescription_group=None,
    )


def _catalogue(version: int, *packages: Package) -> Catalogue:
    return _made(version, {p.varenr: (p,) for p in packages})


def _made(version: int, by_varenr: dict[str, tuple[Package, ...]]) -> Catalogue:
    return Catalogue(
        version=version,
        knowledge=None,  # type: ignore[arg-type]  (the index needs only the packages)
        packages_by_varenr=by_varenr,
        substitution_groups=(),
        product_validity={},
    )


def test_a_new_catalogue_at_a_freed_catalogues_address_gets_its_own_gtin_index():
    # CPython hands a freed object's memory to the next objects of its size: index a catalogue,
    # free it, make new ones until one lands at its address (the case an index keyed by id()
    # gets wrong: the new catalogue would read the freed one's packages). Repeated, so the
    # reuse happens whatever else the interpreter allocates in between.
    old_ean, new_ean = "7040000000011", "7040000000028"
    older = {"100001": (_package("100001", old_ean),)}
    newer = {"200002": (_package("200002", new_ean),)}
    reused = 0
    for _ in range(200):
        old = _made(1, older)
        old_index = set(old.packages_by_gtin)
        old_id = id(old)
        del old
        batch = [_made(2, newer) for _ in range(20)]
        for catalogue in batch:
            if id(catalogue) == old_id:
                reused += 1
                new_index = set(catalogue.packages_by_gtin)
                assert (old_index, new_index) == ({old_ean}, {new_ean})
    assert reused, "CPython reused no freed catalogue's address"


def test_the_gtin_index_is_built_once_even_when_charting_threads_ask_at_once():
    catalogue = _catalogue(
        3, _package("300003", "7040000000035"), _package("300004", "7040000000042")
    )
    seen: list[object] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        seen.append(catalogue.packages_by_gtin)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(index) for index in seen}) == 1
    assert seen[0] is catalogue.packages_by_gtin
    assert set(seen[0]) == {"7040000000035", "7040000000042"}


# -- a drug resolved once per catalogue version (issue #20) -------------------------------------


def _resolving(version: int) -> Catalogue:
    return Catalogue(
        version=version,
        knowledge=knowledge(),
        packages_by_varenr={},
        substitution_groups=(),
        product_validity={},
    )


def test_a_drug_is_resolved_once_per_order_and_equals_a_fresh_resolution():
    catalogue = _resolving(3)
    by_varenr, by_id = DrugOrder(varenr="100001"), DrugOrder(fest_id="PK_MAREVAN")
    first = catalogue.resolve(by_varenr)
    assert catalogue.resolve(DrugOrder(varenr="100001")) is first
    assert first == catalogue._resolve(by_varenr)
    assert first.catalogue_version == 3 and first.varenr == "100001"
    # Another way of naming the same package is its own order (its varenr is not given).
    assert catalogue.resolve(by_id) == catalogue._resolve(by_id)
    assert catalogue.resolve(by_id).varenr is None
    # Each version resolves for itself: the drug carries its version.
    assert _resolving(4).resolve(by_varenr).catalogue_version == 4


def test_an_order_the_catalogue_cannot_resolve_is_refused_every_time_and_not_kept():
    catalogue = _resolving(1)
    for _ in range(2):
        with pytest.raises(UnknownDrug):
            catalogue.resolve(DrugOrder(varenr="999999"))
    assert catalogue._drugs == {}
