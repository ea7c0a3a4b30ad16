"""Summarization: a long text in, a short one out, with length options.

Runs any encoder-decoder summarizer (BART, PEGASUS, T5). The model's own
summarization settings (T5's `summarize:` prefix, BART-CNN's length penalty and
no-repeat n-gram size) come from its config; the length bounds come from the tab.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from plugins.kinds import TEXT2TEXT_GENERATION
from zoo.errors import InvalidInput
from zoo.plugin import Int, Limits, ModelChoices, Plugin, RunContext, Text

# Generation settings a model's config may carry for summarization; lengths are the tab's.
_MODEL_SETTINGS = ("length_penalty", "no_repeat_ngram_size", "early_stopping")

_ARTICLE = (
    "The city council voted on Tuesday to turn the old railway line into a park. The line closed in 1998 "
    "and has been fenced off since. Under the plan, the four-kilometre strip will get a cycle path, "
    "benches and about two thousand new trees. Work starts next spring and should take two years. "
    "Supporters said the park would give the eastern districts their first large green space, while "
    "some shop owners worried about the loss of parking along the route. The council will pay for most "
    "of the work, with the rest coming from a national fund for urban renewal."
)


class Summarization(Plugin):
    """Abstractive summaries with min/max length and beam search."""

    api_version = 2
    task = "summarization"
    title = "Summarization"
    group = "text"
    description = "Paste an article or a report; the model writes a short summary of it."
    order = 51
    model_kind = TEXT2TEXT_GENERATION
    models = ModelChoices(
        online="facebook/bart-large-cnn",
        offline="tiny:text2text-generation",
        tiny="tiny:text2text-generation",
        known=("sshleifer/distilbart-cnn-12-6", "google-t5/t5-small"),
    )
    inputs = (Text("text", lines=12, placeholder="Paste the text to summarize…"),)
    options = (
        Int("min_length", 16, 0, 512, info="Fewest tokens in the summary"),
        Int("max_length", 128, 1, 1024, limit="max_new_tokens", info="Most tokens in the summary"),
        Int("num_beams", 4, 1, 8, info="Beam search width; 1 = greedy (fastest)"),
    )
    outputs = (
        Text("summary", label="Summary", lines=6),
        Text("note", label="Model note", lines=2),
    )
    examples = (
        {"text": _ARTICLE},
        {"text": _ARTICLE, "min_length": 5, "max_length": 30, "num_beams": 2},
    )
    translations = {
        "zh-CN": {
            "Summarization": "文本摘要",
            "Paste an article or a report; the model writes a short summary of it.":
                "粘贴一篇文章或报告，模型为其写一段简短摘要。",
            "Text": "文本",
            "Paste the text to summarize…": "粘贴要摘要的文本…",
            "Min length": "最小长度",
            "Fewest tokens in the summary": "摘要的最少 token 数",
            "Max length": "最大长度",
            "Most tokens in the summary": "摘要的最多 token 数",
            "Num beams": "束数量",
            "Beam search width; 1 = greedy (fastest)": "束搜索宽度；1 = 贪心解码（最快）",
            "Summary": "摘要",
            "Model note": "模型说明",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """The summary's lower bound cannot exceed its upper bound."""
        if values["min_length"] > values["max_length"]:
            raise InvalidInput("min_length", values["min_length"],
                               f"must not exceed max_length ({values['max_length']})",
                               "lower min_length or raise max_length")

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        tok, net = bundle.tokenizer, bundle.model
        params = (getattr(net.config, "task_specific_params", None) or {}).get("summarization", {})
        ids = list(tok(params.get("prefix", "") + values["text"].strip()).input_ids)
        limit = _max_input_tokens(tok, net)
        total = len(ids)
        if total > limit:  # keep the closing special token
            ids = ids[:limit - 1] + ids[-1:]
        ctx.progress(None, "Summarizing")
        kwargs: dict[str, Any] = {k: params[k] for k in _MODEL_SETTINGS if k in params}
        kwargs.update(max_new_tokens=values["max_length"], min_new_tokens=values["min_length"],
                      num_beams=values["num_beams"], do_sample=False)
        started = time.perf_counter()
        with torch.inference_mode():
            out = net.generate(input_ids=torch.tensor([ids], device=bundle.device),
                               attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=bundle.device),
                               **kwargs)
        summary = tok.decode(out[0], skip_special_tokens=True).strip()
        new_tokens = out.shape[1] - 1  # the decoder's start token is not generated

        note = [f"{model.ref}: {new_tokens} tokens from {min(total, limit)} input tokens "
                f"in {time.perf_counter() - started:.1f}s."]
        if total > limit:
            note.append(f"The text was cut to its first {limit} of {total} tokens (the model's input limit); "
                        "summarize long documents section by section.")
        if ctx.is_tiny:
            note.insert(0, "⚠️ Tiny random-weight model: the summary is noise. It shows the plumbing offline; "
                           f"pick a real model (such as {self.models.online}) for real summaries.")
        return {"summary": summary, "note": " ".join(note)}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """ZOO_REMOTE_SUMMARIZATION: the engine's summarization API writes the summary."""
        out = remote.call("summarization", values["text"].strip(), generate_parameters={
            "min_new_tokens": values["min_length"], "max_new_tokens": values["max_length"],
            "num_beams": values["num_beams"]})
        return {"summary": out.summary_text.strip(), "note": f"Summarized by the remote engine {remote.label}."}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"generate_parameters": {min_/max_new_tokens (or _length), num_beams}}}."""
        generate = parameters.get("generate_parameters") or {}
        values: dict[str, Any] = {"text": inputs}
        for field, keys in (("min_length", ("min_new_tokens", "min_length")),
                            ("max_length", ("max_new_tokens", "max_length")), ("num_beams", ("num_beams",))):
            given = [generate[k] for k in keys if generate.get(k) is not None]
            if given:
                values[field] = given[0]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"summary_text": ...}]."""
        return [{"summary_text": outputs["summary"]}]

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        # Beam search on a large BART: roughly 20 tokens/s per beam on a small GPU, plus loading.
        return 20 + values.get("max_length", 128) * values.get("num_beams", 4) / 20


def _max_input_tokens(tok: Any, net: Any) -> int:
    """The longest input the model takes: tokenizer limit, position table, or 512."""
    limits = [n for n in (getattr(tok, "model_max_length", None),
                          getattr(net.config, "max_position_embeddings", None)) if isinstance(n, int) and n > 0]
    return min([*limits, 4096]) if limits else 512
