"""The 3D executor against moderngl run directly: hand-built batches through
Renderer.execute_3d, pictures read back from the QXL surface they were presented onto."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.render.gl3d_helpers import (
    TRIANGLE,
    FakeGuest,
    batch,
    enum,
    gl,
    triangle_draw,
    triangle_program,
    vgpu,
)
from tests.render.render_helpers import draw
from vgpu.device import glwire
from vgpu.device.commands import Fill, QMask, SolidBrush
from vgpu.render import enums as E

W, H = 64, 48  # the drawable
SCREEN = (160, 120)
CLEAR = (0.0, 0.0, 0.5, 1.0)
ORANGE = (1.0, 0.5, 0.0, 1.0)
GL_CONTEXT_LOST = 0x0507


def reference_triangle(ctx, vertices=TRIANGLE, color=ORANGE) -> np.ndarray:
    """The triangle drawn by moderngl itself: (H, W, 3) RGB, top row first."""
    r, g, b, a = color
    prog = ctx.program(
        vertex_shader="#version 330\nin vec2 pos;\n"
                      "void main() { gl_Position = vec4(pos, 0.0, 1.0); }\n",
        fragment_shader=f"#version 330\nout vec4 c;\n"
                        f"void main() {{ c = vec4({r}, {g}, {b}, {a}); }}\n")
    vbo = ctx.buffer(vertices.tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "2f", "pos")])
    tex = ctx.texture((W, H), 4)
    fbo = ctx.framebuffer(color_attachments=[tex])
    fbo.use()
    fbo.clear(*CLEAR)
    vao.render()
    out = np.frombuffer(fbo.read(components=4), np.uint8).reshape(H, W, 4)[::-1, :, :3].copy()
    for o in (fbo, tex, vao, vbo, prog):
        o.release()
    return out


def rgb(px: np.ndarray) -> np.ndarray:
    """Renderer.read_pixels' (B, G, R, A) channels as RGB."""
    return px[..., [2, 1, 0]]


def setup(ctx_id=1, surface=1, flags=1, samples=0) -> list[list[int]]:
    return [vgpu("CONTEXT_CREATE", ctx_id, 3, 0),
            vgpu("SURFACE_CREATE", surface, W, H, flags, samples),
            vgpu("MAKE_CURRENT", ctx_id, surface)]


def clear() -> list[list[int]]:
    return [gl("glClearColor", *CLEAR), gl("glClear", enum("GL_COLOR_BUFFER_BIT"))]


@pytest.fixture(params=["copy", "draw"])
def screen(renderer, request):
    """The renderer with a primary, presenting by copies where the GL can, or by drawing."""
    from vgpu.render.gl3d import Gl3dExecutor

    renderer.create_primary(*SCREEN, SCREEN[0] * 4, E.SURFACE_FMT_32_xRGB, None)
    renderer.gl3d = Gl3dExecutor(renderer, present_copy=request.param == "copy")
    return renderer


@pytest.mark.parametrize("samples", [0, 4])
def test_triangle_presented_matches_moderngl(screen, gl_ctx, samples):
    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    err = guest.alloc(4)
    screen.execute_3d(batch(*setup(samples=samples), *clear(), *triangle_program(),
                            *triangle_draw(), gl("glGetError", (err, 4)),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 30, 20, 0),
                            vgpu("FENCE", 7, 0, 1)), guest)
    assert guest.fences == [(7, True)]
    assert guest.u32(err) == 0
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    px = screen.read_pixels(0)
    got = rgb(px[20:20 + H, 30:30 + W])
    if samples:  # a resolved multisampled picture differs from moderngl's along edges only
        assert (np.abs(got.astype(int) - ref).max(axis=2) > 0).mean() < 0.05
    else:
        np.testing.assert_array_equal(got, ref)
    # nothing outside the destination changed, and the damage is the presented rect
    assert not px[:20].any() and not px[:, :30].any() and not px[20 + H:].any()
    assert screen.snapshot().damage[-1] == (30, 20, 30 + W, 20 + H)


def test_published_frames_keep_their_pixels_after_presents_and_draws(screen, gl_ctx):
    """A frame shares the renderer's host copy of the surface until the next write into
    it (no copy per frame): presents of all of the surface, of part of it and 2D draws
    after a frame leave that frame as it was published."""
    guest = FakeGuest()
    kept = []

    def keep() -> None:
        frame = screen.snapshot()
        assert frame is not None
        kept.append((frame, frame.pixels.copy()))

    keep()  # the host copy exists from here on
    full = [vgpu("CONTEXT_CREATE", 1, 3, 0), vgpu("SURFACE_CREATE", 1, *SCREEN, 1, 0),
            vgpu("MAKE_CURRENT", 1, 1)]
    for i, colour in enumerate([(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0)]):
        screen.execute_3d(batch(*(full if i == 0 else []), gl("glClearColor", *colour),
                                gl("glClear", enum("GL_COLOR_BUFFER_BIT")),
                                vgpu("PRESENT", 0, 0, 0, *SCREEN, 0, 0, 0, 0)), guest)
        keep()
    screen.execute_3d(batch(gl("glClearColor", 0.0, 0.0, 1.0, 1.0),
                            gl("glClear", enum("GL_COLOR_BUFFER_BIT")),
                            vgpu("PRESENT", 0, 0, 0, 32, 24, 0, 10, 10, 0)), guest)
    keep()
    screen.execute(draw(Fill(SolidBrush(0x00FF8000), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (40, 30, 140, 100)))
    keep()
    for frame, pixels in kept:
        np.testing.assert_array_equal(frame.pixels, pixels)
    assert all(not np.array_equal(a[1], b[1]) for a, b in itertools.pairwise(kept))
    assert guest.counts == {"errors": 0, "lost_contexts": 0}


def test_present_clips_flips_and_damages_only_rects(screen, gl_ctx):
    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    # the destination hangs off the right edge; one damage rect is listed
    dst_x, dst_y = SCREEN[0] - 40, 10
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, dst_x, dst_y, 1,
                                 dst_x + 8, dst_y + 4, 100, 20)), guest)
    px = screen.read_pixels(0)
    box = (dst_x + 8, dst_y + 4, SCREEN[0], dst_y + 24)
    np.testing.assert_array_equal(rgb(px[box[1]:box[3], box[0]:box[2]]),
                                  ref[4:24, 8:8 + box[2] - box[0]])
    px[box[1]:box[3], box[0]:box[2]] = 0
    assert not px.any()
    assert screen.last_damage == (box,)


def test_frames_carry_the_presents_destination_clipped_to_the_surface(screen, gl_ctx):
    """The stream planner's hint: where a present wrote (its destination on the surface),
    not the damage rect it listed; once a frame however often presented."""
    from vgpu.display import Present

    dst_x, dst_y = SCREEN[0] - 40, -10
    present = vgpu("PRESENT", 0, 0, 0, W, H, 0, dst_x & 0xFFFFFFFF, dst_y & 0xFFFFFFFF, 1,
                   dst_x + 8, 4, 10, 10)
    window = (dst_x, 0, SCREEN[0], dst_y + H)
    screen.execute_3d(batch(*setup(), *clear(), present, present), FakeGuest())
    first = screen.snapshot()
    assert first.presents == (Present(first.serial, window),)
    screen.execute_3d(batch(present), FakeGuest())
    second = screen.snapshot()
    assert second.presents == (*first.presents, Present(second.serial, window))
    screen.execute(draw(Fill(SolidBrush(0x00FF8000), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (0, 0, 4, 4)))
    assert screen.snapshot().presents == second.presents  # 2D damage is no present


def test_update_area_writes_presented_pixels_back(screen, gl_ctx):
    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    screen.read_area(0, _qrect(0, 0, *SCREEN))  # guest memory has everything so far
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 5, 6, 0)), guest)
    pieces = screen.read_area(0, _qrect(0, 0, *SCREEN))
    assert len(pieces) == 1
    rect, data = pieces[0]
    assert (rect.left, rect.top, rect.right, rect.bottom) == (5, 6, 5 + W, 6 + H)
    np.testing.assert_array_equal(rgb(data.reshape(H, W, 4)), ref)


def _qrect(x0, y0, x1, y1):
    from vgpu.device.commands import QRect
    return QRect(y0, x0, y1, x1)


def test_2d_and_3d_interleaved_on_one_surface(screen, gl_ctx):
    ref3d = reference_triangle(gl_ctx)
    guest = FakeGuest()
    fill = Fill(SolidBrush(0x00336699), E.ROPD_OP_PUT, QMask(0, 0, None))
    screen.execute(draw(fill, (0, 0, 100, 80)))
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 20, 10, 0)), guest)
    screen.execute(draw(Fill(SolidBrush(0x00FF0000), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (40, 30, 140, 100)))
    # a second frame of the same context: the state it left is still its own
    screen.execute_3d(batch(gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 90, 60, 0)), guest)
    expect = np.zeros((SCREEN[1], SCREEN[0], 3), np.uint8)
    expect[0:80, 0:100] = (0x33, 0x66, 0x99)
    expect[10:10 + H, 20:20 + W] = ref3d
    expect[30:100, 40:140] = (0xFF, 0, 0)
    expect[60:60 + H, 90:90 + W] = ref3d
    expect = expect[:SCREEN[1], :SCREEN[0]]
    np.testing.assert_array_equal(rgb(screen.read_pixels(0)), expect)


def test_frames_after_presents_equal_the_surface(screen, gl_ctx):
    """A present by copy writes the renderer's host copy of the surface as well (the frame
    for clients is read from it): with 2D draws over and under presents, partly
    overlapping, every frame equals the surface as the GL has it, alpha included."""
    guest = FakeGuest()
    surf = screen._surfaces[0]
    whole = (0, 0, *SCREEN)

    def frame_is_the_surface() -> None:
        frame = screen.snapshot()
        assert frame is not None
        truth = screen._read_now(surf, whole)
        np.testing.assert_array_equal(frame.pixels, truth)

    screen.snapshot()  # the host copy exists from here on
    screen.execute(draw(Fill(SolidBrush(0x00336699), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (0, 0, 100, 80)))
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 20, 10, 0)), guest)
    frame_is_the_surface()
    screen.execute(draw(Fill(SolidBrush(0x00FF0000), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (40, 30, 140, 100)))
    screen.execute_3d(batch(gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 90, 60, 2, 95, 65, 10, 10,
                                 120, 70, 30, 20)), guest)
    frame_is_the_surface()
    screen.execute_3d(batch(vgpu("PRESENT", 0, 0, 0, W, H, 0, 30, 50, 0)), guest)
    screen.execute(draw(Fill(SolidBrush(0x0000FF00), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (50, 55, 60, 70)))
    frame_is_the_surface()
    assert guest.counts == {"errors": 0, "lost_contexts": 0}


def test_2d_reads_see_presents_held_in_the_host_copy(screen, gl_ctx):
    """With a host copy of the surface, a present by copy onto the primary goes into its
    staging texture (Surface.staged), the host copy gets it when something wants the surface
    (Surface.ahead), and the texture when the GL next uses the surface: a 2D copy out of the
    presented rect and an XOR fill over it (both read the texture) see the 3D pixels,
    checked against moderngl's own triangle; a present wholly hidden by 2D keeps nothing
    staged or ahead of the 2D pixels."""
    from vgpu.device.commands import CopyBits, QPoint

    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    screen.snapshot()  # the host copy exists from here on
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 10, 10, 0)), guest)
    if screen.gl3d.present_copy:
        assert screen._surfaces[0].staged == [(10, 10, 10 + W, 10 + H)]
        assert not screen._surfaces[0].ahead
    screen.execute(draw(CopyBits(QPoint(10, 10)), (90, 60, 90 + W, 60 + H)))
    screen.execute(draw(Fill(SolidBrush(0x00FFFFFF), E.ROPD_OP_XOR, QMask(0, 0, None)),
                        (10, 10, 10 + W // 2, 10 + H)))
    assert not screen._surfaces[0].staged and not screen._surfaces[0].ahead
    px = rgb(screen.read_pixels(0))
    np.testing.assert_array_equal(px[60:60 + H, 90:90 + W], ref)
    np.testing.assert_array_equal(px[10:10 + H, 10:10 + W // 2], ref[:, :W // 2] ^ 0xFF)
    np.testing.assert_array_equal(px[10:10 + H, 10 + W // 2:10 + W], ref[:, W // 2:])
    # the frame for clients and the GL agree once the GL has the presents
    surf = screen._surfaces[0]
    frame = screen.snapshot()
    np.testing.assert_array_equal(frame.pixels, screen._read_now(surf, (0, 0, *SCREEN)))
    assert guest.counts == {"errors": 0, "lost_contexts": 0}


def test_a_present_read_at_once_lands_over_older_staged_ones(screen, gl_ctx):
    """A present from a renderbuffer is read at once, while one from a texture onto the
    primary waits in its staging texture (Surface.staged): an older staged present lands
    first, under the newer one, checked against moderngl's own triangle."""
    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    screen.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 20, 10, 0)), guest)
    surf = screen._surfaces[0]
    if screen.gl3d.present_copy:
        assert surf.staged == [(20, 10, 20 + W, 10 + H)]
    screen.execute_3d(batch(gl("glGenRenderbuffers", 1, [7]),
                            gl("glBindRenderbuffer", enum("GL_RENDERBUFFER"), 7),
                            gl("glRenderbufferStorage", enum("GL_RENDERBUFFER"),
                               enum("GL_RGBA8"), W // 2, H),
                            gl("glGenFramebuffers", 1, [6]),
                            gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
                            gl("glFramebufferRenderbuffer", enum("GL_FRAMEBUFFER"),
                               enum("GL_COLOR_ATTACHMENT0"), enum("GL_RENDERBUFFER"), 7),
                            gl("glClearColor", 0.0, 1.0, 0.0, 1.0),
                            gl("glClear", enum("GL_COLOR_BUFFER_BIT")),
                            vgpu("PRESENT", 6, 0, 0, W // 2, H, 0, 20 + W // 2, 10, 0)), guest)
    assert not surf.staged
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    px = rgb(screen.read_pixels(0))
    np.testing.assert_array_equal(px[10:10 + H, 20:20 + W // 2], ref[:, :W // 2])
    assert (px[10:10 + H, 20 + W // 2:20 + W] == (0, 255, 0)).all()


def test_presents_staged_in_c_are_the_python_ones(screen, gl_ctx):
    """PRESENTs from a guest framebuffer's RGBA8 texture onto the primary run inside
    g3_execute once the primary has its host copy and staging texture (g3_present_target):
    the same frame presented that way and then with the C path off (every PRESENT by
    Gl3dExecutor._present) gives the same pixels, damage, staged rects and presents, and
    the triangle is moderngl's own."""
    from vgpu._gl3d import lib

    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    fb_setup = [gl("glGenTextures", 1, [7]), gl("glBindTexture", enum("GL_TEXTURE_2D"), 7),
                gl("glTexStorage2D", enum("GL_TEXTURE_2D"), 1, enum("GL_RGBA8"), W, H),
                gl("glGenFramebuffers", 1, [6]),
                gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
                gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"),
                   enum("GL_COLOR_ATTACHMENT0"), enum("GL_TEXTURE_2D"), 7, 0)]
    screen.execute_3d(batch(*setup(), *triangle_program(), *fb_setup, *clear(),
                            *triangle_draw(), vgpu("PRESENT", 6, 0, 0, W, H, 0, 0, 0, 0)),
                      guest)
    neg = 0xFFFFFFFF  # -1
    frame = batch(*clear(), *triangle_draw(),
                  vgpu("PRESENT", 6, 0, 0, W, H, 0, 30, 20, 0),
                  vgpu("PRESENT", 6, 0, 0, W, H, 0, 100, 90, 2, 100, 90, 20, 10,
                       120, 100, 100, 100),
                  vgpu("PRESENT", 6, neg - 3, 2, W, H, 0, neg - 9, 70, 1, 0, 70, 40, 40),
                  vgpu("FENCE", 3, 0, 1))
    taken = []
    take = screen.gl3d._take_presented

    def counted() -> None:
        taken.append(int(screen.gl3d._presented.records))
        take()

    screen.gl3d._take_presented = counted
    fill = Fill(SolidBrush(0x00336699), E.ROPD_OP_PUT, QMask(0, 0, None))
    seen = []
    for c_path in (True, False):
        if not c_path:  # every PRESENT to Python from here on
            screen.gl3d._set_target = lambda: None
            lib.g3_present_target(screen.gl3d._host, 0, 0, 0, 0)
        screen.execute(draw(fill, (0, 0, *SCREEN)))
        screen.read_pixels(0)
        surf = screen._surfaces[0]
        screen._damage, presents, surf.presents = [], screen.gl3d.presents, []
        screen.execute_3d(frame, guest)
        screen._settle_3d()  # the notes a reader's entry point settles first
        seen.append((list(screen._damage), list(surf.staged), screen.last_damage,
                     screen.gl3d.presents - presents, [p.rect for p in surf.presents],
                     rgb(screen.read_pixels(0))))
    c, py = seen
    assert taken == ([3] if screen.gl3d.present_copy else [])
    assert c[:5] == py[:5] and c[3] == 3
    # the destinations clipped to the surface (the stream planner's hints)
    assert c[4] == [(30, 20, 30 + W, 20 + H), (100, 90, *SCREEN), (0, 70, W - 10, 70 + H)]
    np.testing.assert_array_equal(c[5], py[5])
    np.testing.assert_array_equal(c[5][20:20 + H, 30:30 + W], ref)
    assert guest.fences == [(3, True), (3, True)]
    assert guest.counts == {"errors": 0, "lost_contexts": 0}


def errors_after(screen, guest, *cmds) -> list[int]:
    """Runs cmds (each followed by glGetError) on context 1; the errors, in order."""
    outs = []
    body = []
    for c in cmds:
        outs.append(guest.alloc(4))
        body += [c, gl("glGetError", (outs[-1], 4))]
    screen.execute_3d(batch(*body), guest)
    return [guest.u32(o) for o in outs]


def test_errors_stay_with_their_context(screen, gl_ctx):
    guest = FakeGuest()
    screen.execute_3d(batch(*setup(), vgpu("CONTEXT_CREATE", 2, 3, 0),
                            vgpu("SURFACE_CREATE", 2, W, H, 0, 0)), guest)
    outside = guest.size + 64
    got = errors_after(
        screen, guest,
        gl("glUseProgram", 99),                                    # never made
        gl("glBindVertexArray", 5),                                # never generated
        gl("glGenBuffers", 1, [10]),
        gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), 100, b"12345678", enum("GL_STATIC_DRAW")),
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), 16, ("ref", outside, 16),
           enum("GL_STATIC_DRAW")),
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), 600 << 20, None, enum("GL_STATIC_DRAW")),
        gl("glEnable", 0x0B10),                                    # GL_POINT_SMOOTH: desktop
        gl("glBufferData", enum("GL_ARRAY_BUFFER"), 8, None, enum("GL_STATIC_DRAW")),
        gl("glVertexAttribPointer", 0, 2, enum("GL_FLOAT"), 0, 0, 0),
        gl("glEnableVertexAttribArray", 0),
        gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),            # reads past the buffer
        gl("glDrawArrays", enum("GL_POINTS"), 0, 1),
        gl("glDrawElements", enum("GL_TRIANGLES"), 3, enum("GL_UNSIGNED_SHORT"), 0),
        gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), 4, 4, 0,
           enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), bytes(64)),  # texture 0: refused
        gl("glBindTexture", enum("GL_TEXTURE_2D"), 7),
        gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), 4, 4, 0,
           enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), bytes(63)),  # one byte short
        gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), 4, 4, 0,
           enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), bytes(64)),
        gl("glPixelStorei", enum("GL_UNPACK_ROW_LENGTH"), 8),
        gl("glTexSubImage2D", enum("GL_TEXTURE_2D"), 0, 0, 0, 4, 4,
           enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), bytes(64)),  # rows of 8 pixels now
        gl("glTexParameteriv", enum("GL_TEXTURE_2D"), enum("GL_TEXTURE_MIN_FILTER"), b""),
    )
    IOP, IVAL, OOM, IENUM = (enum(n) for n in ("GL_INVALID_OPERATION", "GL_INVALID_VALUE",
                                               "GL_OUT_OF_MEMORY", "GL_INVALID_ENUM"))
    assert got == [IOP, IOP, 0, 0, IVAL, IVAL, OOM, IENUM, 0, 0, 0, IOP, 0, IOP, IOP, 0,
                   IVAL, 0, 0, IVAL, IVAL]
    # an unknown opcode loses context 1, once; context 2 goes on drawing
    lost_err = guest.alloc(4)
    screen.execute_3d(batch([0x0FFF], gl("glClear", enum("GL_COLOR_BUFFER_BIT")),
                            gl("glGetError", (lost_err, 4)),
                            vgpu("MAKE_CURRENT", 2, 2), *clear(), *triangle_program(),
                            *triangle_draw(), vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0),
                            vgpu("MAKE_CURRENT", 1, 1), gl("glGetError", (lost_err, 4))),
                      guest)
    assert guest.u32(lost_err) == GL_CONTEXT_LOST
    assert guest.counts["lost_contexts"] == 1
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (0, 0, W, H))),
                                  reference_triangle(gl_ctx))
    # a lost context is gone for good, and the id is free again once destroyed
    screen.execute_3d(batch(vgpu("CONTEXT_DESTROY", 1), vgpu("CONTEXT_CREATE", 1, 2, 2)), guest)
    assert guest.counts == {"errors": 0, "lost_contexts": 1}


def test_deleting_bound_containers_falls_back_to_the_guests_own(screen, gl_ctx):
    """A deleted bound vertex array or framebuffer leaves the guest's object 0 bound: its
    own vertex array 0 and its surface, as on ES."""
    guest = FakeGuest()
    err = guest.alloc(4)
    screen.execute_3d(batch(*setup(), *triangle_program(),
                            gl("glGenVertexArrays", 1, [5]), gl("glBindVertexArray", 5),
                            gl("glGenFramebuffers", 1, [6]),
                            gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
                            gl("glDeleteFramebuffers", 1, [6]),
                            gl("glDeleteVertexArrays", 1, [5]), *clear(), *triangle_draw(),
                            gl("glGetError", (err, 4)),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0)), guest)
    assert guest.u32(err) == 0
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (0, 0, W, H))),
                                  reference_triangle(gl_ctx))


def test_vgpu_command_refusals_are_counted(screen):
    guest = FakeGuest()
    screen.execute_3d(batch(vgpu("CONTEXT_CREATE", 1, 3, 0),
                            vgpu("CONTEXT_CREATE", 1, 3, 0),       # in use
                            vgpu("CONTEXT_CREATE", 65, 3, 0),      # out of range
                            vgpu("CONTEXT_CREATE", 2, 3, 9),       # no such share
                            vgpu("SURFACE_CREATE", 1, 0, 10, 0, 0),  # empty
                            vgpu("MAKE_CURRENT", 1, 4),            # no such surface
                            vgpu("PRESENT", 0, 0, 0, 1, 1, 0, 0, 0, 0),  # none current
                            vgpu("FENCE", 3, 0, 0)), guest)
    assert guest.counts == {"errors": 6, "lost_contexts": 0}
    assert guest.fences == [(3, False)]


def test_shared_objects_and_names_per_context(screen, gl_ctx):
    """Context 2 shares context 1's program and buffer; its vertex array 0 is its own."""
    guest = FakeGuest()
    err = guest.alloc(4)
    screen.execute_3d(batch(*setup(), *triangle_program(), *triangle_draw(),
                            vgpu("CONTEXT_CREATE", 2, 3, 1),
                            vgpu("CONTEXT_CREATE", 3, 3, 0),
                            vgpu("MAKE_CURRENT", 3, 1), gl("glUseProgram", 3),
                            gl("glGetError", (err, 4))), guest)
    assert guest.u32(err) == enum("GL_INVALID_OPERATION")  # not shared with 3
    screen.execute_3d(batch(vgpu("MAKE_CURRENT", 2, 1), *clear(), gl("glUseProgram", 3),
                            gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 10),
                            gl("glVertexAttribPointer", 0, 2, enum("GL_FLOAT"), 0, 0, 0),
                            gl("glEnableVertexAttribArray", 0),
                            gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),
                            gl("glGetError", (err, 4)),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0)), guest)
    assert guest.u32(err) == 0
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (0, 0, W, H))),
                                  reference_triangle(gl_ctx))


def test_answers_name_vgpu_and_never_host_names(screen):
    guest = FakeGuest()
    renderer_s, version, binding, version_words = (guest.alloc(256), guest.alloc(64),
                                                   guest.alloc(4), guest.alloc(8))
    screen.execute_3d(batch(*setup(), gl("glGetString", enum("GL_RENDERER"), (renderer_s, 256)),
                            gl("glGetString", enum("GL_VERSION"), (version, 8)),
                            gl("glGenBuffers", 1, [77]),
                            gl("glBindBuffer", enum("GL_ARRAY_BUFFER"), 77),
                            gl("glGetIntegerv", enum("GL_ARRAY_BUFFER_BINDING"), (binding, 4)),
                            gl("glGetIntegerv", enum("GL_MAJOR_VERSION"), (version_words, 4))),
                      guest)
    text = bytes(guest.mem[renderer_s:renderer_s + 256]).split(b"\0")[0].decode()
    assert text.startswith("vgpu (") and screen.ctx.info["GL_RENDERER"] in text
    assert bytes(guest.mem[version:version + 8]) == b"OpenGL \0"  # cut, NUL kept
    assert guest.u32(binding) == 77
    assert guest.u32(version_words) == 3


def test_luminance_texture_sampled_as_es_does(screen):
    """An ES LUMINANCE_ALPHA texture reads (L, L, L, A) in the shader, as on ES."""
    guest = FakeGuest()
    fs = (b"#version 330\nuniform sampler2D t;\nout vec4 c;\n"
          b"void main() { c = texture(t, vec2(0.5)); }\n")
    cmds = triangle_program()
    cmds[4] = gl("glShaderSource", 2, 1, fs)
    quad = np.array([-1, -1, 1, -1, -1, 1, 1, -1, 1, 1, -1, 1], np.float32)
    screen.execute_3d(batch(*setup(), *cmds,
                            gl("glBindTexture", enum("GL_TEXTURE_2D"), 4),
                            gl("glTexParameteri", enum("GL_TEXTURE_2D"),
                               enum("GL_TEXTURE_MIN_FILTER"), enum("GL_NEAREST")),
                            gl("glPixelStorei", enum("GL_UNPACK_ALIGNMENT"), 1),
                            gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0,
                               enum("GL_LUMINANCE_ALPHA"), 1, 1, 0, enum("GL_LUMINANCE_ALPHA"),
                               enum("GL_UNSIGNED_BYTE"), bytes([200, 255])),
                            *triangle_draw(vertices=quad),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0)), guest)
    assert (rgb(screen.read_pixels(0, (0, 0, W, H))) == 200).all()


def test_every_command_has_a_decoder():
    from vgpu._gl3d import lib  # noqa: F401  (the extension builds every decoder)
    sent = [c for c in glwire.commands() if c.excluded is None]
    assert len(sent) == len(glwire.commands()) - len(glwire.EXCLUDED)


def test_first_error_is_kept_until_read(screen):
    guest = FakeGuest()
    first, second = guest.alloc(4), guest.alloc(4)
    screen.execute_3d(batch(*setup(), gl("glUseProgram", 99),
                            gl("glEnable", 0x0B10),  # an INVALID_ENUM after it
                            gl("glGetError", (first, 4)), gl("glGetError", (second, 4))), guest)
    assert guest.u32(first) == enum("GL_INVALID_OPERATION")
    assert guest.u32(second) == 0


def test_steady_frames_make_no_host_waits(screen):
    guest = FakeGuest()
    frame = [*clear(), gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),
             vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0), vgpu("FENCE", 1, 0, 1)]
    screen.execute_3d(batch(*setup(), *triangle_program(), *triangle_draw()), guest)
    for _ in range(3):
        screen.execute_3d(batch(*frame), guest)
        assert screen.gl3d.frame_waits == 0
    pixels = guest.alloc(4)
    screen.execute_3d(batch(gl("glReadPixels", 0, 0, 1, 1, enum("GL_RGBA"),
                               enum("GL_UNSIGNED_BYTE"), (pixels, 4)), *frame), guest)
    assert screen.gl3d.frame_waits == 1
    assert bytes(guest.mem[pixels:pixels + 4]) == bytes([0, 0, 128, 255])  # the clear colour
    assert screen.gl3d.busy_since is None and screen.gl3d.current_context == 0


def test_texture_quota_per_share_group(screen):
    """Textures count toward the share group's 512 MiB; re-specifying a level replaces its
    bytes, deleting the texture returns them."""
    guest = FakeGuest()
    big = (enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), 8192, 8192, 0, enum("GL_RGBA"),
           enum("GL_UNSIGNED_BYTE"), None)  # 256 MiB each
    got = errors_after(screen, guest, *setup(),
                       gl("glBindTexture", enum("GL_TEXTURE_2D"), 1), gl("glTexImage2D", *big),
                       gl("glTexImage2D", *big),  # the same level again: still 256 MiB
                       gl("glBindTexture", enum("GL_TEXTURE_2D"), 2), gl("glTexImage2D", *big),
                       gl("glBindTexture", enum("GL_TEXTURE_2D"), 3), gl("glTexImage2D", *big),
                       gl("glDeleteTextures", 1, [1]), gl("glTexImage2D", *big))
    assert got[3:] == [0, 0, 0, 0, 0, 0, enum("GL_OUT_OF_MEMORY"), 0, 0]


@pytest.mark.parametrize("version", ["", "#version 300 es\n"])
def test_glsl_es_sources_run_on_the_host(screen, gl_ctx, version):
    """ES shaders as a GLES 2 guest sends them (no #version: GLSL ES 1.00) and GLSL ES 3.00
    draw what moderngl's desktop GLSL draws."""
    guest = FakeGuest()
    log = guest.alloc(512)
    if version:
        vs = (version + "in vec2 pos;\nvoid main() { gl_Position = vec4(pos, 0.0, 1.0); }\n")
        fs = (version + "precision mediump float;\nout vec4 c;\n"
              "void main() { c = vec4(1.0, 0.5, 0.0, 1.0); }\n")
    else:
        vs = "attribute vec2 pos;\nvoid main() { gl_Position = vec4(pos, 0.0, 1.0); }\n"
        fs = ("// ES 2\nprecision mediump float;\n"
              "void main() { gl_FragColor = vec4(1.0, 0.5, 0.0, 1.0); }\n")
    cmds = triangle_program()
    cmds[1] = gl("glShaderSource", 1, 1, vs.encode())
    cmds[4] = gl("glShaderSource", 2, 1, fs.encode())
    screen.execute_3d(batch(*setup(), *clear(), *cmds, *triangle_draw(),
                            gl("glGetProgramInfoLog", 3, 512, (0, 0), (log, 512)),
                            vgpu("PRESENT", 0, 0, 0, W, H, 0, 0, 0, 0)), guest)
    assert bytes(guest.mem[log:log + 512]).split(b"\0")[0] == b""
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (0, 0, W, H))),
                                  reference_triangle(gl_ctx))


def test_present_of_a_guest_framebuffer(screen, gl_ctx):
    """PRESENT of framebuffer 6 (a texture the guest drew into) shows its read buffer."""
    guest = FakeGuest()
    screen.execute_3d(batch(*setup(), *triangle_program(), *guest_framebuffer(),
                            *clear(), *triangle_draw(),
                            gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 0),
                            vgpu("PRESENT", 6, 0, 0, W, H, 0, 12, 7, 0)), guest)
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (12, 7, 12 + W, 7 + H))),
                                  reference_triangle(gl_ctx))


def guest_framebuffer(fb=6, tex=4, internal="GL_RGBA") -> list[list[int]]:
    """Framebuffer `fb` of the current context drawing into texture `tex` (W x H)."""
    return [gl("glBindTexture", enum("GL_TEXTURE_2D"), tex),
            gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum(internal), W, H, 0,
               enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"), None),
            gl("glGenFramebuffers", 1, [fb]),
            gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), fb),
            gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"), enum("GL_COLOR_ATTACHMENT0"),
               enum("GL_TEXTURE_2D"), tex, 0)]


def test_a_present_ignores_the_state_its_context_leaves_on(screen, gl_ctx):
    """PRESENT copies the framebuffer whatever per-fragment state its context has on (the
    steady present in g3_execute runs under the context's state, one in Python under the 2D
    renderer's): a colour mask, a scissor and rasterizer discard spoil no picture, as
    moderngl's own triangle shows; the context finds its state as it left it."""
    ref = reference_triangle(gl_ctx)
    guest = FakeGuest()
    discard = guest.alloc(4)
    screen.execute_3d(batch(*setup(), *triangle_program(),
                            *guest_framebuffer(internal="GL_RGBA8"), *clear(), *triangle_draw(),
                            vgpu("PRESENT", 6, 0, 0, W, H, 0, 12, 7, 0)), guest)
    screen.execute(draw(Fill(SolidBrush(0), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (0, 0, *SCREEN)))
    presents = screen.gl3d.presents
    spoil = [gl("glEnable", enum("GL_SCISSOR_TEST")), gl("glScissor", 0, 0, 1, 1),
             gl("glColorMask", 0, 0, 0, 0), gl("glEnable", enum("GL_RASTERIZER_DISCARD"))]
    screen.execute_3d(batch(*spoil, vgpu("PRESENT", 6, 0, 0, W, H, 0, 12, 7, 0),
                            vgpu("PRESENT", 6, 0, 0, W, H, 0, 80, 60, 0),
                            gl("glGetBooleanv", enum("GL_RASTERIZER_DISCARD"), (discard, 4))),
                      guest)
    assert screen.gl3d.presents == presents + 2
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (12, 7, 12 + W, 7 + H))), ref)
    np.testing.assert_array_equal(rgb(screen.read_pixels(0, (80, 60, 80 + W, 60 + H))), ref)
    assert guest.u32(discard) & 0xFF == 1


def test_transform_feedback_left_active_spares_2d(screen):
    """A batch that ends inside glBeginTransformFeedback: the 2D renderer draws as always in
    between, and the guest's capture goes on in its next batch."""
    guest = FakeGuest()
    err, captured = guest.alloc(4), guest.alloc(64)
    cmds = triangle_program()
    cmds[1] = gl("glShaderSource", 1, 1,
                 b"#version 330\nin vec2 pos;\nout float v;\n"
                 b"void main() { v = pos.x * 2.0; gl_Position = vec4(pos, 0.0, 1.0); }\n")
    cmds.insert(-2, gl("glTransformFeedbackVaryings", 3, 1, b"v\0",
                       enum("GL_INTERLEAVED_ATTRIBS")))
    tf = enum("GL_TRANSFORM_FEEDBACK_BUFFER")
    screen.execute_3d(batch(*setup(), *cmds, *triangle_draw()[:-1],
                            gl("glGenBuffers", 1, [20]), gl("glBindBufferBase", tf, 0, 20),
                            gl("glBufferData", tf, 64, None, enum("GL_STREAM_READ")),
                            gl("glBeginTransformFeedback", enum("GL_POINTS")),
                            gl("glDrawArrays", enum("GL_POINTS"), 0, 2)), guest)
    screen.execute(draw(Fill(SolidBrush(0x00FF8000), E.ROPD_OP_PUT, QMask(0, 0, None)),
                        (0, 0, *SCREEN)))
    assert (rgb(screen.read_pixels(0)) == (0xFF, 0x80, 0)).all()
    screen.execute_3d(batch(gl("glDrawArrays", enum("GL_POINTS"), 2, 1),
                            gl("glEndTransformFeedback"),
                            gl("glGetBufferParameteriv", tf, enum("GL_BUFFER_SIZE"), (err, 4)),
                            gl("glBindBuffer", enum("GL_COPY_READ_BUFFER"), 20),
                            gl("glGetError", (captured, 4))), guest)
    assert guest.u32(captured) == 0
    assert guest.u32(err) == 64


def test_default_framebuffer_speaks_es(screen):
    """The surface answers as ES's default framebuffer: GL_BACK's sizes, GL_BACK draw
    buffer, status complete; a context without a surface has none (undefined)."""
    guest = FakeGuest()
    red, status, none = guest.alloc(4), guest.alloc(4), guest.alloc(4)
    fb = enum("GL_FRAMEBUFFER")
    screen.execute_3d(batch(*setup(),
                            gl("glGetFramebufferAttachmentParameteriv", fb, enum("GL_BACK"),
                               enum("GL_FRAMEBUFFER_ATTACHMENT_RED_SIZE"), (red, 4)),
                            gl("glDrawBuffers", 1, [enum("GL_BACK")]),
                            gl("glCheckFramebufferStatus", fb, (status, 4)),
                            vgpu("CONTEXT_CREATE", 2, 3, 0), vgpu("MAKE_CURRENT", 2, 0),
                            gl("glCheckFramebufferStatus", fb, (none, 4))), guest)
    assert guest.u32(red) == 8
    assert guest.u32(status) == enum("GL_FRAMEBUFFER_COMPLETE")
    assert guest.u32(none) == enum("GL_FRAMEBUFFER_UNDEFINED")


def test_buffer_and_texture_bytes_capped_for_all_share_groups(renderer):
    """Beside each share group's 512 MiB, all groups together hold at most 2 GiB
    (G3_DEVICE_BYTES): four full groups fit, a fifth group's first buffer does not until
    another's bytes go; every byte returns when the contexts are destroyed. (No present:
    one way of presenting is enough for 2 GiB of buffers.)"""
    from vgpu.render.gl3d import Gl3dExecutor

    screen = renderer
    screen.gl3d = Gl3dExecutor(renderer)
    guest = FakeGuest()
    half = 256 << 20
    array = enum("GL_ARRAY_BUFFER")

    def fill(ctx_id: int) -> list[int]:
        return errors_after(screen, guest, vgpu("CONTEXT_CREATE", ctx_id, 3, 0),
                            vgpu("MAKE_CURRENT", ctx_id, 0),
                            *(cmd for name in (1, 2) for cmd in (
                                gl("glBindBuffer", array, name),
                                gl("glBufferData", array, half, None,
                                   enum("GL_STATIC_DRAW")))))

    for ctx_id in (1, 2, 3, 4):
        assert fill(ctx_id)[2:] == [0, 0, 0, 0]
    assert screen.gl3d.counters["bytes"] == 4 * 2 * half
    assert fill(5)[2:] == [0, enum("GL_OUT_OF_MEMORY"), 0, enum("GL_OUT_OF_MEMORY")]
    assert errors_after(screen, guest, vgpu("MAKE_CURRENT", 4, 0),
                        gl("glDeleteBuffers", 1, [2]), vgpu("MAKE_CURRENT", 5, 0),
                        gl("glBufferData", array, half, None, enum("GL_STATIC_DRAW"))) == [0] * 4
    screen.execute_3d(batch(*(vgpu("CONTEXT_DESTROY", i) for i in range(1, 6))), guest)
    assert screen.gl3d.counters["bytes"] == 0


def mip_bytes(w: int, h: int, bpp: int = 4) -> int:
    """Bytes of a 2D texture's full mipmap chain (what glGenerateMipmap makes, with level 0)."""
    total = 0
    while True:
        total += w * h * bpp
        if w == h == 1:
            return total
        w, h = max(w // 2, 1), max(h // 2, 1)


def test_generated_mipmaps_match_moderngl_and_count_toward_the_quota(renderer, gl_ctx):
    """glGenerateMipmap's levels are moderngl's build_mipmaps levels, and they are charged to
    the share group like uploaded levels: generating past 512 MiB is GL_OUT_OF_MEMORY and
    leaves the bytes as they were."""
    from vgpu.render.gl3d import Gl3dExecutor

    screen = renderer
    screen.gl3d = Gl3dExecutor(renderer)
    guest = FakeGuest()
    rng = np.random.default_rng(14)
    data = rng.integers(0, 256, (32, 64, 4), np.uint8).tobytes()
    direct = gl_ctx.texture((64, 32), 4, data)
    direct.build_mipmaps()
    want = direct.read(level=1)
    direct.release()

    t2d, rgba, ubyte = enum("GL_TEXTURE_2D"), enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE")
    src, pixels = guest.alloc(len(data), data), guest.alloc(len(want))
    got = errors_after(screen, guest, vgpu("CONTEXT_CREATE", 1, 3, 0),
                       vgpu("MAKE_CURRENT", 1, 0), gl("glBindTexture", t2d, 1),
                       gl("glTexImage2D", t2d, 0, rgba, 64, 32, 0, rgba, ubyte,
                          ("ref", src, len(data))),
                       gl("glGenerateMipmap", t2d),
                       gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 5),
                       gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"),
                          enum("GL_COLOR_ATTACHMENT0"), t2d, 1, 1),
                       gl("glReadPixels", 0, 0, 32, 16, rgba, ubyte, (pixels, len(want))))
    assert got[2:] == [0] * 6
    assert bytes(guest.mem[pixels:pixels + len(want)]) == want
    assert screen.gl3d.counters["bytes"] == mip_bytes(64, 32)

    big, tall = (8192, 8192), (8192, 7168)  # 256 + 224 MiB: both fit, tall's mipmaps do not
    got = errors_after(screen, guest, *(cmd for name, (w, h) in ((2, big), (3, tall)) for cmd in (
        gl("glBindTexture", t2d, name),
        gl("glTexImage2D", t2d, 0, rgba, w, h, 0, rgba, ubyte, None))),
        gl("glGenerateMipmap", t2d))
    assert got == [0, 0, 0, 0, enum("GL_OUT_OF_MEMORY")]
    assert screen.gl3d.counters["bytes"] == mip_bytes(64, 32) + (8192 * 8192 + 8192 * 7168) * 4
    screen.execute_3d(batch(vgpu("CONTEXT_DESTROY", 1)), guest)
    assert screen.gl3d.counters["bytes"] == 0


INT_VS = ("#version 330\nin vec2 pos;\nin ivec4 k;\nflat out ivec4 v;\n"
          "void main() { v = k; gl_Position = vec4(pos, 0.0, 1.0); }\n")
INT_FS = ("#version 330\nflat in ivec4 v;\nout vec4 c;\n"
          "void main() { c = vec4(v & 255) / 255.0; }\n")
INT_VALUE = (16777217, -3, 70001, 2147483647)  # the low bytes of each are lost through a float


def test_integer_current_attribute_survives_a_context_switch(screen, gl_ctx):
    """A current value set by glVertexAttribI4i keeps its integer type when another context
    runs in between (the state shadow restores it with VertexAttribI4iv, not as floats):
    the picture is moderngl's, drawing the same integers from a buffer. (Mesa keeps a
    current value's raw bits whatever call set it, so here this fails only if the shadow
    converts the values; a GL that converts on glGetVertexAttribfv needs the typed calls.)"""
    prog = gl_ctx.program(vertex_shader=INT_VS, fragment_shader=INT_FS)
    vbo = gl_ctx.buffer(TRIANGLE.tobytes())
    ints = gl_ctx.buffer(np.array([INT_VALUE] * 3, np.int32).tobytes())
    vao = gl_ctx.vertex_array(prog, [(vbo, "2f", "pos"), (ints, "4i", "k")])
    tex = gl_ctx.texture((W, H), 4)
    fbo = gl_ctx.framebuffer(color_attachments=[tex])
    fbo.use()
    fbo.clear(*CLEAR)
    vao.render()
    ref = np.frombuffer(fbo.read(components=4), np.uint8).reshape(H, W, 4)[::-1, :, :3]
    for o in (fbo, tex, vao, ints, vbo, prog):
        o.release()

    guest = FakeGuest()
    program = [
        gl("glCreateShader", 1, enum("GL_VERTEX_SHADER")), gl("glShaderSource", 1, 1,
                                                              INT_VS.encode()),
        gl("glCompileShader", 1),
        gl("glCreateShader", 2, enum("GL_FRAGMENT_SHADER")), gl("glShaderSource", 2, 1,
                                                                INT_FS.encode()),
        gl("glCompileShader", 2), gl("glCreateProgram", 3), gl("glAttachShader", 3, 1),
        gl("glAttachShader", 3, 2), gl("glBindAttribLocation", 3, 0, b"pos\0"),
        gl("glBindAttribLocation", 3, 1, b"k\0"), gl("glLinkProgram", 3),
        gl("glUseProgram", 3)]
    err = guest.alloc(4)
    screen.execute_3d(batch(
        *setup(), *clear(), *program,
        gl("glVertexAttribI4i", 1, *(v & 0xFFFFFFFF for v in INT_VALUE)),
        # another context runs and sets attribute 1 of the one host GL to floats
        vgpu("CONTEXT_CREATE", 2, 3, 0), vgpu("MAKE_CURRENT", 2, 0),
        gl("glVertexAttrib4f", 1, 0.25, 0.5, 0.75, 1.0),
        vgpu("MAKE_CURRENT", 1, 1), *triangle_draw(), gl("glGetError", (err, 4)),
        vgpu("PRESENT", 0, 0, 0, W, H, 0, 30, 20, 0)), guest)
    assert guest.u32(err) == 0
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    np.testing.assert_array_equal(rgb(screen.read_pixels(0)[20:20 + H, 30:30 + W]), ref)


@pytest.mark.parametrize("path", ["copy", "draw"])
@pytest.mark.parametrize("fmt", [E.SURFACE_FMT_16_565, E.SURFACE_FMT_16_555])
def test_present_onto_a_16_bit_surface_keeps_what_the_format_keeps(renderer, gl_ctx, fmt, path):
    """PRESENT onto a 16-bit QXL surface stores moderngl's picture as the 2D path stores
    pixels there (renderer/pixels.quantize: 5 or 6 bits a channel, alpha 255)."""
    from vgpu.render import pixels
    from vgpu.render.gl3d import Gl3dExecutor

    renderer.create_primary(*SCREEN, SCREEN[0] * 2, fmt, None)
    renderer.gl3d = Gl3dExecutor(renderer, present_copy=path == "copy")
    ref = reference_triangle(gl_ctx)
    want = np.empty((H, W, 4), np.uint8)
    want[..., :3] = ref[..., ::-1]  # RGB as the surface's B, G, R
    want[..., 3] = 255
    pixels.quantize(want, fmt)
    guest = FakeGuest()
    renderer.execute_3d(batch(*setup(), *clear(), *triangle_program(), *triangle_draw(),
                              vgpu("PRESENT", 0, 0, 0, W, H, 0, 30, 20, 0)), guest)
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    np.testing.assert_array_equal(renderer.read_pixels(0)[20:20 + H, 30:30 + W], want)


@pytest.mark.parametrize("path", ["copy", "draw"])
@pytest.mark.parametrize("fmt", [E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB])
def test_present_of_random_pixels_onto_32_bit_surfaces(renderer, gl_ctx, fmt, path):
    """Every byte of a guest texture (random, alpha too), presented from a rect whose width
    is no multiple of 8 (where vector swizzles leave a tail), lands on a 32-bit surface
    flipped, as (B, G, R, A), alpha 255 on xRGB; moderngl reads the same texture back as
    the reference."""
    from vgpu.render.gl3d import Gl3dExecutor

    renderer.create_primary(*SCREEN, SCREEN[0] * 4, fmt, None)
    renderer.gl3d = Gl3dExecutor(renderer, present_copy=path == "copy")
    tw, th = 151, 77
    data = np.random.default_rng(14).integers(0, 256, (th, tw, 4), np.uint8)
    ref_tex = gl_ctx.texture((tw, th), 4, data.tobytes())
    try:
        ref = np.frombuffer(ref_tex.read(), np.uint8).reshape(th, tw, 4)
    finally:
        ref_tex.release()
    x, y, w, h, dx, dy = 2, 3, 141, 70, 9, 11
    want = ref[y:y + h, x:x + w][::-1][..., [2, 1, 0, 3]].copy()
    if fmt == E.SURFACE_FMT_32_xRGB:
        want[..., 3] = 255
    guest = FakeGuest()
    pixels = guest.alloc(data.nbytes, data.tobytes())
    renderer.execute_3d(batch(*setup(), gl("glBindTexture", enum("GL_TEXTURE_2D"), 4),
                              gl("glTexImage2D", enum("GL_TEXTURE_2D"), 0, enum("GL_RGBA"), tw,
                                 th, 0, enum("GL_RGBA"), enum("GL_UNSIGNED_BYTE"),
                                 ("ref", pixels, data.nbytes)),
                              gl("glGenFramebuffers", 1, [6]),
                              gl("glBindFramebuffer", enum("GL_FRAMEBUFFER"), 6),
                              gl("glFramebufferTexture2D", enum("GL_FRAMEBUFFER"),
                                 enum("GL_COLOR_ATTACHMENT0"), enum("GL_TEXTURE_2D"), 4, 0),
                              vgpu("PRESENT", 6, x, y, w, h, 0, dx, dy, 0)), guest)
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    np.testing.assert_array_equal(renderer.read_pixels(0, (dx, dy, dx + w, dy + h)), want)


def test_queries_stay_with_their_context_across_switches(screen, gl_ctx):
    """An occlusion query left open while another context runs counts its own context's
    draws only, the other context can run a query of the same target meanwhile, and a query
    that spans a switch adds up its stretches; results as moderngl counts the same draws."""
    counted = []
    for drawn in (False, True):
        q = gl_ctx.query(samples=True)
        with q:
            if drawn:
                reference_triangle(gl_ctx)
        counted.append(int(q.samples > 0))  # what GL_ANY_SAMPLES_PASSED answers
    any_samples, result = enum("GL_ANY_SAMPLES_PASSED"), enum("GL_QUERY_RESULT")
    guest = FakeGuest()
    errs = [guest.alloc(4) for _ in range(3)]
    got = [guest.alloc(4) for _ in range(3)]
    screen.execute_3d(batch(
        *setup(), gl("glGenQueries", 1, [7]), gl("glBeginQuery", any_samples, 7),
        vgpu("CONTEXT_CREATE", 2, 3, 0), vgpu("SURFACE_CREATE", 2, W, H, 0, 0),
        vgpu("MAKE_CURRENT", 2, 2), *clear(), *triangle_program(),
        gl("glGenQueries", 2, [8, 9]), gl("glBeginQuery", any_samples, 8),
        gl("glGetError", (errs[0], 4)), *triangle_draw(), gl("glEndQuery", any_samples),
        gl("glGetQueryObjectuiv", 8, result, (got[1], 4)),
        gl("glBeginQuery", any_samples, 9), gl("glDrawArrays", enum("GL_TRIANGLES"), 0, 3),
        vgpu("MAKE_CURRENT", 1, 1), gl("glEndQuery", any_samples),
        gl("glGetError", (errs[1], 4)), gl("glGetQueryObjectuiv", 7, result, (got[0], 4)),
        vgpu("MAKE_CURRENT", 2, 2), gl("glEndQuery", any_samples),
        gl("glGetError", (errs[2], 4)), gl("glGetQueryObjectuiv", 9, result, (got[2], 4))),
        guest)
    assert [guest.u32(e) for e in errs] == [0, 0, 0]
    assert guest.counts == {"errors": 0, "lost_contexts": 0}
    # context 1 drew nothing; context 2's queries saw the triangle (9: before the switch)
    assert [guest.u32(g) for g in got] == [counted[0], counted[1], counted[1]] == [0, 1, 1]
