"""Building and running vgpu-spice-peer (the real spice-server serving a record file).

Used by the tests and by bench workloads; loads without pytest. `build_peer()` runs
`make -C bench/peer` (a no-op when the binary is newer than its source); `SpicePeer`
starts one peer process and stops it on exit.
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEER = ROOT / "build" / "peer" / "vgpu-spice-peer"
# Starting spice-server and binding its port takes well under a second; a record of a
# long session takes the worker seconds to play.
START_TIMEOUT_S = 10.0
PLAY_TIMEOUT_S = 120.0


def build_peer() -> Path | str:
    """The peer's path, built when needed, or why it cannot be built."""
    if shutil.which("make") is None or shutil.which("pkg-config") is None:
        return "no make or pkg-config"
    if subprocess.run(["pkg-config", "--exists", "spice-server", "glib-2.0"]).returncode != 0:
        return "libspice-server-dev is not installed"
    proc = subprocess.run(["make", "-s", "-C", str(HERE)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"building the peer failed: {proc.stderr.strip()}"
    return PEER


def screenshot(port: int, out: Path, timeout: float = 30.0) -> Path:
    """spicy-screenshot (spice-gtk) of what the server on `port` shows: a PPM at `out`."""
    subprocess.run(["spicy-screenshot", "-h", "127.0.0.1", "-p", str(port), "-o", str(out)],
                   check=True, capture_output=True, timeout=timeout)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SpicePeer:
    """One vgpu-spice-peer process serving `record` on `port` (a free one if None)."""

    def __init__(self, exe: Path, record: Path, port: int | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        # stderr to a file: spice-server's warnings must never fill a pipe nobody reads
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the object)
        self.proc = subprocess.Popen(
            [str(exe), "--port", str(self.port), *options, str(record)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self._line(START_TIMEOUT_S)
        if line != f"listening {self.port}":
            self.stop()
            raise RuntimeError(f"peer did not start: {line!r} {self.stderr()}")

    def _read(self) -> None:
        # a thread, not select() on the pipe: a line the text layer has already buffered
        # (both of the peer's lines can arrive in one read) would never wake select()
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("")

    def _line(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return ""

    def release(self) -> None:
        """Starts a replay held with --hold."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait_done(self, timeout: float = PLAY_TIMEOUT_S) -> int:
        """The number of commands played, once the peer says the recording is over."""
        line = self._line(timeout)
        if not line.startswith("done "):
            raise RuntimeError(f"peer did not finish: {line!r} {self.stderr()}")
        return int(line.split()[1])

    def stderr(self) -> str:
        """What the peer wrote to stderr so far."""
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SpicePeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
