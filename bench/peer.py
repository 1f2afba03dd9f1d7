"""vgpu beside the real spice-server: the same recording, the same stock client.

For each recording in bench/data and each image compression, both servers play the
recording as a guest would have sent it: vgpu (`vgpu serve --demo replay:FILE`) and
spice-server itself (build/peer/vgpu-spice-peer, `make -C bench/peer`: libspice-server
fed by its own record reader). Both run as processes, and the same client (spice-gtk's
library) connects through a counting proxy in this process, twice per server:

- live: the server holds the replay until the display channel connects
  (`--wait-client`), so the client watches the whole session;
- late: once the live session has settled and the client has left, a second client
  joins and gets the final screen from scratch.

Every compression setting is played late; live only LIVE_COMPRESSIONS (both servers'
default): each live setting cost a full run about 40 s over the seven recordings (670 s
with all seven live, 513 s with three), and the late joiner shows every setting's bytes
and picture. Where a
setting is late only, the servers play the recording with no client and the late
joiner connects once they say they are done.

Measured per session: bytes from the server on the display channel and on all channels
(spice-server's main channel adds about 256 KB on every connection, seen here with the
proxy: its bandwidth test, pings with a large payload),
the server's CPU time (user + system, from the client's connection to the settled
picture), frames the client showed per second (live), the time from connecting to the
settled picture, and the picture itself: whether both servers' are equal, and how many
pixels differ from the stock client's screenshot of the original Xspice session.
"""

from __future__ import annotations

import itertools
import lzma
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgpu.bench import HIGHER, LOWER, Bench, Measurement, workload
from vgpu.bench.common import (
    DISPLAY_CHANNEL,
    QUICK_RECORDINGS,
    CountingProxy,
    SpiceClient,
    recordings,
    screenshot,
)
from vgpu.bench.core import BENCH_DIR, Option
from vgpu.spice.imaging import IMAGE_COMPRESSIONS
from vgpu.spice.streams import STREAM_TIMEOUT_S

ROOT = BENCH_DIR.parent
PEER_SOURCE = BENCH_DIR / "peer"
PEER_TOOLS = runpy.run_path(str(PEER_SOURCE / "spice_peer.py"))
"""bench/peer's own helpers: build_peer() (make -C bench/peer) and free_port()."""
free_port = PEER_TOOLS["free_port"]

LIVE_COMPRESSIONS = ("auto_glz",)
"""Settings whose live sessions are played in a full run (every one is played late)."""
RECORDINGS_OPTION = Option("--recordings", "peer: only these recordings (comma-separated "
                           "names from bench/data)", str, "")
COMPRESSIONS_OPTION = Option("--compressions", "peer: only these image compressions "
                             "(comma-separated)", str, "")
LIVE_OPTION = Option("--live", "peer: play every chosen setting live too, not only "
                     f"{', '.join(LIVE_COMPRESSIONS)}")
LOSSLESS = ("auto_glz", "auto_lz", "glz", "lz", "lz4", "off")
"""Settings whose pictures must equal, pixel for pixel (QUIC on photographs is lossy
in spice-server's choice of it; JPEG is never enabled here)."""

START_TIMEOUT_S = 60.0
"""A server prints its ready line within this (vgpu: Python start-up and a GL context)."""
REPLAY_TIMEOUT_S = 180.0
"""The longest recording (perf, 32737 drawables) plays well within this on llvmpipe."""
SETTLE_LIVE_S = STREAM_TIMEOUT_S + 0.5
"""A live picture has settled when the server has played the whole recording and the
client saw no change for this long. A server that streamed a region sends it losslessly
once the stream has been idle for its timeout (vgpu: STREAM_TIMEOUT_S, 1 s, seen here as
a last update a second after everything else), so the window is longer than that."""
SETTLE_LATE_S = 0.5
"""A late joiner gets the finished screen at once, without streams; both servers send
it within milliseconds on loopback, so half a second without a change is the end."""
FRAME_GAP_S = 0.004
"""display-invalidates closer than this belong to one frame the client showed (spice-gtk
signals one per drawn rectangle, all within one main-loop turn)."""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class ServerProcess:
    """One server playing one recording; `lines` are its stdout lines."""

    argv: list[str]
    ready: Callable[[str], bool]
    done: Callable[[str], bool]
    proc: subprocess.Popen = field(init=False)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        self._seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.strip())
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, test: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._seen:
            while not any(test(line) for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self._seen.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def vgpu_server(recording: Path, port: int, compression: str, wait_client: bool
                ) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-m", "vgpu.cli", "serve", "--demo", f"replay:{recording}",
         *(["--wait-client"] if wait_client else []), "--port", str(port),
         "--image-compression", compression],
        ready=lambda line: line.startswith("SPICE: spice://"),
        done=lambda line: line == "replay done")


def peer_server(recording: Path, port: int, compression: str, wait_client: bool
                ) -> ServerProcess:
    return ServerProcess(
        [str(PEER_TOOLS["PEER"]), "--port", str(port), *(["--wait-client"] if wait_client
                                                         else []),
         "--image-compression", compression, str(recording)],
        ready=lambda line: line.startswith("listening"),
        done=lambda line: line.startswith("done"))


SERVERS = {"vgpu": vgpu_server, "spice-server": peer_server}


def watch(server: ServerProcess, dump: Path, live: bool) -> dict[str, float]:
    """One client session through the counting proxy, until the picture settles."""
    proxy = CountingProxy(int(server.argv[server.argv.index("--port") + 1]))
    cpu0 = cpu_seconds(server.proc.pid)
    start = time.time()
    try:
        with SpiceClient(proxy.port) as client:
            invalidates: list[float] = []
            deadline = time.monotonic() + REPLAY_TIMEOUT_S
            primary = False
            while time.monotonic() < deadline:
                for line in client.drain():
                    primary |= line.startswith("primary")
                    if line.startswith("inv "):
                        invalidates.append(float(line.split()[1]))
                played = not live or any(server.done(x) for x in server.lines)
                last = invalidates[-1] if invalidates else start
                settle = SETTLE_LIVE_S if live else SETTLE_LATE_S
                # a late joiner's primary comes before its picture: wait for a draw
                if invalidates and primary and played and time.time() - last >= settle:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{server.argv[0]}: no settled picture in "
                                   f"{REPLAY_TIMEOUT_S:.0f} s")
            cpu = cpu_seconds(server.proc.pid) - cpu0
            client.send(f"dump {dump}")
            while not dump.exists() or not any(
                    line.startswith("dumped") for line in client.drain()):
                time.sleep(0.05)
    finally:
        proxy.close()
    frames = 1 + sum(b - a >= FRAME_GAP_S for a, b in itertools.pairwise(invalidates))
    span = invalidates[-1] - invalidates[0] if len(invalidates) > 1 else float("nan")
    return {"display KB": proxy.received.get(DISPLAY_CHANNEL, 0) / 1e3,
            "all channels KB": sum(proxy.received.values()) / 1e3,
            "server CPU s": cpu,
            "frames/s shown": frames / span if live and span > 0 else float("nan"),
            "s to settled picture": (invalidates[-1] if invalidates else time.time()) - start}


FIGURES = {"display KB": ("KB", LOWER), "all channels KB": ("KB", LOWER),
           "server CPU s": ("s", LOWER), "frames/s shown": ("frames/s", HIGHER),
           "s to settled picture": ("s", LOWER)}


def session(name: str, recording: Path, compression: str, tmp: Path,
            pictures: dict[tuple[str, str], np.ndarray], modes: tuple[str, ...]
            ) -> dict[str, dict[str, float]]:
    """Live then late (or late alone), on one server process; pictures[(name, mode)] gets
    what the client showed (h, w, 3 RGB)."""
    port = free_port()
    live = "live" in modes
    server = SERVERS[name](recording, port, compression, live)
    out: dict[str, dict[str, float]] = {}
    try:
        if not server.wait_for(server.ready, START_TIMEOUT_S):
            raise RuntimeError(f"{name} did not start: {server.lines[-3:]}")
        if not live and not server.wait_for(server.done, REPLAY_TIMEOUT_S):
            raise RuntimeError(f"{name} did not play {recording.name}: {server.lines[-3:]}")
        for mode in modes:
            dump = tmp / f"{name}-{mode}.bgrx"
            dump.unlink(missing_ok=True)
            out[mode] = watch(server, dump, live=mode == "live")
            shape = screenshot(recording.name.removesuffix(".spice")).shape
            raw = np.fromfile(dump, np.uint8)
            pictures[(name, mode)] = (raw.reshape(shape[0], shape[1], 4)[..., 2::-1]
                                      if raw.size == shape[0] * shape[1] * 4 else
                                      np.zeros(shape, np.uint8))
    finally:
        server.close()
    return out


@workload("peer", "vgpu and the real spice-server serving the same recordings to spice-gtk",
          references=("spice-server",),
          options=(RECORDINGS_OPTION, COMPRESSIONS_OPTION, LIVE_OPTION))
def peer(b: Bench) -> Iterator[Measurement]:
    built = PEER_TOOLS["build_peer"]()
    missing = built if isinstance(built, str) else None
    servers = ["vgpu"] if missing else ["vgpu", "spice-server"]
    names: tuple[str, ...] | None = QUICK_RECORDINGS[:1] if b.quick else None
    compressions = ("auto_glz",) if b.quick else IMAGE_COMPRESSIONS
    chosen = b.option("--recordings")
    if chosen:
        names = tuple(chosen.split(","))
    chosen = b.option("--compressions")
    if chosen:
        compressions = tuple(chosen.split(","))
        unknown = set(compressions) - set(IMAGE_COMPRESSIONS)
        if unknown:
            raise ValueError(f"--compressions: {sorted(unknown)} not in {IMAGE_COMPRESSIONS}")
    all_live = b.option("--live")
    note = f"spice-server side missing: {missing}" if missing else ""
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for packed in recordings(b.quick and names is None):
            rec = packed.name.removesuffix(".spice.xz")
            if names is not None and rec not in names:
                continue
            path = tmp / f"{rec}.spice"  # the peer reads plain files; both get the same one
            path.write_bytes(lzma.decompress(packed.read_bytes()))
            reference = screenshot(rec)
            for compression in compressions:
                modes = (("live", "late")
                         if b.quick or all_live or compression in LIVE_COMPRESSIONS
                         else ("late",))
                pictures: dict[tuple[str, str], np.ndarray] = {}
                runs: dict[str, dict[str, dict[str, float]]] = {}

                def contender(name: str, compression: str = compression, path: Path = path,
                              pictures: dict = pictures, runs: dict = runs,
                              modes: tuple[str, ...] = modes
                              ) -> Callable[[], dict[str, float]]:
                    def run() -> dict[str, float]:
                        runs[name] = session(name, path, compression, tmp, pictures, modes)
                        return {f"{mode} {f}": v for mode, figs in runs[name].items()
                                for f, v in figs.items()}
                    return run

                figures = {f"{mode} {f}": spec for mode in modes
                           for f, spec in FIGURES.items()
                           if not (mode == "late" and f == "frames/s shown")}
                yield from b.observe({n: contender(n) for n in servers}, figures,
                                     prefix=f"{rec} {compression}: ", rounds=1, note=note)
                for mode in modes:
                    diff = {n: float(np.any(pictures[(n, mode)] != reference, axis=2).sum())
                            for n in servers}
                    yield b.value(f"{rec} {compression}: {mode} pixels unlike Xspice's "
                                  "screenshot", "pixels", diff)
                    if len(servers) == 2:
                        same = np.array_equal(pictures[("vgpu", mode)],
                                              pictures[("spice-server", mode)])
                        yield b.value(f"{rec} {compression}: {mode} pictures equal", "1 = equal",
                                      {"vgpu = spice-server": float(same)}, better=HIGHER,
                                      note="lossless setting" if compression in LOSSLESS
                                      else "lossy setting")

