"""Signed checkpoints of the audit chains' heads (medloop.audit_checkpoints): the
``audit-checkpoint`` job writes them outside the database, refuses without a key, and
``medloop audit verify --checkpoints`` proves that nothing before the last one changed or
vanished — a dropped tail, a dropped chain and a re-hashed chain all leave intact chains that
plain ``verify`` accepts. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from medloop.cli import app
from medloop.store.audit import audit_event, record_hash
from tests.store.helpers import OTHER_PATIENT, PATIENT, an_event, append_all, tamper

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def pem_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def signing(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "audit-signing.pem"
    private.write_bytes(pem_private(key))
    public = tmp_path / "audit-signing.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    directory = tmp_path / "checkpoints"
    monkeypatch.setenv("MEDLOOP_AUDIT_SIGNING_KEY_FILE", str(private))
    monkeypatch.setenv("MEDLOOP_AUDIT_CHECKPOINT_DIR", str(directory))
    return {"private": private, "public": public, "dir": directory}


def url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run_job(engine: Engine, now: datetime = NOW):
    return CliRunner().invoke(
        app, ["jobs", "run", "audit-checkpoint", "--db", url(engine), "--now", now.isoformat()]
    )


def verify_cli(engine: Engine, *options: str):
    return CliRunner().invoke(app, ["audit", "verify", "--db", url(engine), "--json", *options])


def checked(engine: Engine, signing: dict[str, Path]) -> dict:
    result = verify_cli(
        engine, "--checkpoints", str(signing["dir"]), "--public-key", str(signing["public"])
    )
    return {"exit": result.exit_code, **json.loads(result.stdout)}


def two_chains(engine: Engine) -> None:
    append_all(engine, [an_event(i) for i in range(10)])
    append_all(engine, [an_event(i, patient=OTHER_PATIENT) for i in range(5)])


def test_the_job_is_listed_and_refuses_clearly_without_a_key_or_a_directory(
    engine, tmp_path, monkeypatch
):
    listed = CliRunner().invoke(app, ["jobs", "list"])
    assert "audit-checkpoint" in listed.output
    monkeypatch.delenv("MEDLOOP_AUDIT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv("MEDLOOP_AUDIT_CHECKPOINT_DIR", str(tmp_path / "cp"))
    two_chains(engine)

    no_key = run_job(engine)

    assert no_key.exit_code == 2
    assert "MEDLOOP_AUDIT_SIGNING_KEY_FILE" in no_key.stderr
    assert not (tmp_path / "cp").exists()

    monkeypatch.delenv("MEDLOOP_AUDIT_CHECKPOINT_DIR")
    key = tmp_path / "k.pem"
    key.write_bytes(pem_private(Ed25519PrivateKey.generate()))
    monkeypatch.setenv("MEDLOOP_AUDIT_SIGNING_KEY_FILE", str(key))
    no_dir = run_job(engine)
    assert no_dir.exit_code == 2 and "MEDLOOP_AUDIT_CHECKPOINT_DIR" in no_dir.stderr


def test_the_job_refuses_a_key_that_is_not_ed25519(engine, signing):
    signing["private"].write_bytes(pem_private(ec.generate_private_key(ec.SECP256R1())))
    result = run_job(engine)
    assert result.exit_code == 2 and "not an Ed25519 key" in result.stderr
    assert not signing["dir"].exists() or not list(signing["dir"].iterdir())


def test_a_signed_checkpoint_of_every_head_verifies_and_a_second_run_changes_nothing(
    engine, signing
):
    two_chains(engine)

    first = run_job(engine)
    second = run_job(engine)

    assert first.exit_code == 0, first.output
    written = json.loads(first.stdout)
    assert written["written"] is True and written["chains"] == 2
    assert json.loads(second.stdout)["written"] is False
    [file] = signing["dir"].iterdir()
    payload = json.loads(file.read_text())["payload"]
    assert payload["heads"][PATIENT]["seq"] == 10 and payload["heads"][OTHER_PATIENT]["seq"] == 5
    assert payload["created_at"] == "2026-12-05T03:00:00.000000Z"
    result = checked(engine, signing)
    assert result["exit"] == 0 and result["problems"] == []
    # Appends after the checkpoint only extend the chains.
    append_all(engine, [an_event(99)])
    assert checked(engine, signing)["exit"] == 0


def test_a_dropped_chain_tail_is_reported_against_the_checkpoint(engine, signing):
    two_chains(engine)
    assert run_job(engine).exit_code == 0

    tamper(engine, f"DELETE FROM audit_event WHERE chain = '{PATIENT}' AND seq > 7")

    assert verify_cli(engine).exit_code == 0  # an intact, shorter chain
    result = checked(engine, signing)
    assert result["exit"] == 1
    [problem] = result["problems"]
    assert (problem["chain"], problem["seq"], problem["problem"]) == (PATIENT, 10, "checkpoint")
    assert problem["found"] == "the chain ends at 7"


def test_a_dropped_chain_is_reported_against_the_checkpoint(engine, signing):
    two_chains(engine)
    assert run_job(engine).exit_code == 0

    tamper(engine, f"DELETE FROM audit_event WHERE chain = '{OTHER_PATIENT}'")

    assert verify_cli(engine).exit_code == 0
    [problem] = checked(engine, signing)["problems"]
    assert (problem["chain"], problem["seq"], problem["found"]) == (
        OTHER_PATIENT,
        5,
        "no such chain",
    )


def test_a_rehashed_chain_is_reported_against_the_checkpoint(engine, signing):
    two_chains(engine)
    assert run_job(engine).exit_code == 0
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(audit_event)
                .where(audit_event.c.chain == PATIENT)
                .order_by(audit_event.c.seq)
            ).mappings()
        ]
    # Change record 3 and re-hash it and every record after it: the chain holds again.
    statements, previous = [], rows[1]["hash"]
    for row in rows[2:]:
        row = {**row, "prev_hash": previous}
        if row["seq"] == 3:
            row["actor"] = "1111111"
        row["hash"] = record_hash(row)
        statements.append(
            f"UPDATE audit_event SET actor = '{row['actor']}', prev_hash = '{row['prev_hash']}', "
            f"hash = '{row['hash']}' WHERE chain = '{PATIENT}' AND seq = {row['seq']}"
        )
        previous = row["hash"]
    tamper(engine, *statements)

    assert verify_cli(engine).exit_code == 0
    result = checked(engine, signing)
    [problem] = result["problems"]
    assert (problem["chain"], problem["seq"], problem["problem"]) == (PATIENT, 10, "checkpoint")
    assert problem["expected"] == rows[-1]["hash"] and problem["found"] == previous


def test_a_changed_forged_or_missing_checkpoint_is_reported(engine, signing, tmp_path):
    two_chains(engine)
    for hours in range(3):
        assert run_job(engine, NOW + timedelta(hours=hours)).exit_code == 0
    files = sorted(signing["dir"].iterdir())

    # A head lowered in the file: the signature no longer holds.
    document = json.loads(files[2].read_text())
    document["payload"]["heads"][PATIENT]["seq"] = 1
    files[2].write_text(json.dumps(document))
    # A checkpoint signed with another key.
    forged = Ed25519PrivateKey.generate()
    other = tmp_path / "other.pem"
    other.write_bytes(pem_private(forged))
    # The middle checkpoint removed.
    files[1].unlink()

    result = checked(engine, signing)
    assert result["exit"] == 1
    problems = {(p["problem"], p["row"]) for p in result["problems"]}
    assert ("checkpoint-file", files[2].name) in problems
    assert ("checkpoint-file", files[0].name) not in problems
    assert not any(p[0] == "checkpoint" for p in problems)

    wrong_key = verify_cli(engine, "--checkpoints", str(signing["dir"]), "--public-key", str(other))
    assert wrong_key.exit_code == 1
    assert {p["problem"] for p in json.loads(wrong_key.stdout)["problems"]} == {"checkpoint-file"}


def test_a_missing_checkpoint_between_two_is_reported(engine, signing):
    two_chains(engine)
    for hours in range(3):
        assert run_job(engine, NOW + timedelta(hours=hours)).exit_code == 0
    files = sorted(signing["dir"].iterdir())
    files[1].unlink()

    [problem] = checked(engine, signing)["problems"]
    assert problem["problem"] == "checkpoint-file" and problem["row"] == files[2].name
    assert "does not follow" in problem["found"]


def test_the_job_refuses_to_sign_a_broken_log(engine, signing):
    two_chains(engine)
    tamper(engine, f"UPDATE audit_event SET actor = 'x' WHERE chain = '{PATIENT}' AND seq = 4")

    result = run_job(engine)

    assert result.exit_code == 3 and "broken link" in result.stderr
    assert not signing["dir"].exists() or not list(signing["dir"].iterdir())


def test_verify_with_checkpoints_needs_a_public_key(engine, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDLOOP_AUDIT_SIGNING_KEY_FILE", raising=False)
    result = verify_cli(engine, "--checkpoints", str(tmp_path))
    assert result.exit_code == 2 and "--public-key" in result.stderr
