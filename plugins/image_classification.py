"""Image classification: a picture in, the model's best labels with their scores out.

Scores are a softmax over the labels (an independent sigmoid per label for models
trained multi-label). No real image classifier is packaged for offline use, so
offline the tab runs a tiny random-weight ViT and says so.
"""

from __future__ import annotations

from typing import Any

from plugins.kinds import IMAGE_CLASSIFICATION
from zoo.media import as_rgb
from zoo.plugin import Image, Int, Json, Labels, ModelChoices, Plugin, RunContext


class ImageClassification(Plugin):
    """Top-k labels of an image (ImageNet classes with the default ViT)."""

    api_version = 2
    task = "image-classification"
    title = "Image classification"
    group = "vision"
    description = ("Upload a picture; the model names what it shows, best labels first (1,000 ImageNet classes "
                   "with the default ViT). Offline no real classifier is packaged: the tab then runs a tiny "
                   "random-weight model, and its labels are noise.")
    order = 60
    model_kind = IMAGE_CLASSIFICATION
    models = ModelChoices(
        online="google/vit-base-patch16-224",
        offline="tiny:image-classification",
        tiny="tiny:image-classification",
        known=("microsoft/resnet-50",),  # both ship safetensors on their main branch
    )
    inputs = (Image("image"),)
    options = (Int("top_k", 5, 1, 50, label="Labels to show", info="How many of the best labels to return"),)
    outputs = (
        Labels("labels", label="Labels"),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Image classification": "图像分类",
            ("Upload a picture; the model names what it shows, best labels first (1,000 ImageNet classes with the "
             "default ViT). Offline no real classifier is packaged: the tab then runs a tiny random-weight model, "
             "and its labels are noise."):
                ("上传一张图片，模型说出其中的内容，最可能的标签排在最前（默认的 ViT 有 1,000 个 ImageNet 类别）。"
                 "离线时没有随附真实的分类器：此标签页会运行一个微型随机权重模型，它给出的标签只是噪声。"),
            "Image": "图像",
            "Labels to show": "显示的标签数",
            "How many of the best labels to return": "返回得分最高的几个标签",
            "Labels": "标签",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        net = bundle.model
        image = as_rgb(values["image"])
        inputs = bundle.processor(images=image, return_tensors="pt").to(bundle.device)
        # Half-precision models on a GPU want half-precision pixels.
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)
        with torch.inference_mode():
            logits = net(**inputs).logits[0].float()
        multi = getattr(net.config, "problem_type", None) == "multi_label_classification"
        scores = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
        best = torch.topk(scores, min(values["top_k"], scores.numel()))
        id2label = net.config.id2label
        ranked = [(str(id2label.get(int(i), f"LABEL_{int(i)}")), round(float(s), 6))
                  for s, i in zip(best.values.tolist(), best.indices.tolist())]
        details: dict[str, Any] = {
            "model": model.ref, "labels_known": len(id2label), "scores": "sigmoid" if multi else "softmax",
            "image_size": list(image.size), "top": [{"label": label, "score": score} for label, score in ranked],
        }
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the labels are noise. It shows the plumbing offline; "
                               f"pick {self.models.online} (online) for real labels.")
        return {"labels": dict(ranked), "details": details}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """The best labels from a remote engine's image-classification API (the picture goes as PNG).

        ZOO_REMOTE_IMAGE_CLASSIFICATION: the engine labels the picture.
        """
        from zoo.media import png_bytes
        from zoo.models.remote import as_list

        image = as_rgb(values["image"])
        found = as_list(remote.call("image_classification", png_bytes(image), top_k=values["top_k"]))
        ranked = [(str(o.label), round(float(o.score), 6)) for o in found]
        details = {"model": ctx.model_ref, "endpoint": remote.label, "image_size": list(image.size),
                   "top": [{"label": label, "score": score} for label, score in ranked]}
        return {"labels": dict(ranked), "details": details}

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The picture (a file path here) and {"top_k"}."""
        values: dict[str, Any] = {"image": inputs}
        if parameters.get("top_k") is not None:
            values["top_k"] = parameters["top_k"]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"label", "score"}, ...], best first."""
        return outputs["details"]["top"]

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 10.0
