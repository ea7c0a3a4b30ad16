"""Image to image: the ImageMask field (picture + painted mask), img2img and inpainting on the tiny pipeline,
the text-to-image pipeline shared (one load, one worker), strength x steps, bad inputs, endpoint and CLI."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import InvalidInput
from zoo.media import png_bytes, read_png_metadata
from zoo.plugin import ImageMask, Limits, MaskedImage, RunContext
from zoo.runner import Zoo
from zoo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TASK = "image-to-image"
TINY = "tiny:text-to-image"
FIELD = ImageMask("image")


def pixels(image):
    import numpy as np

    return np.asarray(image)


def picture(width: int = 64, height: int = 64):
    """A drawn RGB picture: a gradient with a dark square, so any change shows."""
    import numpy as np
    from PIL import Image

    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    array = np.stack([x, y, 255 - x], axis=-1)
    array[height // 4: height // 2, width // 4: width // 2] = (20, 20, 20)
    return Image.fromarray(array, "RGB")


def layer(size: tuple[int, int], box: tuple[int, int, int, int], alpha: int = 255):
    """An editor layer: transparent, with the box (x0, y0, x1, y1, inclusive) painted magenta."""
    from PIL import Image, ImageDraw

    painted = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(painted).rectangle(box, fill=(255, 0, 255, alpha))
    return painted


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]):
    """The expected 0/255 mask of a box, as a numpy array."""
    import numpy as np

    expected = np.zeros((size[1], size[0]), dtype=np.uint8)
    x0, y0, x1, y1 = box
    expected[y0:y1 + 1, x0:x1 + 1] = 255
    return expected


def save(image, path: Path) -> str:
    image.save(path, format="PNG")
    return str(path)


def edit(zoo: Zoo, ctx: RunContext | None = None, **values):
    values = {"prompt": "a red fox in the snow", "strength": 0.5, "steps": 2, "seed": 1, **values}
    return zoo.run(TASK, ctx=ctx, **values)


# --------------------------------------------------------------------------- declaration


def test_declaration_shares_the_text_to_image_models_and_kind(tiny_zoo: Zoo) -> None:
    from plugins.kinds import TEXT_TO_IMAGE
    from plugins.text_to_image import TextToImage

    plugin = tiny_zoo.registry.get(TASK)
    assert plugin.endpoint() == "image_to_image" and plugin.order == 31 and plugin.group == "vision"
    assert [f.name for f in plugin.fields()] == ["image", "prompt", "negative_prompt", "strength", "steps",
                                                 "guidance_scale", "side", "seed"]
    assert isinstance(plugin.inputs[0], ImageMask)
    assert [f.name for f in plugin.outputs] == ["image", "mask", "seed", "metadata"]
    assert plugin.model_kind is TEXT_TO_IMAGE is TextToImage.model_kind
    assert plugin.models == TextToImage.models and plugin.models.online == "stabilityai/sd-turbo"
    assert tiny_zoo.default_model(plugin) == TINY
    assert "tiny random-weight" in plugin.description


def test_check_plugin_runs_both_examples(settings) -> None:
    from plugins.image_to_image import SAMPLE_MASK_BOX, ImageToImage
    from zoo.testing import check_plugin, zoo_for

    zoo = zoo_for(ImageToImage, settings=settings)
    img2img, inpaint = check_plugin(ImageToImage, zoo=zoo)
    # The sample picture is 320x240; the tiny pipeline's native side is 64, and the shorter side may not be under 64.
    assert img2img["image"].size == (88, 64) and img2img["mask"] is None
    assert img2img["metadata"]["mode"] == "img2img" and img2img["metadata"]["input_size"] == [320, 240]
    assert inpaint["metadata"]["mode"] == "inpaint" and inpaint["mask"].size == (88, 64)
    # The painted box (house and roof, 133x137 of 320x240) scaled to 88x64: about 133*137*(88/320)**2 pixels.
    x0, y0, x1, y1 = SAMPLE_MASK_BOX
    share = (x1 - x0 + 1) * (y1 - y0 + 1) / (320 * 240)
    assert inpaint["metadata"]["masked_pixels"] == pytest.approx(share * 88 * 64, rel=0.1)


def test_plugin_module_imports_no_heavy_library() -> None:
    code = ("import sys, plugins.image_to_image; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'PIL', 'numpy', 'gradio') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gpu_seconds_grow_with_denoising_steps_and_side(tiny_zoo: Zoo) -> None:
    plugin = tiny_zoo.registry.get(TASK)
    base = dict(side=512, steps=2, strength=0.5)
    small = plugin.gpu_seconds(base)
    assert small == 15 + 0.25  # one denoising step at 512x512
    for bigger in ({"steps": 8}, {"strength": 1.0}, {"side": 1024}):
        assert plugin.gpu_seconds({**base, **bigger}) > small


# --------------------------------------------------------------------------- the ImageMask field (synthetic)


def test_a_painted_layer_becomes_exactly_its_pixels(tmp_path: Path) -> None:
    box = (10, 5, 29, 14)
    value = FIELD.check({"background": save(picture(48, 32), tmp_path / "bg.png"),
                         "layers": [save(layer((48, 32), box), tmp_path / "layer.png")], "composite": None}, Limits())
    assert isinstance(value, MaskedImage) and value.image.mode == "RGB" and value.image.size == (48, 32)
    assert (pixels(value.image) == pixels(picture(48, 32))).all()
    assert value.mask.mode == "L" and value.mask.size == (48, 32)
    assert (pixels(value.mask) == box_mask((48, 32), box)).all()  # exactly the painted pixels: 20x10 = 200
    assert int((pixels(value.mask) == 255).sum()) == 200
    # A half-transparent brush stroke is painted all the same.
    faint = FIELD.check({"background": picture(48, 32), "layers": [layer((48, 32), box, alpha=60)]}, Limits())
    assert (pixels(faint.mask) == box_mask((48, 32), box)).all()


def test_nothing_painted_means_no_mask(tmp_path: Path) -> None:
    from PIL import Image

    empty = Image.new("RGBA", (48, 32), (0, 0, 0, 0))
    for value in (save(picture(48, 32), tmp_path / "p.png"), picture(48, 32),
                  {"background": picture(48, 32), "layers": [empty], "composite": picture(48, 32)},
                  {"background": picture(48, 32), "layers": []}, {"image": picture(48, 32), "mask": None}):
        checked = FIELD.check(value, Limits())
        assert checked.mask is None and checked.image.size == (48, 32)


def test_layers_are_merged_and_a_plain_mask_counts_its_white_pixels() -> None:
    from PIL import Image, ImageDraw

    a, b = (0, 0, 9, 9), (20, 10, 29, 19)
    merged = FIELD.check({"background": picture(48, 32), "layers": [layer((48, 32), a), layer((48, 32), b)]},
                         Limits())
    assert (pixels(merged.mask) == (box_mask((48, 32), a) | box_mask((48, 32), b))).all()
    # diffusers' convention for a mask without transparency: white = repaint, black = keep.
    plain = Image.new("L", (48, 32), 0)
    ImageDraw.Draw(plain).rectangle(b, fill=255)
    checked = FIELD.check({"image": picture(48, 32), "mask": plain.convert("RGB")}, Limits())
    assert (pixels(checked.mask) == box_mask((48, 32), b)).all()
    # A MaskedImage passes through (a plugin calling another with ctx.run).
    again = FIELD.check(checked, Limits())
    assert (pixels(again.mask) == pixels(checked.mask)).all()


def test_editor_blobs_json_and_odd_canvases(tmp_path: Path) -> None:
    from PIL import Image

    box = (4, 4, 11, 7)
    blobs = {"background": png_bytes(picture(16, 12)), "layers": [png_bytes(layer((16, 12), box))],
             "composite": None}
    from_bytes = FIELD.check(blobs, Limits())  # what the editor's uploads give (zoo.ui.editor_value)
    assert (pixels(from_bytes.mask) == box_mask((16, 12), box)).all()
    # The CLI sends a JSON string.
    as_json = json.dumps({"image": save(picture(16, 12), tmp_path / "p.png"),
                          "mask": save(layer((16, 12), box), tmp_path / "m.png")})
    assert (pixels(FIELD.check(as_json, Limits()).mask) == box_mask((16, 12), box)).all()
    # A canvas twice the picture's size: the mask follows the picture (nearest, still 0/255).
    big = FIELD.check({"background": picture(16, 12), "layers": [layer((32, 24), (8, 8, 23, 15))]}, Limits())
    assert big.mask.size == (16, 12) and (pixels(big.mask) == box_mask((16, 12), box)).all()
    # A transparent picture is laid on white, not on the arbitrary colour under its transparent pixels.
    clear = Image.new("RGBA", (8, 8), (10, 200, 30, 0))
    assert (pixels(FIELD.check(clear, Limits()).image) == 255).all()


def test_editor_value_reads_the_uploaded_blobs_once() -> None:
    from gradio.components.image_editor import EditorDataBlobs

    from zoo.ui import editor_value

    class Editor:
        blob_storage = {"abc": EditorDataBlobs(background=b"bg", layers=[b"l0", None, b"l2"], composite=b"c")}

    editor = Editor()
    assert editor_value(editor, {"id": "abc", "background": None, "layers": []}) == {
        "background": b"bg", "layers": [b"l0", b"l2"], "composite": b"c"}
    assert "abc" not in editor.blob_storage  # read once, as gradio's own preprocess does
    files = {"background": {"path": "/x/bg.png"}, "layers": [], "composite": None, "id": None}
    assert editor_value(editor, files) is files  # an example's or gradio_client's files: as sent


def test_the_tab_shows_an_image_editor_and_the_api_snippet_sends_its_value() -> None:
    import gradio as gr

    from plugins.image_to_image import ImageToImage
    from zoo.ui import api_snippet, component

    editor = component(FIELD, Limits(), render=False)
    assert isinstance(editor, gr.ImageEditor) and editor.image_mode == "RGBA" and editor.layers.disabled
    with pytest.raises(TypeError, match="input field"):
        component(FIELD, Limits(), output=True, render=False)
    plugin = ImageToImage()
    snippet = api_snippet(plugin, dict(plugin.examples[1]))
    assert "from gradio_client import Client, handle_file" in snippet
    assert ('image={"background": handle_file(\'picture.png\'), "layers": [handle_file(\'picture-mask-layer.png\')], '
            '"composite": None}') in snippet
    assert "/tmp" not in snippet  # no server path


def test_bad_pictures_are_refused_with_the_fix(tmp_path: Path) -> None:
    from PIL import Image

    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(InvalidInput) as err:
        FIELD.check(str(corrupt), Limits())
    assert "`image`" in str(err.value) and "cannot be read as an image" in str(err.value)
    assert "broken.png" in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(InvalidInput, match="cannot be read as an image"):
        FIELD.check({"background": png_bytes(picture(8, 8)), "layers": [b"garbage"]}, Limits())
    big = save(Image.new("RGB", (300, 20)), tmp_path / "wide.png")
    with pytest.raises(InvalidInput) as err:
        FIELD.check(big, Limits(max_image_side=256))
    assert "`image` is larger than 256 pixels on a side (ZOO_MAX_IMAGE_SIDE), but got '300x20'" in str(err.value)
    assert "resize it to at most 256x256" in str(err.value)
    with pytest.raises(InvalidInput, match="larger than 256"):  # the mask layer is checked too
        FIELD.check({"background": picture(64, 64), "layers": [save(Image.new("RGBA", (300, 20)), tmp_path / "l.png")]},
                    Limits(max_image_side=256))
    with pytest.raises(InvalidInput, match="must be a picture"):
        FIELD.check({"background": None, "layers": [], "composite": None}, Limits())
    with pytest.raises(InvalidInput, match="must be a picture"):
        FIELD.check(None, Limits())
    with pytest.raises(InvalidInput, match="keys this field does not know"):
        FIELD.check({"picture": "x.png"}, Limits())
    with pytest.raises(InvalidInput, match="not valid JSON"):
        FIELD.check('{"image": ', Limits())


# --------------------------------------------------------------------------- the tiny pipeline


def test_inpainting_changes_only_the_masked_pixels(tiny_zoo: Zoo) -> None:
    import numpy as np

    source = picture(64, 64)
    box = (16, 8, 47, 39)
    result = edit(tiny_zoo, image={"background": source, "layers": [layer((64, 64), box)]}, strength=1.0, seed=3)
    image, mask = result["image"], result["mask"]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert (pixels(mask) == box_mask((64, 64), box)).all()
    inside = box_mask((64, 64), box) == 255
    got, was = pixels(image).astype(int), pixels(source).astype(int)
    assert (got[~inside] == was[~inside]).all()  # every pixel outside the mask is the picture's own
    assert np.abs(got[inside] - was[inside]).mean() > 5  # the masked ones were repainted
    meta = result["metadata"]
    assert meta["mode"] == "inpaint" and meta["masked_pixels"] == 32 * 32 == int(inside.sum())
    assert meta["pipeline"] == "StableDiffusionInpaintPipeline" and meta["denoising_steps"] == 2
    assert meta["tiny_random_weights"] is True and "random-weight" in meta["note"]


def test_img2img_size_seed_metadata_and_strength(tiny_zoo: Zoo) -> None:
    source = picture(96, 48)
    first = edit(tiny_zoo, image=source, seed=11)
    assert first["image"].size == (128, 64)  # longer side 64 would make the shorter 32: scaled up to 64, shape kept
    assert first["mask"] is None and first["seed"] == 11
    again = edit(tiny_zoo, image=source, seed=11)
    other = edit(tiny_zoo, image=source, seed=12)
    assert (pixels(first["image"]) == pixels(again["image"])).all()
    assert (pixels(first["image"]) != pixels(other["image"])).any()
    stronger = edit(tiny_zoo, image=source, seed=11, strength=1.0)
    assert (pixels(stronger["image"]) != pixels(first["image"])).any()
    embedded = read_png_metadata(png_bytes(first["image"]))
    assert embedded == first["metadata"]
    expected = {"mode": "img2img", "prompt": "a red fox in the snow", "seed": 11, "steps": 2, "strength": 0.5,
                "denoising_steps": 1, "width": 128, "height": 64, "input_size": [96, 48], "masked_pixels": None,
                "model": TINY, "pipeline": "StableDiffusionImg2ImgPipeline"}
    assert {k: embedded[k] for k in expected} == expected
    sized = edit(tiny_zoo, image=picture(80, 40), side=160, seed=1)
    assert sized["image"].size == (160, 80)


def test_seed_minus_one_reports_the_seed_that_remakes_the_edit(tiny_zoo: Zoo) -> None:
    result = edit(tiny_zoo, image=picture(), seed=-1)
    seed = result["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32 and result["metadata"]["seed"] == seed
    assert (pixels(edit(tiny_zoo, image=picture(), seed=seed)["image"]) == pixels(result["image"])).all()


def test_progress_counts_the_denoising_steps_and_previews_stream(tiny_zoo: Zoo) -> None:
    calls: list[tuple[float | None, str]] = []
    edit(tiny_zoo, RunContext(on_progress=lambda f, d: calls.append((f, d))), image=picture(), steps=4, strength=0.5)
    steps = [(f, d) for f, d in calls if f is not None]
    assert [f for f, _ in steps] == [0.5, 1.0]  # int(4 x 0.5) = 2 steps
    assert steps[0][1] == "Denoising step 1/2" and steps[-1][1].startswith("Denoising step 2/2")
    results = list(tiny_zoo.stream(TASK, {"image": picture(), "prompt": "a cat", "steps": 3, "strength": 1.0,
                                          "seed": 2}))
    assert len(results) == 4
    for preview in results[:3]:
        assert preview["image"].size == (64, 64) and preview["metadata"] is None and preview["seed"] == 2
    assert read_png_metadata(results[-1]["image"])["seed"] == 2


def test_strength_times_steps_must_reach_one_step(tiny_zoo: Zoo) -> None:
    with pytest.raises(InvalidInput) as err:
        edit(tiny_zoo, image=picture(), steps=1, strength=0.5)
    message = str(err.value)
    assert "with 1 step(s) runs int(1 × 0.5) = 0 denoising steps: steps × strength must be at least 1" in message
    assert "sd-turbo: 2 steps × 0.5 = 1 step" in message
    assert "raise steps to 2, or raise strength to 1 or more" in message
    with pytest.raises(InvalidInput) as err:
        edit(tiny_zoo, image=picture(), steps=3, strength=0.3)
    assert "int(3 × 0.3) = 0" in str(err.value) and "raise steps to 4, or raise strength to 0.34" in str(err.value)
    with pytest.raises(InvalidInput) as err:
        edit(tiny_zoo, image=picture(), strength=0)
    assert "must be more than 0" in str(err.value) and "from 0.5 to 1 with 2 step(s)" in str(err.value)


def test_side_and_size_limits(tiny_zoo: Zoo, settings) -> None:
    with pytest.raises(InvalidInput) as err:
        edit(tiny_zoo, image=picture(), side=500)
    assert "`side` must be a multiple of 8, but got 500" in str(err.value) and "496 or 504" in str(err.value)
    with pytest.raises(InvalidInput, match="at least 64"):
        edit(tiny_zoo, image=picture(), side=32)
    capped = Zoo(settings.replace(tiny=True, max_image_side=128))
    with pytest.raises(InvalidInput, match=r"larger than 128 pixels on a side \(ZOO_MAX_IMAGE_SIDE\), but got '200x100'"):
        edit(capped, image=picture(200, 100))
    with pytest.raises(InvalidInput, match="ZOO_MAX_IMAGE_WORK"):  # 1024x512 at 1 step: 4 512x512 image-steps...
        edit(Zoo(settings.replace(tiny=True, max_image_work=1)), image=picture(), side=1024)


# --------------------------------------------------------------------------- one pipeline for both tabs


def test_text_to_image_then_image_to_image_load_the_weights_once_inline(tiny_inline_zoo: Zoo) -> None:
    from plugins.image_to_image import derived_pipeline

    zoo = tiny_inline_zoo
    zoo.run("text-to-image", prompt="a fox", width=64, height=64, steps=1, seed=1)
    edit(zoo, image=picture())
    edit(zoo, image={"background": picture(), "layers": [layer((64, 64), (0, 0, 31, 31))]})
    assert len(zoo.models.cache.keys()) == 1  # one loaded model serves both tabs
    base = zoo.models.load(TINY, "text-to-image").model
    img2img, inpaint = derived_pipeline(base, "img2img", TINY), derived_pipeline(base, "inpaint", TINY)
    assert derived_pipeline(base, "img2img", TINY) is img2img  # derived once, kept beside the loaded pipeline
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(img2img, name) is getattr(base, name) is getattr(inpaint, name)  # the very same modules


def test_both_tabs_run_in_one_worker_process(settings: Settings) -> None:
    # Worker sharing is what this checks, so its zoo uses worker processes whatever ZOO_ISOLATION says.
    tiny_zoo = Zoo(settings.replace(tiny=True, isolation="process"))
    assert tiny_zoo.isolation == "process"
    tiny_zoo.run("text-to-image", prompt="a fox", width=64, height=64, steps=1, seed=1)
    edit(tiny_zoo, image=picture())
    handles = tiny_zoo.models.workers.handles()
    assert len(handles) == 1 and len(tiny_zoo.models.cache.keys()) == 1
    pid = handles[0].pid
    edit(tiny_zoo, image={"background": picture(), "layers": [layer((64, 64), (0, 0, 31, 31))]}, strength=1.0)
    assert [h.pid for h in tiny_zoo.models.workers.handles()] == [pid]


def test_concurrent_text_and_image_requests_on_the_shared_pipeline_match_sequential_ones(settings) -> None:
    # Both tabs' requests run at once on one pipeline: each needs its own scheduler, and the tokenizers the
    # derived pipelines share with it are lent per loaded pipeline (a shared fast tokenizer can change an image).
    import threading

    zoo = Zoo(settings.replace(tiny=True, max_concurrency_per_model=3, isolation="inline"))
    painted = {"background": picture(), "layers": [layer((64, 64), (8, 8, 40, 40))]}
    jobs = [lambda: zoo.run("text-to-image", prompt="a fox", width=64, height=64, steps=3, seed=1)["image"],
            lambda: edit(zoo, image=picture(), steps=4, strength=0.75, seed=2)["image"],
            lambda: edit(zoo, image=painted, steps=3, strength=1.0, seed=3, prompt="a boat")["image"]]
    expected = [pixels(job()) for job in jobs]
    for _ in range(3):
        got: dict[int, object] = {}
        errors: list[BaseException] = []

        def run(i: int) -> None:
            try:
                got[i] = pixels(jobs[i]())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert all((got[i] == expected[i]).all() for i in range(len(jobs)))
    shared = zoo.models.load(TINY, "text-to-image").model
    assert len(shared.scheduler.timesteps) == 1000  # the shared scheduler was never set for a request


# --------------------------------------------------------------------------- endpoint and CLI


def test_serve_endpoint_format_round_trip(tiny_zoo: Zoo) -> None:
    from PIL import Image

    plugin = tiny_zoo.registry.get(TASK)
    box = (8, 8, 39, 23)
    mask = base64.b64encode(png_bytes(layer((64, 64), box))).decode()
    values = plugin.from_endpoint(base64.b64encode(png_bytes(picture())).decode(),
                                  {"prompt": "a boat", "strength": 1.0, "num_inference_steps": 2, "seed": 5,
                                   "target_size": {"width": 64, "height": 32}, "mask": mask})
    assert values["side"] == 64 and values["steps"] == 2 and values["seed"] == 5
    answer = plugin.to_endpoint(tiny_zoo.run(TASK, **values))
    with Image.open(io.BytesIO(answer)) as image:
        assert image.size == (64, 64)
        meta = read_png_metadata(image)
    assert meta["mode"] == "inpaint" and meta["masked_pixels"] == 32 * 16 and meta["seed"] == 5
    raw = plugin.from_endpoint(png_bytes(picture()), {"prompt": "a boat"})  # the picture as the body
    assert isinstance(raw["image"]["image"], bytes) and raw["image"]["mask"] is None
    with pytest.raises(InvalidInput, match="base64"):
        plugin.from_endpoint("not base64!", {"prompt": "a boat"})


def test_cli_runs_img2img_and_inpainting(tmp_path: Path, model_cache_dir: Path) -> None:
    from PIL import Image

    source = save(picture(), tmp_path / "in.png")
    mask = save(layer((64, 64), (0, 0, 31, 63)), tmp_path / "mask.png")
    env = {**os.environ, "ZOO_TINY": "1", "ZOO_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "ZOO_CACHE_DIR": str(model_cache_dir), "ZOO_ISOLATION": "inline"}
    for image_arg, mode in ((source, "img2img"), (json.dumps({"image": source, "mask": mask}), "inpaint")):
        out = subprocess.run([sys.executable, "-m", "zoo", "run", TASK, "--image", image_arg, "--prompt", "a boat",
                              "--seed", "4", "--out", str(tmp_path / mode)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        printed = json.loads(out.stdout)
        assert printed["metadata"]["mode"] == mode and printed["seed"] == 4
        with Image.open(printed["image"]) as image:
            assert image.size == (64, 64) and read_png_metadata(image)["mode"] == mode


# --------------------------------------------------------------------------- app tier


@pytest.mark.app
def test_api_edits_and_inpaints_with_the_editors_value(app_server, tmp_path: Path) -> None:
    """The session's tiny `python app.py`: gradio_client sends the editor's {background, layers, composite}."""
    from gradio_client import Client, handle_file
    from PIL import Image

    client = Client(app_server.url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/image_to_image"]
    assert [p["parameter_name"] for p in api["parameters"]] == [
        "image", "prompt", "negative_prompt", "strength", "steps", "guidance_scale", "side", "seed", "model"]
    source = save(picture(), tmp_path / "in.png")
    box = (0, 0, 31, 63)
    mask_file = save(layer((64, 64), box), tmp_path / "layer.png")
    common = dict(prompt="a boat", negative_prompt="", strength=1.0, steps=2, guidance_scale=0.0, side=0, seed=9,
                  model=TINY, api_name="/image_to_image")
    edited, mask, seed, meta = client.predict(
        image={"background": handle_file(source), "layers": [], "composite": None}, **common)
    assert mask is None and int(seed) == 9 and meta["mode"] == "img2img"
    painted, mask, _, meta = client.predict(
        image={"background": handle_file(source), "layers": [handle_file(mask_file)], "composite": None}, **common)
    assert meta["mode"] == "inpaint" and meta["masked_pixels"] == 32 * 64
    with Image.open(painted) as image, Image.open(mask) as used:
        assert image.size == used.size == (64, 64) and read_png_metadata(image)["seed"] == 9
        got, was = pixels(image.convert("RGB")).astype(int), pixels(picture()).astype(int)
        inside = box_mask((64, 64), box) == 255
        assert (pixels(used.convert("L")) == box_mask((64, 64), box)).all()
        assert (got[~inside] == was[~inside]).all()
