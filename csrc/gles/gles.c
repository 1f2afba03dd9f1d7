/* libGLESv2.so.2 for vgpu guests: OpenGL ES 2.0/3.0 encoded into the 3D ring
 * (docs/3d-ring.md).
 *
 * The process attaches to vgpu's guest over the unix socket named by VGPU_GL_SOCKET. The
 * guest hands it the guest memory file and an arena inside it; batches, answers and large
 * data are written there in place, and a SUBMIT message (offset, length, fence?) asks the
 * guest to push the batch onto the ring. Fences complete through Vgpu3dFence.completed,
 * read from the mapping.
 *
 * Arena use: the batch area and the data area are each filled front to back; when one is
 * full, everything submitted is waited for (one fence) and it starts over. So a batch's or
 * an answer's memory is never reused before the device is done with it.
 *
 * This file holds the runtime and the entry points with guest-side work; the rest are
 * generated from glwire (gles_gen.c). Nothing here trusts the program: sizes are checked
 * before they are used, and a lost connection turns every call into a no-op. */
#define _GNU_SOURCE
#include "gles_internal.h"
#include "../qxl_abi.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- limits ------------------------------------------------------------------------- */

/* A batch is flushed at this size, below the device's gl_max_batch: a frame's commands
 * start running while the program still encodes the rest. */
#define VG_BATCH_TARGET (1u << 20)
/* Vertex attributes a context tracks (GL_MAX_VERTEX_ATTRIBS is 16 on every host here). */
#define VG_MAX_ATTRIBS 16
/* Names per object table (the device's quota, docs/3d-ring.md). */
#define VG_MAX_NAMES 65536
/* Data larger than this goes in pieces (a buffer's glBufferSubData, a texture's bands of
 * rows): each piece by reference fits the data area many times over. */
#define VG_CHUNK (1u << 20)
/* Presents whose fences have not completed (docs/3d-ring.md, MAX_PRESENTS_IN_FLIGHT). */
#define VG_MAX_PRESENTS 2
/* Seconds a fence may take before the device counts as gone (its own watchdog ends a
 * stuck batch after GL_STUCK_S + --gl-watchdog, 12 s by default). */
#define VG_FENCE_TIMEOUT_S 60
/* Bytes kept of a GL string answer (GL_RENDERER and its kind are far shorter). */
#define VG_STRING_MAX 4096

/* ---- the wire to the guest (vgpu/guest/glrelay.py) ---------------------------------- */

#define VG_HELLO_MAGIC 0x4c47475056ull /* "VPGGL" */
#define VG_HELLO_WORDS 12
enum { H_MAGIC, H_MEM_SIZE, H_ARENA_OFF, H_ARENA_SIZE, H_ARENA_PHYS, H_COMPLETED_OFF,
       H_MAX_BATCH, H_CTX_BASE, H_CTX_COUNT, H_SURF_BASE, H_SURF_COUNT, H_SCREEN };
#define VG_OP_SUBMIT 1u
#define VG_SUBMIT_FENCE 1u    /* the guest adds a FENCE batch and answers its value */
#define VG_SUBMIT_FENCE_IN 2u /* the batch's last 16 bytes are a FENCE for the guest to number */
#define VG_SUBMIT_WAIT 4u     /* answer once the fence has completed (the process sleeps) */

struct VgCtx {
    uint32_t id;
    int api, live;
    uint32_t surface;
    GLenum error;
    uint32_t vao, array_buffer, element0; /* element0: vertex array 0's element buffer */
    uint32_t bound[16];                   /* buffer bindings by vg_target() */
    struct {
        int enabled, integer;
        GLint size; GLenum type; GLboolean norm; GLsizei stride; GLuint divisor;
        const void *ptr; uint32_t buffer;
    } attr[VG_MAX_ATTRIBS];
    uint32_t program, host_enabled; /* vertex array 0's arrays enabled on the host */
    GLint unpack[5], pack[3]; /* alignment, row length, image height, skip rows, pixels */
    uint32_t stream_v, stream_i;
};

static struct {
    int fd, dead, tried;
    uint8_t *mem;
    uint64_t mem_size, arena_off, arena_size, arena_phys, max_batch;
    volatile uint64_t *completed;
    uint32_t ctx_base, ctx_count, surf_base, surf_count;
    int screen_w, screen_h;
    /* batch area [0, batch_size) and data area [batch_size, arena_size) of the arena */
    uint64_t batch_size, bstart, bpos, dpos;
    uint64_t last_fence;
    uint64_t presents[VG_MAX_PRESENTS];
    unsigned npresents;
    VgCtx *ctxs; /* ctx_count of them */
    uint8_t *surfs;
} vg = {.fd = -1};

static __thread VgCtx *cur;
static pthread_mutex_t vg_lock = PTHREAD_MUTEX_INITIALIZER;

static void vg_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vgpu-gles: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void vg_lost(const char *why)
{
    if (!vg.dead)
        vg_log("the device connection is gone (%s): GL calls do nothing from now on", why);
    vg.dead = 1;
}

VG_EXPORT int vg_connect(void)
{
    pthread_mutex_lock(&vg_lock);
    if (vg.tried) {
        pthread_mutex_unlock(&vg_lock);
        return vg.mem ? 0 : -1;
    }
    vg.tried = 1;
    const char *check = getenv("VGPU_GLES_CHECK");
    vg_checking = check && *check && strcmp(check, "0");
    const char *path = getenv("VGPU_GL_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof sa.sun_path) {
        vg_log("VGPU_GL_SOCKET names no socket: run the program with `vgpu run`");
        goto fail;
    }
    strcpy(sa.sun_path, path);
    vg.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (vg.fd < 0 || connect(vg.fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        vg_log("cannot connect to %s: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t h[VG_HELLO_WORDS];
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {h, sizeof h};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = sizeof ctl};
    ssize_t n = recvmsg(vg.fd, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (n != (ssize_t)sizeof h || !cm || cm->cmsg_type != SCM_RIGHTS || h[H_MAGIC] != VG_HELLO_MAGIC) {
        vg_log("the guest's hello did not arrive whole");
        goto fail;
    }
    int memfd;
    memcpy(&memfd, CMSG_DATA(cm), sizeof memfd);
    vg.mem_size = h[H_MEM_SIZE];
    vg.mem = mmap(NULL, vg.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    close(memfd);
    if (vg.mem == MAP_FAILED) {
        vg.mem = NULL;
        vg_log("cannot map guest memory: %s", strerror(errno));
        goto fail;
    }
    vg.arena_off = h[H_ARENA_OFF];
    vg.arena_size = h[H_ARENA_SIZE];
    vg.arena_phys = h[H_ARENA_PHYS];
    vg.max_batch = h[H_MAX_BATCH] < VG_BATCH_TARGET ? h[H_MAX_BATCH] : VG_BATCH_TARGET;
    vg.completed = (volatile uint64_t *)(vg.mem + h[H_COMPLETED_OFF]);
    vg.ctx_base = (uint32_t)h[H_CTX_BASE];
    vg.ctx_count = (uint32_t)h[H_CTX_COUNT];
    vg.surf_base = (uint32_t)h[H_SURF_BASE];
    vg.surf_count = (uint32_t)h[H_SURF_COUNT];
    vg.screen_w = (int)(h[H_SCREEN] & 0xFFFF);
    vg.screen_h = (int)(h[H_SCREEN] >> 16 & 0xFFFF);
    vg.batch_size = vg.arena_size / 4 & ~(uint64_t)63;
    vg.dpos = vg.batch_size;
    vg.ctxs = calloc(vg.ctx_count, sizeof *vg.ctxs);
    vg.surfs = calloc(vg.surf_count, 1);
    if (!vg.ctxs || !vg.surfs || vg.batch_size < 2 * vg.max_batch) {
        vg_log("the guest's arena is too small");
        goto fail;
    }
    pthread_mutex_unlock(&vg_lock);
    return 0;
fail:
    vg.dead = 1;
    if (vg.mem) munmap(vg.mem, vg.mem_size);
    vg.mem = NULL;
    pthread_mutex_unlock(&vg_lock);
    return -1;
}

VG_EXPORT void vg_screen(int *w, int *h)
{
    *w = vg.screen_w;
    *h = vg.screen_h;
}

/* ---- batches and fences ------------------------------------------------------------- */

/* fence: 0 none, 1 answer its value at once, 2 answer once it has completed */
static uint64_t vg_submit(int fence)
{
    if (vg.dead || !vg.mem || (vg.bpos == vg.bstart && !fence)) return 0;
    uint64_t how = fence ? VG_SUBMIT_FENCE : 0;
    if (fence && vg.bpos + 16 <= vg.batch_size) {
        /* the FENCE rides at the end of the batch: one ring item for both */
        uint32_t *w = (uint32_t *)(vg.mem + vg.arena_off + vg.bpos);
        w[0] = 0x07 | 3u << 16;
        w[1] = w[2] = w[3] = 0;
        vg.bpos += 16;
        how = VG_SUBMIT_FENCE_IN;
    }
    if (fence == 2) how |= VG_SUBMIT_WAIT;
    uint64_t len = vg.bpos - vg.bstart;
    uint64_t msg[3] = {VG_OP_SUBMIT | how << 32, vg.bstart, len};
    vg.bstart = vg.bpos = (vg.bpos + 63) & ~(uint64_t)63;
    if (send(vg.fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
        vg_lost("send");
        return 0;
    }
    if (!fence) return 0;
    uint64_t value;
    if (recv(vg.fd, &value, sizeof value, MSG_WAITALL) != (ssize_t)sizeof value) {
        vg_lost("recv");
        return 0;
    }
    vg.last_fence = value;
    return value;
}

static void vg_wait(uint64_t value)
{
    struct timespec t0, now, nap = {0, 20000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned spins = 0; !vg.dead && __atomic_load_n(vg.completed, __ATOMIC_ACQUIRE) < value;
         spins++) {
        if (spins < 64) continue;
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > VG_FENCE_TIMEOUT_S) vg_lost("fence timeout");
    }
}

/* Everything submitted so far has run: the whole arena is free again. */
static void vg_drain(void)
{
    vg_wait(vg_submit(2));
    vg.npresents = 0;
}

VG_INTERNAL void vg_sync(void)
{
    vg_wait(vg_submit(2));
}

VG_INTERNAL uint32_t *vg_cmd(uint32_t opcode, uint32_t words)
{
    if (vg.dead || !vg.mem) return NULL;
    if (opcode >= 0x100 && !cur) return NULL;
    if (words > 0xFFFF) {
        vg_error(GL_INVALID_VALUE);
        return NULL;
    }
    uint64_t need = 4 * (uint64_t)(words + 1) + 12 + 16; /* + MAKE_CURRENT, + a FENCE */
    if (vg.bpos - vg.bstart + need > vg.max_batch) vg_submit(0);
    if (vg.bpos + need > vg.batch_size) {
        vg_drain();
        vg.bstart = vg.bpos = 0;
    }
    uint32_t *w = (uint32_t *)(vg.mem + vg.arena_off + vg.bpos);
    if (vg.bpos == vg.bstart && cur && opcode != 0x03) {
        /* another context of this or another process may have run in between */
        *w++ = 0x03 | 2u << 16;
        *w++ = cur->id;
        *w++ = cur->surface;
        vg.bpos += 12;
    }
    *w = opcode | words << 16;
    vg.bpos += 4 * (uint64_t)(words + 1);
    return w + 1;
}

VG_INTERNAL uint32_t *vg_put64(uint32_t *w, uint64_t v)
{
    w[0] = (uint32_t)v;
    w[1] = (uint32_t)(v >> 32);
    return w + 2;
}

VG_INTERNAL uint32_t vg_fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Data-area memory for `size` bytes, valid until the next drain; NULL when it cannot be. */
static uint8_t *vg_data(uint64_t size, uint64_t *phys)
{
    if (vg.dead || !vg.mem) return NULL;
    uint64_t data_size = vg.arena_size - vg.batch_size;
    if (size > data_size / 4) return NULL;
    if (vg.dpos + size > vg.arena_size) {
        vg_drain();
        vg.dpos = vg.batch_size;
    }
    uint64_t off = vg.dpos;
    vg.dpos = (vg.dpos + size + 63) & ~(uint64_t)63;
    *phys = vg.arena_phys + off;
    return vg.mem + vg.arena_off + off;
}

VG_INTERNAL VgBlob vg_blob(const void *data, int64_t size)
{
    VgBlob b = {data, size, 0, 1};
    if (!data) return b;
    if (size <= VG_INLINE_BLOB) {
        b.words = 1 + (uint32_t)((size + 3) / 4);
        return b;
    }
    uint8_t *p = vg_data((uint64_t)size, &b.phys);
    if (!p) {
        vg_error(GL_OUT_OF_MEMORY);
        b.words = 0;
        return b;
    }
    memcpy(p, data, (size_t)size);
    b.data = NULL;
    b.words = 3;
    return b;
}

VG_INTERNAL uint32_t *vg_put_blob(uint32_t *w, const VgBlob *b)
{
    if (b->words == 1 && !b->data) {
        *w++ = 0xFFFFFFFFu;
    } else if (b->data) {
        *w++ = (uint32_t)b->size;
        memcpy(w, b->data, (size_t)b->size);
        size_t pad = (size_t)(b->words - 1) * 4 - (size_t)b->size;
        memset((uint8_t *)w + b->size, 0, pad);
        w += b->words - 1;
    } else {
        *w++ = 0x80000000u | (uint32_t)b->size;
        w = vg_put64(w, b->phys);
    }
    return w;
}

VG_INTERNAL VgReply vg_reply(const void *init, int64_t size)
{
    VgReply r = {0, (uint32_t)size, NULL};
    if (size <= 0) return r; /* address 0 discards */
    r.ptr = vg_data((uint64_t)size, &r.phys);
    if (!r.ptr) {
        r.phys = 0;
        r.cap = 0;
        return r;
    }
    if (init) memcpy(r.ptr, init, (size_t)size); /* an error leaves the program's bytes */
    else memset(r.ptr, 0, (size_t)size);
    return r;
}

VG_INTERNAL uint32_t *vg_put_reply(uint32_t *w, const VgReply *r)
{
    w = vg_put64(w, r->phys);
    *w++ = r->cap;
    return w;
}

/* ---- errors and names --------------------------------------------------------------- */

VG_INTERNAL void vg_error(GLenum e)
{
    if (vg_checking) vg_log("GL error 0x%x found in the guest library", e);
    if (cur && !cur->error) cur->error = e;
}

VG_INTERNAL int vg_checking;

VG_INTERNAL void vg_check(const char *name)
{
    GLenum e = enc_glGetError();
    if (!e) return;
    vg_log("%s: GL error 0x%x", name, e);
    vg_error(e);
}

VG_INTERNAL void vg_unimplemented(const char *name)
{
    static const char *logged[64];
    static unsigned nlogged;
    unsigned i;
    for (i = 0; i < nlogged && logged[i] != name; i++) {}
    if (i == nlogged) {
        vg_log("%s is not implemented", name);
        if (nlogged < 64) logged[nlogged++] = name;
    }
    vg_error(GL_INVALID_OPERATION);
}

static uint8_t vg_used[VG_T_COUNT][VG_MAX_NAMES / 8];
static uint32_t vg_next[VG_T_COUNT];

VG_INTERNAL uint32_t vg_name_new(int table)
{
    for (uint32_t k = 0; k < VG_MAX_NAMES; k++) {
        uint32_t n = (vg_next[table] + k) % VG_MAX_NAMES;
        if (n && !(vg_used[table][n / 8] & 1u << n % 8)) {
            vg_used[table][n / 8] |= (uint8_t)(1u << n % 8);
            vg_next[table] = n + 1;
            return n;
        }
    }
    return 0;
}

VG_INTERNAL int vg_names_new(int table, int64_t n, uint32_t *out)
{
    if (n && !out) return 0;
    for (int64_t i = 0; i < n; i++)
        if (!(out[i] = vg_name_new(table))) return 0;
    return 1;
}

static int vg_name_used(int table, uint32_t n)
{
    return n && n < VG_MAX_NAMES && vg_used[table][n / 8] & 1u << n % 8;
}

/* Buffers' contents as the program gave them, for mapping and for the index ranges of
 * draws with client arrays (ES has no glGetBufferSubData). */
typedef struct {
    uint8_t *data;
    int64_t size;
    int64_t map_off, map_len;
    GLbitfield map_access;
    int mapped;
} VgShadow;
static VgShadow *vg_shadow[VG_MAX_NAMES];

static void vg_shadow_free(uint32_t n)
{
    if (n < VG_MAX_NAMES && vg_shadow[n]) {
        free(vg_shadow[n]->data);
        free(vg_shadow[n]);
        vg_shadow[n] = NULL;
    }
}

VG_INTERNAL void vg_names_free(int table, int64_t n, const uint32_t *names)
{
    if (!names) return;
    for (int64_t i = 0; i < n; i++) {
        uint32_t x = names[i];
        if (!vg_name_used(table, x)) continue;
        if (table == VG_T_BUFFER) vg_shadow_free(x);
        vg_used[table][x / 8] &= (uint8_t)~(1u << x % 8);
    }
}

/* ---- contexts, surfaces, presents (for libEGL) -------------------------------------- */

VG_EXPORT VgCtx *vg_ctx_create(int api, VgCtx *share)
{
    if (vg_connect() < 0) return NULL;
    VgCtx *c = NULL;
    for (uint32_t i = 0; i < vg.ctx_count && !c; i++)
        if (!vg.ctxs[i].live) c = &vg.ctxs[i];
    if (!c) return NULL;
    memset(c, 0, sizeof *c);
    c->id = vg.ctx_base + (uint32_t)(c - vg.ctxs);
    c->api = api;
    c->live = 1;
    c->unpack[0] = c->pack[0] = 4;
    for (int i = 0; i < VG_MAX_ATTRIBS; i++) {
        c->attr[i].size = 4;
        c->attr[i].type = GL_FLOAT;
    }
    uint32_t *w = vg_cmd(0x01, 3);
    if (!w) {
        c->live = 0;
        return NULL;
    }
    w[0] = c->id;
    w[1] = (uint32_t)api;
    w[2] = share ? share->id : 0;
    c->stream_v = vg_name_new(VG_T_BUFFER);
    c->stream_i = vg_name_new(VG_T_BUFFER);
    return c;
}

VG_EXPORT void vg_ctx_destroy(VgCtx *c)
{
    if (!c || !c->live) return;
    uint32_t *w = vg_cmd(0x02, 1);
    if (w) w[0] = c->id;
    if (cur == c) cur = NULL;
    c->live = 0;
    vg_submit(0);
}

VG_EXPORT uint32_t vg_surface_create(int width, int height, int depth, int stencil, int samples)
{
    if (vg_connect() < 0) return 0;
    uint32_t i;
    for (i = 0; i < vg.surf_count && vg.surfs[i]; i++) {}
    if (i == vg.surf_count) return 0;
    uint32_t *w = vg_cmd(0x04, 5);
    if (!w) return 0;
    vg.surfs[i] = 1;
    uint32_t s = vg.surf_base + i;
    w[0] = s;
    w[1] = (uint32_t)width;
    w[2] = (uint32_t)height;
    w[3] = (depth ? VGPU_3D_SURFACE_DEPTH : 0) | (stencil ? VGPU_3D_SURFACE_STENCIL : 0);
    w[4] = (uint32_t)samples;
    return s;
}

VG_EXPORT void vg_surface_destroy(uint32_t s)
{
    if (s < vg.surf_base || s - vg.surf_base >= vg.surf_count) return;
    uint32_t *w = vg_cmd(0x05, 1);
    if (w) w[0] = s;
    vg.surfs[s - vg.surf_base] = 0;
}

VG_EXPORT void vg_make_current(VgCtx *c, uint32_t surface)
{
    if (c == cur && (!c || c->surface == surface)) return;
    vg_submit(0);
    cur = c;
    if (c) {
        c->surface = surface;
        uint32_t *w = vg_cmd(0x03, 2);
        if (w) {
            w[0] = c->id;
            w[1] = surface;
        }
    }
}

VG_EXPORT VgCtx *vg_current(void)
{
    return cur;
}

VG_EXPORT void vg_present(int width, int height, int dst_x, int dst_y)
{
    if (!cur || vg.dead) return;
    if (vg.npresents == VG_MAX_PRESENTS) {
        vg_wait(vg.presents[0]);
        vg.presents[0] = vg.presents[1];
        vg.npresents--;
    }
    uint32_t *w = vg_cmd(0x06, 9);
    if (!w) return;
    uint32_t v[9] = {0, 0, 0, (uint32_t)width, (uint32_t)height, 0, (uint32_t)dst_x,
                     (uint32_t)dst_y, 0};
    memcpy(w, v, sizeof v);
    vg.presents[vg.npresents++] = vg_submit(1);
}

VG_EXPORT void vg_finish(void)
{
    vg_sync();
}

/* ---- errors and strings ------------------------------------------------------------- */

VG_API GLenum glGetError(void)
{
    if (!cur) return GL_NO_ERROR;
    if (cur->error) {
        GLenum e = cur->error;
        cur->error = 0;
        return e;
    }
    return enc_glGetError();
}

static const char *const vg_extensions[] = {
    /* what this library implements over ES 3.0 core on the host */
    "GL_OES_mapbuffer", "GL_OES_vertex_array_object", "GL_OES_element_index_uint",
    "GL_OES_rgb8_rgba8", "GL_OES_depth24", "GL_OES_packed_depth_stencil",
    "GL_OES_texture_npot", "GL_EXT_map_buffer_range", "GL_OES_depth_texture",
};
#define VG_NEXT (sizeof vg_extensions / sizeof *vg_extensions)

static const GLubyte *vg_host_string(GLenum name)
{
    static struct { GLenum name; char *s; } cache[8];
    static unsigned n;
    for (unsigned i = 0; i < n; i++)
        if (cache[i].name == name) return (const GLubyte *)cache[i].s;
    VgReply r = vg_reply(NULL, VG_STRING_MAX);
    uint32_t *w = r.ptr ? vg_cmd(0x147, 4) : NULL;
    if (!w) return NULL;
    *w++ = name;
    vg_put_reply(w, &r);
    vg_sync();
    GLenum e = enc_glGetError();
    if (e) {
        vg_error(e);
        return NULL;
    }
    char *s = strndup(r.ptr, VG_STRING_MAX - 1);
    if (s && n < 8) {
        cache[n].name = name;
        cache[n++].s = s;
    }
    return (const GLubyte *)s;
}

VG_API const GLubyte *glGetString(GLenum name)
{
    static char ext[1024];
    if (!cur) return NULL;
    if (name == GL_EXTENSIONS) {
        if (!ext[0])
            for (unsigned i = 0; i < VG_NEXT; i++) {
                strcat(ext, vg_extensions[i]);
                strcat(ext, " ");
            }
        return (const GLubyte *)ext;
    }
    return vg_host_string(name);
}

VG_API const GLubyte *glGetStringi(GLenum name, GLuint index)
{
    if (!cur) return NULL;
    if (name != GL_EXTENSIONS) {
        vg_error(GL_INVALID_ENUM);
        return NULL;
    }
    if (index >= VG_NEXT) {
        vg_error(GL_INVALID_VALUE);
        return NULL;
    }
    return (const GLubyte *)vg_extensions[index];
}

/* ---- queries: sizes of the answers -------------------------------------------------- */

static int64_t vg_pname_count(GLenum pname)
{
    switch (pname) {
    case GL_VIEWPORT: case GL_SCISSOR_BOX: case GL_COLOR_CLEAR_VALUE:
    case GL_COLOR_WRITEMASK: case GL_BLEND_COLOR:
        return 4;
    case GL_DEPTH_RANGE: case GL_ALIASED_POINT_SIZE_RANGE: case GL_ALIASED_LINE_WIDTH_RANGE:
    case GL_MAX_VIEWPORT_DIMS:
        return 2;
    case GL_COMPRESSED_TEXTURE_FORMATS: case GL_SHADER_BINARY_FORMATS:
    case GL_PROGRAM_BINARY_FORMATS:
        return 0; /* the host offers none of them */
    default:
        return 1;
    }
}

/* The byte size of a COMPSIZE blob or answer, for the generated encoder of `fn` (whose
 * prototype gles_gen.h declares); `expr` may use the call's parameters. */
#define VG_SIZE(fn, decl, expr) int64_t vg_size_##fn decl { return expr; }
#define VG_UNUSED3(a, b, c) ((void)(a), (void)(b), (void)(c))

static int64_t vg_cstr(const GLchar *s)
{
    return s ? (int64_t)strnlen(s, 65536) + 1 : -1;
}

VG_SIZE(glGetIntegerv, (GLenum p, GLint *d), ((void)d, vg_pname_count(p) * 4))
VG_SIZE(glGetFloatv, (GLenum p, GLfloat *d), ((void)d, vg_pname_count(p) * 4))
VG_SIZE(glGetBooleanv, (GLenum p, GLboolean *d), ((void)d, vg_pname_count(p)))
VG_SIZE(glGetInteger64v, (GLenum p, GLint64 *d), ((void)d, vg_pname_count(p) * 8))
/* calls whose every ES 3.0 pname answers (or takes) one value */
VG_SIZE(glGetBufferParameteriv, (GLenum t, GLenum p, GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetBufferParameteri64v, (GLenum t, GLenum p, GLint64 *d), (VG_UNUSED3(t, p, d), 8))
VG_SIZE(glGetProgramiv, (GLuint o, GLenum p, GLint *d), (VG_UNUSED3(o, p, d), 4))
VG_SIZE(glGetShaderiv, (GLuint o, GLenum p, GLint *d), (VG_UNUSED3(o, p, d), 4))
VG_SIZE(glGetRenderbufferParameteriv, (GLenum t, GLenum p, GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetTexParameteriv, (GLenum t, GLenum p, GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetTexParameterfv, (GLenum t, GLenum p, GLfloat *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetQueryiv, (GLenum t, GLenum p, GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetQueryObjectuiv, (GLuint t, GLenum p, GLuint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetSamplerParameteriv, (GLuint t, GLenum p, GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetSamplerParameterfv, (GLuint t, GLenum p, GLfloat *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetIntegeri_v, (GLenum t, GLuint i, GLint *d), (VG_UNUSED3(t, i, d), 4))
VG_SIZE(glGetInteger64i_v, (GLenum t, GLuint i, GLint64 *d), (VG_UNUSED3(t, i, d), 8))
VG_SIZE(glTexParameterfv, (GLenum t, GLenum p, const GLfloat *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glTexParameteriv, (GLenum t, GLenum p, const GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glSamplerParameteriv, (GLuint t, GLenum p, const GLint *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glSamplerParameterfv, (GLuint t, GLenum p, const GLfloat *d), (VG_UNUSED3(t, p, d), 4))
VG_SIZE(glGetFramebufferAttachmentParameteriv, (GLenum t, GLenum a, GLenum p, GLint *d),
        (VG_UNUSED3(t, a, p), (void)d, 4))
/* single strings travel with their NUL */
VG_SIZE(glBindAttribLocation, (GLuint p, GLuint i, const GLchar *n),
        ((void)p, (void)i, vg_cstr(n)))
VG_SIZE(glGetAttribLocation, (GLuint p, const GLchar *n), ((void)p, vg_cstr(n)))
VG_SIZE(glGetUniformLocation, (GLuint p, const GLchar *n), ((void)p, vg_cstr(n)))
VG_SIZE(glGetFragDataLocation, (GLuint p, const GLchar *n), ((void)p, vg_cstr(n)))
VG_SIZE(glGetUniformBlockIndex, (GLuint p, const GLchar *n), ((void)p, vg_cstr(n)))
/* a colour clears with 4 values, depth or stencil with 1 */
VG_SIZE(glClearBufferiv, (GLenum b, GLint d, const GLint *v),
        ((void)d, (void)v, b == GL_COLOR ? 16 : 4))
VG_SIZE(glClearBufferuiv, (GLenum b, GLint d, const GLuint *v),
        ((void)d, (void)v, b == GL_COLOR ? 16 : 4))
VG_SIZE(glClearBufferfv, (GLenum b, GLint d, const GLfloat *v),
        ((void)d, (void)v, b == GL_COLOR ? 16 : 4))

/* ---- pixel sizes -------------------------------------------------------------------- */

static int vg_pixel_bytes(GLenum format, GLenum type)
{
    int comps;
    switch (format) {
    case GL_RED: case GL_RED_INTEGER: case GL_ALPHA: case GL_LUMINANCE:
    case GL_DEPTH_COMPONENT:
        comps = 1; break;
    case GL_RG: case GL_RG_INTEGER: case GL_LUMINANCE_ALPHA: case GL_DEPTH_STENCIL:
        comps = 2; break;
    case GL_RGB: case GL_RGB_INTEGER:
        comps = 3; break;
    case GL_RGBA: case GL_RGBA_INTEGER: case GL_BGRA_EXT:
        comps = 4; break;
    default:
        return -1;
    }
    switch (type) {
    case GL_UNSIGNED_BYTE: case GL_BYTE:
        return comps;
    case GL_UNSIGNED_SHORT: case GL_SHORT: case GL_HALF_FLOAT: case GL_HALF_FLOAT_OES:
        return comps * 2;
    case GL_UNSIGNED_INT: case GL_INT: case GL_FLOAT:
        return comps * 4;
    case GL_UNSIGNED_SHORT_5_6_5: case GL_UNSIGNED_SHORT_4_4_4_4: case GL_UNSIGNED_SHORT_5_5_5_1:
        return 2;
    case GL_UNSIGNED_INT_2_10_10_10_REV: case GL_UNSIGNED_INT_10F_11F_11F_REV:
    case GL_UNSIGNED_INT_5_9_9_9_REV: case GL_UNSIGNED_INT_24_8:
        return 4;
    case GL_FLOAT_32_UNSIGNED_INT_24_8_REV:
        return 8;
    default:
        return -1;
    }
}

/* Bytes GL reads or writes for an image with the given pixel store state. */
static int64_t vg_image_bytes(const GLint *store, int has_depth, GLsizei w, GLsizei h,
                              GLsizei d, GLenum format, GLenum type)
{
    int px = vg_pixel_bytes(format, type);
    if (px < 0 || w < 0 || h < 0 || d < 0) return -1;
    if (!w || !h || !d) return 0;
    int64_t align = store[0], row_len = store[1] > 0 ? store[1] : w;
    int64_t image_h = has_depth && store[2] > 0 ? store[2] : h;
    int64_t row = ((int64_t)row_len * px + align - 1) / align * align;
    int64_t skip = (int64_t)store[3] * row + (int64_t)store[4] * px;
    int64_t image = image_h * row;
    return skip + (d - 1) * image + (h - 1) * row + (int64_t)w * px;
}

int64_t vg_size_glTexImage2D(GLenum t, GLint l, GLint i, GLsizei w, GLsizei h, GLint b,
                             GLenum f, GLenum ty, const void *p)
{
    (void)t, (void)l, (void)i, (void)b, (void)p;
    return cur ? vg_image_bytes(cur->unpack, 0, w, h, 1, f, ty) : -1;
}
int64_t vg_size_glTexSubImage2D(GLenum t, GLint l, GLint x, GLint y, GLsizei w, GLsizei h,
                                GLenum f, GLenum ty, const void *p)
{
    (void)t, (void)l, (void)x, (void)y, (void)p;
    return cur ? vg_image_bytes(cur->unpack, 0, w, h, 1, f, ty) : -1;
}
int64_t vg_size_glTexImage3D(GLenum t, GLint l, GLint i, GLsizei w, GLsizei h, GLsizei d,
                             GLint b, GLenum f, GLenum ty, const void *p)
{
    (void)t, (void)l, (void)i, (void)b, (void)p;
    return cur ? vg_image_bytes(cur->unpack, 1, w, h, d, f, ty) : -1;
}
int64_t vg_size_glTexSubImage3D(GLenum t, GLint l, GLint x, GLint y, GLint z, GLsizei w,
                                GLsizei h, GLsizei d, GLenum f, GLenum ty, const void *p)
{
    (void)t, (void)l, (void)x, (void)y, (void)z, (void)p;
    return cur ? vg_image_bytes(cur->unpack, 1, w, h, d, f, ty) : -1;
}
int64_t vg_size_glReadPixels(GLint x, GLint y, GLsizei w, GLsizei h, GLenum f, GLenum ty,
                             void *p)
{
    (void)x, (void)y, (void)p;
    GLint store[5] = {0};
    if (!cur) return -1;
    store[0] = cur->pack[0];
    store[1] = cur->pack[1];
    store[3] = cur->pack[2] >> 16;
    store[4] = cur->pack[2] & 0xFFFF;
    return vg_image_bytes(store, 0, w, h, 1, f, ty);
}

/* Image data over VG_CHUNK goes as glTexSubImage2D bands of rows (the unpack skips apply
 * to each band's start as to the whole); 0 when it is not split. */
static int vg_tex_bands(GLenum target, GLint level, GLint x, GLint y, GLsizei width,
                        GLsizei height, GLenum format, GLenum type, const void *pixels)
{
    int px = vg_pixel_bytes(format, type);
    if (!pixels || cur->bound[5] || px < 0 || width <= 0 || height <= 0 ||
        vg_image_bytes(cur->unpack, 0, width, height, 1, format, type) <= VG_CHUNK)
        return 0;
    int64_t align = cur->unpack[0], row_len = cur->unpack[1] > 0 ? cur->unpack[1] : width;
    int64_t stride = (row_len * px + align - 1) / align * align;
    int64_t rows = VG_CHUNK / stride > 0 ? VG_CHUNK / stride : 1;
    for (int64_t at = 0; at < height; at += rows) {
        GLsizei h = (GLsizei)(height - at < rows ? height - at : rows);
        enc_glTexSubImage2D(target, level, x, y + (GLint)at, width, h, format, type,
                            (const uint8_t *)pixels + at * stride);
    }
    return 1;
}

VG_API void glTexImage2D(GLenum target, GLint level, GLint internalformat, GLsizei width,
                         GLsizei height, GLint border, GLenum format, GLenum type,
                         const void *pixels)
{
    if (!cur) return;
    int split = pixels && !cur->bound[5] &&
                vg_image_bytes(cur->unpack, 0, width, height, 1, format, type) > VG_CHUNK;
    enc_glTexImage2D(target, level, internalformat, width, height, border, format, type,
                     split ? NULL : pixels);
    if (split) vg_tex_bands(target, level, 0, 0, width, height, format, type, pixels);
}

VG_API void glTexSubImage2D(GLenum target, GLint level, GLint x, GLint y, GLsizei width,
                            GLsizei height, GLenum format, GLenum type, const void *pixels)
{
    if (cur && !vg_tex_bands(target, level, x, y, width, height, format, type, pixels))
        enc_glTexSubImage2D(target, level, x, y, width, height, format, type, pixels);
}

VG_API void glPixelStorei(GLenum pname, GLint param)
{
    if (!cur) return;
    switch (pname) {
    case GL_UNPACK_ALIGNMENT: case GL_PACK_ALIGNMENT:
        if (param != 1 && param != 2 && param != 4 && param != 8) {
            vg_error(GL_INVALID_VALUE);
            return;
        }
        break;
    default:
        if (param < 0 || param > 65535) {
            vg_error(GL_INVALID_VALUE);
            return;
        }
    }
    switch (pname) {
    case GL_UNPACK_ALIGNMENT: cur->unpack[0] = param; break;
    case GL_UNPACK_ROW_LENGTH: cur->unpack[1] = param; break;
    case GL_UNPACK_IMAGE_HEIGHT: cur->unpack[2] = param; break;
    case GL_UNPACK_SKIP_ROWS: cur->unpack[3] = param; break;
    case GL_UNPACK_SKIP_PIXELS: cur->unpack[4] = param; break;
    case GL_PACK_ALIGNMENT: cur->pack[0] = param; break;
    case GL_PACK_ROW_LENGTH: cur->pack[1] = param; break;
    /* skip rows and pixels packed in one (both are at most 65535) */
    case GL_PACK_SKIP_ROWS: cur->pack[2] = (cur->pack[2] & 0xFFFF) | param << 16; break;
    case GL_PACK_SKIP_PIXELS: cur->pack[2] = (cur->pack[2] & ~0xFFFF) | param; break;
    case GL_UNPACK_SKIP_IMAGES: break;
    default:
        vg_error(GL_INVALID_ENUM);
        return;
    }
    enc_glPixelStorei(pname, param);
}

/* ---- shaders ------------------------------------------------------------------------ */

/* GL_SHADER_SOURCE_LENGTH as the program gave the source: the host's count includes the
 * `#version 100` line the executor adds to a source without one (docs/3d-ring.md). */
static int32_t vg_source_len[VG_MAX_NAMES];

VG_API void glGetShaderiv(GLuint shader, GLenum pname, GLint *params)
{
    if (!cur) return;
    if (pname == GL_SHADER_SOURCE_LENGTH && params && vg_name_used(VG_T_PROGRAM, shader)) {
        *params = vg_source_len[shader];
        return;
    }
    enc_glGetShaderiv(shader, pname, params);
}

VG_API void glShaderSource(GLuint shader, GLsizei count, const GLchar *const *string,
                           const GLint *length)
{
    if (!cur) return;
    if (count < 0 || (count && !string)) {
        vg_error(GL_INVALID_VALUE);
        return;
    }
    int64_t total = 0;
    for (GLsizei i = 0; i < count; i++) {
        if (!string[i]) {
            vg_error(GL_INVALID_VALUE);
            return;
        }
        total += length && length[i] >= 0 ? length[i] : (int64_t)strlen(string[i]);
        if (total > VG_MAX_DATA) {
            vg_error(GL_INVALID_VALUE);
            return;
        }
    }
    char *joined = malloc((size_t)total + 1);
    if (!joined) {
        vg_error(GL_OUT_OF_MEMORY);
        return;
    }
    int64_t at = 0;
    for (GLsizei i = 0; i < count; i++) {
        int64_t n = length && length[i] >= 0 ? length[i] : (int64_t)strlen(string[i]);
        memcpy(joined + at, string[i], (size_t)n);
        at += n;
    }
    VgBlob b = vg_blob(joined, total);
    uint32_t *w = b.words ? vg_cmd(0x162, 2 + b.words) : NULL;
    if (w && shader < VG_MAX_NAMES) vg_source_len[shader] = total ? (int32_t)total + 1 : 0;
    if (w) {
        *w++ = shader;
        *w++ = 1;
        vg_put_blob(w, &b);
    }
    free(joined);
}

/* ---- buffers: bindings, contents, mapping ------------------------------------------- */

static int vg_target(GLenum target)
{
    switch (target) {
    case GL_ARRAY_BUFFER: return 0;
    case GL_ELEMENT_ARRAY_BUFFER: return 1;
    case GL_COPY_READ_BUFFER: return 2;
    case GL_COPY_WRITE_BUFFER: return 3;
    case GL_PIXEL_PACK_BUFFER: return 4;
    case GL_PIXEL_UNPACK_BUFFER: return 5;
    case GL_TRANSFORM_FEEDBACK_BUFFER: return 6;
    case GL_UNIFORM_BUFFER: return 7;
    default: return -1;
    }
}

static uint32_t vg_bound(GLenum target)
{
    int t = vg_target(target);
    if (t < 0) return 0;
    if (t == 1) return cur->vao ? cur->bound[1] : cur->element0;
    return cur->bound[t];
}

VG_API void glBindBuffer(GLenum target, GLuint buffer)
{
    if (!cur) return;
    int t = vg_target(target);
    if (t >= 0) {
        cur->bound[t] = buffer;
        if (t == 0) cur->array_buffer = buffer;
        if (t == 1 && !cur->vao) cur->element0 = buffer;
        if (buffer && buffer < VG_MAX_NAMES) vg_used[VG_T_BUFFER][buffer / 8] |= (uint8_t)(1u << buffer % 8);
    }
    enc_glBindBuffer(target, buffer);
}

VG_API void glBindBufferBase(GLenum target, GLuint index, GLuint buffer)
{
    if (!cur) return;
    int t = vg_target(target);
    if (t >= 0) cur->bound[t] = buffer;
    enc_glBindBufferBase(target, index, buffer);
}

VG_API void glBindBufferRange(GLenum target, GLuint index, GLuint buffer, GLintptr offset,
                              GLsizeiptr size)
{
    if (!cur) return;
    int t = vg_target(target);
    if (t >= 0) cur->bound[t] = buffer;
    enc_glBindBufferRange(target, index, buffer, offset, size);
}

VG_API void glDeleteBuffers(GLsizei n, const GLuint *buffers)
{
    if (!cur) return;
    if (n > 0 && buffers)
        for (GLsizei i = 0; i < n; i++) {
            for (int t = 0; t < 16; t++)
                if (cur->bound[t] == buffers[i]) cur->bound[t] = 0;
            if (cur->array_buffer == buffers[i]) cur->array_buffer = 0;
            if (cur->element0 == buffers[i]) cur->element0 = 0;
            for (int a = 0; a < VG_MAX_ATTRIBS; a++)
                if (cur->attr[a].buffer == buffers[i]) {
                    cur->attr[a].buffer = 0; /* its offset is no client pointer */
                    cur->attr[a].ptr = NULL;
                }
            if (buffers[i] == cur->stream_v || buffers[i] == cur->stream_i) return;
        }
    enc_glDeleteBuffers(n, buffers);
}

static VgShadow *vg_shadow_of(GLenum target)
{
    uint32_t b = vg_bound(target);
    if (!b || b >= VG_MAX_NAMES) return NULL;
    if (!vg_shadow[b]) vg_shadow[b] = calloc(1, sizeof(VgShadow));
    return vg_shadow[b];
}

/* glBufferSubData in pieces of at most VG_CHUNK bytes */
static void vg_buffer_pieces(GLenum target, GLintptr offset, GLsizeiptr size, const void *data)
{
    if (!data || size <= VG_CHUNK || offset < 0) {
        enc_glBufferSubData(target, offset, size, data);
        return;
    }
    for (GLsizeiptr at = 0; at < size; at += VG_CHUNK) {
        GLsizeiptr n = size - at < VG_CHUNK ? size - at : VG_CHUNK;
        enc_glBufferSubData(target, offset + at, n, (const uint8_t *)data + at);
    }
}

/* glBufferData, its data in pieces when it is large */
static void vg_buffer_data(GLenum target, GLsizeiptr size, const void *data, GLenum usage)
{
    enc_glBufferData(target, size, size > VG_CHUNK ? NULL : data, usage);
    if (data && size > VG_CHUNK) vg_buffer_pieces(target, 0, size, data);
}

VG_API void glBufferData(GLenum target, GLsizeiptr size, const void *data, GLenum usage)
{
    if (!cur) return;
    VgShadow *s = vg_shadow_of(target);
    if (s && size >= 0 && size <= VG_MAX_DATA && !s->mapped) {
        uint8_t *p = realloc(s->data, size ? (size_t)size : 1);
        if (p) {
            s->data = p;
            s->size = size;
            if (data) memcpy(p, data, (size_t)size);
            else memset(p, 0, (size_t)size);
        }
    }
    vg_buffer_data(target, size, data, usage);
}

VG_API void glBufferSubData(GLenum target, GLintptr offset, GLsizeiptr size, const void *data)
{
    if (!cur) return;
    VgShadow *s = vg_shadow_of(target);
    if (s && data && offset >= 0 && size >= 0 && offset <= s->size && size <= s->size - offset)
        memcpy(s->data + offset, data, (size_t)size);
    vg_buffer_pieces(target, offset, size, data);
}

VG_API void *glMapBufferRange(GLenum target, GLintptr offset, GLsizeiptr length,
                              GLbitfield access)
{
    if (!cur) return NULL;
    VgShadow *s = vg_shadow_of(target);
    if (!s) {
        vg_error(vg_target(target) < 0 ? GL_INVALID_ENUM : GL_INVALID_OPERATION);
        return NULL;
    }
    if (offset < 0 || length <= 0 || offset > s->size || length > s->size - offset ||
        !(access & (GL_MAP_READ_BIT | GL_MAP_WRITE_BIT))) {
        vg_error(GL_INVALID_VALUE);
        return NULL;
    }
    if (s->mapped) {
        vg_error(GL_INVALID_OPERATION);
        return NULL;
    }
    s->mapped = 1;
    s->map_off = offset;
    s->map_len = length;
    s->map_access = access;
    return s->data + offset;
}

VG_API GLboolean glUnmapBuffer(GLenum target)
{
    if (!cur) return GL_FALSE;
    VgShadow *s = vg_shadow_of(target);
    if (!s || !s->mapped) {
        vg_error(GL_INVALID_OPERATION);
        return GL_FALSE;
    }
    s->mapped = 0;
    if ((s->map_access & GL_MAP_WRITE_BIT) && !(s->map_access & GL_MAP_FLUSH_EXPLICIT_BIT))
        vg_buffer_pieces(target, s->map_off, s->map_len, s->data + s->map_off);
    return GL_TRUE;
}

VG_API void glFlushMappedBufferRange(GLenum target, GLintptr offset, GLsizeiptr length)
{
    if (!cur) return;
    VgShadow *s = vg_shadow_of(target);
    if (!s || !s->mapped || offset < 0 || length < 0 || offset > s->map_len ||
        length > s->map_len - offset) {
        vg_error(GL_INVALID_OPERATION);
        return;
    }
    vg_buffer_pieces(target, s->map_off + offset, length, s->data + s->map_off + offset);
}

VG_API void glGetBufferPointerv(GLenum target, GLenum pname, void **params)
{
    if (!cur || !params) return;
    VgShadow *s = vg_shadow_of(target);
    if (pname != GL_BUFFER_MAP_POINTER) {
        vg_error(GL_INVALID_ENUM);
        return;
    }
    *params = s && s->mapped ? s->data + s->map_off : NULL;
}

/* GL_OES_mapbuffer: the whole buffer, written only */
VG_API void *glMapBufferOES(GLenum target, GLenum access);
VG_API void *glMapBufferOES(GLenum target, GLenum access)
{
    if (!cur) return NULL;
    VgShadow *s = vg_shadow_of(target);
    if (access != GL_WRITE_ONLY_OES) {
        vg_error(GL_INVALID_ENUM);
        return NULL;
    }
    return glMapBufferRange(target, 0, s ? s->size : 0, GL_MAP_WRITE_BIT);
}
VG_API GLboolean glUnmapBufferOES(GLenum target);
VG_API GLboolean glUnmapBufferOES(GLenum target)
{
    return glUnmapBuffer(target);
}
VG_API void glGetBufferPointervOES(GLenum target, GLenum pname, void **params);
VG_API void glGetBufferPointervOES(GLenum target, GLenum pname, void **params)
{
    glGetBufferPointerv(target, pname, params);
}

/* GL_OES_vertex_array_object: ES 3.0's calls under their ES 2.0 extension names */
VG_API void glBindVertexArray(GLuint array)
{
    if (!cur) return;
    cur->vao = array;
    cur->bound[1] = array ? 0 : cur->element0;
    enc_glBindVertexArray(array);
}
VG_API void glBindVertexArrayOES(GLuint array);
VG_API void glBindVertexArrayOES(GLuint array)
{
    glBindVertexArray(array);
}
VG_API void glGenVertexArraysOES(GLsizei n, GLuint *arrays);
VG_API void glGenVertexArraysOES(GLsizei n, GLuint *arrays)
{
    glGenVertexArrays(n, arrays);
}
VG_API void glDeleteVertexArraysOES(GLsizei n, const GLuint *arrays);
VG_API void glDeleteVertexArraysOES(GLsizei n, const GLuint *arrays)
{
    if (cur && n > 0 && arrays)
        for (GLsizei i = 0; i < n; i++)
            if (arrays[i] == cur->vao) glBindVertexArray(0);
    glDeleteVertexArrays(n, arrays);
}
VG_API GLboolean glIsVertexArrayOES(GLuint array);
VG_API GLboolean glIsVertexArrayOES(GLuint array)
{
    return glIsVertexArray(array);
}

/* ---- vertex arrays: client-side arrays are uploaded at draw time -------------------- */

/* Records vertex array 0's array; whether it goes to the host now (a buffer's, or another
 * vertex array's) rather than with its data at the draw (client memory). */
static int vg_attrib(GLuint index, GLint size, GLenum type, GLboolean normalized,
                     GLsizei stride, const void *pointer, int integer)
{
    if (index >= VG_MAX_ATTRIBS || cur->vao || size < 1 || size > 4 || stride < 0) return 1;
    cur->attr[index].size = size;
    cur->attr[index].type = type;
    cur->attr[index].norm = normalized;
    cur->attr[index].stride = stride;
    cur->attr[index].ptr = pointer;
    cur->attr[index].buffer = cur->array_buffer;
    cur->attr[index].integer = integer;
    return cur->array_buffer != 0;
}

VG_API void glVertexAttribPointer(GLuint index, GLint size, GLenum type, GLboolean normalized,
                                  GLsizei stride, const void *pointer)
{
    if (cur && vg_attrib(index, size, type, normalized, stride, pointer, 0))
        enc_glVertexAttribPointer(index, size, type, normalized, stride, pointer);
}

VG_API void glVertexAttribIPointer(GLuint index, GLint size, GLenum type, GLsizei stride,
                                   const void *pointer)
{
    if (cur && vg_attrib(index, size, type, GL_FALSE, stride, pointer, 1))
        enc_glVertexAttribIPointer(index, size, type, stride, pointer);
}

/* Vertex array 0's arrays are enabled on the host at draw time, and only those the
 * program reads: GL fetches no other, but the executor checks every enabled array (an
 * array left enabled by another program, on a deleted or small buffer, would refuse the
 * draw that GL makes). */
VG_API void glEnableVertexAttribArray(GLuint index)
{
    if (!cur) return;
    if (index < VG_MAX_ATTRIBS && !cur->vao) cur->attr[index].enabled = 1;
    else enc_glEnableVertexAttribArray(index);
}

VG_API void glDisableVertexAttribArray(GLuint index)
{
    if (!cur) return;
    if (index < VG_MAX_ATTRIBS && !cur->vao) cur->attr[index].enabled = 0;
    else enc_glDisableVertexAttribArray(index);
}

/* attribute locations each linked program reads (bit per location) */
static uint32_t vg_program_attribs[VG_MAX_NAMES];

VG_API void glLinkProgram(GLuint program)
{
    if (!cur) return;
    enc_glLinkProgram(program);
    if (!vg_name_used(VG_T_PROGRAM, program)) return;
    GLint n = 0;
    uint32_t mask = 0;
    enc_glGetProgramiv(program, GL_ACTIVE_ATTRIBUTES, &n);
    for (GLint i = 0; i < n && i < VG_MAX_ATTRIBS; i++) {
        char name[256] = "";
        GLint size = 0;
        GLenum type = 0;
        GLsizei len = 0;
        enc_glGetActiveAttrib(program, (GLuint)i, sizeof name, &len, &size, &type, name);
        GLint loc = enc_glGetAttribLocation(program, name);
        int slots = type == GL_FLOAT_MAT4 || type == GL_FLOAT_MAT2x4 || type == GL_FLOAT_MAT3x4
                    ? 4 : type == GL_FLOAT_MAT3 || type == GL_FLOAT_MAT2x3 || type == GL_FLOAT_MAT4x3
                    ? 3 : type == GL_FLOAT_MAT2 || type == GL_FLOAT_MAT3x2 || type == GL_FLOAT_MAT4x2
                    ? 2 : 1;
        for (GLint k = 0; loc >= 0 && k < slots * (size > 0 ? size : 1); k++)
            if (loc + k < VG_MAX_ATTRIBS) mask |= 1u << (loc + k);
    }
    vg_program_attribs[program] = mask;
}

VG_API void glUseProgram(GLuint program)
{
    if (!cur) return;
    cur->program = program;
    enc_glUseProgram(program);
}

/* The arrays of vertex array 0 a draw reads: enabled, read by the program, and with data. */
static uint32_t vg_arrays_read(void)
{
    uint32_t reads = cur->program < VG_MAX_NAMES ? vg_program_attribs[cur->program] : 0;
    uint32_t want = 0;
    for (int i = 0; i < VG_MAX_ATTRIBS; i++)
        if (cur->attr[i].enabled && reads & 1u << i && (cur->attr[i].buffer || cur->attr[i].ptr))
            want |= 1u << i;
    uint32_t diff = want ^ cur->host_enabled;
    for (int i = 0; i < VG_MAX_ATTRIBS; i++) {
        if (!(diff & 1u << i)) continue;
        if (want & 1u << i) enc_glEnableVertexAttribArray((GLuint)i);
        else enc_glDisableVertexAttribArray((GLuint)i);
    }
    cur->host_enabled = want;
    return want;
}

VG_API void glVertexAttribDivisor(GLuint index, GLuint divisor)
{
    if (!cur) return;
    if (index < VG_MAX_ATTRIBS && !cur->vao) cur->attr[index].divisor = divisor;
    enc_glVertexAttribDivisor(index, divisor);
}

static int vg_type_bytes(GLenum type)
{
    switch (type) {
    case GL_BYTE: case GL_UNSIGNED_BYTE: return 1;
    case GL_SHORT: case GL_UNSIGNED_SHORT: case GL_HALF_FLOAT: case GL_HALF_FLOAT_OES: return 2;
    case GL_INT: case GL_UNSIGNED_INT: case GL_FLOAT: case GL_FIXED: return 4;
    case GL_INT_2_10_10_10_REV: case GL_UNSIGNED_INT_2_10_10_10_REV: return 1; /* x4 = 4 */
    default: return 0;
    }
}

/* Uploads the enabled client arrays for vertices [0, vertices) and instances
 * [0, instances); 0 when there were none, -1 on a GL error (already set). */
static int vg_upload_arrays(int64_t vertices, int64_t instances)
{
    int64_t total = 0, off[VG_MAX_ATTRIBS], len[VG_MAX_ATTRIBS];
    for (int i = 0; i < VG_MAX_ATTRIBS; i++) {
        len[i] = 0;
        if (!(cur->host_enabled & 1u << i) || cur->attr[i].buffer) continue;
        int tb = vg_type_bytes(cur->attr[i].type);
        if (!tb || !cur->attr[i].ptr) {
            vg_error(GL_INVALID_OPERATION);
            return -1;
        }
        int64_t elem = (int64_t)tb * cur->attr[i].size;
        int64_t stride = cur->attr[i].stride ? cur->attr[i].stride : elem;
        int64_t n = cur->attr[i].divisor ? (instances + cur->attr[i].divisor - 1)
                                               / cur->attr[i].divisor : vertices;
        if (n <= 0) continue;
        len[i] = (n - 1) * stride + elem;
        off[i] = total;
        total = (total + len[i] + 15) & ~(int64_t)15;
        if (total > VG_MAX_DATA) {
            vg_error(GL_OUT_OF_MEMORY);
            return -1;
        }
    }
    if (!total) return 0;
    uint8_t *tmp = malloc((size_t)total);
    if (!tmp) {
        vg_error(GL_OUT_OF_MEMORY);
        return -1;
    }
    for (int i = 0; i < VG_MAX_ATTRIBS; i++)
        if (len[i]) memcpy(tmp + off[i], cur->attr[i].ptr, (size_t)len[i]);
    enc_glBindBuffer(GL_ARRAY_BUFFER, cur->stream_v);
    vg_buffer_data(GL_ARRAY_BUFFER, total, tmp, GL_STREAM_DRAW);
    free(tmp);
    for (int i = 0; i < VG_MAX_ATTRIBS; i++) {
        if (!len[i]) continue;
        const void *o = (const void *)(uintptr_t)off[i];
        if (cur->attr[i].integer)
            enc_glVertexAttribIPointer((GLuint)i, cur->attr[i].size, cur->attr[i].type,
                                       cur->attr[i].stride, o);
        else
            enc_glVertexAttribPointer((GLuint)i, cur->attr[i].size, cur->attr[i].type,
                                      cur->attr[i].norm, cur->attr[i].stride, o);
    }
    enc_glBindBuffer(GL_ARRAY_BUFFER, cur->array_buffer);
    return 1;
}

/* Whether the draw reads client-side arrays (after enabling what it reads). */
static int vg_client_arrays(void)
{
    if (cur->vao) return 0;
    uint32_t reads = vg_arrays_read();
    for (int i = 0; i < VG_MAX_ATTRIBS; i++)
        if (reads & 1u << i && !cur->attr[i].buffer) return 1;
    return 0;
}

VG_API void glDrawArrays(GLenum mode, GLint first, GLsizei count)
{
    if (!cur) return;
    if (first < 0 || count < 0) {
        vg_error(GL_INVALID_VALUE);
        return;
    }
    if (vg_client_arrays() && count && vg_upload_arrays((int64_t)first + count, 1) < 0) return;
    enc_glDrawArrays(mode, first, count);
}

VG_API void glDrawArraysInstanced(GLenum mode, GLint first, GLsizei count, GLsizei instances)
{
    if (!cur) return;
    if (first < 0 || count < 0 || instances < 0) {
        vg_error(GL_INVALID_VALUE);
        return;
    }
    if (vg_client_arrays() && count && instances &&
        vg_upload_arrays((int64_t)first + count, instances) < 0)
        return;
    enc_glDrawArraysInstanced(mode, first, count, instances);
}

/* The highest index of `count` indices of `type` at `p`; -1 for a bad type. */
static int64_t vg_max_index(GLenum type, const void *p, GLsizei count)
{
    int64_t m = 0;
    for (GLsizei i = 0; i < count; i++) {
        int64_t v;
        if (type == GL_UNSIGNED_BYTE) v = ((const uint8_t *)p)[i];
        else if (type == GL_UNSIGNED_SHORT) v = ((const uint16_t *)p)[i];
        else if (type == GL_UNSIGNED_INT) v = ((const uint32_t *)p)[i];
        else return -1;
        if (v > m) m = v;
    }
    return m;
}

/* Draws indexed with client arrays and/or client indices uploaded first. */
static void vg_draw_elements(GLenum mode, GLsizei count, GLenum type, const void *indices,
                             GLsizei instances, int ranged, GLuint start, GLuint end)
{
    if (count < 0 || instances < 0) {
        vg_error(GL_INVALID_VALUE);
        return;
    }
    int tb = type == GL_UNSIGNED_BYTE ? 1 : type == GL_UNSIGNED_SHORT ? 2
             : type == GL_UNSIGNED_INT ? 4 : 0;
    uint32_t elem = cur->vao ? 0 : cur->element0;
    int client_indices = !cur->vao && !elem;
    int arrays = vg_client_arrays();
    if (count && instances && (client_indices || arrays)) {
        if (!tb) {
            vg_error(GL_INVALID_ENUM);
            return;
        }
        const uint8_t *src = indices;
        if (!client_indices) {
            VgShadow *s = elem < VG_MAX_NAMES ? vg_shadow[elem] : NULL;
            uintptr_t o = (uintptr_t)indices;
            if (!s || o > (uintptr_t)s->size || (int64_t)count * tb > s->size - (int64_t)o) {
                vg_error(GL_INVALID_OPERATION);
                return;
            }
            src = s->data + o;
        } else if (!src) {
            vg_error(GL_INVALID_OPERATION);
            return;
        }
        if (arrays) {
            int64_t maxv = vg_max_index(type, src, count);
            if (vg_upload_arrays(maxv + 1, instances) < 0) return;
        }
        if (client_indices) {
            enc_glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, cur->stream_i);
            vg_buffer_data(GL_ELEMENT_ARRAY_BUFFER, (int64_t)count * tb, src, GL_STREAM_DRAW);
            indices = NULL;
        }
    }
    if (ranged) enc_glDrawRangeElements(mode, start, end, count, type, indices);
    else if (instances == 1 && !ranged) enc_glDrawElements(mode, count, type, indices);
    else enc_glDrawElementsInstanced(mode, count, type, indices, instances);
    if (client_indices && count && instances) enc_glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, 0);
}

VG_API void glDrawElements(GLenum mode, GLsizei count, GLenum type, const void *indices)
{
    if (cur) vg_draw_elements(mode, count, type, indices, 1, 0, 0, 0);
}

VG_API void glDrawElementsInstanced(GLenum mode, GLsizei count, GLenum type,
                                    const void *indices, GLsizei instances)
{
    if (cur) vg_draw_elements(mode, count, type, indices, instances, 0, 0, 0);
}

VG_API void glDrawRangeElements(GLenum mode, GLuint start, GLuint end, GLsizei count,
                                GLenum type, const void *indices)
{
    if (cur) vg_draw_elements(mode, count, type, indices, 1, 1, start, end);
}

/* ---- synchronisation ---------------------------------------------------------------- */

/* The host's glFinish runs before the fence: a fence alone completes once the commands
 * are issued to the host GL, which may still be rasterizing them. */
VG_API void glFinish(void)
{
    if (!cur) return;
    enc_glFinish();
    vg_sync();
}

VG_API void glFlush(void)
{
    if (cur) vg_submit(0);
}
