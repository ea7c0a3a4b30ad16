"""Browser tier: the app's languages. A zh-CN browser reads Chinese; the header's switch changes the language.

The app serves one built-in tab and a third-party plugin (installed as a package, with an entry
point) that brings its own Chinese translations, so both the app's text and a plugin's reach the page.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from browser_helpers import PageErrors, install_fake_distribution
from servers import AppServer, start_app

pytestmark = pytest.mark.browser

GREET_MODULE = "zoo_plugin_greet_i18n"
GREET = '''
from zoo import Plugin, Text


class Greet(Plugin):
    api_version = 2
    task = "greet-i18n"
    title = "Greeting"
    description = "Says hello to someone."
    inputs = (Text("name", placeholder="Your name"),)
    outputs = (Text("greeting"),)
    examples = ({"name": "Ann"},)
    translations = {"zh-CN": {"Greeting": "问候", "Says hello to someone.": "向某人打招呼。", "Name": "名字",
                              "Your name": "你的名字"}}

    def run(self, model, values, ctx):
        return {"greeting": "Hello " + values["name"]}
'''


@pytest.fixture(scope="module")
def app(model_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`python app.py` with the sentiment tab (tiny) and the translated third-party plugin."""
    site = tmp_path_factory.mktemp("i18n-plugins")
    install_fake_distribution(site, GREET_MODULE, GREET, f"greet-i18n = {GREET_MODULE}")
    env = {
        "HF_HUB_OFFLINE": "1",
        "ZOO_TINY": "1",
        "ZOO_CACHE_DIR": str(model_cache_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ZOO_PLUGIN_SOURCES": "all",
        "ZOO_PLUGINS": "text-classification,greet-i18n",
    }
    with start_app(env, log=tmp_path_factory.mktemp("app-log") / "app.log", timeout=60) as server:
        yield server




def _page(browser: Any, app: AppServer, locale: str) -> tuple[Any, Any, PageErrors]:
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors = PageErrors()
    errors.attach(page)
    return context, page, errors


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("button[role=tab]", timeout=30_000)


def _tabs(page: Any) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('.tab-container.visually-hidden button')].map(b => b.textContent.trim())")


def _shows(page: Any, selector: str, text: str) -> str:
    """Wait until the element's text holds `text` (gradio translates as the page starts); return the text."""
    locator = page.locator(selector).first
    deadline_ms = 10_000
    step = 200
    for _ in range(deadline_ms // step):
        shown = locator.inner_text()
        if text in shown:
            return shown
        page.wait_for_timeout(step)
    return locator.inner_text()


def test_a_chinese_browser_reads_the_app_and_a_plugin_in_chinese(browser: Any, app: AppServer) -> None:
    context, page, errors = _page(browser, app, "zh-CN")
    try:
        _open(page, app.url)
        assert page.evaluate("navigator.language") == "zh-CN"
        assert "模型动物园" in _shows(page, ".zoo-header", "模型动物园")
        assert "问候" in _tabs(page) and "文本分类" in _tabs(page)  # a third-party plugin's title, and a built-in's
        page.locator("div[role=tablist] button[role=tab]", has_text="问候").first.click()
        panel = page.locator("#tab-greet-i18n")
        assert "向某人打招呼。" in _shows(page, "#tab-greet-i18n", "向某人打招呼。")
        assert _shows(page, "#zoo-greet-i18n-run", "运行").strip() == "运行"
        assert "名字" in panel.locator("#zoo-greet-i18n-in-name").inner_text()
        assert panel.locator("#zoo-greet-i18n-in-name textarea, #zoo-greet-i18n-in-name input").first \
            .get_attribute("placeholder") == "你的名字"
        # The app's own text on a built-in tab: the buttons and the folded options.
        page.locator("div[role=tablist] button[role=tab]", has_text="文本分类").first.click()
        assert _shows(page, "#zoo-text-classification-run", "运行").strip() == "运行"
        assert "高级选项" in _shows(page, "#tab-text-classification", "高级选项")
        assert "微型随机权重模型" in page.locator("#tab-text-classification").inner_text()  # the tiny model's note
        share = page.locator("#zoo-text-classification-share")
        assert _shows(page, "#zoo-text-classification-share", "分享").strip() == "🔗 分享"
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        share.click()
        assert _shows(page, "#zoo-text-classification-share", "链接已复制").strip() == "链接已复制"
    finally:
        context.close()
    assert not errors.entries, "\n".join(errors.entries)


def test_the_switch_changes_english_to_chinese_and_stays(browser: Any, app: AppServer) -> None:
    context, page, errors = _page(browser, app, "en-US")
    try:
        _open(page, app.url)
        assert "Model Zoo" in _shows(page, ".zoo-header", "Model Zoo")
        assert "Greeting" in _tabs(page)
        assert _shows(page, "#zoo-text-classification-run", "Run").strip() == "Run"
        page.locator("#zoo-languages a[data-lang='zh-CN']").click()
        page.wait_for_url("**/?lang=zh-CN")
        page.wait_for_selector("button[role=tab]")
        assert "模型动物园" in _shows(page, ".zoo-header", "模型动物园")
        assert "问候" in _tabs(page)
        assert _shows(page, "#zoo-text-classification-run", "运行").strip() == "运行"
        # The choice stays: the app's address without the parameter still reads Chinese.
        _open(page, app.url)
        assert "模型动物园" in _shows(page, ".zoo-header", "模型动物园")
        # And back to English.
        page.locator("#zoo-languages a[data-lang='en']").click()
        page.wait_for_url("**/?lang=en")
        page.wait_for_selector("button[role=tab]")
        assert "Model Zoo" in _shows(page, ".zoo-header", "Model Zoo")
        assert _shows(page, "#zoo-text-classification-run", "Run").strip() == "Run"
        assert "Greeting" in _tabs(page)
    finally:
        context.close()
    assert not errors.entries, "\n".join(errors.entries)


def _error_after_empty_run(page: Any) -> str:
    """Run the greeting tab with its required name left empty; the error toast's text (title and message)."""
    page.locator("div[role=tablist] button[role=tab]", has_text="问候").or_(
        page.locator("div[role=tablist] button[role=tab]", has_text="Greeting")).first.click()
    page.locator("#zoo-greet-i18n-run").click()
    toast = page.locator(".toast-body.error").first
    toast.wait_for(state="visible", timeout=30_000)
    return toast.inner_text().strip()


def test_error_toasts_come_in_the_pages_language(browser: Any, app: AppServer) -> None:
    # A Chinese browser: the server reads its language (the page's cookie, and Accept-Language).
    context, page, _ = _page(browser, app, "zh-CN")
    try:
        _open(page, app.url)
        shown = _error_after_empty_run(page)
        # (gradio 6's toast shows its own heading, not the error's title: the title is checked in test_error_text)
        assert "`name`" in shown or "name" in shown, shown
        assert "不能为空" in shown and "解决办法" in shown and "must not be empty" not in shown, shown
    finally:
        context.close()
    # An English browser that picked Chinese with the switch: the choice reaches the server too, and back.
    context, page, _ = _page(browser, app, "en-US")
    try:
        _open(page, app.url + "?lang=zh-CN")
        shown = _error_after_empty_run(page)
        assert "不能为空" in shown and "解决办法" in shown, shown
        _open(page, app.url + "?lang=en")
        shown = _error_after_empty_run(page)
        assert "must not be empty" in shown and "Fix: type some name" in shown, shown
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in shown), shown
    finally:
        context.close()
