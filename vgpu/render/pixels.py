"""Pixel formats and guest image decoding, in numpy, shared by the GL path and the reference.

Inside the renderer every surface and image is an (h, w, 4) uint8 array in the byte order of
QXL's 32-bit pixels in memory (B, G, R, A/X), top-down. 16-bit surfaces keep their 5/6-bit
channels widened by bit replication (as pixman reads them), A8 and A1 surfaces keep their value
in the A channel. Raster operations on these widened values give the same bits as on the packed
ones, because bit replication commutes with bitwise operations.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from vgpu.device.abi import lib
from vgpu.device.commands import BitmapImage, CompressedImage, GlyphString, Palette
from vgpu.encode.codecs import QUIC_TYPE_RGBA, quic_decode, quic_header
from vgpu.render import enums as E
from vgpu.render.errors import RenderError

IMAGE_TYPE_QUIC = lib.SPICE_IMAGE_TYPE_QUIC
"""The one compressed image type a guest may send (spice-server's parser refuses the rest)."""

MAX_DIM = 8192
"""Largest surface or image side in pixels: twice a 4K screen's width, inside every GL
implementation's texture limit (llvmpipe allows 16384), and it keeps one image under 256 MiB."""

SURFACE_BPP = {
    E.SURFACE_FMT_1_A: 1,
    E.SURFACE_FMT_8_A: 8,
    E.SURFACE_FMT_16_555: 16,
    E.SURFACE_FMT_16_565: 16,
    E.SURFACE_FMT_32_xRGB: 32,
    E.SURFACE_FMT_32_ARGB: 32,
}

_PALETTE_BPP = {
    E.BITMAP_FMT_1BIT_LE: 1,
    E.BITMAP_FMT_1BIT_BE: 1,
    E.BITMAP_FMT_4BIT_LE: 4,
    E.BITMAP_FMT_4BIT_BE: 4,
    E.BITMAP_FMT_8BIT: 8,
}
_DIRECT_BPP = {
    E.BITMAP_FMT_16BIT: 16,
    E.BITMAP_FMT_24BIT: 24,
    E.BITMAP_FMT_32BIT: 32,
    E.BITMAP_FMT_RGBA: 32,
    E.BITMAP_FMT_8BIT_A: 8,
}


def check_size(width: int, height: int, what: str) -> None:
    if not (0 < width <= MAX_DIM and 0 < height <= MAX_DIM):
        raise RenderError(f"{what}: bad size {width}x{height}")


def check_surface_format(fmt: int) -> None:
    if fmt not in SURFACE_BPP:
        raise RenderError(f"unknown surface format {fmt}")


# --- colours and surface formats -----------------------------------------------


def color_to_pixel(color: int, fmt: int) -> tuple[int, int, int, int]:
    """A brush colour as the guest gives it (in the destination surface's own pixel format,
    as the software canvas writes it raw) -> the renderer's B, G, R, A channel values."""
    color &= 0xFFFFFFFF
    if fmt in (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB):
        return color & 0xFF, (color >> 8) & 0xFF, (color >> 16) & 0xFF, color >> 24
    if fmt == E.SURFACE_FMT_16_555 or fmt == E.SURFACE_FMT_16_565:
        return (*_widen_16(color, fmt), 255)
    if fmt == E.SURFACE_FMT_8_A:
        return 0, 0, 0, color & 0xFF
    return 0, 0, 0, 255 if color & 1 else 0


def quantize_pixel(c: tuple[int, int, int, int], fmt: int) -> tuple[int, int, int, int]:
    """`quantize` for one pixel, without numpy (per-operation colours)."""
    b, g, r, a = c
    if fmt == E.SURFACE_FMT_16_555 or fmt == E.SURFACE_FMT_16_565:
        g = (g & 0xFC) | (g >> 6) if fmt == E.SURFACE_FMT_16_565 else (g & 0xF8) | (g >> 5)
        return (b & 0xF8) | (b >> 5), g, (r & 0xF8) | (r >> 5), 255
    if fmt == E.SURFACE_FMT_8_A:
        return 0, 0, 0, a
    if fmt == E.SURFACE_FMT_1_A:
        return 0, 0, 0, 255 if a & 0x80 else 0
    return b, g, r, a


def _widen_16(v: Any, fmt: int) -> tuple[Any, Any, Any]:
    """B, G, R of 16-bit pixel value(s) (an int or a uint32 array) of a 555 or 565 layout,
    widened to 8 bits by bit replication."""
    if fmt == E.SURFACE_FMT_16_565:
        g = (v >> 5) & 0x3F
        return _x5(v & 0x1F), (g << 2) | (g >> 4), _x5((v >> 11) & 0x1F)
    return _x5(v & 0x1F), _x5((v >> 5) & 0x1F), _x5((v >> 10) & 0x1F)


def _x5(v: Any) -> Any:
    return (v << 3) | (v >> 2)


def quantize(px: np.ndarray, fmt: int) -> np.ndarray:
    """What storing into a surface of `fmt` keeps of 8-bit channels (in place, returned)."""
    if fmt == E.SURFACE_FMT_16_555 or fmt == E.SURFACE_FMT_16_565:
        px[..., 0] = (px[..., 0] & 0xF8) | (px[..., 0] >> 5)
        px[..., 2] = (px[..., 2] & 0xF8) | (px[..., 2] >> 5)
        if fmt == E.SURFACE_FMT_16_555:
            px[..., 1] = (px[..., 1] & 0xF8) | (px[..., 1] >> 5)
        else:
            px[..., 1] = (px[..., 1] & 0xFC) | (px[..., 1] >> 6)
        px[..., 3] = 255
    elif fmt == E.SURFACE_FMT_8_A:
        px[..., :3] = 0
    elif fmt == E.SURFACE_FMT_1_A:
        px[..., :3] = 0
        px[..., 3] = np.where(px[..., 3] & 0x80, 255, 0)
    return px


def from_memory(mem: np.ndarray, fmt: int, width: int, height: int) -> np.ndarray:
    """Surface memory (height, >= row bytes) uint8, top-down -> (h, w, 4) channels."""
    bpp = SURFACE_BPP[fmt]
    row = (width * bpp + 7) // 8
    if mem.ndim != 2 or mem.shape[0] < height or mem.shape[1] < row:
        raise RenderError("surface data shorter than its size")
    mem = np.ascontiguousarray(mem[:height, :row], dtype=np.uint8)
    out = np.zeros((height, width, 4), np.uint8)
    if bpp == 32:
        out[:] = mem.reshape(height, width, 4)
    elif bpp == 16:
        v = mem.view("<u2").astype(np.uint32)
        for i, channel in enumerate(_widen_16(v, fmt)):
            out[..., i] = channel
        out[..., 3] = 255
    elif bpp == 8:
        out[..., 3] = mem
    else:  # pixman's a1: the first pixel is the least significant bit
        bits = np.unpackbits(mem, axis=1, bitorder="little")[:, :width]
        out[..., 3] = bits * 255
    return out


def to_memory(px: np.ndarray, fmt: int) -> np.ndarray:
    """(h, w, 4) channels -> (h, w * bytes_per_pixel) uint8 in the surface format's layout
    (A1: ceil(w / 8) bytes per row)."""
    h, w = px.shape[:2]
    if fmt in (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB):
        return np.ascontiguousarray(px).reshape(h, w * 4)
    if fmt in (E.SURFACE_FMT_16_555, E.SURFACE_FMT_16_565):
        b = px[..., 0].astype(np.uint16) >> 3
        r = px[..., 2].astype(np.uint16) >> 3
        if fmt == E.SURFACE_FMT_16_555:
            v = b | (px[..., 1].astype(np.uint16) >> 3) << 5 | r << 10
        else:
            v = b | (px[..., 1].astype(np.uint16) >> 2) << 5 | r << 11
        return np.ascontiguousarray(v.astype("<u2")).view(np.uint8).reshape(h, w * 2)
    if fmt == E.SURFACE_FMT_8_A:
        return np.ascontiguousarray(px[..., 3])
    return np.packbits(px[..., 3] >> 7, axis=1, bitorder="little")


# --- guest images ----------------------------------------------------------------


def palette_key(palette: Palette | None) -> int | tuple[int, ...] | None:
    """The palette's identity for the image cache: the guest's unique id, or its entries
    when the guest gave none (unique == 0)."""
    if palette is None:
        return None
    if palette.unique:
        return palette.unique
    return palette.ents


def _rows(img: BitmapImage, row_bytes: int) -> np.ndarray:
    """The bitmap's rows as (height, row_bytes) uint8, top-down, after checking sizes."""
    check_size(img.width, img.height, "bitmap")
    if img.stride < row_bytes:
        raise RenderError(f"bitmap stride {img.stride} < row size {row_bytes}")
    if len(img.data) < img.height * img.stride:
        raise RenderError("bitmap data shorter than height * stride")
    buf = np.frombuffer(img.data, np.uint8, img.height * img.stride)
    rows = buf.reshape(img.height, img.stride)[:, :row_bytes]
    return rows if img.top_down else rows[::-1]


def _unpack_indices(rows: np.ndarray, bpp: int, width: int, msb_first: bool) -> np.ndarray:
    if bpp == 8:
        return rows[:, :width]
    if bpp == 4:
        hi, lo = rows >> 4, rows & 0xF
        pair = (hi, lo) if msb_first else (lo, hi)
        return np.stack(pair, axis=2).reshape(rows.shape[0], -1)[:, :width]
    order = "big" if msb_first else "little"
    return np.unpackbits(rows, axis=1, bitorder=order)[:, :width]


def decode_bitmap(img: BitmapImage) -> tuple[np.ndarray, bool]:
    """A guest bitmap -> ((h, w, 4) uint8 channels top-down, has_alpha).

    Values follow the software canvas: palette entries and 32-bit pixels are taken raw,
    24-bit and 16-bit pixels get a zero top byte; only RGBA and 8BIT_A carry real alpha."""
    fmt = img.format
    w, h = img.width, img.height
    if fmt in _PALETTE_BPP:
        bpp = _PALETTE_BPP[fmt]
        if img.palette is None:
            raise RenderError("palette bitmap without a palette")
        rows = _rows(img, (w * bpp + 7) // 8)
        msb = fmt in (E.BITMAP_FMT_1BIT_BE, E.BITMAP_FMT_4BIT_BE, E.BITMAP_FMT_8BIT)
        idx = _unpack_indices(rows, bpp, w, msb)
        ents = np.zeros(1 << bpp, np.uint32)  # entries past num_ents read as 0
        n = min(len(img.palette.ents), 1 << bpp)
        # the 32 bits an entry holds in memory, whatever int a hostile command carries
        ents[:n] = [int(e) & 0xFFFFFFFF for e in img.palette.ents[:n]]
        return ents[idx].astype("<u4").view(np.uint8).reshape(h, w, 4), False
    if fmt not in _DIRECT_BPP:
        raise RenderError(f"unknown bitmap format {fmt}")
    bpp = _DIRECT_BPP[fmt]
    rows = _rows(img, w * bpp // 8)
    out = np.zeros((h, w, 4), np.uint8)
    if bpp == 32:
        out[:] = rows.reshape(h, w, 4)
    elif bpp == 24:
        out[..., :3] = rows.reshape(h, w, 3)
    elif fmt == E.BITMAP_FMT_16BIT:
        v = np.ascontiguousarray(rows).view("<u2").astype(np.uint32)
        for i, channel in enumerate(_widen_16(v, E.SURFACE_FMT_16_555)):  # 16BIT is 555
            out[..., i] = channel
    else:  # 8BIT_A
        out[..., 3] = rows
    return out, fmt in (E.BITMAP_FMT_RGBA, E.BITMAP_FMT_8BIT_A)


def quic_format(img: CompressedImage) -> int:
    """The bitmap format `quic_bitmap` gives this image, from its stream's header alone (what
    its image-cache key needs before any decoding); RenderError as quic_bitmap."""
    d = img.descriptor
    if d.type != IMAGE_TYPE_QUIC:
        raise RenderError(f"image type {d.type} is not supported")
    try:
        qtype, w, h = quic_header(img.data)
    except ValueError as e:
        raise RenderError(f"QUIC image: {e}") from None
    if (w, h) != (d.width, d.height):
        raise RenderError(f"stream is {w}x{h}, its descriptor says {d.width}x{d.height}")
    return E.BITMAP_FMT_RGBA if qtype == QUIC_TYPE_RGBA else E.BITMAP_FMT_32BIT


def quic_bitmap(img: CompressedImage) -> BitmapImage:
    """A guest QUIC image -> the 32-bit top-down bitmap it stands for, under the same
    descriptor (type BITMAP), so that it is staged and cached as bitmaps are.

    Decoded as spice-common's canvas does: RGB32, RGB24 and RGB16 (widened) with a zero
    4th byte, RGBA with its alpha (an RGBA bitmap); the stream's size must be the
    descriptor's. Any other image type, or a bad stream, is a RenderError."""
    fmt = quic_format(img)  # the header, checked before any decoding
    d = img.descriptor
    try:
        data, _ = quic_decode(img.data, max_dim=MAX_DIM)  # checks the size before allocating
    except ValueError as e:
        raise RenderError(f"QUIC image: {e}") from None
    return BitmapImage(replace(d, type=E.IMAGE_TYPE_BITMAP), fmt, lib.QXL_BITMAP_TOP_DOWN,
                       d.width, d.height, d.width * 4, None, data.tobytes())


def decode_mask(img: BitmapImage, invert: bool) -> np.ndarray:
    """A 1-bit mask bitmap -> (h, w) bool, True where drawing happens."""
    if img.format not in (E.BITMAP_FMT_1BIT_LE, E.BITMAP_FMT_1BIT_BE):
        raise RenderError(f"mask bitmap format {img.format} is not 1-bit")
    rows = _rows(img, (img.width + 7) // 8)
    order = "little" if img.format == E.BITMAP_FMT_1BIT_LE else "big"
    bits = np.unpackbits(rows, axis=1, bitorder=order)[:, : img.width].astype(bool)
    return ~bits if invert else bits


def glyph_boxes(string: GlyphString) -> tuple[int, list[tuple[int, int, int, int]],
                                               tuple[int, int, int, int]]:
    """Checks a raster glyph string: (bits per pixel, each glyph's box, the string's box)."""
    if string.flags & E.STRING_FLAGS_RASTER_A1:
        bpp = 1
    elif string.flags & E.STRING_FLAGS_RASTER_A4:
        bpp = 4
    elif string.flags & E.STRING_FLAGS_RASTER_A8:
        bpp = 8
    else:
        raise RenderError("glyph string is not raster A1, A4 or A8")
    if not string.glyphs:
        raise RenderError("empty glyph string")
    boxes = []
    lim = MAX_DIM * 4  # glyphs this far off any surface are not a real string
    for g in string.glyphs:
        w, h = g.width, g.height
        if not (0 <= w <= MAX_DIM and 0 <= h <= MAX_DIM):
            raise RenderError("bad glyph size")
        if len(g.data) < (w * bpp + 7) // 8 * h:
            raise RenderError("glyph data shorter than its size")
        x = g.render_pos.x + g.glyph_origin.x
        y = g.render_pos.y + g.glyph_origin.y
        if not (-lim <= x <= lim and -lim <= y <= lim):
            raise RenderError("glyph position out of range")
        boxes.append((x, y, x + w, y + h))
    x0s, y0s, x1s, y1s = zip(*boxes, strict=True)
    box = (min(x0s), min(y0s), max(x1s), max(y1s))
    if box[2] - box[0] > MAX_DIM or box[3] - box[1] > MAX_DIM:
        raise RenderError("glyph string too large")
    return bpp, boxes, box


def glyph_mask(string: GlyphString) -> tuple[int, int, np.ndarray]:
    """A raster glyph string -> (left, top, (h, w) uint8 coverage), glyphs combined as the
    software canvas does (A1: OR, A4: nibble << 4 by the canvas's own rule below, A8: max). Rows are
    always read bottom-up: spice-common's canvas ignores SPICE_STRING_FLAGS_RASTER_TOP_DOWN
    (docs/conformance.md), and every SPICE client draws with that canvas."""
    bpp, boxes, (left, top, right, bottom) = glyph_boxes(string)
    out = np.zeros((bottom - top, right - left), np.uint8)
    for g, (x0, y0, x1, y1) in zip(string.glyphs, boxes, strict=True):
        if g.width == 0 or g.height == 0:
            continue
        stride = (g.width * bpp + 7) // 8
        rows = np.frombuffer(g.data, np.uint8, stride * g.height).reshape(g.height, stride)
        rows = rows[::-1]
        region = out[y0 - top : y1 - top, x0 - left : x1 - left]
        if bpp == 4:
            # the canvas keeps the larger of each pixel and the glyph's nibble << 4, but
            # compares a pixel at an odd x with the whole byte << 4 (an int, not truncated):
            # there the glyph's low nibble replaces the pixel whenever the byte's high
            # nibble is set (docs/conformance.md)
            even = region[:, 0::2]
            np.maximum(even, rows[:, : even.shape[1]] & 0xF0, out=even)
            odd = region[:, 1::2]
            byte = rows[:, : odd.shape[1]]
            low = (byte << 4) & 0xF0
            odd[...] = np.where(byte >= 0x10, low, np.maximum(odd, low))
            continue
        if bpp == 1:
            cov = np.unpackbits(rows, axis=1, bitorder="big")[:, : g.width] * np.uint8(255)
        else:
            cov = rows[:, : g.width]
        np.maximum(region, cov, out=region)
    return left, top, out
