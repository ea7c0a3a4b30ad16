"""Audio helpers for any plugin that takes sound: decode, check, chunk, subtitle, score.

Decoding goes through the ffmpeg command-line tool in a subprocess, so every format
ffmpeg reads (wav, mp3, flac, ogg, m4a, webm, ...) arrives as 16 kHz mono float32,
and a file ffmpeg cannot read becomes an InvalidInput that says why and what to do.
numpy is imported inside the functions that need it, so importing this module is free.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence

from zoo import helpers
from zoo.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000  # what Whisper-style speech models expect

# ffmpeg's own words when a file was cut short or is damaged mid-stream. It still
# decodes what it can and exits 0, so without these a half file would pass silently.
_DAMAGE_MARKERS = (
    "corrupt input packet",
    "file ended prematurely",
    "filesize and duration do not match",
    "error while decoding",
    "decode_frame() failed",
    "partial file",
    "invalid new backstep",
)
# A WAV written to a pipe has a placeholder size; ffmpeg then flags its last packet as
# corrupt although nothing is missing. This line tells that case apart.
_STREAMED_WAV = "ignoring maximum wav data size"


class AudioInfo(NamedTuple):
    """What ffprobe says about a file's first audio track (duration None when unknown)."""

    duration: float | None
    sample_rate: int | None
    channels: int | None
    codec: str
    container: str


class Segment(NamedTuple):
    """A piece of transcript with its start and end in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Chunk:
    """A window of samples and where it starts in the whole recording."""

    start: float  # seconds
    end: float  # seconds
    samples: Any  # 1-D float32 numpy array

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


# --------------------------------------------------------------------------- ffmpeg


_INSTALL_FFMPEG = ("install ffmpeg (Debian/Ubuntu: `apt install ffmpeg`; macOS: `brew install ffmpeg`; "
                   "on a Space: add `ffmpeg` to packages.txt)")


def _tool(name: str) -> str:
    """The ffmpeg tool's path; HelperFailed (audio cannot be decoded without it) when it is not installed."""
    return helpers.find(name, _INSTALL_FFMPEG)


def _existing_file(path: str | Path, name: str) -> Path:
    """The path as a Path, after the checks that need no ffmpeg: it exists and is not empty."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(name, str(path), "must be an existing audio file", "upload the file again")
    if p.stat().st_size == 0:
        raise InvalidInput(name, p.name, "is an empty file (0 bytes)",
                           "the upload or recording failed; record again or upload a file with sound in it")
    return p


_BENIGN = ("guessed channel layout", "estimating duration from bitrate", "ignoring maximum wav data size",
           "misdetection possible")


def _clean(line: str, p: Path) -> str:
    """An ffmpeg line without its `[demuxer @ 0x...]` prefix and the server-side path."""
    line = re.sub(r"\[[^\]]* @ 0x[0-9a-fA-F]+\]\s*", "", line.strip())
    return line.replace(str(p), p.name)


def _ffmpeg_reason(stderr: str, p: Path) -> str:
    """The most telling line of ffmpeg's complaint, for the error message."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not any(b in ln.lower() for b in _BENIGN)]
    return _clean(lines[0], p) if lines else "no details"


def _not_audio(p: Path, name: str, stderr: str) -> InvalidInput:
    text = stderr.lower()
    if "matches no streams" in text or "does not contain any stream" in text or "no audio stream" in text:
        return InvalidInput(name, p.name, "has no audio track (it looks like an image, a silent video or another "
                            "kind of file)", "upload a recording: wav, mp3, flac, ogg, m4a or webm")
    return InvalidInput(name, p.name, "cannot be read as audio: it is not an audio file, or it is damaged or cut "
                        f"short (ffmpeg: {_ffmpeg_reason(stderr, p)})",
                        "upload a complete wav, mp3, flac, ogg, m4a or webm file; if it plays elsewhere, "
                        "re-export it (e.g. `ffmpeg -i in.xyz out.wav`)")


def probe(path: str | Path, name: str = "audio") -> AudioInfo:
    """Read the container and first audio track without decoding; InvalidInput if there is none."""
    p = _existing_file(path, name)
    cmd = [_tool("ffprobe"), "-v", "error", "-select_streams", "a:0",
           "-show_entries", "stream=codec_name,sample_rate,channels,duration:format=duration,format_name",
           "-of", "json", str(p)]
    try:
        proc = helpers.run("ffprobe", cmd, _INSTALL_FFMPEG, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidInput(name, p.name, "took more than 60 s to inspect",
                           "upload a shorter or simpler file (e.g. a wav or mp3)") from None
    if proc.returncode != 0:
        raise _not_audio(p, name, proc.stderr)
    try:
        data = json.loads(proc.stdout or "{}")
    except ValueError:
        data = {}
    streams = data.get("streams") or []
    if not streams:
        raise _not_audio(p, name, "no audio stream")
    stream, fmt = streams[0], data.get("format") or {}

    def number(*raw: Any) -> float | None:
        for value in raw:
            try:
                x = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and x >= 0:
                return x
        return None

    rate, channels = number(stream.get("sample_rate")), number(stream.get("channels"))
    return AudioInfo(
        duration=number(stream.get("duration"), fmt.get("duration")),
        sample_rate=int(rate) if rate else None,
        channels=int(channels) if channels else None,
        codec=str(stream.get("codec_name", "")),
        container=str(fmt.get("format_name", "")),
    )


def _too_long(name: str, shown: str, seconds: float | None, max_seconds: float) -> InvalidInput:
    length = f"{seconds:.1f} s long" if seconds is not None else f"longer than {max_seconds:g} s"
    return InvalidInput(name, shown, f"must be at most {max_seconds:g} seconds long, and it is {length}",
                        "trim the recording, or have the operator raise ZOO_MAX_AUDIO_SECONDS")


def check_duration(info: AudioInfo, max_seconds: float | None, shown: str = "", name: str = "audio") -> None:
    """Raise InvalidInput when the probed duration is over the limit (unknown durations pass)."""
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise _too_long(name, shown, info.duration, max_seconds)


def decode(path: str | Path, *, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None,
           name: str = "audio", strict: bool = True) -> "np.ndarray":
    """Decode any file ffmpeg reads to mono float32 at `sample_rate`, checked and length-limited.

    `strict` rejects files that ffmpeg reports as truncated or damaged; with it off they
    decode as far as they go.
    """
    import numpy as np

    p = _existing_file(path, name)
    cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "warning", "-i", str(p),
           "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(sample_rate)]
    if max_seconds is not None:
        # Stop a huge file early: a little past the limit is enough to know it is too long.
        cmd += ["-t", f"{max_seconds + 1:.3f}"]
    cmd += ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    timeout = 120 + (max_seconds or 3600) / 5
    try:
        proc = helpers.run("ffmpeg", cmd, _INSTALL_FFMPEG, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidInput(name, p.name, f"took more than {timeout:.0f} s to decode",
                           "upload a shorter or simpler file (e.g. a wav or mp3)") from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise _not_audio(p, name, stderr)
    samples = np.frombuffer(proc.stdout, dtype=np.float32)
    if samples.size == 0:
        raise InvalidInput(name, p.name, "contains no audio samples (the file is truncated, or holds only a header)",
                           "upload the complete file, or record again")
    lowered = stderr.lower()
    if strict and _STREAMED_WAV not in lowered:
        damage = next((_clean(ln, p) for ln in stderr.splitlines() if any(m in ln.lower() for m in _DAMAGE_MARKERS)),
                      None)
        if damage is not None:
            raise InvalidInput(name, p.name, f"is truncated or damaged (ffmpeg: {damage})",
                               "upload the complete file; if it plays elsewhere, re-export it "
                               "(e.g. `ffmpeg -i in.mp3 out.wav`)")
    if max_seconds is not None and samples.size > max_seconds * sample_rate:
        raise _too_long(name, p.name, None, max_seconds)
    # np.frombuffer gives a read-only view of the bytes; callers may want to edit in place.
    return samples.copy()


def write_wav(path: str | Path, samples: Sequence[float] | "np.ndarray", sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file; returns the path."""
    import wave

    import numpy as np

    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return Path(path)


# --------------------------------------------------------------------------- chunking


def split(samples: "np.ndarray", sample_rate: int = SAMPLE_RATE, window: float = 30.0,
          search: float = 5.0) -> list[Chunk]:
    """Cut audio into contiguous chunks of at most `window` seconds, each cut at the quietest
    moment of the window's last `search` seconds, so words are rarely split in two."""
    import numpy as np

    if window <= 0 or search < 0 or search >= window:
        raise ValueError(f"need 0 <= search < window, got window={window}, search={search}")
    samples = np.asarray(samples, dtype=np.float32)
    total, size = len(samples), int(window * sample_rate)
    frame = max(1, sample_rate // 50)  # 20 ms: finer than a word, coarser than a pitch period
    chunks: list[Chunk] = []
    begin = 0
    while begin < total:
        stop = begin + size
        if stop >= total:
            stop = total
        else:
            lo = max(begin + 1, stop - int(search * sample_rate))
            n = (stop - lo) // frame
            if n > 0:
                energy = np.square(samples[lo:lo + n * frame]).reshape(n, frame).sum(axis=1)
                # The latest of the quietest frames keeps chunks as long as possible.
                quietest = n - 1 - int(np.argmin(energy[::-1]))
                stop = lo + (quietest + 1) * frame
        chunks.append(Chunk(begin / sample_rate, stop / sample_rate, samples[begin:stop]))
        begin = stop
    return chunks


# --------------------------------------------------------------------------- subtitles


def srt_timestamp(seconds: float) -> str:
    """SubRip time `HH:MM:SS,mmm` (negative times clamp to zero)."""
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def to_srt(segments: Iterable[tuple[float, float, str]]) -> str:
    """SubRip subtitles: numbered cues, blank-line separated; empty segments are left out."""
    cues = []
    for start, end, text in segments:
        text = " ".join(str(text).split())
        if not text:
            continue
        end = max(end, start)
        cues.append(f"{len(cues) + 1}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{text}\n")
    return "\n".join(cues)


# --------------------------------------------------------------------------- scoring


def normalise_words(text: str) -> list[str]:
    """Words for scoring: case, accents-as-typed, punctuation and spacing made uniform."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'")  # typographic apostrophe, as Whisper often writes it
    text = re.sub(r"[-\u2013\u2014/]", " ", text)  # hyphenated words score as their parts
    text = re.sub(r"[^\w\s']", "", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str, normalise: bool = True) -> float:
    """(substitutions + deletions + insertions) / reference words, by word-level edit distance.

    With an empty reference it is 0.0 for an empty hypothesis and 1.0 otherwise.
    """
    ref = normalise_words(reference) if normalise else reference.split()
    hyp = normalise_words(hypothesis) if normalise else hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)
