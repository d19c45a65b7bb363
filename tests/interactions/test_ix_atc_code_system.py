"""The ATC tree from FEST's ATC code system (Kodeverk 7180): any valid code can be checked, also
one no product in the catalogue carries, and every group has its name (levels 1-5).

On the synthetic catalogue (``fest/synth.py`` emits the code system) and on the real 2017
extract, which carries no ``KatKodeverk``: there the code system comes as an increment with the
few codes the test needs (their Norwegian and English WHO names).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fest.loader import import_catalogue
from fest.synth import write_synthetic
from interactions import Knowledge, UnknownReference, atc
from interactions.catalogue import CatalogueSnapshot
from medloop.api.screening import Proposal, screen
from medloop.catalogue import ATC_CODE_SYSTEM, load_snapshot
from medloop.cli import app
from medloop.domain.patient import NationalId, Patient
from medloop.loop.patients import register_patient
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.loop.helpers import NOW, call
from tests.reference import real_extract

M30 = "http://www.kith.no/xmlstds/eresept/m30/2014-12-01"

# Kladribin (L04AA40) came after 2017: no product, interaction or notice of the real extract
# names it, but the extract's interaction "vaccines + L04 immunosuppressants" covers it.
CODE_SYSTEM_ONLY = "L04AA40"
LIVE_VACCINE = "J07BF03"
TERMS = {
    "L": (
        "Antineoplastiske og immunmodulerende midler",
        "Antineoplastic and immunomodulating agents",
    ),
    "L04": ("Immunsuppressiver", "Immunosuppressants"),
    "L04A": ("Immunsuppressiver", "Immunosuppressants"),
    "L04AA": ("Selektive immunsuppressiver", "Selective immunosuppressants"),
    "L04AA40": ("Kladribin", "Cladribine"),
}


def _atc_increment(path: Path, hentet_dato: str) -> Path:
    """A FEST increment carrying only Kodeverk 7180 with the codes of ``TERMS``."""
    elements = []
    for code, (norwegian, english) in TERMS.items():
        parent = next((f"<ParentId>IDATC_{p}</ParentId>" for p in atc.ancestors(code)), "")
        elements.append(
            f"<Element><Id>IDATC_{code}</Id>{parent}<Kode>{code}</Kode>"
            f'<Term><Term>{norwegian}</Term><Sprak V="NO" DN="Norsk"/></Term>'
            f'<Term><Term>{english}</Term><Sprak V="EN" DN="Engelsk"/></Term></Element>'
        )
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<FEST xmlns="{M30}">'
        f"<HentetDato>{hentet_dato}</HentetDato><KatKodeverk><OppfKodeverk>"
        "<Id>ID_0E7C2F1A-7180-4A7C-9C1E-000000007180</Id><Tidspunkt>2017-04-20T03:00:00</Tidspunkt>"
        '<Status V="A" DN="Aktiv oppføring"/>'
        f"<Info><Id>{ATC_CODE_SYSTEM}</Id><Betegnelse>ATC</Betegnelse><Kortnavn>ATC</Kortnavn>"
        "<AnsvarligUtgiver>Direktoratet for medisinske produkter</AnsvarligUtgiver></Info>"
        f"{''.join(elements)}</OppfKodeverk></KatKodeverk></FEST>\n",
        encoding="utf-8",
    )
    return path


def _snapshot(url: str) -> CatalogueSnapshot:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return load_snapshot(conn)
    finally:
        engine.dispose()


def _check(url: str, request: dict) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["check", "--db", url, "--json"], input=json.dumps(request))
    return result.exit_code, json.loads(result.stdout)


# -- the real extract ----------------------------------------------------------------------------


@pytest.fixture
def real_with_code_system(sqlite_url: str, tmp_path: Path) -> str:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    import_catalogue(engine, real_extract())
    before = _snapshot(sqlite_url)
    assert before.atc_codes == (), "the 2017 extract itself carries no Kodeverk"
    with pytest.raises(UnknownReference):
        Knowledge.build(before).resolve(atc=CODE_SYSTEM_ONLY)
    increment = _atc_increment(tmp_path / "kodeverk-7180.xml", "2017-04-26T03:00:00")
    import_catalogue(engine, increment, incremental=True)
    engine.dispose()
    return sqlite_url


def test_real_extract_a_code_only_in_the_code_system_is_checked_against_its_interactions(
    real_with_code_system: str,
) -> None:
    request = {
        "medications": [
            {"id": "m1", "atc": CODE_SYSTEM_ONLY},
            {"id": "m2", "atc": LIVE_VACCINE},
        ]
    }
    code, response = _check(real_with_code_system, request)
    assert code == 0, response
    [alert] = [a for a in response["alerts"] if a["kind"] == "interaction"]
    assert alert["medications"] == ["m1", "m2"]
    via = {m["medication"]: m["via"] for m in alert["detail"]["matches"]}
    assert via["m1"] == "L04AA", "matched through the extract's nearest group entry (L04AA)"


def test_real_extract_every_level_of_a_code_system_code_has_its_name(
    real_with_code_system: str,
) -> None:
    knowledge = Knowledge.build(_snapshot(real_with_code_system))
    assert knowledge.atc_levels(CODE_SYSTEM_ONLY) == tuple(
        (code, norwegian) for code, (norwegian, _) in TERMS.items()
    )
    drug = knowledge.resolve(atc=CODE_SYSTEM_ONLY)
    assert drug.name == "Kladribin"
    assert knowledge.atc_tree.nodes["L04AA"]["english_name"] == "Selective immunosuppressants"
    # Codes the code system does not list keep the names the extract gives them.
    assert knowledge.atc_name("N06AB04") is not None


def test_real_extract_a_code_in_neither_catalogue_nor_code_system_stays_unknown(
    real_with_code_system: str,
) -> None:
    code, response = _check(
        real_with_code_system, {"medications": [{"id": "m1", "atc": "L04AA99"}]}
    )
    assert code == 2
    assert "L04AA99" in json.dumps(response)


# -- the synthetic catalogue --------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, CatalogueSnapshot]:
    folder = tmp_path_factory.mktemp("synth-atc")
    write_synthetic(folder / "fest.xml", scale=0.02, seed=3)
    url = f"sqlite:///{folder / 'db.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, folder / "fest.xml")
    engine.dispose()
    return url, _snapshot(url)


def _used_codes(snapshot: CatalogueSnapshot) -> set[str | None]:
    return {
        *(p.atc for p in snapshot.products),
        *(p.atc for p in snapshot.packages),
        *(g.atc for g in snapshot.generic_groups),
        *(s.combination_atc for s in snapshot.strengths),
        *(m.atc for i in snapshot.interactions for g in i.groups for m in g.members),
        *(n.atc for n in snapshot.not_assessed),
    }


def test_synthetic_code_system_code_no_product_carries_resolves_with_its_name(
    synthetic: tuple[str, CatalogueSnapshot],
) -> None:
    url, snapshot = synthetic
    used = _used_codes(snapshot)
    only = [c for c in snapshot.atc_codes if atc.is_substance_code(c.code) and c.code not in used]
    assert only, "the synthetic code system lists codes nothing in the catalogue carries"
    entry = only[0]
    without = Knowledge.build(dataclasses.replace(snapshot, atc_codes=()))
    with pytest.raises(UnknownReference):
        without.resolve(atc=entry.code)
    code, response = _check(url, {"medications": [{"id": "m1", "atc": entry.code}]})
    assert code == 0, response
    knowledge = Knowledge.build(snapshot)
    assert knowledge.resolve(atc=entry.code).name == entry.name


def test_synthetic_every_who_group_has_its_name_at_every_level(
    synthetic: tuple[str, CatalogueSnapshot],
) -> None:
    _, snapshot = synthetic
    knowledge = Knowledge.build(snapshot)
    listed = {c.code: c.name for c in snapshot.atc_codes}
    unnamed = [
        code
        for code in knowledge.atc_tree
        if not code.startswith("Z") and not knowledge.atc_name(code)
    ]
    assert unnamed == []
    level5 = next(code for code in listed if len(code) == atc.LEVEL5_LENGTH)
    levels = knowledge.atc_levels(level5)
    assert [len(code) for code, _ in levels] == [1, 3, 4, 5, 7]
    assert all(name == listed[code] for code, name in levels)


def test_real_extract_an_atc_coded_draft_only_in_the_code_system_is_screened(
    real_with_code_system: str,
) -> None:
    # The path CDS Hooks drafts coded by ATC take (medloop.api.screening).
    engine = make_engine(real_with_code_system)
    try:
        patient = Patient(
            id=uuid.uuid4(),
            national_id=NationalId("21014605158"),
            given_name="Kari",
            family_name="Nordmann",
            birth_date=date(1946, 1, 21),
        )
        register_patient(engine, patient, call())
        with engine.connect() as conn:
            screened = screen(
                conn,
                patient.id,
                [
                    Proposal("d1", None, None, NOW.date(), atc=CODE_SYSTEM_ONLY),
                    Proposal("d2", None, None, NOW.date(), atc=LIVE_VACCINE),
                ],
                NOW.date(),
            )
    finally:
        engine.dispose()
    assert screened.names["d1"] == "Kladribin"
    assert any(
        a.kind == "interaction" and set(a.medications) == {"d1", "d2"} for a in screened.alerts
    )
