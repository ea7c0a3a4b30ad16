"""Piper voices (zoo/models/piper.py): clauses, phoneme ids, the files a voice needs, its loader family."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.errors import ModelNotFound


def test_piper_clauses_phoneme_ids_and_family(tmp_path: Path) -> None:
    from zoo.models import piper
    from zoo.models.sources import detect_family

    assert piper.split_clauses("Hello, world. How are you?! Fine\nnext line") == [
        [("Hello", ","), ("world", ".")], [("How are you", "?")], [("Fine", "")], [("next line", "")]]
    table = {"_": [0], "^": [1], "$": [2], " ": [3], "a": [4], "b": [5], "ab": [9], ".": [6]}
    voice = piper.PiperVoice(session=None, config={"phoneme_id_map": table})
    ids, missing = voice.phoneme_ids("ab a.x")
    # BOS, then each symbol followed by PAD, then EOS; the longest known cluster wins; unknowns are reported.
    assert ids == [1, 0, 9, 0, 3, 0, 4, 0, 6, 0, 2]
    assert missing == {"x"}

    (tmp_path / "voice.onnx").write_bytes(b"onnx")
    assert not piper.is_piper_voice(tmp_path)  # no config beside it
    with pytest.raises(ModelNotFound, match=r"\.onnx\.json"):
        piper.voice_files(tmp_path / "voice.onnx")
    (tmp_path / "voice.onnx.json").write_text("{}")
    assert detect_family(tmp_path) == "piper" and detect_family(tmp_path / "voice.onnx") == "piper"
    assert piper.voice_files(tmp_path) == (tmp_path / "voice.onnx", tmp_path / "voice.onnx.json")
