"""COMPOSITE's flags decoded into composite.glsl's uniforms (spice-common
canvas_draw_composite: operator, filters, repeat modes, transforms, component alpha)."""

from __future__ import annotations

from dataclasses import dataclass

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

_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def _reduce(op: int) -> int:
    """DISJOINT_/CONJOINT_ CLEAR, SRC, DST are CLEAR, SRC, DST (pixman's integer ones)."""
    if DISJOINT <= op < 0x30 and (op & 0x0F) < 3:
        return op & 0x0F
    return op


# pixman_filter_t: FAST, GOOD, BEST, NEAREST, BILINEAR (convolutions are not accepted)
_FILTERS = {0: 0, 1: 1, 2: 1, 3: 0, 4: 1}


def _bits(v: int, lo: int, hi: int) -> int:
    return (v >> lo) & ((1 << (hi - lo)) - 1)


def _matrix(t: tuple[int, ...] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if t is None:
        return _IDENTITY
    if len(t) != 6:
        raise RenderError("composite transform needs 6 values")
    v = [((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000 for x in t]  # int32 16.16
    return tuple(x / 65536.0 for x in v[:3]), tuple(x / 65536.0 for x in v[3:])


@dataclass(frozen=True, slots=True)
class CompositeSetup:
    op: int
    src_filter: int
    src_repeat: int
    src_m: tuple[tuple[float, ...], tuple[float, ...]]
    src_at: tuple[int, int]
    src_opaque_flag: bool
    has_mask: bool
    mask_filter: int
    mask_repeat: int
    mask_m: tuple[tuple[float, ...], tuple[float, ...]]
    mask_at: tuple[int, int]
    component_alpha: bool
    dst_opaque: bool
    float_combiner: bool
    """run on composite.glsl's copy of pixman's float combiners, not its integer ones"""
    factors: tuple[int, int]
    """a float Porter/Duff operator's (source, destination) factors"""

    def uniforms(self, bbox: Box, src_w: int, src_h: int, src_alpha: bool, mask_w: int,
                 mask_h: int, mask_alpha: bool) -> dict[str, object]:
        return {
            "u_op": self.op,
            "u_factors": self.factors,
            "u_origin": (bbox[0], bbox[1]),
            "u_src_m0": self.src_m[0], "u_src_m1": self.src_m[1],
            "u_src_at": self.src_at,
            "u_src_box": (0, 0, src_w, src_h),
            "u_src_filter": self.src_filter,
            "u_src_repeat": self.src_repeat,
            "u_src_opaque": self.src_opaque_flag or not src_alpha,
            "u_has_mask": self.has_mask,
            "u_mask_m0": self.mask_m[0], "u_mask_m1": self.mask_m[1],
            "u_mask_at": self.mask_at,
            "u_mask_box": (0, 0, mask_w, mask_h),
            "u_mask_filter": self.mask_filter,
            "u_mask_repeat": self.mask_repeat,
            "u_mask_opaque": not mask_alpha,
            "u_component_alpha": self.component_alpha,
            "u_dst_opaque": self.dst_opaque,
        }

def composite_setup(op: Composite, dst_fmt: int, src_alpha: bool, mask_alpha: bool
                    ) -> CompositeSetup:
    """src_alpha, mask_alpha: whether the source and mask images have an alpha channel."""
    f = op.flags
    if f < 0 or f & ~E.COMPOSITE_FLAGS_MASK:
        raise RenderError(f"unknown composite flags {f:#x}")
    pix_op = _bits(f, 0, 8)
    if pix_op not in SUPPORTED_OPS:
        raise RenderError(f"composite operator {pix_op:#x} is not a pixman_op_t")
    src_filter = _bits(f, 8, 11)
    mask_filter = _bits(f, 11, 14)
    if src_filter not in _FILTERS or mask_filter not in _FILTERS:
        raise RenderError("composite filter not supported")
    if (op.src_transform is not None) != bool(f & E.COMPOSITE_HAS_SRC_TRANSFORM):
        raise RenderError("composite source transform flag and transform disagree")
    if (op.mask_transform is not None) != bool(f & E.COMPOSITE_HAS_MASK_TRANSFORM):
        raise RenderError("composite mask transform flag and transform disagree")
    has_mask = bool(f & E.COMPOSITE_HAS_MASK)
    component_alpha = bool(f & E.COMPOSITE_COMPONENT_ALPHA)
    dst_opaque = bool(f & E.COMPOSITE_DEST_OPAQUE) or dst_fmt == E.SURFACE_FMT_32_xRGB
    pix_op = _reduce(pix_op)
    factors = _FLOAT_FACTORS.get(pix_op, (ZERO, ZERO))
    float_combiner = pix_op in _FLOAT_FACTORS or pix_op in _FLOAT_BLENDS
    if pix_op == SATURATE:
        src_opaque = bool(f & E.COMPOSITE_SOURCE_OPAQUE) or not src_alpha
        mask_opaque = not has_mask or not (mask_alpha or component_alpha)
        if src_opaque and mask_opaque:
            pix_op = OVER_REVERSE
        else:
            factors, float_combiner = _SATURATE_FACTORS, True
    return CompositeSetup(
        op=pix_op,
        src_filter=_FILTERS[src_filter],
        src_repeat=_bits(f, 14, 16),
        src_m=_matrix(op.src_transform),
        src_at=(op.src_origin.x, op.src_origin.y),
        src_opaque_flag=bool(f & E.COMPOSITE_SOURCE_OPAQUE),
        has_mask=has_mask,
        mask_filter=_FILTERS[mask_filter],
        mask_repeat=_bits(f, 16, 18),
        mask_m=_matrix(op.mask_transform),
        mask_at=(op.mask_origin.x, op.mask_origin.y),
        component_alpha=component_alpha,
        dst_opaque=dst_opaque,
        float_combiner=float_combiner,
        factors=factors,
    )
