"""Reading WAV headers, including G.711 mu-law (format tag 7), which the stdlib ``wave`` module refuses."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MULAW = 7


@dataclass(frozen=True, slots=True)
class WavInfo:
    format_tag: int
    sample_rate: int
    channels: int
    bits_per_sample: int
    data_bytes: int

    @property
    def duration_ms(self) -> int:
        bytes_per_second = self.sample_rate * self.channels * self.bits_per_sample // 8
        return int(self.data_bytes * 1000 / bytes_per_second) if bytes_per_second else 0

    @property
    def is_telephony(self) -> bool:
        """8 kHz mono G.711 mu-law."""
        return (self.format_tag, self.sample_rate, self.channels, self.bits_per_sample) == (MULAW, 8000, 1, 8)


def inspect_wav(source: bytes | str | Path) -> WavInfo:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos, fmt, size = 12, None, None
    while pos + 8 <= len(data):
        chunk, length = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and length >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, pos + 8)
        elif chunk == b"data":
            size = min(length, len(data) - pos - 8)
            break
        pos += 8 + length + (length & 1)
    if fmt is None or size is None:
        raise ValueError("a WAVE file needs fmt and data chunks")
    tag, channels, rate, _, _, bits = fmt
    return WavInfo(tag, rate, channels, bits, size)
