"""Domain errors: every message names the bad value, the rule and the fix.

Only `zoo.ui` turns these into `gr.Error`; the core raises them and never imports gradio.
"""

from __future__ import annotations

import re


class ZooError(Exception):
    """Base class for errors a user can act on; `fix` tells them how."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}" if self.fix else self.message


class InvalidInput(ZooError, ValueError):
    """An input or option value breaks a declared rule."""

    def __init__(self, name: str, value: object, rule: str, fix: str | None = None):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"`{name}` {rule}, but got {shown}.", fix)
        self.name = name
        self.value = value
        self.rule = rule  # the parts, for the message in another language (zoo.error_text)
        self.shown = shown


class TooLarge(InvalidInput):
    """A request or upload over the operator's size limit (ZOO_MAX_FILE_SIZE): HTTP 413."""


class UnknownPlugin(ZooError, KeyError):
    """A task name that no registered plugin provides."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return ZooError.__str__(self)


class CallCycle(ZooError):
    """A plugin calls itself through `ctx.run`, directly or through other plugins."""


class PluginLoadError(ZooError):
    """A plugin failed to import or to set itself up; its tab is quarantined."""


class ModelNotFound(ZooError):
    """No source in the resolution chain could provide the requested model."""


class ModelLoadError(ZooError):
    """The model files were found but could not be loaded."""


class ModelNotAllowed(ZooError):
    """The operator's settings forbid this model (custom ids, pickles, remote code)."""


class ModelInUse(ZooError):
    """An operator asked to unload or delete a model that is serving requests (or loaded) right now."""


class HelperFailed(ZooError):
    """A helper program (ffmpeg, espeak-ng) is missing or was killed: a server fault, not bad input."""

    def __init__(self, message: str, fix: str | None = None, helper: str = "", signal: int | None = None):
        super().__init__(message, fix)
        self.helper = helper
        self.signal = signal


class Cancelled(ZooError):
    """The request was stopped by the user or the client went away."""


class WorkerCrashed(ZooError):
    """The worker process running a model died (a signal, an exit code or out of memory); the server lives on."""

    def __init__(self, message: str, fix: str | None = None, model: str = "", exitcode: int | None = None,
                 broken: bool = False):
        super().__init__(message, fix)
        self.model = model
        self.exitcode = exitcode
        self.broken = broken


class RemoteError(ZooError):
    """A remote inference engine (ZOO_REMOTE_<TASK>) failed; the message names the endpoint and why."""

    def __init__(self, message: str, fix: str | None = None, endpoint: str = "", status: int | None = None):
        super().__init__(message, fix)
        self.endpoint = endpoint
        self.status = status


# An absolute path of two or more parts, not inside a URL (`http://host/x`) or a relative id (`owner/name`).
_ABS_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"`,;()\[\]{}<>]+/)+(?=[^\s/'\"`,;()\[\]{}<>]*)")


def redact_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part: messages for users never show server folders."""
    return _ABS_PATH.sub("…/", text)
