// Solid fills and plain copies, many rects per draw (one instance each).
// i_rect: destination x0, y0, x1, y1; i_off: source texel = destination pixel + i_off;
// i_color: packed pixel for fills; i_kind: 0 fill, 1 copy from u_src.
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
    vec2 pos = mix(vec2(i_rect.xy), vec2(i_rect.zw), corner);
    gl_Position = vec4(pos / u_size * 2.0 - 1.0, 0.0, 1.0);
    v_off = i_off;
    v_color = i_color;
    v_kind = i_kind;
}
#endif
#ifdef FRAGMENT
#include "lib.glsl"
uniform sampler2D u_src;
uniform int u_fmt;
flat in ivec2 v_off;
flat in uint v_color;
flat in uint v_kind;
out vec4 frag;
void main() {
    if (v_kind == 0u) {
        frag = from_u8(unpack_px(v_color));
    } else {
        uvec4 s = to_u8(texelFetch(u_src, ivec2(gl_FragCoord.xy) + v_off, 0));
        frag = from_u8(quantize(s, u_fmt));
    }
}
#endif
