"""Typed QXL commands: what the parser produces and the renderer consumes.

Every value here is a copy taken out of guest memory after checking; none
holds a pointer or a view into guest memory, so the guest changing its memory
afterwards changes nothing here. Field names follow qxl_dev.h so that the two
can be read side by side. Enumerations are the QXL/SPICE numbers (see
`csrc/qxl_abi.h`).

Rectangles are `QRect(top, left, bottom, right)` as QXL lays them out, with
bottom and right exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class QRect(NamedTuple):
    top: int
    left: int
    bottom: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


class QPoint(NamedTuple):
    x: int
    y: int


# --- images -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Palette:
    unique: int  # the guest's identity for this palette; 0 means "do not cache"
    ents: tuple[int, ...]  # 0x00RRGGBB (alpha byte as the guest wrote it)


@dataclass(frozen=True, slots=True)
class ImageDescriptor:
    id: int  # 64-bit cache id
    type: int  # SPICE_IMAGE_TYPE_*
    flags: int  # QXL_IMAGE_CACHE, ...
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class BitmapImage:
    descriptor: ImageDescriptor
    format: int  # SPICE_BITMAP_FMT_*
    flags: int  # QXL_BITMAP_TOP_DOWN, ...
    width: int
    height: int
    stride: int  # bytes per row in `data`, as the guest gave it (>= 0)
    palette: Palette | None
    data: bytes  # height * stride bytes, rows in the order the guest stored them

    @property
    def top_down(self) -> bool:
        return bool(self.flags & 4)  # QXL_BITMAP_TOP_DOWN


@dataclass(frozen=True, slots=True)
class SurfaceImage:
    """An image that is (a part of) another surface's current pixels."""

    descriptor: ImageDescriptor
    surface_id: int


@dataclass(frozen=True, slots=True)
class CompressedImage:
    """QUIC, LZ and other encoded images a guest may send; `data` is the payload as is."""

    descriptor: ImageDescriptor
    data: bytes


Image = BitmapImage | SurfaceImage | CompressedImage


# --- brushes, masks, paths, glyphs ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SolidBrush:
    color: int


@dataclass(frozen=True, slots=True)
class PatternBrush:
    pat: Image
    pos: QPoint


Brush = SolidBrush | PatternBrush | None


@dataclass(frozen=True, slots=True)
class QMask:
    flags: int  # SPICE_MASK_FLAGS_INVERS
    pos: QPoint
    bitmap: Image | None  # None: no mask


@dataclass(frozen=True, slots=True)
class PathSeg:
    flags: int  # SPICE_PATH_BEGIN / END / CLOSE / BEZIER
    points: tuple[tuple[int, int], ...]  # 28.4 fixed point (QXLPointFix), as the guest sent them


@dataclass(frozen=True, slots=True)
class LineAttr:
    flags: int  # SPICE_LINE_FLAGS_STYLED, ...
    style: tuple[int, ...]  # 28.4 fixed point segment lengths


@dataclass(frozen=True, slots=True)
class RasterGlyph:
    render_pos: QPoint
    glyph_origin: QPoint
    width: int
    height: int
    data: bytes  # rows of ceil(width * bpp / 8) bytes


@dataclass(frozen=True, slots=True)
class GlyphString:
    flags: int  # SPICE_STRING_FLAGS_RASTER_A1 / A4 / A8, TOP_DOWN
    glyphs: tuple[RasterGlyph, ...]


# --- draw operations (QXLDrawable.u) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    brush: Brush
    rop_descriptor: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class Opaque:
    src_bitmap: Image
    src_area: QRect
    brush: Brush
    rop_descriptor: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class Copy:
    src_bitmap: Image
    src_area: QRect
    rop_descriptor: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class Blend:
    src_bitmap: Image
    src_area: QRect
    rop_descriptor: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class Blackness:
    mask: QMask


@dataclass(frozen=True, slots=True)
class Whiteness:
    mask: QMask


@dataclass(frozen=True, slots=True)
class Invers:
    mask: QMask


@dataclass(frozen=True, slots=True)
class Rop3:
    src_bitmap: Image
    src_area: QRect
    brush: Brush
    rop3: int
    scale_mode: int
    mask: QMask


@dataclass(frozen=True, slots=True)
class Stroke:
    path: tuple[PathSeg, ...]
    attr: LineAttr
    brush: Brush
    fore_mode: int
    back_mode: int


@dataclass(frozen=True, slots=True)
class Text:
    str: GlyphString
    back_area: QRect
    fore_brush: Brush
    back_brush: Brush
    fore_mode: int
    back_mode: int


@dataclass(frozen=True, slots=True)
class Transparent:
    src_bitmap: Image
    src_area: QRect
    src_color: int
    true_color: int


@dataclass(frozen=True, slots=True)
class AlphaBlend:
    alpha_flags: int
    alpha: int
    src_bitmap: Image
    src_area: QRect


@dataclass(frozen=True, slots=True)
class Composite:
    flags: int  # operator, filters, repeat modes, component alpha, ... (SPICE_COMPOSITE_*)
    src: Image
    mask: Image | None
    src_transform: tuple[int, ...] | None  # 6 x 16.16 fixed point, row-major 2x3
    mask_transform: tuple[int, ...] | None
    src_origin: QPoint
    mask_origin: QPoint


@dataclass(frozen=True, slots=True)
class CopyBits:
    src_pos: QPoint


@dataclass(frozen=True, slots=True)
class Nop:
    pass


DrawOp = (
    Fill | Opaque | Copy | Blend | Blackness | Whiteness | Invers | Rop3 | Stroke | Text
    | Transparent | AlphaBlend | Composite | CopyBits | Nop
)


# --- commands (QXLCommand.type) --------------------------------------------------


NO_RECT = QRect(0, 0, 0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawable:
    """One draw command, built by keyword: `Drawable(bbox=..., op=...)` is an unclipped
    draw on the primary surface with no dependencies; the other fields say otherwise."""

    release_id: int = 0  # QXLReleaseInfo.id, for the release ring
    bbox: QRect
    clip: tuple[QRect, ...] | None = None  # None: no clipping
    effect: int = 0  # QXL_EFFECT_* (0: BLEND)
    mm_time: int = 0
    self_bitmap: int = 0
    self_bitmap_area: QRect = NO_RECT
    surface_id: int = 0
    surfaces_dest: tuple[int, int, int] = (-1, -1, -1)  # -1: no dependency
    surfaces_rects: tuple[QRect, QRect, QRect] = (NO_RECT, NO_RECT, NO_RECT)
    op: DrawOp


@dataclass(frozen=True, slots=True)
class UpdateCmd:
    release_id: int
    area: QRect
    update_id: int
    surface_id: int


@dataclass(frozen=True, slots=True)
class MessageCmd:
    release_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SurfaceCreate:
    format: int  # SPICE_SURFACE_FMT_*
    width: int
    height: int
    stride: int  # may be negative (bottom-up), as QXL allows
    data_offset: int  # checked offset of the surface memory inside the device's guest memory
    data_length: int  # height * abs(stride), checked to lie inside one memslot


@dataclass(frozen=True, slots=True)
class SurfaceCmd:
    release_id: int
    surface_id: int
    type: int  # QXL_SURFACE_CMD_CREATE / DESTROY
    flags: int  # QXL_SURF_FLAG_KEEP_DATA
    create: SurfaceCreate | None  # set for CREATE


@dataclass(frozen=True, slots=True)
class CursorCmd:
    release_id: int
    type: int  # QXL_CURSOR_SET / MOVE / HIDE / TRAIL
    position: QPoint
    visible: bool
    shape: CursorShapeData | None
    trail_length: int
    trail_frequency: int


@dataclass(frozen=True, slots=True)
class CursorShapeData:
    unique: int
    type: int  # SPICE_CURSOR_TYPE_*
    width: int
    height: int
    hot_spot_x: int
    hot_spot_y: int
    data: bytes


Command = Drawable | UpdateCmd | MessageCmd | SurfaceCmd | CursorCmd
