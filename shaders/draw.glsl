#version 430 core
// Every operation that reads the destination (ROP3 and rop descriptors, colour keying, text
// coverage, alpha blending), many rects per draw. With FETCH the destination is the
// framebuffer's own value (EXT_shader_framebuffer_fetch: coherent, so overlapping rects of one
// draw see each other in order); otherwise it is read from u_dst, a copy of the affected rects
// taken before the draw, never from the texture being drawn.
//
// Per instance: i_rect destination x0, y0, x1, y1; i_src: the source position of destination
// pixel p in pixman's 16.16 fixed point, v = i_src.xy * p + i_src.zw (unsigned arithmetic:
// the sum fits, a term may wrap), sampled as pixman does for the software canvas (nearest:
// pixel (v - 1) >> 16; bilinear: 7-bit weights, truncated; outside the image: zero), from
// u_src or, for staged images (unscaled), the staging buffer at pixel index
// i_stage.x + sy * i_stage.y + sx; i_aux.xy: the mask/coverage
// byte of destination pixel (x, y) is staging byte i_aux.x + y * i_aux.y + x; i_aux.zw: the
// pattern origin; i_color: brush colour or colour key (packed); i_mode: bits 0-7 ROP3 code,
// 8-11 kind, flags above (see MODE_* in vgpu/render/batch.py), 24-31 constant alpha.
#if defined(FRAGMENT) && FETCH
#extension GL_EXT_shader_framebuffer_fetch : require
#endif
#include "lib.glsl"
#ifdef VERTEX
in vec2 corner;
in ivec4 i_rect;
in ivec4 i_src;
in ivec2 i_stage;
in ivec4 i_aux;
in uint i_color;
in uint i_mode;
uniform vec2 u_size;
flat out ivec4 v_src;
flat out ivec2 v_stage;
flat out ivec4 v_aux;
flat out uint v_color;
flat out uint v_mode;
void main() {
    gl_Position = rect_corner(i_rect, corner, u_size);
    v_src = i_src;
    v_stage = i_stage;
    v_aux = i_aux;
    v_color = i_color;
    v_mode = i_mode;
}
#endif
#ifdef FRAGMENT
// Variants (defined by the loader from what the batch holds; llvmpipe runs both sides of
// every branch under a lane mask, so code a batch does not need must not be there at all):
// KINDS: bit 1 << kind for each kind present; SOURCE: 0 none, 1 texture, 2 staged;
// PATTERN, BILINEAR, MASKS, FETCH: 0 or 1; FMT: the target's SPICE_SURFACE_FMT_*.
#include "staging.glsl"
uniform sampler2D u_dst;
uniform sampler2D u_src;
uniform sampler2D u_pat;
flat in ivec4 v_src;
flat in ivec2 v_stage;
flat in ivec4 v_aux;
flat in uint v_color;
flat in uint v_mode;
#if FETCH
inout vec4 frag;
#else
out vec4 frag;
#endif

const uint KIND_ROP3 = 0u;
const uint KIND_COLORKEY = 1u;
const uint KIND_COVERAGE = 2u;
const uint KIND_ALPHA = 3u;
const uint HAS_MASK = 1u << 12;
const uint HAS_PATTERN = 1u << 13;  // per instance: a batch may mix brushes and sources
const uint SRC_ALPHA = 1u << 14;
const uint DST_ALPHA = 1u << 15;
const uint HAS_SRC = 1u << 17;
const uint SRC_OPAQUE = 1u << 18;  // scaled sources read as x8r8g8b8: alpha 255 inside

// ROP3 without branches, bitwise on packed pixels: the code is the truth table indexed by
// (p << 2 | s << 1 | d), so select between its bits on d, then s, then p (mux: a where the
// selector bit is 0, b where it is 1).
uint mux(uint a, uint b, uint sel) { return a ^ ((a ^ b) & sel); }
uint rop3(uint code, uint p, uint s, uint d) {
    uint c[8];
    for (uint i = 0u; i < 8u; i++) c[i] = 0u - ((code >> i) & 1u);
    uint p0 = mux(mux(c[0], c[1], d), mux(c[2], c[3], d), s);
    uint p1 = mux(mux(c[4], c[5], d), mux(c[6], c[7], d), s);
    return mux(p0, p1, p);
}

#if SOURCE != 0
#if SOURCE == 1
// REPEAT_NONE: texels outside the image read as zero
uvec4 texel(ivec2 q) {
    if (any(lessThan(q, ivec2(0))) || any(greaterThanEqual(q, textureSize(u_src, 0))))
        return uvec4(0u);
    uvec4 t = to_u8(texelFetch(u_src, q, 0));
    if ((v_mode & SRC_OPAQUE) != 0u) t.w = 255u;
    return t;
}
#endif

uvec4 source(ivec2 p) {
    ivec2 v = ivec2(uvec2(v_src.xy) * uvec2(p) + uvec2(v_src.zw));
#if BILINEAR
    ivec2 c = v - 0x8000;
    ivec2 q = c >> 16;
    uvec2 w = uvec2((c >> 9) & 0x7F);
    uvec4 top = texel(q) * (128u - w.x) + texel(q + ivec2(1, 0)) * w.x;
    uvec4 bottom = texel(q + ivec2(0, 1)) * (128u - w.x) + texel(q + ivec2(1, 1)) * w.x;
    return (top * (128u - w.y) + bottom * w.y) >> 14;
#else
    ivec2 q = (v - 1) >> 16;
#if SOURCE == 2
    return unpack_px(staged_pixel(v_stage.x + q.y * v_stage.y + q.x));
#else
    return texel(q);
#endif
#endif
}
#endif

void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    uint mode = v_mode;
    uint kind = (mode >> 8) & 0xFu;
    int mask_at = v_aux.x + p.y * v_aux.y + p.x;
#if MASKS
    if ((mode & HAS_MASK) != 0u && staged_byte(mask_at) < 128u) discard;
#endif
#if FETCH
    uvec4 d = to_u8(frag);
#else
    uvec4 d = to_u8(texelFetch(u_dst, p, 0));
#endif
#if SOURCE != 0
    uvec4 raw = (mode & HAS_SRC) != 0u ? source(p) : uvec4(0u);
#else
    uvec4 raw = uvec4(0u);
#endif
    // Raster operations see the source converted to the target's format; alpha blending
    // reads it as it is (the software canvas composites from the original image).
    uvec4 s = quantize(raw, FMT);
    uvec4 b = unpack_px(v_color);
#if PATTERN
    if ((mode & HAS_PATTERN) != 0u) {
        ivec2 size = textureSize(u_pat, 0);
        b = quantize(to_u8(texelFetch(u_pat, wrap(p - v_aux.zw, size), 0)), FMT);
    }
#endif
    uvec4 r = d;
#if (KINDS & 1) != 0
    if (kind == KIND_ROP3) r = unpack_px(rop3(mode & 0xFFu, pack_px(b), pack_px(s), pack_px(d)));
#endif
#if (KINDS & 2) != 0
    if (kind == KIND_COLORKEY) {
        if ((pack_px(s) & 0xFFFFFFu) == (v_color & 0xFFFFFFu)) discard;
        r = s;
    }
#endif
#if (KINDS & 4) != 0
    if (kind == KIND_COVERAGE) {
        // The brush OVER the destination through coverage m (text), as pixman: the brush
        // IN m, then OVER. The brush is opaque but for a pattern with alpha (SRC_ALPHA),
        // whose texels count as premultiplied.
        uint m = staged_byte(mask_at);
        uvec4 ob = uvec4(b.xyz, 255u);
#if PATTERN
        if ((mode & (HAS_PATTERN | SRC_ALPHA)) == (HAS_PATTERN | SRC_ALPHA)) {
            ivec2 size = textureSize(u_pat, 0);
            ob = to_u8(texelFetch(u_pat, wrap(p - v_aux.zw, size), 0));
        }
#endif
        uvec4 sm = mul_un8(ob, m);
        r = add_sat(sm, mul_un8(d, 255u - sm.w));
    }
#endif
#if (KINDS & 8) != 0
    if (kind == KIND_ALPHA) {
        // Source OVER destination with a constant alpha (pixman OVER, solid mask).
        uvec4 sa = raw;
        uvec4 da = d;
        if ((mode & SRC_ALPHA) == 0u) sa.w = 255u;
        if ((mode & DST_ALPHA) == 0u) da.w = 255u;
        uint ga = mode >> 24;
        if (ga != 255u) sa = mul_un8(sa, ga);
        r = add_sat(sa, mul_un8(da, 255u - sa.w));
    }
#endif
    frag = from_u8(quantize(r, FMT));
}
#endif
