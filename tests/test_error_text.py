"""Errors in the reader's language (zoo/error_text.py): the fields' refusals, and the zoo's common media errors,
read in Chinese with their names and values as they were; English stays exactly as raised; the language comes
from the page's cookie, else the browser's Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from zoo import plugin as P
from zoo.error_text import (ERROR_TEXT, accept_language, error_message, error_title, match_locale, request_locale,
                            translate, unexpected_message)
from zoo.errors import CallCycle, InvalidInput, ModelNotFound, TooLarge, ZooError

LIMITS = P.Limits()
CJK = re.compile(r"[\u4e00-\u9fff]")


def _refusal(field: P.Field, value: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        field.check(value, LIMITS)
    return caught.value


def _bad_inputs(tmp_path: Path) -> list[tuple[P.Field, Any]]:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a picture")
    return [
        (P.Text("prompt"), ""),
        (P.Text("prompt"), 42),
        (P.Text("prompt", max_chars=5), "far too long"),
        (P.Number("temperature", 0.7, 0.0, 2.0), "warm"),
        (P.Number("temperature", 0.7, 0.0, 2.0), float("nan")),
        (P.Number("temperature", 0.7, 0.0, 2.0), 9),
        (P.Int("steps", 4, 1, 50), 2.5),
        (P.Choice("mode", "fast", choices=("fast", "slow")), "medium"),
        (P.Bool("stream"), [1]),
        (P.Audio("audio"), 7),
        (P.Video("clip"), None),
        (P.Video("clip"), str(tmp_path / "gone.mp4")),
        (P.File("documents", multiple=False), [str(text_file), str(text_file)]),
        (P.File("documents", multiple=True, max_files=1), [str(text_file), str(text_file)]),
        (P.File("documents", file_types=(".pdf",)), str(text_file)),
        (P.File("documents"), str(tmp_path / "gone.pdf")),
        (P.Image("image"), str(text_file)),
        (P.Image("image"), 3.5),
    ]


def test_every_fields_refusal_reads_in_chinese_with_its_name_and_value_kept(tmp_path: Path) -> None:
    for field, value in _bad_inputs(tmp_path):
        exc = _refusal(field, value)
        rule, fix = translate(exc.rule, "zh-CN"), translate(exc.fix or "", "zh-CN")
        assert CJK.search(rule) and rule != exc.rule, f"{field.name}={value!r}: rule {exc.rule!r} untranslated"
        assert CJK.search(fix) and fix != exc.fix, f"{field.name}={value!r}: fix {exc.fix!r} untranslated"
        shown = error_message(exc, "zh-CN")
        assert shown.startswith(f"`{exc.name}` {rule}，但收到的是 {exc.shown}。"), shown
        assert shown.endswith(f"解决办法：{fix}"), shown
        assert error_message(exc, "en") == str(exc)  # English: exactly as raised


def test_numbers_and_settings_in_a_message_carry_over_into_the_translation() -> None:
    exc = _refusal(P.Int("steps", 4, 1, 50), 80)
    assert error_message(exc, "zh-CN") == "`steps` 必须在 1 到 50 之间，但收到的是 80。解决办法：请选择 1 到 50 之间的值"
    exc = _refusal(P.Text("prompt", max_chars=5), "far too long")
    assert error_message(exc, "zh-CN") == ("`prompt` 最多 5 个字符，但收到的是 '<12 characters>'。"
                                           "解决办法：请缩短文本，或调高 ZOO_MAX_TEXT_CHARS")
    # Of two shapes that both match, the one with more fixed text wins (video's "... s long" over audio's).
    assert translate("must be at most 10 seconds long, and it is 12.5 s long", "zh-CN") == "最长 10 秒，而它有 12.5 秒"
    assert translate("must be at most 10 seconds long, and it is 1 min 2 s", "zh-CN") == "最长 10 秒，而它有 1 min 2 s"


def test_a_text_that_matches_no_shape_stays_english_inside_the_translated_frame() -> None:
    exc = InvalidInput("seed", -5, "must be a seed the sampler knows", "pick a seed")
    assert error_message(exc, "zh-CN") == "`seed` must be a seed the sampler knows，但收到的是 -5。解决办法：pick a seed"
    other = ZooError("The tokenizer has no chat template.", "pick a chat model")
    assert error_message(other, "zh-CN") == "The tokenizer has no chat template.解决办法：pick a chat model"
    assert error_message(ZooError("No fix here."), "zh-CN") == "No fix here."


def test_every_template_fills_in_and_matches_what_it_fills(tmp_path: Path) -> None:
    for english, chinese in ERROR_TEXT.items():
        fields = set(re.findall(r"\{(\w+)\}", english))
        assert fields == set(re.findall(r"\{(\w+)\}", chinese)), f"{english!r}: the fields differ"
        assert CJK.search(chinese), english
        filled = english.format(**{f: f"<{f}>" for f in fields})
        if filled in ERROR_TEXT or not fields:
            continue
        assert translate(filled, "zh-CN") == chinese.format(**{f: f"<{f}>" for f in fields}), english


def test_titles_name_the_kind_of_error_in_either_language() -> None:
    exc = InvalidInput("x", 1, "must be text")
    assert (error_title(exc, "en"), error_title(exc, "zh-CN")) == ("Invalid Input", "输入无效")
    assert error_title(TooLarge("upload", 1, "is too big"), "zh-CN") == "文件过大"
    assert error_title(ModelNotFound("gone"), "en") == "Model not found"
    assert (error_title(CallCycle("loop"), "en"), error_title(CallCycle("loop"), "zh-CN")) == ("Call Cycle", "错误")
    assert (error_title(KeyError("x"), "en"), error_title(KeyError("x"), "zh-CN")) == ("Something went wrong", "出错了")
    assert unexpected_message("chat", KeyError("k"), "'k'", "zh-CN") == (
        "chat 失败：KeyError: 'k'。服务器日志里有详细信息；其他标签页照常工作。")
    assert unexpected_message("chat", KeyError("k"), "'k'", "en") == (
        "chat failed: KeyError: 'k'. The server log has the details; other tabs keep working.")


def test_the_language_comes_from_the_pages_cookie_then_accept_language_then_english() -> None:
    assert [match_locale(t) for t in ("zh", "zh-CN", "zh-Hans-CN", "zh_TW", "en-GB", "EN", "fr", "", None)] == [
        "zh-CN", "zh-CN", "zh-CN", "zh-CN", "en", "en", None, None, None]
    assert accept_language("fr-FR,fr;q=0.9,zh-CN;q=0.8,en;q=0.5") == "zh-CN"
    assert accept_language("en;q=0.4,zh;q=0.9") == "zh-CN"  # by preference, not by position
    assert accept_language("de-DE,fr") is None and accept_language(None) is None
    chinese_page = SimpleNamespace(cookies={"zoo-lang": "zh-CN"}, headers={"accept-language": "en-US"})
    switched_back = SimpleNamespace(cookies={"zoo-lang": "en"}, headers={"accept-language": "zh-CN"})
    no_cookie = SimpleNamespace(cookies={}, headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert [request_locale(r) for r in (chinese_page, switched_back, no_cookie)] == ["zh-CN", "en", "zh-CN"]
    assert request_locale(SimpleNamespace(cookies={"zoo-lang": "fr"}, headers={})) == "en"
    assert request_locale(SimpleNamespace()) == "en" and request_locale() == "en"  # no request being served


def test_the_toast_is_made_in_the_pages_language_and_hides_server_paths(tmp_path: Path) -> None:
    import gradio as gr

    from zoo.ui import user_error

    exc = _refusal(P.File("documents"), str(tmp_path / "secret" / "gone.pdf"))
    toast = user_error(exc, "document-qa", "zh-CN")
    assert isinstance(toast, gr.Error) and toast.title == "输入无效"
    assert "不是此处存在的文件" in toast.message and str(tmp_path) not in toast.message
    english = user_error(exc, "document-qa")  # no request being served: English
    assert english.title == "Invalid Input" and "is not a file that exists here" in english.message
    crash = user_error(RuntimeError(f"bad state in {tmp_path}/engine.bin"), "chat", "zh-CN")
    assert crash.title == "出错了" and crash.message.startswith("chat 失败：RuntimeError: ")
    assert str(tmp_path) not in crash.message


def test_the_page_keeps_its_language_in_the_cookie_the_server_reads() -> None:
    from zoo.error_text import LOCALE_COOKIE
    from zoo.i18n import EARLY_SCRIPT

    assert f"document.cookie=name+'='" in EARLY_SCRIPT and f"'{LOCALE_COOKIE}'" in EARLY_SCRIPT
    assert "path=/" in EARLY_SCRIPT


def test_a_model_that_is_not_here_reads_in_chinese(tmp_path: Path) -> None:
    from zoo.models.refs import parse_ref
    from zoo.models.sources import Resolver

    sources = Resolver(offline=lambda: True, allow_pickle=False, tiny_dir=tmp_path / "tiny",
                       hf_cache_dir=tmp_path / "hub")
    with pytest.raises(ModelNotFound) as caught:
        sources.resolve(parse_ref("someone/not-cached-model"))
    shown = error_message(caught.value, "zh-CN")
    assert shown.startswith("模型 `someone/not-cached-model` 在此处不可用 (offline)。"), shown
    assert "解决办法：请连接 Hub" in shown and "`hf download someone/not-cached-model`" in shown, shown
    with pytest.raises(ModelNotFound) as caught:
        sources.resolve(parse_ref(str(tmp_path / "nothing-here")))
    assert error_message(caught.value, "zh-CN").startswith("本地路径 `"), error_message(caught.value, "zh-CN")
