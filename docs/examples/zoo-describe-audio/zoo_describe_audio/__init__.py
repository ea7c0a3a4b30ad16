"""Describe this audio: a composite plugin (Plugin API 2) that transcribes, then summarizes.

It has no model of its own (`models = None`) and declares the tasks it calls in `uses`.
The zoo adds a model picker (and an API parameter) per part, `transcriber_model` and
`summarizer_model`; `ctx.stream("transcriber", ...)` runs speech recognition on the model
picked there, through the same checks, cache, worker processes, cancellation and
progress as the Speech recognition tab itself.
"""

from __future__ import annotations

from typing import Any, Iterator

from zoo import Audio, Int, Plugin, RunContext, Text


class DescribeAudio(Plugin):
    """Speech recognition, then a summary of what was said."""

    api_version = 2
    task = "describe-audio"
    title = "Describe this audio"
    description = "Upload or record speech: the zoo transcribes it, then summarizes the transcript."
    order = 220
    models = None
    uses = {"transcriber": "automatic-speech-recognition", "summarizer": "summarization"}
    inputs = (Audio("audio", label="Recording"),)
    options = (Int("max_length", 60, 16, 256, info="Most tokens in the summary"),)
    outputs = (
        Text("summary", label="Summary", lines=4),
        Text("transcript", label="Transcript", lines=6),
    )
    # No examples: the tab (and zoo.testing) use a generated spoken sentence.

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        heard: dict[str, Any] = {}
        for heard in ctx.stream("transcriber", audio=values["audio"]):
            yield {"summary": "", "transcript": heard.get("text", "")}
        transcript = (heard.get("text") or "").strip()
        if not transcript:
            yield {"summary": "(no speech found)", "transcript": ""}
            return
        yield {"summary": "Summarizing…", "transcript": transcript}
        summary = ctx.run("summarizer", text=transcript, max_length=values["max_length"])
        yield {"summary": summary["summary"], "transcript": transcript}
