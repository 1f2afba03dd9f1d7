"""vgpu.guest.gl's encoding, against docs/3d-ring.md's framing (tests/guest/gl_fake.py's
reader) and moderngl's call shapes; pictures are compared in test_gl_transparency.py."""

from __future__ import annotations

import struct

import pytest
from gl_fake import FakeRing, read_batch

from vgpu.device import glwire
from vgpu.guest import gl
from vgpu.guest.glenc import INLINE_BLOB_MAX, Encoder

GL = glwire.enums()

VS = """#version 330
uniform mat4 mvp;
uniform vec3 tint[2];
in vec3 in_pos;
in mat4 in_model;
void main() { gl_Position = mvp * in_model * vec4(in_pos, 1.0); }
"""
FS = """#version 330
out vec4 color;
void main() { color = vec4(1.0); }
"""
ACTIVE = {("glGetActiveUniform", 0): ("mvp", 1, GL["GL_FLOAT_MAT4"]),
          ("glGetActiveUniform", 1): ("tint[0]", 2, GL["GL_FLOAT_VEC3"]),
          ("glGetActiveAttrib", 0): ("in_pos", 1, GL["GL_FLOAT_VEC3"]),
          ("glGetActiveAttrib", 1): ("in_model", 1, GL["GL_FLOAT_MAT4"]),
          ("glGetActiveAttrib", 2): ("gl_VertexID", 1, GL["GL_INT"])}
LOCATIONS = {b"mvp\0": 0, b"tint[0]\0": 3, b"in_pos\0": 2, b"in_model\0": 4, b"gl_VertexID\0": -1}


def _answer(cmd) -> bytes | None:
    a = cmd.args
    if cmd.name == "glGetShaderiv" or (cmd.name == "glGetProgramiv"
                                       and a["pname"] == GL["GL_LINK_STATUS"]):
        return struct.pack("<i", 1)
    if cmd.name == "glGetProgramiv":
        return struct.pack("<i", {GL["GL_ACTIVE_UNIFORMS"]: 2,
                                  GL["GL_ACTIVE_ATTRIBUTES"]: 3}[a["pname"]])
    if cmd.name in ("glGetUniformLocation", "glGetAttribLocation"):
        return struct.pack("<i", LOCATIONS[bytes(a["name"])])
    return None


@pytest.fixture
def ring() -> FakeRing:
    return FakeRing(answer=_answer, active=lambda c: ACTIVE[(c.name, c.args["index"])])


@pytest.fixture
def ctx(ring) -> gl.Context:
    return gl.create_context(ring, (64, 48))


def test_every_command_encodes_to_its_framing() -> None:
    """The generic encoder, driven by the table, for every command the wire carries, with
    each kind's largest shape: the reader takes exactly the body that the header says."""
    data: dict[int, bytes] = {}

    def place(raw: bytes) -> int:
        data[0x9000 + len(data)] = raw
        return 0x9000 + len(data) - 1

    enc = Encoder(place)
    for cmd in glwire.commands():
        if cmd.excluded:
            continue
        args: list = []
        values: dict[str, int] = {}
        for p in cmd.params:
            if p.kind in ("word", "name", "new_name", "wide", "offset"):
                v = 3
                values[p.name] = v
                args.append(1.5 if "float" in p.ctype.lower() else v)
            elif p.kind in ("names", "new_names", "array"):
                n = 1
                for f in (p.count or "1").split("*"):
                    n *= int(f) if f.isdigit() else values[f]
                args.append(list(range(1, n + 1)) if "float" not in p.ctype.lower()
                            else [0.5] * n)
            elif p.kind in ("blob", "strings"):
                args.append(b"abcde" if cmd.opcode % 2 else b"x" * (INLINE_BLOB_MAX + 1))
            else:
                args.append((0x1234, 16))
        enc.gl(cmd.name, *args)
    batch = enc.take()
    decoded = read_batch(batch, data)
    assert [c.name for c in decoded] == [c.name for c in glwire.commands() if not c.excluded]
    big = next(c for c in decoded if c.name == "glBufferData")
    assert big.args["data"] == b"x" * (INLINE_BLOB_MAX + 1)  # by reference, whole


def test_context_creation_and_moderngl_defaults(ring, ctx) -> None:
    ctx.flush()
    names = [c.name for c in ring.commands]
    assert names[:3] == ["CONTEXT_CREATE", "SURFACE_CREATE", "MAKE_CURRENT"]
    assert ring.commands[0].args["words"] == [ctx.ctx_id, 3, 0]
    assert ring.commands[1].args["words"] == [ctx.surface_id, 64, 48, 1, 0]
    blend = ring.named("glBlendFunc")[0].args
    assert (blend["sfactor"], blend["dfactor"]) == (gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA)


def test_program_introspection_takes_three_round_trips(ring, ctx) -> None:
    prog = ctx.program(vertex_shader=VS, fragment_shader=FS)
    assert len(ring.fences) == 3
    assert sorted(prog.members) == ["in_model", "in_pos", "mvp", "tint"]
    assert prog["tint"].array_length == 2 and prog["mvp"].location == 0
    source = ring.named("glShaderSource")[0].args["string"]
    assert bytes(source) == VS.encode()  # desktop GLSL passes through unchanged
    before = len(ring.fences)
    prog["mvp"].value = tuple(float(i) for i in range(16))
    prog["tint"].value = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    prog["tint"].write(struct.pack("<3f", 0.5, 0.5, 0.5))
    ctx.flush()
    assert len(ring.fences) == before  # setting uniforms never waits
    m = ring.named("glUniformMatrix4fv")[-1].args
    assert m["location"] == 0 and m["count"] == 1
    assert struct.unpack("<16f", struct.pack("<16I", *m["value"])) == tuple(range(16))
    tint = ring.named("glUniform3fv")
    assert [t.args["count"] for t in tint] == [2, 1] and tint[0].args["location"] == 3
    assert len(ring.named("glUseProgram")) == 1  # the guest knows it is current


def test_compile_failure_raises_with_the_log(ring, ctx) -> None:
    ring.answer = lambda cmd: struct.pack("<i", 0) if cmd.name == "glGetShaderiv" else None
    with pytest.raises(gl.Error, match="GLSL Compiler failed"):
        ctx.program(vertex_shader=VS, fragment_shader=FS)


def test_vertex_array_formats_and_render(ring, ctx) -> None:
    prog = ctx.program(vertex_shader=VS, fragment_shader=FS)
    verts = ctx.buffer(b"\0" * 12 * 36)
    inst = ctx.buffer(reserve=64 * 10, dynamic=True)
    ibo = ctx.buffer(struct.pack("<36I", *range(36)))
    vao = ctx.vertex_array(prog, [(verts, "3f", "in_pos"), (inst, "16f /i", "in_model")],
                           index_buffer=ibo)
    assert vao.vertices == 36
    vao.render(gl.TRIANGLES, instances=10)
    ctx.flush()
    ptrs = [(c.args["index"], c.args["size"], c.args["stride"], c.args["pointer"])
            for c in ring.named("glVertexAttribPointer")]
    assert ptrs == [(2, 3, 12, 0), (4, 4, 64, 0), (5, 4, 64, 16), (6, 4, 64, 32),
                    (7, 4, 64, 48)]
    assert [c.args["index"] for c in ring.named("glVertexAttribDivisor")] == [4, 5, 6, 7]
    draw = ring.named("glDrawElementsInstanced")[0].args
    assert (draw["count"], draw["type"], draw["instancecount"]) == (36, GL["GL_UNSIGNED_INT"], 10)
    vao2 = ctx.vertex_array(prog, [(verts, "3f 4x", "in_pos")])
    assert vao2.vertices == 12 * 36 // 16
    with pytest.raises(gl.Error):
        ctx.vertex_array(prog, [(verts, "3f", "in_nothing")])


def test_uploads_inline_and_by_reference(ring, ctx) -> None:
    small = bytes(range(256)) * 4
    large = bytes(range(256)) * 1024  # 256 KiB
    ctx.texture((16, 16), 4, small)
    n_batches = len(ring.batches)
    ctx.buffer(large)
    # a blob by reference is valid until the next fence: its batch went at once
    assert len(ring.batches) == n_batches + 1
    ctx.flush()
    tex = ring.named("glTexImage2D")[0].args
    assert bytes(tex["pixels"]) == small and tex["internalformat"] == GL["GL_RGBA8"]
    assert ring.named("glBufferData")[-1].args["data"] == large


def test_readback_waits_on_one_fence(ring, ctx) -> None:
    ring.answer = lambda cmd: bytes(range(12)) if cmd.name == "glReadPixels" else None
    fbo = ctx.framebuffer(ctx.renderbuffer((2, 2)))
    assert fbo.read(components=3) == bytes(range(12))
    assert len(ring.fences) == 1 and ring.waits == [1]
    rp = ring.named("glReadPixels")[0].args
    assert (rp["width"], rp["height"], rp["format"]) == (2, 2, GL["GL_RGB"])


def test_at_most_two_presents_in_flight(ring, ctx) -> None:
    ring.auto_complete = False
    for i in range(5):
        ctx.present(damage=[(0, 0, 8, 8)] if i else ())
        assert len(ctx.presents) <= gl.MAX_PRESENTS_IN_FLIGHT
    assert ring.waits == [1, 2, 3]  # each present past two waited for the oldest
    # one batch per frame: its PRESENT, then its FENCE
    ends = [[c.name for c in read_batch(b, ring.data)][-2:] for b in ring.batches[-5:]]
    assert ends == [["PRESENT", "FENCE"]] * 5 and len(ring.batches) == 5
    presents = ring.named("PRESENT")
    assert presents[0].args["words"] == [0, 0, 0, 64, 48, 0, 0, 0, 0]
    assert presents[1].args["words"][8:] == [1, 0, 0, 8, 8]


def test_state_answered_locally(ring, ctx) -> None:
    ctx.enable(gl.DEPTH_TEST | gl.BLEND)
    ctx.enable(gl.DEPTH_TEST)
    ctx.disable(gl.BLEND)
    tex = ctx.texture((8, 4), 3)
    fbo = ctx.framebuffer([tex], ctx.depth_renderbuffer((8, 4)))
    fbo.use()
    assert ctx.viewport == (0, 0, 8, 4) and fbo.size == (8, 4) and tex.components == 3
    ctx.flush()
    enabled = [c.args["cap"] for c in ring.named("glEnable")]
    assert enabled.count(GL["GL_DEPTH_TEST"]) == 1 and enabled.count(GL["GL_BLEND"]) == 1
    assert [c.args["cap"] for c in ring.named("glDisable")] == [GL["GL_BLEND"]]
    assert ring.fences == []


def test_contexts_sharing_a_driver_take_turns(ring) -> None:
    a = gl.create_context(ring, (8, 8))
    b = gl.create_context(ring, (8, 8))
    a.flush()
    b.flush()
    a.clear(1.0, 0.0, 0.0, 1.0)
    a.flush()
    a.clear(0.0, 1.0, 0.0, 1.0)
    a.flush()
    b.clear(0.0, 0.0, 1.0, 1.0)
    b.finish()
    firsts = [read_batch(batch, ring.data)[0] for batch in ring.batches]
    seen = [(c.name, c.args["words"][0] if "words" in c.args else None) for c in firsts]
    assert seen == [("CONTEXT_CREATE", a.ctx_id), ("CONTEXT_CREATE", b.ctx_id),
                    ("MAKE_CURRENT", a.ctx_id), ("glClearColor", None),
                    ("MAKE_CURRENT", b.ctx_id)]


def test_released_names_are_reused(ring, ctx) -> None:
    first = ctx.buffer(reserve=16)
    first.release()
    second = ctx.buffer(reserve=16)
    ctx.flush()
    assert second.name == first.name
    assert ring.named("glDeleteBuffers")[0].args["buffers"] == [first.name]
    assert [c.args["buffers"] for c in ring.named("glGenBuffers")] == [[first.name]] * 2


def test_through_the_device_ring(device, guest, backend) -> None:
    """The real guest driver and device (a backend that runs only FENCEs): every batch
    reaches the backend as encoded, no item is a guest bug, presents' fences complete."""
    ctx = gl.create_context(guest, (32, 16))
    for i in range(4):
        ctx.clear(0.1 * i, 0.0, 0.0, 1.0)
        ctx.present(dst=(8, 4), damage=[(8, 4, 32, 16)])
    ctx.finish()
    assert device.guest_bug is None
    assert guest.gl_completed() == ctx.last_fence
    got = [c for batch in backend.batches for c in read_batch(batch, {})]
    presents = [c.args["words"] for c in got if c.name == "PRESENT"]
    assert presents == [[0, 0, 0, 32, 16, 0, 8, 4, 1, 8, 4, 32, 16]] * 4
    assert [c.args["words"][0] for c in got if c.name == "MAKE_CURRENT"] == [ctx.ctx_id]
    assert len([c for c in got if c.name == "glClear"]) == 4


def test_desktop_goes_on_in_2d_when_the_host_runs_no_gl(device, guest) -> None:
    """A backend that runs only FENCEs answers nothing: the cube's program cannot be made,
    so the desktop leaves its 3D window out instead of failing."""
    import threading

    from vgpu.guest.desktop import DesktopScene, run_desktop

    guest.create_primary(1024, 768)
    scene = DesktopScene(window_3d=True)
    stop = threading.Event()
    stop.set()  # the initial picture only
    run_desktop(guest, stop, scene)
    assert scene.window_3d is None and device.guest_bug is None
