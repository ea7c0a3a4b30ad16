"""Shared fixtures: offline settings, a per-session model cache, zoos built for each test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from zoo.runner import Zoo  # noqa: E402
from zoo.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for converted GGUF weights and tiny models, shared by the whole session."""
    env = os.environ.get("ZOO_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture
def settings(model_cache_dir: Path) -> Settings:
    """Offline settings with the session cache; tests replace() what they need."""
    return Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=8 * 10**9)


@pytest.fixture
def tiny_zoo(settings: Settings) -> Zoo:
    """Every built-in plugin, each running its tiny random-weight model."""
    return Zoo(settings.replace(tiny=True))


@pytest.fixture(scope="session")
def real_zoo(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Zoo:
    """Every built-in plugin on its offline default (real packaged weights where they exist), kept for the session."""
    return Zoo(Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=16 * 10**9))
