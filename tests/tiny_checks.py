"""What the text plugins' tests check on tiny models, whatever the random weights."""

from __future__ import annotations

from typing import Any

from zoo.runner import Zoo

TINY_NOTE = "Tiny random-weight model"


def config_of(zoo: Zoo, ref: str, kind: str) -> Any:
    """The transformers config of a model as the shared loader loads it."""
    with zoo.models.use(ref, kind) as loaded:
        return loaded.model.config


def words(text: str) -> int:
    """Whitespace-separated words: a byte-level BPE token starts at most one, so words <= tokens."""
    return len(text.split())
