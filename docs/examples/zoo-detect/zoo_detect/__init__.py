"""YOLOS detection: a plugin that brings its own model kind (Plugin API 2).

The zoo's built-in object-detection tab serves DETR-family models; this package declares a kind
of its own, `yolos-detection`: the transformers Auto class, a processor, and a tiny builder for
`tiny:yolos-detection` (a seeded 2-layer YOLOS, so tests run offline in seconds).
`model_kind = OBJECT_DETECTION` registers it when the plugin registers; worker processes import
this module and find it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import Float, Image, ModelChoices, ModelKind, Plugin, RunContext, Table

TINY_LABELS = ("cat", "dog", "car")


def build_tiny_detector(out_dir: Path) -> None:
    """Write a seeded random-weight YOLOS detector and its image processor into `out_dir`."""
    import torch
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    torch.manual_seed(0)
    config = YolosConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                         image_size=[64, 64], patch_size=16, num_detection_tokens=5,
                         id2label=dict(enumerate(TINY_LABELS)), label2id={n: i for i, n in enumerate(TINY_LABELS)})
    YolosForObjectDetection(config).save_pretrained(out_dir)
    YolosImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(out_dir)


OBJECT_DETECTION = ModelKind(
    "yolos-detection", auto_class="AutoModelForObjectDetection", processor="processor",
    tiny=build_tiny_detector, description="boxes and labels for the objects in a picture")


class ObjectDetection(Plugin):
    """Finds objects in a picture: a box, a label and a score for each."""

    api_version = 2
    task = "yolos-detection"
    title = "YOLOS detection"
    description = "Upload a picture; the model draws a box around each object it finds."
    order = 230
    model_kind = OBJECT_DETECTION
    models = ModelChoices(online="hustvl/yolos-tiny", offline="tiny:yolos-detection", tiny="tiny:yolos-detection",
                          known=("facebook/detr-resnet-50",))
    inputs = (Image("image", label="Picture"),)
    options = (Float("threshold", 0.5, 0.0, 1.0, step=0.05, info="Lowest score to show"),)
    outputs = (
        Image("annotated", label="Objects"),
        Table("objects", headers=("label", "score", "xmin", "ymin", "xmax", "ymax"), label="Boxes (pixels)"),
    )
    # No examples: the tab (and zoo.testing) use a generated picture.

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch
        from PIL import ImageDraw

        bundle = model.model  # the kind's transformers load: .model and .processor
        image = values["image"]
        inputs = bundle.processor(images=image, return_tensors="pt").to(bundle.device)
        ctx.progress(None, "Detecting")
        with torch.inference_mode():
            out = bundle.model(**inputs)
        found = bundle.processor.post_process_object_detection(
            out, threshold=values["threshold"], target_sizes=[(image.height, image.width)])[0]
        names = bundle.model.config.id2label
        rows = [[names[int(label)], round(float(score), 4), *(round(float(v), 1) for v in box)]
                for score, label, box in zip(found["scores"], found["labels"], found["boxes"])]
        annotated = image.copy()
        draw = ImageDraw.Draw(annotated)
        for label, score, *box in rows:
            draw.rectangle(box, outline=(255, 64, 64), width=2)
            draw.text((box[0] + 3, box[1] + 2), f"{label} {score:.2f}", fill=(255, 64, 64))
        return {"annotated": annotated, "objects": rows}
