"""zoo/i18n.py: the app's text in English and Simplified Chinese, and the plugins' own translations."""

from __future__ import annotations

import re
from typing import Any

import pytest

from zoo import i18n
from zoo.i18n import APP_TEXT, GROUP_TITLES, Catalog, key, plugin_strings, translation_problems
from zoo.plugin import Int, Plugin, RunContext, Seed, Text
from zoo.registry import Registry, declaration_problems
from zoo.runner import Zoo
from zoo.settings import Settings

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # ideographs, CJK and fullwidth punctuation


class Greet(Plugin):
    """A toy plugin with every kind of translatable string, translated."""

    api_version = 2
    task = "greet-i18n-test"
    title = "Greeting"
    description = "Says hello."
    inputs = (Text("name", placeholder="Your name", info="Who to greet"),)
    options = (Int("times", 1, 1, 5, label="How many times"), Seed())
    outputs = (Text("greeting"),)
    examples = ({"name": "Ann"},)
    translations = {"zh-CN": {"Greeting": "问候", "Says hello.": "打个招呼。", "Name": "名字", "Your name": "你的名字",
                              "Who to greet": "问候谁", "How many times": "次数"}}

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"greeting": " ".join([f"Hello {values['name']}"] * values["times"])}


def test_plugin_strings_are_title_description_and_each_fields_label_info_placeholder() -> None:
    assert plugin_strings(Greet) == ["Greeting", "Says hello.", "Name", "Who to greet", "Your name",
                                     "How many times", "Seed", "-1 = random"]
    assert plugin_strings(Greet()) == plugin_strings(Greet)  # the class or the registry's instance
    # Repeats count once; a field without info or placeholder adds only its label.
    class Twice(Greet):
        description = "Greeting"
        outputs = (Text("greeting", label="Name"),)
    assert plugin_strings(Twice)[:2] == ["Greeting", "Name"] and plugin_strings(Twice).count("Name") == 1


def test_keys_are_derived_from_the_english_text_and_stable() -> None:
    assert key("Run") == "Run" and key("Advanced options") == "Advanced options"
    braced = 'Send {"image": ...}'
    assert key(braced) == key(braced) and re.fullmatch(r"send-image-[0-9a-f]{10}", key(braced))
    assert "}" not in key(braced) and key(braced) != key(braced + " ")


def test_every_app_text_has_a_chinese_translation_with_the_same_fields() -> None:
    assert set(GROUP_TITLES) <= set(APP_TEXT)
    for english, chinese in APP_TEXT.items():
        assert CJK.search(chinese), (english, chinese)
        fields = lambda s: sorted(re.findall(r"\{(\w+)\}", s))  # noqa: E731
        assert fields(english) == fields(chinese), (english, chinese)
    for fixed in ("Run", "Stop", "Advanced options", "Examples", "Model", "Use via API", "Details"):
        assert fixed in APP_TEXT


def test_unknown_translation_keys_are_a_declaration_error_naming_the_key_and_the_fix() -> None:
    class Typo(Greet):
        translations = {"zh-CN": {"Greetings": "问候"}}
    problems = translation_problems(Typo)
    assert len(problems) == 1
    assert "'Greetings' is not one of the plugin's strings" in problems[0] and "did you mean 'Greeting'" in problems[0]
    assert "zoo.i18n.plugin_strings" in problems[0]
    assert declaration_problems(Typo) == problems
    with pytest.raises(Exception, match="Greetings"):
        Registry().register(Typo)

    class Klingon(Greet):
        translations = {"tlh": {"Greeting": "nuqneH"}}
    assert "locale 'tlh' is not one the app speaks; use one of ['zh-CN']" in translation_problems(Klingon)[0]

    class Empty(Greet):
        translations = {"zh-CN": {"Greeting": " "}}
    assert "must be a non-empty string" in translation_problems(Empty)[0]
    assert translation_problems(Greet) == [] and declaration_problems(Greet) == []


def test_a_plugins_translations_reach_the_i18n_object_and_untranslated_text_stays_english(settings: Settings) -> None:
    from zoo.ui import build_demo

    registry = Registry()
    registry.register(Greet)
    demo = build_demo(Zoo(settings.replace(tiny=True), registry=registry))
    tables = demo.zoo_text.gradio().translations_dict
    en, zh = tables["en"], tables["zh-CN"]
    assert zh["Greeting"] == "问候" and zh["Your name"] == "你的名字" and zh["How many times"] == "次数"
    assert zh["### Greeting\nSays hello."] == "### 问候\n打个招呼。"  # the tab's header
    assert zh["Run"] == "运行" and zh["Advanced options"] == "高级选项"
    assert zh["Seed"] == "随机种子"  # the plugin's Seed() reads in the app's words, translated once for every tab
    assert en["Greeting"] == "Greeting" and "Greeting" in en  # English is registered too: the fallback
    # The components carry the keys: the tab title, the labels, the placeholder.
    config = demo.get_config_file()
    tab = next(c for c in config["components"] if c["type"] == "tabitem" and c["props"].get("id") == Greet.task)
    assert i18n.english(tab["props"]["label"]) == "Greeting"
    box = next(c for c in config["components"] if c["props"].get("elem_id") == f"zoo-{Greet.task}-in-name")
    assert i18n.english(box["props"]["label"]) == "Name" and i18n.english(box["props"]["placeholder"]) == "Your name"
    assert i18n.english(box["props"]["info"]) == "Who to greet"
    marker = demo.zoo_text("Nobody translated this")  # untranslated: English in every language
    assert tables is not None and demo.zoo_text.entries["en"][marker.key] == "Nobody translated this"
    assert marker.key not in demo.zoo_text.entries["zh-CN"]


def test_two_plugins_that_put_one_english_text_differently_each_read_their_own_way(settings: Settings) -> None:
    """Translations are global keys in gr.I18n; a plugin whose words differ from another's gets keys of its own."""
    from zoo.ui import build_demo

    class Counter(Greet):
        task = "count-i18n-test"
        title = "Counter"
        description = "Counts."
        translations = {"zh-CN": {"Counter": "计数器", "Counts.": "计数。", "Name": "名称", "Your name": "你的名字",
                                  "Who to greet": "问候谁", "How many times": "重复次数"}}

    registry = Registry()
    registry.register(Greet)
    registry.register(Counter)
    demo = build_demo(Zoo(settings.replace(tiny=True), registry=registry))
    zh = demo.zoo_text.entries["zh-CN"]
    config = demo.get_config_file()

    def label(task: str, name: str) -> str:
        box = next(c for c in config["components"] if c["props"].get("elem_id") == f"zoo-{task}-in-{name}")
        return box["props"]["label"]

    def key_of(value: object) -> str:
        return getattr(value, "key", None) or i18n._marker_key(str(value))

    greet, count = key_of(label(Greet.task, "name")), key_of(label(Counter.task, "name"))
    assert (zh[greet], zh[count]) == ("名字", "名称") and greet != count
    assert i18n.english(label(Counter.task, "name")) == "Name"  # the English behind a tab's own key
    # The same words put the same way share one key.
    shared = [k for k in zh if k.split(i18n.SCOPE_MARK)[0] == "Your name"]
    assert shared == ["Your name"]


def test_templates_render_each_language_with_translated_fields() -> None:
    catalog = Catalog([Greet])
    steps = catalog.render("{part}: {title}", part="echo", title=catalog.word("Greeting"))
    assert steps == {"en": "echo: Greeting", "zh-CN": "echo：问候"}
    marker = catalog("For the {title} step", title=catalog.word("Greeting"))
    assert marker.key == "For the Greeting step"
    assert catalog.entries["zh-CN"]["For the Greeting step"] == "用于“问候”步骤"
    assert catalog.english(str(marker)) == "For the Greeting step"


def test_a_plugin_with_a_broken_translation_table_is_left_english() -> None:
    class Typo(Greet):
        translations = {"zh-CN": {"Greetings": "问候", "Greeting": "问候"}}
    assert Catalog([Typo]).translate("Greeting", "zh-CN") == "Greeting"
    assert Catalog([Greet]).translate("Greeting", "zh-CN") == "问候"


def test_the_early_script_lands_at_the_top_of_html_pages_only() -> None:
    import asyncio

    async def page(scope: Any, receive: Any, send: Any) -> None:
        kind = b"text/html; charset=utf-8" if scope["path"] == "/" else b"application/json"
        body = b"<html><head><title>x</title></head></html>" if scope["path"] == "/" else b"{}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def fetch(path: str) -> tuple[dict[bytes, bytes], bytes]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        await i18n._EarlyScript(page)({"type": "http", "method": "GET", "path": path}, None, send)
        return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])

    headers, body = asyncio.run(fetch("/"))
    assert body.startswith(b"<html><head><script>") and b"zoo-lang" in body and b"<title>x</title>" in body
    assert int(headers[b"content-length"]) == len(body)
    headers, body = asyncio.run(fetch("/config"))
    assert body == b"{}" and headers[b"content-length"] == b"2"
