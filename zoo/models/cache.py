"""One model cache for every plugin: LRU under a memory budget, reference counts,
a lock per model so racing requests load once, idle unload.

It is family-agnostic: it stores whatever a loader returns, with its size in bytes.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """One loaded (or loading) model in the cache."""

    key: Hashable
    value: Any = None
    nbytes: int = 0
    refs: int = 0
    last_used: float = 0.0
    load_seconds: float = 0.0
    loaded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: threading.BoundedSemaphore | None = None


@dataclass
class CacheStats:
    """Counters for tests and the status panel."""

    loads: int = 0
    hits: int = 0
    evictions: int = 0
    failures: int = 0


class ModelCache:
    """LRU cache of loaded models under `budget` bytes; in-use models are never evicted."""

    def __init__(self, budget: int, idle_seconds: float = 0.0, concurrency: int = 1,
                 clock: Callable[[], float] = time.monotonic):
        self.budget = budget
        self.idle_seconds = idle_seconds
        self.concurrency = concurrency
        self.stats = CacheStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, Entry] = {}

    # ------------------------------------------------------------------ queries
    def keys(self) -> list[Hashable]:
        """Keys of loaded models, least recently used first."""
        with self._lock:
            return [e.key for e in sorted(self._entries.values(), key=lambda e: e.last_used) if e.loaded]

    def entry(self, key: Hashable) -> Entry | None:
        """The entry for a key, if loaded."""
        with self._lock:
            e = self._entries.get(key)
            return e if e is not None and e.loaded else None

    def loaded_entries(self) -> list[Entry]:
        """The loaded entries, least recently used first (the live objects: read, do not change)."""
        with self._lock:
            return sorted((e for e in self._entries.values() if e.loaded), key=lambda e: e.last_used)

    def now(self) -> float:
        """The cache's clock (what `Entry.last_used` is measured on)."""
        return self._clock()

    def unload(self, key: Hashable) -> bool:
        """Unload one model now (the operator's Unload): True if it was loaded, False if not.

        A model serving requests (pinned) is refused with ModelInUse: unloading it under a running
        request would end that request (a worker's process ends), so the operator waits for it.
        """
        from zoo.errors import ModelInUse

        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.loaded:
                return False
            if entry.refs > 0:
                raise ModelInUse(f"The model is serving {entry.refs} request(s) right now.",
                                 "press Unload again when it is idle (the table shows `in use` until then)")
            self._drop(entry, "unloaded by the operator")
            return True

    @property
    def used_bytes(self) -> int:
        """Bytes held by loaded models."""
        with self._lock:
            return sum(e.nbytes for e in self._entries.values() if e.loaded)

    # ------------------------------------------------------------------ use
    def acquire(self, key: Hashable, load: Callable[[], tuple[Any, int]]) -> Entry:
        """Return the loaded entry for `key`, loading it once however many threads ask; pins it."""
        self.sweep()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = Entry(key, slots=threading.BoundedSemaphore(max(1, self.concurrency)))
                self._entries[key] = entry
            entry.refs += 1
            entry.last_used = self._clock()
        try:
            with entry.lock:  # one loader per key; others wait here, then find it loaded
                if not entry.loaded:
                    started = time.perf_counter()
                    value, nbytes = load()
                    with self._lock:
                        entry.value, entry.nbytes, entry.loaded = value, int(nbytes), True
                        entry.load_seconds = time.perf_counter() - started
                        self.stats.loads += 1
                        self._make_room(keep=key)
                else:
                    with self._lock:
                        self.stats.hits += 1
        except BaseException:
            with self._lock:
                entry.refs -= 1
                self.stats.failures += 1
                # Forget a failed load so the next request retries from scratch.
                if not entry.loaded and self._entries.get(key) is entry and entry.refs == 0:
                    del self._entries[key]
            raise
        return entry

    def release(self, key: Hashable) -> None:
        """Unpin a model acquired earlier; it stays cached until evicted."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.refs = max(0, entry.refs - 1)
                entry.last_used = self._clock()
                # The model just used stays even over budget: evicting it would only mean reloading it.
                self._make_room(keep=key)

    def release_entry(self, entry: Entry) -> None:
        """Unpin this entry (which a crash may have discarded and a new worker replaced under the same key)."""
        with self._lock:
            entry.refs = max(0, entry.refs - 1)
            entry.last_used = self._clock()
            if self._entries.get(entry.key) is entry:
                self._make_room(keep=entry.key)

    @contextmanager
    def use(self, key: Hashable, load: Callable[[], tuple[Any, int]]) -> Iterator[Entry]:
        """`with cache.use(key, load) as entry:` pins the model for the block."""
        entry = self.acquire(key, load)
        try:
            yield entry
        finally:
            self.release_entry(entry)

    def discard(self, key: Hashable, value: Any) -> bool:
        """Forget the entry for `key` if it still holds `value` (a dead worker), in use or not; True if it did.

        Its budget share is freed at once; requests still holding it finish with their own error,
        and the next request loads afresh.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.value is not value:
                return False
            self._drop(entry, "its worker died")
            return True

    # ------------------------------------------------------------------ eviction
    def _make_room(self, keep: Hashable | None) -> None:
        """Evict idle models, least recently used first, until under budget. Caller holds _lock."""
        total = sum(e.nbytes for e in self._entries.values() if e.loaded)
        if total <= self.budget:
            return
        idle = sorted((e for e in self._entries.values() if e.loaded and e.refs == 0 and e.key != keep),
                      key=lambda e: e.last_used)
        for victim in idle:
            if total <= self.budget:
                break
            total -= victim.nbytes
            self._drop(victim, "over budget")
        if total > self.budget:
            log.warning("Models in use need %.0f MB, over the %.0f MB budget (ZOO_MEMORY_BUDGET); "
                        "nothing idle left to evict.", total / 1e6, self.budget / 1e6)

    def _drop(self, entry: Entry, why: str) -> None:
        log.info("Unloading %s (%s)", entry.key, why)
        self._entries.pop(entry.key, None)
        value, entry.value, entry.loaded = entry.value, None, False
        self.stats.evictions += 1
        close = getattr(value, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # unloading must never take the app down
                log.exception("Closing %s failed", entry.key)
        del value
        gc.collect()
        _empty_accelerator_cache()

    def sweep(self, now: float | None = None) -> list[Hashable]:
        """Unload models idle for longer than idle_seconds; returns the keys unloaded."""
        if self.idle_seconds <= 0:
            return []
        now = self._clock() if now is None else now
        with self._lock:
            stale = [e for e in self._entries.values()
                     if e.loaded and e.refs == 0 and now - e.last_used > self.idle_seconds]
            for e in stale:
                self._drop(e, f"idle for {now - e.last_used:.0f}s")
        return [e.key for e in stale]

    def clear(self) -> None:
        """Unload every idle model."""
        with self._lock:
            for e in [e for e in self._entries.values() if e.loaded and e.refs == 0]:
                self._drop(e, "cleared")


def _empty_accelerator_cache() -> None:
    import sys

    torch = sys.modules.get("torch")  # only if some loader already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
