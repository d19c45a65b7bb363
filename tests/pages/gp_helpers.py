"""Helpers for the tests of the GP's, pharmacist's and patient's pages (TestClient)."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.pages.helpers import client_signed_in, csrf_of

SIMVASTATIN = "090436"
KLARITROMYCIN = "091014"  # interacts with simvastatin at relevance 1: avoid (override needed)
SIMVASTATIN_NORDKYST = "090470"  # simvastatin's substitution group, another maker
OTHER_PHARMACIST = {
    "sub": "7654321",
    "role": "pharmacist",
    "org": "8090699",
    "name": "Ola Farmasøyt",
    "org_name": "Apotek Ås (test)",
}
"""A pharmacist of a pharmacy the demo does not have (for ``as_claims``)."""


def hidden(page: str, name: str) -> str:
    """The value of the first input named ``name`` on ``page``."""
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found is not None, f"no input {name!r} on the page"
    return html.unescape(found.group(1))


def resident(world: Any, index: int) -> tuple[str, str]:
    """(national id, patient id) of the demo world's resident ``index`` (0 Kari Nordmann,
    1 Per Hansen — simvastatin in multidose —, 2 Ingrid Berg)."""
    national_id = list(world.patients)[index]
    return national_id, str(world.patients[national_id])


def as_person(client: Any, person: str) -> Any:
    client.cookies.clear()
    return client_signed_in(client, person)


def prescribe_form(client: Any, patient_id: str, q: str = "") -> str:
    answer = client.get(f"/app/gp/patients/{patient_id}/prescribe", params={"q": q})
    assert answer.status_code == 200, answer.text
    return answer.text


def prescription(page: str, varenr: str, action: str, **changes: Any) -> dict[str, Any]:
    """The prescribe form of ``page`` filled in for ``varenr``: 1 tablett in the morning."""
    body = {
        "csrf_token": csrf_of(page),
        "entry_id": hidden(page, "entry_id"),
        "prescription_id": hidden(page, "prescription_id"),
        "idempotency_key": hidden(page, "idempotency_key"),
        "based_on": hidden(page, "based_on"),
        "q": "",
        "varenr": varenr,
        "use": "regular",
        "amount": "1",
        "unit": "tablett",
        "slot": ["morning"],
        "indication": "Luftveisinfeksjon",
        "packages": "1",
        "repeats": "0",
        "action": action,
    }
    found = re.search(r'name="start" type="date" value="([^"]*)"', page)
    body["start"] = found.group(1) if found else ""
    body.update(changes)
    return body


def list_version(client: Any, patient_id: str) -> int:
    page = client.get(f"/app/gp/patients/{patient_id}").text
    found = re.search(r"List version (\d+)|Listeversjon (\d+)", page)
    assert found is not None
    return int(found.group(1) or found.group(2))


def as_claims(client: Any, world: Any, claims: dict[str, Any]) -> Any:
    """``client`` signed in with a session of ``claims`` (someone the demo does not have:
    a pharmacist of another pharmacy, a nurse of another home), at the app's clock."""
    from datetime import timedelta

    from medloop.store import sessions

    now = world.clock.at
    session_id, _ = sessions.start(
        world.engine, claims, now=now, expires_at=now + timedelta(hours=1)
    )
    client.cookies.clear()
    client.cookies.set("medloop_session", session_id, domain="testserver.local", path="/app")
    return client


def plan_csv(engine: Any, patient_id: str, *, drop: int | None = None, double: int | None = None):
    """A packing report CSV that packs the first period's plan exactly, except the line at
    index ``drop`` (left out) and the line at index ``double`` (twice the amount); returns
    (period id, csv bytes, the plan's lines in order)."""
    import uuid

    from medloop.loop import multidose

    with engine.connect() as conn:
        (view, *_) = multidose.periods(conn, uuid.UUID(patient_id))
        plan = multidose.plan_of(conn, uuid.UUID(patient_id), view.period.id)
    lines = [(bag, line) for bag in plan.bags for line in bag.lines]
    rows = ["day;intake;varenr;amount;unit"]
    for index, (bag, line) in enumerate(lines):
        if index == drop:
            continue
        amount = line.quantity.value * (2 if index == double else 1)
        day = bag.day.strftime("%d.%m.%Y")
        rows.append(f"{day};{bag.intake};{line.varenr};{amount:g};{line.quantity.unit}")
    return str(view.period.id), ("\n".join(rows) + "\n").encode(), lines


def dispense_simvastatin(client: Any, patient_id: str, varenr: str = SIMVASTATIN_NORDKYST):
    """The pharmacist ``client`` is signed in as dispenses one pack of ``varenr`` (by default
    the Nordkyst pack, a generic substitution in the group) on the patient's simvastatin
    prescription, through its form on the pharmacy's patient page: (that page, the answer)."""
    import uuid

    page = client.get(f"/app/pharmacy/patients/{patient_id}").text
    rx = re.search(
        r'<section class="panel" aria-labelledby="rx-([0-9a-f-]+)">\s*<h2[^>]*>Simva', page
    )
    assert rx is not None, "no simvastatin prescription on the pharmacy's page"
    answer = client.post(
        f"/app/pharmacy/patients/{patient_id}/dispenses",
        data={
            "csrf_token": csrf_of(page),
            "prescription_id": rx[1],
            "dispense_id": str(uuid.uuid4()),
            "based_on": hidden(page, "based_on"),
            "varenr": varenr,
            "packages": "1",
            "batch": "NK2291",
            "expiry": "2028-06-30",
        },
    )
    return page, answer
