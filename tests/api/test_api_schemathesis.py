"""Schemathesis over the published OpenAPI schema: generated requests (bounded examples) with a
prescriber's token never get a 500, and every response has a documented status, content type
and body shape."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.api.helpers import GP_TOKEN, auth
from tests.loop.helpers import NOW, demo_world

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The schema is loaded when the module is collected; the database behind the app is only
# migrated and filled by the fixture.
_DIRECTORY = Path(tempfile.mkdtemp(prefix="medloop-st-"))
atexit.register(shutil.rmtree, _DIRECTORY, True)
_ENGINE = make_engine(f"sqlite:///{_DIRECTORY / 'medloop.db'}")
_APP = create_app(ApiSettings.from_env("sqlite://"), engine=_ENGINE, clock=lambda: NOW)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@pytest.fixture(scope="module")
def patient_id():
    upgrade(_ENGINE)
    yield demo_world(_ENGINE)
    _ENGINE.dispose()


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers_and_never_a_500(case, patient_id):
    if "patient_id" in (case.path_parameters or {}):
        case.path_parameters["patient_id"] = str(patient_id)
    case.call_and_validate(headers=auth(GP_TOKEN), checks=CHECKS)
