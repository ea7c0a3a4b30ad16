"""Text to image: a prompt in, pictures out, painted by a diffusion pipeline step by step.

Same prompt, options and seed give the same image: image i of a request uses its own
generator seeded with `seed + i`, so any image of a batch can be made again alone.
Every image carries how it was made (prompt, seed, steps, size, model and revision,
zoo version) as JSON in a PNG text chunk (see zoo.media), which gradio keeps when it
saves `gr.Image(format="png")` outputs, so API clients receive it in the file.

The pipeline runs in a worker thread while `stream` reports each denoising step
(progress plus a rough preview made from the latents); that keeps the generator
responsive, so Stop and client disconnects end the run at the next step. Closing the
generator only signals the worker, never waits for it: gradio closes a dropped client's
generator on the server's event loop.
"""

from __future__ import annotations

import copy
import inspect
import queue
import random
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Generator, Iterator

from plugins.kinds import TEXT_TO_IMAGE
from zoo import __version__
from zoo.errors import Cancelled, InvalidInput
from zoo.plugin import Float, Gallery, Image, Int, Json, Limits, ModelChoices, Number, Plugin, RunContext, Seed, Text

#: Smallest side accepted (besides 0 = native): below it the UNet's downsampling runs out of pixels.
MIN_SIDE = 64
#: Sides a model was trained at, where its config says otherwise (sdxl-turbo's says 1024).
NATIVE_SIDE = {"stabilityai/sdxl-turbo": 512}
#: What the image and its metadata say when the random-weight tiny pipeline made it.
TINY_NOTE = ("Made by the tiny random-weight pipeline (no real text-to-image weights are available offline): "
             "the image is noise, not a picture of the prompt. Pick a real model such as stabilityai/sd-turbo.")
# Arguments a pipeline's __call__ must take for this plugin to drive it.
_REQUIRED_ARGS = ("prompt", "negative_prompt", "width", "height", "num_inference_steps", "guidance_scale",
                  "num_images_per_prompt", "generator", "callback_on_step_end")


class TextToImage(Plugin):
    """Seeded text-to-image generation with per-step progress and PNG metadata."""

    api_version = 2
    task = "text-to-image"
    title = "Text to image"
    group = "vision"
    description = (
        "Describe a picture; a diffusion model paints it in a few denoising steps. The same prompt, options and "
        "seed give the same image, and every PNG carries its prompt, seed and settings as metadata. "
        "No real text-to-image weights ship with the zoo: offline, unless sd-turbo is in the Hugging Face "
        "cache, the tab runs a **tiny random-weight pipeline whose images are noise**: it shows the plumbing, "
        "not a picture."
    )
    order = 30
    openai = ("images/generations",)  # served under /v1 too (zoo/openai_api.py)
    model_kind = TEXT_TO_IMAGE
    models = ModelChoices(
        online="stabilityai/sd-turbo",
        offline="tiny:text-to-image",
        tiny="tiny:text-to-image",
        known=("stabilityai/sdxl-turbo",),
    )
    inputs = (
        Text("prompt", lines=3, placeholder="A watercolor painting of a red fox in the snow"),
        Text("negative_prompt", lines=1, required=False, placeholder="blurry, low quality",
             info="What to keep out of the picture; used only when guidance scale > 1"),
    )
    options = (
        Int("width", 0, 0, 2048, step=8, limit="max_image_side",
            info="Pixels, a multiple of 8; 0 = the model's native size (512 for sd-turbo, 64 for the tiny pipeline)"),
        Int("height", 0, 0, 2048, step=8, limit="max_image_side",
            info="Pixels, a multiple of 8; 0 = the model's native size"),
        Int("steps", 2, 1, 150, limit="max_steps", info="Denoising steps: 1-4 for turbo models, 20-50 for others"),
        Float("guidance_scale", 0.0, 0.0, 20.0, step=0.5,
              info="How strictly to follow the prompt: 0 for turbo models, 5-8 for others"),
        Seed(),
        Int("num_images", 1, 1, 4, label="Number of images",
            info="Image i uses seed + i (past 4294967295 it wraps to 0)"),
    )
    outputs = (
        Image("image", label="Image"),
        Gallery("images", label="All images (when more than one)"),
        Number("seed", 0, integer=True, label="Seed used"),
        Json("metadata", label="Metadata (also inside each PNG)"),
    )
    examples = (
        {"prompt": "A watercolor painting of a red fox in the snow", "seed": 42},
        {"prompt": "A cozy wooden cabin in a pine forest at dusk, warm light in the windows, photo", "steps": 4,
         "seed": 7},
        {"prompt": "An astronaut riding a horse on the moon, digital art", "num_images": 2, "seed": 1},
    )
    translations = {
        "zh-CN": {
            "Text to image": "文生图",
            ("Describe a picture; a diffusion model paints it in a few denoising steps. The same prompt, options "
             "and seed give the same image, and every PNG carries its prompt, seed and settings as metadata. No "
             "real text-to-image weights ship with the zoo: offline, unless sd-turbo is in the Hugging Face cache, "
             "the tab runs a **tiny random-weight pipeline whose images are noise**: it shows the plumbing, not a "
             "picture."):
                ("描述一幅画面，扩散模型经过几步去噪把它画出来。相同的提示词、选项和种子得到相同的图像，"
                 "每个 PNG 都把提示词、种子和设置作为元数据保存。zoo 不附带真实的文生图权重：离线时，"
                 "除非 Hugging Face 缓存中有 sd-turbo，否则此标签页运行一个**微型随机权重管线，"
                 "生成的图像只是噪声**：它展示的是流程，而不是图片。"),
            "Prompt": "提示词",
            "A watercolor painting of a red fox in the snow": "例如：A watercolor painting of a red fox in the snow",
            "Negative prompt": "反向提示词",
            "What to keep out of the picture; used only when guidance scale > 1":
                "不希望出现在画面中的内容；仅在引导系数 > 1 时使用",
            "blurry, low quality": "例如：blurry, low quality",
            "Width": "宽度",
            "Pixels, a multiple of 8; 0 = the model's native size (512 for sd-turbo, 64 for the tiny pipeline)":
                "像素，须为 8 的倍数；0 = 模型的原生尺寸（sd-turbo 为 512，微型管线为 64）",
            "Height": "高度",
            "Pixels, a multiple of 8; 0 = the model's native size": "像素，须为 8 的倍数；0 = 模型的原生尺寸",
            "Steps": "步数",
            "Denoising steps: 1-4 for turbo models, 20-50 for others": "去噪步数：turbo 模型用 1-4，其他模型用 20-50",
            "Guidance scale": "引导系数",
            "How strictly to follow the prompt: 0 for turbo models, 5-8 for others":
                "遵循提示词的严格程度：turbo 模型用 0，其他模型用 5-8",
            "Number of images": "图像数量",
            "Image i uses seed + i (past 4294967295 it wraps to 0)":
                "第 i 张图像使用种子 + i（超过 4294967295 后回绕到 0）",
            "Image": "图像",
            "All images (when more than one)": "全部图像（多于一张时）",
            "Seed used": "实际使用的种子",
            "Metadata (also inside each PNG)": "元数据（也保存在每个 PNG 中）",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        """Sides must be multiples of 8 (the VAE and UNet halve them) and not tiny."""
        for name in ("width", "height"):
            field = next(f for f in self.options if f.name == name)
            check_side(name, values[name], field.bounds(limits)[1])

    def __init__(self) -> None:
        self.tokenizers = SHARED_TOKENIZERS

    def stream(self, model: Any, values: dict[str, Any], ctx: RunContext) -> Iterator[dict[str, Any]]:
        """Yield a latent preview per denoising step, then the images with their metadata."""
        pipe = model.model  # shared with every request on this model: read only here
        check_pipeline(pipe, ctx.model_ref)
        width, height = output_size(pipe, ctx.model_ref, values["width"], values["height"], ctx.limits)
        check_work(width, height, values["steps"], values["num_images"], ctx.limits)  # the sizes are known now
        seed = values["seed"] if values["seed"] >= 0 else random.randrange(2**31)  # Zoo.check already picks one
        steps, count = values["steps"], values["num_images"]
        images = yield from denoise(
            ctx, pipe, lambda own, on_step_end: generate(own, values, width, height, seed, on_step_end),
            steps, (width, height), lambda preview: {"image": preview, "images": None, "seed": seed, "metadata": None},
            tokenizers=self.tokenizers, thread_name="zoo-text-to-image")

        from zoo.media import attach_png_metadata

        common = {
            "prompt": values["prompt"],
            "negative_prompt": values["negative_prompt"],
            "seed": seed,
            "steps": steps,
            "guidance_scale": values["guidance_scale"],
            "width": width,
            "height": height,
            **made_with(ctx, pipe),
        }
        for i, image in enumerate(images):
            # Each PNG holds the seed that remakes it alone (num_images=1).
            attach_png_metadata(image, {**common, "seed": image_seed(seed, i)})
        gallery = [(image, f"seed {image_seed(seed, i)}") for i, image in enumerate(images)] if count > 1 else None
        yield {"image": images[0], "images": gallery, "seed": seed,
               "metadata": {**common, "seeds": [image_seed(seed, i) for i in range(count)]}}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Images from a remote engine's text-to-image API: image i is asked for alone with seed + i, as here.

        ZOO_REMOTE_TEXT_TO_IMAGE: the engine paints, one request per image.
        """
        from zoo.media import attach_png_metadata, read_png_metadata

        seed, count = values["seed"], values["num_images"]
        images, metadata = [], []
        for i in range(count):
            ctx.progress(i / count, f"Image {i + 1} of {count} from the remote engine")
            image = remote.call("text_to_image", values["prompt"], negative_prompt=values["negative_prompt"] or None,
                                width=values["width"] or None, height=values["height"] or None,
                                num_inference_steps=values["steps"], guidance_scale=values["guidance_scale"],
                                seed=image_seed(seed, i))
            image.load()
            # Keep what the engine says about the image (another zoo sends its metadata), and say where it ran.
            made = read_png_metadata(image) or {
                "prompt": values["prompt"], "negative_prompt": values["negative_prompt"], "steps": values["steps"],
                "guidance_scale": values["guidance_scale"], "width": image.width, "height": image.height}
            made.update(seed=image_seed(seed, i), model=ctx.model_ref, endpoint=remote.label, zoo_version=__version__)
            attach_png_metadata(image, made)
            images.append(image)
            metadata.append(made)
        gallery = [(image, f"seed {image_seed(seed, i)}") for i, image in enumerate(images)] if count > 1 else None
        return {"image": images[0], "images": gallery, "seed": seed,
                "metadata": {**metadata[0], "seed": seed, "seeds": [image_seed(seed, i) for i in range(count)]}}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """{"inputs": prompt, "parameters": {negative_prompt, width, height, num_inference_steps, guidance_scale,
        seed}}; one image per request."""
        p = parameters
        values: dict[str, Any] = {"prompt": inputs, "negative_prompt": p.get("negative_prompt") or "",
                                  "width": p.get("width") or 0, "height": p.get("height") or 0, "num_images": 1}
        for name, key in (("steps", "num_inference_steps"), ("guidance_scale", "guidance_scale"), ("seed", "seed")):
            if p.get(key) is not None:
                values[name] = p[key]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """The PNG's bytes, its metadata inside."""
        from zoo.media import png_bytes

        return png_bytes(outputs["image"])

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        """GPU time to ask for: grows with steps x width x height x images."""
        # About 0.25 s per 512x512 image-step on a shared GPU, plus loading; 0 (native) may mean 1024.
        width, height = values.get("width") or 1024, values.get("height") or 1024
        work = values.get("steps", 2) * values.get("num_images", 1) * width * height / 512**2
        return 15 + 0.25 * work


def check_side(name: str, side: int, hi: float | None) -> None:
    """A picture's side: a multiple of 8 (the VAE and UNet halve it), 0 (the model's native size) or at least MIN_SIDE."""
    if side % 8:
        lower, upper = side // 8 * 8, side // 8 * 8 + 8
        near = f"{lower} or {upper}" if hi is None or upper <= hi else str(lower)
        raise InvalidInput(name, side, "must be a multiple of 8", f"use {near}")
    if 0 < side < MIN_SIDE:
        raise InvalidInput(name, side, f"must be 0 (the model's native size) or at least {MIN_SIDE}",
                           f"use 0, or a multiple of 8 from {MIN_SIDE} to {int(hi or 2048)}")


def made_with(ctx: RunContext, pipe: Any, note: str = TINY_NOTE) -> dict[str, Any]:
    """The end of an image's metadata: the model and revision, the pipeline and scheduler, the zoo's version,
    and for the tiny random-weight pipeline a plain note (`note`) that its pictures are noise."""
    made: dict[str, Any] = {
        "model": ctx.model_ref,
        "model_revision": ctx.model_revision,
        "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__,
        "zoo_version": __version__,
    }
    if ctx.is_tiny:
        made.update(tiny_random_weights=True, note=note)
    return made


def denoise(ctx: RunContext, pipe: Any, paint: Callable[[Any, Callable[..., Any]], list[Any]], steps: int,
            size: tuple[int, int], frame: Callable[[Any], dict[str, Any]], *, tokenizers: "TokenizerLoans",
            thread_name: str, base: Any = None) -> Generator[dict[str, Any], None, list[Any]]:
    """Run `paint(own, on_step_end)` in a worker thread on a private copy of the shared `pipe`; yield
    `frame(preview)` after each denoising step (a latent preview at `size`, with progress), and return
    the images `paint` returned (`images = yield from denoise(...)`).

    `own` is `pipe` with its own scheduler and borrowed tokenizers (see `private_pipeline`); pass
    `on_step_end` as the pipeline's `callback_on_step_end`: it reports each step and stops the
    pipeline at the next one on Stop, a disconnect or a closed generator. `base` is the loaded pipeline a
    derived one (from_pipe) shares its tokenizers with: tokenizers are lent per loaded pipeline.
    """
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()  # set when this generator ends early, so the worker does too

    def on_step_end(p: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if stop.is_set():
            raise Cancelled("The request was stopped.")
        ctx.raise_if_cancelled()
        latents = tensors.get("latents")
        events.put(("step", (i + 1, getattr(p, "num_timesteps", None) or steps,
                             None if latents is None else latents[:1].detach().clone())))
        return tensors

    def work() -> None:
        try:
            with tokenizers.borrow(pipe if base is None else base) as lent:
                own = private_pipeline(pipe, lent)
                events.put(("done", paint(own, on_step_end)))
        except BaseException as exc:  # handed to the generator, which re-raises it
            events.put(("error", exc))

    ctx.start_worker(work, name=thread_name)  # keeps the model pinned until the worker ends
    try:
        while True:
            kind, payload = events.get()
            if kind == "error":
                raise payload
            if kind == "done":
                return payload
            step, total, latents = payload
            tail = ", decoding the image" if step == total else ""
            ctx.progress(step / total, f"Denoising step {step}/{total}{tail}")  # raises Cancelled on Stop
            yield frame(latent_preview(latents, *size))
    finally:
        # Never join here: a dropped client's generator is closed on the server's event loop.
        # The worker stops at its next step, and the runner unpins the model when it ends.
        stop.set()


def image_work(width: int, height: int, steps: int, images: int) -> float:
    """A request's cost in 512x512 image-steps: an image larger than 512x512 counts (area / 512²)² per step,
    because self-attention grows with the square of the pixels (a 1024² step costs 16 at 512², not 4)."""
    area = width * height / 512**2
    return steps * images * (area if area <= 1 else area**2)


def check_work(width: int, height: int, steps: int, images: int, limits: Limits) -> None:
    """Refuse a request that would hold the tab for minutes on this server (ZOO_MAX_IMAGE_WORK)."""
    work = image_work(width, height, steps, images)
    if work > limits.max_image_work:
        budget = limits.max_image_work
        raise InvalidInput("steps", steps, f"with {images} image(s) at {width}x{height} is {work:.3g} 512x512 "
                           f"image-steps, over this server's budget of {budget:g} (ZOO_MAX_IMAGE_WORK)",
                           f"use fewer steps or images, or a smaller size (e.g. {_fits(width, height, images, budget)});"
                           " the operator can raise ZOO_MAX_IMAGE_WORK")


def _fits(width: int, height: int, images: int, budget: float) -> str:
    """A suggestion within the budget: the most steps at this size, or else the native 512x512."""
    steps = int(budget // image_work(width, height, 1, images)) if image_work(width, height, 1, images) else 0
    if steps >= 1:
        return f"{steps} step(s) at {width}x{height}"
    return f"{max(1, int(budget // images))} step(s) at 512x512" if budget >= images else "1 image at 512x512"


def image_seed(seed: int, i: int) -> int:
    """The seed of image i of a batch: seed + i, wrapped into the seed field's range (0 to 2**32 - 1).

    Unwrapped, seed 4294967295 with 4 images listed seeds the seed field refuses, so those
    images could not be made again alone; torch seeds accept any of these values.
    """
    return (seed + i) % 2**32


TOKENIZERS = ("tokenizer", "tokenizer_2", "tokenizer_3")


class TokenizerLoans:
    """Lends each running request its own tokenizers for a shared pipeline.

    A fast tokenizer switches its padding mode on the shared Rust object at every call
    (diffusers encodes with "max_length", then checks truncation with "longest"), so two
    requests encoding at once can get a prompt at the wrong length: a different image.
    The pipeline's own tokenizers are the first loan; only when requests overlap is a
    copy made (about 0.3 s for CLIP's), and it is kept for the next overlap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spares: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()

    @contextmanager
    def borrow(self, pipe: Any) -> Iterator[dict[str, Any]]:
        """{attribute name: tokenizer} that no other request uses until the block ends."""
        names = [name for name in TOKENIZERS if getattr(pipe, name, None) is not None]
        with self._lock:
            spares = self._spares.setdefault(pipe, [{name: getattr(pipe, name) for name in names}])
            lent = spares.pop() if spares else None
        if lent is None:
            lent = {name: copy.deepcopy(getattr(pipe, name)) for name in names}
        try:
            yield lent
        finally:
            with self._lock:
                spares.append(lent)


#: One set of loans for every plugin on a loaded pipeline (text to image and image to image share it).
SHARED_TOKENIZERS = TokenizerLoans()


def private_pipeline(pipe: Any, tokenizers: dict[str, Any]) -> Any:
    """A shallow copy of a shared pipeline with its own scheduler and the given tokenizers; weights stay shared.

    A diffusers pipeline keeps per-call state on itself (the scheduler's timesteps and
    step index, the guidance scale): two requests on one object would corrupt each
    other (an IndexError in the scheduler, or one request's steps in the other's image).
    """
    own = copy.copy(pipe)
    own.scheduler = copy.deepcopy(pipe.scheduler)
    for name, tokenizer in tokenizers.items():
        setattr(own, name, tokenizer)
    return own


def check_pipeline(pipe: Any, ref: str) -> None:
    """Refuse models whose pipeline does not take a text prompt the way text-to-image pipelines do."""
    call = getattr(pipe, "__call__", None)
    params = inspect.signature(call).parameters if callable(call) else {}
    missing = [name for name in _REQUIRED_ARGS if name not in params]
    if missing or not hasattr(pipe, "scheduler"):
        raise InvalidInput("model", ref, f"is a {type(pipe).__name__}, not a text-to-image diffusion pipeline "
                           f"(it does not take {', '.join(missing) or 'a scheduler'})",
                           "pick a text-to-image model such as stabilityai/sd-turbo")


def native_side(pipe: Any, ref: str) -> int:
    """The side the model was trained at: known exceptions first, then the pipeline's config."""
    if ref in NATIVE_SIDE:
        return NATIVE_SIDE[ref]
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    sample = getattr(pipe, "default_sample_size", None) or getattr(getattr(denoiser, "config", None),
                                                                   "sample_size", None)
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    factor = getattr(pipe, "vae_scale_factor", None) or 8
    return int(sample * factor) if sample else 512


def output_size(pipe: Any, ref: str, width: int, height: int, limits: Limits) -> tuple[int, int]:
    """The (width, height) to paint: 0 means the model's native side, capped by the operator's limit."""
    side = min(native_side(pipe, ref), limits.max_image_side // 8 * 8)
    return width or side, height or side


def generate(pipe: Any, values: dict[str, Any], width: int, height: int, seed: int,
             on_step_end: Any) -> list[Any]:
    """Run the pipeline once for the whole batch; image i gets a generator seeded with seed + i (mod 2**32)."""
    import torch

    device = getattr(pipe, "_execution_device", None) or pipe.device
    generators = [torch.Generator(device=device).manual_seed(image_seed(seed, i)) for i in range(values["num_images"])]
    result = pipe(
        prompt=values["prompt"],
        negative_prompt=values["negative_prompt"] or None,
        width=width,
        height=height,
        num_inference_steps=values["steps"],
        guidance_scale=values["guidance_scale"],
        num_images_per_prompt=values["num_images"],
        generator=generators,
        callback_on_step_end=on_step_end,
        output_type="pil",
    )
    return list(result.images)


def latent_preview(latents: Any, width: int, height: int) -> Any:
    """A rough picture of the first image's latents (three channels stretched to 0-255), or None.

    Decoding with the VAE at every step would cost as much as a step; this costs nothing
    and shows the composition settling. Latents that are not [batch, channels, h, w] get none.
    """
    if latents is None or latents.ndim != 4 or latents.shape[1] < 3:
        return None
    import torch
    from PIL import Image as PILImage

    x = latents[0, :3].float().cpu()
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    x = ((x - lo) / (hi - lo).clamp_min(1e-6) * 255).round().to(torch.uint8)
    small = PILImage.fromarray(x.permute(1, 2, 0).numpy())
    return small.resize((width, height), PILImage.Resampling.BILINEAR)
