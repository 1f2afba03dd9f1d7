/* Feeds a record file through the real spice-server: its replay reader
 * (spice_replay_next_cmd) turns every event into a QXL command, and its worker
 * parses and renders those commands exactly as it would a guest's. The QXL
 * device it gives spice-server is bench/peer/replay-qxl.c, the peer's own.
 *
 * Usage: spice_replay_check FILE [PPM]
 * With PPM, the primary surface as spice-server rendered it (every command drawn
 * through its canvas by QXL_IO_UPDATE_AREA of the whole surface) is written there.
 * Prints "commands N releases R warnings W bytes_left B" and exits 0 when the
 * reader reached the end of the file (B == 0) and spice-server logged no
 * warning. spice_replay_next_cmd stops quietly at a record it cannot read (at
 * the end of the file too when the damage is in the last blob), so the caller
 * also compares N with the number of commands it wrote.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include "replay-qxl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Commands waiting for the worker; the replay reader runs ahead at most this far. */
#define MAX_QUEUED 64

/* How often the check wakes the worker while it waits for the queued commands. */
#define DRAIN_POLL_US 1000

static gint warnings;

/* The core interface: no listening socket and no client, so nothing needs to run. */
struct SpiceTimer { int unused; };
struct SpiceWatch { int unused; };

static SpiceTimer *timer_add(SpiceTimerFunc func, void *opaque)
{
    (void)func; (void)opaque;
    return g_new0(SpiceTimer, 1);
}
static void timer_start(SpiceTimer *t, uint32_t ms) { (void)t; (void)ms; }
static void timer_cancel(SpiceTimer *t) { (void)t; }
static void timer_remove(SpiceTimer *t) { g_free(t); }
static SpiceWatch *watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    (void)fd; (void)mask; (void)func; (void)opaque;
    return g_new0(SpiceWatch, 1);
}
static void watch_update_mask(SpiceWatch *w, int mask) { (void)w; (void)mask; }
static void watch_remove(SpiceWatch *w) { g_free(w); }
static void channel_event(int event, SpiceChannelEventInfo *info) { (void)event; (void)info; }

static SpiceCoreInterface core = {
    .base = { .major_version = SPICE_INTERFACE_CORE_MAJOR,
              .minor_version = SPICE_INTERFACE_CORE_MINOR },
    .timer_add = timer_add, .timer_start = timer_start, .timer_cancel = timer_cancel,
    .timer_remove = timer_remove, .watch_add = watch_add,
    .watch_update_mask = watch_update_mask, .watch_remove = watch_remove,
    .channel_event = channel_event,
};

/* The replay reader creates and destroys the primary inside libspice-server, through
 * these two public entry points: taking them first is how the check learns where the
 * primary's memory is. */
static QXLDevSurfaceCreate primary;
static gboolean have_primary;

void spice_qxl_create_primary_surface(QXLInstance *instance, uint32_t id,
                                      QXLDevSurfaceCreate *surface)
{
    void (*real)(QXLInstance *, uint32_t, QXLDevSurfaceCreate *) =
        (void (*)(QXLInstance *, uint32_t, QXLDevSurfaceCreate *))
        dlsym(RTLD_NEXT, "spice_qxl_create_primary_surface");
    primary = *surface;
    have_primary = TRUE;
    real(instance, id, surface);
}

void spice_qxl_destroy_primary_surface(QXLInstance *instance, uint32_t id)
{
    void (*real)(QXLInstance *, uint32_t) =
        (void (*)(QXLInstance *, uint32_t))dlsym(RTLD_NEXT, "spice_qxl_destroy_primary_surface");
    have_primary = FALSE;
    real(instance, id);
}

/* The primary as spice-server's canvas has it, as a binary PPM (32-bit formats only). */
static int dump_primary(const char *path)
{
    if (!have_primary || primary.format != SPICE_SURFACE_FMT_32_xRGB) {
        fprintf(stderr, "no 32-bit primary surface to dump\n");
        return 0;
    }
    QXLRect area = { .top = 0, .left = 0, .bottom = (int32_t)primary.height,
                     .right = (int32_t)primary.width };
    QXLRect dirty;
    spice_qxl_update_area(&replay_qxl, 0, &area, &dirty, 1, 0);
    FILE *out = fopen(path, "wb");
    if (!out) {
        perror(path);
        return 0;
    }
    fprintf(out, "P6\n%u %u\n255\n", primary.width, primary.height);
    uint32_t row_bytes = primary.stride < 0 ? (uint32_t)-primary.stride : (uint32_t)primary.stride;
    for (uint32_t y = 0; y < primary.height; y++) {
        /* a negative stride stores the top row last */
        uint32_t row = primary.stride < 0 ? primary.height - 1 - y : y;
        const uint8_t *p = (const uint8_t *)(uintptr_t)primary.mem + (size_t)row * row_bytes;
        for (uint32_t x = 0; x < primary.width; x++) {
            uint8_t rgb[3] = { p[4 * x + 2], p[4 * x + 1], p[4 * x] };
            fwrite(rgb, 1, 3, out);
        }
    }
    return fclose(out) == 0;
}

static void count_warning(const gchar *domain, GLogLevelFlags level, const gchar *message,
                          gpointer data)
{
    (void)data;
    g_atomic_int_inc(&warnings);
    fprintf(stderr, "spice-server %s: %s\n", domain ? domain : "", message);
    (void)level;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s FILE [PPM]\n", argv[0]);
        return 2;
    }
    FILE *file = fopen(argv[1], "rb");
    if (!file) {
        perror(argv[1]);
        return 2;
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    rewind(file);

    g_log_set_handler(NULL, G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL, count_warning, NULL);
    g_log_set_handler("Spice", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL, count_warning, NULL);

    SpiceServer *server = spice_server_new();
    if (spice_server_init(server, &core) != 0) {
        fprintf(stderr, "spice_server_init failed\n");
        return 2;
    }
    int started = replay_qxl_start(server, "record check", file);
    if (started != 0) {
        return started < 0 ? 2 : 1;
    }
    long commands = 0;
    QXLCommandExt *cmd;
    while ((cmd = replay_qxl_read()) != NULL) {
        commands++;
        replay_qxl_queue(cmd);
        spice_qxl_wakeup(&replay_qxl);
        while (replay_qxl_queued() > MAX_QUEUED) {
            g_usleep(100);
        }
    }
    /* the reader stops at the end of the file or at the first record it cannot read */
    long left = size - ftell(file);
    replay_qxl_wait_drained(DRAIN_POLL_US);
    if (argc == 3 && !dump_primary(argv[2])) {
        return 1;
    }
    /* destroying every surface makes the worker render and release all it holds */
    spice_qxl_destroy_surfaces(&replay_qxl);

    printf("commands %ld releases %d warnings %d bytes_left %ld\n", commands,
           replay_qxl_releases(), g_atomic_int_get(&warnings), left);
    fflush(stdout);
    /* the worker thread has no clean stop in the public API */
    _exit(left == 0 && g_atomic_int_get(&warnings) == 0 ? 0 : 1);
}
