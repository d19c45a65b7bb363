"""Reads one catalogue version from the FEST tables into the plain records of
:mod:`interactions.catalogue`, the input of decision support.

One query per table, joined to the entries in force for the version asked for, so the
whole snapshot costs a fixed handful of round trips whatever the catalogue size.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import Connection, Table, and_, or_, select

from fest import schema
from fest.queries import version_in_force
from interactions.catalogue import (
    AtcCode,
    CatalogueInfo,
    CatalogueSnapshot,
    DoseUnit,
    GenericGroup,
    Interaction,
    InteractionGroup,
    InteractionMember,
    NotAssessed,
    Notice,
    Package,
    Product,
    Strength,
    Substance,
    SubstitutionGroup,
)

ATC_CODE_SYSTEM = "2.16.578.1.12.4.1.1.7180"
"""The OID of FEST's ATC code system (Kodeverk 7180)."""


class NoCatalogue(LookupError):
    """No catalogue version has been imported (or the one asked for does not exist)."""


def _rows(conn: Connection, table: Table, live):
    """The rows of ``table`` whose entry is in force for the version ``live`` selects."""
    entry = schema.fest_entry
    return conn.execute(select(table).join(entry, entry.c.id == table.c.entry).where(live))


def _in_force(version: int):
    entry = schema.fest_entry
    return and_(
        entry.c.valid_from <= version,
        or_(entry.c.valid_to.is_(None), entry.c.valid_to > version),
    )


def _codes(items: list[dict] | None) -> tuple[str, ...]:
    return tuple(i["code"] for i in items or () if i.get("code"))


def load_snapshot(conn: Connection, version: int | None = None) -> CatalogueSnapshot:
    """The catalogue as it stood in ``version`` (default: the version in force)."""
    info = _info(conn, version)
    entry = schema.fest_entry
    live = _in_force(info.version)

    refs: dict[int, dict[str, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    ref = schema.fest_ref
    for pk, field, position, target in conn.execute(
        select(ref.c.entry, ref.c.field, ref.c.position, ref.c.target_id)
        .join(entry, entry.c.id == ref.c.entry)
        .where(live)
    ):
        refs[pk][field].append((position, target))

    def targets(pk: int, field: str) -> tuple[str, ...]:
        return tuple(t for _, t in sorted(refs[pk].get(field, ())))

    substances = tuple(
        Substance(
            id=r.domain_id,
            name=r.name,
            english_name=r.english_name,
            salt_ids=targets(r.entry, "RefVirkestoff"),
        )
        for r in _rows(conn, schema.fest_substance, live)
    )
    strengths = tuple(
        Strength(
            id=r.domain_id,
            substance_id=r.substance_id,
            value=r.value,
            unit=r.unit or "",
            denominator_value=r.denominator_value,
            denominator_unit=r.denominator_unit,
            operator=r.operator,
            upper_value=r.upper_value,
            combination_atc=r.combination_atc,
        )
        for r in _rows(conn, schema.fest_strength, live)
    )

    products, packages, groups, doses = [], [], [], []
    eans: dict[int, list[str]] = defaultdict(list)
    ean = schema.fest_package_ean
    for pk, code in conn.execute(
        select(ean.c.entry, ean.c.ean).join(entry, entry.c.id == ean.c.entry).where(live)
    ):
        eans[pk].append(code)
    package_products: dict[int, list[tuple[int, str]]] = defaultdict(list)
    info_t = schema.fest_package_info
    for pk, position, product_id in conn.execute(
        select(info_t.c.entry, info_t.c.position, info_t.c.product_id)
        .join(entry, entry.c.id == info_t.c.entry)
        .where(live)
    ):
        package_products[pk].append((position, product_id))

    drug = schema.fest_drug
    for r in _rows(conn, drug, live):
        if r.kind == "LegemiddelMerkevare":
            products.append(
                Product(
                    id=r.domain_id,
                    name=r.name,
                    atc=r.atc,
                    form_code=r.form_code,
                    form_name=r.form_name,
                    prescription_group=r.prescription_group,
                    route_codes=_codes(r.routes),
                    dose_unit_codes=_codes(r.dose_units),
                    strength_ids=targets(r.entry, "SortertVirkestoffMedStyrke"),
                    substance_ids=targets(r.entry, "SortertVirkestoffUtenStyrke"),
                    prescription_validity=tuple(
                        v["duration"] for v in r.prescription_validity or () if v.get("duration")
                    ),
                )
            )
        elif r.kind == "Legemiddelpakning":
            packages.append(
                Package(
                    id=r.domain_id,
                    varenr=r.varenr,
                    eans=tuple(eans.get(r.entry, ())),
                    name=r.name,
                    atc=r.atc,
                    product_ids=tuple(p for _, p in sorted(package_products.get(r.entry, ()))),
                    substitution_group_id=r.substitution_group_id,
                    substitution_valid_from=r.substitution_valid_from,
                    substitution_valid_to=r.substitution_valid_to,
                    prescription_group=r.prescription_group,
                )
            )
        elif r.kind == "LegemiddelVirkestoff":
            groups.append(
                GenericGroup(
                    id=r.domain_id,
                    name=r.name,
                    atc=r.atc,
                    strength_ids=targets(r.entry, "SortertVirkestoffMedStyrke"),
                    substance_ids=targets(r.entry, "SortertVirkestoffUtenStyrke"),
                    product_ids=targets(r.entry, "RefLegemiddelMerkevare"),
                    package_ids=targets(r.entry, "RefPakning"),
                )
            )
        elif r.kind == "Legemiddeldose":
            product_ids = targets(r.entry, "RefLegemiddelMerkevare")
            doses.append(
                DoseUnit(
                    id=r.domain_id,
                    product_id=product_ids[0] if product_ids else "",
                    package_ids=targets(r.entry, "RefPakning"),
                    amount=r.amount_value,
                    unit=r.amount_unit,
                )
            )

    substitution_groups = tuple(
        SubstitutionGroup(
            id=r.domain_id,
            code=r.code,
            description=r.description,
            restricted=r.restricted,
            restriction_text=r.restriction_text,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
        )
        for r in _rows(conn, schema.fest_substitution_group, live)
    )

    return CatalogueSnapshot(
        info=info,
        substances=substances,
        strengths=strengths,
        products=tuple(products),
        packages=tuple(packages),
        generic_groups=tuple(groups),
        dose_units=tuple(doses),
        substitution_groups=substitution_groups,
        interactions=_interactions(conn, live),
        not_assessed=tuple(
            NotAssessed(atc=r.atc, name=r.atc_name)
            for r in _rows(conn, schema.fest_not_assessed, live)
        ),
        notices=_notices(conn, live, refs),
        atc_codes=_atc_codes(conn, live),
    )


def _atc_codes(conn: Connection, live) -> tuple[AtcCode, ...]:
    """The ATC code system (Kodeverk 7180) in force: each code with its Norwegian term (``Sprak``
    NO or none given) and its English one (``Sprak`` EN)."""
    entry, code = schema.fest_entry, schema.fest_code
    rows = conn.execute(
        select(code.c.code, code.c.term, code.c.terms)
        .join(entry, entry.c.id == code.c.entry)
        .where(live, entry.c.kind == "Kodeverk", entry.c.domain_id == ATC_CODE_SYSTEM)
    )
    found = []
    for r in rows:
        terms = [t for t in r.terms or () if isinstance(t, dict) and t.get("Term")]
        norwegian = next((t["Term"] for t in terms if t.get("Sprak") in (None, "", "NO")), None)
        english = next((t["Term"] for t in terms if t.get("Sprak") == "EN"), None)
        found.append(AtcCode(code=r.code, name=norwegian or r.term, english_name=english))
    return tuple(found)


def _info(conn: Connection, version: int | None) -> CatalogueInfo:
    if version is None:
        current = version_in_force(conn)
        if current is None:
            raise NoCatalogue("no FEST catalogue has been imported: run `medloop fest import PATH`")
        return CatalogueInfo(version=current["id"], hentet_dato=current["hentet_dato"])
    row = conn.execute(
        select(schema.fest_version.c.id, schema.fest_version.c.hentet_dato).where(
            schema.fest_version.c.id == version
        )
    ).first()
    if row is None:
        raise NoCatalogue(f"catalogue version {version} does not exist")
    return CatalogueInfo(version=row.id, hentet_dato=row.hentet_dato)


def _interactions(conn: Connection, live) -> tuple[Interaction, ...]:
    table = schema.fest_interaction
    return tuple(
        Interaction(
            id=r.domain_id,
            relevance=r.relevance,
            situation=r.situation,
            consequence=r.consequence,
            mechanism=r.mechanism,
            source_basis_code=r.source_basis_code,
            source_basis=r.source_basis_name,
            handling=r.handling,
            display_rules=_codes(r.display_rules),
            references=tuple(
                (ref.get("source") or "", ref.get("link")) for ref in r.references or ()
            ),
            groups=tuple(
                InteractionGroup(
                    name=group.get("name"),
                    members=tuple(
                        InteractionMember(
                            name=m.get("name"),
                            atc=m.get("atc"),
                            substance_ids=tuple(m.get("substance_ids") or ()),
                        )
                        for m in group.get("members", ())
                    ),
                )
                for group in r.groups
            ),
        )
        for r in _rows(conn, table, live)
    )


def _notices(conn: Connection, live, refs) -> tuple[Notice, ...]:
    entry, notice = schema.fest_entry, schema.fest_notice
    result = []
    for r in conn.execute(
        select(notice, entry.c.domain_id).join(entry, entry.c.id == notice.c.entry).where(live)
    ):
        references = tuple(
            (field.split("/", 1)[1], target)
            for field, items in refs[r.entry].items()
            if field.startswith("Referanseelement/")
            for _, target in sorted(items)
        )
        from_date: date | None = r.from_date
        result.append(
            Notice(
                id=r.domain_id,
                type_code=r.type_code,
                type_name=r.type_name,
                headline=r.headline,
                text=r.text,
                from_date=from_date,
                link=r.link,
                references=references,
            )
        )
    return tuple(result)
