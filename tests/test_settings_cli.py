"""Settings parsing and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import InvalidInput
from zoo.settings import SETTINGS, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_env_and_flags() -> None:
    s = Settings.from_env({"ZOO_PLUGINS": "text-generation, chat", "ZOO_MEMORY_BUDGET": "512MB",
                           "ZOO_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
                           "ZOO_MODEL_TEXT_GENERATION": "tiny:causal-lm"},
                          argv=["--device", "auto", "--port", "7999"])
    assert s.plugins == ("text-generation", "chat") and s.memory_budget == 512_000_000
    assert s.device == "auto" and s.server_port == 7999 and s.offline is True
    assert s.model_override("text-generation") == "tiny:causal-lm"


def test_space_defaults_forbid_custom_models() -> None:
    assert Settings.from_env({}).allow_custom_models is True
    assert Settings.from_env({"SPACE_ID": "me/zoo"}).allow_custom_models is False


@pytest.mark.parametrize("env", [{"ZOO_DEVICE": "tpu"}, {"ZOO_MEMORY_BUDGET": "lots"}, {"ZOO_TINY": "maybe"}])
def test_bad_settings_name_the_variable(env: dict) -> None:
    with pytest.raises(InvalidInput) as err:
        Settings.from_env(env)
    assert next(iter(env)) in str(err.value)


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if s.env not in readme]
    assert not missing, f"README lacks {missing}"


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


def test_readme_plugin_table_lists_every_plugin() -> None:
    from zoo.registry import Registry

    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| ") and "`/" in line]
    for plugin in Registry.discover(entry_points=False).plugins():
        rows = [r for r in table if f"`{plugin.task}`" in r]
        assert len(rows) == 1, f"README plugin table lacks {plugin.task}"
        row = rows[0]
        offline = plugin.models.offline or plugin.models.tiny or ""
        assert f"`/{plugin.endpoint()}`" in row and f"`{plugin.models.online}`" in row and f"`{offline}`" in row
        assert ("tiny random" in row) == offline.startswith("tiny:"), row
