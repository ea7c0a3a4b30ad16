"""Training data for classification: CSV / JSONL `text,label`, and CoNLL / JSONL `tokens,tags`.

Every problem is an InvalidInput naming the file's line and the fix, raised before any training
starts; the file's size is checked before a byte of it is read. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import InvalidInput

#: Largest training file read (a CPU trains on thousands of rows, not gigabytes).
MAX_DATA_BYTES = 100 * 10**6
MIN_ROWS = 4


@dataclass
class TextData:
    """Classification rows: texts, their label names, and the line each came from."""

    texts: list[str]
    labels: list[str]
    lines: list[int]
    label_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TokenData:
    """Token classification sentences: tokens and a tag per token, and the line each began on."""

    tokens: list[list[str]]
    tags: list[list[str]]
    lines: list[int]
    tag_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)


def _size_check(path: Path, max_bytes: int) -> None:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise InvalidInput("data", path.name, f"cannot be read ({exc.strerror})", "upload the file again") from None
    if size > max_bytes:
        raise InvalidInput("data", f"{path.name} ({_human(size)})", f"must be at most {_human(max_bytes)}",
                           "train on a sample of the rows (a few thousand are plenty on a CPU): e.g. "
                           "`head -n 5000 data.csv > sample.csv`")
    if size == 0:
        raise InvalidInput("data", path.name, "is empty", "upload a file with a header line and rows")


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n}"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InvalidInput("data", f"{path.name}, line {line}", "is not UTF-8 text",
                           "save the file as UTF-8 (most editors: Save as... > Encoding UTF-8)") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _where(path: Path, line: int) -> str:
    return f"{path.name}, line {line}"


# --------------------------------------------------------------------------- text, label


def load_text_classification(path: Path | str, max_bytes: int = MAX_DATA_BYTES) -> TextData:
    """Rows of `text,label` from a .csv (with a header line) or a .jsonl file."""
    path = Path(path)
    _size_check(path, max_bytes)
    text = _read_text(path)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(path, text, ("text", "label"))
    else:
        rows = _csv_rows(path, text)
    data = TextData([], [], [])
    for line, row in rows:
        value, label = row.get("text"), row.get("label")
        if not isinstance(value, str):
            raise InvalidInput("data", _where(path, line), f"has a `text` that is {type(value).__name__}, not text",
                               "give each row's text as a string")
        if not value.strip():
            raise InvalidInput("data", _where(path, line), "has an empty text",
                               "give every row some text, or delete that row")
        if not isinstance(label, str):
            raise InvalidInput("data", f"{_where(path, line)}: label {label!r}",
                               f"has a label that is {type(label).__name__}, not a string",
                               'write labels as names in quotes, e.g. "positive" / "negative" (not 1 / 0)')
        if not label.strip():
            raise InvalidInput("data", _where(path, line), "has an empty label", "give every row a label")
        data.texts.append(value.strip())
        data.labels.append(label.strip())
        data.lines.append(line)
    if len(data) < MIN_ROWS:
        raise InvalidInput("data", path.name, f"must have at least {MIN_ROWS} rows, but has {len(data)}",
                           "add more rows: a few dozen per label show learning")
    data.label_names = sorted(set(data.labels))
    if len(data.label_names) < 2:
        raise InvalidInput("data", path.name, f"has one class only ({data.label_names[0]!r})",
                           "add rows of at least one other label: a classifier learns to tell labels apart")
    return data


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("data", path.name, "is empty", "upload a CSV with a `text,label` header line") from None
    except csv.Error as exc:
        raise InvalidInput("data", _where(path, 1), f"is not valid CSV ({exc})", "fix the header line") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("text", "label") if c not in names]
    if missing:
        raise InvalidInput("data", f"{path.name}, header {header!r}", f"has no `{'`, `'.join(missing)}` column",
                           "make the first line `text,label` (the column names), then one row per example")
    ti, li = names.index("text"), names.index("label")
    rows = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidInput("data", _where(path, start), f"is malformed CSV ({exc})",
                               'put a text that holds commas or quotes in double quotes: "like this, ""quoted"" inside"') from None
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        if len(row) != len(header):
            raise InvalidInput("data", _where(path, start), f"has {len(row)} fields where the header has {len(header)}",
                               'put a text that holds commas in double quotes: "like this, with commas",label')
        rows.append((start, {"text": row[ti], "label": row[li]}))
    return rows


def _jsonl_rows(path: Path, text: str, keys: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput("data", _where(path, number), f"is not JSON ({exc.args[0].split(':')[0]})",
                               'make every line one JSON object, e.g. {"text": "...", "label": "positive"}') from None
        if not isinstance(row, dict):
            raise InvalidInput("data", _where(path, number), f"is a JSON {type(row).__name__}, not an object",
                               "make every line one JSON object with " + ", ".join(f"`{k}`" for k in keys))
        missing = [k for k in keys if k not in row]
        if missing:
            raise InvalidInput("data", _where(path, number), f"has no `{'`, `'.join(missing)}` key",
                               "give every line the keys " + ", ".join(f"`{k}`" for k in keys))
        rows.append((number, row))
    return rows


# --------------------------------------------------------------------------- tokens, tags


def load_token_classification(path: Path | str, max_bytes: int = MAX_DATA_BYTES) -> TokenData:
    """Sentences of tokens with one tag each: JSONL `{"tokens": [...], "tags": [...]}` or CoNLL
    (one `token tag` per line, the tag in the last column, a blank line between sentences)."""
    path = Path(path)
    _size_check(path, max_bytes)
    text = _read_text(path)
    data = TokenData([], [], [])
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for line, row in _jsonl_rows(path, text, ("tokens",)):
            tags = row.get("tags", row.get("ner_tags"))
            tokens = row["tokens"]
            if tags is None:
                raise InvalidInput("data", _where(path, line), "has no `tags` key", "give every line `tokens` and `tags`")
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
                raise InvalidInput("data", _where(path, line), "has `tokens` that are not a list of non-empty strings",
                                   'write tokens as ["Angela", "Merkel", "spoke"]')
            if not tokens:
                raise InvalidInput("data", _where(path, line), "has no tokens", "give every sentence some tokens")
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
                raise InvalidInput("data", _where(path, line), "has tags that are not strings",
                                   'write tags as names, e.g. ["B-PER", "I-PER", "O"] (not numbers)')
            if len(tags) != len(tokens):
                raise InvalidInput("data", _where(path, line),
                                   f"has {len(tokens)} tokens but {len(tags)} tags", "give one tag per token")
            data.tokens.append([t.strip() for t in tokens])
            data.tags.append([t.strip() for t in tags])
            data.lines.append(line)
    else:
        tokens: list[str] = []
        tags: list[str] = []
        first = 0
        for number, raw in enumerate(text.splitlines() + [""], 1):
            parts = raw.split()
            if not parts or raw.startswith("-DOCSTART-"):
                if tokens:
                    data.tokens.append(tokens)
                    data.tags.append(tags)
                    data.lines.append(first)
                tokens, tags = [], []
                continue
            if len(parts) < 2:
                raise InvalidInput("data", _where(path, number), "has a token without a tag",
                                   "write `token tag` on each line (e.g. `Paris B-LOC`), a blank line between sentences")
            first = first if tokens else number
            tokens.append(parts[0])
            tags.append(parts[-1])
    if len(data) < MIN_ROWS:
        raise InvalidInput("data", path.name, f"must have at least {MIN_ROWS} sentences, but has {len(data)}",
                           "add more sentences: a few dozen show learning")
    data.tag_names = sorted({t for sentence in data.tags for t in sentence}, key=lambda t: (t != "O", t))
    if len(data.tag_names) < 2:
        raise InvalidInput("data", path.name, f"has one tag only ({data.tag_names[0]!r})",
                           "tag the entities (B-PER, I-PER, ...) as well as the other words (O)")
    return data


# --------------------------------------------------------------------------- splits


def split_indices(labels: list[Any], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and validation row indices: `fraction` of each label's rows held out (at least one row)."""
    rng = random.Random(seed)
    by_label: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train, val = [], []
    for label in sorted(by_label, key=str):
        rows = by_label[label]
        rng.shuffle(rows)
        k = int(round(len(rows) * fraction))
        k = min(max(k, 1 if fraction > 0 and len(rows) > 1 else 0), len(rows) - 1)
        val += rows[:k]
        train += rows[k:]
    rng.shuffle(train)
    if not val:
        raise InvalidInput("validation_split", fraction, "leaves no rows to validate on",
                           "raise validation_split (e.g. 0.2) or add rows")
    return train, sorted(val)
