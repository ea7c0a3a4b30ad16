"""`python -m bench` (or `make bench`): the zoo against the baselines a user would run instead.

Every figure is the median of several runs, and every ratio compares two figures
measured side by side in this one process run. Results go to bench/results.json
and a table in BENCHMARKS.md.

    python -m bench                 # everything (about 10 minutes on 2 cores)
    python -m bench --only textgen  # one section: coldstart, coldstart_tabs, textgen, load, asr, image,
                                    # concurrency, threads, portable, chatload, workers, finetune
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "Write a short story about a robot who learns to paint."
SYSTEM = "You are a helpful assistant."


@dataclass
class Row:
    """One measured figure against its baseline, measured in the same run."""

    section: str
    name: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    runs: int = 0
    note: str = ""


def median_time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[float, Any]:
    """Median wall seconds of fn() over `runs` runs after `warmup` untimed ones; returns the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def paired_times(a: Callable[[], Any], b: Callable[[], Any], runs: int) -> tuple[float, Any, float, Any]:
    """Median seconds of a() and b(), run alternately (a, b, a, b, ...) so drift hits both alike."""
    a(), b()  # warm-up, untimed
    ta, tb, ra, rb = [], [], None, None
    for _ in range(runs):
        t0 = time.perf_counter()
        ra = a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rb = b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), ra, statistics.median(tb), rb


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], port: int, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    """Start a server process; return it and the seconds until it answered HTTP."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc, time.perf_counter() - t0
        except OSError:
            if time.perf_counter() - t0 > 120:
                proc.kill()
                raise RuntimeError(f"{cmd} did not answer within 120 s")
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server and wait for it."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


BARE_APP = """
import gradio as gr
with gr.Blocks() as demo:
    gr.Textbox()
demo.launch(server_name="127.0.0.1")
"""


# --------------------------------------------------------------------------- 1. cold start
def bench_coldstart(runs: int) -> list[Row]:
    """`python app.py` until it answers HTTP, against a bare gr.Blocks app started the same way."""
    bare = Path(tempfile.mkdtemp()) / "bare_app.py"
    bare.write_text(BARE_APP)
    zoo_times, bare_times = [], []
    for _ in range(runs):  # interleaved so drift hits both alike
        for cmd, times in (([sys.executable, str(bare)], bare_times), ([sys.executable, "app.py"], zoo_times)):
            port = free_port()
            env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
            proc, seconds = start_server(cmd, port, env)
            stop(proc)
            times.append(seconds)
    z, b = statistics.median(zoo_times), statistics.median(bare_times)
    return [Row("cold start", "python app.py until HTTP answers", z, "s", "bare gr.Blocks app, one textbox", b,
                z / b, "<= 1.3", z / b <= 1.3, runs)]


# --------------------------------------------------------------------------- 2. text generation
def _zoo(**changes: Any) -> Any:
    from zoo.runner import Zoo
    from zoo.settings import Settings

    return Zoo(Settings.from_env().replace(**changes))


def bench_textgen(runs: int, max_new_tokens: int = 128) -> list[Row]:
    """Decode speed: plugin call and HTTP against raw model.generate and raw llama.cpp, same weights and threads."""
    from zoo.models.sources import packaged_path

    from zoo.models.ggml import converted_gguf, default_threads

    # The zoo's default for llama.cpp (see zoo.models.loaders.load_llama_cpp); both sides use it.
    threads = int(os.environ.get("ZOO_THREADS") or default_threads())
    params = dict(prompt=PROMPT, max_new_tokens=max_new_tokens, temperature=0, repetition_penalty=1.0,
                  system_prompt=SYSTEM, seed=0)
    rows: list[Row] = []

    # --- llama.cpp: raw library vs the zoo's default CPU path for GGUF
    zoo = _zoo(gguf_backend="llama-cpp", threads=threads)
    lm = zoo.models.load("packaged:smollm2-135m-instruct", "causal-lm").model
    prompt = lm.chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}])
    from llama_cpp import Llama

    weights = converted_gguf(packaged_path("smollm2-135m-instruct"), zoo.settings.gguf_weights, zoo.settings.cache_dir)
    raw = Llama(model_path=str(weights), n_ctx=4096, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    tokens = raw.tokenize(prompt.encode(), add_bos=False, special=True)

    def raw_llama() -> str:
        out = raw.create_completion(tokens, max_tokens=max_new_tokens, temperature=0.0, top_k=1, top_p=1.0,
                                    repeat_penalty=1.0)
        return out["choices"][0]["text"]

    def zoo_llama() -> str:
        return zoo.run("text-generation", **params)["text"]

    raw_s, raw_text, zoo_s, zoo_text = paired_times(raw_llama, zoo_llama, runs)
    n_raw, n_zoo = lm.count_tokens(raw_text), lm.count_tokens(zoo_text)
    raw_tps, zoo_tps = n_raw / raw_s, n_zoo / zoo_s
    rows.append(Row("text generation", "zoo plugin call, GGUF default path (llama.cpp)", zoo_tps, "tokens/s",
                    "llama-cpp-python on the same GGUF", raw_tps, zoo_tps / raw_tps, ">= 0.9", zoo_tps / raw_tps >= 0.9,
                    runs, f"{n_zoo} tokens, {threads} threads, greedy"))

    # --- through HTTP (gradio_client, final result only)
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), ZOO_PLUGINS="text-generation", ZOO_GGUF_BACKEND="llama-cpp",
               ZOO_THREADS=str(threads))
    proc, _ = start_server([sys.executable, "app.py"], port, env)
    try:
        from gradio_client import Client

        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        http_s, http_text = median_time(lambda: client.predict(**params, api_name="/text_generation"), runs)
        rows.append(Row(
            "text generation", "zoo over HTTP (gradio_client), llama.cpp", lm.count_tokens(http_text) / http_s,
            "tokens/s", "zoo plugin call (same run)", zoo_tps, (lm.count_tokens(http_text) / http_s) / zoo_tps,
            "overhead <= 1.15", zoo_tps / (lm.count_tokens(http_text) / http_s) <= 1.15, runs,
            "ratio here is HTTP/plugin speed; overhead = its inverse"))
        rows.append(Row("text generation", "zoo over HTTP (gradio_client), llama.cpp", lm.count_tokens(http_text) / http_s,
                        "tokens/s", "llama-cpp-python on the same GGUF", raw_tps,
                        (lm.count_tokens(http_text) / http_s) / raw_tps, "", None, runs))
    finally:
        stop(proc)
    raw.close()  # free llama.cpp's memory before the transformers half
    zoo.models.cache.clear()

    # --- transformers: raw generate vs the plugin on the same dequantised weights
    tzoo = _zoo(gguf_backend="transformers", threads=0)  # torch's own default, for both sides
    tlm = tzoo.models.load("packaged:smollm2-135m-instruct", "causal-lm").model
    import torch

    ids = tlm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)

    def raw_generate() -> str:
        with torch.inference_mode():
            out = tlm.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tlm.tokenizer.eos_token_id)
        return tlm.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

    def zoo_transformers() -> str:
        return tzoo.run("text-generation", **params)["text"]

    hf_s, hf_text, zt_s, zt_text = paired_times(raw_generate, zoo_transformers, runs)
    hf_tps, zt_tps = tlm.count_tokens(hf_text) / hf_s, tlm.count_tokens(zt_text) / zt_s
    rows.append(Row("text generation", "zoo plugin call, transformers fp32", zt_tps, "tokens/s",
                    "raw model.generate, same weights and dtype", hf_tps, zt_tps / hf_tps, "overhead <= 1.05",
                    hf_tps / zt_tps <= 1.05, runs, "ratio here is zoo/raw speed; overhead = its inverse"))
    rows.append(Row("text generation", "llama.cpp vs transformers fp32 (raw both)", raw_tps, "tokens/s",
                    "raw transformers generate", hf_tps, raw_tps / hf_tps, "", None, runs))
    tzoo.models.cache.clear()
    return rows


# --------------------------------------------------------------------------- 3. model load
def bench_load(runs: int) -> list[Row]:
    """First load of SmolLM2 from GGUF (dequantise + cache) against the second, cached load."""
    from zoo.models import ModelManager
    from zoo.settings import Settings

    firsts, seconds = [], []
    for _ in range(runs):
        cache = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
        settings = Settings.from_env().replace(cache_dir=cache, gguf_backend="transformers")
        t0 = time.perf_counter()
        ModelManager(settings).load("packaged:smollm2-135m-instruct", "causal-lm")
        firsts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ModelManager(settings).load("packaged:smollm2-135m-instruct", "causal-lm")
        seconds.append(time.perf_counter() - t0)
        shutil.rmtree(cache, ignore_errors=True)
    f, s = statistics.median(firsts), statistics.median(seconds)
    llama_s, _ = median_time(lambda: ModelManager(Settings.from_env().replace(gguf_backend="llama-cpp")).load(
        "packaged:smollm2-135m-instruct", "causal-lm"), runs, warmup=0)
    return [
        Row("model load", "second (cached) load, transformers", s, "s", "first load (GGUF dequantise)", f, s / f,
            "<= 0.2", s / f <= 0.2, runs),
        Row("model load", "llama.cpp load (no conversion needed)", llama_s, "s", "first transformers GGUF load", f,
            llama_s / f, "", None, runs),
    ]


# --------------------------------------------------------------------------- 4. speech recognition
def _speech() -> Path:
    """About 25 s of espeak-ng speech (five sentences with pauses), made now: no audio is committed."""
    sys.path.insert(0, str(ROOT / "tests"))
    from speech import SENTENCES, sentences_with_pauses  # type: ignore[import-not-found]

    path, _ = sentences_with_pauses(SENTENCES[:5], Path(tempfile.mkdtemp()) / "speech.wav")
    return path


def bench_asr(runs: int) -> list[Row]:
    """Real-time factor through the zoo vs faster-whisper direct; then the engines against each other."""
    from zoo.audio import decode
    from zoo.models.sources import packaged_path

    wav = _speech()
    audio = decode(wav)
    duration = len(audio) / 16000
    zoo = _zoo()
    fw = zoo.models.load("packaged:whisper-tiny.en", "automatic-speech-recognition").model

    def direct() -> str:
        # What a user would write: hand faster-whisper the file, with the options the zoo uses.
        segments, _ = fw.transcribe(str(wav), language="en", beam_size=5, condition_on_previous_text=False,
                                    without_timestamps=False, vad_filter=False)
        return " ".join(s.text for s in segments)

    def through_zoo() -> str:
        return zoo.run("automatic-speech-recognition", audio=str(wav))["text"]

    d_s, _, z_s, _ = paired_times(direct, through_zoo, runs)
    rows = [Row("speech recognition", "RTF through the zoo (faster-whisper tiny.en int8)", z_s / duration,
                "s per audio s", "faster-whisper called directly", d_s / duration, z_s / d_s, "overhead <= 1.05",
                z_s / d_s <= 1.05, runs, f"{duration:.1f} s of espeak-ng speech")]

    # Engines side by side: one 30 s window, exactly N decoded tokens each, tiny.en dimensions.
    n_tokens = 64
    import numpy as np
    import torch

    window = np.zeros(16000 * 30, dtype=np.float32)
    window[: min(len(audio), len(window))] = audio[: len(window)]

    import ctranslate2

    ct2 = fw.model
    from faster_whisper.feature_extractor import FeatureExtractor

    feats = np.ascontiguousarray(FeatureExtractor()(window)[:, :3000])
    sot = [50257, 50362]  # <|startoftranscript|><|notimestamps|> for tiny.en
    eot = 50256

    def fw_engine() -> None:
        ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None])), [sot], max_length=n_tokens + len(sot),
                     suppress_tokens=[eot], beam_size=1)

    import whisper
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                           n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
    torch.manual_seed(0)
    ow = Whisper(dims).eval()
    mel = whisper.log_mel_spectrogram(torch.from_numpy(window))

    def ow_engine() -> None:
        opts = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, sample_len=n_tokens,
                                       suppress_tokens=[-1, eot])
        whisper.decode(ow, mel, opts)

    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(vocab_size=51864, d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                        decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
                        decoder_start_token_id=50257, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot)
    hf = WhisperForConditionalGeneration(cfg).eval()
    feats_t = torch.from_numpy(feats[None]).float()

    def hf_engine() -> None:
        with torch.inference_mode():
            hf.generate(feats_t, decoder_input_ids=torch.tensor([sot]), min_new_tokens=n_tokens,
                        max_new_tokens=n_tokens, do_sample=False, suppress_tokens=[eot])

    f_s, _ = median_time(fw_engine, runs)
    o_s, _ = median_time(ow_engine, runs)
    h_s, _ = median_time(hf_engine, runs)
    note = f"30 s window, {n_tokens} tokens forced (EOT suppressed), tiny.en dims; fw real int8, others random fp32"
    rows.append(Row("speech recognition", "faster-whisper engine (CTranslate2 int8)", f_s, "s per 30 s window",
                    "openai-whisper", o_s, f_s / o_s, "", None, runs, note))
    rows.append(Row("speech recognition", "faster-whisper engine (CTranslate2 int8)", f_s, "s per 30 s window",
                    "transformers Whisper", h_s, f_s / h_s, "", None, runs, note))
    assert packaged_path("whisper-tiny.en") is not None
    return rows


# --------------------------------------------------------------------------- 5. image generation
def bench_image(runs: int, steps: int = 8) -> list[Row]:
    """Seconds per denoising step, tiny pipeline: zoo call vs direct diffusers call."""
    import torch

    zoo = _zoo(tiny=True)
    pipe = zoo.models.load("tiny:text-to-image", "text-to-image").model

    def direct() -> None:
        g = torch.Generator("cpu").manual_seed(0)
        pipe(prompt="a red fox", num_inference_steps=steps, width=256, height=256, generator=g, guidance_scale=5.0)

    def through_zoo() -> None:
        zoo.run("text-to-image", prompt="a red fox", steps=steps, width=256, height=256, seed=0, guidance_scale=5.0)

    d_s, _, z_s, _ = paired_times(direct, through_zoo, runs)
    return [Row("image generation", "zoo call, tiny pipeline 256x256", z_s / steps, "s per step",
                "direct diffusers call", d_s / steps, z_s / d_s, "", None, runs, f"{steps} steps")]


# --------------------------------------------------------------------------- 6. concurrency
def bench_concurrency(runs: int, max_new_tokens: int = 48) -> list[Row]:
    """1, 4 and 8 simultaneous API clients on text generation: total tokens/s, p95 latency, failures."""
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), ZOO_PLUGINS="text-generation")
    proc, _ = start_server([sys.executable, "app.py"], port, env)
    rows = []
    try:
        lm = _zoo().models.load("packaged:smollm2-135m-instruct", "causal-lm").model
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(prompt="hi", max_new_tokens=4,
                                                                  api_name="/text_generation")  # load the model
        for n in (1, 4, 8):
            latencies: list[float] = []
            tokens = [0]
            failures = [0]
            lock = threading.Lock()

            def one(i: int) -> None:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                t0 = time.perf_counter()
                try:
                    text = client.predict(prompt=f"{PROMPT} Variant {i}.", max_new_tokens=max_new_tokens,
                                          temperature=0, system_prompt=SYSTEM, api_name="/text_generation")
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        tokens[0] += lm.count_tokens(text)
                except Exception:
                    with lock:
                        failures[0] += 1

            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(one, range(n * 2)))
            wall = time.perf_counter() - t0
            p95 = sorted(latencies)[max(0, int(round(0.95 * len(latencies))) - 1)] if latencies else float("nan")
            rows.append(Row("concurrency", f"{n} clients x 2 requests: total throughput", tokens[0] / wall,
                            "tokens/s", "", None, None, "no request fails", failures[0] == 0, 1,
                            f"p95 latency {p95:.2f} s, {failures[0]} failures, {max_new_tokens} new tokens each"))
    finally:
        stop(proc)
    return rows


# --------------------------------------------------------------------------- 7. llama.cpp threads
def _llama_setup() -> tuple[Path, str, Any, Path]:
    """The default weights file llama.cpp runs, the chat prompt, a token counter and the zoo cache."""
    from zoo.models import ggml
    from zoo.models.sources import packaged_path

    zoo = _zoo(gguf_backend="llama-cpp")
    lm = zoo.models.load("packaged:smollm2-135m-instruct", "causal-lm").model
    prompt = lm.chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}])
    cache = zoo.settings.cache_dir
    model = ggml.converted_gguf(packaged_path("smollm2-135m-instruct"), zoo.settings.gguf_weights, cache)
    count = lm.count_tokens
    return model, prompt, count, cache


def bench_threads(runs: int, tokens: int = 128) -> list[Row]:
    """The zoo over HTTP against raw llama.cpp at 1 and 2 threads, on a quiet machine and beside a busy core."""
    from bench import engines
    from zoo.models.ggml import default_threads, omp_environment

    model, prompt, count, cache = _llama_setup()
    zoo_spin: dict[str, str] = {}
    omp_environment(zoo_spin)
    cores = default_threads()
    params = dict(prompt=PROMPT, max_new_tokens=tokens, temperature=0, repetition_penalty=1.0, system_prompt=SYSTEM,
                  seed=0)
    configs = {f"llama.cpp, {t} thread{'s' if t > 1 else ''}, libgomp default spin": (t, None)
               for t in sorted({1, cores})}
    configs[f"llama.cpp, {cores} threads, the zoo's spin (GOMP_SPINCOUNT={zoo_spin['GOMP_SPINCOUNT']})"] = (
        cores, zoo_spin["GOMP_SPINCOUNT"])
    rows: list[Row] = []
    for label, loaded in (("quiet", False), ("one busy core beside it", True)):
        got: dict[str, list[float]] = {name: [] for name in [*configs, "zoo"]}
        with engines.ZooServer(params, count, start_server, stop, free_port) as server:
            for _ in range(runs):  # alternate: every configuration sees the same drift
                with engines.Load() if loaded else contextlib.nullcontext():
                    for name, (threads, spin) in configs.items():
                        got[name].append(engines.decode_tps(model, threads, spin, 1, tokens, prompt, cache))
                    got["zoo"].append(server.tps())
        med = {k: statistics.median(v) for k, v in got.items()}
        best_name = max(configs, key=lambda k: med[k])
        for name in configs:
            rows.append(Row("llama.cpp threads", f"{label}: raw {name}", med[name], "tokens/s", "", None, None, "",
                            None, runs, f"{tokens} greedy tokens, {model.name}"))
        ratio = med["zoo"] / med[best_name]
        rows.append(Row("llama.cpp threads", f"{label}: zoo over HTTP (defaults: {cores} threads)", med["zoo"],
                        "tokens/s", f"best raw: {best_name}", med[best_name], ratio,
                        ">= 0.9" if not loaded else "no collapse (>= 0.5)", ratio >= (0.9 if not loaded else 0.5),
                        runs, "gradio_client, final result, one warmed-up server"))
    return rows


# --------------------------------------------------------------------------- 8. portable vs native build
def bench_portable(runs: int, tokens: int = 128) -> list[Row]:
    """The portable runtime-dispatch build against one compiled with -march=native for this host."""
    from bench import engines
    from zoo.models.ggml import SPINCOUNT, default_threads, installed_build, prepare

    model, prompt, _count, cache = _llama_setup()
    native_dir, build_seconds = engines.native_wheel(cache / "bench")
    threads = default_threads()
    portable, native = [], []
    for _ in range(runs):
        portable.append(engines.decode_tps(model, threads, SPINCOUNT, 1, tokens, prompt, cache))
        native.append(engines.decode_tps(model, threads, SPINCOUNT, 1, tokens, prompt, cache,
                                         pythonpath=str(native_dir), portable=False))
    p, n = statistics.median(portable), statistics.median(native)
    chosen = prepare(cache, model).chosen
    note = f"{threads} threads, {tokens} greedy tokens, {model.name}; portable picked {chosen}"
    if build_seconds is not None:
        note += f"; native build took {build_seconds:.0f} s"
    rows = [Row("portable build", "portable (runtime dispatch) decode speed", p, "tokens/s",
                "native build (-march=native), same machine", n, p / n, ">= 0.9", p / n >= 0.9, runs, note)]
    assert installed_build().dispatch
    return rows


# --------------------------------------------------------------------------- 9. chat under load
def bench_chatload(runs: int, clients: int = 12, max_new_tokens: int = 48) -> list[Row]:
    """Time to first token of chat when 12 clients ask at once (one model serves one request at a time)."""
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), ZOO_PLUGINS="conversational,text-generation")
    proc, _ = start_server([sys.executable, "app.py"], port, env)
    try:
        url = f"http://127.0.0.1:{port}/"
        Client(url, verbose=False).predict(message="hi", history=[], max_new_tokens=4, api_name="/chat")  # load
        ttft: list[float] = []
        total: list[float] = []
        failures = [0]
        lock = threading.Lock()

        def one(i: int) -> None:
            client = Client(url, verbose=False)
            t0 = time.perf_counter()
            try:
                job = client.submit(message=f"{PROMPT} ({i})", history=[], max_new_tokens=max_new_tokens,
                                    temperature=0, api_name="/chat")
                first = None
                for _out in job:
                    if first is None:
                        first = time.perf_counter() - t0
                job.result()
                with lock:
                    ttft.append(first if first is not None else time.perf_counter() - t0)
                    total.append(time.perf_counter() - t0)
            except Exception:
                with lock:
                    failures[0] += 1

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(clients)))
        p95 = sorted(ttft)[max(0, int(round(0.95 * len(ttft))) - 1)] if ttft else float("nan")
        return [Row("chat under load", f"{clients} chat clients at once: median time to first token",
                    statistics.median(ttft) if ttft else float("nan"), "s", "", None, None, "no request fails",
                    failures[0] == 0, 1, f"p95 {p95:.2f} s; median full reply {statistics.median(total):.2f} s; "
                    f"{max_new_tokens} tokens each; ZOO_CONCURRENCY=1 serves them one after another")]
    finally:
        stop(proc)


def bench_workers(runs: int) -> list[Row]:
    """Worker overhead against inline: memory, first request, streaming, crash-restart (bench/workers.py)."""
    from bench.workers import measure

    return [Row(**r) for r in measure(runs)]


def bench_document_qa(runs: int) -> list[Row]:
    """Ask your documents: first vs second question on the same files, retrieval vs answer (bench/document_qa.py)."""
    from bench.document_qa import measure

    return [Row(**r) for r in measure(runs)]


def bench_voice_chat(runs: int) -> list[Row]:
    """Voice chat latency, a spoken question against the same question typed (bench/voice_chat.py)."""
    from bench.voice_chat import measure

    return [Row(**r) for r in measure(runs)]


def bench_lora(runs: int) -> list[Row]:
    """LoRA on SmolLM2: the zoo's job against peft + a plain torch loop, time, tokens/s, RSS (bench/lora.py)."""
    from bench.lora import measure

    return [Row(**r) for r in measure(runs)]


def bench_coldstart_tabs(runs: int) -> list[Row]:
    """`python app.py` with every plugin until / answers 200, against a bare 25-tab gradio app (bench/coldstart_tabs.py)."""
    from bench.coldstart_tabs import measure

    return [Row(**r) for r in measure(runs)]


def bench_finetune(runs: int) -> list[Row]:
    """Fine-tuning a text classifier: the zoo's job against transformers.Trainer (bench/fine_tune.py)."""
    from bench.fine_tune import measure

    return [Row(**r) for r in measure(max(1, runs // 5))]  # minutes per run: one each at the default --runs 5


SECTIONS = {"coldstart": bench_coldstart, "coldstart_tabs": bench_coldstart_tabs, "textgen": bench_textgen, "load": bench_load, "asr": bench_asr,
            "image": bench_image, "concurrency": bench_concurrency, "threads": bench_threads,
            "portable": bench_portable, "chatload": bench_chatload, "workers": bench_workers,
            "document_qa": bench_document_qa, "voice_chat": bench_voice_chat, "lora": bench_lora, "finetune": bench_finetune}


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import importlib.metadata as md

    versions = {}
    for dist in ("gradio", "torch", "transformers", "diffusers", "llama-cpp-python", "faster-whisper",
                 "ctranslate2", "openai-whisper"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count()),
            "processor": platform.processor() or platform.machine(), **versions}


def write_markdown(rows: list[Row], info: dict[str, str], command: str, path: Path) -> None:
    """BENCHMARKS.md: machine, versions, command, and the table."""
    lines = ["# Benchmarks", "", f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}.", "",
             "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
             "Each figure is the median of the runs shown; each ratio divides two figures measured side by side "
             "in the same run.", "",
             "| section | measured | value | baseline | baseline value | ratio | target | met | runs | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bv = f"{r.baseline_value:.3g} {r.unit}" if r.baseline_value is not None else ""
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.section} | {r.name} | {r.value:.3g} {r.unit} | {r.baseline} | {bv} | {ratio} | "
                     f"{r.target} | {met} | {r.runs} | {r.note} |")
    old = path.read_text() if path.exists() else ""
    marker = "\n## Notes"
    notes = old[old.index(marker):] if marker in old else ""
    path.write_text("\n".join(lines) + "\n" + notes)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table, write results.json and BENCHMARKS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS), help="run only these sections")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or list(SECTIONS):
        t0 = time.perf_counter()
        got = SECTIONS[name](args.runs)
        rows.extend(got)
        for r in got:
            ratio = f" ratio {r.ratio:.3f}" if r.ratio is not None else ""
            print(f"[{name}] {r.name}: {r.value:.3g} {r.unit}{ratio} {r.note}", flush=True)
        print(f"[{name}] done in {time.perf_counter() - t0:.0f}s", flush=True)
    info = machine()
    command = "make bench" if not args.only else "python -m bench " + " ".join(f"--only {o}" for o in args.only)
    if args.only and args.out.exists():  # keep the other sections' figures from the last full run
        fresh = {r.section for r in rows}
        kept = [Row(**r) for r in json.loads(args.out.read_text()).get("rows", []) if r["section"] not in fresh]
        rows = kept + rows
        command = f"make bench, then {command}" if kept else command
    args.out.write_text(json.dumps({"machine": info, "command": command, "rows": [asdict(r) for r in rows]},
                                   indent=2))
    write_markdown(rows, info, command, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
