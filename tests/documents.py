"""A document of our own for the document-qa tests, with facts no model can know, in four formats.

"The Velmora Almanac" describes an invented island: its names, numbers and dates exist nowhere
else, so a right answer can only come from reading the document. `write_pdf` renders it as a real
multi-page PDF (hand-written PDF syntax: a Helvetica text layer drawn with BT/Tf/Td/Tj operators,
an xref table with true offsets), and `write_txt`, `write_md`, `write_html` as the other formats.
The bad files of the error tests (a scanned PDF with no text layer, an encrypted one, a binary file
renamed .txt) are made here too.

QUESTIONS pair each question with the facts a right answer holds (any one of the spellings) and
NO_ANSWER lists questions the document does not answer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

TITLE = "The Velmora Almanac"

# Pages of (heading, paragraphs). Each paragraph holds a few facts in two or three sentences.
PAGES: list[tuple[str, list[str]]] = [
    ("History of Velmora", [
        "Velmora is a small island in the Corrin Sea, reached by ferry from the mainland. "
        "Its first settlement, Port Tessaly, was founded in 1683 by the navigator Ilse Marrow.",
        "In 1794 the islanders built the Orrel Dam to store rain water for the dry summers. "
        "The dam holds 2.6 million cubic metres of water and still supplies the whole island.",
        "The island council has met in the Copperleaf Hall since 1902. "
        "Its current chair is Tobias Wenlock, who was elected on 3 May 2018.",
    ]),
    ("The Grevin Lighthouse and the Economy", [
        "The Grevin lighthouse stands on the northern cape and is 47 metres tall. "
        "It was lit for the first time on 9 October 1871.",
        "The lighthouse keeper for 31 years was Odo Brannic, who kept a diary of every storm. "
        "His diary is now shown in the harbour museum.",
        "The main export of the island is saltwort honey, made by bees on the coastal meadows. "
        "In 2019 the island sold 8,420 jars of saltwort honey to shops on the mainland.",
    ]),
    ("Festivals and Travel", [
        "The Lantern Regatta is a sailing race held every year on the third Sunday of August. "
        "In 2022 the regatta was won by the boat Silver Kestrel, skippered by Maren Oduya.",
        "The ferry MV Halcyon Drift sails from Port Tessaly to the mainland town of Brisk. "
        "The crossing takes 95 minutes and the ferry carries up to 240 passengers.",
        "Visitors can hire bicycles at the harbour for 12 florins a day. "
        "Cars are not allowed on the coastal road between April and September.",
    ]),
    ("Nature", [
        "The rare ember-crested tern nests only on the cliffs of Hollow Point. "
        "A survey in 2021 counted 312 breeding pairs of the ember-crested tern.",
        "The highest hill of Velmora is Mount Caddow, which rises to 618 metres. "
        "A footpath of 7 kilometres leads from the harbour to its summit.",
    ]),
]

# (question, facts: the answer must hold one of these spellings, case-insensitive)
QUESTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Who founded Port Tessaly?", ("Ilse Marrow", "Marrow")),
    ("In what year was Port Tessaly founded?", ("1683",)),
    ("How tall is the Grevin lighthouse?", ("47",)),
    ("When was the Grevin lighthouse lit for the first time?", ("1871",)),
    ("Who was the keeper of the Grevin lighthouse?", ("Odo Brannic", "Brannic")),
    ("How many jars of saltwort honey did the island sell in 2019?", ("8,420", "8420")),
    ("Which boat won the Lantern Regatta in 2022?", ("Silver Kestrel",)),
    ("How long does the ferry crossing to Brisk take?", ("95",)),
    ("How many breeding pairs of the ember-crested tern were counted in 2021?", ("312",)),
    ("How high is Mount Caddow?", ("618",)),
    ("Who is the chair of the island council?", ("Tobias Wenlock", "Wenlock")),
    ("How much does it cost to hire a bicycle at the harbour?", ("12",)),
]

NO_ANSWER: list[str] = [
    "What is the capital of France?",
    "Who wrote the novel Pride and Prejudice?",
    # About the island, but the almanac does not say: the passages are close, the answer is not there.
    "What is the population of Velmora?",
    "Which airline flies to Velmora?",
    "When was the harbour museum opened?",
    "What is the name of the mayor of Brisk?",
    "Who won the Lantern Regatta in 2023?",
    "How many bees live on the island?",
    "When did Ilse Marrow die?",
    "Who designed the Grevin lighthouse?",
]


def paragraphs_of(page: int) -> list[str]:
    """A page's heading and paragraphs, in order."""
    heading, paras = PAGES[page]
    return [heading, *paras]


def holds(text: str, facts: Sequence[str]) -> bool:
    """True when the text holds one of the facts as whole words (case-insensitive): "12" is not in "312"."""
    return any(re.search(rf"(?<![\w,.]){re.escape(f)}(?![\w]|[,.]\d)", text, re.I) for f in facts)


def fact_page(facts: Sequence[str]) -> int:
    """The 1-based page whose text holds one of the facts."""
    for number, (heading, paras) in enumerate(PAGES, start=1):
        if holds(" ".join([heading, *paras]), facts):
            return number
    raise ValueError(f"no page holds {facts}")


# --------------------------------------------------------------------------- text formats


def as_text() -> str:
    """Plain text: a form feed between pages, a blank line between paragraphs."""
    return "\f".join("\n\n".join(paragraphs_of(i)) + "\n" for i in range(len(PAGES)))


def write_txt(path: Path) -> Path:
    path.write_text(f"{TITLE}\n\n" + as_text(), encoding="utf-8")
    return path


def write_md(path: Path) -> Path:
    parts = [f"# {TITLE}\n"]
    for heading, paras in PAGES:
        parts.append(f"## {heading}\n")
        parts += [p.replace("Silver Kestrel", "**Silver Kestrel**") + "\n" for p in paras]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_html(path: Path) -> Path:
    body = [f"<h1>{TITLE}</h1>"]
    for heading, paras in PAGES:
        body.append(f"<section><h2>{heading}</h2>")
        body += [f"<p>{p}</p>" for p in paras]
        body.append("</section>")
    path.write_text("<!doctype html><html><head><title>Almanac</title><style>p { color: #333 }</style>"
                    "<script>var secret = 'Zanzibar password 99';</script></head><body>"
                    + "\n".join(body) + "<script>document.title = 'hidden text';</script></body></html>",
                    encoding="utf-8")
    return path


# --------------------------------------------------------------------------- PDF


def _wrap(text: str, width: int = 88) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def page_stream(blocks: Sequence[str]) -> bytes:
    """Content stream of one page: each block's wrapped lines, a blank line between blocks."""
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
    for i, block in enumerate(blocks):
        if i:
            ops.append("T*")  # an empty line: the text extractor keeps it as a paragraph break
        for line in _wrap(block):
            ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def pdf_bytes(pages: Sequence[bytes | None]) -> bytes:
    """A PDF of the given content streams (None: a page with only a drawn rectangle, no text)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]  # 2 is the page tree, filled in below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")  # 3
    kids = []
    for content in pages:
        stream = content if content is not None else b"0.5 g 72 400 300 200 re f"  # a 'scan': a grey box
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % content_id)
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def write_pdf(path: Path) -> Path:
    """The almanac as a PDF, one page per section, the title on the first page."""
    streams = [page_stream(([TITLE] if i == 0 else []) + paragraphs_of(i)) for i in range(len(PAGES))]
    path.write_bytes(pdf_bytes(streams))
    return path


def write_scanned_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF whose pages are only pictures (here: grey boxes): no text layer, like a scan."""
    path.write_bytes(pdf_bytes([None] * pages))
    return path


def write_encrypted_pdf(path: Path, password: str = "velmora") -> Path:
    """The almanac's PDF locked with a user password (RC4, which pypdf writes without extra libraries)."""
    import io

    import pypdf

    source = write_pdf(path.with_name("plain-" + path.name))
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(source))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def write_long_pdf(path: Path, pages: int) -> Path:
    """A PDF of `pages` short pages, for the page limit."""
    path.write_bytes(pdf_bytes([page_stream([f"Page {n} of the long report."]) for n in range(1, pages + 1)]))
    return path


def write_binary_txt(path: Path) -> Path:
    """A PNG's bytes under a .txt name."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    return path
