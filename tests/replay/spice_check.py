"""Compiling and running spice_replay_check.c, the real spice-server reading a record.

bench/replay.py builds the checker with `compile_checker` too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
QXL_DEVICE = HERE.parent.parent / "bench" / "peer"
"""replay-qxl.c, the QXL device the checker shares with bench/peer's vgpu-spice-peer."""


def compile_checker(out_dir: Path) -> Path | str:
    """The checker built in `out_dir`, or why it cannot be (spice-server not installed)."""
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        return "no C compiler or pkg-config"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "spice-server", "glib-2.0"],
                           capture_output=True, text=True)
    if flags.returncode != 0:
        return "libspice-server-dev is not installed"
    exe = out_dir / "spice_replay_check"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(QXL_DEVICE),
                    "-o", str(exe), str(HERE / "spice_replay_check.c"),
                    str(QXL_DEVICE / "replay-qxl.c"), *flags.stdout.split()], check=True)
    return exe


def build_checker(out_dir: Path) -> Path:
    """The checker built in `out_dir`; skips the test when spice-server is not installed."""
    import pytest  # here, so that the benchmark can use this module without pytest

    exe = compile_checker(out_dir)
    if isinstance(exe, str):
        pytest.skip(exe)
    return exe


def run_check(exe: Path, record: bytes, tmp_path: Path, picture: Path | None = None
              ) -> tuple[int, dict[str, int], str]:
    """Runs the checker on `record`; with `picture`, spice-server's rendering of the final
    primary surface is written there (PPM)."""
    path = tmp_path / "record.spice"
    path.write_bytes(record)
    args = [str(exe), str(path)] + ([str(picture)] if picture is not None else [])
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    words = proc.stdout.split()
    stats = {k: int(v) for k, v in zip(words[::2], words[1::2], strict=True)}
    return proc.returncode, stats, proc.stderr


