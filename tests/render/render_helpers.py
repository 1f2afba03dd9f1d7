"""Builders for typed draw commands, shared by the renderer's tests and benchmark."""

from __future__ import annotations

import numpy as np

from vgpu.device.commands import (
    BitmapImage,
    Drawable,
    DrawOp,
    ImageDescriptor,
    Palette,
    QMask,
    QPoint,
    QRect,
)
from vgpu.render import enums as E

NO_MASK = QMask(0, QPoint(0, 0), None)


def rect(x0: int, y0: int, x1: int, y1: int) -> QRect:
    return QRect(y0, x0, y1, x1)


def draw(op: DrawOp, box: tuple[int, int, int, int], clip: list | None = None,
         surface_id: int = 0) -> Drawable:
    return Drawable(bbox=rect(*box), clip=tuple(rect(*c) for c in clip) if clip is not None
                    else None, surface_id=surface_id, op=op)


def bitmap(pixels: np.ndarray, fmt: int = E.BITMAP_FMT_32BIT, *, image_id: int = 0,
           cache: bool = False, top_down: bool = True, palette: Palette | None = None,
           width: int | None = None) -> BitmapImage:
    """A bitmap from rows of packed bytes (2-D uint8) or (h, w, 4) uint8 pixels."""
    rows = pixels.reshape(pixels.shape[0], -1) if pixels.ndim == 3 else pixels
    h = rows.shape[0]
    w = width if width is not None else (pixels.shape[1] if pixels.ndim == 3 else rows.shape[1])
    data = (rows if top_down else rows[::-1]).tobytes()
    desc = ImageDescriptor(image_id, E.IMAGE_TYPE_BITMAP, E.QXL_IMAGE_CACHE if cache else 0, w, h)
    return BitmapImage(desc, fmt, 4 if top_down else 0, w, h, rows.shape[1], palette, data)


def mask_bitmap(bits: np.ndarray, invert: bool = False) -> QMask:
    """A 1BIT_BE mask from an (h, w) bool array, at position (0, 0)."""
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="big")
    img = bitmap(packed, E.BITMAP_FMT_1BIT_BE, width=bits.shape[1])
    return QMask(E.MASK_FLAGS_INVERS if invert else 0, QPoint(0, 0), img)
