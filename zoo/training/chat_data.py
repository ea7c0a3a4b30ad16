"""Instruction-tuning data: JSONL chats read, checked and tokenized with the loss on assistant turns only.

One JSON object per line, in either form:

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}, ...]}
    {"prompt": "...", "response": "...", "system": "..."}        # "system" is optional

Blank lines are skipped. Every error names the line and says how to fix it (zoo.errors.InvalidInput).
Tokenizing renders each conversation with the model's chat template and labels only the tokens of
the assistant turns (with the end-of-turn token, so the model learns where to stop); every other
token's label is -100, which the loss ignores.

No heavy imports here: the tokenizer is passed in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import InvalidInput, TooLarge

ROLES = ("system", "user", "assistant")
#: Biggest data file read (bytes): instruction sets are small; a bigger file is refused before it is read.
MAX_BYTES = 50_000_000
#: Most rows in one file.
MAX_ROWS = 200_000
IGNORE = -100
FORMAT_FIX = ('write one JSON object per line: {"messages": [{"role": "user", "content": "..."}, '
              '{"role": "assistant", "content": "..."}]} or {"prompt": "...", "response": "..."}')

Message = dict[str, str]


@dataclass(frozen=True)
class ChatRows:
    """The conversations of a data file, with the line each came from and the file's hash."""

    conversations: list[list[Message]]
    lines: list[int]
    sha256: str
    path: Path

    def __len__(self) -> int:
        return len(self.conversations)


def _where(path: Path, line: int) -> str:
    return f"{path.name} line {line}"


def parse_row(obj: Any, where: str) -> list[Message]:
    """One row (a parsed JSON value) as a checked list of messages; InvalidInput naming `where` otherwise."""
    if not isinstance(obj, dict):
        raise InvalidInput(where, obj, "must be a JSON object", FORMAT_FIX)
    if "messages" in obj:
        raw = obj["messages"]
        if not isinstance(raw, list) or not raw:
            raise InvalidInput(f"{where}: messages", raw, "must be a non-empty list of messages", FORMAT_FIX)
        messages = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise InvalidInput(f"{where}: messages[{i}]", m, 'must be an object with "role" and "content"',
                                   'write each message as {"role": "user", "content": "..."}')
            messages.append({"role": m["role"], "content": m["content"]})
    elif "prompt" in obj or "response" in obj:
        for key in ("prompt", "response"):
            if key not in obj:
                raise InvalidInput(where, obj, f'has no "{key}"', 'give both "prompt" and "response" on each line')
        messages = []
        if obj.get("system") not in (None, ""):
            messages.append({"role": "system", "content": obj["system"]})
        messages += [{"role": "user", "content": obj["prompt"]}, {"role": "assistant", "content": obj["response"]}]
    else:
        keys = ", ".join(map(str, obj)) or "no keys"
        raise InvalidInput(where, obj, f'must have "messages" or "prompt" and "response" (it has {keys})',
                           FORMAT_FIX)
    for i, m in enumerate(messages):
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise InvalidInput(f"{where}: messages[{i}].role", role, f"must be one of {', '.join(ROLES)}",
                               f"rename the role (e.g. 'human' -> 'user', 'bot'/'gpt' -> 'assistant')")
        if not isinstance(content, str):
            raise InvalidInput(f"{where}: messages[{i}].content", content, "must be a string",
                               "write the message text as a JSON string")
        if not content.strip():
            raise InvalidInput(f"{where}: messages[{i}].content", content, f"is empty (a {role} turn)",
                               "write the turn's text, or delete the line")
    if not any(m["role"] == "assistant" for m in messages):
        raise InvalidInput(where, obj, "has no assistant turn, so there is nothing to learn from it",
                           'add {"role": "assistant", "content": "..."} with the answer the model should give')
    return messages


def read_chat_jsonl(path: Path, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS) -> ChatRows:
    """Every conversation of a JSONL file, checked; the first bad line raises InvalidInput naming it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("data", path.name, "must be an existing JSONL file", "upload the data file again")
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLarge("data", f"<{path.name}: {size:,} bytes>", f"must be at most {max_bytes:,} bytes",
                       "use fewer rows (a few hundred to a few thousand chats teach a small model), "
                       "or split the file")
    digest = hashlib.sha256()
    conversations: list[list[Message]] = []
    lines: list[int] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            digest.update(raw)
            where = _where(path, number)
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(where, raw[:60], "is not UTF-8 text", "save the file as UTF-8") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(where, text.strip(), f"is not JSON ({exc.msg} at column {exc.colno})",
                                   "fix the line (one complete JSON object per line, double-quoted strings), "
                                   "or delete it") from None
            conversations.append(parse_row(obj, where))
            lines.append(number)
            if len(conversations) > max_rows:
                raise InvalidInput("data", f"<{path.name}>", f"must hold at most {max_rows:,} rows",
                                   "use fewer rows")
    if not conversations:
        raise InvalidInput("data", path.name, "holds no rows", FORMAT_FIX)
    return ChatRows(conversations, lines, digest.hexdigest(), path)


# --------------------------------------------------------------------------- rendering and labels


def render(tokenizer: Any, messages: list[Message], add_generation_prompt: bool = False) -> str:
    """A conversation as the model reads it: its chat template, or a plain transcript without one.

    The transcript is the one zoo.models.lm.TransformersLM.chat_prompt writes, so a model tuned
    without a template is prompted the same way in the chat tab.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    eos = tokenizer.eos_token or ""
    text = ""
    for m in messages:
        if m["role"] == "assistant":
            text += f"Assistant: {m['content']}{eos}\n"
        else:
            text += f"{m['role'].capitalize()}: {m['content']}\n"
    if add_generation_prompt:
        text += "Assistant:"
    return text


def assistant_spans(tokenizer: Any, messages: list[Message]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies (with their end-of-turn token)."""
    full = render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        upto = render(tokenizer, messages[: i + 1])
        if i and full.startswith(before) and full.startswith(upto) and len(upto) > len(before):
            start, end = len(before), len(upto)
        else:  # a template whose prefixes are not prefixes of the whole (or a leading reply): find the text
            start = full.find(m["content"], cursor)
            if start < 0:
                raise InvalidInput("chat template", m["content"], "does not reproduce the reply's text",
                                   "use a model whose chat template writes the messages as given")
            end = start + len(m["content"])
            eos = getattr(tokenizer, "eos_token", None) or ""
            if eos and full.startswith(eos, end):
                end += len(eos)
        # Without the template's separator after the reply ("<|im_end|>\n": the newline is not the model's to say).
        while end > start and full[end - 1] in " \n\t":
            end -= 1
        spans.append((start, end))
        cursor = end
    return full, spans


def tokenize_chat(tokenizer: Any, messages: list[Message], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 outside the assistant replies), truncated to max_length tokens."""
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        if b <= a:
            continue
        for start, end in spans:
            if a >= start and b <= end:
                labels[t] = ids[t]
                break
    return ids[:max_length], labels[:max_length]


def has_labels(labels: list[int]) -> bool:
    """True when at least one token is trained on."""
    return any(x != IGNORE for x in labels)
