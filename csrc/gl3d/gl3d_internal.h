/* What the handwritten executor (gl3d.c) and the generated decoders (gl3d_gen.c) share. */
#ifndef VGPU_GL3D_INTERNAL_H
#define VGPU_GL3D_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <GLES3/gl3.h>

#include "gl3d.h"

/* a blob parameter (docs/3d-ring.md, "Blobs"), already checked against its source */
struct g3_blob {
    const uint8_t *p;   /* NULL for the NULL blob */
    uint64_t n;         /* bytes */
};

/* an `out`/`ret` reference, not yet translated */
struct g3_out {
    uint64_t addr;
    uint32_t cap;
};

enum { T_BUFFER, T_TEXTURE, T_RENDERBUFFER, T_PROGRAM, T_SAMPLER, T_SYNC,
       T_FRAMEBUFFER, T_VERTEX_ARRAY, T_QUERY, T_TF, T_COUNT };
#define T_SHARED 6  /* the first T_SHARED tables live in the share group */

static inline uint32_t g3_word(const uint8_t *b, uint32_t at)
{
    uint32_t v;
    memcpy(&v, b + 4 * (size_t)at, 4);
    return v;
}

static inline uint64_t g3_wide(const uint8_t *b, uint32_t at)
{
    return g3_word(b, at) | (uint64_t)g3_word(b, at + 1) << 32;
}

static inline GLfloat g3_float(const uint8_t *b, uint32_t at)
{
    GLfloat f;
    memcpy(&f, b + 4 * (size_t)at, 4);
    return f;
}

int g3_take_blob(G3 *g, const uint8_t *b, uint32_t n, uint32_t *at, struct g3_blob *out,
                 int *bad_ref);
void g3_error(G3 *g, GLenum err);
int g3_gl_error(G3 *g);
void g3_lose_current(G3 *g);
int g3_host_name(G3 *g, int table, uint32_t guest, GLuint *host);
int g3_sync(G3 *g, int table, uint32_t guest, GLsync *host);
int64_t g3_clamp_count(int64_t asked, uint32_t cap, int elem);
int64_t g3_compsize_count(G3 *g, uint32_t opcode, int64_t a0, int64_t a1, int64_t a2);
void *g3_out_scratch(G3 *g, int which, size_t bytes);
int g3_out_ok(G3 *g, const struct g3_out *o);
void g3_answer(G3 *g, const struct g3_out *o, const void *data, size_t bytes);

#endif
