/*
 * The application module (module id "app", passive): calls the embedding application's
 * callbacks (trantor_app, mir/trantor.h) in log order.
 *
 * Events in (from the batch fetcher, in log order):
 *  - DeliverBatch{sn, epoch, txs} -> apply_batch(sn, epoch, txs);
 *  - NewEpoch{epoch, first_sn} -> new_epoch(epoch, first_sn), if set;
 *  - SnapshotRequest{epoch, sn, reply_to, client_progress} -> snapshot(epoch, sn), then
 *    Snapshot{epoch, app_data, client_progress} to reply_to (the checkpoint instance): the client
 *    progress is the one the batch fetcher put into the request at the same point of the log (an
 *    empty one if the request carries none);
 *  - RestoreState{checkpoint} -> restore(app_data, sn);
 *  - CheckpointNotice{checkpoint} -> checkpoint(checkpoint), if set.
 * The log order is checked: every DeliverBatch has the sn after the previous one (after a
 * RestoreState: the checkpoint's sn), and NewEpoch.first_sn and SnapshotRequest.sn are the next
 * sn to deliver. A callback error, a break in the log order, or a malformed event stops the node
 * with a message naming the callback and the sn.
 */
#ifndef TRANTOR_APP_H
#define TRANTOR_APP_H

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRANTOR_APP_ID "app"

typedef struct trantor_app_config {
  const trantor_app *app; /* copied; apply_batch, snapshot and restore are required */
  const char *module_id;  /* NULL: TRANTOR_APP_ID */
} trantor_app_config;

/* Creates the app module (a dsl; add it with mir_dsl_ops). cfg borrowed; the application's
 * user_data stays the application's. MIR_EINVAL with detail if a required callback is missing.
 * *out is owned (free with mir_dsl_free, or hand it to mir_node_add_module). */
mir_err trantor_app_module_new(const trantor_app_config *cfg, mir_dsl **out);

#ifdef __cplusplus
}
#endif
#endif
