"""Writing the typed commands of `vgpu.device.commands` into guest memory.

`CommandWriter.write(cmd, release_id, compat)` lays one command out as a QXL
guest driver would: the command struct and everything it points to (images,
palettes, clip lists, glyph strings, paths, cursor shapes) in freshly allocated
memory, data longer than `chunk_size` split over a chain of QXLDataChunks. It
returns the QXLPHYSICAL of the command and the allocations to free once the
device releases it. The struct layouts are the parser's (`vgpu.device.layouts`),
so a built command parses back to an equal value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from vgpu.device import commands as c
from vgpu.device import layouts as L
from vgpu.device.abi import lib, sizeof
from vgpu.device.payloads import (
    DRAW_TYPES,
    encode_glyphs,
    encode_path,
    encode_rects,
    encode_transform,
)

DEFAULT_CHUNK_SIZE = 64 * 1024
"""Bytes in one QXLDataChunk; a guest's allocator hands out blocks about this size."""

COMMAND_TYPES: dict[type, int] = {
    c.Drawable: lib.QXL_CMD_DRAW, c.UpdateCmd: lib.QXL_CMD_UPDATE,
    c.CursorCmd: lib.QXL_CMD_CURSOR, c.MessageCmd: lib.QXL_CMD_MESSAGE,
    c.SurfaceCmd: lib.QXL_CMD_SURFACE,
}

_M32 = 0xFFFFFFFF


class CommandWriter:
    """Builds commands in `buffer` (the guest's view of the memory file).

    alloc(size) -> mapping offset of a new block in command memory;
    phys(offset) -> the QXLPHYSICAL a device must be given for a mapping offset.
    """

    def __init__(self, buffer: object, alloc: Callable[[int], int],
                 phys: Callable[[int], int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.buffer = buffer
        self._alloc = alloc
        self.phys = phys
        self.chunk_size = chunk_size
        self.blocks: list[int] = []

    # --- memory helpers -------------------------------------------------------------

    def alloc(self, size: int) -> int:
        off = self._alloc(size)
        self.blocks.append(off)
        self.buffer[off:off + size] = bytes(size)
        return off

    def put(self, data: bytes) -> int:
        off = self._alloc(len(data))
        self.blocks.append(off)
        self.buffer[off:off + len(data)] = data
        return off

    def chunked(self, head_size: int, data: bytes, chunk_at: int) -> int:
        """A struct of `head_size` bytes whose inline QXLDataChunk (at `chunk_at`) opens a
        chain holding `data`; returns the struct's mapping offset."""
        first = data[:self.chunk_size]
        off = self.alloc(head_size + len(first))
        self.buffer[off + head_size:off + head_size + len(first)] = first
        self._chain(off + chunk_at, first, data[self.chunk_size:])
        return off

    def chain(self, data: bytes) -> int:
        """A stand-alone chunk chain holding `data`; returns the first chunk's offset."""
        first = data[:self.chunk_size]
        off = self.alloc(L.CHUNK_HEAD + len(first))
        self.buffer[off + L.CHUNK_HEAD:off + L.CHUNK_HEAD + len(first)] = first
        self._chain(off, first, data[self.chunk_size:])
        return off

    def _chain(self, chunk: int, first: bytes, rest: bytes) -> None:
        size = len(first)
        rest = memoryview(rest)  # slices without copies: not the whole tail again per chunk
        while True:
            nxt = 0
            if rest:
                part, rest = rest[:self.chunk_size], rest[self.chunk_size:]
                nxt_off = self.alloc(L.CHUNK_HEAD + len(part))
                self.buffer[nxt_off + L.CHUNK_HEAD:nxt_off + L.CHUNK_HEAD + len(part)] = part
                nxt = self.phys(nxt_off)
            L.CHUNK.pack_into(self.buffer, chunk, size, nxt)
            if not nxt:
                return
            chunk, size = nxt_off, len(part)

    # --- commands ---------------------------------------------------------------------

    def write(self, cmd: c.Command, release_id: int, compat: bool = False) -> int:
        """Lays out `cmd` (with QXLReleaseInfo.id = release_id); returns its QXLPHYSICAL."""
        if isinstance(cmd, c.Drawable):
            off = self._compat_drawable(cmd, release_id) if compat else self._drawable(
                cmd, release_id)
        elif isinstance(cmd, c.UpdateCmd):
            off = self._update(cmd, release_id, compat)
        elif isinstance(cmd, c.MessageCmd):
            if b"\0" in cmd.data:
                raise ValueError("a QXL message is NUL-terminated; it cannot contain NUL")
            off = self.put(struct.pack("<Q", release_id) + cmd.data + b"\0")
        elif isinstance(cmd, c.SurfaceCmd):
            off = self._surface(cmd, release_id)
        elif isinstance(cmd, c.CursorCmd):
            off = self._cursor(cmd, release_id)
        else:
            raise TypeError(f"not a command: {cmd!r}")
        return self.phys(off)

    def _drawable(self, d: c.Drawable, rid: int) -> int:
        off = self.alloc(L.DRAW_SIZE)
        clip_type, clip = self._clip(d.clip)
        rects = [v for r in d.surfaces_rects for v in r]
        L.DRAW_HEAD.pack_into(self.buffer, off, rid, d.surface_id, d.effect,
                              DRAW_TYPES[type(d.op)], d.self_bitmap, *d.self_bitmap_area,
                              *d.bbox, clip_type, clip, d.mm_time, *d.surfaces_dest, *rects)
        self._op(d.op, off + L.DRAW_U, compat=False)
        return off

    def _compat_drawable(self, d: c.Drawable, rid: int) -> int:
        if d.surface_id != 0 or isinstance(d.op, c.Composite) or d.self_bitmap not in (0, 1):
            raise ValueError("a compat drawable draws on surface 0, without composite")
        off = self.alloc(L.COMPAT_SIZE)
        clip_type, clip = self._clip(d.clip)
        L.COMPAT_HEAD.pack_into(self.buffer, off, rid, d.effect, DRAW_TYPES[type(d.op)],
                                d.self_bitmap, *d.self_bitmap_area, *d.bbox, clip_type, clip,
                                d.mm_time)
        self._op(d.op, off + L.COMPAT_U, compat=True)
        return off

    def _clip(self, clip: tuple[c.QRect, ...] | None) -> tuple[int, int]:
        if clip is None:
            return lib.SPICE_CLIP_TYPE_NONE, 0
        off = self.chunked(L.CLIP_CHUNK + L.CHUNK_HEAD, encode_rects(clip), L.CLIP_CHUNK)
        L.CLIP.pack_into(self.buffer, off, len(clip))
        return lib.SPICE_CLIP_TYPE_RECTS, self.phys(off)

    def _op(self, op: c.DrawOp, at: int, compat: bool) -> None:
        buf = self.buffer
        if isinstance(op, c.Fill):
            L.FILL.pack_into(buf, at, *self._brush(op.brush), op.rop_descriptor,
                             *self._mask(op.mask))
        elif isinstance(op, c.Opaque):
            L.OPAQUE.pack_into(buf, at, self._image(op.src_bitmap), *op.src_area,
                               *self._brush(op.brush), op.rop_descriptor, op.scale_mode,
                               *self._mask(op.mask))
        elif isinstance(op, c.Copy | c.Blend):
            L.COPY.pack_into(buf, at, self._image(op.src_bitmap), *op.src_area,
                             op.rop_descriptor, op.scale_mode, *self._mask(op.mask))
        elif isinstance(op, c.Blackness | c.Whiteness | c.Invers):
            L.BLACKNESS.pack_into(buf, at, *self._mask(op.mask))
        elif isinstance(op, c.Rop3):
            L.ROP3.pack_into(buf, at, self._image(op.src_bitmap), *op.src_area,
                             *self._brush(op.brush), op.rop3, op.scale_mode,
                             *self._mask(op.mask))
        elif isinstance(op, c.Stroke):
            style = 0
            if op.attr.style:
                style = self.phys(self.put(struct.pack(f"<{len(op.attr.style)}i",
                                                       *op.attr.style)))
            L.STROKE.pack_into(buf, at, self._path(op.path), op.attr.flags,
                               len(op.attr.style), style, *self._brush(op.brush),
                               op.fore_mode, op.back_mode)
        elif isinstance(op, c.Text):
            L.TEXT.pack_into(buf, at, self._string(op.str), *op.back_area,
                             *self._brush(op.fore_brush), *self._brush(op.back_brush),
                             op.fore_mode, op.back_mode)
        elif isinstance(op, c.Transparent):
            L.TRANSPARENT.pack_into(buf, at, self._image(op.src_bitmap), *op.src_area,
                                    op.src_color, op.true_color)
        elif isinstance(op, c.AlphaBlend):
            if compat:
                if op.alpha_flags:
                    raise ValueError("a compat alpha blend has no alpha_flags")
                L.COMPAT_ALPHA.pack_into(buf, at, op.alpha, self._image(op.src_bitmap),
                                         *op.src_area)
            else:
                L.ALPHA.pack_into(buf, at, op.alpha_flags, op.alpha,
                                  self._image(op.src_bitmap), *op.src_area)
        elif isinstance(op, c.Composite):
            L.COMPOSITE.pack_into(buf, at, op.flags, self._image(op.src),
                                  self._transform(op.src_transform),
                                  self._image(op.mask) if op.mask is not None else 0,
                                  self._transform(op.mask_transform), *op.src_origin,
                                  *op.mask_origin)
        elif isinstance(op, c.CopyBits):
            L.COPY_BITS.pack_into(buf, at, *op.src_pos)
        elif not isinstance(op, c.Nop):
            raise TypeError(f"not a draw operation: {op!r}")

    def _transform(self, t: tuple[int, ...] | None) -> int:
        if t is None:
            return 0
        return self.phys(self.put(encode_transform(t)))

    def _brush(self, brush: c.Brush) -> tuple[int, int, int, int]:
        if brush is None:
            return lib.SPICE_BRUSH_TYPE_NONE, 0, 0, 0
        if isinstance(brush, c.SolidBrush):
            return lib.SPICE_BRUSH_TYPE_SOLID, brush.color & _M32, 0, 0
        return lib.SPICE_BRUSH_TYPE_PATTERN, self._image(brush.pat), *brush.pos

    def _mask(self, mask: c.QMask) -> tuple[int, int, int, int]:
        bitmap = self._image(mask.bitmap) if mask.bitmap is not None else 0
        return mask.flags, *mask.pos, bitmap

    def _image(self, image: c.Image) -> int:
        d = image.descriptor
        if isinstance(image, c.BitmapImage):
            off = self.alloc(L.BITMAP.size)
            palette = self._palette(image.palette) if image.palette is not None else 0
            if image.flags & lib.QXL_BITMAP_DIRECT:
                data = self.phys(self.put(image.data))
            else:
                data = self.phys(self.chain(image.data))
            L.BITMAP.pack_into(self.buffer, off, image.format, image.flags, image.width,
                               image.height, image.stride, palette, data)
        elif isinstance(image, c.SurfaceImage):
            off = self.alloc(L.SURFACE_ID.size)
            L.SURFACE_ID.pack_into(self.buffer, off, image.surface_id)
        else:
            off = self.chunked(L.QUIC_CHUNK + L.CHUNK_HEAD, image.data, L.QUIC_CHUNK)
            L.QUIC_SIZE.pack_into(self.buffer, off, len(image.data))
        L.DESC.pack_into(self.buffer, off, d.id, d.type, d.flags, d.width, d.height)
        return self.phys(off)

    def _palette(self, palette: c.Palette) -> int:
        off = self.alloc(L.PALETTE_ENTS + 4 * len(palette.ents))
        L.PALETTE.pack_into(self.buffer, off, palette.unique, len(palette.ents))
        struct.pack_into(f"<{len(palette.ents)}I", self.buffer, off + L.PALETTE_ENTS,
                         *palette.ents)
        return self.phys(off)

    def _string(self, s: c.GlyphString) -> int:
        data = encode_glyphs(s)
        off = self.chunked(L.STRING_CHUNK + L.CHUNK_HEAD, data, L.STRING_CHUNK)
        L.STRING.pack_into(self.buffer, off, len(data), len(s.glyphs), s.flags)
        return self.phys(off)

    def _path(self, path: tuple[c.PathSeg, ...]) -> int:
        data = encode_path(path)
        off = self.chunked(L.PATH_CHUNK + L.CHUNK_HEAD, data, L.PATH_CHUNK)
        L.PATH.pack_into(self.buffer, off, len(data))
        return self.phys(off)

    def _update(self, u: c.UpdateCmd, rid: int, compat: bool) -> int:
        if compat:
            if u.surface_id != 0:
                raise ValueError("a compat update is for surface 0")
            off = self.alloc(L.COMPAT_UPDATE.size)
            L.COMPAT_UPDATE.pack_into(self.buffer, off, rid, *u.area, u.update_id)
        else:
            off = self.alloc(L.UPDATE.size)
            L.UPDATE.pack_into(self.buffer, off, rid, *u.area, u.update_id, u.surface_id)
        return off

    def _surface(self, s: c.SurfaceCmd, rid: int) -> int:
        off = self.alloc(sizeof("QXLSurfaceCmd"))
        cr = s.create
        if cr is None:
            create = (0, 0, 0, 0, 0)
        else:
            create = (cr.format, cr.width, cr.height, cr.stride, self.phys(cr.data_offset))
        L.SURFACE_CMD.pack_into(self.buffer, off, rid, s.surface_id, s.type, s.flags, *create)
        return off

    def _cursor(self, cmd: c.CursorCmd, rid: int) -> int:
        off = self.alloc(L.CURSOR_SIZE)
        L.CURSOR_HEAD.pack_into(self.buffer, off, rid, cmd.type)
        if cmd.type == lib.QXL_CURSOR_SET:
            shape = 0
            if cmd.shape is not None:
                sh = cmd.shape
                so = self.chunked(L.CURSOR_CHUNK + L.CHUNK_HEAD, sh.data, L.CURSOR_CHUNK)
                L.CURSOR_SHAPE.pack_into(self.buffer, so, sh.unique, sh.type, sh.width,
                                         sh.height, sh.hot_spot_x, sh.hot_spot_y, len(sh.data))
                shape = self.phys(so)
            L.CURSOR_SET.pack_into(self.buffer, off, *cmd.position, int(cmd.visible), shape)
        elif cmd.type == lib.QXL_CURSOR_MOVE:
            L.CURSOR_POS.pack_into(self.buffer, off, *cmd.position)
        elif cmd.type == lib.QXL_CURSOR_TRAIL:
            L.CURSOR_TRAIL.pack_into(self.buffer, off, cmd.trail_length, cmd.trail_frequency)
        return off
