/* Drives the 3D executor's C (csrc/gl3d/) under AddressSanitizer and UBSan with real GL
 * (Mesa through EGL, no display): seed batches from files, mutated (words replaced with
 * interesting or random values, bits flipped), truncated, or random, through g3_run,
 * with the few vgpu commands run here as Gl3dExecutor runs them, and PRESENTs onto a
 * TARGET x TARGET surface staged by g3_execute itself (g3_present_target). Guest memory is a buffer
 * whose memslot covers its first half: the second half must never change.
 *
 *   driver CASES SEED prologue.bin body.bin...
 * prints "N cases, 0 failures" when nothing went wrong. */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gl3d.h"

#define MEM (1u << 20)
#define SLOT (MEM / 2)
#define MAX_SEEDS 16
#define MAX_WORDS 65536
#define SURFACES 16
#define IMAGE 200 /* pixels a side of PRESENT's host image: not a multiple of 8 */
#define TARGET 72 /* pixels a side of the surface g3_execute presents onto */

static uint64_t rng;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static uint32_t *read_words(const char *path, uint32_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint32_t *w = malloc(MAX_WORDS * 4);
    *n = (uint32_t)fread(w, 4, MAX_WORDS, f);
    fclose(f);
    return w;
}

static uint32_t surf[SURFACES][3], surf_size[SURFACES], surf_samples[SURFACES];
static long copied; /* presents g3_present_copy made */
static long staged, decoded; /* PRESENTs g3_execute staged, g3_present_decode answered */
static long failures;
static long fenced; /* batches whose ending FENCE g3_run took */

static void vgpu_command(G3 *g, uint32_t op, const uint32_t *a, uint32_t n)
{
    static const uint32_t body[8] = {0, 3, 1, 2, 5, 1, 9, 3};
    if (op == 0 || op > 7 || (n != body[op] && !(op == 6 && n >= 9))) {
        if (g3_current(g))
            g3_lose(g, g3_current(g));
        return;
    }
    switch (op) {
    case 1: g3_context_create(g, a[0], a[1], a[2]); break;
    case 2: g3_context_destroy(g, a[0]); break;
    case 3:
        if (a[1] < SURFACES && (a[1] == 0 || surf[a[1]][0]))
            g3_make_current(g, a[0], a[1] ? surf[a[1]][0] : 0, surf_size[a[1]],
                            surf_size[a[1]]);
        break;
    case 4:
        if (a[0] && a[0] < SURFACES && !surf[a[0]][0] && a[1] >= 1 && a[1] <= 256) {
            g3_to_2d(g);
            surf_samples[a[0]] = a[4] > 4 ? 4 : a[4];
            if (g3_surface_new(g, a[1], a[1], a[3] & 3, surf_samples[a[0]], surf[a[0]]) == 0)
                surf_size[a[0]] = a[1];
        }
        break;
    case 5:
        if (a[0] && a[0] < SURFACES && surf[a[0]][0]) {
            g3_to_2d(g);
            g3_surface_free(g, surf[a[0]], surf_samples[a[0]]);
            memset(surf[a[0]], 0, sizeof surf[a[0]]);
        }
        break;
    case 6: {
        /* what Gl3dExecutor decodes (its boxes must lie in the surface it names) */
        static struct g3_present p;
        int k = g3_present_decode(g, (const uint8_t *)a, n, IMAGE, IMAGE, &p);
        for (int i = 0; i < k; i++)
            if (p.boxes[i][0] < 0 || p.boxes[i][1] < 0 || p.boxes[i][2] > IMAGE
                || p.boxes[i][3] > IMAGE || p.boxes[i][0] >= p.boxes[i][2]
                || p.boxes[i][1] >= p.boxes[i][3]) {
                printf("decoded box %d outside: %d %d %d %d\n", i, p.boxes[i][0],
                       p.boxes[i][1], p.boxes[i][2], p.boxes[i][3]);
                failures++;
            }
        decoded += k >= 0;
        uint32_t fb = g3_framebuffer(g, a[0]);
        g3_to_2d(g);
        if (fb && surf[1][0] && a[3] <= 256 && a[4] <= 256)
            g3_blit(g, fb, surf[1][0], (int32_t)a[1], (int32_t)a[2], (int32_t)a[3],
                    (int32_t)a[4], (int32_t)(a[6] % 256), (int32_t)(a[7] % 256));
        /* and by copy into a host image of exactly IMAGE x IMAGE pixels (its bounds are
         * ASan's to see), at the words' destination, any `keep` (4: none such) */
        uint32_t src = fb ? fb : surf[1][0];
        uint8_t *image = malloc((size_t)IMAGE * IMAGE * 4);
        if (src && image
            && g3_present_copy(g, src, (int32_t)a[1], (int32_t)a[2], (int32_t)a[3],
                               (int32_t)a[4], image, IMAGE, IMAGE, (int32_t)a[6],
                               (int32_t)a[7], (int)(a[5] % 5)) == 0)
            copied++;
        free(image);
        break;
    }
    default: break;
    }
}

/* checks and clears what g3_execute staged, as Gl3dExecutor takes it */
static void take_presented(G3 *g)
{
    struct g3_presented *r = g3_presented(g);
    uint32_t at = 0;
    for (uint32_t i = 0; i < r->records && i < G3_MAX_PRESENTED; i++)
        for (uint32_t j = 0; j < r->n[i]; j++, at++) {
            const int32_t *b = r->box[at];
            if (at >= G3_MAX_PRESENT_RECTS || b[0] < 0 || b[1] < 0 || b[2] > TARGET
                || b[3] > TARGET || b[0] >= b[2] || b[1] >= b[3]) {
                printf("staged box %u outside\n", at);
                failures++;
                break;
            }
        }
    if (r->records > G3_MAX_PRESENTED || at != r->boxes) {
        printf("presented: %u records, %u boxes, %u counted\n", r->records, r->boxes, at);
        failures++;
    }
    staged += r->records;
    r->records = r->boxes = 0;
}

static void run(G3 *g, const uint32_t *w, uint32_t n)
{
    struct g3_run r = {0};
    for (;;) {
        g3_run(g, (const uint8_t *)w, n, &r);
        take_presented(g);
        if (r.pos >= n)
            break;
        uint32_t pos = r.pos, op = w[pos] & 0xFFFF, body = w[pos] >> 16;
        if (body > n - pos - 1) {
            if (g3_current(g))
                g3_lose(g, g3_current(g));
            g3_batch_end(g);
            g3_take_lost(g);
            break;
        }
        vgpu_command(g, op, w + pos + 1, body);
        r.pos = pos + 1 + body;
    }
    fenced += r.fenced;
    g3_to_2d(g);
}

static const uint32_t interesting[] = {0, 1, 2, 3, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                                       0xFFFFFFFF, 0xFFFF0000, 0x80000010, 0x100, 0x1FF,
                                       SLOT - 4, SLOT, 1u << 30};

int main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    long cases = atol(argv[1]);
    rng = (uint64_t)atol(argv[2]) * 2654435761u + 1;
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    EGLDisplay d = get_display ? get_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY,
                                             NULL) : eglGetDisplay(EGL_DEFAULT_DISPLAY);
    EGLint major, minor;
    static const EGLint ctx_attr[] = {EGL_CONTEXT_MAJOR_VERSION, 4, EGL_CONTEXT_MINOR_VERSION, 3,
                                      EGL_CONTEXT_OPENGL_PROFILE_MASK,
                                      EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL_NONE};
    if (!eglInitialize(d, &major, &minor) || !eglBindAPI(EGL_OPENGL_API)) {
        printf("no EGL\n");
        return 3;
    }
    /* no surface, so no config (EGL_KHR_no_config_context, EGL_KHR_surfaceless_context) */
    EGLContext ctx = eglCreateContext(d, (EGLConfig)0, EGL_NO_CONTEXT, ctx_attr);
    if (ctx == EGL_NO_CONTEXT || !eglMakeCurrent(d, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx)) {
        printf("no GL context\n");
        return 3;
    }
    G3 *g = g3_new();
    if (!g) {
        printf("g3_new: %s\n", g3_last_error());
        return 3;
    }
    uint8_t *mem = malloc(MEM);
    memset(mem, 0, SLOT);
    for (uint32_t i = SLOT; i < MEM; i++)
        mem[i] = (uint8_t)(i * 7 + 3);
    g3_set_memory(g, (uintptr_t)mem, MEM);
    uint64_t start = 0, end = SLOT;
    uint32_t gen = 0;
    uint8_t valid = 1;
    g3_set_slots(g, 8, 8, 1, &start, &end, &gen, &valid);
    /* the staging texture of a TARGET x TARGET surface 0, as a drawable's */
    uint32_t target[3];
    if (g3_surface_new(g, TARGET, TARGET, 0, 1, target) != 0) {
        printf("no staging surface\n");
        return 3;
    }
    g3_present_target(g, 0, TARGET, TARGET, target[0]);

    uint32_t n0, nseeds = 0, seed_n[MAX_SEEDS];
    uint32_t *prologue = read_words(argv[3], &n0), *seeds[MAX_SEEDS];
    for (int i = 4; i < argc && nseeds < MAX_SEEDS; i++)
        if ((seeds[nseeds] = read_words(argv[i], &seed_n[nseeds])))
            nseeds++;
    if (!prologue || !nseeds)
        return 2;
    run(g, prologue, n0);
    uint32_t *w = malloc(MAX_WORDS * 4);
    for (long c = 0; c < cases; c++) {
        uint32_t s = next() % nseeds, n = seed_n[s], kind = next() % 4;
        memcpy(w, seeds[s], (size_t)n * 4);
        if (kind == 0) {
            for (uint32_t e = 1 + next() % 6; e; e--)
                w[next() % n] = next() % 2 ? interesting[next() % 16] : next();
        } else if (kind == 1) {
            n = next() % (n + 1);
        } else if (kind == 2) {
            for (uint32_t e = 1 + next() % 8; e; e--)
                w[next() % n] ^= 1u << (next() % 32);
        } else {
            n = next() % 64;
            for (uint32_t i = 0; i < n; i++)
                w[i] = next() % 2 ? interesting[next() % 16] : next();
        }
        /* an allocation of exactly the batch: a read past it is ASan's to see */
        uint32_t *exact = malloc(n ? (size_t)n * 4 : 4);
        memcpy(exact, w, (size_t)n * 4);
        run(g, exact, n);
        free(exact);
        g3_batch_begin(g);
        for (uint32_t id = 2; id <= G3_MAX_CONTEXTS; id++)
            g3_context_destroy(g, id);
        g3_to_2d(g);
    }
    for (uint32_t i = SLOT; i < MEM; i++)
        if (mem[i] != (uint8_t)(i * 7 + 3)) {
            printf("memory outside the memslot changed at %u\n", i);
            failures++;
            break;
        }
    for (int i = 1; i < SURFACES; i++)
        if (surf[i][0])
            g3_surface_free(g, surf[i], surf_samples[i]);
    g3_surface_free(g, target, 1);
    g3_free(g);
    printf("%ld cases, %ld failures, %ld presents copied, %ld staged, %ld decoded, %ld fenced\n",
           cases, failures, copied, staged, decoded, fenced);
    free(w);
    free(mem);
    free(prologue);
    for (uint32_t i = 0; i < nseeds; i++)
        free(seeds[i]);
    eglMakeCurrent(d, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(d, ctx);
    eglTerminate(d);
    return failures != 0;
}
