"""The plugins package as a whole: rules every built-in plugin keeps, each plugin file standing alone
(deny it and only its tab and endpoint go), and the README's plugin table listing every plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from samples import PASSAGES, _image
from tiny_checks import TINY_NOTE
from zoo.errors import InvalidInput
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TASKS = ("translation", "summarization", "text-classification", "token-classification", "zero-shot-classification")
MY_TASKS = ("sentence-similarity", "image-classification", "image-to-text", "text-to-speech")
ENDPOINTS = {task: "/" + task.replace("-", "_") for task in TASKS}
# A quick valid request per plugin, for checking that the others still run.
QUICK: dict[str, dict[str, Any]] = {
    "translation": {"text": "Hello world.", "max_new_tokens": 4, "num_beams": 1},
    "summarization": {"text": "The council voted to turn the old railway into a park.", "min_length": 1,
                      "max_length": 4, "num_beams": 1},
    "text-classification": {"text": "What a lovely day."},
    "token-classification": {"text": "Clara lives in Berkeley."},
    "zero-shot-classification": {"text": "The striker scored twice.", "candidate_labels": "sports, cooking"},
}


@pytest.mark.parametrize("task", TASKS)
def test_declarations_and_empty_text(tiny_zoo: Zoo, task: str) -> None:
    plugin = tiny_zoo.registry.get(task)
    assert "/" + plugin.endpoint() == ENDPOINTS[task]
    assert plugin.models.offline == plugin.models.tiny and plugin.models.tiny.startswith("tiny:")
    assert plugin.examples and all(ex.get("text") for ex in plugin.examples)
    with pytest.raises(InvalidInput, match="`text` must not be empty"):
        tiny_zoo.run(task, **{**QUICK[task], "text": " \n "})
    with pytest.raises(InvalidInput, match="not a parameter"):
        tiny_zoo.run(task, **QUICK[task], temperature=0.5)


def test_all_text_endpoints_are_in_the_app(tiny_zoo: Zoo) -> None:
    from zoo.ui import build_demo

    names = {"/" + d["api_name"] for d in build_demo(tiny_zoo).get_config_file()["dependencies"]
             if d.get("api_name")}
    assert set(ENDPOINTS.values()) <= names
    assert not [q for q in tiny_zoo.registry.quarantined if q.name.replace("_", "-") in TASKS]


@pytest.mark.parametrize("task", TASKS)
def test_each_plugin_file_is_self_contained(settings: Settings, task: str) -> None:
    from zoo.ui import build_demo

    full = Registry.discover()
    registry = Registry.discover(deny=[task])
    assert task in full.tasks() and task not in registry.tasks()
    assert set(registry.tasks()) == set(full.tasks()) - {task}  # every other plugin is still there
    assert {q.name for q in registry.quarantined} == {q.name for q in full.quarantined}  # and none broke

    zoo = Zoo(settings.replace(tiny=True, disabled_plugins=(task,)))
    names = {"/" + d["api_name"] for d in build_demo(zoo).get_config_file()["dependencies"] if d.get("api_name")}
    assert ENDPOINTS[task] not in names
    assert {ENDPOINTS[t] for t in TASKS if t != task} <= names
    for other in TASKS:
        if other != task:
            out = zoo.run(other, **QUICK[other])
            assert TINY_NOTE in out["note"], other


def test_readme_plugin_table_lists_every_plugin() -> None:
    from zoo.registry import Registry

    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| ") and "`/" in line]
    for plugin in Registry.discover(entry_points=False).plugins():
        rows = [r for r in table if f"`{plugin.task}`" in r]
        assert len(rows) == 1, f"README plugin table lacks {plugin.task}"
        row = rows[0]
        if plugin.models is None:  # no model of its own (the Fine-tune tab): the row says what it runs
            assert f"`/{plugin.endpoint()}`" in row, row
            continue
        offline = plugin.models.offline or plugin.models.tiny or ""
        assert f"`/{plugin.endpoint()}`" in row and f"`{plugin.models.online}`" in row and f"`{offline}`" in row
        assert ("tiny random" in row) == offline.startswith("tiny:"), row


def _endpoints_and_tabs(zoo: Zoo) -> tuple[set[str], set[str]]:
    """Public API names and tab element ids of the app built for `zoo`."""
    from zoo.ui import build_demo

    config = build_demo(zoo).get_config_file()
    endpoints = {d["api_name"] for d in config["dependencies"] if d.get("api_visibility") == "public"}
    tabs = {c["props"].get("elem_id") for c in config["components"] if c["type"] == "tabitem"}
    return endpoints, tabs


@pytest.mark.parametrize("task", MY_TASKS)
def test_plugin_file_is_self_contained(settings: Settings, task: str) -> None:
    """Denying one plugin removes its tab and endpoint and nothing else; the others still run."""
    full = Zoo(settings.replace(tiny=True))
    assert not full.registry.quarantined
    all_endpoints, all_tabs = _endpoints_and_tabs(full)
    endpoint = task.replace("-", "_")
    assert endpoint in all_endpoints and f"tab-{task}" in all_tabs

    for without in (Zoo(settings.replace(tiny=True, disabled_plugins=(task,))),
                    Zoo(settings.replace(tiny=True, plugins=tuple(t for t in full.registry.tasks() if t != task)))):
        assert task not in without.registry and not without.registry.quarantined
        endpoints, tabs = _endpoints_and_tabs(without)
        assert endpoints == all_endpoints - {endpoint}
        assert tabs == all_tabs - {f"tab-{task}"}
        others = [t for t in MY_TASKS if t != task]
        assert all(t in without.registry for t in others)
    # The rest still run without it: one text and one image plugin.
    if task != "sentence-similarity":
        result = without.run("sentence-similarity", query=PASSAGES[0], documents="\n".join(PASSAGES), top_k=1)
        assert result["results"][0][2] == PASSAGES[0]
    if task != "image-classification":
        assert len(without.run("image-classification", image=_image(), top_k=2)["labels"]) == 2
