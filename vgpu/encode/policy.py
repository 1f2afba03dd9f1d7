"""Which codec encodes a region: decided from its content and what the client decodes.

Lossless unless the caller allows loss:
- content with alpha: SPICE LZ, type RGBA (the one codec here that keeps it);
- desktop-like content (few colours, long runs): SPICE LZ, which every client
  decodes and which beats LZ4 on both size and speed on such frames (see
  bench/encode.py);
- photographic content: QUIC where the client has it (about twice LZ's ratio
  on photos); else LZ4 where the client has it, since LZ barely compresses
  photos (ratio ~1.3) and LZ4 is several times faster at nearly that size;
  else LZ;
- JPEG only when lossy_allowed and the content is photographic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgpu.device.abi import lib
from vgpu.encode.codecs import (
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_lz_rgba,
    encode_quic_rgb32,
)

# SpiceImageType numbers from the one place they are declared, csrc/qxl_abi.h
# (the device reads the same numbers from guest images; a test checks them).
SPICE_IMAGE_TYPE_QUIC = lib.SPICE_IMAGE_TYPE_QUIC
SPICE_IMAGE_TYPE_LZ_RGB = lib.SPICE_IMAGE_TYPE_LZ_RGB
SPICE_IMAGE_TYPE_JPEG = lib.SPICE_IMAGE_TYPE_JPEG
SPICE_IMAGE_TYPE_LZ4 = lib.SPICE_IMAGE_TYPE_LZ4

# The content estimate looks at whole rows (runs need neighbours), every k-th
# one, up to this many pixels: enough for a stable estimate, cheap next to
# any encode.
SAMPLE_PIXELS = 16384
# Photographic: few pixels repeat their left neighbour...
PHOTO_MAX_REPEAT = 0.35
# ...and the sample holds many distinct colours (as a fraction of its pixels).
PHOTO_MIN_COLOURS = 0.2
# Regions smaller than this are not worth classifying: LZ.
MIN_CLASSIFY_PIXELS = 1024
# JPEG quality for lossy regions: spice-server's default is 85; 80 keeps text
# in mixed regions readable while saving a fifth more.
JPEG_QUALITY = 80


@dataclass(frozen=True)
class ClientCodecs:
    """What the client can decode (beyond LZ, which every client decodes)."""

    lz4: bool = False
    jpeg: bool = True
    quic: bool = True


@dataclass(frozen=True)
class EncodedImage:
    image_type: int  # SPICE_IMAGE_TYPE_*
    data: bytes      # the codec's stream, without descriptor or data_size prefix
    lossy: bool


def is_photographic(pixels: np.ndarray) -> bool:
    """Estimate from a sample of rows: many colours and few repeated neighbours."""
    h, w = pixels.shape[:2]
    if h * w < MIN_CLASSIFY_PIXELS:
        return False
    step = max(1, (h * w) // SAMPLE_PIXELS)
    rows = pixels[::step] if step < h else pixels[:1]
    rgb = np.ascontiguousarray(rows).view(np.uint32)[..., 0] & 0x00FFFFFF
    if w > 1:
        repeat = float(np.count_nonzero(rgb[:, 1:] == rgb[:, :-1])) / (rgb.shape[0] * (w - 1))
    else:
        repeat = float(np.count_nonzero(rgb[1:] == rgb[:-1])) / max(1, rgb.shape[0] - 1)
    if repeat > PHOTO_MAX_REPEAT:
        return False
    return len(np.unique(rgb)) >= PHOTO_MIN_COLOURS * rgb.size


def encode_region(pixels: np.ndarray, client: ClientCodecs, lossy_allowed: bool = False,
                  has_alpha: bool = False) -> EncodedImage:
    """Encodes one region (a B,G,R,X or B,G,R,A frame or crop) with the codec
    that suits its content and the client."""
    if has_alpha:
        return EncodedImage(SPICE_IMAGE_TYPE_LZ_RGB, encode_lz_rgba(pixels), False)
    if not is_photographic(pixels):
        return EncodedImage(SPICE_IMAGE_TYPE_LZ_RGB, encode_lz_rgb32(pixels), False)
    if lossy_allowed and client.jpeg:
        return EncodedImage(SPICE_IMAGE_TYPE_JPEG, encode_jpeg(pixels, JPEG_QUALITY), True)
    if client.quic:
        return EncodedImage(SPICE_IMAGE_TYPE_QUIC, encode_quic_rgb32(pixels), False)
    if client.lz4:
        return EncodedImage(SPICE_IMAGE_TYPE_LZ4, encode_lz4_rgb32(pixels), False)
    return EncodedImage(SPICE_IMAGE_TYPE_LZ_RGB, encode_lz_rgb32(pixels), False)
