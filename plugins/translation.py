"""Translation: text in one language, text in another, with a language-pair picker.

The pair picks the model for the Helsinki-NLP opus-mt family (one small model per
pair, `Helsinki-NLP/opus-mt-{src}-{tgt}`); multilingual models (NLLB, M2M100) get
the pair as language codes, and T5 gets it as its `translate X to Y:` prefix.
Text is translated line by line, so paragraphs keep their shape, and the result
grows as each batch of lines is done.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Mapping

from plugins.kinds import TEXT2TEXT_GENERATION
from zoo.errors import InvalidInput
from zoo.plugin import Choice, Int, ModelChoices, Plugin, RunContext, Text

# ISO 639-1 code -> (English name, NLLB-200 code). M2M100 uses the ISO code itself.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("English", "eng_Latn"),
    "fr": ("French", "fra_Latn"),
    "de": ("German", "deu_Latn"),
    "es": ("Spanish", "spa_Latn"),
    "it": ("Italian", "ita_Latn"),
    "nl": ("Dutch", "nld_Latn"),
    "ru": ("Russian", "rus_Cyrl"),
    "zh": ("Chinese", "zho_Hans"),
}
# Every pair has its own opus-mt model on the Hub: English to and from each language.
PAIRS: dict[str, tuple[str, str]] = {}
for _code in LANGUAGES:
    if _code != "en":
        PAIRS[f"English → {LANGUAGES[_code][0]}"] = ("en", _code)
        PAIRS[f"{LANGUAGES[_code][0]} → English"] = (_code, "en")
del _code

DEFAULT_PAIR = "English → French"
LINES_PER_BATCH = 8


def opus_repo(src: str, tgt: str) -> str:
    """The Helsinki-NLP opus-mt model for a language pair."""
    return f"Helsinki-NLP/opus-mt-{src}-{tgt}"


OPUS_REPOS = frozenset(opus_repo(*pair) for pair in PAIRS.values())


class Translation(Plugin):
    """Line-by-line translation; the language pair chooses the opus-mt model."""

    api_version = 2
    task = "translation"
    title = "Translation"
    group = "text"
    description = ("Translate text between English and another language. With an opus-mt model the pair picks "
                   "the model (`Helsinki-NLP/opus-mt-{src}-{tgt}`); NLLB and T5 models take the pair as an "
                   "instruction. Each line is translated on its own.")
    order = 50
    model_kind = TEXT2TEXT_GENERATION
    models = ModelChoices(
        online=opus_repo("en", "fr"),
        offline="tiny:text2text-generation",
        tiny="tiny:text2text-generation",
        known=("google-t5/t5-small", "facebook/nllb-200-distilled-600M"),
    )
    inputs = (
        Text("text", lines=6, placeholder="Text to translate…"),
        Choice("language_pair", DEFAULT_PAIR, choices=tuple(PAIRS), label="Language pair",
               info="opus-mt models follow the pair: the model switches to the pair's own opus-mt model"),
    )
    options = (
        Int("max_new_tokens", 256, 1, 1024, limit="max_new_tokens", info="Most tokens per translated line"),
        Int("num_beams", 4, 1, 8, info="Beam search width; 1 = greedy (fastest)"),
    )
    outputs = (
        Text("translation", label="Translation", lines=6),
        Text("note", label="Model note", lines=2),
    )
    examples = (
        {"text": "The weather is lovely today, so we are going for a walk by the river.",
         "language_pair": "English → French"},
        {"text": "Where is the train station?\nHow much does a ticket cost?", "language_pair": "English → German"},
        {"text": "Le chat dort sur le canapé depuis ce matin.", "language_pair": "French → English"},
    )
    translations = {
        "zh-CN": {
            "Translation": "翻译",
            ("Translate text between English and another language. With an opus-mt model the pair picks the model "
             "(`Helsinki-NLP/opus-mt-{src}-{tgt}`); NLLB and T5 models take the pair as an instruction. Each line "
             "is translated on its own."):
                ("在英语与另一种语言之间翻译文本。使用 opus-mt 模型时，"
                 "语言对决定所用模型（`Helsinki-NLP/opus-mt-{src}-{tgt}`）；NLLB 和 T5 模型则把语言对作为指令。"
                 "每一行单独翻译。"),
            "Text": "文本",
            "Text to translate…": "要翻译的文本…",
            "Language pair": "语言对",
            "opus-mt models follow the pair: the model switches to the pair's own opus-mt model":
                "opus-mt 模型跟随语言对：模型会切换到该语言对自己的 opus-mt 模型",
            "Most tokens per translated line": "每行译文的最大 token 数",
            "Num beams": "束数量",
            "Beam search width; 1 = greedy (fastest)": "束搜索宽度；1 = 贪心解码（最快）",
            "Model note": "模型说明",
        },
    }

    def model_for(self, values: Mapping[str, Any], default: str) -> tuple[str, str]:
        """The pair decides which opus-mt model runs; any other model runs as chosen."""
        ref = values.get("model") or default
        if ref in OPUS_REPOS:
            ref = opus_repo(*PAIRS[values.get("language_pair") or DEFAULT_PAIR])
        return ref, self.model_kind

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        import torch

        bundle = model.model
        tok, net = bundle.tokenizer, bundle.model
        pair = values["language_pair"]
        src, tgt = PAIRS[pair]
        prefix, src_code, tgt_code, how = _scheme(net, tok, src, tgt, pair)
        limit = _max_input_tokens(tok, net)

        lines = values["text"].split("\n")
        todo = [i for i, line in enumerate(lines) if line.strip()]
        done = list(lines)  # blank lines pass through untouched
        cut = 0
        generated = 0
        started = time.perf_counter()
        for start in range(0, len(todo), LINES_PER_BATCH):
            ctx.progress(start / len(todo), f"Translating lines {start + 1}–{min(start + LINES_PER_BATCH, len(todo))}")
            batch = todo[start:start + LINES_PER_BATCH]
            ids = []
            for i in batch:
                line_ids = _encode(tok, prefix + lines[i].strip(), src_code)
                if len(line_ids) > limit:  # keep the closing special token
                    line_ids = line_ids[:limit - 1] + line_ids[-1:]
                    cut += 1
                ids.append(line_ids)
            enc = tok.pad({"input_ids": ids}, padding=True, return_tensors="pt")
            kwargs: dict[str, Any] = dict(max_new_tokens=values["max_new_tokens"], num_beams=values["num_beams"],
                                          do_sample=False)
            if tgt_code is not None:
                kwargs["forced_bos_token_id"] = tgt_code
            with torch.inference_mode():
                out = net.generate(input_ids=enc["input_ids"].to(bundle.device),
                                   attention_mask=enc["attention_mask"].to(bundle.device), **kwargs)
            generated += int((out[:, 1:] != (tok.pad_token_id if tok.pad_token_id is not None else -1)).sum())
            for i, text in zip(batch, tok.batch_decode(out, skip_special_tokens=True)):
                # Keep the line's own indentation; models drop it.
                indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
                done[i] = indent + text.strip()
            yield {"translation": "\n".join(done[:batch[-1] + 1]), "note": ""}

        note = [f"{model.ref}: {how}; {len(todo)} line(s), {generated} tokens in {time.perf_counter() - started:.1f}s."]
        if cut:
            note.append(f"{cut} line(s) were longer than the model's {limit} input tokens and were cut; "
                        "split long lines to translate all of them.")
        if ctx.is_tiny:
            note.insert(0, "⚠️ Tiny random-weight model: the translation is noise. It shows the plumbing offline; "
                           f"pick a real model (such as {self.models.online}) for real translations.")
        yield {"translation": "\n".join(done), "note": " ".join(note)}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """ZOO_REMOTE_TRANSLATION: the engine's translation API translates the whole text."""
        src, tgt = PAIRS[values["language_pair"]]
        out = remote.call("translation", values["text"], src_lang=src, tgt_lang=tgt, generate_parameters={
            "max_new_tokens": values["max_new_tokens"], "num_beams": values["num_beams"]})
        return {"translation": out.translation_text, "note": f"Translated by the remote engine {remote.label}."}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": text, "parameters": {"src_lang", "tgt_lang" (ISO codes), "generate_parameters"}}."""
        values: dict[str, Any] = {"text": inputs}
        src, tgt = parameters.get("src_lang"), parameters.get("tgt_lang")
        if src or tgt:
            pair = next((name for name, codes in PAIRS.items() if codes == (src, tgt)), None)
            if pair is None:
                raise InvalidInput("src_lang/tgt_lang", f"{src} -> {tgt}", "must be a pair this zoo translates",
                                   "use one of: " + ", ".join(f"{s}->{t}" for s, t in PAIRS.values()))
            values["language_pair"] = pair
        generate = parameters.get("generate_parameters") or {}
        for name in ("max_new_tokens", "num_beams"):
            if generate.get(name) is not None:
                values[name] = generate[name]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"translation_text": ...}]."""
        return [{"translation_text": outputs["translation"]}]

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        # Lines are batched; a few hundred tokens per batch at tens of tokens/s, plus loading.
        lines = max(1, len([line for line in str(values.get("text", "")).split("\n") if line.strip()]))
        return 20 + (lines / LINES_PER_BATCH + 1) * values.get("max_new_tokens", 256) / 25


def _scheme(net: Any, tok: Any, src: str, tgt: str, pair: str) -> tuple[str, int | None, int | None, str]:
    """How this model is told the language pair: (text prefix, source code id, target code id, description)."""
    vocab = tok.get_vocab()
    nllb_src, nllb_tgt = LANGUAGES[src][1], LANGUAGES[tgt][1]
    if nllb_src in vocab and nllb_tgt in vocab:  # NLLB-200: language codes around the text
        return "", vocab[nllb_src], vocab[nllb_tgt], f"NLLB codes {nllb_src} → {nllb_tgt}"
    if f"__{src}__" in vocab and f"__{tgt}__" in vocab:  # M2M100
        return "", vocab[f"__{src}__"], vocab[f"__{tgt}__"], f"M2M100 codes __{src}__ → __{tgt}__"
    params = getattr(net.config, "task_specific_params", None) or {}
    translations = {k: v for k, v in params.items() if k.startswith("translation_")}
    if translations:  # T5: the pair is a text prefix, and only some pairs were trained
        task = f"translation_{src}_to_{tgt}"
        if task not in translations:
            offered = [name for name, (s, t) in PAIRS.items() if f"translation_{s}_to_{t}" in translations]
            raise InvalidInput("language_pair", pair, "is not a pair this model was trained on",
                               f"pick one of: {', '.join(offered) or '(none of ours)'}, or another model")
        prefix = translations[task].get("prefix", "")
        return prefix, None, None, f"prefix {prefix.strip()!r}"
    if getattr(net.config, "model_type", "") == "marian":
        return "", None, None, f"opus-mt model for {pair}"
    # A single-pair model of another family: it translates whatever it was trained on.
    return "", None, None, f"model's own language pair (the picker's {pair} is not passed to it)"


def _encode(tok: Any, text: str, src_code: int | None) -> list[int]:
    """Token ids for one line; multilingual models get the source language code first."""
    if src_code is None:
        return list(tok(text).input_ids)
    # Built by hand rather than by setting tok.src_lang: the tokenizer is shared by
    # concurrent requests, which may ask for different languages.
    return [src_code, *tok(text, add_special_tokens=False).input_ids, tok.eos_token_id]


def _max_input_tokens(tok: Any, net: Any) -> int:
    """The longest input the model takes: tokenizer limit, position table, or 512."""
    limits = [n for n in (getattr(tok, "model_max_length", None),
                          getattr(net.config, "max_position_embeddings", None)) if isinstance(n, int) and n > 0]
    return min([*limits, 1024]) if limits else 512
