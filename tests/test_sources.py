"""Model sources (zoo/models/sources.py): the resolution chain, family detection, and offline, a named
openai-whisper checkpoint found in the download folder or refused with the fix (its downloader never called).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zoo.errors import ModelNotFound
from zoo.models import parse_ref
from zoo.models.sources import Resolver, detect_family, packaged_path
from zoo.runner import Zoo
from zoo.settings import Settings

ASR = "automatic-speech-recognition"


def _fake_hf_cache(root: Path, repo: str) -> Path:
    """The on-disk layout huggingface_hub uses, with one snapshot holding a config."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("a" * 40)
    return snap


class RecordingResolver(Resolver):
    """Records which sources the chain tried, in order."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.tried: list[str] = []

    def _from_hf_cache(self, ref):
        self.tried.append("hf-cache")
        return super()._from_hf_cache(ref)

    def _download(self, ref):
        self.tried.append("hub")
        raise ConnectionError("no route to the Hub")


def test_resolution_order(tmp_path: Path) -> None:
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct"
    online = RecordingResolver(offline=lambda: False, allow_pickle=False, tiny_dir=tmp_path / "tiny",
                               hf_cache_dir=tmp_path / "hf")
    resolved = online.resolve(parse_ref(repo))
    assert online.tried == ["hf-cache", "hub"] and resolved.source == "packaged"  # then the packaged mirror
    assert resolved.path == packaged_path("smollm2-135m-instruct")

    snap = _fake_hf_cache(tmp_path / "hf", repo)
    online.tried.clear()
    resolved = online.resolve(parse_ref(repo))
    assert online.tried == ["hf-cache"] and resolved.source == "hf-cache" and resolved.path == snap

    local = online.resolve(parse_ref(str(snap)))
    assert local.source == "local" and local.path == snap


def test_offline_unknown_model_says_what_to_do(tmp_path: Path) -> None:
    offline = RecordingResolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path, hf_cache_dir=tmp_path)
    with pytest.raises(ModelNotFound) as err:
        offline.resolve(parse_ref("someone/not-cached"))
    assert offline.tried == ["hf-cache"]  # offline: the Hub is never asked
    message = str(err.value)
    assert "not available here (offline)" in message and "HF_HUB_OFFLINE" in message and "tiny:" in message


def test_missing_local_path_and_unknown_packaged(tmp_path: Path) -> None:
    r = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path)
    with pytest.raises(ModelNotFound, match="No model at local path"):
        r.resolve(parse_ref(str(tmp_path / "nope")))
    with pytest.raises(ModelNotFound, match="packaged:smollm2-135m-instruct"):
        r.resolve(parse_ref("packaged:unknown"))


def test_family_detection(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model_index.json").write_text("{}")
    assert detect_family(tmp_path / "d") == "diffusers"
    assert detect_family(packaged_path("whisper-tiny.en")) == "faster-whisper"
    assert detect_family(packaged_path("smollm2-135m-instruct")) == "gguf"
    assert detect_family(packaged_path("all-minilm-l6-v2")) == "transformers"


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


def test_a_piper_voice_on_the_hub_is_not_faked_offline(tmp_path: Path) -> None:
    from zoo.models.refs import parse_ref
    from zoo.models.sources import Resolver

    resolver = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path, hf_cache_dir=tmp_path)
    # Another voice of the same Hub repo must not resolve to the packaged joe voice.
    with pytest.raises(ModelNotFound, match="lessac"):
        resolver.resolve(parse_ref("rhasspy/piper-voices/en/en_US/lessac/medium/en_US-lessac-medium.onnx@v1.0.0"))
