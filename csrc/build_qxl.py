"""cffi build script for vgpu._qxl: the QXL ABI structs, for reading guest memory."""

import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cdef import cdef_text  # noqa: E402

# The atomic helpers declared at the end of qxl_abi.h: the interrupt word is shared
# with a guest that may run in another process, so plain Python read-modify-write
# would lose bits; the 3D fence's 64-bit value is read whole, never half-written.
SOURCE = """
#include "qxl_abi.h"
#define SC __ATOMIC_SEQ_CST
uint32_t vgpu_atomic_or32(uint32_t *p, uint32_t v) { return __atomic_fetch_or(p, v, SC); }
uint32_t vgpu_atomic_xchg32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, SC); }
uint32_t vgpu_atomic_load32(uint32_t *p) { return __atomic_load_n(p, SC); }
void vgpu_atomic_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, SC); }
uint64_t vgpu_atomic_load64(uint64_t *p) { return __atomic_load_n(p, SC); }
void vgpu_atomic_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, SC); }
"""

ffi = FFI()
ffi.cdef(cdef_text(HERE / "qxl_abi.h"), packed=True)
ffi.set_source(
    "vgpu._qxl",
    SOURCE,
    include_dirs=[str(HERE)],
    py_limited_api=False,
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    # Developer rebuild: writes vgpu/<module>.cpython-*.so next to the package.
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
