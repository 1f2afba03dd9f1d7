"""Solid-colour parts of a region (fills instead of images)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vgpu.encode.codecs import solid_tiles
from vgpu.encode.samples import desktop_frame, photo_frame
from vgpu.encode.solid import MIN_FILL_PIXELS, SOLID_TILE, solid_parts


def rgb(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels).view(np.uint32)[..., 0] & 0xFFFFFF


def check_partition(pixels: np.ndarray) -> list:
    """Every pixel in exactly one part; every fill one colour, at least MIN_FILL_PIXELS."""
    h, w = pixels.shape[:2]
    parts = solid_parts(pixels)
    cover = np.zeros((h, w), int)
    for (left, top, right, bottom), colour in parts:
        cover[top:bottom, left:right] += 1
        if colour is not None:
            assert (rgb(pixels[top:bottom, left:right]) == colour).all()
            assert (right - left) * (bottom - top) >= MIN_FILL_PIXELS
    assert (cover == 1).all()
    return parts


def test_solid_tiles_ignore_the_x_byte_and_read_crops() -> None:
    frame = np.zeros((70, 100, 4), np.uint8)
    frame[..., 3] = np.arange(100, dtype=np.uint8)  # X varies, colour does not
    frame[40, 90, 1] = 1  # one pixel of another colour in the last tile row and column
    colours, solid = solid_tiles(frame[:, 2:], SOLID_TILE)
    assert solid.shape == (3, 4)
    assert solid.sum() == 11 and not solid[1, 2] and (colours == 0).all()


def test_a_desktop_band_splits_into_fills_and_images() -> None:
    band = np.full((128, 640, 4), (0x40, 0x80, 0xC0, 0), np.uint8)
    band[30:90, 200:400, :3] = desktop_frame(200, 60)[..., :3]  # a window of content
    parts = check_partition(band)
    content = [rect for rect, colour in parts if colour is None]
    assert content == [(192, 0, 416, 96)]  # the 32-pixel tiles the window touches
    assert {colour for _, colour in parts} == {None, 0xC08040}


def test_nothing_to_fill() -> None:
    assert solid_parts(photo_frame(300, 100)) == [((0, 0, 300, 100), None)]
    small = np.zeros((40, 40, 4), np.uint8)  # solid but smaller than a fill is worth
    assert solid_parts(small) == [((0, 0, 40, 40), None)]
    assert solid_parts(np.zeros((64, 64, 4), np.uint8)) == [((0, 0, 64, 64), 0)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_random_boxes_partition_exactly(h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = np.zeros((h, w + 3, 4), np.uint8)
    for _ in range(rng.integers(0, 6)):
        top, left = rng.integers(0, h), rng.integers(0, w)
        box = frame[top:top + rng.integers(1, 120), left:left + rng.integers(1, 200)]
        box[..., :3] = (rng.integers(0, 256, 3) if rng.random() < 0.6
                        else rng.integers(0, 256, box[..., :3].shape))
    check_partition(frame[:, 3:])
