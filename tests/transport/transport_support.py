"""A device served on a unix socket, with its own device thread and event loop thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgpu.device.backend import Gl3dGuest, run_fences
from vgpu.device.commands import Drawable, QRect
from vgpu.device.device import Device
from vgpu.device.transport import GuestListener


class CountingBackend:
    """A DisplayBackend that draws nothing and remembers what it was asked."""

    def __init__(self) -> None:
        self.drawables: list[Drawable] = []
        self.primaries: list[tuple[int, int]] = []
        self.gl_batches = 0
        self.lock = threading.Lock()

    def create_primary(self, width: int, height: int, stride: int, format: int,
                       initial: np.ndarray | None) -> None:
        with self.lock:
            self.primaries.append((width, height))

    def destroy_primary(self) -> None:
        pass

    def execute(self, cmd: Drawable) -> None:
        with self.lock:
            self.drawables.append(cmd)

    def surface_created(self, surface_id: int, width: int, height: int, stride: int,
                        format: int, initial: np.ndarray | None) -> None:
        pass

    def surface_destroyed(self, surface_id: int) -> None:
        pass

    def read_area(self, surface_id: int, area: QRect) -> list[tuple[QRect, np.ndarray]]:
        return [(area, np.zeros((area.height, area.width * 4), np.uint8))]

    def reset(self) -> None:
        pass

    def reset_3d(self) -> None:
        pass  # no 3D state: only fences run

    def execute_3d(self, batch: bytes, guest: Gl3dGuest) -> None:
        with self.lock:
            self.gl_batches += 1
        run_fences(batch, guest)


@dataclass
class Served:
    device: Device
    backend: CountingBackend
    listener: GuestListener
    path: Path
    loop: asyncio.AbstractEventLoop
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def on_loop(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def guest(self, script: str, *args: str) -> subprocess.Popen[str]:
        """A guest process running `script` with the socket path as argv[1]."""
        proc = subprocess.Popen([sys.executable, "-c", script, str(self.path), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc
