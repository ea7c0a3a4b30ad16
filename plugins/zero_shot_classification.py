"""Zero-shot classification: score a text against labels the user types, with an NLI model.

Each label becomes a hypothesis ("This example is {label}.") paired with the text
as premise; the NLI model says how strongly the premise entails it. Single-label:
a softmax of the entailment logits across the labels (scores sum to 1).
Multi-label: each label on its own, entailment against contradiction.
"""

from __future__ import annotations

from typing import Any

from plugins.kinds import TEXT_CLASSIFICATION
from zoo.errors import InvalidInput
from zoo.plugin import Bool, Labels, Limits, ModelChoices, Plugin, RunContext, Text

MAX_LABELS = 32
PAIRS_PER_BATCH = 16


def parse_labels(raw: str) -> list[str]:
    """Comma-separated labels, trimmed, blanks and repeats dropped, order kept."""
    seen: dict[str, None] = {}
    for part in raw.split(","):
        label = " ".join(part.split())
        if label:
            seen.setdefault(label, None)
    return list(seen)


class ZeroShotClassification(Plugin):
    """Labels chosen at request time, scored by natural-language inference."""

    api_version = 2
    task = "zero-shot-classification"
    title = "Zero-shot classification"
    group = "text"
    description = ("Type a text and the labels to choose from, separated by commas; an NLI model scores how well "
                   "each label fits, with no training on those labels.")
    order = 54
    model_kind = TEXT_CLASSIFICATION
    models = ModelChoices(
        online="facebook/bart-large-mnli",
        offline="tiny:zero-shot-classification",
        tiny="tiny:zero-shot-classification",
        known=("MoritzLaurer/deberta-v3-base-zeroshot-v2.0", "typeform/distilbert-base-uncased-mnli"),
    )
    inputs = (
        Text("text", lines=4, placeholder="Text to classify…"),
        Text("candidate_labels", required=False, max_chars=2000, label="Candidate labels",
             placeholder="sports, politics, cooking", info=f"Comma-separated, up to {MAX_LABELS}"),
    )
    options = (
        Bool("multi_label", False, label="Several labels can be true",
             info="Score each label on its own instead of choosing one (scores then need not sum to 1)"),
        Text("hypothesis_template", "This example is {}.", label="Hypothesis template",
             info="The sentence each label is put into; {} marks where the label goes"),
    )
    outputs = (
        Labels("scores", label="Scores"),
        Text("note", label="Model note", lines=2),
    )
    examples = (
        {"text": "The striker scored twice in the second half to win the cup final.",
         "candidate_labels": "sports, politics, cooking, technology"},
        {"text": "Preheat the oven, then whisk the eggs with sugar and melted butter.",
         "candidate_labels": "cooking, finance, travel"},
        {"text": "The new phone has a faster chip, but the battery drains quickly and it costs too much.",
         "candidate_labels": "technology, price, battery life, sports", "multi_label": True},
    )
    translations = {
        "zh-CN": {
            "Zero-shot classification": "零样本分类",
            ("Type a text and the labels to choose from, separated by commas; an NLI model scores how well each "
             "label fits, with no training on those labels."):
                "输入一段文本和可选的标签（用逗号分隔），NLI 模型为每个标签的契合程度打分，无需在这些标签上训练。",
            "Text": "文本",
            "Text to classify…": "要分类的文本…",
            "Candidate labels": "候选标签",
            "Comma-separated, up to 32": "用逗号分隔，最多 32 个",
            "sports, politics, cooking": "例如：sports, politics, cooking",
            "Several labels can be true": "可以有多个标签成立",
            "Score each label on its own instead of choosing one (scores then need not sum to 1)":
                "对每个标签单独打分，而不是从中选一个（此时各得分之和不必为 1）",
            "Hypothesis template": "假设模板",
            "The sentence each label is put into; {} marks where the label goes":
                "放入每个标签的句子；{} 标出标签所在的位置",
            "Scores": "得分",
            "Model note": "模型说明",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """At least one label, not too many, and a template with one `{}`."""
        labels = parse_labels(values["candidate_labels"])
        if not labels:
            raise InvalidInput("candidate_labels", values["candidate_labels"], "must list at least one label",
                               "type the labels to choose from, separated by commas, e.g. `sports, politics, cooking`")
        if len(labels) > MAX_LABELS:
            raise InvalidInput("candidate_labels", f"<{len(labels)} labels>", f"must list at most {MAX_LABELS} labels",
                               "keep the labels you care about most")
        template = values["hypothesis_template"]
        if template.count("{}") != 1 or template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
            raise InvalidInput("hypothesis_template", template, "must contain `{}` exactly once and no other braces",
                               "write a sentence such as `This example is {}.`")

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        tok, net = bundle.tokenizer, bundle.model
        entail, contra = _nli_ids(net.config, model.ref)
        labels = parse_labels(values["candidate_labels"])
        hypotheses = [values["hypothesis_template"].format(label) for label in labels]
        limit = _max_input_tokens(tok, net)

        logits = []
        for first in range(0, len(hypotheses), PAIRS_PER_BATCH):
            ctx.progress(first / len(hypotheses), "Scoring labels")
            batch = hypotheses[first:first + PAIRS_PER_BATCH]
            # Only the premise is cut when too long: the hypothesis must stay whole.
            enc = tok([values["text"]] * len(batch), batch, truncation="only_first", max_length=limit,
                      padding=True, return_tensors="pt")
            with torch.inference_mode():
                logits.append(net(**{k: v.to(bundle.device) for k, v in enc.items()}).logits.float().cpu())
        logits_all = torch.cat(logits)

        # One label alone cannot be chosen among others: score it on its own.
        multi = values["multi_label"] or len(labels) == 1
        if multi:
            if contra is not None:
                scores = torch.softmax(logits_all[:, [contra, entail]], dim=-1)[:, 1]
            else:
                scores = torch.softmax(logits_all, dim=-1)[:, entail]
        else:
            scores = torch.softmax(logits_all[:, entail], dim=0)
        ranked = sorted(zip(labels, (float(s) for s in scores)), key=lambda pair: -pair[1])

        how = "each label on its own (entailment vs contradiction)" if multi else "one label (softmax across labels)"
        note = [f"{model.ref}: {len(labels)} labels, {how}."]
        if multi and not values["multi_label"]:
            note.append("With a single label it is scored on its own.")
        if ctx.is_tiny:
            note.insert(0, "⚠️ Tiny random-weight model: the scores are noise. It shows the plumbing offline; "
                           f"pick a real model (such as {self.models.online}) for real scores.")
        return {"scores": dict(ranked), "note": " ".join(note)}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Label scores from a remote engine's zero-shot-classification API.

        ZOO_REMOTE_ZERO_SHOT_CLASSIFICATION: the engine scores the labels.
        """
        from zoo.models.remote import as_list

        found = as_list(remote.call("zero_shot_classification", values["text"],
                                    parse_labels(values["candidate_labels"]), multi_label=values["multi_label"],
                                    hypothesis_template=values["hypothesis_template"]))
        ranked = sorted(((str(o.label), float(o.score)) for o in found), key=lambda pair: -pair[1])
        return {"scores": dict(ranked), "note": f"{len(ranked)} labels scored by the remote engine {remote.label}."}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"candidate_labels": [...], "multi_label", "hypothesis_template"}}."""
        labels = parameters.get("candidate_labels") or []
        if isinstance(labels, str):
            labels = parse_labels(labels)
        if any(not isinstance(label, str) or "," in label for label in labels):
            raise InvalidInput("candidate_labels", labels, "must be a list of texts without commas",
                               'send e.g. ["sports", "politics"]')
        values = {"text": inputs, "candidate_labels": ", ".join(labels),
                  "multi_label": bool(parameters.get("multi_label"))}
        if parameters.get("hypothesis_template"):
            values["hypothesis_template"] = parameters["hypothesis_template"]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"label", "score"}, ...], best first."""
        return [{"label": label, "score": score} for label, score in outputs["scores"].items()]

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        # One forward pass per label on a large NLI model, well under a second each.
        return 15 + len(parse_labels(str(values.get("candidate_labels", "")))) * 0.5


def _nli_ids(config: Any, ref: str) -> tuple[int, int | None]:
    """The entailment label id and the contradiction (or not-entailment) id of an NLI model."""
    by_name = {str(label).lower().replace("-", "_").replace(" ", "_"): int(i) for i, label in config.id2label.items()}
    entail = next((i for name, i in by_name.items() if name.startswith("entail")), None)
    if entail is None:
        names = [str(config.id2label[i]) for i in sorted(config.id2label, key=int)]
        raise InvalidInput("model", ref, f"is not an NLI model: its labels are {', '.join(names)}, with no "
                           "`entailment`", "pick an NLI model such as facebook/bart-large-mnli")
    contra = next((i for name, i in by_name.items() if name.startswith(("contradict", "not_entail"))), None)
    return entail, contra


def _max_input_tokens(tok: Any, net: Any) -> int:
    """The longest input the model takes: tokenizer limit, position table, or 512."""
    limits = [n for n in (getattr(tok, "model_max_length", None),
                          getattr(net.config, "max_position_embeddings", None)) if isinstance(n, int) and n > 0]
    return min([*limits, 4096]) if limits else 512
