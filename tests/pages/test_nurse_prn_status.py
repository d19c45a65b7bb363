"""The PRN charting page shows the ward chart's ``PrnLine`` before saving (SQLite and
PostgreSQL): how many doses the maxima still allow and from when the next one breaks no limit,
in Norwegian words and Oslo time, and both move after a dose is given."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from medloop.pages.i18n import format_datetime
from tests.pages.helpers import client_signed_in, csrf_of

PARACETAMOL_EAN = "7046260900288"


def _prn_form(client, world) -> tuple[str, str]:
    """Kari Nordmann confirmed by wristband; (her paracetamol PRN form, its address)."""
    national_id, patient_id = world.patient(0)
    bedside = client.get(f"/app/nurse/residents/{patient_id}/bedside")
    confirmed = client.post(
        f"/app/nurse/residents/{patient_id}/bedside",
        data={"csrf_token": csrf_of(bedside.text), "wristband": national_id},
    )
    assert confirmed.status_code == 303, confirmed.text[:2000]
    html = client.get(confirmed.headers["location"]).text
    link = re.search(r'href="([^"]+/chart\?identity=scan)">Gi ved behov: Paracet', html)[1]
    link = link.replace("&amp;", "&")
    answer = client.get(link)
    assert answer.status_code == 200, answer.text[:2000]
    return answer.text, link


def _text(html: str, element_id: str) -> str:
    found = re.search(rf'<p id="{element_id}">(.*?)</p>', html, re.S)
    assert found is not None, f"no #{element_id} on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", found[1]).split())


def test_the_prn_form_shows_doses_left_and_when_the_next_is_allowed(client, pages_world):
    client_signed_in(client, "nurse")
    form, link = _prn_form(client, pages_world)
    # paracetamol 1 tablett as needed, at most 4 per 24 h, at least 6 h apart; none given yet
    assert _text(form, "prn-remaining") == "Doser igjen nå: 4 (à 1 tablett)"
    assert _text(form, "prn-next") == "Neste dose tillatt: nå"

    given_at = pages_world.clock.at
    administration_id = re.search(r'name="administration_id" value="([^"]*)"', form)
    saved = client.post(
        link.split("?")[0],
        data={
            "csrf_token": csrf_of(form),
            "identity": "scan",
            "outcome": "given",
            "pack": PARACETAMOL_EAN,
            "administration_id": administration_id[1] or str(uuid.uuid4()),
        },
    )
    assert saved.status_code == 200 and "Lagret: Paracet" in saved.text

    again = client.get(link).text
    assert _text(again, "prn-remaining") == "Doser igjen nå: 3 (à 1 tablett)"
    next_allowed = format_datetime(given_at + timedelta(hours=6), "nb")
    assert _text(again, "prn-next") == f"Neste dose tillatt: fra {next_allowed}"
    assert re.search(r"\d{1,2}\. des\. 2026 kl\. \d\d:\d\d", next_allowed)
