"""pixman itself, through ctypes on the installed libpixman-1.so.0 (cairo's dependency): the
reference the COMPOSITE tests compare the renderer with. Images wrap numpy buffers; pixels
are 32-bit words 0xAARRGGBB, so B, G, R, A bytes in memory as on the renderer's surfaces."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np


def _format(bpp: int, kind: int, a: int, r: int, g: int, b: int) -> int:
    """PIXMAN_FORMAT(bpp, type, a, r, g, b) of pixman.h."""
    return bpp << 24 | kind << 16 | a << 12 | r << 8 | g << 4 | b


_TYPE_A, _TYPE_ARGB = 1, 2
A8R8G8B8 = _format(32, _TYPE_ARGB, 8, 8, 8, 8)
X8R8G8B8 = _format(32, _TYPE_ARGB, 0, 8, 8, 8)
A8 = _format(8, _TYPE_A, 8, 0, 0, 0)

REPEAT_NONE, REPEAT_NORMAL, REPEAT_PAD, REPEAT_REFLECT = range(4)
FILTER_FAST, FILTER_GOOD, FILTER_BEST, FILTER_NEAREST, FILTER_BILINEAR = range(5)
FIXED_1 = 1 << 16


class Transform(ctypes.Structure):
    """pixman_transform_t: 3x3 16.16 fixed point."""

    _fields_ = [("matrix", (ctypes.c_int32 * 3) * 3)]

    @classmethod
    def affine(cls, rows: tuple[int, ...]) -> Transform:
        """(t00, t01, t02, t10, t11, t12) and the row 0, 0, 1, as the canvas's
        transform_to_pixman_transform builds it (the values taken as int32)."""
        t = cls()
        for i, v in enumerate((*rows, 0, 0, FIXED_1)):
            t.matrix[i // 3][i % 3] = ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
        return t


def load() -> ctypes.CDLL | None:
    """The library with the prototypes used here, or None where it is not installed."""
    name = ctypes.util.find_library("pixman-1") or "libpixman-1.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    img = ctypes.c_void_p
    lib.pixman_image_create_bits.restype = img
    lib.pixman_image_create_bits.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                             ctypes.c_void_p, ctypes.c_int]
    lib.pixman_image_unref.argtypes = [img]
    lib.pixman_image_set_repeat.argtypes = [img, ctypes.c_int]
    lib.pixman_image_set_component_alpha.argtypes = [img, ctypes.c_int]
    lib.pixman_image_set_transform.argtypes = [img, ctypes.POINTER(Transform)]
    lib.pixman_image_set_transform.restype = ctypes.c_int
    lib.pixman_image_set_filter.argtypes = [img, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    lib.pixman_image_set_filter.restype = ctypes.c_int
    lib.pixman_image_composite32.argtypes = [ctypes.c_int, img, img, img] + [ctypes.c_int32] * 8
    lib.pixman_version_string.restype = ctypes.c_char_p
    return lib


class Pixman:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.version = lib.pixman_version_string().decode()

    def _image(self, pixels: np.ndarray, fmt: int) -> tuple[int, np.ndarray]:
        """A pixman image over a C-contiguous copy of pixels (kept alive by the caller); an A8
        image's rows are padded to whole 32-bit words, as pixman wants."""
        h, w = pixels.shape[:2]
        if fmt == A8:
            buf = np.zeros((h, (w + 3) & ~3), np.uint8)
            buf[:, :w] = pixels
        else:
            buf = np.ascontiguousarray(pixels)
        stride = buf.strides[0]
        if stride % 4:
            raise ValueError("pixman rows are whole 32-bit words")
        ptr = self.lib.pixman_image_create_bits(fmt, w, h, buf.ctypes.data, stride)
        if not ptr:
            raise MemoryError("pixman_image_create_bits failed")
        return ptr, buf

    def composite(self, op: int, dst: np.ndarray, dst_fmt: int, src: np.ndarray, src_fmt: int,
                  *, src_repeat: int = REPEAT_NONE, src_xy: tuple[int, int] = (0, 0),
                  mask: np.ndarray | None = None, mask_fmt: int = A8,
                  component_alpha: bool = False, mask_xy: tuple[int, int] = (0, 0),
                  dst_box: tuple[int, int, int, int] | None = None,
                  src_transform: tuple[int, ...] | None = None, src_filter: int = FILTER_NEAREST,
                  mask_transform: tuple[int, ...] | None = None,
                  mask_filter: int = FILTER_NEAREST, mask_repeat: int = REPEAT_NONE
                  ) -> np.ndarray:
        """pixman_image_composite32(op, src, mask, dst) over dst_box (x0, y0, x1, y1; all of
        dst when None); returns the new destination. dst and src are (h, w, 4) uint8 B, G, R, A
        pixels; an A8 mask is (h, w) uint8. Transforms are the canvas's 6 16.16 values,
        set with the filter and repeat mode as canvas_draw_composite sets them."""
        out = dst.copy()
        d_img, d_buf = self._image(out, dst_fmt)
        s_img, s_buf = self._image(src, src_fmt)
        m_img = None
        m_buf = None
        try:
            self._sampling(s_img, src_transform, src_filter, src_repeat)
            if mask is not None:
                m_img, m_buf = self._image(mask, mask_fmt)
                self._sampling(m_img, mask_transform, mask_filter, mask_repeat)
                self.lib.pixman_image_set_component_alpha(m_img, int(component_alpha))
            x0, y0, x1, y1 = dst_box if dst_box is not None else (0, 0, dst.shape[1],
                                                                  dst.shape[0])
            self.lib.pixman_image_composite32(op, s_img, m_img, d_img, src_xy[0], src_xy[1],
                                              mask_xy[0], mask_xy[1], x0, y0, x1 - x0, y1 - y0)
        finally:
            for ptr in (d_img, s_img, m_img):
                if ptr:
                    self.lib.pixman_image_unref(ptr)
        del s_buf, m_buf
        return d_buf


    def _sampling(self, img: int, transform: tuple[int, ...] | None, filt: int,
                  repeat: int) -> None:
        if transform is not None and not self.lib.pixman_image_set_transform(
                img, ctypes.byref(Transform.affine(transform))):
            raise MemoryError("pixman_image_set_transform failed")
        if not self.lib.pixman_image_set_filter(img, filt, None, 0):
            raise ValueError(f"pixman refuses filter {filt}")
        self.lib.pixman_image_set_repeat(img, repeat)


def pixman() -> Pixman | None:
    lib = load()
    return Pixman(lib) if lib is not None else None
