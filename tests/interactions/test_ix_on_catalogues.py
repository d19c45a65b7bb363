"""The decision-support matching rules on imported catalogues: the demo catalogue and the real 2017
extract, each imported into SQLite and PostgreSQL and read back with ``load_snapshot``.

The rules themselves are unit-tested on a hand-built catalogue in ``tests/interactions``; here
they must hold on what the importer and the snapshot adapter actually produce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from fest.loader import import_catalogue
from interactions import Alert, CatalogueSnapshot, Kind, Knowledge, Medication, Severity, check
from interactions import atc as atc_codes
from interactions.alerts import (
    DuplicateDetail,
    InteractionDetail,
    NotAssessedDetail,
    NoticeDetail,
)
from interactions.catalogue import InteractionGroup, Package
from medloop.catalogue import load_snapshot
from tests.reference import DEMO, real_extract

PAIRWISE = (Kind.INTERACTION, Kind.DUPLICATE)
NOTICE_ON_PRODUCT, NOTICE_ON_PACKAGE = "1", "2"

# Demo varenr and FEST ids, from seeds/README.md.
WARFARIN, IBUPROFEN, NAPROKSEN, DIKLOFENAK = "090232", "090181", "090198", "090215"
SERTRALIN, JOHANNESURT, LAKTULOSE = "090623", "091184", "090912"
PARACETAMOL_KODEIN, TERBINAFIN = "090113", "091082"
PARACETAMOL_STIKKPILLE = "090079"
IX_WARFARIN_NSAID = "ID_8E3FBCCA-3FA2-5E7F-B4E3-51F1D94F5A4B"
IX_PERIKUM_SSRI = "ID_7482E1A2-A90D-55A9-AD0F-37AC9399FC03"
IX_KODEIN_TERBINAFIN = "ID_0EED2184-5BF0-5591-BE43-87D23EFBF217"
PERIKUM = "ID_19500788-D5C0-548F-8EE2-A4A22D59797F"

CATALOGUES: dict[str, Callable[[], Path]] = {"demo": lambda: DEMO, "real": real_extract}


@dataclass(frozen=True)
class Loaded:
    """One imported catalogue version, as snapshot and as decision-support knowledge."""

    snapshot: CatalogueSnapshot
    knowledge: Knowledge

    def entry(self, package: Package) -> Medication:
        """A list entry for ``package``, with its varenr as entry id."""
        return Medication(package.varenr, self.knowledge.resolve(fest_id=package.id))

    def entries(self, varenrs: Iterable[str]) -> list[Medication]:
        return [Medication(v, self.knowledge.resolve(varenr=v)) for v in varenrs]

    def check(self, medications: list[Medication]) -> list[Alert]:
        return check(self.knowledge, medications, include_all=True)

    def packages_coded(self, codes: set[str]) -> list[Package]:
        """Packages whose own ATC code is one of ``codes``."""
        return [p for p in self.snapshot.packages if atc_codes.normalise(p.atc) in codes]

    def packages_under(self, codes: Iterable[str]) -> list[Package]:
        """Packages whose own ATC code one of ``codes`` covers (group codes cover below them)."""
        wanted = [c for c in map(atc_codes.normalise, codes) if c]
        return [
            p
            for p in self.snapshot.packages
            if (own := atc_codes.normalise(p.atc)) and any(atc_codes.covers(c, own) for c in wanted)
        ]


def load(engine: Engine, path: Path) -> Loaded:
    import_catalogue(engine, path)
    with engine.connect() as conn:
        snapshot = load_snapshot(conn)
    return Loaded(snapshot, Knowledge.build(snapshot))


@pytest.fixture(params=sorted(CATALOGUES))
def catalogue(request: pytest.FixtureRequest, engine: Engine) -> Loaded:
    """Each test using this runs on the demo catalogue and on the real extract."""
    return load(engine, CATALOGUES[request.param]())


@pytest.fixture
def demo(engine: Engine) -> Loaded:
    return load(engine, DEMO)


def group_codes(group: InteractionGroup) -> set[str]:
    return {c for m in group.members if (c := atc_codes.normalise(m.atc))}


def level5_codes(group: InteractionGroup) -> set[str]:
    return {c for c in group_codes(group) if atc_codes.is_substance_code(c)}


def interactions_of(alerts: list[Alert]) -> dict[tuple[str, ...], set[str]]:
    """Interaction record ids by the pair of entries they were raised on."""
    found: dict[tuple[str, ...], set[str]] = {}
    for alert in alerts:
        if isinstance(alert.detail, InteractionDetail):
            found.setdefault(alert.medications, set()).add(alert.detail.interaction_id)
    return found


def a_pair(first: list[Package], second: list[Package]) -> tuple[Package, Package] | None:
    """Two different packages, one from each list, if there are any."""
    return next(((a, b) for a in first for b in second if a.id != b.id), None)


def test_every_interaction_whose_level5_codes_are_on_packages_fires_for_such_a_pair(
    catalogue: Loaded,
) -> None:
    tested = 0
    for interaction in catalogue.snapshot.interactions:
        first, second = (catalogue.packages_coded(level5_codes(g)) for g in interaction.groups)
        pair = a_pair(first, second)
        if pair is None:
            continue
        a, b = pair
        found = interactions_of(catalogue.check([catalogue.entry(a), catalogue.entry(b)]))
        assert interaction.id in found.get(tuple(sorted((a.varenr, b.varenr))), set()), (
            f"{interaction.id} did not fire for {a.name} ({a.atc}) + {b.name} ({b.atc})"
        )
        tested += 1
    assert tested > 0


def test_a_group_code_covers_every_package_below_it(catalogue: Loaded) -> None:
    tested = 0
    for interaction in catalogue.snapshot.interactions:
        for side, group in enumerate(interaction.groups):
            partners = catalogue.packages_under(group_codes(interaction.groups[1 - side]))
            for code in group_codes(group) - level5_codes(group):
                for package in catalogue.packages_under([code]):
                    partner = next((p for p in partners if p.id != package.id), None)
                    if partner is None:
                        continue
                    alerts = catalogue.check([catalogue.entry(package), catalogue.entry(partner)])
                    assert any(
                        isinstance(a.detail, InteractionDetail)
                        and a.detail.interaction_id == interaction.id
                        for a in alerts
                    ), f"{code} of {interaction.id} does not cover {package.name} ({package.atc})"
                    tested += 1
    assert tested > 0


def test_level4_group_code_alone_covers_level5_nsaids(demo: Loaded) -> None:
    for nsaid, via in ((IBUPROFEN, "M01AE"), (NAPROKSEN, "M01AE"), (DIKLOFENAK, "M01AB")):
        [alert] = [
            a
            for a in demo.check(demo.entries([WARFARIN, nsaid]))
            if isinstance(a.detail, InteractionDetail)
            and a.detail.interaction_id == IX_WARFARIN_NSAID
        ]
        assert alert.severity is Severity.AVOID and alert.requires_override
        assert {m.medication: m.via for m in alert.detail.matches}[nsaid] == via


def test_substance_id_only_group_matches_the_herbal_product_without_atc(demo: Loaded) -> None:
    herbal = demo.knowledge.resolve(varenr=JOHANNESURT)
    assert herbal.atc is None
    alerts = demo.check(demo.entries([JOHANNESURT, SERTRALIN]))
    [alert] = [
        a
        for a in alerts
        if isinstance(a.detail, InteractionDetail) and a.detail.interaction_id == IX_PERIKUM_SSRI
    ]
    assert alert.severity is Severity.AVOID
    herbal_match = next(m for m in alert.detail.matches if m.medication == JOHANNESURT)
    assert herbal_match.via == PERIKUM


def test_component_atc_of_a_combination_product_matches_an_interaction_group(
    demo: Loaded,
) -> None:
    [alert] = [
        a
        for a in demo.check(demo.entries([PARACETAMOL_KODEIN, TERBINAFIN]))
        if isinstance(a.detail, InteractionDetail)
        and a.detail.interaction_id == IX_KODEIN_TERBINAFIN
    ]
    assert {m.medication: m.via for m in alert.detail.matches}[PARACETAMOL_KODEIN] == "R05DA04"


def test_not_assessed_product_gets_a_not_assessed_notice(demo: Loaded) -> None:
    [alert] = [a for a in demo.check(demo.entries([LAKTULOSE])) if a.kind is Kind.NOT_ASSESSED]
    assert isinstance(alert.detail, NotAssessedDetail)
    assert alert.detail.atc == alert.detail.drug_atc == "A06AD11"
    assert alert.severity is Severity.INFO and alert.medications == (LAKTULOSE,)
    assessed = demo.check(demo.entries([WARFARIN]))
    assert not [a for a in assessed if a.kind is Kind.NOT_ASSESSED]


def test_two_packages_of_one_substitution_group_are_duplicate_therapy(catalogue: Loaded) -> None:
    by_group: dict[str, list[Package]] = {}
    for package in catalogue.snapshot.packages:
        if package.substitution_group_id:
            by_group.setdefault(package.substitution_group_id, []).append(package)
    tested = 0
    for group_id, packages in sorted(by_group.items()):
        if len(packages) < 2:
            continue
        first, second = packages[:2]
        [alert] = [
            a
            for a in catalogue.check([catalogue.entry(first), catalogue.entry(second)])
            if a.kind is Kind.DUPLICATE
        ]
        assert isinstance(alert.detail, DuplicateDetail)
        assert "same-substitution-group" in alert.detail.reasons
        assert alert.detail.substitution_group_ids == (group_id,)
        assert alert.severity is Severity.PRECAUTIONS
        tested += 1
    assert tested > 0


def noticed_packages(loaded: Loaded, references: tuple[tuple[str, str], ...]) -> list[Package]:
    """The catalogue packages a notice names directly (Klasse 2) or through a product
    (Klasse 1)."""
    return [
        p
        for p in loaded.snapshot.packages
        if (NOTICE_ON_PACKAGE, p.id) in references
        or any((NOTICE_ON_PRODUCT, product) in references for product in p.product_ids)
    ]


def test_safety_notice_is_shown_on_every_package_it_names(catalogue: Loaded) -> None:
    tested = 0
    for notice in catalogue.snapshot.notices:
        for package in noticed_packages(catalogue, notice.references):
            notices = [
                a.detail.notice_id
                for a in catalogue.check([catalogue.entry(package)])
                if isinstance(a.detail, NoticeDetail)
            ]
            assert notice.id in notices, f"notice {notice.id} missing on {package.name}"
            tested += 1
    assert tested > 0


def test_supply_failure_notice_is_shown_on_the_demo_suppository(demo: Loaded) -> None:
    [alert] = [
        a for a in demo.check(demo.entries([PARACETAMOL_STIKKPILLE])) if a.kind is Kind.NOTICE
    ]
    assert isinstance(alert.detail, NoticeDetail)
    assert alert.detail.type_code == "2" and alert.medications == (PARACETAMOL_STIKKPILLE,)


def test_an_entry_alone_never_pairs_with_itself(catalogue: Loaded) -> None:
    for package in catalogue.snapshot.packages:
        alerts = catalogue.check([catalogue.entry(package)])
        assert [a for a in alerts if a.kind in PAIRWISE] == [], package.name


def test_every_pairwise_alert_on_the_whole_catalogue_names_two_different_entries(
    catalogue: Loaded,
) -> None:
    alerts = catalogue.check([catalogue.entry(p) for p in catalogue.snapshot.packages])
    pairwise = [a for a in alerts if a.kind in PAIRWISE]
    assert pairwise
    assert all(len(set(a.medications)) == 2 for a in pairwise)
    keys = [a.key for a in alerts]
    assert len(keys) == len(set(keys)), "each finding is raised once"


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_result_is_independent_of_list_order(catalogue: Loaded, data: st.DataObject) -> None:
    any_package = st.sampled_from(catalogue.snapshot.packages)
    packages = data.draw(st.lists(any_package, unique_by=lambda p: p.id, max_size=12))
    entries = [catalogue.entry(p) for p in packages]
    reordered = list(entries)
    data.draw(st.randoms(use_true_random=False)).shuffle(reordered)
    assert catalogue.check(reordered) == catalogue.check(entries)
