"""What every workload shares: the recordings and sample frames in bench/data, the
null backend, the stock SPICE client (spice-gtk's library) run as a process, vgpu's
SPICE server on a thread of its own, and a proxy that counts a server's bytes.

Workloads read their inputs from here so that all of them measure the same things."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import queue
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

    def wait_display_open(self, timeout: float = 20.0) -> list[str]:
        """Waits for the display channel to open; returns the lines read meanwhile."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while not any(line.startswith("event 2 opened") for line in lines):
            lines += self.drain()
            if time.monotonic() > deadline:
                raise RuntimeError("the client never opened its display channel")
            time.sleep(0.02)
        return lines

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


@contextlib.contextmanager
def serving(source: Any, options: Any) -> Iterator[tuple[Any, int]]:
    """vgpu's SpiceServer for `source` (a DisplaySource) on its own event loop thread,
    listening on a free loopback port: (server, port)."""
    from vgpu.spice.server import SpiceServer

    loop = asyncio.new_event_loop()
    server = SpiceServer(source, options)
    thread = threading.Thread(target=loop.run_forever, name="spice-loop", daemon=True)
    thread.start()
    try:
        yield server, asyncio.run_coroutine_threadsafe(
            server.listen("127.0.0.1", 0), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def percentiles(latencies: list[float]) -> dict[str, float]:
    """Median and p99 of delays in ms, the two figures every end-to-end workload gives."""
    ordered = sorted(latencies)
    if not ordered:
        return {"latency median": float("nan"), "latency p99": float("nan")}
    return {
        "latency median": statistics.median(ordered),
        "latency p99": ordered[int(0.99 * (len(ordered) - 1))],
    }


LINK_HEADER = 16 + 4 + 1
"""SpiceLinkHeader (magic, major, minor, size) + SpiceLinkMess's connection_id and
channel_type: what the proxy reads to know a connection's channel."""
DISPLAY_CHANNEL = 2


class LoopProxy(abc.ABC):
    """A loopback TCP proxy on an event loop thread of its own; `relay` serves one
    connection from a client. close() ends every connection and the thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self.relay, "127.0.0.1", 0), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    @abc.abstractmethod
    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serves one client connection until either side closes."""

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class CountingProxy(LoopProxy):
    """A loopback TCP proxy that counts the bytes each channel type got from the server."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.received: dict[int, int] = {}
        super().__init__()

    def total(self) -> int:
        """Bytes from the server on all channels so far."""
        return sum(self.received.values())

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # close() cancels what is left; a connection ends quietly then
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(LINK_HEADER)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            return
        channel = head[-1]
        up_writer.write(head)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       count: bool) -> None:
            try:
                while data := await src.read(1 << 16):
                    if count:
                        self.received[channel] = self.received.get(channel, 0) + len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))
