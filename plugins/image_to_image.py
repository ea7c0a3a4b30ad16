"""Image to image: a picture and a prompt in, the picture edited; paint a mask to repaint only that part.

Nothing drawn: the whole picture is edited (img2img), `strength` saying how far from it the
result may go. Something painted over it: only the painted part is repainted (inpainting),
and every pixel outside the mask is the picture's own, exactly.

The tab runs on the text-to-image tab's weights: the same model kind (`text-to-image`) and the
same models, so the loader keeps one pipeline for both tabs (one cache entry, one worker
process). The img2img and inpainting pipelines are derived from it with diffusers'
`AutoPipelineFor*.from_pipe`, which builds the new pipeline around the same module objects
(UNet, VAE, text encoder: nothing is copied or loaded again), and are kept beside the loaded
pipeline for the next request. Seeds, PNG metadata, per-step progress with a latent preview,
Stop, and the tiny random-weight pipeline offline work as on the text-to-image tab (its helpers).

A diffusers img2img pipeline runs int(steps × strength) denoising steps, so that product must
reach 1 (sd-turbo: 2 steps at strength 0.5 run 1 step).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator

from plugins import text_to_image as t2i
from plugins.kinds import TEXT_TO_IMAGE
from zoo import __version__
from zoo.errors import InvalidInput
from zoo.plugin import (Float, Image, ImageMask, Int, Json, Limits, MaskedImage, Number, Plugin, RunContext, Seed,
                        Text)

#: What the image and its metadata say when the random-weight tiny pipeline made it.
TINY_NOTE = ("Made by the tiny random-weight pipeline (no real image-generation weights are available offline): "
             "the edit is noise, not the prompt. Pick a real model such as stabilityai/sd-turbo.")
IMG2IMG, INPAINT = "img2img", "inpaint"

# ---------------------------------------------------------------------------------------- examples

#: Where the inpainting example paints: over the sample picture's house and roof (zoo.ui.sample_image).
SAMPLE_MASK_BOX = (80, 64, 212, 200)
SAMPLE_BRUSH = (255, 0, 255, 255)


def sample_mask(picture: str) -> tuple[str, str]:
    """The inpainting example's editor layer (the house painted over, the rest transparent) and the composite
    the editor shows, as PNG paths beside the sample picture; made once (the repo holds no images)."""
    folder = Path(picture).parent
    layer_path, composite_path = folder / "picture-mask-layer.png", folder / "picture-mask-composite.png"
    if not (layer_path.is_file() and composite_path.is_file()):
        from PIL import Image as PILImage
        from PIL import ImageDraw

        with PILImage.open(picture) as opened:
            base = opened.convert("RGBA")
        layer = PILImage.new("RGBA", base.size, (0, 0, 0, 0))
        ImageDraw.Draw(layer).rectangle(SAMPLE_MASK_BOX, fill=SAMPLE_BRUSH)
        composite = PILImage.alpha_composite(base, layer)
        for path, made in ((layer_path, layer), (composite_path, composite)):
            # Several app processes may share the sample folder: write aside, then rename into place.
            staging = path.with_name(f".{path.stem}-{os.getpid()}.png")
            made.save(staging, format="PNG")
            os.replace(staging, path)
    return str(layer_path), str(composite_path)


class SampleExamples:
    """The tab's examples, their picture (and painted mask) drawn on first use into the sample folder."""

    def __get__(self, obj: Any, owner: type) -> tuple[dict[str, Any], ...]:
        from zoo.ui import sample_image

        picture = sample_image()
        layer, composite = sample_mask(picture)
        return (
            {"image": {"background": picture, "layers": [], "composite": picture},
             "prompt": "A watercolor painting of a red house on a green hill under a blue sky, the sun shining",
             "strength": 0.5, "steps": 2, "seed": 42},
            {"image": {"background": picture, "layers": [layer], "composite": composite},
             "prompt": "A small stone cottage with a thatched roof on a green hill", "strength": 1.0, "steps": 2,
             "seed": 7},
        )


# ---------------------------------------------------------------------------------------- the plugin


class ImageToImage(Plugin):
    """Edit a picture from a prompt (img2img), or repaint only a painted mask (inpainting)."""

    api_version = 2
    task = "image-to-image"
    title = "Image to image"
    group = "vision"
    description = (
        "Upload a picture and describe the picture you want: a diffusion model edits it, `strength` saying how "
        "far it may go from the original. Paint over a part with the brush to repaint only that part "
        "(inpainting): everything outside the painted mask stays exactly as it was. Same seed and settings, same "
        "picture; every PNG carries its prompt, seed and settings. It runs on the text-to-image tab's model, "
        "loaded once for both. Offline, unless sd-turbo is in the Hugging Face cache, it runs a **tiny "
        "random-weight pipeline whose edits are noise**: it shows the plumbing, not a picture."
    )
    order = 31
    model_kind = TEXT_TO_IMAGE
    models = t2i.TextToImage.models  # the same weights as the text-to-image tab: one pipeline in memory
    inputs = (
        ImageMask("image", label="Picture (paint over what to repaint, or leave it to edit the whole picture)"),
        Text("prompt", lines=3, placeholder="A watercolor painting of a red house on a hill"),
        Text("negative_prompt", lines=1, required=False, placeholder="blurry, low quality",
             info="What to keep out of the picture; used only when guidance scale > 1"),
    )
    options = (
        Float("strength", 0.5, 0.0, 1.0, step=0.05,
              info="How much to change: near 0 keeps the picture, 1 repaints it (or the mask) entirely. The model "
                   "runs int(steps × strength) steps, which must be at least 1"),
        Int("steps", 2, 1, 150, limit="max_steps",
            info="Denoising steps before strength: 2-4 for turbo models (2 × 0.5 = 1 step), 20-50 for others"),
        Float("guidance_scale", 0.0, 0.0, 20.0, step=0.5,
              info="How strictly to follow the prompt: 0 for turbo models, 5-8 for others"),
        Int("side", 0, 0, 2048, step=8, limit="max_image_side", label="Longer side",
            info="Pixels of the result's longer side, a multiple of 8, keeping the picture's shape (more where the "
                 "shorter side would be under 64); 0 = the model's native size (512 for sd-turbo, 64 for the tiny "
                 "pipeline)"),
        Seed(),
    )
    outputs = (
        Image("image", label="Edited picture"),
        Image("mask", label="Mask used (white = repainted)"),
        Number("seed", 0, integer=True, label="Seed used"),
        Json("metadata", label="Metadata (also inside the PNG)"),
    )
    examples = SampleExamples()  # type: ignore[assignment]
    translations = {
        "zh-CN": {
            "Image to image": "图生图",
            ("Upload a picture and describe the picture you want: a diffusion model edits it, `strength` saying how "
             "far it may go from the original. Paint over a part with the brush to repaint only that part "
             "(inpainting): everything outside the painted mask stays exactly as it was. Same seed and settings, "
             "same picture; every PNG carries its prompt, seed and settings. It runs on the text-to-image tab's "
             "model, loaded once for both. Offline, unless sd-turbo is in the Hugging Face cache, it runs a **tiny "
             "random-weight pipeline whose edits are noise**: it shows the plumbing, not a picture."):
                ("上传一张图片并描述你想要的画面：扩散模型对其进行编辑，`strength` 决定它可以偏离原图多远。"
                 "用画笔涂抹某一部分，就只重绘该部分（局部重绘）：涂抹蒙版以外的一切都保持原样。"
                 "相同的种子和设置得到相同的图片；每个 PNG 都保存其提示词、种子和设置。它使用文生图标签页的模型，"
                 "两者只加载一次。离线时，除非 Hugging Face 缓存中有 sd-turbo，否则它运行一个**微型随机权重管线，"
                 "编辑结果只是噪声**：它展示的是流程，而不是图片。"),
            "Picture (paint over what to repaint, or leave it to edit the whole picture)":
                "图片（涂抹要重绘的部分，或不涂抹以编辑整张图片）",
            "Prompt": "提示词",
            "A watercolor painting of a red house on a hill": "例如：A watercolor painting of a red house on a hill",
            "Negative prompt": "反向提示词",
            "What to keep out of the picture; used only when guidance scale > 1":
                "不希望出现在画面中的内容；仅在引导系数 > 1 时使用",
            "blurry, low quality": "例如：blurry, low quality",
            "Strength": "重绘强度",
            ("How much to change: near 0 keeps the picture, 1 repaints it (or the mask) entirely. The model runs "
             "int(steps × strength) steps, which must be at least 1"):
                ("改变的程度：接近 0 保留原图，1 完全重绘整张图（或蒙版区域）。模型运行 int(steps × strength) 步，"
                 "至少须为 1 步"),
            "Steps": "步数",
            "Denoising steps before strength: 2-4 for turbo models (2 × 0.5 = 1 step), 20-50 for others":
                "应用强度前的去噪步数：turbo 模型用 2-4（2 × 0.5 = 1 步），其他模型用 20-50",
            "Guidance scale": "引导系数",
            "How strictly to follow the prompt: 0 for turbo models, 5-8 for others":
                "遵循提示词的严格程度：turbo 模型用 0，其他模型用 5-8",
            "Longer side": "长边",
            ("Pixels of the result's longer side, a multiple of 8, keeping the picture's shape (more where the "
             "shorter side would be under 64); 0 = the model's native size (512 for sd-turbo, 64 for the tiny "
             "pipeline)"):
                ("结果长边的像素数，须为 8 的倍数，保持图片的宽高比（若短边会小于 64 则取更大值）；"
                 "0 = 模型的原生尺寸（sd-turbo 为 512，微型管线为 64）"),
            "Edited picture": "编辑后的图片",
            "Mask used (white = repainted)": "使用的蒙版（白色 = 已重绘）",
            "Seed used": "实际使用的种子",
            "Metadata (also inside the PNG)": "元数据（也保存在 PNG 中）",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """steps × strength must give a denoising step; the side is a multiple of 8, as on text to image."""
        side = next(f for f in self.options if f.name == "side")
        t2i.check_side("side", values["side"], side.bounds(limits)[1])
        steps, strength = values["steps"], values["strength"]
        if denoising_steps(steps, strength) < 1:
            if strength <= 0:
                raise InvalidInput("strength", strength, "must be more than 0: at 0 the model runs no step",
                                   f"use a strength from {min_strength(steps):g} to 1 with {steps} step(s)")
            need = min_steps(strength)
            more = f"raise steps to {need}, or " if need <= limits.max_steps else ""
            raise InvalidInput("strength", strength, f"with {steps} step(s) runs int({steps} × {strength:g}) = 0 "
                               "denoising steps: steps × strength must be at least 1 (sd-turbo: 2 steps × 0.5 = "
                               "1 step)", f"{more}raise strength to {min_strength(steps):g} or more")

    def __init__(self) -> None:
        self.tokenizers = t2i.SHARED_TOKENIZERS  # the text-to-image tab's loans: both tabs share the tokenizers

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Yield a latent preview per denoising step, then the edited picture with its metadata."""
        from PIL import Image as PILImage

        base = model.model  # the shared text-to-image pipeline: read only here
        t2i.check_pipeline(base, ctx.model_ref)
        picture: MaskedImage = values["image"]
        side = values["side"] or min(t2i.native_side(base, ctx.model_ref), ctx.limits.max_image_side // 8 * 8)
        width, height = working_size(picture.image.width, picture.image.height, side)
        steps = denoising_steps(values["steps"], values["strength"])
        t2i.check_work(width, height, steps, 1, ctx.limits)
        mode = IMG2IMG if picture.mask is None else INPAINT
        pipe = derived_pipeline(base, mode, ctx.model_ref)
        image = picture.image if picture.image.size == (width, height) else picture.image.resize(
            (width, height), PILImage.Resampling.LANCZOS)
        mask = None if picture.mask is None else picture.mask.resize((width, height), PILImage.Resampling.NEAREST)
        seed = values["seed"]
        images = yield from t2i.denoise(
            ctx, pipe, lambda own, on_step_end: edit(own, values, image, mask, seed, on_step_end), steps,
            (width, height), lambda preview: {"image": preview, "mask": mask, "seed": seed, "metadata": None},
            tokenizers=self.tokenizers, thread_name="zoo-image-to-image", base=base)
        result = images[0]
        if result.size != (width, height):  # a pipeline that rounds sizes its own way
            result = result.resize((width, height), PILImage.Resampling.LANCZOS)
        if mask is not None:  # outside the mask every pixel is the picture's own (the VAE would shift them)
            result = PILImage.composite(result, image, mask)

        from zoo.media import attach_png_metadata

        metadata = {
            "mode": mode,
            "prompt": values["prompt"],
            "negative_prompt": values["negative_prompt"],
            "seed": seed,
            "steps": values["steps"],
            "strength": values["strength"],
            "denoising_steps": steps,
            "guidance_scale": values["guidance_scale"],
            "width": width,
            "height": height,
            "input_size": list(picture.image.size),
            "masked_pixels": None if mask is None else mask_pixels(mask),
            **t2i.made_with(ctx, pipe, TINY_NOTE),
        }
        attach_png_metadata(result, metadata)
        yield {"image": result, "mask": mask, "seed": seed, "metadata": metadata}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """The edit from a remote engine's image-to-image API (the picture as PNG, strength, seed, a mask).

        ZOO_REMOTE_IMAGE_TO_IMAGE: the engine edits. `strength`, `seed` and `mask` (base64 PNG,
        white = repaint) travel as extra parameters, which another zoo's serve-endpoint reads.
        """
        from zoo.media import attach_png_metadata, png_bytes, read_png_metadata

        picture: MaskedImage = values["image"]
        ctx.progress(None, "Editing on the remote engine")
        extra: dict[str, Any] = {"strength": values["strength"], "seed": values["seed"]}
        if values["side"]:
            extra["side"] = values["side"]
        if picture.mask is not None:
            extra["mask"] = base64.b64encode(png_bytes(picture.mask)).decode("ascii")
        image = remote.call("image_to_image", png_bytes(picture.image), prompt=values["prompt"],
                            negative_prompt=values["negative_prompt"] or None, num_inference_steps=values["steps"],
                            guidance_scale=values["guidance_scale"], **extra)
        image.load()
        made = read_png_metadata(image) or {
            "mode": IMG2IMG if picture.mask is None else INPAINT, "prompt": values["prompt"],
            "negative_prompt": values["negative_prompt"], "steps": values["steps"], "strength": values["strength"],
            "guidance_scale": values["guidance_scale"], "width": image.width, "height": image.height}
        made.update(seed=values["seed"], model=ctx.model_ref, endpoint=remote.label, zoo_version=__version__)
        attach_png_metadata(image, made)
        mask = None
        if picture.mask is not None:
            from PIL import Image as PILImage

            mask = picture.mask.resize(image.size, PILImage.Resampling.NEAREST)
        return {"image": image, "mask": mask, "seed": values["seed"], "metadata": made}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The picture (the body's bytes, or base64 in JSON) and {prompt, negative_prompt, num_inference_steps,
        guidance_scale, strength, seed, target_size: {width, height} (its larger side is the longer side),
        side, mask: base64 PNG (white = repaint)}."""
        p = parameters
        picture = _decoded("inputs", inputs)
        mask = _decoded("mask", p["mask"]) if p.get("mask") else None
        values: dict[str, Any] = {"image": {"image": picture, "mask": mask}, "prompt": p.get("prompt") or "",
                                  "negative_prompt": p.get("negative_prompt") or ""}
        for name, key in (("steps", "num_inference_steps"), ("guidance_scale", "guidance_scale"),
                          ("strength", "strength"), ("seed", "seed"), ("side", "side")):
            if p.get(key) is not None:
                values[name] = p[key]
        target = p.get("target_size")
        if isinstance(target, dict) and "side" not in values:
            values["side"] = max(int(target.get("width") or 0), int(target.get("height") or 0))
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """The edited PNG's bytes, its metadata inside."""
        from zoo.media import png_bytes

        return png_bytes(outputs["image"])

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        """GPU time to ask for: grows with the denoising steps (steps × strength) and the side."""
        side = values.get("side") or 1024  # 0 (native) may mean 1024
        steps = max(1, denoising_steps(values.get("steps", 2), values.get("strength", 0.5)))
        return 15 + 0.25 * steps * side * side / 512**2


def _decoded(name: str, data: Any) -> Any:
    """A file sent to serve-endpoint: raw bytes, or base64 text."""
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(name, data[:40], "must be a PNG, JPEG or WebP file, base64-encoded in JSON",
                               "send the file's bytes as the body, or base64-encode it") from None
    if isinstance(data, (bytes, bytearray)) and data:
        return bytes(data)
    raise InvalidInput(name, type(data).__name__, "must be a non-empty image file",
                       "send the picture as the request body, or base64-encode it in JSON")


# ---------------------------------------------------------------------------------------- helpers


def denoising_steps(steps: int, strength: float) -> int:
    """The steps a diffusers img2img or inpainting pipeline runs: int(steps × strength), at most steps."""
    return min(int(steps * strength), steps)


def min_strength(steps: int) -> float:
    """The lowest strength, to 2 decimals, that gives `steps` at least one denoising step."""
    strength = math.ceil(100 / steps) / 100
    while denoising_steps(steps, strength) < 1:  # float rounding
        strength = round(strength + 0.01, 2)
    return min(strength, 1.0)


def min_steps(strength: float) -> int:
    """The fewest steps that give at least one denoising step at `strength` (> 0)."""
    steps = max(1, math.ceil(1 / strength) - 1)
    while denoising_steps(steps, strength) < 1:
        steps += 1
    return steps


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The picture's shape with its longer side `side`, in multiples of 8; where the shorter side would be under
    the smallest a UNet takes (64), the picture is scaled up until it is not, keeping its shape."""
    scale = max(side / max(width, height), t2i.MIN_SIDE / min(width, height))
    return (max(t2i.MIN_SIDE, round(width * scale / 8) * 8), max(t2i.MIN_SIDE, round(height * scale / 8) * 8))


def mask_pixels(mask: Any) -> int:
    """How many pixels a 0/255 mask marks."""
    return mask.histogram()[255]


_DERIVED: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_DERIVED_LOCK = threading.Lock()


def derived_pipeline(pipe: Any, mode: str, ref: str) -> Any:
    """The img2img or inpainting pipeline on `pipe`'s own modules (from_pipe: nothing copied or loaded), made once
    per loaded pipeline and kept as long as it is."""
    with _DERIVED_LOCK:
        made = _DERIVED.setdefault(pipe, {})
        if mode not in made:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForInpainting if mode == INPAINT else AutoPipelineForImage2Image
            try:
                derived = auto.from_pipe(pipe)
            except ValueError as exc:
                what = "inpainting" if mode == INPAINT else "image-to-image"
                raise InvalidInput("model", ref, f"is a {type(pipe).__name__}, for which diffusers has no {what} "
                                   f"pipeline ({exc})", "pick a Stable Diffusion model such as stabilityai/sd-turbo"
                                   + (", or leave the mask empty to edit the whole picture" if mode == INPAINT else "")
                                   ) from None
            derived.set_progress_bar_config(disable=True)
            made[mode] = derived
        return made[mode]


def edit(pipe: Any, values: dict[str, Any], image: Any, mask: Any, seed: int, on_step_end: Any) -> list[Any]:
    """Run the img2img (no mask) or inpainting pipeline once, its generator seeded with `seed`."""
    import torch

    device = getattr(pipe, "_execution_device", None) or pipe.device
    extra = {} if mask is None else {"mask_image": mask, "width": image.width, "height": image.height}
    result = pipe(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"] or None,
        image=image,
        strength=values["strength"],
        num_inference_steps=values["steps"],
        guidance_scale=values["guidance_scale"],
        generator=torch.Generator(device=device).manual_seed(seed),
        callback_on_step_end=on_step_end,
        output_type="pil",
        **extra,
    )
    return list(result.images)
