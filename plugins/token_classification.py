"""Token classification (named entities): entities highlighted in the text, and a table of them.

preprocess: the text is cut into overlapping windows of the model's input size,
so long texts are tagged whole. forward: label probabilities per token.
postprocess: tokens are merged into words (the word's first token, the average or
the best token decides), then consecutive words into entities following the BIO
scheme (`B-PER`, `I-PER`; BIOES and plain labels work too). Every span keeps its
character offsets into the original text, so the highlighted segments put back
together give the input exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugins.kinds import TOKEN_CLASSIFICATION
from zoo.plugin import Choice, Float, Highlight, ModelChoices, Plugin, RunContext, Table, Text

WINDOWS_PER_BATCH = 8
# Tags that mean "not an entity" in common NER label sets.
_OUTSIDE = {"O", "OUTSIDE", "NONE"}


@dataclass
class Entity:
    """A labelled span of the input: text[start:end]."""

    label: str
    start: int
    end: int
    score: float


class TokenClassification(Plugin):
    """Named-entity recognition with word-level aggregation and a score threshold."""

    api_version = 2
    task = "token-classification"
    title = "Named entities"
    group = "text"
    description = ("Paste text; the model finds names of people, organisations, places and more, highlights "
                   "them in the text and lists them with their scores.")
    order = 53
    model_kind = TOKEN_CLASSIFICATION
    models = ModelChoices(
        online="dslim/bert-base-NER",
        offline="tiny:token-classification",
        tiny="tiny:token-classification",
        known=("dslim/distilbert-NER", "Davlan/distilbert-base-multilingual-cased-ner-hrl"),
    )
    inputs = (Text("text", lines=6, placeholder="Text with names in it…"),)
    options = (
        Choice("aggregation", "first", choices=("first", "average", "max"), label="Word label from",
               info="Which sub-word tokens decide a word's label: its first, their average, or the best one"),
        Float("min_score", 0.0, 0.0, 1.0, step=0.05, info="Drop entities scoring below this"),
    )
    outputs = (
        Highlight("highlighted", label="Entities in the text"),
        Table("entities", label="Entities", headers=("text", "label", "score", "start", "end")),
        Text("note", label="Model note", lines=2),
    )
    examples = (
        {"text": "My name is Clara and I live in Berkeley, California. I work at the Lawrence Berkeley Lab."},
        {"text": "Angela Merkel met Emmanuel Macron in Paris on Monday to discuss the European Union budget."},
        {"text": "Apple opened a new office in Munich, said Tim Cook.", "min_score": 0.5},
    )
    translations = {
        "zh-CN": {
            "Named entities": "命名实体识别",
            ("Paste text; the model finds names of people, organisations, places and more, highlights them in the "
             "text and lists them with their scores."):
                "粘贴文本，模型找出人名、机构名、地名等，在文本中高亮显示，并连同得分一起列出。",
            "Text": "文本",
            "Text with names in it…": "含有名称的文本…",
            "Word label from": "词标签取自",
            "Which sub-word tokens decide a word's label: its first, their average, or the best one":
                "由哪些子词 token 决定一个词的标签：第一个、它们的平均值，或得分最高的一个",
            "Min score": "最低得分",
            "Drop entities scoring below this": "丢弃得分低于此值的实体",
            "Entities in the text": "文本中的实体",
            "Entities": "实体",
            "Model note": "模型说明",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        bundle = model.model
        text = values["text"]
        id2label = {int(i): str(label) for i, label in bundle.config.id2label.items()}
        words = _tag_words(bundle, text, values["aggregation"], ctx)
        entities = [e for e in _group_entities(words, id2label) if e.score >= values["min_score"]]

        segments = highlight_segments(text, entities)
        rows = [[text[e.start:e.end], e.label, round(e.score, 4), e.start, e.end] for e in entities]

        kinds = sorted({_split_tag(label)[1] for label in id2label.values()} - {""})
        note = [f"{model.ref}: {len(entities)} entities; the model knows {', '.join(kinds) or 'no entity types'}."]
        if ctx.is_tiny:
            note.insert(0, "⚠️ Tiny random-weight model: the entities are noise. It shows the plumbing offline; "
                           f"pick a real model (such as {self.models.online}) for real entities.")
        return {"highlighted": segments, "entities": rows, "note": " ".join(note)}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Entities from a remote engine's token-classification API, shown as local ones are.

        ZOO_REMOTE_TOKEN_CLASSIFICATION: the engine finds the entities.
        """
        from zoo.models.remote import as_list

        text = values["text"]
        found = as_list(remote.call("token_classification", text, aggregation_strategy=values["aggregation"]))
        entities = sorted((Entity(str(e.entity_group or e.entity or ""), int(e.start), int(e.end), float(e.score))
                           for e in found if e.start is not None and e.end is not None
                           and float(e.score) >= values["min_score"]), key=lambda e: e.start)
        segments = highlight_segments(text, entities)
        rows = [[text[e.start:e.end], e.label, round(e.score, 4), e.start, e.end] for e in entities]
        return {"highlighted": segments, "entities": rows,
                "note": f"{len(rows)} entities from the remote engine {remote.label}."}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"aggregation_strategy": first|average|max}}; every entity is returned."""
        return {"text": inputs, "aggregation": parameters.get("aggregation_strategy") or "first", "min_score": 0.0}

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"entity_group", "score", "word", "start", "end"}, ...] in text order."""
        return [{"entity_group": label, "score": score, "word": word, "start": start, "end": end}
                for word, label, score, start, end in outputs["entities"]]


@dataclass
class _Word:
    start: int
    end: int
    label_id: int
    score: float


def _tag_words(bundle: Any, text: str, aggregation: str, ctx: RunContext) -> list[_Word]:
    """Each word of the text with its label id and probability, in text order."""
    import torch

    tok, net = bundle.tokenizer, bundle.model
    limit = _max_input_tokens(tok, net)
    enc = tok(text, truncation=True, max_length=limit, stride=limit // 4, return_overflowing_tokens=True,
              return_offsets_mapping=True, padding=True, return_tensors="pt")
    n_windows = enc["input_ids"].shape[0]
    # word id -> token start offset -> (distance from its window's edge, start, end, probabilities)
    tokens: dict[int, dict[int, tuple[int, int, int, Any]]] = {}
    for first in range(0, n_windows, WINDOWS_PER_BATCH):
        ctx.progress(first / n_windows, "Tagging")
        rows = slice(first, first + WINDOWS_PER_BATCH)
        inputs = {k: enc[k][rows].to(bundle.device) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in enc}
        with torch.inference_mode():
            probs = torch.softmax(net(**inputs).logits.float(), dim=-1).cpu()
        for row in range(probs.shape[0]):
            window = first + row
            word_ids = enc.word_ids(window)
            length = sum(1 for w in word_ids if w is not None)
            seen = 0
            for t, word in enumerate(word_ids):
                if word is None:
                    continue
                start, end = (int(x) for x in enc["offset_mapping"][window][t])
                # A token seen by two overlapping windows keeps the prediction from the window
                # where it had more context on both sides.
                edge = min(seen, length - 1 - seen)
                seen += 1
                best = tokens.setdefault(word, {}).get(start)
                if best is None or edge > best[0]:
                    tokens[word][start] = (edge, start, end, probs[row, t])

    words = []
    for word in sorted(tokens):
        parts = [tokens[word][s] for s in sorted(tokens[word])]
        if aggregation == "first":
            p = parts[0][3]
        elif aggregation == "average":
            p = torch.stack([part[3] for part in parts]).mean(dim=0)
        else:  # max: the single most confident token decides
            p = max((part[3] for part in parts), key=lambda q: float(q.max()))
        score, label_id = p.max(dim=-1)
        words.append(_Word(parts[0][1], parts[-1][2], int(label_id), float(score)))
    return words


def _split_tag(label: str) -> tuple[str, str]:
    """`B-PER` -> ("B", "PER"); `PER` -> ("", "PER"); `O` -> ("", "")."""
    if label.upper() in _OUTSIDE:
        return "", ""
    for sep in ("-", "_"):
        head, _, tail = label.partition(sep)
        if tail and head.upper() in {"B", "I", "E", "S", "L", "U"}:
            return head.upper(), tail
    return "", label


def _group_entities(words: list[_Word], id2label: dict[int, str]) -> list[Entity]:
    """Merge consecutive words into entities by their B-/I- (or BIOES) tags."""
    entities: list[Entity] = []
    current: list[_Word] = []
    kind = ""

    def close() -> None:
        if current:
            score = sum(w.score for w in current) / len(current)
            entities.append(Entity(kind, current[0].start, current[-1].end, score))
        current.clear()

    for word in words:
        prefix, label = _split_tag(id2label.get(word.label_id, ""))
        if not label:
            close()
            kind = ""
            continue
        continues = label == kind and prefix in {"", "I", "E", "L"}
        if not continues:
            close()
            kind = label
        current.append(word)
        if prefix in {"E", "L", "S", "U"}:  # BIOES: the entity ends on this word
            close()
            kind = ""
    close()
    return entities


def _max_input_tokens(tok: Any, net: Any) -> int:
    """The longest input the model takes: tokenizer limit, position table, or 512."""
    limits = [n for n in (getattr(tok, "model_max_length", None),
                          getattr(net.config, "max_position_embeddings", None)) if isinstance(n, int) and n > 0]
    return min([*limits, 4096]) if limits else 512


def highlight_segments(text: str, entities: list[Any]) -> list[tuple[str, str | None]]:
    """The text as (piece, label-or-None) segments that rejoin to it exactly; entities sorted by start."""
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for e in entities:
        if e.start < pos:  # an engine may return overlapping spans; a highlight shows each character once
            continue
        if e.start > pos:
            segments.append((text[pos:e.start], None))
        segments.append((text[e.start:e.end], e.label))
        pos = e.end
    if pos < len(text):
        segments.append((text[pos:], None))
    return segments
