"""Ask your documents: the first question about some files (extract, split, embed, answer) against a
second question about the same files (the index comes from the content-hash cache: only the
question is embedded), and where the time goes (retrieval against answering).

On the offline defaults: MiniLM (sentence-similarity) and SmolLM2-135M (chat), as the server runs
them. Two document sets: the 4-page almanac of tests/documents.py, and the almanac with a 40-page
generated report beside it, where embedding the passages is most of the first question's time.
The models are loaded before timing, so the figures are indexing and answering, not loading.
`python -m bench --only document_qa`, or alone: `python -m bench.document_qa`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FIRST = "How tall is the Grevin lighthouse?"
SECOND = "Who was the keeper of the Grevin lighthouse?"


def _report(path: Path, pages: int) -> Path:
    """A long PDF of plain, varied sentences (no fact of the almanac), for the indexing cost."""
    import documents as doc

    streams = []
    for page in range(1, pages + 1):
        paras = [f"Section {page}.{n} of the harbour works report covers berth {page * 10 + n}. "
                 f"The crew logged {page * 37 % 91 + n} hours of dredging and {page * 13 % 17 + 2} inspections. "
                 f"Work on quay {n} is planned for week {(page + n) % 52 + 1}." for n in range(1, 6)]
        streams.append(doc.page_stream([f"Harbour works report, page {page}", *paras]))
    path.write_bytes(doc.pdf_bytes(streams))
    return path


def _zoo() -> Any:
    from zoo.runner import Zoo
    from zoo.settings import Settings

    return Zoo(Settings.from_env().replace(offline=True, idle_unload_seconds=0, plugin_sources="builtin"))


def measure(runs: int) -> list[dict[str, Any]]:
    import documents as doc

    from plugins import document_qa as dqa

    zoo = _zoo()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        almanac = doc.write_pdf(folder / "almanac.pdf")
        report = _report(folder / "report.pdf", 40)
        warm = doc.write_txt(folder / "warmup.txt")
        zoo.run("document-qa", documents=[str(warm)], question=FIRST)  # load MiniLM and SmolLM2 untimed
        for label, files in (("almanac (4 pages)", [almanac]), ("almanac + 40-page report", [almanac, report])):
            first, second, f_index, s_index, f_ret, s_ret, f_ans, s_ans = ([] for _ in range(8))
            passages = 0
            for _ in range(max(1, runs)):
                dqa.INDEX_CACHE.clear()
                t = time.perf_counter()
                one = zoo.run("document-qa", documents=[str(f) for f in files], question=FIRST)
                first.append(time.perf_counter() - t)
                t = time.perf_counter()
                two = zoo.run("document-qa", documents=[str(f) for f in files], question=SECOND)
                second.append(time.perf_counter() - t)
                assert two["details"]["index"]["embedded_passages"] == 0, two["details"]["index"]
                passages = one["details"]["index"]["passages"]
                for out, index, ret, ans in ((one, f_index, f_ret, f_ans), (two, s_index, s_ret, s_ans)):
                    d = out["details"]
                    index.append(d["index"]["seconds"])
                    ret.append(d["retrieval_seconds"])
                    ans.append(d.get("answer_seconds", 0.0))
            med = statistics.median
            n = len(first)
            rows += [
                dict(section="document_qa", name=f"{label}: second question, total", value=med(second), unit="s",
                     baseline="first question (index + answer)", baseline_value=med(first),
                     ratio=med(second) / med(first), target="second < first (index cached by content hash)",
                     met=med(second) < med(first), runs=n,
                     note=f"{passages} passages; answers: {one['answer']!r} / {two['answer']!r}"),
                dict(section="document_qa", name=f"{label}: second question, indexing", value=med(s_index),
                     unit="s", baseline="first question's indexing (hash, read, split, embed)", baseline_value=med(f_index),
                     ratio=med(s_index) / med(f_index) if med(f_index) else None,
                     target="only the question is embedded", met=med(s_index) < med(f_index), runs=n,
                     note="details.index.seconds: file hashes + the question's embedding (+ reading, splitting "
                          "and embedding the passages of files not in the cache)"),
                dict(section="document_qa", name=f"{label}: first question, retrieval", value=med(f_ret), unit="s",
                     baseline="first question, answer (chat model)", baseline_value=med(f_ans),
                     ratio=med(f_ret) / med(f_ans) if med(f_ans) else None, runs=n,
                     note="retrieval = read, split, embed, rank; answer = SmolLM2 (one or two tries) + grounding"),
                dict(section="document_qa", name=f"{label}: second question, retrieval", value=med(s_ret), unit="s",
                     baseline="second question, answer (chat model)", baseline_value=med(s_ans),
                     ratio=med(s_ret) / med(s_ans) if med(s_ans) else None, runs=n, note=""),
            ]
    return rows


if __name__ == "__main__":
    for row in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        ratio = f" ratio {row['ratio']:.3f}" if row.get("ratio") is not None else ""
        print(f"{row['name']}: {row['value']:.3f} {row['unit']} (baseline {row.get('baseline_value')}){ratio}")
