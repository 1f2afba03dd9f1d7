"""Fuzzing the device with hostile guest memory and IO writes.

The cases and their checks are in device_fuzz.py (shared with `vgpu bench soak
--fuzz`); here hypothesis draws their choices, so a failure shrinks.

Fast tier: FAST_CASES cases. Slow tier (`-m slow`): SLOW_CASES cases, set by
VGPU_FUZZ_CASES (default 30,000; `vgpu bench soak --fuzz` runs a million commands).
"""

from __future__ import annotations

import os
import time

import pytest
from device_fuzz import Rig, run_case
from fuzz_draw import HypothesisDraw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST_CASES = int(os.environ.get("VGPU_FUZZ_FAST_CASES", "300"))
SLOW_CASES = int(os.environ.get("VGPU_FUZZ_CASES", "30000"))

@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig()


def _fuzz(rig: Rig, cases: int) -> None:
    @settings(max_examples=cases, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one_case(data: st.DataObject) -> None:
        run_case(rig, HypothesisDraw(data))

    before = rig.cases
    t0 = time.perf_counter()
    one_case()
    ran = rig.cases - before
    print(f"fuzz: {ran} cases in {time.perf_counter() - t0:.1f} s")
    assert ran >= cases  # the cases really ran, each through rig.check()


@pytest.mark.timeout(120)
def test_fuzz_fast(rig: Rig) -> None:
    _fuzz(rig, FAST_CASES)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_fuzz_slow(rig: Rig) -> None:
    _fuzz(rig, SLOW_CASES)
