"""`vgpu preview`: the guest's display in a local window (glfw).

The window is one more consumer of the machine's frames, like a SPICE client:
it takes the newest frame, uploads it to a texture and draws it. Its GL context
belongs to the window (the main thread) and only shows pixels; all rendering
stays on the render thread's offscreen context. Mouse and keys in the window go
to the guest as input events, as a SPICE client's would.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import glfw
import moderngl
import numpy as np

from vgpu.display import Frame, InputEvent
from vgpu.machine import Machine

VERTEX = """
#version 330
in vec2 pos;
out vec2 uv;
void main() {
    uv = vec2(pos.x * 0.5 + 0.5, 0.5 - pos.y * 0.5);  // frames are top-down
    gl_Position = vec4(pos, 0.0, 1.0);
}
"""
FRAGMENT = """
#version 330
uniform sampler2D frame;
in vec2 uv;
out vec4 color;
void main() { color = vec4(texture(frame, uv).bgr, 1.0); }  // frames are B,G,R,X bytes
"""

# GLFW key -> PC AT set-1 scancode, for the keys the built-in guests understand.
GLFW_KEY_SCANCODES = {
    **{65 + i: code for i, code in enumerate(
        [0x1E, 0x30, 0x2E, 0x20, 0x12, 0x21, 0x22, 0x23, 0x17, 0x24, 0x25, 0x26, 0x32,
         0x31, 0x18, 0x19, 0x10, 0x13, 0x1F, 0x14, 0x16, 0x2F, 0x11, 0x2D, 0x15, 0x2C])},
    **{48 + i: code for i, code in enumerate(
        [0x0B, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A])},
    32: 0x39,  # space
    257: 0x1C,  # enter
    259: 0x0E,  # backspace
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--demo", default="desktop",
                        help="built-in guest: 'desktop', 'cube' or 'replay:FILE' (default desktop)")
    source.add_argument("--guest", metavar="SOCKET", help="wait for an out-of-process guest")
    parser.add_argument("--frames", type=int, default=0,
                        help="close after this many frames (0: run until the window closes)")
    parser.add_argument("--screenshot", type=Path,
                        help="with --frames: write what the window shows last as PNG")


def run(args: argparse.Namespace) -> int:
    if not glfw.init():
        print("vgpu preview: no display for a window (set DISPLAY, e.g. under Xvfb)",
              file=sys.stderr)
        return 2
    machine = Machine.create(demo=None if args.guest else args.demo, guest_socket=args.guest)
    machine.start()
    try:
        return _window_loop(machine, args)
    finally:
        machine.stop()
        glfw.terminate()


def _window_loop(machine: Machine, args: argparse.Namespace) -> int:
    wake = threading.Event()
    subscription = machine.frames.subscribe(wake.set)
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    window = glfw.create_window(1024, 768, "vgpu preview", None, None)
    if not window:
        print("vgpu preview: could not open a window", file=sys.stderr)
        return 2
    glfw.make_context_current(window)
    ctx = moderngl.create_context()
    program = ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
    quad = ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes())
    vao = ctx.vertex_array(program, [(quad, "2f", "pos")])
    texture = None
    last: Frame | None = None
    shown = 0

    def on_key(_w: object, key: int, _scancode: int, action: int, _mods: int) -> None:
        code = GLFW_KEY_SCANCODES.get(key)
        if code is not None and action in (glfw.PRESS, glfw.REPEAT):
            machine.send_input(InputEvent("key_down", code))
        elif code is not None and action == glfw.RELEASE:
            machine.send_input(InputEvent("key_up", code | 0x80))

    def on_cursor(_w: object, x: float, y: float) -> None:
        if last is not None:
            w, h = glfw.get_window_size(window)
            machine.send_input(InputEvent(
                "mouse_position", x=int(x * last.width / max(w, 1)),
                y=int(y * last.height / max(h, 1))))

    glfw.set_key_callback(window, on_key)
    glfw.set_cursor_pos_callback(window, on_cursor)
    while not glfw.window_should_close(window):
        glfw.poll_events()
        wake.wait(1 / 60)
        wake.clear()
        taken = subscription.take()
        if taken is None:
            continue
        frame, _damage = taken
        if texture is None or texture.size != (frame.width, frame.height):
            if last is None or (frame.width, frame.height) != (last.width, last.height):
                glfw.set_window_size(window, frame.width, frame.height)
            texture = ctx.texture((frame.width, frame.height), 4)
        texture.write(np.ascontiguousarray(frame.pixels).tobytes())
        last = frame
        ctx.screen.use()
        ctx.viewport = (0, 0, *glfw.get_framebuffer_size(window))
        texture.use(0)
        vao.render(moderngl.TRIANGLE_STRIP)
        shown += 1
        final = bool(args.frames) and shown >= args.frames
        if final and args.screenshot:
            _save_window(ctx, args.screenshot)  # what the window shows, read back
        glfw.swap_buffers(window)
        if final:
            break
    subscription.close()
    return 0


def _save_window(ctx: moderngl.Context, path: Path) -> None:
    from PIL import Image

    width, height = ctx.screen.viewport[2:]
    rgb = np.frombuffer(ctx.screen.read(components=3), np.uint8).reshape(height, width, 3)
    Image.fromarray(rgb[::-1].copy()).save(path)  # GL rows are bottom-up
