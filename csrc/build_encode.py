"""cffi build script for vgpu._encode: the C encoders (tiles, SPICE LZ, QUIC, LZ4, JPEG).

API mode: cffi wraps each call in Py_BEGIN/END_ALLOW_THREADS, so encoders run
without the GIL (tests/encode proves it). VGPU_SANITIZE=1 builds with
AddressSanitizer and UBSan; run Python with the runtimes preloaded, e.g.
    LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 .venv/bin/python -m pytest tests/encode
(tests/encode/test_sanitize.py also builds the C sources alone under both
sanitizers on every run.)
"""

import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ENCODE = HERE / "encode"
sys.path.insert(0, str(HERE))
from cdef import cdef_text, compile_flags  # noqa: E402

SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in ENCODE.glob("*.c"))
CFLAGS, LDFLAGS = compile_flags()

ffi = FFI()
ffi.cdef(cdef_text(ENCODE / "vgpu_encode.h"))
ffi.set_source(
    "vgpu._encode",
    '#include "vgpu_encode.h"',
    sources=SOURCES,
    include_dirs=[str(ENCODE)],
    libraries=["lz4", "jpeg"],
    py_limited_api=False,
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS,
)

if __name__ == "__main__":
    # Developer rebuild: writes vgpu/<module>.cpython-*.so next to the package.
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
