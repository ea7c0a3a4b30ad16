"""Question answering over a given context, in two modes.

Extractive: an encoder fine-tuned on SQuAD scores every context token as the start
and the end of the answer; the answer is the best-scoring span, so it is always a
verbatim piece of the context. transformers 5 has no question-answering pipeline,
so span selection lives here: the context is split into overlapping windows (the
model sees a few hundred tokens at a time), question and padding tokens are masked,
and the best start <= end pair within `max_answer_tokens` wins across all windows.

Generative: an instruction-tuned LM (the one text generation and chat share) reads
the context and writes a short answer, or "I don't know". When the answer occurs in
the context it is highlighted there too.

Mode "auto" follows the model: extractive for extractive-QA models, generative for
language models. Asking for the other mode with a stock model switches to the stock
model of that mode (offline, extractive mode can only run a tiny random-weight model,
and the output says so).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from plugins.kinds import QUESTION_ANSWERING
from zoo.errors import InvalidInput
from zoo.generation import GenerationParams, GenerationStats, LanguageModel, sampling_options
from zoo.models.refs import parse_ref
from zoo.plugin import Choice, Float, Highlight, Int, Json, ModelChoices, Plugin, RunContext, Text

EXTRACTIVE = "question-answering"  # loader kind: AutoModelForQuestionAnswering + tokenizer (a Bundle)
GENERATIVE = "causal-lm"  # loader kind: TransformersLM, shared with text generation and chat

# Stock models per situation (online / offline / tiny), so a mode switch can swap a
# stock model for its counterpart instead of failing.
ONLINE = {EXTRACTIVE: "distilbert/distilbert-base-cased-distilled-squad",
          GENERATIVE: "HuggingFaceTB/SmolLM2-135M-Instruct"}
# No real extractive-QA weights are packaged anywhere, so offline extraction is tiny and random.
OFFLINE = {EXTRACTIVE: "tiny:question-answering", GENERATIVE: "packaged:smollm2-135m-instruct"}
TINY = {EXTRACTIVE: "tiny:question-answering", GENERATIVE: "tiny:causal-lm"}
STOCK = {*ONLINE.values(), *OFFLINE.values(), *TINY.values()}
KNOWN_EXTRACTIVE = ("distilbert/distilbert-base-cased-distilled-squad", "deepset/roberta-base-squad2",
                    "deepset/tinyroberta-squad2", "tiny:question-answering")

IDK = "I don't know"
_IDK_RE = re.compile(r"^\W*i\s+(?:do\s*n[o']?t|do\s+not|cannot|can't)\s+know", re.IGNORECASE)

# One worked example keeps the small default LM terse ("Paris." rather than a paragraph),
# which is also what lets the answer be found and highlighted in the context.
_SYSTEM = ("Answer the question briefly, using only the context. "
           f"If the answer is not in the context, say \"{IDK}\".")
_SHOT_CONTEXT = "Tom lives in Oslo. He bought three apples at the market on Monday."
_SHOT_QUESTION = "What did Tom buy?"
_SHOT_ANSWER = "Three apples."


# --------------------------------------------------------------------------- span selection


@dataclass(frozen=True)
class Window:
    """One model window's logits, with each token's character span in the context (None = not context)."""

    start_logits: Sequence[float]
    end_logits: Sequence[float]
    offsets: Sequence[tuple[int, int] | None]


@dataclass(frozen=True)
class Span:
    """The chosen answer: window index, token and character positions, and its probability."""

    window: int
    start_token: int
    end_token: int
    start_char: int
    end_char: int
    score: float


def _log_softmax(logits: Sequence[float], keep: Sequence[int]) -> dict[int, float]:
    """Log-probabilities over the kept positions only (the others are masked out)."""
    top = max(logits[i] for i in keep)
    total = top + math.log(sum(math.exp(logits[i] - top) for i in keep))
    return {i: logits[i] - total for i in keep}


def best_span(windows: Sequence[Window], max_answer_tokens: int) -> Span | None:
    """The span with the highest P(start) * P(end), start <= end, at most `max_answer_tokens` long.

    Probabilities are softmaxes over each window's context tokens (question, special and
    padding tokens are masked), so a confident window beats a flat one. None when no
    window holds a context token.
    """
    best: Span | None = None
    best_log = -math.inf
    for w, window in enumerate(windows):
        keep = [i for i, off in enumerate(window.offsets) if off is not None and off[1] > off[0]]
        if not keep:
            continue
        log_start = _log_softmax(window.start_logits, keep)
        log_end = _log_softmax(window.end_logits, keep)
        for a, i in enumerate(keep):
            for j in keep[a:]:
                if j - i >= max_answer_tokens:
                    break
                score = log_start[i] + log_end[j]
                if score > best_log:
                    best_log = score
                    start_char, end_char = window.offsets[i][0], window.offsets[j][1]  # type: ignore[index]
                    best = Span(w, i, j, start_char, end_char, math.exp(score))
    return best


def highlight(context: str, start: int, end: int, label: str) -> list[tuple[str, str | None]]:
    """Context as (text, label) segments with [start, end) labelled; they join back to the context exactly."""
    parts = [(context[:start], None), (context[start:end], label), (context[end:], None)]
    return [(text, lab) for text, lab in parts if text]


def find_in_context(answer: str, context: str) -> tuple[int, int] | None:
    """Where a generated answer occurs in the context (case-insensitive, trailing punctuation trimmed)."""
    needle = answer.strip().strip("\"'“”‘’`").rstrip(".!?,;:").strip().strip("\"'“”‘’`").strip()
    if not needle:
        return None
    # Whole words only: "Max" should not light up "maximum".
    left = r"\b" if needle[0].isalnum() else ""
    right = r"\b" if needle[-1].isalnum() else ""
    pattern = left + r"\s+".join(re.escape(part) for part in needle.split()) + right
    match = re.search(pattern, context, re.IGNORECASE)
    return match.span() if match else None


def is_idk(answer: str) -> bool:
    """True when the model declined ("I don't know")."""
    return bool(_IDK_RE.match(answer))


def guess_kind(ref: str) -> str:
    """Whether a model reference is an extractive-QA model or a language model, without loading it."""
    parsed = parse_ref(ref)
    if parsed.scheme == "tiny":
        return EXTRACTIVE if parsed.name == "question-answering" else GENERATIVE
    if ref in KNOWN_EXTRACTIVE or ref in STOCK:
        return EXTRACTIVE if ref in KNOWN_EXTRACTIVE else GENERATIVE
    if parsed.scheme in {"packaged", "openai-whisper"} or (parsed.filename or parsed.name).endswith(".gguf"):
        return GENERATIVE
    architectures = _config_architectures(parsed.scheme, parsed.name, parsed.revision)
    if architectures:
        return EXTRACTIVE if any(a.endswith("ForQuestionAnswering") for a in architectures) else GENERATIVE
    # Not downloaded yet: SQuAD fine-tunes say so in their names.
    name = parsed.name.lower()
    return EXTRACTIVE if "squad" in name or re.search(r"[-_]qa\b", name) else GENERATIVE


def _config_architectures(scheme: str, name: str, revision: str | None) -> list[str]:
    """`architectures` from a local or already-cached config.json; [] when there is none here."""
    path: Any = None
    if scheme == "local":
        path = Path(name) / "config.json"
    elif scheme == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(name, "config.json", revision=revision)
        except Exception:  # a malformed id or an unreadable cache: fall back to the name
            return []
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return []
    try:
        return list(json.loads(Path(path).read_text(encoding="utf-8")).get("architectures") or [])
    except (OSError, ValueError, AttributeError):
        return []


# --------------------------------------------------------------------------- the plugin


class QuestionAnswering(Plugin):
    """Answer a question from a context: extract a span, or generate a short answer."""

    api_version = 2
    task = "question-answering"
    title = "Question answering"
    group = "text"
    description = (
        "Paste a context and ask a question about it. **Extractive** mode picks the answer span out of the "
        "context with a SQuAD model (long contexts are read in overlapping windows); **generative** mode has an "
        "instruction-tuned LM write a short answer from the context only, or say \"I don't know\". "
        "**Auto** follows the chosen model: extractive for extractive-QA models, generative for language models. "
        "Offline, the default is the packaged SmolLM2 (generative, real weights); no extractive weights are "
        "available offline, so extractive mode there runs a tiny *random-weight* model and says so: "
        "its spans are noise."
    )
    order = 30
    model_kind = QUESTION_ANSWERING
    models = ModelChoices(
        online=ONLINE[EXTRACTIVE],
        offline=OFFLINE[GENERATIVE],
        tiny=TINY[EXTRACTIVE],
        known=(ONLINE[GENERATIVE], "deepset/roberta-base-squad2", "HuggingFaceTB/SmolLM2-360M-Instruct",
               "Qwen/Qwen2.5-0.5B-Instruct", TINY[GENERATIVE]),
    )
    inputs = (
        Text("question", placeholder="What do you want to know?"),
        Text("context", lines=8, placeholder="Paste the text that holds the answer…"),
        Choice("mode", "auto", choices=("auto", "extractive", "generative"),
               info="auto: extractive for extractive-QA models, generative for language models"),
    )
    options = (
        Int("max_answer_tokens", 30, 1, 512, info="Extractive: longest answer span, in tokens"),
        Int("window_tokens", 384, 32, 4096,
            info="Extractive: tokens per model window (capped at the model's limit)"),
        Int("doc_stride", 128, 0, 2048, info="Extractive: tokens shared by neighbouring windows"),
        *sampling_options(max_new_tokens=48, temperature=0.0, max_new_tokens_cap=1024,
                          info={"max_new_tokens": "Generative: answer length cap",
                                "temperature": "Generative: 0 = greedy (deterministic)"},
                          only=("max_new_tokens", "temperature", "seed")),
    )
    outputs = (
        Text("answer", label="Answer", lines=2),
        Float("score", 0.0, label="Score", info="Extractive: P(start)·P(end) in its window; generative: none"),
        Highlight("highlighted", label="Answer in context"),
        Json("details", label="Details"),
    )
    examples = (
        {"question": "Where is the Eiffel Tower?", "mode": "auto",
         "context": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
                    "It is named after the engineer Gustave Eiffel, whose company designed and built it "
                    "between 1887 and 1889."},
        {"question": "Why did the team delay the launch?", "mode": "generative", "temperature": 0.0,
         "context": "The launch was planned for March. In February the team found a fault in the fuel pump, "
                    "so they delayed the launch by six weeks to replace it. The rocket flew in May."},
        {"question": "Who designed the tower?", "mode": "extractive", "max_answer_tokens": 10,
         "context": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
                    "It is named after the engineer Gustave Eiffel, whose company designed and built it "
                    "between 1887 and 1889."},
    )
    translations = {
        "zh-CN": {
            "Question answering": "问答",
            ("Paste a context and ask a question about it. **Extractive** mode picks the answer span out of the "
             "context with a SQuAD model (long contexts are read in overlapping windows); **generative** mode has "
             "an instruction-tuned LM write a short answer from the context only, or say \"I don't know\". **Auto** "
             "follows the chosen model: extractive for extractive-QA models, generative for language models. "
             "Offline, the default is the packaged SmolLM2 (generative, real weights); no extractive weights are "
             "available offline, so extractive mode there runs a tiny *random-weight* model and says so: its spans "
             "are noise."):
                ("粘贴一段上下文并就其提问。"
                 "**抽取式**模式用 SQuAD 模型从上下文中选出答案片段（长上下文按相互重叠的窗口读取）；"
                 "**生成式**模式让经过指令微调的语言模型仅根据上下文写出简短回答，或者回答 \"I don't know\"。"
                 "**自动**模式跟随所选模型：抽取式问答模型用抽取式，语言模型用生成式。"
                 "离线时默认使用随附的 SmolLM2（生成式，真实权重）；离线没有可用的抽取式权重，"
                 "因此那里的抽取式模式运行一个微型*随机权重*模型并如实说明：它给出的答案片段只是噪声。"),
            "Question": "问题",
            "What do you want to know?": "你想知道什么？",
            "Context": "上下文",
            "Paste the text that holds the answer…": "粘贴包含答案的文本…",
            "Mode": "模式",
            "auto: extractive for extractive-QA models, generative for language models":
                "auto：抽取式问答模型用抽取式，语言模型用生成式",
            "Max answer tokens": "答案最大 token 数",
            "Extractive: longest answer span, in tokens": "抽取式：答案片段的最大长度，以 token 计",
            "Window tokens": "窗口 token 数",
            "Extractive: tokens per model window (capped at the model's limit)":
                "抽取式：每个模型窗口的 token 数（不超过模型的上限）",
            "Doc stride": "文档步幅",
            "Extractive: tokens shared by neighbouring windows": "抽取式：相邻窗口共享的 token 数",
            "Generative: answer length cap": "生成式：回答长度上限",
            "Generative: 0 = greedy (deterministic)": "生成式：0 = 贪心解码（结果确定）",
            "Answer": "答案",
            "Score": "得分",
            "Extractive: P(start)·P(end) in its window; generative: none":
                "抽取式：窗口内的 P(start)·P(end)；生成式：无",
            "Answer in context": "上下文中的答案",
            "Details": "详细信息",
        },
    }

    # ------------------------------------------------------------------ model choice
    def model_for(self, values: Mapping[str, Any], default: str) -> tuple[str, str]:
        """Mode + model -> (ref, kind); a stock model of the other kind is swapped for its counterpart."""
        ref = values.get("model") or default
        mode = values.get("mode") or "auto"
        if parse_ref(ref).scheme == "remote":  # ZOO_REMOTE_QUESTION_ANSWERING: the engine's QA API, or chat
            return ref, GENERATIVE if mode == "generative" else EXTRACTIVE
        kind = guess_kind(ref)
        if mode == "auto":
            return ref, kind
        wanted = GENERATIVE if mode == "generative" else EXTRACTIVE
        if kind == wanted:
            return ref, kind
        if ref in STOCK:
            return self._situation(default)[wanted], wanted
        what = "an extractive question-answering" if kind == EXTRACTIVE else "a language"
        need = "a language model (e.g. " + ONLINE[GENERATIVE] if wanted == GENERATIVE \
            else "an extractive-QA model (e.g. " + ONLINE[EXTRACTIVE]
        raise InvalidInput("mode", mode, f"cannot run `{ref}`, which is {what} model",
                           f"set mode to auto, or pick {need})")

    def _situation(self, default: str) -> dict[str, str]:
        """The stock pair for where the app runs, read off the default it was given."""
        scheme = parse_ref(default).scheme
        if scheme == "tiny":
            return TINY
        if scheme == "packaged" or default == self.models.offline:
            return OFFLINE
        return ONLINE

    def check(self, values: dict[str, Any], limits: Any) -> None:
        """Windows must move forward: the overlap has to be shorter than a window."""
        if values["doc_stride"] >= values["window_tokens"] // 2:
            raise InvalidInput("doc_stride", values["doc_stride"],
                               f"must be less than half of window_tokens ({values['window_tokens']})",
                               f"use at most {values['window_tokens'] // 2 - 1}")

    # ------------------------------------------------------------------ running
    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        if model.kind == GENERATIVE:
            yield from self._generative(model.model, values, ctx)
        else:
            yield self._extractive(model.model, values, ctx)

    def run_remote(self, engine: Any, values: dict[str, Any], ctx: RunContext
                   ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """ZOO_REMOTE_QUESTION_ANSWERING: generative mode chats with the engine, the others use its QA API."""
        if isinstance(engine, LanguageModel):  # model_for chose the LM kind: mode generative
            return self._generative(engine, values, ctx)
        return self._remote(engine, values, ctx)

    def _extractive(self, bundle: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        question, context = values["question"].strip(), values["context"]
        tok, net = bundle.tokenizer, bundle.model
        window = _window_size(values["window_tokens"], tok, net)
        question_tokens = len(tok(question, add_special_tokens=False)["input_ids"])
        room = window - question_tokens - tok.num_special_tokens_to_add(pair=True)
        if room < 8:
            raise InvalidInput("question", question, f"is {question_tokens} tokens; with it a {window}-token "
                               "window leaves no room for the context", "shorten the question")
        # The tokenizer needs the overlap to be shorter than the context part of a window.
        stride = min(values["doc_stride"], room // 2)
        enc = tok(question, context, truncation="only_second", max_length=window, stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest",
                  return_tensors="pt")
        n_windows = enc["input_ids"].shape[0]
        names = [n for n in tok.model_input_names if n in enc]
        windows: list[Window] = []
        batch = 8  # bounds memory on long contexts and lets Stop land between batches
        with torch.inference_mode():
            for first in range(0, n_windows, batch):
                ctx.progress(first / n_windows, f"Reading window {first + 1} of {n_windows}")
                inputs = {n: enc[n][first:first + batch].to(bundle.device) for n in names}
                out = net(**inputs)
                for k, (starts, ends) in enumerate(zip(out.start_logits.float().tolist(),
                                                       out.end_logits.float().tolist())):
                    i = first + k
                    offsets = [tuple(o) if sid == 1 else None
                               for sid, o in zip(enc.sequence_ids(i), enc["offset_mapping"][i].tolist())]
                    windows.append(Window(starts, ends, offsets))
        span = best_span(windows, values["max_answer_tokens"])
        if span is not None:
            span = _whole_words(span, windows[span.window], enc.word_ids(span.window))
        tiny_note = ("Tiny random-weight model: this span is noise, not an answer. It shows the plumbing "
                     "offline; pick a real extractive model (online) or generative mode for real answers.")
        details: dict[str, Any] = {"mode": "extractive", "model": ctx.model_ref, "random_weights": ctx.is_tiny,
                                   "windows": n_windows, "window_tokens": window, "doc_stride": stride}
        if ctx.is_tiny:
            details["note"] = tiny_note
        if span is None:  # only when the context has no tokens at all
            return {"answer": "", "score": None, "highlighted": [(context, None)], "details": details}
        start, end = _trim(context, span.start_char, span.end_char)
        details.update(start=start, end=end, best_window=span.window)
        label = "answer (random tiny model)" if ctx.is_tiny else "answer"
        return {"answer": context[start:end], "score": span.score,
                "highlighted": highlight(context, start, end, label), "details": details}

    def _generative(self, lm: LanguageModel, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        question, context = values["question"].strip(), values["context"].strip()
        messages = [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": f"Context:\n{_SHOT_CONTEXT}\n\nQuestion: {_SHOT_QUESTION}\nAnswer:"},
            {"role": "assistant", "content": _SHOT_ANSWER},
            {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}\nAnswer:"},
        ]
        prompt = lm.chat_prompt(messages)
        limit = lm.context_length
        needed = lm.count_tokens(prompt) + values["max_new_tokens"]
        if limit and needed > limit:
            raise InvalidInput("context", f"<{len(context)} characters>",
                               f"needs {needed} tokens with the question and answer, but the model reads {limit}",
                               "shorten the context, or use extractive mode, which reads long contexts in windows")
        # A repetition penalty would punish copying words from the context.
        params = GenerationParams.from_values(values, repetition_penalty=1.0)
        stats = GenerationStats()
        details: dict[str, Any] = {"mode": "generative", "model": ctx.model_ref, "random_weights": ctx.is_tiny}
        if ctx.is_tiny:
            details["note"] = "Tiny random-weight model: the answer is noise, not an answer."
        text = ""
        for piece in lm.stream(prompt, params, cancel=ctx.cancel_event, stats=stats,
                               templated=lm.has_chat_template):
            text += piece
            # The highlight comes at the end: resending a long context per token would be wasteful.
            yield {"answer": text.strip(), "score": None, "highlighted": None, "details": details}
        answer = text.strip()
        declined = is_idk(answer)
        found = None if declined or not answer else find_in_context(answer, values["context"])
        details.update(answered=not declined, found_in_context=found is not None,
                       prompt_tokens=stats.prompt_tokens, new_tokens=stats.new_tokens)
        if found is not None:
            details.update(start=found[0], end=found[1])
            shown = highlight(values["context"], found[0], found[1], "answer")
        else:
            shown = [(values["context"], None)]
        yield {"answer": answer, "score": None, "highlighted": shown, "details": details}

    def _remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """The remote engine's question-answering API picks the answer (another zoo: in its auto mode)."""
        from zoo.models.remote import as_list

        context = values["context"]
        found = as_list(remote.call("question_answering", question=values["question"].strip(), context=context,
                                    max_answer_len=values["max_answer_tokens"], max_seq_len=values["window_tokens"],
                                    doc_stride=values["doc_stride"]))
        details: dict[str, Any] = {"mode": "remote", "model": ctx.model_ref, "endpoint": remote.label}
        best = found[0] if found else None
        if best is None or not best.answer:
            return {"answer": "", "score": None, "highlighted": [(context, None)], "details": details}
        span = (best.start, best.end) if best.start is not None and best.end is not None \
            else find_in_context(best.answer, context)
        if span is not None:
            details.update(start=span[0], end=span[1])
        shown = highlight(context, span[0], span[1], "answer") if span else [(context, None)]
        return {"answer": best.answer, "score": best.score, "highlighted": shown, "details": details}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The Inference API's {"inputs": {"question", "context"}, "parameters": {max_answer_len, ...}}; mode auto."""
        if not isinstance(inputs, Mapping):
            raise InvalidInput("inputs", inputs, 'must be {"question": ..., "context": ...}')
        values = {"question": inputs.get("question"), "context": inputs.get("context"),
                  "mode": parameters.get("mode") or "auto"}
        for name, field in (("max_answer_len", "max_answer_tokens"), ("max_seq_len", "window_tokens"),
                            ("doc_stride", "doc_stride")):
            if parameters.get(name) is not None:
                values[field] = parameters[name]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """{"answer", "score", "start", "end"}; a generated answer not found in the context has no span."""
        details = outputs.get("details") or {}
        return {"answer": outputs["answer"], "score": outputs["score"], "start": details.get("start"),
                "end": details.get("end")}

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        # Extraction is one forward pass per window; generation decodes token by token.
        if values.get("mode") == "extractive":
            return 20.0
        return 20 + values.get("max_new_tokens", 48) / 20


def _window_size(requested: int, tok: Any, net: Any) -> int:
    """The requested window, capped at what the model's position embeddings and tokenizer allow."""
    caps = [requested]
    positions = getattr(net.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        caps.append(positions)
    if isinstance(tok.model_max_length, int) and 0 < tok.model_max_length < 1_000_000:
        caps.append(tok.model_max_length)  # RoBERTa: 514 positions but 512 usable tokens
    return min(caps)


def _whole_words(span: Span, window: Window, word_ids: Sequence[int | None]) -> Span:
    """Widen a span to whole words: a model may start or end inside a word split into pieces."""
    i, j = span.start_token, span.end_token
    # The score stays that of the chosen tokens; only the shown text grows to word edges.
    while i > 0 and window.offsets[i - 1] is not None and word_ids[i] is not None and word_ids[i - 1] == word_ids[i]:
        i -= 1
    while (j + 1 < len(word_ids) and window.offsets[j + 1] is not None and word_ids[j] is not None
           and word_ids[j + 1] == word_ids[j]):
        j += 1
    return Span(span.window, i, j, window.offsets[i][0], window.offsets[j][1], span.score)  # type: ignore[index]


def _trim(context: str, start: int, end: int) -> tuple[int, int]:
    """Drop whitespace a tokenizer's offsets may include at either end of the span."""
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return start, end
