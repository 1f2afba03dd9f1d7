"""spice-server record files ("SPICE_REPLAY 1"): reading, writing, replay and recording.

spice-server writes such a file when SPICE_WORKER_RECORD_FILENAME is set: every
QXL command its worker takes from the device ring and every request the device
makes of the worker, in order. `docs/spice-replay-format.txt` describes the
format; this module is the one place that knows it, in both directions:

- `read_events(path)` streams a file (plain or xz) as `CommandEvent`s, holding
  the typed commands of `vgpu.device.commands`, and `WorkerEvent`s, holding a
  `WorkerMessage` (and the primary surface's data for CREATE_PRIMARY_SURFACE).
  `iter_events(stream)` does the same for an open uncompressed stream.
- `RecordWriter` writes the same format from the same values, so the real
  spice-server's `spice_replay_next_cmd` can read what our guests send.
- `Recorder(path).attach(device)` records a running device's session (a device
  observer; `vgpu serve --record FILE`).
- `ReplayGuest(driver).feed(event)` plays events as a guest through a
  `GuestDriver`: commands built in guest memory and pushed on their ring, worker
  messages as the IO port writes behind them. `replay(path, backend)` does it
  all on one thread with a new device; `vgpu replay FILE [--frame-out PNG]` is
  its command line.

The file is untrusted input: every count and size in it is checked against a
named limit before anything is allocated or read, and anything unexpected
raises `RecordFormatError` carrying the line number.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import lzma
import os
import queue
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from vgpu.device.abi import Layout, lib
from vgpu.device.backend import DisplayBackend
from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Brush,
    Command,
    Composite,
    CompressedImage,
    Copy,
    CopyBits,
    CursorCmd,
    CursorShapeData,
    Drawable,
    DrawOp,
    Fill,
    Image,
    ImageDescriptor,
    Invers,
    LineAttr,
    MessageCmd,
    Nop,
    Opaque,
    Palette,
    PatternBrush,
    QMask,
    QPoint,
    QRect,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceCmd,
    SurfaceCreate,
    SurfaceImage,
    Text,
    Transparent,
    UpdateCmd,
    Whiteness,
)
from vgpu.device.device import Device, DeviceObserver, PrimaryCreate
from vgpu.device.inprocess import InProcessAttachment
from vgpu.device.layouts import TRANSFORM
from vgpu.device.memory import GuestBug, GuestMemory
from vgpu.device.parser import decode_glyphs, decode_path, decode_rects, decode_transform
from vgpu.guest.alloc import OutOfMemory
from vgpu.guest.builders import (
    DRAW_TYPES,
    encode_glyphs,
    encode_path,
    encode_rects,
    encode_transform,
)
from vgpu.guest.driver import DeviceError, GuestDriver

if TYPE_CHECKING:
    from vgpu.render.gl import Renderer

log = logging.getLogger(__name__)

# --- limits ------------------------------------------------------------------------

# The longest line spice-server writes is a rect line (~70 bytes); anything much
# longer is not this format, and reading it whole would let a file exhaust memory.
MAX_LINE_BYTES = 1024
# No blob (surface data, bitmap, chunk) can be larger than a QXL BAR: QEMU's
# largest VRAM BAR is 256 MiB, and a surface or image lives inside one.
MAX_BLOB_BYTES = 256 << 20
# All blobs of one record together: one command references memory inside the
# same BARs, so it cannot carry more than one BAR's worth either.
MAX_RECORD_BYTES = 256 << 20
# Chunk chains: a guest splits data at page granularity at the finest, and
# 256 MiB / 4 KiB = 65536 chunks.
MAX_CHUNKS = 1 << 16
# The widest paletted bitmap format is 8 bits per pixel: 256 entries.
MAX_PALETTE_ENTRIES = 256

HEADER = b"SPICE_REPLAY 1"
_READ_SIZE = 1 << 16
# Blobs are read in pieces of at most this: a file that announces a large blob and then
# ends does not make one read allocate all of it.
_BLOB_PIECE = 1 << 24
_XZ_MAGIC = b"\xfd7zXZ\x00"


class WorkerMessage(IntEnum):
    """spice-server's RED_WORKER_MESSAGE_* (red-worker.h): the TYPE of a WHAT=1 event.

    Numbered by position in spice-server's enum, which it keeps append-only
    because record files store these numbers."""

    NOP = 0
    UPDATE = 1
    WAKEUP = 2
    OOM = 3
    READY = 4
    DISPLAY_CONNECT_DEPRECATED = 5
    DISPLAY_DISCONNECT_DEPRECATED = 6
    DISPLAY_MIGRATE_DEPRECATED = 7
    START = 8
    STOP = 9
    CURSOR_CONNECT_DEPRECATED = 10
    CURSOR_DISCONNECT_DEPRECATED = 11
    CURSOR_MIGRATE_DEPRECATED = 12
    SET_COMPRESSION = 13
    SET_STREAMING_VIDEO = 14
    SET_MOUSE_MODE = 15
    ADD_MEMSLOT = 16
    DEL_MEMSLOT = 17
    RESET_MEMSLOTS = 18
    DESTROY_SURFACES = 19
    CREATE_PRIMARY_SURFACE = 20
    DESTROY_PRIMARY_SURFACE = 21
    RESET_CURSOR = 22
    RESET_IMAGE_CACHE = 23
    DESTROY_SURFACE_WAIT = 24
    LOADVM_COMMANDS = 25
    UPDATE_ASYNC = 26
    ADD_MEMSLOT_ASYNC = 27
    DESTROY_SURFACES_ASYNC = 28
    CREATE_PRIMARY_SURFACE_ASYNC = 29
    DESTROY_PRIMARY_SURFACE_ASYNC = 30
    DESTROY_SURFACE_WAIT_ASYNC = 31
    FLUSH_SURFACES_ASYNC = 32
    DISPLAY_CHANNEL_CREATE = 33
    CURSOR_CHANNEL_CREATE = 34
    MONITORS_CONFIG_ASYNC = 35
    DRIVER_UNLOAD = 36
    GL_SCANOUT = 37
    GL_DRAW_ASYNC = 38
    SET_VIDEO_CODECS = 39
    CLOSE_WORKER = 40


# The messages whose record carries the primary surface's parameters and memory.
_PRIMARY_MESSAGES = (WorkerMessage.CREATE_PRIMARY_SURFACE,
                     WorkerMessage.CREATE_PRIMARY_SURFACE_ASYNC)


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrimarySurface:
    """QXLDevSurfaceCreate as recorded, with the primary's memory at creation."""

    width: int
    height: int
    stride: int  # negative: bottom-up (the first stored row is the bottom screen row)
    format: int
    position: int
    mouse_mode: int
    flags: int
    type: int
    data: bytes  # abs(stride) * height bytes in memory order, or b"" when none was recorded


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A QXL command the worker took from a ring (WHAT=0)."""

    line: int
    counter: int
    timestamp: int  # CLOCK_MONOTONIC nanoseconds
    command: Command  # release_id is 0: the file does not record it
    surface_data: bytes | None = None  # a SurfaceCmd CREATE's KEEP_DATA content
    compat: bool = False  # a QXLCompatDrawable (mapped onto Drawable's fields)


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A request the device made of the worker (WHAT=1)."""

    line: int
    counter: int
    timestamp: int
    message: WorkerMessage
    primary: PrimarySurface | None = None  # set for CREATE_PRIMARY_SURFACE(_ASYNC)


Event = CommandEvent | WorkerEvent


class RecordFormatError(ValueError):
    """The file is not a well-formed record; `line` is where reading stopped (1-based)."""

    def __init__(self, name: str, line: int, reason: str):
        super().__init__(f"{name}:{line}: {reason}")
        self.name = name
        self.line = line
        self.reason = reason


# --- binary payloads inside blobs (layouts of qxl_dev.h) -----------------------------
# Clip rects, paths, glyph strings and transforms: encoded by the guest's builders
# (encode_*) and decoded by the device parser's functions (decode_*, which raise GuestBug
# for malformed data).

_FIXED = Layout("QXLPointFix", ["x"]).struct  # one QXLFIXED (28.4), as in a line style


# --- reading ----------------------------------------------------------------------------

# (lowest, highest, added to negatives): spice-server prints most fields with %d, so an
# unsigned 32-bit value with its top bit set appears negative and is reinterpreted.
_Kind = tuple[int, int, int]
U8: _Kind = (0, 0xFF, 0)
U16: _Kind = (0, 0xFFFF, 0)
I16: _Kind = (-0x8000, 0x7FFF, 0)
I32: _Kind = (-0x8000_0000, 0x7FFF_FFFF, 0)
U32: _Kind = (-0x8000_0000, 0xFFFF_FFFF, 1 << 32)
U64: _Kind = (0, (1 << 64) - 1, 0)
BOOL: _Kind = (0, 1, 0)
SIZE: _Kind = (0, (1 << 63) - 1, 0)

_MAX_DIGITS = 21
"""A sign and 20 digits: every 64-bit value, and no more for int() to chew on."""


class _Input:
    """A byte stream read as LF-terminated lines with embedded blobs, counting lines."""

    def __init__(self, raw: BinaryIO, name: str):
        self._raw = raw
        self.name = name
        self._buf = b""
        self._pos = 0
        self.line = 1  # the line the next byte belongs to
        self.token_line = 1  # where the item being parsed started, for errors

    def error(self, reason: str) -> RecordFormatError:
        return RecordFormatError(self.name, self.token_line, reason)

    def _more(self) -> bool:
        data = self._raw.read(_READ_SIZE)
        if not data:
            return False
        self._buf = self._buf[self._pos:] + data
        self._pos = 0
        return True

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._more()

    def read_until(self, delim: bytes, what: bytes) -> bytes:
        """The bytes up to `delim` (dropped); `what` names the item in errors."""
        self.token_line = self.line
        while True:
            end = min(len(self._buf), self._pos + MAX_LINE_BYTES + 1)
            i = self._buf.find(delim, self._pos, end)
            if i >= 0:
                out = self._buf[self._pos:i]
                self._pos = i + 1
                if delim == b"\n":
                    self.line += 1
                return out
            if len(self._buf) - self._pos > MAX_LINE_BYTES:
                raise self.error(f"{what.decode()} longer than {MAX_LINE_BYTES} bytes")
            if not self._more():
                raise self.error(f"unexpected end of file while reading {what.decode()}")

    def read_exact(self, n: int) -> bytes:
        have = len(self._buf) - self._pos
        if have >= n:
            out = self._buf[self._pos:self._pos + n]
            self._pos += n
        else:
            parts = [self._buf[self._pos:]]
            self._buf, self._pos = b"", 0
            while have < n:
                data = self._raw.read(min(n - have, _BLOB_PIECE))
                if not data:
                    raise self.error(f"unexpected end of file inside a {n}-byte blob")
                parts.append(data)
                have += len(data)
            out = b"".join(parts)
        self.line += out.count(b"\n")
        return out


class _Reader:
    def __init__(self, inp: _Input):
        self.inp = inp
        self.record_bytes = 0  # blob bytes in the current record, against MAX_RECORD_BYTES

    # -- tokens --

    def error(self, reason: str) -> RecordFormatError:
        return self.inp.error(reason)

    def num(self, token: bytes, kind: _Kind, name: bytes) -> int:
        # isdigit on bytes is ASCII-only: int() alone would also take spaces, "+" and "_"
        if not (token.isdigit() or (token[:1] == b"-" and token[1:].isdigit())) \
                or len(token) > _MAX_DIGITS:
            raise self.error(f"{name.decode()}: {token[:40]!r} is not a decimal number")
        value = int(token)
        lo, hi, wrap = kind
        if not lo <= value <= hi:
            raise self.error(f"{name.decode()}: {value} is out of range [{lo}, {hi}]")
        return value + wrap if value < 0 else value

    def fields(self, key: bytes, *kinds: _Kind) -> list[int]:
        """A line `KEY N...`; KEY may contain spaces ("rect bbox")."""
        line = self.inp.read_until(b"\n", key)
        n = len(key)
        if line[n : n + 1] != b" " or not line.startswith(key):
            raise self.error(f"expected '{key.decode()} ...', found {line[:60]!r}")
        tokens = line[n + 1 :].split(b" ")
        if len(tokens) != len(kinds):
            raise self.error(f"'{key.decode()}' takes {len(kinds)} numbers, found {len(tokens)}")
        return [self.num(t, k, key) for t, k in zip(tokens, kinds, strict=True)]

    def field(self, key: bytes, kind: _Kind) -> int:
        return self.fields(key, kind)[0]

    def bare(self, *kinds: _Kind) -> list[int]:
        line = self.inp.read_until(b"\n", b"line")
        tokens = line.split(b" ")
        if len(tokens) != len(kinds):
            raise self.error(f"expected {len(kinds)} numbers, found {line[:60]!r}")
        return [self.num(t, k, b"value") for t, k in zip(tokens, kinds, strict=True)]

    def keyword(self, word: bytes) -> None:
        line = self.inp.read_until(b"\n", word)
        if line != word:
            raise self.error(f"expected '{word.decode()}', found {line[:60]!r}")

    def blob(self, name: bytes) -> bytes:
        header = self.inp.read_until(b":", b"blob header " + name)
        tokens = header.split(b" ")
        if len(tokens) != 4 or tokens[0] != b"binary" or tokens[2] != name:
            raise self.error(f"expected 'binary 0 {name.decode()} SIZE:', found {header[:60]!r}")
        zipped = self.num(tokens[1], BOOL, b"binary")
        size = self.num(tokens[3], SIZE, b"binary size")
        if size > MAX_BLOB_BYTES:
            raise self.error(f"blob '{name.decode()}' of {size} bytes exceeds {MAX_BLOB_BYTES}")
        self.record_bytes += size
        if self.record_bytes > MAX_RECORD_BYTES:
            raise self.error(f"record holds more than {MAX_RECORD_BYTES} bytes of blobs")
        if zipped:
            # spice-server's zlib mode (compiled out of released builds): "ZSIZE:" + deflate
            zsize = self.num(self.inp.read_until(b":", b"compressed size"), SIZE,
                             b"zlib size")
            if zsize > MAX_BLOB_BYTES:
                raise self.error(f"compressed blob of {zsize} bytes exceeds {MAX_BLOB_BYTES}")
            packed = self.inp.read_exact(zsize)
            try:
                data = zlib.decompressobj().decompress(packed, size + 1)
            except zlib.error as exc:
                raise self.error(f"blob '{name.decode()}': bad zlib data ({exc})") from None
            if len(data) != size:
                raise self.error(f"blob '{name.decode()}' inflates to {len(data)} bytes, "
                                 f"not {size}")
        else:
            data = self.inp.read_exact(size)
        if self.inp.read_exact(1) != b"\n":
            raise self.error(f"blob '{name.decode()}' is not followed by a line end")
        return data

    def chunks(self, name: bytes) -> bytes:
        count, total = self.fields(b"data_chunks", SIZE, SIZE)
        if count >= MAX_CHUNKS:
            raise self.error(f"{count + 1} chunks exceed the limit of {MAX_CHUNKS}")
        if total > MAX_BLOB_BYTES:
            raise self.error(f"chunk list of {total} bytes exceeds {MAX_BLOB_BYTES}")
        parts = [self.blob(name) for _ in range(count + 1)]
        data = b"".join(parts)
        if len(data) != total:
            raise self.error(f"chunks '{name.decode()}' hold {len(data)} bytes, "
                             f"their header says {total}")
        return data

    def payload(self, decode, *args):
        try:
            return decode(*args)
        except GuestBug as exc:
            raise self.error(str(exc)) from None

    # -- shared pieces --

    def rect(self, name: bytes) -> QRect:
        return QRect(*self.fields(b"rect " + name, I32, I32, I32, I32))

    def point(self) -> QPoint:
        return QPoint(*self.fields(b"point", I32, I32))

    def image(self) -> Image | None:
        if not self.field(b"image", BOOL):
            return None
        desc = ImageDescriptor(
            id=self.field(b"descriptor.id", U64),
            type=self.field(b"descriptor.type", U8),
            flags=self.field(b"descriptor.flags", U8),
            width=self.field(b"descriptor.width", U32),
            height=self.field(b"descriptor.height", U32),
        )
        if desc.type == lib.SPICE_IMAGE_TYPE_BITMAP:
            fmt = self.field(b"bitmap.format", U8)
            flags = self.field(b"bitmap.flags", U8)
            width = self.field(b"bitmap.x", U32)
            height = self.field(b"bitmap.y", U32)
            stride = self.field(b"bitmap.stride", U32)
            palette = None
            if self.field(b"has_palette", BOOL):
                n = self.field(b"qp.num_ents", U16)
                if n > MAX_PALETTE_ENTRIES:
                    raise self.error(f"palette of {n} entries exceeds {MAX_PALETTE_ENTRIES}")
                unique = self.field(b"unique", U64)
                palette = Palette(unique, tuple(self.field(b"ents", U32) for _ in range(n)))
            size = height * stride
            if size > MAX_BLOB_BYTES:
                raise self.error(f"bitmap of {height} rows x {stride} bytes is too large")
            if flags & lib.QXL_BITMAP_DIRECT:
                data = self.blob(b"image_data_flat")
            else:
                data = self.chunks(b"bitmap.data")
            if len(data) != size:
                raise self.error(f"bitmap data holds {len(data)} bytes, "
                                 f"{height} rows x {stride} need {size}")
            return BitmapImage(desc, fmt, flags, width, height, stride, palette, data)
        if desc.type == lib.SPICE_IMAGE_TYPE_SURFACE:
            return SurfaceImage(desc, self.field(b"surface_image.surface_id", U32))
        if desc.type == lib.SPICE_IMAGE_TYPE_QUIC:
            size = self.field(b"quic.data_size", U32)
            data = self.chunks(b"quic.data")
            if len(data) != size:
                raise self.error(f"QUIC data holds {len(data)} bytes, its size says {size}")
            return CompressedImage(desc, data)
        raise self.error(f"image type {desc.type} cannot be in a record "
                         "(spice-server records BITMAP, QUIC and SURFACE images only)")

    def source(self, what: str) -> Image:
        img = self.image()
        if img is None:
            raise self.error(f"{what} without a source image")
        return img

    def brush(self) -> Brush:
        kind = self.field(b"type", U32)
        if kind == lib.SPICE_BRUSH_TYPE_NONE:
            return None
        if kind == lib.SPICE_BRUSH_TYPE_SOLID:
            return SolidBrush(self.field(b"u.color", U32))
        if kind == lib.SPICE_BRUSH_TYPE_PATTERN:
            pat = self.source("pattern brush")
            return PatternBrush(pat, self.point())
        raise self.error(f"unknown brush type {kind}")

    def qmask(self) -> QMask:
        flags = self.field(b"flags", U8)
        pos = self.point()
        return QMask(flags, pos, self.image())

    # -- draw operations --

    def draw_op(self, kind: int, compat: bool) -> DrawOp:
        if kind == lib.QXL_DRAW_NOP:
            return Nop()
        if kind == lib.QXL_DRAW_FILL:
            brush = self.brush()
            return Fill(brush, self.field(b"rop_descriptor", U16), self.qmask())
        if kind == lib.QXL_DRAW_OPAQUE:
            src = self.source("OPAQUE")
            area = self.rect(b"src_area")
            brush = self.brush()
            rop = self.field(b"rop_descriptor", U16)
            return Opaque(src, area, brush, rop, self.field(b"scale_mode", U8), self.qmask())
        if kind in (lib.QXL_DRAW_COPY, lib.QXL_DRAW_BLEND):
            cls = Copy if kind == lib.QXL_DRAW_COPY else Blend
            src = self.source(cls.__name__.upper())
            area = self.rect(b"src_area")
            rop = self.field(b"rop_descriptor", U16)
            return cls(src, area, rop, self.field(b"scale_mode", U8), self.qmask())
        if kind == lib.QXL_COPY_BITS:
            return CopyBits(self.point())
        if kind == lib.QXL_DRAW_BLACKNESS:
            return Blackness(self.qmask())
        if kind == lib.QXL_DRAW_WHITENESS:
            return Whiteness(self.qmask())
        if kind == lib.QXL_DRAW_INVERS:
            return Invers(self.qmask())
        if kind == lib.QXL_DRAW_ROP3:
            src = self.source("ROP3")
            area = self.rect(b"src_area")
            brush = self.brush()
            rop3 = self.field(b"rop3", U8)
            return Rop3(src, area, brush, rop3, self.field(b"scale_mode", U8), self.qmask())
        if kind == lib.QXL_DRAW_STROKE:
            path = self.payload(decode_path, self.chunks(b"path"))
            flags = self.field(b"attr.flags", U8)
            style: tuple[int, ...] = ()
            if flags & lib.SPICE_LINE_FLAGS_STYLED:
                nseg = self.field(b"attr.style_nseg", U8)
                data = self.blob(b"style")
                if len(data) != nseg * _FIXED.size:
                    raise self.error(f"style holds {len(data)} bytes for {nseg} segments")
                style = tuple(v for (v,) in _FIXED.iter_unpack(data))
            brush = self.brush()
            fore = self.field(b"fore_mode", U16)
            return Stroke(path, LineAttr(flags, style), brush, fore, self.field(b"back_mode", U16))
        if kind == lib.QXL_DRAW_TEXT:
            size = self.field(b"data_size", U32)
            length = self.field(b"length", U16)
            flags = self.field(b"flags", U16)
            data = self.chunks(b"string")
            if len(data) != size:
                raise self.error(f"string holds {len(data)} bytes, its data_size says {size}")
            string = self.payload(decode_glyphs, flags, length, data)
            back_area = self.rect(b"back_area")
            fore_brush = self.brush()
            back_brush = self.brush()
            fore = self.field(b"fore_mode", U16)
            return Text(string, back_area, fore_brush, back_brush, fore,
                        self.field(b"back_mode", U16))
        if kind == lib.QXL_DRAW_TRANSPARENT:
            src = self.source("TRANSPARENT")
            area = self.rect(b"src_area")
            color = self.field(b"src_color", U32)
            return Transparent(src, area, color, self.field(b"true_color", U32))
        if kind == lib.QXL_DRAW_ALPHA_BLEND:
            alpha_flags = 0 if compat else self.field(b"alpha_flags", U16)
            alpha = self.field(b"alpha", U8)
            src = self.source("ALPHA_BLEND")
            return AlphaBlend(alpha_flags, alpha, src, self.rect(b"src_area"))
        if kind == lib.QXL_DRAW_COMPOSITE and not compat:
            flags = self.field(b"flags", U32)
            src = self.source("COMPOSITE")
            src_transform = self.transform(b"src_transform")
            mask = self.image() if self.field(b"mask", BOOL) else None
            mask_transform = self.transform(b"mask_transform")
            src_origin = QPoint(*self.fields(b"src_origin", I16, I16))
            mask_origin = QPoint(*self.fields(b"mask_origin", I16, I16))
            return Composite(flags, src, mask, src_transform, mask_transform, src_origin,
                             mask_origin)
        raise self.error(f"unknown draw type {kind}")

    def transform(self, key: bytes) -> tuple[int, ...] | None:
        if not self.field(key, BOOL):
            return None
        data = self.blob(b"transform")
        if len(data) != TRANSFORM.size:
            raise self.error(f"transform of {len(data)} bytes, not {TRANSFORM.size}")
        return decode_transform(data)

    # -- commands --

    def drawable(self) -> tuple[Drawable, bool]:
        self.keyword(b"drawable")
        bbox = self.rect(b"bbox")
        clip_type = self.field(b"type", U32)
        clip: tuple[QRect, ...] | None = None
        if clip_type == lib.SPICE_CLIP_TYPE_RECTS:
            n = self.field(b"num_rects", U32)
            clip = self.payload(decode_rects, n, self.chunks(b"clip_rects"))
        elif clip_type != lib.SPICE_CLIP_TYPE_NONE:
            raise self.error(f"unknown clip type {clip_type}")
        effect = self.field(b"effect", U8)
        mm_time = self.field(b"mm_time", U32)
        line = self.inp.read_until(b"\n", b"drawable")
        key, _, value = line.partition(b" ")
        compat = key == b"bitmap_offset"
        if compat:
            # QXLCompatDrawable: no surfaces; its bitmap fields stand in for self_bitmap's
            self_bitmap = self.num(value, U32, b"bitmap_offset")
            self_area = self.rect(b"bitmap_area")
            surface_id, dests = 0, (-1, -1, -1)
            rects = (QRect(0, 0, 0, 0),) * 3
        elif key == b"self_bitmap":
            self_bitmap = self.num(value, U8, b"self_bitmap")
            self_area = self.rect(b"self_bitmap_area")
            surface_id = self.field(b"surface_id", U32)
            pairs = [(self.field(b"surfaces_dest", I32), self.rect(b"surfaces_rects"))
                     for _ in range(3)]
            dests = (pairs[0][0], pairs[1][0], pairs[2][0])
            rects = (pairs[0][1], pairs[1][1], pairs[2][1])
        else:
            raise self.error(f"expected 'self_bitmap' or 'bitmap_offset', found {line[:60]!r}")
        op = self.draw_op(self.field(b"type", U8), compat)
        return Drawable(bbox=bbox, clip=clip, effect=effect, mm_time=mm_time,
                        self_bitmap=self_bitmap, self_bitmap_area=self_area,
                        surface_id=surface_id, surfaces_dest=dests, surfaces_rects=rects,
                        op=op), compat

    def update(self) -> UpdateCmd:
        self.keyword(b"update")
        area = self.rect(b"area")
        update_id = self.field(b"update_id", U32)
        return UpdateCmd(0, area, update_id, self.field(b"surface_id", U32))

    def surface(self) -> tuple[SurfaceCmd, bytes | None]:
        self.keyword(b"surface_cmd")
        surface_id = self.field(b"surface_id", U32)
        kind = self.field(b"type", U8)
        flags = self.field(b"flags", U32)
        if kind == lib.QXL_SURFACE_CMD_DESTROY:
            return SurfaceCmd(0, surface_id, kind, flags, None), None
        if kind != lib.QXL_SURFACE_CMD_CREATE:
            raise self.error(f"unknown surface command type {kind}")
        fmt = self.field(b"u.surface_create.format", U32)
        width = self.field(b"u.surface_create.width", U32)
        height = self.field(b"u.surface_create.height", U32)
        stride = self.field(b"u.surface_create.stride", I32)
        length = height * abs(stride)
        if length > MAX_BLOB_BYTES:
            raise self.error(f"surface of {height} rows x {abs(stride)} bytes is too large")
        data = None
        if flags & lib.QXL_SURF_FLAG_KEEP_DATA:
            data = self.blob(b"data")
            if len(data) != length:
                raise self.error(f"surface data holds {len(data)} bytes, not {length}")
        create = SurfaceCreate(fmt, width, height, stride, 0, length)
        return SurfaceCmd(0, surface_id, kind, flags, create), data

    def cursor(self) -> CursorCmd:
        self.keyword(b"cursor_cmd")
        kind = self.field(b"type", U8)
        position, visible, shape, trail = QPoint(0, 0), False, None, (0, 0)
        if kind == lib.QXL_CURSOR_SET:
            position = QPoint(*self.fields(b"point16", I16, I16))
            visible = bool(self.field(b"u.set.visible", U8))
            unique = self.field(b"header.unique", U64)
            header = [self.field(b"header." + k, U16)
                      for k in (b"type", b"width", b"height", b"hot_spot_x", b"hot_spot_y")]
            size = self.field(b"data_size", U32)
            data = self.chunks(b"cursor")
            if len(data) != size:
                raise self.error(f"cursor data holds {len(data)} bytes, its data_size says {size}")
            shape = CursorShapeData(unique, *header, data)
        elif kind == lib.QXL_CURSOR_MOVE:
            position = QPoint(*self.fields(b"point16", I16, I16))
        elif kind == lib.QXL_CURSOR_TRAIL:
            trail = (self.field(b"u.trail.length", U16), self.field(b"u.trail.frequency", U16))
        elif kind != lib.QXL_CURSOR_HIDE:
            raise self.error(f"unknown cursor command type {kind}")
        return CursorCmd(0, kind, position, visible, shape, *trail)

    def primary(self) -> PrimarySurface:
        width, height, stride, fmt = self.bare(U32, U32, I32, U32)
        position, mouse_mode, flags, kind = self.bare(U32, U32, U32, U32)
        if height * abs(stride) > MAX_BLOB_BYTES:
            raise self.error(f"primary of {height} rows x {abs(stride)} bytes is too large")
        data = self.blob(b"data")
        if data and len(data) != height * abs(stride):
            raise self.error(f"primary data holds {len(data)} bytes, "
                             f"not {height} x {abs(stride)}")
        return PrimarySurface(width, height, stride, fmt, position, mouse_mode, flags, kind, data)

    def event(self) -> Event:
        self.record_bytes = 0
        counter, what, kind, timestamp = self.fields(b"event", U32, I32, U32, U64)
        line = self.inp.token_line
        if what == 1:
            try:
                message = WorkerMessage(kind)
            except ValueError:
                raise self.error(f"unknown worker message {kind}") from None
            primary = self.primary() if message in _PRIMARY_MESSAGES else None
            return WorkerEvent(line, counter, timestamp, message, primary)
        if what != 0:
            raise self.error(f"unknown event kind {what} (0 command, 1 worker message)")
        surface_data = None
        compat = False
        cmd: Command
        if kind == lib.QXL_CMD_DRAW:
            cmd, compat = self.drawable()
        elif kind == lib.QXL_CMD_UPDATE:
            cmd = self.update()
        elif kind == lib.QXL_CMD_CURSOR:
            cmd = self.cursor()
        elif kind == lib.QXL_CMD_MESSAGE:
            cmd = MessageCmd(0, self.blob(b"message"))
        elif kind == lib.QXL_CMD_SURFACE:
            cmd, surface_data = self.surface()
        else:
            raise self.error(f"unknown QXL command type {kind}")
        return CommandEvent(line, counter, timestamp, cmd, surface_data, compat)


def _open(path: Path) -> BinaryIO:
    raw = path.open("rb")
    if raw.read(len(_XZ_MAGIC)) == _XZ_MAGIC:
        raw.seek(0)
        return lzma.open(raw, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def iter_events(stream: BinaryIO, name: str = "<record>") -> Iterator[Event]:
    """The events of an uncompressed record stream, read as they are needed."""
    inp = _Input(stream, name)
    header = inp.read_until(b"\n", b"header")
    if header != HEADER:
        raise inp.error(f"not a spice-server record (expected {HEADER.decode()!r}, "
                        f"found {header[:40]!r})")
    reader = _Reader(inp)
    while not inp.at_eof():
        yield reader.event()


def read_events(path: str | Path) -> Iterator[Event]:
    """The events of a record file, plain or xz-compressed, streamed.

    Raises RecordFormatError (with the line number) for malformed content and
    for xz data that does not decompress."""
    path = Path(path)
    with _open(path) as stream:
        try:
            yield from iter_events(stream, str(path))
        except (lzma.LZMAError, EOFError) as exc:
            raise RecordFormatError(str(path), 0, f"bad xz data: {exc}") from None


# --- writing ------------------------------------------------------------------------------


class RecordWriter:
    """Writes events in the format spice-server writes (and its replay reads).

    Pass `clock` to control timestamps (CLOCK_MONOTONIC nanoseconds by default)."""

    def __init__(self, stream: BinaryIO, clock=time.monotonic_ns):
        self._out = stream
        self._clock = clock
        self._counter = 0
        self._out.write(HEADER + b"\n")

    # -- low level --

    def _line(self, text: str) -> None:
        self._out.write(text.encode() + b"\n")

    def _blob(self, name: str, data: bytes) -> None:
        self._out.write(b"binary 0 %s %d:" % (name.encode(), len(data)))
        self._out.write(data)
        self._out.write(b"\n")

    def _chunks(self, name: str, data: bytes) -> None:
        self._line(f"data_chunks 0 {len(data)}")
        self._blob(name, data)

    def _event(self, what: int, kind: int) -> None:
        self._line(f"event {self._counter} {what} {kind} {self._clock()}")
        self._counter += 1

    def _rect(self, name: str, r: QRect) -> None:
        self._line(f"rect {name} {r.top} {r.left} {r.bottom} {r.right}")

    def _point(self, p: QPoint) -> None:
        self._line(f"point {p.x} {p.y}")

    @staticmethod
    def _d(value: int) -> int:
        """An unsigned 32-bit value as spice-server's %d prints it."""
        return value - (1 << 32) if value >= 1 << 31 else value

    # -- pieces --

    def _image(self, img: Image | None) -> None:
        if img is None:
            self._line("image 0")
            return
        d = img.descriptor
        self._line("image 1")
        self._line(f"descriptor.id {d.id}")
        self._line(f"descriptor.type {d.type}")
        self._line(f"descriptor.flags {d.flags}")
        self._line(f"descriptor.width {self._d(d.width)}")
        self._line(f"descriptor.height {self._d(d.height)}")
        if isinstance(img, BitmapImage):
            self._line(f"bitmap.format {img.format}")
            self._line(f"bitmap.flags {img.flags}")
            self._line(f"bitmap.x {self._d(img.width)}")
            self._line(f"bitmap.y {self._d(img.height)}")
            self._line(f"bitmap.stride {self._d(img.stride)}")
            self._line(f"has_palette {int(img.palette is not None)}")
            if img.palette is not None:
                self._line(f"qp.num_ents {len(img.palette.ents)}")
                self._line(f"unique {img.palette.unique}")
                for ent in img.palette.ents:
                    self._line(f"ents {self._d(ent)}")
            if img.flags & lib.QXL_BITMAP_DIRECT:
                self._blob("image_data_flat", img.data)
            else:
                self._chunks("bitmap.data", img.data)
        elif isinstance(img, SurfaceImage):
            self._line(f"surface_image.surface_id {self._d(img.surface_id)}")
        elif d.type == lib.SPICE_IMAGE_TYPE_QUIC:
            self._line(f"quic.data_size {len(img.data)}")
            self._chunks("quic.data", img.data)
        else:
            raise ValueError(f"image type {d.type} cannot be recorded "
                             "(the format holds BITMAP, QUIC and SURFACE images)")

    def _brush(self, brush: Brush) -> None:
        if brush is None:
            self._line(f"type {lib.SPICE_BRUSH_TYPE_NONE}")
        elif isinstance(brush, SolidBrush):
            self._line(f"type {lib.SPICE_BRUSH_TYPE_SOLID}")
            self._line(f"u.color {self._d(brush.color)}")
        else:
            self._line(f"type {lib.SPICE_BRUSH_TYPE_PATTERN}")
            self._image(brush.pat)
            self._point(brush.pos)

    def _qmask(self, mask: QMask) -> None:
        self._line(f"flags {mask.flags}")
        self._point(mask.pos)
        self._image(mask.bitmap)

    def _src(self, img: Image, area: QRect) -> None:
        self._image(img)
        self._rect("src_area", area)

    def _draw_op(self, op: DrawOp) -> None:
        """The draw type line and the op's body."""
        self._line(f"type {DRAW_TYPES[type(op)]}")
        if isinstance(op, Fill):
            self._brush(op.brush)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._qmask(op.mask)
        elif isinstance(op, Opaque):
            self._src(op.src_bitmap, op.src_area)
            self._brush(op.brush)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, Copy | Blend):
            self._src(op.src_bitmap, op.src_area)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, CopyBits):
            self._point(op.src_pos)
        elif isinstance(op, Blackness | Whiteness | Invers):
            self._qmask(op.mask)
        elif isinstance(op, Rop3):
            self._src(op.src_bitmap, op.src_area)
            self._brush(op.brush)
            self._line(f"rop3 {op.rop3}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, Stroke):
            self._chunks("path", encode_path(op.path))
            self._line(f"attr.flags {op.attr.flags}")
            if op.attr.flags & lib.SPICE_LINE_FLAGS_STYLED:
                self._line(f"attr.style_nseg {len(op.attr.style)}")
                self._blob("style", b"".join(_FIXED.pack(v) for v in op.attr.style))
            self._brush(op.brush)
            self._line(f"fore_mode {op.fore_mode}")
            self._line(f"back_mode {op.back_mode}")
        elif isinstance(op, Text):
            data = encode_glyphs(op.str)
            self._line(f"data_size {len(data)}")
            self._line(f"length {len(op.str.glyphs)}")
            self._line(f"flags {op.str.flags}")
            self._chunks("string", data)
            self._rect("back_area", op.back_area)
            self._brush(op.fore_brush)
            self._brush(op.back_brush)
            self._line(f"fore_mode {op.fore_mode}")
            self._line(f"back_mode {op.back_mode}")
        elif isinstance(op, Transparent):
            self._src(op.src_bitmap, op.src_area)
            self._line(f"src_color {self._d(op.src_color)}")
            self._line(f"true_color {self._d(op.true_color)}")
        elif isinstance(op, AlphaBlend):
            self._line(f"alpha_flags {op.alpha_flags}")
            self._line(f"alpha {op.alpha}")
            self._src(op.src_bitmap, op.src_area)
        elif isinstance(op, Composite):
            self._line(f"flags {self._d(op.flags)}")
            self._image(op.src)
            self._transform("src_transform", op.src_transform)
            self._line(f"mask {int(op.mask is not None)}")
            if op.mask is not None:
                self._image(op.mask)
            self._transform("mask_transform", op.mask_transform)
            self._line(f"src_origin {op.src_origin.x} {op.src_origin.y}")
            self._line(f"mask_origin {op.mask_origin.x} {op.mask_origin.y}")

    def _transform(self, key: str, t: tuple[int, ...] | None) -> None:
        self._line(f"{key} {int(t is not None)}")
        if t is not None:
            self._blob("transform", encode_transform(t))

    # -- public --

    def command(self, cmd: Command, surface_data: bytes | None = None) -> None:
        """One WHAT=0 event. `surface_data`: a KEEP_DATA surface create's memory.
        Raises ValueError, having written nothing, for what the format cannot hold."""
        self._whole(self._command, cmd, surface_data)

    def _whole(self, write: Callable[..., None], *args: object) -> None:
        """Runs `write` into a buffer, so that a refused event leaves no partial record."""
        out, counter = self._out, self._counter
        self._out = io.BytesIO()
        try:
            write(*args)
            out.write(self._out.getvalue())
        except BaseException:
            self._counter = counter
            raise
        finally:
            self._out = out

    def _command(self, cmd: Command, surface_data: bytes | None) -> None:
        if isinstance(cmd, Drawable):
            self._event(0, lib.QXL_CMD_DRAW)
            self._line("drawable")
            self._rect("bbox", cmd.bbox)
            if cmd.clip is None:
                self._line(f"type {lib.SPICE_CLIP_TYPE_NONE}")
            else:
                self._line(f"type {lib.SPICE_CLIP_TYPE_RECTS}")
                self._line(f"num_rects {len(cmd.clip)}")
                self._chunks("clip_rects", encode_rects(cmd.clip))
            self._line(f"effect {cmd.effect}")
            self._line(f"mm_time {self._d(cmd.mm_time)}")
            self._line(f"self_bitmap {cmd.self_bitmap}")
            self._rect("self_bitmap_area", cmd.self_bitmap_area)
            self._line(f"surface_id {self._d(cmd.surface_id)}")
            for dest, rect in zip(cmd.surfaces_dest, cmd.surfaces_rects, strict=True):
                self._line(f"surfaces_dest {dest}")
                self._rect("surfaces_rects", rect)
            self._draw_op(cmd.op)
        elif isinstance(cmd, UpdateCmd):
            self._event(0, lib.QXL_CMD_UPDATE)
            self._line("update")
            self._rect("area", cmd.area)
            self._line(f"update_id {self._d(cmd.update_id)}")
            self._line(f"surface_id {self._d(cmd.surface_id)}")
        elif isinstance(cmd, MessageCmd):
            # spice-server records a message as its NUL-terminated text
            self._event(0, lib.QXL_CMD_MESSAGE)
            self._blob("message", cmd.data.split(b"\0", 1)[0])
        elif isinstance(cmd, SurfaceCmd):
            self._surface(cmd, surface_data)
        else:
            self._cursor(cmd)

    def _surface(self, cmd: SurfaceCmd, data: bytes | None) -> None:
        self._event(0, lib.QXL_CMD_SURFACE)
        self._line("surface_cmd")
        self._line(f"surface_id {self._d(cmd.surface_id)}")
        self._line(f"type {cmd.type}")
        self._line(f"flags {self._d(cmd.flags)}")
        if cmd.type == lib.QXL_SURFACE_CMD_CREATE and cmd.create is not None:
            c = cmd.create
            self._line(f"u.surface_create.format {self._d(c.format)}")
            self._line(f"u.surface_create.width {self._d(c.width)}")
            self._line(f"u.surface_create.height {self._d(c.height)}")
            self._line(f"u.surface_create.stride {c.stride}")
            if cmd.flags & lib.QXL_SURF_FLAG_KEEP_DATA:
                size = c.height * abs(c.stride)
                if data is None or len(data) != size:
                    raise ValueError(f"KEEP_DATA surface needs {size} bytes of data")
                self._blob("data", data)

    def _cursor(self, cmd: CursorCmd) -> None:
        self._event(0, lib.QXL_CMD_CURSOR)
        self._line("cursor_cmd")
        self._line(f"type {cmd.type}")
        if cmd.type == lib.QXL_CURSOR_SET:
            self._line(f"point16 {cmd.position.x} {cmd.position.y}")
            self._line(f"u.set.visible {int(cmd.visible)}")
            shape = cmd.shape or CursorShapeData(0, 0, 0, 0, 0, 0, b"")
            self._line(f"header.unique {shape.unique}")
            self._line(f"header.type {shape.type}")
            self._line(f"header.width {shape.width}")
            self._line(f"header.height {shape.height}")
            self._line(f"header.hot_spot_x {shape.hot_spot_x}")
            self._line(f"header.hot_spot_y {shape.hot_spot_y}")
            self._line(f"data_size {len(shape.data)}")
            self._chunks("cursor", shape.data)
        elif cmd.type == lib.QXL_CURSOR_MOVE:
            self._line(f"point16 {cmd.position.x} {cmd.position.y}")
        elif cmd.type == lib.QXL_CURSOR_TRAIL:
            self._line(f"u.trail.length {cmd.trail_length}")
            self._line(f"u.trail.frequency {cmd.trail_frequency}")

    def worker_message(self, message: WorkerMessage, primary: PrimarySurface | None = None
                       ) -> None:
        """One WHAT=1 event; CREATE_PRIMARY_SURFACE(_ASYNC) need `primary`."""
        if (message in _PRIMARY_MESSAGES) != (primary is not None):
            raise ValueError(f"{message.name}: primary surface given where not expected "
                             "or missing where required")
        self._whole(self._worker_message, message, primary)

    def _worker_message(self, message: WorkerMessage, primary: PrimarySurface | None) -> None:
        self._event(1, int(message))
        if primary is not None:
            p = primary
            self._line(f"{self._d(p.width)} {self._d(p.height)} {p.stride} {self._d(p.format)}")
            self._line(f"{self._d(p.position)} {self._d(p.mouse_mode)} {self._d(p.flags)} "
                       f"{self._d(p.type)}")
            self._blob("data", p.data)

    def write(self, event: Event) -> None:
        if isinstance(event, CommandEvent):
            self.command(event.command, event.surface_data)
        else:
            self.worker_message(event.message, event.primary)


# --- recording a running device ------------------------------------------------------------

# IO ports and the worker message spice-server records for them (QEMU's qxl makes
# these calls); CREATE_PRIMARY and SET_MODE are recorded from on_primary_created,
# which carries the surface's memory, and RESET expands into the four calls of
# QEMU's qxl_hard_reset.
_IO_MESSAGES: dict[int, tuple[WorkerMessage, ...]] = {
    lib.QXL_IO_NOTIFY_CMD: (WorkerMessage.WAKEUP,),
    lib.QXL_IO_NOTIFY_CURSOR: (WorkerMessage.WAKEUP,),
    lib.QXL_IO_UPDATE_AREA: (WorkerMessage.UPDATE,),
    lib.QXL_IO_UPDATE_AREA_ASYNC: (WorkerMessage.UPDATE_ASYNC,),
    lib.QXL_IO_NOTIFY_OOM: (WorkerMessage.OOM,),
    lib.QXL_IO_RESET: (WorkerMessage.RESET_CURSOR, WorkerMessage.RESET_IMAGE_CACHE,
                       WorkerMessage.DESTROY_SURFACES, WorkerMessage.RESET_MEMSLOTS),
    lib.QXL_IO_MEMSLOT_ADD: (WorkerMessage.ADD_MEMSLOT,),
    lib.QXL_IO_MEMSLOT_ADD_ASYNC: (WorkerMessage.ADD_MEMSLOT_ASYNC,),
    lib.QXL_IO_MEMSLOT_DEL: (WorkerMessage.DEL_MEMSLOT,),
    lib.QXL_IO_DETACH_PRIMARY: (WorkerMessage.DESTROY_PRIMARY_SURFACE,),
    lib.QXL_IO_DESTROY_PRIMARY: (WorkerMessage.DESTROY_PRIMARY_SURFACE,),
    lib.QXL_IO_DESTROY_PRIMARY_ASYNC: (WorkerMessage.DESTROY_PRIMARY_SURFACE_ASYNC,),
    lib.QXL_IO_DESTROY_SURFACE_WAIT: (WorkerMessage.DESTROY_SURFACE_WAIT,),
    lib.QXL_IO_DESTROY_SURFACE_ASYNC: (WorkerMessage.DESTROY_SURFACE_WAIT_ASYNC,),
    lib.QXL_IO_DESTROY_ALL_SURFACES: (WorkerMessage.DESTROY_SURFACES,),
    lib.QXL_IO_DESTROY_ALL_SURFACES_ASYNC: (WorkerMessage.DESTROY_SURFACES_ASYNC,),
    lib.QXL_IO_FLUSH_SURFACES_ASYNC: (WorkerMessage.FLUSH_SURFACES_ASYNC,),
    lib.QXL_IO_MONITORS_CONFIG_ASYNC: (WorkerMessage.MONITORS_CONFIG_ASYNC,),
}


RECORD_QUEUE_BYTES = 64 << 20
"""Recorded bytes waiting for the writer thread. A device that records faster than the
disk (or xz) takes them waits at this mark rather than drop events: nothing recorded is
lost, and the memory a recording holds stays bounded."""

XZ_STREAM_BYTES = 4 << 20
"""Uncompressed bytes per xz stream. Each stream is finished and written whole, so a
recording cut by SIGKILL is a valid xz file (concatenated streams) up to its last one;
4 MiB keeps xz's ratio close to one stream's."""

FLUSH_INTERVAL_S = 1.0
"""The most of a session that can sit in memory before it reaches the file: an xz
stream is also finished after this long, so a killed recording misses one second."""

XZ_PRESET = 1
"""xz's fastest preset: the writer must keep up with a device drawing at 60 frames a
second on one core; higher presets gain little on these text records."""



class RecordFile:
    """A record file written by a thread of its own, events whole.

    `put(data)` (from the device thread) queues one event's bytes; the writer thread
    writes them with one os.write per batch of whole events, so a process killed at
    any moment leaves a file that ends at an event's end. A ".xz" path is written as
    concatenated xz streams, each finished and written in one piece (XZ_STREAM_BYTES,
    FLUSH_INTERVAL_S). Compression runs on the writer thread, never the caller's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._xz = path.suffix == ".xz"
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: the end
        self._queued = 0
        self._room = threading.Condition()
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._write_loop, name="vgpu-record",
                                        daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        with self._room:
            while self._queued > RECORD_QUEUE_BYTES and self._thread.is_alive():
                self._room.wait(FLUSH_INTERVAL_S)
            self._queued += len(data)
        self._queue.put(data)

    def close(self) -> None:
        """Writes what is queued, finishes the file and closes it."""
        self._queue.put(None)
        self._thread.join()
        os.close(self._fd)

    def _taken(self, size: int) -> None:
        with self._room:
            self._queued -= size
            self._room.notify_all()

    def _write(self, data: bytes) -> None:
        if self.error is not None or not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:  # a full disk: the session goes on, unrecorded
            self.error = e
            log.error("recording to %s stopped: %s", self.path, e)

    def _write_loop(self) -> None:
        compressor = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=XZ_PRESET) if self._xz else None
        compressed: list[bytes] = []
        stream_bytes = 0
        stream_start = time.monotonic()
        ended = False
        while not ended:
            try:
                batch = [self._queue.get(timeout=FLUSH_INTERVAL_S)]
            except queue.Empty:
                batch = []
            while not self._queue.empty():  # whatever else is there, in one write
                batch.append(self._queue.get_nowait())
            ended = None in batch
            data = b"".join(item for item in batch if item is not None)
            self._taken(len(data))
            if compressor is None:
                self._write(data)
                continue
            compressed.append(compressor.compress(data))
            stream_bytes += len(data)
            if stream_bytes and (ended or stream_bytes >= XZ_STREAM_BYTES
                                 or time.monotonic() - stream_start >= FLUSH_INTERVAL_S):
                compressed.append(compressor.flush())
                self._write(b"".join(compressed))
                compressor = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=XZ_PRESET)
                compressed, stream_bytes = [], 0
            if not stream_bytes:
                stream_start = time.monotonic()


class Recorder(DeviceObserver):
    """Records a running device's session in spice-server's format.

    `Recorder(path).attach(device)` before the guest starts; `close()` at the end.
    A path ending in ".xz" is compressed (see RecordFile). Hooks run on the
    device's thread and never raise into it: they only format each event and
    queue it for the writer thread. A command the format cannot hold (an LZ
    image, say) is left out and counted in `skipped`.
    """

    def __init__(self, path: str | Path) -> None:
        self._file: RecordFile | None = RecordFile(Path(path))
        self._event = io.BytesIO()  # one event's bytes, formatted on the device thread
        self._writer = RecordWriter(self._event)
        self._flush_event()
        self._mem: GuestMemory | None = None
        self._lock = threading.Lock()
        self._last_port = -1
        self.events = 0
        self.skipped = 0

    def attach(self, device: Device) -> Recorder:
        self._mem = device.mem
        device.add_observer(self)
        self._message(WorkerMessage.START)  # the machine runs from here on
        return self

    def _flush_event(self) -> None:
        """Hands the formatted event to the writer thread (under the lock)."""
        assert self._file is not None
        self._file.put(self._event.getvalue())
        self._event.seek(0)
        self._event.truncate()

    def _message(self, message: WorkerMessage, primary: PrimarySurface | None = None) -> None:
        with self._lock:
            if self._file is not None:
                self._writer.worker_message(message, primary)
                self._flush_event()
                self.events += 1

    def on_io(self, port: int, value: int) -> None:
        self._last_port = port
        for message in _IO_MESSAGES.get(port, ()):
            self._message(message)

    def on_command(self, ring: str, cmd_type: int, addr: int, command: Command,
                   compat: bool) -> None:
        data = None
        if (isinstance(command, SurfaceCmd) and command.create is not None
                and command.flags & lib.QXL_SURF_FLAG_KEEP_DATA and self._mem is not None):
            data = self._mem.read(command.create.data_offset, command.create.data_length)
        with self._lock:
            if self._file is None:
                return
            try:
                self._writer.command(command, data)
                self._flush_event()
                self.events += 1
            except ValueError as e:
                self.skipped += 1
                log.warning("not recorded: %s", e)

    def on_primary_created(self, create: PrimaryCreate) -> None:
        message = (WorkerMessage.CREATE_PRIMARY_SURFACE_ASYNC
                   if self._last_port == lib.QXL_IO_CREATE_PRIMARY_ASYNC
                   else WorkerMessage.CREATE_PRIMARY_SURFACE)
        self._message(message, PrimarySurface(
            create.width, create.height, create.stride, create.format, create.position,
            create.mouse_mode, create.flags, create.type, create.data))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# --- replaying through the device ------------------------------------------------------------

# Worker messages that are the spice-server side of a reset (QEMU's qxl_hard_reset);
# a run of them is one QXL_IO_RESET. RESET_CURSOR is not one of them: QEMU's
# qxl_destroy_primary sends it too, after every DESTROY_PRIMARY of a mode change.
_RESET_MESSAGES = frozenset({WorkerMessage.RESET_IMAGE_CACHE, WorkerMessage.RESET_MEMSLOTS})
# Worker messages with no guest IO behind them: the VM's run state, client-driven
# settings, spice-server internals. ADD_MEMSLOT is the driver's own setup.
_NO_GUEST_IO = frozenset({
    WorkerMessage.NOP, WorkerMessage.READY, WorkerMessage.START, WorkerMessage.STOP,
    WorkerMessage.RESET_CURSOR,
    WorkerMessage.SET_COMPRESSION, WorkerMessage.SET_STREAMING_VIDEO,
    WorkerMessage.SET_MOUSE_MODE, WorkerMessage.ADD_MEMSLOT, WorkerMessage.ADD_MEMSLOT_ASYNC,
    WorkerMessage.DISPLAY_CONNECT_DEPRECATED, WorkerMessage.DISPLAY_DISCONNECT_DEPRECATED,
    WorkerMessage.DISPLAY_MIGRATE_DEPRECATED, WorkerMessage.CURSOR_CONNECT_DEPRECATED,
    WorkerMessage.CURSOR_DISCONNECT_DEPRECATED, WorkerMessage.CURSOR_MIGRATE_DEPRECATED,
    WorkerMessage.DISPLAY_CHANNEL_CREATE, WorkerMessage.CURSOR_CHANNEL_CREATE,
    WorkerMessage.LOADVM_COMMANDS, WorkerMessage.DRIVER_UNLOAD, WorkerMessage.GL_SCANOUT,
    WorkerMessage.GL_DRAW_ASYNC, WorkerMessage.SET_VIDEO_CODECS, WorkerMessage.CLOSE_WORKER,
    # the record does not say which surface; the surface's own DESTROY command does the work
    WorkerMessage.DESTROY_SURFACE_WAIT, WorkerMessage.DESTROY_SURFACE_WAIT_ASYNC,
})


class ReplayGuest:
    """Plays record events as a guest would, through a `GuestDriver`.

    Commands are written by the driver's builders into guest memory and pushed on
    their ring; worker messages become the IO port writes that make spice-server
    see them (WAKEUP: NOTIFY_CMD, UPDATE: UPDATE_AREA of the whole primary,
    CREATE_PRIMARY_SURFACE: the recorded memory written into surface 0's area, then
    CREATE_PRIMARY, DESTROY_SURFACES: DESTROY_ALL_SURFACES, RESET_*: QXL_IO_RESET,
    MONITORS_CONFIG_ASYNC: one head the size of the primary, ...). Counts of what
    was done are in `io` and `skipped`.
    """

    def __init__(self, driver: GuestDriver) -> None:
        self.driver = driver
        self.primary: PrimarySurface | None = None
        self.io: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._surfaces: dict[int, int] = {}  # surface id -> VRAM offset of its memory
        self._to_free: list[int] = []  # VRAM of destroyed surfaces, freed once drained
        self._in_reset = False

    def feed(self, event: Event) -> None:
        if isinstance(event, CommandEvent):
            self._in_reset = False
            self._command(event)
        else:
            self._message(event.message, event.primary)

    def finish(self) -> None:
        """Rings both doorbells, so that everything pushed is taken, and collects releases."""
        self.driver.att.io_write(lib.QXL_IO_NOTIFY_CMD, 0)
        self.driver.att.io_write(lib.QXL_IO_NOTIFY_CURSOR, 0)
        self.driver.collect_releases()

    def _command(self, event: CommandEvent) -> None:
        cmd = event.command
        if isinstance(cmd, SurfaceCmd) and cmd.create is not None:
            cmd = self._surface_memory(cmd, event.surface_data)
        elif isinstance(cmd, SurfaceCmd) and cmd.surface_id in self._surfaces:
            self._to_free.append(self._surfaces.pop(cmd.surface_id))
        self.driver.submit(cmd, compat=event.compat)
        # as a driver's interrupt handler does: give released commands' memory back
        # before the release ring fills (the device then chains releases it cannot push)
        self.driver.collect_releases()

    def _surface_memory(self, cmd: SurfaceCmd, data: bytes | None) -> SurfaceCmd:
        """The surface's memory in VRAM, holding its KEEP_DATA content, as a guest has it."""
        create = cmd.create
        assert create is not None
        length = create.height * abs(create.stride)
        try:
            off = self.driver.vram_alloc.alloc(length)
        except OutOfMemory:
            self._drain()
            off = self.driver.vram_alloc.alloc(length)
        self.driver.buf[off:off + length] = data if data is not None else bytes(length)
        old = self._surfaces.pop(cmd.surface_id, None)
        if old is not None:
            self._to_free.append(old)
        self._surfaces[cmd.surface_id] = off
        return dataclasses.replace(cmd, create=dataclasses.replace(
            create, data_offset=off, data_length=length))

    def _drain(self) -> None:
        """A synchronous port write makes the device take every queued command first; then
        the memory of destroyed surfaces is the guest's again."""
        self.driver.att.io_write(lib.QXL_IO_FLUSH_RELEASE, 0)
        if self.primary is not None:
            self._update_primary(False)
        for off in self._to_free:
            self.driver.vram_alloc.free(off)
        self._to_free.clear()

    def _update_primary(self, async_: bool) -> None:
        assert self.primary is not None
        self.driver.update_area(0, QRect(0, 0, self.primary.height, self.primary.width),
                                async_=async_)

    def _message(self, message: WorkerMessage, primary: PrimarySurface | None) -> None:
        d = self.driver
        if message in _RESET_MESSAGES:
            if not self._in_reset:
                d.reset()
                self._forget_surfaces(primary_too=True)
                self.io["RESET"] += 1
            self._in_reset = True
            return
        self._in_reset = False
        async_ = message.name.endswith("_ASYNC")
        if message in _NO_GUEST_IO:
            self.skipped[message.name] += 1
        elif message is WorkerMessage.WAKEUP:
            d.att.io_write(lib.QXL_IO_NOTIFY_CMD, 0)
            self.io["NOTIFY_CMD"] += 1
        elif message is WorkerMessage.OOM:
            d.notify_oom()
            self.io["NOTIFY_OOM"] += 1
        elif message in (WorkerMessage.UPDATE, WorkerMessage.UPDATE_ASYNC):
            if self.primary is None:
                self.skipped[message.name] += 1
                return
            self._update_primary(async_)
            self.io["UPDATE_AREA"] += 1
        elif primary is not None:
            self._create_primary(primary, async_)
        elif message in (WorkerMessage.DESTROY_PRIMARY_SURFACE,
                         WorkerMessage.DESTROY_PRIMARY_SURFACE_ASYNC):
            d.destroy_primary(async_=async_)
            self.primary = None
            self.io["DESTROY_PRIMARY"] += 1
        elif message in (WorkerMessage.DESTROY_SURFACES, WorkerMessage.DESTROY_SURFACES_ASYNC):
            d.destroy_all_surfaces(async_=async_)
            self._forget_surfaces(primary_too=True)
            self.io["DESTROY_ALL_SURFACES"] += 1
        elif message is WorkerMessage.FLUSH_SURFACES_ASYNC:
            d.flush_surfaces()
            self.io["FLUSH_SURFACES"] += 1
        elif message is WorkerMessage.MONITORS_CONFIG_ASYNC:
            if self.primary is None:
                self.skipped[message.name] += 1
                return
            d.monitors_config([(0, 0, self.primary.width, self.primary.height, 0, 0, 0)], 1)
            self.io["MONITORS_CONFIG"] += 1
        elif message is WorkerMessage.DEL_MEMSLOT:
            self.skipped[message.name] += 1  # the record does not say which slot
        else:
            self.skipped[message.name] += 1

    def _forget_surfaces(self, primary_too: bool) -> None:
        self.driver.vram_alloc.reset()
        self._surfaces.clear()
        self._to_free.clear()
        if primary_too:
            self.primary = None

    def _create_primary(self, p: PrimarySurface, async_: bool) -> None:
        d = self.driver
        if self.primary is not None:
            # spice-server's replay does the same for a create without a destroy
            d.destroy_primary()
            self.io["DESTROY_PRIMARY"] += 1
        # the driver places surface 0 at the start of its area: put the recorded memory there
        area = d.layout.ram_offset + d.rom.draw_area_offset
        length = p.height * abs(p.stride)
        d.buf[area:area + length] = p.data if p.data else bytes(length)
        off = d.create_primary(p.width, p.height, p.format, p.stride, async_=async_,
                               flags=p.flags)
        if off != area:
            raise RuntimeError(f"the driver put surface 0 at {off:#x}, not {area:#x}")
        self.primary = p
        self.io["CREATE_PRIMARY"] += 1


@dataclass
class ReplayResult:
    events: Counter[str]
    commands: int
    seconds: float
    guest: ReplayGuest
    device: Device


def replay(path: str | Path, backend: DisplayBackend,
           on_event: Callable[[Event], None] | None = None,
           record: str | Path | None = None) -> ReplayResult:
    """Replays a record file into a new device drawing through `backend`, guest and
    device on this thread; `record` names a file to record the device's session
    into. Raises RecordFormatError for a malformed file and DeviceError when the
    device reports a guest bug."""
    device = Device(backend)
    recorder = Recorder(record).attach(device) if record is not None else None
    attachment = InProcessAttachment(device, inline=True)
    driver = GuestDriver(attachment)
    guest = ReplayGuest(driver)
    events: Counter[str] = Counter()
    commands = 0
    start = time.perf_counter()
    try:
        for event in read_events(path):
            if isinstance(event, CommandEvent):
                commands += 1
                name = type(event.command).__name__
                if isinstance(event.command, Drawable):
                    name = f"Drawable.{type(event.command.op).__name__}"
                events[name] += 1
            else:
                events[event.message.name] += 1
            guest.feed(event)
            if on_event is not None:
                on_event(event)
        guest.finish()
        if device.guest_bug is not None:
            raise DeviceError(f"the device reported a guest bug: {device.guest_bug}")
    finally:
        attachment.close()
        if recorder is not None:
            recorder.close()
    return ReplayResult(events, commands, time.perf_counter() - start, guest, device)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a spice-server record file (plain or .xz)")
    parser.add_argument("--frame-out", type=Path, metavar="PNG",
                        help="write the final primary surface as a PNG")
    parser.add_argument("--parse-only", action="store_true",
                        help="only read and check the file (no device, no rendering)")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="record the device's session again, as spice-server would")


def _summary(events: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(events.items(), key=lambda kv: -kv[1]))


def run(args: argparse.Namespace) -> int:
    try:
        if args.parse_only:
            start = time.perf_counter()
            counts: Counter[str] = Counter()
            for event in read_events(args.file):
                counts["commands" if isinstance(event, CommandEvent) else "worker messages"] += 1
            print(f"{args.file}: {sum(counts.values())} events ({_summary(counts)}) read in "
                  f"{time.perf_counter() - start:.3f} s")
            return 0
        from vgpu.render import Renderer

        renderer = Renderer()
        try:
            result = replay(args.file, renderer, record=args.record)
            if args.frame_out is not None:
                _write_png(renderer, result.guest, args.frame_out)
        finally:
            renderer.close()
    except (RecordFormatError, DeviceError, OSError) as e:
        print(f"vgpu replay: {e}", file=sys.stderr)
        return 1
    except OutOfMemory as e:
        print(f"vgpu replay: the recording needs more guest memory than the device has ({e})",
              file=sys.stderr)
        return 1
    total = sum(result.events.values())
    dev = result.device
    print(f"{args.file}: {total} events replayed in {result.seconds:.3f} s "
          f"({result.commands} commands, {result.commands / result.seconds:.0f}/s)")
    print(f"  events: {_summary(result.events)}")
    print(f"  guest IO: {_summary(result.guest.io)}")
    if result.guest.skipped:
        print(f"  no guest IO for: {_summary(result.guest.skipped)}")
    print(f"  device: {dev.stats['commands']} commands taken, {dev.stats['released']} released, "
          f"{dev.stats['io']} port writes besides doorbells")
    if args.frame_out is not None:
        print(f"  frame: {args.frame_out}")
    return 0


def _write_png(renderer: Renderer, guest: ReplayGuest, path: Path) -> None:
    from PIL import Image as PILImage

    if guest.primary is None:
        raise OSError("the recording leaves no primary surface to write")
    bgra = renderer.read_pixels(0)
    PILImage.fromarray(bgra[:, :, 2::-1].copy(), "RGB").save(path)
