"""Every built-in plugin speaks Simplified Chinese: its `translations["zh-CN"]`, with the app's own text for the
options many tabs share, covers exactly the strings its tab shows (title, description, each field's title, info
and placeholder, and its layout's `ui_strings`), every translation is Chinese, and what
must not be translated (code in backticks, {placeholders}, model ids, URLs, environment variables, numbers,
markdown emphasis) comes through unchanged.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from zoo.i18n import APP_TEXT, plugin_strings, untranslated
from zoo.registry import Registry

LOCALE = "zh-CN"
REGISTRY = Registry.builtin()
PLUGINS = REGISTRY.plugins()

#: English strings whose translation may be the English itself, or carry no Chinese: a string that is only a model
#: id or code. None so far (example placeholders such as `my-sentiment` are kept inside a Chinese "例如：...").
VERBATIM: frozenset[str] = frozenset()

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: What a translation keeps exactly as the English has it.
LITERALS = {
    "code in backticks": re.compile(r"`[^`]+`"),
    "placeholder": re.compile(r"\{[A-Za-z0-9_]*\}"),
    "URL": re.compile(r"https?://[^\s)）]+"),
    "model id": re.compile(r"\b[A-Za-z0-9][\w.-]*/[\w.{}-]+"),
    "environment variable": re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"),
    "number": re.compile(r"\d+(?:[.,]\d+)*"),
}


def strings_of(plugin: Any) -> list[str]:
    """The translatable strings of a plugin (class or instance): zoo.i18n.plugin_strings, the contract."""
    return plugin_strings(plugin)


def chinese(plugin: Any) -> dict[str, str]:
    translations = type(plugin).__dict__.get("translations")
    assert isinstance(translations, dict), f"{type(plugin).__name__} declares no `translations` dict of its own"
    assert isinstance(translations.get(LOCALE), dict), f"{type(plugin).__name__} has no {LOCALE} translations"
    return translations[LOCALE]


def test_every_builtin_plugin_is_checked() -> None:
    assert not REGISTRY.quarantined, [q.error for q in REGISTRY.quarantined]
    assert len(PLUGINS) >= 24


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.task)
def test_every_string_has_a_translation(plugin: Any) -> None:
    """By the plugin itself, or by the app's own text (the sampling options and the seed, shared by many tabs)."""
    table = chinese(plugin)
    missing = untranslated(plugin, LOCALE)
    assert not missing, f"untranslated: {missing}"
    assert all(isinstance(v, str) and v.strip() for v in table.values())
    assert all(s in table or s in APP_TEXT for s in strings_of(plugin))


def test_shared_option_strings_are_translated_once_by_the_app_not_in_every_plugin() -> None:
    """What zoo.generation.sampling_options and Seed declare is the app's text: a plugin repeats it only to put it
    its own way (text classification's "Top k" is a number of labels, not of sampling candidates)."""
    from zoo.generation import sampling_options
    from zoo.plugin import Seed

    shared = {s for f in (*sampling_options(), Seed()) for s in (f.title, f.info) if s}
    assert shared <= set(APP_TEXT), shared - set(APP_TEXT)
    repeated = {(p.task, s) for p in PLUGINS for s, v in chinese(p).items() if s in shared and v == APP_TEXT[s]}
    assert not repeated, f"plugins repeat the app's translation: {sorted(repeated)}"


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.task)
def test_no_unknown_keys(plugin: Any) -> None:
    """A key that is not one of the plugin's strings is a typo, or a string that has since changed."""
    unknown = set(chinese(plugin)) - set(strings_of(plugin))
    assert not unknown, f"translations of strings the plugin does not have: {sorted(unknown)}"


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.task)
def test_translations_are_chinese_and_not_the_english(plugin: Any) -> None:
    for english, translated in chinese(plugin).items():
        if english in VERBATIM:
            continue
        assert translated != english, f"not translated: {english!r}"
        assert CJK.search(translated), f"no Chinese in the translation of {english!r}: {translated!r}"


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.task)
def test_literals_survive_verbatim(plugin: Any) -> None:
    for english, translated in chinese(plugin).items():
        for what, pattern in LITERALS.items():
            lost = set(pattern.findall(english)) - set(pattern.findall(translated))
            assert not lost, f"{what} {sorted(lost)} of {english!r} is missing from {translated!r}"
        for mark in ("**", "`"):
            assert english.count(mark) == translated.count(mark), f"markdown {mark!r} differs: {translated!r}"


def test_shared_strings_read_the_same_everywhere() -> None:
    """A string several plugins share (Seed, Temperature, -1 = random) mostly reads the same in each; the few
    that differ do so on purpose: an extracted answer is 答案, a written one 回答; Top k of sampling is not the
    top k labels of text classification."""
    seen: dict[str, Counter[str]] = {}
    for plugin in PLUGINS:
        for english, translated in chinese(plugin).items():
            seen.setdefault(english, Counter())[translated] += 1
    varied = {english: dict(c) for english, c in seen.items() if len(c) > 1}
    assert set(varied) <= {"Answer", "Top k"}, varied
