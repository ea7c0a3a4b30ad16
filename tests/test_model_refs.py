"""Model references a visitor may name: openai-whisper checkpoints, the pickle policy, long ids, wrong kinds.

Fast tier: no network, no server; the CLI runs in a subprocess where the reproduction needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from zoo.errors import InvalidInput, ModelNotAllowed, ModelNotFound
from zoo.models.refs import OPENAI_WHISPER_CHECKPOINTS, parse_ref
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ASR = "automatic-speech-recognition"


def write_wav(path: Path, seconds: float = 1.0) -> Path:
    """A quiet 440 Hz tone, 16 kHz mono, written with the standard library."""
    import math
    import struct

    rate = 16000
    frames = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def zoo_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m zoo ...` offline, as the person running the server."""
    environ = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=cwd, capture_output=True, text=True,
                          env=environ, timeout=300)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "tone.wav")


@pytest.fixture
def whisper_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random openai-whisper checkpoint (tiny.en's vocabulary, 32-wide), saved as openai-whisper does."""
    import dataclasses

    import torch
    from whisper.model import ModelDimensions, Whisper

    path = tmp_path_factory.mktemp("whisper") / "random.pt"
    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                           n_vocab=51864, n_text_ctx=448, n_text_state=32, n_text_head=4, n_text_layer=2)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, path)
    return path


# --------------------------------------------------------------------------- item 5: openai-whisper refs


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


def test_visitors_cannot_pick_an_openai_whisper_file_but_may_pick_a_named_checkpoint(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint file is a local path (operator only); a name from openai-whisper's list is fine."""
    import torch

    loads: list[Any] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    zoo = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True))
    plugin = zoo.registry.get(ASR)
    for ref in ("openai-whisper:./app.py", "openai-whisper:/etc/passwd", "openai-whisper:~/x.pt",
                "openai-whisper:../README.md"):
        with pytest.raises(ModelNotAllowed, match=r"Local path `.*` cannot be chosen from the app.*"
                                                  r"ZOO_MODEL_AUTOMATIC_SPEECH_RECOGNITION="):
            zoo.check_model(plugin, ref)
    assert zoo.check_model(plugin, "openai-whisper:tiny") == "openai-whisper:tiny"
    operator = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True,
                                    model_overrides={ASR: "openai-whisper:./my.pt"}))
    assert operator.check_model(operator.registry.get(ASR), "openai-whisper:./my.pt") == "openai-whisper:./my.pt"
    assert loads == []


def test_serve_endpoint_refuses_an_openai_whisper_file(settings: Settings) -> None:
    """The same rule on serve-endpoint (a tab that takes `model` in its inputs): 4xx, nothing loaded."""
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    zoo = Zoo(settings.replace(plugins=("conversational",), allow_pickle=True))
    with TestClient(create_app(zoo)) as client:
        for ref, status in (("openai-whisper:app.py", 422), ("openai-whisper:./app.py", 403),
                            ("openai-whisper:README.md", 422)):
            reply = client.post("/conversational", json={"inputs": {"message": "hi", "model": ref}})
            assert reply.status_code == status, reply.text
            assert ref in reply.json()["error"] and "weights_only" not in reply.text
    assert zoo.models.cache.stats.loads == 0


def test_cli_refuses_openai_whisper_names_and_reports_a_bad_checkpoint_cleanly(wav: Path, tmp_path: Path) -> None:
    """The CLI user is the operator: a path is theirs to give, but a non-checkpoint is a clean error."""
    out = zoo_cli("run", ASR, "--audio", str(wav), "--model", "openai-whisper:app.py")
    assert out.returncode == 2, out.stderr
    assert "must be `openai-whisper:<name>`" in out.stderr and "Traceback" not in out.stderr
    fake = tmp_path / "fake.pt"
    fake.write_text('"not a checkpoint"')
    out = zoo_cli("run", ASR, "--audio", str(wav), "--model", f"openai-whisper:{fake}",
                  env={"ZOO_ALLOW_PICKLE": "1", "ZOO_CACHE_DIR": str(tmp_path / "cache")})
    assert out.returncode == 2, out.stderr
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith("error: openai-whisper could not load") and "not a complete openai-whisper checkpoint" in error
    assert "a .pt file with `dims` and `model_state_dict`" in error  # the operator's own path may show; no bytes
    for leak in ("weights_only", "operand", "Unsupported"):
        assert leak not in error, error
    assert "Traceback" not in out.stderr and "weights_only" not in out.stderr, out.stderr


# --------------------------------------------------------------------------- issue 12 item 5: one pickle policy


def test_openai_whisper_checkpoints_follow_zoo_allow_pickle(settings: Settings, whisper_checkpoint: Path,
                                                            wav: Path) -> None:
    """Pickles off (the default): refused with the fix, and not offered; on: the checkpoint loads and runs."""
    closed = Zoo(settings.replace(plugins=(ASR,)))
    plugin = closed.registry.get(ASR)
    assert not settings.allow_pickle
    assert [m for m in plugin.models.all() if m.startswith("openai-whisper:")], "the list has openai-whisper entries"
    assert not [m for m in closed.model_choices(plugin) if m.startswith("openai-whisper:")]
    ok, where = closed.models.availability(closed.model_choices(plugin)[0])  # the offline default is unaffected
    assert ok and "packaged" in where, where
    for ref in ("openai-whisper:tiny.en", "openai-whisper:tiny"):
        with pytest.raises(ModelNotAllowed, match=r"pickle.*ZOO_ALLOW_PICKLE=1"):
            closed.check_model(plugin, ref)
    own = f"openai-whisper:{whisper_checkpoint}"
    operator_closed = Zoo(settings.replace(plugins=(ASR,), model_overrides={ASR: own}))
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        operator_closed.run(ASR, audio=str(wav))
    assert operator_closed.models.cache.stats.loads == 0
    # The loader refuses too, whoever calls it.
    from zoo.models.loaders import LoadContext, load_openai_whisper

    resolved = closed.models.resolver.resolve(parse_ref(own))
    with pytest.raises(ModelNotAllowed, match="ZOO_ALLOW_PICKLE"):
        load_openai_whisper(resolved, ASR, LoadContext(device="cpu", dtype=None, cache_dir=settings.cache_dir))
    opened = Zoo(settings.replace(plugins=(ASR,), allow_pickle=True, model_overrides={ASR: own}))
    assert [m for m in opened.model_choices(opened.registry.get(ASR)) if m.startswith("openai-whisper:")]
    result = opened.run(ASR, audio=str(wav), timestamps=False)
    assert opened.models.cache.stats.loads == 1
    assert isinstance(result["text"], str) and result["segments"] and result["segments"][0][0] == 0.0


# --------------------------------------------------------------------------- item 6: offline is offline


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


_AUDIT = """
import os, sys
_log = os.environ["ZOO_TEST_NET_LOG"]
def _hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"):
        with open(_log, "a") as f:
            f.write(f"{event} {args!r}\\n")
sys.addaudithook(_hook)
"""


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.parametrize("model", ["openai-whisper:tiny", "openai/whisper-small"])
@pytest.mark.parametrize("netns", [False, True], ids=["audited", "no-network-namespace"])
def test_offline_cli_opens_no_connection(model: str, netns: bool, wav: Path, tmp_path: Path) -> None:
    """`HF_HUB_OFFLINE=1 zoo run ... --model X`: a clean error, exit 2, and not one connect or DNS lookup."""
    if netns and not _unshare_works():
        pytest.skip("`unshare -n` is not permitted here (needs root or user namespaces); the audited run still ran")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_AUDIT)
    net_log = tmp_path / "net.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", ZOO_ALLOW_PICKLE="1", ZOO_CACHE_DIR=str(tmp_path / "cache"),
               HF_HOME=str(tmp_path / "hf"), PYTHONPATH=f"{hooks}{os.pathsep}{ROOT}",
               ZOO_TEST_NET_LOG=str(net_log))
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('localhost', 9)"],
                           env=dict(env, ZOO_TEST_NET_LOG=str(tmp_path / "probe.log")), capture_output=True)
    assert "socket.getaddrinfo" in (tmp_path / "probe.log").read_text(), probe.stderr  # the hook is live
    command = [sys.executable, "-m", "zoo", "run", ASR, "--audio", str(wav), "--model", model]
    out = subprocess.run((["unshare", "-n"] if netns else []) + command, cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: ")
    assert "offline" in out.stderr and "Fix:" in out.stderr
    assert (hooks / "sitecustomize.py").exists() and not net_log.exists(), net_log.read_text()


# --------------------------------------------------------------------------- item 7: clean errors, not ValueErrors


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


@pytest.mark.parametrize("task, values, ref, what", [
    ("text-classification", {"text": "I love it"}, "tiny:text-to-image", "a diffusers image-generation pipeline"),
    ("text-generation", {"prompt": "hi"}, "tiny:text-classification", "a bert model (BertForSequenceClassification)"),
    ("automatic-speech-recognition", None, "tiny:causal-lm", "a llama model (LlamaForCausalLM)"),
    ("token-classification", {"text": "Ada lives in London"}, "tiny:text2text-generation",
     "a bart model (BartForConditionalGeneration)"),
    ("sentence-similarity", {"query": "cats", "documents": "Cats purr.\nDogs bark."}, "tiny:text-to-image",
     "a diffusers image-generation pipeline"),
])
def test_a_model_of_another_kind_is_refused_before_loading(settings: Settings, wav: Path, task: str,
                                                           values: dict | None, ref: str, what: str) -> None:
    """The tab's kind against what the files hold: names the model, what it is, what the tab needs, the fix."""
    zoo = Zoo(settings.replace(tiny=True, plugins=(task,)))
    plugin = zoo.registry.get(task)
    with pytest.raises(InvalidInput) as err:
        zoo.run(task, **(values if values is not None else {"audio": str(wav)}), model=ref)
    message = str(err.value)
    assert err.value.name == "model" and ref in message and what in message, message
    assert f"must be a {plugin.model_kind} model for {plugin.title}" in message
    assert plugin.models.tiny in err.value.fix
    assert zoo.models.cache.stats.loads == 0  # refused from the files alone, nothing loaded


def test_every_tab_still_runs_its_own_tiny_model_kind(settings: Settings) -> None:
    """The kind check passes each plugin's own models (tiny ones here: they are built locally)."""
    zoo = Zoo(settings.replace(tiny=True))
    for plugin in zoo.registry.plugins():
        if not plugin.models.tiny:
            continue
        defaults = {f.name: f.default for f in plugin.fields()}
        ref, kind = plugin.model_for({**defaults, "model": plugin.models.tiny}, plugin.models.tiny)
        assert zoo.models.kind_mismatch(ref, kind) is None, (plugin.task, ref, kind)


def test_text_generation_prompt_longer_than_the_context_is_refused_with_the_count(settings: Settings) -> None:
    """'Requested tokens (10020) exceed context window' no more: the count, the window and the fix."""
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",), max_text_chars=200_000))
    with zoo.models.use("tiny:causal-lm", "causal-lm") as loaded:
        window = loaded.model.context_length
        per_word = loaded.model.count_tokens("word " * 100) / 100
    long = "word " * int(window / per_word + 100)
    with pytest.raises(InvalidInput) as err:
        zoo.run("text-generation", prompt=long, max_new_tokens=8)
    assert err.value.name == "prompt" and f"{window}-token context window" in str(err.value)
    assert "prompt and system prompt take" in str(err.value) and "tokens)" in str(err.value) and "shorten" in err.value.fix
    with pytest.raises(InvalidInput) as err:
        zoo.run("text-generation", prompt="hi", system_prompt=long, max_new_tokens=8)
    assert err.value.name == "prompt" and "system prompt" in str(err.value)
    with pytest.raises(InvalidInput) as err:  # the prompt fits, the completion would not
        zoo.run("text-generation", prompt="word " * int((window - 200) / per_word), chat_template=False,
                max_new_tokens=1024)
    assert err.value.name == "max_new_tokens" and "at most" in str(err.value) and "or less" in err.value.fix
    out = zoo.run("text-generation", prompt="hi", max_new_tokens=4, seed=1)
    assert isinstance(out["text"], str)


@pytest.mark.real
def test_the_packaged_model_refuses_an_overlong_prompt_with_the_count(real_zoo: Zoo) -> None:
    """The issue's reproduction on the default path: 20000 characters of prompt, a 4096-token window."""
    prompt = "7 " * 9900  # 19800 characters, ~9900 tokens: over llama.cpp's 4096 and transformers' 8192
    with pytest.raises(InvalidInput) as err:
        real_zoo.run("text-generation", prompt=prompt, max_new_tokens=16)
    message = str(err.value)
    assert err.value.name == "prompt" and "-token context window" in message and "take" in message
    assert "Requested tokens" not in message and "shorten the prompt" in err.value.fix
