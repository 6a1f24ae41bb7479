/*
 * The crypto module (crypto.h): signs with the node's key and verifies other nodes' signatures.
 *
 * Two variants share one apply(). The passive one answers each request inline, in order, so that
 * the simulator stays deterministic. The active one moves each request into a bounded FIFO of
 * work units served by a pool of worker threads; a VerifyManyRequest becomes one unit per chunk
 * of items, so several workers verify one large request together and the worker finishing the
 * last chunk sends the result. Workers push results through the node's inbox, which may block
 * them while the node's input is paused: that is the back-pressure on signature work.
 *
 * Invariants: apply() never blocks (it takes the queue lock only to append); the queue never
 * holds more than cfg.queue_max units (a request that does not fit is dropped and counted, since
 * its inputs may come from peers who must not be able to stop the node); stop() joins every
 * worker and afterwards nobody touches the inbox. Requests are validated on the dispatcher
 * thread, so workers only meet requests they can answer. A failure to sign (only the library can
 * cause it) is recorded and returned by the next apply(), stopping the node.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.h"
#include "mir/crypto.pb-c.h"
#include "mir/lock.h"
#include "mir/log.h"
#include "requests.h"

/* Most work units one worker takes from the queue at once (results go out in one push). */
#define CRYPTO_TAKE_MAX 32

typedef enum crypto_kind {
  CRYPTO_IGNORE = 0, /* Init */
  CRYPTO_SIGN,
  CRYPTO_VERIFY,
  CRYPTO_MANY,
  CRYPTO_MANY_REJECT /* too many items: answered at once, every item failed */
} crypto_kind;

/* A VerifyManyRequest being verified in chunks by several workers. */
typedef struct crypto_many {
  mir_event *ev;          /* owned request */
  protobuf_c_boolean *ok; /* one per item; moved into the result */
  atomic_size_t chunks_left;
  atomic_size_t failed;
} crypto_many;

typedef struct crypto_job {
  struct crypto_job *next;
  crypto_kind kind;
  mir_event *ev;     /* CRYPTO_SIGN, CRYPTO_VERIFY: owned request */
  crypto_many *many; /* CRYPTO_MANY: shared by the request's chunks */
  size_t begin, end; /* CRYPTO_MANY: items [begin, end) */
} crypto_job;

typedef struct crypto_module {
  mir_keyset *keys; /* owned; read-only while the module runs */
  mir_crypto_config cfg;
  bool active;

  mir_lock mu;       /* "crypto_queue"; guards everything down to inbox */
  pthread_cond_t cv; /* signalled when work arrives or stopping is set */
  crypto_job *head, *tail;
  size_t queued, queued_max;
  bool stopping, started;
  pthread_t *threads;
  size_t n_threads;
  mir_inbox *inbox;
  char fatal_detail[256];

  atomic_int fatal; /* mir_err of a failed signature, 0 if none */

  /* Metrics (owned set, handed to the node through ops.metrics). The queue gauges are set
   * under mu, the counters from any thread. */
  mir_metrics *metrics;
  mir_counter *signed_count, *verified_count, *failed_count, *dropped_count;
  mir_gauge *queue_depth, *queue_depth_max, *workers;
} crypto_module;

/* ---- answering (shared by both variants and every worker) ---- */

/* Signs ev's request (borrowed; its origin moves into the result). NULL if signing failed (error
 * detail set). */
static mir_event *crypto_do_sign(crypto_module *m, mir_event *ev) {
  Mir__SignRequest *req = (Mir__SignRequest *)ev->payload;
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t sig_len = 0;
  if (mir_keyset_sign(m->keys, req->data, req->n_data, sig, &sig_len) != MIR_OK) return NULL;
  mir_counter_inc(m->signed_count);
  Mir__SignResult *res = mir_xmalloc(sizeof *res);
  mir__sign_result__init(res);
  res->signature.len = sig_len;
  res->signature.data = mir_xmemdup(sig, sig_len);
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

/* True if node_id signed parts with sig; unknown nodes and malformed input simply fail. */
static bool crypto_check(crypto_module *m, const char *node_id, const ProtobufCBinaryData *parts,
                         size_t n_parts, const ProtobufCBinaryData *sig) {
  bool ok = node_id != NULL &&
            mir_keyset_verify(m->keys, node_id, parts, n_parts, sig->data, sig->len) == MIR_OK;
  mir_counter_inc(m->verified_count);
  if (!ok) mir_counter_inc(m->failed_count);
  return ok;
}

/* Verifies ev's request (borrowed; its node id and origin move into the result). */
static mir_event *crypto_do_verify(crypto_module *m, mir_event *ev) {
  Mir__VerifyRequest *req = (Mir__VerifyRequest *)ev->payload;
  Mir__VerifyResult *res = mir_xmalloc(sizeof *res);
  mir__verify_result__init(res);
  res->ok = crypto_check(m, req->node_id, req->data, req->n_data, &req->signature);
  if (req->node_id != NULL) res->node_id = req->node_id;
  req->node_id = (char *)protobuf_c_empty_string;
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

/* Verifies items [begin, end) of a VerifyManyRequest into ok; returns how many failed. */
static size_t crypto_verify_range(crypto_module *m, const Mir__VerifyManyRequest *req,
                                  protobuf_c_boolean *ok, size_t begin, size_t end) {
  size_t failed = 0;
  for (size_t i = begin; i < end; i++) {
    const Mir__SignedData *it = req->items[i];
    ok[i] = it != NULL && crypto_check(m, it->node_id, it->data, it->n_data, &it->signature);
    if (!ok[i]) failed++;
  }
  return failed;
}

/* Builds the result of a VerifyManyRequest (ev borrowed; origin moves) from ok (takes ownership).
 */
static mir_event *crypto_many_result(mir_event *ev, protobuf_c_boolean *ok, size_t failed) {
  Mir__VerifyManyRequest *req = (Mir__VerifyManyRequest *)ev->payload;
  Mir__VerifyManyResult *res = mir_xmalloc(sizeof *res);
  mir__verify_many_result__init(res);
  res->n_ok = req->n_items;
  res->ok = ok;
  res->all_ok = failed == 0;
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

/* ---- validation on the dispatcher thread ---- */

/* Classifies ev and checks what its requester guarantees. An error is the requester's bug. */
static mir_err crypto_classify(crypto_module *m, const mir_event *ev, crypto_kind *kind) {
  const ProtobufCMessageDescriptor *d = ev->payload ? ev->payload->descriptor : NULL;
  if (d == &mir__init__descriptor) {
    *kind = CRYPTO_IGNORE;
    return MIR_OK;
  }
  if (d == &mir__sign_request__descriptor) {
    const Mir__SignRequest *req = (const Mir__SignRequest *)ev->payload;
    size_t len = 0;
    *kind = CRYPTO_SIGN;
    mir_err err = miri_origin_check(req->origin, ev, "crypto");
    if (err == MIR_OK && mir_keyset_own_key(m->keys) == NULL) {
      err = mir_error_set(MIR_EINVAL, "crypto %s: sign request from %s but node %s has no key",
                          ev->dest, ev->src, mir_keyset_own_id(m->keys));
    }
    if (err == MIR_OK && miri_sign_check_limits(req->data, req->n_data, &len) != MIR_OK) {
      char why[200];
      snprintf(why, sizeof why, "%s", mir_error_detail());
      err =
          mir_error_set(MIR_EINVAL, "crypto %s: sign request from %s: %s", ev->dest, ev->src, why);
    }
    return err;
  }
  if (d == &mir__verify_request__descriptor) {
    *kind = CRYPTO_VERIFY;
    return miri_origin_check(((const Mir__VerifyRequest *)ev->payload)->origin, ev, "crypto");
  }
  if (d == &mir__verify_many_request__descriptor) {
    const Mir__VerifyManyRequest *req = (const Mir__VerifyManyRequest *)ev->payload;
    *kind = req->n_items > MIR_CRYPTO_ITEMS_MAX ? CRYPTO_MANY_REJECT : CRYPTO_MANY;
    return miri_origin_check(req->origin, ev, "crypto");
  }
  return mir_error_set(MIR_EPROTO, "crypto %s: unexpected event %s from %s", ev->dest,
                       mir_event_type_name(ev), ev->src);
}

/* Answers ev (takes ownership) on the calling thread, appending the result to out. */
static mir_err crypto_serve_inline(crypto_module *m, mir_event *ev, crypto_kind kind,
                                   mir_event_list *out) {
  mir_event *res = NULL;
  if (kind == CRYPTO_SIGN) {
    res = crypto_do_sign(m, ev);
  } else if (kind == CRYPTO_VERIFY) {
    res = crypto_do_verify(m, ev);
  } else {
    const Mir__VerifyManyRequest *req = (const Mir__VerifyManyRequest *)ev->payload;
    protobuf_c_boolean *ok = req->n_items ? mir_xcalloc(req->n_items, sizeof *ok) : NULL;
    size_t failed = req->n_items;
    if (kind == CRYPTO_MANY) failed = crypto_verify_range(m, req, ok, 0, req->n_items);
    if (kind == CRYPTO_MANY_REJECT) {
      mir_log(MIR_LOG_WARN, "crypto", "%s: VerifyManyRequest from %s with %zu items rejected",
              ev->dest, ev->src, req->n_items);
    }
    res = crypto_many_result(ev, ok, failed);
  }
  mir_err err = MIR_OK;
  if (res == NULL) {
    char why[200];
    snprintf(why, sizeof why, "%s", mir_error_detail());
    err = mir_error_set(MIR_ECRYPTO, "crypto %s: signing failed: %s", ev->dest, why);
  }
  mir_event_free(ev);
  if (res != NULL) mir_event_list_push(out, res);
  return err;
}

/* ---- the work queue (active variant) ---- */

/* Builds the work units of ev (takes ownership) into a private list; returns their count. */
static size_t crypto_make_jobs(crypto_module *m, mir_event *ev, crypto_kind kind,
                               crypto_job **first, crypto_job **last) {
  if (kind != CRYPTO_MANY) {
    crypto_job *j = mir_xcalloc(1, sizeof *j);
    j->kind = kind;
    j->ev = ev;
    *first = *last = j;
    return 1;
  }
  const Mir__VerifyManyRequest *req = (const Mir__VerifyManyRequest *)ev->payload;
  size_t chunk = m->cfg.verify_many_chunk;
  size_t units = req->n_items == 0 ? 1 : (req->n_items + chunk - 1) / chunk;
  crypto_many *many = mir_xcalloc(1, sizeof *many);
  many->ev = ev;
  many->ok = req->n_items ? mir_xcalloc(req->n_items, sizeof *many->ok) : NULL;
  atomic_init(&many->chunks_left, units);
  atomic_init(&many->failed, 0);
  *first = *last = NULL;
  for (size_t u = 0; u < units; u++) {
    crypto_job *j = mir_xcalloc(1, sizeof *j);
    j->kind = CRYPTO_MANY;
    j->many = many;
    j->begin = u * chunk;
    j->end = u * chunk + chunk < req->n_items ? u * chunk + chunk : req->n_items;
    if (*last)
      (*last)->next = j;
    else
      *first = j;
    *last = j;
  }
  return units;
}

/* Releases one unit that will never run; the request goes with its last unit. */
static void crypto_job_discard(crypto_job *j) {
  if (j->kind == CRYPTO_MANY) {
    if (atomic_fetch_sub(&j->many->chunks_left, 1) == 1) {
      mir_event_free(j->many->ev);
      free(j->many->ok);
      free(j->many);
    }
  } else {
    mir_event_free(j->ev);
  }
  free(j);
}

/* Queues ev (takes ownership), or drops and counts it when its units do not fit. */
static void crypto_enqueue(crypto_module *m, mir_event *ev, crypto_kind kind) {
  crypto_job *first = NULL, *last = NULL;
  size_t units = crypto_make_jobs(m, ev, kind, &first, &last);
  mir_lock_acquire(&m->mu);
  bool fits = m->queued + units <= m->cfg.queue_max;
  if (fits) {
    if (m->tail)
      m->tail->next = first;
    else
      m->head = first;
    m->tail = last;
    m->queued += units;
    mir_gauge_set(m->queue_depth, (int64_t)m->queued);
    if (m->queued > m->queued_max) {
      m->queued_max = m->queued;
      mir_gauge_set(m->queue_depth_max, (int64_t)m->queued_max);
    }
    if (units > 1)
      pthread_cond_broadcast(&m->cv);
    else
      pthread_cond_signal(&m->cv);
  }
  mir_lock_release(&m->mu);
  if (fits) return;
  uint64_t dropped = mir_counter_add_fetch(m->dropped_count, 1);
  if ((dropped & (dropped - 1)) == 0) { /* log the 1st, 2nd, 4th, 8th... drop */
    mir_log(MIR_LOG_WARN, "crypto", "%s: queue full (%zu units): dropped %s from %s (%llu so far)",
            ev->dest, m->cfg.queue_max, mir_event_type_name(ev), ev->src,
            (unsigned long long)dropped);
  }
  while (first != NULL) {
    crypto_job *next = first->next;
    crypto_job_discard(first);
    first = next;
  }
}

/* ---- apply ---- */

static mir_err crypto_apply(void *state, mir_event_list *in, mir_event_list *out) {
  crypto_module *m = state;
  int fatal = atomic_load(&m->fatal);
  if (fatal != 0) {
    mir_lock_acquire(&m->mu);
    mir_err err = mir_error_set(fatal, "%s", m->fatal_detail);
    mir_lock_release(&m->mu);
    return err;
  }
  mir_event *prev = NULL;
  for (mir_event *ev = in->head; ev != NULL;) {
    mir_event *next = ev->next;
    crypto_kind kind = CRYPTO_IGNORE;
    mir_err err = crypto_classify(m, ev, &kind);
    if (err != MIR_OK) return err;
    if (kind == CRYPTO_IGNORE) {
      prev = ev;
    } else {
      mir_event_list_unlink(in, prev, ev);
      if (m->active && kind != CRYPTO_MANY_REJECT) {
        crypto_enqueue(m, ev, kind);
      } else {
        err = crypto_serve_inline(m, ev, kind, out);
        if (err != MIR_OK) return err;
      }
    }
    ev = next;
  }
  return MIR_OK;
}

/* ---- workers ---- */

/* Records the first signing failure for the next apply() to report. */
static void crypto_set_fatal(crypto_module *m, mir_event *ev) {
  mir_lock_acquire(&m->mu);
  if (atomic_load(&m->fatal) == 0) {
    snprintf(m->fatal_detail, sizeof m->fatal_detail, "crypto %s: %s", ev->dest,
             mir_error_detail());
    atomic_store(&m->fatal, MIR_ECRYPTO);
  }
  mir_lock_release(&m->mu);
  mir_log(MIR_LOG_ERROR, "crypto", "%s: signing failed: %s", ev->dest, mir_error_detail());
}

/* Runs one unit (takes ownership of it), appending any result to results. */
static void crypto_run_job(crypto_module *m, crypto_job *j, mir_event_list *results) {
  mir_event *res = NULL;
  if (j->kind == CRYPTO_SIGN) {
    res = crypto_do_sign(m, j->ev);
    if (res == NULL) crypto_set_fatal(m, j->ev);
  } else if (j->kind == CRYPTO_VERIFY) {
    res = crypto_do_verify(m, j->ev);
  } else {
    crypto_many *many = j->many;
    const Mir__VerifyManyRequest *req = (const Mir__VerifyManyRequest *)many->ev->payload;
    size_t failed = crypto_verify_range(m, req, many->ok, j->begin, j->end);
    atomic_fetch_add(&many->failed, failed);
    /* The acq_rel decrement orders every chunk's writes to ok before the last chunk reads them. */
    if (atomic_fetch_sub(&many->chunks_left, 1) == 1) {
      res = crypto_many_result(many->ev, many->ok, atomic_load(&many->failed));
      mir_event_free(many->ev);
      free(many);
    }
    free(j);
    if (res) mir_event_list_push(results, res);
    return;
  }
  mir_event_free(j->ev);
  free(j);
  if (res) mir_event_list_push(results, res);
}

/* Takes up to a fair share of the queue (at least one unit). Called with mu held. */
static crypto_job *crypto_take(crypto_module *m) {
  /* cfg.workers, not n_threads: a worker may run before start() has counted it. */
  size_t take = m->queued / m->cfg.workers;
  if (take < 1) take = 1;
  if (take > CRYPTO_TAKE_MAX) take = CRYPTO_TAKE_MAX;
  crypto_job *first = m->head, *last = m->head;
  for (size_t i = 1; i < take && last->next != NULL; i++) last = last->next;
  m->head = last->next;
  if (m->head == NULL) m->tail = NULL;
  last->next = NULL;
  for (crypto_job *j = first; j != NULL; j = j->next) m->queued--;
  mir_gauge_set(m->queue_depth, (int64_t)m->queued);
  return first;
}

static void *crypto_worker(void *arg) {
  pthread_setname_np(pthread_self(), "mir-crypto"); /* named in top, perf and debuggers */
  crypto_module *m = arg;
  for (;;) {
    mir_lock_acquire(&m->mu);
    while (m->head == NULL && !m->stopping) pthread_cond_wait(&m->cv, &m->mu.mu);
    if (m->stopping) {
      mir_lock_release(&m->mu);
      return NULL;
    }
    crypto_job *jobs = crypto_take(m);
    mir_lock_release(&m->mu);
    mir_event_list results = MIR_EVENT_LIST_INIT;
    while (jobs != NULL) {
      crypto_job *next = jobs->next;
      crypto_run_job(m, jobs, &results);
      jobs = next;
    }
    /* Blocks while the node's input is paused; MIR_ESTOPPED frees the results. */
    if (results.len > 0) mir_inbox_push(m->inbox, &results);
  }
}

/* ---- lifecycle ---- */

static void crypto_stop(void *state) {
  crypto_module *m = state;
  mir_lock_acquire(&m->mu);
  m->stopping = true;
  pthread_cond_broadcast(&m->cv);
  mir_lock_release(&m->mu);
  for (size_t i = 0; i < m->n_threads; i++) pthread_join(m->threads[i], NULL);
  m->n_threads = 0;
  mir_gauge_set(m->workers, 0);
  free(m->threads);
  m->threads = NULL;
}

static mir_err crypto_start(void *state, mir_inbox *inbox) {
  crypto_module *m = state;
  MIR_ASSERT(!m->started);
  m->started = true;
  m->inbox = inbox;
  m->threads = mir_xcalloc(m->cfg.workers, sizeof *m->threads);
  for (size_t i = 0; i < m->cfg.workers; i++) {
    if (pthread_create(&m->threads[i], NULL, crypto_worker, m) != 0) {
      crypto_stop(m);
      return mir_error_set(MIR_EIO, "crypto: cannot start worker %zu of %zu", i + 1,
                           m->cfg.workers);
    }
    mir_lock_acquire(&m->mu);
    m->n_threads = i + 1;
    mir_gauge_set(m->workers, (int64_t)m->n_threads);
    mir_lock_release(&m->mu);
  }
  return MIR_OK;
}

static void crypto_destroy(void *state) {
  crypto_module *m = state;
  if (m->active) {
    crypto_stop(m);
    while (m->head != NULL) {
      crypto_job *next = m->head->next;
      crypto_job_discard(m->head);
      m->head = next;
    }
  }
  mir_lock_fini(&m->mu);
  pthread_cond_destroy(&m->cv);
  mir_keyset_free(m->keys);
  mir_metrics_free(m->metrics);
  free(m);
}

static mir_metrics *crypto_metrics(void *state) {
  return ((crypto_module *)state)->metrics;
}

const mir_module_ops mir_crypto_module_ops = {
    .name = "crypto",
    .kind = MIR_MODULE_ACTIVE,
    .apply = crypto_apply,
    .start = crypto_start,
    .stop = crypto_stop,
    .destroy = crypto_destroy,
    .metrics = crypto_metrics,
};

const mir_module_ops mir_crypto_sync_module_ops = {
    .name = "crypto-sync",
    .kind = MIR_MODULE_PASSIVE,
    .apply = crypto_apply,
    .start = NULL,
    .stop = NULL,
    .destroy = crypto_destroy,
    .metrics = crypto_metrics,
};

void mir_crypto_config_default(mir_crypto_config *cfg) {
  cfg->workers = 0;
  cfg->queue_max = 65536;
  cfg->verify_many_chunk = 8;
}

/* Registers the module's metrics in a new set. */
static void crypto_metrics_init(crypto_module *m) {
  mir_metrics *s = m->metrics = mir_metrics_new("crypto");
  m->signed_count =
      mir_metrics_counter(s, "mir_crypto_signs_total", "Signatures made.", NULL, NULL);
  m->verified_count =
      mir_metrics_counter(s, "mir_crypto_verifies_total",
                          "Signatures checked (each item of a batch counts).", NULL, NULL);
  m->failed_count = mir_metrics_counter(s, "mir_crypto_verify_failures_total",
                                        "Signatures checked that did not verify.", NULL, NULL);
  m->dropped_count = mir_metrics_counter(
      s, "mir_crypto_shed_total", "Requests dropped because the work queue was full.", NULL, NULL);
  m->queue_depth = mir_metrics_gauge(s, "mir_crypto_queue_depth",
                                     "Work units waiting for a crypto worker.", NULL, NULL);
  m->queue_depth_max = mir_metrics_gauge_max(s, "mir_crypto_queue_depth_max",
                                             "Most work units ever waiting at once.", NULL, NULL);
  m->workers =
      mir_metrics_gauge(s, "mir_crypto_workers", "Crypto worker threads running.", NULL, NULL);
}

static crypto_module *crypto_alloc(mir_keyset *keys, bool active) {
  crypto_module *m = mir_xcalloc(1, sizeof *m);
  m->keys = keys;
  m->active = active;
  crypto_metrics_init(m);
  mir_lock_init(&m->mu, m->metrics, "crypto_queue");
  pthread_cond_init(&m->cv, NULL);
  atomic_init(&m->fatal, 0);
  mir_crypto_config_default(&m->cfg);
  return m;
}

mir_err mir_crypto_module_new(mir_keyset *keys, const mir_crypto_config *cfg, void **state) {
  *state = NULL;
  mir_crypto_config c;
  if (cfg != NULL)
    c = *cfg;
  else
    mir_crypto_config_default(&c);
  if (c.workers == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c.workers = cores > 0 ? (size_t)cores : 1;
    if (c.workers > MIR_CRYPTO_WORKERS_MAX) c.workers = MIR_CRYPTO_WORKERS_MAX;
  }
  if (keys == NULL || c.workers > MIR_CRYPTO_WORKERS_MAX || c.queue_max == 0 ||
      c.queue_max > (1u << 24) || c.verify_many_chunk == 0 ||
      c.verify_many_chunk > MIR_CRYPTO_ITEMS_MAX) {
    mir_keyset_free(keys);
    return mir_error_set(MIR_EINVAL,
                         "crypto config: workers 1..%d, queue_max 1..%u, verify_many_chunk 1..%d "
                         "(and a key set) required",
                         MIR_CRYPTO_WORKERS_MAX, 1u << 24, MIR_CRYPTO_ITEMS_MAX);
  }
  crypto_module *m = crypto_alloc(keys, true);
  m->cfg = c;
  *state = m;
  return MIR_OK;
}

mir_err mir_crypto_sync_module_new(mir_keyset *keys, void **state) {
  *state = NULL;
  if (keys == NULL) return mir_error_set(MIR_EINVAL, "crypto: a key set is required");
  *state = crypto_alloc(keys, false);
  return MIR_OK;
}
