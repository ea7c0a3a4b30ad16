"""Ask your documents: upload .txt, .md, .pdf or .html files, ask a question, get a cited answer.

A composite: it has no model of its own and calls three other tabs through its context.
- **embedder** (sentence-similarity, the packaged all-MiniLM-L6-v2 offline): the passages and
  the question become unit vectors (that plugin's `return_vectors` option).
- **chat** (conversational, SmolLM2-135M-Instruct offline): answers from the top passages.
- **transcriber** (automatic-speech-recognition, whisper tiny.en offline): a spoken question.

Indexing. Each file is read (pypdf for PDF, page by page; the standard library's HTML parser
for HTML, without script and style; light markdown clean-up), cut into passages of a few
sentences that never cross a page or a paragraph, and embedded. The passages and their vectors
are cached by the file's content hash (SHA-256) and the embedder model, so a second question
about the same files embeds the question alone. `details.index` says what was reused.

Answering. Passages are ranked by a hybrid score (MiniLM cosine plus lexical overlap with the
question's terms, weighted by rarity), the best few go to the chat model as a short numbered
list, decoded greedily, and the reply is checked before it is shown. A small model invents
readily, so the answer is replaced by the fixed decline sentence `DECLINE` when:
- retrieval is weak (no passage is close to the question in meaning or wording);
- the model says it cannot answer;
- the answer's key content (numbers, names, new words) is not in the retrieved passages, or
  the answer does not have the kind of content the question asks for (a number for "how many",
  "when"; a name for "who"), or the passage holding it does not share the question's terms, or
  the sentence holding it shares none of them, or a number the question names (a year) is not
  in that passage, or a "how many X" answer's number does not count X there.
The first try shows the model the best few passages; when its answer fails the check, a second
try shows it the best passage alone, and only then does it decline. The answer cites the
prompt's passage numbers, like [2] (the rows of the sources table); when the model cites none,
or one that does not hold the answer's content, the citation goes to the passage that does.
The same passage text in two files (a PDF and its .txt export) is shown to the model once.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator, Sequence

from zoo.errors import InvalidInput
from zoo.plugin import Audio, File, Int, Json, Limits, Plugin, RunContext, Table, Text

FILE_TYPES = (".txt", ".md", ".pdf", ".html", ".htm")
MAX_FILE_BYTES = 20 * 1024 * 1024  # per file
MAX_PDF_PAGES = 300  # per PDF
MAX_PASSAGES = 3000  # over all the files of one question
PASSAGE_SENTENCES = 3  # a passage holds at most this many sentences...
PASSAGE_CHARS = 500  # ...and about this many characters
CACHE_DOCUMENTS = 64  # files whose passages and vectors stay cached (least recently used go first)
SPLIT_VERSION = 1  # part of the cache key: a change to extraction or splitting invalidates old entries

DECLINE = "I could not find the answer in the documents."

SYSTEM_PROMPT = ("You answer questions using only the numbered passages. Reply with one short sentence that "
                 "cites the passage number in brackets, like [2]. If the passages do not answer the question, "
                 f"reply exactly: {DECLINE}")

PROMPT = "Passages:\n{passages}\n\nQuestion: {question}"

# Retrieval and grounding thresholds (MiniLM cosine, hybrid score, coverage fractions).
MIN_COSINE = 0.25  # the best passage must be at least this close in meaning...
MIN_LEXICAL = 0.34  # ...or share this fraction of the question's (rarity-weighted) terms
LEXICAL_WEIGHT = 0.35  # hybrid = cosine + LEXICAL_WEIGHT * lexical
MIN_SUPPORT_COVERAGE = 0.34  # the passage holding the answer must share this much of the question's terms
MIN_WORD_SUPPORT = 0.6  # an answer without numbers or names: this share of its new words must be in the passages

_STOPWORDS = frozenset("""
a an the and or but if then of in on at to for from by with without about into over under after before
is are was were be been being am do does did done doing has have had having will would shall should can
could may might must what which who whom whose when where why how much many long tall high old far
this that these those there here it its it's they them their he him his she her we us our you your i me my
as so than too very not no yes also just only any some each every all both few more most other such
own same up down out off again further once named called name please tell say said according document
documents passage passages text answer question one
""".split())
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’-][^\W\d_]+)*")
_CITE = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_DECLINE_HINTS = ("could not find", "cannot find", "can't find", "couldn't find", "not mentioned", "no information",
                  "not provided", "does not say", "doesn't say", "do not know", "don't know", "not stated",
                  "no mention", "not specified", "unable to", "does not contain", "do not contain", "not given")
_NUMBER_QUESTION = re.compile(r"^\s*(how (many|much|tall|high|long|old|far|deep|wide|big|large|heavy|often)|"
                              r"(in |during )?(what|which) (year|date|day|month|decade|century|age)|when)\b", re.I)
_PREAMBLE = re.compile(r"^(?:(?:the|this) (?:passage|passages|text|document)s? (?:mentions|says|states|shows|tells us) "
                       r"(?:that )?|according to (?:the )?(?:passage|passages|text|document)s?(?: \[\d+\])?,? ?|"
                       r"(?:the )?answer(?: to (?:this|the|your) question)?(?: is)?: ?)+", re.I)
_HOW_MANY = re.compile(r"\s*how many ([^\W\d_]+)", re.I)
_NAME_QUESTION = re.compile(r"^\s*(who|whom|whose)\b", re.I)


# --------------------------------------------------------------------------- passages


@dataclass(frozen=True)
class Passage:
    """A few sentences of one page of one file."""

    source: str  # the file's name
    page: int  # 1-based; text formats have one page unless form feeds split them
    text: str


def file_error(path: str, problem: str, fix: str) -> InvalidInput:
    """An error about one uploaded file, naming it."""
    return InvalidInput("documents", Path(path).name, problem, fix)


def extract_pages(path: str) -> list[str]:
    """The text of one file, one string per page, checked against the limits (raises InvalidInput)."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise file_error(path, f"is {size / 2**20:.1f} MB, more than the {MAX_FILE_BYTES // 2**20} MB limit per file",
                         "split it into smaller files, or upload only the part you need")
    raw = p.read_bytes()
    suffix = p.suffix.lower()
    if suffix == ".pdf":
        pages = _pdf_pages(path, raw)
    else:
        text = _decode_text(path, raw)
        if suffix in (".html", ".htm"):
            text = html_to_text(text)
        elif suffix == ".md":
            text = markdown_to_text(text)
        pages = text.split("\f")  # a form feed is a page break in plain text
    if not any(page.strip() for page in pages):
        raise file_error(path, "is empty: it holds no text", "upload a file with some text in it")
    return pages


def _decode_text(path: str, raw: bytes) -> str:
    """UTF-8 (or Latin-1) text, refusing binary files whatever their name says."""
    if raw.startswith(b"%PDF-"):
        raise file_error(path, "is a PDF file with a text file's name", "rename it to .pdf and upload it again")
    head = raw[:8192]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or (head and controls / len(head) > 0.05):
        raise file_error(path, "is a binary file, not text",
                         f"upload the document itself as {', '.join(FILE_TYPES)} (export or save it as text)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _pdf_pages(path: str, raw: bytes) -> list[str]:
    import io

    import pypdf
    from pypdf.errors import PdfReadError

    if not raw.lstrip()[:5] == b"%PDF-":
        raise file_error(path, "is not a PDF file (it has no %PDF header)",
                         "upload the real PDF, or give the file the extension of what it is")
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:  # a PDF locked only by an owner password opens with an empty user password
                opened = reader.decrypt("")
            except Exception:  # noqa: BLE001  (pypdf raises DependencyError for AES without a crypto library)
                opened = 0
            if not opened:
                raise file_error(path, "is encrypted with a password",
                                 "remove the password (for example `qpdf --decrypt --password=... in.pdf out.pdf`) "
                                 "and upload the unlocked copy")
        count = len(reader.pages)
        if count > MAX_PDF_PAGES:
            raise file_error(path, f"has {count} pages, more than the {MAX_PDF_PAGES}-page limit per PDF",
                             f"split it into PDFs of at most {MAX_PDF_PAGES} pages (for example with qpdf --pages)")
        pages = [pdf_paragraphs(page.extract_text() or "") for page in reader.pages]
    except InvalidInput:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise file_error(path, f"is not a readable PDF ({type(exc).__name__}: {exc})",
                         "open and save it again with a PDF viewer, or upload a text version") from None
    if count and not any(page.strip() for page in pages):
        raise file_error(path, f"has {count} page(s) but no text layer (a scanned PDF?)",
                         "run OCR on it first (for example `ocrmypdf in.pdf out.pdf`), or upload a text version")
    return pages


def pdf_paragraphs(text: str) -> str:
    """A PDF page's lines with blank lines where paragraphs end: a PDF's text has line breaks only.

    A line that ends a sentence and is clearly shorter than the page's full lines ends a
    paragraph; a short line with no closing punctuation (a heading) stands alone.
    """
    lines = [line.strip() for line in text.splitlines()]
    full = max((len(line) for line in lines), default=0)
    out: list[str] = []
    for line in lines:
        if not line:
            out.append("")
            continue
        out.append(line)
        short = len(line) < 0.75 * full
        if short and (line.endswith((".", "!", "?", ":", '."', ".)")) or len(line) < 60 and line[-1].isalnum()):
            out.append("")
    return "\n".join(out)


class _HTMLText(HTMLParser):
    """Visible text of an HTML page: no script/style/head, a paragraph break at each block element."""

    SKIP = {"script", "style", "noscript", "template", "head", "title", "svg"}
    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
              "article", "header", "footer", "blockquote", "pre", "hr", "dd", "dt", "main", "nav", "aside"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, a blank line between blocks."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def markdown_to_text(md: str) -> str:
    """Markdown with its markup taken off: headings, emphasis, links, images, code fences, list marks."""
    text = re.sub(r"^```.*$", "", md, flags=re.M)
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s*(.*?)\s*#*\s*$", r"\1\n", text, flags=re.M)  # a heading is its own block
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", text, flags=re.M)
    text = re.sub(r"^\s*>\s?", "", text, flags=re.M)
    text = re.sub(r"(\*\*|__|\*|`)(\S.*?\S|\S)\1", r"\2", text)
    return text


def split_page(text: str) -> list[str]:
    """One page's passages: paragraphs cut into groups of a few sentences; a short heading joins what follows."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # PDF text often breaks lines inside a paragraph and hyphenates words across them.
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n[ \t]*\n", text)]
    passages: list[str] = []
    heading = ""
    for para in filter(None, paragraphs):
        if len(para) < 60 and not para.endswith((".", "!", "?", ":")):  # a heading or a caption
            heading = f"{heading} {para}".strip() if heading else para
            continue
        sentences = [s.strip() for s in _SENTENCE_END.split(para) if s.strip()]
        chunk: list[str] = []
        for sentence in sentences:
            if chunk and (len(chunk) >= PASSAGE_SENTENCES or sum(map(len, chunk)) + len(sentence) > PASSAGE_CHARS):
                passages.append(_with_heading(heading, " ".join(chunk)))
                chunk, heading = [], ""  # the heading leads the paragraph's first passage only
            chunk.append(sentence[:4 * PASSAGE_CHARS])  # one endless "sentence" must not make a giant passage
        if chunk:
            passages.append(_with_heading(heading, " ".join(chunk)))
        heading = ""
    if heading:
        passages.append(heading)
    return passages


def _with_heading(heading: str, text: str) -> str:
    return f"{heading}: {text}" if heading else text


def split_document(name: str, pages: Sequence[str]) -> list[Passage]:
    """Every passage of one file, with its page number."""
    return [Passage(name, number, text) for number, page in enumerate(pages, start=1) for text in split_page(page)]


# --------------------------------------------------------------------------- lexical scoring


def _stem(word: str) -> str:
    """A crude stem: lower case, common endings off, digits without separators ("8,420" -> "8420")."""
    w = word.lower().replace("’", "'")
    if w[0].isdigit():
        return re.sub(r"[.,]", "", w)
    if w.endswith("'s"):
        w = w[:-2]
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("ses", "xes", "zes", "ches", "shes")) and len(w) > 4:
        w = w[:-2]
    elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
        w = w[:-1]
    for suffix in ("ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    return w[:7]


def terms(text: str) -> list[str]:
    """Content-word stems of a text (stopwords out), in order, repeats kept."""
    return [_stem(w) for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]


def _idf(stems: set[str], passages: Sequence[set[str]]) -> dict[str, float]:
    n = len(passages)
    return {t: math.log(1 + (n + 1) / (1 + sum(t in p for p in passages))) for t in stems}


# --------------------------------------------------------------------------- the index cache


class _Cache:
    """(embedder model, content hash) -> (passages, vectors), least recently used out first; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[tuple[str, str], tuple[list[Passage], list[list[float]]]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[list[Passage], list[list[float]]] | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: tuple[str, str], value: tuple[list[Passage], list[list[float]]]) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


INDEX_CACHE = _Cache(CACHE_DOCUMENTS)


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))


# --------------------------------------------------------------------------- the plugin


class DocumentQA(Plugin):
    """Retrieval-augmented answers from uploaded documents, with citations and a decline when unsure."""

    api_version = 2
    task = "document-qa"
    title = "Ask your documents"
    group = "text"
    description = ("Upload .txt, .md, .pdf or .html files and ask a question (typed, or spoken into the microphone). "
                   "The files are cut into passages and embedded (cached by content, so the next question is fast); "
                   "the closest passages go to the chat model, which answers citing them like [2]. The cited "
                   "passages are listed with file and page. When the passages do not hold the answer, it says so.")
    order = 57
    models = None
    api_name = "ask_documents"
    uses = {"embedder": "sentence-similarity", "chat": "conversational", "transcriber": "automatic-speech-recognition"}
    inputs = (
        File("documents", multiple=True, file_types=FILE_TYPES, label="Documents",
             info=f"One or more {', '.join(FILE_TYPES[:4])} files"),
        Text("question", lines=2, required=False, placeholder="What do you want to know from these documents?"),
        Audio("question_audio", None, required=False, sources=("microphone", "upload"), label="Or ask aloud",
              info="Used when the question box is empty"),
    )
    options = (
        Int("passages", 3, 1, 8, label="Passages for the answer", info="How many of the best passages the model reads"),
        Int("max_new_tokens", 48, 8, 256, limit="max_new_tokens", info="Upper bound on the answer's tokens"),
    )
    outputs = (
        Text("answer", label="Answer", lines=4),
        Table("sources", headers=("passage", "source", "page", "score", "cited", "text"), label="Passages used"),
        Json("details", label="Details"),
    )
    examples = ()  # an upload is needed: build_ui offers SAMPLE_DOCUMENT with SAMPLE_QUESTIONS
    translations = {
        "zh-CN": {
            "Ask your documents": "文档问答",
            ("Upload .txt, .md, .pdf or .html files and ask a question (typed, or spoken into the microphone). The "
             "files are cut into passages and embedded (cached by content, so the next question is fast); the "
             "closest passages go to the chat model, which answers citing them like [2]. The cited passages are "
             "listed with file and page. When the passages do not hold the answer, it says so."):
                ("上传 .txt、.md、.pdf 或 .html 文件并提问（输入文字，或对着麦克风说）。"
                 "文件会被切分成段落并做嵌入（按内容缓存，所以下一个问题会很快）；最接近的段落交给聊天模型，"
                 "由它作答并以 [2] 这样的形式引用。被引用的段落会连同文件和页码一起列出。如果这些段落中没有答案，"
                 "它会如实说明。"),
            "Documents": "文档",
            "One or more .txt, .md, .pdf, .html files": "一个或多个 .txt、.md、.pdf、.html 文件",
            "Question": "问题",
            "What do you want to know from these documents?": "你想从这些文档中了解什么？",
            "Or ask aloud": "或者直接说出来",
            "Used when the question box is empty": "问题框为空时使用",
            "Passages for the answer": "用于回答的段落数",
            "How many of the best passages the model reads": "模型阅读的最相关段落个数",
            "Upper bound on the answer's tokens": "回答的 token 数上限",
            "Answer": "回答",
            "Passages used": "使用的段落",
            "Details": "详细信息",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        audio = values.get("question_audio")
        if not values["question"].strip() and not audio:
            raise InvalidInput("question", values["question"], "must not be empty when no spoken question is given",
                               "type a question, or record or upload one")

    # ------------------------------------------------------------------ indexing
    def index(self, paths: Sequence[str], question: str, values: dict[str, Any], ctx: RunContext
              ) -> tuple[list[Passage], list[list[float]], list[float], dict[str, Any]]:
        """(passages, their vectors, the question's vector, what was reused): cached files are not re-embedded.

        The question is embedded first, alone: that call also says which model the embedder part runs,
        and the cache is keyed by that model and each file's content hash.
        """
        started = time.perf_counter()
        digests = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in paths]
        question_vector, _, calls = self._embed(question, [], ctx)
        embedder = ctx.models_used.get("embedder", values.get("embedder_model") or "")
        docs: list[tuple[list[Passage], list[list[float]] | None]] = []
        total, extract_seconds, hits = 0, 0.0, 0
        for path, digest in zip(paths, digests):
            cached = INDEX_CACHE.get((embedder, f"{SPLIT_VERSION}:{digest}"))
            hits += cached is not None
            if cached is None:
                t = time.perf_counter()
                ctx.progress(None, f"Reading {_display_name(path)}")
                docs.append((split_document(_display_name(path), extract_pages(path)), None))
                extract_seconds += time.perf_counter() - t
            else:
                docs.append(cached)
            total += len(docs[-1][0])
            if total > MAX_PASSAGES:
                raise InvalidInput("documents", f"<{len(paths)} files, {total}+ passages>",
                                   f"must make at most {MAX_PASSAGES} passages in all",
                                   "ask about fewer or shorter files at a time")
        t = time.perf_counter()
        new = [p for passages, vectors in docs if vectors is None for p in passages]
        if new:
            _, new_vectors, more = self._embed(question, [p.text for p in new], ctx)
            calls += more
            for position, ((passages, vectors), digest) in enumerate(zip(docs, digests)):
                if vectors is None:
                    vectors, new_vectors = new_vectors[:len(passages)], new_vectors[len(passages):]
                    docs[position] = (passages, vectors)
                    INDEX_CACHE.put((embedder, f"{SPLIT_VERSION}:{digest}"), (passages, vectors))
        all_passages = [p for passages, _ in docs for p in passages]
        all_vectors = [v for _, vectors in docs for v in vectors or []]
        info = {"files": len(paths), "passages": len(all_passages),
                "cached_files": hits,
                "embedded_passages": len(new), "embedder_calls": calls, "embedder": embedder,
                "extract_seconds": round(extract_seconds, 3), "embed_seconds": round(time.perf_counter() - t, 3),
                "seconds": round(time.perf_counter() - started, 3)}
        return all_passages, all_vectors, question_vector, info

    def _embed(self, question: str, texts: list[str], ctx: RunContext) -> tuple[list[float], list[list[float]], int]:
        """The question's vector and the texts' vectors, through the embedder part in batches under its text limit."""
        batches: list[list[str]] = [[]]
        size = 0
        for text in texts:
            if batches[-1] and size + len(text) + 1 > ctx.limits.max_text_chars:
                batches.append([])
                size = 0
            batches[-1].append(text)
            size += len(text) + 1
        question_vector: list[float] | None = None
        vectors: list[list[float]] = []
        calls = 0
        for number, batch in enumerate(batches, start=1):
            if not batch and question_vector is not None:
                continue
            ctx.progress(None, f"Embedding passages (batch {number} of {len(batches)})" if batch else
                         "Embedding the question")
            # One passage per line: no blank line, so the embedder keeps each line as one passage.
            result = ctx.run("embedder", query=question, documents="\n".join(batch) if batch else question,
                             top_k=1, return_vectors=True)
            calls += 1
            got = result["details"].get("vectors")
            if not got:
                raise InvalidInput("embedder_model", ctx.models_used.get("embedder", ""),
                                   "returned no vectors (its engine does not support return_vectors)",
                                   "pick a local sentence-similarity model for the embedder")
            if batch and len(got["documents"]) != len(batch):
                raise InvalidInput("documents", f"<{len(batch)} passages>",
                                   f"came back from the embedder as {len(got['documents'])} passages",
                                   "report this: a passage held a line break or only unprintable characters")
            question_vector = got["query"]
            if batch:
                vectors += got["documents"]
        assert question_vector is not None
        return question_vector, vectors, calls

    # ------------------------------------------------------------------ answering
    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        started = time.perf_counter()
        details: dict[str, Any] = {}
        question = values["question"].strip()
        if not question:
            heard = ctx.run("transcriber", audio=values["question_audio"], timestamps=False)
            question = " ".join(heard["text"].split())
            details["heard"] = question
            details["transcribe_seconds"] = round(time.perf_counter() - started, 3)
            if not question:
                raise InvalidInput("question_audio", Path(values["question_audio"]).name,
                                   "holds no speech I could hear", "speak closer to the microphone, or type the question")
        details["question"] = question
        passages, vectors, qvec, details["index"] = self.index(values["documents"], question, values, ctx)
        ranked = rank(question, passages, vectors, qvec)
        top: list[tuple[int, float, float, float]] = []
        for item in ranked:  # the same text in two files (a .pdf and its .txt) is read once
            if len(top) == values["passages"]:
                break
            if all(passages[item[0]].text != passages[kept[0]].text for kept in top):
                top.append(item)
        retrieved = time.perf_counter()
        details["retrieval_seconds"] = round(retrieved - started, 3)
        context = [passages[i] for i, _, _, _ in top]
        best_cosine = max(c for _, _, c, _ in top)
        best_lexical = max(lex for _, _, _, lex in top)
        details["retrieved"] = [{"passage": n, "source": passages[i].source, "page": passages[i].page,
                                 "score": round(s, 4), "cosine": round(c, 4), "lexical": round(lex, 4)}
                                for n, (i, s, c, lex) in enumerate(top, start=1)]

        def table(cited: set[int]) -> list[list[Any]]:
            return [[n, passages[i].source, passages[i].page, round(s, 3), "✓" if n in cited else "",
                     passages[i].text] for n, (i, s, _, _) in enumerate(top, start=1)]

        if best_cosine < MIN_COSINE and best_lexical < MIN_LEXICAL:
            details.update(declined="retrieval is weak: no passage is close to the question",
                           total_seconds=round(time.perf_counter() - started, 3))
            yield {"answer": DECLINE, "sources": table(set()), "details": details}
            return
        # A first try with the best few passages; if its answer fails the grounding check, one more with
        # the best passage alone (a small model mixes passages up, and one passage leaves less to mix).
        attempts = [context] if len(context) == 1 else [context, context[:1]]
        details["attempts"] = []
        for number, shown in enumerate(attempts, start=1):
            numbered = "\n".join(f"[{n}] {p.text}" for n, p in enumerate(shown, start=1))
            message = PROMPT.format(passages=numbered, question=question)
            reply = ""
            for out in ctx.stream("chat", message=message, history=[], system_prompt=SYSTEM_PROMPT,
                                  temperature=0.0, max_new_tokens=values["max_new_tokens"], repetition_penalty=1.0):
                reply = out["reply"]
                yield {"answer": reply, "sources": table(set()), "details": details}
            answer, cited, why = ground(question, reply, shown)
            details["attempts"].append({"passages": len(shown), "model_reply": reply, "declined": why})
            if not why:
                break
        details.update(answer_seconds=round(time.perf_counter() - retrieved, 3),
                       total_seconds=round(time.perf_counter() - started, 3), models=dict(ctx.models_used))
        if why:
            details["declined"] = why
        details["cited"] = [{"passage": n, "source": context[n - 1].source, "page": context[n - 1].page}
                            for n in sorted(cited)]
        yield {"answer": answer, "sources": table(cited), "details": details}

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 60.0

    def build_ui(self, ui: Any) -> bool:
        """The generated tab without its generated example (a sample recording with no document would fail),
        and an API note that uploads the files with handle_file."""
        import gradio as gr

        ui.header()
        with gr.Row():
            with gr.Column(scale=1):
                run_btn, stop_btn = ui.inputs_column()
            with gr.Column(scale=1):
                ui.outputs_column()
        ui.wire(run_btn, stop_btn)
        sample = sample_document()
        ui.examples([{"documents": [sample], "question": q} for q in SAMPLE_QUESTIONS],
                    names=["documents", "question"])
        with gr.Accordion("Use via API", open=False):
            gr.Markdown(f"""```python
from gradio_client import Client, handle_file

client = Client({ui.api_url()!r})
answer, sources, details = client.predict(
    documents=[handle_file("report.pdf"), handle_file("notes.txt")],
    question="What does the report say about the budget?",
    # or question="" and question_audio=handle_file("question.wav")
    api_name="/{self.endpoint()}",
)
print(answer)
```
The same from the command line: `python -m zoo run {self.task} --documents report.pdf notes.txt --question "..."`.""")
        return True


#: The tab's example document: a made-up club's handbook, so the answers can only come from the file.
SAMPLE_DOCUMENT = """# The Larkfield Chess Club handbook

## Meetings
The Larkfield Chess Club meets every Thursday at 7 pm in the back room of the Copper Kettle cafe.
The club was founded in 1987 by Agnes Morrow, a retired railway engineer.

## Membership
Membership costs 35 pounds a year, or 15 pounds for students.
New members may attend three evenings for free before they join.

## Tournaments
The spring tournament is held on the second Saturday of April.
Its winner receives the Morrow Cup, a silver cup made in 1990.
"""
SAMPLE_QUESTIONS = ("When does the club meet?", "How much does membership cost for students?",
                    "Who founded the club?", "What does the club serve for dinner?")


def sample_document(folder: Path | None = None) -> str:
    """The example document as a .md file, written once (the repo holds no sample files)."""
    from zoo.ui import sample_dir

    path = (folder or sample_dir()) / "larkfield-chess-club.md"
    if not path.is_file() or path.read_text(encoding="utf-8") != SAMPLE_DOCUMENT:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(SAMPLE_DOCUMENT, encoding="utf-8")
        tmp.replace(path)
    return str(path)


def _display_name(path: str) -> str:
    """An upload's own name: gradio keeps it as the last part of the path."""
    return Path(path).name


def rank(question: str, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], qvec: Sequence[float]
         ) -> list[tuple[int, float, float, float]]:
    """(index, hybrid score, cosine, lexical) of every passage, best first."""
    q = set(terms(question))
    sets = [set(terms(p.text)) for p in passages]
    idf = _idf(q, sets)
    weight = sum(idf.values()) or 1.0
    scored = []
    for i, (p_terms, vector) in enumerate(zip(sets, vectors)):
        cosine = max(-1.0, min(1.0, _dot(qvec, vector)))
        lexical = sum(idf[t] for t in q if t in p_terms) / weight
        scored.append((i, cosine + LEXICAL_WEIGHT * lexical, cosine, lexical))
    return sorted(scored, key=lambda s: -s[1])


def _stems(text: str) -> set[str]:
    """Every word's stem, stopwords included (numbers and names are looked up among these)."""
    return {_stem(w) for w in _WORD.findall(text)}


def coverage(question: str, passage: str) -> float:
    """The share of the question's content terms that a passage holds."""
    q = set(terms(question))
    return len(q & set(terms(passage))) / len(q) if q else 0.0


def first_sentence(text: str) -> str:
    """The reply's first sentence (with the citations right after it); a very short one takes the next along."""
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text)
    out = parts[0]
    for extra in parts[1:]:
        if len(_WORD.findall(_CITE.sub("", out))) >= 4:
            break
        out = f"{out} {extra}"
    return out.strip()


def ground(question: str, reply: str, context: Sequence[Passage]) -> tuple[str, set[int], str]:
    """(answer shown, passage numbers it cites, why it was declined or ""): the grounding check of the module doc."""
    sentence = first_sentence(reply)
    if not sentence or any(h in reply.lower() for h in _DECLINE_HINTS):
        return DECLINE, set(), "the model found no answer" if sentence else "the model gave no answer"
    for n, passage in enumerate(context, start=1):  # the model read a passage back instead of answering
        if f"[{n}] {passage.text[:40]}" in " ".join(reply.split()):
            return DECLINE, set(), "the model repeated a passage instead of answering"
    bare = _PREAMBLE.sub("", " ".join(_CITE.sub("", sentence).split()))
    bare = bare[:1].upper() + bare[1:]
    q_stems = set(terms(question))
    first_word = (_WORD.findall(bare) or [""])[0]
    words = [w for w in _WORD.findall(bare) if w.lower() not in _STOPWORDS]
    new = [w for w in words if _stem(w) not in q_stems]
    numbers = {_stem(w) for w in new if w[0].isdigit()}
    names = {_stem(w) for w in new if w[0].isupper() and w != first_word}
    plain = {_stem(w) for w in new} - numbers - names
    if not new:
        return DECLINE, set(), "the answer adds nothing to the question"
    passage_terms = [_stems(p.text) for p in context]
    union = set().union(*passage_terms)
    missing = [w for w in dict.fromkeys(new) if _stem(w) in (numbers | names) - union]
    if missing:
        return DECLINE, set(), f"the answer's {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the passages"
    if _NUMBER_QUESTION.search(question) and not numbers:
        return DECLINE, set(), "the question asks for a number or a date and the answer has none from the passages"
    if _NAME_QUESTION.search(question) and not names:
        return DECLINE, set(), "the question asks who and the answer names no one from the passages"
    if not (numbers | names) and plain and len(plain & union) / len(plain) < MIN_WORD_SUPPORT:
        return DECLINE, set(), "most of the answer's words are not in the passages"
    key = (numbers | names) or plain

    def support(n: int) -> float:
        return len(key & passage_terms[n - 1]) / len(key)

    valid = {int(c) for c in _CITE.findall(sentence) if 1 <= int(c) <= len(context)}
    holding = {n for n in valid if support(n) > 0}
    if not holding:  # no citation, or one to a passage without the answer: cite the one that holds it
        best = max(range(1, len(context) + 1), key=lambda n: (support(n), -n))
        holding = {best} if support(best) > 0 else set()
    if not holding:
        return DECLINE, set(), "no single passage holds the answer's content"
    if max(coverage(question, context[n - 1].text) for n in holding) < MIN_SUPPORT_COVERAGE:
        return DECLINE, set(), "the passage holding the answer does not share the question's terms"
    held = [context[n - 1].text for n in holding]
    # The sentence that holds the answer must be about the question, not only its passage.
    sentences = [x for text in held for x in _SENTENCE_END.split(text) if key & _stems(x)]
    if not any(set(terms(x)) & q_stems for x in sentences):
        return DECLINE, set(), "the sentence holding the answer is about something else"
    # A number the question names (a year, say) must be in the passage: the document may cover only another.
    asked = [w for w in _WORD.findall(question) if w[0].isdigit() and _stem(w) not in _stems(" ".join(held))]
    if asked:
        return DECLINE, set(), f"the passages say nothing about {', '.join(asked)}"
    # "How many X": the answer's number must count X in the passage ("312 breeding pairs"), not something else.
    counted = _HOW_MANY.match(question)
    if counted and numbers:
        noun = _stem(counted.group(1))
        words = [_stem(w) for text in held for w in _WORD.findall(text)]
        if not any(w in numbers and noun in words[i + 1:i + 4] for i, w in enumerate(words)):
            return DECLINE, set(), f"the answer's number does not count {counted.group(1)}"
    text = re.sub(r"\s+([.,;:!?])", r"\1", bare).rstrip(" ,;:")
    if not text.endswith((".", "!", "?")):
        text += "."
    return f"{text[:-1]} {' '.join(f'[{n}]' for n in sorted(holding))}{text[-1]}", holding, ""
