"""The canonical JSON's faster ways (orjson) give exactly the standard library's text and values:
the audit chain's hashes and the idempotency fingerprints are over that text."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC
from enum import Enum, IntEnum, StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medloop.store import audit, canonical_json

STDLIB = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

# Text of every kind: control characters, quotes, backslashes, DEL, line separators, non-ASCII,
# astral characters, lone surrogates (which orjson refuses and the standard library writes).
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),
        st.sampled_from(
            ["\x00", "\x1f", "\x7f", '"', "\\", "\b", "\f", "\n", "\r", "\t", "\u2028", "\ud800"]
        ),
    ),
    max_size=12,
)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-5, -1e-5, 1e-4, 1e-7, 1e15, 1e16, 1e22, 1e-300, 5e-324, -0.0, 0.1]),
)
INTEGERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(),
    st.sampled_from([2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**19, -(10**19)]),
)
LOADED = st.recursive(
    st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=30,
)


def _stdlib(value):
    try:
        return STDLIB.encode(value)
    except (TypeError, ValueError) as error:
        return type(error)


def _ours(write, value):
    try:
        return write(value)
    except (TypeError, ValueError) as error:
        return type(error)


@settings(max_examples=3000)
@given(LOADED)
def test_loads_reads_what_json_loads_reads_from_the_canonical_text(value):
    text = _stdlib(value)
    if not isinstance(text, str):
        return
    expected = json.loads(text)
    found = canonical_json.loads(text)
    # Equal, of the same types throughout, and with the keys in the same order.
    assert repr(found) == repr(expected)
    assert json.dumps(found) == json.dumps(expected)


# Beyond what JSON reads back as: tuples, non-string keys, enums, UUIDs, date-times, sets, NaN.
ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        INTEGERS,
        st.floats(),
        TEXT,
        st.uuids(),
        st.datetimes(),
        st.sampled_from([StrEnum("S", "a b").a, IntEnum("I", "x y").y, Enum("E", "p q").p]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(st.integers(), max_size=2),
        st.dictionaries(
            st.one_of(TEXT, st.integers(), st.booleans(), st.none()), inner, max_size=4
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=3000)
@given(ANY)
def test_round_trip_is_the_standard_librarys_for_any_value(value):
    expected = _stdlib(value)
    if not isinstance(expected, str):
        with pytest.raises(expected):
            canonical_json.round_trip(value)
        return
    text, found = canonical_json.round_trip(value)
    assert text == expected
    assert repr(found) == repr(json.loads(expected))


CLAIM = st.fixed_dictionaries(
    {
        "command": st.text("0123456789abcdef", min_size=32, max_size=32),
        "rows": st.integers(0, 10**6),
        "digest": st.text("0123456789abcdef", min_size=64, max_size=64),
    },
    optional={"records": st.dictionaries(TEXT, TEXT, max_size=2)},
)


@settings(max_examples=3000)
@given(
    detail=st.dictionaries(TEXT, LOADED, max_size=6),
    claim=st.one_of(st.none(), CLAIM),
    texts=st.lists(st.one_of(st.none(), TEXT), min_size=7, max_size=7),
    stamp=st.datetimes(timezones=st.just(UTC)),
)
def test_the_audit_records_cut_is_the_same_text_the_fast_way(detail, claim, texts, stamp):
    """``audit._canonical_parts`` with ``alike`` (orjson) gives the standard library's text
    for every detail ``_validated`` passes and every claim and text fields added to it."""
    names = ("actor", "actor_role", "organisation", "patient", "action", "request_id", "reason")
    event = audit.AuditEvent(**{"actor": "1", "actor_role": "doctor", "action": "a"})
    event = replace(event, **{n: t for n, t in zip(names, texts, strict=True) if t is not None})
    event = replace(event, detail=detail)
    try:
        outcome, stored, alike = audit._validated(event)
    except audit.InvalidAuditEvent:
        return
    if claim is not None:
        stored[audit.attestation.DETAIL_KEY] = claim
    values = audit._unchained_values(event, outcome, stored, stamp)
    assert audit._canonical_parts(values, alike) == audit._canonical_parts(values)


def test_orjson_writes_an_ordinary_detail_alike():
    """The fast ways are taken for a prescribe's detail (floats in it included); a check that
    refused too much would make them pointless, not wrong."""
    detail = {
        "patient_id": str(uuid.uuid4()),
        "list_version": 3,
        "drug": "Simvastatin Fjordfarma Tab 20 mg",
        "alerts": ["dose-not-checked/simvastatin-oral:no-dosage/e56eec9d"],
        "quantity": {"packages": 1.0, "amount": 2.5, "tiny": 0.001},
        "replayed": False,
        "note": 'Ærlig øre 🙂 \n "quoted"',
    }
    text = STDLIB.encode(detail)
    assert canonical_json.written_alike(json.loads(text), text.encode())
    assert not canonical_json.written_alike({"small": 1e-05}, b'{"small":1e-05}')
    assert not canonical_json.written_alike({"id": uuid.UUID(int=1)}, b"")


def test_loads_reads_an_ordinary_detail_with_orjson(monkeypatch):
    text = STDLIB.encode({"a": [1, 2.5, None, True, "x" * 18 + "1234567890"], "n": 10**17 + 12345})
    expected = json.loads(text)

    def refused(*args, **kwargs):
        raise AssertionError("json.loads was called")

    monkeypatch.setattr(canonical_json.json, "loads", refused)
    assert repr(canonical_json.loads(text)) == repr(expected)
