"""Out-of-process guests: the device listens on a unix socket and shares its memory.

The shape is that of vhost-user backends: the guest's memory is a file
descriptor passed once over the socket (SCM_RIGHTS), after which the guest
reads and writes ROM, RAM and VRAM directly; only doorbells (IO port writes)
and interrupts cross the socket. `vgpu.guest.remote.RemoteAttachment` is the
guest end; it gives `vgpu.guest.GuestDriver` the same interface as
`vgpu.device.inprocess.InProcessAttachment`.

Protocol. Every message is a header of two little-endian uint32, TYPE and
LENGTH, followed by exactly LENGTH payload bytes (little-endian fields):

    TYPE  name     direction        payload
    1     HELLO    device -> guest  magic "VGPU", version u32, rom_size u64,
                                    ram_size u64, vram_size u64;
                                    carries the memory fd (SCM_RIGHTS)
    2     IO       guest -> device  port u32, value u32: an IO port write
    3     IO_DONE  device -> guest  port u32, status u32 (0 done, 1 timed out):
                                    sent for synchronous ports only, once the
                                    device has acted on the write (doorbells
                                    and async ports need no reply, as in QEMU;
                                    async ones end with QXL_INTERRUPT_IO_CMD)
    4     IRQ      device -> guest  level u32 (0 or 1): the IRQ line changed

The device sends HELLO first; the guest sends only IO. A message of unknown
TYPE, a LENGTH other than the type's, or anything from a guest that is not an
IO message closes that guest's connection with a logged reason. IRQ messages
carry the line level only (the guest reads QXLRam.int_pending itself), so the
device coalesces them: at most one is waiting to be sent at any time.

One guest at a time: a connection that arrives while another guest is
attached is closed at once. A guest that dies, sends garbage or writes
garbage into memory cannot take the device down: the socket side only ever
closes one connection, and the device treats guest memory as hostile anyway
(guest-bug state until QXL_IO_RESET). The next guest resets the device as a
driver does at load, and carries on with the same memory.

Threads: the listener runs in an asyncio event loop. `Device.io_write()` and
`add_irq_listener()` are the device's thread-safe entry points; the device's
owner thread runs `Device.process()` as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from pathlib import Path

from vgpu.device.device import ASYNC_PORTS, DOORBELL_PORTS, Device, IoRequest
from vgpu.device.memory import MemoryLayout

log = logging.getLogger(__name__)

MAGIC = b"VGPU"
VERSION = 1

MSG_HELLO, MSG_IO, MSG_IO_DONE, MSG_IRQ = 1, 2, 3, 4
IO_OK, IO_TIMED_OUT = 0, 1

HEADER = struct.Struct("<II")
HELLO = struct.Struct("<4sIQQQ")
IO = struct.Struct("<II")
IO_DONE = struct.Struct("<II")
IRQ = struct.Struct("<I")
PAYLOAD_SIZES = {MSG_HELLO: HELLO.size, MSG_IO: IO.size, MSG_IO_DONE: IO_DONE.size,
                 MSG_IRQ: IRQ.size}

IO_WAIT_LIMIT = 60.0
"""Seconds the device side waits for one synchronous IO to complete; beyond this the
device thread is stuck or stopped, and the guest is told so rather than left hanging."""

SEND_TIMEOUT = 10.0
"""Seconds a reply may wait for room in the guest's socket buffer. A guest that does
not read its socket for that long is dropped; the device carries on."""

WAIT_SLICE = 0.25
"""Seconds between checks, while waiting for an IO, that the guest is still connected."""

RECV_SIZE = 4096
"""Bytes read from a guest at a time; the frame parser keeps at most one partial message."""


class ProtocolError(Exception):
    """A peer broke the message protocol; the connection is closed."""


def encode(msg_type: int, payload: bytes) -> bytes:
    return HEADER.pack(msg_type, len(payload)) + payload


class FrameParser:
    """Bytes in, (type, payload) out; checks every header before taking its payload."""

    def __init__(self, accept: frozenset[int]) -> None:
        self._accept = accept
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER.size:
            msg_type, length = HEADER.unpack_from(self._buf)
            if msg_type not in self._accept:
                raise ProtocolError(f"unexpected message type {msg_type}")
            if length != PAYLOAD_SIZES[msg_type]:
                raise ProtocolError(f"message type {msg_type} with {length} payload bytes")
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            out.append((msg_type, bytes(self._buf[HEADER.size:end])))
            del self._buf[:end]
        return out


def hello(layout: MemoryLayout) -> bytes:
    return encode(MSG_HELLO, HELLO.pack(MAGIC, VERSION, layout.rom_size, layout.ram_size,
                                        layout.vram_size))


def parse_hello(payload: bytes) -> MemoryLayout:
    magic, version, rom, ram, vram = HELLO.unpack(payload)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError(f"not a vgpu device (magic {magic!r}, version {version})")
    return MemoryLayout(rom, ram, vram)


def sync_port(port: int) -> bool:
    """Ports whose write the guest waits on (and the device answers with IO_DONE)."""
    return port not in DOORBELL_PORTS and port not in ASYNC_PORTS


class _Guest:
    """One attached guest connection."""

    def __init__(self, listener: GuestListener, sock: socket.socket) -> None:
        self.listener = listener
        self.device = listener.device
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self._irq_wanted: bool | None = None  # the level still to be sent
        self._irq_sent: bool | None = None
        self._irq_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._closed = False

    async def run(self) -> None:
        remove = self.device.add_irq_listener(self._on_irq)
        try:
            socket.send_fds(self.sock, [hello(self.device.layout)], [self.device.mem.fd])
            self._on_irq(self.device.irq_level())
            parser = FrameParser(frozenset({MSG_IO}))
            while True:
                data = await self.loop.sock_recv(self.sock, RECV_SIZE)
                if not data:
                    log.info("guest disconnected")
                    return
                for _, payload in parser.feed(data):
                    await self._io(*IO.unpack(payload))
        except ProtocolError as e:
            log.warning("guest dropped: %s", e)
        except (OSError, TimeoutError) as e:
            log.warning("guest connection lost: %s", e)
        finally:
            remove()
            self._closed = True
            if self._irq_task is not None:
                self._irq_task.cancel()
            self.sock.close()

    async def _io(self, port: int, value: int) -> None:
        req = self.device.io_write(port, value)
        if not sync_port(port):
            return
        done = await self.loop.run_in_executor(None, self._wait, req)
        if not done:
            log.warning("device did not complete IO port %d in %.0f s", port, IO_WAIT_LIMIT)
        await self._send(encode(MSG_IO_DONE, IO_DONE.pack(port, IO_OK if done else IO_TIMED_OUT)))

    def _wait(self, req: IoRequest) -> bool:
        """On an executor thread: True once the device has acted on `req`; gives up at
        IO_WAIT_LIMIT, or soon after the connection closed (so no thread lingers)."""
        deadline = time.monotonic() + IO_WAIT_LIMIT
        while not req.wait(WAIT_SLICE):
            if self._closed or time.monotonic() > deadline:
                return False
        return True

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), SEND_TIMEOUT)

    def _on_irq(self, level: bool) -> None:
        """From the device thread: remember the level, have the loop send it."""
        self.loop.call_soon_threadsafe(self._want_irq, level)

    def _want_irq(self, level: bool) -> None:
        self._irq_wanted = level
        if self._irq_task is None and not self._closed:
            self._irq_task = self.loop.create_task(self._send_irq())

    async def _send_irq(self) -> None:
        try:
            while self._irq_wanted is not None and self._irq_wanted != self._irq_sent:
                level = self._irq_wanted
                await self._send(encode(MSG_IRQ, IRQ.pack(int(level))))
                self._irq_sent = level
        except (OSError, TimeoutError) as e:
            log.warning("guest not taking interrupts: %s", e)
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # ends run()'s receive
        finally:
            self._irq_task = None


class GuestListener:
    """Serves out-of-process guests of `device` on a unix socket at `path`.

    Use `await GuestListener(device, path).start()` in the event loop, and
    `await listener.close()` to stop (the attached guest is disconnected)."""

    def __init__(self, device: Device, path: str | os.PathLike[str]) -> None:
        self.device = device
        self.path = Path(path)
        self.guests_served = 0
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._guest_task: asyncio.Task[None] | None = None

    async def start(self) -> GuestListener:
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()  # a stale socket of an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)  # only this user's processes may attach as the guest
        sock.listen(4)
        sock.setblocking(False)
        self._sock = sock
        self._accept_task = asyncio.get_running_loop().create_task(self._accept())
        return self

    @property
    def attached(self) -> bool:
        return self._guest_task is not None and not self._guest_task.done()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            conn.setblocking(False)
            if self.attached:
                log.warning("second guest refused: one guest is attached already")
                conn.close()
                continue
            self.guests_served += 1
            self._guest_task = loop.create_task(_Guest(self, conn).run())

    async def wait_detached(self) -> None:
        """Returns once no guest is attached."""
        if self._guest_task is not None:
            await asyncio.shield(self._guest_task)

    async def close(self) -> None:
        for task in (self._accept_task, self._guest_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
