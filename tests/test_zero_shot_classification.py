"""Zero-shot classification (plugins/zero_shot_classification.py) on its tiny NLI model: the user's labels,
sorted scores, multi-label, templates, and bad input that names the field and the fix.
"""

from __future__ import annotations

import math

import pytest

from tiny_checks import TINY_NOTE, config_of
from zoo.errors import InvalidInput
from zoo.runner import Zoo


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
