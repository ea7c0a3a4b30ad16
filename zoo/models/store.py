"""The model store: models trained here, under `cache_dir/trained/NAME/`, referenced as `trained:NAME`.

Each entry is a transformers model folder (safetensors, config, tokenizer) plus `card.json`
(what it is: base model, task, data hash and rows, hyperparameters, validation metrics, date,
zoo version) and `README.md` (the same as a model card). Names are checked (no paths, no `..`),
an entry is never overwritten, and it appears complete or not at all: it is written into a
temporary folder beside the store and renamed into place. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from zoo.errors import InvalidInput, ModelNotFound

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
NAME_RULE = "must be 1 to 64 characters: lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"
def check_name(name: Any, field: str = "name") -> str:
    """A valid store name, or InvalidInput saying the rule."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name.strip()) or ".." in name:
        raise InvalidInput(field, name, NAME_RULE, "pick a name such as `my-sentiment` (no paths, no `..`)")
    return name.strip()


def store_root(cache_dir: Path | str) -> Path:
    """Where the store lives under a zoo cache folder."""
    return Path(cache_dir) / "trained"


def serves(card: dict[str, Any], task: str, kind: str | None) -> bool:
    """True when a stored model (its card) can run in a tab of `task` whose plugin runs model kind `kind`:
    the same kind (a tuned language model serves every language-model tab), else the same task."""
    if card.get("kind") and kind:
        return card["kind"] == kind
    return bool(card.get("task")) and card.get("task") == task


@dataclass(frozen=True)
class StoredModel:
    """One entry of the store."""

    name: str
    path: Path
    card: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"trained:{self.name}"

    @property
    def task(self) -> str:
        return str(self.card.get("task") or "")

    @property
    def kind(self) -> str:
        """The model kind it was trained as ("" on a card without one)."""
        return str(self.card.get("kind") or "")

    def serves(self, task: str, kind: str | None) -> bool:
        """True when it can run in a tab of `task` whose plugin runs model kind `kind`."""
        return serves(self.card, task, kind)


class ModelStore:
    """The trained models of one cache folder."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def of(cls, cache_dir: Path | str) -> "ModelStore":
        return cls(store_root(cache_dir))

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.path(name) / "card.json").is_file()

    def get(self, name: str) -> StoredModel:
        path = self.path(name)
        card_file = path / "card.json"
        if not card_file.is_file():
            known = ", ".join(m.ref for m in self.list()) or "none yet"
            raise ModelNotFound(f"No trained model `trained:{name}` in the store ({known}).",
                                "train one in the Fine-tune tab or with `zoo train`, or pick one from `zoo models`")
        try:
            card = json.loads(card_file.read_text())
        except (OSError, ValueError):
            card = {}
        return StoredModel(name, path, card)

    def list(self, task: str | None = None, kind: str | None = None) -> list[StoredModel]:
        """Every complete entry (optionally those a tab of `task` running model kind `kind` can run), newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            if child.name.startswith(".") or not NAME_RE.fullmatch(child.name) or not (child / "card.json").is_file():
                continue
            model = self.get(child.name)
            if task is None or model.serves(task, kind):
                found.append(model)
        return sorted(found, key=lambda m: (str(m.card.get("date", "")), m.name), reverse=True)

    def refuse_existing(self, name: str) -> None:
        """InvalidInput when `name` is taken: trained models never overwrite one another."""
        if self.path(name).exists():
            raise InvalidInput("name", name, "is already a trained model in the store",
                               f"pick another name or delete it (`zoo models delete {name}`)")

    def save(self, name: str, model_dir: Path, card: dict[str, Any]) -> StoredModel:
        """Copy a model folder in with its card, atomically; refuse a taken name."""
        self.refuse_existing(name)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        try:
            for item in Path(model_dir).iterdir():
                target = staging / item.name
                if item.is_dir():
                    shutil.copytree(item, target)
                else:
                    shutil.copy2(item, target)
            card = {"name": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **card}
            (staging / "card.json").write_text(json.dumps(card, indent=2, default=str))
            (staging / "README.md").write_text(model_card_markdown(name, card))
            try:
                os.rename(staging, self.root / name)  # atomic; fails if another save took the name meanwhile
            except OSError:
                raise InvalidInput("name", name, "is already a trained model in the store",
                                   f"pick another name or delete it (`zoo models delete {name}`)") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.get(name)

    def delete(self, name: str) -> None:
        model = self.get(name)
        trash = self.root / f".deleting-{name}-{os.getpid()}"
        os.rename(model.path, trash)  # gone from the store at once, then removed
        shutil.rmtree(trash, ignore_errors=True)

    def export(self, name: str, dest: Path) -> Path:
        """Copy an entry to `dest` (a new or empty folder)."""
        model = self.get(name)
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise InvalidInput("dir", str(dest), "must be a new or empty folder", "give a folder that does not exist yet")
        if dest.exists():
            dest.rmdir()
        shutil.copytree(model.path, dest)
        return dest

    def files(self, name: str) -> list[str]:
        """The entry's files, relative, sorted (what a push uploads)."""
        model = self.get(name)
        return sorted(str(p.relative_to(model.path)) for p in model.path.rglob("*") if p.is_file())


def model_card_markdown(name: str, card: dict[str, Any]) -> str:
    """A Hub-style README for a stored model."""
    task = card.get("task", "")
    lines = ["---", f"pipeline_tag: {task}", "library_name: transformers", "tags:", "- model-zoo", "- fine-tuned"]
    if card.get("base_model_id"):
        lines.append(f"base_model: {card['base_model_id']}")
    lines += ["---", "", f"# {name}", "",
              f"A **{task}** model fine-tuned with Model Zoo {card.get('zoo_version', '')} "
              f"on {card.get('date', '')}, from `{card.get('base_model', '')}`.", ""]
    data = card.get("data") or {}
    if data:
        lines += ["## Data", "", f"- file: `{data.get('file', '')}` ({data.get('bytes', '?')} bytes)",
                  f"- sha256: `{data.get('sha256', '')}`",
                  f"- rows: {data.get('rows', {})}", ""]
    lines += ["## Hyperparameters", ""] + _bullets(card.get("hyperparameters") or {}) + [""]
    lines += ["## Validation metrics", ""] + _bullets(card.get("metrics") or {}) + [""]
    if card.get("labels"):
        lines += ["## Labels", "", ", ".join(map(str, card["labels"])), ""]
    if card.get("stopped"):
        lines += ["Training was stopped early; this is the best checkpoint reached.", ""]
    return "\n".join(lines)


def _bullets(values: dict[str, Any] | Iterable[Any]) -> list[str]:
    items = values.items() if isinstance(values, dict) else enumerate(values)
    return [f"- {k}: {v}" for k, v in items]
