"""Cold start with every tab: `python app.py` (every built-in plugin, tiny models, offline) until `/` answers
HTTP 200, against a bare gradio app of 25 tabs (a textbox, a button and a textbox each) started the same way.

The starts rotate, after one untimed start of each (so all find Python's bytecode and the OS's file cache warm,
and the zoo's bytecode cached, as a user's Python does), and each figure is the median of `runs` starts. A
second row compares the zoo with the same bare app made with the garbage collector paused, as app.py makes
the zoo (zoo/coldstart.py): the target's baseline is a gradio app as people write it, and that row shows how
much of the zoo's start is the zoo's own work.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3  # the zoo may take at most this many times the bare app's start
BARE_TABS = 25

BARE_TABS_APP = f"""
import gradio as gr

with gr.Blocks() as demo:
    with gr.Tabs():
        for i in range({BARE_TABS}):
            with gr.Tab(f"Tab {{i}}"):
                text = gr.Textbox(label="Input")
                button = gr.Button("Run")
                out = gr.Textbox(label="Output")
                button.click(lambda value: value, text, out)
demo.launch(server_name="127.0.0.1")
"""

#: The same bare app, made as app.py makes the zoo: with the garbage collector paused, then frozen
#: (zoo/coldstart.py). Not the target's baseline (that is a gradio app as people write it); it shows how much
#: of the zoo's start is the zoo's own work, with the collector's share taken out of both.
BARE_PAUSED_APP = "from zoo.coldstart import collector_paused\nwith collector_paused():\n" + "".join(
    f"    {line}\n" for line in BARE_TABS_APP.strip().splitlines()[:-1] if line) + "demo.launch(server_name='127.0.0.1')\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(cache_dir: Path) -> dict[str, str]:
    """The environment both start in: this one without ZOO_* and GRADIO_* settings, offline, no analytics; the zoo's
    tiny models and built-in plugins only (what tests/conftest.py's app server runs)."""
    # PYTHONDONTWRITEBYTECODE goes too: Python caches bytecode for a user (pip compiles an installed zoo; a
    # checkout's first start writes __pycache__), and without it the zoo would compile its 21k lines every start.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_", "GRADIO_"))
           and k not in ("SPACE_ID", "SPACES_ZERO_GPU", "PYTHONDONTWRITEBYTECODE")}
    return env | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "ZOO_TINY": "1",
                  "ZOO_PLUGIN_SOURCES": "builtin", "ZOO_CACHE_DIR": str(cache_dir)}


def time_to_200(cmd: list[str], env: dict[str, str], timeout: float = 180.0) -> float:
    """Start `cmd` (a server on GRADIO_SERVER_PORT), return the seconds until GET / answers 200, stop it."""
    port = int(env["GRADIO_SERVER_PORT"])
    t0 = time.perf_counter()
    # A process group of its own: stopping the zoo ends its worker processes too.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode} before it answered "
                                   f"(run it by hand to see why)")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - t0
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{' '.join(cmd)} did not answer HTTP 200 on / within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def measure(runs: int, paused: bool = True) -> list[dict[str, Any]]:
    """Median start-to-200 seconds of the zoo with every plugin and of the bare 25-tab app, and their ratio; with
    `paused`, a second row against the bare app made with the collector paused (BARE_PAUSED_APP)."""
    work = Path(tempfile.mkdtemp(prefix="zoo-coldstart-"))
    bare, paused_app = work / "bare_tabs_app.py", work / "bare_paused_app.py"
    bare.write_text(BARE_TABS_APP)
    paused_app.write_text(BARE_PAUSED_APP)
    commands = {"zoo": [sys.executable, "app.py"], "bare": [sys.executable, str(bare)]}
    if paused:
        commands["paused"] = [sys.executable, str(paused_app)]
    times: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands)
    for i in range(runs + 1):  # the first round warms all up and is not counted
        for name in order[i % len(order):] + order[:i % len(order)]:  # rotate who goes first
            env = base_env(work / "cache") | {"GRADIO_SERVER_PORT": str(_free_port()), "PYTHONPATH": str(ROOT)}
            seconds = time_to_200(commands[name], env)
            if i:
                times[name].append(seconds)
    zoo, bare_s = statistics.median(times["zoo"]), statistics.median(times["bare"])
    from zoo.registry import Registry

    tabs = len(Registry.builtin())
    ratio = zoo / bare_s
    rows = [dict(section="cold start, every tab", name=f"python app.py, {tabs} plugin tabs in groups, tiny, offline: "
                 "start until / answers 200", value=zoo, unit="s",
                 baseline=f"bare gradio app, {BARE_TABS} tabs of a textbox, a button and a textbox",
                 baseline_value=bare_s, ratio=ratio, target=f"<= {TARGET}", met=ratio <= TARGET, runs=runs,
                 note="zoo " + " / ".join(f"{t:.2f}" for t in times["zoo"]) + " s; bare "
                      + " / ".join(f"{t:.2f}" for t in times["bare"]) + " s; rotating, after one untimed start each")]
    if not paused:
        return rows
    paused_s = statistics.median(times["paused"])
    return rows + [dict(section="cold start, every tab", name=f"python app.py, {tabs} plugin tabs (as above)", value=zoo,
                 unit="s", baseline=f"the bare {BARE_TABS}-tab app made with the collector paused, as app.py makes "
                 "the zoo (zoo/coldstart.py)", baseline_value=paused_s, ratio=zoo / paused_s, runs=runs,
                 note="the zoo's own work, the collector's share taken out of both: paused bare "
                      + " / ".join(f"{t:.2f}" for t in times["paused"]) + " s")]
