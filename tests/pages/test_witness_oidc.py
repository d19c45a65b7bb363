"""The witness's step-up at the identity provider (``medloop.pages.witness``), against a local
``oidc-provider-mock`` with three people: Ola (a second nurse of the demo nursing home), Nina
(the charting nurse herself) and Eva (a nurse of another organisation). The charting nurse is
signed in through the demo sign-in; the witness signs at the provider with ``prompt=login`` and
``max_age=0``. Each refusal saves nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import html as html_lib
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from oidc_provider_mock import User, run_server_in_thread
from sqlalchemy import func, select

from medloop import demo
from medloop.domain.administration import ChartRequest, Outcome, WitnessSignatureUsed
from medloop.loop import administration
from medloop.loop.runner import Call
from medloop.store import sessions
from medloop.store.administration import administration as administration_table
from tests.pages.helpers import (
    PagesWorld,
    bedside,
    chart_links,
    client_signed_in,
    csrf_of,
    demo_app,
)

ORG = demo.NURSING_HOME.id
INSULIN_PACK = "7046260905726"


def _person(sub: str, hpr: str, name: str, org: str, role: str = "nurse") -> User:
    return User(
        sub=sub,
        claims={
            "name": name,
            "medloop_role": role,
            "helseid://claims/hpr/hpr_number": hpr,
            "helseid://claims/client/claims/orgnr_child": org,
        },
    )


OLA = _person("ola", demo.SECOND_NURSE.personnel.hpr_number, "Ola Olsen", ORG)
NINA = _person("nina", demo.NURSE.personnel.hpr_number, "Nina Nilsen", ORG)
EVA = _person("eva", "5550001", "Eva Annen", "999888777")
# Of the demo nursing home too: its doctor, a pharmacist, and a resident signing as a patient.
ANJA = _person("anja", demo.GP.personnel.hpr_number, "Anja Fos Eidsvik", ORG, role="gp")
PER = _person("per", demo.PHARMACIST.personnel.hpr_number, "Per Apoteker", ORG, "pharmacist")
KARI = User(
    sub="kari",
    claims={
        "name": "Kari Nordmann",
        "medloop_role": "patient",
        "helseid://claims/identity/pid": demo.national_id(demo.RESIDENTS[0].birth, 100),
    },
)


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread(user_claims=[OLA, NINA, EVA, ANJA, PER, KARI]) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def world(engine, provider) -> PagesWorld:
    return demo_app(
        engine,
        oidc_issuer=provider,
        oidc_client_id="medloop-pages",
        oidc_client_secret="test-secret",
    )


@pytest.fixture
def client(world) -> Iterator[TestClient]:
    with TestClient(world.app, follow_redirects=False) as found:
        client_signed_in(found, "nurse")
        yield found


def _charted(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(administration_table)).scalar_one()


def _grants(world) -> int:
    with world.engine.connect() as conn:
        rows = conn.execute(select(sessions.page_session.c.claims)).scalars()
        return sum('"witness_signature"' in row for row in rows)


def _chart_target(client, world, drug: str = "Glargin") -> tuple[str, dict[str, str]]:
    """Confirm resident 2 by wristband and open the insulin's due dose (``drug="other"``:
    another medicine's): (the form's address, the form's fields for a given dose)."""
    html, _ = bedside(client, world, 2)
    link = next(
        link
        for link, name in chart_links(html)
        if name.startswith("Glargin") == (drug == "Glargin")
    )
    form = client.get(link).text
    data = {"csrf_token": csrf_of(form), "identity": "scan", "outcome": "given"}
    if drug == "Glargin":
        data["pack"] = INSULIN_PACK
    return link.split("&identity")[0], data


def _approved_at_provider(client, target: str, data: dict[str, str], sub: str):
    """The witness button, then ``sub`` signs in at the provider: (the callback address the
    provider sends the browser back to, the authorisation request's parameters, the button's
    answer)."""
    started = client.post(target.replace("/chart?", "/witness/oidc?"), data=data)
    assert started.status_code == 303, started.text
    address = started.headers["location"]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(address).query))
    approved = httpx.post(address, data={"sub": sub}, follow_redirects=False)
    assert approved.status_code in (302, 303), approved.text
    return approved.headers["location"], query, started


def _witness_signs_at_provider(client, target: str, data: dict[str, str], sub: str):
    """The witness button, then ``sub`` signs in at the provider; the callback's answer and
    the authorisation request's parameters."""
    callback, query, started = _approved_at_provider(client, target, data, sub)
    return client.get(callback), query, started


def _signed_form(client, answer) -> tuple[str, str]:
    """Follow the callback's continue page to the charting form: (its html, the grant)."""
    assert answer.status_code == 200, answer.text
    target = html_lib.unescape(re.search(r'content="0;url=([^"]+)"', answer.text).group(1))
    form = client.get(target)
    assert form.status_code == 200, form.text
    grant = re.search(r'name="witness_session" value="([^"]+)"', form.text).group(1)
    return form.text, grant


def test_the_witness_signs_afresh_at_the_provider_and_the_dose_is_saved_once(client, world):
    target, data = _chart_target(client, world)
    answer, query, started = _witness_signs_at_provider(client, target, data, "ola")
    # The provider must authenticate whoever is at the tablet now, whatever it remembers.
    assert query["prompt"] == "login" and query["max_age"] == "0"
    assert query["code_challenge_method"] == "S256" and len(query["nonce"]) >= 32
    assert query["redirect_uri"] == "http://testserver/app/witness/callback"
    cookie = started.headers["set-cookie"]
    assert "medloop_witness=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    # The charting nurse's session is untouched: the witness's sign-in starts none.
    assert "medloop_session" not in answer.headers.get("set-cookie", "")
    form, grant = _signed_form(client, answer)
    assert "Signert av Ola Olsen som kontrollør." in form
    assert f'value="{INSULIN_PACK}"' in form  # the form as it was before the witness signed
    saved = client.post(target, data={**data, "witness_session": grant})
    assert saved.status_code == 200 and "Lagret: Glargin" in saved.text
    assert _charted(world) == 1 and _grants(world) == 0
    with world.engine.connect() as conn:
        records = [r.record for r in conn.execute(select(administration_table.c.record))]
    assert (
        records[0]["witness"]["personnel"]["hpr_number"]
        == OLA.claims["helseid://claims/hpr/hpr_number"]
    )
    assert client.get("/app/home").status_code == 200  # still Nina's session
    assert "Nina Nilsen" in client.get("/app/home").text


def test_the_charting_nurse_cannot_witness_her_own_dose(client, world):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "nina")
    assert answer.status_code == 403
    assert "Kontrolløren må være en annen person enn deg." in answer.text
    assert _grants(world) == 0 and _charted(world) == 0


def test_a_nurse_of_another_organisation_cannot_witness(client, world):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "eva")
    assert answer.status_code == 403 and _grants(world) == 0 and _charted(world) == 0


def test_an_expired_grant_is_refused_and_nothing_is_saved(client, world):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "ola")
    _, grant = _signed_form(client, answer)
    world.clock.at += timedelta(minutes=11)
    refused = client.post(target, data={**data, "witness_session": grant})
    assert refused.status_code == 409 and 'id="witness-error"' in refused.text
    assert "allerede brukt" in refused.text
    assert _charted(world) == 0


def test_a_grant_for_another_dose_is_refused_and_nothing_is_saved(client, world):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "ola")
    _, grant = _signed_form(client, answer)
    other, other_data = _chart_target(client, world, "other")
    refused = client.post(other, data={**other_data, "witness_session": grant})
    assert refused.status_code == 409 and "signerte for en annen dose" in refused.text
    assert _charted(world) == 0 and _grants(world) == 1


def test_a_grant_used_twice_is_refused_the_second_time(client, world):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "ola")
    _, grant = _signed_form(client, answer)
    first = client.post(target, data={**data, "witness_session": grant})
    assert first.status_code == 200 and _charted(world) == 1
    again = {**data, "administration_id": str(uuid.uuid4()), "witness_session": grant}
    second = client.post(target, data=again)
    assert second.status_code == 409 and "allerede brukt" in second.text
    assert _charted(world) == 1


def test_the_charting_command_refuses_a_grant_gone_between_the_form_and_the_save(world):
    """Two saves racing with one grant: the command consumes the grant in its own transaction,
    and the one that finds it gone is refused with nothing saved."""
    _, patient_id = world.patient(2)
    with world.engine.connect() as conn:
        listed = administration.resident_chart(
            conn, patient_id, world.clock.at.date(), 1, world.clock.at
        )
    line = next(d for day in listed for d in day.doses if d.drug.startswith("Glargin"))
    request = ChartRequest(
        administration_id=uuid.uuid4(),
        entry_id=line.entry_id,
        planned_dose_id=line.planned_dose_id,
        outcome=Outcome.GIVEN,
        given_at=world.clock.at,
        dose=line.amount,
        scan=INSULIN_PACK,
    )
    with pytest.raises(WitnessSignatureUsed):
        administration.chart(
            world.engine,
            patient_id,
            request,
            Call(actor=demo.NURSE, at=world.clock.at),
            witness=demo.SECOND_NURSE,
            witness_signature=lambda conn: False,
        )
    assert _charted(world) == 0


def test_a_provider_that_did_not_authenticate_afresh_is_refused(client, world, monkeypatch):
    """``max_age=0``: an ``auth_time`` from before the request means the provider reused an
    earlier sign-in (someone else's, perhaps): no grant."""
    import medloop.pages.witness as witness

    real = witness.time.time
    monkeypatch.setattr(witness.time, "time", lambda: real() + 600)
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "ola")
    assert answer.status_code == 403 and _grants(world) == 0 and _charted(world) == 0


def test_the_callback_is_used_once(client, world):
    target, data = _chart_target(client, world)
    started = client.post(target.replace("/chart?", "/witness/oidc?"), data=data)
    approved = httpx.post(started.headers["location"], data={"sub": "ola"})
    callback = approved.headers["location"]
    assert client.get(callback).status_code == 200
    assert client.get(callback).status_code == 403
    assert _grants(world) == 1


def test_the_same_signed_form_saved_twice_is_charted_once(client, world):
    """A double tap: the grant went with the first save; the second answers it, saves nothing."""
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, "ola")
    form, grant = _signed_form(client, answer)
    charting = re.search(r'name="administration_id" value="([^"]+)"', form)
    same = {**data, "witness_session": grant}
    if charting:
        same["administration_id"] = charting.group(1)
    else:
        same["administration_id"] = str(uuid.uuid4())
    first = client.post(target, data=same)
    second = client.post(target, data=same)
    assert first.status_code == second.status_code == 200
    assert "Lagret: Glargin" in first.text and "Lagret: Glargin" in second.text
    assert _charted(world) == 1


def _with_state(callback: str, state: str) -> str:
    parts = urllib.parse.urlsplit(callback)
    query = dict(urllib.parse.parse_qsl(parts.query)) | {"state": state}
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


def _planned_doses_charted(world) -> set[str]:
    with world.engine.connect() as conn:
        return set(conn.execute(select(administration_table.c.planned_dose_id)).scalars())


@pytest.mark.parametrize("order", ["as-started", "reversed"])
def test_two_step_ups_in_parallel_tabs_both_complete_and_each_charts_its_own_dose(
    client, world, order
):
    """Tab A (the insulin) and tab B (another medicine) each start a witness step-up before
    either comes back: each is pending under its own state, so both callbacks complete, in
    either order, and each signed form charts its own dose."""
    insulin, insulin_data = _chart_target(client, world)
    other, other_data = _chart_target(client, world, "other")
    other_data["scan_skipped"] = "no-barcode"
    callback_a, query_a, _ = _approved_at_provider(client, insulin, insulin_data, "ola")
    callback_b, query_b, _ = _approved_at_provider(client, other, other_data, "ola")
    assert query_a["state"] != query_b["state"]
    callbacks = [callback_a, callback_b] if order == "as-started" else [callback_b, callback_a]
    answers = {callback: client.get(callback) for callback in callbacks}
    (form_a, grant_a), (form_b, grant_b) = (
        _signed_form(client, answers[callback_a]),
        _signed_form(client, answers[callback_b]),
    )
    assert f'value="{INSULIN_PACK}"' in form_a and f'value="{INSULIN_PACK}"' not in form_b
    assert _grants(world) == 2

    saved_a = client.post(insulin, data={**insulin_data, "witness_session": grant_a})
    saved_b = client.post(other, data={**other_data, "witness_session": grant_b})
    assert saved_a.status_code == 200 and "Lagret: Glargin" in saved_a.text
    assert saved_b.status_code == 200 and "Lagret:" in saved_b.text
    doses = {
        urllib.parse.parse_qs(urllib.parse.urlsplit(t).query)["dose"][0] for t in (insulin, other)
    }
    assert _planned_doses_charted(world) == doses
    assert _grants(world) == 0


def test_a_callback_whose_state_is_unknown_is_refused_and_nothing_is_saved(client, world):
    target, data = _chart_target(client, world)
    callback, _, _ = _approved_at_provider(client, target, data, "ola")
    refused = client.get(_with_state(callback, "not-a-state-this-browser-started"))
    assert refused.status_code == 403
    assert "Kontrollørens innlogging tok for lang tid eller ble startet et annet sted." in (
        refused.text
    )
    assert _grants(world) == 0 and _charted(world) == 0
    # The step-up that is pending is untouched by the stranger and still completes.
    assert client.get(callback).status_code == 200 and _grants(world) == 1


def test_a_callback_in_another_browser_is_refused_and_uses_the_step_up_up(client, world):
    """The answer is bound to the browser the step-up began in (its cookie): the same callback
    opened elsewhere gives no grant, and the step-up is gone for good (one use)."""
    target, data = _chart_target(client, world)
    callback, _, _ = _approved_at_provider(client, target, data, "ola")
    elsewhere = TestClient(world.app, follow_redirects=False)  # no cookies of this browser's
    assert elsewhere.get(callback).status_code == 403
    assert client.get(callback).status_code == 403
    assert _grants(world) == 0 and _charted(world) == 0


@pytest.mark.parametrize("sub", ["per", "kari"])
def test_a_pharmacist_or_a_patient_cannot_witness_and_nothing_is_saved(client, world, sub):
    target, data = _chart_target(client, world)
    answer, _, _ = _witness_signs_at_provider(client, target, data, sub)
    assert answer.status_code == 403
    assert "Kontrolløren må være sykepleier eller lege ved dette sykehjemmet." in answer.text
    assert _grants(world) == 0 and _charted(world) == 0


def test_the_form_names_who_may_witness_and_a_doctor_of_the_home_may(client, world):
    """The rule (``policy.WITNESS_ROLES``): another nurse or a doctor of the nursing home."""
    target, data = _chart_target(client, world)
    form = client.get(target + "&identity=scan").text
    assert "Kontrolløren er en annen sykepleier eller en lege ved dette sykehjemmet" in form
    answer, _, _ = _witness_signs_at_provider(client, target, data, "anja")
    signed, grant = _signed_form(client, answer)
    assert "Signert av Anja Fos Eidsvik som kontrollør." in signed
    saved = client.post(target, data={**data, "witness_session": grant})
    assert saved.status_code == 200 and "Lagret: Glargin" in saved.text
    assert _charted(world) == 1
