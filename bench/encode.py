"""Encoder benchmark: our C encoders beside lz4, zstd and zlib on the same
frames in the same run (one thread, frame hot in cache, medians).

Frames: a 1920x1080 desktop (windows, text, the Xspice screenshot from
tests/data) and a 1920x1080 photograph-like frame, both deterministic.
Throughput is GB/s of input frame bytes (for the tile differ: of one frame,
though it reads two).  Ratio is input bytes / output bytes.

--spice-common-lib PATH adds spice-common's own LZ and QUIC encoders for a
side-by-side run: a shared library, built by you from a spice-common checkout
(not part of this repository), exporting
    int ref_lz_rgb32(const uint8_t *px, int stride, int w, int h, uint8_t *out, int cap);
    int ref_quic_rgb32(const uint8_t *px, int stride, int w, int h, uint8_t *out, int cap);
each returning the bytes written (LZ_IMAGE_TYPE_RGB32 top-down; QUIC_IMAGE_TYPE_RGB32).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import lz4.block
import numpy as np
import zstandard
from PIL import Image

from vgpu.encode import (
    changed_tiles,
    encode_jpeg,
    encode_lz4_rgb32,
    encode_lz_rgb32,
    encode_quic_rgb32,
)
from vgpu.encode.codecs import quic_decode
from vgpu.encode.samples import desktop_frame, photo_frame

SCREENSHOT = Path(__file__).resolve().parent.parent / "tests" / "data" / "basic.png"
TILE = 64


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


def measure(jobs: dict[str, Callable[[], object]], repeat: int,
            warm: Callable[[], object]) -> dict[str, tuple[float, object]]:
    """Median seconds and last result per job.  Rounds interleave the jobs, so
    load from other processes falls on all of them alike; warm() runs untimed
    before each job to bring its input back into the cache."""
    results = {name: job() for name, job in jobs.items()}  # warm-up: page faults, tables
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, job in jobs.items():
            warm()
            t0 = time.perf_counter()
            results[name] = job()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), results[name]) for name in jobs}


def spice_common(path: str) -> dict[str, Callable[[np.ndarray], bytes]]:
    lib = ctypes.CDLL(path)
    out: dict[str, Callable[[np.ndarray], bytes]] = {}
    for name, symbol in (("spice-common LZ", "ref_lz_rgb32"),
                         ("spice-common QUIC", "ref_quic_rgb32")):
        func = getattr(lib, symbol)
        func.restype = ctypes.c_int

        def run(frame: np.ndarray, func=func, symbol=symbol) -> bytes:
            buf = ctypes.create_string_buffer(frame.nbytes * 2 + 4096)
            n = func(frame.ctypes.data_as(ctypes.c_void_p), frame.strides[0], frame.shape[1],
                     frame.shape[0], buf, len(buf))
            if n <= 0:
                raise RuntimeError(f"{symbol} failed")
            return buf.raw[:n]

        out[name] = run
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vgpu bench encode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per codec (median)")
    parser.add_argument("--spice-common-lib", help="see above")
    args = parser.parse_args(argv)

    shot = np.asarray(Image.open(SCREENSHOT).convert("RGB"))
    frames = {"desktop 1920x1080": desktop_frame(1920, 1080, screenshot=shot),
              "photo 1920x1080": photo_frame(1920, 1080)}
    zstd1 = zstandard.ZstdCompressor(level=1)
    codecs: dict[str, Callable[[np.ndarray], bytes]] = {
        "vgpu LZ": encode_lz_rgb32,
        "vgpu QUIC": encode_quic_rgb32,
        "vgpu LZ4 (SPICE framing)": encode_lz4_rgb32,
        "vgpu JPEG q80": lambda f: encode_jpeg(f, 80),
        "lz4 (PyPI, block)": lambda f: lz4.block.compress(f, store_size=False),
        "zstd level 1 (PyPI)": lambda f: zstd1.compress(f),
        "zlib level 1": lambda f: zlib.compress(f, 1),
    }
    if args.spice_common_lib:
        codecs.update(spice_common(args.spice_common_lib))

    for fname, frame in frames.items():
        size = frame.nbytes
        print(f"\n{fname} ({size / 1e6:.1f} MB), median of {args.repeat}")
        print(f"  {'':28} {'GB/s':>8} {'ratio':>8} {'bytes':>10}")
        dst = np.empty_like(frame)
        prev = frame.copy()
        quic = encode_quic_rgb32(frame)
        jobs: dict[str, Callable[[], object]] = {
            "memcpy (numpy copyto)": lambda: np.copyto(dst, frame),  # noqa: B023
            "vgpu changed_tiles (64)": lambda: changed_tiles(prev, frame, TILE),  # noqa: B023
            "numpy changed tiles (64)": lambda: numpy_changed_tiles(prev, frame),  # noqa: B023
            # guest QUIC images: GB/s of decoded frame bytes
            "vgpu QUIC decode": lambda: quic_decode(quic),  # noqa: B023
        }
        jobs.update({name: (lambda c=codec: c(frame)) for name, codec in codecs.items()})  # noqa: B023
        measured = measure(jobs, args.repeat, lambda: np.copyto(dst, frame))  # noqa: B023
        speed = {name: size / t / 1e9 for name, (t, _) in measured.items()}
        assert measured["vgpu changed_tiles (64)"][1] == []
        assert not measured["numpy changed tiles (64)"][1].any()  # type: ignore[union-attr]
        decoded, _ = measured["vgpu QUIC decode"][1]  # type: ignore[misc]
        assert np.array_equal(decoded[..., :3], frame[..., :3])  # timed work that is right
        ratio: dict[str, float] = {}
        for name, (_, data) in measured.items():
            if name in codecs:
                n = len(data)  # type: ignore[arg-type]
                ratio[name] = size / n
                print(f"  {name:28} {speed[name]:8.2f} {ratio[name]:8.2f} {n:10d}")
            else:
                print(f"  {name:28} {speed[name]:8.2f}")
        memcpy = speed["memcpy (numpy copyto)"]
        tiles = speed["vgpu changed_tiles (64)"]
        lz, ref4 = "vgpu LZ", "lz4 (PyPI, block)"
        print("  comparisons:")
        print(f"    tiles vs numpy speed            "
              f"{tiles / speed['numpy changed tiles (64)']:6.2f}x  (target >= 2)")
        print(f"    tiles vs memcpy speed           {tiles / memcpy:6.2f}x")
        print(f"    LZ vs lz4 speed                 {speed[lz] / speed[ref4]:6.2f}x"
              "  (target >= 0.75 on desktop)")
        print(f"    LZ vs lz4 output size           {ratio[ref4] / ratio[lz]:6.2f}x"
              "  (target <= 0.55 on desktop)")
        print(f"    LZ vs memcpy speed              {speed[lz] / memcpy:6.2f}x")
        ref_lz = "spice-common LZ"
        if ref_lz in speed:
            print(f"    LZ vs spice-common LZ speed     {speed[lz] / speed[ref_lz]:6.2f}x"
                  f"  ratio {ratio[lz] / ratio[ref_lz]:.2f}x  (target >= 1, >= 1)")
            print(f"    QUIC vs spice-common QUIC speed "
                  f"{speed['vgpu QUIC'] / speed['spice-common QUIC']:6.2f}x"
                  f"  ratio {ratio['vgpu QUIC'] / ratio['spice-common QUIC']:.2f}x"
                  "  (target >= 0.67 at equal ratio)")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
