"""Plugin discovery and isolation.

Every plugin, built-in or not, is found through the entry-point group `zoo.plugins`:
model-zoo lists its own modules there (pyproject.toml), and `pip install zoo-plugin-foo`
adds a tab by listing its own. Where the model-zoo package is not installed (a bare
checkout, a Space), the group is read from the pyproject.toml next to the zoo package.
`ZOO_PLUGIN_SOURCES=builtin` keeps only model-zoo's own entry points.

Everything goes through `Registry.register`, which checks the declaration, the Plugin
API version included. A plugin that fails to import, to instantiate or to declare
itself properly is quarantined: it keeps a tab that shows the error and the fix, and
every other tab works.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

from zoo.errors import PluginLoadError, UnknownPlugin
from zoo.kinds import ModelKind, get_kind, register_kind
from zoo.i18n import translation_problems
from zoo.plugin import API_VERSION, Field, ModelChoices, Plugin, group_problem, part_model_name

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zoo.plugins"
BUILTIN_PACKAGE = "plugins"
#: The distribution whose entry points are the built-in plugins.
DISTRIBUTION = "model-zoo"
#: What `ZOO_PLUGIN_SOURCES` may say: every installed package's plugins, or model-zoo's own.
SOURCES = ("all", "builtin")
#: Where a checkout (or a Space) declares model-zoo's entry points when the package is not installed.
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@dataclass(frozen=True)
class Quarantined:
    """A plugin that could not be used, with what went wrong and how to fix it."""

    name: str
    source: str
    error: str
    fix: str
    details: str = ""
    package: str = ""
    version: str = ""


@dataclass(frozen=True)
class Origin:
    """Where a registered plugin came from: module or entry point, and the package that provides it."""

    source: str
    package: str = ""  # distribution name, e.g. "model-zoo"; "" when not installed from a package
    version: str = ""


@dataclass(frozen=True)
class Candidate:
    """One entry point to load: its name, what it points at, and the package that declares it."""

    name: str
    value: str
    package: str
    version: str
    builtin: bool

    @property
    def source(self) -> str:
        """How the plugin is named in errors: the module for built-ins, the entry point for the rest."""
        return self.value if self.builtin else f"entry point {self.name} = {self.value}"

    def load(self) -> Any:
        """Import what the entry point names (a module, or module:attribute)."""
        return importlib.metadata.EntryPoint(self.name, self.value, ENTRY_POINT_GROUP).load()


class Registry:
    """The plugins of one app, by task; build one per app (or per test)."""

    def __init__(self) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._origins: dict[str, Origin] = {}
        self.quarantined: list[Quarantined] = []

    # ------------------------------------------------------------------ queries
    def __contains__(self, task: str) -> bool:
        return task in self._plugins

    def __len__(self) -> int:
        return len(self._plugins)

    def plugins(self) -> list[Plugin]:
        """Registered plugins in tab order."""
        return sorted(self._plugins.values(), key=lambda p: (p.order, p.title))

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
        origin = self._origins.get(task)
        return origin.source if origin else ""

    def origin(self, task: str) -> Origin:
        """Where a plugin came from and the package (distribution name and version) that provides it."""
        origin = self._origins.get(task)
        if origin is None:
            raise UnknownPlugin(f"No plugin for task `{task}`.", f"use one of: {', '.join(self.tasks()) or '(none)'}")
        if not origin.package:  # registered by hand: the package its module was installed with, if any
            package, version = distribution_of(type(self._plugins[task]).__module__)
            origin = Origin(origin.source, package, version)
        return origin

    # ------------------------------------------------------------------ registration
    def register(self, plugin: type[Plugin] | Plugin, source: str = "", package: str = "",
                 version: str = "") -> Plugin:
        """Check a plugin's declaration and add it; raises PluginLoadError naming the problem."""
        cls = plugin if isinstance(plugin, type) else type(plugin)
        where = source or getattr(cls, "__module__", "?")
        mismatch = api_version_problem(cls)
        if mismatch:
            raise PluginLoadError(f"{mismatch} (from {where}).", api_version_fix(cls))
        problems = declaration_problems(cls)
        if problems:
            raise PluginLoadError(f"Plugin {cls.__name__} ({where}) is declared wrongly: "
                                  + "; ".join(problems) + ".", "fix the class attributes named above")
        if cls.task in self._plugins:
            raise PluginLoadError(f"Two plugins claim task `{cls.task}`: {self.source(cls.task)} and {source}.",
                                  "disable one with ZOO_PLUGINS_DENY or give it another task")
        kind = getattr(cls, "model_kind", None)
        if isinstance(kind, ModelKind):
            register_kind(kind)  # registering a plugin registers its kind (the same object again is a no-op)
        elif kind is not None:
            get_kind(kind)  # a name must be registered already: UnknownKind lists the registered ones
        instance = plugin() if isinstance(plugin, type) else plugin
        self._plugins[cls.task] = instance
        self._origins[cls.task] = Origin(where, package, version)
        return instance

    def unregister(self, task: str) -> None:
        """Remove a plugin (tests register throwaway plugins and remove them after)."""
        self._plugins.pop(task, None)
        self._origins.pop(task, None)

    def quarantine(self, name: str, source: str, exc: BaseException, package: str = "", version: str = "") -> None:
        """Record a plugin that failed, keeping the message and the fix for its tab."""
        fix = getattr(exc, "fix", None) or _guess_fix(exc)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("Plugin %s (%s) quarantined: %s", name, source, message)
        self.quarantined.append(Quarantined(name, source, message, fix, details, package, version))

    # ------------------------------------------------------------------ discovery
    @classmethod
    def discover(cls, allow: Iterable[str] = (), deny: Iterable[str] = (), sources: str = "all",
                 entry_points: bool = True) -> "Registry":
        """Load the `zoo.plugins` entry points, keep the allowed plugins, quarantine the broken ones.

        `sources="builtin"` (or the older spelling `entry_points=False`) loads only model-zoo's own
        entry points, so the result does not depend on which other packages are installed.
        """
        if sources not in SOURCES:
            raise PluginLoadError(f"Plugin sources must be one of {', '.join(SOURCES)}, but got {sources!r}.",
                                  "set ZOO_PLUGIN_SOURCES=all or ZOO_PLUGIN_SOURCES=builtin")
        registry = cls()
        allowed = {a.replace("_", "-") for a in allow}
        denied = {d.replace("_", "-") for d in deny}

        def wanted(task: str) -> bool:
            task = task.replace("_", "-")
            return (not allowed or task in allowed) and task not in denied

        try:
            candidates = plugin_entry_points(builtin_only=sources == "builtin" or not entry_points)
        except PluginLoadError as exc:
            registry.quarantine(DISTRIBUTION, "built-in plugins", exc, DISTRIBUTION)
            candidates = []
        for ep in candidates:
            try:
                loaded = ep.load()
                classes = plugin_classes(loaded)
                if not classes:
                    raise PluginLoadError(f"{ep.source} defines no Plugin subclass with a `task`.",
                                          "subclass zoo.Plugin and set api_version, task, title, models, model_kind")
            except Exception as exc:
                # A plugin that will not even import is known only by its entry point's name.
                if wanted(ep.name):
                    registry.quarantine(ep.name, ep.source, exc, ep.package, ep.version)
                continue
            for plugin_cls in classes:
                task = getattr(plugin_cls, "task", ep.name)
                if not wanted(task):
                    continue
                if isinstance(task, str) and task in registry._plugins and type(registry._plugins[task]) is plugin_cls:
                    continue  # the same class reached through a second entry point
                try:
                    registry.register(plugin_cls, ep.source, ep.package, ep.version)
                except Exception as exc:
                    registry.quarantine(task if isinstance(task, str) else ep.name, ep.source, exc, ep.package,
                                        ep.version)
        return registry

    @classmethod
    def builtin(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> "Registry":
        """The built-in plugins only (model-zoo's own entry points), whatever else is installed."""
        return cls.discover(allow=allow, deny=deny, sources="builtin")


# --------------------------------------------------------------------------- entry points


def plugin_entry_points(builtin_only: bool = False) -> list[Candidate]:
    """Every `zoo.plugins` entry point to load: model-zoo's own first, then (unless builtin_only) the others'.

    An entry point that two places list (the installed model-zoo and a stale copy of its
    metadata, or two packages pointing at one module) is loaded once.
    """
    found = own_entry_points()
    if not builtin_only:
        own = _canonical(DISTRIBUTION)
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            name = dist.metadata["Name"] if dist is not None else ""
            if _canonical(name or "") == own:
                continue  # model-zoo's own, already in `found` (from the code that is running)
            found.append(Candidate(ep.name, ep.value, name or "", dist.version if dist is not None else "", False))
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.value, candidate)
    return list(unique.values())


def own_entry_points() -> list[Candidate]:
    """model-zoo's own `zoo.plugins` entry points (the built-in plugins).

    The pyproject.toml next to the zoo package wins when there is one, because it describes
    the code that is running (a checkout, editable or not, or a Space); otherwise they come
    from the installed model-zoo distribution's metadata.
    """
    declared = read_pyproject(PYPROJECT) if PYPROJECT.is_file() else None
    if declared is not None and _canonical(declared.get("name", "")) == _canonical(DISTRIBUTION):
        from zoo import __version__

        version = declared.get("version") or __version__
        return [Candidate(name, value, DISTRIBUTION, version, True)
                for name, value in declared.get("entry_points", {}).items()]
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise PluginLoadError(f"The built-in plugins cannot be found: the {DISTRIBUTION} package is not installed "
                              f"and there is no pyproject.toml next to the zoo package ({PYPROJECT}).",
                              f"install the zoo (`pip install {DISTRIBUTION}`, or `pip install -e .` in a checkout), "
                              "or keep pyproject.toml beside the zoo folder") from None
    return [Candidate(ep.name, ep.value, DISTRIBUTION, dist.version, True)
            for ep in sorted(dist.entry_points, key=lambda e: e.name) if ep.group == ENTRY_POINT_GROUP]


def read_pyproject(path: Path) -> dict[str, Any] | None:
    """`name`, `version` (None when dynamic) and the `zoo.plugins` entry points of a pyproject.toml."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = None  # type: ignore[assignment]
    if tomllib is not None:
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise PluginLoadError(f"{path} is not valid TOML: {exc}.", "fix the file, or reinstall the zoo") from None
        entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        return {"name": project.get("name", ""), "version": project.get("version"),
                "entry_points": {str(k): str(v) for k, v in entry_points.items()}}
    return _read_pyproject_lines(text)


_TABLE = re.compile(r"^\[(.+)\]\s*(#.*)?$")
_PAIR = re.compile(r'^"?([A-Za-z0-9_.-]+)"?\s*=\s*"([^"]*)"\s*(#.*)?$')


def _read_pyproject_lines(text: str) -> dict[str, Any]:
    """What read_pyproject needs, without tomllib: plain `key = "value"` lines of two tables."""
    table = ""
    project: dict[str, str] = {}
    entry_points: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _TABLE.match(line)
        if m:
            table = m.group(1).replace(" ", "").replace("'", '"')
            continue
        m = _PAIR.match(line)
        if not m:
            continue
        if table == "project":
            project[m.group(1)] = m.group(2)
        elif table == f'project.entry-points."{ENTRY_POINT_GROUP}"':
            entry_points[m.group(1)] = m.group(2)
    return {"name": project.get("name", ""), "version": project.get("version"), "entry_points": entry_points}


def distribution_of(module: str) -> tuple[str, str]:
    """(distribution name, version) of the installed package that provides a module; ("", "") if none."""
    top = module.split(".")[0]
    if top in {"zoo", BUILTIN_PACKAGE}:
        from zoo import __version__

        return DISTRIBUTION, __version__
    for name in importlib.metadata.packages_distributions().get(top) or []:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "", ""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


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
    mismatch = api_version_problem(cls)
    if mismatch:
        problems.append(mismatch)
    for attr, kind in (("task", str), ("title", str)):
        value = getattr(cls, attr, None)
        if not isinstance(value, kind) or (kind is str and not value):
            problems.append(f"`{attr}` must be a {kind.__name__}, got {value!r}")
    problems += _model_problems(cls)
    if group_problem(cls):
        problems.append(group_problem(cls))
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
    if not problems:  # the strings are read from the fields, so only once those are right
        problems += translation_problems(cls)
    return problems


def _model_problems(cls: type[Plugin]) -> list[str]:
    """`models`, `model_kind` and `uses`: one model (with its kind), or none (model-less, or composite with `uses`);
    a plugin with a model may declare `uses` too (a hybrid, run as a composite when model_for picks no model)."""
    models, kind, uses = getattr(cls, "models", None), getattr(cls, "model_kind", None), getattr(cls, "uses", {})
    if models is None:
        problems = [] if kind is None else [f"`model_kind` is {kind!r} but `models` is None; a plugin without "
                                            "a model of its own declares no model_kind (or give it `models`)"]
        return problems + _uses_problems(cls, uses)
    problems = []
    if not isinstance(models, ModelChoices):
        problems.append(f"`models` must be a ModelChoices (or None for a plugin without a model), got {models!r}")
    if not isinstance(kind, ModelKind) and not (isinstance(kind, str) and kind):
        problems.append(f"`model_kind` must be a ModelKind or a registered kind's name, got {kind!r}")
    # A plugin with a model may also declare `uses` (a hybrid): when its model_for returns no model,
    # the request runs in the server as a composite and ctx.run reaches its parts.
    return problems + _uses_problems(cls, uses)


def _uses_problems(cls: type[Plugin], uses: Any) -> list[str]:
    """What is wrong with a `uses` declaration: part names that are not identifiers, tasks that are not names."""
    if not isinstance(uses, Mapping):
        return [f"`uses` must map part names to tasks, e.g. {{'transcriber': "
                f"'automatic-speech-recognition'}}, got {uses!r}"]
    problems = []
    for part, task in uses.items():
        if not isinstance(part, str) or not part.isidentifier():
            problems.append(f"`uses` part {part!r} must be a Python identifier (it names `{part}_model`)")
        if not isinstance(task, str) or not task:
            problems.append(f"`uses` part {part!r} must name a task, got {task!r}")
        elif task.replace("_", "-") == str(getattr(cls, "task", "")).replace("_", "-"):
            problems.append(f"`uses` part {part!r} calls the plugin's own task `{task}`: a plugin cannot call itself")
    return problems
def declared_api_version(cls: type) -> Any:
    """The Plugin API a class targets: its `api_version`, or 1 for a plugin written before the attribute."""
    return getattr(cls, "api_version", 1)


def api_version_problem(cls: type) -> str:
    """Why a plugin class targets another Plugin API than this zoo's ("" when it targets this one)."""
    declared = declared_api_version(cls)
    name = getattr(cls, "__name__", repr(cls))
    if isinstance(declared, bool) or not isinstance(declared, int):
        return f"Plugin {name} declares `api_version = {declared!r}`, which is not a Plugin API version (a whole number)"
    if declared == API_VERSION:
        return ""
    if not hasattr(cls, "api_version"):
        return (f"Plugin {name} targets Plugin API 1 (it declares no `api_version`); "
                f"this zoo runs Plugin API {API_VERSION}")
    return f"Plugin {name} targets Plugin API {declared}; this zoo runs Plugin API {API_VERSION}"


def api_version_fix(cls: type) -> str:
    """What to do about a plugin written for another Plugin API."""
    declared = declared_api_version(cls)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > API_VERSION:
        return (f"upgrade the zoo to a release that runs Plugin API {declared} (`pip install -U model-zoo`), "
                f"or install a release of the plugin made for Plugin API {API_VERSION}")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared < API_VERSION:
        return (f"update the plugin for Plugin API {API_VERSION} (docs/plugins.md; then declare "
                f"`api_version = {API_VERSION}`), or install a model-zoo release that runs Plugin API {declared} "
                f"(`pip install \"model-zoo<0.2\"`)")
    return f"declare `api_version = {API_VERSION}` in the plugin class (docs/plugins.md)"


def _guess_fix(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"install the missing package: `pip install {exc.name}`, or disable the plugin with ZOO_PLUGINS_DENY"
    return "see the details below; fix the plugin or disable it with ZOO_PLUGINS_DENY"
