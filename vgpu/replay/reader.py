"""Reading spice-server record files into events.

`read_events(path)` streams a file (plain or xz) as `CommandEvent`s and
`WorkerEvent`s (`vgpu.replay.format`); `iter_events(stream)` does the same for an
open uncompressed stream. The file is untrusted input: every count and size in it
is checked against a named limit before anything is allocated or read, and
anything unexpected raises `RecordFormatError` carrying the line number. The
binary payloads inside blobs (clip rects, paths, glyph strings, transforms) are
decoded by the device parser's functions, which check them as they check guest
memory.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vgpu.device.abi import lib
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
from vgpu.device.layouts import TRANSFORM
from vgpu.device.memory import GuestBug
from vgpu.device.parser import decode_glyphs, decode_path, decode_rects, decode_transform
from vgpu.replay.format import (
    FIXED,
    HEADER,
    MAX_BLOB_BYTES,
    MAX_CHUNKS,
    MAX_LINE_BYTES,
    MAX_PALETTE_ENTRIES,
    MAX_RECORD_BYTES,
    PRIMARY_MESSAGES,
    CommandEvent,
    Event,
    PrimarySurface,
    RecordFormatError,
    WorkerEvent,
    WorkerMessage,
)

_READ_SIZE = 1 << 16
# Blobs are read in pieces of at most this: a file that announces a large blob and then
# ends does not make one read allocate all of it.
_BLOB_PIECE = 1 << 24
_XZ_MAGIC = b"\xfd7zXZ\x00"

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
                if len(data) != nseg * FIXED.size:
                    raise self.error(f"style holds {len(data)} bytes for {nseg} segments")
                style = tuple(v for (v,) in FIXED.iter_unpack(data))
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
            primary = self.primary() if message in PRIMARY_MESSAGES else None
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
