"""Model references, sources, per-family loaders, the shared cache and device policy."""

from zoo.models.manager import Loaded, ModelManager
from zoo.models.refs import ModelRef, parse_ref

__all__ = ["Loaded", "ModelManager", "ModelRef", "parse_ref"]
