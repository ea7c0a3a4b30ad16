"""The OpenAI-compatible API (zoo/openai_api.py), driven by the official `openai` client against real servers
on loopback: the session's tiny `python app.py` (app_server) where only the plumbing can be checked, the app
on the real offline defaults (real_app_server: SmolLM2 GGUF, whisper tiny.en, MiniLM, Piper) where the
content can, and servers of a test's own (app_factory) for ZOO_API_KEY and serve-endpoint.

The fast tests call the pieces in-process: error bodies, the key check, admission, the formats.
"""

from __future__ import annotations

import base64
import io
import math
import secrets
import struct
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from servers import AppFactory, AppServer
from speech import SENTENCES, synthesise
from zoo.errors import InvalidInput, ModelNotFound, TooLarge, UnknownPlugin
from zoo.openai_api import (Busy, OpenAIApi, Unauthorized, authorize, encode_speech, error_body, error_response,
                            to_vtt)
from zoo.runner import Zoo
from zoo.settings import Settings


def client(server: AppServer, key: str = "none", **kw: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{server.url}v1", api_key=key, max_retries=0, timeout=300, **kw)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])


def default_model(api: Any, task: str) -> str:
    """The model /v1/models names the default of a tab."""
    (ref,) = [m.id for m in api.models.list() if task in m.model_dump()["default_for"]]
    return ref


def wav_info(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnframes()


# --------------------------------------------------------------------------- fast: the pieces


def test_errors_have_openai_shape_status_and_the_zoo_fix() -> None:
    bad = InvalidInput("temperature", 7, "must be between 0 and 2", "pick a value from 0 to 2")
    status, body = error_body(bad)
    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == "temperature" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "`temperature` must be between 0 and 2, but got 7. Fix: pick a value from 0 to 2"
    status, body = error_body(ModelNotFound("`x/y` is not available here.", "pick a listed model"),
                              "http://h:1/v1/models")
    assert status == 404 and body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"
    assert body["error"]["message"].endswith("Fix: pick a listed model; GET http://h:1/v1/models lists the models "
                                             "served here")
    assert error_body(TooLarge("body", "<9 bytes>", "must be at most 1 bytes"))[0] == 413
    assert error_body(UnknownPlugin("No tab answers it.", "serve one"))[0] == 404
    assert error_body(Unauthorized("no key"))[0] == 401 and error_body(Busy("busy"))[0] == 429
    status, body = error_body(RuntimeError("boom at /srv/secret/place/file.py"))
    assert status == 500 and "/srv/secret" not in body["error"]["message"] and "boom" in body["error"]["message"]
    reply = error_response(Busy("busy", "retry"))
    assert reply.status_code == 429 and reply.headers["retry-after"] == "1"


def test_the_key_check() -> None:
    key = "zk-" + secrets.token_hex(8)
    authorize(None, {})  # no key set: open
    authorize(key, {"authorization": f"Bearer {key}"})
    authorize(key, {"authorization": f"bearer {key} "})
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {key}"},
                    {"authorization": f"Bearer {key}x"}, {"authorization": key}):
        with pytest.raises(Unauthorized) as err:
            authorize(key, headers)
        assert key not in str(err.value) and "Authorization: Bearer <key>" in str(err.value)


def test_the_key_setting_is_never_shown() -> None:
    settings = Settings.from_env({"ZOO_API_KEY": "  s3cret-key "})
    assert settings.api_key == "s3cret-key" and "s3cret" not in repr(settings)
    assert Settings.from_env({"ZOO_API_KEY": ""}).api_key is None


def test_admission_refuses_past_slots_and_queue(settings: Settings) -> None:
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",), max_queue=1, max_concurrency_per_model=1))
    api = OpenAIApi(zoo)
    plugin = api.plugin_for("completions")
    assert plugin.task == "text-generation"
    first, second = api.admit(plugin), api.admit(plugin)  # one running, one waiting
    with pytest.raises(Busy) as err:
        api.admit(plugin)
    assert "Text generation is busy: 2 requests" in str(err.value) and "ZOO_MAX_QUEUE" in str(err.value)
    first()
    first()  # releasing twice frees one place only
    api.admit(plugin)()
    second()
    with pytest.raises(UnknownPlugin) as missing:
        api.plugin_for("embeddings")
    assert "No tab served here answers /v1/embeddings" in str(missing.value) and "text-generation" in str(missing.value)


def test_speech_formats_and_subtitles(tmp_path: Path) -> None:
    from zoo import audio

    samples = [0.5 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(16000)]
    wav = audio.write_wav(tmp_path / "tone.wav", samples, 16000).read_bytes()
    assert encode_speech(wav, "wav", str(tmp_path)) == (wav, "audio/wav")
    pcm, media = encode_speech(wav, "pcm", str(tmp_path))
    assert len(pcm) == 32000 and media == "audio/L16; rate=16000; channels=1"
    mp3, media = encode_speech(wav, "mp3", str(tmp_path))
    assert media == "audio/mpeg" and (mp3[:3] == b"ID3" or mp3[0] == 0xFF)
    flac, _ = encode_speech(wav, "flac", str(tmp_path))
    assert flac[:4] == b"fLaC"
    back = tmp_path / "back.flac"
    back.write_bytes(flac)
    assert abs(len(audio.decode(back)) / 16000 - 1.0) < 0.05  # the whole second survives the conversion
    assert to_vtt([(0.0, 1.5, "Hello  there."), (61.25, 3725.0, "Later.")]) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n00:01:01.250 --> 01:02:05.000\nLater.\n")


def test_every_listed_route_has_a_tab_and_the_models_list_names_them(tiny_zoo: Zoo) -> None:
    from zoo.openai_api import ROUTES

    api = OpenAIApi(tiny_zoo)
    owners = {route: api.plugin_for(route).task for route in ROUTES}
    assert owners == {"chat/completions": "conversational", "completions": "text-generation",
                      "embeddings": "sentence-similarity", "audio/transcriptions": "automatic-speech-recognition",
                      "audio/translations": "automatic-speech-recognition", "audio/speech": "text-to-speech",
                      "images/generations": "text-to-image"}
    listed = {m["id"]: m for m in api.model_list()}
    for plugin in tiny_zoo.registry.plugins():
        if plugin.models is None:
            continue
        for ref in tiny_zoo.model_choices(plugin):  # every model the tab's picker offers, trained ones too
            assert plugin.task in listed[ref]["tasks"] and plugin.title in listed[ref]["tabs"]
        assert plugin.task in listed[tiny_zoo.default_model(plugin)]["default_for"]
    lm = listed["tiny:causal-lm"]
    assert lm["task"] == "text-generation" and {"conversational", "text-generation"} <= set(lm["default_for"])
    assert {"/v1/chat/completions", "/v1/completions"} <= set(lm["routes"])


def test_a_misspelt_route_is_reported(tiny_zoo: Zoo, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    plugin = tiny_zoo.registry.get("summarization")
    monkeypatch.setattr(type(plugin), "openai", ("chat/completion",), raising=False)
    with caplog.at_level("WARNING", logger="zoo.openai_api"):
        api = OpenAIApi(tiny_zoo)
    assert "summarization declares openai route 'chat/completion', which is not one of: chat/completions" in caplog.text
    assert api.plugin_for("chat/completions").task == "conversational"


def test_a_trained_model_is_listed_for_its_tab(tiny_zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tiny_zoo.registry.get("text-classification")
    monkeypatch.setattr(Zoo, "trained_models", lambda self, p: ["trained:my-sentiment"] if p is plugin else [])
    listed = {m["id"]: m for m in OpenAIApi(tiny_zoo).model_list()}
    assert listed["trained:my-sentiment"]["tasks"] == ["text-classification"]


def test_serve_endpoint_shares_the_api_and_keeps_no_copy(settings: Settings) -> None:
    from starlette.routing import Mount

    import zoo.endpoint as endpoint
    from zoo.endpoint import create_app

    app = create_app(Zoo(settings.replace(tiny=True, plugins=("conversational",))))
    mount = next(r for r in app.routes if isinstance(r, Mount))
    assert mount.path == "/v1" and {r.path for r in mount.routes} >= {"/models", "/chat/completions", "/embeddings"}
    assert not [name for name in vars(endpoint) if "chat" in name.lower() or "messages" in name.lower()]


# --------------------------------------------------------------------------- app tier, tiny models


@pytest.mark.app
def test_models_list_and_retrieve(app_server: AppServer) -> None:
    api = client(app_server)
    models = {m.id: m for m in api.models.list()}
    assert "tiny:causal-lm" in models and "tiny:text-to-image" in models
    lm = models["tiny:causal-lm"].model_dump()
    assert lm["object"] == "model" and "conversational" in lm["tasks"] and "Chat" in lm["tabs"]
    assert api.models.retrieve("tiny:text-to-image").model_dump()["task"] == "text-to-image"
    import openai

    with pytest.raises(openai.NotFoundError) as err:
        api.models.retrieve("no-such/model")
    assert err.value.status_code == 404 and "/v1/models" in err.value.body["message"]


@pytest.mark.app
def test_chat_streamed_and_not_give_the_same_greedy_reply(app_server: AppServer) -> None:
    api = client(app_server)
    ask = dict(model="tiny:causal-lm", messages=[{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Hello there"}],
               max_tokens=12, temperature=0, seed=3)
    whole = api.chat.completions.create(**ask)
    choice = whole.choices[0]
    assert whole.object == "chat.completion" and whole.model == "tiny:causal-lm"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert whole.usage.completion_tokens <= 12 and whole.usage.prompt_tokens > 3
    assert choice.finish_reason == ("length" if whole.usage.completion_tokens == 12 else "stop")
    chunks = list(api.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant" and len(pieces) >= 2
    assert "".join(pieces) == choice.message.content  # the stream is the reply, piece by piece
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.app
def test_completions_streamed_and_not(app_server: AppServer) -> None:
    api = client(app_server)
    ask = dict(model="", prompt="Once upon a time", max_tokens=8, temperature=0)
    whole = api.completions.create(**ask)
    assert whole.object == "text_completion" and whole.model == "tiny:causal-lm"
    assert whole.usage.completion_tokens <= 8 and whole.choices[0].text
    chunks = [c for c in api.completions.create(**ask, stream=True) if c.choices]
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text  # the streamer flushes at spaces
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason and chunks[0].object == "text_completion"


@pytest.mark.app
def test_embeddings_float_and_base64(app_server: AppServer) -> None:
    import numpy as np

    api = client(app_server)
    texts = ["a cat on a mat", "stock prices fell", "line one\nline two"]
    floats = api.embeddings.create(model="", input=texts, encoding_format="float")
    assert floats.model == "tiny:feature-extraction" and [d.index for d in floats.data] == [0, 1, 2]
    vectors = [d.embedding for d in floats.data]
    dim = len(vectors[0])
    assert dim > 8 and all(len(v) == dim for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)  # unit vectors
    raw = api.embeddings.with_raw_response.create(model="", input=texts, encoding_format="base64").http_response.json()
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]]
    assert np.allclose(decoded, vectors, atol=1e-6)
    one = api.embeddings.create(model="", input="a cat on a mat", encoding_format="float").data[0].embedding
    assert np.allclose(one, vectors[0], atol=1e-5)  # alone or in a batch, the same vector


@pytest.mark.app
def test_images_b64_png_of_the_asked_size_and_seed(app_server: AppServer) -> None:
    api = client(app_server)
    made = api.images.generate(prompt="a red fox", size="96x64", n=2, response_format="b64_json",
                               extra_body={"seed": 11})
    pictures = [base64.b64decode(d.b64_json) for d in made.data]
    assert len(pictures) == 2 and [png_size(p) for p in pictures] == [(96, 64), (96, 64)]
    from PIL import Image

    from zoo.media import read_png_metadata

    seeds = [read_png_metadata(p)["seed"] for p in pictures]
    assert seeds == [11, 12]  # image i uses seed + i, as in the tab
    again = api.images.generate(prompt="a red fox", size="96x64", extra_body={"seed": 12})
    alone = Image.open(io.BytesIO(base64.b64decode(again.data[0].b64_json)))
    assert alone.tobytes() == Image.open(io.BytesIO(pictures[1])).tobytes()  # seed 12 remakes the second


@pytest.mark.app
def test_speech_and_transcription_plumbing(app_server: AppServer, tmp_path: Path) -> None:
    api = client(app_server)
    wav = api.audio.speech.create(model="", voice="alloy", input="Hello there.", response_format="wav").content
    rate, frames = wav_info(wav)
    assert wav[:4] == b"RIFF" and frames > 0
    mp3 = api.audio.speech.create(model="", voice="alloy", input="Hello there.").content  # OpenAI's default: mp3
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF
    spoken = synthesise(SENTENCES[0], tmp_path / "s.wav")
    for fmt in ("json", "text", "srt", "verbose_json", "vtt"):  # the tiny model hears noise: shapes only
        with spoken.open("rb") as f:
            out = api.audio.transcriptions.create(model="", file=f, response_format=fmt)
        assert (isinstance(out, str) if fmt in ("text", "srt", "vtt") else hasattr(out, "text")), (fmt, out)
    assert out.startswith("WEBVTT")


@pytest.mark.app
def test_bad_values_and_unknown_models(app_server: AppServer, tmp_path: Path) -> None:
    import openai

    api = client(app_server)
    say = [{"role": "user", "content": "Hi"}]
    cases = [
        (lambda: api.chat.completions.create(model="", messages=say, temperature=7), "temperature",
         "`temperature` must be between 0 and 2"),
        (lambda: api.chat.completions.create(model="", messages=say, max_tokens=0), "max_tokens",
         "`max_new_tokens` must be between 1 and"),
        (lambda: api.chat.completions.create(model="", messages=[]), "messages", "must be a non-empty list"),
        (lambda: api.chat.completions.create(model="", messages=[*say, {"role": "assistant", "content": "Hi"}]),
         "messages[1].role", "must be user"),
        (lambda: api.chat.completions.create(model="", messages=say, stop=["\n"]), "stop", "not supported"),
        (lambda: api.images.generate(prompt="x", size="100x64"), "size", "`width` must be a multiple of 8"),
        (lambda: api.images.generate(prompt="x", n=9), "n", "`num_images` must be between 1 and 4"),
        (lambda: api.images.generate(prompt="x", response_format="url"), "response_format", "must be b64_json"),
        (lambda: api.embeddings.create(model="", input=["ok", "  "]), "input[1]", "must not be empty"),
        (lambda: api.audio.speech.create(model="", voice="alloy", input="hi", response_format="xyz"),
         "response_format", "must be one of wav, pcm, mp3"),
        (lambda: api.audio.speech.create(model="", voice="alloy", input="hi", speed=3), "speed",
         "`speed` must be between 0.5 and 2"),
    ]
    for call, param, words in cases:
        with pytest.raises(openai.BadRequestError) as err:
            call()
        body = err.value.body
        assert err.value.status_code == 400 and body["param"] == param and words in body["message"], body
        assert "Fix: " in body["message"] and body["type"] == "invalid_request_error"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_bytes(b"this is text, not sound" * 10)
    with pytest.raises(openai.BadRequestError) as err, not_audio.open("rb") as f:
        api.audio.transcriptions.create(model="", file=f)
    assert err.value.body["param"] == "file" and "cannot be read as audio" in err.value.body["message"]
    for call in (lambda: api.chat.completions.create(model="no-such-org/no-such-model", messages=say),
                 lambda: api.embeddings.create(model="../../etc/passwd", input="x"),
                 lambda: api.images.generate(model="no-such-org/painter", prompt="x")):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.status_code == 404 and err.value.body["code"] == "model_not_found"
        assert f"GET {app_server.url}v1/models lists the models served here" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError) as err:
        api.get("/nothing/here", cast_to=dict)
    assert "is not a route of this API" in err.value.body["message"]


@pytest.mark.app
def test_the_api_key_is_required_compared_and_never_logged(model_cache_dir: Path, app_factory: AppFactory) -> None:
    import httpx
    import openai

    key, wrong = "zk-" + secrets.token_hex(16), "zk-" + secrets.token_hex(16)
    server = app_factory({"HF_HUB_OFFLINE": "1", "ZOO_TINY": "1", "ZOO_CACHE_DIR": str(model_cache_dir),
                          "ZOO_PLUGINS": "text-generation,conversational", "ZOO_API_KEY": key})
    with pytest.raises(openai.AuthenticationError) as err:
        client(server, wrong).models.list()
    assert err.value.status_code == 401 and "not this server's key" in err.value.body["message"]
    assert wrong not in str(err.value.body) and key not in str(err.value.body)
    with pytest.raises(openai.AuthenticationError):
        client(server, wrong).chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}])
    bare = httpx.post(f"{server.url}v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
    assert bare.status_code == 401 and "sent none" in bare.json()["error"]["message"]
    assert bare.headers["www-authenticate"] == "Bearer"
    good = client(server, key)
    assert "tiny:causal-lm" in {m.id for m in good.models.list()}
    reply = good.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert reply.usage.completion_tokens <= 3
    assert httpx.get(server.url).status_code == 200  # the key guards /v1, not the page
    time.sleep(0.5)
    log = server.log_text()
    assert "/v1/models" in log or "Running on" in log
    assert key not in log and wrong not in log


@pytest.mark.app
def test_serve_endpoint_serves_the_same_api(model_cache_dir: Path, app_factory: AppFactory) -> None:
    import openai

    server = app_factory({"HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)},
                         ["-m", "zoo", "--tiny", "--plugins", "text-generation,conversational", "serve-endpoint",
                          "--port", "{port}"], health="health", timeout=60)
    api = client(server)
    assert {m.id for m in api.models.list()} >= {"tiny:causal-lm"}
    reply = api.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                        temperature=0)
    chunks = list(api.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply.choices[0].message.content
    # The route a remote zoo's language-model tab calls: that tab's model, whatever `model` says.
    task_api = openai.OpenAI(base_url=f"{server.url}text-generation/v1", api_key="none", max_retries=0)
    again = task_api.chat.completions.create(model="dummy", messages=[{"role": "user", "content": "Hi"}],
                                             max_tokens=4, temperature=0)
    assert again.choices[0].message.content == reply.choices[0].message.content and again.model == "tiny:causal-lm"
    with pytest.raises(openai.BadRequestError) as err:  # OpenAI's error format here too
        api.completions.create(model="", prompt="x", max_tokens=-1)
    assert err.value.body["param"] == "max_tokens"


# --------------------------------------------------------------------------- app tier, real offline models


@pytest.mark.app
@pytest.mark.real
def test_real_chat_answers_and_streams_before_the_end(real_app_server: AppServer) -> None:
    api = client(real_app_server)
    ask = dict(model="", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0)
    reply = api.chat.completions.create(**ask, max_tokens=24)
    assert "Paris" in reply.choices[0].message.content and reply.model == default_model(api, "conversational")
    assert "SmolLM2" in reply.model or reply.model.startswith("packaged:")
    started, arrivals, pieces = time.perf_counter(), [], []
    for chunk in api.chat.completions.create(**{**ask, "messages": [
            {"role": "user", "content": "Write four sentences about the sea."}]}, max_tokens=64, stream=True):
        arrivals.append(time.perf_counter() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    print(f"\nfirst chunk after {arrivals[0]:.2f}s, last after {arrivals[-1]:.2f}s, {len(pieces)} pieces")
    assert len(pieces) >= 20 and arrivals[-1] - arrivals[0] > 0.3  # pieces came while the model decoded
    completion = api.completions.create(model="", prompt="The capital of France is", max_tokens=6, temperature=0)
    assert "Paris" in completion.choices[0].text


@pytest.mark.app
@pytest.mark.real
def test_real_embeddings_rank_meaning(real_app_server: AppServer) -> None:
    api = client(real_app_server)
    texts = ["A cat is sleeping on the sofa.", "The kitten naps on the couch.", "Stock markets fell sharply today."]
    out = api.embeddings.create(model="", input=texts, encoding_format="float")
    cat, kitten, stocks = (d.embedding for d in out.data)
    assert len(cat) == 384 and out.model == default_model(api, "sentence-similarity")
    similar, unrelated = cosine(cat, kitten), cosine(cat, stocks)
    print(f"\ncosine similar {similar:.3f}, unrelated {unrelated:.3f}")
    assert similar > 0.6 and unrelated < 0.2 and similar > unrelated + 0.4


@pytest.mark.app
@pytest.mark.real
def test_real_transcription_in_every_format(real_app_server: AppServer, tmp_path: Path) -> None:
    from zoo.audio import word_error_rate

    api = client(real_app_server)
    sentence = SENTENCES[1]
    spoken = synthesise(sentence, tmp_path / "sentence.wav")
    results = {}
    for fmt in ("json", "text", "srt", "verbose_json"):
        with spoken.open("rb") as f:
            results[fmt] = api.audio.transcriptions.create(model="", file=f, response_format=fmt)
    text = results["json"].text
    print(f"\n{sentence!r} -> {text!r}")
    assert word_error_rate(sentence, text) <= 0.25
    assert results["text"].strip() == text
    srt = results["srt"]
    assert srt.startswith("1\n00:00:0") and " --> " in srt and word_error_rate(sentence, " ".join(
        line for line in srt.splitlines() if line and not line[0].isdigit())) <= 0.25
    verbose = results["verbose_json"]
    segments = verbose.segments
    assert verbose.text == text and segments and verbose.duration > 2
    assert all(0 <= s.start < s.end for s in segments) and [s.start for s in segments] == sorted(
        s.start for s in segments)
    assert " ".join(s.text.strip() for s in segments) == text


@pytest.mark.app
@pytest.mark.real
def test_real_speech_is_heard_back(real_app_server: AppServer, tmp_path: Path) -> None:
    from zoo.audio import word_error_rate

    api = client(real_app_server)
    sentence = SENTENCES[4]
    wav = api.audio.speech.create(model="", voice="alloy", input=sentence, response_format="wav")
    rate, frames = wav_info(wav.content)
    assert rate == 22_050 and frames / rate > 1.5
    assert wav.response.headers["x-zoo-model"] == default_model(api, "text-to-speech") == "packaged:piper-joe-us"
    path = tmp_path / "speech.wav"
    path.write_bytes(wav.content)
    with path.open("rb") as f:
        heard = api.audio.transcriptions.create(model="", file=f).text
    print(f"\n{sentence!r} -> Piper -> whisper -> {heard!r}")
    assert word_error_rate(sentence, heard) <= 0.25


# --------------------------------------------------------------------------- in-process: limits and admission


@pytest.fixture
def endpoint_client(settings: Settings) -> Any:
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    key = "zk-" + secrets.token_hex(8)
    zoo = Zoo(settings.replace(tiny=True, isolation="inline", plugins=("conversational", "automatic-speech-recognition"),
                               max_file_size=100_000, api_key=key))
    with TestClient(create_app(zoo)) as c:
        yield zoo, c, {"Authorization": f"Bearer {key}"}


def test_bodies_over_the_upload_limit_are_413_before_anything_loads(endpoint_client: Any) -> None:
    zoo, c, auth = endpoint_client
    reply = c.post("/v1/chat/completions", content=b"{" + b" " * 300_000 + b"}", headers={**auth,
                   "content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large"
    assert "ZOO_MAX_FILE_SIZE" in reply.json()["error"]["message"]
    reply = c.post("/v1/audio/transcriptions", headers=auth, files={"file": ("big.wav", b"\0" * 300_000)})
    assert reply.status_code == 413 and reply.json()["error"]["param"] in ("body", "file")
    assert zoo.models.cache.stats.loads == 0


def test_serve_endpoint_routes_need_the_key_too(endpoint_client: Any) -> None:
    zoo, c, auth = endpoint_client
    assert c.get("/health").status_code == 200  # the health check stays open
    assert c.post("/conversational", json={"inputs": {"message": "hi"}}).status_code == 401
    assert c.post("/conversational/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                  headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/v1/models").json()["error"]["type"] == "authentication_error"
    assert c.get("/v1/models", headers=auth).status_code == 200


def test_a_stream_gives_its_place_back_when_it_ends(endpoint_client: Any) -> None:
    from starlette.applications import Starlette

    from zoo.openai_api import openai_mount

    zoo, _, auth = endpoint_client
    api = OpenAIApi(zoo)
    from starlette.testclient import TestClient

    with TestClient(Starlette(routes=[openai_mount(zoo, api)])) as c:
        ask = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0}
        with c.stream("POST", "/v1/chat/completions", json={**ask, "stream": True}, headers=auth) as reply:
            assert reply.status_code == 200
            lines = [line for line in reply.iter_lines() if line]
        assert lines[-1] == "data: [DONE]" and api._in_flight == {"conversational": 0}
        assert c.post("/v1/chat/completions", json=ask, headers=auth).status_code == 200
        assert api._in_flight == {"conversational": 0}
        bad = c.post("/v1/chat/completions", json={**ask, "temperature": 9, "stream": True}, headers=auth)
        assert bad.status_code == 400 and api._in_flight == {"conversational": 0}  # refused before the stream
