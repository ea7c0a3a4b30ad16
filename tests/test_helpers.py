"""Helper programs that die: a killed or missing ffmpeg, ffprobe or espeak-ng is not the user's bad input.

Each case puts a fake helper first on PATH: a script that kills itself with SIGKILL, as the
kernel's out-of-memory killer would. Fast tier: no model loads except the tiny ASR one.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from zoo import audio
from zoo.errors import HelperFailed, InvalidInput
from zoo.runner import Zoo
from zoo.settings import Settings

ASR = "automatic-speech-recognition"


def fake_helper(folder: Path, name: str, body: str = "kill -KILL $$") -> Path:
    """An executable `name` in `folder` running the shell `body`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def assert_killed(err: pytest.ExceptionInfo, helper: str) -> None:
    message = str(err.value)
    assert isinstance(err.value, HelperFailed) and not isinstance(err.value, InvalidInput)
    assert err.value.helper == helper and err.value.signal == 9
    assert f"`{helper}` was killed by SIGKILL (signal 9)" in message and "not a problem with your input" in message
    assert "memory" in err.value.fix and "damaged" not in message and "has this voice" not in message


@pytest.mark.parametrize("helper", ["ffprobe", "ffmpeg"])
def test_a_killed_ffmpeg_is_not_called_a_damaged_file(helper: str, wav: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert shutil.which("ffmpeg"), "ffmpeg is not installed: apt install ffmpeg"
    before = audio.probe(wav)  # the real tools read the file fine
    assert before.duration == pytest.approx(1.0, abs=0.05)
    _on_path(monkeypatch, tmp_path / "bin")
    fake_helper(tmp_path / "bin", helper)
    call = (lambda: audio.probe(wav)) if helper == "ffprobe" else (lambda: audio.decode(wav))
    with pytest.raises(HelperFailed) as err:
        call()
    assert_killed(err, helper)


def test_a_missing_ffprobe_names_the_install(wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(HelperFailed) as err:
        audio.probe(wav)
    assert err.value.helper == "ffprobe" and "`ffprobe` is not installed" in str(err.value)
    assert "apt install ffmpeg" in err.value.fix


def test_a_bad_file_is_still_bad_input(tmp_path: Path) -> None:
    """The real ffprobe exiting 1 on a non-audio file stays an InvalidInput about the file."""
    junk = tmp_path / "notes.wav"
    junk.write_text("not audio at all " * 20)
    with pytest.raises(InvalidInput, match="not an audio file, or it is damaged"):
        audio.probe(junk)


def test_speech_recognition_tab_reports_the_killed_helper(settings: Settings, wav: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    zoo = Zoo(settings.replace(tiny=True, plugins=(ASR,)))
    _on_path(monkeypatch, tmp_path / "bin")
    fake_helper(tmp_path / "bin", "ffprobe")
    with pytest.raises(HelperFailed) as err:
        zoo.run(ASR, audio=str(wav))
    assert_killed(err, "ffprobe")
    from zoo.ui import user_error

    shown = str(user_error(err.value, ASR))  # the tab shows the same words, no server path
    assert "killed by SIGKILL" in shown and str(tmp_path) not in shown


def _voice() -> "PiperVoice":  # noqa: F821
    """A Piper voice object with no ONNX session: phonemizing needs only its config and espeak-ng."""
    from zoo.models.piper import PAD, BOS, EOS, PiperVoice

    config = {"phoneme_type": "espeak", "espeak": {"voice": "en-us"},
              "phoneme_id_map": {PAD: [0], BOS: [1], EOS: [2]}, "audio": {"sample_rate": 22050}}
    return PiperVoice(session=None, config=config, name="fake")


def test_a_killed_espeak_is_not_called_a_missing_voice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    voice = _voice()
    assert shutil.which("espeak-ng"), "espeak-ng is not installed: apt install espeak-ng"
    assert voice.phonemize("Hello there.")  # the real espeak-ng phonemizes
    _on_path(monkeypatch, tmp_path / "bin")
    fake_helper(tmp_path / "bin", "espeak-ng")
    with pytest.raises(HelperFailed) as err:
        voice.phonemize("Hello there.")
    assert_killed(err, "espeak-ng")
    # An espeak-ng that runs and refuses the voice is still reported as the voice's problem.
    fake_helper(tmp_path / "bin", "espeak-ng", "echo 'no such voice' >&2; exit 1")
    with pytest.raises(Exception, match="has this voice") as err:
        voice.phonemize("Hello there.")
    assert not isinstance(err.value, HelperFailed)
    assert json.dumps(voice.config)  # the voice object is untouched
