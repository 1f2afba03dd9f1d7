"""The device fuzzer's generators, shared by tests/device/test_fuzz.py (hypothesis drives
them and shrinks what fails) and `vgpu bench soak --fuzz` (a seeded random source drives
them at scale).

Each case starts from a reset device with a primary and one off-screen surface,
then does one to three hostile things: random bytes pushed as commands, valid
commands with bytes mutated (counts, sizes, pointers, chunk links aimed back at
themselves), a corrupted ring, random values in the RAM header's IO parameters
followed by random IO port writes. After each case: nothing escaped, the device
made no internal error, a device in the guest-bug state raised ERROR, and the
next case's reset + setup works (the device is sane again).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from typing import TypeVar

from fuzz_draw import Draw, run_actions
from qxl_support import RecordingBackend

from vgpu.device import commands as c
from vgpu.device.abi import lib, offsetof, sizeof
from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.device.memory import GuestBug
from vgpu.guest.builders import COMMAND_TYPES, CommandWriter
from vgpu.guest.driver import GuestDriver

T = TypeVar("T")

NO_MASK = c.QMask(0, c.QPoint(0, 0), None)


def _templates() -> list[c.Command]:
    """Valid commands of every kind, the seeds that mutation starts from."""
    rng = random.Random(7)
    desc = c.ImageDescriptor(5, lib.SPICE_IMAGE_TYPE_BITMAP, 0, 4, 3)
    pal_bitmap = c.BitmapImage(desc, lib.SPICE_BITMAP_FMT_8BIT, 0, 4, 3, 4,
                               c.Palette(1, (0, 0xFFFFFF, 0x00FF00)), rng.randbytes(12))
    direct = c.BitmapImage(desc, lib.SPICE_BITMAP_FMT_32BIT, lib.QXL_BITMAP_DIRECT, 4, 3, 16,
                           None, rng.randbytes(48))
    big = c.BitmapImage(desc, lib.SPICE_BITMAP_FMT_RGBA, lib.QXL_BITMAP_TOP_DOWN, 40, 20, 160,
                        None, rng.randbytes(3200))  # several chunks
    surf = c.SurfaceImage(c.ImageDescriptor(6, lib.SPICE_IMAGE_TYPE_SURFACE, 0, 8, 8), 1)
    quic = c.CompressedImage(c.ImageDescriptor(7, lib.SPICE_IMAGE_TYPE_QUIC, 0, 8, 8),
                             rng.randbytes(1500))
    mask = c.QMask(1, c.QPoint(1, 2), direct)
    clip = tuple(c.QRect(i, i, i + 5, i + 5) for i in range(70))
    glyphs = c.GlyphString(lib.SPICE_STRING_FLAGS_RASTER_A4, tuple(
        c.RasterGlyph(c.QPoint(i, 0), c.QPoint(0, 0), 5, 4, rng.randbytes(12)) for i in range(9)))
    ops: list[c.DrawOp] = [
        c.Fill(c.SolidBrush(0xFF), 8, NO_MASK),
        c.Fill(c.PatternBrush(pal_bitmap, c.QPoint(1, 1)), 8, mask),
        c.Opaque(big, c.QRect(0, 0, 20, 40), c.SolidBrush(1), 8, 0, NO_MASK),
        c.Copy(surf, c.QRect(0, 0, 8, 8), 8, 0, NO_MASK),
        c.Blend(quic, c.QRect(0, 0, 8, 8), 8, 1, NO_MASK),
        c.Blackness(mask), c.Whiteness(NO_MASK), c.Invers(NO_MASK),
        c.Rop3(direct, c.QRect(0, 0, 3, 4), c.SolidBrush(2), 0x66, 0, NO_MASK),
        c.Stroke((c.PathSeg(1, ((0, 0), (16, 16), (32, 0))), c.PathSeg(2, ((5, 5),))),
                 c.LineAttr(lib.SPICE_LINE_FLAGS_STYLED, (16, 32, 48)), c.SolidBrush(3), 8, 8),
        c.Text(glyphs, c.QRect(0, 0, 10, 50), c.SolidBrush(0), None, 8, 8),
        c.Transparent(direct, c.QRect(0, 0, 3, 4), 0, 1),
        c.AlphaBlend(1, 128, big, c.QRect(0, 0, 20, 40)),
        c.Composite(0x80003, direct, pal_bitmap, (1, 0, 0, 0, 1, 0), None, c.QPoint(0, 0),
                    c.QPoint(1, 1)),
        c.CopyBits(c.QPoint(3, 3)), c.Nop(),
    ]
    out: list[c.Command] = [
        c.Drawable(bbox=c.QRect(0, 0, 20, 40), clip=clip if i % 3 == 0 else None, effect=1,
                   mm_time=i, surface_id=0 if i % 2 else 1, surfaces_dest=(-1, 1, -1), op=op)
        for i, op in enumerate(ops)]
    shape = c.CursorShapeData(9, lib.SPICE_CURSOR_TYPE_ALPHA, 32, 32, 1, 1, rng.randbytes(4096))
    out += [
        c.CursorCmd(0, lib.QXL_CURSOR_SET, c.QPoint(5, 5), True, shape, 0, 0),
        c.CursorCmd(0, lib.QXL_CURSOR_MOVE, c.QPoint(5, 5), False, None, 0, 0),
        c.CursorCmd(0, lib.QXL_CURSOR_TRAIL, c.QPoint(0, 0), False, None, 3, 4),
        c.UpdateCmd(0, c.QRect(0, 0, 8, 8), 1, 0),
        c.MessageCmd(0, b"a message from the guest"),
        c.SurfaceCmd(0, 2, lib.QXL_SURFACE_CMD_DESTROY, 0, None),
    ]
    return out


TEMPLATES = _templates()

# Values that make parsers fall over: zero, all ones, sign bits, just-too-large counts.
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x10000, 0x4000, 2**63, 2**64 - 1]


class Rig:
    """One device and one inline guest, reset before every case."""

    def __init__(self) -> None:
        self.backend = RecordingBackend()
        self.device = Device(self.backend, ram_size=4 << 20, vram_size=1 << 20, n_surfaces=16)
        # inline: every IO completes before io_write returns, so any interrupt the guest
        # waits for is there at once or never (a ring it corrupted itself)
        self.guest = GuestDriver(InProcessAttachment(self.device, inline=True), chunk_size=512,
                                 irq_timeout=0.01)
        self.cases = 0
        self.pushed = 0  # hostile commands put on the rings
        self.io = 0  # hostile port writes
        self.guest_saw_error = False

    def fresh(self) -> None:
        self.guest_saw_error = False
        self.backend.calls.clear()
        self.backend.executed.clear()
        self.guest.reset()
        self.guest.create_primary(64, 48)
        self.guest.create_surface(1, 64, 48)
        assert self.device.guest_bug is None, self.device.guest_bug  # sane again

    def check(self) -> None:
        dev = self.device
        assert dev.internal_errors == 0
        assert dev.backend_errors == 0
        if dev.guest_bug is not None:
            assert dev.guest_bug
            pending = struct.unpack_from("<I", dev.mem.mm, dev._hdr + offsetof(
                "QXLRam", "int_pending"))[0]
            seen = pending | self.guest._pending_irqs
            assert seen & lib.QXL_INTERRUPT_ERROR or self.guest_saw_error
        self.cases += 1


# --- actions ------------------------------------------------------------------------


def _expect_bug_if_untranslatable(rig: Rig, addr: int) -> None:
    try:
        rig.device.slots.translate(addr, 8)
    except GuestBug:
        assert rig.device.guest_bug is not None


IO_PARAMS = (offsetof("QXLRam", "update_area"), sizeof("QXLRam") - 1)
LAST_PORT = lib.QXL_IO_RANGE_SIZE + 3  # a few past the range, which is a guest bug


def pick(draw: Draw, options: Sequence[T]) -> T:
    return options[draw.integer(0, len(options) - 1)]


def raw_command(rig: Rig, draw: Draw) -> None:
    """Random bytes pushed as a command, at a valid, random or nearly valid address."""
    g = rig.guest
    data = draw.binary(1, 400)
    off = g.ram_alloc.alloc(len(data))
    g.buf[off:off + len(data)] = data
    how = draw.integer(0, 2)
    addr = (g.phys(off) if how == 0 else draw.integer(0, 2**64 - 1) if how == 1
            else (g.phys(off) + draw.integer(-64, 64)) % 2**64)
    cmd_type = draw.integer(0, 7)
    bugged = rig.device.guest_bug is not None
    g.push_raw(pick(draw, ["cmd", "cmd", "cmd", "cursor"]), addr, cmd_type)
    rig.pushed += 1
    if cmd_type != lib.QXL_CMD_NOP and not bugged:  # a NOP's address is never looked at
        _expect_bug_if_untranslatable(rig, addr)


def mutated_command(rig: Rig, draw: Draw) -> None:
    """A valid command with 1-4 mutations: random bytes, interesting numbers, pointers back
    into its own blocks (loops, overlaps), pointers just outside the memslot."""
    g = rig.guest
    cmd = pick(draw, TEMPLATES)
    before = set(g.ram_alloc._used)
    addr = CommandWriter(g.buf, g.ram_alloc.alloc, g.phys, 512).write(cmd, 1)
    blocks = sorted(set(g.ram_alloc._used) - before)
    slot_end = g.layout.ram_offset + g.rom.ram_header_offset
    for _ in range(1 if draw.integer(0, 1) else 1 + draw.integer(0, 3)):  # often just one
        block = blocks[int(draw.fraction() * len(blocks))]
        size = g.ram_alloc._used[block] - block
        pos = block + int(draw.fraction() * size)
        kind = draw.integer(0, 3)
        if kind == 0:
            junk = draw.binary(1, 8)
        elif kind == 1:
            width = pick(draw, [1, 2, 4, 8])
            junk = (pick(draw, INTERESTING) % 2**(8 * width)).to_bytes(width, "little")
        elif kind == 2:
            junk = g.phys(blocks[int(draw.fraction() * len(blocks))]).to_bytes(8, "little")
        else:
            junk = g.phys(slot_end - draw.integer(0, 16)).to_bytes(8, "little")
        end = min(pos + len(junk), block + size)
        g.buf[pos:end] = junk[:end - pos]
    cursor = isinstance(cmd, c.CursorCmd)
    cmd_type = COMMAND_TYPES[type(cmd)] if draw.integer(0, 3) else draw.integer(0, 6)
    g.push_raw("cursor" if cursor else "cmd", addr, cmd_type)
    rig.pushed += 1


def ring_corruption(rig: Rig, draw: Draw) -> None:
    """A ring index or notify field set to anything, then a doorbell."""
    g = rig.guest
    ring = pick(draw, [g.cmd_ring, g.cursor_ring, g.release_ring])
    field = pick(draw, ["prod", "cons", "notify_on_prod", "notify_on_cons", "num_items"])
    ring.set(field, pick(draw, INTERESTING) % 2**32 if draw.integer(0, 1)
             else draw.integer(0, 2**32 - 1))
    g.att.io_write(pick(draw, [lib.QXL_IO_NOTIFY_CMD, lib.QXL_IO_NOTIFY_CURSOR,
                               lib.QXL_IO_FLUSH_RELEASE]), 0)
    rig.io += 1


def io_storm(rig: Rig, draw: Draw) -> None:
    """Junk in the RAM header's IO parameters, then 1-3 writes to any port."""
    g = rig.guest
    if draw.integer(0, 1):
        pos = draw.integer(*IO_PARAMS)
        junk = draw.binary(1, 48)
        end = min(pos + len(junk), sizeof("QXLRam"))
        g.buf[g.hdr + pos:g.hdr + end] = junk[:end - pos]
    for _ in range(1 + draw.integer(0, 2)):
        port = draw.integer(0, LAST_PORT)
        value = draw.integer(0, 20) if draw.integer(0, 1) else pick(draw, INTERESTING) % 2**32
        if port == lib.QXL_IO_RESET:
            continue  # the next case's reset comes anyway
        g.att.io_write(port, value)
        rig.io += 1
        if port >= lib.QXL_IO_RANGE_SIZE:
            assert rig.device.guest_bug is not None


ACTIONS = [raw_command, mutated_command, ring_corruption, io_storm]


def run_case(rig: Rig, draw: Draw) -> None:
    """One case: a fresh device, one to three hostile actions, then the checks."""
    run_actions(rig, draw, ACTIONS)
