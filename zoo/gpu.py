"""ZeroGPU support: on a ZeroGPU Space, each request's model work runs under `spaces.GPU`.

ZeroGPU lends a GPU per call. The `spaces` package (installed on such Spaces) does it:
a function decorated with `spaces.GPU(duration=...)` runs in a worker process forked
from the app, with a GPU attached for at most `duration` seconds; its arguments and
results are pickled across. `duration` may be a function of the call's arguments, so
each request asks for what it needs (`Plugin.gpu_seconds`: tokens, steps x size, audio
length). Generators are supported: yielded values stream back one by one.

Where models go (ZeroGPU's rule, and why we follow it): in the app's main process
`spaces` emulates CUDA, so `model.to("cuda")` there only records the weights, which
`spaces` packs at launch and moves onto the real GPU in every worker. That emulation is
active in the main thread only, and a worker's own loads die with the worker. So on
ZeroGPU the Space's app.py calls `preload()` at start, in the main thread, before
launch: every tab's default model is loaded onto "cuda" there (the device policy sees
the emulated GPU), and every worker starts with it on the GPU. A model picked later,
or one whose runtime manages CUDA itself (CTranslate2, onnxruntime, llama.cpp: `spaces`
cannot intercept those), loads inside the worker on first use and stays while ZeroGPU reuses
that worker.

Outside ZeroGPU this module does nothing: `ZeroGPU.active` is False and `Zoo.stream`
runs as usual (on other GPU hardware the device policy puts models on CUDA; on CPU
hardware the CPU policy applies).
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from zoo.plugin import RunContext

if TYPE_CHECKING:
    from zoo.runner import Zoo

log = logging.getLogger(__name__)

#: Set to "true" by Hugging Face on ZeroGPU hardware; the `spaces` package reads the same variable.
ZERO_GPU_ENV = "SPACES_ZERO_GPU"
#: Families whose runtimes manage CUDA without torch (CTranslate2, onnxruntime), so ZeroGPU's
#: emulation cannot place them at start; they load inside the GPU worker instead.
WORKER_LOADED_FAMILIES = frozenset({"faster-whisper", "piper"})


def zero_gpu_requested(env: Mapping[str, str] | None = None) -> bool:
    """True on ZeroGPU hardware (the platform sets SPACES_ZERO_GPU), read as the `spaces` package reads it."""
    # A platform fact rather than a zoo setting, so it is read here and not in zoo.settings.
    value = (os.environ if env is None else env).get(ZERO_GPU_ENV)
    return value is not None and value.strip().lower() in {"1", "t", "true"}


def import_spaces() -> Any | None:
    """Hugging Face's `spaces` package, or None when it is not installed (or something else owns the name)."""
    try:
        import spaces
    except ImportError:
        return None
    if not callable(getattr(spaces, "GPU", None)):
        # e.g. a folder named spaces/ on sys.path that is not the package (this repo's builder folder).
        log.warning("The `spaces` module at %s has no GPU decorator; it is not Hugging Face's `spaces` package.",
                    getattr(spaces, "__file__", None) or list(getattr(spaces, "__path__", [])))
        return None
    return spaces


class ZeroGPU:
    """Runs a zoo's model work under `spaces.GPU` on ZeroGPU; inactive (and free) everywhere else."""

    def __init__(self, zoo: "Zoo", env: Mapping[str, str] | None = None):
        self.zoo = zoo
        self.spaces: Any | None = None
        self.preloaded: list[str] = []
        if zero_gpu_requested(env):
            self.spaces = import_spaces()
            if self.spaces is None:
                log.warning("%s is set but the `spaces` package is missing: requests run without ZeroGPU. "
                            "Fix: add `spaces` to requirements.txt (`python -m zoo space build --hardware "
                            "zero-a10g` does).", ZERO_GPU_ENV)
        # Decorated once, when the app is built: ZeroGPU registers its GPU functions before launch.
        self._gpu_stream = self.spaces.GPU(duration=self.duration)(self._work) if self.spaces else None

    @property
    def active(self) -> bool:
        """True when requests go through `spaces.GPU`."""
        return self._gpu_stream is not None

    def duration(self, task: str, values: Mapping[str, Any]) -> int:
        """Seconds to ask ZeroGPU for this request: the plugin's estimate, rounded up."""
        return max(1, math.ceil(self.zoo.registry.get(task).gpu_seconds(values)))

    def _work(self, task: str, values: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The GPU function: load (a cache hit for preloaded defaults) and run; executes in ZeroGPU's worker."""
        plugin = self.zoo.registry.get(task)
        # The caller's RunContext holds an Event and a UI callback, which cannot be pickled into the worker.
        ctx = RunContext(limits=self.zoo.limits)
        try:
            yield from self.zoo.stream_checked(plugin, dict(values), ctx)
        finally:
            ctx.cancel_event.set()  # stopped or done: background work (decoding threads) ends too

    def stream(self, task: str, values: Mapping[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Run already-checked values under `spaces.GPU`, yielding the plugin's growing outputs."""
        if self._gpu_stream is None:
            raise RuntimeError("ZeroGPU.stream called while ZeroGPU is not active")
        if ctx.on_progress is not None:
            ctx.on_progress(None, "Waiting for a ZeroGPU GPU")
        outputs = self._gpu_stream(task, dict(values))
        try:
            for result in outputs:
                yield result
                ctx.raise_if_cancelled()
        finally:
            close = getattr(outputs, "close", None)
            if callable(close):
                close()  # Stop or a gone client: `spaces` tells its worker to stop

    def preload(self) -> list[str]:
        """On ZeroGPU, load every tab's default model now (main thread, before launch); returns the refs loaded."""
        if not self.active:
            return []
        from zoo.models.sources import detect_family

        seen: set[tuple[str, str]] = set()
        for plugin in self.zoo.registry.plugins():
            if plugin.models is None:  # runs in the server; the tasks it uses preload their own
                continue
            default = self.zoo.default_model(plugin)
            values = {f.name: f.default for f in plugin.fields()} | {"model": default}
            try:
                ref, kind = plugin.model_for(values, default)
                if (ref, kind) in seen:
                    continue
                seen.add((ref, kind))
                resolved = self.zoo.models.resolve(ref)
                family = "openai-whisper" if resolved.ref.scheme == "openai-whisper" else detect_family(resolved.path)
                llama_cpp = family == "gguf" and getattr(self.zoo.settings, "gguf_backend", "") == "llama-cpp"
                if family in WORKER_LOADED_FAMILIES or llama_cpp:
                    log.info("ZeroGPU: %s (%s) loads inside the GPU worker on first use", ref, family)
                    continue
                self.zoo.models.load(ref, kind)
                self.preloaded.append(ref)
            except Exception as exc:  # one tab's model must not stop the Space from starting
                log.warning("ZeroGPU: preloading %s for %s failed (%s: %s); it loads on first use instead",
                            default, plugin.task, type(exc).__name__, exc)
        return list(self.preloaded)
