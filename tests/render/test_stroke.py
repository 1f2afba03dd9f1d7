"""Zero-width lines (no GL): the closed form in vgpu.render.stroke against mi's incremental
Bresenham loop, transcribed here step by step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgpu.device.commands import LineAttr, PathSeg
from vgpu.render import RenderError, rops
from vgpu.render import enums as E
from vgpu.render.stroke import _BIAS, _line, fix_to_int, stroke_mask


def _mi_zero_line(x1: int, y1: int, x2: int, y2: int) -> list[tuple[int, int]]:
    adx, ady = abs(x2 - x1), abs(y2 - y1)
    signdx, signdy = (-1 if x2 < x1 else 1), (-1 if y2 < y1 else 1)
    octant = (4 if x2 < x1 else 0) | (2 if y2 < y1 else 0)
    out = []
    x, y = x1, y1
    if adx > ady:
        e1 = ady << 1
        e2 = e1 - (adx << 1)
        e = e1 - adx
        e -= (_BIAS >> octant) & 1
        e3, e = e2 - e1, e - e1
        for _ in range(adx):
            out.append((x, y))
            e += e1
            if e >= 0:
                y += signdy
                e += e3
            x += signdx
    else:
        octant |= 1
        e1 = adx << 1
        e2 = e1 - (ady << 1)
        e = e1 - ady
        e -= (_BIAS >> octant) & 1
        e3, e = e2 - e1, e - e1
        for _ in range(ady):
            out.append((x, y))
            e += e1
            if e >= 0:
                x += signdx
                e += e3
            y += signdy
    return out


coord = st.integers(-40, 40)


@given(coord, coord, coord, coord)
def test_closed_form_equals_mi_loop(x1, y1, x2, y2):
    area = (-1000, -1000, 1000, 1000)
    length, _, xs, ys = _line(x1, y1, x2, y2, area)
    want = _mi_zero_line(x1, y1, x2, y2)
    assert length == len(want)
    assert list(zip(xs.tolist(), ys.tolist(), strict=True)) == want


@given(coord, coord, coord, coord, st.integers(-30, 30), st.integers(1, 30))
def test_clipped_stretch_is_the_same_pixels(x1, y1, x2, y2, lo, size):
    area = (lo, lo, lo + size, lo + size)
    _, _, xs, ys = _line(x1, y1, x2, y2, area)
    full = _mi_zero_line(x1, y1, x2, y2)
    major_is_x = abs(x2 - x1) > abs(y2 - y1)
    want = [(x, y) for x, y in full if lo <= (x if major_is_x else y) < lo + size]
    assert list(zip(xs.tolist(), ys.tolist(), strict=True)) == want


def test_far_away_segments_cost_nothing():
    huge = 1 << 27  # 2**23 pixels in 28.4 fixed point
    seg = PathSeg(E.PATH_BEGIN | E.PATH_END, ((-huge, 5 << 4), (huge, 5 << 4)))
    mask = stroke_mask((seg,), LineAttr(0, ()), (0, 0, 16, 16))
    assert mask is not None and mask[5].all() and mask.sum() == 16


def test_fixed_point_rounding_and_bad_styles():
    assert [fix_to_int(v) for v in (0, 8, 9, 16, -8, -7)] == [0, 0, 1, 1, -1, 0]
    seg = PathSeg(E.PATH_BEGIN | E.PATH_END, ((0, 0), (64, 0)))
    with pytest.raises(RenderError):
        stroke_mask((seg,), LineAttr(E.LINE_FLAGS_STYLED, ()), (0, 0, 8, 8))
    with pytest.raises(RenderError):
        stroke_mask((seg,), LineAttr(E.LINE_FLAGS_STYLED, (0, 0)), (0, 0, 8, 8))
    assert np.asarray(stroke_mask((seg,), LineAttr(0, ()), (0, 0, 8, 8))).sum() == 4


def test_bezier_subdivision():
    from vgpu.render.stroke import polylines

    # a straight "curve" is flat at once: one piece to its end point
    flat = PathSeg(E.PATH_BEGIN | E.PATH_BEZIER | E.PATH_END,
                   ((0, 0), (16 << 4, 0), (32 << 4, 0), (48 << 4, 0)))
    assert polylines((flat,)) == [[(0, 0), (48, 0)]]
    # a real curve is split, its pieces end where it ends and stay inside its hull
    curve = PathSeg(E.PATH_BEGIN | E.PATH_BEZIER | E.PATH_END,
                    ((0, 0), (0, 100 << 4), (100 << 4, 100 << 4), (100 << 4, 0)))
    (pts,) = polylines((curve,))
    assert len(pts) > 4 and pts[0] == (0, 0) and pts[-1] == (100, 0)
    assert all(0 <= x <= 100 and 0 <= y <= 100 for x, y in pts)


def test_point_bound_counts_each_point_once():
    """A path of many one-point segments is as long as its points, not the sum of its prefix
    lengths; past MAX_PATH_POINTS it is refused."""
    from vgpu.render.stroke import MAX_PATH_POINTS, polylines

    def path(n: int) -> tuple[PathSeg, ...]:
        return (PathSeg(E.PATH_BEGIN, ((0, 0),)),
                *(PathSeg(0, ((i << 4, 16),)) for i in range(n - 1)))

    assert len(polylines(path(2000))[0]) == 2000
    assert len(polylines(path(MAX_PATH_POINTS))[0]) == MAX_PATH_POINTS
    with pytest.raises(RenderError):
        polylines(path(MAX_PATH_POINTS + 1))


def test_a_retraced_pixel_counts_twice():
    # there and back along y = 2: every pixel of the way is covered by both segments but
    # the turning points, each of which only one segment reaches (its end is left out)
    path = (PathSeg(E.PATH_BEGIN, ((1 << 4, 2 << 4), (6 << 4, 2 << 4))),
            PathSeg(E.PATH_END, ((1 << 4, 2 << 4),)))
    counts = stroke_mask(path, LineAttr(0, ()), (0, 0, 8, 4))
    assert counts is not None
    assert counts[2].tolist() == [0, 1, 2, 2, 2, 2, 1, 0]


@pytest.mark.parametrize(("code", "twice"), [
    (0x5A, 0xAA),  # PATINVERT (P ^ D) twice: the destination again
    (0x55, 0xAA),  # DSTINVERT twice: the destination again
    (0xF0, 0xF0),  # PATCOPY: the same
    (0x00, 0x00),  # BLACKNESS: the same
    (0xA5, 0xAA),  # ~(P ^ D) twice: D
    (0xFA, 0xFA),  # P | D: idempotent
])
def test_a_rop_applied_twice(code, twice):
    assert rops.twice(code) == twice


def test_a_curve_of_one_point_is_refused():
    """spice-server recurses without end on a Bezier whose points coincide (its chord is
    empty and halving never changes it; docs/conformance.md): vgpu stops halving at
    MAX_BEZIER_DEPTH, past MAX_PATH_POINTS, and refuses the stroke."""
    from vgpu.render.stroke import polylines

    point = PathSeg(E.PATH_BEGIN | E.PATH_BEZIER | E.PATH_END, ((80, 80),) * 4)
    with pytest.raises(RenderError):
        polylines((point,))
    # a loop back to its start has an empty chord too, but its halves do not
    loop = PathSeg(E.PATH_BEGIN | E.PATH_BEZIER | E.PATH_END,
                   ((80, 80), (400, 80), (400, 400), (80, 80)))
    (pts,) = polylines((loop,))
    assert pts[0] == pts[-1] == (5, 5) and len(pts) < 32
