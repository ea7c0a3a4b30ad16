"""Summarization (plugins/summarization.py) on its tiny model: lengths within the asked bounds, long input cut.

Tiny models have random weights, so these tests check what must hold whatever the weights.
"""

from __future__ import annotations

import pytest

from tiny_checks import TINY_NOTE, words
from zoo.errors import InvalidInput
from zoo.runner import Zoo


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
