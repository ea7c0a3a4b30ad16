"""Inputs the plugin tests share: passages to search, a seeded picture, a huge PNG, and a WAV read back."""

from __future__ import annotations

import wave
from pathlib import Path

PASSAGES = [
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    "A balanced diet includes fruit, vegetables, whole grains and protein.",
    "Volcanoes erupt when magma rises through cracks in the Earth's crust.",
    "The goalkeeper saved a penalty in the last minute of the final.",
    "To reset your password, open Settings and choose 'Forgot password'.",
    "Bees carry pollen from flower to flower, which helps fruit to grow.",
    "The stock market fell sharply after the central bank raised interest rates.",
]


def _image(width: int = 64, height: int = 48):
    """A seeded random RGB picture, the same on every call."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _wav(path: str) -> tuple[int, int, bytes]:
    """(sample rate, frames, raw bytes) of a WAV file."""
    with wave.open(path, "rb") as w:
        return w.getframerate(), w.getnframes(), w.readframes(w.getnframes())


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG declaring width x height, all black: a few hundred KB on disk, gigabytes decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one byte per pixel
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path
