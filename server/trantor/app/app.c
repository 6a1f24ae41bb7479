/*
 * The application module (app.h): one handler per event, each calling one callback.
 *
 * State: the callbacks and the next sn to deliver (unknown until the first DeliverBatch,
 * NewEpoch, SnapshotRequest or RestoreState fixes it). Invariant: after a DeliverBatch for sn,
 * next_sn = sn + 1; after RestoreState, next_sn = the checkpoint's sn. Anything that contradicts
 * it means the log order broke upstream, which must stop the node before the application state
 * diverges.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"

typedef struct app_module {
  trantor_app app;
  char self[MIR_MODULE_ID_MAX];
  bool next_known;
  uint64_t next_sn;
} app_module;

/* Turns a callback error into the node's error, keeping the callback's detail. */
static mir_err app_failed(const app_module *a, mir_err err, const char *callback, uint64_t sn) {
  char detail[256];
  snprintf(detail, sizeof(detail), "%s", mir_error_detail());
  return mir_error_set(err, "%s: %s at sn %llu failed: %s%s%s", a->self, callback,
                       (unsigned long long)sn, mir_strerror(err), detail[0] ? ": " : "", detail);
}

/* Checks that sn is the next one to deliver (if known). */
static mir_err app_check_sn(const app_module *a, const char *what, uint64_t sn) {
  if (a->next_known && sn != a->next_sn) {
    return mir_error_set(MIR_EINVAL, "%s: %s for sn %llu, but the next sn is %llu (log order)",
                         a->self, what, (unsigned long long)sn, (unsigned long long)a->next_sn);
  }
  return MIR_OK;
}

static mir_err app_on_deliver_batch(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  app_module *a = user;
  const Trantor__DeliverBatch *db = (const Trantor__DeliverBatch *)ev->payload;
  mir_err err = app_check_sn(a, "DeliverBatch", db->sn);
  if (err != MIR_OK) return err;
  mir_error_clear();
  err = a->app.apply_batch(a->app.user_data, db->sn, db->epoch, db->txs, db->n_txs);
  if (err != MIR_OK) return app_failed(a, err, "apply_batch", db->sn);
  a->next_known = true;
  a->next_sn = db->sn + 1;
  return MIR_OK;
}

static mir_err app_on_new_epoch(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  app_module *a = user;
  const Trantor__NewEpoch *ne = (const Trantor__NewEpoch *)ev->payload;
  mir_err err = app_check_sn(a, "NewEpoch", ne->first_sn);
  if (err != MIR_OK) return err;
  a->next_known = true;
  a->next_sn = ne->first_sn;
  if (a->app.new_epoch == NULL) return MIR_OK;
  mir_error_clear();
  err = a->app.new_epoch(a->app.user_data, ne->epoch, ne->first_sn);
  return err != MIR_OK ? app_failed(a, err, "new_epoch", ne->first_sn) : MIR_OK;
}

static mir_err app_on_snapshot_request(mir_dsl *dsl, const mir_event *ev, void *user) {
  app_module *a = user;
  /* Borrowed but not const: the client progress is taken (the payload stays a valid tree). */
  Trantor__SnapshotRequest *sr = (Trantor__SnapshotRequest *)ev->payload;
  if (sr->reply_to == NULL || !mir_module_id_valid(sr->reply_to)) {
    return mir_error_set(MIR_EINVAL, "%s: SnapshotRequest from %s: invalid reply_to", a->self,
                         ev->src);
  }
  mir_err err = app_check_sn(a, "SnapshotRequest", sr->sn);
  if (err != MIR_OK) return err;
  uint8_t *data = NULL;
  size_t len = 0;
  mir_error_clear();
  err = a->app.snapshot(a->app.user_data, sr->epoch, sr->sn, &data, &len);
  if (err != MIR_OK) {
    free(data);
    return app_failed(a, err, "snapshot", sr->sn);
  }
  Trantor__Snapshot *snap = mir_xmalloc(sizeof(*snap));
  trantor__snapshot__init(snap);
  snap->epoch = sr->epoch;
  snap->app_data.data = data;
  snap->app_data.len = data != NULL ? len : 0;
  snap->client_progress = sr->client_progress;
  sr->client_progress = NULL;
  if (snap->client_progress == NULL) {
    snap->client_progress = mir_xmalloc(sizeof(*snap->client_progress));
    trantor__client_progress__init(snap->client_progress);
  }
  a->next_known = true;
  a->next_sn = sr->sn;
  mir_dsl_emit_new(dsl, sr->reply_to, &snap->base);
  return MIR_OK;
}

static mir_err app_on_restore_state(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  app_module *a = user;
  const Trantor__StableCheckpoint *c = ((const Trantor__RestoreState *)ev->payload)->checkpoint;
  if (c == NULL || c->snapshot == NULL) {
    return mir_error_set(MIR_EINVAL, "%s: RestoreState from %s without a snapshot", a->self,
                         ev->src);
  }
  mir_error_clear();
  ProtobufCBinaryData d = c->snapshot->app_data;
  mir_err err = a->app.restore(a->app.user_data, d.data, d.len, c->sn);
  if (err != MIR_OK) return app_failed(a, err, "restore", c->sn);
  a->next_known = true;
  a->next_sn = c->sn;
  return MIR_OK;
}

static mir_err app_on_checkpoint_notice(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  app_module *a = user;
  const Trantor__StableCheckpoint *c = ((const Trantor__CheckpointNotice *)ev->payload)->checkpoint;
  if (c == NULL) {
    return mir_error_set(MIR_EINVAL, "%s: CheckpointNotice from %s without a checkpoint", a->self,
                         ev->src);
  }
  if (a->app.checkpoint == NULL) return MIR_OK;
  mir_error_clear();
  mir_err err = a->app.checkpoint(a->app.user_data, c);
  return err != MIR_OK ? app_failed(a, err, "checkpoint", c->sn) : MIR_OK;
}

static mir_err app_register(mir_dsl *dsl) {
  mir_err err = mir_dsl_upon_event(dsl, &trantor__deliver_batch__descriptor, app_on_deliver_batch);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__new_epoch__descriptor, app_on_new_epoch);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__snapshot_request__descriptor, app_on_snapshot_request);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__restore_state__descriptor, app_on_restore_state);
  if (err == MIR_OK)
    err =
        mir_dsl_upon_event(dsl, &trantor__checkpoint_notice__descriptor, app_on_checkpoint_notice);
  return err;
}

mir_err trantor_app_module_new(const trantor_app_config *cfg, mir_dsl **out) {
  if (cfg == NULL || cfg->app == NULL || cfg->app->apply_batch == NULL ||
      cfg->app->snapshot == NULL || cfg->app->restore == NULL) {
    return mir_error_set(MIR_EINVAL,
                         "app config: apply_batch, snapshot and restore callbacks are required");
  }
  const char *id = cfg->module_id != NULL ? cfg->module_id : TRANTOR_APP_ID;
  if (!mir_module_id_valid(id)) {
    return mir_error_set(MIR_EINVAL, "app config: module_id: invalid module id");
  }
  app_module *a = mir_xcalloc(1, sizeof(*a));
  a->app = *cfg->app;
  snprintf(a->self, sizeof(a->self), "%s", id);
  mir_dsl *dsl = mir_dsl_new(a->self, a);
  mir_dsl_set_user_free(dsl, free);
  mir_err err = app_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}
