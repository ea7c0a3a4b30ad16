"""Object detection: a picture in, boxes around what the model finds, with labels and scores.

The model kind this module registers (`object-detection`: AutoModelForObjectDetection and
its image processor) serves the DETR family: RT-DETR (the online default, PekingU/rtdetr_r50vd,
Apache-2.0, safetensors, a ResNet backbone of its own), DETR, Conditional/Deformable DETR,
YOLOS. The processor's own post-processing turns the model's output into boxes in pixels of
the input picture; the plugin clips them to the picture, keeps those above the score threshold
(and of the labels asked for), at most `max_detections`, best first, then draws and lists them.
Offline the kind's tiny random-weight DETR (`tiny:object-detection`) stands in: its boxes and
labels are noise, and they are drawn and listed exactly like a real model's.

facebook/detr-resnet-50 is not the default: its main branch's config asks for a timm backbone,
and timm (with torchvision) is not a dependency of the zoo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.errors import InvalidInput
from zoo.kinds import ModelKind, register_kind
from zoo.plugin import Float, Image, Int, Json, Limits, ModelChoices, Plugin, RunContext, Table, Text

# ---------------------------------------------------------------------------------------- the tiny model

#: Labels of the tiny detector: a few COCO names, so outputs read like a real detector's.
TINY_DETECTION_LABELS = ("person", "bicycle", "car", "dog", "cat", "bird")
#: The tiny detector's queries: at most this many boxes a picture.
TINY_QUERIES = 8


def build_tiny_detector(out_dir: Path) -> None:
    """Write a tiny DetrForObjectDetection (a 2-stage ResNet backbone from its config: no timm, no download).

    DETR's queries start alike, so small random weights give every query the same box; the
    cross-attention and box head are rescaled (seeded) so the 8 queries find different boxes
    of a plausible size, with scores around 0.45-0.8, and the "no object" class is made rare.
    """
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig
    from transformers.models.detr.image_processing_pil_detr import DetrImageProcessorPil

    from zoo.tiny import SEED, seeded

    # PIL backend: it needs no torchvision. The long side becomes 64 px.
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(out_dir)
    backbone = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                            layer_type="basic", out_features=["stage2"])
    config = DetrConfig(
        backbone_config=backbone, num_queries=TINY_QUERIES, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_ffn_dim=32, decoder_ffn_dim=32, encoder_attention_heads=2, decoder_attention_heads=2,
        id2label=dict(enumerate(TINY_DETECTION_LABELS)),
        label2id={label: i for i, label in enumerate(TINY_DETECTION_LABELS)})
    seeded()
    model = DetrForObjectDetection(config)
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        queries = model.model.query_position_embeddings.weight
        queries.copy_(torch.randn(queries.shape, generator=generator) * 3)
        for name, param in model.named_parameters():
            if "encoder_attn" in name and name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(15)  # sharp attention: each query looks at its own part of the picture
            elif name.startswith(("class_labels_classifier", "bbox_predictor")) and name.endswith("weight"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        last = model.bbox_predictor.layers[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * 0.2)
        last.bias.copy_(torch.tensor([0.0, 0.0, -1.0, -1.0]))  # boxes about a quarter of the picture wide
        model.class_labels_classifier.bias[-1] = -2.0  # the "no object" class
    model.save_pretrained(out_dir, safe_serialization=True)


OBJECT_DETECTION = register_kind(ModelKind(
    "object-detection", auto_class="AutoModelForObjectDetection", processor="processor", tiny=build_tiny_detector,
    description="an object detector (DETR family: boxes with labels and scores)"))

# ---------------------------------------------------------------------------------------- helpers

HEADERS = ("label", "score", "x0", "y0", "x1", "y1")


def wanted_labels(text: str, known: list[str]) -> set[str] | None:
    """The label filter ("dog, cat") as the model's own label names; None for no filter.

    Matching ignores case and surrounding spaces; names the model does not know are refused,
    with the labels it knows."""
    asked = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not asked:
        return None
    by_lower = {label.lower(): label for label in known}
    unknown = [name for name in asked if name.lower() not in by_lower]
    if unknown:
        shown = ", ".join(known[:40]) + (f", … ({len(known)} in all)" if len(known) > 40 else "")
        raise InvalidInput("labels", ", ".join(unknown), f"{'is not a label' if len(unknown) == 1 else 'are not labels'} "
                           f"this model detects", f"use labels it knows ({shown}), or leave the filter empty")
    return {by_lower[name.lower()] for name in asked}


def select(found: list[dict[str, Any]], size: tuple[int, int], threshold: float, labels: set[str] | None,
           max_detections: int) -> list[dict[str, Any]]:
    """Detections {label, score, box: [x0, y0, x1, y1]} clipped to the picture, above the threshold, of the
    wanted labels, best first, at most `max_detections`; boxes empty once clipped are dropped."""
    from plugins._vision import Box, pixel_box

    width, height = size
    kept = []
    for d in sorted(found, key=lambda d: -d["score"]):
        score = round(float(d["score"]), 4)  # the score listed is the one compared: a row never shows less
        if score < threshold or (labels is not None and d["label"] not in labels):
            continue
        x0, y0, x1, y1 = (round(float(v), 1) for v in d["box"])
        x0, x1 = min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))
        y0, y1 = min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))
        if pixel_box(Box(x0, y0, x1, y1), size) is None:
            continue
        kept.append({"label": d["label"], "score": score, "box": [x0, y0, x1, y1]})
    return kept[:max_detections]


def present(image: Any, detections: list[dict[str, Any]]) -> tuple[Any, list[list[Any]]]:
    """The picture with the boxes drawn, and the table rows: one row per drawn box, in the same order.

    Each label gets a palette colour in order of first appearance (best first), so the same
    detections always look the same, whichever engine found them."""
    from plugins._vision import Box, colour, draw_boxes

    colours: dict[str, tuple[int, int, int]] = {}
    boxes, rows = [], []
    for d in detections:
        rgb = colours.setdefault(d["label"], colour(len(colours)))
        boxes.append(Box(*d["box"], text=f"{d['label']} {d['score']:.2f}", colour=rgb))
        rows.append([d["label"], d["score"], *d["box"]])
    return draw_boxes(image, boxes), rows


# ---------------------------------------------------------------------------------------- the plugin


class ObjectDetection(Plugin):
    """Boxes, labels and scores for what a DETR-family model finds in a picture."""

    api_version = 2
    task = "object-detection"
    title = "Object detection"
    group = "vision"
    description = ("Upload a picture; the model draws a box around each object it finds, with its label and score, "
                   "and lists the boxes in pixels of the picture (80 COCO classes with the default RT-DETR). Pick "
                   "the score threshold and which labels to show. Offline no real detector is packaged: the tab "
                   "then runs a tiny random-weight model, whose boxes are noise.")
    order = 63
    model_kind = OBJECT_DETECTION
    models = ModelChoices(online="PekingU/rtdetr_r50vd", offline="tiny:object-detection", tiny="tiny:object-detection")
    inputs = (Image("image"),)
    options = (
        Float("threshold", 0.5, 0.0, 1.0, step=0.01, label="Score threshold",
              info="Boxes scoring below this are left out"),
        Text("labels", "", required=False, max_chars=2000, label="Only these labels",
             placeholder="e.g. person, dog (empty: all)", info="Comma-separated label names; empty shows every label"),
        Int("max_detections", 50, 1, 300, label="Most boxes", info="At most this many boxes, best first"),
    )
    outputs = (
        Image("annotated", label="Detections"),
        Table("detections", label="Boxes (pixels of the picture)", headers=HEADERS),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Object detection": "目标检测",
            ("Upload a picture; the model draws a box around each object it finds, with its label and score, and "
             "lists the boxes in pixels of the picture (80 COCO classes with the default RT-DETR). Pick the score "
             "threshold and which labels to show. Offline no real detector is packaged: the tab then runs a tiny "
             "random-weight model, whose boxes are noise."):
                ("上传一张图片，模型在找到的每个物体周围画框，标出标签和得分，"
                 "并以图片像素坐标列出这些框（默认的 RT-DETR 有 80 个 COCO 类别）。可以选择得分阈值和要显示的标签。"
                 "离线时没有随附真实的检测器：此标签页会运行一个微型随机权重模型，它画出的框只是噪声。"),
            "Image": "图像",
            "Score threshold": "得分阈值",
            "Boxes scoring below this are left out": "得分低于此值的框不显示",
            "Only these labels": "只显示这些标签",
            "Comma-separated label names; empty shows every label": "用逗号分隔的标签名；留空则显示所有标签",
            "e.g. person, dog (empty: all)": "例如 person, dog（留空：全部）",
            "Most boxes": "最多框数",
            "At most this many boxes, best first": "最多显示这么多个框，得分高的优先",
            "Detections": "检测结果",
            "Boxes (pixels of the picture)": "框（图片像素坐标）",
            "Details": "详细信息",
        },
    }

    def check(self, values: dict[str, Any], limits: Limits) -> None:
        # The label names are checked against the model's labels in run(); the syntax here, before a load.
        if any(len(part.strip()) > 100 for part in values.get("labels", "").split(",")):
            raise InvalidInput("labels", values["labels"][:100] + "…", "has a label name over 100 characters",
                               "separate label names with commas, e.g. person, dog")

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        bundle = model.model
        net, processor = bundle.model, bundle.processor
        image = values["image"]
        id2label = {int(k): str(v) for k, v in net.config.id2label.items()}
        labels = wanted_labels(values["labels"], list(id2label.values()))
        inputs = processor(images=image, return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # half-precision models on a GPU
        with torch.inference_mode():
            outputs = net(**inputs)
        # The processor's post-processing knows its model (softmax for DETR, sigmoid for RT-DETR) and maps
        # boxes to pixels of the picture; the plugin applies the threshold itself, with the filter.
        result = processor.post_process_object_detection(outputs, threshold=0.0,
                                                          target_sizes=[(image.height, image.width)])[0]
        found = [{"label": id2label.get(int(i), f"LABEL_{int(i)}"), "score": float(s), "box": b}
                 for s, i, b in zip(result["scores"].tolist(), result["labels"].tolist(), result["boxes"].tolist())]
        return self._finish(image, found, labels, values, {"model": model.ref, "labels_known": len(id2label)}, ctx)

    def _finish(self, image: Any, found: list[dict[str, Any]], labels: set[str] | None, values: dict[str, Any],
                details: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        detections = select(found, image.size, values["threshold"], labels, values["max_detections"])
        annotated, rows = present(image, detections)
        details = {**details, "image_size": list(image.size), "threshold": values["threshold"],
                   "labels_shown": sorted(labels) if labels is not None else "all", "candidates": len(found),
                   "detections": detections}
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: its boxes and labels are noise. It shows the plumbing "
                               f"offline; pick {self.models.online} (online) for real detections.")
        return {"annotated": annotated, "detections": rows, "details": details}

    def run_remote(self, remote: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Boxes from a remote engine's object-detection API (the picture goes as PNG), drawn here.

        ZOO_REMOTE_OBJECT_DETECTION: the engine detects; the threshold goes with the request, and the
        label filter and the cap apply to its answer."""
        from zoo.media import png_bytes
        from zoo.models.remote import as_list

        image = values["image"]
        answer = as_list(remote.call("object_detection", png_bytes(image), threshold=values["threshold"]))
        found = [{"label": str(o.label), "score": float(o.score),
                  "box": [o.box.xmin, o.box.ymin, o.box.xmax, o.box.ymax]} for o in answer]
        # The engine's label list is not known here: the filter keeps the asked labels among those it found.
        asked = {part.strip().lower() for part in values["labels"].split(",") if part.strip()}
        labels = {d["label"] for d in found if d["label"].lower() in asked} if asked else None
        return self._finish(image, found, labels, values, {"model": ctx.model_ref, "endpoint": remote.label}, ctx)

    def from_endpoint(self, inputs: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        """The picture (a file path here) and {"threshold", "labels", "max_detections"}."""
        values: dict[str, Any] = {"image": inputs}
        for name in ("threshold", "labels", "max_detections"):
            if parameters.get(name) is not None:
                values[name] = parameters[name]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"label", "score", "box": {"xmin", "ymin", "xmax", "ymax"}}, ...], best first (pixels)."""
        return [{"label": d["label"], "score": d["score"],
                 "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), d["box"]))}
                for d in outputs["details"]["detections"]]

    def gpu_seconds(self, values: dict[str, Any]) -> float:
        return 10.0
