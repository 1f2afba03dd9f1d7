"""A model of the 3D ring's host side for testing the guest library alone: `ReferenceRing`
takes the batches `vgpu.guest.gl` submits (through `FakeRing`'s framing reader) and calls
each command on a moderngl context's GL with ctypes, translating guest names, blobs and
`out` references as docs/3d-ring.md says. It checks nothing a hostile guest could abuse and
is no executor: the real one (vgpu.render.gl3d) runs the same scenes in
test_gl_transparency.py. This one shows that the guest library alone says what moderngl
does, before and apart from the host side.
"""

from __future__ import annotations

import ctypes
from typing import Any

from gl_fake import Cmd, FakeRing, read_batch

from vgpu.device import glwire

GL = glwire.enums()
_EGL = ctypes.CDLL("libEGL.so.1")
_EGL.eglGetProcAddress.restype = ctypes.c_void_p
_EGL.eglGetProcAddress.argtypes = [ctypes.c_char_p]

_CTYPES = {"GLfloat": ctypes.c_float, "GLclampf": ctypes.c_float, "GLint": ctypes.c_int,
           "GLsizei": ctypes.c_int, "GLintptr": ctypes.c_ssize_t,
           "GLsizeiptr": ctypes.c_ssize_t, "GLint64": ctypes.c_int64,
           "GLuint64": ctypes.c_uint64, "GLboolean": ctypes.c_ubyte}
_GEN = {"glGenBuffers", "glGenTextures", "glGenRenderbuffers", "glGenFramebuffers",
        "glGenVertexArrays", "glGenQueries", "glGenSamplers", "glGenTransformFeedbacks"}


def _ctype(c: str) -> Any:
    if "*" in c or c == "GLsync":
        return ctypes.c_void_p
    return _CTYPES.get(c, ctypes.c_uint)


class ReferenceRing(FakeRing):
    """FakeRing whose batches run on the current GL context (one moderngl context made
    current on this thread; one guest context at a time)."""

    def __init__(self) -> None:
        super().__init__()
        self.fns: dict[str, Any] = {}
        self.names: dict[str, dict[int, int]] = {t: {0: 0} for t in
                                                 set(glwire.OBJECT_TABLES.values())}
        self.surfaces: dict[int, int] = {}

    def fn(self, name: str) -> Any:
        f = self.fns.get(name)
        if f is None:
            cmd = glwire.by_name()[name]
            proto = ctypes.CFUNCTYPE(None if cmd.ret == "void" else _ctype(cmd.ret),
                                     *[_ctype(t) for t, _ in cmd.c_params])
            f = self.fns[name] = proto(_EGL.eglGetProcAddress(name.encode()))
        return f

    def gl_submit(self, batch: bytes | memoryview) -> None:
        for cmd in read_batch(bytes(batch), self.data):
            self.commands.append(cmd)
            if cmd.name in glwire.VGPU_COMMANDS:
                self._vgpu(cmd)
            else:
                self._call(cmd)

    def _vgpu(self, cmd: Cmd) -> None:
        w = cmd.args["words"]
        if cmd.name == "SURFACE_CREATE":  # an fbo stands in for the EGL surface
            fbo, rb = (ctypes.c_uint * 1)(), (ctypes.c_uint * 2)()
            self.fn("glGenFramebuffers")(1, fbo)
            self.fn("glGenRenderbuffers")(2, rb)
            self.fn("glBindFramebuffer")(GL["GL_FRAMEBUFFER"], fbo[0])
            for i, (fmt, point) in enumerate(((GL["GL_RGBA8"], GL["GL_COLOR_ATTACHMENT0"]),
                                              (GL["GL_DEPTH_COMPONENT24"],
                                               GL["GL_DEPTH_ATTACHMENT"]))):
                self.fn("glBindRenderbuffer")(GL["GL_RENDERBUFFER"], rb[i])
                self.fn("glRenderbufferStorage")(GL["GL_RENDERBUFFER"], fmt, w[1], w[2])
                self.fn("glFramebufferRenderbuffer")(GL["GL_FRAMEBUFFER"], point,
                                                     GL["GL_RENDERBUFFER"], rb[i])
            self.surfaces[w[0]] = fbo[0]
        elif cmd.name == "MAKE_CURRENT":
            self.names["framebuffer"][0] = self.surfaces.get(w[1], 0)
            self.fn("glBindFramebuffer")(GL["GL_FRAMEBUFFER"], self.names["framebuffer"][0])
        elif cmd.name == "CONTEXT_CREATE":
            # A new context's state is GL's defaults, not what moderngl set on the context
            # this model borrows; ES samples cube maps seamlessly, desktop GL when asked.
            self.fn("glBlendFunc")(GL["GL_ONE"], GL["GL_ZERO"])
            self.fn("glDisable")(GL["GL_PRIMITIVE_RESTART"])
            self.fn("glEnable")(GL["GL_TEXTURE_CUBE_MAP_SEAMLESS"])

    def _call(self, cmd: Cmd) -> None:
        spec = glwire.by_name()[cmd.name]
        kinds = {p.name: p for p in spec.params}
        a = cmd.args
        keep: list[Any] = []
        args: list[Any] = []
        created: tuple[str, list[int], Any] | None = None
        for _, pname in spec.c_params:
            p = kinds.get(pname)
            if p is None:  # folded into `strings` (glShaderSource's length)
                args.append(None)
                continue
            v = a[pname]
            if p.kind == "name":
                args.append(self.names[p.table or "sync"].get(v, v))
            elif p.kind in ("names", "new_names"):
                arr = (ctypes.c_uint * max(1, len(v)))(*[self.names[p.table].get(x, x)
                                                          for x in v])
                if p.kind == "new_names":
                    created = (p.table, list(v), arr)
                keep.append(arr)
                args.append(ctypes.cast(arr, ctypes.c_void_p))
            elif p.kind == "array":
                arr = (ctypes.c_uint * max(1, len(v)))(*v)
                keep.append(arr)
                args.append(ctypes.cast(arr, ctypes.c_void_p))
            elif p.kind == "blob":
                buf = None if v is None else ctypes.create_string_buffer(bytes(v), len(v) + 1)
                keep.append(buf)
                args.append(None if buf is None else ctypes.cast(buf, ctypes.c_void_p))
            elif p.kind == "strings":
                parts = [bytes(v)] if cmd.name == "glShaderSource" else bytes(v).split(b"\0")[:-1]
                arr = (ctypes.c_char_p * len(parts))(*parts)
                keep.append(arr)
                args.append(ctypes.cast(arr, ctypes.c_void_p))
            elif p.kind == "out":
                args.append(self._out(v))
            elif cmd.name == "glReadBuffer" and v == GL["GL_BACK"]:
                args.append(GL["GL_COLOR_ATTACHMENT0"])  # the surface is an fbo here
            else:
                args.append(v)
        result = self.fn(cmd.name)(*args)
        if created is not None:
            table, guest, arr = created
            for g, h in zip(guest, arr, strict=False):
                self.names[table][g] = h
        if cmd.name.startswith("glDelete") and cmd.name not in ("glDeleteShader",
                                                                 "glDeleteProgram"):
            table = next(p.table for p in spec.params if p.kind == "names")
            for g in a[next(p.name for p in spec.params if p.kind == "names")]:
                self.names[table].pop(g, None)
        for p in spec.params:
            if p.kind == "new_name":
                self.names[p.table or "sync"][a[p.name]] = result
            elif p.kind == "ret":
                size = 1 if spec.ret == "GLboolean" else 4
                addr, cap = a[p.name]
                self.replies[addr][:min(size, cap)] = int(result).to_bytes(8, "little",
                                                                           signed=True)[:size]

    def _out(self, ref: tuple[int, int]) -> Any:
        addr, cap = ref
        if not addr:
            return None
        return ctypes.addressof((ctypes.c_char * cap).from_buffer(self.replies[addr]))
