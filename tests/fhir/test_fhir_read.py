"""The FHIR read side over HTTP: Patient, Medication, MedicationStatement (with versions,
vread and history), MedicationRequest, MedicationDispense, AllergyIntolerance, DetectedIssue,
AuditEvent; search parameters, includes, paging, strict and lenient handling; every resource
validated. Each test runs on SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

from sqlalchemy import select

from medloop.fhir import resources as fhir
from medloop.store import alerts, audit
from tests.api.helpers import NATIONAL_ID
from tests.fhir.helpers import (
    FHIR_JSON,
    dispensed,
    fhir_get,
    gp_token,
    outcome_of,
    patient_token,
    pharmacist_token,
    prescribed,
    resources_of,
    validated,
)
from tests.loop.helpers import (
    ATORVASTATIN,
    KLARITROMYCIN,
    SIMVASTATIN_28,
    SIMVASTATIN_NORDKYST,
)
from tests.store.helpers import intruded


def _statements(world, query: str = "", **headers):
    return fhir_get(
        world, f"/fhir/MedicationStatement?patient=Patient/{world.patient_id}{query}", **headers
    )


def test_a_patient_is_found_by_fodselsnummer_as_system_bar_value(world):
    response = fhir_get(world, f"/fhir/Patient?identifier={fhir.FNR}|{NATIONAL_ID}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    bundle = validated(response.json())
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    (patient,) = resources_of(bundle)
    assert patient["id"] == str(world.patient_id)
    assert patient["identifier"] == [{"use": "official", "system": fhir.FNR, "value": NATIONAL_ID}]
    assert patient["birthDate"] == "1946-01-21"
    # The D-number system does not name this person.
    other = fhir_get(world, f"/fhir/Patient?identifier={fhir.DNR}|{NATIONAL_ID}")
    assert other.json()["total"] == 0


def test_reading_a_patient_by_id_is_audited_like_the_json_api(world):
    response = fhir_get(world, f"/fhir/Patient/{world.patient_id}")
    assert response.status_code == 200
    validated(response.json())
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    assert events[0].action == "medication-list.read.fhir-Patient"
    assert events[0].request_id == response.headers["X-Request-ID"]
    assert events[0].actor_role == "doctor"


def test_statements_search_includes_the_medication_as_resolved_with_its_codings(world):
    body = prescribed(world)
    response = _statements(world, "&_include=MedicationStatement:medication")
    assert response.status_code == 200, response.text
    bundle = validated(response.json())
    (statement,) = resources_of(bundle, "match")
    (medication,) = resources_of(bundle, "include")
    assert statement["id"] == body["entry_id"]
    assert statement["status"] == "active"
    assert statement["meta"]["versionId"] == "1"
    assert statement["basedOn"] == [
        {"reference": f"MedicationRequest/{body['terms']['prescription_id']}"}
    ]
    assert statement["medicationReference"]["reference"] == f"Medication/{medication['id']}"
    codings = {c["system"]: c["code"] for c in medication["code"]["coding"]}
    assert codings[fhir.NO_VARENR] == SIMVASTATIN_28
    assert codings[fhir.ATC] == "C10AA01"
    assert codings[fhir.NO_PAKNING].startswith("ID_")
    assert medication["form"]["text"] == "Tablett"
    (ingredient,) = medication["ingredient"]
    assert ingredient["strength"]["numerator"] == {"value": 20, "unit": "mg"}
    groups = [e for e in medication["extension"] if e["url"] == fhir.SUBSTITUTION_GROUP]
    assert len(groups) == 1


def test_elements_cuts_the_matches_to_what_is_asked_and_what_fhir_requires(world):
    """``_elements`` (a client that needs only the dosages, say): each matched resource keeps
    the elements named, its id and meta, and the elements FHIR requires of its type (so it
    is still valid), and is tagged SUBSETTED so no client writes it back as the whole; an
    included Medication stays whole; the same search without it is unchanged."""
    prescribed(world)
    whole = _statements(world, "&_include=MedicationStatement:medication").json()
    response = _statements(world, "&_include=MedicationStatement:medication&_elements=basedOn")
    assert response.status_code == 200, response.text
    bundle = validated(response.json())
    (statement,) = resources_of(bundle, "match")
    (full,) = resources_of(whole, "match")
    assert set(statement) == {
        "resourceType",
        "id",
        "meta",
        "status",
        "medicationReference",
        "subject",
        "basedOn",
    }
    assert {k: statement[k] for k in statement if k != "meta"} == {
        k: full[k] for k in statement if k != "meta"
    }
    assert statement["meta"]["versionId"] == full["meta"]["versionId"]
    assert statement["meta"]["tag"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
    ]
    assert "tag" not in full["meta"] and len(full) > len(statement)  # the whole one, as before
    assert resources_of(bundle, "include") == resources_of(whole, "include")
    several = _statements(world, "&_elements=dosage,note&_elements=basedOn").json()
    (statement,) = resources_of(several, "match")
    assert "basedOn" in statement and set(statement) <= set(full) | {"meta"}


def test_elements_that_name_no_element_are_refused(world):
    outcome = outcome_of(_statements(world, "&_elements=dosage,no.such"), 400)
    assert outcome["issue"][0]["expression"] == ["_elements"]
    assert "no.such" in outcome["issue"][0]["diagnostics"]


def test_the_included_medication_reads_again_by_its_id(world):
    prescribed(world)
    bundle = _statements(world, "&_include=MedicationStatement:medication").json()
    (medication,) = resources_of(bundle, "include")
    again = fhir_get(world, f"/fhir/Medication/{medication['id']}")
    assert again.status_code == 200, again.text
    assert validated(again.json()) == medication


def test_a_medication_is_found_by_varenr_in_the_catalogue_in_force(world):
    response = fhir_get(world, f"/fhir/Medication?code={fhir.NO_VARENR}|{ATORVASTATIN}")
    assert response.status_code == 200, response.text
    (medication,) = resources_of(validated(response.json()))
    assert {c["code"] for c in medication["code"]["coding"]} >= {ATORVASTATIN}


def test_an_unknown_medication_id_is_a_not_found_outcome(world):
    outcome = outcome_of(fhir_get(world, "/fhir/Medication/1.ID.NOT-THERE"), 404)
    assert outcome["issue"][0]["code"] == "not-found"
    outcome_of(fhir_get(world, "/fhir/Medication/rubbish"), 404)


def test_statement_versions_read_vread_and_history(world):
    body = prescribed(world)
    entry = body["entry_id"]
    held = world.write(
        f"/patients/{world.patient_id}/list/entries/{entry}/hold", {"reason": "pause"}
    )
    assert held.status_code == 200, held.text
    current = fhir_get(world, f"/fhir/MedicationStatement/{entry}")
    assert current.status_code == 200
    assert current.headers["ETag"] == 'W/"2"'
    assert validated(current.json())["status"] == "on-hold"
    first = fhir_get(world, f"/fhir/MedicationStatement/{entry}/_history/1")
    assert first.status_code == 200 and first.headers["ETag"] == 'W/"1"'
    assert first.json()["status"] == "active"
    history = validated(fhir_get(world, f"/fhir/MedicationStatement/{entry}/_history").json())
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    outcome_of(fhir_get(world, f"/fhir/MedicationStatement/{entry}/_history/3"), 404)


def test_a_conditional_read_of_a_current_version_is_304_and_still_audited(world):
    """``If-None-Match`` naming the version the client holds (``W/"n"``, as the ETag said, or
    ``*``): 304 with the ETag and Last-Modified and no body while it is current; the resource
    once it changed; a vread of that version stays 304. The read is audited either way: the
    client was shown that the record is as it holds it."""
    body = prescribed(world)
    entry, rx = body["entry_id"], body["terms"]["prescription_id"]
    path = f"/fhir/MedicationStatement/{entry}"
    first = fhir_get(world, path)
    assert first.status_code == 200 and first.headers["ETag"] == 'W/"1"'
    same = fhir_get(world, path, **{"If-None-Match": 'W/"1"'})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["ETag"] == 'W/"1"'
    assert same.headers["Last-Modified"] == first.headers["Last-Modified"]
    anything = fhir_get(world, path, **{"If-None-Match": "*"})
    assert anything.status_code == 304
    with world.engine.connect() as conn:
        newest = audit.events_for_patient(conn, NATIONAL_ID).events[:2]
    assert [(e.action, e.request_id) for e in newest] == [
        ("medication-list.read.fhir-MedicationStatement", anything.headers["X-Request-ID"]),
        ("medication-list.read.fhir-MedicationStatement", same.headers["X-Request-ID"]),
    ]
    held = world.write(
        f"/patients/{world.patient_id}/list/entries/{entry}/hold", {"reason": "pause"}
    )
    assert held.status_code == 200, held.text
    changed = fhir_get(world, path, **{"If-None-Match": 'W/"1"'})
    assert changed.status_code == 200 and changed.headers["ETag"] == 'W/"2"'
    assert validated(changed.json())["status"] == "on-hold"
    old = fhir_get(world, f"{path}/_history/1", **{"If-None-Match": 'W/"1", W/"2"'})
    assert old.status_code == 304 and old.headers["ETag"] == 'W/"1"'
    request = f"/fhir/MedicationRequest/{rx}"
    assert fhir_get(world, request, **{"If-None-Match": 'W/"1"'}).status_code == 304
    outcome = outcome_of(fhir_get(world, request, **{"If-None-Match": "x" * 1001}), 400)
    assert "If-None-Match" in outcome["issue"][0]["diagnostics"]
    assert fhir_get(world, request, **{"If-None-Match": 'W/"7"'}).status_code == 200


def test_statement_search_by_status_code_and_effective_date(world):
    simva = prescribed(world)
    atorva = prescribed(world, ATORVASTATIN)
    world.write(
        f"/patients/{world.patient_id}/list/entries/{atorva['entry_id']}/hold", {"reason": "x"}
    )

    def ids(query: str) -> list[str]:
        response = _statements(world, query)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in resources_of(validated(response.json())))

    assert ids("&status=active") == [simva["entry_id"]]
    assert ids("&status=on-hold") == [atorva["entry_id"]]
    assert ids(f"&code={fhir.NO_VARENR}|{SIMVASTATIN_28}") == [simva["entry_id"]]
    assert ids(f"&code={fhir.ATC}|C10AA05") == [atorva["entry_id"]]
    assert ids("&code=C10AA01,C10AA05") == sorted([simva["entry_id"], atorva["entry_id"]])
    assert ids(f"&code:below={fhir.ATC}|C10AA") == sorted([simva["entry_id"], atorva["entry_id"]])
    assert ids("&code:not=C10AA01") == [atorva["entry_id"]]
    assert ids("&effective=ge2026-11-20") == sorted([simva["entry_id"], atorva["entry_id"]])
    assert ids("&effective=lt2026-11-20") == []
    assert ids("&date=2026-11") == sorted([simva["entry_id"], atorva["entry_id"]])
    assert ids("&_lastUpdated=gt2030-01-01") == []


def test_paging_follows_next_links_and_summary_count_gives_only_the_total(world):
    made = sorted(prescribed(world)["entry_id"] for _ in range(3))
    first = _statements(world, "&_count=2").json()
    assert first["total"] == 3 and len(first["entry"]) == 2
    (next_link,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = fhir_get(world, next_link.replace("http://testserver", ""))
    assert second.status_code == 200
    page = second.json()
    assert not [link for link in page["link"] if link["relation"] == "next"]
    seen = sorted(r["id"] for r in resources_of(first) + resources_of(page))
    assert seen == made
    counted = validated(_statements(world, "&_summary=count").json())
    assert counted["total"] == 3 and "entry" not in counted
    # _count=0 asks for the total only: no entries and no next link to loop on.
    none = validated(_statements(world, "&_count=0").json())
    assert none["total"] == 3 and "entry" not in none
    assert [link["relation"] for link in none["link"]] == ["self"]


def test_an_unknown_search_parameter_is_refused_unless_handling_is_lenient(world):
    prescribed(world)
    outcome = outcome_of(_statements(world, "&colour=blue"), 400)
    assert "colour" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["code"] == "not-supported"
    lenient = _statements(world, "&colour=blue", Prefer="handling=lenient")
    assert lenient.status_code == 200
    bundle = validated(lenient.json())
    assert len(resources_of(bundle, "match")) == 1
    (warning,) = resources_of(bundle, "outcome")
    assert warning["issue"][0]["severity"] == "warning"
    outcome_of(_statements(world, "&_include=MedicationStatement:patient"), 400)
    outcome_of(_statements(world, "&effective=yesterday"), 400)
    outcome_of(_statements(world, "&_count=-1"), 400)


def test_a_repeated_search_is_answered_for_its_own_host_handling_and_parameters(world):
    """A search's parsing and its Bundle are kept (``search.PARSED``, the state's memo) by
    what they are made of: another Host, another handling or other parameters get their own
    answer, and the first is answered again as it was."""
    prescribed(world)
    prescribed(world)
    first = _statements(world, "&_count=1")
    assert first.status_code == 200
    links = {link["relation"]: link["url"] for link in first.json()["link"]}
    assert links["self"].startswith("http://testserver/fhir/MedicationStatement?")
    assert links["next"].startswith("http://testserver/fhir/")
    other = _statements(world, "&_count=1", Host="fhir.example.no").json()
    assert {link["url"].split("/fhir/")[0] for link in other["link"]} == {"http://fhir.example.no"}
    assert _statements(world, "&_count=1").content == first.content
    unpaged = _statements(world).json()
    assert len(unpaged["entry"]) == 2 and [link["relation"] for link in unpaged["link"]] == ["self"]
    # Lenient handling in between leaves the strict refusal of the same query as it was.
    outcome_of(_statements(world, "&colour=blue"), 400)
    assert _statements(world, "&colour=blue", Prefer="handling=lenient").status_code == 200
    outcome_of(_statements(world, "&colour=blue"), 400)
    assert _statements(world, "&colour=blue", Prefer="handling=lenient").status_code == 200


def test_a_search_without_patient_is_refused_for_clinicians(world):
    outcome = outcome_of(fhir_get(world, "/fhir/MedicationStatement"), 400)
    assert outcome["issue"][0]["expression"] == ["patient"]


def test_medication_requests_carry_validity_repeats_and_substitution(world):
    body = prescribed(world)
    rx = body["terms"]["prescription_id"]
    response = fhir_get(world, f"/fhir/MedicationRequest/{rx}")
    assert response.status_code == 200 and response.headers["ETag"] == 'W/"1"'
    request = validated(response.json())
    assert request["status"] == "active" and request["intent"] == "order"
    assert request["dispenseRequest"]["validityPeriod"]["start"] == "2026-11-20"
    assert request["dispenseRequest"]["numberOfRepeatsAllowed"] == 0
    assert request["substitution"] == {"allowedBoolean": True}
    assert request["statusReason"]["coding"][0]["code"] == "E"
    found = fhir_get(
        world,
        f"/fhir/MedicationRequest?patient={world.patient_id}&status=active"
        "&_include=MedicationRequest:medication",
    )
    bundle = validated(found.json())
    assert [r["id"] for r in resources_of(bundle, "match")] == [rx]
    assert len(resources_of(bundle, "include")) == 1
    history = validated(fhir_get(world, f"/fhir/MedicationRequest/{rx}/_history").json())
    assert history["total"] == 1


def test_a_dispense_is_a_medication_dispense_with_its_substitution(world):
    rx = dispensed(world, SIMVASTATIN_NORDKYST)
    response = fhir_get(
        world,
        f"/fhir/MedicationDispense?patient={world.patient_id}",
        token=pharmacist_token(),
    )
    assert response.status_code == 200, response.text
    (dispense,) = resources_of(validated(response.json()))
    assert dispense["substitution"]["wasSubstituted"] is True
    assert dispense["authorizingPrescription"] == [{"reference": f"MedicationRequest/{rx}"}]
    assert dispense["status"] == "completed"
    again = fhir_get(world, f"/fhir/MedicationDispense/{dispense['id']}")
    assert validated(again.json()) == dispense
    completed = fhir_get(world, f"/fhir/MedicationRequest/{rx}")
    assert completed.json()["status"] == "completed"


def test_an_override_is_a_detected_issue_with_its_mitigation(world):
    prescribed(world)
    path = f"/patients/{world.patient_id}/prescriptions"
    from tests.api.helpers import prescribe_body

    body = prescribe_body(KLARITROMYCIN)
    refused = world.write(path, body)
    assert refused.status_code == 409
    overrides = dict.fromkeys(refused.json()["alert_keys"], "short course, statin paused")
    assert world.write(path, {**body, "overrides": overrides}).status_code == 201
    response = fhir_get(world, f"/fhir/DetectedIssue?patient={world.patient_id}")
    issues = resources_of(validated(response.json()))
    mitigated = [i for i in issues if "mitigation" in i]
    assert mitigated, issues
    (issue,) = [i for i in mitigated if i["severity"] == "high"]
    assert issue["mitigation"][0]["action"]["text"] == "short course, statin paused"
    assert issue["mitigation"][0]["author"]["reference"].startswith("Practitioner/")
    assert len(issue["implicated"]) == 2
    again = fhir_get(world, f"/fhir/DetectedIssue/{issue['id']}")
    assert validated(again.json()) == issue


def test_a_detected_issue_whose_stored_alert_no_longer_loads_is_named_not_guessed(world):
    """A stored alert that no longer loads (here an unknown severity) is answered with an
    OperationOutcome naming the alert's row, never shown as an issue of a guessed severity;
    so is an override whose author no longer loads."""
    prescribed(world)  # no dosage: a dose-not-checked alert
    with world.engine.connect() as conn:
        raised = conn.execute(select(alerts.alert)).one()
    table = alerts.alert
    intruded(
        world.engine, table, table.c.id == raised.id, record={**raised.record, "severity": "x"}
    )
    search = f"/fhir/DetectedIssue?patient={world.patient_id}"
    for path in (search, f"/fhir/DetectedIssue/{world.patient_id}-1"):
        outcome = outcome_of(fhir_get(world, path), 500)
        diagnostics = outcome["issue"][0]["diagnostics"]
        assert f"stored alert record (id={raised.id})" in diagnostics
        assert "severity" in diagnostics

    intruded(
        world.engine,
        table,
        table.c.id == raised.id,
        record=raised.record,
        override_reason="known combination",
        override_by={"personnel": "nobody"},
    )
    outcome = outcome_of(fhir_get(world, search), 500)
    assert "personnel" in outcome["issue"][0]["diagnostics"]
    intruded(world.engine, table, table.c.id == raised.id, override_by=None)
    (issue,) = resources_of(validated(fhir_get(world, search).json()))
    assert (raised.record["severity"], issue["severity"]) == ("info", "low")
    assert "author" not in issue["mitigation"][0]


def test_a_patient_reads_their_own_statements_and_access_log_but_no_one_elses(world):
    prescribed(world)
    own = fhir_get(world, "/fhir/MedicationStatement", token=patient_token())
    assert own.status_code == 200, own.text
    assert len(resources_of(validated(own.json()))) == 1
    log = fhir_get(world, "/fhir/AuditEvent", token=patient_token())
    assert log.status_code == 200, log.text
    events = resources_of(validated(log.json()))
    assert events and all(e["resourceType"] == "AuditEvent" for e in events)
    clinician = fhir_get(world, f"/fhir/AuditEvent?patient={world.patient_id}")
    outcome_of(clinician, 403)


def test_allergies_are_allergy_intolerances(world):
    response = fhir_get(world, f"/fhir/AllergyIntolerance?patient={world.patient_id}")
    assert response.status_code == 200
    assert validated(response.json())["total"] == 0
    outcome_of(fhir_get(world, f"/fhir/AllergyIntolerance/{world.patient_id}-1"), 404)


def test_every_error_under_fhir_is_an_operation_outcome(world):
    outcome_of(world.client.get(f"/fhir/Patient/{world.patient_id}"), 401)
    outcome_of(fhir_get(world, "/fhir/Observation"), 404)
    outcome_of(fhir_get(world, "/fhir/MedicationStatement/not-a-uuid"), 404)
    signed = {"Authorization": f"Bearer {gp_token()}"}
    response = world.client.put(
        f"/fhir/MedicationStatement/{world.patient_id}", json={}, headers=signed
    )
    assert "GET" in response.headers["Allow"]
    outcome_of(response, 405)
    outcome_of(world.client.delete("/fhir/Patient/x", headers=signed), 405)
    outcome_of(world.client.put("/fhir/Patient/x", json={}), 401)


def test_the_caller_reads_their_own_practitioner_and_organization(world):
    from tests.loop.helpers import GP

    hpr, org = GP.personnel.hpr_number, GP.organisation.id
    practitioner = validated(fhir_get(world, f"/fhir/Practitioner/{hpr}").json())
    assert practitioner["identifier"] == [{"system": fhir.HPR, "value": hpr}]
    organization = validated(fhir_get(world, f"/fhir/Organization/{org}").json())
    assert organization["identifier"][0] == {"system": fhir.HER_ID, "value": org}
    outcome_of(fhir_get(world, "/fhir/Practitioner/9876543"), 404)
    outcome_of(fhir_get(world, f"/fhir/Organization/{org}", token=patient_token()), 404)
