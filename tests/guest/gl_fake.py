"""A stand-in for the guest driver's 3D primitives, and a reader of batches for tests.

`FakeRing` collects the batches `vgpu.guest.gl` submits and reads every command back with
`read_batch`, a decoder written from docs/3d-ring.md's parameter kinds (not from the
encoder): each command's body must be exactly what its parameters take. At a fence it
answers `out`/`ret` references with what a test put in `answers` (by GL call), so programs
link without a host. It never draws: pictures come from the real executor's tests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vgpu.device import glwire

_NONE = glwire.Command("", 0, "void", (), (), None)
REPLY_BASE = 0x1_0000_0000
DATA_BASE = 0x2_0000_0000


@dataclass
class Cmd:
    name: str
    args: dict[str, Any]


def _count(expr: str, values: dict[str, Any]) -> int:
    """A registry `len` like 'n', 'count*16' or 'uniformCount' from the decoded values."""
    total = 1
    for factor in expr.split("*"):
        total *= int(factor) if factor.isdigit() else int(values[factor])
    return total


def read_batch(batch: bytes, data: dict[int, bytes]) -> list[Cmd]:
    """Every command of a batch, its parameters decoded by kind; raises AssertionError when
    a body is not exactly what its parameters need."""
    words = struct.unpack(f"<{len(batch) // 4}I", batch)
    assert len(batch) % 4 == 0
    by_op = {c.opcode: c for c in glwire.commands()}
    vgpu = {op: (name, n) for name, (op, n) in glwire.VGPU_COMMANDS.items()}
    out: list[Cmd] = []
    i = 0
    while i < len(words):
        op, body = words[i] & 0xFFFF, words[i] >> 16
        i += 1
        end = i + body
        assert end <= len(words), f"opcode {op:#x} runs past the batch"
        if op in vgpu:
            name, n = vgpu[op]
            args = list(words[i:end])
            assert len(args) == n + (4 * args[8] if name == "PRESENT" else 0), name
            out.append(Cmd(name, {"words": args}))
            i = end
            continue
        cmd = by_op[op]
        assert cmd.excluded is None, cmd.name
        values: dict[str, Any] = {}
        for p in cmd.params:
            if p.kind in ("word", "name", "new_name"):
                raw = words[i]
                values[p.name] = struct.unpack("<f", struct.pack("<I", raw))[0] if (
                    "float" in p.ctype.lower() or "clampf" in p.ctype) else raw
                i += 1
            elif p.kind in ("wide", "offset"):
                values[p.name] = words[i] | words[i + 1] << 32
                i += 2
            elif p.kind in ("names", "new_names", "array"):
                n = _count(p.count or "1", values)
                values[p.name] = list(words[i:i + n])
                i += n
            elif p.kind in ("blob", "strings"):
                w0 = words[i]
                i += 1
                if w0 == 0xFFFFFFFF:
                    values[p.name] = None
                elif w0 & 1 << 31:
                    addr = words[i] | words[i + 1] << 32
                    i += 2
                    values[p.name] = data[addr][:w0 & 0x7FFFFFFF]
                else:
                    values[p.name] = batch[4 * i:4 * i + w0]
                    i += (w0 + 3) // 4
            else:  # out, ret
                values[p.name] = (words[i] | words[i + 1] << 32, words[i + 2])
                i += 3
        assert i == end, f"{cmd.name}: body of {body} words, parameters took {i - end + body}"
        out.append(Cmd(cmd.name, values))
    return out


@dataclass(eq=False)  # hashable by identity, as a driver is
class FakeRing:
    """gl_submit / gl_submit_fence / gl_wait_fence / gl_reply / gl_data, recorded."""

    answer: Callable[[Cmd], bytes | None] = lambda cmd: None
    """Answers a command with one out/ret reference (None: nothing written)."""
    active: Callable[[Cmd], tuple[str, int, int]] | None = None
    """Answers glGetActiveUniform/glGetActiveAttrib: (name, size, type)."""
    batches: list[bytes] = field(default_factory=list)
    commands: list[Cmd] = field(default_factory=list)
    fences: list[int] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)
    completed: int = 0
    auto_complete: bool = True
    data: dict[int, bytes] = field(default_factory=dict)
    replies: dict[int, bytearray] = field(default_factory=dict)

    def gl_available(self) -> bool:
        return True

    def gl_submit(self, batch: bytes | memoryview) -> None:
        batch = bytes(batch)
        assert 0 < len(batch) <= 4 << 20 and len(batch) % 4 == 0
        self.batches.append(batch)
        for cmd in read_batch(batch, self.data):
            self.commands.append(cmd)
            if cmd.name in ("glGetActiveUniform", "glGetActiveAttrib"):
                self._active(cmd)
                continue
            outs = [p.name for p in glwire.by_name().get(cmd.name, _NONE).params
                    if p.kind in ("out", "ret")]
            payload = self.answer(cmd) if len(outs) == 1 else None
            if payload is not None:
                self._write(cmd.args[outs[0]], payload)

    def _write(self, ref: tuple[int, int], payload: bytes) -> None:
        addr, cap = ref
        self.replies[addr][:min(cap, len(payload))] = payload[:cap]

    def _active(self, cmd: Cmd) -> None:
        if self.active is None:
            return
        name, size, gltype = self.active(cmd)
        self._write(cmd.args["length"], struct.pack("<i", len(name)))
        self._write(cmd.args["size"], struct.pack("<i", size))
        self._write(cmd.args["type"], struct.pack("<I", gltype))
        self._write(cmd.args["name"], name.encode() + b"\0")

    def gl_submit_fence(self, batch: bytes | memoryview, interrupt: bool = True) -> int:
        """The batch with a FENCE at its end, as the driver submits it: one batch."""
        value = (self.fences[-1] if self.fences else 0) + 1
        op, words = glwire.VGPU_COMMANDS["FENCE"]
        self.gl_submit(bytes(batch) + struct.pack("<4I", op | words << 16, value & 0xFFFFFFFF,
                                                  value >> 32, int(interrupt)))
        self.fences.append(value)
        if self.auto_complete:
            self.completed = value
        return value

    def gl_wait_fence(self, value: int, timeout: float | None = None, *,
                      paced: bool = False) -> bool:
        self.waits.append(value)
        self.completed = max(self.completed, value)
        return True

    def gl_reply(self, nbytes: int) -> tuple[int, memoryview]:
        addr = REPLY_BASE + sum(len(b) for b in self.replies.values()) + 16 * len(self.replies)
        self.replies[addr] = bytearray(nbytes)
        return addr, memoryview(self.replies[addr])

    def gl_data(self, data: bytes) -> int:
        addr = DATA_BASE + sum(len(b) for b in self.data.values()) + 16 * len(self.data)
        self.data[addr] = bytes(data)
        return addr

    def named(self, name: str) -> list[Cmd]:
        return [c for c in self.commands if c.name == name]
