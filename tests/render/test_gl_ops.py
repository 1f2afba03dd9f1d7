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
    Opaque,
    Palette,
    PathSeg,
    PatternBrush,
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


def test_cached_id_sent_again_with_another_size(renderer):
    """The newer image is drawn and replaces the cached one; the cache's byte count follows."""
    renderer.create_primary(64, 32, 256, E.SURFACE_FMT_32_xRGB, None)
    for i in range(6):
        s = 16 + (i & 1)  # two slot classes in turn under one id
        img = bitmap(np.full((s, s, 4), 10 + i, np.uint8), image_id=5, cache=True)
        renderer.execute(draw(Copy(img, rect(0, 0, s, s), PUT, 0, NO_MASK), (0, 0, s, s)))
        assert renderer.read_pixels(0)[s - 1, s - 1, 0] == 10 + i
        assert len(renderer.cache) == 1
        assert renderer.cache.bytes == (16 if s == 16 else 32) ** 2 * 4


def test_cache_hits_copy_the_right_part_of_the_image(renderer):
    """Copies of parts of a cached image, batched with fills, equal the reference."""
    renderer.create_primary(64, 64, 256, E.SURFACE_FMT_32_xRGB, None)
    ref = ReferenceCanvas()
    ref.create(0, 64, 64, E.SURFACE_FMT_32_xRGB)
    rng = np.random.default_rng(6)
    pix = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    for i in range(30):
        w, h = (int(v) for v in rng.integers(1, 13, 2))
        ax, ay = int(rng.integers(0, 24 - w + 1)), int(rng.integers(0, 20 - h + 1))
        x, y = (int(v) for v in rng.integers(0, 64 - 13, 2))
        img = bitmap(pix, image_id=9, cache=True)
        cmds = [draw(Copy(img, rect(ax, ay, ax + w, ay + h), PUT, 0, NO_MASK),
                     (x, y, x + w, y + h)), _fill(i * 0x30507, (x, y, x + 3, y + 3))]
        for c in cmds:
            renderer.execute(c)
            ref.execute(c)
    assert len(renderer.cache) == 1
    assert np.array_equal(renderer.read_pixels(0), ref.pixels(0))


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


def test_batching_makes_few_draw_calls(dest_renderer):
    renderer = dest_renderer
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
    for i in range(1, 64):  # disjoint ROP3s: one draw, after one destination copy
        x, y = (i % 8) * 32, (i // 8) * 32
        img = bitmap(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))
        renderer.execute(draw(Rop3(img, rect(0, 0, 8, 8), SolidBrush(i), i, 0, NO_MASK),
                              (x, y, x + 8, y + 8)))
    renderer.flush()
    assert renderer.draw_calls - start == (1 if renderer.fetch else 2)


def test_overlapping_rop3s_see_each_other(dest_renderer):
    """Each XOR over the same place must read what the one before wrote: with framebuffer
    fetch all of them share one draw, with copies each starts another."""
    renderer = dest_renderer
    renderer.create_primary(64, 64, 256, E.SURFACE_FMT_32_xRGB, None)
    ref = ReferenceCanvas()
    ref.create(0, 64, 64, E.SURFACE_FMT_32_xRGB)
    renderer.flush()
    start = renderer.draw_calls
    rng = np.random.default_rng(4)
    for i in range(40):
        x, y = (int(v) for v in rng.integers(0, 24, 2))
        img = bitmap(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8))
        cmd = draw(Rop3(img, rect(0, 0, 16, 16), SolidBrush(i * 0x10101), 0x96, 0, NO_MASK),
                   (x, y, x + 16, y + 16))
        renderer.execute(cmd)
        ref.execute(cmd)
    renderer.flush()
    assert (renderer.draw_calls - start == 1) == renderer.fetch
    assert np.array_equal(renderer.read_pixels(0), ref.pixels(0))


def test_all_256_rop3_codes_exact(dest_renderer):
    renderer = dest_renderer
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


def test_copy_bits_reach_the_frames_as_move_hints(renderer):
    """A guest COPY_BITS on the primary is a hint in the next frame (and later ones,
    with the serial of the first frame that shows it): its rect holds what the frame
    before held (dx, dy) away. Copies on other surfaces are not hints."""
    renderer.create_primary(64, 48, 256, E.SURFACE_FMT_32_xRGB, None)
    pix = np.random.default_rng(6).integers(0, 256, (48, 64, 4), dtype=np.uint8)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 64, 48), PUT, 0, NO_MASK),
                          (0, 0, 64, 48)))
    first = renderer.snapshot()
    assert first is not None and first.moves == ()
    renderer.execute(draw(CopyBits(QPoint(4, 6)), (10, 8, 40, 30)))
    second = renderer.snapshot()
    assert second is not None
    (move,) = second.moves
    assert (move.serial, move.rect, move.dx, move.dy) == (second.serial, (10, 8, 40, 30), -6, -2)
    left, top, right, bottom = move.rect
    assert (second.pixels[top:bottom, left:right] == first.pixels[
        top + move.dy:bottom + move.dy, left + move.dx:right + move.dx]).all()
    renderer.surface_created(1, 16, 16, 64, E.SURFACE_FMT_32_xRGB, None)
    renderer.execute(draw(CopyBits(QPoint(0, 0)), (2, 2, 10, 10), surface_id=1))
    renderer.execute(_fill(0xFF0000, (0, 0, 2, 2)))
    third = renderer.snapshot()
    assert third is not None and third.moves == second.moves


def test_scaled_copy_nearest(renderer):
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
    pix = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 2, 2), PUT, E.SCALE_MODE_NEAREST,
                               NO_MASK), (0, 0, 4, 4)))
    out = renderer.read_pixels(0, (0, 0, 4, 4))
    want = pix.repeat(2, axis=0).repeat(2, axis=1)
    want[..., 3] = 255  # a 32BIT bitmap scales as an x8r8g8b8 image (see test_scaling)
    assert (out == want).all()


def test_pattern_from_the_target_reads_all_of_it(renderer):
    """OPAQUE with the target as both source and pattern brush: the pattern tiles from
    anywhere in the surface, not only from the source area (found by the property test: the
    pattern read a copy holding the source area alone)."""
    renderer.create_primary(16, 16, 64, E.SURFACE_FMT_32_ARGB, None)
    ref = ReferenceCanvas()
    ref.create(0, 16, 16, E.SURFACE_FMT_32_ARGB)
    pix = np.random.default_rng(8).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    itself = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), 0)
    cmds = [draw(Copy(bitmap(pix), rect(0, 0, 16, 16), PUT, 0, NO_MASK), (0, 0, 16, 16)),
            draw(Opaque(itself, rect(0, 0, 2, 2), PatternBrush(itself, QPoint(0, 0)),
                        E.ROPD_OP_OR, 0, NO_MASK), (5, 9, 7, 11))]
    for c in cmds:
        renderer.execute(c)
        ref.execute(c)
    assert np.array_equal(renderer.read_pixels(0), ref.pixels(0))


def test_stroke_lines_and_dashes(renderer):
    renderer.create_primary(32, 16, 128, E.SURFACE_FMT_32_xRGB, None)
    seg = PathSeg(E.PATH_BEGIN | E.PATH_END, ((2 << 4, 5 << 4), (10 << 4, 5 << 4)))
    renderer.execute(draw(Stroke((seg,), LineAttr(0, ()), SolidBrush(0xFFFFFF), PUT, PUT),
                          (0, 0, 32, 16)))
    row = renderer.read_pixels(0)[5, :, 0]
    # X's thin lines leave out the last point (CapNotLast)
    assert row[2:10].tolist() == [255] * 8 and row[:2].sum() == 0 and row[10:].sum() == 0
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
    assert renderer.read_area(3, rect(0, 0, w, h)) == []  # guest memory holds it already
    itself = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, w, h), 3)

    def redraw(box):  # the surface copied onto itself: unchanged pixels, but drawn
        renderer.execute(draw(Copy(itself, rect(*box), PUT, 0, NO_MASK), box, None, 3))

    redraw((0, 0, w, h))
    [(area, got)] = renderer.read_area(3, rect(0, 0, w, h))
    assert area == rect(0, 0, w, h) and got.shape == want.shape and (got == want).all()
    assert renderer.read_area(3, rect(0, 0, w, h)) == []
    redraw((8, 1, 16, 4))
    [(area, sub)] = renderer.read_area(3, rect(0, 0, w, h))
    assert area == rect(8, 1, 16, 4)
    assert (sub == px.to_memory(px.from_memory(mem, fmt, w, h)[1:4, 8:16], fmt)).all()


def test_read_area_gives_what_guest_memory_lacks(renderer):
    """A surface made without data is all unsynced; afterwards only what was drawn since,
    inside the area asked for, and what lies outside it stays for a later UPDATE_AREA."""
    renderer.surface_created(3, 32, 16, 128, E.SURFACE_FMT_32_xRGB, None)
    [(area, pixels)] = renderer.read_area(3, rect(0, 0, 32, 16))
    assert area == rect(0, 0, 32, 16) and not pixels.any()
    renderer.execute(_fill(0x0000FF, (2, 2, 10, 6), 3))
    renderer.execute(_fill(0x00FF00, (20, 8, 30, 14), 3))
    [(area, pixels)] = renderer.read_area(3, rect(0, 0, 16, 16))
    assert area == rect(2, 2, 10, 6)
    assert (pixels.reshape(4, 8, 4)[..., :3] == [255, 0, 0]).all()
    [(area, _)] = renderer.read_area(3, rect(24, 0, 32, 16))  # part of the second fill
    assert area == rect(24, 8, 30, 14)
    [(area, _)] = renderer.read_area(3, rect(0, 0, 32, 16))  # the rest of it
    assert area == rect(20, 8, 24, 14)
    assert renderer.read_area(3, rect(0, 0, 32, 16)) == []


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


def test_unknown_rop_descriptor_bits_are_ignored_as_the_canvas_does(renderer):
    # spice-common's ropd_descriptor_to_rop tests the known bits only, and a descriptor with
    # no operation bit is COPY: bits above SPICE_ROPD_INVERS_RES change nothing
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_xRGB, None)
    renderer.execute(_fill(0x112233, (0, 0, 8, 8)))
    renderer.execute(_fill(0x445566, (0, 0, 4, 4), rop=1 << 12))
    renderer.execute(_fill(0xFFFFFF, (4, 4, 8, 8), rop=E.ROPD_OP_XOR | 1 << 15))
    got = renderer.read_pixels(0)[..., :3]
    assert (got[0:4, 0:4] == _bgr(0x445566)).all()
    assert (got[4:8, 4:8] == _bgr(0x112233 ^ 0xFFFFFF)).all()
    assert (got[0:4, 4:8] == _bgr(0x112233)).all()


def _bad_ops():
    img = bitmap(np.zeros((4, 4, 4), np.uint8))
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


def test_surface_memory_is_bounded(renderer, monkeypatch):
    from vgpu.render import context

    monkeypatch.setattr(context, "MAX_SURFACE_PIXELS", 100 * 100)
    renderer.surface_created(1, 100, 50, 400, E.SURFACE_FMT_32_xRGB, None)
    renderer.surface_created(2, 100, 50, 400, E.SURFACE_FMT_32_xRGB, None)
    with pytest.raises(RenderError):
        renderer.surface_created(3, 1, 1, 4, E.SURFACE_FMT_32_xRGB, None)
    renderer.surface_destroyed(2)
    renderer.surface_created(3, 100, 50, 400, E.SURFACE_FMT_32_xRGB, None)


def _premultiplied(rng, shape) -> np.ndarray:
    a = rng.integers(0, 256, (*shape[:-1], 1))
    c = (rng.integers(0, 256, (*shape[:-1], 3)) * a) // 255
    return np.concatenate([c, a], axis=-1).astype(np.uint8)


def test_composite_scale_transform_nearest(renderer):
    renderer.create_primary(8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
    src = np.arange(16, dtype=np.uint8).reshape(2, 2, 4) | 0xC0
    half = 1 << 15  # 0.5 in 16.16: destination (x, y) samples source (x / 2, y / 2)
    transform = (half, 0, 0, 0, half, 0)
    flags = 1 | 3 << 8 | E.COMPOSITE_HAS_SRC_TRANSFORM  # SRC, nearest, no repeat
    renderer.execute(draw(Composite(flags, bitmap(src, E.BITMAP_FMT_RGBA), None, transform,
                                    None, QPoint(0, 0), QPoint(0, 0)), (0, 0, 4, 4)))
    out = renderer.read_pixels(0, (0, 0, 4, 4))
    assert (out == src.repeat(2, axis=0).repeat(2, axis=1)).all()


# pixman_op_t -> cairo_operator_t (cairo hands them to pixman as they are)
_CAIRO_OPS = {0: "CLEAR", 1: "SOURCE", 2: "DEST", 3: "OVER", 4: "DEST_OVER", 5: "IN",
              6: "DEST_IN", 7: "OUT", 8: "DEST_OUT", 9: "ATOP", 10: "DEST_ATOP", 11: "XOR",
              12: "ADD", 13: "SATURATE"}


@pytest.mark.parametrize("op", range(14))
@pytest.mark.parametrize("with_mask", [False, True])
def test_composite_matches_real_pixman(renderer, op, with_mask):
    """The same composite done by pixman itself (through pycairo, whose image surfaces are
    pixman images with the same B, G, R, A memory order)."""
    cairo = pytest.importorskip("cairo", exc_type=ImportError)  # also: libcairo missing
    if with_mask and op in (0, 1):
        pytest.skip("cairo gives CLEAR and SOURCE under a mask its own meaning (a lerp)")
    rng = np.random.default_rng(100 + op)
    renderer.create_primary(16, 8, 64, E.SURFACE_FMT_32_ARGB, None)
    dst = _premultiplied(rng, (8, 16, 4))
    renderer.execute(draw(Copy(bitmap(dst), rect(0, 0, 16, 8), PUT, 0, NO_MASK), (0, 0, 16, 8)))
    src = _premultiplied(rng, (3, 5, 4))
    mask = rng.integers(0, 256, (8, 16), dtype=np.uint8)
    flags = op | 3 << 8 | 1 << 14
    if with_mask:
        flags |= 3 << 11 | E.COMPOSITE_HAS_MASK
    m_img = bitmap(mask, E.BITMAP_FMT_8BIT_A) if with_mask else None
    renderer.execute(draw(Composite(flags, bitmap(src, E.BITMAP_FMT_RGBA), m_img, None, None,
                                    QPoint(1, 2), QPoint(0, 0)), (2, 1, 14, 7)))

    want = dst.copy()
    out = cairo.ImageSurface.create_for_data(memoryview(want), cairo.FORMAT_ARGB32, 16, 8, 64)
    src_mem = src.copy()
    s_surf = cairo.ImageSurface.create_for_data(memoryview(src_mem), cairo.FORMAT_ARGB32, 5, 3,
                                                20)
    ctx = cairo.Context(out)
    ctx.rectangle(2, 1, 12, 6)
    ctx.clip()
    ctx.set_operator(getattr(cairo, "OPERATOR_" + _CAIRO_OPS[op]))
    pattern = cairo.SurfacePattern(s_surf)
    pattern.set_extend(cairo.EXTEND_REPEAT)
    pattern.set_filter(cairo.FILTER_NEAREST)
    pattern.set_matrix(cairo.Matrix(x0=1 - 2, y0=2 - 1))  # src_origin (1, 2) at bbox (2, 1)
    ctx.set_source(pattern)
    if with_mask:
        stride = cairo.ImageSurface.format_stride_for_width(cairo.FORMAT_A8, 16)
        m_mem = np.zeros((8, stride), np.uint8)
        m_mem[:6, :12] = mask[:6, :12]
        m_surf = cairo.ImageSurface.create_for_data(memoryview(m_mem), cairo.FORMAT_A8, 16, 8,
                                                    stride)
        ctx.mask_surface(m_surf, 2, 1)  # mask origin (0, 0) at the bbox
    else:
        ctx.paint()
    out.flush()
    got = renderer.read_pixels(0)
    bad = np.argwhere((got != want).any(axis=2))
    assert len(bad) == 0, [(tuple(i), got[tuple(i)], want[tuple(i)]) for i in bad[:4]]


def test_composite_reading_its_own_target(renderer):
    renderer.create_primary(8, 4, 32, E.SURFACE_FMT_32_ARGB, None)
    pix = np.random.default_rng(9).integers(0, 256, (4, 8, 4), dtype=np.uint8)
    renderer.execute(draw(Copy(bitmap(pix), rect(0, 0, 8, 4), PUT, 0, NO_MASK), (0, 0, 8, 4)))
    self_image = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), 0)
    flags = 1 | 3 << 8  # SRC, nearest: the bbox gets the surface's pixels from (0, 0)
    renderer.execute(draw(Composite(flags, self_image, None, None, None, QPoint(0, 0),
                                    QPoint(0, 0)), (3, 0, 8, 4)))
    want = pix.copy()
    want[:, 3:8] = pix[:, 0:5]
    assert (renderer.read_pixels(0) == want).all()


def test_overlap_cells_claim_conservatively():
    from vgpu.render.batch import claim_cells

    cells: dict[int, int] = {}
    # one operation's disjoint rects may share a cell; they never conflict with each other
    assert claim_cells(cells, [(0, 0, 4, 4), (4, 0, 8, 4)])
    assert not claim_cells(cells, [(6, 6, 7, 7)])  # same 8x8 cell: refused, nothing marked
    assert claim_cells(cells, [(8, 0, 16, 8), (100, 100, 300, 300)])
    assert not claim_cells(cells, [(200, 50, 201, 101)])  # reaches into the big rect's cells
    assert claim_cells(cells, [(16, 8, 17, 9)])  # the next cell diagonally is free


def test_freeing_surfaces_leaves_no_gl_error(renderer):
    """moderngl binds its last framebuffer again after making a new one: a surface whose
    framebuffer was bound must not leave a freed name there for the next surface."""
    ctx = renderer.ctx
    _ = ctx.error  # reading clears it
    for _ in range(2):
        renderer.create_primary(16, 16, 64, E.SURFACE_FMT_32_xRGB, None)
        renderer.surface_created(3, 8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
        renderer.execute(_fill(0x123456, (0, 0, 8, 8), 3))
        renderer.execute(_fill(0x654321, (4, 4, 12, 12)))
        renderer.read_pixels(0)
        renderer.surface_destroyed(3)
        renderer.surface_created(4, 8, 8, 32, E.SURFACE_FMT_32_ARGB, None)
        renderer.reset()
    renderer.create_primary(16, 16, 64, E.SURFACE_FMT_32_xRGB, None)
    assert ctx.error == "GL_NO_ERROR"
