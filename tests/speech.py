"""Speech made at test time with espeak-ng (and a plain tone), so no audio file is committed to the repo."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

# Plain sentences of eight words or more, in words a small English model knows well.
SENTENCES = (
    "The weather today is sunny with a light breeze from the west.",
    "Please remember to close the window before you leave the house.",
    "My brother bought a new car because his old one broke down.",
    "We are going to the market to buy some fresh bread and milk.",
    "The children played football in the park until it was dark.",
    "She reads a book every evening before she goes to sleep.",
    "The train to London leaves from the station every morning.",
    "Our teacher asked us to write a short story about our summer.",
)


def espeak() -> str:
    """The espeak-ng binary; a missing one fails the test that needs it, with the fix."""
    path = shutil.which("espeak-ng")
    assert path is not None, "espeak-ng is not installed: apt install espeak-ng"
    return path


def synthesise(text: str, path: Path, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Speak `text` into a WAV file (espeak-ng's native 22.05 kHz mono) and return its path."""
    subprocess.run([espeak(), "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    assert path.stat().st_size > 1000, f"espeak-ng wrote no audio for {text!r}"
    return path


def sentences_with_pauses(texts: list[str] | tuple[str, ...], path: Path, pause: float = 1.0,
                          sample_rate: int = 16_000) -> tuple[Path, list[tuple[float, float, str]]]:
    """Speak each text, join them with `pause` seconds of silence into one 16 kHz WAV.

    Returns the path and (start, end, text) of every sentence in the joined file.
    """
    import numpy as np

    from zoo import audio

    parts, spans, t = [], [], 0.0
    silence = np.zeros(int(pause * sample_rate), dtype=np.float32)
    for i, text in enumerate(texts):
        wav = synthesise(text, path.with_name(f"{path.stem}-part{i}.wav"))
        samples = audio.decode(wav, sample_rate=sample_rate)
        parts += [samples, silence]
        spans.append((t, t + len(samples) / sample_rate, text))
        t += (len(samples) + len(silence)) / sample_rate
    audio.write_wav(path, np.concatenate(parts), sample_rate)
    return path, spans


def write_wav(path: Path, seconds: float = 1.0) -> Path:
    """A quiet 440 Hz tone, 16 kHz mono, written with the standard library."""
    import math
    import struct

    rate = 16000
    frames = b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path
