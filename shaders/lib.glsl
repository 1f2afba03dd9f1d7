// Shared helpers, pulled into programs (both stages) by the loader's #include.
// Pixels are handled as uvec4 (B, G, R, A memory bytes) and packed uint 0xAARRGGBB.

const int FMT_A1 = 1;
const int FMT_A8 = 8;
const int FMT_555 = 16;
const int FMT_565 = 80;

// Clip-space position of a rect's corner on a target of `size` pixels (texture rows are
// surface rows: no flip).
vec4 rect_corner(ivec4 rect, vec2 corner, vec2 size) {
    vec2 pos = mix(vec2(rect.xy), vec2(rect.zw), corner);
    return vec4(pos / size * 2.0 - 1.0, 0.0, 1.0);
}

uvec4 to_u8(vec4 c) { return uvec4(round(clamp(c, 0.0, 1.0) * 255.0)); }
vec4 from_u8(uvec4 c) { return vec4(c) / 255.0; }
uint pack_px(uvec4 c) { return c.x | (c.y << 8) | (c.z << 16) | (c.w << 24); }
uvec4 unpack_px(uint v) { return (uvec4(v) >> uvec4(0u, 8u, 16u, 24u)) & 0xFFu; }

// What storing into a surface of format fmt keeps (16-bit: 5/6 bits widened again).
uvec4 quantize(uvec4 c, int fmt) {
    if (fmt == FMT_555 || fmt == FMT_565) {
        uint gmask = fmt == FMT_565 ? 0xFCu : 0xF8u;
        uint gshift = fmt == FMT_565 ? 6u : 5u;
        return uvec4((c.x & 0xF8u) | (c.x >> 5), (c.y & gmask) | (c.y >> gshift),
                     (c.z & 0xF8u) | (c.z >> 5), 255u);
    }
    if (fmt == FMT_A8) return uvec4(0u, 0u, 0u, c.w);
    if (fmt == FMT_A1) return uvec4(0u, 0u, 0u, (c.w & 0x80u) != 0u ? 255u : 0u);
    return c;
}

// pixman's x * a / 255 with rounding (DIV_255 of t = x * a + 0x80).
uvec4 mul_un8(uvec4 x, uint a) {
    uvec4 t = x * a + 0x80u;
    return ((t >> 8) + t) >> 8;
}
uvec4 add_sat(uvec4 a, uvec4 b) { return min(a + b, uvec4(255u)); }

// q modulo size, into [0, size) also for negative q (GLSL's % is undefined there).
ivec2 wrap(ivec2 q, ivec2 size) {
    return q - size * ivec2(floor(vec2(q) / vec2(size)));
}
