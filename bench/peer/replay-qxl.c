/* The QXL device of replay-qxl.h: what spice-server's worker calls to take and
 * release the commands that spice-server's replay reader made from a record. */
#include "replay-qxl.h"

#include <string.h>

QXLInstance replay_qxl;
static SpiceReplay *replay;
static GAsyncQueue *display_queue, *cursor_queue;
static GHashTable *outstanding; /* commands handed to the worker, not yet released */
static GMutex lock;
static gint releases;

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
    info->n_surfaces = REPLAY_QXL_SURFACES;
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
    /* some replayed commands (messages) carry no release id: only free what we handed out */
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
    .base = { .type = SPICE_INTERFACE_QXL,
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

int replay_qxl_start(SpiceServer *server, const char *description, FILE *file)
{
    display_queue = g_async_queue_new();
    cursor_queue = g_async_queue_new();
    outstanding = g_hash_table_new(NULL, NULL);
    qxl_interface.base.description = description;
    replay_qxl.base.sif = &qxl_interface.base;
    replay_qxl.id = 0;
    if (spice_server_add_interface(server, &replay_qxl.base) != 0) {
        fprintf(stderr, "spice_server_add_interface failed\n");
        return -1;
    }
    spice_server_vm_start(server);
    replay = spice_replay_new(file, REPLAY_QXL_SURFACES);
    if (!replay) {
        fprintf(stderr, "spice_replay_new refused the record file\n");
        return 1;
    }
    return 0;
}

QXLCommandExt *replay_qxl_read(void)
{
    return spice_replay_next_cmd(replay, &replay_qxl);
}

void replay_qxl_queue(QXLCommandExt *cmd)
{
    g_mutex_lock(&lock);
    g_hash_table_add(outstanding, cmd);
    g_mutex_unlock(&lock);
    g_async_queue_push(cmd->cmd.type == QXL_CMD_CURSOR ? cursor_queue : display_queue, cmd);
}

guint replay_qxl_queued(void)
{
    return (guint)(g_async_queue_length(display_queue) + g_async_queue_length(cursor_queue));
}

void replay_qxl_wait_drained(gulong poll_us)
{
    while (replay_qxl_queued() > 0) {
        spice_qxl_wakeup(&replay_qxl);
        g_usleep(poll_us);
    }
}

gint replay_qxl_releases(void)
{
    return g_atomic_int_get(&releases);
}
