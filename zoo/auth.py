"""Sign-in for a self-hosted zoo: ZOO_AUTH users, for every way in.

`launch(auth=...)` puts the page and gradio's API behind gradio's login form (a session cookie).
Gradio leaves its MCP server (`/gradio_api/mcp/...`), routes added to its app (the OpenAI-compatible
`/v1`) and its run-history routes open, and its login takes a form, not the HTTP Basic credentials
that MCP and OpenAI clients can send. `AuthMiddleware` closes both gaps, before any routing:

- a request with valid HTTP Basic credentials (`Authorization: Basic ...`) is signed in as that user
  everywhere: the middleware hands gradio a session of that user (the cookie gradio's login would
  set), so `curl -u`, an MCP client or gradio's own MCP loopback reach the page and the queue too;
- a request to a `PROTECTED` prefix without valid Basic credentials or a gradio session cookie gets
  401 with `WWW-Authenticate: Basic` (in OpenAI's error format under `/v1`); under `/v1` the API key
  (ZOO_API_KEY, `Authorization: Bearer <key>`), when one is set, is a credential too;
- the page a visitor gets before signing in (gradio's login form) goes out without the list of
  endpoints gradio embeds in it.

Credentials are compared in constant time (hmac.compare_digest, over every user); nothing here logs
a header, a password or a session token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import secrets
from http.cookies import SimpleCookie
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)

#: Path prefixes the middleware itself refuses without credentials; gradio guards the rest with its login.
PROTECTED = ("/gradio_api/mcp", "/v1", "/gradio_api/run-history")
REALM = "Model Zoo"


def check_password(users: Sequence[tuple[str, str]], user: str, password: str) -> bool:
    """True when (user, password) is one of `users`; every pair is compared, in constant time."""
    ok = False
    given_user, given_password = user.encode("utf-8"), password.encode("utf-8")
    for name, secret in users:
        ok |= hmac.compare_digest(given_user, name.encode("utf-8")) & hmac.compare_digest(
            given_password, secret.encode("utf-8"))
    return ok


def basic_credentials(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None."""
    for key, value in headers:
        if key.lower() != b"authorization":
            continue
        scheme, _, encoded = value.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None
    return None


def _cookies(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for key, value in headers:
        if key.lower() == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header: no session
                return {}
    return {k: m.value for k, m in jar.items()}


class AuthMiddleware:
    """ASGI middleware on gradio's app (see the module docstring)."""

    def __init__(self, app: Callable[..., Any], users: Sequence[tuple[str, str]], api_key: str | None = None):
        self.app = app
        self.users = tuple(users)
        self.api_key = api_key or None  # ZOO_API_KEY: under /v1, `Authorization: Bearer <key>` signs in too
        self._tokens: dict[str, str] = {}  # user -> the gradio session token this middleware gave them

    def __repr__(self) -> str:  # never the passwords
        return f"AuthMiddleware({len(self.users)} users)"

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        gradio_app = scope.get("app")
        user = None
        creds = basic_credentials(headers)
        if creds is not None and check_password(self.users, *creds):
            user = creds[0]
            if gradio_app is not None and hasattr(gradio_app, "tokens"):
                scope = dict(scope, headers=self._with_session(headers, gradio_app, user))
        path = scope.get("path", "")
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        signed_in = (user is not None or self._has_session(headers, gradio_app)
                     or (self.api_key is not None and _is_v1(path) and _bearer_is(headers, self.api_key)))
        if not signed_in and _is_protected(path):
            log.info("Refused a request to %s without valid credentials", path)
            await _refuse(path, scope, send)
            return
        if not signed_in and scope["type"] == "http" and scope.get("method") == "GET":
            send = _without_api_info(send)  # gradio's login page would list every endpoint and its parameters
        await self.app(scope, receive, send)

    def _with_session(self, headers: list[tuple[bytes, bytes]], gradio_app: Any, user: str) -> list[tuple[bytes, bytes]]:
        """`headers` with a gradio session cookie for `user` (one token per user, made once)."""
        token = self._tokens.get(user)
        if token is None or gradio_app.tokens.get(token) != user:  # new, or signed out since
            token = secrets.token_urlsafe(16)
            gradio_app.tokens[token] = user
            self._tokens[user] = token
        cookie = f"access-token-unsecure-{gradio_app.cookie_id}={token}".encode("latin-1")
        merged, done = [], False
        for key, value in headers:
            if key.lower() == b"cookie" and not done:  # Starlette reads the first cookie header only
                value, done = value + b"; " + cookie, True
            merged.append((key, value))
        return merged if done else [*merged, (b"cookie", cookie)]

    @staticmethod
    def _has_session(headers: Sequence[tuple[bytes, bytes]], gradio_app: Any) -> bool:
        """True when the request carries a live gradio login session (the login form's cookie)."""
        tokens = getattr(gradio_app, "tokens", None)
        if not tokens:
            return False
        cookies = _cookies(headers)
        cookie_id = gradio_app.cookie_id
        return any(cookies.get(name) in tokens
                   for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"))


_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)
# Empty, not null: with null the login page's script asks /info for it (a 404 and a console error).
_EMPTY_API_INFO = b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};</script>'


def _without_api_info(send: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `send` so that an HTML page goes out without the API description gradio embeds in it.

    Gradio 6.31 puts `window.gradio_api_info` (every endpoint, its parameters and model lists) into the
    page it serves even to a visitor who gets the login form; the form does not need it, and after
    signing in the page is loaded again, with it."""
    start: dict[str, Any] | None = None
    chunks: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict((k.lower(), v) for k, v in message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(b"text/html"):
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = _API_INFO.sub(_EMPTY_API_INFO, b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


def _is_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def _bearer_is(headers: Sequence[tuple[bytes, bytes]], key: str) -> bool:
    """True when the request's `Authorization: Bearer ...` is `key` (constant time)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())
    return False


def _is_protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") or path.startswith(p + "?") for p in PROTECTED)


async def _refuse(path: str, scope: dict[str, Any], send: Callable[..., Any]) -> None:
    message = ("This server requires sign-in (ZOO_AUTH): send HTTP Basic credentials "
               "(Authorization: Basic base64(user:password)), or sign in on the page first.")
    if _is_v1(path):  # OpenAI's error format, as the /v1 routes answer
        body = {"error": {"message": message, "type": "authentication_error", "param": None,
                          "code": "invalid_credentials"}}
    else:
        body = {"error": "Not authenticated", "detail": message}
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    payload = json.dumps(body).encode("utf-8")
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())]})
    await send({"type": "http.response.body", "body": payload})


def auth_middleware(users: Sequence[tuple[str, str]], api_key: str | None = None) -> Any:
    """The Starlette `Middleware` entry for FastAPI(middleware=[...]) (gradio's app_kwargs). With `api_key`
    (ZOO_API_KEY), OpenAI clients reach /v1 with their usual `Authorization: Bearer <key>` alone."""
    from starlette.middleware import Middleware

    return Middleware(AuthMiddleware, users=tuple(users), api_key=api_key)


def loopback_client_factory(server: Any, users: Sequence[tuple[str, str]]) -> Callable[[], Any]:
    """A replacement for gradio's MCP server `_get_or_create_client` that signs in.

    Gradio's MCP server calls queued tools through a gradio_client of its own on the app's local URL;
    it sends no credentials, so behind a login it cannot even read the app's config. This one signs in
    as the first ZOO_AUTH user (each call still forwards the MCP caller's own headers)."""
    original = server._get_or_create_client

    def client() -> Any:
        if server._client_instance is None and server.local_url:
            from gradio_client import Client

            server._client_instance = Client(server.local_url, download_files=False, verbose=False,
                                             analytics_enabled=False, ssl_verify=False, _skip_components=False,
                                             headers={"x-gradio-user": "mcp"}, auth=tuple(users[0]))
        return original()

    return client
