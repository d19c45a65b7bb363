"""Structured JSON logs (``structlog``), one object per line on stderr.

Every line carries the time, level, logger, event and, inside a request, the ``request_id`` that
the request's audit record carries too: the log says *that* something happened and where to look;
*who* and *which patient* live only in the audited store (Normen). So no log line may hold a
national id, a name or a drug: call sites log ids of rows and stable codes only, and as a last
guard every run of exactly eleven digits (the shape of a fødselsnummer or D-number) is replaced
before a line is written. ``tests/ops/test_logs.py`` scans the logs of the whole test
suite for national ids and the names the tests use.

The standard library's loggers (uvicorn, APScheduler, SQLAlchemy) go through the same
formatter. ``MEDLOOP_LOG_LEVEL`` sets the level (default ``INFO``), ``MEDLOOP_LOG_FORMAT=console``
renders for a terminal instead of JSON.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import time
from typing import Any

import structlog

__all__ = [
    "bind_request",
    "configure",
    "ensure_configured",
    "formatter",
    "get_logger",
    "info",
    "lean_records",
    "unbind_request",
]

_ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")
REDACTED = "[redacted-11-digits]"


def _redact(value: Any) -> Any:
    """``value`` with every run of exactly eleven digits its written form would hold replaced.

    Strings, integers, floats, mappings (keys too) and lists or tuples are redacted as what
    the renderer writes of them. Any other value (a set, bytes, a UUID, an exception …) is
    written by both renderers as its ``repr``: where that text holds such a run, the value
    becomes its ``repr`` with the run replaced; otherwise it is left as it is."""
    if isinstance(value, str):
        return _ELEVEN_DIGITS.sub(REDACTED, value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return REDACTED if 10**10 <= abs(value) < 10**11 else value
    if isinstance(value, float):
        return REDACTED if _search(repr(value)) is not None else value
    if isinstance(value, dict):
        return {_redact_key(k): _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    written = repr(value)
    if _search(written) is not None:
        return _ELEVEN_DIGITS.sub(REDACTED, written)
    return value


def _redact_key(key: Any) -> Any:
    """A mapping's key as ``_redact`` redacts a value, for the keys JSON writes as text."""
    return _redact(key) if isinstance(key, str | int | float) else key


def redact_national_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: no eleven-digit number leaves the process in a log line, in a
    field's name or in its value, whatever the value's type."""
    return {_redact_key(key): _redact(value) for key, value in event_dict.items()}


_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

_configured = False


def configure(level: str | None = None, fmt: str | None = None, stream: Any = None) -> None:
    """Route structlog and the standard library's logging through one JSON renderer."""
    global _configured
    from medloop.settings import current

    level = (level or current().ops.log_level).upper()
    fmt = fmt or current().ops.log_format
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
    handler.setFormatter(formatter(renderer))
    handler.set_name("medloop")
    _direct.clear()
    if fmt != "console":
        _direct.update(handler=handler, formatter=handler.formatter, renderer=renderer)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "medloop"] + [handler]
    root.setLevel(level)
    # uvicorn installs handlers of its own; let its records reach ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # httpx logs whole URLs at INFO (queries included; medloop serves, it does not call out),
    # alembic a line per migration step on every start.
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


class _StandardError(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (a test runner may swap
    it), not to the stream it was when logging was configured."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def ensure_configured() -> None:
    """Configure once per process (an app built in a test, or by a worker)."""
    if not _configured:
        configure()


def lean_records() -> None:
    """In a serving process: log records without the caller's file, line and function or the
    thread's and process's names, which no line medloop writes carries (the renderer writes the
    event dict: time, level, logger, event, request id and the call's own fields). The standard
    library's documented switches (the logging HOWTO, "Optimization"); they save 5-6 us of the
    34 us an access-log line costs (issue #20). Not called in tests, whose failure reports show
    where a record came from."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def formatter(renderer: Any = None) -> logging.Formatter:
    """The formatter of every log line (JSON unless another ``renderer`` is given)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_national_ids,
            renderer or structlog.processors.JSONRenderer(),
        ],
    )


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


_direct: dict[str, Any] = {}
"""What ``configure`` installed for JSON lines: the handler, its formatter and the renderer."""


def info(name: str, event: str, **fields: Any) -> None:
    """``get_logger(name).info(event, **fields)``, the access log's call (one per request).

    While logging is as ``configure`` left it (JSON lines; the root logger's one handler the one
    it installed, with its formatter, no filters; ``name`` and its parents without handlers or
    filters of their own, INFO enabled), the line is made here and written to that handler:
    the event dict built as structlog builds it (the call's fields, the event, the bound
    context variables, level, logger name, UTC timestamp), redacted and rendered as the same
    processors do (``_json_line``), written as ``StreamHandler.emit`` writes, under the
    handler's lock. The same bytes, without structlog's and logging's records and dispatch
    (40 us -> 8 us a line, issue #20). Otherwise (a test's capture handler, the console format,
    another level) the call goes through structlog and logging as always."""
    handler = _direct.get("handler")
    if handler is None:
        get_logger(name).info(event, **fields)
        return
    logger = _loggers.get(name)
    if logger is None:
        # A logger, once made, is the name's for the life of the process (logging keeps it).
        logger = _loggers[name] = logging.getLogger(name)
    if not _plain(logger, handler):
        get_logger(name).info(event, **fields)
        return
    event_dict: dict[str, Any] = {**fields, "event": event}
    for key, value in structlog.contextvars.get_contextvars().items():
        event_dict.setdefault(key, value)
    event_dict["level"] = "info"
    event_dict["logger"] = name
    event_dict["timestamp"] = _timestamp()
    line = _json_line(event_dict)
    if line is None:
        line = _direct["renderer"](None, "info", redact_national_ids(None, "info", event_dict))
    _write(handler, logger, name, line)


def _write(handler: Any, logger: logging.Logger, name: str, line: str) -> None:
    """``line`` written as ``StreamHandler.emit`` writes it, under the handler's lock (its
    ``flush``: the stream's own, the lock already held, when the handler's is
    ``StreamHandler.flush``)."""
    with handler.lock:
        try:
            stream = handler.stream
            stream.write(line + handler.terminator)
            if type(handler).flush is _STREAM_FLUSH:
                if stream and hasattr(stream, "flush"):
                    stream.flush()
            else:
                handler.flush()
        except Exception:  # noqa: BLE001 - as logging.StreamHandler.emit does
            handler.handleError(logger.makeRecord(name, logging.INFO, "", 0, line, (), None))


_STREAM_FLUSH = logging.StreamHandler.flush
_ACCESS = "medloop.access"


def access(route: str, method: str, status: int, ms: float) -> None:
    """``info("medloop.access", "request", route=route, method=method, status=status, ms=ms)``,
    the access line of every request: the same bytes, made from pieces kept per route, method
    and status (the quoted, redacted field texts of ``_json_line``) when the values are of
    those exact types, the float finite, logging as ``info`` writes directly, and the bound
    context exactly a request id (a ``str``); otherwise ``info`` itself. 5-6 us -> ~2 us of
    the event loop a request (issue #20). ``tests/ops/test_logs.py`` compares both."""
    handler = _direct.get("handler")
    if (
        handler is None
        or type(route) is not str
        or type(method) is not str
        or type(status) is not int
        or type(ms) is not float
        or ms != ms
        or ms in _INFINITIES
    ):
        info(_ACCESS, "request", route=route, method=method, status=status, ms=ms)
        return
    logger = _loggers.get(_ACCESS)
    if logger is None:
        logger = _loggers[_ACCESS] = logging.getLogger(_ACCESS)
    bound = structlog.contextvars.get_contextvars()
    request_id = bound.get("request_id")
    if len(bound) != 1 or type(request_id) is not str or not _plain(logger, handler):
        info(_ACCESS, "request", route=route, method=method, status=status, ms=ms)
        return
    ms_text = _float_text(ms)
    if len(ms_text) > 10 and _search(ms_text) is not None:  # never a request's duration
        info(_ACCESS, "request", route=route, method=method, status=status, ms=ms)
        return
    key = (route, method, status)
    head = _ACCESS_HEADS.get(key)
    if head is None:
        head = (
            f'{{"route": {_str_text(route)}, "method": {_str_text(method)}, '
            f'"status": {_int_json(status)}, "ms": '
        )
        if len(_ACCESS_HEADS) < 1024:  # route templates, methods, statuses: few; and a bound
            _ACCESS_HEADS[key] = head
    line = (
        f'{head}{ms_text}, "event": "request", "request_id": {_str_text(request_id)}, '
        f'"level": "info", "logger": "medloop.access", "timestamp": "{_timestamp()}"}}'
    )
    _write(handler, logger, _ACCESS, line)


_ACCESS_HEADS: dict[tuple[str, str, int], str] = {}


def _str_text(value: str) -> str:
    """A ``str`` value as ``_json_line`` writes it: redacted, quoted. ``_ELEVEN_DIGITS`` (its
    look-behind defeats ``re``'s fast scan: ~1.5 us on a 36-character request id) is asked
    only when an ASCII text has eleven ASCII digits in a row (its bytes with every digit made
    a 0 and every other byte a 1 hold eleven 0s in a row), which any match needs, or when the
    text is not ASCII (``\\d`` is any Unicode decimal digit). Once a line (issue #20)."""
    if (not value.isascii() or _ELEVEN_ZEROS in value.encode().translate(_DIGITS_ZERO)) and _search(
        value
    ) is not None:
        value = _ELEVEN_DIGITS.sub(REDACTED, value)
    return _quoted(value)


_DIGITS_ZERO = bytes(0 if 0x30 <= byte <= 0x39 else 1 for byte in range(256))
_ELEVEN_ZEROS = bytes(11)


def _int_json(value: int) -> str:
    """An ``int`` value as ``_json_line`` writes it."""
    return _quoted(REDACTED) if 10**10 <= abs(value) < 10**11 else _int_text(value)


_second: tuple[int, str] = (-1, "")
"""The last whole second ``_timestamp`` wrote, and its text up to the seconds."""


def _timestamp() -> str:
    """``TimeStamper(fmt="iso", utc=True)``'s value, ``datetime.now(tz=UTC).isoformat()`` with
    ``Z`` for ``+00:00``: ``now`` reads the system clock (``time.time_ns``'s) and floors it to
    microseconds; ``isoformat`` writes the date and time to the second, then ``.ffffff`` unless
    the microseconds are 0. The text to the second is kept for the second it is (one tuple,
    replaced whole: safe from any thread). 1.5 us -> 0.5 us a line (issue #20)."""
    seconds, micro = divmod(time.time_ns() // 1000, 1_000_000)
    known = _second
    if known[0] != seconds:
        known = _stamp_second(seconds)
    if micro:
        return f"{known[1]}.{micro:06d}Z"
    return f"{known[1]}Z"


def _stamp_second(seconds: int) -> tuple[int, str]:
    global _second
    text = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).isoformat()
    _second = (seconds, text.replace("+00:00", ""))
    return _second


_loggers: dict[str, logging.Logger] = {}
_quoted = json.encoder.encode_basestring_ascii  # what json.dumps quotes a str with (C)
_int_text = int.__repr__
_float_text = float.__repr__
_search = _ELEVEN_DIGITS.search


def _json_line(event_dict: dict[str, Any]) -> str | None:
    """``JSONRenderer()(redact_national_ids(event_dict))`` (``json.dumps``: ``", "`` and
    ``": "`` between items, ASCII only) when every key is a ``str`` and every value a ``str``,
    an ``int``, a finite ``float`` or ``None`` (the types exactly, no subclass), written out
    here with the encoder's own pieces: its C quoting of a string and ``int``'s and
    ``float``'s ``repr``; the redaction is ``_redact``'s for these types. ``None`` for
    anything else, and for a key that holds an eleven-digit run (redacted, two keys could
    become one): the caller renders that dict the general way. The access line's fields are
    always of these types: 12 us -> 4 us a line (issue #20).
    ``tests/ops/test_logs.py`` compares both over many dicts."""
    parts = []
    for key, value in event_dict.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if kind is str:
            if _search(value) is not None:
                value = _ELEVEN_DIGITS.sub(REDACTED, value)
            text = _quoted(value)
        elif kind is int:
            text = _quoted(REDACTED) if 10**10 <= abs(value) < 10**11 else _int_text(value)
        elif kind is float:
            if value != value or value in _INFINITIES:
                return None
            text = _float_text(value)
            if len(text) > 10 and _search(text) is not None:
                text = _quoted(REDACTED)
        elif value is None:
            text = "null"
        else:
            return None
        prefix = _KEY_PREFIXES.get(key)
        if prefix is None:
            if _search(key) is not None:
                return None  # a name to redact (two may become one): the general way
            prefix = _quoted(key) + ": "
            if len(_KEY_PREFIXES) < 1024:  # the access line's few keys, and a bound
                _KEY_PREFIXES[key] = prefix
        parts.append(prefix + text)
    return "{" + ", ".join(parts) + "}"


_KEY_PREFIXES: dict[str, str] = {}
"""``'"key": '`` by key, as ``_json_line`` writes each item's start."""


_INFINITIES = (float("inf"), float("-inf"))


def _plain(logger: logging.Logger, handler: logging.Handler) -> bool:
    """Logging is as ``configure`` left it for an INFO line of ``logger`` (see ``info``)."""
    root = logging.root
    if (
        root.handlers != [handler]
        or handler.filters
        or handler.level > logging.INFO
        or handler.formatter is not _direct["formatter"]
        or not logger.isEnabledFor(logging.INFO)
    ):
        return False
    current: logging.Logger | None = logger
    while current is not None and current is not root:
        if current.handlers or current.filters or current.disabled or not current.propagate:
            return False
        current = current.parent
    return True


def bind_request(request_id: str) -> None:
    structlog.contextvars.bind_contextvars(request_id=request_id)


def unbind_request() -> None:
    structlog.contextvars.unbind_contextvars("request_id")
