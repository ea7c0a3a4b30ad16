"""The command line (zoo/cli.py, `python -m zoo`): list, serve, run, and clean errors for bad model references.

The CLI runs in a subprocess, offline, as the person running the server would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASR = "automatic-speech-recognition"


def _zoo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})), timeout=300)


def test_cli_list_runs_offline() -> None:
    out = _zoo("list", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["task"]: r for r in json.loads(out.stdout)["plugins"]}
    assert rows["text-generation"]["available"] is True
    assert "packaged" in rows["text-generation"]["source"]
    import zoo

    for row in rows.values():  # each plugin's package, its version and the Plugin API it targets
        assert (row["package"], row["version"], row["api_version"]) == ("model-zoo", zoo.__version__, zoo.API_VERSION)
    assert rows["conversational"]["plugin_source"] == "plugins.chat"
    table = _zoo("list")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert "package" in header and "api" in header and f"Plugin API {zoo.API_VERSION}" in header
    line = next(ln for ln in lines if ln.split()[1] == "text-generation")
    assert line.split()[2:5] == ["model-zoo", zoo.__version__, str(zoo.API_VERSION)]


def test_serve_takes_the_settings_flags_after_the_command_too() -> None:
    out = _zoo("serve", "--help")
    assert out.returncode == 0, out.stderr
    assert "--port" in out.stdout and "--plugin-sources" in out.stdout and "--tiny" in out.stdout


def test_cli_run_prints_json(model_cache_dir: Path) -> None:
    out = _zoo("--tiny", "run", "text-generation", "--prompt", "Hello", "--max-new-tokens", "4", "--seed", "1",
               env={"ZOO_CACHE_DIR": str(model_cache_dir)})
    assert out.returncode == 0, out.stderr
    assert isinstance(json.loads(out.stdout)["text"], str)
    bad = _zoo("--tiny", "run", "text-generation", "--prompt", "", env={"ZOO_CACHE_DIR": str(model_cache_dir)})
    assert bad.returncode == 2 and "must not be empty" in bad.stderr and "Traceback" not in bad.stderr


def zoo_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m zoo ...` offline, as the person running the server."""
    environ = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "zoo", *args], cwd=cwd, capture_output=True, text=True,
                          env=environ, timeout=300)


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
