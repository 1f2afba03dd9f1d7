"""Replay and transport throughput, side by side in one run (medians of several runs).

- reading a record file: vgpu.replay.read_events vs spice-server's own reader and worker
  (tests/replay/spice_replay_check.c, built here when libspice-server-dev is installed)
- replaying it through guest driver + device + GL renderer
- a guest drawing N fills: in-process (guest thread + device thread) vs a guest process on
  the unix-socket transport

Usage: vgpu bench replay [--runs N] [--fills N] [FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import lzma
import runpy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "basic.spice.xz"
CHECKER_BUILD = ROOT / "tests" / "replay" / "spice_check.py"

# the guest process: this file's draw() over connect_driver
GUEST = """
import runpy, sys
from vgpu.guest.remote import connect_driver
draw = runpy.run_path(sys.argv[1], run_name="bench_guest")["draw"]
driver = connect_driver(sys.argv[2])
print(draw(driver, int(sys.argv[3])))
driver.close()
"""


def draw(driver, n: int) -> float:
    """The drawing workload: a primary, n fills, an UPDATE_AREA; returns the seconds taken."""
    from vgpu.device.commands import Drawable, Fill, QMask, QPoint, QRect, SolidBrush

    none = QRect(0, 0, 0, 0)
    mask = QMask(0, QPoint(0, 0), None)
    driver.create_primary(256, 256)
    start = time.perf_counter()
    for i in range(n):
        driver.submit(Drawable(0, QRect(i % 200, 0, i % 200 + 8, 256), None, 0, 0, 0, none, 0,
                               (-1, -1, -1), (none, none, none),
                               Fill(SolidBrush(i & 0xFFFFFF), 8, mask)))
    driver.update_area(0, QRect(0, 0, 256, 256))
    return time.perf_counter() - start


def median_time(fn: Callable[[], float | None], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        took = fn()
        times.append(took if took is not None else time.perf_counter() - start)
    return statistics.median(times)


class _NullBackend:
    """Draws nothing: isolates driver + device + transport cost in the fill workload."""

    def create_primary(self, *args: object) -> None: ...
    def destroy_primary(self) -> None: ...
    def execute(self, cmd: object) -> None: ...
    def surface_created(self, *args: object) -> None: ...
    def surface_destroyed(self, surface_id: int) -> None: ...
    def reset(self) -> None: ...
    def reset_3d(self) -> None: ...

    def execute_3d(self, batch: bytes, guest: object) -> None:
        from vgpu.device.backend import run_fences

        run_fences(batch, guest)  # type: ignore[arg-type]

    def read_area(self, surface_id: int, area: object):
        import numpy as np

        return [(area, np.zeros((area.height, area.width * 4),  # type: ignore[attr-defined]
                                np.uint8))]


def fills_in_process(n: int) -> float:
    from vgpu.device.device import Device
    from vgpu.device.inprocess import DeviceThread, InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    device = Device(_NullBackend())  # type: ignore[arg-type]
    with DeviceThread(device):
        driver = GuestDriver(InProcessAttachment(device))
        took = draw(driver, n)
        driver.close()
    device.close()
    return took


def fills_over_socket(n: int) -> float:
    from vgpu.device.device import Device
    from vgpu.device.inprocess import DeviceThread
    from vgpu.device.transport import GuestListener

    device = Device(_NullBackend())  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    with tempfile.TemporaryDirectory() as tmp, DeviceThread(device):
        path = Path(tmp) / "qxl.sock"
        listener = GuestListener(device, path)
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
        out = subprocess.run([sys.executable, "-c", GUEST, __file__, str(path), str(n)],
                             capture_output=True, text=True, check=True, timeout=600).stdout
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join()
    device.close()
    return float(out.split()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench replay")
    parser.add_argument("file", nargs="?", type=Path, default=FIXTURE)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fills", type=int, default=5000)
    args = parser.parse_args(argv)

    from vgpu.render import Renderer
    from vgpu.replay import CommandEvent, read_events, replay

    events = list(read_events(args.file))
    n_events = len(events)
    n_commands = sum(isinstance(e, CommandEvent) for e in events)
    raw = args.file.read_bytes()
    if raw.startswith(b"\xfd7zXZ"):
        raw = lzma.decompress(raw)
    mib = len(raw) / 2**20
    print(f"{args.file.name}: {n_events} events, {n_commands} commands, {mib:.1f} MiB "
          f"uncompressed; median of {args.runs} runs")

    t = median_time(lambda: sum(1 for _ in read_events(args.file)) and None, args.runs)
    print(f"  read (vgpu.replay.read_events, xz included) {t * 1e3:8.1f} ms  "
          f"{n_events / t:10.0f} events/s  {mib / t:7.1f} MiB/s")
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "record.spice"
        plain.write_bytes(raw)
        t = median_time(lambda: sum(1 for _ in read_events(plain)) and None, args.runs)
        print(f"  read (vgpu.replay.read_events, plain)       {t * 1e3:8.1f} ms  "
              f"{n_events / t:10.0f} events/s  {mib / t:7.1f} MiB/s")
        exe = runpy.run_path(str(CHECKER_BUILD))["compile_checker"](Path(tmp))
        if isinstance(exe, str):
            print(f"  spice-server replay: not available ({exe})")
        else:
            t = median_time(lambda: subprocess.run([str(exe), str(plain)], check=True,
                                                   capture_output=True) and None, args.runs)
            print(f"  spice-server reader + worker (C, process)   {t * 1e3:8.1f} ms  "
                  f"{n_commands / t:10.0f} commands/s")

    renderer = Renderer()
    try:
        t = median_time(lambda: replay(args.file, renderer).seconds, args.runs)
    finally:
        renderer.close()
    print(f"  replay: driver + device + GL renderer       {t * 1e3:8.1f} ms  "
          f"{n_commands / t:10.0f} commands/s")

    n = args.fills
    t_in = median_time(lambda: fills_in_process(n), max(1, args.runs // 2))
    t_sock = median_time(lambda: fills_over_socket(n), max(1, args.runs // 2))
    print(f"{n} fills, guest driver -> device (no rendering):")
    print(f"  in-process (guest thread, device thread)    {t_in * 1e3:8.1f} ms  "
          f"{n / t_in:10.0f} commands/s")
    print(f"  guest process over the unix socket          {t_sock * 1e3:8.1f} ms  "
          f"{n / t_sock:10.0f} commands/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
