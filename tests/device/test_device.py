"""The device's IO ports, interrupts, rings, releases and guest-bug state."""

from __future__ import annotations

import dataclasses
import struct
import threading
import time

import numpy as np
import pytest

from vgpu.device import commands as c
from vgpu.device.abi import lib, offsetof, sizeof
from vgpu.device.device import Device
from vgpu.device.inprocess import DeviceThread, InProcessAttachment
from vgpu.device.memory import GuestBug, GuestMemory, MemoryLayout, MemSlots
from vgpu.display import InputEvent
from vgpu.guest.alloc import OutOfMemory
from vgpu.guest.builders import CommandWriter
from vgpu.guest.driver import DeviceError, GuestDriver

pytestmark = pytest.mark.timeout(60)

NO_MASK = c.QMask(0, c.QPoint(0, 0), None)


def fill(bbox: c.QRect | None = None, surface_id: int = 0, color: int = 0xFF0000) -> c.Drawable:
    return c.Drawable(bbox=bbox or c.QRect(0, 0, 10, 10), effect=lib.QXL_EFFECT_OPAQUE,
                      surface_id=surface_id,
                      op=c.Fill(c.SolidBrush(color), lib.SPICE_ROPD_OP_PUT, NO_MASK))


def ram_u32(device: Device, field: str) -> int:
    return struct.unpack_from("<I", device.mem.mm, device._hdr + offsetof("QXLRam", field))[0]


# --- memory and memslots -------------------------------------------------------------


def test_translation_checks_slot_generation_and_bounds() -> None:
    mem = GuestMemory(MemoryLayout(8192, 65536, 65536))
    slots = MemSlots(mem, 4, 8, 8)
    slots.add(1, 8192, 8192 + 4096, 7)
    addr = slots.address(1, 8192 + 100)
    assert slots.translate(addr, 10) == 8192 + 100
    assert slots.translate(addr, 3996) == 8192 + 100
    for bad_addr, length in [
        (addr, 3997),  # one byte past the slot
        (addr, 2**70),  # a length no integer type would hold
        (addr ^ (1 << 48), 1),  # other generation
        (slots.address(1, 8192) - 1, 1),  # before the slot
        ((2 << 56) | (7 << 48) | 8192, 1),  # inactive slot
        ((200 << 56) | 8192, 1),  # slot id out of range
        (0, 1),  # NULL
    ]:
        with pytest.raises(GuestBug):
            slots.translate(bad_addr, length)
    with pytest.raises(GuestBug):
        slots.add(1, 8192, 9000, 0)  # already active
    with pytest.raises(GuestBug):
        slots.add(2, 0, 4096, 0)  # the ROM is no memslot's
    with pytest.raises(GuestBug):
        slots.add(2, 8192 + 60000, 8192 + 70000, 0)  # across RAM and VRAM
    mem.close()


def test_rom_announces_layout_and_extension(device: Device) -> None:
    rom = device.rom
    assert rom.magic == lib.QXL_ROM_MAGIC
    assert rom.n_surfaces == 64
    assert (rom.slot_id_bits, rom.slot_gen_bits, rom.slots_start) == (8, 8, 1)
    assert rom.ram_header_offset + offsetof("QXLRam", "monitors_config") + 8 <= \
        device.layout.ram_size
    assert device.ext.magic == lib.VGPU_ROM_EXT_MAGIC
    assert device.ext.features & lib.VGPU_FEATURE_INPUT_RING
    modes = device.mem.ptr("QXLModes", rom.modes_offset)
    assert modes.n_modes == len(device.modes) > 0
    assert ram_u32(device, "magic") == lib.QXL_RAM_MAGIC


# --- primary surface, update area ------------------------------------------------------


@pytest.mark.parametrize("negative", [False, True])
def test_primary_initial_content_and_update_area_writeback(device, guest, backend,
                                                          negative) -> None:
    w, h = 64, 32
    stride = -w * 4 if negative else w * 4
    off = guest.surface0.start
    content = np.arange(h * w * 4, dtype=np.uint32).astype(np.uint8).tobytes()
    guest.buf[off:off + len(content)] = content
    # spice-server takes the memory as the first picture only with KEEP_DATA (else black)
    guest.create_primary(w, h, stride=stride)
    assert backend.calls[-1][:6] == ("create_primary", w, h, stride,
                                     lib.SPICE_SURFACE_FMT_32_xRGB, None)
    guest.destroy_primary()
    guest.buf[off:off + len(content)] = content
    guest.create_primary(w, h, stride=stride, flags=lib.QXL_SURF_FLAG_KEEP_DATA)
    call = backend.calls[-1]
    assert call[:5] == ("create_primary", w, h, stride, lib.SPICE_SURFACE_FMT_32_xRGB)
    rows = np.frombuffer(content, np.uint8).reshape(h, w * 4)
    assert np.array_equal(call[5], rows[::-1] if negative else rows)

    area = c.QRect(3, 5, 9, 20)
    guest.update_area(0, area)
    assert device.guest_bug is None
    assert backend.calls[-1] == ("read_area", 0, area)
    mem = np.frombuffer(guest.buf, np.uint8, h * w * 4, off).reshape(h, w * 4)
    top_down = mem[::-1] if negative else mem
    px = top_down.view("<u4")
    for y in (3, 8):
        for x in (5, 19):
            assert px[y, x] == (y << 16 | x)  # the backend's pattern landed at (x, y)
    assert px[2, 5] != (2 << 16 | 5) or content[0] == 0  # outside the area: untouched
    assert px[9, 5] == top_down.view("<u4")[9, 5]


def test_update_area_writes_back_only_the_pieces_given(device, guest, backend,
                                                      monkeypatch) -> None:
    """A backend may answer with parts of the area; an answer that is not a list of pieces
    inside the area with uint8 pixels of their size is refused whole, before anything is
    written, with a log line (the backend's defect, not a guest bug)."""
    w, h = 64, 32
    guest.create_primary(w, h)
    mem = np.frombuffer(guest.buf, np.uint8, h * w * 4, guest.surface0.start).reshape(h, w * 4)
    before = mem.copy()
    piece = (c.QRect(4, 8, 6, 12), np.full((2, 16), 7, np.uint8))
    monkeypatch.setattr(backend, "read_area", lambda sid, area: [piece])
    guest.update_area(0, c.QRect(0, 0, 32, 64))
    changed = np.argwhere(mem != before)
    assert {tuple(i) for i in changed} <= {(y, x) for y in (4, 5) for x in range(32, 48)}
    assert (mem[4:6, 32:48] == 7).all()
    outside = (c.QRect(30, 0, 40, 2), np.zeros((10, 8), np.uint8))
    wrong_size = (c.QRect(0, 0, 2, 2), np.zeros((3, 8), np.uint8))
    other = (c.QRect(4, 8, 6, 12), np.full((2, 16), 9, np.uint8))  # fits, and would show
    floats = (c.QRect(4, 8, 6, 12), np.full((2, 16), 9.0))  # right shape, not bytes
    for answer in ([outside], [wrong_size], None, "pixels", [("x", None)], [other, outside],
                   [floats]):
        monkeypatch.setattr(backend, "read_area", lambda sid, area, a=answer: a)
        before = mem.copy()
        guest.update_area(0, c.QRect(0, 0, 32, 64))
        assert device.guest_bug is None and (mem == before).all()


def test_update_area_beyond_the_surface_is_clamped(device, guest, backend) -> None:
    # spice-server renders an area as given; QEMU refuses only negative or inverted ones
    guest.create_primary(64, 32)
    guest.update_area(0, c.QRect(0, 60, 33, 100))
    guest.update_area(0, c.QRect(40, 0, 50, 10))  # wholly below: nothing to render
    assert device.guest_bug is None
    assert [call[2] for call in backend.calls if call[0] == "read_area"] == [
        c.QRect(0, 60, 32, 64)]


@pytest.mark.parametrize("area", [c.QRect(-1, 0, 4, 4), c.QRect(0, 5, 4, 4)])
def test_update_area_negative_or_inverted_is_a_guest_bug(device, guest, area) -> None:
    guest.create_primary(64, 32)
    with pytest.raises(DeviceError):
        guest.update_area(0, area)
        guest.wait_interrupt(lib.QXL_INTERRUPT_IO_CMD, 0.1)
    assert "not an area" in device.guest_bug


def test_async_ops_complete_with_io_cmd(device, guest, backend) -> None:
    guest.create_primary(64, 32, async_=True)
    assert 0 in device.surfaces
    guest.update_area(0, c.QRect(0, 0, 4, 4), async_=True)
    guest.flush_surfaces()
    guest.monitors_config([(0, 0, 64, 32, 0, 0, 0), (1, 0, 32, 32, 64, 0, 0)], max_allowed=4)
    assert [m.width for m in device.monitors] == [64, 32]
    guest.destroy_primary(async_=True)
    assert 0 not in device.surfaces
    assert device.guest_bug is None


def test_second_async_in_flight_is_a_guest_bug(device) -> None:
    device.io_write(lib.QXL_IO_FLUSH_SURFACES_ASYNC, 0)
    device.io_write(lib.QXL_IO_FLUSH_SURFACES_ASYNC, 0)  # before the first completed
    device.process()
    assert "in flight" in device.guest_bug
    assert ram_u32(device, "int_pending") & lib.QXL_INTERRUPT_ERROR
    device.io_write(lib.QXL_IO_RESET, 0)
    device.process()
    assert device.guest_bug is None


def test_double_create_primary_then_reset(device, guest, backend) -> None:
    guest.create_primary(64, 32)
    with pytest.raises(DeviceError):
        guest.create_primary(64, 32, async_=True)
    assert "twice" in device.guest_bug
    guest.submit(fill())  # ignored while in the guest-bug state
    assert backend.executed == []
    guest.reset()
    assert device.guest_bug is None and ("reset",) in backend.calls
    guest.create_primary(64, 32)
    guest.submit(fill())
    assert len(backend.executed) == 1


@pytest.mark.parametrize("port,value,why", [
    (lib.QXL_IO_RANGE_SIZE, 0, "unknown IO port"),
    (lib.QXL_IO_MEMSLOT_ADD, 0, "out of range"),  # slot 0 belongs to SET_MODE
    (lib.QXL_IO_MEMSLOT_ADD, 99, "out of range"),
    (lib.QXL_IO_SET_MODE, 1000, "mode"),
    (lib.QXL_IO_DESTROY_SURFACE_WAIT, 64, "out of range"),
    (lib.QXL_IO_UPDATE_AREA, 0, "does not exist"),
    (lib.QXL_IO_CREATE_PRIMARY, 0, "format"),
])
def test_bad_io_is_a_guest_bug(device, capture, port, value, why) -> None:
    device.io_write(port, value)
    device.process()
    assert why in device.guest_bug
    assert capture.bugs == [device.guest_bug]


# --- rings, notify, releases --------------------------------------------------------------


class LazyDoorbells(InProcessAttachment):
    """Runs the device for every IO write except the doorbells: commands pile up in the
    ring until the test calls device.process() itself."""

    def io_write(self, port: int, value: int) -> None:
        self.device.io_write(port, value)
        if port not in (lib.QXL_IO_NOTIFY_CMD, lib.QXL_IO_NOTIFY_CURSOR):
            while self.device.process():
                pass


def test_release_chaining_and_doorbells(device, backend, capture) -> None:
    guest = GuestDriver(LazyDoorbells(device))
    ring = guest.cmd_ring
    assert ring.get("notify_on_prod") == 1  # the device asks for a doorbell on the first push
    sid = 3
    off = guest.vram_alloc.alloc(64 * 64 * 4)
    guest.submit(c.SurfaceCmd(0, sid, 0, 0, c.SurfaceCreate(32, 64, 64, 256, off, 64 * 64 * 4)))
    for i in range(29):
        guest.submit(fill(surface_id=sid, color=i))
    assert ring.get("prod") == 30
    device.process()
    assert device.guest_bug is None and len(backend.executed) == 29
    assert guest.release_ring.get("prod") == 1  # one slot holds the whole chain
    assert guest.collect_releases() == 30 and guest.outstanding == 0
    assert guest.ram_alloc.used_bytes == 0
    # the device is idle: it asked for a doorbell on the next push
    assert ring.get("notify_on_prod") == ring.get("prod") + 1
    guest.close()


def _hog(alloc) -> None:
    """Takes every free block of the allocator (within its alignment)."""
    size = alloc.end - alloc.start
    while size >= alloc.align:
        try:
            alloc.alloc(size)
        except OutOfMemory:
            size //= 2


def test_out_of_command_memory_keeps_collecting_releases(device, backend) -> None:
    # A release ring full of small releases, more chained inside the device, and a
    # request larger than what the ring gives back: the driver must go on asking
    # (NOTIFY_OOM pushes the chain once the ring has room) instead of giving up.
    guest = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1 << 20,
                        irq_timeout=2.0)
    guest.create_primary(64, 64)
    for i in range(2000):  # no collect_releases: the ring fills, the chain grows
        guest.submit(fill(color=i))
    assert guest.release_ring.get("prod") - guest.release_ring.get("cons") \
        == lib.QXL_RELEASE_RING_SIZE - 1
    _hog(guest.ram_alloc)
    image = c.BitmapImage(c.ImageDescriptor(1, lib.SPICE_IMAGE_TYPE_BITMAP, 0, 128, 128),
                          lib.SPICE_BITMAP_FMT_32BIT, lib.QXL_BITMAP_TOP_DOWN, 128, 128, 512,
                          None, bytes(128 * 512))
    guest.submit(c.Drawable(bbox=c.QRect(0, 0, 64, 64), effect=lib.QXL_EFFECT_OPAQUE,
                            op=c.Copy(image, c.QRect(0, 0, 64, 64), lib.SPICE_ROPD_OP_PUT, 0,
                                      NO_MASK)))
    assert device.guest_bug is None and len(backend.executed) == 2001
    assert guest.flush_release() == 1 and guest.outstanding == 0
    guest.close()


def test_command_larger_than_memory_is_out_of_memory(device) -> None:
    guest = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1 << 20)
    _hog(guest.ram_alloc)
    with pytest.raises(OutOfMemory):  # nothing outstanding: at once, no waiting
        guest.submit(fill())
    assert guest.outstanding == 0
    guest.close()


def test_full_command_ring_waits_for_room(device, backend) -> None:
    with DeviceThread(device):
        guest = GuestDriver(InProcessAttachment(device))
        guest.create_primary(64, 64)
        for i in range(200):  # far more than the ring holds
            guest.submit(fill(color=i))
        guest.update_area(0, c.QRect(0, 0, 1, 1))  # synchronous: all before it is done
        assert len(backend.executed) == 200
        assert [d.op.brush.color for d in backend.executed] == list(range(200))
        while guest.outstanding:
            guest.flush_release()
    assert device.guest_bug is None
    guest.close()


def test_corrupt_producer_index_is_a_guest_bug(device, guest) -> None:
    guest.create_primary(64, 32)
    guest.cmd_ring.set("prod", guest.cmd_ring.get("cons") + 1000)
    guest.att.io_write(lib.QXL_IO_NOTIFY_CMD, 0)
    assert "ahead" in device.guest_bug


def test_cursor_ring_feeds_cursor_sink(backend) -> None:
    seen = []
    dev = Device(backend, ram_size=8 << 20, vram_size=4 << 20, cursor_sink=seen.append)
    guest = GuestDriver(InProcessAttachment(dev, inline=True))
    shape = c.CursorShapeData(7, lib.SPICE_CURSOR_TYPE_ALPHA, 2, 2, 1, 1, bytes(16))
    guest.submit(c.CursorCmd(0, lib.QXL_CURSOR_SET, c.QPoint(5, 6), True, shape, 0, 0))
    guest.submit(c.CursorCmd(0, lib.QXL_CURSOR_MOVE, c.QPoint(7, 8), False, None, 0, 0))
    assert [s.type for s in seen] == [lib.QXL_CURSOR_SET, lib.QXL_CURSOR_MOVE]
    assert seen[0].shape == shape
    guest.close()
    dev.close()


# --- interrupts ----------------------------------------------------------------------------


def test_interrupt_line_follows_pending_and_mask(device) -> None:
    levels = []
    device.add_irq_listener(levels.append)
    hdr = device._hdr
    struct.pack_into("<I", device.mem.mm, hdr + offsetof("QXLRam", "int_mask"), 0)
    device.io_write(lib.QXL_IO_FLUSH_SURFACES_ASYNC, 0)
    device.process()
    assert ram_u32(device, "int_pending") == lib.QXL_INTERRUPT_IO_CMD
    assert levels[-1] is False  # masked
    struct.pack_into("<I", device.mem.mm, hdr + offsetof("QXLRam", "int_mask"),
                     lib.QXL_INTERRUPT_IO_CMD)
    device.io_write(lib.QXL_IO_UPDATE_IRQ, 0)
    device.process()
    assert levels[-1] is True
    struct.pack_into("<I", device.mem.mm, hdr + offsetof("QXLRam", "int_pending"), 0)
    device.io_write(lib.QXL_IO_UPDATE_IRQ, 0)
    device.process()
    assert levels[-1] is False


def test_in_process_irq_line_sleeps_until_raised_or_timeout(device) -> None:
    att = InProcessAttachment(device)
    struct.pack_into("<I", device.mem.mm, device._hdr + offsetof("QXLRam", "int_mask"),
                     lib.QXL_INTERRUPT_IO_CMD)
    t0 = time.monotonic()
    assert att.wait_irq(0.05) is False and att.irq_level() is False  # low: times out
    assert time.monotonic() - t0 >= 0.045
    assert att.wait_irq(0) is False
    woke: list[tuple[bool, float]] = []

    def waiter() -> None:
        woke.append((att.wait_irq(10), time.monotonic()))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)  # the waiter sleeps on the line meanwhile
    assert not woke
    raised = time.monotonic()
    device.io_write(lib.QXL_IO_FLUSH_SURFACES_ASYNC, 0)  # IO_CMD raises the line
    device.process()
    t.join(5)
    assert woke and woke[0][0] is True and woke[0][1] - raised < 1.0
    assert att.irq_level() is True and att.wait_irq(None) is True  # high: no wait
    struct.pack_into("<I", device.mem.mm, device._hdr + offsetof("QXLRam", "int_pending"), 0)
    device.io_write(lib.QXL_IO_UPDATE_IRQ, 0)
    assert att.irq_level() is False
    att.close()


def test_threaded_guest_waits_for_interrupts(device, backend) -> None:
    errors = []

    def guest_main() -> None:
        try:
            g = GuestDriver(InProcessAttachment(device))
            g.create_primary(128, 64, async_=True)
            for i in range(50):
                g.submit(fill(color=i))
            g.update_area(0, c.QRect(0, 0, 64, 128))
            g.log("hello from the guest")
            g.notify_oom()
            g.destroy_all_surfaces(async_=True)
            g.close()
        except Exception as e:  # reported to the test thread
            errors.append(e)

    with DeviceThread(device):
        t = threading.Thread(target=guest_main)
        t.start()
        t.join(30)
    assert not t.is_alive() and errors == []
    assert len(backend.executed) == 50 and device.guest_bug is None
    assert 0 not in device.surfaces


# --- input ring -----------------------------------------------------------------------------


def test_input_ring_delivers_and_drops_when_full(device, guest) -> None:
    assert guest.read_input() == []  # also asks for an interrupt on the next event
    ev = [InputEvent("key_down", 30), InputEvent("mouse_position", 0, 10, -20, 1, 0),
          InputEvent("mouse_release", 2, buttons=0)]
    for e in ev:
        assert device.push_input(e)
    assert guest.take_interrupts() & lib.VGPU_INTERRUPT_INPUT
    assert guest.read_input() == ev
    for i in range(lib.VGPU_INPUT_RING_SIZE):
        assert device.push_input(InputEvent("key_up", i))
    assert not device.push_input(InputEvent("key_up", 999))
    assert device.ext.input_dropped == 1
    got = guest.read_input()
    assert [e.code for e in got] == list(range(lib.VGPU_INPUT_RING_SIZE))
    with pytest.raises(ValueError):
        device.push_input(InputEvent("telepathy"))


# --- commands that break the rules ------------------------------------------------------------


def test_draws_outside_or_on_missing_surfaces_are_dropped(device, guest, backend) -> None:
    # as spice-server's validate_drawable_bbox: released, never drawn, no guest bug. Linux's
    # qxl DRM driver blits 1024x768 onto the 64x64 primary it makes while changing modes.
    guest.create_primary(64, 64)
    for d in (fill(bbox=c.QRect(0, 0, 768, 1024)), fill(bbox=c.QRect(0, 0, 65, 10)),
              fill(bbox=c.QRect(-1, 0, 10, 10)), fill(bbox=c.QRect(5, 0, 4, 10)),
              fill(surface_id=9), fill(surface_id=70000),
              dataclasses.replace(fill(), surfaces_dest=(3, -1, -1))):
        guest.submit(d)
    guest.submit(fill(bbox=c.QRect(0, 0, 64, 64)))
    guest.collect_releases()
    assert device.guest_bug is None
    assert device.stats["dropped"] == 7 and device.stats["released"] == 8
    assert [tuple(d.bbox) for d in backend.executed] == [(0, 0, 64, 64)]


def test_chunk_loop_is_a_guest_bug(device, guest) -> None:
    guest.create_primary(64, 32)
    d = fill()
    looped = dataclasses.replace(d, clip=tuple(c.QRect(0, 0, 1, 1) for _ in range(200)))
    guest.submit(looped)  # 3200 bytes of clip rects: four 1 KiB chunks
    assert device.guest_bug is None
    before = set(guest.ram_alloc._used)
    addr = CommandWriter(guest.buf, guest.ram_alloc.alloc, guest.phys, 1024).write(looped, 99)
    new = sorted(set(guest.ram_alloc._used) - before)  # drawable, clip head, 3 more chunks
    clip_block = next(b for b in new if struct.unpack_from("<I", guest.buf, b)[0] == 200)
    struct.pack_into("<Q", guest.buf, new[-1] + offsetof("QXLDataChunk", "next_chunk"),
                     guest.phys(clip_block + offsetof("QXLClipRects", "chunk")))
    guest.push_raw("cmd", addr, lib.QXL_CMD_DRAW)
    assert "chunk chain" in device.guest_bug


def test_message_needs_a_terminator(device, guest) -> None:
    guest.submit(c.MessageCmd(0, b"hello"))
    assert device.guest_bug is None
    # a message at the very end of the slot with no NUL before the slot ends
    end = guest.layout.ram_offset + guest.rom.ram_header_offset
    off = end - 16
    guest.buf[off:end] = b"\x01" * 16
    guest.push_raw("cmd", guest.phys(off), lib.QXL_CMD_MESSAGE)
    assert "NUL" in device.guest_bug


def test_memslot_delete_invalidates_addresses(device, guest) -> None:
    guest.create_primary(64, 32)
    stale = dict(guest.slot_gens)
    guest.memslot_del(guest.main_slot)
    guest.slot_gens.update(stale)  # a buggy guest goes on using the slot
    guest.submit(fill())
    assert "not active" in device.guest_bug


def test_ram_header_fields_at_cffi_offsets(device, guest, backend) -> None:
    """The IO parameters and ring indexes, written and read through cffi's own view of
    QXLRam (not through the Layouts the device and driver share)."""
    ram = device.mem.ptr("QXLRam", device._hdr)
    cs = ram.create_surface
    off = guest.surface0.alloc(32 * 16 * 4)
    cs.width, cs.height, cs.stride, cs.format = 32, 16, 128, lib.SPICE_SURFACE_FMT_32_ARGB
    cs.mem = guest.phys(off)
    guest.att.io_write(lib.QXL_IO_CREATE_PRIMARY, 0)
    assert device.guest_bug is None
    assert backend.calls[-1][:5] == ("create_primary", 32, 16, 128, lib.SPICE_SURFACE_FMT_32_ARGB)
    ram.update_area.top, ram.update_area.left = 1, 2
    ram.update_area.bottom, ram.update_area.right = 3, 4
    ram.update_surface = 0
    guest.att.io_write(lib.QXL_IO_UPDATE_AREA, 0)
    assert backend.calls[-1] == ("read_area", 0, c.QRect(1, 2, 3, 4))
    guest.submit(fill())
    assert ram.cmd_ring.prod == ram.cmd_ring.cons == 1
    assert ram.cmd_ring.notify_on_prod == 2
    mon = guest.ram_alloc.alloc(64)
    cfg = device.mem.ptr("QXLMonitorsConfig", mon)
    cfg.count, cfg.max_allowed = 1, 1
    cfg.heads[0].width, cfg.heads[0].height = 32, 16
    ram.monitors_config = guest.phys(mon)
    guest.att.io_write(lib.QXL_IO_MONITORS_CONFIG_ASYNC, 0)
    assert device.monitors[0].width == 32 and device.monitors[0].height == 16
    ram.mem_slot.mem_start = guest.layout.vram_offset
    ram.mem_slot.mem_end = guest.layout.vram_offset + 4096
    guest.att.io_write(lib.QXL_IO_MEMSLOT_ADD, 5)
    assert device.slots.slots[5].start == guest.layout.vram_offset
    assert device.slots.slots[5].end == guest.layout.vram_offset + 4096
    assert device.slots.slots[5].generation == device.rom.slot_generation


def test_parser_reads_structs_written_through_cffi(device, guest) -> None:
    """A COPY drawable with a chunked bitmap and a clip list, laid out field by field with
    cffi (independent of the Layouts that parser and builders share)."""
    guest.create_primary(64, 32)
    mem = device.mem

    def new(ctype: str, extra: int = 0):
        size = sizeof(ctype) + extra
        off = guest.ram_alloc.alloc(size)
        mem.mm[off:off + size] = bytes(size)
        return off, mem.ptr(ctype, off)

    pixels = bytes(range(48))
    chunk_off, chunk = new("QXLDataChunk", 48)
    chunk.data_size = 48
    mem.mm[chunk_off + 20:chunk_off + 68] = pixels
    img_off, img = new("QXLImage")
    img.descriptor.id, img.descriptor.type = 77, lib.SPICE_IMAGE_TYPE_BITMAP
    img.descriptor.width, img.descriptor.height = 4, 3
    img.bitmap.format, img.bitmap.flags = lib.SPICE_BITMAP_FMT_32BIT, lib.QXL_BITMAP_TOP_DOWN
    img.bitmap.x, img.bitmap.y, img.bitmap.stride = 4, 3, 16
    img.bitmap.data = guest.phys(chunk_off)
    clip_off, clip = new("QXLClipRects", 32)
    clip.num_rects = 2
    clip.chunk.data_size = 32
    mem.mm[clip_off + 24:clip_off + 56] = struct.pack("<8i", 0, 0, 5, 5, 1, 2, 3, 4)
    d_off, d = new("QXLDrawable")
    d.release_info.id = 4242
    d.type, d.effect = lib.QXL_DRAW_COPY, lib.QXL_EFFECT_OPAQUE
    d.bbox.top, d.bbox.left, d.bbox.bottom, d.bbox.right = 1, 2, 4, 6
    d.clip.type, d.clip.data = lib.SPICE_CLIP_TYPE_RECTS, guest.phys(clip_off)
    d.surfaces_dest[0], d.surfaces_dest[1], d.surfaces_dest[2] = -1, -1, -1
    d.mm_time = 99
    d.u.copy.src_bitmap = guest.phys(img_off)
    d.u.copy.src_area.bottom, d.u.copy.src_area.right = 3, 4
    d.u.copy.rop_descriptor = lib.SPICE_ROPD_OP_PUT
    got = device.parser.drawable(guest.phys(d_off))
    assert got.release_id == 4242 and got.mm_time == 99
    assert got.bbox == c.QRect(1, 2, 4, 6)
    assert got.clip == (c.QRect(0, 0, 5, 5), c.QRect(1, 2, 3, 4))
    assert got.surfaces_dest == (-1, -1, -1)
    assert isinstance(got.op, c.Copy) and got.op.src_area == c.QRect(0, 0, 3, 4)
    img_v = got.op.src_bitmap
    assert img_v.descriptor.id == 77 and (img_v.width, img_v.height, img_v.stride) == (4, 3, 16)
    assert img_v.data == pixels and img_v.top_down


def test_client_monitors_config_reaches_the_guest(device, guest) -> None:
    device.set_client_monitors_config([(0, 0, 1024, 768), (1024, 0, 2048, 768)])
    assert guest.take_interrupts() & lib.QXL_INTERRUPT_CLIENT_MONITORS_CONFIG
    assert guest.client_monitors_config() == [(0, 0, 1024, 768), (1024, 0, 2048, 768)]
    assert device.rom.client_present == 1
    device.rom.client_monitors_config.heads[0].right = 5  # torn read: CRC no longer matches
    assert guest.client_monitors_config() is None


def test_destroy_surface_wait_and_flush_release_on_a_full_ring(device, guest, backend) -> None:
    guest.create_primary(64, 32)
    guest.create_surface(4, 8, 8)
    guest.destroy_surface_wait(4)
    assert backend.calls[-1] == ("surface_destroyed", 4)
    guest.destroy_surface_wait(0, async_=True)  # id 0 is the primary
    assert backend.calls[-1] == ("destroy_primary",) and 0 not in device.surfaces
    guest.create_primary(64, 32)
    for i in range(3 * lib.QXL_RELEASE_RING_SIZE):  # one ring slot per inline batch
        guest.submit(fill(color=i))
    ring = guest.release_ring
    # the device keeps one slot to chain into: a full ring is prod - cons == size - 1
    assert (ring.get("prod") - ring.get("cons")) == lib.QXL_RELEASE_RING_SIZE - 1
    guest.att.io_write(lib.QXL_IO_FLUSH_RELEASE, 0)  # no room: nothing pushed, no bug
    assert device.guest_bug is None
    assert guest.collect_releases() == lib.QXL_RELEASE_RING_SIZE - 1
    # the rest, chained in one slot: the surface create and the fills not yet taken
    assert guest.flush_release() == 1 + 3 * lib.QXL_RELEASE_RING_SIZE - (
        lib.QXL_RELEASE_RING_SIZE - 1)
    assert guest.outstanding == 0


def test_input_from_another_thread_while_the_device_runs(device) -> None:
    got = []
    with DeviceThread(device):
        guest = GuestDriver(InProcessAttachment(device))
        guest.read_input()

        def client() -> None:
            for i in range(500):
                while not device.push_input(InputEvent("mouse_motion", 0, i, -i)):
                    pass  # the guest has not caught up: try again

        t = threading.Thread(target=client)
        t.start()
        while len(got) < 500:
            guest.wait_interrupt(lib.VGPU_INTERRUPT_INPUT, 10)
            got += guest.read_input()
        t.join()
        guest.close()
    assert [(e.x, e.y) for e in got] == [(i, -i) for i in range(500)]


def test_backend_refusal_is_a_guest_bug_and_other_errors_are_counted(device, guest,
                                                                    backend) -> None:
    guest.create_primary(64, 32)

    def execute(cmd) -> None:  # the message names the backend method by its name
        raise ValueError("src_area outside the source")

    backend.execute = execute
    guest.submit(fill())
    assert device.guest_bug == "display backend refused execute: src_area outside the source"
    guest.reset()
    guest.create_primary(64, 32)

    def crash(cmd) -> None:
        raise RuntimeError("renderer defect")

    backend.execute = crash
    guest.submit(fill())
    assert device.guest_bug is None and device.backend_errors == 1


def test_guest_recovers_memory_through_releases_and_oom(backend) -> None:
    dev = Device(backend, ram_size=1 << 20, vram_size=1 << 20)
    guest = GuestDriver(InProcessAttachment(dev, inline=True))
    guest.create_primary(64, 32)
    room = guest.ram_alloc.end - guest.ram_alloc.start
    desc = c.ImageDescriptor(1, lib.SPICE_IMAGE_TYPE_BITMAP, 0, 128, 100)
    image = c.BitmapImage(desc, lib.SPICE_BITMAP_FMT_32BIT, 0, 128, 100, 512, None,
                          bytes(51200))
    copy = c.Copy(image, c.QRect(0, 0, 100, 128), lib.SPICE_ROPD_OP_PUT, 0, NO_MASK)
    d = fill()
    n = 4 * room // len(image.data)  # four times what command memory holds at once
    for _ in range(n):
        guest.submit(dataclasses.replace(d, op=copy))
    assert len(backend.executed) == n and dev.guest_bug is None
    guest.flush_release()
    assert guest.outstanding == 0 and guest.ram_alloc.used_bytes == 0
    guest.close()
    dev.close()


def test_cursor_shape_shorter_than_its_type_needs_is_a_guest_bug(device, guest) -> None:
    shape = c.CursorShapeData(7, lib.SPICE_CURSOR_TYPE_ALPHA, 16, 16, 1, 1, bytes(16 * 16 * 4 - 1))
    guest.submit(c.CursorCmd(0, lib.QXL_CURSOR_SET, c.QPoint(5, 6), True, shape, 0, 0))
    assert "short" in device.guest_bug


def _rgba(w: int, h: int) -> c.BitmapImage:
    return c.BitmapImage(c.ImageDescriptor(0, lib.SPICE_IMAGE_TYPE_BITMAP, 0, w, h),
                         lib.SPICE_BITMAP_FMT_RGBA, lib.QXL_BITMAP_TOP_DOWN, w, h,
                         4 * w, None, bytes(range(4 * w * h)))


def test_composite_flags_follow_the_addresses_as_spice_server_reads_them(device, guest,
                                                                         backend) -> None:
    # xf86-video-qxl (UMS) sent OVER | source repeat NORMAL | DEST_OPAQUE = 0x01004003 with a
    # mask image and no SPICE_COMPOSITE_HAS_MASK; spice-server's red_get_composite_ptr adds
    # the flag of every address given, and reads the mask transform only with a mask.
    guest.create_primary(64, 64)
    ident = (1 << 16, 0, 0, 0, 1 << 16, 0)
    ops = [c.Composite(0x01004003, _rgba(4, 4), _rgba(4, 4), None, None, c.QPoint(0, 0),
                       c.QPoint(0, 0)),
           c.Composite(0x3, _rgba(4, 4), _rgba(2, 2), ident, ident, c.QPoint(0, 0),
                       c.QPoint(0, 0)),
           c.Composite(0x3 | lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM, _rgba(4, 4), None, None,
                       ident, c.QPoint(0, 0), c.QPoint(0, 0))]
    for op in ops:
        guest.submit(dataclasses.replace(fill(bbox=c.QRect(0, 0, 4, 4)), op=op))
    guest.collect_releases()
    assert device.guest_bug is None
    got = [d.op for d in backend.executed]
    assert got[0].flags == 0x01004003 | lib.SPICE_COMPOSITE_HAS_MASK and got[0].mask.width == 4
    assert got[1].flags == 0x3 | (lib.SPICE_COMPOSITE_HAS_MASK
                                  | lib.SPICE_COMPOSITE_HAS_SRC_TRANSFORM
                                  | lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM)
    assert got[1].src_transform == ident and got[1].mask_transform == ident
    # no mask: its transform is not read, the guest's flag bit stays (the canvas ignores it)
    assert got[2].mask is None and got[2].mask_transform is None
    assert got[2].flags == 0x3 | lib.SPICE_COMPOSITE_HAS_MASK_TRANSFORM


def test_a_one_bit_mask_needs_no_palette(device, guest, backend) -> None:
    # spice-server's red_get_image(..., is_mask=true) takes a mask of a palette format
    # without a palette (its bits are read as bits); an image of that format is refused
    guest.create_primary(64, 64)
    bits = c.BitmapImage(c.ImageDescriptor(0, lib.SPICE_IMAGE_TYPE_BITMAP, 0, 8, 2),
                         lib.SPICE_BITMAP_FMT_1BIT_BE, 0, 8, 2, 1, None, b"\xf0\x0f")
    masked = c.Fill(c.SolidBrush(0xFF), lib.SPICE_ROPD_OP_PUT,
                    c.QMask(0, c.QPoint(0, 0), bits))
    guest.submit(dataclasses.replace(fill(bbox=c.QRect(0, 0, 2, 8)), op=masked))
    guest.collect_releases()
    assert device.guest_bug is None and backend.executed[0].op.mask.bitmap.data == b"\xf0\x0f"
    src = c.Copy(bits, c.QRect(0, 0, 2, 8), lib.SPICE_ROPD_OP_PUT, 0, NO_MASK)
    guest.submit(dataclasses.replace(fill(bbox=c.QRect(0, 0, 2, 8)), op=src))
    guest.collect_releases()
    assert "palette" in device.guest_bug


# --- waiting: brief spins before sleeping --------------------------------------------


def test_spin_helpers_see_another_threads_store_and_give_up_in_time() -> None:
    from vgpu.device.abi import ffi

    word64, word32 = ffi.new("uint64_t *", 5), ffi.new("uint32_t *", 7)
    t0 = time.monotonic()
    assert lib.vgpu_spin_until64(word64, 5, 10 * 10**9) == 5  # reached already: at once
    assert lib.vgpu_spin_while32(word32, 6, 10 * 10**9) == 7
    # never reached: they give up by their time (sooner where other threads want the core)
    assert lib.vgpu_spin_until64(word64, 6, 2_000_000) == 5
    assert lib.vgpu_spin_while32(word32, 7, 2_000_000) == 7
    assert time.monotonic() - t0 < 1.0

    def store() -> None:
        time.sleep(0.02)
        lib.vgpu_atomic_store64(word64, 9)
        lib.vgpu_atomic_store32(word32, 8)

    thread = threading.Thread(target=store)
    deadline = time.monotonic() + 5.0
    thread.start()
    while lib.vgpu_spin_until64(word64, 6, 10**8) < 6:  # a spin may give up early: again
        assert time.monotonic() < deadline
    while lib.vgpu_spin_while32(word32, 7, 10**8) == 7:
        assert time.monotonic() < deadline
    assert word64[0] == 9 and word32[0] == 8
    thread.join()


def test_wait_for_work_wakes_in_and_after_its_spin_and_times_out(device: Device) -> None:
    t0 = time.monotonic()
    assert not device.wait_for_work(0.05)  # nothing came: the whole timeout
    assert time.monotonic() - t0 >= 0.05
    for delay in (0.0, 0.03):  # a doorbell during the spin, and one after it
        timer = threading.Timer(delay, device.wake)
        t0 = time.monotonic()
        timer.start()
        assert device.wait_for_work(10)
        assert time.monotonic() - t0 < 5.0
        timer.join()
        device.process()  # takes the wake
