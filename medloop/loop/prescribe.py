"""Prescribing (``forskrivning``): a new list entry with its prescription in one list change,
and renewal (``fornying``) of an entry's prescription, recalling the old one."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy import Engine

from interactions.dosage import Dosage, Use
from interactions.values import Day, SmallCount
from medloop.domain._model import Frozen, built, id_text
from medloop.domain.drug_reference import CatalogueDrug
from medloop.domain.entry import EntryEdit
from medloop.domain.medication_list import AddEntry
from medloop.domain.personnel import Actor
from medloop.domain.prescribing import renew as renew_prescription
from medloop.domain.prescription import PrescribedQuantity, PrescriptionRequest, issue
from medloop.loop.catalogue import DrugOrder
from medloop.loop.runner import (
    Call,
    CommandResult,
    Context,
    Decide,
    Effect,
    PrescriptionNotFound,
    Screening,
    medications_of,
    run_command,
)


class PrescriptionTerms(Frozen):
    """How much, how often, how long: the prescription part of an order."""

    prescription_id: UUID
    quantity: PrescribedQuantity
    repeats: SmallCount = 0
    reserved_against_substitution: bool = False
    reimbursed: bool = False
    expires: Day | None = None


class PrescribeOrder(Frozen):
    """A new entry (client-chosen ``entry_id``, so that a retry with an override names the same
    alerts) and its prescription."""

    entry_id: UUID
    drug: DrugOrder
    use: Use
    dosage: Dosage | None = None
    indication: str | None = None
    start: Day
    stop: Day | None = None
    terms: PrescriptionTerms
    multidose: bool = False


def prescribe(
    engine: Engine, patient_id: UUID, order: PrescribeOrder, call: Call, *, based_on: int
) -> CommandResult:
    """Add the ordered drug to the list with a new prescription behind it."""
    return run_command(
        engine,
        "prescribe",
        patient_id,
        call,
        prescribe_decision(order, call),
        based_on=based_on,
        # ``model_dump(mode="json")``: its serialiser's ``to_python`` with the same defaults,
        # without ``model_dump``'s Python frame (issue #20; ``tests/loop/test_prescribe_built.py``).
        request=order.__pydantic_serializer__.to_python(order, mode="json"),
    )


def prescribe_decision(order: PrescribeOrder, call: Call) -> Decide:
    """How ``prescribe`` decides, for a command that prescribes as part of its own change
    (accepting a multidose proposal)."""

    def decide(ctx: Context) -> Effect:
        drug = ctx.catalogue.resolve(order.drug)
        terms = order.terms
        actor = call.actor
        fast = (
            type(order) is PrescribeOrder
            and type(terms) is PrescriptionTerms
            and type(call) is Call
            and type(actor) is Actor
            and type(drug) is CatalogueDrug
        )
        fields = {
            "author": actor,
            "at": call.at,
            "reason": call.reason,
            "entry_id": order.entry_id,
            "drug": drug,
            "dosage": order.dosage,
            "use": order.use,
            "indication": order.indication,
            "start": order.start,
            "stop": order.stop,
            "multidose": order.multidose,
            "prescriber": actor,
            "instituted_by": actor,
            "prescription_ids": (terms.prescription_id,),
        }
        # When every part is a validated value of the command's own field type (a validated
        # order's and call's, the catalogue's resolved drug), the list command is built without
        # validating them again (issue #20; ``tests/loop/test_prescribe_built.py``): ``built``
        # takes ``fields``, written in ``AddEntry``'s field order, as its ``__dict__``.
        add = built(AddEntry, fields) if fast else AddEntry(**fields)
        new_list, change = ctx.state.medication_list.apply(add)
        validity = ctx.catalogue.validity_of(drug)
        if fast and validity in _VALIDITIES_CHECKED:
            # The terms are a validated order's; the product validities, which come from the
            # catalogue unvalidated, are a tuple validation accepted before: the request is
            # built without validating them again (issue #20).
            # (In ``PrescriptionRequest``'s field order: ``built`` takes the dict as it is.)
            request = built(
                PrescriptionRequest,
                {
                    "id": terms.prescription_id,
                    "issued": call.day,
                    "quantity": terms.quantity,
                    "repeats": terms.repeats,
                    "reserved_against_substitution": terms.reserved_against_substitution,
                    "reimbursed": terms.reimbursed,
                    "expires": terms.expires,
                    "product_validity": validity,
                },
            )
        else:
            request = _request(terms, call.day, validity)
            _checked(validity)
        prescription, version = issue(
            new_list.entry(order.entry_id), new_list.patient_id, request, at=call.at, by=call.actor
        )
        entry_id = id_text(order.entry_id)
        # ``Effect(…)`` and ``Screening(…)`` without their frozen dataclasses' ``__init__`` (a
        # Python frame and an ``object.__setattr__`` a field): every field in the class's order,
        # the defaults as the constructor gives them (issue #20; tests/loop/test_runner_made.py).
        screening = _new(Screening)
        screening.__dict__.update(medications=tuple(medications_of(new_list)), proposed=(entry_id,))
        effect = _new(Effect)
        effect.__dict__.update(
            list_change=change,
            prescription_versions=(version,),
            dispenses=(),
            annulments=(),
            handled={},
            reconciliation=None,
            screening=screening,
            response={
                "entry_id": entry_id,
                "prescription_id": id_text(prescription.id),
                "expires": prescription.expires.isoformat(),
                "drug": drug.name,
            },
            writes=(),
            patient=None,
        )
        return effect

    return decide


class RenewOrder(Frozen):
    """Renew ``prescription_id`` with new terms, optionally changing the entry."""

    prescription_id: UUID
    terms: PrescriptionTerms
    change: EntryEdit | None = None


def renew(
    engine: Engine, patient_id: UUID, order: RenewOrder, call: Call, *, based_on: int
) -> CommandResult:
    """A new prescription backs the entry; the old one is recalled when still dispensable."""
    return run_command(
        engine,
        "renew",
        patient_id,
        call,
        renew_decision(patient_id, order, call),
        based_on=based_on,
        # ``model_dump(mode="json")``: its serialiser's ``to_python`` with the same defaults,
        # without ``model_dump``'s Python frame (issue #20; ``tests/loop/test_prescribe_built.py``).
        request=order.__pydantic_serializer__.to_python(order, mode="json"),
    )


def renew_decision(patient_id: UUID, order: RenewOrder, call: Call) -> Decide:
    """How ``renew`` decides, for a command that renews as part of its own change."""

    def decide(ctx: Context) -> Effect:
        old = ctx.state.prescriptions.get(order.prescription_id)
        if old is None:
            raise PrescriptionNotFound(
                f"patient {patient_id} has no prescription {order.prescription_id}",
                prescription_id=order.prescription_id,
                patient_id=patient_id,
            )
        validity = ctx.catalogue.validity_of(old.drug)
        renewed = renew_prescription(
            ctx.state.medication_list,
            old,
            _request(order.terms, call.day, validity),
            change=order.change,
            at=call.at,
            by=call.actor,
            reason=call.reason,
        )
        versions = [renewed.prescription_version]
        if renewed.recalled is not None:
            versions.append(renewed.recalled[1])
        return Effect(
            list_change=renewed.list_change,
            prescription_versions=tuple(versions),
            screening=Screening(
                tuple(medications_of(renewed.medication_list)), (str(old.entry_id),)
            ),
            response={
                "entry_id": str(old.entry_id),
                "prescription_id": str(renewed.prescription.id),
                "recalled": None if renewed.recalled is None else str(old.id),
                "expires": renewed.prescription.expires.isoformat(),
            },
        )

    return decide


def _request(
    terms: PrescriptionTerms, issued: date, product_validity: tuple[str, ...]
) -> PrescriptionRequest:
    return PrescriptionRequest(
        id=terms.prescription_id,
        issued=issued,
        quantity=terms.quantity,
        repeats=terms.repeats,
        reserved_against_substitution=terms.reserved_against_substitution,
        reimbursed=terms.reimbursed,
        expires=terms.expires,
        product_validity=product_validity,
    )


_new = object.__new__  # as ``runner._new``

_VALIDITIES_CHECKED: set[tuple[str, ...]] = set()
"""Product validities a ``PrescriptionRequest`` has validated (at most ``_VALIDITIES_KEPT``):
a request with one of them is built without validating it again."""
_VALIDITIES_KEPT = 1_024


def _checked(validity: tuple[str, ...]) -> None:
    """Remember ``validity``, which a ``PrescriptionRequest`` has just accepted, when it is a
    tuple of plain strings (what validating it gives, equal item for item)."""
    if type(validity) is tuple and all(type(item) is str for item in validity):
        if len(_VALIDITIES_CHECKED) >= _VALIDITIES_KEPT:
            _VALIDITIES_CHECKED.clear()
        _VALIDITIES_CHECKED.add(validity)
