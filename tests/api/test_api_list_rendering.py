"""A patient's list body is rendered once per state (revision), catalogue version and set of
visible entries, and kept with the cached state (issue #20): reads of an unchanged list render
nothing again, and whatever changes the body (a command, time passing) renders it afresh."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from medloop import queries
from medloop.domain.entry import DISCONTINUED_VISIBLE_FOR
from tests.api.helpers import PATIENT_TOKEN, make_world, prescribe_body
from tests.loop.helpers import SIMVASTATIN_28


@pytest.fixture
def rendered(monkeypatch):
    """How many times the open alerts were rendered (once per body rendered)."""
    calls = {"n": 0}
    original = queries.open_alerts

    def counted(conn, patient_id):
        calls["n"] += 1
        return original(conn, patient_id)

    monkeypatch.setattr(queries, "open_alerts", counted)
    return calls


def _list(world, **headers):
    return world.get(f"/patients/{world.patient_id}/list", **headers)


def test_reads_of_an_unchanged_list_render_it_once_and_answer_the_same_bytes(world, rendered):
    assert world.write(
        f"/patients/{world.patient_id}/prescriptions", prescribe_body(SIMVASTATIN_28)
    ).is_success
    first = _list(world)
    before = rendered["n"]
    again = _list(world)
    own = world.get("/me/list", token=PATIENT_TOKEN)
    assert rendered["n"] == before  # neither the GP's second read nor the patient's rendered
    assert first.status_code == again.status_code == own.status_code == 200
    assert first.content == again.content == own.content
    assert first.headers["ETag"] == again.headers["ETag"] == '"1"'
    assert first.headers["content-type"] == "application/json"
    assert _list(world, **{"If-None-Match": '"1"'}).status_code == 304


def test_a_command_renders_the_list_afresh(world, rendered):
    assert orjson.loads(_list(world).content)["entries"] == []
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).is_success
    after = orjson.loads(_list(world).content)
    assert [e["id"] for e in after["entries"]] == [body["entry_id"]]
    assert after["list_version"] == 1
    assert [a["kind"] for a in after["open_alerts"]] == ["dose-not-checked"]


def test_an_entry_discontinued_long_ago_drops_out_without_a_command(world, rendered):
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).is_success
    entry = f"/patients/{world.patient_id}/list/entries/{body['entry_id']}"
    assert world.write(f"{entry}/discontinue", {"code": "A"}).is_success
    shown = orjson.loads(_list(world).content)
    assert [e["status"] for e in shown["entries"]] == ["discontinued"]
    world.clock.at += DISCONTINUED_VISIBLE_FOR + timedelta(days=1)
    later = _list(world)
    assert later.headers["ETag"] == '"2"'  # the same list version …
    assert orjson.loads(later.content)["entries"] == []  # … rendered for what is visible now


def test_the_rendered_body_is_the_one_the_stored_rows_give(engine, monkeypatch):
    """With the state cache checked against a fresh read of the tables (its test setting),
    a cached rendering is still served only for the state it was rendered from."""
    from medloop.store import state_cache

    monkeypatch.setattr(state_cache, "VERIFY", True)
    world = make_world(engine)
    body = prescribe_body(SIMVASTATIN_28)
    assert world.write(f"/patients/{world.patient_id}/prescriptions", body).is_success
    assert _list(world).content == _list(world).content
    assert [e["id"] for e in orjson.loads(_list(world).content)["entries"]] == [body["entry_id"]]
