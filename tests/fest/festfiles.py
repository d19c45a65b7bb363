"""Small hand-built FEST documents for tests (our own content, shaped like the M30 schema)."""

from __future__ import annotations

M30 = "http://www.kith.no/xmlstds/eresept/m30/2014-12-01"
FS = "http://www.kith.no/xmlstds/eresept/forskrivning/2014-12-01"
M30_2013 = "http://www.kith.no/xmlstds/eresept/m30/2013-10-08"
FS_2013 = "http://www.kith.no/xmlstds/eresept/forskrivning/2013-10-08"

ORDER = ("LegemiddelMerkevare", "Legemiddelpakning", "Virkestoff", "Byttegruppe", "Interaksjon")


def document(hentet_dato: str, catalogues: dict[str, list[str]], m30: str = M30) -> str:
    """A FEST document with the given ``Oppf*`` entries per catalogue (XSD order kept)."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<FEST xmlns="{m30}">\n',
        f"<HentetDato>{hentet_dato}</HentetDato>\n",
    ]
    for name in ORDER:
        if name in catalogues:
            parts.append(f"<Kat{name}>\n" + "".join(catalogues[name]) + f"</Kat{name}>\n")
    parts.append("</FEST>\n")
    return "".join(parts)


def _wrap(catalogue: str, entry_id: str, status: str, payload: str) -> str:
    dn = "Aktiv oppføring" if status == "A" else "Utgått oppføring"
    return (
        f"<Oppf{catalogue}><Id>{entry_id}</Id><Tidspunkt>2026-01-01T03:00:00</Tidspunkt>"
        f'<Status V="{status}" DN="{dn}"/>{payload}</Oppf{catalogue}>\n'
    )


def expired(catalogue: str, entry_id: str) -> str:
    """A ``Status U`` entry without payload, as increments carry them."""
    return _wrap(catalogue, entry_id, "U", "")


def substitution_group(entry_id: str, domain_id: str, code: str) -> str:
    return _wrap(
        "Byttegruppe",
        entry_id,
        "A",
        f'<Byttegruppe><Id>{domain_id}</Id><Kode V="{code}" DN="GROUP {code}"/>'
        "<MerknadTilByttbarhet>false</MerknadTilByttbarhet></Byttegruppe>",
    )


def substance(
    entry_id: str, domain_id: str, name: str, salts: tuple[str, ...] = (), fs: str = FS
) -> str:
    refs = "".join(f"<RefVirkestoff>{s}</RefVirkestoff>" for s in salts)
    return _wrap(
        "Virkestoff",
        entry_id,
        "A",
        f'<Virkestoff xmlns="{fs}"><Id>{domain_id}</Id><Navn>{name}</Navn>{refs}</Virkestoff>',
    )


def strength(
    entry_id: str, domain_id: str, substance_id: str, mg: float, atc: str | None = None
) -> str:
    kombi = f'<AtcKombipreparat V="{atc}" DN="x"/>' if atc else ""
    return _wrap(
        "Virkestoff",
        entry_id,
        "A",
        f'<VirkestoffMedStyrke xmlns="{FS}"><Id>{domain_id}</Id><Styrke V="{mg}" U="mg"/>'
        f"<RefVirkestoff>{substance_id}</RefVirkestoff>"
        f'<Styrkeoperator V="L" DN="Lik"/>{kombi}</VirkestoffMedStyrke>',
    )


def product(
    entry_id: str, domain_id: str, name: str, atc: str, strengths: tuple[str, ...] = ()
) -> str:
    sorted_refs = "".join(
        f"<SortertVirkestoffMedStyrke><Sortering>{i}</Sortering>"
        f"<RefVirkestoffMedStyrke>{s}</RefVirkestoffMedStyrke></SortertVirkestoffMedStyrke>"
        for i, s in enumerate(strengths)
    )
    return _wrap(
        "LegemiddelMerkevare",
        entry_id,
        "A",
        f'<LegemiddelMerkevare xmlns="{FS}"><Atc V="{atc}" DN="{name}"/>'
        f"<NavnFormStyrke>{name} tab</NavnFormStyrke>"
        f'<Reseptgruppe V="C" DN="Reseptgruppe C"/><LegemiddelformKort V="53" DN="Tablett"/>'
        '<AdministreringLegemiddel><Administrasjonsvei V="53" DN="Oral bruk"/>'
        '<KanKnuses V="1" DN="Ja"/>'
        '<EnhetDosering V="13" DN="tablett"/></AdministreringLegemiddel>'
        f"<Id>{domain_id}</Id><Varenavn>{name}</Varenavn>{sorted_refs}"
        "<Reseptgyldighet><Varighet>P1Y</Varighet></Reseptgyldighet></LegemiddelMerkevare>",
    )


def package(
    entry_id: str,
    domain_id: str,
    varenr: str,
    product_id: str,
    group_id: str | None = None,
    ean: str | None = None,
) -> str:
    group = (
        f"<PakningByttegruppe><RefByttegruppe>{group_id}</RefByttegruppe>"
        "<GyldigFraDato>2020-01-01</GyldigFraDato></PakningByttegruppe>"
        if group_id
        else ""
    )
    ean_xml = f"<Ean>{ean}</Ean>" if ean else ""
    return _wrap(
        "Legemiddelpakning",
        entry_id,
        "A",
        f'<Legemiddelpakning xmlns="{FS}"><Atc V="N02BE01" DN="Paracetamol"/>'
        f"<NavnFormStyrke>Pack {varenr}</NavnFormStyrke>"
        f'<Reseptgruppe V="C" DN="Reseptgruppe C"/>{group}<Id>{domain_id}</Id>'
        f"<Varenr>{varenr}</Varenr>{ean_xml}"
        f"<Pakningsinfo><RefLegemiddelMerkevare>{product_id}</RefLegemiddelMerkevare>"
        "<Pakningsstr>20</Pakningsstr>"
        '<EnhetPakning V="stk" DN="stykk"/><Pakningstype V="169" DN="Blisterpakning"/>'
        "<Mengde>20</Mengde></Pakningsinfo>"
        '<PrisVare><Type V="4" DN="AUP"/><Pris V="42.5" U="NOK"/>'
        "<GyldigFraDato>2026-01-01</GyldigFraDato></PrisVare>"
        "</Legemiddelpakning>",
    )


def interaction(
    entry_id: str,
    domain_id: str,
    relevance: int,
    atc_a: str,
    atc_b: str,
    substance_b: str | None = None,
) -> str:
    member_b = (
        f"<Substans><Substans>B</Substans><RefVirkestoff>{substance_b}</RefVirkestoff></Substans>"
        if substance_b
        else f'<Substans><Substans>B</Substans><Atc V="{atc_b}" DN="B"/></Substans>'
    )
    return _wrap(
        "Interaksjon",
        entry_id,
        "A",
        f'<Interaksjon><Id>{domain_id}</Id><Relevans V="{relevance}" DN="r"/>'
        "<Situasjonskriterium>Gjelder ved høye doser.</Situasjonskriterium>"
        "<KliniskKonsekvens>Økt blødningsrisiko.</KliniskKonsekvens>"
        "<Interaksjonsmekanisme>Additiv effekt.</Interaksjonsmekanisme>"
        '<Kildegrunnlag V="1" DN="Interaksjonsstudier"/>'
        "<Handtering>Monitorering: Følg INR.\nLegemiddelalternativer: Paracetamol.</Handtering>"
        '<Visningsregel V="1" DN="Allmennlege"/>'
        '<Referanse><Kilde>Demo 2026</Kilde><Lenke V="https://example.org/ref"/></Referanse>'
        f'<Substansgruppe><Navn>A</Navn><Substans><Substans>A</Substans><Atc V="{atc_a}" DN="A"/>'
        "</Substans></Substansgruppe>"
        f"<Substansgruppe>{member_b}</Substansgruppe></Interaksjon>",
    )
