"""The per-process cache of rendered MedicationStatement / MedicationRequest versions
(``medloop.fhir.router.RENDERED``): a search renders a stored version once, a new version is
rendered anew, and the cache stays within its bound. Each HTTP test runs on SQLite and
PostgreSQL (the ``world`` fixture)."""

from __future__ import annotations

import uuid

from medloop.fhir import router
from tests.fhir.helpers import fhir_get, prescribed, resources_of, validated


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
