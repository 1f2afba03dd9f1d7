"""The cube guest: a lit, textured, rotating cube drawn through the 3D ring.

`CubeScene` is written against moderngl's API only, so the same code draws with moderngl
directly (the transparency tests and `vgpu bench gl3d` compare the two) and as a guest
through `vgpu.guest.gl`. `run_cube` is the full-screen demo (`vgpu serve --demo cube`):
one frame per display refresh, presented onto the primary surface.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from vgpu.guest.anim import STAMP_BITS, STAMP_BLOCK
from vgpu.guest.driver import GuestDriver

FRAME_PERIOD_S = 1 / 60
"""The demo draws at most this often: the display publishes 60 frames a second."""

TEXTURE_SIZE = 64
"""The cube's procedural texture: big enough for its mipmaps to matter at full screen."""

ROTATION_RAD_PER_S = (0.7, 1.1)
"""How fast the cube turns about x and y: slow enough to follow, fast enough that two
screenshots a few frames apart differ."""

BACKGROUND = (0.08, 0.1, 0.14, 1.0)

VERTEX_SHADER = """#version 330
uniform mat4 mvp;
uniform mat4 model;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_normal;
out vec2 v_uv;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_normal = mat3(model) * in_normal;
    v_uv = in_uv;
}
"""

FRAGMENT_SHADER = """#version 330
uniform sampler2D tex;
uniform vec3 light;
in vec3 v_normal;
in vec2 v_uv;
out vec4 color;
void main() {
    float lum = 0.25 + 0.75 * max(dot(normalize(v_normal), normalize(light)), 0.0);
    color = vec4(texture(tex, v_uv).rgb * lum, 1.0);
}
"""


def cube_mesh() -> tuple[np.ndarray, np.ndarray]:
    """24 vertices (position, normal, uv: 8 floats) and 36 indices of a unit cube."""
    verts = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u = np.roll(np.array([0.0, 1.0, 0.0]), axis)
            v = np.cross(n, u)
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = n + du * u + dv * v
                verts.append([*(p * 0.5), *n, (du + 1) / 2, (dv + 1) / 2])
    indices = []
    for face in range(6):
        b = face * 4
        indices += [b, b + 1, b + 2, b, b + 2, b + 3]
    return np.array(verts, np.float32), np.array(indices, np.uint32)


def checker_texture(size: int = TEXTURE_SIZE) -> np.ndarray:
    """RGBA8 checkerboard with a colour gradient (mipmaps average it to something else)."""
    yy, xx = np.mgrid[0:size, 0:size]
    on = ((xx // 8) + (yy // 8)) % 2 == 0
    img = np.zeros((size, size, 4), np.uint8)
    img[..., 0] = np.where(on, 230, 40 + xx * 2)
    img[..., 1] = np.where(on, 180, 60 + yy * 2)
    img[..., 2] = np.where(on, 60, 200)
    img[..., 3] = 255
    return img


def perspective(fovy_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / math.tan(math.radians(fovy_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def rotation(ax: float, ay: float) -> np.ndarray:
    cx, sx, cy, sy = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay)
    rx = np.array([[1, 0, 0, 0], [0, cx, -sx, 0], [0, sx, cx, 0], [0, 0, 0, 1]])
    ry = np.array([[cy, 0, sy, 0], [0, 1, 0, 0], [-sy, 0, cy, 0], [0, 0, 0, 1]])
    return ry @ rx


def translation(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def gl_matrix(m: np.ndarray) -> bytes:
    """A matrix as GL reads a uniform: column-major float32."""
    return np.asarray(m, np.float32).T.tobytes()


class CubeScene:
    """The lit textured cube with depth test, drawn into `fbo` of any moderngl-shaped
    context (moderngl itself or vgpu.guest.gl)."""

    def __init__(self, ctx: Any, fbo: Any) -> None:
        self.ctx = ctx
        self.fbo = fbo
        self.prog = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
        verts, indices = cube_mesh()
        self.vbo = ctx.buffer(verts.tobytes())
        self.ibo = ctx.buffer(indices.tobytes())
        self.vao = ctx.vertex_array(self.prog, [(self.vbo, "3f 3f 2f", "in_pos", "in_normal",
                                                 "in_uv")], index_buffer=self.ibo)
        self.texture = ctx.texture((TEXTURE_SIZE, TEXTURE_SIZE), 4, checker_texture())
        self.texture.build_mipmaps()
        self.prog["tex"].value = 0
        self.prog["light"].value = (0.4, 0.8, 1.0)
        w, h = fbo.size
        self.projection = perspective(45.0, w / h, 0.1, 10.0)

    def _matrices(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        model = rotation(t * ROTATION_RAD_PER_S[0], t * ROTATION_RAD_PER_S[1])
        return model, self.projection @ translation(0, 0, -2.6) @ model

    def draw(self, t: float) -> None:
        ctx = self.ctx
        self.fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.clear(*BACKGROUND)
        model, mvp = self._matrices(t)
        self.prog["model"].write(gl_matrix(model))
        self.prog["mvp"].write(gl_matrix(mvp))
        self.texture.use(0)
        self.vao.render(ctx.TRIANGLES)

    def bounds(self, t: float) -> tuple[int, int, int, int]:
        """Where the cube is at `t`: x0, y0, x1, y1 in the framebuffer with the origin at
        the top-left (as it lands on a QXL surface), widened by a pixel for rasterization."""
        corners = np.array([(x, y, z, 1.0) for x in (-0.5, 0.5) for y in (-0.5, 0.5)
                            for z in (-0.5, 0.5)])
        clip = corners @ self._matrices(t)[1].T
        ndc = clip[:, :2] / clip[:, 3:4]
        w, h = self.fbo.size
        xs = (ndc[:, 0] + 1) / 2 * w
        ys = (1 - ndc[:, 1]) / 2 * h
        return (max(0, int(xs.min()) - 1), max(0, int(ys.min()) - 1),
                min(w, int(np.ceil(xs.max())) + 1), min(h, int(np.ceil(ys.max())) + 1))


class CubeWindow:
    """The cube in a window of a 2D desktop: drawn on a surface of the window's size and
    presented at `left, top` of the primary, with the damage the cube's motion makes (where
    it was and where it is), so the rest of the desktop is neither copied nor reported."""

    def __init__(self, driver: GuestDriver, left: int, top: int, width: int,
                 height: int) -> None:
        from vgpu.guest import gl

        self.ctx = gl.create_context(driver, (width, height))
        self.scene = CubeScene(self.ctx, self.ctx.screen)
        self.left, self.top = left, top
        self.width, self.height = width, height
        self._last: tuple[int, int, int, int] | None = None

    def frame(self, t: float) -> None:
        self.scene.draw(t)
        x0, y0, x1, y1 = now = self.scene.bounds(t)
        if self._last is None:  # the first frame fills the window's background too
            damage = [(self.left, self.top, self.width, self.height)]
        else:
            lx0, ly0, lx1, ly1 = self._last
            damage = [(self.left + min(x0, lx0), self.top + min(y0, ly0),
                       max(x1, lx1) - min(x0, lx0), max(y1, ly1) - min(y0, ly0))]
        self._last = now
        self.ctx.present(dst=(self.left, self.top), damage=damage)

    def close(self) -> None:
        self.ctx.release()


def draw_stamp(ctx: Any, value: int) -> None:
    """The frame counter along the bottom-left edge, as the anim guest draws it (16 blocks
    of 16x16 pixels, bright for a set bit), in scissored clears: GL's origin is the
    bottom-left, where it lands on the surface too."""
    for bit in range(STAMP_BITS):
        on = 1.0 if value >> bit & 1 else 0.0
        ctx.clear(on, on, on, 1.0, viewport=(bit * STAMP_BLOCK, 0, STAMP_BLOCK, STAMP_BLOCK))


def run_cube(driver: GuestDriver, stop: threading.Event, width: int, height: int) -> None:
    """The full-screen demo: the cube presented on all of the primary surface, its frame
    counter stamped in the corner (where the surface is big enough) so a client or a
    benchmark can tell which frame it shows."""
    from vgpu.guest import gl

    ctx = gl.create_context(driver, (width, height))
    scene = CubeScene(ctx, ctx.screen)
    stamped = width >= STAMP_BITS * STAMP_BLOCK and height >= STAMP_BLOCK
    start = time.monotonic()
    next_frame = start
    count = 0
    while not stop.is_set():
        scene.draw(time.monotonic() - start)
        count += 1
        if stamped:
            draw_stamp(ctx, count % (1 << STAMP_BITS))
        ctx.present()
        next_frame += FRAME_PERIOD_S
        stop.wait(max(0.0, next_frame - time.monotonic()))
        next_frame = max(next_frame, time.monotonic() - FRAME_PERIOD_S)
    ctx.release()
