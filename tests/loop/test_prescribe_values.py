"""A prescribe's own values built without validating again what was validated a moment before
(issue #20): the route's order, the ``AddEntry`` and the ``PrescriptionRequest`` are the
instances validating the same values gives; the product validities and a validity's expiry
kept per catalogue version and per duration and day give what is computed afresh."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from interactions.values import MAX_TEXT
from medloop.api.routes.gp import _prescribe_order
from medloop.api.schemas import PrescribeRequest, order_of
from medloop.domain.medication_list import AddEntry
from medloop.domain.prescription import PrescriptionRequest
from medloop.domain.validity import IsoDuration, Validity, expiry_date
from medloop.loop.catalogue import Catalogue
from medloop.loop.prescribe import PrescribeOrder, _add_entry, _request
from medloop.loop.runner import Call
from tests.domain.helpers import DOCTOR, PARACET_PACKAGE, T0


def _same_instance(made: BaseModel, validated: BaseModel) -> None:
    assert type(made) is type(validated)
    assert made == validated
    assert list(made.__dict__) == list(validated.__dict__)
    assert made.model_fields_set == validated.model_fields_set
    assert made.__pydantic_extra__ is None and validated.__pydantic_extra__ is None
    assert made.__pydantic_private__ == validated.__pydantic_private__
    assert made.model_dump_json() == validated.model_dump_json()
    assert orjson.dumps(made.model_dump(mode="json")) == orjson.dumps(
        validated.model_dump(mode="json")
    )


def _validated(value: BaseModel) -> BaseModel:
    fields: dict[str, Any] = {name: getattr(value, name) for name in type(value).model_fields}
    return type(value).model_validate(fields)


def _body(**changes: Any) -> PrescribeRequest:
    return PrescribeRequest.model_validate(
        {
            "entry_id": str(uuid.uuid4()),
            "drug": {"varenr": "017426"},
            "use": "regular",
            "dosage": {"use": "regular", "text": "1 tablett morgen"},
            "indication": "Smerter",
            "start": "2024-03-01",
            "stop": "2024-06-01",
            "terms": {
                "prescription_id": str(uuid.uuid4()),
                "quantity": {"packages": 2},
                "repeats": 3,
                "reimbursed": True,
                "expires": "2024-12-01",
            },
            "multidose": True,
            **changes,
        }
    )


@pytest.mark.parametrize("model", [PrescribeOrder, AddEntry, PrescriptionRequest])
def test_the_models_built_without_validation_have_no_validators_of_their_own(
    model: type[BaseModel],
) -> None:
    # ``constructed`` gives the validated instance only for such models: a validator added to
    # one of these must come with validation here again.
    decorators = model.__pydantic_decorators__
    assert not decorators.model_validators
    assert not decorators.field_validators
    assert not decorators.validators
    assert not decorators.root_validators


@pytest.mark.parametrize("changes", [{}, {"dosage": None, "indication": None, "stop": None}])
def test_the_routes_order_is_the_validated_order(changes: dict[str, Any]) -> None:
    body = _body(reason="hvorfor", overrides={"a/b": "c"}, **changes)
    made = _prescribe_order(body)
    _same_instance(made, order_of(body, PrescribeOrder))
    assert made.model_dump(mode="json") == order_of(body, PrescribeOrder).model_dump(mode="json")


def test_another_body_takes_order_of() -> None:
    class Wider(PrescribeRequest):
        pass

    body = Wider.model_validate(_body().model_dump(mode="json"))
    _same_instance(_prescribe_order(body), order_of(body, PrescribeOrder))


def _call(**changes: Any) -> Call:
    return Call(actor=DOCTOR, at=T0, idempotency_key="k", **changes)


@pytest.mark.parametrize("changes", [{}, {"dosage": None, "indication": None, "stop": None}])
def test_the_add_entry_is_the_validated_one(changes: dict[str, Any]) -> None:
    order = _prescribe_order(_body(**changes))
    made = _add_entry(order, _call(), PARACET_PACKAGE)
    _same_instance(made, _validated(made))
    assert made.prescriber is DOCTOR and made.prescription_ids == (order.terms.prescription_id,)


def test_an_add_entry_with_a_reason_or_an_unchecked_moment_is_validated() -> None:
    order = _prescribe_order(_body())
    with_reason = _add_entry(order, _call(reason="fordi"), PARACET_PACKAGE)
    _same_instance(with_reason, _validated(with_reason))
    # A reason set past validation (``model_copy``) is checked here as before.
    too_long = _call().model_copy(update={"reason": "x" * (MAX_TEXT + 1)})
    with pytest.raises(ValidationError):
        _add_entry(order, too_long, PARACET_PACKAGE)
    naive = _call().model_copy(update={"at": datetime(2024, 3, 1, 9)})
    with pytest.raises(ValidationError):
        _add_entry(order, naive, PARACET_PACKAGE)


@pytest.mark.parametrize("validity", [(), ("P1Y",), ("P6M", "P1Y")])
def test_the_prescription_request_is_the_validated_one(validity: tuple[str, ...]) -> None:
    terms = _prescribe_order(_body()).terms
    made = _request(terms, T0.date(), validity)
    _same_instance(made, _validated(made))


def test_a_request_of_values_not_known_valid_is_validated() -> None:
    terms = _prescribe_order(_body()).terms
    with pytest.raises(ValidationError):
        _request(terms, T0.date(), ("\ud800",))  # a lone surrogate: refused as before
    with pytest.raises(ValidationError):
        _request(terms, T0.date(), ("P" * (MAX_TEXT + 1),))
    with pytest.raises(ValidationError):  # a datetime is not a day: validated, and refused
        _request(terms, T0, ("P1Y",))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        _request(terms, "not a day", ())  # type: ignore[arg-type]


def test_a_validitys_kept_expiry_is_the_one_computed() -> None:
    durations = [
        IsoDuration.parse(text) for text in ("P1Y", "P10D", "P3Y", "P6M", "P2W", "P1Y1M1W1D")
    ]
    day = date(2023, 12, 25)
    for _ in range(800):
        for duration in durations:
            validity = Validity(duration=duration, basis="catalogue")
            assert validity.expires(day) == expiry_date(day, duration)
            assert validity.expires(day) == expiry_date(day, duration)  # kept
        day += timedelta(days=1)
    assert Validity(duration=durations[0], basis="x").expires(date(2024, 2, 29)) == date(
        2025, 2, 27
    )


def test_a_duration_subclass_counts_its_own_way() -> None:
    class Longer(IsoDuration):
        def after(self, start: date) -> date:
            return super().after(start) + timedelta(days=1)

    validity = Validity.model_construct(duration=Longer(years=1), basis="x")
    assert validity.expires(date(2024, 3, 1)) == date(2025, 3, 1)
    assert Validity(duration=IsoDuration(years=1), basis="x").expires(date(2024, 3, 1)) == date(
        2025, 2, 28
    )


def test_a_catalogues_kept_validities_are_the_ones_computed() -> None:
    validities = {"A": ("P1Y", "P6M"), "B": ("P6M",), "C": ()}
    catalogue = Catalogue(
        version=1,
        knowledge=None,  # type: ignore[arg-type]
        packages_by_varenr={},
        substitution_groups=(),
        product_validity=validities,
    )

    def of(*products: str) -> Any:
        return SimpleNamespace(resolved=SimpleNamespace(product_ids=products))

    for products, expected in [
        (("A",), ("P1Y", "P6M")),
        (("A", "B"), ("P1Y", "P6M")),
        (("B", "C"), ("P6M",)),
        (("C",), ()),
        (("D",), ()),
        (("A",), ("P1Y", "P6M")),
    ]:
        assert catalogue.validity_of(of(*products)) == expected
        assert catalogue.validity_of(of(*products)) == expected  # kept
