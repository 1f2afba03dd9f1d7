"""`GuestDriver`: what a guest's QXL driver does, over any attachment.

An attachment (`vgpu.device.inprocess.InProcessAttachment`, or the unix-socket
one in `vgpu.guest.remote`) provides:

    layout: MemoryLayout            the BARs inside the memory file
    buffer: mmap-like               the guest's mapping of the memory file
    io_write(port, value) -> None   a port write (blocking as a vCPU would)
    wait_irq(timeout) -> bool       wait until the IRQ line is high
    close() -> None

The driver reads the ROM, adds two memslots (RAM up to the RAM header, and
the whole VRAM), keeps allocators for command memory (the RAM pages), surface
0's area and VRAM, writes any `vgpu.device.commands` value with `submit()`,
takes interrupts (`wait_interrupt`) and frees commands the device releases
(`collect_releases`).

3D ring (vgpu extension, docs/3d-ring.md): `gl_available`, `gl_submit`, `gl_fence`,
`gl_submit_fence` (a batch and its fence in one ring item), `gl_wait_fence`, `gl_reply`
and `gl_data` are the primitives a guest 3D library builds on. The driver owns two
regions of the RAM bar's free pages for them, taken at first use: batch memory, a ring
buffer whose parts are reused once the device's `cons` has passed the batch (the device
copied it), and answer/data memory, a ring buffer whose parts are reused once the fence
that follows their allocation has completed.

It does not reset the device when it loads, as a VM's driver does: an in-process
device is created with its driver (a reset would only put RESET messages at the
head of every recorded session), and `vgpu.guest.remote.connect_driver` resets a
remote device, which may have outlived an earlier guest.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from vgpu.device import commands as c
from vgpu.device.abi import Layout, ffi, lib, offsetof, sizeof
from vgpu.device.glwire import VGPU_COMMANDS
from vgpu.device.memory import PAGE, MemoryLayout
from vgpu.device.parser import SURFACE_BPP
from vgpu.display import InputEvent
from vgpu.guest.alloc import Allocator, OutOfMemory
from vgpu.guest.builders import COMMAND_TYPES, DEFAULT_CHUNK_SIZE, CommandWriter

IRQ_TIMEOUT = 10.0
"""Seconds the driver waits for an interrupt it needs before reporting the device stuck."""

IRQ_POLL = 0.05
"""Longest single wait on the IRQ line before int_pending is read again, so that a level
change this thread did not see (reported late, or already lowered) costs at most this."""

FENCE_SPIN_S = 100e-6
"""How long gl_wait_fence spins (without the interpreter lock) before it sleeps on the
interrupt: a fence round trip takes 20-80 us, and a thread that sleeps lets its core halt,
which a virtual machine pays tens of microseconds to wake (twice per round trip). A spin
that gave up (a frame's present outlasts it) or overran (other work wanted the core)
sleeps the next FENCE_SPIN_BACKOFF waits at once: a frame loop spins on one wait in that
many, a guest waiting on short fences on each of them. (Spinning only after a short wait
stuck at sleeping once waits were slow: 64-96 us round trips, against 72-80 here.)"""

FENCE_SPIN_BACKOFF = 32
"""Fence waits that sleep at once after a spin that gave up or overran: on busy cores a
sleeper, woken first, sees its fence sooner than a spinner queued behind other work."""

PACE_SPIN_S = 100e-6
"""A paced wait (a present's back-pressure: `gl_wait_fence(paced=True)`) naps through most
of the time it expects to wait, without asking the interrupt to wake it, and spins for about
this long at the end (up to twice it). The device then finds nobody asleep on the line when
the fence comes: its render thread, which raised the interrupt between two frames' work,
skips the wake-up (a futex system call and, on a virtual machine, an interprocessor
interrupt: 25-40 us a frame of that thread, bench gl3d's 256x256 at 100 draw calls), as
Linux's hybrid polling of block devices sleeps through half of a request's expected time
and polls for the rest."""

PACE_HISTORY = 4
"""Paced waits the nap is learnt from: it is the shortest of them less PACE_SPIN_S, so a
wait that a stall of the host made long does not make the next naps oversleep (a nap
longer than two frames would leave the host idle)."""

PACE_MIN_NAP_S = 100e-6
"""Shorter naps are not taken: the kernel's timer slack alone is 50 us."""

PACE_SHRINK = 0.75
"""A fence that completed during the nap counts as a wait this much shorter than the nap
(how much earlier it came is unknown: the guest only sees that it did), so the naps follow
a quicker host by this factor a wait."""

ALL_INTERRUPTS = (lib.QXL_INTERRUPT_DISPLAY | lib.QXL_INTERRUPT_CURSOR | lib.QXL_INTERRUPT_IO_CMD
                  | lib.QXL_INTERRUPT_ERROR | lib.QXL_INTERRUPT_CLIENT
                  | lib.QXL_INTERRUPT_CLIENT_MONITORS_CONFIG | lib.VGPU_INTERRUPT_INPUT
                  | lib.VGPU_INTERRUPT_3D)

GL_BATCH_MEMORY = 4 * 1024 * 1024
"""Bytes of batch memory the driver takes for the 3D ring (at most; less if the RAM bar
has less to spare): one largest batch, or many small ones in flight."""

GL_DATA_MEMORY = 4 * 1024 * 1024
"""Bytes for answers (`gl_reply`) and data by reference (`gl_data`) between two fences."""

GL_MIN_MEMORY = 64 * 1024
"""The least the driver takes for either region: smaller would hold almost no batch."""

GL_ALIGN = 64
"""Batches and data start on cache lines (the device copies them with memcpy)."""

_FENCE = struct.Struct("<IIII")
_FENCE_OPCODE, _FENCE_WORDS = VGPU_COMMANDS["FENCE"]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_M32 = 0xFFFFFFFF
_RING = {f: offsetof("QXLCommandRing", f) for f in
         ("num_items", "prod", "notify_on_prod", "cons", "notify_on_cons", "items")}
_CMD = Layout("QXLCommand", ["data", "type"])
_GL_SUBMIT = Layout("Vgpu3dSubmit", ["batch", "size", "flags"])
_CREATE = Layout("QXLRam", ["create_surface"])
_MEM_SLOT = Layout("QXLRam", ["mem_slot"])
_UPDATE_AREA = Layout("QXLRam", ["update_area", "update_surface"])
_MONITORS = Layout("QXLMonitorsConfig", ["count", "max_allowed"])
_HEAD = Layout("QXLHead", ["id", "surface_id", "width", "height", "x", "y", "flags"])
_IN_EVENT = Layout("VgpuInputEvent", ["kind", "code", "x", "y", "buttons", "display"])
_INPUT_NAMES = {
    lib.VGPU_INPUT_KEY_DOWN: "key_down", lib.VGPU_INPUT_KEY_UP: "key_up",
    lib.VGPU_INPUT_MOUSE_POSITION: "mouse_position",
    lib.VGPU_INPUT_MOUSE_MOTION: "mouse_motion", lib.VGPU_INPUT_MOUSE_PRESS: "mouse_press",
    lib.VGPU_INPUT_MOUSE_RELEASE: "mouse_release", lib.VGPU_INPUT_MODIFIERS: "modifiers",
}


class Attachment(Protocol):
    layout: MemoryLayout
    buffer: Any

    def io_write(self, port: int, value: int) -> None: ...

    def wait_irq(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class DeviceError(Exception):
    """The device raised QXL_INTERRUPT_ERROR, or did not answer in time."""


class _Ring:
    def __init__(self, buf: Any, cdata: Any, base: int, item_size: int, num_items: int,
                 items_at: int = _RING["items"]) -> None:
        self.buf = buf
        self.base = base
        self.item_size = item_size
        self.num_items = num_items  # fixed by the ABI; never read back from shared memory
        self.items_at = items_at
        # Shared with a device that may be another process: single aligned 32-bit loads
        # and stores (struct's pack_into zeroes the bytes before writing them). A pointer
        # per field, made once: every submit reads and writes several
        words = ffi.cast("uint32_t *", cdata + base)
        self._fields = {f: words + _RING[f] // 4 for f in _RING if f != "items"}

    def get(self, field: str) -> int:
        return lib.vgpu_atomic_load32(self._fields[field])

    def set(self, field: str, value: int) -> None:
        lib.vgpu_atomic_store32(self._fields[field], value & _M32)

    def item(self, index: int) -> int:
        return self.base + self.items_at + (index % self.num_items) * self.item_size

    def consume(self, unpack: struct.Struct) -> Iterator[tuple[Any, ...]]:
        """Takes the items the device produced, in order, each unpacked before its slot
        is handed back. Once the ring is empty it asks for an interrupt on the device's
        next push and looks again, so an item pushed in between is not missed."""
        while True:
            cons, prod = self.get("cons"), self.get("prod")
            if cons == prod:
                self.set("notify_on_prod", prod + 1)
                if self.get("prod") == prod:
                    return
                continue
            value = unpack.unpack_from(self.buf, self.item(cons))
            self.set("cons", cons + 1)
            yield value


def _passed(cons: int, index: int) -> bool:
    """Whether a ring's consumer index has passed item `index` (32-bit wrapping): then
    the device has copied that item's batch and its memory is the guest's again."""
    return (cons - index - 1) & _M32 < 1 << 31


class _RingArena:
    """A ring buffer of guest memory [start, end): parts are handed out in order, each
    with a tag, and come back in order once `done(tag)` says the device is through."""

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.head = start
        self.live: deque[tuple[int, int, int]] = deque()  # (tag, first byte, end)

    def alloc(self, size: int, tag: int) -> int | None:
        """An offset with `size` bytes, or None while the older parts are still in use."""
        size = -(-size // GL_ALIGN) * GL_ALIGN
        if not self.live:
            self.head = self.start
        tail = self.live[0][1] if self.live else self.end
        if self.live and self.head <= tail:  # wrapped: the room is [head, tail)
            at = self.head if self.head + size <= tail and self.head != tail else None
        elif self.head + size <= self.end:
            at = self.head
        elif self.start + size <= tail and (not self.live or self.start < tail):
            at = self.start
        else:
            at = None
        if at is None:
            return None
        self.head = at + size
        self.live.append((tag, at, at + size))
        return at

    def retire(self, done: Callable[[int], bool]) -> None:
        while self.live and done(self.live[0][0]):
            self.live.popleft()

    def reset(self) -> None:
        self.head = self.start
        self.live.clear()


class GuestDriver:
    """A QXL guest driver. One thread drives it (the guest's)."""

    def __init__(self, attachment: Attachment, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 int_mask: int = ALL_INTERRUPTS, irq_timeout: float = IRQ_TIMEOUT,
                 gl_batch_memory: int = GL_BATCH_MEMORY,
                 gl_data_memory: int = GL_DATA_MEMORY) -> None:
        self.att = attachment
        self.irq_timeout = irq_timeout
        self.buf = attachment.buffer
        self.layout = attachment.layout
        self.chunk_size = chunk_size
        self.int_mask = int_mask
        self._cdata = ffi.from_buffer(self.buf)
        self.rom = ffi.cast("QXLRom *", self._cdata)
        if self.rom.magic != lib.QXL_ROM_MAGIC:
            raise DeviceError("no QXL ROM")
        ram = self.layout.ram_offset
        self.hdr = ram + self.rom.ram_header_offset
        self._int_pending = ffi.cast("uint32_t *", self._cdata + self.hdr
                                     + offsetof("QXLRam", "int_pending"))
        cd, hdr = self._cdata, self.hdr
        self.cmd_ring = _Ring(self.buf, cd, hdr + offsetof("QXLRam", "cmd_ring"), 16,
                              lib.QXL_COMMAND_RING_SIZE)
        self.cursor_ring = _Ring(self.buf, cd, hdr + offsetof("QXLRam", "cursor_ring"), 16,
                                 lib.QXL_CURSOR_RING_SIZE)
        self.release_ring = _Ring(self.buf, cd, hdr + offsetof("QXLRam", "release_ring"), 8,
                                  lib.QXL_RELEASE_RING_SIZE)
        ext = ffi.cast("VgpuRomExt *", self._cdata + lib.VGPU_ROM_EXT_OFFSET)
        self.input_ring: _Ring | None = None
        if ext.magic == lib.VGPU_ROM_EXT_MAGIC and ext.features & lib.VGPU_FEATURE_INPUT_RING:
            self.input_ring = _Ring(self.buf, self._cdata, ram + ext.input_ring_offset,
                                    sizeof("VgpuInputEvent"), lib.VGPU_INPUT_RING_SIZE,
                                    offsetof("VgpuInputRing", "items"))
        self.gl_ring: _Ring | None = None
        self.gl_max_batch = 0
        self.gl_max_contexts = 0
        if ext.magic == lib.VGPU_ROM_EXT_MAGIC and ext.features & lib.VGPU_FEATURE_3D_RING:
            self.gl_ring = _Ring(self.buf, self._cdata, ram + ext.gl_ring_offset,
                                 _GL_SUBMIT.size, lib.VGPU_3D_RING_SIZE,
                                 offsetof("Vgpu3dRing", "items"))
            self.gl_fence_offset = ram + ext.gl_fence_offset  # mapping offset of Vgpu3dFence
            fence = self._cdata + self.gl_fence_offset
            self._gl_completed = ffi.cast("uint64_t *", fence
                                          + offsetof("Vgpu3dFence", "completed"))
            self.gl_fence_counters = ffi.cast("Vgpu3dFence *", fence)
            self.gl_max_batch = ext.gl_max_batch
            self.gl_max_contexts = ext.gl_max_contexts
        self._gl_sizes = (gl_batch_memory, gl_data_memory)
        self._gl_batches: _RingArena | None = None
        self._gl_data: _RingArena | None = None
        self._gl_next_fence = 1
        self._gl_spin_skip = 0  # waits left that sleep at once (FENCE_SPIN_BACKOFF)
        # the last paced waits' seconds, fence seen (PACE_HISTORY)
        self._gl_waits: deque[float] = deque(maxlen=PACE_HISTORY)
        self.id_shift = 64 - self.rom.slot_id_bits
        self.gen_shift = self.id_shift - self.rom.slot_gen_bits
        self.surface0 = Allocator(ram + self.rom.draw_area_offset,
                                  ram + self.rom.draw_area_offset + self.rom.surface0_area_size,
                                  align=PAGE)
        pages = ram + self.rom.pages_offset
        self.ram_alloc = Allocator(pages, pages + self.rom.num_pages * PAGE)
        self.vram_alloc = Allocator(self.layout.vram_offset,
                                    self.layout.vram_offset + self.layout.vram_size, align=PAGE)
        self._pending_irqs = 0
        self._next_id = 1
        self._outstanding: dict[int, tuple[int, list[int]]] = {}  # id -> (info offset, blocks)
        self.slot_gens: dict[int, int] = {}
        self._setup()

    # --- setup --------------------------------------------------------------------------

    def _setup(self) -> None:
        _U32.pack_into(self.buf, self.hdr + offsetof("QXLRam", "int_mask"), self.int_mask)
        self.main_slot = self.rom.slots_start
        self.vram_slot = self.rom.slots_start + 1
        ram = self.layout.ram_offset
        self.memslot_add(self.main_slot, ram, ram + self.rom.ram_header_offset)
        self.memslot_add(self.vram_slot, self.layout.vram_offset,
                         self.layout.vram_offset + self.layout.vram_size)

    def memslot_add(self, slot_id: int, start: int, end: int, async_: bool = False) -> None:
        _MEM_SLOT.pack_into(self.buf, self.hdr, start, end)
        self._io(lib.QXL_IO_MEMSLOT_ADD_ASYNC if async_ else lib.QXL_IO_MEMSLOT_ADD, slot_id,
                 async_)
        self.slot_gens[slot_id] = self.rom.slot_generation

    def memslot_del(self, slot_id: int) -> None:
        self.att.io_write(lib.QXL_IO_MEMSLOT_DEL, slot_id)
        self.slot_gens.pop(slot_id, None)

    def phys(self, offset: int) -> int:
        """The QXLPHYSICAL of a mapping offset in RAM (main slot) or VRAM (surface slot)."""
        slot = self.vram_slot if offset >= self.layout.vram_offset else self.main_slot
        return (slot << self.id_shift) | (self.slot_gens[slot] << self.gen_shift) | offset

    # --- interrupts -----------------------------------------------------------------------

    def take_interrupts(self) -> int:
        """Takes pending interrupt bits (as the driver's IRQ handler: exchange, UPDATE_IRQ)."""
        bits = lib.vgpu_atomic_xchg32(self._int_pending, 0)
        if bits:
            self.att.io_write(lib.QXL_IO_UPDATE_IRQ, 0)
        self._pending_irqs |= bits
        return bits

    def wait_interrupt(self, bits: int, timeout: float = IRQ_TIMEOUT) -> int:
        """Waits until one of `bits` arrives; returns (and consumes) those bits.
        QXL_INTERRUPT_ERROR always ends the wait with DeviceError."""
        got = self._await_interrupt(bits, timeout)
        if not got:
            raise DeviceError(f"no interrupt {bits:#x} within {timeout} s")
        return got

    def _await_interrupt(self, bits: int, timeout: float) -> int:
        """wait_interrupt that answers 0 on timeout instead of raising."""
        deadline = time.monotonic() + timeout
        while True:
            self.take_interrupts()
            if self._pending_irqs & lib.QXL_INTERRUPT_ERROR:
                self._pending_irqs &= ~lib.QXL_INTERRUPT_ERROR
                raise DeviceError("the device reported a guest bug (QXL_INTERRUPT_ERROR)")
            got = self._pending_irqs & bits
            if got:
                self._pending_irqs &= ~got
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            self.att.wait_irq(min(left, IRQ_POLL))

    def _io(self, port: int, value: int, async_: bool) -> None:
        self.att.io_write(port, value)
        if async_:
            self.wait_interrupt(lib.QXL_INTERRUPT_IO_CMD, self.irq_timeout)

    # --- commands -------------------------------------------------------------------------

    def _alloc_cmd(self, size: int) -> int:
        """Command memory. While it is short and commands are outstanding, the driver
        takes what the device released, else asks it for more (NOTIFY_OOM: the device
        runs its rings and pushes its partial release chain, which only fits once the
        release ring has room) and waits for the release interrupt, up to irq_timeout.
        OutOfMemory once nothing is outstanding: no release can help any more."""
        deadline = None
        while True:
            try:
                return self.ram_alloc.alloc(size)
            except OutOfMemory:
                if not self._outstanding:
                    raise
            if self.collect_releases():
                continue
            self.att.io_write(lib.QXL_IO_NOTIFY_OOM, 0)
            if self.collect_releases():
                continue
            now = time.monotonic()
            deadline = now + self.irq_timeout if deadline is None else deadline
            if now >= deadline:
                raise DeviceError(f"{len(self._outstanding)} commands not released within "
                                  f"{self.irq_timeout} s while out of command memory")
            # collect_releases asked for the interrupt on the device's next push
            self._await_interrupt(lib.QXL_INTERRUPT_DISPLAY, deadline - now)

    def submit(self, cmd: c.Command, *, compat: bool = False) -> int:
        """Writes `cmd` into guest memory and pushes it on its ring (cursor commands on
        the cursor ring), ringing the doorbell when the device asked for it. The
        command's own release_id is ignored: the driver assigns one and returns it."""
        rid = self._next_id
        self._next_id += 1
        writer = CommandWriter(self.buf, self._alloc_cmd, self.phys, self.chunk_size)
        try:
            addr = writer.write(cmd, rid, compat)
        except BaseException:
            for b in writer.blocks:
                self.ram_alloc.free(b)
            raise
        self._outstanding[rid] = (addr & ((1 << self.gen_shift) - 1), writer.blocks)
        self.push_raw("cursor" if isinstance(cmd, c.CursorCmd) else "cmd", addr,
                      COMMAND_TYPES[type(cmd)])
        return rid

    def push_raw(self, ring: str, addr: int, cmd_type: int) -> None:
        """Pushes a QXLCommand as is (replay, fuzzing): no building, no release tracking."""
        if ring == "cursor":
            self._push(self.cursor_ring, _CMD, (addr, cmd_type), lib.QXL_IO_NOTIFY_CURSOR,
                       lib.QXL_INTERRUPT_CURSOR)
        else:
            self._push(self.cmd_ring, _CMD, (addr, cmd_type), lib.QXL_IO_NOTIFY_CMD,
                       lib.QXL_INTERRUPT_DISPLAY)

    def _push(self, ring: _Ring, item: Layout, values: tuple[int, ...], doorbell: int,
              irq: int) -> None:
        self._wait_room(ring, doorbell, irq)
        prod = ring.get("prod")
        item.pack_into(self.buf, ring.item(prod), *values)
        prod = (prod + 1) & _M32
        ring.set("prod", prod)
        if prod == ring.get("notify_on_prod"):
            self.att.io_write(doorbell, 0)

    def _wait_room(self, ring: _Ring, doorbell: int, irq: int) -> None:
        """Returns once the ring has room for one item (the device said so, or up to
        irq_timeout; DeviceError after that)."""
        while True:
            prod, cons = ring.get("prod"), ring.get("cons")
            if (prod - cons) & _M32 < ring.num_items:
                break
            ring.set("notify_on_cons", cons + 1)  # ask to be told when there is room
            if (prod - ring.get("cons")) & _M32 < ring.num_items:
                continue
            self.att.io_write(doorbell, 0)  # make sure the device is looking
            self.wait_interrupt(irq, self.irq_timeout)

    def collect_releases(self) -> int:
        """Frees every command the device released; returns how many."""
        freed = 0
        for (rid,) in self.release_ring.consume(_U64):
            while rid:
                entry = self._outstanding.pop(rid, None)
                if entry is None:
                    raise DeviceError(f"device released unknown id {rid}")
                info, blocks = entry
                rid = _U64.unpack_from(self.buf, info)[0]  # QXLReleaseInfo.next
                for b in blocks:
                    self.ram_alloc.free(b)
                freed += 1
        return freed

    @property
    def outstanding(self) -> int:
        """Commands submitted and not yet released."""
        return len(self._outstanding)

    def flush_release(self) -> int:
        """Takes what the ring holds, then has the device push its partial chain (it only
        can when the ring has room) and takes that too; returns how many were freed."""
        freed = self.collect_releases()
        self.att.io_write(lib.QXL_IO_FLUSH_RELEASE, 0)
        return freed + self.collect_releases()

    # --- surfaces ---------------------------------------------------------------------------

    def create_primary(self, width: int, height: int,
                       format: int = lib.SPICE_SURFACE_FMT_32_xRGB, stride: int | None = None,
                       *, async_: bool = False, flags: int = 0,
                       data: bytes | None = None) -> int:
        """Surface 0 in the RAM bar's surface 0 area; returns its mapping offset.

        `data`: the surface's memory before the device creates it (height * |stride|
        bytes in memory order, as a record holds it); zeros when b"". None leaves the
        area as it is."""
        bpp = 2 if format in (lib.SPICE_SURFACE_FMT_16_555, lib.SPICE_SURFACE_FMT_16_565) else 4
        stride = width * bpp if stride is None else stride
        length = height * abs(stride)
        self.surface0.reset()
        off = self.surface0.alloc(length)
        if data is not None:
            self.buf[off:off + length] = data if data else bytes(length)
        _CREATE.pack_into(self.buf, self.hdr, width,
                          height, stride, format, 0, 0, flags, lib.QXL_SURF_TYPE_PRIMARY,
                          self.phys(off))
        self._io(lib.QXL_IO_CREATE_PRIMARY_ASYNC if async_ else lib.QXL_IO_CREATE_PRIMARY, 0,
                 async_)
        return off

    def destroy_primary(self, *, async_: bool = False) -> None:
        self._io(lib.QXL_IO_DESTROY_PRIMARY_ASYNC if async_ else lib.QXL_IO_DESTROY_PRIMARY, 0,
                 async_)

    def create_surface(self, surface_id: int, width: int, height: int,
                       format: int = lib.SPICE_SURFACE_FMT_32_xRGB, stride: int | None = None,
                       *, keep_data: bool = False) -> int:
        """An off-screen surface in VRAM via a SurfaceCmd; returns its memory's offset."""
        bpp = SURFACE_BPP.get(format, 32)  # an unknown format is the device's to refuse
        stride = -(-(width * bpp) // 32) * 4 if stride is None else stride  # 32-bit rows
        length = height * abs(stride)
        off = self.vram_alloc.alloc(length)
        self.submit(c.SurfaceCmd(0, surface_id, lib.QXL_SURFACE_CMD_CREATE,
                                 lib.QXL_SURF_FLAG_KEEP_DATA if keep_data else 0,
                                 c.SurfaceCreate(format, width, height, stride, off, length)))
        return off

    def alloc_surface_memory(self, length: int, data: bytes | None = None) -> int:
        """VRAM for a surface the caller creates itself (`submit` of a SurfaceCmd), holding
        `data` (zeros when None); returns its mapping offset. Raises OutOfMemory."""
        off = self.vram_alloc.alloc(length)
        self.buf[off:off + length] = data if data is not None else bytes(length)
        return off

    def free_surface_memory(self, offset: int) -> None:
        """Gives back what `alloc_surface_memory` returned, once the device is done with
        it (its surface destroyed and the destroy taken)."""
        self.vram_alloc.free(offset)

    def forget_surface_memory(self) -> None:
        """All VRAM is free again: after DESTROY_ALL_SURFACES no surface holds any."""
        self.vram_alloc.reset()

    def destroy_surface(self, surface_id: int) -> None:
        self.submit(c.SurfaceCmd(0, surface_id, lib.QXL_SURFACE_CMD_DESTROY, 0, None))

    def destroy_surface_wait(self, surface_id: int, *, async_: bool = False) -> None:
        self._io(lib.QXL_IO_DESTROY_SURFACE_ASYNC if async_ else
                 lib.QXL_IO_DESTROY_SURFACE_WAIT, surface_id, async_)

    def destroy_all_surfaces(self, *, async_: bool = False) -> None:
        self._io(lib.QXL_IO_DESTROY_ALL_SURFACES_ASYNC if async_ else
                 lib.QXL_IO_DESTROY_ALL_SURFACES, 0, async_)

    def update_area(self, surface_id: int, area: c.QRect, *, async_: bool = False) -> None:
        _UPDATE_AREA.pack_into(self.buf, self.hdr, *area,
                               surface_id)
        self._io(lib.QXL_IO_UPDATE_AREA_ASYNC if async_ else lib.QXL_IO_UPDATE_AREA, 0, async_)

    def flush_surfaces(self) -> None:
        self._io(lib.QXL_IO_FLUSH_SURFACES_ASYNC, 0, True)

    def set_mode(self, mode: int) -> None:
        """qxl-1 mode set: the device enters compat mode (submit with compat=True)."""
        self.att.io_write(lib.QXL_IO_SET_MODE, mode)

    def monitors_config(self, heads: Iterable[tuple[int, int, int, int, int, int, int]],
                        max_allowed: int = 0) -> None:
        """heads: (id, surface_id, width, height, x, y, flags) each."""
        heads = list(heads)
        size = _MONITORS.size + len(heads) * _HEAD.size
        off = self._alloc_cmd(size)
        try:
            _MONITORS.pack_into(self.buf, off, len(heads), max_allowed)
            base = off + offsetof("QXLMonitorsConfig", "heads")
            for i, h in enumerate(heads):
                _HEAD.pack_into(self.buf, base + i * _HEAD.size, *h)
            _U64.pack_into(self.buf, self.hdr + offsetof("QXLRam", "monitors_config"),
                           self.phys(off))
            self._io(lib.QXL_IO_MONITORS_CONFIG_ASYNC, 0, True)
        finally:
            self.ram_alloc.free(off)

    def log(self, message: str) -> None:
        raw = message.encode("utf-8", "replace")[:lib.QXL_LOG_BUF_SIZE - 1] + b"\0"
        start = self.hdr + offsetof("QXLRam", "log_buf")
        self.buf[start:start + len(raw)] = raw
        self.att.io_write(lib.QXL_IO_LOG, 0)

    def notify_cmd(self) -> None:
        """Rings the command ring's doorbell, whether or not the device asked for it."""
        self.att.io_write(lib.QXL_IO_NOTIFY_CMD, 0)

    def notify_cursor(self) -> None:
        """Rings the cursor ring's doorbell, whether or not the device asked for it."""
        self.att.io_write(lib.QXL_IO_NOTIFY_CURSOR, 0)

    def notify_oom(self) -> None:
        self.att.io_write(lib.QXL_IO_NOTIFY_OOM, 0)

    def reset(self) -> None:
        """QXL_IO_RESET, then the driver sets itself up again (memslots, allocators)."""
        self.att.io_write(lib.QXL_IO_RESET, 0)
        self._outstanding.clear()
        self._pending_irqs = 0
        self.slot_gens.clear()
        for a in (self.ram_alloc, self.vram_alloc, self.surface0):
            a.reset()
        self._gl_batches = self._gl_data = None  # their pages went with ram_alloc's reset
        self._gl_next_fence = 1  # the device zeroed the fence area
        self._setup()

    def client_monitors_config(self) -> list[tuple[int, int, int, int]] | None:
        """The client's monitors (left, top, right, bottom) from the ROM, or None when the
        CRC does not match (the device is writing it right now: read again)."""
        cfg = self.rom.client_monitors_config
        raw = bytes(ffi.buffer(ffi.addressof(cfg), ffi.sizeof(cfg)))
        if zlib.crc32(raw, 0xFFFFFFFF) ^ 0xFFFFFFFF != self.rom.client_monitors_config_crc:
            return None
        return [(h.left, h.top, h.right, h.bottom) for h in
                (cfg.heads[i] for i in range(min(cfg.count, len(cfg.heads))))]

    # --- input (vgpu extension) ---------------------------------------------------------

    def read_input(self) -> list[InputEvent]:
        """Every queued client input event (empty if the device has no input ring)."""
        ring = self.input_ring
        if ring is None:
            return []
        events = []
        for kind, code, x, y, buttons, display in ring.consume(_IN_EVENT.struct):
            name = _INPUT_NAMES.get(kind)
            if name is not None:
                events.append(InputEvent(name, code, x, y, buttons, display))
        return events

    # --- 3D ring (vgpu extension, docs/3d-ring.md) ------------------------------------------

    def gl_available(self) -> bool:
        """Whether the device announces the 3D ring (VGPU_FEATURE_3D_RING)."""
        return self.gl_ring is not None

    def _gl_ring(self) -> _Ring:
        if self.gl_ring is None:
            raise DeviceError("the device has no 3D ring (VGPU_FEATURE_3D_RING)")
        return self.gl_ring

    def _gl_arena(self, which: int) -> _RingArena:
        """Batch (0) or answer/data (1) memory, taken from the RAM pages at first use: as
        much as asked, or less (halving down to GL_MIN_MEMORY) when RAM is short."""
        arena = self._gl_batches if which == 0 else self._gl_data
        if arena is not None:
            return arena
        size = self._gl_sizes[which]
        while True:
            try:
                start = self.ram_alloc.alloc(size, PAGE)
                break
            except OutOfMemory:
                if size // 2 < GL_MIN_MEMORY:
                    raise
                size //= 2
        arena = _RingArena(start, start + size)
        if which == 0:
            self._gl_batches = arena
        else:
            self._gl_data = arena
        return arena

    def gl_completed(self) -> int:
        """The value of the last FENCE the device has executed (Vgpu3dFence.completed)."""
        self._gl_ring()
        return int(lib.vgpu_atomic_load64(self._gl_completed))

    def gl_submit(self, batch: bytes | memoryview) -> None:
        """Copies a batch of 3D commands into batch memory, pushes a Vgpu3dSubmit and rings
        VGPU_IO_NOTIFY_3D when the device asked for it. Waits (up to irq_timeout) for ring
        room and batch memory; splits nothing."""
        self._gl_push(batch, b"")

    def gl_submit_fence(self, batch: bytes | memoryview, interrupt: bool = True) -> int:
        """Submits `batch` with a FENCE of the next value at its end, as one ring item (one
        frame, one item: what gl_submit and gl_fence do in two); returns the value. A batch
        with no room left for the FENCE goes first on its own."""
        arena = self._gl_arena(0)
        if len(batch) + _FENCE.size > min(self.gl_max_batch, arena.end - arena.start):
            self.gl_submit(batch)
            batch = b""
        value = self.gl_fence_value()
        flags = lib.VGPU_3D_FENCE_INTERRUPT if interrupt else 0
        self._gl_push(batch, _FENCE.pack(_FENCE_OPCODE | _FENCE_WORDS << 16, value & _M32,
                                         value >> 32, flags))
        return value

    def _gl_push(self, batch: bytes | memoryview, tail: bytes) -> None:
        """One ring item: `batch` then `tail`, copied into batch memory."""
        ring = self._gl_ring()
        head = len(batch)
        size = head + len(tail)
        if not 0 < size <= self.gl_max_batch or size % 4:
            raise ValueError(f"a batch is a multiple of 4 bytes, 4 to {self.gl_max_batch}")
        arena = self._gl_arena(0)
        if -(-size // GL_ALIGN) * GL_ALIGN > arena.end - arena.start:
            raise ValueError(f"a batch of {size} bytes is larger than the driver's "
                             f"{arena.end - arena.start} bytes of batch memory")
        self._wait_room(ring, lib.VGPU_IO_NOTIFY_3D, lib.VGPU_INTERRUPT_3D)
        prod = ring.get("prod")
        deadline = None
        while True:
            cons = ring.get("cons")
            live = arena.live
            while live and _passed(cons, live[0][0]):  # retire what the device has copied
                live.popleft()
            off = arena.alloc(size, prod)
            if off is not None:
                break
            now = time.monotonic()
            deadline = now + self.irq_timeout if deadline is None else deadline
            if now >= deadline:
                raise DeviceError(f"3D batches not consumed within {self.irq_timeout} s")
            oldest = arena.live[0][0]
            ring.set("notify_on_cons", oldest + 1)  # tell me when it has passed the oldest
            if _passed(ring.get("cons"), oldest):
                continue
            self.att.io_write(lib.VGPU_IO_NOTIFY_3D, 0)
            self._await_interrupt(lib.VGPU_INTERRUPT_3D, deadline - now)
        self.buf[off:off + head] = batch
        self.buf[off + head:off + size] = tail
        self._gl_push_item(ring, prod, off, size)

    def gl_push(self, offset: int, size: int) -> None:
        """Pushes a Vgpu3dSubmit for a batch the caller already wrote in RAM at mapping
        offset `offset` (memory of its own, from `ram_alloc`, that it reuses only after a
        later fence has completed) and rings VGPU_IO_NOTIFY_3D when asked. For a guest
        library writing its batches in place (vgpu.guest.glrelay)."""
        ring = self._gl_ring()
        if not 0 < size <= self.gl_max_batch or size % 4:
            raise ValueError(f"a batch is a multiple of 4 bytes, 4 to {self.gl_max_batch}")
        self._wait_room(ring, lib.VGPU_IO_NOTIFY_3D, lib.VGPU_INTERRUPT_3D)
        self._gl_push_item(ring, ring.get("prod"), offset, size)

    def _gl_push_item(self, ring: _Ring, prod: int, offset: int, size: int) -> None:
        _GL_SUBMIT.pack_into(self.buf, ring.item(prod), self.phys(offset), size, 0)
        prod = (prod + 1) & _M32
        ring.set("prod", prod)
        if prod == ring.get("notify_on_prod"):
            self.att.io_write(lib.VGPU_IO_NOTIFY_3D, 0)

    def gl_fence_value(self) -> int:
        """Takes the next fence value, for a FENCE the caller writes into a batch of its
        own (`gl_push`)."""
        value = self._gl_next_fence
        self._gl_next_fence += 1
        return value

    def gl_fence(self, interrupt: bool = True) -> int:
        """Submits a batch holding one FENCE with the next value; returns the value."""
        return self.gl_submit_fence(b"", interrupt)

    def gl_wait_fence(self, value: int, timeout: float | None = None, *,
                      paced: bool = False) -> bool:
        """Waits until fence `value` has completed; False on timeout. The fence should have
        asked for the interrupt: one that did not is only seen every IRQ_POLL seconds.
        DeviceError if the device reports a guest bug meanwhile. `paced`: a wait the
        caller expects to last (back-pressure on a busy host) naps first (PACE_SPIN_S)."""
        if self.gl_completed() >= value:
            return True
        start = time.monotonic()
        if paced:
            return self._gl_paced_wait(value, start, timeout)
        if self._gl_spin_skip:
            self._gl_spin_skip -= 1
        else:
            done = lib.vgpu_spin_until64(self._gl_completed, value,
                                         int(FENCE_SPIN_S * 1e9)) >= value
            if not done or time.monotonic() - start > FENCE_SPIN_S:  # overran: core wanted
                self._gl_spin_skip = FENCE_SPIN_BACKOFF
            if done:
                return True
        deadline = None if timeout is None else start + timeout
        while True:
            if self.gl_completed() >= value:
                return True
            # not acknowledged on the way out: the acknowledgement of one fence's interrupt
            # then overlaps the device's work on the next
            self.take_interrupts()
            if self._pending_irqs & lib.QXL_INTERRUPT_ERROR:
                self._pending_irqs &= ~lib.QXL_INTERRUPT_ERROR
                raise DeviceError("the device reported a guest bug (QXL_INTERRUPT_ERROR)")
            self._pending_irqs &= ~lib.VGPU_INTERRUPT_3D
            if self.gl_completed() >= value:
                return True
            left = IRQ_POLL if deadline is None else min(IRQ_POLL, deadline - time.monotonic())
            if left <= 0:
                return False
            self.att.wait_irq(left)

    def _gl_paced_wait(self, value: int, start: float, timeout: float | None) -> bool:
        """gl_wait_fence, paced (PACE_SPIN_S): a nap, then a spin, then (the fence still to
        come) the plain wait; how long it took teaches the next naps (PACE_HISTORY)."""
        nap = min(self._gl_waits, default=0.0) - PACE_SPIN_S
        if timeout is not None:
            nap = min(nap, timeout)
        if nap >= PACE_MIN_NAP_S:
            time.sleep(nap)  # without the interpreter lock; asleep on no line the device sets
            if self.gl_completed() >= value:
                self._gl_waits.append((time.monotonic() - start) * PACE_SHRINK)
                return True
        # a spin ends within 2 PACE_SPIN_S of the shortest wait: where the waits spread
        # wider (long frames), it mostly would not see the fence, and is not made
        spin = max(self._gl_waits, default=0.0) - min(self._gl_waits, default=0.0) \
            <= 2 * PACE_SPIN_S
        done = spin and lib.vgpu_spin_until64(self._gl_completed, value,
                                              int(2 * PACE_SPIN_S * 1e9)) >= value
        if not done:
            done = self.gl_wait_fence(value, None if timeout is None
                                      else max(0.0, timeout - (time.monotonic() - start)))
        if done:  # a wait that timed out says nothing of the next one
            self._gl_waits.append(time.monotonic() - start)
        return done

    def _gl_data_alloc(self, nbytes: int) -> int:
        """Answer/data memory until the fence after this call completes."""
        self._gl_ring()
        arena = self._gl_arena(1)
        if nbytes <= 0 or -(-nbytes // GL_ALIGN) * GL_ALIGN > arena.end - arena.start:
            raise ValueError(f"{nbytes} bytes: answer and data memory holds 1 to "
                             f"{arena.end - arena.start}")
        completed = self.gl_completed()
        arena.retire(lambda fence: fence <= completed)
        off = arena.alloc(nbytes, self._gl_next_fence)
        if off is not None:
            return off
        # Wait for the oldest part's fence if it was submitted; if not, only the caller
        # can submit what refers to that memory and then a fence.
        oldest = arena.live[0][0]
        if oldest >= self._gl_next_fence or not self.gl_wait_fence(oldest, self.irq_timeout):
            raise OutOfMemory(f"3D answer/data memory is full until fence {oldest}: submit "
                              "the batches that use it and a fence")
        return self._gl_data_alloc(nbytes)

    def gl_reply(self, nbytes: int) -> tuple[int, memoryview]:
        """A QXLPHYSICAL and a view of `nbytes` of guest memory for `out`/`ret` answers,
        valid (and not reused) until the fence that follows this call completes; read it
        after that fence. Release the view before `close()`."""
        off = self._gl_data_alloc(nbytes)
        return self.phys(off), memoryview(self.buf)[off:off + nbytes]

    def gl_data(self, data: bytes | memoryview) -> int:
        """Copies data into guest memory and returns its QXLPHYSICAL, valid until the
        fence that follows this call completes (blobs by reference)."""
        off = self._gl_data_alloc(len(data))
        self.buf[off:off + len(data)] = data
        return self.phys(off)

    def close(self) -> None:
        ffi.release(self._cdata)
        self.att.close()
