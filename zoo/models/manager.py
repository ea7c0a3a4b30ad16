"""The shared backbone loader: `manager.use(ref, kind)` gives every plugin the same loaded model.

It ties the pieces together: parse the reference, resolve it to files (sources),
pick the family and device, load through the family's loader, keep it in the one
cache. Plugins asking for the same weights and kind get the same object.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from zoo.errors import ModelInUse, ModelLoadError, ModelNotFound, ZooError, redact_paths
from zoo.kinds import ModelKind, get_family, get_kind
from zoo.models.cache import ModelCache
from zoo.models.loaders import LoadContext
from zoo.models.refs import ModelRef, parse_ref
from zoo.models.sources import Resolved, Resolver, detect_family
from zoo.settings import Settings
from zoo.workers import WorkerPool, WorkerSpec

log = logging.getLogger(__name__)

# transformers and diffusers patch torch process-wide while they build a model (meta-device
# init, skipped weight init). Two loads interleaving in threads corrupt each other, and can
# leave the process unable to load a model at all ("Cannot copy out of meta tensor"), so
# local loads (and tiny-model builds, which construct models too) take turns across every
# manager in the process; requests still run in parallel.
_LOAD_LOCK = threading.RLock()


#: What a family's loader built: TransformersLM, Bundle, a diffusers pipeline, WhisperModel, RemoteLM...
M = TypeVar("M")


@dataclass
class Loaded(Generic[M]):
    """A ready model as plugins receive it: `Loaded[Bundle]`, `Loaded[LanguageModel]`..."""

    ref: str
    resolved: Resolved
    family: str
    kind: str
    model: M  # family-specific: TransformersLM, Bundle, a diffusers pipeline, WhisperModel...
    device: str
    load_seconds: float = 0.0

    @classmethod
    def remote(cls, ref: str, kind: str, engine: M) -> "Loaded[M]":
        """A remote engine's client as a loaded model (Plugin.run_remote hands a RemoteLM to stream/run so)."""
        parsed = parse_ref(ref)
        return cls(ref, Resolved(parsed, Path(parsed.name), "remote", "remote inference engine"), "remote", kind,
                   engine, "remote")

    @property
    def is_tiny(self) -> bool:
        """True for random-weight tiny models."""
        return self.resolved.is_tiny

    @property
    def in_worker(self) -> bool:
        """False: this model lives in this process (a `WorkerHandle` says True)."""
        return False

    def close(self) -> None:
        """Called by the cache on eviction."""
        close = getattr(self.model, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class LoadedInfo:
    """One model loaded now, as the Models tab lists it (`ModelManager.loaded()`)."""

    id: str  # stable for as long as it stays loaded: what `unload` takes (a ref works too)
    ref: str  # the name it was first asked for
    refs: tuple[str, ...]  # every name it was asked for (a Hub id and its packaged copy share one load)
    tasks: tuple[str, ...]  # the tabs that used it since it loaded
    kind: str
    family: str
    device: str
    where: str  # "this process", "worker process 1234" or "remote engine"
    pid: int | None  # the worker's process id
    memory: int  # bytes: the worker's RSS, else the loader's own count (parameters and buffers)
    memory_source: str  # "worker RSS" or "loader's count"
    idle_seconds: float  # since its last request ended; 0 while in use
    in_use: int  # requests holding it now
    load_seconds: float
    is_tiny: bool
    path: str  # its files


def key_id(key: tuple) -> str:
    """A short stable name for a cache key (family, files, kind, device[, worker])."""
    import hashlib

    return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


class ModelManager:
    """Resolution + loading + the shared cache, configured by Settings."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.resolver = Resolver(offline=lambda: settings.hub_offline, allow_pickle=settings.allow_pickle,
                                 tiny_dir=settings.cache_dir / "tiny", whisper_dir=settings.cache_dir / "whisper")
        self.cache = ModelCache(settings.memory_budget, settings.idle_unload_seconds,
                                settings.max_concurrency_per_model)
        self._resolved: dict[str, Resolved] = {}
        self._resolve_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._device: str | None = None
        self.workers = WorkerPool(settings.worker_memory_limit)
        self._users: dict[tuple, tuple[set[str], set[str]]] = {}  # key -> (refs asked for, tasks that used it)

    # ------------------------------------------------------------------ resolution
    def resolve(self, ref: str | ModelRef, download: bool = True) -> Resolved:
        """Files for a reference, remembered so the Hub is asked once per process."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        with self._resolve_lock:
            hit = self._resolved.get(parsed.raw)
        if hit is not None and (hit.source == "remote" or hit.path.exists()):
            return hit
        with _LOAD_LOCK if parsed.scheme == "tiny" and download else nullcontext():
            resolved = self.resolver.resolve(parsed, download=download)
        if download:
            with self._resolve_lock:
                self._resolved[parsed.raw] = resolved
        return resolved

    def kind_mismatch(self, ref: str, kind: str | ModelKind) -> str | None:
        """What the model is, when it cannot serve `kind` (a picture model on a text tab); None when it can.

        Read from the files alone, before any weights load: the loader family (detect_family)
        against the families the kind names, then the family's own check (for transformers
        folders, the config's model type and architectures against the kind's Auto class).
        Unknown cases pass: the loader has the last word.
        """
        resolved = self.resolve(ref)
        if resolved.ref.scheme == "remote":
            return None  # the engine's own API decides what it serves
        family = "openai-whisper" if resolved.ref.scheme == "openai-whisper" else detect_family(resolved.path)
        return describe_mismatch(resolved, family, kind)

    def availability(self, ref: str) -> tuple[bool, str]:
        """Can this model run right now, and from where (no download, no build)?"""
        try:
            parsed = parse_ref(ref)
            if parsed.scheme == "tiny":
                return True, "tiny random-weight model built from a config"
            if parsed.scheme == "remote":
                return True, f"remote inference engine {parsed.name}"
            resolved = self.resolver.resolve(parsed, download=False)
        except ZooError as exc:
            if not self.settings.hub_offline and parse_ref(ref).scheme == "hub":
                return True, "downloaded from the Hub on first use"
            return False, str(exc)
        where = {"local": "local folder", "hf-cache": "Hugging Face cache", "packaged": "packaged offline copy",
                 "hub": "the Hub"}.get(resolved.source, resolved.source)
        return True, f"{where}" + (f": {resolved.detail}" if resolved.detail else "")

    @property
    def device(self) -> str:
        """The device models go to (resolved once, on first load)."""
        if self._device is None:
            from zoo.models.devices import pick_device

            self._device = pick_device(self.settings.device)
        return self._device

    # ------------------------------------------------------------------ loading
    def _load_context(self) -> LoadContext:
        from zoo.models.devices import pick_dtype

        return LoadContext(device=self.device, dtype=pick_dtype(self.device), cache_dir=self.settings.cache_dir,
                           trust_remote_code=self.settings.trust_remote_code,
                           allow_pickle=self.settings.allow_pickle, threads=self.settings.threads,
                           gguf_backend=self.settings.gguf_backend,
                           gguf_weights=self.settings.gguf_weights, llama_context=self.settings.llama_context)

    def _remote_context(self) -> LoadContext:
        """What the remote loader needs: the timeout, retries and token settings; no device, no torch."""
        from zoo.models.remote import RemoteOptions

        return LoadContext(device="remote", dtype=None, cache_dir=self.settings.cache_dir,
                           remote=RemoteOptions.from_settings(self.settings))

    @contextmanager
    def use(self, ref: str, kind: str | ModelKind, progress: Callable[[float | None, str], None] | None = None,
            worker: bool = False, task: str | None = None) -> Iterator[Any]:
        """Pin a loaded model for the block; loads it (once, however many ask) if needed.

        With `worker=True` the model loads in a supervised worker process and the block gets its
        `WorkerHandle` (zoo/workers.py), except for remote engines, which are only HTTP clients.
        Otherwise, and for scripts and tests, it gets the `Loaded` model in this process.
        `kind` is a registered kind's name or a ModelKind (zoo/kinds.py); `task` is the tab asking
        (the Models tab lists it).
        """
        kind = get_kind(kind)
        if progress:
            progress(None, f"Finding {ref}")
        resolved = self.resolve(ref)
        remote = resolved.ref.scheme == "remote"
        if remote:
            family = "remote"
        else:
            family = "openai-whisper" if resolved.ref.scheme == "openai-whisper" else detect_family(resolved.path)
        device = "remote" if remote else self.device  # a remote engine needs no local device (nor torch)
        isolated = worker and not remote
        if not remote and family not in kind.families:  # the engine's own API decides what a remote one serves
            raise ModelLoadError(f"`{ref}` is {_what(resolved, family, kind)}, which cannot serve kind `{kind.name}`.",
                                 f"pick a model made for this task (kind `{kind.name}` loads from: "
                                 f"{', '.join(kind.families)})")
        key: tuple = (family, str(resolved.path), kind.name, device)
        if isolated:  # a worker's handle and an in-process model of the same files are separate entries
            key += ("worker",)
        with self._resolve_lock:
            refs, tasks = self._users.setdefault(key, (set(), set()))
            refs.add(ref)
            if task:
                tasks.add(task)

        def load() -> tuple[Any, int]:
            if progress:
                where = "in a worker process" if isolated else f"on {device}"
                progress(None, f"Loading {ref} ({family}) {where}")
            started = time.perf_counter()
            try:
                if isolated:
                    handle = self.workers.start(key, self._worker_spec(ref, resolved, family, kind, device),
                                                on_death=self._forget_worker(key))
                    log.info("Loaded %s as %s/%s in worker %s in %.2fs (%.0f MB)", ref, family, kind.name, handle.pid,
                             time.perf_counter() - started, handle.nbytes / 1e6)
                    return handle, handle.nbytes
                with nullcontext() if remote else _LOAD_LOCK:
                    model, nbytes = load_model(ref, resolved, family, kind, get_family(family).loader,
                                               self._remote_context() if remote else self._load_context())
            except ModelLoadError:
                with self._resolve_lock:  # maybe the files changed: resolve afresh next time
                    self._resolved.pop(resolved.ref.raw, None)
                raise
            loaded = Loaded(ref, resolved, family, kind.name, model, device, time.perf_counter() - started)
            log.info("Loaded %s as %s/%s on %s in %.2fs (%.0f MB)", ref, family, kind.name, device,
                     loaded.load_seconds, nbytes / 1e6)
            return loaded, nbytes

        self._start_sweeper()
        if isolated:
            broken = self.workers.broken(key, resolved)
            if broken is not None:
                raise broken
        with self.cache.use(key, load) as entry:
            assert entry.slots is not None
            if isolated and not entry.value.alive:  # died idle, before its death was noticed: start another
                self.cache.discard(key, entry.value)
                with self.use(ref, kind, progress, worker) as fresh:
                    yield fresh
                return
            if remote:  # the engine queues and batches concurrent requests itself
                yield entry.value
                return
            with entry.slots:  # per-model concurrency limit (ZOO_CONCURRENCY)
                yield entry.value

    def _worker_spec(self, ref: str, resolved: Resolved, family: str, kind: ModelKind, device: str) -> WorkerSpec:
        # The kind travels by pickle, its `wrap` by module and name: unpickling imports the module that
        # defines it, so a plugin's own kind works in the worker too. The tiny model is built here already.
        kind = dataclasses.replace(kind, tiny=None)
        return WorkerSpec(ref, resolved, family, kind, device, get_family(family).loader, self._load_context(),
                          env=dict(os.environ), memory_limit=self.settings.worker_memory_limit,
                          log_level=logging.getLogger().getEffectiveLevel())

    def _forget_worker(self, key: tuple) -> Callable[[Any, Any], None]:
        """What a dead worker's handle calls: drop its cache entry so the next request starts a new worker."""
        cache = weakref.ref(self.cache)  # a reader thread must not keep a test's manager alive

        def forget(handle: Any, error: Any) -> None:
            alive = cache()
            if alive is not None:
                alive.discard(key, handle)

        return forget

    # ------------------------------------------------------------------ the Models tab
    def loaded(self) -> list[LoadedInfo]:
        """The models loaded at this moment, least recently used first."""
        now = self.cache.now()
        infos = []
        entries = self.cache.loaded_entries()
        with self._resolve_lock:  # forget who used models that are gone
            live = {e.key for e in entries}
            for key in [k for k in self._users if k not in live]:
                del self._users[key]
            users = {k: (sorted(r), sorted(t)) for k, (r, t) in self._users.items()}
        for entry in entries:
            value, key = entry.value, entry.key
            if value is None:
                continue
            refs, tasks = users.get(key, ([], []))
            ref = getattr(value, "ref", "") or (refs[0] if refs else "")
            pid = getattr(value, "pid", None) if getattr(value, "in_worker", False) else None
            rss = value.rss if pid is not None else None
            family = getattr(value, "family", key[0])
            where = ("remote engine" if family == "remote" else
                     f"worker process {pid}" if pid is not None else "this process")
            infos.append(LoadedInfo(
                id=key_id(key), ref=ref, refs=tuple(dict.fromkeys([ref, *refs])), tasks=tuple(tasks),
                kind=getattr(value, "kind", key[2]), family=family, device=getattr(value, "device", key[3]),
                where=where, pid=pid, memory=int(rss if rss is not None else entry.nbytes),
                memory_source="worker RSS" if rss is not None else "loader's count",
                idle_seconds=0.0 if entry.refs else max(0.0, now - entry.last_used), in_use=entry.refs,
                load_seconds=entry.load_seconds, is_tiny=bool(getattr(value, "is_tiny", False)),
                path=str(key[1])))
        return infos

    def unload(self, key_or_ref: str) -> bool:
        """Unload a model now: by its `LoadedInfo.id`, or every loaded model asked for by that name.

        True if something was unloaded, False if nothing loaded matches. A model serving a request
        is refused (ModelInUse, naming it): press Unload again once it is idle. A worker's model
        ends its process, so the memory goes back to the OS.
        """
        wanted = (key_or_ref or "").strip()
        with self._resolve_lock:
            asked = {k: set(refs) for k, (refs, _tasks) in self._users.items()}
        matches = [e.key for e in self.cache.loaded_entries() if wanted and (
            key_id(e.key) == wanted or wanted in asked.get(e.key, ()) or getattr(e.value, "ref", None) == wanted)]
        unloaded = False
        for key in matches:
            try:
                unloaded = self.cache.unload(key) or unloaded
            except ModelInUse as exc:
                name = getattr(self.cache.entry(key), "value", None)
                raise ModelInUse(f"`{getattr(name, 'ref', wanted)}` is in use: {exc.message}", exc.fix) from None
            with self._resolve_lock:
                self._users.pop(key, None)
        return unloaded

    def reset_broken(self) -> None:
        """Give models marked broken (their worker crashed on load 3 times in a row) a new chance."""
        self.workers.reset()

    def close(self) -> None:
        """Unload every idle model and end every worker."""
        self.cache.clear()
        self.workers.close()

    def load(self, ref: str, kind: str | ModelKind) -> Loaded:
        """Load (or fetch from the cache) without pinning; for scripts and tests."""
        with self.use(ref, kind) as loaded:
            return loaded

    def _start_sweeper(self) -> None:
        """A daemon that unloads idle models even when no request comes."""
        if self._sweeper is not None or self.settings.idle_unload_seconds <= 0:
            return
        interval = max(1.0, min(60.0, self.settings.idle_unload_seconds / 4))

        def sweep_forever() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.cache.sweep()
                except Exception:  # the sweeper must not die silently forever
                    log.exception("Idle sweep failed")

        self._sweeper = threading.Thread(target=sweep_forever, name="zoo-idle-sweeper", daemon=True)
        self._sweeper.start()


def load_model(ref: str, resolved: Resolved, family: str, kind: ModelKind,
               loader: Callable[[Resolved, ModelKind, LoadContext], tuple[Any, int]],
               ctx: LoadContext) -> tuple[Any, int]:
    """Run a family's loader (here or in a worker); an unexpected failure becomes a ModelLoadError naming the model."""
    try:
        return loader(resolved, kind, ctx)
    except ZooError:
        raise
    except Exception as exc:
        # The full path stays in the log; the user's message names no server folder.
        log.warning("Loading %s (%s, from %s) failed: %s: %s", ref, family, resolved.path,
                    type(exc).__name__, exc)
        log.debug("The loader's traceback", exc_info=True)
        raise ModelLoadError(
            f"Loading `{ref}` ({family}, from the {resolved.source} copy) failed: {type(exc).__name__}: "
            f"{redact_paths(str(exc))}",
            "check the files are complete (re-download or reinstall), or pick another model; "
            "the server log has the details",
        ) from exc


def describe_mismatch(resolved: Resolved, family: str, kind: str | ModelKind) -> str | None:
    """What the files hold, when that cannot serve `kind`; None when it can or cannot be told.

    A family the kind does not name cannot serve it; a family it names may still refuse
    (a transformers folder whose architecture is not the kind's Auto class).
    """
    kind = get_kind(kind)
    if family not in kind.families:
        return _what(resolved, family, kind)
    describe = get_family(family).describe
    return describe(resolved, kind) if callable(describe) else None


def _what(resolved: Resolved, family: str, kind: ModelKind) -> str:
    """How a family's files are named in messages: its description, else the family's name."""
    try:
        describe = get_family(family).describe
    except ZooError:
        return f"a {family} model"
    what = describe(resolved, kind) if callable(describe) else describe
    return what or f"a {family} model"


__all__ = ["Loaded", "LoadedInfo", "ModelManager", "key_id", "ModelNotFound", "describe_mismatch", "load_model"]
