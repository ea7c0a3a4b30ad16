"""The app's text in English and Simplified Chinese, through gradio's `gr.I18n`.

Gradio translates in the browser: a component's label, info, placeholder or value that holds one
`__i18n__{"key": ...}` marker shows the browser language's text for that key (English when the
language has none). So the zoo builds every text it shows from a template here (`APP_TEXT`) or a
plugin's strings (`Plugin.translations`), renders it once per language, and registers the result in
a `Catalog`; `Catalog.gradio()` is the `gr.I18n` that `zoo.ui.launch` passes to `demo.launch`.

A text's key is the English text itself (`key`): a page launched without the catalog still reads
in English, and plugin authors write plain English -> Chinese pairs. Gradio reads a key up to its
first "}", so a text holding "}" gets a slug-and-hash key instead.

What the server sends at run time is translated only when it is such a marker whose key the
catalog holds (a model note after a pick). Error toasts (`gr.Error`) are not: gradio 6 shows their
title and message as sent, markers included; so the server writes them in the page's language
(zoo.error_text, which reads the `zoo-lang` cookie the page sets).

The header's switch (`switch_html`) works through what gradio follows, the browser's language:
`EARLY_SCRIPT`, put at the top of the page by `locale_middleware`, makes the page's
`navigator.language` the language picked, before gradio's code reads it.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from zoo.plugin import Plugin

#: The languages the app speaks; English is the source and the fallback.
LOCALES = ("en", "zh-CN")
SOURCE = "en"
#: What the header's language switch offers: locale -> the language's own name.
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}
#: The browser keeps the switch's choice under this name (localStorage).
CHOICE_NAME = "zoo-lang"
#: Joins a text's key and a tab's task when that tab puts the text differently (Catalog.for_plugin).
SCOPE_MARK = "@@"

#: Tab group titles (the grouped tab layout).
GROUP_TITLES = ("Text", "Audio", "Vision", "Multimodal", "Train", "Models", "Other")

#: The app's own text: English template -> Simplified Chinese. `{name}` fields are filled in when shown.
APP_TEXT: dict[str, str] = {
    # header and footer
    "# Model Zoo\nOpen models for text, speech and images in one app, one tab per task. "
    "Pick a tab, click an example, press **Run**.\n\nRunning on **{device}**, {mode} · {tabs}.":
        "# 模型动物园\n在一个应用里使用文本、语音和图像的开放模型，每个任务一个标签页。"
        "选一个标签页，点一个示例，再按 **运行**。\n\n运行于 **{device}**，{mode} · {tabs}。",
    "every tab on its tiny random-weight model": "每个标签页都用其微型随机权重模型",
    "offline (packaged models and the local cache)": "离线（打包的模型和本地缓存）",
    "online (models come from the Hugging Face Hub)": "在线（模型来自 Hugging Face Hub）",
    "{count} tabs": "{count} 个标签页",
    "{count} tabs, {broken} unavailable (marked ⚠️)": "{count} 个标签页，{broken} 个不可用（标有 ⚠️）",
    "Each tab is also an HTTP endpoint: open **Use via API** in a tab, or the API page linked below, "
    "to call it with `gradio_client`.":
        "每个标签页也是一个 HTTP 接口：在标签页中打开 **通过 API 使用**，或打开下方链接的 API 页面，"
        "即可用 `gradio_client` 调用。",
    # tab furniture
    "Run": "运行",
    "Stop": "停止",
    "Advanced options": "高级选项",
    "Examples": "示例",
    "Use via API": "通过 API 使用",
    "🔗 Share": "🔗 分享",
    "Link copied": "链接已复制",
    "Model": "模型",
    # the sampling options every language-model tab offers (zoo.generation.sampling_options) and the seed
    "Max new tokens": "最大生成 token 数",
    "Temperature": "温度",
    "Top p": "Top p（核采样）",
    "Top k": "Top k（采样候选数）",
    "Repetition penalty": "重复惩罚",
    "Seed": "随机种子",
    "-1 = random": "-1 = 随机",
    "Upper bound on generated tokens": "生成 token 数的上限",
    "0 = greedy (deterministic)": "0 = 贪心解码（结果确定）",
    "Type a Hub id to try another model": "输入 Hub 模型 ID 以试用其他模型",
    "{part} model": "{part}模型",
    "No plugin for {task} is served here": "这里没有提供 {task} 的插件",
    "For the {title} step": "用于“{title}”步骤",
    "For the {title} step; type a Hub id to try another model": "用于“{title}”步骤；输入 Hub 模型 ID 以试用其他模型",
    "```python\n{code}```\nEvery option of the tab is a keyword argument too; the API page (footer) lists them.":
        "```python\n{code}```\n标签页的每个选项也都是关键字参数；API 页面（页脚）列出了它们。",
    # model and composition notes
    "<div class='zoo-tiny'>⚠️ <b>Tiny random-weight model</b> (<code>{ref}</code>): outputs are noise. "
    "It shows the plumbing offline; pick a real model for real results.</div>":
        "<div class='zoo-tiny'>⚠️ <b>微型随机权重模型</b>（<code>{ref}</code>）：输出是噪声。"
        "它在离线时演示流程；要得到真实结果，请选择真实模型。</div>",
    "<span class='zoo-model-note'>Model: {name} — runs from the {where}.</span>":
        "<span class='zoo-model-note'>模型：{name} — 运行自{where}。</span>",
    "<span class='zoo-model-note'>Model: {name} — **not available here**: {where}.</span>":
        "<span class='zoo-model-note'>模型：{name} — **此处不可用**：{where}。</span>",
    "{name} (a copy of [{mirror}]({url}))": "{name}（[{mirror}]({url}) 的副本）",
    "<div class='zoo-quarantine'>⚠️ {message}<br><b>Fix:</b> {fix}</div>":
        "<div class='zoo-quarantine'>⚠️ {message}<br><b>解决方法：</b> {fix}</div>",
    "<span class='zoo-model-note'>Runs no model: it computes its outputs here.</span>":
        "<span class='zoo-model-note'>不运行模型：它在这里直接计算输出。</span>",
    "<span class='zoo-model-note'>Without a model of its own it uses other tabs ({steps}); "
    "pick their models below.</span>":
        "<span class='zoo-model-note'>没有自己的模型时，它使用其他标签页（{steps}）；请在下方选择它们的模型。</span>",
    "<span class='zoo-model-note'>Uses other tabs ({steps}); pick their models below.</span>":
        "<span class='zoo-model-note'>使用其他标签页（{steps}）；请在下方选择它们的模型。</span>",
    "{part}: {title}": "{part}：{title}",
    # a broken plugin's tab
    "<div class='zoo-quarantine'><h3>⚠️ Plugin <code>{name}</code> is unavailable</h3>"
    "<p><b>Error:</b> {error}</p><p><b>Fix:</b> {fix}</p><p>Source: {source}. Every other tab keeps working.</p></div>":
        "<div class='zoo-quarantine'><h3>⚠️ 插件 <code>{name}</code> 不可用</h3>"
        "<p><b>错误：</b> {error}</p><p><b>解决方法：</b> {fix}</p><p>来源：{source}。其他标签页照常工作。</p></div>",
    "Details": "详情",
    "Traceback": "回溯",
    # tab groups
    "Text": "文本",
    "Audio": "音频",
    "Vision": "视觉",
    "Multimodal": "多模态",
    "Train": "训练",
    "Models": "模型管理",
    "Other": "其他",
    "⚠️ Unavailable": "⚠️ 不可用",
}

_ZH: Mapping[str, Mapping[str, str]] = {"zh-CN": APP_TEXT}


def key(text: str) -> str:
    """The translation key of an English text: the text itself, or `<slug>-<hash>` when it holds "}"
    (gradio's browser code reads a key up to its first "}"). Stable: the same text, the same key."""
    if "}" not in text:
        return text
    slug = "-".join(re.findall(r"[a-z0-9]+", text.lower())[:6])[:40] or "text"
    return f"{slug}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


def plugin_strings(plugin: "type[Plugin] | Plugin") -> list[str]:
    """A plugin's translatable strings: title, description, each field's label, info and placeholder, and
    the words its own tab layout shows (`ui_strings`)."""
    found = [plugin.title, plugin.description]
    for f in (*plugin.inputs, *plugin.options, *plugin.outputs):
        found += [f.title, f.info, getattr(f, "placeholder", None)]
    found += list(getattr(plugin, "ui_strings", ()) or ())
    return [s for s in dict.fromkeys(found) if isinstance(s, str) and s]


def untranslated(plugin: "type[Plugin] | Plugin", locale: str = "zh-CN") -> list[str]:
    """The plugin's strings that show in English in `locale`: neither its own `translations` nor the app's text
    (APP_TEXT: "Seed", the sampling options of zoo.generation) put them in that language."""
    own = _own_translations(plugin).get(locale, {})
    return [s for s in plugin_strings(plugin) if s not in own and s not in _ZH.get(locale, {})]


def translation_problems(plugin: "type[Plugin] | Plugin") -> list[str]:
    """What is wrong with a plugin's `translations` (empty when fine): its shape, locales, and keys that
    are not among its strings (a typo would otherwise stay English without a word)."""
    translations = getattr(plugin, "translations", {})
    if not isinstance(translations, Mapping):
        return [f"`translations` must map a locale to {{English text: translation}}, e.g. "
                f"{{'zh-CN': {{'Text generation': '文本生成'}}}}, got {translations!r}"]
    problems = []
    strings = set(plugin_strings(plugin))
    for locale, table in translations.items():
        if locale not in LOCALES or locale == SOURCE:
            problems.append(f"`translations` locale {locale!r} is not one the app speaks; use one of "
                            f"{[loc for loc in LOCALES if loc != SOURCE]}")
            continue
        if not isinstance(table, Mapping):
            problems.append(f"`translations[{locale!r}]` must map English text to its translation, got {table!r}")
            continue
        for english, text in table.items():
            if english not in strings:
                close = _closest(english, strings)
                hint = f"did you mean {close!r}? " if close else ""
                problems.append(f"`translations[{locale!r}]` key {english!r} is not one of the plugin's strings "
                                f"(title, description, field labels, info, placeholders, ui_strings); {hint}"
                                "use the exact English text (zoo.i18n.plugin_strings lists them)")
            elif not isinstance(text, str) or not text.strip():
                problems.append(f"`translations[{locale!r}][{english!r}]` must be a non-empty string, got {text!r}")
    return problems


def _closest(text: str, options: Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(text, list(options), n=1, cutoff=0.6)
    return match[0] if match else None


class Localized(dict):
    """One text in every language: locale -> text (a value for a template field, or what `Catalog.text` gives)."""

    @property
    def english(self) -> str:
        """The English text."""
        return self[SOURCE]


class Catalog:
    """The texts one app shows, each in every language; `gradio()` makes the `gr.I18n` for `launch`.

    `known` holds the translations to draw from: the app's own (`APP_TEXT`) and the plugins'
    (`Plugin.translations`). A text without a translation shows in English.
    """

    def __init__(self, plugins: Iterable["type[Plugin] | Plugin"] = ()):
        # The plugins' translations, then the app's own on top: the app's text reads the same everywhere, and a
        # plugin's own strings read its way in its tab (for_plugin).
        self.known: dict[str, dict[str, str]] = {loc: {} for loc in LOCALES if loc != SOURCE}
        for plugin in plugins:
            for locale, table in _own_translations(plugin).items():
                self.known[locale].update(table)
        for locale, table in _ZH.items():
            self.known[locale].update(table)
        self.entries: dict[str, dict[str, str]] = {loc: {} for loc in LOCALES}
        self.scope = ""  # a plugin's task in a `for_plugin` view

    def for_plugin(self, plugin: "type[Plugin] | Plugin") -> "Catalog":
        """This catalog as one plugin's tab uses it: that plugin's own translations win over other plugins'
        (two plugins may put the same English differently: "Top k" labels, or sampling candidates). The view
        registers into this catalog; a text it puts differently from what is registered gets a key of its own."""
        view = Catalog.__new__(Catalog)
        view.known = {loc: {**table, **_own_translations(plugin).get(loc, {})} for loc, table in self.known.items()}
        view.entries = self.entries
        view.scope = plugin.task
        return view

    @classmethod
    def for_registry(cls, registry: Any) -> "Catalog":
        """The app's text plus the translations of every plugin in `registry`."""
        return cls(registry.plugins())

    def translate(self, text: str, locale: str) -> str:
        """`text` in `locale`: its known translation, else the English text."""
        return text if locale == SOURCE else self.known.get(locale, {}).get(text, text)

    def render(self, template: str, **fields: Any) -> Localized:
        """`template` filled in, in every language; a `Localized` field gives each language its own text."""
        out = Localized()
        for locale in LOCALES:
            values = {k: v.get(locale, v.english) if isinstance(v, Localized) else v for k, v in fields.items()}
            text = self.translate(template, locale)
            out[locale] = text.format(**values) if fields else text
        return out

    def word(self, text: str) -> Localized:
        """A known text (a plugin title, a mode) as a field value for another template, untouched by format."""
        return Localized({loc: self.translate(text, loc) for loc in LOCALES})

    def text(self, template: str | Localized, **fields: Any) -> Any:
        """What a component shows for `template` (filled in with `fields`): gradio's translation marker, its
        key the English text. Register it in the catalog; without gradio, the English text."""
        texts = template if isinstance(template, Localized) else self.render(template, **fields)
        english = texts.english
        k = key(english)
        if self.scope and any(value != english and self.entries[locale].get(k, value) != value
                              for locale, value in texts.items() if locale != SOURCE):
            k = f"{k}{SCOPE_MARK}{self.scope}"  # put differently elsewhere on the page: a key of this tab's
        for locale, value in texts.items():
            if locale == SOURCE or value != english:
                self.entries[locale][k] = value
        return _marker(k)

    __call__ = text

    def english(self, value: Any) -> Any:
        """The English text behind a marker (or a string holding one, as a gradio config does); other values as given."""
        k = getattr(value, "key", None)
        if k is None and isinstance(value, str) and value.startswith("__i18n__"):
            k = _marker_key(value)
        return value if k is None else self.entries[SOURCE].get(k, k)

    def gradio(self) -> Any:
        """The `gr.I18n` holding every registered text, for `demo.launch(i18n=...)`."""
        import gradio as gr

        return gr.I18n(**{loc: dict(table) for loc, table in self.entries.items()})


def _marker(k: str) -> Any:
    """Gradio's translation marker for key `k`, its text readable (not \\u-escaped) in the page's config."""
    import json

    from gradio.i18n import I18nData

    class Marker(I18nData):
        def __str__(self) -> str:
            return "__i18n__" + json.dumps(self.to_dict(), ensure_ascii=False)

    return Marker(k)


def _marker_key(text: str) -> str | None:
    import json

    try:
        return json.loads(text[len("__i18n__"):]).get("key")
    except ValueError:
        return None


def english(value: Any) -> Any:
    """The English text of a marker whose key is its text (see `key`), for tests reading a gradio config."""
    if isinstance(value, str) and value.startswith("__i18n__"):
        return _unscoped(_marker_key(value)) or value
    k = getattr(value, "key", None)
    return value if k is None else _unscoped(k)


def _unscoped(k: str | None) -> str | None:
    """A key without a tab's scope (Catalog.for_plugin)."""
    return k.split(SCOPE_MARK, 1)[0] if k else k


def _own_translations(plugin: "type[Plugin] | Plugin") -> Mapping[str, Mapping[str, str]]:
    """A plugin's `translations`, or none when they are malformed (the registry refused or quarantined it
    already; its tab shows English)."""
    if translation_problems(plugin):
        return {}
    return getattr(plugin, "translations", {}) or {}


#: Runs in the page before gradio's own code: a language picked with the switch (`?lang=zh-CN`, kept
#: in localStorage) stands in for the browser's, which is what gradio's translation follows.
#: `?lang=auto` goes back to the browser's language. The language the page shows goes into the `zoo-lang`
#: cookie too, so that the server writes its error messages in it (zoo.error_text).
EARLY_SCRIPT = """<script>(function(){try{
var name=%(name)r, q=new URLSearchParams(location.search).get('lang');
if(q==='auto'){localStorage.removeItem(name);}else if(q){localStorage.setItem(name,q);}
var l=localStorage.getItem(name);
if(l){Object.defineProperty(Navigator.prototype,'language',{get:function(){return l;},configurable:true});
Object.defineProperty(Navigator.prototype,'languages',{get:function(){return [l];},configurable:true});}
document.cookie=name+'='+encodeURIComponent(l||navigator.language||'')+';path=/;SameSite=Lax';
}catch(e){}})();</script>""".replace("\n", "") % {"name": CHOICE_NAME}


def switch_html() -> str:
    """The header's language switch: a link per language (each in its own language)."""
    links = " · ".join(f"<a href='?lang={loc}' target='_self' data-lang='{loc}'>{name}</a>"
                       for loc, name in LANGUAGE_NAMES.items())
    return f"<div class='zoo-languages' lang=''>🌐 {links}</div>"


def locale_middleware() -> Any:
    """ASGI middleware that puts `EARLY_SCRIPT` at the top of the app's HTML pages."""
    from starlette.middleware import Middleware

    return Middleware(_EarlyScript)


class _EarlyScript:
    """Inserts `EARLY_SCRIPT` after `<head>` in HTML responses (the app's page), leaving the rest alone."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body: list[bytes] = []
        html = False

        async def wrapped(message: Any) -> None:
            nonlocal html
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", []))
                html = headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers
                if not html:
                    await send(message)
                    return
                start.update(message)
                return
            if message["type"] == "http.response.body" and html:
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                page = b"".join(body).replace(b"<head>", b"<head>" + EARLY_SCRIPT.encode("utf-8"), 1)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(page)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": page})
                return
            await send(message)

        await self.app(scope, receive, wrapped)
