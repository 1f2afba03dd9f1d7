"""LZ4 (decoded the way spice-gtk does, with liblz4's streaming decoder),
JPEG (decoded by Pillow) and the argument checks every encoder shares."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vgpu.encode import (
    changed_tiles,
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_lz_rgba,
    encode_quic_rgb32,
)
from vgpu.encode.codecs import MAX_DIM, bgrx_to_i420
from vgpu.encode.samples import desktop_frame, photo_frame

SPICE_BITMAP_FMT_32BIT = 8
ENCODERS = [encode_lz_rgb32, encode_lz_rgba, encode_quic_rgb32, encode_lz4_rgb32, encode_jpeg]


def _liblz4() -> ctypes.CDLL:
    name = ctypes.util.find_library("lz4")
    if name is None:
        pytest.skip("liblz4 shared library not found")
    lib = ctypes.CDLL(name)
    lib.LZ4_createStreamDecode.restype = ctypes.c_void_p
    lib.LZ4_freeStreamDecode.argtypes = [ctypes.c_void_p]
    lib.LZ4_decompress_safe_continue.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                 ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return lib


def spice_gtk_lz4_decode(data: bytes, width: int, height: int) -> np.ndarray:
    """What spice-common's canvas_get_lz4 does: header bytes, then BE-length
    blocks through one LZ4 streaming decoder into one buffer of packed rows."""
    lib = _liblz4()
    assert data[0] == 1, "not top-down"
    assert data[1] == SPICE_BITMAP_FMT_32BIT
    out = ctypes.create_string_buffer(width * height * 4)
    stream = lib.LZ4_createStreamDecode()
    try:
        at, done = 2, 0
        while at < len(data):
            (n,) = struct.unpack_from(">I", data, at)
            at += 4
            assert n <= len(data) - at, "block runs past the data"
            got = lib.LZ4_decompress_safe_continue(stream, data[at:at + n],
                                                   ctypes.addressof(out) + done, n,
                                                   len(out) - done)
            assert got > 0, "liblz4 rejected a block"
            done += got
            at += n
    finally:
        lib.LZ4_freeStreamDecode(stream)
    assert done == len(out)
    return np.frombuffer(out.raw, np.uint8).reshape(height, width, 4)


def test_lz4_decodes_like_spice_gtk() -> None:
    rng = np.random.default_rng(2)
    desk = desktop_frame(800, 600)
    frames = [desk, desk[100:400, 33:700], photo_frame(300, 200),
              rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), desk[:1, :1]]
    for f in frames:
        got = spice_gtk_lz4_decode(encode_lz4_rgb32(f), f.shape[1], f.shape[0])
        assert np.array_equal(got, f)


def test_lz4_large_frames_whole_and_cropped() -> None:
    f = photo_frame(1024, 700)  # incompressible: blocks bigger than their input
    assert np.array_equal(spice_gtk_lz4_decode(encode_lz4_rgb32(f), 1024, 700), f)
    crop = f[1:699, 1:1023]  # one block per row, each may refer to the rows before
    assert np.array_equal(spice_gtk_lz4_decode(encode_lz4_rgb32(crop), 1022, 698), crop)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_lz4_random_crops(w: int, h: int, pad: int, seed: int) -> None:
    full = np.random.default_rng(seed).integers(0, 4, (h, w + pad, 4), dtype=np.uint8) * 80
    f = full[:, pad:]
    assert np.array_equal(spice_gtk_lz4_decode(encode_lz4_rgb32(f), w, h), f)


def test_jpeg_is_jfif_that_pillow_decodes_close_to_the_input() -> None:
    f = photo_frame(320, 240)
    crop = f[10:200, 20:300]
    for frame in (f, crop):
        data = encode_jpeg(frame, quality=90)
        assert data[:4] == b"\xff\xd8\xff\xe0" and data[6:11] == b"JFIF\x00"
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.size == (frame.shape[1], frame.shape[0])
        rgb = np.asarray(img.convert("RGB")).astype(int)
        want = frame[..., [2, 1, 0]].astype(int)
        assert np.abs(rgb - want).mean() < 4.0


def test_jpeg_quality_trades_size() -> None:
    f = photo_frame(320, 240)
    assert len(encode_jpeg(f, quality=30)) < len(encode_jpeg(f, quality=95))


@pytest.mark.parametrize("quality", [0, 101, 80.0, None])
def test_jpeg_rejects_bad_quality(quality: object) -> None:
    with pytest.raises(ValueError):
        encode_jpeg(np.zeros((4, 4, 4), np.uint8), quality=quality)  # type: ignore[arg-type]


def bad_frames() -> list[tuple[object, type[Exception]]]:
    ok = np.zeros((8, 8, 4), np.uint8)
    return [
        (b"\0" * 256, TypeError),
        (ok.astype(np.uint16), TypeError),
        (ok.astype(np.float32), TypeError),
        (np.zeros((8, 8), np.uint8), ValueError),
        (np.zeros((8, 8, 3), np.uint8), ValueError),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError),
        (np.zeros((0, 8, 4), np.uint8), ValueError),
        (np.zeros((8, 0, 4), np.uint8), ValueError),
        (ok[:, ::2], ValueError),  # pixels not packed
        (ok[:, :, ::-1], ValueError),
        (ok[::-1], ValueError),  # negative row stride
        (np.zeros((8, 4, 8), np.uint8)[:, :, :4].transpose(1, 0, 2), ValueError),
        (np.lib.stride_tricks.as_strided(ok, (MAX_DIM + 1, 8, 4), (0, 4, 1)), ValueError),
        (np.lib.stride_tricks.as_strided(ok, (8, MAX_DIM + 1, 4), (0, 4, 1)), ValueError),
    ]


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda f: f.__name__)
def test_encoders_reject_bad_frames_before_c(encoder) -> None:
    for frame, error in bad_frames():
        with pytest.raises(error):
            encoder(frame)


def test_changed_tiles_rejects_bad_arguments() -> None:
    a = np.zeros((64, 64, 4), np.uint8)
    for frame, error in bad_frames():
        with pytest.raises(error):
            changed_tiles(a, frame)
        with pytest.raises(error):
            changed_tiles(frame, a)
    with pytest.raises(ValueError):
        changed_tiles(a, np.zeros((64, 65, 4), np.uint8))
    for tile in (0, 7, -64, MAX_DIM + 1, 64.0):
        with pytest.raises(ValueError):
            changed_tiles(a, a, tile=tile)  # type: ignore[arg-type]


def test_read_only_and_largest_allowed_width_are_fine() -> None:
    f = np.zeros((1, MAX_DIM, 4), np.uint8)
    f.flags.writeable = False
    for encoder in ENCODERS:
        assert len(encoder(f)) > 0


BUFFER = 64 * 1024


@settings(max_examples=150, deadline=None)
@given(h=st.integers(0, 40), w=st.integers(0, 40), row=st.integers(-700, 700),
       col=st.sampled_from([-4, 0, 4, 8]), chan=st.sampled_from([-1, 0, 1, 2]),
       encoder=st.sampled_from(ENCODERS))
def test_any_view_of_a_buffer_is_encoded_or_refused(h: int, w: int, row: int, col: int,
                                                    chan: int, encoder) -> None:
    """Views with any strides (all inside their buffer): either a clear
    ValueError, or an encoding; never a crash or a read outside the view."""
    base = np.random.default_rng(h * 41 + w).integers(0, 256, BUFFER, dtype=np.uint8)
    # Start in the middle so negative strides stay inside the buffer too.
    offset = BUFFER // 2
    frame = np.lib.stride_tricks.as_strided(base[offset:], (h, w, 4), (row, col, chan))
    valid = (h > 0 and w > 0 and chan == 1 and (col == 4 or w == 1)
             and (row >= w * 4 or h == 1))
    if not valid:
        with pytest.raises(ValueError):
            encoder(frame)
        return
    assert len(encoder(frame)) > 0
    if encoder is encode_lz4_rgb32:
        got = spice_gtk_lz4_decode(encoder(frame), w, h)
        assert np.array_equal(got, frame)


def _i420_planes(width: int, height: int) -> list[np.ndarray]:
    return [np.zeros((height, width), np.uint8),
            np.zeros((height // 2, width // 2), np.uint8),
            np.zeros((height // 2, width // 2), np.uint8)]


def _swscale_i420(pixels: np.ndarray) -> list[np.ndarray]:
    """FFmpeg's libswscale (through PyAV) converting the same pixels: the peer."""
    av = pytest.importorskip("av")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgra")
    frame = frame.reformat(format="yuv420p")
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
            for p in frame.planes]


@pytest.mark.parametrize("make", [photo_frame, desktop_frame])
def test_i420_matches_libswscale(make):
    # A crop of a bigger frame, so its rows keep the bigger frame's stride.
    pixels = make(330, 202)[1:201, 3:323]
    ours = _i420_planes(320, 200)
    bgrx_to_i420(pixels, *ours)
    theirs = _swscale_i420(pixels)
    # Luma: the same BT.601 formula, rounded alike but for a unit here and there.
    assert np.abs(ours[0].astype(int) - theirs[0]).max() <= 1
    for name, mine, peer in zip("uv", ours[1:], theirs[1:], strict=True):
        # Chroma: we take each 2x2 block's mean, libswscale filters across blocks, so
        # sharp colour edges differ; on the whole the planes agree.
        diff = np.abs(mine.astype(int) - peer)
        assert diff.mean() < 1.5, f"{name}: mean difference {diff.mean():.2f}"
        assert np.percentile(diff, 90) <= 2, name


def test_i420_smooth_colours_match_libswscale_to_a_unit():
    yy, xx = np.mgrid[0:64, 0:96]
    pixels = np.stack([(xx * 2.5) % 256, (yy * 3) % 256, ((xx + yy) * 1.3) % 256,
                       np.full_like(xx, 255)], axis=-1).astype(np.uint8)
    ours = _i420_planes(96, 64)
    bgrx_to_i420(pixels, *ours)
    for mine, peer in zip(ours, _swscale_i420(pixels), strict=True):
        assert np.abs(mine.astype(int) - peer).max() <= 1


def test_i420_refuses_odd_sizes_and_wrong_planes():
    pixels = np.zeros((8, 8, 4), np.uint8)
    with pytest.raises(ValueError):
        bgrx_to_i420(pixels[:7], *_i420_planes(8, 7))
    y, u, v = _i420_planes(8, 8)
    with pytest.raises(ValueError):
        bgrx_to_i420(pixels, y, u[:3], v)
    with pytest.raises(ValueError):
        bgrx_to_i420(pixels, y, u[:, ::-1], v)
    u.flags.writeable = False
    with pytest.raises(ValueError):
        bgrx_to_i420(pixels, y, u, v)
    with pytest.raises(TypeError):
        bgrx_to_i420(pixels, y, u.astype(np.int16), v)
