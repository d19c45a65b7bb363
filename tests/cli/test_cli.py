"""The ``medloop`` command line: help everywhere, JSON contracts, exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medloop.cli import app
from tests.fest import festfiles as ff
from tests.reference import DEMO, xsd_dir

runner = CliRunner()
COUNT_KEYS = {
    "LegemiddelMerkevare",
    "Legemiddelpakning",
    "LegemiddelVirkestoff",
    "Legemiddeldose",
    "Virkestoff",
    "VirkestoffMedStyrke",
    "Interaksjon",
    "InteraksjonIkkeVurdert",
    "Byttegruppe",
    "Refusjonshjemmel",
    "Vilkar",
    "VarselSlv",
    "Kortdose",
    "Handelsvare",
}


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["fest"],
        ["db"],
        ["demo"],
        ["serve"],
        ["token"],
        ["db", "upgrade"],
        ["fest", "import"],
        ["fest", "stats"],
        ["fest", "synth"],
        ["fest", "validate"],
        ["check"],
    ],
)
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _catalogue(tmp_path, hentet="2026-01-01T03:00:00"):
    path = tmp_path / f"fest-{hentet[:10]}.xml"
    path.write_text(
        ff.document(hentet, {"Byttegruppe": [ff.substitution_group("ID_E1", "ID_G1", "000001")]})
    )
    return path


def test_import_json_has_exactly_the_contract_keys(sqlite_url, tmp_path):
    result = runner.invoke(
        app, ["fest", "import", str(_catalogue(tmp_path)), "--db", sqlite_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"version", "hentet_dato", "counts", "seconds"}
    assert payload["version"] == 1 and payload["hentet_dato"] == "2026-01-01T03:00:00"
    assert set(payload["counts"]) == COUNT_KEYS and payload["counts"]["Byttegruppe"] == 1
    assert isinstance(payload["seconds"], float)


def test_stats_json_reports_the_version_in_force(sqlite_url, tmp_path):
    runner.invoke(app, ["fest", "import", str(_catalogue(tmp_path)), "--db", sqlite_url])
    runner.invoke(
        app,
        ["fest", "import", str(_catalogue(tmp_path, "2026-02-01T03:00:00")), "--db", sqlite_url],
    )
    result = runner.invoke(app, ["fest", "stats", "--db", sqlite_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "version": 2,
        "hentet_dato": "2026-02-01T03:00:00",
        "counts": {key: (1 if key == "Byttegruppe" else 0) for key in COUNT_KEYS},
    }


def test_stats_before_any_import_exits_non_zero(sqlite_url):
    result = runner.invoke(app, ["fest", "stats", "--db", sqlite_url])
    assert result.exit_code == 1
    assert "No catalogue imported yet" in result.stderr


def test_bad_input_exits_1_with_file_line_and_column(sqlite_url, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(
        f'<FEST xmlns="{ff.M30}"><HentetDato>2026-01-01T00:00:00</HentetDato><KatVilkar></FEST>'
    )
    result = runner.invoke(app, ["fest", "import", str(bad), "--db", sqlite_url])
    assert result.exit_code == 1
    assert f"{bad}:1:" in result.stderr.replace("\n", "")


def test_refused_import_exits_3(sqlite_url, tmp_path):
    runner.invoke(
        app,
        ["fest", "import", str(_catalogue(tmp_path, "2026-05-01T03:00:00")), "--db", sqlite_url],
    )
    result = runner.invoke(
        app,
        ["fest", "import", str(_catalogue(tmp_path, "2026-01-01T03:00:00")), "--db", sqlite_url],
    )
    assert result.exit_code == 3
    assert "older" in result.stderr


def test_validate_reports_each_schema_violation_with_its_line(tmp_path):
    directory = xsd_dir()
    good = _catalogue(tmp_path)
    assert (
        runner.invoke(app, ["fest", "validate", str(good), "--xsd-dir", str(directory)]).exit_code
        == 0
    )
    bad = tmp_path / "bad.xml"
    bad.write_text(
        good.read_text().replace("<MerknadTilByttbarhet>false</MerknadTilByttbarhet>", "")
    )
    result = runner.invoke(app, ["fest", "validate", str(bad), "--xsd-dir", str(directory)])
    assert result.exit_code == 1
    assert "MerknadTilByttbarhet" in result.stderr and "1 schema violation" in result.stderr


def test_validate_without_schemas_says_where_to_configure_them(tmp_path):
    result = runner.invoke(
        app, ["fest", "validate", str(_catalogue(tmp_path)), "--xsd-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "ER-M30-2014-12-01.xsd" in result.stderr


def test_demo_loads_the_demo_catalogue_and_is_idempotent(sqlite_url):
    if not DEMO.exists():
        pytest.skip("demo catalogue not written yet")
    first = runner.invoke(app, ["demo", "--db", sqlite_url, "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "Demo catalogue imported" in first.stdout and "not a clinical source" in first.stdout
    second = runner.invoke(app, ["demo", "--db", sqlite_url, "--no-serve"])
    assert "already in force" in second.stdout and "already built" in second.stdout
