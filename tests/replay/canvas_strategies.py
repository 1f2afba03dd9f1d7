"""Hypothesis strategies for random scenes that spice-server accepts and draws.

A batch is one record file: a primary surface cut into TILE x TILE tiles, each holding
its own short random scene (every command's bbox and clip inside its tile), so one run of
each server compares many scenes. The values are those real guests send and the real
canvas takes: bitmaps of every format spice-server converts (not 1BIT_LE, which aborts
its pixman conversion), palettes, the image cache, masks, brushes, every ROP, clips,
scaling, glyphs, strokes, composites, off-screen surfaces (xRGB and ARGB) drawn to and
copied from and between (declared in surfaces_dest, as drivers do). Used by the tests
and bench/canvas_soak.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from replay_scene import PrimarySurface, WorkerMessage, draw

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Composite,
    Copy,
    CopyBits,
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
    SurfaceCmd,
    SurfaceCreate,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.render import enums as E
from vgpu.render.composite import SUPPORTED_OPS

TILE = 48
COLS, ROWS = 8, 6
WIDTH, HEIGHT = TILE * COLS, TILE * ROWS
KEEP_DATA = 1  # QXL_SURF_FLAG_KEEP_DATA: the memory given is the first picture
# the off-screen surfaces every tile may draw to and copy from, between them too
OFF_SIZE = 64
OFF_SURFACES = {1: E.SURFACE_FMT_32_xRGB, 2: E.SURFACE_FMT_32_ARGB}
u32 = st.integers(0, 0xFFFF_FFFF)
FORMATS = {E.BITMAP_FMT_32BIT: 32, E.BITMAP_FMT_RGBA: 32, E.BITMAP_FMT_24BIT: 24,
           E.BITMAP_FMT_16BIT: 16, E.BITMAP_FMT_8BIT: 8, E.BITMAP_FMT_4BIT_BE: 4,
           E.BITMAP_FMT_1BIT_BE: 1}
ROP_OPS = [E.ROPD_OP_PUT, E.ROPD_OP_OR, E.ROPD_OP_AND, E.ROPD_OP_XOR, E.ROPD_OP_BLACKNESS,
           E.ROPD_OP_WHITENESS, E.ROPD_OP_INVERS]
ROP_INVERSIONS = [0, E.ROPD_INVERS_SRC, E.ROPD_INVERS_BRUSH, E.ROPD_INVERS_DEST,
                  E.ROPD_INVERS_RES]


def uses_all_operands(rop3: int) -> bool:
    """Whether a ROP3 code's result depends on source, pattern and destination alike: the
    real canvas has a handler only for those and aborts on the others (docs/conformance.md).
    In the truth table's index, P is bit 2, S bit 1 and D bit 0."""
    def depends(bit: int) -> bool:
        return any((rop3 >> i) & 1 != (rop3 >> (i ^ bit)) & 1 for i in range(8))
    return all(depends(bit) for bit in (4, 2, 1))


THREE_OPERAND_ROP3 = [c for c in range(256) if uses_all_operands(c)]


def noise(draw_: st.DrawFn, n: int) -> bytes:
    """n random bytes from a drawn seed: big images stay small for hypothesis."""
    seed = draw_(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@st.composite
def ropds(draw_: st.DrawFn) -> int:
    return draw_(st.sampled_from(ROP_OPS)) | draw_(st.sampled_from(ROP_INVERSIONS))


@st.composite
def bitmaps(draw_: st.DrawFn, w: int, h: int, formats: tuple[int, ...] = tuple(FORMATS)
            ) -> BitmapImage:
    fmt = draw_(st.sampled_from(formats))
    bpp = FORMATS[fmt]
    stride = (w * bpp + 7) // 8 + draw_(st.sampled_from([0, 0, 3]))
    data = noise(draw_, stride * h)
    palette = None
    if bpp <= 8:
        # from a drawn seed, as the pixels: 256 drawn entries overran hypothesis's buffer
        raw = noise(draw_, 4 << bpp)
        ents = tuple(int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4))
        palette = Palette(hash(ents) & (1 << 62) - 1, ents)
    cache = draw_(st.booleans())
    # one id per content, so the image cache is hit only by equal images
    image_id = hash((data, palette, fmt, w, h)) & (1 << 62) - 1
    desc = ImageDescriptor(image_id, E.IMAGE_TYPE_BITMAP, E.QXL_IMAGE_CACHE if cache else 0,
                           w, h)
    flags = 4 if draw_(st.booleans()) else 0  # QXL_BITMAP_TOP_DOWN
    return BitmapImage(desc, fmt, flags, w, h, stride, palette, data)


@st.composite
def brushes(draw_: st.DrawFn, max_pos: int = 9) -> SolidBrush | PatternBrush:
    """`max_pos`: the largest pattern position drawn (ROP3 takes none past its bbox's
    corner: the canvas then reads outside the pattern, docs/conformance.md)."""
    if draw_(st.integers(0, 2)):
        return SolidBrush(draw_(st.integers(0, 0xFFFFFF)))
    pw, ph = draw_(st.integers(1, 8)), draw_(st.integers(1, 8))
    return PatternBrush(draw_(bitmaps(pw, ph)), QPoint(draw_(st.integers(-9, max_pos)),
                                                       draw_(st.integers(-9, max_pos))))


@st.composite
def masks(draw_: st.DrawFn) -> QMask:
    if draw_(st.booleans()):
        return QMask(0, QPoint(0, 0), None)
    mw, mh = draw_(st.integers(1, TILE)), draw_(st.integers(1, TILE))
    stride = (mw + 7) // 8
    bits = BitmapImage(ImageDescriptor(0, E.IMAGE_TYPE_BITMAP, 0, mw, mh),
                       E.BITMAP_FMT_1BIT_BE, 4 if draw_(st.booleans()) else 0, mw, mh, stride,
                       None, noise(draw_, stride * mh))
    flags = E.MASK_FLAGS_INVERS if draw_(st.booleans()) else 0
    return QMask(flags, QPoint(draw_(st.integers(0, 4)), draw_(st.integers(0, 4))), bits)


@st.composite
def boxes(draw_: st.DrawFn, x0: int, y0: int, size: int) -> QRect:
    """A non-empty rect inside the size x size square at (x0, y0)."""
    left, top = draw_(st.integers(0, size - 1)), draw_(st.integers(0, size - 1))
    right = draw_(st.integers(left + 1, size))
    bottom = draw_(st.integers(top + 1, size))
    return QRect(y0 + top, x0 + left, y0 + bottom, x0 + right)


@st.composite
def sources(draw_: st.DrawFn, w: int, h: int, formats: tuple[int, ...] = tuple(FORMATS)
            ) -> tuple[object, QRect, tuple[int, QRect] | None]:
    """(image, src_area, dependency): a bitmap, or an area of the off-screen surface."""
    if draw_(st.integers(0, 3)) == 0 and w <= OFF_SIZE and h <= OFF_SIZE:
        sx, sy = draw_(st.integers(0, OFF_SIZE - w)), draw_(st.integers(0, OFF_SIZE - h))
        area = QRect(sy, sx, sy + h, sx + w)
        sid = draw_(st.sampled_from(sorted(OFF_SURFACES)))
        img = SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), sid)
        return img, area, (sid, area)
    iw, ih = w + draw_(st.integers(0, 3)), h + draw_(st.integers(0, 3))
    sx, sy = draw_(st.integers(0, iw - w)), draw_(st.integers(0, ih - h))
    return draw_(bitmaps(iw, ih, formats)), QRect(sy, sx, sy + h, sx + w), None


@st.composite
def glyph_strings(draw_: st.DrawFn, box: QRect) -> GlyphString:
    # A8 is left out: the real canvas draws it a row off (docs/conformance.md)
    flags = draw_(st.sampled_from([E.STRING_FLAGS_RASTER_A1, E.STRING_FLAGS_RASTER_A4]))
    bpp = 1 if flags == E.STRING_FLAGS_RASTER_A1 else 4
    glyphs = []
    for _ in range(draw_(st.integers(1, 4))):
        gw = draw_(st.integers(1, box.right - box.left))
        gh = draw_(st.integers(1, box.bottom - box.top))
        x = draw_(st.integers(box.left, box.right - gw))
        y = draw_(st.integers(box.top, box.bottom - gh))
        ox, oy = draw_(st.integers(-2, 2)), draw_(st.integers(-gh, 0))
        glyphs.append(RasterGlyph(QPoint(x - ox, y - oy), QPoint(ox, oy), gw, gh,
                                  noise(draw_, (gw * bpp + 7) // 8 * gh)))
    if draw_(st.booleans()):
        flags |= E.STRING_FLAGS_RASTER_TOP_DOWN  # ignored by the canvas, and by vgpu
    return GlyphString(flags, tuple(glyphs))


@st.composite
def paths(draw_: st.DrawFn, box: QRect) -> tuple[PathSeg, ...]:
    def point() -> tuple[int, int]:
        return (draw_(st.integers(box.left * 16, box.right * 16)),
                draw_(st.integers(box.top * 16, box.bottom * 16)))

    def subpath() -> list[PathSeg]:
        n = draw_(st.integers(1, 4))
        end = E.PATH_END | (E.PATH_CLOSE if draw_(st.booleans()) else 0)
        segs = [PathSeg(E.PATH_BEGIN, (point(), point()))]
        for i in range(n):
            flags = end if i == n - 1 else 0
            # a cubic Bezier (three points after the current one) or a line to one point;
            # a curve of one point never gets flat enough for spice-common's
            # subdivide_bezier, which recurses until spice-server's stack overflows
            # (docs/conformance.md), so curves end away from where they start
            last = segs[-1].points[-1]
            curve = (point(), point(), point()) if draw_(st.integers(0, 3)) == 0 else None
            if curve and max(abs(curve[2][0] - last[0]), abs(curve[2][1] - last[1])) >= 32:
                segs.append(PathSeg(flags | E.PATH_BEZIER, curve))
            else:
                segs.append(PathSeg(flags, (point(),)))
        return segs

    return tuple(subpath())


@st.composite
def composites(draw_: st.DrawFn, w: int, h: int
               ) -> tuple[Composite, tuple[int, QRect] | None]:
    """A COMPOSITE and the off-screen surface it reads, if any (a source or mask may be one,
    read whole: repeats reach anywhere in it)."""
    dep: tuple[int, QRect] | None = None

    def image(formats: tuple[int, ...]) -> object:
        nonlocal dep
        if draw_(st.integers(0, 3)) == 0:
            sid = dep[0] if dep else draw_(st.sampled_from(sorted(OFF_SURFACES)))
            dep = (sid, QRect(0, 0, OFF_SIZE, OFF_SIZE))
            return SurfaceImage(ImageDescriptor(0, E.IMAGE_TYPE_SURFACE, 0, 0, 0), sid)
        return draw_(bitmaps(w + 2, h + 2, formats))

    def transform() -> tuple[int, ...]:
        return (draw_(st.sampled_from([1 << 16, 1 << 15, 3 << 15])), 0,
                draw_(st.integers(-2, 2)) << 16, 0,
                draw_(st.sampled_from([1 << 16, 1 << 15, 3 << 15])),
                draw_(st.integers(-2, 2)) << 16)

    src = image((E.BITMAP_FMT_32BIT, E.BITMAP_FMT_RGBA))
    mask = image((E.BITMAP_FMT_RGBA,)) if draw_(st.booleans()) else None
    # transforms on bitmaps only: the canvas sets a transform on the surface's own image
    # and never clears it, so it leaks into later draws from that surface
    # (docs/conformance.md; test_a_composite_transform_does_not_leak)
    # every pixman_op_t: Porter/Duff, their DISJOINT_ and CONJOINT_ forms, the blend modes
    flags = draw_(st.sampled_from(sorted(SUPPORTED_OPS)))
    flags |= draw_(st.sampled_from([3, 4])) << 8  # filter: nearest or bilinear
    flags |= draw_(st.integers(0, 3)) << 14  # repeat
    src_t = mask_t = None
    if isinstance(src, BitmapImage) and draw_(st.booleans()):
        src_t = transform()
        flags |= E.COMPOSITE_HAS_SRC_TRANSFORM
    if mask is not None:
        flags |= E.COMPOSITE_HAS_MASK
        flags |= draw_(st.sampled_from([3, 4])) << 11
        flags |= draw_(st.integers(0, 3)) << 16
        if draw_(st.booleans()):
            flags |= E.COMPOSITE_COMPONENT_ALPHA
        if isinstance(mask, BitmapImage) and draw_(st.booleans()):
            mask_t = transform()
            flags |= E.COMPOSITE_HAS_MASK_TRANSFORM
    if draw_(st.booleans()):
        flags |= E.COMPOSITE_SOURCE_OPAQUE
    return Composite(flags, src, mask, src_t, mask_t,
                     QPoint(draw_(st.integers(0, 2)), draw_(st.integers(0, 2))),
                     QPoint(draw_(st.integers(0, 2)), draw_(st.integers(0, 2)))), dep


DASHED = (E.LINE_FLAGS_STYLED, E.LINE_FLAGS_STYLED | E.LINE_FLAGS_START_WITH_GAP)
LINE_FLAGS = (0, *DASHED)
KINDS = ["fill", "copy", "blend", "opaque", "rop3", "blackness", "whiteness", "invers",
         "transparent", "alpha", "stroke", "text", "composite", "copybits", "scaled"]


@st.composite
def tile_commands(draw_: st.DrawFn, x0: int, y0: int, kinds: tuple[str, ...] = tuple(KINDS)
                  ) -> list[object]:
    """One command drawn inside the tile at (x0, y0), or on the off-screen surface."""
    kind = draw_(st.sampled_from(kinds))
    on_off = kind in ("fill", "copy", "rop3", "text") and draw_(st.integers(0, 4)) == 4
    sid, (ox, oy, size) = (0, (x0, y0, TILE))
    if on_off:
        sid, (ox, oy, size) = draw_(st.sampled_from(sorted(OFF_SURFACES))), (0, 0, OFF_SIZE)
    box = draw_(boxes(ox, oy, size))
    w, h = box.right - box.left, box.bottom - box.top
    clip = None
    if draw_(st.integers(0, 2)) == 0:
        clip = tuple(draw_(st.lists(boxes(ox, oy, size), min_size=1, max_size=3)))
    dep = None
    if kind == "fill":
        op: object = Fill(draw_(brushes()), draw_(ropds()), draw_(masks()))
    elif kind in ("copy", "blend", "opaque", "rop3", "scaled"):
        if kind == "scaled":
            sw, sh = draw_(st.integers(1, TILE)), draw_(st.integers(1, TILE))
            src, area, dep = draw_(sources(sw, sh))
            scale = draw_(st.sampled_from([E.SCALE_MODE_NEAREST, E.SCALE_MODE_INTERPOLATE]))
            op = Copy(src, area, E.ROPD_OP_PUT, scale, draw_(masks()))
        else:
            src, area, dep = draw_(sources(w, h))
            if kind == "copy":
                op = Copy(src, area, draw_(ropds()), 0, draw_(masks()))
            elif kind == "blend":
                op = Blend(src, area, draw_(ropds()), 0, draw_(masks()))
            elif kind == "opaque":
                op = Opaque(src, area, draw_(brushes()), draw_(ropds()), 0, draw_(masks()))
            else:
                code = draw_(st.sampled_from(THREE_OPERAND_ROP3))
                op = Rop3(src, area, draw_(brushes(max_pos=0)), code, 0, draw_(masks()))
    elif kind == "blackness":
        op = Blackness(draw_(masks()))
    elif kind == "whiteness":
        op = Whiteness(draw_(masks()))
    elif kind == "invers":
        op = Invers(draw_(masks()))
    elif kind == "transparent":
        src, area, dep = draw_(sources(w, h))
        op = Transparent(src, area, draw_(st.integers(0, 0xFFFFFF)), 0)
    elif kind == "alpha":
        src, area, dep = draw_(sources(w, h, (E.BITMAP_FMT_RGBA, E.BITMAP_FMT_32BIT)))
        op = AlphaBlend(draw_(st.integers(0, 3)), draw_(st.integers(0, 255)), src, area)
    elif kind == "stroke":
        style: tuple[int, ...] = ()
        flags = draw_(st.sampled_from(LINE_FLAGS))
        if flags:
            # whole pixels (zero-length dashes too) plus a fraction that fix_to_int rounds
            lengths = draw_(st.lists(st.integers(0, 6), min_size=1, max_size=4).filter(any))
            style = tuple((n << 4) | draw_(st.integers(0, 15)) for n in lengths)
        op = Stroke(draw_(paths(box)), LineAttr(flags, style),
                    draw_(brushes()), draw_(ropds()), E.ROPD_OP_PUT)
    elif kind == "text":
        back = draw_(st.none() | boxes(ox, oy, size))
        fore_mode = E.ROPD_OP_PUT if back is not None else draw_(ropds())
        op = Text(draw_(glyph_strings(box)), back or QRect(0, 0, 0, 0), draw_(brushes()),
                  draw_(brushes()) if back is not None else None, fore_mode, E.ROPD_OP_PUT)
        if back is not None:
            box = QRect(min(box.top, back.top), min(box.left, back.left),
                        max(box.bottom, back.bottom), max(box.right, back.right))
    elif kind == "composite":
        op, dep = draw_(composites(w, h))
    else:  # copybits from elsewhere in the same tile
        sx = draw_(st.integers(x0, x0 + TILE - w))
        sy = draw_(st.integers(y0, y0 + TILE - h))
        op = CopyBits(QPoint(sx, sy))
    return [draw(box, op, sid, clip, source=dep)]


@st.composite
def batches(draw_: st.DrawFn, kinds: tuple[str, ...] = tuple(KINDS), max_commands: int = 4
            ) -> list[tuple[object, object]]:
    """A record's items: the primary with a noise background, the off-screen surface, then
    COLS x ROWS tiles of 1..max_commands commands each."""
    background = noise(draw_, WIDTH * HEIGHT * 4)
    primary = PrimarySurface(WIDTH, HEIGHT, -WIDTH * 4, E.SURFACE_FMT_32_xRGB, 0, 1,
                             KEEP_DATA, 0, background)
    items: list[tuple[object, object]] = [
        (WorkerMessage.ADD_MEMSLOT, None), (WorkerMessage.START, None),
        (WorkerMessage.CREATE_PRIMARY_SURFACE, primary),
    ]
    for sid, fmt in OFF_SURFACES.items():
        off = SurfaceCreate(fmt, OFF_SIZE, OFF_SIZE, OFF_SIZE * 4, 0, OFF_SIZE * OFF_SIZE * 4)
        items.append((SurfaceCmd(0, sid, 0, KEEP_DATA, off),
                      noise(draw_, OFF_SIZE * OFF_SIZE * 4)))
    for row in range(ROWS):
        for col in range(COLS):
            for _ in range(draw_(st.integers(1, max_commands))):
                items += [(cmd, None) for cmd in draw_(tile_commands(col * TILE, row * TILE,
                                                                     kinds))]
    items.append((WorkerMessage.WAKEUP, None))
    return items
