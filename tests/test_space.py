"""Hugging Face Spaces: `zoo space build|push` (zoo/space.py), the built Space app, and the ZeroGPU path.

Everything here runs offline: the built Space is started with HF_HUB_OFFLINE=1 on tiny
models, ZeroGPU is played by a fake `spaces` module that records what the zoo asks of it,
and `push` is exercised with --dry-run (no network) and with the network refused.
"""

from __future__ import annotations

import ast
import importlib.metadata
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from servers import AppFactory, AppServer
from zoo.cli import main as cli_main
from zoo.cli import space_builder
from zoo.errors import UnknownPlugin
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WEIGHT_SUFFIXES = {".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".pyc"}

FAKE_SPACES = '''
"""Stand-in for Hugging Face's `spaces` package: records what the zoo asks of ZeroGPU."""
import inspect, json, os, pickle, sys

DECORATED = []
CALLS = []
_LOG = os.environ.get("FAKE_SPACES_LOG")


def _log(event):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(json.dumps(event) + "\\n")


_log({"event": "import", "torch_loaded": "torch" in sys.modules})


def GPU(task=None, *, duration=None, size=None):
    def decorate(fn):
        DECORATED.append({"name": fn.__name__, "generator": inspect.isgeneratorfunction(fn), "duration": duration})
        _log({"event": "decorate", "name": fn.__name__, "generator": inspect.isgeneratorfunction(fn)})

        def gpu_call(*args, **kwargs):
            # Like the real one: arguments are pickled into a GPU worker, results pickled back.
            args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            CALLS.append({"name": fn.__name__, "seconds": seconds, "args": args})
            _log({"event": "call", "name": fn.__name__, "seconds": seconds})
            for item in fn(*args, **kwargs):
                yield pickle.loads(pickle.dumps(item))
        return gpu_call
    return decorate(task) if callable(task) else decorate
'''


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def builder() -> Any:
    """zoo/space.py, as the CLI gets it."""
    return space_builder()


@pytest.fixture(scope="module")
def all_space(builder: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Space built with every working built-in plugin, on the default hardware."""
    return builder.build(tmp_path_factory.mktemp("space-all") / "space", sources="builtin")


@pytest.fixture(scope="module")
def one_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ZeroGPU Space with only text generation, built through the command line."""
    out = tmp_path_factory.mktemp("space-one") / "space"
    assert cli_main(["space", "build", "--out", str(out), "--plugins", "text_generation",
                     "--hardware", "zero-a10g", "--title", "Tiny Zoo"]) == 0
    return out


def front_matter(folder: Path) -> dict[str, Any]:
    """README.md's YAML header, parsed with a YAML parser."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    data = yaml.safe_load(header)
    assert isinstance(data, dict) and body.strip()
    return data


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def hub_names(refs: Any) -> list[str]:
    from zoo.models.refs import parse_ref

    return [parse_ref(r).name for r in refs if parse_ref(r).scheme == "hub"]


def installed(name: str) -> str:
    return importlib.metadata.version(name).split("+")[0]


def start_space(app_factory: AppFactory, folder: Path, env: dict[str, str]) -> AppServer:
    """`python app.py` from the Space's own folder, as the Space starts it; stopped after the test."""
    base = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "ZOO_PLUGINS", "SPACE_ID"}}
    return app_factory(env | {"HF_HUB_OFFLINE": "1"}, cwd=folder, base_env=base)


# --------------------------------------------------------------------------- build


def test_all_plugins_front_matter_has_every_field(all_space: Any) -> None:
    matter = front_matter(all_space.folder)
    assert matter == all_space.front_matter
    plugins = Registry.builtin().plugins()
    assert list(all_space.tasks) == [p.task for p in plugins] and len(plugins) >= 2
    assert matter["title"] == "Model Zoo"
    assert isinstance(matter["emoji"], str) and matter["emoji"].strip()
    colors = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert matter["colorFrom"] in colors and matter["colorTo"] in colors
    assert matter["sdk"] == "gradio"
    assert matter["sdk_version"] == installed("gradio")
    assert f"gradio=={matter['sdk_version']}" in (ROOT / "requirements.txt").read_text()
    assert matter["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert matter["app_file"] == "app.py" and (all_space.folder / "app.py").is_file()
    own = [p for p in plugins if p.models is not None]  # composites list no model of their own
    online = hub_names(p.models.online for p in own)
    assert matter["preload_from_hub"] == list(dict.fromkeys(online))
    listed = hub_names(r for p in own for r in (p.models.online, *p.models.known))
    assert matter["models"] == list(dict.fromkeys(listed))
    assert set(online) <= set(matter["models"])
    assert matter["suggested_hardware"] == "cpu-basic"
    assert isinstance(matter["short_description"], str) and 0 < len(matter["short_description"]) <= 60
    assert matter["license"] == "apache-2.0"
    assert {"model-zoo", "gradio", *all_space.tasks} <= set(matter["tags"]) and "zero-gpu" not in matter["tags"]


def test_all_plugins_readme_shows_a_client_call_per_endpoint(all_space: Any) -> None:
    body = (all_space.folder / "README.md").read_text(encoding="utf-8").split("\n---\n", 1)[1]
    assert "from gradio_client import Client" in body
    for plugin in Registry.builtin().plugins():
        assert f'api_name="/{plugin.endpoint()}"' in body
        assert f"| {plugin.title} | `/{plugin.endpoint()}` |" in body
    assert "preload_from_hub" in body and "/data" in body and "ZOO_ALLOW_CUSTOM_MODELS" in body


def test_all_plugins_files_are_code_only(all_space: Any) -> None:
    files = files_in(all_space.folder)
    assert {f.split("/")[0] for f in files} == {"README.md", "app.py", "requirements.txt", "packages.txt",
                                                "pyproject.toml", "zoo", "plugins"}
    assert (all_space.folder / "packages.txt").read_text().split() == ["ffmpeg", "espeak-ng"]
    assert {rel for rel, _ in all_space.files} == files
    for f in files:
        path = Path(f)
        assert path.suffix not in WEIGHT_SUFFIXES, f
        assert not {"__pycache__", "tests", ".cache", ".git"} & set(path.parts), f
        assert not path.name.startswith("test_") and path.name != "conftest.py", f
    # the zoo package is copied whole and unchanged; every selected plugin module is there
    repo_zoo = {p.relative_to(ROOT).as_posix() for p in (ROOT / "zoo").rglob("*.py") if "__pycache__" not in p.parts}
    assert repo_zoo <= files
    for rel in repo_zoo:
        assert (all_space.folder / rel).read_bytes() == (ROOT / rel).read_bytes()
    for plugin in Registry.builtin().plugins():
        module = sys.modules[type(plugin).__module__]
        assert f"plugins/{Path(module.__file__).name}" in files
    assert "plugins/__init__.py" in files
    app = (all_space.folder / "app.py").read_text()
    compile(app, "app.py", "exec")
    assert f'PLUGINS = "{",".join(all_space.tasks)}"' in app


def test_requirements_are_pinned_to_the_tested_versions(builder: Any, all_space: Any, one_space: Path) -> None:
    def pins(folder: Path) -> dict[str, str]:
        lines = [ln.split("#")[0].strip() for ln in (folder / "requirements.txt").read_text().splitlines()]
        return dict(ln.split("==") for ln in lines if ln)

    repo = [ln.split("==")[0] for ln in (ROOT / "requirements.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#") and ln.split("==")[0] not in builder.NOT_ON_SPACES]
    cpu = pins(all_space.folder)
    assert list(cpu) == repo
    for name, version in cpu.items():
        assert version == installed(name), name
    assert cpu["torch"] == installed("torch") and "+" not in cpu["torch"]  # PyPI's wheel, not the local +cpu one
    zero = pins(one_space)
    assert list(zero) == repo + ["spaces"] and zero["spaces"]


def test_one_plugin_zero_gpu_space(one_space: Path) -> None:
    from plugins.text_generation import TextGeneration

    matter = front_matter(one_space)
    assert matter["title"] == "Tiny Zoo" and matter["suggested_hardware"] == "zero-a10g"
    assert matter["models"] == hub_names((TextGeneration.models.online, *TextGeneration.models.known))
    assert matter["preload_from_hub"] == [TextGeneration.models.online]
    assert matter["short_description"] == "Model Zoo: Text generation"
    assert "text-generation" in matter["tags"] and "zero-gpu" in matter["tags"]
    plugin_files = {f for f in files_in(one_space) if f.startswith("plugins/")}
    # kinds.py (the built-in kinds it imports) and the tiny builders kinds.py imports come along
    assert plugin_files == {"plugins/__init__.py", "plugins/_lm.py", "plugins/_tiny_builders.py", "plugins/kinds.py",
                            "plugins/text_generation.py"}
    assert 'PLUGINS = "text-generation"' in (one_space / "app.py").read_text()
    assert "ZeroGPU" in (one_space / "README.md").read_text()


SHOUT_PLUGIN = """
from zoo.plugin import ModelChoices, Plugin, Text

class Shout(Plugin):
    api_version = 2
    task = "shout"
    title = "Shout"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("text"),)
    outputs = (Text("shouted"),)

    def run(self, model, values, ctx):
        return {"shouted": values["text"].upper()}
"""


@pytest.fixture
def shout_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A third-party plugin package, zoo-plugin-shout 0.3, installed as pip would (module + dist-info)."""
    site = tmp_path / "site"
    (site / "zoo_plugin_shout-0.3.dist-info").mkdir(parents=True)
    (site / "zoo_plugin_shout.py").write_text(SHOUT_PLUGIN)
    (site / "zoo_plugin_shout-0.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zoo-plugin-shout\nVersion: 0.3\n")
    (site / "zoo_plugin_shout-0.3.dist-info" / "entry_points.txt").write_text(
        "[zoo.plugins]\nshout = zoo_plugin_shout\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_space_lists_its_plugins_as_entry_points_and_finds_them(one_space: Path) -> None:
    import tomllib

    project = tomllib.loads((one_space / "pyproject.toml").read_text())["project"]
    assert project["name"] == "model-zoo" and project["version"] == __import__("zoo").__version__
    assert project["entry-points"]["zoo.plugins"] == {"text_generation": "plugins.text_generation"}
    # The Space does not install model-zoo: discovery there reads the entry points from that file.
    # Its built-ins are exactly the file's; with every source (the Space's default), plugins installed
    # beside it (from its requirements; here whatever this machine has) come on top, never instead.
    code = ("from zoo.registry import Registry\n"
            "for sources in ('builtin', 'all'):\n"
            "    r = Registry.discover(sources=sources); o = r.origin('text-generation')\n"
            "    print(r.tasks() if sources == 'builtin' else 'text-generation' in r.tasks(), o.package, o.source,\n"
            "          len([q for q in r.quarantined if q.package == 'model-zoo']))")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "ZOO_PLUGINS", "ZOO_PLUGIN_SOURCES"}}
    out = subprocess.run([sys.executable, "-c", code], cwd=one_space, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out.splitlines() == ["['text-generation'] model-zoo plugins.text_generation 0",
                                "True model-zoo plugins.text_generation 0"], out


def test_third_party_plugins_are_pinned_not_copied_and_builtin_leaves_them_out(
        builder: Any, shout_installed: Path, tmp_path: Path) -> None:
    built = builder.build(tmp_path / "mixed", ["text-generation", "shout"], sources="all")
    assert built.tasks == ("text-generation", "shout")
    requirements = (built.folder / "requirements.txt").read_text().splitlines()
    assert requirements[-1] == "zoo-plugin-shout==0.3"  # the Space installs the package, as here
    assert {f for f in files_in(built.folder) if f.startswith("plugins/")} == {
        "plugins/__init__.py", "plugins/_lm.py", "plugins/_tiny_builders.py", "plugins/kinds.py",
        "plugins/text_generation.py"}
    assert "shout" not in (built.folder / "pyproject.toml").read_text()
    # ZOO_PLUGIN_SOURCES=builtin (this suite's setting): the installed plugin is not there to pick
    with pytest.raises(UnknownPlugin, match="No plugin for task `shout`"):
        builder.build(tmp_path / "builtin", ["shout"], sources="builtin")
    everything = builder.build(tmp_path / "all-builtin", sources="builtin")
    assert "shout" not in everything.tasks and "zoo-plugin-shout" not in (everything.folder / "requirements.txt").read_text()


def test_copy_filter_drops_caches_weights_and_tests(builder: Any, tmp_path: Path) -> None:
    src = tmp_path / "pkg"
    for rel in ("a.py", "sub/b.py", "sub/data.json", "__pycache__/a.cpython-311.pyc", "sub/model.safetensors",
                "w.gguf", "tests/test_a.py", "test_b.py", "conftest.py", ".cache/x", "sub/pytorch_model.bin"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    builder._copy(src, tmp_path / "out")
    assert files_in(tmp_path / "out") == {"a.py", "sub/b.py", "sub/data.json"}
    assert set(builder.forbidden_files(files_in(src))) == files_in(src) - {"a.py", "sub/b.py", "sub/data.json"}


def test_build_refuses_bad_input_and_rebuilds_in_place(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "space"
    assert cli_main(["space", "build", "--out", str(out), "--plugins", "no_such_task"]) == 2
    err = capsys.readouterr().err
    assert "No plugin for task `no-such-task`" in err and "text-generation" in err
    assert cli_main(["space", "build", "--out", str(out), "--hardware", "gpu-huge"]) == 2
    assert "zero-a10g" in capsys.readouterr().err
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine")
    assert cli_main(["space", "build", "--out", str(foreign)]) == 2
    assert "holds no Space built by this command" in capsys.readouterr().err
    assert files_in(foreign) == {"todo.txt"}
    # a previous build is replaced: the leftover plugin files of a wider build disappear
    assert cli_main(["space", "build", "--out", str(out), "--plugins", "text-generation,conversational"]) == 0
    assert "plugins/chat.py" in files_in(out)
    assert cli_main(["space", "build", "--out", str(out), "--plugins", "text-generation"]) == 0
    assert {f for f in files_in(out) if f.startswith("plugins/")} == {
        "plugins/__init__.py", "plugins/_lm.py", "plugins/_tiny_builders.py", "plugins/kinds.py",
        "plugins/text_generation.py"}
    capsys.readouterr()


def test_persistent_storage_moves_caches_to_data(all_space: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tree = ast.parse((all_space.folder / "app.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "use_persistent_storage")
    namespace: dict[str, Any] = {"os": os, "Path": Path}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "app.py", "exec"), namespace)
    use_persistent_storage = namespace["use_persistent_storage"]
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("ZOO_CACHE_DIR", raising=False)
    build_cache = tmp_path / "image-cache" / "hub"
    (build_cache / "models--HuggingFaceTB--SmolLM2-135M-Instruct" / "snapshots").mkdir(parents=True)
    assert use_persistent_storage(tmp_path / "no-data", build_cache) is False
    assert "HF_HOME" not in os.environ and "ZOO_CACHE_DIR" not in os.environ
    data = tmp_path / "data"
    data.mkdir()
    assert use_persistent_storage(data, build_cache) is True
    assert os.environ["HF_HOME"] == str(data / ".huggingface")
    assert os.environ["ZOO_CACHE_DIR"] == str(data / "model-zoo")
    link = data / ".huggingface" / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    assert link.is_symlink() and (link / "snapshots").is_dir()


# --------------------------------------------------------------------------- the built Space runs


@pytest.mark.app
def test_built_space_starts_offline_and_answers(one_space: Path, model_cache_dir: Path, tiny_zoo: Zoo,
                                                 app_factory: AppFactory) -> None:
    from gradio_client import Client

    with start_space(app_factory, one_space, {"ZOO_TINY": "1", "ZOO_CACHE_DIR": str(model_cache_dir)}) as space:
        print(f"\nbuilt Space answered HTTP after {space.startup:.2f}s")
        client = Client(space.url, verbose=False)
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert list(api) == ["/text_generation"]  # only the selected plugin
        values = dict(prompt="Hello there", max_new_tokens=8, temperature=0.0, seed=3)
        t0 = time.perf_counter()
        text = client.predict(**values, api_name="/text_generation")
        print(f"/text_generation on the built Space (tiny model, first call): {time.perf_counter() - t0:.2f}s")
        assert text == tiny_zoo.run("text-generation", **values)["text"]
        with pytest.raises(Exception) as err:  # custom model ids are off by default on the Space
            client.predict(prompt="Hi", model="someone/random-model", api_name="/text_generation")
        assert "someone/random-model" in str(err.value)


# --------------------------------------------------------------------------- ZeroGPU


@pytest.fixture
def fake_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fake `spaces` first on sys.path, imported fresh; returns the module."""
    folder = tmp_path / "fake"
    (folder / "spaces").mkdir(parents=True)
    (folder / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    import spaces

    assert spaces.__file__ == str(folder / "spaces" / "__init__.py")
    return spaces


def test_zero_gpu_wraps_gpu_work_with_durations_from_the_request(
        fake_spaces: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugins.text_generation import TextGeneration

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",)))
    assert zoo.gpu.active
    assert [(d["name"], d["generator"]) for d in fake_spaces.DECORATED] == [("_work", True)]
    assert callable(fake_spaces.DECORATED[0]["duration"])  # asked per call, from the request
    # ZeroGPU's rule: default models are loaded before launch, in the main process.
    assert zoo.gpu.preload() == ["tiny:causal-lm"] and len(zoo.models.cache.keys()) == 1

    values = dict(prompt="Count to ten", temperature=0.0, seed=5)
    short = zoo.run("text-generation", max_new_tokens=16, **values)
    long = zoo.stream("text-generation", {"max_new_tokens": 512, **values})
    first = next(long)
    long.close()  # Stop: the GPU function is closed too, not left decoding 512 tokens
    calls = fake_spaces.CALLS
    assert [c["name"] for c in calls] == ["_work", "_work"]
    assert calls[0]["seconds"] == math.ceil(TextGeneration().gpu_seconds({"max_new_tokens": 16})) == 21
    assert calls[1]["seconds"] == math.ceil(TextGeneration().gpu_seconds({"max_new_tokens": 512})) == 46
    assert calls[1]["seconds"] > calls[0]["seconds"]
    assert calls[0]["args"][0] == "text-generation" and calls[0]["args"][1]["max_new_tokens"] == 16
    assert isinstance(first["text"], str) and first["text"]
    # the wrapper changes where the work runs, not what it computes
    monkeypatch.delenv("SPACES_ZERO_GPU")
    plain = Zoo(settings.replace(tiny=True, plugins=("text-generation",)))
    assert not plain.gpu.active
    assert short["text"] == plain.run("text-generation", max_new_tokens=16, **values)["text"]
    assert len(fake_spaces.CALLS) == 2


def test_zero_gpu_is_a_no_op_elsewhere(fake_spaces: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",)))
    assert not zoo.gpu.active and zoo.gpu.preload() == []
    zoo.run("text-generation", prompt="Hi", max_new_tokens=2)
    assert fake_spaces.DECORATED == [] and fake_spaces.CALLS == []


def test_zero_gpu_without_the_spaces_package_runs_plainly(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    # Only this repo's spaces/ folder (templates, not a package) answers `import spaces`: an empty namespace.
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    zoo = Zoo(settings.replace(tiny=True, plugins=("text-generation",)))
    assert not zoo.gpu.active
    assert "not Hugging Face's `spaces` package" in caplog.text or "`spaces` package is missing" in caplog.text
    assert zoo.run("text-generation", prompt="Hi", max_new_tokens=2)["text"] is not None


@pytest.mark.app
def test_built_space_on_zero_gpu_imports_spaces_first_and_asks_per_request(
        one_space: Path, model_cache_dir: Path, tmp_path: Path, app_factory: AppFactory) -> None:
    import json

    from gradio_client import Client

    fake = tmp_path / "fake"
    (fake / "spaces").mkdir(parents=True)
    (fake / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    log = tmp_path / "spaces.jsonl"
    with start_space(app_factory, one_space, {"ZOO_TINY": "1", "ZOO_CACHE_DIR": str(model_cache_dir),
                                              "SPACES_ZERO_GPU": "true", "PYTHONPATH": str(fake),
                                              "FAKE_SPACES_LOG": str(log)}) as space:
        client = Client(space.url, verbose=False)
        for tokens in (16, 48):
            text = client.predict(prompt="Hi", max_new_tokens=tokens, temperature=0.0, api_name="/text_generation")
            assert isinstance(text, str) and text
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events[0] == {"event": "import", "torch_loaded": False}  # spaces before torch, as ZeroGPU requires
    assert [e for e in events if e["event"] == "decorate"] == [{"event": "decorate", "name": "_work",
                                                                "generator": True}]
    assert [e["seconds"] for e in events if e["event"] == "call"] == [21, 23]


# --------------------------------------------------------------------------- push


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any socket connection or Hub API call fails the test (and is recorded)."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise AssertionError(f"network used: {args[:2]!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    from huggingface_hub import HfApi

    for name in ("create_repo", "upload_folder", "whoami", "repo_info"):
        monkeypatch.setattr(HfApi, name, refuse)
    return attempts


def test_push_dry_run_lists_exactly_the_files_and_uses_no_network(
        one_space: Path, no_network: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["space", "push", "--repo-id", "alice/tiny-zoo", "--dry-run", "--from", str(one_space)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "alice/tiny-zoo" in out[0] and "public" in out[0]
    listed = {}
    for line in out[1:-1]:
        size, rel = line.split()
        listed[rel] = int(size)
    expected = {p.relative_to(one_space).as_posix(): p.stat().st_size for p in one_space.rglob("*") if p.is_file()}
    assert listed == expected
    assert out[-1] == "Nothing was uploaded (--dry-run)."
    # build options with an already-built folder would be silently ignored: refused instead
    assert cli_main(["space", "push", "--repo-id", "alice/tiny-zoo", "--dry-run", "--from", str(one_space),
                     "--hardware", "t4-small"]) == 2
    assert "--hardware cannot be combined with --from" in capsys.readouterr().err
    assert no_network == []


def test_push_dry_run_without_from_builds_first(no_network: list[str], capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["space", "push", "--repo-id", "alice/zoo", "--private", "--dry-run",
                     "--plugins", "text-generation"]) == 0
    out = capsys.readouterr().out
    assert "private" in out and "README.md" in out and "plugins/text_generation.py" in out
    assert "plugins/chat.py" not in out and no_network == []


def test_push_offline_fails_with_one_clear_line(one_space: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_TOKEN="hf_sEcReT0123456789")
    proc = subprocess.run([sys.executable, "-m", "zoo", "space", "push", "--repo-id", "alice/tiny-zoo",
                           "--from", str(one_space)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: Cannot push") and "HF_HUB_OFFLINE" in proc.stderr
    assert "hf_sEcReT" not in proc.stderr + proc.stdout


def test_push_without_network_or_with_hub_errors_never_shows_the_token(
        builder: Any, one_space: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from huggingface_hub import HfApi, constants

    token = "hf_sEcReT0123456789"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(builder, "hub_reachable", lambda host: False)
    args = ["space", "push", "--repo-id", "alice/tiny-zoo", "--from", str(one_space)]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and token not in err

    created: list[dict] = []

    def create_repo(self: Any, repo_id: str, **kwargs: Any) -> None:
        created.append({"repo_id": repo_id, **kwargs})
        raise RuntimeError(f"401 Client Error: Unauthorized for token {token}\nmore detail")

    monkeypatch.setattr(builder, "hub_reachable", lambda host: True)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", lambda *a, **k: pytest.fail("upload after a failed create"))
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert created == [{"repo_id": "alice/tiny-zoo", "repo_type": "space", "space_sdk": "gradio", "private": False,
                        "exist_ok": True}]
    assert "401 Client Error" in err and token not in err and "***" in err and err.count("\n") == 1
