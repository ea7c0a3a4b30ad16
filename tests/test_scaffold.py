"""`zoo new-plugin`, `zoo.testing`, and third-party plugin packages installed for real.

Fast tests check the scaffold (names, folders, what it writes) and the test kit (what
`check_plugin` accepts and what it reports) in this process.

The slow tests install real packages from temporary folders: the one `zoo new-plugin`
writes, and the three worked examples of docs/plugins.md (docs/examples/): a model-less
plugin (zoo-text-stats), a composite plugin (zoo-describe-audio: speech recognition, then
summarization, through ctx.stream/ctx.run) and a plugin that brings its own model kind
(zoo-detect: YOLOS detection with a tiny YOLOS builder). Each must pass its own tests
(`pytest DIR`), appear in `zoo list`, run from the command line, and be a tab and an
endpoint of the app.

How they are installed: `pip install --no-deps --no-build-isolation --target SITE DIR...`,
one pip run for the four packages, then SITE on PYTHONPATH for every subprocess. That is
what pip does for a user, package files plus a `*.dist-info` holding `entry_points.txt`,
without touching the shared virtualenv (the suite must not depend on, or change, what is
installed there). A throwaway `python -m venv --system-site-packages` would not see the
shared venv's packages (they are not the system's), and a venv plus a .pth file pointing at
them costs a venv for nothing: importlib.metadata reads dist-infos from any sys.path entry.
`--no-build-isolation` builds with the setuptools already here (no index needed), `--no-deps`
skips `model-zoo` itself, which the subprocesses import from this checkout (PYTHONPATH).

`pip install -e DIR && pytest DIR`, the flow the generated README gives, is checked too, for the
package `zoo new-plugin` writes: `-e` cannot be combined with `--target`, so it goes into a
throwaway `python -m venv --without-pip` whose site-packages holds one .pth file listing this
checkout and the shared venv's site-packages (its pip, setuptools and pytest run from there).
A `--system-site-packages` venv would not do: the shared venv's packages are not the system's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

import pytest

from zoo import Int, Json, Plugin, Text
from zoo.cli import main
from zoo.i18n import english
from zoo.scaffold import ScaffoldError, check_name, new_plugin
from zoo.testing import check_outputs, check_plugin, zoo_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
NAME = "word-count"


# --------------------------------------------------------------------------- the scaffold


def _load(folder: Path, module: str) -> Any:
    """Import a generated package's module from its folder (fast tests: no install)."""
    sys.path.insert(0, str(folder))
    try:
        return __import__(module)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    out = tmp_path / "word-count"
    assert main(["new-plugin", NAME, "--out", str(out)]) == 0
    yield out
    sys.modules.pop("zoo_word_count", None)


def test_new_plugin_writes_a_package(generated: Path) -> None:
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "tests/test_word_count.py", "zoo_word_count/__init__.py"]
    project = tomllib.loads((generated / "pyproject.toml").read_text())
    assert project["project"]["name"] == "zoo-word-count"
    assert project["project"]["dependencies"] == ["model-zoo"]
    assert project["project"]["entry-points"]["zoo.plugins"] == {"word_count": "zoo_word_count"}
    assert project["tool"]["setuptools"]["packages"] == ["zoo_word_count"]
    readme = (generated / "README.md").read_text()
    assert "zoo run word-count" in readme and "/word_count" in readme


def test_generated_plugin_is_model_less_and_passes_its_checks(generated: Path) -> None:
    module = _load(generated, "zoo_word_count")
    cls = module.WordCount
    assert (cls.task, cls.title, cls.api_version, cls.models) == ("word-count", "Word count", 2, None)
    results = check_plugin(cls)
    assert results[0] == {"result": "HELLO FROM A NEW PLUGIN", "stats": {"characters": 23, "words": 5}}
    assert results[1]["result"] == "The Quick Brown Fox"
    assert zoo_for(cls).run("word-count", text="a b c", case="lower")["stats"] == {"characters": 5, "words": 3}


def test_generated_plugin_on_a_model_kind(tmp_path: Path) -> None:
    out = tmp_path / "tokens"
    new_plugin("token-view", out, model_kind="text-classification")
    source = (out / "zoo_token_view" / "__init__.py").read_text()
    assert 'model_kind = "text-classification"' in source and 'tiny="tiny:text-classification"' in source
    try:
        cls = _load(out, "zoo_token_view").TokenView
        [result] = check_plugin(cls)  # on the kind's tiny model
        assert result["details"]["tokens"] >= 5 and result["details"]["tiny"] is True
        assert "hello" in result["tokens"]
    finally:
        sys.modules.pop("zoo_token_view", None)


@pytest.mark.parametrize("name, fix", [
    ("Word Count!", "use `word-count`"),
    ("2fast", "use `fast`"),
    ("zoo-thing", "use `thing`"),
    ("a--b", "use `a-b`"),
    ("", "such as `word-count`"),
    ("x" * 41, "shorter name"),
])
def test_bad_names_are_refused_with_the_fix(name: str, fix: str) -> None:
    with pytest.raises(ScaffoldError) as err:
        check_name(name)
    assert fix in str(err.value)
    assert (f"`{name}`" if name else "''") in str(err.value)


def test_new_plugin_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["new-plugin", NAME, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"`{out}` is not empty" in err and "Fix: pass --out a new or empty folder" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    assert main(["new-plugin", NAME, "--out", str(tmp_path / "empty")]) == 0  # an empty folder is fine
    assert main(["new-plugin", "Bad Name", "--out", str(tmp_path / "new")]) == 2
    assert "Plugin name `Bad Name` is not a valid name" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_builtin_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError) as err:
        new_plugin("summarization", tmp_path / "s")
    assert str(err.value) == ("Task `summarization` is served by the built-in plugin Summarization; two plugins cannot "
                              "claim one task. Fix: pick another name (such as `my-summarization`), or keep the name "
                              "and pass --task")
    with pytest.raises(ScaffoldError, match="--model org/x was given without --model-kind"):
        new_plugin("thing", tmp_path / "t", model="org/x")
    new_plugin("summarization", tmp_path / "s", task="short-summary")
    assert 'task = "short-summary"' in (tmp_path / "s" / "zoo_summarization" / "__init__.py").read_text()


def test_the_kit_and_the_scaffold_import_nothing_heavy() -> None:
    code = ("import sys, zoo.testing, zoo.scaffold; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'gradio', 'transformers', 'PIL'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_unknown_model_kind_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(Exception) as err:
        new_plugin("thing", tmp_path / "thing", model_kind="no-such-kind")
    assert "no-such-kind" in str(err.value) and "causal-lm" in str(err.value)
    assert not (tmp_path / "thing").exists()


# --------------------------------------------------------------------------- the test kit


class _Echo(Plugin):
    """A model-less plugin for the kit's own tests; subclasses break one thing each."""

    api_version = 2
    task = "kit-echo"
    title = "Echo"
    models = None
    inputs = (Text("text"),)
    options = (Int("times", 1, 1, 3),)
    outputs = (Text("text"), Json("details"))
    examples = ({"text": "hi"}, {"text": "ho", "times": 2})

    def run(self, model: Any, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        assert model is None
        return {"text": values["text"] * values["times"], "details": {"times": values["times"]}}


class _WrongType(_Echo):
    def run(self, model: Any, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"text": len(values["text"]) if values["times"] == 2 else "ok", "details": {}}


class _Fails(_Echo):
    def run(self, model: Any, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise RuntimeError("boom")


class _BadUpdate(_Echo):
    can_stream = True  # derived from the `stream` override in Plugin API 2; said here for zoos without that

    def stream(self, model: Any, values: dict[str, Any], ctx: Any) -> Iterator[dict[str, Any]]:
        yield {"text": "h"}
        yield {"text": ["h", "i"]}
        yield {"text": "hi", "details": {}}


class _OldApi(_Echo):
    api_version = 1


class _NoExamples(_Echo):
    examples = ()


def test_check_plugin_runs_every_example() -> None:
    assert check_plugin(_Echo) == [{"text": "hi", "details": {"times": 1}}, {"text": "hoho", "details": {"times": 2}}]


def test_check_plugin_names_the_plugin_example_and_output() -> None:
    with pytest.raises(AssertionError) as err:
        check_plugin(_WrongType)
    assert str(err.value) == ("Plugin _WrongType: example 2 {'text': 'ho', 'times': 2} gave wrong outputs: "
                              "output `text` should be a str (Text), got int 2")
    with pytest.raises(AssertionError, match=r"Plugin _Fails: example 1 \{'text': 'hi'\} failed: RuntimeError: boom"):
        check_plugin(_Fails)
    with pytest.raises(AssertionError) as err:
        check_plugin(_BadUpdate)  # a streaming plugin: every update is checked, not only the last
    assert str(err.value) == ("Plugin _BadUpdate: example 1 {'text': 'hi'} gave wrong outputs in update 2: "
                              "output `text` should be a str (Text), got list ['h', 'i']")
    with pytest.raises(AssertionError, match="Plugin _NoExamples declares no examples"):
        check_plugin(_NoExamples)


def test_check_plugin_refuses_another_api_version() -> None:
    with pytest.raises(AssertionError) as err:
        check_plugin(_OldApi)
    assert "_OldApi" in str(err.value) and "API 1" in str(err.value) and "API 2" in str(err.value)


@pytest.mark.parametrize("field, value, expected", [
    (Text("t"), 3, "should be a str (Text), got int 3"),
    (Json("j"), {"a": {1, 2}}, "should be JSON-serialisable (Json)"),
])
def test_check_outputs_types(field: Any, value: Any, expected: str) -> None:
    from zoo.plugin import Image, Labels, Number, Table

    [problem] = check_outputs([Text("first"), field], {"first": "ok", field.name: value})
    assert expected in problem and f"`{field.name}`" in problem
    assert check_outputs([Labels("l")], {"l": {"cat": 0.5, "dog": 1}}) == []
    assert "Labels" in check_outputs([Labels("l")], {"l": {"cat": "high"}})[0]
    assert "Number" in check_outputs([Number("n")], {"n": True})[0]
    assert "3 cells" in check_outputs([Table("r", headers=("a", "b", "c"))], {"r": [[1, 2]]})[0]
    assert "PIL image" in check_outputs([Image("i")], {"i": "picture.png"})[0]
    assert check_outputs([Text("a")], {"a": "x", "b": 1}) == ["outputs ['b'] are not declared; add them to "
                                                               "`outputs` or leave them out"]
    assert check_outputs([Text("a"), Text("b")], {"a": "x"})[0].startswith("output `b` is missing")


def test_check_plugin_runs_a_builtin_on_its_tiny_model() -> None:
    from plugins.text_classification import TextClassification

    results = check_plugin(TextClassification)
    assert len(results) == len(TextClassification.examples)
    assert all(set(r["labels"]) == {"NEGATIVE", "POSITIVE"} for r in results)


# --------------------------------------------------------------------------- installed packages

PACKAGES = {  # folder -> (task, endpoint)
    "word-count": ("word-count", "/word_count"),
    "zoo-text-stats": ("text-statistics", "/text_statistics"),
    "zoo-describe-audio": ("describe-audio", "/describe_audio"),
    "zoo-detect": ("yolos-detection", "/yolos_detection"),
}
USED = ("automatic-speech-recognition", "summarization")  # what describe-audio calls


class Installed:
    """Four plugin packages pip-installed into one folder, and the environment that sees them."""

    def __init__(self, root: Path, site: Path, env: dict[str, str]):
        self.root, self.site, self.env = root, site, env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=self.root, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def zoo(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        return self.run("-m", "zoo", *args, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, model_cache_dir: Path) -> Installed:
    root = tmp_path_factory.mktemp("plugin-packages")
    site = root / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env.update(HF_HUB_OFFLINE="1", ZOO_CACHE_DIR=str(model_cache_dir), ZOO_PLUGIN_SOURCES="all",
               ZOO_ISOLATION=os.environ.get("ZOO_ISOLATION", "process"), GRADIO_ANALYTICS_ENABLED="False",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(site)]), PYTHONDONTWRITEBYTECODE="1")
    box = Installed(root, site, env)
    made = box.zoo("new-plugin", NAME, "--out", str(root / "word-count"))
    assert made.returncode == 0, made.stderr
    for name in PACKAGES:
        if name != "word-count":
            shutil.copytree(EXAMPLES / name, root / name)
    pip = box.run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--target",
                  str(site), *(str(root / n) for n in PACKAGES))
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return box


@pytest.mark.slow
@pytest.mark.parametrize("package", list(PACKAGES))
def test_each_package_passes_its_own_tests(installed: Installed, package: str) -> None:
    # ZOO_ISOLATION does not matter: zoo.testing runs inline.
    done = installed.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(installed.root / package), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    tests = len(list((installed.root / package / "tests").glob("test_*.py")))
    assert tests == 1 and " passed" in done.stdout and "failed" not in done.stdout


@pytest.mark.slow
def test_generated_package_installs_editable_and_passes_its_test(tmp_path: Path) -> None:
    import sysconfig

    package = tmp_path / "edit-me"
    assert main(["new-plugin", "edit-me", "--out", str(package)]) == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_zoo_tests.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_", "PYTHON"))} | {"HF_HUB_OFFLINE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    pip = run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(package))
    assert pip.returncode == 0, pip.stdout + pip.stderr
    where = run("-c", "import importlib.metadata as m, zoo_edit_me; "
                      "print(zoo_edit_me.__file__); print(m.distribution('zoo-edit-me').entry_points)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(package / "zoo_edit_me" / "__init__.py"))  # editable: the folder itself
    assert "name='edit_me', value='zoo_edit_me', group='zoo.plugins'" in where.stdout
    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package))
    assert tested.returncode == 0 and "2 passed" in tested.stdout, tested.stdout[-3000:] + tested.stderr[-2000:]
    listed = json.loads(run("-m", "zoo", "list", "--json").stdout)
    [row] = [r for r in listed["plugins"] if r["task"] == "edit-me"]
    assert (row["package"], row["version"], row["api_version"], row["endpoint"]) == ("zoo-edit-me", "0.1.0", 2,
                                                                                      "/edit_me")


@pytest.mark.slow
def test_installed_plugins_are_listed(installed: Installed) -> None:
    listed = installed.zoo("list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    rows = {r["task"]: r for r in report["plugins"]}
    assert not report["quarantined"], report["quarantined"]
    for folder, (task, endpoint) in PACKAGES.items():
        row = rows[task]
        assert row["endpoint"] == endpoint
        dist = "zoo-word-count" if folder == "word-count" else folder
        assert (row["package"], row["version"], row["api_version"]) == (dist, "0.1.0", 2), row
    assert set(USED) <= set(rows)  # the built-ins stay
    builtin = json.loads(installed.zoo("list", "--json", env={"ZOO_PLUGIN_SOURCES": "builtin"}).stdout)
    assert not {task for task, _ in PACKAGES.values()} & {r["task"] for r in builtin["plugins"]}


def _cli(installed: Installed, task: str, *flags: str) -> dict[str, Any]:
    done = installed.zoo("--tiny", "run", task, *flags, "--out", str(installed.root / f"out-{task}"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.slow
def test_installed_plugins_run_from_the_command_line(installed: Installed) -> None:
    from zoo.ui import sample_image, sample_speech

    assert _cli(installed, "word-count", "--text", "hello there", "--case", "title") == {
        "result": "Hello There", "stats": {"characters": 11, "words": 2}}
    stats = _cli(installed, "text-statistics", "--text", "one two two", "--top", "1")
    assert stats["words"] == [["two", 2]] and stats["frequent"] == {"two": 2 / 3}
    heard = _cli(installed, "automatic-speech-recognition", "--audio", sample_speech())
    described = _cli(installed, "describe-audio", "--audio", sample_speech(), "--max-length", "20")
    assert described["transcript"] == heard["text"].strip()
    assert described["summary"]
    found = _cli(installed, "yolos-detection", "--image", sample_image(), "--threshold", "0")
    assert len(found["objects"]) == 5 and Path(found["annotated"]).is_file()


@pytest.mark.slow
@pytest.mark.app
def test_installed_plugins_are_tabs_and_endpoints(installed: Installed, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from servers import start_app

    from zoo.ui import sample_image, sample_speech

    tasks = [task for task, _ in PACKAGES.values()] + list(USED)
    server = start_app({**installed.env, "ZOO_TINY": "1", "ZOO_PLUGINS": ",".join(tasks)},
                       args=("-m", "zoo", "serve"), cwd=installed.root, base_env={}, log=tmp_path / "app.log",
                       timeout=180)
    try:
        config = json.loads(_get(server.url + "config"))
        tabs = {english(c["props"].get("label")) for c in config["components"] if c.get("type") == "tabitem"}
        assert {"Word count", "Text statistics", "Describe this audio", "YOLOS detection"} <= tabs, tabs
        client = Client(server.url, verbose=False)
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        params = {name: [p["parameter_name"] for p in api[name]["parameters"]] for _, name in PACKAGES.values()}
        assert params["/word_count"] == ["text", "case"]  # model-less: no `model` parameter
        assert params["/text_statistics"] == ["text", "top"]
        assert params["/describe_audio"] == ["audio", "max_length", "transcriber_model", "summarizer_model"]
        assert params["/yolos_detection"] == ["image", "threshold", "model"]
        assert client.predict("hi there", "upper", api_name="/word_count") == ("HI THERE", {"characters": 8, "words": 2})
        minutes, _, table = client.predict("b a b", 2, api_name="/text_statistics")
        assert minutes == 0.01 and table["data"] == [["b", 2], ["a", 1]]
        summary, transcript = client.predict(handle_file(sample_speech()), 20, "", "", api_name="/describe_audio")
        assert isinstance(summary, str) and summary and isinstance(transcript, str)
        annotated, objects = client.predict(handle_file(sample_image()), 0.0, "", api_name="/yolos_detection")
        assert Path(annotated).is_file() and len(objects["data"]) == 5
    finally:
        server.stop()


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()
