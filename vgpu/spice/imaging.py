"""Turning damaged rectangles of a frame into encoded DRAW_COPY regions.

Runs on the encoder pool, never on the event loop: everything here is pure and
thread-safe. The choice of codec follows QEMU's option names.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from vgpu.display import Frame, Rect
from vgpu.encode.policy import (
    ClientCodecs,
    Palettized,
    content_spans,
    encode_still,
    palettize,
)
from vgpu.encode.solid import solid_parts
from vgpu.encode.video import DEFAULT_VIDEO_CODECS, CodecChoice, parse_video_codecs
from vgpu.spice import constants as const
from vgpu.spice.channels import (
    EncodedRegion,
    bitmap_payload,
    pack_palette,
    palette_bitmap_payload,
)

IMAGE_COMPRESSIONS = ("auto_glz", "auto_lz", "quic", "glz", "lz", "lz4", "off")
JPEG_WAN_COMPRESSIONS = ("auto", "never", "always")
STREAMING_VIDEOS = ("off", "all", "filter")

MAX_RECTS_PER_FRAME = 32
"""Past this many damage rectangles one bounding box costs less than the per-message
overhead (each rectangle is a DRAW_COPY with its own image header)."""

BAND_ROWS = 128
"""Tall rectangles are cut into bands of this many rows so the encoder pool works on
several at once and the client starts decoding before the whole frame is out."""


@dataclass(frozen=True)
class Compression:
    """The user's compression options, as QEMU spells them."""

    image: str = "auto_glz"
    jpeg_wan: str = "auto"
    streaming: str = "filter"
    # --video-codecs, spice-server's syntax: the stream codecs in the server's order.
    video_codecs: str = DEFAULT_VIDEO_CODECS

    def video(self) -> list[CodecChoice]:
        return parse_video_codecs(self.video_codecs)

    def __post_init__(self) -> None:
        if self.image not in IMAGE_COMPRESSIONS:
            raise ValueError(f"image compression {self.image!r}: one of {IMAGE_COMPRESSIONS}")
        if self.jpeg_wan not in JPEG_WAN_COMPRESSIONS:
            raise ValueError(f"jpeg-wan-compression {self.jpeg_wan!r}")
        if self.streaming not in STREAMING_VIDEOS:
            raise ValueError(f"streaming-video {self.streaming!r}")
        parse_video_codecs(self.video_codecs)  # a malformed entry is refused here


CLIENT_PREFERENCES = {
    const.SPICE_IMAGE_COMPRESSION_OFF: "off",
    const.SPICE_IMAGE_COMPRESSION_AUTO_GLZ: "auto_glz",
    const.SPICE_IMAGE_COMPRESSION_AUTO_LZ: "auto_lz",
    const.SPICE_IMAGE_COMPRESSION_QUIC: "quic",
    const.SPICE_IMAGE_COMPRESSION_GLZ: "glz",
    const.SPICE_IMAGE_COMPRESSION_LZ: "lz",
    const.SPICE_IMAGE_COMPRESSION_LZ4: "lz4",
}
"""SPICE_MSGC_DISPLAY_PREFERRED_COMPRESSION values; as in spice-server, the client's
preference overrides the server's option for that client."""

VIDEO_CODEC_CAPS = {
    "mjpeg": const.SPICE_DISPLAY_CAP_CODEC_MJPEG,
    "vp8": const.SPICE_DISPLAY_CAP_CODEC_VP8,
    "h264": const.SPICE_DISPLAY_CAP_CODEC_H264,
    "vp9": const.SPICE_DISPLAY_CAP_CODEC_VP9,
    "h265": const.SPICE_DISPLAY_CAP_CODEC_H265,
}
VIDEO_CODEC_TYPES = {
    "mjpeg": const.SPICE_VIDEO_CODEC_TYPE_MJPEG,
    "vp8": const.SPICE_VIDEO_CODEC_TYPE_VP8,
    "h264": const.SPICE_VIDEO_CODEC_TYPE_H264,
    "vp9": const.SPICE_VIDEO_CODEC_TYPE_VP9,
    "h265": const.SPICE_VIDEO_CODEC_TYPE_H265,
}
"""vgpu.encode.video's codec names as the SPICE protocol numbers them."""
CODEC_NAMES = {number: name for name, number in VIDEO_CODEC_TYPES.items()}


def client_video_codecs(caps: Callable[[int], bool]) -> frozenset[str]:
    """The stream codecs a display client decodes: those it lists with MULTI_CODEC,
    MJPEG alone for a client from before MULTI_CODEC (MJPEG was the only codec)."""
    if not caps(const.SPICE_DISPLAY_CAP_MULTI_CODEC):
        return frozenset({"mjpeg"})
    return frozenset(name for name, bit in VIDEO_CODEC_CAPS.items() if caps(bit))


@dataclass(frozen=True)
class ClientImaging:
    """What one display client gets: its decoders and the options in force."""

    compression: Compression
    lz4: bool = False  # the client has SPICE_DISPLAY_CAP_LZ4_COMPRESSION
    preferred: str | None = None  # the client's PREFERRED_COMPRESSION, if it sent one
    # The client draws palette bitmaps (1BIT_BE, 4BIT_BE, 8BIT): spice-gtk does
    # (spice-common's canvas); spice-html5 does not (its bitmap.js takes 32BIT and
    # RGBA only), and it is the one WebSocket client, so the server clears this there.
    palette: bool = True

    def codec(self) -> str:
        """ "auto", "bitmap", "quic", "lz4" or "lz".

        auto_glz and auto_lz are "auto": vgpu.encode.policy picks per region (LZ_RGB
        for desktop-like content, QUIC for photographic, JPEG for photographic only
        with --jpeg-wan-compression always). GLZ (a dictionary shared across
        images) is not implemented, so glz means LZ. "auto" JPEG means lossy on a
        WAN link only, and there is no WAN detection here: it stays lossless.
        """
        image = self.preferred or self.compression.image
        if image in ("auto_glz", "auto_lz"):
            return "auto"
        if image == "off":
            return "bitmap"
        if image == "quic":
            return "quic"
        if image == "lz4" and self.lz4:
            return "lz4"
        return "lz"


def normalize_damage(damage: tuple[Rect, ...], width: int, height: int) -> list[Rect]:
    """Clips to the surface, drops empty and covered rectangles, merges when there are many."""
    clipped: set[Rect] = set()
    for left, top, right, bottom in damage:
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if left < right and top < bottom:
            clipped.add((left, top, right, bottom))
    # A slow client's damage piles up frame after frame, often the same rectangles.
    rects = list(clipped)
    if len(rects) <= MAX_RECTS_PER_FRAME:
        rects = [r for r in rects if not any(o != r and _contains(o, r) for o in rects)]
    if rects:
        box = (
            min(r[0] for r in rects),
            min(r[1] for r in rects),
            max(r[2] for r in rects),
            max(r[3] for r in rects),
        )
        if len(rects) > MAX_RECTS_PER_FRAME or sum(map(_area, rects)) >= _area(box):
            rects = [box]
    rects.sort(key=lambda r: (r[1], r[0]))
    return rects


def cut_bands(rects: list[Rect]) -> list[Rect]:
    """Tall rectangles in bands of BAND_ROWS rows. (The first picture of a surface goes
    uncut: one DRAW_COPY, so a client that takes the first draw as the screen, like
    spicy-screenshot, has all of it.)"""
    banded: list[Rect] = []
    for left, top, right, bottom in rects:
        for y in range(top, bottom, BAND_ROWS):
            banded.append((left, y, right, min(bottom, y + BAND_ROWS)))
    return banded


def _contains(outer: Rect, inner: Rect) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and outer[2] >= inner[2]
        and outer[3] >= inner[3]
    )


def _area(rect: Rect) -> int:
    return (rect[2] - rect[0]) * (rect[3] - rect[1])


def _encode(frame: Frame, rect: Rect, imaging: ClientImaging, split: bool) -> list[EncodedRegion]:
    left, top, right, bottom = rect
    view = frame.pixels[top:bottom, left:right]
    if not frame.has_alpha:
        # Solid parts as fills (a fill's colour has no alpha), the rest as images;
        # a whole picture (one draw) only where it is all one colour.
        parts = solid_parts(view)
        if len(parts) == 1 and parts[0][1] is not None:
            return [EncodedRegion(rect, const.SPICE_IMAGE_TYPE_BITMAP, b"", fill=parts[0][1])]
        if split and len(parts) > 1:
            regions: list[EncodedRegion] = []
            for (pl, pt, pr, pb), colour in parts:
                part = (left + pl, top + pt, left + pr, top + pb)
                if colour is None:
                    regions.extend(_encode_images(frame, part, imaging, split))
                else:
                    regions.append(EncodedRegion(part, const.SPICE_IMAGE_TYPE_BITMAP, b"",
                                                 fill=colour))
            return regions
    return _encode_images(frame, rect, imaging, split)


def _encode_images(frame: Frame, rect: Rect, imaging: ClientImaging, split: bool
                   ) -> list[EncodedRegion]:
    codec = imaging.codec()
    if codec in FEW_COLOUR_CODECS and not frame.has_alpha:
        # Split by content first, so the weave beside a photo is not sent as the photo is.
        left, top, right, bottom = rect
        spans = (content_spans(frame.pixels[top:bottom, left:right]) if split
                 else [(0, right - left)])
        return [region for start, end in spans
                for region in _few_colours_or_codec(
                    frame, (left + start, top, left + end, bottom), imaging, codec)]
    return _encode_codec(frame, rect, imaging, codec, split)


FEW_COLOUR_CODECS = ("bitmap", "quic", "lz4")
"""Settings where a region of few colours (text, flat widgets, X's two-colour root
weave: where spice-server gets the guest's small palette images, fills and copies) may
go otherwise than the setting says, whichever is smaller:
- off and QUIC: a palette bitmap, 1 to 8 bits a pixel where 32-bit pixels cost 32 and
  QUIC does poorly on such content (spice-server too sends a palette image
  uncompressed with QUIC, which takes RGB only);
- LZ4: LZ_RGB, which beats LZ4 on desktop content (bench/encode.py; spice-server too
  sends a palette image as LZ with LZ4, which takes RGB only)."""


def _few_colours_or_codec(frame: Frame, rect: Rect, imaging: ClientImaging, codec: str
                          ) -> list[EncodedRegion]:
    """`rect` with `codec`, or as FEW_COLOUR_CODECS says where it has few colours."""
    encoded = _encode_codec(frame, rect, imaging, codec, split=False)
    indexed = palettize(frame.pixels[rect[1]:rect[3], rect[0]:rect[2]])
    if indexed is None:
        return encoded
    if codec == "lz4":
        other = _encode_codec(frame, rect, imaging, "lz", split=False)
    elif imaging.palette:
        other = [palette_region(rect, indexed)]
    else:
        return encoded
    return min(other, encoded, key=lambda regions: sum(map(_size, regions)))


def _encode_codec(frame: Frame, rect: Rect, imaging: ClientImaging, codec: str, split: bool
                  ) -> list[EncodedRegion]:
    left, top, right, bottom = rect
    view = frame.pixels[top:bottom, left:right]
    if codec == "bitmap":
        payload = bitmap_payload(view.tobytes(), right - left, bottom - top, frame.has_alpha)
        return [EncodedRegion(rect, const.SPICE_IMAGE_TYPE_BITMAP, payload)]
    parts = encode_still(
        view,
        codec,
        ClientCodecs(lz4=imaging.lz4),
        lossy_allowed=imaging.compression.jpeg_wan == "always",
        has_alpha=frame.has_alpha,
        split=split,
    )
    return [
        _binary((left + start, top, left + end, bottom), image.image_type, image.data, image.lossy)
        for start, end, image in parts
    ]


def _size(region: EncodedRegion) -> int:
    return len(region.payload) + len(region.palette or b"")


def palette_region(rect: Rect, indexed: Palettized) -> EncodedRegion:
    """`rect` as a palette BITMAP of its colour indices."""
    fmt = {1: const.SPICE_BITMAP_FMT_1BIT_BE, 4: const.SPICE_BITMAP_FMT_4BIT_BE,
           8: const.SPICE_BITMAP_FMT_8BIT}[indexed.bits]
    payload = palette_bitmap_payload(indexed.rows, fmt, indexed.stride, rect[2] - rect[0],
                                     rect[3] - rect[1])
    return EncodedRegion(rect, const.SPICE_IMAGE_TYPE_BITMAP, payload,
                         palette=pack_palette(indexed.colours))


def encode_rect(frame: Frame, rect: Rect, imaging: ClientImaging) -> EncodedRegion:
    """One DRAW_COPY region for the whole rectangle (the codec vgpu.encode.policy picks)."""
    return _encode(frame, rect, imaging, split=False)[0]


def encode_rect_by_content(frame: Frame, rect: Rect, imaging: ClientImaging) -> list[EncodedRegion]:
    """A damaged band as one or more DRAW_COPY regions: with automatic compression it is
    split by content, so a photo inside a flat desktop goes out as QUIC (or JPEG where
    loss is allowed) beside LZ."""
    return _encode(frame, rect, imaging, split=True)


def _binary(rect: Rect, image_type: int, data: bytes, lossy: bool = False) -> EncodedRegion:
    """The image types whose body is a u32 size and the codec stream."""
    return EncodedRegion(rect, image_type, struct.pack("<I", len(data)) + data, lossy)
