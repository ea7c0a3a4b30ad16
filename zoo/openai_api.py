"""The OpenAI-compatible API under `/v1`, on the app (`python app.py`) and on `python -m zoo serve-endpoint`.

    GET  /v1/models                   every model the tabs can run, each with the tabs (tasks) it serves
    GET  /v1/models/{id}              one of them
    POST /v1/chat/completions         chat (`"stream": true`: server-sent chunks as they are decoded)
    POST /v1/completions              raw text completion (no chat template), streamed or not
    POST /v1/embeddings               unit vectors (the semantic-search tab's encoder; `float` or `base64`)
    POST /v1/audio/transcriptions     multipart upload; response_format json, text, srt, vtt, verbose_json
    POST /v1/audio/translations       the same, spoken language -> English (multilingual models)
    POST /v1/audio/speech             speech as wav, mp3, flac, opus, aac (ffmpeg converts) or pcm
    POST /v1/images/generations       PNG pictures as b64_json (n, size "WxH", seed, steps...)

Which tab answers a route is the plugin's own declaration: `openai = ("chat/completions",)` on the
Plugin (the first in tab order wins). The route then speaks that tab's fields, the contract written
in each handler below (chat: message, history, system_prompt, the sampling options -> reply; ...).
Every request runs through `Zoo.stream`/`Zoo.run` as the tab does: the same field checks and the
operator's limits, the model vetting, the shared cache, the worker processes and each model's
ZOO_CONCURRENCY slots. Requests beyond a tab's slots plus ZOO_MAX_QUEUE waiting are answered 429.
`model` is a reference the tab accepts ("" or left out: the tab's default); one it does not is a 404
whose fix points at GET /v1/models.

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`; the message is the zoo's, with
its fix, and never shows a server path: 400 a bad value, 401 a missing or wrong key (ZOO_API_KEY),
404 an unknown model, tab or route, 413 a body over ZOO_MAX_FILE_SIZE, 429 busy, 500 anything else
(in a stream: an `error` event, then the end). starlette (installed with gradio) is imported when the
routes are built.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Mapping

from zoo import __version__
from zoo.errors import (Cancelled, InvalidInput, ModelNotAllowed, ModelNotFound, TooLarge, UnknownPlugin, ZooError,
                        redact_paths)
from zoo.kinds import get_kind
from zoo.plugin import Plugin, RunContext
from zoo.runner import Zoo

log = logging.getLogger(__name__)

PREFIX = "/v1"
#: The routes a plugin may answer (its `openai` declaration), by path under /v1.
ROUTES = ("chat/completions", "completions", "embeddings", "audio/transcriptions", "audio/translations",
          "audio/speech", "images/generations")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: Speech formats: ffmpeg arguments that encode a WAV into each (wav and pcm need no ffmpeg).
SPEECH_FORMATS = {"mp3": (["-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3"], "audio/mpeg"),
                  "opus": (["-c:a", "libopus", "-b:a", "48k", "-f", "ogg"], "audio/ogg"),
                  "aac": (["-c:a", "aac", "-b:a", "96k", "-f", "adts"], "audio/aac"),
                  "flac": (["-c:a", "flac", "-f", "flac"], "audio/flac")}
EMBEDDING_BATCH = 100  # inputs per run of the semantic-search tab (its top_k cap)
MAX_EMBEDDING_INPUTS = 2048  # as OpenAI's own limit

_END = object()


# --------------------------------------------------------------------------- errors


class ApiError(ZooError):
    """An error of the API itself (key, route, queue), with its HTTP status and OpenAI type and code."""

    status = 500
    type = "server_error"
    code = "server_error"


class Unauthorized(ApiError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class RouteNotFound(ApiError):
    status, type, code = 404, "not_found_error", "unknown_route"


class Busy(ApiError):
    status, type, code = 429, "rate_limit_error", "busy"


def error_body(exc: BaseException, models_url: str = f"{PREFIX}/models") -> tuple[int, dict[str, Any]]:
    """(HTTP status, OpenAI error body) for an exception; the zoo's message and fix, without server paths."""
    param = None
    if isinstance(exc, ApiError):
        status, kind, code = exc.status, exc.type, exc.code
    elif isinstance(exc, TooLarge):
        status, kind, code, param = 413, "invalid_request_error", "too_large", exc.name
    elif isinstance(exc, InvalidInput):
        status, kind, code, param = 400, "invalid_request_error", "invalid_value", exc.name
    elif isinstance(exc, (ModelNotAllowed, ModelNotFound)):
        status, kind, code, param = 404, "invalid_request_error", "model_not_found", "model"
        listing = f"GET {models_url} lists the models served here"
        if listing not in (exc.fix or ""):
            exc.fix = f"{exc.fix}; {listing}" if exc.fix else listing
    elif isinstance(exc, UnknownPlugin):
        status, kind, code = 404, "not_found_error", "unknown_tab"
    elif isinstance(exc, Cancelled):
        status, kind, code = 499, "server_error", "cancelled"
    elif isinstance(exc, ZooError):
        status, kind, code = 500, "server_error", "server_error"
    else:
        log.exception("OpenAI-compatible request failed")
        status, kind, code = 500, "server_error", "server_error"
        exc = ZooError(f"The server failed: {type(exc).__name__}: {exc}", "try again; if it repeats, check the "
                       "server's log")
    return status, {"error": {"message": redact_paths(str(exc)), "type": kind, "param": param, "code": code}}


def error_response(exc: BaseException, models_url: str = f"{PREFIX}/models") -> Any:
    from starlette.responses import JSONResponse

    status, body = error_body(exc, models_url)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 429 else None
    return JSONResponse(body, status_code=status, headers=headers)


def authorize(api_key: str | None, headers: Mapping[str, str]) -> None:
    """Refuse a request without `Authorization: Bearer <ZOO_API_KEY>` when a key is set (constant-time compare)."""
    if not api_key:
        return
    given = headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if not given:
        raise Unauthorized("This server requires an API key, and the request sent none.",
                           "send `Authorization: Bearer <key>` (the openai client: api_key=...; OPENAI_API_KEY)")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())
    if not ok:  # the key sent is never repeated back, nor logged
        raise Unauthorized("The API key sent is not this server's key.",
                           "send `Authorization: Bearer <key>` with the key the operator set in ZOO_API_KEY")


# --------------------------------------------------------------------------- request bodies


def body_limit(zoo: Zoo) -> int:
    """The largest body accepted: the upload limit, with room for base64 (4 bytes per 3) and the JSON around it."""
    return zoo.settings.max_file_size * 4 // 3 + 65_536


def _too_large(size: int | str, limit: int) -> TooLarge:
    return TooLarge("body", f"<{size} bytes>", f"must be at most {limit} bytes (the server's upload limit)",
                    "send a smaller file, or the operator can raise ZOO_MAX_FILE_SIZE")


def check_declared_size(request: Any, limit: int) -> None:
    """413 at once from Content-Length, before any of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InvalidInput("Content-Length", declared, "must be a whole number of bytes")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refused with 413 past `limit`: at once from Content-Length, else while it streams in."""
    check_declared_size(request, limit)
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies have no length: count as they come
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Any, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise InvalidInput("body", body[:80].decode("utf-8", "replace"), f"must be a JSON object ({exc})",
                           "send JSON with Content-Type: application/json") from None
    if not isinstance(payload, dict):
        raise InvalidInput("body", payload, "must be a JSON object", "send e.g. {\"model\": \"\", ...}")
    return payload


# --------------------------------------------------------------------------- streams


def sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, default=json_default).encode() + b"\n\n"


def json_default(value: Any) -> Any:
    """numpy numbers and arrays become numbers and lists; anything else (paths...) its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


async def drain(first: Any, events: Iterator[bytes], cancel: threading.Event,
                on_error: Callable[[BaseException], bytes], done: Callable[[], None] | None = None
                ) -> AsyncIterator[bytes]:
    """Stream a sync event generator from worker threads; a client that leaves stops the work.

    An error after the first event is sent as the event `on_error` makes (the status line is gone)."""
    import anyio

    try:
        item = first
        while item is not _END:
            yield item
            item = await anyio.to_thread.run_sync(next, events, _END)
    except Exception as exc:
        log.warning("Stream failed: %s: %s", type(exc).__name__, redact_paths(str(exc)))
        yield on_error(exc)
    finally:
        cancel.set()
        with anyio.CancelScope(shield=True):  # release the model even when the client went away
            await anyio.to_thread.run_sync(events.close)
            if done is not None:
                done()


async def first_event(events: Iterator[bytes]) -> Any:
    """The stream's first event, from a worker thread: loading and checks happen here, so errors get a status."""
    import anyio

    return await anyio.to_thread.run_sync(next, events, _END)


def event_stream(first: Any, events: Iterator[bytes], cancel: threading.Event,
                 done: Callable[[], None] | None = None) -> Any:
    from starlette.responses import StreamingResponse

    def on_error(exc: BaseException) -> bytes:
        return sse(error_body(exc)[1])

    return StreamingResponse(drain(first, events, cancel, on_error, done), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --------------------------------------------------------------------------- the API


def is_language_model(kind: Any) -> bool:
    """True for a kind (or a registered kind's name) whose loaded model is a LanguageModel."""
    if kind is None:
        return False
    try:
        return get_kind(kind).language_model
    except ZooError:
        return False


class OpenAIApi:
    """The /v1 routes over one zoo; `routes()` for a starlette or FastAPI app."""

    def __init__(self, zoo: Zoo):
        self.zoo = zoo
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._limiter: Any = None
        for plugin in zoo.registry.plugins():  # a misspelt route would leave the route to no tab, unnoticed
            for route in sorted(set(getattr(plugin, "openai", ())) - set(ROUTES)):
                log.warning("%s declares openai route %r, which is not one of: %s", plugin.task, route,
                            ", ".join(ROUTES))

    # ------------------------------------------------------------------ plumbing
    def plugin_for(self, route: str) -> Plugin:
        """The tab that answers `route`: the first, in tab order, whose `openai` declares it."""
        for plugin in self.zoo.registry.plugins():
            if route in getattr(plugin, "openai", ()):
                return plugin
        raise UnknownPlugin(f"No tab served here answers {PREFIX}/{route}.",
                            "serve the plugin that declares it (check ZOO_PLUGINS and ZOO_PLUGINS_DENY); "
                            f"tabs served: {', '.join(self.zoo.registry.tasks()) or '(none)'}")

    def pick_model(self, plugin: Plugin, requested: Any) -> str:
        """The model for a request: "" (the tab's default) or a reference the tab accepts; else 404."""
        if requested is None or requested == "":
            return ""
        if not isinstance(requested, str):
            raise InvalidInput("model", requested, "must be a model name (text)", f"GET {PREFIX}/models lists them")
        if plugin.models is None:
            return ""
        try:
            return self.zoo.check_model(plugin, requested)
        except InvalidInput as exc:  # a malformed reference names no model served here
            raise ModelNotFound(f"`{requested}` is not a model {plugin.title} ({plugin.task}) can run: {exc.message}",
                                f"pick one of: {', '.join(self.zoo.model_choices(plugin))}") from None
        except ModelNotAllowed as exc:
            exc.message = f"{plugin.title} ({plugin.task}): {exc.message}"
            exc.args = (exc.message,)
            raise

    @contextmanager
    def admitted(self, plugin: Plugin) -> Iterator[None]:
        """A place among the tab's running and waiting requests (its model's slots + ZOO_MAX_QUEUE), or 429."""
        release = self.admit(plugin)
        try:
            yield
        finally:
            release()

    def admit(self, plugin: Plugin) -> Callable[[], None]:
        settings = self.zoo.settings
        room = max(1, settings.max_concurrency_per_model) + max(0, settings.max_queue)
        with self._lock:
            if self._in_flight.get(plugin.task, 0) >= room:
                raise Busy(f"{plugin.title} is busy: {room} requests are running or waiting for its model.",
                           "retry in a moment (the openai client retries 429 by itself); the operator can raise "
                           "ZOO_MAX_QUEUE or ZOO_CONCURRENCY")
            self._in_flight[plugin.task] = self._in_flight.get(plugin.task, 0) + 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._in_flight[plugin.task] -= 1

        return release

    @property
    def limiter(self) -> Any:
        """Threads of this API's own: requests waiting for a model never take the ones gradio's handlers use."""
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(max(16, self.zoo.settings.max_queue))
        return self._limiter

    async def run(self, plugin: Plugin, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Zoo.run in a worker thread, within the tab's admission."""
        import anyio

        with self.admitted(plugin), openai_names():
            try:
                return await anyio.to_thread.run_sync(functools.partial(self.zoo.run, plugin.task, ctx=ctx, **values),
                                                      limiter=self.limiter)
            finally:
                ctx.cancel_event.set()

    async def stream(self, plugin: Plugin, values: dict[str, Any], ctx: RunContext,
                     events: Callable[[Iterator[dict[str, Any]]], Iterator[bytes]]) -> Any:
        """A server-sent event response of `events(Zoo.stream(...))`; errors before the first event get a status."""
        release = self.admit(plugin)
        try:
            stream = events(self.zoo.stream(plugin.task, values, ctx))
            with openai_names():
                first = await first_event(stream)
        except BaseException:
            ctx.cancel_event.set()
            release()
            raise
        return event_stream(first, stream, ctx.cancel_event, release)

    def new_context(self, temp_dir: str | None = None) -> RunContext:
        return RunContext(limits=self.zoo.limits, temp_dir=temp_dir)

    def routes(self) -> list[Any]:
        """The routes, relative to /v1 (mount them there)."""
        from starlette.routing import Route

        handle = self.handler
        return [
            Route("/models", handle(self.models), methods=["GET"]),
            Route("/models/{model:path}", handle(self.model), methods=["GET"]),
            Route("/chat/completions", handle(self.chat), methods=["POST"]),
            Route("/completions", handle(self.completions), methods=["POST"]),
            Route("/embeddings", handle(self.embeddings), methods=["POST"]),
            Route("/audio/transcriptions", handle(functools.partial(self.transcriptions, route=ROUTES[3])),
                  methods=["POST"]),
            Route("/audio/translations", handle(functools.partial(self.transcriptions, route=ROUTES[4])),
                  methods=["POST"]),
            Route("/audio/speech", handle(self.speech), methods=["POST"]),
            Route("/images/generations", handle(self.images), methods=["POST"]),
            Route("/{path:path}", handle(self.unknown_route), methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]

    def handler(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The key check, then the route; any error as OpenAI's error body."""
        async def handle(request: Any) -> Any:
            try:
                authorize(self.zoo.settings.api_key, request.headers)
                return await fn(request)
            except Exception as exc:
                return error_response(exc, models_url(request))

        return handle

    async def unknown_route(self, request: Any) -> Any:
        base = f"{str(request.base_url).rstrip('/')}{PREFIX}"  # URLs, not paths: messages cut server paths
        raise RouteNotFound(f"{request.method} {request.url} is not a route of this API.",
                            f"use GET {base}/models, or POST " + ", ".join(f"{base}/{r}" for r in ROUTES))

    # ------------------------------------------------------------------ GET /v1/models
    def model_list(self) -> list[dict[str, Any]]:
        """Every model a tab can run here (default, listed, packaged, trained; tiny under ZOO_TINY), each once,
        with the tabs that run it: `tasks` (tab order), `tabs` (their titles) and `default_for`."""
        entries: dict[str, dict[str, Any]] = {}
        for plugin in self.zoo.registry.plugins():
            if plugin.models is None:
                continue
            default = self.zoo.default_model(plugin)
            for ref in self.zoo.model_choices(plugin):
                entry = entries.setdefault(ref, {"id": ref, "object": "model", "created": 0, "owned_by": "model-zoo",
                                                 "task": plugin.task, "tasks": [], "tabs": [], "default_for": [],
                                                 "routes": []})
                entry["tasks"].append(plugin.task)
                entry["tabs"].append(plugin.title)
                if ref == default:
                    entry["default_for"].append(plugin.task)
                for route in getattr(plugin, "openai", ()):
                    if f"{PREFIX}/{route}" not in entry["routes"]:
                        entry["routes"].append(f"{PREFIX}/{route}")
        return list(entries.values())

    async def models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"object": "list", "data": self.model_list()})

    async def model(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        ref = request.path_params["model"]
        for entry in self.model_list():
            if entry["id"] == ref:
                return JSONResponse(entry)
        raise ModelNotFound(f"`{ref}` is not a model any tab here lists.", "")

    # ------------------------------------------------------------------ chat and completions
    def task_language_model(self, task: str) -> str:
        """The ref of the language model that chats for `task` (serve-endpoint): the one its tab runs with its
        default inputs (a tab whose kind depends on them, such as question answering's modes, asks its own
        `model_for`), else the first language-model tab's, in tab order."""
        names = [self.zoo.registry.get(task).task]  # an unknown task is a 404
        names += [p.task for p in self.zoo.registry.plugins() if is_language_model(getattr(p, "model_kind", None))]
        for name in names:
            plugin = self.zoo.registry.get(name)
            default = self.zoo.default_model(plugin)
            values = {f.name: f.default for f in plugin.fields()} | {"model": default}
            ref, kind = plugin.model_for(values, default)
            if is_language_model(kind):
                return ref
        raise InvalidInput("task", task, "has no language model to chat with, and no language-model tab is served",
                           "serve a language-model plugin too (text generation or chat, --plugins), or send chat "
                           "to /<chat or text task>/v1/chat/completions")

    async def chat(self, request: Any, task: str | None = None) -> Any:
        """Chat on the tab declaring chat/completions; its fields: message, history, system_prompt, the sampling
        options -> reply. `task` (serve-endpoint's /<task>/v1/chat/completions): that tab's model, whatever
        `model` says (a remote zoo sends a placeholder)."""
        payload = await read_json(request, body_limit(self.zoo))
        plugin = self.plugin_for(ROUTES[0])
        if task is None:
            model = self.pick_model(plugin, payload.get("model"))
        else:
            model = self.task_language_model(task)
        messages = chat_messages(payload.get("messages"))
        refuse_unsupported(payload)
        last = messages[-1]
        if last["role"] != "user":
            raise InvalidInput(f"messages[{len(messages) - 1}].role", last["role"],
                               "must be user: the last message is the one answered",
                               "end the conversation with the user's message")
        values = {"message": last["content"], "history": messages[:-1], "system_prompt": "",
                  **sampling(payload), "model": model}
        reply = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                 "system_fingerprint": f"model-zoo-{__version__}"}
        ctx = self.new_context()
        limit = max_tokens(plugin, values)
        if payload.get("stream"):
            with_usage = bool((payload.get("stream_options") or {}).get("include_usage"))

            def events(outputs: Iterator[dict[str, Any]]) -> Iterator[bytes]:
                chunk = {**reply, "object": "chat.completion.chunk"}
                role, text = {"role": "assistant"}, ""
                for out in outputs:
                    grown = out.get("reply") or ""
                    piece, text = grown[len(text):], grown
                    if piece:
                        yield sse({**chunk, "model": ctx.model_ref, "choices": [
                            {"index": 0, "delta": {**role, "content": piece}, "logprobs": None, "finish_reason": None}]})
                        role = {}
                yield sse({**chunk, "model": ctx.model_ref, "choices": [
                    {"index": 0, "delta": role, "logprobs": None, "finish_reason": finish_reason(ctx, limit)}]})
                if with_usage:
                    yield sse({**chunk, "model": ctx.model_ref, "choices": [], "usage": usage(ctx)})
                yield b"data: [DONE]\n\n"

            return await self.stream(plugin, values, ctx, events)
        out = await self.run(plugin, values, ctx)
        return _json({**reply, "object": "chat.completion", "model": ctx.model_ref,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": out.get("reply") or ""},
                                   "logprobs": None, "finish_reason": finish_reason(ctx, limit)}],
                      "usage": usage(ctx)})

    async def completions(self, request: Any) -> Any:
        """Raw completion on the tab declaring completions; its fields: prompt, chat_template (off here),
        system_prompt, the sampling options -> text."""
        payload = await read_json(request, body_limit(self.zoo))
        plugin = self.plugin_for(ROUTES[1])
        model = self.pick_model(plugin, payload.get("model"))
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InvalidInput("prompt", prompt, "must be one text (a list of several prompts, or token ids, is not "
                               "supported here)", "send one prompt per request")
        refuse_unsupported(payload)
        for name in ("echo", "suffix", "best_of"):
            if payload.get(name) not in (None, False, 1, ""):
                raise InvalidInput(name, payload[name], "is not supported by this server", f"leave `{name}` out")
        fields = {f.name for f in plugin.fields()}
        values = {"prompt": prompt, **sampling(payload), "model": model}
        values.update({k: v for k, v in (("chat_template", False), ("system_prompt", "")) if k in fields})
        reply = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "object": "text_completion",
                 "system_fingerprint": f"model-zoo-{__version__}"}
        ctx = self.new_context()
        limit = max_tokens(plugin, values)
        if payload.get("stream"):
            with_usage = bool((payload.get("stream_options") or {}).get("include_usage"))

            def events(outputs: Iterator[dict[str, Any]]) -> Iterator[bytes]:
                text = ""
                for out in outputs:
                    grown = out.get("text") or ""
                    piece, text = grown[len(text):], grown
                    if piece:
                        yield sse({**reply, "model": ctx.model_ref, "choices": [
                            {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}]})
                yield sse({**reply, "model": ctx.model_ref, "choices": [
                    {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason(ctx, limit)}]})
                if with_usage:
                    yield sse({**reply, "model": ctx.model_ref, "choices": [], "usage": usage(ctx)})
                yield b"data: [DONE]\n\n"

            return await self.stream(plugin, values, ctx, events)
        out = await self.run(plugin, values, ctx)
        return _json({**reply, "model": ctx.model_ref,
                      "choices": [{"index": 0, "text": out.get("text") or "", "logprobs": None,
                                   "finish_reason": finish_reason(ctx, limit)}],
                      "usage": usage(ctx)})

    # ------------------------------------------------------------------ embeddings
    async def embeddings(self, request: Any) -> Any:
        """Unit vectors from the tab declaring embeddings; its fields: query, documents (one passage per line),
        top_k, return_vectors -> details["vectors"]["documents"] in passage order."""
        payload = await read_json(request, body_limit(self.zoo))
        plugin = self.plugin_for(ROUTES[2])
        model = self.pick_model(plugin, payload.get("model"))
        texts = payload.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InvalidInput("input", texts, "must be a text or a non-empty list of texts",
                               'send "input": "some text" or ["one", "two"]')
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidInput("input", f"<{len(texts)} texts>", f"must hold at most {MAX_EMBEDDING_INPUTS} texts",
                               "send them in several requests")
        lines = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"input[{i}]", text, "must be text (token ids are not supported here)",
                                   "send the texts themselves")
            line = " ".join(text.split())  # one passage per line: line breaks inside a text become spaces
            if not line:
                raise InvalidInput(f"input[{i}]", text, "must not be empty", "leave empty texts out")
            lines.append(line)
        encoding = payload.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise InvalidInput("encoding_format", encoding, "must be float or base64", "use float")
        vectors: list[list[float]] = []
        ctx = self.new_context()
        for start in range(0, len(lines), EMBEDDING_BATCH):
            batch = lines[start:start + EMBEDDING_BATCH]
            out = await self.run(plugin, {"query": batch[0], "documents": "\n".join(batch), "top_k": len(batch),
                                          "return_vectors": True, "model": model}, ctx)
            got = out["details"]["vectors"]["documents"]
            if len(got) != len(batch):  # the tab's passage rule must give back exactly these texts
                raise ZooError(f"{plugin.title} returned {len(got)} vectors for {len(batch)} texts.",
                               "report this as a bug")
            vectors += got
        dimensions = payload.get("dimensions")
        if dimensions is not None and dimensions != len(vectors[0]):
            raise InvalidInput("dimensions", dimensions, f"must be {len(vectors[0])}, the size of `{ctx.model_ref}`'s "
                               "vectors (they are not shortened here)", "leave `dimensions` out")
        data = [{"object": "embedding", "index": i,
                 "embedding": _base64_floats(v) if encoding == "base64" else v} for i, v in enumerate(vectors)]
        return _json({"object": "list", "data": data, "model": ctx.model_ref,
                      "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    # ------------------------------------------------------------------ audio
    async def transcriptions(self, request: Any, route: str) -> Any:
        """Speech to text on the tab declaring the route; its fields: audio (a file path), language, task
        (transcribe or translate), timestamps -> text, segments [(start, end, text)], srt (a file path)."""
        plugin = self.plugin_for(route)
        limit = self.zoo.settings.max_file_size
        check_declared_size(request, limit + 65_536)
        form = await request.form(max_files=1, max_fields=20)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("file", upload, "must be an audio file sent as multipart form data",
                                   "send the recording as the `file` part (the openai client: file=open(...))")
            data = await upload.read()
            if len(data) > limit:
                raise TooLarge("file", f"<{len(data)} bytes>", f"must be at most {limit} bytes (the server's upload "
                               "limit)", "send a shorter recording, or the operator can raise ZOO_MAX_FILE_SIZE")
            fmt = form.get("response_format") or "json"
            if fmt not in TRANSCRIPT_FORMATS:
                raise InvalidInput("response_format", fmt, f"must be one of {', '.join(TRANSCRIPT_FORMATS)}",
                                   "use json")
            granularities = form.getlist("timestamp_granularities[]") or form.getlist("timestamp_granularities")
            if "word" in granularities:
                raise InvalidInput("timestamp_granularities", granularities, "may only be segment here (no word "
                                   "timings)", "leave it out, or ask for segment")
            temperature = form.get("temperature")
            if temperature not in (None, "", "0", "0.0"):
                raise InvalidInput("temperature", temperature, "must be 0 here (decoding is greedy or beam search)",
                                   "leave it out")
            model = self.pick_model(plugin, form.get("model"))
            language = form.get("language") or None
            name = Path(upload.filename or "audio").name[:80] or "audio"
        finally:
            await form.close()
        translate = route == ROUTES[4]
        with tempfile.TemporaryDirectory(prefix="zoo-openai-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            values: dict[str, Any] = {"audio": str(path), "timestamps": True, "model": model,
                                      "task": "translate" if translate else "transcribe"}
            if language and not translate:
                values["language"] = language
            ctx = self.new_context(tmp)
            out = await self.run(plugin, values, ctx)
            segments = [(float(s), float(e), str(t)) for s, e, t in out.get("segments") or []]
            srt = Path(out["srt"]).read_text(encoding="utf-8") if out.get("srt") else ""
        from starlette.responses import PlainTextResponse

        text = out.get("text") or ""
        if fmt == "text":
            return PlainTextResponse(text + "\n")
        if fmt == "srt":
            return PlainTextResponse(srt, media_type="application/x-subrip")
        if fmt == "vtt":
            return PlainTextResponse(to_vtt(segments), media_type="text/vtt")
        if fmt == "json":
            return _json({"text": text})
        duration = segments[-1][1] if segments else 0.0
        return _json({"task": "translate" if translate else "transcribe", "language": values.get("language") or
                      ("english" if translate else "auto"), "duration": duration, "text": text, "model": ctx.model_ref,
                      "segments": [{"id": i, "seek": 0, "start": s, "end": e, "text": t, "tokens": [],
                                    "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0,
                                    "no_speech_prob": 0.0} for i, (s, e, t) in enumerate(segments)]})

    async def speech(self, request: Any) -> Any:
        """Text to speech on the tab declaring audio/speech; its fields: text, speed -> audio (a WAV path).
        `voice` is accepted and not used: the model is the voice (pick it with `model`)."""
        from starlette.responses import Response

        payload = await read_json(request, body_limit(self.zoo))
        plugin = self.plugin_for(ROUTES[5])
        model = self.pick_model(plugin, payload.get("model"))
        fmt = payload.get("response_format") or "mp3"  # OpenAI's default
        if fmt not in ("wav", "pcm", *SPEECH_FORMATS):
            raise InvalidInput("response_format", fmt, f"must be one of wav, pcm, {', '.join(SPEECH_FORMATS)}",
                               "use wav")
        if payload.get("instructions"):
            raise InvalidInput("instructions", payload["instructions"], "are not supported by these voices",
                               "leave `instructions` out")
        values: dict[str, Any] = {"text": payload.get("input"), "model": model}
        if payload.get("speed") is not None:
            values["speed"] = payload["speed"]
        with tempfile.TemporaryDirectory(prefix="zoo-openai-") as tmp:
            ctx = self.new_context(tmp)
            out = await self.run(plugin, values, ctx)
            wav = Path(out["audio"]).read_bytes()
            import anyio

            data, media = await anyio.to_thread.run_sync(encode_speech, wav, fmt, tmp)
        return Response(data, media_type=media, headers={"X-Zoo-Model": ctx.model_ref})

    # ------------------------------------------------------------------ images
    async def images(self, request: Any) -> Any:
        """Pictures from the tab declaring images/generations; its fields: prompt, negative_prompt, width, height,
        steps, guidance_scale, seed, num_images -> image, images [(image, caption)], seed, metadata."""
        from zoo.media import png_bytes

        payload = await read_json(request, body_limit(self.zoo))
        plugin = self.plugin_for(ROUTES[6])
        model = self.pick_model(plugin, payload.get("model"))
        fmt = payload.get("response_format") or "b64_json"
        if fmt != "b64_json":
            raise InvalidInput("response_format", fmt, "must be b64_json here (no image URLs are kept)",
                               "ask for b64_json (or leave it out)")
        for name in ("style", "background", "moderation", "output_compression"):
            if payload.get(name) not in (None, "", "auto"):
                raise InvalidInput(name, payload[name], "is not supported by this server", f"leave `{name}` out")
        if payload.get("quality") not in (None, "", "auto", "standard"):
            raise InvalidInput("quality", payload["quality"], "must be standard or auto here",
                               "set `steps` (extra_body) for more denoising steps")
        if payload.get("output_format") not in (None, "", "png"):
            raise InvalidInput("output_format", payload["output_format"], "must be png here", "leave it out")
        values: dict[str, Any] = {"prompt": payload.get("prompt"), "model": model,
                                  "num_images": 1 if payload.get("n") is None else payload["n"]}
        size = payload.get("size")
        if size not in (None, "", "auto"):
            width, _, height = str(size).partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise InvalidInput("size", size, 'must be "WIDTHxHEIGHT" in pixels or "auto"', 'e.g. "512x512"')
            values.update(width=int(width), height=int(height))
        for name in ("seed", "steps", "guidance_scale", "negative_prompt"):  # the tab's own options, as extras
            if payload.get(name) is not None:
                values[name] = payload[name]
        ctx = self.new_context()
        out = await self.run(plugin, values, ctx)
        pictures = [item[0] if isinstance(item, (tuple, list)) else item for item in out.get("images") or []]
        pictures = pictures or [out["image"]]
        data = [{"b64_json": base64.b64encode(png_bytes(p)).decode(), "revised_prompt": None} for p in pictures]
        return _json({"created": int(time.time()), "data": data, "model": ctx.model_ref, "seed": out.get("seed"),
                      "size": f"{pictures[0].width}x{pictures[0].height}", "output_format": "png"})


# --------------------------------------------------------------------------- request pieces


#: The tab's field name -> the request's own, for `param` in an error about a value the request sent.
OPENAI_NAMES = {"max_new_tokens": "max_tokens", "num_images": "n", "message": "messages", "history": "messages",
                "text": "input", "query": "input", "documents": "input", "audio": "file", "width": "size",
                "height": "size"}


@contextmanager
def openai_names() -> Iterator[None]:
    """Errors about a tab's field name the request's parameter in `param` (the message keeps the tab's words)."""
    try:
        yield
    except InvalidInput as exc:
        exc.name = OPENAI_NAMES.get(exc.name, exc.name)
        raise


def models_url(request: Any) -> str:
    return f"{str(request.base_url).rstrip('/')}{PREFIX}/models"


def chat_messages(raw: Any) -> list[dict[str, str]]:
    """OpenAI messages as {"role", "content": str}; content given as a list of text parts is joined."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("messages", raw, "must be a non-empty list of messages",
                           'send [{"role": "user", "content": "Hi"}]')
    messages = []
    for i, m in enumerate(raw):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "developer":  # OpenAI's newer name for system
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise InvalidInput(f"messages[{i}]", m, 'must be {"role": "system"|"user"|"assistant", "content": ...}',
                               "tool and function messages are not supported here")
        content = m.get("content")
        if isinstance(content, list):
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                raise InvalidInput(f"messages[{i}].content", content, "may hold only text parts here",
                                   "send text; pictures go to the image tabs")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content", content, "must be text", "send the message as a string")
        messages.append({"role": role, "content": content})
    return messages


def refuse_unsupported(payload: Mapping[str, Any]) -> None:
    """Options a client may rely on that this server does not implement: say so rather than ignore them."""
    if payload.get("n") not in (None, 1):
        raise InvalidInput("n", payload["n"], "must be 1 here (one completion per request)", "leave `n` out")
    for name in ("stop", "tools", "functions", "logit_bias"):
        if payload.get(name):
            raise InvalidInput(name, payload[name], "is not supported by this server", f"leave `{name}` out")
    if payload.get("logprobs") or payload.get("top_logprobs"):
        raise InvalidInput("logprobs", payload.get("logprobs"), "is not supported by this server", "leave it out")
    fmt = payload.get("response_format")
    if fmt and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise InvalidInput("response_format", fmt, "must be text here (no JSON mode)", "leave it out")
    for name in ("frequency_penalty", "presence_penalty"):
        if payload.get(name):
            raise InvalidInput(name, payload[name], "is not supported here", "use repetition_penalty instead")


def sampling(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling options of a request, by the tab's names; the tab's fields check them (a bad value is the
    tab's own error). Unset, temperature and top_p are OpenAI's 1, and the zoo's own top_k and
    repetition_penalty are off, as an OpenAI client expects; max_tokens is the tab's default."""
    def given(*names: str, default: Any = None) -> Any:
        return next((payload[n] for n in names if payload.get(n) is not None), default)

    values = {"max_new_tokens": given("max_completion_tokens", "max_tokens"), "temperature": given("temperature",
              default=1.0), "top_p": given("top_p", default=1.0), "top_k": given("top_k", default=0),
              "repetition_penalty": given("repetition_penalty", "repeat_penalty", default=1.0), "seed": given("seed")}
    return {k: v for k, v in values.items() if v is not None}


def max_tokens(plugin: Plugin, values: Mapping[str, Any]) -> int | None:
    if values.get("max_new_tokens") is not None:
        return values["max_new_tokens"]
    return next((f.default for f in plugin.fields() if f.name == "max_new_tokens"), None)


def usage(ctx: RunContext) -> dict[str, int] | None:
    """Token counts the tab reported (ctx.report_usage), or None (a remote engine reports none)."""
    if "completion_tokens" not in ctx.usage:
        return None
    prompt, completion = ctx.usage.get("prompt_tokens", 0), ctx.usage["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(ctx: RunContext, limit: Any) -> str:
    counted = ctx.usage.get("completion_tokens")
    return "length" if counted is not None and limit is not None and counted >= int(limit) else "stop"


def to_vtt(segments: list[tuple[float, float, str]]) -> str:
    """WebVTT subtitles for the segments."""
    def stamp(seconds: float) -> str:
        ms = max(0, int(round(seconds * 1000)))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    cues = [f"{stamp(s)} --> {stamp(max(s, e))}\n{' '.join(t.split())}\n" for s, e, t in segments if t.strip()]
    return "WEBVTT\n\n" + "\n".join(cues)


def encode_speech(wav: bytes, fmt: str, folder: str) -> tuple[bytes, str]:
    """(bytes, media type) of a WAV in the asked format: as it is, its raw 16-bit samples, or through ffmpeg."""
    if fmt == "wav":
        return wav, "audio/wav"
    if fmt == "pcm":
        import io
        import wave

        with wave.open(io.BytesIO(wav)) as w:
            return w.readframes(w.getnframes()), f"audio/L16; rate={w.getframerate()}; channels={w.getnchannels()}"
    from zoo import helpers

    args, media = SPEECH_FORMATS[fmt]
    source = Path(folder) / "speech-in.wav"
    source.write_bytes(wav)
    cmd = [helpers.find("ffmpeg", "install ffmpeg (apt install ffmpeg), or ask for response_format wav"),
           "-nostdin", "-hide_banner", "-v", "error", "-i", str(source), *args, "pipe:1"]
    proc = helpers.run("ffmpeg", cmd, "install ffmpeg (apt install ffmpeg), or ask for response_format wav",
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ZooError(f"ffmpeg could not encode the speech as {fmt}: {redact_paths(reason[0])}.",
                       "ask for response_format wav (no conversion)")
    return proc.stdout, media


def _base64_floats(vector: list[float]) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _json(data: Any) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(data, default=json_default), media_type="application/json")


# --------------------------------------------------------------------------- mounting


def openai_mount(zoo: Zoo, api: OpenAIApi | None = None) -> Any:
    """A starlette Mount of the API at /v1, for any starlette or FastAPI app's routes."""
    from starlette.routing import Mount

    return Mount(PREFIX, routes=(api or OpenAIApi(zoo)).routes())


def mount_openai(app_kwargs: dict[str, Any], zoo: Zoo) -> dict[str, Any]:
    """Put /v1 in the FastAPI app gradio builds at launch (`launch(app_kwargs=...)`): FastAPI(routes=...)
    routes come before every route gradio adds, so none of gradio's can answer for /v1."""
    app_kwargs["routes"] = [*(app_kwargs.get("routes") or ()), openai_mount(zoo)]
    return app_kwargs
