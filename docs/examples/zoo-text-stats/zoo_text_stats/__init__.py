"""Text statistics: a model-less plugin (Plugin API 2).

`models = None`: the zoo shows no model picker, adds no `model` parameter and runs
`run(None, values, ctx)` in the server process. A pure function, with several output types.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from zoo import Int, Labels, Number, Plugin, RunContext, Table, Text

WORDS_PER_MINUTE = 200  # a common estimate of silent reading speed


class TextStatistics(Plugin):
    """Reading time and the most frequent words of a text."""

    api_version = 2
    task = "text-statistics"
    title = "Text statistics"
    description = "Paste a text; see how long it takes to read and which words it uses most."
    order = 210
    models = None
    inputs = (Text("text", lines=8, placeholder="Paste a text…"),)
    options = (Int("top", 5, 1, 50, info="How many frequent words to list"),)
    outputs = (
        Number("reading_minutes", label="Reading time (minutes)"),
        Labels("frequent", label="Most frequent words (share of all words)"),
        Table("words", headers=("word", "count"), label="Word counts"),
    )
    examples = (
        {"text": "The cat sat on the mat. The mat was red, and the cat was happy."},
        {"text": "To be, or not to be, that is the question.", "top": 3},
    )

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        words = re.findall(r"[\w']+", values["text"].lower())
        common = Counter(words).most_common(values["top"])
        return {"reading_minutes": round(len(words) / WORDS_PER_MINUTE, 2),
                "frequent": {word: count / len(words) for word, count in common},
                "words": [[word, count] for word, count in common]}
