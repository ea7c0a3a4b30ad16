"""Ask your documents (plugins/document_qa.py): extraction, splitting, limits, the index cache, grounding.

Fast tier: each format's text and pages, every bad-file error, the cache (a second question embeds
the question alone: counted where the embedding happens), the decline and citation rules, and the
plumbing on the tiny models. Real tier: the packaged MiniLM + SmolLM2 answer questions about our
own invented document (tests/documents.py) with the right fact and a citation of a passage that
holds it, and decline every question the document does not answer. App, CLI and browser tiers: the
endpoint /ask_documents with an uploaded PDF.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import documents as doc
from zoo.errors import InvalidInput
from zoo.runner import Zoo

from plugins import document_qa as dqa
from plugins.document_qa import DECLINE, Passage, ground


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    dqa.INDEX_CACHE.clear()
    yield
    dqa.INDEX_CACHE.clear()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """The almanac in every format."""
    return {"pdf": doc.write_pdf(tmp_path / "almanac.pdf"), "txt": doc.write_txt(tmp_path / "almanac.txt"),
            "md": doc.write_md(tmp_path / "almanac.md"), "html": doc.write_html(tmp_path / "almanac.html")}


# --------------------------------------------------------------------------- extraction and splitting


@pytest.mark.parametrize("fmt", ["pdf", "txt", "md", "html"])
def test_each_format_gives_the_documents_text(files: dict[str, Path], fmt: str) -> None:
    pages = dqa.extract_pages(str(files[fmt]))
    text = " ".join(" ".join(p.split()) for p in pages)
    for question, facts in doc.QUESTIONS:
        assert any(f in text for f in facts), (fmt, question, facts)
    assert "Ilse Marrow" in text and "8,420 jars" in text
    if fmt in ("pdf", "txt"):  # PDF pages, and form feeds in plain text, are pages
        assert len(pages) == len(doc.PAGES) == 4
    if fmt == "html":  # the parser keeps the visible text only
        assert "Zanzibar" not in text and "hidden text" not in text and "color: #333" not in text
    if fmt == "md":
        assert "**" not in text and "## " not in text and "Silver Kestrel" in text


def test_pdf_is_a_real_multi_page_pdf(files: dict[str, Path]) -> None:
    import pypdf

    reader = pypdf.PdfReader(files["pdf"])
    assert len(reader.pages) == 4 and not reader.is_encrypted
    assert "Grevin lighthouse" in reader.pages[1].extract_text()


def test_passages_are_a_few_sentences_and_keep_their_page(files: dict[str, Path]) -> None:
    passages = dqa.split_document("almanac.pdf", dqa.extract_pages(str(files["pdf"])))
    assert {p.page for p in passages} == {1, 2, 3, 4} and all(p.source == "almanac.pdf" for p in passages)
    assert 8 <= len(passages) <= 14
    for p in passages:
        assert "\n" not in p.text and len(p.text) <= dqa.PASSAGE_CHARS + 80
        assert p.text.count(". ") <= dqa.PASSAGE_SENTENCES
    for _, facts in doc.QUESTIONS:  # every fact sits on its own page's passage
        holding = [p for p in passages if doc.holds(p.text, facts)]
        assert holding and {p.page for p in holding} == {doc.fact_page(facts)}, facts
    # Plain text keeps the same pages through its form feeds.
    txt = dqa.split_document("almanac.txt", dqa.extract_pages(str(files["txt"])))
    assert sorted({p.page for p in txt}) == [1, 2, 3, 4]
    assert next(p for p in txt if "Mount Caddow" in p.text).page == 4


def test_split_page_rules() -> None:
    text = "Short Heading\n\nOne. Two. Three. Four.\n\nAnother paragraph here, and it is long enough to count."
    parts = dqa.split_page(text)
    assert parts == ["Short Heading: One. Two. Three.", "Four.",
                     "Another paragraph here, and it is long enough to count."]
    assert dqa.split_page("word-\nbreak across lines.") == ["wordbreak across lines."]
    assert dqa.split_page("  \n\n ") == []


# --------------------------------------------------------------------------- errors


def _error(zoo: Zoo, path: Path, question: str = "Who founded Port Tessaly?") -> str:
    with pytest.raises(InvalidInput) as info:
        zoo.run("document-qa", documents=[str(path)], question=question)
    return str(info.value)


def test_bad_files_get_errors_naming_the_file_and_the_fix(tiny_zoo: Zoo, tmp_path: Path) -> None:
    scanned = _error(tiny_zoo, doc.write_scanned_pdf(tmp_path / "scan.pdf"))
    assert "scan.pdf" in scanned and "no text layer" in scanned and "OCR" in scanned
    locked = _error(tiny_zoo, doc.write_encrypted_pdf(tmp_path / "locked.pdf"))
    assert "locked.pdf" in locked and "encrypted with a password" in locked and "qpdf --decrypt" in locked
    binary = _error(tiny_zoo, doc.write_binary_txt(tmp_path / "photo.txt"))
    assert "photo.txt" in binary and "binary file" in binary and "Fix:" in binary
    (tmp_path / "empty.md").write_text("  \n\n\t\n")
    empty = _error(tiny_zoo, tmp_path / "empty.md")
    assert "empty.md" in empty and "is empty" in empty
    (tmp_path / "blank.html").write_text("<html><head><script>var x = 1;</script></head><body> </body></html>")
    assert "is empty" in _error(tiny_zoo, tmp_path / "blank.html")
    renamed = tmp_path / "report.txt"
    renamed.write_bytes(doc.pdf_bytes([doc.page_stream(["A PDF under a text name."])]))
    assert "rename it to .pdf" in _error(tiny_zoo, renamed)
    fake = tmp_path / "fake.pdf"
    fake.write_text("just some words, not a PDF")
    assert "fake.pdf" in _error(tiny_zoo, fake) and "not a PDF file" in _error(tiny_zoo, fake)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog" + b"\x00" * 40)
    assert "not a readable PDF" in _error(tiny_zoo, broken)


def test_limits_name_the_value_and_the_fix(tiny_zoo: Zoo, tmp_path: Path, files: dict[str, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    long_pdf = doc.write_long_pdf(tmp_path / "long.pdf", pages=5)
    monkeypatch.setattr(dqa, "MAX_PDF_PAGES", 4)
    message = _error(tiny_zoo, long_pdf)
    assert "long.pdf" in message and "has 5 pages, more than the 4-page limit" in message and "split it" in message
    monkeypatch.setattr(dqa, "MAX_FILE_BYTES", 1024 * 1024)
    big = tmp_path / "big.txt"
    big.write_text("Words and more words. " * 60_000)
    message = _error(tiny_zoo, big)
    assert "big.txt" in message and "1.3 MB, more than the 1 MB limit" in message and "smaller files" in message
    monkeypatch.setattr(dqa, "MAX_PASSAGES", 5)
    message = _error(tiny_zoo, files["txt"])
    assert "at most 5 passages" in message and "fewer or shorter files" in message


def test_input_errors(tiny_zoo: Zoo, tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match="`question` must not be empty when no spoken question"):
        tiny_zoo.run("document-qa", documents=[str(files["txt"])], question="  ")
    with pytest.raises(InvalidInput, match="`documents` must be a file or several"):
        tiny_zoo.run("document-qa", question="Anything?")
    (tmp_path / "sheet.docx").write_bytes(b"PK\x03\x04")
    with pytest.raises(InvalidInput, match=r"must be one of \.txt, \.md, \.pdf, \.html"):
        tiny_zoo.run("document-qa", documents=[str(tmp_path / "sheet.docx")], question="Anything?")


# --------------------------------------------------------------------------- the index cache


def test_second_question_embeds_only_the_question(tiny_inline_zoo: Zoo, files: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from plugins import sentence_similarity as ss

    embedded: list[int] = []
    real_embed = ss.embed

    def counting(bundle: Any, texts: Any, *args: Any, **kw: Any) -> Any:
        embedded.append(len(texts))
        return real_embed(bundle, texts, *args, **kw)

    monkeypatch.setattr(ss, "embed", counting)
    paths = [str(files["pdf"]), str(files["md"])]
    first = tiny_inline_zoo.run("document-qa", documents=paths, question="How tall is the Grevin lighthouse?")
    index = first["details"]["index"]
    n = index["passages"]
    assert index["embedded_passages"] == n and index["cached_files"] == 0 and n >= 16
    # Every passage once; the question once a call, and twice in the first call (query and its one document).
    assert sum(embedded) == n + index["embedder_calls"] + 1 and index["embedder_calls"] == 2
    embedded.clear()

    second = tiny_inline_zoo.run("document-qa", documents=paths, question="Who founded Port Tessaly?")
    index = second["details"]["index"]
    assert index == {**index, "passages": n, "embedded_passages": 0, "cached_files": 2, "embedder_calls": 1}
    assert sum(embedded) == 2  # the question alone (as the query and as the one document of the call)

    # The cache is by content: a renamed copy hits it, one changed byte misses it.
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(files["pdf"].read_bytes())
    third = tiny_inline_zoo.run("document-qa", documents=[str(copy)], question="How high is Mount Caddow?")
    assert third["details"]["index"]["embedded_passages"] == 0
    changed = tmp_path / "changed.txt"
    changed.write_text(files["txt"].read_text() + "\nOne more sentence at the end.\n")
    fourth = tiny_inline_zoo.run("document-qa", documents=[str(changed), str(files["md"])], question="Where?")
    assert fourth["details"]["index"]["cached_files"] == 1
    assert 0 < fourth["details"]["index"]["embedded_passages"] < fourth["details"]["index"]["passages"]


def test_the_result_shows_passages_with_source_and_page(tiny_zoo: Zoo, files: dict[str, Path]) -> None:
    result = tiny_zoo.run("document-qa", documents=[str(files["pdf"]), str(files["txt"])],
                          question="How tall is the Grevin lighthouse?", passages=4)
    assert list(result) == ["answer", "sources", "details"] and isinstance(result["answer"], str) and result["answer"]
    assert [row[0] for row in result["sources"]] == [1, 2, 3, 4]
    for number, source, page, score, cited, text in result["sources"]:
        assert source in ("almanac.pdf", "almanac.txt") and 1 <= page <= 4 and isinstance(score, float)
        assert cited in ("", "✓") and text
    # The lexical half of the hybrid score finds the lighthouse passage even with random embeddings.
    assert "47 metres" in result["sources"][0][5]
    details = result["details"]
    assert set(details["models"]) >= {"embedder", "chat"} and details["retrieval_seconds"] >= 0
    assert details["attempts"] and "answer_seconds" in details


def test_weak_retrieval_declines_without_asking_the_model(tiny_zoo: Zoo, files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dqa, "MIN_COSINE", 2.0)  # nothing can be close enough
    monkeypatch.setattr(dqa, "MIN_LEXICAL", 2.0)
    result = tiny_zoo.run("document-qa", documents=[str(files["txt"])], question="What is the capital of France?")
    assert result["answer"] == DECLINE and "retrieval is weak" in result["details"]["declined"]
    assert "chat" not in result["details"].get("models", {}) and "attempts" not in result["details"]
    assert result["sources"] and not any(row[4] for row in result["sources"])  # the closest, none cited


# --------------------------------------------------------------------------- grounding and citations

CONTEXT = [Passage("a.pdf", 1, "The Grevin lighthouse is 47 metres tall. It was lit on 9 October 1871."),
           Passage("a.pdf", 2, "The keeper for 31 years was Odo Brannic, who kept a diary."),
           Passage("b.txt", 1, "The ferry takes 95 minutes to reach Brisk.")]


def test_grounding_keeps_a_supported_answer_and_fixes_its_citation() -> None:
    answer, cited, why = ground("How tall is the Grevin lighthouse?", "The lighthouse is 47 metres tall [1].", CONTEXT)
    assert (answer, cited, why) == ("The lighthouse is 47 metres tall [1].", {1}, "")
    # No citation: the passage holding the answer's content is cited.
    answer, cited, _ = ground("Who kept the lighthouse?", "It was Odo Brannic.", CONTEXT)
    assert answer == "It was Odo Brannic [2]." and cited == {2}
    # A citation of a passage without the answer goes to the one with it; preambles and tails go.
    answer, cited, _ = ground("How long is the ferry crossing to Brisk?",
                              "According to the passages, the ferry takes 95 minutes [1]. Also it is blue.", CONTEXT)
    assert answer == "The ferry takes 95 minutes [3]." and cited == {3}
    answer, _, _ = ground("Who kept the lighthouse?", "The answer to the question is: Odo Brannic", CONTEXT)
    assert answer == "Odo Brannic [2]."


@pytest.mark.parametrize("question, reply, reason", [
    ("What is the capital of France?", "The capital of France is Paris.", "Paris is not in the passages"),
    ("How tall is the lighthouse?", "The lighthouse is 120 metres tall [1].", "120 is not in the passages"),
    ("When was the dam built?", "I could not find the answer in the documents.", "the model found no answer"),
    ("How many keepers were there?", "There were many keepers of the lighthouse.", "asks for a number"),
    ("Who built the ferry?", "The ferry was built by the island people.", "asks who"),
    ("Who painted the lighthouse?", "[1] The Grevin lighthouse is 47 metres tall. It was", "repeated a passage"),
    ("How tall is the Grevin lighthouse?", "The Grevin lighthouse is tall.", "adds nothing"),
    ("What colour is the ferry?", "The ferry is bright purple and yellow.", "not in the passages"),
    ("What is the population of the island?", "Odo Brannic kept a diary [2].", "does not share the question"),
    ("What?", "", "no answer"),
    ("When was the Grevin lighthouse painted?", "It was painted on 9 October 1871 [1].", "about something else"),
    ("How long did the ferry take in 2023?", "The ferry takes 95 minutes [3].", "say nothing about 2023"),
    ("How many keepers did the lighthouse have?", "The keeper for 31 years was Odo Brannic [2].",
     "does not count keepers"),
])
def test_grounding_declines_what_the_passages_do_not_hold(question: str, reply: str, reason: str) -> None:
    answer, cited, why = ground(question, reply, CONTEXT)
    assert answer == DECLINE and cited == set() and reason in why, why


# --------------------------------------------------------------------------- CLI and app


def test_cli_runs_with_several_documents(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from zoo import cli

    assert cli.main(["--tiny", "run", "document-qa", "--documents", str(files["pdf"]), str(files["txt"]),
                     "--question", "How high is Mount Caddow?", "--passages", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["answer"], str) and out["answer"]
    assert len(out["sources"]) == 2 and {row[1] for row in out["sources"]} <= {"almanac.pdf", "almanac.txt"}
    assert out["details"]["index"]["files"] == 2


@pytest.mark.app
def test_app_endpoint_answers_an_uploaded_pdf(app_server: Any, files: dict[str, Path]) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    answer, sources, details = client.predict(documents=[handle_file(str(files["pdf"]))],
                                              question="How tall is the Grevin lighthouse?",
                                              api_name="/ask_documents")  # question_audio is optional
    assert isinstance(answer, str) and answer
    rows = sources["data"] if isinstance(sources, dict) else sources
    assert rows and all(row[1] == "almanac.pdf" and 1 <= int(row[2]) <= 4 for row in rows)
    assert details["index"]["files"] == 1 and details["index"]["passages"] >= 8
    params = {p["parameter_name"]: p for p in client.view_api(print_info=False, return_format="dict")[
        "named_endpoints"]["/ask_documents"]["parameters"]}
    assert params["question_audio"]["parameter_has_default"] and not params["documents"]["parameter_has_default"]


# --------------------------------------------------------------------------- real weights


def _judge(result: dict[str, Any], facts: tuple[str, ...]) -> tuple[bool, bool]:
    """(the answer holds the fact, a cited passage holds it too)."""
    cited = [row for row in result["sources"] if row[4]]
    return doc.holds(result["answer"], facts), any(doc.holds(row[5], facts) for row in cited)


@pytest.mark.real
@pytest.mark.slow
def test_real_answers_cite_their_passage_and_unknowns_are_declined(real_zoo: Zoo, tmp_path: Path) -> None:
    pdf = doc.write_pdf(tmp_path / "almanac.pdf")
    good, times = 0, []
    for question, facts in doc.QUESTIONS:
        started = time.perf_counter()
        result = real_zoo.run("document-qa", documents=[str(pdf)], question=question)
        times.append(time.perf_counter() - started)
        right, cited = _judge(result, facts)
        good += right and cited
        pages = {row[2] for row in result["sources"] if row[4]}
        print(f"{'ok ' if right and cited else 'BAD'} {question!r} -> {result['answer']!r} (pages {sorted(pages)}, "
              f"{times[-1]:.1f}s)")
        if right and cited:
            assert pages == {doc.fact_page(facts)}  # the cited passage is on the fact's page
    declined = 0
    for question in doc.NO_ANSWER:
        result = real_zoo.run("document-qa", documents=[str(pdf)], question=question)
        print(f"no-answer {question!r} -> {result['answer']!r} ({result['details'].get('declined')})")
        declined += result["answer"] == DECLINE
    print(f"document-qa quality: {good}/{len(doc.QUESTIONS)} right and cited, {declined}/{len(doc.NO_ANSWER)} "
          f"declined; first question {times[0]:.1f}s, the rest {sum(times[1:]) / len(times[1:]):.1f}s on average")
    assert good >= 8 and len(doc.QUESTIONS) >= 10
    assert declined == len(doc.NO_ANSWER)


@pytest.mark.real
def test_real_other_formats_and_a_spoken_question(real_zoo: Zoo, tmp_path: Path) -> None:
    from speech import synthesise

    html, md = doc.write_html(tmp_path / "almanac.html"), doc.write_md(tmp_path / "almanac.md")
    result = real_zoo.run("document-qa", documents=[str(html), str(md)], question="How tall is the Grevin lighthouse?")
    assert "47" in result["answer"] and result["details"]["index"]["files"] == 2
    assert _judge(result, ("47",)) == (True, True)
    spoken = synthesise("How many passengers does the ferry carry?", tmp_path / "question.wav")
    result = real_zoo.run("document-qa", documents=[str(md)], question_audio=str(spoken))
    print("heard:", result["details"]["heard"], "->", result["answer"])
    assert "passengers" in result["details"]["heard"].lower() and result["details"]["transcribe_seconds"] > 0
    assert _judge(result, ("240",)) == (True, True)
    assert result["details"]["index"]["embedded_passages"] == 0  # the .md file was indexed by the first question


# --------------------------------------------------------------------------- browser




def check_document_qa(z: Any, panel: Any, plugin: Any, tmp_path: Path) -> None:
    """The tab: upload a PDF, type a question, Run; the answer cites [n] and the sources table shows the
    cited passage with its file. Usable as tests/test_browser.py CHECKS["document-qa"]."""
    pdf = doc.write_pdf(tmp_path / "almanac.pdf")
    z.field("document-qa", "documents").locator("input[type=file]").first.set_input_files(str(pdf))
    z.field("document-qa", "documents").get_by_text("almanac.pdf").first.wait_for(timeout=60_000)  # slow under load
    z.fill_text("document-qa", "question", "How tall is the Grevin lighthouse?")
    z.run("document-qa", panel)
    answer = z.field("document-qa", "answer", output=True)
    sources = z.field("document-qa", "sources", output=True)
    z.wait_done(panel, lambda: "[" in z.text_value(answer) and bool(z.read_output(sources, "Table")), 180)
    shown, rows = z.text_value(answer), z.read_output(sources, "Table")
    z.screenshot("document-qa")
    assert "47" in shown and "[1]" in shown, shown
    cited = [row for row in rows if "✓" in str(row)]
    assert cited and any("almanac.pdf" in str(row) and "47 metres" in str(row) for row in cited), rows


@pytest.mark.browser
@pytest.mark.real
def test_browser_pdf_upload_question_answer_and_sources(browser: Any, real_app_server: Any, tmp_path: Path) -> None:
    from browser_helpers import PageErrors, ZooPage

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors = PageErrors()
    errors.attach(page)
    try:
        z = ZooPage(page, real_app_server.url).open()
        panel = z.open_tab("Ask your documents", "tab-document-qa")
        check_document_qa(z, panel, None, tmp_path)
    finally:
        context.close()
    assert not errors.entries, errors.entries
