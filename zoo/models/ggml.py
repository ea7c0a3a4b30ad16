"""llama.cpp on any CPU: pick the ggml CPU variant this machine really grants, and set up its threads.

`make install` builds llama-cpp-python with ggml's runtime dispatch (GGML_BACKEND_DL and
GGML_CPU_ALL_VARIANTS): one `libggml-cpu-<variant>.so` per instruction-set level, none of them
tuned to the build host. ggml's own chooser reads CPUID only (its source says it "does not check
for OS support"), so on a virtual machine whose CPU advertises AMX or AVX-512 without letting
processes use them it would pick a library that dies with SIGILL. Here each wide instruction
family is executed once in a child process first; only families that ran count.

Nothing here imports llama_cpp at module import; `prepare()` runs on the first GGUF load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ModelLoadError

log = logging.getLogger(__name__)

# What each of ggml's x86 CPU variants is compiled for (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS),
# as /proc/cpuinfo flag names. "avx512" stands for F+CD+VL+DQ+BW, as ggml's score check does.
X86_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "ivybridge": ("sse4_2", "avx", "f16c"),
    "piledriver": ("sse4_2", "avx", "f16c", "fma"),
    "haswell": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"),
    "skylakex": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512"),
    "cannonlake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512vbmi"),
    "cascadelake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512_vnni"),
    "icelake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512vbmi", "avx512_vnni"),
    "cooperlake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512_vnni", "avx512_bf16"),
    "zen4": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512vbmi", "avx512_vnni",
             "avx512_bf16"),
    "alderlake": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni"),
    "sapphirerapids": ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512", "avx512vbmi", "avx512_vnni",
                       "avx512_bf16", "amx_tile", "amx_int8"),
}
# ggml's own weights for the same features (its ggml_backend_cpu_x86_score), so the pick matches
# what ggml would choose on a machine that grants everything it advertises.
_WEIGHTS = {"fma": 1, "f16c": 2, "sse4_2": 4, "bmi2": 8, "avx": 16, "avx2": 32, "avx_vnni": 64, "avx512": 128,
            "avx512vbmi": 256, "avx512_bf16": 512, "avx512_vnni": 1024, "amx_int8": 2048}
_AVX512_PARTS = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")

# One instruction (or the shortest sequence) per family whose use the OS or hypervisor must enable
# (XSAVE state: YMM, ZMM, AMX tiles), as machine code ending in `ret`. They are run in a child
# process: a family the machine does not grant kills that child with SIGILL, not the zoo.
_PROBES: dict[str, str] = {
    "avx": "c5fc57c0c5f877c3",  # vxorps ymm0,ymm0,ymm0; vzeroupper; ret
    "avx2": "c5fdefc0c5f877c3",  # vpxor ymm0,ymm0,ymm0; vzeroupper; ret
    "avx512": "62f17d48efc0c5f877c3",  # vpxord zmm0,zmm0,zmm0; vzeroupper; ret
    # ldtilecfg [rdi]; tilezero tmm0; tilerelease; ret  (rdi: a 64-byte palette-1 config)
    "amx_tile": "c4e2784907c4e27b49c0c4e27849c0c3",
}
# (probe, features it needs advertised, features lost when it fails): a wider family needs the narrower one's state.
_STATE_FAMILIES: tuple[tuple[str, tuple[str, ...], frozenset[str]], ...] = (
    ("avx", ("avx",), frozenset({"avx", "avx2", "avx512", "avx_vnni", "f16c", "fma"})),
    ("avx2", ("avx2",), frozenset({"avx2", "avx512", "avx_vnni"})),
    ("avx512", ("avx512",), frozenset({"avx512", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"})),
    ("amx_tile", ("amx_tile", "amx_int8"), frozenset({"amx_tile", "amx_int8"})),
)
_PROBE_CHILD = r"""
import ctypes, mmap, sys
code = bytes.fromhex(sys.argv[1])
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
cfg = (ctypes.c_ubyte * 64)()
cfg[0] = 1; cfg[16] = 64; cfg[48] = 16  # palette 1, tile 0: 16 rows x 64 bytes
if sys.argv[2] == "amx":
    SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
        sys.exit(3)  # the kernel refuses AMX tile data to processes
ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addr)(ctypes.addressof(cfg))
print("ok")
"""


def cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports (Linux /proc/cpuinfo); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def probe_family(family: str, timeout: float = 20.0) -> bool:
    """True when one instruction of `family` runs in a child process without SIGILL."""
    code = _PROBES[family]
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _PROBE_CHILD, code, "amx" if family == "amx_tile" else ""],
                              capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("Instruction probe for %s could not run (%s); treating it as unavailable", family, exc)
        return False
    if done.returncode != 0:
        log.info("Instruction family %s is advertised but not usable here (probe exit %s)", family, done.returncode)
    return done.returncode == 0 and done.stdout.strip() == b"ok"


def granted_features(flags: set[str] | None = None, probe: Any = probe_family) -> set[str]:
    """Feature names (as in X86_VARIANTS) that the CPU advertises and that actually run here."""
    flags = cpu_flags() if flags is None else set(flags)
    have = set(flags)
    if all(p in flags for p in _AVX512_PARTS):
        have.add("avx512")
    # Families whose register state the OS or hypervisor must enable: advertised is not enough.
    for family, needs, lost in _STATE_FAMILIES:
        if all(n in have for n in needs) and not probe(family):
            have -= lost
    return have


def variant_score(needs: tuple[str, ...], have: set[str]) -> int:
    """ggml's score for a variant: 0 when it needs a feature not granted, higher is better."""
    if any(n not in have for n in needs):
        return 0
    return 1 + sum(_WEIGHTS.get(n, 0) for n in needs)


def best_x86_variant(available: list[str], have: set[str]) -> str | None:
    """The best of the built variants that this machine's features allow, or None."""
    ranked = ranked_x86_variants(available, have)
    return ranked[0] if ranked else None


# --------------------------------------------------------------------------- the installed library


@dataclass(frozen=True)
class Build:
    """What kind of llama.cpp library is installed, and which CPU variant this process uses."""

    lib_dir: Path | None
    dispatch: bool  # built with runtime CPU dispatch (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS)
    variants: tuple[str, ...]
    chosen: str | None = None
    variant_dir: Path | None = None  # where the libggml-cpu-<variant>.so files are

    def variant_path(self, variant: str) -> Path:
        """The library file of one CPU variant."""
        assert self.variant_dir is not None
        return self.variant_dir / f"libggml-cpu-{variant}.so"

    @property
    def problem(self) -> str | None:
        """Why the zoo will not trust this build by default, or None."""
        if self.lib_dir is None:
            return "llama-cpp-python is not installed"
        if not self.dispatch:
            return ("the installed llama-cpp-python was not built with runtime CPU dispatch, so it may hold "
                    "instructions of the machine that built it (a crash with SIGILL elsewhere)")
        return None


def installed_build() -> Build:
    """Inspect the installed llama-cpp-python without loading it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return Build(None, False, ())
    package = Path(list(spec.submodule_search_locations)[0])
    lib_dir = package / "lib"
    # llama-cpp-python installs the loadable CPU variants as wheel data: site-packages/bin, not llama_cpp/lib.
    for variant_dir in (lib_dir, package.parent / "bin"):
        variants = tuple(sorted(p.name[len("libggml-cpu-"):-len(".so")] for p in variant_dir.glob("libggml-cpu-*.so")))
        if variants:
            break
    dispatch = bool(variants) and not (lib_dir / "libggml-cpu.so").exists()
    return Build(lib_dir, dispatch, variants, variant_dir=variant_dir if variants else None)


FIX_REBUILD = "rebuild it portably with `make install` (or set ZOO_GGUF_BACKEND=transformers)"

_prepared: Build | None = None
_prepare_lock = threading.Lock()


def omp_environment(env: dict[str, str] | os._Environ = os.environ) -> None:
    """OpenMP's spin before sleeping, for ggml's threads; set before libgomp loads, never over the operator's.

    ggml meets its threads at an OpenMP barrier after every operation, hundreds of times a token.
    libgomp's default lets a waiting thread spin 300000 times first, so when another process holds
    a core the spinner and the thread it waits for fight over it: 2 threads fell to 4 tokens/s
    beside other work where 1 thread kept 35. With 20000 spins they kept 51 (BENCHMARKS.md).
    """
    env.setdefault("GOMP_SPINCOUNT", SPINCOUNT)


SPINCOUNT = "20000"


def ranked_x86_variants(available: list[str], have: set[str]) -> list[str]:
    """Built variants this machine's features allow, best first."""
    scored = sorted(((variant_score(X86_VARIANTS[v], have), v) for v in available if v in X86_VARIANTS), reverse=True)
    return [v for s, v in scored if s > 0]


_VERIFY_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from zoo.models import ggml
ggml.prepare(force_variant=sys.argv[2])
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[3], n_ctx=128, n_threads=2, n_threads_batch=2, verbose=False)
out = llm.create_completion("One, two, three,", max_tokens=4, temperature=0.0, top_k=1)
print("ok", flush=True)
"""


def verify_variant(variant: str, model: Path, timeout: float = 120.0) -> tuple[bool, str]:
    """Decode a few tokens of `model` on `variant` in a child process: (ran, what happened).

    Advertised and even OS-granted is not enough: on one virtual machine here ggml's AMX kernels
    die with SIGILL although a lone tile instruction runs. Only a real decode tells.
    """
    root = str(Path(__file__).resolve().parents[2])
    try:
        done = subprocess.run([sys.executable, "-c", _VERIFY_CHILD, root, variant, str(model)],
                              capture_output=True, timeout=timeout, env=dict(os.environ, PYTHONNOUSERSITE="1"))
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    if done.returncode == 0 and b"ok" in done.stdout:
        return True, "decoded"
    if done.returncode < 0:
        import signal

        return False, f"killed by {signal.Signals(-done.returncode).name}"
    return False, f"exit {done.returncode}: {done.stderr.decode('utf-8', 'replace').strip()[-300:]}"


def _verdicts_file(cache_dir: Path, build: Build) -> Path:
    # Keyed by what decides the outcome: the CPU's flags, the kernel, and the build.
    st = build.variant_path(build.variants[0]).stat()
    key = f"{sorted(cpu_flags())}|{platform.release()}|{build.variant_dir}|{st.st_mtime_ns}"
    return cache_dir / "llama-cpu" / f"verdicts-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def choose_variant(build: Build, cache_dir: Path | None, model: Path | None) -> str:
    """The best variant that the CPU advertises, the instruction probes allow and (given a model) that decodes."""
    candidates = ranked_x86_variants(list(build.variants), granted_features())
    if not candidates:
        raise ModelLoadError("No llama.cpp CPU variant runs on this CPU.", FIX_REBUILD)
    if model is None or cache_dir is None:
        return candidates[0]
    path = _verdicts_file(cache_dir, build)
    try:
        verdicts = json.loads(path.read_text())
    except (OSError, ValueError):
        verdicts = {}
    chosen = None
    for variant in candidates:
        if variant == "x64":  # plain x86-64: nothing wider to fail on
            chosen = variant
            break
        if variant not in verdicts:
            ok, why = verify_variant(variant, model)
            verdicts[variant] = {"ok": ok, "why": why}
            if not ok:
                log.warning("llama.cpp CPU variant %s does not run here (%s); trying the next one", variant, why)
        if verdicts[variant]["ok"]:
            chosen = variant
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(verdicts, indent=1))
    os.replace(tmp, path)
    return chosen or "x64"


def prepare(cache_dir: Path | None = None, model: Path | None = None, force_variant: str | None = None) -> Build:
    """Load the best CPU variant this machine runs into llama.cpp (once per process).

    With a model and a cache folder, the chosen variant is first proven by a short decode in a
    child process (remembered on disk); without them, the instruction probes decide.
    """
    global _prepared
    with _prepare_lock:
        if _prepared is not None:
            return _prepared
        build = installed_build()
        if build.lib_dir is None:
            raise ModelLoadError("llama-cpp-python is not installed.",
                                 "run `make install`, or set ZOO_GGUF_BACKEND=transformers")
        omp_environment()
        import ctypes

        # llama.cpp logs every tensor of a conversion and every key of a load; keep errors only.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        import llama_cpp  # noqa: F401  loads libllama and libggml; backends are registered below

        chosen = None
        if build.dispatch:
            ggml = ctypes.CDLL(str(_loaded_library("libggml.so", build.lib_dir)))
            ggml.ggml_backend_load.restype = ctypes.c_void_p
            ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
            ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
            if ggml.ggml_backend_reg_count() == 0:
                if force_variant or platform.machine().lower() in ("x86_64", "amd64"):
                    chosen = force_variant or choose_variant(build, cache_dir, model)
                    path = build.variant_path(chosen)
                    if not ggml.ggml_backend_load(str(path).encode()):
                        raise ModelLoadError(f"llama.cpp could not load its CPU backend {path.name}.", FIX_REBUILD)
                else:  # ARM variants check the kernel's HWCAP bits, which already mean "granted"
                    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
                    ggml.ggml_backend_load_all_from_path(str(build.variant_dir).encode())
                    chosen = "ggml's pick (HWCAP)"
            log.info("llama.cpp CPU backend: %s (of %s)", chosen, ", ".join(build.variants))
        _prepared = Build(build.lib_dir, build.dispatch, build.variants, chosen, build.variant_dir)
        return _prepared


def engine_env(cache_dir: Path, model: Path) -> dict[str, str]:
    """Environment for running llama.cpp's own tools (llama_cpp.server) on the variant the zoo would pick.

    The portable build's CPU variants live outside ggml's search path; GGML_BACKEND_PATH names one.
    """
    build = installed_build()
    if build.problem is not None:
        raise ModelLoadError(f"No portable llama.cpp here: {build.problem}.", FIX_REBUILD)
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise ModelLoadError("engine_env picks x86-64 variants only.", "on ARM, ggml's own choice is right")
    return {"GGML_BACKEND_PATH": str(build.variant_path(choose_variant(build, cache_dir, model))),
            "GOMP_SPINCOUNT": SPINCOUNT}


def _loaded_library(stem: str, lib_dir: Path) -> Path:
    """The file of a library this process already mapped (the wheel holds libggml.so, .so.0 and
    .so.0.x as separate copies: registering a backend in the wrong copy registers it nowhere)."""
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if path.startswith(str(lib_dir)) and Path(path).name.startswith(stem):
                return Path(path)
    except OSError:
        pass
    for name in (stem + ".0", stem):
        if (lib_dir / name).exists():
            return lib_dir / name
    return lib_dir / stem


def system_info() -> str:
    """llama.cpp's own line of what it was built with and uses (after prepare())."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace")


# --------------------------------------------------------------------------- weights for llama.cpp

# llama.cpp file types (llama.h `llama_ftype`) the zoo can convert a GGUF to.
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7}


def converted_gguf(source: Path, weights: str, cache_dir: Path, threads: int = 0) -> Path:
    """`source` re-encoded as `weights` (f16, q8_0 or f32) by llama.cpp, cached on disk; `source` for "original".

    A Q4_1 file makes llama.cpp quantise activations too, and on a small model that flips close
    greedy choices; the dequantised weights give the reference model's answers (BENCHMARKS.md).
    """
    if weights == "original":
        return source
    if weights not in FTYPES:
        raise ModelLoadError(f"Unknown GGUF weight format `{weights}`.",
                             f"set ZOO_GGUF_WEIGHTS to one of: original, {', '.join(FTYPES)}")
    st = source.stat()
    digest = hashlib.sha256(f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}:{weights}".encode()).hexdigest()[:16]
    out = cache_dir / "gguf" / f"{source.stem}.{weights}-{digest}.gguf"
    if out.is_file():
        return out
    prepare(cache_dir, source)
    import ctypes

    import llama_cpp

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[weights]
    params.allow_requantize = True
    params.nthread = threads or (os.cpu_count() or 1)
    started = time.perf_counter()
    try:
        failed = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.pointer(params))
        if failed:
            raise ModelLoadError(f"llama.cpp could not convert {source.name} to {weights} (code {failed}).",
                                 "set ZOO_GGUF_WEIGHTS=original to run the file as it is")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    (out.parent / (out.name + ".json")).write_text(json.dumps(
        {"source": str(source), "weights": weights, "seconds": round(time.perf_counter() - started, 2)}))
    log.info("Converted %s to %s in %.1fs: %s", source.name, weights, time.perf_counter() - started, out)
    return out


def default_threads() -> int:
    """Every core this process may use: with OpenMP's short spin (omp_environment) that is fastest."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
