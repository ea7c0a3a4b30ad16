"""Image captioning (plugins/image_to_text.py) on its tiny random-weight model: the token budget, a given start."""

from __future__ import annotations

from samples import _image
from zoo.runner import Zoo


def test_image_captioning_writes_text_within_the_token_budget(tiny_zoo: Zoo) -> None:
    result = tiny_zoo.run("image-to-text", image=_image(), max_new_tokens=8, num_beams=1)
    assert isinstance(result["caption"], str)
    assert result["details"]["tokens"] <= 1 + 8  # the start token plus at most max_new_tokens
    assert "Tiny random-weight" in result["details"]["note"]
    prompted = tiny_zoo.run("image-to-text", image=_image(), prompt="a photograph of", max_new_tokens=4)
    assert prompted["caption"].startswith("a photograph of")  # BLIP continues the given start
    again = tiny_zoo.run("image-to-text", image=_image(), prompt="a photograph of", max_new_tokens=4)
    assert again["caption"] == prompted["caption"]  # beam search, no sampling: repeatable
