"""COMPOSITE with every pixman_op_t, compared with pixman itself (libpixman through ctypes,
pixman_ctypes.py): the GL renderer must give pixman's bytes. vgpu/render/reference.py has no
COMPOSITE, so pixman is the reference.

pixman runs the operators that divide on float combiners and the others on 8-bit integer
ones; both are compared exactly, every operator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixman_ctypes import A8, A8R8G8B8, REPEAT_NONE, REPEAT_NORMAL, X8R8G8B8, Pixman, pixman
from render_helpers import NO_MASK, bitmap, draw, rect

from vgpu.device.commands import Composite, Copy, QPoint
from vgpu.render import RenderError
from vgpu.render import enums as E
from vgpu.render.composite import SUPPORTED_OPS, ImageShape, composite_setup

pytestmark = pytest.mark.gl

ALL_OPS = sorted(SUPPORTED_OPS)
NEAREST = 3  # pixman_filter_t
# mask kinds: none, A8 (one alpha for the pixel), ARGB with component alpha
NO, A8_MASK, CA_MASK = "none", "a8", "ca"


@pytest.fixture(scope="module")
def pm() -> Pixman:
    p = pixman()
    if p is None:
        pytest.skip("libpixman-1 is not installed")
    return p


def _pixels(rng: np.random.Generator, shape: tuple[int, ...], valid: bool) -> np.ndarray:
    """(..., 4) B, G, R, A pixels, alpha 0 and 255 often; premultiplied (channel <= alpha)
    when valid, any bytes otherwise (what a hostile guest may send)."""
    a = rng.choice(np.array([0, 255, *range(256)]), (*shape, 1))
    c = rng.integers(0, 256, (*shape, 3))
    if valid:
        c = c * a // 255
    return np.concatenate([c, a], axis=-1).astype(np.uint8)


def _case(renderer, pm: Pixman, op: int, dst: np.ndarray, dst_fmt: int, src: np.ndarray,
          src_alpha: bool, mask: np.ndarray | None, mask_kind: str, *,
          box: tuple[int, int, int, int], src_at: tuple[int, int] = (0, 0),
          repeat: int = REPEAT_NONE) -> tuple[np.ndarray, np.ndarray]:
    """One COMPOSITE drawn by the renderer and by pixman: (got, want) over the destination,
    the channels pixman defines (B, G, R for an xRGB destination)."""
    h, w = dst.shape[:2]
    renderer.reset()
    renderer.create_primary(w, h, w * 4, dst_fmt, None)
    renderer.execute(draw(Copy(bitmap(dst), rect(0, 0, w, h), E.ROPD_OP_PUT, 0, NO_MASK),
                          (0, 0, w, h)))
    flags = op | NEAREST << 8 | repeat << 14
    m_img = None
    if mask_kind != NO:
        flags |= NEAREST << 11 | E.COMPOSITE_HAS_MASK
        if mask_kind == CA_MASK:
            flags |= E.COMPOSITE_COMPONENT_ALPHA
            m_img = bitmap(mask, E.BITMAP_FMT_RGBA)
        else:
            m_img = bitmap(mask, E.BITMAP_FMT_8BIT_A)
    s_img = bitmap(src, E.BITMAP_FMT_RGBA if src_alpha else E.BITMAP_FMT_32BIT)
    renderer.execute(draw(Composite(flags, s_img, m_img, None, None, QPoint(*src_at),
                                    QPoint(0, 0)), box))
    got = renderer.read_pixels(0)
    want = pm.composite(op, dst, A8R8G8B8 if dst_fmt == E.SURFACE_FMT_32_ARGB else X8R8G8B8,
                        src, A8R8G8B8 if src_alpha else X8R8G8B8, src_repeat=repeat,
                        src_xy=src_at, mask=mask,
                        mask_fmt=A8R8G8B8 if mask_kind == CA_MASK else A8,
                        component_alpha=mask_kind == CA_MASK, dst_box=box)
    channels = 4 if dst_fmt == E.SURFACE_FMT_32_ARGB else 3
    return got[..., :channels], want[..., :channels]


def _check(got: np.ndarray, want: np.ndarray, what: object) -> int:
    """Asserts got is want; returns the number of pixels compared."""
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16)).max(axis=-1)
    bad = np.argwhere(diff > 0)
    assert len(bad) == 0, (what, len(bad), [(tuple(i), got[tuple(i)], want[tuple(i)])
                                            for i in bad[:3]])
    return diff.size


def _run_matrix(renderer, pm: Pixman, op: int, size: tuple[int, int], valid_kinds,
                mask_kinds, src_alphas) -> int:
    h, w = size
    rng = np.random.default_rng(op)
    compared = 0
    for valid in valid_kinds:
        for mask_kind in mask_kinds:
            for dst_fmt in (E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_32_xRGB):
                for src_alpha in src_alphas:
                    dst = _pixels(rng, (h, w), valid)
                    src = _pixels(rng, (h, w), valid)
                    mask = (None if mask_kind == NO
                            else rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
                            if mask_kind == CA_MASK
                            else rng.choice(np.array([0, 255, *range(256)]),
                                            (h, w)).astype(np.uint8))
                    got, want = _case(renderer, pm, op, dst, dst_fmt, src, src_alpha, mask,
                                      mask_kind, box=(0, 0, w, h))
                    compared += _check(got, want,
                                       (hex(op), valid, mask_kind, dst_fmt, src_alpha))
    return compared


@pytest.mark.parametrize("op", ALL_OPS, ids=hex)
def test_every_operator_matches_pixman(renderer, pm, op):
    """Each operator in 24 cases of 8192 random pixels: premultiplied and invalid pixels, no
    mask / A8 mask / component-alpha mask, ARGB and xRGB destinations and sources."""
    assert _run_matrix(renderer, pm, op, (64, 128), (True, False), (NO, A8_MASK, CA_MASK),
                       (True, False)) > 0


@st.composite
def _composites(draw_):
    op = draw_(st.sampled_from(ALL_OPS))
    valid = draw_(st.booleans())
    mask_kind = draw_(st.sampled_from([NO, A8_MASK, CA_MASK]))
    dst_fmt = draw_(st.sampled_from([E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_32_xRGB]))
    src_alpha = draw_(st.booleans())
    w, h = draw_(st.integers(1, 12)), draw_(st.integers(1, 6))
    sw, sh = draw_(st.integers(1, 5)), draw_(st.integers(1, 4))
    repeat = draw_(st.sampled_from([REPEAT_NONE, REPEAT_NORMAL]))
    src_at = (draw_(st.integers(-3, 6)), draw_(st.integers(-3, 6)))
    x0, y0 = draw_(st.integers(0, 4)), draw_(st.integers(0, 2))
    seed = draw_(st.integers(0, 2**32 - 1))
    return op, valid, mask_kind, dst_fmt, src_alpha, (w, h), (sw, sh), repeat, src_at, \
        (x0, y0), seed


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=_composites())
def test_random_composites_match_pixman(dest_renderer, pm, case):
    """Any operator, mask kind, formats, a small source placed anywhere (repeating or not,
    so also transparent outside), onto a part of a larger destination; reading the
    destination both ways."""
    renderer = dest_renderer
    op, valid, mask_kind, dst_fmt, src_alpha, (w, h), (sw, sh), repeat, src_at, (x0, y0), \
        seed = case
    rng = np.random.default_rng(seed)
    dst = _pixels(rng, (h + 4, w + 6), valid)
    src = _pixels(rng, (sh, sw), valid)
    mask = (None if mask_kind == NO
            else rng.integers(0, 256, (h, w, 4), dtype=np.uint8) if mask_kind == CA_MASK
            else rng.integers(0, 256, (h, w), dtype=np.uint8))
    box = (x0, y0, x0 + w, y0 + h)
    got, want = _case(renderer, pm, op, dst, dst_fmt, src, src_alpha, mask, mask_kind,
                      box=box, src_at=src_at, repeat=repeat)
    _check(got, want, case)


@pytest.mark.parametrize("op", [0x0E, 0x0F, 0x1C, 0x1F, 0x2C, 0x2F, 0x3F, 0x40, 0xFF])
def test_operators_outside_pixman_are_refused(renderer, op):
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
    src = bitmap(np.full((2, 2, 4), 0x40, np.uint8), E.BITMAP_FMT_RGBA)
    cmd = Composite(op | NEAREST << 8, src, None, None, None, QPoint(0, 0), QPoint(0, 0))
    with pytest.raises(RenderError, match="pixman_op_t"):
        renderer.execute(draw(cmd, (0, 0, 4, 4)))
    # the renderer goes on drawing after the refusal
    renderer.execute(draw(Composite(1 | NEAREST << 8, src, None, None, None, QPoint(0, 0),
                                    QPoint(0, 0)), (0, 0, 2, 2)))
    assert (renderer.read_pixels(0, (0, 0, 4, 4)) == 0x40 * np.pad(
        np.ones((2, 2, 4), np.uint8), ((0, 2), (0, 2), (0, 0)))).all()


def test_operator_byte_is_accepted_exactly_for_pixman_ops():
    """Every value of the operator byte: the pixman_op_t ones set up, the rest refused."""
    src = bitmap(np.zeros((1, 1, 4), np.uint8), E.BITMAP_FMT_RGBA)
    accepted = []
    for op in range(256):
        cmd = Composite(op, src, None, None, None, QPoint(0, 0), QPoint(0, 0))
        try:
            composite_setup(cmd, E.SURFACE_FMT_32_ARGB, (0, 0, 1, 1), ImageShape(1, 1, True),
                            None)
        except RenderError:
            continue
        accepted.append(op)
    assert accepted == [*range(0x0E), *range(0x10, 0x1C), *range(0x20, 0x2C),
                        *range(0x30, 0x3F)]
