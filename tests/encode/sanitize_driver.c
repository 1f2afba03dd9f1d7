/* Runs every encoder (and the QUIC decoder, on their streams and corrupt
 * copies) over random and adversarial frames; built with
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

/* Decodes a stream from a heap block of exactly its length: the stream
 * itself must give back the frame's colours, and truncated or bit-flipped
 * copies must end in an error code or an image, never outside the blocks. */
static void quic_decode_case(const uint8_t *px, ptrdiff_t stride, int w, int h,
                             const uint8_t *stream, size_t n)
{
    uint8_t *img = malloc((size_t)w * (size_t)h * 4);
    uint8_t *copy = malloc(n);
    memcpy(copy, stream, n);
    int type, dw, dh;
    expect(vgpu_quic_decode_header(copy, n, &type, &dw, &dh) == 0 && type == VGPU_QUIC_TYPE_RGB32
               && dw == w && dh == h, "quic header", w, h);
    expect(vgpu_quic_decode(copy, n, img, (ptrdiff_t)w * 4, w, h) == (long)w * h, "quic decode", w, h);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const uint8_t *a = px + y * stride + 4 * x, *b = img + ((size_t)y * w + x) * 4;
            if (a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || b[3] != 0) {
                expect(0, "quic decoded pixel", w, h);
                y = h;
                break;
            }
        }
    }
    /* the caller's size must be the header's (the decoder writes nothing then) */
    expect(vgpu_quic_decode(copy, n, img, (ptrdiff_t)w * 4, w, h > 1 ? h - 1 : 2)
               == VGPU_DEC_ERR_SIZE, "quic size mismatch", w, h);
    free(copy);
    for (int k = 0; k < 3; k++) {
        /* k == 0: a random cut; k == 1: a few flipped bits past the header; k == 2:
         * the stream labelled RGB16, RGB24 or RGBA, so that the 5-bit family and the
         * alpha plane's rows read a long stream of codes too */
        const size_t len = k == 0 ? rnd() % n : n;
        copy = malloc(len ? len : 1);
        memcpy(copy, stream, len);
        for (int f = 0; k == 1 && f < 1 + (int)(rnd() % 3); f++) {
            copy[20 + rnd() % (len - 20)] ^= (uint8_t)(1u << (rnd() % 8));
        }
        if (k == 2) {
            const uint8_t relabel[] = {VGPU_QUIC_TYPE_RGB16, VGPU_QUIC_TYPE_RGB24, VGPU_QUIC_TYPE_RGBA};
            copy[8] = relabel[rnd() % 3]; /* the type word's low byte */
        }
        const long r = vgpu_quic_decode(copy, len, img, (ptrdiff_t)w * 4, w, h);
        expect(r == (long)w * h || (r <= VGPU_DEC_ERR_HEADER && r >= VGPU_DEC_ERR_CORRUPT),
               "quic corrupt", w, h);
        if (k == 0 && len + 4 <= n) {
            expect(r == VGPU_DEC_ERR_TRUNCATED || (len < 24 && r < 0), "quic truncated", w, h);
        }
        free(copy);
    }
    free(img);
}

/* A header of any decoded type and a body of noise, mostly-one bytes (short
 * codes and long runs) or mostly-zero bytes (escape codes): an image or an
 * error code, never a read past the stream or a write past the image. */
static void quic_noise_case(void)
{
    const uint32_t types[] = {VGPU_QUIC_TYPE_RGB16, VGPU_QUIC_TYPE_RGB24, VGPU_QUIC_TYPE_RGB32,
                              VGPU_QUIC_TYPE_RGBA};
    const int w = 1 + (int)(rnd() % (rnd() % 4 ? 64 : 2600)), h = 1 + (int)(rnd() % 16);
    const size_t n = 20 + rnd() % ((size_t)w * (size_t)h * 4 + 8);
    const uint32_t head[5] = {0x43495551u, 0, types[rnd() % 4], (uint32_t)w, (uint32_t)h};
    const int bias = (int)(rnd() % 3);
    uint8_t *s = malloc(n), *img = malloc((size_t)w * (size_t)h * 4);
    for (size_t i = 0; i < n; i++) {
        const uint8_t v = (uint8_t)rnd();
        s[i] = i < 20 ? (uint8_t)(head[i / 4] >> (8 * (i % 4)))
             : bias == 0 || rnd() % 16 == 0 ? v : bias == 1 ? 0xff : 0;
    }
    const long r = vgpu_quic_decode(s, n, img, (ptrdiff_t)w * 4, w, h);
    expect(r == (long)w * h || (r <= VGPU_DEC_ERR_HEADER && r >= VGPU_DEC_ERR_CORRUPT),
           "quic noise", w, h);
    free(s);
    free(img);
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
    const long qn = vgpu_quic_encode_rgb32(px, stride, w, h, out, cap);
    expect(qn >= 24, "quic", w, h);
    if (qn >= 24) {
        quic_decode_case(px, stride, w, h, out, (size_t)qn);
    }
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
    if (!((w | h) & 1)) { /* I420 planes exactly their size: a write past one is caught */
        const int cw = w / 2, ch = h / 2;
        uint8_t *yp = malloc((size_t)w * (size_t)h), *up = malloc((size_t)cw * (size_t)ch);
        uint8_t *vp = malloc((size_t)cw * (size_t)ch);
        expect(vgpu_bgrx_to_i420(px, stride, w, h, yp, w, up, cw, vp, cw) == 0, "i420", w, h);
        free(yp);
        free(up);
        free(vp);
    } else {
        expect(vgpu_bgrx_to_i420(px, stride, w, h, px2, w, px2, w, px2, w) == VGPU_ENC_ERR_ARGS,
               "i420 odd size", w, h);
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
        expect(vgpu_bgrx_to_i420(px, 64, w, h, out, 64, out, 64, out, 64) == VGPU_ENC_ERR_ARGS,
               "i420 args", w, h);
        expect(vgpu_quic_decode(out, sizeof(out), out, 64, w, h) == VGPU_ENC_ERR_ARGS, "quic dec args", w, h);
    }
    /* headers a guest could write: wrong magic, version, type, sizes; and
     * streams shorter than a header */
    const uint32_t heads[][5] = {
        {0x43495551u, 0, 4, 0, 4},    {0x43495551u, 0, 4, 4, 0},
        {0x43495551u, 0, 4, VGPU_ENC_MAX_DIM + 1, 1}, {0x43495551u, 0, 4, 0xffffffffu, 0xffffffffu},
        {0x43495551u, 0, 1, 4, 4},    {0x43495551u, 0, 0, 4, 4}, {0x43495551u, 0, 6, 4, 4},
        {0x43495551u, 1, 4, 4, 4},    {0x51554943u, 0, 4, 4, 4},
    };
    const long verdicts[] = {VGPU_DEC_ERR_SIZE, VGPU_DEC_ERR_SIZE, VGPU_DEC_ERR_SIZE,
                             VGPU_DEC_ERR_SIZE, VGPU_DEC_ERR_TYPE, VGPU_DEC_ERR_TYPE,
                             VGPU_DEC_ERR_TYPE, VGPU_DEC_ERR_HEADER, VGPU_DEC_ERR_HEADER};
    for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
        uint8_t *s = calloc(24, 1); /* the header, then a zero word to read ahead */
        for (int i = 0; i < 5; i++) {
            for (int b = 0; b < 4; b++) {
                s[4 * i + b] = (uint8_t)(heads[k][i] >> (8 * b));
            }
        }
        int t, hw, hh;
        expect(vgpu_quic_decode_header(s, 24, &t, &hw, &hh) == (int)verdicts[k], "quic head", (int)k, 0);
        expect(vgpu_quic_decode(s, 24, out, 64, 4, 4) == verdicts[k], "quic head decode", (int)k, 0);
        for (size_t n = 0; n < 24; n++) {
            expect(vgpu_quic_decode_header(s, n, &t, &hw, &hh) == VGPU_DEC_ERR_TRUNCATED,
                   "quic short head", (int)n, 0);
        }
        free(s);
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
        quic_noise_case();
    }
    printf("%d cases, %d failures\n", cases, failures);
    return failures != 0;
}
