"""Composition: plugins without a model of their own, and composites that call other plugins with ctx.run.

The test plugins live at module level: a worker process imports a plugin by module and name
(tests/test_workers.py), and the child plugins here run in workers under ZOO_ISOLATION=process.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from speech import synthesise
from zoo import cli
from zoo.errors import CallCycle, Cancelled, InvalidInput, ModelNotAllowed, PluginLoadError, UnknownPlugin
from zoo.i18n import english
from zoo.plugin import Audio, Choice, Int, Json, ModelChoices, Plugin, Text
from zoo.registry import Registry, declaration_problems
from zoo.runner import Zoo
from zoo.settings import Settings

from plugins.automatic_speech_recognition import AutomaticSpeechRecognition
from plugins.summarization import Summarization


class WordCount(Plugin):
    """A pure function: no model at all."""

    api_version = 2
    task = "word-count"
    title = "Word count"
    description = "Counts the words of a text."
    models = None
    inputs = (Text("text", lines=4),)
    outputs = (Json("count"), Text("longest"))
    examples = ({"text": "one two three"},)

    def run(self, model, values, ctx):
        assert model is None and ctx.model_ref == ""
        words = values["text"].split()
        return {"count": len(words), "longest": max(words, key=len)}


class DescribeAudio(Plugin):
    """Speech recognition, then a summary of the transcript: two tasks, a model picker for each."""

    api_version = 2
    task = "describe-audio"
    title = "Describe this audio"
    description = "Transcribes a recording, then summarizes what was said."
    models = None
    uses = {"transcriber": "automatic-speech-recognition", "summarizer": "summarization"}
    inputs = (Audio("audio"),)
    options = (Int("max_length", 24, 2, 128),)
    outputs = (Text("transcript"), Text("summary"), Json("models"))

    def run(self, model, values, ctx):
        heard = ctx.run("transcriber", audio=values["audio"], timestamps=False)
        ctx.progress(0.5, "Transcribed")
        summary = ctx.run("summarizer", text=heard["text"], min_length=1, max_length=values["max_length"], num_beams=1)
        return {"transcript": heard["text"], "summary": summary["summary"], "models": dict(ctx.models_used)}


class ModelEcho(Plugin):
    """A child with a model that reports which model it ran on, streaming one step at a time."""

    api_version = 2
    task = "model-echo"
    title = "Model echo"
    model_kind = "text-classification"
    models = ModelChoices(online="tiny:text-classification", tiny="tiny:text-classification",
                          known=("tiny:token-classification",))
    inputs = (Text("text"),)
    options = (Int("steps", 1, 1, 5000),)
    outputs = (Text("model"), Json("steps"))

    def model_for(self, values, default):
        ref = values.get("model") or default
        return ref, ref.removeprefix("tiny:")  # a tiny model is the kind it names

    def stream(self, model, values, ctx):
        for step in range(values["steps"]):
            ctx.progress(step / values["steps"], f"step {step + 1}")
            yield {"model": f"{ctx.model_ref} ({model.family})", "steps": step + 1}
            if values["steps"] > 1:
                time.sleep(0.01)


class EchoUser(Plugin):
    """A composite over ModelEcho: by its part (the picker's model) or by task name with an explicit model."""

    api_version = 2
    task = "echo-user"
    title = "Echo user"
    models = None
    uses = {"echo": "model-echo"}
    inputs = (Text("text", required=False),)  # the child checks the text: a blank one is its error
    options = (Int("steps", 1, 1, 5000), Choice("call", "part", choices=("part", "task", "self", "typo")),
               Text("model_for_task", "tiny:token-classification", required=False))
    outputs = (Text("model"), Json("steps"))
    examples = ({"text": "hi", "echo_model": "tiny:token-classification"},)

    def stream(self, model, values, ctx):
        if values["call"] == "part":
            yield from ctx.stream("echo", text=values["text"], steps=values["steps"])
        elif values["call"] == "task":
            yield ctx.run("model-echo", text=values["text"], model=values["model_for_task"])
        elif values["call"] == "self":
            yield ctx.run("echo-user", text=values["text"])
        else:
            yield ctx.run("model-ecco", text=values["text"])


class Orphan(Plugin):
    """A composite whose part's task is not registered."""

    api_version = 2
    task = "orphan"
    title = "Orphan"
    models = None
    uses = {"helper": "no-such-task"}
    inputs = (Text("text"),)
    outputs = (Text("text"),)

    def run(self, model, values, ctx):
        return ctx.run("helper", text=values["text"])


class PingA(Plugin):
    """Half of a cycle: uses ping-b, which uses ping-a."""

    api_version = 2
    task = "ping-a"
    title = "Ping A"
    models = None
    uses = {"other": "ping-b"}
    inputs = (Text("text"),)
    outputs = (Text("text"),)

    def run(self, model, values, ctx):
        return ctx.run("other", text=values["text"])


class PingB(PingA):
    """The other half of the cycle."""

    task = "ping-b"
    title = "Ping B"
    uses = {"other": "ping-a"}


class HybridEcho(Plugin):
    """A plugin with a model of its own that also declares `uses`: `how="parts"` runs it as a composite."""

    api_version = 2
    task = "hybrid-echo"
    title = "Hybrid echo"
    model_kind = "text-classification"
    models = ModelChoices(online="tiny:text-classification", tiny="tiny:text-classification",
                          known=("tiny:token-classification",))
    uses = {"echo": "model-echo"}
    inputs = (Text("text"),)
    options = (Choice("how", "model", choices=("model", "parts")),)
    outputs = (Text("model"), Json("steps"))
    examples = ({"text": "hi", "how": "parts", "echo_model": "tiny:token-classification"},)

    def model_for(self, values, default):
        ref = values.get("model") or default
        return (None if values.get("how") == "parts" else ref), ref.removeprefix("tiny:")

    def stream(self, model, values, ctx):
        if model is None:  # no model picked: a composite, in the server
            assert ctx.model_ref == ""
            yield from ctx.stream("echo", text=values["text"])
        else:  # its own model, where a tab's model runs
            yield {"model": f"{ctx.model_ref} ({model.family}) own", "steps": 0}


PLUGINS = (WordCount, DescribeAudio, ModelEcho, EchoUser, AutomaticSpeechRecognition, Summarization)


def registry(*extra: type[Plugin]) -> Registry:
    """The test plugins and the two built-in tasks the composite uses, registered explicitly."""
    reg = Registry()
    for cls in (*extra, *PLUGINS):  # composites first: the order of registration must not matter
        reg.register(cls, "tests.test_composition")
    return reg


@pytest.fixture(params=["process", "inline"])
def zoo(request: pytest.FixtureRequest, settings: Settings) -> Zoo:
    """A tiny zoo of the test plugins, with models in worker processes and then in this process."""
    return Zoo(settings.replace(tiny=True, isolation=request.param), registry=registry())


@pytest.fixture
def process_zoo(settings: Settings) -> Zoo:
    """The same zoo with models in worker processes, as the server runs them."""
    return Zoo(settings.replace(tiny=True, isolation="process"), registry=registry())


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A spoken sentence (espeak-ng)."""
    return str(synthesise("The weather today is sunny with a light breeze from the west.",
                          tmp_path_factory.mktemp("speech") / "weather.wav"))


# --------------------------------------------------------------------------- model-less


def test_model_less_plugin_registers_and_runs_with_no_model_parameter(process_zoo: Zoo) -> None:
    plugin = process_zoo.registry.get("word-count")
    assert declaration_problems(WordCount) == []
    assert [f.name for f in plugin.fields()] == ["text"]
    assert process_zoo.default_model(plugin) == "" and process_zoo.model_choices(plugin) == []
    assert process_zoo.check(plugin, {"text": "a b"}) == {"text": "a b"}  # no `model` added
    assert process_zoo.run("word-count", text="the quick brown fox") == {"count": 4, "longest": "quick"}
    with pytest.raises(InvalidInput, match=r"`model` is not a parameter of word-count") as err:
        process_zoo.run("word-count", text="a", model="tiny:causal-lm")
    assert err.value.fix == "use: text"
    with pytest.raises(ModelNotAllowed, match="runs no model of its own"):
        process_zoo.check_model(plugin, "tiny:causal-lm")
    assert process_zoo.models.cache.keys() == []  # nothing was loaded, in the server or a worker


def test_declarations_of_model_less_and_composite_plugins() -> None:
    assert declaration_problems(DescribeAudio) == [] and declaration_problems(EchoUser) == []

    class KindWithoutModels(WordCount):
        model_kind = "causal-lm"

    class UsesWithModel(ModelEcho):
        uses = {"helper": "summarization"}

    class CallsItself(WordCount):
        uses = {"me": "word-count"}

    class Clash(WordCount):
        uses = {"text": "summarization"}
        options = (Text("text_model"),)

    class BadExample(EchoUser):
        examples = ({"text": "hi", "model": "tiny:causal-lm"}, {"text": "hi", "other_model": "x"})

    assert "`model_kind` is 'causal-lm' but `models` is None" in " ".join(declaration_problems(KindWithoutModels))
    assert declaration_problems(UsesWithModel) == []  # a hybrid: a model, and parts when it runs without it
    assert "calls the plugin's own task `word-count`" in " ".join(declaration_problems(CallsItself))
    assert "clash with the part pickers" in " ".join(declaration_problems(Clash))
    assert declaration_problems(BadExample) == ["example uses unknown fields ['model']",
                                                "example uses unknown fields ['other_model']"]
    with pytest.raises(PluginLoadError, match="model_kind"):
        Registry().register(KindWithoutModels)


# --------------------------------------------------------------------------- composite


def test_composite_returns_what_the_called_plugins_return(zoo: Zoo, speech: str) -> None:
    plugin = zoo.registry.get("describe-audio")
    assert [f.name for f in plugin.fields()] == ["audio", "max_length", "transcriber_model", "summarizer_model"]
    heard = zoo.run("automatic-speech-recognition", audio=speech, timestamps=False)["text"]
    summary = zoo.run("summarization", text=heard, min_length=1, max_length=24, num_beams=1)["summary"]
    assert heard.strip() and summary.strip()

    steps: list[str] = []
    from zoo.plugin import RunContext

    ctx = RunContext(on_progress=lambda fraction, desc: steps.append(desc))
    out = zoo.run("describe-audio", ctx=ctx, audio=speech)
    assert out["transcript"] == heard and out["summary"] == summary
    assert out["models"] == {"transcriber": "tiny:automatic-speech-recognition",
                             "summarizer": "tiny:text2text-generation"}
    # Each part's progress is the parent's, prefixed with the part.
    assert "Transcriber: Finding tiny:automatic-speech-recognition" in steps
    assert "Summarizer: Finding tiny:text2text-generation" in steps
    assert any(s.startswith("Transcriber: Transcribing") for s in steps), steps
    assert steps.index("Transcribed") < steps.index("Summarizer: Finding tiny:text2text-generation")
    # The parts ran where a tab runs them: in workers under process isolation, sharing the cache's entries.
    keys = zoo.models.cache.keys()
    assert len(keys) == 2 and all((key[-1] == "worker") == (zoo.isolation == "process") for key in keys)


def test_part_picker_model_reaches_the_called_task(zoo: Zoo) -> None:
    assert zoo.run("echo-user", text="hi") == {"model": "tiny:text-classification (transformers)", "steps": 1}
    picked = zoo.run("echo-user", text="hi", echo_model="tiny:token-classification")
    assert picked["model"] == "tiny:token-classification (transformers)"
    # By task name, with the model given in the call.
    by_task = zoo.run("echo-user", text="hi", call="task", model_for_task="tiny:token-classification")
    assert by_task["model"] == "tiny:token-classification (transformers)"


def test_part_model_is_vetted_by_the_called_task(settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, allow_custom_models=False), registry=registry())
    with pytest.raises(ModelNotAllowed, match=r"`echo_model` \(model-echo\): Custom model `someone/else` is not allowed"):
        zoo.run("echo-user", text="hi", echo_model="someone/else")
    with pytest.raises(ModelNotAllowed, match="Local path `/tmp/x` cannot be chosen"):
        zoo.run("echo-user", text="hi", echo_model="/tmp/x")
    with pytest.raises(ModelNotAllowed, match="Custom model `someone/else`"):  # an explicit model= is vetted too
        zoo.run("echo-user", text="hi", call="task", model_for_task="someone/else")
    # Listed models of the called task pass; the checked value is the model that will run.
    checked = zoo.check(zoo.registry.get("echo-user"), {"text": "hi"})
    assert checked["echo_model"] == "tiny:text-classification" and "model" not in checked


def test_invalid_input_to_the_child_names_the_field(process_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput, match=r"Echo \(model-echo\): `text` must not be empty") as err:
        process_zoo.run("echo-user", text="   ")
    assert err.value.name == "text" and err.value.fix == "type some text"
    with pytest.raises(InvalidInput, match=r"`steps` must be between 1 and 5000"):
        process_zoo.run("echo-user", text="hi", steps=0)  # the composite's own field: its own check


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_cancelling_the_parent_cancels_the_child(settings: Settings, isolation: str) -> None:
    zoo = Zoo(settings.replace(tiny=True, isolation=isolation), registry=registry())
    from zoo.plugin import RunContext

    ctx = RunContext()
    outputs: list[dict[str, Any]] = []
    error: list[BaseException] = []

    def consume() -> None:
        try:
            for out in zoo.stream("echo-user", {"text": "hi", "steps": 5000}, ctx):
                outputs.append(out)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            error.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not outputs and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outputs, error
    stopped_at = time.monotonic()
    ctx.cancel_event.set()
    thread.join(30)
    assert not thread.is_alive()
    assert len(error) == 1 and isinstance(error[0], Cancelled), error
    assert time.monotonic() - stopped_at < 10 and outputs[-1]["steps"] < 5000
    # The child's model is unpinned once its request ended: nothing holds it.
    deadline = time.monotonic() + 10
    while _pinned(zoo) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zoo.models.cache.keys() and not _pinned(zoo)


def _pinned(zoo: Zoo) -> list[Any]:
    cache = zoo.models.cache
    return [key for key in cache.keys() if (entry := cache.entry(key)) is not None and entry.refs]


def test_unknown_task_is_a_clear_error_at_build_and_call_time(settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry(Orphan))
    problem = zoo.composition_problem(zoo.registry.get("orphan"))
    assert isinstance(problem, UnknownPlugin)
    assert "its part `helper` uses task `no-such-task`, and no plugin for `no-such-task` is served here" in str(problem)
    assert "install or enable the plugin for `no-such-task`" in problem.fix and "word-count" in problem.fix
    with pytest.raises(UnknownPlugin, match="no plugin for `no-such-task`"):
        zoo.run("orphan", text="hi")
    # A task named in the call, not in `uses`: the same error, at the call.
    with pytest.raises(UnknownPlugin, match=r"it calls task `model-ecco`.*its parts: echo"):
        zoo.run("echo-user", text="hi", call="typo")


def test_a_plugin_calling_itself_is_refused(settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry(PingA, PingB))
    with pytest.raises(CallCycle, match=r"`echo-user` called `echo-user`, which is already running"):
        zoo.run("echo-user", text="hi", call="self")
    problem = zoo.composition_problem(zoo.registry.get("ping-a"))
    assert isinstance(problem, CallCycle) and "ping-a -> ping-b -> ping-a" in str(problem)
    with pytest.raises(CallCycle, match="ping-a -> ping-b -> ping-a"):
        zoo.run("ping-a", text="hi")


# --------------------------------------------------------------------------- app and CLI


def _endpoint_parameters(demo: Any) -> dict[str, list[str]]:
    info = demo.get_api_info()
    return {name: [p["parameter_name"] for p in endpoint["parameters"]]
            for name, endpoint in info["named_endpoints"].items()}


def test_app_endpoints_and_pickers(settings: Settings) -> None:
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry(Orphan))
    demo = build_demo(zoo)
    params = _endpoint_parameters(demo)
    assert params["/word_count"] == ["text"]
    assert params["/describe_audio"] == ["audio", "max_length", "transcriber_model", "summarizer_model"]
    assert params["/echo_user"] == ["text", "steps", "call", "model_for_task", "echo_model"]
    assert params["/summarization"][-1] == "model"  # single-model plugins keep `model` last
    config = json.dumps(demo.get_config_file(), default=str)  # labels are translation markers (zoo.i18n)
    assert "Model `none`" not in config
    # The part picker: the called task's choices, its default first (as ""), custom ids as that task allows.
    pickers = {english(c["props"].get("label")): c["props"] for c in demo.get_config_file()["components"]
               if c.get("type") == "dropdown"}
    echo = pickers["Echo model"]
    assert [tuple(c) for c in echo["choices"]] == [("default (tiny:text-classification)", ""),
                                                    ("tiny:text-classification", "tiny:text-classification"),
                                                    ("tiny:token-classification", "tiny:token-classification")]
    assert echo["value"] == "" and echo["allow_custom_value"] is True
    assert "Summarizer model" in pickers and "Transcriber model" in pickers
    # The orphan's tab says what is missing and how to fix it.
    assert "no plugin for <code>no-such-task</code> is served here" in config
    # The endpoints' handlers take the parameters in that order; a picked part model reaches the part.
    handlers = {f.api_name: f.fn for f in (demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)}
    assert list(handlers["word_count"]("a bb")) == [(2, "bb")]
    assert list(handlers["echo_user"]("hi", 1, "part", "", "tiny:token-classification")) == [
        ("tiny:token-classification (transformers)", 1)]


def test_cli_list_and_run(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Registry, "discover", classmethod(lambda cls, **kwargs: registry()))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("ZOO_ISOLATION", "inline")
    assert cli.main(["--tiny", "list"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["word-count"].startswith("ok ") and "no model  (runs in the server)" in lines["word-count"]
    assert "no model  (uses transcriber: automatic-speech-recognition, summarizer: summarization)" \
        in lines["describe-audio"]
    assert cli.main(["--tiny", "list", "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)["plugins"]}
    assert rows["word-count"]["default_model"] is None and rows["echo-user"]["uses"] == {"echo": "model-echo"}

    assert cli.main(["--tiny", "run", "word-count", "--text", "a bb ccc"]) == 0
    assert json.loads(capsys.readouterr().out) == {"count": 3, "longest": "ccc"}
    with pytest.raises(SystemExit):  # no --model flag
        cli.main(["--tiny", "run", "word-count", "--text", "a", "--model", "x"])
    assert "unrecognized arguments: --model x" in capsys.readouterr().err
    assert cli.main(["--tiny", "run", "echo-user", "--text", "hi", "--echo-model", "tiny:token-classification"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "tiny:token-classification (transformers)"


# --------------------------------------------------------------------------- hybrid: a model and `uses`


def test_hybrid_declares_and_vets_its_model_and_its_parts(settings: Settings) -> None:
    assert declaration_problems(HybridEcho) == []

    class BadHybrid(HybridEcho):
        uses = {"not a name": "model-echo", "me": "hybrid-echo"}

    problems = " ".join(declaration_problems(BadHybrid))
    assert "must be a Python identifier" in problems and "calls the plugin's own task `hybrid-echo`" in problems
    zoo = Zoo(settings.replace(tiny=True, allow_custom_models=False), registry=registry(HybridEcho))
    plugin = zoo.registry.get("hybrid-echo")
    assert [f.name for f in plugin.fields()] == ["text", "how", "echo_model"]  # `model` is added last
    checked = zoo.check(plugin, {"text": "hi", "how": "parts"})
    assert checked["model"] == "tiny:text-classification" and checked["echo_model"] == "tiny:text-classification"
    # Both are vetted, whichever way the request runs.
    with pytest.raises(ModelNotAllowed, match="Custom model `someone/else` is not allowed"):
        zoo.run("hybrid-echo", text="hi", how="parts", model="someone/else")
    with pytest.raises(ModelNotAllowed, match=r"`echo_model` \(model-echo\): Custom model `someone/else`"):
        zoo.run("hybrid-echo", text="hi", how="model", echo_model="someone/else")


def test_hybrid_runs_on_its_model_or_as_a_composite(zoo: Zoo) -> None:
    from zoo.plugin import RunContext

    zoo = Zoo(zoo.settings, registry=registry(HybridEcho))
    ctx = RunContext()
    out = zoo.run("hybrid-echo", ctx, text="hi", how="parts", echo_model="tiny:token-classification")
    assert out == {"model": "tiny:token-classification (transformers)", "steps": 1}
    assert ctx.model_ref == "" and ctx.models_used == {"echo": "tiny:token-classification"}
    # Decided before the GPU and worker paths: only the part's model loaded, never the hybrid's own.
    assert [key[2] for key in zoo.models.cache.keys()] == ["token-classification"]
    ctx = RunContext()
    assert zoo.run("hybrid-echo", ctx, text="hi") == {"model": "tiny:text-classification (transformers) own",
                                                      "steps": 0}
    assert ctx.model_ref == "tiny:text-classification" and ctx.models_used == {}
    # Its own model ran where a tab's model runs: in a worker under process isolation.
    keys = zoo.models.cache.keys()
    assert len(keys) == 2 and all((key[-1] == "worker") == (zoo.isolation == "process") for key in keys)


def test_hybrid_without_its_parts_runs_on_its_model(settings: Settings) -> None:
    reg = Registry()
    reg.register(HybridEcho, "tests.test_composition")
    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=reg)
    assert zoo.run("hybrid-echo", text="hi")["model"] == "tiny:text-classification (transformers) own"
    with pytest.raises(UnknownPlugin, match="its part `echo` uses task `model-echo`, and no plugin"):
        zoo.run("hybrid-echo", text="hi", how="parts")


def test_hybrid_tab_has_both_pickers_and_the_endpoint_both_parameters(settings: Settings) -> None:
    from zoo.ui import build_demo

    zoo = Zoo(settings.replace(tiny=True, isolation="inline"), registry=registry(HybridEcho))
    demo = build_demo(zoo)
    assert _endpoint_parameters(demo)["/hybrid_echo"] == ["text", "how", "echo_model", "model"]
    config = demo.get_config_file()
    text = json.dumps(config, default=str)
    assert "Tiny random-weight model</b> (<code>tiny:text-classification</code>)" in text  # its model's note
    assert "Without a model of its own it uses other tabs (echo: Model echo); pick their models below." in text
    labels = [english(c["props"].get("label")) for c in config["components"] if c.get("type") == "dropdown"]
    assert labels.count("Echo model") == 2 and "Model" in labels  # echo-user's and the hybrid's; its own model
    handlers = {f.api_name: f.fn for f in (demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)}
    assert list(handlers["hybrid_echo"]("hi", "parts", "tiny:token-classification", "")) == [
        ("tiny:token-classification (transformers)", 1)]
    assert list(handlers["hybrid_echo"]("hi", "model", "", "tiny:token-classification")) == [
        ("tiny:token-classification (transformers) own", 0)]


def test_hybrid_in_cli_list_and_run(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Registry, "discover", classmethod(lambda cls, **kwargs: registry(HybridEcho)))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("ZOO_ISOLATION", "inline")
    assert cli.main(["--tiny", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " hybrid-echo " in x)
    assert line.startswith("ok ") and "tiny:text-classification  (" in line
    assert line.endswith("; without it uses echo: model-echo)")
    assert cli.main(["--tiny", "list", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["plugins"] if r["task"] == "hybrid-echo")
    assert row["default_model"] == "tiny:text-classification" and row["uses"] == {"echo": "model-echo"}
    assert cli.main(["--tiny", "run", "hybrid-echo", "--text", "hi", "--how", "parts",
                     "--echo-model", "tiny:token-classification"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "tiny:token-classification (transformers)"
    assert cli.main(["--tiny", "run", "hybrid-echo", "--text", "hi", "--model", "tiny:token-classification"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "tiny:token-classification (transformers) own"


def test_hybrid_in_the_space_readme() -> None:
    from zoo.space import readme

    text = readme([HybridEcho(), WordCount()], "cpu-basic", "Model Zoo", {"title": "Model Zoo"})
    assert "| Hybrid echo | `/hybrid_echo` | `tiny:text-classification`; or uses `model-echo` |" in text
