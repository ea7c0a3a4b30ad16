"""Model sources (zoo/models/sources.py) offline: a named openai-whisper checkpoint is found in the download
folder or refused with the fix, and openai-whisper's downloader is never called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zoo.errors import ModelNotFound
from zoo.runner import Zoo
from zoo.settings import Settings

ASR = "automatic-speech-recognition"


def test_offline_named_checkpoint_is_refused_without_the_downloader(settings: Settings, wav: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline and not downloaded: ModelNotFound with the fix; whisper's downloader is never called."""
    import whisper

    called: list[Any] = []
    monkeypatch.setattr(whisper, "_download", lambda *a, **k: called.append(a))
    zoo = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True, cache_dir=settings.cache_dir / "empty"))
    with pytest.raises(ModelNotFound) as err:
        zoo.run(ASR, audio=str(wav), model="openai-whisper:tiny")
    assert "not downloaded here, and the zoo is offline" in str(err.value)
    assert "tiny.pt" in err.value.fix and "packaged:whisper-tiny.en" in err.value.fix
    assert called == []


def test_offline_named_checkpoint_already_downloaded_loads_by_path(settings: Settings, whisper_checkpoint: Path,
                                                                   wav: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint already in the download folder runs offline, and openai-whisper's downloader stays idle."""
    import shutil

    import whisper

    called: list[Any] = []
    monkeypatch.setattr(whisper, "_download", lambda *a, **k: called.append(a))
    cache = tmp_path / "cache"
    (cache / "whisper").mkdir(parents=True)
    shutil.copy(whisper_checkpoint, cache / "whisper" / "tiny.en.pt")
    zoo = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True, cache_dir=cache))
    result = zoo.run(ASR, audio=str(wav), model="openai-whisper:tiny.en", timestamps=False)
    assert called == [] and isinstance(result["text"], str)
    assert zoo.models.cache.keys()[0][1] == str(cache / "whisper" / "tiny.en.pt")
