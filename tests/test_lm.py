"""zoo/models/lm.py's llama.cpp helpers: the zoo's own token choice (transformers' meaning of the sampling
options) and the thread tuner.
"""

from __future__ import annotations

import pytest


def test_sampling_means_what_it_means_on_transformers() -> None:
    """The zoo's own token choice for llama.cpp: transformers' repetition penalty, top-k, top-p, seeds."""
    import numpy as np
    import torch
    from transformers import RepetitionPenaltyLogitsProcessor

    from zoo.models.lm import GenerationParams, sample_next

    rng = np.random.default_rng(0)
    logits = rng.normal(size=1000).astype(np.float32) * 3
    seen = [int(i) for i in np.argsort(-logits)[:5]] + [7, 7, 9]  # the five best were in the prompt
    greedy = GenerationParams(temperature=0, repetition_penalty=1.3)
    reference = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([seen]), torch.tensor(logits)[None])[0]
    assert sample_next(logits, seen, greedy, rng) == int(torch.argmax(reference))
    assert sample_next(logits, [], greedy, rng) == int(np.argmax(logits))
    top1 = GenerationParams(temperature=1.0, top_k=1, repetition_penalty=1.0)
    assert {sample_next(logits, [], top1, np.random.default_rng(s)) for s in range(20)} == {int(np.argmax(logits))}
    top3 = GenerationParams(temperature=5.0, top_k=3, top_p=1.0, repetition_penalty=1.0)
    drawn = {sample_next(logits, [], top3, np.random.default_rng(s)) for s in range(200)}
    assert drawn == {int(i) for i in np.argsort(-logits)[:3]}
    nucleus = GenerationParams(temperature=1.0, top_k=0, top_p=1e-6, repetition_penalty=1.0)
    assert sample_next(logits, [], nucleus, np.random.default_rng(1)) == int(np.argmax(logits))
    warm = GenerationParams(temperature=1.0, top_k=50, repetition_penalty=1.0)
    assert ([sample_next(logits, [], warm, np.random.default_rng(42)) for _ in range(5)]
            == [sample_next(logits, [], warm, np.random.default_rng(42)) for _ in range(5)])


class _FakeLlm:
    ctx = None


def test_thread_tuner_moves_to_fewer_threads_under_load_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """All cores while they are fast; one thread while other work makes two collapse; all again after."""
    import llama_cpp

    from zoo.models.lm import ThreadTuner

    applied: list[int] = []
    monkeypatch.setattr(llama_cpp, "llama_set_n_threads", lambda ctx, n, nb: applied.append(n))
    others = [0]
    tuner = ThreadTuner.for_cores(2)
    tuner.busy = lambda: others[0]
    speed = {1: 0.020, 2: 0.012}  # seconds per token on a quiet machine

    def decode(n_tokens: int, new_request: bool = False) -> list[int]:
        if new_request:
            tuner.start_request()
        used = []
        for _ in range(n_tokens):
            tuner.before_token(_FakeLlm())
            used.append(tuner._applied)
            tuner.after_token(speed[tuner._applied])
        return used

    assert decode(200, new_request=True) == [2] * 200  # quiet: no probe costs anything
    speed[2] = 0.080  # another process takes a core: two threads collapse
    loaded = decode(300)
    assert loaded[-50:].count(1) >= 45 and loaded.count(2) < 20, loaded  # probes are short and back off
    speed[2] = 0.012  # the other work ends
    quiet = decode(800)
    assert quiet[-50:] == [2] * 50
    assert decode(50, new_request=True) == [2] * 50  # a new request keeps what the tuner learnt
    assert set(applied) == {1, 2}
    fresh = ThreadTuner.for_cores(2)
    fresh.busy = lambda: 1  # the very first request, while another process holds a core
    fresh.start_request()
    assert fresh.current == 1
