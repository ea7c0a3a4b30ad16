"""tests/servers.py, the plumbing every app-tier test stands on: readiness, the log file, errors, stopping.

Fast tier: the servers here are a few lines of Python (http.server), not the zoo.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from servers import AppFactory, clean_env, free_port, start_app

# Serves HTTP on argv[1] after saying so, and leaves a child process in its group (as the zoo's workers are).
SERVER = r'''
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(f"child {child.pid}", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
'''


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie child of ours counts as gone once reaped by its parent's death
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_ready_server_logs_to_a_file_and_stop_ends_its_whole_group(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    log = tmp_path / "server.log"
    server = start_app(args=[str(script), "{port}"], log=log, cwd=tmp_path)
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/" and server.startup > 0
        assert server.proc.stdout is None and server.proc.stderr is None  # no pipe for anyone to forget to read
        assert urllib.request.urlopen(server.url + "server.py", timeout=5).read().decode() == script.read_text()
        text = server.log_text()
        assert "a line on stderr" in text and text.startswith("child ")  # stdout and stderr, one file
        child = int(text.split()[1])
    finally:
        server.stop()
    assert server.proc.returncode is not None and _gone(child), "the server's child outlived stop()"
    assert log.exists() and "a line on stderr" in log.read_text()  # a given log is kept for reading after
    server.stop()  # twice is harmless


def test_a_server_that_exits_is_reported_with_the_end_of_its_log() -> None:
    with pytest.raises(AssertionError) as err:
        start_app(args=["-c", "import sys; print('cannot load the model zoo-test-marker'); sys.exit(3)"])
    message = str(err.value)
    assert "exited with 3" in message and "cannot load the model zoo-test-marker" in message


def test_a_server_that_never_answers_times_out_with_its_log_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('still warming up'); " \
           "time.sleep(120)"
    started = time.perf_counter()
    with pytest.raises(AssertionError) as err:
        start_app(args=["-c", code], timeout=2)
    assert time.perf_counter() - started < 15
    assert "did not answer" in str(err.value) and "still warming up" in str(err.value)
    assert _gone(int(pid_file.read_text())), "a server that never answered was left running"


def test_env_port_and_health_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`env` adds to the base environment, GRADIO_SERVER_PORT is the port, and `health` is the path waited for."""
    monkeypatch.setenv("ZOO_PLUGINS", "from-a-developer-shell")
    assert "ZOO_PLUGINS" not in clean_env() and clean_env(ZOO_TINY="1")["ZOO_TINY"] == "1"
    (tmp_path / "ready").mkdir()
    code = ("import http.server, os, sys; print(os.environ['GRADIO_SERVER_PORT'], os.environ['ZOO_TINY'], "
            "os.environ.get('ZOO_PLUGINS'), flush=True); "
            "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)"
            ".serve_forever()")
    port = free_port()
    factory = AppFactory(tmp_path)
    try:
        server = factory({"ZOO_TINY": "1"}, ["-c", code, "{port}"], port=port, health="ready/", cwd=tmp_path,
                         base_env=clean_env())
        assert server.port == port and factory.servers == [server]
        assert server.log_text().splitlines()[0].split() == [str(port), "1", "None"]
        assert server.log_path.parent == tmp_path
    finally:
        factory.stop_all()
    assert not server.alive()
