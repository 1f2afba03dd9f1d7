"""Hypothesis strategies for every command and worker message a record file can hold."""

from __future__ import annotations

from hypothesis import strategies as st

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Composite,
    CompressedImage,
    Copy,
    CopyBits,
    CursorCmd,
    CursorShapeData,
    Drawable,
    Fill,
    GlyphString,
    ImageDescriptor,
    Invers,
    LineAttr,
    MessageCmd,
    Nop,
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
    SurfaceCmd,
    SurfaceCreate,
    SurfaceImage,
    Text,
    Transparent,
    UpdateCmd,
    Whiteness,
)
from vgpu.device.parser import glyph_bpp
from vgpu.replay.format import PrimarySurface, WorkerMessage

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
u32 = st.integers(0, 0xFFFF_FFFF)
i32 = st.integers(-0x8000_0000, 0x7FFF_FFFF)
u64 = st.integers(0, (1 << 64) - 1)
rects = st.builds(QRect, i32, i32, i32, i32)
points = st.builds(QPoint, i32, i32)


def descriptor(kind: int) -> st.SearchStrategy[ImageDescriptor]:
    return st.builds(ImageDescriptor, u64, st.just(kind), u8, u32, u32)


@st.composite
def bitmaps(draw: st.DrawFn) -> BitmapImage:
    height = draw(st.integers(0, 4))
    stride = draw(st.integers(0, 16))
    palette = draw(st.none() | st.builds(Palette, u64, st.lists(u32, max_size=4).map(tuple)))
    return BitmapImage(draw(descriptor(0)), draw(u8), draw(u8), draw(u32), height, stride,
                       palette, draw(st.binary(min_size=height * stride,
                                               max_size=height * stride)))


images = st.one_of(
    bitmaps(),
    st.builds(SurfaceImage, descriptor(104), u32),
    st.builds(CompressedImage, descriptor(1), st.binary(max_size=40)),
)
brushes = st.one_of(st.none(), st.builds(SolidBrush, u32), st.builds(PatternBrush, images, points))
masks = st.builds(QMask, u8, points, st.none() | images)

@st.composite
def glyph_strings(draw: st.DrawFn) -> GlyphString:
    flags = draw(u16.filter(lambda f: f & 7))
    bpp = glyph_bpp(flags)
    glyphs = []
    for _ in range(draw(st.integers(0, 3))):
        w, h = draw(st.integers(0, 12)), draw(st.integers(0, 4))
        size = (w * bpp + 7) // 8 * h
        glyphs.append(RasterGlyph(draw(points), draw(points), w, h,
                                  draw(st.binary(min_size=size, max_size=size))))
    return GlyphString(flags, tuple(glyphs))


@st.composite
def line_attrs(draw: st.DrawFn) -> LineAttr:
    flags = draw(u8)
    style = tuple(draw(st.lists(i32, max_size=6))) if flags & 8 else ()
    return LineAttr(flags, style)


paths = st.lists(st.builds(PathSeg, u32, st.lists(st.tuples(i32, i32), max_size=4).map(tuple)),
                 max_size=3).map(tuple)
transforms = st.none() | st.tuples(i32, i32, i32, i32, i32, i32)

draw_ops = st.one_of(
    st.just(Nop()),
    st.builds(Fill, brushes, u16, masks),
    st.builds(Opaque, images, rects, brushes, u16, u8, masks),
    st.builds(Copy, images, rects, u16, u8, masks),
    st.builds(Blend, images, rects, u16, u8, masks),
    st.builds(CopyBits, points),
    st.builds(Blackness, masks),
    st.builds(Whiteness, masks),
    st.builds(Invers, masks),
    st.builds(Rop3, images, rects, brushes, u8, u8, masks),
    st.builds(Stroke, paths, line_attrs(), brushes, u16, u16),
    st.builds(Text, glyph_strings(), rects, brushes, brushes, u16, u16),
    st.builds(Transparent, images, rects, u32, u32),
    st.builds(AlphaBlend, u16, u8, images, rects),
    st.builds(Composite, u32, images, st.none() | images, transforms, transforms,
              st.builds(QPoint, i16, i16), st.builds(QPoint, i16, i16)),
)

drawables = st.builds(
    Drawable, release_id=st.just(0), bbox=rects,
    clip=st.none() | st.lists(rects, max_size=3).map(tuple), effect=u8, mm_time=u32,
    self_bitmap=u8, self_bitmap_area=rects, surface_id=u32,
    surfaces_dest=st.tuples(i32, i32, i32), surfaces_rects=st.tuples(rects, rects, rects),
    op=draw_ops)


@st.composite
def surface_cmds(draw: st.DrawFn) -> tuple[SurfaceCmd, bytes | None]:
    surface_id, flags = draw(u32), draw(u32)
    if draw(st.booleans()):
        return SurfaceCmd(0, surface_id, 1, flags, None), None
    height, stride = draw(st.integers(0, 4)), draw(st.integers(-16, 16))
    size = height * abs(stride)
    create = SurfaceCreate(draw(u32), draw(u32), height, stride, 0, size)
    data = draw(st.binary(min_size=size, max_size=size)) if flags & 1 else None
    return SurfaceCmd(0, surface_id, 0, flags, create), data


@st.composite
def cursor_cmds(draw: st.DrawFn) -> CursorCmd:
    kind = draw(st.integers(0, 3))
    pos = QPoint(draw(i16), draw(i16))
    if kind == 0:
        shape = CursorShapeData(draw(u64), draw(u16), draw(u16), draw(u16), draw(u16),
                                draw(u16), draw(st.binary(max_size=32)))
        return CursorCmd(0, 0, pos, draw(st.booleans()), shape, 0, 0)
    if kind == 1:
        return CursorCmd(0, 1, pos, False, None, 0, 0)
    if kind == 2:
        return CursorCmd(0, 2, QPoint(0, 0), False, None, 0, 0)
    return CursorCmd(0, 3, QPoint(0, 0), False, None, draw(u16), draw(u16))


# (command, surface data) pairs
commands = st.one_of(
    drawables.map(lambda d: (d, None)),
    st.builds(UpdateCmd, st.just(0), rects, u32, u32).map(lambda c: (c, None)),
    st.builds(MessageCmd, st.just(0), st.binary(max_size=40).filter(lambda b: b"\0" not in b))
    .map(lambda c: (c, None)),
    surface_cmds(),
    cursor_cmds().map(lambda c: (c, None)),
)


@st.composite
def primaries(draw: st.DrawFn) -> PrimarySurface:
    height, stride = draw(st.integers(0, 4)), draw(st.integers(-16, 16))
    size = height * abs(stride)
    data = draw(st.just(b"") | st.binary(min_size=size, max_size=size))
    return PrimarySurface(draw(u32), height, stride, draw(u32), draw(u32), draw(u32),
                          draw(u32), draw(u32), data)


_PRIMARY = (WorkerMessage.CREATE_PRIMARY_SURFACE, WorkerMessage.CREATE_PRIMARY_SURFACE_ASYNC)


@st.composite
def worker_messages(draw: st.DrawFn) -> tuple[WorkerMessage, PrimarySurface | None]:
    message = draw(st.sampled_from(WorkerMessage))
    return message, (draw(primaries()) if message in _PRIMARY else None)
