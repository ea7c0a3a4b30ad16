"""Model references (zoo/models/refs.py): parsing, bad ids, openai-whisper checkpoint names, overlong ids.

Fast tier: no network, no server.
"""

from __future__ import annotations

import os

import pytest

from zoo.errors import InvalidInput
from zoo.models.refs import OPENAI_WHISPER_CHECKPOINTS, parse_ref
from zoo.runner import Zoo
from zoo.settings import Settings


@pytest.mark.parametrize("raw, scheme, name, rev, file", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "hub", "HuggingFaceTB/SmolLM2-135M-Instruct", None, None),
    ("openai/whisper-tiny@v1.0", "hub", "openai/whisper-tiny", "v1.0", None),
    ("owner/repo/sub/model.Q4.gguf@main", "hub", "owner/repo", "main", "sub/model.Q4.gguf"),
    ("gpt2", "hub", "gpt2", None, None),
    ("packaged:smollm2-135m-instruct", "packaged", "smollm2-135m-instruct", None, None),
    ("tiny:causal-lm", "tiny", "causal-lm", None, None),
    ("/models/foo", "local", "/models/foo", None, None),
])
def test_parse_ref(raw: str, scheme: str, name: str, rev: str | None, file: str | None) -> None:
    ref = parse_ref(raw)
    assert (ref.scheme, ref.name, ref.revision, ref.filename) == (scheme, name, rev, file)


@pytest.mark.parametrize("raw", ["", "   ", "a/b/../../etc", "owner//name", "tiny:../x", "bad id with spaces"])
def test_parse_ref_rejects_bad_ids(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_ref(raw)
    assert "model" in str(err.value)


def test_the_checkpoint_list_is_openai_whispers_own() -> None:
    """The static list (parsing never imports whisper) names exactly what openai-whisper downloads."""
    import whisper

    assert list(OPENAI_WHISPER_CHECKPOINTS) == whisper.available_models()
    assert OPENAI_WHISPER_CHECKPOINTS == {k: os.path.basename(v) for k, v in whisper._MODELS.items()}


@pytest.mark.parametrize("name", ["app.py", "README.md", "Makefile", "no-such-file.py"])
def test_an_openai_whisper_name_that_is_no_checkpoint_is_refused_alike_whether_the_file_exists(name: str) -> None:
    """`openai-whisper:app.py` names no checkpoint; the message is the same for files that exist and do not."""
    with pytest.raises(InvalidInput) as err:
        parse_ref(f"openai-whisper:{name}")
    message = str(err.value)
    assert f"openai-whisper:{name}" in message and "tiny.en" in message and "large-v3-turbo" in message
    assert "Fix: pick a model from the list" in message
    assert message.replace(name, "X") == str(pytest.raises(InvalidInput, parse_ref, "openai-whisper:X").value)


def test_a_300_character_model_id_is_a_clean_invalid_input(settings: Settings) -> None:
    """`OSError: File name too long` no more: the id's length and its longest part are checked first."""
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",)))
    for ref, rule in (("a" * 300, "longer than 255 characters (one is 300)"),
                      ("owner/" + "b" * 300, "longer than 255 characters (one is 300)"),
                      ("x/" * 600, "at most 1024 characters")):
        with pytest.raises(InvalidInput) as err:
            zoo.run("text-generation", prompt="hi", model=ref)
        assert err.value.name == "model" and rule in str(err.value) and err.value.fix, err.value
        assert len(str(err.value)) < 400  # the id is not echoed in full
    assert zoo.models.cache.stats.loads == 0
