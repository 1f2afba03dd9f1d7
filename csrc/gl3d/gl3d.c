/* vgpu's 3D ring executor, the handwritten half (docs/3d-ring.md; the decoders are
 * generated into the build by generate.py and call the h_* functions here).
 *
 * Guest contexts are virtual: they all run on the host's one GL context, which the 2D
 * renderer uses too. Each keeps its name tables (guest name -> host object), its GL error
 * flag and a shadow of its non-object GL state, saved with glGet* when it stops running and
 * applied when it runs again; the 2D renderer's state is saved when a batch starts and put
 * back when it ends. Every enum that selects context state (caps, binding targets, pixel
 * store, hints, units) is held to the ES 3.0 list, so the shadow covers everything a guest
 * can change: a desktop-only enum would reach state nobody restores.
 *
 * Must never: read a batch past its length, read or write guest memory outside a memslot,
 * let a guest name reach another context's (or the 2D renderer's) objects, or pass GL a
 * pointer it would read past. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define G3_SWIZZLE_AVX2 1 /* PRESENT's swizzle by AVX2 where the CPU has it */
#endif

#include "gl3d_gen.h"
#include "qxl_abi.h"

/* desktop GL enums the ES headers lack */
#define GL_PROGRAM_POINT_SIZE_ 0x8642
#define GL_TEXTURE_CUBE_MAP_SEAMLESS_ 0x884F
#define GL_PACK_INVERT_MESA_ 0x8758
#define GL_TEXTURE_WIDTH_ 0x1000
#define GL_TEXTURE_HEIGHT_ 0x1001
#define GL_TEXTURE_INTERNAL_FORMAT_ 0x1003
#define GL_TEXTURE_DEPTH_ 0x8071 /* GL 1.2 and ES 3.1; ES 3.0 lacks the name */

#define G3_MAX_NAMES 65536
/* names per object table (docs/3d-ring.md, Quotas): a guest library reuses names */
#define G3_GROUP_BYTES (512ull << 20)
/* bytes of buffers and textures per share group: llvmpipe keeps them in host memory */
#define G3_DEVICE_BYTES (2048ll << 20)
/* bytes of buffers and textures of all share groups together: G3_MAX_CONTEXTS unshared
 * contexts at G3_GROUP_BYTES each would be 32 GiB of host memory; 2 GiB is four full share
 * groups, more than a desktop of 3D windows holds, and leaves the host, the 2D renderer
 * and the drawables (MAX_DRAWABLE_PIXELS) theirs */
#define G3_MAX_SHADER_SOURCE (1u << 20)
/* per shader: the largest real shaders are tens of KiB */
#define G3_UNITS 32
/* texture units a guest may bind: ES 3.0's minimum MAX_COMBINED_TEXTURE_IMAGE_UNITS,
 * which is what the guest library announces */
#define G3_ATTRIBS 16
/* vertex attributes: ES 3.0's minimum MAX_VERTEX_ATTRIBS, announced likewise */
#define G3_UBO_BINDINGS 24
/* uniform buffer binding points: ES 3.0's minimum MAX_UNIFORM_BUFFER_BINDINGS */
#define G3_TF_BINDINGS 4
/* transform feedback binding points: ES 3.0's MAX_TRANSFORM_FEEDBACK_SEPARATE_ATTRIBS */
#define G3_MAX_SLOTS 256
/* memslots: QXL's ROM offers 8 by default; id bits of a QXLPHYSICAL bound the rest */
#define G3_OUT_REGION (64u << 10)
/* scratch bytes per output of a plain command: the longest answer GL writes for any pname
 * (compressed format lists, uniform index lists are checked first) fits with room */
#define G3_OUTS 4
/* outputs of one command at most (glGetActiveUniform has four) */
#define G3_MAX_STRING (64u << 10)
/* a single string parameter (a uniform or attribute name; the varyings of a program) */
#define G3_MAX_STRINGS 256
/* strings in one glTransformFeedbackVaryings/glGetUniformIndices call */
#define G3_MAX_DIM 65536
/* texture and pixel dimensions taken: above any GL's maximum, small enough that image
 * sizes fit 64 bits with room */
#define G3_MAX_DRAW_VERTICES (1u << 24)
/* vertices (count x instances) one draw may ask for: a heavy real frame draws a few
 * million in all; a software rasterizer would spend minutes on the 2^31 a guest can name */
#define G3_WAIT_SLICE_NS 100000000ull
/* g3_wait_gl waits in slices of 0.1 s: long enough to cost nothing, and no single GL wait
 * is asked for an unbounded time (a driver may turn a huge timeout into a deadline that
 * overflows) */
#define G3_LEVELS 16
/* mip levels tracked per texture face (2^15 texels would exceed G3_MAX_DIM) */

struct g3_obj;

struct g3_attrib {
    struct g3_obj *buf;
    uint64_t offset;
    uint32_t elem;     /* bytes one vertex reads */
    uint32_t stride;   /* bytes between vertices */
    uint32_t divisor;
};

struct g3_vao {
    uint32_t enabled;
    struct g3_attrib a[G3_ATTRIBS];
    struct g3_obj *elements;
};

#define G3_QUERY_SEGMENTS 16
/* Host query objects one guest query spans before the oldest is read and folded into its
 * result (a host wait): a query runs in a host query of its own for each stretch its
 * context runs (GL's one query per target would otherwise count the other contexts' and
 * the 2D renderer's draws, and refuse their queries); 16 stretches cover a query left open
 * over a frame's batches and the other contexts' turns between them. */

struct g3_query {
    GLenum target;             /* of the last glBeginQuery */
    uint32_t folded;           /* the result of segments read already */
    uint32_t n;                /* earlier segments in seg[], oldest first */
    GLuint seg[G3_QUERY_SEGMENTS];
};

struct g3_obj {
    GLuint host;
    GLsync sync;
    uint32_t refs;
    uint8_t table;
    uint8_t is_shader;
    uint8_t deleted;
    int64_t bytes;             /* charged to the share group */
    int64_t *levels;           /* textures: bytes per face * G3_LEVELS + level */
    struct g3_vao *vao;        /* vertex arrays */
    struct g3_query *query;    /* queries once begun: host is the latest segment */
};

struct g3_table {
    struct g3_obj **e;
    uint32_t cap;
};

struct g3_group {
    uint32_t refs;
    struct g3_table t[T_SHARED];
    int64_t bytes;
};

#define N_CAPS 11
static const GLenum CAPS[N_CAPS] = {
    GL_BLEND, GL_CULL_FACE, GL_DEPTH_TEST, GL_DITHER, GL_POLYGON_OFFSET_FILL,
    GL_PRIMITIVE_RESTART_FIXED_INDEX, GL_RASTERIZER_DISCARD, GL_SAMPLE_ALPHA_TO_COVERAGE,
    GL_SAMPLE_COVERAGE, GL_SCISSOR_TEST, GL_STENCIL_TEST,
};
#define N_PIXEL 10
static const GLenum PIXEL[N_PIXEL] = {
    GL_UNPACK_ALIGNMENT, GL_UNPACK_ROW_LENGTH, GL_UNPACK_IMAGE_HEIGHT, GL_UNPACK_SKIP_PIXELS,
    GL_UNPACK_SKIP_ROWS, GL_UNPACK_SKIP_IMAGES, GL_PACK_ALIGNMENT, GL_PACK_ROW_LENGTH,
    GL_PACK_SKIP_PIXELS, GL_PACK_SKIP_ROWS,
};
#define N_HINTS 2
static const GLenum HINTS[N_HINTS] = {GL_GENERATE_MIPMAP_HINT,
                                      GL_FRAGMENT_SHADER_DERIVATIVE_HINT};
#define N_BUF 8
static const GLenum BUF_TARGETS[N_BUF] = {
    GL_ARRAY_BUFFER, GL_ELEMENT_ARRAY_BUFFER, GL_COPY_READ_BUFFER, GL_COPY_WRITE_BUFFER,
    GL_PIXEL_PACK_BUFFER, GL_PIXEL_UNPACK_BUFFER, GL_UNIFORM_BUFFER,
    GL_TRANSFORM_FEEDBACK_BUFFER,
};
static const GLenum BUF_BINDINGS[N_BUF] = {
    GL_ARRAY_BUFFER_BINDING, GL_ELEMENT_ARRAY_BUFFER_BINDING, GL_COPY_READ_BUFFER_BINDING,
    GL_COPY_WRITE_BUFFER_BINDING, GL_PIXEL_PACK_BUFFER_BINDING,
    GL_PIXEL_UNPACK_BUFFER_BINDING, GL_UNIFORM_BUFFER_BINDING,
    GL_TRANSFORM_FEEDBACK_BUFFER_BINDING,
};
#define B_ELEMENT 1  /* vertex array state, not context state */
#define N_TEX 4
#define N_QUERY 3
static const GLenum QUERY_TARGETS[N_QUERY] = {GL_ANY_SAMPLES_PASSED,
                                              GL_ANY_SAMPLES_PASSED_CONSERVATIVE,
                                              GL_TRANSFORM_FEEDBACK_PRIMITIVES_WRITTEN};

static const GLenum TEX_TARGETS[N_TEX] = {GL_TEXTURE_2D, GL_TEXTURE_CUBE_MAP, GL_TEXTURE_3D,
                                          GL_TEXTURE_2D_ARRAY};
static const GLenum TEX_BINDINGS[N_TEX] = {GL_TEXTURE_BINDING_2D, GL_TEXTURE_BINDING_CUBE_MAP,
                                           GL_TEXTURE_BINDING_3D, GL_TEXTURE_BINDING_2D_ARRAY};

/* the non-object state of a context (host names), see the file comment */
enum { A_FLOAT, A_INT, A_UINT };

struct g3_state {
    GLboolean caps[N_CAPS];
    GLfloat blend_color[4];
    GLint blend[6];           /* eq rgb, eq alpha, src rgb, dst rgb, src alpha, dst alpha */
    GLint depth_func;
    GLboolean depth_mask;
    GLfloat depth_range[2];
    GLfloat clear_depth;
    GLint stencil[2][7];      /* func, ref, value mask, fail, zfail, zpass, write mask */
    GLint clear_stencil;
    GLfloat clear_color[4];
    GLboolean color_mask[4];
    GLint cull_mode, front_face;
    GLfloat line_width, po_factor, po_units, sc_value;
    GLboolean sc_invert;
    GLint viewport[4], scissor[4];
    GLint pixel[N_PIXEL];
    GLint hints[N_HINTS];
    GLint buf[N_BUF];         /* [B_ELEMENT] unused */
    GLint draw_fb, read_fb, rbo, program, vao, tfo, active;
    GLint units[G3_UNITS][N_TEX + 1];   /* textures, then the sampler */
    GLint ubo[G3_UBO_BINDINGS];
    GLint64 ubo_range[G3_UBO_BINDINGS][2];
    union { GLfloat f[4]; GLint i[4]; GLuint u[4]; } attrib[G3_ATTRIBS];
    /* the type of each current attribute (A_FLOAT...): set by the guest's glVertexAttrib*
     * calls as they run, as GL keeps it but cannot report it; it picks the getter and
     * setter that save and restore the value without converting it */
    uint8_t attrib_type[G3_ATTRIBS];
    uint32_t nunits;          /* units saved */
    int attribs;              /* whether attrib[] was saved */
    int tf_resume;            /* transform feedback was paused by the save: resume it */
};

struct g3_ctx {
    uint32_t id;
    int lost;
    GLenum error;
    struct g3_group *group;
    struct g3_table t[T_COUNT - T_SHARED];
    GLuint vao0, tfo0;        /* host objects standing for the guest's VAO 0 and TFO 0 */
    struct g3_vao vao0_state;
    struct g3_vao *vao;       /* the bound one */
    GLuint surface_fbo;
    uint32_t surface_w, surface_h;
    uint32_t active_unit;
    struct g3_obj *tex[G3_UNITS][N_TEX];
    struct g3_obj *buf[N_BUF];
    struct g3_obj *rbo;
    struct g3_obj *query[N_QUERY];  /* the active query of each target, begun and not ended */
    struct g3_state st;
    int st_valid;             /* st holds the context's state (else: GL's initial state) */
};

struct g3_slot {
    uint64_t start, end;
    uint32_t generation;
    uint8_t valid;
};

struct g3_host {
    uint8_t *base;
    uint64_t size;
    uint32_t id_bits, gen_bits;
    struct g3_slot slots[G3_MAX_SLOTS];
    uint32_t nslots;
    struct g3_ctx *ctx[G3_MAX_CONTEXTS + 1];
    struct g3_ctx *cur;       /* made current by MAKE_CURRENT */
    struct g3_ctx *applied;   /* whose state is on the host GL now (NULL: the 2D renderer's) */
    struct g3_state twod;     /* the 2D renderer's, saved before a context's is applied */
    int twod_valid;           /* twod holds the 2D state of this stretch of the batch */
    int in_batch;
    uint32_t unit_hwm;        /* units any guest context has used: what a switch saves */
    uint32_t host_attribs;
    uint32_t new_lost;
    struct g3_counters counters;
    int64_t bytes;            /* of all share groups: G3_DEVICE_BYTES */
    char renderer[256];
    int pack_invert;          /* GL_MESA_pack_invert: PRESENT copies instead of drawing */
    uint8_t *scratch;         /* G3_OUTS * G3_OUT_REGION */
    uint8_t *strings;         /* G3_MAX_STRING + room for the NUL */
    const char *string_ptrs[G3_MAX_STRINGS];
    uint32_t target_qxl, target_w, target_h, target_fbo;  /* g3_present_target */
    struct g3_present present;       /* the PRESENT g3_execute runs */
    struct g3_presented presented;   /* what it ran, for the caller */
};

static char last_error[256];

/* desktop GL's texture level query (not in ES 3.0, so not in g3gl): PRESENT's sizes */
static void (*get_tex_level_parameteriv)(GLenum, GLint, GLenum, GLint *);

const char *g3_last_error(void)
{
    return last_error;
}

/* ---- guest memory ------------------------------------------------------------------- */

void g3_set_memory(G3 *g, uintptr_t base, uint64_t size)
{
    g->base = (uint8_t *)base;
    g->size = size;
}

int g3_set_slots(G3 *g, uint32_t id_bits, uint32_t gen_bits, uint32_t n,
                 const uint64_t *start, const uint64_t *end, const uint32_t *generation,
                 const uint8_t *valid)
{
    if (n > G3_MAX_SLOTS || id_bits == 0 || id_bits + gen_bits >= 64) {
        g->nslots = 0;  /* nothing translates: every reference is GL_INVALID_VALUE */
        return -1;
    }
    g->id_bits = id_bits;
    g->gen_bits = gen_bits;
    g->nslots = n;
    for (uint32_t i = 0; i < n; i++) {
        g->slots[i].start = start[i];
        g->slots[i].end = end[i];
        g->slots[i].generation = generation[i];
        g->slots[i].valid = valid[i] && start[i] <= end[i] && end[i] <= g->size;
    }
    return 0;
}

/* guest memory of [addr, addr+len) or NULL, as MemSlots.translate checks it */
static uint8_t *translate(G3 *g, uint64_t addr, uint64_t len)
{
    if (!g->base || !g->id_bits)
        return NULL;
    uint32_t id_shift = 64 - g->id_bits, gen_shift = 64 - g->id_bits - g->gen_bits;
    uint64_t sid = addr >> id_shift;
    if (sid >= g->nslots || !g->slots[sid].valid)
        return NULL;
    const struct g3_slot *s = &g->slots[sid];
    uint64_t gen = (addr >> gen_shift) & ((1ull << g->gen_bits) - 1);
    if (gen != s->generation)
        return NULL;
    uint64_t phys = addr & ((1ull << gen_shift) - 1);
    if (phys < s->start || phys > s->end || len > s->end - phys)
        return NULL;
    return g->base + phys;
}

int g3_take_blob(G3 *g, const uint8_t *b, uint32_t n, uint32_t *at, struct g3_blob *out,
                 int *bad_ref)
{
    if (n - *at < 1)
        return -1;
    uint32_t w0 = g3_word(b, (*at)++);
    out->p = NULL;
    out->n = 0;
    if (w0 == 0xFFFFFFFFu)
        return 0;
    if (!(w0 & 0x80000000u)) {
        uint32_t words = (uint32_t)(((uint64_t)w0 + 3) / 4);
        if (n - *at < words)
            return -1;
        out->p = b + 4 * (size_t)*at;
        out->n = w0;
        *at += words;
        return 0;
    }
    if (n - *at < 2)
        return -1;
    uint64_t addr = g3_wide(b, *at);
    *at += 2;
    out->n = w0 & 0x7FFFFFFFu;
    out->p = translate(g, addr, out->n);
    if (!out->p) {
        *bad_ref = 1;
        out->n = 0;
    }
    return 0;
}

int g3_out_ok(G3 *g, const struct g3_out *o)
{
    return o->addr == 0 || translate(g, o->addr, o->cap) != NULL;
}

void g3_answer(G3 *g, const struct g3_out *o, const void *data, size_t bytes)
{
    if (o->addr == 0)
        return;
    uint8_t *dst = translate(g, o->addr, o->cap);
    if (!dst) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    memcpy(dst, data, bytes < o->cap ? bytes : o->cap);
}

/* a string answer: cut to the capacity, keeping a terminating NUL */
static void answer_string(G3 *g, const struct g3_out *o, const char *s)
{
    if (o->addr == 0)
        return;
    uint8_t *dst = translate(g, o->addr, o->cap);
    if (!dst) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    if (o->cap == 0)
        return;
    size_t len = strlen(s);
    if (len > o->cap - 1)
        len = o->cap - 1;
    memcpy(dst, s, len);
    dst[len] = 0;
}

void *g3_out_scratch(G3 *g, int which, size_t bytes)
{
    if (bytes > G3_OUT_REGION || which >= G3_OUTS)
        return NULL;
    uint8_t *p = g->scratch + (size_t)which * G3_OUT_REGION;
    memset(p, 0, bytes);
    return p;
}

int64_t g3_clamp_count(int64_t asked, uint32_t cap, int elem)
{
    if (asked < 0)
        return asked;  /* GL refuses it before writing anything */
    int64_t most = (int64_t)(cap < G3_OUT_REGION ? cap : G3_OUT_REGION) / elem;
    return asked < most ? asked : most;
}

/* ---- errors ---------------------------------------------------------------------------- */

void g3_error(G3 *g, GLenum err)
{
    struct g3_ctx *c = g->cur;
    g->counters.gl_errors++;
    if (c && c->error == GL_NO_ERROR)
        c->error = err;
}

/* folds the host's errors into the context's flag; nonzero when the call failed */
int g3_gl_error(G3 *g)
{
    GLenum e, first = GL_NO_ERROR;
    while ((e = g3gl.GetError()) != GL_NO_ERROR)
        if (first == GL_NO_ERROR)
            first = e;
    if (first != GL_NO_ERROR)
        g3_error(g, first);
    return first != GL_NO_ERROR;
}

static void drain_errors(void)
{
    for (int i = 0; i < 64 && g3gl.GetError() != GL_NO_ERROR; i++)
        ;
}

void g3_lose_current(G3 *g)
{
    if (g->cur)
        g3_lose(g, g->cur->id);
}

void g3_lose(G3 *g, uint32_t id)
{
    if (id == 0 || id > G3_MAX_CONTEXTS || !g->ctx[id] || g->ctx[id]->lost)
        return;
    g->ctx[id]->lost = 1;
    g->counters.lost++;
    g->new_lost++;
}

uint32_t g3_take_lost(G3 *g)
{
    uint32_t n = g->new_lost;
    g->new_lost = 0;
    return n;
}

int g3_context_lost(G3 *g, uint32_t id)
{
    return id >= 1 && id <= G3_MAX_CONTEXTS && g->ctx[id] && g->ctx[id]->lost;
}

/* ---- name tables ------------------------------------------------------------------------ */

static struct g3_table *table(G3 *g, int t)
{
    struct g3_ctx *c = g->cur;
    return t < T_SHARED ? &c->group->t[t] : &c->t[t - T_SHARED];
}

static struct g3_obj *lookup(G3 *g, int t, uint32_t name)
{
    struct g3_table *tab = table(g, t);
    return name < tab->cap ? tab->e[name] : NULL;
}

static struct g3_obj *ref(struct g3_obj *o)
{
    if (o)
        o->refs++;
    return o;
}

static void unref(struct g3_obj **slot)
{
    struct g3_obj *o = *slot;
    *slot = NULL;
    if (!o || --o->refs)
        return;
    if (o->vao) {
        for (int i = 0; i < G3_ATTRIBS; i++)
            unref(&o->vao->a[i].buf);
        unref(&o->vao->elements);
        free(o->vao);
    }
    free(o->levels);
    free(o->query);
    free(o);
}

/* a table entry for `name` (1..G3_MAX_NAMES-1), growing the table; NULL: out of memory */
static struct g3_obj **slot_for(struct g3_table *tab, uint32_t name)
{
    if (name == 0 || name >= G3_MAX_NAMES)
        return NULL;
    if (name >= tab->cap) {
        uint32_t cap = tab->cap ? tab->cap : 64;
        while (cap <= name)
            cap *= 2;
        if (cap > G3_MAX_NAMES)
            cap = G3_MAX_NAMES;
        struct g3_obj **e = realloc(tab->e, cap * sizeof *e);
        if (!e)
            return NULL;
        memset(e + tab->cap, 0, (cap - tab->cap) * sizeof *e);
        tab->e = e;
        tab->cap = cap;
    }
    return &tab->e[name];
}

static GLuint host_make(int t)
{
    GLuint h = 0;
    switch (t) {
    case T_BUFFER: g3gl.GenBuffers(1, &h); break;
    case T_TEXTURE: g3gl.GenTextures(1, &h); break;
    case T_RENDERBUFFER: g3gl.GenRenderbuffers(1, &h); break;
    case T_SAMPLER: g3gl.GenSamplers(1, &h); break;
    case T_FRAMEBUFFER: g3gl.GenFramebuffers(1, &h); break;
    case T_VERTEX_ARRAY: g3gl.GenVertexArrays(1, &h); break;
    case T_QUERY: g3gl.GenQueries(1, &h); break;
    case T_TF: g3gl.GenTransformFeedbacks(1, &h); break;
    default: break;
    }
    return h;
}

/* a new object under `name`; the error (already recorded) when it cannot be */
static struct g3_obj *create(G3 *g, int t, uint32_t name, GLuint host)
{
    if (name == 0) {
        g3_error(g, GL_INVALID_VALUE);
        return NULL;
    }
    struct g3_obj **s = slot_for(table(g, t), name);
    if (!s) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return NULL;
    }
    if (*s) {
        g3_error(g, GL_INVALID_OPERATION);
        return NULL;
    }
    struct g3_obj *o = calloc(1, sizeof *o);
    if (!o) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return NULL;
    }
    if (t == T_VERTEX_ARRAY && !(o->vao = calloc(1, sizeof *o->vao))) {
        free(o);
        g3_error(g, GL_OUT_OF_MEMORY);
        return NULL;
    }
    o->table = (uint8_t)t;
    o->host = host ? host : host_make(t);
    o->refs = 1;
    *s = o;
    return o;
}

/* the object `name` names, creating it when ES lets a bind do that */
static struct g3_obj *bind_lookup(G3 *g, int t, uint32_t name, int creates, int *ok)
{
    *ok = 1;
    if (name == 0)
        return NULL;
    struct g3_obj *o = lookup(g, t, name);
    if (!o && creates)
        o = create(g, t, name, 0);
    else if (!o)
        g3_error(g, GL_INVALID_OPERATION);
    *ok = o != NULL;
    return o;
}

int g3_host_name(G3 *g, int t, uint32_t guest, GLuint *host)
{
    if (guest == 0) {
        *host = t == T_FRAMEBUFFER ? g->cur->surface_fbo
              : t == T_VERTEX_ARRAY ? g->cur->vao0 : t == T_TF ? g->cur->tfo0 : 0;
        return 1;
    }
    struct g3_obj *o = lookup(g, t, guest);
    if (!o)
        return 0;
    *host = o->host;
    return 1;
}

int g3_sync(G3 *g, int t, uint32_t guest, GLsync *host)
{
    struct g3_obj *o = guest ? lookup(g, t, guest) : NULL;
    *host = o ? o->sync : NULL;
    return o != NULL;
}

/* the guest name of a host object in the current context's table `t` (0 if none) */
static uint32_t reverse(G3 *g, int t, GLint host)
{
    struct g3_ctx *c = g->cur;
    if (host == 0 || (t == T_FRAMEBUFFER && (GLuint)host == c->surface_fbo)
        || (t == T_VERTEX_ARRAY && (GLuint)host == c->vao0)
        || (t == T_TF && (GLuint)host == c->tfo0))
        return 0;
    struct g3_table *tab = table(g, t);
    for (uint32_t i = 1; i < tab->cap; i++)
        if (tab->e[i] && tab->e[i]->host == (GLuint)host)
            return i;
    return 0;
}

/* ---- the state shadow -------------------------------------------------------------------- */

static void save_state(G3 *g, struct g3_state *s, int attribs)
{
    /* an active transform feedback would capture the next context's draws (the 2D
     * renderer's too) and refuses rebinding: it is paused while the context is not running */
    GLboolean active = GL_FALSE, paused = GL_FALSE;
    g3gl.GetBooleanv(GL_TRANSFORM_FEEDBACK_ACTIVE, &active);
    g3gl.GetBooleanv(GL_TRANSFORM_FEEDBACK_PAUSED, &paused);
    s->tf_resume = active && !paused;
    if (s->tf_resume)
        g3gl.PauseTransformFeedback();
    for (int i = 0; i < N_CAPS; i++)
        s->caps[i] = g3gl.IsEnabled(CAPS[i]);
    g3gl.GetFloatv(GL_BLEND_COLOR, s->blend_color);
    static const GLenum blend[6] = {GL_BLEND_EQUATION_RGB, GL_BLEND_EQUATION_ALPHA,
                                    GL_BLEND_SRC_RGB, GL_BLEND_DST_RGB, GL_BLEND_SRC_ALPHA,
                                    GL_BLEND_DST_ALPHA};
    for (int i = 0; i < 6; i++)
        g3gl.GetIntegerv(blend[i], &s->blend[i]);
    g3gl.GetIntegerv(GL_DEPTH_FUNC, &s->depth_func);
    g3gl.GetBooleanv(GL_DEPTH_WRITEMASK, &s->depth_mask);
    g3gl.GetFloatv(GL_DEPTH_RANGE, s->depth_range);
    g3gl.GetFloatv(GL_DEPTH_CLEAR_VALUE, &s->clear_depth);
    static const GLenum sten[2][7] = {
        {GL_STENCIL_FUNC, GL_STENCIL_REF, GL_STENCIL_VALUE_MASK, GL_STENCIL_FAIL,
         GL_STENCIL_PASS_DEPTH_FAIL, GL_STENCIL_PASS_DEPTH_PASS, GL_STENCIL_WRITEMASK},
        {GL_STENCIL_BACK_FUNC, GL_STENCIL_BACK_REF, GL_STENCIL_BACK_VALUE_MASK,
         GL_STENCIL_BACK_FAIL, GL_STENCIL_BACK_PASS_DEPTH_FAIL, GL_STENCIL_BACK_PASS_DEPTH_PASS,
         GL_STENCIL_BACK_WRITEMASK}};
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < 7; i++)
            g3gl.GetIntegerv(sten[f][i], &s->stencil[f][i]);
    g3gl.GetIntegerv(GL_STENCIL_CLEAR_VALUE, &s->clear_stencil);
    g3gl.GetFloatv(GL_COLOR_CLEAR_VALUE, s->clear_color);
    g3gl.GetBooleanv(GL_COLOR_WRITEMASK, s->color_mask);
    g3gl.GetIntegerv(GL_CULL_FACE_MODE, &s->cull_mode);
    g3gl.GetIntegerv(GL_FRONT_FACE, &s->front_face);
    g3gl.GetFloatv(GL_LINE_WIDTH, &s->line_width);
    g3gl.GetFloatv(GL_POLYGON_OFFSET_FACTOR, &s->po_factor);
    g3gl.GetFloatv(GL_POLYGON_OFFSET_UNITS, &s->po_units);
    g3gl.GetFloatv(GL_SAMPLE_COVERAGE_VALUE, &s->sc_value);
    g3gl.GetBooleanv(GL_SAMPLE_COVERAGE_INVERT, &s->sc_invert);
    g3gl.GetIntegerv(GL_VIEWPORT, s->viewport);
    g3gl.GetIntegerv(GL_SCISSOR_BOX, s->scissor);
    for (int i = 0; i < N_PIXEL; i++)
        g3gl.GetIntegerv(PIXEL[i], &s->pixel[i]);
    for (int i = 0; i < N_HINTS; i++)
        g3gl.GetIntegerv(HINTS[i], &s->hints[i]);
    for (int i = 0; i < N_BUF; i++)
        if (i != B_ELEMENT)
            g3gl.GetIntegerv(BUF_BINDINGS[i], &s->buf[i]);
    g3gl.GetIntegerv(GL_DRAW_FRAMEBUFFER_BINDING, &s->draw_fb);
    g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &s->read_fb);
    g3gl.GetIntegerv(GL_RENDERBUFFER_BINDING, &s->rbo);
    g3gl.GetIntegerv(GL_CURRENT_PROGRAM, &s->program);
    g3gl.GetIntegerv(GL_VERTEX_ARRAY_BINDING, &s->vao);
    g3gl.GetIntegerv(GL_TRANSFORM_FEEDBACK_BINDING, &s->tfo);
    g3gl.GetIntegerv(GL_ACTIVE_TEXTURE, &s->active);
    s->nunits = g->unit_hwm;
    for (uint32_t u = 0; u < s->nunits; u++) {
        g3gl.ActiveTexture(GL_TEXTURE0 + u);
        for (int t = 0; t < N_TEX; t++)
            g3gl.GetIntegerv(TEX_BINDINGS[t], &s->units[u][t]);
        g3gl.GetIntegerv(GL_SAMPLER_BINDING, &s->units[u][N_TEX]);
    }
    g3gl.ActiveTexture((GLenum)s->active);
    for (int i = 0; i < G3_UBO_BINDINGS; i++) {
        g3gl.GetIntegeri_v(GL_UNIFORM_BUFFER_BINDING, (GLuint)i, &s->ubo[i]);
        g3gl.GetInteger64i_v(GL_UNIFORM_BUFFER_START, (GLuint)i, &s->ubo_range[i][0]);
        g3gl.GetInteger64i_v(GL_UNIFORM_BUFFER_SIZE, (GLuint)i, &s->ubo_range[i][1]);
    }
    s->attribs = attribs;
    if (attribs)
        for (uint32_t i = 0; i < G3_ATTRIBS && i < g->host_attribs; i++) {
            if (s->attrib_type[i] == A_INT)
                g3gl.GetVertexAttribIiv(i, GL_CURRENT_VERTEX_ATTRIB, s->attrib[i].i);
            else if (s->attrib_type[i] == A_UINT)
                g3gl.GetVertexAttribIuiv(i, GL_CURRENT_VERTEX_ATTRIB, s->attrib[i].u);
            else
                g3gl.GetVertexAttribfv(i, GL_CURRENT_VERTEX_ATTRIB, s->attrib[i].f);
        }
    drain_errors();
}

static void apply_state(G3 *g, const struct g3_state *s)
{
    for (int i = 0; i < N_CAPS; i++)
        (s->caps[i] ? g3gl.Enable : g3gl.Disable)(CAPS[i]);
    g3gl.BlendColor(s->blend_color[0], s->blend_color[1], s->blend_color[2],
                    s->blend_color[3]);
    g3gl.BlendEquationSeparate((GLenum)s->blend[0], (GLenum)s->blend[1]);
    g3gl.BlendFuncSeparate((GLenum)s->blend[2], (GLenum)s->blend[3], (GLenum)s->blend[4],
                           (GLenum)s->blend[5]);
    g3gl.DepthFunc((GLenum)s->depth_func);
    g3gl.DepthMask(s->depth_mask);
    g3gl.DepthRangef(s->depth_range[0], s->depth_range[1]);
    g3gl.ClearDepthf(s->clear_depth);
    static const GLenum face[2] = {GL_FRONT, GL_BACK};
    for (int f = 0; f < 2; f++) {
        const GLint *t = s->stencil[f];
        g3gl.StencilFuncSeparate(face[f], (GLenum)t[0], t[1], (GLuint)t[2]);
        g3gl.StencilOpSeparate(face[f], (GLenum)t[3], (GLenum)t[4], (GLenum)t[5]);
        g3gl.StencilMaskSeparate(face[f], (GLuint)t[6]);
    }
    g3gl.ClearStencil(s->clear_stencil);
    g3gl.ClearColor(s->clear_color[0], s->clear_color[1], s->clear_color[2],
                    s->clear_color[3]);
    g3gl.ColorMask(s->color_mask[0], s->color_mask[1], s->color_mask[2], s->color_mask[3]);
    g3gl.CullFace((GLenum)s->cull_mode);
    g3gl.FrontFace((GLenum)s->front_face);
    g3gl.LineWidth(s->line_width);
    g3gl.PolygonOffset(s->po_factor, s->po_units);
    g3gl.SampleCoverage(s->sc_value, s->sc_invert);
    g3gl.Viewport(s->viewport[0], s->viewport[1], s->viewport[2], s->viewport[3]);
    g3gl.Scissor(s->scissor[0], s->scissor[1], s->scissor[2], s->scissor[3]);
    for (int i = 0; i < N_PIXEL; i++)
        g3gl.PixelStorei(PIXEL[i], s->pixel[i]);
    for (int i = 0; i < N_HINTS; i++)
        g3gl.Hint(HINTS[i], (GLenum)s->hints[i]);
    /* the vertex array first: the element buffer binding is its state, not ours */
    g3gl.BindVertexArray((GLuint)s->vao);
    g3gl.BindTransformFeedback(GL_TRANSFORM_FEEDBACK, (GLuint)s->tfo);
    for (int i = 0; i < G3_UBO_BINDINGS; i++) {
        if (s->ubo[i] && s->ubo_range[i][1] > 0)
            g3gl.BindBufferRange(GL_UNIFORM_BUFFER, (GLuint)i, (GLuint)s->ubo[i],
                                 (GLintptr)s->ubo_range[i][0], (GLsizeiptr)s->ubo_range[i][1]);
        else
            g3gl.BindBufferBase(GL_UNIFORM_BUFFER, (GLuint)i, (GLuint)s->ubo[i]);
    }
    for (int i = 0; i < N_BUF; i++)
        if (i != B_ELEMENT)
            g3gl.BindBuffer(BUF_TARGETS[i], (GLuint)s->buf[i]);
    g3gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, (GLuint)s->draw_fb);
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, (GLuint)s->read_fb);
    g3gl.BindRenderbuffer(GL_RENDERBUFFER, (GLuint)s->rbo);
    g3gl.UseProgram((GLuint)s->program);
    for (uint32_t u = 0; u < g->unit_hwm; u++) {
        g3gl.ActiveTexture(GL_TEXTURE0 + u);
        for (int t = 0; t < N_TEX; t++)
            g3gl.BindTexture(TEX_TARGETS[t], u < s->nunits ? (GLuint)s->units[u][t] : 0);
        g3gl.BindSampler(u, u < s->nunits ? (GLuint)s->units[u][N_TEX] : 0);
    }
    g3gl.ActiveTexture((GLenum)s->active);
    if (s->attribs)
        for (uint32_t i = 0; i < G3_ATTRIBS && i < g->host_attribs; i++) {
            if (s->attrib_type[i] == A_INT)
                g3gl.VertexAttribI4iv(i, s->attrib[i].i);
            else if (s->attrib_type[i] == A_UINT)
                g3gl.VertexAttribI4uiv(i, s->attrib[i].u);
            else
                g3gl.VertexAttrib4fv(i, s->attrib[i].f);
        }
    if (s->tf_resume)
        g3gl.ResumeTransformFeedback();
    drain_errors();
}

/* GL's initial state for a context drawing to a surface of w x h */
static void initial_state(G3 *g, struct g3_state *s, struct g3_ctx *c)
{
    memset(s, 0, sizeof *s);
    s->caps[3] = GL_TRUE;  /* GL_DITHER */
    s->blend[0] = s->blend[1] = GL_FUNC_ADD;
    s->blend[2] = s->blend[4] = GL_ONE;
    s->blend[3] = s->blend[5] = GL_ZERO;
    s->depth_func = GL_LESS;
    s->depth_mask = GL_TRUE;
    s->depth_range[1] = 1.0f;
    s->clear_depth = 1.0f;
    for (int f = 0; f < 2; f++) {
        GLint *t = s->stencil[f];
        t[0] = GL_ALWAYS;
        t[2] = t[6] = -1;
        t[3] = t[4] = t[5] = GL_KEEP;
    }
    for (int i = 0; i < 4; i++)
        s->color_mask[i] = GL_TRUE;
    s->cull_mode = GL_BACK;
    s->front_face = GL_CCW;
    s->line_width = 1.0f;
    s->sc_value = 1.0f;
    s->viewport[2] = s->scissor[2] = (GLint)c->surface_w;
    s->viewport[3] = s->scissor[3] = (GLint)c->surface_h;
    s->pixel[0] = s->pixel[6] = 4;  /* UNPACK_ALIGNMENT, PACK_ALIGNMENT */
    s->hints[0] = s->hints[1] = GL_DONT_CARE;
    s->draw_fb = s->read_fb = (GLint)c->surface_fbo;
    s->vao = (GLint)c->vao0;
    s->tfo = (GLint)c->tfo0;
    s->active = GL_TEXTURE0;
    s->nunits = g->unit_hwm;
    s->attribs = 1;
    for (int i = 0; i < G3_ATTRIBS; i++)
        s->attrib[i].f[3] = 1.0f;
}

/* a query's result over two stretches: whether either passed, or the sum of primitives */
static uint32_t query_sum(GLenum target, uint32_t a, uint32_t b)
{
    return target == GL_TRANSFORM_FEEDBACK_PRIMITIVES_WRITTEN ? a + b : (a || b);
}

/* context c stops running: its active queries end on the host (their segments stay) */
static void pause_queries(struct g3_ctx *c)
{
    for (int k = 0; k < N_QUERY; k++)
        if (c->query[k])
            g3gl.EndQuery(QUERY_TARGETS[k]);
}

/* context c runs again: each active query goes on in a new host query */
static void resume_queries(G3 *g, struct g3_ctx *c)
{
    for (int k = 0; k < N_QUERY; k++) {
        struct g3_obj *o = c->query[k];
        if (!o)
            continue;
        struct g3_query *q = o->query;
        GLuint h = 0;
        g3gl.GenQueries(1, &h);
        if (!h) {  /* the host is out of names: the query keeps what it counted so far */
            unref(&c->query[k]);
            continue;
        }
        if (q->n == G3_QUERY_SEGMENTS) {
            GLuint r = 0;
            g->counters.waits++;  /* GL waits for the oldest segment's commands */
            g3gl.GetQueryObjectuiv(q->seg[0], GL_QUERY_RESULT, &r);
            q->folded = query_sum(q->target, q->folded, r);
            g3gl.DeleteQueries(1, &q->seg[0]);
            memmove(q->seg, q->seg + 1, (G3_QUERY_SEGMENTS - 1) * sizeof q->seg[0]);
            q->n--;
        }
        q->seg[q->n++] = o->host;
        o->host = h;
        g3gl.BeginQuery(QUERY_TARGETS[k], h);
    }
}

/* switches the host's state to context c (NULL: the 2D renderer's) */
static void run_state_of(G3 *g, struct g3_ctx *c)
{
    if (g->applied == c)
        return;
    if (!g->applied && !g->twod_valid) {
        /* the first switch since g3_batch_begin: the host's state is still the 2D
         * renderer's (entry points in between keep what they change) */
        save_state(g, &g->twod, 0);
        g->twod_valid = 1;
    }
    if (g->applied) {
        pause_queries(g->applied);
        save_state(g, &g->applied->st, 1);
        g->applied->st_valid = 1;
    }
    g->applied = c;
    if (!c) {
        apply_state(g, &g->twod);
        return;
    }
    if (!c->st_valid) {
        initial_state(g, &c->st, c);
        c->st_valid = 1;
    }
    apply_state(g, &c->st);
    resume_queries(g, c);
    /* ES behaviour a desktop context has only when asked */
    g3gl.Enable(GL_PROGRAM_POINT_SIZE_);
    g3gl.Enable(GL_TEXTURE_CUBE_MAP_SEAMLESS_);
    drain_errors();
}

void g3_batch_begin(G3 *g)
{
    drain_errors();
    g->in_batch = 1;
    if (g->applied)
        return;  /* on since the last batch's end: the 2D state saved then is still twod */
    /* saved when a context's state is first applied: a stretch of vgpu commands only
     * (a PRESENT's FENCE, a lone FENCE) then saves and restores nothing */
    g->twod_valid = 0;
}

int g3_batch_end(G3 *g)
{
    drain_errors();
    return g->applied != NULL;
}

void g3_to_2d(G3 *g)
{
    if (g->applied) {
        run_state_of(g, NULL);
        g3gl.Disable(GL_PROGRAM_POINT_SIZE_);
        g3gl.Disable(GL_TEXTURE_CUBE_MAP_SEAMLESS_);
    }
    drain_errors();
}

/* a host object is gone: no saved state of another context may name it again (the name
 * can come back for anyone's new object, the 2D renderer's included) */
static void scrub(G3 *g, int t, GLuint host)
{
    for (uint32_t i = 1; i <= G3_MAX_CONTEXTS; i++) {
        struct g3_ctx *c = g->ctx[i];
        if (!c || !c->st_valid || c == g->applied)
            continue;
        struct g3_state *s = &c->st;
        GLint h = (GLint)host;
        if (t == T_BUFFER) {
            for (int b = 0; b < N_BUF; b++)
                if (s->buf[b] == h)
                    s->buf[b] = 0;
            for (int b = 0; b < G3_UBO_BINDINGS; b++)
                if (s->ubo[b] == h)
                    s->ubo[b] = 0;
        } else if (t == T_TEXTURE || t == T_SAMPLER) {
            for (uint32_t u = 0; u < s->nunits; u++)
                for (int k = 0; k <= N_TEX; k++)
                    if ((k == N_TEX) == (t == T_SAMPLER) && s->units[u][k] == h)
                        s->units[u][k] = 0;
        } else if (t == T_RENDERBUFFER && s->rbo == h) {
            s->rbo = 0;
        } else if (t == T_PROGRAM && s->program == h) {
            s->program = 0;
        }
    }
}

/* ---- objects ----------------------------------------------------------------------------- */

static void host_delete(struct g3_obj *o)
{
    GLuint h = o->host;
    switch (o->table) {
    case T_BUFFER: g3gl.DeleteBuffers(1, &h); break;
    case T_TEXTURE: g3gl.DeleteTextures(1, &h); break;
    case T_RENDERBUFFER: g3gl.DeleteRenderbuffers(1, &h); break;
    case T_PROGRAM: (o->is_shader ? g3gl.DeleteShader : g3gl.DeleteProgram)(h); break;
    case T_SAMPLER: g3gl.DeleteSamplers(1, &h); break;
    case T_SYNC: g3gl.DeleteSync(o->sync); break;
    case T_FRAMEBUFFER: g3gl.DeleteFramebuffers(1, &h); break;
    case T_VERTEX_ARRAY: g3gl.DeleteVertexArrays(1, &h); break;
    case T_QUERY:
        g3gl.DeleteQueries(1, &h);
        if (o->query)
            g3gl.DeleteQueries((GLsizei)o->query->n, o->query->seg);
        break;
    case T_TF: g3gl.DeleteTransformFeedbacks(1, &h); break;
    default: break;
    }
}

/* forgets every context's tracking of o (GL unbinds a deleted object from the current
 * context; the others' host bindings are scrubbed, so their tracking goes too) */
static void untrack(G3 *g, struct g3_obj *o)
{
    for (uint32_t i = 1; i <= G3_MAX_CONTEXTS; i++) {
        struct g3_ctx *c = g->ctx[i];
        if (!c)
            continue;
        for (int u = 0; u < G3_UNITS; u++)
            for (int t = 0; t < N_TEX; t++)
                if (c->tex[u][t] == o)
                    unref(&c->tex[u][t]);
        for (int b = 0; b < N_BUF; b++)
            if (c->buf[b] == o)
                unref(&c->buf[b]);
        if (c->rbo == o)
            unref(&c->rbo);
        for (int k = 0; k < N_QUERY; k++)
            if (c->query[k] == o)
                unref(&c->query[k]);
    }
    struct g3_ctx *c = g->cur;
    if (c && o->table == T_BUFFER) {
        for (int a = 0; a < G3_ATTRIBS; a++)
            if (c->vao->a[a].buf == o)
                unref(&c->vao->a[a].buf);
        if (c->vao->elements == o)
            unref(&c->vao->elements);
    }
}

static void obj_delete(G3 *g, struct g3_group *grp, struct g3_table *tab, uint32_t name)
{
    struct g3_obj *o = name < tab->cap ? tab->e[name] : NULL;
    if (!o)
        return;
    tab->e[name] = NULL;
    host_delete(o);
    o->deleted = 1;
    if (grp) {
        grp->bytes -= o->bytes;
        g->bytes -= o->bytes;
    }
    scrub(g, o->table, o->host);
    untrack(g, o);
    unref(&o);
}

static void table_free(G3 *g, struct g3_group *grp, struct g3_table *tab)
{
    for (uint32_t i = 1; i < tab->cap; i++)
        obj_delete(g, grp, tab, i);
    free(tab->e);
    tab->e = NULL;
    tab->cap = 0;
}

/* ---- contexts ---------------------------------------------------------------------------- */

int g3_context_create(G3 *g, uint32_t id, uint32_t api, uint32_t share)
{
    if (id == 0 || id > G3_MAX_CONTEXTS || g->ctx[id] || (api != 2 && api != 3))
        return -1;
    if (share && (share > G3_MAX_CONTEXTS || !g->ctx[share]))
        return -1;
    struct g3_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    if (share) {
        c->group = g->ctx[share]->group;
        c->group->refs++;
    } else if (!(c->group = calloc(1, sizeof *c->group))) {
        free(c);
        return -1;
    } else {
        c->group->refs = 1;
    }
    c->id = id;
    g3gl.GenVertexArrays(1, &c->vao0);
    g3gl.GenTransformFeedbacks(1, &c->tfo0);
    c->vao = &c->vao0_state;
    g->ctx[id] = c;
    return 0;
}

int g3_context_destroy(G3 *g, uint32_t id)
{
    if (id == 0 || id > G3_MAX_CONTEXTS || !g->ctx[id])
        return -1;
    struct g3_ctx *c = g->ctx[id];
    if (g->applied == c)
        run_state_of(g, NULL);
    struct g3_ctx *was = g->cur;
    g->cur = c;  /* the tables below are c's */
    for (int t = T_SHARED; t < T_COUNT; t++)
        table_free(g, NULL, &c->t[t - T_SHARED]);
    for (int u = 0; u < G3_UNITS; u++)
        for (int t = 0; t < N_TEX; t++)
            unref(&c->tex[u][t]);
    for (int b = 0; b < N_BUF; b++)
        unref(&c->buf[b]);
    unref(&c->rbo);
    for (int a = 0; a < G3_ATTRIBS; a++)
        unref(&c->vao0_state.a[a].buf);
    unref(&c->vao0_state.elements);
    g3gl.DeleteVertexArrays(1, &c->vao0);
    g3gl.DeleteTransformFeedbacks(1, &c->tfo0);
    if (--c->group->refs == 0) {
        for (int t = 0; t < T_SHARED; t++)
            table_free(g, c->group, &c->group->t[t]);
        free(c->group);
    }
    g->cur = was == c ? NULL : was;
    g->ctx[id] = NULL;
    free(c);
    drain_errors();
    return 0;
}

int g3_make_current(G3 *g, uint32_t id, uint32_t fbo, uint32_t width, uint32_t height)
{
    if (id > G3_MAX_CONTEXTS || (id && !g->ctx[id]))
        return -1;
    struct g3_ctx *c = id ? g->ctx[id] : NULL;
    if (g->applied && g->applied != c)
        run_state_of(g, NULL);  /* saves the one that ran */
    g->cur = c;
    if (!c)
        return 0;
    if (c->st_valid) {
        /* the default framebuffer follows the surface, as with eglMakeCurrent */
        struct g3_state *s = &c->st;
        if (s->draw_fb == (GLint)c->surface_fbo)
            s->draw_fb = (GLint)fbo;
        if (s->read_fb == (GLint)c->surface_fbo)
            s->read_fb = (GLint)fbo;
    }
    if (g->applied == c) {
        GLint d, r;
        g3gl.GetIntegerv(GL_DRAW_FRAMEBUFFER_BINDING, &d);
        g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &r);
        if (d == (GLint)c->surface_fbo)
            g3gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, fbo);
        if (r == (GLint)c->surface_fbo)
            g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, fbo);
    }
    c->surface_fbo = fbo;
    c->surface_w = width;
    c->surface_h = height;
    return 0;
}

uint32_t g3_current(G3 *g)
{
    return g->cur ? g->cur->id : 0;
}

void g3_surface_gone(G3 *g, uint32_t fbo)
{
    for (uint32_t i = 1; i <= G3_MAX_CONTEXTS; i++) {
        struct g3_ctx *c = g->ctx[i];
        if (!c || c->surface_fbo != fbo || fbo == 0)
            continue;
        if (g->applied == c)
            run_state_of(g, NULL);
        if (c->st_valid) {
            if (c->st.draw_fb == (GLint)fbo)
                c->st.draw_fb = 0;
            if (c->st.read_fb == (GLint)fbo)
                c->st.read_fb = 0;
        }
        c->surface_fbo = 0;
        c->surface_w = c->surface_h = 0;
    }
}

uint32_t g3_framebuffer(G3 *g, uint32_t guest)
{
    GLuint host = 0;
    if (!g->cur || !g3_host_name(g, T_FRAMEBUFFER, guest, &host))
        return 0;
    return host;
}

/* ---- PRESENT ------------------------------------------------------------------------------ */

/* a word as a signed 32-bit value: a source or destination may start left of / above the
 * origin */
static int64_t signed_word(uint32_t v)
{
    return v >= 0x80000000u ? (int64_t)v - 0x100000000LL : (int64_t)v;
}

/* a = a's part inside b; 0 when empty */
static int clip_box(int64_t a[4], int64_t b0, int64_t b1, int64_t b2, int64_t b3)
{
    a[0] = a[0] > b0 ? a[0] : b0;
    a[1] = a[1] > b1 ? a[1] : b1;
    a[2] = a[2] < b2 ? a[2] : b2;
    a[3] = a[3] < b3 ? a[3] : b3;
    return a[0] < a[2] && a[1] < a[3];
}

int g3_present_decode(G3 *g, const uint8_t *b, uint32_t nwords, uint32_t width,
                      uint32_t height, struct g3_present *p)
{
    p->n = 0;
    if (nwords < G3_PRESENT_WORDS)
        return -1;
    uint32_t n = g3_word(b, 8);
    if (n > G3_MAX_PRESENT_RECTS || nwords - G3_PRESENT_WORDS != 4 * n)
        return -1;
    p->fb = g3_word(b, 0);
    p->x = signed_word(g3_word(b, 1));
    p->y = signed_word(g3_word(b, 2));
    p->w = g3_word(b, 3);
    p->h = g3_word(b, 4);
    p->qxl = g3_word(b, 5);
    p->dst_x = signed_word(g3_word(b, 6));
    p->dst_y = signed_word(g3_word(b, 7));
    if (!g->cur || p->w >= 0x80000000LL || p->h >= 0x80000000LL)
        return -1;
    int64_t area[4] = {p->dst_x, p->dst_y, p->dst_x + p->w, p->dst_y + p->h};
    int has_area = clip_box(area, 0, 0, width, height);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && has_area; i++) {
        uint32_t rw = g3_word(b, 11 + 4 * i), rh = g3_word(b, 12 + 4 * i);
        if (rw >= 0x80000000u || rh >= 0x80000000u)
            continue;
        int64_t rx = signed_word(g3_word(b, 9 + 4 * i)), ry = signed_word(g3_word(b, 10 + 4 * i));
        int64_t part[4] = {rx, ry, rx + rw, ry + rh};
        if (!clip_box(part, area[0], area[1], area[2], area[3]))
            continue;
        for (int j = 0; j < 4; j++)
            p->boxes[k][j] = (int32_t)part[j];  /* inside the surface */
        k++;
    }
    if (n == 0 && has_area) {
        for (int j = 0; j < 4; j++)
            p->boxes[0][j] = (int32_t)area[j];
        k = 1;
    }
    for (int j = 0; j < 4 && k; j++)
        p->area[j] = (int32_t)area[j];  /* inside the surface */
    p->src_fbo = g3_framebuffer(g, p->fb);
    if (k == 0)
        return 0;
    if (p->fb && !p->src_fbo)
        return -1;
    p->n = k;
    return (int)k;
}

void g3_present_target(G3 *g, uint32_t qxl, uint32_t width, uint32_t height,
                       uint32_t staging_fbo)
{
    g->target_qxl = qxl;
    g->target_w = width;
    g->target_h = height;
    g->target_fbo = staging_fbo;
}

struct g3_presented *g3_presented(G3 *g)
{
    return &g->presented;
}

/* PRESENT's common case (g3_present_target): 1 done, 0 the caller's (nothing recorded;
 * copies already made are the same pixels at the same places the caller's make again) */
static int present_here(G3 *g, const uint8_t *b, uint32_t nwords)
{
    struct g3_presented *r = &g->presented;
    struct g3_present *p = &g->present;
    if (!g->target_fbo || g3_word(b, 5) != g->target_qxl || g3_word(b, 0) == 0
        || r->records == G3_MAX_PRESENTED)
        return 0;
    int k = g3_present_decode(g, b, nwords, g->target_w, g->target_h, p);
    if (k <= 0 || r->boxes + (uint32_t)k > G3_MAX_PRESENT_RECTS)
        return k == 0;
    /* under the context's state: the read and the blit put back what they change */
    uint32_t tex[4];
    if (!g3_read_texture(g, p->src_fbo, tex) || tex[3] != GL_RGBA8)
        return 0;
    /* the boxes over the source texture only: the rest of a source rect has no pixels */
    int64_t left = p->dst_x - p->x, top = p->y + p->h + p->dst_y;
    uint32_t m = 0;
    int32_t (*out)[4] = &r->box[r->boxes];
    for (int i = 0; i < k; i++) {
        int64_t c[4] = {p->boxes[i][0], p->boxes[i][1], p->boxes[i][2], p->boxes[i][3]};
        if (!clip_box(c, left, top - tex[2], left + tex[1], top))
            continue;
        /* the source rect, GL's rows counting up, lands at the box's place in the staging
         * texture (rows in GL's order): inside the texture after the clip above */
        if (g3_blit(g, p->src_fbo, g->target_fbo, (int32_t)(p->x + c[0] - p->dst_x),
                    (int32_t)(top - c[3]), (int32_t)(c[2] - c[0]), (int32_t)(c[3] - c[1]),
                    (int32_t)c[0], (int32_t)(g->target_h - c[3])) != 0)
            return 0;
        for (int j = 0; j < 4; j++)
            out[m][j] = (int32_t)c[j];
        m++;
    }
    if (m) {
        r->n[r->records] = m;
        r->waits[r->records] = g->counters.waits;
        for (int j = 0; j < 4; j++)
            r->area[r->records][j] = p->area[j];
        r->records++;
        r->boxes += m;
    }
    return 1;
}

/* ---- the batch walk ------------------------------------------------------------------------ */

uint32_t g3_execute(G3 *g, const uint8_t *w, uint32_t n, uint32_t pos)
{
    if ((uintptr_t)w & 3)
        return n;  /* the caller's copy is aligned; nothing unaligned is read */
    while (pos < n) {
        uint32_t hdr = g3_word(w, pos);
        uint32_t op = hdr & 0xFFFF, body = hdr >> 16;
        if (op < G3_GL_OPCODE_BASE) {
            /* vgpu commands are the caller's, but for PRESENT where it can run here */
            if (op != G3_OP_PRESENT || body > n - pos - 1 || body < G3_PRESENT_WORDS)
                return pos;
            const uint8_t *pb = w + 4 * ((size_t)pos + 1);
            /* a lost context runs nothing but context and fence commands */
            if (!(g->cur && g->cur->lost) && !present_here(g, pb, body))
                return pos;
            pos += 1 + body;
            continue;
        }
        if (body > n - pos - 1) {
            /* a header past the batch ends it for the current context */
            if (g->cur)
                g3_lose(g, g->cur->id);
            else
                g->counters.dropped++;
            return n;
        }
        const uint8_t *b = w + 4 * ((size_t)pos + 1);
        pos += 1 + body;
        struct g3_ctx *c = g->cur;
        if (c && c->lost && op == G3_OP_glGetError && body == 3) {
            /* the one answer a lost context gives */
            struct g3_out o = {g3_wide(b, 0), g3_word(b, 2)};
            GLenum lost = 0x0507;  /* GL_CONTEXT_LOST */
            uint8_t *dst = o.addr ? translate(g, o.addr, o.cap) : NULL;
            if (dst)
                memcpy(dst, &lost, o.cap < 4 ? o.cap : 4);
            continue;
        }
        if (!c || c->lost) {
            g->counters.dropped++;
            continue;
        }
        uint32_t i = op - G3_GL_OPCODE_BASE;
        if (i >= G3_GL_COMMANDS || !g3_decoders[i]) {
            g3_lose(g, c->id);
            continue;
        }
        run_state_of(g, c);
        g->counters.commands++;
        g3_decoders[i](g, b, body);
    }
    return n;
}

_Static_assert(G3_FENCE_WORDS == sizeof ((struct g3_run *)0)->fence / 4,
               "g3_run.fence holds a FENCE's body");

void g3_run(G3 *g, const uint8_t *w, uint32_t n, struct g3_run *r)
{
    if (r->pos == 0) {
        r->fenced = 0;
        g3_batch_begin(g);
    }
    uint32_t pos = g3_execute(g, w, n, r->pos);
    /* the batch's end (a frame's) FENCE is the caller's to signal once the batch is over */
    if (pos + 1 + G3_FENCE_WORDS == n
            && g3_word(w, pos) == (G3_OP_FENCE | (uint32_t)G3_FENCE_WORDS << 16)) {
        for (uint32_t i = 0; i < G3_FENCE_WORDS; i++)
            r->fence[i] = g3_word(w, pos + 1 + i);
        r->fenced = 1;
        pos = n;
    }
    r->pos = pos;
    if (pos >= n) {
        r->state_on = (uint32_t)g3_batch_end(g);
        r->lost = g3_take_lost(g);
    }
}

void g3_counters(G3 *g, struct g3_counters *out)
{
    *out = g->counters;
    out->bytes = (uint64_t)g->bytes;
}

/* ---- enums a guest may use for context state (ES 3.0's lists) ------------------------------ */

static int cap_index(GLenum cap)
{
    for (int i = 0; i < N_CAPS; i++)
        if (CAPS[i] == cap)
            return i;
    return -1;
}

static int buf_index(GLenum target)
{
    for (int i = 0; i < N_BUF; i++)
        if (BUF_TARGETS[i] == target)
            return i;
    return -1;
}

static int tex_index(GLenum target)
{
    for (int i = 0; i < N_TEX; i++)
        if (TEX_TARGETS[i] == target)
            return i;
    return -1;
}

/* the texture an image call of `target` changes, and which face; NULL (error recorded)
 * when there is none the guest made (texture 0 is refused: its memory has no owner) */
static struct g3_obj *image_texture(G3 *g, GLenum target, int *face, int three_d)
{
    int t;
    *face = 0;
    if (three_d)
        t = target == GL_TEXTURE_3D ? 2 : target == GL_TEXTURE_2D_ARRAY ? 3 : -1;
    else if (target == GL_TEXTURE_2D)
        t = 0;
    else if (target >= GL_TEXTURE_CUBE_MAP_POSITIVE_X
             && target <= GL_TEXTURE_CUBE_MAP_NEGATIVE_Z) {
        t = 1;
        *face = (int)(target - GL_TEXTURE_CUBE_MAP_POSITIVE_X);
    } else {
        t = -1;
    }
    if (t < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return NULL;
    }
    struct g3_obj *o = g->cur->tex[g->cur->active_unit][t];
    if (!o)
        g3_error(g, GL_INVALID_OPERATION);
    return o;
}

/* bytes per pixel of client data in format/type; 0: not an ES 3.0 combination */
static uint32_t pixel_bytes(GLenum format, GLenum type)
{
    uint32_t comps;
    switch (format) {
    case GL_RED: case GL_RED_INTEGER: case GL_ALPHA: case GL_LUMINANCE:
    case GL_DEPTH_COMPONENT: comps = 1; break;
    case GL_RG: case GL_RG_INTEGER: case GL_LUMINANCE_ALPHA: case GL_DEPTH_STENCIL:
        comps = 2; break;
    case GL_RGB: case GL_RGB_INTEGER: comps = 3; break;
    case GL_RGBA: case GL_RGBA_INTEGER: comps = 4; break;
    default: return 0;
    }
    switch (type) {
    case GL_UNSIGNED_BYTE: case GL_BYTE: return comps;
    case GL_UNSIGNED_SHORT: case GL_SHORT: case GL_HALF_FLOAT: return 2 * comps;
    case GL_UNSIGNED_INT: case GL_INT: case GL_FLOAT: return 4 * comps;
    case GL_UNSIGNED_SHORT_5_6_5: case GL_UNSIGNED_SHORT_4_4_4_4:
    case GL_UNSIGNED_SHORT_5_5_5_1: return 2;
    case GL_UNSIGNED_INT_2_10_10_10_REV: case GL_UNSIGNED_INT_10F_11F_11F_REV:
    case GL_UNSIGNED_INT_5_9_9_9_REV: case GL_UNSIGNED_INT_24_8: return 4;
    case GL_FLOAT_32_UNSIGNED_INT_24_8_REV: return 8;
    default: return 0;
    }
}

/* bytes GL reads (unpack) or writes (pack) for an image, with the context's pixel store
 * state as the host has it now; -1: format/type not taken, or dimensions out of range */
static int64_t image_bytes(G3 *g, GLsizei w, GLsizei h, GLsizei d, GLenum format,
                           GLenum type, int unpack)
{
    (void)g;
    uint32_t bpp = pixel_bytes(format, type);
    if (!bpp || w > G3_MAX_DIM || h > G3_MAX_DIM || d > G3_MAX_DIM)
        return -1;
    if (w <= 0 || h <= 0 || d <= 0)
        return 0;  /* GL refuses negative sizes before reading; zero reads nothing */
    GLint align, row_len, skip_px, skip_rows, img_h = 0, skip_img = 0;
    g3gl.GetIntegerv(unpack ? GL_UNPACK_ALIGNMENT : GL_PACK_ALIGNMENT, &align);
    g3gl.GetIntegerv(unpack ? GL_UNPACK_ROW_LENGTH : GL_PACK_ROW_LENGTH, &row_len);
    g3gl.GetIntegerv(unpack ? GL_UNPACK_SKIP_PIXELS : GL_PACK_SKIP_PIXELS, &skip_px);
    g3gl.GetIntegerv(unpack ? GL_UNPACK_SKIP_ROWS : GL_PACK_SKIP_ROWS, &skip_rows);
    if (unpack && d > 1) {
        g3gl.GetIntegerv(GL_UNPACK_IMAGE_HEIGHT, &img_h);
        g3gl.GetIntegerv(GL_UNPACK_SKIP_IMAGES, &skip_img);
    } else if (unpack) {
        g3gl.GetIntegerv(GL_UNPACK_SKIP_IMAGES, &skip_img);
        skip_img = 0;  /* 2D images ignore it */
    }
    if (align < 1)
        align = 1;
    /* pixel store values are >= 0 (GL refuses others) and bounded by G3_MAX_DIM here */
    if (row_len < 0 || row_len > G3_MAX_DIM || skip_px < 0 || skip_px > G3_MAX_DIM
        || skip_rows < 0 || skip_rows > G3_MAX_DIM || img_h < 0 || img_h > G3_MAX_DIM
        || skip_img < 0 || skip_img > G3_MAX_DIM)
        return -1;
    uint64_t row = (uint64_t)(row_len ? row_len : w) * bpp;
    row = (row + (uint64_t)align - 1) / (uint64_t)align * (uint64_t)align;
    uint64_t image = row * (uint64_t)(img_h ? img_h : h);
    uint64_t last = (uint64_t)skip_img * image + (uint64_t)(d - 1) * image
                  + (uint64_t)skip_rows * row + (uint64_t)(h - 1) * row
                  + (uint64_t)skip_px * bpp + (uint64_t)w * bpp;
    return (int64_t)last;
}

/* whether coordinates and sizes stay within +-G3_MAX_DIM: Mesa checks a rect by adding
 * its size to its corner in int, which overflows near 2^31 (the fuzz test saw a read past
 * the framebuffer from glReadPixels at y = 2^31-1, and a write past a texture from
 * glTexSubImage2D at yoffset = 2^31-1); no framebuffer or texture is that large, so
 * nothing a guest could mean is refused (GL_INVALID_VALUE) */
static int coords_ok(G3 *g, int n, const GLint *v)
{
    for (int i = 0; i < n; i++)
        if (v[i] < -(GLint)G3_MAX_DIM || v[i] > (GLint)G3_MAX_DIM) {
            g3_error(g, GL_INVALID_VALUE);
            return 0;
        }
    return 1;
}

/* bytes per texel of a sized internal format (what the host allocates, about) */
static uint32_t ifmt_bytes(GLenum f)
{
    switch (f) {
    case GL_R8: case GL_R8I: case GL_R8UI: case GL_R8_SNORM: case GL_ALPHA:
    case GL_LUMINANCE: case GL_STENCIL_INDEX8: return 1;
    case GL_RG8: case GL_RG8I: case GL_RG8UI: case GL_RG8_SNORM: case GL_R16F: case GL_R16I:
    case GL_R16UI: case GL_RGB565: case GL_RGBA4: case GL_RGB5_A1: case GL_DEPTH_COMPONENT16:
    case GL_LUMINANCE_ALPHA: return 2;
    case GL_RGB8: case GL_SRGB8: case GL_RGB8I: case GL_RGB8UI: case GL_RGB8_SNORM:
    case GL_DEPTH_COMPONENT24: case GL_RGB: return 3;
    case GL_RGBA8: case GL_SRGB8_ALPHA8: case GL_RGBA8I: case GL_RGBA8UI: case GL_RGBA8_SNORM:
    case GL_RGB10_A2: case GL_RGB10_A2UI: case GL_R11F_G11F_B10F: case GL_RGB9_E5:
    case GL_RG16F: case GL_RG16I: case GL_RG16UI: case GL_R32F: case GL_R32I: case GL_R32UI:
    case GL_DEPTH24_STENCIL8: case GL_DEPTH_COMPONENT32F: case GL_RGBA: return 4;
    case GL_RGB16F: case GL_RGB16I: case GL_RGB16UI: return 6;
    case GL_RGBA16F: case GL_RGBA16I: case GL_RGBA16UI: case GL_RG32F: case GL_RG32I:
    case GL_RG32UI: case GL_DEPTH32F_STENCIL8: return 8;
    case GL_RGB32F: case GL_RGB32I: case GL_RGB32UI: return 12;
    default: return 16;  /* unknown or RGBA32*: the most any format takes */
    }
}

/* what a texture level holds now (0 for levels GL refuses) */
static int64_t level_bytes(const struct g3_obj *o, int face, GLint level)
{
    return level >= 0 && level < G3_LEVELS && o->levels ? o->levels[face * G3_LEVELS + level]
                                                        : 0;
}

/* charges `bytes` for a texture level (replacing what it held); 0 when over the quota */
static int charge_level(G3 *g, struct g3_obj *o, int face, GLint level, int64_t bytes)
{
    if (level < 0 || level >= G3_LEVELS)
        return 1;  /* GL refuses the level; nothing changes */
    if (!o->levels && !(o->levels = calloc(6 * G3_LEVELS, sizeof *o->levels))) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return 0;
    }
    struct g3_group *grp = g->cur->group;
    int64_t *slot = &o->levels[face * G3_LEVELS + level];
    if (grp->bytes - *slot + bytes > (int64_t)G3_GROUP_BYTES
        || g->bytes - *slot + bytes > G3_DEVICE_BYTES) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return 0;
    }
    grp->bytes += bytes - *slot;
    g->bytes += bytes - *slot;
    o->bytes += bytes - *slot;
    *slot = bytes;
    return 1;
}

/* charges a whole object (buffers, renderbuffers, immutable textures) */
static int charge_object(G3 *g, struct g3_obj *o, int64_t bytes)
{
    struct g3_group *grp = g->cur->group;
    if (bytes < 0 || grp->bytes - o->bytes + bytes > (int64_t)G3_GROUP_BYTES
        || g->bytes - o->bytes + bytes > G3_DEVICE_BYTES) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return 0;
    }
    grp->bytes += bytes - o->bytes;
    g->bytes += bytes - o->bytes;
    o->bytes = bytes;
    return 1;
}

/* a string parameter as a NUL-terminated copy (it may lack the NUL); NULL: too long */
static const char *string_of(G3 *g, const struct g3_blob *s)
{
    if (s->n > G3_MAX_STRING)
        return NULL;
    size_t n = s->p ? (size_t)s->n : 0;
    const uint8_t *nul = n ? memchr(s->p, 0, n) : NULL;
    if (nul)
        n = (size_t)(nul - s->p);
    if (n)
        memcpy(g->strings, s->p, n);
    g->strings[n] = 0;
    return (const char *)g->strings;
}

/* `count` NUL-terminated strings in a row; NULL when the blob does not hold them */
static const char *const *strings_of(G3 *g, const struct g3_blob *s, GLsizei count)
{
    if (count < 0 || count > G3_MAX_STRINGS || s->n > G3_MAX_STRING || (count && !s->p))
        return NULL;
    if (s->n)
        memcpy(g->strings, s->p, (size_t)s->n);
    g->strings[s->n] = 0;
    size_t at = 0;
    for (GLsizei i = 0; i < count; i++) {
        const uint8_t *nul = memchr(g->strings + at, 0, (size_t)s->n + 1 - at);
        if (!nul || (i < count - 1 && (size_t)(nul - g->strings) >= s->n))
            return NULL;
        g->string_ptrs[i] = (const char *)g->strings + at;
        at = (size_t)(nul - g->strings) + 1;
    }
    return g->string_ptrs;
}

/* ---- handwritten parts of commands (the decoders have checked every length) ---------------- */

#define CUR (g->cur)
#define NAME_OR_FAIL(t, guest, host)                                                      \
    GLuint host;                                                                          \
    if (!g3_host_name(g, t, guest, &host)) {                                              \
        g3_error(g, GL_INVALID_OPERATION);                                                \
        return;                                                                           \
    }

void h_glActiveTexture(G3 *g, GLenum texture)
{
    if (texture < GL_TEXTURE0 || texture >= GL_TEXTURE0 + G3_UNITS) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    CUR->active_unit = texture - GL_TEXTURE0;
    if (CUR->active_unit >= g->unit_hwm)
        g->unit_hwm = CUR->active_unit + 1;
    g3gl.ActiveTexture(texture);
    g3_gl_error(g);
}

static void track(struct g3_obj **slot, struct g3_obj *o)
{
    if (*slot != o) {
        unref(slot);
        *slot = ref(o);
    }
}

/* binds the object `name` (made by the bind if new, as ES allows) and tracks it in slot */
static void bind_tracked(G3 *g, int t, GLenum target, uint32_t name,
                         void (*bind)(GLenum, GLuint), struct g3_obj **slot)
{
    int ok;
    struct g3_obj *o = bind_lookup(g, t, name, 1, &ok);
    if (!ok)
        return;
    bind(target, o ? o->host : 0);
    if (!g3_gl_error(g))
        track(slot, o);
}

void h_glBindBuffer(G3 *g, GLenum target, uint32_t buffer)
{
    int i = buf_index(target);
    if (i < 0)
        g3_error(g, GL_INVALID_ENUM);
    else
        bind_tracked(g, T_BUFFER, target, buffer, g3gl.BindBuffer,
                     i == B_ELEMENT ? &CUR->vao->elements : &CUR->buf[i]);
}

static void bind_indexed(G3 *g, GLenum target, GLuint index, uint32_t buffer, int range,
                         GLintptr offset, GLsizeiptr size)
{
    if ((target != GL_UNIFORM_BUFFER || index >= G3_UBO_BINDINGS)
        && (target != GL_TRANSFORM_FEEDBACK_BUFFER || index >= G3_TF_BINDINGS)) {
        g3_error(g, target == GL_UNIFORM_BUFFER || target == GL_TRANSFORM_FEEDBACK_BUFFER
                    ? GL_INVALID_VALUE : GL_INVALID_ENUM);
        return;
    }
    int ok;
    struct g3_obj *o = bind_lookup(g, T_BUFFER, buffer, 1, &ok);
    if (!ok)
        return;
    if (range)
        g3gl.BindBufferRange(target, index, o ? o->host : 0, offset, size);
    else
        g3gl.BindBufferBase(target, index, o ? o->host : 0);
    if (!g3_gl_error(g))
        track(&CUR->buf[buf_index(target)], o);
}

void h_glBindBufferBase(G3 *g, GLenum target, GLuint index, uint32_t buffer)
{
    bind_indexed(g, target, index, buffer, 0, 0, 0);
}

void h_glBindBufferRange(G3 *g, GLenum target, GLuint index, uint32_t buffer,
                         GLintptr offset, GLsizeiptr size)
{
    bind_indexed(g, target, index, buffer, 1, offset, size);
}

void h_glBindTexture(G3 *g, GLenum target, uint32_t texture)
{
    int i = tex_index(target);
    if (i < 0)
        g3_error(g, GL_INVALID_ENUM);
    else
        bind_tracked(g, T_TEXTURE, target, texture, g3gl.BindTexture,
                     &CUR->tex[CUR->active_unit][i]);
}

void h_glBindRenderbuffer(G3 *g, GLenum target, uint32_t renderbuffer)
{
    if (target != GL_RENDERBUFFER)
        g3_error(g, GL_INVALID_ENUM);
    else
        bind_tracked(g, T_RENDERBUFFER, target, renderbuffer, g3gl.BindRenderbuffer,
                     &CUR->rbo);
}

void h_glBindFramebuffer(G3 *g, GLenum target, uint32_t framebuffer)
{
    int ok;
    if (target != GL_FRAMEBUFFER && target != GL_DRAW_FRAMEBUFFER
        && target != GL_READ_FRAMEBUFFER) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    struct g3_obj *o = bind_lookup(g, T_FRAMEBUFFER, framebuffer, 1, &ok);
    if (!ok)
        return;
    g3gl.BindFramebuffer(target, o ? o->host : CUR->surface_fbo);
    g3_gl_error(g);
}

void h_glBindVertexArray(G3 *g, uint32_t array)
{
    int ok;
    struct g3_obj *o = bind_lookup(g, T_VERTEX_ARRAY, array, 0, &ok);
    if (!ok)
        return;
    g3gl.BindVertexArray(o ? o->host : CUR->vao0);
    if (!g3_gl_error(g))
        CUR->vao = o ? o->vao : &CUR->vao0_state;
}

void h_glBindSampler(G3 *g, GLuint unit, uint32_t sampler)
{
    int ok;
    if (unit >= G3_UNITS) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    struct g3_obj *o = bind_lookup(g, T_SAMPLER, sampler, 0, &ok);
    if (!ok)
        return;
    if (unit >= g->unit_hwm)
        g->unit_hwm = unit + 1;
    g3gl.BindSampler(unit, o ? o->host : 0);
    g3_gl_error(g);
}

void h_glBindTransformFeedback(G3 *g, GLenum target, uint32_t id)
{
    int ok;
    if (target != GL_TRANSFORM_FEEDBACK) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    struct g3_obj *o = bind_lookup(g, T_TF, id, 0, &ok);
    if (!ok)
        return;
    g3gl.BindTransformFeedback(target, o ? o->host : CUR->tfo0);
    g3_gl_error(g);
}

/* glGen*: the guest's names get new host objects */
static void gen(G3 *g, int t, GLsizei n, const uint32_t *names)
{
    if (n < 0) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    for (GLsizei i = 0; i < n; i++)
        if (!create(g, t, names[i], 0))
            return;
}

static void del(G3 *g, int t, GLsizei n, const uint32_t *names)
{
    if (n < 0) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    struct g3_group *grp = t < T_SHARED ? CUR->group : NULL;
    for (GLsizei i = 0; i < n; i++) {
        struct g3_obj *o = lookup(g, t, names[i]);
        if (o && o->vao && CUR->vao == o->vao)
            CUR->vao = &CUR->vao0_state;  /* GL unbinds it: the guest's VAO 0 is bound */
        obj_delete(g, grp, table(g, t), names[i]);
    }
    drain_errors();
    /* GL falls back to object 0 where a deleted container was bound; the guest's object 0
     * is its surface, its own vertex array and transform feedback */
    GLint fb;
    if (t == T_FRAMEBUFFER) {
        g3gl.GetIntegerv(GL_DRAW_FRAMEBUFFER_BINDING, &fb);
        if (fb == 0)
            g3gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, CUR->surface_fbo);
        g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &fb);
        if (fb == 0)
            g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, CUR->surface_fbo);
    } else if (t == T_VERTEX_ARRAY && CUR->vao == &CUR->vao0_state) {
        g3gl.BindVertexArray(CUR->vao0);
    } else if (t == T_TF) {
        g3gl.GetIntegerv(GL_TRANSFORM_FEEDBACK_BINDING, &fb);
        if (fb == 0)
            g3gl.BindTransformFeedback(GL_TRANSFORM_FEEDBACK, CUR->tfo0);
    }
    drain_errors();
}

#define GEN_DELETE(Gen, Delete, t)                                                        \
    void h_gl##Gen(G3 *g, GLsizei n, const uint32_t *names) { gen(g, t, n, names); }      \
    void h_gl##Delete(G3 *g, GLsizei n, const uint32_t *names) { del(g, t, n, names); }
GEN_DELETE(GenBuffers, DeleteBuffers, T_BUFFER)
GEN_DELETE(GenTextures, DeleteTextures, T_TEXTURE)
GEN_DELETE(GenRenderbuffers, DeleteRenderbuffers, T_RENDERBUFFER)
GEN_DELETE(GenFramebuffers, DeleteFramebuffers, T_FRAMEBUFFER)
GEN_DELETE(GenQueries, DeleteQueries, T_QUERY)
GEN_DELETE(GenVertexArrays, DeleteVertexArrays, T_VERTEX_ARRAY)
GEN_DELETE(GenSamplers, DeleteSamplers, T_SAMPLER)
GEN_DELETE(GenTransformFeedbacks, DeleteTransformFeedbacks, T_TF)

void h_glDeleteVertexArrays(G3 *g, GLsizei n, const uint32_t *names);

static void delete_one(G3 *g, int t, uint32_t name, int shader)
{
    struct g3_obj *o = name ? lookup(g, t, name) : NULL;
    if (name && (!o || (t == T_PROGRAM && o->is_shader != shader))) {
        g3_error(g, name && o ? GL_INVALID_OPERATION : GL_INVALID_VALUE);
        return;
    }
    del(g, t, 1, &name);
}

void h_glDeleteShader(G3 *g, uint32_t shader) { delete_one(g, T_PROGRAM, shader, 1); }
void h_glDeleteProgram(G3 *g, uint32_t program) { delete_one(g, T_PROGRAM, program, 0); }
void h_glDeleteSync(G3 *g, uint32_t sync) { delete_one(g, T_SYNC, sync, 0); }

void h_glCreateShader(G3 *g, uint32_t result, GLenum type)
{
    if (type != GL_VERTEX_SHADER && type != GL_FRAGMENT_SHADER) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    GLuint host = g3gl.CreateShader(type);
    if (g3_gl_error(g) || !host)
        return;
    struct g3_obj *o = create(g, T_PROGRAM, result, host);
    if (!o)
        g3gl.DeleteShader(host);
    else
        o->is_shader = 1;
}

void h_glCreateProgram(G3 *g, uint32_t result)
{
    GLuint host = g3gl.CreateProgram();
    if (g3_gl_error(g) || !host)
        return;
    if (!create(g, T_PROGRAM, result, host))
        g3gl.DeleteProgram(host);
}

void h_glFenceSync(G3 *g, uint32_t result, GLenum condition, GLbitfield flags)
{
    if (result == 0 || result >= G3_MAX_NAMES || lookup(g, T_SYNC, result)) {
        g3_error(g, result && result < G3_MAX_NAMES ? GL_INVALID_OPERATION
                                                     : GL_INVALID_VALUE);
        return;
    }
    GLsync s = g3gl.FenceSync(condition, flags);
    if (g3_gl_error(g) || !s)
        return;
    struct g3_obj *o = create(g, T_SYNC, result, 0);
    if (!o)
        g3gl.DeleteSync(s);
    else
        o->sync = s;
}

void h_glClientWaitSync(G3 *g, uint32_t sync, GLbitfield flags, GLuint64 timeout,
                        const struct g3_out *result)
{
    /* the device never waits for the guest: the timeout is always 0 (a poll) */
    (void)timeout;
    GLsync s;
    if (!g3_sync(g, T_SYNC, sync, &s)) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    GLenum r = g3gl.ClientWaitSync(s, flags, 0);
    if (!g3_gl_error(g))
        g3_answer(g, result, &r, 4);
}

static void is_object(G3 *g, int t, uint32_t name, const struct g3_out *result, int shader)
{
    struct g3_obj *o = name ? lookup(g, t, name) : NULL;
    GLboolean r = GL_FALSE;
    if (o && t == T_PROGRAM)
        r = o->is_shader == shader;
    else if (o && t == T_SYNC)
        r = GL_TRUE;
    else if (o)
        switch (t) {
        case T_BUFFER: r = g3gl.IsBuffer(o->host); break;
        case T_TEXTURE: r = g3gl.IsTexture(o->host); break;
        case T_RENDERBUFFER: r = g3gl.IsRenderbuffer(o->host); break;
        case T_FRAMEBUFFER: r = g3gl.IsFramebuffer(o->host); break;
        case T_VERTEX_ARRAY: r = g3gl.IsVertexArray(o->host); break;
        case T_QUERY: r = g3gl.IsQuery(o->host); break;
        case T_SAMPLER: r = g3gl.IsSampler(o->host); break;
        case T_TF: r = g3gl.IsTransformFeedback(o->host); break;
        default: break;
        }
    g3_answer(g, result, &r, 1);
}

#define IS(Fn, t, shader)                                                                 \
    void h_gl##Fn(G3 *g, uint32_t name, const struct g3_out *result)                      \
    {                                                                                     \
        is_object(g, t, name, result, shader);                                            \
    }
IS(IsBuffer, T_BUFFER, 0)
IS(IsTexture, T_TEXTURE, 0)
IS(IsRenderbuffer, T_RENDERBUFFER, 0)
IS(IsFramebuffer, T_FRAMEBUFFER, 0)
IS(IsProgram, T_PROGRAM, 0)
IS(IsShader, T_PROGRAM, 1)
IS(IsQuery, T_QUERY, 0)
IS(IsVertexArray, T_VERTEX_ARRAY, 0)
IS(IsSampler, T_SAMPLER, 0)
IS(IsTransformFeedback, T_TF, 0)
IS(IsSync, T_SYNC, 0)

/* desktop caps whose ES behaviour is always on here (a moderngl-shaped guest library may
 * name them): taken and ignored, never reaching host state */
static int fixed_cap(GLenum cap)
{
    return cap == GL_PROGRAM_POINT_SIZE_ || cap == GL_TEXTURE_CUBE_MAP_SEAMLESS_;
}

void h_glEnable(G3 *g, GLenum cap)
{
    if (fixed_cap(cap))
        return;
    if (cap_index(cap) < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    g3gl.Enable(cap);
    g3_gl_error(g);
}

void h_glDisable(G3 *g, GLenum cap)
{
    if (fixed_cap(cap))
        return;
    if (cap_index(cap) < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    g3gl.Disable(cap);
    g3_gl_error(g);
}

void h_glIsEnabled(G3 *g, GLenum cap, const struct g3_out *result)
{
    GLboolean on = GL_TRUE;
    if (fixed_cap(cap)) {
        g3_answer(g, result, &on, 1);
        return;
    }
    if (cap_index(cap) < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    GLboolean r = g3gl.IsEnabled(cap);
    if (!g3_gl_error(g))
        g3_answer(g, result, &r, 1);
}

void h_glHint(G3 *g, GLenum target, GLenum mode)
{
    if (target != HINTS[0] && target != HINTS[1]) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    g3gl.Hint(target, mode);
    g3_gl_error(g);
}

void h_glPixelStorei(G3 *g, GLenum pname, GLint param)
{
    int known = 0;
    for (int i = 0; i < N_PIXEL; i++)
        known |= PIXEL[i] == pname;
    if (!known) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    g3gl.PixelStorei(pname, param);
    g3_gl_error(g);
}

void h_glGetError(G3 *g, const struct g3_out *result)
{
    GLenum e = CUR->error;
    CUR->error = GL_NO_ERROR;
    g3_answer(g, result, &e, 4);
}

void h_glGetString(G3 *g, GLenum name, const struct g3_out *result)
{
    const char *s;
    switch (name) {
    case GL_VENDOR: s = "vgpu"; break;
    case GL_RENDERER: s = g->renderer; break;
    case GL_VERSION: s = "OpenGL ES 3.0 vgpu"; break;
    case GL_SHADING_LANGUAGE_VERSION: s = "OpenGL ES GLSL ES 3.00 vgpu"; break;
    case GL_EXTENSIONS: s = ""; break;  /* none offered beyond ES 3.0 */
    default: g3_error(g, GL_INVALID_ENUM); return;
    }
    answer_string(g, result, s);
}

void h_glGetStringi(G3 *g, GLenum name, GLuint index, const struct g3_out *result)
{
    (void)index;
    (void)result;
    /* no extensions: every index is past GL_NUM_EXTENSIONS (0) */
    g3_error(g, name == GL_EXTENSIONS ? GL_INVALID_VALUE : GL_INVALID_ENUM);
}

/* whether the framebuffer bound to `target` is the context's surface */
static int on_default(G3 *g, GLenum target)
{
    GLint fb = 0;
    g3gl.GetIntegerv(target == GL_READ_FRAMEBUFFER ? GL_READ_FRAMEBUFFER_BINDING
                                                   : GL_DRAW_FRAMEBUFFER_BINDING, &fb);
    return (GLuint)fb == CUR->surface_fbo;
}

/* ES names the surface's buffers GL_BACK, GL_COLOR, GL_DEPTH, GL_STENCIL; the host's
 * framebuffer object has attachments */
static GLenum default_attachment(GLenum a)
{
    switch (a) {
    case GL_BACK: case GL_COLOR: return GL_COLOR_ATTACHMENT0;
    case GL_DEPTH: return GL_DEPTH_ATTACHMENT;
    case GL_STENCIL: return GL_STENCIL_ATTACHMENT;
    default: return a;
    }
}

/* glGet pnames answered here: vgpu's own limits, and bindings as guest names */
static int binding_table(GLenum pname)
{
    switch (pname) {
    case GL_ARRAY_BUFFER_BINDING: case GL_ELEMENT_ARRAY_BUFFER_BINDING:
    case GL_COPY_READ_BUFFER_BINDING: case GL_COPY_WRITE_BUFFER_BINDING:
    case GL_PIXEL_PACK_BUFFER_BINDING: case GL_PIXEL_UNPACK_BUFFER_BINDING:
    case GL_UNIFORM_BUFFER_BINDING: case GL_TRANSFORM_FEEDBACK_BUFFER_BINDING:
        return T_BUFFER;
    case GL_TEXTURE_BINDING_2D: case GL_TEXTURE_BINDING_CUBE_MAP: case GL_TEXTURE_BINDING_3D:
    case GL_TEXTURE_BINDING_2D_ARRAY:
        return T_TEXTURE;
    case GL_SAMPLER_BINDING: return T_SAMPLER;
    case GL_RENDERBUFFER_BINDING: return T_RENDERBUFFER;
    case GL_CURRENT_PROGRAM: return T_PROGRAM;
    case GL_DRAW_FRAMEBUFFER_BINDING: case GL_READ_FRAMEBUFFER_BINDING: return T_FRAMEBUFFER;
    case GL_VERTEX_ARRAY_BINDING: return T_VERTEX_ARRAY;
    case GL_TRANSFORM_FEEDBACK_BINDING: return T_TF;
    default: return -1;
    }
}

static int own_limit(GLenum pname, GLint64 *v)
{
    switch (pname) {
    case GL_NUM_EXTENSIONS: case GL_NUM_PROGRAM_BINARY_FORMATS:
    case GL_NUM_SHADER_BINARY_FORMATS: case GL_MINOR_VERSION: *v = 0; return 1;
    case GL_MAJOR_VERSION: *v = 3; return 1;
    case GL_MAX_COMBINED_TEXTURE_IMAGE_UNITS: *v = G3_UNITS; return 1;
    case GL_MAX_VERTEX_ATTRIBS: *v = G3_ATTRIBS; return 1;
    case GL_MAX_UNIFORM_BUFFER_BINDINGS: *v = G3_UBO_BINDINGS; return 1;
    default: return 0;
    }
}

enum { AS_BOOL, AS_INT, AS_INT64, AS_FLOAT };

/* one glGet: scalars of our own or bindings, else the host's answer */
static void get_values(G3 *g, GLenum pname, int indexed, GLuint index, int as,
                       const struct g3_out *out)
{
    static const int elem[4] = {1, 4, 8, 4};
    GLint64 v;
    int t = binding_table(pname);
    if (!indexed && (own_limit(pname, &v) || t >= 0)) {
        if (t >= 0) {
            GLint h = 0;
            g3gl.GetIntegerv(pname, &h);
            v = reverse(g, t, h);
        }
        uint8_t buf[8];
        GLboolean b = v != 0;
        GLint i = (GLint)v;
        GLfloat f = (GLfloat)v;
        memcpy(buf, as == AS_BOOL ? (void *)&b : as == AS_INT ? (void *)&i
                    : as == AS_INT64 ? (void *)&v : (void *)&f, (size_t)elem[as]);
        g3_answer(g, out, buf, (size_t)elem[as]);
        return;
    }
    if (indexed && (pname == GL_UNIFORM_BUFFER_BINDING
                    || pname == GL_TRANSFORM_FEEDBACK_BUFFER_BINDING)) {
        GLint h = 0;
        g3gl.GetIntegeri_v(pname, index, &h);
        if (g3_gl_error(g))
            return;
        GLint64 r = reverse(g, T_BUFFER, h);
        GLint r32 = (GLint)r;
        g3_answer(g, out, as == AS_INT64 ? (void *)&r : (void *)&r32, (size_t)elem[as]);
        return;
    }
    int64_t count = g3_compsize_count(g, 0, pname, 0, 0);
    if (indexed)
        count = 4;
    if (count < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    void *s = g3_out_scratch(g, 0, (size_t)count * (size_t)elem[as]);
    if (!s || !g3_out_ok(g, out)) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    if (indexed && as == AS_INT64)
        g3gl.GetInteger64i_v(pname, index, s);
    else if (indexed)
        g3gl.GetIntegeri_v(pname, index, s);
    else if (as == AS_BOOL)
        g3gl.GetBooleanv(pname, s);
    else if (as == AS_INT)
        g3gl.GetIntegerv(pname, s);
    else if (as == AS_INT64)
        g3gl.GetInteger64v(pname, s);
    else
        g3gl.GetFloatv(pname, s);
    if (!g3_gl_error(g))
        g3_answer(g, out, s, (size_t)count * (size_t)elem[as]);
}

void h_glGetBooleanv(G3 *g, GLenum pname, const struct g3_out *data)
{
    get_values(g, pname, 0, 0, AS_BOOL, data);
}

void h_glGetIntegerv(G3 *g, GLenum pname, const struct g3_out *data)
{
    get_values(g, pname, 0, 0, AS_INT, data);
}

void h_glGetInteger64v(G3 *g, GLenum pname, const struct g3_out *data)
{
    get_values(g, pname, 0, 0, AS_INT64, data);
}

void h_glGetFloatv(G3 *g, GLenum pname, const struct g3_out *data)
{
    get_values(g, pname, 0, 0, AS_FLOAT, data);
}

void h_glGetIntegeri_v(G3 *g, GLenum target, GLuint index, const struct g3_out *data)
{
    get_values(g, target, 1, index, AS_INT, data);
}

void h_glGetInteger64i_v(G3 *g, GLenum target, GLuint index, const struct g3_out *data)
{
    get_values(g, target, 1, index, AS_INT64, data);
}

void h_glGetVertexAttribiv(G3 *g, GLuint index, GLenum pname, const struct g3_out *params)
{
    GLint v[4] = {0, 0, 0, 0};
    if (index >= G3_ATTRIBS) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.GetVertexAttribiv(index, pname, v);
    if (g3_gl_error(g))
        return;
    if (pname == GL_VERTEX_ATTRIB_ARRAY_BUFFER_BINDING)
        v[0] = (GLint)reverse(g, T_BUFFER, v[0]);
    g3_answer(g, params, v, pname == GL_CURRENT_VERTEX_ATTRIB ? 16 : 4);
}

void h_glGetFramebufferAttachmentParameteriv(G3 *g, GLenum target, GLenum attachment,
                                             GLenum pname, const struct g3_out *params)
{
    GLint v = 0, type = 0;
    if (on_default(g, target))
        attachment = default_attachment(attachment);
    g3gl.GetFramebufferAttachmentParameteriv(target, attachment, pname, &v);
    if (g3_gl_error(g))
        return;
    if (pname == GL_FRAMEBUFFER_ATTACHMENT_OBJECT_NAME) {
        g3gl.GetFramebufferAttachmentParameteriv(target, attachment,
                                                 GL_FRAMEBUFFER_ATTACHMENT_OBJECT_TYPE, &type);
        v = (GLint)reverse(g, type == GL_TEXTURE ? T_TEXTURE : T_RENDERBUFFER, v);
    }
    g3_answer(g, params, &v, 4);
}

void h_glGetActiveUniformBlockiv(G3 *g, uint32_t program, GLuint uniformBlockIndex,
                                 GLenum pname, const struct g3_out *params)
{
    NAME_OR_FAIL(T_PROGRAM, program, host);
    GLint count = 1;
    if (pname == GL_UNIFORM_BLOCK_ACTIVE_UNIFORM_INDICES)
        g3gl.GetActiveUniformBlockiv(host, uniformBlockIndex, GL_UNIFORM_BLOCK_ACTIVE_UNIFORMS,
                                     &count);
    if (g3_gl_error(g))
        return;
    void *s = count >= 0 ? g3_out_scratch(g, 0, (size_t)count * 4) : NULL;
    if (!s || !g3_out_ok(g, params)) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.GetActiveUniformBlockiv(host, uniformBlockIndex, pname, s);
    if (!g3_gl_error(g))
        g3_answer(g, params, s, (size_t)count * 4);
}

static int query_index(GLenum target)
{
    for (int k = 0; k < N_QUERY; k++)
        if (QUERY_TARGETS[k] == target)
            return k;
    return -1;
}

void h_glBeginQuery(G3 *g, GLenum target, uint32_t id)
{
    struct g3_obj *o = id ? lookup(g, T_QUERY, id) : NULL;
    if (!o) {
        g3_error(g, GL_INVALID_OPERATION);
        return;
    }
    int k = query_index(target);
    if (k >= 0 && !o->query && !(o->query = calloc(1, sizeof *o->query))) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return;
    }
    g3gl.BeginQuery(target, o->host);
    if (g3_gl_error(g) || k < 0)
        return;
    /* a new count: the last one's segments go */
    struct g3_query *q = o->query;
    g3gl.DeleteQueries((GLsizei)q->n, q->seg);
    q->n = 0;
    q->folded = 0;
    q->target = target;
    unref(&CUR->query[k]);
    CUR->query[k] = ref(o);
}

void h_glEndQuery(G3 *g, GLenum target)
{
    g3gl.EndQuery(target);
    int k = query_index(target);
    if (!g3_gl_error(g) && k >= 0)
        unref(&CUR->query[k]);
}

void h_glGetQueryObjectuiv(G3 *g, uint32_t id, GLenum pname, const struct g3_out *params)
{
    NAME_OR_FAIL(T_QUERY, id, host);
    GLuint v = 0;
    if (pname == GL_QUERY_RESULT)
        g->counters.waits++;  /* GL waits for the query's commands */
    g3gl.GetQueryObjectuiv(host, pname, &v);
    if (g3_gl_error(g))
        return;
    /* the stretches before a context switch, if the query spanned one */
    const struct g3_query *q = lookup(g, T_QUERY, id)->query;
    for (uint32_t i = 0; q && i < q->n; i++) {
        GLuint r = 0;
        g3gl.GetQueryObjectuiv(q->seg[i], pname, &r);
        v = pname == GL_QUERY_RESULT ? query_sum(q->target, v, r) : v && r;
    }
    if (q && pname == GL_QUERY_RESULT)
        v = query_sum(q->target, v, q->folded);
    drain_errors();
    g3_answer(g, params, &v, 4);
}

void h_glFinish(G3 *g)
{
    g->counters.waits++;
    g3gl.Finish();
    g3_gl_error(g);
}

/* the number of values a pname-sized array holds (glGet*, *Parameter*v, ClearBuffer*v,
 * GetUniform*v): what GL writes or reads for it, 1 for every single-valued pname */
int64_t g3_compsize_count(G3 *g, uint32_t opcode, int64_t a0, int64_t a1, int64_t a2)
{
    (void)g;
    (void)a1;
    (void)a2;
    const char *name = opcode >= G3_GL_OPCODE_BASE
                       && opcode - G3_GL_OPCODE_BASE < G3_GL_COMMANDS
                       ? g3_command_names[opcode - G3_GL_OPCODE_BASE] : "";
    if (!strncmp(name, "glGetUniform", 12))
        return 16;  /* a mat4 at most */
    if (!strcmp(name, "glGetActiveUniformsiv"))
        return a0;  /* uniformCount */
    GLenum pname = (GLenum)a0;  /* every other COMPSIZE names the pname alone */
    switch (pname) {
    case GL_DEPTH_RANGE: case GL_ALIASED_LINE_WIDTH_RANGE: case GL_ALIASED_POINT_SIZE_RANGE:
    case GL_MAX_VIEWPORT_DIMS:
        return 2;
    case GL_VIEWPORT: case GL_SCISSOR_BOX: case GL_COLOR_CLEAR_VALUE: case GL_COLOR_WRITEMASK:
    case GL_BLEND_COLOR: case 0x1004 /* GL_TEXTURE_BORDER_COLOR */:
    case 0x8E46 /* GL_TEXTURE_SWIZZLE_RGBA */: case GL_COLOR:
        return 4;
    case GL_COMPRESSED_TEXTURE_FORMATS: {
        GLint n = 0;
        g3gl.GetIntegerv(GL_NUM_COMPRESSED_TEXTURE_FORMATS, &n);
        return n < 0 ? 0 : n;
    }
    case GL_PROGRAM_BINARY_FORMATS: case GL_SHADER_BINARY_FORMATS:
        return 0;
    default:
        return 1;
    }
}

/* ---- shaders and programs ------------------------------------------------------------------ */

/* whether a GLSL source starts with a #version line (after blanks and comments) */
static int has_version(const uint8_t *p, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') {
            i++;
        } else if (p[i] == '/' && i + 1 < n && p[i + 1] == '/') {
            while (i < n && p[i] != '\n')
                i++;
        } else if (p[i] == '/' && i + 1 < n && p[i + 1] == '*') {
            i += 2;
            while (i + 1 < n && !(p[i] == '*' && p[i + 1] == '/'))
                i++;
            i += 2;
        } else {
            break;
        }
    }
    return i + 8 <= n && !memcmp(p + i, "#version", 8);
}

void h_glShaderSource(G3 *g, uint32_t shader, GLsizei count, const struct g3_blob *string)
{
    NAME_OR_FAIL(T_PROGRAM, shader, host);
    if (count < 0) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    if (string->n > G3_MAX_SHADER_SOURCE) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return;
    }
    /* ES reads a source without #version as GLSL ES 1.00; a desktop GL would take 1.10 */
    static const char prefix[] = "#version 100\n";
    const GLchar *src[2] = {prefix, string->p ? (const GLchar *)string->p : ""};
    GLint len[2] = {(GLint)sizeof prefix - 1, (GLint)string->n};
    int first = string->p && has_version(string->p, string->n) ? 1 : 0;
    g3gl.ShaderSource(host, 2 - first, src + first, len + first);
    g3_gl_error(g);
}

void h_glBindAttribLocation(G3 *g, uint32_t program, GLuint index, const struct g3_blob *name)
{
    NAME_OR_FAIL(T_PROGRAM, program, host);
    const char *s = string_of(g, name);
    if (!s) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.BindAttribLocation(host, index, s);
    g3_gl_error(g);
}

#define LOCATION(Fn, T)                                                                   \
    void h_gl##Fn(G3 *g, uint32_t program, const struct g3_blob *name,                    \
                  const struct g3_out *result)                                            \
    {                                                                                     \
        NAME_OR_FAIL(T_PROGRAM, program, host);                                           \
        const char *s = string_of(g, name);                                               \
        if (!s) {                                                                         \
            g3_error(g, GL_INVALID_VALUE);                                                \
            return;                                                                       \
        }                                                                                 \
        T r = g3gl.Fn(host, s);                                                           \
        if (!g3_gl_error(g))                                                              \
            g3_answer(g, result, &r, 4);                                                  \
    }
LOCATION(GetAttribLocation, GLint)
LOCATION(GetUniformLocation, GLint)
LOCATION(GetFragDataLocation, GLint)
LOCATION(GetUniformBlockIndex, GLuint)

void h_glTransformFeedbackVaryings(G3 *g, uint32_t program, GLsizei count,
                                   const struct g3_blob *varyings, GLenum bufferMode)
{
    NAME_OR_FAIL(T_PROGRAM, program, host);
    const char *const *v = strings_of(g, varyings, count);
    if (!v) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.TransformFeedbackVaryings(host, count, v, bufferMode);
    g3_gl_error(g);
}

void h_glGetUniformIndices(G3 *g, uint32_t program, GLsizei uniformCount,
                           const struct g3_blob *uniformNames, const struct g3_out *uniformIndices)
{
    NAME_OR_FAIL(T_PROGRAM, program, host);
    const char *const *v = strings_of(g, uniformNames, uniformCount);
    void *s = v ? g3_out_scratch(g, 0, (size_t)uniformCount * 4) : NULL;
    if (!s || !g3_out_ok(g, uniformIndices)) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.GetUniformIndices(host, uniformCount, v, s);
    if (!g3_gl_error(g))
        g3_answer(g, uniformIndices, s, (size_t)uniformCount * 4);
}

/* ---- buffers ---------------------------------------------------------------------------------- */

static struct g3_obj *bound_buffer(G3 *g, GLenum target)
{
    int i = buf_index(target);
    struct g3_obj *o = i < 0 ? NULL : i == B_ELEMENT ? CUR->vao->elements : CUR->buf[i];
    if (!o)
        g3_error(g, i < 0 ? GL_INVALID_ENUM : GL_INVALID_OPERATION);
    return o;
}

void h_glBufferData(G3 *g, GLenum target, GLsizeiptr size, const struct g3_blob *data,
                    GLenum usage)
{
    struct g3_obj *o = bound_buffer(g, target);
    if (!o)
        return;
    if (size < 0) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    if (data->p && data->n < (uint64_t)size) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    int64_t before = o->bytes;
    if (!charge_object(g, o, size))
        return;
    g3gl.BufferData(target, size, data->p, usage);
    if (g3_gl_error(g))
        charge_object(g, o, before);
}

void h_glBufferSubData(G3 *g, GLenum target, GLintptr offset, GLsizeiptr size,
                       const struct g3_blob *data)
{
    if (size < 0 || !data->p || data->n < (uint64_t)size) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    if (!bound_buffer(g, target))
        return;
    g3gl.BufferSubData(target, offset, size, data->p);
    g3_gl_error(g);
}

/* ---- textures and renderbuffers --------------------------------------------------------------- */

/* ES's luminance and alpha formats, which a core context lacks: red/green textures whose
 * swizzle shows them as ES does */
struct lum {
    GLenum format, internal;
    GLint swizzle[4];
};

static int luminance(GLenum format, GLenum type, struct lum *l)
{
    GLenum one = type == GL_FLOAT ? GL_R32F : type == GL_HALF_FLOAT ? GL_R16F : GL_R8;
    GLenum two = type == GL_FLOAT ? GL_RG32F : type == GL_HALF_FLOAT ? GL_RG16F : GL_RG8;
    switch (format) {
    case GL_LUMINANCE:
        *l = (struct lum){GL_RED, one, {GL_RED, GL_RED, GL_RED, GL_ONE}};
        return 1;
    case GL_ALPHA:
        *l = (struct lum){GL_RED, one, {GL_ZERO, GL_ZERO, GL_ZERO, GL_RED}};
        return 1;
    case GL_LUMINANCE_ALPHA:
        *l = (struct lum){GL_RG, two, {GL_RED, GL_RED, GL_RED, GL_GREEN}};
        return 1;
    default:
        return 0;
    }
}

/* the pixels pointer GL gets: the blob, or an offset into a bound unpack buffer (whose
 * bounds GL checks); 0 when the blob cannot serve */
static int pixels_of(G3 *g, const struct g3_blob *b, int64_t need, const void **out)
{
    GLint unpack = 0;
    g3gl.GetIntegerv(GL_PIXEL_UNPACK_BUFFER_BINDING, &unpack);
    *out = b->p;
    if (unpack) {
        /* with an unpack buffer the data comes from it: only the NULL blob (offset 0) */
        if (b->p) {
            g3_error(g, GL_INVALID_OPERATION);
            return 0;
        }
        return 1;
    }
    if (need < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return 0;
    }
    if (b->p && b->n < (uint64_t)need) {
        g3_error(g, GL_INVALID_VALUE);
        return 0;
    }
    return 1;
}

static void tex_image(G3 *g, GLenum target, GLint level, GLint internalformat, GLsizei width,
                      GLsizei height, GLsizei depth, GLint border, GLenum format, GLenum type,
                      const struct g3_blob *pixels, int three_d)
{
    int face;
    struct g3_obj *o = image_texture(g, target, &face, three_d);
    if (!o)
        return;
    const void *p;
    if (!pixels_of(g, pixels, image_bytes(g, width, height, depth, format, type, 1), &p))
        return;
    struct lum l;
    int lum = luminance(format, type, &l) && (GLenum)internalformat == format;
    uint32_t bpp = lum ? ifmt_bytes(l.internal) : (GLenum)internalformat == format
                   ? pixel_bytes(format, type) : ifmt_bytes((GLenum)internalformat);
    int64_t bytes = width > 0 && height > 0 && depth > 0 && width <= G3_MAX_DIM
                    && height <= G3_MAX_DIM && depth <= G3_MAX_DIM
                    ? (int64_t)width * height * depth * bpp : 0;
    int64_t before = level_bytes(o, face, level);
    if (!charge_level(g, o, face, level, bytes))
        return;
    GLint ifmt = lum ? (GLint)l.internal : internalformat;
    GLenum fmt = lum ? l.format : format;
    if (three_d)
        g3gl.TexImage3D(target, level, ifmt, width, height, depth, border, fmt, type, p);
    else
        g3gl.TexImage2D(target, level, ifmt, width, height, border, fmt, type, p);
    if (g3_gl_error(g)) {
        charge_level(g, o, face, level, before);
        return;
    }
    if (lum) {
        GLenum t = three_d ? target : face || target != GL_TEXTURE_2D ? GL_TEXTURE_CUBE_MAP
                                                                      : GL_TEXTURE_2D;
        g3gl.TexParameteri(t, GL_TEXTURE_SWIZZLE_R, l.swizzle[0]);
        g3gl.TexParameteri(t, GL_TEXTURE_SWIZZLE_G, l.swizzle[1]);
        g3gl.TexParameteri(t, GL_TEXTURE_SWIZZLE_B, l.swizzle[2]);
        g3gl.TexParameteri(t, GL_TEXTURE_SWIZZLE_A, l.swizzle[3]);
        drain_errors();
    }
}

void h_glTexImage2D(G3 *g, GLenum target, GLint level, GLint internalformat, GLsizei width,
                    GLsizei height, GLint border, GLenum format, GLenum type,
                    const struct g3_blob *pixels)
{
    tex_image(g, target, level, internalformat, width, height, 1, border, format, type,
              pixels, 0);
}

void h_glTexImage3D(G3 *g, GLenum target, GLint level, GLint internalformat, GLsizei width,
                    GLsizei height, GLsizei depth, GLint border, GLenum format, GLenum type,
                    const struct g3_blob *pixels)
{
    tex_image(g, target, level, internalformat, width, height, depth, border, format, type,
              pixels, 1);
}

static GLenum sub_format(GLenum format, GLenum type)
{
    struct lum l;
    return luminance(format, type, &l) ? l.format : format;
}

void h_glTexSubImage2D(G3 *g, GLenum target, GLint level, GLint xoffset, GLint yoffset,
                       GLsizei width, GLsizei height, GLenum format, GLenum type,
                       const struct g3_blob *pixels)
{
    int face;
    const void *p;
    if (!image_texture(g, target, &face, 0)
        || !coords_ok(g, 4, (GLint[]){xoffset, yoffset, width, height})
        || !pixels_of(g, pixels, image_bytes(g, width, height, 1, format, type, 1), &p))
        return;
    g3gl.TexSubImage2D(target, level, xoffset, yoffset, width, height,
                       sub_format(format, type), type, p);
    g3_gl_error(g);
}

void h_glTexSubImage3D(G3 *g, GLenum target, GLint level, GLint xoffset, GLint yoffset,
                       GLint zoffset, GLsizei width, GLsizei height, GLsizei depth,
                       GLenum format, GLenum type, const struct g3_blob *pixels)
{
    int face;
    const void *p;
    if (!image_texture(g, target, &face, 1)
        || !coords_ok(g, 6, (GLint[]){xoffset, yoffset, zoffset, width, height, depth})
        || !pixels_of(g, pixels, image_bytes(g, width, height, depth, format, type, 1), &p))
        return;
    g3gl.TexSubImage3D(target, level, xoffset, yoffset, zoffset, width, height, depth,
                       sub_format(format, type), type, p);
    g3_gl_error(g);
}

/* compressed data: GL checks imageSize against the format; the blob must hold imageSize */
static int compressed_ok(G3 *g, GLsizei imageSize, const struct g3_blob *data)
{
    GLint unpack = 0;
    g3gl.GetIntegerv(GL_PIXEL_UNPACK_BUFFER_BINDING, &unpack);
    if (imageSize < 0 || unpack || !data->p || data->n < (uint64_t)imageSize) {
        g3_error(g, unpack ? GL_INVALID_OPERATION : GL_INVALID_VALUE);
        return 0;
    }
    return 1;
}

void h_glCompressedTexImage2D(G3 *g, GLenum target, GLint level, GLenum internalformat,
                              GLsizei width, GLsizei height, GLint border, GLsizei imageSize,
                              const struct g3_blob *data)
{
    int face;
    struct g3_obj *o = image_texture(g, target, &face, 0);
    if (!o || !compressed_ok(g, imageSize, data))
        return;
    int64_t before = level_bytes(o, face, level);
    if (!charge_level(g, o, face, level, imageSize))
        return;
    g3gl.CompressedTexImage2D(target, level, internalformat, width, height, border, imageSize,
                              data->p);
    if (g3_gl_error(g))
        charge_level(g, o, face, level, before);
}

void h_glCompressedTexImage3D(G3 *g, GLenum target, GLint level, GLenum internalformat,
                              GLsizei width, GLsizei height, GLsizei depth, GLint border,
                              GLsizei imageSize, const struct g3_blob *data)
{
    int face;
    struct g3_obj *o = image_texture(g, target, &face, 1);
    if (!o || !compressed_ok(g, imageSize, data))
        return;
    int64_t before = level_bytes(o, 0, level);
    if (!charge_level(g, o, 0, level, imageSize))
        return;
    g3gl.CompressedTexImage3D(target, level, internalformat, width, height, depth, border,
                              imageSize, data->p);
    if (g3_gl_error(g))
        charge_level(g, o, 0, level, before);
}

void h_glCompressedTexSubImage2D(G3 *g, GLenum target, GLint level, GLint xoffset,
                                 GLint yoffset, GLsizei width, GLsizei height, GLenum format,
                                 GLsizei imageSize, const struct g3_blob *data)
{
    int face;
    if (!image_texture(g, target, &face, 0)
        || !coords_ok(g, 4, (GLint[]){xoffset, yoffset, width, height})
        || !compressed_ok(g, imageSize, data))
        return;
    g3gl.CompressedTexSubImage2D(target, level, xoffset, yoffset, width, height, format,
                                 imageSize, data->p);
    g3_gl_error(g);
}

void h_glCompressedTexSubImage3D(G3 *g, GLenum target, GLint level, GLint xoffset,
                                 GLint yoffset, GLint zoffset, GLsizei width, GLsizei height,
                                 GLsizei depth, GLenum format, GLsizei imageSize,
                                 const struct g3_blob *data)
{
    int face;
    if (!image_texture(g, target, &face, 1)
        || !coords_ok(g, 6, (GLint[]){xoffset, yoffset, zoffset, width, height, depth})
        || !compressed_ok(g, imageSize, data))
        return;
    g3gl.CompressedTexSubImage3D(target, level, xoffset, yoffset, zoffset, width, height,
                                 depth, format, imageSize, data->p);
    g3_gl_error(g);
}

void h_glCopyTexImage2D(G3 *g, GLenum target, GLint level, GLenum internalformat, GLint x,
                        GLint y, GLsizei width, GLsizei height, GLint border)
{
    int face;
    struct g3_obj *o = image_texture(g, target, &face, 0);
    if (!o || !coords_ok(g, 4, (GLint[]){x, y, width, height}))
        return;
    int64_t bytes = width > 0 && height > 0
                    ? (int64_t)width * height * ifmt_bytes(internalformat) : 0;
    int64_t before = level_bytes(o, face, level);
    if (!charge_level(g, o, face, level, bytes))
        return;
    g3gl.CopyTexImage2D(target, level, internalformat, x, y, width, height, border);
    if (g3_gl_error(g))
        charge_level(g, o, face, level, before);
}

/* glGenerateMipmap makes the levels above the base: they are charged like uploaded levels
 * (the base level's bytes per texel, each level halved down to 1; a 2D array keeps its
 * layers), so a guest cannot grow past the quota by generating what it may not upload.
 * Immutable textures were charged whole by glTexStorage*; texture 0 holds no image. */
void h_glGenerateMipmap(G3 *g, GLenum target)
{
    int t = tex_index(target);
    struct g3_obj *o = t < 0 ? NULL : g->cur->tex[g->cur->active_unit][t];
    if (!o || !o->levels) {
        g3gl.GenerateMipmap(target);
        g3_gl_error(g);
        return;
    }
    GLint base = 0, max_level = 0, w = 0, h = 0, d = 0;
    g3gl.GetTexParameteriv(target, GL_TEXTURE_BASE_LEVEL, &base);
    g3gl.GetTexParameteriv(target, GL_TEXTURE_MAX_LEVEL, &max_level);
    GLenum image = target == GL_TEXTURE_CUBE_MAP ? GL_TEXTURE_CUBE_MAP_POSITIVE_X : target;
    if (base >= 0 && base < G3_LEVELS) {
        get_tex_level_parameteriv(image, base, GL_TEXTURE_WIDTH_, &w);
        get_tex_level_parameteriv(image, base, GL_TEXTURE_HEIGHT_, &h);
        get_tex_level_parameteriv(image, base, GL_TEXTURE_DEPTH_, &d);
    }
    drain_errors();
    int faces = target == GL_TEXTURE_CUBE_MAP ? 6 : 1, deep = target == GL_TEXTURE_3D;
    int64_t before[6][G3_LEVELS];
    int top = base, ok = 1;  /* levels base+1..top are charged anew */
    if (w > 0 && h > 0 && d > 0) {
        GLint span = w > h ? w : h;
        if (deep && d > span)
            span = d;
        while (top < G3_LEVELS - 1 && top < max_level && span >> (top - base) > 1)
            top++;
    }
    for (int f = 0; f < faces; f++) {
        int64_t texels = (int64_t)w * h * d, base_bytes = level_bytes(o, f, base);
        for (GLint l = base + 1; l <= top; l++) {
            int k = l - base;
            int64_t lw = w >> k ? w >> k : 1, lh = h >> k ? h >> k : 1;
            int64_t ld = deep ? (d >> k ? d >> k : 1) : d;
            before[f][l] = level_bytes(o, f, l);
            if (ok && !charge_level(g, o, f, l, base_bytes / texels * lw * lh * ld))
                ok = 0;
            if (!ok)  /* levels after the refused one keep their bytes: mark them so */
                before[f][l] = -1;
        }
    }
    if (ok) {
        g3gl.GenerateMipmap(target);
        ok = !g3_gl_error(g);
    }
    if (!ok)
        for (int f = 0; f < faces; f++)
            for (GLint l = base + 1; l <= top; l++)
                if (before[f][l] >= 0)
                    charge_level(g, o, f, l, before[f][l]);
}

static void tex_storage(G3 *g, GLenum target, GLsizei levels, GLenum internalformat,
                        GLsizei width, GLsizei height, GLsizei depth, int three_d)
{
    int t = tex_index(target), face;
    if (t < 0 || (three_d != (t >= 2))) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    struct g3_obj *o = image_texture(g, t == 1 ? GL_TEXTURE_CUBE_MAP_POSITIVE_X : target,
                                     &face, three_d);
    if (!o)
        return;
    if (levels < 1 || levels > G3_LEVELS || width < 1 || height < 1 || depth < 1
        || width > G3_MAX_DIM || height > G3_MAX_DIM || depth > G3_MAX_DIM) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    int64_t bytes = 0;
    for (GLsizei l = 0; l < levels; l++) {
        int64_t w = width >> l ? width >> l : 1, h = height >> l ? height >> l : 1;
        int64_t d = target == GL_TEXTURE_3D ? (depth >> l ? depth >> l : 1) : depth;
        bytes += w * h * d * ifmt_bytes(internalformat) * (t == 1 ? 6 : 1);
    }
    int64_t before = o->bytes;
    if (!charge_object(g, o, bytes))
        return;
    if (three_d)
        g3gl.TexStorage3D(target, levels, internalformat, width, height, depth);
    else
        g3gl.TexStorage2D(target, levels, internalformat, width, height);
    if (g3_gl_error(g))
        charge_object(g, o, before);
    else if (o->levels)
        memset(o->levels, 0, 6 * G3_LEVELS * sizeof *o->levels);
}

void h_glTexStorage2D(G3 *g, GLenum target, GLsizei levels, GLenum internalformat,
                      GLsizei width, GLsizei height)
{
    tex_storage(g, target, levels, internalformat, width, height, 1, 0);
}

void h_glTexStorage3D(G3 *g, GLenum target, GLsizei levels, GLenum internalformat,
                      GLsizei width, GLsizei height, GLsizei depth)
{
    tex_storage(g, target, levels, internalformat, width, height, depth, 1);
}

static void renderbuffer_storage(G3 *g, GLenum target, GLsizei samples,
                                 GLenum internalformat, GLsizei width, GLsizei height)
{
    struct g3_obj *o = CUR->rbo;
    if (target != GL_RENDERBUFFER || !o) {
        g3_error(g, target != GL_RENDERBUFFER ? GL_INVALID_ENUM : GL_INVALID_OPERATION);
        return;
    }
    if (width < 0 || height < 0 || samples < 0 || width > G3_MAX_DIM || height > G3_MAX_DIM
        || samples > 64) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    int64_t before = o->bytes;
    if (!charge_object(g, o, (int64_t)width * height * ifmt_bytes(internalformat)
                             * (samples > 1 ? samples : 1)))
        return;
    g3gl.RenderbufferStorageMultisample(target, samples, internalformat, width, height);
    if (g3_gl_error(g))
        charge_object(g, o, before);
}

void h_glRenderbufferStorage(G3 *g, GLenum target, GLenum internalformat, GLsizei width,
                             GLsizei height)
{
    renderbuffer_storage(g, target, 0, internalformat, width, height);
}

void h_glRenderbufferStorageMultisample(G3 *g, GLenum target, GLsizei samples,
                                        GLenum internalformat, GLsizei width, GLsizei height)
{
    renderbuffer_storage(g, target, samples, internalformat, width, height);
}

/* pname-sized parameter arrays: at most 4 values, read from a zero-padded copy */
static const void *params_of(G3 *g, GLenum pname, const struct g3_blob *b, void *copy16)
{
    int64_t count = g3_compsize_count(g, 0, pname, 0, 0);
    if (count < 1 || !b->p || b->n < (uint64_t)count * 4) {
        g3_error(g, GL_INVALID_VALUE);
        return NULL;
    }
    memset(copy16, 0, 16);
    memcpy(copy16, b->p, (size_t)count * 4);
    return copy16;
}

#define TEX_PARAMS(Fn, T)                                                                 \
    void h_gl##Fn(G3 *g, GLenum target, GLenum pname, const struct g3_blob *params)       \
    {                                                                                     \
        T copy[4];                                                                        \
        if (tex_index(target) < 0) {                                                      \
            g3_error(g, GL_INVALID_ENUM);                                                 \
            return;                                                                       \
        }                                                                                 \
        const void *p = params_of(g, pname, params, copy);                                \
        if (p) {                                                                          \
            g3gl.Fn(target, pname, p);                                                    \
            g3_gl_error(g);                                                               \
        }                                                                                 \
    }
TEX_PARAMS(TexParameterfv, GLfloat)
TEX_PARAMS(TexParameteriv, GLint)

#define SAMPLER_PARAMS(Fn, T)                                                             \
    void h_gl##Fn(G3 *g, uint32_t sampler, GLenum pname, const struct g3_blob *param)     \
    {                                                                                     \
        T copy[4];                                                                        \
        NAME_OR_FAIL(T_SAMPLER, sampler, host);                                           \
        const void *p = params_of(g, pname, param, copy);                                 \
        if (p) {                                                                          \
            g3gl.Fn(host, pname, p);                                                      \
            g3_gl_error(g);                                                               \
        }                                                                                 \
    }
SAMPLER_PARAMS(SamplerParameterfv, GLfloat)
SAMPLER_PARAMS(SamplerParameteriv, GLint)

#define CLEAR_BUFFER(Fn, T)                                                               \
    void h_gl##Fn(G3 *g, GLenum buffer, GLint drawbuffer, const struct g3_blob *value)    \
    {                                                                                     \
        T copy[4];                                                                        \
        if (buffer != GL_COLOR && buffer != GL_DEPTH && buffer != GL_STENCIL) {           \
            g3_error(g, GL_INVALID_ENUM);                                                 \
            return;                                                                       \
        }                                                                                 \
        const void *p = params_of(g, buffer, value, copy);                                \
        if (p) {                                                                          \
            g3gl.Fn(buffer, drawbuffer, p);                                               \
            g3_gl_error(g);                                                               \
        }                                                                                 \
    }
CLEAR_BUFFER(ClearBufferfv, GLfloat)
CLEAR_BUFFER(ClearBufferiv, GLint)
CLEAR_BUFFER(ClearBufferuiv, GLuint)

void h_glViewport(G3 *g, GLint x, GLint y, GLsizei width, GLsizei height)
{
    if (!coords_ok(g, 4, (GLint[]){x, y, width, height}))
        return;
    g3gl.Viewport(x, y, width, height);
    g3_gl_error(g);
}

void h_glScissor(G3 *g, GLint x, GLint y, GLsizei width, GLsizei height)
{
    if (!coords_ok(g, 4, (GLint[]){x, y, width, height}))
        return;
    g3gl.Scissor(x, y, width, height);
    g3_gl_error(g);
}

void h_glCopyTexSubImage2D(G3 *g, GLenum target, GLint level, GLint xoffset, GLint yoffset,
                           GLint x, GLint y, GLsizei width, GLsizei height)
{
    if (!coords_ok(g, 6, (GLint[]){xoffset, yoffset, x, y, width, height}))
        return;
    g3gl.CopyTexSubImage2D(target, level, xoffset, yoffset, x, y, width, height);
    g3_gl_error(g);
}

void h_glCopyTexSubImage3D(G3 *g, GLenum target, GLint level, GLint xoffset, GLint yoffset,
                           GLint zoffset, GLint x, GLint y, GLsizei width, GLsizei height)
{
    if (!coords_ok(g, 7, (GLint[]){xoffset, yoffset, zoffset, x, y, width, height}))
        return;
    g3gl.CopyTexSubImage3D(target, level, xoffset, yoffset, zoffset, x, y, width, height);
    g3_gl_error(g);
}

void h_glBlitFramebuffer(G3 *g, GLint srcX0, GLint srcY0, GLint srcX1, GLint srcY1,
                         GLint dstX0, GLint dstY0, GLint dstX1, GLint dstY1, GLbitfield mask,
                         GLenum filter)
{
    if (!coords_ok(g, 8, (GLint[]){srcX0, srcY0, srcX1, srcY1, dstX0, dstY0, dstX1, dstY1}))
        return;
    g3gl.BlitFramebuffer(srcX0, srcY0, srcX1, srcY1, dstX0, dstY0, dstX1, dstY1, mask, filter);
    g3_gl_error(g);
}

void h_glReadPixels(G3 *g, GLint x, GLint y, GLsizei width, GLsizei height, GLenum format,
                    GLenum type, const struct g3_out *pixels)
{
    if (!coords_ok(g, 4, (GLint[]){x, y, width, height}))
        return;
    GLint pack = 0;
    g3gl.GetIntegerv(GL_PIXEL_PACK_BUFFER_BINDING, &pack);
    g->counters.waits++;
    if (pack) {
        /* into the bound pack buffer: the address words are the offset (GL checks it) */
        g3gl.ReadPixels(x, y, width, height, format, type,
                        (void *)(uintptr_t)pixels->addr);
        g3_gl_error(g);
        return;
    }
    int64_t need = image_bytes(g, width, height, 1, format, type, 0);
    if (need < 0) {
        g3_error(g, GL_INVALID_ENUM);
        return;
    }
    uint8_t *dst = pixels->addr ? translate(g, pixels->addr, pixels->cap) : NULL;
    if (!dst || (uint64_t)need > pixels->cap) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.ReadPixels(x, y, width, height, format, type, dst);
    g3_gl_error(g);
}

/* ---- vertex arrays and draws -------------------------------------------------------------- */

static uint32_t type_bytes(GLenum type)
{
    switch (type) {
    case GL_BYTE: case GL_UNSIGNED_BYTE: return 1;
    case GL_SHORT: case GL_UNSIGNED_SHORT: case GL_HALF_FLOAT: return 2;
    case GL_INT: case GL_UNSIGNED_INT: case GL_FLOAT: case GL_FIXED: return 4;
    default: return 0;
    }
}

static void attrib_pointer(G3 *g, GLuint index, GLint size, GLenum type, GLboolean normalized,
                           GLsizei stride, uint64_t pointer, int integer)
{
    if (index >= G3_ATTRIBS) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    struct g3_obj *buf = CUR->buf[0];
    if (!buf) {
        /* client-side arrays are the guest library's to upload: GL would read our memory */
        g3_error(g, GL_INVALID_OPERATION);
        return;
    }
    uint32_t elem = type == GL_INT_2_10_10_10_REV || type == GL_UNSIGNED_INT_2_10_10_10_REV
                    ? 4 : size >= 1 && size <= 4 ? type_bytes(type) * (uint32_t)size : 0;
    if (integer)
        g3gl.VertexAttribIPointer(index, size, type, stride, (const void *)(uintptr_t)pointer);
    else
        g3gl.VertexAttribPointer(index, size, type, normalized, stride,
                                 (const void *)(uintptr_t)pointer);
    if (g3_gl_error(g))
        return;
    struct g3_attrib *a = &CUR->vao->a[index];
    track(&a->buf, buf);
    a->offset = pointer;
    a->elem = elem;
    a->stride = stride ? (uint32_t)stride : elem;
}

void h_glVertexAttribPointer(G3 *g, GLuint index, GLint size, GLenum type,
                             GLboolean normalized, GLsizei stride, uint64_t pointer)
{
    attrib_pointer(g, index, size, type, normalized, stride, pointer, 0);
}

void h_glVertexAttribIPointer(G3 *g, GLuint index, GLint size, GLenum type, GLsizei stride,
                              uint64_t pointer)
{
    attrib_pointer(g, index, size, type, GL_FALSE, stride, pointer, 1);
}

static void attrib_array(G3 *g, GLuint index, int on)
{
    if (index >= G3_ATTRIBS) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    (on ? g3gl.EnableVertexAttribArray : g3gl.DisableVertexAttribArray)(index);
    if (g3_gl_error(g))
        return;
    if (on)
        CUR->vao->enabled |= 1u << index;
    else
        CUR->vao->enabled &= ~(1u << index);
}

void h_glEnableVertexAttribArray(G3 *g, GLuint index) { attrib_array(g, index, 1); }
void h_glDisableVertexAttribArray(G3 *g, GLuint index) { attrib_array(g, index, 0); }

/* after a glVertexAttrib* call: the current value of `index` has type `type` if GL took it */
static void attrib_typed(G3 *g, GLuint index, uint8_t type)
{
    if (!g3_gl_error(g) && index < G3_ATTRIBS)
        CUR->st.attrib_type[index] = type;
}

/* every glVertexAttrib* as its 4-component form (GL fills y, z with 0 and w with 1) */
static void attrib_f(G3 *g, GLuint index, const GLfloat v[4])
{
    g3gl.VertexAttrib4fv(index, v);
    attrib_typed(g, index, A_FLOAT);
}

static void attrib_fv(G3 *g, GLuint index, const void *v, int n)
{
    GLfloat f[4] = {0, 0, 0, 1};
    memcpy(f, v, (size_t)n * sizeof f[0]);
    attrib_f(g, index, f);
}

static void attrib_i(G3 *g, GLuint index, const void *v, uint8_t type)
{
    if (type == A_INT)
        g3gl.VertexAttribI4iv(index, v);
    else
        g3gl.VertexAttribI4uiv(index, v);
    attrib_typed(g, index, type);
}

void h_glVertexAttrib1f(G3 *g, GLuint index, GLfloat x)
{
    attrib_f(g, index, (GLfloat[4]){x, 0, 0, 1});
}

void h_glVertexAttrib2f(G3 *g, GLuint index, GLfloat x, GLfloat y)
{
    attrib_f(g, index, (GLfloat[4]){x, y, 0, 1});
}

void h_glVertexAttrib3f(G3 *g, GLuint index, GLfloat x, GLfloat y, GLfloat z)
{
    attrib_f(g, index, (GLfloat[4]){x, y, z, 1});
}

void h_glVertexAttrib4f(G3 *g, GLuint index, GLfloat x, GLfloat y, GLfloat z, GLfloat w)
{
    attrib_f(g, index, (GLfloat[4]){x, y, z, w});
}

void h_glVertexAttrib1fv(G3 *g, GLuint index, const void *v) { attrib_fv(g, index, v, 1); }
void h_glVertexAttrib2fv(G3 *g, GLuint index, const void *v) { attrib_fv(g, index, v, 2); }
void h_glVertexAttrib3fv(G3 *g, GLuint index, const void *v) { attrib_fv(g, index, v, 3); }
void h_glVertexAttrib4fv(G3 *g, GLuint index, const void *v) { attrib_fv(g, index, v, 4); }
void h_glVertexAttribI4iv(G3 *g, GLuint index, const void *v) { attrib_i(g, index, v, A_INT); }
void h_glVertexAttribI4uiv(G3 *g, GLuint index, const void *v) { attrib_i(g, index, v, A_UINT); }

void h_glVertexAttribI4i(G3 *g, GLuint index, GLint x, GLint y, GLint z, GLint w)
{
    attrib_i(g, index, (GLint[4]){x, y, z, w}, A_INT);
}

void h_glVertexAttribI4ui(G3 *g, GLuint index, GLuint x, GLuint y, GLuint z, GLuint w)
{
    attrib_i(g, index, (GLuint[4]){x, y, z, w}, A_UINT);
}

void h_glVertexAttribDivisor(G3 *g, GLuint index, GLuint divisor)
{
    if (index >= G3_ATTRIBS) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    g3gl.VertexAttribDivisor(index, divisor);
    if (!g3_gl_error(g))
        CUR->vao->a[index].divisor = divisor;
}

/* whether every enabled array holds the vertices [0, vertices) and the instances
 * [0, instances) a draw reads; records GL_INVALID_OPERATION when not */
static int arrays_hold(G3 *g, uint64_t vertices, uint64_t instances)
{
    const struct g3_vao *v = CUR->vao;
    for (int i = 0; i < G3_ATTRIBS; i++) {
        if (!(v->enabled & (1u << i)))
            continue;
        const struct g3_attrib *a = &v->a[i];
        uint64_t n = a->divisor ? (instances + a->divisor - 1) / a->divisor : vertices;
        if (n == 0)
            continue;
        if (!a->buf || a->buf->bytes < 0 || a->offset > (uint64_t)a->buf->bytes
            || (n - 1) > ((uint64_t)a->buf->bytes - a->offset) / (a->stride ? a->stride : 1)
            || (n - 1) * a->stride + a->elem > (uint64_t)a->buf->bytes - a->offset) {
            g3_error(g, GL_INVALID_OPERATION);
            return 0;
        }
    }
    return 1;
}

/* whether a draw stays under G3_MAX_DRAW_VERTICES (records GL_OUT_OF_MEMORY if not) */
static int draw_size_ok(G3 *g, GLsizei count, GLsizei instances)
{
    if (count > 0 && instances > 0
        && (uint64_t)count * (uint64_t)instances > G3_MAX_DRAW_VERTICES) {
        g3_error(g, GL_OUT_OF_MEMORY);
        return 0;
    }
    return 1;
}

void h_glDrawArrays(G3 *g, GLenum mode, GLint first, GLsizei count)
{
    if (!draw_size_ok(g, count, 1))
        return;
    if (first >= 0 && count > 0 && !arrays_hold(g, (uint64_t)first + (uint64_t)count, 1))
        return;
    g3gl.DrawArrays(mode, first, count);
    g3_gl_error(g);
}

void h_glDrawArraysInstanced(G3 *g, GLenum mode, GLint first, GLsizei count,
                             GLsizei instancecount)
{
    if (!draw_size_ok(g, count, instancecount))
        return;
    if (first >= 0 && count > 0 && instancecount > 0
        && !arrays_hold(g, (uint64_t)first + (uint64_t)count, (uint64_t)instancecount))
        return;
    g3gl.DrawArraysInstanced(mode, first, count, instancecount);
    g3_gl_error(g);
}

/* the index buffer holds `count` indices of `type` at `offset`; the vertices they name
 * are fetched by the driver, which bounds them (see vgpu/render/gl3d.py) */
static int indices_hold(G3 *g, GLsizei count, GLenum type, uint64_t offset,
                        uint64_t instances)
{
    if (!draw_size_ok(g, count, (GLsizei)instances))
        return 0;
    uint32_t size = type == GL_UNSIGNED_BYTE ? 1 : type == GL_UNSIGNED_SHORT ? 2
                  : type == GL_UNSIGNED_INT ? 4 : 0;
    if (count <= 0 || !size)
        return 1;  /* GL refuses it, or draws nothing */
    struct g3_obj *e = CUR->vao->elements;
    if (!e || offset > (uint64_t)e->bytes
        || (uint64_t)count * size > (uint64_t)e->bytes - offset) {
        g3_error(g, GL_INVALID_OPERATION);
        return 0;
    }
    /* every enabled array needs a buffer (else GL reads client memory: ours); instanced
     * arrays are read by instance, whatever the indices say */
    const struct g3_vao *v = CUR->vao;
    for (int i = 0; i < G3_ATTRIBS; i++)
        if ((v->enabled & (1u << i)) && !v->a[i].buf) {
            g3_error(g, GL_INVALID_OPERATION);
            return 0;
        }
    return arrays_hold(g, 0, instances);
}

void h_glDrawElements(G3 *g, GLenum mode, GLsizei count, GLenum type, uint64_t indices)
{
    if (!indices_hold(g, count, type, indices, 1))
        return;
    g3gl.DrawElements(mode, count, type, (const void *)(uintptr_t)indices);
    g3_gl_error(g);
}

void h_glDrawRangeElements(G3 *g, GLenum mode, GLuint start, GLuint end, GLsizei count,
                           GLenum type, uint64_t indices)
{
    if (!indices_hold(g, count, type, indices, 1))
        return;
    g3gl.DrawRangeElements(mode, start, end, count, type, (const void *)(uintptr_t)indices);
    g3_gl_error(g);
}

void h_glDrawElementsInstanced(G3 *g, GLenum mode, GLsizei count, GLenum type,
                               uint64_t indices, GLsizei instancecount)
{
    if (instancecount > 0
        && !indices_hold(g, count, type, indices, (uint64_t)instancecount))
        return;
    g3gl.DrawElementsInstanced(mode, count, type, (const void *)(uintptr_t)indices,
                               instancecount);
    g3_gl_error(g);
}

/* ---- the default framebuffer ------------------------------------------------------------------ */

void h_glDrawBuffers(G3 *g, GLsizei n, const void *bufs)
{
    GLenum b[16];
    if (n < 0 || n > 16) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    memcpy(b, bufs, (size_t)n * 4);
    if (on_default(g, GL_DRAW_FRAMEBUFFER))
        for (GLsizei i = 0; i < n; i++)
            b[i] = default_attachment(b[i]);
    g3gl.DrawBuffers(n, b);
    g3_gl_error(g);
}

void h_glReadBuffer(G3 *g, GLenum src)
{
    g3gl.ReadBuffer(on_default(g, GL_READ_FRAMEBUFFER) ? default_attachment(src) : src);
    g3_gl_error(g);
}

static void invalidate(G3 *g, GLenum target, GLsizei n, const void *attachments, int sub,
                       GLint x, GLint y, GLsizei width, GLsizei height)
{
    GLenum a[16];
    if (sub && !coords_ok(g, 4, (GLint[]){x, y, width, height}))
        return;
    if (n < 0 || n > 16) {
        g3_error(g, GL_INVALID_VALUE);
        return;
    }
    memcpy(a, attachments, (size_t)n * 4);
    if (on_default(g, target))
        for (GLsizei i = 0; i < n; i++)
            a[i] = default_attachment(a[i]);
    if (sub)
        g3gl.InvalidateSubFramebuffer(target, n, a, x, y, width, height);
    else
        g3gl.InvalidateFramebuffer(target, n, a);
    g3_gl_error(g);
}

void h_glInvalidateFramebuffer(G3 *g, GLenum target, GLsizei numAttachments,
                               const void *attachments)
{
    invalidate(g, target, numAttachments, attachments, 0, 0, 0, 0, 0);
}

void h_glInvalidateSubFramebuffer(G3 *g, GLenum target, GLsizei numAttachments,
                                  const void *attachments, GLint x, GLint y, GLsizei width,
                                  GLsizei height)
{
    invalidate(g, target, numAttachments, attachments, 1, x, y, width, height);
}

/* ---- the host ------------------------------------------------------------------------------- */

static void *(*egl_get_proc)(const char *);

static void *getproc(const char *name)
{
    return egl_get_proc(name);
}

G3 *g3_new(void)
{
    if (!egl_get_proc) {
        void *egl = dlopen("libEGL.so.1", RTLD_NOW | RTLD_GLOBAL);
        if (!egl) {
            snprintf(last_error, sizeof last_error, "libEGL.so.1: %s", dlerror());
            return NULL;
        }
        egl_get_proc = (void *(*)(const char *))dlsym(egl, "eglGetProcAddress");
        if (!egl_get_proc) {
            snprintf(last_error, sizeof last_error, "libEGL.so.1 lacks eglGetProcAddress");
            return NULL;
        }
    }
    get_tex_level_parameteriv = (void (*)(GLenum, GLint, GLenum, GLint *))
        getproc("glGetTexLevelParameteriv");
    if (g3_load_procs(getproc) < 0 || !get_tex_level_parameteriv) {
        snprintf(last_error, sizeof last_error, "the GL lacks an OpenGL ES 3.0 entry point");
        return NULL;
    }
    G3 *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->scratch = malloc((size_t)G3_OUTS * G3_OUT_REGION);
    g->strings = malloc(G3_MAX_STRING + 1);
    if (!g->scratch || !g->strings) {
        g3_free(g);
        return NULL;
    }
    const GLubyte *r = g3gl.GetString(GL_RENDERER);
    snprintf(g->renderer, sizeof g->renderer, "vgpu (%s)", r ? (const char *)r : "unknown");
    GLint attribs = 0, next = 0;
    g3gl.GetIntegerv(GL_NUM_EXTENSIONS, &next);
    for (GLint i = 0; i < next; i++) {
        const GLubyte *e = g3gl.GetStringi(GL_EXTENSIONS, (GLuint)i);
        g->pack_invert |= e && !strcmp((const char *)e, "GL_MESA_pack_invert");
    }
    g3gl.GetIntegerv(GL_MAX_VERTEX_ATTRIBS, &attribs);
    g->host_attribs = attribs > 0 ? (uint32_t)attribs : 0;
    if (g->host_attribs < G3_ATTRIBS) {
        snprintf(last_error, sizeof last_error, "the GL has %d vertex attributes", attribs);
        g3_free(g);
        return NULL;
    }
    drain_errors();
    return g;
}

void g3_free(G3 *g)
{
    if (!g)
        return;
    if (g->scratch) {
        int in = g->in_batch;
        if (!in)
            g3_batch_begin(g);
        for (uint32_t i = 1; i <= G3_MAX_CONTEXTS; i++)
            if (g->ctx[i])
                g3_context_destroy(g, i);
        g3_to_2d(g);
    }

    free(g->scratch);
    free(g->strings);
    free(g);
}

/* ---- drawables -------------------------------------------------------------------------------- */

uint32_t g3_max_renderbuffer_size(G3 *g)
{
    (void)g;
    GLint v = 0;
    g3gl.GetIntegerv(GL_MAX_RENDERBUFFER_SIZE, &v);
    return v > 0 ? (uint32_t)v : 0;
}

uint32_t g3_max_samples(G3 *g)
{
    (void)g;
    GLint v = 0;
    g3gl.GetIntegerv(GL_MAX_SAMPLES, &v);
    return v > 0 ? (uint32_t)v : 0;
}

int g3_surface_new(G3 *g, uint32_t width, uint32_t height, uint32_t flags, uint32_t samples,
                   uint32_t names[3])
{
    GLint fb, rb, tex;
    g3gl.GetIntegerv(GL_FRAMEBUFFER_BINDING, &fb);
    g3gl.GetIntegerv(GL_RENDERBUFFER_BINDING, &rb);
    g3gl.GetIntegerv(GL_TEXTURE_BINDING_2D, &tex);
    drain_errors();
    GLuint n[3] = {0, 0, 0};
    g3gl.GenFramebuffers(1, &n[0]);
    g3gl.BindFramebuffer(GL_FRAMEBUFFER, n[0]);
    if (samples > 1) {
        g3gl.GenRenderbuffers(1, &n[1]);
        g3gl.BindRenderbuffer(GL_RENDERBUFFER, n[1]);
        g3gl.RenderbufferStorageMultisample(GL_RENDERBUFFER, (GLsizei)samples, GL_RGBA8,
                                            (GLsizei)width, (GLsizei)height);
        g3gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, n[1]);
    } else {
        /* a texture, so that PRESENT samples it without a copy */
        g3gl.GenTextures(1, &n[1]);
        g3gl.BindTexture(GL_TEXTURE_2D, n[1]);
        g3gl.TexStorage2D(GL_TEXTURE_2D, 1, GL_RGBA8, (GLsizei)width, (GLsizei)height);
        g3gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
        g3gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
        g3gl.FramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, n[1], 0);
    }
    if (flags & (VGPU_3D_SURFACE_DEPTH | VGPU_3D_SURFACE_STENCIL)) {
        GLenum fmt = flags & VGPU_3D_SURFACE_STENCIL ? GL_DEPTH24_STENCIL8 : GL_DEPTH_COMPONENT24;
        GLenum at = flags & VGPU_3D_SURFACE_STENCIL
                    ? (flags & VGPU_3D_SURFACE_DEPTH ? GL_DEPTH_STENCIL_ATTACHMENT
                                                : GL_STENCIL_ATTACHMENT)
                    : GL_DEPTH_ATTACHMENT;
        g3gl.GenRenderbuffers(1, &n[2]);
        g3gl.BindRenderbuffer(GL_RENDERBUFFER, n[2]);
        g3gl.RenderbufferStorageMultisample(GL_RENDERBUFFER, samples > 1 ? (GLsizei)samples : 0,
                                            fmt, (GLsizei)width, (GLsizei)height);
        g3gl.FramebufferRenderbuffer(GL_FRAMEBUFFER, at, GL_RENDERBUFFER, n[2]);
    }
    GLenum status = g3gl.CheckFramebufferStatus(GL_FRAMEBUFFER);
    int failed = g3gl.GetError() != GL_NO_ERROR || status != GL_FRAMEBUFFER_COMPLETE;
    if (!failed) {
        /* a new drawable starts cleared, as a new EGL surface's content is undefined */
        GLfloat zero[4] = {0, 0, 0, 0};
        g3gl.ClearBufferfv(GL_COLOR, 0, zero);
        if (flags & VGPU_3D_SURFACE_DEPTH)
            g3gl.ClearBufferfi(GL_DEPTH_STENCIL, 0, 1.0f, 0);
    }
    g3gl.BindFramebuffer(GL_FRAMEBUFFER, (GLuint)fb);
    g3gl.BindRenderbuffer(GL_RENDERBUFFER, (GLuint)rb);
    g3gl.BindTexture(GL_TEXTURE_2D, (GLuint)tex);
    drain_errors();
    names[0] = n[0];
    names[1] = n[1];
    names[2] = n[2];
    if (failed) {
        g3_surface_free(g, names, samples);
        return -1;
    }
    return 0;
}

void g3_surface_free(G3 *g, const uint32_t names[3], uint32_t samples)
{
    g3_surface_gone(g, names[0]);
    GLuint n[3] = {names[0], names[1], names[2]};
    g3gl.DeleteFramebuffers(1, &n[0]);
    if (samples > 1)
        g3gl.DeleteRenderbuffers(1, &n[1]);
    else
        g3gl.DeleteTextures(1, &n[1]);
    g3gl.DeleteRenderbuffers(1, &n[2]);
    drain_errors();
}

int g3_blit(G3 *g, uint32_t src, uint32_t dst, int32_t x, int32_t y, int32_t w, int32_t h,
            int32_t dx, int32_t dy)
{
    (void)g;
    GLint r, d, sc;
    drain_errors();
    g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &r);
    g3gl.GetIntegerv(GL_DRAW_FRAMEBUFFER_BINDING, &d);
    /* the state a blit obeys (a guest context's may be on: PRESENT in g3_execute) */
    sc = g3gl.IsEnabled(GL_SCISSOR_TEST);
    GLboolean discard = g3gl.IsEnabled(GL_RASTERIZER_DISCARD);
    g3gl.Disable(GL_SCISSOR_TEST);
    g3gl.Disable(GL_RASTERIZER_DISCARD);
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, src);
    g3gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, dst);
    /* 64-bit sums: the caller's rects are bounded, this keeps any sum from overflowing */
    int64_t x1 = (int64_t)x + w, y1 = (int64_t)y + h, dx1 = (int64_t)dx + w, dy1 = (int64_t)dy + h;
    int failed = w <= 0 || h <= 0 || x1 > INT32_MAX || y1 > INT32_MAX || dx1 > INT32_MAX
                 || dy1 > INT32_MAX;
    if (!failed) {
        g3gl.BlitFramebuffer(x, y, (GLint)x1, (GLint)y1, dx, dy, (GLint)dx1, (GLint)dy1,
                             GL_COLOR_BUFFER_BIT, GL_NEAREST);
        failed = g3gl.GetError() != GL_NO_ERROR;
    }
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, (GLuint)r);
    g3gl.BindFramebuffer(GL_DRAW_FRAMEBUFFER, (GLuint)d);
    if (sc)
        g3gl.Enable(GL_SCISSOR_TEST);
    if (discard)
        g3gl.Enable(GL_RASTERIZER_DISCARD);
    drain_errors();
    return failed ? -1 : 0;
}

int g3_read_texture(G3 *g, uint32_t fbo, uint32_t out[4])
{
    (void)g;
    GLint was_fb, was_tex, buffer = GL_NONE, type = GL_NONE, name = 0, level = -1, layer = 0;
    GLint face = 0, w = 0, h = 0, format = 0;
    g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &was_fb);
    g3gl.GetIntegerv(GL_TEXTURE_BINDING_2D, &was_tex);
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, fbo);
    g3gl.GetIntegerv(GL_READ_BUFFER, &buffer);
    if (buffer >= GL_COLOR_ATTACHMENT0 && buffer <= GL_COLOR_ATTACHMENT15) {
        static const GLenum q[5] = {GL_FRAMEBUFFER_ATTACHMENT_OBJECT_TYPE,
                                    GL_FRAMEBUFFER_ATTACHMENT_OBJECT_NAME,
                                    GL_FRAMEBUFFER_ATTACHMENT_TEXTURE_LEVEL,
                                    GL_FRAMEBUFFER_ATTACHMENT_TEXTURE_LAYER,
                                    GL_FRAMEBUFFER_ATTACHMENT_TEXTURE_CUBE_MAP_FACE};
        GLint *v[5] = {&type, &name, &level, &layer, &face};
        for (int i = 0; i < 5 && (i == 0 || type == GL_TEXTURE); i++)
            g3gl.GetFramebufferAttachmentParameteriv(GL_READ_FRAMEBUFFER, (GLenum)buffer, q[i],
                                                     v[i]);
    }
    int ok = type == GL_TEXTURE && name > 0 && level == 0 && face == 0 && layer == 0;
    if (ok) {
        /* a 2D texture only: binding another kind (cube, 3D, multisampled) to TEXTURE_2D
         * fails, and is seen */
        drain_errors();
        g3gl.BindTexture(GL_TEXTURE_2D, (GLuint)name);
        ok = g3gl.GetError() == GL_NO_ERROR;
        if (ok) {
            get_tex_level_parameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_WIDTH_, &w);
            get_tex_level_parameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_HEIGHT_, &h);
            get_tex_level_parameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_INTERNAL_FORMAT_, &format);
        }
        g3gl.BindTexture(GL_TEXTURE_2D, (GLuint)was_tex);
    }
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, (GLuint)was_fb);
    drain_errors();
    ok = ok && w > 0 && h > 0;
    out[0] = ok ? (uint32_t)name : 0;
    out[1] = ok ? (uint32_t)w : 0;
    out[2] = ok ? (uint32_t)h : 0;
    out[3] = ok ? (uint32_t)format : 0;
    return ok;
}

int g3_wait_gl(G3 *g)
{
    (void)g;
    GLsync s = g3gl.FenceSync(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
    if (!s)
        return -1;
    GLenum r;
    do /* in slices, so that a debugger or a signal finds it in a known place */
        r = g3gl.ClientWaitSync(s, GL_SYNC_FLUSH_COMMANDS_BIT, G3_WAIT_SLICE_NS);
    while (r == GL_TIMEOUT_EXPIRED);
    g3gl.DeleteSync(s);
    return r == GL_WAIT_FAILED ? -1 : 0;
}

/* Bytes of one strip of a copied present: the swizzle meets what the read wrote in a core's
 * L2 cache (256 KiB and up on x86 since 2008) instead of memory; a 1080p present is 8 MiB. */
#define G3_PRESENT_STRIP_BYTES (192u << 10)

/* What a G3_KEEP_* format keeps of a swizzled pixel word (0xAARRGGBB): its bits under
 * `keep`, the top bits of 5-bit (`low5`) and 6-bit (`low6`) channels repeated below them
 * (renderer/pixels.py's quantize), and `alpha` or'ed in. */
struct keep {
    uint32_t keep, low5, low6, alpha;
};

static const struct keep KEEPS[4] = {
    [G3_KEEP_ARGB] = {0xFFFFFFFFu, 0, 0, 0},
    [G3_KEEP_XRGB] = {0x00FFFFFFu, 0, 0, 0xFF000000u},
    [G3_KEEP_555] = {0x00F8F8F8u, 0x00070707u, 0, 0xFF000000u},
    [G3_KEEP_565] = {0x00F8FCF8u, 0x00070007u, 0x00000300u, 0xFF000000u},
};

/* A GL RGBA pixel (bytes R, G, B, A: the little-endian word 0xAABBGGRR) as a QXL surface's
 * (B, G, R, A), as `k` keeps it. */
static inline uint32_t qxl_word(uint32_t v, const struct keep *k)
{
    v = (v & 0xFF00FF00u) | (v >> 16 & 0xFFu) | (v & 0xFFu) << 16;
    return (v & k->keep) | (v >> 5 & k->low5) | (v >> 6 & k->low6) | k->alpha;
}

/* Pixels c.. of a row of GL's RGBA as a QXL surface's bytes, in place. Four pixels a step,
 * which the compiler turns into vector operations. Reading RGBA and swizzling here beats
 * Mesa converting to BGRA while it reads, pixel by pixel (one 1920x1080 present on
 * llvmpipe, thread CPU: BGRA read 1.9-2.4 ms and a byte-wise alpha pass 0.9 ms, against an
 * RGBA read of 1.7-1.9 ms and this pass 0.5 ms). */
static void swizzle_row(uint8_t *p, int32_t c, int32_t w, const struct keep *k)
{
    for (; c + 4 <= w; c += 4) {
        uint32_t q[4];
        memcpy(q, p + 4 * c, sizeof q);
        for (int i = 0; i < 4; i++)
            q[i] = qxl_word(q[i], k);
        memcpy(p + 4 * c, q, sizeof q);
    }
    for (; c < w; c++) {
        uint32_t v;
        memcpy(&v, p + 4 * c, 4);
        v = qxl_word(v, k);
        memcpy(p + 4 * c, &v, 4);
    }
}

#ifdef G3_SWIZZLE_AVX2
/* The 32-bit formats' swizzle (red and blue swapped, alpha or'ed in: ARGB's is 0) eight
 * pixels a step with AVX2's byte shuffle, where the CPU has it (x86-64's baseline has no
 * byte shuffle, so swizzle_row's vectors shift and mask): about half of a 1920x1080
 * present's copy on llvmpipe went to the plain swizzle. `vgpu bench gl3d`, 1920x1080 at 100
 * draw calls, CPU a frame of the ring's Python threads (guest and render thread, the copy
 * included): 2.14 ms [1.95-2.50] against 3.10 [2.78-3.39], medians of 5 runs each,
 * interleaved, load 3-6 on 2 cores. Returns the pixels done (a multiple of 8): swizzle_row
 * does the rest. */
__attribute__((target("avx2"))) static int32_t swizzle_row_avx2(uint8_t *p, int32_t w,
                                                                const struct keep *k)
{
    const __m256i order = _mm256_setr_epi8(2, 1, 0, 3, 6, 5, 4, 7, 10, 9, 8, 11, 14, 13, 12, 15,
                                           2, 1, 0, 3, 6, 5, 4, 7, 10, 9, 8, 11, 14, 13, 12, 15);
    const __m256i alpha = _mm256_set1_epi32((int)k->alpha);
    int32_t c = 0;
    for (; c + 8 <= w; c += 8) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(p + 4 * c));
        v = _mm256_or_si256(_mm256_shuffle_epi8(v, order), alpha);
        _mm256_storeu_si256((__m256i *)(void *)(p + 4 * c), v);
    }
    return c;
}
#endif

/* `rows` rows of `w` pixels at `at`, `row` pixels apart, as swizzle_row does them */
static void swizzle_rows(uint8_t *at, uint32_t row, int32_t w, int32_t rows,
                         const struct keep *k)
{
#ifdef G3_SWIZZLE_AVX2
    int wide = (k->keep | k->alpha) == 0xFFFFFFFFu && __builtin_cpu_supports("avx2");
#endif
    for (int32_t r = 0; r < rows; r++) {
        uint8_t *p = at + (size_t)r * row * 4;
        int32_t c = 0;
#ifdef G3_SWIZZLE_AVX2
        if (wide)
            c = swizzle_row_avx2(p, w, k);
#endif
        swizzle_row(p, c, w, k);
    }
}

/* Pixel store values (alignment, row length, skip pixels, skip rows: `names`) for rows of
 * `row_length` tightly packed RGBA8 pixels; `saved` gets the old ones for put_store. */
static void set_store(const GLenum names[4], GLint saved[4], uint32_t row_length)
{
    for (int i = 0; i < 4; i++) {
        g3gl.GetIntegerv(names[i], &saved[i]);
        g3gl.PixelStorei(names[i], i == 0 ? 4 : i == 1 ? (GLint)row_length : 0);
    }
}

static void put_store(const GLenum names[4], const GLint saved[4])
{
    for (int i = 0; i < 4; i++)
        g3gl.PixelStorei(names[i], saved[i]);
}

int g3_present_copy(G3 *g, uint32_t src, int32_t x, int32_t y, int32_t w, int32_t h,
                    uint8_t *pixels, uint32_t width, uint32_t height, int32_t dx, int32_t dy,
                    int keep)
{
    if (keep < 0 || keep > G3_KEEP_565 || !g->pack_invert || !pixels || w <= 0 || h <= 0
        || dx < 0 || dy < 0 || (uint32_t)dx + w > width || (uint32_t)dy + h > height)
        return -1;
    uint8_t *at = pixels + ((size_t)dy * width + (size_t)dx) * 4;
    GLint read_fb, pack, pack_state[4];
    static const GLenum packs[4] = {GL_PACK_ALIGNMENT, GL_PACK_ROW_LENGTH, GL_PACK_SKIP_PIXELS,
                                    GL_PACK_SKIP_ROWS};
    g3gl.GetIntegerv(GL_READ_FRAMEBUFFER_BINDING, &read_fb);
    g3gl.GetIntegerv(GL_PIXEL_PACK_BUFFER_BINDING, &pack);
    set_store(packs, pack_state, width);
    g3gl.BindBuffer(GL_PIXEL_PACK_BUFFER, 0);
    /* top row first (the QXL surface's rows), then red and blue swapped (its bytes); in
     * strips, so that the swizzle finds each strip in the cache */
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, src);
    g3gl.PixelStorei(GL_PACK_INVERT_MESA_, 1);
    int32_t strip = (int32_t)(G3_PRESENT_STRIP_BYTES / ((size_t)w * 4));
    if (strip < 1)
        strip = 1;
    int failed = 0;
    for (int32_t r0 = 0; r0 < h && !failed; r0 += strip) {
        int32_t rows = h - r0 < strip ? h - r0 : strip;
        uint8_t *part = at + (size_t)r0 * width * 4;
        /* destination rows r0.. are GL rows y + h - 1 - r0 downwards */
        g3gl.ReadPixels(x, y + h - r0 - rows, w, rows, GL_RGBA, GL_UNSIGNED_BYTE, part);
        failed = g3gl.GetError() != GL_NO_ERROR;
        if (!failed)
            swizzle_rows(part, width, w, rows, &KEEPS[keep]);
    }
    g3gl.PixelStorei(GL_PACK_INVERT_MESA_, 0);
    put_store(packs, pack_state);
    g3gl.BindBuffer(GL_PIXEL_PACK_BUFFER, (GLuint)pack);
    g3gl.BindFramebuffer(GL_READ_FRAMEBUFFER, (GLuint)read_fb);
    failed |= g3gl.GetError() != GL_NO_ERROR;
    drain_errors();
    return failed ? -1 : 0;
}

int g3_upload(G3 *g, uint32_t tex, const uint8_t *pixels, uint32_t width, uint32_t height,
              int32_t x, int32_t y, int32_t w, int32_t h)
{
    (void)g;
    if (!tex || !pixels || w <= 0 || h <= 0 || x < 0 || y < 0 || (uint32_t)x + w > width
        || (uint32_t)y + h > height)
        return -1;
    static const GLenum unpacks[4] = {GL_UNPACK_ALIGNMENT, GL_UNPACK_ROW_LENGTH,
                                      GL_UNPACK_SKIP_PIXELS, GL_UNPACK_SKIP_ROWS};
    GLint unpack, bound, state[4];
    g3gl.GetIntegerv(GL_PIXEL_UNPACK_BUFFER_BINDING, &unpack);
    g3gl.GetIntegerv(GL_TEXTURE_BINDING_2D, &bound);
    set_store(unpacks, state, width);
    g3gl.BindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
    g3gl.BindTexture(GL_TEXTURE_2D, tex);
    g3gl.TexSubImage2D(GL_TEXTURE_2D, 0, x, y, w, h, GL_RGBA, GL_UNSIGNED_BYTE,
                       pixels + ((size_t)y * width + (size_t)x) * 4);
    int failed = g3gl.GetError() != GL_NO_ERROR;
    put_store(unpacks, state);
    g3gl.BindTexture(GL_TEXTURE_2D, (GLuint)bound);
    g3gl.BindBuffer(GL_PIXEL_UNPACK_BUFFER, (GLuint)unpack);
    drain_errors();
    return failed ? -1 : 0;
}
