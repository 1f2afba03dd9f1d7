"""The Python face of the C encoders and the per-region choice of codec."""

from vgpu.encode.codecs import (
    changed_tiles,
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_lz_rgba,
    encode_quic_rgb32,
)

__all__ = [
    "changed_tiles",
    "encode_jpeg",
    "encode_lz4_rgb32",
    "encode_lz_rgb32",
    "encode_lz_rgba",
    "encode_quic_rgb32",
]
