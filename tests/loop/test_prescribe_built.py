"""A prescribe's list command and prescription request built from validated parts (issue #20)
are the instances validation makes, and the order's and alerts' dumps by the serialiser's
``to_python`` are ``model_dump(mode="json")``'s."""

from __future__ import annotations

import uuid
from datetime import date
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from interactions import check
from interactions.dosage import Use
from interactions.values import MAX_TEXT
from medloop.domain.medication_list import AddEntry
from medloop.domain.prescription import PrescribedQuantity, PrescriptionRequest
from medloop.loop import prescribe as prescribe_module
from medloop.loop.catalogue import DrugOrder
from medloop.loop.prescribe import PrescribeOrder, PrescriptionTerms, prescribe_decision
from medloop.loop.runner import Call
from tests.built_models import assert_same_model
from tests.domain.helpers import SERTRALIN_PACKAGE, ZOCOR_PACKAGE
from tests.interactions.helpers import fixed, knowledge, med
from tests.loop.helpers import GP, NOW, PHARMACIST


class _Stop(Exception):
    pass


def _built(
    order: PrescribeOrder, call: Call, drug: Any, validity: tuple[str, ...], monkeypatch
) -> tuple[AddEntry, PrescriptionRequest]:
    """The command and request ``prescribe_decision`` builds for ``order``."""
    got: dict[str, Any] = {}

    def apply(command: AddEntry) -> Any:
        got["add"] = command
        return SimpleNamespace(entry=lambda _: None, patient_id=uuid.uuid4()), None

    def issue(entry: Any, patient_id: Any, request: PrescriptionRequest, **_: Any) -> Any:
        got["request"] = request
        raise _Stop

    monkeypatch.setattr(prescribe_module, "issue", issue)
    ctx = SimpleNamespace(
        catalogue=SimpleNamespace(resolve=lambda _: drug, validity_of=lambda _: validity),
        state=SimpleNamespace(medication_list=SimpleNamespace(apply=apply)),
    )
    with pytest.raises(_Stop):
        prescribe_decision(order, call)(ctx)  # type: ignore[arg-type]
    return got["add"], got["request"]


_same = assert_same_model


def _orders() -> list[PrescribeOrder]:
    orders = []
    for i in range(12):
        orders.append(
            PrescribeOrder(
                entry_id=uuid.uuid4(),
                drug=DrugOrder(varenr="454165"),
                use=(Use.REGULAR, Use.AS_NEEDED)[i % 2],
                dosage=fixed(1 + i) if i % 3 else None,
                indication=None if i % 4 else f"indikasjon {i}",
                start=date(2026, 1, 1 + i),
                stop=date(2026, 6, 1) if i % 5 == 1 else None,
                multidose=i % 6 == 2,
                terms=PrescriptionTerms(
                    prescription_id=uuid.uuid4(),
                    quantity=PrescribedQuantity(packages=1 + i),
                    repeats=i % 3,
                    reserved_against_substitution=i % 2 == 1,
                    reimbursed=i % 3 == 1,
                    expires=date(2027, 1, 1) if i % 2 else None,
                ),
            )
        )
    return orders


def _validated(
    order: PrescribeOrder, call: Call, drug: Any, validity: tuple[str, ...]
) -> tuple[AddEntry, PrescriptionRequest]:
    terms = order.terms
    add = AddEntry(
        author=call.actor,
        at=call.at,
        reason=call.reason,
        entry_id=order.entry_id,
        drug=drug,
        dosage=order.dosage,
        use=order.use,
        indication=order.indication,
        start=order.start,
        stop=order.stop,
        multidose=order.multidose,
        prescriber=call.actor,
        instituted_by=call.actor,
        prescription_ids=(terms.prescription_id,),
    )
    request = PrescriptionRequest(
        id=terms.prescription_id,
        issued=call.at.date(),
        quantity=terms.quantity,
        repeats=terms.repeats,
        reserved_against_substitution=terms.reserved_against_substitution,
        reimbursed=terms.reimbursed,
        expires=terms.expires,
        product_validity=validity,
    )
    return add, request


def test_the_built_command_and_request_are_the_validated_ones(monkeypatch) -> None:
    monkeypatch.setattr(prescribe_module, "_VALIDITIES_CHECKED", set())
    validities = [("P1Y",), ("P1Y", "P6M"), (), ("P1Y",)]
    for i, order in enumerate(_orders()):
        call = Call(actor=(GP, PHARMACIST)[i % 2], at=NOW, reason=None if i % 2 else "r")
        drug = (ZOCOR_PACKAGE, SERTRALIN_PACKAGE)[i % 2]
        validity = validities[i % len(validities)]
        add, request = _built(order, call, drug, validity, monkeypatch)
        want_add, want_request = _validated(order, call, drug, validity)
        _same(add, want_add)
        _same(request, want_request)
        assert validity in prescribe_module._VALIDITIES_CHECKED  # the next one is built


def test_the_built_ones_are_what_they_were_before(monkeypatch) -> None:
    # Without the kept validities or the exact types, the request and command are validated,
    # as before; the built ones equal those.
    order = _orders()[1]
    call = Call(actor=GP, at=NOW, reason="r")
    monkeypatch.setattr(prescribe_module, "_VALIDITIES_CHECKED", set())
    built: list[type] = []
    build = prescribe_module.built

    def counted(cls: type, values: dict[str, Any], /) -> Any:
        built.append(cls)
        return build(cls, values)

    monkeypatch.setattr(prescribe_module, "built", counted)
    first = _built(order, call, ZOCOR_PACKAGE, ("P1Y",), monkeypatch)
    assert built == [AddEntry]  # the request validated: its validities were new
    second = _built(order, call, ZOCOR_PACKAGE, ("P1Y",), monkeypatch)
    assert built == [AddEntry, AddEntry, PrescriptionRequest]
    for made, validated in zip(second, first, strict=True):
        _same(made, validated)


def test_the_built_ones_are_given_in_their_field_order(monkeypatch) -> None:
    # ``built`` takes a dict in the model's field order as the instance's ``__dict__`` as it
    # is; any other order it sends through ``constructed`` (the same instance, at a cost).
    # ``prescribe_decision`` writes both dicts in that order: a field added to or moved in
    # ``AddEntry`` or ``PrescriptionRequest`` and not here fails.
    monkeypatch.setattr(prescribe_module, "_VALIDITIES_CHECKED", {("P1Y",)})
    given: list[tuple[type, tuple[str, ...]]] = []
    build = prescribe_module.built

    def recorded(cls: type, values: dict[str, Any], /) -> Any:
        given.append((cls, tuple(values)))
        made = build(cls, values)
        assert vars(made) is values  # taken as it is, not reordered by ``constructed``
        return made

    monkeypatch.setattr(prescribe_module, "built", recorded)
    _built(_orders()[3], Call(actor=GP, at=NOW), ZOCOR_PACKAGE, ("P1Y",), monkeypatch)
    assert given == [
        (AddEntry, tuple(AddEntry.model_fields)),
        (PrescriptionRequest, tuple(PrescriptionRequest.model_fields)),
    ]


def test_unvalidated_product_validities_get_the_same_error_and_are_not_kept(
    monkeypatch,
) -> None:
    monkeypatch.setattr(prescribe_module, "_VALIDITIES_CHECKED", set())
    order = _orders()[0]
    call = Call(actor=GP, at=NOW)
    for bad in (("x" * (MAX_TEXT + 1),), ("P1Y", "\ud800")):
        with pytest.raises(ValidationError) as refused:
            _built(order, call, ZOCOR_PACKAGE, bad, monkeypatch)
        with pytest.raises(ValidationError) as before:
            _validated(order, call, ZOCOR_PACKAGE, bad)
        assert refused.value.errors() == before.value.errors()
        assert bad not in prescribe_module._VALIDITIES_CHECKED


def test_parts_not_of_their_exact_types_are_validated(monkeypatch) -> None:
    class OtherCall(Call):
        pass

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("built without validation")

    order = _orders()[2]
    monkeypatch.setattr(prescribe_module, "_VALIDITIES_CHECKED", {("P1Y",)})
    monkeypatch.setattr(prescribe_module, "built", refused)
    call = OtherCall(actor=GP, at=NOW)
    add, request = _built(order, call, ZOCOR_PACKAGE, ("P1Y",), monkeypatch)
    want_add, want_request = _validated(order, call, ZOCOR_PACKAGE, ("P1Y",))
    _same(add, want_add)
    _same(request, want_request)


def test_to_python_is_model_dump_for_the_order_and_alerts() -> None:
    # ``prescribe``/``renew`` dump the order and ``run_command`` its alerts by the serialiser's
    # ``to_python`` (what ``model_dump`` calls with its defaults, pydantic 2.14).
    values: list[BaseModel] = list(_orders())
    values += check(knowledge(), [med("PK_MAREVAN"), med("PK_IBUX"), med("PK_VOLTAREN")])
    assert len(values) > len(_orders())
    for value in values:
        assert orjson.dumps(value.__pydantic_serializer__.to_python(value, mode="json")) == (
            orjson.dumps(value.model_dump(mode="json"))
        )
