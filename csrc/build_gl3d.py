"""cffi build script for vgpu._gl3d: the 3D ring's executor in C (csrc/gl3d/).

The GL command decoders are generated at build time by csrc/gl3d/generate.py from
vgpu/device/glwire.py into build/gl3d/ (never committed). GL entry points come from
eglGetProcAddress at run time, so nothing links against libGL. VGPU_SANITIZE=1 builds with
AddressSanitizer and UBSan (see csrc/build_encode.py for running Python with them);
tests/render/test_gl3d_sanitize.py builds the C alone with a driver under both.
"""

import os
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
GL3D = HERE / "gl3d"
GENERATED = HERE.parent / "build" / "gl3d"
sys.path.insert(0, str(HERE))
from cdef import cdef_text, compile_flags  # noqa: E402

subprocess.run([sys.executable, str(GL3D / "generate.py"), str(GENERATED)], check=True)

SOURCES = [str(GL3D / "gl3d.c"), str(GENERATED / "gl3d_gen.c")]
CFLAGS, LDFLAGS = compile_flags()

ffi = FFI()
ffi.cdef(cdef_text(GL3D / "gl3d.h"))
ffi.set_source(
    "vgpu._gl3d",
    '#include "gl3d.h"',
    sources=[os.path.relpath(s, HERE.parent) for s in SOURCES],
    include_dirs=[str(GL3D), str(GENERATED), str(HERE)],
    libraries=["dl"],
    py_limited_api=False,
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS,
)

if __name__ == "__main__":
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
