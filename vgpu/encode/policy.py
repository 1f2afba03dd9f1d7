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
# ...and the sample holds many distinct colours (as a fraction of its pixels)...
PHOTO_MIN_COLOURS = 0.2
# ...and most neighbours differ gradually: no channel steps by more than
# GRADUAL_MAX_STEP. This is spice-server's "graduality" test in spirit: a dithered
# or checkered pattern repeats no neighbour and has many colours too, yet LZ takes
# it at a third of QUIC's size (bench/data/images: the whole screen 676 KB as LZ,
# 2023 KB as QUIC), while a photo's neighbours step by a few levels (median 1 there,
# the checkered desktop's 160).
GRADUAL_MAX_STEP = 16
PHOTO_MIN_GRADUAL = 0.5
# The graduality test reads this many of the sampled rows: a share, steady on fewer
# rows, and the test cost a third of a 960x540 frame's encode on all of them.
GRADUAL_ROWS = 8
# Regions smaller than this are not worth classifying: LZ.
MIN_CLASSIFY_PIXELS = 1024
# Still regions are split by content in columns of this many pixels: a photo
# inside a flat desktop gets QUIC for its part and LZ for the rest. 64 is the
# damage tiles' size; narrower runs cost more in message headers than they save.
CONTENT_TILE = 64
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


def _gradual(rows: np.ndarray) -> np.ndarray:
    """Per pixel of up to GRADUAL_ROWS of the sampled rows (B,G,R,X): whether it differs
    from its left neighbour by at most GRADUAL_MAX_STEP in every colour channel (column
    0: False)."""
    rows = rows[::max(1, rows.shape[0] // GRADUAL_ROWS)]
    colours = rows[..., :3].astype(np.int16)
    gradual = np.zeros(rows.shape[:2], bool)
    gradual[:, 1:] = np.abs(colours[:, 1:] - colours[:, :-1]).max(axis=2) <= GRADUAL_MAX_STEP
    return gradual


def is_photographic(pixels: np.ndarray) -> bool:
    """Estimate from a sample of rows: many colours, few repeated neighbours, and
    neighbours that differ gradually."""
    h, w = pixels.shape[:2]
    if h * w < MIN_CLASSIFY_PIXELS:
        return False
    step = max(1, (h * w) // SAMPLE_PIXELS)
    rows = pixels[::step] if step < h else pixels[:1]
    rgb = np.ascontiguousarray(rows).view(np.uint32)[..., 0] & 0x00FFFFFF
    # The cheap tests first: most desktop regions end at the first.
    if w > 1:
        pairs = rgb.shape[0] * (w - 1)
        if float(np.count_nonzero(rgb[:, 1:] == rgb[:, :-1])) / pairs > PHOTO_MAX_REPEAT:
            return False
        if float(_gradual(rows).mean()) < PHOTO_MIN_GRADUAL:
            return False
    elif float(np.count_nonzero(rgb[1:] == rgb[:-1])) / max(1, rgb.shape[0] - 1
                                                           ) > PHOTO_MAX_REPEAT:
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


def content_spans(pixels: np.ndarray) -> list[tuple[int, int]]:
    """Column spans (start, end) of a band whose content class differs from its
    neighbours': photographic columns of CONTENT_TILE pixels (few pixels repeat
    their left neighbour, most differ from it gradually) apart from desktop-like
    ones, adjacent tiles of one class merged. One pass over the band (numpy), no
    per-tile call."""
    h, w = pixels.shape[:2]
    if w < 2 * CONTENT_TILE or h * w < MIN_CLASSIFY_PIXELS:
        return [(0, w)]
    step = max(1, (h * w) // SAMPLE_PIXELS)
    rows = pixels[::step]
    rgb = np.ascontiguousarray(rows).view(np.uint32)[..., 0] & 0x00FFFFFF
    repeat = np.zeros(rgb.shape, bool)
    repeat[:, 1:] = rgb[:, 1:] == rgb[:, :-1]
    tiles = -(-w // CONTENT_TILE)

    def per_tile(mask: np.ndarray) -> np.ndarray:
        """The fraction of each tile's sampled pixels where mask holds."""
        padded = np.zeros((mask.shape[0], tiles * CONTENT_TILE), bool)
        padded[:, :w] = mask
        counts = padded.reshape(mask.shape[0], tiles, CONTENT_TILE).sum(axis=(0, 2))
        return counts / (np.minimum(CONTENT_TILE, w - np.arange(tiles) * CONTENT_TILE)
                         * mask.shape[0])

    photo = per_tile(repeat) <= PHOTO_MAX_REPEAT
    if photo.any():  # the graduality test only where the cheap one leaves photos
        photo &= per_tile(_gradual(rows)) >= PHOTO_MIN_GRADUAL
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, tiles):
        if photo[i] != photo[i - 1]:
            spans.append((start, i * CONTENT_TILE))
            start = i * CONTENT_TILE
    spans.append((start, w))
    return spans


def encode_by_content(pixels: np.ndarray, client: ClientCodecs, lossy_allowed: bool = False
                      ) -> list[tuple[int, int, EncodedImage]]:
    """A band encoded in column spans of one content class each (content_spans),
    each with the codec encode_region picks for it: (start, end, image) per span."""
    return [
        (start, end, encode_region(pixels[:, start:end], client, lossy_allowed))
        for start, end in content_spans(pixels)
    ]


STILL_CODECS = ("auto", "quic", "lz4", "lz")
"""What the server's options and the client's preference come down to for still
images (the SPICE layer maps QEMU's option names onto these)."""


def encode_still(pixels: np.ndarray, codec: str, client: ClientCodecs,
                 lossy_allowed: bool = False, has_alpha: bool = False,
                 split: bool = True) -> list[tuple[int, int, EncodedImage]]:
    """The one place a still region's codec is chosen: (start, end, image) per column
    span. Alpha keeps alpha (LZ_RGBA) whatever the option; "auto" picks by content,
    split into spans of one content class unless `split` is False; the others are
    the named codec (LZ4 only for a client that decodes it)."""
    width = pixels.shape[1]
    if codec not in STILL_CODECS:
        raise ValueError(f"still codec {codec!r}: one of {STILL_CODECS}")
    if has_alpha or (codec == "auto" and not split):
        return [(0, width, encode_region(pixels, client, lossy_allowed, has_alpha))]
    if codec == "auto":
        return encode_by_content(pixels, client, lossy_allowed)
    if codec == "quic":
        return [(0, width, EncodedImage(SPICE_IMAGE_TYPE_QUIC, encode_quic_rgb32(pixels), False))]
    if codec == "lz4" and client.lz4:
        return [(0, width, EncodedImage(SPICE_IMAGE_TYPE_LZ4, encode_lz4_rgb32(pixels), False))]
    return [(0, width, EncodedImage(SPICE_IMAGE_TYPE_LZ_RGB, encode_lz_rgb32(pixels), False))]


PALETTE_MAX_COLOURS = 256
"""The most colours a palette bitmap holds (SPICE_BITMAP_FMT_8BIT's indices)."""
PALETTE_BITS = ((2, 1), (16, 4), (PALETTE_MAX_COLOURS, 8))
"""(most colours, bits per index): the narrowest palette format that holds them
(SPICE_BITMAP_FMT_1BIT_BE, 4BIT_BE, 8BIT)."""


@dataclass(frozen=True)
class Palettized:
    """A region as palette indices: `rows` of `stride` bytes each, `bits` per index,
    most significant bits first (the SPICE _BE formats), and its colours (0x00RRGGBB)."""

    bits: int
    stride: int
    rows: bytes
    colours: list[int]


def palettize(pixels: np.ndarray) -> Palettized | None:
    """A B,G,R,X region as palette indices when it has at most PALETTE_MAX_COLOURS
    colours (text, flat widgets, a two-colour weave), else None."""
    h, w = pixels.shape[:2]
    rgb = np.ascontiguousarray(pixels).view(np.uint32)[..., 0] & 0x00FFFFFF
    # A sample of rows rejects a photo before the whole region is sorted.
    if len(np.unique(rgb[:: max(1, h // GRADUAL_ROWS)])) > PALETTE_MAX_COLOURS:
        return None
    colours, inverse = np.unique(rgb, return_inverse=True)
    if len(colours) > PALETTE_MAX_COLOURS:
        return None
    bits = next(b for most, b in PALETTE_BITS if len(colours) <= most)
    index = inverse.reshape(h, w).astype(np.uint8)
    if bits == 1:
        rows = np.packbits(index, axis=1, bitorder="big")
    elif bits == 4:
        if w % 2:
            index = np.pad(index, ((0, 0), (0, 1)))
        rows = (index[:, 0::2] << 4) | index[:, 1::2]
    else:
        rows = index
    return Palettized(bits, rows.shape[1], rows.tobytes(), [int(c) for c in colours])
