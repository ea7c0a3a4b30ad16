"""Model kinds and loader families: what the shared loader can build, open to registration.

A *kind* says what a plugin's model is: which loader families can serve it, the
transformers Auto class and processor it loads with, an optional wrapper around the
loaded object (a causal LM becomes a TransformersLM), whether that object is a language
model, and a tiny builder for `tiny:<name>`. A *family* is a way of reading files
(transformers, gguf, diffusers, piper...): its loader turns resolved files into a model.

    from zoo.kinds import ModelKind, register_kind

    OBJECT_DETECTION = register_kind(ModelKind(
        "object-detection", auto_class="AutoModelForObjectDetection", processor="processor",
        tiny=build_tiny_detector))

    class Detector(Plugin):
        model_kind = OBJECT_DETECTION   # registering the plugin registers the kind too

The built-in kinds are registered the same way, by `plugins/kinds.py`; it is imported on
the first lookup, so a script that only names a kind ("causal-lm") finds it. The built-in
families register from zoo/models/loaders.py. Registration is cheap: nothing heavy is
imported until a model loads. Kinds travel to worker processes by pickle, their functions
by module and name, so `tiny` and `wrap` must be module-level functions.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.errors import InvalidInput, ZooError

log = logging.getLogger(__name__)

#: The module that registers the built-in kinds and packaged models (imported on first lookup).
BUILTIN_KINDS_MODULE = "plugins.kinds"
#: The module that registers the built-in loader families.
BUILTIN_FAMILIES_MODULE = "zoo.models.loaders"
PROCESSORS = ("tokenizer", "processor", "none")


@dataclass(frozen=True)
class ModelKind:
    """What a plugin's model is, and how the shared loader builds it."""

    name: str  # "causal-lm", "object-detection"
    auto_class: str | None = None  # transformers Auto class, e.g. "AutoModelForObjectDetection"
    processor: str = "tokenizer"  # what loads beside the model: "tokenizer" | "processor" | "none"
    families: tuple[str, ...] = ("transformers",)  # loader families that can serve it
    tiny: Callable[[Path], None] | None = None  # writes a seeded from_pretrained folder (tiny:<name>)
    wrap: Callable[..., Any] | None = None  # wrap(model, processor, device, ref) after a transformers load
    language_model: bool = False  # its loaded object is a LanguageModel (remote: RemoteLM; /v1 chat)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInput("name", self.name, "must be a non-empty kind name such as 'object-detection'")
        if self.processor not in PROCESSORS:
            raise InvalidInput("processor", self.processor, f"must be one of {', '.join(PROCESSORS)}",
                               f"declare ModelKind({self.name!r}, processor='processor') for image or audio "
                               "inputs, 'tokenizer' for text, 'none' when the model needs neither")
        families = (self.families,) if isinstance(self.families, str) else tuple(self.families)
        if not families or not all(isinstance(f, str) and f for f in families):
            raise InvalidInput("families", self.families, "must name at least one loader family",
                               "e.g. families=('transformers',)")
        object.__setattr__(self, "families", families)
        for attr in ("tiny", "wrap"):
            value = getattr(self, attr)
            if value is not None and not callable(value):
                raise InvalidInput(attr, value, "must be a function or None")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Family:
    """A way of reading model files, with the loader that reads them."""

    name: str
    loader: Callable[[Any, ModelKind, Any], tuple[Any, int]]  # loader(resolved, kind, ctx) -> (obj, nbytes)
    # What its files are, for kind-mismatch messages: a phrase ("a GGUF language model"), or a function
    # describe(resolved, kind) -> phrase when these files cannot serve `kind`, None when they can.
    describe: str | Callable[[Any, ModelKind], str | None] = ""


class UnknownKind(InvalidInput, KeyError):
    """A model kind (or loader family) that nothing registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ZooError.__str__(self)


class KindClash(ZooError, ValueError):
    """A second, different registration under a name already taken."""


_kinds: dict[str, ModelKind] = {}
_families: dict[str, Family] = {}
_lock = threading.RLock()
_imported: set[str] = set()


def load_builtins(module: str = BUILTIN_KINDS_MODULE) -> None:
    """Import a module that registers built-ins (by default the built-in kinds), once; a missing one is logged."""
    with _lock:
        if module in _imported:
            return
        _imported.add(module)  # first, so a lookup made while it imports does not import it again
    try:
        importlib.import_module(module)
    except ImportError as exc:
        log.warning("Built-in registrations in %s are unavailable: %s", module, exc)


def register_kind(kind: ModelKind, replace: bool = False) -> ModelKind:
    """Register a model kind and return it; another kind under a taken name needs `replace=True`."""
    if not isinstance(kind, ModelKind):
        raise InvalidInput("kind", kind, "must be a zoo.kinds.ModelKind", "register ModelKind('name', ...)")
    with _lock:
        existing = _kinds.get(kind.name)
        if existing is not None and existing != kind and not replace:
            raise KindClash(f"Model kind `{kind.name}` is already registered, differently ({_origin(existing)}).",
                            f"give the new kind another name, or pass replace=True to override it")
        _kinds[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (tests register throwaway kinds and remove them after)."""
    with _lock:
        _kinds.pop(getattr(name, "name", name), None)


def get_kind(name: str | ModelKind) -> ModelKind:
    """The registered kind of that name (a ModelKind is returned as is); unknown names list the known ones."""
    if isinstance(name, ModelKind):
        return name
    with _lock:
        found = _kinds.get(name)
    if found is None:
        load_builtins(BUILTIN_KINDS_MODULE)
        with _lock:
            found = _kinds.get(name)
    if found is None:
        raise UnknownKind("kind", name, "must be a registered model kind (one of "
                          + ", ".join(k.name for k in registered_kinds()) + ")",
                          "use one of the listed kinds, or register a new one with "
                          "zoo.kinds.register_kind(ModelKind(...)) in the plugin's module")
    return found


def registered_kinds() -> list[ModelKind]:
    """Every registered kind, built-ins included, in registration order."""
    load_builtins(BUILTIN_KINDS_MODULE)
    with _lock:
        return list(_kinds.values())


def register_family(name: str, loader: Callable[[Any, ModelKind, Any], tuple[Any, int]],
                    describe: str | Callable[[Any, ModelKind], str | None] = "", replace: bool = False) -> Family:
    """Register a loader family: `loader(resolved, kind, ctx) -> (model, bytes)`, a module-level function."""
    if not callable(loader):
        raise InvalidInput("loader", loader, "must be a function loader(resolved, kind, ctx) -> (model, nbytes)")
    family = Family(name, loader, describe)
    with _lock:
        existing = _families.get(name)
        if existing is not None and existing != family and not replace:
            raise KindClash(f"Loader family `{name}` is already registered ({_origin(existing.loader)}).",
                            "give the new family another name, or pass replace=True to override it")
        _families[name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a family (for tests)."""
    with _lock:
        _families.pop(name, None)


def get_family(name: str) -> Family:
    """The registered loader family of that name; unknown names list the known ones."""
    with _lock:
        found = _families.get(name)
    if found is None:
        load_builtins(BUILTIN_FAMILIES_MODULE)
        with _lock:
            found = _families.get(name)
    if found is None:
        raise UnknownKind("family", name, "must be a registered loader family (one of "
                          + ", ".join(f.name for f in registered_families()) + ")",
                          "register it with zoo.kinds.register_family(name, loader)")
    return found


def registered_families() -> list[Family]:
    """Every registered loader family, in registration order."""
    load_builtins(BUILTIN_FAMILIES_MODULE)
    with _lock:
        return list(_families.values())


def _origin(obj: Any) -> str:
    for fn in (getattr(obj, "tiny", None), getattr(obj, "wrap", None), obj):
        module = getattr(fn, "__module__", None)
        if module and callable(fn):
            return f"from {module}"
    return "elsewhere"


__all__ = ["Family", "KindClash", "ModelKind", "UnknownKind", "get_family", "get_kind", "load_builtins", "register_family",
           "register_kind", "registered_families", "registered_kinds", "unregister_family", "unregister_kind"]
