"""The GL renderer's operations, cache, batching, errors, readback and frames."""

from __future__ import annotations

import numpy as np
import pytest
from render_helpers import NO_MASK, bitmap, draw, rect

from vgpu.device.commands import (
    AlphaBlend,
    Composite,
    CompressedImage,
    Copy,
    CopyBits,
    Fill,
    ImageDescriptor,
    LineAttr,
    Palette,
    PathSeg,
    QPoint,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceImage,
)
from vgpu.render import RenderError
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render.reference import ReferenceCanvas

pytestmark = pytest.mark.gl

PUT = E.ROPD_OP_PUT


def _fill(color: int, box, sid: int = 0, rop: int = PUT):
    return draw(Fill(SolidBrush(color), rop, NO_MASK), box, None, sid)


def _bgr(color: int) -> list[int]:
    return [color & 0xFF, (color >> 8) & 0xFF, (color >> 16) & 0xFF]


def test_blinking_cursor_same_id_two_palettes_two_colours(renderer):
    """Windows draws its text cursor by sending one cached 1-bpp bitmap id with a black and a
    white palette in turn; a cache keyed on the id alone would show one colour twice."""
    renderer.create_primary(32, 8, 128, E.SURFACE_FMT_32_xRGB, None)
    bits = np.full((4, 1), 0xFF, np.uint8)  # 4x4, every pixel index 1
    for i, (unique, fore) in enumerate([(11, 0x000000), (12, 0xFFFFFF), (11, 0x000000)]):
        pal = Palette(unique, (0x123456, fore))
        img = bitmap(bits, E.BITMAP_FMT_1BIT_BE, image_id=77, cache=True, palette=pal, width=4)
        renderer.execute(draw(Copy(img, rect(0, 0, 4, 4), PUT, 0, NO_MASK),
                              (i * 8, 0, i * 8 + 4, 4)))
    out = renderer.read_pixels(0)
    assert out[0, 0, :3].tolist() == [0, 0, 0]
    assert out[0, 8, :3].tolist() == [255, 255, 255]
    assert out[0, 16, :3].tolist() == [0, 0, 0]
    assert len(renderer.cache) == 2
    # a palette without a unique id is told apart by its entries
    for i, fore in enumerate([0x0000FF, 0x00FF00]):
        img = bitmap(bits, E.BITMAP_FMT_1BIT_BE, image_id=78, cache=True,
                     palette=Palette(0, (0, fore)), width=4)
        renderer.execute(draw(Copy(img, rect(0, 0, 4, 4), PUT, 0, NO_MASK),
                              (i * 8, 4, i * 8 + 4, 8)))
    out = renderer.read_pixels(0)
    assert out[4, 0, :3].tolist() == _bgr(0x0000FF) and out[4, 8, :3].tolist() == _bgr(0x00FF00)


def test_cache_is_bounded_and_dropped_on_reset(gl_ctx):
    from vgpu.render import Renderer

    r = Renderer(gl_ctx, cache_bytes=3 * 16 * 16 * 4)
    try:
        r.create_primary(64, 64, 256, E.SURFACE_FMT_32_xRGB, None)
        for i in range(10):
            img = bitmap(np.full((16, 16, 4), i, np.uint8), image_id=i, cache=True)
            r.execute(draw(Copy(img, rect(0, 0, 16, 16), PUT, 0, NO_MASK), (0, 0, 16, 16)))
            assert r.cache.bytes <= r.cache.max_bytes
        assert len(r.cache) == 3
        assert r.read_pixels(0)[0, 0, 0] == 9
        r.reset()
        assert len(r.cache) == 0 and r.surface_ids() == []
    finally:
        r.close()


def test_batching_makes_few_draw_calls(renderer):
    renderer.create_primary(256, 256, 1024, E.SURFACE_FMT_32_xRGB, None)
    renderer.flush()
    start = renderer.draw_calls
    rng = np.random.default_rng(1)
    for i in range(500):
        x, y = (int(v) for v in rng.integers(0, 240, 2))
        renderer.execute(_fill(i * 7919, (x, y, x + 10, y + 10)))
        img = bitmap(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))
        renderer.execute(draw(Copy(img, rect(0, 0, 8, 8), PUT, 0, NO_MASK),
                              (y, x, y + 8, x + 8)))
    renderer.flush()
    assert renderer.draw_calls - start == 1  # fills and atlas copies share one draw
    start = renderer.draw_calls
    for i in range(1, 64):  # disjoint ROP3s: one destination copy and one draw
        x, y = (i % 8) * 32, (i // 8) * 32
        img = bitmap(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))
        renderer.execute(draw(Rop3(img, rect(0, 0, 8, 8), SolidBrush(i), i, 0, NO_MASK),
                              (x, y, x + 8, y + 8)))
    renderer.flush()
    assert renderer.draw_calls - start == 2


def test_all_256_rop3_codes_exact(renderer):
    renderer.create_primary(64, 64, 256, E.SURFACE_FMT_32_ARGB, None)
    ref = ReferenceCanvas()
    ref.create(0, 64, 64, E.SURFACE_FMT_32_ARGB)
    rng = np.random.default_rng(3)
    seed = draw(Copy(bitmap(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)),
                     rect(0, 0, 64, 64), PUT, 0, NO_MASK), (0, 0, 64, 64))
    cmds = [seed]
    for code in range(256):
        x, y = (code % 16) * 4, (code // 16) * 4
        img = bitmap(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8))
        brush = SolidBrush(int(rng.integers(0, 1 << 32)))
        cmds.append(draw(Rop3(img, rect(0, 0, 4, 4), brush, code, 0, NO_MASK),
                         (x, y, x + 4, y + 4)))
    for c in cmds:
        renderer.execute(c)
        ref.execute(c)
    assert (renderer.read_pixels(0) == ref.pixels(0)).all()


@pytest.mark.parametrize("dx,dy", [(0, 5), (0, -5), (7, 0), (-5, 3), (3, -2)])
def test_copy_bits_overlapping_scroll(renderer, dx, dy):
    renderer.create_primary(40, 30, 160, E.SURFACE_FMT_32_ARGB, None)
    pix = np.random.default_rng(5).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 40, 30), PUT, 0, NO_MASK),
                          (0, 0, 40, 30)))
    box = (5 + dx, 5 + dy, 30 + dx, 25 + dy)
    renderer.execute(draw(CopyBits(QPoint(5, 5)), box))
    want = pix.copy()
    want[box[1] : box[3], box[0] : box[2]] = pix[5:25, 5:30]
    assert (renderer.read_pixels(0) == want).all()
    assert renderer.last_damage == (box,)


def test_scaled_copy_nearest(renderer):
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
    pix = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 2, 2), PUT, E.SCALE_MODE_NEAREST,
                               NO_MASK), (0, 0, 4, 4)))
    out = renderer.read_pixels(0, (0, 0, 4, 4))
    assert (out == pix.repeat(2, axis=0).repeat(2, axis=1)).all()


def test_stroke_lines_and_dashes(renderer):
    renderer.create_primary(32, 16, 128, E.SURFACE_FMT_32_xRGB, None)
    seg = PathSeg(E.PATH_BEGIN | E.PATH_END, ((2 << 4, 5 << 4), (10 << 4, 5 << 4)))
    renderer.execute(draw(Stroke((seg,), LineAttr(0, ()), SolidBrush(0xFFFFFF), PUT, PUT),
                          (0, 0, 32, 16)))
    row = renderer.read_pixels(0)[5, :, 0]
    assert row[2:11].tolist() == [255] * 9 and row[:2].sum() == 0 and row[11:].sum() == 0
    dashed = LineAttr(E.LINE_FLAGS_STYLED, (2 << 4, 1 << 4))
    seg = PathSeg(E.PATH_BEGIN | E.PATH_END, ((0, 9 << 4), (8 << 4, 9 << 4)))
    renderer.execute(draw(Stroke((seg,), dashed, SolidBrush(0xFFFFFF), PUT, PUT),
                          (0, 0, 32, 16), [(0, 0, 7, 16)]))
    assert renderer.read_pixels(0)[9, :9, 0].tolist() == [255, 255, 0, 255, 255, 0, 255, 0, 0]


def test_alpha_blend_and_composite_over(renderer):
    renderer.create_primary(8, 4, 32, E.SURFACE_FMT_32_ARGB, None)
    renderer.execute(_fill(0xFF204060, (0, 0, 8, 4)))
    src = np.zeros((4, 4, 4), np.uint8)
    src[...] = (10, 20, 100, 128)  # premultiplied B, G, R, A
    img = bitmap(src, E.BITMAP_FMT_RGBA)
    renderer.execute(draw(AlphaBlend(E.ALPHA_FLAGS_DEST_HAS_ALPHA, 255, img,
                                     rect(0, 0, 4, 4)), (0, 0, 4, 4)))
    over = 0x1000000 | 3  # SPICE_COMPOSITE: OVER, no mask, no transform
    renderer.execute(draw(Composite(3, img, None, None, None, QPoint(0, 0), QPoint(0, 0)),
                          (4, 0, 8, 4)))
    del over

    def mul(x, a):
        t = x * a + 0x80
        return ((t >> 8) + t) >> 8

    d = np.array([0x60, 0x40, 0x20, 0xFF])
    want = np.minimum(src[0, 0] + mul(d, 255 - 128), 255)
    out = renderer.read_pixels(0)
    assert out[0, 0].tolist() == want.tolist()
    assert out[0, 4].tolist() == want.tolist()


@pytest.mark.parametrize("fmt", sorted(px.SURFACE_BPP))
def test_read_area_and_initial_data_in_memory_layout(renderer, fmt):
    w, h = 21, 5
    row = (w * px.SURFACE_BPP[fmt] + 7) // 8
    mem = np.random.default_rng(fmt).integers(0, 256, (h, row + 3), dtype=np.uint8)
    want = px.to_memory(px.from_memory(mem, fmt, w, h), fmt)
    renderer.surface_created(3, w, h, row + 3, fmt, mem)
    got = renderer.read_area(3, rect(0, 0, w, h))
    assert got.shape == want.shape and (got == want).all()
    sub = renderer.read_area(3, rect(8, 1, 16, 4))
    assert (sub == px.to_memory(px.from_memory(mem, fmt, w, h)[1:4, 8:16], fmt)).all()


def test_snapshot_damage_and_immutability(renderer):
    assert renderer.snapshot() is None
    renderer.create_primary(16, 16, 64, E.SURFACE_FMT_32_xRGB, None)
    first = renderer.snapshot()
    assert first is not None and first.damage == ((0, 0, 16, 16),)
    assert renderer.snapshot() is None
    renderer.execute(_fill(0x0000FF, (2, 3, 5, 7)))
    renderer.execute(_fill(0x00FF00, (8, 8, 9, 9), sid=0))
    frame = renderer.snapshot()
    assert frame.serial == first.serial + 1 and frame.surface_serial == first.surface_serial
    assert set(frame.damage) == {(2, 3, 5, 7), (8, 8, 9, 9)}
    assert frame.pixels[3, 2, :3].tolist() == [255, 0, 0]
    assert not frame.pixels.flags.writeable
    assert first.pixels[3, 2, :3].tolist() == [0, 0, 0]  # earlier frames never change
    renderer.destroy_primary()
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    again = renderer.snapshot()
    assert again.surface_serial != frame.surface_serial and again.width == 8


def _bad_ops():
    img = bitmap(np.zeros((4, 4, 4), np.uint8))
    yield "unknown rop descriptor", _fill(0, (0, 0, 4, 4), rop=1 << 12)
    yield "rop3 out of range", draw(Rop3(img, rect(0, 0, 4, 4), None, 256, 0, NO_MASK),
                                    (0, 0, 4, 4))
    yield "inverted bbox", _fill(0, (4, 0, 0, 4))
    yield "empty bbox", _fill(0, (0, 0, 0, 4))
    yield "missing target", _fill(0, (0, 0, 4, 4), sid=9)
    missing = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), 42)
    yield "missing source", draw(Copy(missing, rect(0, 0, 4, 4), PUT, 0, NO_MASK),
                                 (0, 0, 4, 4))
    zero = bitmap(np.zeros((0, 16), np.uint8), width=4)
    yield "zero-size bitmap", draw(Copy(zero, rect(0, 0, 4, 4), PUT, 0, NO_MASK), (0, 0, 4, 4))
    short = bitmap(np.zeros((4, 16), np.uint8))
    short = type(short)(short.descriptor, short.format, short.flags, 4, 4, 16, None,
                        short.data[:-1])
    yield "short data", draw(Copy(short, rect(0, 0, 4, 4), PUT, 0, NO_MASK), (0, 0, 4, 4))
    yield "src_area outside", draw(Copy(img, rect(2, 2, 6, 6), PUT, 0, NO_MASK), (0, 0, 4, 4))
    yield "compressed", draw(Copy(CompressedImage(ImageDescriptor(0, 1, 0, 4, 4), b"x"),
                                  rect(0, 0, 4, 4), PUT, 0, NO_MASK), (0, 0, 4, 4))
    yield "alpha out of range", draw(AlphaBlend(0, 256, img, rect(0, 0, 4, 4)), (0, 0, 4, 4))


@pytest.mark.parametrize(("why", "cmd"), list(_bad_ops()), ids=[w for w, _ in _bad_ops()])
def test_bad_operations_raise_render_error_and_change_nothing(renderer, why, cmd):
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    renderer.execute(_fill(0x112233, (0, 0, 8, 8)))
    before = renderer.read_pixels(0).copy()
    renderer.execute(_fill(0x445566, (6, 6, 8, 8)))  # queued, not yet drawn
    with pytest.raises(RenderError):
        renderer.execute(cmd)
    before[6:8, 6:8, :3] = _bgr(0x445566)
    assert (renderer.read_pixels(0)[..., :3] == before[..., :3]).all()


def test_bad_surfaces_refused(renderer):
    with pytest.raises(RenderError):
        renderer.create_primary(8, 8, 32, 33, None)
    with pytest.raises(RenderError):
        renderer.create_primary(0, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    with pytest.raises(RenderError):
        renderer.create_primary(8, 8, 16, E.SURFACE_FMT_32_xRGB, None)  # stride too small
    renderer.surface_created(4, 8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    with pytest.raises(RenderError):
        renderer.surface_created(4, 8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    with pytest.raises(RenderError):
        renderer.surface_destroyed(5)
    with pytest.raises(RenderError):
        renderer.read_area(4, rect(0, 0, 9, 8))
    with pytest.raises(RenderError):
        renderer.surface_created(6, 8, 8, 32, E.SURFACE_FMT_32_xRGB,
                                 np.zeros((2, 32), np.uint8))  # initial data too short
