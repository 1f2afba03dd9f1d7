"""The built-in desktop guest: a desktop-like session drawn through the 2D ring.

It draws what a real desktop's driver sends: a background, windows with title
bars and text (TEXT with raster glyphs), cached icons (the same image id again
and again), a terminal that scrolls (COPY_BITS), a clock, an animated chart that
changes every frame, and a blinking text cursor sent exactly as Windows guests
do it: one bitmap id drawn with two palettes. It also sets a mouse cursor on the
cursor ring, follows the client's pointer and types what the client types.

`DesktopScene` only produces typed commands; `run_desktop` feeds them to a
guest driver at a steady rate.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ImageFont

from vgpu.device.abi import lib
from vgpu.device.commands import (
    BitmapImage,
    Command,
    Copy,
    CopyBits,
    CursorCmd,
    CursorShapeData,
    Drawable,
    Fill,
    GlyphString,
    ImageDescriptor,
    Palette,
    QMask,
    QPoint,
    QRect,
    RasterGlyph,
    SolidBrush,
    Text,
)
from vgpu.display import InputEvent
from vgpu.guest.driver import GuestDriver

log = logging.getLogger(__name__)

# QXL / SPICE numbers, from the one ABI declaration (csrc/qxl_abi.h).
EFFECT_OPAQUE = lib.QXL_EFFECT_OPAQUE
ROPD_OP_PUT = lib.SPICE_ROPD_OP_PUT
IMAGE_TYPE_BITMAP = lib.SPICE_IMAGE_TYPE_BITMAP
IMAGE_FLAG_CACHE = lib.QXL_IMAGE_CACHE
BITMAP_FMT_1BIT_BE = lib.SPICE_BITMAP_FMT_1BIT_BE
BITMAP_FMT_RGBA = lib.SPICE_BITMAP_FMT_RGBA
BITMAP_FLAG_TOP_DOWN = lib.QXL_BITMAP_TOP_DOWN
# 1-bit glyphs, rows bottom-up: SPICE's canvas ignores SPICE_STRING_FLAGS_RASTER_TOP_DOWN
# and draws A8 glyphs one row off (docs/conformance.md), so A1 is what reads right everywhere
STRING_RASTER_A1 = lib.SPICE_STRING_FLAGS_RASTER_A1
CURSOR_SET, CURSOR_MOVE = lib.QXL_CURSOR_SET, lib.QXL_CURSOR_MOVE
CURSOR_TYPE_ALPHA = lib.SPICE_CURSOR_TYPE_ALPHA

NO_MASK = QMask(0, QPoint(0, 0), None)
ZERO_RECT = QRect(0, 0, 0, 0)

DESKTOP = 0x2F4F6F
WINDOW_BODY = 0xECECEC
TITLE_ACTIVE = 0x3465A4
TITLE_TEXT = 0xFFFFFF
TERMINAL_BG = 0x101820
TERMINAL_FG = 0x8AE234
BORDER = 0x202020

FONT_SIZE = 12
LINE_HEIGHT = 16
BLINK_PERIOD_S = 0.5
CLOCK_PERIOD_S = 1.0
LOG_PERIOD_S = 0.7
ICON_SIZE = 32
CLOCK_STEP = 2  # pixels the clock window moves per frame
CLOCK_TOP_RANGE = (60, 330)  # the free strip right of the terminal, above the chart
CURSOR_ICON_ID = 0x7667_7075_0001  # arbitrary fixed ids: the guest picks its cache ids
BLINK_IMAGE_ID = 0x7667_7075_0002
ICON_IMAGE_BASE = 0x7667_7075_1000

LOG_LINES = (
    "vgpu: QXL rev 5, 2D ring, surfaces, image cache",
    "render: one GL context, batched 2D ops",
    "encode: tiles, SPICE LZ, QUIC, LZ4, JPEG in C",
    "spice: link, main, display, cursor, inputs",
    "$ uptime",
    "clients see only the rendered frames",
)

# PC AT set-1 scancodes (as SPICE clients send them) for the keys the terminal types.
SCANCODE_CHARS = dict(
    zip(
        [*range(0x02, 0x0C), *range(0x10, 0x1A), *range(0x1E, 0x27), *range(0x2C, 0x33), 0x39],
        "1234567890" "qwertyuiop" "asdfghjkl" "zxcvbnm" " ",
        strict=True,
    )
)
SCANCODE_ENTER = 0x1C
SCANCODE_BACKSPACE = 0x0E
KEY_RELEASE_BIT = 0x80


@dataclass(frozen=True)
class Window:
    title: str
    rect: QRect  # outer rect, title bar included

    @property
    def body(self) -> QRect:
        r = self.rect
        return QRect(r.top + 22, r.left + 2, r.bottom - 2, r.right - 2)


def fill(rect: QRect, color: int) -> Drawable:
    return Drawable(bbox=rect, effect=EFFECT_OPAQUE,
                    op=Fill(SolidBrush(color), ROPD_OP_PUT, NO_MASK))


def copy_image(dest: QRect, image: BitmapImage) -> Drawable:
    src = QRect(0, 0, image.height, image.width)
    return Drawable(bbox=dest, effect=EFFECT_OPAQUE, op=Copy(image, src, ROPD_OP_PUT, 0, NO_MASK))


class GlyphCache:
    """Raster glyphs (A1, most significant bit first, rows bottom-up) made from Pillow's
    built-in font, each placed where Pillow itself draws it in the string."""

    def __init__(self) -> None:
        self._font = ImageFont.load_default(size=FONT_SIZE)
        self.ascent = self._font.getmetrics()[0]
        self._glyphs: dict[str, tuple[int, int, int, int, bytes, int]] = {}

    def _glyph(self, ch: str) -> tuple[int, int, int, int, bytes, int]:
        if ch not in self._glyphs:
            # the mask's own offset from the pen, not the ink's bounding box: the two differ
            # (a "t" overhangs its box), and using the box put gaps inside words
            mask, (left, top) = self._font.getmask2(ch, mode="1")
            w, h = mask.size
            rows = np.frombuffer(bytes(mask), np.uint8, w * h).reshape(h, w)
            data = np.packbits(rows[::-1] > 0, axis=1).tobytes()  # bottom row first
            advance = math.ceil(self._font.getlength(ch))
            self._glyphs[ch] = (left, top, w, h, data, advance)
        return self._glyphs[ch]

    def advance(self, s: str) -> int:
        """How far `text` moves the pen for `s`."""
        return sum(self._glyph(ch)[5] for ch in s)

    def text(self, x: int, baseline: int, s: str, color: int) -> Drawable | None:
        """A TEXT drawable with `s` written from x along the baseline."""
        glyphs = []
        pen = x
        for ch in s:
            left, top, w, h, data, advance = self._glyph(ch)
            if w and h:
                glyphs.append(
                    RasterGlyph(QPoint(pen, baseline), QPoint(left, top - self.ascent), w, h,
                                data)
                )
            pen += advance
        if not glyphs:
            return None
        box = QRect(
            min(g.render_pos.y + g.glyph_origin.y for g in glyphs),
            min(g.render_pos.x + g.glyph_origin.x for g in glyphs),
            max(g.render_pos.y + g.glyph_origin.y + g.height for g in glyphs),
            max(g.render_pos.x + g.glyph_origin.x + g.width for g in glyphs),
        )
        op = Text(
            GlyphString(STRING_RASTER_A1, tuple(glyphs)), ZERO_RECT,
            SolidBrush(color), None, ROPD_OP_PUT, ROPD_OP_PUT,
        )
        return Drawable(bbox=box, effect=EFFECT_OPAQUE, op=op)


def _icon(index: int) -> BitmapImage:
    """A 32x32 RGBA icon, different per index, flagged for caching under a fixed id."""
    yy, xx = np.mgrid[0:ICON_SIZE, 0:ICON_SIZE]
    hue = index * 70
    rgba = np.zeros((ICON_SIZE, ICON_SIZE, 4), np.uint8)
    rgba[..., 0] = (xx * 6 + hue) % 256  # B
    rgba[..., 1] = (yy * 6 + hue * 2) % 256  # G
    rgba[..., 2] = 200 - index * 30  # R
    rgba[..., 3] = 255
    frame = (xx < 2) | (yy < 2) | (xx >= ICON_SIZE - 2) | (yy >= ICON_SIZE - 2)
    rgba[frame] = (40, 40, 40, 255)
    desc = ImageDescriptor(ICON_IMAGE_BASE + index, IMAGE_TYPE_BITMAP, IMAGE_FLAG_CACHE,
                           ICON_SIZE, ICON_SIZE)
    return BitmapImage(desc, BITMAP_FMT_RGBA, BITMAP_FLAG_TOP_DOWN, ICON_SIZE, ICON_SIZE,
                       ICON_SIZE * 4, None, rgba.tobytes())


def _blink_block(on: bool) -> BitmapImage:
    """The text cursor: one 1-bit bitmap id, shown on or off by its palette alone."""
    width, height = 8, LINE_HEIGHT
    rows = bytes([0xFF]) * height  # every pixel is index 1
    colors = (TERMINAL_BG, TERMINAL_FG if on else TERMINAL_BG)
    palette = Palette(unique=2 if on else 1, ents=colors)
    desc = ImageDescriptor(BLINK_IMAGE_ID, IMAGE_TYPE_BITMAP, IMAGE_FLAG_CACHE, width, height)
    return BitmapImage(desc, BITMAP_FMT_1BIT_BE, BITMAP_FLAG_TOP_DOWN, width, height, 1,
                       palette, rows)


def _arrow_cursor() -> CursorShapeData:
    """A 12x19 ARGB arrow pointer for the cursor ring."""
    w, h = 12, 19
    argb = np.zeros((h, w), np.uint32)
    for y in range(h):
        span = min(y, w - 1) if y < 16 else max(0, 3 - (y - 16))
        for x in range(span + 1):
            edge = x == 0 or x == span or y == h - 1 or (y == 16 and x >= 3)
            argb[y, x] = 0xFF000000 if edge else 0xFFFFFFFF
    return CursorShapeData(unique=CURSOR_ICON_ID, type=CURSOR_TYPE_ALPHA, width=w, height=h,
                           hot_spot_x=0, hot_spot_y=0, data=argb.astype("<u4").tobytes())


class DesktopScene:
    """Produces the commands of a small, always-changing desktop."""

    def __init__(self, width: int = 1024, height: int = 768, *, window_3d: bool = False
                 ) -> None:
        self.width, self.height = width, height
        # The 3D window (vgpu.guest.cube.CubeWindow draws its body through the 3D ring).
        self.window_3d = Window("3D", QRect(380, 180, 720, 540)) if window_3d else None
        self.glyphs = GlyphCache()
        self.terminal = Window("terminal", QRect(60, 180, 60 + 22 + 2 + LINE_HEIGHT * 16, 700))
        self.clock = Window("clock", QRect(60, 730, 150, 980))
        self.chart = Window("activity", QRect(440, 560, 720, 980))
        self.icons = [_icon(i) for i in range(4)]
        self._row = 0
        self._clock_step = CLOCK_STEP
        self._log_count = 0
        self._typed = ""
        self._start: float | None = None
        self._blink_on = True
        self._next_blink = self._next_clock = self._next_log = 0.0
        self._frame = 0
        self.pointer = (width // 2, height // 2)

    # -- layout -------------------------------------------------------------
    def _window(self, win: Window, body_color: int) -> list[Command]:
        r = win.rect
        cmds: list[Command] = [
            fill(r, BORDER),
            fill(QRect(r.top + 2, r.left + 2, r.top + 20, r.right - 2), TITLE_ACTIVE),
            fill(win.body, body_color),
        ]
        title = self.glyphs.text(r.left + 8, r.top + 15, win.title, TITLE_TEXT)
        if title:
            cmds.append(title)
        return cmds

    def _icons(self) -> list[Command]:
        cmds: list[Command] = []
        for i, icon in enumerate(self.icons):
            top = 80 + i * 70
            cmds.append(copy_image(QRect(top, 40, top + ICON_SIZE, 40 + ICON_SIZE), icon))
            label = self.glyphs.text(36, top + ICON_SIZE + 14, f"app{i}", TITLE_TEXT)
            if label:
                cmds.append(label)
        return cmds

    def initial(self) -> list[Command]:
        cmds: list[Command] = [fill(QRect(0, 0, self.height, self.width), DESKTOP)]
        cmds += self._icons()
        cmds += self._window(self.terminal, TERMINAL_BG)
        cmds += self._window(self.clock, WINDOW_BODY)
        cmds += self._window(self.chart, WINDOW_BODY)
        if self.window_3d is not None:
            cmds += self._window(self.window_3d, BORDER)
        return cmds

    def cursor_initial(self) -> list[Command]:
        x, y = self.pointer
        return [CursorCmd(0, CURSOR_SET, QPoint(x, y), True, _arrow_cursor(), 0, 0)]

    # -- the terminal ---------------------------------------------------------
    @property
    def _rows(self) -> int:
        return self.terminal.body.height // LINE_HEIGHT

    def _line_rect(self, row: int) -> QRect:
        body = self.terminal.body
        top = body.top + row * LINE_HEIGHT
        return QRect(top, body.left, top + LINE_HEIGHT, body.right)

    def _emit_line(self, text: str) -> list[Command]:
        """Draws `text` over the current row."""
        line = self._line_rect(self._row)
        cmds: list[Command] = [fill(line, TERMINAL_BG)]
        drawn = self.glyphs.text(line.left + 4, line.top + 12, text, TERMINAL_FG)
        if drawn:
            cmds.append(drawn)
        return cmds

    def _advance(self) -> list[Command]:
        """Moves to the next row, scrolling the terminal up one line when at the bottom."""
        if self._row < self._rows - 1:
            self._row += 1
            return []
        body = self.terminal.body
        dest = QRect(body.top, body.left, body.top + (self._rows - 1) * LINE_HEIGHT, body.right)
        scroll = Drawable(bbox=dest, effect=EFFECT_OPAQUE,
                          op=CopyBits(QPoint(body.left, body.top + LINE_HEIGHT)))
        return [scroll, fill(self._line_rect(self._row), TERMINAL_BG)]

    @property
    def _prompt(self) -> str:
        return "$ " + self._typed

    def _cursor_cell(self) -> QRect:
        line = self._line_rect(self._row)
        x = line.left + 6 + self.glyphs.advance(self._prompt)
        return QRect(line.top, x, line.bottom, x + 8)

    # -- time ---------------------------------------------------------------
    def tick(self, now: float) -> list[Command]:
        """Everything that changes by `now` (wall-clock seconds)."""
        if self._start is None:
            self._start = now
        cmds: list[Command] = []
        if now >= self._next_log:
            self._next_log = now + LOG_PERIOD_S
            text = LOG_LINES[self._log_count % len(LOG_LINES)]
            self._log_count += 1
            if text == "$ uptime":
                text = f"up {now - self._start:8.1f} s, frame {self._frame}"
            cmds += self._emit_line(text) + self._advance() + self._emit_line(self._prompt)
        if now >= self._next_clock:
            self._next_clock = now + CLOCK_PERIOD_S
            body = self.clock.body
            cmds.append(fill(body, WINDOW_BODY))
            stamp = time.strftime("%H:%M:%S", time.gmtime(now))
            drawn = self.glyphs.text(body.left + 70, body.top + 36, stamp + " UTC", 0x000000)
            if drawn:
                cmds.append(drawn)
        if now >= self._next_blink:
            self._next_blink = now + BLINK_PERIOD_S
            self._blink_on = not self._blink_on
            cmds.append(copy_image(self._cursor_cell(), _blink_block(self._blink_on)))
        cmds += self._move_clock()
        cmds += self._chart(now - self._start)
        self._frame += 1
        return cmds

    def _move_clock(self) -> list[Command]:
        """Drags the clock window up and down the free strip on the right, as a window
        manager moves a window: COPY_BITS of the window, then the uncovered desktop."""
        old = self.clock.rect
        if not CLOCK_TOP_RANGE[0] <= old.top + self._clock_step <= CLOCK_TOP_RANGE[1]:
            self._clock_step = -self._clock_step
        dy = self._clock_step
        new = QRect(old.top + dy, old.left, old.bottom + dy, old.right)
        self.clock = Window(self.clock.title, new)
        exposed = (QRect(old.top, old.left, new.top, old.right) if dy > 0
                   else QRect(new.bottom, old.left, old.bottom, old.right))
        move = Drawable(bbox=new, effect=EFFECT_OPAQUE, op=CopyBits(QPoint(old.left, old.top)))
        return [move, fill(exposed, DESKTOP)]

    def _chart(self, now: float) -> list[Command]:
        body = self.chart.body
        cmds: list[Command] = [fill(body, WINDOW_BODY)]
        bars = 24
        bar_w = body.width // bars
        for i in range(bars):
            level = 0.5 + 0.45 * math.sin(now * 2.0 + i * 0.45)
            h = int(level * (body.height - 10))
            left = body.left + i * bar_w + 1
            color = (int(80 + 150 * level) << 16) | (int(200 - 100 * level) << 8) | 0x40
            cmds.append(fill(QRect(body.bottom - h, left, body.bottom, left + bar_w - 2), color))
        return cmds

    # -- input ----------------------------------------------------------------
    def on_input(self, event: InputEvent) -> tuple[list[Command], list[Command]]:
        """(draw commands, cursor commands) answering one client input."""
        if event.kind == "mouse_position":
            self.pointer = (event.x, event.y)
            return [], [CursorCmd(0, CURSOR_MOVE, QPoint(event.x, event.y), True, None, 0, 0)]
        if event.kind != "key_down" or event.code & KEY_RELEASE_BIT:
            return [], []
        if event.code in SCANCODE_CHARS and len(self._typed) < MAX_TYPED:
            self._typed += SCANCODE_CHARS[event.code]
            return self._emit_line(self._prompt), []
        if event.code == SCANCODE_BACKSPACE:
            self._typed = self._typed[:-1]
            return self._emit_line(self._prompt), []
        if event.code == SCANCODE_ENTER:
            self._typed = ""
            return self._advance() + self._emit_line(self._prompt), []
        return [], []


MAX_TYPED = 60  # one terminal line's worth of characters
FRAME_PERIOD_S = 1 / 30  # the guest redraws its animated parts 30 times a second


def run_desktop(driver: GuestDriver, stop: threading.Event, scene: DesktopScene) -> None:
    """Drives `scene` through `driver` (primary already created) until `stop` is set."""
    cube = None
    if scene.window_3d is not None:
        from vgpu.guest.cube import CubeWindow
        from vgpu.guest.gl import Error as GlError

        body = scene.window_3d.body
        try:
            cube = CubeWindow(driver, body.left, body.top, body.width, body.height)
        except GlError as e:  # a host that runs no GL: the desktop goes on in 2D
            log.warning("no 3D window: %s", str(e).splitlines()[0])
            scene.window_3d = None
    for cmd in scene.initial() + scene.cursor_initial():
        driver.submit(cmd)
    if scene.window_3d is not None:
        # The 2D ring and the 3D ring are independent streams: the window's 2D frame is
        # drawn (UPDATE_AREA waits for it) before the first present lands inside it.
        driver.update_area(0, scene.window_3d.rect)
    start = time.monotonic()
    try:
        _desktop_loop(driver, stop, scene, cube, start)
    finally:
        if cube is not None:
            cube.close()


def _desktop_loop(driver: GuestDriver, stop: threading.Event, scene: DesktopScene,
                  cube: Any, start: float) -> None:
    while not stop.is_set():
        if cube is not None:
            cube.frame(time.monotonic() - start)
        for event in driver.read_input():
            draws, cursor = scene.on_input(event)
            for cmd in draws + cursor:
                driver.submit(cmd)
        for cmd in scene.tick(time.time()):
            driver.submit(cmd)
        driver.collect_releases()
        stop.wait(FRAME_PERIOD_S)
