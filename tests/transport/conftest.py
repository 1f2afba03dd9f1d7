"""The `served` fixture: a device listening for out-of-process guests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from transport_support import CountingBackend, Served

from vgpu.device.device import Device
from vgpu.device.inprocess import DeviceThread
from vgpu.device.transport import GuestListener


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    backend = CountingBackend()
    device = Device(backend)  # type: ignore[arg-type]
    device_thread = DeviceThread(device).start()
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    loop_thread.start()
    path = tmp_path / "qxl.sock"
    listener = GuestListener(device, path)
    s = Served(device, backend, listener, path, loop)
    s.on_loop(listener.start())
    try:
        yield s
    finally:
        for proc in s.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        s.on_loop(listener.close())
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()
        device_thread.stop()
