"""The per-region codec choice."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from vgpu.encode import policy
from vgpu.encode.policy import ClientCodecs, encode_region, is_photographic, palettize
from vgpu.encode.samples import desktop_frame, photo_frame

ENUMS_H = Path("/usr/include/spice-1/spice/enums.h")  # libspice-protocol-dev


def test_image_type_numbers_match_spice_protocol() -> None:
    if not ENUMS_H.is_file():
        pytest.skip("spice-protocol headers are not installed")
    text = ENUMS_H.read_text()
    body = text[text.index("typedef enum SpiceImageType"):]
    body = body[:body.index("}")]
    value, numbers = -1, {}
    for name, explicit in re.findall(r"(SPICE_IMAGE_TYPE_\w+)\s*(?:=\s*(\d+))?", body):
        value = int(explicit) if explicit else value + 1
        numbers[name] = value
    for name in ("QUIC", "LZ_RGB", "JPEG", "LZ4"):
        assert getattr(policy, f"SPICE_IMAGE_TYPE_{name}") == numbers[f"SPICE_IMAGE_TYPE_{name}"]


@pytest.fixture(scope="module")
def desk() -> np.ndarray:
    return desktop_frame(960, 540)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photo_frame(480, 270)


def test_classifier(desk: np.ndarray, photo: np.ndarray) -> None:
    assert not is_photographic(desk)
    assert not is_photographic(desk[50:300, 400:900])
    assert is_photographic(photo)
    assert is_photographic(photo[10:100, 20:300])
    assert not is_photographic(np.zeros((1080, 1920, 4), np.uint8))
    assert not is_photographic(photo[:10, :10])  # too small to bother


def test_lossless_choices(desk: np.ndarray, photo: np.ndarray) -> None:
    every = ClientCodecs(lz4=True, jpeg=True, quic=True)
    r = encode_region(desk, every)
    assert (r.image_type, r.lossy, r.data[:4]) == (policy.SPICE_IMAGE_TYPE_LZ_RGB, False, b"  ZL")
    r = encode_region(photo, every)
    assert (r.image_type, r.lossy, r.data[:4]) == (policy.SPICE_IMAGE_TYPE_QUIC, False, b"QUIC")
    r = encode_region(photo, ClientCodecs(lz4=True, quic=False))
    assert (r.image_type, r.data[:2]) == (policy.SPICE_IMAGE_TYPE_LZ4, b"\x01\x08")
    r = encode_region(photo, ClientCodecs(lz4=False, quic=False))
    assert r.image_type == policy.SPICE_IMAGE_TYPE_LZ_RGB


def test_lossy_only_when_allowed_and_photographic(desk: np.ndarray, photo: np.ndarray) -> None:
    client = ClientCodecs()
    r = encode_region(photo, client, lossy_allowed=True)
    assert (r.image_type, r.lossy, r.data[:2]) == (policy.SPICE_IMAGE_TYPE_JPEG, True, b"\xff\xd8")
    assert encode_region(desk, client, lossy_allowed=True).image_type == \
        policy.SPICE_IMAGE_TYPE_LZ_RGB
    no_jpeg = ClientCodecs(jpeg=False)
    assert encode_region(photo, no_jpeg, lossy_allowed=True).image_type == \
        policy.SPICE_IMAGE_TYPE_QUIC


def test_alpha_keeps_alpha(photo: np.ndarray) -> None:
    r = encode_region(photo, ClientCodecs(), lossy_allowed=True, has_alpha=True)
    assert r.image_type == policy.SPICE_IMAGE_TYPE_LZ_RGB and not r.lossy
    assert r.data[8:12] == (9).to_bytes(4, "big")  # LZ_IMAGE_TYPE_RGBA


def mixed_screen(desk: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """A photo (at 256..704, on tile edges) inside a desktop: a mixed screen."""
    screen = desk[:256].copy()
    screen[:, 256:704] = photo[:256, :448]
    return screen


def test_content_spans_find_the_photo(desk: np.ndarray, photo: np.ndarray) -> None:
    band = mixed_screen(desk, photo)[:128]
    assert policy.content_spans(band) == [(0, 256), (256, 704), (704, 960)]
    assert policy.content_spans(desk[:128]) == [(0, 960)]
    assert policy.content_spans(photo[:128]) == [(0, 480)]


def test_split_by_content_sends_fewer_bytes_than_whole(desk: np.ndarray, photo: np.ndarray) -> None:
    """The photo part goes out as QUIC and the rest as LZ; together smaller than LZ for
    the whole band (what a whole-region choice gives a mostly flat band)."""
    band = mixed_screen(desk, photo)[:128]
    parts = policy.encode_by_content(band, ClientCodecs())
    kinds = [image.image_type for _, _, image in parts]
    assert kinds == [policy.SPICE_IMAGE_TYPE_LZ_RGB, policy.SPICE_IMAGE_TYPE_QUIC,
                     policy.SPICE_IMAGE_TYPE_LZ_RGB]
    whole = encode_region(band, ClientCodecs())
    assert whole.image_type == policy.SPICE_IMAGE_TYPE_LZ_RGB
    assert sum(len(image.data) for _, _, image in parts) < 0.8 * len(whole.data)
    lossy = policy.encode_by_content(band, ClientCodecs(), lossy_allowed=True)
    assert [image.image_type for _, _, image in lossy][1] == policy.SPICE_IMAGE_TYPE_JPEG


def test_encode_still_is_the_one_place_options_become_codecs(desk: np.ndarray,
                                                            photo: np.ndarray) -> None:
    def types(codec: str, client: ClientCodecs, **kw) -> list[int]:
        return [image.image_type for _, _, image in policy.encode_still(photo, codec, client, **kw)]

    assert types("quic", ClientCodecs()) == [policy.SPICE_IMAGE_TYPE_QUIC]
    assert types("lz4", ClientCodecs(lz4=True)) == [policy.SPICE_IMAGE_TYPE_LZ4]
    assert types("lz4", ClientCodecs(lz4=False)) == [policy.SPICE_IMAGE_TYPE_LZ_RGB]
    assert types("lz", ClientCodecs()) == [policy.SPICE_IMAGE_TYPE_LZ_RGB]
    assert types("quic", ClientCodecs(), has_alpha=True) == [policy.SPICE_IMAGE_TYPE_LZ_RGB]
    whole = policy.encode_still(mixed_screen(desk, photo)[:128], "auto", ClientCodecs(),
                                split=False)
    assert [(s, e) for s, e, _ in whole] == [(0, 960)]
    with pytest.raises(ValueError):
        policy.encode_still(photo, "glz", ClientCodecs())


def weave(width: int, height: int) -> np.ndarray:
    """X's root weave in the Xspice recordings' colours: two colours alternating pixel by
    pixel (no neighbour repeats, yet nothing photographic about it)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.empty((height, width, 4), np.uint8)
    pixels[(x + y) % 2 == 0] = (0x60, 0x90, 0xC8, 0)
    pixels[(x + y) % 2 == 1] = (0x40, 0x50, 0x70, 0)
    pixels[(x // 7 + y // 5) % 3 == 0, :3] += 9  # a little texture: many colour pairs
    return pixels


def test_patterns_are_not_photographic(photo: np.ndarray) -> None:
    """A pattern whose neighbours all differ steeply goes to LZ, which takes it at a
    fraction of QUIC's size (spice-server picks LZ for it too: bench peer, images)."""
    pattern = weave(480, 270)
    assert not is_photographic(pattern)
    assert policy.content_spans(pattern[:128]) == [(0, 480)]
    r = encode_region(pattern, ClientCodecs())
    assert r.image_type == policy.SPICE_IMAGE_TYPE_LZ_RGB
    assert len(r.data) < len(policy.encode_quic_rgb32(pattern)) / 2
    screen = weave(960, 128)
    screen[:, 256:736] = photo[:128]
    assert policy.content_spans(screen) == [(0, 256), (256, 768), (768, 960)]


def test_palettize_takes_at_most_256_colours():
    """256 colours fit 8-bit indices; one more and the region stays 32-bit."""
    colours = np.append(np.arange(256, dtype=np.uint32) * 0x010101, np.uint32(0x123456))
    pixels = np.ascontiguousarray(colours[:256].reshape(16, 16)).view(np.uint8).reshape(16, 16, 4)
    indexed = palettize(pixels)
    assert indexed is not None and (indexed.bits, indexed.stride) == (8, 16)
    assert indexed.colours == sorted(int(c) for c in colours[:256])
    more = np.concatenate([colours, colours[:31]]).reshape(16, 18)
    assert palettize(np.ascontiguousarray(more).view(np.uint8).reshape(16, 18, 4)) is None
