"""The shared loader: references, the resolution chain, the cache (LRU, refcounts, races, idle)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from zoo.errors import InvalidInput, ModelLoadError, ModelNotAllowed, ModelNotFound
from zoo.models import ModelManager, parse_ref
from zoo.models.cache import ModelCache
from zoo.models.sources import Resolver, detect_family, packaged_path
from zoo.runner import Zoo


# ---------------------------------------------------------------- references
@pytest.mark.parametrize("raw, scheme, name, rev, file", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "hub", "HuggingFaceTB/SmolLM2-135M-Instruct", None, None),
    ("openai/whisper-tiny@v1.0", "hub", "openai/whisper-tiny", "v1.0", None),
    ("owner/repo/sub/model.Q4.gguf@main", "hub", "owner/repo", "main", "sub/model.Q4.gguf"),
    ("gpt2", "hub", "gpt2", None, None),
    ("packaged:smollm2-135m-instruct", "packaged", "smollm2-135m-instruct", None, None),
    ("tiny:causal-lm", "tiny", "causal-lm", None, None),
    ("/models/foo", "local", "/models/foo", None, None),
])
def test_parse_ref(raw: str, scheme: str, name: str, rev: str | None, file: str | None) -> None:
    ref = parse_ref(raw)
    assert (ref.scheme, ref.name, ref.revision, ref.filename) == (scheme, name, rev, file)


@pytest.mark.parametrize("raw", ["", "   ", "a/b/../../etc", "owner//name", "tiny:../x", "bad id with spaces"])
def test_parse_ref_rejects_bad_ids(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_ref(raw)
    assert "model" in str(err.value)


def test_users_cannot_pick_local_paths_or_unlisted_models(settings) -> None:
    zoo = Zoo(settings)
    plugin = zoo.registry.get("text-generation")
    with pytest.raises(ModelNotAllowed) as err:
        zoo.check_model(plugin, "../../etc")
    assert "ZOO_MODEL_TEXT_GENERATION" in str(err.value)
    locked = Zoo(settings.replace(allow_custom_models=False))
    with pytest.raises(ModelNotAllowed) as err:
        locked.check_model(plugin, "someone/some-model")
    assert "ZOO_ALLOW_CUSTOM_MODELS" in str(err.value)
    assert locked.check_model(plugin, "tiny:causal-lm") == "tiny:causal-lm"  # listed ones stay allowed
    listed = Zoo(settings.replace(custom_model_allowlist=("HuggingFaceTB/*",)))
    assert listed.check_model(plugin, "HuggingFaceTB/other") == "HuggingFaceTB/other"
    with pytest.raises(ModelNotAllowed):
        listed.check_model(plugin, "evil/model")


# ---------------------------------------------------------------- resolution chain
def _fake_hf_cache(root: Path, repo: str) -> Path:
    """The on-disk layout huggingface_hub uses, with one snapshot holding a config."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("a" * 40)
    return snap


class RecordingResolver(Resolver):
    """Records which sources the chain tried, in order."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.tried: list[str] = []

    def _from_hf_cache(self, ref):
        self.tried.append("hf-cache")
        return super()._from_hf_cache(ref)

    def _download(self, ref):
        self.tried.append("hub")
        raise ConnectionError("no route to the Hub")


def test_resolution_order(tmp_path: Path) -> None:
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct"
    online = RecordingResolver(offline=lambda: False, allow_pickle=False, tiny_dir=tmp_path / "tiny",
                               hf_cache_dir=tmp_path / "hf")
    resolved = online.resolve(parse_ref(repo))
    assert online.tried == ["hf-cache", "hub"] and resolved.source == "packaged"  # then the packaged mirror
    assert resolved.path == packaged_path("smollm2-135m-instruct")

    snap = _fake_hf_cache(tmp_path / "hf", repo)
    online.tried.clear()
    resolved = online.resolve(parse_ref(repo))
    assert online.tried == ["hf-cache"] and resolved.source == "hf-cache" and resolved.path == snap

    local = online.resolve(parse_ref(str(snap)))
    assert local.source == "local" and local.path == snap


def test_offline_unknown_model_says_what_to_do(tmp_path: Path) -> None:
    offline = RecordingResolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path, hf_cache_dir=tmp_path)
    with pytest.raises(ModelNotFound) as err:
        offline.resolve(parse_ref("someone/not-cached"))
    assert offline.tried == ["hf-cache"]  # offline: the Hub is never asked
    message = str(err.value)
    assert "not available here (offline)" in message and "HF_HUB_OFFLINE" in message and "tiny:" in message


def test_missing_local_path_and_unknown_packaged(tmp_path: Path) -> None:
    r = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path)
    with pytest.raises(ModelNotFound, match="No model at local path"):
        r.resolve(parse_ref(str(tmp_path / "nope")))
    with pytest.raises(ModelNotFound, match="packaged:smollm2-135m-instruct"):
        r.resolve(parse_ref("packaged:unknown"))


def test_family_detection(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model_index.json").write_text("{}")
    assert detect_family(tmp_path / "d") == "diffusers"
    assert detect_family(packaged_path("whisper-tiny.en")) == "faster-whisper"
    assert detect_family(packaged_path("smollm2-135m-instruct")) == "gguf"
    assert detect_family(packaged_path("all-minilm-l6-v2")) == "transformers"


def test_pickle_only_folders_are_refused(settings, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    manager = ModelManager(settings)
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        manager.load(str(folder), "causal-lm")


# ---------------------------------------------------------------- the cache
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


def test_same_weights_same_object_for_every_plugin(settings) -> None:
    manager = ModelManager(settings)
    first = manager.load("tiny:causal-lm", "causal-lm")
    second = manager.load("tiny:causal-lm", "causal-lm")
    assert first is second and manager.cache.stats.loads == 1
    assert first.is_tiny and first.family == "transformers"


def test_small_budget_switching_models_evicts_idle(settings) -> None:
    manager = ModelManager(settings.replace(memory_budget=1))  # any two models exceed it
    manager.load("tiny:causal-lm", "causal-lm")
    manager.load("tiny:question-answering", "question-answering")
    assert len(manager.cache.keys()) == 1 and manager.cache.stats.evictions == 1


def test_corrupt_model_gives_clear_error_then_recovers(settings, tmp_path: Path) -> None:
    from zoo.tiny import build

    good = build("causal-lm", tmp_path / "m")
    weights = next(good.glob("*.safetensors"))
    original = weights.read_bytes()
    weights.write_bytes(original[:100])  # truncated
    manager = ModelManager(settings)
    with pytest.raises(ModelLoadError) as err:
        manager.load(str(good), "causal-lm")
    assert str(good) in str(err.value) and "Fix:" in str(err.value)
    weights.write_bytes(original)
    assert manager.load(str(good), "causal-lm").model is not None  # the next request retries


@pytest.mark.real
def test_gguf_dequantisation_is_cached_on_disk(tmp_path: Path, settings) -> None:
    fresh = settings.replace(cache_dir=tmp_path, gguf_backend="transformers")
    t0 = time.perf_counter()
    first = ModelManager(fresh).load("packaged:smollm2-135m-instruct", "causal-lm")
    first_s = time.perf_counter() - t0
    assert list((tmp_path / "gguf").glob("SmolLM2-135M-Instruct.Q4_1-*/model.safetensors"))
    t0 = time.perf_counter()
    second = ModelManager(fresh).load("packaged:smollm2-135m-instruct", "causal-lm")
    second_s = time.perf_counter() - t0
    print(f"\nSmolLM2 GGUF load: first {first_s:.2f}s (dequantise + cache), second {second_s:.2f}s "
          f"(ratio {second_s / first_s:.3f})")
    assert second_s < 0.5 * first_s
    a = dict(first.model.model.named_parameters())["model.embed_tokens.weight"]
    b = dict(second.model.model.named_parameters())["model.embed_tokens.weight"]
    assert bool((a == b).all())  # the cache holds the same weights
