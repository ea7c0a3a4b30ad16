"""zoo/generation.py: the shared sampling options, GenerationParams.from_values, the LanguageModel protocol."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from zoo.generation import SAMPLING_NAMES, GenerationParams, LanguageModel, sampling_options
from zoo.plugin import Limits, Number, Seed


def test_from_values_reads_the_sampling_options_and_keeps_defaults_for_the_rest() -> None:
    values = {"prompt": "hi", "max_new_tokens": 12, "temperature": 0.0, "top_p": 0.5, "top_k": 3,
              "repetition_penalty": 1.3, "seed": 7, "model": "tiny:causal-lm"}
    assert GenerationParams.from_values(values) == GenerationParams(12, 0.0, 0.5, 3, 1.3, 7)
    # Question answering declares no top_p/top_k and switches the repetition penalty off.
    qa = GenerationParams.from_values({"max_new_tokens": 48, "temperature": 0.0, "seed": 5}, repetition_penalty=1.0)
    assert qa == GenerationParams(max_new_tokens=48, temperature=0.0, top_p=0.95, top_k=50, repetition_penalty=1.0,
                                  seed=5)


def test_from_values_takes_minus_one_or_none_as_a_random_seed_and_refuses_unknown_overrides() -> None:
    assert GenerationParams.from_values({"seed": -1}).seed is None
    assert GenerationParams.from_values({"seed": None}).seed is None
    assert GenerationParams.from_values({}).seed is None
    with pytest.raises(TypeError, match="no option 'top_q'"):
        GenerationParams.from_values({}, top_q=0.5)


def test_sampling_options_are_the_six_fields_with_overridable_defaults() -> None:
    fields = sampling_options(max_new_tokens=128)
    assert tuple(f.name for f in fields) == SAMPLING_NAMES
    by_name = {f.name: f for f in fields}
    assert by_name["max_new_tokens"].default == 128 and by_name["max_new_tokens"].limit == "max_new_tokens"
    assert by_name["max_new_tokens"].bounds(Limits(max_new_tokens=64)) == (1, 64)  # the operator's cap wins
    assert (by_name["temperature"].default, by_name["top_p"].default, by_name["top_k"].default,
            by_name["repetition_penalty"].default) == (0.7, 0.95, 50, 1.1)
    assert isinstance(by_name["seed"], Seed) and by_name["seed"].default == -1
    # The defaults are what a request gets when it sends nothing.
    assert GenerationParams.from_values({f.name: f.check(None, Limits()) for f in fields}) == GenerationParams(
        max_new_tokens=128, seed=None)


def test_sampling_options_can_keep_a_subset_with_its_own_help_and_cap() -> None:
    fields = sampling_options(max_new_tokens=48, temperature=0.0, max_new_tokens_cap=1024,
                              info={"max_new_tokens": "Generative: answer length cap"},
                              only=("seed", "max_new_tokens", "temperature"))
    assert [f.name for f in fields] == ["max_new_tokens", "temperature", "seed"]  # declared order, whatever asked
    assert fields[0].info == "Generative: answer length cap" and fields[0].maximum == 1024
    assert isinstance(fields[1], Number) and fields[1].default == 0.0
    with pytest.raises(ValueError, match="no option 'beams'.*max_new_tokens"):
        sampling_options(only=("beams",))


def test_the_three_language_models_satisfy_the_protocol_and_other_engines_do_not() -> None:
    from zoo.models.lm import LlamaCppLM, TransformersLM
    from zoo.models.remote import RemoteOptions, connect

    transformers_lm = TransformersLM(model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=128)),
                                     tokenizer=SimpleNamespace(chat_template=None), name="fake")
    llama_lm = LlamaCppLM(llm=SimpleNamespace(metadata={}, n_ctx=lambda: 512), name="fake")
    remote_lm = connect("http://127.0.0.1:9", "causal-lm", RemoteOptions(context=2048))  # sends nothing yet
    client = connect("http://127.0.0.1:9", "text-classification", RemoteOptions())
    try:
        for lm, window in ((transformers_lm, 128), (llama_lm, 512), (remote_lm, 2048)):
            assert isinstance(lm, LanguageModel), type(lm).__name__
            assert lm.context_length == window
        assert not isinstance(client, LanguageModel)
        assert not isinstance(SimpleNamespace(stream=lambda *a: iter(())), LanguageModel)
    finally:
        remote_lm.close()
        client.close()


def test_old_imports_keep_working() -> None:
    from zoo.models import lm

    assert lm.GenerationParams is GenerationParams and lm.LanguageModel is LanguageModel
