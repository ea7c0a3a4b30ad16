"""Text classification (plugins/text_classification.py) on its tiny model: label sets that match the
model's config, scores that are probabilities, clear errors for bad input.
"""

from __future__ import annotations

import math

import pytest

from tiny_checks import TINY_NOTE, config_of
from zoo.errors import InvalidInput
from zoo.runner import Zoo


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
