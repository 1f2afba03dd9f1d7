"""Recordings and the guest transport, side by side in one run.

- each Xspice recording in bench/data replayed the whole way (record reader, guest driver,
  QXL device, GL renderer) against spice-server's own reader and worker (a C program
  built here against libspice-server, started once per run) and against the real time
  the recorded session took;
- reading a record file: vgpu.replay.reader.read_events on the xz file and on the plain file;
- a guest drawing N fills with the null backend: in-process (guest thread, device
  thread) against a guest process on the unix-socket transport.
"""

from __future__ import annotations

import asyncio
import lzma
import runpy
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vgpu.bench import Bench, Contender, Measurement, Seconds, workload
from vgpu.bench.common import NullBackend, recording, recordings
from vgpu.bench.core import BENCH_DIR

CHECKER_BUILD = BENCH_DIR.parent / "tests" / "replay" / "spice_check.py"
"""Builds spice_replay_check.c, the real spice-server reading a record (shared with the
tests that check our recordings with it)."""

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
    """A primary, n fills, an UPDATE_AREA; returns the seconds taken. The guest process
    times itself, so that neither side's start-up counts; the in-process run does the
    same for a like comparison."""
    from vgpu.device.commands import Drawable, Fill, QMask, QPoint, QRect, SolidBrush

    mask = QMask(0, QPoint(0, 0), None)
    driver.create_primary(256, 256)
    start = time.perf_counter()
    for i in range(n):
        driver.submit(Drawable(bbox=QRect(i % 200, 0, i % 200 + 8, 256),
                               op=Fill(SolidBrush(i & 0xFFFFFF), 8, mask)))
    driver.update_area(0, QRect(0, 0, 256, 256))
    return time.perf_counter() - start


def fills_in_process(n: int) -> Seconds:
    from vgpu.device.device import Device
    from vgpu.device.inprocess import DeviceThread, InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    device = Device(NullBackend())  # type: ignore[arg-type]
    with DeviceThread(device):
        driver = GuestDriver(InProcessAttachment(device))
        took = draw(driver, n)
        driver.close()
    device.close()
    return Seconds(took)


def fills_over_socket(n: int) -> Seconds:
    from vgpu.device.device import Device
    from vgpu.device.inprocess import DeviceThread
    from vgpu.device.transport import GuestListener

    device = Device(NullBackend())  # type: ignore[arg-type]
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
    return Seconds(float(out.split()[-1]))


def _vgpu_replay(path: Path) -> Contender:
    from vgpu.render import Renderer
    from vgpu.replay.player import replay

    held: list[Renderer] = []
    return Contender(lambda: replay(path, held[-1]), before=lambda: held.append(Renderer()),
                     after=lambda: held.pop().close())


@workload("replay", "recordings replayed, record files read, the guest transport",
          references=("spice-server's reader and worker", "the recorded session's real time",
                      "in-process guest"))
def replay_workload(b: Bench) -> Iterator[Measurement]:
    from vgpu.replay.format import CommandEvent
    from vgpu.replay.reader import read_events

    with tempfile.TemporaryDirectory() as tmp:
        checker = runpy.run_path(str(CHECKER_BUILD))["compile_checker"](Path(tmp))
        for path in recordings(b.quick):
            name = path.name.removesuffix(".spice.xz")
            plain = Path(tmp) / f"{name}.spice"
            plain.write_bytes(lzma.decompress(path.read_bytes()))
            events = list(read_events(plain))
            commands = sum(isinstance(e, CommandEvent) for e in events)
            span_s = (events[-1].timestamp - events[0].timestamp) / 1e9
            contenders: dict[str, Contender] = {"vgpu (driver, device, GL renderer)":
                                                _vgpu_replay(plain)}
            if not isinstance(checker, str):
                contenders["spice-server reader + worker (C process)"] = Contender(
                    lambda plain=plain: subprocess.run([str(checker), str(plain)], check=True,
                                                       capture_output=True, timeout=300))
            # no warm-up run: every round starts from a new renderer and a read file anyway
            m = b.time(f"replay {name}", contenders, rounds=b.rounds(3, 1), warmup=0,
                       note=f"{commands} commands, {len(events)} events"
                            + (f"; spice-server: {checker}" if isinstance(checker, str) else ""))
            m.samples["the recorded session (real time)"] = [span_s * 1e3]
            yield m

        path = recording("basic")
        plain = Path(tmp) / "basic.spice"
        n_events = len(list(read_events(plain)))
        yield b.time("read basic (events)", {
            "vgpu read_events, plain file": lambda: sum(1 for _ in read_events(plain)),
            "vgpu read_events, xz file": lambda: sum(1 for _ in read_events(path)),
        }, work=n_events, unit="events/s", rounds=b.rounds(5, 1))

    n = 1000 if b.quick else 5000
    yield b.time(f"{n} fills, guest driver to device, null backend", {
        "guest process over the unix socket": lambda: fills_over_socket(n),
        "in-process (guest thread, device thread)": lambda: fills_in_process(n),
    }, work=n, unit="commands/s", rounds=b.rounds(3, 1))
