"""Hostile 3D batches: random, mutated and truncated batches through Renderer.execute_3d.
Nothing may escape (no exception, no crash, no write outside guest memory's answer area),
and afterwards the renderer still draws 2D and 3D correctly (compared with moderngl run
directly)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.render.gl3d_helpers import (
    FakeGuest,
    batch,
    enum,
    gl,
    triangle_draw,
    triangle_program,
    vgpu,
)
from tests.render.render_helpers import draw
from tests.render.test_gl3d import SCREEN, H, W, clear, reference_triangle, rgb, setup
from vgpu.device.commands import Fill, QMask, SolidBrush
from vgpu.render import enums as E

EXAMPLES = 3000  # about 15 s here (llvmpipe, 2 busy cores)
FUZZ_CTX = 9

GUARD = 1 << 16  # the memslot ends here: the memory after it must stay as it was


def seed_body(guest: FakeGuest) -> list[list[int]]:
    """A frame's worth of commands on context FUZZ_CTX, which shares context 1's program 3,
    buffer 10 and texture 4."""
    out = guest.alloc(64)
    pix = guest.alloc(16 * 16 * 4)
    ref = guest.alloc(64, bytes(range(64)))
    idx = np.array([0, 1, 2], np.uint16).tobytes()
    return [
        vgpu("CONTEXT_CREATE", FUZZ_CTX, 3, 1), vgpu("SURFACE_CREATE", FUZZ_CTX, 32, 32, 3, 0),
        vgpu("MAKE_CURRENT", FUZZ_CTX, FUZZ_CTX), *clear(),
        gl("glUseProgram", 3), gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
        gl("glVertexAttribPointer", 0, 2, enum("GL_FLOAT"), 0, 8, 0),
        gl("glEnableVertexAttribArray", 0), gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 2),
        gl("glGenBuffers", 1, [11]), gl("glBindBuffer", enum("GL_ELEMENT_ARRAY_BUFFER"), 11),
        gl("glBufferData", enum("GL_ELEMENT_ARRAY_BUFFER"), 6, idx, enum("GL_STATIC_DRAW")),
        gl("glDrawElements", enum("GL_TRIANGLES"), 3, enum("GL_UNSIGNED_SHORT"), 0),
        gl("glBindTexture", enum("GL_TEXTURE_2D"), 4),
        gl("glTexSubImage2D", enum("GL_TEXTURE_2D"), 0, 0, 0, 4, 4, enum("GL_RGBA"),
           enum("GL_UNSIGNED_BYTE"), ("ref", ref, 64)),
        gl("glTexParameteri", enum("GL_TEXTURE_2D"), enum("GL_TEXTURE_MIN_FILTER"),
           enum("GL_NEAREST")),
        gl("glEnable", enum("GL_BLEND")), gl("glBlendFunc", 1, 0x303),
        gl("glViewport", 0, 0, 16, 16), gl("glScissor", 0, 0, 8, 8),
        gl("glPixelStorei", enum("GL_PACK_ALIGNMENT"), 1),
        gl("glReadPixels", 0, 0, 16, 16, enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"),
           (pix, 16 * 16 * 4)),
        gl("glGetIntegerv", enum("GL_VIEWPORT"), (out, 16)),
        gl("glGetShaderInfoLog", 1, 64, (out, 4), (out + 4, 60)),
        gl("glGetUniformLocation", 3, b"u\0", (out, 4)),
        gl("glDeleteBuffers", 1, [11]), gl("glGetError", (out, 4)),
        gl("glGenVertexArrays", 1, [5]), gl("glBindVertexArray", 5),
        gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
        gl("glVertexAttribPointer", 1, 2, enum("GL_FLOAT"), 0, 8, 0),
        gl("glEnableVertexAttribArray", 1), gl("glVertexAttribDivisor", 1, 1),
        gl("glDrawArraysInstanced", enum("GL_TRIANGLES"), 0, 3, 2),
        gl("glGenFramebuffers", 1, [6]), gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
        gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"), enum("GL_COLOR_ATTACHMENT0"),
           enum("GL_TEXTURE_2D"), 4, 0),
        gl("glDeleteVertexArrays", 1, [5]), gl("glDeleteFramebuffers", 1, [6]),
        vgpu("PRESENT", 0, 0, 0, 32, 32, 0, 100, 80, 1, 100, 80, 8, 8),
        vgpu("FENCE", 5, 0, 1),
    ]


def mutate(words: list[int], edits: list[tuple[int, int]], cut: int | None) -> list[int]:
    w = list(words)
    for at, value in edits:
        w[at % len(w)] = value
    return w[: cut % (len(w) + 1)] if cut is not None else w


INTERESTING = st.sampled_from([0, 1, 2, 3, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                               0xFFFFFFFF, 0xFFFF0000, 0x8000_0010, 0x0100, 0x01FF,
                               1 << 20, 1 << 30])
WORD = st.one_of(INTERESTING, st.integers(0, 0xFFFFFFFF))


@pytest.fixture
def fuzz_screen(renderer, gl_ctx):
    renderer.create_primary(*SCREEN, SCREEN[0] * 4, E.SURFACE_FMT_32_xRGB, None)
    guest = FakeGuest(1 << 20, slot=GUARD)
    renderer.execute_3d(batch(*setup(), *triangle_program(), *triangle_draw(),
                              gl("glBindTexture", enum("GL_TEXTURE_2D"), 4),
                              gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), 8,
                                 8, 0, enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), None)),
                        guest)
    return renderer, guest


def test_hostile_batches_stay_inside(fuzz_screen, gl_ctx):
    renderer, guest = fuzz_screen
    seed = [w for c in seed_body(guest) for w in c]
    cleanup = batch(vgpu("MAKE_CURRENT", 0, 0),
                    *[vgpu("CONTEXT_DESTROY", i) for i in range(2, 65)],
                    *[vgpu("SURFACE_DESTROY", i) for i in range(2, 65)])
    tail_guard = np.random.default_rng(1).integers(0, 256, guest.size - GUARD, np.uint8)
    guest.mem[GUARD:] = tail_guard
    seen = {"cases": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["mutated", "mutated", "truncated", "random"]),
           edits=st.lists(st.tuples(st.integers(0, 1 << 16), WORD), min_size=1, max_size=6),
           cut=st.integers(0, 1 << 16), noise=st.lists(WORD, max_size=64))
    def case(kind, edits, cut, noise):
        if kind == "random":
            words = noise
        else:
            words = mutate(seed, edits if kind == "mutated" else [], cut
                           if kind == "truncated" else None)
        renderer.execute_3d(batch(words) if words else b"", guest)
        renderer.execute_3d(cleanup, guest)
        seen["cases"] += 1

    case()
    assert seen["cases"] == EXAMPLES
    # nothing was written outside the memslot
    np.testing.assert_array_equal(guest.mem[GUARD:], tail_guard)
    # the renderer still draws 2D correctly ...
    renderer.execute(draw(Fill(SolidBrush(0x00123456), E.ROPD_OP_PUT, QMask(0, 0, None)),
                          (0, 0, SCREEN[0], SCREEN[1])))
    assert (rgb(renderer.read_pixels(0)) == (0x12, 0x34, 0x56)).all()
    # ... and a fresh context draws 3D correctly
    fresh = FakeGuest()
    renderer.execute_3d(batch(vgpu("CONTEXT_CREATE", 30, 3, 0),
                              vgpu("SURFACE_CREATE", 30, W, H, 1, 0),
                              vgpu("MAKE_CURRENT", 30, 30), *clear(), *triangle_program(),
                              *triangle_draw(), vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0)),
                        fresh)
    np.testing.assert_array_equal(rgb(renderer.read_pixels(0, (0, 0, W, H))),
                                  reference_triangle(gl_ctx))
