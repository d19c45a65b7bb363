"""The GP's prescribe page judges a dose against the limits that depend on the resident's
recorded facts (issue #22): the demo residents carry age, weight and kidney function, and the
check before saving shows the limit that those facts select, or that a fact is too old to use.
Without a browser (TestClient), SQLite and PostgreSQL."""

from __future__ import annotations

from tests.pages.gp_helpers import as_person, list_version, prescribe_form, prescription, resident
from tests.pages.helpers import csrf_of

METFORMIN_500 = "090555"


def in_english(client) -> None:
    # The alert's own wording (the dose rules' English) is what the English page shows; the
    # bokmål page words each alert from its structure (pages/alert_text.py).
    token = csrf_of(client.get("/app/gp").text)
    answer = client.post("/app/language", data={"csrf_token": token, "lang": "en"})
    assert answer.status_code == 303


def check(client, patient_id: str, tablets: str) -> str:
    page = prescribe_form(client, patient_id, q=METFORMIN_500)
    answer = client.post(
        f"/app/gp/patients/{patient_id}/prescribe",
        data=prescription(page, METFORMIN_500, "check", amount=tablets, indication="Diabetes"),
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_recorded_kidney_function_selects_the_metformin_limit_on_the_page(client, pages_world):
    as_person(client, "gp")
    in_english(client)
    # Kari Nordmann: eGFR 52 measured 20 days ago (the 45-59 band: at most 2000 mg a day)
    _, patient_id = resident(pages_world.world, 0)
    before = list_version(client, patient_id)
    over = check(client, patient_id, "5")  # 2500 mg in the morning
    assert "Alerts before saving" in over
    assert "metformin-oral-renal-45-59" in over
    assert "eGFR/CrCl 45 to below 60 ml/min" in over
    within = check(client, patient_id, "4")  # 2000 mg
    assert "metformin-oral-renal" not in within
    assert list_version(client, patient_id) == before  # checking writes nothing


def test_a_kidney_function_older_than_90_days_is_shown_as_not_checked(client, pages_world):
    as_person(client, "gp")
    in_english(client)
    # Ingrid Berg: eGFR 38 measured 120 days ago — flagged, not trusted
    _, patient_id = resident(pages_world.world, 2)
    page = check(client, patient_id, "3")
    assert "metformin-oral-renal-45-59" not in page and "metformin-oral-renal-30-44" not in page
    assert "Dose of metformin not checked" in page
    # the summary names the value and its date, which is more than 90 days before the check
    assert "the kidney function (eGFR 38 ml/min measured" in page
    assert "is more than 90 da" in page
