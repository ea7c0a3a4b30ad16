"""Ask about an image (plugins/image_text_to_text.py): the tiny VLM, "caption, then answer", the tab, API and CLI.

Fast tier: the tiny random-weight Idefics3 answers through the worker, a second turn sees the first,
"caption, then answer" runs the captioner and the chat model (tiny), labels and errors. Real tier: the
packaged SmolLM2 answers from the caption it got. App and browser tiers: the endpoint and the tab.
The stub plugins live at module level: a zoo may import a plugin by module and name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from plugins.chat import Chat
from plugins.image_text_to_text import (CAPTION, CAPTION_PROMPT, CAPTION_SYSTEM_PROMPT, VLM, ImageTextToText,
                                        vlm_messages)
from plugins.image_to_text import ImageToText
from zoo import cli
from zoo.errors import InvalidInput, ModelNotAllowed, UnknownPlugin
from zoo.i18n import english
from zoo.plugin import Image, Json, Plugin, RunContext, Text
from zoo.registry import Registry, declaration_problems
from zoo.runner import Zoo
from zoo.settings import Settings
from zoo.ui import sample_image

TASK = "image-text-to-text"
TINY_VLM = "tiny:image-text-to-text"


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The app's drawn sample picture (sky, sun, hill, house), as a PNG path."""
    return sample_image(tmp_path_factory.mktemp("picture"))


def square(path: Path, colour: tuple[int, int, int]) -> str:
    """A plain square of one colour, as a PNG path."""
    from PIL import Image as PILImage

    PILImage.new("RGB", (64, 64), colour).save(path)
    return str(path)


class EchoChat(Plugin):
    """A stand-in chat model: it replies with the message it got, and records its values."""

    api_version = 2
    task = "conversational"
    title = "Echo chat"
    models = None
    inputs = (Text("message"), Json("history", default=[]), Text("system_prompt", required=False))
    options = (Json("max_new_tokens"), Json("temperature"), Json("repetition_penalty"))
    outputs = (Text("reply"), Json("history"))
    seen: list[dict[str, Any]] = []

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        EchoChat.seen.append(dict(values))
        return {"reply": values["message"], "history": []}


COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220)}


class ColourCaptioner(Plugin):
    """A captioner that sees one thing: the colour of a plain picture ("a plain red square"), from its pixels."""

    api_version = 2
    task = "image-to-text"
    title = "Colour captioner"
    models = None
    inputs = (Image("image"),)
    outputs = (Text("caption"), Json("details"))

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        pixel = values["image"].convert("RGB").getpixel((10, 10))
        name = min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], pixel)))
        return {"caption": f"a plain {name} square", "details": {}}


def registry(*plugins: type[Plugin]) -> Registry:
    reg = Registry()
    for cls in plugins:
        reg.register(cls, "tests.test_image_text_to_text")
    return reg


@pytest.fixture
def echo_zoo(settings: Settings) -> Zoo:
    """The plugin, the tiny captioner, and a chat that echoes what it got."""
    EchoChat.seen.clear()
    return Zoo(settings.replace(tiny=True), registry=registry(ImageTextToText, ImageToText, EchoChat))


# --------------------------------------------------------------------------- the declaration and the tiny model


def test_declaration_model_and_uses() -> None:
    assert declaration_problems(ImageTextToText) == []
    assert ImageTextToText.uses == {"captioner": "image-to-text", "chat": "conversational"}
    assert ImageTextToText.models.online == "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert ImageTextToText.models.offline == ImageTextToText.models.tiny == TINY_VLM
    assert [f.name for f in ImageTextToText.fields()] == [
        "image", "message", "history", "mode", "max_new_tokens", "temperature", "repetition_penalty",
        "captioner_model", "chat_model"]
    plugin = ImageTextToText()
    # auto: a real VLM runs itself; a tiny stand-in gives way to caption-then-answer (no model: ref None).
    assert plugin.model_for({"mode": "auto"}, "HuggingFaceTB/SmolVLM-256M-Instruct")[0] == \
        "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert plugin.model_for({"mode": "auto"}, TINY_VLM)[0] is None
    assert plugin.model_for({"mode": VLM}, TINY_VLM)[0] == TINY_VLM
    assert plugin.model_for({"mode": CAPTION, "model": "HuggingFaceTB/SmolVLM-256M-Instruct"}, TINY_VLM)[0] is None


def test_tiny_vlm_builds_offline_as_smolvlms_architecture(tmp_path: Path) -> None:
    import os

    from transformers import AutoProcessor

    from zoo.tiny import build

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    out = build("image-text-to-text", tmp_path / "vlm")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "idefics3" and config["architectures"] == ["Idefics3ForConditionalGeneration"]
    processor = AutoProcessor.from_pretrained(out)
    assert type(processor).__name__ == "Idefics3Processor"
    prompt = processor.apply_chat_template(vlm_messages([], "What is this?"), add_generation_prompt=True)
    assert prompt == "<|im_start|>User:<image>What is this?<end_of_utterance>\nAssistant:"  # SmolVLM's format
    again = build("image-text-to-text", tmp_path / "again")
    assert (out / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()  # seeded


def test_picture_goes_with_the_first_question() -> None:
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is it?"},
               {"role": "assistant", "content": "A house."}]
    messages = vlm_messages(history, "What colour is the roof?")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": "What is it?"}]
    assert messages[3]["content"] == [{"type": "text", "text": "What colour is the roof?"}]
    assert vlm_messages([], "Hi")[0]["content"][0] == {"type": "image"}


# --------------------------------------------------------------------------- fast tier


def test_tiny_vlm_answers_through_the_worker_and_streams(tiny_zoo: Zoo, picture: str) -> None:
    ctx = RunContext()
    outs = list(tiny_zoo.stream(TASK, {"image": picture, "message": "What is in this picture?", "mode": VLM,
                                       "max_new_tokens": 8}, ctx))
    final = outs[-1]
    assert ctx.model_ref == TINY_VLM and ctx.is_tiny
    assert len(outs) >= 3, outs  # it streams: one result a decoded piece, then the final one
    assert final["answer"] == outs[-2]["answer"].strip() and isinstance(final["answer"], str)
    assert final["history"] == [{"role": "user", "content": "What is in this picture?"},
                                {"role": "assistant", "content": final["answer"]}]
    details = final["details"]
    assert details["mode"] == VLM and details["models"] == {"vlm": TINY_VLM}
    assert "Tiny random-weight vision-language model: the answer is noise" in details["note"]
    # The model ran where a tab's model runs: in a worker process under process isolation.
    assert [key[-1] == "worker" for key in tiny_zoo.models.cache.keys()] == [tiny_zoo.isolation == "process"]
    # Greedy decoding: the same question gives the same answer.
    assert tiny_zoo.run(TASK, image=picture, message="What is in this picture?", mode=VLM,
                        max_new_tokens=8)["answer"] == final["answer"]


def test_second_turn_sees_the_first(tiny_zoo: Zoo, picture: str) -> None:
    first = tiny_zoo.run(TASK, image=picture, message="What is in this picture?", mode=VLM, max_new_tokens=6)
    second = tiny_zoo.run(TASK, image=picture, message="What colour is the roof?", history=first["history"],
                          mode=VLM, max_new_tokens=6)
    assert second["history"][:2] == first["history"] and len(second["history"]) == 4
    assert second["history"][2:] == [{"role": "user", "content": "What colour is the roof?"},
                                     {"role": "assistant", "content": second["answer"]}]
    # The earlier turn is in the prompt: the picture's tokens once, both questions and the first answer.
    assert second["details"]["prompt_tokens"] > first["details"]["prompt_tokens"] + 5


def test_caption_then_answer_runs_the_captioner_and_the_chat_model(tiny_zoo: Zoo, picture: str) -> None:
    caption = tiny_zoo.run("image-to-text", image=picture)["caption"].strip()
    steps: list[str] = []
    ctx = RunContext(on_progress=lambda fraction, desc: steps.append(desc))
    out = tiny_zoo.run(TASK, ctx, image=picture, message="What is in this picture?", max_new_tokens=6)  # auto
    details = out["details"]
    assert details["mode"] == CAPTION and details["caption"] == caption  # what the captioning tab says
    assert details["models"] == {"captioner": "tiny:image-to-text", "chat": "tiny:causal-lm"}
    assert "Tiny random-weight model for captioner, chat: the caption is noise" in details["note"]
    assert ctx.model_ref == ""  # it ran in the server, as a composite: no model of its own
    assert "Captioner: Finding tiny:image-to-text" in steps and "Chat: Finding tiny:causal-lm" in steps
    assert out["history"] == [{"role": "user", "content": "What is in this picture?"},
                              {"role": "assistant", "content": out["answer"]}]
    # Picked part models reach the parts.
    picked = tiny_zoo.run(TASK, image=picture, message="Hi", mode=CAPTION, chat_model="tiny:causal-lm",
                          captioner_model="tiny:image-to-text", max_new_tokens=2)
    assert picked["details"]["models"] == {"captioner": "tiny:image-to-text", "chat": "tiny:causal-lm"}


def test_the_chat_model_gets_the_caption_and_the_plain_history(echo_zoo: Zoo, picture: str) -> None:
    caption = echo_zoo.run("image-to-text", image=picture)["caption"].strip().rstrip(". ")
    history = [{"role": "user", "content": "Is it a house?"}, {"role": "assistant", "content": "Yes."}]
    out = echo_zoo.run(TASK, image=picture, message="What colour is it?", history=history, mode=CAPTION)
    sent = EchoChat.seen[-1]
    assert sent["message"] == CAPTION_PROMPT.format(caption=caption, question="What colour is it?")
    assert sent["history"] == history and sent["system_prompt"] == CAPTION_SYSTEM_PROMPT
    assert (sent["temperature"], sent["repetition_penalty"]) == (0.0, 1.0)  # greedy, repeating the description
    assert out["answer"] == sent["message"]
    # The returned history holds the user's own question, not the description the chat model got.
    assert out["history"] == [*history, {"role": "user", "content": "What colour is it?"},
                              {"role": "assistant", "content": out["answer"]}]


def test_errors_name_the_value_and_the_fix(tiny_zoo: Zoo, picture: str, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match=r"`image` must be an image, but got 'NoneType'") as err:
        tiny_zoo.run(TASK, message="What is this?")
    assert "upload a PNG" in err.value.fix
    with pytest.raises(InvalidInput, match=r"`history\[0\]\.role` must be one of user, assistant, system"):
        tiny_zoo.run(TASK, image=picture, message="Hi", history=[{"role": "robot", "content": "beep"}])
    with pytest.raises(InvalidInput, match=r"`history` must be a JSON list of messages") as err:
        tiny_zoo.run(TASK, image=picture, message="Hi", history="not json")
    assert "[] to start a chat" in err.value.fix
    with pytest.raises(InvalidInput, match=r"`message` must not be empty"):
        tiny_zoo.run(TASK, image=picture, message="  ")
    with pytest.raises(InvalidInput, match=r"`mode` must be one of auto, vision-language model, caption, then answer"):
        tiny_zoo.run(TASK, image=picture, message="Hi", mode="telepathy")
    # Both kinds of model parameter are vetted, whichever mode runs.
    strict = Zoo(settings.replace(tiny=True, allow_custom_models=False))
    with pytest.raises(ModelNotAllowed, match=r"Custom model `someone/vlm` is not allowed"):
        strict.run(TASK, image=picture, message="Hi", mode=CAPTION, model="someone/vlm")
    with pytest.raises(ModelNotAllowed, match=r"`captioner_model` \(image-to-text\): Custom model `someone/blip`"):
        strict.run(TASK, image=picture, message="Hi", mode=VLM, captioner_model="someone/blip")


def test_without_its_parts_the_vlm_still_runs(settings: Settings, picture: str) -> None:
    zoo = Zoo(settings.replace(tiny=True), registry=registry(ImageTextToText))
    out = zoo.run(TASK, image=picture, message="Hi", mode=VLM, max_new_tokens=2)
    assert out["details"]["mode"] == VLM
    with pytest.raises(UnknownPlugin, match=r"its part `captioner` uses task `image-to-text`, and no plugin"):
        zoo.run(TASK, image=picture, message="Hi", mode=CAPTION)


def test_tab_labels_pickers_and_endpoint(settings: Settings) -> None:
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry(ImageTextToText, ImageToText, Chat))
    demo = build_demo(zoo)
    info = demo.get_api_info()["named_endpoints"]["/image_text_to_text"]
    assert [p["parameter_name"] for p in info["parameters"]] == [
        "image", "message", "history", "mode", "max_new_tokens", "temperature", "repetition_penalty",
        "captioner_model", "chat_model", "model"]
    config = demo.get_config_file()
    text = json.dumps(config, default=str)  # a Chatbot prop holds a callback
    assert "Tiny random-weight model</b> (<code>tiny:image-text-to-text</code>)" in text  # the tab note
    assert "Without a model of its own it uses other tabs (captioner: Image captioning, chat: Chat)" in text
    pickers = {english(c["props"].get("label")): c["props"] for c in config["components"] if c.get("type") == "dropdown"}
    assert pickers["Model"]["value"] == TINY_VLM
    assert tuple(pickers["Captioner model"]["choices"][0]) == ("default (tiny:image-to-text)", "")
    assert tuple(pickers["Chat model"]["choices"][0]) == ("default (tiny:causal-lm)", "")
    assert pickers["Mode"]["value"] == "auto"
    assert "itt-image" in text and "itt-conversation" in text and f"zoo-{TASK}-examples" in text


def test_cli_run_and_list(settings: Settings, picture: str, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(Registry, "discover",
                        classmethod(lambda cls, **kwargs: registry(ImageTextToText, ImageToText, Chat)))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("ZOO_ISOLATION", "inline")
    assert cli.main(["--tiny", "run", TASK, "--image", picture, "--message", "What is in this picture?",
                     "--mode", VLM, "--max-new-tokens", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["details"]["mode"] == VLM and out["history"][0] == {"role": "user",
                                                                   "content": "What is in this picture?"}
    assert cli.main(["--tiny", "run", TASK, "--image", picture, "--message", "And then?", "--history",
                     json.dumps(out["history"]), "--chat-model", "tiny:causal-lm", "--max-new-tokens", "4"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["details"]["mode"] == CAPTION and len(again["history"]) == 4
    assert cli.main(["--tiny", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if f" {TASK} " in x)
    assert line.startswith("ok ") and TINY_VLM in line
    assert "without it uses captioner: image-to-text, chat: conversational" in line


# --------------------------------------------------------------------------- real tier


@pytest.mark.real
def test_real_chat_model_answers_from_the_caption_offline(real_zoo: Zoo, picture: str) -> None:
    """Offline the VLM is the tiny stand-in, so `auto` captions, and the packaged SmolLM2 answers."""
    chat_default = real_zoo.default_model(real_zoo.registry.get("conversational"))
    out = real_zoo.run(TASK, image=picture, message="Repeat the description.", max_new_tokens=64)
    details = out["details"]
    assert details["mode"] == CAPTION
    assert details["models"] == {"captioner": "tiny:image-to-text", "chat": chat_default}
    assert not chat_default.startswith("tiny:")
    assert "Tiny random-weight model for captioner" in details["note"]  # only the captioner is a stand-in
    # Asked to repeat the description, greedy SmolLM2 quotes the caption it got: the tiny captioner's
    # noise words, which no answer made up about the picture would hold.
    caption_words = re.findall(r"[a-z]{3,}", details["caption"].lower())
    answer_words = set(re.findall(r"[a-z]{3,}", out["answer"].lower()))
    assert len(caption_words) >= 8
    assert sum(w in answer_words for w in caption_words) >= 0.8 * len(caption_words), (details["caption"], out)


@pytest.mark.real
@pytest.mark.parametrize("colour", list(COLOURS))
def test_real_chat_model_names_the_colour_the_caption_gave(real_zoo: Zoo, colour: str, tmp_path: Path) -> None:
    """A captioner that names a plain picture's colour: the real chat model's answer names that colour."""
    zoo = Zoo(real_zoo.settings, registry=registry(ImageTextToText, ColourCaptioner, Chat), models=real_zoo.models)
    out = zoo.run(TASK, image=square(tmp_path / f"{colour}.png", COLOURS[colour]),
                  message="What colour is the square?", max_new_tokens=32)
    assert out["details"]["caption"] == f"a plain {colour} square"
    assert out["details"]["models"]["chat"] == real_zoo.default_model(real_zoo.registry.get("conversational"))
    others = set(COLOURS) - {colour}
    words = set(re.findall(r"[a-z]+", out["answer"].lower()))
    assert colour in words and not words & others, out["answer"]


# --------------------------------------------------------------------------- app tier


@pytest.mark.app
def test_endpoint_over_http(app_server: Any, picture: str) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    answer, history, details = client.predict(image=handle_file(picture), message="What is in this picture?",
                                              history=[], mode=VLM, max_new_tokens=6, api_name="/image_text_to_text")
    assert isinstance(answer, str) and details["mode"] == VLM and details["models"] == {"vlm": TINY_VLM}
    assert history == [{"role": "user", "content": "What is in this picture?"},
                       {"role": "assistant", "content": answer}]
    answer2, history2, details2 = client.predict(image=handle_file(picture), message="And the sky?",
                                                 history=history, max_new_tokens=4, api_name="/image_text_to_text")
    assert details2["mode"] == CAPTION and details2["models"]["captioner"] == "tiny:image-to-text"
    assert history2[:2] == history and history2[3] == {"role": "assistant", "content": answer2}
    with pytest.raises(Exception, match=r"history\[0\]\.role"):
        client.predict(image=handle_file(picture), message="Hi", history=[{"role": "robot", "content": "x"}],
                       api_name="/image_text_to_text")


# --------------------------------------------------------------------------- browser tier


@pytest.fixture(scope="module")
def vision_app(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`python app.py` on the real offline defaults, serving this tab and the two it uses."""
    from servers import clean_env, start_app

    env = clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="0", ZOO_CACHE_DIR=str(model_cache_dir),
                    ZOO_PLUGINS=f"{TASK},image-to-text,conversational")
    with start_app(base_env=env, log=tmp_path_factory.mktemp("vision-app") / "app.log") as server:
        yield server


def check_image_question(z: Any, panel: Any, plugin: Any = None, tmp_path: Any = None) -> None:
    """The tab's check (fits tests/test_browser.py CHECKS): an example's picture and question get an answer."""
    z.load_example(panel, 0, texts=[ImageTextToText.examples[0]["message"]],
                   media=[panel.locator("#itt-image")])
    panel.locator("#itt-ask").click()
    bot = panel.locator("#itt-conversation [data-testid=bot]")
    z.wait_done(panel, lambda: bot.count() > 0 and bool(bot.last.inner_text().strip()), timeout=180)
    assert panel.locator("#itt-conversation [data-testid=user]").last.inner_text().strip() == \
        ImageTextToText.examples[0]["message"]
    assert panel.locator("#itt-message textarea").input_value() == ""
    details = panel.locator("#itt-details").inner_text()
    assert "mode" in details and "models" in details, details


@pytest.mark.browser
def test_an_image_question_gets_an_answer_in_the_tab(vision_app: Any) -> None:
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, PageErrors, ZooPage

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            errors = PageErrors()
            errors.attach(page)
            z = ZooPage(page, vision_app.url).open()
            panel = z.open_tab(ImageTextToText.title, f"tab-{TASK}")
            assert "Without a model of its own it uses other tabs" in panel.inner_text()
            check_image_question(z, panel)
            details = panel.locator("#itt-details").inner_text()
            assert CAPTION in details and "captioner" in details  # offline: auto captions, then answers
            answer = panel.locator("#itt-conversation [data-testid=bot]").last.inner_text().strip()
            assert len(answer.split()) >= 3, answer  # the packaged chat model's sentence
            # A follow-up question is a second turn of the same conversation.
            box = panel.locator("#itt-message textarea")
            box.fill("Is there a house?")
            box.press("Enter")
            bot = panel.locator("#itt-conversation [data-testid=bot]")
            z.wait_done(panel, lambda: bot.count() == 2 and bool(bot.last.inner_text().strip()), timeout=180)
            assert panel.locator("#itt-conversation [data-testid=user]").count() == 2
            z.screenshot(f"vision-{TASK}")
            assert not errors.entries, errors.entries
        finally:
            browser.close()
