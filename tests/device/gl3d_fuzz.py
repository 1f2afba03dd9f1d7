"""Hostile 3D ring traffic: the cases and their checks, shared by test_gl3d_fuzz.py
(hypothesis draws the choices, so a failure shrinks) and `vgpu bench gl3d_fuzz` (a seeded
random.Random, for runs of 100,000 cases and more).

Each case starts from a reset device with a primary, then does one to three hostile
things on the 3D ring: batches of random words; batches of commands encoded from the
glwire table with interesting values, lying counts and lengths, other contexts' names,
blobs and answers at bad addresses, then cut or mutated; bad ring items (sizes, flags,
addresses); a corrupted ring index; fences that go backwards. After each case: nothing
escaped, the device made no internal error and its backend no error, a device in the
guest-bug state raised ERROR and got there only from a bad item or a corrupt ring (what a
batch says is never the device's guest bug), and a device that is not in it still
completes a fence and draws on the 2D ring.

The backend is the GL renderer with its 3D executor when `Gl3dRig(gl=True)` (the
executor then parses and runs every batch); else one that runs only FENCE, as the
device's backends without GL do.
"""

from __future__ import annotations

import struct

from fuzz_draw import Draw, run_actions
from qxl_support import RecordingBackend

from vgpu.device import commands as c
from vgpu.device import glwire
from vgpu.device.abi import lib, offsetof
from vgpu.device.device import GL_MAX_BATCH, Device
from vgpu.device.inprocess import InProcessAttachment
from vgpu.device.memory import GuestBug
from vgpu.guest.alloc import OutOfMemory
from vgpu.guest.driver import GuestDriver


def pick(draw: Draw, options: list):
    return options[draw.integer(0, len(options) - 1)]


M32 = 0xFFFFFFFF
INTERESTING = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFE, M32, 0x1406, 0x8892, 0x0DE1, 0x8D40]
"""Words that break decoders: zero, sign bits, just-too-large counts, and a few GL enums
(GL_FLOAT, GL_ARRAY_BUFFER, GL_TEXTURE_2D, GL_FRAMEBUFFER) so calls get past enum checks."""

NAMES = [0, 1, 2, 3, 7, 100, 65535, 65536, M32]
"""Object names: the ones the prologue makes in context 1 and 2 (1-3), never-made ones,
the quota's edge, and beyond."""

MAX_WORDS = 2048
"""Words in one generated batch at most: long enough for many commands, short enough
that a case stays cheap."""

VGPU = glwire.VGPU_COMMANDS
GL = [cmd for cmd in glwire.commands() if cmd.excluded is None]
MAX_OPCODE = glwire.GL_OPCODE_BASE + len(glwire.commands())


def header(opcode: int, words: int) -> int:
    return (opcode & 0xFFFF) | (words & 0xFFFF) << 16


def vgpu_cmd(name: str, *args: int) -> list[int]:
    opcode, words = VGPU[name]
    body = list(args)
    if name == "PRESENT":
        words += 4 * body[8]
    assert len(body) == words, name
    return [header(opcode, words), *body]


def fence(value: int, flags: int = lib.VGPU_3D_FENCE_INTERRUPT) -> list[int]:
    return vgpu_cmd("FENCE", value & M32, value >> 32, flags)


def prologue(surface_w: int = 32, surface_h: int = 32) -> list[int]:
    """Two contexts (2 shares with 1), a surface, context 1 current; objects 1-3 named in
    both contexts' tables, so other contexts' names are at hand."""
    words = vgpu_cmd("CONTEXT_CREATE", 1, 3, 0) + vgpu_cmd("CONTEXT_CREATE", 2, 3, 0)
    words += vgpu_cmd("SURFACE_CREATE", 1, surface_w, surface_h, lib.VGPU_3D_SURFACE_DEPTH, 0)
    by_name = glwire.by_name()
    for ctx in (2, 1):
        words += vgpu_cmd("MAKE_CURRENT", ctx, 1)
        for call in ("glGenBuffers", "glGenTextures", "glGenFramebuffers"):
            cmd = by_name[call]
            words += [header(cmd.opcode, 4), 3, 1, 2, 3]
    return words


class Gl3dRig:
    """One device and one inline guest, reset before every case."""

    def __init__(self, gl: bool = False) -> None:
        if gl:
            from vgpu.render import Renderer

            backend = Renderer()
        else:
            backend = RecordingBackend()
        self.gl = gl
        self.backend = backend
        self.device = Device(backend, ram_size=8 << 20, vram_size=1 << 20, n_surfaces=16)
        # inline: every IO completes before io_write returns
        self.guest = GuestDriver(InProcessAttachment(self.device, inline=True),
                                 irq_timeout=0.01, gl_batch_memory=256 * 1024,
                                 gl_data_memory=256 * 1024)
        self.cases = 0
        self.batches = 0  # hostile batches and items put on the ring
        self.bug_allowed = False  # a bad item or a corrupt ring index came in this case
        self.guest_saw_error = False
        self._fence = 1 << 40

    def fresh(self) -> None:
        self.guest_saw_error = False
        self.bug_allowed = False
        if isinstance(self.backend, RecordingBackend):  # what it remembers, forgotten
            self.backend.batches.clear()
            self.backend.executed.clear()
            self.backend.calls.clear()
        self.guest.reset()
        self.guest.create_primary(64, 48)
        assert self.device.guest_bug is None, self.device.guest_bug  # sane again
        submit(self, prologue())

    def check(self) -> None:
        dev = self.device
        assert dev.internal_errors == 0
        assert dev.backend_errors == 0
        if dev.guest_bug is not None:
            assert self.bug_allowed, f"a guest bug from a batch's content: {dev.guest_bug}"
            pending = struct.unpack_from("<I", dev.mem.mm, dev._hdr + offsetof(
                "QXLRam", "int_pending"))[0]
            assert (pending | self.guest._pending_irqs) & lib.QXL_INTERRUPT_ERROR \
                or self.guest_saw_error
        else:
            # the 3D ring still completes fences, the 2D ring still draws. A guest that
            # corrupted its copy of cons (which only the device writes) sees it right again
            ring = self.guest.gl_ring
            assert ring is not None
            ring.set("cons", dev.rings[2].ring.own)
            self._fence += 1
            submit(self, fence(self._fence))
            assert self.guest.gl_completed() == self._fence, "a fence did not complete"
            drawn = dev.stats["commands"]
            self.guest.submit(c.Drawable(bbox=c.QRect(0, 0, 8, 8), op=FILL))
            assert dev.stats["commands"] == drawn + 1 and dev.guest_bug is None
        self.cases += 1


FILL = c.Fill(c.SolidBrush(0xFF), 8, c.QMask(0, c.QPoint(0, 0), None))


def submit(rig: Gl3dRig, words: list[int]) -> None:
    if not words:
        return
    rig.guest.gl_submit(struct.pack(f"<{len(words)}I", *(w & M32 for w in words)))


# --- batch contents -------------------------------------------------------------------


def _word(draw: Draw) -> int:
    how = draw.integer(0, 3)
    if how == 0:
        return draw.integer(0, M32)
    if how == 1:
        return struct.unpack("<I", struct.pack("<f", draw.fraction() * 4 - 2))[0]
    return pick(draw, INTERESTING)


def _address(rig: Gl3dRig, draw: Draw, length: int) -> tuple[int, int]:
    """A QXL address (lo, hi words): valid guest data, near the slot's end, another
    slot's, or anything."""
    g = rig.guest
    how = draw.integer(0, 4)
    if how <= 1:
        addr = g.gl_data(bytes(max(length, 1)) if how else draw.binary(1, 64))
    elif how == 2:
        addr = g.phys(g.layout.ram_offset + g.rom.ram_header_offset - draw.integer(0, 64))
    elif how == 3:
        addr = g.phys(g.layout.vram_offset + draw.integer(0, 1 << 20))
    else:
        addr = draw.integer(0, 2**64 - 1)
    return addr & M32, addr >> 32


def _count(expr: str | None, values: dict[str, int], draw: Draw) -> int:
    """How many words a names/array parameter has: its registry length expression over
    the words chosen so far, or a small number where that is not a plain expression."""
    if expr is None:
        return draw.integer(0, 4)
    base, _, times = expr.partition("*")
    n = values.get(base, int(base) if base.isdigit() else draw.integer(0, 4))
    return min(n * (int(times) if times.isdigit() else 1), 64)


def gl_command(rig: Gl3dRig, draw: Draw) -> list[int]:
    """One GL command encoded by its glwire kinds, with hostile values; now and then a
    count that lies about the words that follow."""
    cmd = pick(draw, GL)
    body: list[int] = []
    values: dict[str, int] = {}
    for p in cmd.params:
        if p.kind == "word":
            small = draw.integer(0, 2) == 0
            v = draw.integer(0, 5) if small else _word(draw)
            values[p.name] = v
            body.append(v)
        elif p.kind in ("wide", "offset"):
            v = pick(draw, [0, 4, 64, 1 << 31, 2**63, 2**64 - 1]) if draw.integer(0, 1) else \
                draw.integer(0, 256)
            body += [v & M32, v >> 32]
        elif p.kind in ("name", "new_name"):
            body.append(pick(draw, NAMES))
        elif p.kind in ("names", "new_names", "array"):
            n = _count(p.count, values, draw)
            if draw.integer(0, 7) == 0:
                n = draw.integer(0, 70)  # the count word says something else
            body += [pick(draw, NAMES) if p.kind != "array" else _word(draw)
                     for _ in range(n)]
        elif p.kind in ("blob", "strings"):
            how = draw.integer(0, 3)
            if how == 0:
                body.append(M32)  # NULL
            elif how == 1:
                data = draw.binary(0, 64)
                n = len(data) if draw.integer(0, 3) else draw.integer(0, (1 << 31) - 1)
                body.append(n)
                padded = data + bytes(-len(data) % 4)
                body += struct.unpack(f"<{len(padded) // 4}I", padded)
            else:
                n = pick(draw, [0, 4, 64, 4096, 1 << 20, (1 << 31) - 1])
                body += [1 << 31 | n, *_address(rig, draw, min(n, 4096))]
        elif p.kind in ("out", "ret"):
            cap = pick(draw, [0, 1, 4, 16, 256, 1 << 20, M32])
            body += [*_address(rig, draw, min(cap, 4096)), cap]
        else:
            raise AssertionError(f"{cmd.name}: kind {p.kind}")
    return [header(cmd.opcode, len(body)), *body]


def vgpu_command(rig: Gl3dRig, draw: Draw) -> list[int]:
    name = pick(draw, sorted(VGPU))
    opcode, words = VGPU[name]
    if name == "PRESENT":
        n = draw.integer(0, 3) if draw.integer(0, 3) else _word(draw)
        args = [pick(draw, [*NAMES, 0, 0]), *(_word(draw) if draw.integer(0, 2) == 0 else
                                              draw.integer(0, 80) for _ in range(7)), n]
        rects = [draw.integer(0, 80) for _ in range(4 * min(n, 4))]
        return [header(opcode, words + len(rects)), *args, *rects]
    if name == "FENCE":
        rig._fence += 1
        value = rig._fence if draw.integer(0, 3) else draw.integer(0, 2**64 - 1)
        return fence(value, draw.integer(0, 3))
    args = [pick(draw, [0, 1, 2, 3, 63, 64, 65, M32]) if draw.integer(0, 1)
            else draw.integer(0, 128) for _ in range(words)]
    return [header(opcode, words), *args]


def command_batch(rig: Gl3dRig, draw: Draw) -> list[int]:
    words: list[int] = []
    for _ in range(1 + draw.integer(0, 11)):
        cmd = gl_command(rig, draw) if draw.integer(0, 3) else vgpu_command(rig, draw)
        if len(words) + len(cmd) > MAX_WORDS:
            break
        words += cmd
    return words


def mutate(words: list[int], draw: Draw) -> list[int]:
    """1-4 edits: a word set to anything, a header's length lying, a cut, a repeat."""
    words = list(words)
    for _ in range(1 + draw.integer(0, 3)):
        if not words:
            break
        at = draw.integer(0, len(words) - 1)
        kind = draw.integer(0, 4)
        if kind == 0:
            words[at] = _word(draw)
        elif kind == 1:
            words[at] = (words[at] & 0xFFFF) | draw.integer(0, 0xFFFF) << 16
        elif kind == 2:
            words = words[:at]  # truncated: a body runs past the end
        elif kind == 3:
            words[at] = header(draw.integer(0, MAX_OPCODE + 4), draw.integer(0, 8))
        else:
            words = words[:at] + words[at:][: draw.integer(0, 16)] * 2 + words[at:]
    return words[:MAX_WORDS]


# --- actions ------------------------------------------------------------------------


def random_batch(rig: Gl3dRig, draw: Draw) -> None:
    """Random words, often behind plausible headers."""
    raw = draw.binary(4, 1024)
    raw += bytes(-len(raw) % 4)
    words = list(struct.unpack(f"<{len(raw) // 4}I", raw))
    for _ in range(draw.integer(0, 8)):  # one draw of bytes, a few headers laid over it
        words[draw.integer(0, len(words) - 1)] = header(draw.integer(0, MAX_OPCODE),
                                                        draw.integer(0, 12))
    rig.batches += 1
    submit(rig, words)


def commands(rig: Gl3dRig, draw: Draw) -> None:
    """Commands of the table with hostile values, as they are or mutated."""
    words = command_batch(rig, draw)
    if draw.integer(0, 1):
        words = mutate(words, draw)
    rig.batches += 1
    submit(rig, words)


def bad_item(rig: Gl3dRig, draw: Draw) -> None:
    """A ring item pushed as is: address, size and flags from anywhere."""
    g = rig.guest
    ring = g.gl_ring
    assert ring is not None
    off = g.ram_alloc.alloc(4096)
    try:
        g.buf[off:off + 16] = struct.pack("<4I", *fence(1 << 50))
        addr = g.phys(off)
        how = draw.integer(0, 3)
        if how == 1:
            addr = draw.integer(0, 2**64 - 1)
        elif how == 2:
            addr = (addr + draw.integer(-64, 4096)) % 2**64
        size = pick(draw, [0, 1, 4, 16, 64, 4096, 4100, GL_MAX_BATCH, GL_MAX_BATCH + 4, M32]) \
            if draw.integer(0, 1) else draw.integer(0, 8192)
        flags = 0 if draw.integer(0, 2) else draw.integer(0, M32)
        try:
            rig.device.slots.translate(addr, size)
            translates = True
        except GuestBug:
            translates = False
        bad = flags != 0 or not 0 < size <= GL_MAX_BATCH or size % 4 or not translates
        rig.bug_allowed |= bool(bad)
        prod = ring.get("prod")
        struct.pack_into("<QII", g.buf, ring.item(prod), addr, size, flags)
        ring.set("prod", prod + 1)
        rig.batches += 1
        g.att.io_write(lib.VGPU_IO_NOTIFY_3D, 0)
        if bad:
            assert rig.device.guest_bug is not None, "a bad 3D item was taken"
    finally:
        g.ram_alloc.free(off)


def ring_corruption(rig: Gl3dRig, draw: Draw) -> None:
    """A 3D ring index or notify field set to anything, then the doorbell."""
    ring = rig.guest.gl_ring
    assert ring is not None
    field = pick(draw, ["prod", "cons", "notify_on_prod", "notify_on_cons", "num_items"])
    value = pick(draw, INTERESTING) if draw.integer(0, 1) else draw.integer(0, M32)
    # prod ahead of the device's cons: more than a ring is a guest bug; less pops the
    # stale items in those slots, which may be bad ones
    rig.bug_allowed |= field == "prod" and value != rig.device.rings[2].ring.own
    ring.set(field, value)
    rig.guest.att.io_write(lib.VGPU_IO_NOTIFY_3D, 0)


ACTIONS = [random_batch, commands, commands, bad_item, ring_corruption]


def run_case(rig: Gl3dRig, draw: Draw) -> None:
    """One case: a fresh device, one to three hostile actions, then the checks (the
    guest's own data memory filling within one case is its limit, not ours)."""
    run_actions(rig, draw, ACTIONS, tolerated=(OutOfMemory,))

