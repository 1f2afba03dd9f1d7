"""Soak: the desktop demo served under load, churn and hostile input, measured.

  load       --clients at once on one server: GLIB_CLIENTS real spice-gtk clients
             (SpiceClientGLib), one stalled client that links and never reads, the
             rest light protocol clients that read slowly (tests/clients/light_client.py).
             Each client's frame rate (the demo's frames the server sent it per
             second) over that of one client of its kind served alone (before the load
             and after it: their mean), the slowest and the median per kind; the
             stalled one's backlog, and the server's resident memory per client.
  websocket  the same with WEBSOCKET_CLIENTS light clients over WebSocket.
  churn      light clients connecting all channels, watching and leaving (cleanly,
             or abruptly with half a message and a reset) for SECONDS: resident
             memory, open descriptors, threads and asyncio tasks at start and end.
  --fuzz     instead of the above: the protocol fuzzers' client messages, the
             device fuzzers' guest commands and the 3D ring fuzzer's cases at scale
             (--messages, --commands, --gl3d-cases), with the escapes (exceptions out
             of a machine or the device) and violations counted; any fails the run.
             The canvas differential (issue 12's 10,000 random scenes against
             spice-server) is its own workload: `vgpu bench soak canvas_soak --fuzz`.
--quick shrinks the load (fewer clients, shorter windows, no WebSocket phase);
--fuzz --quick runs each
fuzzer at a thousandth of its count.

Everything runs against `vgpu.machine.Machine` with the built-in desktop guest
(about 30 frames a second of small damage), served by `SpiceServer` in this
process; the clients run in other processes, as real clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgpu.bench import HIGHER, Bench, Measurement, workload
from vgpu.bench.common import SpiceClient
from vgpu.bench.core import FUZZ, Option, bench_module
from vgpu.spice.server import WRITE_BUFFER_HIGH, ServerOptions, SpiceServer

ROOT = Path(__file__).resolve().parent.parent
LIGHT_CLIENT = ROOT / "tests" / "clients" / "light_client.py"
CONNECT_TIMEOUT_S = 60.0  # all clients linked and drawn to by then, or the run fails
SECONDS, QUICK_SECONDS = 5.0, 1.0  # each measurement window: 150 demo frames
GLIB_CLIENTS, QUICK_GLIB_CLIENTS = 3, 0  # real spice-gtk clients among the load's
WEBSOCKET_CLIENTS = 10
CHURN_CLIENTS, QUICK_CHURN_CLIENTS = 8, 3  # clients churning at once
QUICK_CLIENTS = 4
"""--quick: load and churn, with light clients only and one-second windows."""
QUICK_FUZZ_SHARE = 1000  # --fuzz --quick: each fuzzer at its count / this
CLIENTS = Option("--clients", "clients at once in the load phase", int, 50)
MESSAGES = Option("--messages", "client messages for the protocol fuzzers", int, 1_000_000)
COMMANDS = Option("--commands", "guest commands for the device fuzzers", int, 1_000_000)
GL3D_CASES = Option("--gl3d-cases", "cases of the 3D ring fuzzer", int, 100_000)
TOLERANCE = 0.10  # the bound: each client within 10% of its rate alone
FRAME_BOUND = 4 * 1024 * 1024  # a lossless 1024x768 frame at most, on top of the buffer


def rss_bytes(trim: bool = False) -> int:
    """Resident memory; `trim` first hands the C allocator's free pages back (glibc's
    malloc_trim), so that what is left is what is in use, not what was freed in the
    encoder threads' arenas and kept."""
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(native_ids: list[int]) -> float:
    """User plus system CPU seconds of these threads of this process (/proc's stat
    fields 14 and 15, in clock ticks): the server's own cost, without the demo's."""
    total = 0
    for tid in native_ids:
        with contextlib.suppress(FileNotFoundError):  # a pool thread may have ended
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def serving_threads(server: SpiceServer, call: Callable[[Any], object]) -> list[int]:
    """Native ids of the threads serving clients: the event loop (`call` runs a coroutine
    there) and the encoder pool."""
    async def loop_thread() -> int:
        return threading.get_native_id()

    pool = server.pool._threads  # the pool's workers, for /proc
    return [int(call(loop_thread())),  # type: ignore[call-overload]
            *(t.native_id for t in pool if t.native_id is not None)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Served:
    """The desktop demo and a SpiceServer on an event loop thread of their own."""

    server: SpiceServer
    port: int
    loop: asyncio.AbstractEventLoop
    machine: Any

    def published(self) -> int:
        """Frames the desktop demo has published so far (frame serials count them)."""
        latest = self.machine.frames.latest()
        return 0 if latest is None else int(latest.serial)

    def call(self, coro: object, timeout: float = 10) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def frames_by_port(self) -> dict[int, int]:
        """Sends so far to each display connection, by the client's port."""
        return {s.peer[1]: s.frames for s in list(self.server.display_stats)  # type: ignore[index]
                if isinstance(s.peer, tuple)}

    def sent_by_port(self) -> dict[int, tuple[int, int]]:
        """Per display connection: the newest frame serial sent to it (-1: none yet) and
        the video stream frames sent so far."""
        return {s.peer[1]: (s.sends[-1][0] if s.sends else -1, s.stream_frames)  # type: ignore[index]
                for s in list(self.server.display_stats) if isinstance(s.peer, tuple)}

    def frames_since(self, start: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
        """Per display connection, since `start` (sent_by_port): the demo's frames sent
        to it, as distinct serials (a frame sent again, as when a still stream's area is
        redrawn losslessly, counts once), and the video stream frames."""
        out = {}
        for stats in list(self.server.display_stats):
            if not isinstance(stats.peer, tuple):
                continue
            newest, streamed = start.get(stats.peer[1], (-1, 0))
            serials = {serial for serial, _draws in list(stats.sends) if serial > newest}
            out[stats.peer[1]] = (len(serials), stats.stream_frames - streamed)
        return out

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks())

        return int(self.call(count()))  # type: ignore[arg-type]


@contextmanager
def serve_demo() -> Iterator[Served]:
    from vgpu.machine import Machine

    machine = Machine.create(demo="desktop").start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="soak-server", daemon=True)
    thread.start()
    server = SpiceServer(machine, ServerOptions())
    served = Served(server, 0, loop, machine)
    try:
        served.port = int(served.call(server.listen("127.0.0.1", 0)))  # type: ignore[arg-type]
        yield served
    finally:
        served.call(server.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        machine.stop()


class LightClients:
    """tests/clients/light_client.py in a process of its own; its JSON lines as they come."""

    def __init__(self, port: int, clients: int, seconds: float, *flags: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, str(LIGHT_CLIENT), "--port", str(port), "--clients", str(clients),
             "--seconds", str(seconds), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def ports(self, kind_prefix: str) -> set[int]:
        """Display connection ports of the linked clients whose kind starts so."""
        return {r["local_port"] for r in list(self.lines)
                if r["event"] == "linked" and r["kind"].startswith(kind_prefix)}

    def results(self) -> list[dict]:
        """Waits for the clients' end; raises if any failed."""
        self._reader.join(CONNECT_TIMEOUT_S + 120)  # stdout is the reader thread's alone
        self.proc.wait(10)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        failed = [r for r in self.lines if r["event"] == "failed"]
        if self.proc.returncode != 0 or failed:
            raise RuntimeError(f"light clients failed: {failed[:3]} {err[-1000:]}")
        return [r for r in self.lines if r["event"] == "done"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._reader.join(10)


def glib_client(port: int) -> Any:
    """A real spice-gtk client (SpiceClientGLib)."""
    return SpiceClient(port)


@dataclass
class LoadResult:
    # kind -> its frames/s served alone, before the load and after it: what it gets
    # alone is their mean (the machine's other load drifts while a run goes on)
    alone: dict[str, list[float]]
    alone_published: dict[str, list[float]] = field(default_factory=dict)  # the demo's then
    alone_streams: dict[str, list[float]] = field(default_factory=dict)  # stream frames/s
    rates: dict[str, list[float]] = field(default_factory=dict)  # kind -> frames/s each
    streams: dict[str, list[float]] = field(default_factory=dict)  # kind -> stream frames/s each
    published: float = 0.0  # the demo's frames/s while all the clients were measured
    stalled_backlog: int = 0
    stalled_frames: int = 0
    rss_before: int = 0
    rss_with_clients: int = 0
    clients: int = 0
    server_cpu_s: float = 0.0  # the event loop's and encoders' CPU while measuring
    frames_sent: int = 0  # frames sent to all clients meanwhile

    def ratios(self, kind: str) -> list[float]:
        """The issue's figure for each client of `kind`, slowest first: its frame rate
        under load over what one client of its kind gets alone."""
        alone = sum(self.alone[kind]) / len(self.alone[kind])
        return sorted(rate / alone for rate in self.rates[kind])

    def worst_ratio(self) -> float:
        return min(min(self.ratios(kind)) for kind, rates in self.rates.items() if rates)

    def share_ratios(self, kind: str) -> list[float]:
        """Each client's share of the demo's frames under load over its kind's share
        alone, slowest first: what the server gave it of what there was to send. The
        demo draws at its own varying rate, slower on a busy machine; the issue's ratio
        (ratios) takes that in as well."""
        alone = sum(self.alone[kind]) / sum(self.alone_published[kind])
        return sorted(rate / self.published / alone for rate in self.rates[kind])

    def worst_share_ratio(self) -> float:
        """A pass/fail bound on a shared machine takes this one (see share_ratios)."""
        return min(min(self.share_ratios(kind)) for kind, rates in self.rates.items() if rates)

    def cpu_per_frame_ms(self) -> float:
        """Server CPU per frame sent to one client: the per-client send path's cost,
        less sensitive to the machine's load than frame rates are."""
        return 1000 * self.server_cpu_s / max(1, self.frames_sent)

    def memory_per_client(self) -> float:
        return (self.rss_with_clients - self.rss_before) / max(1, self.clients)


def wait_for_displays(served: Served, count: int) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        frames = served.frames_by_port()
        if len(frames) >= count and sum(1 for f in frames.values() if f > 0) >= count - 1:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(frames)} of {count} display connections after "
                               f"{CONNECT_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


@dataclass
class Window:
    """One measurement window: per display connection (by the client's port) the demo's
    frames per second sent to it and its video stream frames per second, the demo's
    own frames per second (it varies with what it draws), the serving threads' CPU."""

    rates: dict[int, float]
    streams: dict[int, float]
    published: float
    cpu_s: float


def measure(served: Served, seconds: float) -> Window:
    threads = serving_threads(served.server, served.call)
    start, published = served.sent_by_port(), served.published()
    cpu_start = thread_cpu_s(threads)
    time.sleep(seconds)
    sent = served.frames_since(start)
    cpu = thread_cpu_s(threads) - cpu_start
    return Window({port: frames / seconds for port, (frames, _) in sent.items()},
                  {port: streamed / seconds for port, (_, streamed) in sent.items()},
                  (served.published() - published) / seconds, cpu)


def alone_rate(served: Served, seconds: float, kind: str) -> Window:
    """One client of `kind` ("tcp", "ws" or "glib") served by itself."""
    warmup = 1.0
    if kind == "glib":
        glib = glib_client(served.port)
        try:
            wait_for_displays(served, 1)
            time.sleep(warmup)
            window = measure(served, seconds)
        finally:
            glib.close()
    else:
        flags = ("--websocket",) if kind == "ws" else ()
        light = LightClients(served.port, 1, seconds + warmup + 2, *flags)
        wait_for_displays(served, 1)
        time.sleep(warmup)
        window = measure(served, seconds)
        light.results()
    wait_idle(served)
    return window


def wait_idle(served: Served) -> None:
    deadline = time.monotonic() + 10
    while served.server.connections and time.monotonic() < deadline:
        time.sleep(0.1)


def run_load(served: Served, clients: int, glib: int, seconds: float,
             websocket: bool = False) -> LoadResult:
    """`clients` at once: `glib` real clients, one stalled, the rest slow light readers;
    one client of each kind alone before them and after."""
    kind = "ws" if websocket else "tcp"
    kinds = [kind] + (["glib"] if glib else [])
    result = LoadResult({k: [] for k in kinds}, {k: [] for k in kinds},
                        {k: [] for k in kinds})

    def alone() -> None:
        for k in kinds:
            window = alone_rate(served, seconds, k)
            result.alone[k] += window.rates.values()
            result.alone_streams[k] += window.streams.values()
            result.alone_published[k].append(window.published)

    alone()
    result.rss_before = rss_bytes(trim=True)
    result.clients = clients
    flags = ["--stalled", "1", *(["--websocket"] if websocket else [])]
    light = LightClients(served.port, clients - glib, seconds + CONNECT_TIMEOUT_S, *flags)
    glibs = [glib_client(served.port) for _ in range(glib)]
    try:
        wait_for_displays(served, clients)
        time.sleep(1.0)  # every client past its first picture
        window = measure(served, seconds)
        result.published, result.server_cpu_s = window.published, window.cpu_s
        result.frames_sent = round(sum(window.rates.values()) * seconds)
        result.rss_with_clients = rss_bytes(trim=True)
        backlogs = served.server.backlogs()
        stalled_ports = light.ports("stalled")
        light_ports = light.ports("") - stalled_ports
    finally:
        for g in glibs:
            g.close()
        light.stop()  # the clients' own time is up only after CONNECT_TIMEOUT_S
    if len(stalled_ports) != 1:
        raise RuntimeError(f"the light clients reported {len(stalled_ports)} stalled")
    result.rates = {k: [] for k in kinds}
    result.streams = {k: [] for k in kinds}
    for port, rate in window.rates.items():
        if port in stalled_ports:
            result.stalled_frames = round(rate * seconds)
            result.stalled_backlog = max(
                (b for peer, b in backlogs.items()
                 if isinstance(peer, tuple) and peer[1] == port), default=0)
        else:
            k = kind if port in light_ports else "glib"
            result.rates[k].append(rate)
            result.streams[k].append(window.streams[port])
    wait_idle(served)
    alone()
    return result


def server_objects() -> int:
    """Live per-connection objects (sessions, transports, link and channel machines,
    display senders and their stats, frame subscriptions): what a session left behind
    would keep. (The shared encodes of recent frames come and go with the damage.)"""
    from vgpu.display import Subscription
    from vgpu.spice import server
    from vgpu.spice.channels import ChannelMachine
    from vgpu.spice.link import LinkMachine

    kinds = (server.Session, server._DisplayClient, server.StreamTransport,
             server.WebSocketTransport, server.DisplayStats, LinkMachine, ChannelMachine,
             Subscription)
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kinds))


@dataclass
class Gauges:
    rss: int
    fds: int
    threads: int
    tasks: int
    connections: int
    objects: int

    @classmethod
    def now(cls, served: Served) -> Gauges:
        objects = server_objects()
        return cls(rss_bytes(trim=True), open_fds(), threading.active_count(), served.tasks(),
                   served.server.connections, objects)

    def settled_at(self, start: Gauges) -> bool:
        """Everything counted is back where `start` had it (resident memory aside)."""
        return (self.fds, self.threads, self.tasks, self.connections, self.objects) == (
            start.fds, start.threads, start.tasks, 0, start.objects)


SETTLE_S = 5.0
"""How long the gauges may take to come back after the last churning client: its
connections and tasks end asynchronously, well within this when nothing leaks."""


def run_churn(served: Served, clients: int, seconds: float,
              websocket: bool = False) -> tuple[Gauges, Gauges, int]:
    """Churning clients for `seconds` after a warm-up round; gauges before and after,
    and the sessions served."""
    flags = ["--churn", *(["--websocket"] if websocket else [])]
    LightClients(served.port, clients, 2.0, *flags).results()  # warm-up: caches, pools
    wait_idle(served)
    start = Gauges.now(served)
    lines = LightClients(served.port, clients, seconds, *flags).results()
    wait_idle(served)
    # closed sockets and finished tasks are collected: wait for the gauges to settle back
    # (a connection reset at the last moment is still being torn down for a while)
    deadline = time.monotonic() + SETTLE_S
    end = Gauges.now(served)
    while not end.settled_at(start) and time.monotonic() < deadline:
        time.sleep(0.1)
        end = Gauges.now(served)
    return start, end, sum(r["sessions"] for r in lines)


def load_measurements(b: Bench, name: str, r: LoadResult) -> Iterator[Measurement]:
    """Each kind's clients under load against one of its kind served alone: each
    client's frame rate under load over the rate alone (the issue's figure), the
    slowest client's and the median; the demo's own rate and the video stream frames
    in the notes (the demo's rate moves with its drawing and the machine)."""
    for kind, rates in r.rates.items():
        if not rates:
            continue
        alone = r.alone[kind]
        yield b.value(f"{name}, {r.clients} clients: {kind} frames/s", "frames/s",
                      {"each under load": rates, "alone": alone}, better=HIGHER,
                      note=f"the demo published {r.published:.1f} frames/s under load, "
                           f"{' and '.join(f'{p:.1f}' for p in r.alone_published[kind])} "
                           f"alone (before, after); video stream frames/s: median "
                           f"{statistics.median(r.streams[kind]):.1f} under load, "
                           f"{' and '.join(f'{v:.1f}' for v in r.alone_streams[kind])} "
                           f"alone")
        ratios = r.ratios(kind)
        yield b.value(f"{name}, {r.clients} clients: {kind} rate under load / alone", "x",
                      {"slowest": ratios[0], "median": statistics.median(ratios)},
                      better=HIGHER,
                      note=f"each client's frames/s over one alone's (the mean of "
                           f"{len(alone)} windows); target: the slowest at "
                           f"{1 - TOLERANCE:.2f} or more; as shares of the demo's "
                           f"frames, the slowest {r.share_ratios(kind)[0]:.3f}")
    yield b.value(f"{name}, {r.clients} clients: stalled client's backlog", "KiB",
                  {"stalled client": r.stalled_backlog / 1024,
                   "bound": (WRITE_BUFFER_HIGH + FRAME_BOUND) / 1024},
                  note=f"{r.stalled_frames} frames sent to it while measuring")
    yield b.value(f"{name}, {r.clients} clients: server CPU per frame sent", "ms",
                  {"vgpu": r.cpu_per_frame_ms()},
                  note=f"event loop and encoder threads: {r.server_cpu_s:.2f} s for "
                       f"{r.frames_sent} frames to {r.clients} clients; load average "
                       f"{os.getloadavg()[0]:.1f}")
    yield b.value(f"{name}, {r.clients} clients: resident memory per client", "KiB",
                  {"vgpu": r.memory_per_client() / 1024},
                  note=f"after malloc_trim: {r.rss_before / 2**20:.0f} MiB before, "
                       f"{r.rss_with_clients / 2**20:.0f} MiB with the clients")


def churn_measurements(b: Bench, start: Gauges, end: Gauges, sessions: int
                       ) -> Iterator[Measurement]:
    """What churning sessions left behind: every gauge after against before."""
    note = f"{sessions} sessions came and went"
    yield b.value("churn: resident memory", "MiB", {"after": end.rss / 2**20,
                                                    "before": start.rss / 2**20}, note=note)
    for gauge in ("fds", "threads", "tasks", "connections", "objects"):
        yield b.value(f"churn: {gauge}", gauge, {"after": getattr(end, gauge),
                                                 "before": getattr(start, gauge)}, note=note)


@workload("soak", "the desktop demo under load (50 clients), WebSocket load and churn; with "
          "--fuzz the protocol, device and 3D ring fuzzers at 10^6 / 10^6 / 10^5",
          references=("a client alone",), options=(FUZZ, CLIENTS, MESSAGES, COMMANDS,
                                                   GL3D_CASES))
def soak(b: Bench) -> Iterator[Measurement]:
    if b.option("--fuzz"):
        share = QUICK_FUZZ_SHARE if b.quick else 1
        yield from run_fuzz(b, *(max(1, b.option(f) // share)
                                 for f in ("--messages", "--commands", "--gl3d-cases")))
        return
    seconds = QUICK_SECONDS if b.quick else SECONDS
    clients = min(QUICK_CLIENTS, b.option("--clients")) if b.quick else b.option("--clients")
    with serve_demo() as served:
        b.progress(f"load, {clients} clients")
        yield from load_measurements(b, "load", run_load(
            served, clients, QUICK_GLIB_CLIENTS if b.quick else GLIB_CLIENTS, seconds))
        if not b.quick:  # the same load over another transport
            b.progress("websocket load")
            yield from load_measurements(b, "websocket", run_load(
                served, WEBSOCKET_CLIENTS, 0, seconds, websocket=True))
        b.progress("churn")
        yield from churn_measurements(b, *run_churn(
            served, QUICK_CHURN_CLIENTS if b.quick else CHURN_CLIENTS, seconds))


SEND_SIZE = (1024, 768)
SEND_SQUARE = 256  # the moving square: streamed (MJPEG) once it has moved a few frames
SEND_FPS = 30.0  # the demo's rate
SEND_CLIENTS, QUICK_SEND_CLIENTS = 40, 8
SEND_ROUNDS = 3


def run_send(clients: int, seconds: float) -> tuple[float, int]:
    """`clients` light clients (one stalled) on a synthetic source that publishes the same
    damage every frame (a square moving on a still picture, a ticking corner): the
    serving threads' CPU seconds and the frames sent in `seconds`. Unlike the demo's,
    every frame costs the same, so runs compare even on a busy machine."""
    sys.path.insert(0, str(ROOT / "tests" / "spice"))
    from spice_testkit import ServerThread, SyntheticSource, pattern

    width, height = SEND_SIZE
    base = pattern(width, height)
    source = SyntheticSource()
    source.publish(base)
    server = ServerThread(source, ServerOptions())
    stop = threading.Event()

    def publish() -> None:
        step = 0
        while not stop.wait(1 / SEND_FPS):
            step += 1
            x = step * 8 % (width - SEND_SQUARE)
            picture = base.copy()
            picture[200:200 + SEND_SQUARE, x:x + SEND_SQUARE, :3] = (step * 7 % 256, 90, 160)
            picture[:16, -64:, :3] = step % 256
            source.publish(picture, damage=((x - 8 if x else 0, 200, x + SEND_SQUARE,
                                             200 + SEND_SQUARE), (width - 64, 0, width, 16)))

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    light = LightClients(server.port, clients, seconds + CONNECT_TIMEOUT_S, "--stalled", "1")
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while len(server.server.display_stats) < clients and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # every client past its first picture, its stream started
        threads = serving_threads(server.server, server.call)
        sent = sum(s.frames for s in server.server.display_stats)
        cpu = thread_cpu_s(threads)
        time.sleep(seconds)
        cpu = thread_cpu_s(threads) - cpu
        sent = sum(s.frames for s in server.server.display_stats) - sent
    finally:
        light.stop()
        stop.set()
        publisher.join(5)
        server.stop()
    return cpu, sent


@workload("soak_send", "the per-client send path: serving threads' CPU per frame sent, "
          "light clients on a synthetic source that damages the same every frame",
          options=(CLIENTS,))
def soak_send(b: Bench) -> Iterator[Measurement]:
    clients = QUICK_SEND_CLIENTS if b.quick else min(SEND_CLIENTS, b.option("--clients"))
    seconds = QUICK_SECONDS if b.quick else SECONDS
    per_frame = []
    for _ in range(b.rounds(SEND_ROUNDS, 1)):
        cpu, sent = run_send(clients, seconds)
        per_frame.append(1000 * cpu / max(1, sent))
        b.progress(f"{cpu:.2f} s for {sent} frames")
    yield b.value(f"send path, {clients} clients: server CPU per frame sent", "ms",
                  {"vgpu": per_frame},
                  note=f"event loop and encoder threads; load average "
                       f"{os.getloadavg()[0]:.1f}")


@dataclass
class FuzzCount:
    name: str
    inputs: int = 0  # client messages, or guest commands put on the rings
    cases: int = 0
    escapes: int = 0  # an exception out of a machine or the device
    violations: int = 0  # a rule the case checks (closed with a reason, ERROR raised, ...)
    first: list[str] = field(default_factory=list)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, AssertionError):
            self.violations += 1
        else:
            self.escapes += 1
        if len(self.first) < FUZZ_FAILURES_SHOWN:
            self.first.append(f"{type(exc).__name__}: {exc}"[:300])


FUZZ_FAILURES_SHOWN = 5
FUZZ_SEED = 1  # a fixed seed: a run that finds something can be run again


def fuzz_protocol(messages: int, seed: int = FUZZ_SEED) -> FuzzCount:
    """tests/spice/protocol_fuzz.py's cases until `messages` client messages were fed:
    random and mutated links with their tickets, random message streams and mutated
    valid messages on every channel, cut anywhere."""
    import protocol_fuzz as pf
    from spice_testkit import VALID, mutate

    rng = random.Random(seed)
    count = FuzzCount("protocol")
    names = sorted(pf.MACHINES)
    valid = {name: pf.valid_messages(name) for name in names}
    while count.inputs < messages:
        job = rng.random()
        name = rng.choice(names)
        try:
            if job < 0.05:
                count.inputs += 1
                pf.link_random(rng.randbytes(rng.randint(0, 400)))
            elif job < 0.1:
                count.inputs += 2  # the link message and the ticket
                pf.link_mutated(pf.random_edits(rng), pf.random_cuts(rng, 6, 500))
            elif job < 0.6:
                parts = pf.random_stream(rng)
                count.inputs += len(parts)
                pf.feed_channel(name, parts, pf.random_cuts(rng, 6, 2000))
            else:
                count.inputs += valid[name]
                pf.feed_channel(name, [mutate(VALID[name], pf.random_edits(rng))],
                                pf.random_cuts(rng, 6, 200))
        except Exception as exc:
            count.failed(exc)
        count.cases += 1
    return count


def fuzz_device(commands: int, seed: int = FUZZ_SEED) -> FuzzCount:
    """tests/device/device_fuzz.py's cases until the guest has put `commands` hostile
    commands on the rings (random and mutated commands), with the corrupted rings and
    IO storms the cases also draw (counted apart), each case on a freshly reset device
    and checked after."""
    import device_fuzz as df
    from fuzz_draw import RandomDraw

    rig = df.Rig()
    draw = RandomDraw(seed)
    count = FuzzCount("device")
    while rig.pushed < commands:
        try:
            df.run_case(rig, draw)
        except Exception as exc:
            count.failed(exc)
        count.cases += 1
        count.inputs = rig.pushed
    count.name = f"device (and {rig.io} hostile port writes)"
    return count


def fuzz_3d(cases: int) -> FuzzCount:
    """bench/gl3d_fuzz.py's run of the 3D ring fuzzer (tests/device/gl3d_fuzz.py), counted
    as the others are."""
    result = bench_module("gl3d_fuzz").fuzz_gl3d(cases, FUZZ_SEED)
    return FuzzCount(f"3D ring ({result.cases} cases)", result.batches, result.cases,
                     result.escapes, result.violations, result.first)


def run_fuzz(b: Bench, messages: int, commands: int, gl3d_cases: int
             ) -> Iterator[Measurement]:
    import logging

    for path in (ROOT / "tests" / "spice", ROOT / "tests" / "device"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    # Every hostile case is logged as a guest bug or a closed channel: millions of lines.
    logging.disable(logging.WARNING)
    failures: list[str] = []
    runs = (("protocol", fuzz_protocol, messages, "client messages"),
            ("device", fuzz_device, commands, "guest commands"),
            ("3D ring", fuzz_3d, gl3d_cases, "hostile 3D batches and ring items"))
    for name, run, target, unit in runs:
        b.progress(f"fuzz {name}, {target} {unit}")
        start = time.perf_counter()
        count = run(target)
        seconds = time.perf_counter() - start
        note = f"{count.name}: {count.inputs} {unit} in {count.cases} cases, {seconds:.0f} s"
        yield b.value(f"fuzz {name}: {unit} per second", "/s",
                      {"vgpu": count.inputs / seconds}, better=HIGHER, note=note)
        for figure, value in (("escapes", count.escapes), ("violations", count.violations)):
            yield b.value(f"fuzz {name}: {figure}", "cases", {"vgpu": value},
                          note="; ".join(count.first) or "target 0")
        failures += [f"{name}: {line}" for line in count.first]
    if failures:
        raise AssertionError("; ".join(failures[:FUZZ_FAILURES_SHOWN]))
