"""The loaders (zoo/models/loaders.py) through the manager: pickle-only folders refused, GGUF dequantised once
and cached on disk.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from zoo.errors import ModelNotAllowed
from zoo.models import ModelManager


def test_pickle_only_folders_are_refused(settings, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    manager = ModelManager(settings)
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        manager.load(str(folder), "causal-lm")


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
