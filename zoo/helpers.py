"""Helper programs the zoo runs (ffmpeg, ffprobe, espeak-ng): one place that tells their failures apart.

A helper that is missing, cannot be started or is killed by a signal is the server's
problem, not the user's input: it raises HelperFailed naming the program, the signal
and the fix. A helper that runs and exits non-zero is left to the caller, which knows
what that exit means for its input (a damaged file, an unknown voice).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from typing import Any, Sequence

from zoo.errors import HelperFailed


def find(name: str, install: str) -> str:
    """The helper's executable; HelperFailed with the install command when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        raise HelperFailed(f"`{name}` is not installed on this server.", install, helper=name)
    return path


def run(name: str, cmd: Sequence[str], install: str, **kwargs: Any) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, **kwargs), with a helper that cannot start or is killed turned into HelperFailed."""
    try:
        proc = subprocess.run(list(cmd), **kwargs)
    except (FileNotFoundError, PermissionError, OSError) as exc:  # removed or broken after find()
        raise HelperFailed(f"`{name}` could not be started on this server ({type(exc).__name__}).", install,
                           helper=name) from None
    if proc.returncode < 0:
        raise killed(name, -proc.returncode)
    return proc


def killed(name: str, signum: int) -> HelperFailed:
    """The error for a helper ended by signal `signum` (an out-of-memory kill is SIGKILL)."""
    try:
        signame = signal.Signals(signum).name
    except ValueError:
        signame = f"signal {signum}"
    return HelperFailed(
        f"`{name}` was killed by {signame} (signal {signum}) before it finished; this is a server problem, "
        "not a problem with your input.",
        f"try again; if it keeps happening, the operator should check the server's memory (the kernel kills with "
        f"SIGKILL when it runs out) and that `{name}` runs on its own (`{name} -version` or `{name} --help`)",
        helper=name, signal=signum)
