"""Guest memory -> the typed commands of `vgpu.device.commands`.

`Parser.parse(cmd_type, addr, compat)` reads one command of the command or
cursor ring. Every struct is copied out of guest memory in one read before any
of its fields is looked at (no double fetch), every address goes through
`MemSlots.translate`, every count and size is checked against the data that
carries it and against the named limits below. Any violation raises
`GuestBug` with the reason; nothing else escapes for any memory content.

Speed: struct reads are precompiled `struct.Struct`s built from the cffi
layouts (`vgpu.device.abi.Layout`), unpacked from a bytes copy into one named
value per field (rects as QRects, points as QPoints). See
bench/parse.py for the measured rate.
"""

from __future__ import annotations

import struct
from collections.abc import Container

from vgpu.device import commands as c
from vgpu.device import layouts as L
from vgpu.device.abi import Layout, Record, lib
from vgpu.device.memory import GuestBug, MemSlots

# --- limits ---------------------------------------------------------------------

MAX_CHUNKS = 1 << 16
"""Chunks in one chain. A 4096x4096 32-bit image in page-sized chunks needs 16384;
four times that still ends a guest-made loop (next pointing back) in milliseconds."""

MAX_CHUNK_BYTES = 64 * 1024 * 1024
"""Bytes in one chain: a 4096x4096 32-bit image, the largest image we accept."""

MAX_IMAGE_DIM = 4096
"""Width or height of a bitmap (and of a glyph string's images): with 4 bytes a pixel
this is what MAX_CHUNK_BYTES holds."""

MAX_SURFACE_DIM = 8192
"""Width or height of a surface; larger than any display a SPICE client shows."""

MAX_SURFACE_BYTES = 256 * 1024 * 1024
"""height * |stride| of one surface: an 8192x8192 32-bit surface."""

MAX_CLIP_RECTS = 16384
"""Rects in one clip list; past this a guest should send a coarser clip (the renderer's
cost grows with it, and no driver we know sends more than a few hundred)."""

MAX_PALETTE_ENTS = 256
"""The largest palette format is 8 bits a pixel."""

MAX_GLYPHS = 16384
"""Glyphs in one text command; the string's data_size bounds it too."""

MAX_PATH_POINTS = 1 << 20
"""Points in one stroke path, all segments together."""

MAX_STYLE_SEGS = 255
"""QXLLineAttr.style_nseg is a uint8_t."""

MAX_CURSOR_DIM = 512
"""SPICE clients show cursors up to 512x512 at most; larger is a guest error."""

MAX_CURSOR_BYTES = 2 * MAX_CURSOR_DIM * MAX_CURSOR_DIM * 4
"""A 512x512 32-bit cursor plus a mask plane."""

MAX_MESSAGE_BYTES = 100_000
"""A QXLMessage is a NUL-terminated string; spice-server searches at most this far."""

# Bits per pixel of each SPICE_BITMAP_FMT_*.
BITMAP_BPP = {
    lib.SPICE_BITMAP_FMT_1BIT_LE: 1, lib.SPICE_BITMAP_FMT_1BIT_BE: 1,
    lib.SPICE_BITMAP_FMT_4BIT_LE: 4, lib.SPICE_BITMAP_FMT_4BIT_BE: 4,
    lib.SPICE_BITMAP_FMT_8BIT: 8, lib.SPICE_BITMAP_FMT_16BIT: 16,
    lib.SPICE_BITMAP_FMT_24BIT: 24, lib.SPICE_BITMAP_FMT_32BIT: 32,
    lib.SPICE_BITMAP_FMT_RGBA: 32, lib.SPICE_BITMAP_FMT_8BIT_A: 8,
}
_PALETTE_FORMATS = frozenset({
    lib.SPICE_BITMAP_FMT_1BIT_LE, lib.SPICE_BITMAP_FMT_1BIT_BE, lib.SPICE_BITMAP_FMT_4BIT_LE,
    lib.SPICE_BITMAP_FMT_4BIT_BE, lib.SPICE_BITMAP_FMT_8BIT})

# Bits per pixel of each SPICE_SURFACE_FMT_*.
SURFACE_BPP = {
    lib.SPICE_SURFACE_FMT_1_A: 1, lib.SPICE_SURFACE_FMT_8_A: 8,
    lib.SPICE_SURFACE_FMT_16_555: 16, lib.SPICE_SURFACE_FMT_16_565: 16,
    lib.SPICE_SURFACE_FMT_32_xRGB: 32, lib.SPICE_SURFACE_FMT_32_ARGB: 32,
}

# Encoded image types whose body is QXLQUICData-shaped: data_size + an inline chunk.
_COMPRESSED_TYPES = frozenset({
    lib.SPICE_IMAGE_TYPE_QUIC, lib.SPICE_IMAGE_TYPE_LZ_RGB, lib.SPICE_IMAGE_TYPE_LZ_PLT,
    lib.SPICE_IMAGE_TYPE_JPEG, lib.SPICE_IMAGE_TYPE_JPEG_ALPHA, lib.SPICE_IMAGE_TYPE_LZ4})

_GLYPH_BPP = ((lib.SPICE_STRING_FLAGS_RASTER_A1, 1), (lib.SPICE_STRING_FLAGS_RASTER_A4, 4),
              (lib.SPICE_STRING_FLAGS_RASTER_A8, 8))

_RECTS = [struct.Struct(f"<{4 * n}i") for n in range(9)]  # small clip lists, the usual case
_NO_MASK = c.QMask(0, c.QPoint(0, 0), None)
_NO_MASK_FIELDS = (0, (0, 0), 0)  # a QXLQMask of flags, pos and bitmap, all zero


def min_stride(width: int, bpp: int) -> int:
    """Bytes of one row of `width` pixels of `bpp` bits."""
    return (width * bpp + 7) // 8


def cursor_data_size(typ: int, w: int, h: int) -> int:
    """The fewest bytes a SPICE cursor of this type and size carries: its pixels, then (for
    the palette types) the palette, then the 1-bit AND mask (MONO: AND then XOR plane)."""
    mask = (w + 7) // 8 * h
    return {
        lib.SPICE_CURSOR_TYPE_ALPHA: w * h * 4,
        lib.SPICE_CURSOR_TYPE_MONO: 2 * mask,
        lib.SPICE_CURSOR_TYPE_COLOR4: (w + 1) // 2 * h + 16 * 4 + mask,
        lib.SPICE_CURSOR_TYPE_COLOR8: w * h + 256 * 4 + mask,
        lib.SPICE_CURSOR_TYPE_COLOR16: w * h * 2 + mask,
        lib.SPICE_CURSOR_TYPE_COLOR24: w * h * 3 + mask,
        lib.SPICE_CURSOR_TYPE_COLOR32: w * h * 4 + mask,
    }[typ]


def glyph_bpp(flags: int) -> int:
    """Bits per glyph pixel by a string's flags: the first of RASTER_A1, A4, A8 set."""
    bpp = next((depth for bit, depth in _GLYPH_BPP if flags & bit), 0)
    if not bpp:
        raise GuestBug(f"glyph string flags {flags:#x} name no raster depth")
    return bpp


# The data of a clip list, a path and a glyph string, as they lie in guest memory (after
# their chunk chain) and in a record file's blobs: decoded here for both.

def decode_rects(n: int, data: bytes) -> tuple[c.QRect, ...]:
    """`n` QXLRects that must fill `data` exactly."""
    if len(data) != n * L.RECT_SIZE:
        raise GuestBug(f"{len(data)} bytes of clip rects for {n} rects")
    v = (_RECTS[n] if n < len(_RECTS) else struct.Struct(f"<{4 * n}i")).unpack(data)
    QRect = c.QRect
    return tuple(QRect(v[i], v[i + 1], v[i + 2], v[i + 3]) for i in range(0, 4 * n, 4))


def decode_path(data: bytes) -> tuple[c.PathSeg, ...]:
    """The QXLPathSegs of a path's data, MAX_PATH_POINTS in all at most."""
    size = len(data)
    segs = []
    pos = 0
    points_left = MAX_PATH_POINTS
    seg_unpack = L.SEG.struct.unpack_from
    while pos < size:
        if size - pos < L.SEG.size:
            raise GuestBug("path data ends inside a segment header")
        flags, count = seg_unpack(data, pos)
        pos += L.SEG.size
        if count > points_left or count * L.POINT_SIZE > size - pos:
            raise GuestBug(f"path segment of {count} points overruns the path")
        points_left -= count
        v = struct.unpack_from(f"<{2 * count}i", data, pos)
        pos += count * L.POINT_SIZE
        segs.append(c.PathSeg(flags, tuple(zip(v[0::2], v[1::2], strict=True))))
    return tuple(segs)


def decode_glyphs(flags: int, n: int, data: bytes) -> c.GlyphString:
    """`n` (at most MAX_GLYPHS) QXLRasterGlyphs from a string's data."""
    bpp = glyph_bpp(flags)
    if n > MAX_GLYPHS:
        raise GuestBug(f"{n} glyphs exceed the limit")
    size = len(data)
    glyphs = []
    pos = 0
    head = L.GLYPH.size
    # per glyph, the flat leaves (render_pos, glyph_origin, width, height): no record object
    unpack = L.GLYPH.struct.unpack_from
    QPoint = c.QPoint
    for _ in range(n):
        if size - pos < head:
            raise GuestBug("glyph string ends inside a glyph header")
        rx, ry, ox, oy, w, h = unpack(data, pos)
        pos += head
        nbytes = ((w * bpp + 7) // 8) * h
        if nbytes > size - pos:
            raise GuestBug(f"glyph {w}x{h} overruns the string data")
        glyphs.append(c.RasterGlyph(QPoint(rx, ry), QPoint(ox, oy), w, h,
                                    data[pos:pos + nbytes]))
        pos += nbytes
    return c.GlyphString(flags, tuple(glyphs))


def decode_transform(data: bytes) -> tuple[int, ...]:
    """A QXLTransform's six 16.16 fixed-point values, signed."""
    return tuple(_signed32(v) for v in L.TRANSFORM.struct.unpack(data))


def _signed32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


class Parser:
    """Reads commands through `slots`; `surfaces` answers which surface ids exist now."""

    def __init__(self, slots: MemSlots, n_surfaces: int, surfaces: Container[int]) -> None:
        self.slots = slots
        self.n_surfaces = n_surfaces
        self.surfaces = surfaces
        self._mm = slots.mem.mm
        self._draw = {
            lib.QXL_DRAW_NOP: self._nop, lib.QXL_DRAW_FILL: self._fill,
            lib.QXL_DRAW_OPAQUE: self._opaque, lib.QXL_DRAW_COPY: self._copy,
            lib.QXL_COPY_BITS: self._copy_bits, lib.QXL_DRAW_BLEND: self._blend,
            lib.QXL_DRAW_BLACKNESS: self._blackness, lib.QXL_DRAW_WHITENESS: self._whiteness,
            lib.QXL_DRAW_INVERS: self._invers, lib.QXL_DRAW_ROP3: self._rop3,
            lib.QXL_DRAW_STROKE: self._stroke, lib.QXL_DRAW_TEXT: self._text,
            lib.QXL_DRAW_TRANSPARENT: self._transparent,
            lib.QXL_DRAW_ALPHA_BLEND: self._alpha_blend,
            lib.QXL_DRAW_COMPOSITE: self._composite,
        }

    # --- memory -----------------------------------------------------------------

    def read(self, addr: int, length: int) -> bytes:
        off = self.slots.translate(addr, length)
        return self._mm[off:off + length]

    def chunks(self, addr: int, expected: int, limit: int = MAX_CHUNK_BYTES) -> bytes:
        """The data of the QXLDataChunk chain at `addr`; its total must equal `expected`."""
        if expected > limit:
            raise GuestBug(f"chunk data of {expected} bytes exceeds the limit {limit}")
        translate = self.slots.translate
        mm = self._mm
        unpack = L.CHUNK.struct.unpack_from
        parts = []
        total = 0
        for _ in range(MAX_CHUNKS):
            off = translate(addr, L.CHUNK_HEAD)
            size, nxt = unpack(mm, off)
            total += size
            if total > expected:
                raise GuestBug(f"chunk chain holds more than the {expected} bytes announced")
            if size:
                off = translate(addr, L.CHUNK_HEAD + size)
                parts.append(mm[off + L.CHUNK_HEAD:off + L.CHUNK_HEAD + size])
            if not nxt:
                if total != expected:
                    raise GuestBug(f"chunk chain holds {total} bytes, {expected} announced")
                return parts[0] if len(parts) == 1 else b"".join(parts)
            addr = nxt
        raise GuestBug(f"chunk chain longer than {MAX_CHUNKS} chunks (a loop?)")

    # --- commands ---------------------------------------------------------------

    def parse(self, cmd_type: int, addr: int, compat: bool = False) -> c.Command:
        if cmd_type == lib.QXL_CMD_DRAW:
            return self.compat_drawable(addr) if compat else self.drawable(addr)
        if cmd_type == lib.QXL_CMD_UPDATE:
            return self.update(addr, compat)
        if cmd_type == lib.QXL_CMD_CURSOR:
            return self.cursor(addr)
        if cmd_type == lib.QXL_CMD_MESSAGE:
            return self.message(addr)
        if cmd_type == lib.QXL_CMD_SURFACE:
            return self.surface(addr)
        raise GuestBug(f"unknown command type {cmd_type}")

    def drawable(self, addr: int) -> c.Drawable:
        buf = self.read(addr, L.DRAW_SIZE)
        h = L.DRAW_HEAD.unpack_from(buf)
        op = self._draw.get(h.type)
        if op is None:
            raise GuestBug(f"unknown draw type {h.type}")
        # the surface and its dependencies are the device's to check (it drops a drawable
        # on a missing one, as spice-server does)
        return c.Drawable(
            release_id=h.release_info_id, bbox=h.bbox, clip=self._clip(h.clip),
            effect=h.effect, mm_time=h.mm_time, self_bitmap=h.self_bitmap,
            self_bitmap_area=h.self_bitmap_area, surface_id=h.surface_id,
            surfaces_dest=h.surfaces_dest, surfaces_rects=h.surfaces_rects,
            op=op(buf, L.DRAW_U, False))

    def compat_drawable(self, addr: int) -> c.Drawable:
        buf = self.read(addr, L.COMPAT_SIZE)
        h = L.COMPAT_HEAD.unpack_from(buf)
        op = self._draw.get(h.type)
        if op is None or h.type == lib.QXL_DRAW_COMPOSITE:
            raise GuestBug(f"unknown compat draw type {h.type}")
        # QXLCompatDrawable has no surfaces: the primary, with no dependencies
        return c.Drawable(
            release_id=h.release_info_id, bbox=h.bbox, clip=self._clip(h.clip),
            effect=h.effect, mm_time=h.mm_time, self_bitmap=1 if h.bitmap_offset else 0,
            self_bitmap_area=h.bitmap_area, op=op(buf, L.COMPAT_U, True))

    def update(self, addr: int, compat: bool) -> c.UpdateCmd:
        if compat:
            u = self.unpack_at(L.COMPAT_UPDATE, addr)
            return c.UpdateCmd(u.release_info_id, u.area, u.update_id, 0)
        u = self.unpack_at(L.UPDATE, addr)
        if u.surface_id >= self.n_surfaces:
            raise GuestBug(f"update surface id {u.surface_id} out of range")
        return c.UpdateCmd(u.release_info_id, u.area, u.update_id, u.surface_id)

    def message(self, addr: int) -> c.MessageCmd:
        (rid,) = struct.unpack("<Q", self.read(addr, L.MESSAGE_DATA))
        room = self.slots.room(addr + L.MESSAGE_DATA)
        text = self.read(addr + L.MESSAGE_DATA, min(room, MAX_MESSAGE_BYTES))
        end = text.find(b"\0")
        if end < 0:
            raise GuestBug("message without a NUL within its slot or the length limit")
        return c.MessageCmd(rid, text[:end])

    def surface(self, addr: int) -> c.SurfaceCmd:
        s = self.unpack_at(L.SURFACE_CMD, addr)
        rid, sid, typ, flags = s.release_info_id, s.surface_id, s.type, s.flags
        if sid >= self.n_surfaces:
            raise GuestBug(f"surface id {sid} out of range")
        if typ == lib.QXL_SURFACE_CMD_DESTROY:
            return c.SurfaceCmd(rid, sid, typ, flags, None)
        if typ != lib.QXL_SURFACE_CMD_CREATE:
            raise GuestBug(f"unknown surface command type {typ}")
        fmt, w, h = s.surface_create_format, s.surface_create_width, s.surface_create_height
        stride = s.surface_create_stride
        off, length = self.surface_memory(fmt, w, h, stride, s.surface_create_data)
        return c.SurfaceCmd(rid, sid, typ, flags, c.SurfaceCreate(fmt, w, h, stride, off, length))

    def surface_memory(self, fmt: int, w: int, h: int, stride: int, data: int) -> tuple[int, int]:
        """Checks a surface's geometry and memory; returns (mapping offset, length)."""
        bpp = SURFACE_BPP.get(fmt)
        if bpp is None:
            raise GuestBug(f"unknown surface format {fmt}")
        if not (0 < w <= MAX_SURFACE_DIM and 0 < h <= MAX_SURFACE_DIM):
            raise GuestBug(f"surface size {w}x{h} out of range")
        if abs(stride) < min_stride(w, bpp):
            raise GuestBug(f"surface stride {stride} too small for width {w}")
        length = h * abs(stride)
        if length > MAX_SURFACE_BYTES:
            raise GuestBug(f"surface of {length} bytes exceeds the limit")
        return self.slots.translate(data, length), length

    def cursor(self, addr: int) -> c.CursorCmd:
        buf = self.read(addr, L.CURSOR_SIZE)
        head = L.CURSOR_HEAD.unpack_from(buf)
        rid, typ = head.release_info_id, head.type
        origin = c.QPoint(0, 0)
        if typ == lib.QXL_CURSOR_SET:
            s = L.CURSOR_SET.unpack_from(buf)
            shape = self._cursor_shape(s.set_shape)
            return c.CursorCmd(rid, typ, s.set_position, bool(s.set_visible), shape, 0, 0)
        if typ == lib.QXL_CURSOR_MOVE:
            return c.CursorCmd(rid, typ, L.CURSOR_POS.unpack_from(buf).position, False, None,
                               0, 0)
        if typ == lib.QXL_CURSOR_HIDE:
            return c.CursorCmd(rid, typ, origin, False, None, 0, 0)
        if typ == lib.QXL_CURSOR_TRAIL:
            t = L.CURSOR_TRAIL.unpack_from(buf)
            return c.CursorCmd(rid, typ, origin, False, None, t.trail_length,
                               t.trail_frequency)
        raise GuestBug(f"unknown cursor command type {typ}")

    def _cursor_shape(self, addr: int) -> c.CursorShapeData:
        head, size = self.unpack_at(L.CURSOR_SHAPE, addr)
        typ, w, h = head.type, head.width, head.height
        if typ > lib.SPICE_CURSOR_TYPE_COLOR32:
            raise GuestBug(f"unknown cursor type {typ}")
        if w > MAX_CURSOR_DIM or h > MAX_CURSOR_DIM:
            raise GuestBug(f"cursor {w}x{h} too large")
        if size < cursor_data_size(typ, w, h):
            raise GuestBug(f"cursor data of {size} bytes is short for a {w}x{h} type {typ}")
        data = self.chunks(addr + L.CURSOR_CHUNK, size, MAX_CURSOR_BYTES)
        return c.CursorShapeData(head.unique, typ, w, h, head.hot_spot_x, head.hot_spot_y, data)

    # --- drawable parts ---------------------------------------------------------

    def unpack_at(self, layout: Layout, addr: int) -> Record:
        return layout.unpack_from(self.read(addr, layout.size))

    def _clip(self, clip: Record) -> tuple[c.QRect, ...] | None:
        typ, addr = clip.type, clip.data
        if typ == lib.SPICE_CLIP_TYPE_NONE:
            return None
        if typ != lib.SPICE_CLIP_TYPE_RECTS:
            raise GuestBug(f"unknown clip type {typ}")
        n = self.unpack_at(L.CLIP, addr).num_rects
        if n > MAX_CLIP_RECTS:
            raise GuestBug(f"{n} clip rects exceed the limit {MAX_CLIP_RECTS}")
        return decode_rects(n, self.chunks(addr + L.CLIP_CHUNK, n * L.RECT_SIZE))

    def _brush(self, typ: int, pattern: Record) -> c.Brush:
        if typ == lib.SPICE_BRUSH_TYPE_SOLID:  # u.color: the low half of u.pattern.pat
            return c.SolidBrush(pattern.pat & 0xFFFFFFFF)
        if typ == lib.SPICE_BRUSH_TYPE_NONE:
            return None
        if typ == lib.SPICE_BRUSH_TYPE_PATTERN:
            return c.PatternBrush(self._image_required(pattern.pat), pattern.pos)
        raise GuestBug(f"unknown brush type {typ}")

    def _mask(self, mask: Record) -> c.QMask:
        if mask == _NO_MASK_FIELDS:  # the usual case, in one comparison
            return _NO_MASK
        bitmap = mask.bitmap
        return c.QMask(mask.flags, mask.pos, self.image(bitmap, is_mask=True) if bitmap else None)

    def _image_required(self, addr: int) -> c.Image:
        if not addr:
            raise GuestBug("missing image")
        return self.image(addr)

    def image(self, addr: int, is_mask: bool = False) -> c.Image:
        """The image at `addr`. A mask (`is_mask`) may be a palette format without a palette,
        as spice-server's red_get_image allows: a 1-bit mask's bits are read as bits."""
        mm = self._mm
        translate = self.slots.translate
        off = translate(addr, L.DESC_SIZE)
        # the records unpack in the order of their paths in `layouts`
        iid, typ, iflags, iw, ih = L.DESC.unpack_from(mm, off)
        desc = c.ImageDescriptor(iid, typ, iflags, iw, ih)
        if typ == lib.SPICE_IMAGE_TYPE_BITMAP:
            off = translate(addr, L.BITMAP.size)
            fmt, flags, w, h, stride, pal, data = L.BITMAP.unpack_from(mm, off)
            bpp = BITMAP_BPP.get(fmt)
            if bpp is None:
                raise GuestBug(f"unknown bitmap format {fmt}")
            if not (0 < w <= MAX_IMAGE_DIM and 0 < h <= MAX_IMAGE_DIM):
                raise GuestBug(f"bitmap size {w}x{h} out of range")
            if stride < min_stride(w, bpp):
                raise GuestBug(f"bitmap stride {stride} too small for {w} pixels")
            size = h * stride
            if size > MAX_CHUNK_BYTES:
                raise GuestBug(f"bitmap of {size} bytes exceeds the limit")
            palette = self._palette(pal) if pal else None
            if palette is None and fmt in _PALETTE_FORMATS and not is_mask:
                raise GuestBug("palette bitmap without a palette")
            if flags & lib.QXL_BITMAP_DIRECT:
                off = translate(data, size)
                pixels = mm[off:off + size]
            else:
                pixels = self.chunks(data, size)
            return c.BitmapImage(desc, fmt, flags, w, h, stride, palette, pixels)
        if typ == lib.SPICE_IMAGE_TYPE_SURFACE:
            sid = self.unpack_at(L.SURFACE_ID, addr).surface_image_surface_id
            if sid >= self.n_surfaces or sid not in self.surfaces:
                raise GuestBug(f"surface image of surface {sid}, which does not exist")
            return c.SurfaceImage(desc, sid)
        if typ in _COMPRESSED_TYPES:
            size = self.unpack_at(L.QUIC_SIZE, addr).quic_data_size
            return c.CompressedImage(desc, self.chunks(addr + L.QUIC_CHUNK, size))
        raise GuestBug(f"unsupported image type {typ}")

    def _palette(self, addr: int) -> c.Palette:
        p = self.unpack_at(L.PALETTE, addr)
        n = p.num_ents
        if n > MAX_PALETTE_ENTS:
            raise GuestBug(f"palette of {n} entries")
        ents = struct.unpack(f"<{n}I", self.read(addr + L.PALETTE_ENTS, 4 * n))
        return c.Palette(p.unique, ents)

    # --- draw operations ----------------------------------------------------------

    def _nop(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Nop()

    def _fill(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.FILL.unpack_from(buf, off)
        return c.Fill(self._brush(v.brush_type, v.brush_pattern), v.rop_descriptor,
                      self._mask(v.mask))

    def _opaque(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.OPAQUE.unpack_from(buf, off)
        return c.Opaque(self._image_required(v.src_bitmap), v.src_area,
                        self._brush(v.brush_type, v.brush_pattern), v.rop_descriptor,
                        v.scale_mode, self._mask(v.mask))

    def _copy_like(self, buf: bytes, off: int) -> tuple:
        v = L.COPY.unpack_from(buf, off)
        return (self._image_required(v.src_bitmap), v.src_area, v.rop_descriptor, v.scale_mode,
                self._mask(v.mask))

    def _copy(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Copy(*self._copy_like(buf, off))

    def _blend(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Blend(*self._copy_like(buf, off))

    def _blackness(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Blackness(self._mask(L.BLACKNESS.unpack_from(buf, off).mask))

    def _whiteness(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Whiteness(self._mask(L.BLACKNESS.unpack_from(buf, off).mask))

    def _invers(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.Invers(self._mask(L.BLACKNESS.unpack_from(buf, off).mask))

    def _rop3(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.ROP3.unpack_from(buf, off)
        return c.Rop3(self._image_required(v.src_bitmap), v.src_area,
                      self._brush(v.brush_type, v.brush_pattern), v.rop3, v.scale_mode,
                      self._mask(v.mask))

    def _stroke(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.STROKE.unpack_from(buf, off)
        segs = self._path(v.path)
        aflags, nseg = v.attr_flags, v.attr_style_nseg
        styles: tuple[int, ...] = ()
        if aflags & lib.SPICE_LINE_FLAGS_STYLED:
            if not 0 < nseg <= MAX_STYLE_SEGS:
                raise GuestBug(f"line style of {nseg} segments")
            styles = struct.unpack(f"<{nseg}i", self.read(v.attr_style, nseg * L.FIXED_SIZE))
        return c.Stroke(segs, c.LineAttr(aflags, styles),
                        self._brush(v.brush_type, v.brush_pattern), v.fore_mode, v.back_mode)

    def _path(self, addr: int) -> tuple[c.PathSeg, ...]:
        if not addr:
            raise GuestBug("stroke without a path")
        size = self.unpack_at(L.PATH, addr).data_size
        return decode_path(self.chunks(addr + L.PATH_CHUNK, size))

    def _text(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.TEXT.unpack_from(buf, off)
        return c.Text(self._string(v.str), v.back_area,
                      self._brush(v.fore_brush_type, v.fore_brush_pattern),
                      self._brush(v.back_brush_type, v.back_brush_pattern),
                      v.fore_mode, v.back_mode)

    def _string(self, addr: int) -> c.GlyphString:
        if not addr:
            raise GuestBug("text without a string")
        s = self.unpack_at(L.STRING, addr)
        size, n, flags = s.data_size, s.length, s.flags
        glyph_bpp(flags)  # the cheap checks before the chunks are read
        if n > MAX_GLYPHS:
            raise GuestBug(f"{n} glyphs exceed the limit")
        return decode_glyphs(flags, n, self.chunks(addr + L.STRING_CHUNK, size))

    def _transparent(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.TRANSPARENT.unpack_from(buf, off)
        return c.Transparent(self._image_required(v.src_bitmap), v.src_area, v.src_color,
                             v.true_color)

    def _alpha_blend(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        if compat:
            v = L.COMPAT_ALPHA.unpack_from(buf, off)
            aflags = 0
        else:
            v = L.ALPHA.unpack_from(buf, off)
            aflags = v.alpha_flags
        return c.AlphaBlend(aflags, v.alpha, self._image_required(v.src_bitmap), v.src_area)

    def _composite(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        v = L.COMPOSITE.unpack_from(buf, off)
        flags, mask = v.flags, v.mask
        # As spice-server's parser: the addresses, not the guest's flag bits, say whether a
        # source transform, a mask and a mask transform are there, and a present one adds its
        # flag (xf86-video-qxl sends masks without SPICE_COMPOSITE_HAS_MASK). The mask
        # transform is read only with a mask. Flags set without their data stay set: the
        # renderer refuses those (docs/conformance.md).
        src_transform = self._transform(v.src_transform)
        if src_transform is not None:
            flags |= lib.SPICE_COMPOSITE_HAS_SRC_TRANSFORM
        mask_image = mask_transform = None
        if mask:
            mask_image = self.image(mask)
            flags |= lib.SPICE_COMPOSITE_HAS_MASK
            mask_transform = self._transform(v.mask_transform)
            if mask_transform is not None:
                flags |= lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM
        return c.Composite(flags, self._image_required(v.src), mask_image, src_transform,
                           mask_transform, v.src_origin, v.mask_origin)

    def _transform(self, addr: int) -> tuple[int, ...] | None:
        if not addr:
            return None
        return decode_transform(self.read(addr, L.TRANSFORM.size))

    def _copy_bits(self, buf: bytes, off: int, compat: bool) -> c.DrawOp:
        return c.CopyBits(L.COPY_BITS.unpack_from(buf, off).src_pos)
