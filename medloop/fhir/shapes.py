"""A posted MedicationRequest checked without building ``fhir.resources``' model tree, when
every element it carries has one of the plain shapes checked here: the elements the
prescribe mapping reads (``medloop.fhir.writes``), written as clients commonly write them.

``fhir.resources`` validates a MedicationRequest by building a model per element (a dozen for
a plain prescription) and running its validators on each: in a served create that was about
a third of a millisecond of CPU, most of the FHIR layer's own cost. ``plain_request`` checks
the common shapes directly and builds only the ``Dosage`` models, which the dosage mapping
reads (validated by ``fhir.resources`` itself).

Strictness stays ``fhir.resources``': every check here accepts only a subset of what it
accepts (codes and URIs of visible ASCII characters, strings with a visible ASCII character,
numbers as JSON numbers, days as ``YYYY-MM-DD``, no empty arrays or objects, no nulls).
Anything else — an element not listed here, a primitive's extension (``_status``), a value
outside the subset — makes ``plain_request`` answer ``None``, and the full validation
decides and words the error. ``tests/fhir/test_fhir_shapes.py`` holds the subset against
``fhir.resources`` on mutations of every element.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.dosage import Dosage
from pydantic import ValidationError

from medloop.fhir.memo import Memo, content_key

_VISIBLE = re.compile(r"[!-~]+")
"""Codes, URIs and ids of the subset: visible ASCII characters, no whitespace."""
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SOME_VISIBLE = re.compile(r"[!-~]")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
"""A JSON number as FHIR's decimal writes it (a float's ``str`` must read so)."""
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
"""A dateTime of the subset: a day, or a moment to the second (at most microseconds) with a
time zone."""
_LONGEST = 10_000
"""Strings, codes and URIs longer than this are left to the full validation."""
_UNSIGNED_MAX = 2_147_483_647

_STATUS = frozenset({"active"})
_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
_INTENT = frozenset({"order", "original-order"})
"""The status and intents a create accepts (``writes._order``); others are refused after the
full validation."""


class _Other(Exception):
    """An element outside the plain shapes: the full validation decides."""


def plain_request(resource: dict[str, Any]) -> list[Dosage] | None:
    """The ``dosageInstruction`` of ``resource`` (a MedicationRequest) as ``fhir.resources``
    models when every element of it has a plain shape (and so is valid FHIR); ``None`` when
    one has not (``fhir.resources`` must validate the whole resource)."""
    try:
        return _request(resource)
    except _Other:
        return None


def _request(resource: dict[str, Any]) -> list[Dosage]:
    instructions: list[Dosage] = []
    required = {"status", "intent", "subject"}
    medication = 0
    for key, value in resource.items():
        if key == "resourceType":
            continue
        required.discard(key)
        if key == "id":
            _id(value)
        elif key == "status":
            _among(value, _STATUS)
        elif key == "intent":
            _among(value, _INTENT)
        elif key in ("subject", "requester"):
            _reference(value)
        elif key == "authoredOn":
            _date_time(value)
        elif key == "priority":
            _among(value, _PRIORITY)
        elif key == "medicationCodeableConcept":
            _concept(value)
            medication += 1
        elif key == "medicationReference":
            _reference(value)
            medication += 1
        elif key == "identifier":
            for identifier in _items(value):
                _fields(identifier, _IDENTIFIER)
        elif key == "extension":
            _extensions(value, nested=True)
        elif key == "dosageInstruction":
            instructions = _dosages(value)
        elif key == "dispenseRequest":
            _fields(value, _DISPENSE_REQUEST)
        elif key == "substitution":
            _substitution(value)
        elif key == "reasonCode":
            for concept in _items(value):
                _concept(concept)
        else:
            raise _Other(key)
    if required or medication != 1:
        raise _Other("a required element or the medication[x]")
    return instructions


DOSAGES: Memo[list[Dosage]] = Memo(1024)
"""A posted ``dosageInstruction`` as validated ``fhir.resources`` models, by its content.
Validating one (a dozen models, each with its validators) was ≈ 6 % of a served create's CPU
(bench/RESULTS.md, issue #18, session 8), and prescribers send the same few dosages over and
over. A dosage ``fhir.resources`` refuses is not kept: it is refused again, in full."""


def _string(value: Any) -> None:
    if type(value) is not str or len(value) > _LONGEST or _SOME_VISIBLE.search(value) is None:
        raise _Other(value)


def _code(value: Any) -> None:
    if type(value) is not str or len(value) > _LONGEST or not _VISIBLE.fullmatch(value):
        raise _Other(value)


_uri = _code


def _id(value: Any) -> None:
    if type(value) is not str or not _ID.fullmatch(value):
        raise _Other(value)


def _among(value: Any, codes: frozenset[str]) -> None:
    if type(value) is not str or value not in codes:
        raise _Other(value)


def _decimal(value: Any) -> None:
    if type(value) is int:
        if abs(value) > 10**15:
            raise _Other(value)
    elif type(value) is float:
        if not math.isfinite(value) or not _DECIMAL.fullmatch(str(value)):
            raise _Other(value)
    else:
        raise _Other(value)


def _unsigned(value: Any) -> None:
    if type(value) is not int or not 0 <= value <= _UNSIGNED_MAX:
        raise _Other(value)


def _day(value: Any) -> None:
    if type(value) is not str or not _DAY.fullmatch(value):
        raise _Other(value)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _Other(value) from None


def _date_time(value: Any) -> None:
    if type(value) is str and _MOMENT.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise _Other(value) from None
    else:
        _day(value)


def _boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _Other(value)


def _items(value: Any) -> list[Any]:
    if type(value) is not list or not value:
        raise _Other(value)
    return value


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict or not value:
        raise _Other(value)
    return value


def _fields(value: Any, shapes: dict[str, Any]) -> None:
    for key, item in _object(value).items():
        check = shapes.get(key)
        if check is None:
            raise _Other(key)
        check(item)


def _reference(value: Any) -> None:
    _fields(value, _REFERENCE)


def _concept(value: Any) -> None:
    _fields(value, _CONCEPT)


def _codings(value: Any) -> None:
    for coding in _items(value):
        _fields(coding, _CODING)


def _quantity(value: Any) -> None:
    _fields(value, _QUANTITY)


def _period(value: Any) -> None:
    _fields(value, _PERIOD)


def _substitution(value: Any) -> None:
    if set(_object(value)) != {"allowedBoolean"}:
        raise _Other(value)
    _boolean(value["allowedBoolean"])


def _extensions(value: Any, *, nested: bool) -> None:
    """Extensions with a ``url`` and a ``valueString``, and (one level) inner ones alike."""
    for extension in _items(value):
        fields = _object(extension)
        if "url" not in fields or "valueString" not in fields:
            raise _Other(extension)
        for key, item in fields.items():
            if key == "url":
                _uri(item)
            elif key == "valueString":
                _string(item)
            elif key == "extension" and nested:
                _extensions(item, nested=False)
            else:
                raise _Other(key)


def _dosages(value: Any) -> list[Dosage]:
    key = content_key(value)
    return DOSAGES.get(key, lambda: [_dosage(d) for d in _items(value)], len(key))


def _dosage(value: Any) -> Dosage:
    try:
        return Dosage.model_validate(_object(value))
    except ValidationError:
        raise _Other(value) from None


_REFERENCE = {"reference": _string, "display": _string}
_CODING = {"system": _uri, "code": _code, "display": _string}
_CONCEPT = {"coding": _codings, "text": _string}
_IDENTIFIER = {"system": _uri, "value": _string}
_QUANTITY = {"value": _decimal, "unit": _string, "system": _uri, "code": _code}
_PERIOD = {"start": _day, "end": _day}
_DISPENSE_REQUEST = {
    "quantity": _quantity,
    "numberOfRepeatsAllowed": _unsigned,
    "validityPeriod": _period,
}
