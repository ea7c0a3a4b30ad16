"""Image segmentation: a picture in, a label for every pixel out, shown as coloured masks.

The model kind this module registers (`image-segmentation`: AutoModelForSemanticSegmentation
and its image processor) serves semantic segmenters: SegFormer (the online default,
nvidia/segformer-b0-finetuned-ade-512-512, 150 ADE20K classes), BEiT, DPT, UperNet... The
processor's post-processing upsamples the model's logits to the picture's size and takes the
best label of each pixel; the plugin makes one mask per label found, blends the masks over the
picture in palette colours with a legend, and lists each label's pixels and share of the picture. Offline
the kind's tiny random-weight SegFormer (`tiny:image-segmentation`) stands in: its masks are
noise, drawn and counted exactly like a real model's.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from zoo.kinds import ModelKind, register_kind
from zoo.plugin import Float, Gallery, Image, Int, Json, ModelChoices, Plugin, RunContext, Table

# ---------------------------------------------------------------------------------------- the tiny model

#: Labels of the tiny segmenter: a few ADE20K names, so outputs read like a real segmenter's.
TINY_SEGMENTATION_LABELS = ("wall", "sky", "tree", "grass", "building", "road")


def build_tiny_segmenter(out_dir: Path) -> None:
    """Write a tiny SegformerForSemanticSegmentation (2 encoder blocks, 64x64 input) with its image processor."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    from transformers.models.segformer.image_processing_pil_segformer import SegformerImageProcessorPil

    from zoo.tiny import seeded

    SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(out_dir)  # PIL: no torchvision
    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
        patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
        id2label=dict(enumerate(TINY_SEGMENTATION_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_SEGMENTATION_LABELS)})
    seeded()
    SegformerForSemanticSegmentation(config).save_pretrained(out_dir, safe_serialization=True)


IMAGE_SEGMENTATION = register_kind(ModelKind(
    "image-segmentation", auto_class="AutoModelForSemanticSegmentation", processor="processor",
    tiny=build_tiny_segmenter, description="a semantic segmenter (a label for every pixel)"))

# ---------------------------------------------------------------------------------------- helpers

HEADERS = ("label", "colour", "pixels", "share")


def segments(label_map: Any, names: dict[int, str]) -> list[tuple[str, Any]]:
    """(label, boolean mask) for each label in a 2-D map of label ids, most pixels first (ties by id)."""
    import numpy as np

    ids, counts = np.unique(np.asarray(label_map), return_counts=True)
    order = sorted(zip(ids.tolist(), counts.tolist()), key=lambda ic: (-ic[1], ic[0]))
    return [(names.get(int(i), f"LABEL_{int(i)}"), np.asarray(label_map) == i) for i, _ in order]


def present(image: Any, found: list[tuple[str, Any]], opacity: float, max_labels: int) -> dict[str, Any]:
    """The overlay, its legend, one mask picture per label (captioned) and the table, for (label, mask) pairs.

    Labels get palette colours in the order given (most pixels first); labels past `max_labels`
    are left out of the overlay, the masks and the table, and counted in the details."""
    from plugins._vision import blend_masks, colour, draw_legend, hex_colour, mask_image

    total = image.width * image.height
    shown = found[:max_labels]
    masks, gallery, rows, listed = [], [], [], []
    for i, (label, mask) in enumerate(shown):
        rgb = colour(i)
        pixels = int(mask.sum())
        share = round(pixels / total, 4)
        masks.append((mask, rgb))
        gallery.append((mask_image(mask, rgb), f"{label} · {pixels} px · {share:.1%}"))
        rows.append([label, hex_colour(rgb), pixels, share])
        listed.append({"label": label, "colour": hex_colour(rgb), "pixels": pixels, "share": share})
    legend = draw_legend([(f"{d['label']}  {d['share']:.1%}", rgb) for d, (_, rgb) in zip(listed, masks)],
                         width=max(200, min(image.width, 480))) if listed else None
    return {"overlay": blend_masks(image, masks, alpha=opacity), "legend": legend, "masks": gallery,
            "segments": rows, "listed": listed, "hidden": [label for label, _ in found[max_labels:]]}


def mask_png(mask: Any) -> str:
    """A boolean mask as a base64 PNG (L mode, 255 inside): the Inference API's wire format."""
    import numpy as np
    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------- the plugin


class ImageSegmentation(Plugin):
    """A label for every pixel: coloured masks over the picture, a mask per label, and their areas."""

    api_version = 2
    task = "image-segmentation"
    title = "Image segmentation"
    group = "vision"
    description = ("Upload a picture; the model labels every pixel (150 ADE20K classes with the default SegFormer: "
                   "wall, sky, tree, person...). The masks are blended over the picture in the colours of the "
                   "legend, each label's mask comes separately, and the table gives its pixels and share of the "
                   "picture. Offline no real segmenter is packaged: the tab then runs a tiny random-weight model, "
                   "whose masks are noise.")
    order = 64
    model_kind = IMAGE_SEGMENTATION
    models = ModelChoices(online="nvidia/segformer-b0-finetuned-ade-512-512", offline="tiny:image-segmentation",
                          tiny="tiny:image-segmentation")
    inputs = (Image("image"),)
    options = (
        Float("opacity", 0.5, 0.05, 1.0, step=0.05, label="Mask opacity",
              info="How strongly the masks' colours cover the picture"),
        Int("max_labels", 20, 1, 150, label="Most labels", info="Show at most this many labels, largest first"),
    )
    outputs = (
        Image("overlay", label="Segments"),
        Image("legend", label="Legend"),
        Gallery("masks", label="Mask per label"),
        Table("segments", label="Labels", headers=HEADERS),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Image segmentation": "图像分割",
            ("Upload a picture; the model labels every pixel (150 ADE20K classes with the default SegFormer: wall, "
             "sky, tree, person...). The masks are blended over the picture in the colours of the legend, each "
             "label's mask comes separately, and the table gives its pixels and share of the picture. Offline no "
             "real segmenter is packaged: the tab then runs a tiny random-weight model, whose masks are noise."):
                ("上传一张图片，模型为每个像素标注类别（默认的 SegFormer 有 150 个 ADE20K 类别：墙、天空、树、人……）"
                 "。各蒙版按图例的颜色叠加在图片上，每个标签的蒙版单独给出，表格列出其像素数和在图片中的占比。"
                 "离线时没有随附真实的分割模型：此标签页会运行一个微型随机权重模型，它给出的蒙版只是噪声。"),
            "Image": "图像",
            "Mask opacity": "蒙版不透明度",
            "How strongly the masks' colours cover the picture": "蒙版颜色覆盖图片的程度",
            "Most labels": "最多标签数",
            "Show at most this many labels, largest first": "最多显示这么多个标签，面积大的优先",
            "Segments": "分割结果",
            "Legend": "图例",
            "Mask per label": "各标签的蒙版",
            "Labels": "标签",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        net, processor = bundle.model, bundle.processor
        image = values["image"]
        inputs = processor(images=image, return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # half-precision models on a GPU
        with torch.inference_mode():
            outputs = net(**inputs)
        label_map = processor.post_process_semantic_segmentation(
            outputs, target_sizes=[(image.height, image.width)])[0].cpu().numpy()
        names = {int(k): str(v) for k, v in net.config.id2label.items()}
        found = segments(label_map, names)
        return self._finish(image, found, values, {"model": model.ref, "labels_known": len(names)}, ctx)

    def _finish(self, image: Any, found: list[tuple[str, Any]], values: dict[str, Any], details: dict[str, Any],
                ctx: RunContext) -> dict[str, Any]:
        shown = present(image, found, values["opacity"], values["max_labels"])
        details = {**details, "image_size": list(image.size), "labels_found": len(found), "segments": shown["listed"]}
        if shown["hidden"]:
            details["labels_hidden"] = shown["hidden"]
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: its masks are noise. It shows the plumbing offline; "
                               f"pick {self.models.online} (online) for real segments.")
        return {"overlay": shown["overlay"], "legend": shown["legend"], "masks": shown["masks"],
                "segments": shown["segments"], "details": details}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Masks from a remote engine's image-segmentation API (the picture goes as PNG), drawn here.

        ZOO_REMOTE_IMAGE_SEGMENTATION: the engine segments; each answer's mask must be the picture's size."""
        import numpy as np

        from zoo.errors import RemoteError
        from zoo.media import png_bytes
        from zoo.models.remote import as_list

        image = values["image"]
        answer = as_list(remote.call("image_segmentation", png_bytes(image), subtask="semantic"))
        found = []
        for item in answer:
            mask = np.asarray(item.mask.convert("L")) > 127
            if (mask.shape[1], mask.shape[0]) != image.size:
                raise RemoteError(f"{remote.label} answered a {mask.shape[1]}x{mask.shape[0]} mask for a "
                                  f"{image.width}x{image.height} picture.",
                                  "point ZOO_REMOTE_IMAGE_SEGMENTATION at an engine that returns masks of the "
                                  "picture's size")
            found.append((str(item.label), mask))
        found.sort(key=lambda lm: -int(lm[1].sum()))  # most pixels first, as a local run lists them
        return self._finish(image, found, values, {"model": ctx.model_ref, "endpoint": remote.label}, ctx)

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The picture (a file path here) and {"max_labels"}; the Inference API's other parameters are ignored."""
        values: dict[str, Any] = {"image": inputs}
        if parameters.get("max_labels") is not None:
            values["max_labels"] = parameters["max_labels"]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"label", "score": null, "mask": base64 PNG, 255 inside}, ...], most pixels first."""
        import numpy as np

        # Each mask picture is the label's colour on black (no palette colour is black).
        return [{"label": s["label"], "score": None, "mask": mask_png(np.asarray(picture).any(axis=2))}
                for s, (picture, _) in zip(outputs["details"]["segments"], outputs["masks"])]

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 10.0
