"""COMPOSITE's flags decoded into composite.glsl's uniforms (spice-common
canvas_draw_composite: operator, filters, repeat modes, transforms, component alpha)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from vgpu.device.commands import Composite
from vgpu.render import enums as E
from vgpu.render.errors import RenderError
from vgpu.render.region import Box

# pixman_op_t values (pixman.h): the Porter/Duff set, its DISJOINT_ and CONJOINT_ variants
# (same order from 0x10 and 0x20), the PDF separable blend modes, the HSL modes.
DISJOINT, CONJOINT = 0x10, 0x20
COLOR_DODGE, COLOR_BURN, SOFT_LIGHT = 0x35, 0x36, 0x38
HSL_HUE, HSL_LUMINOSITY = 0x3B, 0x3E
SUPPORTED_OPS = frozenset([*range(14), *range(0x10, 0x1C), *range(0x20, 0x2C),
                           *range(0x30, HSL_LUMINOSITY + 1)])
"""Every pixman_op_t; any other operator byte is refused (RenderError)."""

# pixman's combine_factor_t (pixman-combine-float.c), as composite.glsl's factor() numbers
(ZERO, ONE, SRC_ALPHA, DEST_ALPHA, INV_SA, INV_DA, SA_OVER_DA, DA_OVER_SA, INV_SA_OVER_DA,
 INV_DA_OVER_SA, ONE_MINUS_SA_OVER_DA, ONE_MINUS_DA_OVER_SA, ONE_MINUS_INV_DA_OVER_SA,
 ONE_MINUS_INV_SA_OVER_DA) = range(14)

# (source factor, destination factor) of the operators pixman runs on float Porter/Duff
# combiners, those that divide. DISJOINT_/CONJOINT_ CLEAR, SRC and DST are plain CLEAR, SRC
# and DST (pixman's operator_table), so they never get here.
# SATURATE divides too: pixman 0.42 runs it on float factors (INV_DA_OVER_SA, ONE), but as
# the integer OVER_REVERSE where source and mask are opaque (optimize_operator).
SATURATE, OVER_REVERSE = 0x0D, 0x04
_SATURATE_FACTORS = (INV_DA_OVER_SA, ONE)
_FLOAT_FACTORS = {
    DISJOINT + 3: (ONE, INV_SA_OVER_DA),
    DISJOINT + 4: (INV_DA_OVER_SA, ONE),
    DISJOINT + 5: (ONE_MINUS_INV_DA_OVER_SA, ZERO),
    DISJOINT + 6: (ZERO, ONE_MINUS_INV_SA_OVER_DA),
    DISJOINT + 7: (INV_DA_OVER_SA, ZERO),
    DISJOINT + 8: (ZERO, INV_SA_OVER_DA),
    DISJOINT + 9: (ONE_MINUS_INV_DA_OVER_SA, INV_SA_OVER_DA),
    DISJOINT + 10: (INV_DA_OVER_SA, ONE_MINUS_INV_SA_OVER_DA),
    DISJOINT + 11: (INV_DA_OVER_SA, INV_SA_OVER_DA),
    CONJOINT + 3: (ONE, ONE_MINUS_SA_OVER_DA),
    CONJOINT + 4: (ONE_MINUS_DA_OVER_SA, ONE),
    CONJOINT + 5: (DA_OVER_SA, ZERO),
    CONJOINT + 6: (ZERO, SA_OVER_DA),
    CONJOINT + 7: (ONE_MINUS_DA_OVER_SA, ZERO),
    CONJOINT + 8: (ZERO, ONE_MINUS_SA_OVER_DA),
    CONJOINT + 9: (DA_OVER_SA, ONE_MINUS_SA_OVER_DA),
    CONJOINT + 10: (ONE_MINUS_DA_OVER_SA, SA_OVER_DA),
    CONJOINT + 11: (ONE_MINUS_DA_OVER_SA, ONE_MINUS_SA_OVER_DA),
}
# the blend modes that divide also run on pixman's float combiners
_FLOAT_BLENDS = frozenset([COLOR_DODGE, COLOR_BURN, SOFT_LIGHT,
                           *range(HSL_HUE, HSL_LUMINOSITY + 1)])

def _reduce(op: int) -> int:
    """DISJOINT_/CONJOINT_ CLEAR, SRC, DST are CLEAR, SRC, DST (pixman's integer ones)."""
    if DISJOINT <= op < 0x30 and (op & 0x0F) < 3:
        return op & 0x0F
    return op


def _bits(v: int, lo: int, hi: int) -> int:
    return (v >> lo) & ((1 << (hi - lo)) - 1)


# pixman_filter_t: FAST, GOOD, BEST, NEAREST, BILINEAR (convolutions are refused: the
# canvas passes them no parameters, which pixman would read)
FILTER_FAST, FILTER_GOOD, FILTER_BEST, FILTER_NEAREST, FILTER_BILINEAR = range(5)
_BILINEAR_FILTERS = frozenset([FILTER_GOOD, FILTER_BEST, FILTER_BILINEAR])
REPEAT_NONE = 0

FIXED_1 = 1 << 16
_HALF = FIXED_1 // 2
_IDENTITY = (FIXED_1, 0, 0, 0, FIXED_1, 0)
PIXMAN_MAX_IMAGE = 0x7FFF
"""pixman composites nothing from an image this wide or tall (analyze_extent: its repeat
code takes sizes to 16.16)."""
_NEAREST_TRANSLATION_LIMIT = 30000 << 16
"""pixman takes BILINEAR for NEAREST on odd integer transforms only within this translation
(compute_image_info); it decides whether a covered opaque image counts as opaque."""


class ImageShape(NamedTuple):
    """What sampling needs to know of a source or mask image."""

    width: int
    height: int
    alpha: bool
    """the image has an alpha channel (an xRGB one reads alpha 255 inside, 0 outside)"""
    surface: bool = False
    """the image is a surface (SOURCE_OPAQUE applies only to those)"""


def _int32(v: int) -> int:
    return ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _is_16bit(v: int) -> bool:
    return -0x8000 <= v <= 0x7FFF


def _is_16_16(v: int) -> bool:
    return -(1 << 31) <= v < 1 << 31


def _matrix(t: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The guest's 16.16 rows (t00, t01, t02, t10, t11, t12) as int32, or None for no
    transform: pixman_image_set_transform drops an identity one (the canvas adds the row
    0, 0, 1, so every transform is affine)."""
    if t is None:
        return None
    if len(t) != 6:
        raise RenderError("composite transform needs 6 values")
    m = tuple(_int32(x) for x in t)
    return None if m == _IDENTITY else m


def _transform(m: tuple[int, ...], x: int, y: int) -> tuple[int, int]:
    """pixman_transform_point_31_16's affine case: 16.16 (x, y) to exact 48.16, each row's
    products of the fractional parts rounded once."""
    out = []
    for a, b, c in (m[:3], m[3:]):
        hi = a * (x >> 16) + b * (y >> 16) + c
        lo = a * (x & 0xFFFF) + b * (y & 0xFFFF)
        out.append(hi + ((lo + 0x8000) >> 16))
    return out[0], out[1]


def _transformed_extents(m: tuple[int, ...] | None, x1: int, y1: int, x2: int, y2: int
                         ) -> tuple[int, int, int, int] | None:
    """pixman's compute_transformed_extents: the bounds of the box's corner pixel centres
    after the transform, or None where one leaves pixman_fixed_t (pixman_transform_point
    fails)."""
    fx1, fy1 = (x1 << 16) + _HALF, (y1 << 16) + _HALF
    fx2, fy2 = (x2 << 16) - _HALF, (y2 << 16) - _HALF
    if m is None:
        return fx1, fy1, fx2, fy2
    points = [_transform(m, px, py) for px in (fx1, fx2) for py in (fy1, fy2)]
    if not all(_is_16_16(v) for p in points for v in p):
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How pixman reads a source or mask: transform, filter, repeat, format."""

    matrix: tuple[int, ...] | None
    filter: int
    repeat: int
    opaque: bool
    """read as xRGB: alpha 255 inside the image (and 0 outside under REPEAT_NONE)"""
    component_alpha: bool = False

    @property
    def bilinear(self) -> bool:
        return self.filter in _BILINEAR_FILTERS

    def _nearest_equivalent(self) -> bool:
        """compute_image_info's FAST_PATH_NEAREST_FILTER: nearest, or bilinear where every
        sample falls on a texel centre."""
        m = self.matrix
        if not self.bilinear or m is None:
            return True
        if any(v & 0xFFFF for v in m):
            return False
        odd = (_int32(_int32(m[0] + m[1]) & _int32(m[3] + m[4])) >> 16)
        return (odd > 0 and odd & 1 == 1  # C's `% 2 == 1`: positive odd only
                and all(-_NEAREST_TRANSLATION_LIMIT <= v <= _NEAREST_TRANSLATION_LIMIT
                        for v in (m[2], m[5])))

    def analyze(self, img: ImageShape, x1: int, y1: int, x2: int, y2: int) -> bool | None:
        """pixman's analyze_extent for the image's samples of the box (x1, y1)-(x2, y2) of
        its own coordinates (destination box moved by the origin): None where pixman
        composites nothing (the positions would leave its 16.16 range), else whether the
        image counts as opaque there (FAST_PATH_IS_OPAQUE, which optimize_operator reads)."""
        if not all(_is_16bit(v) for v in (x1 - 1, y1 - 1, x2 + 1, y2 + 1)):
            return None
        w, h = img.width, img.height
        if w >= PIXMAN_MAX_IMAGE or h >= PIXMAN_MAX_IMAGE:
            return None
        samples_opaque = self.opaque and not self.component_alpha
        if self.matrix is None and x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
            return samples_opaque
        inner = _transformed_extents(self.matrix, x1, y1, x2, y2)
        outer = _transformed_extents(self.matrix, x1 - 1, y1 - 1, x2 + 1, y2 + 1)
        if inner is None or outer is None:
            return None
        off, size = (-_HALF, FIXED_1) if self.bilinear else (-1, 0)
        ox1, oy1, ox2, oy2 = outer
        if not (_is_16_16(ox1 + off - 8) and _is_16_16(oy1 + off - 8)
                and _is_16_16(ox2 + off + 8 + size) and _is_16_16(oy2 + off + 8 + size)):
            return None
        if not samples_opaque:
            return False
        if self.repeat != REPEAT_NONE:
            return True
        tx1, ty1, tx2, ty2 = inner
        if self._nearest_equivalent() and ((tx1 - 1) >> 16 >= 0 and (ty1 - 1) >> 16 >= 0
                                           and (tx2 - 1) >> 16 < w and (ty2 - 1) >> 16 < h):
            return True
        return self.bilinear and ((tx1 - _HALF) >> 16 >= 0 and (ty1 - _HALF) >> 16 >= 0
                                  and (tx2 + _HALF) >> 16 < w and (ty2 + _HALF) >> 16 < h)

    def rows(self, px: int, py: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """composite.glsl's position rows (r0, r1): the 16.16 sample position of destination
        pixel (x, y), which is pixel (x + px, y + py) of the image's own coordinates, is
        (r0[0] * x + r0[1] * y + r0[2], the same with r1) modulo 2^32. That is pixman's
        transform of the pixel centre, exact: the centre's halves add (a + b + 1) >> 1 to
        each row once rounded, and analyze() ensures the true positions fit in 32 bits."""
        m = self.matrix or _IDENTITY
        out = []
        for a, b, c in (m[:3], m[3:]):
            k = c + ((a + b + 1) >> 1) + a * px + b * py
            out.append((a, b, _int32(k)))
        return out[0], out[1]


@dataclass(frozen=True, slots=True)
class CompositeSetup:
    uniforms: dict[str, object]
    defines: dict[str, int]
    """composite.glsl's variant: FLOAT (pixman's float combiners and wide sampling, not its
    8-bit ones), each image's filter and repeat mode"""


def composite_setup(op: Composite, dst_fmt: int, bbox: Box, src: ImageShape,
                    mask: ImageShape | None) -> CompositeSetup | None:
    """The uniforms of a COMPOSITE into bbox, or None where pixman (so the canvas) composites
    nothing. Guest values are checked here: RenderError for what the canvas refuses."""
    f = op.flags
    if f < 0 or f & ~E.COMPOSITE_FLAGS_MASK:
        raise RenderError(f"unknown composite flags {f:#x}")
    pix_op = _bits(f, 0, 8)
    if pix_op not in SUPPORTED_OPS:
        raise RenderError(f"composite operator {pix_op:#x} is not a pixman_op_t")
    src_filter = _bits(f, 8, 11)
    mask_filter = _bits(f, 11, 14)
    if src_filter > FILTER_BILINEAR or mask_filter > FILTER_BILINEAR:
        raise RenderError("composite filter not supported")
    if (op.src_transform is not None) != bool(f & E.COMPOSITE_HAS_SRC_TRANSFORM):
        raise RenderError("composite source transform flag and transform disagree")
    if bool(f & E.COMPOSITE_HAS_MASK) != (mask is not None):
        raise RenderError("composite mask flag and mask disagree")
    # the canvas reads the mask transform flag only with a mask
    if mask is not None and (op.mask_transform is not None) != bool(
            f & E.COMPOSITE_HAS_MASK_TRANSFORM):
        raise RenderError("composite mask transform flag and transform disagree")
    component_alpha = bool(f & E.COMPOSITE_COMPONENT_ALPHA)
    # the canvas takes SOURCE_OPAQUE when it asks a source surface for its image; a bitmap
    # keeps its alpha whatever the flag says (seen against spice-server 0.15.1)
    src_s = Sampling(_matrix(op.src_transform), src_filter, _bits(f, 14, 16),
                     (bool(f & E.COMPOSITE_SOURCE_OPAQUE) and src.surface) or not src.alpha)
    mask_s = Sampling(_matrix(op.mask_transform), mask_filter, _bits(f, 16, 18),
                      mask is not None and not mask.alpha, component_alpha)
    # pixman_image_composite32 on the canvas's bbox-sized copy of the destination
    w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    sx, sy = _int32(op.src_origin.x), _int32(op.src_origin.y)
    mx, my = _int32(op.mask_origin.x), _int32(op.mask_origin.y)
    src_opaque = src_s.analyze(src, sx, sy, _int32(sx + w), _int32(sy + h))
    if src_opaque is None:
        return None
    mask_opaque = True
    if mask is not None:
        mask_opaque = mask_s.analyze(mask, mx, my, _int32(mx + w), _int32(my + h))
        if mask_opaque is None:
            return None
    dst_opaque = bool(f & E.COMPOSITE_DEST_OPAQUE) or dst_fmt == E.SURFACE_FMT_32_xRGB
    pix_op = _reduce(pix_op)
    factors = _FLOAT_FACTORS.get(pix_op, (ZERO, ZERO))
    float_combiner = pix_op in _FLOAT_FACTORS or pix_op in _FLOAT_BLENDS
    if pix_op == SATURATE:
        if src_opaque and mask_opaque:
            pix_op = OVER_REVERSE
        else:
            factors, float_combiner = _SATURATE_FACTORS, True
    src_rows = src_s.rows(sx - bbox[0], sy - bbox[1])
    mask_rows = mask_s.rows(mx - bbox[0], my - bbox[1])
    uniforms: dict[str, object] = {
        "u_op": pix_op,
        "u_factors": factors,
        "u_src_x": src_rows[0], "u_src_y": src_rows[1],
        "u_src_box": (0, 0, src.width, src.height),
        "u_src_opaque": src_s.opaque,
        "u_mask_x": mask_rows[0], "u_mask_y": mask_rows[1],
        "u_mask_box": (0, 0, mask.width, mask.height) if mask is not None else (0, 0, 1, 1),
        "u_mask_opaque": mask_s.opaque,
        "u_component_alpha": component_alpha,
        "u_dst_opaque": dst_opaque,
    }
    defines = {"FLOAT": int(float_combiner), "SRC_BILINEAR": int(src_s.bilinear),
               "SRC_REPEAT": src_s.repeat,
               "MASK": 0 if mask is None else 2 if mask_s.bilinear else 1,
               "MASK_REPEAT": mask_s.repeat if mask is not None else 0}
    return CompositeSetup(uniforms, defines)
