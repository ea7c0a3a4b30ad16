"""Drawing helpers shared by the vision plugins: a fixed palette, boxes with labels, blended masks, legends.

Pure PIL and numpy, and exact, so tests can check pixels: `draw_boxes` paints each box's
outline (`width` pixels thick, inside the box) in its colour and a filled tag holding its
text; `blend_masks` mixes each mask's colour into exactly its pixels and leaves every other
pixel as it was. Nothing here imports torch or a model library; PIL and numpy are imported
inside the functions, so importing the module is free.

Coordinates are pixels of the image: a box (x0, y0, x1, y1) covers columns x0..x1-1 and rows
y0..y1-1 (x1 and y1 are exclusive, as a model's corner coordinates are), rounded to whole
pixels and clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from zoo.errors import InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: Distinct colours, in the order labels get them: strong hues first, far apart from each other.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
    (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (64, 0, 96), (0, 0, 128), (255, 225, 25), (128, 128, 128),
)


def colour(index: int) -> tuple[int, int, int]:
    """The palette colour for the `index`-th label (the palette repeats past its end)."""
    return PALETTE[index % len(PALETTE)]


def hex_colour(rgb: Sequence[int]) -> str:
    """#rrggbb for a colour (tables and legends name colours this way)."""
    return "#" + "".join(f"{int(c):02x}" for c in rgb[:3])


def text_colour(background: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on `background` (by its luminance)."""
    r, g, b = background[:3]
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


@dataclass(frozen=True)
class Box:
    """A box to draw: corners in pixels (x1, y1 exclusive), its text ("dog 0.93") and colour."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str = ""
    colour: tuple[int, int, int] = PALETTE[0]


def pixel_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The box's corners as whole pixels clipped to an image of `size` (width, height); None when empty."""
    width, height = size
    x0, x1 = (min(max(round(v), 0), width) for v in (box.x0, box.x1))
    y0, y1 = (min(max(round(v), 0), height) for v in (box.y0, box.y1))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def tag_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Where the box's text tag goes (x0, y0, x1, y1 exclusive): above the box when it fits, else just
    inside its top edge; clipped to the image. None for a box without text or outside the image."""
    corners = pixel_box(box, size)
    if corners is None or not box.text:
        return None
    from PIL import Image as PILImage
    from PIL import ImageDraw

    left, top, right, bottom = ImageDraw.Draw(PILImage.new("RGB", (1, 1))).textbbox((0, 0), box.text, font=_font())
    w, h = right - min(left, 0) + 4, bottom - min(top, 0) + 4
    x0, y0 = corners[0], corners[1] - h if corners[1] - h >= 0 else corners[1]
    tag = (x0, y0, min(x0 + w, size[0]), min(y0 + h, size[1]))
    return tag if tag[2] > tag[0] and tag[3] > tag[1] else None


def draw_boxes(image: "Image.Image", boxes: Sequence[Box], width: int = 2) -> "Image.Image":
    """A copy of `image` (RGB) with each box's outline and text tag drawn in its colour, in order.

    The outline is `width` pixels thick, inside the box; the tag is a filled rectangle (tag_box)
    with the text in black or white. Boxes outside the image draw nothing.
    """
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if width < 1:
        raise InvalidInput("width", width, "must be at least 1 pixel", "draw boxes with width=1 or more")
    pixels = np.array(image.convert("RGB"))
    size = (pixels.shape[1], pixels.shape[0])
    for box in boxes:
        corners = pixel_box(box, size)
        if corners is None:
            continue
        x0, y0, x1, y1 = corners
        w = min(width, x1 - x0, y1 - y0)
        paint = np.array(box.colour[:3], dtype=np.uint8)
        pixels[y0:y0 + w, x0:x1] = paint
        pixels[y1 - w:y1, x0:x1] = paint
        pixels[y0:y1, x0:x0 + w] = paint
        pixels[y0:y1, x1 - w:x1] = paint
    out = PILImage.fromarray(pixels)
    draw = ImageDraw.Draw(out)
    for box in boxes:
        tag = tag_box(box, size)
        if tag is None:
            continue
        draw.rectangle((tag[0], tag[1], tag[2] - 1, tag[3] - 1), fill=tuple(box.colour[:3]))
        # The text is clipped to its tag: drawn on the tag alone, then pasted.
        tag_image = out.crop(tag)
        ImageDraw.Draw(tag_image).text((2, 2), box.text, fill=text_colour(box.colour), font=_font())
        out.paste(tag_image, tag[:2])
    return out


def _mask_array(mask: Any, size: tuple[int, int], index: int) -> Any:
    import numpy as np

    array = np.asarray(mask)
    if array.ndim != 2 or (array.shape[1], array.shape[0]) != size:
        shape = "x".join(map(str, array.shape[::-1])) if array.ndim == 2 else f"shape {array.shape}"
        raise InvalidInput(f"masks[{index}]", shape, f"must be a mask of the image's size {size[0]}x{size[1]}",
                           "resize the mask to the image (one value a pixel) before blending")
    return array.astype(bool)


def blend_masks(image: "Image.Image", masks: Sequence[tuple[Any, Sequence[int]]], alpha: float = 0.5) -> "Image.Image":
    """A copy of `image` (RGB) with each (mask, colour) mixed in: inside a mask a pixel becomes
    round((1 - alpha) * pixel + alpha * colour); pixels outside every mask are unchanged. Masks are
    2-D arrays of the image's size (True or non-zero = the label's pixel), applied in order."""
    import numpy as np
    from PIL import Image as PILImage

    if not 0.0 <= alpha <= 1.0:
        raise InvalidInput("alpha", alpha, "must be between 0 and 1", "use e.g. alpha=0.5")
    pixels = np.array(image.convert("RGB"))
    size = (pixels.shape[1], pixels.shape[0])
    for i, (mask, rgb) in enumerate(masks):
        where = _mask_array(mask, size, i)
        mixed = (1.0 - alpha) * pixels[where].astype(np.float64) + alpha * np.array(rgb[:3], dtype=np.float64)
        pixels[where] = np.clip(np.floor(mixed + 0.5), 0, 255).astype(np.uint8)
    return PILImage.fromarray(pixels)


def mask_image(mask: Any, rgb: Sequence[int], size: tuple[int, int] | None = None) -> "Image.Image":
    """One mask as a picture: its pixels in `rgb`, every other pixel black (size = the mask's)."""
    import numpy as np
    from PIL import Image as PILImage

    array = np.asarray(mask)
    if size is None:
        size = (array.shape[1], array.shape[0]) if array.ndim == 2 else (0, 0)
    where = _mask_array(array, size, 0)
    pixels = np.zeros((*where.shape, 3), dtype=np.uint8)
    pixels[where] = np.array(rgb[:3], dtype=np.uint8)
    return PILImage.fromarray(pixels)


#: A legend row's height and its colour swatch's side, in pixels.
LEGEND_ROW, LEGEND_SWATCH = 20, 14


def swatch_box(row: int) -> tuple[int, int, int, int]:
    """Where row `row`'s colour swatch is in a legend (x0, y0, x1, y1 exclusive)."""
    top = 4 + row * LEGEND_ROW + (LEGEND_ROW - LEGEND_SWATCH) // 2
    return 6, top, 6 + LEGEND_SWATCH, top + LEGEND_SWATCH


def draw_legend(entries: Sequence[tuple[str, Sequence[int]]], width: int = 320) -> "Image.Image":
    """A legend picture: one row per (text, colour), a square swatch of the colour then the text, on white.

    The picture is `width` wide and 8 + LEGEND_ROW pixels a row high; swatch_box(i) gives row i's swatch."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if not entries:
        raise InvalidInput("entries", "[]", "must list at least one label", "draw a legend only when masks were found")
    legend = PILImage.new("RGB", (width, 8 + LEGEND_ROW * len(entries)), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for row, (text, rgb) in enumerate(entries):
        x0, y0, x1, y1 = swatch_box(row)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=tuple(rgb[:3]))
        draw.text((x1 + 8, y0), text, fill=(20, 20, 20), font=_font(12))
    return legend


__all__ = ["LEGEND_ROW", "PALETTE", "Box", "blend_masks", "colour", "draw_boxes", "draw_legend", "hex_colour",
           "mask_image", "pixel_box", "swatch_box", "tag_box", "text_colour"]
