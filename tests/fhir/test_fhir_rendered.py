"""The per-process cache of rendered MedicationStatement / MedicationRequest versions
(``medloop.fhir.router.RENDERED``): a search renders a stored version once, a new version is
rendered anew, and the cache stays within its bound. A search's Bundle is assembled from the
resources' JSON encoded once, byte for byte the Bundle encoded whole, and kept with the
patient's cached state per request: a repeated search of an unchanged patient renders nothing
and is still audited. Each HTTP test runs on SQLite and PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import uuid

import orjson
from starlette.requests import Request

from medloop.fhir import router, search
from medloop.store import audit
from tests.api.helpers import NATIONAL_ID
from tests.fhir.helpers import fhir_get, prescribed, resources_of, validated
from tests.loop.helpers import SIMVASTATIN_28


def _statements(world) -> list[dict]:
    response = fhir_get(world, f"/fhir/MedicationStatement?patient={world.patient_id}")
    assert response.status_code == 200, response.text
    return resources_of(validated(response.json()))


def test_a_stored_version_is_rendered_once_and_a_new_version_anew(world):
    entry = prescribed(world)["entry_id"]
    (first,) = _statements(world)
    (again,) = _statements(world)
    assert again is not first and again == first  # parsed from two responses, the same body
    key = ("MedicationStatement", uuid.UUID(entry), 1, world.patient_id)
    with router.RENDERED._lock:
        cached = router.RENDERED._found[key]
    assert cached == first
    held = world.write(
        f"/patients/{world.patient_id}/list/entries/{entry}/hold", {"reason": "pause"}
    )
    assert held.status_code == 200, held.text
    (current,) = _statements(world)
    assert current["status"] == "on-hold" and current["meta"]["versionId"] == "2"
    # The first version, read again, is still the first version.
    old = fhir_get(world, f"/fhir/MedicationStatement/{entry}/_history/1").json()
    assert old == first


def test_the_cache_keeps_at_most_its_size_newest_first():
    cache = router.Rendered(2)
    renders: list[int] = []

    def render(n: int):
        def make() -> dict:
            renders.append(n)
            return {"n": n}

        return make

    patient = uuid.uuid4()
    keys = [("MedicationStatement", uuid.uuid4(), 1, patient) for _ in range(3)]
    assert cache.get(keys[0], render(0)) == {"n": 0}
    assert cache.get(keys[1], render(1)) == {"n": 1}
    assert cache.get(keys[0], render(0)) == {"n": 0}  # a hit: keys[0] is now the newest
    assert cache.get(keys[2], render(2)) == {"n": 2}  # evicts keys[1], the oldest used
    assert len(cache._found) == 2
    assert cache.get(keys[0], render(0)) == {"n": 0}
    assert cache.get(keys[1], render(1)) == {"n": 1}
    assert renders == [0, 1, 2, 1]


def _request(query: str, *headers: tuple[bytes, bytes]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("fhir.example", 8080),
            "path": "/fhir/MedicationStatement",
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"fhir.example:8080"), *headers],
        }
    )


def test_a_bundle_of_encoded_resources_is_byte_for_byte_the_bundle_of_their_dicts():
    """Paging links, includes and the lenient outcome around resources given as JSON encoded
    beforehand (``orjson.Fragment``) give the bytes of the Bundle built from the dicts."""
    resources = [
        {
            "resourceType": "MedicationStatement",
            "id": f"s{n}",
            "note": [{"text": f'Ærlig talt, {n} \u00bd tablett "ved behov" \U0001f48a'}],
            "dosage": [{"doseAndRate": [{"doseQuantity": {"value": n / 4}}]}],
            "medicationReference": {"reference": f"Medication/m{n % 2}"},
        }
        for n in range(5)
    ]
    medications = {f"m{n}": {"resourceType": "Medication", "id": f"m{n}"} for n in range(2)}

    def include(page: list[dict]) -> list[dict]:
        return [medications[m] for m in router.fhir.referenced_medications(page)]

    fragments = {
        id(r): orjson.Fragment(router.encode(r)) for r in [*resources, *medications.values()]
    }
    lenient = (b"prefer", b"handling=lenient")
    for query, headers in [
        ("patient=p&_include=MedicationStatement:medication", ()),
        ("patient=p&_include=MedicationStatement:medication&_count=2&_offset=2", ()),
        ("patient=p&_count=2&unknown=1&_include=MedicationStatement:medication", (lenient,)),
        ("patient=p&_summary=count", ()),
    ]:
        request = _request(query, *headers)
        asked = search.parse(request, "MedicationStatement")
        whole = router.encode(search.bundle(request, asked, resources, include))
        assembled = router.encode(search.bundle(request, asked, resources, include, fragments))
        assert assembled == whole
        assert orjson.loads(whole)["total"] == 5


def _audited_reads(world) -> int:
    with world.engine.connect() as conn:
        events = audit.events_for_patient(conn, NATIONAL_ID).events
    return sum(e.action == "medication-list.read.fhir-MedicationStatement" for e in events)


def test_a_repeated_search_of_an_unchanged_patient_renders_nothing_and_is_audited(
    world, monkeypatch
):
    entry = prescribed(world)["entry_id"]
    prescribed(world, SIMVASTATIN_28)
    path = f"/fhir/MedicationStatement?patient={world.patient_id}"
    included = f"{path}&_include=MedicationStatement:medication"
    first = fhir_get(world, included)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/fhir+json"
    assert len(resources_of(validated(first.json()), "match")) == 2
    bundles = []
    original = router.bundle

    def counted(*args, **kwargs):
        bundles.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(router, "bundle", counted)
    reads = _audited_reads(world)
    again = [fhir_get(world, included) for _ in range(2)]
    assert [r.content for r in again] == [first.content, first.content]
    assert bundles == []  # nothing rendered: the Bundle kept with the cached state
    assert _audited_reads(world) == reads + 2  # every search is an audited read
    # Another request (another page) is rendered for itself.
    paged = fhir_get(world, f"{included}&_count=1")
    assert len(bundles) == 1 and paged.json()["link"][1]["relation"] == "next"
    held = world.write(
        f"/patients/{world.patient_id}/list/entries/{entry}/hold", {"reason": "pause"}
    )
    assert held.status_code == 200, held.text
    after = fhir_get(world, included)
    assert len(bundles) == 2
    statuses = {r["id"]: r["status"] for r in resources_of(validated(after.json()), "match")}
    assert statuses[entry] == "on-hold"
