"""Every log record the test suite emits, kept raw (before the formatter's last-guard
redaction) so that ``tests/ops/test_logs.py`` can prove no call site logs a national id
or a name. Installed on the root logger for the whole session by ``tests/conftest.py``."""

from __future__ import annotations

import logging

RECORDS: list[str] = []


class Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        parts = [repr(record.msg), repr(record.args)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
            parts.append(logging.Formatter().formatException(record.exc_info))
        RECORDS.append(" ".join(parts))


def install() -> None:
    from medloop.ops import logs

    logs.configure()
    handler = Capture(level=logging.DEBUG)
    handler.set_name("medloop-test-capture")
    logging.getLogger().addHandler(handler)
