"""Writing spice-server record files from events.

`RecordWriter` writes the format spice-server writes, from the same values
`vgpu.replay.reader` reads (`vgpu.replay.format`), so the real spice-server's
`spice_replay_next_cmd` can read what our guests send. Each event is written
whole or not at all: an event the format cannot hold raises ValueError having
written nothing.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import BinaryIO

from vgpu.device.abi import lib
from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Brush,
    Command,
    Composite,
    Copy,
    CopyBits,
    CursorCmd,
    CursorShapeData,
    Drawable,
    DrawOp,
    Fill,
    Image,
    Invers,
    MessageCmd,
    Opaque,
    QMask,
    QPoint,
    QRect,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceCmd,
    SurfaceImage,
    Text,
    Transparent,
    UpdateCmd,
    Whiteness,
)
from vgpu.device.payloads import (
    DRAW_TYPES,
    encode_glyphs,
    encode_path,
    encode_rects,
    encode_transform,
)
from vgpu.replay.format import (
    FIXED,
    HEADER,
    PRIMARY_MESSAGES,
    CommandEvent,
    Event,
    PrimarySurface,
    WorkerMessage,
)


class RecordWriter:
    """Writes events in the format spice-server writes (and its replay reads).

    Pass `clock` to control timestamps (CLOCK_MONOTONIC nanoseconds by default)."""

    def __init__(self, stream: BinaryIO, clock=time.monotonic_ns):
        self._out = stream
        self._clock = clock
        self._counter = 0
        self._out.write(HEADER + b"\n")

    # -- low level --

    def _line(self, text: str) -> None:
        self._out.write(text.encode() + b"\n")

    def _blob(self, name: str, data: bytes) -> None:
        self._out.write(b"binary 0 %s %d:" % (name.encode(), len(data)))
        self._out.write(data)
        self._out.write(b"\n")

    def _chunks(self, name: str, data: bytes) -> None:
        self._line(f"data_chunks 0 {len(data)}")
        self._blob(name, data)

    def _event(self, what: int, kind: int) -> None:
        self._line(f"event {self._counter} {what} {kind} {self._clock()}")
        self._counter += 1

    def _rect(self, name: str, r: QRect) -> None:
        self._line(f"rect {name} {r.top} {r.left} {r.bottom} {r.right}")

    def _point(self, p: QPoint) -> None:
        self._line(f"point {p.x} {p.y}")

    @staticmethod
    def _d(value: int) -> int:
        """An unsigned 32-bit value as spice-server's %d prints it."""
        return value - (1 << 32) if value >= 1 << 31 else value

    # -- pieces --

    def _image(self, img: Image | None) -> None:
        if img is None:
            self._line("image 0")
            return
        d = img.descriptor
        self._line("image 1")
        self._line(f"descriptor.id {d.id}")
        self._line(f"descriptor.type {d.type}")
        self._line(f"descriptor.flags {d.flags}")
        self._line(f"descriptor.width {self._d(d.width)}")
        self._line(f"descriptor.height {self._d(d.height)}")
        if isinstance(img, BitmapImage):
            self._line(f"bitmap.format {img.format}")
            self._line(f"bitmap.flags {img.flags}")
            self._line(f"bitmap.x {self._d(img.width)}")
            self._line(f"bitmap.y {self._d(img.height)}")
            self._line(f"bitmap.stride {self._d(img.stride)}")
            self._line(f"has_palette {int(img.palette is not None)}")
            if img.palette is not None:
                self._line(f"qp.num_ents {len(img.palette.ents)}")
                self._line(f"unique {img.palette.unique}")
                for ent in img.palette.ents:
                    self._line(f"ents {self._d(ent)}")
            if img.flags & lib.QXL_BITMAP_DIRECT:
                self._blob("image_data_flat", img.data)
            else:
                self._chunks("bitmap.data", img.data)
        elif isinstance(img, SurfaceImage):
            self._line(f"surface_image.surface_id {self._d(img.surface_id)}")
        elif d.type == lib.SPICE_IMAGE_TYPE_QUIC:
            self._line(f"quic.data_size {len(img.data)}")
            self._chunks("quic.data", img.data)
        else:
            raise ValueError(f"image type {d.type} cannot be recorded "
                             "(the format holds BITMAP, QUIC and SURFACE images)")

    def _brush(self, brush: Brush) -> None:
        if brush is None:
            self._line(f"type {lib.SPICE_BRUSH_TYPE_NONE}")
        elif isinstance(brush, SolidBrush):
            self._line(f"type {lib.SPICE_BRUSH_TYPE_SOLID}")
            self._line(f"u.color {self._d(brush.color)}")
        else:
            self._line(f"type {lib.SPICE_BRUSH_TYPE_PATTERN}")
            self._image(brush.pat)
            self._point(brush.pos)

    def _qmask(self, mask: QMask) -> None:
        self._line(f"flags {mask.flags}")
        self._point(mask.pos)
        self._image(mask.bitmap)

    def _src(self, img: Image, area: QRect) -> None:
        self._image(img)
        self._rect("src_area", area)

    def _draw_op(self, op: DrawOp) -> None:
        """The draw type line and the op's body."""
        self._line(f"type {DRAW_TYPES[type(op)]}")
        if isinstance(op, Fill):
            self._brush(op.brush)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._qmask(op.mask)
        elif isinstance(op, Opaque):
            self._src(op.src_bitmap, op.src_area)
            self._brush(op.brush)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, Copy | Blend):
            self._src(op.src_bitmap, op.src_area)
            self._line(f"rop_descriptor {op.rop_descriptor}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, CopyBits):
            self._point(op.src_pos)
        elif isinstance(op, Blackness | Whiteness | Invers):
            self._qmask(op.mask)
        elif isinstance(op, Rop3):
            self._src(op.src_bitmap, op.src_area)
            self._brush(op.brush)
            self._line(f"rop3 {op.rop3}")
            self._line(f"scale_mode {op.scale_mode}")
            self._qmask(op.mask)
        elif isinstance(op, Stroke):
            self._chunks("path", encode_path(op.path))
            self._line(f"attr.flags {op.attr.flags}")
            if op.attr.flags & lib.SPICE_LINE_FLAGS_STYLED:
                self._line(f"attr.style_nseg {len(op.attr.style)}")
                self._blob("style", b"".join(FIXED.pack(v) for v in op.attr.style))
            self._brush(op.brush)
            self._line(f"fore_mode {op.fore_mode}")
            self._line(f"back_mode {op.back_mode}")
        elif isinstance(op, Text):
            data = encode_glyphs(op.str)
            self._line(f"data_size {len(data)}")
            self._line(f"length {len(op.str.glyphs)}")
            self._line(f"flags {op.str.flags}")
            self._chunks("string", data)
            self._rect("back_area", op.back_area)
            self._brush(op.fore_brush)
            self._brush(op.back_brush)
            self._line(f"fore_mode {op.fore_mode}")
            self._line(f"back_mode {op.back_mode}")
        elif isinstance(op, Transparent):
            self._src(op.src_bitmap, op.src_area)
            self._line(f"src_color {self._d(op.src_color)}")
            self._line(f"true_color {self._d(op.true_color)}")
        elif isinstance(op, AlphaBlend):
            self._line(f"alpha_flags {op.alpha_flags}")
            self._line(f"alpha {op.alpha}")
            self._src(op.src_bitmap, op.src_area)
        elif isinstance(op, Composite):
            self._line(f"flags {self._d(op.flags)}")
            self._image(op.src)
            self._transform("src_transform", op.src_transform)
            self._line(f"mask {int(op.mask is not None)}")
            if op.mask is not None:
                self._image(op.mask)
            self._transform("mask_transform", op.mask_transform)
            self._line(f"src_origin {op.src_origin.x} {op.src_origin.y}")
            self._line(f"mask_origin {op.mask_origin.x} {op.mask_origin.y}")

    def _transform(self, key: str, t: tuple[int, ...] | None) -> None:
        self._line(f"{key} {int(t is not None)}")
        if t is not None:
            self._blob("transform", encode_transform(t))

    # -- public --

    def command(self, cmd: Command, surface_data: bytes | None = None) -> None:
        """One WHAT=0 event. `surface_data`: a KEEP_DATA surface create's memory.
        Raises ValueError, having written nothing, for what the format cannot hold."""
        self._whole(self._command, cmd, surface_data)

    def _whole(self, write: Callable[..., None], *args: object) -> None:
        """Runs `write` into a buffer, so that a refused event leaves no partial record."""
        out, counter = self._out, self._counter
        self._out = io.BytesIO()
        try:
            write(*args)
            out.write(self._out.getvalue())
        except BaseException:
            self._counter = counter
            raise
        finally:
            self._out = out

    def _command(self, cmd: Command, surface_data: bytes | None) -> None:
        if isinstance(cmd, Drawable):
            self._event(0, lib.QXL_CMD_DRAW)
            self._line("drawable")
            self._rect("bbox", cmd.bbox)
            if cmd.clip is None:
                self._line(f"type {lib.SPICE_CLIP_TYPE_NONE}")
            else:
                self._line(f"type {lib.SPICE_CLIP_TYPE_RECTS}")
                self._line(f"num_rects {len(cmd.clip)}")
                self._chunks("clip_rects", encode_rects(cmd.clip))
            self._line(f"effect {cmd.effect}")
            self._line(f"mm_time {self._d(cmd.mm_time)}")
            self._line(f"self_bitmap {cmd.self_bitmap}")
            self._rect("self_bitmap_area", cmd.self_bitmap_area)
            self._line(f"surface_id {self._d(cmd.surface_id)}")
            for dest, rect in zip(cmd.surfaces_dest, cmd.surfaces_rects, strict=True):
                self._line(f"surfaces_dest {dest}")
                self._rect("surfaces_rects", rect)
            self._draw_op(cmd.op)
        elif isinstance(cmd, UpdateCmd):
            self._event(0, lib.QXL_CMD_UPDATE)
            self._line("update")
            self._rect("area", cmd.area)
            self._line(f"update_id {self._d(cmd.update_id)}")
            self._line(f"surface_id {self._d(cmd.surface_id)}")
        elif isinstance(cmd, MessageCmd):
            # spice-server records a message as its NUL-terminated text
            self._event(0, lib.QXL_CMD_MESSAGE)
            self._blob("message", cmd.data.split(b"\0", 1)[0])
        elif isinstance(cmd, SurfaceCmd):
            self._surface(cmd, surface_data)
        else:
            self._cursor(cmd)

    def _surface(self, cmd: SurfaceCmd, data: bytes | None) -> None:
        self._event(0, lib.QXL_CMD_SURFACE)
        self._line("surface_cmd")
        self._line(f"surface_id {self._d(cmd.surface_id)}")
        self._line(f"type {cmd.type}")
        self._line(f"flags {self._d(cmd.flags)}")
        if cmd.type == lib.QXL_SURFACE_CMD_CREATE and cmd.create is not None:
            c = cmd.create
            self._line(f"u.surface_create.format {self._d(c.format)}")
            self._line(f"u.surface_create.width {self._d(c.width)}")
            self._line(f"u.surface_create.height {self._d(c.height)}")
            self._line(f"u.surface_create.stride {c.stride}")
            if cmd.flags & lib.QXL_SURF_FLAG_KEEP_DATA:
                size = c.height * abs(c.stride)
                if data is None or len(data) != size:
                    raise ValueError(f"KEEP_DATA surface needs {size} bytes of data")
                self._blob("data", data)

    def _cursor(self, cmd: CursorCmd) -> None:
        self._event(0, lib.QXL_CMD_CURSOR)
        self._line("cursor_cmd")
        self._line(f"type {cmd.type}")
        if cmd.type == lib.QXL_CURSOR_SET:
            self._line(f"point16 {cmd.position.x} {cmd.position.y}")
            self._line(f"u.set.visible {int(cmd.visible)}")
            shape = cmd.shape or CursorShapeData(0, 0, 0, 0, 0, 0, b"")
            self._line(f"header.unique {shape.unique}")
            self._line(f"header.type {shape.type}")
            self._line(f"header.width {shape.width}")
            self._line(f"header.height {shape.height}")
            self._line(f"header.hot_spot_x {shape.hot_spot_x}")
            self._line(f"header.hot_spot_y {shape.hot_spot_y}")
            self._line(f"data_size {len(shape.data)}")
            self._chunks("cursor", shape.data)
        elif cmd.type == lib.QXL_CURSOR_MOVE:
            self._line(f"point16 {cmd.position.x} {cmd.position.y}")
        elif cmd.type == lib.QXL_CURSOR_TRAIL:
            self._line(f"u.trail.length {cmd.trail_length}")
            self._line(f"u.trail.frequency {cmd.trail_frequency}")

    def worker_message(self, message: WorkerMessage, primary: PrimarySurface | None = None
                       ) -> None:
        """One WHAT=1 event; CREATE_PRIMARY_SURFACE(_ASYNC) need `primary`."""
        if (message in PRIMARY_MESSAGES) != (primary is not None):
            raise ValueError(f"{message.name}: primary surface given where not expected "
                             "or missing where required")
        self._whole(self._worker_message, message, primary)

    def _worker_message(self, message: WorkerMessage, primary: PrimarySurface | None) -> None:
        self._event(1, int(message))
        if primary is not None:
            p = primary
            self._line(f"{self._d(p.width)} {self._d(p.height)} {p.stride} {self._d(p.format)}")
            self._line(f"{self._d(p.position)} {self._d(p.mouse_mode)} {self._d(p.flags)} "
                       f"{self._d(p.type)}")
            self._blob("data", p.data)

    def write(self, event: Event) -> None:
        if isinstance(event, CommandEvent):
            self.command(event.command, event.surface_data)
        else:
            self.worker_message(event.message, event.primary)
