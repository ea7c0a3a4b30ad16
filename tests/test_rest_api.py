"""The plain REST route (`/gradio_api/call/<api>`), as curl and the issue-13 probe use it, on a real `python app.py`.

- A client that drops a long image job must not freeze the server: gradio closes the
  dropped generator on its event loop, so nothing on that path may wait for the work.
- Memory and disk stay flat over hundreds of calls: every REST call is a gradio session of
  its own (ZOO_MAX_SESSIONS caps what they keep), and outputs and uploads are written once,
  into gradio's cache, and deleted after ZOO_OUTPUT_TTL.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import uuid
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from servers import AppServer, start_app

pytestmark = pytest.mark.app

PLUGINS = "text-to-image,image-classification,text-classification,text-to-speech"
TTL = 3  # seconds outputs and uploads live (ZOO_OUTPUT_TTL); gradio and the zoo sweep every second


@pytest.fixture(scope="module")
def server(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`python app.py` on tiny models, a few tabs, its own temp folder."""
    tmp = tmp_path_factory.mktemp("app-tmp")
    env = {"HF_HUB_OFFLINE": "1", "ZOO_TINY": "1", "ZOO_CACHE_DIR": str(model_cache_dir), "ZOO_PLUGINS": PLUGINS,
           "TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio"), "ZOO_THREADS": "1",
           "ZOO_OUTPUT_TTL": str(TTL), "ZOO_MAX_IMAGE_WORK": "1000"}  # the freeze test needs a long job
    with start_app(env, log=tmp_path_factory.mktemp("app-log") / "app.log", timeout=60) as app:
        app.tmp = tmp  # type: ignore[attr-defined]
        yield app


def submit(app: AppServer, api: str, data: list[Any]) -> str:
    """POST /gradio_api/call/<api>; the event id."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
    try:
        conn.request("POST", f"/gradio_api/call/{api}", json.dumps({"data": data}),
                     {"Content-Type": "application/json"})
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 200, body
        return json.loads(body)["event_id"]
    finally:
        conn.close()


def result(app: AppServer, api: str, data: list[Any], timeout: float = 300) -> tuple[str, Any]:
    """Submit and read the SSE stream to its end: ("complete" or "error", data)."""
    event_id = submit(app, api, data)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=timeout)
    try:
        conn.request("GET", f"/gradio_api/call/{api}/{event_id}")
        stream = conn.getresponse()
        kind = None
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                return kind, json.loads(line.split(":", 1)[1])
        raise AssertionError(f"the stream of {api} ended without a result")
    finally:
        conn.close()


def info_seconds(app: AppServer) -> float:
    """How long /gradio_api/info takes to answer (the server's event loop is free when it is quick)."""
    started = time.perf_counter()
    with urllib.request.urlopen(app.url + "gradio_api/info", timeout=120) as answer:
        assert answer.status == 200 and b"named_endpoints" in answer.read()
    return time.perf_counter() - started


# prompt, negative_prompt, width, height, steps, guidance_scale, seed, num_images, model
BIG_IMAGE = ["a fox", "", 512, 512, 50, 0.0, 1, 1, ""]
SMALL_IMAGE = ["a fox", "", 64, 64, 1, 0.0, 1, 1, ""]


def test_a_dropped_image_job_never_freezes_the_server(server: AppServer) -> None:
    assert result(server, "text_to_image", SMALL_IMAGE)[0] == "complete"  # loaded and warm
    event_id = submit(server, "text_to_image", BIG_IMAGE)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("GET", f"/gradio_api/call/text_to_image/{event_id}")
    stream = conn.getresponse()
    for raw in stream:  # the first denoising step's preview: the job is running
        if raw.startswith(b"event: generating"):
            break
    else:
        raise AssertionError("the big job sent no progress")
    conn.sock.close()  # the client goes away mid-job
    conn.close()
    dropped = time.perf_counter()

    # The next job queues behind the dropped one (one request per model), so it ends only once
    # the dropped job's worker has stopped: poll the server's event loop all that time.
    nxt: dict[str, Any] = {}
    follower = threading.Thread(target=lambda: nxt.update(answer=result(server, "text_to_image", SMALL_IMAGE)))
    follower.start()
    latencies = []
    while follower.is_alive():
        latencies.append(info_seconds(server))
        time.sleep(0.2)
    follower.join()
    wound_down = time.perf_counter() - dropped

    kind, data = nxt["answer"]
    assert kind == "complete", data
    assert data[0]["url"].endswith("image.png") and data[3]["width"] == 64
    # 50 steps at 512 px take minutes here; a dropped job stops at its next step instead.
    assert wound_down < 120, f"the dropped job ran on for {wound_down:.0f}s"
    assert len(latencies) >= 3, latencies
    assert max(latencies) < 1.0, f"/gradio_api/info took up to {max(latencies):.1f}s while the job wound down"


# --------------------------------------------------------------------------- soak


def upload_png(app: AppServer, png: bytes | None = None) -> dict[str, Any]:
    """Upload a PNG (by default a small one, new each time) the way a REST client does; the FileData to send."""
    from PIL import Image

    data = io.BytesIO(png or b"")
    if png is None:
        Image.new("RGB", (32, 32), (90, 90, 30)).save(data, format="PNG", pnginfo=_note(uuid.uuid4().hex))
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"cat.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + data.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
    try:
        conn.request("POST", "/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        answer = conn.getresponse()
        paths = json.loads(answer.read())
        assert answer.status == 200, paths
    finally:
        conn.close()
    return {"path": paths[0], "meta": {"_type": "gradio.FileData"}}


def _note(text: str) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("note", text)  # a distinct file each time: gradio cannot dedupe it into one cache entry
    return info


def mixed_call(app: AppServer, i: int) -> None:
    """One of four REST calls, in turn; each writes or uploads a file, each output distinct."""
    api, data = [
        ("text_to_image", ["a fox", "", 64, 64, 1, 0.0, i, 1, ""]),
        ("text_to_speech", [f"Call number {i}.", 1.0, 1, ""]),
        ("image_classification", [upload_png(app), 3, ""]),
        ("text_classification", [f"I love it {i}", "auto", 0, ""]),
    ][i % 4]
    kind, out = result(app, api, data)
    assert kind == "complete", (api, out)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def disk(folder: Path) -> tuple[int, float]:
    """(files and folders, MB) under a folder."""
    count, size = 0, 0
    for root, dirs, names in os.walk(folder):
        count += len(dirs) + len(names)
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return count, size / 1e6


@pytest.mark.slow
def test_memory_and_disk_stay_flat_over_300_rest_calls(server: AppServer) -> None:
    tmp: Path = server.tmp  # type: ignore[attr-defined]
    # Warm up past ZOO_MAX_SESSIONS (100): the session store is full, the models are loaded.
    for i in range(120):
        mixed_call(server, i)
    time.sleep(2 * TTL + 2)  # everything the warm-up wrote is past its age and swept
    rss_before, disk_before = rss_mb(server.proc.pid), disk(tmp)
    peak_files = 0
    for i in range(300):
        mixed_call(server, i)
        if i % 25 == 0:
            peak_files = max(peak_files, disk(tmp)[0])
    rss_after = rss_mb(server.proc.pid)
    time.sleep(2 * TTL + 2)
    disk_after = disk(tmp)
    growth = (rss_after - rss_before) / 300
    print(f"RSS {rss_before:.0f} -> {rss_after:.0f} MB ({growth * 1000:.0f} KB/call); "
          f"disk {disk_before} -> {disk_after} (files, MB); peak {peak_files} files")
    assert growth < 0.1, f"RSS grew {growth:.2f} MB per REST call ({rss_before:.0f} -> {rss_after:.0f} MB)"
    # 300 calls wrote 300 outputs and 75 uploads; once past their age, all of them are gone again.
    assert disk_after[0] <= disk_before[0] + 5, (disk_before, disk_after)
    assert disk_after[1] <= disk_before[1] + 0.5, (disk_before, disk_after)
    assert not list((tmp / "model-zoo-images").glob("*")), "images were written twice"


def test_a_huge_upload_is_refused_without_decoding_it(server: AppServer, tmp_path: Path) -> None:
    # Issue 13: a 140 KB PNG declaring 12000x12000 raised the server's peak memory by 3.1 GB.
    from samples import huge_png

    png = huge_png(tmp_path / "huge.png", 12000, 12000).read_bytes()
    assert result(server, "image_classification", [upload_png(server), 3, ""])[0] == "complete"  # warm
    start = peak = rss_mb(server.proc.pid)
    answer: dict[str, Any] = {}
    call = threading.Thread(target=lambda: answer.update(
        out=result(server, "image_classification", [upload_png(server, png), 3, ""])))
    call.start()
    while call.is_alive():
        peak = max(peak, rss_mb(server.proc.pid))
        time.sleep(0.005)
    kind, data = answer["out"]
    assert kind == "error"
    assert "12000x12000" in data["error"] and "larger than 1024 pixels on a side" in data["error"], data
    assert "ZOO_MAX_IMAGE_SIDE" in data["error"] and str(server.tmp) not in data["error"]  # type: ignore[attr-defined]
    assert peak - start < 200, f"the server's memory rose {peak - start:.0f} MB for one refused upload"
