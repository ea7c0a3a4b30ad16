"""`python -m zoo serve-endpoint`: this zoo's plugins behind the HTTP formats InferenceClient speaks.

One zoo on a GPU box serves another zoo's tabs: there, set
`ZOO_REMOTE_<TASK>=http://HOST:PORT/<task>` (see the README, "Beyond one machine").

    POST /<task>                      {"inputs": ..., "parameters": {...}} -> the task's answer, as an
                                      Inference Endpoint answers (image and audio inputs: raw bytes, or
                                      base64 in the JSON; image and audio answers: the file's bytes)
    POST /text-generation             also TGI's `"stream": true`, as server-sent events
    POST /<task>/v1/chat/completions  OpenAI-compatible chat (streamed with `"stream": true`) on the
                                      task's language model (what a remote zoo's language-model tab calls)
    /v1/...                           the OpenAI-compatible API, the app's own (zoo/openai_api.py)
    GET  /  or  /health               the tasks served

Each plugin translates its task's format itself (`Plugin.from_endpoint` / `to_endpoint`);
requests run through `Zoo.run` / `Zoo.stream` and the shared loader, so fields are
checked, the operator's limits apply and models are shared exactly as in the app.
Errors are JSON `{"error": ..., "error_type": ...}`: 413 a body over the upload limit
(ZOO_MAX_FILE_SIZE), 422 bad input, 403 a model the operator forbids, 404 an unknown task,
500 anything else (in a stream: an `error` event); no message shows a server path. The /v1 routes
answer in OpenAI's error format. With ZOO_API_KEY set, every route but / and /health requires
`Authorization: Bearer <key>` (a remote zoo sends its HF_TOKEN so).
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
from pathlib import Path
from typing import Any, Iterator

from zoo import __version__
from zoo.errors import InvalidInput, ModelNotAllowed, TooLarge, UnknownPlugin, ZooError, redact_paths
from zoo.openai_api import (OpenAIApi, Unauthorized, authorize, body_limit, drain, first_event, json_default,
                            openai_mount, read_body, sse)
from zoo.plugin import Audio, Image, Plugin, RunContext, Text, Video
from zoo.runner import Zoo

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the app


def create_app(zoo: Zoo) -> Any:
    """The ASGI app (starlette) serving every plugin of `zoo`, and the OpenAI-compatible API at /v1."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    api = OpenAIApi(zoo)

    async def health(request: Any) -> Any:
        return JSONResponse({"status": "ok", "version": __version__, "tasks": zoo.registry.tasks(),
                             "routes": {"task": "POST /<task>", "chat": "POST /<task>/v1/chat/completions",
                                        "openai": "/v1 (GET /v1/models)"}})

    async def task_chat(request: Any) -> Any:
        return await api.chat(request, task=request.path_params["task"])

    async def task(request: Any) -> Any:
        return await _task(zoo, request.path_params["task"], request)

    return Starlette(routes=[
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        openai_mount(zoo, api),
        Route("/{task}/v1/chat/completions", api.handler(task_chat), methods=["POST"]),
        Route("/{task}", task, methods=["POST"]),
    ])


def serve(zoo: Zoo, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the endpoint server until interrupted."""
    import uvicorn

    log.info("Serving %s on http://%s:%d/<task> and the OpenAI-compatible API on /v1%s",
             ", ".join(zoo.registry.tasks()), host, port, " (API key required)" if zoo.settings.api_key else "")
    uvicorn.run(create_app(zoo), host=host, port=port, log_level="info")


# --------------------------------------------------------------------------- tasks


async def _task(zoo: Zoo, task: str, request: Any) -> Any:
    """POST /<task>: decode the request, run the plugin in a worker thread, encode its answer."""
    import anyio
    from starlette.responses import StreamingResponse

    try:
        authorize(zoo.settings.api_key, request.headers)
        plugin = zoo.registry.get(task)
        body = await read_body(request, body_limit(zoo))
        payload, inputs, parameters = _read_request(body, request.headers.get("content-type", ""))
        if payload.get("stream"):
            events = _text_events(zoo, plugin, inputs, parameters)
            cancel = threading.Event()
            first = await first_event(events)  # errors before any byte: a status code
            return StreamingResponse(drain(first, events, cancel, _error_event), media_type="text/event-stream")
        answer = await anyio.to_thread.run_sync(functools.partial(_run_plugin, zoo, plugin, inputs, parameters,
                                                                  zoo.settings.max_file_size))
    except Exception as exc:
        return _error(exc)
    return _answer(answer)


def _error_event(exc: BaseException) -> bytes:
    """TGI's error event in a stream."""
    return sse({"error": redact_paths(str(exc)), "error_type": type(exc).__name__})


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
                    yield sse(_tgi_token(index, pending))
                    index += 1
                pending = piece
    finally:
        ctx.cancel_event.set()
    limit = values.get("max_new_tokens")
    details = {"finish_reason": "length" if limit and index + 1 >= limit else "eos_token",
               "generated_tokens": index + (pending is not None), "seed": values.get("seed"), "input_length": 0}
    yield sse({**_tgi_token(index, pending or ""), "generated_text": text, "details": details})
    yield b"data: [DONE]\n\n"


def _tgi_token(index: int, text: str) -> dict[str, Any]:
    return {"index": index, "token": {"id": 0, "text": text, "logprob": 0.0, "special": False},
            "generated_text": None, "details": None, "top_tokens": None}


# --------------------------------------------------------------------------- responses


def _answer(answer: Any) -> Any:
    """Bytes as an image or audio file; anything else as JSON."""
    from starlette.responses import Response

    if isinstance(answer, (bytes, bytearray)):
        return Response(bytes(answer), media_type=_media_type(bytes(answer)))
    return Response(json.dumps(answer, default=json_default), media_type="application/json")


def _media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    return "application/octet-stream"


def _error(exc: BaseException) -> Any:
    """A JSON error with the status a client can act on (InferenceClient shows the message)."""
    from starlette.responses import JSONResponse

    if isinstance(exc, Unauthorized):
        status = 401
    elif isinstance(exc, TooLarge):
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
