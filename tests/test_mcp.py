"""The zoo as an MCP server (zoo/mcp.py on gradio 6.31's built-in one), driven by the official `mcp` client
over Streamable HTTP against real apps on loopback: the tools and their docs come from the declarations,
text generation answers (real SmolLM2), text to image returns an image, images and audio go in and out,
progress is reported, `mcp = False`, ZOO_MCP_TOOLS and ZOO_MCP=0 are honoured.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
import wave
from pathlib import Path

import pytest

from mcp_client import call_tool, images, json_texts, list_tools, texts
from servers import AppServer, clean_env
from zoo import plugin as P
from zoo.errors import InvalidInput
from zoo.mcp import field_doc, tool_doc, tool_endpoints
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


# ---------------------------------------------------------------------------- docs and selection (no server)


def test_tool_doc_is_written_from_the_declaration(tiny_zoo: Zoo) -> None:
    plugin = tiny_zoo.registry.get("text-to-image")
    names = [f.name for f in plugin.fields()] + ["model"]
    doc = tool_doc(plugin, names, tiny_zoo.limits, "tiny:text-to-image", ["tiny:text-to-image", "stabilityai/sd-turbo"])
    from gradio.utils import get_function_description

    def fn(prompt, negative_prompt, width, height, steps, guidance_scale, seed, num_images, model):  # noqa: ANN001
        pass

    fn.__doc__ = doc
    description, params, returns = get_function_description(fn)  # what gradio's MCP server reads
    assert description.startswith("Text to image: Describe a picture;") and "**" not in description
    assert params["prompt"] == "Prompt. Text, at most 20000 characters; required."
    # The operator's cap (ZOO_MAX_IMAGE_SIDE, default 1024) bounds the declared 2048.
    assert params["width"].startswith("Width. Pixels, a multiple of 8;") and "from 0 to 1024; default 0." in params["width"]
    assert params["steps"].endswith("A whole number from 1 to 50; default 2.")  # ZOO_MAX_STEPS caps 150
    assert params["seed"] == "Seed. -1 = random. A whole number from -1 to 4294967295; default -1."
    assert "stabilityai/sd-turbo" in params["model"] and "(tiny:text-to-image)" in params["model"]
    assert returns == ["image: Image, an image (image content)", "images: All images (when more than one), a list of images",
                       "seed: Seed used, a number", "metadata: Metadata (also inside each PNG), JSON"]
    limits = P.Limits(max_image_side=512)
    assert field_doc(P.Image("picture"), limits).endswith("at most 512 px a side.")
    assert field_doc(P.Choice("mode", "a", choices=("a", "b")), limits) == "Mode. One of: a, b; default a."
    assert field_doc(P.Bool("flag", True), limits) == "Flag. true or false; default true."


class _Quiet(P.Plugin):
    api_version = P.API_VERSION
    task = "quiet-thing"
    title = "Quiet thing"
    mcp = False
    inputs = (P.Text("text"),)
    outputs = (P.Text("echo"),)

    def run(self, model, values, ctx):  # noqa: ANN001
        return {"echo": values["text"]}


class _Loud(_Quiet):
    task = "loud-thing"
    title = "Loud thing"
    mcp = True


def test_tool_endpoints_leave_out_opted_out_plugins_and_follow_zoo_mcp_tools(settings: Settings) -> None:
    assert P.Plugin.mcp is True  # the default: every endpoint is a tool
    registry = Registry()
    for plugin in (_Quiet, _Loud):
        registry.register(plugin)
    zoo = Zoo(settings, registry=registry)
    assert tool_endpoints(zoo) == {"loud_thing"}
    picked = Zoo(settings.replace(mcp_tools=("quiet_thing",)), registry=registry)
    assert tool_endpoints(picked) == {"quiet_thing"}  # the operator's pick wins over the plugin's opt-out
    wrong = Zoo(settings.replace(mcp_tools=("loud_thing", "text_generation")), registry=registry)
    with pytest.raises(InvalidInput) as err:
        tool_endpoints(wrong)
    message = str(err.value)
    assert "ZOO_MCP_TOOLS" in message and "names text_generation, which no tab serves here" in message
    assert "loud_thing, quiet_thing" in message  # the known names, in the fix
    assert Registry.builtin().get("fine-tune").mcp is False  # a training job is not a tool


def test_settings_read_zoo_mcp_and_zoo_mcp_tools() -> None:
    assert Settings.from_env({}).mcp is True and Settings.from_env({}).mcp_tools == ()
    s = Settings.from_env({"ZOO_MCP": "0", "ZOO_MCP_TOOLS": "text_generation, text_to_image"})
    assert s.mcp is False and s.mcp_tools == ("text_generation", "text_to_image")
    with pytest.raises(InvalidInput, match="ZOO_MCP"):
        Settings.from_env({"ZOO_MCP": "maybe"})


# ---------------------------------------------------------------------------- the shared tiny app


@pytest.mark.app
def test_tools_are_the_tabs_endpoints_with_their_docs(app_server: AppServer) -> None:
    tools = list_tools(app_server.url)
    plugins = Registry.builtin().plugins()
    endpoints = {p.endpoint() for p in plugins}
    opted_out = {p.endpoint() for p in plugins if not p.mcp}
    assert opted_out == {"fine_tune", "models"}  # training and model admin are not tool calls
    assert set(tools) == endpoints - opted_out  # every main endpoint, the opted-out ones left out
    # No helper event (picker refresh, examples, submit, stop) is a tool: each tool is a tab's endpoint.
    assert len(tools) == len(endpoints) - len(opted_out)
    gen = tools["text_generation"]
    assert gen.description.startswith("Text generation: ")
    assert "Returns: text: " in gen.description
    props = gen.inputSchema["properties"]
    assert list(props)[0] == "prompt" and "model" in props
    assert props["prompt"]["description"].startswith("Prompt.") and "required" in props["prompt"]["description"]
    assert "from 1 to 1024" in props["max_new_tokens"]["description"]  # the operator's ZOO_MAX_NEW_TOKENS
    image = tools["image_classification"].inputSchema["properties"]["image"]
    assert image["type"] == "string" and "data:image/" in image["description"]  # an image goes in as a URL
    print(f"\n{len(tools)} tools: {', '.join(sorted(tools))}")


@pytest.mark.app
def test_text_to_image_returns_an_image_and_reports_progress(app_server: AppServer) -> None:
    progress: list = []
    result = call_tool(app_server.url, "text_to_image", {"prompt": "a red fox in the snow", "seed": 3, "width": 96,
                                                          "height": 64, "steps": 2}, progress=progress)
    assert not result.isError, texts(result)
    (picture,) = images(result)  # image content, not only a URL
    assert picture.format == "PNG" and picture.size == (96, 64)
    assert any(t.startswith("Image URL: http://127.0.0.1:") for t in texts(result))
    metadata = next(j for j in json_texts(result) if isinstance(j, dict) and "prompt" in j)  # JSON, not repr
    assert metadata["prompt"] == "a red fox in the snow" and metadata["seed"] == 3
    messages = [m for _, _, m in progress]
    assert "Denoising step 1/2 (50%)" in messages, messages  # the zoo's own step descriptions reach the client
    assert [v for v, _, _ in progress] == sorted(v for v, _, _ in progress) and len(progress) >= 4
    print(f"\nprogress: {messages}")


@pytest.mark.app
def test_an_image_goes_in_as_a_data_url_and_limits_apply(app_server: AppServer, tmp_path: Path) -> None:
    from PIL import Image

    from samples import huge_png

    png = tmp_path / "picture.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png)
    result = call_tool(app_server.url, "image_classification", {"image": data_url(png, "image/png"), "top_k": 2})
    assert not result.isError, texts(result)
    labels = next(j for j in json_texts(result) if isinstance(j, dict) and "confidences" in j)
    assert len(labels["confidences"]) == 2
    details = next(j for j in json_texts(result) if isinstance(j, dict) and "image_size" in j)
    assert details["image_size"] == [64, 48]  # the picture sent is the one classified
    huge = huge_png(tmp_path / "huge.png", 4000, 3000)
    refused = call_tool(app_server.url, "image_classification", {"image": data_url(huge, "image/png")})
    assert refused.isError and "ZOO_MAX_IMAGE_SIDE" in " ".join(texts(refused))


@pytest.mark.app
def test_speech_comes_back_as_audio_content(app_server: AppServer) -> None:
    result = call_tool(app_server.url, "text_to_speech", {"text": "Hello from the zoo."})
    assert not result.isError, texts(result)
    (audio,) = [c for c in result.content if c.type == "audio"]
    assert audio.mimeType in ("audio/wav", "audio/x-wav")
    with wave.open(io.BytesIO(base64.b64decode(audio.data))) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() > 1000
    assert any("/gradio_api/file=" in t and t.endswith(".wav") for t in texts(result))  # and its URL
    details = next(j for j in json_texts(result) if isinstance(j, dict) and "sample_rate" in j)
    assert details["sample_rate"] == 16000


@pytest.mark.app
def test_a_bad_value_comes_back_as_a_tool_error_with_the_fix(app_server: AppServer) -> None:
    result = call_tool(app_server.url, "text_generation", {"prompt": "hi", "max_new_tokens": 5000})
    assert result.isError
    message = " ".join(texts(result))
    assert "max_new_tokens" in message and "between 1 and 1024" in message


# ---------------------------------------------------------------------------- real models


@pytest.mark.real
@pytest.mark.app
def test_text_generation_answers_over_mcp(real_app_server: AppServer) -> None:
    result = call_tool(real_app_server.url, "text_generation",
                       {"prompt": "What is the capital of France?", "temperature": 0, "max_new_tokens": 24})
    assert not result.isError, texts(result)
    assert "Paris" in texts(result)[0], texts(result)
    print(f"\ntext_generation over MCP: {texts(result)[0]!r}")


@pytest.mark.real
@pytest.mark.app
def test_speech_goes_in_as_a_data_url(real_app_server: AppServer, tmp_path: Path) -> None:
    from speech import SENTENCES, synthesise
    from zoo import audio

    wav = synthesise(SENTENCES[1], tmp_path / "window.wav")
    result = call_tool(real_app_server.url, "automatic_speech_recognition",
                       {"audio": data_url(wav, "audio/wav"), "model": "packaged:whisper-tiny.en"})
    assert not result.isError, texts(result)
    assert {"remember", "close", "window", "house"} <= set(audio.normalise_words(texts(result)[0]))


# ---------------------------------------------------------------------------- the operator's choices


def _tiny_env(**extra: str) -> dict[str, str]:
    return clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_PLUGINS="text-generation,text-to-image,fine-tune", **extra)


@pytest.mark.app
def test_zoo_mcp_tools_picks_the_tools(app_factory, model_cache_dir: Path) -> None:  # noqa: ANN001
    server = app_factory(base_env=_tiny_env(ZOO_CACHE_DIR=str(model_cache_dir),
                                            ZOO_MCP_TOOLS="text_generation,fine_tune"))
    assert set(list_tools(server.url)) == {"text_generation", "fine_tune"}
    refused = call_tool(server.url, "text_to_image", {"prompt": "a fox"})
    assert refused.isError and "Unknown tool" in " ".join(texts(refused))
    assert "* MCP tools (2): fine_tune, text_generation" in server.log_text()  # the startup log says which


@pytest.mark.app
def test_an_unknown_tool_name_stops_the_start_with_the_known_ones(app_factory, model_cache_dir: Path) -> None:  # noqa: ANN001
    with pytest.raises(AssertionError) as err:
        app_factory(base_env=_tiny_env(ZOO_CACHE_DIR=str(model_cache_dir), ZOO_MCP_TOOLS="text_generation,txt2img"))
    log = str(err.value)
    assert "exited with" in log and "ZOO_MCP_TOOLS" in log and "txt2img" in log
    assert "fine_tune, text_generation, text_to_image" in log


@pytest.mark.app
def test_zoo_mcp_0_turns_it_off(app_factory, model_cache_dir: Path) -> None:  # noqa: ANN001
    server = app_factory(base_env=_tiny_env(ZOO_CACHE_DIR=str(model_cache_dir), ZOO_MCP="0"))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + "gradio_api/mcp/schema", timeout=10)
    assert err.value.code == 404
    info = json.loads(urllib.request.urlopen(server.url + "gradio_api/info", timeout=10).read())
    assert "/text_generation" in info["named_endpoints"]  # the HTTP API stays
