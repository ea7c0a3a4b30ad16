"""Video classification (plugins/video_classification.py) and the generic Video field (zoo/plugin.py, zoo/video.py):
frames taken at exactly the times asked (a synthetic clip whose every frame has its own grey level), the
tiny random-weight VideoMAE's labels and frames through the zoo, files that are not usable clips refused
with what to do (not a video, audio only, a still picture, 0 seconds, too long, too large, a codec ffmpeg
cannot decode), serve-endpoint, the CLI and the tab's component.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugins.video_classification import FRAME_SIDE, TINY_NUM_FRAMES, TINY_VIDEO_LABELS, VideoClassification
from zoo import video
from zoo.errors import InvalidInput
from zoo.plugin import Limits, Video
from zoo.runner import Zoo
from zoo.settings import Settings

TASK = "video-classification"
ROOT = Path(__file__).resolve().parent.parent
FPS = 10
FRAMES = 20  # 2 seconds


def level(k: int) -> int:
    """The grey level of frame k of the synthetic clip."""
    return 10 + 12 * k


def grey_clip(path: Path, frames: int = FRAMES, size: tuple[int, int] = (64, 48), codec: tuple[str, ...] = ("-c:v", "ffv1")
              ) -> Path:
    """A clip at FPS frames a second whose frame k is one flat grey, level(k); ffv1 is lossless, so frames read back exact."""
    width, height = size
    raw = b"".join(bytes([level(k)]) * (width * height * 3) for k in range(frames))
    subprocess.run([shutil.which("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0", *codec, str(path)],
                   input=raw, check=True, capture_output=True, timeout=60)
    return path


def lavfi(path: Path, source: str, *extra: str) -> Path:
    subprocess.run([shutil.which("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, *extra,
                    str(path)], check=True, capture_output=True, timeout=60)
    return path


@pytest.fixture
def zoo(settings: Settings) -> Zoo:
    return Zoo(settings.replace(tiny=True, plugins=(TASK,)))


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return grey_clip(tmp_path / "grey.mkv")


def _grey(image) -> int:
    pixels = np.asarray(image)
    assert (pixels == pixels.flat[0]).all(), "the frame is not one flat grey"
    return int(pixels.flat[0])


# ------------------------------------------------------------------ sampling: which frames, exactly


def test_sample_times_spread_evenly_over_the_clip() -> None:
    assert video.sample_times(2.0, 4) == [0.25, 0.75, 1.25, 1.75]  # the middle of each quarter
    assert video.sample_times(3.0, 1) == [1.5] and video.sample_times(3.0, 0) == []
    times = video.sample_times(9.7, 16)
    gaps = np.diff(times)
    assert len(times) == 16 and 0 < times[0] and times[-1] < 9.7 and np.allclose(gaps, 9.7 / 16)


def test_frames_at_gives_the_frame_shown_at_each_time(clip: Path) -> None:
    info = video.probe(clip)
    assert (info.duration, info.width, info.height, info.fps, info.codec) == (2.0, 64, 48, 10.0, "ffv1")
    # Frame k shows from k/10 s to (k+1)/10 s; at and past the end, the last frame.
    times = [0.0, 0.05, 0.15, 1.0, 1.42, 1.95, 2.0, 7.0]
    frames = video.frames_at(clip, times)
    assert [f.size for f in frames] == [(64, 48)] * len(times) and all(f.mode == "RGB" for f in frames)
    assert [_grey(f) for f in frames] == [level(k) for k in (0, 0, 1, 10, 14, 19, 19, 19)]


def test_frames_are_scaled_to_fit_and_never_enlarged(tmp_path: Path) -> None:
    wide = lavfi(tmp_path / "wide.mp4", "testsrc=size=640x360:rate=10:duration=1", "-c:v", "libx264",
                 "-pix_fmt", "yuv420p")
    assert video.frames_at(wide, [0.5], max_side=FRAME_SIDE)[0].size == (448, 252)  # aspect ratio kept
    assert video.frames_at(wide, [0.5], max_side=1000)[0].size == (640, 360)


# ------------------------------------------------------------------ the tiny model, through the zoo


def test_the_tiny_builds_are_byte_identical(tmp_path: Path) -> None:
    import hashlib

    from zoo import tiny

    def digests(folder: Path) -> dict[str, str]:
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir() if f.is_file()}

    first, second = tiny.build("video-classification", tmp_path / "a"), tiny.build("video-classification", tmp_path / "b")
    assert digests(first) == digests(second) and "model.safetensors" in digests(first)
    assert "preprocessor_config.json" in digests(first)




def test_declaration_examples_and_output_types() -> None:
    from zoo.testing import check_plugin

    results = check_plugin(VideoClassification)  # the generated test-pattern clip (4 s, 320x240)
    assert results[0]["details"]["resolution"] == "320x240" and results[0]["details"]["duration"] == 4.0
    assert VideoClassification.group == "vision" and VideoClassification.order == 66


def test_the_tiny_model_labels_the_clip_from_the_frames_it_shows(zoo: Zoo, clip: Path) -> None:
    out = zoo.run(TASK, video=str(clip), top_k=3)
    labels, frames, details = out["labels"], out["frames"], out["details"]
    assert len(labels) == 3 and set(labels) <= set(TINY_VIDEO_LABELS)
    assert list(labels.values()) == sorted(labels.values(), reverse=True)
    # num_frames of the model's config (4), the middle of each half second: frames 2, 7, 12 and 17.
    assert details["frames_used"] == TINY_NUM_FRAMES and details["frame_times"] == [0.25, 0.75, 1.25, 1.75]
    assert [caption for _, caption in frames] == ["0.25 s", "0.75 s", "1.25 s", "1.75 s"]
    assert [_grey(image) for image, _ in frames] == [level(k) for k in (2, 7, 12, 17)]
    assert (details["duration"], details["fps"], details["resolution"], details["codec"]) == (2.0, 10.0, "64x48", "ffv1")
    assert details["frames"] is None  # Matroska does not record a stream's frame count (an mp4 does: below)
    assert details["frame_size"] == [64, 48] and details["audio"] is False
    assert "Tiny random-weight model" in details["note"] and details["model"] == "tiny:video-classification"
    everything = zoo.run(TASK, video=str(clip), top_k=50)["labels"]
    assert len(everything) == len(TINY_VIDEO_LABELS) and sum(everything.values()) == pytest.approx(1.0, abs=1e-4)
    assert zoo.run(TASK, video={"path": str(clip)}, top_k=3)["labels"] == labels  # gradio's FileData; same answer
    mp4 = grey_clip(clip.with_suffix(".mp4"), codec=("-c:v", "libx264", "-pix_fmt", "yuv420p"))
    assert video.probe(mp4).frames == FRAMES and video.probe(mp4).codec == "h264"


# ------------------------------------------------------------------ clips that are refused, and why


def _refused(zoo: Zoo, value, *expected: str) -> InvalidInput:
    plugin = zoo.registry.get(TASK)
    with pytest.raises(InvalidInput) as err:
        zoo.check(plugin, {"video": value})
    message = str(err.value)
    for part in expected:
        assert part in message, message
    assert err.value.fix and "/tmp/" not in message.replace("/tmp/model-zoo-samples", ""), message  # no server path
    return err.value


def test_files_that_are_not_clips_are_refused_with_what_to_do(zoo: Zoo, tmp_path: Path, clip: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video at all\n" * 20)
    _refused(zoo, str(text), "notes.mp4", "is not a video: ffprobe found no video stream", "upload a video clip")
    audio = lavfi(tmp_path / "tone.wav", "sine=frequency=440:duration=1")
    _refused(zoo, str(audio), "tone.wav", "is not a video: ffprobe found no video stream", "holds only audio")
    from samples import _image

    picture = tmp_path / "still.png"
    _image().save(picture)
    _refused(zoo, str(picture), "still.png", "is a still picture", "not a video")
    zero = lavfi(tmp_path / "zero.mp4", "testsrc=size=64x48:rate=10", "-t", "0", "-c:v", "libx264")
    _refused(zoo, str(zero), "zero.mp4", "is 0 seconds long: it holds no frames")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    _refused(zoo, str(empty), "empty.webm", "is an empty file (0 bytes)")
    whole = grey_clip(tmp_path / "whole.mp4", codec=("-c:v", "libx264", "-pix_fmt", "yuv420p"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the index (moov) is at the end: unreadable
    _refused(zoo, str(cut), "cut.mp4", "is not a video", "cannot be read")
    _refused(zoo, None, "must be a video clip", "upload a clip")
    _refused(zoo, str(tmp_path / "gone.mp4"), "gone.mp4", "is not a file that exists here")


def test_limits_on_length_size_and_codec(settings: Settings, clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = Zoo(settings.replace(tiny=True, plugins=(TASK,), max_video_seconds=1.5))
    err = _refused(short, str(clip), "grey.mkv", "must be at most 1.5 seconds long, and it is 2.0 s long")
    assert "ZOO_MAX_VIDEO_SECONDS" in err.fix
    small = Zoo(settings.replace(tiny=True, plugins=(TASK,), max_video_side=60))
    err = _refused(small, str(clip), "is 64x48, larger than 60 pixels on a side (ZOO_MAX_VIDEO_SIDE)")
    assert "scale=60:-2" in err.fix and "ZOO_MAX_VIDEO_SIDE" in err.fix
    assert small.check(small.registry.get(TASK), {"video": str(grey_clip(clip.with_name("s.mkv"), size=(60, 40)))})
    # A codec this server's ffmpeg has no decoder for (here: pretend it decodes H.264 only).
    monkeypatch.setattr(video, "decoders", lambda: frozenset({"h264"}))
    err = _refused(short, str(grey_clip(clip.with_name("one.mkv"), frames=10)), "is encoded as `ffv1`",
                   "cannot decode")
    assert "libx264" in err.fix


def test_the_video_limits_are_settings() -> None:
    settings = Settings.from_env({"ZOO_MAX_VIDEO_SECONDS": "12.5", "ZOO_MAX_VIDEO_SIDE": "640"})
    limits = Limits.from_settings(settings)
    assert (limits.max_video_seconds, limits.max_video_side) == (12.5, 640)
    assert (Limits().max_video_seconds, Limits().max_video_side) == (60.0, 1920)
    for env, raw in (("ZOO_MAX_VIDEO_SECONDS", "0"), ("ZOO_MAX_VIDEO_SIDE", "big")):
        with pytest.raises(InvalidInput, match=env):
            Settings.from_env({env: raw})


def test_the_video_field_is_generic(tmp_path: Path) -> None:
    """A third party's plugin gets the same checked path: the field does the probing, not the plugin."""
    from zoo.testing import output_problem

    clip = grey_clip(tmp_path / "any.mkv", frames=5)
    field = Video("clip")
    assert field.check(str(clip), Limits()) == str(clip)
    assert field.check({"path": str(clip), "meta": {"_type": "gradio.FileData"}}, Limits()) == str(clip)
    with pytest.raises(InvalidInput, match="`clip` is 0.5|`clip` must be at most 0.25 seconds long"):
        field.check(str(clip), Limits(max_video_seconds=0.25))
    with pytest.raises(InvalidInput, match="is not a file that exists here") as err:
        field.check({"path": str(tmp_path / "expired.mp4")}, Limits())
    assert "expired.mp4" in str(err.value) and str(tmp_path) not in str(err.value)
    assert output_problem(field, str(clip)) is None
    assert "existing video file" in output_problem(field, str(tmp_path / "missing.mp4"))


# ------------------------------------------------------------------ serve-endpoint, CLI, the tab


def test_serve_endpoint_takes_the_clip_as_the_body(zoo: Zoo, clip: Path) -> None:
    from starlette.testclient import TestClient

    from zoo.endpoint import create_app

    with TestClient(create_app(zoo)) as client:
        reply = client.post(f"/{TASK}", content=clip.read_bytes(), headers={"content-type": "video/x-matroska"})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert len(answer) == 5 and {a["label"] for a in answer} == set(TINY_VIDEO_LABELS)
        assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
        import base64

        two = client.post(f"/{TASK}", json={"inputs": base64.b64encode(clip.read_bytes()).decode(),
                                            "parameters": {"top_k": 2}})
        assert two.status_code == 200 and two.json() == answer[:2]
        bad = client.post(f"/{TASK}", content=b"not a clip at all", headers={"content-type": "video/mp4"})
        assert bad.status_code == 422 and "is not a video: ffprobe found no video stream" in bad.text


def test_the_cli_runs_the_tab(tmp_path: Path, model_cache_dir: Path, clip: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), ZOO_CACHE_DIR=str(model_cache_dir))
    done = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--video", str(clip), "--top-k", "2",
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert len(printed["labels"]) == 2 and len(printed["frames"]) == TINY_NUM_FRAMES
    first, caption = printed["frames"][0]
    assert caption == "0.25 s" and Path(first).is_file()
    bad = subprocess.run([sys.executable, "-m", "zoo", "--tiny", "run", TASK, "--video", str(ROOT / "README.md")],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "is not a video" in bad.stderr and "Traceback" not in bad.stderr


def test_the_tab_has_a_video_input_and_a_generated_example(tmp_path: Path) -> None:
    import gradio as gr

    from zoo.ui import api_snippet, component, sample_examples, sample_video

    box = component(Video("video", label="Clip"), Limits())
    assert isinstance(box, gr.Video) and box.sources == ["upload", "webcam"] and box.label == "Clip"
    shown = component(Video("clip"), Limits(), output=True)
    assert isinstance(shown, gr.Video) and not shown.interactive
    made = sample_video(tmp_path)  # made here, now (the default folder may hold one already)
    assert made == str(tmp_path / "clip.mp4") and video.probe(made).codec == "h264"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # written aside, renamed into place
    path = sample_video()
    info = video.probe(path)
    assert Path(path).name == "clip.mp4" and (info.duration, info.width, info.height) == (4.0, 320, 240)
    assert sample_examples(VideoClassification()) == [{"video": path}]
    assert "video=handle_file('clip.mp4')" in api_snippet(VideoClassification(), {"video": path})


@pytest.mark.app
def test_both_vision_tabs_answer_over_the_gradio_api(app_factory, model_cache_dir: Path, clip: Path,
                                                     tmp_path: Path) -> None:
    """The app's /video_classification takes an uploaded clip (gradio's Video payload, unprocessed) and the frames
    come back captioned; a text file is refused with the field's message; /depth_estimation maps at the input size."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from samples import _image
    from servers import clean_env

    server = app_factory(base_env=clean_env(HF_HUB_OFFLINE="1", ZOO_TINY="1", ZOO_CACHE_DIR=str(model_cache_dir),
                                            ZOO_PLUGINS="depth-estimation,video-classification"))
    client = Client(server.url, verbose=False)
    labels, frames, details = client.predict(video=handle_file(str(clip)), top_k=2, api_name="/video_classification")
    assert len(labels["confidences"]) == 2 and {c["label"] for c in labels["confidences"]} <= set(TINY_VIDEO_LABELS)
    assert [item["caption"] for item in frames] == ["0.25 s", "0.75 s", "1.25 s", "1.75 s"]
    assert [_grey(Image.open(item["image"]["path"] if isinstance(item["image"], dict) else item["image"]))
            for item in frames] == [level(k) for k in (2, 7, 12, 17)]
    assert details["frame_times"] == [0.25, 0.75, 1.25, 1.75] and details["codec"] == "ffv1"
    text = tmp_path / "notes.mp4"
    text.write_text("not a clip\n" * 10)
    with pytest.raises(Exception, match="is not a video: ffprobe found no video stream"):
        client.predict(video=handle_file(str(text)), top_k=2, api_name="/video_classification")
    picture = tmp_path / "in.png"
    _image(90, 50).save(picture)
    depth, raw, info = client.predict(image=handle_file(str(picture)), colormap="gray", raw_format="npy",
                                      api_name="/depth_estimation")
    assert Image.open(depth).size == (90, 50) and np.load(raw).shape == (50, 90) and info["image_size"] == [90, 50]
