"""The 3D ring's command set, read from Khronos' registry: one source for every encoder
and decoder of docs/3d-ring.md.

The GL part of the command set is the OpenGL ES 2.0 and 3.0 API, one command per call,
numbered in the order of gl.xml's `GL_ES_VERSION_2_0` and `GL_ES_VERSION_3_0` feature
lists (frozen by Khronos, so the numbers never move). Each parameter gets a wire `kind`
(docs/3d-ring.md, "Parameters") from its C type and the registry's `class` and `len`
attributes; the few calls the registry cannot describe well enough are named here with
the reason.

This module must stay importable without the rest of vgpu (the cffi build script of the
C decoder loads it by path) and must never touch GL.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REGISTRY_PATHS = (
    os.environ.get("VGPU_GL_XML", ""),
    "/usr/share/khronos-api/gl.xml",  # Debian's khronos-api package
)
"""Where gl.xml is looked for: an override for other systems, then Debian's place."""

FEATURES = ("GL_ES_VERSION_2_0", "GL_ES_VERSION_3_0")
"""The API versions on the wire: the command numbers follow these lists in order."""

GL_OPCODE_BASE = 0x100
"""GL commands are numbered from here; vgpu's own commands sit below (docs/3d-ring.md)."""

MAX_BODY_WORDS = 0xFFFF
"""A header's 16-bit length field: 256 KiB of body at most. Larger data goes by reference."""

# vgpu's own commands (docs/3d-ring.md, "vgpu commands"): name -> (opcode, body words).
VGPU_COMMANDS: dict[str, tuple[int, int]] = {
    "CONTEXT_CREATE": (0x01, 3),   # ctx, api major version (2 or 3), share ctx (0: none)
    "CONTEXT_DESTROY": (0x02, 1),  # ctx
    "MAKE_CURRENT": (0x03, 2),     # ctx (0: none), draw surface (0: none)
    "SURFACE_CREATE": (0x04, 5),   # surface, width, height, flags (VGPU_3D_SURFACE_*), samples
    "SURFACE_DESTROY": (0x05, 1),  # surface
    "PRESENT": (0x06, 9),          # fb, x, y, w, h, qxl surface, dst x, dst y, n rects (+4n)
    "FENCE": (0x07, 3),            # value lo, value hi, flags (VGPU_3D_FENCE_*)
}

EXCLUDED = {
    # Mapping hands the guest a pointer into host memory; the guest library emulates it
    # with its own copy and a glBufferSubData at unmap.
    "glMapBufferRange": "emulated in the guest",
    "glUnmapBuffer": "emulated in the guest",
    "glFlushMappedBufferRange": "emulated in the guest",
    "glGetBufferPointerv": "emulated in the guest",
    # No binary shader or program formats are offered (GL_NUM_*_BINARY_FORMATS is 0).
    "glShaderBinary": "no binary formats",
    "glGetProgramBinary": "no binary formats",
    "glProgramBinary": "no binary formats",
    # Host names must never reach the guest; the guest library keeps the attachment list.
    "glGetAttachedShaders": "answered by the guest",
}
"""GL ES calls that have a command number but are never sent, with the reason."""

OBJECT_TABLES = {
    "buffer": "buffer", "texture": "texture", "renderbuffer": "renderbuffer",
    "framebuffer": "framebuffer", "program": "program", "shader": "program",
    "query": "query", "sampler": "sampler", "sync": "sync",
    "transform feedback": "transform feedback", "vertex array": "vertex array",
}
"""Registry object class -> the name table it lives in (shaders and programs share one
namespace in GL, so they share one table)."""

SHARED_TABLES = frozenset({"buffer", "texture", "renderbuffer", "program", "sampler", "sync"})
"""Tables a context created with a share context shares with it; the others (container
objects: framebuffers, vertex arrays, queries, transform feedbacks) stay per context."""

# Parameters the registry leaves without a class though they name objects.
_EXTRA_CLASS = {
    ("glBeginQuery", "id"): "query",
}

# `const void *` parameters that are byte offsets into a bound buffer, never pointers
# (client-side arrays are uploaded into buffers by the guest library).
_OFFSETS = {("glVertexAttribPointer", "pointer"), ("glVertexAttribIPointer", "pointer"),
            ("glDrawElements", "indices"), ("glDrawRangeElements", "indices"),
            ("glDrawElementsInstanced", "indices")}

# String-array parameters and the count and length parameters folded into them.
_STRINGS = {("glShaderSource", "string"): "length",
            ("glTransformFeedbackVaryings", "varyings"): None,
            ("glGetUniformIndices", "uniformNames"): None}

_SCALAR_TYPES = {"GLenum", "GLuint", "GLint", "GLsizei", "GLfloat", "GLboolean", "GLbitfield",
                 "GLclampf", "GLubyte", "GLbyte", "GLshort", "GLushort", "GLfixed"}
_WIDE_TYPES = {"GLintptr", "GLsizeiptr", "GLint64", "GLuint64"}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter as it travels.

    kind is one of (docs/3d-ring.md, "Parameters"):
      word      one 32-bit word (integers, enums, booleans; floats as their IEEE bits)
      wide      two words, low first (64-bit integers, buffer offsets and sizes)
      offset    two words: a byte offset into a bound buffer (a `const void *` in C)
      name      one word: a guest object name in `table` (0 is the default object)
      names     `count` words of guest names in `table` (glDelete*)
      new_names `count` words: names the guest chose for new objects (glGen*)
      new_name  one word: the guest's name for the object a glCreate*/glFenceSync makes
      array     `count` 32-bit elements inline (uniform values, enum lists)
      blob      bytes: inline or by reference (data, strings, pname-sized arrays)
      strings   a blob of the sources joined (glShaderSource) or NUL-separated strings
      out       three words: guest address (QXLPHYSICAL) and capacity of a reply
      ret       an `out` for the call's return value
    """

    name: str
    ctype: str
    kind: str
    table: str | None = None
    count: str | None = None  # for names/new_names/array: the length expression
    size: str | None = None   # for blob/out: the registry's len expression, if any


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    opcode: int
    ret: str            # C return type ("void" for none)
    params: tuple[Param, ...]
    c_params: tuple[tuple[str, str], ...]  # the C signature: (type, name) pairs
    excluded: str | None  # why it is never sent, or None


def registry_path() -> Path:
    for p in REGISTRY_PATHS:
        if p and Path(p).is_file():
            return Path(p)
    raise FileNotFoundError("gl.xml not found: install Debian's khronos-api package "
                            "or set VGPU_GL_XML")


def _ctype(node: ET.Element) -> str:
    text = "".join(node.itertext()).strip()
    name = node.find("name")
    assert name is not None and name.text is not None
    return text[: text.rfind(name.text)].strip()


def _param(cmd: str, node: ET.Element) -> Param:
    pname = node.findtext("name") or ""
    ctype = _ctype(node)
    cls = _EXTRA_CLASS.get((cmd, pname), node.get("class"))
    table = OBJECT_TABLES.get(cls) if cls else None
    length = node.get("len")
    pointer = "*" in ctype
    const = ctype.startswith("const")
    if (cmd, pname) in _OFFSETS:
        return Param(pname, ctype, "offset")
    if (cmd, pname) in _STRINGS:
        return Param(pname, ctype, "strings", size=length)
    if not pointer:
        if table is not None:
            return Param(pname, ctype, "name", table)
        if ctype == "GLsync":
            return Param(pname, ctype, "name", "sync")
        if ctype in _WIDE_TYPES:
            return Param(pname, ctype, "wide")
        if ctype in _SCALAR_TYPES:
            return Param(pname, ctype, "word")
        raise ValueError(f"{cmd}: no wire kind for {ctype} {pname}")
    if table is not None and length is not None and not length.startswith("COMPSIZE"):
        return Param(pname, ctype, "names" if const else "new_names", table, count=length)
    if not const:
        return Param(pname, ctype, "out", size=length)
    base = ctype.replace("const", "").replace("*", "").strip()
    if (base in {"GLfloat", "GLint", "GLuint", "GLenum"} and length is not None
            and not length.startswith("COMPSIZE")):
        return Param(pname, ctype, "array", count=length)
    return Param(pname, ctype, "blob", size=length)


def _command(name: str, opcode: int, node: ET.Element) -> Command:
    proto = node.find("proto")
    assert proto is not None
    ret = _ctype(proto)
    c_params = tuple((_ctype(p), p.findtext("name") or "") for p in node.findall("param"))
    params = [_param(name, p) for p in node.findall("param")]
    folded = {_STRINGS[(name, p.name)] for p in params if (name, p.name) in _STRINGS}
    params = [p for p in params if p.name not in folded]
    if name in ("glCreateShader", "glCreateProgram"):
        params.insert(0, Param("result", ret, "new_name", "program"))
    elif name == "glFenceSync":
        params.insert(0, Param("result", ret, "new_name", "sync"))
    elif ret != "void":
        params.append(Param("result", ret, "ret"))
    return Command(name, opcode, ret, tuple(params), c_params, EXCLUDED.get(name))


@functools.cache
def commands() -> tuple[Command, ...]:
    """Every GL ES 2.0 and 3.0 command, numbered; excluded ones keep their number."""
    root = ET.parse(registry_path()).getroot()
    nodes = {}
    for c in root.iter("command"):
        proto = c.find("proto")
        if proto is not None:
            nodes[proto.findtext("name")] = c
    names: list[str] = []
    for feature in root.findall("feature"):
        if feature.get("api") == "gles2" and feature.get("name") in FEATURES:
            for req in feature.findall("require"):
                names.extend(c.get("name", "") for c in req.findall("command")
                             if c.get("name") not in names)
    return tuple(_command(n, GL_OPCODE_BASE + i, nodes[n]) for i, n in enumerate(names))


@functools.cache
def by_name() -> dict[str, Command]:
    return {c.name: c for c in commands()}


@functools.cache
def enums() -> dict[str, int]:
    """Every GL enum of the registry by name (GL_TRIANGLES -> 4), for encoders and tests."""
    root = ET.parse(registry_path()).getroot()
    out: dict[str, int] = {}
    for group in root.findall("enums"):
        for e in group.findall("enum"):
            if e.get("api") in (None, "gles2") and e.get("name") not in out:
                out[e.get("name", "")] = int(e.get("value", "0"), 0)
    return out
