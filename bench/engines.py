"""Benchmark sections for the llama.cpp engine: thread policy (quiet and under load) and portable vs native.

Each configuration decodes in its own child process, because OpenMP reads its wait policy once,
when the library loads. Configurations alternate (a, b, c, a, b, c, ...) so drift hits all alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_DECODE_CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
cfg = json.loads(sys.argv[1])
if cfg.get("pythonpath"):
    sys.path.insert(0, cfg["pythonpath"])  # an unpacked native wheel, ahead of the installed one
sys.path.insert(1, cfg["root"])
if cfg["portable"]:
    from zoo.models import ggml
    ggml.prepare(Path(cfg["cache"]), Path(cfg["model"]))
from llama_cpp import Llama
llm = Llama(model_path=cfg["model"], n_ctx=1024, n_threads=cfg["threads"], n_threads_batch=cfg["threads"],
            verbose=False)
tokens = llm.tokenize(cfg["prompt"].encode(), add_bos=False, special=True)
llm.create_completion(tokens, max_tokens=8, temperature=0.0, top_k=1)
rates = []
for _ in range(cfg["runs"]):
    t0 = time.perf_counter()
    out = llm.create_completion(tokens, max_tokens=cfg["tokens"], temperature=0.0, top_k=1, top_p=1.0,
                                repeat_penalty=1.0)
    rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t0))
print(json.dumps({"tps": statistics.median(rates), "runs": rates}))
"""

LIBGOMP_DEFAULT_SPIN = "300000"  # libgomp's spin count when OMP_WAIT_POLICY is unset (its manual)


def decode_tps(model: Path, threads: int, spin: str | None, runs: int, tokens: int, prompt: str,
               cache: Path, pythonpath: str | None = None, portable: bool = True) -> float:
    """Median tokens/s of raw llama-cpp-python in a child process with this thread count and OpenMP spin."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env["GOMP_SPINCOUNT"] = spin or LIBGOMP_DEFAULT_SPIN
    cfg = dict(root=str(ROOT), model=str(model), threads=threads, runs=runs, tokens=tokens, prompt=prompt,
               cache=str(cache), pythonpath=pythonpath, portable=portable)
    done = subprocess.run([sys.executable, "-c", _DECODE_CHILD, json.dumps(cfg)], capture_output=True, env=env,
                          timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"decode child failed ({done.returncode}): {done.stderr.decode()[-800:]}")
    return float(json.loads(done.stdout.decode().strip().splitlines()[-1])["tps"])


class Load:
    """A competing CPU-bound process (one busy core), as another request or the web server would be."""

    def __enter__(self) -> "Load":
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.kill()
        self.proc.wait()


class ZooServer:
    """The zoo's text generation tab behind `python app.py` with default settings, warmed up, for repeated timing."""

    def __init__(self, prompt_params: dict[str, Any], count: Any, start_server: Any, stop: Any, free_port: Any):
        self.params, self.count, self._start, self._stop, self._port = prompt_params, count, start_server, stop, free_port

    def __enter__(self) -> "ZooServer":
        from gradio_client import Client

        port = self._port()
        env = dict(os.environ, GRADIO_SERVER_PORT=str(port), ZOO_PLUGINS="text-generation")
        for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "ZOO_THREADS"):
            env.pop(k, None)
        self.proc, _ = self._start([sys.executable, "app.py"], port, env)
        self.client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for _ in range(2):  # load the model, then one full request: a server that has served before
            self.client.predict(**self.params, api_name="/text_generation")
        return self

    def tps(self) -> float:
        """Tokens/s of one request, end to end over HTTP."""
        t0 = time.perf_counter()
        text = self.client.predict(**self.params, api_name="/text_generation")
        return self.count(text) / (time.perf_counter() - t0)

    def __exit__(self, *exc: Any) -> None:
        self._stop(self.proc)


def native_wheel(cache_root: Path) -> tuple[Path, float | None]:
    """A llama-cpp-python built with -march=native for this host, unpacked for PYTHONPATH use only.

    It is never installed and never enters pip's cache (--no-cache-dir); it lives under a name
    keyed by this CPU's flags, for this benchmark alone. Returns (folder, build seconds or None if cached).
    """
    import hashlib

    from zoo.models.ggml import cpu_flags

    key = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    folder = cache_root / f"llama-native-{key}"
    if (folder / "llama_cpp").is_dir():
        return folder, None
    wheels = Path(tempfile.mkdtemp(prefix="llama-native-"))
    env = dict(os.environ, CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
               "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF", CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-cache-dir", "--no-deps", "--no-binary",
                    "llama-cpp-python", "-w", str(wheels), "llama-cpp-python==0.3.36"], check=True, env=env)
    seconds = time.perf_counter() - t0
    tmp = folder.with_name(folder.name + ".tmp")
    with zipfile.ZipFile(next(wheels.glob("*.whl"))) as whl:
        whl.extractall(tmp)
    for so in tmp.rglob("*.so*"):
        so.chmod(0o755)
    tmp.rename(folder)
    return folder, seconds
