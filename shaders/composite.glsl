// COMPOSITE: a Render operator of a transformed, filtered, repeated source (and optional
// mask) onto the destination, pixman's integer equations. One rect per draw (u_rect);
// the destination is read from u_dst, a copy taken before the draw.
#include "lib.glsl"
#ifdef VERTEX
in vec2 corner;
uniform vec2 u_size;
uniform ivec4 u_rect;
void main() {
    gl_Position = rect_corner(u_rect, corner, u_size);
}
#endif
#ifdef FRAGMENT
uniform sampler2D u_dst;
uniform sampler2D u_src;
uniform sampler2D u_mask;
uniform int u_fmt;
uniform int u_op;
uniform ivec2 u_origin;           // the bbox's top-left: pixman's (0, 0) of the destination
uniform vec3 u_src_m0;            // source transform rows (dest -> source), pixels
uniform vec3 u_src_m1;
uniform vec2 u_src_at;            // src_origin
uniform ivec4 u_src_box;          // x, y, w, h of the image inside u_src
uniform int u_src_filter;         // 0 nearest, 1 bilinear
uniform int u_src_repeat;         // pixman_repeat_t
uniform bool u_src_opaque;
uniform bool u_has_mask;
uniform vec3 u_mask_m0;
uniform vec3 u_mask_m1;
uniform vec2 u_mask_at;
uniform ivec4 u_mask_box;
uniform int u_mask_filter;
uniform int u_mask_repeat;
uniform bool u_mask_opaque;
uniform bool u_component_alpha;
uniform bool u_dst_opaque;
out vec4 frag;

// Texel (x, y) of an image after its repeat mode; transparent outside for REPEAT_NONE.
vec4 texel(sampler2D t, ivec4 box, int repeat_mode, ivec2 q) {
    ivec2 size = box.zw;
    if (repeat_mode == 1) {
        q = wrap(q, size);
    } else if (repeat_mode == 2) {
        q = clamp(q, ivec2(0), size - 1);
    } else if (repeat_mode == 3) {
        ivec2 period = size * 2;
        q = wrap(q, period);
        q.x = q.x >= size.x ? period.x - 1 - q.x : q.x;
        q.y = q.y >= size.y ? period.y - 1 - q.y : q.y;
    } else if (any(lessThan(q, ivec2(0))) || any(greaterThanEqual(q, size))) {
        return vec4(0.0);
    }
    return texelFetch(t, box.xy + q, 0);
}

uvec4 sample_image(sampler2D t, vec3 m0, vec3 m1, vec2 at, ivec4 box, int filter_mode,
                   int repeat_mode, bool opaque) {
    vec3 d = vec3(vec2(ivec2(gl_FragCoord.xy) - u_origin) + at + 0.5, 1.0);
    vec2 sp = vec2(dot(m0, d), dot(m1, d));
    vec4 c;
    if (filter_mode == 1) {
        vec2 f0 = sp - 0.5;
        ivec2 i0 = ivec2(floor(f0));
        vec2 f = f0 - vec2(i0);
        vec4 a = texel(t, box, repeat_mode, i0);
        vec4 b = texel(t, box, repeat_mode, i0 + ivec2(1, 0));
        vec4 e = texel(t, box, repeat_mode, i0 + ivec2(0, 1));
        vec4 g = texel(t, box, repeat_mode, i0 + ivec2(1, 1));
        if (opaque) { a.a = 1.0; b.a = 1.0; e.a = 1.0; g.a = 1.0; }
        c = mix(mix(a, b, f.x), mix(e, g, f.x), f.y);
    } else {
        ivec2 q = ivec2(floor(sp - 1.0 / 65536.0));
        bool outside = repeat_mode == 0 && (any(lessThan(q, ivec2(0)))
                                            || any(greaterThanEqual(q, box.zw)));
        c = texel(t, box, repeat_mode, q);
        if (opaque && !outside) c.a = 1.0;
    }
    return to_u8(c);
}

// Per-channel x * a / 255 (component alpha gives each channel its own factor).
uvec4 mulv(uvec4 x, uvec4 a) {
    uvec4 t = x * a + 0x80u;
    return ((t >> 8) + t) >> 8;
}

void main() {
    uvec4 s = sample_image(u_src, u_src_m0, u_src_m1, u_src_at, u_src_box, u_src_filter,
                           u_src_repeat, u_src_opaque);
    uvec4 d = to_u8(texelFetch(u_dst, ivec2(gl_FragCoord.xy), 0));
    if (u_dst_opaque) d.w = 255u;
    uvec4 sa = uvec4(s.w);   // source alpha per channel (component alpha makes it differ)
    if (u_has_mask) {
        uvec4 m = sample_image(u_mask, u_mask_m0, u_mask_m1, u_mask_at, u_mask_box,
                               u_mask_filter, u_mask_repeat, u_mask_opaque);
        if (u_component_alpha) {
            s = mulv(s, m);
            sa = mulv(sa, m);
        } else {
            s = mul_un8(s, m.w);
            sa = uvec4(s.w);
        }
    }
    uint da = d.w;
    uvec4 isa = uvec4(255u) - sa;
    uint ida = 255u - da;
    uvec4 r;
    if (u_op == 0) r = uvec4(0u);                                    // CLEAR
    else if (u_op == 1) r = s;                                       // SRC
    else if (u_op == 2) r = d;                                       // DST
    else if (u_op == 3) r = add_sat(s, mulv(d, isa));                // OVER
    else if (u_op == 4) r = add_sat(d, mul_un8(s, ida));             // OVER_REVERSE
    else if (u_op == 5) r = mul_un8(s, da);                          // IN
    else if (u_op == 6) r = mulv(d, sa);                             // IN_REVERSE
    else if (u_op == 7) r = mul_un8(s, ida);                         // OUT
    else if (u_op == 8) r = mulv(d, isa);                            // OUT_REVERSE
    else if (u_op == 9) r = add_sat(mul_un8(s, da), mulv(d, isa));   // ATOP
    else if (u_op == 10) r = add_sat(mul_un8(s, ida), mulv(d, sa));  // ATOP_REVERSE
    else if (u_op == 11) r = add_sat(mul_un8(s, ida), mulv(d, isa)); // XOR
    else if (u_op == 12) r = add_sat(s, d);                          // ADD
    else {                                                           // SATURATE
        uvec4 ss = s;
        if (s.w > ida) ss = mul_un8(s, (ida * 255u + s.w / 2u) / s.w);
        r = add_sat(d, ss);
    }
    frag = from_u8(quantize(r, u_fmt));
}
#endif
