"""Token classification (plugins/token_classification.py) on its tiny model: highlighted segments that give
back the input exactly, long text tagged in windows, BIO tags grouped into entities.
"""

from __future__ import annotations

from typing import Any

import pytest

from tiny_checks import TINY_NOTE, config_of
from zoo.runner import Zoo


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
