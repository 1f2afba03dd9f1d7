"""The 3D ring fuzzer at scale: tests/device/gl3d_fuzz.py's cases (random, mutated and cut
batches, lying lengths and counts, other contexts' names, bad references and ring items,
corrupt ring indexes), each on a freshly reset device and checked after, with escapes
(exceptions out of the device) and violations (a check that failed) counted, and the
process's resident memory at the start, after the first tenth and at the end.

Each run goes twice: on a backend that runs only FENCE (as the device's backends without
GL do: the device and the ring alone, at CASES) and through the GL renderer and its 3D
executor (at GL_CASES, each case far slower). With --fuzz: SOAK_CASES on the FENCE-only
backend (issue 14's soak), the GL run as without it. `fuzz_gl3d()` is also what
`vgpu bench soak --fuzz` runs. Any escape or violation fails the workload.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vgpu.bench import HIGHER, Bench, Measurement, workload
from vgpu.bench.core import FUZZ, SEED

ROOT = Path(__file__).resolve().parent.parent
CASES, QUICK_CASES, SOAK_CASES = 5_000, 300, 100_000
"""FENCE-only cases: a few hundred a second here; the soak's count is issue 14's."""
GL_CASES, QUICK_GL_CASES = 500, 30
"""Cases through the GL executor: each compiles and draws on llvmpipe."""
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


@workload("gl3d_fuzz", "the 3D ring fuzzer at scale: hostile batches on a reset device, "
          "escapes, violations and resident memory", options=(FUZZ, SEED))
def gl3d_fuzz(b: Bench) -> Iterator[Measurement]:
    failures: list[str] = []
    runs = (("FENCE-only backend", False, SOAK_CASES if b.option("--fuzz") else
             QUICK_CASES if b.quick else CASES),
            ("GL executor", True, QUICK_GL_CASES if b.quick else GL_CASES))
    for name, gl, cases in runs:
        b.progress(f"{name}, {cases} cases")
        start = time.perf_counter()
        count = fuzz_gl3d(cases, b.option("--seed"), gl)
        seconds = time.perf_counter() - start
        growth = count.rss[-1] - count.rss[1] if len(count.rss) > 2 else 0
        yield b.value(f"{name}: cases per second", "cases/s", {"vgpu": count.cases / seconds},
                      better=HIGHER,
                      note=f"{count.cases} cases, {count.batches} hostile batches and items")
        for figure, value in (("escapes", count.escapes), ("violations", count.violations)):
            yield b.value(f"{name}: {figure}", "cases", {"vgpu": value},
                          note="; ".join(count.first) or "target 0")
        yield b.value(f"{name}: resident memory growth after the first tenth", "MiB",
                      {"vgpu": growth / 2**20},
                      note=f"bound {RSS_GROWTH_LIMIT / 2**20:.0f} MiB")
        failures += [f"{name}: {line}" for line in count.first]
        if growth > RSS_GROWTH_LIMIT:
            failures.append(f"{name}: resident memory grew {growth / 2**20:.0f} MiB")
    if failures:
        raise AssertionError("; ".join(failures[:FAILURES_SHOWN]))
