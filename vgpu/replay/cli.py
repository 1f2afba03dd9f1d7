"""`vgpu replay FILE`: replays a spice-server record file through the device and the
renderer, prints what it did, and writes the final primary surface as a PNG
(`--frame-out`). `--parse-only` only reads and checks the file; `--record FILE`
records the replayed session again, as spice-server would.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from vgpu.guest.alloc import OutOfMemory
from vgpu.guest.driver import DeviceError
from vgpu.replay.format import CommandEvent, RecordFormatError
from vgpu.replay.player import ReplayGuest, replay
from vgpu.replay.reader import read_events

if TYPE_CHECKING:
    from vgpu.render import Renderer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a spice-server record file (plain or .xz)")
    parser.add_argument("--frame-out", type=Path, metavar="PNG",
                        help="write the final primary surface as a PNG")
    parser.add_argument("--parse-only", action="store_true",
                        help="only read and check the file (no device, no rendering)")
    parser.add_argument("--record", type=Path, metavar="FILE",
                        help="record the device's session again, as spice-server would")


def _summary(events: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(events.items(), key=lambda kv: -kv[1]))


def run(args: argparse.Namespace) -> int:
    try:
        if args.parse_only:
            start = time.perf_counter()
            counts: Counter[str] = Counter()
            for event in read_events(args.file):
                counts["commands" if isinstance(event, CommandEvent) else "worker messages"] += 1
            print(f"{args.file}: {sum(counts.values())} events ({_summary(counts)}) read in "
                  f"{time.perf_counter() - start:.3f} s")
            return 0
        from vgpu.render import Renderer

        renderer = Renderer()
        try:
            result = replay(args.file, renderer, record=args.record)
            if args.frame_out is not None:
                _write_png(renderer, result.guest, args.frame_out)
        finally:
            renderer.close()
    except (RecordFormatError, DeviceError, OSError) as e:
        print(f"vgpu replay: {e}", file=sys.stderr)
        return 1
    except OutOfMemory as e:
        print(f"vgpu replay: the recording needs more guest memory than the device has ({e})",
              file=sys.stderr)
        return 1
    total = sum(result.events.values())
    dev = result.device
    print(f"{args.file}: {total} events replayed in {result.seconds:.3f} s "
          f"({result.commands} commands, {result.commands / result.seconds:.0f}/s)")
    print(f"  events: {_summary(result.events)}")
    print(f"  guest IO: {_summary(result.guest.io)}")
    if result.guest.skipped:
        print(f"  no guest IO for: {_summary(result.guest.skipped)}")
    print(f"  device: {dev.stats['commands']} commands taken, {dev.stats['released']} released, "
          f"{dev.stats['io']} port writes besides doorbells")
    if args.frame_out is not None:
        print(f"  frame: {args.frame_out}")
    return 0


def _write_png(renderer: Renderer, guest: ReplayGuest, path: Path) -> None:
    from PIL import Image as PILImage

    if guest.primary is None:
        raise OSError("the recording leaves no primary surface to write")
    bgra = renderer.read_pixels(0)
    PILImage.fromarray(bgra[:, :, 2::-1].copy(), "RGB").save(path)
