"""``medloop eresept validate PATH``: exit 0 valid (type, MsgId, each document), 1 invalid
or malformed (every violation with its line on stderr), 2 missing configuration."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medloop.cli import app
from tests.eresept.messages import (
    EXAMPLES,
    MESSAGES,
    XSD,
    embedded_m1s,
    example,
    line_of,
    needs_shared,
    replace_embedded,
)

runner = CliRunner()


def validate(path, *extra, env=None):
    environment = {"MEDLOOP_ERESEPT_XSD_DIR": str(XSD), "MEDLOOP_ERESEPT_TRUST_STORE": ""}
    environment.update(env or {})
    return runner.invoke(app, ["eresept", "validate", str(path), *extra], env=environment)


def test_the_eresept_group_has_help():
    result = runner.invoke(app, ["eresept", "validate", "--help"])
    assert result.exit_code == 0
    assert "Exit 0 valid, 1 invalid or malformed, 2 missing configuration" in " ".join(
        result.output.split()
    )


@needs_shared
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_official_example_validates(name):
    result = validate(MESSAGES / EXAMPLES[name])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


@needs_shared
def test_valid_prints_the_type_the_msgid_and_each_embedded_document():
    result = validate(MESSAGES / EXAMPLES["M25.1"])
    lines = result.stdout.splitlines()
    assert lines[0].endswith(
        "valid: ERM251 (Varer i bruk) MsgId 36638174-088b-498c-9908-168116c13f53"
    )
    assert (
        "  M25.1 <LegemidlerIBruk> at MsgHead/Document/RefDoc/Content/LegemidlerIBruk "
        "(line 88): valid" in lines
    )
    embedded = [line for line in lines if line.startswith("    M1 <ReseptDokLegemiddel>")]
    assert len(embedded) == 4
    assert "EnkeltoppforingLIB[4]/ReseptDokLegemiddelB64 (line 191): valid" in embedded[3]
    assert any(
        "signature at MsgHead/Signature (line 202): present, not verified (no trust store)" in line
        for line in lines
    )


@needs_shared
def test_a_document_without_a_published_schema_is_said_to_be_not_validated():
    result = validate(MESSAGES / EXAMPLES["M27.1"])
    assert result.exit_code == 0
    assert "valid envelope, 1 document(s) not schema-validated" in result.stdout
    assert "not validated: no official schema for M27.1" in result.stdout


@needs_shared
def test_an_invalid_message_exits_1_with_every_violation_and_its_line_on_stderr(tmp_path):
    data = example("M25.1")
    m1 = embedded_m1s(data)[2].replace(
        b"<Reiterasjon>0</Reiterasjon>", b"<Reiterasjon>zero</Reiterasjon>"
    )
    bad = replace_embedded(data, 2, m1).replace(b"<MIGversion>v1.2 2006-05-24", b"<MIGversion>v0")
    path = tmp_path / "bad.xml"
    path.write_bytes(bad)
    result = validate(path)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{path}:{line_of(bad, b'<MIGversion>v0')}:")
    assert (
        f"{path} [MsgHead/Document/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[3]/"
        "ReseptDokLegemiddelB64]:"
        f"{line_of(m1, b'<Reiterasjon>zero')}:" in result.stderr
    )
    assert errors[-1] == f"{path}: invalid: 2 problem(s)"
    assert result.stdout == ""


@needs_shared
def test_malformed_input_exits_1_with_line_and_column(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_bytes(example("M1")[:500])
    result = validate(path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:")
    assert "malformed-xml" in result.stderr


def test_no_xsd_folder_is_missing_configuration_exit_2(tmp_path):
    path = tmp_path / "m.xml"
    path.write_bytes(b'<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"/>')
    result = validate(path, env={"MEDLOOP_ERESEPT_XSD_DIR": str(tmp_path / "nowhere")})
    assert result.exit_code == 2
    assert "MEDLOOP_ERESEPT_XSD_DIR" in result.stderr


def test_a_missing_file_exits_1(tmp_path):
    result = validate(tmp_path / "absent.xml")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_the_reading_layer_holds_no_business_rules_and_no_storage():
    """medloop.eresept reads messages; the loop, the store and the API are not its business."""
    forbidden = {
        "medloop.loop",
        "medloop.store",
        "medloop.api",
        "medloop.domain",
        "sqlalchemy",
        "fastapi",
    }
    package = Path(__file__).resolve().parents[2] / "medloop" / "eresept"
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found |= {
                (path.name, n)
                for n in names
                if any(n == f or n.startswith(f + ".") for f in forbidden)
            }
    assert found == set()
