"""Packing reports as uploaded: the CSV with its documented columns and the API's JSON become
the same ``PackReport``; every fault is named with its line and column (CSV) or JSON Pointer,
all at once, and nothing is half-read."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from medloop.packing_report_input import (
    PackingReportInvalid,
    pack_report_from_csv,
    pack_report_from_json,
)

REPORT = uuid.UUID("6f1c1c39-2a54-4d0e-9d53-0a4f3c7e1d11")
PERIOD = uuid.UUID("0b2d9a4e-5d43-4a8e-8b8f-4c6b8c0d7e22")
ENTRY = uuid.UUID("1a2b3c4d-0000-4000-8000-000000000001")

CSV = b"""day,intake,varenr,amount,unit
2026-11-23,morning,090436,1,tablett
2026-11-23,morning,090368,0.5,tablett
2026-11-23,evening,090436,1,tablett
"""


def problems_of(data: bytes) -> list[tuple[str, int | None, int | None]]:
    with pytest.raises(PackingReportInvalid) as refused:
        pack_report_from_csv(data, report_id=REPORT, period_id=PERIOD)
    return [(p.code, p.line, p.column) for p in refused.value.problems]


def test_rows_with_the_same_day_and_intake_make_one_bag_with_lines_in_file_order():
    report = pack_report_from_csv(CSV, report_id=REPORT, period_id=PERIOD)

    assert (report.report_id, report.period_id) == (REPORT, PERIOD)
    assert [(b.day, b.intake, [line.varenr for line in b.lines]) for b in report.bags] == [
        (date(2026, 11, 23), "morning", ["090436", "090368"]),
        (date(2026, 11, 23), "evening", ["090436"]),
    ]
    assert report.bags[0].lines[1].quantity.value == 0.5
    assert report.bags[0].lines[1].quantity.unit == "tablett"


def test_the_csv_and_the_apis_json_give_the_same_report():
    body = (
        b'{"report_id": "%s", "period_id": "%s", "bags": ['
        b'{"day": "2026-11-23", "intake": "morning", "lines": ['
        b'{"varenr": "090436", "quantity": {"value": 1.0, "unit": "tablett"}},'
        b'{"varenr": "090368", "quantity": {"value": 0.5, "unit": "tablett"}}]},'
        b'{"day": "2026-11-23", "intake": "evening", "lines": ['
        b'{"varenr": "090436", "quantity": {"value": 1.0, "unit": "tablett"}}]}]}'
    ) % (str(REPORT).encode(), str(PERIOD).encode())

    assert pack_report_from_json(body, period_id=PERIOD) == pack_report_from_csv(
        CSV, report_id=REPORT, period_id=PERIOD
    )


def test_a_spreadsheet_export_with_semicolons_commas_bom_and_crlf_is_read():
    data = (
        "\ufeffUnit;Varenr;Day;Intake;Amount;Entry_ID\r\n"
        f"tablett;090436;23.11.2026;08:00;1,5;{ENTRY}\r\n"
        ";;;;;\r\n"
    ).encode()

    (bag,) = pack_report_from_csv(data, report_id=REPORT, period_id=PERIOD).bags
    (line,) = bag.lines
    assert (bag.day, bag.intake) == (date(2026, 11, 23), "08:00")
    assert (line.varenr, line.quantity.value, line.entry_id) == ("090436", 1.5, ENTRY)


def test_every_bad_value_is_named_with_its_line_and_column_at_once():
    data = b"""day,intake,varenr,amount,unit,entry_id
2026-11-31,morning,090436,1,tablett,
2026-11-23,,90436,0,tablett,
2026-11-23,morning,090436,abc,,not-a-uuid
"""
    assert problems_of(data) == [
        ("csv-day-invalid", 2, 1),
        ("csv-value-missing", 3, 2),
        ("csv-varenr-invalid", 3, 3),
        ("csv-amount-invalid", 3, 4),
        ("csv-amount-invalid", 4, 4),
        ("csv-value-missing", 4, 5),
        ("csv-entry-id-invalid", 4, 6),
    ]


def test_a_varenr_that_lost_its_leading_zero_is_refused_with_a_hint_not_guessed():
    with pytest.raises(PackingReportInvalid) as refused:
        pack_report_from_csv(
            b"day,intake,varenr,amount,unit\n2026-11-23,morning,90436,1,tablett\n",
            report_id=REPORT,
            period_id=PERIOD,
            source="mai.csv",
        )
    (problem,) = refused.value.problems
    assert "'090436' with its leading zeros?" in problem.message
    assert str(refused.value).startswith("mai.csv:2:3: csv-varenr-invalid:")


def test_a_header_with_unknown_repeated_or_missing_columns_is_refused():
    assert problems_of(b"day,intake,varenr,antall,day\n") == [
        ("csv-column-unknown", 1, 4),
        ("csv-column-repeated", 1, 5),
        ("csv-column-missing", 1, None),
        ("csv-column-missing", 1, None),
    ]


def test_a_row_with_too_few_or_too_many_fields_is_refused_at_its_line():
    data = CSV + b"2026-11-24,morning,090436\n2026-11-24,morning,090436,1,tablett,x\n"
    assert problems_of(data) == [("csv-field-count", 5, 4), ("csv-field-count", 6, 6)]


def test_a_quoted_field_over_two_lines_does_not_shift_the_lines_reported_after_it():
    data = (
        b"day,intake,varenr,amount,unit\n"
        b'2026-11-23,"mor\nning",090436,1,tablett\n'
        b"2026-13-01,morning,090436,1,tablett\n"
    )
    assert problems_of(data) == [("csv-day-invalid", 4, 1)]


def test_files_that_are_not_a_csv_report_are_refused_by_what_is_wrong():
    assert problems_of(b"") == [("csv-empty", 1, None)]
    assert problems_of(b"day,intake,varenr,amount,unit\n") == [("csv-no-lines", None, None)]
    assert problems_of(b"day,intake,varenr,amount,unit\n2026-11-23,m\xf8rning,090436,1,x\n") == [
        ("csv-not-utf8", 2, 13)
    ]
    assert problems_of(b'day,intake,varenr,amount,unit\n2026-11-23,"morning,0\n') == [
        ("csv-malformed", 2, None)
    ]


def test_a_bag_with_more_lines_than_a_report_may_hold_is_refused_at_the_offending_row():
    rows = b"".join(b"2026-11-23,morning,090436,1,tablett\n" for _ in range(1001))
    assert problems_of(b"day,intake,varenr,amount,unit\n" + rows) == [
        ("csv-value-invalid", 2, None)
    ]


def test_json_that_is_malformed_misshapen_or_for_another_period_is_refused_precisely():
    with pytest.raises(PackingReportInvalid) as malformed:
        pack_report_from_json(b'{"report_id":\n  nope}', period_id=PERIOD)
    (problem,) = malformed.value.problems
    assert (problem.code, problem.line) == ("json-malformed", 2)

    body = b'{"report_id": "%s", "period_id": "%s", "bags": [{"day": "2026-11-23", "lines": []}]}'
    with pytest.raises(PackingReportInvalid) as misshapen:
        pack_report_from_json(body % (str(REPORT).encode(), str(PERIOD).encode()), period_id=PERIOD)
    assert [(p.code, p.pointer) for p in misshapen.value.problems] == [
        ("json-value-invalid", "/bags/0/intake")
    ]

    with pytest.raises(PackingReportInvalid) as other:
        pack_report_from_json(
            body.replace(b'"lines"', b'"intake": "morning", "lines"')
            % (str(REPORT).encode(), str(uuid.uuid4()).encode()),
            period_id=PERIOD,
        )
    assert [p.code for p in other.value.problems] == ["report-other-period"]


def test_the_readmes_csv_example_is_a_valid_report():
    import re

    from tests.reference import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```csv\n(.*?)```", readme, re.S).group(1)
    (bag_morning, bag_evening) = pack_report_from_csv(
        example.encode(), report_id=REPORT, period_id=PERIOD
    ).bags
    assert (bag_morning.intake, bag_evening.lines[0].quantity.value) == ("morning", 0.5)
