"""The crash barrier: models and their plugins in supervised worker processes (ZOO_ISOLATION=process).

Fake engines are test-only loader families (a folder the patched family detection names) whose
loaders and plugins live at module level here, so a worker imports them by name as it does a
built-in plugin.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from zoo.errors import Cancelled, InvalidInput, WorkerCrashed, ZooError
from zoo.kinds import ModelKind, register_family, unregister_family
from zoo.models import manager as manager_module
from zoo.plugin import Int, Json, ModelChoices, Plugin, RunContext, Text
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

# Folder name -> fake loader family.
FAKE_FAMILIES = {"abort-model": "fake-abort", "hog-model": "fake-hog"}
#: The kind the fake tabs run: served by the fake families only.
FAKE_ENGINE = ModelKind("fake-engine", processor="none", families=tuple(FAKE_FAMILIES.values()))


class FakeEngine:
    """What the fake loaders return: an engine that can allocate memory on request."""

    def __init__(self) -> None:
        self.held: list[bytearray] = []

    def allocate(self, megabytes: int) -> int:
        self.held.append(bytearray(megabytes * 2**20))
        return sum(len(b) for b in self.held)


def load_abort(resolved, kind, ctx):
    """An engine that dies of abort() while loading, as a GGML_ASSERT does."""
    os.abort()


def load_hog(resolved, kind, ctx):
    """An engine whose worker may grow only 256 MB past its size at load (RLIMIT_AS, set in the worker)."""
    import resource

    size = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmSize:"))) * 1024
    limit = size + 256 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return FakeEngine(), 1000


class AbortTab(Plugin):
    """Runs the engine that aborts on load."""

    api_version = 2
    task = "fake-abort"
    title = "Fake abort"
    model_kind = FAKE_ENGINE
    models = ModelChoices(online="tiny:causal-lm")
    inputs = (Text("text"),)
    outputs = (Text("text"),)

    def run(self, model, values, ctx):
        return {"text": values["text"]}


class HogTab(Plugin):
    """Asks its engine for memory."""

    api_version = 2
    task = "fake-hog"
    title = "Fake hog"
    model_kind = FAKE_ENGINE
    models = ModelChoices(online="tiny:causal-lm")
    inputs = (Int("megabytes", 8, minimum=1, maximum=100_000),)
    outputs = (Json("held"),)

    def run(self, model, values, ctx):
        return {"held": model.model.allocate(values["megabytes"]), "pid": os.getpid()}


class SpinTab(Plugin):
    """Burns CPU next to the tiny LM until cancelled, reporting progress; writes a marker when it stops."""

    api_version = 2
    task = "fake-spin"
    title = "Fake spin"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("marker"),)
    outputs = (Json("spins"),)

    def run(self, model, values, ctx):
        spins = 0
        try:
            while True:
                deadline = time.perf_counter() + 0.02
                while time.perf_counter() < deadline:
                    spins += 1
                ctx.progress(None, f"spin {spins}")  # raises Cancelled once stopped
        finally:
            Path(values["marker"]).write_text(f"stopped after {spins} spins in {os.getpid()}")


class FailTab(Plugin):
    """Raises errors in the worker: a zoo error with its own arguments, or one no server can rebuild."""

    api_version = 2
    task = "fake-fail"
    title = "Fake fail"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("how"),)
    outputs = (Text("text"),)

    def run(self, model, values, ctx):
        if values["how"] == "zoo":
            raise InvalidInput("how", 42, "must be small", "use 1")
        raise Unpicklable(lambda: None)


class Unpicklable(Exception):
    """An error holding a lambda: it cannot cross a pipe as it is."""

    def __reduce__(self):
        raise TypeError("cannot pickle a lambda")


@pytest.fixture
def fake_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Folders the fake families load, registered like a model kind's loader."""
    real = manager_module.detect_family
    monkeypatch.setattr(manager_module, "detect_family", lambda p: FAKE_FAMILIES.get(Path(p).name) or real(p))
    register_family("fake-abort", load_abort, "a fake engine that aborts")
    register_family("fake-hog", load_hog, "a fake engine that allocates")
    folders = {}
    for name, family in FAKE_FAMILIES.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        folders[family] = str(tmp_path / name)
    yield folders
    for family in FAKE_FAMILIES.values():
        unregister_family(family)


@pytest.fixture
def zoo(settings: Settings, fake_models: dict[str, str]) -> Zoo:
    """Every built-in plugin on tiny models plus the fake tabs, with workers whatever ZOO_ISOLATION says."""
    registry = Registry.discover(entry_points=False)
    for tab in (AbortTab, HogTab, SpinTab, FailTab):
        registry.register(tab, "tests.test_workers")
    zoo = Zoo(settings.replace(tiny=True, isolation="process", model_overrides=fake_models), registry=registry)
    yield zoo
    zoo.models.close()


def worker_pid(zoo: Zoo, ref: str) -> int:
    """The pid of the live worker holding `ref`."""
    pids = [h.pid for h in zoo.models.workers.handles() if h.ref == ref]
    assert len(pids) == 1, zoo.models.workers.handles()
    return pids[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gone(pid: int, within: float = 10.0) -> bool:
    """True once the process no longer exists (or is a zombie awaiting its reaper)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def classify(zoo: Zoo) -> dict:
    return zoo.run("text-classification", text="a fine day")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_worker_killed_mid_stream_is_a_clean_error_and_others_keep_answering(zoo: Zoo, sig: signal.Signals) -> None:
    assert set(classify(zoo)["labels"]) == {"NEGATIVE", "POSITIVE"}  # another tab, its own worker
    classifier = worker_pid(zoo, "tiny:text-classification")
    stream = zoo.stream("text-generation", {"prompt": "hello", "max_new_tokens": 400, "temperature": 1.0, "seed": 3})
    first = next(stream)
    assert isinstance(first["text"], str)
    doomed = worker_pid(zoo, "tiny:causal-lm")
    assert doomed not in (os.getpid(), classifier)
    os.kill(doomed, sig)
    with pytest.raises(WorkerCrashed) as caught:
        for _ in stream:
            pass
    message = str(caught.value)
    assert f"`tiny:causal-lm` was killed by {sig.name} (signal {int(sig)}" in message
    assert "Fix: send the request again: a new worker starts for it" in message
    assert caught.value.exitcode == -int(sig) and caught.value.model == "tiny:causal-lm"
    assert gone(doomed)
    # The next request starts a new worker; meanwhile another tab answers from its own.
    results: dict[str, dict] = {}
    restart = threading.Thread(target=lambda: results.update(
        gen=zoo.run("text-generation", prompt="hello", max_new_tokens=6, seed=1)))
    restart.start()
    assert set(classify(zoo)["labels"]) == {"NEGATIVE", "POSITIVE"}
    restart.join(120)
    assert isinstance(results["gen"]["text"], str) and results["gen"]["text"]
    assert worker_pid(zoo, "tiny:causal-lm") != doomed
    assert worker_pid(zoo, "tiny:text-classification") == classifier  # never restarted
    assert len(zoo.models.cache.keys()) == 2


def test_engine_that_aborts_on_load_is_broken_after_three_tries(zoo: Zoo, fake_models: dict[str, str]) -> None:
    ref = fake_models["fake-abort"]
    for attempt in (1, 2):
        with pytest.raises(WorkerCrashed) as caught:
            zoo.run("fake-abort", text="hi")
        assert "was killed by SIGABRT (signal 6: the engine aborted" in str(caught.value)
        assert "while loading the model" in str(caught.value) and not caught.value.broken
        assert set(classify(zoo)["labels"]) == {"NEGATIVE", "POSITIVE"}
    with pytest.raises(WorkerCrashed) as caught:
        zoo.run("fake-abort", text="hi")
    assert caught.value.broken
    assert f"`{ref}` is marked broken: its worker process was killed by SIGABRT" in str(caught.value)
    assert "3 times in a row" in str(caught.value) and "Fix: pick another model" in str(caught.value)
    # Broken: refused at once, without starting a worker again; the other tabs work.
    started = time.perf_counter()
    with pytest.raises(WorkerCrashed, match="is marked broken"):
        zoo.run("fake-abort", text="hi")
    assert time.perf_counter() - started < 1.0
    assert zoo.run("text-generation", prompt="hi", max_new_tokens=4, seed=1)["text"]
    zoo.models.reset_broken()  # the operator's reset: it is tried again
    with pytest.raises(WorkerCrashed) as caught:
        zoo.run("fake-abort", text="hi")
    assert not caught.value.broken and "SIGABRT" in str(caught.value)


def test_engine_past_its_memory_limit_fails_alone(zoo: Zoo) -> None:
    small = zoo.run("fake-hog", megabytes=8)
    assert small["held"] == 8 * 2**20
    first = small["pid"]
    assert first != os.getpid()
    with pytest.raises(WorkerCrashed) as caught:
        zoo.run("fake-hog", megabytes=1024)
    assert "ran out of memory in its worker process (MemoryError)" in str(caught.value)
    assert "ZOO_WORKER_MEMORY_LIMIT" in str(caught.value)
    assert set(classify(zoo)["labels"]) == {"NEGATIVE", "POSITIVE"}
    assert gone(first)
    again = zoo.run("fake-hog", megabytes=8)
    assert again["held"] == 8 * 2**20 and again["pid"] != first  # a fresh worker, fresh memory


def test_cancel_mid_request_ends_the_work_in_the_worker(zoo: Zoo, tmp_path: Path) -> None:
    marker = tmp_path / "spin.txt"
    ctx = RunContext()
    failure: list[BaseException] = []

    def spin() -> None:
        try:
            zoo.run("fake-spin", ctx=ctx, marker=str(marker))
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=spin)
    runner.start()
    deadline = time.monotonic() + 60
    while not zoo.models.workers.handles() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = worker_pid(zoo, "tiny:causal-lm")
    time.sleep(0.5)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    busy = cpu_seconds(pid) - before
    assert busy > 0.4, f"the worker used {busy:.2f}s of CPU in 1s while spinning"
    ctx.cancel_event.set()  # what the UI does on Stop or a disconnect
    runner.join(5)
    assert not runner.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], Cancelled)
    time.sleep(0.3)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    idle = cpu_seconds(pid) - before
    assert idle < 0.1, f"the worker still used {idle:.2f}s of CPU in 1s after the cancel"
    assert marker.read_text().startswith("stopped after") and str(pid) in marker.read_text()
    # The worker is shared by the model's tabs and stays up for them.
    assert zoo.run("text-generation", prompt="hi", max_new_tokens=4, seed=1)["text"]
    assert worker_pid(zoo, "tiny:causal-lm") == pid


def test_closing_a_stream_returns_at_once_and_stops_the_worker(zoo: Zoo) -> None:
    stream = zoo.stream("text-generation", {"prompt": "a", "max_new_tokens": 1000, "temperature": 1.0, "seed": 2})
    next(stream)
    next(stream)
    pid = worker_pid(zoo, "tiny:causal-lm")
    started = time.perf_counter()
    stream.close()  # a client that went away: gradio closes the generator
    assert time.perf_counter() - started < 0.2
    time.sleep(0.5)
    before = cpu_seconds(pid)
    time.sleep(0.5)
    assert cpu_seconds(pid) - before < 0.1
    assert zoo.run("text-generation", prompt="b", max_new_tokens=3, seed=1)["text"]


def test_errors_cross_the_pipe_with_their_class_and_fix(zoo: Zoo) -> None:
    with pytest.raises(InvalidInput) as caught:
        zoo.run("fake-fail", how="zoo")
    pid = worker_pid(zoo, "tiny:causal-lm")
    assert str(caught.value) == "`how` must be small, but got 42. Fix: use 1"
    assert caught.value.name == "how" and caught.value.value == 42
    with pytest.raises(ZooError) as other:
        zoo.run("fake-fail", how="other")
    assert "`tiny:causal-lm` failed in its worker process: Unpicklable: " in str(other.value)
    assert "Fix: the server log has the worker's traceback" in str(other.value)
    assert worker_pid(zoo, "tiny:causal-lm") == pid  # the worker survived both


def test_one_worker_per_model_shared_by_its_tabs_and_eviction_ends_it(zoo: Zoo, settings: Settings) -> None:
    zoo.run("text-generation", prompt="hi", max_new_tokens=2, seed=1)
    with pytest.raises(Cancelled):  # a second tab on the same model: same worker
        ctx = RunContext()
        ctx.cancel_event.set()
        zoo.run("fake-spin", ctx=ctx, marker="/dev/null")
    assert len(zoo.models.workers.handles()) == 1
    lm = worker_pid(zoo, "tiny:causal-lm")
    entry = zoo.models.cache.entry(zoo.models.cache.keys()[0])
    assert entry is not None and entry.value.pid == lm and entry.nbytes > 0  # the size the worker measured
    zoo.models.cache.budget = 1  # over budget: the idle model goes when the next loads
    classify(zoo)
    assert gone(lm)
    assert [h.ref for h in zoo.models.workers.handles()] == ["tiny:text-classification"]


def test_modes_and_their_setting(settings: Settings) -> None:
    assert Settings().isolation == "process"
    assert Settings.from_env({"ZOO_ISOLATION": "inline"}).isolation == "inline"
    with pytest.raises(InvalidInput, match="`ZOO_ISOLATION` must be process or inline"):
        Settings.from_env({"ZOO_ISOLATION": "threads"})
    inline = Zoo(settings.replace(tiny=True, isolation="inline"))
    assert inline.run("text-classification", text="ok")["labels"]
    assert inline.models.workers.handles() == []
    entry = inline.models.cache.entry(inline.models.cache.keys()[0])
    assert entry is not None and not entry.value.in_worker
    inline.gpu._gpu_stream = lambda *a: iter(())  # ZeroGPU keeps models in the main process
    assert Zoo(settings.replace(isolation="process")).isolation == "process" and inline.isolation == "inline"
    zero = Zoo(settings.replace(isolation="process"))
    zero.gpu._gpu_stream = lambda *a: iter(())
    assert zero.isolation == "inline"
