// The staging buffer: guest pixels (bitmap rows, masks, glyphs) a batch appended and uploads
// once per draw call. Indices count from the start of the staging area; u_stage_base is the
// byte where this draw call's upload begins.
layout(std430, binding = 0) readonly buffer Staging { uint staged[]; };
uniform int u_stage_base;

// Reads are clamped into the buffer: an index can never leave it.
uint staged_word(int i) { return staged[clamp(i, 0, staged.length() - 1)]; }
// 32-bit pixel i of the staging area.
uint staged_pixel(int i) { return staged_word(i - (u_stage_base >> 2)); }
// Byte i of the staging area.
uint staged_byte(int i) {
    i -= u_stage_base;
    return (staged_word(i >> 2) >> (uint(i & 3) * 8u)) & 0xFFu;
}
