"""Scenes for the transparency tests, each written once against moderngl's API: run with a
moderngl context directly and with a vgpu.guest.gl context through the ring, they must give
the same bytes. Each takes a context and returns what its last `fbo.read` gave."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from vgpu.guest.cube import CubeScene, cube_mesh, gl_matrix, rotation

SIZE = (96, 64)

FLAT_VS = """#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_offset;
in vec3 in_color;
out vec3 v_color;
void main() {
    gl_Position = mvp * vec4(in_pos * 0.08 + in_offset, 1.0);
    v_color = in_color;
}
"""
FLAT_FS = """#version 330
in vec3 v_color;
out vec4 color;
void main() { color = vec4(v_color, 1.0); }
"""
QUAD_VS = """#version 330
in vec2 in_pos;
out vec2 v_uv;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); v_uv = in_pos * 0.5 + 0.5; }
"""
TEX_FS = """#version 330
uniform sampler2D tex;
uniform float gain;
in vec2 v_uv;
out vec4 color;
void main() { color = texture(tex, v_uv * 1.5 - 0.25) * gain; }
"""
COLOR_VS = """#version 330
uniform vec2 shift;
uniform float angle;
in vec2 in_pos;
void main() {
    mat2 r = mat2(cos(angle), sin(angle), -sin(angle), cos(angle));
    gl_Position = vec4(r * in_pos + shift, 0.0, 1.0);
}
"""
COLOR_FS = """#version 330
uniform vec4 paint;
out vec4 color;
void main() { color = paint; }
"""
SKY_FS = """#version 330
uniform samplerCube sky;
uniform mat3 turn;
in vec2 v_uv;
out vec4 color;
void main() { color = texture(sky, turn * normalize(vec3(v_uv * 2.0 - 1.0, -0.7))); }
"""

QUAD = np.array([-1, -1, 1, -1, -1, 1, -1, 1, 1, -1, 1, 1], np.float32)
TRIANGLE = np.array([-0.6, -0.5, 0.7, -0.3, -0.1, 0.8], np.float32)


def _target(ctx: Any, depth: bool = True) -> Any:
    return ctx.framebuffer(ctx.texture(SIZE, 4),
                           ctx.depth_renderbuffer(SIZE) if depth else None)


def lit_textured_cube(ctx: Any) -> bytes:
    fbo = _target(ctx)
    scene = CubeScene(ctx, fbo)
    scene.draw(1.3)
    return fbo.read(components=4)


def instanced(ctx: Any) -> bytes:
    """400 small cubes in one instanced draw, each with its own place and colour."""
    fbo = _target(ctx)
    fbo.use()
    ctx.enable(ctx.DEPTH_TEST)
    ctx.clear(0.0, 0.0, 0.0, 1.0)
    prog = ctx.program(vertex_shader=FLAT_VS, fragment_shader=FLAT_FS)
    verts, indices = cube_mesh()
    n = 20
    grid = np.array([((i % n) / n * 2 - 0.95, (i // n) / n * 2 - 0.95, -(i % 7) * 0.05,
                      (i % n) / n, (i // n) / n, 1 - (i % 5) / 5) for i in range(n * n)],
                    np.float32)
    vbo = ctx.buffer(verts[:, :3].copy().tobytes())
    inst = ctx.buffer(grid.tobytes())
    ibo = ctx.buffer(indices.tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos"), (inst, "3f 3f /i", "in_offset",
                                                           "in_color")], index_buffer=ibo)
    prog["mvp"].write(gl_matrix(rotation(0.4, 0.3)))
    vao.render(ctx.TRIANGLES, instances=n * n)
    return fbo.read(components=3)


def render_to_texture(ctx: Any) -> bytes:
    """Pass 1 draws a triangle into a texture, pass 2 samples it (mipmapped) on a quad."""
    inner = ctx.texture((64, 64), 4)
    pass1 = ctx.framebuffer(inner)
    pass1.use()
    ctx.clear(0.2, 0.0, 0.3, 1.0)
    tri = ctx.program(vertex_shader=COLOR_VS, fragment_shader=COLOR_FS)
    tri["shift"].value = (0.1, 0.0)
    tri["angle"].value = 0.3
    tri["paint"].value = (1.0, 0.8, 0.1, 1.0)
    ctx.vertex_array(tri, [(ctx.buffer(TRIANGLE.tobytes()), "2f", "in_pos")]).render()
    inner.build_mipmaps()
    out = _target(ctx, depth=False)
    out.use()
    ctx.clear(0.0, 0.0, 0.0, 1.0)
    quad = ctx.program(vertex_shader=QUAD_VS, fragment_shader=TEX_FS)
    quad["tex"].value = 3
    quad["gain"].value = 0.9
    inner.repeat_x = False
    inner.use(3)
    ctx.vertex_array(quad, [(ctx.buffer(QUAD.tobytes()), "2f", "in_pos")]).render()
    return out.read(components=4)


def blending(ctx: Any) -> bytes:
    """Translucent triangles over each other: moderngl's default blending, then additive."""
    fbo = _target(ctx, depth=False)
    fbo.use()
    ctx.clear(0.1, 0.2, 0.3, 1.0)
    ctx.enable(ctx.BLEND)
    prog = ctx.program(vertex_shader=COLOR_VS, fragment_shader=COLOR_FS)
    vao = ctx.vertex_array(prog, [(ctx.buffer(TRIANGLE.tobytes()), "2f", "in_pos")])
    for i, paint in enumerate([(1.0, 0.0, 0.0, 0.5), (0.0, 1.0, 0.0, 0.35),
                               (0.0, 0.3, 1.0, 0.6), (0.9, 0.9, 0.2, 0.25)]):
        if i == 2:
            ctx.blend_func = ctx.ADDITIVE_BLENDING
        prog["shift"].value = (i * 0.12 - 0.2, i * 0.05)
        prog["angle"].value = i * 0.7
        prog["paint"].value = paint
        vao.render()
    ctx.disable(ctx.BLEND)
    return fbo.read(components=4)


def cube_map(ctx: Any) -> bytes:
    """A cube map of six gradient faces, sampled along turned view directions."""
    size = 32
    yy, xx = np.mgrid[0:size, 0:size]
    faces = []
    for f in range(6):
        face = np.zeros((size, size, 3), np.uint8)
        face[..., 0] = (xx * 8 + f * 40) % 256
        face[..., 1] = (yy * 8) % 256
        face[..., 2] = 40 * f
        faces.append(face)
    sky = ctx.texture_cube((size, size), 3, b"".join(f.tobytes() for f in faces))
    fbo = _target(ctx, depth=False)
    fbo.use()
    ctx.clear()
    prog = ctx.program(vertex_shader=QUAD_VS, fragment_shader=SKY_FS)
    prog["sky"].value = 1
    turn = rotation(0.5, 2.2)[:3, :3]
    prog["turn"].write(np.asarray(turn, np.float32).T.tobytes())
    sky.use(1)
    ctx.vertex_array(prog, [(ctx.buffer(QUAD.tobytes()), "2f", "in_pos")]).render()
    return fbo.read(components=3)


def multisample_resolved(ctx: Any) -> bytes:
    """4x multisampled renderbuffers, resolved by a blit into a single-sampled target."""
    msaa = ctx.framebuffer(ctx.renderbuffer(SIZE, 4, samples=4),
                           ctx.depth_renderbuffer(SIZE, samples=4))
    msaa.use()
    ctx.clear(0.0, 0.0, 0.0, 1.0)
    prog = ctx.program(vertex_shader=COLOR_VS, fragment_shader=COLOR_FS)
    vao = ctx.vertex_array(prog, [(ctx.buffer(TRIANGLE.tobytes()), "2f", "in_pos")])
    prog["shift"].value = (0.0, 0.0)
    prog["angle"].value = 0.37
    prog["paint"].value = (0.9, 0.6, 0.3, 1.0)
    vao.render()
    out = ctx.framebuffer(ctx.renderbuffer(SIZE, 4))
    ctx.copy_framebuffer(out, msaa)
    return out.read(components=4)


def _unpad(data: bytes, row: int, alignment: int) -> bytes:
    """Rows without their alignment padding, which GL leaves unwritten (moderngl's buffer
    holds whatever was in memory there)."""
    stride = -(-row // alignment) * alignment
    assert len(data) % stride == 0
    return b"".join(data[i:i + row] for i in range(0, len(data), stride))


def readback(ctx: Any) -> bytes:
    """fbo.read's shapes: a part of the picture, 1 and 3 components with row alignment, and
    float pixels; texture.read of an upload and of a rendered float texture."""
    fbo = ctx.framebuffer(ctx.texture(SIZE, 4, dtype="f4"))
    fbo.use()
    ctx.clear(0.25, 0.5, 0.75, 1.0)
    prog = ctx.program(vertex_shader=COLOR_VS, fragment_shader=COLOR_FS)
    prog["shift"].value = (0.0, 0.1)
    prog["angle"].value = -0.2
    prog["paint"].value = (0.125, 1.5, -0.5, 0.5)
    ctx.vertex_array(prog, [(ctx.buffer(TRIANGLE.tobytes()), "2f", "in_pos")]).render()
    small = ctx.texture((7, 5), 3, bytes(range(7 * 5 * 3)))
    parts = [small.read(), fbo.color_attachments[0].read(),
             _unpad(fbo.read(viewport=(5, 7, 33, 21), components=3, alignment=4), 33 * 3, 4),
             _unpad(fbo.read(components=1, alignment=8), SIZE[0], 8),
             fbo.read(viewport=(10, 10, 20, 20), components=4, dtype="f4")]
    return b"".join(struct.pack("<I", len(p)) + p for p in parts)


def rotating_cube_frames(ctx: Any) -> bytes:
    """The demo's cube at three times (full size frames), as the demo draws them."""
    fbo = _target(ctx)
    scene = CubeScene(ctx, fbo)
    return b"".join(scene.draw(t) or fbo.read() for t in (0.0, 0.5, 2.0))


SCENES = [lit_textured_cube, instanced, render_to_texture, blending, cube_map,
          multisample_resolved, readback, rotating_cube_frames]
