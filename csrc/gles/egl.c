/* libEGL.so.1 for vgpu guests: EGL 1.5 over libGLESv2's connection to the 3D ring.
 *
 * One display (X11 or surfaceless: both name the same device), a fixed list of configs,
 * window surfaces (an X window: its size and position come from libX11, loaded at run time
 * from the program's own X connection) and pbuffers, ES 2 and ES 3 contexts. A window
 * surface is a device drawable of the window's size; eglSwapBuffers presents it onto the
 * QXL primary surface at the window's position on the X screen (the device clips it to the
 * mode). Errors are EGL's; nothing here trusts the program's handles: every display,
 * config, surface and context handle is looked up before use. */
#define _GNU_SOURCE
#include "gles_internal.h"

#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <X11/Xlib.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

/* Surfaces and contexts a process holds at once (handles index these tables). */
#define EGL_MAX_SURFACES 64
#define EGL_MAX_CONTEXTS 64

typedef struct { EGLint id, r, g, b, a, depth, stencil, samples; } Config;
/* RGBA8 and RGB8 (in a 32-bit pixel), each without and with depth 24 / stencil 8, single-
 * sampled and 4x: what ES programs ask for. */
static Config configs[16];
static int nconfigs;

typedef struct {
    int used, window, width, height;
    EGLNativeWindowType win;
    const Config *config;
    uint32_t id;
    int interval;
} Surface;

typedef struct {
    int used, api;
    const Config *config;
    VgCtx *vg;
} Context;

static struct {
    int initialized;
    Display *x;
    Surface surfaces[EGL_MAX_SURFACES];
    Context contexts[EGL_MAX_CONTEXTS];
    EGLint visual;
} D;
#define DPY ((EGLDisplay)&D)

static __thread EGLint egl_error = EGL_SUCCESS;
static __thread Surface *cur_draw;
static __thread Context *cur_ctx;
static __thread EGLenum cur_api = EGL_OPENGL_ES_API;

static struct {
    void *lib;
    Status (*GetWindowAttributes)(Display *, Window, XWindowAttributes *);
    Bool (*TranslateCoordinates)(Display *, Window, Window, int, int, int *, int *, Window *);
    VisualID (*VisualIDFromVisual)(Visual *);
} X;

static EGLBoolean fail(EGLint e)
{
    egl_error = e;
    return EGL_FALSE;
}

static void x_load(void)
{
    if (X.lib) return;
    X.lib = dlopen("libX11.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (!X.lib) X.lib = dlopen("libX11.so.6", RTLD_LAZY);
    if (!X.lib) return;
    X.GetWindowAttributes = (Status (*)(Display *, Window, XWindowAttributes *))
        dlsym(X.lib, "XGetWindowAttributes");
    X.TranslateCoordinates =
        (Bool (*)(Display *, Window, Window, int, int, int *, int *, Window *))
        dlsym(X.lib, "XTranslateCoordinates");
    X.VisualIDFromVisual = (VisualID (*)(Visual *))dlsym(X.lib, "XVisualIDFromVisual");
}

/* The window's size and its position on the root window; 0 when X cannot tell. */
static int x_geometry(EGLNativeWindowType win, int *w, int *h, int *x, int *y)
{
    x_load();
    XWindowAttributes a;
    if (!D.x || !X.GetWindowAttributes || !X.GetWindowAttributes(D.x, (Window)win, &a))
        return 0;
    *w = a.width;
    *h = a.height;
    Window child;
    *x = *y = 0;
    if (X.TranslateCoordinates)
        X.TranslateCoordinates(D.x, (Window)win, a.root, 0, 0, x, y, &child);
    return 1;
}

static void make_configs(void)
{
    if (nconfigs) return;
    for (int alpha = 1; alpha >= 0; alpha--)
        for (int ds = 0; ds < 4; ds++)
            for (int ms = 0; ms < 2; ms++) {
                Config *c = &configs[nconfigs];
                c->id = ++nconfigs;
                c->r = c->g = c->b = 8;
                c->a = alpha ? 8 : 0;
                c->depth = ds & 1 ? 24 : 0;
                c->stencil = ds & 2 ? 8 : 0;
                c->samples = ms ? 4 : 0;
            }
}

static const Config *config_of(EGLConfig cfg)
{
    for (int i = 0; i < nconfigs; i++)
        if (cfg == (EGLConfig)&configs[i]) return &configs[i];
    return NULL;
}

static Surface *surface_of(EGLSurface s)
{
    for (int i = 0; i < EGL_MAX_SURFACES; i++)
        if (s == (EGLSurface)&D.surfaces[i] && D.surfaces[i].used) return &D.surfaces[i];
    return NULL;
}

static Context *context_of(EGLContext c)
{
    for (int i = 0; i < EGL_MAX_CONTEXTS; i++)
        if (c == (EGLContext)&D.contexts[i] && D.contexts[i].used) return &D.contexts[i];
    return NULL;
}

static int display_ok(EGLDisplay dpy)
{
    if (dpy != DPY) return fail(EGL_BAD_DISPLAY), 0;
    if (!D.initialized) return fail(EGL_NOT_INITIALIZED), 0;
    return 1;
}

/* ---- displays ----------------------------------------------------------------------- */

VG_API EGLDisplay eglGetDisplay(EGLNativeDisplayType display_id)
{
    if (display_id != EGL_DEFAULT_DISPLAY) D.x = (Display *)display_id;
    return DPY;
}

VG_API EGLDisplay eglGetPlatformDisplay(EGLenum platform, void *native, const EGLAttrib *attribs)
{
    (void)attribs;
    if (platform == EGL_PLATFORM_X11_KHR) {
        if (native) D.x = native;
        return DPY;
    }
    if (platform == EGL_PLATFORM_SURFACELESS_MESA) return DPY;
    egl_error = EGL_BAD_PARAMETER;
    return EGL_NO_DISPLAY;
}

VG_API EGLDisplay eglGetPlatformDisplayEXT(EGLenum platform, void *native, const EGLint *attribs);
VG_API EGLDisplay eglGetPlatformDisplayEXT(EGLenum platform, void *native, const EGLint *attribs)
{
    (void)attribs;
    return eglGetPlatformDisplay(platform, native, NULL);
}

VG_API EGLBoolean eglInitialize(EGLDisplay dpy, EGLint *major, EGLint *minor)
{
    if (dpy != DPY) return fail(EGL_BAD_DISPLAY);
    if (vg_connect() < 0) return fail(EGL_NOT_INITIALIZED);
    make_configs();
    D.initialized = 1;
    if (major) *major = 1;
    if (minor) *minor = 5;
    return EGL_TRUE;
}

VG_API EGLBoolean eglTerminate(EGLDisplay dpy)
{
    if (dpy != DPY) return fail(EGL_BAD_DISPLAY);
    D.initialized = 0;
    return EGL_TRUE;
}

VG_API const char *eglQueryString(EGLDisplay dpy, EGLint name)
{
    if (dpy == EGL_NO_DISPLAY && name == EGL_EXTENSIONS)
        return "EGL_EXT_client_extensions EGL_EXT_platform_base EGL_KHR_platform_x11 "
               "EGL_EXT_platform_x11 EGL_MESA_platform_surfaceless";
    if (dpy == EGL_NO_DISPLAY && name == EGL_VERSION) return "1.5";
    if (!display_ok(dpy)) return NULL;
    switch (name) {
    case EGL_VENDOR: return "vgpu";
    case EGL_VERSION: return "1.5 vgpu";
    case EGL_CLIENT_APIS: return "OpenGL_ES";
    case EGL_EXTENSIONS:
        return "EGL_KHR_surfaceless_context EGL_KHR_create_context EGL_KHR_no_config_context";
    default:
        egl_error = EGL_BAD_PARAMETER;
        return NULL;
    }
}

VG_API EGLint eglGetError(void)
{
    EGLint e = egl_error;
    egl_error = EGL_SUCCESS;
    return e;
}

VG_API EGLBoolean eglBindAPI(EGLenum api)
{
    if (api != EGL_OPENGL_ES_API) return fail(EGL_BAD_PARAMETER);
    cur_api = api;
    return EGL_TRUE;
}

VG_API EGLenum eglQueryAPI(void)
{
    return cur_api;
}

VG_API EGLBoolean eglReleaseThread(void)
{
    if (D.initialized) eglMakeCurrent(DPY, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    egl_error = EGL_SUCCESS;
    return EGL_TRUE;
}

/* ---- configs ------------------------------------------------------------------------ */

static EGLint visual_id(void)
{
    x_load();
    if (!D.visual && D.x && X.VisualIDFromVisual)
        D.visual = (EGLint)X.VisualIDFromVisual(DefaultVisual(D.x, DefaultScreen(D.x)));
    return D.visual;
}

static int attrib(const Config *c, EGLint name, EGLint *value)
{
    switch (name) {
    case EGL_CONFIG_ID: *value = c->id; break;
    case EGL_BUFFER_SIZE: *value = c->r + c->g + c->b + c->a; break;
    case EGL_RED_SIZE: *value = c->r; break;
    case EGL_GREEN_SIZE: *value = c->g; break;
    case EGL_BLUE_SIZE: *value = c->b; break;
    case EGL_ALPHA_SIZE: *value = c->a; break;
    case EGL_DEPTH_SIZE: *value = c->depth; break;
    case EGL_STENCIL_SIZE: *value = c->stencil; break;
    case EGL_SAMPLES: *value = c->samples; break;
    case EGL_SAMPLE_BUFFERS: *value = c->samples ? 1 : 0; break;
    case EGL_SURFACE_TYPE: *value = EGL_WINDOW_BIT | EGL_PBUFFER_BIT; break;
    case EGL_RENDERABLE_TYPE: case EGL_CONFORMANT:
        *value = EGL_OPENGL_ES2_BIT | EGL_OPENGL_ES3_BIT; break;
    case EGL_COLOR_BUFFER_TYPE: *value = EGL_RGB_BUFFER; break;
    case EGL_CONFIG_CAVEAT: case EGL_TRANSPARENT_TYPE: *value = EGL_NONE; break;
    case EGL_NATIVE_RENDERABLE: *value = EGL_TRUE; break;
    case EGL_NATIVE_VISUAL_ID: *value = visual_id(); break;
    case EGL_NATIVE_VISUAL_TYPE: *value = 4; break; /* X's TrueColor */
    case EGL_MIN_SWAP_INTERVAL: *value = 0; break;
    case EGL_MAX_SWAP_INTERVAL: *value = 1; break;
    case EGL_MAX_PBUFFER_WIDTH: case EGL_MAX_PBUFFER_HEIGHT: *value = 8192; break;
    case EGL_MAX_PBUFFER_PIXELS: *value = 8192 * 8192; break;
    case EGL_LEVEL: case EGL_LUMINANCE_SIZE: case EGL_ALPHA_MASK_SIZE:
    case EGL_BIND_TO_TEXTURE_RGB: case EGL_BIND_TO_TEXTURE_RGBA:
    case EGL_TRANSPARENT_RED_VALUE: case EGL_TRANSPARENT_GREEN_VALUE:
    case EGL_TRANSPARENT_BLUE_VALUE:
        *value = 0; break;
    default:
        return 0;
    }
    return 1;
}

VG_API EGLBoolean eglGetConfigAttrib(EGLDisplay dpy, EGLConfig config, EGLint name, EGLint *value)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    const Config *c = config_of(config);
    if (!c) return fail(EGL_BAD_CONFIG);
    if (!value) return fail(EGL_BAD_PARAMETER);
    if (!attrib(c, name, value)) return fail(EGL_BAD_ATTRIBUTE);
    return EGL_TRUE;
}

VG_API EGLBoolean eglGetConfigs(EGLDisplay dpy, EGLConfig *out, EGLint size, EGLint *num)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    if (!num) return fail(EGL_BAD_PARAMETER);
    EGLint n = 0;
    for (int i = 0; i < nconfigs; i++) {
        if (out && n < size) out[n] = (EGLConfig)&configs[i];
        if (out && n >= size) break;
        n++;
    }
    *num = n;
    return EGL_TRUE;
}

/* EGL's sort: more colour bits first among those asked for, then smaller buffers, fewer
 * samples, less depth and stencil. */
static const EGLint *sort_attribs;
static int wanted(EGLint name)
{
    for (const EGLint *a = sort_attribs; a && a[0] != EGL_NONE; a += 2)
        if (a[0] == name) return a[1] != 0 && a[1] != EGL_DONT_CARE;
    return 0;
}
static int config_cmp(const void *pa, const void *pb)
{
    const Config *a = *(const Config *const *)pa, *b = *(const Config *const *)pb;
    int ca = a->r + a->g + a->b + (wanted(EGL_ALPHA_SIZE) ? a->a : 0);
    int cb = b->r + b->g + b->b + (wanted(EGL_ALPHA_SIZE) ? b->a : 0);
    if (ca != cb) return cb - ca;
    int ba = a->r + a->g + a->b + a->a, bb = b->r + b->g + b->b + b->a;
    if (ba != bb) return ba - bb;
    if (a->samples != b->samples) return a->samples - b->samples;
    if (a->depth != b->depth) return a->depth - b->depth;
    if (a->stencil != b->stencil) return a->stencil - b->stencil;
    return a->id - b->id;
}

VG_API EGLBoolean eglChooseConfig(EGLDisplay dpy, const EGLint *attribs, EGLConfig *out,
                                  EGLint size, EGLint *num)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    if (!num) return fail(EGL_BAD_PARAMETER);
    const Config *match[16];
    int n = 0;
    for (int i = 0; i < nconfigs; i++) {
        const Config *c = &configs[i];
        int ok = 1;
        for (const EGLint *a = attribs; ok && a && a[0] != EGL_NONE; a += 2) {
            EGLint v, want = a[1];
            if (want == EGL_DONT_CARE) continue;
            switch (a[0]) {
            case EGL_SURFACE_TYPE: case EGL_RENDERABLE_TYPE: case EGL_CONFORMANT:
                attrib(c, a[0], &v);
                ok = (v & want) == want;
                break;
            case EGL_CONFIG_ID: case EGL_NATIVE_RENDERABLE: case EGL_COLOR_BUFFER_TYPE:
            case EGL_TRANSPARENT_TYPE: case EGL_CONFIG_CAVEAT:
                attrib(c, a[0], &v);
                ok = v == want;
                break;
            case EGL_RED_SIZE: case EGL_GREEN_SIZE: case EGL_BLUE_SIZE: case EGL_ALPHA_SIZE:
            case EGL_DEPTH_SIZE: case EGL_STENCIL_SIZE: case EGL_SAMPLES:
            case EGL_SAMPLE_BUFFERS: case EGL_BUFFER_SIZE:
                attrib(c, a[0], &v);
                ok = v >= want;
                break;
            case EGL_LUMINANCE_SIZE: case EGL_ALPHA_MASK_SIZE: case EGL_LEVEL:
            case EGL_BIND_TO_TEXTURE_RGB: case EGL_BIND_TO_TEXTURE_RGBA:
                ok = want == 0;
                break;
            default:
                break; /* sorting-only or ignored attributes */
            }
        }
        if (ok) match[n++] = c;
    }
    sort_attribs = attribs;
    qsort(match, (size_t)n, sizeof *match, config_cmp);
    EGLint k = 0;
    for (int i = 0; i < n; i++) {
        if (out && k >= size) break;
        if (out) out[k] = (EGLConfig)match[i];
        k++;
    }
    *num = k;
    return EGL_TRUE;
}

/* ---- surfaces ----------------------------------------------------------------------- */

static Surface *new_surface(const Config *c, int w, int h)
{
    for (int i = 0; i < EGL_MAX_SURFACES; i++) {
        Surface *s = &D.surfaces[i];
        if (s->used) continue;
        memset(s, 0, sizeof *s);
        s->id = vg_surface_create(w, h, c->depth, c->stencil, c->samples);
        if (!s->id) return NULL;
        s->used = 1;
        s->config = c;
        s->width = w;
        s->height = h;
        s->interval = 1;
        return s;
    }
    return NULL;
}

VG_API EGLSurface eglCreateWindowSurface(EGLDisplay dpy, EGLConfig config,
                                         EGLNativeWindowType win, const EGLint *attribs)
{
    (void)attribs;
    if (!display_ok(dpy)) return EGL_NO_SURFACE;
    const Config *c = config_of(config);
    if (!c) return fail(EGL_BAD_CONFIG), EGL_NO_SURFACE;
    int w, h, x, y;
    if (!x_geometry(win, &w, &h, &x, &y)) return fail(EGL_BAD_NATIVE_WINDOW), EGL_NO_SURFACE;
    Surface *s = new_surface(c, w, h);
    if (!s) return fail(EGL_BAD_ALLOC), EGL_NO_SURFACE;
    s->window = 1;
    s->win = win;
    return (EGLSurface)s;
}

VG_API EGLSurface eglCreatePlatformWindowSurface(EGLDisplay dpy, EGLConfig config,
                                                 void *win, const EGLAttrib *attribs)
{
    (void)attribs;
    return win ? eglCreateWindowSurface(dpy, config, *(Window *)win, NULL)
               : (fail(EGL_BAD_NATIVE_WINDOW), EGL_NO_SURFACE);
}

VG_API EGLSurface eglCreatePlatformWindowSurfaceEXT(EGLDisplay dpy, EGLConfig config,
                                                    void *win, const EGLint *attribs);
VG_API EGLSurface eglCreatePlatformWindowSurfaceEXT(EGLDisplay dpy, EGLConfig config,
                                                    void *win, const EGLint *attribs)
{
    (void)attribs;
    return eglCreatePlatformWindowSurface(dpy, config, win, NULL);
}

VG_API EGLSurface eglCreatePbufferSurface(EGLDisplay dpy, EGLConfig config,
                                          const EGLint *attribs)
{
    if (!display_ok(dpy)) return EGL_NO_SURFACE;
    const Config *c = config_of(config);
    if (!c) return fail(EGL_BAD_CONFIG), EGL_NO_SURFACE;
    EGLint w = 0, h = 0;
    for (const EGLint *a = attribs; a && a[0] != EGL_NONE; a += 2) {
        if (a[0] == EGL_WIDTH) w = a[1];
        else if (a[0] == EGL_HEIGHT) h = a[1];
    }
    if (w < 0 || h < 0 || w > 8192 || h > 8192) return fail(EGL_BAD_PARAMETER), EGL_NO_SURFACE;
    Surface *s = new_surface(c, w ? w : 1, h ? h : 1);
    if (!s) return fail(EGL_BAD_ALLOC), EGL_NO_SURFACE;
    return (EGLSurface)s;
}

VG_API EGLBoolean eglDestroySurface(EGLDisplay dpy, EGLSurface surface)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    Surface *s = surface_of(surface);
    if (!s) return fail(EGL_BAD_SURFACE);
    vg_surface_destroy(s->id);
    s->used = 0;
    if (cur_draw == s) cur_draw = NULL;
    return EGL_TRUE;
}

VG_API EGLBoolean eglQuerySurface(EGLDisplay dpy, EGLSurface surface, EGLint name, EGLint *value)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    Surface *s = surface_of(surface);
    if (!s) return fail(EGL_BAD_SURFACE);
    if (!value) return fail(EGL_BAD_PARAMETER);
    switch (name) {
    case EGL_WIDTH: *value = s->width; break;
    case EGL_HEIGHT: *value = s->height; break;
    case EGL_CONFIG_ID: *value = s->config->id; break;
    case EGL_RENDER_BUFFER: *value = s->window ? EGL_BACK_BUFFER : EGL_SINGLE_BUFFER; break;
    case EGL_SWAP_BEHAVIOR: *value = EGL_BUFFER_DESTROYED; break;
    case EGL_MULTISAMPLE_RESOLVE: *value = EGL_MULTISAMPLE_RESOLVE_DEFAULT; break;
    case EGL_HORIZONTAL_RESOLUTION: case EGL_VERTICAL_RESOLUTION: case EGL_PIXEL_ASPECT_RATIO:
        *value = EGL_UNKNOWN; break;
    default:
        return fail(EGL_BAD_ATTRIBUTE);
    }
    return EGL_TRUE;
}

VG_API EGLBoolean eglSurfaceAttrib(EGLDisplay dpy, EGLSurface surface, EGLint name, EGLint value)
{
    (void)name, (void)value;
    if (!display_ok(dpy)) return EGL_FALSE;
    if (!surface_of(surface)) return fail(EGL_BAD_SURFACE);
    return EGL_TRUE;
}

VG_API EGLBoolean eglSwapInterval(EGLDisplay dpy, EGLint interval)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    if (!cur_draw) return fail(EGL_BAD_SURFACE);
    cur_draw->interval = interval < 0 ? 0 : interval > 1 ? 1 : interval;
    return EGL_TRUE;
}

VG_API EGLBoolean eglSwapBuffers(EGLDisplay dpy, EGLSurface surface)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    Surface *s = surface_of(surface);
    if (!s) return fail(EGL_BAD_SURFACE);
    if (s != cur_draw || !cur_ctx) return fail(EGL_BAD_SURFACE);
    if (!s->window) return EGL_TRUE;
    int w, h, x = 0, y = 0;
    if (!x_geometry(s->win, &w, &h, &x, &y)) {
        w = s->width;
        h = s->height;
    }
    vg_present(s->width, s->height, x, y);
    return EGL_TRUE;
}

VG_API EGLBoolean eglCopyBuffers(EGLDisplay dpy, EGLSurface surface, EGLNativePixmapType t)
{
    (void)surface, (void)t;
    if (!display_ok(dpy)) return EGL_FALSE;
    return fail(EGL_BAD_NATIVE_PIXMAP);
}

VG_API EGLSurface eglCreatePixmapSurface(EGLDisplay dpy, EGLConfig config,
                                         EGLNativePixmapType pixmap, const EGLint *attribs)
{
    (void)config, (void)pixmap, (void)attribs;
    if (!display_ok(dpy)) return EGL_NO_SURFACE;
    return fail(EGL_BAD_MATCH), EGL_NO_SURFACE; /* no config has EGL_PIXMAP_BIT */
}

/* ---- contexts ----------------------------------------------------------------------- */

VG_API EGLContext eglCreateContext(EGLDisplay dpy, EGLConfig config, EGLContext share,
                                   const EGLint *attribs)
{
    if (!display_ok(dpy)) return EGL_NO_CONTEXT;
    const Config *c = config == EGL_NO_CONFIG_KHR ? NULL : config_of(config);
    if (config != EGL_NO_CONFIG_KHR && !c) return fail(EGL_BAD_CONFIG), EGL_NO_CONTEXT;
    Context *sh = NULL;
    if (share != EGL_NO_CONTEXT && !(sh = context_of(share)))
        return fail(EGL_BAD_CONTEXT), EGL_NO_CONTEXT;
    EGLint api = 1;
    for (const EGLint *a = attribs; a && a[0] != EGL_NONE; a += 2)
        if (a[0] == EGL_CONTEXT_CLIENT_VERSION) api = a[1];
    if (api == 1) api = 2; /* ES 1 is not offered; EGL's default asks for ES 1 */
    if (api != 2 && api != 3) return fail(EGL_BAD_MATCH), EGL_NO_CONTEXT;
    for (int i = 0; i < EGL_MAX_CONTEXTS; i++) {
        Context *x = &D.contexts[i];
        if (x->used) continue;
        x->vg = vg_ctx_create(api, sh ? sh->vg : NULL);
        if (!x->vg) return fail(EGL_BAD_ALLOC), EGL_NO_CONTEXT;
        x->used = 1;
        x->api = api;
        x->config = c;
        return (EGLContext)x;
    }
    return fail(EGL_BAD_ALLOC), EGL_NO_CONTEXT;
}

VG_API EGLBoolean eglDestroyContext(EGLDisplay dpy, EGLContext ctx)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    Context *c = context_of(ctx);
    if (!c) return fail(EGL_BAD_CONTEXT);
    vg_ctx_destroy(c->vg);
    c->used = 0;
    if (cur_ctx == c) cur_ctx = NULL;
    return EGL_TRUE;
}

VG_API EGLBoolean eglMakeCurrent(EGLDisplay dpy, EGLSurface draw, EGLSurface read,
                                 EGLContext ctx)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    if (ctx == EGL_NO_CONTEXT) {
        if (draw != EGL_NO_SURFACE || read != EGL_NO_SURFACE) return fail(EGL_BAD_MATCH);
        vg_make_current(NULL, 0);
        cur_ctx = NULL;
        cur_draw = NULL;
        return EGL_TRUE;
    }
    Context *c = context_of(ctx);
    if (!c) return fail(EGL_BAD_CONTEXT);
    Surface *s = NULL;
    if (draw != EGL_NO_SURFACE && !(s = surface_of(draw))) return fail(EGL_BAD_SURFACE);
    if (read != draw) return fail(EGL_BAD_MATCH); /* one surface for both, as ES needs */
    vg_make_current(c->vg, s ? s->id : 0);
    cur_ctx = c;
    cur_draw = s;
    if (s && c->vg) {
        /* a context's first surface sets its viewport, as EGL says */
        static __thread Context *seen[EGL_MAX_CONTEXTS];
        int i = (int)(c - D.contexts);
        if (seen[i] != c) {
            seen[i] = c;
            glViewport(0, 0, s->width, s->height);
            glScissor(0, 0, s->width, s->height);
        }
    }
    return EGL_TRUE;
}

VG_API EGLContext eglGetCurrentContext(void)
{
    return cur_ctx ? (EGLContext)cur_ctx : EGL_NO_CONTEXT;
}

VG_API EGLSurface eglGetCurrentSurface(EGLint readdraw)
{
    (void)readdraw;
    return cur_draw ? (EGLSurface)cur_draw : EGL_NO_SURFACE;
}

VG_API EGLDisplay eglGetCurrentDisplay(void)
{
    return cur_ctx ? DPY : EGL_NO_DISPLAY;
}

VG_API EGLBoolean eglQueryContext(EGLDisplay dpy, EGLContext ctx, EGLint name, EGLint *value)
{
    if (!display_ok(dpy)) return EGL_FALSE;
    Context *c = context_of(ctx);
    if (!c) return fail(EGL_BAD_CONTEXT);
    if (!value) return fail(EGL_BAD_PARAMETER);
    switch (name) {
    case EGL_CONFIG_ID: *value = c->config ? c->config->id : 0; break;
    case EGL_CONTEXT_CLIENT_TYPE: *value = EGL_OPENGL_ES_API; break;
    case EGL_CONTEXT_CLIENT_VERSION: *value = c->api; break;
    case EGL_RENDER_BUFFER:
        *value = cur_ctx == c && cur_draw ? EGL_BACK_BUFFER : EGL_NONE; break;
    default:
        return fail(EGL_BAD_ATTRIBUTE);
    }
    return EGL_TRUE;
}

VG_API EGLBoolean eglWaitClient(void)
{
    if (cur_ctx) vg_finish();
    return EGL_TRUE;
}

VG_API EGLBoolean eglWaitGL(void)
{
    return eglWaitClient();
}

VG_API EGLBoolean eglWaitNative(EGLint engine)
{
    (void)engine;
    return EGL_TRUE;
}

VG_API EGLBoolean eglBindTexImage(EGLDisplay dpy, EGLSurface surface, EGLint buffer)
{
    (void)surface, (void)buffer;
    if (!display_ok(dpy)) return EGL_FALSE;
    return fail(EGL_BAD_MATCH); /* no config binds to textures */
}

VG_API EGLBoolean eglReleaseTexImage(EGLDisplay dpy, EGLSurface surface, EGLint buffer)
{
    return eglBindTexImage(dpy, surface, buffer);
}

VG_API EGLSurface eglCreatePbufferFromClientBuffer(EGLDisplay dpy, EGLenum buftype,
                                                   EGLClientBuffer buffer, EGLConfig config,
                                                   const EGLint *attribs)
{
    (void)buftype, (void)buffer, (void)config, (void)attribs;
    if (!display_ok(dpy)) return EGL_NO_SURFACE;
    return fail(EGL_BAD_PARAMETER), EGL_NO_SURFACE;
}

/* ---- entry points ------------------------------------------------------------------- */

#define P(f) {#f, (void (*)(void))f}
static const VgProc egl_procs[] = {
    P(eglBindAPI), P(eglBindTexImage), P(eglChooseConfig), P(eglCopyBuffers),
    P(eglCreateContext), P(eglCreatePbufferFromClientBuffer), P(eglCreatePbufferSurface),
    P(eglCreatePixmapSurface), P(eglCreatePlatformWindowSurface),
    P(eglCreatePlatformWindowSurfaceEXT), P(eglCreateWindowSurface), P(eglDestroyContext),
    P(eglDestroySurface), P(eglGetConfigAttrib), P(eglGetConfigs), P(eglGetCurrentContext),
    P(eglGetCurrentDisplay), P(eglGetCurrentSurface), P(eglGetDisplay), P(eglGetError),
    P(eglGetPlatformDisplay), P(eglGetPlatformDisplayEXT), P(eglGetProcAddress),
    P(eglInitialize), P(eglMakeCurrent), P(eglQueryAPI), P(eglQueryContext),
    P(eglQueryString), P(eglQuerySurface), P(eglReleaseTexImage), P(eglReleaseThread),
    P(eglSurfaceAttrib), P(eglSwapBuffers), P(eglSwapInterval), P(eglTerminate),
    P(eglWaitClient), P(eglWaitGL), P(eglWaitNative),
};

VG_API __eglMustCastToProperFunctionPointerType eglGetProcAddress(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof egl_procs / sizeof *egl_procs; i++)
        if (!strcmp(egl_procs[i].name, name)) return egl_procs[i].fn;
    for (unsigned i = 0; i < vg_nprocs; i++)
        if (!strcmp(vg_procs[i].name, name)) return vg_procs[i].fn;
    return NULL;
}
