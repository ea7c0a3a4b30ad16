"""Registry: built-ins, entry-point plugins, allow/deny lists, quarantine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zoo.errors import PluginLoadError, UnknownPlugin
from zoo.plugin import ModelChoices, Plugin, Text
from zoo.registry import Registry, declaration_problems
from zoo.runner import Zoo

ECHO_PLUGIN = '''
from zoo.plugin import ModelChoices, Plugin, Text

class Shout(Plugin):
    """A third-party plugin: upper-cases its input after loading the tiny LM."""
    api_version = 2
    task = "shout"
    title = "Shout"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("text"),)
    outputs = (Text("shouted"),)

    def run(self, model, values, ctx):
        return {"shouted": values["text"].upper() + f" ({model.family})"}
'''


def install_fake_distribution(root: Path, module: str, source: str, entry: str) -> None:
    """Write a module plus a *.dist-info with entry_points.txt, as pip would."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo.plugins]\n{entry}\n")


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_fake_distribution(tmp_path, "zoo_plugin_shout", ECHO_PLUGIN, "shout = zoo_plugin_shout:Shout")
    install_fake_distribution(tmp_path, "zoo_plugin_broken", "import does_not_exist_anywhere\n",
                              "broken = zoo_plugin_broken")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    return tmp_path


def test_builtins_are_found() -> None:
    registry = Registry.discover(entry_points=False)
    assert "text-generation" in registry.tasks()
    assert registry.source("text-generation") == "plugins.text_generation"
    assert not registry.quarantined, registry.quarantined


def test_entry_point_plugin_gets_a_tab_and_runs(third_party: Path, settings) -> None:
    registry = Registry.discover()
    assert "shout" in registry.tasks()
    assert "entry point shout" in registry.source("shout")
    zoo = Zoo(settings, registry=registry)
    assert zoo.run("shout", text="hello")["shouted"] == "HELLO (transformers)"
    from zoo.ui import build_demo

    demo = build_demo(zoo)
    config = demo.get_config_file()
    tab_ids = {c["props"].get("id") for c in config["components"] if c.get("type") == "tabitem"}
    assert {"shout", "text-generation"} <= tab_ids
    assert "/shout" in {d.get("api_name") and "/" + d["api_name"] for d in config["dependencies"]}


def test_broken_plugin_is_quarantined_and_others_work(third_party: Path, tiny_zoo: Zoo, settings) -> None:
    registry = Registry.discover()
    broken = [q for q in registry.quarantined if q.name == "broken"]
    assert len(broken) == 1
    assert "does_not_exist_anywhere" in broken[0].error
    assert "pip install does_not_exist_anywhere" in broken[0].fix
    zoo = Zoo(settings.replace(tiny=True), registry=registry)
    assert zoo.run("text-generation", prompt="hi", max_new_tokens=3, seed=1)["text"] is not None
    from zoo.ui import build_demo

    config = build_demo(zoo).get_config_file()
    markdown = " ".join(str(c["props"].get("value")) for c in config["components"] if c.get("type") == "markdown")
    assert "does_not_exist_anywhere" in markdown and "Every other tab keeps working" in markdown


def test_allow_and_deny_lists(third_party: Path) -> None:
    only = Registry.discover(allow=["text-generation"])
    assert only.tasks() == ["text-generation"]
    assert not only.quarantined  # the broken plugin was not asked for
    denied = Registry.discover(deny=["shout"])
    assert "shout" not in denied.tasks() and "text-generation" in denied.tasks()


def test_unknown_task_lists_the_valid_ones() -> None:
    registry = Registry.discover(entry_points=False)
    with pytest.raises(UnknownPlugin) as err:
        registry.get("no-such-task")
    assert "text-generation" in str(err.value)


def test_bad_declarations_are_named() -> None:
    class NoTask(Plugin):
        title = "x"
        model_kind = "causal-lm"
        models = ModelChoices(online="tiny:causal-lm")
        inputs = (Text("a"), Text("a"))
        examples = ({"zzz": 1},)

    problems = " ".join(declaration_problems(NoTask))
    assert "`task`" in problems and "repeat" in problems and "zzz" in problems and "run" in problems
    with pytest.raises(PluginLoadError):
        Registry().register(NoTask)


def test_plugin_raising_on_instantiation_is_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = ECHO_PLUGIN.replace('task = "shout"', 'task = "explodes"') + textwrap.dedent('''
        def _boom(self):
            raise RuntimeError("cannot set up: GPU driver missing")
        Shout.__init__ = _boom
    ''')
    install_fake_distribution(tmp_path, "zoo_plugin_explodes", source, "explodes = zoo_plugin_explodes:Shout")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.discover()
    assert "explodes" not in registry.tasks()
    assert any("GPU driver missing" in q.error for q in registry.quarantined)
    assert "text-generation" in registry.tasks()


def test_plugins_do_not_import_heavy_libraries() -> None:
    import subprocess
    import sys

    code = ("import sys; from zoo.registry import Registry; r = Registry.discover(); "
            "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'whisper', 'faster_whisper') if m in sys.modules]; "
            "print(len(r.tasks()), heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent).stdout.strip()
    count, heavy = out.split(" ", 1)
    assert int(count) >= 1 and heavy == "[]", out


def test_every_plugin_file_can_be_left_out_alone(settings) -> None:
    """Denying one plugin removes exactly its tab and endpoint; nothing else breaks or is quarantined."""
    from zoo.ui import build_demo

    everything = Registry.discover(entry_points=False)
    tasks = everything.tasks()
    endpoints = {p.task: "/" + p.endpoint() for p in everything.plugins()}
    assert len(tasks) >= 14
    for task in tasks:
        registry = Registry.discover(deny=[task], entry_points=False)
        assert registry.tasks() == [t for t in tasks if t != task] and not registry.quarantined
        config = build_demo(Zoo(settings.replace(tiny=True), registry=registry)).get_config_file()
        public = {"/" + d["api_name"] for d in config["dependencies"]
                  if d.get("api_name") and d.get("api_visibility", "public") == "public"}
        assert endpoints[task] not in public
        assert {endpoints[t] for t in tasks if t != task} <= public
