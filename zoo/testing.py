"""A test kit for plugin authors: a few lines check a plugin the way the zoo will use it.

    from zoo.testing import check_plugin, zoo_for
    from zoo_word_count import WordCount

    def test_word_count():
        check_plugin(WordCount)                      # declaration, every example, output types
        assert zoo_for(WordCount).run("word-count", text="a b")["stats"]["words"] == 2

`check_plugin` checks the declaration (what `Registry.register` checks, and the Plugin API
version), runs every example in this process (inline mode) on the plugin's tiny model, or
with no model for model-less and composite plugins, and checks that each output has the
type its field declares. A failure is an AssertionError naming the plugin, the example and
the output. Nothing heavy is imported until a check runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from zoo.plugin import Field, Plugin
    from zoo.runner import Zoo
    from zoo.settings import Settings

__all__ = ["check_plugin", "check_outputs", "output_problem", "zoo_for"]


def zoo_for(plugin_cls: type["Plugin"], tiny: bool = True, *, also: Iterable[type["Plugin"] | str] = (),
            settings: "Settings | None" = None) -> "Zoo":
    """A Zoo whose registry holds `plugin_cls` (plus what it uses), models in this process.

    The registry is built explicitly, so the result does not depend on which plugins are
    installed. A composite plugin's `uses` tasks come from the built-in plugins; `also`
    adds more, as plugin classes or built-in task names. `tiny` runs every plugin on its
    tiny random-weight model. Settings come from the environment (ZOO_CACHE_DIR, ...),
    offline unless `settings` is given.
    """
    from zoo.registry import Registry
    from zoo.runner import Zoo
    from zoo.settings import Settings

    registry = Registry()
    registry.register(plugin_cls, source=f"zoo.testing ({plugin_cls.__module__})")
    wanted: list[str] = []
    for extra in also:
        if isinstance(extra, str):
            wanted.append(extra)
        elif extra.task not in registry:
            registry.register(extra, source=f"zoo.testing ({extra.__module__})")
    wanted += list((getattr(plugin_cls, "uses", None) or {}).values())
    missing = [t for t in dict.fromkeys(wanted) if t not in registry]
    if missing:
        builtin = _builtin_registry()
        for task in missing:
            if task not in builtin:
                raise AssertionError(f"{plugin_cls.__name__} uses task `{task}`, which no built-in plugin serves; "
                                     f"pass its plugin class: zoo_for({plugin_cls.__name__}, also=[ThatPlugin])")
            origin = builtin.origin(task)
            registry.register(builtin.get(task), origin.source, origin.package, origin.version)
    base = settings if settings is not None else Settings.from_env().replace(offline=True)
    return Zoo(base.replace(tiny=tiny, isolation="inline"), registry=registry)


def _builtin_registry() -> Any:
    from zoo.registry import Registry

    return Registry.builtin()


def check_plugin(plugin_cls: type["Plugin"], *, zoo: "Zoo | None" = None) -> list[dict[str, Any]]:
    """Check the declaration, run every example and check its outputs' types; return the outputs.

    Raises AssertionError naming the plugin, the example and the output. Examples that name
    a `model` run on the tiny model all the same (tiny models are what tests can load).
    """
    from zoo.registry import declaration_problems

    name = getattr(plugin_cls, "__name__", repr(plugin_cls))
    problems = declaration_problems(plugin_cls)  # the Plugin API version too
    if problems:
        raise AssertionError(f"Plugin {name} is declared wrongly: " + "; ".join(problems) + ".")
    task = plugin_cls.task
    models = getattr(plugin_cls, "models", None)
    if models is not None and not models.tiny:
        raise AssertionError(f"Plugin {name} declares no tiny model, so its examples cannot run in tests: "
                             f"set models = ModelChoices(..., tiny=\"tiny:{getattr(plugin_cls, 'model_kind', 'KIND')}\")")
    zoo = zoo if zoo is not None else zoo_for(plugin_cls)
    if task not in zoo.registry:
        raise AssertionError(f"Plugin {name}: task `{task}` is not in the zoo given to check_plugin; "
                             f"build it with zoo_for({name})")
    plugin = zoo.registry.get(task)
    examples = [dict(e) for e in plugin.examples] or _generated_examples(plugin)
    if not examples:
        raise AssertionError(f"Plugin {name} declares no examples; add at least one to `examples` "
                             "(the tab shows them, and they are what this check runs)")
    results = []
    for i, example in enumerate(examples, 1):
        values = {k: v for k, v in example.items() if k != "model"}
        label = f"example {i} {_short(values)}"
        result: Any = None
        try:
            for update, result in enumerate(zoo.stream(task, values), 1):
                # A streaming plugin's growing outputs may leave outputs out; those it gives must fit.
                early = [f"output `{f.name}` {p}, got {type(result[f.name]).__name__} {_short(result[f.name])}"
                         for f in plugin.outputs if isinstance(result, Mapping) and f.name in result
                         for p in [output_problem(f, result[f.name])] if p]
                if early:
                    where = f" in update {update}" if update > 1 else ""
                    raise AssertionError(f"Plugin {name}: {label} gave wrong outputs{where}: " + "; ".join(early))
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"Plugin {name}: {label} failed: {type(exc).__name__}: {exc}") from exc
        problems = check_outputs(plugin.outputs, result)
        if problems:
            raise AssertionError(f"Plugin {name}: {label} gave wrong outputs: " + "; ".join(problems))
        results.append(result)
    return results


def _generated_examples(plugin: "Plugin") -> list[dict[str, Any]]:
    """What the tab shows for a media-only plugin without examples (a picture, a spoken sentence)."""
    try:
        from zoo.ui import sample_examples
    except ImportError:  # pragma: no cover - gradio missing: the declared examples are all there is
        return []
    return sample_examples(plugin)


def check_outputs(fields: Sequence["Field"], result: Any) -> list[str]:
    """What is wrong with a plugin's result for its declared outputs (empty when it is right)."""
    if not isinstance(result, Mapping):
        return [f"the result must be a dict of outputs, got {type(result).__name__} {_short(result)}"]
    declared = [f.name for f in fields]
    problems = [f"output `{n}` is missing (declared outputs: {', '.join(declared)})" for n in declared
                if n not in result]
    extra = sorted(set(result) - set(declared))
    if extra:
        problems.append(f"outputs {extra} are not declared; add them to `outputs` or leave them out")
    for i, f in enumerate(fields):
        if f.name not in result:
            continue
        value = result[f.name]
        if value is None and i == 0:
            problems.append(f"output `{f.name}` is None; the first output must hold the result")
            continue
        problem = output_problem(f, value)
        if problem:
            problems.append(f"output `{f.name}` {problem}, got {type(value).__name__} {_short(value)}")
    return problems


def output_problem(field: "Field", value: Any) -> str | None:
    """Why `value` is not what `field` declares, or None when it is (None is an empty output)."""
    from zoo import plugin as P

    if value is None:
        return None
    if isinstance(field, P.Text):
        return None if isinstance(value, str) else "should be a str (Text)"
    if isinstance(field, P.Bool):
        return None if isinstance(value, bool) else "should be a bool (Bool)"
    if isinstance(field, P.Number):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "should be an int or a float (Number)"
        if field.integer and not float(value).is_integer():
            return "should be a whole number (integer Number)"
        return None
    if isinstance(field, P.Choice):
        return None if value in field.choices else f"should be one of {list(field.choices)} (Choice)"
    if isinstance(field, P.Image):
        return None if _is_pil(value) else "should be a PIL image (Image)"
    if isinstance(field, P.ImageMask):
        return "is an input field only (ImageMask); declare an output picture as Image"
    if isinstance(field, P.Gallery):
        if not isinstance(value, (list, tuple)):
            return "should be a list of images (Gallery)"
        bad = [v for v in value if not (_is_pil(v) or _is_file(v) or (isinstance(v, tuple) and v and
                                                                       (_is_pil(v[0]) or _is_file(v[0]))))]
        return "should hold PIL images, image files or (image, caption) pairs (Gallery)" if bad else None
    if isinstance(field, P.Audio):
        if _is_file(value):
            return None
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int) and hasattr(value[1], "__len__"):
            return None
        return "should be an audio file path or a (sample rate, samples) pair (Audio)"
    if isinstance(field, P.Video):
        return None if _is_file(value) else "should be the path of an existing video file (Video)"
    if isinstance(field, P.File):
        return None if _is_file(value) else "should be the path of an existing file (File)"
    if isinstance(field, P.Highlight):
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                and (p[1] is None or isinstance(p[1], str)) for p in value):
            return "should be a list of (text, label or None) pairs (Highlight)"
        return None
    if isinstance(field, P.Table):
        if not isinstance(value, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in value):
            return "should be a list of rows, each a list or tuple (Table)"
        width = len(field.headers)
        if width and any(len(r) != width for r in value):
            return f"should have rows of {width} cells, one per header {list(field.headers)} (Table)"
        return None
    if isinstance(field, P.Labels):
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in value.items()):
            return "should be a dict of label (str) -> score (float) (Labels)"
        return None
    if isinstance(field, P.Json):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return f"should be JSON-serialisable (Json): {exc}"
        return None
    return None  # a Field subclass this kit does not know: any value


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "size") and hasattr(value, "mode")


def _is_file(value: Any) -> bool:
    return isinstance(value, (str, Path)) and bool(str(value)) and Path(value).is_file()


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
