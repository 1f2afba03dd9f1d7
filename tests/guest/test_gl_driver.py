"""The 3D ring end to end through the device: discovery, item checks, the batch copy,
fences and their interrupt, reset, and the guest driver's gl_* primitives (batch and
answer memory reuse, waiting for ring room) in-process, inline and on threads."""

from __future__ import annotations

import statistics
import struct
import time

import pytest
from qxl_support import RecordingBackend

from vgpu.device.abi import lib, offsetof, sizeof
from vgpu.device.device import GL_BATCHES_PER_PROCESS, GL_MAX_BATCH, GL_MAX_CONTEXTS, Device
from vgpu.device.glwire import VGPU_COMMANDS
from vgpu.device.inprocess import DeviceThread, InProcessAttachment
from vgpu.device.memory import PAGE
from vgpu.guest.driver import GL_ALIGN, PACE_HISTORY, GuestDriver

FENCE_OP, FENCE_WORDS = VGPU_COMMANDS["FENCE"]
MAKE_CURRENT_OP, _ = VGPU_COMMANDS["MAKE_CURRENT"]


def fence_cmd(value: int, flags: int = lib.VGPU_3D_FENCE_INTERRUPT) -> bytes:
    return struct.pack("<IIII", FENCE_OP | FENCE_WORDS << 16, value & 0xFFFFFFFF, value >> 32,
                       flags)


def ext_fields(device: Device) -> dict[str, int]:
    ext = device.ext
    return {f: getattr(ext, f) for f in ("features", "gl_ring_offset", "gl_fence_offset",
                                         "gl_max_batch", "gl_max_contexts",
                                         "input_ring_offset")}


def test_rom_announces_the_ring_below_the_input_ring(device: Device,
                                                     guest: GuestDriver) -> None:
    e = ext_fields(device)
    assert e["features"] & lib.VGPU_FEATURE_3D_RING and guest.gl_available()
    assert e["gl_max_batch"] == GL_MAX_BATCH == 4 << 20
    assert e["gl_max_contexts"] == GL_MAX_CONTEXTS
    for field in ("gl_ring_offset", "gl_fence_offset"):
        assert e[field] % PAGE == 0
    ring_end = e["gl_ring_offset"] + sizeof("Vgpu3dRing")
    assert e["gl_fence_offset"] + sizeof("Vgpu3dFence") <= e["gl_ring_offset"]
    assert ring_end <= e["input_ring_offset"]
    # the driver's free pages stop below both
    rom = device.rom
    assert rom.pages_offset + rom.num_pages * PAGE <= e["gl_fence_offset"]
    ring = device.layout.ram_offset + e["gl_ring_offset"]
    assert struct.unpack_from("<IIIII", device.mem.mm, ring) == (lib.VGPU_3D_RING_SIZE, 0, 1,
                                                                 0, 0)


def test_fence_completes_and_raises_the_interrupt(device: Device, guest: GuestDriver,
                                                  backend: RecordingBackend) -> None:
    batch = struct.pack("<II", MAKE_CURRENT_OP | 2 << 16, 0) + b"\0" * 4 + fence_cmd(7)
    guest.gl_submit(batch)
    assert backend.batches == [batch]  # the copy reached the backend unchanged
    assert guest.gl_completed() == 7
    assert guest.wait_interrupt(lib.VGPU_INTERRUPT_3D, 1) == lib.VGPU_INTERRUPT_3D
    guest.gl_submit(fence_cmd(1 << 40 | 3, 0))  # no interrupt asked; 64-bit values
    assert guest.gl_completed() == 1 << 40 | 3
    assert guest.take_interrupts() & lib.VGPU_INTERRUPT_3D == 0
    assert device.guest_bug is None and device.stats["gl_batches"] == 2


def test_gl_fence_values_grow_and_wait_sees_them(guest: GuestDriver) -> None:
    values = [guest.gl_fence() for _ in range(3)]
    assert values == [1, 2, 3]
    assert guest.gl_wait_fence(3, timeout=1)
    assert not guest.gl_wait_fence(4, timeout=0.01)  # never submitted


def test_a_batch_and_its_fence_go_as_one_item(device: Device, guest: GuestDriver,
                                              backend: RecordingBackend) -> None:
    """gl_submit_fence: the batch, then a FENCE with the next value (shared with
    gl_fence), in one ring item; a batch with no room for the FENCE goes before it."""
    batch = struct.pack("<II", MAKE_CURRENT_OP | 2 << 16, 0) + b"\0" * 4
    assert guest.gl_fence() == 1
    assert guest.gl_submit_fence(batch) == 2
    assert guest.gl_submit_fence(b"", interrupt=False) == 3
    assert backend.batches[1:] == [batch + fence_cmd(2), fence_cmd(3, 0)]
    assert guest.gl_completed() == 3 and device.stats["gl_batches"] == 3
    arena = guest._gl_batches
    assert arena is not None
    full = b"\0" * min(guest.gl_max_batch, arena.end - arena.start)  # (not run as GL)
    assert guest.gl_submit_fence(full) == 4
    assert backend.batches[3:] == [full, fence_cmd(4)] and guest.gl_completed() == 4
    assert device.guest_bug is None


def test_device_copies_the_batch_before_the_backend_sees_it(
        device: Device, guest: GuestDriver, backend: RecordingBackend) -> None:
    seen: list[bytes] = []

    def execute_3d(batch: bytes, gl: object) -> None:
        # the guest scribbling over its batch memory now changes nothing
        arena = guest._gl_batches
        assert arena is not None
        guest.buf[arena.start:arena.start + 16] = b"\xff" * 16
        seen.append(bytes(batch))

    backend.execute_3d = execute_3d
    guest.gl_submit(fence_cmd(5))
    assert seen == [fence_cmd(5)]


@pytest.mark.parametrize("size,flags,where", [
    (0, 0, "ok"), (6, 0, "ok"), (GL_MAX_BATCH + 4, 0, "ok"), (16, 1, "ok"),
    (16, 0, "unmapped"), (16, 0, "slot end"),
])
def test_a_bad_item_is_a_guest_bug_of_the_device(device: Device, guest: GuestDriver,
                                                 backend: RecordingBackend, size: int,
                                                 flags: int, where: str) -> None:
    ring = guest.gl_ring
    assert ring is not None
    off = guest.ram_alloc.alloc(64)
    addr = guest.phys(off)
    if where == "unmapped":
        addr = 5 << guest.id_shift | off  # slot 5 is not active
    elif where == "slot end":
        addr = guest.phys(guest.layout.ram_offset + guest.rom.ram_header_offset - 8)
    struct.pack_into("<QII", guest.buf, ring.item(0), addr, size, flags)
    ring.set("prod", 1)
    guest.att.io_write(lib.VGPU_IO_NOTIFY_3D, 0)
    assert device.guest_bug is not None and backend.batches == []
    assert guest.take_interrupts() & lib.QXL_INTERRUPT_ERROR
    guest.reset()  # the device is sane again after RESET, with a clean ring and fence
    assert device.guest_bug is None
    assert guest.gl_completed() == 0 and ring.get("prod") == 0 == ring.get("cons")
    guest.gl_submit(fence_cmd(9))
    assert guest.gl_completed() == 9


def test_a_backend_failure_in_execute_3d_is_counted_never_a_guest_bug(
        device: Device, guest: GuestDriver, backend: RecordingBackend) -> None:
    def execute_3d(batch: bytes, gl: object) -> None:
        raise ValueError("even a ValueError: the batch's content is not the device's")

    backend.execute_3d = execute_3d
    guest.gl_submit(fence_cmd(1))
    assert device.guest_bug is None and device.backend_errors == 1


def test_reset_clears_the_fence_area_and_its_counters(device: Device,
                                                      guest: GuestDriver) -> None:
    gl = device.gl_guest
    gl.count("errors")
    gl.count("lost_contexts")
    gl.count("lost_contexts")
    counters = guest.gl_fence_counters
    assert (counters.errors, counters.lost_contexts) == (1, 2)
    guest.gl_submit(fence_cmd(4))
    guest.reset()
    assert (counters.errors, counters.lost_contexts, guest.gl_completed()) == (0, 0, 0)


def test_gl_guest_translates_through_memslots(device: Device, guest: GuestDriver) -> None:
    gl = device.gl_guest
    off = guest.ram_alloc.alloc(32)
    assert gl.translate(guest.phys(off), 32) == off
    assert gl.translate(guest.phys(off), 1 << 40) is None
    assert gl.translate(0, 8) is None
    id_bits, gen_bits, slots = gl.slot_table()
    assert (id_bits, gen_bits) == (guest.rom.slot_id_bits, guest.rom.slot_gen_bits)
    start, end, gen = slots[guest.main_slot]
    assert start <= off < end and gen == guest.slot_gens[guest.main_slot]
    assert gl.size == device.layout.total and gl.base != 0


def test_batch_memory_is_reused_once_cons_has_passed() -> None:
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    guest = GuestDriver(InProcessAttachment(device, inline=True),
                        gl_batch_memory=64 * 1024)
    try:
        for i in range(1, 2000):  # far more than 64 KiB of batches through 64 KiB
            guest.gl_submit(fence_cmd(i) + bytes(1024))
        assert guest.gl_completed() == 1999 and device.guest_bug is None
        arena = guest._gl_batches
        assert arena is not None and arena.end - arena.start == 64 * 1024
    finally:
        guest.close()
        device.close()


def test_submit_waits_for_ring_room_and_memory_on_threads() -> None:
    """A device thread slower than the guest: the guest waits for room (interrupt on
    notify_on_cons), never overwrites a batch the device has not copied."""
    backend = RecordingBackend()
    device = Device(backend, ram_size=8 << 20, vram_size=1 << 20)
    n = 600
    with DeviceThread(device, max_commands=1):
        guest = GuestDriver(InProcessAttachment(device), gl_batch_memory=64 * 1024)
        for i in range(1, n + 1):
            guest.gl_submit(fence_cmd(i) + struct.pack("<I", i) * 300)
        assert guest.gl_wait_fence(n, 10)
    try:
        assert len(backend.batches) == n and device.guest_bug is None
        for i, batch in enumerate(backend.batches, 1):
            assert batch == fence_cmd(i) + struct.pack("<I", i) * 300
    finally:
        guest.close()
        device.close()


def test_process_bounds_the_3d_work_per_call() -> None:
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    attachment = InProcessAttachment(device, inline=True)
    guest = GuestDriver(attachment)
    attachment.inline = False  # set up; from now on nothing runs by itself
    try:
        for i in range(1, 11):
            guest.gl_submit(fence_cmd(i, 0))
        assert device.process(256)  # more is waiting
        assert device.stats["gl_batches"] == GL_BATCHES_PER_PROCESS
        while device.process(256):
            pass
        assert device.stats["gl_batches"] == 10 and guest.gl_completed() == 10
    finally:
        guest.close()
        device.close()


def test_reply_and_data_memory_wait_for_the_following_fence() -> None:
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    guest = GuestDriver(InProcessAttachment(device, inline=True), gl_data_memory=64 * 1024)
    try:
        addr, view = guest.gl_reply(16)
        off = device.slots.translate(addr, 16)
        device.mem.mm[off:off + 16] = b"answer from host"
        assert bytes(view) == b"answer from host"
        del view
        blob = bytes(range(256)) * 64  # 16 KiB
        a1 = guest.gl_data(blob)
        assert device.slots.read(a1, len(blob)) == blob
        guest.gl_data(blob)
        guest.gl_data(blob)
        # full until a fence after them completes: the driver says so
        with pytest.raises(Exception, match="submit the batches"):
            guest.gl_data(blob)
        guest.gl_wait_fence(guest.gl_fence(), 1)
        for _ in range(50):  # reused after every fence
            guest.gl_data(blob)
            guest.gl_data(blob)
            guest.gl_wait_fence(guest.gl_fence(), 1)
        assert guest._gl_data is not None and guest._gl_data.end - guest._gl_data.start == 65536
    finally:
        guest.close()
        device.close()


def test_batch_validation_in_the_driver(guest: GuestDriver) -> None:
    for bad in (b"", b"abc", bytes(GL_MAX_BATCH + 4)):
        with pytest.raises(ValueError):
            guest.gl_submit(bad)
    assert GL_ALIGN % 4 == 0


def fence_round_trips(guest: GuestDriver, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        value = guest.gl_fence()
        assert guest.gl_wait_fence(value, 5)
        times.append(time.perf_counter() - t0)
    return times


def test_fence_round_trip_on_a_device_thread() -> None:
    """Guest and device on two threads, as in `vgpu serve`: the round trip works (its
    median is measured by `vgpu bench gl3d_fence`, not here)."""
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    try:
        with DeviceThread(device):
            guest = GuestDriver(InProcessAttachment(device))
            times = fence_round_trips(guest, 200)
        assert guest.gl_completed() == 200
        assert statistics.median(times) < 0.5  # a hang, not a speed claim
    finally:
        guest.close()
        device.close()


def test_fence_area_is_where_the_rom_says(device: Device, guest: GuestDriver) -> None:
    guest.gl_submit(fence_cmd(0x1122334455667788))
    fence = device.layout.ram_offset + device.ext.gl_fence_offset
    raw = device.mem.mm[fence:fence + 8]
    assert struct.unpack("<Q", raw)[0] == 0x1122334455667788
    assert offsetof("Vgpu3dFence", "completed") == 0


class SlowHost(RecordingBackend):
    """A host that takes `seconds` per 3D batch, as a GL frame does."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def execute_3d(self, batch, guest) -> None:
        time.sleep(self.seconds)
        super().execute_3d(batch, guest)


def test_paced_waits_nap_for_what_they_learn_and_still_see_every_fence() -> None:
    """A present's back-pressure on a busy host (two frames in flight, the older one waited
    for): the paced waits learn the host's frame, see each fence, follow a quicker host and
    not a host's stall."""
    frame = 0.004
    device = Device(SlowHost(frame), ram_size=8 << 20, vram_size=1 << 20)
    try:
        with DeviceThread(device):
            guest = GuestDriver(InProcessAttachment(device))
            pending = [guest.gl_fence()]
            for _ in range(40):
                pending.append(guest.gl_fence())
                assert guest.gl_wait_fence(pending.pop(0), 5, paced=True)
            assert guest.gl_completed() >= pending[0] - 1
            # learnt from when the fences were seen (this backend's interrupt comes at the
            # end of the device's process() call, up to GL_BATCHES_PER_PROCESS frames late)
            assert len(guest._gl_waits) == PACE_HISTORY
            assert frame / 4 < min(guest._gl_waits)
            # a fence that is already done: no nap, at once
            t0 = time.monotonic()
            assert guest.gl_wait_fence(pending[0] - 1, 5, paced=True)
            assert time.monotonic() - t0 < frame / 2
            # one stall of the host: the next nap is learnt from the waits before it
            device.backend.seconds = 10 * frame
            assert guest.gl_wait_fence(guest.gl_fence(), 5, paced=True)
            assert max(guest._gl_waits) > 10 * frame and min(guest._gl_waits) < 3 * frame
            # the host quick from now on: each nap that finds its fence done is shorter
            shortest = min(guest._gl_waits)
            device.backend.seconds = 0.0
            for _ in range(8):
                assert guest.gl_wait_fence(guest.gl_fence(), 5, paced=True)
            assert min(guest._gl_waits) < shortest / 2
            # a fence that never comes: False at the timeout, nap or not, the history kept
            guest._gl_waits.extend([0.02] * PACE_HISTORY)
            t0 = time.monotonic()
            assert not guest.gl_wait_fence(guest._gl_next_fence + 5, 0.005, paced=True)
            assert time.monotonic() - t0 < 0.5 and list(guest._gl_waits) == [0.02] * PACE_HISTORY
    finally:
        guest.close()
        device.close()


def test_a_fence_without_interrupt_is_seen_by_polling() -> None:
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    try:
        with DeviceThread(device):
            guest = GuestDriver(InProcessAttachment(device))
            last = 0
            for _ in range(100):
                last = guest.gl_fence(interrupt=False)
            assert guest.gl_wait_fence(last, 5)  # polled: no interrupt was asked
    finally:
        guest.close()
        device.close()


def test_recording_leaves_the_3d_ring_out_and_keeps_the_rest(tmp_path) -> None:
    """spice-server's record format has no 3D ring: a session with 3D batches records its
    2D part only, and reads back whole."""
    from vgpu.device import commands as c
    from vgpu.replay.format import CommandEvent, WorkerMessage
    from vgpu.replay.reader import read_events
    from vgpu.replay.recorder import Recorder

    path = tmp_path / "session.spice"
    device = Device(RecordingBackend(), ram_size=8 << 20, vram_size=1 << 20)
    recorder = Recorder(path).attach(device)
    guest = GuestDriver(InProcessAttachment(device, inline=True))
    try:
        guest.create_primary(64, 48)
        guest.gl_submit(fence_cmd(3))
        guest.submit(c.Drawable(bbox=c.QRect(0, 0, 8, 8), op=c.Fill(
            c.SolidBrush(1), 8, c.QMask(0, c.QPoint(0, 0), None))))
        guest.gl_wait_fence(guest.gl_fence(), 1)
        guest.update_area(0, c.QRect(0, 0, 48, 64))
        recorder.close()
        events = list(read_events(path))
        assert [type(e.command.op).__name__ for e in events if isinstance(e, CommandEvent)] \
            == ["Fill"]
        assert [e.message for e in events if not isinstance(e, CommandEvent)][-2:] == [
            WorkerMessage.CREATE_PRIMARY_SURFACE, WorkerMessage.UPDATE]
        assert recorder.skipped == 0 and device.guest_bug is None
    finally:
        guest.close()
        device.close()
