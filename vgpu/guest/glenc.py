"""The 3D ring's command encoder (docs/3d-ring.md), compiled from `vgpu.device.glwire`'s table.

One generic encoder for every command: each GL command's parameters are packed by their wire
kind, so no call has an encoder of its own and nothing here can drift from the decoder, which
is generated from the same table. Commands are appended to one batch; `take()` hands the
batch over. It never touches GL and never waits: blobs too large to go inline are handed to
a `data` callback that returns their QXL physical address (the guest driver's `gl_data`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from vgpu.device import glwire

INLINE_BLOB_MAX = 64 << 10
"""Blobs up to this many bytes travel inside the command; larger ones by reference. Inline
saves the copy into the guest's data area for the many small uploads (uniform blocks, small
buffers), while a large texture never fills a batch (4 MiB) or a body (256 KiB)."""

BLOB_NULL = 0xFFFFFFFF
BLOB_BY_REFERENCE = 1 << 31

_FLOAT_TYPES = {"GLfloat", "GLclampf"}
_SIGNED_TYPES = {"GLint", "GLsizei", "GLshort", "GLbyte", "GLfixed"}
_WIDE_SIGNED = {"GLintptr", "GLsizeiptr", "GLint64"}
_FIXED_KINDS = {"word": 1, "wide": 2, "offset": 2, "name": 1, "new_name": 1}


def _word_code(ctype: str) -> str:
    base = ctype.replace("const", "").replace("*", "").strip()
    if base in _FLOAT_TYPES:
        return "f"
    if base in _SIGNED_TYPES:
        return "i"
    return "I"


def _fixed_code(p: glwire.Param) -> str:
    if p.kind == "word":
        return _word_code(p.ctype)
    if p.kind == "wide":
        return "q" if p.ctype in _WIDE_SIGNED else "Q"
    if p.kind == "offset":
        return "Q"
    return "I"  # name, new_name


def _pad(data: bytes | bytearray | memoryview) -> bytes:
    n = len(data)
    return bytes(data) + b"\0" * (-n % 4)


class WireCommand:
    """One command of the table, ready to encode: its fixed leading parameters as one
    struct (header included) and the rest by kind."""

    __slots__ = ("head", "head_words", "name", "opcode", "tail")

    def __init__(self, cmd: glwire.Command) -> None:
        self.name = cmd.name
        self.opcode = cmd.opcode
        codes = []
        i = 0
        for p in cmd.params:
            if p.kind not in _FIXED_KINDS:
                break
            codes.append(_fixed_code(p))
            i += 1
        self.head = struct.Struct("<I" + "".join(codes))
        self.head_words = sum(_FIXED_KINDS[p.kind] for p in cmd.params[:i])
        # The remaining parameters: (kind, struct code for fixed kinds or array elements).
        self.tail = tuple((p.kind, _fixed_code(p) if p.kind in _FIXED_KINDS else
                           _word_code(p.ctype)) for p in cmd.params[i:])

    @property
    def arity(self) -> int:
        return len(self.head.format) - 2 + len(self.tail)


class Encoder:
    """Appends commands to a batch. `data(bytes) -> QXLPHYSICAL` places a large blob."""

    def __init__(self, data: Callable[[bytes], int]) -> None:
        self.batch = bytearray()  # one object for good: hot paths append to it directly
        self.commands = 0  # encoded since the last take(), for callers' counters
        self._data = data
        self._table = {c.name: WireCommand(c) for c in glwire.commands() if not c.excluded}
        self._vgpu = {name: (op, struct.Struct(f"<{1 + words}I"))
                      for name, (op, words) in glwire.VGPU_COMMANDS.items()}

    def __len__(self) -> int:
        return len(self.batch)

    def take(self) -> bytes:
        out = bytes(self.batch)
        self.batch.clear()
        self.commands = 0
        return out

    def vgpu(self, name: str, *words: int, rects: Sequence[int] = ()) -> None:
        """One of vgpu's own commands; `rects` extends PRESENT's body."""
        self.batch += self.encode_vgpu(name, *words, rects=rects)
        self.commands += 1

    def encode_vgpu(self, name: str, *words: int, rects: Sequence[int] = ()) -> bytes:
        op, s = self._vgpu[name]
        extra = len(rects)
        out = s.pack(op | (s.size // 4 - 1 + extra) << 16, *words)
        return out + struct.pack(f"<{extra}I", *rects) if extra else out

    def gl(self, name: str, *args: Any) -> None:
        """A GL command with its C arguments in order (glwire's params: for `new_name`
        the guest's name first; `out`/`ret` as (address, capacity); `names`,
        `new_names` and `array` as sequences or packed bytes; `blob` as bytes or None;
        `strings` as one str/bytes)."""
        w = self._table[name]
        if not w.tail:
            self.batch += w.head.pack(w.opcode | w.head_words << 16, *args)
        else:
            self.batch += self.encode(name, *args)
        self.commands += 1

    def raw(self, command: bytes) -> None:
        """A command encoded earlier by `encode` or `head` (hot paths reuse them)."""
        self.batch += command
        self.commands += 1

    def encode(self, name: str, *args: Any) -> bytes:
        """A GL command's bytes, as `gl` would append them."""
        w = self._table[name]
        nhead = len(w.head.format) - 2
        parts: list[bytes] = []
        words = w.head_words
        for (kind, code), arg in zip(w.tail, args[nhead:], strict=True):
            part = self._encode(kind, code, arg)
            words += len(part) // 4
            parts.append(part)
        if words > glwire.MAX_BODY_WORDS:
            raise ValueError(f"{name}: body of {words} words exceeds the header's limit")
        return w.head.pack(w.opcode | words << 16, *args[:nhead]) + b"".join(parts)

    def head(self, name: str, tail_words: int, *args: Any) -> bytes:
        """The header and fixed leading parameters of a command whose remaining
        parameters (`tail_words` words, e.g. one uniform array) the caller appends."""
        w = self._table[name]
        return w.head.pack(w.opcode | (w.head_words + tail_words) << 16, *args)

    def _encode(self, kind: str, code: str, arg: Any) -> bytes:
        if kind in _FIXED_KINDS:
            return struct.pack("<" + code, arg)
        if kind in ("out", "ret"):
            addr, capacity = arg
            return struct.pack("<QI", addr, capacity)
        if kind in ("names", "new_names", "array"):
            if isinstance(arg, (bytes, bytearray, memoryview)):
                if len(arg) % 4:
                    raise ValueError(f"{kind} of {len(arg)} bytes is not whole words")
                return bytes(arg)
            return struct.pack(f"<{len(arg)}{code}", *arg)
        if kind == "strings" and isinstance(arg, str):
            arg = arg.encode()
        return self._blob(arg)

    def _blob(self, data: bytes | bytearray | memoryview | None) -> bytes:
        if data is None:
            return struct.pack("<I", BLOB_NULL)
        n = len(data)
        if n >= BLOB_BY_REFERENCE:
            raise ValueError(f"a blob of {n} bytes does not fit the 31-bit size field")
        if n <= INLINE_BLOB_MAX:
            return struct.pack("<I", n) + _pad(data)
        return struct.pack("<IQ", BLOB_BY_REFERENCE | n, self._data(bytes(data)))
