"""Hostile commands: arbitrary field values either render or raise RenderError, never
anything else, and the renderer keeps working afterwards."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from render_helpers import NO_MASK, draw, rect

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Composite,
    CompressedImage,
    Copy,
    CopyBits,
    Drawable,
    Fill,
    GlyphString,
    ImageDescriptor,
    Invers,
    LineAttr,
    Opaque,
    Palette,
    PathSeg,
    PatternBrush,
    QMask,
    QPoint,
    QRect,
    RasterGlyph,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.render import RenderError
from vgpu.render import enums as E

pytestmark = pytest.mark.gl

small = st.integers(-3, 40)
wild = st.one_of(st.integers(-(2**31), 2**31), st.integers(-(2**64), 2**64))


def mostly(good, bad):
    """Valid values most of the time, so that operations get deep before something is off."""
    return st.one_of(good, good, good, good, bad)


anyint = mostly(small, wild)
sizes = mostly(st.integers(1, 12), st.one_of(st.integers(-5, 0), st.integers(2**20, 2**40)))


@st.composite
def points(draw_):
    return QPoint(draw_(anyint), draw_(anyint))


@st.composite
def rects(draw_):
    if draw_(st.integers(0, 4)):
        x, y = draw_(st.integers(-3, 30)), draw_(st.integers(-3, 20))
        return QRect(y, x, y + draw_(st.integers(1, 12)), x + draw_(st.integers(1, 12)))
    return QRect(draw_(anyint), draw_(anyint), draw_(anyint), draw_(anyint))


@st.composite
def images(draw_):
    kind = draw_(st.sampled_from(["bitmap", "bitmap", "bitmap", "surface", "compressed"]))
    desc = ImageDescriptor(draw_(anyint), draw_(mostly(st.just(0), st.sampled_from([1, 7]))),
                           draw_(st.integers(0, 3)), draw_(sizes), draw_(sizes))
    if kind == "surface":
        return SurfaceImage(desc, draw_(st.sampled_from([0, 3, 3, 99, -1])))
    if kind == "compressed":
        return CompressedImage(desc, draw_(st.binary(max_size=16)))
    w, h = draw_(sizes), draw_(sizes)
    fmt = draw_(mostly(st.integers(1, 10), st.integers(-1, 12)))
    bpp = {1: 1, 2: 1, 3: 4, 4: 4, 5: 8, 6: 16, 7: 24, 8: 32, 9: 32, 10: 8}.get(fmt, 8)
    good_stride = (max(w, 0) * bpp + 7) // 8 if abs(w) < 4096 else 0
    stride = draw_(mostly(st.sampled_from([good_stride, good_stride + 4]), anyint))
    need = max(0, stride * h) if 0 <= stride * h < 4096 else 64
    data = draw_(mostly(st.binary(min_size=need, max_size=need),
                        st.binary(max_size=max(need - 1, 0))))
    pal = draw_(mostly(st.builds(Palette, anyint, st.lists(anyint, min_size=1, max_size=16)
                                 .map(tuple)), st.none()))
    return BitmapImage(desc, fmt, draw_(st.integers(0, 7)), w, h, stride, pal, data)


brushes = st.one_of(st.none(), st.builds(SolidBrush, anyint),
                    st.builds(PatternBrush, images(), points()))
masks = st.one_of(st.just(NO_MASK), st.builds(QMask, st.integers(0, 3), points(),
                                                st.none() | images()))
ropds = mostly(st.integers(0, 0x7FF), anyint)


@st.composite
def ops(draw_):
    img, area = draw_(images()), draw_(rects())
    return draw_(st.sampled_from([
        Fill(draw_(brushes), draw_(ropds), draw_(masks)),
        Opaque(img, area, draw_(brushes), draw_(ropds), draw_(mostly(st.integers(0, 1), anyint)),
               draw_(masks)),
        Copy(img, area, draw_(ropds), draw_(st.integers(-1, 3)), draw_(masks)),
        Blend(img, area, draw_(ropds), draw_(mostly(st.integers(0, 1), anyint)), draw_(masks)),
        Blackness(draw_(masks)), Whiteness(draw_(masks)), Invers(draw_(masks)),
        Rop3(img, area, draw_(brushes), draw_(mostly(st.integers(0, 255), anyint)),
             draw_(mostly(st.integers(0, 1), anyint)), draw_(masks)),
        Stroke(tuple(PathSeg(draw_(st.integers(0, 31)), tuple(
            (draw_(anyint), draw_(anyint)) for _ in range(draw_(st.integers(0, 4)))))
            for _ in range(draw_(st.integers(0, 3)))),
            LineAttr(draw_(st.integers(0, 15)), tuple(draw_(st.lists(anyint, max_size=3)))),
            draw_(brushes), draw_(ropds), draw_(ropds)),
        Text(GlyphString(draw_(st.integers(0, 15)), tuple(
            RasterGlyph(draw_(points()), draw_(points()), draw_(sizes), draw_(sizes),
                        draw_(st.binary(max_size=40))) for _ in range(draw_(st.integers(0, 3))))),
            draw_(rects()), draw_(brushes), draw_(brushes), draw_(ropds), draw_(ropds)),
        Transparent(img, area, draw_(anyint), draw_(anyint)),
        AlphaBlend(draw_(st.integers(0, 3)), draw_(mostly(st.integers(0, 255), anyint)), img,
                   area),
        Composite(draw_(mostly(st.integers(0, 1 << 25), anyint)), img,
                  draw_(st.none() | images()),
                  draw_(st.none() | st.tuples(*[anyint] * 6)),
                  draw_(st.none() | st.tuples(*[anyint] * 6)), draw_(points()), draw_(points())),
        CopyBits(draw_(points())),
    ]))


@st.composite
def commands(draw_):
    clip = draw_(st.none() | st.lists(rects(), max_size=3).map(tuple))
    return Drawable(bbox=draw_(rects()), clip=clip,
                    surface_id=draw_(st.sampled_from([0, 0, 0, 3, 7])), op=draw_(ops()))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(commands(), min_size=1, max_size=6))
def test_hostile_commands_raise_only_render_error(renderer, cmds):
    renderer.reset()
    renderer.create_primary(32, 24, 128, E.SURFACE_FMT_32_xRGB, None)
    renderer.surface_created(3, 16, 16, 64, E.SURFACE_FMT_32_ARGB, None)
    for c in cmds:
        with contextlib.suppress(RenderError):
            renderer.execute(c)
    renderer.execute(draw(Fill(SolidBrush(0x123456), E.ROPD_OP_PUT, NO_MASK), (0, 0, 4, 4)))
    out = renderer.read_pixels(0, (0, 0, 4, 4))
    assert (out[..., :3] == np.array([0x56, 0x34, 0x12], np.uint8)).all()
    assert renderer.snapshot() is not None
    renderer.read_area(3, rect(0, 0, 16, 16))
