"""Structured logs: one JSON object per line, the request id the audit record carries, and no
national id or name in any line (Normen)."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re
from contextlib import contextmanager

import pytest
import structlog
from sqlalchemy import text

from medloop.ops import logs
from tests import log_capture
from tests.api.helpers import NATIONAL_ID, OTHER_NATIONAL_ID
from tests.log_capture import leaks


@pytest.fixture
def lines():
    """What the JSON handler writes, line by line, during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def _read_the_list_and_see_its_access_line(world, lines, request_id: str) -> None:
    """GET the patient's list with ``request_id``: the access logger writes exactly one line,
    every field in it (its duration and time whatever they were)."""
    response = world.get(f"/patients/{world.patient_id}/list", **{"X-Request-ID": request_id})
    assert response.status_code == 200
    access = [line for line in lines() if line.get("logger") == "medloop.access"]
    assert access == [
        {
            "route": "/patients/{patient_id}/list",
            "method": "GET",
            "status": 200,
            "ms": access[0]["ms"],
            "event": "request",
            "request_id": request_id,
            "level": "info",
            "logger": "medloop.access",
            "timestamp": access[0]["timestamp"],
        }
    ]


def test_each_request_logs_one_json_line_with_the_audited_request_id(world, lines):
    _read_the_list_and_see_its_access_line(world, lines, "req-log-1")
    with world.engine.connect() as conn:
        audited = conn.execute(
            text("SELECT count(*) FROM audit_event WHERE request_id = 'req-log-1'")
        ).scalar()
    assert audited == 1


def test_a_serving_process_s_lean_log_records_keep_every_field_of_the_access_line(
    world, lines, monkeypatch
):
    # What medloop serve's processes switch off (logs.lean_records), restored after the test.
    for switch in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, getattr(logging, switch))
    logs.lean_records()
    _read_the_list_and_see_its_access_line(world, lines, "req-log-2")


def test_a_lookup_by_national_id_logs_the_route_template_not_the_query(world, lines):
    assert world.get(f"/patients?national_id={NATIONAL_ID}").status_code == 200
    written = json.dumps(lines())
    assert NATIONAL_ID not in written
    assert '"route": "/patients"' in written


def test_the_last_guard_redacts_eleven_digit_numbers_in_any_field(lines):
    deliberate = len(log_capture.RECORDS)
    logs.get_logger("medloop.test").warning(
        "oops", detail=f"patient {NATIONAL_ID}", value=int(OTHER_NATIONAL_ID)
    )
    logging.getLogger("other.library").warning("found %s", NATIONAL_ID)
    del log_capture.RECORDS[deliberate:]  # logged on purpose: not for the suite's scan
    written = lines()
    assert [line["detail"] for line in written if "detail" in line] == [f"patient {logs.REDACTED}"]
    assert NATIONAL_ID not in json.dumps(written) and OTHER_NATIONAL_ID not in json.dumps(written)


def test_the_last_guard_redacts_a_run_in_any_value_type_and_in_field_names(lines):
    """Whatever the value's type, the written line holds no run of exactly eleven digits: a
    float, a set, bytes, an exception, an object written as its ``repr``, a mapping's keys
    (nested or the event's own field names), a tuple; values without such a run are written
    as before (a set as its ``repr``, a float as itself)."""

    class Holder:
        def __repr__(self) -> str:
            return f"Holder(patient={NATIONAL_ID})"

    deliberate = len(log_capture.RECORDS)
    logs.get_logger("medloop.test").warning(
        "odd values",
        a_float=float(OTHER_NATIONAL_ID),
        small_float=float(f"0.{NATIONAL_ID}"),
        a_set={NATIONAL_ID},
        some_bytes=NATIONAL_ID.encode(),
        an_error=ValueError(f"no patient {NATIONAL_ID}"),
        an_object=Holder(),
        nested={NATIONAL_ID: {"inner": (int(OTHER_NATIONAL_ID),)}},
        plain_set={"a"},
        plain_float=1.5,
        **{f"field_{NATIONAL_ID}": "named after a patient"},
    )
    del log_capture.RECORDS[deliberate:]  # logged on purpose: not for the suite's scan
    [line] = [line for line in lines() if line.get("event") == "odd values"]
    written = json.dumps(line)
    assert NATIONAL_ID not in written and OTHER_NATIONAL_ID not in written
    assert logs._ELEVEN_DIGITS.search(written) is None
    assert line["a_float"] == logs.REDACTED and line["small_float"] == logs.REDACTED
    assert line["an_error"] == f"ValueError('no patient {logs.REDACTED}')"
    assert line["an_object"] == f"Holder(patient={logs.REDACTED})"
    assert line["nested"] == {logs.REDACTED: {"inner": [logs.REDACTED]}}
    assert line[f"field_{logs.REDACTED}"] == "named after a patient"
    assert line["plain_set"] == "{'a'}" and line["plain_float"] == 1.5


# -- the whole suite's logs ---------------------------------------------------------------------


def test_the_scan_finds_a_national_id_or_a_name_in_a_record():
    assert leaks([f"{{'event': 'x', 'id': '{NATIONAL_ID}'}}"])
    # a request id whose last group happens to hold a checksum-valid eleven-digit run
    assert not leaks(["{'request_id': 'e71b7cfd-7b40-401e-9c4f-27096921468b'}"])
    request_id = "e71b7cfd-7b40-401e-9c4f-27096921468b"
    assert leaks([f"{{'request_id': '{request_id}', 'nid': {NATIONAL_ID}}}"])
    assert leaks(["{'event': 'read by Kari Nordmann'}"])
    assert not leaks(["{'event': 'request', 'route': '/patients/{patient_id}/list'}"])
    # a family name (Ingrid Berg's) stands as a word of its own wherever it is logged ...
    assert leaks(["{'event': 'admitted Berg'}", "{'who': 'Berg, Ingrid'}"]) == [
        "{'event': 'admitted Berg'}",
        "{'who': 'Berg, Ingrid'}",
    ]
    assert leaks(["{'who': 'Åse Berg'}"])
    # ... not inside a random token: the OpenID Connect mock logged this nonce in one CI run
    assert not leaks(["POST /oauth2/authorize?state=h4ZOX33b&nonce=nzJH7mAQ2SWBergY3I0qMQFT"])


@pytest.mark.last
def test_no_log_record_of_the_whole_test_suite_holds_a_national_id_or_a_name(world):
    # Run last (see tests/conftest.py): every record the suite emitted was captured raw,
    # before the formatter's redaction. Some traffic of its own, so that it scans something
    # when run alone: a lookup by national id, a read, a refusal.
    world.get(f"/patients?national_id={NATIONAL_ID}")
    world.get(f"/patients/{world.patient_id}/list")
    world.post(f"/patients/{world.patient_id}/prescriptions", {"bad": True})
    assert log_capture.RECORDS
    assert leaks(log_capture.RECORDS) == []


def test_under_xdist_the_controller_fails_the_run_on_any_workers_leak(tmp_path, monkeypatch):
    # Each worker reports its share of the suite's records; one leaking worker is enough.
    monkeypatch.setattr(log_capture, "RECORDS", ["{'event': 'request'}"])
    log_capture.report(tmp_path, "gw0")
    assert log_capture.verdict(tmp_path) is None
    monkeypatch.setattr(log_capture, "RECORDS", [f"{{'nid': '{NATIONAL_ID}'}}"])
    log_capture.report(tmp_path, "gw1")
    assert "1 log record(s) hold a national id" in log_capture.verdict(tmp_path)


def test_under_xdist_a_missing_share_is_a_failure_not_a_pass(tmp_path):
    assert log_capture.verdict(tmp_path) == "no worker reported its captured log records"


@pytest.fixture
def configured_alone():
    """Logging as ``medloop serve`` configures it (``logs.configure``) writing to a buffer; the
    test session's configuration restored after the test. Inside the test, ``_alone()`` makes
    its handler the root logger's only one, as in a serving process (pytest adds its own
    capture handlers while a test runs)."""
    root = logging.getLogger()
    kept = root.handlers[:]
    stream = io.StringIO()
    try:
        logs.configure(level="INFO", fmt="json", stream=stream)
        yield stream
    finally:
        logs.configure()
        root.handlers = [h for h in kept if h.get_name() != "medloop"] + [
            h for h in root.handlers if h.get_name() == "medloop"
        ]


@contextmanager
def _alone():
    root = logging.getLogger()
    kept = root.handlers[:]
    root.handlers = [h for h in kept if h.get_name() == "medloop"]
    try:
        yield
    finally:
        root.handlers = kept


_STAMP = re.compile(r'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"')


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_a_line_written_directly_is_the_line_structlog_and_logging_write(configured_alone):
    """``logs.info`` (the access log's call) makes the line itself while logging is as
    ``configure`` left it: byte for byte the line of the structlog call, but for its moment:
    the same fields in the same order, the bound request id, the redaction, the fallback
    rendering of a value JSON does not know."""
    fields = {
        "route": "/patients/{patient_id}/list",
        "method": "GET",
        "status": 200,
        "ms": 1.25,
        "note": "fnr 12345678901",
        "odd": _Opaque(),
    }
    logs.bind_request("req-direct-1")
    try:
        with _alone():
            handler = logs._direct["handler"]
            assert logs._plain(logging.getLogger("medloop.access"), handler)
            logs.info("medloop.access", "request", **fields)
            logs.get_logger("medloop.access").info("request", **fields)
    finally:
        logs.unbind_request()
    direct, through = configured_alone.getvalue().splitlines()
    assert _STAMP.sub("T", direct) == _STAMP.sub("T", through)
    assert _STAMP.search(direct) and _STAMP.search(through)
    assert list(json.loads(direct)) == [
        "route", "method", "status", "ms", "note", "odd",
        "event", "request_id", "level", "logger", "timestamp",
    ]  # fmt: skip
    assert "12345678901" not in direct


def test_another_handler_or_level_sends_the_line_through_logging(configured_alone):
    """A handler the test (or an operator) added, a level above INFO, the console format: the
    line goes through structlog and logging, so every handler sees its record."""
    seen: list[logging.LogRecord] = []

    class Seeing(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    extra = Seeing()
    root = logging.getLogger()
    with _alone():
        root.addHandler(extra)
        logs.info("medloop.access", "request", route="/x", status=200)
        root.removeHandler(extra)
    assert len(seen) == 1 and seen[0].msg["route"] == "/x"
    assert len(configured_alone.getvalue().splitlines()) == 1
    access = logging.getLogger("medloop.access")
    access.setLevel(logging.WARNING)
    try:
        with _alone():
            logs.info("medloop.access", "request", route="/y", status=200)
    finally:
        access.setLevel(logging.NOTSET)
    assert len(configured_alone.getvalue().splitlines()) == 1
    logs.configure(level="INFO", fmt="console", stream=configured_alone)
    assert "handler" not in logs._direct
    with _alone():
        logs.info("medloop.access", "request", route="/z", status=200)
    last = configured_alone.getvalue().splitlines()[-1]
    assert "/z" in last and not last.startswith("{")


def test_the_access_line_s_own_json_is_the_renderer_s_json_for_every_dict_it_takes():
    """``logs._json_line`` writes the redacted event dict out itself for the access line: for
    every dict of str, int, finite float and None values it is byte for byte what the JSON
    renderer writes after the redaction (quotes, escapes, non-ASCII, control characters,
    eleven-digit runs in strings and ints, big and negative numbers, float forms), and it
    declines (``None``) every dict it would not write the same way."""
    import random

    import structlog

    render = structlog.processors.JSONRenderer()

    def expected(event: dict) -> str:
        return render(None, "info", logs.redact_national_ids(None, "info", event))

    pieces = [
        "", "a", '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ø", "😀", "\u2028",
        "12345678901", "1234567890", "123456789012", "x12345678901y", "{patient_id}", " ",
        "GET", "/patients/{patient_id}/list", "a1b2c3",
    ]  # fmt: skip
    numbers = [
        0, 1, -1, 200, 10**10 - 1, 10**10, 12345678901, 10**11 - 1, 10**11, -(10**10),
        -12345678901, 2**70, -(2**70),
    ]  # fmt: skip
    floats = [0.0, -0.0, 1.25, 0.1, 1e16, 1e-7, 123456.78, 3.0, 1e300, 5e-324, 12345678901.0]
    chance = random.Random(20)
    checked = declined_for_a_key = 0
    for _ in range(3000):
        event: dict = {}
        for n in range(chance.randint(0, 9)):
            kind = chance.randrange(4)
            if kind == 0:
                value: object = "".join(chance.choices(pieces, k=chance.randint(0, 4)))
            elif kind == 1:
                value = chance.choice(numbers)
            elif kind == 2:
                value = chance.choice(floats) * chance.choice((1, -1, 0.5))
            else:
                value = None
            key = "".join(chance.choices(pieces, k=chance.randint(0, 2))) + str(n)
            event[key] = value
        line = logs._json_line(event)
        if line is None:  # a key to redact: left to the renderer (two keys may become one)
            assert any(logs._ELEVEN_DIGITS.search(key) for key in event), event
            declined_for_a_key += 1
        else:
            assert line == expected(event), event
            checked += 1
    assert checked > 1500 and declined_for_a_key > 0
    for declined in (
        {"ok": 1, "flag": True},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {"list": [1, 2]},
        {"nested": {"a": 1}},
        {"odd": _Opaque()},
        {1: "int key"},
        {"sub": type("Text", (str,), {})("x")},
        {"12345678901": 1},
        {"a12345678901": "x", "b": 2},
    ):
        assert logs._json_line(declined) is None


def test_the_access_line_from_its_pieces_is_the_line_info_writes(configured_alone, monkeypatch):
    """``logs.access`` (the access line, once a request) writes what ``logs.info`` writes for
    the same fields, byte for byte, at the same moment: random routes, methods, statuses,
    milliseconds and request ids (eleven-digit runs, quotes, escapes, non-ASCII among them),
    repeated so the kept pieces are used; and it hands any other case to ``info`` (another
    context bound, a value of another type, a float that is not finite)."""
    import random

    moment = [1_765_000_000_123_456_000]
    monkeypatch.setattr(logs.time, "time_ns", lambda: moment[0])
    pieces = [
        "", "a", '"', "\\", "/", "\n", "é", "😀", "12345678901", "123456789012", "{patient_id}",
        "GET", "POST", "/patients/{patient_id}/list", "unmatched",
    ]  # fmt: skip
    chance = random.Random(12)

    def piece() -> str:
        return "".join(chance.choices(pieces, k=chance.randint(0, 3)))

    routes = [piece() for _ in range(12)]
    checked = 0
    with _alone():
        for n in range(1500):
            moment[0] += chance.choice((1, 999, 10**6, 10**9, 1000 * chance.randrange(10**6)))
            if n % 7 == 0:
                moment[0] -= moment[0] % 10**9  # a whole second: no fraction written
            route, method = chance.choice(routes), chance.choice(("GET", "POST", piece()))
            status = chance.choice((200, 201, 304, 404, 500, 12345678901, -1))
            ms = chance.choice((0.0, 1.25, 0.1, 123456.78, 12345678901.0, 5e-324))
            logs.bind_request(chance.choice(("req-1", piece(), "x12345678901y")))
            try:
                logs.access(route, method, status, ms)
                logs.info(
                    "medloop.access", "request", route=route, method=method, status=status, ms=ms
                )
            finally:
                logs.unbind_request()
            checked += 1
        for other in (
            (("a", "GET", 200, float("nan"))),
            ("a", "GET", True, 1.0),
            ("a", "GET", 200, 1),
        ):
            logs.bind_request("req-2")
            try:
                logs.access(*other)
                route, method, status, ms = other
                logs.info(
                    "medloop.access", "request", route=route, method=method, status=status, ms=ms
                )
            finally:
                logs.unbind_request()
        structlog.contextvars.bind_contextvars(request_id="req-3", tenant="t")
        try:
            logs.access("/x", "GET", 200, 1.0)
            logs.info("medloop.access", "request", route="/x", method="GET", status=200, ms=1.0)
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "tenant")
    lines = configured_alone.getvalue().splitlines()
    assert len(lines) == 2 * (checked + 4)
    for ours, theirs in zip(lines[::2], lines[1::2], strict=True):
        assert ours == theirs
    stamps = [json.loads(line)["timestamp"] for line in lines]
    assert any("." in stamp for stamp in stamps) and any("." not in stamp for stamp in stamps)


def test_the_timestamp_is_datetime_s_iso_text_of_the_clock_floored_to_microseconds(monkeypatch):
    """``logs._timestamp`` for clock readings across seconds, days and years, whole seconds
    and fractions: ``datetime.now(tz=UTC)``'s ``isoformat`` (the clock floored to
    microseconds), ``Z`` for ``+00:00``."""
    import random

    chance = random.Random(7)
    for _ in range(5000):
        ns = chance.choice((0, 1, 999, 1000, 10**9 - 1)) + chance.randrange(4 * 10**18)
        if chance.random() < 0.2:
            ns -= ns % 1000  # a whole microsecond
        if chance.random() < 0.1:
            ns -= ns % 10**9  # a whole second
        monkeypatch.setattr(logs.time, "time_ns", lambda ns=ns: ns)
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        expected = (epoch + datetime.timedelta(microseconds=ns // 1000)).isoformat()
        assert logs._timestamp() == expected.replace("+00:00", "Z"), ns


def test_a_text_is_searched_for_eleven_digits_only_when_it_may_hold_them():
    """``_str_text`` asks ``_ELEVEN_DIGITS`` only when an ASCII text has eleven ASCII digits in a
    row, or is not ASCII: its answer is the redaction's for every text (runs of 10, 11 and 12
    digits, at either end, between letters and hyphens, Unicode digits, request ids)."""
    import random

    rng = random.Random(20)
    pieces = ["0", "7", "9", "a", "F", "-", " ", "\u0663", "\u00e6", "\u00b2", '"', "\\"]
    texts = ["", "12345678901", "123456789012", "1234567890", "a12345678901", "12345678901b"]
    texts += ["7eb3ff93-62d8-4cc9-8237-88f8a04420e6", "12345678-1234-4234-8234-a12345678901"]
    texts += ["\u0661" * 11, "1" * 5 + "\u0662" * 6, "x" + "9" * 11 + "\u00e6"]
    for _ in range(4000):
        run = "".join(rng.choice("0123456789") for _ in range(rng.choice((9, 10, 11, 12, 13))))
        parts = [rng.choice(pieces) for _ in range(rng.randrange(8))]
        parts.insert(rng.randrange(len(parts) + 1), run)
        texts.append("".join(parts))
    texts += [str(uuid) for uuid in (__import__("uuid").uuid4() for _ in range(2000))]
    redacted = 0
    for text_ in texts:
        expected = text_
        if logs._ELEVEN_DIGITS.search(text_) is not None:
            expected = logs._ELEVEN_DIGITS.sub(logs.REDACTED, text_)
            redacted += 1
        assert logs._str_text(text_) == json.dumps(expected), text_
    assert redacted > 500  # the runs of exactly eleven digits were found
