/* SPICE QUIC encoder, image type RGB32 (spice-common's quic.c decodes it, and
 * so does spice-html5's quic.js).
 *
 * QUIC is SFALIC: every colour sample is predicted (left neighbour on row 0,
 * (left + above) / 2 below it), the error is folded to a non-negative value
 * and written as an adaptive Golomb-Rice code chosen per context (the bucket
 * of the previous folded error, same channel).  Bucket statistics are updated
 * only at pseudo-random positions ("wait mask", widened as the image goes
 * on), and runs of pixels equal to their left neighbour are coded with an
 * adaptive run-length (MELCODE) code when the row above predicts them.
 * The decoder mirrors the model, so every choice below -- the order of
 * channels (r, g, b), the random table and seed, the bucket layout, the
 * update schedule, which folded error a context reads after a run -- is part
 * of the format and must match bit for bit.
 *
 * The bit stream is MSB-first within 32-bit words stored little-endian; we
 * keep up to 64 pending bits in an accumulator and store whole words. */
#include <stdlib.h>
#include <string.h>

#include "encode_common.h"
#include "quic_model.h"

#define BPC 8               /* RGB32 is coded with the 8-bit family */

typedef struct {
    QuicFamily fam;
    uint64_t acc;              /* pending bits, right-aligned */
    unsigned int nacc;         /* how many */
    uint8_t *o, *end;
    int overflow;
    QuicState st;
    QuicChannel ch[3];         /* r, g, b: the format's order */
} Quic;

static inline void put_bits(Quic *q, uint32_t word, unsigned int len)
{
    q->acc = (q->acc << len) | word;
    q->nacc += len;
    if (q->nacc >= 32) {
        q->nacc -= 32;
        const uint32_t w = (uint32_t)(q->acc >> q->nacc);
        if (q->end - q->o >= 4) {
            q->o[0] = (uint8_t)w;
            q->o[1] = (uint8_t)(w >> 8);
            q->o[2] = (uint8_t)(w >> 16);
            q->o[3] = (uint8_t)(w >> 24);
            q->o += 4;
        } else {
            q->overflow = 1;
        }
    }
}

static inline void put_ones(Quic *q, unsigned int n)
{
    for (; n >= 16; n -= 16) {
        put_bits(q, 0xffff, 16);
    }
    if (n) {
        put_bits(q, (1u << n) - 1, n);
    }
}

static void encode_run(Quic *q, unsigned int runlen)
{
    unsigned int hits = 0;
    while (runlen >= q->st.melc_order) {
        hits++;
        runlen -= q->st.melc_order;
        quic_melc_up(&q->st);
    }
    put_ones(q, hits);
    put_bits(q, runlen, q->st.melc_len + 1);
    quic_melc_down(&q->st);
}

/* The model update at pixel i: each channel's context (folded error at i-1)
 * learns the folded error at i. */
static inline void update_model(Quic *q, int i)
{
    for (int c = 0; c < 3; c++) {
        uint8_t *e = q->ch[c].err;
        quic_update_bucket(&q->fam, q->st.wm_trigger, &q->ch[c], e[i - 1], e[i]);
    }
}

/* Channel c of pixel p (B,G,R,X bytes): r is byte 2, g 1, b 0. */
#define SAMPLE(p, c) ((p)[2 - (c)])

static inline void code_value(Quic *q, QuicChannel *ch, int i, unsigned int v)
{
    ch->err[i] = (uint8_t)v;
    const uint32_t cw = q->fam.codeword[v][ch->param_of[ch->err[i - 1]]];
    put_bits(q, cw & 0xffff, cw >> 16);
}

/* Pixel i > 0 of row 0: predicted by its left neighbour. */
static inline void code_row0_pixel(Quic *q, const uint8_t *cur, int i)
{
    const uint8_t *p = cur + 4 * i;
    for (int c = 0; c < 3; c++) {
        code_value(q, &q->ch[c], i, q->fam.fold[(uint8_t)(SAMPLE(p, c) - SAMPLE(p - 4, c))]);
    }
}

/* Pixel i > 0 of a later row: predicted by (left + above) / 2. */
static inline void code_pixel(Quic *q, const uint8_t *prev, const uint8_t *cur, int i)
{
    const uint8_t *p = cur + 4 * i;
    const uint8_t *u = prev + 4 * i;
    for (int c = 0; c < 3; c++) {
        const unsigned int pred = ((unsigned int)SAMPLE(p - 4, c) + SAMPLE(u, c)) >> 1;
        code_value(q, &q->ch[c], i, q->fam.fold[(uint8_t)(SAMPLE(p, c) - pred)]);
    }
}

/* Pixel 0 of a row: predicted by the pixel above (row 0: by zero). */
static inline void code_first_pixel(Quic *q, const uint8_t *prev, const uint8_t *cur)
{
    for (int c = 0; c < 3; c++) {
        const unsigned int pred = prev ? SAMPLE(prev, c) : 0;
        code_value(q, &q->ch[c], 0, q->fam.fold[(uint8_t)(SAMPLE(cur, c) - pred)]);
    }
}

static inline int same_rgb(const uint8_t *a, const uint8_t *b)
{
    uint32_t x, y;
    memcpy(&x, a, 4);
    memcpy(&y, b, 4);
    return !((x ^ y) & 0x00ffffffu);
}

/* Pixels [i, end) of a row with one wait mask; prev is NULL on row 0 (which
 * has no run mode). */
static void code_segment(Quic *q, const uint8_t *prev, const uint8_t *cur, int i, int end,
                         unsigned int waitmask)
{
    int stop;
    int run_start = 0;
    if (i == 0) {
        code_first_pixel(q, prev, cur);
        if (q->st.waitcnt) {
            q->st.waitcnt--;
        } else {
            q->st.waitcnt = quic_next_rand(&q->st) & waitmask;
            update_model(q, 0);
        }
        stop = ++i + (int)q->st.waitcnt;
    } else {
        stop = i + (int)q->st.waitcnt;
    }
    if (!prev) {
        while (stop < end) {
            for (; i <= stop; i++) {
                code_row0_pixel(q, cur, i);
            }
            update_model(q, stop);
            stop = i + (int)(quic_next_rand(&q->st) & waitmask);
        }
        for (; i < end; i++) {
            code_row0_pixel(q, cur, i);
        }
        q->st.waitcnt = (unsigned int)(stop - end);
        return;
    }
    for (;;) {
        /* A run starts where the row above repeats its left pixel and the
         * two pixels to our left are equal (never twice at one place). */
#define RUN_PREDICTED(i) \
    (i > 2 && i != run_start && same_rgb(prev + 4 * (i) - 4, prev + 4 * (i)) \
     && same_rgb(cur + 4 * (i) - 4, cur + 4 * (i) - 8))
        while (stop < end) {
            for (; i <= stop; i++) {
                if (RUN_PREDICTED(i)) {
                    goto run;
                }
                code_pixel(q, prev, cur, i);
            }
            update_model(q, stop);
            stop = i + (int)(quic_next_rand(&q->st) & waitmask);
        }
        for (; i < end; i++) {
            if (RUN_PREDICTED(i)) {
                goto run;
            }
            code_pixel(q, prev, cur, i);
        }
        q->st.waitcnt = (unsigned int)(stop - end);
        return;
#undef RUN_PREDICTED
run:
        run_start = i;
        q->st.waitcnt = (unsigned int)(stop - i);
        unsigned int run = 0;
        while (same_rgb(cur + 4 * i, cur + 4 * i - 4)) {
            run++;
            if (++i == end) {
                encode_run(q, run);
                return;
            }
        }
        encode_run(q, run);
        stop = i + (int)q->st.waitcnt;
    }
}

/* One row, cut where the wait mask widens (every QUIC_WMI_NEXT pixels of the
 * image until QUIC_WMI_MAX). */
static void code_row(Quic *q, const uint8_t *prev, const uint8_t *cur, unsigned int width)
{
    int pos = 0;
    while (q->st.wmidx < QUIC_WMI_MAX && q->st.wmileft <= width) {
        if (q->st.wmileft) {
            code_segment(q, prev, cur, pos, pos + (int)q->st.wmileft, (1u << q->st.wmidx) - 1);
            width -= q->st.wmileft;
            pos += (int)q->st.wmileft;
        }
        q->st.wmidx++;
        quic_set_trigger(&q->st);
        q->st.wmileft = QUIC_WMI_NEXT;
    }
    if (width) {
        code_segment(q, prev, cur, pos, pos + (int)width, (1u << q->st.wmidx) - 1);
        if (q->st.wmidx < QUIC_WMI_MAX) {
            q->st.wmileft -= width;
        }
    }
}

size_t vgpu_quic_bound(int width, int height)
{
    if (!dims_ok(width, height)) {
        return 0;
    }
    /* Per pixel at most three MAXCLEN codes, one zero-length run code
     * (16 bits) and one run "hit" bit: under 96 bits. */
    return 4 * (QUIC_HEADER_WORDS + 2) + (size_t)width * (size_t)height * 12 + 16;
}

long vgpu_quic_encode_rgb32(const uint8_t *pixels, ptrdiff_t stride, int width, int height,
                            uint8_t *out, size_t out_cap)
{
    if (!frame_ok(pixels, stride, width, height) || !out
        || out_cap < vgpu_quic_bound(width, height)) {
        return VGPU_ENC_ERR_ARGS;
    }
    Quic *q = malloc(sizeof(Quic));
    uint8_t *rows = calloc(3, (size_t)width + 1);
    if (!q || !rows) {
        free(q);
        free(rows);
        return VGPU_ENC_ERR_NOMEM;
    }
    quic_family_init(&q->fam, BPC);
    q->acc = 0;
    q->nacc = 0;
    q->o = out;
    q->end = out + out_cap;
    q->overflow = 0;
    quic_state_init(&q->st);
    for (int c = 0; c < 3; c++) {
        q->ch[c].err = rows + (size_t)c * ((size_t)width + 1) + 1;
        quic_channel_reset(&q->ch[c], &q->fam);
    }

    const uint32_t header[QUIC_HEADER_WORDS] = {QUIC_MAGIC, QUIC_VERSION, VGPU_QUIC_TYPE_RGB32,
                                                (uint32_t)width, (uint32_t)height};
    for (unsigned int k = 0; k < QUIC_HEADER_WORDS; k++) {
        put_bits(q, header[k] >> 16, 16);
        put_bits(q, header[k] & 0xffff, 16);
    }
    const uint8_t *prev = NULL;
    for (int y = 0; y < height; y++) {
        const uint8_t *cur = pixels + (ptrdiff_t)y * stride;
        for (int c = 0; c < 3; c++) {
            /* Each row's first context is the folded error that began the
             * row above (0 on row 0). */
            q->ch[c].err[-1] = y ? q->ch[c].err[0] : 0;
        }
        code_row(q, prev, cur, (unsigned int)width);
        prev = cur;
    }
    /* Close the last word, then one more zero word: the decoder reads ahead. */
    if (q->nacc) {
        put_bits(q, 0, 32 - q->nacc);
    }
    put_bits(q, 0, 16);
    put_bits(q, 0, 16);
    const long n = (long)(q->o - out);
    const int overflow = q->overflow;
    free(rows);
    free(q);
    return overflow ? VGPU_ENC_ERR_SPACE : n;
}
