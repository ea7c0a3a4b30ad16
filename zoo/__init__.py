"""Model Zoo: one Gradio app, every model capability a plugin."""

from zoo.plugin import (Audio, Bool, Choice, Field, File, Float, Gallery, Highlight, Image, Int, Json, Labels,
                        Limits, ModelChoices, Number, Plugin, RunContext, Seed, Table, Text)

__version__ = "0.1.0"

__all__ = ["Audio", "Bool", "Choice", "Field", "File", "Float", "Gallery", "Highlight", "Image", "Int", "Json",
           "Labels", "Limits", "ModelChoices", "Number", "Plugin", "RunContext", "Seed", "Table", "Text",
           "__version__"]
