"""A command's answer (``api.deps.render``) is the response Starlette's own set-up makes from
the same body and headers: status, body bytes, raw headers in order, no background task (its
raw headers are written directly; issue #20)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from medloop.api.deps import etag, render
from medloop.api.responses import JSONResponse
from medloop.loop.runner import CommandResult


@pytest.mark.parametrize("replayed", [False, True])
@pytest.mark.parametrize("status", [200, 201, 204])
@pytest.mark.parametrize("location", [None, "/patients/a/prescriptions/b"])
def test_a_rendered_answer_is_what_starlette_makes_of_it(
    replayed: bool, status: int, location: str | None
) -> None:
    result = CommandResult(
        patient_id=uuid4(),
        list_version=7,
        alerts=(),
        response={"patient_id": "x", "list_version": 7, "alerts": [], "drug": "Æøå 5 mg"},
        replayed=replayed,
    )
    headers = {"ETag": etag(result.list_version)}
    if location is not None:
        headers["Location"] = location
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    expected = JSONResponse(result.response, status_code=status, headers=headers)
    found = render(result, status, location=location)
    assert type(found) is JSONResponse
    assert found.status_code == expected.status_code
    assert found.body == expected.body
    assert found.raw_headers == expected.raw_headers
    assert found.headers == expected.headers
    assert found.background is expected.background is None
    assert found.media_type == expected.media_type
    assert vars(found) == vars(expected)
