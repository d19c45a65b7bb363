"""Every path that appends patient data stamps its rows and has them claimed by an audit record
in the same transaction: scenarios of the other test modules (multidose tasks, proposals,
urgent packs, deadline flags; discharges, corrections and missed doses; CDS feedback), each
followed by ``verify`` with the rows checked, on SQLite and PostgreSQL (list reconciliations
and annulled dispenses: tests/loop/test_loop_changes.py, which verifies the log itself). A
writer that forgot to stamp would show as ``unattested-row``, one whose rows no audit record
claims as ``unclaimed-rows``.

The scenarios are other modules' tests, run here by name (``importlib``): the one place a
test module is loaded by another, as a scenario and not as a library of builders
(tests/test_architecture.py forbids importing them)."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import Engine, func, select

from fest.schema import metadata
from medloop.api.cds import FEST_VARENR
from medloop.store.audit import verify
from tests.api.helpers import draft, hook, make_world, prescribe_body
from tests.loop.helpers import KLARITROMYCIN, SIMVASTATIN_28

SCENARIOS = [
    (
        "tests.loop.multidose.test_multidose_responsibility_and_jobs",
        "test_a_prescriber_closes_a_task_once_with_a_note",
        ["multidose_task", "multidose_task_resolution", "multidose_reconciliation"],
    ),
    (
        "tests.loop.multidose.test_multidose_responsibility_and_jobs",
        "test_flag_deadlines_flags_unplanned_changes_once_per_list_version",
        ["multidose_deadline_flag"],
    ),
    (
        "tests.loop.multidose.test_multidose_cycle",
        "test_an_urgent_pack_brings_a_change_after_the_deadline_into_the_period",
        ["multidose_urgent_pack"],
    ),
    (
        "tests.loop.multidose.test_multidose_proposals",
        "test_a_new_entry_proposal_accepted_is_prescribed_into_multidose",
        ["multidose_proposal", "multidose_proposal_decision"],
    ),
    (
        "tests.loop.administration.test_charting",
        "test_a_charted_dose_cannot_be_charted_twice_until_the_first_is_entered_in_error",
        ["administration", "administration_error"],
    ),
    (
        "tests.loop.administration.test_charting",
        "test_a_dose_marked_missed_can_still_be_charted_as_given_late",
        ["administration"],
    ),
    (
        "tests.loop.administration.test_planning",
        "test_nothing_is_planned_or_missed_after_discharge",
        ["discharge"],
    ),
    (
        "tests.eresept.test_outbox",
        "test_only_the_deciding_doctors_organisation_reads_and_marks_the_answer_once",
        ["outbox_message", "outbox_sent"],
    ),
]


def counts(engine: Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(select(func.count()).select_from(metadata.tables[t])).scalar()
            for t in tables
        }


def verified_clean(engine: Engine):
    with engine.connect() as conn, conn.begin():
        result = verify(conn)
    assert result.problems == () and result.ok, [p.as_json() for p in result.problems]
    return result


@pytest.mark.parametrize(
    ("module", "name", "tables"),
    SCENARIOS,
    ids=[s[1].removeprefix("test_")[:50] for s in SCENARIOS],
)
def test_the_rows_of_every_writing_path_are_attested(engine, module, name, tables):
    getattr(importlib.import_module(module), name)(engine)

    assert all(counts(engine, tables).values()), counts(engine, tables)
    verified_clean(engine)


def test_cds_cards_and_feedback_are_attested(engine):
    world = make_world(engine)
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).status_code == 201
    patient = str(world.patient_id)
    request = hook("order-sign", patient, draft("rx1", FEST_VARENR, KLARITROMYCIN, patient))
    card = world.post("/cds-services/medloop-order-sign", request).json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "kort"},
                "outcomeTimestamp": "2026-11-20T09:05:00Z",
            }
        ]
    }
    assert world.post("/cds-services/medloop-order-sign/feedback", feedback).status_code == 200

    assert all(counts(engine, ["cds_card", "cds_feedback"]).values())
    verified_clean(engine)
