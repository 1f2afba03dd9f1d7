"""What every workload shares: the recordings and sample frames in bench/data, the
null backend, and the stock SPICE client (spice-gtk's library) run as a process.

Workloads read their inputs from here so that all of them measure the same things."""

from __future__ import annotations

import queue
import subprocess
import threading
from pathlib import Path

import numpy as np

from vgpu.bench.core import BENCH_DIR

DATA = BENCH_DIR / "data"
RECORDINGS = ("basic", "texts", "scroll", "perf", "render", "windows", "images")
"""The Xspice recordings in bench/data, smallest session first."""
QUICK_RECORDINGS = ("basic", "images")
"""With --quick: the reference desktop and the photographs (the two kinds of content
that decide which codec wins)."""

CLIENT = BENCH_DIR.parent / "tests" / "clients" / "spice_glib_client.py"
"""The scriptable stock client the test suite uses too (spice-gtk's SpiceClientGLib)."""
SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's Python, which has the SpiceClientGLib gi bindings (the venv does not)."""
CLIENT_TIMEOUT_S = 300
"""The client exits by itself after this long, so a stuck benchmark leaves no process."""


def recording(name: str) -> Path:
    return DATA / f"{name}.spice.xz"


def recordings(quick: bool) -> list[Path]:
    return [recording(n) for n in (QUICK_RECORDINGS if quick else RECORDINGS)]


def screenshot(name: str) -> np.ndarray:
    """The stock client's picture at the end of recording `name`, as (h, w, 3) RGB."""
    from PIL import Image

    return np.asarray(Image.open(DATA / f"{name}.png").convert("RGB"))


def sample_frames(width: int = 1920, height: int = 1080) -> dict[str, np.ndarray]:
    """The encoders' inputs: a desktop (with basic.png pasted in) and a photograph."""
    from vgpu.encode.samples import desktop_frame, photo_frame

    return {f"desktop {width}x{height}": desktop_frame(width, height,
                                                       screenshot=screenshot("basic")),
            f"photo {width}x{height}": photo_frame(width, height)}


class NullBackend:
    """A device backend that draws nothing: isolates parsing, the rings and the transport
    from rendering. read_area answers with black pixels of the asked size."""

    def create_primary(self, *args: object) -> None: ...
    def destroy_primary(self) -> None: ...
    def execute(self, cmd: object) -> None: ...
    def surface_created(self, *args: object) -> None: ...
    def surface_destroyed(self, surface_id: int) -> None: ...
    def reset(self) -> None: ...
    def reset_3d(self) -> None: ...

    def execute_3d(self, batch: bytes, guest: object) -> None:
        from vgpu.device.backend import run_fences

        run_fences(batch, guest)  # type: ignore[arg-type]

    def read_area(self, surface_id: int, area: object) -> list[tuple[object, np.ndarray]]:
        return [(area, np.zeros((area.height, area.width * 4),  # type: ignore[attr-defined]
                                np.uint8))]


class SpiceClient:
    """spice-gtk's library in a process of its own; its event lines arrive on a queue
    (see the client script's docstring for the lines and the commands)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(CLIENT), "--host", host, "--port", str(port),
             "--timeout", str(CLIENT_TIMEOUT_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(5)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> SpiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
