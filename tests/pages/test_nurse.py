"""The nurse's pages without a browser (TestClient, SQLite and PostgreSQL): what they show, that
they refuse another organisation and other roles, CSRF on charting, the wristband step, and
that a charting goes through the loop once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medloop.store import sessions
from medloop.store.administration import administration as administration_table
from medloop.store.audit import audit_event
from tests.pages.helpers import (
    bedside,
    chart_given,
    chart_link,
    charting_address,
    charting_form,
    client_signed_in,
    csrf_of,
)

LEVOTYROKSIN_EAN = "7046260906068"


def _charted(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(administration_table)).scalar_one()


def _ward(world) -> str:
    return f"/app/nurse/wards/{world.world.ward_id}"


def _as_other_organisation(client, world, role: str = "nurse") -> None:
    """The browser signed in as a nurse of another nursing home (its own session)."""
    claims = {"sub": "5550001", "role": role, "org": "999888777", "name": "Eva Annen"}
    session_id, _ = sessions.start(
        world.engine, claims, now=world.clock.at, expires_at=world.clock.at + timedelta(hours=1)
    )
    client.cookies.delete("medloop_session")
    client.cookies.set("medloop_session", session_id, domain="testserver.local", path="/app")


def test_a_nurse_lands_on_her_wards_overview_with_every_resident(client, pages_world):
    client_signed_in(client, "nurse")
    assert client.get("/app/").headers["location"] == "/app/nurse"
    assert client.get("/app/nurse").headers["location"] == _ward(pages_world)
    html = client.get(_ward(pages_world)).text
    for name in ("Kari Nordmann", "Per Hansen", "Ingrid Berg"):
        assert name in html
    assert "mandag 7. desember 2026" in html and "skal gis" in html


def test_the_overview_partial_is_the_table_alone(client, pages_world):
    client_signed_in(client, "nurse")
    partial = client.get(_ward(pages_world) + "/overview")
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith("<table") and "<html" not in partial.text
    assert "Ingrid Berg" in partial.text


def test_another_organisations_nurse_sees_no_resident_on_any_page(client, pages_world):
    _as_other_organisation(client, pages_world)
    _, patient_id = pages_world.patient(2)
    pages = [
        _ward(pages_world),
        _ward(pages_world) + "/overview",
        f"/app/nurse/residents/{patient_id}",
        f"/app/nurse/residents/{patient_id}?view=week",
        f"/app/nurse/residents/{patient_id}/bedside",
    ]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "Ingrid" not in answer.text and "Berg" not in answer.text, path
        assert "Du har ikke tilgang til dette." in answer.text
    home = client.get("/app/nurse")
    assert home.status_code == 200 and "Solbakken" not in home.text


def test_a_gp_cannot_use_the_ward_round_pages(client, pages_world):
    client_signed_in(client, "gp")
    assert client.get(_ward(pages_world)).status_code == 403
    _, patient_id = pages_world.patient(2)
    assert client.get(f"/app/nurse/residents/{patient_id}/bedside").status_code == 403


def test_the_wristband_of_another_resident_is_refused_and_nothing_is_confirmed(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    kari, _ = pages_world.patient(0)
    page = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    answer = client.post(
        f"/app/nurse/residents/{patient_id}/bedside",
        data={"csrf_token": csrf_of(page.text), "wristband": kari},
    )
    assert answer.status_code == 409
    assert "Feil beboer" in answer.text
    assert "Dagens doser" not in answer.text  # no doses offered without the right resident


def test_a_skipped_wristband_is_recorded_with_its_reason_in_the_audit_log(client, pages_world):
    client_signed_in(client, "nurse")
    national_id, patient_id = pages_world.patient(2)
    page = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    answer = client.post(
        f"/app/nurse/residents/{patient_id}/bedside",
        data={"csrf_token": csrf_of(page.text), "wristband_skipped": "no-wristband"},
    )
    assert answer.headers["location"].endswith("identity=skip:no-wristband")
    with pages_world.engine.connect() as conn:
        reasons = conn.execute(
            select(audit_event.c.reason).where(audit_event.c.patient == national_id)
        ).scalars()
        assert "wristband not scanned: no-wristband" in list(reasons)


def test_neither_wristband_nor_reason_is_refused_next_to_the_field(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    page = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    answer = client.post(
        f"/app/nurse/residents/{patient_id}/bedside", data={"csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 422
    assert 'id="wristband-error"' in answer.text


def test_the_chart_form_needs_the_resident_confirmed_first(client, pages_world):
    client_signed_in(client, "nurse")
    html, patient_id = bedside(client, pages_world, 2)
    link = chart_link(html, "Levotyroksin").replace("&identity=scan", "")
    assert client.get(link).headers["location"] == f"/app/nurse/residents/{patient_id}/bedside"


@pytest.mark.parametrize("token", [None, "forged"])
def test_charting_without_the_sessions_csrf_token_is_refused_and_saves_nothing(
    client, pages_world, token
):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    link = chart_link(html, "Levotyroksin")
    before = _charted(pages_world)
    data = {"identity": "scan", "outcome": "given", "pack": LEVOTYROKSIN_EAN}
    if token is not None:
        data["csrf_token"] = token
    answer = client.post(charting_address(link), data=data)
    assert answer.status_code == 403
    assert _charted(pages_world) == before


def test_a_charting_saved_twice_from_the_same_form_is_charted_once(client, pages_world):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    form, target = charting_form(client, chart_link(html, "Levotyroksin"))
    administration_id = re.search(r'name="administration_id" value="([^"]*)"', form).group(1)
    data = {
        "csrf_token": csrf_of(form),
        "identity": "scan",
        "outcome": "given",
        "pack": LEVOTYROKSIN_EAN,
        "administration_id": administration_id or "0d5c6a3e-1111-4222-8333-944455556666",
    }
    before = _charted(pages_world)
    first = client.post(target, data=data)
    assert first.status_code == 200 and "Lagret: Levotyroksin" in first.text
    again = client.post(target, data=data)
    assert again.status_code == 200 and "Lagret: Levotyroksin" in again.text
    assert _charted(pages_world) == before + 1


def test_a_wrong_pack_is_refused_next_to_the_pack_field_and_nothing_is_saved(client, pages_world):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    form, target = charting_form(client, chart_link(html, "Levotyroksin"))
    before = _charted(pages_world)
    answer = client.post(
        target,
        data={
            "csrf_token": csrf_of(form),
            "identity": "scan",
            "outcome": "given",
            "pack": "7046260905559",  # metformin
        },
    )
    assert answer.status_code == 409
    assert 'id="pack-error"' in answer.text and "Feil pakning" in answer.text
    assert _charted(pages_world) == before


def test_the_pack_check_partial_answers_without_charting(client, pages_world):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    form, target = charting_form(client, chart_link(html, "Levotyroksin"))
    path = target.replace("/chart?", "/pack?") + "&partial=true"
    right = client.post(path, data={"csrf_token": csrf_of(form), "pack": LEVOTYROKSIN_EAN})
    assert right.status_code == 200 and "Riktig pakning" in right.text
    assert "<html" not in right.text
    unreadable = client.post(path, data={"csrf_token": csrf_of(form), "pack": "abc"})
    assert unreadable.status_code == 409 and "Strekkoden kunne ikke leses" in unreadable.text
    assert _charted(pages_world) == 0


def test_a_refusal_needs_a_reason_code(client, pages_world):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    form, target = charting_form(client, chart_link(html, "Metformin"))
    answer = client.post(
        target,
        data={"csrf_token": csrf_of(form), "identity": "scan", "outcome": "refused"},
    )
    assert answer.status_code == 422 and 'id="reason_code-error"' in answer.text
    assert _charted(pages_world) == 0


def test_the_mar_week_and_day_show_the_charting_with_who_and_when(client, pages_world):
    client_signed_in(client, "nurse")
    html, patient_id = bedside(client, pages_world, 2)
    saved = chart_given(client, chart_link(html, "Levotyroksin"), LEVOTYROKSIN_EAN)
    assert saved.status_code == 200 and "Lagret: Levotyroksin" in saved.text
    day = client.get(f"/app/nurse/residents/{patient_id}").text
    assert "Nina Nilsen" in day and "08:05" in day and "state-given" in day
    week = client.get(f"/app/nurse/residents/{patient_id}?view=week")
    assert week.status_code == 200 and "Uken fra 7. des. 2026" in week.text
    bad = client.get(f"/app/nurse/residents/{patient_id}?view=month")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")


def test_a_witness_signature_counts_for_its_charting_and_opens_no_session(client, pages_world):
    client_signed_in(client, "nurse")
    html, _ = bedside(client, pages_world, 2)
    form, target = charting_form(client, chart_link(html, "Glargin"))
    data = {
        "csrf_token": csrf_of(form),
        "identity": "scan",
        "outcome": "given",
        "pack": "7046260905726",
    }
    refused = client.post(target, data=data)
    assert refused.status_code == 409 and 'id="witness-error"' in refused.text
    signed = client.post(
        target.replace("/chart?", "/witness?"), data={**data, "witness_person": "ward-admin"}
    )
    assert "Signert av Ola Olsen som kontrollør." in signed.text
    signature = re.search(r'name="witness_session" value="([^"]+)"', signed.text).group(1)
    # The signature's id is no session: as a cookie it signs nobody in.
    other = TestClient(pages_world.app, follow_redirects=False)
    other.cookies.set("medloop_session", signature, domain="testserver.local", path="/app")
    assert other.get("/app/home").status_code == 303
    saved = client.post(target, data={**data, "witness_session": signature})
    assert saved.status_code == 200 and "Lagret: Glargin" in saved.text
    with pages_world.engine.connect() as conn:
        records = [r.record for r in conn.execute(select(administration_table.c.record))]
    assert [r["witness"]["personnel"]["name"] for r in records if r.get("witness")] == ["Ola Olsen"]


def test_the_language_switch_returns_to_the_same_view(client, pages_world):
    client_signed_in(client, "nurse")
    _, patient_id = pages_world.patient(2)
    week = client.get(f"/app/nurse/residents/{patient_id}?view=week")
    back = re.search(r'name="next" value="([^"]+)"', week.text).group(1).replace("&amp;", "&")
    assert back == f"/app/nurse/residents/{patient_id}?view=week"
    answer = client.post(
        "/app/language", data={"csrf_token": csrf_of(week.text), "lang": "en", "next": back}
    )
    assert answer.headers["location"] == back
    assert "Week from 7 Dec 2026" in client.get(back).text
