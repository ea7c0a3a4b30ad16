"""App tier: `python app.py` comes up fast with no model loaded, and every tab answers over HTTP.

Its tests use the session's `real_app_server` (tests/conftest.py): the app on its real offline defaults.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from samples import PASSAGES, _wav
from servers import AppServer


@pytest.mark.app
def test_app_starts_fast_without_loading_models(real_app_server: AppServer) -> None:
    url, startup = real_app_server.url, real_app_server.startup
    print(f"\napp.py answered HTTP after {startup:.2f}s")
    assert startup < 10
    page = urllib.request.urlopen(url, timeout=5).read().decode()
    assert "Model Zoo" in page


@pytest.mark.app
@pytest.mark.real
def test_text_generation_endpoint(real_app_server: AppServer) -> None:
    from gradio_client import Client

    url = real_app_server.url
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


@pytest.mark.app
@pytest.mark.real
def test_search_and_speech_endpoints_over_http(real_app_server) -> None:
    """Semantic search and text to speech on their real offline defaults, in the session's `python app.py`."""
    from gradio_client import Client

    client = Client(real_app_server.url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in api["/sentence_similarity"]["parameters"]][:2] == ["query", "documents"]
    assert [p["parameter_name"] for p in api["/text_to_speech"]["parameters"]][0] == "text"

    table, details = client.predict(query="Why did share prices drop?", documents="\n".join(PASSAGES), top_k=3,
                                    api_name="/sentence_similarity")
    rows = table["data"] if isinstance(table, dict) else table  # the ranked passages come first
    assert len(rows) == 3 and rows[0][2] == PASSAGES[7] and float(rows[0][1]) > float(rows[1][1])
    assert details["results"][0]["index"] == 7

    audio, info = client.predict(text="Hello from the model zoo.", api_name="/text_to_speech")
    rate, frames, _ = _wav(audio)  # the audio comes first, as a WAV file the client downloaded
    assert rate == info["sample_rate"] == 22_050 and frames > rate // 2
    with pytest.raises(Exception, match="must not be empty"):
        client.predict(text="", api_name="/text_to_speech")
