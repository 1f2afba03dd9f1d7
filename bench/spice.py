"""vgpu's SPICE server end to end, seen by a real client (spice-gtk's SpiceClientGLib).

- animation: a full-screen animation (every pixel changes every frame), synthetic frames
  published at 60 frames/s for 3 s, 1920x1080 (960x540 and 1 s with --quick);
- replay: the basic recording played through the machine (device and renderer) with
  the client connected before it starts; streams off, so that every display-invalidate
  is one DRAW_COPY, which DisplayStats.sends ties to the frame it carried.
For each image compression (the contenders, auto_glz first; the animation also with
MJPEG streaming): frames per second the client showed, bytes per frame on the wire, and
the time from publish to the client's display-invalidate of the frame's last rows
(median and p99). Frames carry a 16-bit stamp along the bottom-left edge that the
client reads back (coarse blocks: JPEG keeps them). Against spice-server: `bench peer`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vgpu.bench import HIGHER, LOWER, Bench, Measurement, workload
from vgpu.bench.common import SpiceClient as Client
from vgpu.bench.common import percentiles, recording, serving
from vgpu.display import CursorBus, Frame, FrameBus, InputEvent
from vgpu.spice.imaging import Compression
from vgpu.spice.server import ServerOptions

STAMP_BITS, STAMP_BLOCK = 16, 16  # as the client reads them
DISTINCT_FRAMES = 24  # precomputed, so publishing costs nothing


class Source:
    def __init__(self) -> None:
        self.frames = FrameBus()
        self.cursor = CursorBus()

    def send_input(self, event: InputEvent) -> None:
        pass


def stamp(pixels: np.ndarray, value: int) -> None:
    h = pixels.shape[0]
    for bit in range(STAMP_BITS):
        on = 255 if value >> bit & 1 else 0
        pixels[h - STAMP_BLOCK :, bit * STAMP_BLOCK : (bit + 1) * STAMP_BLOCK, :3] = on


def animation(width: int, height: int) -> list[np.ndarray]:
    """Moving gradients, a moving checkerboard and a bouncing box: like a desktop's
    3D output, every pixel changes, large flat-ish areas compress."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int32)
    frames = []
    for i in range(DISTINCT_FRAMES):
        img = np.empty((height, width, 4), np.uint8)
        img[..., 0] = (x + 8 * i) * 255 // width % 256
        img[..., 1] = (y + 4 * i) * 255 // height % 256
        img[..., 2] = ((x + 6 * i) // 64 + (y // 64)) % 2 * 160
        img[..., 3] = 255
        bx = (i * 37) % max(1, width - 200)
        img[200:400, bx : bx + 200, :3] = (40, 200, 40)
        frames.append(img)
    return frames


def run_animation(
    width: int, height: int, fps: float, seconds: float, image: str, streaming: str
) -> dict:
    source = Source()
    frames = animation(width, height)
    options = ServerOptions(compression=Compression(image=image, streaming=streaming))
    published: dict[int, float] = {}
    with serving(source, options) as (server, port):
        first = frames[0].copy()
        stamp(first, 0)
        first.setflags(write=False)
        source.frames.publish(Frame(0, 1, first, ((0, 0, width, height),)))
        client = Client(port)
        try:
            deadline = time.monotonic() + 20
            while not any(line.startswith("mark") for line in client.drain()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the client never showed the first frame")
                time.sleep(0.05)
            stats = server.display_stats[0]
            bytes0, frames0 = stats.bytes, stats.frames
            start = time.monotonic()
            serial = 0
            while time.monotonic() - start < seconds:
                serial += 1
                pixels = frames[serial % DISTINCT_FRAMES].copy()
                stamp(pixels, serial % (1 << STAMP_BITS))
                pixels.setflags(write=False)
                published[serial % (1 << STAMP_BITS)] = time.time()
                source.frames.publish(Frame(serial, 1, pixels, ((0, 0, width, height),)))
                time.sleep(max(0.0, start + serial / fps - time.monotonic()))
            time.sleep(0.5)  # let the last frames land
            elapsed = time.monotonic() - start
            lines = client.drain()
            sent_bytes, sent_frames = stats.bytes - bytes0, stats.frames - frames0
        finally:
            client.close()
    seen: dict[int, float] = {}
    for line in lines:
        parts = line.split()
        if parts[:1] == ["inv"]:
            value = int(parts[6])
            if value in published and value not in seen and value != 0:
                seen[value] = float(parts[1])
    return {
        "published": serial,
        "frames/s shown": len(seen) / elapsed,
        "bytes per frame": sent_bytes / max(1, sent_frames),
        **percentiles([(seen[k] - published[k]) * 1000 for k in seen]),
    }


def invalidate_times(lines: list[str]) -> list[float]:
    return [float(line.split()[1]) for line in lines if line.startswith("inv ")]


def run_replay(recording: Path, image: str, settle: float = 1.0) -> dict:
    """The recording through the machine, with the client connected before it starts.

    Streams are off here so that every display-invalidate is one DRAW_COPY, which
    DisplayStats.sends ties to the frame it carried."""
    from vgpu.machine import Machine

    machine = Machine.create(demo=f"replay:{recording}")
    published: dict[int, float] = {}

    def on_frame() -> None:
        taken = mine.take()
        if taken is not None:
            published[taken[0].serial] = time.time()

    mine = machine.frames.subscribe(on_frame)
    options = ServerOptions(compression=Compression(image=image, streaming="off"))
    lines: list[str] = []
    with serving(machine, options) as (server, port):
        client = Client(port)
        try:
            lines += client.wait_display_open()
            start = time.monotonic()
            machine.start()
            last_count, last_change = -1, time.monotonic()
            while time.monotonic() - last_change < settle:
                if len(published) != last_count:
                    last_count, last_change = len(published), time.monotonic()
                time.sleep(0.05)
            elapsed = last_change - start
            time.sleep(0.5)
            lines += client.drain()
            stats = server.display_stats[0]
            sends, sent_bytes = list(stats.sends), stats.bytes
        finally:
            client.close()
            machine.stop()
    times = invalidate_times(lines)
    latencies = []
    done = 0
    for serial, draws in sends:
        done += draws
        if draws and done <= len(times) and serial in published:
            latencies.append((times[done - 1] - published[serial]) * 1000)
    return {
        "published": len(published),
        "delivered": len(sends),
        "frames/s shown": len(sends) / elapsed if elapsed > 0 else float("nan"),
        "bytes per frame": sent_bytes / max(1, len(sends)),
        **percentiles(latencies),
    }


FIGURES = {"frames/s shown": ("frames/s", HIGHER), "bytes per frame": ("bytes", LOWER),
           "latency median": ("ms", LOWER), "latency p99": ("ms", LOWER)}
"""What one end-to-end session yields, per contender (a compression setting)."""
IMAGES = ("auto_glz", "quic", "lz4", "off")


@workload("spice", "vgpu's SPICE server to spice-gtk: frames/s, bytes, latency per compression")
def spice(b: Bench) -> Iterator[Measurement]:
    width, height = (960, 540) if b.quick else (1920, 1080)
    seconds = 1.0 if b.quick else 3.0
    images = IMAGES[:1] if b.quick else IMAGES
    settings = [(image, "off") for image in images] + [(images[0], "filter")]
    yield from b.observe(
        {(image if streaming == "off" else f"{image} + MJPEG streams"):
         (lambda image=image, streaming=streaming:
          run_animation(width, height, 60.0, seconds, image, streaming))
         for image, streaming in settings},
        FIGURES, prefix=f"animation {width}x{height}: ", rounds=1,
        note=f"published at 60 frames/s for {seconds} s")
    yield from b.observe(
        {image: (lambda image=image: run_replay(recording("basic"), image)) for image in images},
        FIGURES, prefix="replay basic: ", rounds=1)
