"""Hand-built 3D ring batches (docs/3d-ring.md) for the executor's tests: commands encoded
from glwire's parameter kinds, and a Gl3dGuest over a numpy array standing for guest memory.
The guest library (vgpu/guest/gl.py) is the real encoder; this one is small on purpose, so a
test can also build what no library would send."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from vgpu.device import glwire

ID_BITS, GEN_BITS = 8, 8
GEN_SHIFT = 64 - ID_BITS - GEN_BITS


def enum(name: str) -> int:
    return glwire.enums()[name]


def _word(v: Any) -> int:
    if isinstance(v, float):
        return struct.unpack("<I", struct.pack("<f", v))[0]
    return int(v) & 0xFFFFFFFF


def _blob(v: Any) -> list[int]:
    if v is None:
        return [0xFFFFFFFF]
    if isinstance(v, tuple):  # ("ref", address, length)
        _, addr, n = v
        return [0x80000000 | n, addr & 0xFFFFFFFF, addr >> 32]
    data = bytes(v)
    padded = data + b"\0" * (-len(data) % 4)
    return [len(data), *struct.unpack(f"<{len(padded) // 4}I", padded)]


def gl(name: str, *args: Any) -> list[int]:
    """One GL command; args in glwire's parameter order: ints/floats for word kinds, ints
    for wide/offset, lists for names/arrays, bytes/None/("ref", addr, n) for blobs,
    (address, capacity) for out/ret."""
    cmd = glwire.by_name()[name]
    if len(args) != len(cmd.params):
        raise TypeError(f"{name} takes {[p.name for p in cmd.params]}")
    body: list[int] = []
    for p, v in zip(cmd.params, args, strict=True):
        if p.kind in ("word", "name", "new_name"):
            body.append(_word(v))
        elif p.kind in ("wide", "offset"):
            body += [v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF]
        elif p.kind in ("names", "new_names", "array"):
            body += [_word(x) for x in v]
        elif p.kind in ("blob", "strings"):
            body += _blob(v)
        else:  # out, ret
            addr, cap = v
            body += [addr & 0xFFFFFFFF, addr >> 32, cap]
    return [cmd.opcode | len(body) << 16, *body]


def vgpu(name: str, *args: int) -> list[int]:
    op, _ = glwire.VGPU_COMMANDS[name]
    return [op | len(args) << 16, *(a & 0xFFFFFFFF for a in args)]


def batch(*cmds: list[int]) -> bytes:
    words = [w for c in cmds for w in c]
    return struct.pack(f"<{len(words)}I", *words)


class FakeGuest:
    """Gl3dGuest over a numpy array: memslot 0 covers its first `slot` bytes (all of it by
    default; generation 0), so guest address == offset; fences and counters are recorded."""

    def __init__(self, size: int = 1 << 20, slot: int | None = None) -> None:
        self.mem = np.zeros(size, np.uint8)
        self.base = self.mem.ctypes.data
        self.size = size
        self.slot = size if slot is None else slot
        self.fences: list[tuple[int, bool]] = []
        self.counts: dict[str, int] = {"errors": 0, "lost_contexts": 0}
        self._next = 4096  # answers and data go from here

    def slot_table(self) -> tuple[int, int, list[tuple[int, int, int] | None]]:
        return ID_BITS, GEN_BITS, [(0, self.slot, 0)]

    def translate(self, addr: int, length: int) -> int | None:
        return addr if addr >= 0 and addr + length <= self.slot else None

    def fence(self, value: int, interrupt: bool) -> None:
        self.fences.append((value, interrupt))

    def signal(self) -> None:
        pass  # no interrupt line: fences are recorded as they come

    def count(self, what: str) -> None:
        self.counts[what] += 1

    def alloc(self, n: int, data: bytes = b"") -> int:
        """Guest memory for an answer or a referenced blob; returns its address."""
        at = self._next
        self._next += (n + 15) & ~15
        self.mem[at : at + n] = 0
        if data:
            self.mem[at : at + len(data)] = np.frombuffer(data, np.uint8)
        return at

    def u32(self, addr: int) -> int:
        return int(self.mem[addr : addr + 4].view(np.uint32)[0])


def triangle_program(prog: int = 3, vs: int = 1, fs: int = 2,
                     color: tuple[float, float, float, float] = (1.0, 0.5, 0.0, 1.0)
                     ) -> list[list[int]]:
    """Commands making and using a program that draws attribute 0 (vec2) in `color`."""
    vsrc = b"#version 330\nin vec2 pos;\nvoid main() { gl_Position = vec4(pos, 0.0, 1.0); }\n"
    r, g, b, a = color
    fsrc = f"#version 330\nout vec4 c;\nvoid main() {{ c = vec4({r}, {g}, {b}, {a}); }}\n".encode()
    return [
        gl("glCreateShader", vs, enum("GL_VERTEX_SHADER")),
        gl("glShaderSource", vs, 1, vsrc),
        gl("glCompileShader", vs),
        gl("glCreateShader", fs, enum("GL_FRAGMENT_SHADER")),
        gl("glShaderSource", fs, 1, fsrc),
        gl("glCompileShader", fs),
        gl("glCreateProgram", prog),
        gl("glAttachShader", prog, vs),
        gl("glAttachShader", prog, fs),
        gl("glBindAttribLocation", prog, 0, b"pos\0"),
        gl("glLinkProgram", prog),
        gl("glUseProgram", prog),
    ]


TRIANGLE = np.array([-0.8, -0.8, 0.8, -0.6, 0.0, 0.9], np.float32)


def triangle_draw(buf: int = 10, vertices: np.ndarray = TRIANGLE) -> list[list[int]]:
    data = vertices.tobytes()
    return [
        gl("glGenBuffers", 1, [buf]),
        gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), buf),
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), len(data), data, enum("GL_STATIC_DRAW")),
        gl("glVertexAttribPointer", 0, 2, enum("GL_FLOAT"), 0, 0, 0),
        gl("glEnableVertexAttribArray", 0),
        gl("glDrawArrays", enum("GL_TRIANGLES"), 0, len(vertices) // 2),
    ]
