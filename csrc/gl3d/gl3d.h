/* vgpu's 3D ring executor, the C half (docs/3d-ring.md): contexts, name tables, quotas,
 * the per-context GL state shadow and the GL command decoders, on the host's one GL
 * context. Python (vgpu/render/gl3d.py) runs the vgpu commands and calls in here.
 * Nothing here trusts a word of a batch: every length is checked before it is read. */
#ifndef VGPU_GL3D_H
#define VGPU_GL3D_H

#include <stdint.h>

typedef struct g3_host G3;

#define G3_MAX_CONTEXTS 64

struct g3_counters {
    uint64_t commands;    /* GL commands run (made or refused with a GL error) */
    uint64_t dropped;     /* GL commands with no current context, or a lost one */
    uint64_t gl_errors;   /* GL errors recorded on contexts */
    uint64_t lost;        /* contexts lost */
    uint64_t waits;       /* host waits: glFinish, readbacks, query results, sync waits */
    uint64_t bytes;       /* of buffers and textures, all share groups (not a counter) */
};

/* Loads GL entry points through eglGetProcAddress (libEGL.so.1) and makes the host state
 * the executor needs; the host's GL context must be current. NULL (see g3_last_error)
 * when the GL lacks something. */
G3 *g3_new(void);
const char *g3_last_error(void);
void g3_free(G3 *g);

/* Guest memory: its mapping and the memslot table (QXLPHYSICAL -> mapping offset). */
void g3_set_memory(G3 *g, uintptr_t base, uint64_t size);
int g3_set_slots(G3 *g, uint32_t id_bits, uint32_t gen_bits, uint32_t n,
                 const uint64_t *start, const uint64_t *end, const uint32_t *generation,
                 const uint8_t *valid);

/* vgpu commands: 0 done, -1 refused (counted by the caller). */
int g3_context_create(G3 *g, uint32_t id, uint32_t api, uint32_t share);
int g3_context_destroy(G3 *g, uint32_t id);
int g3_make_current(G3 *g, uint32_t id, uint32_t fbo, uint32_t width, uint32_t height);
uint32_t g3_current(G3 *g);
int g3_context_lost(G3 *g, uint32_t id);
void g3_lose(G3 *g, uint32_t id);
/* Contexts lost since the last call (each counts once in Vgpu3dFence.lost_contexts). */
uint32_t g3_take_lost(G3 *g);
/* A surface goes away: contexts drawing to `fbo` are left without a default framebuffer. */
void g3_surface_gone(G3 *g, uint32_t fbo);

/* A batch: after begin, the first context to run saves the state the 2D renderer left
 * (nothing is saved when none runs); to_2d saves the running context's state and puts the
 * 2D renderer's back (before Python draws, and before the 2D renderer next uses the GL).
 * batch_end leaves the last context's state on the GL, for the next batch (1: it did):
 * a guest drawing frame after frame pays no switch, about 200 GL calls each way and the
 * host's revalidation of every draw state. From begin until to_2d nothing but the
 * executor's entry points may touch the GL. */
void g3_batch_begin(G3 *g);
int g3_batch_end(G3 *g);
void g3_to_2d(G3 *g);

/* Runs GL commands from word `pos` of the copied batch; returns the position of the first
 * vgpu command (opcode < 0x100) or nwords at the end. The batch is 4-byte aligned. */
uint32_t g3_execute(G3 *g, const uint8_t *words, uint32_t nwords, uint32_t pos);

/* A batch from r->pos in one call (a steady frame's batch crosses into C once: between two
 * frames the render thread's time is the frame's): begins the batch (at pos 0), runs it
 * (g3_execute) and stops at the first vgpu command left to the caller (r->pos). A FENCE
 * that ends the batch is not left: its body goes to r->fence (r->fenced 1) for the caller
 * to signal once the batch is over. At the batch's end (r->pos == nwords) it ends the batch
 * (r->state_on: g3_batch_end's answer) and takes the contexts lost since the last end
 * (r->lost: g3_take_lost). */
struct g3_run {
    uint32_t pos, fenced, state_on, lost;
    uint32_t fence[3];  /* the ending FENCE's body: value low and high, flags */
};
void g3_run(G3 *g, const uint8_t *words, uint32_t nwords, struct g3_run *r);

/* The host framebuffer of the current context's framebuffer `guest` (0: its surface);
 * 0 when there is none. */
uint32_t g3_framebuffer(G3 *g, uint32_t guest);

/* The single-sampled 2D texture level 0 behind framebuffer `fbo`'s read buffer, so PRESENT
 * can sample it without a copy: out[0] texture, out[1] width, out[2] height, out[3] its
 * internal format; 0 when the read buffer is anything else (then PRESENT copies with
 * g3_blit). */
int g3_read_texture(G3 *g, uint32_t fbo, uint32_t out[4]);

/* PRESENT (docs/3d-ring.md). Damage rects one PRESENT may list: eglSwapBuffersWithDamage
 * sends a handful; the body is bounded by the header anyway, this bounds the work per
 * present. */
#define G3_MAX_PRESENT_RECTS 256
/* A PRESENT decoded and clipped: its words (x, y, dst_x, dst_y signed), the host
 * framebuffer of `fb` (0: none) and the damaged boxes of the QXL surface (x0, y0, x1, y1,
 * clipped to the surface and to the destination rect). */
struct g3_present {
    int64_t x, y, w, h, dst_x, dst_y;
    uint32_t fb, qxl, src_fbo, n;
    int32_t area[4];  /* the destination clipped to the surface (where n > 0) */
    int32_t boxes[G3_MAX_PRESENT_RECTS][4];
};
/* Decodes the PRESENT body of `nwords` words onto a QXL surface of width x height:
 * -1 refused (a malformed rect list, no current context, a source framebuffer the context
 * lacks), else the number of boxes in p->boxes (0: clipped away, nothing to do). */
int g3_present_decode(G3 *g, const uint8_t *body, uint32_t nwords, uint32_t width,
                      uint32_t height, struct g3_present *p);
/* The one QXL surface g3_execute presents onto itself (0 staging_fbo: none, every PRESENT
 * goes to the caller): PRESENT from a guest framebuffer whose read buffer is a single-
 * sampled RGBA8 texture, onto surface `qxl` (width x height, with a host copy), is a
 * g3_blit into `staging_fbo` at the boxes' places (rows in GL's order), as Python's PRESENT
 * stages it; anything else (another surface, the default framebuffer, another source,
 * a refusal, a full record) is left to the caller. */
void g3_present_target(G3 *g, uint32_t qxl, uint32_t width, uint32_t height,
                       uint32_t staging_fbo);
/* What g3_execute presented, for the caller to note (damage, the staged rects) before it
 * runs anything else and then to clear (records = boxes = 0): record i has n[i] boxes,
 * next in `box`, waits[i], the host waits counted when it ran, and area[i], its
 * destination on the surface. */
#define G3_MAX_PRESENTED 64
struct g3_presented {
    uint32_t records, boxes;
    uint32_t n[G3_MAX_PRESENTED];
    uint64_t waits[G3_MAX_PRESENTED];
    int32_t area[G3_MAX_PRESENTED][4];  /* each one's g3_present.area */
    int32_t box[G3_MAX_PRESENT_RECTS][4];  /* one present always fits */
};
struct g3_presented *g3_presented(G3 *g);

/* Drawables: names[0] fbo, [1] colour texture or renderbuffer, [2] depth/stencil
 * renderbuffer (0: none); flags are VGPU_3D_SURFACE_*; samples > 1 makes the colour a
 * multisampled renderbuffer. */
int g3_surface_new(G3 *g, uint32_t width, uint32_t height, uint32_t flags, uint32_t samples,
                   uint32_t names[3]);
void g3_surface_free(G3 *g, const uint32_t names[3], uint32_t samples);
/* Copies (resolving samples) the rect x, y, w, h of `src`'s read buffer to (dx, dy) of
 * `dst`, both in GL's coordinates. -1: the GL refused it (formats that do not convert). */
int g3_blit(G3 *g, uint32_t src, uint32_t dst, int32_t x, int32_t y, int32_t w, int32_t h,
            int32_t dx, int32_t dy);
/* What a QXL surface keeps of a presented pixel (the `keep` argument of g3_present_copy):
 * everything (32-bit ARGB), no alpha (32-bit xRGB: alpha reads 255, as 2D writes), or
 * 5 and 6 bits a channel (16-bit 555 and 565: each channel's top bits repeated below, as
 * the renderer keeps 16-bit surfaces in its 8-bit textures; alpha 255). */
#define G3_KEEP_ARGB 0
#define G3_KEEP_XRGB 1
#define G3_KEEP_555 2
#define G3_KEEP_565 3
/* PRESENT by copies (GL_MESA_pack_invert), for GLs that rasterize on the CPU, where this
 * costs a memcpy-like pass where a flipping, swizzling draw is a fragment pass: the rect x,
 * y, w, h of `src`'s read buffer is read top row first with red and blue swapped (the QXL
 * surface's rows and bytes) into `pixels` at (dx, dy) (a host copy of the surface, `width`
 * x `height` pixels of 4 bytes, which then holds the presented pixels), keeping what the
 * surface's format keeps of each pixel (`keep`, G3_KEEP_*). The surface's texture is not
 * written (g3_upload, when the GL next uses it). The read waits for the GL (the caller
 * holds no interpreter lock: cffi). Every binding and pixel store value it touches is put
 * back. -1: nothing done (no GL_MESA_pack_invert, a rect outside, an unknown `keep`, a GL
 * error). */
int g3_present_copy(G3 *g, uint32_t src, int32_t x, int32_t y, int32_t w, int32_t h,
                    uint8_t *pixels, uint32_t width, uint32_t height, int32_t dx, int32_t dy,
                    int keep);
/* Uploads the rect x, y, w, h of a host image of `width` x `height` RGBA8 pixels (a
 * surface's host copy, rows as the texture's) into texture `tex` at (x, y): what
 * g3_present_copy left out. Bindings and pixel store values are put back. -1: nothing
 * done (a rect outside, no texture) or a GL error. */
int g3_upload(G3 *g, uint32_t tex, const uint8_t *pixels, uint32_t width, uint32_t height,
              int32_t x, int32_t y, int32_t w, int32_t h);
/* Waits until the GL has finished every command issued so far (a fence and a client wait).
 * Called through cffi, which releases the Python interpreter lock: the render thread waits
 * here, not in a moderngl call that keeps the lock (its reads), so the other threads (SPICE,
 * the watchdog) run while a long shader does. Counts no wait: callers wait here only just
 * before a call that would have waited anyway. -1: the GL failed the wait. */
int g3_wait_gl(G3 *g);
uint32_t g3_max_renderbuffer_size(G3 *g);
uint32_t g3_max_samples(G3 *g);

void g3_counters(G3 *g, struct g3_counters *out);

#endif
