"""Our SPICE LZ and QUIC streams decode to the exact input with spice-html5's
own lz.js and quic.js (run by Node.js): lossless means equal pixels."""

from __future__ import annotations

import numpy as np
import pytest
from encode_helpers import LZ, QUIC, html5_roundtrip_failures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vgpu.encode import encode_lz_rgb32, encode_lz_rgba, encode_quic_rgb32
from vgpu.encode.samples import bgrx_from_rgb, desktop_frame, photo_frame


def cases_for(frame: np.ndarray) -> list[tuple[int, bool, np.ndarray, bytes]]:
    return [
        (LZ, False, frame, encode_lz_rgb32(frame)),
        (LZ, True, frame, encode_lz_rgba(frame)),
        (QUIC, False, frame, encode_quic_rgb32(frame)),
    ]


def synthetic_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    flat = np.full((64, 300, 4), (10, 20, 30, 255), np.uint8)
    stripes = np.zeros((40, 90, 4), np.uint8)
    stripes[:, ::3] = (255, 255, 255, 0)
    noise = rng.integers(0, 256, (33, 47, 4), dtype=np.uint8)
    # Long rows: QUIC widens its update mask every 2048 pixels, LZ switches to
    # far copies past 8191 pixels.
    wide = np.repeat(rng.integers(0, 4, (3, 2600, 1), dtype=np.uint8) * 60, 4, axis=2)
    wide[1, 1000:1500] = rng.integers(0, 256, (500, 4), dtype=np.uint8)
    gradient = np.zeros((50, 256, 4), np.uint8)
    gradient[..., 0] = np.arange(256, dtype=np.uint8)
    gradient[..., 1] = np.arange(50, dtype=np.uint8)[:, None] * 5
    gradient[..., 3] = 255 - gradient[..., 0]
    return [flat, stripes, noise, wide, gradient, noise[:1, :1], noise[:1], noise[:, :1],
            noise[:2, :2]]


def test_synthetic_frames_decode_exactly() -> None:
    cases = [c for f in synthetic_frames() for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []


def test_fixture_screenshot_and_sample_frames_decode_exactly(data_dir) -> None:
    shot = np.asarray(Image.open(data_dir / "basic.png").convert("RGB"))
    frames = [bgrx_from_rgb(shot),
              desktop_frame(960, 540, screenshot=shot),
              photo_frame(400, 300)]
    cases = [c for f in frames for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []


def test_crop_views_encode_in_place_and_decode_exactly(data_dir) -> None:
    shot = bgrx_from_rgb(np.asarray(Image.open(data_dir / "basic.png").convert("RGB")))
    crops = [shot[30:370, 35:530], shot[440:660, 690:910], shot[5:6, 7:900], shot[100:300, 3:4]]
    for crop in crops:
        assert not crop.flags.c_contiguous or crop.shape[0] == 1
    cases = [c for f in crops for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []


@st.composite
def small_frames(draw: st.DrawFn) -> np.ndarray:
    """Frames of 1..48 square pixels: noise, few colours (runs and matches) or
    repeated tiles (long copies), sometimes as a crop of a wider frame."""
    h = draw(st.integers(1, 48))
    w = draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "palette", "tiled"]))
    rng = np.random.default_rng(seed)
    pad = draw(st.integers(0, 5))
    if kind == "noise":
        full = rng.integers(0, 256, (h, w + pad, 4), dtype=np.uint8)
    elif kind == "palette":
        colours = rng.integers(0, 256, (draw(st.integers(1, 4)), 4), dtype=np.uint8)
        full = colours[rng.integers(0, len(colours), (h, w + pad))]
    else:
        tile = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
        full = np.tile(tile, (h // 3 + 1, (w + pad) // 5 + 1, 1))[:h, : w + pad]
    return full[:, pad:] if pad else full


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small_frames(), min_size=20, max_size=20))
def test_random_frames_decode_exactly(frames: list[np.ndarray]) -> None:
    cases = [c for f in frames for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []


@pytest.mark.slow
def test_full_hd_sample_frames_decode_exactly(data_dir) -> None:
    shot = np.asarray(Image.open(data_dir / "basic.png").convert("RGB"))
    frames = [desktop_frame(1920, 1080, screenshot=shot), photo_frame(1920, 1080)]
    cases = [c for f in frames for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small_frames(), min_size=30, max_size=30))
def test_many_random_frames_decode_exactly(frames: list[np.ndarray]) -> None:
    cases = [c for f in frames for c in cases_for(f)]
    assert html5_roundtrip_failures(cases) == []
