"""Model references: what a user or plugin may name, parsed before anything is fetched.

Forms accepted:
  owner/name[@revision]                a Hub repo
  owner/name/path/file.gguf[@revision] one GGUF file inside a Hub repo
  /abs/folder, ./rel/folder, ~/folder  a local model folder
  /abs/file.gguf                       a local GGUF file
  packaged:<name>                      weights shipped inside a pip package (see sources.PACKAGED)
  tiny:<kind>                          a deterministic random-weight model built from a config
  openai-whisper:<name>                an openai-whisper checkpoint by name (tiny, base.en, ...)
  openai-whisper:/abs/or/./rel.pt      an openai-whisper checkpoint file (a local path: operator only)
  remote:<url or provider:model>       a remote inference engine (set by the operator: ZOO_REMOTE_<TASK>)
  trained:<name>                       a model trained here, in the zoo's model store (zoo/models/store.py)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import InvalidInput

#: openai-whisper's checkpoint names -> the file its downloader writes (`whisper.available_models()`;
#: kept here so that parsing a reference never imports whisper and torch; a test keeps it in step).
OPENAI_WHISPER_CHECKPOINTS: dict[str, str] = {
    "tiny.en": "tiny.en.pt", "tiny": "tiny.pt", "base.en": "base.en.pt", "base": "base.pt",
    "small.en": "small.en.pt", "small": "small.pt", "medium.en": "medium.en.pt", "medium": "medium.pt",
    "large-v1": "large-v1.pt", "large-v2": "large-v2.pt", "large-v3": "large-v3.pt", "large": "large-v3.pt",
    "large-v3-turbo": "large-v3-turbo.pt", "turbo": "large-v3-turbo.pt",
}
#: Longest reference accepted, and longest part of one: beyond these the OS refuses the name anyway
#: (PATH_MAX, NAME_MAX), with an OSError instead of a message.
MAX_REF_CHARS = 1024
MAX_PART_CHARS = 255
_PATH_PREFIXES = ("/", "./", "../", "~")

_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_HUB_RE = re.compile(rf"^(?P<repo>{_HUB_PART}/{_HUB_PART}|{_HUB_PART})(?P<file>/[^@]+)?(?:@(?P<rev>[A-Za-z0-9._/-]+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    raw: str
    scheme: str  # "hub", "local", "packaged", "tiny", "openai-whisper", "remote" or "trained"
    name: str  # repo id, filesystem path, package entry or tiny kind
    revision: str | None = None
    filename: str | None = None  # file inside a Hub repo (GGUF)

    @property
    def hub_url(self) -> str | None:
        """The model's page on the Hub, when it has one."""
        return f"https://huggingface.co/{self.name}" if self.scheme == "hub" else None

    @property
    def is_local_file(self) -> bool:
        """True when the reference names files on this machine: only the operator may choose those."""
        return self.scheme == "local" or (self.scheme == "openai-whisper" and self.name not in OPENAI_WHISPER_CHECKPOINTS)

    @property
    def is_pickle(self) -> bool:
        """True for weights that exist only as pickles (openai-whisper's .pt): ZOO_ALLOW_PICKLE decides."""
        return self.scheme == "openai-whisper"

    def __str__(self) -> str:
        return self.raw


def looks_like_path(text: str) -> bool:
    """Local paths start with /, ./, ../ or ~, or name something that exists."""
    if text.startswith(_PATH_PREFIXES):
        return True
    try:
        return Path(text).exists()
    except (OSError, ValueError):  # a name the OS cannot even look up is not a path to a model
        return False


def parse_ref(raw: str) -> ModelRef:
    """Parse a reference; raise InvalidInput that lists the accepted forms."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("model", raw, "must name a model", "pick one from the list")
    text = raw.strip()
    if len(text) > MAX_REF_CHARS:
        raise InvalidInput("model", f"<{len(text)} characters>", f"must be at most {MAX_REF_CHARS} characters",
                           "pick a model from the list, or type a Hub id such as `owner/name`")
    longest = max(re.split(r"[/:@]", text), key=len)
    if len(longest) > MAX_PART_CHARS:
        raise InvalidInput("model", f"{text[:40]}... <{len(text)} characters>",
                           f"must not have a part (between / : or @) longer than {MAX_PART_CHARS} characters "
                           f"(one is {len(longest)})", "pick a model from the list, or type a Hub id such as `owner/name`")
    if text.startswith("remote:"):  # the target is checked where it is configured (Settings) and used (remote.py)
        target = text[len("remote:"):]
        if not target or any(ch.isspace() for ch in target):
            raise InvalidInput("model", raw, "must be `remote:<endpoint URL or provider:model>` without spaces")
        return ModelRef(text, "remote", target)
    if text.startswith("openai-whisper:"):
        return _parse_openai_whisper(raw, text[len("openai-whisper:"):])
    if text.startswith("trained:"):  # a store name: never a path, never `..`
        from zoo.models.store import NAME_RULE, NAME_RE

        name = text[len("trained:"):]
        if not NAME_RE.fullmatch(name) or ".." in name:
            raise InvalidInput("model", raw, f"must be `trained:<name>`, where the name {NAME_RULE}",
                               "pick a trained model from the list, or see `zoo models`")
        return ModelRef(text, "trained", name)
    for scheme in ("packaged", "tiny"):
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


def _parse_openai_whisper(raw: str, name: str) -> ModelRef:
    """A checkpoint name openai-whisper knows, or an explicit path to a checkpoint file (operator only)."""
    if name in OPENAI_WHISPER_CHECKPOINTS:
        return ModelRef(f"openai-whisper:{name}", "openai-whisper", name)
    if name.startswith(_PATH_PREFIXES):  # a file on this machine: the runner lets only the operator pick it
        return ModelRef(f"openai-whisper:{name}", "openai-whisper", str(Path(name).expanduser()))
    raise InvalidInput("model", raw, "must be `openai-whisper:<name>` with one of openai-whisper's checkpoints ("
                       + ", ".join(OPENAI_WHISPER_CHECKPOINTS) + ")",
                       "pick a model from the list (the operator may give a checkpoint file as "
                       "`openai-whisper:/path/to/model.pt`)")
