"""Device and dtype policy: cuda, mps or cpu chosen automatically, overridable."""

from __future__ import annotations

from typing import Any


def pick_device(setting: str = "auto") -> str:
    """Resolve `auto` to the best device present; an explicit choice is checked."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        from zoo.errors import InvalidInput

        raise InvalidInput("ZOO_DEVICE", setting, "asks for CUDA but no CUDA device is visible",
                           "set ZOO_DEVICE=auto or cpu")
    return setting


def pick_dtype(device: str) -> Any:
    """bf16 on GPUs that support it, else fp16 on GPU; fp32 on CPU (measured fastest there)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def describe_device(setting: str = "auto") -> str:
    """A one-line guess for the header, made without importing torch (that costs ~1 s at start)."""
    import os
    import platform
    from pathlib import Path

    if setting != "auto":
        return setting
    gpus = Path("/proc/driver/nvidia/gpus")
    if os.environ.get("CUDA_VISIBLE_DEVICES") != "" and gpus.is_dir() and any(gpus.iterdir()):
        return "cuda"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "mps"
    return f"cpu ({os.cpu_count()} cores)"


def module_nbytes(module: Any) -> int:
    """Bytes held by a torch module's parameters and buffers."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        total += t.numel() * t.element_size()
    return total
