"""Groups: every plugin's tab sits under a top-level group tab (zoo.plugin.GROUPS), `?tab=` opens one, and
every tab has a share button. The demo's structure is read from the built gr.Blocks, no server."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from zoo.errors import PluginLoadError
from zoo.i18n import english
from zoo.plugin import GROUPS, Audio, Image, Labels, ModelChoices, Plugin, Text, Video, group_of, inferred_group
from zoo.registry import Registry
from zoo.runner import Zoo
from zoo.settings import Settings
from zoo.testing import check_plugin

#: Where each built-in plugin belongs: the declaration in its file must say so.
BUILTIN_GROUPS = {
    "text": ["text-generation", "conversational", "question-answering", "translation", "summarization",
             "text-classification", "token-classification", "zero-shot-classification", "sentence-similarity",
             "document-qa"],
    "audio": ["voice-chat", "automatic-speech-recognition", "text-to-speech"],
    "vision": ["text-to-image", "image-to-image", "image-classification", "image-to-text", "object-detection",
               "image-segmentation", "depth-estimation", "video-classification"],
    "multimodal": ["image-text-to-text"],
    "train": ["fine-tune"],
    "models": ["models"],
}


class _Base(Plugin):
    """A model-less throwaway plugin; subclasses declare fields (and a group) only."""

    api_version = 2
    outputs = (Text("out"),)

    def run(self, model: Any, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"out": "ok"}


class Listen(_Base):
    task, title = "listen-test", "Listen"
    inputs = (Audio("clip"),)


class Look(_Base):
    task, title = "look-test", "Look"
    inputs = (Image("picture"),)
    outputs = (Labels("labels"),)


class Watch(_Base):
    task, title = "watch-test", "Watch"
    inputs = (Video("clip"),)
    outputs = (Labels("labels"),)


class AskPicture(_Base):
    task, title = "ask-picture-test", "Ask a picture"
    inputs = (Image("picture"), Text("question"))


class Words(_Base):
    task, title = "words-test", "Words"
    inputs = (Text("text"),)


class Sounds(_Base):
    task, title = "sounds-test", "Sounds"
    group = "sounds"
    inputs = (Text("text"),)


def _structure(demo: Any) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """[(group tab id, its title, [(plugin tab id, its title), ...]), ...] as built, in order."""
    import gradio as gr

    outer = next(b for b in demo.blocks.values() if isinstance(b, gr.Tabs) and b.elem_id == "zoo-groups")
    found = []
    for group_tab in outer.children:
        nested = [c for c in group_tab.children if isinstance(c, gr.Tabs)]
        assert len(nested) == 1, f"group tab {group_tab.id} holds {group_tab.children}, not one gr.Tabs"
        found.append((group_tab.id, english(group_tab.label),  # labels are i18n markers: read their English
                      [(t.id, english(t.label)) for t in nested[0].children if isinstance(t, gr.Tab)]))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from zoo.ui import build_demo

    settings = Settings(offline=True, tiny=True, cache_dir=tmp_path_factory.mktemp("cache"), plugin_sources="builtin")
    return build_demo(Zoo(settings))


def test_groups_in_order_with_every_plugin_under_its_own(demo: Any) -> None:
    structure = _structure(demo)
    assert [(gid, title) for gid, title, _ in structure] == [(f"group-{g}", t) for g, t in GROUPS.items()]
    assert list(GROUPS.values()) == ["Text", "Audio", "Vision", "Multimodal", "Train", "Models"]
    registry = demo.zoo.registry
    for gid, _, tabs in structure:
        group = gid.removeprefix("group-")
        assert [task for task, _ in tabs] == BUILTIN_GROUPS[group], group
        # Each tab keeps its title and sits in tab order (order, then title) within the group.
        assert [title for _, title in tabs] == [registry.get(task).title for task, _ in tabs]
        assert [registry.get(t).order for t, _ in tabs] == sorted(registry.get(t).order for t, _ in tabs)
    assert sorted(t for _, _, tabs in structure for t, _ in tabs) == sorted(registry.tasks())
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {f"tab-{task}" for task in registry.tasks()} <= ids


def test_every_builtin_plugin_declares_its_group() -> None:
    registry = Registry.builtin()
    for plugin in registry.plugins():
        declared = vars(type(plugin)).get("group")
        assert declared in GROUPS, f"{type(plugin).__name__} declares group {declared!r}"
        assert plugin.task in BUILTIN_GROUPS[declared]


@pytest.mark.parametrize("cls, group", [(Listen, "audio"), (Look, "vision"), (Watch, "vision"),
                                        (AskPicture, "multimodal"), (Words, "text")])
def test_a_plugin_without_a_group_gets_one_from_its_fields(cls: type[Plugin], group: str, settings: Settings) -> None:
    from zoo.ui import build_demo

    assert cls.group == "" and inferred_group(cls) == group and group_of(cls) == group
    registry = Registry()
    registry.register(cls)
    registry.register(Words if cls is not Words else Listen)
    structure = _structure(build_demo(Zoo(settings.replace(tiny=True), registry=registry)))
    assert (f"group-{group}", GROUPS[group], [(cls.task, cls.title)]) in structure
    # A declared group wins over the fields.
    assert group_of(type("Declared", (cls,), {"group": "train"})) == "train"


def test_an_unknown_group_is_a_declaration_error_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(PluginLoadError) as err:
        Registry().register(Sounds)
    message = str(err.value)
    assert "Sounds" in message and "`group` is 'sounds'" in message
    assert "use one of text, audio, vision, multimodal, train, models" in message
    with pytest.raises(AssertionError, match="`group` is 'sounds'"):
        check_plugin(Sounds)
    # Discovery quarantines it (its tab shows the error) instead of failing the app.
    registry = Registry()
    try:
        registry.register(Sounds)
    except PluginLoadError as exc:
        registry.quarantine(Sounds.task, "tests", exc)
    assert "not a group" in registry.quarantined[0].error


def test_tab_names_and_what_a_link_opens() -> None:
    from zoo.ui import linked_tab, tab_names

    names = tab_names(Registry.builtin().plugins())
    assert linked_tab("conversational", names) == ("text", "conversational", "")
    assert linked_tab("chat", names) == ("text", "conversational", "")  # the endpoint name
    assert linked_tab("text_to_speech", names) == ("audio", "text-to-speech", "")
    assert linked_tab(" Fine-Tune ", names) == ("train", "fine-tune", "")
    assert linked_tab("vision", names) == ("vision", None, "")  # a group: its first tab
    assert linked_tab("", names) == (None, None, "")
    group, task, note = linked_tab("no-such-<tab>", names)
    assert (group, task) == (None, None)
    assert "<code>no-such-&lt;tab&gt;</code>" in note and "opened the first tab" in note
    assert "<code>conversational</code>" in note and "<code>models</code>" in note


def test_the_link_handler_selects_the_group_and_its_tab(demo: Any) -> None:
    import gradio as gr

    load = next(fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "open_linked")
    assert [getattr(o, "elem_id", None) for o in load.outputs] == (
        ["zoo-groups"] + [f"zoo-{g}-tabs" for g in GROUPS] + ["zoo-tab-note"])
    assert inspect.signature(load.fn).parameters["request"].annotation is gr.Request

    class Request:
        def __init__(self, **query: str) -> None:
            self.query_params = query

    updates = load.fn(Request(tab="chat"))
    assert updates[0].selected == "group-text" and updates[1].selected == "conversational"
    assert all(u is gr.skip() or isinstance(u, dict) for u in updates[2:-1])  # the other groups stay as they are
    updates = load.fn(Request(tab="depth_estimation"))
    assert updates[0].selected == "group-vision" and updates[3].selected == "depth-estimation"
    updates = load.fn(Request(tab="nonsense"))
    assert updates[-1].visible is True and "<code>nonsense</code>" in updates[-1].value
    assert all(not isinstance(u, gr.Tabs) for u in updates[:-1])  # the first tab stays
    assert all(not isinstance(u, gr.Tabs) for u in load.fn(Request()))


def test_every_plugin_tab_has_a_share_button_that_sends_its_inputs_then_links_the_tab(demo: Any) -> None:
    import gradio as gr

    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    for task in demo.zoo.registry.tasks():
        button = blocks[f"zoo-{task}-share"]
        assert isinstance(button, gr.DeepLinkButton) and button.get_block_name() == "button"
        clicks = [fn for fn in demo.fns.values() if any(t[0] == button._id for t in fn.targets)]
        assert clicks, f"{task}: the share button has no click"
        chain = [fn for fn in demo.fns.values() if fn.js and f'"tab", "{task}"' in fn.js]
        assert len(chain) == 1 and "gradio_api/deep_link" in chain[0].js, task
        if clicks[0].fn is not None:  # a tab with inputs sends them first, as sent, so that the link holds them
            assert clicks[0].preprocess is False and clicks[0].inputs and not clicks[0].outputs
    sent = next(fn for fn in demo.fns.values()
                if any(t[0] == blocks["zoo-text-classification-share"]._id for t in fn.targets))
    fields = [f.name for f in demo.zoo.registry.get("text-classification").fields()]
    assert fields[:1] == ["text"] and [c.elem_id for c in sent.inputs] == [
        f"zoo-text-classification-in-{name}" for name in (*fields, "model")]
