/* What the encoders share and Python does not see: vgpu_encode.h is the cffi
 * interface and holds declarations only. */
#ifndef VGPU_ENCODE_COMMON_H
#define VGPU_ENCODE_COMMON_H

#include "vgpu_encode.h"

/* A frame size every encoder accepts: 1..VGPU_ENC_MAX_DIM on each side. */
static inline int dims_ok(int width, int height)
{
    return width > 0 && height > 0 && width <= VGPU_ENC_MAX_DIM && height <= VGPU_ENC_MAX_DIM;
}

/* A frame the encoders may read: pixels, a valid size, and rows no closer
 * together than a row's 4 * width bytes. */
static inline int frame_ok(const uint8_t *pixels, ptrdiff_t stride, int width, int height)
{
    return pixels && dims_ok(width, height) && stride >= (ptrdiff_t)width * 4;
}

static inline void put_be32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
}

#endif
