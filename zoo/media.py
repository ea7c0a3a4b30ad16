"""Image helpers for any plugin that makes pictures: carry metadata inside the PNG itself.

A generated image should say how it was made (prompt, seed, model...) wherever it
travels. The metadata is one JSON object in one PNG text chunk (tEXt when it is
latin-1, iTXt otherwise). `attach_png_metadata` puts it in a PIL image's `.info`,
which is what PIL and gradio (`gr.Image(format="png")`, `gr.Gallery(format="png")`)
write back as text chunks when they save; `png_bytes` / `save_png` encode it
directly; `read_png_metadata` reads it back from a path, bytes or a PIL image.
PIL is imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from zoo.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

#: The PNG text keyword the zoo writes its metadata under (1-79 latin-1 characters).
PNG_METADATA_KEY = "model-zoo"


def _check_key(key: str) -> None:
    # The PNG spec: a keyword is 1-79 printable latin-1 characters, no leading/trailing space.
    if not 1 <= len(key) <= 79 or key != key.strip() or not all(32 <= ord(c) <= 255 for c in key):
        raise InvalidInput("key", key, "must be 1-79 latin-1 characters without leading or trailing spaces",
                           "pick a short ASCII keyword such as 'model-zoo'")


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    """The JSON text stored in the chunk (UTF-8 kept readable; key order kept)."""
    return json.dumps(dict(metadata), ensure_ascii=False, separators=(",", ":"))


def attach_png_metadata(image: "Image.Image", metadata: Mapping[str, Any],
                        key: str = PNG_METADATA_KEY) -> "Image.Image":
    """Store `metadata` as JSON in `image.info[key]` (in place) and return the image.

    PIL drops `.info` on most operations (convert, resize, crop): attach last, after any editing.
    """
    _check_key(key)
    image.info[key] = encode_metadata(metadata)
    return image


def _pnginfo(image: "Image.Image", metadata: Mapping[str, Any] | None, key: str) -> Any:
    """Every text entry of `image.info`, plus `metadata` under `key`, as a PngInfo."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    if metadata is not None:
        _check_key(key)
        texts[key] = encode_metadata(metadata)
    for k, v in texts.items():
        info.add_text(k, v)  # tEXt for latin-1 text, iTXt (UTF-8) otherwise
    return info


def png_bytes(image: "Image.Image", metadata: Mapping[str, Any] | None = None,
              key: str = PNG_METADATA_KEY) -> bytes:
    """Encode as PNG with the image's text `.info` and `metadata` (if given) as text chunks."""
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=_pnginfo(image, metadata, key))
    return out.getvalue()


def save_png(image: "Image.Image", path: str | Path, metadata: Mapping[str, Any] | None = None,
             key: str = PNG_METADATA_KEY) -> Path:
    """Write a PNG file with the image's text `.info` and `metadata` (if given); returns the path."""
    path = Path(path)
    path.write_bytes(png_bytes(image, metadata, key))
    return path


def png_texts(source: "str | Path | bytes | Image.Image") -> dict[str, str]:
    """Every text chunk (tEXt, zTXt, iTXt) of a PNG given as a path, bytes or PIL image."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        # A decoded PNG lists all its chunks in `.text` (also those after the pixel data);
        # an in-memory image only has `.info`.
        texts = getattr(source, "text", None)
        items = texts if isinstance(texts, Mapping) else source.info
        return {k: str(v) for k, v in items.items() if isinstance(k, str) and isinstance(v, str)}
    if isinstance(source, (bytes, bytearray, memoryview)):
        opened, shown = io.BytesIO(bytes(source)), f"<{len(source)} bytes>"
    elif isinstance(source, (str, Path)):
        opened, shown = Path(source), str(source)
        if not opened.is_file():
            raise InvalidInput("image", shown, "is not a file", "pass the path of a PNG file")
    else:
        raise InvalidInput("image", source, "must be a file path, PNG bytes or a PIL image")
    try:
        with Image.open(opened) as image:
            return png_texts(image)
    except UnidentifiedImageError:
        raise InvalidInput("image", shown, "is not an image file", "pass a PNG written by the zoo") from None


def read_png_metadata(source: "str | Path | bytes | Image.Image", key: str = PNG_METADATA_KEY) -> dict[str, Any]:
    """The metadata dict stored under `key` in a PNG (path, bytes or PIL image); {} when there is none."""
    raw = png_texts(source).get(key)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidInput(key, raw, "must hold a JSON object", "the chunk was not written by the zoo") from None
    if not isinstance(value, dict):
        raise InvalidInput(key, raw, "must hold a JSON object", "the chunk was not written by the zoo")
    return value


#: Most pixels decoded to downscale an oversized input (ZOO_IMAGE_OVERSIZE=downscale): about 150 MB as RGB.
#: PNG and WebP cannot be decoded at a reduced size, so anything larger is refused even then.
DOWNSCALE_MAX_PIXELS = 50_000_000


def as_rgb(value: Any, name: str = "image", max_side: int | None = None, oversize: str = "refuse",
           mode: str | None = "RGB") -> Any:
    """A PIL RGB image from what a caller sent: a PIL image, a file path, an encoded file's bytes, or a numpy array.

    With `max_side`, a file's size is read from its header before any pixel is decoded (a
    420 KB PNG can declare 12000x12000, 430 MB as RGB and gigabytes while decoding): larger
    images are refused, or with `oversize="downscale"` shrunk to fit. `mode=None` keeps the
    decoded mode (a mask layer's alpha channel), any other mode converts to it.
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if isinstance(value, dict):  # gradio_client's FileData
        value = value.get("path") or value.get("url")
    if isinstance(value, (bytes, bytearray, memoryview)):  # an encoded file (an upload's body, an editor's blob)
        value = io.BytesIO(bytes(value))
    is_path = isinstance(value, (str, io.BytesIO)) or hasattr(value, "__fspath__")
    if not (isinstance(value, PILImage.Image) or is_path or hasattr(value, "__array__")):
        raise InvalidInput(name, type(value).__name__, "must be an image", "upload a PNG, JPEG or WebP picture")
    try:
        if isinstance(value, PILImage.Image):
            image = _fit(value, name, value.width, value.height, max_side, oversize)
        elif is_path:
            with PILImage.open(value) as opened:  # reads the header only
                _fit(None, name, opened.width, opened.height, max_side, oversize)
                if max_side and max(opened.size) > max_side and opened.format == "JPEG":
                    opened.draft("RGB", (max_side, max_side))  # JPEG decodes at 1/2, 1/4 or 1/8 size
                image = _fit(opened.copy(), name, opened.width, opened.height, max_side, oversize)
        else:
            import numpy as np

            array = np.asarray(value)
            if array.ndim >= 2:
                _fit(None, name, array.shape[1], array.shape[0], max_side, oversize)
            image = _fit(PILImage.fromarray(array), name, 0, 0, max_side, oversize)
    except InvalidInput:
        raise
    except (OSError, UnidentifiedImageError, PILImage.DecompressionBombError, TypeError, ValueError) as exc:
        on_disk = is_path and not isinstance(value, io.BytesIO)
        shown = Path(value).name if on_disk else "<image bytes>" if is_path else type(value).__name__  # never a server path
        why = str(exc).replace(os.fspath(value), shown) if on_disk else str(exc)
        raise InvalidInput(name, shown, f"cannot be read as an image ({why})",
                           "upload a PNG, JPEG or WebP picture") from None
    if image.width < 1 or image.height < 1:
        raise InvalidInput(name, f"{image.width}x{image.height}", "must have at least one pixel",
                           "upload a real picture")
    return image if mode is None else image.convert(mode)


def _fit(image: Any, name: str, width: int, height: int, max_side: int | None, oversize: str) -> Any:
    """Check a declared size against `max_side` (refuse, or shrink `image` when given and allowed)."""
    if image is not None:
        width, height = max(width, image.width), max(height, image.height)
    if not max_side or max(width, height) <= max_side:
        return image
    if oversize != "downscale":
        raise InvalidInput(name, f"{width}x{height}", f"is larger than {max_side} pixels on a side "
                           "(ZOO_MAX_IMAGE_SIDE)", f"resize it to at most {max_side}x{max_side}; the operator can "
                           "raise ZOO_MAX_IMAGE_SIDE or set ZOO_IMAGE_OVERSIZE=downscale")
    if width * height > DOWNSCALE_MAX_PIXELS:
        raise InvalidInput(name, f"{width}x{height}", f"is {width * height / 1e6:.0f} megapixels, more than the "
                           f"{DOWNSCALE_MAX_PIXELS / 1e6:.0f} this server decodes to downscale",
                           f"resize it to at most {max_side}x{max_side} before sending it")
    if image is None:
        return None
    scale = max_side / max(image.width, image.height)  # keeps the aspect ratio; the long side becomes max_side
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample=3)  # bicubic, on a copy: a caller's own image is never changed
