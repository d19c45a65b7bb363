"""The bounded least-recently-used map a process keeps with (``medloop.lru``: the ward chart's
plans, the timeline's pictures): what is used last stays, what is used least goes first."""

from __future__ import annotations

import threading

from medloop.lru import Lru


def test_a_put_beyond_the_capacity_drops_the_least_recently_used():
    kept: Lru[str, int] = Lru(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # "a" is now used more recently than "b"
    kept.put("c", 3)
    assert kept.get("b") is None
    assert (kept.get("a"), kept.get("c"), len(kept)) == (1, 3, 2)


def test_putting_a_kept_key_again_replaces_its_value_and_uses_it():
    kept: Lru[str, int] = Lru(2)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.put("a", 10)
    kept.put("c", 3)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (10, None, 3)


def test_clear_forgets_everything():
    kept: Lru[str, int] = Lru(4)
    kept.put("a", 1)
    kept.clear()
    assert kept.get("a") is None and len(kept) == 0


def test_threads_putting_and_getting_at_once_never_leave_it_over_its_capacity():
    kept: Lru[tuple[int, int], int] = Lru(8)
    failures: list[BaseException] = []

    def use(thread: int) -> None:
        try:
            for n in range(2000):
                kept.put((thread, n), n)
                kept.get((thread, n - 1))
        except BaseException as failed:  # a thread's failure is the test's
            failures.append(failed)

    threads = [threading.Thread(target=use, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(kept) == 8
