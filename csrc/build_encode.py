"""cffi build script for vgpu._encode: the C encoders (tiles, SPICE LZ, QUIC, LZ4, JPEG)."""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

ffi = FFI()
ffi.cdef("int vgpu_encode_abi_version(void);")
ffi.set_source(
    "vgpu._encode",
    "static int vgpu_encode_abi_version(void) { return 1; }",
    py_limited_api=False,
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    # Developer rebuild: writes vgpu/<module>.cpython-*.so next to the package.
    ffi.compile(tmpdir=str(HERE.parent), verbose=False)
