"""`zoo new-plugin NAME --out DIR`: write a plugin package that installs, tests and serves as it is.

The package holds a `pyproject.toml` (distribution `zoo-NAME`, depending on `model-zoo`,
with an entry point in the `zoo.plugins` group), the plugin module `zoo_NAME/__init__.py`,
a README and `tests/test_NAME.py`, which checks the plugin with `zoo.testing`.

By default the plugin needs no model (text in, text out), so it runs anywhere, at once.
`--model-kind KIND` writes a single-model plugin on an existing model kind instead
(its tiny model is `tiny:KIND`). docs/plugins.md takes it from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError

# A slug: what pip, Python and a Gradio endpoint all accept once `-` becomes `_`.
NAME_RULE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
MAX_NAME = 40
TASK_RULE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")  # a pipeline tag: `text-classification`


class ScaffoldError(ZooError):
    """`new-plugin` was given a name or a folder it cannot use."""


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of one plugin name: distribution, module, task, endpoint, class and title."""

    name: str  # as given, e.g. "word-count"

    @property
    def distribution(self) -> str:
        return f"zoo-{self.name.replace('_', '-')}"

    @property
    def module(self) -> str:
        return f"zoo_{self.name.replace('-', '_')}"

    @property
    def task(self) -> str:
        return self.name.replace("_", "-")

    @property
    def endpoint(self) -> str:
        return self.task.replace("-", "_")

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in re.split(r"[-_]", self.name))

    @property
    def title(self) -> str:
        return " ".join(re.split(r"[-_]", self.name)).capitalize()


def check_name(name: str) -> PluginNames:
    """The names for NAME, or ScaffoldError saying what is wrong and what would do."""
    given = name
    if not isinstance(name, str) or not name:
        raise ScaffoldError(f"Plugin name {given!r} is empty.", "give a name such as `word-count`")
    if name.startswith("zoo-") or name.startswith("zoo_"):
        raise ScaffoldError(f"Plugin name `{name}` starts with `zoo-`; the package is named `zoo-NAME` already.",
                            f"use `{name[4:]}`")
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"Plugin name `{name}` has {len(name)} characters; at most {MAX_NAME} are allowed.",
                            "use a shorter name")
    if not NAME_RULE.match(name):
        suggestion = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        suggestion = re.sub(r"^[0-9-]+", "", suggestion)
        fix = f"use `{suggestion}`" if suggestion and NAME_RULE.match(suggestion) else "use a name such as `word-count`"
        raise ScaffoldError(f"Plugin name `{name}` is not a valid name: use lowercase letters, digits and single "
                            "`-` or `_` between them, starting with a letter.", fix)
    return PluginNames(name)


def check_out_dir(out: Path) -> Path:
    """The target folder: new, or existing and empty; never one with files in it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"`{out}` is a file, not a folder.", "pass --out a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise ScaffoldError(f"`{out}` is not empty; new-plugin never overwrites files.",
                            "pass --out a new or empty folder")
    return out


def _check_task_is_free(task: str) -> None:
    """A built-in plugin's task would make two plugins claim it (and the new one quarantined)."""
    from zoo.registry import Registry

    builtin = Registry.builtin()
    if task in builtin:
        raise ScaffoldError(f"Task `{task}` is served by the built-in plugin {type(builtin.get(task)).__name__}; "
                            "two plugins cannot claim one task.",
                            f"pick another name (such as `my-{task}`), or keep the name and pass --task")


def _kind_name(kind: str) -> str:
    """Check `--model-kind` against the registered kinds (an unknown one lists them)."""
    from zoo.kinds import get_kind  # the built-in kinds register on the first lookup

    return get_kind(kind.strip()).name


def new_plugin(name: str, out: Path, model_kind: str | None = None, task: str | None = None,
               model: str | None = None) -> list[Path]:
    """Write the plugin package for NAME into `out`; return the files written."""
    names = check_name(name)
    task_name = task.strip() if task else names.task
    if task is not None and not TASK_RULE.match(task_name):
        raise ScaffoldError(f"Task `{task}` is not a valid task name: lowercase words joined by `-`.",
                            "use a Hugging Face pipeline tag such as `text-classification`")
    if model and not model_kind:
        raise ScaffoldError(f"--model {model} was given without --model-kind; a model-less plugin has no model.",
                            "add --model-kind KIND (e.g. text-classification), or leave out --model")
    _check_task_is_free(task_name)
    out = check_out_dir(out)
    kind = _kind_name(model_kind) if model_kind else None
    files = {
        "pyproject.toml": _PYPROJECT.format(dist=names.distribution, module=names.module,
                                            entry=names.module.removeprefix("zoo_"), title=names.title),
        "README.md": _README.format(dist=names.distribution, module=names.module, task=task_name,
                                    endpoint=task_name.replace("-", "_"), title=names.title, name=names.name,
                                    call='"Hello there", "title"' if kind is None else '"Hello there", ""',
                                    comment="" if kind is None else '  # "" = the default model',
                                    what=("a model-less plugin: it needs no model" if kind is None else
                                          f"a single-model plugin on the `{kind}` model kind")),
        f"{names.module}/__init__.py": (_MODELLESS if kind is None else _SINGLE_MODEL).format(
            cls=names.class_name, task=task_name, title=names.title, kind=kind,
            model=model or f"tiny:{kind}", module=names.module),
        f"tests/test_{names.module.removeprefix('zoo_')}.py": (_TEST_MODELLESS if kind is None else
                                                               _TEST_SINGLE_MODEL).format(
            cls=names.class_name, task=task_name, module=names.module),
    }
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def cmd_new_plugin(name: str, out: Path, model_kind: str | None = None, task: str | None = None,
                   model: str | None = None) -> int:
    """The `new-plugin` command: write the package and say what to do next."""
    written = new_plugin(name, out, model_kind=model_kind, task=task, model=model)
    names = check_name(name)
    print(f"Wrote {names.distribution} in {out}:")
    for path in written:
        print(f"  {path.relative_to(out)}")
    print(f"Next: pip install -e {out} && pytest {out}   (then `zoo list`, `zoo serve`; see docs/plugins.md)")
    return 0


# --------------------------------------------------------------------------- templates

_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{title}: a Model Zoo plugin"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["model-zoo"]

[project.optional-dependencies]
test = ["pytest"]

# The zoo finds its plugins through this entry-point group: installing the package adds the tab,
# the endpoint and the `zoo run` command.
[project.entry-points."zoo.plugins"]
{entry} = "{module}"

[tool.setuptools]
packages = ["{module}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

_README = '''\
# {dist}

{title}: {what}, for [Model Zoo](https://github.com/) (Plugin API 2).

```bash
pip install -e .          # or: pip install {dist}
pytest                    # zoo.testing runs every example and checks the outputs' types
zoo list                  # shows `{task}`, with this package's name and version
zoo run {task} --help     # a command line generated from the declaration
zoo serve                 # a "{title}" tab and the endpoint /{endpoint}
```

From Python, with gradio_client, while `zoo serve` runs:

```python
from gradio_client import Client
Client("http://127.0.0.1:7860/").predict({call}, api_name="/{endpoint}"){comment}
```

The plugin is `{module}/__init__.py`: a class whose attributes declare the task, the fields and the
examples, and whose `run` computes the outputs. The guide to everything else (streaming, models,
composite plugins, new model kinds, publishing) is docs/plugins.md in the Model Zoo repository.
'''

_MODELLESS = '''\
"""{title}: a model-less Model Zoo plugin (text in, text out).

It needs no model, so the zoo shows no model picker and runs it in the server process.
Change the fields and `run`; keep `api_version`, it says which Plugin API this targets.
"""

from __future__ import annotations

from typing import Any

from zoo import Choice, Json, Plugin, RunContext, Text

_CASES = {{"upper": str.upper, "lower": str.lower, "title": str.title}}


class {cls}(Plugin):
    """Changes the case of a text and counts its words."""

    api_version = 2
    task = "{task}"
    title = "{title}"
    description = "Type a text; get it back in another case, with its word and character counts."
    order = 200
    models = None  # model-less: no model, no picker
    inputs = (Text("text", lines=4, placeholder="Type some text…"),)
    options = (Choice("case", "upper", choices=tuple(_CASES), info="The case of the result"),)
    outputs = (
        Text("result", label="Result", lines=4),
        Json("stats", label="Statistics"),
    )
    examples = (
        {{"text": "Hello from a new plugin"}},
        {{"text": "the quick brown fox", "case": "title"}},
    )
    # The tab's text in another language (title, description, labels, info, placeholders: the exact English):
    # translations = {{"zh-CN": {{"Result": "结果", "Type some text…": "输入一些文字…"}}}}

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """`model` is None: this plugin declares none."""
        text = values["text"]
        ctx.progress(None, "Changing case")
        return {{"result": _CASES[values["case"]](text),
                 "stats": {{"characters": len(text), "words": len(text.split())}}}}
'''

_SINGLE_MODEL = '''\
"""{title}: a Model Zoo plugin on the `{kind}` model kind.

The zoo loads the model (shared cache, worker process, tiny model in tests) and passes it to
`run` as `model`; `model.model` is what the kind's loader built (for transformers kinds, an
object with `.model` and `.tokenizer`). This starting point shows how the model's tokenizer
splits the text: replace `run` with what your plugin computes.
"""

from __future__ import annotations

from typing import Any

from zoo import Json, ModelChoices, Plugin, RunContext, Text


class {cls}(Plugin):
    """Shows how the model's tokenizer splits a text."""

    api_version = 2
    task = "{task}"
    title = "{title}"
    description = "Type a text; see the tokens the model reads."
    order = 200
    model_kind = "{kind}"
    models = ModelChoices(online="{model}", offline="tiny:{kind}", tiny="tiny:{kind}")
    inputs = (Text("text", lines=4, placeholder="Type some text…"),)
    outputs = (
        Text("tokens", label="Tokens", lines=4),
        Json("details", label="Details"),
    )
    examples = ({{"text": "Hello from a new plugin"}},)
    # The tab's text in another language (title, description, labels, info, placeholders: the exact English):
    # translations = {{"zh-CN": {{"Tokens": "词元", "Type some text…": "输入一些文字…"}}}}

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        tokenizer = getattr(model.model, "tokenizer", None)
        if tokenizer is None:
            raise TypeError(f"{{model.ref}} has no tokenizer; write the run() that this kind needs")
        ids = tokenizer(values["text"])["input_ids"]
        pieces = tokenizer.convert_ids_to_tokens(ids)
        return {{"tokens": " ".join(map(str, pieces)),
                 "details": {{"model": model.ref, "tokens": len(ids), "tiny": ctx.is_tiny}}}}
'''

_TEST_MODELLESS = '''\
"""{cls}: the declaration, every example and the outputs' types (zoo.testing), then what it computes."""

from zoo.testing import check_plugin, zoo_for

from {module} import {cls}


def test_declaration_and_examples() -> None:
    check_plugin({cls})


def test_result() -> None:
    zoo = zoo_for({cls})
    out = zoo.run("{task}", text="hello new world", case="title")
    assert out["result"] == "Hello New World"
    assert out["stats"] == {{"characters": 15, "words": 3}}
'''

_TEST_SINGLE_MODEL = '''\
"""{cls}: the declaration, every example on the tiny model and the outputs' types (zoo.testing)."""

from zoo.testing import check_plugin, zoo_for

from {module} import {cls}


def test_declaration_and_examples() -> None:
    check_plugin({cls})


def test_result() -> None:
    zoo = zoo_for({cls})  # the tiny model of the kind
    out = zoo.run("{task}", text="hello world")
    assert out["details"]["tokens"] >= 2
    assert out["tokens"].strip()
'''
