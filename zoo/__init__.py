"""Model Zoo: one Gradio app, every model capability a plugin.

The public names a plugin author needs are here: `zoo.Plugin`, the field types,
`zoo.ModelChoices`, `zoo.RunContext`, `zoo.API_VERSION` (the Plugin API this zoo runs),
and the model-kind API (`zoo.ModelKind`, `zoo.register_kind`). Importing `zoo` stays
cheap: no gradio, torch or model library, and the kinds module loads on first use.
"""

from typing import Any

from zoo.plugin import (API_VERSION, Audio, Bool, Choice, Field, File, Float, Gallery, Highlight, Image, Int, Json,
                        Labels, Limits, ModelChoices, Number, Plugin, RunContext, Seed, Table, Text)
from zoo.plugin import ImageMask, MaskedImage

__version__ = "0.2.0"

#: Names served lazily from zoo.kinds (the model-kind registration API).
_KINDS = ("ModelKind", "register_kind", "get_kind", "registered_kinds", "register_family")

__all__ = ["API_VERSION", "Audio", "Bool", "Choice", "Field", "File", "Float", "Gallery", "Highlight", "Image", "Int",
           "Json", "Labels", "Limits", "ModelChoices", "Number", "Plugin", "RunContext", "Seed", "Table", "Text",
           "ImageMask", "MaskedImage", *_KINDS, "__version__"]


def __getattr__(name: str) -> Any:
    """`zoo.ModelKind`, `zoo.register_kind`, ...: imported from zoo.kinds on first use."""
    if name in _KINDS:
        import importlib

        return getattr(importlib.import_module("zoo.kinds"), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
