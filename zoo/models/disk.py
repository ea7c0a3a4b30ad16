"""Models on disk, by model, for the Models tab: list with sizes, delete, download from the Hub.

Where the zoo's files live:
- the zoo's own cache (ZOO_CACHE_DIR): `tiny/<kind>` (random-weight tiny models, rebuilt on
  demand), `trained/<name>` (the model store: `trained:<name>`), `whisper/<file>.pt`
  (openai-whisper checkpoints) and `gguf/` (GGUF files converted for llama.cpp or unpacked for
  transformers, re-made from their source on the next load);
- the Hugging Face hub cache (HF_HUB_CACHE / HF_HOME), read with `huggingface_hub.scan_cache_dir`;
- packaged models, inside pip packages: listed, never deleted here (the pip command is given).

Nothing here imports torch; huggingface_hub only inside functions.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from zoo.errors import InvalidInput, ModelInUse, ModelNotAllowed, ModelNotFound, ZooError

log = logging.getLogger(__name__)

#: Subfolders of the zoo cache that hold models, and what their entries are called.
ZOO_FOLDERS = {"tiny": "tiny", "trained": "trained", "whisper": "openai-whisper", "gguf": "converted GGUF"}


@dataclass(frozen=True)
class DiskModel:
    """One model's files on disk."""

    id: str  # what `delete` takes: "<where>:<name>"
    ref: str  # the reference a tab takes for it ("" for derived files: a converted GGUF)
    where: str  # "zoo cache", "Hugging Face cache", "packaged"
    path: Path
    size: int  # bytes on disk
    files: int
    deletable: bool
    note: str = ""  # why not deletable (the pip command), or what deleting means


def folder_size(path: Path) -> tuple[int, int]:
    """Bytes and files under a folder (or one file); symlinks are not followed (each blob counts once)."""
    if path.is_symlink() or path.is_file():
        try:
            return path.lstat().st_size if not path.is_symlink() else 0, 1
        except OSError:
            return 0, 0
    total = count = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            count += 1
            if not os.path.islink(os.path.join(root, name)):
                total += st.st_size
    return total, count


def _whisper_ref(file: str) -> str:
    from zoo.models.refs import OPENAI_WHISPER_CHECKPOINTS

    names = [n for n, f in OPENAI_WHISPER_CHECKPOINTS.items() if f == file]
    return f"openai-whisper:{names[0]}" if names else f"openai-whisper:{file}"


def zoo_cache_models(cache_dir: Path) -> list[DiskModel]:
    """The models in the zoo's own cache folder."""
    found: list[DiskModel] = []
    for folder, label in ZOO_FOLDERS.items():
        base = Path(cache_dir) / folder
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            name = entry.name
            if name.startswith(".") or name.endswith(".json") and folder == "gguf":
                continue  # staging folders, and a converted GGUF's sidecar (counted with it)
            size, files = folder_size(entry)
            if folder == "gguf":
                sidecar = entry.with_name(entry.name + ".json")
                if sidecar.is_file():
                    size, files = size + sidecar.stat().st_size, files + 1
            ref = {"tiny": f"tiny:{name}", "trained": f"trained:{name}", "whisper": _whisper_ref(name)}.get(folder, "")
            note = {"tiny": "random weights: rebuilt from its config when a tab needs it",
                    "gguf": "converted copy: made again from its source on the next load",
                    "trained": "trained here: deleting it is for good (export it first with `zoo models export`)",
                    "whisper": "downloaded again on first use when online"}[folder]
            found.append(DiskModel(f"zoo:{folder}/{name}", ref, f"zoo cache ({label})", entry, size, files, True, note))
    return found


def hub_cache_models(hub_cache: Path | str | None = None) -> list[DiskModel]:
    """The repos in the Hugging Face hub cache (its default folder: HF_HUB_CACHE / HF_HOME)."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache_dir=hub_cache)
    except Exception as exc:  # no cache folder yet (CacheNotFound) or unreadable: nothing there
        log.debug("No Hugging Face cache to list: %s", exc)
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}:"
        found.append(DiskModel(f"hub:{repo.repo_type}/{repo.repo_id}", repo.repo_id if not prefix else "",
                               "Hugging Face cache" + (f" ({repo.repo_type})" if prefix else ""),
                               Path(repo.repo_path), int(repo.size_on_disk), int(repo.nb_files), True,
                               "downloaded again on first use when online"))
    return found


def _distribution(module: str) -> str:
    """The pip distribution that installs an import name (what `pip uninstall` takes)."""
    import importlib.metadata

    try:
        names = importlib.metadata.packages_distributions().get(module.split(".")[0]) or []
    except Exception:
        names = []
    return names[0] if names else module


def packaged_models() -> list[DiskModel]:
    """The packaged models installed here (pip packages): listed with their size, not deletable here."""
    from zoo.models.sources import PACKAGED, packaged_path

    found = []
    for name in sorted(PACKAGED):
        path = packaged_path(name)
        if path is None:
            continue
        size, files = folder_size(path)
        dist = _distribution(PACKAGED[name].module)
        found.append(DiskModel(f"packaged:{name}", f"packaged:{name}", "packaged (pip)", path, size, files, False,
                               f"installed with pip: remove it with `pip uninstall {dist}`"))
    return found


def disk_models(cache_dir: Path, hub_cache: Path | str | None = None) -> list[DiskModel]:
    """Every model on disk: the zoo cache, the Hugging Face cache, the packaged ones."""
    return [*zoo_cache_models(cache_dir), *hub_cache_models(hub_cache), *packaged_models()]


def _inside(path: str | Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def delete(model_id: str, cache_dir: Path, loaded: Sequence[Any] = (), hub_cache: Path | str | None = None) -> DiskModel:
    """Delete one model's files (by `DiskModel.id`); returns what was deleted.

    Refused: a packaged model (the pip command is in the message), and a model loaded now (its
    `LoadedInfo`s in `loaded`: unload it first; the message names it).
    """
    wanted = (model_id or "").strip()
    listed = disk_models(cache_dir, hub_cache)
    model = next((m for m in listed if m.id == wanted), None)
    if model is None:
        known = ", ".join(m.id for m in listed) or "(none)"
        raise ModelNotFound(f"No model `{wanted}` on disk here.", f"pick one the On disk table lists: {known}")
    if not model.deletable:
        raise ModelNotAllowed(f"`{model.ref or model.id}` is {model.where}: it is not deleted from the app.",
                              model.note)
    users = [info for info in loaded if _inside(info.path, model.path)]
    if users:
        names = ", ".join(f"`{u.ref}` ({u.where})" for u in users)
        raise ModelInUse(f"`{model.ref or model.id}` is loaded now: {names}.",
                         "unload it first (Loaded now: pick it and press Unload), then delete")
    if model.id.startswith("zoo:trained/"):
        from zoo.models.store import ModelStore

        ModelStore.of(cache_dir).delete(model.path.name)
    else:
        trash = model.path.with_name(f".deleting-{model.path.name}-{os.getpid()}")
        os.rename(model.path, trash)  # gone from listings and lookups at once, then removed
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)
        sidecar = model.path.with_name(model.path.name + ".json")
        if model.id.startswith("zoo:gguf/") and sidecar.is_file():
            sidecar.unlink()
    log.info("Deleted %s (%s, %d bytes)", model.id, model.where, model.size)
    return model


# --------------------------------------------------------------------------- download


def progress_tqdm(report: Callable[[float | None, str], None], label: str) -> type:
    """A tqdm class for huggingface_hub's `tqdm_class`: each bar's updates go to `report(fraction, text)`.

    snapshot_download makes a files bar ("Fetching N files") and byte bars; each reports its
    own fraction. Nothing is printed.
    """
    import io

    from tqdm.auto import tqdm

    lock = threading.Lock()

    class ReportingTqdm(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)  # huggingface_hub's own bars take a name; tqdm does not
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            total = self.total or 0
            done = self.n
            if self.unit == "B":
                text = f"{label}: {_human(done)}" + (f" of {_human(total)}" if total else "")
            else:
                text = f"{label}: {self.desc or 'files'} {int(done)}/{int(total)}" if total else f"{label}: {int(done)}"
            with lock:
                report(min(1.0, done / total) if total else None, text)
            return shown

    return ReportingTqdm


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def check_repo_id(repo_id: Any) -> str:
    """A Hub model id (`owner/name`), or InvalidInput saying what a valid one is."""
    from zoo.models.refs import parse_ref

    text = repo_id.strip() if isinstance(repo_id, str) else repo_id
    try:
        parsed = parse_ref(text) if isinstance(text, str) and text else None
    except ZooError:
        parsed = None
    if parsed is None or parsed.scheme != "hub" or parsed.filename or "/" not in parsed.name:
        raise InvalidInput("repo_id", repo_id, "must be a Hugging Face model id `owner/name`",
                           "copy it from the model's page, e.g. HuggingFaceTB/SmolLM2-135M-Instruct")
    return parsed.raw


def download(repo_id: str, settings: Any, report: Callable[[float | None, str], None] | None = None,
             hub_cache: Path | str | None = None) -> Path:
    """Fetch a Hub model into the Hugging Face cache before anyone needs it; returns its snapshot folder.

    The files a tab would load (safetensors, configs, tokenizers, GGUF; pickles only with
    ZOO_ALLOW_PICKLE), with progress reported. Refused offline, naming the setting.
    """
    from zoo.models.refs import parse_ref
    from zoo.models.sources import _PICKLE_PATTERNS, _SAFE_PATTERNS

    ref = parse_ref(check_repo_id(repo_id))
    if settings.hub_offline:
        raise ModelNotAllowed(download_off_reason(settings) or "The zoo is offline.",
                              "unset HF_HUB_OFFLINE and ZOO_OFFLINE (and connect to the Hub), or copy the model "
                              "into the Hugging Face cache with `hf download` on a machine that is online")
    import huggingface_hub

    patterns = list(_SAFE_PATTERNS) + (list(_PICKLE_PATTERNS) if settings.allow_pickle else [])
    tqdm_class = progress_tqdm(report, f"Downloading {ref.name}") if report else None
    try:
        path = Path(huggingface_hub.snapshot_download(ref.name, revision=ref.revision, allow_patterns=patterns,
                                                      cache_dir=hub_cache, tqdm_class=tqdm_class))
    except ZooError:
        raise
    except Exception as exc:
        raise ModelNotFound(f"Downloading `{ref.raw}` failed: {type(exc).__name__}: {exc}",
                            "check the id on huggingface.co (a gated model needs HF_TOKEN) and the connection") from exc
    if not weights_in(path) and not settings.allow_pickle:
        log.warning("%s: no safetensors or GGUF weights downloaded (pickle weights are skipped)", ref.raw)
    return path


def download_off_reason(settings: Any) -> str | None:
    """Why the Download button is off here, or None when it works."""
    if settings.hub_offline:
        return ("Downloads are off: the zoo is offline (HF_HUB_OFFLINE=1 or ZOO_OFFLINE=1, or the Hub cannot be "
                "reached), so it only uses what is already on disk.")
    return None


def weights_in(path: Path) -> list[str]:
    """The weight files of a downloaded snapshot (relative names)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                  if p.suffix in (".safetensors", ".gguf", ".bin", ".pt", ".onnx") or p.name == "model.bin")


def rows(models: Iterable[DiskModel]) -> list[list[Any]]:
    """Table rows: model, where, size, files, deletable or how to remove."""
    return [[m.ref or m.path.name, m.where, _human(m.size), m.files, "yes" if m.deletable else m.note]
            for m in models]


__all__ = ["DiskModel", "check_repo_id", "delete", "disk_models", "download", "download_off_reason",
           "folder_size", "hub_cache_models", "packaged_models", "progress_tqdm", "rows", "zoo_cache_models"]
