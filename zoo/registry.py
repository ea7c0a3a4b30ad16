"""Plugin discovery and isolation.

Built-ins are the modules of the `plugins` package; third-party plugins register
through the entry-point group `zoo.plugins` (`pip install zoo-plugin-foo` adds a
tab). Both go through `Registry.register`, which checks the declaration. A plugin
that fails to import, to instantiate or to declare itself properly is quarantined:
it keeps a tab that shows the error and the fix, and every other tab works.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import pkgutil
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Iterable, Mapping

from zoo.errors import PluginLoadError, UnknownPlugin
from zoo.kinds import ModelKind, get_kind, register_kind
from zoo.plugin import Field, ModelChoices, Plugin, part_model_name

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo.plugins"
BUILTIN_PACKAGE = "plugins"
#: Modules of the built-in package that are not plugins: `kinds` registers model kinds; `_*` are helpers.
NOT_PLUGINS = frozenset({"kinds"})


@dataclass(frozen=True)
class Quarantined:
    """A plugin that could not be used, with what went wrong and how to fix it."""

    name: str
    source: str
    error: str
    fix: str
    details: str = ""


class Registry:
    """The plugins of one app, by task; build one per app (or per test)."""

    def __init__(self) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._sources: dict[str, str] = {}
        self.quarantined: list[Quarantined] = []

    # ------------------------------------------------------------------ queries
    def __contains__(self, task: str) -> bool:
        return task in self._plugins

    def __len__(self) -> int:
        return len(self._plugins)

    def plugins(self) -> list[Plugin]:
        """Registered plugins in tab order."""
        return sorted(self._plugins.values(), key=lambda p: (getattr(p, "order", 100), p.title))

    def tasks(self) -> list[str]:
        """Registered task names in tab order."""
        return [p.task for p in self.plugins()]

    def get(self, task: str) -> Plugin:
        """The plugin for a task; an unknown task lists the valid ones."""
        key = task.replace("_", "-")
        if key not in self._plugins:
            raise UnknownPlugin(f"No plugin for task `{task}`.", f"use one of: {', '.join(self.tasks()) or '(none)'}")
        return self._plugins[key]

    def source(self, task: str) -> str:
        """Where a plugin came from (module or entry point)."""
        return self._sources.get(task, "")

    # ------------------------------------------------------------------ registration
    def register(self, plugin: type[Plugin] | Plugin, source: str = "") -> Plugin:
        """Check a plugin's declaration and add it; raises PluginLoadError naming the problem."""
        cls = plugin if isinstance(plugin, type) else type(plugin)
        problems = declaration_problems(cls)
        if problems:
            raise PluginLoadError(f"Plugin {cls.__name__} ({source or cls.__module__}) is declared wrongly: "
                                  + "; ".join(problems) + ".", "fix the class attributes named above")
        if cls.task in self._plugins:
            raise PluginLoadError(f"Two plugins claim task `{cls.task}`: {self._sources[cls.task]} and {source}.",
                                  "disable one with ZOO_PLUGINS_DENY or give it another task")
        kind = getattr(cls, "model_kind", None)
        if isinstance(kind, ModelKind):
            register_kind(kind)  # registering a plugin registers its kind (the same object again is a no-op)
        elif kind is not None:
            get_kind(kind)  # a name must be registered already: UnknownKind lists the registered ones
        instance = plugin() if isinstance(plugin, type) else plugin
        self._plugins[cls.task] = instance
        self._sources[cls.task] = source or cls.__module__
        return instance

    def unregister(self, task: str) -> None:
        """Remove a plugin (tests register throwaway plugins and remove them after)."""
        self._plugins.pop(task, None)
        self._sources.pop(task, None)

    def quarantine(self, name: str, source: str, exc: BaseException) -> None:
        """Record a plugin that failed, keeping the message and the fix for its tab."""
        fix = getattr(exc, "fix", None) or _guess_fix(exc)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("Plugin %s (%s) quarantined: %s", name, source, message)
        self.quarantined.append(Quarantined(name, source, message, fix, details))

    # ------------------------------------------------------------------ discovery
    @classmethod
    def discover(cls, allow: Iterable[str] = (), deny: Iterable[str] = (),
                 builtin_package: str | None = BUILTIN_PACKAGE, entry_points: bool = True) -> "Registry":
        """Find built-in and entry-point plugins, keep the allowed ones, quarantine the broken ones."""
        registry = cls()
        allowed = {a.replace("_", "-") for a in allow}
        denied = {d.replace("_", "-") for d in deny}

        def wanted(task: str) -> bool:
            task = task.replace("_", "-")
            return (not allowed or task in allowed) and task not in denied

        candidates: list[tuple[str, str, object]] = []  # (name, source, loader)
        if builtin_package:
            try:
                package = importlib.import_module(builtin_package)
                for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                    if not info.name.startswith("_") and info.name not in NOT_PLUGINS:
                        module_name = f"{builtin_package}.{info.name}"
                        candidates.append((info.name, module_name, lambda m=module_name: importlib.import_module(m)))
            except ImportError as exc:
                registry.quarantine(builtin_package, "built-in plugins", exc)
        if entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                candidates.append((ep.name, f"entry point {ep.name} = {ep.value}", ep.load))

        for name, source, load in candidates:
            try:
                loaded = load()  # type: ignore[operator]
                classes = plugin_classes(loaded)
                if not classes:
                    raise PluginLoadError(f"{source} defines no Plugin subclass with a `task`.",
                                          "subclass zoo.Plugin and set task, title, models, model_kind")
            except Exception as exc:
                # A plugin that will not even import is known only by its module name.
                if wanted(name):
                    registry.quarantine(name, source, exc)
                continue
            for plugin_cls in classes:
                task = getattr(plugin_cls, "task", name)
                if not wanted(task):
                    continue
                try:
                    registry.register(plugin_cls, source)
                except Exception as exc:
                    registry.quarantine(task, source, exc)
        return registry


def plugin_classes(obj: object) -> list[type[Plugin]]:
    """Plugin classes in a module (defined there, not imported), or the class itself."""
    if isinstance(obj, type):
        return [obj] if issubclass(obj, Plugin) else []
    if isinstance(obj, ModuleType):
        return [c for _, c in inspect.getmembers(obj, inspect.isclass)
                if issubclass(c, Plugin) and c is not Plugin and c.__module__ == obj.__name__
                and "task" in _declared(c)]
    return []


def _declared(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is Plugin:
            break
        names.update(vars(klass))
    return names


def declaration_problems(cls: type) -> list[str]:
    """What is missing or wrong in a plugin class's declaration (empty when fine)."""
    problems = []
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        return [f"{cls!r} is not a zoo.Plugin subclass"]
    for attr, kind in (("task", str), ("title", str)):
        value = getattr(cls, attr, None)
        if not isinstance(value, kind) or (kind is str and not value):
            problems.append(f"`{attr}` must be a {kind.__name__}, got {value!r}")
    problems += _model_problems(cls)
    if cls.run is Plugin.run and cls.stream is Plugin.stream:
        problems.append("neither `run` nor `stream` is implemented")
    names = [f.name for f in (*cls.inputs, *cls.options)]
    parts = [part_model_name(p) for p in cls.uses] if isinstance(cls.uses, Mapping) else []
    if set(parts) & set(names):
        problems.append(f"fields {sorted(set(parts) & set(names))} clash with the part pickers the framework adds "
                        "for `uses`; rename the field or the part")
    if any(not isinstance(f, Field) for f in (*cls.inputs, *cls.options, *cls.outputs)):
        problems.append("inputs, options and outputs must be zoo.plugin Field objects")
    if len(set(names)) != len(names):
        problems.append(f"field names repeat: {names}")
    if "model" in names:
        problems.append("`model` is added by the framework; do not declare it")
    for example in cls.examples:
        unknown = set(example) - set(names) - set(parts) - ({"model"} if cls.models is not None else set())
        if unknown:
            problems.append(f"example uses unknown fields {sorted(unknown)}")
    return problems


def _model_problems(cls: type[Plugin]) -> list[str]:
    """`models`, `model_kind` and `uses`: one model (with its kind), or none (model-less, or composite with `uses`)."""
    models, kind, uses = getattr(cls, "models", None), getattr(cls, "model_kind", None), getattr(cls, "uses", {})
    if models is None:
        problems = [] if kind is None else [f"`model_kind` is {kind!r} but `models` is None; a plugin without "
                                            "a model of its own declares no model_kind (or give it `models`)"]
        if not isinstance(uses, Mapping):
            return problems + [f"`uses` must map part names to tasks, e.g. {{'transcriber': "
                               f"'automatic-speech-recognition'}}, got {uses!r}"]
        for part, task in uses.items():
            if not isinstance(part, str) or not part.isidentifier():
                problems.append(f"`uses` part {part!r} must be a Python identifier (it names `{part}_model`)")
            if not isinstance(task, str) or not task:
                problems.append(f"`uses` part {part!r} must name a task, got {task!r}")
            elif task.replace("_", "-") == str(getattr(cls, "task", "")).replace("_", "-"):
                problems.append(f"`uses` part {part!r} calls the plugin's own task `{task}`: a plugin cannot call itself")
        return problems
    problems = []
    if not isinstance(models, ModelChoices):
        problems.append(f"`models` must be a ModelChoices (or None for a plugin without a model), got {models!r}")
    if not isinstance(kind, ModelKind) and not (isinstance(kind, str) and kind):
        problems.append(f"`model_kind` must be a ModelKind or a registered kind's name, got {kind!r}")
    if uses:
        problems.append("`uses` is for composite plugins, which have no model of their own: set `models = None`, "
                        "or drop `uses`")
    return problems


def _guess_fix(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"install the missing package: `pip install {exc.name}`, or disable the plugin with ZOO_PLUGINS_DENY"
    return "see the details below; fix the plugin or disable it with ZOO_PLUGINS_DENY"
