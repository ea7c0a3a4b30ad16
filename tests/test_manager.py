"""The model manager (zoo/models/manager.py): one object per weights for every plugin, eviction under a small
budget, and a corrupt model's clear error, then recovery.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.errors import ModelLoadError
from zoo.models import ModelManager


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
