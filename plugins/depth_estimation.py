"""Depth estimation: a picture in, how far each of its pixels is, as a coloured map and as raw numbers.

The model (Depth Anything V2 small online) predicts one value a pixel at its own resolution;
the plugin resizes that to the input's size (bicubic), colours it with the colour map picked
in the tab and writes the raw values to a file: a 16-bit PNG (the values scaled to 0-65535,
their range in the PNG's metadata) or a float32 .npy (the values as they are). The colour maps
are computed here with numpy (matplotlib is not a dependency): each is a linear blend of a
few anchor colours of the well-known map. This module registers its own model kind
(`depth-estimation`) and tiny builder: offline the tab runs a seeded random-weight Depth
Anything (a 4-layer DINOv2 backbone, no pretrained weights) and says so; its depth is noise,
but its map has the input's size and its numbers are what the map shows.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from zoo.kinds import ModelKind, register_kind
from zoo.plugin import Choice, File, Image, Json, ModelChoices, Plugin, RunContext

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

# ---------------------------------------------------------------------------------------- the tiny model


def build_tiny_depth_estimation(out_dir: Path) -> None:
    """Write a tiny DepthAnythingForDepthEstimation (a 4-layer, 32-wide DINOv2 backbone) and its DPT image
    processor (56 px, sides a multiple of the 14-pixel patch, aspect ratio kept), from configs, offline."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    from zoo.tiny import seeded

    # PIL backend: it needs no torchvision. The real model's processor: 518 px, multiple of 14, ImageNet mean/std.
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                         ).save_pretrained(out_dir)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False, apply_layernorm=True)
    config = DepthAnythingConfig(backbone_config=backbone, use_pretrained_backbone=False, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8)
    seeded()
    DepthAnythingForDepthEstimation(config).save_pretrained(out_dir, safe_serialization=True)


DEPTH_ESTIMATION = register_kind(ModelKind(
    "depth-estimation", auto_class="AutoModelForDepthEstimation", processor="processor",
    tiny=build_tiny_depth_estimation, description="a monocular depth estimator (a depth value per pixel)"))

# ---------------------------------------------------------------------------------------- colour maps

#: Anchor colours, evenly spaced from the lowest value (first) to the highest (last); colours between
#: them are blended linearly in RGB. Viridis, inferno and magma: matplotlib's maps at 0, 1/8, ..., 1;
#: turbo: Google's map at 0, 1/9, ..., 1. Gray has no anchors: value v (0..255) is (v, v, v).
COLORMAP_ANCHORS: dict[str, tuple[str, ...]] = {
    "inferno": ("#000004", "#210c4a", "#56106e", "#89226a", "#bb3754", "#e35933", "#f98c0a", "#f9c932", "#fcffa4"),
    "viridis": ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"),
    "magma": ("#000004", "#1c1044", "#4f127b", "#812581", "#b5367a", "#e55964", "#fb8761", "#fec287", "#fcfdbf"),
    "turbo": ("#30123b", "#4662d7", "#36aaf9", "#1ae4b6", "#72fe5e", "#c8ef34", "#faba39", "#f66b19", "#ca2a04",
              "#7a0403"),
}
COLORMAPS = ("inferno", "viridis", "magma", "turbo", "gray")
PNG16, NPY = "png16", "npy"
RAW_FORMATS = (PNG16, NPY)


def colormap_table(name: str) -> "np.ndarray":
    """The 256 RGB colours (uint8, shape (256, 3)) of a colour map, lowest value first."""
    import numpy as np

    if name == "gray":
        return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    if name not in COLORMAP_ANCHORS:
        from zoo.errors import InvalidInput

        raise InvalidInput("colormap", name, f"must be one of {', '.join(COLORMAPS)}", f"pick one of {', '.join(COLORMAPS)}")
    anchors = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in COLORMAP_ANCHORS[name]], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(anchors))
    steps = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(steps, positions, anchors[:, c]) for c in range(3)], axis=1)
    return np.rint(table).astype(np.uint8)


def normalise(depth: "np.ndarray") -> "np.ndarray":
    """Depth scaled to [0, 1] (lowest value 0, highest 1); a flat map is all 0."""
    import numpy as np

    depth = np.asarray(depth, dtype=np.float64)
    lo, hi = float(depth.min()), float(depth.max())
    if not hi > lo:
        return np.zeros_like(depth)
    return (depth - lo) / (hi - lo)


def colorize(depth: "np.ndarray", colormap: str) -> "PILImage.Image":
    """An RGB image of a depth array (height x width): each pixel the colour-map colour of its normalised value
    (round(value x 255) indexes the 256 colours)."""
    import numpy as np
    from PIL import Image as PILImage

    index = np.rint(normalise(depth) * 255).astype(np.uint8)
    return PILImage.fromarray(colormap_table(colormap)[index], mode="RGB")


def depth_png16(depth: "np.ndarray") -> "PILImage.Image":
    """A 16-bit grayscale image of a depth array: round(normalised value x 65535), its min and max in `.info`."""
    import numpy as np
    from PIL import Image as PILImage

    from zoo.media import attach_png_metadata

    levels = np.rint(normalise(depth) * 65535).astype(np.uint16)
    image = PILImage.fromarray(levels)  # mode I;16
    return attach_png_metadata(image, {"depth_min": float(np.min(depth)), "depth_max": float(np.max(depth)),
                                       "scale": "value = depth_min + pixel / 65535 * (depth_max - depth_min)"})


# ---------------------------------------------------------------------------------------- the plugin


class DepthEstimation(Plugin):
    """A depth map of a picture, coloured, with the raw values to download."""

    api_version = 2
    task = "depth-estimation"
    title = "Depth estimation"
    group = "vision"
    description = ("Upload a picture; the model estimates how far each pixel is and shows it as a coloured map of the "
                   "picture's size (pick the colour map under Advanced options). Download the raw values as a 16-bit "
                   "PNG or a .npy file. Depth Anything gives relative depth: higher values are nearer. Offline no real "
                   "model is packaged: the tab runs a tiny random-weight model, and its depth is noise.")
    order = 65
    model_kind = DEPTH_ESTIMATION
    models = ModelChoices(online="depth-anything/Depth-Anything-V2-Small-hf", offline="tiny:depth-estimation",
                          tiny="tiny:depth-estimation", known=("LiheYoung/depth-anything-small-hf",))
    inputs = (Image("image"),)
    options = (
        Choice("colormap", "inferno", choices=COLORMAPS, label="Colour map",
               info="How depth values become colours: the lowest value gets the map's first colour"),
        Choice("raw_format", PNG16, choices=RAW_FORMATS, label="Raw depth file",
               info="png16: a 16-bit grayscale PNG, the values scaled to 0-65535 (their range in its metadata); "
                    "npy: the float32 values as they are (numpy.load)"),
    )
    outputs = (
        Image("depth", label="Depth map"),
        File("raw_depth", label="Raw depth"),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Depth estimation": "深度估计",
            ("Upload a picture; the model estimates how far each pixel is and shows it as a coloured map of the "
             "picture's size (pick the colour map under Advanced options). Download the raw values as a 16-bit PNG "
             "or a .npy file. Depth Anything gives relative depth: higher values are nearer. Offline no real model "
             "is packaged: the tab runs a tiny random-weight model, and its depth is noise."):
                ("上传一张图片，模型估计每个像素的远近，并以与图片同尺寸的彩色图显示（在高级选项中选择色彩映射）。"
                 "原始数值可下载为 16 位 PNG 或 .npy 文件。Depth Anything 给出的是相对深度：数值越大越近。"
                 "离线时没有随附真实的模型：此标签页运行一个微型随机权重模型，它给出的深度只是噪声。"),
            "Image": "图像",
            "Colour map": "色彩映射",
            "How depth values become colours: the lowest value gets the map's first colour":
                "深度值如何变成颜色：最小值对应色彩映射的第一种颜色",
            "Raw depth file": "原始深度文件",
            ("png16: a 16-bit grayscale PNG, the values scaled to 0-65535 (their range in its metadata); npy: the "
             "float32 values as they are (numpy.load)"):
                ("png16：16 位灰度 PNG，数值缩放到 0-65535（原始范围记录在其元数据中）；npy："
                 "原样保存的 float32 数值（numpy.load）"),
            "Depth map": "深度图",
            "Raw depth": "原始深度",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import numpy as np
        import torch

        bundle = model.model
        net = bundle.model
        image = values["image"]
        ctx.progress(None, "Estimating depth")
        inputs = bundle.processor(images=image, return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # fp16/bf16 models on a GPU
        with torch.inference_mode():
            predicted = net(**inputs).predicted_depth.float()  # (1, h, w) at the model's resolution
            # Back to the picture's size, as transformers' post_process_depth_estimation does.
            resized = torch.nn.functional.interpolate(predicted[:, None], size=(image.height, image.width),
                                                      mode="bicubic", align_corners=False)
        depth = resized[0, 0].cpu().numpy().astype(np.float32)
        colormap = values["colormap"]
        folder = Path(tempfile.mkdtemp(prefix="zoo-depth-", dir=ctx.temp_dir))
        if values["raw_format"] == NPY:
            raw = folder / "depth.npy"
            np.save(raw, depth)
        else:
            from zoo.media import save_png

            raw = save_png(depth_png16(depth), folder / "depth.png")
        metric = getattr(net.config, "depth_estimation_type", None) == "metric"
        details: dict[str, Any] = {
            "model": model.ref, "image_size": [image.width, image.height],
            "model_output_size": [int(predicted.shape[-1]), int(predicted.shape[-2])],
            "min": _significant(depth.min()), "max": _significant(depth.max()),
            "meaning": ("metric depth in metres: higher values are farther" if metric
                        else "relative depth (inverse distance): higher values are nearer"),
            "colormap": colormap, "raw_format": values["raw_format"],
        }
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the depth is noise. It shows the plumbing offline; "
                               f"pick {self.models.online} (online) for real depth.")
        return {"depth": colorize(depth, colormap), "raw_depth": str(raw), "details": details}

    def from_endpoint(self, inputs: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The picture (a file path here) and {"colormap", "raw_format"}."""
        values: dict[str, Any] = {"image": inputs}
        values.update({k: parameters[k] for k in ("colormap", "raw_format") if parameters.get(k) is not None})
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """{"depth": the coloured map as base64 PNG, "raw_depth": the raw file as base64, "raw_format", "min", "max",
        "width", "height"}."""
        from zoo.media import png_bytes

        details = outputs["details"]
        return {"depth": base64.b64encode(png_bytes(outputs["depth"])).decode("ascii"),
                "raw_depth": base64.b64encode(Path(outputs["raw_depth"]).read_bytes()).decode("ascii"),
                "raw_format": details["raw_format"], "min": details["min"], "max": details["max"],
                "width": details["image_size"][0], "height": details["image_size"][1]}

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        return 10.0


def _significant(x: Any) -> float:
    """A float to 6 significant digits (a tiny model's depths are around 1e-7: rounding to places would give 0)."""
    return float(f"{float(x):.6g}")


__all__ = ["COLORMAPS", "DEPTH_ESTIMATION", "DepthEstimation", "build_tiny_depth_estimation", "colorize",
           "colormap_table", "depth_png16", "normalise"]
