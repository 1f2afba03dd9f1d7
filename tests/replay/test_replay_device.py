"""Replay through the guest driver into the device, `vgpu replay`, and recording sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from reference_backend import ReferenceBackend
from replay_scene import record_bytes, scene
from replay_strategies import commands, worker_messages
from spice_check import run_check

from vgpu.cli import main as vgpu_main
from vgpu.device.commands import Copy, Drawable, ImageDescriptor, QRect, SurfaceCmd, SurfaceImage
from vgpu.guest.driver import DeviceError
from vgpu.replay.format import CommandEvent, WorkerMessage
from vgpu.replay.player import replay
from vgpu.replay.reader import read_events
from vgpu.replay.recorder import Recorder
from vgpu.replay.writer import RecordWriter


def screenshot(data_dir: Path) -> np.ndarray:
    return np.asarray(Image.open(data_dir / "basic.png").convert("RGB"))


def differing(bgra: np.ndarray, rgb: np.ndarray) -> int:
    return int((bgra[:, :, 2::-1] != rgb).any(axis=2).sum())


def commands_of(path: Path) -> list:
    """The commands of a record, without what differs between sessions (surface memory)."""
    out = []
    for event in read_events(path):
        if isinstance(event, CommandEvent):
            cmd = event.command
            if isinstance(cmd, SurfaceCmd) and cmd.create is not None:
                cmd = dataclasses.replace(cmd, create=dataclasses.replace(cmd.create,
                                                                          data_offset=0))
            out.append((cmd, event.surface_data))
    return out


def write_scene(path: Path) -> int:
    """The all-commands scene as a record file; returns its number of commands."""
    path.write_bytes(record_bytes(scene()))
    return sum(not isinstance(item, WorkerMessage) for item, _ in scene())


def test_fixture_through_the_device_reproduces_the_screenshot(data_dir: Path) -> None:
    backend = ReferenceBackend()
    result = replay(data_dir / "basic.spice.xz", backend)
    assert result.device.guest_bug is None
    assert result.commands == result.device.stats["commands"] == 914
    assert result.device.stats["released"] == 914
    assert result.guest.io == {"NOTIFY_CMD": 452, "UPDATE_AREA": 61, "MONITORS_CONFIG": 2,
                               "RESET": 1, "DESTROY_ALL_SURFACES": 1, "CREATE_PRIMARY": 1}
    assert differing(backend.canvas.pixels(0), screenshot(data_dir)) == 0


@pytest.mark.gl
def test_fixture_through_the_gl_renderer_reproduces_the_screenshot(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "frame.png"
    assert vgpu_main(["replay", str(data_dir / "basic.spice.xz"), "--frame-out", str(out)]) == 0
    frame = np.asarray(Image.open(out).convert("RGB"))
    assert int((frame != screenshot(data_dir)).any(axis=2).sum()) == 0


def test_every_command_type_replays_through_the_device(tmp_path: Path) -> None:
    path = tmp_path / "scene.spice"
    n_commands = write_scene(path)
    result = replay(path, ReferenceBackend())
    assert result.device.guest_bug is None
    assert result.device.stats["commands"] == n_commands
    assert result.device.stats["cursor_commands"] == 3


def test_a_record_bigger_than_guest_memory_replays(tmp_path: Path) -> None:
    """300 copies of 64 KiB bitmaps: more than the device's command memory holds at once,
    so the replay must give released commands' memory back as it goes."""
    from replay_scene import NO_MASK, ROP_PUT, TOP_DOWN, bitmap, draw

    from vgpu.device.commands import Copy, QRect

    start = [(item, extra) for item, extra in scene()[:3]]
    image = bitmap(77, 8, 128, 128, 512, bytes(range(256)) * 256, flags=TOP_DOWN)
    path = tmp_path / "big.spice"
    with path.open("wb") as f:
        writer = RecordWriter(f)
        for item, extra in start:
            writer.worker_message(item, extra)  # type: ignore[arg-type]
        for i in range(300):
            writer.command(draw(QRect(i % 60, i % 120, i % 60 + 128, i % 120 + 128),
                                Copy(image, QRect(0, 0, 128, 128), ROP_PUT, 0, NO_MASK)))
    device_memory = 32 << 20
    assert path.stat().st_size > device_memory // 2  # the RAM bar's command pages
    result = replay(path, ReferenceBackend())
    assert result.device.stats["commands"] == 300
    assert result.guest.driver.outstanding == 0


def test_recording_a_replay_gives_back_the_same_commands(data_dir: Path, tmp_path: Path,
                                                         checker: Path) -> None:
    original = tmp_path / "scene.spice"
    n_commands = write_scene(original)
    recorded = tmp_path / "recorded.spice"
    replay(original, ReferenceBackend(), record=recorded)
    assert commands_of(recorded) == commands_of(original)
    # and the real spice-server takes what we recorded from our own device
    rc, stats, err = run_check(checker, recorded.read_bytes(), tmp_path)
    assert rc == 0, err
    assert stats["commands"] == n_commands and stats["warnings"] == 0


def test_recorder_compresses_xz(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "session.spice.xz"
    backend = ReferenceBackend()
    from vgpu.device.device import Device
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    device = Device(backend)  # type: ignore[arg-type]
    recorder = Recorder(path).attach(device)
    driver = GuestDriver(InProcessAttachment(device, inline=True))
    driver.create_primary(64, 48)
    driver.update_area(0, (0, 0, 48, 64))  # type: ignore[arg-type]
    recorder.close()
    messages = [e.message for e in read_events(path) if not isinstance(e, CommandEvent)]
    assert messages == [WorkerMessage.START, WorkerMessage.ADD_MEMSLOT,
                        WorkerMessage.ADD_MEMSLOT, WorkerMessage.CREATE_PRIMARY_SURFACE,
                        WorkerMessage.UPDATE]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(commands, worker_messages()), max_size=6))
def test_any_record_replays_or_fails_cleanly(items: list) -> None:
    """Random commands and messages after a valid start: the device draws them or reports a
    guest bug; nothing else comes out of the driver, the device or the reader."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.spice"
        path.write_bytes(record_bytes(scene()[:4] + items))
        with contextlib.suppress(DeviceError):
            replay(path, ReferenceBackend())


def test_recorder_leaves_out_what_the_format_cannot_hold(tmp_path: Path) -> None:
    from vgpu.device.commands import CompressedImage, Copy, ImageDescriptor, QRect
    from vgpu.device.device import Device
    from vgpu.device.inprocess import InProcessAttachment
    from vgpu.guest.driver import GuestDriver

    path = tmp_path / "session.spice"
    device = Device(ReferenceBackend())  # type: ignore[arg-type]
    recorder = Recorder(path).attach(device)
    driver = GuestDriver(InProcessAttachment(device, inline=True))
    driver.create_primary(64, 48)
    draw = next(item for item, _ in scene() if type(item).__name__ == "Drawable")
    lz = CompressedImage(ImageDescriptor(1, 101, 0, 4, 4), b"lz data")  # SPICE_IMAGE_TYPE_LZ_RGB
    op = Copy(lz, QRect(0, 0, 4, 4), 8, 0, draw.op.mask)  # type: ignore[attr-defined]
    driver.submit(dataclasses.replace(draw, bbox=QRect(0, 0, 4, 4), op=op))  # type: ignore[type-var]
    driver.submit(dataclasses.replace(draw, bbox=QRect(0, 0, 48, 64)))  # type: ignore[type-var]
    driver.update_area(0, QRect(0, 0, 48, 64))
    recorder.close()
    assert recorder.skipped == 1
    assert [type(c).__name__ for c, _ in commands_of(path)] == ["Drawable"]


def test_cli_parse_only_and_errors(data_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert vgpu_main(["replay", str(data_dir / "basic.spice.xz"), "--parse-only"]) == 0
    assert "1436 events" in capsys.readouterr().out
    bad = tmp_path / "bad.spice"
    bad.write_bytes(b"SPICE_REPLAY 1\nevent 0 1 2 5\nevent 1 0 2 6\nupdate\nrect area 1 2\n")
    assert vgpu_main(["replay", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "takes 4 numbers" in err
    assert vgpu_main(["replay", str(bad), "--parse-only"]) == 1


def test_a_device_guest_bug_fails_the_replay(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # a copy from surface 77, which the recording never created (a draw ON a missing
    # surface is dropped, as spice-server drops it; reading one is a guest bug)
    out = io.BytesIO()
    writer = RecordWriter(out)
    items = scene()
    for item, extra in items:
        if isinstance(item, WorkerMessage):
            writer.worker_message(item, extra)
        elif isinstance(item, Drawable) and isinstance(item.op, Copy):
            op = dataclasses.replace(item.op, src_bitmap=SurfaceImage(
                ImageDescriptor(1, 104, 0, 8, 8), 77), src_area=QRect(0, 0, 8, 8))
            writer.command(dataclasses.replace(item, op=op), extra)
            break
        else:
            writer.command(item, extra)
    path = tmp_path / "bug.spice"
    path.write_bytes(out.getvalue())
    assert vgpu_main(["replay", str(path)]) == 1
    assert "guest bug" in capsys.readouterr().err
