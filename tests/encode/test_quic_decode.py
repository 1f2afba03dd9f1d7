"""The QUIC decoder (guest images): exact against spice-common's own encoder and
decoder (streams and decoded pixels in data/quic_spice_common.npz), against
spice-html5's quic.js, and against our encoder; hostile streams end in ValueError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from encode_helpers import html5_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vgpu.encode.codecs import MAX_DIM, encode_quic_rgb32, quic_decode, quic_header

DATA = Path(__file__).resolve().parent / "data"
QUIC_KIND = 2  # html5_decode's record kind for QUIC
TYPES = {"rgb16": 2, "rgb24": 3, "rgb32": 4, "rgba": 5}


def spice_common_cases() -> list[tuple[str, str, bytes, np.ndarray]]:
    """(image name, QUIC type name, stream, spice-common's decoded B,G,R,A pixels)."""
    data = np.load(DATA / "quic_spice_common.npz")
    cases = []
    for key in sorted(data.files):
        if key.endswith("_stream"):
            name, qtype = key[: -len("_stream")].rsplit("_", 1)
            cases.append((name, qtype, data[key].tobytes(), data[f"{name}_{qtype}_decoded"]))
    return cases


def test_spice_common_streams_decode_to_spice_common_pixels() -> None:
    cases = spice_common_cases()
    assert {c[1] for c in cases} == set(TYPES) and len(cases) >= 20
    for name, qtype, stream, expected in cases:
        got, has_alpha = quic_decode(stream)
        assert quic_header(stream) == (TYPES[qtype], expected.shape[1], expected.shape[0])
        assert has_alpha == (qtype == "rgba"), (name, qtype)
        assert np.array_equal(got, expected), (name, qtype)


def test_damaged_streams_decode_as_spice_common_decodes_them() -> None:
    """Codes no encoder writes (an escape past the last level) are read as spice-common
    reads them - wrapped mod 256, unfolded to error 0 past a 5-bit family's levels - so a
    damaged stream spice-common decodes to the end gives spice-gtk's pixels here too."""
    data = np.load(DATA / "quic_spice_common_corrupt.npz")
    names = sorted(k[: -len("_stream")] for k in data.files if k.endswith("_stream"))
    assert len(names) == 6
    for name in names:
        got, _ = quic_decode(data[f"{name}_stream"].tobytes())
        assert np.array_equal(got, data[f"{name}_decoded"]), name


def test_our_encoder_writes_spice_commons_rgb32_streams() -> None:
    """RGB32 is the one type we also encode: from the decoded pixels we write the
    very stream spice-common wrote (the X byte is not coded)."""
    for name, qtype, stream, expected in spice_common_cases():
        if qtype == "rgb32":
            assert encode_quic_rgb32(expected) == stream, name


def test_rgb16_widens_by_bit_replication_and_rgb24_equals_rgb32() -> None:
    by_name: dict[str, dict[str, np.ndarray]] = {}
    for name, qtype, stream, _ in spice_common_cases():
        by_name.setdefault(name, {})[qtype] = quic_decode(stream)[0]
    for name, d in by_name.items():
        assert np.array_equal(d["rgb24"], d["rgb32"]), name
        assert np.array_equal(d["rgba"][..., :3], d["rgb32"][..., :3]), name
        five = d["rgb16"][..., :3] >> 3
        assert np.array_equal(d["rgb16"][..., :3], (five << 3) | (five >> 2)), name
        assert not d["rgb16"][..., 3].any() and not d["rgb32"][..., 3].any(), name


def html5_expected(decoded: np.ndarray, has_alpha: bool) -> np.ndarray:
    """What quic.js paints for our decoded B,G,R,A: R,G,B and 255, or for RGBA the
    alpha plane inverted (its convert_spice_quic_to_web writes 255 - alpha)."""
    out = decoded[..., [2, 1, 0, 3]].copy()
    out[..., 3] = 255 - out[..., 3] if has_alpha else 255
    return out


def test_spice_html5_decodes_what_we_decode() -> None:
    """quic.js (RGB32, RGB24, RGBA; it has no RGB16) agrees pixel for pixel."""
    streams = [s for _, qtype, s, _ in spice_common_cases() if qtype != "rgb16"]
    rng = np.random.default_rng(3)
    streams += [encode_quic_rgb32(rng.integers(0, 256, (h, w, 4), dtype=np.uint8))
                for h, w in ((1, 1), (5, 70), (40, 3), (2, 2100))]
    decoded = html5_decode([(QUIC_KIND, s) for s in streams])
    for n, (stream, theirs) in enumerate(zip(streams, decoded, strict=True)):
        assert not isinstance(theirs, str), f"stream {n}: quic.js failed: {theirs}"
        ours, has_alpha = quic_decode(stream)
        assert np.array_equal(theirs, html5_expected(ours, has_alpha)), f"stream {n}"


@st.composite
def frames(draw: st.DrawFn) -> np.ndarray:
    """Frames with sides 1..80 (or one long row or column): noise, flat, gradients
    and few-colour content (QUIC's run mode), sometimes as a crop of a wider frame."""
    shape = draw(st.sampled_from(["box", "row", "column"]))
    h = 1 if shape == "row" else draw(st.integers(1, 300 if shape == "column" else 80))
    w = 1 if shape == "column" else draw(st.integers(1, 2600 if shape == "row" else 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["noise", "flat", "gradient", "palette"]))
    pad = draw(st.integers(0, 3))
    if kind == "noise":
        full = rng.integers(0, 256, (h, w + pad, 4), dtype=np.uint8)
    elif kind == "flat":
        full = np.broadcast_to(rng.integers(0, 256, 4, dtype=np.uint8), (h, w + pad, 4)).copy()
    elif kind == "gradient":
        full = np.zeros((h, w + pad, 4), np.uint8)
        full[..., 0] = np.arange(w + pad) * int(rng.integers(1, 9))
        full[..., 1] = (np.arange(h) * int(rng.integers(1, 9)))[:, None]
        full[..., 2] = np.add.outer(np.arange(h), np.arange(w + pad)).astype(np.uint8)
    else:
        colours = rng.integers(0, 256, (draw(st.integers(1, 3)), 4), dtype=np.uint8)
        full = colours[rng.integers(0, len(colours), (h, w + pad))]
    return full[:, pad:] if pad else full


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_round_trip_through_our_encoder_is_exact(frame: np.ndarray) -> None:
    decoded, has_alpha = quic_decode(encode_quic_rgb32(frame))
    assert not has_alpha
    assert decoded.shape == frame.shape
    assert np.array_equal(decoded[..., :3], frame[..., :3])
    assert not decoded[..., 3].any()


def _header(magic: int = 0x43495551, version: int = 0, qtype: int = 4, width: int = 4,
            height: int = 4) -> bytes:
    return struct.pack("<5I", magic, version, qtype, width, height) + bytes(4)


@pytest.mark.parametrize(("stream", "message"), [
    (b"", "ends before"),
    (_header()[:19], "ends before"),
    (_header(magic=0x51554943), "not a QUIC stream"),
    (_header(version=1), "not a QUIC stream"),
    (_header(qtype=1), "type not supported"),  # GRAY: spice-common's canvas refuses it too
    (_header(qtype=0), "type not supported"),
    (_header(qtype=6), "type not supported"),
    (_header(width=0), "size out of range"),
    (_header(height=MAX_DIM + 1), "size out of range"),
    (_header(width=0xFFFFFFFF, height=0xFFFFFFFF), "size out of range"),
    (_header(), "ends before"),  # a valid header and no image
])
def test_bad_headers_are_refused(stream: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quic_decode(stream)


def test_max_dim_is_checked_before_allocating() -> None:
    with pytest.raises(ValueError, match=r"each side must be 1\.\.100"):
        quic_decode(_header(width=101, height=MAX_DIM), max_dim=100)
    with pytest.raises(TypeError):
        quic_decode("QUIC")  # type: ignore[arg-type]


def test_every_cut_of_a_stream_is_refused() -> None:
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 3, (6, 11, 4), dtype=np.uint8) * 100
    stream = encode_quic_rgb32(frame)
    for n in range(len(stream) - 3):  # losing the last whole word loses image bits
        with pytest.raises(ValueError, match=r"ends before|not a QUIC"):
            quic_decode(stream[:n])
    assert np.array_equal(quic_decode(stream)[0][..., :3], frame[..., :3])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_streams_decode_or_raise_value_error(data: st.DataObject) -> None:
    """Flipped, replaced, inserted and cut bytes anywhere (header included):
    the decoder returns an image of the header's size or raises ValueError."""
    _, _, stream, _ = data.draw(st.sampled_from(spice_common_cases()))
    b = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "byte", "insert", "cut"]))
        at = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "byte" and b:
            b[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            b[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del b[at:]
    try:
        img, _ = quic_decode(bytes(b), max_dim=4096)
    except ValueError:
        return
    _, w, h = quic_header(bytes(b))
    assert img.shape == (h, w, 4)


def test_all_ones_and_all_zero_bodies_end_cleanly() -> None:
    """Endless run codes (ones) and endless zero codes: bounded by the image."""
    for body in (b"\xff" * 4096, bytes(4096)):
        for qtype in TYPES.values():
            stream = _header(qtype=qtype, width=300, height=20)[:20] + body
            try:
                img, _ = quic_decode(stream)
            except ValueError as e:
                assert "ends before" in str(e) or "corrupt" in str(e)
            else:
                assert img.shape == (20, 300, 4)


def test_python_runs_while_c_decodes() -> None:
    from test_gil import TRIES, python_ran_during_call

    from vgpu.encode.samples import photo_frame

    stream = encode_quic_rgb32(np.tile(photo_frame(640, 360), (4, 4, 1)))  # tens of ms
    assert any(python_ran_during_call(quic_decode, stream)  # type: ignore[arg-type]
               for _ in range(TRIES))
