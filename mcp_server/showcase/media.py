"""Tiny media samples built in code (no binary files in the repository): a PNG and a WAV."""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from functools import cache


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def red_pixel_png() -> bytes:
    """A valid 1x1 PNG whose only pixel is red (8-bit RGB)."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # width, height, depth, RGB, deflate, ...
    scanline = b"\x00" + bytes((255, 0, 0))  # filter type 0, then one RGB pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(scanline))
        + _png_chunk(b"IEND", b"")
    )


@cache
def beep_wav(frequency: float = 440.0, seconds: float = 0.05, rate: int = 8000) -> bytes:
    """A valid mono 16-bit PCM WAV: a short sine tone."""
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate)))
        for i in range(int(seconds * rate))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()
