"""Still regions by content: a photo inside a flat desktop, bytes to the client, vgpu
against the real spice-server.

A session is recorded here through the guest driver and vgpu's recorder: a grey
desktop with lines of dark "text" and a photograph in the middle, drawn two ways
(SCENES). spice-server sends what the guest drew, in the codec it picks per
bitmap; vgpu sends rendered pixels, the damage in bands split by content.
The recording is played by both, vgpu (the machine) and spice-server
(bench/peer), to a spice-gtk client connected first, through a proxy that counts
the bytes each server sends.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_stream = runpy.run_path(str(ROOT / "bench" / "stream.py"), run_name="bench_stream_helpers")
_spice = runpy.run_path(str(ROOT / "bench" / "spice.py"), run_name="bench_spice_helpers")
sys.path.insert(0, str(ROOT / "bench" / "peer"))
from spice_peer import SpicePeer, build_peer  # noqa: E402

UNLIMITED = 1e12
"""The counting proxy's pace: no limit."""

SETTLE_S = 1.5
"""No byte for this long after the replay ends: the picture is complete."""


SCENES = ("window", "screen")
"""window: FILLs and the photo's own COPY (spice-server codes the bitmap alone);
screen: the whole mixed screen as one bitmap COPY (as a guest that sends its
framebuffer does): both servers must code a mixed region."""


def record_mixed(path: Path, width: int, height: int, scene: str) -> None:
    from vgpu.device.abi import lib
    from vgpu.device.commands import BitmapImage, ImageDescriptor, QRect
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.encode.samples import photo_frame
    from vgpu.guest.desktop import copy_image, fill
    from vgpu.guest.driver import GuestDriver
    from vgpu.machine import Machine

    done = threading.Event()

    def guest(machine: Machine, _stop: threading.Event) -> None:
        driver = GuestDriver(InProcessAttachment(machine.device))
        try:
            driver.create_primary(width, height)
            pw, ph = width // 2, height // 2
            top, left = height // 4, width // 2 - 40
            photo = np.ascontiguousarray(photo_frame(pw, ph))
            screen = np.full((height, width, 4), 0xC0, np.uint8)
            for y in range(40, height - 40, 14):
                screen[y:y + 3, 30:width // 3, :3] = 0x20
            screen[top:top + ph, left:left + pw] = photo
            if scene == "window":
                draws = [(photo, QRect(top, left, top + ph, left + pw))]
                driver.submit(fill(QRect(0, 0, height, width), 0xC0C0C0))
                for y in range(40, height - 40, 14):
                    driver.submit(fill(QRect(y, 30, y + 3, width // 3), 0x202020))
            else:
                draws = [(screen, QRect(0, 0, height, width))]
            for pixels, dest in draws:
                h, w = pixels.shape[:2]
                desc = ImageDescriptor(1, lib.SPICE_IMAGE_TYPE_BITMAP, 0, w, h)
                image = BitmapImage(desc, lib.SPICE_BITMAP_FMT_32BIT, lib.QXL_BITMAP_TOP_DOWN,
                                    w, h, w * 4, None, pixels.tobytes())
                driver.submit(copy_image(dest, image))
            driver.collect_releases()
        finally:
            driver.close()
            done.set()

    machine = Machine(guest, record=path)
    with machine:
        done.wait(30)
        time.sleep(0.5)


def count_bytes(port: int, start: object, finished: object) -> int:
    """Connects spice-gtk to `port` through a counting proxy, calls start() once its
    display channel is open, waits for finished() and quiet; the bytes sent to it."""
    proxy = _stream["PacedProxy"](port, UNLIMITED)
    client = _spice["Client"](proxy.port)
    try:
        client.wait_display_open()
        start()  # type: ignore[operator]
        finished()  # type: ignore[operator]
        last, since = -1, time.monotonic()
        while time.monotonic() - since < SETTLE_S:
            if proxy.down_bytes != last:
                last, since = proxy.down_bytes, time.monotonic()
            time.sleep(0.05)
        return int(proxy.down_bytes)
    finally:
        client.close()
        proxy.close()


def run_vgpu(record: Path, image: str) -> int:
    from vgpu.machine import Machine
    from vgpu.spice.imaging import Compression
    from vgpu.spice.server import ServerOptions

    machine = Machine.create(demo=f"replay:{record}")
    options = ServerOptions(compression=Compression(image=image, streaming="off"))
    try:
        with _spice["serving"](machine, options) as (_server, port):
            return count_bytes(port, machine.start, lambda: None)
    finally:
        machine.stop()


def run_peer(exe: Path, record: Path, image: str) -> int:
    with SpicePeer(exe, record, options=("--hold", "--image-compression", image)) as peer:
        return count_bytes(peer.port, peer.release, peer.wait_done)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench mixed", description=__doc__)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args(argv)
    exe = build_peer()
    if isinstance(exe, str):
        print(f"no spice-server peer: {exe}", file=sys.stderr)
        return 2
    print(f"mixed screen {args.width}x{args.height} (a quarter of it a photo), recorded and "
          "replayed to spice-gtk; bytes from server to client, link included")
    print(f"{'scene':<7} {'compression':<12} {'vgpu':>10} {'spice-server':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for scene in SCENES:
            record = Path(tmp) / f"{scene}.spice"
            record_mixed(record, args.width, args.height, scene)
            for image in ("auto_glz", "auto_lz"):
                ours = run_vgpu(record, image)
                theirs = run_peer(exe, record, image)
                print(f"{scene:<7} {image:<12} {ours:10d} {theirs:13d} {ours / theirs:6.2f}",
                      flush=True)
    return 0
