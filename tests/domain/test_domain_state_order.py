"""``PatientState.advanced``'s history order and ``MedicationList.followed_by``'s kept lists
(issue #20): the same values as the plain ways they replace."""

from __future__ import annotations

import random
from uuid import UUID

from medloop.domain import medication_list as medication_list_module
from medloop.domain.state import _in_order, _uuid_number
from tests.domain.helpers import add, empty_list


def test_the_history_in_order_is_sorted_rebuilding_key_for_key() -> None:
    rng = random.Random(20)
    for _ in range(2_000):
        old = sorted((UUID(int=rng.getrandbits(128)), n) for n in range(rng.randrange(0, 12)))
        history = dict(old)
        added = rng.randrange(1, 4)
        for n in range(added):
            history[UUID(int=rng.getrandbits(128))] = -n
        expected = dict(sorted(history.items(), key=_uuid_number))
        found = _in_order(dict(history), added)
        assert list(found.items()) == list(expected.items())


def test_the_history_in_order_with_an_added_id_at_either_end() -> None:
    low, high = UUID(int=1), UUID(int=2**128 - 1)
    middle = [UUID(int=n) for n in (10, 20, 30)]
    for new in (low, high):
        history = dict.fromkeys(middle)
        history[new] = "new"
        assert list(_in_order(history, 1)) == sorted([*middle, new], key=lambda k: k.int)


def test_a_list_followed_by_the_change_apply_made_is_the_list_apply_made() -> None:
    medication_list, change, _ = add(empty_list())
    previous = empty_list()
    # A change made from an equal list object is applied the plain way, to an equal value.
    plain = previous._followed_by(change)
    kept = previous.followed_by(change)
    assert kept == plain == medication_list
    assert list(kept.entries) == list(plain.entries)
    again, second, _ = add(medication_list)
    assert medication_list.followed_by(second) is again
    assert medication_list.followed_by(second) == medication_list._followed_by(second)


def test_the_kept_lists_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(medication_list_module, "_APPLIED", {})
    monkeypatch.setattr(medication_list_module, "_APPLIED_KEPT", 3)
    current = empty_list()
    for _ in range(10):
        following, change, _ = add(current)
        assert current.followed_by(change) == following
        assert len(medication_list_module._APPLIED) <= 3
        current = following
