"""Destination regions: bbox, surface and clip rects as disjoint boxes (no GL)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgpu.device.commands import QRect
from vgpu.render import RenderError
from vgpu.render.region import check_rect, dest_region, disjoint_union

boxes = st.lists(st.tuples(st.integers(-5, 40), st.integers(-5, 40), st.integers(-5, 40),
                           st.integers(-5, 40)), max_size=8)


def _paint(rects, shape=(50, 50)) -> np.ndarray:
    count = np.zeros(shape, int)
    for x0, y0, x1, y1 in rects:
        count[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] += 1
    return count


@given(boxes)
def test_disjoint_union_covers_each_pixel_once(bs):
    out = disjoint_union(bs)
    assert (_paint(out) == (_paint(bs) > 0)).all()


@given(st.tuples(st.integers(-5, 30), st.integers(-5, 30), st.integers(1, 30),
                 st.integers(1, 30)), st.none() | boxes)
def test_dest_region_is_bbox_and_surface_and_clip(b, clip):
    bbox = (b[0], b[1], b[0] + b[2], b[1] + b[3])
    qclip = None if clip is None else tuple(QRect(c[1], c[0], c[3], c[2]) for c in clip)
    got = _paint(dest_region(bbox, qclip, 32, 24))
    want = _paint([bbox]) > 0
    want[24:, :] = False
    want[:, 32:] = False
    if clip is not None:
        want &= _paint(clip) > 0
    assert (got == want).all()


@pytest.mark.parametrize("r", [QRect(0, 5, 10, 5), QRect(10, 0, 5, 5), QRect(0, 0, 1 << 30, 1)])
def test_bad_rects_refused(r):
    with pytest.raises(RenderError):
        check_rect(r, "bbox")
