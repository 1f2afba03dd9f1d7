"""A process that speaks the guest's 3D socket badly (for tests/gles): a batch outside
its arena, an unknown message, garbage batches, then a close in the middle of a message."""

import os
import random
import socket
import struct

HELLO = struct.Struct("<12Q")
SUBMIT = struct.Struct("<IIQQ")


def connect() -> tuple[socket.socket, tuple[int, ...], int]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["VGPU_GL_SOCKET"])
    data, fds, _, _ = socket.recv_fds(s, HELLO.size, 1)
    return s, HELLO.unpack(data), fds[0]


def closed_by_guest(s: socket.socket) -> bool:
    s.settimeout(10)
    return s.recv(1) == b""


s, hello, fd = connect()
arena_size = hello[3]
s.sendall(SUBMIT.pack(1, 0, arena_size - 4, 64))  # runs past its arena
print("outside arena closed:", closed_by_guest(s))
s, hello, fd2 = connect()
s.sendall(SUBMIT.pack(9, 0, 0, 64))  # no such message
print("unknown message closed:", closed_by_guest(s))
s, hello, fd3 = connect()
rng = random.Random(15)
for _ in range(20):
    words = [rng.getrandbits(32) for _ in range(256)]
    os.pwrite(fd3, struct.pack("<256I", *words), hello[2])
    s.sendall(SUBMIT.pack(1, 0, 0, 1024))
s.sendall(SUBMIT.pack(1, 0, 0, 1024)[:10])  # dies in the middle of a message
s.close()
print("garbage sent")
