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

#define QUIC_MAGIC 0x43495551u /* "QUIC" */
#define QUIC_VERSION 0u
#define QUIC_TYPE_RGB32 4u
#define HEADER_WORDS 5u

#define BPC 8               /* bits per colour sample */
#define NCODES 8            /* Golomb parameters 0..7 */
#define NBUCKETS 8          /* contexts per channel for 8 bpc with evol 3 */
#define MAXCLEN 26          /* longest codeword */
#define WMI_MAX 6           /* last wait-mask index */
#define WMI_NEXT 2048       /* pixels between wait-mask widenings */
#define MELC_STATES 32

static const unsigned int melc_len[MELC_STATES] = {
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
    4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15,
};

/* Counter-halving thresholds by wait-mask index (the format's table for
 * evolution speed 3). */
static const unsigned short wm_triggers[11] = {
    110, 550, 900, 800, 550, 400, 350, 250, 140, 160, 140,
};

/* The format's pseudo-random table that spaces out model updates. */
static const uint32_t chaos[256] = {
    0x02c57542, 0x35427717, 0x2f5a2153, 0x9244f155, 0x7bd26d07, 0x354c6052, 0x57329b28, 0x2993868e,
    0x6cd8808c, 0x147b46e0, 0x99db66af, 0xe32b4cac, 0x1b671264, 0x9d433486, 0x62a4c192, 0x06089a4b,
    0x9e3dce44, 0xdaabee13, 0x222425ea, 0xa46f331d, 0xcd589250, 0x8bb81d7f, 0xc8b736b9, 0x35948d33,
    0xd7ac7fd0, 0x5fbe2803, 0x2cfbc105, 0x013dbc4e, 0x7a37820f, 0x39f88e9e, 0xedd58794, 0xc5076689,
    0xfcada5a4, 0x64c2f46d, 0xb3ba3243, 0x8974b4f9, 0x5a05aebd, 0x20afcd00, 0x39e2b008, 0x88a18a45,
    0x600bde29, 0xf3971ace, 0xf37b0a6b, 0x7041495b, 0x70b707ab, 0x06beffbb, 0x4206051f, 0xe13c4ee3,
    0xc1a78327, 0x91aa067c, 0x8295f72a, 0x732917a6, 0x1d871b4d, 0x4048f136, 0xf1840e7e, 0x6a6048c1,
    0x696cb71a, 0x7ff501c3, 0x0fc6310b, 0x57e0f83d, 0x8cc26e74, 0x11a525a2, 0x946934c7, 0x7cd888f0,
    0x8f9d8604, 0x4f86e73b, 0x04520316, 0xdeeea20c, 0xf1def496, 0x67687288, 0xf540c5b2, 0x22401484,
    0x3478658a, 0xc2385746, 0x01979c2c, 0x5dad73c8, 0x0321f58b, 0xf0fedbee, 0x92826ddf, 0x284bec73,
    0x5b1a1975, 0x03df1e11, 0x20963e01, 0xa17cf12b, 0x740d776e, 0xa7a6bf3c, 0x01b5cce4, 0x1118aa76,
    0xfc6fac0a, 0xce927e9b, 0x00bf2567, 0x806f216c, 0xbca69056, 0x795bd3e9, 0xc9dc4557, 0x8929b6c2,
    0x789d52ec, 0x3f3fbf40, 0xb9197368, 0xa38c15b5, 0xc3b44fa8, 0xca8333b0, 0xb7e8d590, 0xbe807feb,
    0xbf5f8360, 0xd99e2f5c, 0x372928e1, 0x7c757c4c, 0x0db5b154, 0xc01ede02, 0x1fc86e78, 0x1f3985be,
    0xb4805c77, 0x00c880fa, 0x974c1b12, 0x35ab0214, 0xb2dc840d, 0x5b00ae37, 0xd313b026, 0xb260969d,
    0x7f4c8879, 0x1734c4d3, 0x49068631, 0xb9f6a021, 0x6b863e6f, 0xcee5debf, 0x29f8c9fb, 0x53dd6880,
    0x72b61223, 0x1f67a9fd, 0x0a0f6993, 0x13e59119, 0x11cca12e, 0xfe6b6766, 0x16b6effc, 0x97918fc4,
    0xc2b8a563, 0x94f2f741, 0x0bfa8c9a, 0xd1537ae8, 0xc1da349c, 0x873c60ca, 0x95005b85, 0x9b5c080e,
    0xbc8abbd9, 0xe1eab1d2, 0x6dac9070, 0x4ea9ebf1, 0xe0cf30d4, 0x1ef5bd7b, 0xd161043e, 0x5d2fa2e2,
    0xff5d3cae, 0x86ed9f87, 0x2aa1daa1, 0xbd731a34, 0x9e8f4b22, 0xb1c2c67a, 0xc21758c9, 0xa182215d,
    0xccb01948, 0x8d168df7, 0x04238cfe, 0x368c3dbc, 0x0aeadca5, 0xbad21c24, 0x0a71fee5, 0x9fc5d872,
    0x54c152c6, 0xfc329483, 0x6783384a, 0xeddb3e1c, 0x65f90e30, 0x884ad098, 0xce81675a, 0x4b372f7d,
    0x68bf9a39, 0x43445f1e, 0x40f8d8cb, 0x90d5acb6, 0x4cd07282, 0x349eeb06, 0x0c9d5332, 0x520b24ef,
    0x80020447, 0x67976491, 0x2f931ca3, 0xfe9b0535, 0xfcd30220, 0x61a9e6cc, 0xa487d8d7, 0x3f7c5dd1,
    0x7d0127c5, 0x48f51d15, 0x60dea871, 0xc9a91cb7, 0x58b53bb3, 0x9d5e0b2d, 0x624a78b4, 0x30dbee1b,
    0x9bdf22e7, 0x1df5c299, 0x2d5643a7, 0xf4dd35ff, 0x03ca8fd6, 0x53b47ed8, 0x6f2c19aa, 0xfeb0c1f4,
    0x49e54438, 0x2f2577e6, 0xbf876969, 0x72440ea9, 0xfa0bafb8, 0x74f5b3a0, 0x7dd357cd, 0x89ce1358,
    0x6ef2cdda, 0x1e7767f3, 0xa6be9fdb, 0x4f5f88f8, 0xba994a3a, 0x08ca6b65, 0xe0893818, 0x9e00a16a,
    0xf42bfc8f, 0x9972eedc, 0x749c8b51, 0x32c05f5e, 0xd706805f, 0x6bfbb7cf, 0xd9210a10, 0x31a1db97,
    0x923a9559, 0x37a7a1f6, 0x059f8861, 0xca493e62, 0x65157e81, 0x8f6467dd, 0xab85ff9f, 0x9331aff2,
    0x8616b9f5, 0xedbd5695, 0xee7e29b1, 0x313ac44f, 0xb903112f, 0x432ef649, 0xdc0a36c0, 0x61cf2bba,
    0x81474925, 0xa8b6c7ad, 0xee5931de, 0xb2f8158d, 0x59fb7409, 0x2e3dfaed, 0x9af25a3f, 0xe1fed4d5,
};

typedef struct {
    uint32_t counters[NCODES]; /* code length each parameter would have cost */
    uint32_t best;             /* the parameter in use */
} Bucket;

typedef struct {
    uint8_t *err;              /* folded errors of the current row, err[-1] valid */
    Bucket buckets[NBUCKETS];
    uint8_t param_of[256];     /* context -> its bucket's parameter, kept in step */
} Channel;

typedef struct {
    /* Golomb-Rice code per folded value and parameter: code bits and length. */
    uint8_t len[256][NCODES];
    uint32_t codeword[256][NCODES]; /* len << 16 | code (codes are under 2^9) */
    uint8_t fold[256];         /* signed error (mod 256) -> 0, -1, 1, -2, ... order */
    uint8_t bucket_of[256];    /* context: folded error -> bucket index */

    uint64_t acc;              /* pending bits, right-aligned */
    unsigned int nacc;         /* how many */
    uint8_t *o, *end;
    int overflow;

    unsigned int waitcnt, seed, wm_trigger, wmidx, wmileft;
    unsigned int melc_state, melc_len, melc_order;
    Channel ch[3];             /* r, g, b: the format's order */
} Quic;

static void tables_init(Quic *q)
{
    for (unsigned int l = 0; l < NCODES; l++) {
        /* Values below n_gr get a plain Golomb-Rice code; the rest an escape:
         * prefix zeros then a fixed-length suffix, so no code exceeds MAXCLEN. */
        unsigned int prefix = MAXCLEN - BPC;
        const unsigned int cap = (1u << (BPC - l)) - 1;
        if (prefix > cap) {
            prefix = cap;
        }
        const unsigned int n_gr = prefix << l;
        const unsigned int alt = 256 - n_gr;
        unsigned int suffix = 0;
        while ((1u << suffix) < alt) {
            suffix++;
        }
        for (unsigned int n = 0; n < 256; n++) {
            if (n < n_gr) {
                q->len[n][l] = (uint8_t)((n >> l) + l + 1);
                q->codeword[n][l] = (1u << l) | (n & ((1u << l) - 1));
            } else {
                q->len[n][l] = (uint8_t)(prefix + suffix);
                q->codeword[n][l] = n - n_gr;
            }
            q->codeword[n][l] |= (uint32_t)q->len[n][l] << 16;
        }
    }
    for (unsigned int s = 0; s < 256; s++) {
        q->fold[s] = (uint8_t)(s < 128 ? s << 1 : ((255 - s) << 1) + 1);
        /* Buckets hold 1, 2, 4, ... 64 contexts, the last one the rest. */
        unsigned int b = 31u - (unsigned int)__builtin_clz(s + 1);
        q->bucket_of[s] = (uint8_t)(b < NBUCKETS ? b : NBUCKETS - 1);
    }
}

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

static inline uint32_t next_rand(Quic *q)
{
    return chaos[++q->seed & 0xff];
}

static void set_trigger(Quic *q)
{
    q->wm_trigger = wm_triggers[q->wmidx > 10 ? 10 : q->wmidx];
}

static void encode_run(Quic *q, unsigned int runlen)
{
    unsigned int hits = 0;
    while (runlen >= q->melc_order) {
        hits++;
        runlen -= q->melc_order;
        if (q->melc_state < MELC_STATES - 1) {
            q->melc_len = melc_len[++q->melc_state];
            q->melc_order = 1u << q->melc_len;
        }
    }
    put_ones(q, hits);
    put_bits(q, runlen, q->melc_len + 1);
    if (q->melc_state) {
        q->melc_len = melc_len[--q->melc_state];
        q->melc_order = 1u << q->melc_len;
    }
}

/* Contexts of bucket b: [2^b - 1, 2^(b+1) - 2], the last bucket up to 255. */
static inline void bucket_range(unsigned int b, unsigned int *first, unsigned int *count)
{
    *first = (1u << b) - 1;
    *count = b == NBUCKETS - 1 ? 256 - *first : 1u << b;
}

static inline void update_bucket(Quic *q, Channel *ch, unsigned int bi, unsigned int v)
{
    Bucket *b = &ch->buckets[bi];
    uint32_t best_len = (b->counters[NCODES - 1] += q->len[v][NCODES - 1]);
    unsigned int best = NCODES - 1;
    for (int l = NCODES - 2; l >= 0; l--) {
        const uint32_t c = (b->counters[l] += q->len[v][l]);
        if (c < best_len) {
            best = (unsigned int)l;
            best_len = c;
        }
    }
    if (best != b->best) {
        unsigned int first, count;
        bucket_range(bi, &first, &count);
        memset(ch->param_of + first, (int)best, count);
        b->best = best;
    }
    if (best_len > q->wm_trigger) {
        for (int l = 0; l < NCODES; l++) {
            b->counters[l] >>= 1;
        }
    }
}

/* The model update at pixel i: each channel's context (folded error at i-1)
 * learns the folded error at i. */
static inline void update_model(Quic *q, int i)
{
    for (int c = 0; c < 3; c++) {
        uint8_t *e = q->ch[c].err;
        update_bucket(q, &q->ch[c], q->bucket_of[e[i - 1]], e[i]);
    }
}

/* Channel c of pixel p (B,G,R,X bytes): r is byte 2, g 1, b 0. */
#define SAMPLE(p, c) ((p)[2 - (c)])

static inline void code_value(Quic *q, Channel *ch, int i, unsigned int v)
{
    ch->err[i] = (uint8_t)v;
    const uint32_t cw = q->codeword[v][ch->param_of[ch->err[i - 1]]];
    put_bits(q, cw & 0xffff, cw >> 16);
}

/* Pixel i > 0 of row 0: predicted by its left neighbour. */
static inline void code_row0_pixel(Quic *q, const uint8_t *cur, int i)
{
    const uint8_t *p = cur + 4 * i;
    for (int c = 0; c < 3; c++) {
        code_value(q, &q->ch[c], i, q->fold[(uint8_t)(SAMPLE(p, c) - SAMPLE(p - 4, c))]);
    }
}

/* Pixel i > 0 of a later row: predicted by (left + above) / 2. */
static inline void code_pixel(Quic *q, const uint8_t *prev, const uint8_t *cur, int i)
{
    const uint8_t *p = cur + 4 * i;
    const uint8_t *u = prev + 4 * i;
    for (int c = 0; c < 3; c++) {
        const unsigned int pred = ((unsigned int)SAMPLE(p - 4, c) + SAMPLE(u, c)) >> 1;
        code_value(q, &q->ch[c], i, q->fold[(uint8_t)(SAMPLE(p, c) - pred)]);
    }
}

/* Pixel 0 of a row: predicted by the pixel above (row 0: by zero). */
static inline void code_first_pixel(Quic *q, const uint8_t *prev, const uint8_t *cur)
{
    for (int c = 0; c < 3; c++) {
        const unsigned int pred = prev ? SAMPLE(prev, c) : 0;
        code_value(q, &q->ch[c], 0, q->fold[(uint8_t)(SAMPLE(cur, c) - pred)]);
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
        if (q->waitcnt) {
            q->waitcnt--;
        } else {
            q->waitcnt = next_rand(q) & waitmask;
            update_model(q, 0);
        }
        stop = ++i + (int)q->waitcnt;
    } else {
        stop = i + (int)q->waitcnt;
    }
    if (!prev) {
        while (stop < end) {
            for (; i <= stop; i++) {
                code_row0_pixel(q, cur, i);
            }
            update_model(q, stop);
            stop = i + (int)(next_rand(q) & waitmask);
        }
        for (; i < end; i++) {
            code_row0_pixel(q, cur, i);
        }
        q->waitcnt = (unsigned int)(stop - end);
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
            stop = i + (int)(next_rand(q) & waitmask);
        }
        for (; i < end; i++) {
            if (RUN_PREDICTED(i)) {
                goto run;
            }
            code_pixel(q, prev, cur, i);
        }
        q->waitcnt = (unsigned int)(stop - end);
        return;
#undef RUN_PREDICTED
run:
        run_start = i;
        q->waitcnt = (unsigned int)(stop - i);
        unsigned int run = 0;
        while (same_rgb(cur + 4 * i, cur + 4 * i - 4)) {
            run++;
            if (++i == end) {
                encode_run(q, run);
                return;
            }
        }
        encode_run(q, run);
        stop = i + (int)q->waitcnt;
    }
}

/* One row, cut where the wait mask widens (every WMI_NEXT pixels of the
 * image until WMI_MAX). */
static void code_row(Quic *q, const uint8_t *prev, const uint8_t *cur, unsigned int width)
{
    int pos = 0;
    while (q->wmidx < WMI_MAX && q->wmileft <= width) {
        if (q->wmileft) {
            code_segment(q, prev, cur, pos, pos + (int)q->wmileft, (1u << q->wmidx) - 1);
            width -= q->wmileft;
            pos += (int)q->wmileft;
        }
        q->wmidx++;
        set_trigger(q);
        q->wmileft = WMI_NEXT;
    }
    if (width) {
        code_segment(q, prev, cur, pos, pos + (int)width, (1u << q->wmidx) - 1);
        if (q->wmidx < WMI_MAX) {
            q->wmileft -= width;
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
    return 4 * (HEADER_WORDS + 2) + (size_t)width * (size_t)height * 12 + 16;
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
    tables_init(q);
    q->acc = 0;
    q->nacc = 0;
    q->o = out;
    q->end = out + out_cap;
    q->overflow = 0;
    q->waitcnt = 0;
    q->seed = 0xff;
    q->wmidx = 0;
    q->wmileft = WMI_NEXT;
    set_trigger(q);
    q->melc_state = 0;
    q->melc_len = melc_len[0];
    q->melc_order = 1u << q->melc_len;
    for (int c = 0; c < 3; c++) {
        q->ch[c].err = rows + (size_t)c * ((size_t)width + 1) + 1;
        for (int b = 0; b < NBUCKETS; b++) {
            memset(q->ch[c].buckets[b].counters, 0, sizeof(q->ch[c].buckets[b].counters));
            q->ch[c].buckets[b].best = BPC - 1;
        }
        memset(q->ch[c].param_of, BPC - 1, sizeof(q->ch[c].param_of));
    }

    const uint32_t header[HEADER_WORDS] = {QUIC_MAGIC, QUIC_VERSION, QUIC_TYPE_RGB32,
                                           (uint32_t)width, (uint32_t)height};
    for (unsigned int k = 0; k < HEADER_WORDS; k++) {
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
