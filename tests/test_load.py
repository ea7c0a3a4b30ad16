"""Load and faults: many clients at once, a long soak, a small memory budget, broken model files
and clients that leave mid-stream.

One in-process app (tiny models) serves the module. A throwaway plugin registered by the test
(`slot-probe`) shares the tiny language model with text generation, chat and generative QA;
together with a wrapper around that model's `stream`, it counts how many requests hold the
model at once, which ZOO_CONCURRENCY (default 1) must cap.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from servers import free_port, serve_in_process
from zoo.errors import ModelLoadError, ModelNotFound
from zoo.plugin import Json, ModelChoices, Plugin, RunContext, Text
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

TG, CHAT, QA, TC = "text-generation", "conversational", "question-answering", "text-classification"
T2I = "text-to-image"
SS, ZS, TOK = "sentence-similarity", "zero-shot-classification", "token-classification"
LM = "tiny:causal-lm"
TIMEOUT = 90.0  # no request may take longer than this, however loaded the machine


def generate_threads() -> list[str]:
    """Names of live LM worker threads (TransformersLM names them `generate-<model>`)."""
    return [t.name for t in threading.enumerate() if t.name.startswith("generate-")]


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> float:
    """Seconds until predicate() is true; raises AssertionError after `timeout`."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"still false after {timeout}s: {predicate}")
        time.sleep(step)
    return time.perf_counter() - started


def rss_bytes() -> int:
    """Resident memory of this process (the in-process server lives here)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# --------------------------------------------------------------------------- instrumentation


@dataclass
class Holders:
    """How many requests hold one model at a time; `peak` is the most ever seen."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    now: int = 0
    peak: int = 0
    total: int = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Count the block as one holder."""
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self.lock:
                self.now -= 1


class SlotProbe(Plugin):
    """A throwaway plugin on the shared tiny LM: it holds the model for a moment and counts itself."""

    api_version = 2
    task = "slot-probe"
    title = "Slot probe (test)"
    model_kind = "causal-lm"
    models = ModelChoices(online=LM, tiny=LM)
    inputs = (Text("text"),)
    outputs = (Json("held"),)

    def __init__(self, holders: Holders):
        self.holders = holders

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Hold the model a moment, counted."""
        with self.holders.hold():
            time.sleep(0.2)  # long enough for other requests on the same model to pile up
        return {"held": {"model": model.ref, "text": values["text"]}}


def count_streams(lm: Any, holders: Holders) -> None:
    """Wrap the shared LM's `stream` so every generation counts as a holder while it runs."""
    original = lm.stream

    def stream(*args: Any, **kwargs: Any) -> Iterator[str]:
        with holders.hold():
            yield from original(*args, **kwargs)

    lm.stream = stream


@contextmanager
def slow_lm(lm: Any, seconds: float = 0.02) -> Iterator[Counter]:
    """Make each forward pass of the tiny LM take `seconds`, counting passes, for the block."""
    calls: Counter = Counter()

    def hook(module: Any, args: Any) -> None:
        calls["forward"] += 1
        time.sleep(seconds)

    handle = lm.model.register_forward_pre_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


# --------------------------------------------------------------------------- the app under test


@dataclass
class LoadApp:
    """The running app and what the tests need to watch it."""

    zoo: Zoo
    url: str
    holders: Holders
    lm: Any
    broken: Path  # ZOO_MODEL_TOKEN_CLASSIFICATION points here

    def client(self) -> Any:
        """A fresh gradio_client (its own session), as a separate user would have."""
        from gradio_client import Client

        return Client(self.url, verbose=False)


@pytest.fixture(scope="module")
def app(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadApp]:
    """Eight plugins plus the slot probe, tiny models, default concurrency (1 per model)."""
    broken = tmp_path_factory.mktemp("faults") / "token-model"
    holders = Holders()
    registry = Registry.discover(allow=(TG, CHAT, QA, TC, T2I, SS, ZS, TOK))
    registry.register(SlotProbe(holders), source="tests/test_load.py")
    port = free_port()
    # Inline: these tests count streams and forward passes by patching the models in this process
    # (a worker's model is out of their reach); tests/test_workers.py covers the worker side.
    settings = Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                        memory_budget=8 * 10**9, server_port=port, model_overrides={TOK: str(broken)},
                        isolation="inline")
    assert settings.max_concurrency_per_model == 1  # the default under test
    zoo = Zoo(settings, registry=registry)
    with serve_in_process(zoo) as served:
        lm = zoo.models.load(LM, "causal-lm").model  # the object every LM plugin will be handed
        count_streams(lm, holders)
        yield LoadApp(zoo, served.url, holders, lm, broken)


# Mixed requests: four share the tiny LM (and its one slot), four use other models.
REQUESTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("/text_generation", dict(prompt="Hello", max_new_tokens=8, temperature=0)),
    ("/text_classification", dict(text="I love it")),
    ("/chat", dict(message="Hi", history=[], max_new_tokens=8, temperature=0)),
    ("/text_to_image", dict(prompt="a fox", width=64, height=64, steps=1, seed=1)),
    ("/question_answering", dict(question="Where does Tom live?", context="Tom lives in Oslo.", mode="generative",
                                 max_new_tokens=8, temperature=0)),
    ("/sentence_similarity", dict(query="plants", documents="Plants make food.\nCars drive.")),
    ("/slot_probe", dict(text="x")),
    ("/zero_shot_classification", dict(text="A late goal won the match", candidate_labels="sports, cooking")),
)
ON_LM = {"/text_generation", "/chat", "/question_answering", "/slot_probe"}


def check_result(api: str, result: Any) -> None:
    """What each endpoint must return (tiny models: shapes and types, the text is noise)."""
    if api == "/text_generation":
        assert isinstance(result, str)
    elif api == "/chat":
        reply, history = result
        assert history[-1] == {"role": "assistant", "content": reply} and history[0]["content"] == "Hi"
    elif api == "/question_answering":
        answer, _score, _highlighted, details = result
        assert isinstance(answer, str) and details["mode"] == "generative" and details["model"] == LM
    elif api == "/text_classification":
        labels, _note = result
        assert {c["label"] for c in labels["confidences"]} == {"NEGATIVE", "POSITIVE"}
    elif api == "/text_to_image":
        _image, _gallery, seed, metadata = result
        assert int(seed) == 1 and (metadata["width"], metadata["height"]) == (64, 64)
    elif api == "/sentence_similarity":
        table, _details = result
        assert sorted(row[2] for row in table["data"]) == ["Cars drive.", "Plants make food."]
    elif api == "/slot_probe":
        assert result == {"model": LM, "text": "x"}
    elif api == "/zero_shot_classification":
        scores, _note = result
        assert {c["label"] for c in scores["confidences"]} == {"sports", "cooking"}
    else:
        raise AssertionError(api)


def is_queue_full(exc: BaseException) -> bool:
    """gradio's clean refusal when ZOO_MAX_QUEUE requests already wait."""
    return "queue is full" in str(exc).lower()


# --------------------------------------------------------------------------- concurrency


@pytest.mark.app
def test_eight_clients_five_requests_each(app: LoadApp) -> None:
    """8 clients x 5 mixed requests: all served (or cleanly refused), none hangs, one LM holder at a time."""
    clients, per_client = 8, 5
    results: list[tuple[str, float, float, str]] = []  # (api, start, end, outcome)
    failures: list[str] = []
    lock = threading.Lock()
    peak_before = app.holders.peak
    start_line = threading.Barrier(clients)

    def user(i: int) -> None:
        client = app.client()
        start_line.wait()  # everyone fires at once
        for j in range(per_client):
            api, values = REQUESTS[(i + 3 * j) % len(REQUESTS)]
            started = time.perf_counter()
            try:
                result = client.submit(**values, api_name=api).result(timeout=TIMEOUT)
                check_result(api, result)
                outcome = "ok"
            except Exception as exc:  # a hang shows as TimeoutError here
                outcome = "queue full" if is_queue_full(exc) else f"{type(exc).__name__}: {exc}"
            with lock:
                results.append((api, started, time.perf_counter(), outcome))
                if outcome not in ("ok", "queue full"):
                    failures.append(f"{api}: {outcome}")

    threads = [threading.Thread(target=user, args=(i,), name=f"load-client-{i}") for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * per_client)
    wall = time.perf_counter() - began
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not failures, failures
    served = Counter(api for api, _, _, outcome in results if outcome == "ok")
    latencies = sorted(end - start for _, start, end, _ in results)
    lm_calls = [(s, e) for api, s, e, _ in results if api in ON_LM]
    overlapping = sum(1 for a, (s1, e1) in enumerate(lm_calls) for s2, e2 in lm_calls[a + 1:] if s1 < e2 and s2 < e1)
    print(f"\n8 clients x 5 requests: {sum(served.values())}/{len(results)} served, "
          f"{sum(1 for r in results if r[3] == 'queue full')} queue-full, {len(failures)} failures, "
          f"wall {wall:.1f}s, latency median {latencies[len(latencies) // 2]:.2f}s max {latencies[-1]:.2f}s; "
          f"{overlapping} overlapping pairs of LM requests, peak holders of the LM {app.holders.peak}")
    assert len(results) == clients * per_client
    assert sum(served.values()) == clients * per_client  # the default queue (64) takes everyone
    assert set(served) == {api for api, _ in REQUESTS}
    assert overlapping > 0, "no two LM requests overlapped: the limit was never put to the test"
    assert max(app.holders.peak, peak_before) == 1, f"{app.holders.peak} requests held the LM at once"


def test_concurrency_setting_caps_holders_of_one_model(settings: Settings) -> None:
    """ZOO_CONCURRENCY=N lets exactly N requests hold one model at a time (the cache's slots)."""
    for limit in (1, 2):
        zoo = Zoo(Settings.from_env({"ZOO_CONCURRENCY": str(limit)}).replace(
            offline=True, tiny=True, cache_dir=settings.cache_dir, idle_unload_seconds=0, plugins=(TC,)))
        holders = Holders()

        def hold() -> None:
            with zoo.models.use("tiny:text-classification", "text-classification"), holders.hold():
                time.sleep(0.15)

        threads = [threading.Thread(target=hold) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert holders.total == 5 and holders.peak == limit, (limit, holders)


def test_first_requests_to_many_models_at_once_all_load(settings: Settings, tmp_path: Path) -> None:
    """Six tabs' first requests arrive together on a fresh cache: every model is built and loaded
    (builds and loads take turns), and later loads still work.

    Unserialised, transformers' process-wide patching made some of these fail ("Cannot copy out
    of meta tensor", "cannot import name 'BertConfig'"), and left the process unable to load the LM.
    """
    jobs = [(T2I, dict(prompt="a fox", width=64, height=64, steps=1, seed=1)), (TC, dict(text="I love it")),
            (SS, dict(query="plants", documents="Plants make food.")), (ZS, dict(text="A goal", candidate_labels="x")),
            (TG, dict(prompt="Hi", max_new_tokens=2)), (QA, dict(question="Who?", context="Tom lives in Oslo."))]
    base = settings.replace(tiny=True, cache_dir=tmp_path / "cache", plugins=tuple(task for task, _ in jobs))
    zoo = Zoo(base)
    errors: list[str] = []
    start_line = threading.Barrier(len(jobs))

    def first_request(task: str, values: dict[str, Any]) -> None:
        start_line.wait()
        try:
            assert zoo.run(task, **values)
        except Exception as exc:
            errors.append(f"{task}: {type(exc).__name__}: {exc}"[:300])

    threads = [threading.Thread(target=first_request, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors, errors
    assert zoo.models.cache.stats.loads == len(jobs)
    assert Zoo(base).run(TG, prompt="Hi", max_new_tokens=2)["text"] is not None  # a fresh load still works


@pytest.mark.app
def test_full_queue_refuses_cleanly(model_cache_dir: Path) -> None:
    """With ZOO_MAX_QUEUE=2 and a slow model, a burst of 8 gets served or 'Queue is full', nothing hangs."""
    from gradio_client import Client

    zoo = Zoo(Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                       server_port=free_port(), plugins=(TG,), max_queue=2))
    outcomes: list[str] = []
    with serve_in_process(zoo) as served:
        lm = zoo.models.load(LM, "causal-lm").model
        clients = [Client(served.url, verbose=False) for _ in range(8)]
        start_line = threading.Barrier(len(clients))
        with slow_lm(lm, 0.02):  # about a second per request: the burst outruns the queue
            def user(client: Any) -> None:
                start_line.wait()
                try:
                    text = client.submit(prompt="Hello", max_new_tokens=40, temperature=0,
                                         api_name="/text_generation").result(timeout=TIMEOUT)
                    outcomes.append("ok" if isinstance(text, str) else f"odd result {text!r}")
                except Exception as exc:
                    outcomes.append("queue full" if is_queue_full(exc) else f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=user, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a request hung"
        tally = Counter(outcomes)
        print(f"\nburst of 8 on a queue of 2: {dict(tally)}")
        assert set(tally) <= {"ok", "queue full"}, tally
        assert tally["ok"] >= 1 and tally["queue full"] >= 1, tally
        # The app recovers: once the burst is over, a request is served.
        assert isinstance(Client(served.url, verbose=False).predict(
            prompt="Hi", max_new_tokens=2, api_name="/text_generation"), str)


def test_identical_image_outputs_are_written_once(tmp_path: Path) -> None:
    """Two requests with the same image output share one finished file that is never rewritten.

    Gradio rewrites a PIL output's cache file in place on every request, so a client downloading
    it while another identical request finishes got a truncated body; the UI hands it files.
    """
    from PIL import Image

    from zoo.media import attach_png_metadata, read_png_metadata
    from zoo.ui import image_file

    first = attach_png_metadata(Image.new("RGB", (8, 8), "red"), {"seed": 1})
    path = Path(image_file(first, tmp_path))
    stat = path.stat()
    time.sleep(0.01)
    again = Path(image_file(attach_png_metadata(Image.new("RGB", (8, 8), "red"), {"seed": 1}), tmp_path))
    assert again == path and path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_ino == stat.st_ino
    assert read_png_metadata(path) == {"seed": 1} and path.name == "image.png"
    other = Path(image_file(attach_png_metadata(Image.new("RGB", (8, 8), "red"), {"seed": 2}), tmp_path))
    assert path.parent.parent == tmp_path / "images"
    assert other != path  # the metadata is part of the content


def test_old_outputs_and_uploads_are_swept_and_kept_files_stay(tmp_path: Path) -> None:
    import os

    from zoo.ui import sweep_outputs

    old, new, kept = tmp_path / "zoo/images/aa/image.png", tmp_path / "bb" / "cat.png", tmp_path / "cc" / "picture.png"
    for path in (old, new, kept):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"png")
    now = time.time()
    deleted = sweep_outputs(tmp_path, 60, keep={str(kept)}, now=now + 61)  # all three are 61 s old
    assert sorted(deleted) == sorted([str(old), str(new)])
    assert kept.exists() and not old.exists() and not new.exists()
    assert not (tmp_path / "bb").exists() and not (tmp_path / "zoo/images/aa").exists()  # emptied: removed
    assert sweep_outputs(tmp_path, 60, now=now + 30) == []  # younger than the age: kept
    assert kept.exists()


# --------------------------------------------------------------------------- memory


@pytest.mark.app
def test_memory_settles_over_200_requests(app: LoadApp) -> None:
    """RSS after 200 requests is within 10% of RSS after 100 (no per-request leak)."""
    client = app.client()
    cheap = [r for r in REQUESTS if r[0] not in ("/slot_probe", "/text_to_image")]
    samples: dict[int, int] = {0: rss_bytes()}
    started = time.perf_counter()
    for n in range(1, 201):
        api, values = cheap[n % len(cheap)]
        check_result(api, client.submit(**values, api_name=api).result(timeout=TIMEOUT))
        if n % 50 == 0:
            samples[n] = rss_bytes()
    seconds = time.perf_counter() - started
    growth = (samples[200] - samples[100]) / samples[100]
    print("\nRSS over 200 requests (MB): " + ", ".join(f"{n}: {b / 1e6:.0f}" for n, b in samples.items())
          + f"; growth over the last 100: {growth:+.1%}; {seconds:.1f}s ({200 / seconds:.1f} req/s)")
    assert growth < 0.10, f"RSS grew {growth:.1%} over the last 100 requests"


def test_small_memory_budget_evicts_idle_models(model_cache_dir: Path) -> None:
    """ZOO_MEMORY_BUDGET=100KB: switching between five models evicts idle ones; nothing fails."""
    env = {"ZOO_MEMORY_BUDGET": "100KB", "ZOO_TINY": "1", "ZOO_OFFLINE": "1", "ZOO_IDLE_UNLOAD": "0",
           "ZOO_CACHE_DIR": str(model_cache_dir), "ZOO_PLUGINS": f"{TC},{TOK},{ZS},{QA},{TG}"}
    zoo = Zoo(Settings.from_env(env))
    assert zoo.settings.memory_budget == 100_000
    requests = [(TC, dict(text="I love it")), (TOK, dict(text="Ada lives in London")),
                (ZS, dict(text="A goal", candidate_labels="sports, cooking")),
                (QA, dict(question="Who?", context="Tom lives in Oslo.")), (TG, dict(prompt="Hi", max_new_tokens=2))]
    sizes = {}
    for round_ in range(2):
        for task, values in requests:
            result = zoo.run(task, **values)
            assert result, task
            keys = zoo.models.cache.keys()
            assert len(keys) == 1, f"after {task}: {keys} still loaded over a 100 KB budget"
            sizes[task] = zoo.models.cache.used_bytes
    stats = zoo.models.cache.stats
    assert stats.loads == 10 and stats.evictions == 9 and stats.failures == 0, stats
    assert all(size > 100_000 for size in sizes.values())  # each model alone is over budget
    # A model in use is never evicted, even over budget: it is pinned until released.
    with zoo.models.use("tiny:text-classification", "text-classification") as pinned:
        zoo.run(TOK, text="Ada")
        keys = [str(k) for k in zoo.models.cache.keys()]
        assert len(keys) == 2 and any("tiny/text-classification" in k for k in keys), keys
        assert pinned.model is not None
    zoo.run(ZS, text="A goal", candidate_labels="sports")
    assert len(zoo.models.cache.keys()) == 1
    print(f"\nmemory budget 100 KB: 10 loads, {stats.evictions} evictions, 0 failures; model sizes (KB): "
          + ", ".join(f"{t} {b / 1e3:.0f}" for t, b in sizes.items()))


# --------------------------------------------------------------------------- faults


@pytest.mark.app
def test_model_that_fails_to_load_is_a_clear_error_and_is_retried(app: LoadApp) -> None:
    """Missing folder, corrupt weights, missing weights: clear errors in that tab only; then a retry loads it."""
    from gradio_client.exceptions import AppError

    client = app.client()
    broken, zoo = app.broken, app.zoo
    good = zoo.models.resolve("tiny:token-classification").path  # built on demand

    def token_tab() -> Any:
        return client.predict(text="Ada lives in London", model=str(broken), api_name="/token_classification")

    def other_tab_serves() -> None:
        check_result("/text_classification", client.predict(text="I love it", api_name="/text_classification"))

    failures_before = zoo.models.cache.stats.failures
    # 1. The folder is missing.
    with pytest.raises(AppError, match=r"No model at local path") as err:
        token_tab()
    # The folder's name, not where it lives on the server.
    assert f"…/{broken.name}" in str(err.value) and str(broken) not in str(err.value)
    assert "Traceback" not in str(err.value)
    with pytest.raises(ModelNotFound):
        zoo.run(TOK, text="Ada")
    other_tab_serves()
    # 2. The weights file is corrupt.
    shutil.copytree(good, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
    loading_failed = r"Loading `.*` \(transformers, from .*\) failed: .*Fix: check the files are complete"
    with pytest.raises(AppError, match=loading_failed) as err:
        token_tab()
    assert "Traceback" not in str(err.value)
    with pytest.raises(ModelLoadError):
        zoo.run(TOK, text="Ada")
    other_tab_serves()
    # 3. The weights file is missing.
    (broken / "model.safetensors").unlink()
    with pytest.raises(AppError, match=r"failed: OSError: .*no file named model.safetensors"):
        token_tab()
    other_tab_serves()
    assert zoo.models.cache.stats.failures - failures_before == 3  # the missing folder fails before the cache
    assert not [k for k in zoo.models.cache.keys() if str(broken) in str(k)], "a failed load stayed cached"
    # 4. Repaired: the next request retries the load and is served.
    shutil.copy(good / "model.safetensors", broken / "model.safetensors")
    highlighted, entities, _note = token_tab()
    assert "".join(part["token"] for part in highlighted) == "Ada lives in London"
    assert [k for k in zoo.models.cache.keys() if str(broken) in str(k)], "the repaired model is not cached"


# --------------------------------------------------------------------------- disconnects


def _endpoint_body(client: Any, url: str, api: str, values: dict[str, Any], session_hash: str) -> dict[str, Any]:
    """A /queue/join body for an endpoint, defaults filled in from its API description."""
    import httpx

    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][f"/{api}"]["parameters"]
    data = [values.get(p["parameter_name"], p.get("parameter_default")) for p in params]
    config = httpx.get(f"{url}config", timeout=30).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == api)
    return {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None}


@pytest.mark.app
def test_cancelled_stream_stops_generation(app: LoadApp) -> None:
    """gradio_client cancels a long /text_generation mid-stream: the generate thread ends within seconds."""
    client = app.client()
    with slow_lm(app.lm, 0.02) as calls:  # 1024 tokens would take over 20 s
        job = client.submit(prompt="Tell me a very long story.", max_new_tokens=1024, temperature=0,
                            api_name="/text_generation")
        wait_until(lambda: generate_threads() and calls["forward"] >= 20, timeout=TIMEOUT)
        assert not job.done()
        job.cancel()
        stopped = wait_until(lambda: not generate_threads(), timeout=5)
        after = calls["forward"]
        time.sleep(0.5)
        assert calls["forward"] - after <= 1, "the model kept computing after the stop"
    print(f"\ncancel: generation stopped {stopped:.2f}s after the cancel, after {after} of 1024 forward passes")
    assert after < 500
    # The model's slot is free again: the next request is served at once.
    assert isinstance(app.client().predict(prompt="Hi", max_new_tokens=2, api_name="/text_generation"), str)


@pytest.mark.app
def test_client_disconnect_stops_generation(app: LoadApp) -> None:
    """A client that drops the event stream of a long /chat mid-reply stops the generation."""
    import httpx

    client = app.client()
    session = uuid.uuid4().hex
    body = _endpoint_body(client, app.url, "chat", {"message": "Tell me a very long story.", "history": [],
                                                    "max_new_tokens": 1024, "temperature": 0}, session)
    with slow_lm(app.lm, 0.02) as calls:
        joined = httpx.post(f"{app.url}gradio_api/queue/join", json=body, timeout=30)
        assert joined.status_code == 200, joined.text
        pieces = 0
        with httpx.stream("GET", f"{app.url}gradio_api/queue/data", params={"session_hash": session},
                          timeout=TIMEOUT) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_generating":
                    pieces += 1
                    if pieces >= 10:
                        assert generate_threads(), "generation ended before the client left"
                        break  # leave mid-reply: the connection closes here
        stopped = wait_until(lambda: not generate_threads(), timeout=15)
        after = calls["forward"]
        time.sleep(0.5)
        assert calls["forward"] - after <= 1, "the model kept computing after the client left"
    print(f"\ndisconnect: generation stopped {stopped:.2f}s after the client left, after {after} forward passes")
    assert after < 500
    assert isinstance(app.client().predict(message="Hi", history=[], max_new_tokens=2, api_name="/chat")[0], str)
