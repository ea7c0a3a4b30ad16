"""Errors in the reader's language: the zoo's error messages in English and Simplified Chinese.

Gradio shows an error toast (`gr.Error`) as sent, so the server translates it before sending, into the
language of the page that made the request (`request_locale`: the header switch's choice, which the page keeps
in the `zoo-lang` cookie, else the browser's Accept-Language).

The zoo's messages are built from a few shapes: an input error is "`name` <rule>, but got <value>." and a fix;
other errors are a message and a fix. `ERROR_TEXT` holds those shapes and the common rules, messages and fixes
as templates; a text that matches one is shown in Chinese with the parts in {braces} (field names, values,
numbers, file names, settings) as they were. A text that matches none stays English inside the translated
frame, so nothing is lost. API clients (gradio_client, MCP, /v1) get English.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping

from zoo.errors import InvalidInput, ZooError
from zoo.i18n import CHOICE_NAME, LOCALES, SOURCE

#: Error texts: English template -> Simplified Chinese. Fields in {braces} match any text and carry over.
ERROR_TEXT: dict[str, str] = {
    # frames
    "`{name}` {rule}, but got {value}.": "`{name}` {rule}，但收到的是 {value}。",
    "{message} Fix: {fix}": "{message}解决办法：{fix}",
    "{task} failed: {kind}: {detail}. The server log has the details; other tabs keep working.":
        "{task} 失败：{kind}: {detail}。服务器日志里有详细信息；其他标签页照常工作。",
    # rules of the fields (zoo/plugin.py)
    "must be text": "必须是文本",
    "must be at most {limit} characters": "最多 {limit} 个字符",
    "must not be empty": "不能为空",
    "must be a number": "必须是数字",
    "must be a finite number": "必须是有限的数字",
    "must be a whole number": "必须是整数",
    "must be between {lo} and {hi}": "必须在 {lo} 到 {hi} 之间",
    "must be one of {options}": "必须是以下之一：{options}",
    "must be true or false": "必须是 true 或 false",
    "is not valid JSON ({error})": "不是有效的 JSON（{error}）",
    "has keys this field does not know": "含有此字段不认识的键",
    "must be a picture": "必须是图片",
    "must be an image": "必须是图像",
    "must be an audio file": "必须是音频文件",
    "must be a video clip": "必须是视频片段",
    "is not a file that exists here": "不是此处存在的文件",
    "must be a file": "必须是文件",
    "must be a file or several": "必须是一个或多个文件",
    "takes one file": "只接受一个文件",
    "takes at most {count} files": "最多接受 {count} 个文件",
    "must be an uploaded file": "必须是上传的文件",
    # fixes of the fields
    "send {title} as a string": "请以字符串发送 {title}",
    "shorten the text, or raise ZOO_MAX_TEXT_CHARS": "请缩短文本，或调高 ZOO_MAX_TEXT_CHARS",
    "type some {title}": "请输入 {title}",
    "give a number from {lo} to {hi}": "请给出 {lo} 到 {hi} 之间的数字",
    "give a number": "请给出一个数字",
    "use {lower} or {upper}": "请用 {lower} 或 {upper}",
    "pick a value from {lo} to {hi}": "请选择 {lo} 到 {hi} 之间的值",
    "pick one of {options}": "请从以下选择一个：{options}",
    "send true or false": "请发送 true 或 false",
    "upload a picture, then paint over what to change": "请上传图片，然后涂抹要修改的部分",
    "upload a file or record from the microphone": "请上传文件，或用麦克风录音",
    "upload a clip or record one with the webcam": "请上传视频片段，或用摄像头录制",
    "upload the clip again (uploads expire)": "请重新上传视频片段（上传的文件会过期）",
    "upload the file again (uploads expire)": "请重新上传文件（上传的文件会过期）",
    "upload the file again": "请重新上传文件",
    "upload a file": "请上传文件",
    "upload a file ({types})": "请上传文件（{types}）",
    "upload a single file": "请只上传一个文件",
    "upload {count} files or fewer at a time": "请一次最多上传 {count} 个文件",
    "upload a {types} file, or rename it if that is what it is": "请上传 {types} 文件；如果它就是这种文件，请改一下扩展名",
    "upload the file, or pass its path from the CLI": "请上传文件，或在命令行中给出它的路径",
    # pictures (zoo/media.py)
    "cannot be read as an image ({why})": "无法作为图像读取（{why}）",
    "upload a PNG, JPEG or WebP picture": "请上传 PNG、JPEG 或 WebP 图片",
    "must have at least one pixel": "必须至少有一个像素",
    "upload a real picture": "请上传真实的图片",
    "is larger than {side} pixels on a side (ZOO_MAX_IMAGE_SIDE)": "边长超过 {side} 像素（ZOO_MAX_IMAGE_SIDE）",
    "resize it to at most {size}; the operator can raise ZOO_MAX_IMAGE_SIDE or set ZOO_IMAGE_OVERSIZE=downscale":
        "请把它缩小到最多 {size}；运维人员可以调高 ZOO_MAX_IMAGE_SIDE，或设置 ZOO_IMAGE_OVERSIZE=downscale",
    # speech and sound (zoo/audio.py)
    "must be an existing audio file": "必须是已存在的音频文件",
    "is an empty file (0 bytes)": "是空文件（0 字节）",
    "the upload or recording failed; record again or upload a file with sound in it":
        "上传或录音失败；请重新录音，或上传有声音的文件",
    "has no audio track (it looks like an image, a silent video or another kind of file)":
        "没有音轨（它看起来是图片、无声视频或其他类型的文件）",
    "upload a recording: wav, mp3, flac, ogg, m4a or webm": "请上传录音：wav、mp3、flac、ogg、m4a 或 webm",
    "cannot be read as audio: it is not an audio file, or it is damaged or cut short (ffmpeg: {why})":
        "无法作为音频读取：它不是音频文件，或已损坏、被截断（ffmpeg：{why}）",
    "upload a complete wav, mp3, flac, ogg, m4a or webm file; if it plays elsewhere, re-export it {example}":
        "请上传完整的 wav、mp3、flac、ogg、m4a 或 webm 文件；如果它在别处能播放，请重新导出 {example}",
    "must be at most {limit} seconds long, and it is {length}": "最长 {limit} 秒，而它有 {length}",
    "trim the recording, or have the operator raise ZOO_MAX_AUDIO_SECONDS": "请剪短录音，或请运维人员调高 ZOO_MAX_AUDIO_SECONDS",
    "contains no audio samples (the file is truncated, or holds only a header)": "不含音频采样（文件被截断，或只有文件头）",
    "upload the complete file, or record again": "请上传完整的文件，或重新录音",
    "is truncated or damaged (ffmpeg: {why})": "被截断或已损坏（ffmpeg：{why}）",
    "took more than {limit} to inspect": "检查用时超过 {limit}",
    "took more than {limit} to decode": "解码用时超过 {limit}",
    "upload a shorter or simpler file (e.g. a wav or mp3)": "请上传更短或更简单的文件（例如 wav 或 mp3）",
    # video (zoo/video.py)
    "must be an existing video file": "必须是已存在的视频文件",
    "upload a clip ({formats})": "请上传视频片段（{formats}）",
    "upload a video clip ({formats})": "请上传视频片段（{formats}）",
    "upload a complete clip ({formats})": "请上传完整的视频片段（{formats}）",
    "is not a video: ffprobe found no video stream ({why})": "不是视频：ffprobe 没有找到视频流（{why}）",
    "is a still picture ({kind}), not a video": "是静态图片（{kind}），不是视频",
    "upload a video clip ({formats}); for a picture use an image tab": "请上传视频片段（{formats}）；图片请用图像标签页",
    "is 0 seconds long: it holds no frames": "时长为 0 秒：没有任何帧",
    "upload a clip that plays for at least a fraction of a second; the recording may have been stopped before it "
    "started": "请上传至少能播放零点几秒的片段；录制可能在开始前就停止了",
    "must be at most {limit} seconds long, and it is {length} s long": "最长 {limit} 秒，而它有 {length} 秒",
    "is {size}, larger than {side} pixels on a side (ZOO_MAX_VIDEO_SIDE)": "尺寸为 {size}，边长超过 {side} 像素（ZOO_MAX_VIDEO_SIDE）",
    "has a video stream without a picture size (damaged, or not a real clip)": "视频流没有画面尺寸（已损坏，或不是真正的视频）",
    "is encoded as {codec}, which this server's ffmpeg cannot decode": "编码为 {codec}，此服务器的 ffmpeg 无法解码",
    "has no frame that ffmpeg can decode at {at} (damaged or cut short; ffmpeg: {why})":
        "在 {at} 处没有 ffmpeg 能解码的帧（已损坏或被截断；ffmpeg：{why}）",
    "upload a shorter clip ({formats})": "请上传更短的视频片段（{formats}）",
    "upload a shorter or simpler clip (e.g. H.264 in an mp4)": "请上传更短或更简单的视频片段（例如 mp4 中的 H.264）",
    # models (zoo/models/sources.py)
    "Model {ref} is not available here{why}.": "模型 {ref} 在此处不可用{why}。",
    "connect to the Hub (unset HF_HUB_OFFLINE), or pre-download it with {command}, or pick a model that runs "
    "offline (a `packaged:` or `tiny:` entry)":
        "请连接 Hub（取消 HF_HUB_OFFLINE），或用 {command} 预先下载，或选择能离线运行的模型（`packaged:` 或 `tiny:` 条目）",
    "connect to the Hub (unset HF_HUB_OFFLINE), or pre-download it with {command}, or run {pip}, or pick a model "
    "that runs offline (a `packaged:` or `tiny:` entry)":
        "请连接 Hub（取消 HF_HUB_OFFLINE），或用 {command} 预先下载，或运行 {pip}，或选择能离线运行的模型"
        "（`packaged:` 或 `tiny:` 条目）",
    "No model at local path {path}.": "本地路径 {path} 处没有模型。",
    "check the path, or give a Hub id like `owner/name`": "请检查路径，或给出 `owner/name` 形式的 Hub ID",
}

#: Toast titles, by error class (the class's own name, or a base class's); "Something went wrong" otherwise.
ERROR_TITLES: dict[str, tuple[str, str]] = {
    "TooLarge": ("Too large", "文件过大"),
    "InvalidInput": ("Invalid Input", "输入无效"),
    "ModelNotFound": ("Model not found", "找不到模型"),
    "ModelLoadError": ("Model failed to load", "模型加载失败"),
    "ModelNotAllowed": ("Model not allowed", "不允许使用该模型"),
    "ModelInUse": ("Model in use", "模型正在使用"),
    "HelperFailed": ("Helper program failed", "辅助程序出错"),
    "UnknownPlugin": ("Unknown tab", "未知的标签页"),
    "ZooError": ("Error", "错误"),
}
UNEXPECTED_TITLE = {"en": "Something went wrong", "zh-CN": "出错了"}

#: The cookie in which the page keeps the language it shows (zoo.i18n's EARLY_SCRIPT sets it).
LOCALE_COOKIE = CHOICE_NAME


@functools.lru_cache(maxsize=None)
def _pattern(template: str) -> re.Pattern[str]:
    """A regex matching what `template` gives when its {fields} are filled in; a field seen twice matches the same."""
    parts, seen = [], set()
    for literal, field in re.findall(r"([^{]*)(?:\{(\w+)\})?", template):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>.+?)")
            seen.add(field)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


#: The translated tables, by locale (English is the source).
TRANSLATIONS: dict[str, Mapping[str, str]] = {"zh-CN": ERROR_TEXT}


@functools.lru_cache(maxsize=None)
def _by_specificity(templates: tuple[str, ...]) -> list[str]:
    """The templates with fields, those with the most fixed text first: the most specific shape wins."""
    return sorted((t for t in templates if "{" in t), key=lambda t: -len(re.sub(r"\{\w+\}", "", t)))


def translate(text: str, locale: str, table: Mapping[str, str] | None = None) -> str:
    """`text` in `locale` when it matches a template of `table` (the locale's ERROR_TEXT), its {fields} kept;
    else as given."""
    table = TRANSLATIONS.get(locale, {}) if table is None else table
    if locale == SOURCE or not text or not table:
        return text
    if text in table:
        return table[text]
    for english in _by_specificity(tuple(table)):
        found = _pattern(english).match(text)
        if found:
            return table[english].format(**found.groupdict())
    return text


def error_title(exc: BaseException, locale: str) -> str:
    """The toast's title: what kind of error, in `locale` (a zoo error of another class: its class name in words)."""
    chinese = locale in TRANSLATIONS
    for cls in type(exc).__mro__:
        if cls.__name__ in ERROR_TITLES and (cls is type(exc) or cls.__name__ != "ZooError" or chinese):
            english, translated = ERROR_TITLES[cls.__name__]
            return translated if chinese else english
        if cls.__name__ == "ZooError":
            return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(exc).__name__)
    return UNEXPECTED_TITLE["zh-CN" if chinese else "en"]


def _frame(template: str, locale: str, **fields: Any) -> str:
    return TRANSLATIONS.get(locale, {}).get(template, template).format(**fields)


def error_message(exc: ZooError, locale: str) -> str:
    """A zoo error's message (and fix) in `locale`; in English, exactly `str(exc)`."""
    if locale == SOURCE or locale not in TRANSLATIONS:
        return str(exc)
    if isinstance(exc, InvalidInput) and getattr(exc, "rule", None) is not None:
        message = _frame("`{name}` {rule}, but got {value}.", locale, name=exc.name,
                         rule=translate(exc.rule, locale), value=exc.shown)
    else:
        message = translate(exc.message, locale)
    if not exc.fix:
        return message
    return _frame("{message} Fix: {fix}", locale, message=message, fix=translate(exc.fix, locale))


UNEXPECTED = "{task} failed: {kind}: {detail}. The server log has the details; other tabs keep working."


def unexpected_message(task: str, exc: BaseException, detail: str, locale: str) -> str:
    """The message of a failure that is not a zoo error (a bug, a crash), in `locale`."""
    return _frame(UNEXPECTED, locale, task=task, kind=type(exc).__name__, detail=detail)


def match_locale(tag: str | None) -> str | None:
    """The app's locale for a language tag ("zh", "zh-Hans-CN", "en-GB"...), or None when it speaks none like it."""
    tag = (tag or "").strip().lower().replace("_", "-")
    if not tag:
        return None
    for locale in LOCALES:
        if tag == locale.lower() or tag.split("-")[0] == locale.lower().split("-")[0]:
            return locale
    return None


def accept_language(header: str | None) -> str | None:
    """The first of the app's locales in an Accept-Language header, by the header's preference (q) order."""
    ranked = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, tag))
    for _, _, tag in sorted(ranked):
        locale = match_locale(tag)
        if locale:
            return locale
    return None


def request_locale(request: Any = None) -> str:
    """The language of the page that sent `request` (default: the request gradio is serving now): the page's
    `zoo-lang` cookie (its switch, or its browser's language), else Accept-Language, else English."""
    if request is None:
        try:
            from gradio.context import LocalContext

            request = LocalContext.request.get(None)
        except (ImportError, AttributeError, LookupError):
            request = None
    if request is None:
        return SOURCE
    try:
        cookies = getattr(request, "cookies", None) or {}
        headers = getattr(request, "headers", None) or {}
        chosen = match_locale(cookies.get(LOCALE_COOKIE)) if hasattr(cookies, "get") else None
        return chosen or accept_language(headers.get("accept-language") if hasattr(headers, "get") else None) \
            or SOURCE
    except Exception:  # a request gradio built without headers: English, never a second error
        return SOURCE
