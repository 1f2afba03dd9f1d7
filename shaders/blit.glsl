#version 430 core
// Solid fills and plain copies, many rects per draw (one instance each).
// i_rect: destination x0, y0, x1, y1; i_color: packed pixel for fills; i_kind: 0 fill,
// 1 copy from u_src (texel = destination pixel + i_off), 2 copy from the staging buffer
// (pixel index = i_off.x + y * i_off.y + x: guest bitmap rows appended as they came),
// 3 the colour where a bit of a staged 1-bit glyph is set (byte index i_off.x + y * i_off.y
// + (x - g) / 8, bit 7 - (x - g) % 8, with g = i_kind >> 8 as a signed number).
#include "lib.glsl"
#ifdef VERTEX
in vec2 corner;
in ivec4 i_rect;
in ivec2 i_off;
in uint i_color;
in uint i_kind;
uniform vec2 u_size;
flat out ivec2 v_off;
flat out uint v_color;
flat out uint v_kind;
void main() {
    gl_Position = rect_corner(i_rect, corner, u_size);
    v_off = i_off;
    v_color = i_color;
    v_kind = i_kind;
}
#endif
#ifdef FRAGMENT
#include "staging.glsl"
uniform sampler2D u_src;
flat in ivec2 v_off;
flat in uint v_color;
flat in uint v_kind;
out vec4 frag;
// KINDS (defined by the loader) says which kinds the batch holds, so that a batch of fills
// runs none of the copy code: llvmpipe executes both sides of a branch under a lane mask.
// FMT is the target's SPICE_SURFACE_FMT_* (quantize folds to nothing for 32-bit targets).
void main() {
#if KINDS == 1
    frag = from_u8(unpack_px(v_color));
#else
    uvec4 c = uvec4(0u);
#if (KINDS & 1) != 0
    if (v_kind == 0u) c = unpack_px(v_color);
#endif
#if (KINDS & 2) != 0
    if (v_kind == 1u) c = quantize(to_u8(texelFetch(u_src, ivec2(gl_FragCoord.xy) + v_off, 0)),
                                   FMT);
#endif
#if (KINDS & 12) != 0
    ivec2 p = ivec2(gl_FragCoord.xy);
#endif
#if (KINDS & 4) != 0
    if (v_kind == 2u) c = quantize(unpack_px(staged_pixel(v_off.x + p.y * v_off.y + p.x)), FMT);
#endif
#if (KINDS & 8) != 0
    if ((v_kind & 0xFFu) == 3u) {
        int col = p.x - (int(v_kind) >> 8);
        uint byte_ = staged_byte(v_off.x + p.y * v_off.y + (col >> 3));
        if ((byte_ & (0x80u >> uint(col & 7))) == 0u) discard;
        c = unpack_px(v_color);
    }
#endif
    frag = from_u8(c);
#endif
}
#endif
