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
        self._sub = None  # subscribe may notify before it returns (the latest frame)
        self._sub = machine.frames.subscribe(self._notify)
        self._notify()

    def _notify(self) -> None:
        if self._sub is None:
            return
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


def _solid(width: int, height: int, bgrx: tuple[int, int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(bgrx, np.uint8), (height, width, 4)).copy()


def _fill(bbox, color: int, surface_id: int = 0):
    from vgpu.device import commands as c
    from vgpu.device.abi import lib

    return c.Drawable(bbox=bbox, effect=lib.QXL_EFFECT_OPAQUE, surface_id=surface_id,
                      op=c.Fill(c.SolidBrush(color), lib.SPICE_ROPD_OP_PUT,
                                c.QMask(0, c.QPoint(0, 0), None)))


def _copy_from_surface(surface_id: int, src, dst_bbox):
    from vgpu.device import commands as c
    from vgpu.device.abi import lib

    z = c.QRect(0, 0, 0, 0)
    w, h = src.right - src.left, src.bottom - src.top
    image = c.SurfaceImage(c.ImageDescriptor(0, lib.SPICE_IMAGE_TYPE_SURFACE, 0, w, h),
                           surface_id)
    return c.Drawable(bbox=dst_bbox, effect=lib.QXL_EFFECT_OPAQUE,
                      surfaces_dest=(surface_id, -1, -1), surfaces_rects=(src, z, z),
                      op=c.Copy(image, src, lib.SPICE_ROPD_OP_PUT, 0,
                                c.QMask(0, c.QPoint(0, 0), None)))


def test_mode_changes_as_linux_makes_them_reach_spice_gtk(tmp_path):
    """What QEMU and Linux's qxl DRM driver do (seen in tests/render/data/qemu-*.spice.xz): a
    VGA-mode primary (720x400), then asynchronous destroy/create of a 64x64 primary and a
    1024x768 one (QXL_SURF_FLAG_KEEP_DATA, positive stride, memory kept), a full-screen blit
    sent while the 64x64 one is current (dropped), and an off-screen surface made before the
    mode changes used after them. A connected spice-gtk client shows each mode."""
    from vgpu.device import commands as c
    from vgpu.device.abi import lib
    from vgpu.machine import Machine

    step = [threading.Event() for _ in range(3)]
    failure: list[BaseException] = []

    def guest(machine, stop) -> None:
        from vgpu.device.inprocess import InProcessAttachment
        from vgpu.guest.driver import GuestDriver

        d = GuestDriver(InProcessAttachment(machine.device))
        try:
            d.create_primary(720, 400)
            d.submit(_fill(c.QRect(0, 0, 400, 720), 0x203040))
            d.create_surface(1, 32, 16)  # an off-screen surface that outlives the modes
            d.submit(_fill(c.QRect(0, 0, 16, 32), 0xC08010, surface_id=1))
            step[0].wait(30)
            d.destroy_primary(async_=True)  # each async IO waits for its IO_CMD interrupt
            d.create_primary(64, 64, stride=256, async_=True, flags=lib.QXL_SURF_FLAG_KEEP_DATA,
                             data=_solid(64, 64, (0x10, 0x70, 0x30, 0)).tobytes())
            d.submit(_fill(c.QRect(0, 0, 768, 1024), 0xFFFFFF))  # outside: dropped
            step[1].wait(30)
            d.destroy_primary(async_=True)
            d.create_primary(1024, 768, stride=4096, async_=True,
                             flags=lib.QXL_SURF_FLAG_KEEP_DATA,
                             data=_solid(1024, 768, (0x50, 0x20, 0x60, 0)).tobytes())
            d.submit(_copy_from_surface(1, c.QRect(0, 0, 16, 32), c.QRect(100, 200, 116, 232)))
            step[2].wait(30)
        except BaseException as e:  # reported by the test, not lost on this thread
            failure.append(e)
        finally:
            d.close()

    def expect(width: int, height: int, want: np.ndarray) -> None:
        line = client.wait_for(lambda line: line.startswith(f"primary {width} {height} "), 30)
        assert line.split()[1:3] == [str(width), str(height)]
        done, got = client.poll_dump(tmp_path / "primary.raw", width, height,
                                     lambda got: (got[..., :3] == want[..., :3]).all(), 20)
        assert done, f"{int((got[..., :3] != want[..., :3]).any(axis=2).sum())} pixels differ"

    with Machine(guest) as machine:
        server = ServerThread(machine)
        client = GlibClient("--port", str(server.port), "--timeout", "90")
        try:
            expect(720, 400, _solid(720, 400, (0x40, 0x30, 0x20, 0)))
            step[0].set()
            expect(64, 64, _solid(64, 64, (0x10, 0x70, 0x30, 0)))
            step[1].set()
            want = _solid(1024, 768, (0x50, 0x20, 0x60, 0))
            want[100:116, 200:232] = (0x10, 0x80, 0xC0, 0)
            expect(1024, 768, want)
            step[2].set()
        finally:
            for s in step:
                s.set()
            client.close()
            server.stop()
        assert not failure, failure
        assert machine.device.guest_bug is None and machine.device.stats["dropped"] == 1
