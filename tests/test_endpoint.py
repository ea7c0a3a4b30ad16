"""serve-endpoint (zoo/endpoint.py): its upload limit, 413 from Content-Length before the body is read, or
while a chunked body streams in; no error shows a temporary path; and openai-whisper files are refused.

The fast tests call the ASGI app in-process (starlette's TestClient); the `app` test starts
`python -m zoo serve-endpoint` (tests/servers.py) and sends raw HTTP.
"""

from __future__ import annotations

import base64
import http.client
import io
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from servers import AppFactory
from zoo.runner import Zoo
from zoo.settings import Settings

IC = "image-classification"
LIMIT = 100_000


@pytest.fixture
def client(settings: Settings) -> Iterator[tuple[Zoo, object]]:
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    zoo = Zoo(settings.replace(tiny=True, plugins=(IC, "conversational"), max_file_size=LIMIT))
    with TestClient(create_app(zoo)) as c:
        yield zoo, c


def _png(side: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_a_body_over_the_limit_is_413_with_the_limit_and_the_fix(client) -> None:
    zoo, c = client
    for body in (b"\x89PNG" + b"\0" * (LIMIT * 2), ):
        reply = c.post(f"/{IC}", content=body, headers={"content-type": "image/png"})
        assert reply.status_code == 413, reply.text
        error = reply.json()["error"]
        assert "`body` must be at most" in error and "ZOO_MAX_FILE_SIZE" in error
    # base64 in JSON: the body fits the allowance, the decoded file does not
    encoded = base64.b64encode(b"\0" * (LIMIT + 10)).decode()
    reply = c.post(f"/{IC}", json={"inputs": encoded})
    assert reply.status_code == 413 and "`inputs` must be a file of at most 100000 bytes" in reply.json()["error"]
    reply = c.post("/v1/chat/completions", content=b"{" + b" " * (LIMIT * 2) + b"}",
                   headers={"content-type": "application/json"})
    assert reply.status_code == 413, reply.text
    assert zoo.models.cache.stats.loads == 0
    ok = c.post(f"/{IC}", content=_png(), headers={"content-type": "image/png"})  # under the limit: served
    assert ok.status_code == 200 and isinstance(ok.json()[0]["label"], str)


def test_a_chunked_body_is_counted_as_it_streams(client) -> None:
    zoo, c = client
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            sent.append(1)
            yield b"\0" * 10_000

    reply = c.post(f"/{IC}", content=chunks(), headers={"content-type": "image/png"})
    assert reply.status_code == 413 and "more than" in reply.json()["error"]


def test_serve_endpoint_refuses_an_openai_whisper_file(settings: Settings) -> None:
    """The same rule on serve-endpoint (a tab that takes `model` in its inputs): 4xx, nothing loaded."""
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    zoo = Zoo(settings.replace(plugins=("conversational",), allow_pickle=True))
    with TestClient(create_app(zoo)) as client:
        for ref, status in (("openai-whisper:app.py", 422), ("openai-whisper:./app.py", 403),
                            ("openai-whisper:README.md", 422)):
            reply = client.post("/conversational", json={"inputs": {"message": "hi", "model": ref}})
            assert reply.status_code == status, reply.text
            assert ref in reply.json()["error"] and "weights_only" not in reply.text
    assert zoo.models.cache.stats.loads == 0


def test_errors_show_no_temporary_path(client, tmp_path: Path) -> None:
    """A fake PNG is saved to a temp folder to be decoded; the error names the field, not the folder."""
    zoo, c = client
    reply = c.post(f"/{IC}", content=b"\x89PNG\r\n\x1a\n not really", headers={"content-type": "image/png"})
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert "`image`" in error and "cannot be read as an image" in error
    assert "zoo-endpoint-" not in error and "/tmp" not in error, error


@pytest.mark.app
def test_serve_endpoint_answers_413_before_reading_a_300_mb_body(model_cache_dir: Path,
                                                                 app_factory: AppFactory) -> None:
    """Declared 300 MB, sent 1 KB: the 413 comes at once; a chunked 2 MB body is cut off too."""
    server = app_factory({"HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir), "ZOO_MAX_FILE_SIZE": "1MB"},
                         ["-m", "zoo", "--tiny", "--plugins", IC, "serve-endpoint", "--port", "{port}"],
                         health="health", timeout=60)
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /{IC} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  f"Content-Length: 300000000\r\n\r\n".encode() + b"\0" * 1024)
        started = time.perf_counter()
        answer = b""
        while b"ZOO_MAX_FILE_SIZE" not in answer and (piece := s.recv(65536)):
            answer += piece
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert time.perf_counter() - started < 5 and b"ZOO_MAX_FILE_SIZE" in answer
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", f"/{IC}")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(32):  # 2 MB in 64 KB chunks; the server may close before the last
            conn.send(b"10000\r\n" + b"\0" * 0x10000 + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = conn.getresponse()
    assert reply.status == 413 and b"ZOO_MAX_FILE_SIZE" in reply.read()
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # the server still serves
    conn.request("POST", f"/{IC}", body=_png(), headers={"Content-Type": "image/png"})
    assert conn.getresponse().status == 200
