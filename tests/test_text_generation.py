"""Text generation: streaming, determinism, validation (tiny), and the real SmolLM2 answer."""

from __future__ import annotations

import pytest

from zoo.errors import InvalidInput
from zoo.runner import Zoo
from zoo.settings import Settings


def test_streams_growing_text(tiny_zoo: Zoo) -> None:
    chunks = [out["text"] for out in tiny_zoo.stream(
        "text-generation", {"prompt": "Once upon a time", "max_new_tokens": 12, "seed": 3, "temperature": 1.0})]
    assert len(chunks) >= 2, chunks
    for before, after in zip(chunks, chunks[1:]):
        assert after.startswith(before) and len(after) > len(before)
    assert len(chunks[-1]) > 0


def test_seeded_sampling_is_deterministic(tiny_zoo: Zoo) -> None:
    def run(seed: int) -> str:
        return tiny_zoo.run("text-generation", prompt="Hello there", max_new_tokens=16, temperature=1.0,
                            seed=seed)["text"]

    assert run(7) == run(7)
    assert len({run(s) for s in (1, 2, 3)}) > 1


def test_options_are_checked_against_limits(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run("text-generation", prompt="hi", max_new_tokens=100_000)
    assert "max_new_tokens" in str(err.value) and "between 1 and 1024" in str(err.value)
    with pytest.raises(InvalidInput, match="temperature"):
        tiny_zoo.run("text-generation", prompt="hi", temperature=-1)
    with pytest.raises(InvalidInput, match="must not be empty"):
        tiny_zoo.run("text-generation", prompt=" \n\t ")
    with pytest.raises(InvalidInput, match="not a parameter"):
        tiny_zoo.run("text-generation", prompt="hi", max_tokens=5)


def test_stop_ends_generation_early(tiny_zoo: Zoo) -> None:
    from zoo.plugin import RunContext

    ctx = RunContext()
    seen = []
    for out in tiny_zoo.stream("text-generation", {"prompt": "a", "max_new_tokens": 400, "temperature": 1.0,
                                                   "seed": 1}, ctx):
        seen.append(out["text"])
        if len(seen) == 3:
            ctx.cancel_event.set()
    assert 3 <= len(seen) < 20


def test_closing_a_transformers_stream_returns_before_generation_ends(tiny_zoo: Zoo, monkeypatch) -> None:
    # Gradio closes a dropped client's generator on its event loop: close() must not wait for a token.
    import threading
    import time

    from transformers import TextIteratorStreamer

    from zoo.models.lm import GenerationParams

    # The tiny model's random tokens seldom make a space, and the streamer passes on whole words only.
    monkeypatch.setattr(TextIteratorStreamer, "_is_chinese_char", lambda self, cp: True)

    lm = tiny_zoo.models.load("tiny:causal-lm", "causal-lm").model
    hold, inside, gate = threading.Event(), threading.Event(), threading.Event()
    forward = lm.model.forward
    seen: list[int] = []

    def slow_forward(*args, **kwargs):  # once `hold` is set, the next forward pass hangs until the gate opens
        if hold.is_set():
            seen.append(1)
            inside.set()
            gate.wait(30)
        return forward(*args, **kwargs)

    lm.model.forward = slow_forward
    try:
        pieces = lm.stream("Once upon a time", GenerationParams(max_new_tokens=50, temperature=0), templated=False)
        next(pieces)
        hold.set()
        assert inside.wait(10)  # generate() is now inside the hanging forward pass
        started = time.perf_counter()
        pieces.close()
        assert time.perf_counter() - started < 0.1
        assert lm._generate_lock.locked()  # the worker still holds the model
        gate.set()
        assert lm._generate_lock.acquire(timeout=10)  # ...and lets go at its next token
        lm._generate_lock.release()
        assert len(seen) <= 2  # it stopped at the next token
        # The next request runs as usual.
        assert "".join(lm.stream("Hello", GenerationParams(max_new_tokens=4, temperature=0), templated=False))
    finally:
        gate.set()
        del lm.model.forward


def test_tiny_model_is_labelled(tiny_zoo: Zoo) -> None:
    from zoo.ui import model_note

    plugin = tiny_zoo.registry.get("text-generation")
    assert tiny_zoo.default_model(plugin) == "tiny:causal-lm"
    assert "Tiny random-weight model" in model_note(tiny_zoo, plugin, "tiny:causal-lm")


@pytest.mark.real
def test_smollm2_knows_the_capital_of_france(real_zoo: Zoo) -> None:
    plugin = real_zoo.registry.get("text-generation")
    assert real_zoo.default_model(plugin) == "HuggingFaceTB/SmolLM2-135M-Instruct"  # resolves to the package
    from zoo.models.lm import GenerationStats

    out = real_zoo.run("text-generation", prompt="What is the capital of France?", temperature=0,
                       max_new_tokens=24)
    assert "Paris" in out["text"], out
    with real_zoo.models.use(real_zoo.default_model(plugin), "causal-lm") as loaded:
        assert loaded.resolved.source == "packaged" and loaded.family == "gguf"
        stats = GenerationStats()
        from zoo.models.lm import GenerationParams

        loaded.model.generate(loaded.model.chat_prompt([{"role": "user", "content": "Count from 1 to 30."}]),
                              GenerationParams(max_new_tokens=48, temperature=0), stats=stats)
    print(f"\nSmolLM2-135M decode: {stats.new_tokens} tokens at {stats.tokens_per_second:.1f} tokens/s, "
          f"first token {stats.first_token_seconds:.2f}s")
    assert stats.new_tokens > 10


def test_text_generation_prompt_longer_than_the_context_is_refused_with_the_count(settings: Settings) -> None:
    """'Requested tokens (10020) exceed context window' no more: the count, the window and the fix."""
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",), max_text_chars=200_000))
    with zoo.models.use("tiny:causal-lm", "causal-lm") as loaded:
        window = loaded.model.context_length
        per_word = loaded.model.count_tokens("word " * 100) / 100
    long = "word " * int(window / per_word + 100)
    with pytest.raises(InvalidInput) as err:
        zoo.run("text-generation", prompt=long, max_new_tokens=8)
    assert err.value.name == "prompt" and f"{window}-token context window" in str(err.value)
    assert "prompt and system prompt take" in str(err.value) and "tokens)" in str(err.value) and "shorten" in err.value.fix
    with pytest.raises(InvalidInput) as err:
        zoo.run("text-generation", prompt="hi", system_prompt=long, max_new_tokens=8)
    assert err.value.name == "prompt" and "system prompt" in str(err.value)
    with pytest.raises(InvalidInput) as err:  # the prompt fits, the completion would not
        zoo.run("text-generation", prompt="word " * int((window - 200) / per_word), chat_template=False,
                max_new_tokens=1024)
    assert err.value.name == "max_new_tokens" and "at most" in str(err.value) and "or less" in err.value.fix
    out = zoo.run("text-generation", prompt="hi", max_new_tokens=4, seed=1)
    assert isinstance(out["text"], str)


@pytest.mark.real
def test_the_packaged_model_refuses_an_overlong_prompt_with_the_count(real_zoo: Zoo) -> None:
    """The issue's reproduction on the default path: 20000 characters of prompt, a 4096-token window."""
    prompt = "7 " * 9900  # 19800 characters, ~9900 tokens: over llama.cpp's 4096 and transformers' 8192
    with pytest.raises(InvalidInput) as err:
        real_zoo.run("text-generation", prompt=prompt, max_new_tokens=16)
    message = str(err.value)
    assert err.value.name == "prompt" and "-token context window" in message and "take" in message
    assert "Requested tokens" not in message and "shorten the prompt" in err.value.fix
