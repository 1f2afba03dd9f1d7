/* A QXL device for spice-server's replay API, shared by the programs that feed a
 * record file through the real spice-server: bench/peer's vgpu-spice-peer (serving
 * it to clients) and the tests' spice_replay_check (checking and rendering it).
 *
 * One memslot covers this process's address space (the replay reader's commands
 * point into its heap); the display and cursor queues hold the commands read but
 * not yet taken by spice-server's worker; a command is freed when the worker
 * releases it.
 */
#ifndef VGPU_REPLAY_QXL_H
#define VGPU_REPLAY_QXL_H

#include <glib.h>
#include <spice.h>
#include <stdio.h>

/* The worker's surface table; the same number QEMU gives it. */
#define REPLAY_QXL_SURFACES 1024

/* The device spice-server drives. */
extern QXLInstance replay_qxl;

/* Adds the device (`description` names it in spice-server's logs) to `server`, which
 * spice_server_init has set up, starts the VM and opens the record `file` with
 * spice-server's reader. 0 on success; else a line on stderr says what failed: -1 when
 * spice-server refused the device, 1 when its reader refused the file. */
int replay_qxl_start(SpiceServer *server, const char *description, FILE *file);

/* The next command of the record, read by spice-server's reader; NULL at the end of
 * the file or at a record the reader cannot read. */
QXLCommandExt *replay_qxl_read(void);

/* Queues a command read for the worker; it is freed once the worker releases it. */
void replay_qxl_queue(QXLCommandExt *cmd);

/* Commands queued and not yet taken by the worker. */
guint replay_qxl_queued(void);

/* Wakes the worker every `poll_us` until it has taken every queued command. */
void replay_qxl_wait_drained(gulong poll_us);

/* Commands the worker has released so far. */
gint replay_qxl_releases(void);

#endif
