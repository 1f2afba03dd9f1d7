/* The guest GL ES library's runtime, shared by gles.c, the generated gles_gen.c and
 * libEGL (egl.c): the connection to vgpu's guest, the batch and data arenas in guest
 * memory, contexts and guest-chosen object names. */
#ifndef VG_GLES_INTERNAL_H
#define VG_GLES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VG_API __attribute__((visibility("default")))
#define VG_INTERNAL __attribute__((visibility("hidden")))
#define VG_EXPORT __attribute__((visibility("default")))

#include "gles_gen.h"

/* A command body holds at most 65535 words (docs/3d-ring.md); inline arrays stay below. */
#define VG_MAX_INLINE_WORDS 60000
/* Blobs up to this size travel inline in the batch; larger ones by reference. */
#define VG_INLINE_BLOB 4096
/* The largest single blob or answer: a quarter of the data arena is checked at run time;
 * this bounds the size arithmetic before that (a 16k x 16k RGBA texture is 1 GiB). */
#define VG_MAX_DATA ((int64_t)1 << 30)

enum { VG_T_BUFFER, VG_T_TEXTURE, VG_T_RENDERBUFFER, VG_T_PROGRAM, VG_T_SAMPLER, VG_T_SYNC,
       VG_T_FRAMEBUFFER, VG_T_VERTEX_ARRAY, VG_T_QUERY, VG_T_TF, VG_T_COUNT };

typedef struct { const char *name; void (*fn)(void); } VgProc;
VG_EXPORT extern const VgProc vg_procs[];
VG_EXPORT extern const unsigned vg_nprocs;

typedef struct { const void *data; int64_t size; uint64_t phys; uint32_t words; } VgBlob;
typedef struct { uint64_t phys; uint32_t cap; void *ptr; } VgReply;

VG_INTERNAL uint32_t *vg_cmd(uint32_t opcode, uint32_t words);
VG_INTERNAL uint32_t *vg_put64(uint32_t *w, uint64_t v);
VG_INTERNAL VgBlob vg_blob(const void *data, int64_t size);
VG_INTERNAL uint32_t *vg_put_blob(uint32_t *w, const VgBlob *b);
VG_INTERNAL VgReply vg_reply(const void *init, int64_t size);
VG_INTERNAL uint32_t *vg_put_reply(uint32_t *w, const VgReply *r);
VG_INTERNAL void vg_sync(void);
VG_INTERNAL void vg_error(GLenum e);
VG_INTERNAL void vg_unimplemented(const char *name);
VG_INTERNAL uint32_t vg_name_new(int table);
VG_INTERNAL int vg_names_new(int table, int64_t n, uint32_t *out);
VG_INTERNAL void vg_names_free(int table, int64_t n, const uint32_t *names);
VG_INTERNAL uint32_t vg_fbits(float f);
/* VGPU_GLES_CHECK=1: every call is followed by glGetError on the host, and the first error
 * of each command is logged with its name (slow: one fence per call; for finding what a
 * program does that the host refuses). */
extern VG_INTERNAL int vg_checking;
VG_INTERNAL void vg_check(const char *name);

/* For libEGL. Contexts and surfaces are numbered inside the range the guest gave this
 * process; 0 means failure. */
typedef struct VgCtx VgCtx;
VG_EXPORT int vg_connect(void);
VG_EXPORT void vg_screen(int *w, int *h);
VG_EXPORT VgCtx *vg_ctx_create(int api, VgCtx *share);
VG_EXPORT void vg_ctx_destroy(VgCtx *c);
VG_EXPORT uint32_t vg_surface_create(int w, int h, int depth, int stencil, int samples);
VG_EXPORT void vg_surface_destroy(uint32_t s);
VG_EXPORT void vg_make_current(VgCtx *c, uint32_t surface);
VG_EXPORT VgCtx *vg_current(void);
VG_EXPORT void vg_present(int w, int h, int dst_x, int dst_y);
VG_EXPORT void vg_finish(void);

#endif
