"""Playing a record as a guest: record events through the guest driver into a device.

`ReplayGuest(driver).feed(event)` plays events through a `GuestDriver`'s public
calls: commands built in guest memory and pushed on their ring, worker messages
as the IO port writes behind them. `replay(path, backend)` does it all on one
thread with a new device (`vgpu replay`, `vgpu.replay.cli`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vgpu.device.backend import DisplayBackend
from vgpu.device.commands import Drawable, QRect, SurfaceCmd
from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.guest.alloc import OutOfMemory
from vgpu.guest.driver import DeviceError, GuestDriver
from vgpu.replay.format import CommandEvent, Event, PrimarySurface, WorkerMessage
from vgpu.replay.reader import read_events
from vgpu.replay.recorder import Recorder

# Worker messages that are the spice-server side of a reset (QEMU's qxl_hard_reset);
# a run of them is one QXL_IO_RESET. RESET_CURSOR is not one of them: QEMU's
# qxl_destroy_primary sends it too, after every DESTROY_PRIMARY of a mode change.
_RESET_MESSAGES = frozenset({WorkerMessage.RESET_IMAGE_CACHE, WorkerMessage.RESET_MEMSLOTS})
# Worker messages with no guest IO behind them: the VM's run state, client-driven
# settings, spice-server internals. ADD_MEMSLOT is the driver's own setup.
_NO_GUEST_IO = frozenset({
    WorkerMessage.NOP, WorkerMessage.READY, WorkerMessage.START, WorkerMessage.STOP,
    WorkerMessage.RESET_CURSOR,
    WorkerMessage.SET_COMPRESSION, WorkerMessage.SET_STREAMING_VIDEO,
    WorkerMessage.SET_MOUSE_MODE, WorkerMessage.ADD_MEMSLOT, WorkerMessage.ADD_MEMSLOT_ASYNC,
    WorkerMessage.DISPLAY_CONNECT_DEPRECATED, WorkerMessage.DISPLAY_DISCONNECT_DEPRECATED,
    WorkerMessage.DISPLAY_MIGRATE_DEPRECATED, WorkerMessage.CURSOR_CONNECT_DEPRECATED,
    WorkerMessage.CURSOR_DISCONNECT_DEPRECATED, WorkerMessage.CURSOR_MIGRATE_DEPRECATED,
    WorkerMessage.DISPLAY_CHANNEL_CREATE, WorkerMessage.CURSOR_CHANNEL_CREATE,
    WorkerMessage.LOADVM_COMMANDS, WorkerMessage.DRIVER_UNLOAD, WorkerMessage.GL_SCANOUT,
    WorkerMessage.GL_DRAW_ASYNC, WorkerMessage.SET_VIDEO_CODECS, WorkerMessage.CLOSE_WORKER,
    # the record does not say which surface; the surface's own DESTROY command does the work
    WorkerMessage.DESTROY_SURFACE_WAIT, WorkerMessage.DESTROY_SURFACE_WAIT_ASYNC,
})


class ReplayGuest:
    """Plays record events as a guest would, through a `GuestDriver`.

    Commands are written by the driver's builders into guest memory and pushed on
    their ring; worker messages become the IO port writes that make spice-server
    see them (WAKEUP: NOTIFY_CMD, UPDATE: UPDATE_AREA of the whole primary,
    CREATE_PRIMARY_SURFACE: the recorded memory written into surface 0's area, then
    CREATE_PRIMARY, DESTROY_SURFACES: DESTROY_ALL_SURFACES, RESET_*: QXL_IO_RESET,
    MONITORS_CONFIG_ASYNC: one head the size of the primary, ...). Counts of what
    was done are in `io` and `skipped`.
    """

    def __init__(self, driver: GuestDriver) -> None:
        self.driver = driver
        self.primary: PrimarySurface | None = None
        self.io: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._surfaces: dict[int, int] = {}  # surface id -> VRAM offset of its memory
        self._to_free: list[int] = []  # VRAM of destroyed surfaces, freed once drained
        self._in_reset = False

    def feed(self, event: Event) -> None:
        if isinstance(event, CommandEvent):
            self._in_reset = False
            self._command(event)
        else:
            self._message(event.message, event.primary)

    def finish(self) -> None:
        """Rings both doorbells, so that everything pushed is taken, and collects releases."""
        self.driver.notify_cmd()
        self.driver.notify_cursor()
        self.driver.collect_releases()

    def _command(self, event: CommandEvent) -> None:
        cmd = event.command
        if isinstance(cmd, SurfaceCmd) and cmd.create is not None:
            cmd = self._surface_memory(cmd, event.surface_data)
        elif isinstance(cmd, SurfaceCmd) and cmd.surface_id in self._surfaces:
            self._to_free.append(self._surfaces.pop(cmd.surface_id))
        self.driver.submit(cmd, compat=event.compat)
        # as a driver's interrupt handler does: give released commands' memory back
        # before the release ring fills (the device then chains releases it cannot push)
        self.driver.collect_releases()

    def _surface_memory(self, cmd: SurfaceCmd, data: bytes | None) -> SurfaceCmd:
        """The surface's memory in VRAM, holding its KEEP_DATA content, as a guest has it."""
        create = cmd.create
        assert create is not None
        length = create.height * abs(create.stride)
        try:
            off = self.driver.alloc_surface_memory(length, data)
        except OutOfMemory:
            self._drain()
            off = self.driver.alloc_surface_memory(length, data)
        old = self._surfaces.pop(cmd.surface_id, None)
        if old is not None:
            self._to_free.append(old)
        self._surfaces[cmd.surface_id] = off
        return dataclasses.replace(cmd, create=dataclasses.replace(
            create, data_offset=off, data_length=length))

    def _drain(self) -> None:
        """A synchronous port write makes the device take every queued command first; then
        the memory of destroyed surfaces is the guest's again."""
        self.driver.flush_release()
        if self.primary is not None:
            self._update_primary(False)
        for off in self._to_free:
            self.driver.free_surface_memory(off)
        self._to_free.clear()

    def _update_primary(self, async_: bool) -> None:
        assert self.primary is not None
        self.driver.update_area(0, QRect(0, 0, self.primary.height, self.primary.width),
                                async_=async_)

    def _message(self, message: WorkerMessage, primary: PrimarySurface | None) -> None:
        d = self.driver
        if message in _RESET_MESSAGES:
            if not self._in_reset:
                d.reset()
                self._forget_surfaces(primary_too=True)
                self.io["RESET"] += 1
            self._in_reset = True
            return
        self._in_reset = False
        async_ = message.name.endswith("_ASYNC")
        if message in _NO_GUEST_IO:
            self.skipped[message.name] += 1
        elif message is WorkerMessage.WAKEUP:
            d.notify_cmd()
            self.io["NOTIFY_CMD"] += 1
        elif message is WorkerMessage.OOM:
            d.notify_oom()
            self.io["NOTIFY_OOM"] += 1
        elif message in (WorkerMessage.UPDATE, WorkerMessage.UPDATE_ASYNC):
            if self.primary is None:
                self.skipped[message.name] += 1
                return
            self._update_primary(async_)
            self.io["UPDATE_AREA"] += 1
        elif primary is not None:
            self._create_primary(primary, async_)
        elif message in (WorkerMessage.DESTROY_PRIMARY_SURFACE,
                         WorkerMessage.DESTROY_PRIMARY_SURFACE_ASYNC):
            d.destroy_primary(async_=async_)
            self.primary = None
            self.io["DESTROY_PRIMARY"] += 1
        elif message in (WorkerMessage.DESTROY_SURFACES, WorkerMessage.DESTROY_SURFACES_ASYNC):
            d.destroy_all_surfaces(async_=async_)
            self._forget_surfaces(primary_too=True)
            self.io["DESTROY_ALL_SURFACES"] += 1
        elif message is WorkerMessage.FLUSH_SURFACES_ASYNC:
            d.flush_surfaces()
            self.io["FLUSH_SURFACES"] += 1
        elif message is WorkerMessage.MONITORS_CONFIG_ASYNC:
            if self.primary is None:
                self.skipped[message.name] += 1
                return
            d.monitors_config([(0, 0, self.primary.width, self.primary.height, 0, 0, 0)], 1)
            self.io["MONITORS_CONFIG"] += 1
        elif message is WorkerMessage.DEL_MEMSLOT:
            self.skipped[message.name] += 1  # the record does not say which slot
        else:
            self.skipped[message.name] += 1

    def _forget_surfaces(self, primary_too: bool) -> None:
        self.driver.forget_surface_memory()
        self._surfaces.clear()
        self._to_free.clear()
        if primary_too:
            self.primary = None

    def _create_primary(self, p: PrimarySurface, async_: bool) -> None:
        d = self.driver
        if self.primary is not None:
            # spice-server's replay does the same for a create without a destroy
            d.destroy_primary()
            self.io["DESTROY_PRIMARY"] += 1
        d.create_primary(p.width, p.height, p.format, p.stride, async_=async_, flags=p.flags,
                         data=p.data)
        self.primary = p
        self.io["CREATE_PRIMARY"] += 1


@dataclass
class ReplayResult:
    events: Counter[str]
    commands: int
    seconds: float
    guest: ReplayGuest
    device: Device


def replay(path: str | Path, backend: DisplayBackend,
           on_event: Callable[[Event], None] | None = None,
           record: str | Path | None = None) -> ReplayResult:
    """Replays a record file into a new device drawing through `backend`, guest and
    device on this thread; `record` names a file to record the device's session
    into. Raises RecordFormatError for a malformed file and DeviceError when the
    device reports a guest bug."""
    device = Device(backend)
    recorder = Recorder(record).attach(device) if record is not None else None
    attachment = InProcessAttachment(device, inline=True)
    driver = GuestDriver(attachment)
    guest = ReplayGuest(driver)
    events: Counter[str] = Counter()
    commands = 0
    start = time.perf_counter()
    try:
        for event in read_events(path):
            if isinstance(event, CommandEvent):
                commands += 1
                name = type(event.command).__name__
                if isinstance(event.command, Drawable):
                    name = f"Drawable.{type(event.command.op).__name__}"
                events[name] += 1
            else:
                events[event.message.name] += 1
            guest.feed(event)
            if on_event is not None:
                on_event(event)
        guest.finish()
        if device.guest_bug is not None:
            raise DeviceError(f"the device reported a guest bug: {device.guest_bug}")
    finally:
        attachment.close()
        if recorder is not None:
            recorder.close()
    return ReplayResult(events, commands, time.perf_counter() - start, guest, device)
