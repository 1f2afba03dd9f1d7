"""Damage to DRAW_COPY regions, and the codec each client gets."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vgpu.display import Frame
from vgpu.encode.samples import photo_frame
from vgpu.spice.constants import SPICE_IMAGE_TYPE_JPEG as JPEG
from vgpu.spice.constants import SPICE_IMAGE_TYPE_LZ_RGB as LZ_RGB
from vgpu.spice.constants import SPICE_IMAGE_TYPE_QUIC as QUIC
from vgpu.spice.imaging import (
    BAND_ROWS,
    MAX_RECTS_PER_FRAME,
    ClientImaging,
    Compression,
    cut_bands,
    encode_rect,
    normalize_damage,
)


def covered(rects, width, height):
    mask = np.zeros((height, width), bool)
    for left, top, right, bottom in rects:
        mask[max(0, top) : max(0, bottom), max(0, left) : max(0, right)] = True
    return mask


def test_repeated_full_screen_damage_is_sent_once():
    rects = cut_bands(normalize_damage(((0, 0, 100, 300),) * 10, 100, 300))
    assert sum((r[3] - r[1]) * (r[2] - r[0]) for r in rects) == 100 * 300
    assert all(r[3] - r[1] <= BAND_ROWS for r in rects)


def test_contained_and_clipped():
    assert normalize_damage(((0, 0, 50, 50), (10, 10, 20, 20), (-5, 40, 10, 999)), 60, 60) == [
        (0, 0, 50, 50),
        (0, 40, 10, 60),
    ]
    assert normalize_damage(((5, 5, 5, 9), (70, 70, 80, 80)), 60, 60) == []


def test_too_many_rects_become_their_bounding_box():
    many = tuple((i, 0, i + 1, 1) for i in range(0, 2 * MAX_RECTS_PER_FRAME + 2, 2))
    assert normalize_damage(many, 500, 10) == [(0, 0, many[-1][2], 1)]


rect = st.tuples(
    st.integers(-50, 250), st.integers(-50, 250), st.integers(-50, 250), st.integers(-50, 250)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(rect, max_size=40), st.booleans())
def test_every_damaged_pixel_is_sent(damage, band):
    width, height = 200, 150
    rects = normalize_damage(tuple(damage), width, height)
    if band:
        rects = cut_bands(rects)
    want = covered([r for r in damage if r[0] < r[2] and r[1] < r[3]], width, height)
    got = covered(rects, width, height)
    assert not (want & ~got).any()
    for left, top, right, bottom in rects:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height


def test_codec_choice_follows_options_and_client():
    assert ClientImaging(Compression()).codec() == "auto"
    assert ClientImaging(Compression(image="lz4")).codec() == "lz"  # client lacks the cap
    assert ClientImaging(Compression(image="lz4"), lz4=True).codec() == "lz4"
    assert ClientImaging(Compression(), lz4=True, preferred="lz4").codec() == "lz4"
    assert ClientImaging(Compression(image="quic")).codec() == "quic"
    assert ClientImaging(Compression(image="off")).codec() == "bitmap"
    assert ClientImaging(Compression(image="glz")).codec() == "lz"


def frame_of(pixels):
    pixels.setflags(write=False)
    h, w = pixels.shape[:2]
    return Frame(1, 1, pixels, ((0, 0, w, h),))


def desktop_like():
    img = np.full((128, 256, 4), (0x6F, 0x4F, 0x2F, 255), np.uint8)
    img[20:60, 30:200] = (255, 255, 255, 255)
    return frame_of(img)


def photo_like():
    # smooth shading and noise (uniform noise is no photograph: no codec gains on it)
    return frame_of(photo_frame(256, 128))


def test_lz_rgb_by_default_quic_for_photos_jpeg_only_when_allowed():
    default = ClientImaging(Compression())
    assert encode_rect(desktop_like(), (0, 0, 256, 128), default).image_type == LZ_RGB
    photo = encode_rect(photo_like(), (0, 0, 256, 128), default)
    assert photo.image_type == QUIC and not photo.lossy
    lossy = ClientImaging(Compression(jpeg_wan="always"))
    assert encode_rect(photo_like(), (0, 0, 256, 128), lossy).image_type == JPEG
    assert encode_rect(desktop_like(), (0, 0, 256, 128), lossy).image_type == LZ_RGB
    region = encode_rect(desktop_like(), (8, 4, 40, 20), default)
    (size,) = struct.unpack_from("<I", region.payload)
    assert size == len(region.payload) - 4 and region.rect == (8, 4, 40, 20)
