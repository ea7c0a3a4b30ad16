"""One loader per model family, behind one signature.

    loader(resolved, kind, ctx) -> (model object, bytes it holds)

Families: transformers (the kind's Auto class and processor), gguf (transformers `gguf_file=` with
the dequantised weights cached on disk), diffusers, faster-whisper (CTranslate2),
openai-whisper, piper (ONNX voices on onnxruntime) and remote (an inference engine
elsewhere, through huggingface_hub's InferenceClient: zoo/models/remote.py).
Plugins never call `from_pretrained`; they receive what these return. Each family is
registered with zoo.kinds.register_family at the end of this module; a model kind
(zoo/kinds.py) names the families that can serve it.
Heavy libraries are imported inside the functions, on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ModelLoadError, ModelNotAllowed
from zoo.kinds import ModelKind, register_family, registered_kinds
from zoo.models.devices import module_nbytes
from zoo.models.sources import Resolved, read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadContext:
    """What a loader needs besides the files: device, dtype and the operator's safety switches."""

    device: str
    dtype: Any
    cache_dir: Path
    trust_remote_code: bool = False
    allow_pickle: bool = False
    threads: int = 0
    gguf_backend: str = "auto"
    gguf_weights: str = "f16"
    llama_context: int = 4096
    remote: Any = None  # zoo.models.remote.RemoteOptions, for the remote family only


@dataclass
class Bundle:
    """A transformers model with its tokenizer or processor."""

    model: Any
    processor: Any
    device: str = "cpu"

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (inside the processor when there is one)."""
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def config(self) -> Any:
        """The model's transformers config (labels, sizes, task settings)."""
        return self.model.config


def _check_safetensors(path: Path, ctx: LoadContext) -> bool:
    """True when safetensors weights exist; refuse pickle-only folders unless allowed."""
    if path.is_dir() and not any(path.rglob("*.safetensors")):
        if any(path.rglob("*.bin")) or any(path.rglob("*.pt")):
            if not ctx.allow_pickle:
                raise ModelNotAllowed(
                    f"`{path}` has only pickle weights (.bin/.pt), which can run code when loaded.",
                    "use a model with .safetensors weights, or set ZOO_ALLOW_PICKLE=1 if you trust it",
                )
            return False
    return True


def _set_threads(ctx: LoadContext) -> None:
    if ctx.threads > 0:
        import torch

        torch.set_num_threads(ctx.threads)


def load_transformers(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """The kind's Auto class and processor; its `wrap` (if any) makes the result (a causal LM: TransformersLM)."""
    import transformers

    _set_threads(ctx)
    if not kind.auto_class:
        raise ModelLoadError(f"Kind `{kind.name}` names no transformers Auto class, so a transformers model "
                             f"cannot serve it.", f"pick a model of a family that serves it ({', '.join(kind.families)}), "
                             "or register the kind with auto_class='AutoModelFor...'")
    auto = getattr(transformers, kind.auto_class, None)
    if auto is None:
        raise ModelLoadError(f"transformers {transformers.__version__} has no `{kind.auto_class}` "
                             f"(the Auto class of kind `{kind.name}`).",
                             "fix the kind's auto_class, or install a transformers version that has it")
    path = resolved.path
    safetensors = _check_safetensors(path, ctx)
    common = dict(trust_remote_code=ctx.trust_remote_code)
    model = auto.from_pretrained(path, dtype=ctx.dtype, use_safetensors=safetensors, **common)
    model.to(ctx.device).eval()
    processor = None
    if kind.processor == "processor":
        processor = transformers.AutoProcessor.from_pretrained(path, **common)
    elif kind.processor == "tokenizer":
        processor = transformers.AutoTokenizer.from_pretrained(path, **common)
    if kind.wrap is not None:
        return kind.wrap(model, processor, ctx.device, resolved.ref.raw), module_nbytes(model)
    return Bundle(model, processor, ctx.device), module_nbytes(model)


def _gguf_file(resolved: Resolved) -> Path:
    path = resolved.path
    if path.is_file():
        return path
    files = sorted(path.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"No .gguf file in `{path}`.", "point at the .gguf file itself")
    return files[0]


def gguf_cache_dir(gguf: Path, cache_dir: Path) -> Path:
    """Where the dequantised copy of a GGUF file lives; keyed by path, size and mtime."""
    st = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / "gguf" / f"{gguf.stem}-{digest}"


def gguf_backend(ctx: LoadContext) -> str:
    """llama.cpp on CPU when a portable build of it is installed (several times faster there), else transformers."""
    if ctx.gguf_backend != "auto":
        return ctx.gguf_backend
    if ctx.device != "cpu":
        return "transformers"
    from zoo.models.ggml import FIX_REBUILD, installed_build

    build = installed_build()
    if build.lib_dir is not None and build.problem is not None:
        # A host-specific build can die with SIGILL on this CPU and take the process with it.
        log.warning("Not using llama.cpp: %s. GGUF models run on transformers; %s.", build.problem, FIX_REBUILD)
    return "llama-cpp" if build.problem is None else "transformers"


def load_gguf(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """A GGUF language model, run by llama.cpp or by transformers (see gguf_backend)."""
    if gguf_backend(ctx) == "llama-cpp":
        return load_llama_cpp(resolved, kind, ctx)
    return load_gguf_transformers(resolved, kind, ctx)


def load_llama_cpp(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """llama.cpp on the CPU variant this machine grants, reading the weights as ZOO_GGUF_WEIGHTS says."""
    from zoo.models import ggml

    source = _gguf_file(resolved)
    # Before llama.cpp initialises, which would pick a CPU backend by CPUID alone (and SIGILL on a VM
    # that advertises AMX); the pick is proven on this model in a child process first.
    ggml.prepare(ctx.cache_dir, source)
    from llama_cpp import Llama

    from zoo.models.lm import LlamaCppLM, ThreadTuner

    gguf = ggml.converted_gguf(source, ctx.gguf_weights, ctx.cache_dir, ctx.threads)
    # Every core by default, with OpenMP's short spin (ggml.omp_environment); the tuner drops to fewer
    # threads while other work holds a core (BENCHMARKS.md, threads). ZOO_THREADS fixes the count.
    threads = ctx.threads or ggml.default_threads()
    llm = Llama(model_path=str(gguf), n_ctx=ctx.llama_context, n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=-1 if ctx.device.startswith("cuda") else 0, verbose=False)
    tuner = ThreadTuner.for_cores(threads) if not ctx.threads and threads > 1 else None
    return LlamaCppLM(llm, resolved.ref.raw, ctx.device, threads=tuner), gguf.stat().st_size


def load_gguf_transformers(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """GGUF through transformers; the first load dequantises and saves safetensors, later loads read those."""
    import transformers

    _set_threads(ctx)
    gguf = _gguf_file(resolved)
    converted = gguf_cache_dir(gguf, ctx.cache_dir)
    done = converted / ".zoo-complete"
    if not done.exists():
        started = time.perf_counter()
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                                  dtype=ctx.dtype)
        # The dequantised weights are plain tensors; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        tmp = converted.with_name(converted.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / ".zoo-complete").write_text(str(gguf))
        shutil.rmtree(converted, ignore_errors=True)
        converted.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, converted)
        log.info("Dequantised %s in %.1fs; cached at %s", gguf.name, time.perf_counter() - started, converted)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(converted, dtype=ctx.dtype, use_safetensors=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(converted)
    model.to(ctx.device).eval()
    from zoo.models.lm import TransformersLM

    return TransformersLM(model, tokenizer, ctx.device, resolved.ref.raw), module_nbytes(model)


def load_diffusers(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """A diffusers pipeline moved to the device; sized by its torch components."""
    import diffusers

    _set_threads(ctx)
    safetensors = _check_safetensors(resolved.path, ctx)
    pipe = diffusers.DiffusionPipeline.from_pretrained(resolved.path, dtype=ctx.dtype,
                                                       use_safetensors=safetensors)
    pipe = pipe.to(ctx.device)
    pipe.set_progress_bar_config(disable=True)
    nbytes = sum(module_nbytes(c) for c in pipe.components.values() if hasattr(c, "parameters"))
    return pipe, nbytes


def load_faster_whisper(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """A CTranslate2 Whisper model; int8 on CPU, fp16 on CUDA."""
    from faster_whisper import WhisperModel

    device = "cuda" if ctx.device.startswith("cuda") else "cpu"
    compute = "float16" if device == "cuda" else "int8"
    model = WhisperModel(str(resolved.path), device=device, compute_type=compute,
                         cpu_threads=ctx.threads or (os.cpu_count() or 1))
    nbytes = sum(f.stat().st_size for f in resolved.path.iterdir() if f.is_file())
    return model, nbytes


def load_openai_whisper(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """openai-whisper: a named checkpoint (downloaded once into the cache) or the operator's .pt file.

    Its checkpoints are pickles, so they follow ZOO_ALLOW_PICKLE like any .bin/.pt weights.
    """
    if not ctx.allow_pickle:
        raise ModelNotAllowed(
            f"`{resolved.ref.raw}` is an openai-whisper checkpoint, a pickle (.pt), which can run code when loaded.",
            "use the packaged faster-whisper model `packaged:whisper-tiny.en` or a Whisper model with .safetensors "
            "weights (openai/whisper-tiny.en), or set ZOO_ALLOW_PICKLE=1 if you trust openai-whisper's checkpoints")
    import whisper

    _set_threads(ctx)
    device = "cpu" if ctx.device == "mps" else ctx.device
    name = resolved.ref.name
    # A file already here is loaded by path, so openai-whisper's downloader (urllib, blind to
    # HF_HUB_OFFLINE) never runs for it; only a missing named checkpoint, online, is downloaded.
    source = str(resolved.path) if resolved.path.is_file() else name
    try:
        model = whisper.load_model(source, device=device, download_root=str(resolved.path.parent))
    except Exception as exc:  # torch.load's own message quotes the file's bytes and suggests weights_only=False
        log.warning("openai-whisper could not load %s from %s: %s", resolved.ref.raw, source, type(exc).__name__)
        log.debug("openai-whisper's error", exc_info=True)
        fix = ("give a checkpoint openai-whisper wrote (a .pt file with `dims` and `model_state_dict`)"
               if resolved.ref.is_local_file else "check the network and load it again (a partial download is fetched anew)")
        raise ModelLoadError(f"openai-whisper could not load `{resolved.ref.raw}`: it is not a complete "
                             f"openai-whisper checkpoint, or the download failed ({type(exc).__name__}).",
                             f"{fix}, or use the packaged faster-whisper model `packaged:whisper-tiny.en`; "
                             "the server log has the details") from exc
    # Loaded by path, the model keeps openai-whisper's default alignment heads; only word-level
    # timestamps use them, and the zoo times segments, not words.
    return model, module_nbytes(model)


def load_piper(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """A Piper voice (.onnx + .onnx.json) on onnxruntime, phonemized with espeak-ng."""
    from zoo.models.piper import PiperVoice, voice_files

    voice = PiperVoice.load(resolved.path, threads=ctx.threads, device=ctx.device)
    return voice, voice_files(resolved.path)[0].stat().st_size


def load_remote(resolved: Resolved, kind: ModelKind, ctx: LoadContext) -> tuple[Any, int]:
    """A client for a remote inference engine (ZOO_REMOTE_<TASK>): no weights here, so it weighs nothing."""
    from zoo.models.remote import connect

    return connect(resolved.ref.name, kind, ctx.remote), 0


# --------------------------------------------------------------------------- what the files are
# Read from the files alone, before any weights load, so a tab can refuse a model of another
# kind (a picture model on a text tab) with a message saying what it is.


def describe_transformers(resolved: Resolved, kind: ModelKind) -> str | None:
    """What a transformers folder holds, when it cannot serve `kind`: its model type against the kind's Auto class."""
    config = read_json(resolved.path / "config.json")
    model_type, architectures = config.get("model_type"), config.get("architectures") or []
    if not isinstance(model_type, str) or config.get("auto_map"):
        return None  # a repo's own classes: the loader refuses or runs them (ZOO_TRUST_REMOTE_CODE)
    every = auto_names("AutoModel")  # AutoModel knows every model type transformers has
    if every is not None and model_type not in every[0]:
        return None  # unknown to this transformers: the loader's error says so
    shown = f"a {model_type} model" + (f" ({', '.join(map(str, architectures))})" if architectures else "")
    if "transformers" not in kind.families:
        return shown
    served = auto_names(kind.auto_class) if kind.auto_class else None
    if served is None:
        return None
    types, classes = served
    if model_type not in types:
        return shown
    # A known head for another kind (a causal LM on a classifier tab) would load with a random
    # head and answer noise; an architecture that no kind here names (a masked LM) may be a base to fine-tune.
    if architectures and kind.auto_class != "AutoModel" and not set(architectures) & classes:
        others = [k.name for k in registered_kinds() if k.auto_class not in (None, kind.auto_class, "AutoModel")
                  and set(architectures) & (auto_names(k.auto_class) or (set(), set()))[1]]
        if others:
            return f"{shown}, made for {others[0]}"
    return None


def auto_names(auto_class: str) -> tuple[set[str], set[str]] | None:
    """(model types, class names) that a transformers Auto class builds; None if they cannot be read."""
    import transformers

    mapping = getattr(getattr(getattr(transformers, auto_class, None), "_model_mapping", None),
                      "_model_mapping", None)
    if not isinstance(mapping, dict):
        return None
    # Some entries list several classes (a tuple); any of them serves the kind.
    classes = {n for names in mapping.values() for n in ((names,) if isinstance(names, str) else names)}
    return set(mapping), classes


def describe_diffusers(resolved: Resolved, kind: ModelKind) -> str | None:
    """A diffusers folder is an image-generation pipeline: say which, when the kind is not served by diffusers."""
    if "diffusers" in kind.families:
        return None
    pipeline = read_json(resolved.path / "model_index.json").get("_class_name") or "a pipeline"
    return f"a diffusers image-generation pipeline ({pipeline})"


register_family("transformers", load_transformers, describe_transformers)
register_family("gguf", load_gguf, "a GGUF language model")
register_family("diffusers", load_diffusers, describe_diffusers)
register_family("faster-whisper", load_faster_whisper, "a faster-whisper speech-recognition model")
register_family("openai-whisper", load_openai_whisper, "an openai-whisper speech-recognition model")
register_family("piper", load_piper, "a Piper text-to-speech voice")
register_family("remote", load_remote, "a remote inference engine")
