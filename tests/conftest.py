"""Shared fixtures: offline settings, a per-session model cache, zoos built for each test, app servers.

ZOO_ISOLATION=inline runs the tests' zoos with models in the test process; the default,
process, runs them in worker processes as the server does.

App servers (tests/servers.py): `app_server` is one `python app.py` on the tiny models that every
test needing only that shares; `real_app_server` the same on the real offline defaults; `app_factory`
starts a server with a test's own environment and stops it after the test. A failed test that used
one gets the end of the server's log in its report.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
# Only model-zoo's own plugins, whatever else is installed here (servers started as subprocesses
# inherit it); a test that installs a third-party plugin asks for ZOO_PLUGIN_SOURCES=all itself.
os.environ["ZOO_PLUGIN_SOURCES"] = "builtin"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from servers import AppFactory, AppServer, clean_env, start_app  # noqa: E402
from zoo.runner import Zoo  # noqa: E402
from zoo.settings import SETTINGS, Settings  # noqa: E402

ISOLATION = next(s for s in SETTINGS if s.attr == "isolation").parse("ZOO_ISOLATION",  # type: ignore[misc]
                                                                      os.environ.get("ZOO_ISOLATION", "process"))


@pytest.fixture(autouse=True)
def _end_workers_of_finished_tests() -> None:
    """Workers end with their zoo; collect the previous test's zoos so their workers do not pile up."""
    if any(p.name.startswith("zoo-worker") for p in multiprocessing.active_children()):
        gc.collect()


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for converted GGUF weights and tiny models, shared by the whole session."""
    env = os.environ.get("ZOO_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture
def settings(model_cache_dir: Path) -> Settings:
    """Offline settings with the session cache; tests replace() what they need."""
    return Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=8 * 10**9,
                    isolation=ISOLATION, plugin_sources="builtin")


@pytest.fixture
def tiny_zoo(settings: Settings) -> Zoo:
    """Every built-in plugin, each running its tiny random-weight model."""
    return Zoo(settings.replace(tiny=True))


@pytest.fixture
def tiny_inline_zoo(settings: Settings) -> Zoo:
    """tiny_zoo with the models in this process: for tests that spy on model code with monkeypatch,
    which cannot reach a worker process."""
    return Zoo(settings.replace(tiny=True, isolation="inline"))


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    from speech import write_wav

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


@pytest.fixture(scope="session")
def real_zoo(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Zoo:
    """Every built-in plugin on its offline default (real packaged weights where they exist), kept for the session."""
    return Zoo(Settings(offline=True, cache_dir=model_cache_dir, idle_unload_seconds=0, memory_budget=16 * 10**9,
                        isolation=ISOLATION, plugin_sources="builtin"))


# --------------------------------------------------------------------------- app servers


@pytest.fixture(scope="session")
def app_server(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`python app.py`, offline, every built-in plugin on its tiny model, shared by the whole session.

    For tests that only call endpoints; a test that needs other settings uses `app_factory`.
    """
    env = clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_IDLE_UNLOAD="0", ZOO_CACHE_DIR=str(model_cache_dir))
    with start_app(base_env=env, log=tmp_path_factory.mktemp("app-server") / "app.log") as server:
        yield server


@pytest.fixture(scope="session")
def real_app_server(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`python app.py`, offline, every built-in plugin on its real offline default, shared by the session."""
    env = clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="0", ZOO_CACHE_DIR=str(model_cache_dir))
    with start_app(base_env=env, log=tmp_path_factory.mktemp("real-app-server") / "app.log") as server:
        yield server


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[AppFactory]:
    """`app_factory(env, args=("app.py",), cwd=..., base_env=...)`: a server of the test's own, stopped after it."""
    factory = AppFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


def _servers_in(value: Any) -> list[AppServer]:
    """The app servers a fixture value is or holds (one level deep)."""
    if isinstance(value, AppServer):
        return [value]
    if isinstance(value, AppFactory):
        return list(value.servers)
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, AppServer)]
    try:
        return [v for v in vars(value).values() if isinstance(v, AppServer)]
    except TypeError:  # no __dict__
        return []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test that used an app server shows the end of that server's log."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            for server in _servers_in(value):
                report.sections.append((f"{name}: log of {server.url} (last 3000 characters)", server.log(3000)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (its own browser download does not work here), for the browser tier."""
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
