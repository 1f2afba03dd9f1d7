/* Feeds a record file through the real spice-server: its replay reader
 * (spice_replay_next_cmd) turns every event into a QXL command, and its worker
 * parses and renders those commands exactly as it would a guest's.
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
#include <glib.h>
#include <spice.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The worker's surface table; the same number QEMU gives it. */
#define NUM_SURFACES 1024
/* Commands waiting for the worker; the replay reader runs ahead at most this far. */
#define MAX_QUEUED 64

static QXLInstance qxl;
static SpiceReplay *replay;
static GAsyncQueue *display_queue, *cursor_queue;
static GHashTable *outstanding; /* commands handed to the worker, not yet released */
static GMutex lock;
static gint releases, warnings;

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

/* One memslot covering the whole address space: the replay reader's commands
 * point into this process's heap. */
static QXLDevMemSlot slot = {
    .slot_group_id = 0, .slot_id = 0, .generation = 0,
    .virt_start = 0, .virt_end = ~(uint64_t)0, .addr_delta = 0, .qxl_ram_size = ~0u,
};

static void attached_worker(QXLInstance *qin) { spice_qxl_add_memslot(qin, &slot); }
static void set_compression_level(QXLInstance *qin, int level) { (void)qin; (void)level; }
static void get_init_info(QXLInstance *qin, QXLDevInitInfo *info)
{
    (void)qin;
    memset(info, 0, sizeof(*info));
    info->num_memslots = 1;
    info->num_memslots_groups = 1;
    info->memslot_id_bits = 1;
    info->memslot_gen_bits = 1;
    info->n_surfaces = NUM_SURFACES;
}

static int pop(GAsyncQueue *queue, QXLCommandExt *ext)
{
    QXLCommandExt *cmd = g_async_queue_try_pop(queue);
    if (!cmd) {
        return 0;
    }
    *ext = *cmd;
    return 1;
}
static int get_display_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
    return pop(display_queue, ext);
}
static int get_cursor_command(QXLInstance *qin, QXLCommandExt *ext)
{
    (void)qin;
    return pop(cursor_queue, ext);
}
static int req_display_notification(QXLInstance *qin)
{
    (void)qin;
    return g_async_queue_length(display_queue) == 0;
}
static int req_cursor_notification(QXLInstance *qin)
{
    (void)qin;
    return g_async_queue_length(cursor_queue) == 0;
}

static void release_resource(QXLInstance *qin, struct QXLReleaseInfoExt info)
{
    (void)qin;
    QXLCommandExt *cmd = (QXLCommandExt *)(uintptr_t)info.info->id;
    g_atomic_int_inc(&releases);
    g_mutex_lock(&lock);
    /* messages carry no release id in replayed commands: only free what we know */
    gboolean known = g_hash_table_remove(outstanding, cmd);
    g_mutex_unlock(&lock);
    if (known) {
        spice_replay_free_cmd(replay, cmd);
    }
}
static void notify_update(QXLInstance *qin, uint32_t update_id) { (void)qin; (void)update_id; }
static int flush_resources(QXLInstance *qin) { (void)qin; return 0; }
static void async_complete(QXLInstance *qin, uint64_t cookie) { (void)qin; (void)cookie; }

static QXLInterface qxl_interface = {
    .base = { .type = SPICE_INTERFACE_QXL, .description = "record check",
              .major_version = SPICE_INTERFACE_QXL_MAJOR,
              .minor_version = SPICE_INTERFACE_QXL_MINOR },
    .attached_worker = attached_worker,
    .set_compression_level = set_compression_level,
    .get_init_info = get_init_info,
    .get_command = get_display_command,
    .req_cmd_notification = req_display_notification,
    .release_resource = release_resource,
    .get_cursor_command = get_cursor_command,
    .req_cursor_notification = req_cursor_notification,
    .notify_update = notify_update,
    .flush_resources = flush_resources,
    .async_complete = async_complete,
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
    spice_qxl_update_area(&qxl, 0, &area, &dirty, 1, 0);
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

static void wait_drained(void)
{
    while (g_async_queue_length(display_queue) > 0 || g_async_queue_length(cursor_queue) > 0) {
        spice_qxl_wakeup(&qxl);
        g_usleep(1000);
    }
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

    display_queue = g_async_queue_new();
    cursor_queue = g_async_queue_new();
    outstanding = g_hash_table_new(NULL, NULL);

    SpiceServer *server = spice_server_new();
    if (spice_server_init(server, &core) != 0) {
        fprintf(stderr, "spice_server_init failed\n");
        return 2;
    }
    qxl.base.sif = &qxl_interface.base;
    qxl.id = 0;
    if (spice_server_add_interface(server, &qxl.base) != 0) {
        fprintf(stderr, "spice_server_add_interface failed\n");
        return 2;
    }
    spice_server_vm_start(server);

    replay = spice_replay_new(file, NUM_SURFACES);
    if (!replay) {
        fprintf(stderr, "spice_replay_new refused the file\n");
        return 1;
    }
    long commands = 0;
    QXLCommandExt *cmd;
    while ((cmd = spice_replay_next_cmd(replay, &qxl)) != NULL) {
        commands++;
        g_mutex_lock(&lock);
        g_hash_table_add(outstanding, cmd);
        g_mutex_unlock(&lock);
        g_async_queue_push(cmd->cmd.type == QXL_CMD_CURSOR ? cursor_queue : display_queue, cmd);
        spice_qxl_wakeup(&qxl);
        while (g_async_queue_length(display_queue) + g_async_queue_length(cursor_queue)
               > MAX_QUEUED) {
            g_usleep(100);
        }
    }
    /* the reader stops at the end of the file or at the first record it cannot read */
    long left = size - ftell(file);
    wait_drained();
    if (argc == 3 && !dump_primary(argv[2])) {
        return 1;
    }
    /* destroying every surface makes the worker render and release all it holds */
    spice_qxl_destroy_surfaces(&qxl);

    printf("commands %ld releases %d warnings %d bytes_left %ld\n", commands,
           g_atomic_int_get(&releases), g_atomic_int_get(&warnings), left);
    fflush(stdout);
    /* the worker thread has no clean stop in the public API */
    _exit(left == 0 && g_atomic_int_get(&warnings) == 0 ? 0 : 1);
}
