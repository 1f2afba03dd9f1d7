"""Fuzzing the 3D ring with hostile batches, items and ring indexes.

The cases and their checks are in gl3d_fuzz.py (shared with `vgpu bench gl3d_fuzz`).
Fast tier: FAST_CASES cases drawn from seeded random.Random (one seed per case, named
when it fails) and HYPOTHESIS_CASES drawn by hypothesis, so a failure shrinks; both on
the device with a backend that runs only FENCE. With the 3D executor built, a `gl` tier
runs GL_CASES through the GL renderer and its executor. Slow tier (`-m slow`):
SLOW_CASES, set by VGPU_GL3D_FUZZ_CASES (default 20,000; `vgpu bench soak --fuzz` runs
100,000 and more).
"""

from __future__ import annotations

import importlib.util
import os
import time

import pytest
from fuzz_draw import HypothesisDraw, RandomDraw
from gl3d_fuzz import Gl3dRig, run_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST_CASES = int(os.environ.get("VGPU_GL3D_FUZZ_FAST_CASES", "3000"))
HYPOTHESIS_CASES = int(os.environ.get("VGPU_GL3D_FUZZ_HYPOTHESIS_CASES", "200"))
SEED = int(os.environ.get("VGPU_GL3D_FUZZ_SEED", "0"))
GL_CASES = int(os.environ.get("VGPU_GL3D_FUZZ_GL_CASES", "500"))
SLOW_CASES = int(os.environ.get("VGPU_GL3D_FUZZ_CASES", "20000"))


def _seeded(rig: Gl3dRig, cases: int, seed: int = SEED) -> None:
    t0 = time.perf_counter()
    for i in range(seed, seed + cases):
        try:
            run_case(rig, RandomDraw(i))
        except BaseException as e:
            e.add_note(f"gl3d fuzz case seed {i} (VGPU_GL3D_FUZZ_SEED={i} "
                       "VGPU_GL3D_FUZZ_FAST_CASES=1 runs it alone)")
            raise
    print(f"gl3d fuzz: {cases} seeded cases, {rig.batches} hostile batches and items so "
          f"far, in {time.perf_counter() - t0:.1f} s")


def _fuzz(rig: Gl3dRig, cases: int) -> None:
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one_case(data: st.DataObject) -> None:
        run_case(rig, HypothesisDraw(data))

    before = rig.cases
    t0 = time.perf_counter()
    one_case()
    ran = rig.cases - before
    print(f"gl3d fuzz: {ran} cases, {rig.batches} hostile batches and items in "
          f"{time.perf_counter() - t0:.1f} s")
    assert ran >= cases  # the cases really ran, each through rig.check()


@pytest.fixture(scope="module")
def rig() -> Gl3dRig:
    return Gl3dRig()


@pytest.mark.timeout(120)
def test_gl3d_fuzz_fast(rig: Gl3dRig) -> None:
    before = rig.cases
    _seeded(rig, FAST_CASES)
    assert rig.cases - before == FAST_CASES  # the cases really ran, each through check()


@pytest.mark.timeout(120)
def test_gl3d_fuzz_shrinking(rig: Gl3dRig) -> None:
    _fuzz(rig, HYPOTHESIS_CASES)


@pytest.mark.gl
@pytest.mark.timeout(300)
@pytest.mark.skipif(importlib.util.find_spec("vgpu.render.gl3d") is None,
                    reason="the 3D executor (vgpu.render.gl3d) is not here yet")
def test_gl3d_fuzz_through_the_executor() -> None:
    rig = Gl3dRig(gl=True)
    _seeded(rig, GL_CASES)
    assert rig.cases == GL_CASES


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_gl3d_fuzz_slow(rig: Gl3dRig) -> None:
    _seeded(rig, SLOW_CASES, SEED + 1_000_000)
