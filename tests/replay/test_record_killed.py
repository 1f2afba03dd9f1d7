"""`vgpu serve --record FILE` loses nothing that reached the file: after SIGKILL the file
is read by `vgpu replay` and by the real spice-server (its replay API, through
spice_replay_check.c) up to its last complete event; after SIGTERM it is complete."""

from __future__ import annotations

import lzma
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spice_check import run_check

from vgpu.replay.format import CommandEvent
from vgpu.replay.reader import read_events
from vgpu.replay.recorder import FLUSH_INTERVAL_S

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
RUN_S = 3 * FLUSH_INTERVAL_S  # several flushes of the desktop demo's drawing
FIRST_COMMAND_TIMEOUT_S = 60.0
"""How long a loaded machine may take to start the demo and flush its first command."""

pytestmark = [pytest.mark.gl, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorded_commands(path: Path) -> int:
    """Commands in the complete events the recorder has flushed to `path` so far."""
    if not path.exists() or not path.stat().st_size:
        return 0
    return sum(isinstance(e, CommandEvent) for e in read_events(path))


def record_desktop(path: Path, sig: int) -> str:
    """Runs the desktop demo recording into `path` for RUN_S, then sends `sig`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vgpu.cli", "serve", "--demo", "desktop", "--port",
         str(free_port()), "--record", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("SPICE: ")  # the machine runs
    time.sleep(RUN_S)
    # on a loaded machine the demo may not have drawn a flushed command yet: wait for one
    deadline = time.monotonic() + FIRST_COMMAND_TIMEOUT_S
    while not recorded_commands(path) and time.monotonic() < deadline:
        time.sleep(FLUSH_INTERVAL_S)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 0), out
    return out


def replay_reads(path: Path) -> int:
    """Commands `vgpu replay` replays from `path` through the device and the renderer."""
    result = subprocess.run([sys.executable, "-m", "vgpu.cli", "replay", str(path)],
                            capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    commands = sum(isinstance(e, CommandEvent) for e in read_events(path))
    assert f"({commands} commands" in result.stdout, result.stdout
    return commands


def plain_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


@pytest.mark.parametrize("name", ["session.spice", "session.spice.xz"])
def test_recording_killed_with_sigkill_reads_to_its_last_event(checker, tmp_path, name):
    path = tmp_path / name
    record_desktop(path, signal.SIGKILL)
    commands = replay_reads(path)
    assert commands > 0
    rc, stats, err = run_check(checker, plain_bytes(path), tmp_path)
    assert rc == 0, err
    assert stats == {"commands": commands, "releases": commands, "warnings": 0,
                     "bytes_left": 0}


@pytest.mark.parametrize("name", ["session.spice", "session.spice.xz"])
def test_recording_ended_with_sigterm_is_complete(checker, tmp_path, name):
    path = tmp_path / name
    out = record_desktop(path, signal.SIGTERM)
    written = int(out.split("recorded ")[1].split()[0])
    assert sum(1 for _ in read_events(path)) == written
    commands = replay_reads(path)
    rc, stats, err = run_check(checker, plain_bytes(path), tmp_path)
    assert rc == 0, err
    assert stats["commands"] == commands and stats["bytes_left"] == 0
