"""A running virtual display: the device and the renderer on the render thread, a guest,
and the buses that carry frames and cursor updates out and inputs back in.

Threads (ARCHITECTURE.md): the render thread owns the GL context, the device and
the renderer; it takes IO writes and ring commands, renders them, and publishes
at most `MAX_FPS` frames a second while something changes (an idle guest costs
nothing). A built-in guest runs on a thread of its own, as a VM's vCPU would;
an out-of-process guest attaches through a unix socket served by a small event
loop thread. Consumers (the SPICE server, the preview window) only see
`frames`, `cursor` and `send_input`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vgpu.device.abi import lib
from vgpu.device.commands import CursorCmd, CursorShapeData
from vgpu.display import CursorBus, CursorShape, CursorUpdate, FrameBus, InputEvent

if TYPE_CHECKING:
    from vgpu.guest.driver import GuestDriver

log = logging.getLogger(__name__)

MAX_FPS = 60
"""Frames published per second at most: what SPICE clients show, and the ceiling
issue 5 sets. Damage between two publications is merged into the next frame."""

IDLE_WAIT_S = 0.5
"""How long the render thread sleeps when nothing is pending; any IO write or
doorbell wakes it at once, so this only bounds how late it notices `stop()`."""

DEVICE_BATCH = 256
"""Commands taken per `Device.process()` call, so a flood of commands still lets
the render thread publish frames between batches."""

STOP_TIMEOUT_S = 10.0
"""How long stop() waits for each thread; a guest or render step takes milliseconds."""

START_TIMEOUT_S = 30.0
"""Creating the GL context on llvmpipe takes well under a second; past this the
render thread has failed."""

CURSOR_KINDS = {lib.QXL_CURSOR_SET: "set", lib.QXL_CURSOR_MOVE: "move",
                lib.QXL_CURSOR_HIDE: "hide", lib.QXL_CURSOR_TRAIL: "trail"}

GuestRun = Callable[["Machine", threading.Event], None]


def cursor_update(cmd: CursorCmd) -> CursorUpdate | None:
    """The display-level form of a QXL cursor command (None for unknown types)."""
    kind = CURSOR_KINDS.get(cmd.type)
    if kind is None:
        return None
    shape = _shape(cmd.shape) if cmd.shape is not None else None
    return CursorUpdate(kind, cmd.position.x, cmd.position.y, cmd.visible, shape,
                        cmd.trail_length, cmd.trail_frequency)


def _shape(s: CursorShapeData) -> CursorShape:
    return CursorShape(s.unique, s.type, s.width, s.height, s.hot_spot_x, s.hot_spot_y, s.data)


class Machine:
    """Create with `Machine.create(...)`, then `start()`; `stop()` ends every thread."""

    def __init__(self, guest: GuestRun | None, guest_socket: str | None = None,
                 record: Path | None = None) -> None:
        self.frames = FrameBus()
        self.cursor = CursorBus()
        self._guest = guest
        self._guest_socket = guest_socket
        self._record = record
        self._stop = threading.Event()  # guests stop first, while the device still runs
        self._render_stop = threading.Event()
        self._ready = threading.Event()
        self._listening = threading.Event()
        self._failure: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.device = None  # set on the render thread before _ready
        self.guest_error: BaseException | None = None
        self.recorded: int | None = None  # events in the record file, once it is closed

    @classmethod
    def create(cls, demo: str | None = None, guest_socket: str | None = None,
               record: Path | None = None, width: int = 1024, height: int = 768) -> Machine:
        """demo: "desktop" or "replay:FILE"; or guest_socket: a unix socket path where an
        out-of-process guest will attach. `record` writes the session in spice-server's
        record format."""
        if (demo is None) == (guest_socket is None):
            raise ValueError("choose one guest: a demo or a guest socket")
        guest: GuestRun | None = None
        if demo == "desktop":
            guest = _desktop_guest(width, height)
        elif demo is not None and demo.startswith("replay:"):
            path = Path(demo.removeprefix("replay:"))
            if not path.is_file():
                raise ValueError(f"no recording at {path}")
            guest = _replay_guest(path)
        elif demo is not None:
            raise ValueError(f"unknown demo {demo!r}: use 'desktop' or 'replay:FILE'")
        return cls(guest, guest_socket, record)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Machine:
        render = threading.Thread(target=self._render_thread, name="vgpu-render", daemon=True)
        self._threads.append(render)
        render.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._failure is not None:
            self.stop()
            raise RuntimeError(f"the render thread did not start: {self._failure}")
        if self._guest is not None:
            guest = threading.Thread(target=self._guest_thread, name="vgpu-guest", daemon=True)
            self._threads.append(guest)
            guest.start()
        if self._guest_socket is not None:
            listener = threading.Thread(target=self._listener_thread, name="vgpu-guest-socket",
                                        daemon=True)
            self._threads.append(listener)
            listener.start()
            self._listening.wait(START_TIMEOUT_S)
            if self._failure is not None:
                self.stop()
                raise RuntimeError(
                    f"cannot listen for a guest on {self._guest_socket}: {self._failure}")
        return self

    def stop(self) -> None:
        """Ends the guests first, then the render thread: a guest still starting must
        never touch a device whose memory the render thread has already closed."""
        self._stop.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(loop.stop)
        render, *guests = self._threads or [None]
        for t in guests:
            t.join(timeout=STOP_TIMEOUT_S)
        self._render_stop.set()
        if self.device is not None:
            self.device.wake()
        if render is not None:
            render.join(timeout=STOP_TIMEOUT_S)
        self._threads.clear()

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send_input(self, event: InputEvent) -> None:
        """Queues a client input for the guest (thread-safe; dropped if the queue is full)."""
        if self.device is not None:
            self.device.push_input(event)

    # --- threads ---------------------------------------------------------------------

    def _render_thread(self) -> None:
        from vgpu.device.device import Device
        from vgpu.render import Renderer

        try:
            renderer = Renderer()
            device = Device(renderer, cursor_sink=self._on_cursor)
            recorder = None
            if self._record is not None:
                from vgpu.replay import Recorder

                recorder = Recorder(self._record)
                recorder.attach(device)
        except BaseException as e:
            self._failure = e
            self._ready.set()
            return
        self.device = device
        self._ready.set()
        period = 1.0 / MAX_FPS
        next_publish = 0.0
        dirty = False  # rendered since the last publication
        try:
            while not self._render_stop.is_set():
                timeout = max(0.0, next_publish - time.monotonic()) if dirty else IDLE_WAIT_S
                device.wait_for_work(timeout)
                done_before = device.stats["commands"] + device.stats["io"]
                while device.process(DEVICE_BATCH) and not self._render_stop.is_set():
                    if time.monotonic() >= next_publish:
                        break  # publish between batches under a flood of commands
                dirty |= device.stats["commands"] + device.stats["io"] != done_before
                now = time.monotonic()
                if dirty and now >= next_publish:
                    frame = renderer.snapshot()
                    if frame is not None:
                        self.frames.publish(frame)
                        next_publish = now + period
                    dirty = False
        finally:
            if recorder is not None:
                recorder.close()
                self.recorded = recorder.events
            device.close()
            renderer.close()

    def _on_cursor(self, cmd: CursorCmd) -> None:
        update = cursor_update(cmd)
        if update is not None:
            self.cursor.publish(update)

    def _guest_thread(self) -> None:
        assert self._guest is not None
        try:
            self._guest(self, self._stop)
        except BaseException as e:  # a guest that fails stops itself, not the display
            if not self._stop.is_set():
                self.guest_error = e
                log.exception("the built-in guest stopped")

    def _listener_thread(self) -> None:
        from vgpu.device.transport import GuestListener

        loop = asyncio.new_event_loop()
        listener = GuestListener(self.device, self._guest_socket)
        try:
            try:
                loop.run_until_complete(listener.start())
            except OSError as e:
                self._failure = e
                return
            finally:
                self._listening.set()
            self._loop = loop
            if not self._stop.is_set():  # else stop() came while the socket was being made
                log.info("waiting for a guest on %s", self._guest_socket)
                loop.run_forever()
            loop.run_until_complete(listener.close())
        finally:
            loop.close()


def _attach(machine: Machine) -> GuestDriver:
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    return GuestDriver(InProcessAttachment(machine.device))


def _desktop_guest(width: int, height: int) -> GuestRun:
    def run(machine: Machine, stop: threading.Event) -> None:
        from vgpu.guest.desktop import DesktopScene, run_desktop

        driver = _attach(machine)
        try:
            driver.create_primary(width, height)
            run_desktop(driver, stop, DesktopScene(width, height))
        finally:
            driver.close()

    return run


def _replay_guest(path: Path) -> GuestRun:
    def run(machine: Machine, stop: threading.Event) -> None:
        from vgpu.replay import ReplayGuest, read_events

        driver = _attach(machine)
        try:
            guest = ReplayGuest(driver)
            for event in read_events(path):
                if stop.is_set():
                    return
                guest.feed(event)
            guest.finish()
            log.info("replay of %s done; serving its last screen", path)
            stop.wait()
        finally:
            driver.close()

    return run
