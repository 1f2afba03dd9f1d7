"""Fixtures for device tests: a recording DisplayBackend and a device with an inline guest."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from vgpu.device.device import Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.guest.driver import GuestDriver

SMALL_RAM = 8 * 1024 * 1024
SMALL_VRAM = 4 * 1024 * 1024


class RecordingBackend:
    """Remembers every call; read_area answers from a pattern so write-back is checkable."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.executed: list = []

    def create_primary(self, width, height, stride, format, initial) -> None:
        self.calls.append(("create_primary", width, height, stride, format,
                           None if initial is None else initial.copy()))

    def destroy_primary(self) -> None:
        self.calls.append(("destroy_primary",))

    def execute(self, cmd) -> None:
        self.executed.append(cmd)

    def surface_created(self, surface_id, width, height, stride, format, initial) -> None:
        self.calls.append(("surface_created", surface_id, width, height, stride, format,
                           None if initial is None else initial.copy()))

    def surface_destroyed(self, surface_id) -> None:
        self.calls.append(("surface_destroyed", surface_id))

    def read_area(self, surface_id, area) -> np.ndarray:
        self.calls.append(("read_area", surface_id, area))
        h, w = area.bottom - area.top, area.right - area.left
        ys = np.arange(area.top, area.bottom, dtype=np.uint32)[:, None]
        xs = np.arange(area.left, area.right, dtype=np.uint32)[None, :]
        px = (ys << 16 | xs).astype("<u4")
        return px.view(np.uint8).reshape(h, w * 4)

    def reset(self) -> None:
        self.calls.append(("reset",))


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def device(backend: RecordingBackend) -> Iterator[Device]:
    dev = Device(backend, ram_size=SMALL_RAM, vram_size=SMALL_VRAM, n_surfaces=64)
    yield dev
    dev.close()


@pytest.fixture
def guest(device: Device) -> Iterator[GuestDriver]:
    drv = GuestDriver(InProcessAttachment(device, inline=True), chunk_size=1024)
    yield drv
    drv.close()
