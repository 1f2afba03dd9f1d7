"""Shared by the device and guest tests: a recording backend, a command capture, and
hypothesis strategies for every typed command of vgpu.device.commands."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import strategies as st

from vgpu.device import commands as c
from vgpu.device.abi import lib
from vgpu.device.backend import run_fences
from vgpu.device.device import Device, DeviceObserver
from vgpu.device.inprocess import InProcessAttachment
from vgpu.device.parser import BITMAP_BPP, cursor_data_size, min_stride
from vgpu.guest.driver import GuestDriver

PRIMARY_W, PRIMARY_H = 640, 480


class RecordingBackend:
    """Remembers every call; read_area answers with a position pattern (0x00YYXXXX)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.executed: list = []
        self.batches: list[bytes] = []
        self.resets_3d = 0

    def create_primary(self, width, height, stride, format, initial) -> None:
        self.calls.append(("create_primary", width, height, stride, format,
                           None if initial is None else initial.copy()))

    def destroy_primary(self) -> None:
        self.calls.append(("destroy_primary",))

    def execute(self, cmd) -> None:
        self.executed.append(cmd)

    def surface_created(self, surface_id, width, height, stride, format, initial) -> None:
        self.calls.append(("surface_created", surface_id, width, height, stride, format,
                           None if initial is None else initial.copy()))

    def surface_destroyed(self, surface_id) -> None:
        self.calls.append(("surface_destroyed", surface_id))

    def read_area(self, surface_id, area) -> list:
        self.calls.append(("read_area", surface_id, area))
        h, w = area.bottom - area.top, area.right - area.left
        ys = np.arange(area.top, area.bottom, dtype=np.uint32)[:, None]
        xs = np.arange(area.left, area.right, dtype=np.uint32)[None, :]
        px = (ys << 16 | xs).astype("<u4")
        return [(area, px.view(np.uint8).reshape(h, w * 4))]

    def reset(self) -> None:
        self.calls.append(("reset",))

    def reset_3d(self) -> None:
        self.resets_3d += 1

    def execute_3d(self, batch, guest) -> None:
        self.batches.append(batch)
        run_fences(batch, guest)


class Capture(DeviceObserver):
    def __init__(self) -> None:
        self.commands: list[c.Command] = []
        self.io: list[tuple[int, int]] = []
        self.bugs: list[str] = []

    def on_io(self, port, value) -> None:
        self.io.append((port, value))

    def on_command(self, ring, cmd_type, addr, command, compat) -> None:
        self.commands.append(command)

    def on_guest_bug(self, reason) -> None:
        self.bugs.append(reason)


# --- fixtures (imported by the conftests) ---------------------------------------

SMALL_RAM = 8 * 1024 * 1024
SMALL_VRAM = 4 * 1024 * 1024


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def capture() -> Capture:
    return Capture()


@pytest.fixture
def device(backend: RecordingBackend, capture: Capture) -> Iterator[Device]:
    dev = Device(backend, ram_size=SMALL_RAM, vram_size=SMALL_VRAM, n_surfaces=64)
    dev.add_observer(capture)
    yield dev
    dev.close()


@pytest.fixture
def guest(device: Device) -> Iterator[GuestDriver]:
    drv = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1024)
    yield drv
    drv.close()


# --- strategies ---------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i16 = st.integers(-0x8000, 0x7FFF)
i32 = st.integers(-0x80000000, 0x7FFFFFFF)
u64 = st.integers(0, 2**64 - 1)
points = st.builds(c.QPoint, i32, i32)
rects = st.builds(c.QRect, i32, i32, i32, i32)


@st.composite
def bboxes(draw, w: int = PRIMARY_W, h: int = PRIMARY_H) -> c.QRect:
    top = draw(st.integers(0, h))
    left = draw(st.integers(0, w))
    return c.QRect(top, left, draw(st.integers(top, h)), draw(st.integers(left, w)))


@st.composite
def bitmaps(draw) -> c.BitmapImage:
    fmt = draw(st.sampled_from(sorted(BITMAP_BPP)))
    bpp = BITMAP_BPP[fmt]
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))  # up to 2304 bytes: chains
    stride = min_stride(w, bpp) + draw(st.integers(0, 3))
    flags = draw(st.sampled_from([0, 1, 2, 4, 5, 7]))
    palette = None
    if (bpp <= 8 and fmt != lib.SPICE_BITMAP_FMT_8BIT_A) or draw(st.booleans()):
        palette = c.Palette(draw(u64), tuple(draw(st.lists(u32, max_size=16))))
    desc = c.ImageDescriptor(draw(u64), lib.SPICE_IMAGE_TYPE_BITMAP, draw(u8), draw(u32),
                             draw(u32))
    return c.BitmapImage(desc, fmt, flags, w, h, stride, palette,
                         draw(st.binary(min_size=h * stride, max_size=h * stride)))


def _descriptor(typ: int) -> st.SearchStrategy[c.ImageDescriptor]:
    return st.builds(c.ImageDescriptor, u64, st.just(typ), u8, u32, u32)


images = st.one_of(
    bitmaps(),
    st.builds(c.SurfaceImage, _descriptor(lib.SPICE_IMAGE_TYPE_SURFACE), st.just(0)),
    st.builds(c.CompressedImage,
              st.sampled_from([lib.SPICE_IMAGE_TYPE_QUIC, lib.SPICE_IMAGE_TYPE_LZ_RGB,
                               lib.SPICE_IMAGE_TYPE_JPEG]).flatmap(_descriptor),
              st.binary(max_size=2500)),
)
brushes = st.one_of(st.none(), st.builds(c.SolidBrush, u32),
                    st.builds(c.PatternBrush, images, points))
masks = st.builds(c.QMask, u8, points, st.one_of(st.none(), images))


@st.composite
def glyph_strings(draw) -> c.GlyphString:
    depth = draw(st.sampled_from([(1, 1), (2, 4), (4, 8)]))
    flags = depth[0] | draw(st.sampled_from([0, 8]))
    glyphs = []
    for _ in range(draw(st.integers(0, 6))):
        w, h = draw(st.integers(0, 12)), draw(st.integers(0, 12))
        n = ((w * depth[1] + 7) // 8) * h
        glyphs.append(c.RasterGlyph(draw(points), draw(points), w, h,
                                    draw(st.binary(min_size=n, max_size=n))))
    return c.GlyphString(flags, tuple(glyphs))


@st.composite
def line_attrs(draw) -> c.LineAttr:
    flags = draw(u8)
    style: tuple[int, ...] = ()
    if flags & lib.SPICE_LINE_FLAGS_STYLED:
        style = tuple(draw(st.lists(i32, min_size=1, max_size=8)))
    return c.LineAttr(flags, style)


path_segs = st.builds(c.PathSeg, u32, st.lists(st.tuples(i32, i32), max_size=20).map(tuple))
transforms = st.one_of(st.none(), st.tuples(*[i32] * 6))

def _composite(flags: int, src: c.Image, mask: c.Image | None, src_transform, mask_transform,
               src_origin: c.QPoint, mask_origin: c.QPoint) -> c.Composite:
    """A COMPOSITE as spice-server's parser leaves it (and so the device): the presence
    flags follow the addresses, and a mask transform only comes with a mask."""
    presence = (lib.SPICE_COMPOSITE_HAS_MASK | lib.SPICE_COMPOSITE_HAS_SRC_TRANSFORM
                | lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM)
    flags &= ~presence
    if src_transform is not None:
        flags |= lib.SPICE_COMPOSITE_HAS_SRC_TRANSFORM
    if mask is None:
        mask_transform = None
    else:
        flags |= lib.SPICE_COMPOSITE_HAS_MASK
        if mask_transform is not None:
            flags |= lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM
    return c.Composite(flags, src, mask, src_transform, mask_transform, src_origin, mask_origin)


draw_ops = st.one_of(
    st.builds(c.Fill, brushes, u16, masks),
    st.builds(c.Opaque, images, rects, brushes, u16, u8, masks),
    st.builds(c.Copy, images, rects, u16, u8, masks),
    st.builds(c.Blend, images, rects, u16, u8, masks),
    st.builds(c.Blackness, masks),
    st.builds(c.Whiteness, masks),
    st.builds(c.Invers, masks),
    st.builds(c.Rop3, images, rects, brushes, u8, u8, masks),
    st.builds(c.Stroke, st.lists(path_segs, max_size=5).map(tuple), line_attrs(), brushes,
              u16, u16),
    st.builds(c.Text, glyph_strings(), rects, brushes, brushes, u16, u16),
    st.builds(c.Transparent, images, rects, u32, u32),
    st.builds(c.AlphaBlend, u16, u8, images, rects),
    st.builds(_composite, u32, images, st.one_of(st.none(), images), transforms, transforms,
              st.builds(c.QPoint, i16, i16), st.builds(c.QPoint, i16, i16)),
    st.builds(c.CopyBits, points),
    st.just(c.Nop()),
)

clips = st.one_of(st.none(), st.lists(rects, max_size=100).map(tuple))
surface_refs = st.integers(-1, 63)

drawables = st.builds(
    c.Drawable, bbox=bboxes(), clip=clips, effect=u8, mm_time=u32, self_bitmap=u8,
    self_bitmap_area=rects, surfaces_dest=st.tuples(surface_refs, surface_refs, surface_refs),
    surfaces_rects=st.tuples(rects, rects, rects), op=draw_ops)


def _compat_op(op: c.DrawOp) -> bool:
    return not isinstance(op, c.Composite)


compat_drawables = st.builds(  # QXLCompatDrawable: no surfaces, so none named
    c.Drawable, bbox=bboxes(), clip=clips, effect=u8, mm_time=u32,
    self_bitmap=st.integers(0, 1), self_bitmap_area=rects,
    op=draw_ops.filter(_compat_op).map(
        lambda op: c.AlphaBlend(0, op.alpha, op.src_bitmap, op.src_area)
        if isinstance(op, c.AlphaBlend) else op))

@st.composite
def cursor_shapes(draw) -> c.CursorShapeData:
    typ, w, h = draw(st.integers(0, 6)), draw(st.integers(0, 48)), draw(st.integers(0, 48))
    n = cursor_data_size(typ, w, h) + draw(st.integers(0, 16))
    return c.CursorShapeData(draw(u64), typ, w, h, draw(u16), draw(u16),
                             draw(st.binary(min_size=n, max_size=n)))


cursor_cmds = st.one_of(
    st.builds(c.CursorCmd, st.just(0), st.just(lib.QXL_CURSOR_SET),
              st.builds(c.QPoint, i16, i16), st.booleans(), cursor_shapes(), st.just(0),
              st.just(0)),
    st.builds(c.CursorCmd, st.just(0), st.just(lib.QXL_CURSOR_MOVE),
              st.builds(c.QPoint, i16, i16), st.just(False), st.none(), st.just(0), st.just(0)),
    st.just(c.CursorCmd(0, lib.QXL_CURSOR_HIDE, c.QPoint(0, 0), False, None, 0, 0)),
    st.builds(c.CursorCmd, st.just(0), st.just(lib.QXL_CURSOR_TRAIL), st.just(c.QPoint(0, 0)),
              st.just(False), st.none(), u16, u16),
)
updates = st.builds(c.UpdateCmd, st.just(0), rects, u32, st.integers(0, 63))
messages = st.builds(c.MessageCmd, st.just(0),
                     st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"x")))
