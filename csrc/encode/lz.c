/* SPICE LZ encoder, image types RGB32 and RGBA.
 *
 * Stream format (what spice-common's lz decoder and spice-html5's lz.js
 * read): seven big-endian u32 header words (magic "LZ  ", version 1.1, type,
 * width, height, stride, top_down), then byte-oriented ops over the image as
 * one run of width*height pixels:
 *   ctrl < 32: ctrl+1 literal pixels follow (B,G,R bytes each; the alpha
 *              pass writes one alpha byte each);
 *   ctrl >= 32: a copy from `distance` pixels back.  Length code = ctrl>>5
 *              (7 means: add following bytes until one is not 255); the
 *              distance-1 is (ctrl&31)<<8 | next byte, unless that reads
 *              31/255, in which case two more big-endian bytes hold
 *              distance-1-8191 (a "far" copy).  The pixel count is the length
 *              code for RGB32 and the length code + 2 for the alpha pass.
 * RGBA is the RGB32 stream followed by a second stream over the alpha bytes.
 *
 * Our own match finder: at each position the best of three candidates, a
 * run of the previous pixel, the pixel one row above (desktop content
 * repeats vertically) and a hash table of pixel pairs; matches are extended
 * eight pixels per step with masked 64-bit compares. */
#include <stdlib.h>
#include <string.h>

#include "encode_common.h"

#define LZ_MAGIC 0x20205a4cu
#define LZ_VERSION 0x00010001u
#define LZ_TYPE_RGB32 8u
#define LZ_TYPE_RGBA 9u
#define LZ_HEADER_BYTES 28u

#define MAX_LITERALS 32u         /* ctrl 0..31 */
#define NEAR_LIMIT 8191u         /* distance-1 below this: 2-byte form */
#define FAR_LIMIT (8191u + 65535u) /* distance-1 up to this: 4-byte form */

/* Hash of two consecutive pixels: 2^HASH_BITS slots of pixel positions.
 * 64 Ki slots (256 KiB) cover a 1080p frame well; small images get fewer so
 * that clearing the table does not dominate. */
#define HASH_BITS_MAX 16
#define HASH_BITS_MIN 8

/* A run or a match this long is taken at once without trying the others:
 * it is already within a few percent of the best encoding. */
#define GOOD_ENOUGH 32u

/* Room one op may need beyond its counted bytes (a 4-byte pixel store that
 * writes 3 bytes). */
#define OUT_SLACK 8u

static inline uint32_t load32(const uint32_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t load64(const uint32_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Number of leading pixels equal under mask in a[] and b[], at most max. */
static inline size_t match_len(const uint32_t *a, const uint32_t *b, size_t max, uint32_t mask)
{
    const uint64_t m64 = ((uint64_t)mask << 32) | mask;
    size_t i = 0;
    while (i + 8 <= max) {
        uint64_t d0 = (load64(a + i) ^ load64(b + i)) & m64;
        uint64_t d1 = (load64(a + i + 2) ^ load64(b + i + 2)) & m64;
        uint64_t d2 = (load64(a + i + 4) ^ load64(b + i + 4)) & m64;
        uint64_t d3 = (load64(a + i + 6) ^ load64(b + i + 6)) & m64;
        if (d0 | d1 | d2 | d3) {
            if (d0) {
                return i + (__builtin_ctzll(d0) >= 32);
            }
            if (d1) {
                return i + 2 + (__builtin_ctzll(d1) >= 32);
            }
            if (d2) {
                return i + 4 + (__builtin_ctzll(d2) >= 32);
            }
            return i + 6 + (__builtin_ctzll(d3) >= 32);
        }
        i += 8;
    }
    while (i < max && !((load32(a + i) ^ load32(b + i)) & mask)) {
        i++;
    }
    return i;
}

static inline uint32_t hash2(uint32_t p0, uint32_t p1, uint32_t mask, int bits)
{
    uint64_t k = ((uint64_t)(p1 & mask) << 32) | (p0 & mask);
    return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

typedef struct {
    uint8_t *o;
    uint8_t *end;
} Out;

/* Literal pixels px[from..to) in chunks of MAX_LITERALS. */
static inline int emit_literals(Out *out, const uint32_t *px, size_t from, size_t to, int alpha)
{
    while (from < to) {
        size_t cnt = to - from < MAX_LITERALS ? to - from : MAX_LITERALS;
        if ((size_t)(out->end - out->o) < 1 + cnt * 4 + OUT_SLACK) {
            return 0;
        }
        uint8_t *o = out->o;
        *o++ = (uint8_t)(cnt - 1);
        if (alpha) {
            for (size_t k = 0; k < cnt; k++) {
                *o++ = (uint8_t)(load32(px + from + k) >> 24);
            }
        } else {
            for (size_t k = 0; k < cnt; k++) {
                uint32_t v = load32(px + from + k);
                memcpy(o, &v, 4); /* B,G,R (+ a byte the next store overwrites) */
                o += 3;
            }
        }
        out->o = o;
        from += cnt;
    }
    return 1;
}

/* A copy of len pixels from dist pixels back; len_code is what the stream
 * carries (len for RGB32, len-2 for alpha). */
static inline int emit_match(Out *out, size_t len_code, size_t dist)
{
    size_t d = dist - 1;
    if ((size_t)(out->end - out->o) < 5 + len_code / 255 + OUT_SLACK) {
        return 0;
    }
    uint8_t *o = out->o;
    const int far = d >= NEAR_LIMIT;
    const uint32_t hi = far ? 31u : (uint32_t)(d >> 8);
    if (len_code < 7) {
        *o++ = (uint8_t)((len_code << 5) | hi);
    } else {
        *o++ = (uint8_t)((7u << 5) | hi);
        size_t rest = len_code - 7;
        if (rest >= 255) {
            memset(o, 255, rest / 255);
            o += rest / 255;
            rest %= 255;
        }
        *o++ = (uint8_t)rest;
    }
    if (far) {
        d -= NEAR_LIMIT;
        *o++ = 255;
        *o++ = (uint8_t)(d >> 8);
        *o++ = (uint8_t)d;
    } else {
        *o++ = (uint8_t)d;
    }
    out->o = o;
    return 1;
}

/* One pass over n pixels (RGB when !alpha, the alpha bytes when alpha).
 * width is the image width, for the row-above candidate. */
static inline __attribute__((always_inline)) int
lz_pass(Out *out, const uint32_t *px, size_t n, size_t width, uint32_t *htab, int hbits,
        const int alpha)
{
    const uint32_t mask = alpha ? 0xff000000u : 0x00ffffffu;
    /* Shortest copy worth its bytes: 2 pixels (6 literal bytes) for RGB;
     * 3 (the format's minimum) for alpha, 5 for an alpha far copy. */
    const size_t min_len = alpha ? 3 : 2;
    const size_t min_far = alpha ? 5 : 2;
    size_t lit = 0; /* first pixel not yet emitted */
    size_t i = 1;   /* pixel 0 has nothing to refer to */

    while (i + min_len <= n) {
        const size_t max = n - i;
        size_t best = 0, best_dist = 0;
        const uint32_t cur = load32(px + i);

        if (!((cur ^ load32(px + i - 1)) & mask)) {
            best = 1 + match_len(px + i + 1, px + i, max - 1, mask);
            best_dist = 1;
        }
        if (best < GOOD_ENOUGH && i >= width && width > 1
            && !((cur ^ load32(px + i - width)) & mask)) {
            size_t l = 1 + match_len(px + i + 1, px + i - width + 1, max - 1, mask);
            if (l > best) {
                best = l;
                best_dist = width;
            }
        }
        const uint32_t h = hash2(cur, load32(px + i + 1), mask, hbits);
        if (best < GOOD_ENOUGH) {
            const size_t ref = htab[h];
            const size_t dist = i - ref;
            if (ref < i && dist - 1 <= FAR_LIMIT && dist != best_dist
                && !((cur ^ load32(px + ref)) & mask)) {
                size_t l = 1 + match_len(px + i + 1, px + ref + 1, max - 1, mask);
                if (l > best && (dist - 1 < NEAR_LIMIT || l >= min_far)) {
                    best = l;
                    best_dist = dist;
                }
            }
        }
        htab[h] = (uint32_t)i;

        if (best < min_len) {
            i++;
            continue;
        }
        if (!emit_literals(out, px, lit, i, alpha)
            || !emit_match(out, alpha ? best - 2 : best, best_dist)) {
            return 0;
        }
        i += best;
        lit = i;
        /* Remember the match's tail so the next repeat of it is found. */
        if (i + 1 < n && best > 2) {
            htab[hash2(load32(px + i - 2), load32(px + i - 1), mask, hbits)] = (uint32_t)(i - 2);
        }
    }
    return emit_literals(out, px, lit, n, alpha);
}

size_t vgpu_lz_bound(int width, int height, int with_alpha)
{
    if (!dims_ok(width, height)) {
        return 0;
    }
    const size_t n = (size_t)width * (size_t)height;
    const size_t ctrl = (n + MAX_LITERALS - 1) / MAX_LITERALS;
    size_t bound = LZ_HEADER_BYTES + 3 * n + ctrl + OUT_SLACK;
    if (with_alpha) {
        bound += n + ctrl;
    }
    /* emit_* insist on OUT_SLACK plus their worst case before writing. */
    return bound + 4 * MAX_LITERALS + 64;
}

long vgpu_lz_encode(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                    int with_alpha, uint8_t *out, size_t out_cap)
{
    if (!frame_ok(pixels, stride, width, height) || !out
        || out_cap < vgpu_lz_bound(width, height, with_alpha)) {
        return VGPU_ENC_ERR_ARGS;
    }
    const size_t n = (size_t)width * (size_t)height;
    const size_t row_bytes = (size_t)width * 4;
    const uint32_t *px = (const uint32_t *)(const void *)pixels;
    uint32_t *packed = NULL;
    if ((size_t)stride != row_bytes && height > 1) {
        /* The stream numbers pixels as one run of width*height: pack the
         * rows so that matches may cross row ends. */
        packed = malloc(n * 4);
        if (!packed) {
            return VGPU_ENC_ERR_NOMEM;
        }
        for (int y = 0; y < height; y++) {
            memcpy((uint8_t *)packed + (size_t)y * row_bytes, pixels + (ptrdiff_t)y * stride,
                   row_bytes);
        }
        px = packed;
    }
    int hbits = HASH_BITS_MIN;
    while (hbits < HASH_BITS_MAX && ((size_t)1 << hbits) < n) {
        hbits++;
    }
    uint32_t *htab = calloc((size_t)1 << hbits, sizeof(uint32_t));
    if (!htab) {
        free(packed);
        return VGPU_ENC_ERR_NOMEM;
    }

    Out o = {out, out + out_cap};
    const uint32_t words[7] = {LZ_MAGIC, LZ_VERSION, with_alpha ? LZ_TYPE_RGBA : LZ_TYPE_RGB32,
                               (uint32_t)width, (uint32_t)height, (uint32_t)row_bytes, 1u};
    for (int k = 0; k < 7; k++) {
        put_be32(o.o, words[k]);
        o.o += 4;
    }
    int ok = lz_pass(&o, px, n, (size_t)width, htab, hbits, 0);
    if (ok && with_alpha) {
        memset(htab, 0, sizeof(uint32_t) << hbits);
        ok = lz_pass(&o, px, n, (size_t)width, htab, hbits, 1);
    }
    free(htab);
    free(packed);
    return ok ? (long)(o.o - out) : VGPU_ENC_ERR_SPACE;
}
