/* The QUIC model that the encoder (quic.c) and the decoder (quic_decode.c)
 * share: code tables, the bucket statistics, the update schedule and the
 * run-length state.  Every value here is part of the format: both sides must
 * evolve the model identically or the stream means something else.
 *
 * A "family" is the set of codes for one sample depth: 8 bits per channel
 * (RGB32, RGB24, RGBA, GRAY) or 5 (RGB16).  Folded errors (0, -1, 1, -2, ...
 * order) are coded with one of bpc Golomb-Rice parameters, chosen per context
 * (the previous folded error of the same channel) through its bucket. */
#ifndef VGPU_QUIC_MODEL_H
#define VGPU_QUIC_MODEL_H

#include <stdint.h>
#include <string.h>

#include "vgpu_encode.h" /* VGPU_QUIC_TYPE_*: the header's image types */

#define QUIC_MAGIC 0x43495551u /* "QUIC" */
#define QUIC_VERSION 0u
#define QUIC_HEADER_WORDS 5u

#define QUIC_MAX_BPC 8      /* also the most Golomb parameters a family has */
#define QUIC_MAXCLEN 26     /* longest codeword */
#define QUIC_WMI_MAX 6      /* last wait-mask index */
#define QUIC_WMI_NEXT 2048  /* pixels between wait-mask widenings */
#define QUIC_MELC_STATES 32

extern const uint32_t quic_chaos[256];
extern const unsigned int quic_melc_len[QUIC_MELC_STATES];
extern const unsigned short quic_wm_triggers[11];

typedef struct {
    unsigned int bpc;          /* bits per sample: 8 or 5 */
    unsigned int mask;         /* (1 << bpc) - 1 */
    /* Golomb-Rice code per folded value and parameter: length, and the code
     * as len << 16 | bits (codes are under 2^9). */
    uint8_t len[256][QUIC_MAX_BPC];
    uint32_t codeword[256][QUIC_MAX_BPC];
    /* For decoding, per parameter: values below n_gr have a plain GR code;
     * a 32-bit window above gr_min starts with one (it has a 1 bit within
     * the escape prefix); escapes are esc_len bits, the last esc_suffix of
     * them the value minus n_gr. */
    uint32_t n_gr[QUIC_MAX_BPC];
    uint32_t gr_min[QUIC_MAX_BPC];
    unsigned int esc_len[QUIC_MAX_BPC];
    uint32_t esc_suffix_mask[QUIC_MAX_BPC];
    uint8_t fold[256];         /* signed error (mod 2^bpc) -> folded */
    uint8_t unfold[256];       /* folded -> signed error (mod 2^bpc); 0 past the mask */
    uint8_t bucket_of[256];    /* context (masked) -> bucket index */
} QuicFamily;

typedef struct {
    uint32_t counters[QUIC_MAX_BPC]; /* code length each parameter would have cost */
    uint32_t best;                   /* the parameter in use */
} QuicBucket;

typedef struct {
    uint8_t *err;              /* folded errors of the current row, err[-1] valid */
    QuicBucket buckets[QUIC_MAX_BPC];
    uint8_t param_of[256];     /* context (masked) -> its bucket's parameter */
} QuicChannel;

/* What a group of channels coded together shares (RGB: one for all three;
 * the alpha plane of RGBA: its own). */
typedef struct {
    unsigned int waitcnt, seed, wm_trigger, wmidx, wmileft;
    unsigned int melc_state, melc_len, melc_order;
} QuicState;

void quic_family_init(QuicFamily *f, unsigned int bpc);
void quic_state_init(QuicState *s);
void quic_channel_reset(QuicChannel *ch, const QuicFamily *f);

static inline uint32_t quic_next_rand(QuicState *s)
{
    return quic_chaos[++s->seed & 0xff];
}

static inline void quic_set_trigger(QuicState *s)
{
    s->wm_trigger = quic_wm_triggers[s->wmidx > 10 ? 10 : s->wmidx];
}

/* After a run: the MELCODE state steps up once per full block ("hit")... */
static inline void quic_melc_up(QuicState *s)
{
    if (s->melc_state < QUIC_MELC_STATES - 1) {
        s->melc_len = quic_melc_len[++s->melc_state];
        s->melc_order = 1u << s->melc_len;
    }
}

/* ...and down once per run coded. */
static inline void quic_melc_down(QuicState *s)
{
    if (s->melc_state) {
        s->melc_len = quic_melc_len[--s->melc_state];
        s->melc_order = 1u << s->melc_len;
    }
}

/* Contexts of bucket b: [2^b - 1, 2^(b+1) - 2], the last bucket up to the mask. */
static inline void quic_bucket_range(const QuicFamily *f, unsigned int b, unsigned int *first,
                                     unsigned int *count)
{
    *first = (1u << b) - 1;
    *count = b == f->bpc - 1 ? f->mask + 1 - *first : 1u << b;
}

/* The bucket of context ctx learns folded value v. */
static inline void quic_update_bucket(const QuicFamily *f, unsigned int wm_trigger,
                                      QuicChannel *ch, unsigned int ctx, unsigned int v)
{
    const unsigned int bi = f->bucket_of[ctx & f->mask];
    QuicBucket *b = &ch->buckets[bi];
    const unsigned int last = f->bpc - 1;
    uint32_t best_len = (b->counters[last] += f->len[v][last]);
    unsigned int best = last;
    for (int l = (int)last - 1; l >= 0; l--) {
        const uint32_t c = (b->counters[l] += f->len[v][l]);
        if (c < best_len) {
            best = (unsigned int)l;
            best_len = c;
        }
    }
    if (best != b->best) {
        unsigned int first, count;
        quic_bucket_range(f, bi, &first, &count);
        memset(ch->param_of + first, (int)best, count);
        b->best = best;
    }
    if (best_len > wm_trigger) {
        for (unsigned int l = 0; l <= last; l++) {
            b->counters[l] >>= 1;
        }
    }
}

#endif
