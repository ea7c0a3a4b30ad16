"""Registry: built-ins, entry-point plugins, plugin sources, allow/deny lists, API versions, quarantine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from zoo.errors import InvalidInput, PluginLoadError, UnknownPlugin
from zoo.plugin import ModelChoices, Plugin, Text
from zoo.registry import Origin, Registry, declaration_problems
from zoo.runner import Zoo
from zoo.settings import Settings

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


# --------------------------------------------------------------------------- Plugin API version


OLD_PLUGIN = ECHO_PLUGIN.replace("    api_version = 2\n", "").replace('"shout"', '"old-shout"').replace("Shout", "OldShout")
FUTURE_PLUGIN = ECHO_PLUGIN.replace("api_version = 2", "api_version = 3").replace('"shout"', '"future-shout"')


def test_plugins_for_another_api_version_are_quarantined_with_both_versions_and_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings) -> None:
    install_fake_distribution(tmp_path, "zoo_plugin_old", OLD_PLUGIN, "old = zoo_plugin_old")
    install_fake_distribution(tmp_path, "zoo_plugin_future", FUTURE_PLUGIN, "future = zoo_plugin_future")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.discover()
    assert "old-shout" not in registry.tasks() and "future-shout" not in registry.tasks()
    quarantined = {q.name: q for q in registry.quarantined}
    old, future = quarantined["old-shout"], quarantined["future-shout"]
    assert "Plugin OldShout targets Plugin API 1" in old.error and "this zoo runs Plugin API 2" in old.error
    assert "declares no `api_version`" in old.error and "zoo_plugin_old" in old.error
    assert "update the plugin for Plugin API 2" in old.fix and "docs/plugins.md" in old.fix
    assert "model-zoo release that runs Plugin API 1" in old.fix
    assert (old.package, old.version) == ("zoo_plugin_old", "0.1")
    assert "Plugin Shout targets Plugin API 3; this zoo runs Plugin API 2" in future.error
    assert "upgrade the zoo to a release that runs Plugin API 3" in future.fix
    # every other tab works, and the quarantined ones say why in the UI
    zoo = Zoo(settings.replace(tiny=True), registry=registry)
    assert zoo.run("text-generation", prompt="hi", max_new_tokens=2, seed=1)["text"] is not None


class Loud(Plugin):
    """A plugin defined in this test module, for direct registration."""

    api_version = 2
    task = "loud"
    title = "Loud"
    model_kind = "causal-lm"
    models = ModelChoices(online="tiny:causal-lm", tiny="tiny:causal-lm")
    inputs = (Text("text"),)
    outputs = (Text("loud"),)

    def run(self, model, values, ctx):
        return {"loud": values["text"].upper()}


def test_register_checks_the_api_version_first() -> None:
    class Future(Loud):
        api_version = 3

    class Stringly(Loud):
        api_version = "2"

    with pytest.raises(PluginLoadError) as err:
        Registry().register(Future)
    assert "targets Plugin API 3; this zoo runs Plugin API 2" in err.value.message
    assert "Plugin API 3" in err.value.fix
    assert any("not a Plugin API version" in p for p in declaration_problems(Stringly))
    assert declaration_problems(Loud) == []
    import zoo

    assert zoo.API_VERSION == 2 and Loud.api_version == zoo.API_VERSION
    assert all(type(p).api_version == zoo.API_VERSION for p in Registry.builtin().plugins())


# --------------------------------------------------------------------------- sources and packages


def test_builtin_sources_leave_installed_plugins_out(third_party: Path) -> None:
    everything = Registry.discover(sources="all")
    assert "shout" in everything.tasks() and any(q.name == "broken" for q in everything.quarantined)
    for builtin in (Registry.builtin(), Registry.discover(sources="builtin"), Registry.discover(entry_points=False)):
        assert "shout" not in builtin.tasks() and not builtin.quarantined
        assert builtin.tasks() == [t for t in everything.tasks() if everything.origin(t).package == "model-zoo"]
    assert Zoo(Settings(plugin_sources="builtin")).registry.tasks() == Registry.builtin().tasks()
    assert "shout" in Zoo(Settings(plugin_sources="all")).registry.tasks()
    assert Settings.from_env({"ZOO_PLUGIN_SOURCES": "builtin"}).plugin_sources == "builtin"
    with pytest.raises(InvalidInput) as err:
        Settings.from_env({"ZOO_PLUGIN_SOURCES": "some"})
    assert "ZOO_PLUGIN_SOURCES" in str(err.value) and "all, builtin" in str(err.value)


def test_every_plugin_records_its_package_and_version(third_party: Path) -> None:
    import zoo

    registry = Registry.discover()
    assert registry.origin("text-generation") == Origin("plugins.text_generation", "model-zoo", zoo.__version__)
    shout = registry.origin("shout")
    assert (shout.package, shout.version) == ("zoo_plugin_shout", "0.1")
    assert shout.source == "entry point shout = zoo_plugin_shout:Shout"
    broken = next(q for q in registry.quarantined if q.name == "broken")
    assert (broken.package, broken.version) == ("zoo_plugin_broken", "0.1")
    by_hand = Registry()
    by_hand.register(Loud)
    assert by_hand.origin("loud").package == "" and by_hand.source("loud") == __name__


def test_builtins_are_exactly_the_entry_points_in_pyproject() -> None:
    """Every built-in plugin module is listed in pyproject.toml (a module missing there has no tab)."""
    import importlib
    import pkgutil
    import tomllib

    import plugins
    from zoo.registry import PYPROJECT, _read_pyproject_lines, own_entry_points, plugin_classes, read_pyproject

    listed = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["zoo.plugins"]
    modules = {f"plugins.{m.name}" for m in pkgutil.iter_modules(plugins.__path__)
               if plugin_classes(importlib.import_module(f"plugins.{m.name}"))}
    assert set(listed.values()) == modules
    assert {c.name: c.value for c in own_entry_points()} == listed
    # the parser for Python 3.10 (no tomllib) reads the same
    assert _read_pyproject_lines(PYPROJECT.read_text()) == read_pyproject(PYPROJECT)


def test_without_pyproject_the_installed_distribution_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed zoo (no pyproject.toml beside the package) finds its plugins in its own metadata."""
    import importlib
    import importlib.metadata

    from zoo import registry as registry_module

    monkeypatch.setattr(registry_module, "PYPROJECT", tmp_path / "no" / "pyproject.toml")
    with monkeypatch.context() as m:  # and no model-zoo metadata anywhere (a build may leave some in the checkout)
        def not_installed(name: str) -> None:
            raise importlib.metadata.PackageNotFoundError(name)

        m.setattr(importlib.metadata, "distribution", not_installed)
        none = Registry.discover(sources="builtin")
    assert none.tasks() == [] and [q.name for q in none.quarantined] == ["model-zoo"]
    assert "not installed" in none.quarantined[0].error and "pip install" in none.quarantined[0].fix
    info = tmp_path / "model_zoo-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: model-zoo\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[zoo.plugins]\ntext_generation = plugins.text_generation\n"
                                           "chat = plugins.chat\n[console_scripts]\nzoo = zoo.cli:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    installed = Registry.discover(sources="builtin")
    assert sorted(installed.tasks()) == ["conversational", "text-generation"] and not installed.quarantined
    assert installed.origin("conversational") == Origin("plugins.chat", "model-zoo", "9.9")


def test_a_plugin_listed_twice_is_registered_once(third_party: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed model-zoo beside the checkout's pyproject, or two entry points for one class: one tab."""
    import importlib

    site = tmp_path / "more"
    site.mkdir()
    info = site / "model_zoo-0.2.0.dist-info"  # the same plugins, as an installed model-zoo lists them
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: model-zoo\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text("[zoo.plugins]\ntext_generation = plugins.text_generation\n")
    install_fake_distribution(site, "zoo_plugin_again", "", "again = zoo_plugin_shout:Shout\nagain2 = zoo_plugin_shout")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry = Registry.discover()
    tasks = registry.tasks()
    assert tasks.count("text-generation") == 1 and tasks.count("shout") == 1 and len(set(tasks)) == len(tasks)
    assert "broken" in [q.name for q in registry.quarantined]
    assert not [q for q in registry.quarantined if "Two plugins claim" in q.error]
