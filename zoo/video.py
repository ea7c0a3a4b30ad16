"""Video helpers for any plugin that takes a clip: inspect it, check it, and take frames out of it.

Like zoo/audio.py, everything goes through the ffmpeg command-line tools in a subprocess:
`probe` asks ffprobe for the first video stream (codec, size, frame rate, duration) without
decoding, `check` holds it against the operator's limits (ZOO_MAX_VIDEO_SECONDS,
ZOO_MAX_VIDEO_SIDE) and says what is wrong with a file that is not a usable clip, and
`frames_at` decodes the frames shown at given times. `sample_times` spreads n times evenly
over a clip. PIL is imported inside the functions, so importing this module is free.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from zoo import helpers
from zoo.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

_INSTALL_FFMPEG = ("install ffmpeg (Debian/Ubuntu: `apt install ffmpeg`; macOS: `brew install ffmpeg`; "
                   "on a Space: add `ffmpeg` to packages.txt)")
#: ffprobe's demuxers for single pictures: a PNG or JPEG has a "video stream" of one frame.
_STILL_IMAGE_FORMATS = re.compile(r"(^|,)(image2|[a-z0-9]+_pipe)(,|$)")
_FORMATS = "mp4, webm, mov, mkv or avi"


class VideoInfo(NamedTuple):
    """What ffprobe says about a file's first video stream (None where it does not say)."""

    duration: float | None  # seconds
    width: int
    height: int
    fps: float | None
    frames: int | None  # frames in the stream, when the container says
    codec: str
    container: str
    has_audio: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready details (for a plugin's output)."""
        return {"duration": None if self.duration is None else round(self.duration, 3),
                "width": self.width, "height": self.height,
                "fps": None if self.fps is None else round(self.fps, 3), "frames": self.frames,
                "codec": self.codec, "container": self.container, "audio": self.has_audio}


def _tool(name: str) -> str:
    return helpers.find(name, _INSTALL_FFMPEG)


def _existing_file(path: str | Path, name: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(name, str(path), "must be an existing video file", "upload the clip again (uploads expire)")
    if p.stat().st_size == 0:
        raise InvalidInput(name, p.name, "is an empty file (0 bytes)", f"upload a clip ({_FORMATS})")
    return p


def _clean(text: str, p: Path) -> str:
    """ffprobe's first line of complaint, without `[demuxer @ 0x...]` and the server-side path."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = re.sub(r"\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*", "", lines[0]) if lines else "no details"
    return line.replace(str(p), p.name)


def _not_a_video(p: Path, name: str, why: str) -> InvalidInput:
    return InvalidInput(name, p.name, f"is not a video: ffprobe found no video stream ({why})",
                        f"upload a video clip ({_FORMATS})")


def _number(*raw: Any) -> float | None:
    for value in raw:
        try:
            x = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and x >= 0:
            return x
    return None


def _rate(raw: Any) -> float | None:
    """A frame rate as ffprobe writes it ("30000/1001"); None for 0/0 or nonsense."""
    try:
        num, _, den = str(raw).partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def probe(path: str | Path, name: str = "video") -> VideoInfo:
    """The first video stream's codec, size, frame rate and duration, read without decoding.

    InvalidInput when ffprobe cannot read the file, finds no video stream (an audio file, a text
    file), finds only a still picture (a PNG, an MP3's cover art), or the clip is 0 seconds long.
    """
    p = _existing_file(path, name)
    cmd = [_tool("ffprobe"), "-v", "error",
           "-show_entries", "stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,"
           "duration:stream_disposition=attached_pic:format=duration,format_name", "-of", "json", str(p)]
    try:
        proc = helpers.run("ffprobe", cmd, _INSTALL_FFMPEG, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidInput(name, p.name, "took more than 60 s to inspect", f"upload a shorter clip ({_FORMATS})") from None
    if proc.returncode != 0:
        raise _not_a_video(p, name, f"it cannot be read: {_clean(proc.stderr, p)}")
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        data = {}
    fmt = data.get("format") or {}
    container = str(fmt.get("format_name", ""))
    streams = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        if streams == [] and _number(fmt.get("duration")) == 0:
            raise _zero_seconds(p, name)
        kinds = sorted({str(s.get("codec_type")) for s in streams if s.get("codec_type")})
        found = ("it holds only " + " and ".join(kinds) if kinds and kinds != ["video"]
                 else "only a cover picture" if kinds else "it holds no streams")
        raise _not_a_video(p, name, found)
    if _STILL_IMAGE_FORMATS.search(container):
        raise InvalidInput(name, p.name, f"is a still picture ({container.split(',')[0]}), not a video",
                           f"upload a video clip ({_FORMATS}); for a picture use an image tab")
    stream = videos[0]
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    frames = _number(stream.get("nb_frames"))
    duration = _number(stream.get("duration"), fmt.get("duration"))
    if duration is None:  # some WebM recordings do not say: the last packet's end does
        duration = _last_packet_end(p)
    info = VideoInfo(duration=duration, width=int(_number(stream.get("width")) or 0),
                     height=int(_number(stream.get("height")) or 0), fps=fps,
                     frames=int(frames) if frames is not None else None, codec=str(stream.get("codec_name", "")),
                     container=container, has_audio=any(s.get("codec_type") == "audio" for s in streams))
    if info.frames == 0 or info.duration == 0:
        raise _zero_seconds(p, name)
    return info


def _zero_seconds(p: Path, name: str) -> InvalidInput:
    return InvalidInput(name, p.name, "is 0 seconds long: it holds no frames",
                        "upload a clip that plays for at least a fraction of a second; the recording may have "
                        "been stopped before it started")


def _last_packet_end(p: Path) -> float | None:
    """The end of the first video stream's last packet, read by demuxing (no decoding); None if unknown."""
    cmd = [_tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time",
           "-of", "csv=p=0", str(p)]
    try:
        proc = helpers.run("ffprobe", cmd, _INSTALL_FFMPEG, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    ends = []
    for line in proc.stdout.splitlines():
        start, _, length = line.partition(",")
        t = _number(start)
        if t is not None:
            ends.append(t + (_number(length.strip(",")) or 0.0))
    return max(ends) if ends else None


@functools.lru_cache(maxsize=1)
def decoders() -> frozenset[str]:
    """The video codecs this server's ffmpeg decodes (`ffmpeg -decoders`), read once."""
    proc = helpers.run("ffmpeg", [_tool("ffmpeg"), "-hide_banner", "-decoders"], _INSTALL_FFMPEG,
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    found = set()
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*V[A-Z.]{5}\s+(\S+)", line)
        if m and m.group(1) != "=":
            found.add(m.group(1))
    return frozenset(found)


def check(info: VideoInfo, *, max_seconds: float | None, max_side: int | None, shown: str = "",
          name: str = "video") -> None:
    """Raise InvalidInput when a probed clip is too long, too large or in a codec ffmpeg cannot decode here."""
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise InvalidInput(name, shown, f"must be at most {max_seconds:g} seconds long, and it is "
                           f"{info.duration:.1f} s long", "trim the clip (e.g. `ffmpeg -i in.mp4 -t "
                           f"{max_seconds:g} -c copy out.mp4`), or have the operator raise ZOO_MAX_VIDEO_SECONDS")
    if max_side and max(info.width, info.height) > max_side:
        raise InvalidInput(name, shown, f"is {info.width}x{info.height}, larger than {max_side} pixels on a side "
                           "(ZOO_MAX_VIDEO_SIDE)", f"scale it down (e.g. `ffmpeg -i in.mp4 -vf scale={max_side}:-2 "
                           "out.mp4`), or have the operator raise ZOO_MAX_VIDEO_SIDE")
    if info.width < 1 or info.height < 1:
        raise InvalidInput(name, shown, "has a video stream without a picture size (damaged, or not a real clip)",
                           f"upload a complete clip ({_FORMATS})")
    known = decoders()
    if known and info.codec not in known:
        raise InvalidInput(name, shown, f"is encoded as `{info.codec or 'unknown'}`, which this server's ffmpeg "
                           "cannot decode", "re-encode it as H.264 (e.g. `ffmpeg -i in.mov -c:v libx264 out.mp4`)")


def sample_times(duration: float, count: int) -> list[float]:
    """`count` times spread evenly over `duration` seconds: the middle of each of `count` equal parts."""
    if count < 1:
        return []
    return [round((i + 0.5) * duration / count, 6) for i in range(count)]


def frames_at(path: str | Path, times: Sequence[float], *, max_side: int | None = None, name: str = "video",
              info: VideoInfo | None = None, timeout: float = 60.0) -> list["Image.Image"]:
    """The RGB frames shown at `times` (seconds), each scaled to fit `max_side` (never enlarged).

    One ffmpeg seek per time (exact: ffmpeg decodes from the keyframe before it). At a constant
    frame rate frame k shows from k/fps to (k+1)/fps; a time at or past the end gives the clip's
    last frame. `info` is the clip's `probe` (probed here when not given). InvalidInput when
    ffmpeg cannot decode a frame.
    """
    from PIL import Image

    p = _existing_file(path, name)
    fps = (info or probe(p, name)).fps
    scale = (["-vf", f"scale='min({max_side},iw)':'min({max_side},ih)':force_original_aspect_ratio=decrease"]
             if max_side else [])
    frames = []
    for t in times:
        # ffmpeg's seek keeps the first frame at or after the time: seek half a frame before the one shown then.
        seek = max(0.0, (math.floor(t * fps + 1e-6) - 0.5) / fps) if fps else max(0.0, t)
        data, stderr = _grab(p, ["-ss", f"{seek:.6f}"], ["-frames:v", "1", *scale], name, timeout)
        if not data:  # past the last frame (durations are rounded): the last frame of the final second
            data, stderr = _grab(p, ["-sseof", "-1"], scale, name, timeout)
            data = data[data.rfind(_PNG_SIGNATURE):] if data else data
        if not data:
            raise InvalidInput(name, p.name, f"has no frame that ffmpeg can decode at {t:.2f} s (damaged or cut "
                               f"short; ffmpeg: {_clean(stderr, p)})", "upload the complete clip; if it plays "
                               "elsewhere, re-encode it (e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`)")
        with Image.open(io.BytesIO(data)) as img:
            frames.append(img.convert("RGB"))
    return frames


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _grab(p: Path, seek: list[str], output: list[str], name: str, timeout: float) -> tuple[bytes, str]:
    """(PNG bytes of the frames ffmpeg decodes after `seek`, its complaint); no bytes when it decodes none."""
    cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "error", *seek, "-i", str(p), "-map", "0:v:0",
           "-an", "-sn", *output, "-f", "image2pipe", "-c:v", "png", "pipe:1"]
    try:
        proc = helpers.run("ffmpeg", cmd, _INSTALL_FFMPEG, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidInput(name, p.name, f"took more than {timeout:.0f} s to decode a frame",
                           "upload a shorter or simpler clip (e.g. H.264 in an mp4)") from None
    return (proc.stdout if proc.returncode == 0 else b""), proc.stderr.decode("utf-8", "replace")


__all__ = ["VideoInfo", "check", "decoders", "frames_at", "probe", "sample_times"]
