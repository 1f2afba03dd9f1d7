"""The guest's 3D socket: what a kernel driver's 3D interface is to programs in a VM.

`GlRelay` owns part of the device's RAM and serves a unix socket for processes linked
against vgpu's libGLESv2/libEGL (csrc/gles/). On connect a process gets the guest memory
file (SCM_RIGHTS) and a hello: its arena (mapping offset, size, QXLPHYSICAL), where
Vgpu3dFence.completed is, the largest batch, and ranges of context and surface ids of its
own. The library writes batches, answers and large data in its arena in place and sends
SUBMIT(offset, length, fence?) messages; the relay pushes each batch onto the 3D ring
(`GuestDriver.gl_push`) and, when asked, a FENCE whose value it answers. The library reads
completion from the mapping.

The process is hostile: a message out of its arena, of a wrong size or an unknown kind
closes its connection with one log line. When a process goes (exit, crash, mid-frame), its
contexts and surfaces are destroyed and its arena waits for a fence before it is lent again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from dataclasses import dataclass

from vgpu.device.abi import lib, offsetof
from vgpu.device.glwire import VGPU_COMMANDS
from vgpu.device.memory import PAGE
from vgpu.guest.driver import GuestDriver

log = logging.getLogger(__name__)

HELLO_MAGIC = 0x4C47475056  # "VPGGL", csrc/gles/gles.c VG_HELLO_MAGIC
HELLO = struct.Struct("<12Q")
SUBMIT = struct.Struct("<IIQQ")  # op, flags, offset in the arena, length
FENCE_VALUE = struct.Struct("<Q")
OP_SUBMIT = 1
SUBMIT_FENCE = 1     # push a FENCE batch after this one, answer its value
SUBMIT_FENCE_IN = 2  # the batch's last 16 bytes are room for a FENCE: number it, answer
SUBMIT_WAIT = 4      # with either: answer once the fence has completed (the process sleeps
                     # in recv instead of polling Vgpu3dFence on 2 busy cores)
_FLAGS = (0, SUBMIT_FENCE, SUBMIT_FENCE_IN, SUBMIT_FENCE | SUBMIT_WAIT,
          SUBMIT_FENCE_IN | SUBMIT_WAIT)
FENCE_CMD = struct.Struct("<IIII")
_FENCE_HEADER = VGPU_COMMANDS["FENCE"][0] | VGPU_COMMANDS["FENCE"][1] << 16

MAX_CLIENTS = 4
"""Processes attached at once: each gets an arena and id ranges of its own (the device has
64 contexts and 64 drawables; 16 each is more than any EGL program here creates)."""

IDS_PER_CLIENT = 16
"""Context ids and surface ids lent to one process."""

ARENA_SIZE = 24 * 1024 * 1024
"""Guest memory lent to one process: a quarter for batches (several 1 MiB batches in flight),
the rest for textures and buffers by reference and answers between two waits."""

FENCE_WAIT_S = 30.0
"""How long a departing process's last work may take before its arena is given up for good
(a device that does not finish it is stuck, and its watchdog ends the machine)."""

_DESTROY_CTX = VGPU_COMMANDS["CONTEXT_DESTROY"][0] | 1 << 16
_DESTROY_SURFACE = VGPU_COMMANDS["SURFACE_DESTROY"][0] | 1 << 16


@dataclass
class _Slot:
    index: int
    offset: int  # mapping offset of the arena
    busy: bool = False


class GlRelay:
    """Serve `path` for GL clients on `driver` (one thread per client; the driver is shared
    under a lock, as a kernel serialises ring access)."""

    def __init__(self, driver: GuestDriver, memfd: int, path: str, screen: tuple[int, int],
                 arena_size: int = ARENA_SIZE, max_clients: int = MAX_CLIENTS) -> None:
        if not driver.gl_available():
            raise RuntimeError("the device offers no 3D ring")
        self.driver = driver
        self.memfd = memfd  # the guest memory file the driver's mapping shows
        self.path = path
        self.screen = screen
        self.arena_size = arena_size
        self.lock = threading.Lock()
        self.slots = [_Slot(i, driver.ram_alloc.alloc(arena_size, PAGE))
                      for i in range(max_clients)]
        self.completed_off = driver.gl_fence_offset + offsetof("Vgpu3dFence", "completed")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(max_clients)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.clients_served = 0

    def serve_forever(self) -> None:
        """Accepts clients until `close()`."""
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            slot = self._take_slot()
            if slot is None:
                log.warning("a GL client was refused: %d are attached already",
                            len(self.slots))
                conn.close()
                continue
            t = threading.Thread(target=self._client, args=(conn, slot),
                                 name=f"vgpu-gl-client-{slot.index}", daemon=True)
            self._threads.append(t)
            t.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close alone does not
        self.sock.close()
        for t in self._threads:
            t.join(timeout=FENCE_WAIT_S)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _take_slot(self) -> _Slot | None:
        with self.lock:
            for s in self.slots:
                if not s.busy:
                    s.busy = True
                    return s
        return None

    def _hello(self, slot: _Slot) -> bytes:
        d = self.driver
        ids = 1 + slot.index * IDS_PER_CLIENT
        w, h = self.screen
        return HELLO.pack(HELLO_MAGIC, d.layout.total, slot.offset, self.arena_size,
                          d.phys(slot.offset), self.completed_off, d.gl_max_batch,
                          ids, IDS_PER_CLIENT, ids, IDS_PER_CLIENT, w | h << 16)

    def _client(self, conn: socket.socket, slot: _Slot) -> None:
        self.clients_served += 1
        try:
            socket.send_fds(conn, [self._hello(slot)], [self.memfd])
            self._serve(conn, slot)
        except (OSError, ValueError) as exc:
            log.info("GL client %d: %s", slot.index, exc)
        except Exception as exc:  # the device refused the ring (DeviceError): log, go on
            log.warning("GL client %d: %s", slot.index, exc)
        finally:
            conn.close()
            self._release(slot)

    def _serve(self, conn: socket.socket, slot: _Slot) -> None:
        pending = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            pending += data
            while len(pending) >= SUBMIT.size:
                op, flags, offset, length = SUBMIT.unpack_from(pending)
                pending = pending[SUBMIT.size:]
                if op != OP_SUBMIT or flags not in _FLAGS:
                    raise ValueError(f"unknown message {op}/{flags:#x}: closing")
                if (length and (length % 4 or length > self.driver.gl_max_batch
                               or offset + length > self.arena_size)) or (
                        flags & SUBMIT_FENCE_IN and length < FENCE_CMD.size):
                    raise ValueError(f"a batch of {length} bytes at {offset} is outside "
                                     "its arena or too large: closing")
                with self.lock:
                    value = 0
                    wait = bool(flags & SUBMIT_WAIT)
                    if flags & SUBMIT_FENCE_IN:
                        # the process's own memory: a lie garbles only its batch
                        value = self.driver.gl_fence_value()
                        FENCE_CMD.pack_into(self.driver.buf,
                                            slot.offset + offset + length - FENCE_CMD.size,
                                            _FENCE_HEADER, value & 0xFFFFFFFF, value >> 32,
                                            lib.VGPU_3D_FENCE_INTERRUPT if wait else 0)
                    if length:
                        self.driver.gl_push(slot.offset + offset, length)
                    if flags & SUBMIT_FENCE:
                        value = self.driver.gl_fence(interrupt=wait)
                if flags & SUBMIT_WAIT and not self.driver.gl_wait_fence(value, FENCE_WAIT_S):
                    raise ValueError(f"fence {value} did not complete in {FENCE_WAIT_S} s")
                if flags:
                    conn.sendall(FENCE_VALUE.pack(value))

    def _release(self, slot: _Slot) -> None:
        """Destroys what the departed process left and lends its arena again once the
        device is done with it."""
        ids = range(1 + slot.index * IDS_PER_CLIENT, 1 + (slot.index + 1) * IDS_PER_CLIENT)
        batch = b"".join(struct.pack("<II", _DESTROY_CTX, i) for i in ids)
        batch += b"".join(struct.pack("<II", _DESTROY_SURFACE, i) for i in ids)
        try:
            with self.lock:
                self.driver.gl_submit(batch)
                value = self.driver.gl_fence(interrupt=True)
            if not self.driver.gl_wait_fence(value, FENCE_WAIT_S):
                log.warning("GL client %d: its last work did not finish; its arena is "
                            "not lent again", slot.index)
                return
        except Exception as exc:  # the device reported a guest bug: nothing is lent again
            log.warning("GL client %d: cleaning up failed: %s", slot.index, exc)
            return
        slot.busy = False
