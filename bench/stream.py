"""Video streams as a real client sees them: the demo guests through the whole stack.

The full-screen 3D demo (vgpu/guest/cube.py: the cube through the 3D ring) and the
animation guest (vgpu/guest/anim.py: a new full-screen image COPY every frame,
through the guest driver, the device and the GL renderer), both stamping their
frame counter, are served to spice-gtk (SpiceClientGLib, decoding H.264 and VP8
with GStreamer), one codec at a time (--video-codecs pyav:CODEC). Per demo, size
and codec, over the measuring window:
  shown fps   distinct frames the client displayed per second (each frame carries
              its counter along the bottom-left edge; the client reads it back on
              every display-invalidate);
  KiB/s, KiB/frame  stream bytes on the wire (server's count), per second and per
              stream frame sent;
  SSIM        what the client shows (its primary surface, dumped a few times) against
              the renderer's frame with the same counter: SSIM of BT.601 luma over
              8x8 windows (Wang et al. 2004, box windows), mean over the dumps;
  delay       present (the frame published by the render thread) to the client's
              display-invalidate of that frame: median and p99;
  CPU         ms per frame of each stage (STAGES: guest, render, GL rasterizer,
              encode, send, client protocol, client decode), from the threads' CPU
              times, and the load average.
Beside it, the encoders alone (ms per frame, KiB per frame, SSIM of FFmpeg's decoding)
and rate-distortion points on each demo's pictures (H.264 at three rates, MJPEG,
spice-server's own codec, at qualities from 30 to 95) with H.264's bytes over MJPEG's
at equal SSIM. Side by side, the real spice-server (bench/peer) replays a recording of
the anim demo with its own MJPEG and GStreamer's H.264 and VP8. A last run serves two
clients at once, one direct and one through a proxy that paces the server's bytes to
THROTTLE_KBPS: the throttled client's delay must stay bounded (its queue does not grow)
while the direct one keeps its frame rate. With --quick: one small size, two codecs,
the cube only, no rate-distortion, peer or throttled runs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import runpy
import statistics
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from vgpu.bench import HIGHER, LOWER, Bench, Measurement, workload
from vgpu.bench.common import LoopProxy, SpiceClient, percentiles, serving
from vgpu.bench.core import BENCH_DIR
from vgpu.display import Subscription
from vgpu.guest.anim import read_stamp
from vgpu.spice.imaging import Compression
from vgpu.spice.server import ServerOptions

SIZES = ((1280, 720), (1920, 1080))
QUICK_SIZE = (640, 360)
CODECS = ("h264", "vp8", "mjpeg")
"""vgpu's first choice first; MJPEG is spice-server's own stream codec."""
QUICK_CODECS = ("h264", "mjpeg")
SECONDS, QUICK_SECONDS = 3.0, 1.0
"""The measuring window per session, after the warm-up."""
THROTTLE_KBPS = 500.0
"""The paced client's link: a frame of a stream fits, a lossless full screen takes seconds."""

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
        self._sub: Subscription | None = None  # subscribe may notify before it returns
        self._sub = machine.frames.subscribe(self._on_frame)  # type: ignore[attr-defined]
        self._on_frame()

    def _on_frame(self) -> None:
        if self._sub is None:
            return
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


class PacedProxy(LoopProxy):
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
        super().__init__()

    async def relay(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
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


class Watch:
    """One client's lines, turned into shown frames, delays and SSIM samples."""

    def __init__(self, client: object, presented: Presented) -> None:
        self.client, self.presented = client, presented
        self.lines: list[str] = []
        # (what the client showed, the renderer's frame with its counter): scored after
        # the window, as an SSIM at 1280x720 costs this process about 140 ms of CPU
        # that the server's threads would miss inside it.
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def ssims(self) -> list[float]:
        return [ssim(shown, expected) for shown, expected in self.samples]

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
        self.client.send(f"dump {path}")  # type: ignore[attr-defined]
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
            self.samples.append((shown, expected))

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


STAGES = ("guest", "render", "GL rasterizer", "encode", "send", "client protocol",
          "client decode")
"""Where a frame's CPU time goes, by thread: the guest program (vgpu-guest), the device
and renderer (vgpu-render: ring, parse, GL calls, readback), Mesa's rasterizer threads
(llvmpipe-N), the stream encoders (the spice-encode pool and the threads the codec
libraries start, which have no Python name), the event loop (spice-loop: framing and
socket writes), and the client process: its main thread (spice-gtk's channels, the
canvas, the test client's stamp reading) and the rest (GStreamer's decoder threads)."""

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (its kernel name, user + system CPU seconds) from /proc."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(tid)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                           (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def _stage(name: str) -> str:
    if name.startswith("vgpu-guest"):
        return "guest"
    if name.startswith("vgpu-render"):
        return "render"
    if name.startswith("llvmpipe"):
        return "GL rasterizer"
    if name.startswith("spice-loop"):
        return "send"
    if name.startswith("spice-encode") or not name.startswith(("vgpu-", "Thread", "Main")):
        return "encode"  # the pool, and the codec libraries' own threads
    return "other"


class CpuMeter:
    """CPU seconds per stage (STAGES) of this process and the client's, between
    start() and stop(). Threads are told apart by their Python names here and their
    kernel names in the client."""

    def __init__(self, client_pid: int) -> None:
        self.client_pid = client_pid
        self._before: dict[tuple[bool, int], float] = {}

    def _sample(self) -> dict[tuple[bool, int], tuple[str, float]]:
        names = {t.native_id: t.name for t in threading.enumerate()}
        own = {(False, tid): (names.get(tid, comm), cpu)
               for tid, (comm, cpu) in _thread_cpu(os.getpid()).items()}
        return own | {(True, tid): v for tid, v in _thread_cpu(self.client_pid).items()}

    def start(self) -> None:
        self._before = {key: cpu for key, (_name, cpu) in self._sample().items()}

    def stop(self) -> dict[str, float]:
        spent = dict.fromkeys(STAGES, 0.0)
        for key, (name, cpu) in self._sample().items():
            client, tid = key
            if client:  # its main thread runs spice-gtk; GStreamer starts the others
                stage = "client protocol" if tid == self.client_pid else "client decode"
            else:
                stage = _stage(name)
            if stage in spent:
                spent[stage] += cpu - self._before.get(key, 0.0)
        return spent


DEMOS = ("cube", "anim")
"""The full-screen 3D demo (the cube through the 3D ring) and the 2D one (a new
photographic image COPY every frame): both stamp their frame counter."""


@contextlib.contextmanager
def running(width: int, height: int, codec: str, demo: str = "anim"
            ) -> Iterator[tuple[object, object, Presented]]:
    from vgpu.machine import Machine

    codecs = "spice:mjpeg" if codec == "mjpeg" else f"pyav:{codec}"
    options = ServerOptions(compression=Compression(streaming="all", video_codecs=codecs))
    machine = Machine.create(demo=demo, width=width, height=height)
    presented = Presented(machine)
    machine.start()
    try:
        with serving(machine, options) as (server, port):
            yield server, port, presented
    finally:
        presented.close()
        machine.stop()


def measure(
    watches: list[Watch], seconds: float, tmp: Path, warmup: float,
    at_start: Callable[[], None] = lambda: None, at_end: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Runs the window, dumping pictures along the way; returns (start, end) in time.time().
    `at_start` and `at_end` are called at its edges (to read the server's counters)."""
    for watch in watches:
        watch.wait_first_picture()
    time.sleep(warmup)
    at_start()
    start = time.time()
    for i in range(DUMPS):
        time.sleep(seconds / DUMPS)
        for n, watch in enumerate(watches):
            watch.sample_ssim(tmp / f"dump{n}-{i}.raw")
    end = time.time()
    at_end()
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
    ssims = watch.ssims
    return {
        "fps": len(shown) / (end - start),
        "ssim": statistics.mean(ssims) if ssims else float("nan"),
        "late_half_median_ms": statistics.median(late) if late else float("nan"),
        **percentiles(delays),
    }


def stage_costs(spent: dict[str, float], published: int, sent: int, shown: int,
                seconds: float) -> dict:
    """CPU ms per frame of each stage, each over the frames it handled: the guest, the
    renderer and the rasterizer per published frame, the encoders and the event loop
    per stream frame sent, the client per frame shown; and the whole as a share of
    one core."""
    per = {"guest": published, "render": published, "GL rasterizer": published,
           "encode": sent, "send": sent, "client protocol": shown, "client decode": shown}
    costs = {f"cpu {stage}": spent[stage] * 1000 / max(1, per[stage]) for stage in STAGES}
    costs["cpu all"] = sum(spent.values()) / seconds * 100
    return costs


def run_codec(width: int, height: int, codec: str, seconds: float, tmp: Path,
              warmup: float = WARMUP_S, demo: str = "anim") -> dict:
    with running(width, height, codec, demo) as (server, port, presented):
        client = SpiceClient(port)
        try:
            watch = Watch(client, presented)
            watch.wait_first_picture()
            stats = server.display_stats[0]  # type: ignore[attr-defined]
            meter = CpuMeter(client.proc.pid)
            edges: list[tuple[int, int, int]] = []  # the server's counters at the window's edges
            spent: dict[str, float] = {}

            def at_start() -> None:
                edges.append((stats.stream_bytes, stats.stream_frames, stats.stream_skipped))
                meter.start()

            def at_end() -> None:
                spent.update(meter.stop())
                edges.append((stats.stream_bytes, stats.stream_frames, stats.stream_skipped))

            start, end = measure([watch], seconds, tmp, warmup, at_start, at_end)
            (bytes0, frames0, skipped0), (bytes1, frames1, skipped1) = edges
            sent_bytes, sent_frames = bytes1 - bytes0, frames1 - frames0
            skipped = skipped1 - skipped0
            published = sum(1 for t in presented.times.values() if start <= t < end)
        finally:
            client.close()
    shown = summary(watch, presented, start, end)
    return {
        **shown,
        **stage_costs(spent, published, sent_frames, round(shown["fps"] * (end - start)),
                      end - start),
        "load": os.getloadavg()[0],
        "codec": stats.codec,
        "encoder": stats.encoder,
        "published_fps": published / (end - start),
        "kib_s": sent_bytes / 1024 / (end - start),
        "kib_frame": sent_bytes / 1024 / max(1, sent_frames),
        "skipped": skipped,
    }


def run_throttled(
    width: int, height: int, codec: str, seconds: float, kbps: float, tmp: Path
) -> dict:
    with running(width, height, codec) as (server, port, presented):
        proxy = PacedProxy(port, kbps * 1000)
        fast, slow = SpiceClient(port), SpiceClient(proxy.port)
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


PEER_TOOLS = runpy.run_path(str(BENCH_DIR / "peer" / "spice_peer.py"))
"""bench/peer's helpers: build_peer() and SpicePeer (the real spice-server replaying a
record file)."""

PEER_CODECS = {"mjpeg": "spice:mjpeg", "h264": "gstreamer:h264", "vp8": "gstreamer:vp8"}
"""spice-server's own encoders for each codec: its MJPEG, and GStreamer's where its
plugins are on this host (spice-server leaves out an encoder it cannot build, and the
stream then falls back to what remains)."""

PEER_RECORD_S = 3.0
"""Seconds of the anim demo recorded for the peer (about 300 MB at 1280x720: every
frame is a new uncompressed image)."""

PEER_FPS = 60.0
"""The replay's pace: the anim guest's own rate."""

LINK_RATE = 1e12
"""The counting proxy's rate: no pacing, it only counts the server's bytes."""


class AnimReference:
    """The anim demo's picture for a frame counter: the guest is deterministic, so any
    stamped frame can be compared with what it was (the peer has no frames to keep)."""

    def __init__(self, width: int, height: int) -> None:
        from vgpu.guest.anim import AnimScene

        self.scene = AnimScene(width, height)

    def pixels(self, value: int) -> np.ndarray:
        self.scene.count = value
        return self.scene.frame()


def record_anim(width: int, height: int, seconds: float, path: Path) -> int:
    """Records the anim demo served by vgpu in spice-server's format; the frames in it."""
    from vgpu.machine import Machine

    machine = Machine.create(demo="anim", width=width, height=height, record=path)
    machine.start()
    time.sleep(seconds)
    machine.stop()
    return int(machine.recorded or 0)


PEER_SETTLE_FRAMES = 30
"""Frames of the recording before the peer's figures count: spice-server starts a stream
after 20 frames of a region (RED_STREAM_FRAMES_START_CONDITION) and sends the ones
before losslessly, each a megabyte or more."""


def run_peer(exe: Path, record: Path, width: int, height: int, codec: str, tmp: Path) -> dict:
    """The real spice-server replaying `record` (the anim demo) with its own stream
    encoder for `codec`, paced at PEER_FPS, to spice-gtk through a proxy that counts
    bytes. From the recording's PEER_SETTLE_FRAMES-th frame shown to its last: frames
    shown per second, KiB per second and per frame shown, and the SSIM of the client's
    pictures against the anim guest's frames with the same counter."""
    options = ("--hold", "--streaming-video", "all", "--video-codecs", PEER_CODECS[codec],
               "--fps", str(PEER_FPS))
    with PEER_TOOLS["SpicePeer"](exe, record, options=options) as peer:
        proxy = PacedProxy(peer.port, LINK_RATE)
        client = SpiceClient(proxy.port)
        try:
            opening = client.wait_display_open()
            watch = Watch(client, AnimReference(width, height))  # type: ignore[arg-type]
            watch.lines += opening
            done = threading.Thread(target=peer.wait_done, daemon=True)
            peer.release()
            done.start()
            counted: list[tuple[float, int]] = []  # (time, bytes from the server so far)
            first: int | None = None
            while done.is_alive():
                time.sleep(0.05)
                counted.append((time.time(), proxy.down_bytes))
                watch.poll()
                shown = watch.shown(0.0, float("inf"))
                first = min(shown) if shown and first is None else first
                settled = first is not None and max(shown) >= first + PEER_SETTLE_FRAMES
                if settled and len(watch.samples) < DUMPS and len(counted) % 6 == 0:
                    with contextlib.suppress(StopIteration):
                        watch.sample_ssim(tmp / f"peer-{len(watch.samples)}.raw")
            time.sleep(0.5)
            watch.poll()
        finally:
            client.close()
            proxy.close()
    shown = watch.shown(0.0, float("inf"))
    if first is None:
        raise RuntimeError(f"the client showed nothing of {record.name}")
    times = sorted(t for value, t in shown.items() if value >= first + PEER_SETTLE_FRAMES)
    if len(times) < 2:
        raise RuntimeError(f"{record.name}: too few frames after the first "
                           f"{PEER_SETTLE_FRAMES} to measure")
    start, end = times[0], times[-1]
    stamps, totals = zip(*counted, strict=True)
    sent = float(np.interp(end, stamps, totals) - np.interp(start, stamps, totals))
    ssims = watch.ssims
    return {
        "fps": (len(times) - 1) / (end - start),
        "ssim": statistics.mean(ssims) if ssims else float("nan"),
        "kib_s": sent / 1024 / (end - start),
        "kib_frame": sent / 1024 / (len(times) - 1),
        "load": os.getloadavg()[0],
    }


RD_BITS_PER_PIXEL = (0.05, 0.1, 0.15)
RD_MJPEG_QUALITIES = (30, 50, 70, 85, 95)
"""Rate-distortion points: H.264 below, at and above the starting rate; MJPEG from
rate control's floor region past its ceiling (85), through spice-server's starting
quality (70), so that H.264's SSIM falls between two MJPEG points."""

RATIO_TARGET = 0.25
"""Issue 13's aim: H.264 at most a quarter of MJPEG's bytes at equal SSIM."""


def demo_pictures(demo: str, width: int, height: int, frames: int) -> list[np.ndarray]:
    """`frames` consecutive pictures of a demo as B,G,R,X rows, top-down: the anim guest's
    own, or the cube scene drawn with moderngl directly (what the 3D ring reproduces),
    stamped as the full-screen demo stamps it, at 60 frames a second."""
    if demo == "anim":
        from vgpu.guest.anim import AnimScene

        scene = AnimScene(width, height)
        pictures = []
        for _ in range(frames):
            scene.count += 1
            pictures.append(scene.frame())
        return pictures
    from vgpu.guest.cube import FRAME_PERIOD_S, CubeScene, draw_stamp
    from vgpu.render.context import create_context

    ctx = create_context()
    try:
        fbo = ctx.simple_framebuffer((width, height), components=4)
        fbo.use()
        scene = CubeScene(ctx, fbo)
        pictures = []
        for count in range(1, frames + 1):
            scene.draw(count * FRAME_PERIOD_S)
            draw_stamp(ctx, count)
            rgba = np.frombuffer(fbo.read(components=4), np.uint8).reshape(height, width, 4)
            pictures.append(np.ascontiguousarray(rgba[::-1, :, [2, 1, 0, 3]]))
        return pictures
    finally:
        ctx.release()


def equal_ssim_ratio(video: tuple[float, float], mjpeg: list[tuple[float, float]]) -> float:
    """A video codec's bytes over MJPEG's at the same SSIM: `video` is one (SSIM, bytes)
    point, `mjpeg` MJPEG's points at several qualities. MJPEG's bytes at that SSIM come
    from the straight line between the two points around it. Above MJPEG's best point the
    best is taken (MJPEG would need more bytes to match: the ratio can only come out too
    high); below its worst, NaN (its bytes there are not measured)."""
    ssim_v, bytes_v = video
    points = sorted(mjpeg)
    if not points or ssim_v < points[0][0]:
        return float("nan")
    if ssim_v >= points[-1][0]:
        return bytes_v / points[-1][1]
    above = max(1, bisect.bisect_left([ssim for ssim, _bytes in points], ssim_v))
    (s0, b0), (s1, b1) = points[above - 1], points[above]
    share = (ssim_v - s0) / (s1 - s0) if s1 > s0 else 0.0
    return bytes_v / (b0 + share * (b1 - b0))

FFMPEG_DECODERS = {"h264": "h264", "vp8": "vp8", "vp9": "vp9", "h265": "hevc", "mjpeg": "mjpeg"}


def encoder_costs(width: int, height: int, codec: str, frames: int = 30,
                  bits_per_pixel: float | None = None, quality: int | None = None,
                  demo: str = "anim") -> dict:
    """The server's share alone: ms per frame for the stream encoder (colour conversion
    included) on a demo's pictures, median, one encode at a time, at the starting rate
    (no rate control); and the SSIM of FFmpeg's decoding of each frame."""
    from vgpu.encode.video import (
        START_BITS_PER_PIXEL,
        CodecChoice,
        Rate,
        bitrate_for,
        create_encoder,
    )
    pictures = demo_pictures(demo, width, height, frames)
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
        "codec": codec,
        "encoder": encoder.library,
        "ms": statistics.median(times[1:]),
        "kib": statistics.mean(sizes[1:]) / 1024,
        "ssim": statistics.mean(scores),
    }


SESSION_FIGURES = {
    "published_fps": ("frames/s", HIGHER), "fps": ("frames/s", HIGHER),
    "kib_s": ("KiB/s", LOWER), "kib_frame": ("KiB", LOWER), "ssim": ("SSIM", HIGHER),
    "latency median": ("ms", LOWER), "latency p99": ("ms", LOWER),
    "skipped": ("frames", LOWER), "load": ("load", LOWER), "cpu all": ("% of a core", LOWER),
    **{f"cpu {stage}": ("ms", LOWER) for stage in STAGES}}
"""One client's session: what the guest published, what the client showed (its fps and
the SSIM of its pictures), the stream's bytes and the delay from present to display;
the CPU each stage spent per frame (stage_costs) and the machine's load average."""
ENCODER_FIGURES = {"ms": ("ms", LOWER), "kib": ("KiB", LOWER), "ssim": ("SSIM", HIGHER)}
"""The encoder alone, per frame: time, size, SSIM of FFmpeg's decoding."""
FIGURE_NAMES = {"ms": "ms per frame", "kib": "KiB per frame",
                "published_fps": "published fps", "fps": "shown fps", "kib_s": "KiB/s",
                "kib_frame": "KiB per frame", "ssim": "SSIM", "latency median": "delay median",
                "latency p99": "delay p99", "skipped": "frames skipped by rate control",
                "late_half_median_ms": "delay median, second half",
                "load": "load average (1 min)", "cpu all": "CPU, all stages",
                **{f"cpu {stage}": f"CPU ms per frame: {stage}" for stage in STAGES}}


def _named(figures: dict) -> dict[str, float]:
    return {FIGURE_NAMES[k]: float(v) for k, v in figures.items() if k in FIGURE_NAMES}


def _specs(keys: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    return {FIGURE_NAMES[k]: spec for k, spec in keys.items()}


def equal_ssim(b: Bench, demo: str, width: int, height: int, frames: int
               ) -> Iterator[Measurement]:
    """H.264 at RD_BITS_PER_PIXEL and MJPEG at RD_MJPEG_QUALITIES on the same pictures
    (KiB and SSIM per frame), then H.264's bytes over MJPEG's at equal SSIM."""
    h264 = {bpp: encoder_costs(width, height, "h264", frames, bits_per_pixel=bpp, demo=demo)
            for bpp in RD_BITS_PER_PIXEL}
    mjpeg = {q: encoder_costs(width, height, "mjpeg", frames, quality=q, demo=demo)
             for q in RD_MJPEG_QUALITIES}
    prefix = f"rate and quality, {demo} {width}x{height}: "
    points = {f"h264 {bpp} bits/pixel": got for bpp, got in h264.items()}
    points |= {f"mjpeg quality {q}": got for q, got in mjpeg.items()}
    for key in ("kib", "ssim"):
        unit, better = ENCODER_FIGURES[key]
        yield b.value(prefix + FIGURE_NAMES[key], unit,
                      {name: got[key] for name, got in points.items()}, better=better)
    curve = [(got["ssim"], got["kib"]) for got in mjpeg.values()]
    yield b.value(
        prefix + "H.264 bytes over MJPEG's at equal SSIM", "ratio",
        {f"h264 {bpp} bits/pixel": equal_ssim_ratio((got["ssim"], got["kib"]), curve)
         for bpp, got in h264.items()},
        note=f"the encoders alone; MJPEG's bytes interpolated between its qualities; "
             f"aim at most {RATIO_TARGET}")


def side_by_side(b: Bench, width: int, height: int, tmp: Path) -> Iterator[Measurement]:
    """The real spice-server replaying a recording of the anim demo with its own stream
    encoders (figures named as the anim sessions' are, to read beside them)."""
    built = PEER_TOOLS["build_peer"]()
    if isinstance(built, str):
        yield b.value(f"spice-server replaying anim {width}x{height}: not run", "runs",
                      {"spice-server": 0.0}, note=built)
        return
    record = tmp / "anim.spice"
    frames = record_anim(width, height, PEER_RECORD_S, record)
    try:
        yield from b.observe(
            {f"spice-server {codec}": lambda codec=codec: _named(
                run_peer(built, record, width, height, codec, tmp)) for codec in PEER_CODECS},
            _specs({k: SESSION_FIGURES[k] for k in ("fps", "kib_s", "kib_frame", "ssim",
                                                   "load")}),
            prefix=f"spice-server replaying anim {width}x{height}: ", rounds=1,
            note=f"{frames} recorded events of vgpu's anim demo, played at {PEER_FPS:g} "
                 f"frames/s; from the {PEER_SETTLE_FRAMES}th frame on; {PEER_CODECS}")
    finally:
        record.unlink()


def encoders_used(b: Bench, ran: dict[str, int]) -> Measurement:
    """Which library coded each codec's streams (the encoders alone and the sessions),
    and why a preferred one did not (NVENC where no NVIDIA GPU and driver are)."""
    from vgpu.encode.video import LIBRARY_CODECS, library_for

    passed_over = [reason for codec in LIBRARY_CODECS if any(
        key.startswith(f"{codec}: ") for key in ran) for reason in library_for(codec).passed_over]
    return b.value("stream encoders", "runs", {key: float(n) for key, n in ran.items()},
                   better=HIGHER, note="passed over: " + "; ".join(passed_over)
                   if passed_over else "every codec on its first choice")


@workload("stream", "video streams to spice-gtk from the cube (3D) and anim guests: shown fps, "
          "bytes, SSIM, delay, CPU per stage per codec; the encoders alone; spice-server's "
          "own streams side by side",
          references=("spice-server's MJPEG", "spice-server's own streams"))
def stream(b: Bench) -> Iterator[Measurement]:
    sizes = (QUICK_SIZE,) if b.quick else SIZES
    codecs = QUICK_CODECS if b.quick else CODECS
    seconds = QUICK_SECONDS if b.quick else SECONDS
    frames = 8 if b.quick else 30
    ran: dict[str, int] = {}  # "codec: library" -> sessions and encoder runs it coded

    def noted(got: dict) -> dict[str, float]:
        key = f"{got['codec']}: {got['encoder']}"
        ran[key] = ran.get(key, 0) + 1
        return _named(got)

    for width, height in sizes:
        yield from b.observe(
            {codec: lambda codec=codec, width=width, height=height: noted(encoder_costs(
                width, height, codec, frames)) for codec in codecs},
            _specs(ENCODER_FIGURES),
            prefix=f"encoder alone {width}x{height}: ", rounds=1,
            note="starting rate, RGB->YUV included; SSIM of FFmpeg's decoding")
    if not b.quick:
        width, height = sizes[0]
        for demo in DEMOS:
            yield from equal_ssim(b, demo, width, height, frames)
    figures = _specs(SESSION_FIGURES)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for demo in DEMOS[:1] if b.quick else DEMOS:
            for width, height in sizes:
                yield from b.observe(
                    {codec: lambda codec=codec, width=width, height=height, demo=demo: noted(
                        run_codec(width, height, codec, seconds, tmp,
                                  QUICK_SECONDS if b.quick else WARMUP_S, demo))
                     for codec in codecs},
                    figures, prefix=f"{demo} {width}x{height}: ", rounds=1,
                    note=f"{demo} guest -> device -> GL renderer -> vgpu SPICE -> spice-gtk "
                         "(GStreamer decoders); CPU per stage per frame it handled")
        yield encoders_used(b, ran)
        if b.quick:
            return
        width, height = sizes[0]
        yield from side_by_side(b, width, height, tmp)
        got = run_throttled(width, height, codecs[0], seconds, THROTTLE_KBPS, tmp)
        client_figures = _specs({k: SESSION_FIGURES.get(k, ("ms", LOWER)) for k in (
            "fps", "ssim", "latency median", "latency p99", "late_half_median_ms")})
        prefix = f"two clients {width}x{height} {codecs[0]}, one paced to {THROTTLE_KBPS:g} kB/s: "
        for figure, (unit, better) in client_figures.items():
            yield b.value(prefix + figure, unit,
                          {side: _named(got[key])[figure]
                           for side, key in (("direct client", "fast"), ("paced client", "slow"))},
                          better=better)
        yield b.value(prefix + "most bytes waiting before a stream frame", "KiB",
                      {f"connection {i}": v for i, v in enumerate(got["max_backlog_kib"])})
        yield b.value(prefix + "stream frames skipped", "frames",
                      {f"connection {i}": float(v) for i, v in enumerate(got["skipped"])})
