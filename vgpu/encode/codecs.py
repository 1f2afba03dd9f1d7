"""Plain functions over numpy frames, backed by the C encoders in vgpu._encode.

A frame is a numpy uint8 array of shape (height, width, 4) in B,G,R,X memory
order with packed pixels (strides[1] == 4, strides[2] == 1) and any row
stride, so a crop view ``frame[top:bottom, left:right]`` is encoded in place.
Arguments are checked here, before C runs; the C code checks them again and
sizes every output buffer by a worst-case bound it computes itself.
"""

from __future__ import annotations

import numpy as np

from vgpu._encode import ffi, lib

MAX_DIM = lib.VGPU_ENC_MAX_DIM
MIN_TILE = lib.VGPU_ENC_MIN_TILE  # smallest tile edge the tile differ accepts

_alloc = ffi.new_allocator(should_clear_after_alloc=False)
Rect = tuple[int, int, int, int]


def _frame(pixels: object, name: str = "pixels") -> tuple[object, int, int, int]:
    """Checks a frame; returns (C pointer, row stride in bytes, width, height)."""
    if not isinstance(pixels, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8, not {pixels.dtype}")
    if pixels.ndim != 3 or pixels.shape[2] != 4:
        raise ValueError(f"{name} must have shape (height, width, 4), not {pixels.shape}")
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    if not (0 < width <= MAX_DIM and 0 < height <= MAX_DIM):
        raise ValueError(f"{name} is {width}x{height}; each side must be 1..{MAX_DIM}")
    if pixels.strides[2] != 1 or (pixels.strides[1] != 4 and width > 1):
        raise ValueError(f"{name} pixels must be packed (strides[1:] == (4, 1)), "
                         f"not {pixels.strides[1:]}")
    stride = int(pixels.strides[0]) if height > 1 else width * 4
    if stride < width * 4:
        raise ValueError(f"{name} row stride {stride} is smaller than a row ({width * 4} bytes)")
    address = pixels.__array_interface__["data"][0]
    return ffi.cast("const uint8_t *", address), stride, width, height


def _check(result: int, what: str) -> int:
    if result >= 0:
        return result
    if result == lib.VGPU_ENC_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    raise RuntimeError(f"{what} failed in C (error {result})")


def changed_tiles(prev: np.ndarray, cur: np.ndarray, tile: int = 64) -> list[Rect]:
    """Rectangles (left, top, right, bottom; right/bottom exclusive) covering every
    tile x tile block that differs between two frames of the same size."""
    p, pstride, width, height = _frame(prev, "prev")
    c, cstride, cw, ch = _frame(cur, "cur")
    if (cw, ch) != (width, height):
        raise ValueError(f"frames differ in size: {width}x{height} and {cw}x{ch}")
    if not isinstance(tile, int) or not MIN_TILE <= tile <= MAX_DIM:
        raise ValueError(f"tile must be an int in {MIN_TILE}..{MAX_DIM}, not {tile!r}")
    cap = _check(lib.vgpu_tiles_max_rects(width, height, tile), "tile count")
    rects = _alloc("int32_t[]", 4 * cap)
    n = _check(lib.vgpu_tiles_changed(p, pstride, c, cstride, width, height, tile, rects, cap),
               "changed_tiles")
    flat = np.frombuffer(ffi.buffer(rects, 16 * n), dtype=np.int32).tolist()
    return [tuple(flat[i:i + 4]) for i in range(0, 4 * n, 4)]  # type: ignore[misc]


def solid_tiles(pixels: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tile x tile block, in rows of blocks (edge blocks smaller): its first
    pixel's colour (0x00RRGGBB) and whether the whole block has it, as two arrays of
    shape (block rows, block columns)."""
    ptr, stride, width, height = _frame(pixels)
    if not isinstance(tile, int) or not MIN_TILE <= tile <= MAX_DIM:
        raise ValueError(f"tile must be an int in {MIN_TILE}..{MAX_DIM}, not {tile!r}")
    rows, cols = -(-height // tile), -(-width // tile)
    colours = np.empty((rows, cols), np.uint32)
    solid = np.empty((rows, cols), np.uint8)
    _check(lib.vgpu_tiles_solid(ptr, stride, width, height, tile,
                                ffi.from_buffer("uint32_t[]", colours),
                                ffi.from_buffer("uint8_t[]", solid), rows * cols),
           "solid_tiles")
    return colours, solid.astype(bool)


def _lz(pixels: np.ndarray, with_alpha: bool) -> bytes:
    ptr, stride, width, height = _frame(pixels)
    cap = lib.vgpu_lz_bound(width, height, int(with_alpha))
    out = _alloc("uint8_t[]", cap)
    n = _check(lib.vgpu_lz_encode(ptr, stride, width, height, int(with_alpha), out, cap),
               "SPICE LZ")
    return ffi.buffer(out, n)[:]


def encode_lz_rgb32(pixels: np.ndarray) -> bytes:
    """SPICE LZ, LZ_IMAGE_TYPE_RGB32, top-down: the stream from the LZ magic on."""
    return _lz(pixels, False)


def encode_lz_rgba(pixels: np.ndarray) -> bytes:
    """SPICE LZ, LZ_IMAGE_TYPE_RGBA: the RGB32 stream, then one over the 4th bytes."""
    return _lz(pixels, True)


def encode_lz4_rgb32(pixels: np.ndarray) -> bytes:
    """SPICE_IMAGE_TYPE_LZ4 payload: top-down byte, format byte, BE-length-prefixed
    blocks of one linked liblz4 stream over the packed B,G,R,X rows."""
    ptr, stride, width, height = _frame(pixels)
    cap = lib.vgpu_lz4_bound(width, height)
    out = _alloc("uint8_t[]", cap)
    n = _check(lib.vgpu_lz4_encode_rgb32(ptr, stride, width, height, out, cap), "LZ4")
    return ffi.buffer(out, n)[:]


def encode_jpeg(pixels: np.ndarray, quality: int = 80) -> bytes:
    """A baseline JFIF stream (4:2:0) of the frame's colours via libjpeg-turbo."""
    ptr, stride, width, height = _frame(pixels)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in 1..100, not {quality!r}")
    outp = ffi.new("uint8_t **")
    n = _check(lib.vgpu_jpeg_encode(ptr, stride, width, height, quality, outp), "JPEG")
    try:
        return ffi.buffer(outp[0], n)[:]
    finally:
        lib.vgpu_encode_free(outp[0])


def bgrx_to_i420(pixels: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Writes the frame as I420 (BT.601 limited range, U and V the means of 2x2 blocks)
    into three planes: uint8 arrays of shape (height, width) for `y` and half that each
    way for `u` and `v`, each with any row stride (a video frame's planes, in place)."""
    ptr, stride, width, height = _frame(pixels)
    if width % 2 or height % 2:
        raise ValueError(f"I420 needs an even size, not {width}x{height}")
    planes = []
    for name, plane, shape in (("y", y, (height, width)), ("u", u, (height // 2, width // 2)),
                               ("v", v, (height // 2, width // 2))):
        if not isinstance(plane, np.ndarray) or plane.dtype != np.uint8:
            raise TypeError(f"plane {name} must be a uint8 numpy array")
        if plane.shape != shape or plane.strides[1] != 1 or plane.strides[0] < shape[1]:
            raise ValueError(f"plane {name} must be {shape} with packed rows, not "
                             f"{plane.shape} with strides {plane.strides}")
        if not plane.flags.writeable:
            raise ValueError(f"plane {name} is read-only")
        planes += [ffi.cast("uint8_t *", plane.__array_interface__["data"][0]),
                   int(plane.strides[0])]
    _check(lib.vgpu_bgrx_to_i420(ptr, stride, width, height, *planes), "I420")


def encode_quic_rgb32(pixels: np.ndarray) -> bytes:
    """SPICE QUIC, QUIC_IMAGE_TYPE_RGB32: the stream from the QUIC magic on."""
    ptr, stride, width, height = _frame(pixels)
    cap = lib.vgpu_quic_bound(width, height)
    out = _alloc("uint8_t[]", cap)
    n = _check(lib.vgpu_quic_encode_rgb32(ptr, stride, width, height, out, cap), "QUIC")
    return ffi.buffer(out, n)[:]


QUIC_TYPE_RGBA = lib.VGPU_QUIC_TYPE_RGBA
_DECODE_ERRORS = {
    lib.VGPU_DEC_ERR_HEADER: "not a QUIC stream (bad magic or version)",
    lib.VGPU_DEC_ERR_TYPE: "QUIC image type not supported (RGB32, RGB24, RGB16, RGBA are)",
    lib.VGPU_DEC_ERR_SIZE: f"QUIC image size out of range (each side 1..{MAX_DIM})",
    lib.VGPU_DEC_ERR_TRUNCATED: "QUIC stream ends before its image",
    lib.VGPU_DEC_ERR_CORRUPT: "corrupt QUIC stream",
}


def _decode_check(result: int) -> int:
    if result in _DECODE_ERRORS:
        raise ValueError(_DECODE_ERRORS[result])
    return _check(result, "QUIC decode")


def quic_header(data: bytes) -> tuple[int, int, int]:
    """A QUIC stream's (image type, width, height); ValueError for a bad or
    unsupported header. Cheap: reads the first 24 bytes only."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    out = ffi.new("int[3]")
    _decode_check(lib.vgpu_quic_decode_header(ffi.from_buffer(data), len(data), out,
                                              out + 1, out + 2))
    return out[0], out[1], out[2]


def quic_decode(data: bytes, max_dim: int = MAX_DIM) -> tuple[np.ndarray, bool]:
    """A QUIC stream (from the QUIC magic on) -> ((h, w, 4) uint8 B,G,R,A pixels,
    has_alpha). RGB32/RGB24/RGB16 images get A = 0 and has_alpha False, as
    spice-common's decoder writes them; RGBA keeps its alpha plane. Raises
    ValueError for a stream that is bad, unsupported, or has a side over max_dim."""
    qtype, width, height = quic_header(data)
    if width > max_dim or height > max_dim:
        raise ValueError(f"QUIC image is {width}x{height}; each side must be 1..{max_dim}")
    out = np.empty((height, width, 4), np.uint8)
    ptr = ffi.cast("uint8_t *", out.__array_interface__["data"][0])
    _decode_check(lib.vgpu_quic_decode(ffi.from_buffer(data), len(data), ptr, width * 4,
                                       width, height))
    return out, qtype == QUIC_TYPE_RGBA
