"""Worker overhead: ZOO_ISOLATION=process against inline, side by side in one run.

Memory (server and total RSS before load, after load, after eviction; PSS per worker beyond
its weights), first-request latency, streaming tokens/s through a worker, crash-restart time.
Runs on the offline text-generation default (SmolLM2-135M on llama.cpp when installed).
`python -m bench --only workers`, or alone: `python -m bench.workers`.
"""

from __future__ import annotations

import gc
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Count from 1 to 100, separated by commas."
TASK = "text-generation"


from zoo.plugin import Int, Json, ModelChoices, Plugin  # noqa: E402


class Relay(Plugin):
    """Streams `count` small outputs next to the tiny LM without computing: the relay's own cost per output."""

    api_version = 2
    task = "bench-relay"
    title = "Relay"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Int("count", 1000, 1, 10**6),)
    outputs = (Json("text"),)

    def stream(self, model, values, ctx):
        text = ""
        for i in range(values["count"]):
            text += " tok"
            yield {"text": text[-200:], "i": i}


def relay_cost(runs: int, count: int = 2000) -> dict[str, Any]:
    """Seconds per streamed output through a worker and inline, on a plugin that computes nothing."""
    from zoo.registry import Registry
    from zoo.runner import Zoo
    from zoo.settings import Settings

    import importlib

    relay = importlib.import_module("bench.workers").Relay  # by its module name, which a worker can import
    per: dict[str, list[float]] = {"inline": [], "process": []}
    zoos = {}
    for mode in ("inline", "process"):
        registry = Registry()
        registry.register(relay, "bench.workers")
        zoos[mode] = Zoo(Settings.from_env().replace(tiny=True, isolation=mode, idle_unload_seconds=0),
                         registry=registry)
        zoos[mode].run("bench-relay", count=1)
    for _ in range(runs):
        for mode, zoo in zoos.items():
            t0 = time.perf_counter()
            n = sum(1 for _ in zoo.stream("bench-relay", {"count": count}))
            assert n == count and (mode == "inline") == (not zoo.models.workers.handles())
            per[mode].append((time.perf_counter() - t0) / n)
    for zoo in zoos.values():
        zoo.models.close()
    inline, process = (statistics.median(per[m]) for m in ("inline", "process"))
    return row("relay cost per streamed output (a plugin that computes nothing)", process * 1e6, "µs",
               baseline="inline", baseline_value=inline * 1e6, ratio=process / inline, runs=runs,
               note=f"+{(process - inline) * 1e6:.0f} µs per output: "
                    f"{(process - inline) / 0.01 * 100:.2f}% of a 10 ms token")


def _status(pid: int, field: str, name: str = "status") -> int:
    """A kB field of /proc/<pid>/status (VmRSS) or smaps_rollup (Pss), in bytes; 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss(pid: int) -> int:
    """Resident set size in bytes."""
    return _status(pid, "VmRSS")


def pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages split between their users)."""
    return _status(pid, "Pss", "smaps_rollup")


def _fork_servers() -> list[int]:
    """The fork server(s) this process started (they hold the preloaded libraries)."""
    me = os.getpid()
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(parts[1]) == me and b"multiprocessing.forkserver" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _zoo(isolation: str) -> Any:
    from zoo.runner import Zoo
    from zoo.settings import Settings

    return Zoo(Settings.from_env().replace(plugins=(TASK,), isolation=isolation, idle_unload_seconds=0))


def _ask(zoo: Any, max_new_tokens: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = zoo.run(TASK, prompt=PROMPT, max_new_tokens=max_new_tokens, temperature=0, seed=1)["text"]
    return time.perf_counter() - t0, text


def _wait_gone(pid: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while rss(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def row(name: str, value: float, unit: str, **kw: Any) -> dict[str, Any]:
    """One figure as bench/__main__.py's Row fields."""
    return {"section": "workers", "name": name, "value": value, "unit": unit, **kw}


def measure(runs: int = 5, new_tokens: int = 96, only_relay: bool = False) -> list[dict[str, Any]]:
    """Every worker figure; each ratio compares process and inline measured here, alternately."""
    me = os.getpid()
    rows: list[dict[str, Any]] = []
    if only_relay:
        return [relay_cost(runs)]

    # First request ever in process mode: it starts the fork server, which imports the preloads.
    t0 = time.perf_counter()
    warm_up = _zoo("process")
    _ask(warm_up, 4)
    rows.append(row("first request of a fresh server (fork server start, imports, worker, load)",
                    time.perf_counter() - t0, "s", runs=1))
    warm_up.models.close()
    del warm_up
    gc.collect()

    # First request (load included) on a fresh zoo, alternating modes.
    firsts: dict[str, list[float]] = {"inline": [], "process": []}
    for _ in range(runs):
        for mode in ("inline", "process"):
            zoo = _zoo(mode)
            seconds, _ = _ask(zoo, 4)
            firsts[mode].append(seconds)
            zoo.models.close()
            del zoo
            gc.collect()
    inline_first, process_first = (statistics.median(firsts[m]) for m in ("inline", "process"))
    rows.append(row("first request (worker start + load + 4 tokens)", process_first, "s",
                    baseline="inline", baseline_value=inline_first, ratio=process_first / inline_first, runs=runs,
                    note=f"+{(process_first - inline_first) * 1000:.0f} ms"))

    # Memory through one worker's life.
    zoo = _zoo("process")
    servers = _fork_servers()
    before_server = rss(me)
    before_total = before_server + sum(rss(p) for p in servers)
    _ask(zoo, 4)
    (handle,) = zoo.models.workers.handles()
    after_server = rss(me)
    after_total = after_server + sum(rss(p) for p in servers) + rss(handle.pid)
    worker_pss, weights = pss(handle.pid), handle.nbytes
    idle_fork_server_pss = sum(pss(p) for p in servers)

    # Streaming speed: the same greedy request through the worker and inline, alternately.
    inline = _zoo("inline")
    _ask(inline, new_tokens)
    with inline.models.use(inline.default_model(inline.registry.get(TASK)), "causal-lm") as loaded:
        lm = loaded.model
    speeds: dict[str, list[float]] = {"inline": [], "process": []}
    for _ in range(runs):
        for mode, z in (("inline", inline), ("process", zoo)):
            seconds, answer = _ask(z, new_tokens)
            speeds[mode].append(lm.count_tokens(answer) / seconds)
    inline_tps, process_tps = (statistics.median(speeds[m]) for m in ("inline", "process"))
    rows.append(row(f"streaming up to {new_tokens} greedy tokens", process_tps, "tokens/s", baseline="inline",
                    baseline_value=inline_tps, ratio=process_tps / inline_tps, target="within 5% of inline",
                    met=process_tps >= 0.95 * inline_tps, runs=runs,
                    note="request wall time, prompt included"))
    inline.models.close()
    del inline
    gc.collect()

    # Crash-restart: SIGKILL the worker, then the next request (a new worker, load, 4 tokens).
    warm, _ = _ask(zoo, 4)
    restarts: list[float] = []
    noticed: list[float] = []
    for _ in range(runs):
        (handle,) = zoo.models.workers.handles()
        t0 = time.perf_counter()
        os.kill(handle.pid, signal.SIGKILL)
        while handle.death is None and time.perf_counter() - t0 < 10:  # the server notices the death
            time.sleep(0.005)
        noticed.append(time.perf_counter() - t0)
        seconds, _ = _ask(zoo, 4)
        restarts.append(seconds)
    restart = statistics.median(restarts)
    rows.append(row("request after its worker was SIGKILLed (restart + load + 4 tokens)", restart, "s",
                    baseline="the same request, warm", baseline_value=warm, ratio=restart / warm, runs=runs,
                    note=f"the death is noticed {statistics.median(noticed) * 1000:.0f} ms after the kill"))

    (handle,) = zoo.models.workers.handles()
    zoo.models.cache.clear()  # eviction ends the worker
    _wait_gone(handle.pid)
    gc.collect()
    evicted_server = rss(me)
    evicted_total = evicted_server + sum(rss(p) for p in servers) + rss(handle.pid)
    mb = 1e6
    rows += [
        row("server RSS: before load / after load / after eviction", after_server / mb, "MB",
            note=f"{before_server / mb:.0f} / {after_server / mb:.0f} / {evicted_server / mb:.0f} MB"),
        row("total RSS (server + fork server + workers): before / after load / after eviction", after_total / mb,
            "MB", note=f"{before_total / mb:.0f} / {after_total / mb:.0f} / {evicted_total / mb:.0f} MB; "
                       "RSS counts the fork server's shared pages again in each worker"),
        row("worker PSS beyond its weights", (worker_pss - weights) / mb, "MB",
            note=f"PSS {worker_pss / mb:.0f} MB, weights {weights / mb:.0f} MB; fork server PSS "
                 f"{idle_fork_server_pss / mb:.0f} MB, shared by every worker"),
    ]
    zoo.models.close()
    rows.append(relay_cost(runs))
    return rows


if __name__ == "__main__":
    for r in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3, only_relay="--relay" in sys.argv):
        print(r)
