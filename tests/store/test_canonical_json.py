"""The canonical JSON's faster way (orjson) gives exactly the standard library's text, value read
back and errors: the audit chain's hashes and the idempotency fingerprints are over that text."""

from __future__ import annotations

import json
import marshal
import random
import struct
import uuid
from dataclasses import dataclass, replace
from datetime import UTC
from enum import Enum, IntEnum, StrEnum

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medloop.store import audit, canonical_json

STDLIB = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

# Text of every kind: control characters, quotes, backslashes, DEL, line separators, non-ASCII,
# astral characters, lone surrogates (which orjson refuses and the standard library writes), and
# what the small-float check looks for ("e-", "0.0000") inside strings.
TEXT = st.lists(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from(
            ["\x00", "\x1f", "\x7f", '"', "\\", "\b", "\f", "\n", "\r", "\t", "\u2028", "\ud800"]
        ),
        st.sampled_from(["e-", "1e-5", ",2e-7", "0.0000", ":", "-", "["]),
    ),
    max_size=8,
).map("".join)
FLOATS = st.one_of(
    st.floats(),  # NaN and the infinities too: refused
    st.sampled_from([1e-5, -1e-5, 1e-4, 9.99e-5, 1e-7, 1e15, 1e16, 1e22, 1e-300, 5e-324, -0.0]),
)
INTEGERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(),
    st.sampled_from([2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**19, -(10**19)]),
)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=30,
)


class Plain(Enum):
    P = "p"


class Sneaky(Enum):
    """An enum that says it equals its value: orjson writes the value, which reads back equal
    to it, while the standard library refuses an enum (only ``marshal`` tells them apart)."""

    A = "a"

    def __eq__(self, other):
        return other == "a" or other is self

    __hash__ = Enum.__hash__


@dataclass
class Point:
    x: int


class Text(str):
    pass


# Beyond JSON's own values: tuples, non-string keys, enums, UUIDs, date-times, sets, bytes,
# dataclasses, subclasses of str and dict, fragments.
ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        INTEGERS,
        FLOATS,
        TEXT,
        st.uuids(),
        st.datetimes(),
        st.dates(),
        st.binary(max_size=3),
        st.sampled_from(
            [
                StrEnum("S", "a b").a,
                IntEnum("I", "x y").y,
                Plain.P,
                Sneaky.A,
                Point(1),
                Text("t"),
                orjson.Fragment(b"1"),
                1 + 2j,
            ]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.frozensets(st.integers(), max_size=2),
        st.dictionaries(TEXT, inner, max_size=4).map(lambda d: type("D", (dict,), {})(d)),
        st.dictionaries(
            st.one_of(TEXT, st.integers(), st.booleans(), st.none()), inner, max_size=4
        ),
    ),
    max_leaves=20,
)


def _expected(value):
    try:
        return STDLIB.encode(value)
    except (TypeError, ValueError) as error:
        return type(error)


@settings(max_examples=750)
@given(st.one_of(JSONISH, ANY))
def test_round_trip_is_the_standard_librarys(value):
    expected = _expected(value)
    if not isinstance(expected, str):
        with pytest.raises(expected):
            canonical_json.round_trip(value)
        return
    text, loaded, alike = canonical_json.round_trip(value)
    assert text == expected
    # Equal, of the same types throughout, and with the keys in the same order.
    assert repr(loaded) == repr(json.loads(expected))
    if alike:
        assert orjson.dumps(loaded, option=orjson.OPT_SORT_KEYS).decode() == expected


@settings(max_examples=750)
@given(st.one_of(JSONISH, ANY))
def test_fast_dumps_is_the_standard_librarys_text_encoded(value):
    expected = _expected(value)
    if isinstance(expected, str):
        try:
            expected = expected.encode()
        except UnicodeEncodeError as error:  # a lone surrogate: as request_fingerprint raised
            expected = type(error)
    if isinstance(expected, bytes):
        assert canonical_json.fast_dumps(value) == expected
    else:
        with pytest.raises(expected):
            canonical_json.fast_dumps(value)


def test_every_float_is_written_as_repr_or_taken_the_slow_way():
    """orjson's float text differs from ``repr`` only where the check looks (below 1e-4): every
    power of ten, their neighbours, and 50 000 random bit patterns, alone and in containers."""
    found = random.Random(20)
    floats = [10.0**e for e in range(-323, 309)]
    floats += [f * m for f in floats[:400] for m in (0.999999, 1.000001, 9.87654321)]
    floats += [
        struct.unpack("<d", found.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(50_000)
    ]
    for number in floats:
        if number != number or number in (float("inf"), float("-inf")):
            continue
        for value in (number, -number, [number], {"k": -number}):
            assert canonical_json.fast_dumps(value) == _expected(value).encode(), value


CLAIM = st.fixed_dictionaries(
    {
        "command": st.text("0123456789abcdef", min_size=32, max_size=32),
        "rows": st.integers(0, 10**6),
        "digest": st.text("0123456789abcdef", min_size=64, max_size=64),
    },
    optional={"records": st.dictionaries(TEXT, TEXT, max_size=2)},
)


@settings(max_examples=1500)
@given(
    detail=st.dictionaries(TEXT, st.one_of(JSONISH, ANY), max_size=6),
    claim=st.one_of(st.none(), CLAIM),
    texts=st.lists(st.one_of(st.none(), TEXT), min_size=7, max_size=7),
    stamp=st.datetimes(timezones=st.just(UTC)),
)
def test_the_audit_records_cut_is_the_same_text_the_fast_way(detail, claim, texts, stamp):
    """``audit._canonical_parts`` with ``alike`` (orjson) gives the standard library's text for
    every detail ``_validated`` passes, with a claim and any text fields."""
    names = ("actor", "actor_role", "organisation", "patient", "action", "request_id", "reason")
    event = audit.AuditEvent(actor="1", actor_role="doctor", action="a", detail=detail)
    event = replace(event, **{n: t for n, t in zip(names, texts, strict=True) if t is not None})
    try:
        outcome, stored, alike = audit._validated(event)
    except audit.InvalidAuditEvent:
        return
    if claim is not None:
        stored[audit.attestation.DETAIL_KEY] = claim
    values = audit._unchained_values(event, outcome, stored, stamp)
    assert audit._canonical_parts(values, alike) == audit._canonical_parts(values)


def test_an_ordinary_prescribe_takes_the_fast_way(monkeypatch):
    """A prescribe's fingerprinted request, response and audit detail (UUIDs, floats, an alert
    key with "e-" in it) are written by orjson: a check that refused too much would make the
    fast way pointless, not wrong."""
    request = {
        "action": "prescribe",
        "patient_id": "60252edb-cccf-4c5e-9b70-c150488d2f78",
        "based_on": 0,
        "overrides": {},
        "request": {
            "drug": {"fest_id": None, "varenr": "090436"},
            "entry_id": "e56eec9d-6bb7-4bf6-9d49-f0ea07c643ee",
            "quantity": {"amount": 2.5, "packages": 1.0, "tiny": 0.001, "big": 1e22},
            "note": 'Ærlig øre 🙂 \n "quoted" dose-not-checked 3e-4',
        },
    }
    expected = STDLIB.encode(request)

    def refused(*args, **kwargs):
        raise AssertionError("the standard library's way was taken")

    monkeypatch.setattr(canonical_json, "dumps", refused)
    assert canonical_json.fast_dumps(request) == expected.encode()
    text, loaded, alike = canonical_json.round_trip(request)
    assert (text, loaded, alike) == (expected, json.loads(expected), True)


@pytest.mark.parametrize(
    "value",
    [
        {"n": float("nan")},
        {"n": float("inf")},
        {"n": 1e-5},
        [-2e-9],
        {"id": uuid.UUID(int=1)},
        {"e": Plain.P},
        {"e": [Sneaky.A]},
        (1, 2),
        {"k": Text("t")},
    ],
)
def test_what_orjson_would_write_otherwise_takes_the_slow_way(value):
    assert canonical_json._written(value) is None


# -- the texts at hand handed to store.batch instead of encoding the values again (issue #20) ---


@settings(max_examples=750)
@given(st.one_of(JSONISH, ANY))
def test_the_written_text_of_a_round_trip_is_what_batch_writes_of_the_value_read_back(value):
    """``round_trip_written``'s text (when orjson wrote it) is the stored response's and the
    audit detail's JSON as ``store.batch`` would write the value read back."""
    from medloop.store import batch, idempotency  # noqa: PLC0415

    try:
        text, loaded, written = canonical_json.round_trip_written(value)
    except (TypeError, ValueError):
        return
    assert (text, loaded, written is not None) == canonical_json.round_trip(value)
    if written is not None:
        assert written == batch._dumps(loaded)
    if type(value) is dict:
        stored, sent = idempotency._as_stored("scope", value)
        assert repr(stored) == repr(loaded)
        assert sent == written


@settings(max_examples=750)
@given(
    detail=st.dictionaries(TEXT, st.one_of(JSONISH, ANY), max_size=6),
    claim=st.one_of(st.none(), CLAIM),
)
def test_the_audit_detail_sent_with_its_claim_is_what_batch_writes_of_it(detail, claim):
    """``audit.append`` sends the detail's text made of orjson's canonical text and the claim
    (``_detail_sent``): the bytes ``store.batch`` writes of the detail with the claim added."""
    from medloop.store import batch  # noqa: PLC0415

    event = audit.AuditEvent(actor="1", actor_role="doctor", action="a", detail=detail)
    try:
        _outcome, written, stored = audit._validated_written(event)
    except audit.InvalidAuditEvent:
        return
    if written is None:
        return
    if claim is not None:
        stored[audit.attestation.DETAIL_KEY] = claim
    sent = audit._detail_sent(written, claim)
    if sent is None:  # a claim orjson refuses: batch encodes the detail, as before
        with pytest.raises(TypeError):
            orjson.dumps(claim)
        return
    assert sent["detail"] == batch._dumps(stored)


# -- the small-float check written out, and the round trip without the text as ``str`` (#20) ----


@settings(max_examples=750)
@given(st.one_of(JSONISH, ANY))
def test_the_written_out_small_float_check_refuses_what_small_float_in_does(value):
    """``_written`` looks through the text for a small float itself: it takes orjson's text
    exactly when ``marshal`` and orjson take the value, ``_small_float_in`` finds none and
    the value reads back equal."""
    try:
        marshal.dumps(value)
        text = orjson.dumps(value, option=canonical_json._OPTIONS)
    except (TypeError, ValueError):
        assert canonical_json._written(value) is None
        return
    expected = None
    if not canonical_json._small_float_in(text) and orjson.loads(text) == value:
        expected = (text, orjson.loads(text))
    assert canonical_json._written(value) == expected


@pytest.mark.parametrize(
    "text",
    [
        b"[1e-5]",
        b'{"a":-2.5e-7}',
        b'["3e-4a","x"]',
        b'{"id":"1234567e-89"}',
        b"[1,2e-9]",
        b"[0.00001]",
    ],
)
def test_small_float_in_on_texts_with_and_without_a_small_float(text):
    found = canonical_json._small_float_in(text)
    assert found == (text not in (b'["3e-4a","x"]', b'{"id":"1234567e-89"}'))


@settings(max_examples=750)
@given(detail=st.dictionaries(TEXT, st.one_of(JSONISH, ANY), max_size=6))
def test_the_audit_detail_and_the_stored_response_are_the_round_trips(detail):
    """``audit._validated_written`` and ``idempotency._as_stored`` take orjson's text and the
    value read back without ``round_trip_written``: the same value, text and refusal."""
    from medloop.store import idempotency  # noqa: PLC0415

    try:
        text, loaded, written = canonical_json.round_trip_written(dict(detail))
    except (TypeError, ValueError):
        refused = True
    else:
        refused = False
        try:
            text.encode()
        except UnicodeEncodeError:
            refused = True
    event = audit.AuditEvent(actor="1", actor_role="doctor", action="a", detail=detail)
    try:
        _outcome, sent, stored = audit._validated_written(event)
    except audit.InvalidAuditEvent:
        assert refused
    else:
        assert not refused
        assert (repr(stored), sent) == (repr(loaded), written)
    try:
        stored, sent = idempotency._as_stored("scope", detail)
    except TypeError:
        with pytest.raises((TypeError, ValueError)):
            canonical_json.round_trip_written(dict(detail))
    else:
        assert (repr(stored), sent) == (repr(loaded), written)
