"""Bad input, across the plugins: every case gets a clear error (or is cleaned up and served),
in the core (`Zoo.run`) and through the HTTP API of a running app, and the next good request
still succeeds.

One zoo (tiny models, the matrix's plugins) serves the whole module, its app launched in this
process for the HTTP cases (tests/servers.py serve_in_process). Each matrix case runs
twice: through `Zoo.run`, where it must raise a ZooError naming the value and the limit (or the
rule), and through gradio_client, where the same words must reach the client as a readable
message (no stack trace), followed by a good request to the same endpoint that must succeed.
Speech-recognition cases follow up with the packaged whisper tiny.en (marked `real`).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pytest

from servers import free_port, serve_in_process
from zoo.errors import InvalidInput, ZooError
from zoo.plugin import Limits
from zoo.runner import Zoo
from zoo.settings import SETTINGS, Settings

TG, CHAT, QA, T2I, ASR = ("text-generation", "conversational", "question-answering", "text-to-image",
                          "automatic-speech-recognition")
TC, TOK, ZS, SS = "text-classification", "token-classification", "zero-shot-classification", "sentence-similarity"
TR, SUM, TTS, IC = "translation", "summarization", "text-to-speech", "image-classification"
WHISPER = "packaged:whisper-tiny.en"
UPLOAD_LIMIT = 3_000_000  # the module's server takes uploads up to 3 MB (ZOO_MAX_FILE_SIZE)
TIMEOUT = 120  # no single request may take longer than this


# --------------------------------------------------------------------------- inputs made at test time


@dataclass(frozen=True)
class Upload:
    """A file input: a name in the `media` folder; the core gets its path, HTTP uploads it."""

    name: str


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every file the matrix uploads: good speech, silence, broken and oversized audio, images."""
    import numpy as np
    from PIL import Image

    from speech import synthesise
    from zoo import audio

    d = tmp_path_factory.mktemp("media")
    synthesise("Please remember to close the window before you leave the house.", d / "speech.wav")
    _ffmpeg("-i", str(d / "speech.wav"), "-ac", "2", "-ar", "48000", "-b:a", "96k", str(d / "speech-stereo-48k.mp3"))
    audio.write_wav(d / "silence.wav", np.zeros(3 * 16_000, dtype=np.float32))
    (d / "empty.wav").write_bytes(b"")
    Image.new("RGB", (16, 16), "red").save(d / "picture.wav", format="PNG")  # a PNG renamed to .wav
    speech = (d / "speech.wav").read_bytes()
    (d / "truncated.wav").write_bytes(speech[:len(speech) // 3])  # the header promises three times more
    # 10.5 minutes of near-silence at 8 kb/s: a small file over the default 600-second limit.
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "630", "-b:a", "8k", str(d / "ten-minutes.mp3"))
    Image.new("RGB", (32, 32), "blue").save(d / "picture.png")
    (d / "not-an-image.png").write_text("this is plain text, not a PNG\n")
    # 20000 x 20000 grey pixels compress to a few hundred KB: a decompression bomb.
    Image.new("L", (20_000, 20_000)).save(d / "bomb.png")
    return d


# --------------------------------------------------------------------------- the app under test


@pytest.fixture(scope="module")
def matrix_zoo(model_cache_dir: Path) -> Zoo:
    """The matrix's plugins on their tiny models, with the module's limits."""
    settings = Settings(offline=True, tiny=True, cache_dir=model_cache_dir, idle_unload_seconds=0,
                        memory_budget=8 * 10**9, server_port=free_port(), max_file_size=UPLOAD_LIMIT,
                        plugins=tuple(GOOD),
                        # Custom ids are allowed, but only this owner's: `someone/model` must be refused.
                        custom_model_allowlist=("HuggingFaceTB/*",))
    zoo = Zoo(settings)
    assert not zoo.registry.quarantined, zoo.registry.quarantined
    return zoo


@pytest.fixture(scope="module")
def app(matrix_zoo: Zoo) -> Iterator[tuple[Zoo, Any, str]]:
    """matrix_zoo's app, in this process; (zoo, gradio client, base url)."""
    with serve_in_process(matrix_zoo) as served:
        yield matrix_zoo, served.client(), served.url


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter]:
    """Counts for the closing summary (cases tried, errors clean, follow-ups served), printed after the module.

    A report, not a check: each test asserts its own case, so the counts cannot disagree with the results.
    """
    counts: Counter = Counter()
    yield counts
    if counts:
        print("\nbad-input matrix: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in sorted(counts.items())))


def http_outputs(zoo: Zoo, task: str, result: Any) -> dict[str, Any]:
    """An API result (bare value for one output, else a tuple) as {output name: value}."""
    names = [f.name for f in zoo.registry.get(task).outputs]
    values = [result] if len(names) == 1 else list(result)
    return dict(zip(names, values))


def http_values(values: Mapping[str, Any], media: Path) -> dict[str, Any]:
    """Case values for gradio_client: uploads become handle_file()."""
    from gradio_client import handle_file

    return {k: handle_file(str(media / v.name)) if isinstance(v, Upload) else v for k, v in values.items()}


def core_values(values: Mapping[str, Any], media: Path) -> dict[str, Any]:
    """Case values for Zoo.run: uploads become paths."""
    return {k: str(media / v.name) if isinstance(v, Upload) else v for k, v in values.items()}


def raw_call(url: str, client: Any, api: str, values: Mapping[str, Any]) -> tuple[str, Any]:
    """Call an endpoint with a hand-written JSON body (for text gradio_client cannot encode).

    Returns ("complete", outputs) or ("error", message).
    """
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][f"/{api}"]["parameters"]
    data = [values.get(p["parameter_name"], p.get("parameter_default")) for p in params]
    body = json.dumps({"data": data}).encode()  # ensure_ascii: lone surrogates travel as \ud800 escapes
    request = urllib.request.Request(f"{url}gradio_api/call/{api}", data=body,
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=TIMEOUT).read().decode()
    event, payload = None, None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            payload = json.loads(line.split(":", 1)[1])
    if event == "error":
        return "error", (payload or {}).get("error") if isinstance(payload, dict) else payload
    return str(event), payload


# --------------------------------------------------------------------------- message checks


def mentions(message: str, token: str) -> bool:
    """True when the message names `token`; numbers must stand alone (`50` is not found in `500`)."""
    if re.fullmatch(r"-?\d+(\.\d+)?", token):
        return re.search(rf"(?<![\d.]){re.escape(token)}(?![\d])", message) is not None
    return token in message


def assert_clean(message: str, expect: tuple[str, ...]) -> None:
    """A readable one-paragraph error that names every expected token, with no stack trace."""
    assert message, "the error reached the client without a message"
    assert "Traceback" not in message and 'File "' not in message, message
    assert len(message) < 1500, f"message too long ({len(message)} chars): {message[:200]}..."
    missing = [t for t in expect if not mentions(message, t)]
    assert not missing, f"message does not name {missing}: {message}"


# --------------------------------------------------------------------------- good requests


def _top(labels: Any) -> str:
    """The best label, from a core {label: score} dict or gradio's Label payload."""
    if isinstance(labels, Mapping) and "confidences" in labels:
        return labels["label"]
    return max(labels, key=labels.get)


@dataclass(frozen=True)
class Good:
    """A request each endpoint must still serve after a bad one; `same` compares HTTP with the core."""

    values: dict[str, Any]
    same: Callable[[dict[str, Any], dict[str, Any]], bool]


GOOD: dict[str, Good] = {
    TG: Good(dict(prompt="Hello", max_new_tokens=4, temperature=0), lambda h, c: h["text"] == c["text"]),
    CHAT: Good(dict(message="Hello", history=[], max_new_tokens=4, temperature=0),
               lambda h, c: h["reply"] == c["reply"] and h["history"][-1] == {"role": "assistant",
                                                                              "content": c["reply"]}),
    QA: Good(dict(question="Where does Tom live?", context="Tom lives in Oslo."),
             lambda h, c: h["answer"] == c["answer"] and h["answer"] in "Tom lives in Oslo."),
    T2I: Good(dict(prompt="a fox", width=64, height=64, steps=1, seed=3),
              lambda h, c: int(h["seed"]) == c["seed"] == 3 and h["metadata"]["width"] == 64),
    ASR: Good(dict(audio=Upload("speech-stereo-48k.mp3"), model=WHISPER),
              lambda h, c: "window" in h["text"].lower() and h["text"] == c["text"]),
    TC: Good(dict(text="I love it"), lambda h, c: _top(h["labels"]) == _top(c["labels"])),
    TOK: Good(dict(text="Ada lives in London"),
              lambda h, c: "".join(p["token"] for p in h["highlighted"]) == "Ada lives in London"),
    ZS: Good(dict(text="The match ended 2-1", candidate_labels="sports, cooking"),
             lambda h, c: _top(h["scores"]) == _top(c["scores"])),
    SS: Good(dict(query="plants", documents="Plants make food.\nCars drive."),
             lambda h, c: h["results"]["data"][0][2] == c["results"][0][2]),
    TR: Good(dict(text="Hello", max_new_tokens=4, num_beams=1), lambda h, c: h["translation"] == c["translation"]),
    SUM: Good(dict(text="The cat sat on the mat. It was happy.", min_length=0, max_length=4, num_beams=1),
              lambda h, c: h["summary"] == c["summary"]),
    TTS: Good(dict(text="Hello there"), lambda h, c: Path(h["audio"]).read_bytes()[:4] == b"RIFF"),
    IC: Good(dict(image=Upload("picture.png")), lambda h, c: _top(h["labels"]) == _top(c["labels"])),
}


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Case:
    """One bad (or merely odd) input and what the user must be told."""

    id: str
    task: str
    values: dict[str, Any]
    expect: tuple[str, ...] = ()  # words both the core's and the client's message must contain
    name: str | None = None  # the field the core's InvalidInput names
    accepted: Callable[[dict[str, Any]], bool] | None = None  # odd but valid: served, and this holds
    raw: bool = False  # send a hand-written JSON body (gradio_client cannot encode lone surrogates)
    real: bool = False  # follows up with the packaged whisper model


ONE_MB = "x" * 1_000_000
CASES: tuple[Case, ...] = (
    # text: empty, whitespace, 1 MB, control characters, lone surrogates
    Case("empty-prompt", TG, {"prompt": ""}, ("must not be empty",), "prompt"),
    Case("whitespace-prompt", TG, {"prompt": " \n\t  "}, ("must not be empty",), "prompt"),
    Case("1mb-prompt", TG, {"prompt": ONE_MB}, ("1000000", "20000"), "prompt"),
    Case("1mb-text-classification", TC, {"text": ONE_MB}, ("1000000", "20000"), "text"),
    Case("control-characters", TG, {"prompt": "Hi\x00\x07\x1b[31m there\x7f", "max_new_tokens": 4},
         accepted=lambda r: isinstance(r["text"], str)),
    Case("lone-surrogates", TG, {"prompt": "Hi \ud800 there \udfff", "max_new_tokens": 4},
         accepted=lambda r: isinstance(r["text"], str), raw=True),
    # numbers: out of range, negative, zero, huge, fractional
    Case("max-new-tokens-zero", TG, {"prompt": "Hi", "max_new_tokens": 0}, ("0", "1"), "max_new_tokens"),
    Case("max-new-tokens-negative", TG, {"prompt": "Hi", "max_new_tokens": -5}, ("-5", "1"), "max_new_tokens"),
    Case("max-new-tokens-huge", TG, {"prompt": "Hi", "max_new_tokens": 10**9}, ("1000000000", "1024"),
         "max_new_tokens"),
    Case("max-new-tokens-fraction", TG, {"prompt": "Hi", "max_new_tokens": 2.5}, ("2.5", "whole number"),
         "max_new_tokens"),
    Case("temperature-negative", TG, {"prompt": "Hi", "temperature": -1}, ("-1", "0"), "temperature"),
    Case("temperature-huge", TG, {"prompt": "Hi", "temperature": 99}, ("99", "2"), "temperature"),
    Case("top-p-zero", TG, {"prompt": "Hi", "top_p": 0}, ("0", "0.05"), "top_p"),
    Case("top-p-over-one", TG, {"prompt": "Hi", "top_p": 1.5}, ("1.5", "1"), "top_p"),
    Case("seed-huge", TG, {"prompt": "Hi", "seed": 2**40}, ("1099511627776", "4294967295"), "seed"),
    Case("seed-negative", TG, {"prompt": "Hi", "seed": -7}, ("-7", "-1"), "seed"),
    Case("width-not-multiple-of-8", T2I, {"prompt": "a fox", "width": 100}, ("100", "multiple of 8", "96", "104"),
         "width"),
    Case("width-huge", T2I, {"prompt": "a fox", "width": 4096}, ("4096", "1024"), "width"),
    Case("height-too-small", T2I, {"prompt": "a fox", "height": 8}, ("8", "64"), "height"),
    Case("steps-zero", T2I, {"prompt": "a fox", "steps": 0}, ("0", "1"), "steps"),
    Case("steps-huge", T2I, {"prompt": "a fox", "steps": 1000}, ("1000", "50"), "steps"),
    Case("guidance-negative", T2I, {"prompt": "a fox", "guidance_scale": -1}, ("-1", "0"), "guidance_scale"),
    Case("num-images-huge", T2I, {"prompt": "a fox", "num_images": 100}, ("100", "4"), "num_images"),
    Case("empty-image-prompt", T2I, {"prompt": "   "}, ("must not be empty",), "prompt"),
    Case("min-score-over-one", TOK, {"text": "Ada", "min_score": 2}, ("2", "1"), "min_score"),
    Case("tts-text-too-long", TTS, {"text": "a" * 3001}, ("3001", "3000"), "text"),
    # cross-field rules
    Case("empty-context", QA, {"question": "Who?", "context": ""}, ("`context`", "must not be empty"), "context"),
    Case("empty-question", QA, {"question": "", "context": "Tom lives in Oslo."}, ("`question`", "must not be empty"),
         "question"),
    Case("doc-stride-too-big", QA, {"question": "Who?", "context": "Tom.", "doc_stride": 200, "window_tokens": 384},
         ("200", "384"), "doc_stride"),
    Case("summary-min-over-max", SUM, {"text": "A cat.", "min_length": 100, "max_length": 10}, ("100", "10"),
         "min_length"),
    Case("no-candidate-labels", ZS, {"text": "A goal.", "candidate_labels": " , "}, ("at least one label",),
         "candidate_labels"),
    Case("template-without-braces", ZS, {"text": "A goal.", "candidate_labels": "sports",
                                         "hypothesis_template": "No slot here."},
         ("No slot here.", "`{}`"), "hypothesis_template"),
    Case("no-passages", SS, {"query": "plants", "documents": " \n\n "}, ("`documents`", "must not be empty"),
         "documents"),
    Case("unknown-language-pair", TR, {"text": "Hello", "language_pair": "English → Klingon"},
         ("English → Klingon", "English → French"), "language_pair"),
    Case("chat-history-not-json", CHAT, {"message": "Hi", "history": "nonsense"}, ("nonsense", "JSON list"),
         "history"),
    Case("chat-history-bad-role", CHAT, {"message": "Hi", "history": [{"role": "hacker", "content": "x"}]},
         ("hacker", "user, assistant, system"), "history[0].role"),
    Case("chat-empty-message", CHAT, {"message": "", "history": []}, ("must not be empty",), "message"),
    # audio: none, empty, not audio, truncated, too long, silence, stereo 48 kHz mp3
    Case("no-audio", ASR, {"audio": None}, ("must be an audio file",), "audio", real=True),
    Case("zero-byte-audio", ASR, {"audio": Upload("empty.wav")}, ("empty.wav", "0 bytes"), "audio", real=True),
    Case("png-renamed-wav", ASR, {"audio": Upload("picture.wav")}, ("picture.wav", "no audio track"), "audio",
         real=True),
    Case("truncated-wav", ASR, {"audio": Upload("truncated.wav")}, ("truncated.wav", "truncated"), "audio",
         real=True),
    Case("audio-ten-minutes", ASR, {"audio": Upload("ten-minutes.mp3")}, ("ten-minutes.mp3", "630", "600"),
         "audio", real=True),
    Case("silence", ASR, {"audio": Upload("silence.wav"), "model": WHISPER},
         accepted=lambda r: len(r["text"].split()) <= 3, real=True),
    Case("stereo-48k-mp3", ASR, {"audio": Upload("speech-stereo-48k.mp3"), "model": WHISPER},
         accepted=lambda r: {"remember", "close", "window", "house"} <= set(re.findall(r"[a-z]+", r["text"].lower())),
         real=True),
    # images: none, not an image, a decompression bomb
    Case("no-image", IC, {"image": None}, ("must be an image",), "image"),
    Case("text-renamed-png", IC, {"image": Upload("not-an-image.png")}, ("not-an-image.png",), "image"),
    Case("decompression-bomb", IC, {"image": Upload("bomb.png")}, ("400000000", "178956970"), "image"),
    # models: unknown, traversal, local paths, custom ids outside the allow list
    Case("unknown-model", TG, {"prompt": "Hi", "model": "HuggingFaceTB/no-such-model"},
         ("HuggingFaceTB/no-such-model", "not available")),
    Case("custom-model-not-allowed", TG, {"prompt": "Hi", "model": "someone/custom-model"},
         ("someone/custom-model", "allow list", "HuggingFaceTB/*")),
    Case("model-traversal", TG, {"prompt": "Hi", "model": "../../etc"}, ("../../etc", "cannot be chosen")),
    Case("model-traversal-in-hub-id", TC, {"text": "Hi", "model": "owner/../../etc"},
         ("owner/../../etc", "Hub id"), "model"),
    Case("model-traversal-in-tiny", TC, {"text": "Hi", "model": "tiny:../../etc"}, ("tiny:../../etc",), "model"),
    Case("model-absolute-path", T2I, {"prompt": "a fox", "model": "/etc"}, ("/etc", "cannot be chosen")),
    Case("model-traversal-in-revision", QA, {"question": "Who?", "context": "Tom.",
                                             "model": "HuggingFaceTB/x@../../etc"},
         ("HuggingFaceTB/x@../../etc", "Hub id"), "model"),
)


def _params() -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.real] if c.real else []) for c in CASES]


def test_matrix_is_broad() -> None:
    """At least 30 cases, over many plugins, and every case names what the user must read."""
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert len({c.task for c in CASES}) >= 10 and {c.task for c in CASES} <= set(GOOD)
    for c in CASES:
        assert c.accepted is not None or c.expect, f"{c.id} checks nothing"


@pytest.mark.parametrize("case", _params())
def test_core_rejects_with_a_clear_error(matrix_zoo: Zoo, media: Path, case: Case, tally: Counter) -> None:
    """Zoo.run raises a ZooError naming the field, the value, the limit and a fix (or serves odd input)."""
    zoo = matrix_zoo
    values = core_values(case.values, media)
    tally["core cases"] += 1
    if case.accepted is not None:
        result = zoo.run(case.task, **values)
        assert case.accepted(result), result
        if "prompt" in values:  # what the model saw: printable text, surrogates replaced
            prompt = zoo.check(zoo.registry.get(case.task), values)["prompt"]
            assert prompt.isprintable() and prompt.encode("utf-8")
        tally["core accepted"] += 1
        return
    with pytest.raises(ZooError) as err:
        zoo.run(case.task, **values)
    assert_clean(str(err.value), case.expect)
    if case.name is not None:
        assert isinstance(err.value, InvalidInput) and err.value.name == case.name, repr(err.value)
    assert err.value.fix, f"{case.id}: the error tells no fix: {err.value}"
    tally["core clean errors"] += 1


@pytest.fixture(scope="module")
def core_results() -> dict[str, dict[str, Any]]:
    """The core's result for each GOOD request, computed once (every one is deterministic)."""
    return {}


def _good(app, media: Path, task: str, tally: Counter, core_results: dict[str, dict[str, Any]]) -> None:
    """The endpoint still serves a good request, with the same result as the core."""
    zoo, client, _ = app
    good = GOOD[task]
    started = time.perf_counter()
    result = client.predict(**http_values(good.values, media), api_name=f"/{zoo.registry.get(task).endpoint()}")
    outputs = http_outputs(zoo, task, result)
    if task not in core_results:
        core_results[task] = zoo.run(task, **core_values(good.values, media))
    assert good.same(outputs, core_results[task]), (outputs, core_results[task])
    tally["follow-up requests served"] += 1
    tally["follow-up seconds"] += time.perf_counter() - started


@pytest.mark.app
@pytest.mark.parametrize("case", _params())
def test_http_error_is_readable_and_the_next_request_succeeds(app, media: Path, case: Case, tally: Counter,
                                                              core_results: dict[str, dict[str, Any]]) -> None:
    """The client reads the same words (no stack trace), and the endpoint then serves a good request."""
    zoo, client, url = app
    api = zoo.registry.get(case.task).endpoint()
    tally["http cases"] += 1
    if case.raw:
        event, payload = raw_call(url, client, api, case.values)
        assert event == "complete", payload
        result = http_outputs(zoo, case.task, payload[0] if len(payload) == 1 else payload)
    else:
        try:
            result = http_outputs(zoo, case.task,
                                  client.predict(**http_values(case.values, media), api_name=f"/{api}"))
        except Exception as exc:  # gradio_client raises AppError with the server's message
            result = None
            if case.accepted is not None:
                raise
            assert type(exc).__name__ == "AppError", repr(exc)
            assert_clean(str(exc), case.expect)
            tally["http clean errors"] += 1
    if case.accepted is not None:
        assert case.accepted(result), result
        tally["http accepted"] += 1
    else:
        assert result is None, f"{case.id} was served instead of refused: {result}"
    _good(app, media, case.task, tally, core_results)


# --------------------------------------------------------------------------- beyond the matrix


@pytest.mark.app
def test_body_that_is_not_json_or_not_utf8_gets_a_4xx(app, media: Path, tally: Counter, core_results) -> None:
    """Garbage bodies are refused by the HTTP layer (4xx, never 500), and the app keeps serving."""
    zoo, client, url = app
    for body in (b"{not json", b'{"data": ["\xff\xfe invalid utf-8"]}', b"\x00" * 64):
        request = urllib.request.Request(f"{url}gradio_api/call/text_generation", data=body,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert 400 <= err.value.code < 500, err.value.code
        tally["http cases"] += 1
        tally["http clean errors"] += 1
    _good(app, media, TG, tally, core_results)


@pytest.mark.app
def test_upload_over_max_file_size_is_refused(app, media: Path, tmp_path: Path, tally: Counter,
                                              core_results) -> None:
    """Uploads over ZOO_MAX_FILE_SIZE (gradio's max_file_size) are refused, client- and server-side."""
    import httpx
    from gradio_client import handle_file

    zoo, client, url = app
    assert zoo.settings.max_file_size == UPLOAD_LIMIT
    big = tmp_path / "big.wav"
    big.write_bytes((media / "speech.wav").read_bytes() + b"\0" * UPLOAD_LIMIT)
    # gradio_client reads the limit from the app's config and refuses before sending.
    with pytest.raises(ValueError) as err:
        client.predict(audio=handle_file(str(big)), api_name="/automatic_speech_recognition")
    assert_clean(str(err.value), (str(UPLOAD_LIMIT), "maximum file size"))
    # A client that ignores the config meets the server's own check.
    response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.wav", big.read_bytes())}, timeout=60)
    assert response.status_code == 413, response.text
    assert_clean(response.text, (str(UPLOAD_LIMIT),))
    tally["http cases"] += 2
    tally["http clean errors"] += 2
    _good(app, media, TC, tally, core_results)


def test_limits_are_settings_with_safe_defaults(model_cache_dir: Path) -> None:
    """Every limit has an env var, a safe default, and is enforced with the operator's value."""
    defaults = Settings()
    assert (defaults.max_text_chars, defaults.max_new_tokens, defaults.max_audio_seconds, defaults.max_file_size,
            defaults.max_image_side, defaults.max_steps) == (20_000, 1024, 600.0, 50_000_000, 1024, 50)
    envs = {s.attr: s.env for s in SETTINGS}
    for attr in ("max_text_chars", "max_new_tokens", "max_audio_seconds", "max_file_size", "max_image_side",
                 "max_steps", "max_queue", "max_concurrency_per_model"):
        assert envs[attr].startswith("ZOO_"), attr
    env = {"ZOO_MAX_TEXT_CHARS": "50", "ZOO_MAX_NEW_TOKENS": "16", "ZOO_MAX_STEPS": "3",
           "ZOO_MAX_IMAGE_SIDE": "128", "ZOO_MAX_AUDIO_SECONDS": "5", "ZOO_MAX_FILE_SIZE": "1MB",
           "ZOO_TINY": "1", "ZOO_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)}
    settings = Settings.from_env(env)
    assert settings.max_file_size == 1_000_000
    assert Limits.from_settings(settings) == Limits(50, 16, 5.0, 128, 3)
    zoo = Zoo(settings.replace(plugins=(TG, T2I)))
    for task, values, expect in (
        (TG, {"prompt": "x" * 51}, ("51", "50")),
        (TG, {"prompt": "Hi", "max_new_tokens": 17}, ("17", "16")),
        (T2I, {"prompt": "a fox", "steps": 4}, ("4", "3")),
        (T2I, {"prompt": "a fox", "width": 136}, ("136", "128")),
    ):
        with pytest.raises(InvalidInput) as err:
            zoo.run(task, **values)
        assert_clean(str(err.value), expect)


@pytest.mark.real
def test_audio_limit_from_the_environment(media: Path, model_cache_dir: Path) -> None:
    """ZOO_MAX_AUDIO_SECONDS=2 refuses the 4-second sentence before any model is loaded."""
    zoo = Zoo(Settings.from_env({"ZOO_MAX_AUDIO_SECONDS": "2", "ZOO_OFFLINE": "1",
                                 "ZOO_CACHE_DIR": str(model_cache_dir)}).replace(plugins=(ASR,)))
    with pytest.raises(InvalidInput) as err:
        zoo.run(ASR, audio=str(media / "speech.wav"))
    assert_clean(str(err.value), ("speech.wav", "2"))
    assert zoo.models.cache.keys() == []  # refused before loading anything
