"""Structured diffs between two versions of a value, as JSON, so a store can append them as-is.

A diff lists the top-level fields whose JSON form differs, each with its value before and after
(``before`` is ``None`` for every field of a value that did not exist before). Nested values
(a dosage, a drug) are compared and recorded whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from operator import attrgetter
from typing import Annotated, Any

from pydantic import BaseModel, GetPydanticSchema, JsonValue

from medloop.domain._model import (
    _FIELD_NAMES,
    Frozen,
    field_names,
    set_dict,
    set_extra,
    set_fields_set,
    set_private,
)


def _serialised_as_is(source: Any, handler: Any) -> Any:
    # Validated as ``JsonValue`` (and so documented in every JSON schema), serialised by type
    # inference: a value that passed ``JsonValue`` is JSON already, and both give the same
    # output for it, but pydantic's serialiser of the ``JsonValue`` union tries its members
    # value by value, three times as slow (every list change and prescription version stores
    # a diff; issue #20).
    return {**handler(source), "serialization": {"type": "any"}}  # a SimpleSerSchema


Json = Annotated[JsonValue, GetPydanticSchema(_serialised_as_is)]


class FieldChange(Frozen):
    """One field that changed, with its JSON value before and after."""

    field: str
    before: Json
    after: Json


def diff(
    before: BaseModel | None, after: BaseModel, fields: Iterable[str]
) -> tuple[FieldChange, ...]:
    """The changes among ``fields`` from ``before`` (``None``: nothing) to ``after``.

    The values are the JSON dumps of two validated domain values (bounded strings, finite
    numbers), so the changes are built without validating them a second time."""
    # One loop, without a generator's frame per field (issue #20: a prescribe diffs ~22
    # fields); a value new in this version differs from nothing where its field is not None.
    old = None if before is None else dump(before)
    new = dump(after)
    _remember(after, new)
    changes = []
    if old is None:
        # ``_change(name, None, now)`` written out for a value new in this version: most of a
        # command's changes (a new entry's, a new prescription's). Keyed by one flat tuple of
        # the name, the value (or a kept dump's id) and its type, not ``_change``'s nested
        # tokens (two tuples fewer to make and hash per field; issue #20): a key of its own
        # shape in the same memo (a token is a tuple, a value here never is), so the change
        # is made once and shared like ``_change``'s.
        for name in fields:
            now = new[name]
            if now is None:
                continue
            kind = type(now)
            if kind is str or kind is int or kind is bool:
                key = (name, now, kind)
            elif kind is dict and _KEPT_DUMPS.get(id(now)) is now:
                key = (name, id(now), kind)
            else:
                changes.append(_made(name, None, now))
                continue
            found = _CHANGES.get(key)
            if found is None:
                if len(_CHANGES) >= _CHANGES_KEPT:
                    _CHANGES.clear()
                found = _CHANGES[key] = _made(name, None, now)
            changes.append(found)
    else:
        was_of = old.get
        for name in fields:
            was = was_of(name)
            now = new[name]
            if was != now:
                changes.append(_change(name, was, now))
    return tuple(changes)


def share_dumps(model: type[BaseModel], *fields: str) -> None:
    """Let ``dump`` take the JSON of ``fields`` of a ``model`` value from ``dumped``: fields
    whose values are frozen objects that recur from command to command (an actor, the drug a
    catalogue version resolved), each dumped once per object instead of in every value that
    holds it (issue #20). Their dumps must be what the model's own dump gives them
    (``tests/domain/test_domain_versioning.py`` compares the two)."""
    unknown = set(fields) - set(model.model_fields)
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {sorted(unknown)}")
    _SHARED[model] = fields
    _PLANS.clear()


_SHARED: dict[type[BaseModel], tuple[str, ...]] = {}


def dump(value: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``value.model_dump(mode="json", exclude=exclude)``: the same dict, key for key in the
    same order, with the fields ``share_dumps`` names taken from ``dumped``. The dict shares
    those values with other dumps: it is not to be changed (no caller changes a dump; they are
    written as they are)."""
    cls = type(value)
    plan = _PLANS.get((cls, exclude))
    if plan is None:
        plan = _plan(cls, exclude)
    shared, every, order = plan
    if not shared:
        return cls.__pydantic_serializer__.to_python(value, mode="json", exclude=exclude or None)
    # The shared fields' dumps, ``dumped``'s memo read here (a call saved per field), the
    # values read from the instance's ``__dict__`` (one attribute look-up, not one per field
    # through pydantic's ``__getattr__`` hook).
    fields = value.__dict__
    kept = {}
    for name in shared:
        found = fields[name]
        if found is not None:
            known = _DUMPED.get(id(found))
            kept[name] = known[1] if known is not None and known[0] is found else dumped(found)
    # ``model_dump`` is a Python frame around its serialiser's ``to_python`` passing fifteen
    # keywords (its own defaults, the serialiser's too): the serialiser is called directly, the
    # same dump (``tests/domain/test_domain_versioning.py`` compares them; issue #20).
    if not kept:
        return cls.__pydantic_serializer__.to_python(value, mode="json", exclude=exclude or None)
    # The names left to the serialiser: kept per class and ``exclude`` when every shared field
    # has its dump (the usual case), else made here.
    partial = cls.__pydantic_serializer__.to_python(
        value, mode="json", exclude=every if len(kept) == len(shared) else exclude | kept.keys()
    )
    # The fields in declared order (a template copied), then the two dumps put in: the keys
    # are in the template's order, and a key the template has not (a computed field) comes
    # last, as in a dump; no Python loop over the fields (issue #20). Every field not
    # excluded is in one of the two dumps, unless the model's dump leaves some out: then the
    # template would hold a key neither gave, and the dict is put together field by field.
    whole = order.copy()
    whole.update(partial)
    whole.update(kept)
    if len(whole) == len(partial) + len(kept):
        return whole
    whole = {}
    for name in _FIELD_NAMES.get(cls) or field_names(cls):
        if name in kept:
            whole[name] = kept[name]
        elif name in partial:
            whole[name] = partial[name]
    if len(whole) != len(partial) + len(kept):  # computed fields come last, as in a dump
        whole.update((k, v) for k, v in partial.items() if k not in whole)
    return whole


def _plan(
    cls: type[BaseModel], exclude: frozenset[str]
) -> tuple[tuple[str, ...], set[str], dict[str, None]]:
    """What ``dump`` needs of ``cls`` for ``exclude``, kept per class and ``exclude``: the
    shared fields not excluded (``share_dumps``; none for a model without), ``exclude`` with
    those as a ``set`` (never changed; the serialiser reads a ``set`` faster than a
    ``frozenset``), and the fields but ``exclude`` in declared order as a dict's keys. A model's
    shared fields are named once, when its module is imported, before any of its values is
    dumped; the plans are dropped whenever ``share_dumps`` names more."""
    shared = tuple(name for name in _SHARED.get(cls, ()) if name not in exclude)
    if len(_PLANS) >= _ORDERS_KEPT:
        _PLANS.clear()
    found = _PLANS[cls, exclude] = (
        shared,
        set(exclude) | set(shared),
        _ORDERS.get((cls, exclude)) or _order(cls, exclude),
    )
    return found


_PLANS: dict[
    tuple[type[BaseModel], frozenset[str]],
    tuple[tuple[str, ...], set[str], dict[str, None]],
] = {}


def _order(cls: type[BaseModel], exclude: frozenset[str]) -> dict[str, None]:
    """``cls``'s fields but ``exclude`` in declared order, as a dict's keys (kept per class and
    ``exclude``: ``record`` excludes one set per version class)."""
    if len(_ORDERS) >= _ORDERS_KEPT:
        _ORDERS.clear()
    found = _ORDERS[cls, exclude] = dict.fromkeys(
        name for name in (_FIELD_NAMES.get(cls) or field_names(cls)) if name not in exclude
    )
    return found


_ORDERS: dict[tuple[type[BaseModel], frozenset[str]], dict[str, None]] = {}
_ORDERS_KEPT = 256


def dumped(value: BaseModel) -> dict[str, Any]:
    """``value.model_dump(mode="json")`` of a frozen value, made once per object (kept beside
    the object, so its id cannot name another meanwhile; at most ``_DUMPED_KEPT``). Not to be
    changed (see ``dump``)."""
    known = _DUMPED.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    found = type(value).__pydantic_serializer__.to_python(value, mode="json")
    if len(_DUMPED) >= _DUMPED_KEPT:
        _DUMPED.clear()
        _KEPT_DUMPS.clear()
    _DUMPED[id(value)] = (value, found)
    _KEPT_DUMPS[id(found)] = found
    return found


_DUMPED: dict[int, tuple[BaseModel, dict[str, Any]]] = {}
_DUMPED_KEPT = 4_096
_KEPT_DUMPS: dict[int, dict[str, Any]] = {}
"""The dumps ``dumped`` keeps, by their own ids (each is kept here, so its id names it)."""


_object_new = object.__new__
_FIELDS_SET = set(FieldChange.model_fields)
"""Every field change's ``__pydantic_fields_set__`` (all of its fields are always set): one set
shared by the changes ``_change`` makes, never changed (the values are frozen, and a copy of
one copies the set), instead of one more object per change for the collector to track (a
command keeps 20 or so changes in the patient's cached state; issue #20)."""


def _change(name: str, before: Any, after: Any) -> FieldChange:
    """``_made(name, before, after)``, shared: a change between two values that recur from
    command to command — ``None``, a string, an integer or a boolean (by type and value), or a
    drug's or actor's JSON that ``dumped`` keeps (by the object) — is made once and every diff
    with it holds that one frozen instance (a prescribe's two diffs hold about 16 such, of about
    22: the version, the drug, the use, the status, the flags, the prescriber …), so it is not
    made again nor kept again in every patient's cached state for the collector to track
    (issue #20). At most ``_CHANGES_KEPT`` are kept; the rest are made as before."""
    # Each value's token, written out (no call per value): a recurring value is keyed by type
    # and value (``1``, ``1.0`` and ``True`` are equal keys, but not of one type), a kept dump
    # by its id (while kept, no other object has it); anything else is not shared.
    kind = type(before)
    if before is None:
        old: tuple[Any, type] = _NONE_TOKEN
    elif kind is str or kind is int or kind is bool:
        old = (before, kind)
    elif kind is dict and _KEPT_DUMPS.get(id(before)) is before:
        old = (id(before), kind)
    else:
        return _made(name, before, after)
    kind = type(after)
    if after is None:
        new: tuple[Any, type] = _NONE_TOKEN
    elif kind is str or kind is int or kind is bool:
        new = (after, kind)
    elif kind is dict and _KEPT_DUMPS.get(id(after)) is after:
        new = (id(after), kind)
    else:
        return _made(name, before, after)
    key = (name, old, new)
    found = _CHANGES.get(key)
    if found is None:
        if len(_CHANGES) >= _CHANGES_KEPT:
            _CHANGES.clear()
        # A kept dump's change holds the dump, so while the change is kept no other object
        # can have the dump's id.
        found = _CHANGES[key] = _made(name, before, after)
    return found


_NONE_TOKEN = (None, type(None))


_CHANGES: dict[tuple[Any, ...], FieldChange] = {}
"""The changes ``_change`` shares, by field name and the two values' tokens, and those ``diff``
shares for a value new in its version, by field name, value (or kept dump's id) and type. Not in
``_SHARED`` (the models whose fields ``dump`` shares): clearing this forgets none of those."""
_CHANGES_KEPT = 4_096


def _made(name: str, before: Any, after: Any) -> FieldChange:
    """``FieldChange.model_construct(field=name, before=before, after=after)``: the same
    instance (its fields, all of them set, no extra or private values), made without
    ``model_construct``'s walk over the model's fields and their defaults, which cost three
    times the instance itself (a prescription diffs 12 fields, an entry about 10; issue #20;
    ``tests/domain/test_domain_versioning.py`` compares the two)."""
    change = _object_new(FieldChange)
    set_dict(change, {"field": name, "before": before, "after": after})
    set_fields_set(change, _FIELDS_SET)
    set_extra(change, None)
    set_private(change, None)
    return change


def record(version: BaseModel, changes: str, snapshot: str) -> dict[str, Any]:
    """``version.model_dump(mode="json")``, for a version whose last two fields are its diff
    (``changes``) and the value after it (``snapshot``), reusing the JSON dump ``diff`` made of
    that value in this thread: the same dict, key for key in the same order, without dumping
    the value a second time (a command diffs and stores its versions in one thread; issue #20).
    A version without that dump (read back, or diffed in another thread) is dumped whole."""
    value = getattr(version, snapshot)
    dumped = _recalled(value)
    if dumped is None:
        return version.model_dump(mode="json")
    # The two names as one frozenset kept per pair (its hash kept with it), not a new one per
    # record to build and hash again (issue #20).
    exclude = _EXCLUDES.get((changes, snapshot))
    if exclude is None:
        exclude = _EXCLUDES[changes, snapshot] = frozenset((changes, snapshot))
    found = dump(version, exclude)
    # A change's values are JSON already (the dumps diff compared), as its dump would give them:
    # its dump is its own ``__dict__`` (a field change's three fields, in order, and nothing
    # else: no extra values, no cached properties), shared like the dumps (not to be changed)
    # instead of a dict built per change (issue #20; the tests compare records with dumps).
    found[changes] = list(map(_FIELDS_OF, getattr(version, changes)))
    found[snapshot] = dumped
    return found


_FIELDS_OF = attrgetter("__dict__")
_EXCLUDES: dict[tuple[str, str], frozenset[str]] = {}
"""``record``'s excluded fields by their names (a few pairs: one per version class)."""


_RECENT = 16
"""How many values' dumps a thread keeps for ``record`` (a command diffs a few)."""
_dumps = threading.local()


def _remember(value: BaseModel, dumped: dict[str, Any]) -> None:
    recent: dict[int, tuple[BaseModel, dict[str, Any]]] | None = getattr(_dumps, "recent", None)
    if recent is None:
        recent = _dumps.recent = {}
    elif len(recent) >= _RECENT:
        # The oldest goes, not all: the values diffed last are always recalled (emptying the
        # whole dict lost a command's first diff whenever it fell on the 16th; a test after
        # 14 or 15 other diffs in its thread saw it).
        del recent[next(iter(recent))]
    # The value itself is kept beside its id, so the id cannot be another object's meanwhile;
    # domain values are frozen, so the dump stays true.
    recent[id(value)] = (value, dumped)


def _recalled(value: BaseModel) -> dict[str, Any] | None:
    recent = getattr(_dumps, "recent", None)
    found = None if recent is None else recent.get(id(value))
    return found[1] if found is not None and found[0] is value else None
