"""The QXL device (revision 5): IO ports, interrupts, rings, surfaces, release ring.

Threads. The device belongs to ONE thread, the one that owns the renderer (the
render thread); every `DisplayBackend` call and every observer call happens
there, inside `Device.process()`. Other threads only use the thread-safe entry
points: `io_write()` (queues a port write and returns an `IoRequest` the caller
may wait on), `push_input()`, `wait_for_work()` and the listener registrations.

The render thread's loop is:

    while running:
        device.wait_for_work(timeout)      # woken by IO writes and ring doorbells
        while device.process(max_commands=256):
            pass                            # (render and publish between batches)

Guests attach through `vgpu.device.inprocess.InProcessAttachment` (a guest on
another thread, or inline on the device's own thread) or the out-of-process
transport; both end in `io_write()` and the interrupt listeners here.

Interrupts follow QEMU's qxl: the device ORs bits into QXLRam.int_pending
(atomically: the guest takes the word with an atomic exchange) and the IRQ line
is `int_pending & int_mask != 0`; the guest acknowledges by clearing bits and
writing QXL_IO_UPDATE_IRQ. Interrupt listeners get the line level.

Guest bugs. Any check that fails (bad address, size, id, ring index, IO port,
second async IO in flight, ...) puts the device in the guest-bug state: the
reason is logged and kept in `guest_bug`, QXL_INTERRUPT_ERROR is raised, and
rings and IO writes are ignored (except UPDATE_IRQ, so the guest can take the
interrupt) until QXL_IO_RESET.

Rings. `Device.rings` is a table: each row names a ring, its doorbell port, the
interrupt raised when the device consumes up to the guest's notify_on_cons (room to
push), and the handler of one item. `process()` walks the table. The 2D command and
cursor rings carry QXLCommands for the parser; the 3D ring (docs/3d-ring.md) carries
Vgpu3dSubmits: the device checks the item, copies the batch out of guest memory and
hands the copy to `DisplayBackend.execute_3d` with `Gl3dGuest`, its view of guest
memory and of the fence area. What a batch says is the backend's to check and never a
guest bug of the device; a bad item is.

Release ring: every command is released as soon as it has been parsed (the
parser copies everything). Releases are chained as QEMU's qxl does: the head id
goes into the release ring's current producer slot, later ids into the `next`
field (QXLReleaseInfo, the first 8 bytes of every command) of the previous one;
the slot is pushed after RELEASE_BUNCH releases, at the end of every `process()`
batch, on NOTIFY_OOM and on FLUSH_RELEASE, whenever the ring has room.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import numpy as np

from vgpu.device import commands as c
from vgpu.device.abi import Layout, ffi, lib, offsetof, sizeof
from vgpu.device.backend import DisplayBackend, Gl3dGuest
from vgpu.device.memory import (
    DEFAULT_RAM_SIZE,
    DEFAULT_VRAM_SIZE,
    PAGE,
    ROM_SIZE,
    GuestBug,
    GuestMemory,
    MemoryLayout,
    MemSlots,
)
from vgpu.device.parser import SURFACE_BPP, Parser
from vgpu.display import InputEvent

log = logging.getLogger(__name__)

DEFAULT_N_SURFACES = 1024
"""QEMU's default (qxl's `surfaces` property)."""

NUM_MEMSLOTS = 8
"""As QEMU: slot 0 for the qxl-1 compat mode (SET_MODE), slots 1..7 for the driver."""
SLOTS_START = 1
SLOT_ID_BITS = 8
SLOT_GEN_BITS = 8

RELEASE_BUNCH = 32
"""Releases collected in one chain before the slot is pushed (QEMU's QXL_FREE_BUNCH_SIZE)."""

IDLE_SPIN_S = 150e-6
"""How long wait_for_work spins before it sleeps: a fence round trip's guest rings again
30-60 us after the device's last batch (50 us gave up before it, and both sides slept:
round trips bimodal at 64-96 us against 72-80 here); the spin costs at most this much CPU
each time the device runs dry (at most one in SPIN_BACKOFF when nothing comes), and none
while work keeps coming (a frame loop keeps the rings busy)."""

IDLE_WAIT_SLICE_S = 1.0
"""wait_for_work() without a timeout sleeps in slices of this, so the interpreter gets to
run its signal handlers now and then."""

SPIN_BACKOFF = 32
"""Waits that sleep at once after a spin that saw nothing or took longer than it should
(other work wanted the core: then a sleeper, woken first, answers sooner than a spinner
queued behind that work for a time slice)."""

MAX_PENDING_IO = 256
"""Queued IO writes. A guest waits on every synchronous port and may have one async
port in flight, so only a misbehaving guest (or many guest threads) reaches this."""

MAX_FLUSH_COMMANDS = 4096
"""Commands processed by one flush (UPDATE_AREA, DESTROY_*, FLUSH_SURFACES): all
the ring holds and more, yet a guest refilling the ring cannot keep the device there."""

MAX_MONITORS = 64
"""Heads in one monitors config, as many as QXLRom.client_monitors_config can describe."""

MODES_OFFSET = 2048
"""ROM offset of QXLModes, after QXLRom and VgpuRomExt."""

DEFAULT_MODES = ((640, 480), (800, 600), (1024, 768), (1280, 720), (1280, 1024),
                 (1600, 900), (1920, 1080))
"""qxl-1 modes in the ROM (32 bits a pixel); only those that fit surface 0's area are listed."""

SURFACE0_AREA = 16 * 1024 * 1024
"""Start of the RAM bar reserved for surface 0 (the primary), at most half the RAM."""

PRIMARY_FORMATS = frozenset({lib.SPICE_SURFACE_FMT_32_xRGB, lib.SPICE_SURFACE_FMT_32_ARGB,
                             lib.SPICE_SURFACE_FMT_16_555, lib.SPICE_SURFACE_FMT_16_565})

ASYNC_PORTS = frozenset({
    lib.QXL_IO_UPDATE_AREA_ASYNC, lib.QXL_IO_MEMSLOT_ADD_ASYNC,
    lib.QXL_IO_CREATE_PRIMARY_ASYNC, lib.QXL_IO_DESTROY_PRIMARY_ASYNC,
    lib.QXL_IO_DESTROY_SURFACE_ASYNC, lib.QXL_IO_DESTROY_ALL_SURFACES_ASYNC,
    lib.QXL_IO_FLUSH_SURFACES_ASYNC, lib.QXL_IO_MONITORS_CONFIG_ASYNC})
"""Ports that return at once and finish with QXL_INTERRUPT_IO_CMD."""

DOORBELL_PORTS = frozenset({lib.QXL_IO_NOTIFY_CMD, lib.QXL_IO_NOTIFY_CURSOR,
                            lib.VGPU_IO_NOTIFY_3D})
"""Ports that only wake the device to look at a ring: nothing to wait for."""

GL_MAX_BATCH = 4 * 1024 * 1024
"""Largest 3D batch (VgpuRomExt.gl_max_batch): the device copies each batch before it
parses it, so this bounds that copy; a frame of a heavy scene fits with room."""

GL_MAX_CONTEXTS = 64
"""3D context ids run 1..this (VgpuRomExt.gl_max_contexts): ids fit a bitmap, and no
guest's EGL needs more at once (docs/3d-ring.md, Quotas)."""

GL_BATCHES_PER_PROCESS = 4
"""3D batches taken per `process()` call, at most: a batch may hold a frame's worth of
draws, so a flood of batches still lets the render thread publish frames in between
(and copies at most 4 x GL_MAX_BATCH bytes per call)."""

INPUT_KINDS = {
    "key_down": lib.VGPU_INPUT_KEY_DOWN, "key_up": lib.VGPU_INPUT_KEY_UP,
    "mouse_position": lib.VGPU_INPUT_MOUSE_POSITION,
    "mouse_motion": lib.VGPU_INPUT_MOUSE_MOTION, "mouse_press": lib.VGPU_INPUT_MOUSE_PRESS,
    "mouse_release": lib.VGPU_INPUT_MOUSE_RELEASE, "modifiers": lib.VGPU_INPUT_MODIFIERS,
}

# --- offsets in the RAM header and the ROM -----------------------------------------

_RAM_SIZE = sizeof("QXLRam")
_INT_PENDING = offsetof("QXLRam", "int_pending")
_INT_MASK = offsetof("QXLRam", "int_mask")
_LOG_BUF = offsetof("QXLRam", "log_buf")
_CMD_RING = offsetof("QXLRam", "cmd_ring")
_CURSOR_RING = offsetof("QXLRam", "cursor_ring")
_RELEASE_RING = offsetof("QXLRam", "release_ring")
_RING_HEADER = ("num_items", "prod", "notify_on_prod", "cons", "notify_on_cons")
_PROD, _NOTIFY_ON_PROD, _CONS, _NOTIFY_ON_CONS = (
    offsetof("QXLCommandRing", f) for f in _RING_HEADER[1:])
_QXL_ITEMS = offsetof("QXLCommandRing", "items")
_RING_FIELDS = Layout("QXLCommandRing", list(_RING_HEADER))
assert _QXL_ITEMS == offsetof("QXLReleaseRing", "items") == offsetof("QXLCursorRing", "items")
for _ring_type in ("VgpuInputRing", "Vgpu3dRing"):  # vgpu's rings share the QXL header
    assert all(offsetof(_ring_type, f) == offsetof("QXLCommandRing", f) for f in _RING_HEADER)
_CMD_ITEM = Layout("QXLCommand", ["data", "type"])
_GL_ITEMS = offsetof("Vgpu3dRing", "items")
_GL_ITEM = Layout("Vgpu3dSubmit", ["batch", "size", "flags"])
_GL_FENCE = {f: offsetof("Vgpu3dFence", f) for f in ("completed", "lost_contexts", "errors")}
_CMD_SIZE = sizeof("QXLCommandRing_ring_el")
_REL_SIZE = sizeof("QXLReleaseRing_ring_el")
_IN_ITEMS = offsetof("VgpuInputRing", "items")
_IN_SIZE = sizeof("VgpuInputEvent")
_IN_EVENT = Layout("VgpuInputEvent", ["kind", "code", "x", "y", "buttons", "display"])
_UPDATE_AREA = Layout("QXLRam", ["update_area", "update_surface"])
_MEM_SLOT = Layout("QXLRam", ["mem_slot"])
_CREATE = Layout("QXLRam", ["create_surface"])
_MONITORS_ADDR = Layout("QXLRam", ["monitors_config"])
_MONITORS = Layout("QXLMonitorsConfig", ["count", "max_allowed"])
_HEAD = Layout("QXLHead", ["id", "surface_id", "width", "height", "x", "y", "flags"])
_HEADS = offsetof("QXLMonitorsConfig", "heads")
_P = ParamSpec("_P")
_R = TypeVar("_R")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_M32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SurfaceInfo:
    """A live surface: its geometry and where its pixels are in guest memory."""

    width: int
    height: int
    stride: int
    format: int
    offset: int  # mapping offset of the lowest-addressed byte
    length: int  # height * abs(stride)

    def rows(self, mem: GuestMemory) -> np.ndarray:
        """A live (height, abs(stride)) view of the guest memory, top row first."""
        arr = mem.array[self.offset:self.offset + self.length].reshape(
            self.height, abs(self.stride))
        return arr[::-1] if self.stride < 0 else arr


@dataclass(frozen=True, slots=True)
class PrimaryCreate:
    """What CREATE_PRIMARY (or SET_MODE) received: QXLSurfaceCreate and surface 0's memory."""

    width: int
    height: int
    stride: int
    format: int
    position: int
    mouse_mode: int
    flags: int
    type: int
    data: bytes  # height * abs(stride) bytes in memory order


@dataclass(frozen=True, slots=True)
class MonitorHead:
    id: int
    surface_id: int
    width: int
    height: int
    x: int
    y: int
    flags: int


class DeviceObserver:
    """Hooks called on the device thread (record sessions, count, test). Override any."""

    def on_io(self, port: int, value: int) -> None:
        """An IO port write, before the device acts on it."""

    def on_command(self, ring: str, cmd_type: int, addr: int, command: c.Command,
                   compat: bool) -> None:
        """A command popped from ring "cmd" or "cursor" and parsed without error."""

    def on_primary_created(self, create: PrimaryCreate) -> None:
        """Surface 0 was created (CREATE_PRIMARY, its async form, or SET_MODE)."""

    def on_primary_destroyed(self) -> None:
        """Surface 0 went away."""

    def on_monitors_config(self, heads: tuple[MonitorHead, ...], max_allowed: int) -> None:
        """MONITORS_CONFIG_ASYNC was accepted."""

    def on_guest_bug(self, reason: str) -> None:
        """The device entered the guest-bug state."""

    def on_reset(self) -> None:
        """QXL_IO_RESET."""


class IoRequest:
    """A queued IO port write; `wait()` returns once the device has acted on it."""

    __slots__ = ("_done", "bad_async", "port", "value")

    def __init__(self, port: int, value: int) -> None:
        self.port = port
        self.value = value
        self.bad_async = False
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


_DONE = IoRequest(-1, 0)
_DONE._done.set()  # what doorbells (nothing to wait for) and dropped writes get back


class _Ring:
    """One SPICE ring in the RAM header, read and written at fixed mapping offsets."""

    def __init__(self, mem: GuestMemory, base: int, num_items: int, item_size: int,
                 items_offset: int = _QXL_ITEMS) -> None:
        self.mm = mem.mm
        self.base = base
        self.num_items = num_items
        self.mask = num_items - 1
        self.item_size = item_size
        self.items_offset = items_offset
        # The device's end of the ring (cons of a ring it reads, prod of one it writes):
        # kept here and only written to shared memory, since the guest may change it there.
        self.own = 0
        # The indexes are shared with a guest that may be another process. struct's
        # pack_into zeroes the bytes before it writes them, so another process could read
        # 0 in between: indexes go through single aligned 32-bit loads and stores.
        self._words = ffi.cast("uint32_t *", mem.cdata + base)

    def get(self, field: int) -> int:
        return lib.vgpu_atomic_load32(self._words + field // 4)

    def set(self, field: int, value: int) -> None:
        lib.vgpu_atomic_store32(self._words + field // 4, value & _M32)

    def item(self, index: int) -> int:
        return self.base + self.items_offset + (index & self.mask) * self.item_size

    def init(self) -> None:
        end = self.base + self.items_offset + self.num_items * self.item_size
        self.mm[self.base:end] = bytes(end - self.base)
        _RING_FIELDS.struct.pack_into(self.mm, self.base, self.num_items, 0, 1, 0, 0)
        self.own = 0


@dataclass(frozen=True, slots=True)
class RingRow:
    """One ring the device consumes, as `process()` walks them."""

    name: str  # "cmd", "cursor", "3d": what observers and logs call it
    ring: _Ring
    doorbell: int  # the IO port the guest writes after a push the device asked to hear of
    interrupt: int  # raised when the device consumes up to notify_on_cons (room to push)
    # one ring item, read as a flat tuple of its fields, which the handlers name as they
    # unpack them: a record (`Layout.unpack_from`) is a Python call more per item, 0.1-0.3 us
    # of the device path's 16 us per drawable (bench/parse.py's mix)
    item: struct.Struct
    handle: Callable[[tuple[Any, ...]], None]  # one item; GuestBug for a bad one
    fetch: Callable[[tuple[int, ...]], tuple[Any, ...]] | None
    """What must be read before cons passes the item, its result handed to `handle` (the
    3D batch: the guest reuses its memory once cons has passed it); GuestBug for a bad one."""
    accepts: frozenset[int] | None  # command types (2D), None where the handler decides
    flushed: bool  # run to empty before a synchronous 2D operation (UPDATE_AREA, ...)
    per_process: int | None  # items per process() call at most (None: the caller's)


class _Gl3dGuest:
    """The device's `Gl3dGuest`: guest memory, memslots and the fence area, for the 3D
    executor on the device thread."""

    def __init__(self, device: Device) -> None:
        self._device = device
        mem = device.mem
        self.base = int(ffi.cast("uintptr_t", mem.cdata))
        self.size = mem.layout.total
        fence = device.layout.ram_offset + device.gl_fence_offset
        self._completed = ffi.cast("uint64_t *", mem.cdata + fence + _GL_FENCE["completed"])
        self._counters = {what: ffi.cast("uint32_t *", mem.cdata + fence + _GL_FENCE[what])
                          for what in ("errors", "lost_contexts")}
        self._interrupt = False  # a fence asked for VGPU_INTERRUPT_3D since `signal`

    def slot_table(self) -> tuple[int, int, list[tuple[int, int, int] | None]]:
        return (SLOT_ID_BITS, SLOT_GEN_BITS,
                [None if s is None else (s.start, s.end, s.generation)
                 for s in self._device.slots.slots])

    def translate(self, addr: int, length: int) -> int | None:
        try:
            return self._device.slots.translate(addr, length)
        except GuestBug:
            return None

    def fence(self, value: int, interrupt: bool) -> None:
        lib.vgpu_atomic_store64(self._completed, value & 0xFFFFFFFFFFFFFFFF)
        self._device.stats["gl_fences"] += 1
        self._interrupt |= interrupt

    def signal(self) -> None:
        if self._interrupt:
            self._interrupt = False
            self._device._raise(lib.VGPU_INTERRUPT_3D)

    def count(self, what: str) -> None:
        word = self._counters[what]  # KeyError: the backend's defect, counted as such
        lib.vgpu_atomic_store32(word, (lib.vgpu_atomic_load32(word) + 1) & _M32)


class Device:
    """A QXL revision 5 device over shared guest memory, drawing through a DisplayBackend."""

    def __init__(self, backend: DisplayBackend, *, ram_size: int = DEFAULT_RAM_SIZE,
                 vram_size: int = DEFAULT_VRAM_SIZE, n_surfaces: int = DEFAULT_N_SURFACES,
                 modes: tuple[tuple[int, int], ...] = DEFAULT_MODES,
                 cursor_sink: Callable[[c.CursorCmd], None] | None = None) -> None:
        if not 0 < n_surfaces <= 1 << 16:
            raise ValueError("n_surfaces out of range")
        self.backend = backend
        self.cursor_sink = cursor_sink
        self.n_surfaces = n_surfaces
        self.mem = GuestMemory(MemoryLayout(ROM_SIZE, ram_size, vram_size))
        self.layout = self.mem.layout
        self.slots = MemSlots(self.mem, NUM_MEMSLOTS, SLOT_ID_BITS, SLOT_GEN_BITS)
        self.surfaces: dict[int, SurfaceInfo] = {}
        self.parser = Parser(self.slots, n_surfaces, self.surfaces)
        self.guest_bug: str | None = None
        self.monitors: tuple[MonitorHead, ...] = ()
        self.backend_errors = 0
        self.internal_errors = 0
        self.on_gl_batch: Callable[[], None] | None = None  # called before each 3D batch
        self.stats = {"commands": 0, "cursor_commands": 0, "io": 0, "released": 0,
                      "dropped": 0, "gl_batches": 0, "gl_bytes": 0, "gl_fences": 0}

        ram_header_size = -(-_RAM_SIZE // PAGE) * PAGE
        input_size = -(-sizeof("VgpuInputRing") // PAGE) * PAGE
        gl_ring_size = -(-sizeof("Vgpu3dRing") // PAGE) * PAGE
        gl_fence_size = -(-sizeof("Vgpu3dFence") // PAGE) * PAGE
        self.surface0_area = min(SURFACE0_AREA, ram_size // 2)
        self.ram_header_offset = ram_size - ram_header_size
        self.input_ring_offset = self.ram_header_offset - input_size
        self.gl_ring_offset = self.input_ring_offset - gl_ring_size
        self.gl_fence_offset = self.gl_ring_offset - gl_fence_size
        if self.gl_fence_offset <= self.surface0_area:
            raise ValueError("RAM too small")
        self.modes = tuple((w, h) for w, h in modes if w * h * 4 <= self.surface0_area)
        self._hdr = self.layout.ram_offset + self.ram_header_offset
        mem = self.mem
        self.rom = mem.ptr("QXLRom", 0)
        self.ext = mem.ptr("VgpuRomExt", lib.VGPU_ROM_EXT_OFFSET)
        self._int_pending = ffi.cast("uint32_t *", mem.cdata + self._hdr + _INT_PENDING)
        self._cmd_ring = _Ring(mem, self._hdr + _CMD_RING, lib.QXL_COMMAND_RING_SIZE, _CMD_SIZE)
        self._cursor_ring = _Ring(mem, self._hdr + _CURSOR_RING, lib.QXL_CURSOR_RING_SIZE,
                                  _CMD_SIZE)
        self._release_ring = _Ring(mem, self._hdr + _RELEASE_RING, lib.QXL_RELEASE_RING_SIZE,
                                   _REL_SIZE)
        self._input_ring = _Ring(mem, self.layout.ram_offset + self.input_ring_offset,
                                 lib.VGPU_INPUT_RING_SIZE, _IN_SIZE, _IN_ITEMS)
        self._gl_ring = _Ring(mem, self.layout.ram_offset + self.gl_ring_offset,
                              lib.VGPU_3D_RING_SIZE, _GL_ITEM.size, _GL_ITEMS)
        self.gl_guest: Gl3dGuest = _Gl3dGuest(self)
        self.rings: tuple[RingRow, ...] = (
            RingRow("cmd", self._cmd_ring, lib.QXL_IO_NOTIFY_CMD, lib.QXL_INTERRUPT_DISPLAY,
                    _CMD_ITEM.struct, self._command_item("cmd"), None, None, True, None),
            RingRow("cursor", self._cursor_ring, lib.QXL_IO_NOTIFY_CURSOR,
                    lib.QXL_INTERRUPT_CURSOR, _CMD_ITEM.struct, self._command_item("cursor"),
                    None, frozenset({lib.QXL_CMD_CURSOR}), True, None),
            RingRow("3d", self._gl_ring, lib.VGPU_IO_NOTIFY_3D, lib.VGPU_INTERRUPT_3D,
                    _GL_ITEM.struct, self._gl_run, self._gl_fetch, None, False,
                    GL_BATCHES_PER_PROCESS),
        )
        self._accepts = {row.name: row.accepts for row in self.rings}
        assert frozenset(row.doorbell for row in self.rings) == DOORBELL_PORTS

        # Thread-safe parts: the IO queue, the async flag, the listeners, the input ring.
        self._cv = threading.Condition()
        # bumped with every notify: what an idle spin watches and an idle sleep sleeps on
        # (vgpu_word_wait: [0] the count, [1] its sleepers)
        self._kicks = ffi.new("uint32_t[2]")
        self._spin_skip = 0  # waits left that sleep at once (SPIN_BACKOFF)
        self._queue: deque[IoRequest] = deque()
        self._kicked = False
        self._io_overflow = False
        self._async_in_flight = False
        self._input_lock = threading.Lock()
        self._irq_lock = threading.Lock()
        self._owner = threading.Lock()  # held by whichever thread is inside process()
        # replaced, never changed in place: _update_irq reads it without the lock
        self._irq_listeners: tuple[Callable[[bool], None], ...] = ()
        self.observers: list[DeviceObserver] = []

        self._next_generation = 1
        self._init_rom()
        self._reset_state()
        self._handlers: dict[int, Callable[[int], None]] = {
            **{row.doorbell: self._io_nothing for row in self.rings},
            lib.QXL_IO_UPDATE_AREA: self._io_update_area,
            lib.QXL_IO_UPDATE_AREA_ASYNC: self._io_update_area,
            lib.QXL_IO_UPDATE_IRQ: self._io_update_irq,
            lib.QXL_IO_NOTIFY_OOM: self._io_oom,
            lib.QXL_IO_RESET: self._io_reset,
            lib.QXL_IO_SET_MODE: self._io_set_mode,
            lib.QXL_IO_LOG: self._io_log,
            lib.QXL_IO_MEMSLOT_ADD: self._io_memslot_add,
            lib.QXL_IO_MEMSLOT_ADD_ASYNC: self._io_memslot_add,
            lib.QXL_IO_MEMSLOT_DEL: self._io_memslot_del,
            lib.QXL_IO_DETACH_PRIMARY: self._io_destroy_primary,
            lib.QXL_IO_ATTACH_PRIMARY: self._io_create_primary,
            lib.QXL_IO_CREATE_PRIMARY: self._io_create_primary,
            lib.QXL_IO_CREATE_PRIMARY_ASYNC: self._io_create_primary,
            lib.QXL_IO_DESTROY_PRIMARY: self._io_destroy_primary,
            lib.QXL_IO_DESTROY_PRIMARY_ASYNC: self._io_destroy_primary,
            lib.QXL_IO_DESTROY_SURFACE_WAIT: self._io_destroy_surface,
            lib.QXL_IO_DESTROY_SURFACE_ASYNC: self._io_destroy_surface,
            lib.QXL_IO_DESTROY_ALL_SURFACES: self._io_destroy_all,
            lib.QXL_IO_DESTROY_ALL_SURFACES_ASYNC: self._io_destroy_all,
            lib.QXL_IO_FLUSH_SURFACES_ASYNC: self._io_flush_surfaces,
            lib.QXL_IO_FLUSH_RELEASE: self._io_flush_release,
            lib.QXL_IO_MONITORS_CONFIG_ASYNC: self._io_monitors_config,
        }

    # --- setup ----------------------------------------------------------------------

    def _init_rom(self) -> None:
        rom = self.rom
        rom.magic = lib.QXL_ROM_MAGIC
        rom.id = 0
        rom.compression_level = 0
        rom.log_level = 0
        rom.modes_offset = MODES_OFFSET
        rom.draw_area_offset = 0
        rom.surface0_area_size = self.surface0_area
        rom.pages_offset = self.surface0_area
        rom.num_pages = (self.gl_fence_offset - self.surface0_area) // PAGE
        rom.ram_header_offset = self.ram_header_offset
        rom.n_surfaces = self.n_surfaces
        rom.slots_start = SLOTS_START
        rom.slots_end = NUM_MEMSLOTS - 1
        rom.slot_gen_bits = SLOT_GEN_BITS
        rom.slot_id_bits = SLOT_ID_BITS
        modes = self.mem.ptr("QXLModes", MODES_OFFSET)
        if MODES_OFFSET + sizeof("QXLModes") + len(self.modes) * sizeof("QXLMode") > ROM_SIZE:
            raise ValueError("too many modes for the ROM")
        modes.n_modes = len(self.modes)
        for i, (w, h) in enumerate(self.modes):
            m = modes.modes[i]
            m.id, m.x_res, m.y_res, m.bits, m.stride = i, w, h, 32, w * 4
            m.x_mili, m.y_mili, m.orientation = 0, 0, 0
        ext = self.ext
        ext.magic = lib.VGPU_ROM_EXT_MAGIC
        ext.version = lib.VGPU_ROM_EXT_VERSION
        ext.features = lib.VGPU_FEATURE_INPUT_RING | lib.VGPU_FEATURE_3D_RING
        ext.input_ring_offset = self.input_ring_offset
        ext.input_dropped = 0
        ext.gl_ring_offset = self.gl_ring_offset
        ext.gl_fence_offset = self.gl_fence_offset
        ext.gl_max_batch = GL_MAX_BATCH
        ext.gl_max_contexts = GL_MAX_CONTEXTS

    def _reset_state(self) -> None:
        """Power-on and QXL_IO_RESET: RAM header, rings, memslots, surfaces, modes."""
        rom = self.rom
        rom.update_id = 0
        rom.mode = 0
        hdr = self._hdr
        mm = self.mem.mm
        mask = _U32.unpack_from(mm, hdr + _INT_MASK)[0]
        mm[hdr:hdr + _RAM_SIZE] = bytes(_RAM_SIZE)
        _U32.pack_into(mm, hdr, lib.QXL_RAM_MAGIC)
        _U32.pack_into(mm, hdr + _INT_MASK, mask)  # the guest's choice survives a reset
        for ring in (self._cmd_ring, self._cursor_ring, self._release_ring, self._gl_ring):
            ring.init()
        fence = self.layout.ram_offset + self.gl_fence_offset
        mm[fence:fence + sizeof("Vgpu3dFence")] = bytes(sizeof("Vgpu3dFence"))
        with self._input_lock:
            self._input_ring.init()
        self._last_release: int | None = None
        self._free_count = 0
        self.slots.reset()
        self.surfaces.clear()
        self.compat = False
        self.guest_bug = None
        with self._cv:
            self._async_in_flight = False
            self._io_overflow = False

    # --- thread-safe entry points ---------------------------------------------------

    def add_observer(self, observer: DeviceObserver) -> None:
        self.observers.append(observer)

    def add_irq_listener(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """`listener(level)` is called with the IRQ line level whenever it is re-evaluated
        (from the device thread, or from push_input's thread). Returns the remover."""
        with self._cv:
            self._irq_listeners += (listener,)

        def remove() -> None:
            with self._cv:
                listeners = list(self._irq_listeners)
                if listener in listeners:
                    listeners.remove(listener)
                self._irq_listeners = tuple(listeners)

        return remove

    def io_write(self, port: int, value: int) -> IoRequest:
        """Queue an IO port write (any thread). Doorbells and async ports need no waiting;
        for the others the guest waits on the returned request, as a vCPU would."""
        if port == lib.QXL_IO_UPDATE_IRQ:
            # at once on the writer's thread, as QEMU's qxl does on the vCPU's: it only
            # evaluates the line (thread-safe), and a guest taking its interrupts must not
            # wait for the render thread to end a batch (that serialized the guest's next
            # 3D frame behind the host's present of the last one)
            self._update_irq()
            return _DONE
        with self._cv:
            if port in DOORBELL_PORTS:
                self._kicked = True
                self._notify()
                return _DONE
            if len(self._queue) >= MAX_PENDING_IO:
                self._io_overflow = True
                self._notify()
                return _DONE
            req = IoRequest(port, value & _M32)
            if port in ASYNC_PORTS:
                if self._async_in_flight:
                    req.bad_async = True
                self._async_in_flight = True
            self._queue.append(req)
            self._notify()
        return req

    def _notify(self) -> None:
        """Wakes wait_for_work() (the caller holds `_cv`)."""
        lib.vgpu_word_set(self._kicks, (self._kicks[0] + 1) & _M32)

    def wake(self) -> None:
        """Make wait_for_work() return now (any thread)."""
        with self._cv:
            self._kicked = True
            self._notify()

    def wait_for_work(self, timeout: float | None = None) -> bool:
        """Block until an IO write or a doorbell arrives (or timeout); True if there is work.
        Spins IDLE_SPIN_S first, without the interpreter lock: a guest waiting on a fence
        rings again within microseconds, and a thread that sleeps at once lets its core
        halt, which a virtual machine's doorbell then pays tens of microseconds to wake."""
        with self._cv:
            if self._queue or self._kicked:
                return True
            kicks = self._kicks[0]
        spin = IDLE_SPIN_S if timeout is None else min(IDLE_SPIN_S, timeout)
        t0 = time.monotonic()
        if self._spin_skip:
            self._spin_skip -= 1
        elif spin > 0 and (lib.vgpu_spin_while32(self._kicks, kicks, int(spin * 1e9)) == kicks
                           or time.monotonic() - t0 > spin):  # overran: the core was wanted
            self._spin_skip = SPIN_BACKOFF
        # asleep in C until a notify bumps the count read above (one after that read does
        # not wait at all): no Python condition variable's work on either side
        if timeout is None:
            while lib.vgpu_word_wait(self._kicks, kicks, int(IDLE_WAIT_SLICE_S * 1e9)) == kicks:
                pass  # back in the interpreter between slices: its signal handlers run
        else:
            left = max(0.0, timeout - (time.monotonic() - t0))
            lib.vgpu_word_wait(self._kicks, kicks, int(left * 1e9))
        with self._cv:
            return bool(self._queue) or self._kicked

    def set_client_monitors_config(self, heads: list[tuple[int, int, int, int]]) -> None:
        """What a client's monitors look like, (left, top, right, bottom) each, for the guest
        (any thread): written to QXLRom.client_monitors_config with its CRC, then
        QXL_INTERRUPT_CLIENT_MONITORS_CONFIG, as QEMU's qxl does."""
        if len(heads) > MAX_MONITORS:
            raise ValueError(f"at most {MAX_MONITORS} heads")
        with self._input_lock:
            cfg = self.rom.client_monitors_config
            cfg.count = len(heads)
            for i in range(MAX_MONITORS):
                left, top, right, bottom = heads[i] if i < len(heads) else (0, 0, 0, 0)
                h = cfg.heads[i]
                h.left, h.top, h.right, h.bottom = left, top, right, bottom
            raw = bytes(ffi.buffer(ffi.addressof(cfg), ffi.sizeof(cfg)))
            self.rom.client_monitors_config_crc = client_monitors_crc(raw)
            self.rom.client_present = 1
        self._raise(lib.QXL_INTERRUPT_CLIENT_MONITORS_CONFIG)

    def push_input(self, event: InputEvent) -> bool:
        """Put a client input event into the guest's input ring (any thread).
        False if the ring was full (the event is dropped and counted in the ROM)."""
        kind = INPUT_KINDS.get(event.kind)
        if kind is None:
            raise ValueError(f"unknown input kind {event.kind!r}")
        ring = self._input_ring
        with self._input_lock:
            prod = ring.own
            used = (prod - ring.get(_CONS)) & _M32
            if used >= ring.num_items:  # full, or a cons the guest corrupted
                self.ext.input_dropped = (self.ext.input_dropped + 1) & _M32
                return False
            _IN_EVENT.struct.pack_into(ring.mm, ring.item(prod), kind, event.code & _M32,
                                       _clamp32(event.x), _clamp32(event.y),
                                       event.buttons & _M32, event.display & _M32)
            prod = ring.own = (prod + 1) & _M32
            ring.set(_PROD, prod)
            notify = prod == ring.get(_NOTIFY_ON_PROD)
        if notify:
            self._raise(lib.VGPU_INTERRUPT_INPUT)
        return True

    # --- the device thread ----------------------------------------------------------

    def process(self, max_commands: int = 256) -> bool:
        """Handle queued IO writes, then up to `max_commands` from each ring (fewer from
        a ring with a smaller `per_process`). Returns True when more work is already
        waiting (call again)."""
        if not self._owner.acquire(blocking=False):
            raise RuntimeError("Device.process() entered from two threads at once")
        try:
            with self._cv:
                self._kicked = False
            self._drain_io()
            more = False
            if self.guest_bug is None:
                for row in self.rings:
                    budget = max_commands if row.per_process is None else min(
                        max_commands, row.per_process)
                    more = self._run_ring(row, budget) or more
                self._push_release(flush=True)
            self.gl_guest.signal()  # what the last 3D batches' fences asked for
            with self._cv:
                return more or bool(self._queue) or self._kicked
        finally:
            self._owner.release()

    def _drain_io(self) -> None:
        while True:
            with self._cv:
                if self._io_overflow:
                    self._io_overflow = False
                    self._bug(f"more than {MAX_PENDING_IO} IO writes queued")
                if not self._queue:
                    return
                req = self._queue.popleft()
            try:
                self._handle_io(req)
            finally:
                req._done.set()

    def _handle_io(self, req: IoRequest) -> None:
        port, value = req.port, req.value
        self.stats["io"] += 1
        for obs in self.observers:
            obs.on_io(port, value)
        is_async = port in ASYNC_PORTS
        if self.guest_bug is not None and port not in (lib.QXL_IO_RESET, lib.QXL_IO_UPDATE_IRQ):
            if is_async:
                self._async_done(False)
            return
        if req.bad_async:
            self._bug(f"async IO {port} started while another one is in flight")
            return
        handler = self._handlers.get(port)
        try:
            if handler is None:
                raise GuestBug(f"unknown IO port {port}")
            handler(value)
        except GuestBug as e:
            self._bug(str(e))
        except Exception:
            self.internal_errors += 1  # as for commands: visible, never fatal
            log.exception("QXL device failed on IO port %d", port)
            self._bug("internal device error")
        if is_async:
            self._async_done(True)

    def _async_done(self, interrupt: bool) -> None:
        with self._cv:
            self._async_in_flight = False
        if interrupt:
            self._raise(lib.QXL_INTERRUPT_IO_CMD)

    def _bug(self, reason: str) -> None:
        if self.guest_bug is not None:
            return
        self.guest_bug = reason
        log.warning("QXL guest bug: %s", reason)
        for obs in self.observers:
            obs.on_guest_bug(reason)
        self._raise(lib.QXL_INTERRUPT_ERROR)

    # --- interrupts ---------------------------------------------------------------

    def _raise(self, bits: int) -> None:
        lib.vgpu_atomic_or32(self._int_pending, bits)
        self._update_irq()

    def irq_level(self) -> bool:
        pending = lib.vgpu_atomic_load32(self._int_pending)
        mask = _U32.unpack_from(self.mem.mm, self._hdr + _INT_MASK)[0]
        return bool(pending & mask)

    def _update_irq(self) -> None:
        # One evaluation at a time (the device thread and push_input's thread both get
        # here), so listeners see levels in the order they were computed: a stale "high"
        # would leave a waiting guest spinning.
        with self._irq_lock:
            level = self.irq_level()
            for listener in self._irq_listeners:
                listener(level)

    # --- rings ------------------------------------------------------------------------

    def _pop(self, row: RingRow) -> tuple[int, ...] | None:
        """The next item of a ring, or None when it is empty."""
        ring = row.ring
        cons = ring.own
        prod = ring.get(_PROD)
        if prod == cons:
            ring.set(_NOTIFY_ON_PROD, prod + 1)  # ask for a doorbell on the next push
            prod = ring.get(_PROD)
            if prod == cons:
                return None
        avail = (prod - cons) & _M32
        if avail > ring.num_items:
            raise GuestBug(f"{row.name} ring producer index {prod} is {avail} ahead of {cons}")
        return row.item.unpack_from(ring.mm, ring.item(cons))

    def _run_ring(self, row: RingRow, budget: int) -> bool:
        ring = row.ring
        for _ in range(budget):
            if self.guest_bug is not None:
                return False
            try:
                item = self._pop(row)
            except GuestBug as e:
                self._bug(str(e))
                return False
            if item is None:
                return False
            if row.fetch is not None:
                try:
                    item = row.fetch(item)
                except GuestBug as e:
                    self._bug(str(e))
                    return False
            cons = ring.own = (ring.own + 1) & _M32
            ring.set(_CONS, cons)
            if cons == ring.get(_NOTIFY_ON_CONS):
                self._raise(row.interrupt)
            try:
                row.handle(item)
            except GuestBug as e:
                self._bug(str(e))
                return False
            except Exception:
                # A device defect, not the guest's: keep running, but make it visible
                # (the fuzz tests assert that this never happens).
                self.internal_errors += 1
                log.exception("QXL device failed on a %s ring item", row.name)
                self._bug("internal device error")
                return False
        return True

    def _flush_commands(self) -> None:
        """Everything the guest queued before a synchronous operation is done first."""
        for row in self.rings:
            if row.flushed and self.guest_bug is None:
                self._run_ring(row, MAX_FLUSH_COMMANDS)

    def _command_item(self, ring: str) -> Callable[[tuple[int, ...]], None]:
        def handle(item: tuple[int, ...]) -> None:
            addr, cmd_type = item  # QXLCommand's data and type (_CMD_ITEM)
            self._command(ring, cmd_type, addr)

        return handle

    def _command(self, ring: str, cmd_type: int, addr: int) -> None:
        accepts = self._accepts[ring]
        if accepts is not None and cmd_type not in accepts:
            raise GuestBug(f"command type {cmd_type} on the {ring} ring")
        if cmd_type == lib.QXL_CMD_NOP:
            return
        info = self.slots.translate(addr, 8)  # QXLReleaseInfo opens every command
        cmd = self.parser.parse(cmd_type, addr, self.compat)
        for obs in self.observers:
            obs.on_command(ring, cmd_type, addr, cmd, self.compat)
        if isinstance(cmd, c.Drawable):
            self._draw(cmd)
        elif isinstance(cmd, c.SurfaceCmd):
            self._surface_cmd(cmd)
        elif isinstance(cmd, c.CursorCmd):
            self.stats["cursor_commands"] += 1
            if self.cursor_sink is not None:
                self.cursor_sink(cmd)
        elif isinstance(cmd, c.MessageCmd):
            log.info("QXL guest message: %r", cmd.data[:200])
        self.stats["commands"] += 1
        self._release(info, cmd.release_id)

    def _gl_fetch(self, item: tuple[int, ...]) -> tuple[bytes]:
        """One Vgpu3dSubmit checked and its batch copied, before cons passes it."""
        addr, size, flags = item  # Vgpu3dSubmit's batch, size and flags (_GL_ITEM)
        if flags:
            raise GuestBug(f"3D ring item with flags {flags:#x}")
        if not 0 < size <= GL_MAX_BATCH or size % 4:
            raise GuestBug(f"3D batch of {size} bytes (a multiple of 4 up to {GL_MAX_BATCH})")
        off = self.slots.translate(addr, size)
        return (self.mem.read(off, size),)  # the copy: nothing the guest writes later counts

    def _gl_run(self, fetched: tuple[bytes]) -> None:
        """A copied batch handed to the backend."""
        batch = fetched[0]
        size = len(batch)
        self.stats["gl_batches"] += 1
        self.stats["gl_bytes"] += size
        if self.on_gl_batch is not None:
            self.on_gl_batch()
        try:
            self.backend.execute_3d(batch, self.gl_guest)
        except Exception:
            # Never the guest's fault (a ValueError included): the batch's content is the
            # backend's to check. A defect of the backend, counted and survived.
            self.backend_errors += 1
            log.exception("display backend execute_3d failed")

    def _draw(self, cmd: c.Drawable) -> None:
        # spice-server's display channel drops a drawable (released, never drawn, no error)
        # whose surface or a dependency does not exist or whose bbox leaves its surface
        # (validate_drawable_bbox). Linux's qxl DRM driver sends such drawables: a
        # 1024x768 blit onto the 64x64 primary it creates while changing modes.
        surface = self.surfaces.get(cmd.surface_id)
        b = cmd.bbox
        if (surface is None
                or any(d != -1 and d not in self.surfaces for d in cmd.surfaces_dest)
                or not (0 <= b.left <= b.right <= surface.width
                        and 0 <= b.top <= b.bottom <= surface.height)):
            self.stats["dropped"] += 1
            log.debug("dropped a drawable on surface %d with bbox %s", cmd.surface_id,
                      tuple(b))
            return
        self._call(self.backend.execute, cmd)

    def _call(self, method: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        """A 2D backend call. A ValueError is the backend refusing what the guest asked for
        (see backend.py): a guest bug. Any other error is the backend's own: logged and
        counted, never taking the device down."""
        try:
            return method(*args, **kwargs)
        except ValueError as e:
            raise GuestBug(f"display backend refused {method.__name__}: {e}") from e
        except Exception:
            self.backend_errors += 1
            log.exception("display backend %s failed", method.__name__)
            return None

    def _surface_cmd(self, cmd: c.SurfaceCmd) -> None:
        sid = cmd.surface_id
        if sid == 0:
            raise GuestBug("surface commands cannot touch surface 0 (the primary)")
        if cmd.create is None:
            if self.surfaces.pop(sid, None) is None:
                raise GuestBug(f"destroying surface {sid}, which does not exist")
            self._call(self.backend.surface_destroyed, sid)
            return
        if sid in self.surfaces:
            raise GuestBug(f"creating surface {sid}, which exists")
        cr = cmd.create
        info = SurfaceInfo(cr.width, cr.height, cr.stride, cr.format, cr.data_offset,
                           cr.data_length)
        self.surfaces[sid] = info
        initial = None
        if cmd.flags & lib.QXL_SURF_FLAG_KEEP_DATA:
            initial = info.rows(self.mem).copy()
        self._call(self.backend.surface_created, sid, cr.width, cr.height, cr.stride,
                   cr.format, initial)

    # --- release ring -----------------------------------------------------------------

    def _release(self, info: int, release_id: int) -> None:
        mm = self.mem.mm
        if self._last_release is None:
            _U64.pack_into(mm, self._release_ring.item(self._release_ring.own), release_id)
        else:
            _U64.pack_into(mm, self._last_release, release_id)
        _U64.pack_into(mm, info, 0)  # QXLReleaseInfo.next of the newest
        self._last_release = info
        self._free_count += 1
        self.stats["released"] += 1
        if self._free_count >= RELEASE_BUNCH:
            self._push_release(flush=False)

    def _push_release(self, flush: bool) -> None:
        if self._last_release is None or (not flush and self._free_count < RELEASE_BUNCH):
            return
        ring = self._release_ring
        used = (ring.own - ring.get(_CONS)) & _M32
        if used + 1 >= ring.num_items:
            return  # full (or a corrupt cons): keep chaining until the guest makes room
        prod = ring.own = (ring.own + 1) & _M32
        ring.set(_PROD, prod)
        _U64.pack_into(self.mem.mm, ring.item(prod), 0)
        self._last_release = None
        self._free_count = 0
        if prod == ring.get(_NOTIFY_ON_PROD):
            self._raise(lib.QXL_INTERRUPT_DISPLAY)

    # --- IO port handlers ---------------------------------------------------------------

    def _io_nothing(self, value: int) -> None:
        pass

    def _io_update_irq(self, value: int) -> None:
        self._update_irq()

    def _io_oom(self, value: int) -> None:
        self._flush_commands()
        self._push_release(flush=True)

    def _io_flush_release(self, value: int) -> None:
        self._push_release(flush=True)

    def _io_reset(self, value: int) -> None:
        had_primary = 0 in self.surfaces
        self._reset_state()
        self._call(self.backend.reset)
        self._call(self.backend.reset_3d)
        if had_primary:
            for obs in self.observers:
                obs.on_primary_destroyed()
        for obs in self.observers:
            obs.on_reset()

    def _io_log(self, value: int) -> None:
        raw = self.mem.read(self._hdr + _LOG_BUF, lib.QXL_LOG_BUF_SIZE)
        log.info("QXL guest log: %s", raw.split(b"\0", 1)[0].decode("latin-1"))

    def _io_memslot_add(self, slot_id: int) -> None:
        slot = _MEM_SLOT.unpack_from(self.mem.mm, self._hdr).mem_slot
        if not SLOTS_START <= slot_id < NUM_MEMSLOTS:
            raise GuestBug(f"memslot id {slot_id} out of range")
        generation = self._next_generation & ((1 << SLOT_GEN_BITS) - 1)
        self.slots.add(slot_id, slot.mem_start, slot.mem_end, generation)
        self._next_generation += 1
        self.rom.slot_generation = generation

    def _io_memslot_del(self, slot_id: int) -> None:
        if not SLOTS_START <= slot_id < NUM_MEMSLOTS:
            raise GuestBug(f"memslot id {slot_id} out of range")
        self.slots.delete(slot_id)

    def _io_create_primary(self, value: int) -> None:
        s = _CREATE.unpack_from(self.mem.mm, self._hdr).create_surface
        self.compat = False
        self._create_primary(PrimaryCreate(s.width, s.height, s.stride, s.format, s.position,
                                           s.mouse_mode, s.flags, s.type, b""), s.mem)

    def _create_primary(self, create: PrimaryCreate, addr: int) -> None:
        if 0 in self.surfaces:
            raise GuestBug("primary surface created twice")
        if create.format not in PRIMARY_FORMATS:
            raise GuestBug(f"primary surface format {create.format}")
        off, length = self.parser.surface_memory(create.format, create.width, create.height,
                                                 create.stride, addr)
        info = SurfaceInfo(create.width, create.height, create.stride, create.format, off,
                           length)
        self.surfaces[0] = info
        data = self.mem.read(off, length)
        initial = None
        # as spice-server: the memory's content is the picture only with KEEP_DATA, else the
        # surface starts black (its worker clears the memory)
        if create.flags & lib.QXL_SURF_FLAG_KEEP_DATA:
            initial = np.frombuffer(data, np.uint8).reshape(info.height, abs(info.stride))
            if info.stride < 0:
                initial = initial[::-1]
        self._call(self.backend.create_primary, info.width, info.height, info.stride,
                   info.format, initial)
        event = PrimaryCreate(create.width, create.height, create.stride, create.format,
                              create.position, create.mouse_mode, create.flags, create.type,
                              data)
        for obs in self.observers:
            obs.on_primary_created(event)

    def _destroy_primary(self) -> None:
        if self.surfaces.pop(0, None) is None:
            return  # as QEMU: destroying an absent primary is a no-op
        self._call(self.backend.destroy_primary)
        for obs in self.observers:
            obs.on_primary_destroyed()

    def _io_destroy_primary(self, value: int) -> None:
        self._flush_commands()
        self._destroy_primary()

    def _io_set_mode(self, mode: int) -> None:
        """qxl-1: a mode of the ROM list on the RAM bar's surface 0 area, compat commands."""
        if mode >= len(self.modes):
            raise GuestBug(f"mode {mode} out of range")
        self._flush_commands()
        self._destroy_primary()
        w, h = self.modes[mode]
        ram = self.layout.ram_offset
        self.slots.slots[0] = None
        self.slots.add(0, ram, ram + self.layout.ram_size, 0)
        self.rom.mode = mode
        self.compat = True
        self._create_primary(PrimaryCreate(w, h, -w * 4, lib.SPICE_SURFACE_FMT_32_xRGB, 0, 0,
                                           0, lib.QXL_SURF_TYPE_PRIMARY, b""),
                             self.slots.address(0, ram))

    def _io_update_area(self, value: int) -> None:
        self._flush_commands()
        u = _UPDATE_AREA.unpack_from(self.mem.mm, self._hdr)
        sid, asked = u.update_surface, u.update_area
        t, left, b, r = asked.top, asked.left, asked.bottom, asked.right
        surface = self.surfaces.get(sid)
        if surface is None:
            raise GuestBug(f"update_area of surface {sid}, which does not exist")
        # QEMU refuses a negative or inverted area and lets an empty one through; spice-server
        # renders the rest as given (display_channel_update checks only the surface), and
        # beyond the surface there is nothing to render
        if left < 0 or t < 0 or left > r or t > b:
            raise GuestBug(f"update_area {(t, left, b, r)} of surface {sid} is not an area")
        r, b = min(r, surface.width), min(b, surface.height)
        if left >= r or t >= b:
            return
        bpp = SURFACE_BPP[surface.format]
        if bpp % 8:
            return  # 1-bit surfaces have no byte-addressed rows to write back
        area = c.QRect(t, left, b, r)
        pieces = self._call(self.backend.read_area, sid, area)
        nbytes = bpp // 8
        answer = pieces if isinstance(pieces, list) else [None]
        # every piece is checked before any is written: a bad answer leaves memory as it was
        for piece in answer:
            if not _piece_fits(piece, area, nbytes):
                log.error("display backend read_area returned %r for %s", piece, area)
                return
        rows = surface.rows(self.mem)
        for (pt, pl, pb, pr), pixels in answer:
            rows[pt:pb, pl * nbytes:pr * nbytes] = pixels

    def _io_destroy_surface(self, sid: int) -> None:
        if sid >= self.n_surfaces:
            raise GuestBug(f"destroy of surface {sid} out of range")
        self._flush_commands()
        if sid == 0:
            self._destroy_primary()
        elif self.surfaces.pop(sid, None) is not None:
            self._call(self.backend.surface_destroyed, sid)

    def _io_destroy_all(self, value: int) -> None:
        self._flush_commands()
        had_primary = 0 in self.surfaces
        self.surfaces.clear()
        self._call(self.backend.reset)
        if had_primary:
            for obs in self.observers:
                obs.on_primary_destroyed()

    def _io_flush_surfaces(self, value: int) -> None:
        self._flush_commands()

    def _io_monitors_config(self, value: int) -> None:
        addr = _MONITORS_ADDR.unpack_from(self.mem.mm, self._hdr).monitors_config
        config = self.parser.unpack_at(_MONITORS, addr)
        count = config.count
        if count > MAX_MONITORS:
            raise GuestBug(f"monitors config with {count} heads")
        raw = self.parser.read(addr + _HEADS, count * _HEAD.size)
        heads = tuple(MonitorHead(h.id, h.surface_id, h.width, h.height, h.x, h.y, h.flags)
                      for h in (_HEAD.unpack_from(raw, i * _HEAD.size) for i in range(count)))
        self.monitors = heads
        for obs in self.observers:
            obs.on_monitors_config(heads, config.max_allowed)

    def close(self) -> None:
        self.mem.close()


def client_monitors_crc(raw: bytes) -> int:
    """QEMU's CRC of QXLRom.client_monitors_config: crc32 without the final XOR, so that a
    Linux guest can check it with crc32_le(0xffffffff, ...)."""
    return zlib.crc32(raw, 0xFFFFFFFF) ^ 0xFFFFFFFF


def _clamp32(v: int) -> int:
    return max(-(1 << 31), min((1 << 31) - 1, v))


def _piece_fits(piece: object, area: c.QRect, nbytes: int) -> bool:
    """Whether a backend's write-back piece is a rect inside `area` with uint8 pixels of its
    size (any other dtype would be cast into guest memory, not copied)."""
    if not (isinstance(piece, tuple) and len(piece) == 2 and isinstance(piece[0], c.QRect)
            and isinstance(piece[1], np.ndarray)):
        return False
    (t, left, b, r), pixels = piece
    return (area.top <= t < b <= area.bottom and area.left <= left < r <= area.right
            and pixels.dtype == np.uint8 and pixels.shape == (b - t, (r - left) * nbytes))
