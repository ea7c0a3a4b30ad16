"""Settings parsing (zoo/settings.py): environment variables and flags, Space defaults, errors, documentation."""

from __future__ import annotations

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
