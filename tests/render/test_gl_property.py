"""GL path against the numpy reference on random operation sequences (exact, every channel)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixman_ctypes import A8, REPEAT_NORMAL, pixman
from render_helpers import NO_MASK, bitmap, draw, mask_bitmap, rect

from vgpu.device.commands import (
    AlphaBlend,
    Blackness,
    Blend,
    Copy,
    CopyBits,
    Fill,
    GlyphString,
    ImageDescriptor,
    Invers,
    Opaque,
    Palette,
    PatternBrush,
    QMask,
    QPoint,
    RasterGlyph,
    Rop3,
    SolidBrush,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render.reference import ReferenceCanvas

pytestmark = pytest.mark.gl

W, H = 40, 32
OTHER = 5  # an off-screen surface used as a source
SMALL = 9  # an off-screen surface of another size, only drawn to

u32 = st.integers(0, 0xFFFFFFFF)
PIXMAN_OP_OVER = 3  # pixman_op_t


def _noise(draw_, n: int) -> np.ndarray:
    """n random bytes from a drawn seed: big images stay small for hypothesis."""
    seed = draw_(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
coords = st.tuples(st.integers(-4, W), st.integers(-4, H), st.integers(1, 24), st.integers(1, 20))


@st.composite
def boxes(draw_):
    x, y, w, h = draw_(coords)
    return (x, y, x + w, y + h)


@st.composite
def images(draw_, w: int, h: int):
    fmt = draw_(st.sampled_from([E.BITMAP_FMT_32BIT, E.BITMAP_FMT_RGBA, E.BITMAP_FMT_24BIT,
                                 E.BITMAP_FMT_16BIT, E.BITMAP_FMT_8BIT, E.BITMAP_FMT_4BIT_BE,
                                 E.BITMAP_FMT_1BIT_BE, "surface"]))
    if fmt == "surface":
        return SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0),
                            draw_(st.sampled_from([0, OTHER])))
    bpp = {E.BITMAP_FMT_32BIT: 32, E.BITMAP_FMT_RGBA: 32, E.BITMAP_FMT_24BIT: 24,
           E.BITMAP_FMT_16BIT: 16, E.BITMAP_FMT_8BIT: 8, E.BITMAP_FMT_4BIT_BE: 4,
           E.BITMAP_FMT_1BIT_BE: 1}[fmt]
    row = (w * bpp + 7) // 8
    raw = _noise(draw_, row * h)
    palette = None
    if bpp <= 8:
        palette = Palette(0, tuple(draw_(st.lists(u32, min_size=1, max_size=1 << bpp))))
    return bitmap(np.frombuffer(raw, np.uint8).reshape(h, row), fmt, width=w,
                  palette=palette, top_down=draw_(st.booleans()),
                  cache=draw_(st.booleans()),
                  image_id=hash((raw.tobytes(), palette)) & (1 << 62) - 1)  # one id per content


@st.composite
def brushes(draw_):
    kind = draw_(st.sampled_from(["solid", "solid", "pattern", "none"]))
    if kind == "solid":
        return SolidBrush(draw_(u32))
    if kind == "none":
        return None
    pw, ph = draw_(st.integers(1, 8)), draw_(st.integers(1, 8))
    return PatternBrush(draw_(images(pw, ph)), QPoint(draw_(st.integers(-9, 9)),
                                                      draw_(st.integers(-9, 9))))


@st.composite
def masks(draw_):
    if draw_(st.booleans()):
        return NO_MASK
    mw, mh = draw_(st.integers(1, 30)), draw_(st.integers(1, 30))
    bits = _noise(draw_, mw * mh) & 1
    m = mask_bitmap(bits.reshape(mh, mw), draw_(st.booleans()))
    return QMask(m.flags, QPoint(draw_(st.integers(-3, 3)), draw_(st.integers(-3, 3))),
                 m.bitmap)


ropds = st.integers(0, E.ROPD_MASK)


@st.composite
def image_ops(draw_, box):
    w, h = box[2] - box[0], box[3] - box[1]
    src = draw_(images(w + 3, h + 2))
    sx, sy = draw_(st.integers(0, 3)), draw_(st.integers(0, 2))
    if isinstance(src, SurfaceImage):
        sx, sy = draw_(st.integers(0, W - w)) if w <= W else 0, 0
        if w > W or h > H:
            src = draw_(images(w, h))
            sx = sy = 0
    area = rect(sx, sy, sx + w, sy + h)
    kind = draw_(st.sampled_from(["copy", "blend", "opaque", "rop3", "transparent", "alpha"]))
    if kind == "copy":
        return Copy(src, area, draw_(ropds), 0, draw_(masks()))
    if kind == "blend":
        return Blend(src, area, draw_(ropds), 0, draw_(masks()))
    if kind == "opaque":
        return Opaque(src, area, draw_(brushes()), draw_(ropds), 0, draw_(masks()))
    if kind == "rop3":
        return Rop3(src, area, draw_(brushes()), draw_(st.integers(0, 255)), 0, draw_(masks()))
    if kind == "transparent":
        return Transparent(src, area, 0, draw_(u32))
    return AlphaBlend(draw_(st.integers(0, 3)), draw_(st.integers(0, 255)), src, area)


@st.composite
def texts(draw_):
    flags = draw_(st.sampled_from([E.STRING_FLAGS_RASTER_A1, E.STRING_FLAGS_RASTER_A4,
                                   E.STRING_FLAGS_RASTER_A8]))
    bpp = {1: 1, 2: 4, 4: 8}[flags]
    glyphs = []
    for _ in range(draw_(st.integers(1, 4))):
        gw, gh = draw_(st.integers(1, 9)), draw_(st.integers(1, 9))
        n = (gw * bpp + 7) // 8 * gh
        glyphs.append(RasterGlyph(QPoint(draw_(st.integers(-2, W)), draw_(st.integers(0, H))),
                                  QPoint(draw_(st.integers(-3, 3)), draw_(st.integers(-8, 0))),
                                  gw, gh, _noise(draw_, n).tobytes()))
    back = draw_(st.sampled_from([(0, 0, 0, 0), None]))
    if back is None:
        back = draw_(boxes())
    fore = draw_(st.sampled_from([E.ROPD_OP_PUT, E.ROPD_OP_PUT, E.ROPD_OP_XOR]))
    return Text(GlyphString(flags, tuple(glyphs)), rect(*back), draw_(brushes()),
                draw_(brushes()), fore, E.ROPD_OP_PUT)


@st.composite
def commands(draw_, sid):
    box = draw_(boxes())
    clip = draw_(st.none() | st.lists(boxes(), max_size=3))
    kind = draw_(st.sampled_from(["fill", "fill", "image", "image", "image", "const",
                                  "text", "copybits"]))
    if kind == "fill":
        op = Fill(draw_(brushes()), draw_(ropds), draw_(masks()))
    elif kind == "image":
        op = draw_(image_ops(box))
    elif kind == "const":
        op = draw_(st.sampled_from([Blackness, Whiteness, Invers]))(draw_(masks()))
    elif kind == "text":
        op = draw_(texts())
    else:
        op = CopyBits(QPoint(draw_(st.integers(-5, W)), draw_(st.integers(-5, H))))
    return draw(op, box, clip, sid)


def _run(renderer, fmt, cmds, seed_pixels):
    ref = ReferenceCanvas()
    renderer.create_primary(W, H, W * 4, fmt, None)
    renderer.surface_created(OTHER, W, H, W * 4, E.SURFACE_FMT_32_ARGB, None)
    renderer.surface_created(SMALL, 23, 17, 23 * 4, E.SURFACE_FMT_32_xRGB, None)
    ref.create(0, W, H, fmt)
    ref.create(OTHER, W, H, E.SURFACE_FMT_32_ARGB)
    ref.create(SMALL, 23, 17, E.SURFACE_FMT_32_xRGB)
    seed = bitmap(seed_pixels)
    for sid in (0, OTHER):  # start from arbitrary content, not zeros
        c = draw(Copy(seed, rect(0, 0, W, H), E.ROPD_OP_PUT, 0, NO_MASK), (0, 0, W, H), None,
                 sid)
        renderer.execute(c)
        ref.execute(c)
    for sid in (0, OTHER, SMALL):
        renderer.read_pixels(sid)  # from now on reads come from the host shadow + damage
    for i, c in enumerate(cmds):
        renderer.execute(c)
        ref.execute(c)
        if i % 2:  # also between operations: damage must cover every change
            _same(renderer.read_pixels(c.surface_id), ref.pixels(c.surface_id), c.surface_id)
    for sid in (0, OTHER, SMALL):
        _same(renderer.read_pixels(sid), ref.pixels(sid), sid)


def _same(got: np.ndarray, want: np.ndarray, sid: int) -> None:
    bad = np.argwhere((got != want).any(axis=2))
    assert len(bad) == 0, (sid, bad[:5].tolist(), got[tuple(bad[0])], want[tuple(bad[0])])


@pytest.mark.parametrize("fmt", [E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_32_xRGB,
                                 E.SURFACE_FMT_16_565, E.SURFACE_FMT_16_555,
                                 E.SURFACE_FMT_8_A])
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_sequences_match_reference(dest_renderer, fmt, data):
    renderer = dest_renderer
    seed = _noise(data.draw, W * H * 4).reshape(H, W, 4)
    cmds = data.draw(st.lists(st.one_of(commands(0), commands(OTHER), commands(SMALL)),
                              min_size=1, max_size=12))
    renderer.reset()
    _run(renderer, fmt, cmds, seed)


def test_a8_text_with_its_own_surface_as_pattern_keeps_the_pattern_alpha(dest_renderer):
    """The case hypothesis found: on an A8 surface a masked fill clears pixel (0, 0), then
    1-bit glyphs are drawn there with the surface itself as the pattern. sw_canvas's pattern
    brush is the surface's own a8 image, so pixman composites its alpha (0 after the fill)
    OVER the destination and the pixel stays 0; the reference used to take the pattern as
    opaque (255). The text step is checked against pixman itself too."""
    seed = np.zeros((H, W, 4), np.uint8)
    seed[..., 3] = (np.arange(W * H).reshape(H, W) * 7 + 200) % 256  # (0, 0): 200
    fill_mask = QMask(0, QPoint(0, 0), mask_bitmap(np.ones((1, 1), bool)).bitmap)
    fill = draw(Fill(SolidBrush(0), 0, fill_mask), (0, 0, 1, 1))
    glyphs = (RasterGlyph(QPoint(0, 0), QPoint(0, 0), 1, 1, b"_"),
              RasterGlyph(QPoint(0, 0), QPoint(0, 0), 1, 1, b"_"),
              RasterGlyph(QPoint(0, 0), QPoint(0, 0), 1, 2, b"_\x82"))
    itself = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), 0)
    text = draw(Text(GlyphString(E.STRING_FLAGS_RASTER_A1, glyphs), rect(0, 0, 0, 0),
                     PatternBrush(itself, QPoint(0, 0)), SolidBrush(0), E.ROPD_OP_PUT,
                     E.ROPD_OP_PUT), (0, 0, 1, 1))
    dest_renderer.reset()
    _run(dest_renderer, E.SURFACE_FMT_8_A, [fill, text], seed)
    got = dest_renderer.read_pixels(0)
    assert got[0, 0, 3] == 0

    pm = pixman()
    if pm is None:
        pytest.skip("libpixman-1 is not installed")
    before = seed[..., 3].copy()
    before[0, 0] = 0  # the fill: colour 0 under the mask's one set bit
    left, top, cov = px.glyph_mask(text.op.str)
    assert (left, top) == (0, 0)  # so the pattern, the mask and the surface line up
    # canvas_draw_text: composite32(OVER, pattern (repeat normal), string mask, surface),
    # clipped to the bbox; the a1 string mask is the A8 one's 0/255 coverage
    want = pm.composite(PIXMAN_OP_OVER, before, A8, before.copy(), A8, src_repeat=REPEAT_NORMAL,
                        mask=cov, mask_fmt=A8, dst_box=(0, 0, 1, 1))[:, :W]
    np.testing.assert_array_equal(got[..., 3], want)
    assert not got[..., :3].any()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tiny_staging_buffer_and_cache(gl_ctx, monkeypatch, data):
    """With room for only a few images per draw call and two small cached images, operations
    keep flushing mid-batch, retrying after a full buffer, and evicting cached images whose
    slots get reused; the picture must not change."""
    from vgpu.render import Renderer, batch

    monkeypatch.setattr(batch, "MAX_STAGING_BYTES", 4096)
    seed = _noise(data.draw, W * H * 4).reshape(H, W, 4)
    cmds = data.draw(st.lists(st.one_of(commands(0), commands(OTHER)), min_size=1,
                              max_size=12))
    renderer = Renderer(gl_ctx, cache_bytes=2 * 32 * 32 * 4)
    try:
        _run(renderer, E.SURFACE_FMT_32_ARGB, cmds, seed)
    finally:
        renderer.close()
