"""The FEST importer: completeness, versioning, atomicity and errors, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from fest import schema
from fest.errors import FestFormatError, FestImportRejected
from fest.loader import import_catalogue, unresolved_references
from fest.queries import active_counts, version_in_force
from tests.fest import festfiles as ff
from tests.reference import DEMO, real_extract

_PAYLOAD_KIND = {
    "Refusjonshjemmel": "Refusjonshjemmel",
    "MedForbMatr": "Handelsvare",
    "Naringsmiddel": "Handelsvare",
    "Brystprotese": "Handelsvare",
}


def count_entries_independently(path: Path) -> Counter:
    """Count the active Oppf* entries per payload kind with plain lxml (not our parser)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        tree = etree.parse(handle)
    counts: Counter = Counter()
    for oppf in tree.getroot().iter():
        if not isinstance(oppf.tag, str) or not etree.QName(oppf).localname.startswith("Oppf"):
            continue
        children = [c for c in oppf if isinstance(c.tag, str)]
        if len(children) < 4:
            continue
        kind = etree.QName(children[3]).localname
        counts[_PAYLOAD_KIND.get(kind, kind)] += 1
    return counts


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def small_catalogue(hentet: str = "2026-01-01T03:00:00", extra: int = 0) -> str:
    groups = [ff.substitution_group(f"ID_E{i}", f"ID_G{i}", f"{i:06d}") for i in range(3 + extra)]
    return ff.document(
        hentet,
        {
            "LegemiddelMerkevare": [
                ff.product("ID_EP1", "ID_P1", "Paracet", "N02BE01", ("ID_S1",))
            ],
            "Legemiddelpakning": [
                ff.package("ID_EK1", "ID_K1", "012345", "ID_P1", "ID_G0", "7046260123452")
            ],
            "Virkestoff": [
                ff.substance("ID_EV1", "ID_V1", "Paracetamol"),
                ff.strength("ID_ES1", "ID_S1", "ID_V1", 500),
            ],
            "Byttegruppe": groups,
            "Interaksjon": [ff.interaction("ID_EI1", "ID_I1", 1, "B01AA03", "M01AE")],
        },
    )


def test_real_extract_every_entry_is_imported_and_every_reference_resolves(engine):
    path = real_extract()
    result = import_catalogue(engine, path)
    expected = count_entries_independently(path)
    assert {k: v for k, v in result.counts.items() if v} == dict(expected)
    assert result.warnings == []
    with engine.connect() as conn:
        assert unresolved_references(conn) == []
        refs = conn.scalar(select(func.count()).select_from(schema.fest_ref))
    assert refs > 300


def test_real_extract_interaction_fields_round_trip(engine):
    path = real_extract()
    import_catalogue(engine, path)
    with gzip.open(path, "rb") as handle:
        first = next(etree.parse(handle).getroot().iter("{*}Interaksjon"))
    fields = {etree.QName(c).localname: c for c in first}
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(schema.fest_interaction).where(
                    schema.fest_interaction.c.domain_id == fields["Id"].text
                )
            )
            .mappings()
            .one()
        )
    members = [m["atc"] for group in row["groups"] for m in group["members"]]
    assert row["relevance"] == int(fields["Relevans"].get("V"))
    assert row["consequence"] == fields["KliniskKonsekvens"].text.strip()
    assert row["source_basis_code"] == fields["Kildegrunnlag"].get("V")
    if "Interaksjonsmekanisme" in fields:
        assert row["mechanism"] == fields["Interaksjonsmekanisme"].text.strip()
    expected_atcs = sorted(a.get("V") for a in first.iter("{*}Atc"))
    assert sorted(a for a in members if a) == expected_atcs


def test_demo_catalogue_imports_with_every_catalogue_filled_and_no_warnings(engine):
    if not DEMO.exists():
        pytest.skip("demo catalogue not written yet")
    result = import_catalogue(engine, DEMO)
    assert result.warnings == []
    assert all(n > 0 for n in result.counts.values()), result.counts


def test_reimporting_the_identical_file_is_a_noop(engine, tmp_path):
    path = write(tmp_path / "fest.xml", small_catalogue())
    first = import_catalogue(engine, path)
    again = import_catalogue(engine, path)
    assert again.unchanged and again.version == first.version
    assert again.counts == first.counts
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(schema.fest_version)) == 1


def test_zip_gzip_and_bom_forms_of_one_catalogue_are_the_same_content(engine, tmp_path):
    text = small_catalogue()
    plain = write(tmp_path / "fest251.xml", text)
    first = import_catalogue(engine, plain)
    gz = tmp_path / "fest251.xml.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    archive = tmp_path / "fest251.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fest251.xml", text)
    bom = tmp_path / "bom.xml"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    for path in (gz, archive, bom):
        again = import_catalogue(engine, path)
        assert again.unchanged and again.version == first.version, path.name


def test_fest_250_namespace_is_accepted(engine, tmp_path):
    text = ff.document(
        "2026-01-01T03:00:00",
        {"Virkestoff": [ff.substance("ID_E1", "ID_V1", "Warfarin", fs=ff.FS_2013)]},
        m30=ff.M30_2013,
    )
    result = import_catalogue(engine, write(tmp_path / "old.xml", text))
    assert result.counts["Virkestoff"] == 1
    with engine.connect() as conn:
        assert version_in_force(conn)["fest_version"] == "2.5.0"


def _state(engine) -> tuple:
    with engine.connect() as conn:
        return version_in_force(conn)["id"], active_counts(conn)


def test_malformed_xml_names_file_line_and_column_and_changes_nothing(engine, tmp_path):
    import_catalogue(engine, write(tmp_path / "good.xml", small_catalogue()))
    before = _state(engine)
    bad = small_catalogue("2026-02-01T03:00:00").replace(
        "<Navn>Paracetamol</Navn>", "<Navn>Paracetamol</Nav>"
    )
    path = write(tmp_path / "bad.xml", bad)
    with pytest.raises(FestFormatError) as caught:
        import_catalogue(engine, path)
    error = caught.value
    assert error.path == str(path) and error.line is not None and error.column is not None
    assert f"{path}:{error.line}:{error.column}:" in str(error)
    assert "Nav" in str(error)
    assert _state(engine) == before


def test_truncated_file_is_refused_and_changes_nothing(engine, tmp_path):
    import_catalogue(engine, write(tmp_path / "good.xml", small_catalogue()))
    before = _state(engine)
    text = small_catalogue("2026-02-01T03:00:00", extra=5)
    path = write(tmp_path / "cut.xml", text[: int(len(text) * 0.7)])
    with pytest.raises(FestFormatError, match="malformed XML"):
        import_catalogue(engine, path)
    assert _state(engine) == before


def test_wrong_root_or_namespace_is_refused(engine, tmp_path):
    wrong_ns = small_catalogue().replace(ff.M30, "http://example.org/not-fest")
    with pytest.raises(FestFormatError, match="root element"):
        import_catalogue(engine, write(tmp_path / "ns.xml", wrong_ns))
    with pytest.raises(FestFormatError, match="root element"):
        import_catalogue(engine, write(tmp_path / "root.xml", "<Message><FEST/></Message>"))
    with engine.connect() as conn:
        assert version_in_force(conn) is None


def test_entry_without_id_names_its_line(engine, tmp_path):
    text = small_catalogue().replace("<OppfByttegruppe><Id>ID_E1</Id>", "<OppfByttegruppe>")
    with pytest.raises(FestFormatError, match="without an Id") as caught:
        import_catalogue(engine, write(tmp_path / "noid.xml", text))
    assert caught.value.line is not None


def test_unresolvable_references_are_reported_as_warnings_with_counts(engine, tmp_path):
    text = small_catalogue().replace(
        "<RefByttegruppe>ID_G0</RefByttegruppe>", "<RefByttegruppe>ID_MISSING</RefByttegruppe>"
    )
    result = import_catalogue(engine, write(tmp_path / "dangling.xml", text))
    assert result.warnings == [
        "1 unresolvable RefByttegruppe references to Byttegruppe (e.g. ID_MISSING)"
    ]
    with engine.connect() as conn:
        assert version_in_force(conn)["warnings"] == result.warnings


def test_forward_references_resolve(engine, tmp_path):
    # The product (first catalogue) references a strength defined later in KatVirkestoff.
    result = import_catalogue(engine, write(tmp_path / "fest.xml", small_catalogue()))
    assert result.warnings == []


def test_a_full_file_replaces_changed_entries_expires_missing_ones_and_keeps_history(
    engine, tmp_path
):
    v1 = import_catalogue(engine, write(tmp_path / "v1.xml", small_catalogue()))
    text = (
        small_catalogue("2026-02-01T03:00:00")
        .replace(
            ff.substitution_group("ID_E1", "ID_G1", "000001"),
            ff.substitution_group("ID_E1b", "ID_G1", "000099"),
        )
        .replace(ff.substitution_group("ID_E2", "ID_G2", "000002"), "")
    )
    v2 = import_catalogue(engine, write(tmp_path / "v2.xml", text))
    assert v2.version == v1.version + 1
    assert v2.changes["replaced"] == {"Byttegruppe": 1}
    assert v2.changes["expired"] == {"Byttegruppe": 1}
    assert v2.counts["Byttegruppe"] == 2
    entry = schema.fest_entry
    with engine.connect() as conn:
        history = conn.execute(
            select(entry.c.entry_id, entry.c.valid_from, entry.c.valid_to)
            .where(entry.c.domain_id == "ID_G1")
            .order_by(entry.c.valid_from)
        ).all()
        as_of_v1 = conn.scalar(
            select(func.count())
            .select_from(entry)
            .where(entry.c.kind == "Byttegruppe", entry.c.valid_from <= v1.version)
            .where((entry.c.valid_to.is_(None)) | (entry.c.valid_to > v1.version))
        )
    assert history == [("ID_E1", v1.version, v2.version), ("ID_E1b", v2.version, None)]
    assert as_of_v1 == 3


def test_a_full_file_that_drops_most_of_a_catalogue_is_refused_unless_allowed(engine, tmp_path):
    big = small_catalogue(extra=60)
    import_catalogue(engine, write(tmp_path / "big.xml", big))
    before = _state(engine)
    small = write(tmp_path / "small.xml", small_catalogue("2026-02-01T03:00:00"))
    with pytest.raises(FestImportRejected, match="Byttegruppe: 63 -> 3"):
        import_catalogue(engine, small)
    assert _state(engine) == before
    assert import_catalogue(engine, small, allow_shrink=True).counts["Byttegruppe"] == 3


def test_an_older_file_than_the_one_in_force_is_refused_unless_allowed(engine, tmp_path):
    import_catalogue(engine, write(tmp_path / "new.xml", small_catalogue("2026-05-01T03:00:00")))
    old = write(tmp_path / "old.xml", small_catalogue("2026-01-01T03:00:00", extra=1))
    with pytest.raises(FestImportRejected, match="older"):
        import_catalogue(engine, old)
    assert import_catalogue(engine, old, allow_older=True).version == 2


def test_typed_columns_carry_what_the_engine_uses(engine, tmp_path):
    import_catalogue(engine, write(tmp_path / "fest.xml", small_catalogue()))
    drug, ean, info, strength = (
        schema.fest_drug,
        schema.fest_package_ean,
        schema.fest_package_info,
        schema.fest_strength,
    )
    with engine.connect() as conn:
        package = conn.execute(select(drug).where(drug.c.domain_id == "ID_K1")).mappings().one()
        product = conn.execute(select(drug).where(drug.c.domain_id == "ID_P1")).mappings().one()
        assert package["varenr"] == "012345" and package["substitution_group_id"] == "ID_G0"
        assert str(package["substitution_valid_from"]) == "2020-01-01"
        assert (
            conn.scalar(select(ean.c.ean).where(ean.c.entry == package["entry"])) == "7046260123452"
        )
        assert conn.execute(
            select(info.c.product_id, info.c.amount).where(info.c.entry == package["entry"])
        ).one() == ("ID_P1", 20.0)
        assert package["prices"] == [
            {
                "type_code": "4",
                "type_name": "AUP",
                "price": 42.5,
                "currency": "NOK",
                "valid_from": "2026-01-01",
            }
        ]
        assert product["routes"] == [{"code": "53", "name": "Oral bruk"}]
        assert product["can_crush"] == "1" and product["prescription_validity"] == [
            {"duration": "P1Y"}
        ]
        assert conn.execute(
            select(strength.c.value, strength.c.unit, strength.c.substance_id)
        ).one() == (500.0, "mg", "ID_V1")


def test_an_increment_expiring_entries_never_imported_warns_and_expires_nothing(engine, tmp_path):
    import_catalogue(engine, write(tmp_path / "full.xml", small_catalogue()))
    increment = ff.document(
        "2026-02-01T03:00:00",
        {
            "Byttegruppe": [
                ff.expired("Byttegruppe", "ID_NEVER_SEEN"),
                ff.expired("Byttegruppe", "ID_E1"),
            ]
        },
    )
    result = import_catalogue(engine, write(tmp_path / "inc.xml", increment))
    assert result.mode == "incremental"
    assert result.changes["expired"] == {"Byttegruppe": 1}
    assert result.warnings == ["1 expired (Status U) entry ids were never imported; ignored"]
