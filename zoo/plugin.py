"""The plugin contract: what a capability declares, and the one method it implements.

A plugin is a class with data (task, title, model choices, typed fields, examples)
and a `run` method (plus `stream` where output grows). The UI, the HTTP API, the
CLI and the smoke tests are all derived from the declarations, so a plugin file
never imports gradio, torch or any model library at import time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

from zoo.errors import Cancelled, InvalidInput, ModelLoadError, ZooError

if TYPE_CHECKING:
    from zoo.kinds import ModelKind

#: The version of this contract. A plugin declares the one it targets (`api_version = 2`); the
#: registry quarantines a plugin declaring another, or none (zoo.registry.api_version_problem).
API_VERSION = 2

#: The app's top-level tabs, in order: group id -> title. A plugin names its group (`group = "vision"`);
#: one that leaves it empty gets one from its fields (`inferred_group`). Anything else is a declaration error.
GROUPS: Mapping[str, str] = {
    "text": "Text",
    "audio": "Audio",
    "vision": "Vision",
    "multimodal": "Multimodal",
    "train": "Train",
    "models": "Models",
}

# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class Field:
    """A typed input, option or output, declared as data."""

    name: str
    default: Any = None
    _: KW_ONLY
    label: str | None = None
    info: str | None = None

    @property
    def title(self) -> str:
        """Human label: the declared one, or the name with spaces."""
        return self.label or self.name.replace("_", " ").capitalize()

    def check(self, value: Any, limits: "Limits") -> Any:
        """Return the value converted to its declared type, or raise InvalidInput."""
        return value


@dataclass(frozen=True)
class Text(Field):
    """Free text; `required` rejects empty or whitespace-only values."""

    default: str = ""
    lines: int = 1
    placeholder: str | None = None
    required: bool = True
    max_chars: int | None = None

    def check(self, value: Any, limits: "Limits") -> str:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InvalidInput(self.name, value, "must be text", f"send {self.title.lower()} as a string")
        # Lone surrogates cannot be encoded and crash tokenizers downstream.
        value = value.encode("utf-8", "replace").decode("utf-8")
        value = "".join(ch for ch in value if ch in "\n\t\r" or ch.isprintable() or ord(ch) > 127)
        limit = self.max_chars or limits.max_text_chars
        if len(value) > limit:
            raise InvalidInput(self.name, f"<{len(value)} characters>", f"must be at most {limit} characters",
                               "shorten the text, or raise ZOO_MAX_TEXT_CHARS")
        if self.required and not value.strip():
            raise InvalidInput(self.name, value, "must not be empty", f"type some {self.title.lower()}")
        return value


@dataclass(frozen=True)
class Number(Field):
    """A number within [minimum, maximum]; `integer` rounds nothing, it rejects fractions."""

    default: float = 0
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    integer: bool = False
    limit: str | None = None  # name of a Limits attribute that caps `maximum`

    def bounds(self, limits: "Limits") -> tuple[float | None, float | None]:
        """The effective range, after the operator's limit."""
        hi = self.maximum
        if self.limit is not None:
            cap = getattr(limits, self.limit)
            hi = cap if hi is None else min(hi, cap)
        return self.minimum, hi

    def check(self, value: Any, limits: "Limits") -> float | int:
        if value is None or value == "":
            value = self.default
        lo, hi = self.bounds(limits)
        fix = f"give a number from {_fmt(lo)} to {_fmt(hi)}" if lo is not None or hi is not None else "give a number"
        if isinstance(value, bool):
            raise InvalidInput(self.name, value, "must be a number", fix)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(self.name, value, "must be a number", fix) from None
        if math.isnan(number) or math.isinf(number):
            raise InvalidInput(self.name, value, "must be a finite number", fix)
        if self.integer:
            if number != int(number):
                raise InvalidInput(self.name, value, "must be a whole number",
                                   f"use {math.floor(number)} or {math.ceil(number)}")
            number = int(number)
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise InvalidInput(self.name, value, f"must be between {_fmt(lo)} and {_fmt(hi)}",
                               f"pick a value from {_fmt(lo)} to {_fmt(hi)}")
        return number


def Int(name: str, default: int, minimum: int | None = None, maximum: int | None = None, **kw: Any) -> Number:
    """A whole-number field."""
    return Number(name=name, default=default, minimum=minimum, maximum=maximum, step=kw.pop("step", 1),
                  integer=True, **kw)


def Float(name: str, default: float, minimum: float | None = None, maximum: float | None = None, **kw: Any) -> Number:
    """A real-number field."""
    return Number(name=name, default=default, minimum=minimum, maximum=maximum, **kw)


@dataclass(frozen=True)
class Seed(Number):
    """A random seed; -1 means pick one at random (the runner picks it, and the one used is reported).

    `Seed()` is the usual option named "seed"; `Seed("noise_seed")` names another. The runner
    replaces -1 in every Seed field, whatever its name.
    """

    name: str = "seed"
    default: float = -1
    minimum: float | None = -1
    maximum: float | None = 2**32 - 1
    step: float | None = 1
    integer: bool = True
    _: KW_ONLY
    info: str | None = "-1 = random"


@dataclass(frozen=True)
class Choice(Field):
    """One of a fixed list of values."""

    choices: tuple[str, ...] = ()

    def check(self, value: Any, limits: "Limits") -> str:
        if value is None or value == "":
            value = self.default
        if value not in self.choices:
            options = ", ".join(map(str, self.choices))
            raise InvalidInput(self.name, value, f"must be one of {options}", f"pick one of {options}")
        return value


@dataclass(frozen=True)
class Bool(Field):
    """An on/off switch."""

    default: bool = False

    def check(self, value: Any, limits: "Limits") -> bool:
        if value is None:
            return bool(self.default)
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
            return value.lower() in {"true", "1"}
        if not isinstance(value, (bool, int)):
            raise InvalidInput(self.name, value, "must be true or false", "send true or false")
        return bool(value)


@dataclass(frozen=True)
class Image(Field):
    """An image: a PIL RGB image in run(), whatever the caller sent (path, upload, array)."""

    def check(self, value: Any, limits: "Limits") -> Any:
        from zoo.media import as_rgb  # PIL only when an image actually arrives

        # The size is checked from the file's header, before decoding: ZOO_MAX_IMAGE_SIDE, ZOO_IMAGE_OVERSIZE.
        return as_rgb(value, self.name, max_side=limits.max_image_side, oversize=limits.image_oversize)


@dataclass(frozen=True)
class MaskedImage:
    """What run() gets for an ImageMask input: the picture, and the mask drawn over it.

    `image` is a PIL RGB image; `mask` a PIL "L" image of the same size, 255 where something
    was drawn and 0 elsewhere, or None when nothing was drawn.
    """

    image: Any
    mask: Any = None


@dataclass(frozen=True)
class ImageMask(Field):
    """An image with a mask painted over it (input; the tab shows an image editor with a brush): run() gets a
    MaskedImage, its mask None when nothing is drawn.

    It takes the editor's value {"background": image, "layers": [images], "composite": ...} (the
    layers' painted pixels, merged, are the mask), {"image": image, "mask": image}, a JSON string
    of either (the CLI), or a plain image (no mask). A layer or mask with transparency counts its
    opaque pixels; one without counts its light pixels (white = masked, as diffusers' masks).
    """

    def check(self, value: Any, limits: "Limits") -> MaskedImage:
        from zoo.media import as_rgb  # PIL only when an image actually arrives

        if isinstance(value, MaskedImage):
            value = {"image": value.image, "mask": value.mask}
        if isinstance(value, str) and value.lstrip().startswith("{"):
            import json

            try:
                value = json.loads(value)
            except ValueError as exc:
                raise InvalidInput(self.name, value, f"is not valid JSON ({exc})",
                                   'send {"image": "picture.png", "mask": "mask.png"}, or the path of a picture') from None
        if isinstance(value, Mapping) and not {"path", "url"} & set(value):  # not one gradio FileData
            known = {"background", "layers", "composite", "id", "image", "mask"}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidInput(self.name, unknown, "has keys this field does not know",
                                   'send {"image": ..., "mask": ...} or the editor\'s {"background": ..., "layers": [...]}')
            picture = value.get("image", value.get("background"))
            painted = value.get("layers") or []
            painted = [painted] if not isinstance(painted, (list, tuple)) else list(painted)
            if value.get("mask") is not None:
                painted.append(value["mask"])
        else:
            picture, painted = value, []
        if picture is None or (isinstance(picture, str) and not picture.strip()):
            raise InvalidInput(self.name, None, "must be a picture", "upload a picture, then paint over what to change")
        opts = dict(max_side=limits.max_image_side, oversize=limits.image_oversize)
        decoded = as_rgb(picture, self.name, mode=None, **opts)
        image = _flatten_on_white(decoded)
        mask = None
        for i, layer in enumerate(p for p in painted if p is not None):
            drawn = _mask_of(as_rgb(layer, f"{self.name} mask", mode=None, **opts))
            if drawn.size != image.size:  # an editor canvas of another size: the mask follows the picture
                drawn = drawn.resize(image.size, resample=0)  # nearest: a mask stays 0 or 255
            mask = drawn if mask is None else _union(mask, drawn)
        if mask is not None and mask.getbbox() is None:  # layers with nothing painted on them
            mask = None
        return MaskedImage(image, mask)


def _flatten_on_white(image: Any) -> Any:
    """RGB; a transparent picture is laid on white (the colour under transparent pixels is arbitrary)."""
    from PIL import Image as PILImage

    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def _mask_of(layer: Any) -> Any:
    """A 0/255 "L" mask: the painted (not fully transparent) pixels of a layer with transparency, else the light ones."""
    if "A" in layer.getbands() or "transparency" in layer.info:
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:  # some transparency: what is painted is what is opaque
            return alpha.point(lambda a: 255 if a > 0 else 0)
    return layer.convert("L").point(lambda v: 255 if v >= 128 else 0)


def _union(a: Any, b: Any) -> Any:
    from PIL import ImageChops

    return ImageChops.lighter(a, b)


@dataclass(frozen=True)
class Audio(Field):
    """An audio file path (upload or microphone); as an output, `autoplay` plays it as soon as it arrives.

    `required=False`: the input may be left empty (run() then gets None), e.g. a question typed instead."""

    sources: tuple[str, ...] = ("upload", "microphone")
    autoplay: bool = False
    required: bool = True

    def check(self, value: Any, limits: "Limits") -> str | None:
        if isinstance(value, Mapping):  # gradio_client sends FileData dicts
            value = value.get("path") or value.get("name")
        if not value and not self.required:
            return None
        if not value or not isinstance(value, str):
            raise InvalidInput(self.name, value, "must be an audio file", "upload a file or record from the microphone")
        return value


@dataclass(frozen=True)
class Video(Field):
    """A video clip (input): run() gets its file's path, after ffprobe checked it (zoo.video): it has a video
    stream that this server's ffmpeg decodes, plays for more than 0 seconds, is at most ZOO_MAX_VIDEO_SECONDS
    long and ZOO_MAX_VIDEO_SIDE pixels on a side. `zoo.video.frames_at` takes frames out of it."""

    sources: tuple[str, ...] = ("upload", "webcam")

    def check(self, value: Any, limits: "Limits") -> str:
        import os

        from zoo import video  # ffprobe runs only when a clip actually arrives

        if value is None or value == "" or value == []:
            raise InvalidInput(self.name, value, "must be a video clip", "upload a clip or record one with the webcam")
        given = (value.get("path") or value.get("name")) if isinstance(value, Mapping) else value
        if isinstance(given, str) and not os.path.isfile(given):  # never a server path in the message
            raise InvalidInput(self.name, os.path.basename(given), "is not a file that exists here",
                               "upload the clip again (uploads expire)")
        path = _upload_path(self.name, value)
        shown = os.path.basename(path)
        info = video.probe(path, self.name)
        video.check(info, max_seconds=limits.max_video_seconds, max_side=limits.max_video_side, shown=shown,
                    name=self.name)
        return path


@dataclass(frozen=True)
class Gallery(Field):
    """A list of images (output)."""


@dataclass(frozen=True)
class Highlight(Field):
    """Text with highlighted spans: a list of (text, label-or-None) pairs (output)."""


@dataclass(frozen=True)
class Table(Field):
    """Rows under fixed headers (output)."""

    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Json(Field):
    """Any JSON-serialisable value (output)."""


@dataclass(frozen=True)
class File(Field):
    """A file: as an input, an upload (`multiple` for several), run() gets its path (a list of paths with
    `multiple`); as an output, a file to download (a path). `file_types` (".pdf", ".txt") limits what
    the tab's picker offers and what the check accepts; `max_files` caps a multiple upload."""

    multiple: bool = False
    file_types: tuple[str, ...] = ()
    max_files: int = 20

    def check(self, value: Any, limits: "Limits") -> Any:
        items = [] if value is None or value == "" or value == [] else (
            list(value) if isinstance(value, (list, tuple)) else [value])
        paths = [_upload_path(self.name, item) for item in items]
        if not paths:
            if self.default is not None:
                return self.default
            raise InvalidInput(self.name, value, "must be a file" + (" or several" if self.multiple else ""),
                               "upload a file" + (f" ({', '.join(self.file_types)})" if self.file_types else ""))
        if not self.multiple and len(paths) > 1:
            raise InvalidInput(self.name, f"<{len(paths)} files>", "takes one file", "upload a single file")
        if len(paths) > self.max_files:
            raise InvalidInput(self.name, f"<{len(paths)} files>", f"takes at most {self.max_files} files",
                               f"upload {self.max_files} files or fewer at a time")
        if self.file_types:
            for path in paths:
                if not path.lower().endswith(tuple(t.lower() for t in self.file_types)):
                    raise InvalidInput(self.name, path.rsplit("/", 1)[-1], f"must be one of {', '.join(self.file_types)}",
                                       f"upload a {' or '.join(self.file_types)} file, or rename it if that is what it is")
        return paths if self.multiple else paths[0]


def _upload_path(name: str, item: Any) -> str:
    """The server-side path of one uploaded file: a path string, a gradio FileData dict, or a gradio file object."""
    if isinstance(item, Mapping):  # gradio_client sends FileData dicts
        item = item.get("path") or item.get("name")
    elif not isinstance(item, str) and hasattr(item, "name"):  # gradio's NamedString / tempfile wrappers
        item = item.name
    if not item or not isinstance(item, str):
        raise InvalidInput(name, item, "must be an uploaded file", "upload the file, or pass its path from the CLI")
    import os

    if not os.path.isfile(item):
        raise InvalidInput(name, item, "is not a file that exists here", "upload the file again (uploads expire)")
    return item


@dataclass(frozen=True)
class Plot(Field):
    """A line plot (output): a list of {x: ..., y: ..., color: ...} rows, one line per `color` value
    (training and validation loss, a metric). The tab shows a gr.LinePlot; the API returns the rows."""

    x: str = "step"
    y: str = "value"
    color: str | None = "series"
    x_title: str | None = None
    y_title: str | None = None


@dataclass(frozen=True)
class Labels(Field):
    """Label -> score mapping, shown as bars (output)."""


def part_model_name(part: str) -> str:
    """The API parameter that picks a composite part's model: `transcriber` -> `transcriber_model`."""
    return f"{part}_model"


def _fmt(x: float | None) -> str:
    if x is None:
        return "any"
    return str(int(x)) if float(x).is_integer() else str(x)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelChoices:
    """Which models a plugin runs: a default per situation, a known list, custom ids or not.

    `online` is a Hub id (used when the Hub or a cached/packaged copy is reachable);
    `offline` is used when the Hub is not reachable and `online` has no local copy;
    `tiny` is a deterministic random-weight model for tests (`tiny:<kind>`).
    """

    online: str
    offline: str | None = None
    tiny: str | None = None
    known: tuple[str, ...] = ()
    allow_custom: bool = True

    def all(self) -> tuple[str, ...]:
        """Every model to offer in the picker, defaults first, no duplicates."""
        seen: dict[str, None] = {}
        for ref in (self.online, self.offline, *self.known, self.tiny):
            if ref:
                seen.setdefault(ref, None)
        return tuple(seen)


# --------------------------------------------------------------------------- run context


@dataclass(frozen=True)
class Limits:
    """The operator's caps that fields check against (from Settings)."""

    max_text_chars: int = 20_000
    max_new_tokens: int = 1024
    max_audio_seconds: float = 600.0
    max_image_side: int = 1024
    max_steps: int = 50
    max_image_work: float = 12.0
    image_oversize: str = "refuse"
    max_video_seconds: float = 60.0
    max_video_side: int = 1920
    # Not caps, but what a plugin running in the server needs of the operator's settings (the Fine-tune tab).
    allow_training: bool = field(default=True, compare=False)
    cache_dir: Any = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Any) -> "Limits":
        """Copy the caps out of a Settings object."""
        return cls(**{k: getattr(settings, k) for k in cls.__dataclass_fields__})


ProgressFn = Callable[[float | None, str], None]


@dataclass
class RunContext:
    """What a running request can use besides its model: progress, cancellation, limits."""

    limits: Limits = field(default_factory=Limits)
    on_progress: ProgressFn | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    model_ref: str = ""
    model_revision: str | None = None
    is_tiny: bool = False
    temp_dir: str | None = None
    models_used: dict[str, str] = field(default_factory=dict)  # part or task -> the model ctx.run ran
    # Counts a plugin reports with `report_usage` (a language model's prompt and completion tokens), read by the
    # OpenAI-compatible API (zoo/openai_api.py); from a worker process they come back over its pipe.
    usage: dict[str, int] = field(default_factory=dict)
    on_usage: Callable[[dict[str, int]], None] | None = field(default=None, repr=False)
    _chain: tuple[str, ...] = field(default=(), repr=False)  # the plugins that called this one, outermost first
    # Set by Zoo.stream for a plugin that runs in the server: how ctx.run/ctx.stream reach the zoo.
    _call: Callable[["RunContext", str, dict[str, Any]], Iterator[dict[str, Any]]] | None = field(
        default=None, repr=False)
    _workers: int = field(default=0, repr=False)
    _after_work: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _work_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, fraction: float | None, desc: str = "") -> None:
        """Report progress (0..1, or None for 'busy'); raises Cancelled if the user stopped."""
        self.raise_if_cancelled()
        if self.on_progress is not None:
            self.on_progress(fraction, desc)

    def report_usage(self, **counts: int) -> None:
        """Say what this request used, e.g. `report_usage(prompt_tokens=12, completion_tokens=30)`."""
        self.usage.update(counts)
        if self.on_usage is not None:
            self.on_usage(dict(counts))

    @property
    def cancelled(self) -> bool:
        """True once the user pressed Stop or the client went away."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Stop work promptly when cancelled."""
        if self.cancel_event.is_set():
            raise Cancelled("The request was stopped.")

    def stream(self, task_or_part: str, /, **values: Any) -> Iterator[dict[str, Any]]:
        """Call another plugin, yielding its growing outputs: a part name of `uses` (its picker's model
        unless `model=` is given) or any task name. It goes through the zoo as a tab does: input checks,
        model vetting, the shared cache, worker isolation; this request's cancel event, limits and
        progress (prefixed with the part). Finish or close a stream before calling the same task again:
        its model serves ZOO_CONCURRENCY requests at a time."""
        if self._call is None:
            raise ZooError("ctx.run and ctx.stream are for plugins that run in the server, not next to a model.",
                           "declare `models = None` (and `uses = {part: task}` for the tasks it calls)")
        yield from self._call(self, task_or_part, values)
        # A stopped child may end quietly (a model in a worker stops at its next step): the caller stops too.
        self.raise_if_cancelled()

    def run(self, task_or_part: str, /, **values: Any) -> dict[str, Any]:
        """Call another plugin to completion and return its outputs (see `stream`)."""
        result: dict[str, Any] = {}
        for result in self.stream(task_or_part, **values):
            pass
        return result

    def start_worker(self, target: Callable[[], None], name: str) -> threading.Thread:
        """Run `target` in a daemon thread; the request's model stays pinned until it returns.

        A generator that hands its work to a thread must never join it when it is closed:
        gradio closes a dropped request's iterator on the server's event loop, so a join
        there freezes every client until the work ends. Close signals, the thread stops at
        its next step, and the runner's release waits for it here (see `when_idle`).
        """
        with self._work_lock:
            self._workers += 1

        def body() -> None:
            try:
                target()
            finally:
                with self._work_lock:
                    self._workers -= 1
                    done, self._after_work = (self._after_work, []) if self._workers == 0 else ([], self._after_work)
                for callback in done:
                    callback()

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    def when_idle(self, callback: Callable[[], None]) -> bool:
        """Call `callback` once no worker from `start_worker` runs; True if that was now, False if deferred."""
        with self._work_lock:
            if self._workers:
                self._after_work.append(callback)
                return False
        callback()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no worker from `start_worker` runs (or `timeout` seconds pass); True if idle.

        Never on the server's event loop (see `start_worker`); for callers that run a request to its end,
        such as the CLI, which must not exit while a daemon worker is still inside torch."""
        idle = threading.Event()
        self.when_idle(idle.set)
        return idle.wait(timeout)


# --------------------------------------------------------------------------- groups


def inferred_group(cls: type) -> str:
    """The group for a plugin that declares none, from its fields: audio anywhere -> "audio"; an image or
    video with free text both in and out (asking about a picture) -> "multimodal", else -> "vision"; else "text"."""
    fields = [*getattr(cls, "inputs", ()), *getattr(cls, "options", ()), *getattr(cls, "outputs", ())]
    if any(isinstance(f, Audio) for f in fields):
        return "audio"
    if any(isinstance(f, (Image, ImageMask, Video, Gallery)) for f in fields):
        text_in = any(isinstance(f, Text) for f in getattr(cls, "inputs", ()))
        text_out = any(isinstance(f, Text) for f in getattr(cls, "outputs", ()))
        return "multimodal" if text_in and text_out else "vision"
    return "text"


def group_of(cls: type) -> str:
    """The group a plugin's tab sits under: its declared `group`, or the inferred one when it declares none."""
    return getattr(cls, "group", "") or inferred_group(cls)


def group_problem(cls: type) -> str:
    """Why a plugin's declared `group` is not usable ("" when it is empty or a GROUPS id)."""
    group = getattr(cls, "group", "")
    if group == "" or (isinstance(group, str) and group in GROUPS):
        return ""
    return (f"`group` is {group!r}, which is not a group; use one of {', '.join(GROUPS)} "
            "(or leave it empty to have it inferred from the fields)")


# --------------------------------------------------------------------------- the contract


class _OverridesStream:
    """`Plugin.can_stream`: derived, True when the plugin's class overrides `stream` (read on the class or an instance)."""

    def __get__(self, obj: Any, owner: type) -> bool:
        return owner.stream is not Plugin.stream


class Plugin:
    """Base class of every capability. Subclass, declare, implement `run` (and `stream`).

    Class attributes are the declaration; see plugins/text_generation.py for a full one.
    """

    api_version: ClassVar[int]  # the Plugin API it targets: API_VERSION (required)
    task: ClassVar[str]  # Hugging Face pipeline tag, e.g. "text-generation"
    title: ClassVar[str]
    description: ClassVar[str] = ""
    order: ClassVar[int] = 100  # tab order: lower first, ties by title
    models: ClassVar[ModelChoices | None] = None  # None: no model of its own (model-less or composite)
    model_kind: ClassVar[str | ModelKind | None] = None  # what the shared loader builds (zoo.kinds)
    uses: ClassVar[Mapping[str, str]] = {}  # composite: part name -> task it calls through ctx.run
    inputs: ClassVar[Sequence[Field]] = ()
    options: ClassVar[Sequence[Field]] = ()  # shown folded away under "Advanced"
    outputs: ClassVar[Sequence[Field]] = ()
    examples: ClassVar[Sequence[Mapping[str, Any]]] = ()
    can_stream: ClassVar[bool] = _OverridesStream()  # type: ignore[assignment]  # derived: overrides `stream`
    api_name: ClassVar[str | None] = None  # default: task with "_" for "-"
    # OpenAI-compatible routes this tab answers under /v1 (zoo/openai_api.py ROUTES: "chat/completions",
    # "embeddings", ...); the route then speaks the fields that route's handler documents.
    openai: ClassVar[tuple[str, ...]] = ()
    mcp: ClassVar[bool] = True  # False: the endpoint is not an MCP tool (it stays in the HTTP API)
    group: ClassVar[str] = ""  # the top-level tab it sits under, a GROUPS id; "" = inferred from its fields
    # locale ("zh-CN") -> {English text -> translation}, for the plugin's own strings (zoo.i18n.plugin_strings)
    translations: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    # The words a plugin's own `build_ui` shows beside its fields (buttons, a chat's placeholder): translatable
    # like the fields' (`ui.text("Send")` shows one in the page's language)
    ui_strings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def endpoint(cls) -> str:
        """The HTTP API name: `/text_generation` for task `text-generation`."""
        return cls.api_name or cls.task.replace("-", "_")

    @classmethod
    def fields(cls) -> tuple[Field, ...]:
        """Inputs, options, then a composite's part pickers, in API parameter order (the framework adds
        `model` last for a plugin with a model)."""
        return (*cls.inputs, *cls.options, *cls.part_fields())

    @classmethod
    def part_fields(cls) -> tuple["Text", ...]:
        """A composite's `<part>_model` parameters, in `uses` order; "" runs that task's default model."""
        return tuple(Text(part_model_name(part), "", required=False, label=f"{part.replace('_', ' ').capitalize()} model",
                          info=f"Model for {task}; empty = its default") for part, task in cls.uses.items())

    @classmethod
    def runs_in_server(cls) -> bool:
        """True for a plugin without a model of its own (model-less or composite): it runs in the server."""
        return cls.models is None

    def model_for(self, values: Mapping[str, Any], default: str) -> tuple[str, str]:
        """The (model reference, loader kind) for a request; override when a mode picks the model."""
        return values.get("model") or default, self.model_kind

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """Cross-field checks after each field checked itself; raise InvalidInput."""

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Compute all outputs at once, as {output name: value}. Default: the last item of `stream`."""
        if type(self).stream is Plugin.stream:
            raise NotImplementedError(f"{type(self).__name__} must implement run() or stream()")
        result: dict[str, Any] = {}
        for result in self.stream(model, values, ctx):
            pass
        return result

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Yield growing outputs; the last one yielded is the result. Default: run once."""
        yield self.run(model, values, ctx)

    def run_remote(self, engine: Any, values: dict[str, Any], ctx: RunContext
                   ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        """Run on a remote engine (the model is `remote:`, from ZOO_REMOTE_<TASK>): outputs, or growing outputs.

        The framework calls it in place of run/stream. `engine` is what the remote loader
        returned: a RemoteLM (a LanguageModel) for language-model kinds, else a RemoteClient
        whose `call(method, ...)` is huggingface_hub's InferenceClient task method. Default:
        a LanguageModel goes to stream()/run() as the model, as a local one would; any other
        engine is refused. Override it to call the engine's task API.
        """
        from zoo.generation import LanguageModel

        if isinstance(engine, LanguageModel):
            from zoo.models.manager import Loaded

            ref, kind = self.model_for(values, ctx.model_ref)
            model = Loaded.remote(ctx.model_ref or ref, getattr(kind, "name", kind), engine)
            return self.stream(model, values, ctx) if self.can_stream else self.run(model, values, ctx)
        name = self.task.upper().replace("-", "_")
        raise ModelLoadError(f"{self.task} has no remote engine support: `{ctx.model_ref}` is a remote engine, "
                             f"and {type(self).__name__} does not implement run_remote().",
                             f"unset ZOO_REMOTE_{name} to run the tab's own model here, or give the plugin a "
                             "run_remote(engine, values, ctx) that calls the engine's task API")

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        """How long this request may hold a GPU (ZeroGPU asks per call)."""
        return 60.0

    def from_endpoint(self, inputs: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """An Inference Endpoints request (`{"inputs": ..., "parameters": {...}}`) as this plugin's values.

        `python -m zoo serve-endpoint` calls it; override it to speak the task's own format.
        Default: a dict of inputs gives field values, anything else fills the first input;
        parameters named like fields are kept. An Image or Audio input arrives as a file path.
        """
        values = dict(inputs) if isinstance(inputs, Mapping) else ({self.inputs[0].name: inputs} if self.inputs else {})
        names = {f.name for f in self.fields()}
        values.update({k: v for k, v in parameters.items() if k in names})
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """This plugin's outputs as its task's Inference Endpoints answer: JSON data, or bytes (an image, audio)."""
        return outputs

    def build_ui(self, ui: Any) -> bool:
        """Build a custom tab body with gradio; return False to use the generated one."""
        return False
