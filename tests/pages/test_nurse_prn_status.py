"""The PRN charting page shows the ward chart's ``PrnLine`` before saving (SQLite and
PostgreSQL): how many doses the maxima still allow and from when the next one breaks no limit,
in Norwegian words and Oslo time, and both move after a dose is given."""

from __future__ import annotations

import re
from datetime import timedelta

from medloop.pages.i18n import format_datetime
from tests.pages.helpers import bedside, chart_given, charting_form, client_signed_in, prn_link

PARACETAMOL_EAN = "7046260900288"


def _prn_form(client, world) -> tuple[str, str]:
    """Kari Nordmann confirmed by wristband; (her paracetamol PRN form, its address)."""
    html, _ = bedside(client, world, 0)
    link = prn_link(html, "Paracet")
    form, _ = charting_form(client, link)
    return form, link


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
    saved = chart_given(client, link, PARACETAMOL_EAN)
    assert saved.status_code == 200 and "Lagret: Paracet" in saved.text

    again = client.get(link).text
    assert _text(again, "prn-remaining") == "Doser igjen nå: 3 (à 1 tablett)"
    next_allowed = format_datetime(given_at + timedelta(hours=6), "nb")
    assert _text(again, "prn-next") == f"Neste dose tillatt: fra {next_allowed}"
    assert re.search(r"\d{1,2}\. des\. 2026 kl\. \d\d:\d\d", next_allowed)
