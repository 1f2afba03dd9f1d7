"""Raster operations as ROP3 codes.

Every raster operation is carried as a Windows ROP3 code: bit ((P << 2) | (S << 1) | D) of the
code is the result for pattern/brush bit P, source bit S and destination bit D, applied to
every bit of the raw pixel values (as spice-common's rop3.c does). The two-input operations
that rop descriptors select (the SPICE_ROP_* / X11 GX functions) become the ROP3 code over
the two inputs they combine.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from vgpu.render import enums as E
from vgpu.render.errors import RenderError

# Which ROP3 input a descriptor's operand is.
P, S, D = 2, 1, 0

ROP3_NOOP = 0xAA  # D
ROP3_SRCCOPY = 0xCC  # S
ROP3_PATCOPY = 0xF0  # P
ROP3_BLACKNESS = 0x00
ROP3_WHITENESS = 0xFF
ROP3_DSTINVERT = 0x55


def rop3_of(fn: Callable[[int, int], int], a: int, b: int) -> int:
    """The ROP3 code of fn(input a, input b) with fn on single bits."""
    code = 0
    for i in range(8):
        code |= (fn((i >> a) & 1, (i >> b) & 1) & 1) << i
    return code


def _binary(desc: int) -> Callable[[int, int], int] | int:
    """A rop descriptor as a function of (src, dest) bits, or a constant ROP3 code for
    BLACKNESS/WHITENESS/INVERS (spice-common canvas_base.c ropd_descriptor_to_rop)."""
    inv_s = 1 if desc & E.ROPD_INVERS_SRC else 0
    inv_d = 1 if desc & E.ROPD_INVERS_DEST else 0
    inv_r = 1 if desc & E.ROPD_INVERS_RES else 0
    if desc & E.ROPD_OP_PUT:
        return lambda s, d: s ^ inv_s ^ inv_r
    if desc & E.ROPD_OP_OR:
        return lambda s, d: ((s ^ inv_s) | (d ^ inv_d)) ^ inv_r
    if desc & E.ROPD_OP_AND:
        return lambda s, d: ((s ^ inv_s) & (d ^ inv_d)) ^ inv_r
    if desc & E.ROPD_OP_XOR:
        return lambda s, d: ((s ^ inv_s) ^ (d ^ inv_d)) ^ inv_r
    if desc & E.ROPD_OP_BLACKNESS:
        return ROP3_BLACKNESS
    if desc & E.ROPD_OP_WHITENESS:
        return ROP3_WHITENESS
    if desc & E.ROPD_OP_INVERS:
        return -1  # NOT dest, placed by the caller
    return lambda s, d: s


def descriptor_to_rop3(desc: int, src_role: int, src_invert: int, dest_role: int,
                       dest_invert: int) -> int:
    """A rop descriptor as a ROP3 code.

    src_role/dest_role say which ROP3 input plays the descriptor's "src" and "dest" operand;
    src_invert/dest_invert say which descriptor INVERS bit applies to each (for a FILL the
    brush is the src operand and INVERS_BRUSH inverts it)."""
    if desc < 0:
        raise RenderError(f"unknown rop descriptor {desc:#x}")
    desc &= E.ROPD_MASK  # the canvas's ropd_descriptor_to_rop tests the known bits only
    norm = desc & ~(E.ROPD_INVERS_SRC | E.ROPD_INVERS_BRUSH | E.ROPD_INVERS_DEST)
    if desc & src_invert:
        norm |= E.ROPD_INVERS_SRC
    if desc & dest_invert:
        norm |= E.ROPD_INVERS_DEST
    fn = _binary(norm)
    if fn == -1:
        return rop3_of(lambda a, b: b ^ 1, src_role, dest_role)
    if isinstance(fn, int):
        return fn
    return rop3_of(fn, src_role, dest_role)


@lru_cache(maxsize=4096)  # every descriptor value fits: the conversion runs once each
def brush_dest_rop3(desc: int) -> int:
    """FILL, STROKE and TEXT modes: the brush against the destination."""
    return descriptor_to_rop3(desc, P, E.ROPD_INVERS_BRUSH, D, E.ROPD_INVERS_DEST)


@lru_cache(maxsize=4096)
def src_dest_rop3(desc: int) -> int:
    """COPY and BLEND: the source image against the destination."""
    return descriptor_to_rop3(desc, S, E.ROPD_INVERS_SRC, D, E.ROPD_INVERS_DEST)


@lru_cache(maxsize=4096)
def brush_src_rop3(desc: int) -> int:
    """OPAQUE: the brush against the (just copied) source image."""
    return descriptor_to_rop3(desc, P, E.ROPD_INVERS_BRUSH, S, E.ROPD_INVERS_SRC)


@lru_cache(maxsize=1024)  # 256 codes x 3 roles: asked once per image operation
def uses(code: int, role: int) -> bool:
    """Whether the result of ROP3 `code` depends on input `role`."""
    bit = 1 << role
    return any(((code >> i) & 1) != ((code >> (i ^ bit)) & 1) for i in range(8))


@lru_cache(maxsize=256)
def twice(code: int) -> int:
    """The ROP3 that applying `code` twice to the destination amounts to (its source and
    pattern unchanged): what a pixel that a stroke covers twice gets from the canvas."""
    out = 0
    for i in range(8):
        d1 = (code >> i) & 1
        out |= ((code >> ((i & ~1) | d1)) & 1) << i
    return out
