"""Text classification: a text in, each of the model's labels with a score out (sentiment by default).

Scores are a softmax over the labels for single-label models and an independent
sigmoid per label for multi-label ones (the model's config says which); the tab
can force either.
"""

from __future__ import annotations

from typing import Any

from plugins.kinds import TEXT_CLASSIFICATION
from zoo.plugin import Choice, Int, Labels, ModelChoices, Plugin, RunContext, Text


class TextClassification(Plugin):
    """Sentiment (or any sequence classifier): label scores shown as bars."""

    api_version = 2
    task = "text-classification"
    title = "Text classification"
    group = "text"
    description = "Type a sentence; the model scores each of its labels (positive or negative, by default)."
    order = 52
    model_kind = TEXT_CLASSIFICATION
    models = ModelChoices(
        online="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        offline="tiny:text-classification",
        tiny="tiny:text-classification",
        known=("cardiffnlp/twitter-roberta-base-sentiment-latest", "j-hartmann/emotion-english-distilroberta-base",
               "SamLowe/roberta-base-go_emotions"),
    )
    inputs = (Text("text", lines=4, placeholder="Type a sentence or a review…"),)
    options = (
        Choice("function", "auto", choices=("auto", "softmax", "sigmoid"), label="Score function",
               info="auto: sigmoid for multi-label models, softmax otherwise"),
        Int("top_k", 0, 0, 1000, info="Show only the best k labels; 0 = all"),
    )
    outputs = (
        Labels("labels", label="Scores"),
        Text("note", label="Model note", lines=2),
    )
    examples = (
        {"text": "I loved this film: the acting was superb and the ending made me smile."},
        {"text": "The delivery was late and the box arrived damaged. Very disappointing."},
        {"text": "It was fine, I suppose. Nothing special."},
    )
    translations = {
        "zh-CN": {
            "Text classification": "文本分类",
            "Type a sentence; the model scores each of its labels (positive or negative, by default).":
                "输入一句话，模型为它的每个标签打分（默认为正面或负面）。",
            "Text": "文本",
            "Type a sentence or a review…": "输入一句话或一条评论…",
            "Score function": "评分函数",
            "auto: sigmoid for multi-label models, softmax otherwise": "auto：多标签模型用 sigmoid，其他用 softmax",
            "Top k": "前 k 个标签",
            "Show only the best k labels; 0 = all": "只显示得分最高的 k 个标签；0 = 全部",
            "Scores": "得分",
            "Model note": "模型说明",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        tok, net = bundle.tokenizer, bundle.model
        limit = _max_input_tokens(tok, net)
        ids = list(tok(values["text"]).input_ids)
        total = len(ids)
        if total > limit:  # keep the closing special token ([SEP], </s>)
            ids = ids[:limit - 1] + ids[-1:]
        with torch.inference_mode():
            logits = net(input_ids=torch.tensor([ids], device=bundle.device),
                         attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=bundle.device)
                         ).logits[0].float()
        function = values["function"]
        if function == "auto":
            multi = getattr(net.config, "problem_type", None) == "multi_label_classification"
            function = "sigmoid" if multi or logits.numel() == 1 else "softmax"
        scores = torch.sigmoid(logits) if function == "sigmoid" else torch.softmax(logits, dim=-1)
        id2label = net.config.id2label
        ranked = sorted(((str(id2label.get(i, f"LABEL_{i}")), float(s)) for i, s in enumerate(scores.tolist())),
                        key=lambda pair: -pair[1])
        if values["top_k"]:
            ranked = ranked[:values["top_k"]]

        note = [f"{model.ref}: {len(id2label)} labels, {function} scores."]
        if total > limit:
            note.append(f"The text was cut to its first {limit} of {total} tokens (the model's input limit).")
        if ctx.is_tiny:
            note.insert(0, "⚠️ Tiny random-weight model: the scores are noise. It shows the plumbing offline; "
                           f"pick a real model (such as {self.models.online}) for real labels.")
        return {"labels": dict(ranked), "note": " ".join(note)}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Label scores from a remote engine's text-classification API.

        ZOO_REMOTE_TEXT_CLASSIFICATION: the engine scores the labels.
        """
        from zoo.models.remote import as_list

        function = None if values["function"] == "auto" else values["function"]
        found = as_list(remote.call("text_classification", values["text"], top_k=values["top_k"] or None,
                                    function_to_apply=function))
        ranked = sorted(((str(o.label), float(o.score)) for o in found), key=lambda pair: -pair[1])
        return {"labels": dict(ranked), "note": f"{len(ranked)} labels scored by the remote engine {remote.label}."}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"top_k", "function_to_apply": softmax|sigmoid}} (no "none" here)."""
        return {"text": inputs, "top_k": parameters.get("top_k") or 0,
                "function": parameters.get("function_to_apply") or "auto"}

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[[{"label", "score"}, ...]], best first, as the Inference API answers."""
        return [[{"label": label, "score": score} for label, score in outputs["labels"].items()]]


def _max_input_tokens(tok: Any, net: Any) -> int:
    """The longest input the model takes: tokenizer limit, position table, or 512."""
    limits = [n for n in (getattr(tok, "model_max_length", None),
                          getattr(net.config, "max_position_embeddings", None)) if isinstance(n, int) and n > 0]
    return min([*limits, 4096]) if limits else 512
