"""Video classification: a clip in, what happens in it (Kinetics-400 actions with the default VideoMAE), out.

The clip arrives checked by the Video field (zoo.video through ffprobe: a video stream ffmpeg
decodes here, more than 0 seconds, at most ZOO_MAX_VIDEO_SECONDS long and ZOO_MAX_VIDEO_SIDE
pixels on a side). The plugin then takes as many frames as the model was trained on
(`config.num_frames`: 16 for VideoMAE), evenly spaced over the clip, each the middle of an
equal part of it, with one ffmpeg seek a frame; the model scores the labels from them. The tab
shows the frames used, each captioned with its time. This module registers its own model kind
(`video-classification`) and tiny builder: offline the tab runs a seeded random-weight VideoMAE
(4 frames, 5 labels) and says so; its labels are noise, the frames and their times are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from zoo.kinds import ModelKind, register_kind
from zoo.plugin import Gallery, Int, Json, Labels, ModelChoices, Plugin, RunContext, Video

#: The tiny model's labels (a few Kinetics actions).
TINY_VIDEO_LABELS = ("dancing", "juggling", "playing guitar", "riding a bike", "swimming")
#: The tiny model's frames per clip.
TINY_NUM_FRAMES = 4
#: Frames are taken at most this many pixels on a side (the models look at 224; the gallery shows them).
FRAME_SIDE = 448

# ---------------------------------------------------------------------------------------- the tiny model


def build_tiny_video_classification(out_dir: Path) -> None:
    """Write a tiny VideoMAEForVideoClassification (4 frames of 32x32, tubelets of 2, 2 layers, 5 labels) and its
    image processor (shortest side 32, centre crop 32), from configs, offline."""
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    from zoo.tiny import seeded

    # PIL backend: it needs no torchvision. The real one: shortest side 224, centre crop 224, ImageNet mean/std.
    VideoMAEImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                              image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(out_dir)
    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=TINY_NUM_FRAMES, tubelet_size=2, hidden_size=32,
                            num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                            id2label=dict(enumerate(TINY_VIDEO_LABELS)),
                            label2id={label: i for i, label in enumerate(TINY_VIDEO_LABELS)})
    seeded()
    VideoMAEForVideoClassification(config).save_pretrained(out_dir, safe_serialization=True)


VIDEO_CLASSIFICATION = register_kind(ModelKind(
    "video-classification", auto_class="AutoModelForVideoClassification", processor="processor",
    tiny=build_tiny_video_classification, description="a video classifier (frames of a clip in, labels out)"))

# ---------------------------------------------------------------------------------------- the plugin


class VideoClassification(Plugin):
    """Top-k labels of a clip, from frames sampled evenly over it."""

    api_version = 2
    task = "video-classification"
    title = "Video classification"
    group = "vision"
    description = ("Upload a clip (or record one); frames are taken evenly over it and the model names what happens "
                   "in it, best labels first (400 Kinetics actions with the default VideoMAE). The frames it looked "
                   "at are shown with their times. Offline no real model is packaged: the tab then runs a tiny "
                   "random-weight model, and its labels are noise.")
    order = 66
    model_kind = VIDEO_CLASSIFICATION
    models = ModelChoices(online="MCG-NJU/videomae-base-finetuned-kinetics", offline="tiny:video-classification",
                          tiny="tiny:video-classification", known=("MCG-NJU/videomae-base-finetuned-ssv2",))
    inputs = (Video("video", label="Clip"),)
    options = (Int("top_k", 5, 1, 50, label="Labels to show", info="How many of the best labels to return"),)
    outputs = (
        Labels("labels", label="Labels"),
        Gallery("frames", label="Frames used"),
        Json("details", label="Details"),
    )
    translations = {
        "zh-CN": {
            "Video classification": "视频分类",
            ("Upload a clip (or record one); frames are taken evenly over it and the model names what happens in "
             "it, best labels first (400 Kinetics actions with the default VideoMAE). The frames it looked at are "
             "shown with their times. Offline no real model is packaged: the tab then runs a tiny random-weight "
             "model, and its labels are noise."):
                ("上传一段视频（或录制一段）；从中均匀抽取若干帧，模型说出其中发生的事，"
                 "最可能的标签排在最前（默认的 VideoMAE 有 400 个 Kinetics 动作类别）。"
                 "所看的帧会连同其时间点一起显示。离线时没有随附真实的模型：此标签页会运行一个微型随机权重模型，"
                 "它给出的标签只是噪声。"),
            "Clip": "视频片段",
            "Labels to show": "显示的标签数",
            "How many of the best labels to return": "返回得分最高的几个标签",
            "Labels": "标签",
            "Frames used": "使用的帧",
            "Details": "详细信息",
        },
    }

    def run(self, model: Any, values: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import numpy as np
        import torch

        from zoo import video

        bundle = model.model
        net = bundle.model
        path = values["video"]
        info = video.probe(path, "video")
        count = int(getattr(net.config, "num_frames", 16) or 16)
        times = video.sample_times(info.duration or 0.0, count) if info.duration else [0.0] * count
        ctx.progress(0.1, f"Taking {count} frames")
        frames = video.frames_at(path, times, max_side=FRAME_SIDE, name="video", info=info)
        ctx.progress(0.6, "Classifying")
        inputs = bundle.processor([np.asarray(f) for f in frames], return_tensors="pt").to(bundle.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(net.dtype)  # fp16/bf16 models on a GPU
        with torch.inference_mode():
            logits = net(**inputs).logits[0].float()
        multi = getattr(net.config, "problem_type", None) == "multi_label_classification"
        scores = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
        best = torch.topk(scores, min(values["top_k"], scores.numel()))
        id2label = net.config.id2label
        ranked = [(str(id2label.get(int(i), f"LABEL_{int(i)}")), round(float(s), 6))
                  for s, i in zip(best.values.tolist(), best.indices.tolist())]
        details: dict[str, Any] = {
            "model": model.ref, **info.as_dict(), "resolution": f"{info.width}x{info.height}",
            "frames_used": count, "frame_times": times, "frame_size": list(frames[0].size),
            "labels_known": len(id2label), "scores": "sigmoid" if multi else "softmax",
            "top": [{"label": label, "score": score} for label, score in ranked],
        }
        if ctx.is_tiny:
            details["note"] = ("Tiny random-weight model: the labels are noise. It shows the plumbing offline (the "
                               f"frames and their times are real); pick {self.models.online} (online) for real labels.")
        gallery = [(frame, f"{t:.2f} s") for frame, t in zip(frames, times)]
        return {"labels": dict(ranked), "frames": gallery, "details": details}

    def from_endpoint(self, inputs: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The clip (a file path here) and {"top_k"}."""
        values: dict[str, Any] = {"video": inputs}
        if parameters.get("top_k") is not None:
            values["top_k"] = parameters["top_k"]
        return values

    def to_endpoint(self, outputs: dict[str, Any]) -> Any:
        """[{"label", "score"}, ...], best first (the video-classification task's answer)."""
        return outputs["details"]["top"]

    def gpu_seconds(self, values: Mapping[str, Any]) -> float:
        return 20.0


__all__ = ["TINY_VIDEO_LABELS", "VIDEO_CLASSIFICATION", "VideoClassification", "build_tiny_video_classification"]
