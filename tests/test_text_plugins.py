"""Text plugins on tiny models: translation, summarization, text/token/zero-shot classification.

Tiny models have random weights, so these tests check what must hold whatever the
weights: output types and shapes, label sets that match the model's config, scores
that are probabilities, highlighted segments that give back the input exactly,
lengths within the asked bounds, and clear errors for bad input. The last tests
check that each plugin file stands alone: deny it and only its tab and endpoint go.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from zoo.errors import InvalidInput
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

TASKS = ("translation", "summarization", "text-classification", "token-classification", "zero-shot-classification")
ENDPOINTS = {task: "/" + task.replace("-", "_") for task in TASKS}
# A quick valid request per plugin, for checking that the others still run.
QUICK: dict[str, dict[str, Any]] = {
    "translation": {"text": "Hello world.", "max_new_tokens": 4, "num_beams": 1},
    "summarization": {"text": "The council voted to turn the old railway into a park.", "min_length": 1,
                      "max_length": 4, "num_beams": 1},
    "text-classification": {"text": "What a lovely day."},
    "token-classification": {"text": "Clara lives in Berkeley."},
    "zero-shot-classification": {"text": "The striker scored twice.", "candidate_labels": "sports, cooking"},
}
TINY_NOTE = "Tiny random-weight model"


def config_of(zoo: Zoo, ref: str, kind: str) -> Any:
    """The transformers config of a model as the shared loader loads it."""
    with zoo.models.use(ref, kind) as loaded:
        return loaded.model.config


def words(text: str) -> int:
    """Whitespace-separated words: a byte-level BPE token starts at most one, so words <= tokens."""
    return len(text.split())


# ------------------------------------------------------------------ translation


def test_translation_keeps_lines_and_respects_max_tokens(tiny_zoo: Zoo) -> None:
    plugin = tiny_zoo.registry.get("translation")
    assert tiny_zoo.default_model(plugin) == "tiny:text2text-generation"
    text = "The house is small.\n\n    Where is the station?\nGood night"
    out = tiny_zoo.run("translation", text=text, language_pair="English → German", max_new_tokens=4, num_beams=1)
    assert set(out) == {"translation", "note"}
    lines = out["translation"].split("\n")
    assert len(lines) == 4 and lines[1] == ""  # one output line per input line, blank lines kept
    assert lines[2].startswith("    ") and not lines[2].startswith("     ")  # indentation kept
    for line in (lines[0], lines[2], lines[3]):
        assert line.strip() and words(line) <= 4, lines
    assert TINY_NOTE in out["note"] and "3 line(s)" in out["note"]

    longer = tiny_zoo.run("translation", text="The house is small.", max_new_tokens=24, num_beams=1)["translation"]
    assert words(longer) <= 24 and len(longer) > len(lines[0])


def test_translation_streams_batches_of_lines(tiny_zoo: Zoo) -> None:
    from plugins.translation import LINES_PER_BATCH

    text = "\n".join(f"Line number {i} is here." for i in range(LINES_PER_BATCH + 2))
    outs = list(tiny_zoo.stream("translation", {"text": text, "max_new_tokens": 3, "num_beams": 1}))
    assert len(outs) == 3  # two batches, then the final result with its note
    assert len(outs[0]["translation"].split("\n")) == LINES_PER_BATCH and outs[0]["note"] == ""
    assert len(outs[-1]["translation"].split("\n")) == LINES_PER_BATCH + 2 and outs[-1]["note"]


def test_translation_pair_picks_the_opus_mt_model() -> None:
    from plugins.translation import OPUS_REPOS, PAIRS, Translation

    plugin = Translation()
    assert plugin.models.online in OPUS_REPOS and len(OPUS_REPOS) == len(PAIRS)
    pick = plugin.model_for({"model": "Helsinki-NLP/opus-mt-en-fr", "language_pair": "German → English"}, "x")
    assert (pick[0], str(pick[1])) == ("Helsinki-NLP/opus-mt-de-en", "text2text-generation")
    assert plugin.model_for({"model": "", "language_pair": "English → Chinese"}, "Helsinki-NLP/opus-mt-en-fr")[0] \
        == "Helsinki-NLP/opus-mt-en-zh"
    # Models outside the opus-mt pairs run as chosen.
    for ref in ("tiny:text2text-generation", "google-t5/t5-small", "facebook/nllb-200-distilled-600M"):
        assert plugin.model_for({"model": ref, "language_pair": "German → English"}, "x")[0] == ref


def test_translation_tells_multilingual_models_the_pair() -> None:
    from plugins.translation import _scheme

    nllb_tok = SimpleNamespace(get_vocab=lambda: {"eng_Latn": 7, "fra_Latn": 9, "deu_Latn": 11})
    plain = SimpleNamespace(config=SimpleNamespace(model_type="m2m_100"))
    assert _scheme(plain, nllb_tok, "en", "fr", "English → French")[:3] == ("", 7, 9)
    m2m_tok = SimpleNamespace(get_vocab=lambda: {"__de__": 3, "__en__": 4})
    assert _scheme(plain, m2m_tok, "de", "en", "German → English")[:3] == ("", 3, 4)

    t5 = SimpleNamespace(config=SimpleNamespace(model_type="t5", task_specific_params={
        "summarization": {"prefix": "summarize: "},
        "translation_en_to_fr": {"prefix": "translate English to French: "},
        "translation_en_to_de": {"prefix": "translate English to German: "}}))
    no_codes = SimpleNamespace(get_vocab=lambda: {"hello": 1})
    assert _scheme(t5, no_codes, "en", "fr", "English → French")[0] == "translate English to French: "
    with pytest.raises(InvalidInput) as err:
        _scheme(t5, no_codes, "fr", "en", "French → English")
    assert "language_pair" in str(err.value) and "English → French, English → German" in str(err.value)


# ------------------------------------------------------------------ summarization


def test_summarization_within_length_bounds(tiny_zoo: Zoo) -> None:
    text = "The city council voted on Tuesday to turn the old railway line into a park. " * 4
    out = tiny_zoo.run("summarization", text=text, min_length=2, max_length=6, num_beams=2)
    assert set(out) == {"summary", "note"}
    assert isinstance(out["summary"], str) and out["summary"].strip()
    assert words(out["summary"]) <= 6
    assert TINY_NOTE in out["note"] and "cut" not in out["note"]

    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run("summarization", text=text, min_length=50, max_length=10)
    assert "min_length" in str(err.value) and "max_length (10)" in str(err.value)
    with pytest.raises(InvalidInput, match="max_length"):
        tiny_zoo.run("summarization", text=text, max_length=0)


def test_summarization_cuts_long_input_and_says_so(tiny_zoo: Zoo) -> None:
    text = "The council met again and talked about trees, parking and the budget for the park. " * 80
    out = tiny_zoo.run("summarization", text=text, min_length=1, max_length=3, num_beams=1)
    assert out["summary"].strip() and words(out["summary"]) <= 3
    assert "was cut to its first 1024" in out["note"]


# ------------------------------------------------------------------ text classification


def test_text_classification_scores_every_label(tiny_zoo: Zoo) -> None:
    labels = set(config_of(tiny_zoo, "tiny:text-classification", "text-classification").id2label.values())
    assert labels == {"NEGATIVE", "POSITIVE"}
    out = tiny_zoo.run("text-classification", text="I loved this film, the ending made me smile.")
    scores = out["labels"]
    assert set(scores) == labels
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-5)
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert TINY_NOTE in out["note"] and "softmax" in out["note"]
    # Deterministic, and top_k keeps the best label only.
    again = tiny_zoo.run("text-classification", text="I loved this film, the ending made me smile.")
    assert again["labels"] == scores
    top = tiny_zoo.run("text-classification", text="I loved this film, the ending made me smile.", top_k=1)
    assert top["labels"] == {next(iter(scores)): scores[next(iter(scores))]}


def test_text_classification_sigmoid_and_bad_input(tiny_zoo: Zoo) -> None:
    out = tiny_zoo.run("text-classification", text="Fine.", function="sigmoid")
    assert set(out["labels"]) == {"NEGATIVE", "POSITIVE"} and "sigmoid" in out["note"]
    assert all(0.0 < s < 1.0 for s in out["labels"].values())
    with pytest.raises(InvalidInput, match="must not be empty"):
        tiny_zoo.run("text-classification", text="   ")
    with pytest.raises(InvalidInput, match="function"):
        tiny_zoo.run("text-classification", text="Fine.", function="tanh")
    long = tiny_zoo.run("text-classification", text="good " * 600)
    assert "cut to its first 512" in long["note"] and math.isclose(sum(long["labels"].values()), 1.0, abs_tol=1e-5)


# ------------------------------------------------------------------ token classification


def check_entities(text: str, out: dict[str, Any], kinds: set[str]) -> None:
    """Segments give back the text exactly; table rows match the labelled segments and the text."""
    segments = out["highlighted"]
    assert "".join(seg for seg, _ in segments) == text
    assert all(seg for seg, _ in segments)  # no empty pieces
    labelled = [(seg, label) for seg, label in segments if label is not None]
    assert {label for _, label in labelled} <= kinds
    rows = out["entities"]
    assert [(r[0], r[1]) for r in rows] == labelled
    previous_end = 0
    for entity, label, score, start, end in rows:
        assert text[start:end] == entity and entity == entity.strip()
        assert start >= previous_end and 0.0 <= score <= 1.0
        previous_end = end


def test_token_classification_highlights_reassemble_the_text(tiny_zoo: Zoo) -> None:
    id2label = config_of(tiny_zoo, "tiny:token-classification", "token-classification").id2label
    kinds = {label.split("-", 1)[1] for label in id2label.values() if label != "O"}
    assert kinds == {"PER", "ORG", "LOC", "MISC"}
    text = "  Angela Merkel met   Emmanuel Macron in Paris.\n\nZoë went to São Paulo (Brazil) with IBM's team!  "
    for aggregation in ("first", "average", "max"):
        out = tiny_zoo.run("token-classification", text=text, aggregation=aggregation)
        check_entities(text, out, kinds)
        assert out["entities"], "the tiny model tags some words"
        assert TINY_NOTE in out["note"]
    none = tiny_zoo.run("token-classification", text=text, min_score=1.0)
    assert none["entities"] == [] and none["highlighted"] == [(text, None)]


def test_token_classification_tags_long_text_in_windows(tiny_zoo: Zoo) -> None:
    sentence = "John Smith works at Google in New York with Mary. "
    text = sentence * 60  # about 900 tokens: two windows of 512
    out = tiny_zoo.run("token-classification", text=text)
    check_entities(text, out, {"PER", "ORG", "LOC", "MISC"})
    # Words past the first window are tagged too.
    assert max(row[4] for row in out["entities"]) > len(text) * 0.9


def test_bio_tags_group_into_entities() -> None:
    from plugins.token_classification import _group_entities, _Word

    id2label = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-ORG", 5: "S-MISC", 6: "LOC"}
    tags = [1, 2, 0, 3, 3, 4, 5, 5, 6, 6]
    ws = [_Word(start=i * 2, end=i * 2 + 1, label_id=t, score=0.5 + i / 100) for i, t in enumerate(tags)]
    got = [(e.label, e.start, e.end) for e in _group_entities(ws, id2label)]
    assert got == [("PER", 0, 3), ("LOC", 6, 7), ("LOC", 8, 9), ("ORG", 10, 11), ("MISC", 12, 13),
                   ("MISC", 14, 15), ("LOC", 16, 19)]
    assert _group_entities(ws[:2], id2label)[0].score == pytest.approx((0.5 + 0.51) / 2)


# ------------------------------------------------------------------ zero-shot classification


def test_zero_shot_returns_the_users_labels_sorted(tiny_zoo: Zoo) -> None:
    plugin = tiny_zoo.registry.get("zero-shot-classification")
    assert tiny_zoo.default_model(plugin) == "tiny:zero-shot-classification"
    nli = set(config_of(tiny_zoo, "tiny:zero-shot-classification", "text-classification").id2label.values())
    assert nli == {"contradiction", "neutral", "entailment"}
    text = "The striker scored twice in the second half."
    out = tiny_zoo.run("zero-shot-classification", text=text, candidate_labels=" sports,politics , cooking,sports,")
    scores = out["scores"]
    assert sorted(scores) == ["cooking", "politics", "sports"]  # trimmed, repeats and blanks dropped
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-5)
    assert TINY_NOTE in out["note"]

    multi = tiny_zoo.run("zero-shot-classification", text=text, candidate_labels="sports, politics, cooking",
                         multi_label=True)["scores"]
    assert set(multi) == set(scores) and all(0.0 <= s <= 1.0 for s in multi.values())
    assert list(multi.values()) == sorted(multi.values(), reverse=True)
    assert multi != scores  # independent scores, not a softmax across labels

    single = tiny_zoo.run("zero-shot-classification", text=text, candidate_labels="sports")
    assert list(single["scores"]) == ["sports"] and 0.0 < single["scores"]["sports"] < 1.0
    assert "scored on its own" in single["note"]
    custom = tiny_zoo.run("zero-shot-classification", text=text, candidate_labels="sports, cooking",
                          hypothesis_template="The topic is {}.")["scores"]
    assert set(custom) == {"sports", "cooking"}


def test_zero_shot_bad_input_names_the_field_and_fix(tiny_zoo: Zoo) -> None:
    text = "The striker scored twice."
    for labels in ("", " , ,", None):
        with pytest.raises(InvalidInput) as err:
            tiny_zoo.run("zero-shot-classification", text=text, candidate_labels=labels)
        assert "`candidate_labels` must list at least one label" in str(err.value)
        assert "separated by commas" in str(err.value)
    with pytest.raises(InvalidInput, match="at most 32 labels"):
        tiny_zoo.run("zero-shot-classification", text=text, candidate_labels=",".join(f"l{i}" for i in range(33)))
    for template in ("This example is about", "{} or {}", "It is {0}: {}"):
        with pytest.raises(InvalidInput, match="hypothesis_template"):
            tiny_zoo.run("zero-shot-classification", text=text, candidate_labels="a, b", hypothesis_template=template)
    # A classifier without an entailment label is not an NLI model.
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run("zero-shot-classification", text=text, candidate_labels="a, b", model="tiny:text-classification")
    assert "not an NLI model" in str(err.value) and "NEGATIVE" in str(err.value)


# ------------------------------------------------------------------ shared rules


@pytest.mark.parametrize("task", TASKS)
def test_declarations_and_empty_text(tiny_zoo: Zoo, task: str) -> None:
    plugin = tiny_zoo.registry.get(task)
    assert "/" + plugin.endpoint() == ENDPOINTS[task]
    assert plugin.models.offline == plugin.models.tiny and plugin.models.tiny.startswith("tiny:")
    assert plugin.examples and all(ex.get("text") for ex in plugin.examples)
    with pytest.raises(InvalidInput, match="`text` must not be empty"):
        tiny_zoo.run(task, **{**QUICK[task], "text": " \n "})
    with pytest.raises(InvalidInput, match="not a parameter"):
        tiny_zoo.run(task, **QUICK[task], temperature=0.5)


def test_all_text_endpoints_are_in_the_app(tiny_zoo: Zoo) -> None:
    from zoo.ui import build_demo

    names = {"/" + d["api_name"] for d in build_demo(tiny_zoo).get_config_file()["dependencies"]
             if d.get("api_name")}
    assert set(ENDPOINTS.values()) <= names
    assert not [q for q in tiny_zoo.registry.quarantined if q.name.replace("_", "-") in TASKS]


@pytest.mark.parametrize("task", TASKS)
def test_each_plugin_file_is_self_contained(settings: Settings, task: str) -> None:
    from zoo.ui import build_demo

    full = Registry.discover()
    registry = Registry.discover(deny=[task])
    assert task in full.tasks() and task not in registry.tasks()
    assert set(registry.tasks()) == set(full.tasks()) - {task}  # every other plugin is still there
    assert {q.name for q in registry.quarantined} == {q.name for q in full.quarantined}  # and none broke

    zoo = Zoo(settings.replace(tiny=True, disabled_plugins=(task,)))
    names = {"/" + d["api_name"] for d in build_demo(zoo).get_config_file()["dependencies"] if d.get("api_name")}
    assert ENDPOINTS[task] not in names
    assert {ENDPOINTS[t] for t in TASKS if t != task} <= names
    for other in TASKS:
        if other != task:
            out = zoo.run(other, **QUICK[other])
            assert TINY_NOTE in out["note"], other
