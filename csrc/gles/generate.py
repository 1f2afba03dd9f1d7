"""Writes the guest GL ES library's entry points and encoders (C) from vgpu/device/glwire.py.

For every GL command of glwire that is sent, the output has an entry point (`glFoo`) that
encodes the call into the current batch by the parameters' wire kinds (docs/3d-ring.md),
and, for calls that answer (`out`/`ret`), waits on a fence and copies the answer back.
Entry points with guest-side work (client arrays, buffer mapping, pixel store sizes,
local answers) are written by hand in gles.c as `glFoo` calling the generated `enc_glFoo`;
the generated `glFoo` is then left out. Which commands are handwritten is read from gles.c,
so the two cannot disagree. Blob and answer sizes the registry gives only as COMPSIZE come
from handwritten `vg_size_<cmd>` functions; a command needing one that gles.c lacks is
"not implemented" (GL_INVALID_OPERATION, its name logged once).

Also written: the enum values (from the registry), the GL types, the name -> entry point
table for eglGetProcAddress, and the excluded commands as not-implemented entry points.

`generate.py OUTDIR` writes OUTDIR/gles_gen.h and OUTDIR/gles_gen.c (never committed).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_glwire():
    """glwire, loaded by the executor's generator (csrc/gl3d/generate.py), which owns how."""
    spec = importlib.util.spec_from_file_location("vgpu_gl3d_generate",
                                                  HERE.parent / "gl3d" / "generate.py")
    assert spec is not None and spec.loader is not None
    gl3d = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gl3d)
    return gl3d.load_glwire()


TABLE_ENUM = {
    "buffer": "VG_T_BUFFER", "texture": "VG_T_TEXTURE", "renderbuffer": "VG_T_RENDERBUFFER",
    "program": "VG_T_PROGRAM", "sampler": "VG_T_SAMPLER", "sync": "VG_T_SYNC",
    "framebuffer": "VG_T_FRAMEBUFFER", "vertex array": "VG_T_VERTEX_ARRAY",
    "query": "VG_T_QUERY", "transform feedback": "VG_T_TF",
}

TYPES = """typedef unsigned int GLenum; typedef unsigned char GLboolean;
typedef unsigned int GLbitfield; typedef void GLvoid; typedef signed char GLbyte;
typedef short GLshort; typedef int GLint;
typedef unsigned char GLubyte; typedef unsigned short GLushort; typedef unsigned int GLuint;
typedef int GLsizei; typedef float GLfloat; typedef float GLclampf; typedef int GLfixed;
typedef char GLchar; typedef intptr_t GLintptr; typedef intptr_t GLsizeiptr;
typedef int64_t GLint64; typedef uint64_t GLuint64; typedef struct __GLsync *GLsync;
typedef unsigned short GLhalf;
"""


def handwritten() -> set[str]:
    text = (HERE / "gles.c").read_text()
    return set(re.findall(r"^VG_API\s+[\w *]+?\b(gl\w+)\s*\(", text, re.M))


def size_hooks() -> set[str]:
    text = (HERE / "gles.c").read_text()
    return (set(re.findall(r"\bvg_size_(gl\w+)\s*\(", text))
            | set(re.findall(r"^VG_SIZE\((gl\w+),", text, re.M)))


def c_expr(expr: str, params) -> str:
    names = {n for _, n in params}

    def sub(m: re.Match[str]) -> str:
        word = m.group(0)
        if word in names:
            return f"(int64_t){word}"
        raise ValueError(f"{expr!r} names {word!r}, not a parameter")
    return re.sub(r"[A-Za-z_]\w*", sub, expr)


def signature(cmd) -> str:
    params = ", ".join(f"{t} {n}" if not t.endswith("*") else f"{t}{n}"
                       for t, n in cmd.c_params) or "void"
    return params


def sized(p, cmd, hooks: set[str]) -> str | None:
    """C expression of a blob's or answer's byte size, or None when it needs a hook that
    does not exist."""
    if p.kind == "strings":
        return None
    if p.kind == "out":
        if p.size is None or p.size.startswith("COMPSIZE"):
            return f"vg_size_{cmd.name}({', '.join(n for _, n in cmd.c_params)})" \
                if cmd.name in hooks else None
        return f"({c_expr(p.size, cmd.c_params)}) * (int64_t)sizeof(*{p.name})"
    # blob
    if p.size is None or p.size.startswith("COMPSIZE"):
        return f"vg_size_{cmd.name}({', '.join(n for _, n in cmd.c_params)})" \
            if cmd.name in hooks else None
    return f"({c_expr(p.size, cmd.c_params)})"


def encoder(cmd, hooks: set[str]) -> tuple[str, bool]:
    """(C source of `enc_<cmd>`, whether it is implemented)."""
    lines: list[str] = []
    ret = "void" if cmd.ret == "void" else ("GLsync" if cmd.ret == "GLsync" else cmd.ret)
    sig = signature(cmd)
    lines.append(f"VG_INTERNAL {ret} enc_{cmd.name}({sig})\n{{")
    fixed = 0
    var: list[str] = []
    pre: list[str] = []
    body: list[str] = []
    post: list[str] = []
    sync = False
    ret_name = None
    for p in cmd.params:
        k = p.kind
        if k in ("word",):
            fixed += 1
            if p.ctype in ("GLfloat", "GLclampf"):
                body.append(f"    *wp++ = vg_fbits({p.name});")
            else:
                body.append(f"    *wp++ = (uint32_t){p.name};")
        elif k == "wide":
            fixed += 2
            body.append(f"    wp = vg_put64(wp, (uint64_t){p.name});")
        elif k == "offset":
            fixed += 2
            body.append(f"    wp = vg_put64(wp, (uint64_t)(uintptr_t){p.name});")
        elif k == "name":
            fixed += 1
            body.append(f"    *wp++ = (uint32_t)(uintptr_t){p.name};")
        elif k == "new_name":
            fixed += 1
            pre.append(f"    uint32_t result = vg_name_new({TABLE_ENUM[p.table]});\n"
                       "    if (!result) { vg_error(GL_OUT_OF_MEMORY); return 0; }")
            body.append("    *wp++ = result;")
            ret_name = "result"
        elif k in ("names", "new_names", "array"):
            cnt = c_expr(p.count, cmd.c_params)
            pre.append(f"    int64_t n_{p.name} = {cnt};\n"
                       f"    if (n_{p.name} < 0 || n_{p.name} > VG_MAX_INLINE_WORDS) "
                       "{ vg_error(GL_INVALID_VALUE); return" + ("" if ret == "void" else " 0")
                       + "; }")
            if k == "new_names":
                pre.append(f"    if (!vg_names_new({TABLE_ENUM[p.table]}, n_{p.name}, "
                           f"(uint32_t *){p.name})) {{ vg_error(GL_OUT_OF_MEMORY); return; }}")
            if k == "names":
                post.append(f"    vg_names_free({TABLE_ENUM[p.table]}, n_{p.name}, "
                            f"(const uint32_t *){p.name});")
            var.append(f"n_{p.name}")
            body.append(f"    if (n_{p.name}) memcpy(wp, {p.name}, (size_t)n_{p.name} * 4);\n"
                        f"    wp += n_{p.name};")
        elif k == "blob":
            size = sized(p, cmd, hooks)
            if size is None:
                return "", False
            pre.append(f"    int64_t s_{p.name} = {p.name} ? {size} : -1;\n"
                       f"    if ({p.name} && (s_{p.name} < 0 || s_{p.name} > VG_MAX_DATA)) "
                       "{ vg_error(GL_INVALID_VALUE); return" + ("" if ret == "void" else " 0")
                       + "; }\n"
                       f"    VgBlob b_{p.name} = vg_blob({p.name}, s_{p.name});")
            pre.append(f"    if (!b_{p.name}.words) return" + ("" if ret == "void" else " 0") + ";")
            var.append(f"b_{p.name}.words")
            body.append(f"    wp = vg_put_blob(wp, &b_{p.name});")
        elif k == "strings":
            return "", False  # glShaderSource and the NUL-separated ones: handwritten
        elif k in ("out", "ret"):
            sync = True
            if k == "ret":
                size = "(int64_t)sizeof(" + cmd.ret + ")"
            else:
                size = sized(p, cmd, hooks)
                if size is None:
                    return "", False
            nm = "result" if k == "ret" else p.name
            pre.append(f"    int64_t s_{nm} = {size};\n"
                       f"    if (s_{nm} < 0 || s_{nm} > VG_MAX_DATA) "
                       "{ vg_error(GL_INVALID_VALUE); return" + ("" if ret == "void" else " 0")
                       + "; }")
            if k == "ret":
                pre.append(f"    VgReply r_{nm} = vg_reply(NULL, s_{nm});")
            else:
                pre.append(f"    VgReply r_{nm} = vg_reply({nm}, {nm} ? s_{nm} : 0);")
            pre.append(f"    if (s_{nm} && {'1' if k == 'ret' else nm} && !r_{nm}.ptr) "
                       "{ vg_error(GL_OUT_OF_MEMORY); return" + ("" if ret == "void" else " 0")
                       + "; }")
            fixed += 3
            body.append(f"    wp = vg_put_reply(wp, &r_{nm});")
            if k == "ret":
                ret_name = "result"
                post.append(f"    {cmd.ret} result = 0;\n"
                            f"    if (r_{nm}.ptr) memcpy(&result, r_{nm}.ptr, sizeof result);")
            else:
                post.append(f"    if ({nm} && r_{nm}.ptr) memcpy({nm}, r_{nm}.ptr, "
                            f"(size_t)s_{nm});")
        else:
            raise ValueError(f"{cmd.name}: kind {k}")
    words = " + ".join([str(fixed)] + [f"(uint32_t)({v})" for v in var])
    lines += pre
    lines.append(f"    uint32_t *wp = vg_cmd(0x{cmd.opcode:x}, {words});")
    fail = "" if ret == "void" else " 0"
    lines.append(f"    if (!wp) return{fail};")
    lines += body
    if sync:
        lines.append("    vg_sync();")
    if cmd.name != "glGetError":
        lines.append(f'    if (vg_checking) vg_check("{cmd.name}");')
    lines += post
    if ret_name == "result" and cmd.ret == "GLsync":
        lines.append("    return (GLsync)(uintptr_t)result;")
    elif ret_name:
        lines.append(f"    return ({ret})result;")
    lines.append("}")
    src = "\n".join(lines) + "\n"
    return src, True


def main(outdir: Path) -> None:
    glwire = load_glwire()
    hand = handwritten()
    hooks = size_hooks()
    cmds = glwire.commands()
    enums = glwire.enums()
    outdir.mkdir(parents=True, exist_ok=True)
    h = ["/* generated by csrc/gles/generate.py from glwire: do not edit */",
         "#ifndef VG_GLES_GEN_H", "#define VG_GLES_GEN_H", "#include <stdint.h>", TYPES]
    for name, value in sorted(enums.items()):
        if name.startswith("GL_") and 0 <= value <= 0xFFFFFFFF:
            h.append(f"#define {name} 0x{value:x}u")
    c = ["/* generated by csrc/gles/generate.py from glwire: do not edit */",
         '#include "gles_internal.h"', ""]
    table: list[str] = []
    for cmd in cmds:
        ret = "GLsync" if cmd.ret == "GLsync" else cmd.ret
        h.append(f"VG_API {ret} {cmd.name}({signature(cmd)});")
        fail = "" if ret == "void" else " 0"
        if cmd.excluded is None:
            src, ok = encoder(cmd, hooks)
        else:
            src, ok = "", False
        if cmd.name in hooks:
            h.append(f"int64_t vg_size_{cmd.name}({signature(cmd)});")
        if ok:
            h.append(f"VG_INTERNAL {ret} enc_{cmd.name}({signature(cmd)});")
            c.append(src)
        if cmd.name in hand:
            table.append(cmd.name)
            continue
        args = ", ".join(n for _, n in cmd.c_params)
        c.append(f"VG_API {ret} {cmd.name}({signature(cmd)})\n{{")
        if ok:
            call = f"enc_{cmd.name}({args})"
            c.append(f"    return {call};" if ret != "void" else f"    {call};")
        else:
            for _, n in cmd.c_params:
                c.append(f"    (void){n};")
            c.append(f'    vg_unimplemented("{cmd.name}");')
            c.append(f"    return{fail};")
        c.append("}\n")
        table.append(cmd.name)
    known = {cmd.name for cmd in cmds}
    for name in sorted(hand - known):
        c.append(f"extern void {name}(void);")
        table.append(name)
    c.append("const VgProc vg_procs[] = {")
    for name in sorted(table):
        c.append(f'    {{"{name}", (void (*)(void)){name}}},')
    c.append("};")
    c.append(f"const unsigned vg_nprocs = {len(table)};")
    h.append("#endif")
    (outdir / "gles_gen.h").write_text("\n".join(h) + "\n")
    (outdir / "gles_gen.c").write_text("\n".join(c) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
