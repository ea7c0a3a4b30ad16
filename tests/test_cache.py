"""The shared model cache (zoo/models/cache.py): LRU under a byte budget, refcounts, racing loads, failures, idle."""

from __future__ import annotations

import threading
import time

import pytest

from zoo.models.cache import ModelCache


def test_lru_eviction_under_budget() -> None:
    cache = ModelCache(budget=100)
    cache.acquire("a", lambda: ("A", 60))
    cache.release("a")
    cache.acquire("b", lambda: ("B", 30))
    cache.release("b")
    cache.acquire("a", lambda: ("A", 60))  # touch a: b is now least recently used
    cache.release("a")
    cache.acquire("c", lambda: ("C", 30))
    cache.release("c")
    assert cache.keys() == ["a", "c"] and cache.stats.evictions == 1
    assert cache.used_bytes == 90


def test_models_in_use_are_never_evicted() -> None:
    cache = ModelCache(budget=100)
    cache.acquire("a", lambda: ("A", 80))  # pinned
    cache.acquire("b", lambda: ("B", 80))
    assert set(cache.keys()) == {"a", "b"}  # over budget, but both in use: nothing dropped
    cache.release("b")  # b idle but just used: it stays, a is still pinned
    assert set(cache.keys()) == {"a", "b"}
    cache.release("a")  # now a is the one just used; b is idle and older: b goes
    assert cache.keys() == ["a"]


def test_racing_requests_load_once() -> None:
    cache = ModelCache(budget=10**9)
    calls = []

    def slow_load():
        calls.append(1)
        time.sleep(0.3)
        return object(), 10

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.acquire("m", slow_load).value)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(v is got[0] for v in got)
    assert cache.stats.loads == 1 and cache.stats.hits == 7


def test_failed_load_is_retried_next_time() -> None:
    cache = ModelCache(budget=10**9)

    def broken():
        raise OSError("truncated file")

    with pytest.raises(OSError):
        cache.acquire("m", broken)
    assert cache.keys() == [] and cache.stats.failures == 1
    assert cache.acquire("m", lambda: ("ok", 1)).value == "ok"


def test_idle_models_are_unloaded() -> None:
    now = [0.0]
    cache = ModelCache(budget=10**9, idle_seconds=60, clock=lambda: now[0])
    cache.acquire("a", lambda: ("A", 1))
    now[0] = 1000
    assert cache.sweep() == []  # still in use
    cache.release("a")
    now[0] = 1030
    assert cache.sweep() == []
    now[0] = 1100
    assert cache.sweep() == ["a"] and cache.keys() == []
