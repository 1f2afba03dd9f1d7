"""The real machine (renderer + built-in guests) served to spice-gtk: the client's primary
surface equals a frame the renderer published, exactly."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from spice_testkit import GlibClient, ServerThread, needs_glib

pytestmark = [pytest.mark.gl, needs_glib]
RECORDING = Path(__file__).resolve().parents[1] / "data" / "basic.spice.xz"


class Recent:
    """The last few frames the machine published, by pixels."""

    def __init__(self, machine, keep: int = 30) -> None:
        self._lock = threading.Lock()
        self.frames: list[np.ndarray] = []
        self._keep = keep
        self._sub = machine.frames.subscribe(self._notify)

    def _notify(self) -> None:
        taken = self._sub.take()
        if taken is not None:
            with self._lock:
                self.frames = [*self.frames[-self._keep + 1 :], taken[0].pixels]

    def matches(self, got: np.ndarray) -> bool:
        with self._lock:
            frames = list(self.frames)
        return any(f.shape == got.shape and (f[..., :3] == got[..., :3]).all() for f in frames)


def served(machine, tmp_path: Path, timeout: float = 30) -> None:
    recent = Recent(machine)
    server = ServerThread(machine)
    client = GlibClient("--port", str(server.port))
    try:
        line = client.wait_for(lambda line: line.startswith("primary"), timeout)
        width, height = int(line.split()[1]), int(line.split()[2])
        client.wait_for(lambda line: line.startswith("mark"), timeout)
        done, _ = client.poll_dump(
            tmp_path / "primary.raw", width, height, recent.matches, timeout, interval=0.1
        )
        assert done, "the client never showed a published frame"
    finally:
        client.close()
        server.stop()


def test_desktop_demo_as_spice_gtk_sees_it(tmp_path):
    from vgpu.machine import Machine

    with Machine.create(demo="desktop") as machine:
        served(machine, tmp_path)


def test_replayed_recording_as_spice_gtk_sees_it(tmp_path):
    from vgpu.machine import Machine

    with Machine.create(demo=f"replay:{RECORDING}") as machine:
        served(machine, tmp_path)
