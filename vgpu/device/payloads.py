"""What the typed commands of `vgpu.device.commands` are on the wire, guest memory and
record files alike: the draw type codes, and the data of clip lists, paths, glyph strings
and transforms (what follows their chunk headers).

Encoders only: `vgpu.device.parser`'s `decode_*` read the same data back and check every
value, since it comes from the guest or a file. The guest's builders and the record writer
(`vgpu.replay.writer`) share these, so memory and files hold the same bytes.
"""

from __future__ import annotations

import struct

from vgpu.device import commands as c
from vgpu.device import layouts as L
from vgpu.device.abi import lib

DRAW_TYPES: dict[type, int] = {
    c.Nop: lib.QXL_DRAW_NOP, c.Fill: lib.QXL_DRAW_FILL, c.Opaque: lib.QXL_DRAW_OPAQUE,
    c.Copy: lib.QXL_DRAW_COPY, c.CopyBits: lib.QXL_COPY_BITS, c.Blend: lib.QXL_DRAW_BLEND,
    c.Blackness: lib.QXL_DRAW_BLACKNESS, c.Whiteness: lib.QXL_DRAW_WHITENESS,
    c.Invers: lib.QXL_DRAW_INVERS, c.Rop3: lib.QXL_DRAW_ROP3, c.Stroke: lib.QXL_DRAW_STROKE,
    c.Text: lib.QXL_DRAW_TEXT, c.Transparent: lib.QXL_DRAW_TRANSPARENT,
    c.AlphaBlend: lib.QXL_DRAW_ALPHA_BLEND, c.Composite: lib.QXL_DRAW_COMPOSITE,
}

_M32 = 0xFFFFFFFF
_RECT = struct.Struct("<4i")  # QXLRect: top, left, bottom, right


def encode_rects(rects: tuple[c.QRect, ...]) -> bytes:
    return b"".join(_RECT.pack(*r) for r in rects)


def encode_path(path: tuple[c.PathSeg, ...]) -> bytes:
    parts = []
    for seg in path:
        flat = [v for p in seg.points for v in p]
        parts.append(struct.pack(f"<II{len(flat)}i", seg.flags, len(seg.points), *flat))
    return b"".join(parts)


def encode_transform(t: tuple[int, ...]) -> bytes:
    """A QXLTransform: six 16.16 fixed-point values, signed or not."""
    return L.TRANSFORM.struct.pack(*(v & _M32 for v in t))


def encode_glyphs(string: c.GlyphString) -> bytes:
    parts = []
    for g in string.glyphs:
        parts += [L.GLYPH.struct.pack(*g.render_pos, *g.glyph_origin, g.width, g.height), g.data]
    return b"".join(parts)
