"""Every number and string input can carry is bounded (issue #13): a guard that walks every API
request schema (bodies and parameters, from the published OpenAPI document) and every domain
and decision-support model (what is stored), and fails on a field without the bounds of
``interactions.values`` — so a new field cannot bring back a dose of ``1e309`` that is stored
as ``null``, a 50 MB indication or a ``true`` taken as a dose of 1."""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any

import pytest
from pydantic import BaseModel

import interactions.dosage
import interactions.medication
import medloop.domain
import medloop.loop
from medloop.api.app import create_app
from medloop.api.config import ApiSettings
from medloop.json_input import InvalidJson, loads
from medloop.store.db import make_engine

_STRING_FORMATS = {"date", "date-time", "uuid", "time", "duration"}


def _models() -> list[type[BaseModel]]:
    """The domain's and the loop's models, and decision support's input models."""
    modules = [interactions.dosage, interactions.medication]
    for package in (medloop.domain, medloop.loop):
        for info in pkgutil.iter_modules(package.__path__):
            modules.append(importlib.import_module(f"{package.__name__}.{info.name}"))
    found = {
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
        and value.model_fields
        and "[" not in value.__qualname__  # RootModel[str] and the like: their subclasses count
    }
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _unbounded(schema: Any, where: str, arrays: bool = True) -> list[str]:
    """Paths of number, integer and string schemas (and arrays, if ``arrays``) in ``schema``
    without bounds."""
    faults: list[str] = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if "enum" in schema or "const" in schema:
            pass
        elif kind == "string" and schema.get("format") not in _STRING_FORMATS:
            if "maxLength" not in schema and "pattern" not in schema:
                faults.append(f"{where}: a string without maxLength")
        elif kind in ("number", "integer"):
            if "minimum" not in schema and "exclusiveMinimum" not in schema:
                faults.append(f"{where}: a {kind} without a minimum")
            if "maximum" not in schema and "exclusiveMaximum" not in schema:
                faults.append(f"{where}: a {kind} without a maximum")
        elif kind == "array" and arrays and not {"maxItems", "prefixItems"} & schema.keys():
            faults.append(f"{where}: an array without maxItems")
        for key, value in schema.items():
            faults += _unbounded(value, f"{where}.{key}", arrays)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            faults += _unbounded(value, f"{where}[{index}]", arrays)
    return faults


def _loose_numbers(schema: Any, where: str) -> list[str]:
    """Paths of float and int validators in a pydantic core schema that take booleans or
    strings (not strict) or non-finite floats."""
    faults: list[str] = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("float", "int") and not schema.get("strict"):
            faults.append(f'{where}: a lax {kind} (takes true and "1")')
        if kind == "float" and schema.get("allow_inf_nan", True) and not schema.get("strict"):
            faults.append(f"{where}: a float that takes NaN and infinities")
        for key, value in schema.items():
            faults += _loose_numbers(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            faults += _loose_numbers(value, f"{where}[{index}]")
    return faults


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    engine = make_engine("sqlite://")
    return create_app(ApiSettings.from_env("sqlite://"), engine=engine).openapi()


def _request_schemas(openapi: dict[str, Any]) -> dict[str, Any]:
    """The component schemas a request body refers to (transitively), and the parameters."""
    components = openapi["components"]["schemas"]
    wanted: list[str] = []
    parameters: dict[str, Any] = {}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {})
            wanted += _refs(body)
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path"):
                    parameters[f"{method} {path} {parameter['name']}"] = parameter["schema"]
    seen: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name not in seen:
            seen[name] = components[name]
            wanted += _refs(components[name])
    return {**seen, **parameters}


def _refs(schema: Any) -> list[str]:
    text = json.dumps(schema)
    return [part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]]


def test_every_number_string_and_list_of_an_api_request_is_bounded(openapi):
    faults = [
        fault
        for name, schema in _request_schemas(openapi).items()
        for fault in _unbounded(schema, name)
    ]
    assert faults == []


@pytest.mark.parametrize("model", _models(), ids=lambda cls: cls.__qualname__)
def test_every_number_and_string_of_a_domain_model_is_bounded(model):
    # Stored collections grow with the patient's history: only requests bound their lists.
    assert _unbounded(model.model_json_schema(), model.__qualname__, arrays=False) == []


@pytest.mark.parametrize("model", _models(), ids=lambda cls: cls.__qualname__)
def test_every_number_of_a_domain_model_is_strict_and_finite(model):
    faults = _loose_numbers(model.__pydantic_core_schema__, model.__qualname__)
    # A FieldChange's before/after are JSON copies of fields validated by their own model.
    assert [f for f in faults if "python_schema.choices" not in f] == []


def test_the_guard_finds_an_unbounded_field():
    class Loose(BaseModel):
        dose: float
        note: str
        lines: list[int]

    assert len(_unbounded(Loose.model_json_schema(), "Loose")) == 6
    assert len(_loose_numbers(Loose.__pydantic_core_schema__, "Loose")) == 3


@pytest.mark.parametrize(
    "text",
    [
        b"[1e309]",
        b"[-1e400]",
        b"[NaN]",
        b"[Infinity]",
        b'["\\ud800"]',
        b'["\\udfff x"]',
        b'{"a\\u0000": 1}',
        b'{"a": "b\\u0000"}',
        b"[" * 65 + b"]" * 65,
        b'"\xed\xa0\x80"',
    ],
)
def test_json_input_refuses_what_cannot_be_stored(text):
    with pytest.raises(InvalidJson):
        loads(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": "\\\\u0000"}',
        b"[" * 64 + b"]" * 64,
        b'{"a": [1.5, -2, "\\u00e6"]}',
        b'"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"',
    ],
)
def test_json_input_takes_what_only_looks_suspicious(text):
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize(
    "patient",
    [
        '{"weight_kg": 1e309}',
        '{"weight_kg": NaN}',
        '{"weight_kg": true}',
        '{"weight_kg": "70"}',
        '{"weight_kg": 70000}',
        '{"allergies": [{"atc": "J01C\\ud800"}]}',
    ],
)
def test_medloop_check_refuses_non_finite_loose_or_out_of_bounds_patient_facts(patient):
    from medloop.check import InvalidCheckRequest, parse_request

    text = '{"medications": [{"id": "m1", "atc": "B01AA03"}], "patient": ' + patient + "}"
    with pytest.raises(InvalidCheckRequest):
        parse_request(text)
    assert parse_request(text.replace(patient, '{"weight_kg": 70}')).patient.weight_kg == 70
