/*
 * The mempool module (mempool.h): admission of client transactions, waiting batch requests and
 * the epoch rule that lets proposed transactions be proposed again, and the Activity it reports to
 * iss (the pool went from empty to holding transactions, or back).
 *
 * State: the pool (pool.h), the delivery progress of every client as reported by TxsDelivered
 * and RestoreState, the current epoch (last NewEpoch or restored checkpoint) and a FIFO of
 * waiting requests. Invariants: a waiting request's fresh_txs/fresh_bytes equal the sums of the
 * fresh lists of its buckets (kept by the pool's fresh callback); no waiting request holds a full
 * batch at the end of an event (mp_serve_full runs after everything that adds fresh
 * transactions); a waiting request's epoch is at least the current epoch; at most requests_max
 * requests wait. Every request is answered exactly once: when full, at its timeout, when its
 * epoch ends, or at once (a fill request, for a slot the log waits for, takes what is there).
 *
 * Client input is never trusted: every transaction gets a status, none reaches an assertion.
 * Malformed events from local modules (no origin, invalid module id, bucket out of range) are
 * wiring errors and stop the node with a message.
 */
#include "mempool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientprogress.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/registry.h"
#include "pool.h"
#include "trantor_common.h"

#define MP_STATUS_KINDS 6 /* Trantor__TxStatus values */

/* The module's metrics, in its dsl's set (mp_metrics_init): counters move as events happen, the
 * gauges are set at the end of every batch (mp_publish). */
typedef struct mp_metrics {
  mir_gauge *epoch, *pending_txs, *pending_bytes, *proposable_txs, *waiting_requests, *clients;
  mir_counter *accepted;
  mir_counter *rejected[MP_STATUS_KINDS]; /* by Trantor__TxStatus; [0] (accepted) unused */
  mir_counter *batches, *batched_txs, *empty_batches, *timeouts, *overflows, *delivered;
  mir_counter *undeliverable;
  mir_histogram *batch_txs;
} mp_metrics;

typedef struct mp_request {
  uint64_t id;
  uint64_t epoch;
  uint32_t *buckets; /* sorted, unique */
  size_t n_buckets;
  size_t fresh_txs; /* over its buckets */
  uint64_t fresh_bytes;
  char origin_module[MIR_MODULE_ID_MAX];
  uint64_t origin_ctx;
  struct mp_request *next;
} mp_request;

typedef struct mempool {
  trantor_params params;
  char self[MIR_MODULE_ID_MAX];
  char timer[MIR_MODULE_ID_MAX];
  char iss[MIR_MODULE_ID_MAX];
  bool active; /* last Activity sent to iss: the pool holds transactions */
  size_t requests_max;
  trantor_pool pool;
  trantor_client_progress *progress;
  uint64_t epoch;
  mp_request *waiting, *waiting_tail;
  size_t n_waiting;
  uint64_t next_request_id;
  mp_metrics st;
} mempool;

/* ---- requests ---- */

static int mp_u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static bool mp_request_has(const mp_request *r, uint32_t bucket) {
  return bsearch(&bucket, r->buckets, r->n_buckets, sizeof(uint32_t), mp_u32_cmp) != NULL;
}

/* Keeps the sums of waiting requests equal to their buckets' fresh lists. */
static void mp_on_fresh(void *user, const trantor_pool_tx *tx, bool added) {
  mempool *m = user;
  for (mp_request *r = m->waiting; r != NULL; r = r->next) {
    if (!mp_request_has(r, tx->bucket)) continue;
    if (added) {
      r->fresh_txs++;
      r->fresh_bytes += tx->data.len;
    } else {
      MIR_ASSERT(r->fresh_txs > 0 && r->fresh_bytes >= tx->data.len);
      r->fresh_txs--;
      r->fresh_bytes -= tx->data.len;
    }
  }
}

static bool mp_full(const mempool *m, const mp_request *r) {
  return r->fresh_txs >= m->params.max_batch_txs || r->fresh_bytes >= m->params.max_batch_bytes;
}

static void mp_request_free(mp_request *r) {
  if (r == NULL) return;
  free(r->buckets);
  free(r);
}

/* Builds a request from req (borrowed, validated by the caller) with its buckets sorted and
 * deduplicated and its sums computed. Returns owned (free with mp_request_free). */
static mp_request *mp_request_new(mempool *m, const Trantor__RequestBatch *req) {
  mp_request *r = mir_xcalloc(1, sizeof(*r));
  r->id = m->next_request_id++;
  r->epoch = req->epoch;
  snprintf(r->origin_module, sizeof(r->origin_module), "%s", req->origin->module);
  r->origin_ctx = req->origin->context_id;
  if (req->n_buckets > 0) {
    r->buckets = mir_xmalloc(req->n_buckets * sizeof(uint32_t));
    memcpy(r->buckets, req->buckets, req->n_buckets * sizeof(uint32_t));
    qsort(r->buckets, req->n_buckets, sizeof(uint32_t), mp_u32_cmp);
    for (size_t i = 0; i < req->n_buckets; i++) {
      if (r->n_buckets == 0 || r->buckets[r->n_buckets - 1] != r->buckets[i]) {
        r->buckets[r->n_buckets++] = r->buckets[i];
      }
    }
  }
  for (size_t i = 0; i < r->n_buckets; i++) {
    const trantor_pool_list *fresh = &m->pool.buckets[r->buckets[i]].fresh;
    r->fresh_txs += fresh->n;
    r->fresh_bytes += fresh->bytes;
  }
  return r;
}

/* Unlinks r (a waiting request whose predecessor is prev, NULL for the head). */
static void mp_unlink(mempool *m, mp_request *prev, mp_request *r) {
  if (prev != NULL) {
    prev->next = r->next;
  } else {
    m->waiting = r->next;
  }
  if (m->waiting_tail == r) m->waiting_tail = prev;
  r->next = NULL;
  m->n_waiting--;
}

/* Answers r (owned, not waiting) with a batch cut from its buckets, or an empty one, and frees
 * it. */
static void mp_answer(mir_dsl *dsl, mempool *m, mp_request *r, bool empty) {
  Trantor__NewBatch *nb = mir_xmalloc(sizeof(*nb));
  trantor__new_batch__init(nb);
  nb->batch = mir_xmalloc(sizeof(*nb->batch));
  trantor__batch__init(nb->batch);
  if (!empty) {
    trantor_pool_cut(&m->pool, r->buckets, r->n_buckets, r->epoch, m->params.max_batch_txs,
                     m->params.max_batch_bytes, nb->batch);
  }
  nb->origin = mir_xmalloc(sizeof(*nb->origin));
  mir__origin__init(nb->origin);
  nb->origin->module = mir_xstrdup(r->origin_module);
  nb->origin->context_id = r->origin_ctx;
  mir_counter_inc(m->st.batches);
  mir_counter_add(m->st.batched_txs, nb->batch->n_txs);
  mir_histogram_observe(m->st.batch_txs, nb->batch->n_txs);
  if (nb->batch->n_txs == 0) mir_counter_inc(m->st.empty_batches);
  mir_dsl_emit_new(dsl, r->origin_module, &nb->base);
  mp_request_free(r);
}

/* Answers, in FIFO order, every waiting request whose buckets now hold a full batch. */
static void mp_serve_full(mir_dsl *dsl, mempool *m) {
  mp_request *prev = NULL, *r = m->waiting;
  while (r != NULL) {
    mp_request *next = r->next;
    if (mp_full(m, r)) {
      mp_unlink(m, prev, r);
      mp_answer(dsl, m, r, false);
    } else {
      prev = r;
    }
    r = next;
  }
}

/* Answers every waiting request of an epoch below the current one with an empty batch: its
 * epoch is over, every sn of it is decided. */
static void mp_drop_stale(mir_dsl *dsl, mempool *m) {
  mp_request *prev = NULL, *r = m->waiting;
  while (r != NULL) {
    mp_request *next = r->next;
    if (r->epoch < m->epoch) {
      mp_unlink(m, prev, r);
      mp_answer(dsl, m, r, true);
    } else {
      prev = r;
    }
    r = next;
  }
}

/* ---- admission ---- */

static bool mp_client_id_valid(const char *id) {
  return id != NULL && id[0] != '\0' &&
         strnlen(id, TRANTOR_CLIENT_ID_MAX + 1) <= TRANTOR_CLIENT_ID_MAX;
}

/* Decides about one client transaction (untrusted) and stores it if accepted. */
static Trantor__TxStatus mp_admit(mempool *m, const Trantor__Tx *tx) {
  if (tx == NULL || !mp_client_id_valid(tx->client_id)) return TRANTOR__TX_STATUS__TX_INVALID;
  if (tx->data.len > m->params.max_tx_bytes) return TRANTOR__TX_STATUS__TX_TOO_LARGE;
  switch (trantor_client_progress_check(m->progress, tx->client_id, tx->tx_no)) {
    case TRANTOR_CP_NEW:
      break;
    case TRANTOR_CP_DELIVERED:
      return TRANTOR__TX_STATUS__TX_DUPLICATE;
    case TRANTOR_CP_OUT_OF_WINDOW:
      return TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW;
    case TRANTOR_CP_TOO_MANY_CLIENTS: /* could never be delivered */
      return TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
    case TRANTOR_CP_INVALID:
      return TRANTOR__TX_STATUS__TX_INVALID;
  }
  if (trantor_pool_find(&m->pool, tx->client_id, tx->tx_no) != NULL) {
    return TRANTOR__TX_STATUS__TX_DUPLICATE;
  }
  if (m->pool.n_txs >= m->params.mempool_max_txs ||
      tx->data.len > m->params.mempool_max_bytes - m->pool.bytes) {
    return TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
  }
  trantor_pool_add(&m->pool, tx, trantor_bucket_of(tx->client_id, m->params.num_buckets));
  return TRANTOR__TX_STATUS__TX_ACCEPTED;
}

/* Checks an origin of a local request: present (if required), with a valid module id. */
static mir_err mp_check_origin(const mempool *m, const Mir__Origin *o, const char *what,
                               bool required) {
  if (o == NULL && !required) return MIR_OK;
  if (o == NULL || o->module == NULL || !mir_module_id_valid(o->module)) {
    return mir_error_set(MIR_EINVAL, "%s: %s without a valid origin", m->self, what);
  }
  return MIR_OK;
}

static mir_err mp_on_new_transactions(mir_dsl *dsl, const mir_event *ev, void *user) {
  mempool *m = user;
  const Trantor__NewTransactions *nt = (const Trantor__NewTransactions *)ev->payload;
  mir_err err = mp_check_origin(m, nt->origin, "NewTransactions", false);
  if (err != MIR_OK) return err;
  Trantor__TxStatus *status = NULL;
  if (nt->origin != NULL && nt->n_txs > 0) status = mir_xmalloc(nt->n_txs * sizeof(*status));
  for (size_t i = 0; i < nt->n_txs; i++) {
    Trantor__TxStatus s = mp_admit(m, nt->txs[i]);
    if (s == TRANTOR__TX_STATUS__TX_ACCEPTED) {
      mir_counter_inc(m->st.accepted);
    } else {
      mir_counter_inc(m->st.rejected[s]);
    }
    if (status != NULL) status[i] = s;
  }
  if (nt->origin != NULL) {
    Trantor__TxsAccepted *acc = mir_xmalloc(sizeof(*acc));
    trantor__txs_accepted__init(acc);
    acc->status = status;
    acc->n_status = nt->n_txs;
    acc->origin = (Mir__Origin *)mir_message_clone(&nt->origin->base);
    mir_dsl_emit_new(dsl, nt->origin->module, &acc->base);
  }
  mp_serve_full(dsl, m);
  return MIR_OK;
}

/* ---- batch requests ---- */

/* Starts the timeout of waiting request r. */
static void mp_arm_timeout(mir_dsl *dsl, mempool *m, const mp_request *r) {
  Trantor__BatchTimeout *bt = mir_xmalloc(sizeof(*bt));
  trantor__batch_timeout__init(bt);
  bt->request_id = r->id;
  mir_event_list later = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&later, mir_event_new(m->self, m->self, &bt->base));
  mir_dsl_emit(dsl, mir_event_timer_delay(m->timer, m->self, &later, m->params.batch_timeout_ms));
}

static mir_err mp_on_request_batch(mir_dsl *dsl, const mir_event *ev, void *user) {
  mempool *m = user;
  const Trantor__RequestBatch *req = (const Trantor__RequestBatch *)ev->payload;
  mir_err err = mp_check_origin(m, req->origin, "RequestBatch", true);
  if (err != MIR_OK) return err;
  for (size_t i = 0; i < req->n_buckets; i++) {
    if (req->buckets[i] >= m->params.num_buckets) {
      return mir_error_set(MIR_EINVAL, "%s: RequestBatch from %s: bucket %u of %u", m->self,
                           ev->src, req->buckets[i], m->params.num_buckets);
    }
  }
  mp_request *r = mp_request_new(m, req);
  if (r->epoch < m->epoch || r->n_buckets == 0) {
    mp_answer(dsl, m, r, true); /* epoch over, or nothing could ever fill it */
  } else if (mp_full(m, r) || req->fill) {
    mp_answer(dsl, m, r, false);
  } else if (m->n_waiting >= m->requests_max) {
    mir_counter_inc(m->st.overflows);
    mp_answer(dsl, m, r, false);
  } else {
    if (m->waiting_tail != NULL) {
      m->waiting_tail->next = r;
    } else {
      m->waiting = r;
    }
    m->waiting_tail = r;
    m->n_waiting++;
    mp_arm_timeout(dsl, m, r);
  }
  return MIR_OK;
}

static mir_err mp_on_batch_timeout(mir_dsl *dsl, const mir_event *ev, void *user) {
  mempool *m = user;
  uint64_t id = ((const Trantor__BatchTimeout *)ev->payload)->request_id;
  mp_request *prev = NULL;
  for (mp_request *r = m->waiting; r != NULL; prev = r, r = r->next) {
    if (r->id != id) continue;
    mp_unlink(m, prev, r);
    mir_counter_inc(m->st.timeouts);
    mp_answer(dsl, m, r, false);
    return MIR_OK;
  }
  return MIR_OK; /* answered already: timers cannot be cancelled */
}

/* ---- epochs and delivery ---- */

static bool mp_undeliverable(void *user, const trantor_pool_tx *tx) {
  const mempool *m = user;
  return trantor_client_progress_check(m->progress, tx->client_id, tx->tx_no) != TRANTOR_CP_NEW;
}

/* Moves to epoch (if later): earlier proposals become proposable, stale requests are answered,
 * and pending transactions that can no longer be delivered are dropped. */
static void mp_enter_epoch(mir_dsl *dsl, mempool *m, uint64_t epoch) {
  if (epoch > m->epoch) {
    m->epoch = epoch;
    trantor_pool_reopen(&m->pool, epoch);
    mp_drop_stale(dsl, m);
  }
  mir_counter_add(m->st.undeliverable, trantor_pool_remove_if(&m->pool, mp_undeliverable, m));
  mp_serve_full(dsl, m);
}

static mir_err mp_on_new_epoch(mir_dsl *dsl, const mir_event *ev, void *user) {
  mempool *m = user;
  mp_enter_epoch(dsl, m, ((const Trantor__NewEpoch *)ev->payload)->epoch);
  return MIR_OK;
}

static mir_err mp_on_txs_delivered(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  mempool *m = user;
  const Trantor__TxsDelivered *d = (const Trantor__TxsDelivered *)ev->payload;
  size_t clients_before = trantor_client_progress_clients(m->progress);
  for (size_t i = 0; i < d->n_txs; i++) {
    const Trantor__Tx *tx = d->txs[i];
    if (tx == NULL || !mp_client_id_valid(tx->client_id)) continue;
    trantor_client_progress_add(m->progress, tx->client_id, tx->tx_no, NULL);
    trantor_pool_tx *t = trantor_pool_find(&m->pool, tx->client_id, tx->tx_no);
    if (t != NULL) {
      trantor_pool_remove(&m->pool, t);
      mir_counter_inc(m->st.delivered);
    }
  }
  /* Once the client bound is reached, pending transactions of unknown clients never will be. */
  size_t clients = trantor_client_progress_clients(m->progress);
  if (clients != clients_before && clients >= trantor_client_progress_clients_max(m->progress)) {
    mir_counter_add(m->st.undeliverable, trantor_pool_remove_if(&m->pool, mp_undeliverable, m));
  }
  return MIR_OK;
}

static mir_err mp_on_restore_state(mir_dsl *dsl, const mir_event *ev, void *user) {
  mempool *m = user;
  const Trantor__StableCheckpoint *c = ((const Trantor__RestoreState *)ev->payload)->checkpoint;
  const Trantor__StateSnapshot *s = c != NULL ? c->snapshot : NULL;
  mir_err err = trantor_client_progress_load(m->progress, s != NULL ? s->client_progress : NULL);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s: RestoreState: %s", m->self, detail);
  }
  uint64_t epoch = s != NULL && s->epoch_config != NULL ? s->epoch_config->epoch : 0;
  mp_enter_epoch(dsl, m, epoch);
  return MIR_OK;
}

/* ---- module ---- */

/* After every batch: tells iss when the pool went from empty to holding transactions or back,
 * so that the segments propose (and expect proposals) only while there is work. */
static mir_err mp_publish(mir_dsl *dsl, void *user) {
  mempool *m = user;
  bool active = m->pool.n_txs > 0;
  if (dsl != NULL && active != m->active) {
    m->active = active;
    Trantor__Activity *a = mir_xmalloc(sizeof(*a));
    trantor__activity__init(a);
    a->active = active;
    mir_dsl_emit_new(dsl, m->iss, &a->base);
  }
  mir_gauge_set(m->st.epoch, (int64_t)m->epoch);
  mir_gauge_set(m->st.pending_txs, (int64_t)m->pool.n_txs);
  mir_gauge_set(m->st.pending_bytes, (int64_t)m->pool.bytes);
  mir_gauge_set(m->st.proposable_txs, (int64_t)m->pool.n_fresh);
  mir_gauge_set(m->st.waiting_requests, (int64_t)m->n_waiting);
  mir_gauge_set(m->st.clients, (int64_t)trantor_client_progress_clients(m->progress));
  return MIR_OK;
}

/* Registers the mempool's metrics in set s (the dsl's). */
static void mp_metrics_init(mempool *m, mir_metrics *s) {
  static const char *const refused[MP_STATUS_KINDS] = {NULL,        "duplicate",    "out_of_window",
                                                       "too_large", "mempool_full", "invalid"};
  static const char refused_help[] = "Transactions the mempool refused, by reason.";
  static const uint64_t batch_bounds[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
  mp_metrics *st = &m->st;
  st->epoch = mir_metrics_gauge_max(s, "mir_mempool_epoch", "The mempool's epoch.", NULL, NULL);
  st->pending_txs = mir_metrics_gauge(s, "mir_mempool_pending_transactions",
                                      "Transactions stored (fresh and proposed).", NULL, NULL);
  st->pending_bytes = mir_metrics_gauge(s, "mir_mempool_pending_bytes",
                                        "Data bytes of the stored transactions.", NULL, NULL);
  st->proposable_txs = mir_metrics_gauge(s, "mir_mempool_proposable_transactions",
                                         "Stored transactions not proposed yet.", NULL, NULL);
  st->waiting_requests = mir_metrics_gauge(s, "mir_mempool_waiting_requests",
                                           "Batch requests waiting for transactions.", NULL, NULL);
  st->clients = mir_metrics_gauge(s, "mir_mempool_clients",
                                  "Clients in the mempool's delivery progress.", NULL, NULL);
  st->accepted = mir_metrics_counter(s, "mir_mempool_transactions_accepted_total",
                                     "Transactions the mempool accepted.", NULL, NULL);
  for (size_t i = 1; i < MP_STATUS_KINDS; i++) {
    st->rejected[i] = mir_metrics_counter(s, "mir_mempool_transactions_refused_total", refused_help,
                                          "reason", refused[i]);
  }
  st->batches = mir_metrics_counter(s, "mir_mempool_batches_total",
                                    "Batches cut for the ordering (empty ones too).", NULL, NULL);
  st->batched_txs = mir_metrics_counter(s, "mir_mempool_batched_transactions_total",
                                        "Transactions in the batches cut.", NULL, NULL);
  st->empty_batches = mir_metrics_counter(s, "mir_mempool_empty_batches_total",
                                          "Batches cut without transactions.", NULL, NULL);
  st->batch_txs =
      mir_metrics_histogram(s, "mir_mempool_batch_transactions", "Transactions per batch cut.",
                            NULL, NULL, batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0]);
  st->timeouts = mir_metrics_counter(s, "mir_mempool_request_timeouts_total",
                                     "Batch requests answered by their timeout.", NULL, NULL);
  st->overflows =
      mir_metrics_counter(s, "mir_mempool_request_overflows_total",
                          "Batch requests answered at once: too many waited.", NULL, NULL);
  st->delivered =
      mir_metrics_counter(s, "mir_mempool_delivered_transactions_total",
                          "Transactions removed because they were delivered.", NULL, NULL);
  st->undeliverable = mir_metrics_counter(
      s, "mir_mempool_undeliverable_transactions_total",
      "Pending transactions dropped because they can no longer be delivered.", NULL, NULL);
}

static void mp_free(void *user) {
  mempool *m = user;
  while (m->waiting != NULL) {
    mp_request *r = m->waiting;
    m->waiting = r->next;
    mp_request_free(r);
  }
  trantor_pool_fini(&m->pool);
  trantor_client_progress_free(m->progress);
  free(m);
}

static mir_err mp_register(mir_dsl *dsl) {
  mir_err err =
      mir_dsl_upon_event(dsl, &trantor__new_transactions__descriptor, mp_on_new_transactions);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__request_batch__descriptor, mp_on_request_batch);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__batch_timeout__descriptor, mp_on_batch_timeout);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__new_epoch__descriptor, mp_on_new_epoch);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__txs_delivered__descriptor, mp_on_txs_delivered);
  if (err == MIR_OK)
    err = mir_dsl_upon_event(dsl, &trantor__restore_state__descriptor, mp_on_restore_state);
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, mp_publish);
  /* The timer packs BatchTimeout by type name and unpacks it through the registry. */
  if (err == MIR_OK) err = mir_registry_add(&trantor__batch_timeout__descriptor);
  return err;
}

/* Copies a module id (NULL: dflt) into dst, checking it. */
static mir_err mp_copy_id(char dst[MIR_MODULE_ID_MAX], const char *id, const char *dflt,
                          const char *field) {
  if (id == NULL) id = dflt;
  if (!mir_module_id_valid(id)) {
    return mir_error_set(MIR_EINVAL, "mempool config: %s: invalid module id", field);
  }
  snprintf(dst, MIR_MODULE_ID_MAX, "%s", id);
  return MIR_OK;
}

mir_err trantor_mempool_new(const trantor_mempool_config *cfg, mir_dsl **out) {
  if (cfg == NULL || cfg->params == NULL) {
    return mir_error_set(MIR_EINVAL, "mempool config: no params");
  }
  mir_err err = trantor_params_check(cfg->params);
  if (err != MIR_OK) return err;
  mempool *m = mir_xcalloc(1, sizeof(*m));
  m->params = *cfg->params;
  m->requests_max = cfg->requests_max ? cfg->requests_max : TRANTOR_MEMPOOL_REQUESTS_MAX_DEFAULT;
  trantor_pool_init(&m->pool, m->params.num_buckets, mp_on_fresh, m);
  err = mp_copy_id(m->self, cfg->module_id, TRANTOR_MEMPOOL_ID, "module_id");
  if (err == MIR_OK) err = mp_copy_id(m->timer, cfg->timer_id, "timer", "timer_id");
  if (err == MIR_OK) err = mp_copy_id(m->iss, cfg->iss_id, "iss", "iss_id");
  if (err == MIR_OK) {
    err = trantor_client_progress_new(m->params.client_window, cfg->clients_max, &m->progress);
  }
  if (err != MIR_OK) {
    mp_free(m);
    return err;
  }
  mir_dsl *dsl = mir_dsl_new(m->self, m);
  mp_metrics_init(m, mir_dsl_metrics(dsl));
  mir_dsl_set_user_free(dsl, mp_free);
  err = mp_register(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  mp_publish(NULL, m);
  *out = dsl;
  return MIR_OK;
}
