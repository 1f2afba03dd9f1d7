"""The 3D ring fuzzer at scale: tests/device/gl3d_fuzz.py's cases (random, mutated and cut
batches, lying lengths and counts, other contexts' names, bad references and ring items,
corrupt ring indexes), each on a freshly reset device and checked after, with escapes
(exceptions out of the device) and violations (a check that failed) counted, and the
process's resident memory at the start, after the first tenth and at the end.

    vgpu bench gl3d_fuzz [--fuzz 100000] [--seed 0] [--gl]

--gl runs the cases through the GL renderer and its 3D executor (when it is built);
without it the backend runs only FENCE, as the device's backends without GL do.
`fuzz_gl3d()` is the entry point for `vgpu bench soak --fuzz`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAILURES_SHOWN = 5
RSS_GROWTH_LIMIT = 64 * 1024 * 1024
"""Resident memory the run may gain after its first tenth: a leak per case shows far
beyond this over 100,000 cases; allocator noise and caches stay well under it."""


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Gl3dFuzzCount:
    cases: int = 0
    batches: int = 0  # hostile batches and ring items put on the 3D ring
    escapes: int = 0  # an exception out of the device
    violations: int = 0  # a check of the case failed
    rss: list[int] = field(default_factory=list)  # start, after a tenth, end
    first: list[str] = field(default_factory=list)


def fuzz_gl3d(cases: int, seed: int = 0, gl: bool = False) -> Gl3dFuzzCount:
    """`cases` cases of gl3d_fuzz, case i drawn from random.Random(seed + i)."""
    sys.path.insert(0, str(ROOT / "tests" / "device"))
    import gl3d_fuzz as gf
    from fuzz_draw import RandomDraw

    # every hostile case is logged as a guest bug or a lost context: millions of lines
    logging.disable(logging.WARNING)
    count = Gl3dFuzzCount(rss=[rss_bytes()])
    rig = gf.Gl3dRig(gl=gl)
    for i in range(seed, seed + cases):
        try:
            gf.run_case(rig, RandomDraw(i))
        except Exception as exc:
            if isinstance(exc, AssertionError):
                count.violations += 1
            else:
                count.escapes += 1
            if len(count.first) < FAILURES_SHOWN:
                count.first.append(f"seed {i}: {type(exc).__name__}: {exc}"[:300])
        count.cases += 1
        if count.cases == max(1, cases // 10):
            count.rss.append(rss_bytes())
    count.batches = rig.batches
    count.rss.append(rss_bytes())
    return count


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench gl3d_fuzz")
    parser.add_argument("--fuzz", type=int, default=100_000, metavar="CASES")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gl", action="store_true",
                        help="through the GL renderer and its 3D executor")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    count = fuzz_gl3d(args.fuzz, args.seed, args.gl)
    seconds = time.perf_counter() - start
    mib = [f"{r / 2**20:.0f}" for r in count.rss]
    growth = count.rss[-1] - count.rss[1] if len(count.rss) > 2 else 0
    print(f"fuzz gl3d{' (GL executor)' if args.gl else ''}: {count.cases} cases, "
          f"{count.batches} hostile batches and items, {seconds:.0f} s "
          f"({count.cases / seconds:.0f} cases/s): {count.escapes} escapes, "
          f"{count.violations} violations; resident MiB at start, after a tenth, at end: "
          f"{' / '.join(mib)}", flush=True)
    for line in count.first:
        print(f"  {line}")
    bounded = growth <= RSS_GROWTH_LIMIT
    if not bounded:
        print(f"  resident memory grew {growth / 2**20:.0f} MiB after the first tenth")
    return int(bool(count.escapes or count.violations) or not bounded)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
