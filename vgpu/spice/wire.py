"""Byte-level helpers shared by the SPICE state machines: a bounds-checked reader and packers."""

from __future__ import annotations

import struct

from vgpu.display import Rect


class MalformedMessage(Exception):
    """A client sent bytes that do not form a valid message; the channel closes."""


class Reader:
    """Reads little-endian fields from one message body, never past its end."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self._pos + size > len(self._data):
            raise MalformedMessage(
                f"message too short: need {size} bytes at offset {self._pos}, "
                f"have {len(self._data) - self._pos}"
            )
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += size
        return values

    def u8(self) -> int:
        return self._take("<B")[0]

    def u16(self) -> int:
        return self._take("<H")[0]

    def u32(self) -> int:
        return self._take("<I")[0]

    def i32(self) -> int:
        return self._take("<i")[0]

    def u64(self) -> int:
        return self._take("<Q")[0]

    def i64(self) -> int:
        return self._take("<q")[0]

    def rest(self) -> bytes:
        out = self._data[self._pos :]
        self._pos = len(self._data)
        return out


def pack_rect(rect: Rect) -> bytes:
    """SPICE's Rect is top, left, bottom, right (int32 each)."""
    left, top, right, bottom = rect
    return struct.pack("<iiii", top, left, bottom, right)


def caps_words(bits: list[int] | tuple[int, ...]) -> list[int]:
    """Capability bit numbers to the u32 words the link messages carry."""
    words: list[int] = []
    for bit in bits:
        index = bit // 32
        while len(words) <= index:
            words.append(0)
        words[index] |= 1 << (bit % 32)
    return words


def has_cap(words: tuple[int, ...], bit: int) -> bool:
    index = bit // 32
    return index < len(words) and bool(words[index] >> (bit % 32) & 1)
