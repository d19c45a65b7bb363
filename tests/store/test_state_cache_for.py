"""``state_cache.cache_for`` answers the last pool asked about from two weak references
(issue #20): still one cache per pool, shared by the engines ``execution_options`` derives,
another pool's its own, and a pool's cache gone with it (the references keep neither alive)."""

from __future__ import annotations

import gc
import weakref

from medloop.store import state_cache
from medloop.store.db import make_engine


def test_one_cache_per_pool_whichever_was_asked_last(tmp_path):
    first = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    second = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        a = state_cache.cache_for(first)
        assert state_cache.cache_for(first) is a
        assert state_cache.cache_for(first.execution_options(write=True)) is a
        b = state_cache.cache_for(second)
        assert b is not a
        for _ in range(3):
            assert state_cache.cache_for(first) is a
            assert state_cache.cache_for(second) is b
        assert state_cache._caches[first.pool] is a and state_cache._caches[second.pool] is b
    finally:
        first.dispose()
        second.dispose()


def test_the_last_pools_cache_is_gone_with_its_pool(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    cache = weakref.ref(state_cache.cache_for(engine))
    pool = weakref.ref(engine.pool)
    assert state_cache._last[0]() is engine.pool  # the fast path's reference
    engine.dispose()
    del engine
    gc.collect()
    assert pool() is None and cache() is None
    assert state_cache._last[0]() is None and state_cache._last[1]() is None
    again = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert state_cache.cache_for(again) is state_cache._caches[again.pool]
    finally:
        again.dispose()
