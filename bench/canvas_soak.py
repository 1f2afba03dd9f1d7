"""Random scenes against the real SPICE canvas: vgpu replay vs spice-server, pixel for pixel.

Each record holds 48 tiles of 1..3 random commands (tests/replay/canvas_strategies.py:
every draw type and variant guests send); bench/peer's vgpu-spice-peer plays it with
spice-server's own reader and worker and spicy-screenshot takes the picture, and vgpu's
guest driver, device and GL renderer play it too. Measured: the scenes and pixels that
differ (0 is the target) and the time per record; the first records that differ are kept
in a temporary folder named in the failure. SCENES in a full run, SOAK_SCENES (issue 12's
soak) with --fuzz; any differing pixel fails the workload.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vgpu.bench import Bench, Measurement, workload
from vgpu.bench.core import BENCH_DIR, FUZZ, SEED, Option

ROOT = BENCH_DIR.parent
KEEP_AT_MOST = 20  # differing records kept for a look: the first ones say enough
KINDS_OPTION = Option("--kinds", "canvas_soak: comma-separated draw kinds to play (default: all)",
                      str, "")
SCENES, QUICK_SCENES, SOAK_SCENES = 480, 48, 10_000
"""Random scenes (48 per record); the soak's count is issue 12's."""


@workload("canvas_soak", "random scenes through the real spice-server and vgpu: pixels that "
          "differ", references=("spice-server",), options=(FUZZ, SEED, KINDS_OPTION))
def canvas_soak(b: Bench) -> Iterator[Measurement]:
    for path in (ROOT / "tests" / "replay", BENCH_DIR / "peer"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from canvas_diff import spice_server_picture, vgpu_picture
    from canvas_strategies import COLS, KINDS, ROWS, TILE, batches
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from replay_scene import record_bytes
    from spice_peer import build_peer

    peer = build_peer()
    if isinstance(peer, str):
        raise RuntimeError(f"canvas_soak needs spice-server: {peer}")
    kinds = tuple(k for k in b.option("--kinds").split(",") if k) or tuple(KINDS)
    if unknown := set(kinds) - set(KINDS):
        raise ValueError(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    scenes = SOAK_SCENES if b.option("--fuzz") else QUICK_SCENES if b.quick else SCENES
    per_record = COLS * ROWS
    records = -(-scenes // per_record)
    stats = {"records": 0, "scenes": 0, "tiles_differing": 0, "pixels_differing": 0}
    seconds: list[float] = []
    tmp = Path(tempfile.mkdtemp(prefix="canvas-soak-"))
    keep = tmp / "differing"

    @seed(b.option("--seed"))
    @settings(max_examples=records, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batches(kinds, max_commands=3))
    def play(items: list) -> None:
        start = time.perf_counter()
        record = tmp / "batch.spice"
        record.write_bytes(record_bytes(items))
        diff = (spice_server_picture(peer, record) != vgpu_picture(record)).any(axis=-1)
        tiles = diff.reshape(ROWS, TILE, COLS, TILE).any(axis=(1, 3))
        stats["records"] += 1
        stats["scenes"] += per_record
        stats["tiles_differing"] += int(tiles.sum())
        stats["pixels_differing"] += int(diff.sum())
        if diff.any() and len(list(keep.glob("*.spice"))) < KEEP_AT_MOST:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"record-{stats['records']:05d}.spice").write_bytes(record.read_bytes())
        seconds.append(time.perf_counter() - start)
        b.progress(f"{stats['scenes']}/{records * per_record} scenes, "
                   f"{stats['tiles_differing']} differ")

    play()
    note = (f"{stats['scenes']} random scenes in {stats['records']} records; spice-server via "
            "vgpu-spice-peer + spicy-screenshot against vgpu's replay")
    yield b.value("scenes that differ", "scenes", {"vgpu vs spice-server":
                                                   stats["tiles_differing"]}, note=note)
    yield b.value("pixels that differ", "pixels", {"vgpu vs spice-server":
                                                   stats["pixels_differing"]}, note=note)
    yield b.value("time per record", "s", {"both servers and the compare": seconds},
                  note=f"{per_record} scenes per record")
    if stats["tiles_differing"]:
        raise AssertionError(f"{stats['tiles_differing']} of {stats['scenes']} scenes differ "
                             f"from spice-server's; records kept in {keep}")
