"""A multidose pharmacy's packing report as uploaded: the JSON the API takes
(``POST /multidose/patients/{id}/packing-reports``, a ``PackReport``) or a CSV file with one
packed line per row, translated into the same ``PackReport`` for ``loop.multidose.
reconcile_packing``. A translation only: it decides nothing about the list.

The CSV (README, "Packing report CSV"): UTF-8 (a byte-order mark is allowed), a header row,
comma- or semicolon-separated (the header's separator is the file's), columns in any order:

| column | required | value |
|---|---|---|
| ``day`` | yes | the bag's day, ``2026-11-23`` or ``23.11.2026`` |
| ``intake`` | yes | the intake time as the production plan names it (``morning``, ``08:00``) |
| ``varenr`` | yes | the packed package's six-digit varenr (leading zeros kept: ``090436``) |
| ``amount`` | yes | how much of it is in the bag, above 0 (``1``, ``0,5`` or ``0.5``) |
| ``unit`` | yes | the amount's unit (``tablett``, ``kapsel``) |
| ``entry_id`` | no | the list entry the line is for (a UUID), when the pharmacy system knows it |

Rows with the same day and intake make one bag, their lines in file order. Every problem found
is reported at once, each with its line and column (1-based; the column is the field's position
in the row) and a stable code; nothing is reconciled while one remains.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from medloop import json_input
from medloop.domain.multidose.reconciliation import PackReport

COLUMNS = ("day", "intake", "varenr", "amount", "unit", "entry_id")
REQUIRED = ("day", "intake", "varenr", "amount", "unit")
MAX_PROBLEMS = 50
"""The most problems one upload reports (a file of the wrong kind would list every row)."""

_VARENR = re.compile(r"\d{6}")
_AMOUNT = re.compile(r"\d+(?:[.,]\d+)?")
_NORWEGIAN_DAY = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an uploaded report. ``code`` is stable (the pages word it in the
    reader's language); ``message`` says it in English. ``line``/``column`` are 1-based and
    ``None`` where they do not apply (JSON is located by ``pointer``)."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    column_name: str | None = None
    pointer: str | None = None

    def located(self, source: str) -> str:
        where = source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.pointer is not None:
            where += f" {self.pointer}"
        return f"{where}: {self.code}: {self.message}"


class PackingReportInvalid(ValueError):
    """An upload that is not a packing report; ``problems`` lists every fault found (at most
    ``MAX_PROBLEMS``)."""

    code = "packing-report-invalid"

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems[:MAX_PROBLEMS])
        super().__init__("\n".join(p.located(source) for p in self.problems))


# -- CSV ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    day: date
    intake: str
    varenr: str
    amount: float
    unit: str
    entry_id: UUID | None


def pack_report_from_csv(
    data: bytes, *, report_id: UUID, period_id: UUID, source: str = "packing-report.csv"
) -> PackReport:
    """The ``PackReport`` of a CSV upload (module docstring), or ``PackingReportInvalid``."""
    text = _decode(data, source)
    header_line, _, _ = text.partition("\n")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    rows: list[_Row] = []
    positions: dict[str, int] = {}
    try:
        for line, fields in _records(reader):
            if not positions:
                positions = _header(fields, line, problems)
                if problems:
                    break
                continue
            if not any(f.strip() for f in fields):
                continue  # a blank line, as spreadsheets write at the end
            row = _row(fields, line, positions, problems)
            if row is not None:
                rows.append(row)
            if len(problems) >= MAX_PROBLEMS:
                break
    except _Unreadable as error:
        problems.append(
            Problem("csv-malformed", f"not readable as CSV: {error.reason}", line=error.line)
        )
    if not positions and not problems:
        problems.append(Problem("csv-empty", "the file is empty: no header row", line=1))
    elif positions and not rows and not problems:
        problems.append(Problem("csv-no-lines", "the file has a header but no packed lines"))
    if problems:
        raise PackingReportInvalid(source, problems)
    return _report(rows, positions, report_id, period_id, source)


def _decode(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise PackingReportInvalid(
            source,
            [
                Problem(
                    "csv-not-utf8",
                    "the file is not UTF-8 text (save it as 'CSV UTF-8')",
                    line=line,
                    column=column,
                )
            ],
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise PackingReportInvalid(
            source, [Problem("csv-not-text", "the file holds a NUL character", line=line)]
        )
    return text


class _Unreadable(Exception):
    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on (a quoted field may span lines)."""
    last = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _Unreadable(last + 1, str(error)) from None
        yield last + 1, fields
        last = reader.line_num


def _header(fields: list[str], line: int, problems: list[Problem]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, raw in enumerate(fields, start=1):
        name = raw.strip().lower()
        if name not in COLUMNS:
            problems.append(
                Problem(
                    "csv-column-unknown",
                    f"unknown column {raw.strip()!r}; the columns are {', '.join(COLUMNS)}",
                    line=line,
                    column=index,
                )
            )
        elif name in positions:
            problems.append(
                Problem(
                    "csv-column-repeated",
                    f"the column {name!r} appears twice",
                    line=line,
                    column=index,
                    column_name=name,
                )
            )
        else:
            positions[name] = index
    for name in REQUIRED:
        if name not in positions:
            problems.append(
                Problem(
                    "csv-column-missing",
                    f"the header has no column {name!r}",
                    line=line,
                    column_name=name,
                )
            )
    return positions


def _row(
    fields: list[str], line: int, positions: dict[str, int], problems: list[Problem]
) -> _Row | None:
    found = len(problems)
    width = max(positions.values())
    if len(fields) != width:
        problems.append(
            Problem(
                "csv-field-count",
                f"{len(fields)} fields where the header has {width}",
                line=line,
                column=min(len(fields), width) + 1 if len(fields) < width else width + 1,
            )
        )
        return None

    def value(name: str) -> str:
        return fields[positions[name] - 1].strip() if name in positions else ""

    def problem(name: str, code: str, message: str) -> None:
        problems.append(Problem(code, message, line=line, column=positions[name], column_name=name))

    day = _day(value("day"))
    if day is None:
        problem(
            "day", "csv-day-invalid", f"{value('day')!r} is not a day (2026-11-23 or 23.11.2026)"
        )
    intake = value("intake")
    if not intake:
        problem("intake", "csv-value-missing", "the intake time is empty")
    varenr = value("varenr")
    if not _VARENR.fullmatch(varenr):
        hint = (
            f"; {varenr.zfill(6)!r} with its leading zeros?"
            if varenr.isdigit() and len(varenr) < 6
            else ""
        )
        problem("varenr", "csv-varenr-invalid", f"{varenr!r} is not a six-digit varenr{hint}")
    raw_amount = value("amount")
    amount = float(raw_amount.replace(",", ".")) if _AMOUNT.fullmatch(raw_amount) else None
    if amount is None or amount <= 0:
        problem("amount", "csv-amount-invalid", f"{raw_amount!r} is not an amount above 0")
    unit = value("unit")
    if not unit:
        problem("unit", "csv-value-missing", "the unit is empty")
    entry_id = None
    if value("entry_id"):
        try:
            entry_id = UUID(value("entry_id"))
        except ValueError:
            problem("entry_id", "csv-entry-id-invalid", f"{value('entry_id')!r} is not an entry id")
    if len(problems) > found:
        return None
    assert day is not None and amount is not None
    return _Row(line, day, intake, varenr, amount, unit, entry_id)


def _day(text: str) -> date | None:
    norwegian = _NORWEGIAN_DAY.fullmatch(text)
    if norwegian:
        text = f"{norwegian[3]}-{norwegian[2]}-{norwegian[1]}"
    elif len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _report(
    rows: list[_Row],
    positions: dict[str, int],
    report_id: UUID,
    period_id: UUID,
    source: str,
) -> PackReport:
    bags: dict[tuple[date, str], list[_Row]] = {}
    for row in rows:
        bags.setdefault((row.day, row.intake), []).append(row)
    grouped = list(bags.items())
    body = {
        "report_id": str(report_id),
        "period_id": str(period_id),
        "bags": [
            {
                "day": day.isoformat(),
                "intake": intake,
                "lines": [
                    {
                        "varenr": r.varenr,
                        "quantity": {"value": r.amount, "unit": r.unit},
                        **({} if r.entry_id is None else {"entry_id": str(r.entry_id)}),
                    }
                    for r in lines
                ],
            }
            for (day, intake), lines in grouped
        ],
    }
    try:
        return PackReport.model_validate(body)
    except ValidationError as error:
        problems = []
        for fault in error.errors():
            loc = fault["loc"]
            line: int | None = None
            column: int | None = None
            name: str | None = None
            if len(loc) >= 2 and loc[0] == "bags" and isinstance(loc[1], int):
                bag_rows = grouped[loc[1]][1]
                line = bag_rows[0].line
                if len(loc) >= 3 and loc[2] in ("day", "intake"):
                    name = str(loc[2])
                elif len(loc) >= 4 and loc[2] == "lines" and isinstance(loc[3], int):
                    line = bag_rows[loc[3]].line
                    field = loc[4] if len(loc) > 4 else None
                    name = {"varenr": "varenr", "entry_id": "entry_id"}.get(str(field))
                    if field == "quantity":
                        name = "unit" if loc[-1] == "unit" else "amount"
                column = positions.get(name) if name else None
            problems.append(
                Problem(
                    "csv-value-invalid",
                    fault["msg"],
                    line=line,
                    column=column,
                    column_name=name,
                )
            )
        raise PackingReportInvalid(source, problems) from None


# -- JSON --------------------------------------------------------------------------------------


def pack_report_from_json(
    data: bytes, *, period_id: UUID, source: str = "packing-report.json"
) -> PackReport:
    """The ``PackReport`` of a JSON upload (the API's body), or ``PackingReportInvalid``: not
    JSON (with line and column), not the shape (with the JSON Pointer of each fault), or a
    report of another period than ``period_id``."""
    try:
        value = json_input.loads(data)
    except ValueError as error:
        line = getattr(error, "lineno", None)
        column = getattr(error, "colno", None)
        message = getattr(error, "msg", str(error))
        raise PackingReportInvalid(
            source, [Problem("json-malformed", message, line=line, column=column)]
        ) from None
    try:
        report = PackReport.model_validate(value)
    except ValidationError as error:
        raise PackingReportInvalid(
            source,
            [
                Problem("json-value-invalid", fault["msg"], pointer=_pointer(fault["loc"]))
                for fault in error.errors()
            ],
        ) from None
    if report.period_id != period_id:
        raise PackingReportInvalid(
            source,
            [
                Problem(
                    "report-other-period",
                    f"the report is for period {report.period_id}, not the period chosen",
                    pointer="/period_id",
                )
            ],
        )
    return report


def _pointer(loc: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in loc)
