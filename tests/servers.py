"""The servers the tests start: a free port, `python app.py` (or any Python server) in a subprocess, an app in
the test process.

A subprocess server writes its stdout and stderr to a log file, never to a pipe nobody reads (a chatty
server blocks on a full pipe), runs in a process group of its own (stopping it ends its worker processes
too), and is ready once its health URL answers. When it exits or does not answer in time, the error
carries the end of its log. tests/conftest.py builds its fixtures on these: `app_server` (the shared
tiny app), `real_app_server` (the shared app on the real offline defaults) and `app_factory`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL = 4000  # characters of a server's log shown with an error


# Settings a developer's shell may hold that would change what a test's server is; the suite's own
# (ZOO_PLUGIN_SOURCES, ZOO_ISOLATION, set or read by tests/conftest.py) are kept.
KEPT = ("ZOO_PLUGIN_SOURCES", "ZOO_ISOLATION")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ZOO_*, GRADIO_*, SPACE_ID and SPACES_ZERO_GPU (but KEPT), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k in KEPT or not (k.startswith(("ZOO_", "GRADIO_")) or k in ("SPACE_ID", "SPACES_ZERO_GPU"))}
    return env | extra


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    """A server subprocess on loopback, its output in a log file."""

    url: str  # base URL, with a trailing slash: http://127.0.0.1:PORT/
    port: int
    proc: subprocess.Popen
    log_path: Path
    startup: float = 0.0  # seconds from the start until the health URL answered
    _log_file: IO[str] | None = field(default=None, repr=False)
    _own_log: bool = field(default=False, repr=False)  # a temporary log, deleted by stop()

    def log_text(self, tail: int | None = None) -> str:
        """What the server printed so far (its last `tail` characters when given)."""
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def log(self, tail: int = LOG_TAIL) -> str:
        """The end of the server's output."""
        return self.log_text(tail)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Send `sig` to the server's process group, SIGKILL it if it has not exited after `timeout`
        seconds, and close its log. Safe to call twice."""
        if self.proc.poll() is None:
            _signal_group(self.proc, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(10)
        _signal_group(self.proc, signal.SIGKILL)  # what the server left behind in its group (workers)
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> "AppServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_app(env: Mapping[str, str] | None = None, args: Sequence[str] = ("app.py",), cwd: Path | str = ROOT,
              log: Path | str | None = None, *, port: int | None = None, health: str = "",
              base_env: Mapping[str, str] | None = None, timeout: float = 90) -> AppServer:
    """`python *args` (default `python app.py`) on a free port, once `health` (a path under its URL) answers.

    `env` is added to `base_env` (default: this process's environment); GRADIO_SERVER_PORT is set to the
    port, and `{port}` in `args` is replaced by it, for servers that take it as an argument
    (`-m zoo serve-endpoint --port {port}`). Output goes to `log` (default: a temporary file that stop()
    deletes). On exit or timeout the server is stopped and AssertionError carries the end of its log.
    """
    port = port or free_port()
    full_env = {**(os.environ if base_env is None else base_env), **(env or {}),
                "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    own_log = log is None
    if log is None:
        fd, name = tempfile.mkstemp(prefix="zoo-test-server-", suffix=".log")
        os.close(fd)
        log = name
    log_path = Path(log)
    log_file = log_path.open("w")  # noqa: SIM115 - the server writes to it for its whole life
    command = [sys.executable, *(a.replace("{port}", str(port)) for a in map(str, args))]
    proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = AppServer(f"http://127.0.0.1:{port}/", port, proc, log_path, _log_file=log_file, _own_log=own_log)
    shown = " ".join(command[1:])
    started = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"`{shown}` exited with {proc.returncode} before answering; its log ends:\n"
                                     f"{server.log()}")
            try:
                urllib.request.urlopen(server.url + health.lstrip("/"), timeout=2).close()
                server.startup = time.perf_counter() - started
                return server
            except OSError:
                if time.perf_counter() - started > timeout:
                    raise AssertionError(f"`{shown}` did not answer {server.url}{health.lstrip('/')} within "
                                         f"{timeout:.0f} s; its log ends:\n{server.log()}") from None
                time.sleep(0.1)
    except BaseException:
        server.stop(signal.SIGKILL)  # keeps the log (unless temporary): the error above quotes it
        raise


@dataclass
class InProcessApp:
    """The zoo's gradio app launched in the test process, for tests that patch its models or spy on it."""

    zoo: Any
    demo: Any
    url: str

    def client(self) -> Any:
        """A fresh gradio_client (a session of its own)."""
        from gradio_client import Client

        return Client(self.url, verbose=False)


@contextmanager
def serve_in_process(zoo: Any, **launch_kwargs: Any) -> Iterator[InProcessApp]:
    """build_demo + launch (as app.py does) on the zoo's settings.server_port, closed at the end.

    Give the zoo a free port: `Zoo(settings.replace(server_port=free_port()))`.
    """
    from zoo.ui import build_demo, launch

    demo = build_demo(zoo)
    launch(demo, zoo, prevent_thread_lock=True, quiet=True, **launch_kwargs)
    try:
        yield InProcessApp(zoo, demo, f"http://127.0.0.1:{zoo.settings.server_port}/")
    finally:
        demo.close()


class AppFactory:
    """Starts servers for one test (the `app_factory` fixture) and stops them all when it ends."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.servers: list[AppServer] = []

    def __call__(self, env: Mapping[str, str] | None = None, args: Sequence[str] = ("app.py",),
                 **kwargs: Any) -> AppServer:
        """start_app(env, args, **kwargs), its log in the test's tmp_path, stopped when the test ends."""
        kwargs.setdefault("log", self.folder / f"server-{len(self.servers) + 1}.log")
        server = start_app(env, args, **kwargs)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()
