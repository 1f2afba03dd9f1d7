"""Encoders: our C encoders beside lz4, zstd, zlib and libjpeg-turbo (through Pillow) on
the same frames in the same run (one thread, frame brought back into the cache before
every run). Throughput is GB/s of input frame bytes (for the tile differ: of one frame,
though it reads two); sizes are the bytes each encoder wrote.

Frames: bench's desktop (windows, text, the basic recording's screenshot) and a
photograph-like frame, 1920x1080 (960x540 with --quick), both deterministic.

VGPU_BENCH_SPICE_COMMON_LIB=PATH adds spice-common's own LZ and QUIC encoders: a shared
library built by you from a spice-common checkout (not part of this repository), exporting
    int ref_lz_rgb32(const uint8_t *px, int stride, int w, int h, uint8_t *out, int cap);
    int ref_quic_rgb32(const uint8_t *px, int stride, int w, int h, uint8_t *out, int cap);
each returning the bytes written (LZ_IMAGE_TYPE_RGB32 top-down; QUIC_IMAGE_TYPE_RGB32).
"""

from __future__ import annotations

import ctypes
import io
import os
import zlib
from collections.abc import Callable, Iterator

import lz4.block
import numpy as np
import zstandard
from PIL import Image

from vgpu.bench import Bench, Contender, Measurement, workload
from vgpu.bench.common import sample_frames
from vgpu.encode import (
    changed_tiles,
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_quic_rgb32,
)
from vgpu.encode.codecs import quic_decode

TILE = 64
JPEG_QUALITY = 80


def numpy_changed_tiles(prev: np.ndarray, cur: np.ndarray, tile: int = TILE) -> np.ndarray:
    """The plain numpy way: compare as 64-bit words, then any() per tile."""
    h, w = cur.shape[:2]
    a = prev.reshape(h, w * 4).view(np.uint64)
    b = cur.reshape(h, w * 4).view(np.uint64)
    ne = a != b
    ty, tx = -(-h // tile), -(-w // tile)
    padded = np.zeros((ty * tile, tx * (tile // 2)), bool)
    padded[:h, : ne.shape[1]] = ne
    return padded.reshape(ty, tile, tx, tile // 2).any(axis=(1, 3))


def pillow_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """libjpeg-turbo through Pillow, from the same B,G,R,X frame (its swizzle included)."""
    out = io.BytesIO()
    Image.frombuffer("RGBX", (frame.shape[1], frame.shape[0]), frame, "raw", "BGRX", 0,
                     1).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def spice_common(path: str) -> dict[str, tuple[str, Callable[[np.ndarray], bytes]]]:
    """spice-common's encoders, keyed by the vgpu encoder they are compared with."""
    lib = ctypes.CDLL(path)
    out = {}
    for ours, name, symbol in (("LZ", "spice-common LZ", "ref_lz_rgb32"),
                               ("QUIC", "spice-common QUIC", "ref_quic_rgb32")):
        func = getattr(lib, symbol)
        func.restype = ctypes.c_int

        def run(frame: np.ndarray, func=func, symbol=symbol) -> bytes:
            buf = ctypes.create_string_buffer(frame.nbytes * 2 + 4096)
            n = func(frame.ctypes.data_as(ctypes.c_void_p), frame.strides[0], frame.shape[1],
                     frame.shape[0], buf, len(buf))
            if n <= 0:
                raise RuntimeError(f"{symbol} failed")
            return buf.raw[:n]

        out[ours] = (name, run)
    return out


@workload("encode", "the C encoders and the tile differ on sample frames",
          references=("lz4", "zstd", "zlib", "libjpeg-turbo", "numpy", "memcpy"))
def encode(b: Bench) -> Iterator[Measurement]:
    zstd1 = zstandard.ZstdCompressor(level=1)
    size = (960, 540) if b.quick else (1920, 1080)
    extra = {}
    if os.environ.get("VGPU_BENCH_SPICE_COMMON_LIB"):
        extra = spice_common(os.environ["VGPU_BENCH_SPICE_COMMON_LIB"])
    # each vgpu encoder with the references that do the same job
    groups: dict[str, dict[str, Callable[[np.ndarray], bytes]]] = {
        "LZ": {"vgpu LZ": encode_lz_rgb32,
               "lz4 (block)": lambda f: lz4.block.compress(f, store_size=False),
               "zstd level 1": zstd1.compress,
               "zlib level 1": lambda f: zlib.compress(f, 1)},
        "LZ4": {"vgpu LZ4 (SPICE framing)": encode_lz4_rgb32,
                "lz4 (block)": lambda f: lz4.block.compress(f, store_size=False)},
        "QUIC": {"vgpu QUIC": encode_quic_rgb32, "zstd level 1": zstd1.compress},
        "JPEG": {f"vgpu JPEG q{JPEG_QUALITY}": lambda f: encode_jpeg(f, JPEG_QUALITY),
                 f"libjpeg-turbo via Pillow q{JPEG_QUALITY}":
                     lambda f: pillow_jpeg(f, JPEG_QUALITY)},
    }
    for ours, (name, fn) in extra.items():
        groups[ours][name] = fn
    rounds = b.rounds(9, 3)
    for fname, frame in sample_frames(*size).items():
        dst = np.empty_like(frame)
        warm = Contender(run=lambda: None, before=lambda f=frame, d=dst: np.copyto(d, f))

        def job(fn: Callable[[], object], warm: Contender = warm) -> Contender:
            return Contender(fn, before=warm.before)

        gb = frame.nbytes / 1e9
        for group, codecs in groups.items():
            yield b.time(f"{group} {fname}", {n: job(lambda c=c, f=frame: c(f))
                                               for n, c in codecs.items()},
                         work=gb, unit="GB/s", rounds=rounds)
            yield b.value(f"{group} {fname} size", "bytes",
                          {n: len(c(frame)) for n, c in codecs.items()})
        prev = frame.copy()
        if changed_tiles(prev, frame, TILE) != [] or numpy_changed_tiles(prev, frame).any():
            raise AssertionError("a tile differ found changes between equal frames")
        yield b.time(f"changed tiles ({TILE}) {fname}", {
            "vgpu changed_tiles": job(lambda p=prev, f=frame: changed_tiles(p, f, TILE)),
            "numpy changed tiles": job(lambda p=prev, f=frame: numpy_changed_tiles(p, f)),
            "memcpy (numpy copyto)": job(lambda d=dst, f=frame: np.copyto(d, f)),
        }, work=gb, unit="GB/s", rounds=rounds)
        quic = encode_quic_rgb32(frame)
        decoded, _ = quic_decode(quic)
        if not np.array_equal(decoded[..., :3], frame[..., :3]):  # timed work that is right
            raise AssertionError("QUIC decode does not give the frame back")
        yield b.time(f"QUIC decode {fname}", {
            "vgpu QUIC decode": job(lambda q=quic: quic_decode(q)),
            "memcpy (numpy copyto)": job(lambda d=dst, f=frame: np.copyto(d, f)),
        }, work=gb, unit="GB/s of decoded pixels", rounds=rounds)
