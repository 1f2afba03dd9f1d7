/* LZ4 in SPICE's framing (SPICE_IMAGE_TYPE_LZ4), as spice-gtk's canvas reads
 * it: a top-down flag byte, a SPICE_BITMAP_FMT_* byte, then blocks, each a
 * big-endian u32 compressed length and one liblz4 block.  The decoder runs
 * LZ4_decompress_safe_continue into one contiguous buffer of packed rows
 * (width*4 bytes each), so our blocks form a linked stream: each may refer
 * back into the data of the blocks before it. */
#include <lz4.h>
#include <stdlib.h>

#include "encode_common.h"

#define SPICE_BITMAP_FMT_32BIT 8

/* Input bytes per block when rows are contiguous.  A whole frame (at most
 * 16384 * 16384 * 4 = 1 GiB, under LZ4_MAX_INPUT_SIZE) goes in one block:
 * liblz4 skips through incompressible input faster in a long block (measured
 * twice as fast on photographic frames as 1 MiB blocks). */
#define BLOCK_BYTES (1u << 30)

static size_t blocks_for(size_t row_bytes, int height)
{
    /* Contiguous input is cut every BLOCK_BYTES; strided input per row. */
    const size_t total = row_bytes * (size_t)height;
    const size_t by_size = (total + BLOCK_BYTES - 1) / BLOCK_BYTES;
    return by_size > (size_t)height ? by_size : (size_t)height;
}

size_t vgpu_lz4_bound(int width, int height)
{
    if (!dims_ok(width, height)) {
        return 0;
    }
    const size_t row_bytes = (size_t)width * 4;
    const size_t total = row_bytes * (size_t)height;
    /* LZ4_COMPRESSBOUND(x) = x + x/255 + 16 per block. */
    return 2 + total + total / 255 + blocks_for(row_bytes, height) * (4 + 16);
}

long vgpu_lz4_encode_rgb32(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                           uint8_t *out, size_t out_cap)
{
    if (!frame_ok(pixels, stride, width, height) || !out
        || out_cap < vgpu_lz4_bound(width, height)) {
        return VGPU_ENC_ERR_ARGS;
    }
    LZ4_stream_t *stream = LZ4_createStream();
    if (!stream) {
        return VGPU_ENC_ERR_NOMEM;
    }
    const size_t row_bytes = (size_t)width * 4;
    uint8_t *o = out;
    uint8_t *const end = out + out_cap;
    *o++ = 1; /* top-down */
    *o++ = SPICE_BITMAP_FMT_32BIT;

    /* Runs of input that are contiguous in memory: the whole frame when the
     * stride is the row size, else one row at a time. */
    const int contiguous = (size_t)stride == row_bytes;
    const size_t span = contiguous ? row_bytes * (size_t)height : row_bytes;
    const int spans = contiguous ? 1 : height;
    long result = 0;
    for (int s = 0; s < spans && result == 0; s++) {
        const uint8_t *src = pixels + (ptrdiff_t)s * stride;
        for (size_t done = 0; done < span;) {
            const size_t len = span - done < BLOCK_BYTES ? span - done : BLOCK_BYTES;
            const size_t room = (size_t)(end - o);
            if (room < 4 + (size_t)LZ4_COMPRESSBOUND(len)) {
                result = VGPU_ENC_ERR_SPACE;
                break;
            }
            const int n = LZ4_compress_fast_continue(stream, (const char *)src + done,
                                                     (char *)o + 4, (int)len,
                                                     (int)(room - 4), 1);
            if (n <= 0) {
                result = VGPU_ENC_ERR_CODEC;
                break;
            }
            put_be32(o, (uint32_t)n);
            o += 4 + n;
            done += len;
        }
    }
    LZ4_freeStream(stream);
    return result ? result : (long)(o - out);
}
