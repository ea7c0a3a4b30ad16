"""What the language-model tabs share (not a plugin: the registry skips modules named with a leading "_").

Text generation and chat run the same models: the same references and loader kind, so the
shared cache holds one copy for both tabs.
"""

from __future__ import annotations

from plugins.kinds import CAUSAL_LM
from zoo.plugin import ModelChoices

__all__ = ["CAUSAL_LM", "LM_MODELS"]

#: The instruct models text generation and chat offer: SmolLM2 online, its packaged GGUF offline.
LM_MODELS = ModelChoices(
    online="HuggingFaceTB/SmolLM2-135M-Instruct",
    offline="packaged:smollm2-135m-instruct",
    tiny="tiny:causal-lm",
    known=("HuggingFaceTB/SmolLM2-360M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
)
