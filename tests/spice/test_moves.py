"""A client's picture and the copies it can make: replayed here as spice-gtk applies
COPY_BITS and DRAW_COPY in order, the result must be the new frame exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vgpu.display import Frame, Move
from vgpu.encode.motion import MIN_MOVE_PIXELS
from vgpu.encode.samples import desktop_frame
from vgpu.spice.channels import EncodedRegion
from vgpu.spice.moves import MAX_INEXACT_RECTS, ClientPicture, find_moves, guest_moves

W, H = 512, 384


def frame(pixels: np.ndarray, serial: int) -> Frame:
    pixels.setflags(write=False)
    return Frame(serial, 1, pixels, ((0, 0, W, H),))


def copies_and_rest(picture: ClientPicture, new: Frame, damage: list) -> tuple[list, list]:
    """The copies and the rest, as the server asks them for one client (the frames here
    have no guest copies: nothing to copy after the draws)."""
    search = picture.search(new, damage)
    assert search is not None
    copies, rest, dragged, drawn = find_moves(search)
    assert drawn == []
    picture.searched(search, dragged)
    return copies, rest


def _copy(out: np.ndarray, copies: list) -> None:
    for (left, top, right, bottom), (sx, sy) in copies:
        source = out[sy:sy + bottom - top, sx:sx + right - left].copy()
        out[top:bottom, left:right] = source


def client_after(shown: np.ndarray, new: np.ndarray, copies: list, rects: list,
                 drawn: list = ()) -> np.ndarray:
    """What the client shows after the copies, in order, then the rects drawn from new,
    then the copies of what was drawn, in order (spice-gtk's order of the messages)."""
    out = shown.copy()
    _copy(out, copies)
    for left, top, right, bottom in rects:
        out[top:bottom, left:right] = new[top:bottom, left:right]
    _copy(out, list(drawn))
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_copies_and_the_rest_give_the_new_frame(seed: int, moves: int) -> None:
    rng = np.random.default_rng(seed)
    old = desktop_frame(W, H)
    old[100:300, 50:450, :3] = rng.integers(0, 256, (200, 400, 3), np.uint8)
    new = old.copy()
    for _ in range(moves):  # blocks moved (some overlapping) and a little drawn
        w, h = int(rng.integers(40, 300)), int(rng.integers(20, 200))
        sx, sy = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        dx, dy = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        new[dy:dy + h, dx:dx + w] = new[sy:sy + h, sx:sx + w].copy()
    new[10:20, 10:60] = 7
    picture = ClientPicture()
    first = frame(old, 1)
    picture.reset(first, EncodedRegion((0, 0, W, H), 0, b""))
    damage = [(0, 0, W, H)] if rng.random() < 0.5 else [(0, 0, W, H // 2), (0, H // 2, W, H)]
    copies, rects = copies_and_rest(picture, frame(new, 2), damage)
    assert (client_after(old, new, copies, rects) == new).all()


def test_a_scroll_is_copied_and_lossy_sources_are_not() -> None:
    old = desktop_frame(W, H)
    rows = np.random.default_rng(3).random((H, W)) < 0.2  # a terminal's "text"
    rows[np.arange(H) % 13 >= 10] = False
    old[rows, :3] = 0
    new = old.copy()
    new[0:300] = old[30:330]
    picture = ClientPicture()
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b""))
    copies, rects = copies_and_rest(picture, frame(new.copy(), 2), [(0, 0, W, H)])
    assert copies and (client_after(old, new, copies, rects) == new).all()
    assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects) < W * H // 4
    # the same, but the client got the scrolled part lossily: it must be sent
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b"", lossy=True))
    copies, rects = copies_and_rest(picture, frame(new.copy(), 2), [(0, 0, W, H)])
    assert copies == [] and rects == [(0, 0, W, H)]


def test_a_stream_kept_for_many_frames_leaves_the_picture_usable() -> None:
    """The stream's area is inexact after each of its frames: once, not once a frame
    (a list that grew each frame passed MAX_INEXACT_RECTS after a few seconds of video
    and took the client's copies away for good, and cost every send a longer scan)."""
    old = desktop_frame(W, H)
    rows = np.random.default_rng(4).random((H, W)) < 0.2
    rows[np.arange(H) % 13 >= 10] = False
    old[rows, :3] = 0
    picture = ClientPicture()
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b""))
    video = (W - 64, H - 64, W, H)
    for serial in range(2, 2 + 4 * MAX_INEXACT_RECTS):
        picture.sent(frame(old.copy(), serial), [], video)
    assert picture.search(frame(old.copy(), 999), []).inexact == (video,)
    new = old.copy()
    new[0:200] = old[30:230]  # a scroll away from the video
    copies, rects = copies_and_rest(picture, frame(new, 999), [(0, 0, W, 230)])
    assert copies and (client_after(old, new, copies, rects) == new).all()


def test_too_many_lossy_rects_leave_no_picture_until_the_next_whole_one() -> None:
    picture = ClientPicture()
    picture.reset(frame(desktop_frame(W, H), 1), EncodedRegion((0, 0, W, H), 0, b""))
    lossy = [EncodedRegion((x, 0, x + 1, 1), 0, b"", lossy=True)
             for x in range(MAX_INEXACT_RECTS + 1)]
    picture.sent(frame(desktop_frame(W, H), 2), lossy, None)
    assert picture.search(frame(desktop_frame(W, H), 3), [(0, 0, W, H)]) is None
    # an exact redraw of everything does not bring it back: only a whole picture does
    picture.sent(frame(desktop_frame(W, H), 3), [EncodedRegion((0, 0, W, H), 0, b"")], None)
    assert picture.search(frame(desktop_frame(W, H), 4), [(0, 0, W, H)]) is None
    picture.reset(frame(desktop_frame(W, H), 5), EncodedRegion((0, 0, W, H), 0, b""))
    assert picture.search(frame(desktop_frame(W, H), 6), [(0, 0, W, H)]) is not None


def _dragged(steps: int, size: tuple[int, int] = (60, 40)) -> tuple[list[np.ndarray], list[Move]]:
    """A small window (too small for the search) dragged `steps` times on a desktop,
    one guest COPY_BITS a step, each step its own frame (serials 1...)."""
    base = desktop_frame(W, H)
    w, h = size
    window = np.random.default_rng(8).integers(0, 256, (h, w, 4), np.uint8)
    frames, moves = [], []
    x, y = 20, 30
    for serial in range(1, steps + 2):
        pixels = base.copy()
        pixels[y:y + h, x:x + w] = window
        frames.append(pixels)
        if serial <= steps:  # the next step: 25 right, 12 down, as the guest copies it
            moves.append(Move(serial + 1, (x + 25, y + 12, x + 25 + w, y + 12 + h), -25, -12))
            x, y = x + 25, y + 12
    return frames, moves


def test_a_window_dragged_between_frames_the_client_skipped_is_copied() -> None:
    """The guest's copies since the client's picture, composed: a client that skipped
    frames gets the window by one COPY_BITS from where it saw it, not as pixels. The
    window is smaller than MIN_MOVE_PIXELS, so no search would find it."""
    pictures, moves = _dragged(3)
    assert MIN_MOVE_PIXELS > 60 * 40
    picture = ClientPicture()
    picture.reset(frame(pictures[0], 1), EncodedRegion((0, 0, W, H), 0, b""))
    new = Frame(4, 1, pictures[3], ((0, 0, W, H),), moves=tuple(moves))
    search = picture.search(new, [(20, 30, 155, 106)], consecutive=False)
    assert search is not None and not search.scrolls
    copies, rest, _, drawn = find_moves(search)
    assert copies == [((95, 66, 155, 106), (20, 30))]
    assert (client_after(pictures[0], pictures[3], copies, rest, drawn) == pictures[3]).all()
    assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in rest) < 135 * 76 - 60 * 40
    # one that kept up gets the last step alone (its picture is the frame before)
    picture.reset(frame(pictures[2], 3), EncodedRegion((0, 0, W, H), 0, b""))
    copies, rest = copies_and_rest(picture, new, [(70, 54, 155, 106)])
    assert copies == [((95, 66, 155, 106), (70, 54))]
    assert (client_after(pictures[2], pictures[3], copies, rest) == pictures[3]).all()


def test_a_hint_that_lies_costs_pixels_not_the_picture() -> None:
    """A guest copy drawn over since (or a hint naming the wrong source): the pixels
    decide, the client still ends with the frame exactly."""
    pictures, moves = _dragged(1)
    new = pictures[1].copy()
    new[70:80, 70:90] = 7  # drawn over the middle of the copy, where the probe is
    picture = ClientPicture()
    picture.reset(frame(pictures[0], 1), EncodedRegion((0, 0, W, H), 0, b""))
    wrong = Move(2, moves[0].rect, -24, -12)
    for hints in ((moves[0],), (wrong,)):
        search = picture.search(Frame(2, 1, new, ((0, 0, W, H),), moves=hints),
                                [(20, 30, 105, 82)], consecutive=False)
        assert search is not None
        copies, rest, _, drawn = find_moves(search)
        assert (client_after(pictures[0], new, copies, rest, drawn) == new).all()


def test_guest_moves_compose_a_drag_and_skip_what_the_client_saw() -> None:
    _, moves = _dragged(3)
    assert guest_moves(tuple(moves), 3) == (((95, 66, 155, 106), -25, -12),)
    assert guest_moves(tuple(moves), 2)[0] == ((95, 66, 155, 106), -50, -24)
    assert guest_moves(tuple(moves), 1)[0] == ((95, 66, 155, 106), -75, -36)
    assert guest_moves(tuple(moves), 4) == ()
    # dragged there and back: nothing to copy, and no hint that says so
    back = Move(5, (20, 30, 80, 70), 75, 36)
    assert guest_moves((*moves, back), 1)[0] == ((20, 30, 80, 70), 75, 36)
    assert ((20, 30, 80, 70), 0, 0) not in guest_moves((*moves, back), 1)


def test_a_scroll_of_several_guest_steps_in_one_frame_is_copied_whole() -> None:
    """Three one-line scrolls by the guest between two frames: each step alone matches
    only the blank rows (a few rows' block); the search finds the whole band, and the
    larger block is the one copied."""
    old = desktop_frame(W, H)
    rows = np.random.default_rng(5).random((H, W)) < 0.2
    rows[np.arange(H) % 13 >= 10] = False
    old[rows, :3] = 0
    new = old.copy()
    new[0:H - 39] = old[39:H]
    # (the steps' rectangle: a terminal 361 rows high, its middle on a blank row)
    steps = tuple(Move(2, (0, 0, W, 361), 0, 13) for _ in range(3))
    picture = ClientPicture()
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b""))
    new_frame = Frame(2, 1, new, ((0, 0, W, H),), moves=steps)
    copies, rects = copies_and_rest(picture, new_frame, [(0, 0, W, H)])
    assert (client_after(old, new, copies, rects) == new).all()
    assert sum((r[2] - r[0]) * (r[3] - r[1]) for r in rects) < W * H // 4


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_copies_of_what_the_frame_drew_give_the_new_frame(seed: int, lossy: bool) -> None:
    """Tiles drawn and repeated by the guest in one frame (some copies reading earlier
    ones, some drawn over after, some hints lying), with or without a lossy part on the
    client: the copies before, the draws, then the copies after give the frame exactly,
    and none of the latter reads where the client's picture is inexact."""
    rng = np.random.default_rng(seed)
    old = desktop_frame(W, H)
    new = old.copy()
    moves = []
    for _ in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(32, 96)), int(rng.integers(32, 96))
        x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        new[y:y + h, x:x + w, :3] = rng.integers(0, 256, (h, w, 3), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            dx, dy = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            sx, sy = (x, y) if rng.random() < 0.5 else (dx, dy)  # a copy of a copy
            sx, sy = min(sx, W - w), min(sy, H - h)
            new[dy:dy + h, dx:dx + w] = new[sy:sy + h, sx:sx + w].copy()
            moves.append(Move(2, (dx, dy, dx + w, dy + h), sx - dx, sy - dy))
    if rng.random() < 0.5:  # drawn over after the copies
        new[int(rng.integers(0, H - 20)):][:20, 40:200, :3] ^= 0x33
    moves.append(Move(2, (0, 0, W // 2, H // 2), 13, 7))  # a hint that lies
    picture = ClientPicture()
    inexact = (0, 0, W // 3, H // 3)
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b""))
    if lossy:
        picture.sent(frame(old, 1), [EncodedRegion(inexact, 0, b"", lossy=True)], None)
    search = picture.search(Frame(2, 1, new, ((0, 0, W, H),), moves=tuple(moves)),
                            [(0, 0, W, H)])
    assert search is not None
    copies, rest, _, drawn = find_moves(search)
    shown = old.copy()
    if lossy:  # what the client holds there is not the frame's: nothing may read it
        shown[:H // 3, :W // 3] ^= 0x11
    assert (client_after(shown, new, copies, rest, drawn) == new).all()


def test_copies_after_the_draws_read_nothing_unwritten_or_inexact() -> None:
    """A tile copied there and back by the guest (the second copy writes where the first
    reads: its source is drawn, not copied), and a tile copied out of where the client
    got lossy pixels and the frame does not redraw (drawn instead): exact either way."""
    old = desktop_frame(W, H)
    tile = np.random.default_rng(7).integers(0, 256, (48, 64, 4), np.uint8)
    new = old.copy()
    new[100:148, 100:164] = tile
    new[200:248, 300:364] = tile
    there_and_back = (Move(2, (300, 200, 364, 248), -200, -100),
                      Move(2, (100, 100, 164, 148), 200, 100))
    picture = ClientPicture()
    picture.reset(frame(old, 1), EncodedRegion((0, 0, W, H), 0, b""))
    damage = [(100, 100, 164, 148), (300, 200, 364, 248)]
    search = picture.search(Frame(2, 1, new, tuple(damage), moves=there_and_back), damage)
    assert search is not None
    copies, rest, _, drawn = find_moves(search)
    assert drawn == [((300, 200, 364, 248), (100, 100))]
    assert (client_after(old, new, copies, rest, drawn) == new).all()
    # the client got the tile lossily (and shows it a little off); the frame repeats it
    shown, lossy = new.copy(), (100, 100, 164, 148)
    shown[100:148, 100:164] ^= 0x11
    newer = new.copy()
    newer[20:68, 20:84] = tile
    picture.reset(frame(new, 2), EncodedRegion((0, 0, W, H), 0, b""))
    picture.sent(frame(new, 2), [EncodedRegion(lossy, 0, b"", lossy=True)], None)
    search = picture.search(Frame(3, 1, newer, ((20, 20, 84, 68),),
                                  moves=(Move(3, (20, 20, 84, 68), 80, 80),)),
                            [(20, 20, 84, 68)])
    assert search is not None
    copies, rest, _, drawn = find_moves(search)
    assert drawn == [] and rest == [(20, 20, 84, 68)]
    assert (client_after(shown, newer, copies, rest, drawn)[20:68, 20:84]
            == newer[20:68, 20:84]).all()
