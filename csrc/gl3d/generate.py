"""Writes the 3D ring's GL command decoders (C) from vgpu/device/glwire.py.

For every GL command of glwire the output has a decoder that reads the parameters by their
wire kind from the copied batch, checks that the body is exactly as long as they need, and
then either calls the GL entry point (plain commands: names mapped through the context's
tables, answers through scratch memory into guest memory) or hands the decoded values to a
handwritten `h_<command>` in gl3d.c (every command with blobs, strings or name arrays, and
the ones whose state the executor tracks). Which commands have a handwritten part is read
from gl3d.c itself, so the two cannot disagree.

Run by csrc/build_gl3d.py at build time: `generate.py OUTDIR` writes OUTDIR/gl3d_gen.h and
OUTDIR/gl3d_gen.c (never committed). glwire is loaded by path so no built vgpu is needed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GLWIRE = HERE.parents[1] / "vgpu" / "device" / "glwire.py"


def load_glwire():
    spec = importlib.util.spec_from_file_location("vgpu_glwire", GLWIRE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["vgpu_glwire"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


TABLE_ENUM = {
    "buffer": "T_BUFFER", "texture": "T_TEXTURE", "renderbuffer": "T_RENDERBUFFER",
    "program": "T_PROGRAM", "sampler": "T_SAMPLER", "sync": "T_SYNC",
    "framebuffer": "T_FRAMEBUFFER", "vertex array": "T_VERTEX_ARRAY", "query": "T_QUERY",
    "transform feedback": "T_TF",
}

# bytes of one element of an output array, by the C type it points to
OUT_ELEM = {"GLint": 4, "GLuint": 4, "GLfloat": 4, "GLsizei": 4, "GLenum": 4, "GLboolean": 1,
            "GLchar": 1, "GLint64": 8, "GLuint64": 8, "GLubyte": 1, "void": 1}

# the C size of a return value written to a `ret` answer
RET_SIZE = {"GLenum": 4, "GLboolean": 1, "GLint": 4, "GLuint": 4}


def hooked_commands(known: set[str]) -> set[str]:
    """h_gl* functions of gl3d.c: defined plainly, or by a macro whose arguments name them
    without the gl prefix (`IS(IsBuffer, T_BUFFER, 0)`)."""
    text = (HERE / "gl3d.c").read_text()
    hooks = set(re.findall(r"^void\s+h_(gl\w+)\s*\(", text, re.M))
    for args in re.findall(r"^[A-Z][A-Z_]*\(([^)]*)\)$", text, re.M):
        hooks |= {"gl" + a.strip() for a in args.split(",")} & known
    return hooks


def base_type(ctype: str) -> str:
    return ctype.replace("const", "").replace("*", "").strip()


def hook_ctype(p) -> str:
    return {"word": p.ctype, "wide": p.ctype, "offset": "uint64_t", "name": "uint32_t",
            "names": "const uint32_t *", "new_names": "const uint32_t *",
            "new_name": "uint32_t", "array": "const void *",
            "blob": "const struct g3_blob *", "strings": "const struct g3_blob *",
            "out": "const struct g3_out *", "ret": "const struct g3_out *"}[p.kind]


def count_expr(expr: str, params) -> str:
    names = {p.name for p in params}

    def sub(m: re.Match[str]) -> str:
        word = m.group(0)
        if word in names:
            return f"(int64_t)v_{word}"
        raise ValueError(f"count {expr!r} names {word!r}, not a parameter")
    return re.sub(r"[A-Za-z_]\w*", sub, expr)


def decoder(cmd, hooks: set[str]) -> str:
    lines = [f"static void d_{cmd.name}(G3 *g, const uint8_t *b, uint32_t n)", "{",
             "    uint32_t at = 0;", "    int bad_ref = 0;", "    (void)b;"]
    hooked = cmd.name in hooks
    needs_hook = {"blob", "strings", "names", "new_names", "new_name"}
    if not hooked and any(p.kind in needs_hook for p in cmd.params):
        raise ValueError(f"{cmd.name} has {[p.kind for p in cmd.params]}: needs h_{cmd.name}")
    for p in cmd.params:
        v = f"v_{p.name}"
        if p.kind == "word":
            lines += [f"    {p.ctype} {v};", "    if (n - at < 1) goto lost;"]
            if p.ctype in ("GLfloat", "GLclampf"):
                lines.append(f"    {v} = g3_float(b, at++);")
            else:
                lines.append(f"    {v} = ({p.ctype})g3_word(b, at++);")
        elif p.kind in ("wide", "offset"):
            t = "uint64_t" if p.kind == "offset" else p.ctype
            lines += [f"    {t} {v};", "    if (n - at < 2) goto lost;",
                      f"    {v} = ({t})g3_wide(b, at); at += 2;"]
        elif p.kind in ("name", "new_name"):
            lines += [f"    uint32_t {v};", "    if (n - at < 1) goto lost;",
                      f"    {v} = g3_word(b, at++);"]
        elif p.kind in ("names", "new_names", "array"):
            lines += [f"    int64_t c_{p.name} = {count_expr(p.count, cmd.params)};",
                      f"    if (c_{p.name} < 0) c_{p.name} = 0;",
                      f"    if ((int64_t)(n - at) < c_{p.name}) goto lost;",
                      f"    const {'uint32_t' if p.kind != 'array' else 'void'} *{v} = "
                      f"(const void *)(b + 4 * (size_t)at); at += (uint32_t)c_{p.name};"]
        elif p.kind in ("blob", "strings"):
            lines += [f"    struct g3_blob {v};",
                      f"    if (g3_take_blob(g, b, n, &at, &{v}, &bad_ref) < 0) goto lost;"]
        elif p.kind in ("out", "ret"):
            lines += [f"    struct g3_out {v};", "    if (n - at < 3) goto lost;",
                      f"    {v}.addr = g3_wide(b, at); {v}.cap = g3_word(b, at + 2); at += 3;"]
        else:
            raise ValueError(p.kind)
    lines.append("    if (at != n) goto lost;")
    lines.append("    if (bad_ref) { g3_error(g, GL_INVALID_VALUE); return; }")
    if hooked:
        args = ["g"] + [(f"&v_{p.name}" if p.kind in ("blob", "strings", "out", "ret")
                         else f"v_{p.name}") for p in cmd.params]
        lines.append(f"    h_{cmd.name}({', '.join(args)});")
    else:
        lines += generic_call(cmd)
    lines += ["    return;", "lost:", "    g3_lose_current(g);", "}", ""]
    return "\n".join(lines)


def generic_call(cmd) -> list[str]:
    """A plain command: names looked up, outs through scratch, the call, answers written."""
    out: list[str] = []
    params = {p.name: p for p in cmd.params}
    for p in cmd.params:
        if p.kind == "name":
            host = "GLsync" if p.ctype == "GLsync" else "GLuint"
            fn = "g3_sync" if p.ctype == "GLsync" else "g3_host_name"
            out += [f"    {host} h_{p.name};",
                    f"    if (!{fn}(g, {TABLE_ENUM[p.table]}, v_{p.name}, &h_{p.name})) "
                    "{ g3_error(g, GL_INVALID_OPERATION); return; }"]
    outs = [p for p in cmd.params if p.kind == "out"]
    clamp: dict[str, str] = {}
    for i, p in enumerate(outs):
        elem = OUT_ELEM[base_type(p.ctype)]
        size = p.size or "1"
        if size.isdigit():
            count = size
        elif size in params and params[size].kind == "word":
            # a bufSize or count parameter: what GL may write, held to the capacity
            count = f"g3_clamp_count(v_{size}, v_{p.name}.cap, {elem})"
            clamp[size] = f"(GLsizei)g3_clamp_count(v_{size}, v_{p.name}.cap, {elem})"
        elif size.startswith("COMPSIZE("):
            args = [f"(int64_t)v_{a}" for a in size[9:-1].split(",") if a]
            args += ["0"] * (3 - len(args))
            count = f"g3_compsize_count(g, {cmd.opcode:#x}, {', '.join(args)})"
        else:
            raise ValueError(f"{cmd.name}.{p.name}: size {size!r}")
        # negative: a pname with no known size (refused), or a negative bufSize (GL's)
        bad = "GL_INVALID_ENUM" if size.startswith("COMPSIZE(") else "GL_INVALID_VALUE"
        out += [f"    int64_t n_{p.name} = {count};",
                f"    if (n_{p.name} < 0) {{ g3_error(g, {bad}); return; }}",
                f"    void *s_{p.name} = g3_out_scratch(g, {i}, (size_t)n_{p.name} * {elem});",
                f"    if (!s_{p.name} || !g3_out_ok(g, &v_{p.name})) "
                "{ g3_error(g, GL_INVALID_VALUE); return; }"]
    args = []
    for ctype, name in cmd.c_params:
        p = params.get(name)
        if p is None:
            raise ValueError(f"{cmd.name}.{name} is not on the wire")
        if p.kind == "name":
            args.append(f"h_{name}")
        elif p.kind == "offset":
            args.append(f"(const void *)(uintptr_t)v_{name}")
        elif p.kind == "array":
            args.append(f"({ctype})v_{name}")
        elif p.kind == "out":
            args.append(f"({ctype})s_{name}")
        elif name in clamp:
            args.append(clamp[name])
        else:
            args.append(f"v_{name}")
    call = f"g3gl.{cmd.name[2:]}({', '.join(args)})"
    ret = [p for p in cmd.params if p.kind == "ret"]
    if ret:
        rtype = cmd.ret
        if rtype not in RET_SIZE:
            raise ValueError(f"{cmd.name}: return type {rtype} needs a hook")
        out += [f"    {rtype} r = {call};", "    int err = g3_gl_error(g);",
                f"    if (!err) g3_answer(g, &v_result, &r, {RET_SIZE[rtype]});"]
    else:
        out += [f"    {call};", "    int err = g3_gl_error(g);"]
    for p in outs:
        elem = OUT_ELEM[base_type(p.ctype)]
        out.append(f"    if (!err) g3_answer(g, &v_{p.name}, s_{p.name}, "
                   f"(size_t)n_{p.name} * {elem});")
    if not ret and not outs:
        out.append("    (void)err;")
    return out


def main(outdir: Path) -> None:
    glwire = load_glwire()
    cmds = glwire.commands()
    hooks = hooked_commands({c.name for c in cmds})
    live = [c for c in cmds if c.excluded is None]
    unknown = hooks - {c.name for c in live}
    if unknown:
        raise ValueError(f"gl3d.c hooks commands glwire does not send: {sorted(unknown)}")
    h = ["/* Generated by csrc/gl3d/generate.py from vgpu/device/glwire.py: do not edit. */",
         "#ifndef GL3D_GEN_H", "#define GL3D_GEN_H", "#include \"gl3d_internal.h\"", "",
         f"#define G3_GL_OPCODE_BASE {glwire.GL_OPCODE_BASE:#x}",
         f"#define G3_GL_COMMANDS {len(cmds)}",
         f"#define G3_OP_glGetError {glwire.by_name()['glGetError'].opcode:#x}",
         f"#define G3_OP_PRESENT {glwire.VGPU_COMMANDS['PRESENT'][0]:#x}",
         f"#define G3_PRESENT_WORDS {glwire.VGPU_COMMANDS['PRESENT'][1]}",
         f"#define G3_OP_FENCE {glwire.VGPU_COMMANDS['FENCE'][0]:#x}",
         f"#define G3_FENCE_WORDS {glwire.VGPU_COMMANDS['FENCE'][1]}", "",
         "struct g3_gl {"]
    names = sorted(c.name for c in cmds if c.excluded is None)
    h += [f"    __typeof__({n}) *{n[2:]};" for n in names]
    h += ["};", "extern struct g3_gl g3gl;",
          "int g3_load_procs(void *(*getproc)(const char *));",
          "typedef void (*g3_decoder)(G3 *g, const uint8_t *body, uint32_t nwords);",
          "extern const g3_decoder g3_decoders[G3_GL_COMMANDS];",
          "extern const char *const g3_command_names[G3_GL_COMMANDS];", ""]
    for c in live:
        if c.name in hooks:
            args = ", ".join(["G3 *g"] + [f"{hook_ctype(p)} {p.name}" for p in c.params])
            h.append(f"void h_{c.name}({args});")
    h += ["#endif", ""]
    src = ["/* Generated by csrc/gl3d/generate.py from vgpu/device/glwire.py: do not edit. */",
           "#include \"gl3d_gen.h\"", "", "struct g3_gl g3gl;", "",
           "int g3_load_procs(void *(*getproc)(const char *))", "{"]
    for n in names:
        src.append(f"    if (!(g3gl.{n[2:]} = (__typeof__(g3gl.{n[2:]}))getproc(\"{n}\"))) "
                   "return -1;")
    src += ["    return 0;", "}", ""]
    for c in live:
        src.append(decoder(c, hooks))
    src.append("const g3_decoder g3_decoders[G3_GL_COMMANDS] = {")
    src += [f"    d_{c.name}," if c.excluded is None else "    0,  /* excluded */" for c in cmds]
    src += ["};", "", "const char *const g3_command_names[G3_GL_COMMANDS] = {"]
    src += [f"    \"{c.name}\"," for c in cmds]
    src += ["};", ""]
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "gl3d_gen.h").write_text("\n".join(h))
    (outdir / "gl3d_gen.c").write_text("\n".join(src))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
