"""The vision plugins' drawing helpers (plugins/_vision.py), checked pixel by pixel on synthetic boxes and masks:
a box colours exactly its outline (and its text tag), a mask colours exactly its pixels, nothing else changes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from plugins._vision import (LEGEND_ROW, PALETTE, Box, blend_masks, colour, draw_boxes, draw_legend, hex_colour,
                             mask_image, pixel_box, swatch_box, tag_box, text_colour)
from zoo.errors import InvalidInput

GREY = (90, 90, 90)


def _grey(width: int = 64, height: int = 48) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


def _changed(before: Image.Image, after: Image.Image) -> set[tuple[int, int]]:
    """(x, y) of every pixel that differs."""
    diff = np.any(np.asarray(before) != np.asarray(after), axis=2)
    return {(int(x), int(y)) for y, x in zip(*np.nonzero(diff))}


def _outline(x0: int, y0: int, x1: int, y1: int, width: int) -> set[tuple[int, int]]:
    """The pixels of a box's outline, `width` thick inside the box (x1, y1 exclusive), counted independently."""
    return {(x, y) for x in range(x0, x1) for y in range(y0, y1)
            if x < x0 + width or x >= x1 - width or y < y0 + width or y >= y1 - width}


def test_a_box_colours_exactly_its_outline_and_nothing_else() -> None:
    image = _grey()
    out = draw_boxes(image, [Box(10, 5, 30, 25, colour=(230, 25, 75))], width=2)
    changed = _changed(image, out)
    assert changed == _outline(10, 5, 30, 25, 2) and len(changed) == 20 * 20 - 16 * 16  # 144 pixels
    pixels = np.asarray(out)
    assert all(tuple(pixels[y, x]) == (230, 25, 75) for x, y in changed)
    assert image.getpixel((0, 0)) == GREY and out.size == image.size  # the input is left alone
    # Corners in fractions of a pixel round to whole pixels; a box over the edge is clipped to the picture.
    assert np.array_equal(np.asarray(draw_boxes(image, [Box(10.4, 5.4, 29.6, 24.6)])),
                          np.asarray(draw_boxes(image, [Box(10, 5, 30, 25)])))
    clipped = _changed(image, draw_boxes(image, [Box(-10, -10, 20, 70, colour=(0, 130, 200))], width=3))
    assert clipped == _outline(0, 0, 20, 48, 3)
    assert pixel_box(Box(-10, -10, 20, 70), (64, 48)) == (0, 0, 20, 48)
    # Outside the picture, or empty once rounded: nothing drawn.
    for box in (Box(70, 10, 90, 20), Box(10, 10, 10.2, 30), Box(30, 20, 10, 40)):
        assert pixel_box(box, (64, 48)) is None and not _changed(image, draw_boxes(image, [box]))
    # A box thinner than the outline is filled, not drawn outside itself.
    assert _changed(image, draw_boxes(image, [Box(5, 5, 8, 30)], width=4)) == {
        (x, y) for x in range(5, 8) for y in range(5, 30)}
    with pytest.raises(InvalidInput, match="width"):
        draw_boxes(image, [Box(1, 1, 5, 5)], width=0)


def test_a_labelled_box_adds_its_tag_above_the_box_or_inside_at_the_top() -> None:
    image = _grey(160, 120)
    box = Box(40, 50, 120, 100, text="dog 0.93", colour=(60, 180, 75))
    tag = tag_box(box, image.size)
    assert tag is not None
    tx0, ty0, tx1, ty1 = tag
    assert tx0 == 40 and ty1 == 50 and ty0 < 50 and tx1 > tx0 + 20  # above the box, starting at its left edge
    out = draw_boxes(image, [box], width=2)
    changed = _changed(image, out)
    in_tag = {(x, y) for x in range(tx0, tx1) for y in range(ty0, ty1)}
    assert changed == _outline(40, 50, 120, 100, 2) | in_tag  # every tag pixel differs from the grey
    tag_pixels = np.asarray(out)[ty0:ty1, tx0:tx1].reshape(-1, 3)
    fill = (tag_pixels == (60, 180, 75)).all(axis=1).mean()
    assert 0.5 < fill < 1.0  # mostly the box's colour, with text in it
    assert text_colour((210, 245, 60)) == (0, 0, 0) and text_colour((0, 0, 128)) == (255, 255, 255)
    # No room above: the tag goes inside the box, under its top edge; clipped at the right side.
    top = Box(100, 0, 160, 40, text="a long label 0.50")
    tag = tag_box(top, image.size)
    assert tag is not None and tag[1] == 0 and tag[2] == 160 and tag[3] <= 40
    assert _changed(image, draw_boxes(image, [top])) <= _outline(100, 0, 160, 40, 2) | {
        (x, y) for x in range(tag[0], tag[2]) for y in range(tag[1], tag[3])}


def test_boxes_are_drawn_in_order_each_in_its_colour() -> None:
    image = _grey()
    first, second = Box(0, 0, 40, 40, colour=colour(0)), Box(20, 20, 60, 48, colour=colour(1))
    out = np.asarray(draw_boxes(image, [first, second], width=1))
    assert tuple(out[0, 0]) == colour(0) and tuple(out[47, 59]) == colour(1)
    assert tuple(out[39, 20]) == colour(1)  # where the outlines cross, the later box is on top
    assert tuple(out[30, 30]) == GREY  # inside both boxes: untouched


def test_masks_colour_exactly_their_pixels_with_the_blend_asked_for() -> None:
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    yy, xx = np.mgrid[0:48, 0:64]
    disc = (xx - 20) ** 2 + (yy - 24) ** 2 <= 10 ** 2
    band = (yy >= 40) & (xx >= 40)
    red, blue = (230, 25, 75), (0, 130, 200)
    out = np.asarray(blend_masks(image, [(disc, red), (band.astype(np.uint8), blue)], alpha=0.5)).astype(int)
    src = np.asarray(image).astype(int)
    expected = src.copy()
    expected[disc] = np.floor(0.5 * src[disc] + 0.5 * np.array(red) + 0.5)
    expected[band] = np.floor(0.5 * src[band] + 0.5 * np.array(blue) + 0.5)
    assert np.array_equal(out, expected)
    untouched = ~(disc | band)
    assert np.array_equal(out[untouched], src[untouched])  # every pixel outside the masks as it was
    assert int(disc.sum()) == 317 and int(band.sum()) == 192
    solid = np.asarray(blend_masks(image, [(disc, red)], alpha=1.0))
    assert (solid[disc] == red).all() and np.array_equal(solid[~disc], np.asarray(image)[~disc])
    assert np.array_equal(np.asarray(blend_masks(image, [(disc, red)], alpha=0.0)), np.asarray(image))


def test_a_mask_of_another_size_is_refused_with_both_sizes() -> None:
    with pytest.raises(InvalidInput) as err:
        blend_masks(_grey(), [(np.ones((48, 64), bool), colour(0)), (np.ones((32, 32), bool), colour(1))])
    assert "masks[1]" in str(err.value) and "32x32" in str(err.value) and "64x48" in str(err.value)
    with pytest.raises(InvalidInput, match="alpha"):
        blend_masks(_grey(), [], alpha=1.5)


def test_a_mask_picture_is_its_colour_on_black() -> None:
    mask = np.zeros((48, 64), bool)
    mask[10:20, 30:35] = True
    picture = np.asarray(mask_image(mask, (245, 130, 48)))
    assert picture.shape == (48, 64, 3)
    assert (picture[mask] == (245, 130, 48)).all() and (picture[~mask] == 0).all()


def test_the_palette_is_distinct_and_never_black() -> None:
    assert len(PALETTE) == 20 and len(set(PALETTE)) == 20
    closest = min(sum((a - b) ** 2 for a, b in zip(p, q)) ** 0.5 for p, q in itertools.combinations(PALETTE, 2))
    assert closest > 50, closest  # tell-apart colours
    assert all(any(c) for c in PALETTE)  # a mask picture's black is never a label's colour
    assert colour(0) == colour(20) and colour(3) == PALETTE[3]
    assert hex_colour((230, 25, 75)) == "#e6194b"


def test_a_legend_has_one_swatch_of_each_colour_and_its_text_beside_it() -> None:
    entries = [("sky  52.0%", colour(0)), ("tree  30.5%", colour(1)), ("road  17.5%", colour(2))]
    legend = draw_legend(entries, width=240)
    assert legend.size == (240, 8 + 3 * LEGEND_ROW)
    pixels = np.asarray(legend)
    coloured = ~(pixels == 255).all(axis=2)
    for row, (_, rgb) in enumerate(entries):
        x0, y0, x1, y1 = swatch_box(row)
        assert (pixels[y0:y1, x0:x1] == rgb).all()  # the whole swatch, in the label's colour
        assert (pixels[y0 - 1, x0:x1] == 255).all() and (pixels[y0:y1, x1] == 255).all()  # and no more
        text = coloured[y0 - 3:y1 + 3, x1 + 4:]
        assert text.sum() > 20  # the text is written beside it
    assert not coloured[:, :swatch_box(0)[0]].any()  # a white margin
    with pytest.raises(InvalidInput, match="at least one label"):
        draw_legend([])
