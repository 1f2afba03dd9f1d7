"""The 2D operations: a handler per QXL draw operation, each checking and decoding
everything it needs (images into the staging buffer, the image cache or a texture of their
own; brushes, masks, scaling) before it queues anything, so that a bad operation raises
`RenderError` and leaves nothing half-done.

Semantics follow spice-common's software canvas (canvas_base.c, sw_canvas.c), which is what
spice-gtk shows.
"""

from __future__ import annotations

import math
from typing import Any

import moderngl
import numpy as np

from vgpu.device.commands import (
    AlphaBlend,
    BitmapImage,
    Blackness,
    Blend,
    Brush,
    Composite,
    Copy,
    CopyBits,
    Fill,
    Image,
    Invers,
    Opaque,
    Palette,
    PatternBrush,
    QMask,
    QRect,
    Rop3,
    SolidBrush,
    Stroke,
    SurfaceImage,
    Text,
    Transparent,
    Whiteness,
)
from vgpu.display import Placement
from vgpu.render import enums as E
from vgpu.render import pixels as px
from vgpu.render import rops
from vgpu.render.batch import (
    BLIT_FILL,
    BLIT_GLYPH,
    BLIT_LIMIT,
    KIND_ALPHA,
    KIND_COLORKEY,
    KIND_COVERAGE,
    KIND_ROP3,
    MAX_STAGING_BYTES,
    MODE_BILINEAR,
    MODE_DST_ALPHA,
    MODE_MASK,
    MODE_SRC_ALPHA,
    MODE_SRC_OPAQUE,
    Handler,
    Source,
    SourceMap,
    StagingFull,
    resolve,
)
from vgpu.render.cache import (
    IMAGE_CACHE_BYTES,
    SLOT_ATLAS_SIDE,
    CachedImage,
    ImageCache,
    SlotAtlas,
    content_key,
    part_key,
)
from vgpu.render.composite import ImageShape, composite_setup
from vgpu.render.context import Surface, load_program
from vgpu.render.errors import RenderError
from vgpu.render.readback import MIN_PLACEMENT_PIXELS, Readback
from vgpu.render.region import Box, bounds, check_rect, intersect
from vgpu.render.stroke import stroke_mask

STAGE_MAX_IMAGE = 512
"""Uncached images up to this side are staged with the batch; larger ones are rare (window
contents) and get a texture of their own, where one upload per image is cheap next to its
pixels."""

_FORMATS_32 = (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB)
_FORMATS_32_BITMAP = (E.BITMAP_FMT_32BIT, E.BITMAP_FMT_RGBA)
_ALPHA_FORMATS = (E.SURFACE_FMT_32_ARGB, E.SURFACE_FMT_8_A, E.SURFACE_FMT_1_A)
# read once per operation: module names, not attribute lookups on `E` each time
_IMAGE_CACHE = E.QXL_IMAGE_CACHE
_TOP_DOWN = E.QXL_BITMAP_TOP_DOWN
_BITMAP_RGBA = E.BITMAP_FMT_RGBA
_FILL_BIT = 1 << BLIT_FILL
_TYPE_BITMAP = E.IMAGE_TYPE_BITMAP
_OP_PUT = E.ROPD_OP_PUT
_SRCCOPY = rops.ROP3_SRCCOPY


class Ops2d(Readback):
    """The handlers of the fourteen 2D operations and the image cache they share."""

    def __init__(self, ctx: moderngl.Context | None, framebuffer_fetch: bool | None,
                 cache_bytes: int = IMAGE_CACHE_BYTES) -> None:
        super().__init__(ctx, framebuffer_fetch)
        self._comp_variants: dict[tuple[int, ...],
                                  tuple[moderngl.Program, moderngl.VertexArray]] = {}
        self.cache = ImageCache(cache_bytes, self._cache_release)
        self._slots = SlotAtlas()
        self._cache_tex: moderngl.Texture | None = None  # small cached images, made on demand
        # the images the operation being executed drew whole (see _placements)
        self._placed: list[Placement] = []
        self._handlers: dict[type, Handler] = {
            Fill: self._fill, Opaque: self._opaque, Copy: self._copy, Blend: self._copy,
            Blackness: self._const_fill, Whiteness: self._const_fill, Invers: self._const_fill,
            Rop3: self._rop3, Stroke: self._stroke, Text: self._text,
            Transparent: self._transparent, AlphaBlend: self._alpha_blend,
            Composite: self._composite, CopyBits: self._copy_bits,
        }

    def close(self) -> None:
        for prog, vao in self._comp_variants.values():
            vao.release()
            prog.release()
        super().close()

    # --- images --------------------------------------------------------------------------

    def _image(self, image: Image, target: Surface, own_texture: bool = False,
               plain_copy: bool = False) -> Source:
        """Checks and decodes an image into something the GL path can sample. Bitmaps go into
        the staging buffer (small, uncached), the cache (QXL_IMAGE_CACHE) or a texture.
        plain_copy: the source of an unscaled, unmasked SRCCOPY (see `_stage_rows`)."""
        if type(image) is BitmapImage:
            pass
        elif isinstance(image, SurfaceImage):
            src = self._get_surface(image.surface_id)
            tex = src.tex
            if src is target:
                tex = None  # resolved at queue time: a copy taken before the draw
            return Source(tex, src.width, src.height, src.fmt in _ALPHA_FORMATS, surface=src)
        elif not isinstance(image, BitmapImage):
            d = image.descriptor
            if d.flags & E.QXL_IMAGE_CACHE and not own_texture:
                # a hit needs no decoding: its key comes from the stream's header
                hit = self.cache.get(_cache_key(d.id, None, px.quic_format(image)), d.width,
                                     d.height)
                if hit is not None:
                    return hit.source
            image = px.quic_bitmap(image)  # the bitmap it stands for; RenderError if none
        d = image.descriptor
        if d.type != _TYPE_BITMAP:
            raise RenderError(f"bitmap with image type {d.type}")
        # own_texture (patterns, filtered scaling) wants a texture of exactly the image, which
        # a cached image in the shared texture is not: those decode afresh
        cache = d.flags & _IMAGE_CACHE and not own_texture
        if cache:
            # _cache_key written out: a hit (most cached images) is a call less
            palette = image.palette
            key = (d.id, None if palette is None else px.palette_key(palette), image.format)
            hit = self.cache.get(key, image.width, image.height)
            if hit is not None:
                return hit.source
        elif not own_texture:
            rows = self._stage_rows(image, plain_copy)
            if rows is not None:
                return Source(None, image.width, image.height, image.format == _BITMAP_RGBA,
                              None, rows)
        data, has_alpha = px.decode_bitmap(image)
        h, w = data.shape[:2]
        if cache:
            return self._cache_put(key, np.ascontiguousarray(data), has_alpha)
        if (own_texture or w > STAGE_MAX_IMAGE or h > STAGE_MAX_IMAGE
                or data.nbytes > MAX_STAGING_BYTES // 2):
            tex = self.ctx.texture((w, h), 4, np.ascontiguousarray(data).tobytes())
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._op_textures.append(tex)
            return Source(tex, w, h, has_alpha)
        base = self._stage(np.ascontiguousarray(data))
        return Source(None, w, h, has_alpha, staged=(base >> 2, w))

    def _stage_rows(self, image: BitmapImage, whole_buffer: bool) -> tuple[int, int] | None:
        """Stages an uncached bitmap's rows as the guest gave them, where its pixels are
        32-bit and can be used as they are (no decoding); returns (first pixel, pixels per
        row) in the staging buffer, or None where the bitmap does not qualify. whole_buffer:
        the source of an unscaled, unmasked SRCCOPY, which stages nothing else: a top-down
        bitmap qualifies whatever its size, up to the whole buffer (one copy of the guest's
        rows, no texture made and freed per image); others up to STAGE_MAX_IMAGE."""
        w, h, stride, data = image.width, image.height, image.stride, image.data
        size = h * stride
        top_down = image.flags & _TOP_DOWN  # not the property: a call less per image
        if not (image.format in _FORMATS_32_BITMAP and image.descriptor.type == _TYPE_BITMAP
                and w > 0 and h > 0 and stride >= w * 4 and not stride & 3
                and len(data) >= size
                and (w <= px.MAX_DIM and h <= px.MAX_DIM and size <= MAX_STAGING_BYTES
                     if whole_buffer and top_down else
                     w <= STAGE_MAX_IMAGE and h <= STAGE_MAX_IMAGE
                     and size <= MAX_STAGING_BYTES // 2)):
            return None
        # _stage written out for guest bytes: this runs for most copies
        pos = self._staged  # 4-aligned: stride is
        if pos + size > MAX_STAGING_BYTES:
            raise StagingFull
        self._staging[pos : pos + size] = data if len(data) == size else \
            memoryview(data)[:size]
        self._staged = pos + size
        base = pos >> 2
        sp = stride >> 2
        return (base, sp) if top_down else (base + (h - 1) * sp, -sp)

    def _cache_put(self, key: Any, data: np.ndarray, has_alpha: bool) -> Source:
        """Keeps a decoded image: small ones in a slot of the shared texture (evicting the
        least recently used images while no slot is free), larger ones in a texture each."""
        h, w = data.shape[:2]
        # hashed once, when it is cached: what placements name it by
        content = content_key(data, w, h) if w * h >= MIN_PLACEMENT_PIXELS else None
        cls = SlotAtlas.size_class(w, h)
        at = None
        if cls is not None:
            at = self._slots.alloc(cls)
            while at is None and self.cache.evict_oldest():
                at = self._slots.alloc(cls)
        if at is None or cls is None:
            tex = self.ctx.texture((w, h), 4, data.tobytes())
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            source = Source(tex, w, h, has_alpha, content=content)
            self.cache.put(key, CachedImage(tex, 0, 0, w, h, has_alpha, source=source))
            return source
        if self._cache_tex is None:
            self._cache_tex = self.ctx.texture((SLOT_ATLAS_SIDE, SLOT_ATLAS_SIDE), 4)
            self._cache_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        tex = self._cache_tex
        if tex in (self._batch.src, self._batch.pat):
            self.flush()  # the slot may have held what a queued draw still samples
        tex.write(data, viewport=(at[0], at[1], w, h))
        source = Source(tex, w, h, has_alpha, x=at[0], y=at[1], content=content)
        self.cache.put(key, CachedImage(tex, at[0], at[1], w, h, has_alpha, slot=(cls, at),
                                        source=source))
        return source

    def _cache_release(self, entry: CachedImage) -> None:
        if entry.slot is not None:
            self._slots.free(*entry.slot)  # rewritten only after a flush (see _cache_put)
        else:
            self._op_textures.append(entry.texture)  # freed after the batch that samples it


    def _qmask(self, mask: QMask, bbox: Box, rects: list[Box]
               ) -> tuple[list[Box], np.ndarray | None]:
        """The rects limited to a QMask's extent, and the mask over their bounding box (None
        when there is no mask). The software canvas turns the mask into a region."""
        if mask.bitmap is None:
            return rects, None
        invert = bool(mask.flags & E.MASK_FLAGS_INVERS)
        if isinstance(mask.bitmap, SurfaceImage):
            ms = self._get_surface(mask.bitmap.surface_id)
            bits = self._read(ms, (0, 0, ms.width, ms.height))[..., 3] >= 128
            bits = ~bits if invert else bits
        elif isinstance(mask.bitmap, BitmapImage):
            bits = px.decode_mask(mask.bitmap, invert)
        else:
            raise RenderError("mask image type not supported")
        ox, oy = bbox[0] - mask.pos.x, bbox[1] - mask.pos.y
        ext = (ox, oy, ox + bits.shape[1], oy + bits.shape[0])
        clipped = [r for r in (intersect(r, ext) for r in rects) if r is not None]
        if not clipped:
            return [], None
        bx0, by0, bx1, by1 = bounds(clipped)
        return clipped, bits[by0 - oy : by1 - oy, bx0 - ox : bx1 - ox]

    def _brush(self, brush: Brush, target: Surface) -> tuple[int, Source | None]:
        """(packed colour in the target's channel form, pattern source or None)."""
        if brush is None:
            return 0, None
        if isinstance(brush, SolidBrush):
            return _pack(px.color_to_pixel(brush.color, target.fmt)), None
        if isinstance(brush, PatternBrush):
            # patterns tile by texel wrap-around, so they need a texture of their own size
            return 0, self._image(brush.pat, target, True)
        raise RenderError("unknown brush type")


    # --- operations -------------------------------------------------------------------------

    def _fill(self, surf: Surface, bbox: Box, rects: list[Box], op: Fill) -> list[Box]:
        brush = op.brush
        if (type(brush) is SolidBrush and op.rop_descriptor == _OP_PUT
                and op.mask.bitmap is None and surf.fmt in _FORMATS_32):
            # the common case, kept short: a 32-bit surface's pixel is the colour as it is
            # (_queue_fill and _begin's test for joining the batch written out, `Batch.blit_to`:
            # no call per fill)
            b = self._batch
            if b.blit_to is not surf or len(b.data) >= BLIT_LIMIT:
                b = self._begin("blit", surf)
            b.kinds |= _FILL_BIT
            color = brush.color & 0xFFFFFFFF
            for x0, y0, x1, y1 in rects:
                b.data += (x0, y0, x1, y1, 0, 0, color, BLIT_FILL)
            return rects
        code = rops.brush_dest_rop3(op.rop_descriptor)
        color, pat = self._brush(op.brush, surf)
        rects, mask = self._qmask(op.mask, bbox, rects)
        if code == rops.ROP3_NOOP or not rects:
            return []
        self._brush_rop(surf, rects, code, color, pat, mask, op.brush)
        return rects

    def _brush_rop(self, surf: Surface, rects: list[Box], code: int, color: int,
                   pat: Source | None, mask: np.ndarray | None, brush: Brush) -> None:
        """The brush (solid colour or pattern) combined with the destination by ROP3 `code`
        over `rects`, through an optional mask covering their bounding box."""
        if mask is None and pat is None and code in (rops.ROP3_PATCOPY, rops.ROP3_BLACKNESS,
                                                     rops.ROP3_WHITENESS):
            value = {rops.ROP3_PATCOPY: color, rops.ROP3_BLACKNESS: 0,
                     rops.ROP3_WHITENESS: 0xFFFFFFFF}[code]
            self._queue_fill(surf, rects, _pack(px.quantize_pixel(_unpack(value), surf.fmt)))
            return
        aux = (0, 0)
        mode = code | (KIND_ROP3 << 8)
        if mask is not None:
            aux = self._stage_mask(mask, bounds(rects))
            mode |= MODE_MASK
        pat_pos = (0, 0)
        if isinstance(brush, PatternBrush):
            pat_pos = (brush.pos.x, brush.pos.y)
        self._queue_draw(surf, rects, mode, pat=pat, color=color, aux=aux, pat_pos=pat_pos)

    def _const_fill(self, surf: Surface, bbox: Box, rects: list[Box],
                    op: Blackness | Whiteness | Invers) -> list[Box]:
        code = {Blackness: rops.ROP3_BLACKNESS, Whiteness: rops.ROP3_WHITENESS,
                Invers: rops.ROP3_DSTINVERT}[type(op)]
        rects, mask = self._qmask(op.mask, bbox, rects)
        if not rects:
            return []
        self._brush_rop(surf, rects, code, 0, None, mask, None)
        return rects

    def _src_map(self, bbox: Box, area: Box, scale_mode: int, *, rop3: bool = False
                 ) -> tuple[SourceMap, bool]:
        """Where destination pixel (x, y) of an operation reads its source, as pixman does for
        the software canvas: position v = (fx * x + cx, fy * y + cy) in 16.16 fixed point, in
        image coordinates (see draw.glsl); and whether the operation scales. COPY, BLEND,
        OPAQUE, TRANSPARENT and ALPHA_BLEND scale with an integer ratio anchored at src_area
        (sw_canvas's __scale_image); ROP3 (`rop3`) through canvas_scale_surface, with a
        ratio in doubles and the source offset rounded in destination space."""
        bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
        aw, ah = area[2] - area[0], area[3] - area[1]
        if (aw, ah) == (bw, bh):
            return (1 << 16, 1 << 16, ((area[0] - bbox[0]) << 16) + 0x8000,
                    ((area[1] - bbox[1]) << 16) + 0x8000), False
        if scale_mode not in (E.SCALE_MODE_INTERPOLATE, E.SCALE_MODE_NEAREST):
            raise RenderError(f"unknown scale mode {scale_mode}")
        fx, cx = _scale_axis(area[0], aw, bbox[0], bw, rop3)
        fy, cy = _scale_axis(area[1], ah, bbox[1], bh, rop3)
        return (fx, fy, cx, cy), True

    def _scaled_source(self, src: Source, image: Image, target: Surface) -> Source:
        """A scaled read's source as a texture of exactly the image: scaling reads past the
        source area, up to the image's edges and beyond (as zero), so neither staged rows
        nor a slot of the shared cache texture will do."""
        if src.surface is None and (src.tex is None or src.tex is self._cache_tex):
            return self._image(image, target, True)
        return src

    def _check_area(self, width: int, height: int, area: QRect) -> Box:
        """The source area of an image of that size, or RenderError."""
        top, left, bottom, right = area
        if 0 <= left < right <= width and 0 <= top < bottom <= height:
            return left, top, right, bottom  # (a source is far smaller than COORD_LIMIT)
        check_rect(area, "src_area")  # says what is wrong with an empty or absurd one
        raise RenderError(f"src_area {tuple(area)} outside the {width}x{height} source")

    def _copy(self, surf: Surface, bbox: Box, rects: list[Box], op: Copy | Blend
              ) -> list[Box]:
        """COPY and BLEND: their rop descriptor's ROP3 over (source, destination). The usual
        copy (SRCCOPY, unscaled, unmasked) is queued here, everything else by `_image_op`."""
        desc = op.rop_descriptor
        if desc != _OP_PUT:
            return self._image_op(surf, bbox, rects, op, rops.src_dest_rop3(desc))
        image, area_q = op.src_bitmap, op.src_area
        top, left, bottom, right = area_q
        x0, y0, x1, y1 = bbox
        if op.mask.bitmap is not None or right - left != x1 - x0 or bottom - top != y1 - y0:
            return self._image_op(surf, bbox, rects, op, _SRCCOPY)
        # (the area's size is the bbox's: left < right and top < bottom hold already)
        if type(image) is BitmapImage and not image.descriptor.flags & _IMAGE_CACHE:
            # an uncached bitmap's rows, staged as they are, need no Source
            rows = self._stage_rows(image, True)
            if rows is not None:
                if not (left >= 0 and right <= image.width and top >= 0
                        and bottom <= image.height):
                    self._check_area(image.width, image.height, area_q)  # raises
                self._queue_staged(surf, rects, rows, x0 - left, y0 - top)
                return rects
        src = self._image(image, surf, False, True)
        if not (left >= 0 and right <= src.width and top >= 0 and bottom <= src.height):
            self._check_area(src.width, src.height, area_q)  # raises
        self._queue_copy(surf, rects, src, x0 - left, y0 - top)
        if (x1 - x0) * (y1 - y0) >= MIN_PLACEMENT_PIXELS and rects == [bbox]:
            self._placed = self._placements(src, surf, (left, top, right, bottom), x0, y0)
        return rects

    def _image_op(self, surf: Surface, bbox: Box, rects: list[Box],
                  op: Copy | Blend | Opaque | Rop3, code: int, brush: Brush = None, *,
                  rop3: bool = False) -> list[Box]:
        """COPY, BLEND (but for the usual copy, see `_copy`), OPAQUE, ROP3: ROP3 `code` over
        (brush, source, destination)."""
        image, area_q, scale_mode, mask_q = op.src_bitmap, op.src_area, op.scale_mode, op.mask
        top, left, bottom, right = area_q
        x0, y0, x1, y1 = bbox
        plain = (code == _SRCCOPY and mask_q.bitmap is None
                 and right - left == x1 - x0 and bottom - top == y1 - y0)
        src = self._image(image, surf, False, plain)
        if 0 <= left < right <= src.width and 0 <= top < bottom <= src.height:
            area = (left, top, right, bottom)  # _check_area's usual case, a call less
        else:
            area = self._check_area(src.width, src.height, area_q)
        src_map, scaled = self._src_map(bbox, area, scale_mode, rop3=rop3)
        color, pat = self._brush(brush, surf)
        rects, mask = self._qmask(mask_q, bbox, rects)
        if code == rops.ROP3_NOOP or not rects:
            return []
        if code == rops.ROP3_SRCCOPY and not scaled and mask is None:
            self._queue_copy(surf, rects, src, bbox[0] - area[0], bbox[1] - area[1])
            return rects
        if not rops.uses(code, rops.S):  # the source does not matter: a brush operation
            self._brush_rop(surf, rects, code, color, pat, mask, brush)
            return rects
        mode = code | (KIND_ROP3 << 8)
        if scaled:
            src = self._scaled_source(src, image, surf)
            if scale_mode == E.SCALE_MODE_INTERPOLATE:
                mode |= MODE_BILINEAR
            if code == rops.ROP3_SRCCOPY and not src.has_alpha:
                # the canvas composes it as an x8r8g8b8 image (__scale_image): alpha 255
                # inside it, whatever its 4th byte holds
                mode |= MODE_SRC_OPAQUE
        aux = (0, 0)
        if mask is not None:
            aux = self._stage_mask(mask, bounds(rects))
            mode |= MODE_MASK
        pat_pos = (brush.pos.x, brush.pos.y) if isinstance(brush, PatternBrush) else (0, 0)
        self._queue_draw(surf, rects, mode, src=src, src_map=src_map, pat=pat, color=color,
                         aux=aux, pat_pos=pat_pos, src_reads=_self_reads(src, surf, area))
        return rects

    def _placements(self, src: Source, target: Surface, area: Box, x0: int, y0: int
                    ) -> list[Placement]:
        """The images an unclipped plain copy of `area` of `src` to (x0, y0) shows whole: a
        cached image (or the part of it copied), or the placements on a source surface
        inside the area, moved with it."""
        if src.content is not None:
            whole = area == (0, 0, src.width, src.height)
            key = src.content if whole else part_key(src.content, area)
            return [Placement(key, (x0, y0, x0 + area[2] - area[0], y0 + area[3] - area[1]))]
        surface = src.surface
        if surface is None or surface is target or not surface.placements:
            return []
        dx, dy = x0 - area[0], y0 - area[1]
        return [Placement(p.key, (p.rect[0] + dx, p.rect[1] + dy, p.rect[2] + dx, p.rect[3] + dy))
                for p in surface.placements
                if area[0] <= p.rect[0] and area[1] <= p.rect[1]
                and p.rect[2] <= area[2] and p.rect[3] <= area[3]]

    def _opaque(self, surf: Surface, bbox: Box, rects: list[Box], op: Opaque) -> list[Box]:
        return self._image_op(surf, bbox, rects, op, rops.brush_src_rop3(op.rop_descriptor),
                              op.brush)

    def _rop3(self, surf: Surface, bbox: Box, rects: list[Box], op: Rop3) -> list[Box]:
        if not 0 <= op.rop3 <= 255:
            raise RenderError(f"rop3 code {op.rop3} out of range")
        brush = op.brush
        if brush is not None and not isinstance(brush, SolidBrush | PatternBrush):
            raise RenderError("unknown brush type")
        return self._image_op(surf, bbox, rects, op, op.rop3, brush, rop3=True)

    def _transparent(self, surf: Surface, bbox: Box, rects: list[Box],
                     op: Transparent) -> list[Box]:
        src = self._image(op.src_bitmap, surf)
        area = self._check_area(src.width, src.height, op.src_area)
        src_map, scaled = self._src_map(bbox, area, E.SCALE_MODE_NEAREST)
        if scaled:
            src = self._scaled_source(src, op.src_bitmap, surf)
        if surf.fmt in (E.SURFACE_FMT_16_555, E.SURFACE_FMT_16_565):
            key = _pack(px.quantize_pixel(_unpack(op.true_color), surf.fmt))
        elif surf.fmt in (E.SURFACE_FMT_32_xRGB, E.SURFACE_FMT_32_ARGB):
            key = op.true_color & 0xFFFFFF
        else:
            key = 0
        self._queue_draw(surf, rects, KIND_COLORKEY << 8, src=src, src_map=src_map, color=key,
                         src_reads=_self_reads(src, surf, area))
        return rects

    def _alpha_blend(self, surf: Surface, bbox: Box, rects: list[Box],
                     op: AlphaBlend) -> list[Box]:
        if not 0 <= op.alpha <= 255:
            raise RenderError(f"alpha {op.alpha} out of range")
        src = self._image(op.src_bitmap, surf)
        area = self._check_area(src.width, src.height, op.src_area)
        src_map, scaled = self._src_map(bbox, area, E.SCALE_MODE_NEAREST)
        if op.alpha == 0:
            return []
        if scaled:
            src = self._scaled_source(src, op.src_bitmap, surf)
        mode = (KIND_ALPHA << 8) | (op.alpha << 24)
        # the canvas reads an xRGB surface's fourth byte as alpha only when the flag says
        # so; an ARGB surface's alpha always counts (canvas_get_as_surface)
        has_alpha = src.has_alpha if src.surface is None else bool(
            op.alpha_flags & E.ALPHA_FLAGS_SRC_SURFACE_HAS_ALPHA
            or src.surface.fmt == E.SURFACE_FMT_32_ARGB)
        if has_alpha:
            mode |= MODE_SRC_ALPHA
        if op.alpha_flags & E.ALPHA_FLAGS_DEST_HAS_ALPHA or surf.fmt == E.SURFACE_FMT_32_ARGB:
            mode |= MODE_DST_ALPHA
        self._queue_draw(surf, rects, mode, src=src, src_map=src_map,
                         src_reads=_self_reads(src, surf, area))
        return rects

    def _text(self, surf: Surface, bbox: Box, rects: list[Box], op: Text) -> list[Box]:
        back_color, back_pat = self._brush(op.back_brush, surf)
        ba = op.back_area
        back: list[Box] = []
        if ba.right > ba.left and ba.bottom > ba.top:
            if op.fore_mode != E.ROPD_OP_PUT:
                return []  # the software canvas refuses this combination and draws nothing
            bbox_back = check_rect(ba, "back_area")
            back = [c for c in (intersect(r, bbox_back) for r in rects) if c is not None]
        if op.str.flags & E.STRING_FLAGS_RASTER_A1 and type(op.fore_brush) is SolidBrush:
            return self._text_a1(surf, rects, op, back, back_color, back_pat)
        left, top, cov = px.glyph_mask(op.str)
        fore_color, fore_pat = self._brush(op.fore_brush, surf)
        gbox = (left, top, left + cov.shape[1], top + cov.shape[0])
        fore = ([c for c in (intersect(r, gbox) for r in rects) if c is not None]
                if op.fore_brush is not None else [])
        if fore:
            fx0, fy0, fx1, fy1 = bounds(fore)
            aux = self._stage_mask(cov[fy0 - top : fy1 - top, fx0 - left : fx1 - left],
                                   (fx0, fy0, fx1, fy1))
        if back:
            self._brush_rop(surf, back, rops.ROP3_PATCOPY, back_color, back_pat, None,
                            op.back_brush)
        if fore:
            # the canvas composites the pattern from the string mask's corner, so the
            # pattern's origin is that corner moved by the brush's position
            pat_pos = ((left + op.fore_brush.pos.x, top + op.fore_brush.pos.y)
                       if isinstance(op.fore_brush, PatternBrush) else (0, 0))
            # an RGBA pattern goes OVER with its own alpha, as pixman composites it
            mode = KIND_COVERAGE << 8
            if fore_pat is not None and fore_pat.has_alpha:
                mode |= MODE_SRC_ALPHA
            self._queue_draw(surf, fore, mode, pat=fore_pat, color=fore_color,
                             aux=aux, pat_pos=pat_pos)
        return back + fore

    def _text_a1(self, surf: Surface, rects: list[Box], op: Text, back: list[Box],
                 back_color: int, back_pat: Source | None) -> list[Box]:
        """1-bit glyphs in a solid colour: coverage is all or nothing, so OVER is a copy of
        the colour where a bit is set; the glyphs' own bytes are staged and each glyph is one
        instance of the blit program, no destination read."""
        _, boxes, gbox = px.glyph_boxes(op.str)
        glyphs = op.str.glyphs
        fore = [c for c in (intersect(r, gbox) for r in rects) if c is not None]
        assert isinstance(op.fore_brush, SolidBrush)
        b, g, r, _ = px.color_to_pixel(op.fore_brush.color, surf.fmt)
        color = _pack(px.quantize_pixel((b, g, r, 255), surf.fmt))
        # all glyphs' rows staged in one piece (the shader reads them bytewise, unaligned)
        sizes = [((g.width + 7) >> 3) * g.height for g in glyphs]
        at = self._stage(b"".join([g.data[:n] for g, n in zip(glyphs, sizes, strict=True)]))
        # the usual case, one unclipped rect holding the whole string, needs no intersecting
        whole = len(fore) == 1 and fore[0] == gbox
        queued: list[int] = []
        for glyph, box, size in zip(glyphs, boxes, sizes, strict=True):
            base, at = at, at + size
            x0, y0, x1, y1 = box
            if whole:
                parts = [box] if x0 < x1 and y0 < y1 else []
            else:
                parts = [c for c in (intersect(f, box) for f in fore) if c is not None]
            if not parts:
                continue
            stride = (glyph.width + 7) >> 3
            # rows bottom-up whatever the TOP_DOWN flag says, as the real canvas reads them
            ox, oy = base + (glyph.height - 1 + y0) * stride, -stride
            kind = (BLIT_GLYPH | (x0 & 0xFFFFFF) << 8) & 0xFFFFFFFF
            for part in parts:
                queued += (*part, ox, oy, color, kind)
        if back:
            self._brush_rop(surf, back, rops.ROP3_PATCOPY, back_color, back_pat, None,
                            op.back_brush)
        if not queued:
            return back
        batch = self._begin("blit", surf)
        batch.kinds |= 1 << BLIT_GLYPH
        batch.data += queued
        return back + fore

    def _stroke(self, surf: Surface, bbox: Box, rects: list[Box], op: Stroke) -> list[Box]:
        code = rops.brush_dest_rop3(op.fore_mode)
        rops.brush_dest_rop3(op.back_mode)  # checked, though only dashes are drawn
        color, pat = self._brush(op.brush, surf)
        area = bounds(rects)
        counts = stroke_mask(op.path, op.attr, area, careful=rops.twice(code) != code)
        if counts is None or code == rops.ROP3_NOOP:
            return []
        region = np.zeros(counts.shape, bool)
        for x0, y0, x1, y1 in rects:
            region[y0 - area[1] : y1 - area[1], x0 - area[0] : x1 - area[0]] = True
        mask = (counts > 0) & region
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return []
        tight = (area[0] + int(xs.min()), area[1] + int(ys.min()),
                 area[0] + int(xs.max()) + 1, area[1] + int(ys.max()) + 1)
        window = (slice(tight[1] - area[1], tight[3] - area[1]),
                  slice(tight[0] - area[0], tight[2] - area[0]))
        sub, odd = mask[window], (counts[window] & 1).astype(bool)
        # pixels covered an even number of times got the operation twice
        twice = rops.twice(code)
        if twice == code or not (sub & ~odd).any():
            self._brush_rop(surf, [tight], code, color, pat, sub, op.brush)
        else:
            self._brush_rop(surf, [tight], code, color, pat, sub & odd, op.brush)
            self._brush_rop(surf, [tight], twice, color, pat, sub & ~odd, op.brush)
        return [tight]

    def _copy_bits(self, surf: Surface, bbox: Box, rects: list[Box], op: CopyBits) -> list[Box]:
        dx, dy = bbox[0] - op.src_pos.x, bbox[1] - op.src_pos.y
        if dx == 0 and dy == 0:
            return []
        # only what lies inside the surface at the source position can be copied
        src_box = (dx, dy, dx + surf.width, dy + surf.height)
        rects = [c for c in (intersect(r, src_box) for r in rects) if c is not None]
        if not rects:
            return []
        src = Source(None, surf.width, surf.height, False, surf)
        self._queue_copy(surf, rects, src, dx, dy)
        self._note_move(surf, rects, -dx, -dy)
        return rects

    def _composite(self, surf: Surface, bbox: Box, rects: list[Box],
                   op: Composite) -> list[Box]:
        src = self._image(op.src, surf, True)
        mask = self._image(op.mask, surf, True) if op.mask is not None else None
        setup = composite_setup(op, surf.fmt, bbox,
                                ImageShape(src.width, src.height, src.has_alpha,
                                           isinstance(op.src, SurfaceImage)),
                                ImageShape(mask.width, mask.height, mask.has_alpha)
                                if mask is not None else None)
        if setup is None:  # pixman composites nothing: its positions would overflow
            return []
        self.flush()
        # a composite reading its own target copies all of it (the transform reaches anywhere)
        whole = [(0, 0, surf.width, surf.height)]
        src_tex = self._sample_tex(resolve(src, surf), surf, whole)
        mask_tex = (self._sample_tex(resolve(mask, surf), surf, whole)
                    if mask is not None else self._dummy)
        if not self.fetch:
            self._copy_rects(surf, "scratch", rects).use(0)
        key = tuple(setup.defines.values())
        variant = self._comp_variants.get(key)
        if variant is None:
            prog = load_program(self.ctx, "composite", **setup.defines, FETCH=int(self.fetch))
            variant = (prog, self.ctx.vertex_array(prog, [(self._corners, "2f", "corner")],
                                                   mode=moderngl.TRIANGLE_STRIP))
            self._comp_variants[key] = variant
        prog, vao = variant
        for name, value in (("u_dst", 0), ("u_src", 1), ("u_mask", 2)):
            if name in prog:
                prog[name] = value
        for name, value in setup.uniforms.items():
            if name in prog:
                prog[name] = value
        prog["u_size"] = (surf.width, surf.height)
        prog["u_fmt"] = surf.fmt
        src_tex.use(1)
        mask_tex.use(2)
        surf.fbo.use()
        for x0, y0, x1, y1 in rects:
            prog["u_rect"] = (x0, y0, x1, y1)
            vao.render()
            self.draw_calls += 1
        self._gl_flush()
        self._drop_batch()
        return rects


def _scale_axis(src0: int, src_len: int, dst0: int, dst_len: int, rop3: bool
                ) -> tuple[int, int]:
    """(f, c) such that source position (16.16) = f * x + c for destination pixel x: the
    scale transform pixman evaluates at pixel centres, rounding f * 0.5 as
    pixman_transform_point_3d does."""
    if rop3:  # canvas_scale_surface: ratio as a double, offset ROUND(src0 / ratio)
        ratio = src_len / dst_len
        f = int(ratio * 65536.0)
        offset = math.floor(src0 / ratio + 0.5)
        return f, f * (offset - dst0) + ((f * 0x8000 + 0x8000) >> 16)
    f = (src_len << 16) // dst_len
    return f, (src0 << 16) - f * dst0 + ((f * 0x8000 + 0x8000) >> 16)


def _self_reads(src: Source, target: Surface, area: Box) -> list[Box] | None:
    """What an operation reading its own target reads of it: the source area and the pixel
    around it that scaling may reach."""
    if src.surface is not target:
        return None
    return [(max(area[0] - 1, 0), max(area[1] - 1, 0), min(area[2] + 1, target.width),
             min(area[3] + 1, target.height))]



def _cache_key(image_id: int, palette: Palette | None, fmt: int) -> tuple[Any, ...]:
    """What a cached image is kept under: the guest's id, and the palette and bitmap format
    it was decoded with (one id has been sent with two palettes, a blinking cursor)."""
    return image_id, None if palette is None else px.palette_key(palette), fmt


def _pack(c: Any) -> int:
    b, g, r, a = c  # (no generator: this runs for every brush)
    return int(b) | int(g) << 8 | int(r) << 16 | int(a) << 24


def _unpack(v: int) -> tuple[int, int, int, int]:
    v &= 0xFFFFFFFF
    return v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24

