"""The report pages (issue #19) over the demo world: a nurse's ward report with every table,
its charts inline and CSV downloads; a doctor's own prescribing; a pharmacist's packing; in
Norwegian by default; the wrong role refused with a page; the period form's bad input shown
as a page, not a 500."""

from __future__ import annotations

import csv
import io
import re

import pytest
from lxml import html as lxml_html

from medloop.pages import report_texts
from tests.pages.helpers import assert_no_axe_violations, client_signed_in, csrf_of, sign_in
from tests.reports.svg import marks


def test_a_nurse_reads_her_wards_report_with_charts_tables_and_csv(client, pages_world):
    client_signed_in(client, "nurse")
    ward = pages_world.world.ward_id

    home = client.get("/app/reports")
    assert home.status_code == 200 and f"/app/reports/wards/{ward}" in home.text
    page = client.get(f"/app/reports/wards/{ward}")

    assert page.status_code == 200, page.text
    html = page.text
    assert '<html lang="nb">' in html
    assert "Planlagte doser per tidspunkt og utfall" in html  # the bokmål title
    assert html.count("<table>") == 8 and html.count("<svg") == 6
    assert html.count('<th scope="col">') >= 8 * 2
    # the chart of scan compliance has a bar per row of the table behind it
    section = html.split('<section id="scan"')[1].split("</section>")[0]
    rows = section.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert len(marks(section, "bar")) == rows
    csv_link = f"/app/reports/wards/{ward}/reviews-due.csv"
    assert csv_link in html
    table = client.get(csv_link)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert table.headers["cache-control"] == "no-store"  # names residents: no cache keeps it
    header = next(csv.reader(io.StringIO(table.text)))
    assert header == ["resident", "admitted_on", "last_review", "next_due", "status"]


def _descriptions(html: str) -> dict[str, str]:
    """Each section's description paragraph (the first ``<p>`` after its heading)."""
    tree = lxml_html.fromstring(html)
    return {
        section.get("id"): " ".join(section.xpath("./p[1]")[0].text_content().split())
        for section in tree.xpath("//section[@id]")
    }


def test_every_table_description_is_in_bokmal_with_the_reports_own_figures(client, pages_world):
    client_signed_in(client, "nurse")
    ward = pages_world.world.ward_id
    back = f"/app/reports/wards/{ward}"
    html = client.get(back).text
    described = _descriptions(html)
    assert len(described) == 8 and set(described) <= set(report_texts.DESCRIPTIONS)
    client.post("/app/language", data={"csrf_token": csrf_of(html), "lang": "en", "next": back})
    english = _descriptions(client.get(back).text)
    for table_id, text in described.items():
        assert text != english[table_id], table_id  # bokmål, not the English text
    # the same figures in both languages
    assert re.findall(r"\d+", described["scan"])[:1] == re.findall(r"\d+", english["scan"])[:1]
    assert english["scan"].startswith("Doses given (")
    assert described["scan"].startswith("Gitte doser (")

    client_signed_in(client, "gp")
    mine = client.get("/app/reports/prescriber").text
    client.post("/app/language", data={"csrf_token": csrf_of(mine), "lang": "nb", "next": "/"})
    prescriber = _descriptions(client.get("/app/reports/prescriber").text)
    assert prescriber["override-rates"].startswith("Varsler fra mine handlinger")


def test_a_doctor_sees_their_own_prescribing_and_no_ward(client, pages_world):
    client_signed_in(client, "gp")

    mine = client.get("/app/reports/prescriber?from=2026-01-01&to=2026-12-31")
    ward = client.get(f"/app/reports/wards/{pages_world.world.ward_id}")

    assert mine.status_code == 200 and "Antibiotikakurer per måned" in mine.text
    assert ward.status_code == 403 and "<html" in ward.text


def test_a_pharmacist_sees_the_packing_report_and_not_a_doctors(client):
    client_signed_in(client, "pharmacist")

    assert client.get("/app/reports/pharmacy").status_code == 200
    assert client.get("/app/reports/prescriber").status_code == 403


def test_a_period_that_cannot_be_is_shown_as_a_page(client, pages_world):
    client_signed_in(client, "nurse")
    ward = pages_world.world.ward_id

    backwards = client.get(f"/app/reports/wards/{ward}?from=2026-12-01&to=2026-11-01")
    nonsense = client.get(f"/app/reports/wards/{ward}?from=never")

    assert backwards.status_code == 422 and "<html" in backwards.text
    assert nonsense.status_code == 422 and "<html" in nonsense.text


@pytest.mark.slow
def test_the_ward_report_page_passes_axe(page, live_world):
    sign_in(page, live_world.base_url, "Sykepleier")
    page.goto(f"{live_world.base_url}/app/reports/wards/{live_world.world.ward_id}")
    assert page.locator("h1").inner_text().startswith("Rapport")
    assert_no_axe_violations(page)
