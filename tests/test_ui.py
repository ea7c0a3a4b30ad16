"""zoo/ui.py's TabBuilder hooks: custom tabs built from them keep their endpoints and ids."""

from __future__ import annotations

from typing import Any

from plugins.chat import Chat
from plugins.sentence_similarity import SentenceSimilarity
from zoo.plugin import ModelChoices, Plugin, RunContext, Text
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings


class Shout(Plugin):
    """A third-party tab that replaces only the buttons row, through the `run_buttons` hook."""

    api_version = 2
    task = "shout-ui-test"
    title = "Shout"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("text"),)
    outputs = (Text("shouted"),)
    examples = ({"text": "hello"},)

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"shouted": values["text"].upper()}

    def build_ui(self, ui: Any) -> bool:
        import gradio as gr

        def buttons() -> tuple[Any, None]:
            return gr.Button("Shout!", variant="primary", elem_id="shout-button"), None

        ui.build(run_buttons=buttons)
        return True


def _parameters(info: dict[str, Any], endpoint: str) -> list[str]:
    return [p["parameter_name"] for p in info["named_endpoints"][endpoint]["parameters"]]


def test_tabs_built_from_the_hooks_keep_their_endpoints_and_ids(settings: Settings) -> None:
    from zoo.ui import build_demo

    registry = Registry()
    for cls in (Chat, SentenceSimilarity, Shout):
        registry.register(cls)
    demo = build_demo(Zoo(settings.replace(tiny=True), registry=registry))
    info = demo.get_api_info()
    assert sorted(info["named_endpoints"]) == ["/chat", "/sentence_similarity", "/shout_ui_test"]
    assert _parameters(info, "/chat") == ["message", "history", "system_prompt", "max_new_tokens", "temperature",
                                          "top_p", "top_k", "repetition_penalty", "seed", "model"]
    assert _parameters(info, "/sentence_similarity") == ["query", "documents", "top_k", "return_vectors", "model"]
    assert _parameters(info, "/shout_ui_test") == ["text", "model"]
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    chat_ids = {"chat-conversation", "chat-message", "chat-send", "chat-stop", "chat-retry", "chat-undo",
                "chat-clear", "zoo-conversational-in-temperature", "zoo-conversational-in-model"}
    search_ids = {"zoo-sentence-similarity-in-query", "zoo-sentence-similarity-in-documents",
                  "zoo-sentence-similarity-in-top_k", "zoo-sentence-similarity-out-results"}
    assert chat_ids <= ids and search_ids <= ids, (chat_ids | search_ids) - ids
    assert {"shout-button", "zoo-shout-ui-test-in-text", "zoo-shout-ui-test-examples"} <= ids
    assert "zoo-shout-ui-test-run" not in ids  # the hook replaced the generated buttons
    uploads = [b.label for b in demo.blocks.values() if type(b).__name__ == "UploadButton"]
    assert uploads == ["Load a .txt file into Documents"]  # semantic search's own piece of its buttons row
