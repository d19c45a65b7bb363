"""The base of every domain value: a frozen pydantic model, and a validated copy-with-changes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from interactions.values import MODEL_CONFIG

Model = TypeVar("Model", bound=BaseModel)


class Frozen(BaseModel):
    """An immutable value: no attribute can be reassigned, unknown fields are refused, every
    string is bounded and every float finite (``interactions.values``)."""

    model_config = MODEL_CONFIG


def replace(model: Model, **changes: Any) -> Model:
    """A copy of ``model`` with ``changes``, validated like a new instance.

    ``model_copy(update=...)`` skips validation; the domain never wants an unvalidated value.
    """
    fields = {name: getattr(model, name) for name in field_names(type(model))}
    return type(model).model_validate({**fields, **changes})


def id_text(value: Any) -> str:
    """``str(value)`` of an id (a ``UUID``), written out once per object: a command writes its
    patient's, entry's and prescription's ids into a dozen rows and answers, and ``UUID.__str__``
    is Python that formats the number each time (issue #20). The object is kept beside its id, so
    the id cannot name another object meanwhile; at most ``_ID_TEXTS_KEPT`` are kept."""
    known = _ID_TEXTS.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    text = str(value)
    if type(value) is UUID:  # immutable: its text stays true
        if len(_ID_TEXTS) >= _ID_TEXTS_KEPT:
            _ID_TEXTS.clear()
        _ID_TEXTS[id(value)] = (value, text)
    return text


_ID_TEXTS: dict[int, tuple[UUID, str]] = {}
_ID_TEXTS_KEPT = 8_192


def field_names(cls: type[BaseModel]) -> tuple[str, ...]:
    """``tuple(cls.model_fields)``, kept per class: the class attribute ``model_fields`` is a
    Python descriptor in this pydantic, a call every time it is read (issue #20)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(cls.model_fields)
    return names


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}

_object_new = object.__new__
_object_setattr = object.__setattr__
_ALL_FIELDS_SET: dict[type[BaseModel], set[str]] = {}


def _slot_setter(name: str, kind: type) -> Callable[[Any, Any], None]:
    """The setter of a pydantic instance's ``name`` (``__dict__`` or one of the three
    ``__pydantic_*__`` slots): the ``__set__`` of ``BaseModel``'s own descriptor for it, when it
    is one of ``kind`` as in pydantic 2.14, which sets it as ``object.__setattr__`` does
    without that call's look-up of the name in the class and its check of the class's
    setattr (half the cost: every value built without validation sets all four; issue #20;
    ``tests/domain/test_domain_model.py`` pins the descriptors); else ``object.__setattr__``
    itself. Used on instances of ``BaseModel`` subclasses only."""
    found = BaseModel.__dict__.get(name)
    if type(found) is kind and getattr(found, "__objclass__", None) is BaseModel:
        setter: Callable[[Any, Any], None] = found.__set__
        return setter

    def fallback(instance: Any, value: Any) -> None:
        _object_setattr(instance, name, value)

    return fallback


set_dict = _slot_setter("__dict__", GetSetDescriptorType)
set_fields_set = _slot_setter("__pydantic_fields_set__", MemberDescriptorType)
set_extra = _slot_setter("__pydantic_extra__", MemberDescriptorType)
set_private = _slot_setter("__pydantic_private__", MemberDescriptorType)


def constructed(cls: type[Model], /, **values: Any) -> Model:
    """``cls(**values)`` for values that are already what validating them gives (validated
    domain values of the fields' own types, every field given): the same instance — its
    fields in declared order, all of them set, no extra or private values — made without
    validating what the engine itself validated a moment before (issue #20). Only for models
    without validators of their own or private attributes (``tests/domain/test_domain_model.py``
    compares the instances with validated ones). The instances of one class share one
    fields-set, never changed (the values are frozen; a copy of one copies the set)."""
    fields = _FIELD_NAMES.get(cls) or field_names(cls)
    if len(values) != len(fields):
        missing = sorted(set(fields) - set(values))
        extra = sorted(set(values) - set(fields))
        raise TypeError(f"{cls.__name__} needs every field given: {missing=} {extra=}")
    instance = _object_new(cls)
    set_dict(instance, {name: values[name] for name in fields})
    fields_set = _ALL_FIELDS_SET.get(cls)
    if fields_set is None:
        fields_set = _ALL_FIELDS_SET[cls] = set(fields)
    set_fields_set(instance, fields_set)
    set_extra(instance, None)
    set_private(instance, None)
    return instance


def built(cls: type[Model], values: dict[str, Any], /) -> Model:
    """``constructed(cls, **values)`` for a dict the caller built for it and gives up: when its
    keys are ``cls``'s fields in declared order (as the domain's own callers write them), the
    dict itself becomes the instance's ``__dict__``, without unpacking it into keywords and
    copying it field by field a second time (issue #20); any other dict goes through
    ``constructed`` (which orders it, or refuses it). The same instance either way
    (``tests/domain/test_domain_model.py``)."""
    fields = _FIELD_NAMES.get(cls) or field_names(cls)
    if tuple(values) != fields:
        return constructed(cls, **values)
    # The body of ``constructed``, written out (a call saved), the dict taken as it is.
    instance = _object_new(cls)
    set_dict(instance, values)
    fields_set = _ALL_FIELDS_SET.get(cls)
    if fields_set is None:
        fields_set = _ALL_FIELDS_SET[cls] = set(fields)
    set_fields_set(instance, fields_set)
    set_extra(instance, None)
    set_private(instance, None)
    return instance


_TEMPLATES: dict[type[BaseModel], tuple[dict[str, Any], frozenset[str], frozenset[str]]] = {}
_IMMUTABLE_DEFAULTS = (type(None), bool, int, str, tuple, frozenset, enum.Enum)


def _template(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
    """Every field of ``cls`` in declared order with its default (``None`` for a required
    one), the required fields' names and every field's; kept per class. Only immutable
    defaults (``None``, a boolean, number, string, enum member, empty tuple), which validation
    puts in an instance as they are: ``given`` refuses a class with any other."""
    found = _TEMPLATES.get(cls)
    if found is None:
        template: dict[str, Any] = {}
        required = set()
        for name, info in cls.model_fields.items():
            if info.is_required():
                required.add(name)
                template[name] = None
                continue
            default = info.default
            if (
                info.default_factory is not None
                or not isinstance(default, _IMMUTABLE_DEFAULTS)
                or (isinstance(default, (tuple, frozenset)) and default)
            ):
                raise TypeError(f"{cls.__name__}.{name}'s default is not shareable: {default!r}")
            template[name] = default
        found = _TEMPLATES[cls] = (template, frozenset(required), frozenset(template))
    return found


def given(cls: type[Model], fields_set: set[str], /, **values: Any) -> Model:
    """``cls(**values)`` for values that are already what validating them gives (validated
    domain values of the fields' own types), the fields not given taking their defaults: the
    same instance — its fields in declared order, ``fields_set`` (the names given: a set the
    caller keeps, shares among the instances it makes and never changes) as its fields-set, no
    extra or private values — without validating the values again and without the model's own
    validators, which the caller runs itself (issue #20; ``tests/domain/test_domain_model.py``
    compares the instances with validated ones)."""
    return given_values(cls, fields_set, values)


def given_values(cls: type[Model], fields_set: set[str], values: dict[str, Any], /) -> Model:
    """``given(cls, fields_set, **values)`` for a dict of the values the caller has built
    anyway: the same instance, without unpacking the dict into keywords and packing them into
    a new one (a call with eleven keywords cost more than the rest of ``given``; issue #20).
    The dict is only read."""
    found = _TEMPLATES.get(cls) or _template(cls)
    if values.keys() != fields_set or not found[1] <= fields_set <= found[2]:
        raise TypeError(f"{cls.__name__}: {sorted(values)} are not its required fields and more")
    instance = _object_new(cls)
    # The template's order stays: every name given is one of its keys already.
    set_dict(instance, {**found[0], **values})
    set_fields_set(instance, fields_set)
    set_extra(instance, None)
    set_private(instance, None)
    return instance
