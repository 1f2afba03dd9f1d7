"""Attaching a guest that runs in this process, and a plain thread to run the device.

`InProcessAttachment` gives a `vgpu.guest.GuestDriver` what it needs (the memory
mapping, IO port writes, waiting for the interrupt line):

- `inline=False` (default): the guest runs on its own thread and the device on
  another (the render thread, or a `DeviceThread`). IO writes are queued to the
  device thread; synchronous ports block until the device has acted on them.
- `inline=True`: guest and device share one thread (replay, benchmarks, fuzzing):
  every IO write runs the device until it is idle before returning.
"""

from __future__ import annotations

import threading

from vgpu._qxl import ffi, lib
from vgpu.device.device import ASYNC_PORTS, DOORBELL_PORTS, Device

IO_WAIT_LIMIT = 60.0
"""Seconds a guest waits for one synchronous IO before giving up: far beyond any
real operation, yet a stopped device thread does not hang a test forever."""

INLINE_BATCH = 1024
"""Commands per process() call when running inline."""

LINE_WAIT_SLICE_S = 1.0
"""A wait on the IRQ line without a timeout sleeps in slices of this, so the interpreter
gets to run its signal handlers (Ctrl-C) now and then."""


class InProcessAttachment:
    def __init__(self, device: Device, inline: bool = False) -> None:
        self.device = device
        self.inline = inline
        self.layout = device.layout
        self.buffer = device.mem.mm
        # the line's level and its sleepers (vgpu_word_wait): a guest thread sleeps on it in
        # C, and the device wakes it without a Python condition variable's work per wait
        self._line = ffi.new("uint32_t[2]", [int(device.irq_level()), 0])
        self._remove = device.add_irq_listener(self._on_irq)

    def _on_irq(self, level: bool) -> None:
        lib.vgpu_word_set(self._line, int(level))

    def io_write(self, port: int, value: int) -> None:
        req = self.device.io_write(port, value)
        if self.inline:
            while self.device.process(INLINE_BATCH):
                pass
        elif (port not in DOORBELL_PORTS and port not in ASYNC_PORTS and not req.done
              and not req.wait(IO_WAIT_LIMIT)):
            raise TimeoutError(f"device did not complete IO port {port}")

    def irq_level(self) -> bool:
        return bool(lib.vgpu_atomic_load32(self._line))

    def wait_irq(self, timeout: float | None = None) -> bool:
        """Wait until the IRQ line is high; False on timeout."""
        if timeout is not None:
            return bool(lib.vgpu_word_wait(self._line, 0, int(max(0.0, timeout) * 1e9)))
        while not lib.vgpu_word_wait(self._line, 0, int(LINE_WAIT_SLICE_S * 1e9)):
            pass  # back in the interpreter between slices: its signal handlers run
        return True

    def close(self) -> None:
        self._remove()


class DeviceThread:
    """Runs `device.process()` on a thread of its own (tests, headless tools)."""

    def __init__(self, device: Device, max_commands: int = 256) -> None:
        self.device = device
        self.max_commands = max_commands
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vgpu-device", daemon=True)

    def start(self) -> DeviceThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.device.wait_for_work(0.5)
            while self.device.process(self.max_commands) and not self._stop.is_set():
                pass

    def stop(self) -> None:
        self._stop.set()
        self.device.wake()
        self._thread.join()

    def __enter__(self) -> DeviceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
