"""Still regions by content: a photo inside a flat desktop, bytes to the client, vgpu
against the real spice-server.

A session is recorded here through the guest driver and vgpu's recorder: a grey
desktop with lines of dark "text" and a photograph in the middle, drawn two ways
(SCENES). spice-server sends what the guest drew, in the codec it picks per
bitmap; vgpu sends rendered pixels, the damage in bands split by content.
The recording is played by both, vgpu (the machine) and spice-server
(bench/peer), to a spice-gtk client connected first, through a proxy that counts
the bytes each server sends (link included). --quick: 640x360, the screen scene, auto_glz only.
"""

from __future__ import annotations

import runpy
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from vgpu.bench import LOWER, Bench, Measurement, workload
from vgpu.bench.common import CountingProxy, SpiceClient, serving
from vgpu.bench.core import BENCH_DIR

PEER_TOOLS = runpy.run_path(str(BENCH_DIR / "peer" / "spice_peer.py"))
"""bench/peer's own helpers: build_peer() and SpicePeer."""
SIZE, QUICK_SIZE = (1280, 720), (640, 360)
COMPRESSIONS = ("auto_glz", "auto_lz")

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


def count_bytes(port: int, start: Callable[[], object], finished: Callable[[], object]
                ) -> dict[str, float]:
    """Connects spice-gtk to `port` through a counting proxy, calls start() once its
    display channel is open, waits for finished() and quiet; the bytes sent to it."""
    proxy = CountingProxy(port)
    client = SpiceClient(proxy.port)
    try:
        client.wait_display_open()
        start()
        finished()
        last, since = -1, time.monotonic()
        while time.monotonic() - since < SETTLE_S:
            if proxy.total() != last:
                last, since = proxy.total(), time.monotonic()
            time.sleep(0.05)
        return {"bytes": float(proxy.total())}
    finally:
        client.close()
        proxy.close()


def run_vgpu(record: Path, image: str) -> dict[str, float]:
    from vgpu.machine import Machine
    from vgpu.spice.imaging import Compression
    from vgpu.spice.server import ServerOptions

    machine = Machine.create(demo=f"replay:{record}")
    options = ServerOptions(compression=Compression(image=image, streaming="off"))
    try:
        with serving(machine, options) as (_server, port):
            return count_bytes(port, machine.start, lambda: None)
    finally:
        machine.stop()


def run_peer(exe: Path, record: Path, image: str) -> dict[str, float]:
    with PEER_TOOLS["SpicePeer"](exe, record, options=("--hold", "--image-compression", image)
                                 ) as peer:
        return count_bytes(peer.port, peer.release, peer.wait_done)


@workload("mixed", "a photo inside a flat desktop: bytes to spice-gtk, vgpu against "
          "spice-server", references=("spice-server",))
def mixed(b: Bench) -> Iterator[Measurement]:
    width, height = QUICK_SIZE if b.quick else SIZE
    built = PEER_TOOLS["build_peer"]()
    note = f"spice-server side missing: {built}" if isinstance(built, str) else ""
    with tempfile.TemporaryDirectory() as tmp:
        for scene in SCENES[-1:] if b.quick else SCENES:
            record = Path(tmp) / f"{scene}.spice"
            record_mixed(record, width, height, scene)
            for image in COMPRESSIONS[:1] if b.quick else COMPRESSIONS:
                contenders: dict[str, Callable[[], dict[str, float]]] = {
                    "vgpu": lambda record=record, image=image: run_vgpu(record, image)}
                if not note:
                    contenders["spice-server"] = (lambda record=record, image=image:
                                                  run_peer(built, record, image))
                yield from b.observe(contenders, {"bytes": ("bytes", LOWER)},
                                     prefix=f"{scene} {width}x{height} {image}: ", rounds=1,
                                     note=note)
