"""Scaled sources exact to pixman, set up as spice-common's software canvas sets it up.

The canvas scales a source with a pixman transform and filter (NEAREST, or GOOD for
INTERPOLATE, which is pixman's bilinear) and REPEAT_NONE, into the destination or a temporary
image that a raster operation then combines: sw_canvas's __scale_image for COPY, BLEND,
OPAQUE, TRANSPARENT and ALPHA_BLEND (an integer ratio, anchored at src_area), and
canvas_scale_surface for ROP3 (a ratio in doubles, the offset rounded). pixman itself, through
ctypes, scales here; the numpy reference model does the unscaled operation that follows."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pixman_ctypes import A8R8G8B8, REPEAT_NONE, X8R8G8B8, load
from render_helpers import NO_MASK, bitmap, draw, rect

from vgpu.device.commands import AlphaBlend, Copy, Opaque, Rop3, SolidBrush, Transparent
from vgpu.render import enums as E
from vgpu.render.reference import ReferenceCanvas

pytestmark = pytest.mark.gl

W, H = 48, 40
PIXMAN_OP_SRC = 1
PIXMAN_FILTER_GOOD, PIXMAN_FILTER_NEAREST = 1, 3


class _Transform(ctypes.Structure):
    _fields_ = [("matrix", (ctypes.c_int32 * 3) * 3)]


@pytest.fixture(scope="module")
def pixman_lib():
    lib = load()
    if lib is None:
        pytest.skip("libpixman-1 is not installed")
    lib.pixman_image_set_transform.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Transform)]
    lib.pixman_image_set_filter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                            ctypes.c_int]
    return lib


def pixman_scaled(lib, pix: np.ndarray, alpha: bool, area: tuple[int, int, int, int],
                  dw: int, dh: int, nearest: bool, rop3: bool, *,
                  into_argb: bool = False) -> np.ndarray:
    """The (dh, dw, 4) image the canvas scales src_area of `pix` to, as its pixman calls do:
    into an image of the source's format, or (into_argb) into an a8r8g8b8 one, as
    __scale_image composes into an ARGB surface's canvas."""
    fmt = A8R8G8B8 if alpha else X8R8G8B8
    src = np.ascontiguousarray(pix)
    out = np.zeros((dh, dw, 4), np.uint8)
    s_img = lib.pixman_image_create_bits(fmt, src.shape[1], src.shape[0], src.ctypes.data,
                                         src.strides[0])
    d_img = lib.pixman_image_create_bits(A8R8G8B8 if into_argb else fmt, dw, dh,
                                         out.ctypes.data, out.strides[0])
    x0, y0, x1, y1 = area
    t = _Transform()
    if rop3:  # canvas_scale_surface
        sx, sy = (x1 - x0) / dw, (y1 - y0) / dh
        fx, fy = int(sx * 65536.0), int(sy * 65536.0)
        tx = ty = 0
        at = (math.floor(x0 / sx + 0.5), math.floor(y0 / sy + 0.5))
    else:  # __scale_image
        fx, fy = ((x1 - x0) << 16) // dw, ((y1 - y0) << 16) // dh
        tx, ty = x0 << 16, y0 << 16
        at = (0, 0)
    for i, row in enumerate(((fx, 0, tx), (0, fy, ty), (0, 0, 1 << 16))):
        for j, v in enumerate(row):
            t.matrix[i][j] = v
    try:
        lib.pixman_image_set_transform(s_img, ctypes.byref(t))
        lib.pixman_image_set_repeat(s_img, REPEAT_NONE)
        lib.pixman_image_set_filter(s_img, PIXMAN_FILTER_NEAREST if nearest
                                    else PIXMAN_FILTER_GOOD, None, 0)
        lib.pixman_image_composite32(PIXMAN_OP_SRC, s_img, None, d_img, at[0], at[1], 0, 0,
                                     0, 0, dw, dh)
    finally:
        lib.pixman_image_unref(s_img)
        lib.pixman_image_unref(d_img)
    if not alpha and not into_argb:
        out[..., 3] = 255  # what an x8r8g8b8 image holds there is not defined
    return out


@st.composite
def scaled_ops(draw_):
    sw, sh = draw_(st.integers(1, 12)), draw_(st.integers(1, 12))
    ax0, ay0 = draw_(st.integers(0, sw - 1)), draw_(st.integers(0, sh - 1))
    ax1, ay1 = draw_(st.integers(ax0 + 1, sw)), draw_(st.integers(ay0 + 1, sh))
    dw, dh = draw_(st.integers(1, 30)), draw_(st.integers(1, 26))
    x, y = draw_(st.integers(0, W - dw)), draw_(st.integers(0, H - dh))
    seed = draw_(st.integers(0, 2**32 - 1))
    kind = draw_(st.sampled_from(["copy", "opaque", "rop3", "transparent", "alpha_blend"]))
    nearest = kind in ("transparent", "alpha_blend") or draw_(st.booleans())
    alpha = draw_(st.booleans())
    return (sw, sh), (ax0, ay0, ax1, ay1), (x, y, x + dw, y + dh), seed, kind, nearest, alpha


def _op(kind: str, img, area, mode: int, rng: np.random.Generator):
    if kind == "copy":
        return Copy(img, area, E.ROPD_OP_PUT, mode, NO_MASK)
    if kind == "opaque":  # scale_image_rop: the scaled source XOR the brush
        return Opaque(img, area, SolidBrush(int(rng.integers(0, 1 << 24))),
                      E.ROPD_OP_XOR, mode, NO_MASK)
    if kind == "rop3":
        return Rop3(img, area, SolidBrush(int(rng.integers(0, 1 << 24))),
                    int(rng.integers(0, 256)), mode, NO_MASK)
    if kind == "transparent":
        return Transparent(img, area, 0, int(rng.integers(0, 1 << 24)))
    return AlphaBlend(0, int(rng.integers(1, 256)), img, area)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=scaled_ops(), fmt=st.sampled_from([E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB]))
def test_scaled_operations_match_pixman(renderer, pixman_lib, case, fmt):
    (sw, sh), area, box, seed, kind, nearest, alpha = case
    assume((area[2] - area[0], area[3] - area[1]) != (box[2] - box[0], box[3] - box[1]))
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, (sh, sw, 4), dtype=np.uint8)
    if alpha:  # pixman reads a8r8g8b8 as premultiplied: keep colour <= alpha
        pix[..., :3] = np.minimum(pix[..., :3], pix[..., 3:])
    bfmt = E.BITMAP_FMT_RGBA if alpha else E.BITMAP_FMT_32BIT
    mode = E.SCALE_MODE_NEAREST if nearest else E.SCALE_MODE_INTERPOLATE
    dw, dh = box[2] - box[0], box[3] - box[1]
    op = _op(kind, bitmap(pix, bfmt), rect(*area), mode, np.random.default_rng(seed + 1))
    # a COPY composes an x8r8g8b8 source straight into an ARGB canvas, alpha included
    into_argb = kind == "copy" and not alpha and fmt == E.SURFACE_FMT_32_ARGB
    scaled = pixman_scaled(pixman_lib, pix, alpha, area, dw, dh, nearest, kind == "rop3",
                           into_argb=into_argb)
    # the same operation (same brush, code, alpha), unscaled, on what pixman scaled
    unscaled = _op(kind, bitmap(scaled, bfmt), rect(0, 0, dw, dh), mode,
                   np.random.default_rng(seed + 1))
    background = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    seed_cmd = draw(Copy(bitmap(background, E.BITMAP_FMT_RGBA), rect(0, 0, W, H),
                         E.ROPD_OP_PUT, 0, NO_MASK), (0, 0, W, H))
    renderer.reset()
    renderer.create_primary(W, H, W * 4, fmt, None)
    ref = ReferenceCanvas()
    ref.create(0, W, H, fmt)
    renderer.execute(seed_cmd)
    ref.execute(seed_cmd)
    renderer.execute(draw(op, box))
    ref.execute(draw(unscaled, box))
    got, want = renderer.read_pixels(0), ref.pixels(0)
    # what the raster operations after a temporary x8r8g8b8 image give an ARGB target's
    # alpha is not modelled
    channels = 4 if fmt == E.SURFACE_FMT_32_ARGB and (alpha or into_argb) else 3
    diff = np.argwhere((got[..., :channels] != want[..., :channels]).any(axis=2))
    assert len(diff) == 0, (f"{len(diff)} pixels differ, first at {tuple(diff[0])}: "
                            f"{got[tuple(diff[0])]} != {want[tuple(diff[0])]}")


def test_upscaled_edges_fade_to_zero_as_pixman_does(renderer):
    """REPEAT_NONE: bilinear samples beyond the image are zero, so an upscaled image's
    outer pixels are darker; a renderer that clamps at the edge would show them full."""
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    pix = np.full((2, 2, 4), 200, np.uint8)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 2, 2), E.ROPD_OP_PUT,
                               E.SCALE_MODE_INTERPOLATE, NO_MASK), (0, 0, 8, 8)))
    out = renderer.read_pixels(0)[..., 0]
    assert out[0, 0] < out[3, 3] == 200


@pytest.mark.parametrize("nearest", [True, False], ids=["nearest", "bilinear"])
def test_scaled_copy_of_an_xrgb_image_onto_argb_has_pixmans_alpha(renderer, pixman_lib,
                                                                  nearest):
    """A 32BIT bitmap is an x8r8g8b8 image to the canvas, whatever its 4th byte holds; a
    scaled COPY composes it into the ARGB surface (__scale_image), so pixman writes alpha 255
    inside the image and, with bilinear, fades it towards the zero beyond the edges. (An
    unscaled COPY is a raw blit and keeps the byte, which the reference model does.)"""
    pix = np.random.default_rng(5).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    area, box = (1, 0, 5, 4), (3, 2, 14, 11)
    want = pixman_scaled(pixman_lib, pix, False, area, box[2] - box[0], box[3] - box[1],
                         nearest, False, into_argb=True)
    mode = E.SCALE_MODE_NEAREST if nearest else E.SCALE_MODE_INTERPOLATE
    renderer.create_primary(W, H, W * 4, E.SURFACE_FMT_32_ARGB, None)
    renderer.execute(draw(Copy(bitmap(pix), rect(*area), E.ROPD_OP_PUT, mode, NO_MASK), box))
    got = renderer.read_pixels(0)[box[1]:box[3], box[0]:box[2]]
    assert np.array_equal(got[..., :3], want[..., :3])
    assert np.array_equal(got[..., 3], want[..., 3]), (got[..., 3], want[..., 3])
