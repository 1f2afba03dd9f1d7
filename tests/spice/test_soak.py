"""Load and churn against the desktop demo, pass/fail (the figures: `vgpu bench soak`).

The harness is bench/soak.py's, run here for a few seconds: 50 clients at once (real
spice-gtk clients among light slow readers, one stalled), 10 over WebSocket, and
clients churning through sessions while resident memory, descriptors, threads and
asyncio tasks must stay where they were.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from spice_testkit import needs_glib

ROOT = Path(__file__).resolve().parents[2]
SOAK = runpy.run_path(str(ROOT / "bench" / "soak.py"), run_name="soak")
SECONDS = 4.0  # per measurement: about 120 frames of the demo per client
RSS_SLACK = 64 << 20
"""Resident memory moves this much between two gauges with nothing left behind (seen:
294 to 330 MiB and back over rounds of churn; frames are 3 MiB each and the allocator
keeps freed pools): a coarse bound. The leak check that counts is `objects`."""

pytestmark = [pytest.mark.slow, pytest.mark.gl]


@pytest.fixture(scope="module")
def served():
    with SOAK["serve_demo"]() as served:
        yield served


def check_load(result) -> None:
    print(result)
    assert result.worst_ratio() >= 1 - SOAK["TOLERANCE"], result.rates
    assert result.stalled_backlog <= SOAK["WRITE_BUFFER_HIGH"] + SOAK["FRAME_BOUND"]
    assert sum(map(len, result.rates.values())) == result.clients - 1  # all but the stalled


@needs_glib
def test_fifty_clients_each_at_its_rate_alone_and_the_stalled_one_bounded(served):
    check_load(SOAK["run_load"](served, 50, 2, SECONDS))


def test_ten_websocket_clients_each_at_its_rate_alone(served):
    check_load(SOAK["run_load"](served, 10, 0, SECONDS, websocket=True))


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "websocket"])
def test_churn_leaves_nothing_behind(served, websocket):
    start, end, sessions = SOAK["run_churn"](served, 6, SECONDS, websocket)
    print(start, end, sessions)
    assert sessions >= 12  # they really came and went
    assert (end.fds, end.threads, end.tasks, end.connections, end.objects) == (
        start.fds, start.threads, start.tasks, 0, start.objects)
    assert end.rss <= start.rss + RSS_SLACK
