"""The remote family: a tab's model runs on an inference engine elsewhere, reached with InferenceClient.

`ZOO_REMOTE_<TASK>=<target>` (see zoo/settings.py) makes a tab's default model
`remote:<target>`; the shared loader then returns a client instead of weights:
- `RemoteLM` for language-model kinds. It has the interface of zoo.models.lm's
  LMs, so text generation, chat and generative QA run unchanged: a prompt built
  by `chat_prompt` goes out as messages to the engine's OpenAI-compatible
  /v1/chat/completions, a raw prompt as a TGI text-generation request; both stream.
- `RemoteClient` for every other kind: the huggingface_hub InferenceClient task
  methods (`question_answering`, `text_to_image`, ...), which a plugin calls in its
  `run_remote` hook (the runner calls it in place of run/stream for a `remote:` model).

A target is an endpoint URL (Text Generation Inference, vLLM's or llama.cpp's
OpenAI-compatible server, an Inference Endpoint, another zoo's `serve-endpoint`)
or `provider:owner/model` for Inference Providers. Every request goes through one
HTTP client per engine, with a timeout and retries with backoff on 429, 5xx and
refused connections; every failure becomes a RemoteError that names the endpoint
and says why. The token (HF_TOKEN) goes in the Authorization header only: it is
never logged nor put in a message.

Why not AsyncInferenceClient: plugins stream from plain generators on a worker
thread, so the sync client, reading the response line by line, streams as well
with no event loop to manage.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar
from urllib.parse import urlsplit, urlunsplit

from zoo.errors import InvalidInput, RemoteError, ZooError
from zoo.kinds import get_kind

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth another try: rate limited, or the engine (or a proxy in front of it) failed.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest wait between two tries, whatever the server's Retry-After says.
MAX_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class RemoteOptions:
    """How to talk to remote engines: from Settings (ZOO_REMOTE_TIMEOUT, ZOO_REMOTE_RETRIES, HF_TOKEN...)."""

    timeout: float = 120.0
    retries: int = 2
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    context: int = 4096
    token: str | None = field(default=None, repr=False)
    offline: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> "RemoteOptions":
        """The remote_* settings of a Settings object."""
        return cls(timeout=settings.remote_timeout, retries=settings.remote_retries,
                   context=settings.remote_context, token=settings.remote_token,
                   offline=bool(settings.offline))


@dataclass(frozen=True)
class RemoteTarget:
    """Where requests go: an endpoint URL, or an Inference Providers provider and model."""

    raw: str
    url: str | None = None
    provider: str | None = None
    model: str | None = None

    @property
    def label(self) -> str:
        """How messages name the endpoint: the URL without credentials or query, or provider:model."""
        if self.url:
            parts = urlsplit(self.url)
            host = parts.netloc.rsplit("@", 1)[-1]
            return urlunsplit((parts.scheme, host, parts.path, "", ""))
        return f"{self.provider}:{self.model} (Inference Providers)"


_PROVIDER_MODEL = re.compile(r"^(?:(?P<provider>[a-z0-9-]+):)?(?P<model>[A-Za-z0-9][\w.-]*/[\w.-]+)$")


def parse_target(raw: str) -> RemoteTarget:
    """`http(s)://...` -> a URL target; `provider:owner/model` or `owner/model` -> Inference Providers."""
    text = (raw or "").strip()
    if text.startswith(("http://", "https://")):
        if not urlsplit(text).netloc:
            raise InvalidInput("remote target", raw, "must be a URL with a host", "e.g. http://127.0.0.1:8080")
        return RemoteTarget(text, url=text)
    m = _PROVIDER_MODEL.match(text)
    if not m:
        raise InvalidInput("remote target", raw, "must be an endpoint URL or `provider:owner/model`",
                           "e.g. http://127.0.0.1:8080 or together:meta-llama/Llama-3.1-8B-Instruct")
    return RemoteTarget(text, provider=m.group("provider") or "auto", model=m.group("model"))


# --------------------------------------------------------------------------- retries


def with_retries(call: Callable[[], T], retries: int, backoff: float,
                 wait_for: Callable[[BaseException], float | None], what: str = "request",
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `call`; when it fails with an error `wait_for` accepts, wait and try again, at most `retries` times.

    `wait_for(exc)` is None for errors not worth retrying, else the least wait the
    server asked for (Retry-After). Waits double from `backoff`, capped at MAX_WAIT_SECONDS.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            asked = wait_for(exc)
            if asked is None or attempt >= retries:
                raise
            delay = min(MAX_WAIT_SECONDS, max(backoff * 2**attempt, asked))
            attempt += 1
            log.warning("%s failed (%s); retry %d of %d in %.1fs", what, _short(exc), attempt, retries, delay)
            sleep(delay)


class HTTPStatusError(Exception):
    """An error status from the engine, with its own explanation and any Retry-After."""

    def __init__(self, status: int, reason: str, detail: str, retry_after: float | None):
        super().__init__(f"HTTP {status} {reason}: {detail}".strip())
        self.status, self.reason, self.detail, self.retry_after = status, reason, detail, retry_after


def _retry_wait(exc: BaseException) -> float | None:
    """How long to wait before retrying `exc`; None when retrying cannot help."""
    import httpx2

    if isinstance(exc, HTTPStatusError):
        return (exc.retry_after or 0.0) if exc.status in RETRY_STATUSES else None
    # Refused or dropped before any answer: the engine is restarting or overloaded. Timeouts are not
    # retried: a slow model would only make the user wait several times as long.
    if isinstance(exc, (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError)):
        return 0.0
    return None


def _status_error(response: Any) -> HTTPStatusError:
    """Read an error response: the engine's own message (JSON `error`/`detail`/`message`, else text)."""
    try:
        body = response.read().decode("utf-8", "replace")
    except Exception:  # a broken error body must not hide the status
        body = ""
    detail = body
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            value = data.get("error") or data.get("detail") or data.get("message") or data
            if isinstance(value, dict):
                value = value.get("message") or value
            detail = value if isinstance(value, str) else json.dumps(value)
    except ValueError:
        pass
    detail = " ".join(detail.split())[:300]
    retry_after = None
    try:
        retry_after = float(response.headers.get("retry-after", ""))
    except ValueError:
        pass
    return HTTPStatusError(response.status_code, response.reason_phrase or "", detail, retry_after)


# --------------------------------------------------------------------------- errors


def describe(exc: BaseException, label: str, options: RemoteOptions) -> RemoteError:
    """A RemoteError naming the endpoint and the reason, with the fix, for any failure of a remote call."""
    import httpx2
    from huggingface_hub.errors import InferenceTimeoutError

    if isinstance(exc, RemoteError):
        return exc
    tries = options.retries + 1
    if isinstance(exc, HTTPStatusError):
        retried = f" (after {tries} attempts)" if exc.status in RETRY_STATUSES and tries > 1 else ""
        message = f"The remote engine {label} answered HTTP {exc.status} {exc.reason}{retried}: {exc.detail or '-'}."
        if exc.status in (401, 403):
            fix = "set HF_TOKEN to a token that may use this endpoint"
        elif exc.status in (404, 405):
            fix = ("check ZOO_REMOTE_<TASK>: it must be the endpoint itself (another zoo's serve-endpoint: "
                   "http://HOST:PORT/<task>); OpenAI-compatible servers (llama.cpp, vLLM) serve chat and text "
                   "generation with the chat template on, not the other tasks")
        elif exc.status == 429:
            fix = "the engine is rate-limiting: wait a little and try again, or raise its limits"
        elif exc.status >= 500:
            fix = "check the engine's log; failed requests are retried ZOO_REMOTE_RETRIES times"
        else:
            fix = "the engine refused these inputs or options: change them, or check it serves this task"
        return RemoteError(message, fix, endpoint=label, status=exc.status)
    if isinstance(exc, (InferenceTimeoutError, httpx2.TimeoutException)):
        return RemoteError(f"The remote engine {label} did not answer within {options.timeout:g}s.",
                           "raise ZOO_REMOTE_TIMEOUT, or check that the engine is up and not overloaded",
                           endpoint=label)
    if isinstance(exc, httpx2.ConnectError):
        return RemoteError(f"Cannot connect to the remote engine {label} ({_short(exc)}; tried {tries} times).",
                           "start the engine, or correct ZOO_REMOTE_<TASK>", endpoint=label)
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError)):
        return RemoteError(f"The connection to the remote engine {label} broke off mid-request ({_short(exc)}).",
                           "the engine may have crashed or restarted: try again once it is back", endpoint=label)
    return RemoteError(f"The remote engine {label} failed: {type(exc).__name__}: {_short(exc)}.",
                       "check the engine's log and that it serves this task", endpoint=label)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


# --------------------------------------------------------------------------- the client


@functools.lru_cache(maxsize=1)
def _client_class() -> type:
    """InferenceClient with its one HTTP call routed through the zoo's client (built once, on first use)."""
    from huggingface_hub import InferenceClient
    from huggingface_hub.inference._common import TASKS_EXPECTING_IMAGES

    class ZooInferenceClient(InferenceClient):
        """InferenceClient whose requests use this engine's own httpx client: timeout, retries, no Hub hooks.

        huggingface_hub's shared session refuses every request when HF_HUB_OFFLINE is
        set; an engine the operator named by URL (often on this machine or the LAN)
        must still be reachable then, so the POST goes through a client of our own.
        """

        def __init__(self, *args: Any, zoo_http: Any, zoo_retry: Callable[[Callable[[], Any]], Any],
                     zoo_describe: Callable[[BaseException], RemoteError], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._zoo_http, self._zoo_retry, self._zoo_describe = zoo_http, zoo_retry, zoo_describe

        def _inner_post(self, request_parameters: Any, *, stream: bool = False) -> Any:
            headers = request_parameters.headers
            if request_parameters.task in TASKS_EXPECTING_IMAGES and "Accept" not in headers:
                headers["Accept"] = "image/png"

            def attempt() -> Any:
                cm = self._zoo_http.stream("POST", request_parameters.url, json=request_parameters.json,
                                           content=request_parameters.data, headers=headers, cookies=self.cookies)
                response = cm.__enter__()
                try:
                    if response.status_code >= 400:
                        raise _status_error(response)
                    if not stream:
                        return response.read()
                except BaseException:
                    cm.__exit__(None, None, None)
                    raise
                return response, cm

            try:
                result = self._zoo_retry(attempt)
            except Exception as exc:
                raise self._zoo_describe(exc) from exc
            if not stream:
                return result
            response, cm = result
            return self._zoo_lines(response, cm)

        def _zoo_lines(self, response: Any, cm: Any) -> Iterator[str]:
            """The body line by line; the connection closes when the reader stops, early or not."""
            try:
                yield from response.iter_lines()
            except Exception as exc:  # the engine died, or went silent past the timeout, mid-stream
                raise self._zoo_describe(exc) from exc
            finally:
                cm.__exit__(None, None, None)

    return ZooInferenceClient


class RemoteClient:
    """One remote engine: InferenceClient's task methods with the zoo's timeout, retries and errors."""

    def __init__(self, target: RemoteTarget, options: RemoteOptions):
        import httpx2

        self.target = target
        self.options = options
        self.label = target.label
        self._http = httpx2.Client(follow_redirects=True,
                                   timeout=httpx2.Timeout(options.timeout, connect=min(10.0, options.timeout)))
        self.client = _client_class()(
            model=target.url or target.model, provider=None if target.url else target.provider,
            token=options.token, timeout=options.timeout, zoo_http=self._http,
            zoo_retry=lambda call: with_retries(call, options.retries, options.backoff, _retry_wait,
                                                what=f"Remote engine {self.label}"),
            zoo_describe=lambda exc: describe(exc, self.label, options),
        )

    def __repr__(self) -> str:  # never shows the token
        return f"RemoteClient({self.label!r})"

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`InferenceClient.<method>(*args, **kwargs)`; any failure becomes a RemoteError naming this engine."""
        return self._guarded(lambda: getattr(self.client, method)(*args, **kwargs))

    def post(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        """The task's request with any parameters, the JSON answer decoded.

        For tasks whose InferenceClient method takes no options (image-to-text): the
        request is built by the same provider helper the method uses.
        """
        from huggingface_hub.inference._providers import get_provider_helper

        def send() -> Any:
            model = self.client.model
            helper = get_provider_helper(self.client.provider, task=task, model=model)
            request = helper.prepare_request(inputs=inputs, parameters=parameters, headers=self.client.headers,
                                             model=model, api_key=self.client.token)
            return json.loads(self.client._inner_post(request))

        return self._guarded(send)

    def _guarded(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except ZooError:
            raise
        except Exception as exc:
            raise describe(exc, self.label, self.options) from exc

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Iterate a streamed answer; failures mid-stream become RemoteErrors, leaving early closes it."""
        try:
            yield from items
        except ZooError:
            raise
        except Exception as exc:
            raise describe(exc, self.label, self.options) from exc
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()

    def close(self) -> None:
        """Close the engine's connections (the cache calls this on eviction)."""
        self._http.close()


def as_list(value: Any) -> list[Any]:
    """A client answer as a list: some task methods return one element where several were expected."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- language models


class ChatPrompt(str):
    """A conversation rendered as text that still carries its messages.

    `RemoteLM.chat_prompt` returns one; `RemoteLM.stream` sends the messages to the
    engine's chat endpoint, which applies the served model's own chat template. The
    text (a plain transcript) is only for length estimates.
    """

    messages: list[dict[str, str]]

    def __new__(cls, text: str, messages: list[dict[str, str]]) -> "ChatPrompt":
        prompt = super().__new__(cls, text)
        prompt.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        return prompt


@dataclass
class RemoteLM:
    """A language model behind a remote engine, with the interface of TransformersLM and LlamaCppLM."""

    remote: RemoteClient
    context_tokens: int = 4096
    name: str = ""
    device: str = "remote"

    @property
    def has_chat_template(self) -> bool:
        """Chat endpoints apply the served model's template, so prompts go out as messages."""
        return True

    def chat_prompt(self, messages: list[dict[str, str]]) -> ChatPrompt:
        """The conversation, kept as messages for the engine's /v1/chat/completions."""
        text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
        return ChatPrompt(text, messages)

    def count_tokens(self, text: str) -> int:
        """An estimate with no tokenizer at hand: 3 bytes a token, above what BPE tokenizers use on text.

        Over-estimating keeps chat's history trimming on the safe side of the engine's window.
        """
        return max(1, math.ceil(len(text.encode("utf-8")) / 3))

    @property
    def context_length(self) -> int:
        """The engine's context window as the operator set it (ZOO_REMOTE_CONTEXT)."""
        return self.context_tokens

    def stream(self, prompt: str, params: Any, cancel: threading.Event | None = None, stats: Any = None,
               templated: bool = True) -> Iterator[str]:
        """Yield text pieces as the engine sends them; leaving the loop closes the connection, which stops it."""
        from zoo.generation import GenerationStats

        stats = stats if stats is not None else GenerationStats()
        started = time.perf_counter()
        if isinstance(prompt, ChatPrompt):
            pieces = self._chat(prompt, params)
        else:
            pieces = self._complete(prompt, params)
        try:
            for piece in pieces:
                if cancel is not None and cancel.is_set():
                    break
                stats.new_tokens += 1
                if stats.first_token_seconds is None:
                    stats.first_token_seconds = time.perf_counter() - started
                yield piece
        finally:
            pieces.close()
            stats.seconds = time.perf_counter() - started

    def _extras(self, params: Any) -> dict[str, Any] | None:
        """Sampling options outside the OpenAI schema, for self-hosted engines (providers get the schema only)."""
        if self.remote.target.url is None:
            return None
        extra: dict[str, Any] = {}
        if params.temperature > 0 and params.top_k:
            extra["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            # vLLM, TGI and the zoo call it repetition_penalty; llama.cpp's server repeat_penalty.
            extra["repetition_penalty"] = extra["repeat_penalty"] = params.repetition_penalty
        return extra or None

    def _chat(self, prompt: ChatPrompt, params: Any) -> Iterator[str]:
        greedy = params.temperature <= 0
        chunks = self.remote.call(
            "chat_completion", messages=prompt.messages, stream=True, max_tokens=params.max_new_tokens,
            temperature=0.0 if greedy else params.temperature, top_p=None if greedy else params.top_p,
            seed=params.seed, extra_body=self._extras(params))
        finished = False
        for chunk in self.remote.iterate(chunks):
            for choice in chunk.choices or []:
                if choice.delta is not None and choice.delta.content:
                    yield choice.delta.content
                finished = finished or bool(choice.finish_reason)
        if not finished:  # the stream ended without saying why: a proxy or the engine cut it short
            raise RemoteError(f"The remote engine {self.remote.label} ended the reply before it was finished.",
                              "try again; if it repeats, check the engine's log", endpoint=self.remote.label)

    def _complete(self, prompt: str, params: Any) -> Iterator[str]:
        greedy = params.temperature <= 0
        tokens = self.remote.call(
            "text_generation", prompt, stream=True, details=True, max_new_tokens=params.max_new_tokens,
            do_sample=not greedy, temperature=None if greedy else params.temperature,
            # TGI wants 0 < top_p < 1 and top_k > 0 when given.
            top_p=None if greedy or params.top_p >= 1 else params.top_p,
            top_k=None if greedy or not params.top_k else params.top_k,
            repetition_penalty=None if params.repetition_penalty == 1.0 else params.repetition_penalty,
            seed=params.seed)
        finished = False
        for item in self.remote.iterate(tokens):
            if item.token is not None and item.token.text and not item.token.special:
                yield item.token.text
            finished = finished or item.details is not None or item.generated_text is not None
        if not finished:
            raise RemoteError(f"The remote engine {self.remote.label} ended the text before it was finished.",
                              "try again; if it repeats, check the engine's log", endpoint=self.remote.label)

    def generate(self, prompt: str, params: Any, templated: bool = True, stats: Any = None) -> str:
        """The whole completion at once."""
        return "".join(self.stream(prompt, params, stats=stats, templated=templated))

    def close(self) -> None:
        """Close the engine's connections."""
        self.remote.close()


# --------------------------------------------------------------------------- the loader


def connect(target: str, kind: Any, options: RemoteOptions | None = None) -> RemoteLM | RemoteClient:
    """The client for `target`: a RemoteLM for language-model kinds (`language_model=True`), else a RemoteClient.

    Nothing is sent yet: an engine that is down fails the first request, with a
    clear error, and the next request after it is back works.
    """
    options = options or RemoteOptions()
    parsed = parse_target(target)
    if parsed.url is None and options.offline:
        raise RemoteError(f"`{target}` names Inference Providers, which cannot be reached offline "
                          "(HF_HUB_OFFLINE / ZOO_OFFLINE is set).",
                          "go online, or point ZOO_REMOTE_<TASK> at an endpoint URL (which works offline)",
                          endpoint=parsed.label)
    if parsed.provider not in (None, "auto"):
        from huggingface_hub.inference._providers import PROVIDERS

        if parsed.provider not in PROVIDERS:
            raise RemoteError(f"Unknown Inference Providers provider `{parsed.provider}` in `{target}`.",
                              f"use one of: auto, {', '.join(sorted(PROVIDERS))}", endpoint=parsed.label)
    client = RemoteClient(parsed, options)
    if get_kind(kind).language_model:  # a ModelKind, or a registered kind's name
        return RemoteLM(client, context_tokens=options.context, name=parsed.label)
    return client
