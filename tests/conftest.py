"""Shared fixtures: offline settings, a per-session model cache, zoos built for each test.

ZOO_ISOLATION=inline runs the tests' zoos with models in the test process; the default,
process, runs them in worker processes as the server does.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
# Only model-zoo's own plugins, whatever else is installed here (servers started as subprocesses
# inherit it); a test that installs a third-party plugin asks for ZOO_PLUGIN_SOURCES=all itself.
os.environ["ZOO_PLUGIN_SOURCES"] = "builtin"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from zoo.runner import Zoo  # noqa: E402
from zoo.settings import SETTINGS, Settings  # noqa: E402

ISOLATION = next(s for s in SETTINGS if s.attr == "isolation").parse("ZOO_ISOLATION",  # type: ignore[misc]
                                                                      os.environ.get("ZOO_ISOLATION", "process"))


@pytest.fixture(autouse=True)
def _end_workers_of_finished_tests() -> None:
    """Workers end with their zoo; collect the previous test's zoos so their workers do not pile up."""
    if any(p.name.startswith("zoo-worker") for p in multiprocessing.active_children()):
        gc.collect()


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for converted GGUF weights and tiny models, shared by the whole session."""
    env = os.environ.get("ZOO_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture
def settings(model_cache_dir: Path) -> Settings:
    """Offline settings with the session cache; tests replace() what they need."""
    return Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=8 * 10**9,
                    isolation=ISOLATION, plugin_sources="builtin")


@pytest.fixture
def tiny_zoo(settings: Settings) -> Zoo:
    """Every built-in plugin, each running its tiny random-weight model."""
    return Zoo(settings.replace(tiny=True))


@pytest.fixture
def tiny_inline_zoo(settings: Settings) -> Zoo:
    """tiny_zoo with the models in this process: for tests that spy on model code with monkeypatch,
    which cannot reach a worker process."""
    return Zoo(settings.replace(tiny=True, isolation="inline"))


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    from speech import write_wav

    return write_wav(tmp_path / "tone.wav")


@pytest.fixture
def whisper_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random openai-whisper checkpoint (tiny.en's vocabulary, 32-wide), saved as openai-whisper does."""
    import dataclasses

    import torch
    from whisper.model import ModelDimensions, Whisper

    path = tmp_path_factory.mktemp("whisper") / "random.pt"
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                           n_vocab=51864, n_text_ctx=448, n_text_state=32, n_text_head=4, n_text_layer=2)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def real_zoo(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Zoo:
    """Every built-in plugin on its offline default (real packaged weights where they exist), kept for the session."""
    return Zoo(Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=16 * 10**9,
                        isolation=ISOLATION, plugin_sources="builtin"))
