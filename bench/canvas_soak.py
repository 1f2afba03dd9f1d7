"""Random scenes against the real SPICE canvas: vgpu replay vs spice-server, pixel for pixel.

Each record holds 48 tiles of 1..3 random commands (tests/replay/canvas_strategies.py:
every draw type and variant guests send); bench/peer's vgpu-spice-peer plays it with
spice-server's own reader and worker and spicy-screenshot takes the picture, and vgpu's
guest driver, device and GL renderer play it too. Prints the scenes played, the tiles
and pixels that differ, and the time; records that differ are kept in --keep.

Usage: vgpu bench canvas_soak [--scenes N] [--seed S] [--keep DIR] [--kinds K,K...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "replay"), str(ROOT / "bench" / "peer")]
KEEP_AT_MOST = 20  # differing records kept for a look: the first ones say enough


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench canvas_soak")
    parser.add_argument("--scenes", type=int, default=10_000, help="random scenes to play")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=Path("canvas-soak-failures"),
                        help="where records that differ go")
    parser.add_argument("--kinds", default="",
                        help="comma-separated draw kinds to play (default: all)")
    args = parser.parse_args(argv)

    from canvas_diff import spice_server_picture, vgpu_picture
    from canvas_strategies import COLS, KINDS, ROWS, TILE, batches
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from replay_scene import record_bytes
    from spice_peer import build_peer

    kinds = tuple(k for k in args.kinds.split(",") if k) or tuple(KINDS)
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    peer = build_peer()
    if isinstance(peer, str):
        print(f"canvas_soak: {peer}", file=sys.stderr)
        return 2
    per_record = COLS * ROWS
    records = -(-args.scenes // per_record)
    stats = {"records": 0, "scenes": 0, "tiles_differing": 0, "pixels_differing": 0}
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="canvas-soak-"))

    @seed(args.seed)
    @settings(max_examples=records, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batches(kinds, max_commands=3))
    def play(items: list) -> None:
        record = tmp / "batch.spice"
        record.write_bytes(record_bytes(items))
        diff = (spice_server_picture(peer, record) != vgpu_picture(record)).any(axis=-1)
        tiles = diff.reshape(ROWS, TILE, COLS, TILE).any(axis=(1, 3))
        stats["records"] += 1
        stats["scenes"] += per_record
        stats["tiles_differing"] += int(tiles.sum())
        stats["pixels_differing"] += int(diff.sum())
        if diff.any() and len(list(args.keep.glob("*.spice"))) < KEEP_AT_MOST:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / f"record-{stats['records']:05d}.spice").write_bytes(record.read_bytes())
        if stats["records"] % 10 == 0:
            print(f"  {stats['scenes']} scenes, {stats['tiles_differing']} differ", flush=True)

    play()
    took = time.perf_counter() - start
    print(f"canvas soak: {stats['scenes']} random scenes in {stats['records']} records, "
          f"{took:.0f} s ({took / max(stats['records'], 1):.2f} s per record): "
          f"{stats['tiles_differing']} scenes differ, {stats['pixels_differing']} pixels "
          f"(spice-server 0.15.1 via vgpu-spice-peer + spicy-screenshot vs vgpu replay)")
    return 0 if stats["tiles_differing"] == 0 else 1
