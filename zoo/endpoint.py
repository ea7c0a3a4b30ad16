"""`python -m zoo serve-endpoint`: this zoo's plugins behind the HTTP formats InferenceClient speaks.

One zoo on a GPU box serves another zoo's tabs: there, set
`ZOO_REMOTE_<TASK>=http://HOST:PORT/<task>` (see the README, "Beyond one machine").

    POST /<task>                      {"inputs": ..., "parameters": {...}} -> the task's answer, as an
                                      Inference Endpoint answers (image and audio inputs: raw bytes, or
                                      base64 in the JSON; image and audio answers: the file's bytes)
    POST /text-generation             also TGI's `"stream": true`, as server-sent events
    POST /<task>/v1/chat/completions  OpenAI-compatible chat (streamed with `"stream": true`) on the
                                      task's language model, or the zoo's chat model
    POST /v1/chat/completions         the same on the zoo's chat model
    GET  /  or  /health               the tasks served

Each plugin translates its task's format itself (`Plugin.from_endpoint` / `to_endpoint`);
requests run through `Zoo.run` / `Zoo.stream` and the shared loader, so fields are
checked, the operator's limits apply and models are shared exactly as in the app.
Errors are JSON `{"error": ..., "error_type": ...}`: 413 a body over the upload limit
(ZOO_MAX_FILE_SIZE), 422 bad input, 403 a model the operator forbids, 404 an unknown task,
500 anything else (in a stream: an `error` event); no message shows a server path.
starlette and uvicorn (installed with gradio) are imported when the server is built.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from zoo import __version__
from zoo.kinds import get_kind
from zoo.errors import InvalidInput, ModelNotAllowed, TooLarge, UnknownPlugin, ZooError, redact_paths
from zoo.plugin import Audio, Float, Image, Int, Plugin, RunContext, Seed, Text, Video
from zoo.runner import Zoo

log = logging.getLogger(__name__)

_END = object()

# Chat-completion options, checked like plugin fields (OpenAI's defaults; the zoo's limits cap them).
_MAX_TOKENS = Int("max_tokens", 256, 1, 4096, limit="max_new_tokens")
_TEMPERATURE = Float("temperature", 1.0, 0.0, 2.0)
_TOP_P = Float("top_p", 1.0, 0.01, 1.0)
_TOP_K = Int("top_k", 0, 0, 1000)
_REPETITION = Float("repetition_penalty", 1.0, 1.0, 2.0)
_SEED = Seed()  # -1 or none: a random seed


# --------------------------------------------------------------------------- the app


def create_app(zoo: Zoo) -> Any:
    """The ASGI app (starlette) serving every plugin of `zoo`."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok", "version": __version__, "tasks": zoo.registry.tasks(),
                             "routes": {"task": "POST /<task>", "chat": "POST /<task>/v1/chat/completions"}})

    async def chat(request: Any) -> Any:
        return await _chat(zoo, request.path_params.get("task"), request)

    async def task(request: Any) -> Any:
        return await _task(zoo, request.path_params["task"], request)

    return Starlette(routes=[
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/{task}/v1/chat/completions", chat, methods=["POST"]),
        Route("/{task}", task, methods=["POST"]),
    ])


def serve(zoo: Zoo, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the endpoint server until interrupted."""
    import uvicorn

    log.info("Serving %s on http://%s:%d/<task>", ", ".join(zoo.registry.tasks()), host, port)
    uvicorn.run(create_app(zoo), host=host, port=port, log_level="info")


# --------------------------------------------------------------------------- tasks


async def _task(zoo: Zoo, task: str, request: Any) -> Any:
    """POST /<task>: decode the request, run the plugin in a worker thread, encode its answer."""
    import anyio
    from starlette.responses import StreamingResponse

    try:
        plugin = zoo.registry.get(task)
        body = await read_body(request, _body_limit(zoo))
        payload, inputs, parameters = _read_request(body, request.headers.get("content-type", ""))
        if payload.get("stream"):
            events = _text_events(zoo, plugin, inputs, parameters)
            cancel = threading.Event()
            first = await anyio.to_thread.run_sync(next, events, _END)  # errors before any byte: a status code
            return StreamingResponse(_drain(first, events, cancel), media_type="text/event-stream")
        answer = await anyio.to_thread.run_sync(functools.partial(_run_plugin, zoo, plugin, inputs, parameters,
                                                                  zoo.settings.max_file_size))
    except Exception as exc:
        return _error(exc)
    return _answer(answer)


def _body_limit(zoo: Zoo) -> int:
    """The largest body accepted: the upload limit, with room for base64 (4 bytes per 3) and the JSON around it."""
    return zoo.settings.max_file_size * 4 // 3 + 65_536


def _too_large(size: int | str, limit: int) -> TooLarge:
    return TooLarge("body", f"<{size} bytes>", f"must be at most {limit} bytes (the server's upload limit)",
                    "send a smaller file, or the operator can raise ZOO_MAX_FILE_SIZE")


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 past `limit`: at once from Content-Length, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidInput("Content-Length", declared, "must be a whole number of bytes")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies have no length: count as they come
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _read_request(body: bytes, content_type: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(payload, inputs, parameters) from a JSON body, or from raw bytes (an image or audio file)."""
    if "json" not in content_type.lower():
        return {}, body, {}
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise InvalidInput("body", body[:80].decode("utf-8", "replace"), f"must be JSON ({exc})") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise InvalidInput("body", payload, 'must be a JSON object with "inputs" (and optional "parameters")',
                           'send {"inputs": ..., "parameters": {...}}')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters", parameters, "must be a JSON object")
    return payload, payload["inputs"], parameters


def _run_plugin(zoo: Zoo, plugin: Plugin, inputs: Any, parameters: dict[str, Any],
                max_file_size: int | None = None) -> Any:
    """from_endpoint -> Zoo.run -> to_endpoint, with a temporary folder for files in and out."""
    with tempfile.TemporaryDirectory(prefix="zoo-endpoint-") as tmp:
        if plugin.inputs and isinstance(plugin.inputs[0], (Image, Audio, Video)):
            inputs = _save_upload(inputs, Path(tmp), max_file_size)
        values = plugin.from_endpoint(inputs, parameters)
        outputs = zoo.run(plugin.task, ctx=RunContext(limits=zoo.limits, temp_dir=tmp), **values)
        return plugin.to_endpoint(outputs)  # inside the block: it may read files the plugin wrote there


def _save_upload(inputs: Any, folder: Path, max_file_size: int | None = None) -> str:
    """An image or audio input (raw bytes, or base64 text from JSON) written to a file; returns its path."""
    if isinstance(inputs, str):
        try:
            inputs = base64.b64decode(inputs, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("inputs", inputs, "must be the file's bytes, or base64 in JSON",
                               "send the file as the request body, or base64-encode it") from None
    if not isinstance(inputs, (bytes, bytearray)) or not inputs:
        raise InvalidInput("inputs", type(inputs).__name__, "must be a non-empty file",
                           "send the file as the request body, or base64-encode it in JSON")
    if max_file_size is not None and len(inputs) > max_file_size:
        raise TooLarge("inputs", f"<{len(inputs)} bytes>", f"must be a file of at most {max_file_size} bytes "
                       "(the server's upload limit)", "send a smaller file, or the operator can raise ZOO_MAX_FILE_SIZE")
    path = folder / "upload"
    path.write_bytes(bytes(inputs))
    return str(path)


def _text_events(zoo: Zoo, plugin: Plugin, inputs: Any, parameters: dict[str, Any]) -> Iterator[bytes]:
    """TGI's streamed text generation: one event per new piece, the last with the whole text and details."""
    if not (plugin.can_stream and plugin.outputs and isinstance(plugin.outputs[0], Text)):
        raise InvalidInput("stream", True, f"is only offered by tasks that stream text, not `{plugin.task}`",
                           'leave "stream" out')
    values = plugin.from_endpoint(inputs, parameters)
    name = plugin.outputs[0].name
    ctx = RunContext(limits=zoo.limits)
    text, pending, index = "", None, 0
    try:
        for outputs in zoo.stream(plugin.task, values, ctx):
            grown = outputs.get(name) or ""
            piece, text = grown[len(text):], grown
            if piece:
                if pending is not None:  # one piece held back: the last one carries the details
                    yield _sse(_tgi_token(index, pending))
                    index += 1
                pending = piece
    finally:
        ctx.cancel_event.set()
    limit = values.get("max_new_tokens")
    details = {"finish_reason": "length" if limit and index + 1 >= limit else "eos_token",
               "generated_tokens": index + (pending is not None), "seed": values.get("seed"), "input_length": 0}
    yield _sse({**_tgi_token(index, pending or ""), "generated_text": text, "details": details})
    yield b"data: [DONE]\n\n"


def _tgi_token(index: int, text: str) -> dict[str, Any]:
    return {"index": index, "token": {"id": 0, "text": text, "logprob": 0.0, "special": False},
            "generated_text": None, "details": None, "top_tokens": None}


# --------------------------------------------------------------------------- chat completions


async def _chat(zoo: Zoo, task: str | None, request: Any) -> Any:
    """POST [/<task>]/v1/chat/completions: OpenAI's chat format on the task's (or the zoo's) language model."""
    import anyio
    from starlette.responses import JSONResponse, StreamingResponse

    from zoo.generation import GenerationParams, GenerationStats

    try:
        body = await read_body(request, _body_limit(zoo))  # TooLarge is a ValueError too: read outside the try
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:
            raise InvalidInput("body", "<not JSON>", f"must be a JSON chat request ({exc})") from None
        if not isinstance(payload, dict):
            raise InvalidInput("body", payload, "must be a JSON object")
        ref, kind = _chat_model(zoo, task)
        messages = _messages(payload.get("messages"))
        _refuse_unsupported(payload)
        params = GenerationParams.from_values({
            "max_new_tokens": _MAX_TOKENS.check(payload.get("max_tokens") or payload.get("max_completion_tokens"),
                                                zoo.limits),
            "temperature": _TEMPERATURE.check(payload.get("temperature"), zoo.limits),
            "top_p": _TOP_P.check(payload.get("top_p"), zoo.limits),
            "top_k": _TOP_K.check(payload.get("top_k"), zoo.limits),
            "repetition_penalty": _REPETITION.check(payload.get("repetition_penalty",
                                                                payload.get("repeat_penalty")), zoo.limits),
            "seed": None if payload.get("seed") is None else _SEED.check(payload.get("seed"), zoo.limits),
        })
        stats, cancel = GenerationStats(), threading.Event()
        pieces = _lm_pieces(zoo, ref, kind, messages, params, cancel, stats)
        reply = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": ref,
                 "system_fingerprint": f"model-zoo-{__version__}"}
        if payload.get("stream"):
            events = _chat_events(pieces, reply, params, stats)
            first = await anyio.to_thread.run_sync(next, events, _END)  # loads the model; errors get a status
            return StreamingResponse(_drain(first, events, cancel), media_type="text/event-stream")
        text = await anyio.to_thread.run_sync(lambda: "".join(pieces))
    except Exception as exc:
        return _error(exc)
    return JSONResponse({
        **reply, "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": _finish(stats, params)}],
        "usage": {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.new_tokens,
                  "total_tokens": stats.prompt_tokens + stats.new_tokens},
    })


def _chat_model(zoo: Zoo, task: str | None) -> tuple[str, Any]:
    """(ref, kind) of the language model that answers chat for `task`: its own, else the first tab's
    (in tab order) whose model kind is a language model."""
    names = [zoo.registry.get(task).task] if task else []  # an unknown task is a 404
    names += [p.task for p in zoo.registry.plugins() if _is_lm(getattr(p, "model_kind", None))]
    for name in names:
        plugin = zoo.registry.get(name)
        default = zoo.default_model(plugin)
        values = {f.name: f.default for f in plugin.fields()} | {"model": default}
        ref, kind = plugin.model_for(values, default)
        if _is_lm(kind):
            return ref, kind
    raise UnknownPlugin("No language model is served here for chat completions.",
                        "serve a plugin whose model kind is a language model, such as text generation or chat "
                        "(--plugins)")


def _is_lm(kind: Any) -> bool:
    """True for a kind (or a registered kind's name) whose loaded model is a LanguageModel."""
    if kind is None:
        return False
    try:
        return get_kind(kind).language_model
    except ZooError:
        return False


def _messages(raw: Any) -> list[dict[str, str]]:
    """OpenAI messages as {"role", "content": str}; content given as a list of text parts is joined."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("messages", raw, "must be a non-empty list of messages",
                           'send [{"role": "user", "content": "Hi"}]')
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise InvalidInput(f"messages[{i}]", m, 'must be {"role": "system"|"user"|"assistant", "content": ...}')
        content = m.get("content")
        if isinstance(content, list):
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                raise InvalidInput(f"messages[{i}].content", content, "may hold only text parts here")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content", content, "must be text")
        messages.append({"role": m["role"], "content": content})
    return messages


def _refuse_unsupported(payload: dict[str, Any]) -> None:
    """Options a client may rely on that this server does not implement: say so rather than ignore them."""
    if payload.get("n") not in (None, 1):
        raise InvalidInput("n", payload["n"], "must be 1 here (one completion per request)")
    for name in ("stop", "tools", "logit_bias"):
        if payload.get(name):
            raise InvalidInput(name, payload[name], "is not supported by this server", f"leave `{name}` out")
    if payload.get("logprobs"):
        raise InvalidInput("logprobs", payload["logprobs"], "is not supported by this server", "leave it out")
    fmt = payload.get("response_format")
    if fmt and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise InvalidInput("response_format", fmt, "must be text here (no JSON mode)", "leave it out")
    for name in ("frequency_penalty", "presence_penalty"):
        if payload.get(name):
            raise InvalidInput(name, payload[name], "is not supported here", "use repetition_penalty instead")


def _lm_pieces(zoo: Zoo, ref: str, kind: str, messages: list[dict[str, str]], params: Any,
               cancel: threading.Event, stats: Any) -> Iterator[str]:
    """The reply's text pieces from the shared loader's model: its chat template, its stream."""
    with zoo.models.use(ref, kind) as loaded:
        lm = loaded.model
        prompt = lm.chat_prompt(messages)
        window = lm.context_length
        needed = lm.count_tokens(prompt) + params.max_new_tokens
        if needed > window:
            raise InvalidInput("messages", f"<{len(messages)} messages>",
                               f"need {needed} tokens with max_tokens, over the model's {window}-token window",
                               "send fewer or shorter messages, or lower max_tokens")
        yield from lm.stream(prompt, params, cancel=cancel, stats=stats, templated=lm.has_chat_template)


def _chat_events(pieces: Iterator[str], reply: dict[str, Any], params: Any, stats: Any) -> Iterator[bytes]:
    """Server-sent chat.completion.chunk events, then the finish reason and [DONE]."""
    chunk = {**reply, "object": "chat.completion.chunk"}
    role = {"role": "assistant"}
    for piece in pieces:
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {**role, "content": piece}, "logprobs": None,
                                          "finish_reason": None}]})
        role = {}
    yield _sse({**chunk, "choices": [{"index": 0, "delta": role, "logprobs": None,
                                      "finish_reason": _finish(stats, params)}]})
    yield b"data: [DONE]\n\n"


def _finish(stats: Any, params: Any) -> str:
    return "length" if stats.new_tokens >= params.max_new_tokens else "stop"


# --------------------------------------------------------------------------- responses


async def _drain(first: Any, events: Iterator[bytes], cancel: threading.Event) -> AsyncIterator[bytes]:
    """Stream a sync event generator from worker threads; a client that leaves stops the generation."""
    import anyio

    try:
        item = first
        while item is not _END:
            yield item
            item = await anyio.to_thread.run_sync(next, events, _END)
    except Exception as exc:  # the status line is gone: report the failure in the stream itself
        log.warning("Stream failed: %s: %s", type(exc).__name__, exc)
        yield _sse({"error": redact_paths(str(exc)), "error_type": type(exc).__name__})
    finally:
        cancel.set()
        with anyio.CancelScope(shield=True):  # release the model even when the client went away
            await anyio.to_thread.run_sync(events.close)


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, default=_json_default).encode() + b"\n\n"


def _answer(answer: Any) -> Any:
    """Bytes as an image or audio file; anything else as JSON."""
    from starlette.responses import Response

    if isinstance(answer, (bytes, bytearray)):
        return Response(bytes(answer), media_type=_media_type(bytes(answer)))
    return Response(json.dumps(answer, default=_json_default), media_type="application/json")


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    return "application/octet-stream"


def _json_default(value: Any) -> Any:
    """numpy numbers and arrays become numbers and lists; anything else (paths...) its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _error(exc: BaseException) -> Any:
    """A JSON error with the status a client can act on (InferenceClient shows the message)."""
    from starlette.responses import JSONResponse

    if isinstance(exc, TooLarge):
        status = 413
    elif isinstance(exc, InvalidInput):
        status = 422
    elif isinstance(exc, ModelNotAllowed):
        status = 403
    elif isinstance(exc, UnknownPlugin):
        status = 404
    elif isinstance(exc, ZooError):
        status = 500
    else:
        log.exception("Endpoint request failed")
        status = 500
    # Uploads live in temporary folders: a message may quote one, the client must not see where.
    return JSONResponse({"error": redact_paths(str(exc)), "error_type": type(exc).__name__}, status_code=status)
