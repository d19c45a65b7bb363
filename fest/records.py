"""Typed records extracted from one FEST payload element.

Each ``extract`` call walks the payload's children once and returns the entity kind, the
stable domain id, the rows for the typed tables of :mod:`fest.schema` and every
cross-reference (``Ref*``) the payload makes.  Elements are matched on their local name:
the loader has already checked the namespace of the entry wrapper, and payloads are
redeclared in the Forskrivning namespace in production files.

Domain keys follow the format brief: the payload ``Id`` where there is one;
``Atc@V`` for InteraksjonIkkeVurdert, ``Kortdose@V`` for StrDosering, ``Info/Id`` for
Kodeverk, ``Nr`` for Handelsvare, the first ``Refusjonsgruppe/Id`` for Refusjonshjemmel
and the entry id for VarselSlv (which has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lxml import etree
from sqlalchemy import Table

from fest import schema

Row = dict[str, Any]

#: Kinds whose typed rows carry every element of the payload: their raw XML is not kept.
FULLY_TYPED = frozenset(
    {"Interaksjon", "InteraksjonIkkeVurdert", "VirkestoffMedStyrke", "Byttegruppe", "Vilkar"}
)
Ref = tuple[str, int, str, str]  # field, position, target kind, target domain id


class RecordError(ValueError):
    """A payload that cannot be read (missing key, unparsable number or date)."""


@dataclass(slots=True)
class Extracted:
    kind: str
    domain_id: str
    rows: list[tuple[Table, Row]] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)


_LOCAL_NAMES: dict[str, str] = {}


def _children(el: etree._Element) -> list[tuple[str, etree._Element]]:
    """(local name, element) of the element children, comments and PIs skipped."""
    out = []
    for child in el:
        tag = child.tag
        name = _LOCAL_NAMES.get(tag)
        if name is None:
            if not isinstance(tag, str):
                continue
            name = _LOCAL_NAMES[tag] = tag[tag.rfind("}") + 1 :]
        out.append((name, child))
    return out


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise RecordError(f"invalid date {text!r}") from None


def _float(text: str | None, what: str) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise RecordError(f"invalid number {text!r} in {what}") from None


def _int(text: str | None, what: str) -> int | None:
    value = _float(text, what)
    return None if value is None else int(value)


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1")


def _code(el: etree._Element) -> dict[str, str | None]:
    return {"code": el.get("V"), "name": el.get("DN")}


# --- drugs: LegemiddelMerkevare, Legemiddelpakning, LegemiddelVirkestoff, Legemiddeldose


def _administration(el: etree._Element, row: Row) -> None:
    routes: list = []
    units: list = []
    short: list = []
    precautions: list = []
    labels: list = []
    for name, child in _children(el):
        if name == "Administrasjonsvei":
            routes.append(_code(child))
        elif name == "KanKnuses":
            row["can_crush"] = child.get("V")
        elif name == "KanApnes":
            row["can_open"] = child.get("V")
        elif name == "Deling":
            row["division"] = child.get("V")
        elif name == "EnhetDosering":
            units.append(_code(child))
        elif name == "Kortdose":
            short.append(_code(child))
        elif name == "ForhandsregelInntak":
            precautions.append(_code(child))
        elif name == "BruksomradeEtikett":
            labels.append(_code(child))
    row.update(
        routes=routes,
        dose_units=units,
        short_doses=short,
        intake_precautions=precautions,
        label_usages=labels,
    )


def _refund_link(el: etree._Element, out: Extracted, position: int) -> dict:
    groups = []
    link: dict[str, Any] = {"groups": groups}
    for name, child in _children(el):
        if name == "RefRefusjonsgruppe":
            groups.append(_text(child))
            out.refs.append(("RefRefusjonsgruppe", position, "Refusjonsgruppe", _text(child)))
        elif name == "GyldigFraDato":
            link["valid_from"] = _text(child)
        elif name == "ForskrivesTilDato":
            link["prescribe_to"] = _text(child)
        elif name == "UtleveresTilDato":
            link["dispense_to"] = _text(child)
    return link


def _package_info(el: etree._Element, out: Extracted, position: int) -> Row:
    row: Row = {"position": position}
    for name, child in _children(el):
        if name == "RefLegemiddelMerkevare":
            row["product_id"] = _text(child)
            out.refs.append(
                ("RefLegemiddelMerkevare", position, "LegemiddelMerkevare", _text(child))
            )
        elif name == "Pakningsstr":
            row["pack_size"] = _text(child)
        elif name == "EnhetPakning":
            row["pack_unit"] = child.get("V")
        elif name == "Pakningstype":
            row["pack_type"] = child.get("V")
            row["pack_type_name"] = child.get("DN")
        elif name == "Multippel":
            row["multiple"] = _int(child.text, "Multippel")
        elif name == "Antall":
            row["count"] = _int(child.text, "Antall")
        elif name == "Mengde":
            row["amount"] = _float(child.text, "Mengde")
        elif name == "Sortering":
            row["position"] = _int(child.text, "Sortering")
        elif name == "DDD":
            row["ddd_value"] = _float(child.get("V"), "DDD")
            row["ddd_unit"] = child.get("U")
        elif name == "Statistikkfaktor":
            row["statistics_factor"] = _float(child.text, "Statistikkfaktor")
    if "product_id" not in row:
        raise RecordError("Pakningsinfo without RefLegemiddelMerkevare")
    return row


def _price(el: etree._Element) -> Row:
    row: Row = {}
    for name, child in _children(el):
        if name == "Type":
            row["type_code"] = child.get("V")
            row["type_name"] = child.get("DN")
        elif name == "Pris":
            row["price"] = _float(child.get("V"), "Pris")
            row["currency"] = child.get("U")
        elif name == "GyldigFraDato":
            row["valid_from"] = _text(child)
        elif name == "GyldigTilDato":
            row["valid_to"] = _text(child)
    return row


def _drug(kind: str, el: etree._Element, out: Extracted) -> None:
    row: Row = {
        "kind": kind,
        "opioid_application": False,
        "black_triangle": False,
        "name": "",
    }
    refunds: list = []
    validity: list = []
    marketing: dict = {}
    eans: list[str] = []
    infos: list[Row] = []
    prices: list[Row] = []
    position = {"SortertVirkestoffMedStyrke": 0, "SortertVirkestoffUtenStyrke": 0}
    for name, child in _children(el):
        if name == "Atc":
            row["atc"] = child.get("V")
            row["atc_name"] = child.get("DN")
        elif name == "NavnFormStyrke":
            row["name"] = _text(child)
        elif name == "Reseptgruppe":
            row["prescription_group"] = child.get("V")
        elif name == "LegemiddelformKort":
            row["form_code"] = child.get("V")
            row["form_name"] = child.get("DN")
        elif name == "RefVilkar":
            out.refs.append(("RefVilkar", len(out.refs), "Vilkar", _text(child)))
        elif name == "Preparattype":
            row["product_type"] = child.get("V")
            row["product_type_name"] = child.get("DN")
        elif name == "TypeSoknadSlv":
            row["application_type"] = child.get("V")
        elif name == "Opioidsoknad":
            row["opioid_application"] = _bool(child.text)
        elif name == "Refusjon":
            refunds.append(_refund_link(child, out, len(refunds)))
        elif name == "PakningByttegruppe":
            for sub, grandchild in _children(child):
                if sub == "RefByttegruppe":
                    row["substitution_group_id"] = _text(grandchild)
                    out.refs.append(("RefByttegruppe", 0, "Byttegruppe", _text(grandchild)))
                elif sub == "GyldigFraDato":
                    row["substitution_valid_from"] = _date(grandchild.text)
                elif sub == "GyldigTilDato":
                    row["substitution_valid_to"] = _date(grandchild.text)
        elif name == "AdministreringLegemiddel":
            _administration(child, row)
        elif name == "SvartTrekant":
            row["black_triangle"] = True
        elif name == "Id":
            out.domain_id = _text(child)
        elif name in position:
            sort = ref = None
            for sub, grandchild in _children(child):
                if sub == "Sortering":
                    sort = _int(grandchild.text, "Sortering")
                elif sub in ("RefVirkestoffMedStyrke", "RefVirkestoff"):
                    ref = (sub, _text(grandchild))
            if ref is not None:
                target = (
                    "VirkestoffMedStyrke" if ref[0] == "RefVirkestoffMedStyrke" else "Virkestoff"
                )
                pos = sort if sort is not None else position[name]
                out.refs.append((name, pos, target, ref[1]))
            position[name] += 1
        elif name == "Varenavn":
            row["brand_name"] = _text(child)
        elif name == "LegemiddelformLang":
            row["form_long"] = _text(child)
        elif name == "ProduktInfo":
            for sub, grandchild in _children(child):
                if sub == "Produsent":
                    row["manufacturer"] = _text(grandchild)
        elif name == "Reseptgyldighet":
            item: dict = {}
            for sub, grandchild in _children(child):
                if sub == "Kjonn":
                    item["gender"] = grandchild.get("V")
                elif sub == "Varighet":
                    item["duration"] = _text(grandchild)
            validity.append(item)
        elif name == "Varenr":
            row["varenr"] = _text(child)
        elif name == "Ean":
            eans.append(_text(child))
        elif name == "Oppbevaring":
            row["storage"] = child.get("V")
        elif name == "Pakningsinfo":
            infos.append(_package_info(child, out, len(infos)))
        elif name == "PrisVare":
            prices.append(_price(child))
        elif name == "Markedsforingsinfo":
            for sub, grandchild in _children(child):
                marketing[sub] = _text(grandchild)
        elif name in ("RefLegemiddelMerkevare", "RefPakning"):
            target = (
                "LegemiddelMerkevare" if name == "RefLegemiddelMerkevare" else "Legemiddelpakning"
            )
            out.refs.append((name, len(out.refs), target, _text(child)))
        elif name == "LmrLopenr":
            row["lmr_number"] = _text(child)
        elif name == "Mengde" and kind == "Legemiddeldose":
            row["amount_value"] = _float(child.get("V"), "Mengde")
            row["amount_unit"] = child.get("U")
    if not out.domain_id:
        raise RecordError(f"{kind} without Id")
    if kind == "Legemiddelpakning" and not row.get("varenr"):
        raise RecordError("Legemiddelpakning without Varenr")
    row.update(
        domain_id=out.domain_id,
        refunds=refunds or None,
        prescription_validity=validity or None,
        marketing=marketing or None,
        prices=prices or None,
    )
    out.rows.append((schema.fest_drug, row))
    out.rows.extend((schema.fest_package_ean, {"ean": ean}) for ean in eans)
    out.rows.extend((schema.fest_package_info, info) for info in infos)


# --- substances


def _substance(el: etree._Element, out: Extracted) -> None:
    row: Row = {"name": ""}
    salts = 0
    for name, child in _children(el):
        if name == "Id":
            out.domain_id = _text(child)
        elif name == "Navn":
            row["name"] = _text(child)
        elif name == "NavnEngelsk":
            row["english_name"] = _text(child)
        elif name == "RefVirkestoff":
            out.refs.append(("RefVirkestoff", salts, "Virkestoff", _text(child)))
            salts += 1
    if not out.domain_id:
        raise RecordError("Virkestoff without Id")
    row["domain_id"] = out.domain_id
    out.rows.append((schema.fest_substance, row))


def _strength(el: etree._Element, out: Extracted) -> None:
    row: Row = {}
    for name, child in _children(el):
        if name == "Id":
            out.domain_id = _text(child)
        elif name == "Styrke":
            row["value"] = _float(child.get("V"), "Styrke")
            row["unit"] = child.get("U")
        elif name == "StyrkeNevner":
            row["denominator_value"] = _float(child.get("V"), "StyrkeNevner")
            row["denominator_unit"] = child.get("U")
        elif name == "RefVirkestoff":
            row["substance_id"] = _text(child)
            out.refs.append(("RefVirkestoff", 0, "Virkestoff", _text(child)))
        elif name == "AlternativStyrke":
            row["alt_value"] = _float(child.get("V"), "AlternativStyrke")
            row["alt_unit"] = child.get("U")
        elif name == "AlternativStyrkeNevner":
            row["alt_denominator_value"] = _float(child.get("V"), "AlternativStyrkeNevner")
            row["alt_denominator_unit"] = child.get("U")
        elif name == "Styrkeoperator":
            row["operator"] = child.get("V")
        elif name == "StyrkeOvreVerdi":
            row["upper_value"] = _float(child.text, "StyrkeOvreVerdi")
        elif name == "AtcKombipreparat":
            row["combination_atc"] = child.get("V")
            row["combination_atc_name"] = child.get("DN")
    if not out.domain_id:
        raise RecordError("VirkestoffMedStyrke without Id")
    if row.get("value") is None or "substance_id" not in row:
        raise RecordError(f"VirkestoffMedStyrke {out.domain_id} without Styrke or RefVirkestoff")
    row["domain_id"] = out.domain_id
    out.rows.append((schema.fest_strength, row))


# --- interactions


def _interaction(el: etree._Element, out: Extracted) -> None:
    row: Row = {"display_rules": [], "references": [], "groups": []}
    for name, child in _children(el):
        if name == "Id":
            out.domain_id = _text(child)
        elif name == "Relevans":
            row["relevance"] = _int(child.get("V"), "Relevans")
            row["relevance_name"] = child.get("DN")
        elif name == "Situasjonskriterium":
            row["situation"] = _text(child)
        elif name == "KliniskKonsekvens":
            row["consequence"] = _text(child)
        elif name == "Interaksjonsmekanisme":
            row["mechanism"] = _text(child)
        elif name == "Kildegrunnlag":
            row["source_basis_code"] = child.get("V")
            row["source_basis_name"] = child.get("DN")
        elif name == "Handtering":
            row["handling"] = (child.text or "").strip("\n") or None
        elif name == "Visningsregel":
            row["display_rules"].append(_code(child))
        elif name == "Referanse":
            ref: dict = {"source": None, "link": None}
            for sub, grandchild in _children(child):
                if sub == "Kilde":
                    ref["source"] = _text(grandchild)
                elif sub == "Lenke":
                    ref["link"] = grandchild.get("V")
            row["references"].append(ref)
        elif name == "Substansgruppe":
            row["groups"].append(_substance_group(child, out, len(row["groups"])))
    if not out.domain_id:
        raise RecordError("Interaksjon without Id")
    if row.get("relevance") is None:
        raise RecordError(f"Interaksjon {out.domain_id} without Relevans")
    row.setdefault("consequence", "")
    row["domain_id"] = out.domain_id
    out.rows.append((schema.fest_interaction, row))


def _substance_group(el: etree._Element, out: Extracted, group_position: int) -> dict:
    group: dict = {"name": None, "members": []}
    for name, child in _children(el):
        if name == "Navn":
            group["name"] = _text(child)
        elif name == "Substans":
            member: dict = {"name": None, "atc": None, "atc_name": None, "substance_ids": []}
            for sub, grandchild in _children(child):
                if sub == "Substans":
                    member["name"] = _text(grandchild)
                elif sub == "Atc":
                    member["atc"] = grandchild.get("V")
                    member["atc_name"] = grandchild.get("DN")
                elif sub == "RefVirkestoff":
                    member["substance_ids"].append(_text(grandchild))
                    out.refs.append(
                        ("Substans/RefVirkestoff", group_position, "Virkestoff", _text(grandchild))
                    )
            group["members"].append(member)
    return group


def _not_assessed(el: etree._Element, out: Extracted) -> None:
    for name, child in _children(el):
        if name == "Atc":
            out.domain_id = child.get("V") or ""
            out.rows.append(
                (schema.fest_not_assessed, {"atc": out.domain_id, "atc_name": child.get("DN")})
            )
    if not out.domain_id:
        raise RecordError("InteraksjonIkkeVurdert without Atc")


# --- the smaller catalogues


def _substitution_group(el: etree._Element, out: Extracted) -> None:
    row: Row = {"restricted": False}
    for name, child in _children(el):
        if name == "Id":
            out.domain_id = _text(child)
        elif name == "Kode":
            row["code"] = child.get("V")
            row["description"] = child.get("DN")
        elif name == "MerknadTilByttbarhet":
            row["restricted"] = _bool(child.text)
        elif name == "BeskrivelseByttbarhet":
            row["restriction_text"] = _text(child)
        elif name == "GyldigFraDato":
            row["valid_from"] = _date(child.text)
        elif name == "GyldigTilDato":
            row["valid_to"] = _date(child.text)
    if not out.domain_id or not row.get("code"):
        raise RecordError("Byttegruppe without Id or Kode")
    row["domain_id"] = out.domain_id
    out.rows.append((schema.fest_substitution_group, row))


def _refund_basis(el: etree._Element, out: Extracted) -> None:
    row: Row = {"requires_product_link": False, "requires_decision": False}
    for name, child in _children(el):
        if name == "Refusjonshjemmel":
            row["basis_code"] = child.get("V")
            row["basis_name"] = child.get("DN")
        elif name == "KreverVarekobling":
            row["requires_product_link"] = _bool(child.text)
        elif name == "KreverVedtak":
            row["requires_decision"] = _bool(child.text)
        elif name == "Refusjonsgruppe":
            group = _refund_group(child, out)
            out.domain_id = out.domain_id or group["group_id"]
            out.rows.append((schema.fest_refund_group, group))
    if not out.domain_id:
        raise RecordError("Refusjonshjemmel without Refusjonsgruppe/Id")
    out.rows.insert(0, (schema.fest_refund_basis, row))


def _refund_group(el: etree._Element, out: Extracted) -> Row:
    row: Row = {"codes": []}
    for name, child in _children(el):
        if name == "Id":
            row["group_id"] = _text(child)
        elif name == "GruppeNr":
            row["group_no"] = child.get("V")
            row["group_name"] = child.get("DN")
        elif name == "Atc":
            row["atc"] = child.get("V")
        elif name == "KreverRefusjonskode":
            row["requires_refund_code"] = _bool(child.text)
        elif name == "RefusjonsberettighetBruk":
            row["usage_text"] = _text(child)
        elif name == "RefVilkar":
            out.refs.append(("Refusjonsgruppe/RefVilkar", 0, "Vilkar", _text(child)))
        elif name == "Refusjonskode":
            code: dict = {"conditions": []}
            for sub, grandchild in _children(child):
                if sub == "Refusjonskode":
                    code.update(
                        system=grandchild.get("S"),
                        code=grandchild.get("V"),
                        name=grandchild.get("DN"),
                    )
                elif sub == "Refusjonsvilkar":
                    condition = {s: _text(g) for s, g in _children(grandchild)}
                    code["conditions"].append(condition)
                    if condition.get("RefVilkar"):
                        out.refs.append(
                            ("Refusjonsvilkar/RefVilkar", 0, "Vilkar", condition["RefVilkar"])
                        )
                else:
                    code[sub] = _text(grandchild)
            row["codes"].append(code)
    if not row.get("group_id"):
        raise RecordError("Refusjonsgruppe without Id")
    return row


def _condition(el: etree._Element, out: Extracted) -> None:
    row: Row = {"structured": []}
    for name, child in _children(el):
        if name == "Id":
            out.domain_id = _text(child)
        elif name == "VilkarNr":
            row["number"] = _text(child)
        elif name == "Gruppe":
            row["group_code"] = child.get("V")
            row["group_name"] = child.get("DN")
        elif name == "GjelderFor":
            row["applies_to"] = child.get("V")
        elif name == "Tekst":
            row["text"] = _text(child)
        elif name == "GyldigFraDato":
            row["valid_from"] = _date(child.text)
        elif name == "GyldigTilDato":
            row["valid_to"] = _date(child.text)
        elif name == "StrukturertVilkar":
            item: dict = {"values": []}
            for sub, grandchild in _children(child):
                if sub == "Type":
                    item["type"] = _code(grandchild)
                elif sub == "VerdiTekst":
                    item["values"].append({"text": _text(grandchild)})
                elif sub == "VerdiKodet":
                    item["values"].append(_code(grandchild) | {"system": grandchild.get("S")})
            row["structured"].append(item)
    if not out.domain_id:
        raise RecordError("Vilkar without Id")
    row.setdefault("text", "")
    row["domain_id"] = out.domain_id
    out.rows.append((schema.fest_condition, row))


_NOTICE_CLASS_TARGETS = {
    "1": "LegemiddelMerkevare",
    "2": "Legemiddelpakning",
    "3": "LegemiddelVirkestoff",
    "4": "Refusjonsgruppe",
}


def _notice(el: etree._Element, out: Extracted) -> None:
    row: Row = {"display_rules": [], "coded_info": []}
    for name, child in _children(el):
        if name == "Type":
            row["type_code"] = child.get("V")
            row["type_name"] = child.get("DN")
        elif name == "Overskrift":
            row["headline"] = _text(child)
        elif name == "Varseltekst":
            row["text"] = _text(child)
        elif name == "Visningsregel":
            row["display_rules"].append(_code(child))
        elif name == "KodetInfo":
            row["coded_info"].append(_code(child))
        elif name == "FraDato":
            row["from_date"] = _date(child.text)
        elif name == "Lenke":
            for sub, grandchild in _children(child):
                if sub == "Www":
                    row["link"] = grandchild.get("V")
                elif sub == "Beskrivelse":
                    row["link_text"] = _text(grandchild)
        elif name == "Referanseelement":
            klasse = None
            targets = []
            for sub, grandchild in _children(child):
                if sub == "Klasse":
                    klasse = grandchild.get("V")
                elif sub == "RefElement":
                    targets.append(_text(grandchild))
            target_kind = _NOTICE_CLASS_TARGETS.get(klasse or "")
            if target_kind is None:
                raise RecordError(f"VarselSlv Referanseelement with unknown Klasse {klasse!r}")
            out.refs.extend(
                (f"Referanseelement/{klasse}", i, target_kind, t) for i, t in enumerate(targets)
            )
    if not row.get("type_code") or not row.get("headline"):
        raise RecordError("VarselSlv without Type or Overskrift")
    out.rows.append((schema.fest_notice, row))


def _code_system(payload: list[etree._Element], out: Extracted) -> None:
    for element in payload:
        name = element.tag[element.tag.rfind("}") + 1 :]
        fields = dict(_children(element))
        if name == "Info":
            out.domain_id = _text(fields["Id"]) if "Id" in fields else ""
            out.rows.insert(
                0,
                (
                    schema.fest_code_system,
                    {
                        "oid": out.domain_id,
                        "name": _text(fields["Betegnelse"]) if "Betegnelse" in fields else None,
                        "short_name": _text(fields["Kortnavn"]) if "Kortnavn" in fields else None,
                        "publisher": _text(fields["AnsvarligUtgiver"])
                        if "AnsvarligUtgiver" in fields
                        else None,
                    },
                ),
            )
        elif name == "Element":
            terms = []
            for sub, child in _children(element):
                if sub == "Term":
                    # Sprak (CS 3303) is a coded attribute: kept as its V, so the Norwegian and
                    # English terms of a code (the ATC code system has both) can be told apart.
                    terms.append(
                        {s: g.get("V") if s == "Sprak" else _text(g) for s, g in _children(child)}
                    )
            first = terms[0] if terms else {}
            out.rows.append(
                (
                    schema.fest_code,
                    {
                        "element_id": _text(fields["Id"]) if "Id" in fields else None,
                        "parent_id": _text(fields["ParentId"]) if "ParentId" in fields else None,
                        "code": _text(fields["Kode"]) if "Kode" in fields else "",
                        "term": first.get("Term"),
                        "description": first.get("BeskrivelseTerm"),
                        "terms": terms,
                    },
                )
            )
    if not out.domain_id:
        raise RecordError("Kodeverk without Info/Id")


def _short_dose(el: etree._Element, out: Extracted) -> None:
    row: Row = {"phases": []}
    for name, child in _children(el):
        if name == "Kortdose":
            out.domain_id = child.get("V") or ""
            row["code"] = out.domain_id
            row["name"] = child.get("DN")
        elif name == "BeskrivelseTerm":
            row["description"] = _text(child)
        elif name == "Legemiddelforbruk":
            phase: dict = {}
            for sub, grandchild in _children(child):
                if sub == "Dosering":
                    phase["dosering_xml"] = etree.tostring(grandchild, encoding="unicode")
                else:
                    phase[sub] = _text(grandchild)
            row["phases"].append(phase)
    if not out.domain_id:
        raise RecordError("Kortdose without Kortdose@V")
    out.rows.append((schema.fest_short_dose, row))


def _commodity(commodity_type: str, el: etree._Element, out: Extracted) -> None:
    row: Row = {"commodity_type": commodity_type}
    for name, child in _children(el):
        if name == "Nr":
            out.domain_id = _text(child)
        elif name == "Navn":
            row["name"] = _text(child)
        elif name == "Leverandor":
            row["supplier"] = " ".join(_text(g) for _, g in _children(child)) or _text(child)
    if not out.domain_id:
        raise RecordError(f"{commodity_type} without Nr")
    row["nr"] = out.domain_id
    out.rows.append((schema.fest_commodity, row))


_DRUG_KINDS = frozenset(
    {"LegemiddelMerkevare", "Legemiddelpakning", "LegemiddelVirkestoff", "Legemiddeldose"}
)
_COMMODITY_KINDS = frozenset({"MedForbMatr", "Naringsmiddel", "Brystprotese"})

_PAYLOAD_KIND = {
    "Virkestoff": "Virkestoff",
    "VirkestoffMedStyrke": "VirkestoffMedStyrke",
    "Interaksjon": "Interaksjon",
    "InteraksjonIkkeVurdert": "InteraksjonIkkeVurdert",
    "Byttegruppe": "Byttegruppe",
    "Refusjonshjemmel": "Refusjonshjemmel",
    "Vilkar": "Vilkar",
    "VarselSlv": "VarselSlv",
    "Kortdose": "Kortdose",
}

_EXTRACTORS = {
    "Virkestoff": _substance,
    "VirkestoffMedStyrke": _strength,
    "Interaksjon": _interaction,
    "InteraksjonIkkeVurdert": _not_assessed,
    "Byttegruppe": _substitution_group,
    "Refusjonshjemmel": _refund_basis,
    "Vilkar": _condition,
    "VarselSlv": _notice,
    "Kortdose": _short_dose,
}


def extract(catalogue: str, entry_id: str, payload: list[etree._Element]) -> Extracted:
    """Typed rows and references of one entry's payload."""
    first = payload[0]
    name = first.tag[first.tag.rfind("}") + 1 :]
    if catalogue == "Kodeverk":
        out = Extracted("Kodeverk", "")
        _code_system(payload, out)
        return out
    if name in _DRUG_KINDS:
        out = Extracted(name, "")
        _drug(name, first, out)
        return out
    if name in _COMMODITY_KINDS:
        out = Extracted("Handelsvare", "")
        _commodity(name, first, out)
        return out
    kind = _PAYLOAD_KIND.get(name)
    if kind is None:
        # OrdineringVirkestoff and Diagnose: kept whole in the raw payload.
        out = Extracted(name, "")
        for sub, child in _children(first):
            if sub == "Id":
                out.domain_id = _text(child)
        if not out.domain_id:
            raise RecordError(f"{name} without Id")
        return out
    out = Extracted(kind, entry_id if kind == "VarselSlv" else "")
    _EXTRACTORS[kind](first, out)
    return out
