"""changed_tiles against a plain numpy reference: the rectangles cover exactly
the tiles that differ, do not overlap, and stay inside the frame."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vgpu.encode import changed_tiles


def dirty_tiles_numpy(prev: np.ndarray, cur: np.ndarray, tile: int) -> set[tuple[int, int]]:
    diff = (prev != cur).any(axis=2)
    h, w = diff.shape
    return {(tx, ty)
            for ty in range((h + tile - 1) // tile)
            for tx in range((w + tile - 1) // tile)
            if diff[ty * tile:(ty + 1) * tile, tx * tile:(tx + 1) * tile].any()}


def covered_tiles(rects: list[tuple[int, int, int, int]], w: int, h: int,
                  tile: int) -> set[tuple[int, int]]:
    seen = np.zeros((h, w), np.int32)
    for left, top, right, bottom in rects:
        assert 0 <= left < right <= w and 0 <= top < bottom <= h
        assert left % tile == 0 and top % tile == 0
        assert right % tile == 0 or right == w
        assert bottom % tile == 0 or bottom == h
        seen[top:bottom, left:right] += 1
    assert seen.max(initial=0) <= 1, "rectangles overlap"
    return {(x // tile, y // tile) for y in range(0, h, tile) for x in range(0, w, tile)
            if seen[y, x]}


def check(prev: np.ndarray, cur: np.ndarray, tile: int) -> list[tuple[int, int, int, int]]:
    rects = changed_tiles(prev, cur, tile)
    h, w = cur.shape[:2]
    assert covered_tiles(rects, w, h, tile) == dirty_tiles_numpy(prev, cur, tile)
    return rects


def test_identical_frames_have_no_damage() -> None:
    a = np.full((1080, 1920, 4), 7, np.uint8)
    assert changed_tiles(a, a.copy()) == []


def test_one_pixel_per_corner_and_merging() -> None:
    a = np.zeros((200, 300, 4), np.uint8)
    b = a.copy()
    b[0, 0, 3] = 1       # the padding byte counts: the frame changed
    b[199, 299, 0] = 1   # the partial tile at the edge
    assert check(a, b, 64) == [(0, 0, 64, 64), (256, 192, 300, 200)]
    b = a.copy()
    b[10:150, 70:200] = 9  # tiles x 1..3, rows 0..2: one rectangle
    assert check(a, b, 64) == [(64, 0, 256, 192)]


def test_crop_views_of_bigger_frames() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (300, 400, 4), dtype=np.uint8)
    b = a.copy()
    b[150, 250] ^= 1
    b[40, 10] ^= 1
    check(a[20:260, 5:390], b[20:260, 5:390], 32)
    check(a[20:260, 5:390], b.copy()[20:260, 5:390], 16)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 200), h=st.integers(1, 200), tile=st.sampled_from([8, 16, 64, 100]),
       changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6),
                                  st.integers(0, 3), st.integers(1, 60), st.integers(1, 60)),
                        max_size=6))
def test_matches_numpy(w: int, h: int, tile: int,
                       changes: list[tuple[int, int, int, int, int]]) -> None:
    a = np.zeros((h, w, 4), np.uint8)
    b = a.copy()
    for x, y, channel, dw, dh in changes:
        x, y = x % w, y % h
        b[y:y + dh, x:x + dw, channel] = 255
    check(a, b, tile)
