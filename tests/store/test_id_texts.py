"""The store's writers read ``domain._model.id_text``'s kept texts inline (its dict
``_ID_TEXTS``: id of the object -> (the object, its text)) and call ``id_text`` only when the
object is not kept there. What they write must be ``str(value)`` whether the text is kept, not
kept, kept for another object under a reused id, or the value is not a ``UUID``."""

from __future__ import annotations

import uuid

from medloop.domain import _model
from medloop.domain._model import id_text
from medloop.store import alerts, idempotency, list_changes, prescriptions


def _inline(value):
    # The expression the writers use.
    known = _model._ID_TEXTS.get(id(value))
    return known[1] if known is not None and known[0] is value else id_text(value)


def test_the_writers_share_id_texts_own_dict():
    for module in (alerts, idempotency, list_changes, prescriptions):
        assert module._ID_TEXTS is _model._ID_TEXTS
    value = uuid.uuid4()
    assert id_text(value) == str(value)
    assert _model._ID_TEXTS[id(value)] == (value, str(value))  # the layout read inline


def test_the_inline_read_is_str_of_the_value_kept_or_not():
    kept = uuid.uuid4()
    id_text(kept)
    fresh = uuid.uuid4()
    assert id(fresh) not in _model._ID_TEXTS
    other_with_its_id = uuid.uuid4()
    assert _inline(kept) == str(kept)
    assert _inline(fresh) == str(fresh)
    assert _inline("not-a-uuid") == "not-a-uuid"
    # An entry under the id of another object (as after it was freed) is not taken.
    _model._ID_TEXTS[id(other_with_its_id)] = (kept, str(kept))
    try:
        assert _inline(other_with_its_id) == str(other_with_its_id)
    finally:
        _model._ID_TEXTS.pop(id(other_with_its_id), None)
