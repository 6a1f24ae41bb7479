/*
 * One simulated Trantor replica (sc_trantor.h): the simulator's transport, timer and crypto, the
 * protocol modules of trantor_system_add_modules, and a deterministic application.
 *
 * The wiring is mir-replica's, so the scenarios exercise it; sct_sample and sct_count read the
 * modules' numbers from the metrics registry, as /metrics does.
 *
 * The application's state is a running hash of the applied transactions and their count; each
 * transaction is reported to the simulator at its position in the transaction log (the count
 * before it), so the simulator checks agreement per position, no duplicate (client, tx_no) and
 * validity on the values the clients submitted. A replica restarted with its store gets what its
 * write-ahead log holds (sct_recover) and resumes from its last durable stable checkpoint; its
 * application restarts from that checkpoint and applies the log after it again (the simulator
 * accepts the same value at a position delivered before the restart, and fails a different one).
 * A wiped replica rejoins: it marks its empty log, as an operator does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "availability.h"
#include "batchfetcher.h"
#include "checkpoint.h"
#include "iss.h"
#include "mempool.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/dsl.h"
#include "pbft.h"
#include "sc_trantor.h"
#include "trantor_common.h"
#include "trantor_system.h"
#include "wal.h"

#define SCT_ISS "iss"
#define SCT_ORDERING "ordering"
#define SCT_CHECKPOINT "checkpoint"
#define SCT_EPOCH_SLACK 4     /* epochs a replica may run ahead of its last stable checkpoint */
#define SCT_BUFFERED_MAX 4096 /* events waiting in one node's queues */

/* ---- the application ---- */

static uint64_t sct_fingerprint(const uint8_t *data, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 0x100000001b3ull;
  return h | 1; /* 0 marks a position not seen */
}

/* The first 8 bytes of a state, never 0 (0 marks a position not seen). */
static uint64_t sct_prefix(const uint8_t state[32]) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | state[i];
  return v | 1;
}

static mir_err sct_app_apply(void *user, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                             size_t n) {
  (void)sn;
  (void)epoch;
  sct_app *a = user;
  a->batches++;
  for (size_t i = 0; i < n; i++) {
    const ProtobufCBinaryData *d = &txs[i]->data;
    mir_sim_report_delivery(a->run->sim, a->node, a->txs, d->data, d->len);
    const uint8_t *parts[2] = {a->state, d->data};
    size_t lens[2] = {sizeof a->state, d->len};
    trantor_hash_reference(parts, lens, 2, a->state);
    if (a->txs < SCT_TXS_MAX) {
      a->fp[a->txs] = sct_fingerprint(d->data, d->len);
      a->chain[a->txs] = sct_prefix(a->state);
    }
    a->txs++;
    if (a->txs > a->reached) a->reached = a->txs;
  }
  return MIR_OK;
}

/* The state is the running hash followed by the count, 8 bytes big-endian. */
static mir_err sct_app_snapshot(void *user, uint64_t epoch, uint64_t sn, uint8_t **data,
                                size_t *len) {
  (void)epoch;
  (void)sn;
  const sct_app *a = user;
  uint8_t *buf = mir_xmalloc(40);
  memcpy(buf, a->state, 32);
  for (int i = 0; i < 8; i++) buf[32 + i] = (uint8_t)(a->txs >> (56 - 8 * i));
  *data = buf;
  *len = 40;
  return MIR_OK;
}

/* A correct replica other than a->node whose state after `count` transactions is the restored
 * one and whose deliveries the simulator still holds, or -1. */
static int sct_app_witness(const sct_app *a, uint64_t count) {
  const sct_run *run = a->run;
  for (size_t j = 0; j < run->nodes; j++) {
    const sct_app *b = &run->apps[j];
    /* The replica itself qualifies when an earlier incarnation reached the state (a restart
     * with its store resumes from its own last stable checkpoint). */
    if (!mir_sim_node_correct(run->sim, j) || b->chain == NULL || b->reached < count ||
        b->chain[count - 1] != sct_prefix(a->state)) {
      continue;
    }
    if (mir_sim_delivered_at(run->sim, j, count - 1, NULL) != NULL) return (int)j;
  }
  return -1;
}

/* The transactions at [a->txs, count) are in the restored state: report them as delivered, with
 * the values of a correct replica that reached the same state, or fail the run if none did. */
static void sct_app_skip(sct_app *a, uint64_t count) {
  mir_sim *sim = a->run->sim;
  if (count > SCT_TXS_MAX) {
    mir_sim_fail(sim, "node %zu restored %" PRIu64 " transactions, more than submitted", a->node,
                 count);
    return;
  }
  int j = sct_app_witness(a, count);
  if (j < 0) {
    mir_sim_fail(sim, "node %zu restored a state at %" PRIu64 " no correct replica had", a->node,
                 count);
    return;
  }
  const sct_app *w = &a->run->apps[j];
  for (uint64_t p = a->txs; p < count && !mir_sim_failed(sim); p++) {
    size_t len = 0;
    const uint8_t *v = mir_sim_delivered_at(sim, (size_t)j, p, &len);
    if (v == NULL) continue; /* the witness itself skipped it */
    mir_sim_report_delivery(sim, a->node, p, v, len);
    a->fp[p] = w->fp[p];
    a->chain[p] = w->chain[p];
  }
}

static mir_err sct_app_restore(void *user, const uint8_t *data, size_t len, uint64_t sn) {
  (void)sn;
  sct_app *a = user;
  if (len != 40) return mir_error_set(MIR_EINVAL, "sct app: snapshot of %zu bytes", len);
  uint64_t count = 0;
  for (int i = 0; i < 8; i++) count = count << 8 | data[32 + i];
  if (count < a->txs) {
    mir_sim_fail(a->run->sim, "node %zu: a state transfer went back from %" PRIu64 " to %" PRIu64,
                 a->node, a->txs, count);
    return MIR_OK;
  }
  memcpy(a->state, data, 32);
  if (count > 0) sct_app_skip(a, count);
  a->txs = count;
  a->restores++;
  return MIR_OK;
}

static mir_err sct_app_new_epoch(void *user, uint64_t epoch, uint64_t first_sn) {
  (void)first_sn;
  ((sct_app *)user)->epoch = epoch;
  return MIR_OK;
}

/* A fresh application for a new incarnation of node. Its history (fingerprints, chain and how
 * far it got) survives a restart with the store, as a replica's delivered log does; a wipe or the
 * first start clears it. */
static void sct_app_reset(sct_run *run, size_t node, bool keep_history) {
  sct_app *a = &run->apps[node];
  if (a->fp == NULL) a->fp = mir_xcalloc(SCT_TXS_MAX, sizeof *a->fp);
  if (a->chain == NULL) a->chain = mir_xcalloc(SCT_TXS_MAX, sizeof *a->chain);
  if (!keep_history) {
    memset(a->fp, 0, SCT_TXS_MAX * sizeof *a->fp);
    memset(a->chain, 0, SCT_TXS_MAX * sizeof *a->chain);
    a->reached = 0;
  }
  a->run = run;
  a->node = node;
  a->txs = 0;
  a->epoch = 0;
  memset(a->state, 0, sizeof a->state);
}

/* ---- the wiring ---- */

static mir_err sct_add_system(sct_run *run, mir_node *mn, const char *self, sct_app *app) {
  trantor_app ta = {.apply_batch = sct_app_apply,
                    .snapshot = sct_app_snapshot,
                    .restore = sct_app_restore,
                    .new_epoch = sct_app_new_epoch,
                    .user_data = app};
  trantor_system_config cfg = {.self_id = self,
                               .membership = run->membership,
                               .params = &run->params,
                               .hash = trantor_hash_reference,
                               .app = &ta};
  return trantor_system_add_modules(mn, &cfg);
}

/* Queues what node's write-ahead log holds for iss, as mir-replica does before its node starts: a
 * wiped node (its store was cleared) first marks its log "rejoin", as an operator does for a
 * replica that lost its data. A node whose log is empty starts fresh: it never released a vote,
 * since every vote waits for the log's first records. */
static mir_err sct_recover(mir_sim *sim, size_t node, mir_node *mn, bool wiped) {
  mir_sim_store *st = mir_sim_node_store(sim, node);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  if (wiped) {
    Trantor__WalFloor marker = TRANTOR__WAL_FLOOR__INIT;
    size_t vlen = 0;
    uint8_t *val = trantor_wal_encode(&marker.base, &vlen);
    mir_err err = mir_sim_store_put(st, key, trantor_wal_rejoin_key(key), val, vlen);
    free(val);
    if (err != MIR_OK) return err;
  }
  size_t n = mir_sim_store_count(st);
  if (n == 0) return MIR_OK;
  trantor_wal_kv *kvs = mir_xcalloc(n, sizeof *kvs);
  for (size_t i = 0; i < n; i++) {
    mir_sim_store_at(st, i, &kvs[i].key, &kvs[i].klen, &kvs[i].val, &kvs[i].vlen);
  }
  Trantor__Recovered *rec = NULL;
  mir_err err = trantor_wal_recover(kvs, n, &rec);
  free(kvs);
  if (err != MIR_OK) return err;
  mir_event_list evs = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&evs, mir_event_new(SCT_ISS, "sim", &rec->base));
  return mir_node_inject(mn, &evs);
}

mir_err sct_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  sct_run *run = user;
  run->sim = sim;
  /* Trantor's scenarios restart only crashed or wiped nodes, never Byzantine ones. */
  bool wiped = restart && !mir_sim_node_correct(sim, node);
  sct_app_reset(run, node, restart && !wiped);
  const char *self = mir_sim_node_id(sim, node);
  mir_err err = mir_sim_add_transport(sim, node, mn, "net");
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, "timer");
  if (err == MIR_OK) err = mir_sim_add_crypto(sim, node, mn, "crypto");
  if (err == MIR_OK) err = mir_sim_add_store(sim, node, mn, "store");
  if (err == MIR_OK && restart) err = sct_recover(sim, node, mn, wiped);
  if (err != MIR_OK) return err;
  return sct_add_system(run, mn, self, &run->apps[node]);
}

/* ---- submissions ---- */

size_t sct_tx_value(size_t c, uint64_t tx_no, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "c%zu:%" PRIu64, c, tx_no);
  MIR_ASSERT(n > 0 && (size_t)n < cap);
  return (size_t)n;
}

mir_event *sct_submit(void *user, mir_sim *sim, size_t node, const uint8_t *value, size_t len) {
  (void)user;
  (void)sim;
  (void)node;
  char buf[64];
  if (len == 0 || len >= sizeof buf) return NULL;
  memcpy(buf, value, len);
  buf[len] = '\0';
  char *colon = strchr(buf, ':');
  if (buf[0] != 'c' || colon == NULL) return NULL;
  *colon = '\0';
  Trantor__Tx *tx = mir_xmalloc(sizeof *tx);
  trantor__tx__init(tx);
  tx->client_id = mir_xstrdup(buf);
  tx->tx_no = strtoull(colon + 1, NULL, 10);
  tx->data.data = mir_xmemdup(value, len);
  tx->data.len = len;
  Trantor__NewTransactions *nt = mir_xmalloc(sizeof *nt);
  trantor__new_transactions__init(nt);
  nt->n_txs = 1;
  nt->txs = mir_xmalloc(sizeof *nt->txs);
  nt->txs[0] = tx;
  return mir_event_new(TRANTOR_MEMPOOL_ID, "client", &nt->base);
}

void sct_nodes_free(sct_run *run) {
  for (size_t i = 0; i < SCT_NODES_MAX; i++) {
    free(run->apps[i].fp);
    free(run->apps[i].chain);
    run->apps[i].fp = NULL;
    run->apps[i].chain = NULL;
  }
}

/* ---- sampling the statistics ---- */

static void sct_max(uint64_t *m, uint64_t v) {
  if (v > *m) *m = v;
}

/* Fails the run if v exceeds bound. */
static void sct_bound(mir_sim *sim, size_t node, const char *what, uint64_t v, uint64_t bound) {
  if (v > bound) {
    mir_sim_fail(sim, "memory bound: node %zu: %s = %" PRIu64 " exceeds %" PRIu64, node, what, v,
                 bound);
  }
}

/* A gauge or counter of module `module` of the running node i (0 if absent). */
static uint64_t sct_live(mir_sim *sim, size_t i, const char *module, const char *name) {
  int64_t v = mir_metrics_read_child(mir_node_metrics(mir_sim_node(sim, i)), module, name, NULL);
  return v > 0 ? (uint64_t)v : 0;
}

/* Samples the ISS and factory metrics of node i (up). */
static void sct_sample_ordering(sct_run *run, mir_sim *sim, size_t i) {
  sc_trantor_report *r = &run->rep;
  uint64_t retained = run->params.retained_epochs, k = run->nodes;
  uint64_t epoch = sct_live(sim, i, SCT_ISS, "mir_iss_epoch");
  uint64_t gc = sct_live(sim, i, SCT_ISS, "mir_iss_gc_epoch");
  uint64_t lag = epoch - gc;
  sct_max(&r->epoch_lag_max, lag);
  sct_bound(sim, i, "epoch - gc index", lag, retained + SCT_EPOCH_SLACK);
  uint64_t instances = sct_live(sim, i, SCT_ORDERING, "mir_factory_submodules");
  sct_max(&r->ordering_max, instances);
  sct_max(&r->msgbuf_max, sct_live(sim, i, SCT_ORDERING, "mir_factory_early_buffer_bytes"));
  sct_bound(sim, i, "live PBFT instances", instances, (retained + SCT_EPOCH_SLACK + 1) * k);
  instances = sct_live(sim, i, SCT_CHECKPOINT, "mir_factory_submodules");
  sct_max(&r->checkpoint_max, instances);
  sct_max(&r->msgbuf_max, sct_live(sim, i, SCT_CHECKPOINT, "mir_factory_early_buffer_bytes"));
  sct_bound(sim, i, "live checkpoint instances", instances, retained + SCT_EPOCH_SLACK + 1);
}

/* Samples the data path and the node's event queues of node i (up). */
static void sct_sample_data(sct_run *run, mir_sim *sim, size_t i) {
  sc_trantor_report *r = &run->rep;
  uint64_t pending = sct_live(sim, i, TRANTOR_MEMPOOL_ID, "mir_mempool_pending_transactions");
  uint64_t waiting = sct_live(sim, i, TRANTOR_MEMPOOL_ID, "mir_mempool_waiting_requests");
  sct_max(&r->mempool_max, pending);
  sct_max(&r->requests_max, waiting);
  sct_bound(sim, i, "mempool transactions", pending, run->txs);
  sct_bound(sim, i, "waiting batch requests", waiting, TRANTOR_MEMPOOL_REQUESTS_MAX_DEFAULT);
  uint64_t queued = sct_live(sim, i, TRANTOR_BATCHFETCHER_ID, "mir_batchfetcher_queued");
  sct_max(&r->fetcher_max, queued);
  uint64_t epoch_len = (uint64_t)run->nodes * run->params.segment_length;
  sct_bound(sim, i, "batch fetcher queue", queued, 4 * epoch_len + 16);
  int64_t v =
      mir_metrics_read(mir_node_metrics(mir_sim_node(sim, i)), "mir_node_buffered_events", NULL);
  uint64_t buffered = v > 0 ? (uint64_t)v : 0;
  sct_max(&r->buffered_max, buffered);
  sct_bound(sim, i, "events buffered in the node", buffered, SCT_BUFFERED_MAX);
}

void sct_sample(sct_run *run, mir_sim *sim) {
  run->rep.samples++;
  for (size_t i = 0; i < run->nodes && !mir_sim_failed(sim); i++) {
    if (!mir_sim_node_up(sim, i)) continue;
    sct_sample_ordering(run, sim, i);
    sct_sample_data(run, sim, i);
  }
}

/* A counter of node i (label value `value`, NULL: any) summed over its incarnations. */
static uint64_t sct_total(const mir_sim *sim, size_t i, const char *name, const char *value) {
  int64_t v = mir_metrics_read(mir_sim_node_metrics(sim, i), name, value);
  return v > 0 ? (uint64_t)v : 0;
}

void sct_count(const sct_run *run, const mir_sim *sim, sc_trantor_report *r) {
  for (size_t i = 0; i < run->nodes; i++) {
    r->view_changes += sct_total(sim, i, "mir_pbft_view_changes_total", NULL);
    r->new_views += sct_total(sim, i, "mir_pbft_new_views_total", NULL);
    r->transfers += sct_total(sim, i, "mir_iss_state_transfers_total", NULL);
    r->invalid_certs += sct_total(sim, i, "mir_iss_empty_deliveries_total", "invalid_cert");
  }
}
