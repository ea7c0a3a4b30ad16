"""Image segmentation (plugins/image_segmentation.py): the declaration through zoo.testing, synthetic masks coloured at
exactly their pixels, the tiny random-weight SegFormer's label map turned into masks of the picture's size that
cover it once, listed with their pixels and shares, bad pictures refused, the endpoint format and the CLI.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plugins._vision import colour, hex_colour, swatch_box
from plugins.image_segmentation import HEADERS, TINY_SEGMENTATION_LABELS, ImageSegmentation, present, segments
from samples import _image, huge_png
from zoo.errors import InvalidInput
from zoo.runner import Zoo
from zoo.testing import check_plugin

ROOT = Path(__file__).resolve().parent.parent
TASK = "image-segmentation"


def _sample() -> Image.Image:
    from zoo.ui import sample_image

    return Image.open(sample_image()).convert("RGB")


def _mask_of(picture: Image.Image) -> np.ndarray:
    """A mask picture back to its mask (the label's colour on black)."""
    return np.asarray(picture).any(axis=2)


def test_declaration_examples_and_output_types_pass_the_plugin_kit() -> None:
    (result,) = check_plugin(ImageSegmentation)  # the generated example: the sample picture
    assert result["overlay"].size == (320, 240) and all(p.size == (320, 240) for p, _ in result["masks"])
    assert ImageSegmentation.endpoint() == "image_segmentation" and ImageSegmentation.group == "vision"
    assert ImageSegmentation.order == 64 and list(ImageSegmentation.outputs[3].headers) == list(HEADERS)


def test_synthetic_masks_colour_exactly_their_pixels_and_are_counted() -> None:
    image = Image.new("RGB", (40, 30), (100, 100, 100))
    label_map = np.zeros((30, 40), int)  # 0 = wall everywhere, 2 = tree in a block, 5 = road in a strip
    label_map[5:15, 10:30] = 2  # 200 pixels
    label_map[25:, :] = 5  # 200 pixels: a tie with tree, broken by the label id
    found = segments(label_map, {0: "wall", 2: "tree", 5: "road"})
    assert [label for label, _ in found] == ["wall", "tree", "road"]
    assert [int(m.sum()) for _, m in found] == [800, 200, 200]
    shown = present(image, found, opacity=0.5, max_labels=20)
    assert shown["segments"] == [["wall", hex_colour(colour(0)), 800, 0.6667],
                                 ["tree", hex_colour(colour(1)), 200, 0.1667],
                                 ["road", hex_colour(colour(2)), 200, 0.1667]]
    overlay = np.asarray(shown["overlay"]).astype(int)
    for (label, mask), rgb in zip(found, (colour(0), colour(1), colour(2))):
        expected = np.floor(0.5 * 100 + 0.5 * np.array(rgb) + 0.5)
        assert (overlay[mask] == expected).all(), label  # each mask's pixels, and only those, take its colour
    legend = np.asarray(shown["legend"])
    for row, rgb in enumerate((colour(0), colour(1), colour(2))):  # the legend's swatches, in the table's order
        x0, y0, x1, y1 = swatch_box(row)
        assert (legend[y0:y1, x0:x1] == rgb).all()
    assert shown["legend"].height == 8 + 20 * 3
    picture, caption = shown["masks"][1]
    assert np.array_equal(_mask_of(picture), label_map == 2) and caption == "tree · 200 px · 16.7%"
    assert (np.asarray(picture)[label_map == 2] == colour(1)).all()
    # Past max_labels: left out of the overlay (pixels as they were), the masks and the table.
    fewer = present(image, found, opacity=1.0, max_labels=1)
    assert len(fewer["masks"]) == len(fewer["segments"]) == 1 and fewer["hidden"] == ["tree", "road"]
    kept = np.asarray(fewer["overlay"])
    assert (kept[label_map == 0] == colour(0)).all() and (kept[label_map != 0] == 100).all()


def test_the_tiny_models_masks_have_the_pictures_size_and_cover_it_once(tiny_zoo: Zoo) -> None:
    image = _sample()
    result = tiny_zoo.run(TASK, image=image)
    rows, masks, details = result["segments"], result["masks"], result["details"]
    assert len(rows) == len(masks) == details["labels_found"] >= 2
    assert "Tiny random-weight" in details["note"] and details["model"] == "tiny:image-segmentation"
    arrays = [_mask_of(picture) for picture, _ in masks]
    assert all(m.shape == (240, 320) for m in arrays)  # masks of the input's size, not the model's 64x64
    assert (np.sum(arrays, axis=0) == 1).all()  # every pixel in exactly one mask
    assert sum(r[2] for r in rows) == 320 * 240 and sum(r[3] for r in rows) == pytest.approx(1.0, abs=1e-3)
    for (label, hexed, pixels, share), mask, (_, caption), i in zip(rows, arrays, masks, range(len(rows))):
        assert label in TINY_SEGMENTATION_LABELS and hexed == hex_colour(colour(i))
        assert pixels == int(mask.sum()) and share == round(pixels / (320 * 240), 4) and caption.startswith(label)
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)  # most pixels first
    legend = np.asarray(result["legend"])
    assert result["legend"].height == 8 + 20 * len(rows)  # one legend row per label, in the table's colours
    for row, (_, hexed, *_) in enumerate(rows):
        x0, y0, _, _ = swatch_box(row)
        assert hex_colour(legend[y0, x0]) == hexed
    # The overlay is the picture with each mask blended in at the default opacity 0.5, exactly.
    src, overlay = np.asarray(image).astype(int), np.asarray(result["overlay"]).astype(int)
    assert result["overlay"].size == image.size
    for mask, i in zip(arrays, range(len(arrays))):
        assert (overlay[mask] == np.floor(0.5 * src[mask] + 0.5 * np.array(colour(i)) + 0.5)).all()
    opaque = np.asarray(tiny_zoo.run(TASK, image=image, opacity=1.0)["overlay"])
    assert all((opaque[m] == colour(i)).all() for i, m in enumerate(arrays))
    assert tiny_zoo.run(TASK, image=image)["segments"] == rows  # seeded: the same every time
    one = tiny_zoo.run(TASK, image=image, max_labels=1)
    assert one["segments"] == rows[:1] and one["details"]["labels_hidden"] == [r[0] for r in rows[1:]]


def test_bad_pictures_are_refused_clearly(tiny_zoo: Zoo, tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"truncated" * 10)
    with pytest.raises(InvalidInput, match="cannot be read as an image") as err:
        tiny_zoo.run(TASK, image=str(corrupt))
    assert "broken.jpg" in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run(TASK, image=str(huge_png(tmp_path / "huge.png", 3000, 3000)))
    assert "3000x3000" in str(err.value) and "ZOO_MAX_IMAGE_SIDE" in str(err.value)
    with pytest.raises(InvalidInput, match="larger than 1024 pixels on a side .*20x1100"):
        tiny_zoo.run(TASK, image=_image(20, 1100))
    with pytest.raises(InvalidInput, match="between 0.05 and 1"):
        tiny_zoo.run(TASK, image=_image(), opacity=0)


def test_the_endpoint_speaks_the_inference_api_format(tiny_zoo: Zoo, tmp_path: Path) -> None:
    plugin = tiny_zoo.registry.get(TASK)
    picture = tmp_path / "picture.png"
    _sample().save(picture)
    values = plugin.from_endpoint(str(picture), {"subtask": "semantic", "max_labels": 3})
    assert values == {"image": str(picture), "max_labels": 3}
    outputs = tiny_zoo.run(TASK, **values)
    answer = json.loads(json.dumps(plugin.to_endpoint(outputs)))
    assert [a["label"] for a in answer] == [r[0] for r in outputs["segments"]] and len(answer) <= 3
    for a, (picture_out, _) in zip(answer, outputs["masks"]):
        mask = Image.open(io.BytesIO(base64.b64decode(a["mask"])))
        assert mask.mode == "L" and mask.size == (320, 240) and a["score"] is None
        assert np.array_equal(np.asarray(mask) == 255, _mask_of(picture_out))


def test_zoo_run_image_segmentation_from_the_command_line(model_cache_dir: Path, tmp_path: Path) -> None:
    picture = tmp_path / "picture.png"
    _sample().save(picture)
    out = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--image", str(picture),
                          "--max-labels", "2"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)}, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert len(printed["segments"]) == len(printed["masks"]) == 2
    assert Image.open(printed["overlay"]).size == (320, 240) and Image.open(printed["masks"][0][0]).size == (320, 240)


def test_the_tiny_segmenter_builds_byte_identical_offline_and_the_plugin_file_stands_alone(tmp_path: Path) -> None:
    import hashlib

    from zoo import tiny
    from zoo.registry import Registry

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}

    first, second = tiny.build(TASK, tmp_path / "a"), tiny.build(TASK, tmp_path / "b")
    assert digests(first) == digests(second) and "model.safetensors" in digests(first)
    config = json.loads((first / "config.json").read_text())
    assert config["model_type"] == "segformer" and len(config["id2label"]) == len(TINY_SEGMENTATION_LABELS)
    full, without = Registry.discover(), Registry.discover(deny=[TASK])
    assert TASK in full.tasks() and set(without.tasks()) == set(full.tasks()) - {TASK} and not full.quarantined
