"""A small but complete session: every command type and draw type, valid for spice-server.

`scene()` returns (WorkerMessage or command, extra) pairs in the order a guest
would cause them, ready for `RecordWriter` (extra: the primary surface for
CREATE_PRIMARY_SURFACE, a KEEP_DATA surface's memory for a surface create).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Composite,
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
from vgpu.replay.format import PrimarySurface, WorkerMessage
from vgpu.replay.writer import RecordWriter

WIDTH, HEIGHT = 256, 192
ROP_PUT = 8  # SPICE_ROPD_OP_PUT
NO_MASK = QMask(0, QPoint(0, 0), None)
# SPICE_BITMAP_FMT_*; 1-bit is big-endian because spice-server's pixman conversion aborts
# on 1BIT_LE
FMT_32BIT, FMT_RGBA, FMT_8BIT, FMT_1BIT_BE = 8, 9, 5, 2
TOP_DOWN = 4  # QXL_BITMAP_TOP_DOWN
DIRECT = 1  # QXL_BITMAP_DIRECT
SURF_32_xRGB = 32  # SPICE_SURFACE_FMT_32_xRGB


def bitmap(image_id: int, fmt: int, width: int, height: int, stride: int, data: bytes,
           palette: Palette | None = None, flags: int = TOP_DOWN) -> BitmapImage:
    return BitmapImage(ImageDescriptor(image_id, 0, 0, width, height), fmt, flags, width, height,
                       stride, palette, data)


def draw(bbox: QRect, op: object, surface_id: int = 0,
         clip: tuple[QRect, ...] | None = None,
         source: tuple[int, QRect] | None = None) -> Drawable:
    """`source`: the surface an image of the draw comes from and the area read, which
    a guest declares in surfaces_dest: spice-server renders that surface's pending
    draws first only when told (see docs/conformance.md)."""
    none = QRect(0, 0, 0, 0)
    deps, rects = ((source[0], -1, -1), (source[1], none, none)) if source else \
        ((-1, -1, -1), (none, none, none))
    return Drawable(bbox=bbox, clip=clip, surface_id=surface_id, surfaces_dest=deps,
                    surfaces_rects=rects, op=op)  # type: ignore[arg-type]


def record_bytes(items: Iterable[tuple[object, object]],
                 clock: Callable[[], int] | None = None) -> bytes:
    """(WorkerMessage or command, extra) pairs, as `scene()` gives them, as a record file."""
    out = io.BytesIO()
    writer = RecordWriter(out) if clock is None else RecordWriter(out, clock=clock)
    for item, extra in items:
        if isinstance(item, WorkerMessage):
            writer.worker_message(item, extra)  # type: ignore[arg-type]
        else:
            writer.command(item, extra)  # type: ignore[arg-type]
    return out.getvalue()


def rgba(width: int, height: int, seed: int) -> bytes:
    return bytes((x * 7 + y * 13 + seed * c) & 0xFF
                 for y in range(height) for x in range(width) for c in range(1, 5))


def scene() -> list[tuple[object, object]]:
    primary = PrimarySurface(WIDTH, HEIGHT, -WIDTH * 4, SURF_32_xRGB, 0, 1, 0, 0,
                             bytes(WIDTH * 4 * HEIGHT))
    off = bytes(range(256)) * (64 * 64 * 4 // 256)
    surface = SurfaceCreate(SURF_32_xRGB, 64, 64, 256, 0, 64 * 256)
    solid = SolidBrush(0x336699)
    img32 = bitmap(1, FMT_32BIT, 16, 16, 64, rgba(16, 16, 1))
    img_direct = bitmap(2, FMT_32BIT, 8, 8, 32, rgba(8, 8, 2), flags=TOP_DOWN | DIRECT)
    img8 = bitmap(3, FMT_8BIT, 8, 4, 8, bytes(i % 4 for i in range(32)),
                  Palette(7, (0x000000, 0xFF0000, 0x00FF00, 0x0000FF)))
    img1 = bitmap(4, FMT_1BIT_BE, 8, 8, 1, bytes([0x55, 0xAA] * 4),
                  Palette(8, (0x000000, 0xFFFFFF)))
    img_alpha = bitmap(5, FMT_RGBA, 16, 16, 64, rgba(16, 16, 3))
    glyphs = GlyphString(1, (  # SPICE_STRING_FLAGS_RASTER_A1
        RasterGlyph(QPoint(150, 120), QPoint(0, -8), 8, 8, bytes([0x3C, 0x42] * 4)),
        RasterGlyph(QPoint(158, 120), QPoint(0, -8), 8, 8, bytes([0xFF, 0x81] * 4)),
    ))
    path = (PathSeg(1, ((10 << 4, 150 << 4), (60 << 4, 180 << 4))),  # SPICE_PATH_BEGIN
            PathSeg(2, ((100 << 4, 150 << 4),)))  # SPICE_PATH_END
    cursor = CursorShapeData(99, 0, 8, 8, 1, 1, rgba(8, 8, 4))  # SPICE_CURSOR_TYPE_ALPHA
    return [
        (WorkerMessage.ADD_MEMSLOT, None),
        (WorkerMessage.START, None),
        (WorkerMessage.CREATE_PRIMARY_SURFACE, primary),
        (SurfaceCmd(0, 1, 0, 1, surface), off),  # QXL_SURFACE_CMD_CREATE, KEEP_DATA
        (WorkerMessage.WAKEUP, None),
        (draw(QRect(0, 0, HEIGHT, WIDTH), Fill(solid, ROP_PUT, NO_MASK)), None),
        (draw(QRect(0, 0, 32, 32), Fill(SolidBrush(0xFF8000), ROP_PUT, NO_MASK), 1), None),
        (draw(QRect(10, 10, 26, 26), Copy(img32, QRect(0, 0, 16, 16), ROP_PUT, 0, NO_MASK)),
         None),
        (draw(QRect(10, 30, 18, 38), Copy(img_direct, QRect(0, 0, 8, 8), ROP_PUT, 0, NO_MASK)),
         None),
        (draw(QRect(10, 40, 14, 48), Copy(img8, QRect(0, 0, 4, 8), ROP_PUT, 0, NO_MASK)), None),
        (draw(QRect(10, 50, 18, 58), Copy(img1, QRect(0, 0, 8, 8), ROP_PUT, 0, NO_MASK)), None),
        (draw(QRect(30, 10, 94, 74),
              Copy(SurfaceImage(ImageDescriptor(10, 104, 0, 64, 64), 1), QRect(0, 0, 64, 64),
                   ROP_PUT, 0, NO_MASK), source=(1, QRect(0, 0, 64, 64))), None),
        (draw(QRect(30, 80, 62, 112), CopyBits(QPoint(10, 30))), None),
        (draw(QRect(100, 10, 116, 26),
              Opaque(img32, QRect(0, 0, 16, 16), solid, ROP_PUT, 0, NO_MASK)), None),
        (draw(QRect(100, 30, 116, 46), Blend(img32, QRect(0, 0, 16, 16), ROP_PUT, 0, NO_MASK)),
         None),
        (draw(QRect(100, 50, 116, 66),
              Rop3(img32, QRect(0, 0, 16, 16), solid, 0xCA, 0, NO_MASK)), None),
        (draw(QRect(100, 70, 110, 80), Blackness(NO_MASK)), None),
        (draw(QRect(100, 80, 110, 90), Whiteness(NO_MASK)), None),
        (draw(QRect(100, 90, 110, 100), Invers(NO_MASK)), None),
        (draw(QRect(140, 10, 190, 110),
              Stroke(path, LineAttr(0, ()), SolidBrush(0xFFFF00), ROP_PUT, ROP_PUT)), None),
        (draw(QRect(110, 148, 122, 168),
              Text(glyphs, QRect(110, 148, 122, 168), SolidBrush(0xFFFFFF), None, ROP_PUT,
                   ROP_PUT)), None),
        (draw(QRect(120, 10, 136, 26),
              Transparent(img32, QRect(0, 0, 16, 16), 0x000000, 0x000000)), None),
        (draw(QRect(120, 30, 136, 46), AlphaBlend(1, 128, img_alpha, QRect(0, 0, 16, 16))),
         None),
        (draw(QRect(120, 50, 136, 66),
              Composite(3, img_alpha, None, None, None, QPoint(0, 0), QPoint(0, 0))), None),
        (draw(QRect(140, 120, 180, 160), Fill(SolidBrush(0x00FF00), ROP_PUT, NO_MASK),
              clip=(QRect(140, 120, 150, 130), QRect(160, 140, 180, 160))), None),
        (draw(QRect(160, 200, 180, 250),
              Fill(PatternBrush(img8, QPoint(0, 0)), ROP_PUT, NO_MASK)), None),
        (UpdateCmd(0, QRect(0, 0, HEIGHT, WIDTH), 1, 0), None),
        (CursorCmd(0, 0, QPoint(20, 20), True, cursor, 0, 0), None),  # QXL_CURSOR_SET
        (CursorCmd(0, 1, QPoint(40, 30), False, None, 0, 0), None),  # MOVE
        (CursorCmd(0, 2, QPoint(0, 0), False, None, 0, 0), None),  # HIDE
        (MessageCmd(0, b"vgpu scene"), None),
        (WorkerMessage.UPDATE, None),
        (WorkerMessage.MONITORS_CONFIG_ASYNC, None),
        (SurfaceCmd(0, 1, 1, 0, None), None),  # QXL_SURFACE_CMD_DESTROY
        (WorkerMessage.WAKEUP, None),
    ]


def desktop_session(ticks: int = 40, start: float = 1_700_000_000.0,
                    period: float = 0.1) -> list[tuple[object, object]]:
    """The desktop demo's own session, on a fixed clock: its first screen, the cursor and
    `ticks` frames `period` seconds apart (log lines, scrolling, the clock, the blinking
    text cursor drawn from one cached bitmap with two palettes, the chart)."""
    from vgpu.guest.desktop import DesktopScene

    desk = DesktopScene()
    w, h = desk.width, desk.height
    primary = PrimarySurface(w, h, -w * 4, SURF_32_xRGB, 0, 1, 0, 0, bytes(w * 4 * h))
    items: list[tuple[object, object]] = [
        (WorkerMessage.ADD_MEMSLOT, None), (WorkerMessage.START, None),
        (WorkerMessage.CREATE_PRIMARY_SURFACE, primary)]
    cmds = desk.initial() + desk.cursor_initial()
    for i in range(ticks):
        cmds += desk.tick(start + i * period)
    items += [(cmd, None) for cmd in cmds]
    items.append((WorkerMessage.WAKEUP, None))
    return items
