"""The GP's timeline picture is drawn once per state of the timeline (SQLite and PostgreSQL):
an unchanged timeline is served from the process's cache without vl-convert, and a new
charting or a new dispense draws it again with the new event on it."""

from __future__ import annotations

import re

import pytest

from medloop.pages import timeline as page_timeline
from tests.pages.gp_helpers import as_person, dispense_simvastatin, resident
from tests.pages.helpers import bedside, chart_given, chart_link

LEVOTYROKSIN_EAN = "7046260906068"


@pytest.fixture
def drawings(monkeypatch) -> list[int]:
    """Counts the pictures drawn by vl-convert (through the page's ``render_timeline``)."""
    page_timeline.DRAWN.clear()
    counted: list[int] = []
    draw = page_timeline.render_timeline

    def counting(*args, **kwargs):
        counted.append(1)
        return draw(*args, **kwargs)

    monkeypatch.setattr(page_timeline, "render_timeline", counting)
    yield counted
    page_timeline.DRAWN.clear()


def _rows(html: str) -> list[str]:
    body = html[html.index('<table id="timeline-table"') :]
    return re.findall(r"<tr><td>", body)


def test_an_unchanged_timeline_is_not_drawn_again(client, pages_world, drawings):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 0)
    path = f"/app/gp/patients/{patient_id}/timeline"
    first = client.get(path)
    again = client.get(path)
    assert first.status_code == again.status_code == 200
    assert len(drawings) == 1
    assert again.text.count("<svg") == first.text.count("<svg")
    # another window or another language is another picture
    assert client.get(path, params={"days": 30}).status_code == 200
    assert len(drawings) == 2
    client.cookies.set("medloop_lang", "en", domain="testserver.local", path="/")
    english = client.get(path)
    assert english.status_code == 200
    assert len(drawings) == 3 and "Medication timeline" in english.text


def test_a_new_charting_draws_the_timeline_again_with_the_dose_on_it(client, pages_world, drawings):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 2)
    path = f"/app/gp/patients/{patient_id}/timeline"
    before = client.get(path).text
    assert len(drawings) == 1

    as_person(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    charted = chart_given(client, chart_link(html, "Levotyroksin"), LEVOTYROKSIN_EAN)
    assert charted.status_code == 200 and "Lagret: Levotyroksin" in charted.text

    as_person(client, "gp")
    after = client.get(path).text
    assert len(drawings) == 2
    assert len(_rows(after)) == len(_rows(before)) + 1
    assert after.count("<td>Gitt</td>") == before.count("<td>Gitt</td>") + 1


def test_a_new_dispense_draws_the_timeline_again_with_the_dispense_on_it(
    client, pages_world, drawings
):
    as_person(client, "gp")
    _, patient_id = resident(pages_world.world, 1)
    path = f"/app/gp/patients/{patient_id}/timeline"
    before = client.get(path).text
    client.get(path)
    assert len(drawings) == 1

    as_person(client, "pharmacist")
    _, answer = dispense_simvastatin(client, patient_id)
    assert answer.status_code == 303, answer.text[:2000]

    as_person(client, "gp")
    after = client.get(path).text
    assert len(drawings) == 2
    assert len(_rows(after)) == len(_rows(before)) + 1
    assert "<td>Utlevert</td><td>1 × Simvastatin Nordkyst" in after
    assert "Simvastatin Nordkyst" not in before
