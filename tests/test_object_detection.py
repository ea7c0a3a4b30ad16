"""Object detection (plugins/object_detection.py): the declaration through zoo.testing, a synthetic detection drawn at
exactly its pixels, the tiny random-weight DETR's boxes clipped, drawn and listed one for one, the threshold, label
filter and cap, bad pictures refused, the endpoint format and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plugins._vision import Box, colour, pixel_box, tag_box
from plugins.object_detection import (HEADERS, TINY_DETECTION_LABELS, TINY_QUERIES, ObjectDetection, present, select,
                                      wanted_labels)
from samples import _image, huge_png
from zoo.errors import InvalidInput
from zoo.runner import Zoo
from zoo.testing import check_plugin

ROOT = Path(__file__).resolve().parent.parent
TASK = "object-detection"


def _sample() -> Image.Image:
    from zoo.ui import sample_image

    return Image.open(sample_image()).convert("RGB")


def _region(box: list[float], size: tuple[int, int], text: str) -> np.ndarray:
    """Where drawing a box may change pixels: its clipped rectangle and its tag."""
    area = np.zeros((size[1], size[0]), bool)
    corners = pixel_box(Box(*box), size)
    assert corners is not None
    area[corners[1]:corners[3], corners[0]:corners[2]] = True
    tag = tag_box(Box(*box, text=text), size)
    if tag is not None:
        area[tag[1]:tag[3], tag[0]:tag[2]] = True
    return area


def test_declaration_examples_and_output_types_pass_the_plugin_kit() -> None:
    (result,) = check_plugin(ObjectDetection)  # the generated example: the sample picture, default options
    assert result["annotated"].size == (320, 240) and result["details"]["image_size"] == [320, 240]
    assert ObjectDetection.endpoint() == "object_detection" and ObjectDetection.group == "vision"
    assert ObjectDetection.order == 63 and list(ObjectDetection.outputs[1].headers) == list(HEADERS)


def test_a_synthetic_detection_is_drawn_at_its_pixels_and_listed() -> None:
    image = Image.new("RGB", (200, 150), (90, 90, 90))
    found = [{"label": "dog", "score": 0.9312, "box": [20.2, 40.0, 120.4, 110.0]},
             {"label": "cat", "score": 0.40, "box": [150, 10, 190, 60]},  # under the threshold
             {"label": "dog", "score": 0.7, "box": [-30, -20, 500, 400]}]  # larger than the picture
    detections = select(found, image.size, threshold=0.5, labels=None, max_detections=10)
    assert detections == [{"label": "dog", "score": 0.9312, "box": [20.2, 40.0, 120.4, 110.0]},
                          {"label": "dog", "score": 0.7, "box": [0.0, 0.0, 200.0, 150.0]}]  # clipped
    annotated, rows = present(image, detections[:1])
    assert rows == [["dog", 0.9312, 20.2, 40.0, 120.4, 110.0]]
    after, before = np.asarray(annotated), np.asarray(image)
    changed = np.any(after != before, axis=2)
    # The outline: columns 20..119, rows 40..109, 2 pixels thick, in the first palette colour.
    outline = np.zeros_like(changed)
    outline[40:110, 20:120] = True
    outline[42:108, 22:118] = False
    tag = tag_box(Box(20.2, 40.0, 120.4, 110.0, text="dog 0.93"), image.size)
    assert tag is not None and tag[3] == 40  # "label score" above the box
    in_tag = np.zeros_like(changed)
    in_tag[tag[1]:tag[3], tag[0]:tag[2]] = True
    assert np.array_equal(changed, outline | in_tag)
    assert (after[outline] == colour(0)).all() and (after[~(outline | in_tag)] == before[~(outline | in_tag)]).all()
    # Each label keeps one colour, in order of first appearance.
    two = np.asarray(present(image, [{"label": "cat", "score": 0.9, "box": [0, 0, 10, 10]},
                                     {"label": "dog", "score": 0.8, "box": [20, 20, 40, 40]},
                                     {"label": "cat", "score": 0.7, "box": [50, 50, 70, 70]}])[0])
    assert tuple(two[69, 50]) == colour(0) and tuple(two[39, 20]) == colour(1)
    # Empty once clipped (outside the picture): not drawn, not listed.
    assert select([{"label": "dog", "score": 0.9, "box": [250, 10, 300, 50]}], image.size, 0.0, None, 10) == []
    assert len(select(found, image.size, 0.0, None, max_detections=2)) == 2
    assert [d["score"] for d in select(found, image.size, 0.0, None, 10)] == [0.9312, 0.7, 0.4]  # best first


def test_the_tiny_models_boxes_are_inside_the_picture_and_drawn_one_for_one(tiny_zoo: Zoo) -> None:
    image = _sample()
    result = tiny_zoo.run(TASK, image=image, threshold=0.0)
    rows, details = result["detections"], result["details"]
    assert 1 <= len(rows) <= TINY_QUERIES and details["candidates"] == TINY_QUERIES
    assert "Tiny random-weight" in details["note"] and details["model"] == "tiny:object-detection"
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    for label, score, x0, y0, x1, y1 in rows:
        assert label in TINY_DETECTION_LABELS and 0.0 <= score <= 1.0
        assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240  # clipped to the picture, in its pixels
    assert [[d["label"], d["score"], *d["box"]] for d in details["detections"]] == rows
    annotated = result["annotated"]
    assert annotated.size == image.size
    # The drawing is exactly the listed boxes, and changes nothing outside them and their tags.
    assert np.array_equal(np.asarray(annotated), np.asarray(present(image, details["detections"])[0]))
    allowed = np.zeros((240, 320), bool)
    for label, score, *box in rows:
        allowed |= _region(box, image.size, f"{label} {score:.2f}")
    changed = np.any(np.asarray(annotated) != np.asarray(image), axis=2)
    assert changed.any() and not (changed & ~allowed).any()
    # The last box drawn shows its full outline in its label's colour.
    colours = {}
    for label, *_ in rows:
        colours.setdefault(label, colour(len(colours)))
    label, _, *box = rows[-1]
    x0, y0, x1, y1 = pixel_box(Box(*box), image.size)
    assert (np.asarray(annotated)[y1 - 2:y1, x0:x1] == colours[label]).all()
    # Seeded: the same picture gives the same boxes every time.
    assert tiny_zoo.run(TASK, image=image, threshold=0.0)["detections"] == rows


def test_threshold_label_filter_and_cap(tiny_zoo: Zoo) -> None:
    image = _sample()
    every = tiny_zoo.run(TASK, image=image, threshold=0.0)["detections"]
    cut = sorted(r[1] for r in every)[len(every) // 2]
    above = tiny_zoo.run(TASK, image=image, threshold=cut)["detections"]
    assert above == [r for r in every if r[1] >= cut] and 0 < len(above) < len(every)
    assert tiny_zoo.run(TASK, image=image, threshold=1.0)["detections"] == []
    assert tiny_zoo.run(TASK, image=image, threshold=0.0, max_detections=2)["detections"] == every[:2]
    label = every[0][0]
    shown = tiny_zoo.run(TASK, image=image, threshold=0.0, labels=f" {label.upper()} , bird")
    assert shown["detections"] == [r for r in every if r[0] in {label, "bird"}]
    assert shown["details"]["labels_shown"] == sorted({label, "bird"})
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run(TASK, image=image, labels="dog, unicorn, teapot")
    message = str(err.value)
    assert "unicorn, teapot" in message and "are not labels this model detects" in message
    assert "person, bicycle, car, dog, cat, bird" in message  # the labels it knows
    assert wanted_labels("", ["dog"]) is None and wanted_labels(" , ", ["dog"]) is None
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        tiny_zoo.run(TASK, image=image, threshold=1.5)


def test_bad_pictures_are_refused_clearly(tiny_zoo: Zoo, tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    with pytest.raises(InvalidInput, match="cannot be read as an image") as err:
        tiny_zoo.run(TASK, image=str(corrupt))
    assert "broken.png" in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(InvalidInput) as err:
        tiny_zoo.run(TASK, image=str(huge_png(tmp_path / "huge.png", 5000, 300)))
    assert "5000x300" in str(err.value) and "ZOO_MAX_IMAGE_SIDE" in str(err.value)
    with pytest.raises(InvalidInput, match="larger than 1024 pixels on a side .*1100x20"):
        tiny_zoo.run(TASK, image=_image(1100, 20))


def test_the_endpoint_speaks_the_inference_api_format(tiny_zoo: Zoo, tmp_path: Path) -> None:
    plugin = tiny_zoo.registry.get(TASK)
    picture = tmp_path / "picture.png"
    _sample().save(picture)
    values = plugin.from_endpoint(str(picture), {"threshold": 0.0, "max_detections": 3, "ignored": 1})
    assert values == {"image": str(picture), "threshold": 0.0, "max_detections": 3}
    outputs = tiny_zoo.run(TASK, **values)
    answer = plugin.to_endpoint(outputs)
    assert len(answer) == 3 and all(set(a) == {"label", "score", "box"} for a in answer)
    assert [[a["label"], a["score"], *a["box"].values()] for a in answer] == outputs["detections"]
    assert list(answer[0]["box"]) == ["xmin", "ymin", "xmax", "ymax"]
    json.dumps(answer)


def test_zoo_run_object_detection_from_the_command_line(model_cache_dir: Path, tmp_path: Path) -> None:
    picture = tmp_path / "picture.png"
    _sample().save(picture)
    out = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--image", str(picture),
                          "--threshold", "0", "--max-detections", "3"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)},
                         timeout=300)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert len(printed["detections"]) == 3 and Image.open(printed["annotated"]).size == (320, 240)
    bad = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--image", str(picture),
                          "--labels", "unicorn"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(model_cache_dir)},
                         timeout=300)
    assert bad.returncode == 2 and "is not a label this model detects" in bad.stderr and "Traceback" not in bad.stderr


def test_the_tiny_detector_builds_byte_identical_offline_and_the_plugin_file_stands_alone(tmp_path: Path) -> None:
    import hashlib

    from zoo import tiny
    from zoo.registry import Registry

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}

    first, second = tiny.build(TASK, tmp_path / "a"), tiny.build(TASK, tmp_path / "b")
    assert digests(first) == digests(second) and "model.safetensors" in digests(first)
    config = json.loads((first / "config.json").read_text())
    assert config["backbone_config"]["model_type"] == "resnet" and config["num_queries"] == TINY_QUERIES
    full, without = Registry.discover(), Registry.discover(deny=[TASK])
    assert TASK in full.tasks() and set(without.tasks()) == set(full.tasks()) - {TASK} and not full.quarantined
