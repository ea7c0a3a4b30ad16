"""Depth estimation (plugins/depth_estimation.py): colour maps checked pixel by pixel on synthetic depth, the
tiny random-weight Depth Anything's map at the input's size with raw values that are what the map shows,
16-bit PNG and .npy downloads read back, bad pictures refused, serve-endpoint and the CLI.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plugins.depth_estimation import (COLORMAP_ANCHORS, COLORMAPS, NPY, PNG16, DepthEstimation, colorize,
                                      colormap_table, depth_png16, normalise)
from samples import _image, huge_png
from zoo.errors import InvalidInput
from zoo.runner import Zoo
from zoo.settings import Settings

TASK = "depth-estimation"


@pytest.fixture
def zoo(settings: Settings) -> Zoo:
    return Zoo(settings.replace(tiny=True, plugins=(TASK,)))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


# ------------------------------------------------------------------ synthetic depth: the colour maps, exactly


def test_gray_colours_each_pixel_with_its_normalised_value() -> None:
    # 256 columns from depth 10 to 265 (one level a column), 3 rows; then a spike in one pixel.
    depth = np.tile(np.arange(10, 266, dtype=np.float32), (3, 1))
    image = colorize(depth, "gray")
    assert image.size == (256, 3) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert (pixels[:, :, 0] == np.arange(256)).all() and (pixels == pixels[:, :, :1]).all()  # (v, v, v)
    spiky = np.zeros((4, 5), dtype=np.float32)
    spiky[2, 3] = 7.5
    lit = np.asarray(colorize(spiky, "gray"))
    assert (lit[2, 3] == 255).all() and lit.sum() == 3 * 255  # that pixel and no other


@pytest.mark.parametrize("name", sorted(COLORMAP_ANCHORS))
def test_colour_maps_start_and_end_on_their_anchor_colours_and_pass_through_each(name: str) -> None:
    table = colormap_table(name)
    anchors = COLORMAP_ANCHORS[name]
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert tuple(table[0]) == _rgb(anchors[0]) and tuple(table[255]) == _rgb(anchors[-1])
    # The lowest depth gets the first colour, the highest the last, everything else a colour of the table.
    depth = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 8.0]])
    pixels = np.asarray(colorize(depth, name))
    assert tuple(pixels[0, 0]) == _rgb(anchors[0]) and tuple(pixels[1, 2]) == _rgb(anchors[-1])
    assert tuple(pixels[0, 2]) == tuple(table[round(2 / 8 * 255)])  # depth 2 of 0..8: index round(63.75) = 64
    # Blending between anchors never leaves the segment's two colours' box.
    for i in range(len(anchors) - 1):
        lo, hi = np.array(_rgb(anchors[i])), np.array(_rgb(anchors[i + 1]))
        start, stop = math.ceil(i * 255 / (len(anchors) - 1)), math.floor((i + 1) * 255 / (len(anchors) - 1))
        seg = table[start:stop + 1].astype(int)
        assert (seg >= np.minimum(lo, hi) - 1).all() and (seg <= np.maximum(lo, hi) + 1).all(), (name, i)


@pytest.mark.parametrize("name", ["inferno", "viridis", "magma"])
def test_perceptual_maps_get_brighter_with_depth(name: str) -> None:
    luma = colormap_table(name).astype(float) @ [0.299, 0.587, 0.114]
    assert (np.diff(luma) > -0.5).all() and luma[-1] - luma[0] > 150


def test_a_flat_depth_map_is_one_colour_and_an_unknown_map_is_refused() -> None:
    flat = np.full((6, 9), 3.25, dtype=np.float32)
    assert (normalise(flat) == 0).all()
    assert set(map(tuple, np.asarray(colorize(flat, "viridis")).reshape(-1, 3))) == {_rgb("#440154")}
    with pytest.raises(InvalidInput, match="must be one of inferno, viridis, magma, turbo, gray"):
        colormap_table("jet")


def test_the_16_bit_png_scales_depth_to_the_full_range_and_stores_it() -> None:
    depth = np.array([[2.0, 3.0], [4.0, 6.0]], dtype=np.float32)  # normalised 0, .25, .5, 1
    image = depth_png16(depth)
    assert image.mode == "I;16" and image.size == (2, 1 + 1)
    assert np.asarray(image).tolist() == [[0, 16384], [32768, 65535]]  # round(x * 65535)
    from zoo.media import png_bytes, read_png_metadata

    back = Image.open(io.BytesIO(png_bytes(image)))
    assert back.size == (2, 2) and np.asarray(back).astype(int).tolist() == [[0, 16384], [32768, 65535]]
    meta = read_png_metadata(back)
    assert meta["depth_min"] == 2.0 and meta["depth_max"] == 6.0
    decoded = meta["depth_min"] + np.asarray(back) / 65535 * (meta["depth_max"] - meta["depth_min"])
    assert np.allclose(decoded, depth, atol=4 / 65535)


# ------------------------------------------------------------------ the tiny model, through the zoo


def test_the_tiny_builds_are_byte_identical(tmp_path: Path) -> None:
    import hashlib

    from zoo import tiny

    def digests(folder: Path) -> dict[str, str]:
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir() if f.is_file()}

    first, second = tiny.build("depth-estimation", tmp_path / "a"), tiny.build("depth-estimation", tmp_path / "b")
    assert digests(first) == digests(second) and "model.safetensors" in digests(first)
    assert "preprocessor_config.json" in digests(first)




def test_declaration_examples_and_output_types() -> None:
    from zoo.testing import check_plugin

    results = check_plugin(DepthEstimation)  # the generated picture (320x240)
    assert results and results[0]["depth"].size == (320, 240)
    assert DepthEstimation.group == "vision" and DepthEstimation.order == 65
    assert set(DepthEstimation.options[0].choices) == set(COLORMAPS)


def test_the_tiny_model_maps_depth_at_the_input_size_and_the_file_holds_what_the_map_shows(zoo: Zoo) -> None:
    # An odd size the model's processor does not keep (it works at multiples of 14): the map comes back at 67x45.
    out = zoo.run(TASK, image=_image(67, 45), colormap="gray", raw_format=NPY)
    details = out["details"]
    assert out["depth"].size == (67, 45) and out["depth"].mode == "RGB"
    assert details["image_size"] == [67, 45] and details["model_output_size"][0] % 14 == 0
    assert "Tiny random-weight model" in details["note"] and details["model"] == "tiny:depth-estimation"
    raw = np.load(out["raw_depth"])
    assert raw.shape == (45, 67) and raw.dtype == np.float32
    assert float(raw.min()) == pytest.approx(details["min"], rel=1e-5, abs=1e-12)
    assert float(raw.max()) == pytest.approx(details["max"], rel=1e-5, abs=1e-12) and details["max"] > details["min"]
    assert np.array_equal(np.asarray(out["depth"]), np.asarray(colorize(raw, "gray")))  # the map is the numbers
    # The same picture with another map and the 16-bit PNG: the same depth, other colours.
    again = zoo.run(TASK, image=_image(67, 45), colormap="turbo", raw_format=PNG16)
    assert again["details"]["min"] == details["min"] and again["details"]["max"] == details["max"]
    assert np.array_equal(np.asarray(again["depth"]), np.asarray(colorize(raw, "turbo")))
    png = Image.open(again["raw_depth"])
    assert png.size == (67, 45) and png.getextrema() == (0, 65535)
    assert np.array_equal(np.asarray(png).astype(np.int64), np.rint(normalise(raw) * 65535).astype(np.int64))
    assert set(map(tuple, np.asarray(again["depth"]).reshape(-1, 3))) <= set(map(tuple, colormap_table("turbo")))


def test_the_same_picture_gives_the_same_depth_every_time(zoo: Zoo) -> None:
    first = zoo.run(TASK, image=_image(40, 30), raw_format=NPY)
    second = zoo.run(TASK, image=_image(40, 30), raw_format=NPY)
    assert np.array_equal(np.load(first["raw_depth"]), np.load(second["raw_depth"]))
    assert first["raw_depth"] != second["raw_depth"]  # each request its own file


def test_bad_pictures_and_options_are_refused_before_the_model_runs(zoo: Zoo, tmp_path: Path) -> None:
    plugin = zoo.registry.get(TASK)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    with pytest.raises(InvalidInput, match="cannot be read as an image") as err:
        zoo.check(plugin, {"image": str(corrupt)})
    assert "broken.png" in str(err.value) and str(tmp_path) not in str(err.value) and err.value.fix
    huge = huge_png(tmp_path / "huge.png", 3000, 2000)
    with pytest.raises(InvalidInput, match="larger than 1024 pixels on a side.*3000x2000") as err:
        zoo.check(plugin, {"image": str(huge)})
    assert "ZOO_MAX_IMAGE_SIDE" in str(err.value)
    with pytest.raises(InvalidInput, match="`colormap` must be one of inferno, viridis, magma, turbo, gray"):
        zoo.check(plugin, {"image": _image(), "colormap": "jet"})
    with pytest.raises(InvalidInput, match="must be an image"):
        zoo.check(plugin, {"image": None})


def test_serve_endpoint_answers_with_the_map_and_the_raw_file(zoo: Zoo) -> None:
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    body = io.BytesIO()
    _image(50, 20).save(body, format="PNG")
    with TestClient(create_app(zoo)) as client:
        reply = client.post(f"/{TASK}", content=body.getvalue(), headers={"content-type": "image/png"})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert (answer["width"], answer["height"], answer["raw_format"]) == (50, 20, PNG16)
        shown = Image.open(io.BytesIO(base64.b64decode(answer["depth"])))
        raw = Image.open(io.BytesIO(base64.b64decode(answer["raw_depth"])))
        assert shown.size == raw.size == (50, 20) and shown.mode == "RGB" and raw.getextrema() == (0, 65535)
        picture = base64.b64encode(body.getvalue()).decode()
        npy = client.post(f"/{TASK}", json={"inputs": picture, "parameters": {"raw_format": NPY, "colormap": "gray"}})
        assert npy.status_code == 200, npy.text
        values = np.load(io.BytesIO(base64.b64decode(npy.json()["raw_depth"])))
        assert values.shape == (20, 50) and float(values.max()) == pytest.approx(npy.json()["max"], rel=1e-5)


def test_the_cli_runs_the_tab_and_writes_the_map(tmp_path: Path, model_cache_dir: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    picture = tmp_path / "in.png"
    _image(33, 21).save(picture)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(root), ZOO_CACHE_DIR=str(model_cache_dir))
    done = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--image", str(picture), "--colormap",
                           "viridis", "--out", str(tmp_path / "out")], cwd=root, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert Image.open(printed["depth"]).size == (33, 21) and Path(printed["raw_depth"]).is_file()
    assert printed["details"]["colormap"] == "viridis" and printed["details"]["image_size"] == [33, 21]
