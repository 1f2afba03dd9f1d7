"""cffi build script for vgpu._qxl: the QXL ABI structs, for reading guest memory."""

import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cdef import cdef_text  # noqa: E402

ffi = FFI()
ffi.cdef(cdef_text(HERE / "qxl_abi.h"), packed=True)
ffi.set_source(
    "vgpu._qxl",
    '#include "qxl_abi.h"',
    include_dirs=[str(HERE)],
    py_limited_api=False,
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    # Developer rebuild: writes vgpu/<module>.cpython-*.so next to the package.
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
