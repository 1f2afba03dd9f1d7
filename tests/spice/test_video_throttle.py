"""Two spice-gtk clients on one H.264 stream: one direct, one through a proxy that paces
the server's bytes. The throttled one must get a bounded delay (no growing queue) and a
usable picture while the direct one keeps the frame rate."""

from __future__ import annotations

import queue
import statistics
import time

import numpy as np
import pytest
from spice_testkit import GlibClient, ServerThread, SyntheticSource, needs_glib, pattern

from vgpu.bench.core import bench_module
from vgpu.guest.anim import draw_stamp, read_stamp
from vgpu.spice.imaging import Compression
from vgpu.spice.server import ServerOptions

# imported once, as `vgpu bench` imports it (running the file again registers it twice)
BENCH = vars(bench_module("stream"))
PacedProxy, ssim = BENCH["PacedProxy"], BENCH["ssim"]

W, H = 320, 240
FPS = 30
SECONDS = 8.0
THROTTLE = 40_000
"""Bytes a second for the slow client: the stream at full rate needs about twice that
(320x240 at 30 frames/s, 0.1 bits a pixel, plus key frames), so it must give way."""
MAX_DELAY_MS = 600
"""What the slow client's median delay must stay under once settled (seen here: about
140 ms; rate control holds the queue to 150 ms of lag plus a frame in flight)."""
SSIM_FLOOR = 0.7
"""The median of the slow client's pictures in the settled second half against the frames
they show (seen here: 0.80 to 0.97). Single pictures right after a rate change, before the
encoder's rate settles, were seen as low as 0.56, so no one picture is held to it."""
MIN_SLOW_FRAMES = 8
"""Frames the slow client must show in the last 4 seconds (seen here: 23 to 25): a
link that carries half the stream keeps it moving, not a slide show."""


def frames(count: int) -> list[np.ndarray]:
    base = pattern(2 * W, H)
    out = []
    for i in range(count):
        offset = 4 * i % W
        frame = np.ascontiguousarray(base[:, offset : offset + W])
        draw_stamp(frame, i + 1)
        out.append(frame)
    return out


def lines(client: GlibClient) -> list[str]:
    got = []
    while True:
        try:
            got.append(client.lines.get_nowait())
        except queue.Empty:
            return got


def shown_times(all_lines: list[str]) -> dict[int, float]:
    first: dict[int, float] = {}
    for line in all_lines:
        parts = line.split()
        if parts[:1] == ["inv"] and int(parts[6]) not in first:
            first[int(parts[6])] = float(parts[1])
    return first


@needs_glib
@pytest.mark.slow
def test_a_throttled_client_has_a_bounded_delay_while_a_fast_one_keeps_up(tmp_path):
    pictures = frames(int(SECONDS * FPS))
    source = SyntheticSource()
    source.publish(pattern(W, H))
    options = ServerOptions(compression=Compression(streaming="all", video_codecs="pyav:h264"))
    server = ServerThread(source, options)
    proxy = PacedProxy(server.port, THROTTLE)
    fast = GlibClient("--port", str(server.port))
    slow = GlibClient("--port", str(proxy.port))
    try:
        fast.wait_for(lambda line: line.startswith("mark"))
        slow.wait_for(lambda line: line.startswith("mark"), timeout=30)
        lines(fast), lines(slow)
        published: dict[int, float] = {}
        scores: dict[str, list[float]] = {"fast": [], "slow": []}  # settled half only
        start = time.monotonic()
        for i, picture in enumerate(pictures):
            published[i + 1] = time.time()
            source.publish(picture, damage=((0, 0, W, H),))
            if i >= len(pictures) // 2 and i % FPS == FPS // 2:  # one a second, settled
                for name, client in (("fast", fast), ("slow", slow)):
                    shown = client.dump(tmp_path / f"{name}.raw", W, H)
                    value = read_stamp(shown)
                    if 1 <= value <= len(pictures):
                        scores[name].append(ssim(shown, pictures[value - 1]))
            time.sleep(max(0.0, start + (i + 1) / FPS - time.monotonic()))
        time.sleep(1.0)
        clients = (("fast", fast), ("slow", slow))
        seen = {name: shown_times(c.seen + lines(c)) for name, c in clients}
        stats = list(server.server.display_stats)
    finally:
        fast.close()
        slow.close()
        proxy.close()
        server.stop()
    settled = [v for v in published if v > len(pictures) // 2]  # the second half
    fast_shown = [v for v in settled if v in seen["fast"]]
    assert len(fast_shown) >= 0.6 * len(settled), f"fast client showed {len(fast_shown)}"
    delays = [(seen["slow"][v] - published[v]) * 1000 for v in settled if v in seen["slow"]]
    assert len(delays) >= MIN_SLOW_FRAMES, f"the slow client showed {len(delays)} frames"
    print(f"fast showed {len(fast_shown)}/{len(settled)}; slow showed {len(delays)}, delay "
          f"median {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms; SSIM {scores}")
    assert statistics.median(delays) < MAX_DELAY_MS and max(delays) < 2 * MAX_DELAY_MS, delays
    assert scores["slow"] and statistics.median(scores["slow"]) > SSIM_FLOOR, scores
    assert all(s.codec == "h264" for s in stats)
    assert max(s.stream_skipped for s in stats) > 0  # rate control did leave frames out
