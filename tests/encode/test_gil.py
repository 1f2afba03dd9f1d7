"""Encoder calls release the GIL (cffi API mode wraps them in
Py_BEGIN/END_ALLOW_THREADS), so Python threads run while C encodes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from vgpu.encode import encode_lz_rgb32, encode_quic_rgb32
from vgpu.encode.samples import photo_frame

# Tries per encoder: a busy machine may not schedule this thread in time once.
TRIES = 3


def python_ran_during_call(encode: Callable[[np.ndarray], bytes], frame: np.ndarray) -> bool:
    """A worker thread starts an encode that takes `duration`; this thread then
    does a little Python work.  Had the call held the GIL, that work could only
    finish after the whole call; released, it finishes long before.  (The end
    of the call itself cannot be timed from Python: the GIL may pass to this
    thread before the worker's next line runs.)"""
    duration = min(timed(encode, frame) for _ in range(2))
    about_to_call = threading.Event()
    call_start: list[float] = []

    def worker() -> None:
        about_to_call.set()
        call_start.append(time.perf_counter())
        encode(frame)

    thread = threading.Thread(target=worker)
    thread.start()
    about_to_call.wait()
    total = 0
    for k in range(2000):
        total += k
    work_end = time.perf_counter()
    thread.join()
    return work_end < call_start[0] + duration / 2


def timed(encode: Callable[[np.ndarray], bytes], frame: np.ndarray) -> float:
    t0 = time.perf_counter()
    encode(frame)
    return time.perf_counter() - t0


@pytest.mark.parametrize("encode", [encode_quic_rgb32, encode_lz_rgb32],
                         ids=lambda f: f.__name__)
def test_python_runs_while_c_encodes(encode: Callable[[np.ndarray], bytes]) -> None:
    frame = np.tile(photo_frame(640, 360), (6, 6, 1))  # 3840x2160: a call of tens of ms
    assert any(python_ran_during_call(encode, frame) for _ in range(TRIES))
