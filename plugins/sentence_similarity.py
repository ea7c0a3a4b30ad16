"""Sentence similarity and semantic search: paste passages, ask a query, get the closest passages.

How pasted documents are cut into passages (the rule the tab also states):
- if the text has at least one blank line, each blank-line-separated paragraph is one
  passage (its line breaks become spaces);
- otherwise each non-empty line is one passage.
A .txt file uploaded in the tab fills the documents box, so the same rule applies.

Every passage and the query become one vector each: the model's last hidden states,
mean-pooled over the real (non-padding) tokens, then L2-normalised, so a dot product is
the cosine similarity. Models published with a sentence-transformers `1_Pooling` config
that asks for the [CLS] token (BGE, for instance) get that instead. Passages are embedded
in batches, shortest first, so each batch pads little. `return_vectors` adds those unit
vectors to details (query, then the passages in their order), so a caller can keep a
document's vectors and later embed only a new query (plugins/document_qa.py does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from plugins.kinds import FEATURE_EXTRACTION
from zoo.errors import InvalidInput
from zoo.plugin import Bool, Int, Json, Limits, ModelChoices, Plugin, RunContext, Table, Text

BATCH_SIZE = 32  # passages per forward pass: big enough to amortise, small enough for a 2-core CPU
MAX_PASSAGES = 5000
_BLANK_LINE = re.compile(r"\n[ \t]*\n")

DOCUMENTS_RULE = ("One passage per paragraph when paragraphs are separated by a blank line; "
                  "otherwise one passage per line.")


def split_passages(text: str) -> list[str]:
    """Cut pasted documents into passages: blank-line-separated paragraphs if any, else lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    blocks = _BLANK_LINE.split(text) if _BLANK_LINE.search(text) else text.split("\n")
    return [" ".join(block.split()) for block in blocks if block.strip()]


class SentenceSimilarity(Plugin):
    """Semantic search over pasted passages with a sentence-embedding model."""

    api_version = 2
    task = "sentence-similarity"
    title = "Semantic search"
    group = "text"
    description = ("Paste passages (or upload a .txt file), ask a question; the passages closest in meaning come "
                   f"first, scored by cosine similarity (-1 to 1). {DOCUMENTS_RULE} Offline it runs the packaged "
                   "all-MiniLM-L6-v2 (real weights, Apache-2.0).")
    order = 55
    openai = ("embeddings",)  # served under /v1 too (zoo/openai_api.py)
    model_kind = FEATURE_EXTRACTION
    models = ModelChoices(
        online="sentence-transformers/all-MiniLM-L6-v2",
        offline="packaged:all-minilm-l6-v2",
        tiny="tiny:feature-extraction",
        known=("sentence-transformers/all-mpnet-base-v2", "BAAI/bge-small-en-v1.5",
               "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"),
    )
    inputs = (
        Text("query", placeholder="What are you looking for?"),
        Text("documents", lines=10, info=DOCUMENTS_RULE,
             placeholder="Paste passages here: one per line, or paragraphs separated by a blank line."),
    )
    options = (Int("top_k", 5, 1, 100, label="Passages to show", info="How many of the best passages to return"),
               Bool("return_vectors", False, label="Return vectors",
                    info="Add the query's and every passage's unit vector to details (for callers that cache them)"))
    outputs = (
        Table("results", headers=("rank", "score", "passage"), label="Best passages"),
        Json("details", label="Details"),
    )
    examples = (
        {"query": "How do plants make their food?",
         "documents": "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.\n"
                      "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.\n"
                      "A balanced diet includes fruit, vegetables, grains and protein.\n"
                      "Volcanoes erupt when magma rises through cracks in the Earth's crust."},
        {"query": "Where can I see old paintings?",
         "documents": "The city museum shows European paintings from the 15th to the 18th century.\n\n"
                      "Our bakery opens at seven and sells bread, croissants and cakes.\n\n"
                      "The football stadium seats forty thousand people."},
    )
    translations = {
        "zh-CN": {
            "Semantic search": "语义搜索",
            ("Paste passages (or upload a .txt file), ask a question; the passages closest in meaning come first, "
             "scored by cosine similarity (-1 to 1). One passage per paragraph when paragraphs are separated by a "
             "blank line; otherwise one passage per line. Offline it runs the packaged all-MiniLM-L6-v2 (real "
             "weights, Apache-2.0)."):
                ("粘贴一些段落（或上传一个 .txt 文件）并提问；含义最接近的段落排在最前面，按余弦相似度（-1 到 1）"
                 "打分。若段落之间以空行分隔，则每个自然段为一个段落；否则每行为一个段落。"
                 "离线时运行随附的 all-MiniLM-L6-v2（真实权重，Apache-2.0）。"),
            "Query": "查询",
            "What are you looking for?": "你在找什么？",
            "Documents": "文档",
            ("One passage per paragraph when paragraphs are separated by a blank line; otherwise one passage per "
             "line."):
                "若段落之间以空行分隔，则每个自然段为一个段落；否则每行为一个段落。",
            "Paste passages here: one per line, or paragraphs separated by a blank line.":
                "在此粘贴段落：每行一个，或用空行分隔各段。",
            "Passages to show": "显示的段落数",
            "How many of the best passages to return": "返回最相关的几个段落",
            "Return vectors": "返回向量",
            "Add the query's and every passage's unit vector to details (for callers that cache them)":
                "把查询和每个段落的单位向量加入详细信息（供需要缓存向量的调用方使用）",
            "Best passages": "最相关的段落",
            "Details": "详细信息",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        passages = split_passages(values["documents"])
        if not passages:
            raise InvalidInput("documents", values["documents"], "must contain at least one passage",
                               "paste some text: one passage per line, or paragraphs separated by a blank line")
        if len(passages) > MAX_PASSAGES:
            raise InvalidInput("documents", f"<{len(passages)} passages>", f"must hold at most {MAX_PASSAGES} passages",
                               "search fewer passages at a time, or join short lines into paragraphs")

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        passages = split_passages(values["documents"])
        pooling, max_length = embedding_settings(model.resolved.path, bundle)
        ctx.progress(0.0, f"Embedding {len(passages)} passages")
        query = embed(bundle, [values["query"]], pooling, max_length)
        docs = embed(bundle, passages, pooling, max_length, ctx)
        # Unit vectors: the dot product is the cosine; clamp the float rounding just past ±1.
        scores = (docs @ query[0]).clamp(-1.0, 1.0)
        k = min(values["top_k"], len(passages))
        best = torch.topk(scores, k)
        ranked = [{"rank": rank, "score": round(float(score), 4), "index": int(i), "passage": passages[int(i)]}
                  for rank, (score, i) in enumerate(zip(best.values.tolist(), best.indices.tolist()), start=1)]
        details: dict[str, Any] = {
            "query": values["query"], "model": model.ref, "pooling": pooling, "max_tokens": max_length,
            "passages": len(passages), "results": ranked,
        }
        if values.get("return_vectors"):  # in passage order, so a caller can cache them and score new queries
            details["vectors"] = {"query": query[0].tolist(), "documents": docs.tolist()}
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the scores are noise. It shows the plumbing offline; "
                               f"pick {self.models.offline} or {self.models.online} for real search.")
        return {"results": [[r["rank"], r["score"], r["passage"]] for r in ranked], "details": details}

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 10 + len(split_passages(values.get("documents") or "")) / 200

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Cosine scores from a remote engine's sentence-similarity API, in batches; ranked here.

        ZOO_REMOTE_SENTENCE_SIMILARITY: the engine scores, the tab ranks.
        """
        passages = split_passages(values["documents"])
        batch = self._batch_limit()
        scores: list[float] = []
        for start in range(0, len(passages), batch):
            ctx.progress(start / len(passages), f"Scoring passages {start + 1}-{min(start + batch, len(passages))}")
            scores += [float(s) for s in remote.call("sentence_similarity", values["query"],
                                                     passages[start:start + batch])]
        order = sorted(range(len(passages)), key=lambda i: -scores[i])[:values["top_k"]]
        ranked = [{"rank": rank, "score": round(scores[i], 4), "index": i, "passage": passages[i]}
                  for rank, i in enumerate(order, start=1)]
        details = {"query": values["query"], "model": ctx.model_ref, "endpoint": remote.label,
                   "passages": len(passages), "results": ranked}
        return {"results": [[r["rank"], r["score"], r["passage"]] for r in ranked], "details": details}

    def _batch_limit(self) -> int:
        """Sentences per endpoint request: all of them must come back, and top_k caps what a run returns."""
        return int(next(f for f in self.options if f.name == "top_k").maximum)

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": {"source_sentence": query, "sentences": [...]}}: one passage per sentence."""
        sentences = inputs.get("sentences") if isinstance(inputs, dict) else None
        if not isinstance(sentences, list) or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise InvalidInput("sentences", sentences, "must be a list of non-empty texts")
        if len(sentences) > self._batch_limit():
            raise InvalidInput("sentences", f"<{len(sentences)} sentences>",
                               f"must be at most {self._batch_limit()} per request", "send them in batches")
        # One line per sentence, so split_passages gives back exactly these passages.
        documents = "\n".join(" ".join(s.split()) for s in sentences)
        return {"query": inputs.get("source_sentence"), "documents": documents, "top_k": len(sentences)}

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[score, ...]: one cosine similarity per sentence, in the order sent."""
        details = outputs["details"]
        scores = [0.0] * details["passages"]
        for r in details["results"]:
            scores[r["index"]] = r["score"]
        return scores

    def build_ui(self, ui: Any) -> bool:
        """The generated tab, with a Search button and a .txt upload beside it that fills the documents box."""
        import gradio as gr

        limits = ui.zoo.limits

        def read_upload(path: str | None) -> Iterator[str]:
            yield read_text_file(path, limits.max_text_chars) if path else gr.skip()

        def buttons() -> tuple[Any, None]:
            with gr.Row():
                upload = gr.UploadButton("Load a .txt file into Documents", file_types=[".txt"],
                                         type="filepath", size="sm", scale=1)
                search = gr.Button("Search", variant="primary", scale=2)
            upload.upload(ui.guard(read_upload), upload, ui.inputs["documents"], api_visibility="private")
            return search, None  # one quick pass: nothing to stop

        ui.build(run_buttons=buttons)
        return True


# --------------------------------------------------------------------------- embedding


def embedding_settings(path: Path, bundle: Any) -> tuple[str, int]:
    """(pooling, max tokens): from a sentence-transformers layout when present, else mean and the model's limit."""
    pooling, max_length = "mean", None
    folder = Path(path)
    if folder.is_dir():
        st_config = _read_json(folder / "sentence_bert_config.json")
        if isinstance(st_config.get("max_seq_length"), int):
            max_length = st_config["max_seq_length"]
        pooling_config = _read_json(folder / "1_Pooling" / "config.json")
        if pooling_config.get("pooling_mode_cls_token") and not pooling_config.get("pooling_mode_mean_tokens"):
            pooling = "cls"
    limits = [n for n in (max_length, getattr(bundle.tokenizer, "model_max_length", None),
                          getattr(bundle.config, "max_position_embeddings", None))
              if isinstance(n, int) and n > 0]
    return pooling, min([*limits, 512])


def embed(bundle: Any, texts: Sequence[str], pooling: str, max_length: int, ctx: RunContext | None = None) -> Any:
    """L2-normalised sentence vectors (n, dim) in input order, computed in batches of similar length."""
    import torch

    tokenizer, net = bundle.tokenizer, bundle.model
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors: list[Any] = [None] * len(texts)
    for start in range(0, len(order), BATCH_SIZE):
        if ctx is not None:
            ctx.progress(start / len(order), f"Embedding passages {start + 1}-{min(start + BATCH_SIZE, len(order))} "
                                             f"of {len(order)}")
        batch = order[start:start + BATCH_SIZE]
        encoded = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(bundle.device)
        with torch.inference_mode():
            hidden = net(**encoded).last_hidden_state.float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:  # mean over real tokens only: padding must not pull short passages towards each other
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        for row, i in enumerate(batch):
            vectors[i] = pooled[row]
    return torch.stack(vectors)


def read_text_file(path: str, max_chars: int) -> str:
    """The text of an uploaded .txt file (UTF-8, or Latin-1 as a fallback), within the text limit."""
    p = Path(path)
    raw = p.read_bytes()
    if b"\x00" in raw[:4096]:
        raise InvalidInput("documents", p.name, "is not a text file", "upload a plain .txt file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # never fails: old Windows/ISO files still read sensibly
    if len(text) > max_chars:
        raise InvalidInput("documents", p.name, f"holds {len(text)} characters, more than {max_chars}",
                           "upload a shorter file, or have the operator raise ZOO_MAX_TEXT_CHARS")
    return text


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
