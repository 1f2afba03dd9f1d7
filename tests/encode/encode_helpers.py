"""Helpers for the encoder tests: spice-html5's decoders run by Node.js."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
SPICE_HTML5 = Path("/usr/share/spice-html5")  # where Debian's spice-html5 package puts it
LZ, QUIC = 1, 2
# One Node.js process decodes a whole batch; this bounds how long it may take.
NODE_TIMEOUT_S = 120

Decoded = np.ndarray | str


def html5_decode(items: list[tuple[int, bytes]]) -> list[Decoded]:
    """Decodes (kind, stream) pairs with spice-html5; RGBA arrays or error strings."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) is not installed")
    if not all((SPICE_HTML5 / f).is_file() for f in ("lz.js", "quic.js", "enums.js")):
        pytest.skip(f"spice-html5 is not installed in {SPICE_HTML5}")
    tmp = Path(tempfile.mkdtemp(prefix="vgpu-html5-"))
    try:
        src, dst = tmp / "in.bin", tmp / "out.bin"
        src.write_bytes(b"".join(struct.pack("<BI", k, len(s)) + s for k, s in items))
        subprocess.run([node, str(HERE / "html5_decode.js"), str(SPICE_HTML5), str(src),
                        str(dst)], check=True, timeout=NODE_TIMEOUT_S)
        out = dst.read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results: list[Decoded] = []
    at = 0
    for _ in items:
        if out[at] == 0:
            w, h = struct.unpack_from("<II", out, at + 1)
            at += 9
            results.append(np.frombuffer(out, np.uint8, w * h * 4, at).reshape(h, w, 4))
            at += w * h * 4
        else:
            (n,) = struct.unpack_from("<I", out, at + 1)
            results.append(out[at + 5:at + 5 + n].decode(errors="replace"))
            at += 5 + n
    return results


def expected_rgba(frame: np.ndarray, alpha: bool) -> np.ndarray:
    """What a browser paints for a B,G,R,X frame: R,G,B and alpha (255 unless kept)."""
    out = np.empty(frame.shape, np.uint8)
    out[..., 0] = frame[..., 2]
    out[..., 1] = frame[..., 1]
    out[..., 2] = frame[..., 0]
    out[..., 3] = frame[..., 3] if alpha else 255
    return out


def html5_roundtrip_failures(cases: list[tuple[int, bool, np.ndarray, bytes]]) -> list[str]:
    """Decodes each (kind, alpha, frame, stream) with spice-html5; describes mismatches."""
    decoded = html5_decode([(kind, stream) for kind, _, _, stream in cases])
    failures = []
    for n, ((kind, alpha, frame, _), got) in enumerate(zip(cases, decoded, strict=True)):
        what = f"case {n} ({'LZ' if kind == LZ else 'QUIC'}, {frame.shape[1]}x{frame.shape[0]})"
        if isinstance(got, str):
            failures.append(f"{what}: decoder error {got}")
        elif got.shape != frame.shape:
            failures.append(f"{what}: decoded shape {got.shape}")
        elif not np.array_equal(got, expected_rgba(frame, alpha)):
            bad = np.argwhere((got != expected_rgba(frame, alpha)).any(axis=2))
            failures.append(f"{what}: {len(bad)} pixels differ, first at {bad[0].tolist()}")
    return failures
