"""Input errors over the app's HTTP API come from the zoo, not from gradio's preprocessing.

Each error names the field, the rule and the fix, and never shows a server path: a 0-byte,
truncated or fake PNG, 'NaN' to a slider, a value out of a slider's range, a choice not offered.
The session's tiny `python app.py` serves the module's HTTP tests (marked `app`); the fast tests check the
event wiring and the edge's path redaction without a server.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from servers import AppServer
from zoo.runner import Zoo
from zoo.settings import Settings

IC, TG, TC, CHAT = "image-classification", "text-generation", "text-classification", "conversational"


def _png_bytes(side: int = 32) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (30, 120, 200)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pictures")
    (folder / "good.png").write_bytes(_png_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(_png_bytes(256)[:60])
    (folder / "fake.png").write_text("this is a text file wearing a .png name\n" * 4)
    return folder


@pytest.fixture(scope="module")
def app(app_server: AppServer, model_cache_dir: Path) -> Iterator[tuple[Zoo, Any]]:
    """The session's tiny `python app.py` (tests/conftest.py), and a zoo on the same tiny models for the core."""
    from gradio_client import Client

    zoo = Zoo(Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                       plugins=(IC, TG, TC, CHAT)))
    yield zoo, Client(app_server.url, verbose=False)


def assert_zoo_words(message: str, *expected: str) -> None:
    """The zoo's message: the field and rule named, a fix, no gradio wording, no server folder."""
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert "Fix:" in message, message
    for leak in ("Could not preprocess", "Original error", "'path':", tempfile.gettempdir() + "/", "/gradio/",
                 "less than minimum value", "not supported between", "Traceback"):
        assert leak not in message, f"{leak!r} leaked: {message}"


@pytest.mark.app
@pytest.mark.parametrize("name", ["empty.png", "truncated.png", "fake.png"])
def test_a_bad_picture_is_named_without_a_server_path(app, pictures: Path, name: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    zoo, client = app
    with pytest.raises(AppError) as err:
        client.predict(image=handle_file(str(pictures / name)), api_name="/image_classification")
    print(err.value)
    assert_zoo_words(str(err.value), "`image`", "Fix: upload a PNG, JPEG or WebP picture")
    good = client.predict(image=handle_file(str(pictures / "good.png")), api_name="/image_classification")
    good = good[0] if isinstance(good, tuple) else good
    assert good["label"] == max(zoo.run(IC, image=str(pictures / "good.png"))["labels"].items(),
                                key=lambda kv: kv[1])[0]


@pytest.mark.app
@pytest.mark.parametrize("api, values, expected", [
    ("/text_generation", {"prompt": "hi", "temperature": "NaN"}, ("`temperature` must be a finite number",)),
    ("/text_generation", {"prompt": "hi", "temperature": -2}, ("`temperature` must be between 0 and 2",
                                                                "Fix: pick a value from 0 to 2")),
    ("/text_generation", {"prompt": "hi", "seed": -2}, ("`seed` must be between -1 and 4294967295",)),
    ("/text_generation", {"prompt": "hi", "max_new_tokens": "many"}, ("`max_new_tokens` must be a number",)),
    ("/text_classification", {"text": "hi", "function": "bogus"}, ("`function` must be one of auto, softmax",
                                                                    "Fix: pick one of")),
    ("/chat", {"message": "hi", "history": [], "temperature": "NaN"}, ("`temperature` must be a finite number",)),
])
def test_bad_option_values_get_the_zoos_message(app, api: str, values: dict, expected: tuple[str, ...]) -> None:
    from gradio_client.exceptions import AppError

    _zoo, client = app
    with pytest.raises(AppError) as err:
        client.predict(**values, api_name=api)
    assert_zoo_words(str(err.value), *expected)


@pytest.mark.app
def test_good_values_still_work_over_the_api(app) -> None:
    """The same endpoints, the same parameter names, served as before."""
    _zoo, client = app
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in info["/text_generation"]["parameters"]][:3] == \
        ["prompt", "max_new_tokens", "temperature"]
    text = client.predict(prompt="hi", max_new_tokens=3, temperature=0.0, seed=1, api_name="/text_generation")
    assert isinstance(text, str)


def test_every_plugin_event_skips_gradios_preprocessing(settings: Settings) -> None:
    """Each event that runs a plugin hands the raw values to the zoo's checks (gradio's would speak first)."""
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True))
    demo = build_demo(zoo)
    config = demo.get_config_file()
    runs = [d for d in config["dependencies"] if d.get("api_name") in {"/" + p.endpoint() for p in
                                                                       zoo.registry.plugins()}
            or d.get("api_name") in {p.endpoint() for p in zoo.registry.plugins()}]
    assert len(runs) == len(zoo.registry), [d.get("api_name") for d in config["dependencies"]]
    endpoints = {p.endpoint() for p in zoo.registry.plugins()}
    handlers = [fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") in endpoints | {"respond"}]
    assert len(handlers) > len(runs)  # the API events and the UI's own (Enter in a text box, chat's stream)
    assert [fn.name for fn in handlers if fn.preprocess] == []


def test_messages_at_the_edge_show_no_server_path(tmp_path: Path) -> None:
    from zoo.errors import InvalidInput
    from zoo.ui import user_error

    upload = tmp_path / "gradio" / ("a" * 40) / "holiday.png"
    shown = str(user_error(InvalidInput("image", str(upload), f"cannot be read as an image (cannot identify image "
                                                          f"file {str(upload)!r})", "upload a PNG"), IC))
    assert "holiday.png" in shown and str(tmp_path) not in shown and "`image`" in shown
    crash = str(user_error(OSError(f"[Errno 2] No such file: '{upload}'"), IC))
    assert "holiday.png" in crash and str(tmp_path) not in crash
