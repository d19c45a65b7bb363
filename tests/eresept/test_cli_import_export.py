"""``medloop eresept import PATH [--db URL] --json`` and ``medloop eresept export``: the
contract other tools depend on (the receipt's exact keys, the exit codes)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fest.loader import import_catalogue
from medloop import queries
from medloop.cli import app
from medloop.eresept import read_message
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.eresept.importing import PATIENT, counts, reader_config, register, with_demo_drugs
from tests.eresept.messages import XSD, example, needs_shared
from tests.reference import DEMO

pytestmark = needs_shared
runner = (
    CliRunner(mix_stderr=False)
    if "mix_stderr" in CliRunner.__init__.__code__.co_varnames
    else CliRunner()
)
KEYS = {"message_id", "type", "patient", "result", "entries", "reasons"}
ENV = {"MEDLOOP_ERESEPT_XSD_DIR": str(XSD), "MEDLOOP_ERESEPT_TRUST_STORE": ""}


def _db(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    register(engine)
    return url, engine


def _import(tmp_path, url: str, data: bytes, name: str = "msg.xml"):
    path = tmp_path / name
    path.write_bytes(data)
    return runner.invoke(app, ["eresept", "import", str(path), "--db", url, "--json"], env=ENV)


def test_import_prints_exactly_the_receipt_keys_and_exits_0_applied_then_duplicate(tmp_path):
    url, _ = _db(tmp_path)
    first = _import(tmp_path, url, with_demo_drugs(example("M25.1")))
    assert first.exit_code == 0, first.output
    receipt = json.loads(first.stdout)
    assert set(receipt) == KEYS
    assert receipt["type"] == "ERM251" and receipt["patient"] == PATIENT
    assert (receipt["result"], receipt["entries"]) == ("applied", 4)
    again = _import(tmp_path, url, with_demo_drugs(example("M25.1")))
    assert again.exit_code == 0 and json.loads(again.stdout)["result"] == "duplicate"


def test_a_list_for_a_list_with_entries_is_proposed_and_exits_0(tmp_path):
    url, _ = _db(tmp_path)
    assert _import(tmp_path, url, example("M1"), "m1.xml").exit_code == 0
    proposed = _import(tmp_path, url, with_demo_drugs(example("M25.1")))
    assert proposed.exit_code == 0
    assert json.loads(proposed.stdout)["result"] == "proposed"


def test_malformed_input_exits_1_with_line_and_column_on_stderr_and_stores_nothing(tmp_path):
    url, engine = _db(tmp_path)
    before = counts(engine)
    data = example("M25.1")
    result = _import(tmp_path, url, data[: len(data) // 3])
    assert result.exit_code == 1
    assert "msg.xml:" in result.stderr and "malformed-xml" in result.stderr
    line_col = result.stderr.split("msg.xml:", 1)[1].split(":")[:2]
    assert all(part.isdigit() for part in line_col)
    receipt = json.loads(result.stdout)
    assert set(receipt) == KEYS and receipt["result"] == "refused"
    assert counts(engine) == before


def test_a_schema_invalid_message_exits_1(tmp_path):
    url, engine = _db(tmp_path)
    broken = (
        example("M1")
        .replace(b"<MIGversion>", b"<MIGversjon>")
        .replace(b"</MIGversion>", b"</MIGversjon>")
    )
    result = _import(tmp_path, url, broken)
    assert result.exit_code == 1 and "schema-violation" in result.stderr


def test_a_refusal_by_a_domain_rule_exits_3_with_the_refused_receipt(tmp_path):
    url, engine = _db(tmp_path)
    before = counts(engine)
    result = _import(tmp_path, url, example("M5"))  # recalls a prescription we do not hold
    assert result.exit_code == 3
    receipt = json.loads(result.stdout)
    assert set(receipt) == KEYS
    assert receipt["result"] == "refused" and receipt["type"] == "ERM5"
    assert receipt["message_id"] == "19c6afe3-78a5-4bb3-8bec-168117c909dd"
    assert receipt["reasons"][0].startswith("message-not-matched:")
    assert counts(engine) == before


def test_export_prints_the_list_as_one_valid_m25_1_and_a_prescription_as_an_m1(tmp_path):
    url, _ = _db(tmp_path)
    _import(tmp_path, url, with_demo_drugs(example("M25.1")))
    listed = runner.invoke(
        app, ["eresept", "export", "--type", "M25.1", "--patient", PATIENT, "--db", url], env=ENV
    )
    assert listed.exit_code == 0, listed.stderr
    message = read_message(listed.stdout_bytes, source="stdout", config=reader_config())
    assert message.type == "ERM251" and len(message.lists[0].entries) == 3
    prescription_id = message.lists[0].entries[0].prescription_id
    one = runner.invoke(
        app,
        ["eresept", "export", "--type", "M1", "--prescription", prescription_id, "--db", url],
        env=ENV,
    )
    assert one.exit_code == 0, one.stderr
    m1 = read_message(one.stdout_bytes, source="stdout", config=reader_config())
    assert m1.type == "ERM1" and m1.msg_id == prescription_id


def test_export_of_a_patient_we_keep_no_list_for_exits_3(tmp_path):
    url, _ = _db(tmp_path)
    result = runner.invoke(
        app,
        ["eresept", "export", "--type", "M25.1", "--patient", "01019000083", "--db", url],
        env=ENV,
    )
    assert result.exit_code == 3


def test_a_recall_exports_as_a_valid_m5_that_recalls_the_prescription_in_another_database(
    tmp_path,
):
    url, engine = _db(tmp_path)
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    other_url, other = _db(other_folder)
    m25 = with_demo_drugs(example("M25.1"))
    assert _import(tmp_path, url, m25).exit_code == 0
    assert _import(other_folder, other_url, m25).exit_code == 0
    recalled = "f63b9535-5160-4972-b923-168114660619"
    assert _import(tmp_path, url, example("M5"), "m5.xml").exit_code == 0
    out = runner.invoke(
        app, ["eresept", "export", "--type", "M5", "--prescription", recalled, "--db", url], env=ENV
    )
    assert out.exit_code == 0, out.stderr
    message = read_message(out.stdout_bytes, source="m5", config=reader_config())
    assert message.type == "ERM5" and all(d.validation == "valid" for d in message.documents)
    back = _import(other_folder, other_url, out.stdout_bytes, "m5-out.xml")
    assert back.exit_code == 0, back.stderr
    assert json.loads(back.stdout)["result"] == "applied"
    not_recalled = message_id_of_another(m25, recalled)
    refused = runner.invoke(
        app,
        ["eresept", "export", "--type", "M5", "--prescription", not_recalled, "--db", url],
        env=ENV,
    )
    assert refused.exit_code == 3 and "prescription-not-recalled" in refused.stderr


def message_id_of_another(m25: bytes, recalled: str) -> str:
    """A prescription id of the list other than ``recalled`` (one still dispensable)."""
    message = read_message(m25, source="m25", config=reader_config())
    return next(
        e.prescription_id
        for e in message.lists[0].entries
        if e.prescription_id not in (recalled, None) and e.discontinued is None
    )


def test_a_message_whose_sender_names_no_professional_is_refused_on_the_command_line(tmp_path):
    url, engine = _db(tmp_path)
    _import(tmp_path, url, with_demo_drugs(example("M25.1")))
    before = counts(engine)
    result = _import(tmp_path, url, with_demo_drugs(example("M25.2")), "m25.2.xml")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["reasons"][0].startswith("message-without-author:")
    assert counts(engine) == before


def test_an_m10_naming_no_professional_exits_3_from_the_command_line(tmp_path):
    # the M10's envelope names the pharmacy alone and its AnsattId is an employee id, not an
    # HPR number: from the command line nobody is its author (over HTTP the pharmacist is)
    from tests.eresept.dispensing import m10

    url, engine = _db(tmp_path)
    assert _import(tmp_path, url, with_demo_drugs(example("M25.1"))).exit_code == 0
    before = counts(engine)
    for name, data in (("m10.xml", example("M10")), ("m10b.xml", m10())):
        refused = _import(tmp_path, url, data, name)
        assert refused.exit_code == 3
        receipt = json.loads(refused.stdout)
        assert set(receipt) == KEYS
        assert (receipt["type"], receipt["result"]) == ("ERM10", "refused")
        assert receipt["reasons"][0].startswith("message-without-author:")
        assert "AnsattId" in receipt["reasons"][0]
    assert counts(engine) == before


def test_an_m9_12_answer_prints_its_own_type_and_msg_id(tmp_path):
    from tests.eresept.m9 import answer

    url, _ = _db(tmp_path)
    result = _import(tmp_path, url, answer(with_demo_drugs(example("M25.1")), msg_id="m912-1"))
    assert result.exit_code == 0, result.output
    receipt = json.loads(result.stdout)
    assert (receipt["message_id"], receipt["type"], receipt["result"]) == (
        "m912-1",
        "ERM912",
        "applied",
    )


#: How the import's help names each message type the importer takes (the dispatcher's types and
#: the M9.x answers it unwraps).
TYPE_NAMES = {
    "ERM251": "M25.1",
    "ERM1": "M1",
    "ERM5": "M5",
    "ERM10": "M10",
    "ERM252": "M25.2",
    "ERM253": "M25.3",
    "ERM271": "M27.1",
    "ERM912": "M9.12",
    "ERM94": "M9.4",
}


def test_the_import_help_names_every_message_type_the_importer_takes():
    from medloop.eresept.reader import WRAPPER_TYPES
    from medloop.loop.messages import IMPORTED_TYPES

    taken = set(IMPORTED_TYPES) | set(WRAPPER_TYPES)
    assert taken <= set(TYPE_NAMES), f"name the new type(s) here: {taken - set(TYPE_NAMES)}"
    shown = runner.invoke(app, ["eresept", "import", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    assert [TYPE_NAMES[t] for t in sorted(taken) if TYPE_NAMES[t] not in text] == []


def test_outbox_lists_the_answers_due_and_refuses_an_unknown_patient(tmp_path):
    from medloop.loop import multidose
    from medloop.loop.messages import import_message
    from tests.eresept.importing import (
        M25_2_MSG_ID,
        PHARMACY_HER_ID,
        m25_2_from_pharmacy,
        multidose_from_2019,
    )
    from tests.loop.helpers import GP, PHARMACIST, call

    url, engine = _db(tmp_path)
    assert _import(tmp_path, url, with_demo_drugs(example("M25.1"))).exit_code == 0
    with engine.connect() as conn:
        patient_id = queries.find_patient_id(conn, PATIENT)
    multidose_from_2019(engine, patient_id)
    config = reader_config()
    import_message(engine, m25_2_from_pharmacy(), source="m", config=config, call=call(PHARMACIST))
    with engine.connect() as conn:
        (question,) = multidose.pending_proposals(conn, patient_id)
    multidose.reject_proposal(engine, patient_id, question.id, call(GP, reason="nei"))

    listed = runner.invoke(app, ["eresept", "outbox", "--db", url, "--json"], env=ENV)
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["patient"], row["state"], row["decision"]) == (PATIENT, "ready", "rejected")
    assert (row["in_reply_to"], row["receiver"]["her_id"]) == (M25_2_MSG_ID, PHARMACY_HER_ID)
    mine = runner.invoke(app, ["eresept", "outbox", "--patient", PATIENT, "--db", url], env=ENV)
    assert mine.exit_code == 0 and row["msg_id"] in mine.stdout
    unknown = runner.invoke(app, ["eresept", "outbox", "--patient", "01019000083", "--db", url])
    assert unknown.exit_code == 3
