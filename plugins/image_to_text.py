"""Image captioning: a picture in, a sentence describing it out.

The default is BLIP large (BSD-3-Clause; loaded by AutoModelForImageTextToText with its BlipProcessor);
an optional prompt starts the caption ("a photograph of") and the model continues it.
No real captioner is packaged for offline use, so offline the tab runs a tiny
random-weight BLIP and says so.
"""

from __future__ import annotations

from typing import Any

from plugins.kinds import IMAGE_TO_TEXT
from zoo.errors import ModelLoadError
from zoo.media import as_rgb
from zoo.plugin import Image, Int, Json, ModelChoices, Plugin, RunContext, Text


class ImageToText(Plugin):
    """Describe an image in one sentence (BLIP captioning)."""

    api_version = 2
    task = "image-to-text"
    title = "Image captioning"
    group = "vision"
    description = ("Upload a picture; the model writes a caption. Optionally give the start of the caption and "
                   "the model continues it. Offline no real captioner is packaged: the tab then runs a tiny "
                   "random-weight model, and its captions are noise.")
    order = 61
    model_kind = IMAGE_TO_TEXT
    models = ModelChoices(
        # BLIP large, not base: base's main branch holds only pickle weights, which the zoo refuses by
        # default; its safetensors conversion lives on the Hub's bot pull request (the known entry below).
        online="Salesforce/blip-image-captioning-large",
        offline="tiny:image-to-text",
        tiny="tiny:image-to-text",
        known=("Salesforce/blip-image-captioning-base@refs/pr/38",),
    )
    inputs = (Image("image"),)
    options = (
        Text("prompt", required=False, max_chars=200, placeholder="a photograph of",
             info="Optional start of the caption; the model continues it"),
        Int("max_new_tokens", 30, 1, 128, limit="max_new_tokens", info="Upper bound on caption length in tokens"),
        Int("num_beams", 3, 1, 8, info="Beam search width; 1 = greedy (fastest)"),
    )
    outputs = (
        Text("caption", label="Caption", lines=2),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Image captioning": "图像描述",
            ("Upload a picture; the model writes a caption. Optionally give the start of the caption and the model "
             "continues it. Offline no real captioner is packaged: the tab then runs a tiny random-weight model, "
             "and its captions are noise."):
                ("上传一张图片，模型为它写一段描述。也可以给出描述的开头，由模型续写。离线时没有随附真实的描述模型："
                 "此标签页会运行一个微型随机权重模型，它写出的描述只是噪声。"),
            "Image": "图像",
            "Prompt": "提示词",
            "Optional start of the caption; the model continues it": "可选的描述开头；模型会接着写下去",
            "a photograph of": "例如：a photograph of",
            "Upper bound on caption length in tokens": "描述长度上限（token 数）",
            "Num beams": "束数量",
            "Beam search width; 1 = greedy (fastest)": "束搜索宽度；1 = 贪心解码（最快）",
            "Caption": "描述文本",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        net, processor = bundle.model, bundle.processor
        if not hasattr(processor, "image_processor") or getattr(processor, "tokenizer", None) is None:
            raise ModelLoadError(f"`{model.ref}` has no processor holding both an image processor and a tokenizer.",
                                 f"pick one of: {', '.join(self.models.all())}")
        image = as_rgb(values["image"])
        prompt = values["prompt"].strip()
        inputs = processor(images=image, text=prompt or None, return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # fp16/bf16 models on a GPU
        ctx.progress(None, "Writing the caption")
        with torch.inference_mode():
            out = net.generate(**inputs, max_new_tokens=values["max_new_tokens"], num_beams=values["num_beams"],
                               do_sample=False)
        caption = processor.tokenizer.decode(out[0], skip_special_tokens=True).strip()
        details: dict[str, Any] = {"model": model.ref, "prompt": prompt, "tokens": int(out.shape[-1]),
                                   "image_size": list(image.size)}
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the caption is noise. It shows the plumbing offline; "
                               f"pick {self.models.online} (online) for real captions.")
        return {"caption": caption, "details": details}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """A caption from a remote engine's image-to-text API (the picture goes as PNG, with the options).

        ZOO_REMOTE_IMAGE_TO_TEXT: the engine writes the caption.
        """
        from zoo.media import png_bytes
        from zoo.models.remote import as_list

        image = as_rgb(values["image"])
        prompt = values["prompt"].strip()
        found = as_list(remote.post("image-to-text", png_bytes(image), {
            "max_new_tokens": values["max_new_tokens"], "generation_parameters": {"num_beams": values["num_beams"]},
            "prompt": prompt or None}))
        caption = str(found[0].get("generated_text") or "").strip() if found and isinstance(found[0], dict) else ""
        return {"caption": caption, "details": {"model": ctx.model_ref, "endpoint": remote.label, "prompt": prompt,
                                                "image_size": list(image.size)}}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The picture (a file path here) and {"max_new_tokens", "generation_parameters": {"num_beams"}, "prompt"}."""
        values: dict[str, Any] = {"image": inputs, "prompt": parameters.get("prompt") or ""}
        beams = (parameters.get("generation_parameters") or {}).get("num_beams", parameters.get("num_beams"))
        for name, value in (("max_new_tokens", parameters.get("max_new_tokens")), ("num_beams", beams)):
            if value is not None:
                values[name] = value
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"generated_text": ...}]."""
        return [{"generated_text": outputs["caption"]}]

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 15.0
