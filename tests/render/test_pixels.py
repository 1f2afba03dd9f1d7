"""Guest bitmap, mask and glyph decoding and surface memory layouts (no GL)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from render_helpers import bitmap

from vgpu.device.commands import GlyphString, Palette, QPoint, RasterGlyph
from vgpu.render import RenderError
from vgpu.render import enums as E
from vgpu.render import pixels as px

PAL = Palette(7, (0x00112233, 0x00445566, 0xFF778899, 0x00AABBCC))


def _px(v: int) -> list[int]:
    return [v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24]


def test_1bit_palette_both_bit_orders():
    row = np.array([[0b10100000]], np.uint8)
    be, _ = px.decode_bitmap(bitmap(row, E.BITMAP_FMT_1BIT_BE, palette=PAL, width=3))
    le, _ = px.decode_bitmap(bitmap(row, E.BITMAP_FMT_1BIT_LE, palette=PAL, width=3))
    assert be[0].tolist() == [_px(PAL.ents[1]), _px(PAL.ents[0]), _px(PAL.ents[1])]
    assert le[0].tolist() == [_px(PAL.ents[0])] * 3  # bits 0..2 of 0xA0 are clear


def test_4bit_and_8bit_palette():
    row = np.array([[0x12, 0x30]], np.uint8)
    be, alpha = px.decode_bitmap(bitmap(row, E.BITMAP_FMT_4BIT_BE, palette=PAL, width=3))
    assert not alpha
    assert be[0].tolist() == [_px(PAL.ents[1]), _px(PAL.ents[2]), _px(PAL.ents[3])]
    le, _ = px.decode_bitmap(bitmap(row, E.BITMAP_FMT_4BIT_LE, palette=PAL, width=3))
    assert le[0].tolist() == [_px(PAL.ents[2]), _px(PAL.ents[1]), _px(PAL.ents[0])]
    eight, _ = px.decode_bitmap(bitmap(np.array([[3, 200]], np.uint8), E.BITMAP_FMT_8BIT,
                                       palette=PAL))
    assert eight[0].tolist() == [_px(PAL.ents[3]), [0, 0, 0, 0]]  # past num_ents: 0


def test_direct_formats_and_bottom_up():
    rgb16 = np.array([[0x7C00 & 0xFF, 0x7C00 >> 8, 0x1F, 0]], np.uint8)  # red, blue in 555
    out, _ = px.decode_bitmap(bitmap(rgb16, E.BITMAP_FMT_16BIT, width=2))
    assert out[0].tolist() == [[0, 0, 255, 0], [255, 0, 0, 0]]
    rgb24 = np.array([[1, 2, 3, 4, 5, 6]], np.uint8)
    out, _ = px.decode_bitmap(bitmap(rgb24, E.BITMAP_FMT_24BIT, width=2))
    assert out[0].tolist() == [[1, 2, 3, 0], [4, 5, 6, 0]]
    rows = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    out, alpha = px.decode_bitmap(bitmap(rows, E.BITMAP_FMT_RGBA, top_down=False))
    assert alpha and (out == rows).all()
    a8, alpha = px.decode_bitmap(bitmap(np.array([[9, 10]], np.uint8), E.BITMAP_FMT_8BIT_A))
    assert alpha and a8[0].tolist() == [[0, 0, 0, 9], [0, 0, 0, 10]]


@pytest.mark.parametrize("bad", [
    dict(width=0), dict(height=0), dict(stride=3), dict(data=b"\0" * 7), dict(format=99),
    dict(format=E.BITMAP_FMT_8BIT), dict(width=px.MAX_DIM + 1),
])
def test_bad_bitmaps_refused(bad):
    img = bitmap(np.zeros((2, 8), np.uint8), E.BITMAP_FMT_32BIT, width=2)
    fields = {f: getattr(img, f) for f in img.__slots__}
    fields.update(bad)
    with pytest.raises(RenderError):
        px.decode_bitmap(type(img)(**fields))


@pytest.mark.parametrize("fmt", sorted(px.SURFACE_BPP))
@given(data=st.data())
def test_memory_layout_roundtrip(fmt, data):
    w, h = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 5))
    row = (w * px.SURFACE_BPP[fmt] + 7) // 8
    mem = np.frombuffer(data.draw(st.binary(min_size=row * h, max_size=row * h)), np.uint8)
    mem = mem.reshape(h, row).copy()
    if fmt == E.SURFACE_FMT_16_555:
        mem.view("<u2")[:] &= 0x7FFF  # the unused top bit is not kept
    if fmt == E.SURFACE_FMT_1_A and w % 8:
        mem[:, -1] &= (1 << (w % 8)) - 1  # padding bits past the width are not kept
    chans = px.from_memory(mem, fmt, w, h)
    assert (px.quantize(chans.copy(), fmt) == chans).all()
    assert (px.to_memory(chans, fmt) == mem).all()


def test_colors_by_surface_format():
    assert px.color_to_pixel(0x80FF0102, E.SURFACE_FMT_32_ARGB) == (2, 1, 255, 0x80)
    assert px.color_to_pixel(0x7C1F, E.SURFACE_FMT_16_555) == (255, 0, 255, 255)
    assert px.color_to_pixel(0x07E0, E.SURFACE_FMT_16_565) == (0, 255, 0, 255)
    assert px.color_to_pixel(0x1234, E.SURFACE_FMT_8_A) == (0, 0, 0, 0x34)
    assert px.color_to_pixel(1, E.SURFACE_FMT_1_A) == (0, 0, 0, 255)


def test_palette_key():
    assert px.palette_key(None) is None
    assert px.palette_key(Palette(5, (1, 2))) == 5
    assert px.palette_key(Palette(0, (1, 2))) != px.palette_key(Palette(0, (1, 3)))


def test_glyph_string_a1_a4_bottom_up_rows():
    a1 = RasterGlyph(QPoint(10, 20), QPoint(0, -2), 3, 2, bytes([0b10000000, 0b01100000]))
    left, top, cov = px.glyph_mask(GlyphString(E.STRING_FLAGS_RASTER_A1, (a1,)))
    assert (left, top) == (10, 18)
    assert cov.tolist() == [[0, 255, 255], [255, 0, 0]]  # first stored row is the bottom
    a4 = RasterGlyph(QPoint(0, 0), QPoint(0, 0), 3, 1, bytes([0xF1, 0x80]))
    _, _, cov = px.glyph_mask(GlyphString(E.STRING_FLAGS_RASTER_A4, (a4,)))
    assert cov.tolist() == [[0xF0, 0x10, 0x80]]
    with pytest.raises(RenderError):
        px.glyph_mask(GlyphString(0, (a4,)))
    with pytest.raises(RenderError):
        px.glyph_mask(GlyphString(E.STRING_FLAGS_RASTER_A8, (a4,)))  # data too short


def test_mask_bits():
    m = bitmap(np.array([[0b01000000]], np.uint8), E.BITMAP_FMT_1BIT_BE, width=3)
    assert px.decode_mask(m, False).tolist() == [[False, True, False]]
    assert px.decode_mask(m, True).tolist() == [[True, False, True]]
    with pytest.raises(RenderError):
        px.decode_mask(bitmap(np.zeros((1, 4), np.uint8)), False)
