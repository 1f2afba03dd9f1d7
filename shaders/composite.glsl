#version 430 core
// COMPOSITE: a Render operator of a transformed, filtered, repeated source (and optional
// mask) onto the destination. One rect per draw (u_rect); the destination is the
// framebuffer's own value with FETCH (see draw.glsl), otherwise read from u_dst, a copy taken
// before the draw.
// Variants (llvmpipe runs every branch under a lane mask, so what a composite does not need
// is compiled out): FLOAT, the combiner kind below; SRC_BILINEAR 0 or 1; SRC_REPEAT, a
// pixman_repeat_t; MASK 0 (none), 1 (nearest), 2 (bilinear); MASK_REPEAT.
// pixman (0.42) runs an operator in one of two ways, and so does this shader (FLOAT 0 or 1):
// - 8-bit integer combiners (pixman-combine32.c): CLEAR..ADD and the separable blend modes
//   without a division (MULTIPLY, SCREEN, OVERLAY, DARKEN, LIGHTEN, HARD_LIGHT, DIFFERENCE,
//   EXCLUSION);
// - single-precision float combiners (pixman-combine-float.c) for the operators that
//   divide: SATURATE (but where pixman makes it OVER_REVERSE, see composite.py),
//   DISJOINT_*, CONJOINT_*, COLOR_DODGE, COLOR_BURN, SOFT_LIGHT, HSL_*.
//   Pixels enter as x * (1.0f / 255) and leave through pixman's float_to_unorm (truncating
//   f * 256, minus the carry). Every float step is `precise` (no fused multiply-add, no
//   reassociation) and written in pixman's evaluation order, so that the IEEE single
//   results, hence the bytes, are pixman's. Sources and masks are then sampled as pixman's
//   wide fetchers do (bilinear in floats).
#if defined(FRAGMENT) && FETCH
#extension GL_EXT_shader_framebuffer_fetch : require
#endif
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
uniform int u_op;                 // pixman_op_t, after composite.py's reductions
uniform ivec2 u_factors;          // float Porter/Duff operators: source, dest factor
// Sampling as pixman's bits-image fetchers do it, in its 16.16 fixed point. An image's
// sample position for destination pixel p is u_*_x.x * p.x + u_*_x.y * p.y + u_*_x.z (and
// the same with u_*_y), modulo 2^32: pixman's transform of the pixel centre, exact, since
// composite.py draws only where pixman's own positions fit in 32 bits (Sampling.rows).
uniform ivec3 u_src_x;
uniform ivec3 u_src_y;
uniform ivec4 u_src_box;          // x, y, w, h of the image inside u_src
uniform bool u_src_opaque;        // xRGB: alpha 255 inside
uniform ivec3 u_mask_x;
uniform ivec3 u_mask_y;
uniform ivec4 u_mask_box;
uniform bool u_mask_opaque;
uniform bool u_component_alpha;
uniform bool u_dst_opaque;
#if FETCH
inout vec4 frag;
#else
out vec4 frag;
#endif

const float INV_255 = uintBitsToFloat(0x3B808081u);  // 1.0f / 255, pixman's unorm_to_float
const float FLT_MIN = uintBitsToFloat(0x00800000u);

vec4 to_float(uvec4 c) {
    precise vec4 f = vec4(c) * INV_255;
    return f;
}

// pixman's MOD: c modulo n in [0, n), negative c too (GLSL's % is undefined there).
int mod_floor(int c, int n) {
    int r = int(uint(c < 0 ? -1 - c : c) % uint(n));
    return c < 0 ? n - 1 - r : r;
}

// pixman's repeat() along one axis of n texels; -1 outside the image under REPEAT_NONE.
int repeat_axis(int c, int n, int repeat_mode) {
    if (repeat_mode == 1) return mod_floor(c, n);
    if (repeat_mode == 2) return clamp(c, 0, n - 1);
    if (repeat_mode == 3) {
        c = mod_floor(c, 2 * n);
        return c >= n ? 2 * n - 1 - c : c;
    }
    return c >= 0 && c < n ? c : -1;
}

// Texel q of an image after its repeat mode: zero (transparent) outside under REPEAT_NONE,
// alpha 255 inside an xRGB one.
uvec4 texel(sampler2D t, ivec4 box, int repeat_mode, bool opaque, ivec2 q) {
    int x = repeat_axis(q.x, box.z, repeat_mode);
    int y = repeat_axis(q.y, box.w, repeat_mode);
    if (x < 0 || y < 0) return uvec4(0u);
    uvec4 c = to_u8(texelFetch(t, box.xy + ivec2(x, y), 0));
    if (opaque) c.w = 255u;
    return c;
}

ivec2 position(ivec3 mx, ivec3 my) {
    uvec2 p = uvec2(gl_FragCoord.xy);
    return ivec2(uint(mx.x) * p.x + uint(mx.y) * p.y + uint(mx.z),
                 uint(my.x) * p.x + uint(my.y) * p.y + uint(my.z));
}

#if FLOAT
// pixman's wide fetch: texels as floats; bilinear weights from the whole 16-bit fraction,
// single precision, in bilinear_interpolation_float's order.
vec4 sample_image(sampler2D t, ivec3 mx, ivec3 my, ivec4 box, bool bilinear, int repeat_mode,
                  bool opaque) {
    ivec2 v = position(mx, my);
    if (!bilinear) return to_float(texel(t, box, repeat_mode, opaque, (v - 1) >> 16));
    ivec2 c = v - 0x8000;
    ivec2 q = c >> 16;
    precise vec2 d = vec2(c & 0xFFFF) * (1.0 / 65536.0);
    precise float dxy = d.x * d.y;
    precise float dxiy = d.x * (1.0 - d.y);
    precise float dixy = (1.0 - d.x) * d.y;
    precise float dixiy = (1.0 - d.x) * (1.0 - d.y);
    vec4 tl = to_float(texel(t, box, repeat_mode, opaque, q));
    vec4 tr = to_float(texel(t, box, repeat_mode, opaque, q + ivec2(1, 0)));
    vec4 bl = to_float(texel(t, box, repeat_mode, opaque, q + ivec2(0, 1)));
    vec4 br = to_float(texel(t, box, repeat_mode, opaque, q + ivec2(1, 1)));
    precise vec4 r = tl * dixiy + tr * dxiy + bl * dixy + br * dxy;
    return r;
}
#else
// pixman's narrow fetch: nearest is texel (v - 1/65536) >> 16; bilinear takes 7-bit weights
// of v - 1/2 and truncates the exact weighted sum (bilinear_interpolation).
uvec4 sample_image(sampler2D t, ivec3 mx, ivec3 my, ivec4 box, bool bilinear, int repeat_mode,
                   bool opaque) {
    ivec2 v = position(mx, my);
    if (!bilinear) return texel(t, box, repeat_mode, opaque, (v - 1) >> 16);
    ivec2 c = v - 0x8000;
    ivec2 q = c >> 16;
    uvec2 w = uvec2((c >> 9) & 0x7F);
    uvec4 top = texel(t, box, repeat_mode, opaque, q) * (128u - w.x)
                + texel(t, box, repeat_mode, opaque, q + ivec2(1, 0)) * w.x;
    uvec4 bottom = texel(t, box, repeat_mode, opaque, q + ivec2(0, 1)) * (128u - w.x)
                   + texel(t, box, repeat_mode, opaque, q + ivec2(1, 1)) * w.x;
    return (top * (128u - w.y) + bottom * w.y) >> 14;
}
#endif

// Per-channel x * a / 255 (component alpha gives each channel its own factor).
uvec4 mulv(uvec4 x, uvec4 a) {
    uvec4 t = x * a + 0x80u;
    return ((t >> 8) + t) >> 8;
}

// pixman's DIV_ONE_UN8: a 0..255*255 product back to 0..255, rounded.
uint div_one(uint x) { return (x + 0x80u + ((x + 0x80u) >> 8)) >> 8; }

// --- integer separable blend modes (PDF_SEPARABLE_BLEND_MODE) ---------------------------

// as * ad * B(d / ad, s / as) of one channel, in 0..255*255 units (signed: pixman's int32).
int blend_int(int op, int d, int ad, int s, int as) {
    int light = as * ad - 2 * (ad - d) * (as - s);  // screen half of OVERLAY, HARD_LIGHT
    if (op == 0x31) return s * ad + d * as - s * d;                 // SCREEN
    if (op == 0x32) return 2 * d < ad ? 2 * s * d : light;          // OVERLAY
    if (op == 0x33) return min(ad * s, as * d);                     // DARKEN
    if (op == 0x34) return max(ad * s, as * d);                     // LIGHTEN
    if (op == 0x37) return 2 * s < as ? 2 * s * d : light;          // HARD_LIGHT
    if (op == 0x39) return abs(s * ad - d * as);                    // DIFFERENCE
    return s * ad + d * as - 2 * d * s;                             // EXCLUSION
}

// pixman sums into a uint32 and clamps to 0..255*255: a negative sum (possible only with
// channels above their alpha) wraps around and so clamps to the top.
uint clamp_sum(int v) { return v < 0 || v > 65025 ? 65025u : uint(v); }

// s: source after the mask; sa: each channel's source alpha (after a component mask).
uvec4 separable_int(int op, uvec4 s, uvec4 sa, uvec4 d) {
    uint da = d.w;
    if (op == 0x30) {  // MULTIPLY: pixman's own combiner, products rounded one by one
        return add_sat(add_sat(mul_un8(s, 255u - da), mulv(d, uvec4(255u) - sa)), mulv(d, s));
    }
    uvec4 r;
    r.w = div_one(clamp_sum(int(da * 255u + s.w * 255u - s.w * da)));
    for (int i = 0; i < 3; i++) {
        int t = int((255u - sa[i]) * d[i] + (255u - da) * s[i]);
        r[i] = div_one(clamp_sum(t + blend_int(op, int(d[i]), int(da), int(s[i]), int(sa[i]))));
    }
    return r;
}

// --- float combiners ---------------------------------------------------------------------

// pixman's float_to_unorm: clamp, truncate f * 256, subtract the carry (NaN gives 0, as the
// x86 conversion does).
uint to_unorm(float f) {
    float g = f > 1.0 ? 1.0 : (f >= 0.0 ? f : 0.0);
    precise float x = g * 256.0;
    uint u = uint(x);
    return u - (u >> 8);
}

bool is_zero(float f) { return -FLT_MIN < f && f < FLT_MIN; }

float clamp01(float f) { return f < 0.0 ? 0.0 : (f > 1.0 ? 1.0 : f); }

// get_factor's combine_factor_t k (pixman's order): ZERO, ONE, SRC_ALPHA, DEST_ALPHA, INV_SA,
// INV_DA, then the quotients SA_OVER_DA, DA_OVER_SA, INV_SA_OVER_DA, INV_DA_OVER_SA and the
// same four as 1 - quotient. llvmpipe runs every branch of a shader, so the quotient's
// numerator and denominator are picked and divided once.
float factor(int k, float sa, float da) {
    precise float inv_sa = 1.0 - sa;
    precise float inv_da = 1.0 - da;
    if (k < 6) return k == 0 ? 0.0 : k == 1 ? 1.0 : k == 2 ? sa : k == 3 ? da
                    : k == 4 ? inv_sa : inv_da;
    // 0: SA/DA, 1: DA/SA, 2: (1 - SA)/DA, 3: (1 - DA)/SA
    int j = k < 10 ? k - 6 : k == 12 ? 3 : k == 13 ? 2 : k - 10;
    float num = j == 0 ? sa : j == 1 ? da : j == 2 ? inv_sa : inv_da;
    float den = (j & 1) == 0 ? da : sa;
    precise float q = num / den;
    precise float one_minus_q = 1.0 - q;
    if (is_zero(den)) return k < 10 ? 1.0 : 0.0;
    return clamp01(k < 10 ? q : one_minus_q);
}

// as * ad * B(d / ad, s / as), pixman's float blend_* for the modes that divide: one shared
// division (two for SOFT_LIGHT's middle case), its operands picked by mode and case.
float blend_float(int op, float sa, float s, float da, float d) {
    precise float d_sa = d * sa;
    precise float sa_da = sa * da;
    precise float s2 = 2.0 * s;
    precise float num;
    precise float den;
    if (op == 0x35) {         // COLOR_DODGE: sa * sa * d / (sa - s)
        num = sa * sa * d;
        den = sa - s;
    } else if (op == 0x36) {  // COLOR_BURN: sa * (da - d) / s
        num = sa * (da - d);
        den = s;
    } else {                  // SOFT_LIGHT: d * (da - d) * (sa - 2 s) / da, or 16 d / da
        num = s2 <= sa ? d * (da - d) * (sa - s2) : 16.0 * d;
        den = da;
    }
    precise float q = num / den;
    precise float q2 = (q - 12.0) * d / da;
    precise float r;
    if (op == 0x35) {
        precise float rhs = sa_da - s * da;
        if (is_zero(d)) r = 0.0;
        else if (d_sa >= rhs || is_zero(den)) r = sa_da;
        else r = q;
    } else if (op == 0x36) {
        precise float rhs = s * da;
        if (d >= da) r = sa_da;
        else if (num >= rhs || is_zero(s)) r = 0.0;
        else r = sa * (da - q);
    } else {
        precise float d4 = 4.0 * d;
        if (is_zero(da)) r = d_sa;
        else if (s2 <= sa) r = d_sa - q;
        else if (d4 <= da) r = d_sa + (s2 - sa) * d * (q2 + 3.0);
        else r = d_sa + (sqrt(d * da) - d) * (s2 - sa);
    }
    return r;
}

float lum(vec3 c) {
    precise float l = c.r * 0.3 + c.g * 0.59 + c.b * 0.11;
    return l;
}

float ch_min(vec3 c) {
    float m = c.r < c.g ? c.r : c.g;
    return m < c.b ? m : c.b;
}

float ch_max(vec3 c) {
    float m = c.r > c.g ? c.r : c.g;
    return m > c.b ? m : c.b;
}

float sat(vec3 c) {
    precise float s = ch_max(c) - ch_min(c);
    return s;
}

vec3 clip_color(vec3 c, float a) {
    float l = lum(c);
    float n = ch_min(c);
    float x = ch_max(c);
    precise vec3 r = c;
    if (n < 0.0) {
        precise float t = l - n;
        if (is_zero(t)) r = vec3(0.0);
        else r = l + ((r - l) * l) / t;
    }
    if (x > a) {
        precise float t = x - l;
        precise float span = a - l;
        if (is_zero(t)) r = vec3(a);
        else r = l + ((r - l) * span / t);
    }
    return r;
}

vec3 set_lum(vec3 c, float a, float l) {
    precise float d = l - lum(c);
    precise vec3 r = c + d;
    return clip_color(r, a);
}

vec3 set_sat(vec3 c, float s) {
    int hi, mid, lo;  // pixman's comparison tree (ties decide which channel is which)
    if (c.r > c.g) {
        if (c.r > c.b) {
            hi = 0;
            if (c.g > c.b) { mid = 1; lo = 2; } else { mid = 2; lo = 1; }
        } else {
            hi = 2; mid = 0; lo = 1;
        }
    } else if (c.r > c.b) {
        hi = 1; mid = 0; lo = 2;
    } else {
        lo = 0;
        if (c.g > c.b) { hi = 1; mid = 2; } else { hi = 2; mid = 1; }
    }
    precise float t = c[hi] - c[lo];
    precise float m = ((c[mid] - c[lo]) * s) / t;
    vec3 r = vec3(0.0);
    if (!is_zero(t)) {
        r[mid] = m;
        r[hi] = s;
    }
    return r;
}

// The non-separable (HSL) modes on premultiplied (r, g, b): as * ad * B(s / as, d / ad).
// HUE: set_lum(set_sat(s * ad, SAT(d) * as), LUM(d) * as); SATURATION: the same from d * as
// with SAT(s) * ad; COLOR: set_lum(s * ad, LUM(d) * as); LUMINOSITY: set_lum(d * as,
// LUM(s) * ad). One set_sat and one set_lum, their inputs picked by mode.
vec3 blend_hsl(int op, vec3 dc, float da, vec3 sc, float sa) {
    precise vec3 from_s = sc * da;
    precise vec3 from_d = dc * sa;
    precise float sat_d = sat(dc) * sa;
    precise float sat_s = sat(sc) * da;
    precise float lum_d = lum(dc) * sa;
    precise float lum_s = lum(sc) * da;
    bool hue = op == 0x3b;
    vec3 r = hue || op == 0x3d ? from_s : from_d;
    vec3 with_sat = set_sat(r, hue ? sat_d : sat_s);
    if (op <= 0x3c) r = with_sat;
    precise float a = sa * da;
    return set_lum(r, a, op == 0x3e ? lum_s : lum_d);
}

// s, m: the source and mask samples as floats (pixman's wide path)
uvec4 combine_float(vec4 s, vec4 m, uvec4 du) {
    precise vec4 d = to_float(du);
    precise vec4 sa = vec4(s.w);  // each channel's source alpha
    bool hsl = u_op >= 0x3b;
    if (MASK != 0) {
        if (u_component_alpha) {
            if (hsl) return du;  // pixman: no component alpha for HSL, the dest stays
            s.xyz = s.xyz * m.xyz;
            sa = m * s.w;
            s.w = sa.w;
        } else if (hsl) {
            // pixman's HSL combiner scales red and green but green twice, blue not at all
            s.w = s.w * m.w;
            s.z = s.z * m.w;
            s.y = s.y * m.w;
            s.y = s.y * m.w;
            sa = vec4(s.w);
        } else {
            s = s * m.w;
            sa = vec4(s.w);
        }
    }
    float da = d.w;
    precise vec4 r;
    if (hsl) {
        vec3 rc = blend_hsl(u_op, d.zyx, da, s.zyx, s.w);
        r.w = s.w + da - s.w * da;
        r.xyz = (1.0 - s.w) * d.xyz + (1.0 - da) * s.xyz + rc.zyx;
    } else if (u_op >= 0x30) {
        r.w = da + sa.w - da * sa.w;
        for (int i = 0; i < 3; i++) {
            precise float f = (1.0 - sa[i]) * d[i] + (1.0 - da) * s[i];
            r[i] = f + blend_float(u_op, sa[i], s[i], da, d[i]);
        }
    } else {  // Porter/Duff, factors of SATURATE or a DISJOINT_/CONJOINT_ operator
        for (int i = 0; i < 4; i++) {
            precise float v = s[i] * factor(u_factors.x, sa[i], da)
                              + d[i] * factor(u_factors.y, sa[i], da);
            r[i] = min(1.0, v);
        }
    }
    return uvec4(to_unorm(r.x), to_unorm(r.y), to_unorm(r.z), to_unorm(r.w));
}

// --- integer combiners ---------------------------------------------------------------------

uvec4 combine_int(uvec4 s, uvec4 m, uvec4 d) {
    uvec4 sa = uvec4(s.w);   // source alpha per channel (component alpha makes it differ)
    if (MASK != 0) {
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
    if (u_op == 0) return uvec4(0u);                                    // CLEAR
    if (u_op == 1) return s;                                            // SRC
    if (u_op == 2) return d;                                            // DST
    if (u_op == 3) return add_sat(s, mulv(d, isa));                     // OVER
    if (u_op == 4) return add_sat(d, mul_un8(s, ida));                  // OVER_REVERSE
    if (u_op == 5) return mul_un8(s, da);                               // IN
    if (u_op == 6) return mulv(d, sa);                                  // IN_REVERSE
    if (u_op == 7) return mul_un8(s, ida);                              // OUT
    if (u_op == 8) return mulv(d, isa);                                 // OUT_REVERSE
    if (u_op == 9) return add_sat(mul_un8(s, da), mulv(d, isa));        // ATOP
    if (u_op == 10) return add_sat(mul_un8(s, ida), mulv(d, sa));       // ATOP_REVERSE
    if (u_op == 11) return add_sat(mul_un8(s, ida), mulv(d, isa));      // XOR
    if (u_op == 12) return add_sat(s, d);                               // ADD
    return separable_int(u_op, s, sa, d);                               // blend modes
}

void main() {
#if FETCH
    uvec4 d = to_u8(frag);
#else
    uvec4 d = to_u8(texelFetch(u_dst, ivec2(gl_FragCoord.xy), 0));
#endif
    if (u_dst_opaque) d.w = 255u;
#if FLOAT
    vec4 s = sample_image(u_src, u_src_x, u_src_y, u_src_box, SRC_BILINEAR != 0, SRC_REPEAT,
                          u_src_opaque);
    vec4 m = vec4(1.0);
    if (MASK != 0) {
        m = sample_image(u_mask, u_mask_x, u_mask_y, u_mask_box, MASK == 2, MASK_REPEAT,
                         u_mask_opaque);
    }
    uvec4 r = combine_float(s, m, d);
#else
    uvec4 s = sample_image(u_src, u_src_x, u_src_y, u_src_box, SRC_BILINEAR != 0, SRC_REPEAT,
                           u_src_opaque);
    uvec4 m = uvec4(255u);
    if (MASK != 0) {
        m = sample_image(u_mask, u_mask_x, u_mask_y, u_mask_box, MASK == 2, MASK_REPEAT,
                         u_mask_opaque);
    }
    uvec4 r = combine_int(s, m, d);
#endif
    frag = from_u8(quantize(r, u_fmt));
}
#endif
