"""The crash barrier: model work in supervised worker processes, one per loaded model.

The web server keeps the cache's accounting (budget, LRU, reference counts, idle unload,
per-model slots); the value in a cache entry is a `WorkerHandle`. The worker loads the
model, then runs every plugin that uses it: the plugin's `run`/`stream` executes next to
the model, and what it yields, its progress and its errors come back over a pipe, while
Stop and disconnects travel the other way. A worker that dies (SIGSEGV, SIGILL, abort(),
SIGKILL, a memory limit) becomes a `WorkerCrashed` error for the requests it served; its
cache entry is dropped so the next request starts a new one, and a model whose worker
dies while loading 3 times in a row is marked broken. Evicting a model ends its worker,
so its memory goes back to the OS.

Workers are forked by multiprocessing's fork server, which imports the heavy libraries
once (PRELOAD), so a worker pays neither the imports nor the risk of forking a threaded
server. llama.cpp is not preloaded: `ggml.prepare` picks its CPU variant in each worker
before llama.cpp initialises there.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import types
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

from zoo.errors import Cancelled, WorkerCrashed, ZooError

log = logging.getLogger(__name__)

#: Imported once by the fork server, so every worker starts with them loaded. Missing ones are skipped.
PRELOAD = ("zoo.workers", "zoo.models.loaders", "zoo.models.manager", "zoo.models.lm", "numpy", "PIL.Image",
           "torch", "transformers", "transformers.modeling_utils", "transformers.generation.utils")
#: Load crashes in a row after which a model is marked broken.
BROKEN_AFTER = 3
_POLL = 0.05  # seconds between checks of a request's cancel event while waiting for the worker
#: Outputs a worker may send ahead of the consumer: enough to decode while the server relays, few
#: enough that Stop lands within a step or two, as it does inline, where the consumer pulls each one.
WINDOW = 2


@dataclass(frozen=True)
class PluginSpec:
    """How a worker finds a plugin: its module and class name (the worker imports and builds it)."""

    module: str
    qualname: str

    @classmethod
    def of(cls, plugin: Any) -> "PluginSpec | None":
        """The spec of a plugin instance, or None when a worker could not import its class by name."""
        klass = type(plugin)
        if klass.__module__ == "__main__" or "<locals>" in klass.__qualname__:
            return None
        if {"run", "stream"} & set(vars(plugin)):  # methods replaced on this instance (a test's spy) stay here
            return None
        return cls(klass.__module__, klass.__qualname__)

    def build(self) -> Any:
        """Import the class and instantiate it (in the worker)."""
        import importlib

        obj: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj()


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to load its model; pickled into the new process."""

    ref: str
    resolved: Any  # zoo.models.sources.Resolved
    family: str
    kind: Any  # zoo.kinds.ModelKind, pickled with its functions by name (their module registers it there)
    device: str
    loader: Callable[..., tuple[Any, int]]  # the family's loader, pickled by name
    load_context: Any  # zoo.models.loaders.LoadContext
    env: dict[str, str] = field(default_factory=dict)
    memory_limit: int = 0
    log_level: int = logging.WARNING


# --------------------------------------------------------------------------- errors across the pipe


def pack_error(exc: BaseException) -> bytes:
    """An exception as bytes the server can rebuild; ZooErrors keep their class, message and fix."""
    if isinstance(exc, ZooError):
        # Some ZooErrors take other arguments than their message (InvalidInput), so plain pickling,
        # which calls the class with `args`, cannot rebuild them; their state is carried instead.
        state = {}
        for k, v in vars(exc).items():
            try:
                pickle.dumps(v)
                state[k] = v
            except Exception:
                state[k] = repr(v)
        try:
            return pickle.dumps(("zoo", type(exc), exc.args, state))
        except Exception:
            pass
    try:
        data = pickle.dumps(("plain", exc))
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(("text", type(exc).__name__, str(exc)))


def unpack_error(data: bytes, ref: str) -> BaseException:
    """The exception `pack_error` packed; one that could not travel becomes a clear ZooError naming the model."""
    try:
        packed = pickle.loads(data)
    except Exception as exc:  # a class the server cannot import (a plugin's own error type)
        packed = ("text", type(exc).__name__, "an error the server could not read back")
    if packed[0] == "zoo":
        _, klass, args, state = packed
        err = klass.__new__(klass)
        err.args = args
        err.__dict__.update(state)
        return err
    if packed[0] == "plain":
        return packed[1]
    return ZooError(f"`{ref}` failed in its worker process: {packed[1]}: {packed[2]}",
                    "the server log has the worker's traceback; pick another model or input")


SIGNAL_HINTS = {
    signal.SIGKILL: "sent by the out-of-memory killer or an operator",
    signal.SIGSEGV: "a crash in the engine's native code",
    signal.SIGILL: "the engine ran an instruction this CPU does not have",
    signal.SIGABRT: "the engine aborted, e.g. a failed assertion (GGML_ASSERT)",
    signal.SIGBUS: "a bad memory access in native code, or a model file changed while mapped",
}


def describe_exit(exitcode: int | None) -> str:
    """`killed by SIGSEGV (signal 11: a crash in ...)` or `exited with code 3`."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}"
        hint = SIGNAL_HINTS.get(sig)
        return f"was killed by {sig.name} (signal {-exitcode}" + (f": {hint})" if hint else ")")
    return f"exited with code {exitcode}"


def crash_error(ref: str, exitcode: int | None, during: str) -> WorkerCrashed:
    """The error a request gets when the worker serving it dies."""
    return WorkerCrashed(
        f"The worker process running `{ref}` {describe_exit(exitcode)} while {during}; "
        "the server and the other tabs keep working.",
        "send the request again: a new worker starts for it. If it keeps happening, pick another model or a "
        "smaller input; ZOO_ISOLATION=inline runs models in the server for debugging",
        model=ref, exitcode=exitcode)


# --------------------------------------------------------------------------- server side


class WorkerHandle:
    """The server's end of one worker: what the cache holds for a model loaded in a worker process."""

    in_worker = True

    def __init__(self, spec: WorkerSpec, process: Any, conn: Any):
        self.ref = spec.ref
        self.resolved = spec.resolved
        self.family = spec.family
        self.kind: str = spec.kind.name
        self.device = spec.device
        self.process = process
        self.pid: int = process.pid
        self.nbytes = 0
        self.load_seconds = 0.0
        self.death: WorkerCrashed | None = None
        self.on_death: Callable[["WorkerHandle", WorkerCrashed], None] | None = None
        self._conn = conn
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._requests: dict[int, queue.SimpleQueue] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._reader: threading.Thread | None = None

    @property
    def is_tiny(self) -> bool:
        """True for random-weight tiny models."""
        return bool(self.resolved.is_tiny)

    @property
    def alive(self) -> bool:
        """True while the worker runs and has not been told to stop."""
        return self.death is None and not self._closing and self.process.is_alive()

    def __repr__(self) -> str:
        return f"WorkerHandle({self.ref!r}, pid={self.pid}, alive={self.alive})"

    @property
    def rss(self) -> int | None:
        """The worker's resident memory in bytes now (its model and everything it imported); None once it is gone."""
        return process_rss(self.pid) if self.alive else None

    # ------------------------------------------------------------------ pipe
    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def start_reader(self) -> None:
        """Route the worker's messages to the requests waiting for them; notice its death."""
        self._reader = threading.Thread(target=self._read, name=f"zoo-worker-reader-{self.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an output the server cannot unpickle: that request fails, the worker lives
                log.exception("Reading from the worker of %s failed", self.ref)
                continue
            with self._lock:
                waiting = self._requests.get(message[1]) if len(message) > 1 else None
            if waiting is not None:
                waiting.put(message)
        self._died()

    def _died(self) -> None:
        self.process.join(5)
        if self.process.is_alive():  # told to stop but still running (stuck in native code)
            self.process.kill()
            self.process.join()
        try:
            self._conn.close()
        except OSError:
            pass
        error = crash_error(self.ref, self.process.exitcode, "serving a request")
        self.death = error
        with self._lock:
            waiting = list(self._requests.values())
        for q in waiting:
            q.put(("died", 0, error))
        if not self._closing:
            log.error("The worker of %s (pid %s) %s.", self.ref, self.pid, describe_exit(self.process.exitcode))
            if self.on_death is not None:
                self.on_death(self, error)

    # ------------------------------------------------------------------ requests
    def stream(self, plugin: Any, values: dict[str, Any], ctx: Any) -> Iterator[dict[str, Any]]:
        """Run `plugin` on the worker's model; yields what it yields, relays progress, forwards cancellation."""
        spec = PluginSpec.of(plugin)
        if spec is None:
            raise RuntimeError(f"{type(plugin).__qualname__} cannot be imported by a worker")
        rid = next(self._ids)
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._requests[rid] = inbox
        finished = False
        try:
            if self.death is not None:
                raise self.death
            self._send(("run", rid, spec, values, {"limits": ctx.limits, "temp_dir": ctx.temp_dir,
                                                   "model_ref": ctx.model_ref}))
            cancel_sent = False
            while True:
                if ctx.cancel_event.is_set() and not cancel_sent:
                    # As inline: the plugin sees the cancel at its next step and ends as it would there.
                    self._send(("cancel", rid))
                    cancel_sent = True
                try:
                    message = inbox.get(timeout=_POLL)
                except queue.Empty:
                    continue
                what = message[0]
                if what == "out":
                    yield message[2]
                    self._send(("ack", rid))  # the consumer wants the next one: the worker may run ahead again
                elif what == "progress":
                    if ctx.on_progress is not None:
                        ctx.on_progress(message[2], message[3])
                elif what == "usage":  # the plugin's report_usage, made in the worker
                    ctx.usage.update(message[2])
                elif what == "done":
                    finished = True
                    return
                elif what == "error":
                    finished = True
                    raise unpack_error(message[2], self.ref)
                elif what == "died":
                    finished = True
                    raise message[2]
        except (BrokenPipeError, OSError) as exc:
            finished = True
            raise self.death or crash_error(self.ref, self.process.exitcode, "serving a request") from exc
        finally:
            with self._lock:
                self._requests.pop(rid, None)
            if not finished:  # closed early (Stop, disconnect, cancel): the worker's own ctx stops the plugin
                try:
                    self._send(("cancel", rid))
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        """End the worker (eviction, idle unload, shutdown); returns at once, the process is reaped behind."""
        if self._closing:
            return
        self._closing = True
        try:
            self._send(("stop", 0))
        except (OSError, ValueError):
            pass
        try:
            self.process.terminate()
        except (OSError, AttributeError):
            pass
        if self._reader is None:
            threading.Thread(target=self._died, daemon=True).start()


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a process without it re-running the server's main script.

    multiprocessing re-imports the parent's `__main__` in a child started from a file; for
    `python app.py` that would build the whole app again in every worker. Workers need nothing
    from it (plugins are imported by module name), so the main module is hidden while the
    child's start data is taken.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def process_rss(pid: int) -> int | None:
    """Resident memory (VmRSS) of a process in bytes, read from /proc; None when it is gone or not readable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None  # a zombie has no VmRSS line


def _close_all(handles: Any) -> None:
    for handle in list(handles.values()):
        handle.close()


class WorkerPool:
    """Starts and supervises the workers of one model manager; remembers models that keep crashing."""

    def __init__(self, memory_limit: int = 0):
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        # Weak: a handle the cache dropped was closed then; only live ones need ending at exit.
        self._handles: weakref.WeakValueDictionary[int, WorkerHandle] = weakref.WeakValueDictionary()
        self._atexit = False
        self._crashes: dict[Hashable, int] = {}
        self._broken: dict[Hashable, tuple[WorkerCrashed, float]] = {}
        # Workers end with their manager (a test's Zoo, or the server at exit).
        self._finalizer = weakref.finalize(self, _close_all, self._handles)

    @staticmethod
    def _context() -> Any:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))  # read when the fork server starts (once per process)
        return ctx

    def handles(self) -> list[WorkerHandle]:
        """The live workers."""
        with self._lock:
            return [h for h in self._handles.values() if h.alive]

    def broken(self, key: Hashable, resolved: Any) -> WorkerCrashed | None:
        """The error of a model marked broken, unless its files changed since (then it gets a new chance)."""
        with self._lock:
            hit = self._broken.get(key)
            if hit is None:
                return None
            if _fingerprint(resolved) != hit[1]:
                del self._broken[key]
                self._crashes.pop(key, None)
                return None
            return hit[0]

    def reset(self, key: Hashable | None = None) -> None:
        """Forget crashes: of one model, or of all (the operator's reset)."""
        with self._lock:
            if key is None:
                self._broken.clear()
                self._crashes.clear()
            else:
                self._broken.pop(key, None)
                self._crashes.pop(key, None)

    def start(self, key: Hashable, spec: WorkerSpec,
              on_death: Callable[[WorkerHandle, WorkerCrashed], None] | None = None) -> WorkerHandle:
        """Start a worker, wait until it has loaded its model, and return its handle (`on_death` is called if it dies)."""
        broken = self.broken(key, spec.resolved)
        if broken is not None:
            raise broken
        mp = self._context()
        if not self._atexit:
            # multiprocessing ends daemonic children at exit; this hook, registered after its own,
            # runs first, so those ends read as a shutdown and not as crashes.
            atexit.register(_close_all, self._handles)
            self._atexit = True
        ours, theirs = mp.Pipe(duplex=True)
        process = mp.Process(target=worker_main, args=(theirs, spec), name=f"zoo-worker {spec.ref}",
                             # daemonic: at exit multiprocessing ends it rather than waiting for it
                             daemon=True)
        with _main_module_hidden():
            process.start()
        theirs.close()  # so the worker's death reads as EOF here
        handle = WorkerHandle(spec, process, ours)
        handle.on_death = on_death
        with self._lock:
            self._handles[process.pid] = handle
        try:
            message = ours.recv()
        except (EOFError, OSError):
            process.join(5)
            with self._lock:
                self._handles.pop(process.pid, None)
            raise self._load_crashed(key, spec, process.exitcode) from None
        if message[0] == "load-error":
            process.join(5)
            with self._lock:
                self._handles.pop(process.pid, None)
            raise unpack_error(message[2], spec.ref)
        _, _, handle.nbytes, handle.load_seconds = message
        with self._lock:
            self._crashes.pop(key, None)
        handle.start_reader()
        return handle

    def _load_crashed(self, key: Hashable, spec: WorkerSpec, exitcode: int | None) -> WorkerCrashed:
        with self._lock:
            count = self._crashes.get(key, 0) + 1
            self._crashes[key] = count
        what = describe_exit(exitcode)
        log.error("The worker loading %s %s (%d in a row).", spec.ref, what, count)
        if count < BROKEN_AFTER:
            error = crash_error(spec.ref, exitcode, "loading the model")
            return error
        error = WorkerCrashed(
            f"`{spec.ref}` is marked broken: its worker process {what} while loading, {count} times in a row; "
            "the other tabs keep working.",
            "pick another model; once its files are fixed or replaced it is tried again, and the operator can "
            "reset it (restart the server, or ModelManager.reset_broken())",
            model=spec.ref, exitcode=exitcode, broken=True)
        with self._lock:
            self._broken[key] = (error, _fingerprint(spec.resolved))
        return error

    def close(self) -> None:
        """End every worker."""
        _close_all(self._handles)


def _fingerprint(resolved: Any) -> float:
    """When the model's files last changed (replacing them lifts the broken mark)."""
    try:
        return resolved.path.stat().st_mtime
    except (OSError, AttributeError):
        return 0.0


# --------------------------------------------------------------------------- worker side


def worker_main(conn: Any, spec: WorkerSpec) -> None:
    """The worker process: load the model, then serve requests until told to stop or the server goes."""
    # The fork server's environment dates from its start; the request's is the server's now.
    os.environ.clear()
    os.environ.update(spec.env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle; it ends the workers
    logging.basicConfig(level=spec.log_level, format=f"%(levelname)s [worker {os.getpid()}] %(name)s: %(message)s")
    if spec.memory_limit > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (spec.memory_limit, spec.memory_limit))
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            conn.send(message)

    from zoo.models.manager import Loaded, load_model

    started = time.perf_counter()
    try:
        model, nbytes = load_model(spec.ref, spec.resolved, spec.family, spec.kind, spec.loader, spec.load_context)
    except BaseException as exc:
        send(("load-error", 0, pack_error(exc)))
        conn.close()
        os._exit(0)
    seconds = time.perf_counter() - started
    loaded = Loaded(spec.ref, spec.resolved, spec.family, spec.kind.name, model, spec.device, seconds)
    send(("loaded", 0, int(nbytes), seconds))
    _serve(conn, send, loaded)


def _serve(conn: Any, send: Callable[[tuple], None], loaded: Any) -> None:
    """Read requests and cancels; each request runs in its own thread (ZOO_CONCURRENCY may allow several)."""
    plugins: dict[Any, Any] = {}
    cancels: dict[int, threading.Event] = {}
    credits: dict[int, threading.Semaphore] = {}
    lock = threading.Lock()

    def plugin_for(spec: PluginSpec) -> Any:
        with lock:
            if spec not in plugins:
                plugins[spec] = spec.build()
            return plugins[spec]

    def run(rid: int, spec: PluginSpec, values: dict[str, Any], extra: dict[str, Any]) -> None:
        from zoo.plugin import RunContext

        event, credit = cancels[rid], credits[rid]
        ctx = RunContext(limits=extra["limits"], cancel_event=event, temp_dir=extra.get("temp_dir"),
                         on_progress=lambda f, d: send(("progress", rid, f, d)),
                         on_usage=lambda counts: send(("usage", rid, counts)),
                         # The request's own name for the model: several names can share one worker.
                         model_ref=extra.get("model_ref") or loaded.ref, model_revision=loaded.resolved.ref.revision,
                         is_tiny=loaded.is_tiny)
        fatal = False
        try:
            plugin = plugin_for(spec)
            ctx.raise_if_cancelled()
            if plugin.can_stream:
                outputs = iter(plugin.stream(loaded, values, ctx))
                try:
                    for item in outputs:
                        while not credit.acquire(timeout=_POLL) and not event.is_set():
                            pass
                        if event.is_set():  # stopped: the plugin's generator is closed, as inline
                            break
                        send(("out", rid, item))
                finally:
                    close = getattr(outputs, "close", None)
                    if callable(close):
                        close()
            else:
                send(("out", rid, plugin.run(loaded, values, ctx)))
            send(("done", rid))
        except BaseException as exc:
            if isinstance(exc, MemoryError):  # a half-made allocation may leave the model unusable: start afresh
                fatal = True
                exc = WorkerCrashed(f"`{loaded.ref}` ran out of memory in its worker process (MemoryError).",
                                    "try a smaller input or model, or give workers more memory "
                                    "(ZOO_WORKER_MEMORY_LIMIT); the next request starts a new worker",
                                    model=loaded.ref)
            elif not isinstance(exc, (ZooError, Cancelled)):
                logging.getLogger(__name__).warning("%s failed in the worker of %s", spec.qualname, loaded.ref,
                                                    exc_info=True)
            try:
                send(("error", rid, pack_error(exc)))
            except (OSError, ValueError):
                pass
        finally:
            event.set()  # background threads of the plugin (decoders) end too
            with lock:
                cancels.pop(rid, None)
                credits.pop(rid, None)
            if fatal:
                os._exit(3)

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone: nobody to answer
            os._exit(0)
        what = message[0]
        if what == "run":
            _, rid, spec, values, extra = message
            with lock:
                cancels[rid] = threading.Event()
                credits[rid] = threading.Semaphore(WINDOW)
            threading.Thread(target=run, args=(rid, spec, values, extra), name=f"zoo-request-{rid}",
                             daemon=True).start()
        elif what == "cancel":
            with lock:
                event = cancels.get(message[1])
            if event is not None:
                event.set()
        elif what == "ack":
            with lock:
                credit = credits.get(message[1])
            if credit is not None:
                credit.release()
        elif what == "stop":
            os._exit(0)
