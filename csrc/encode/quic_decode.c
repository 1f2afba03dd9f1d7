/* SPICE QUIC decoder for the image types a guest's QXL driver may send and a
 * SPICE canvas shows: RGB32, RGB24 (the same code with another label),
 * RGB16 (5-bit samples, widened to 8 bits by bit replication) and RGBA (RGB,
 * then per row the alpha plane coded as a channel of its own with its own
 * update schedule and run state).  GRAY is refused, as spice-common's canvas
 * refuses it.
 *
 * The stream is guest memory: every read goes through the bit reader, which
 * never loads past the last whole 32-bit word and flags the stream truncated
 * at the point where spice-common's decoder would run out of words (its
 * 32-bit look-ahead window passing the end).  Work is bounded by the output:
 * each pixel decodes at most one code per channel and each run is checked
 * against the pixels left in its row, so no input makes it loop longer. */
#include <stdlib.h>
#include <string.h>

#include "encode_common.h"
#include "quic_model.h"

typedef struct {
    const uint8_t *in;
    size_t nwords;             /* whole 32-bit words in the stream */
    size_t next;               /* index of the next word to load */
    uint64_t bits;             /* upcoming bits, MSB first from bit 63 */
    unsigned int have;         /* how many of them are loaded (32..63) */
    int truncated;
} Reader;

static inline void load_word(Reader *r)
{
    uint32_t w = 0;
    if (r->next < r->nwords) {
        const uint8_t *p = r->in + 4 * r->next;
        w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    } else {
        r->truncated = 1;
    }
    r->next++;
    r->bits |= (uint64_t)w << (32 - r->have);
    r->have += 32;
}

/* The next 32 bits of the stream (always loaded). */
static inline uint32_t peek32(const Reader *r)
{
    return (uint32_t)(r->bits >> 32);
}

static inline void eat(Reader *r, unsigned int len)
{
    r->bits <<= len;
    r->have -= len;
    if (r->have < 32) {
        load_word(r);
    }
}

static inline uint32_t read32(Reader *r)
{
    const uint32_t v = peek32(r);
    eat(r, 16);
    eat(r, 16);
    return v;
}

/* Channels decoded together: their shared state, and per channel the model
 * and the current and previous rows of samples (bpc-bit values). */
typedef struct {
    QuicState st;
    unsigned int n;
    QuicChannel ch[3];
    uint8_t *cur[3], *prev[3];
} Group;

typedef struct {
    Reader rd;
    QuicFamily fam;
    int corrupt;
} Dec;

#define INLINE static inline __attribute__((always_inline))
/* Channel loops unrolled: n is 3 or 1 where they are compiled, and unrolled
 * they keep each channel's row pointers in registers. */
#define UNROLL_CHANNELS _Pragma("GCC unroll 3")

/* A segment's working set, in locals: every row write is a byte store, which
 * the compiler must assume may alias anything reachable through memory, so
 * the reader, state and row pointers live here, not behind d and g. */
typedef struct {
    Reader rd;
    QuicState st;
    const QuicFamily *f;
    QuicChannel *ch[3];
    uint8_t *err[3], *cur[3], *prev[3];
} Seg;

/* The folded error of channel c at pixel i, coded with the parameter of the
 * context at i - 1. */
INLINE unsigned int decode_value(Seg *s, unsigned int c, int i)
{
    const QuicFamily *f = s->f;
    const unsigned int l = s->ch[c]->param_of[s->err[c][i - 1] & f->mask];
    const uint32_t bits = peek32(&s->rd);
    unsigned int len, v;
    if (bits > f->gr_min[l]) {
        const unsigned int zeros = (unsigned int)__builtin_clz(bits);
        len = zeros + 1 + l;
        v = zeros << l | ((bits >> (32 - len)) & ((1u << l) - 1));
    } else {
        len = f->esc_len[l];
        v = f->n_gr[l] + ((bits >> (32 - len)) & f->esc_suffix_mask[l]);
    }
    eat(&s->rd, len);
    v &= 0xff; /* an escape past the last level wraps, as in spice-common */
    s->err[c][i] = (uint8_t)v;
    return v;
}

INLINE void update_model(Seg *s, unsigned int n, int i)
{
    UNROLL_CHANNELS
    for (unsigned int c = 0; c < n; c++) {
        quic_update_bucket(s->f, s->st.wm_trigger, s->ch[c], s->err[c][i - 1], s->err[c][i]);
    }
}

/* Pixel 0 of a row: predicted by the pixel above (row 0: the value is the
 * unfolded error itself). */
INLINE void first_pixel(Seg *s, unsigned int n, int row0)
{
    UNROLL_CHANNELS
    for (unsigned int c = 0; c < n; c++) {
        const unsigned int e = s->f->unfold[decode_value(s, c, 0)];
        s->cur[c][0] = (uint8_t)(row0 ? e : (e + s->prev[c][0]) & s->f->mask);
    }
}

INLINE void pixel(Seg *s, unsigned int n, int row0, int i)
{
    UNROLL_CHANNELS
    for (unsigned int c = 0; c < n; c++) {
        const unsigned int e = s->f->unfold[decode_value(s, c, i)];
        const uint8_t *cur = s->cur[c];
        const unsigned int pred = row0 ? cur[i - 1] : ((unsigned int)cur[i - 1] + s->prev[c][i]) >> 1;
        s->cur[c][i] = (uint8_t)((e + pred) & s->f->mask);
    }
}

INLINE int same(unsigned int n, uint8_t *const *rows, int a, int b)
{
    UNROLL_CHANNELS
    for (unsigned int c = 0; c < n; c++) {
        if (rows[c][a] != rows[c][b]) {
            return 0;
        }
    }
    return 1;
}

/* A MELCODE run length, at most limit (the pixels left in the segment);
 * -1 for a longer one or one that runs off the stream. */
INLINE long decode_run(Seg *s, unsigned int limit)
{
    QuicState *st = &s->st;
    unsigned long run = 0;
    for (;;) {
        /* leading ones of the next byte: one full block each */
        const unsigned int ones = (unsigned int)__builtin_clz(~peek32(&s->rd) | 0x00ffffffu);
        for (unsigned int k = 0; k < ones; k++) {
            run += st->melc_order;
            quic_melc_up(st);
        }
        if (run > limit || s->rd.truncated) {
            return -1;
        }
        if (ones < 8) {
            eat(&s->rd, ones + 1);
            break;
        }
        eat(&s->rd, 8);
    }
    if (st->melc_len) {
        run += peek32(&s->rd) >> (32 - st->melc_len);
        eat(&s->rd, st->melc_len);
    }
    quic_melc_down(st);
    return run > limit ? -1 : (long)run;
}

/* Pixels [i, end) of a row with one wait mask; 0, or -1 for a corrupt run. */
INLINE int segment(Seg *s, unsigned int n, int row0, int i, int end, unsigned int waitmask)
{
    QuicState *st = &s->st;
    int stop;
    int run_start = 0;
    if (i == 0) {
        first_pixel(s, n, row0);
        if (st->waitcnt) {
            st->waitcnt--;
        } else {
            st->waitcnt = quic_next_rand(st) & waitmask;
            update_model(s, n, 0);
        }
        stop = ++i + (int)st->waitcnt;
    } else {
        stop = i + (int)st->waitcnt;
    }
    if (row0) {
        while (stop < end) {
            for (; i <= stop; i++) {
                pixel(s, n, 1, i);
            }
            update_model(s, n, stop);
            stop = i + (int)(quic_next_rand(st) & waitmask);
        }
        for (; i < end; i++) {
            pixel(s, n, 1, i);
        }
        st->waitcnt = (unsigned int)(stop - end);
        return 0;
    }
    for (;;) {
        /* The encoder starts a run where the row above repeats its left pixel
         * and the two decoded pixels to our left are equal. */
#define RUN_PREDICTED(i) \
    ((i) > 2 && (i) != run_start && same(n, s->prev, (i) - 1, (i)) \
     && same(n, s->cur, (i) - 1, (i) - 2))
        while (stop < end) {
            for (; i <= stop; i++) {
                if (RUN_PREDICTED(i)) {
                    goto run;
                }
                pixel(s, n, 0, i);
            }
            update_model(s, n, stop);
            stop = i + (int)(quic_next_rand(st) & waitmask);
        }
        for (; i < end; i++) {
            if (RUN_PREDICTED(i)) {
                goto run;
            }
            pixel(s, n, 0, i);
        }
        st->waitcnt = (unsigned int)(stop - end);
        return 0;
#undef RUN_PREDICTED
run:
        st->waitcnt = (unsigned int)(stop - i);
        run_start = i;
        const long len = decode_run(s, (unsigned int)(end - i));
        if (len < 0) {
            return -1;
        }
        UNROLL_CHANNELS
        for (unsigned int c = 0; c < n; c++) { /* the run repeats the pixel on its left */
            memset(s->cur[c] + i, s->cur[c][i - 1], (size_t)len);
        }
        i += (int)len;
        if (i == end) {
            return 0;
        }
        stop = i + (int)st->waitcnt;
    }
}

/* One row of a group, cut where the wait mask widens. */
INLINE void row_of(Dec *d, Group *g, unsigned int n, int row0, unsigned int width)
{
    Seg s;
    s.rd = d->rd;
    s.st = g->st;
    s.f = &d->fam;
    for (unsigned int c = 0; c < n; c++) {
        s.ch[c] = &g->ch[c];
        s.err[c] = g->ch[c].err;
        s.cur[c] = g->cur[c];
        s.prev[c] = g->prev[c];
        /* a row's first context: the folded error that began the row above */
        s.err[c][-1] = row0 ? 0 : s.err[c][0];
    }
    QuicState *st = &s.st;
    int pos = 0, bad = 0;
    while (!bad && st->wmidx < QUIC_WMI_MAX && st->wmileft <= width) {
        if (st->wmileft) {
            bad = segment(&s, n, row0, pos, pos + (int)st->wmileft, (1u << st->wmidx) - 1);
            width -= st->wmileft;
            pos += (int)st->wmileft;
        }
        st->wmidx++;
        quic_set_trigger(st);
        st->wmileft = QUIC_WMI_NEXT;
    }
    if (!bad && width) {
        bad = segment(&s, n, row0, pos, pos + (int)width, (1u << st->wmidx) - 1);
        if (st->wmidx < QUIC_WMI_MAX) {
            st->wmileft -= width;
        }
    }
    d->rd = s.rd;
    g->st = s.st;
    d->corrupt |= bad;
}

/* The row functions, each compiled for its channel count (row 0 has a loop
 * of its own inside segment()). */
static void rgb_row(Dec *d, Group *g, int row0, unsigned int w) { row_of(d, g, 3, row0, w); }
static void alpha_row(Dec *d, Group *g, int row0, unsigned int w) { row_of(d, g, 1, row0, w); }

static void decode_row(Dec *d, Group *g, int row0, unsigned int width)
{
    (g->n == 3 ? rgb_row : alpha_row)(d, g, row0, width);
}

static void swap_rows(Group *g)
{
    for (unsigned int c = 0; c < g->n; c++) {
        uint8_t *t = g->prev[c];
        g->prev[c] = g->cur[c];
        g->cur[c] = t;
    }
}

static int header(Reader *r, const uint8_t *data, size_t size, int *type, int *width,
                  int *height)
{
    memset(r, 0, sizeof(*r));
    r->in = data;
    r->nwords = size / 4;
    load_word(r);
    const uint32_t magic = read32(r), version = read32(r), t = read32(r);
    const uint32_t w = read32(r), h = read32(r);
    if (r->truncated) {
        return VGPU_DEC_ERR_TRUNCATED;
    }
    if (magic != QUIC_MAGIC || version != QUIC_VERSION) {
        return VGPU_DEC_ERR_HEADER;
    }
    if (t != VGPU_QUIC_TYPE_RGB32 && t != VGPU_QUIC_TYPE_RGB24 && t != VGPU_QUIC_TYPE_RGB16
        && t != VGPU_QUIC_TYPE_RGBA) {
        return VGPU_DEC_ERR_TYPE;
    }
    if (w == 0 || h == 0 || w > VGPU_ENC_MAX_DIM || h > VGPU_ENC_MAX_DIM) {
        return VGPU_DEC_ERR_SIZE;
    }
    *type = (int)t;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

int vgpu_quic_decode_header(const uint8_t *data, size_t size, int *type, int *width,
                            int *height)
{
    if (!data || !type || !width || !height) {
        return VGPU_ENC_ERR_ARGS;
    }
    Reader r;
    return header(&r, data, size, type, width, height);
}

/* Writes a decoded row of samples as B,G,R,X (X = 0) pixels; RGB16's 5-bit
 * samples widened by bit replication, as spice-common's RGB16-to-32 does. */
static void put_rgb_row(const Group *g, unsigned int bpc, uint8_t *o, int width)
{
    const uint8_t *r = g->cur[0], *gr = g->cur[1], *b = g->cur[2];
    for (int i = 0; i < width; i++, o += 4) {
        uint32_t px = (uint32_t)b[i] | (uint32_t)gr[i] << 8 | (uint32_t)r[i] << 16;
        if (bpc == 5) { /* per byte: v << 3 | v >> 2 (v < 32, so no byte spills) */
            px = px << 3 | ((px >> 2) & 0x070707u);
        }
        memcpy(o, &px, 4); /* little-endian: B, G, R, 0 */
    }
}

long vgpu_quic_decode(const uint8_t *data, size_t size, uint8_t *out, ptrdiff_t stride,
                      int width, int height)
{
    if (!data || !out || !dims_ok(width, height) || stride < (ptrdiff_t)width * 4) {
        return VGPU_ENC_ERR_ARGS;
    }
    Dec *d = malloc(sizeof(Dec));
    if (!d) {
        return VGPU_ENC_ERR_NOMEM;
    }
    int type, w, h;
    int rc = header(&d->rd, data, size, &type, &w, &h);
    if (rc == 0 && (w != width || h != height)) {
        rc = VGPU_DEC_ERR_SIZE;
    }
    if (rc != 0) {
        free(d);
        return rc;
    }
    d->corrupt = 0;
    quic_family_init(&d->fam, type == VGPU_QUIC_TYPE_RGB16 ? 5 : 8);
    const int alpha = type == VGPU_QUIC_TYPE_RGBA;
    Group groups[2];
    groups[0].n = 3;
    groups[1].n = 1;
    const unsigned int ngroups = alpha ? 2 : 1;
    /* per channel: an error row (with its [-1]) and two sample rows */
    const size_t row = (size_t)width + 1;
    uint8_t *mem = calloc(4 * 3, row);
    if (!mem) {
        free(d);
        return VGPU_ENC_ERR_NOMEM;
    }
    uint8_t *at = mem;
    for (unsigned int k = 0; k < ngroups; k++) {
        Group *g = &groups[k];
        quic_state_init(&g->st);
        for (unsigned int c = 0; c < g->n; c++) {
            quic_channel_reset(&g->ch[c], &d->fam);
            g->ch[c].err = at + 1;
            g->cur[c] = at + row;
            g->prev[c] = at + 2 * row;
            at += 3 * row;
        }
    }
    for (int y = 0; y < height && rc == 0; y++) {
        uint8_t *o = out + (ptrdiff_t)y * stride;
        for (unsigned int k = 0; k < ngroups; k++) {
            decode_row(d, &groups[k], y == 0, (unsigned int)width);
        }
        if (d->rd.truncated) { /* first: past the end, any code may look corrupt */
            rc = VGPU_DEC_ERR_TRUNCATED;
        } else if (d->corrupt) {
            rc = VGPU_DEC_ERR_CORRUPT;
        } else {
            put_rgb_row(&groups[0], d->fam.bpc, o, width);
            if (alpha) {
                for (int i = 0; i < width; i++) {
                    o[4 * i + 3] = groups[1].cur[0][i];
                }
            }
            for (unsigned int k = 0; k < ngroups; k++) {
                swap_rows(&groups[k]);
            }
        }
    }
    free(mem);
    free(d);
    return rc == 0 ? (long)width * height : rc;
}
