"""Signed checkpoints of the audit chains' heads, kept outside the database.

A hash chain shows that nothing *inside* it changed, but not that its tail was cut off, that a
whole chain was dropped, or that someone with write access re-hashed a chain from some record
on: all of those leave intact chains. A checkpoint pins every chain's head as it was at a
moment, signed, somewhere the database's users cannot write:

- :func:`write_checkpoint` (the ``audit-checkpoint`` job) walks the chains first (it refuses
  to sign a log with a broken link), then writes ``checkpoint-<UTC time>.json`` to
  ``MEDLOOP_AUDIT_CHECKPOINT_DIR``: ``{"payload": {...}, "signature": ..., "algorithm":
  "Ed25519", "key_id": ...}``. The payload (format ``medloop-audit-checkpoint/1``) holds the
  time, every chain's head (``{chain: {"seq": n, "hash": h}}``), the heads digest
  (:func:`medloop.store.audit.heads_digest`) and the SHA-256 of the previous checkpoint's
  payload in the same directory (``previous``; ``null`` for the first). The signature is
  Ed25519 (``cryptography``) over the payload's canonical JSON (sorted keys, no whitespace,
  UTF-8), base64url without padding; ``key_id`` is the SHA-256 of the public key (DER).
- The key is ``MEDLOOP_AUDIT_SIGNING_KEY_FILE``, an Ed25519 private key in PEM (PKCS#8,
  unencrypted; ``openssl genpkey -algorithm ed25519``). With no key, or no directory, the job
  refuses (:class:`CheckpointNotConfigured`): no unsigned checkpoint is ever written.
- :func:`load_checkpoints` reads a directory (or one file), checks every signature with the
  public key and that each checkpoint names its predecessor; ``medloop audit verify
  --checkpoints PATH`` then checks the database against every head of every checkpoint
  (:func:`medloop.store.audit.verify` ``anchors``): record ``seq`` of the chain must still exist
  with the same hash, and the chain walk shows every record before it is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from medloop.store import audit, canonical_json

FORMAT = "medloop-audit-checkpoint/1"
ALGORITHM = "Ed25519"
PREFIX = "checkpoint-"
SUFFIX = ".json"

DIR_VARIABLE = "MEDLOOP_AUDIT_CHECKPOINT_DIR"
KEY_VARIABLE = "MEDLOOP_AUDIT_SIGNING_KEY_FILE"


class CheckpointNotConfigured(RuntimeError):
    """No signing key or no checkpoint directory is configured (or the key is unusable)."""


class CheckpointRefused(RuntimeError):
    """The audit log has broken links: a checkpoint would sign tampered chains."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or whose signature does not hold."""


@dataclass(frozen=True)
class Checkpoint:
    """One verified checkpoint: its file, payload and the SHA-256 of its canonical payload."""

    path: Path
    payload: dict[str, Any]
    digest: str

    @property
    def heads(self) -> dict[str, tuple[int, str]]:
        return {c: (h["seq"], h["hash"]) for c, h in self.payload["heads"].items()}


@dataclass(frozen=True)
class Config:
    directory: Path
    key_file: Path


def config_from_env(environ: Mapping[str, str] | None = None) -> Config:
    """The checkpoint directory and signing key of the process's settings (or of ``environ``),
    or :class:`CheckpointNotConfigured` naming what is missing."""
    from medloop.settings import Settings, current

    found = (current() if environ is None else Settings.from_env(environ=environ)).checkpoints
    given = {DIR_VARIABLE: found.directory, KEY_VARIABLE: found.key_file}
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise CheckpointNotConfigured(
            f"audit checkpoints need {' and '.join(missing)}: no checkpoint is written "
            "unsigned or to an unknown place"
        )
    assert found.directory is not None and found.key_file is not None
    return Config(found.directory, found.key_file)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointNotConfigured(
            f"{KEY_VARIABLE} {path}: not a readable PEM private key without a password ({error})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointNotConfigured(f"{KEY_VARIABLE} {path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (a private key's file gives its public half)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointNotConfigured(f"public key {path}: {error.strerror}") from None
    try:
        key: Any = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as error:
            raise CheckpointNotConfigured(f"{path}: not a PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointNotConfigured(f"{path}: not an Ed25519 key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def write_checkpoint(engine: Engine, now: datetime, config: Config) -> dict[str, Any]:
    """Walk the chains and, when intact, write a signed checkpoint of their heads; returns
    what was written. :class:`CheckpointRefused` when a link is broken."""
    private = load_private_key(config.key_file)
    try:
        config.directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointNotConfigured(
            f"{DIR_VARIABLE} {config.directory}: {error.strerror}"
        ) from None
    with engine.connect() as conn, conn.begin():
        result = audit.verify(conn, rows=False, max_problems=10)
    if not result.ok:
        raise CheckpointRefused(
            f"the audit log has {result.problem_count} broken link(s), the first at event "
            f"{result.broken.seq} of chain {result.broken.chain} ({result.broken.problem}): "
            "no checkpoint signed; run `medloop audit verify`"
        )
    previous = _newest(config.directory)
    payload = {
        "format": FORMAT,
        "created_at": now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "heads": {c: {"seq": seq, "hash": h} for c, (seq, h) in sorted(result.chain_heads.items())},
        "heads_digest": audit.heads_digest({c: h for c, (_s, h) in result.chain_heads.items()}),
        "records": result.records,
        "previous": None if previous is None else previous.digest,
    }
    body = _canonical(payload)
    document = {
        "payload": payload,
        "algorithm": ALGORITHM,
        "key_id": key_id(private.public_key()),
        "signature": _b64(private.sign(body)),
    }
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = config.directory / f"{PREFIX}{stamp}{SUFFIX}"
    if path.exists():  # run twice at the same moment: the second run changes nothing
        return {"checkpoint": str(path), "written": False}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return {
        "checkpoint": str(path),
        "written": True,
        "chains": len(payload["heads"]),
        "records": result.records,
        "heads_digest": payload["heads_digest"],
    }


def load_checkpoints(path: Path, public: Ed25519PublicKey) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in ``path`` (a directory, or one file) whose signatures hold, oldest
    first, and a description of every file that failed (unreadable, bad signature, another
    key) or checkpoint that does not name its predecessor (one removed from the directory)."""
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
        )
    elif path.is_file():
        files = [path]
    else:
        return [], [f"{path}: no such file or directory"]
    found, problems = [], []
    for file in files:
        try:
            found.append(_read(file, public))
        except CheckpointError as error:
            problems.append(str(error))
    found.sort(key=lambda c: c.payload["created_at"])
    if path.is_dir():
        for before, after in zip(found, found[1:], strict=False):
            if after.payload.get("previous") != before.digest:
                problems.append(
                    f"{after.path.name}: does not follow {before.path.name} (a checkpoint "
                    "between them is missing, or one was replaced)"
                )
    return found, problems


def anchors_of(checkpoints: list[Checkpoint]) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(chain, seq) -> [(hash, checkpoint file name)] for every head of every checkpoint."""
    anchors: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for checkpoint in checkpoints:
        for chain, (seq, digest) in checkpoint.heads.items():
            anchors.setdefault((chain, seq), []).append((digest, checkpoint.path.name))
    return anchors


def _read(file: Path, public: Ed25519PublicKey) -> Checkpoint:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        payload = document["payload"]
        signature = _unb64(document["signature"])
        if document.get("algorithm") != ALGORITHM or payload.get("format") != FORMAT:
            raise CheckpointError(f"{file.name}: not a {FORMAT} checkpoint signed {ALGORITHM}")
        heads = payload["heads"]
        if not isinstance(heads, dict) or not all(
            isinstance(h, dict) and isinstance(h.get("seq"), int) and isinstance(h.get("hash"), str)
            for h in heads.values()
        ):
            raise CheckpointError(f"{file.name}: heads are not {{chain: {{seq, hash}}}}")
        if not isinstance(payload.get("created_at"), str):
            raise CheckpointError(f"{file.name}: no created_at")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{file.name}: unreadable checkpoint ({error})") from None
    body = _canonical(payload)
    try:
        public.verify(signature, body)
    except InvalidSignature:
        raise CheckpointError(
            f"{file.name}: the signature does not hold (changed, or signed with another key)"
        ) from None
    return Checkpoint(file, payload, hashlib.sha256(body).hexdigest())


def _newest(directory: Path) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` by name (its payload digest is the next one's
    ``previous``), unverified: the writer trusts its own directory."""
    files = sorted(
        p for p in directory.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
    )
    if not files:
        return None
    payload = json.loads(files[-1].read_text(encoding="utf-8"))["payload"]
    body = _canonical(payload)
    return Checkpoint(files[-1], payload, hashlib.sha256(body).hexdigest())


def _canonical(value: Any) -> bytes:
    return canonical_json.dumps(value).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("the signature is not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
