"""Video streams as a real client sees them: the anim demo guest through the whole stack.

The built-in animation guest (vgpu/guest/anim.py: a new full-screen image COPY
every frame, through the guest driver, the device and the GL renderer) is served
to spice-gtk (SpiceClientGLib, decoding H.264 and VP8 with GStreamer), one codec
at a time (--video-codecs pyav:CODEC). Per size and codec, over the measuring
window:
  shown fps   distinct frames the client displayed per second (each frame carries
              its counter along the bottom-left edge; the client reads it back on
              every display-invalidate);
  KiB/s, KiB/frame  stream bytes on the wire (server's count), per second and per
              stream frame sent;
  SSIM        what the client shows (its primary surface, dumped a few times) against
              the renderer's frame with the same counter: SSIM of BT.601 luma over
              8x8 windows (Wang et al. 2004, box windows), mean over the dumps;
  delay       present (the frame published by the render thread) to the client's
              display-invalidate of that frame: median and p99.
With --throttle KBPS a second run serves two clients at once, one direct and one
through a proxy that paces the server's bytes to KBPS kilobytes per second: the
throttled client's delay must stay bounded (its queue does not grow) while the
direct one keeps its frame rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import runpy
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vgpu.guest.anim import read_stamp
from vgpu.spice.imaging import Compression
from vgpu.spice.server import ServerOptions

ROOT = Path(__file__).resolve().parent.parent
_spice = runpy.run_path(str(ROOT / "bench" / "spice.py"), run_name="bench_spice_helpers")
Client, serving, percentiles = _spice["Client"], _spice["serving"], _spice["percentiles"]

KEEP_FRAMES = 48
"""Published frames kept for SSIM: a dump shows a frame at most this many frames old."""

WARMUP_S = 2.0
"""After the client's first picture: the stream starts and rate control settles."""

THROTTLED_WARMUP_S = 8.0
"""The throttled client's first, lossless picture of the whole screen takes this long
at 500 kB/s (a 1280x720 photographic frame is 2 to 3 MB in QUIC or LZ)."""

DUMPS = 4
"""Client pictures compared per run."""

SSIM_WINDOW = 8
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def luma(pixels: np.ndarray) -> np.ndarray:
    b, g, r = (pixels[..., i].astype(np.float64) for i in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def _box(values: np.ndarray) -> np.ndarray:
    """Means over non-overlapping SSIM_WINDOW x SSIM_WINDOW windows."""
    h = values.shape[0] // SSIM_WINDOW * SSIM_WINDOW
    w = values.shape[1] // SSIM_WINDOW * SSIM_WINDOW
    blocks = values[:h, :w].reshape(h // SSIM_WINDOW, SSIM_WINDOW, w // SSIM_WINDOW, SSIM_WINDOW)
    return blocks.mean(axis=(1, 3))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    x, y = luma(a), luma(b)
    mx, my = _box(x), _box(y)
    vx = _box(x * x) - mx * mx
    vy = _box(y * y) - my * my
    cov = _box(x * y) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return float((num / den).mean())


class Presented:
    """The render thread's frames, as published: time per counter, recent pixels."""

    def __init__(self, machine: object) -> None:
        self.times: dict[int, float] = {}
        self.recent: deque[tuple[int, np.ndarray]] = deque(maxlen=KEEP_FRAMES)
        self._lock = threading.Lock()
        self._sub = machine.frames.subscribe(self._on_frame)  # type: ignore[attr-defined]

    def _on_frame(self) -> None:
        taken = self._sub.take()
        if taken is None:
            return
        frame = taken[0]
        value = read_stamp(frame.pixels)
        with self._lock:
            self.times.setdefault(value, time.time())
            self.recent.append((value, frame.pixels))

    def pixels(self, value: int) -> np.ndarray | None:
        with self._lock:
            return next((p for v, p in reversed(self.recent) if v == value), None)

    def close(self) -> None:
        self._sub.close()


class PacedProxy:
    """A TCP proxy whose server-to-client direction carries at most `rate` bytes a
    second, reading from the server only as fast as it forwards (so the backlog
    stays on the server's side, where rate control can see it)."""

    PACE_S = 0.02
    """Bytes go through in slices of this many seconds' worth: a link's bytes come
    evenly, not in bursts a whole frame apart."""

    def __init__(self, target_port: int, rate: float) -> None:
        self.target_port, self.rate = target_port, rate
        self.chunk = min(1 << 20, max(1024, int(rate * self.PACE_S)))
        self.down_bytes = 0  # bytes from the server to the client, all connections
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)

    async def _listen(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def up() -> None:
            while data := await creader.read(65536):
                swriter.write(data)
                await swriter.drain()

        async def down() -> None:
            while data := await sreader.read(self.chunk):
                self.down_bytes += len(data)
                cwriter.write(data)
                await cwriter.drain()
                await asyncio.sleep(len(data) / self.rate)

        # A closing client, or close() cancelling: either ends this connection quietly.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(up(), down())
        cwriter.close()
        swriter.close()

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Watch:
    """One client's lines, turned into shown frames, delays and SSIM samples."""

    def __init__(self, client: object, presented: Presented) -> None:
        self.client, self.presented = client, presented
        self.lines: list[str] = []
        self.ssims: list[float] = []

    def poll(self) -> None:
        self.lines += self.client.drain()  # type: ignore[attr-defined]

    def wait_first_picture(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("inv ") for line in self.lines):
            if time.monotonic() > deadline:
                raise RuntimeError("the client never showed a picture")
            time.sleep(0.05)
            self.poll()

    def sample_ssim(self, path: Path) -> None:
        proc = self.client.proc  # type: ignore[attr-defined]
        proc.stdin.write(f"dump {path}\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.poll()
            if any(line.startswith("dumped") for line in self.lines[-50:]):
                break
            time.sleep(0.01)
        self.lines = [line for line in self.lines if not line.startswith("dumped")]
        primary = next(line for line in self.lines if line.startswith("primary"))
        width, height = (int(v) for v in primary.split()[1:3])
        shown = np.fromfile(path, np.uint8).reshape(height, width, 4)
        expected = self.presented.pixels(read_stamp(shown))
        if expected is not None:
            self.ssims.append(ssim(shown, expected))

    def shown(self, start: float, end: float) -> dict[int, float]:
        """Counter -> when the client first showed it, for invalidates in [start, end)."""
        first: dict[int, float] = {}
        for line in self.lines:
            parts = line.split()
            if parts[:1] == ["inv"]:
                t, value = float(parts[1]), int(parts[6])
                if start <= t < end and value not in first:
                    first[value] = t
        return first


@contextlib.contextmanager
def running(width: int, height: int, codec: str) -> Iterator[tuple[object, object, Presented]]:
    from vgpu.machine import Machine

    codecs = "spice:mjpeg" if codec == "mjpeg" else f"pyav:{codec}"
    options = ServerOptions(compression=Compression(streaming="all", video_codecs=codecs))
    machine = Machine.create(demo="anim", width=width, height=height)
    presented = Presented(machine)
    machine.start()
    try:
        with serving(machine, options) as (server, port):
            yield server, port, presented
    finally:
        presented.close()
        machine.stop()


def measure(
    watches: list[Watch], seconds: float, tmp: Path, warmup: float = WARMUP_S
) -> tuple[float, float]:
    """Runs the window, dumping pictures along the way; returns (start, end) in time.time()."""
    for watch in watches:
        watch.wait_first_picture()
    time.sleep(warmup)
    start = time.time()
    for i in range(DUMPS):
        time.sleep(seconds / DUMPS)
        for n, watch in enumerate(watches):
            watch.sample_ssim(tmp / f"dump{n}-{i}.raw")
    end = time.time()
    time.sleep(0.3)
    for watch in watches:
        watch.poll()
    return start, end


def summary(watch: Watch, presented: Presented, start: float, end: float) -> dict:
    shown = watch.shown(start, end)
    pairs = [(t, (t - presented.times[v]) * 1000) for v, t in shown.items()
             if v in presented.times]
    delays = [d for _t, d in pairs]
    half = start + (end - start) / 2
    late = [d for t, d in pairs if t >= half]
    return {
        "fps": len(shown) / (end - start),
        "ssim": statistics.mean(watch.ssims) if watch.ssims else float("nan"),
        "late_half_median_ms": statistics.median(late) if late else float("nan"),
        **percentiles(delays),
    }


def run_codec(width: int, height: int, codec: str, seconds: float, tmp: Path) -> dict:
    with running(width, height, codec) as (server, port, presented):
        client = Client(port)
        try:
            watch = Watch(client, presented)
            watch.wait_first_picture()
            stats = server.display_stats[0]  # type: ignore[attr-defined]
            time.sleep(WARMUP_S)
            bytes0, frames0 = stats.stream_bytes, stats.stream_frames
            skipped0 = stats.stream_skipped
            published0 = len(presented.times)
            start, end = measure([watch], seconds, tmp)
            sent_bytes = stats.stream_bytes - bytes0
            sent_frames = stats.stream_frames - frames0
            skipped = stats.stream_skipped - skipped0
            published = len(presented.times) - published0
        finally:
            client.close()
    return {
        **summary(watch, presented, start, end),
        "codec": stats.codec,
        "published_fps": published / (end - start + WARMUP_S),
        "kib_s": sent_bytes / 1024 / (end - start + WARMUP_S),
        "kib_frame": sent_bytes / 1024 / max(1, sent_frames),
        "skipped": skipped,
    }


def run_throttled(
    width: int, height: int, codec: str, seconds: float, kbps: float, tmp: Path
) -> dict:
    with running(width, height, codec) as (server, port, presented):
        proxy = PacedProxy(port, kbps * 1000)
        fast, slow = Client(port), Client(proxy.port)
        try:
            watches = [Watch(fast, presented), Watch(slow, presented)]
            # The slow client's first picture is a lossless full screen: seconds
            # at a few hundred kB/s before the stream starts.
            start, end = measure(watches, seconds, tmp, THROTTLED_WARMUP_S)
            stats = list(server.display_stats)  # type: ignore[attr-defined]
        finally:
            fast.close()
            slow.close()
            proxy.close()
    return {
        "fast": summary(watches[0], presented, start, end),
        "slow": summary(watches[1], presented, start, end),
        "max_backlog_kib": [s.max_backlog / 1024 for s in stats],
        "skipped": [s.stream_skipped for s in stats],
    }


RD_BITS_PER_PIXEL = (0.1, 0.15)
RD_MJPEG_QUALITIES = (50, 70)
"""Rate-distortion points: H.264 at the starting rate and above it, MJPEG at
spice-server's starting quality (70) and below it, to compare at equal SSIM."""

FFMPEG_DECODERS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "h265": "hevc", "mjpeg": "mjpeg"}


def encoder_costs(width: int, height: int, codec: str, frames: int = 30,
                  bits_per_pixel: float | None = None, quality: int | None = None) -> dict:
    """The server's share alone: ms per frame for the stream encoder (colour conversion
    included) on the anim guest's pictures, median, one encode at a time, at the
    starting rate (no rate control); and the SSIM of FFmpeg's decoding of each frame."""
    from vgpu.encode.video import (
        START_BITS_PER_PIXEL,
        CodecChoice,
        Rate,
        bitrate_for,
        create_encoder,
    )
    from vgpu.guest.anim import AnimScene

    scene = AnimScene(width, height)
    pictures = []
    for _ in range(frames):
        scene.count += 1
        pictures.append(scene.frame())
    choice = CodecChoice("spice" if codec == "mjpeg" else "pyav", codec)
    bpp = bits_per_pixel or START_BITS_PER_PIXEL
    encoder = create_encoder(choice, width, height, Rate(bitrate_for(width, height, 60, bpp), 60))
    if quality is not None:
        encoder.quality = quality  # type: ignore[attr-defined]  # MJPEG's only knob
    import av

    decoder = av.CodecContext.create(FFMPEG_DECODERS[codec], "r")
    times, sizes, shown = [], [], []
    for picture in pictures:
        t = time.perf_counter()
        data = encoder.encode(picture)
        times.append((time.perf_counter() - t) * 1000)
        sizes.append(len(data))
        packets = [av.Packet(data)] if codec == "mjpeg" else decoder.parse(data)
        for packet in packets:
            shown += decoder.decode(packet)
    if codec != "mjpeg":  # FFmpeg's parser holds the last frame until the stream ends
        for packet in decoder.parse(None):
            shown += decoder.decode(packet)
    if len(shown) != len(pictures):
        raise RuntimeError(f"{codec}: {len(shown)} frames decoded of {len(pictures)}")
    scores = [ssim(d.to_ndarray(format="bgra"), p) for d, p in zip(shown, pictures, strict=True)]
    return {
        "ms": statistics.median(times[1:]),
        "kib": statistics.mean(sizes[1:]) / 1024,
        "ssim": statistics.mean(scores),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench stream", description=__doc__)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--codecs", default="h264,vp8,mjpeg")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--throttle", type=float, default=500.0,
                        help="kilobytes per second for the throttled client (0: no such run)")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print("encoder alone, starting rate: median ms per frame (RGB->YUV included), KiB per "
          "frame, SSIM of FFmpeg's decoding")
    for width, height in sizes:
        costs = {codec: encoder_costs(width, height, codec) for codec in args.codecs.split(",")}
        print(f"{width}x{height:<5} " + "  ".join(
            f"{codec} {c['ms']:.1f} ms {c['kib']:.1f} KiB {c['ssim']:.3f}"
            for codec, c in costs.items()))
    width, height = sizes[0]
    points = [("h264", bpp, None) for bpp in RD_BITS_PER_PIXEL]
    points += [("mjpeg", None, q) for q in RD_MJPEG_QUALITIES]
    print(f"rate and quality at {width}x{height}, encoder alone: " + "; ".join(
        f"{codec} {'bpp ' + str(bpp) if bpp else 'q' + str(q)}: {c['kib']:.1f} KiB "
        f"SSIM {c['ssim']:.4f}"
        for codec, bpp, q in points
        for c in [encoder_costs(width, height, codec, bits_per_pixel=bpp, quality=q)]))
    print("\nanim demo guest -> machine (guest driver, device, GL renderer) -> vgpu SPICE "
          "server -> spice-gtk (SpiceClientGLib, GStreamer decoders), one client; "
          "skipped: stream frames rate control left out")
    print(f"{'size':>10} {'codec':<6} {'published':>9} {'shown fps':>9} {'KiB/s':>8} "
          f"{'KiB/frame':>9} {'SSIM':>6} {'median ms':>9} {'p99 ms':>7} {'skipped':>7}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for width, height in sizes:
            for codec in args.codecs.split(","):
                r = run_codec(width, height, codec, args.seconds, tmp)
                print(f"{width}x{height:<5} {r['codec'] or '-':<6} {r['published_fps']:9.1f} "
                      f"{r['fps']:9.1f} {r['kib_s']:8.0f} {r['kib_frame']:9.1f} "
                      f"{r['ssim']:6.3f} {r['median_ms']:9.1f} {r['p99_ms']:7.1f} "
                      f"{r['skipped']:7d}", flush=True)
        if args.throttle:
            width, height = sizes[0]
            codec = args.codecs.split(",")[0]
            print(f"\ntwo clients at once, {width}x{height} {codec}: one direct, one through "
                  f"a proxy paced to {args.throttle:g} kB/s")
            r = run_throttled(width, height, codec, args.seconds, args.throttle, tmp)
            for name in ("fast", "slow"):
                s = r[name]
                print(f"  {name}: shown {s['fps']:.1f} fps, SSIM {s['ssim']:.3f}, delay median "
                      f"{s['median_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, second half median "
                      f"{s['late_half_median_ms']:.0f} ms")
            print(f"  server: most bytes waiting in a socket before a stream frame "
                  f"{[round(k) for k in r['max_backlog_kib']]} KiB, stream frames skipped "
                  f"{r['skipped']}")
    return 0
