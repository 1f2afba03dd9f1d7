"""A running virtual display: the device and the renderer on the render thread, a guest,
and the buses that carry frames and cursor updates out and inputs back in.

Threads (ARCHITECTURE.md): the render thread owns the GL context, the device and
the renderer; it takes IO writes and ring commands, renders them, and publishes
at most `MAX_FPS` frames a second while something changes (an idle guest costs
nothing). A built-in guest runs on a thread of its own, as a VM's vCPU would;
an out-of-process guest attaches through a unix socket served by a small event
loop thread. Consumers (the SPICE server, the preview window) only see
`frames`, `cursor` and `send_input`.

The 3D ring runs on the render thread through the same `Device.process()`. A watchdog
thread looks at the 3D batch in progress: one that has run for GL_STUCK_S is named in
the log (its context), and one that is still running `gl_watchdog` seconds later is
fatal: `on_fatal` is called, and `vgpu serve` exits with an error so that a supervisor
restarts it, as a GPU reset would. The event loop thread (SPICE, the guest socket)
keeps answering meanwhile with the last frame, the cursor and inputs, as long as the
stuck GL call releases the interpreter lock: the renderer and the 3D executor wait for
3D work in C (`Gl3dExecutor.wait_gl`, through cffi, which releases it) before the
moderngl calls that would wait holding it (reads, a present's draw on llvmpipe). A GL
call that still waits holding the lock (one nobody foresaw: a driver's own wait inside
another moderngl call) would freeze every Python thread; for that, `hard_watchdog`
starts a C thread (vgpu._qxl) that ends the process HARD_WATCHDOG_MARGIN_S after the
Python watchdog would have given up.
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
from vgpu.display import CursorBus, CursorShape, CursorUpdate, FrameBus, InputEvent, Pacer

if TYPE_CHECKING:
    from vgpu.guest.driver import GuestDriver
    from vgpu.render import Renderer

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

GL_STUCK_S = 2.0
"""A 3D batch running this long is stuck (a real frame's batch takes milliseconds; an
endless shader never ends): its context is named in the log."""

DEFAULT_GL_WATCHDOG_S = 10.0
"""Seconds a stuck batch may still run after it was reported before the machine gives
up (`vgpu serve --gl-watchdog`): room for a very slow frame on llvmpipe, short enough
for a supervisor to bring the display back soon."""

HARD_WATCHDOG_MARGIN_S = 2.0
"""The C last resort (`hard_watchdog`) fires this long after the Python watchdog would
have: only when the interpreter is blocked (a GL call waiting on the GPU while it holds
the interpreter lock, as moderngl's reads do) and the Python watchdog cannot run."""

HARD_WATCHDOG_EXIT = 3
"""The last resort's exit status: the same as `vgpu serve`'s for a stuck 3D batch."""

THREAD_JOIN_S = 10.0
"""How long `stop()` waits for a thread: a render thread finishing a batch, a guest
finishing its command, the event loop closing its sockets."""

WATCHDOG_PERIOD_S = 0.25
"""How often the watchdog looks: reports come at most this late."""

START_TIMEOUT_S = 30.0
"""Creating the GL context on llvmpipe takes well under a second; past this the
render thread has failed."""

CURSOR_KINDS = {lib.QXL_CURSOR_SET: "set", lib.QXL_CURSOR_MOVE: "move",
                lib.QXL_CURSOR_HIDE: "hide", lib.QXL_CURSOR_TRAIL: "trail"}

GuestRun = Callable[["Machine", threading.Event], None]


def _work_done(stats: dict[str, int]) -> int:
    """Grows whenever the device did something that may change the picture."""
    return stats["commands"] + stats["io"] + stats["gl_batches"]


class Gl3dWatchdog:
    """Decides, from what `busy()` answers ((monotonic start of the running 3D batch or
    None, its context id)), when to report a stuck batch and when to give up. `check()`
    is called periodically by one thread; it never touches GL."""

    def __init__(self, busy: Callable[[], tuple[float | None, int]], grace: float,
                 on_fatal: Callable[[str], None]) -> None:
        self.busy = busy
        self.grace = grace
        self.on_fatal = on_fatal
        self.reported: float | None = None  # the busy_since of the batch reported
        self.fired = False

    def check(self, now: float) -> None:
        since, context = self.busy()
        if since is None:
            self.reported = None
            return
        ran = now - since
        if ran >= GL_STUCK_S and self.reported != since:
            self.reported = since
            log.error("3D context %d stuck: one batch has run for %.1f s (the display gives "
                      "up after %.0f s more)", context, ran, self.grace)
        if (self.reported == since and ran >= GL_STUCK_S + self.grace
                and not self.fired):
            self.fired = True
            self.on_fatal(f"3D context {context} stuck in one batch for {ran:.1f} s "
                          f"(--gl-watchdog {self.grace:g}): giving up, as a GPU reset would")


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
                 record: Path | None = None, *, gl_watchdog: float = DEFAULT_GL_WATCHDOG_S,
                 renderer_factory: Callable[[], Renderer] | None = None,
                 hard_watchdog: bool = False, ram_size: int | None = None,
                 publish_frames: bool = True) -> None:
        self._ram_size = ram_size  # None: the device's default
        # False when nobody looks (vgpu run --headless): no frame is read back from GL
        self.publish_frames = publish_frames
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
        self.renderer: Renderer | None = None  # likewise
        self.guest_error: BaseException | None = None
        self.recorded: int | None = None  # events in the record file, once it is closed
        self.gl_watchdog = gl_watchdog
        self._renderer_factory = renderer_factory
        self._hard_watchdog = hard_watchdog  # the C last resort ends the process: serve only
        self._gl_pending_since: float | None = None
        self.on_fatal: Callable[[str], None] | None = None
        """Called once (from the watchdog thread) when the display cannot go on."""
        self.fatal: str | None = None
        # a built-in replay waits for this before its first command (`--wait-client`:
        # whoever serves the display sets it when the first display channel connects)
        self.client_connected = threading.Event()
        self.client_connected.set()
        # set when a built-in replay has fed its last event (it then keeps its screen)
        self.guest_done = threading.Event()

    @classmethod
    def create(cls, demo: str | None = None, guest_socket: str | None = None,
               record: Path | None = None, width: int = 1024, height: int = 768,
               gl_watchdog: float = DEFAULT_GL_WATCHDOG_S,
               hard_watchdog: bool = False, wait_client: bool = False) -> Machine:
        """demo: "desktop", "cube" (3D ring), "anim" (a full-screen animation) or
        "replay:FILE"; or guest_socket: a unix socket path where an out-of-process guest
        will attach. `record` writes the session in spice-server's record format.
        `wait_client` holds a replay until `client_connected` is set."""
        if (demo is None) == (guest_socket is None):
            raise ValueError("choose one guest: a demo or a guest socket")
        guest: GuestRun | None = None
        if demo == "desktop":
            guest = _desktop_guest(width, height)
        elif demo == "cube":
            guest = _cube_guest(width, height)
        elif demo == "anim":
            guest = _anim_guest(width, height)
        elif demo is not None and demo.startswith("replay:"):
            path = Path(demo.removeprefix("replay:"))
            if not path.is_file():
                raise ValueError(f"no recording at {path}")
            guest = _replay_guest(path)
        elif demo is not None:
            raise ValueError(f"unknown demo {demo!r}: use 'desktop', 'cube', 'anim' or "
                             "'replay:FILE'")
        machine = cls(guest, guest_socket, record, gl_watchdog=gl_watchdog,
                      hard_watchdog=hard_watchdog)
        if wait_client:
            machine.client_connected.clear()
        return machine

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
        watchdog = threading.Thread(target=self._watchdog_thread, name="vgpu-gl-watchdog",
                                    daemon=True)
        self._threads.append(watchdog)
        watchdog.start()
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

    def stop(self, timeout: float | None = None) -> None:
        """Ends every thread, waiting up to `timeout` seconds for each (default: long
        enough for any that is not stuck). The guests end first, then the render
        thread: a guest still starting must never touch a device whose memory the
        render thread has already closed."""
        self._stop.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(loop.stop)
        render, *guests = self._threads or [None]
        for t in guests:
            t.join(timeout=THREAD_JOIN_S if timeout is None else timeout)
        self._render_stop.set()
        if self.device is not None:
            self.device.wake()
        if render is not None:
            render.join(timeout=THREAD_JOIN_S if timeout is None else timeout)
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
            renderer = Renderer() if self._renderer_factory is None else self._renderer_factory()
            sizes = {} if self._ram_size is None else {"ram_size": self._ram_size}
            device = Device(renderer, cursor_sink=self._on_cursor, **sizes)
            recorder = None
            if self._record is not None:
                from vgpu.replay.recorder import Recorder

                recorder = Recorder(self._record)
                recorder.attach(device)
        except BaseException as e:
            self._failure = e
            self._ready.set()
            return
        device.on_gl_batch = self._gl_batch
        if self._hard_watchdog:
            limit = GL_STUCK_S + self.gl_watchdog + HARD_WATCHDOG_MARGIN_S
            lib.vgpu_watchdog_start(int(limit * 1e9), HARD_WATCHDOG_EXIT)
        self.device = device
        self.renderer = renderer
        self._ready.set()
        pacer = Pacer(MAX_FPS)
        dirty = False  # rendered since the last publication
        more = False  # work left in the rings when the loop broke off to publish
        try:
            while not self._render_stop.is_set():
                # Work left behind rings no doorbell (the device asks for one only once it
                # has found a ring empty): it must not wait for one.
                timeout = 0.0 if more else (
                    pacer.wait(time.monotonic()) if dirty else IDLE_WAIT_S)
                device.wait_for_work(timeout)
                done_before = _work_done(device.stats)
                while more := (device.process(DEVICE_BATCH)
                               and not self._render_stop.is_set()):
                    if not pacer.wait(time.monotonic()):
                        break  # publish between batches under a flood of commands
                dirty |= _work_done(device.stats) != done_before
                now = time.monotonic()
                if dirty and not pacer.wait(now):
                    frame = renderer.snapshot() if self.publish_frames else None
                    if frame is not None:
                        self.frames.publish(frame)
                        pacer.went(now)
                    dirty = False
                if not dirty and self._gl_pending_since is not None:
                    # the 3D work is on screen (or drew nothing): GL has finished it
                    self._gl_pending_since = None
                    if self._hard_watchdog:
                        lib.vgpu_watchdog_idle()
        finally:
            if recorder is not None:
                recorder.close()
                self.recorded = recorder.events
            device.close()
            renderer.close()

    def _gl_batch(self) -> None:
        """The device is about to run a 3D batch (render thread): 3D work is pending until
        the frame after it is out, which is when GL has finished it."""
        if self._gl_pending_since is None:
            self._gl_pending_since = time.monotonic()
            if self._hard_watchdog:
                lib.vgpu_watchdog_busy()

    def gl_busy(self) -> tuple[float | None, int]:
        """(start of the 3D work in progress or None, the context running), for the
        watchdog (any thread). The executor (`renderer.gl3d`) knows the batch and its
        context; the machine knows when 3D work began that no frame has shown yet (GL
        may wait for it when the frame is read back, after the batch)."""
        executor = getattr(self.renderer, "gl3d", None)
        since = getattr(executor, "busy_since", None) or self._gl_pending_since
        return since, int(getattr(executor, "current_context", 0) or 0)

    def _watchdog_thread(self) -> None:
        dog = Gl3dWatchdog(self.gl_busy, self.gl_watchdog, self._fatal)
        while not self._stop.wait(WATCHDOG_PERIOD_S):
            dog.check(time.monotonic())

    def _fatal(self, reason: str) -> None:
        self.fatal = reason
        log.critical("%s", reason)
        if self.on_fatal is not None:
            self.on_fatal(reason)

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


def _primary_guest(width: int, height: int,
                   body: Callable[[GuestDriver, threading.Event], None]) -> GuestRun:
    """A built-in guest that creates its primary surface, then runs `body` until stopped."""
    def run(machine: Machine, stop: threading.Event) -> None:
        driver = _attach(machine)
        try:
            driver.create_primary(width, height)
            body(driver, stop)
        finally:
            driver.close()

    return run


def _desktop_guest(width: int, height: int) -> GuestRun:
    def body(driver: GuestDriver, stop: threading.Event) -> None:
        from vgpu.guest.desktop import DesktopScene, run_desktop

        # A 3D window joins the desktop when the device offers the 3D ring.
        run_desktop(driver, stop, DesktopScene(width, height,
                                               window_3d=driver.gl_available()))

    return _primary_guest(width, height, body)


def _cube_guest(width: int, height: int) -> GuestRun:
    def body(driver: GuestDriver, stop: threading.Event) -> None:
        from vgpu.guest.cube import run_cube

        run_cube(driver, stop, width, height)

    return _primary_guest(width, height, body)


def _anim_guest(width: int, height: int) -> GuestRun:
    def body(driver: GuestDriver, stop: threading.Event) -> None:
        from vgpu.guest.anim import AnimScene, run_anim

        run_anim(driver, stop, AnimScene(width, height))

    return _primary_guest(width, height, body)


def _replay_guest(path: Path) -> GuestRun:
    def run(machine: Machine, stop: threading.Event) -> None:
        from vgpu.replay.player import ReplayGuest
        from vgpu.replay.reader import read_events

        while not machine.client_connected.wait(IDLE_WAIT_S):
            if stop.is_set():
                return
        driver = _attach(machine)
        try:
            guest = ReplayGuest(driver)
            for event in read_events(path):
                if stop.is_set():
                    return
                guest.feed(event)
            guest.finish()
            machine.guest_done.set()
            log.info("replay of %s done; serving its last screen", path)
            stop.wait()
        finally:
            driver.close()

    return run
