"""Decision-support knowledge built from one catalogue version, and drug resolution.

``Knowledge.build`` turns a ``CatalogueSnapshot`` into graphs and indexes so that a check is a
series of dictionary lookups:

- the ATC hierarchy (``atc_tree``, a networkx DiGraph from group codes to their children): every
  code the catalogue uses plus, when the catalogue carries it, FEST's whole ATC code system
  (Kodeverk 7180), so any valid code resolves and every level has its name;
- substance parentage (``substance_graph``, DiGraph from a moiety to its salts/esters);
- the interaction groups (``interaction_graph``, bipartite: each match key — an ATC code or a
  substance id — linked to the interaction sides that name it);
- products, packages, generic groups, dose units and substitution groups by id, varenr and ATC;
- not-assessed ATC codes, safety notices spread to what they cover, and the dose-limit rules.

Matching decisions (../shared/docs/fest-format.md §9 item 5):

- A drug matches through its own ATC code and every component's ``AtcKombipreparat``, and
  through its substances; an interaction on codeine therefore hits paracetamol/codeine.
- Substance references match in both directions of the moiety ↔ salt link: a drug matches a
  group naming its substance, a parent (moiety) of it, or a salt of it.
- ``InteraksjonIkkeVurdert`` codes shorter than level 5 cover every code below them, like group
  codes: "not assessed" must never be read as "safe", so we notify rather than stay silent.
- Notices are active while they are in the catalogue version (FEST has no end date; expiry is
  absence). Notices on reimbursement groups (Klasse 4) are not linked to drugs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from interactions import atc
from interactions.alerts import Source
from interactions.catalogue import (
    CatalogueInfo,
    CatalogueSnapshot,
    Interaction,
    NotAssessed,
    Notice,
    Product,
    Strength,
    SubstitutionGroup,
)
from interactions.dose_rules import DoseRule, DoseRuleSet, load_dose_rules
from interactions.drugs import (
    AmbiguousReference,
    ReferenceKind,
    ResolvedDrug,
    ResolvedStrength,
    UnknownReference,
)
from interactions.graphs import (
    build_atc_tree,
    build_interaction_graph,
    build_substance_graph,
    substance_relations,
)

_T = TypeVar("_T", bound=Hashable)

Side = tuple[int, int]
"""One side of an interaction: (index into ``Knowledge.interactions``, index of its group)."""

DuplicateKey = tuple[Literal["atc", "moiety", "substitution-group", "atc-level4"], str]

PROFILE_CACHE_SIZE = 50_000
PROFILES_BY_IDENTITY = 8_192
"""Drug objects whose profile is found by identity (each kept alive by the memo until it is
emptied when full; a drug loaded again is another object)."""
NOTICE_ON_PRODUCT = "1"
NOTICE_ON_PACKAGE = "2"
NOTICE_ON_GENERIC_GROUP = "3"


@dataclass(frozen=True, slots=True)
class DrugProfile:
    """Everything one drug matches; computed once per drug (``Knowledge.profile`` memoises).

    ``sides`` are the interaction sides the drug hits; ``duplicate_keys`` what another drug must
    share with it to be duplicate therapy (tagged ATC level-5 and level-4 codes, moieties,
    substitution groups); ``not_assessed`` pairs each not-assessed entry with the drug's code it
    covers.
    """

    atc_codes: tuple[str, ...]
    substance_keys: frozenset[str]
    sides: frozenset[Side]
    duplicate_keys: frozenset[DuplicateKey]
    not_assessed: tuple[tuple[NotAssessed, str], ...]
    notices: tuple[Notice, ...]


@dataclass(frozen=True, slots=True)
class _CodeMatch:
    """What a drug with one ATC code matches."""

    sides: frozenset[Side]
    not_assessed: tuple[NotAssessed, ...]


class Knowledge:
    """Decision-support knowledge of one catalogue version; build it with ``Knowledge.build``."""

    def __init__(self, snapshot: CatalogueSnapshot, dose_rules: DoseRuleSet) -> None:
        self.info: CatalogueInfo = snapshot.info
        self.interactions: tuple[Interaction, ...] = snapshot.interactions
        self.dose_rules = dose_rules
        self._dose_rules_by_atc = dose_rules.by_atc()

        self._substances = {s.id: s for s in snapshot.substances}
        self._strengths = {s.id: s for s in snapshot.strengths}
        self._products = {p.id: p for p in snapshot.products}
        self._packages = {p.id: p for p in snapshot.packages}
        self._generic_groups = {g.id: g for g in snapshot.generic_groups}
        self._dose_units = {d.id: d for d in snapshot.dose_units}
        self.substitution_groups: dict[str, SubstitutionGroup] = {
            g.id: g for g in snapshot.substitution_groups
        }
        self._kind_by_id: dict[str, ReferenceKind] = {
            **dict.fromkeys(self._substances, ReferenceKind.SUBSTANCE),
            **dict.fromkeys(self._dose_units, ReferenceKind.DOSE_UNIT),
            **dict.fromkeys(self._generic_groups, ReferenceKind.GENERIC_GROUP),
            **dict.fromkeys(self._products, ReferenceKind.PRODUCT),
            **dict.fromkeys(self._packages, ReferenceKind.PACKAGE),
        }

        self._packages_by_varenr = _ids_by(snapshot.packages, lambda p: (p.varenr.strip(),))
        self._packages_by_product = _ids_by(snapshot.packages, lambda p: p.product_ids)
        self._dose_units_by_product = _ids_by(snapshot.dose_units, lambda d: (d.product_id,))
        self._generic_groups_by_member = _ids_by(
            snapshot.generic_groups, lambda g: (*g.product_ids, *g.package_ids)
        )

        self.atc_tree = build_atc_tree(snapshot)
        self.substance_graph = build_substance_graph(snapshot.substances)
        self._relations = substance_relations(self.substance_graph)
        self._atc_by_substance, self._substances_by_atc = self._index_substance_codes(snapshot)

        self.interaction_graph = build_interaction_graph(snapshot.interactions)
        self._sides_by_key: dict[str, frozenset[Side]] = {
            key: frozenset(self.interaction_graph.adj[key])
            for key in self.interaction_graph
            if isinstance(key, str)
        }
        self.partner_sides: dict[Side, tuple[Side, ...]] = {
            # For each interaction side, the other groups of the same interaction.
            (index, group): tuple(
                (index, other) for other in range(len(interaction.groups)) if other != group
            )
            for index, interaction in enumerate(self.interactions)
            for group in range(len(interaction.groups))
        }
        self.no_action_sides = frozenset(
            side for side in self.partner_sides if self.interactions[side[0]].relevance == 3
        )
        self._not_assessed_by_atc = _index_not_assessed(snapshot.not_assessed)
        # What each catalogue ATC code and substance matches, so a profile is a few set unions.
        self._code_matches = {code: self._match_code(code) for code in self.atc_tree}
        self._substance_sides = {
            substance: frozenset().union(
                *(self._sides_by_key.get(key, ()) for key in self._relations.related[substance])
            )
            for substance in self.substance_graph
        }
        self._notices_by_target = self._index_notices(snapshot.notices)
        self._profiles: dict[ResolvedDrug, DrugProfile] = {}
        self._profiles_by_identity: dict[int, tuple[ResolvedDrug, DrugProfile]] = {}
        self._sources: dict[tuple[str | None, str | None], Source] = {}
        # A reference always names the same drug in one catalogue version: remembered, and
        # bounded by the catalogue's own size.
        self._resolved: dict[tuple[str, str], ResolvedDrug] = {}

    @classmethod
    def build(
        cls,
        snapshot: CatalogueSnapshot,
        dose_rules: DoseRuleSet | None = None,
        *,
        precompute: bool = True,
    ) -> Knowledge:
        """Knowledge of ``snapshot``, with the shipped dose-limit rules unless others are given.

        With ``precompute`` every package is resolved and matched at build time, so that a
        check of a list of packages is lookups only, also the first time a package is seen.
        """
        knowledge = cls(snapshot, dose_rules if dose_rules is not None else load_dose_rules())
        if precompute:
            knowledge.precompute_packages()
        return knowledge

    def precompute_packages(self) -> None:
        """Resolve and profile every package, by FEST id and by its (unshared) varenr."""
        for package_id in self._packages:
            self.profile(self.resolve(fest_id=package_id))
        for varenr, package_ids in self._packages_by_varenr.items():
            if len(package_ids) == 1:
                self._resolved[("varenr", varenr)] = self._resolved[("fest_id", package_ids[0])]

    @property
    def version(self) -> int:
        return self.info.version

    @property
    def hentet_dato(self) -> str:
        return self.info.hentet_dato

    # -- resolution -------------------------------------------------------------------------

    def resolve(
        self, *, varenr: str | None = None, atc: str | None = None, fest_id: str | None = None
    ) -> ResolvedDrug:
        """The drug named by exactly one of a varenr, an ATC code or a FEST id.

        ``fest_id`` may name a package, product (Merkevare), generic group (LegemiddelVirkestoff),
        dose unit (Legemiddeldose) or substance (Virkestoff); ``atc`` any code the catalogue
        uses or its ATC code system (Kodeverk 7180) lists, at any level. Raises
        ``UnknownReference`` when the reference is not in this catalogue version, and its
        subclass ``AmbiguousReference`` for a varenr shared by several packages.
        """
        given = {
            name: value
            for name, value in (("varenr", varenr), ("atc", atc), ("fest_id", fest_id))
            if value is not None
        }
        if len(given) != 1:
            raise TypeError(
                f"resolve takes exactly one of varenr, atc, fest_id; got {sorted(given)}"
            )
        ((kind, value),) = given.items()
        drug = self._resolved.get((kind, value))
        if drug is None:
            resolver = {
                "varenr": self._resolve_varenr,
                "atc": self._resolve_atc,
                "fest_id": self._resolve_fest_id,
            }[kind]
            drug = self._resolved[(kind, value)] = resolver(value)
        return drug

    def atc_name(self, code: str) -> str | None:
        """The name FEST gives ``code`` (code system term, else an interaction's), or ``None``."""
        normalised = atc.normalise(code)
        if normalised is None or normalised not in self.atc_tree:
            return None
        return self.atc_tree.nodes[normalised].get("name")

    def atc_levels(self, code: str) -> tuple[tuple[str, str | None], ...]:
        """``code`` and the groups above it, level 1 first, each with its name (``None`` where
        FEST names none); raises ``UnknownReference`` for a code neither used nor listed."""
        normalised = atc.normalise(code)
        if normalised is None or normalised not in self.atc_tree:
            raise UnknownReference("ATC code", code)
        return tuple(
            (c, self.atc_tree.nodes[c].get("name"))
            for c in reversed(atc.covering(normalised))
            if c in self.atc_tree
        )

    def _resolve_varenr(self, varenr: str) -> ResolvedDrug:
        packages = self._packages_by_varenr.get(varenr.strip(), ())
        if not packages:
            raise UnknownReference("varenr", varenr)
        if len(packages) > 1:
            raise AmbiguousReference("varenr", varenr, packages)
        return self._package_drug(packages[0])

    def _resolve_atc(self, code: str) -> ResolvedDrug:
        normalised = atc.normalise(code)
        if normalised is None or normalised not in self.atc_tree:
            raise UnknownReference("ATC code", code)
        substances = self._substances_by_atc.get(normalised, ())
        return ResolvedDrug(
            reference_kind=ReferenceKind.ATC,
            reference_id=normalised,
            name=self.atc_tree.nodes[normalised].get("name") or normalised,
            atc=normalised,
            atc_codes=(normalised,),
            substance_ids=substances,
            parent_substance_ids=self._parents(substances),
        )

    def _resolve_fest_id(self, fest_id: str) -> ResolvedDrug:
        kind = self._kind_by_id.get(fest_id)
        if kind is None:
            raise UnknownReference("FEST id", fest_id)
        resolvers = {
            ReferenceKind.PACKAGE: self._package_drug,
            ReferenceKind.PRODUCT: self._product_drug,
            ReferenceKind.GENERIC_GROUP: self._generic_group_drug,
            ReferenceKind.DOSE_UNIT: self._dose_unit_drug,
            ReferenceKind.SUBSTANCE: self._substance_drug,
        }
        return resolvers[kind](fest_id)

    def _package_drug(self, package_id: str) -> ResolvedDrug:
        package = self._packages[package_id]
        return self._drug(
            ReferenceKind.PACKAGE,
            package.id,
            name=package.name,
            atc_code=package.atc,
            products=self._products_of(package.product_ids),
            package_ids=(package.id,),
            prescription_group=package.prescription_group,
        )

    def _product_drug(self, product_id: str) -> ResolvedDrug:
        product = self._products[product_id]
        return self._drug(
            ReferenceKind.PRODUCT,
            product.id,
            name=product.name,
            atc_code=product.atc,
            products=(product,),
            package_ids=self._packages_by_product.get(product.id, ()),
            prescription_group=product.prescription_group,
        )

    def _generic_group_drug(self, group_id: str) -> ResolvedDrug:
        group = self._generic_groups[group_id]
        products = self._products_of(group.product_ids)
        package_ids = group.package_ids or tuple(
            _unique(
                p for product in products for p in self._packages_by_product.get(product.id, ())
            )
        )
        strengths = tuple(self._strengths[s] for s in group.strength_ids if s in self._strengths)
        return self._drug(
            ReferenceKind.GENERIC_GROUP,
            group.id,
            name=group.name,
            atc_code=group.atc,
            products=products,
            package_ids=package_ids,
            prescription_group=_single({p.prescription_group for p in products}),
            strengths=((group.atc, strengths),),
            substance_ids=group.substance_ids,
        )

    def _dose_unit_drug(self, dose_unit_id: str) -> ResolvedDrug:
        unit = self._dose_units[dose_unit_id]
        product = self._products.get(unit.product_id)
        if product is None:
            raise UnknownReference("dose unit", unit.id, "names a product not in the catalogue")
        return self._drug(
            ReferenceKind.DOSE_UNIT,
            unit.id,
            name=product.name,
            atc_code=product.atc,
            products=(product,),
            package_ids=unit.package_ids,
            prescription_group=product.prescription_group,
        )

    def _substance_drug(self, substance_id: str) -> ResolvedDrug:
        substance = self._substances[substance_id]
        return ResolvedDrug(
            reference_kind=ReferenceKind.SUBSTANCE,
            reference_id=substance.id,
            name=substance.name,
            atc_codes=self._atc_by_substance.get(substance.id, ()),
            substance_ids=(substance.id,),
            parent_substance_ids=self._parents((substance.id,)),
        )

    def _products_of(self, product_ids: tuple[str, ...]) -> tuple[Product, ...]:
        return tuple(self._products[p] for p in product_ids if p in self._products)

    def _drug(
        self,
        kind: ReferenceKind,
        reference_id: str,
        *,
        name: str,
        atc_code: str | None,
        products: tuple[Product, ...],
        package_ids: tuple[str, ...],
        prescription_group: str | None,
        strengths: tuple[tuple[str | None, tuple[Strength, ...]], ...] | None = None,
        substance_ids: tuple[str, ...] = (),
    ) -> ResolvedDrug:
        """A drug made of ``products`` (the only product's ATC code stands in for a missing one);
        ``strengths`` overrides the products' strengths as (ATC of the set, strengths) pairs."""
        code = atc.normalise(atc_code)
        if code is None and len(products) == 1:
            code = atc.normalise(products[0].atc)
        if strengths is None:
            strengths = tuple(
                (p.atc, tuple(self._strengths[s] for s in p.strength_ids if s in self._strengths))
                for p in products
            )
        resolved = tuple(
            self._resolved_strength(strength, set_atc, single=len(members) == 1)
            for set_atc, members in strengths
            for strength in members
        )
        substances = tuple(
            _unique(
                [
                    *(s.substance_id for s in resolved),
                    *substance_ids,
                    *(s for p in products for s in p.substance_ids),
                ]
            )
        )
        packages = tuple(self._packages[p] for p in package_ids if p in self._packages)
        member_ids = (*(p.id for p in products), *package_ids)
        return ResolvedDrug(
            reference_kind=kind,
            reference_id=reference_id,
            name=name,
            atc=code,
            atc_codes=tuple(_unique(c for c in (code, *(s.atc for s in resolved)) if c)),
            substance_ids=substances,
            parent_substance_ids=self._parents(substances),
            strengths=resolved,
            product_ids=tuple(p.id for p in products),
            package_ids=package_ids,
            generic_group_ids=tuple(
                _unique(g for m in member_ids for g in self._generic_groups_by_member.get(m, ()))
            ),
            substitution_group_ids=tuple(
                _unique(p.substitution_group_id for p in packages if p.substitution_group_id)
            ),
            form_code=_single({p.form_code for p in products}),
            form_name=_single({p.form_name for p in products}),
            route_codes=tuple(_unique(r for p in products for r in p.route_codes)),
            dose_unit_codes=tuple(_unique(u for p in products for u in p.dose_unit_codes)),
            prescription_group=prescription_group,
        )

    def _resolved_strength(
        self, strength: Strength, set_atc: str | None, *, single: bool
    ) -> ResolvedStrength:
        substance = self._substances.get(strength.substance_id)
        component_atc = atc.normalise(strength.combination_atc)
        if component_atc is None and single:
            component_atc = atc.normalise(set_atc)
        return ResolvedStrength(
            strength_id=strength.id,
            substance_id=strength.substance_id,
            substance_name=substance.name if substance else None,
            atc=component_atc,
            value=strength.value,
            unit=strength.unit,
            denominator_value=strength.denominator_value,
            denominator_unit=strength.denominator_unit,
            operator=strength.operator,
            upper_value=strength.upper_value,
        )

    def _parents(self, substance_ids: Iterable[str]) -> tuple[str, ...]:
        own = set(substance_ids)
        above = {parent for s in own for parent in self._relations.parents.get(s, ())}
        return tuple(sorted(above - own))

    # -- matching ---------------------------------------------------------------------------

    def source(self, *, fest_id: str | None = None, rule_id: str | None = None) -> Source:
        """The provenance of an alert made with this knowledge from a FEST record or a rule:
        one frozen ``Source`` per record, kept (every alert names one)."""
        found = self._sources.get((fest_id, rule_id))
        if found is None:
            found = Source(
                catalogue_version=self.info.version,
                hentet_dato=self.info.hentet_dato,
                fest_id=fest_id,
                rule_id=rule_id,
            )
            if len(self._sources) < PROFILE_CACHE_SIZE:
                self._sources[(fest_id, rule_id)] = found
        return found

    def profile(self, drug: ResolvedDrug) -> DrugProfile:
        """What ``drug`` matches: interaction sides, not-assessed codes, notices, duplicate keys.

        Memoised per drug, so a list checked again costs lookups only: first by the drug
        object itself (a patient's entries keep their drug objects from command to command, and
        a lookup by value hashes and compares every field of the drug, its strengths too), then
        by its value.
        """
        known = self._profiles_by_identity.get(id(drug))
        if known is not None and known[0] is drug:
            return known[1]
        found = self._profiles.get(drug)
        if found is None:
            if len(self._profiles) >= PROFILE_CACHE_SIZE:
                self._profiles.clear()
            found = self._profiles[drug] = self._profile(drug)
        if len(self._profiles_by_identity) >= PROFILES_BY_IDENTITY:
            self._profiles_by_identity.clear()
        # The drug is kept beside its id, so the id cannot name another object meanwhile.
        self._profiles_by_identity[id(drug)] = (drug, found)
        return found

    def _profile(self, drug: ResolvedDrug) -> DrugProfile:
        codes = tuple(_unique(c for c in map(atc.normalise, drug.atc_codes) if c))
        code_matches = [self._code_matches.get(code) or self._match_code(code) for code in codes]
        substance_keys: set[str] = set()
        moieties: set[str] = set()
        for substance in drug.substance_ids:
            substance_keys |= self._relations.related.get(substance, {substance})
            moieties |= self._relations.moieties.get(substance, {substance})
        not_assessed: dict[NotAssessed, str] = {}
        for code, match in zip(codes, code_matches, strict=True):
            for entry in match.not_assessed:
                not_assessed.setdefault(entry, code)
        return DrugProfile(
            atc_codes=codes,
            substance_keys=frozenset(substance_keys),
            duplicate_keys=frozenset(
                {
                    *(("atc", c) for c in codes if atc.is_substance_code(c)),
                    *(("moiety", moiety) for moiety in moieties),
                    *(("substitution-group", g) for g in drug.substitution_group_ids),
                    *(("atc-level4", c4) for c in codes if (c4 := atc.level4(c))),
                }
            ),
            sides=frozenset().union(
                *(match.sides for match in code_matches),
                *(
                    self._substance_sides.get(s) or self._sides_by_key.get(s, frozenset())
                    for s in drug.substance_ids
                ),
            ),
            not_assessed=tuple(not_assessed.items()),
            notices=self._notices_by_target.get(drug.reference_id, ()),
        )

    def matched_via(self, profile: DrugProfile, side: Side) -> str:
        """The key (ATC code, else substance id) through which ``profile`` hits ``side``."""
        keys = (
            *(key for code in profile.atc_codes for key in atc.covering(code)),
            *sorted(profile.substance_keys),
        )
        return next(key for key in keys if side in self._sides_by_key.get(key, ()))

    def _match_code(self, code: str) -> _CodeMatch:
        covering = atc.covering(code)
        return _CodeMatch(
            sides=frozenset().union(*(self._sides_by_key.get(key, ()) for key in covering)),
            not_assessed=tuple(
                _unique(e for key in covering for e in self._not_assessed_by_atc.get(key, ()))
            ),
        )

    def dose_rules_for(self, code: str) -> tuple[DoseRule, ...]:
        return self._dose_rules_by_atc.get(code, ())

    # -- build helpers needing several indexes ----------------------------------------------

    def _index_substance_codes(
        self, snapshot: CatalogueSnapshot
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
        """ATC codes each substance is sold under, and the substances of each product ATC code."""
        atc_by_substance: defaultdict[str, set[str]] = defaultdict(set)
        substances_by_atc: defaultdict[str, set[str]] = defaultdict(set)
        for product in snapshot.products:
            strengths = [self._strengths[s] for s in product.strength_ids if s in self._strengths]
            substance_ids = {s.substance_id for s in strengths} | set(product.substance_ids)
            code = atc.normalise(product.atc)
            if code is not None:
                substances_by_atc[code] |= substance_ids
                if len(substance_ids) == 1:
                    atc_by_substance[next(iter(substance_ids))].add(code)
            for strength in strengths:
                component = atc.normalise(strength.combination_atc)
                if component is not None:
                    atc_by_substance[strength.substance_id].add(component)
                    substances_by_atc[component].add(strength.substance_id)
        for substance, codes in list(atc_by_substance.items()):
            for moiety in self._relations.moieties.get(substance, ()):
                atc_by_substance[moiety] |= codes
        return (
            {s: tuple(sorted(codes)) for s, codes in atc_by_substance.items()},
            {code: tuple(sorted(s)) for code, s in substances_by_atc.items()},
        )

    def _index_notices(self, notices: tuple[Notice, ...]) -> dict[str, tuple[Notice, ...]]:
        """Notices by every id they cover: a generic group's notice covers its products and
        packages, a product's notice its packages and dose units."""
        by_target: defaultdict[str, list[Notice]] = defaultdict(list)
        for notice in notices:
            targets: set[str] = set()
            for klasse, ref in notice.references:
                if klasse == NOTICE_ON_PACKAGE:
                    targets.add(ref)
                elif klasse == NOTICE_ON_PRODUCT:
                    targets |= {ref, *self._product_members(ref)}
                elif klasse == NOTICE_ON_GENERIC_GROUP and ref in self._generic_groups:
                    group = self._generic_groups[ref]
                    targets |= {ref, *group.package_ids}
                    for product in group.product_ids:
                        targets |= {product, *self._product_members(product)}
            for target in targets:
                by_target[target].append(notice)
        return {target: tuple(found) for target, found in by_target.items()}

    def _product_members(self, product_id: str) -> tuple[str, ...]:
        return (
            *self._packages_by_product.get(product_id, ()),
            *self._dose_units_by_product.get(product_id, ()),
        )


def _index_not_assessed(entries: tuple[NotAssessed, ...]) -> dict[str, tuple[NotAssessed, ...]]:
    by_code: defaultdict[str, list[NotAssessed]] = defaultdict(list)
    for entry in entries:
        code = atc.normalise(entry.atc)
        if code is not None:
            by_code[code].append(entry)
    return {code: tuple(found) for code, found in by_code.items()}


class _Record(Protocol):
    @property
    def id(self) -> str: ...


_R = TypeVar("_R", bound=_Record)


def _ids_by(
    records: Iterable[_R], keys_of: Callable[[_R], Iterable[str]]
) -> dict[str, tuple[str, ...]]:
    """The ids of ``records`` under each key a record names."""
    grouped: defaultdict[str, list[str]] = defaultdict(list)
    for record in records:
        for key in keys_of(record):
            grouped[key].append(record.id)
    return {key: tuple(ids) for key, ids in grouped.items()}


def _unique(items: Iterable[_T]) -> list[_T]:
    """``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


def _single(values: set[str | None]) -> str | None:
    """The value when all agree, else ``None``."""
    return next(iter(values)) if len(values) == 1 else None
