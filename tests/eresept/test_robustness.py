"""Whatever bytes arrive, reading ends in a message or a precise refusal, never in any other
exception (which the HTTP layer would turn into a 500)."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medloop.eresept import EreseptError, ReaderConfig, SchemaConfigMissing
from medloop.eresept.reader import read_message
from tests.eresept.messages import EXAMPLES, SHARED_PRESENT, example, needs_shared, read

pytestmark = needs_shared

SOURCES = {name: example(name) for name in EXAMPLES} if SHARED_PRESENT else {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(EXAMPLES)),
    cut=st.floats(min_value=0, max_value=1),
    edits=st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=3)), max_size=3),
)
def test_mutated_messages_are_read_or_refused_precisely(name, cut, edits):
    data = bytearray(SOURCES[name])
    for where, replacement in edits:
        at = int(where * (len(data) - 1))
        data[at : at + len(replacement)] = replacement
    data = bytes(data[: max(1, int(len(data) * (0.5 + cut / 2)))])
    try:
        read(data)
    except EreseptError as exc:
        assert exc.problems and all(p.code and p.message and p.source for p in exc.problems)


def test_a_message_with_no_document_is_refused():
    data = example("M5")
    start, end = data.index(b"<Tilbakekalling"), data.index(b"</Tilbakekalling>") + 17
    try:
        read(data[:start] + data[end:])
    except EreseptError as exc:
        assert exc.code == "content-type-mismatch"
        assert "carries none" in str(exc)
    else:
        raise AssertionError("a message without its document was accepted")


def test_an_unreadable_schema_is_missing_configuration(tmp_path):
    (tmp_path / "felleskomponenter").mkdir()
    (tmp_path / "felleskomponenter" / "MsgHead-v1_2.xsd").write_text("<schema")
    config = ReaderConfig(xsd_dir=tmp_path)
    try:
        read_message(example("M1"), source="m.xml", config=config)
    except SchemaConfigMissing as exc:
        assert "cannot be read" in str(exc)
    else:
        raise AssertionError("an unreadable schema was not reported")


def test_reading_the_m25_1_example_with_validation_is_fast():
    """A 4-entry M25.1 with 4 embedded M1s, every document validated (schemas compiled once)."""
    data = example("M25.1")
    read(data)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        read(data)
        times.append(time.perf_counter() - start)
    times.sort()
    assert times[len(times) // 2] < 0.05, times
