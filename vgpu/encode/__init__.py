"""The Python face of the C encoders and the per-region choice of codec."""

from vgpu.encode.codecs import (
    changed_tiles,
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_lz_rgba,
)

__all__ = [
    "changed_tiles",
    "encode_jpeg",
    "encode_lz4_rgb32",
    "encode_lz_rgb32",
    "encode_lz_rgba",
]
