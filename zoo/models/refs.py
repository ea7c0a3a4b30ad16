"""Model references: what a user or plugin may name, parsed before anything is fetched.

Forms accepted:
  owner/name[@revision]                a Hub repo
  owner/name/path/file.gguf[@revision] one GGUF file inside a Hub repo
  /abs/folder, ./rel/folder, ~/folder  a local model folder
  /abs/file.gguf                       a local GGUF file
  packaged:<name>                      weights shipped inside a pip package (see sources.PACKAGED)
  tiny:<kind>                          a deterministic random-weight model built from a config
  openai-whisper:<name>                an openai-whisper checkpoint (tiny, base.en, ...)
  remote:<url or provider:model>       a remote inference engine (set by the operator: ZOO_REMOTE_<TASK>)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import InvalidInput

_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_HUB_RE = re.compile(rf"^(?P<repo>{_HUB_PART}/{_HUB_PART}|{_HUB_PART})(?P<file>/[^@]+)?(?:@(?P<rev>[A-Za-z0-9._/-]+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    raw: str
    scheme: str  # "hub", "local", "packaged", "tiny", "openai-whisper" or "remote"
    name: str  # repo id, filesystem path, package entry or tiny kind
    revision: str | None = None
    filename: str | None = None  # file inside a Hub repo (GGUF)

    @property
    def hub_url(self) -> str | None:
        """The model's page on the Hub, when it has one."""
        return f"https://huggingface.co/{self.name}" if self.scheme == "hub" else None

    def __str__(self) -> str:
        return self.raw


def looks_like_path(text: str) -> bool:
    """Local paths start with /, ./, ../ or ~, or name something that exists."""
    return text.startswith(("/", "./", "../", "~")) or Path(text).exists()


def parse_ref(raw: str) -> ModelRef:
    """Parse a reference; raise InvalidInput that lists the accepted forms."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("model", raw, "must name a model", "pick one from the list")
    text = raw.strip()
    if text.startswith("remote:"):  # the target is checked where it is configured (Settings) and used (remote.py)
        target = text[len("remote:"):]
        if not target or any(ch.isspace() for ch in target):
            raise InvalidInput("model", raw, "must be `remote:<endpoint URL or provider:model>` without spaces")
        return ModelRef(text, "remote", target)
    for scheme in ("packaged", "tiny", "openai-whisper"):
        if text.startswith(scheme + ":"):
            name = text[len(scheme) + 1:]
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
                raise InvalidInput("model", raw, f"must be `{scheme}:<name>` with letters, digits, . _ -",
                                   "pick a model from the list")
            return ModelRef(text, scheme, name)
    if looks_like_path(text):
        return ModelRef(text, "local", str(Path(text).expanduser()))
    m = _HUB_RE.match(text)
    if not m or ".." in text or "//" in text:
        raise InvalidInput(
            "model", raw,
            "must be a Hub id like `owner/name` (optionally `@revision`), a local path, "
            "`packaged:<name>` or `tiny:<kind>`",
            "pick a model from the list, or type a Hub id such as `HuggingFaceTB/SmolLM2-135M-Instruct`",
        )
    file = m.group("file")
    return ModelRef(text, "hub", m.group("repo"), m.group("rev"), file[1:] if file else None)
