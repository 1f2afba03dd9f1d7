"""The 3D ring's fence round trip: the guest submits a batch holding one FENCE, the device
pops and copies it, the backend signals it, the guest sees the value (woken by
VGPU_INTERRUPT_3D). Measured with a guest on another thread (in-process) and in another
process (the unix socket), against two devices: one on a plain device thread whose
backend runs only FENCE (the device and transport alone), and the running machine of
`vgpu serve` (render thread, GL renderer and, once it is built, the 3D executor). Beside
each: a synchronous IO port write (QXL_IO_FLUSH_RELEASE) on the same attachment, the
floor any guest-to-device-and-back exchange pays there (the reference each round trip is
compared with). Issue 14's target: a fence round trip under FENCE_TARGET_US.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vgpu.bench import Bench, Measurement, workload

ROUND_TRIPS, QUICK_ROUND_TRIPS = 2000, 100
"""Round trips per measurement: each takes tens of microseconds in-process."""
FENCE_TARGET_US = 100.0

GUEST = """
import statistics, sys, time
from vgpu.device.abi import lib
from vgpu.guest.remote import connect_driver
driver = connect_driver(sys.argv[1])
n = int(sys.argv[2])
def rt():
    t0 = time.perf_counter()
    assert driver.gl_wait_fence(driver.gl_fence(), 10)
    return time.perf_counter() - t0
def io():
    t0 = time.perf_counter()
    driver.att.io_write(lib.QXL_IO_FLUSH_RELEASE, 0)
    return time.perf_counter() - t0
for _ in range(50):
    rt()
print(*sorted(rt() for _ in range(n)))
print(*sorted(io() for _ in range(n)))
driver.close()
"""


Times = tuple[list[float], list[float]]  # fence round trips, sync IO writes


def _in_process(device: object, n: int) -> Times:
    from vgpu.device.abi import lib
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    guest = GuestDriver(InProcessAttachment(device))  # type: ignore[arg-type]
    rts, ios = [], []
    for i in range(n + 50):
        t0 = time.perf_counter()
        assert guest.gl_wait_fence(guest.gl_fence(), 10)
        if i >= 50:  # warmed up
            rts.append(time.perf_counter() - t0)
    for _ in range(n):
        t0 = time.perf_counter()
        guest.att.io_write(lib.QXL_IO_FLUSH_RELEASE, 0)
        ios.append(time.perf_counter() - t0)
    guest.close()
    return rts, ios


def _remote(path: Path, n: int) -> Times:
    proc = subprocess.run([sys.executable, "-c", GUEST, str(path), str(n)],
                          capture_output=True, text=True, timeout=300, check=True)
    rts, ios = ([float(x) for x in line.split()] for line in proc.stdout.splitlines()[:2])
    return rts, ios


def device_thread(n: int) -> tuple[Times, Times]:
    """In-process, then over the socket, on a device thread with the FENCE-only backend."""
    from vgpu.bench.common import NullBackend
    from vgpu.device.device import Device
    from vgpu.device.inprocess import DeviceThread
    from vgpu.device.transport import GuestListener

    device = Device(NullBackend())  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as tmp, DeviceThread(device):
        local = _in_process(device, n)
        path = Path(tmp) / "qxl.sock"
        listener = GuestListener(device, path)
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
        remote = _remote(path, n)
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    device.close()
    return local, remote


def machine(n: int) -> tuple[Times, Times]:
    """The same on the machine `vgpu serve` runs (render thread, GL renderer)."""
    from vgpu.machine import Machine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qxl.sock"
        with Machine(None, guest_socket=str(path)) as m:
            local = _in_process(m.device, n)
            deadline = time.monotonic() + 10
            while not path.exists():
                assert time.monotonic() < deadline, "the guest socket did not appear"
                time.sleep(0.01)
            remote = _remote(path, n)
    return local, remote


@workload("gl3d_fence", "the 3D ring's fence round trip, in-process and over the guest "
          "socket, on a device thread and on the machine", references=("sync IO port write",))
def gl3d_fence(b: Bench) -> Iterator[Measurement]:
    n = QUICK_ROUND_TRIPS if b.quick else ROUND_TRIPS
    for name, run in (("device thread", device_thread), ("machine", machine)):
        b.progress(name)
        for where, (rts, ios) in zip(("in-process", "unix socket"), run(n), strict=True):
            yield b.value(f"{name}, {where}: round trip", "us",
                          {"fence round trip": [t * 1e6 for t in rts],
                           "sync IO port write": [t * 1e6 for t in ios]},
                          note=f"target: fence round trip < {FENCE_TARGET_US:.0f} us")
