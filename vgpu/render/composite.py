"""COMPOSITE's flags decoded into composite.glsl's uniforms (spice-common
canvas_draw_composite: operator, filters, repeat modes, transforms, component alpha)."""

from __future__ import annotations

from dataclasses import dataclass

from vgpu.device.commands import Composite
from vgpu.render import enums as E
from vgpu.render.errors import RenderError
from vgpu.render.region import Box

SUPPORTED_OPS = range(14)
"""pixman_op_t CLEAR .. SATURATE, done with pixman's integer equations. The disjoint,
conjoint and PDF blend operators are refused (RenderError) rather than drawn wrong."""

# pixman_filter_t: FAST, GOOD, BEST, NEAREST, BILINEAR (convolutions are not accepted)
_FILTERS = {0: 0, 1: 1, 2: 1, 3: 0, 4: 1}


def _bits(v: int, lo: int, hi: int) -> int:
    return (v >> lo) & ((1 << (hi - lo)) - 1)


def _matrix(t: tuple[int, ...] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if t is None:
        return (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
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

    def uniforms(self, bbox: Box, src_w: int, src_h: int, src_alpha: bool, mask_w: int,
                 mask_h: int, mask_alpha: bool) -> dict[str, object]:
        return {
            "u_op": self.op,
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


def composite_setup(op: Composite, dst_fmt: int) -> CompositeSetup:
    f = op.flags
    if f < 0 or f & ~E.COMPOSITE_FLAGS_MASK:
        raise RenderError(f"unknown composite flags {f:#x}")
    pix_op = _bits(f, 0, 8)
    if pix_op not in SUPPORTED_OPS:
        raise RenderError(f"composite operator {pix_op:#x} not supported")
    src_filter = _bits(f, 8, 11)
    mask_filter = _bits(f, 11, 14)
    if src_filter not in _FILTERS or mask_filter not in _FILTERS:
        raise RenderError("composite filter not supported")
    if (op.src_transform is not None) != bool(f & E.COMPOSITE_HAS_SRC_TRANSFORM):
        raise RenderError("composite source transform flag and transform disagree")
    if (op.mask_transform is not None) != bool(f & E.COMPOSITE_HAS_MASK_TRANSFORM):
        raise RenderError("composite mask transform flag and transform disagree")
    return CompositeSetup(
        op=pix_op,
        src_filter=_FILTERS[src_filter],
        src_repeat=_bits(f, 14, 16),
        src_m=_matrix(op.src_transform),
        src_at=(op.src_origin.x, op.src_origin.y),
        src_opaque_flag=bool(f & E.COMPOSITE_SOURCE_OPAQUE),
        has_mask=bool(f & E.COMPOSITE_HAS_MASK),
        mask_filter=_FILTERS[mask_filter],
        mask_repeat=_bits(f, 16, 18),
        mask_m=_matrix(op.mask_transform),
        mask_at=(op.mask_origin.x, op.mask_origin.y),
        component_alpha=bool(f & E.COMPOSITE_COMPONENT_ALPHA),
        dst_opaque=bool(f & E.COMPOSITE_DEST_OPAQUE) or dst_fmt == E.SURFACE_FMT_32_xRGB,
    )
