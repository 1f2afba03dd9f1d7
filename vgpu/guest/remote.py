"""The guest end of the out-of-process transport (`vgpu.device.transport`).

`RemoteAttachment.connect(path)` connects to a device's unix socket, maps the
memory file it receives and then offers what `InProcessAttachment` offers a
`GuestDriver`: `layout`, `buffer`, `io_write()`, `irq_level()`, `wait_irq()`,
`close()`. It is meant for one thread, as a guest's vCPU is. `connect_driver(path)`
is the usual way in: the attachment, a device reset, and a GuestDriver on it.
"""

from __future__ import annotations

import mmap
import os
import socket
import time

from vgpu.device.abi import lib
from vgpu.device.memory import MemoryLayout
from vgpu.device.transport import (
    HEADER,
    HELLO,
    IO,
    IO_DONE,
    IO_OK,
    IRQ,
    MSG_HELLO,
    MSG_IO,
    MSG_IO_DONE,
    MSG_IRQ,
    RECV_SIZE,
    FrameParser,
    ProtocolError,
    encode,
    parse_hello,
    sync_port,
)
from vgpu.device.transport import IO_WAIT_LIMIT as DEVICE_IO_WAIT_LIMIT
from vgpu.guest.driver import GuestDriver

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the device's HELLO after connecting."""

IO_WAIT_LIMIT = DEVICE_IO_WAIT_LIMIT + 30.0
"""Seconds a guest waits for IO_DONE: longer than the device side's own limit, so the
device's timed-out answer arrives first when the device thread is stuck."""


class RemoteAttachment:
    def __init__(self, sock: socket.socket, layout: MemoryLayout, fd: int) -> None:
        self.sock = sock
        self.layout = layout
        self._fd = fd
        self.buffer = mmap.mmap(fd, layout.total)
        self._parser = FrameParser(frozenset({MSG_IO_DONE, MSG_IRQ}))
        self._level = False
        self._done: list[tuple[int, int]] = []

    @classmethod
    def connect(cls, path: str | os.PathLike[str],
                timeout: float = CONNECT_TIMEOUT) -> RemoteAttachment:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            size = HEADER.size + HELLO.size
            data, fds, _, _ = socket.recv_fds(sock, size, 1)
            if len(fds) != 1 or len(data) != size:
                for fd in fds:
                    os.close(fd)
                raise ProtocolError("the device's HELLO did not arrive whole with its fd")
            msg_type, length = HEADER.unpack_from(data)
            if msg_type != MSG_HELLO or length != HELLO.size:
                os.close(fds[0])
                raise ProtocolError(f"expected HELLO, got message type {msg_type}")
            layout = parse_hello(data[HEADER.size:])
            if os.fstat(fds[0]).st_size < layout.total:
                os.close(fds[0])
                raise ProtocolError("the memory file is smaller than the announced layout")
            sock.settimeout(None)
            return cls(sock, layout, fds[0])
        except BaseException:
            sock.close()
            raise

    def _receive(self, timeout: float | None) -> bool:
        """Read what the device sent, waiting up to `timeout`; False on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_SIZE)
        except (TimeoutError, BlockingIOError):
            return False
        if not data:
            raise ConnectionError("the device closed the connection")
        for msg_type, payload in self._parser.feed(data):
            if msg_type == MSG_IRQ:
                (level,) = IRQ.unpack(payload)
                self._level = bool(level)
            else:
                self._done.append(IO_DONE.unpack(payload))
        return True

    def io_write(self, port: int, value: int) -> None:
        self.sock.settimeout(IO_WAIT_LIMIT)  # _receive may have left it non-blocking
        self.sock.sendall(encode(MSG_IO, IO.pack(port, value & 0xFFFFFFFF)))
        if not sync_port(port):
            return
        deadline = time.monotonic() + IO_WAIT_LIMIT
        while not self._done:
            left = deadline - time.monotonic()
            if left <= 0 or not self._receive(left):
                raise TimeoutError(f"device did not complete IO port {port}")
        done_port, status = self._done.pop(0)
        if done_port != port:
            raise ProtocolError(f"IO_DONE for port {done_port} while waiting for {port}")
        if status != IO_OK:
            raise TimeoutError(f"device did not complete IO port {port}")

    def irq_level(self) -> bool:
        while self._receive(0):  # take what has arrived, without waiting
            pass
        return self._level

    def wait_irq(self, timeout: float | None = None) -> bool:
        """Wait until the IRQ line is high; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.irq_level():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._receive(left)
        return True

    def close(self) -> None:
        self.buffer.close()
        os.close(self._fd)
        self.sock.close()


def connect_driver(path: str | os.PathLike[str], **driver_options: object) -> GuestDriver:
    """A `GuestDriver` on the device at `path`. The device is reset first, as a driver
    does when it loads: an earlier guest may have left memslots, surfaces or a guest bug."""
    attachment = RemoteAttachment.connect(path)
    try:
        attachment.io_write(lib.QXL_IO_RESET, 0)
        return GuestDriver(attachment, **driver_options)  # type: ignore[arg-type]
    except BaseException:
        attachment.close()
        raise
