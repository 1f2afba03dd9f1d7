"""Rop descriptors and ROP3 codes (no GL): the renderer's derived ROP3 codes against the
reference's literal transcription of spice-common's decision tree."""

from __future__ import annotations

import numpy as np
import pytest

from vgpu.render import RenderError, reference, rops
from vgpu.render import enums as E

P = np.array([0xF0], np.uint32)
S = np.array([0xCC], np.uint32)
D = np.array([0xAA], np.uint32)


def _apply_code(code: int) -> int:
    return int(reference.rop3(code, P, S, D)[0]) & 0xFF


def test_rop3_minterms_reproduce_code():
    # With the classic P=F0, S=CC, D=AA inputs every ROP3 code evaluates to itself.
    for code in range(256):
        assert _apply_code(code) == code


@pytest.mark.parametrize(("make", "a", "b", "roles"), [
    (rops.brush_dest_rop3, reference.INPUT_BRUSH, reference.INPUT_DEST, (P, D)),
    (rops.src_dest_rop3, reference.INPUT_SRC, reference.INPUT_DEST, (S, D)),
    (rops.brush_src_rop3, reference.INPUT_BRUSH, reference.INPUT_SRC, (P, S)),
])
def test_every_descriptor_matches_spice_common(make, a, b, roles):
    x, y = roles
    for desc in range(E.ROPD_MASK + 1):
        code = make(desc)
        want = reference._ROPS[reference.ropd_to_rop(desc, a, b)](x, y)[0] & 0xFF
        assert _apply_code(code) == want, hex(desc)


def test_unknown_descriptor_bits_ignored_as_the_canvas_does():
    # ropd_descriptor_to_rop (spice-common) tests the known bits only; the field is a uint16
    for desc in range(E.ROPD_MASK + 1):
        assert rops.src_dest_rop3(desc | 0xF800) == rops.src_dest_rop3(desc)
    assert rops.src_dest_rop3(1 << 11) == rops.ROP3_SRCCOPY  # no operation bit: COPY
    with pytest.raises(RenderError):
        rops.src_dest_rop3(-1)


def test_uses():
    assert rops.uses(0xCC, rops.S) and not rops.uses(0xCC, rops.D)
    assert rops.uses(0x66, rops.D) and not rops.uses(0x66, rops.P)
    assert not any(rops.uses(c, r) for c in (0x00, 0xFF) for r in (rops.P, rops.S, rops.D))
