/* The real spice-server serving a record file: the peer vgpu is measured and
 * checked against.
 *
 * A QXL device of our own (replay-qxl.c: one memslot over this process's
 * address space, the command and cursor queues) is given to libspice-server
 * through its public API; spice_replay_next_cmd reads the record file and turns each event into a
 * QXL command (creating the primary surface and the like on the way), and
 * spice-server's worker renders and serves them to any SPICE client on a TCP
 * port, exactly as it would a guest's.
 *
 * Usage: vgpu-spice-peer --port P [--addr A] [--wait-client] [--hold]
 *                        [--image-compression MODE] [--streaming-video MODE]
 *                        [--video-codecs LIST] [--fps N] FILE
 * stdout: "listening P" once clients can connect, "done N" once all N commands
 * of the file have been taken by the worker. It serves until SIGTERM or SIGINT.
 *   --wait-client  the replay starts once a display channel has connected
 *   --hold         the replay starts once a line is read from stdin (a harness
 *                  starts its clock then)
 *   --streaming-video off|all|filter   spice-server's video stream detection
 *   --video-codecs LIST   spice-server's syntax ("gstreamer:vp8;spice:mjpeg"), as
 *                  QEMU's -spice video-codecs= passes it
 *   --fps N        draw commands at most N a second (a recording of an animation
 *                  plays at its own pace, not as fast as the worker takes it)
 */
#include "replay-qxl.h"

#include <glib-unix.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How often the replay wakes the worker while it waits for the queued commands
 * to be taken: short, as a client is watching the replay's pace. */
#define DRAIN_POLL_US 200

static GMutex display_lock;
static GCond display_cond;
static gboolean display_connected;

/* The core interface on GLib's default main context, run by the main thread. */
struct SpiceTimer {
    SpiceTimerFunc func;
    void *opaque;
    GSource *source;
};
struct SpiceWatch {
    SpiceWatchFunc func;
    void *opaque;
    int fd;
    GSource *source;
};

static gboolean timer_fired(gpointer data)
{
    SpiceTimer *t = data;
    g_source_unref(t->source);
    t->source = NULL;
    t->func(t->opaque);
    return G_SOURCE_REMOVE;
}
static SpiceTimer *timer_add(SpiceTimerFunc func, void *opaque)
{
    SpiceTimer *t = g_new0(SpiceTimer, 1);
    t->func = func;
    t->opaque = opaque;
    return t;
}
static void timer_cancel(SpiceTimer *t)
{
    if (t->source) {
        g_source_destroy(t->source);
        g_source_unref(t->source);
        t->source = NULL;
    }
}
static void timer_start(SpiceTimer *t, uint32_t ms)
{
    timer_cancel(t);
    t->source = g_timeout_source_new(ms);
    g_source_set_callback(t->source, timer_fired, t, NULL);
    g_source_attach(t->source, NULL);
}
static void timer_remove(SpiceTimer *t)
{
    timer_cancel(t);
    g_free(t);
}

static gboolean watch_fired(gint fd, GIOCondition cond, gpointer data)
{
    SpiceWatch *w = data;
    int events = 0;
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        events |= SPICE_WATCH_EVENT_READ;
    }
    if (cond & G_IO_OUT) {
        events |= SPICE_WATCH_EVENT_WRITE;
    }
    w->func(fd, events, w->opaque);
    return G_SOURCE_CONTINUE;
}
static void watch_update_mask(SpiceWatch *w, int mask)
{
    if (w->source) {
        g_source_destroy(w->source);
        g_source_unref(w->source);
        w->source = NULL;
    }
    GIOCondition cond = 0;
    if (mask & SPICE_WATCH_EVENT_READ) {
        cond |= G_IO_IN | G_IO_HUP | G_IO_ERR;
    }
    if (mask & SPICE_WATCH_EVENT_WRITE) {
        cond |= G_IO_OUT;
    }
    if (cond) {
        w->source = g_unix_fd_source_new(w->fd, cond);
        g_source_set_callback(w->source, (GSourceFunc)(void (*)(void))watch_fired, w, NULL);
        g_source_attach(w->source, NULL);
    }
}
static SpiceWatch *watch_add(int fd, int mask, SpiceWatchFunc func, void *opaque)
{
    SpiceWatch *w = g_new0(SpiceWatch, 1);
    w->fd = fd;
    w->func = func;
    w->opaque = opaque;
    watch_update_mask(w, mask);
    return w;
}
static void watch_remove(SpiceWatch *w)
{
    watch_update_mask(w, 0);
    g_free(w);
}
static void channel_event(int event, SpiceChannelEventInfo *info)
{
    if (event == SPICE_CHANNEL_EVENT_INITIALIZED && info->type == SPICE_CHANNEL_DISPLAY) {
        g_mutex_lock(&display_lock);
        display_connected = TRUE;
        g_cond_broadcast(&display_cond);
        g_mutex_unlock(&display_lock);
    }
}

static SpiceCoreInterface core = {
    .base = { .major_version = SPICE_INTERFACE_CORE_MAJOR,
              .minor_version = SPICE_INTERFACE_CORE_MINOR },
    .timer_add = timer_add, .timer_start = timer_start, .timer_cancel = timer_cancel,
    .timer_remove = timer_remove, .watch_add = watch_add,
    .watch_update_mask = watch_update_mask, .watch_remove = watch_remove,
    .channel_event = channel_event,
};

static gboolean wait_client, hold;
static double fps; /* 0: as fast as the worker takes them */

static gpointer play(gpointer data)
{
    (void)data;
    if (hold) {
        char line[64];
        if (!fgets(line, sizeof(line), stdin)) {
            return NULL;
        }
    }
    if (wait_client) {
        g_mutex_lock(&display_lock);
        while (!display_connected) {
            g_cond_wait(&display_cond, &display_lock);
        }
        g_mutex_unlock(&display_lock);
    }
    long commands = 0;
    gint64 next = g_get_monotonic_time();
    QXLCommandExt *cmd;
    while ((cmd = replay_qxl_read()) != NULL) {
        commands++;
        if (fps > 0 && cmd->cmd.type == QXL_CMD_DRAW) {
            gint64 now = g_get_monotonic_time();
            if (next > now) {
                g_usleep(next - now);
            }
            next = MAX(next, now) + (gint64)(G_USEC_PER_SEC / fps);
        }
        replay_qxl_queue(cmd);
        /* the next record may be a device request (a new primary surface) that must
         * come after the commands queued before it */
        replay_qxl_wait_drained(DRAIN_POLL_US);
    }
    printf("done %ld\n", commands);
    fflush(stdout);
    return NULL;
}

static gboolean quit(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

typedef struct { const char *name; int value; } Named;

/* The value named `name` in `table`, or -1. */
static int lookup(const Named *table, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++) {
        if (!strcmp(table[k].name, name)) {
            return table[k].value;
        }
    }
    return -1;
}

static const Named compressions[] = {
    { "auto_glz", SPICE_IMAGE_COMPRESSION_AUTO_GLZ }, { "auto_lz", SPICE_IMAGE_COMPRESSION_AUTO_LZ },
    { "quic", SPICE_IMAGE_COMPRESSION_QUIC }, { "glz", SPICE_IMAGE_COMPRESSION_GLZ },
    { "lz", SPICE_IMAGE_COMPRESSION_LZ }, { "lz4", SPICE_IMAGE_COMPRESSION_LZ4 },
    { "off", SPICE_IMAGE_COMPRESSION_OFF },
};

static const Named streamings[] = {
    { "off", SPICE_STREAM_VIDEO_OFF }, { "all", SPICE_STREAM_VIDEO_ALL },
    { "filter", SPICE_STREAM_VIDEO_FILTER },
};

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --port P [--addr 127.0.0.1] [--wait-client] [--hold]\n"
            "       [--image-compression auto_glz|auto_lz|quic|glz|lz|lz4|off]\n"
            "       [--streaming-video off|all|filter] [--video-codecs LIST] [--fps N] FILE\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *addr = "127.0.0.1", *path = NULL;
    spice_image_compression_t compression = SPICE_IMAGE_COMPRESSION_AUTO_GLZ;
    int streaming = -1; /* spice-server's own default */
    const char *video_codecs = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--addr") && i + 1 < argc) {
            addr = argv[++i];
        } else if (!strcmp(argv[i], "--wait-client")) {
            wait_client = TRUE;
        } else if (!strcmp(argv[i], "--hold")) {
            hold = TRUE;
        } else if (!strcmp(argv[i], "--image-compression") && i + 1 < argc) {
            int value = lookup(compressions, G_N_ELEMENTS(compressions), argv[++i]);
            if (value < 0) {
                return usage(argv[0]);
            }
            compression = (spice_image_compression_t)value;
        } else if (!strcmp(argv[i], "--streaming-video") && i + 1 < argc) {
            streaming = lookup(streamings, G_N_ELEMENTS(streamings), argv[++i]);
            if (streaming < 0) {
                return usage(argv[0]);
            }
        } else if (!strcmp(argv[i], "--video-codecs") && i + 1 < argc) {
            video_codecs = argv[++i];
        } else if (!strcmp(argv[i], "--fps") && i + 1 < argc) {
            fps = g_ascii_strtod(argv[++i], NULL);
            if (!(fps > 0 && fps <= 1000)) {
                return usage(argv[0]);
            }
        } else if (argv[i][0] != '-' && !path) {
            path = argv[i];
        } else {
            return usage(argv[0]);
        }
    }
    if (port <= 0 || port > 65535 || !path) {
        return usage(argv[0]);
    }
    FILE *file = fopen(path, "rb");
    if (!file) {
        perror(path);
        return 2;
    }

    SpiceServer *server = spice_server_new();
    spice_server_set_port(server, port);
    spice_server_set_addr(server, addr, 0);
    spice_server_set_noauth(server);
    spice_server_set_image_compression(server, compression);
    if (streaming >= 0) {
        spice_server_set_streaming_video(server, streaming);
    }
    if (video_codecs && spice_server_set_video_codecs(server, video_codecs) != 0) {
        fprintf(stderr, "spice_server_set_video_codecs refused %s\n", video_codecs);
        return 2;
    }
    if (spice_server_init(server, &core) != 0) {
        fprintf(stderr, "spice_server_init failed (port %d in use?)\n", port);
        return 1;
    }
    if (replay_qxl_start(server, "vgpu spice peer", file) != 0) {
        return 1;
    }
    printf("listening %d\n", port);
    fflush(stdout);

    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, quit, loop);
    g_unix_signal_add(SIGINT, quit, loop);
    g_thread_new("replay", play, NULL);
    g_main_loop_run(loop);
    /* the worker thread has no clean stop in the public API */
    _exit(0);
}
