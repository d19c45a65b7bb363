"""``schemas.order_of``: the order a prescribe's body holds is built from the body's validated
values (issue #20), the same instance validating them again gives; other bodies and orders are
validated as before."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, model_validator

from interactions.values import FIRST_DAY, LAST_DAY
from medloop.api import schemas
from medloop.api.schemas import Intent, PrescribeRequest, order_of
from medloop.loop.change import EntryOrder
from medloop.loop.prescribe import PrescribeOrder
from tests.built_models import assert_same_model

_DOSAGES = [
    None,
    {
        "use": "regular",
        "fixed": [{"amount": {"value": 0.5, "unit": "tablett"}, "time_of_day": "evening"}],
        "text": "1/2 tablett om kvelden",
    },
    {
        "use": "regular",
        "fixed": [
            {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "morning"},
            {"amount": {"value": 2, "unit": "tablett"}, "time_of_day": "evening"},
        ],
    },
]
_DAYS = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)
_TEXT = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["", " padded ", "é\u0301"]))


@st.composite
def _bodies(draw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entry_id": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "drug": draw(
            st.sampled_from([{"varenr": "123456"}, {"fest_id": "ID_ABC"}, {"varenr": "000001"}])
        ),
        "use": draw(st.sampled_from(["regular", "course", "as-needed"])),
        "start": draw(_DAYS).isoformat(),
        "terms": {
            "prescription_id": str(uuid.uuid4()),
            "quantity": draw(
                st.sampled_from(
                    [
                        {"packages": 1},
                        {"packages": 3},
                        {"amount": {"value": 100, "unit": "tablett"}},
                    ]
                )
            ),
        },
    }
    optional = {
        "dosage": st.sampled_from(_DOSAGES),
        "indication": _TEXT,
        "stop": st.one_of(st.none(), _DAYS.map(date.isoformat)),
        "multidose": st.booleans(),
        "reason": _TEXT,
        "overrides": st.dictionaries(
            st.text(min_size=1, max_size=5), st.text(min_size=1), max_size=2
        ),
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            body[name] = draw(values)
    terms_optional = {
        "repeats": st.integers(0, 1000),
        "reserved_against_substitution": st.booleans(),
        "reimbursed": st.booleans(),
        "expires": st.one_of(st.none(), _DAYS.map(date.isoformat)),
    }
    for name, values in terms_optional.items():
        if draw(st.booleans()):
            body["terms"][name] = draw(values)
    return body


def _same(built: BaseModel, validated: BaseModel) -> None:
    assert_same_model(built, validated)
    for name in type(built).model_fields:
        assert type(getattr(built, name)) is type(getattr(validated, name))


@settings(max_examples=300, deadline=None)
@given(_bodies())
def test_a_prescribes_order_is_the_order_validating_its_body_gives(raw: dict[str, Any]) -> None:
    try:
        body = PrescribeRequest.model_validate(raw)
    except ValidationError:
        return  # refused before order_of is reached
    validated = PrescribeOrder.model_validate(
        {name: getattr(body, name) for name in PrescribeOrder.model_fields}
    )
    _same(order_of(body, PrescribeOrder), validated)
    # and from the JSON body, as the route gets it
    _same(
        order_of(PrescribeRequest.model_validate_json(body.model_dump_json()), PrescribeOrder),
        validated,
    )


def test_the_prescribe_body_is_built_from(monkeypatch: pytest.MonkeyPatch) -> None:
    assert schemas._BUILT[PrescribeOrder] == frozenset({PrescribeRequest})
    built: list[type] = []
    real = schemas.constructed
    monkeypatch.setattr(
        schemas, "constructed", lambda cls, **v: built.append(cls) or real(cls, **v)
    )
    body = PrescribeRequest.model_validate(
        {
            "entry_id": str(uuid.uuid4()),
            "drug": {"varenr": "123456"},
            "use": "regular",
            "start": "2026-12-06",
            "terms": {"prescription_id": str(uuid.uuid4()), "quantity": {"packages": 1}},
        }
    )
    order_of(body, PrescribeOrder)
    assert built == [PrescribeOrder]
    order_of(body, PrescribeOrder)
    assert built == [PrescribeOrder, PrescribeOrder]


def test_an_order_of_another_body_or_shape_is_validated() -> None:
    class Redefined(PrescribeOrder, Intent):
        indication: str | None = "given"

    class Checked(PrescribeOrder):
        @model_validator(mode="after")
        def _check(self) -> Any:
            return self

    class CheckedRequest(Checked, Intent):
        pass

    class Loose(PrescribeOrder, Intent):
        model_config = {**PrescribeOrder.model_config, "str_strip_whitespace": True}

    assert schemas.built_from(PrescribeRequest, PrescribeOrder)
    assert not schemas.built_from(PrescribeOrder, PrescribeOrder)
    assert not schemas.built_from(Redefined, PrescribeOrder)
    assert not schemas.built_from(CheckedRequest, Checked)
    assert not schemas.built_from(Loose, PrescribeOrder)
    assert not schemas.built_from(schemas.AddEntryRequest, PrescribeOrder)
    assert EntryOrder not in schemas._BUILT
