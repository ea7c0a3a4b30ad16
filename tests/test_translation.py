"""Translation (plugins/translation.py) on its tiny model: lines kept, token budgets, streaming, opus-mt pairs.

Tiny models have random weights, so these tests check what must hold whatever the weights.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tiny_checks import TINY_NOTE, words
from zoo.errors import InvalidInput
from zoo.runner import Zoo


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
