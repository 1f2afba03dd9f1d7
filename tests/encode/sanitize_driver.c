/* Runs every encoder over random and adversarial frames; built with
 * -fsanitize=address,undefined by test_sanitize.py, so any out-of-bounds
 * access or undefined behaviour aborts with a report.
 *
 * Each input frame sits in a heap block of exactly the bytes a frame of its
 * stride needs (the last row ends at the block's end), and each output buffer
 * is exactly the size the encoder's bound asks for, so a one-byte overrun
 * either way lands in ASan's redzone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgpu_encode.h"

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void fill(uint8_t *p, size_t n, int kind)
{
    uint32_t colours[4] = {rnd(), rnd(), rnd(), rnd()};
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v;
        switch (kind) {
        case 0: v = rnd(); break;                                  /* noise */
        case 1: v = colours[rnd() % 4 < 3 ? 0 : rnd() % 4]; break; /* runs */
        case 2: v = colours[(i / 4) % 3]; break;                   /* repeats */
        default: v = colours[0]; break;                            /* flat */
        }
        memcpy(p + i, &v, 4 <= n - i ? 4 : n - i);
    }
}

static int failures;

static void expect(int ok, const char *what, int w, int h)
{
    if (!ok) {
        fprintf(stderr, "FAIL %s at %dx%d\n", what, w, h);
        failures++;
    }
}

static void run_case(int w, int h, int pad_pixels, int kind)
{
    const ptrdiff_t stride = (ptrdiff_t)(w + pad_pixels) * 4;
    const size_t bytes = (size_t)stride * (size_t)(h - 1) + (size_t)w * 4;
    uint8_t *px = malloc(bytes);
    uint8_t *px2 = malloc(bytes);
    fill(px, bytes, kind);
    memcpy(px2, px, bytes);
    if (rnd() % 2) {
        px2[rnd() % bytes] ^= 1;
    }

    for (int alpha = 0; alpha < 2; alpha++) {
        size_t cap = vgpu_lz_bound(w, h, alpha);
        uint8_t *out = malloc(cap);
        expect(vgpu_lz_encode(px, stride, w, h, alpha, out, cap) > 28, "lz", w, h);
        expect(vgpu_lz_encode(px, stride, w, h, alpha, out, cap - 1) == VGPU_ENC_ERR_ARGS,
               "lz small cap", w, h);
        free(out);
    }
    size_t cap = vgpu_quic_bound(w, h);
    uint8_t *out = malloc(cap);
    expect(vgpu_quic_encode_rgb32(px, stride, w, h, out, cap) >= 24, "quic", w, h);
    free(out);
    cap = vgpu_lz4_bound(w, h);
    out = malloc(cap);
    expect(vgpu_lz4_encode_rgb32(px, stride, w, h, out, cap) > 2, "lz4", w, h);
    free(out);
    if (w * h <= 4096) { /* JPEG is libjpeg's code; a few sizes are enough */
        uint8_t *jpg = NULL;
        long n = vgpu_jpeg_encode(px, stride, w, h, 1 + (int)(rnd() % 100), &jpg);
        expect(n > 0 && jpg != NULL, "jpeg", w, h);
        vgpu_encode_free(jpg);
    }
    const int tile = 8 + (int)(rnd() % 70);
    const int max_rects = vgpu_tiles_max_rects(w, h, tile);
    int32_t *rects = malloc(sizeof(int32_t) * 4 * (size_t)max_rects);
    const int n = vgpu_tiles_changed(px, stride, px2, stride, w, h, tile, rects, max_rects);
    expect(n >= 0 && n <= max_rects, "tiles", w, h);
    for (int i = 0; i < n; i++) {
        expect(rects[4 * i] < rects[4 * i + 2] && rects[4 * i + 2] <= w
                   && rects[4 * i + 1] < rects[4 * i + 3] && rects[4 * i + 3] <= h,
               "tile rect", w, h);
    }
    free(rects);
    free(px);
    free(px2);
}

static void bad_arguments(void)
{
    uint8_t px[64] = {0};
    uint8_t out[4096];
    uint8_t *jpg = NULL;
    const int sizes[][2] = {{0, 1}, {1, 0}, {-1, 4}, {4, -1},
                            {VGPU_ENC_MAX_DIM + 1, 1}, {1, VGPU_ENC_MAX_DIM + 1}};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        const int w = sizes[k][0], h = sizes[k][1];
        expect(vgpu_lz_encode(px, 64, w, h, 0, out, sizeof(out)) == VGPU_ENC_ERR_ARGS, "lz args", w, h);
        expect(vgpu_quic_encode_rgb32(px, 64, w, h, out, sizeof(out)) == VGPU_ENC_ERR_ARGS, "quic args", w, h);
        expect(vgpu_lz4_encode_rgb32(px, 64, w, h, out, sizeof(out)) == VGPU_ENC_ERR_ARGS, "lz4 args", w, h);
        expect(vgpu_jpeg_encode(px, 64, w, h, 80, &jpg) == VGPU_ENC_ERR_ARGS, "jpeg args", w, h);
        expect(vgpu_tiles_max_rects(w, h, 64) == VGPU_ENC_ERR_ARGS, "tiles args", w, h);
    }
    /* a stride shorter than a row, null pointers, a too-small tile */
    expect(vgpu_lz_encode(px, 12, 4, 2, 0, out, sizeof(out)) == VGPU_ENC_ERR_ARGS, "stride", 4, 2);
    expect(vgpu_lz_encode(NULL, 16, 4, 2, 0, out, sizeof(out)) == VGPU_ENC_ERR_ARGS, "null", 4, 2);
    expect(vgpu_quic_encode_rgb32(px, 16, 4, 2, NULL, sizeof(out)) == VGPU_ENC_ERR_ARGS, "null", 4, 2);
    expect(vgpu_jpeg_encode(px, 16, 4, 2, 0, &jpg) == VGPU_ENC_ERR_ARGS, "quality", 4, 2);
    int32_t rects[16];
    expect(vgpu_tiles_changed(px, 16, px, 16, 4, 4, 4, rects, 4) == VGPU_ENC_ERR_ARGS, "tile", 4, 4);
    expect(vgpu_tiles_changed(px, 16, px, 16, 4, 4, 8, rects, 0) == VGPU_ENC_ERR_SPACE, "cap", 4, 4);
}

int main(int argc, char **argv)
{
    const int cases = argc > 1 ? atoi(argv[1]) : 300;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) | 1 : 88172645463325252ull;
    bad_arguments();
    /* Edges first: single pixels, single rows and columns, long rows that
     * cross QUIC's 2048-pixel mask steps and LZ's far-copy distances. */
    const int edges[][2] = {{1, 1}, {2, 1}, {1, 2}, {3, 3}, {4096, 1}, {1, 3000},
                            {9000, 2}, {2049, 3}};
    for (size_t k = 0; k < sizeof(edges) / sizeof(edges[0]); k++) {
        for (int kind = 0; kind < 4; kind++) {
            run_case(edges[k][0], edges[k][1], (int)(rnd() % 3), kind);
        }
    }
    for (int i = 0; i < cases; i++) {
        const int w = 1 + (int)(rnd() % (rnd() % 4 ? 64 : 700));
        const int h = 1 + (int)(rnd() % (rnd() % 4 ? 64 : 300));
        run_case(w, h, (int)(rnd() % 4 ? 0 : rnd() % 9), (int)(rnd() % 4));
    }
    printf("%d cases, %d failures\n", cases, failures);
    return failures != 0;
}
