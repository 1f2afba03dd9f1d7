"""Content that moved, found in the old picture (for COPY_BITS)."""

from __future__ import annotations

import numpy as np

from vgpu.encode.motion import MIN_MOVE_ROWS, find_hinted_move, find_move, find_vertical_move
from vgpu.encode.samples import desktop_frame, photo_frame


def weave(width: int, height: int) -> np.ndarray:
    """X's root weave: two colours alternating pixel by pixel (matches itself at any
    even shift, the trap for a search)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.empty((height, width, 4), np.uint8)
    pixels[(x + y) % 2 == 0] = (0x60, 0x90, 0xC8, 0)
    pixels[(x + y) % 2 == 1] = (0x40, 0x50, 0x70, 0)
    return pixels


def moved_equal(prev: np.ndarray, cur: np.ndarray, block: tuple, dx: int, dy: int) -> bool:
    left, top, right, bottom = block
    return bool((cur[top:bottom, left:right]
                 == prev[top + dy:bottom + dy, left + dx:right + dx]).all())


def terminal(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Lines of random "glyphs" on white, 13 rows a line, 3 of them blank."""
    rng = np.random.default_rng(seed)
    pixels = np.full((height, width, 4), 255, np.uint8)
    ink = rng.random((height, width)) < 0.2
    ink[(np.arange(height) % 13) >= 10] = False
    pixels[ink, :3] = 0
    return pixels


def test_a_scrolled_terminal_is_found() -> None:
    prev = desktop_frame(640, 400)
    prev[50:350, 100:500] = terminal(400, 300)
    cur = prev.copy()
    cur[50:330, 100:500] = prev[70:350, 100:500]  # up by 20 rows
    cur[330:350, 100:500] = 255  # a new blank line
    found = find_vertical_move(prev, cur, (100, 50, 500, 350))
    assert found is not None
    block, dy = found
    assert dy == 20 and moved_equal(prev, cur, block, 0, dy)
    assert block[1] <= 50 and block[3] >= 330


def test_a_dragged_window_is_found_over_the_weave() -> None:
    prev, cur = weave(1024, 768), weave(1024, 768)
    window = desktop_frame(300, 200)
    prev[100:300, 100:400] = window
    cur[160:360, 231:531] = window  # odd shift: the weave does not match itself
    found = find_move(prev, cur, (100, 100, 531, 360), (100, 100, 531, 360))
    assert found is not None
    block, dx, dy = found
    assert (dx, dy) == (-131, -60) and moved_equal(prev, cur, block, dx, dy)
    assert block == (231, 160, 531, 360)


def test_nothing_moved() -> None:
    prev, cur = photo_frame(400, 300, seed=1), photo_frame(400, 300, seed=2)
    assert find_move(prev, cur, (0, 0, 400, 300), (0, 0, 400, 300)) is None
    flat = np.zeros((300, 400, 4), np.uint8)
    assert find_move(flat, flat + 1, (0, 0, 400, 300), (0, 0, 400, 300)) is None
    small = desktop_frame(400, 300)
    assert find_vertical_move(small, small, (0, 0, 400, MIN_MOVE_ROWS - 1)) is None


def test_a_hinted_move_is_checked_not_searched() -> None:
    """The guest's copy as a hint: found though small and though its middle was drawn
    over since (another probe holds), and never where the pixels say otherwise."""
    prev = weave(400, 300)
    window = photo_frame(80, 60)
    prev[20:80, 10:90] = window
    cur = weave(400, 300)
    cur[120:180, 210:290] = window
    assert find_move(prev, cur, (10, 20, 290, 180), (10, 20, 290, 180)) is None
    hint = ((210, 120, 290, 180), -200, -100)
    found = find_hinted_move(prev, cur, (0, 0, 400, 300), (hint,))
    assert found == hint
    cur[148:152, 248:252] = 0  # over the middle: a block beside it still moves
    block, dx, dy = find_hinted_move(prev, cur, (0, 0, 400, 300), (hint,))
    assert (dx, dy) == (-200, -100) and moved_equal(prev, cur, block, dx, dy)
    assert find_hinted_move(prev, cur, (0, 0, 400, 300), ((hint[0], -199, -100),)) is None
