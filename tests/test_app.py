"""App tier: `python app.py` comes up fast with no model loaded, and every tab answers over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Seconds until `url` answers; fails if the process dies or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"app exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="module")
def app_server(model_cache_dir: Path):
    """`python app.py` in a subprocess, offline, real offline defaults."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1", ZOO_CACHE_DIR=str(model_cache_dir),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        startup = wait_http(url, proc, timeout=60)
        yield url, startup
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.app
def test_app_starts_fast_without_loading_models(app_server) -> None:
    url, startup = app_server
    print(f"\napp.py answered HTTP after {startup:.2f}s")
    assert startup < 10
    page = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "Model Zoo" in page


@pytest.mark.app
@pytest.mark.real
def test_text_generation_endpoint(app_server) -> None:
    from gradio_client import Client

    url, _ = app_server
    client = Client(url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = [p["parameter_name"] for p in api["/text_generation"]["parameters"]]
    assert params[:3] == ["prompt", "max_new_tokens", "temperature"] and "seed" in params and params[-1] == "model"
    t0 = time.perf_counter()
    text = client.predict(prompt="What is the capital of France?", temperature=0, max_new_tokens=24,
                          api_name="/text_generation")
    print(f"\n/text_generation (first call, includes model load): {time.perf_counter() - t0:.2f}s")
    assert isinstance(text, str) and "Paris" in text
    with pytest.raises(Exception) as err:
        client.predict(prompt="", api_name="/text_generation")
    assert "must not be empty" in str(err.value)
