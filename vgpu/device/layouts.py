"""The struct layouts the device parser reads and the guest builders write.

One list per struct, so that reading and writing can never disagree: a
`Layout` unpacks to a record of the named fields and packs from the flat tuple
of their leaves in offset order (see `vgpu.device.abi`). Offsets of inline
parts come from cffi too.
"""

from __future__ import annotations

from vgpu.device.abi import Layout, offsetof, sizeof

BRUSH = ["type", "u.pattern"]  # u.color is the low half of u.pattern.pat
assert offsetof("QXLBrush", "u.color") == offsetof("QXLBrush", "u.pattern.pat")

DRAW_HEAD = Layout("QXLDrawable", [
    "release_info.id", "surface_id", "effect", "type", "self_bitmap", "self_bitmap_area",
    "bbox", "clip", "mm_time", "surfaces_dest", "surfaces_rects"])
DRAW_SIZE = sizeof("QXLDrawable")
DRAW_U = offsetof("QXLDrawable", "u")
COMPAT_HEAD = Layout("QXLCompatDrawable", [
    "release_info.id", "effect", "type", "bitmap_offset", "bitmap_area", "bbox",
    "clip", "mm_time"])
COMPAT_SIZE = sizeof("QXLCompatDrawable")
COMPAT_U = offsetof("QXLCompatDrawable", "u")

FILL = Layout("QXLFill", [*("brush." + f for f in BRUSH), "rop_descriptor", "mask"])
OPAQUE = Layout("QXLOpaque", ["src_bitmap", "src_area", *("brush." + f for f in BRUSH),
                               "rop_descriptor", "scale_mode", "mask"])
COPY = Layout("QXLCopy", ["src_bitmap", "src_area", "rop_descriptor", "scale_mode", "mask"])
BLACKNESS = Layout("QXLBlackness", ["mask"])
ROP3 = Layout("QXLRop3", ["src_bitmap", "src_area", *("brush." + f for f in BRUSH),
                           "rop3", "scale_mode", "mask"])
STROKE = Layout("QXLStroke", ["path", "attr.flags", "attr.style_nseg", "attr.style",
                               *("brush." + f for f in BRUSH), "fore_mode", "back_mode"])
TEXT = Layout("QXLText", ["str", "back_area", *("fore_brush." + f for f in BRUSH),
                           *("back_brush." + f for f in BRUSH), "fore_mode", "back_mode"])
TRANSPARENT = Layout("QXLTransparent", ["src_bitmap", "src_area", "src_color", "true_color"])
ALPHA = Layout("QXLAlphaBlend", ["alpha_flags", "alpha", "src_bitmap", "src_area"])
COMPAT_ALPHA = Layout("QXLCompatAlphaBlend", ["alpha", "src_bitmap", "src_area"])
COMPOSITE = Layout("QXLComposite", ["flags", "src", "src_transform", "mask", "mask_transform",
                                     "src_origin", "mask_origin"])
COPY_BITS = Layout("QXLCopyBits", ["src_pos"])
TRANSFORM = Layout("QXLTransform", ["t00", "t01", "t02", "t10", "t11", "t12"])

CHUNK = Layout("QXLDataChunk", ["data_size", "next_chunk"])
CHUNK_HEAD = sizeof("QXLDataChunk")
DESC = Layout("QXLImageDescriptor", ["id", "type", "flags", "width", "height"])
DESC_SIZE = DESC.size
BITMAP = Layout("QXLImage", ["bitmap.format", "bitmap.flags", "bitmap.x", "bitmap.y",
                              "bitmap.stride", "bitmap.palette", "bitmap.data"])
QUIC_SIZE = Layout("QXLImage", ["quic.data_size"])
QUIC_CHUNK = offsetof("QXLImage", "quic.data")
SURFACE_ID = Layout("QXLImage", ["surface_image.surface_id"])
PALETTE = Layout("QXLPalette", ["unique", "num_ents"])
PALETTE_ENTS = offsetof("QXLPalette", "ents")
CLIP = Layout("QXLClipRects", ["num_rects"])
CLIP_CHUNK = offsetof("QXLClipRects", "chunk")
RECT_SIZE = sizeof("QXLRect")
STRING = Layout("QXLString", ["data_size", "length", "flags"])
STRING_CHUNK = offsetof("QXLString", "chunk")
GLYPH = Layout("QXLRasterGlyph", ["render_pos", "glyph_origin", "width", "height"])
PATH = Layout("QXLPath", ["data_size"])
PATH_CHUNK = offsetof("QXLPath", "chunk")
SEG = Layout("QXLPathSeg", ["flags", "count"])
POINT_SIZE = sizeof("QXLPointFix")
FIXED_SIZE = sizeof("QXLFIXED")

UPDATE = Layout("QXLUpdateCmd", ["release_info.id", "area", "update_id", "surface_id"])
COMPAT_UPDATE = Layout("QXLCompatUpdateCmd", ["release_info.id", "area", "update_id"])
MESSAGE_DATA = offsetof("QXLMessage", "data")
SURFACE_CMD = Layout("QXLSurfaceCmd", [
    "release_info.id", "surface_id", "type", "flags", "u.surface_create.format",
    "u.surface_create.width", "u.surface_create.height", "u.surface_create.stride",
    "u.surface_create.data"])
CURSOR_SIZE = sizeof("QXLCursorCmd")
CURSOR_HEAD = Layout("QXLCursorCmd", ["release_info.id", "type"])
CURSOR_SET = Layout("QXLCursorCmd", ["u.set.position", "u.set.visible", "u.set.shape"])
CURSOR_POS = Layout("QXLCursorCmd", ["u.position"])
CURSOR_TRAIL = Layout("QXLCursorCmd", ["u.trail.length", "u.trail.frequency"])
CURSOR_SHAPE = Layout("QXLCursor", ["header", "data_size"])
CURSOR_CHUNK = offsetof("QXLCursor", "chunk")
