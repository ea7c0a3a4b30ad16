"""Gradio from declarations: one tab per plugin, generated from its fields.

This is the only module that turns zoo errors into `gr.Error`. A plugin may build
its own tab body with `TabBuilder`'s layout hooks (the pieces the generated tab is made
of): semantic search replaces only the buttons row, chat lays out its own conversation.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import logging
import os
import time
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

from zoo import plugin as P
from zoo.auth import auth_middleware
from zoo.errors import Cancelled, ZooError, redact_paths
from zoo.i18n import Catalog, locale_middleware, switch_html
from zoo.mcp import mcp_lifespan, tool_doc, tool_endpoints
from zoo.models.devices import describe_device
from zoo.models.refs import parse_ref
from zoo.models.sources import PACKAGED
from zoo.registry import Quarantined
from zoo.runner import Zoo

log = logging.getLogger(__name__)

# Event options for every handler that runs a plugin: gradio hands over the values as sent (uploads as
# FileData with a path in its cache) and the zoo's fields check them. Gradio's own preprocessing would
# refuse first, in its words: "Value -2 is less than minimum value -1." names no field, 'NaN' to a
# slider is a TypeError, and an undecodable upload quotes its server path.
RAW_INPUTS: dict[str, Any] = {"preprocess": False}

STREAM_INTERVAL = 0.1  # seconds between streamed UI updates: 10 a second reads as smooth, and costs a 2-core server half of 20

CSS = """
.zoo-header h1 {margin-bottom: 0.2em}
.zoo-languages {text-align: right; font-size: 0.9em}
.zoo-model-note {font-size: 0.9em; opacity: 0.85}
.zoo-tiny {border-left: 4px solid #f59e0b; padding-left: 0.6em}
.zoo-quarantine {border-left: 4px solid #dc2626; padding-left: 0.6em}
.zoo-tab-note {border-left: 4px solid #f59e0b; padding-left: 0.6em}
/* Highlighted text flows like a paragraph; gradio lays each span out as a box, so a marked span jumps lines. */
.zoo-highlight .textfield {display: block !important; line-height: 2}
.zoo-highlight .token-container, .zoo-highlight .token {display: inline !important}
.zoo-highlight .text {word-break: normal !important; overflow-wrap: break-word}
.zoo-highlight .label {white-space: nowrap}
"""


def user_error(exc: BaseException, task: str, locale: str | None = None) -> Exception:
    """Turn any failure into a readable gr.Error (no stack trace reaches the browser), in the language of the page
    that asked (`locale`, default: the request being served; zoo.error_text)."""
    import gradio as gr

    from zoo.error_text import error_message, error_title, request_locale, unexpected_message

    if isinstance(exc, gr.Error):
        return exc
    locale = locale or request_locale()
    if isinstance(exc, ZooError):
        # A user's mistake, not a server fault: one log line, not a stack trace per bad request.
        log.info("%s refused a request: %s", task, exc)
        # Uploads sit in server temp folders and messages may quote them: the user sees the file's name only.
        return gr.Error(redact_paths(error_message(exc, locale)), title=error_title(exc, locale), print_exception=False)
    log.exception("Unexpected error in %s", task)
    return gr.Error(unexpected_message(task, exc, redact_paths(str(exc)), locale), title=error_title(exc, locale),
                    print_exception=False)


def component(field: P.Field, limits: P.Limits, *, output: bool = False, render: bool = True,
              text: Catalog | None = None) -> Any:
    """The gradio component for a declared field; its label, info and placeholder through `text` (translated)."""
    import gradio as gr

    if text is not None:
        field = _shown(field, text)
    common: dict[str, Any] = dict(label=field.title, render=render)
    if output:
        common["interactive"] = False  # outputs are read-only, numbers and switches included
    if isinstance(field, P.Text):
        if output:
            return gr.Textbox(lines=field.lines, buttons=["copy"], **common)
        return gr.Textbox(value=field.default, lines=field.lines, placeholder=field.placeholder, info=field.info,
                          max_lines=max(field.lines, 20), **common)
    if isinstance(field, P.Number):
        lo, hi = field.bounds(limits)
        if lo is not None and hi is not None and not isinstance(field, P.Seed) and hi - lo <= 10_000:
            return gr.Slider(minimum=lo, maximum=hi, value=field.default, step=field.step or (1 if field.integer else 0.01),
                             info=field.info, **common)
        return gr.Number(value=field.default, minimum=lo, maximum=hi, precision=0 if field.integer else None,
                         info=field.info, **common)
    if isinstance(field, P.Choice):
        return gr.Dropdown(choices=list(field.choices), value=field.default, info=field.info, **common)
    if isinstance(field, P.Bool):
        return gr.Checkbox(value=field.default, info=field.info, **common)
    if isinstance(field, P.Image):
        if output:  # a fixed frame: a small image (the tiny pipeline paints 64 px) would leave a thin strip
            return gr.Image(type="pil", format="png", height=320, **common)
        # A path, not a decoded picture: the zoo reads the size from the header and refuses (or shrinks)
        # an oversized image before decoding it; with type="pil" gradio would decode it first, whatever its size.
        return gr.Image(type="filepath", image_mode=None, format="png", **common)
    if isinstance(field, P.ImageMask):
        if output:
            raise TypeError(f"ImageMask `{field.name}` is an input field; declare an output picture as Image")
        # One layer painted with one colour: the painted pixels are the mask (TabBuilder.handler reads the
        # editor's uploads). RGBA keeps the layer's transparency; the zoo flattens the picture itself.
        return gr.ImageEditor(type="filepath", image_mode="RGBA", format="png", sources=("upload", "clipboard"),
                              layers=False, transforms=("crop",), eraser=gr.Eraser(),
                              brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"), height=420, **common)
    if isinstance(field, P.Audio):
        if output:
            return gr.Audio(type="filepath", autoplay=field.autoplay, **common)
        return gr.Audio(sources=list(field.sources), type="filepath", **common)
    if isinstance(field, P.Video):
        # A path as uploaded (no format conversion): the zoo's check probes it with ffprobe before anything decodes it.
        if output:
            return gr.Video(height=320, **common)
        return gr.Video(sources=list(field.sources), height=320, **common)
    if isinstance(field, P.Gallery):
        return gr.Gallery(type="pil", format="png", columns=2, height="auto", **common)
    if isinstance(field, P.Highlight):
        return gr.HighlightedText(combine_adjacent=False, show_legend=False, elem_classes=["zoo-highlight"], **common)
    if isinstance(field, P.Table):
        return gr.Dataframe(headers=list(field.headers) or None, wrap=True, column_widths=column_widths(field.headers),
                            **{"interactive": False, **common})
    if isinstance(field, (P.Labels, P.Json)):
        common.pop("interactive", None)  # display-only components take no such argument
    if isinstance(field, P.Labels):
        return gr.Label(**common)
    if isinstance(field, P.File):
        if output:
            return gr.File(**{"interactive": False, **common})
        return gr.File(file_count="multiple" if field.multiple else "single", type="filepath",
                       file_types=list(field.file_types) or None, **common)
    if isinstance(field, P.Json):
        return gr.JSON(**common)
    if isinstance(field, P.Plot):
        common.pop("interactive", None)
        return gr.LinePlot(x=field.x, y=field.y, color=field.color, x_title=field.x_title, y_title=field.y_title,
                           height=300, **common)
    raise TypeError(f"No gradio component for field type {type(field).__name__}")


def _shown(field: P.Field, text: Catalog) -> Any:
    """The field with its label, info and placeholder as translation markers (a copy; the declaration stays)."""
    import dataclasses

    changes: dict[str, Any] = {"label": text(field.title)}
    if field.info:
        changes["info"] = text(field.info)
    if getattr(field, "placeholder", None):
        changes["placeholder"] = text(field.placeholder)
    return dataclasses.replace(field, **changes)


# Columns that hold a number or a short tag; the others (text, passages) get the room left.
NARROW_COLUMNS = {"rank", "score", "start", "end", "index", "id", "count", "label", "seconds", "confidence",
                  "probability", "similarity", "time", "duration", "tokens"}


def column_widths(headers: Sequence[str]) -> list[str] | None:
    """Table column widths: narrow for numbers and tags, the rest shared; None leaves gradio's own sizing.

    Gradio sizes a text column to the whole table width, which pushes long text off the side.
    """
    narrow = [h.strip().lower() in NARROW_COLUMNS for h in headers]
    if not headers or all(narrow) or not any(narrow):
        return None
    narrow_share = min(14, 60 // sum(narrow))
    wide_share = (100 - narrow_share * sum(narrow)) / (len(headers) - sum(narrow))
    return [f"{narrow_share}%" if n else f"{wide_share:g}%" for n in narrow]


def model_note(zoo: Zoo, plugin: P.Plugin, ref: str, text: Catalog | None = None) -> Any:
    """Markdown saying which model runs, where it comes from, and whether it is a tiny random one (through
    `text`: a translation marker; without it, the English text)."""
    catalog = text or Catalog()
    ok, where = zoo.models.availability(ref)
    parsed = parse_ref(ref)
    name = f"[{ref}]({parsed.hub_url})" if parsed.hub_url else f"`{ref}`"
    mirror = _packaged_mirror(parsed)
    if mirror is not None:  # a packaged copy: link the Hub page of the model it is a copy of
        name = catalog.render("{name} (a copy of [{mirror}]({url}))", name=name, mirror=mirror.name,
                              url=mirror.hub_url)
    if parsed.scheme == "tiny":
        note = catalog.render("<div class='zoo-tiny'>⚠️ <b>Tiny random-weight model</b> (<code>{ref}</code>): "
                              "outputs are noise. It shows the plumbing offline; pick a real model for real "
                              "results.</div>", ref=html.escape(ref))
    elif ok:
        note = catalog.render("<span class='zoo-model-note'>Model: {name} — runs from the {where}.</span>",
                              name=name, where=where)
    else:
        note = catalog.render("<span class='zoo-model-note'>Model: {name} — **not available here**: {where}.</span>",
                              name=name, where=where)
    return catalog(note) if text is not None else note.english


def _packaged_mirror(parsed: Any) -> Any:
    """The parsed Hub reference a packaged model stands in for, or None."""
    if parsed.scheme != "packaged":
        return None
    entry = PACKAGED.get(parsed.name)
    try:
        mirror = parse_ref(entry.mirrors[0]) if entry and entry.mirrors else None
    except ZooError:
        return None
    return mirror if mirror is not None and mirror.hub_url else None


def composition_note(zoo: Zoo, plugin: P.Plugin, hybrid: bool = False, text: Catalog | None = None) -> Any:
    """Markdown for a tab without a model of its own (or a `hybrid` one, with a model and `uses`): the tasks it
    uses, or why it cannot run here (through `text`: a translation marker; without it, the English text)."""
    catalog = text or Catalog()
    problem = zoo.composition_problem(plugin)
    if problem is not None:
        note = catalog.render("<div class='zoo-quarantine'>⚠️ {message}<br><b>Fix:</b> {fix}</div>",
                              message=_html_code(problem.message), fix=_html_code(problem.fix or ""))
    elif not plugin.uses:
        note = catalog.render("<span class='zoo-model-note'>Runs no model: it computes its outputs here.</span>")
    else:
        steps = [catalog.render("{part}: {title}", part=part.replace("_", " "),
                                title=catalog.word(zoo.registry.get(task).title)) for part, task in plugin.uses.items()]
        joined = catalog.render(", ".join(f"{{s{i}}}" for i in range(len(steps))),
                                **{f"s{i}": step for i, step in enumerate(steps)})
        note = catalog.render("<span class='zoo-model-note'>Without a model of its own it uses other tabs ({steps}); "
                              "pick their models below.</span>" if hybrid else
                              "<span class='zoo-model-note'>Uses other tabs ({steps}); pick their models below.</span>",
                              steps=joined)
    return catalog(note) if text is not None else note.english


def api_snippet(plugin: P.Plugin, values: dict[str, Any], url: str = "http://127.0.0.1:7860/") -> str:
    """A gradio_client call for this tab, with the first example's values (files go through handle_file)."""
    media = {f.name: f for f in plugin.fields() if isinstance(f, (P.Image, P.Audio, P.Video))}
    fields = {f.name: f for f in plugin.fields()}
    args = []
    for k, v in values.items():
        if isinstance(fields.get(k), P.ImageMask):  # the editor's value: the picture, and the painted mask layers
            picture, masks = (v.get("background"), v.get("layers") or []) if isinstance(v, Mapping) else (v, [])
            layers = ", ".join(f"handle_file({os.path.basename(m)!r})" for m in masks if isinstance(m, str))
            name = os.path.basename(picture) if isinstance(picture, str) and picture else "picture.png"
            args.append(f'{k}={{"background": handle_file({name!r}), "layers": [{layers}], "composite": None}}')
        elif k in media:  # gradio_client uploads a local path or URL only when wrapped
            sample = {P.Audio: "speech.wav", P.Video: "clip.mp4"}.get(type(media[k]), "picture.png")
            args.append(f"{k}=handle_file({(os.path.basename(v) if isinstance(v, str) and v else sample)!r})")
        else:
            args.append(f"{k}={v!r}")
    args.append(f'api_name="/{plugin.endpoint()}"')
    files = any(k in media or isinstance(fields.get(k), P.ImageMask) for k in values)
    imports = "Client, handle_file" if files else "Client"
    call = "".join(f"    {a},\n" for a in args)  # one argument a line: long examples stay readable
    return API_SNIPPET.format(code=_api_code(imports, url, call))


def _api_code(imports: str, url: str, call: str) -> str:
    return (f"from gradio_client import {imports}\n\nclient = Client({url!r})\n"
            f"result = client.predict(\n{call})\nprint(result)\n")


API_SNIPPET = ("```python\n{code}```\nEvery option of the tab is a keyword argument too; the API page (footer) "
               "lists them.")


SAMPLE_SPEECH = "Welcome to the model zoo. Press run to turn this sentence into text."


def sample_dir() -> Path:
    """Where generated sample media live: under the temp dir, which gradio serves files from."""
    return Path(tempfile.gettempdir()) / "model-zoo-samples"


def sample_image(folder: Path | None = None) -> str:
    """A drawn picture (sky, sun, hill, house) as a PNG path, made once; the repo holds no binary files."""
    path = (folder or sample_dir()) / "picture.png"
    if not path.is_file():
        from PIL import Image as PILImage
        from PIL import ImageDraw

        img = PILImage.new("RGB", (320, 240), (135, 190, 235))
        draw = ImageDraw.Draw(img)
        draw.ellipse((236, 22, 292, 78), fill=(255, 214, 64))
        draw.ellipse((-80, 150, 420, 420), fill=(86, 160, 72))
        draw.rectangle((96, 120, 196, 196), fill=(200, 70, 60))
        draw.polygon([(86, 122), (146, 72), (206, 122)], fill=(110, 60, 40))
        draw.rectangle((134, 150, 158, 196), fill=(90, 50, 30))
        _write_atomically(path, lambda tmp: img.save(tmp, format="PNG"))
    return str(path)


def sample_speech(folder: Path | None = None) -> str | None:
    """A spoken sentence as a WAV path, made once with espeak-ng; None when espeak-ng is not installed."""
    path = (folder or sample_dir()) / "speech.wav"
    if not path.is_file():
        espeak = shutil.which("espeak-ng") or shutil.which("espeak")
        if espeak is None:
            return None
        try:
            _write_atomically(path, lambda tmp: subprocess.run(
                [espeak, "-v", "en-us", "-s", "150", "-w", str(tmp), SAMPLE_SPEECH],
                check=True, capture_output=True, timeout=30))
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("No sample speech: espeak failed (%s)", exc)
            return None
    return str(path)


def sample_video(folder: Path | None = None) -> str | None:
    """A 4-second test pattern clip (ffmpeg's `testsrc`, 320x240, 10 fps, H.264) as an MP4 path, made once;
    None when ffmpeg is not installed."""
    path = (folder or sample_dir()) / "clip.mp4"
    if not path.is_file():
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            return None
        source = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=4"]
        failure: Exception | None = None
        # H.264 plays in every browser; an ffmpeg built without libx264 still writes MPEG-4 part 2.
        for codec in (["-c:v", "libx264", "-pix_fmt", "yuv420p"], ["-c:v", "mpeg4"]):
            try:
                _write_atomically(path, lambda tmp: subprocess.run(
                    [ffmpeg, "-nostdin", "-v", "error", "-y", *source, *codec, "-f", "mp4", str(tmp)],
                    check=True, capture_output=True, timeout=60))
                return str(path)
            except subprocess.CalledProcessError as exc:  # that encoder is missing: try the next
                failure = exc
            except (OSError, subprocess.SubprocessError) as exc:
                failure = exc
                break
        log.warning("No sample clip: ffmpeg failed (%s)", failure)
        return None
    return str(path)


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    # Several app processes may share the temp dir: write aside, then rename into place.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def sample_examples(plugin: P.Plugin) -> list[dict[str, Any]]:
    """One generated example for a plugin that declares none and whose required inputs are media (picture, speech)."""
    if plugin.examples or not plugin.inputs:
        return []
    values: dict[str, Any] = {}
    for f in plugin.inputs:
        if isinstance(f, P.Image):
            values[f.name] = sample_image()
        elif isinstance(f, P.Audio):
            values[f.name] = sample_speech()
        elif isinstance(f, P.Video):
            values[f.name] = sample_video()
        elif isinstance(f, P.Text) and f.required:
            return []  # no sensible text to invent
        if f.name in values and values[f.name] is None:
            return []
    return [values] if values else []


def _output_value(field: P.Field, value: Any, folder: Path | None = None) -> Any:
    """Adapt a plugin output to what its component displays (images become PNG files in `folder`)."""
    if value is None:
        return None
    if isinstance(field, P.Table):
        return [list(r) for r in value] if value else []
    if isinstance(field, P.Plot):  # rows of {x, y, color} -> the DataFrame gr.LinePlot draws
        import pandas as pd

        columns = [c for c in (field.x, field.y, field.color) if c]
        return pd.DataFrame(list(value), columns=columns)
    if isinstance(field, P.Highlight):
        return [(text, label) for text, label in value]
    if isinstance(field, P.Image) and _is_pil(value):
        return image_file(value, folder)
    if isinstance(field, P.Gallery) and isinstance(value, (list, tuple)):
        return [(image_file(v[0], folder), *v[1:]) if isinstance(v, tuple) and _is_pil(v[0])
                else image_file(v, folder) if _is_pil(v) else v for v in value]
    return value


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.")


def output_dir() -> Path:
    """Where the zoo writes outputs it hands to gradio: inside gradio's own cache, so gradio serves them
    without copying them (each output is written once), and the output sweep (see `launch`) ages them
    with the uploads."""
    from gradio.utils import get_upload_folder  # the folder gradio itself caches into (GRADIO_TEMP_DIR)

    return Path(get_upload_folder()) / "zoo"


def image_file(image: Any, folder: Path | None = None) -> str:
    """A PIL image as a PNG file named by its content (text chunks kept), written once, atomically.

    Handing gradio a PIL image makes it rewrite `<cache>/<hash>/image.png` in place on every
    request; two requests with the same output (same prompt and seed) then race, and a client
    downloading the file while the other rewrites it gets a truncated body. A finished file
    that is never rewritten cannot be caught half-written.
    """
    import hashlib

    from zoo.media import png_bytes

    data = png_bytes(image)  # keeps the image's text chunks (metadata) as gradio's own PNG writer did
    folder = (folder or output_dir()) / "images" / hashlib.sha256(data).hexdigest()[:40]
    path = folder / "image.png"
    try:
        # Handed out again: its age (the output TTL, counted from ctime as gradio does) starts anew.
        # chmod renews ctime alone; the file's content and mtime stay those of its one write.
        os.chmod(path, path.stat().st_mode)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".image-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staging, path)
    return str(path)


def sweep_outputs(cache: Path, age: float, keep: Collection[str] = (), now: float | None = None,
                  keep_dirs: Collection[Path] = ()) -> list[str]:
    """Delete files in gradio's cache (outputs and uploads) older than `age` seconds, except `keep`, and the
    folders they leave empty, except `keep_dirs` (the zoo's output folder: a request may be about to write
    there, and would find it gone); the paths of the files deleted.

    Age is counted from ctime, as gradio does: a file handed out again is touched (see `image_file`).
    """
    now = time.time() if now is None else now
    keep = {os.path.realpath(p) for p in keep}
    kept_dirs = {os.path.realpath(d) for d in keep_dirs}
    deleted: list[str] = []
    if not cache.is_dir():
        return deleted
    for root, _dirs, names in os.walk(cache, topdown=False):
        here = Path(root)
        for name in names:
            path = here / name
            try:
                if now - path.lstat().st_ctime > age and os.path.realpath(path) not in keep:
                    path.unlink()
                    deleted.append(str(path))
            except FileNotFoundError:
                pass
        if here != cache and os.path.realpath(here) not in kept_dirs:
            try:
                if now - here.lstat().st_ctime > age and not any(here.iterdir()):
                    here.rmdir()
            except OSError:  # gone already, or a file arrived in between
                pass
    return deleted


def _sweep_every(ttl: float) -> float:
    """Seconds between two sweeps: a quarter of the TTL, from 1 s to 10 min."""
    return max(1.0, min(600.0, ttl / 4))


def throttle(items: Iterator[Any], interval: float = STREAM_INTERVAL) -> Iterator[Any]:
    """Pass on at most one item per `interval` seconds, and always the last one.

    Every update costs the server's event loop a diff and a message; with a fast model
    (llama.cpp decodes 100+ tokens/s) per-token updates starve it on a small machine.
    """
    last_sent = 0.0
    pending, has_pending = None, False
    for item in items:
        pending, has_pending = item, True
        now = time.monotonic()
        if now - last_sent >= interval:
            yield item
            last_sent, has_pending = now, False
    if has_pending:
        yield pending


def editor_value(editor: Any, payload: Any) -> Any:
    """An image editor's raw value as its images: after an edit the browser uploads the background, layers and
    composite to the component (`accept_blobs`) and sends only their id; those bytes, undecoded (the zoo's
    ImageMask field checks their size first). Anything else (files from an example or gradio_client) as sent."""
    storage = getattr(editor, "blob_storage", None)
    key = payload.get("id") if isinstance(payload, Mapping) else None
    if key is None or storage is None:
        return payload
    blobs = storage.pop(key, None)
    if blobs is None:
        return payload
    return {"background": blobs.background, "layers": [b for b in blobs.layers if b is not None],
            "composite": blobs.composite}


#: The signature default of an endpoint parameter that follows an optional one (see TabBuilder.handler).
_PASSED_BY_GRADIO = object()


class TabBuilder:
    """Builds one plugin's tab; its helpers are there for plugins with their own UI."""

    def __init__(self, zoo: Zoo, plugin: P.Plugin, text: Catalog | None = None):
        self.zoo = zoo
        self.plugin = plugin
        #: The app's texts: `self.text("English")` is what a component shows (translated in the browser).
        self.text = text if text is not None else Catalog([plugin])
        self.inputs: dict[str, Any] = {}
        self.outputs: list[Any] = []

    # -------------------------------------------------------------- shared pieces
    def header(self) -> None:
        """Description and model note."""
        import gradio as gr

        t = self.text
        gr.Markdown(t("### {title}\n{description}", title=t.word(self.plugin.title),
                      description=t.word(self.plugin.description)))
        if self.plugin.models is None:  # no model of its own: say what it uses, or why it cannot run
            self.note = gr.Markdown(composition_note(self.zoo, self.plugin, text=t))
            return
        self.note = gr.Markdown(model_note(self.zoo, self.plugin, self.zoo.default_model(self.plugin), text=t))
        if self.plugin.uses:  # a hybrid: its model, and the tabs it uses when it runs without it
            self.parts_note = gr.Markdown(composition_note(self.zoo, self.plugin, hybrid=True, text=t))

    def model_picker(self) -> Any:
        """The model dropdown: defaults and the known list; custom ids where allowed."""
        import gradio as gr

        t = self.text
        custom = self.plugin.models.allow_custom and self.zoo.settings.allow_custom_models
        choices = self.zoo.model_choices(self.plugin)
        for ref in choices:  # the notes a pick shows, translated too (the translations are fixed at launch)
            model_note(self.zoo, self.plugin, ref, text=t)
        picker = gr.Dropdown(choices=choices, value=self.zoo.default_model(self.plugin),
                             allow_custom_value=custom, label=t("Model"),
                             info=t("Type a Hub id to try another model") if custom else None)
        picker.change(lambda ref: str(model_note(self.zoo, self.plugin, ref, text=t)) if ref else "", picker,
                      self.note, api_visibility="private", queue=False)
        return picker

    def pickers(self) -> dict[str, Any]:
        """The tab's model parameters: `model`, a composite's `<part>_model` pickers, or none (model-less)."""
        model = {"model": self.model_picker()} if self.plugin.models is not None else {}
        parts = {P.part_model_name(part): self.part_picker(part, task) for part, task in self.plugin.uses.items()}
        return {**parts, **model}  # a hybrid has both; `model` stays the last parameter, as in the API

    def part_picker(self, part: str, task: str) -> Any:
        """A composite part's model dropdown: the used task's choices; "" (its default) first."""
        import gradio as gr

        t = self.text
        label = t("{part} model", part=part.replace('_', ' ').capitalize())
        if task.replace("_", "-") not in self.zoo.registry:  # the tab's note says what is missing
            return gr.Dropdown(choices=[("not served here", "")], value="", label=label, interactive=False,
                               info=t("No plugin for {task} is served here", task=task))
        used = self.zoo.registry.get(task)
        if used.models is None:
            return gr.Dropdown(choices=[("no model", "")], value="", label=label, interactive=False)
        default = self.zoo.default_model(used)
        custom = used.models.allow_custom and self.zoo.settings.allow_custom_models
        choices = [(f"default ({default})", "")] + [(m, m) for m in self.zoo.model_choices(used)]
        info = "For the {title} step; type a Hub id to try another model" if custom else "For the {title} step"
        return gr.Dropdown(choices=choices, value="", allow_custom_value=custom, label=label,
                           info=t(info, title=t.word(used.title)))

    def api_help(self, values: dict[str, Any]) -> None:
        """The 'Use via API' note."""
        import gradio as gr

        with gr.Accordion(self.text("Use via API"), open=False):
            snippet = api_snippet(self.plugin, values, self.api_url())
            code = snippet[len("```python\n"):snippet.rindex("```\n")]
            gr.Markdown(self.text(API_SNIPPET, code=code))

    def api_url(self) -> str:
        """The address a gradio_client on this machine would use."""
        host = self.zoo.settings.server_name
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return f"http://{host}:{self.zoo.settings.server_port}/"

    def guard(self, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """Wrap a generator handler so zoo errors become readable gr.Errors."""
        task = self.plugin.task

        def guarded(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Cancelled:
                return
            except Exception as exc:
                raise user_error(exc, task) from None

        guarded.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        guarded.__name__ = getattr(fn, "__name__", "guarded")
        guarded.__doc__ = fn.__doc__  # the MCP tool's description and parameter docs (zoo.mcp.tool_doc)
        return guarded

    def handler(self, names: Sequence[str]) -> Callable[..., Iterator[tuple]]:
        """A generator for the plugin's endpoint, its parameters named after the fields; listen with **RAW_INPUTS."""
        import gradio as gr

        zoo, plugin = self.zoo, self.plugin
        outputs = list(plugin.outputs)
        editors = {f.name: self.inputs[f.name] for f in plugin.fields()
                   if isinstance(f, P.ImageMask) and f.name in names and f.name in self.inputs}

        def run(*args: Any, progress: Any = gr.Progress()) -> Iterator[tuple]:
            values = dict(zip(names, args))
            for name, editor in editors.items():
                values[name] = editor_value(editor, values[name])
            # Gradio shows a step's description only with a fraction: None (busy, no fraction) becomes 0.
            folder = output_dir()
            folder.mkdir(parents=True, exist_ok=True)
            # Speech and subtitle files go into gradio's cache too: served from there, never copied.
            ctx = P.RunContext(limits=zoo.limits, on_progress=lambda f, d: progress(f if f is not None else 0, desc=d),
                               temp_dir=str(folder))
            try:
                for result in throttle(zoo.stream(plugin.task, values, ctx)):
                    shown = tuple(_output_value(f, result.get(f.name), folder) for f in outputs)
                    yield shown[0] if len(shown) == 1 else shown  # one output: the API returns it bare
            finally:
                ctx.cancel_event.set()  # Stop, disconnect or done: let background work end

        # An input that may be left empty (an optional recording) is optional over the API too: a
        # gradio_client caller leaves it out instead of passing None.
        # (Gradio reads a None default as "optional"; the parameters after one need some default too,
        # and get a marker that is not None, so that they stay required. Gradio always passes every one.)
        optional = {f.name for f in plugin.fields() if isinstance(f, P.Audio) and not f.required}
        params, seen = [], False
        for n in names:
            seen = seen or n in optional
            default = {"default": None if n in optional else _PASSED_BY_GRADIO} if seen else {}
            params.append(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, **default))
        params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__name__ = plugin.endpoint()  # the MCP tool's name; its docstring describes the tool
        run.__doc__ = tool_doc(plugin, names, zoo.limits, *(
            (zoo.default_model(plugin), zoo.model_choices(plugin)) if plugin.models is not None else ()))
        return self.guard(run)

    # -------------------------------------------------------------- layout hooks
    # The generated tab is built from these pieces; a plugin's own `build_ui` uses them too
    # (chat, semantic search), so every tab shares one layout and one way to wire the endpoint.
    def input_fields(self, fields: Sequence[P.Field] | None = None) -> dict[str, Any]:
        """Components for the plugin's inputs (or `fields`), added to `self.inputs`; returned by name."""
        made = {f.name: component(f, self.zoo.limits, text=self.text)
                for f in (self.plugin.inputs if fields is None else fields)}
        self.inputs.update(made)
        return made

    def run_buttons(self) -> tuple[Any, Any | None]:
        """The Run and Stop buttons, in a row; Stop shows only for plugins that stream."""
        import gradio as gr

        task = self.plugin.task
        with gr.Row():
            run_btn = gr.Button(self.text("Run"), variant="primary", scale=3, elem_id=f"zoo-{task}-run")
            stop_btn = gr.Button(self.text("Stop"), variant="stop", scale=1, visible=self.plugin.can_stream,
                                 elem_id=f"zoo-{task}-stop")
        return run_btn, stop_btn

    def options_accordion(self, fields: Sequence[P.Field] | None = None) -> dict[str, Any]:
        """The plugin's options (or `fields`) folded away under "Advanced options", added to `self.inputs`."""
        import gradio as gr

        with gr.Accordion(self.text("Advanced options"), open=False):
            return self.input_fields(self.plugin.options if fields is None else fields)

    def inputs_column(self, run_buttons: Callable[[], tuple[Any, Any | None]] | None = None
                      ) -> tuple[Any, Any | None]:
        """Inputs, the buttons (`run_buttons`, default `self.run_buttons`), the model pickers, the folded options.

        `self.inputs` ends with the pickers (`model`, or a composite's `<part>_model`): the endpoint's
        parameters are the fields, then the models.
        Returns the (run, stop) buttons for `wire`.
        """
        self.input_fields()
        run_btn, stop_btn = (run_buttons or self.run_buttons)()
        pickers = self.pickers()
        self.options_accordion()
        self.inputs.update(pickers)  # after the declared fields, as in the API: `model` or the part pickers
        return run_btn, stop_btn

    def outputs_column(self) -> list[Any]:
        """Read-only components for the plugin's outputs, as `self.outputs`."""
        self.outputs = [component(f, self.zoo.limits, output=True, text=self.text) for f in self.plugin.outputs]
        return self.outputs

    def api_endpoint(self, listen: Callable[..., Any]) -> Any:
        """Attach the plugin's public endpoint to an event listener (`button.click`): `/<endpoint>`, its
        parameters `self.inputs` by name, its results `self.outputs`, one queue per model."""
        return listen(self.handler(list(self.inputs)), inputs=list(self.inputs.values()), outputs=self.outputs,
                      api_name=self.plugin.endpoint(), concurrency_limit=self.zoo.settings.max_concurrency_per_model,
                      concurrency_id=f"model-{self.plugin.task}", **RAW_INPUTS)

    def wire(self, run_btn: Any, stop_btn: Any | None = None) -> list[Any]:
        """Run calls the endpoint; Enter in a one-line first text input runs too; Stop cancels both."""
        plugin = self.plugin
        events = [self.api_endpoint(run_btn.click)]
        first = plugin.inputs[0] if plugin.inputs else None
        if isinstance(first, P.Text) and first.lines == 1:
            names = list(self.inputs)
            events.append(self.inputs[first.name].submit(
                lambda: None, None, None, api_visibility="private", queue=False).then(
                self.handler(names), list(self.inputs.values()), self.outputs, api_visibility="private",
                **RAW_INPUTS))
        if stop_btn is not None:
            stop_btn.click(None, None, None, cancels=events, api_visibility="private", queue=False)
        return events

    def examples(self, examples: Sequence[Mapping[str, Any]] | None = None, names: Sequence[str] | None = None,
                 components: Mapping[str, Any] | None = None) -> list[Mapping[str, Any]]:
        """Clickable examples: the declared ones (or `examples`; media-only tabs get a generated sample), in
        the columns some example sets (or `names`) of `self.inputs` (or `components`). Returns the examples."""
        import gradio as gr

        plugin = self.plugin
        examples = (list(plugin.examples) or sample_examples(plugin)) if examples is None else list(examples)
        components = self.inputs if components is None else components
        if examples:
            # Only the columns some example sets: a table of defaults would hide what matters.
            shown = [n for n in components if any(n in ex for ex in examples)] if names is None else list(names)
            rows = [[ex.get(n, self._default(n)) for n in shown] for ex in examples]
            gr.Examples(rows, inputs=[components[n] for n in shown], label=self.text("Examples"),
                        elem_id=f"zoo-{plugin.task}-examples")
        return examples

    # -------------------------------------------------------------- generated tab
    def build(self, run_buttons: Callable[[], tuple[Any, Any | None]] | None = None) -> None:
        """The generated tab: inputs and model left, outputs right, examples and API note below.

        `run_buttons` replaces the Run/Stop row (semantic search adds an upload button there).
        """
        import gradio as gr

        self.header()
        with gr.Row():
            with gr.Column(scale=1):
                run_btn, stop_btn = self.inputs_column(run_buttons)
            with gr.Column(scale=1):
                self.outputs_column()
        self.wire(run_btn, stop_btn)
        examples = self.examples()
        self.api_help({f.name: examples[0].get(f.name, f.default) if examples else f.default
                       for f in self.plugin.inputs})

    def tag(self) -> None:
        """Stable DOM ids for the tab's fields (`zoo-<task>-in-<name>`, `zoo-<task>-out-<name>`), for tests and CSS."""
        task = self.plugin.task
        for name, comp in self.inputs.items():
            if getattr(comp, "elem_id", "missing") is None:
                comp.elem_id = f"zoo-{task}-in-{name}"
        for f, comp in zip(self.plugin.outputs, self.outputs):
            if getattr(comp, "elem_id", "missing") is None:
                comp.elem_id = f"zoo-{task}-out-{f.name}"

    def _default(self, name: str) -> Any:
        if name == "model":
            return self.zoo.default_model(self.plugin)
        return next(f.default for f in self.plugin.fields() if f.name == name)


def refresh_pickers(tab: Any, builder: TabBuilder) -> None:
    """Offer the models trained since the page loaded: the tab's model picker takes the zoo's current
    choices (the model store's `trained:` entries among them) when the tab is opened or the picker focused."""
    import gradio as gr

    picker = builder.inputs.get("model")
    if picker is None or builder.plugin.models is None or not isinstance(picker, gr.Dropdown):
        return
    zoo, plugin = builder.zoo, builder.plugin

    def choices(current: Any) -> Any:
        offered = zoo.model_choices(plugin)
        if current and current not in offered:
            offered.append(current)  # a typed custom id stays
        return gr.Dropdown(choices=offered)

    for event in (tab.select, picker.focus):
        event(choices, picker, picker, api_visibility="private", queue=False)


def _html_code(text: str) -> str:
    """Escape text for HTML, showing its `backticked` names as code (markdown is not parsed inside HTML)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def quarantine_tab(q: Quarantined, text: Catalog | None = None) -> None:
    """A broken plugin's tab: the error and the fix, details folded away."""
    import gradio as gr

    t = text or Catalog()
    gr.Markdown(t("<div class='zoo-quarantine'><h3>⚠️ Plugin <code>{name}</code> is unavailable</h3>"
                  "<p><b>Error:</b> {error}</p><p><b>Fix:</b> {fix}</p><p>Source: {source}. Every other tab "
                  "keeps working.</p></div>", name=html.escape(q.name), error=_html_code(q.error),
                  fix=_html_code(q.fix), source=html.escape(q.source)))
    with gr.Accordion(t("Details"), open=False):
        gr.Code(q.details, language=None, label=t("Traceback"))


#: The top-level tab that holds the quarantined plugins' tabs, after every group.
UNAVAILABLE_GROUP = "unavailable"


def grouped_plugins(plugins: Sequence[P.Plugin]) -> dict[str, list[P.Plugin]]:
    """The plugins under each group (P.group_of), groups in P.GROUPS order, empty groups left out, plugins in the
    order given (tab order)."""
    groups: dict[str, list[P.Plugin]] = {group: [] for group in P.GROUPS}
    for plugin in plugins:
        groups[P.group_of(type(plugin))].append(plugin)
    return {group: members for group, members in groups.items() if members}


def tab_names(plugins: Sequence[P.Plugin]) -> dict[str, tuple[str, str | None]]:
    """What `?tab=` may say, lower-case with "-" for "_": each task, each endpoint name (`chat`) and each
    group id, mapped to (group, task); a group's task is None (its first tab)."""
    grouped = grouped_plugins(plugins)
    names: dict[str, tuple[str, str | None]] = {_tab_key(group): (group, None) for group in grouped}
    # Endpoint names first, then tasks: a task wins over a group or endpoint that is spelt the same.
    for key in ("endpoint", "task"):
        for group, members in grouped.items():
            for plugin in members:
                names[_tab_key(plugin.endpoint() if key == "endpoint" else plugin.task)] = (group, plugin.task)
    return names


def _tab_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def tab_link_note(wanted: str, names: Mapping[str, tuple[str, str | None]]) -> str:
    """The note an unknown `?tab=` shows above the default tab: the value, and the names it may take."""
    tasks = sorted({task for _, task in names.values() if task})
    return (f"<div class='zoo-tab-note'>⚠️ This link asks for the tab <code>{html.escape(wanted)}</code>, which "
            "this app does not have, so it opened the first tab. A link opens a tab with "
            f"<code>?tab=&lt;task&gt;</code>, one of: {', '.join(f'<code>{html.escape(t)}</code>' for t in tasks)}."
            "</div>")


def linked_tab(wanted: str, names: Mapping[str, tuple[str, str | None]]) -> tuple[str | None, str | None, str]:
    """What `?tab=<wanted>` opens: (group, task, note). Nothing asked: (None, None, ""); a group: its first tab
    (task None); an unknown name: (None, None, the note naming it and the valid ones)."""
    wanted = wanted.strip()
    if not wanted:
        return None, None, ""
    if _tab_key(wanted) not in names:
        return None, None, tab_link_note(wanted, names)
    group, task = names[_tab_key(wanted)]
    return group, task, ""


def link_tabs(demo: Any, names: Mapping[str, tuple[str, str | None]], outer: Any, nested: Mapping[str, Any],
              note: Any) -> None:
    """`/?tab=<task>` (or an endpoint or group name) selects that group and its tab when the page loads;
    an unknown name leaves the first tab and shows the note."""
    import gradio as gr

    groups = list(nested)

    def open_linked(request: Any) -> list[Any]:
        group, task, problem = linked_tab((request.query_params.get("tab") or "") if request is not None else "", names)
        if problem:
            return [gr.skip()] * (len(groups) + 1) + [gr.Markdown(problem, visible=True)]
        if group is None:
            return [gr.skip()] * (len(groups) + 2)
        return ([gr.Tabs(selected=f"group-{group}")]
                + [gr.Tabs(selected=task) if g == group and task else gr.skip() for g in groups]
                + [gr.Markdown(visible=False)])

    # Gradio passes the request to a parameter annotated gr.Request; this module's annotations are strings
    # (and gradio is imported lazily), so the annotation is set here.
    open_linked.__annotations__["request"] = gr.Request
    demo.load(open_linked, None, [outer, *nested.values(), note], queue=False, api_visibility="private")


# The share button's click, after the tab's inputs went to the server: gradio's deep link (a snapshot of this
# session's component values) plus `tab=<task>`, into the clipboard; where the page may not write there (plain
# http from another machine), in a prompt to copy it from. The link also goes into the address bar, so that the
# browser's own share and bookmark take it too.
_SHARE_JS = """
async () => {
  const url = new URL(window.location.href);
  url.searchParams.delete("deep_link");
  url.searchParams.delete("__sign");
  url.searchParams.set("tab", TASK);
  const response = await fetch(`gradio_api/deep_link?session_hash=${window.__gradio_session_hash__}`);
  const saved = response.ok ? (await response.text()).replace(/^"|"$/g, "") : "";
  if (saved) url.searchParams.set("deep_link", saved);
  const link = url.toString();
  window.history.replaceState(null, "", link);
  try {
    await navigator.clipboard.writeText(link);
  } catch (error) {
    window.prompt("Copy this link:", link);
  }
  return COPIED;
}
"""

SHARE_LABEL, SHARE_COPIED = "🔗 Share", "Link copied"


def share_button(builder: "TabBuilder") -> Any:
    """The tab's share button (`zoo-<task>-share`): a gr.DeepLinkButton that copies a link opening this tab with
    its inputs as they are now, run or not.

    Gradio's own DeepLinkButton links the values the server last saw, and a value typed but never run is not
    among them; this one sends the tab's inputs first, then asks for the link, and adds `?tab=`. (One button and
    no link box: each component a tab adds costs every cold start.)
    """
    import json

    import gradio as gr

    task = builder.plugin.task
    # An image editor's value is an upload held for the next run (TabBuilder.handler takes it): never remembered.
    remembered = [c for c in builder.inputs.values() if not isinstance(c, gr.ImageEditor)]
    # No icon file: gradio adds a button's icon to its static paths, which every file the page serves is then
    # checked against, one resolve() each; 24 share buttons made that a tenth of a second of every cold start.
    # Its words in the page's language: the label, and what its click shows for two seconds (gradio's
    # translation markers, as text, translate when the click sets them too).
    label, copied = (str(builder.text(w)) for w in (SHARE_LABEL, SHARE_COPIED))
    button = _deep_link_button(label, copied, size="sm")
    button.elem_id = f"zoo-{task}-share"
    js = _SHARE_JS.replace("TASK", json.dumps(task)).replace("COPIED", json.dumps(copied))
    private = dict(api_visibility="private", queue=False)
    # The inputs go in as sent (no preprocessing): gradio records them in the session, which the link snapshots.
    sent = button.click(lambda *values: None, remembered, None, **private, **RAW_INPUTS) if remembered else None
    then = sent.then if sent is not None else button.click
    then(None, None, [button], js=js, **private).then(
        None, None, [button], js=f"() => new Promise(done => setTimeout(() => done({json.dumps(label)}), 2000))",
        **private)
    return button


def _deep_link_button(value: str, copied_value: str, **kwargs: Any) -> Any:
    """A gr.DeepLinkButton without the click gr.DeepLinkButton attaches to itself (share_button wires its own).

    Its constructor attaches that click whenever a page is being built, so the button is set up by its parent's
    (gr.Button's) constructor instead. A subclass would do the same, and gradio writes a `.pyi` file of the module
    that defines a component subclass, at every start, next to the zoo's source (which may be read-only).
    """
    import gradio as gr

    button = gr.DeepLinkButton.__new__(gr.DeepLinkButton)
    button.copied_value = copied_value
    gr.Button.__init__(button, value, **kwargs)
    return button


def plugin_tab(zoo: Zoo, plugin: P.Plugin, t: Catalog | None = None) -> None:
    """One plugin's tab: its body (its own build_ui, or the generated one), a share button, fresh model pickers;
    its text through the catalog `t` (zoo.i18n)."""
    import gradio as gr

    t = (t or Catalog()).for_plugin(plugin)  # its own translations first (zoo.i18n.Catalog.for_plugin)
    with gr.Tab(t(plugin.title), id=plugin.task, elem_id=f"tab-{plugin.task}") as tab:
        builder = TabBuilder(zoo, plugin, t)
        if not plugin.build_ui(builder):
            builder.build()
        builder.tag()
        share_button(builder)
    refresh_pickers(tab, builder)


MEDIA_SUFFIXES = {".wav": "audio", ".mp3": "audio", ".flac": "audio", ".ogg": "audio", ".m4a": "audio",
                  ".mp4": "video", ".webm": "video", ".mov": "video", ".mkv": "video", ".avi": "video"}


def example_media(plugins: Sequence[P.Plugin]) -> list[str]:
    """The audio and video files the tabs' examples will show: the declared examples' and the generated samples'
    (what sample_dir holds from an earlier start, or holds now)."""
    found: list[str] = []
    for plugin in plugins:
        media = {f.name for f in plugin.inputs if isinstance(f, (P.Audio, P.Video))}
        found += [str(ex[n]) for ex in plugin.examples for n in media if isinstance(ex.get(n), (str, Path))]
    folder = sample_dir()
    if folder.is_dir():
        found += [str(f) for f in sorted(folder.iterdir()) if f.suffix.lower() in MEDIA_SUFFIXES and f.is_file()]
    return [f for f in dict.fromkeys(found) if Path(f).suffix.lower() in MEDIA_SUFFIXES]


@contextlib.contextmanager
def probes_ahead(paths: Sequence[str]) -> Iterator[None]:
    """While the page is built, gradio's "can a browser play this?" checks of example media come from ffprobe
    runs started beforehand, side by side, and each file is probed once.

    Gradio probes every audio and video example with ffprobe (~0.1 s each) while it builds the examples table,
    one after another, and some twice; that was a quarter of the zoo's cold start past a bare app's
    (bench/coldstart_tabs.py). A file not probed ahead, or changed since, is probed as gradio would.
    """
    from concurrent.futures import ThreadPoolExecutor

    import gradio.processing_utils as pu

    checks = {"audio": getattr(pu, "audio_is_playable", None), "video": getattr(pu, "video_is_playable", None)}
    if not paths or None in checks.values() or not shutil.which("ffprobe"):
        yield
        return

    def stamp(path: str) -> tuple[str, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (os.path.abspath(path), st.st_mtime_ns, st.st_size)

    pool = ThreadPoolExecutor(max_workers=min(4, len(paths)), thread_name_prefix="zoo-probe")
    ahead = {(kind, key): pool.submit(checks[kind], path) for path in paths
             if (kind := MEDIA_SUFFIXES.get(Path(path).suffix.lower())) and (key := stamp(path))}

    def memo(kind: str) -> Callable[[str], bool]:
        def playable(path: str) -> bool:
            key = (kind, stamp(str(path)))
            if key not in ahead:
                ahead[key] = pool.submit(checks[kind], path)
            return ahead[key].result()
        return playable

    pu.audio_is_playable, pu.video_is_playable = memo("audio"), memo("video")
    try:
        yield
    finally:
        pu.audio_is_playable, pu.video_is_playable = checks["audio"], checks["video"]
        pool.shutdown(wait=False, cancel_futures=True)


def set_queue(demo: Any, zoo: Zoo) -> None:
    """The zoo's queue limits (ZOO_MAX_QUEUE, ZOO_MAX_CONCURRENCY) on the queue every gr.Blocks makes itself.

    `demo.queue(...)` would make a new queue and rebuild the server app for it, which costs a cold start as much
    as the routes and the page's components do; the queue gradio made is set in place where it has these two
    settings (as queue() sets them), and queue() is called where it does not.
    """
    queue = getattr(demo, "_queue", None)
    resolve = getattr(queue, "_resolve_concurrency_limit", None)
    if queue is None or resolve is None or not hasattr(queue, "max_size") \
            or not hasattr(queue, "default_concurrency_limit"):
        demo.queue(max_size=zoo.settings.max_queue, default_concurrency_limit=zoo.settings.max_concurrency_per_model)
        return
    queue.max_size = 1 if zoo.settings.max_queue is None and _zero_gpu() else zoo.settings.max_queue
    queue.default_concurrency_limit = resolve(zoo.settings.max_concurrency_per_model)


def _zero_gpu() -> bool:
    from gradio import utils

    return bool(getattr(utils, "is_zero_gpu_space", lambda: False)())


def build_demo(zoo: Zoo | None = None) -> Any:
    """The whole app: a header, a tab per group (P.GROUPS) holding a tab per plugin, a tab of the quarantined
    plugins, an API footer; `/?tab=<task>` opens a tab."""
    import gradio as gr

    zoo = zoo or Zoo()
    t = Catalog.for_registry(zoo.registry)  # every text shown, in every language (see zoo.i18n)
    device = describe_device(zoo.settings.device)
    mode = t.word("every tab on its tiny random-weight model" if zoo.settings.tiny else (
        "offline (packaged models and the local cache)" if zoo.settings.hub_offline
        else "online (models come from the Hugging Face Hub)"))
    broken = len(zoo.registry.quarantined)
    tabs = t.render("{count} tabs, {broken} unavailable (marked ⚠️)" if broken else "{count} tabs",
                    count=len(zoo.registry), broken=broken)
    # Gradio probes the examples' audio and video while the tabs are built: the probes run ahead, side by side.
    with probes_ahead(example_media(zoo.registry.plugins())), \
            gr.Blocks(title="Model Zoo", analytics_enabled=False) as demo:
        set_queue(demo, zoo)
        gr.HTML(switch_html(), elem_id="zoo-languages")
        gr.Markdown(t("# Model Zoo\nOpen models for text, speech and images in one app, one tab per task. "
                      "Pick a tab, click an example, press **Run**.\n\nRunning on **{device}**, {mode} · {tabs}.",
                      device=device, mode=mode, tabs=tabs), elem_classes=["zoo-header"])
        note = gr.Markdown(visible=False, elem_id="zoo-tab-note")
        nested: dict[str, Any] = {}
        with gr.Tabs(elem_id="zoo-groups") as outer:
            for group, plugins in grouped_plugins(zoo.registry.plugins()).items():
                with gr.Tab(t(P.GROUPS[group]), id=f"group-{group}", elem_id=f"group-{group}"):
                    with gr.Tabs(elem_id=f"zoo-{group}-tabs") as nested[group]:
                        for plugin in plugins:
                            plugin_tab(zoo, plugin, t)
            if zoo.registry.quarantined:
                with gr.Tab(t("⚠️ Unavailable"), id=f"group-{UNAVAILABLE_GROUP}",
                            elem_id=f"group-{UNAVAILABLE_GROUP}"):
                    with gr.Tabs(elem_id=f"zoo-{UNAVAILABLE_GROUP}-tabs"):
                        for q in zoo.registry.quarantined:
                            with gr.Tab(f"⚠️ {q.name}", elem_id=f"tab-broken-{q.name}"):
                                quarantine_tab(q, t)
        gr.Markdown(t("Each tab is also an HTTP endpoint: open **Use via API** in a tab, or the API page "
                      "linked below, to call it with `gradio_client`."))
        link_tabs(demo, tab_names(zoo.registry.plugins()), outer, nested, note)
    demo.zoo = zoo  # tests and the Space app reach the same Zoo through the demo
    demo.zoo_text = t  # its texts: `launch` hands gradio their translations (gr.I18n)
    return demo


def launch(demo: Any, zoo: Zoo, **kwargs: Any) -> Any:
    """Queue and launch with the zoo's limits (queue size, upload size, sessions kept, output age)."""
    if getattr(demo, "zoo", None) is not zoo:  # build_demo set the queue of its own demo already
        set_queue(demo, zoo)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
    if zoo.settings.output_ttl > 0:
        app_kwargs.setdefault("lifespan", _output_sweeper(zoo.settings.output_ttl))
    from zoo.openai_api import mount_openai

    mount_openai(app_kwargs, zoo)  # the OpenAI-compatible API at /v1, ahead of gradio's routes
    # MCP (ZOO_MCP, ZOO_MCP_TOOLS) and sign-in (ZOO_AUTH): see zoo/mcp.py and zoo/auth.py.
    kwargs.setdefault("mcp_server", zoo.settings.mcp)
    if kwargs["mcp_server"]:
        app_kwargs["lifespan"] = mcp_lifespan(tool_endpoints(zoo), zoo.settings.auth, app_kwargs.get("lifespan"),
                                              announce=not kwargs.get("quiet"))
    if zoo.settings.auth:
        kwargs.setdefault("auth", list(zoo.settings.auth))
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", ()),
                                    auth_middleware(zoo.settings.auth, api_key=zoo.settings.api_key)]
    # The app's text in the browser's language (or the header switch's): see zoo/i18n.py.
    text = getattr(demo, "zoo_text", None)
    if text is not None:
        kwargs.setdefault("i18n", text.gradio())
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", ()), locale_middleware()]
    # Gradio keeps each session's copy of the page's config (about 0.5 MB with every tab) until
    # `state_session_capacity` newer sessions push it out, and every REST call is a new session:
    # at gradio's default of 10000 that is gigabytes. ZOO_MAX_SESSIONS caps it.
    return demo.launch(server_name=zoo.settings.server_name, server_port=zoo.settings.server_port,
                       max_file_size=zoo.settings.max_file_size, css=CSS, show_error=True,
                       state_session_capacity=zoo.settings.max_sessions, app_kwargs=app_kwargs, **kwargs)


def _output_sweeper(ttl: float) -> Callable[[Any], Any]:
    """A FastAPI lifespan that runs `sweep_outputs` on gradio's cache every so often while the server runs.

    Not gradio's own `delete_cache`: in gradio 6.31 it iterates the live set of uploaded files in a
    thread while the event loop adds to it, so the first upload during a sweep kills it for good
    ("RuntimeError: Set changed size during iteration") and nothing is deleted again. This sweep
    keeps what gradio keeps (example files, `keep_in_cache`) and tells gradio's sets what it deleted.
    """
    import asyncio
    import contextlib

    import anyio.to_thread
    from gradio.utils import get_upload_folder

    def sweep(blocks: Any) -> None:
        keep: set[str] = set()
        for block in list(blocks.blocks.values()):
            keep.update(getattr(block, "keep_in_cache", ()))
        deleted = sweep_outputs(Path(get_upload_folder()), ttl, keep, keep_dirs=(output_dir(),))
        for paths in list(getattr(blocks, "temp_file_sets", ())):
            for path in deleted:
                paths.discard(path)  # one discard at a time: safe while the event loop adds to the set

    async def sweep_forever(app: Any) -> None:
        while True:
            await asyncio.sleep(_sweep_every(ttl))
            try:
                await anyio.to_thread.run_sync(sweep, app.get_blocks())
            except Exception:  # housekeeping must never take the server down
                log.exception("Sweeping old outputs failed")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        task = asyncio.create_task(sweep_forever(app))
        try:
            yield
        finally:
            task.cancel()

    return lifespan
