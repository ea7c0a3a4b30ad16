"""App tier: `python app.py` comes up fast with no model loaded, and every tab answers over HTTP.

Both tests use the session's `real_app_server` (tests/conftest.py): the app on its real offline defaults.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

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
