"""zoo/plugin.py's contract as the runner uses it: Seed fields, declared order, derived can_stream, run_remote."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from zoo.errors import ModelLoadError
from zoo.generation import LanguageModel
from zoo.models.manager import Loaded
from zoo.plugin import Int, ModelChoices, Plugin, RunContext, Seed, Text
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

ENGINE = "http://127.0.0.1:9"  # never contacted: these plugins only look at the client they are given


class Echo(Plugin):
    """Runs only locally (no run_remote): a remote engine that is not a language model is refused."""

    api_version = 2
    task = "echo-test"
    title = "Echo"
    model_kind = "text-classification"
    models = ModelChoices(online="tiny:text-classification", tiny="tiny:text-classification")
    inputs = (Text("text"),)
    options = (Seed(), Seed("noise_seed"), Int("steps", -1, -1, 10))
    outputs = (Text("out"),)

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"out": values["text"]}


class EchoRemote(Echo):
    """Overrides run_remote, streaming: the runner passes the engine's client and takes an iterator."""

    task = "echo-remote-test"
    title = "Echo remote"

    def run_remote(self, engine: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        yield {"out": f"{values['text']} via {type(engine).__name__}"}
        yield {"out": f"{values['text']} via {type(engine).__name__} at {engine.label}"}


class Complete(Plugin):
    """A language-model plugin with no run_remote: the default hands a RemoteLM to stream() as the model."""

    api_version = 2
    task = "complete-test"
    title = "Complete"
    order = 5
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("prompt"),)
    outputs = (Text("text"),)

    def stream(self, model: Loaded[LanguageModel], values: dict[str, Any], ctx: RunContext
               ) -> Iterator[dict[str, Any]]:
        lm = model.model
        assert isinstance(lm, LanguageModel)
        yield {"text": f"{values['prompt']}: {type(lm).__name__} ({model.family}, {model.kind}, {model.ref}, "
                       f"{lm.context_length} tokens)"}


@pytest.fixture
def remote_zoo(settings: Settings) -> Zoo:
    registry = Registry()
    for cls in (Echo, EchoRemote, Complete):
        registry.register(cls)
    targets = {cls.task: ENGINE for cls in (Echo, EchoRemote, Complete)}
    return Zoo(settings.replace(tiny=True, remote=targets, remote_context=1024), registry=registry)


def test_the_runner_calls_run_remote_with_the_engine_client(remote_zoo: Zoo) -> None:
    outs = list(remote_zoo.stream("echo-remote-test", {"text": "hi"}))
    assert [o["out"] for o in outs] == ["hi via RemoteClient", f"hi via RemoteClient at {ENGINE}"]


def test_the_default_run_remote_streams_a_language_model_like_a_local_one(remote_zoo: Zoo) -> None:
    out = remote_zoo.run("complete-test", prompt="Say")
    assert out == {"text": f"Say: RemoteLM (remote, causal-lm, remote:{ENGINE}, 1024 tokens)"}


def test_the_default_run_remote_refuses_an_engine_it_cannot_use(remote_zoo: Zoo) -> None:
    with pytest.raises(ModelLoadError) as err:
        remote_zoo.run("echo-test", text="hi")
    message = str(err.value)
    assert "echo-test has no remote engine support" in message and "Echo does not implement run_remote" in message
    assert "unset ZOO_REMOTE_ECHO_TEST" in message


def test_every_seed_field_gets_a_random_seed_whatever_its_name(settings: Settings) -> None:
    registry = Registry()
    registry.register(Echo)
    zoo = Zoo(settings.replace(tiny=True), registry=registry)
    checked = zoo.check(zoo.registry.get("echo-test"), {"text": "x", "seed": -1, "noise_seed": -1, "steps": -1})
    assert 0 <= checked["seed"] < 2**31 and 0 <= checked["noise_seed"] < 2**31
    assert checked["steps"] == -1  # a plain number that allows -1 keeps it
    assert zoo.check(zoo.registry.get("echo-test"), {"text": "x", "seed": 42})["seed"] == 42


def test_seed_is_a_number_field_with_the_seed_range() -> None:
    seed = Seed()
    assert (seed.name, seed.default, seed.minimum, seed.maximum, seed.integer, seed.info) == (
        "seed", -1, -1, 2**32 - 1, True, "-1 = random")
    assert Seed("noise_seed", 3).name == "noise_seed" and Seed("noise_seed", 3).default == 3


def test_can_stream_is_derived_from_what_the_class_overrides() -> None:
    assert not Echo.can_stream and not Echo().can_stream and not EchoRemote.can_stream
    assert Complete.can_stream and Complete().can_stream

    class MoreComplete(Complete):
        def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            return {"text": "once"}

    assert MoreComplete.can_stream  # stream is still overridden, by its parent
    from plugins.chat import Chat
    from plugins.sentence_similarity import SentenceSimilarity
    from plugins.summarization import Summarization
    from plugins.text_generation import TextGeneration
    from plugins.translation import Translation

    assert TextGeneration.can_stream and Chat.can_stream and Translation.can_stream
    assert not Summarization.can_stream and not SentenceSimilarity.can_stream


def test_order_is_declared_and_sorts_the_tabs() -> None:
    assert Plugin.order == 100 and Echo.order == 100 and Complete.order == 5
    registry = Registry()
    for cls in (Echo, EchoRemote, Complete):
        registry.register(cls)
    assert registry.tasks() == ["complete-test", "echo-test", "echo-remote-test"]  # order, then title


class LateWorker(Plugin):
    """A model-less plugin whose worker thread goes on after the final output, as a pipeline's cleanup does."""

    api_version = 2
    task = "late-worker"
    title = "Late worker"
    models = None
    inputs = (Text("text"),)
    outputs = (Text("text"),)
    finished: list[str] = []

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        import threading
        import time

        ready = threading.Event()

        def work() -> None:
            ready.set()
            time.sleep(0.4)  # the output is out; the thread is still busy
            LateWorker.finished.append(values["text"])

        ctx.start_worker(work, name="zoo-late-worker")
        ready.wait()
        yield {"text": values["text"]}


def test_zoo_run_returns_once_the_plugins_workers_are_done(settings: Settings) -> None:
    """The CLI exits right after Zoo.run: a daemon worker still inside torch then aborts the process."""
    registry = Registry()
    registry.register(LateWorker)
    zoo = Zoo(settings.replace(tiny=True), registry=registry)
    LateWorker.finished.clear()
    assert zoo.run("late-worker", text="hello") == {"text": "hello"}
    assert LateWorker.finished == ["hello"]
    ctx = RunContext()
    assert ctx.wait_idle(timeout=0.1)  # no worker: idle at once
    ctx.start_worker(lambda: __import__("time").sleep(0.5), name="zoo-sleeper")
    assert not ctx.wait_idle(timeout=0.05) and ctx.wait_idle(timeout=5)
