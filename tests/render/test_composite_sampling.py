"""COMPOSITE sampling against pixman itself (libpixman through ctypes, pixman_ctypes.py):
affine transforms of the guest's raw 16.16 values (scales, flips, rotations, shears,
degenerate and huge ones), every filter, every repeat mode, for the source and the mask,
byte for byte. Where pixman composites nothing (positions beyond its 16.16 range) the
renderer must leave the destination alone too."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixman_ctypes import A8, A8R8G8B8, FIXED_1, X8R8G8B8, Pixman, pixman
from render_helpers import NO_MASK, bitmap, draw, rect

from vgpu.device.commands import Composite, Copy, QPoint
from vgpu.render import enums as E

pytestmark = pytest.mark.gl

W, H = 24, 20
SRC, OVER, ADD, SATURATE, DISJOINT_OVER, SOFT_LIGHT = 0x01, 0x03, 0x0C, 0x0D, 0x13, 0x38
OPS = [SRC, OVER, ADD, SATURATE, DISJOINT_OVER, SOFT_LIGHT]
NO, A8_MASK, CA_MASK = "none", "a8", "ca"
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@pytest.fixture(scope="module")
def pm() -> Pixman:
    p = pixman()
    if p is None:
        pytest.skip("libpixman-1 is not installed")
    return p


def _fixed(v: float) -> int:
    return round(v * FIXED_1)


@st.composite
def transforms(draw_) -> tuple[int, ...] | None:
    """None (no transform) or 6 16.16 values: scale (up, down, flipped), rotation, shear,
    anything small, degenerate, or anything at all (int32)."""
    kind = draw_(st.sampled_from(["none", "scale", "rotate", "shear", "small", "degenerate",
                                  "huge"]))
    tx = draw_(st.integers(-24 * FIXED_1, 24 * FIXED_1))
    ty = draw_(st.integers(-24 * FIXED_1, 24 * FIXED_1))
    scale = st.integers(-3 * FIXED_1, 3 * FIXED_1)
    if kind == "none":
        return None
    if kind == "scale":
        return (draw_(scale), 0, tx, 0, draw_(scale), ty)
    if kind == "rotate":
        a = draw_(st.floats(-math.pi, math.pi))
        s = draw_(st.floats(0.25, 2.5))
        c, n = math.cos(a) * s, math.sin(a) * s
        return (_fixed(c), _fixed(-n), tx, _fixed(n), _fixed(c), ty)
    if kind == "shear":
        return (FIXED_1, draw_(scale), tx, draw_(scale), FIXED_1, ty)
    if kind == "small":
        return (draw_(scale), draw_(scale), tx, draw_(scale), draw_(scale), ty)
    if kind == "degenerate":  # zero determinant: a line, or every pixel on one point
        a, b = draw_(scale), draw_(scale)
        k = draw_(st.sampled_from([0, 1, -2]))
        return (a, b, tx, a * k, b * k, ty)
    return tuple(draw_(st.integers(INT32_MIN, INT32_MAX)) for _ in range(6))


def _pixels(rng: np.random.Generator, shape: tuple[int, ...], valid: bool = True
            ) -> np.ndarray:
    """(..., 4) B, G, R, A pixels, alpha 0 and 255 often; premultiplied when valid, any
    bytes otherwise (what a hostile guest may send)."""
    a = rng.choice(np.array([0, 255, *range(256)]), (*shape, 1))
    c = rng.integers(0, 256, (*shape, 3))
    if valid:
        c = c * a // 255
    return np.concatenate([c, a], axis=-1).astype(np.uint8)


@st.composite
def composites(draw_):
    sw, sh = draw_(st.integers(1, 9)), draw_(st.integers(1, 9))
    mw, mh = draw_(st.integers(1, 9)), draw_(st.integers(1, 9))
    x0, y0 = draw_(st.integers(0, W - 1)), draw_(st.integers(0, H - 1))
    box = (x0, y0, draw_(st.integers(x0 + 1, W)), draw_(st.integers(y0 + 1, H)))
    origin = st.one_of(st.integers(-30, 30), st.integers(-40000, 40000))
    return {
        "op": draw_(st.sampled_from(OPS)),
        "src_size": (sw, sh),
        "src_alpha": draw_(st.booleans()),
        "src_t": draw_(transforms()),
        "src_filter": draw_(st.integers(0, 4)),
        "src_repeat": draw_(st.integers(0, 3)),
        "src_at": (draw_(origin), draw_(origin)),
        "mask": draw_(st.sampled_from([NO, NO, A8_MASK, CA_MASK])),
        "mask_size": (mw, mh),
        "mask_t": draw_(transforms()),
        "mask_filter": draw_(st.integers(0, 4)),
        "mask_repeat": draw_(st.integers(0, 3)),
        "mask_at": (draw_(origin), draw_(origin)),
        "dst_fmt": draw_(st.sampled_from([E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_32_xRGB])),
        "box": box,
        "valid": draw_(st.booleans()),
        "seed": draw_(st.integers(0, 2**32 - 1)),
    }


def _run(renderer, pm: Pixman, c: dict) -> tuple[np.ndarray, np.ndarray]:
    """The composite drawn by the renderer and by pixman: (got, want), the channels pixman
    defines (B, G, R on an xRGB destination)."""
    rng = np.random.default_rng(c["seed"])
    (sw, sh), (mw, mh) = c["src_size"], c["mask_size"]
    dst = _pixels(rng, (H, W))
    src = _pixels(rng, (sh, sw), c["valid"])
    mask = None
    flags = (c["op"] | c["src_filter"] << 8 | c["src_repeat"] << 14)
    if c["src_t"] is not None:
        flags |= E.COMPOSITE_HAS_SRC_TRANSFORM
    m_img = None
    mask_t = None
    if c["mask"] != NO:
        flags |= E.COMPOSITE_HAS_MASK | c["mask_filter"] << 11 | c["mask_repeat"] << 16
        mask_t = c["mask_t"]
        if mask_t is not None:
            flags |= E.COMPOSITE_HAS_MASK_TRANSFORM
        if c["mask"] == CA_MASK:
            flags |= E.COMPOSITE_COMPONENT_ALPHA
            mask = rng.integers(0, 256, (mh, mw, 4), dtype=np.uint8)
            m_img = bitmap(mask, E.BITMAP_FMT_RGBA)
        else:
            mask = rng.integers(0, 256, (mh, mw), dtype=np.uint8)
            m_img = bitmap(mask, E.BITMAP_FMT_8BIT_A)
    s_img = bitmap(src, E.BITMAP_FMT_RGBA if c["src_alpha"] else E.BITMAP_FMT_32BIT)
    _ = renderer.ctx.error  # reading clears GL's sticky error flag, set by what ran before
    renderer.reset()
    renderer.create_primary(W, H, W * 4, c["dst_fmt"], None)
    renderer.execute(draw(Copy(bitmap(dst), rect(0, 0, W, H), E.ROPD_OP_PUT, 0, NO_MASK),
                          (0, 0, W, H)))
    renderer.execute(draw(Composite(flags, s_img, m_img, c["src_t"], mask_t,
                                    QPoint(*c["src_at"]), QPoint(*c["mask_at"])), c["box"]))
    got = renderer.read_pixels(0)
    assert renderer.ctx.error == "GL_NO_ERROR"
    argb = c["dst_fmt"] == E.SURFACE_FMT_32_ARGB
    want = pm.composite(c["op"], dst, A8R8G8B8 if argb else X8R8G8B8, src,
                        A8R8G8B8 if c["src_alpha"] else X8R8G8B8,
                        src_repeat=c["src_repeat"], src_xy=c["src_at"],
                        src_transform=c["src_t"], src_filter=c["src_filter"],
                        mask=mask, mask_fmt=A8R8G8B8 if c["mask"] == CA_MASK else A8,
                        component_alpha=c["mask"] == CA_MASK, mask_xy=c["mask_at"],
                        mask_transform=mask_t, mask_filter=c["mask_filter"],
                        mask_repeat=c["mask_repeat"], dst_box=c["box"])
    channels = 4 if argb else 3
    return got[..., :channels], want[..., :channels]


def _check(got: np.ndarray, want: np.ndarray, what: object) -> None:
    bad = np.argwhere((got != want).any(axis=-1))
    assert len(bad) == 0, (what, len(bad), [(tuple(i), got[tuple(i)], want[tuple(i)])
                                            for i in bad[:3]])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=composites())
def test_transformed_filtered_repeated_composites_match_pixman(renderer, pm, case):
    got, want = _run(renderer, pm, case)
    _check(got, want, case)


def _case(**over) -> dict:
    base = {"op": OVER, "src_size": (5, 4), "src_alpha": True, "src_t": None,
            "src_filter": 4, "src_repeat": 0, "src_at": (0, 0), "mask": NO,
            "mask_size": (3, 3), "mask_t": None, "mask_filter": 3, "mask_repeat": 0,
            "mask_at": (0, 0), "dst_fmt": E.SURFACE_FMT_32_ARGB, "box": (0, 0, W, H),
            "valid": True, "seed": 7}
    base.update(over)
    return base


ROT30 = (_fixed(math.cos(0.5)), _fixed(-math.sin(0.5)), 3 * FIXED_1,
         _fixed(math.sin(0.5)), _fixed(math.cos(0.5)), -2 * FIXED_1)


@pytest.mark.parametrize("repeat", range(4))
@pytest.mark.parametrize("filt", range(5))
@pytest.mark.parametrize("op", [OVER, SOFT_LIGHT])
def test_rotated_source_every_filter_and_repeat(dest_renderer, pm, repeat, filt, op):
    """A rotated, scaled-down source over the whole destination: every texel position
    pixman computes, through both combiner kinds (SOFT_LIGHT runs pixman's wide path,
    where bilinear is interpolated in floats)."""
    t = tuple(v * 3 // 4 if i % 3 != 2 else v for i, v in enumerate(ROT30))
    c = _case(op=op, src_t=t, src_filter=filt, src_repeat=repeat, src_at=(-3, 2))
    got, want = _run(dest_renderer, pm, c)
    _check(got, want, c)
    assert (want != _case_dst(c)).any()  # the case draws something


def _case_dst(c: dict) -> np.ndarray:
    channels = 4 if c["dst_fmt"] == E.SURFACE_FMT_32_ARGB else 3
    return _pixels(np.random.default_rng(c["seed"]), (H, W))[..., :channels]


@pytest.mark.parametrize("t", [
    (INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX),
    (INT32_MIN, 0, 0, 0, INT32_MIN, 0),
    (0, 0, INT32_MAX, 0, 0, INT32_MIN),
    (0, 0, 0, 0, 0, 0),
    (FIXED_1, 0, 32766 * FIXED_1, 0, FIXED_1, 0),
    (1, -1, 0, -1, 1, 0),
    # the last pixel centre pixman checks (one beyond the box) 4/65536 short of INT32_MAX:
    # inside 32 bits, but not with the margin pixman keeps, so pixman refuses
    (FIXED_1, 0, INT32_MAX - 4 - W * FIXED_1 - FIXED_1 // 2, 0, FIXED_1, 0),
], ids=["max", "min-scale", "far-translation", "zero", "edge-of-range", "tiny", "margin"])
@pytest.mark.parametrize("at", [(0, 0), (32760, 0), (-32768, -5), (INT32_MAX, INT32_MIN)])
def test_hostile_transforms_and_origins_match_pixman(renderer, pm, t, at):
    """Huge, zero and edge values: no crash, no error; drawn exactly where pixman draws,
    nothing where it refuses."""
    for filt in (3, 4):
        c = _case(src_t=t, src_at=at, src_filter=filt, src_repeat=1,
                  mask=A8_MASK, mask_t=t, mask_at=at, mask_repeat=1)
        got, want = _run(renderer, pm, c)  # which checks that GL saw no error
        _check(got, want, c)


def test_identity_transform_is_no_transform(renderer, pm):
    """pixman drops an identity transform; an opaque covered source then makes SATURATE
    the integer OVER_REVERSE, an uncovered one (transparent outside) keeps it float."""
    ident = (FIXED_1, 0, 0, 0, FIXED_1, 0)
    for at in ((0, 0), (-2, 1)):
        c = _case(op=SATURATE, src_t=ident, src_alpha=False, src_size=(W, H), src_at=at,
                  dst_fmt=E.SURFACE_FMT_32_ARGB)
        got, want = _run(renderer, pm, c)
        _check(got, want, c)
