/* 4:2:0 video's input: B,G,R,X pixels to I420 (a full-size Y plane, U and V at half
 * size each way), BT.601 limited range, as libswscale converts them by default and
 * as decoders assume of a stream that does not say otherwise.  U and V are the means
 * of each 2x2 block.  Half the CPU of libswscale's generic path for B,G,R,A input
 * at 1280x720 (bench/stream.py, "encoder alone"), which video encoders pay per frame.
 *
 * Fixed point: the coefficients are BT.601's times 256, rounded. */
#include "encode_common.h"

static inline uint8_t luma(const uint8_t *p)
{
    return (uint8_t)(((66 * p[2] + 129 * p[1] + 25 * p[0] + 128) >> 8) + 16);
}

int vgpu_bgrx_to_i420(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                      uint8_t *y, ptrdiff_t y_stride, uint8_t *u, ptrdiff_t u_stride,
                      uint8_t *v, ptrdiff_t v_stride)
{
    if (!frame_ok(pixels, stride, width, height) || (width | height) & 1 || !y || !u || !v
        || y_stride < width || u_stride < width / 2 || v_stride < width / 2) {
        return VGPU_ENC_ERR_ARGS;
    }
    for (int row = 0; row < height; row += 2) {
        const uint8_t *s0 = pixels + (ptrdiff_t)row * stride;
        const uint8_t *s1 = s0 + stride;
        uint8_t *y0 = y + (ptrdiff_t)row * y_stride;
        uint8_t *y1 = y0 + y_stride;
        uint8_t *u_row = u + (ptrdiff_t)(row / 2) * u_stride;
        uint8_t *v_row = v + (ptrdiff_t)(row / 2) * v_stride;
        for (int x = 0; x < width; x++) {
            y0[x] = luma(s0 + 4 * x);
            y1[x] = luma(s1 + 4 * x);
        }
        for (int x = 0; x < width / 2; x++) {
            const uint8_t *a = s0 + 8 * x, *c = s1 + 8 * x;
            int b = a[0] + a[4] + c[0] + c[4];
            int g = a[1] + a[5] + c[1] + c[5];
            int r = a[2] + a[6] + c[2] + c[6];
            /* four pixels' sums: the shift takes the mean (2 bits) and the scale (8) */
            u_row[x] = (uint8_t)(((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128);
            v_row[x] = (uint8_t)(((112 * r - 94 * g - 18 * b + 512) >> 10) + 128);
        }
    }
    return 0;
}
