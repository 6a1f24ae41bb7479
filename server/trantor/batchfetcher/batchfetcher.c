/*
 * The batch fetcher (batchfetcher.h): a queue in log order, filled out of order, emptied in order.
 *
 * The queue is a ring of entries; entry i (from the head) has the ticket head_ticket + i, and a
 * certificate's RequestTransactions carries its ticket as the origin's context id, so an answer
 * finds its entry without a context store, and an answer for a discarded entry (ticket below
 * head_ticket after a restore) is recognised as stale.
 *
 * Invariants: every entry from the head onwards that is ready precedes a non-ready one or the
 * end (flush runs after every change); the client progress covers exactly the certificates
 * output so far (or the restored checkpoint and those output since), so deduplication is the
 * same at every correct node; the queue holds at most queue_max entries.
 */
#include "batchfetcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientprogress.h"
#include "mir/alloc.h"
#include "mir/assert.h"

/* The module's metrics, in its dsl's set (bf_metrics_init). */
typedef struct bf_metrics {
  mir_gauge *queued; /* set at the end of every batch */
  mir_counter *batches, *txs, *stale, *restores;
  mir_counter *duplicates, *out_of_window, *too_many_clients, *invalid; /* transactions dropped */
} bf_metrics;

typedef struct bf_entry {
  bool is_cert;
  bool ready;
  uint64_t sn, epoch;        /* certificates */
  Trantor__Batch *batch;     /* certificates, once ready: owned, NULL for none */
  ProtobufCMessage *payload; /* other events: owned */
} bf_entry;

typedef struct batchfetcher {
  char self[MIR_MODULE_ID_MAX];
  char availability[MIR_MODULE_ID_MAX];
  char app[MIR_MODULE_ID_MAX];
  char mempool[MIR_MODULE_ID_MAX];
  size_t queue_max;
  bf_entry *ring;
  size_t cap, head, n;
  uint64_t head_ticket;
  trantor_client_progress *progress;
  bf_metrics st;
} batchfetcher;

/* ---- the queue ---- */

static bf_entry *bf_at(batchfetcher *f, size_t i) {
  return &f->ring[(f->head + i) % f->cap];
}

static void bf_entry_clear(bf_entry *e) {
  if (e->batch != NULL) protobuf_c_message_free_unpacked(&e->batch->base, NULL);
  if (e->payload != NULL) protobuf_c_message_free_unpacked(e->payload, NULL);
  memset(e, 0, sizeof(*e));
}

/* Appends an empty entry and returns it with its ticket; MIR_EFULL past queue_max. */
static mir_err bf_push(batchfetcher *f, bf_entry **out, uint64_t *ticket) {
  if (f->n >= f->queue_max) {
    return mir_error_set(MIR_EFULL,
                         "%s: %zu log entries wait for their transactions (queue_max); "
                         "availability does not answer",
                         f->self, f->n);
  }
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 64;
    if (cap > f->queue_max) cap = f->queue_max;
    bf_entry *ring = mir_xcalloc(cap, sizeof(*ring));
    for (size_t i = 0; i < f->n; i++) ring[i] = *bf_at(f, i);
    free(f->ring);
    f->ring = ring;
    f->cap = cap;
    f->head = 0;
  }
  *ticket = f->head_ticket + f->n;
  *out = bf_at(f, f->n);
  f->n++;
  memset(*out, 0, sizeof(**out));
  return MIR_OK;
}

static void bf_pop(batchfetcher *f) {
  bf_entry_clear(bf_at(f, 0));
  f->head = (f->head + 1) % f->cap;
  f->n--;
  f->head_ticket++;
}

/* Drops every entry; answers still on their way become stale. */
static void bf_discard(batchfetcher *f) {
  while (f->n > 0) bf_pop(f);
}

/* ---- output ---- */

/* Returns an owned Tx carrying only the identity of tx (borrowed). */
static Trantor__Tx *bf_identity(const Trantor__Tx *tx) {
  Trantor__Tx *id = mir_xmalloc(sizeof(*id));
  trantor__tx__init(id);
  id->client_id = mir_xstrdup(tx->client_id);
  id->tx_no = tx->tx_no;
  return id;
}

static void bf_count_drop(batchfetcher *f, trantor_cp_status why) {
  switch (why) {
    case TRANTOR_CP_DELIVERED:
      mir_counter_inc(f->st.duplicates);
      break;
    case TRANTOR_CP_OUT_OF_WINDOW:
      mir_counter_inc(f->st.out_of_window);
      break;
    case TRANTOR_CP_TOO_MANY_CLIENTS:
      mir_counter_inc(f->st.too_many_clients);
      break;
    case TRANTOR_CP_NEW:
    case TRANTOR_CP_INVALID:
      mir_counter_inc(f->st.invalid);
      break;
  }
}

/* Moves the newly delivered transactions of batch (owned, may be NULL; consumed) into db and
 * their identities into td, in batch order. */
static void bf_dedup(batchfetcher *f, Trantor__Batch *batch, Trantor__DeliverBatch *db,
                     Trantor__TxsDelivered *td) {
  if (batch == NULL) return;
  if (batch->n_txs > 0) {
    db->txs = mir_xmalloc(batch->n_txs * sizeof(*db->txs));
    td->txs = mir_xmalloc(batch->n_txs * sizeof(*td->txs));
  }
  for (size_t i = 0; i < batch->n_txs; i++) {
    Trantor__Tx *tx = batch->txs[i];
    trantor_cp_status why = TRANTOR_CP_INVALID;
    if (tx != NULL && trantor_client_progress_add(f->progress, tx->client_id, tx->tx_no, &why)) {
      td->txs[td->n_txs++] = bf_identity(tx);
      db->txs[db->n_txs++] = tx;
    } else {
      bf_count_drop(f, why);
      if (tx != NULL) protobuf_c_message_free_unpacked(&tx->base, NULL);
    }
  }
  free(batch->txs); /* every element moved or freed */
  batch->txs = NULL;
  batch->n_txs = 0;
  protobuf_c_message_free_unpacked(&batch->base, NULL);
}

static void bf_output_cert(mir_dsl *dsl, batchfetcher *f, bf_entry *e) {
  Trantor__DeliverBatch *db = mir_xmalloc(sizeof(*db));
  trantor__deliver_batch__init(db);
  db->sn = e->sn;
  db->epoch = e->epoch;
  Trantor__TxsDelivered *td = mir_xmalloc(sizeof(*td));
  trantor__txs_delivered__init(td);
  bf_dedup(f, e->batch, db, td);
  e->batch = NULL;
  mir_counter_inc(f->st.batches);
  mir_counter_add(f->st.txs, db->n_txs);
  mir_dsl_emit_new(dsl, f->app, &db->base);
  if (td->n_txs > 0) {
    mir_dsl_emit_new(dsl, f->mempool, &td->base);
  } else {
    protobuf_c_message_free_unpacked(&td->base, NULL);
  }
}

/* Emits a queued event (its payload is taken from e) to app, with what goes along with it. */
static void bf_output_event(mir_dsl *dsl, batchfetcher *f, bf_entry *e) {
  ProtobufCMessage *p = e->payload;
  e->payload = NULL;
  if (p->descriptor == &trantor__new_epoch__descriptor) {
    mir_dsl_emit_new(dsl, f->mempool, mir_message_clone(p));
  } else if (p->descriptor == &trantor__snapshot_request__descriptor) {
    Trantor__SnapshotRequest *sr = (Trantor__SnapshotRequest *)p;
    if (sr->client_progress != NULL) {
      protobuf_c_message_free_unpacked(&sr->client_progress->base, NULL);
    }
    sr->client_progress = trantor_client_progress_to_msg(f->progress);
  }
  mir_dsl_emit_new(dsl, f->app, p);
}

/* Outputs every ready entry at the head of the queue, in order. */
static void bf_flush(mir_dsl *dsl, batchfetcher *f) {
  while (f->n > 0 && bf_at(f, 0)->ready) {
    bf_entry *e = bf_at(f, 0);
    if (e->is_cert) {
      bf_output_cert(dsl, f, e);
    } else {
      bf_output_event(dsl, f, e);
    }
    bf_pop(f);
  }
}

/* ---- handlers ---- */

static mir_err bf_on_deliver_cert(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchfetcher *f = user;
  const Trantor__DeliverCert *dc = (const Trantor__DeliverCert *)ev->payload;
  bf_entry *e = NULL;
  uint64_t ticket = 0;
  mir_err err = bf_push(f, &e, &ticket);
  if (err != MIR_OK) return err;
  e->is_cert = true;
  e->sn = dc->sn;
  e->epoch = dc->epoch;
  if (dc->aborted) {
    e->ready = true; /* decided as empty: nothing to fetch */
    bf_flush(dsl, f);
    return MIR_OK;
  }
  Trantor__RequestTransactions *rt = mir_xmalloc(sizeof(*rt));
  trantor__request_transactions__init(rt);
  rt->cert.len = dc->cert.len;
  rt->cert.data = mir_xmemdup(dc->cert.data, dc->cert.len);
  rt->origin = mir_dsl_origin_new(dsl, ticket);
  mir_dsl_emit_new(dsl, f->availability, &rt->base);
  return MIR_OK;
}

static mir_err bf_on_provide_transactions(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchfetcher *f = user;
  /* The payload is borrowed but not const: its batch is taken (the payload stays a valid tree)
   * so that up to max_batch_bytes are not copied. */
  Trantor__ProvideTransactions *pt = (Trantor__ProvideTransactions *)ev->payload;
  uint64_t ticket = pt->origin != NULL ? pt->origin->context_id : UINT64_MAX;
  if (ticket < f->head_ticket || ticket - f->head_ticket >= f->n) {
    mir_counter_inc(f->st.stale); /* its entry was discarded by a restore */
    return MIR_OK;
  }
  bf_entry *e = bf_at(f, (size_t)(ticket - f->head_ticket));
  if (!e->is_cert || e->ready) {
    mir_counter_inc(f->st.stale);
    return MIR_OK;
  }
  e->batch = pt->batch;
  pt->batch = NULL;
  e->ready = true;
  bf_flush(dsl, f);
  return MIR_OK;
}

/* Queues a copy of the event's payload, to be output in log order. */
static mir_err bf_on_passthrough(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchfetcher *f = user;
  bf_entry *e = NULL;
  uint64_t ticket = 0;
  mir_err err = bf_push(f, &e, &ticket);
  if (err != MIR_OK) return err;
  e->payload = mir_message_clone(ev->payload);
  e->ready = true;
  bf_flush(dsl, f);
  return MIR_OK;
}

static mir_err bf_on_restore_state(mir_dsl *dsl, const mir_event *ev, void *user) {
  batchfetcher *f = user;
  const Trantor__RestoreState *rs = (const Trantor__RestoreState *)ev->payload;
  const Trantor__StableCheckpoint *c = rs->checkpoint;
  const Trantor__StateSnapshot *s = c != NULL ? c->snapshot : NULL;
  mir_err err = trantor_client_progress_load(f->progress, s != NULL ? s->client_progress : NULL);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s: RestoreState: %s", f->self, detail);
  }
  bf_discard(f);
  mir_counter_inc(f->st.restores);
  mir_dsl_emit_new(dsl, f->app, mir_message_clone(ev->payload));
  mir_dsl_emit_new(dsl, f->mempool, mir_message_clone(ev->payload));
  return MIR_OK;
}

/* ---- module ---- */

static mir_err bf_publish(mir_dsl *dsl, void *user) {
  (void)dsl;
  batchfetcher *f = user;
  mir_gauge_set(f->st.queued, (int64_t)f->n);
  return MIR_OK;
}

/* Registers the batch fetcher's metrics in set m (the dsl's). */
static void bf_metrics_init(batchfetcher *f, mir_metrics *m) {
  static const char drop_help[] =
      "Transactions of delivered batches the batch fetcher dropped, "
      "by reason (delivered before, outside the client's window, "
      "unknown client at the client bound, malformed).";
  const char *drops = "mir_batchfetcher_transactions_dropped_total";
  bf_metrics *st = &f->st;
  st->queued = mir_metrics_gauge(m, "mir_batchfetcher_queued",
                                 "Entries waiting in the batch fetcher's queue.", NULL, NULL);
  st->batches = mir_metrics_counter(m, "mir_batchfetcher_batches_total",
                                    "Batches handed to the application in log order.", NULL, NULL);
  st->txs = mir_metrics_counter(m, "mir_batchfetcher_transactions_total",
                                "Transactions handed to the application.", NULL, NULL);
  st->stale = mir_metrics_counter(m, "mir_batchfetcher_stale_answers_total",
                                  "Answers for no waiting entry.", NULL, NULL);
  st->restores =
      mir_metrics_counter(m, "mir_batchfetcher_restores_total",
                          "State restores (checkpoints installed) passed on.", NULL, NULL);
  st->duplicates = mir_metrics_counter(m, drops, drop_help, "reason", "duplicate");
  st->out_of_window = mir_metrics_counter(m, drops, drop_help, "reason", "out_of_window");
  st->too_many_clients = mir_metrics_counter(m, drops, drop_help, "reason", "too_many_clients");
  st->invalid = mir_metrics_counter(m, drops, drop_help, "reason", "invalid");
}

static void bf_free(void *user) {
  batchfetcher *f = user;
  if (f->ring != NULL) bf_discard(f);
  free(f->ring);
  trantor_client_progress_free(f->progress);
  free(f);
}

static mir_err bf_register(mir_dsl *dsl) {
  mir_err err = mir_dsl_upon_event(dsl, &trantor__deliver_cert__descriptor, bf_on_deliver_cert);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__provide_transactions__descriptor,
                             bf_on_provide_transactions);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__new_epoch__descriptor, bf_on_passthrough);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__snapshot_request__descriptor, bf_on_passthrough);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__checkpoint_notice__descriptor, bf_on_passthrough);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__restore_state__descriptor, bf_on_restore_state);
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, bf_publish);
  return err;
}

static mir_err bf_copy_id(char dst[MIR_MODULE_ID_MAX], const char *id, const char *dflt,
                          const char *field) {
  if (id == NULL) id = dflt;
  if (!mir_module_id_valid(id)) {
    return mir_error_set(MIR_EINVAL, "batchfetcher config: %s: invalid module id", field);
  }
  snprintf(dst, MIR_MODULE_ID_MAX, "%s", id);
  return MIR_OK;
}

static mir_err bf_configure(batchfetcher *f, const trantor_batchfetcher_config *cfg) {
  mir_err err = bf_copy_id(f->self, cfg->module_id, TRANTOR_BATCHFETCHER_ID, "module_id");
  if (err == MIR_OK) {
    err = bf_copy_id(f->availability, cfg->availability_id, "availability", "availability_id");
  }
  if (err == MIR_OK) err = bf_copy_id(f->app, cfg->app_id, "app", "app_id");
  if (err == MIR_OK) err = bf_copy_id(f->mempool, cfg->mempool_id, "mempool", "mempool_id");
  if (err == MIR_OK) {
    err = trantor_client_progress_new(cfg->params->client_window, cfg->clients_max, &f->progress);
  }
  f->queue_max = cfg->queue_max ? cfg->queue_max : TRANTOR_BATCHFETCHER_QUEUE_MAX_DEFAULT;
  return err;
}

mir_err trantor_batchfetcher_new(const trantor_batchfetcher_config *cfg, mir_dsl **out) {
  if (cfg == NULL || cfg->params == NULL) {
    return mir_error_set(MIR_EINVAL, "batchfetcher config: no params");
  }
  mir_err err = trantor_params_check(cfg->params);
  if (err != MIR_OK) return err;
  batchfetcher *f = mir_xcalloc(1, sizeof(*f));
  err = bf_configure(f, cfg);
  if (err != MIR_OK) {
    bf_free(f);
    return err;
  }
  mir_dsl *dsl = mir_dsl_new(f->self, f);
  bf_metrics_init(f, mir_dsl_metrics(dsl));
  mir_dsl_set_user_free(dsl, bf_free);
  err = bf_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *out = dsl;
  return MIR_OK;
}
