"""A numpy model of the 2D semantics, written apart from the GL path to check it.

It works per pixel on whole-surface arrays with boolean regions (the GL path works on rect
lists and shaders), transcribes spice-common's rop descriptor decision tree and SpiceROP
table literally (the GL path derives ROP3 codes), and evaluates ROP3 codes minterm by minterm.
It shares only the decoding of guest bitmaps and glyphs (`vgpu.render.pixels`), which has its
own tests. Unscaled operations only: scaling is not modelled.
"""

from __future__ import annotations

import numpy as np

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Brush,
    CompressedImage,
    Copy,
    CopyBits,
    Drawable,
    Fill,
    Image,
    Invers,
    Nop,
    Opaque,
    PatternBrush,
    QMask,
    QPoint,
    Rop3,
    SolidBrush,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.render import enums as E
from vgpu.render import pixels as px

# SpiceROP (X11 GX order), on uint32 arrays
_ROPS = [
    lambda s, d: np.zeros_like(d),  # CLEAR
    lambda s, d: s & d,  # AND
    lambda s, d: s & ~d,  # AND_REVERSE
    lambda s, d: s | np.zeros_like(d),  # COPY
    lambda s, d: ~s & d,  # AND_INVERTED
    lambda s, d: d.copy(),  # NOOP
    lambda s, d: s ^ d,  # XOR
    lambda s, d: s | d,  # OR
    lambda s, d: ~(s | d),  # NOR
    lambda s, d: ~s ^ d,  # EQUIV
    lambda s, d: ~d,  # INVERT
    lambda s, d: s | ~d,  # OR_REVERSE
    lambda s, d: ~s | np.zeros_like(d),  # COPY_INVERTED
    lambda s, d: ~s | d,  # OR_INVERTED
    lambda s, d: ~(s & d),  # NAND
    lambda s, d: np.full_like(d, 0xFFFFFFFF),  # SET
]
CLEAR, AND, AND_REVERSE, COPY, AND_INVERTED, NOOP, XOR, OR, NOR, EQUIV, INVERT, OR_REVERSE, \
    COPY_INVERTED, OR_INVERTED, NAND, SET = range(16)

_ALPHA_SURFACES = (E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_8_A, E.SURFACE_FMT_1_A)

INPUT_SRC, INPUT_BRUSH, INPUT_DEST = 0, 1, 2
_INVERT_BITS = (E.ROPD_INVERS_SRC, E.ROPD_INVERS_BRUSH, E.ROPD_INVERS_DEST)


def ropd_to_rop(desc: int, src_input: int, dest_input: int) -> int:
    """canvas_base.c ropd_descriptor_to_rop, branch for branch."""
    old = desc
    desc &= ~(E.ROPD_INVERS_SRC | E.ROPD_INVERS_DEST)
    if old & _INVERT_BITS[src_input]:
        desc |= E.ROPD_INVERS_SRC
    if old & _INVERT_BITS[dest_input]:
        desc |= E.ROPD_INVERS_DEST
    inv_s = bool(desc & E.ROPD_INVERS_SRC)
    inv_d = bool(desc & E.ROPD_INVERS_DEST)
    inv_r = bool(desc & E.ROPD_INVERS_RES)
    if desc & E.ROPD_OP_PUT:
        return COPY if inv_s == inv_r else COPY_INVERTED
    if desc & E.ROPD_OP_OR:
        if inv_r:
            return {(True, True): AND, (True, False): AND_REVERSE,
                    (False, True): AND_INVERTED, (False, False): NOR}[(inv_s, inv_d)]
        return {(True, True): NAND, (True, False): OR_INVERTED,
                (False, True): OR_REVERSE, (False, False): OR}[(inv_s, inv_d)]
    if desc & E.ROPD_OP_AND:
        if inv_r:
            return {(True, True): OR, (True, False): OR_REVERSE,
                    (False, True): OR_INVERTED, (False, False): NAND}[(inv_s, inv_d)]
        return {(True, True): NOR, (True, False): AND_INVERTED,
                (False, True): AND_REVERSE, (False, False): AND}[(inv_s, inv_d)]
    if desc & E.ROPD_OP_XOR:
        if inv_r:
            return {(True, True): EQUIV, (True, False): XOR,
                    (False, True): XOR, (False, False): EQUIV}[(inv_s, inv_d)]
        return {(True, True): XOR, (True, False): EQUIV,
                (False, True): EQUIV, (False, False): XOR}[(inv_s, inv_d)]
    if desc & E.ROPD_OP_BLACKNESS:
        return CLEAR
    if desc & E.ROPD_OP_WHITENESS:
        return SET
    if desc & E.ROPD_OP_INVERS:
        return INVERT
    return COPY


def rop3(code: int, p: np.ndarray, s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """ROP3 by minterms: bit (P<<2 | S<<1 | D) of the code is the result."""
    out = np.zeros_like(d)
    for i in range(8):
        if (code >> i) & 1:
            out |= (p if i & 4 else ~p) & (s if i & 2 else ~s) & (d if i & 1 else ~d)
    return out


def _mul(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    t = x.astype(np.uint32) * a + 0x80
    return ((t >> 8) + t) >> 8


class ReferenceCanvas:
    """Surfaces as (h, w) uint32 arrays of packed channels (B | G<<8 | R<<16 | A<<24)."""

    def __init__(self) -> None:
        self.surfaces: dict[int, tuple[int, np.ndarray]] = {}

    def create(self, sid: int, width: int, height: int, fmt: int) -> None:
        fill = 0xFF000000 if fmt in (E.SURFACE_FMT_16_555, E.SURFACE_FMT_16_565) else 0
        self.surfaces[sid] = (fmt, np.full((height, width), fill, np.uint32))

    def pixels(self, sid: int) -> np.ndarray:
        """(h, w, 4) uint8 channels, as Renderer.read_pixels gives them."""
        return self.surfaces[sid][1].view(np.uint8).reshape(*self.surfaces[sid][1].shape, 4)

    # --- helpers -------------------------------------------------------------------------

    def _region(self, cmd: Drawable, shape: tuple[int, int], mask: QMask | None) -> np.ndarray:
        h, w = shape
        ys, xs = np.mgrid[0:h, 0:w]
        b = cmd.bbox
        reg = (xs >= b.left) & (xs < b.right) & (ys >= b.top) & (ys < b.bottom)
        if cmd.clip is not None:
            inside = np.zeros_like(reg)
            for r in cmd.clip:
                inside |= (xs >= r.left) & (xs < r.right) & (ys >= r.top) & (ys < r.bottom)
            reg &= inside
        if mask is not None and mask.bitmap is not None:
            assert isinstance(mask.bitmap, BitmapImage)
            bits = px.decode_mask(mask.bitmap, bool(mask.flags & E.MASK_FLAGS_INVERS))
            mx = xs - b.left + mask.pos.x
            my = ys - b.top + mask.pos.y
            ok = (mx >= 0) & (my >= 0) & (mx < bits.shape[1]) & (my < bits.shape[0])
            m = np.zeros_like(reg)
            m[ok] = bits[my[ok], mx[ok]]
            reg &= m
        return reg

    def _store(self, fmt: int, arr: np.ndarray, reg: np.ndarray, values: np.ndarray) -> None:
        q = values.astype(np.uint32).view(np.uint8).reshape(*values.shape, 4).copy()
        px.quantize(q, fmt)
        arr[reg] = q.view(np.uint32).reshape(values.shape)[reg]

    def _image(self, image: Image, fmt: int | None) -> tuple[np.ndarray, bool]:
        """The image's pixels converted to surface format `fmt` (None: as they are)."""
        if isinstance(image, SurfaceImage):
            sfmt, arr = self.surfaces[image.surface_id]
            data = arr.view(np.uint8).reshape(*arr.shape, 4).copy()
            # sw_canvas takes a surface's own pixman image (a8r8g8b8, a8 or a1 for these):
            # its alpha counts wherever pixman interprets alpha
            alpha = sfmt in _ALPHA_SURFACES
        else:
            if isinstance(image, CompressedImage) and image.descriptor.type == px.IMAGE_TYPE_QUIC:
                image = px.quic_bitmap(image)
            assert isinstance(image, BitmapImage)
            data, alpha = px.decode_bitmap(image)
            data = data.copy()
        if fmt is not None:
            px.quantize(data, fmt)
        return data.view(np.uint32)[..., 0], alpha

    def _src_at(self, cmd: Drawable, image: Image, area, fmt: int | None,
                shape) -> np.ndarray:
        """The source pixel for every destination pixel (0 where outside)."""
        src, _ = self._image(image, fmt)
        h, w = shape
        ys, xs = np.mgrid[0:h, 0:w]
        sx = xs - cmd.bbox.left + area.left
        sy = ys - cmd.bbox.top + area.top
        ok = (sx >= 0) & (sy >= 0) & (sx < src.shape[1]) & (sy < src.shape[0])
        out = np.zeros((h, w), np.uint32)
        out[ok] = src[sy[ok], sx[ok]]
        return out

    def _brush_at(self, brush: Brush, fmt: int | None, shape) -> np.ndarray:
        h, w = shape
        if brush is None:
            return np.zeros((h, w), np.uint32)
        if isinstance(brush, SolidBrush):
            c = px.color_to_pixel(brush.color, fmt)
            return np.full((h, w), c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24, np.uint32)
        assert isinstance(brush, PatternBrush)
        pat, _ = self._image(brush.pat, fmt)
        ys, xs = np.mgrid[0:h, 0:w]
        return pat[(ys - brush.pos.y) % pat.shape[0], (xs - brush.pos.x) % pat.shape[1]]

    # --- operations -------------------------------------------------------------------------

    def execute(self, cmd: Drawable) -> None:
        fmt, arr = self.surfaces[cmd.surface_id]
        op = cmd.op
        shape = arr.shape
        d = arr.copy()
        if isinstance(op, Nop):
            return
        if isinstance(op, Fill):
            reg = self._region(cmd, shape, op.mask)
            rop = ropd_to_rop(op.rop_descriptor, INPUT_BRUSH, INPUT_DEST)
            self._store(fmt, arr, reg, _ROPS[rop](self._brush_at(op.brush, fmt, shape), d))
        elif isinstance(op, Blackness | Whiteness | Invers):
            reg = self._region(cmd, shape, op.mask)
            value = {Blackness: lambda: np.zeros_like(d), Whiteness: lambda: ~np.zeros_like(d),
                     Invers: lambda: ~d}[type(op)]()
            self._store(fmt, arr, reg, value)
        elif isinstance(op, Copy | Blend):
            reg = self._region(cmd, shape, op.mask)
            rop = ropd_to_rop(op.rop_descriptor, INPUT_SRC, INPUT_DEST)
            s = self._src_at(cmd, op.src_bitmap, op.src_area, fmt, shape)
            self._store(fmt, arr, reg, _ROPS[rop](s, d))
        elif isinstance(op, Opaque):
            reg = self._region(cmd, shape, op.mask)
            rop = ropd_to_rop(op.rop_descriptor, INPUT_BRUSH, INPUT_SRC)
            s = self._src_at(cmd, op.src_bitmap, op.src_area, fmt, shape)
            self._store(fmt, arr, reg, _ROPS[rop](self._brush_at(op.brush, fmt, shape), s))
        elif isinstance(op, Rop3):
            reg = self._region(cmd, shape, op.mask)
            s = self._src_at(cmd, op.src_bitmap, op.src_area, fmt, shape)
            self._store(fmt, arr, reg, rop3(op.rop3, self._brush_at(op.brush, fmt, shape), s, d))
        elif isinstance(op, Transparent):
            reg = self._region(cmd, shape, None)
            s = self._src_at(cmd, op.src_bitmap, op.src_area, fmt, shape)
            if fmt in (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB):
                key = op.true_color & 0xFFFFFF
            else:
                k = np.array(px.color_to_pixel(op.true_color, E.SURFACE_FMT_32_ARGB), np.uint8)
                k = px.quantize(k, fmt)
                key = int(k[0]) | int(k[1]) << 8 | int(k[2]) << 16
            reg &= (s & 0xFFFFFF) != key
            self._store(fmt, arr, reg, s)
        elif isinstance(op, AlphaBlend):
            reg = self._region(cmd, shape, None)
            if op.alpha == 0:
                return
            s = self._src_at(cmd, op.src_bitmap, op.src_area, None, shape)
            if isinstance(op.src_bitmap, SurfaceImage):
                # an ARGB surface's alpha counts whatever the flag (canvas_get_as_surface)
                has_alpha = bool(op.alpha_flags & E.ALPHA_FLAGS_SRC_SURFACE_HAS_ALPHA
                                 or self.surfaces[op.src_bitmap.surface_id][0]
                                 == E.SURFACE_FMT_32_ARGB)
            else:
                has_alpha = self._image(op.src_bitmap, None)[1]  # as its decode says
            sc = s.view(np.uint8).reshape(*shape, 4).astype(np.uint32)
            dc = d.view(np.uint8).reshape(*shape, 4).astype(np.uint32)
            if not has_alpha:
                sc[..., 3] = 255
            if not op.alpha_flags & E.ALPHA_FLAGS_DEST_HAS_ALPHA and fmt != E.SURFACE_FMT_32_ARGB:
                dc[..., 3] = 255
            if op.alpha != 255:
                sc = _mul(sc, op.alpha)
            out = np.minimum(sc + _mul(dc, 255 - sc[..., 3:4]), 255).astype(np.uint8)
            self._store(fmt, arr, reg, out.view(np.uint32)[..., 0])
        elif isinstance(op, Text):
            self._text(cmd, op, fmt, arr, d)
        elif isinstance(op, CopyBits):
            reg = self._region(cmd, shape, None)
            dx = cmd.bbox.left - op.src_pos.x
            dy = cmd.bbox.top - op.src_pos.y
            if dx == 0 and dy == 0:
                return
            h, w = shape
            ys, xs = np.mgrid[0:h, 0:w]
            sx, sy = xs - dx, ys - dy
            reg &= (sx >= 0) & (sy >= 0) & (sx < w) & (sy < h)
            src = np.zeros_like(d)
            src[reg] = d[sy[reg], sx[reg]]
            self._store(fmt, arr, reg, src)
        else:
            raise TypeError(f"the reference model has no semantics for {type(op).__name__}")

    def _text(self, cmd: Drawable, op: Text, fmt: int, arr: np.ndarray, d: np.ndarray) -> None:
        shape = arr.shape
        reg = self._region(cmd, shape, None)
        ba = op.back_area
        if ba.right > ba.left and ba.bottom > ba.top:
            if op.fore_mode != E.ROPD_OP_PUT:
                return
            ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
            back = reg & (xs >= ba.left) & (xs < ba.right) & (ys >= ba.top) & (ys < ba.bottom)
            self._store(fmt, arr, back, self._brush_at(op.back_brush, fmt, shape))
        if op.fore_brush is None:
            return
        left, top, cov = px.glyph_mask(op.str)
        m = np.zeros(shape, np.uint32)
        h, w = shape
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + cov.shape[1], w), min(top + cov.shape[0], h)
        if x0 >= x1 or y0 >= y1:
            return
        m[y0:y1, x0:x1] = cov[y0 - top : y1 - top, x0 - left : x1 - left]
        cur = arr.view(np.uint8).reshape(*shape, 4).astype(np.uint32)
        brush = op.fore_brush
        alpha = False
        if isinstance(brush, PatternBrush):
            # pixman composites the pattern from the string mask's corner, an RGBA one
            # with its own (premultiplied) alpha
            brush = PatternBrush(brush.pat, QPoint(left + brush.pos.x, top + brush.pos.y))
            alpha = self._image(brush.pat, None)[1]
        b = self._brush_at(brush, None if alpha else fmt, shape).view(np.uint8)
        b = b.reshape(*shape, 4).astype(np.uint32)
        if not alpha:
            b[..., 3] = 255
        sm = _mul(b, m[..., None])
        out = np.minimum(sm + _mul(cur, 255 - sm[..., 3:4]), 255).astype(np.uint8)
        fore = reg & (m > 0)
        self._store(fmt, arr, fore, out.view(np.uint32)[..., 0])
