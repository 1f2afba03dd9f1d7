/* Damage tiles: which tile x tile blocks differ between two frames.
 *
 * Speed comes from comparing whole rows first: a frame row that did not
 * change costs one memcmp over contiguous memory (glibc's is vectorised),
 * and only a changed row is split per tile, skipping tiles already known to
 * be dirty.  The dirty tiles are then merged into rectangles: horizontal
 * runs per tile row, and runs with the same columns in consecutive tile rows
 * grown downwards. */
#include <stdlib.h>
#include <string.h>

#include "encode_common.h"

static int args_ok(int width, int height, int tile)
{
    return dims_ok(width, height) && tile >= VGPU_ENC_MIN_TILE && tile <= VGPU_ENC_MAX_DIM;
}

int vgpu_tiles_max_rects(int width, int height, int tile)
{
    if (!args_ok(width, height, tile)) {
        return VGPU_ENC_ERR_ARGS;
    }
    return ((width + tile - 1) / tile) * ((height + tile - 1) / tile);
}

int vgpu_tiles_changed(const uint8_t *prev, ptrdiff_t prev_stride,
                       const uint8_t *cur, ptrdiff_t cur_stride,
                       int width, int height, int tile,
                       int32_t *rects, int max_rects)
{
    if (!frame_ok(prev, prev_stride, width, height) || !frame_ok(cur, cur_stride, width, height)
        || !rects || !args_ok(width, height, tile)) {
        return VGPU_ENC_ERR_ARGS;
    }
    const int tx = (width + tile - 1) / tile;
    const int ty = (height + tile - 1) / tile;
    if (max_rects < tx * ty) {
        return VGPU_ENC_ERR_SPACE;
    }
    uint8_t *dirty = malloc((size_t)tx);
    /* open[k]: index in rects of the rectangle ending at the previous tile
     * row whose left column is k, or -1. */
    int *const open_rows = malloc(sizeof(int) * (size_t)tx * 2);
    if (!dirty || !open_rows) {
        free(dirty);
        free(open_rows);
        return VGPU_ENC_ERR_NOMEM;
    }
    int *open = open_rows;
    int *next_open = open_rows + tx;
    for (int k = 0; k < tx; k++) {
        open[k] = -1;
    }
    const size_t row_bytes = (size_t)width * 4;
    const size_t tile_bytes = (size_t)tile * 4;
    int n = 0;

    for (int band = 0; band < ty; band++) {
        const int y0 = band * tile;
        const int y1 = y0 + tile < height ? y0 + tile : height;
        int ndirty = 0;
        memset(dirty, 0, (size_t)tx);
        for (int y = y0; y < y1 && ndirty < tx; y++) {
            const uint8_t *a = prev + (ptrdiff_t)y * prev_stride;
            const uint8_t *b = cur + (ptrdiff_t)y * cur_stride;
            if (memcmp(a, b, row_bytes) == 0) {
                continue;
            }
            for (int k = 0; k < tx; k++) {
                if (dirty[k]) {
                    continue;
                }
                const size_t off = (size_t)k * tile_bytes;
                const size_t len = off + tile_bytes <= row_bytes ? tile_bytes : row_bytes - off;
                if (memcmp(a + off, b + off, len) != 0) {
                    dirty[k] = 1;
                    ndirty++;
                }
            }
        }
        for (int k = 0; k < tx; k++) {
            next_open[k] = -1;
        }
        for (int k = 0; k < tx;) {
            if (!dirty[k]) {
                k++;
                continue;
            }
            int e = k;
            while (e < tx && dirty[e]) {
                e++;
            }
            const int32_t left = k * tile;
            const int32_t right = e * tile < width ? e * tile : width;
            const int r = open[k];
            if (r >= 0 && rects[4 * r + 2] == right) {
                rects[4 * r + 3] = y1; /* same columns as the run above: grow it */
                next_open[k] = r;
            } else {
                rects[4 * n + 0] = left;
                rects[4 * n + 1] = y0;
                rects[4 * n + 2] = right;
                rects[4 * n + 3] = y1;
                next_open[k] = n++;
            }
            k = e;
        }
        int *t = open;
        open = next_open;
        next_open = t;
    }
    free(dirty);
    free(open_rows);
    return n;
}

static uint32_t rgb_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

/* Whether every pixel of the row segment has this colour. */
static int row_is(const uint8_t *row, int n, uint32_t colour)
{
    for (int x = 0; x < n; x++) {
        if (rgb_at(row + (ptrdiff_t)x * 4) != colour) {
            return 0;
        }
    }
    return 1;
}

int vgpu_tiles_solid(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                     int tile, uint32_t *colours, uint8_t *solid, int max_tiles)
{
    if (!frame_ok(pixels, stride, width, height) || !colours || !solid
        || !args_ok(width, height, tile)) {
        return VGPU_ENC_ERR_ARGS;
    }
    const int tx = (width + tile - 1) / tile;
    const int ty = (height + tile - 1) / tile;
    if (max_tiles < tx * ty) {
        return VGPU_ENC_ERR_SPACE;
    }
    for (int band = 0; band < ty; band++) {
        const int y0 = band * tile;
        const int y1 = y0 + tile < height ? y0 + tile : height;
        for (int k = 0; k < tx; k++) {
            const int x0 = k * tile;
            const int n = (x0 + tile < width ? x0 + tile : width) - x0;
            const uint8_t *top = pixels + (ptrdiff_t)y0 * stride + (ptrdiff_t)x0 * 4;
            const uint32_t colour = rgb_at(top);
            /* The first row pixel by pixel (content tiles usually end there); the
             * others against it with memcmp, which glibc vectorises, pixel by
             * pixel only where the X bytes differ. */
            int same = row_is(top, n, colour);
            for (int y = y0 + 1; y < y1 && same; y++) {
                const uint8_t *row = pixels + (ptrdiff_t)y * stride + (ptrdiff_t)x0 * 4;
                same = memcmp(row, top, (size_t)n * 4) == 0 || row_is(row, n, colour);
            }
            colours[band * tx + k] = colour;
            solid[band * tx + k] = (uint8_t)same;
        }
    }
    return tx * ty;
}
