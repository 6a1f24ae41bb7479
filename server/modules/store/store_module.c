/*
 * The store module (store_module.h): StoreWrites become batches of the store's writer thread; a
 * release thread hands each write's then events to the node once the write is durable.
 *
 * apply (dispatcher) checks a write, submits its ops as one batch, drops the ops (the batch has
 * its own copy) and queues {ticket, the write with only its then events} in a FIFO. The store's
 * writer thread calls stm_written after every group write with the highest ticket written, and
 * once when writing fails; the callback only records that and signals the release thread: it
 * runs on the writer, which must never wait for the node (else apply, blocked in
 * mir_store_submit on a full store queue, and the writer would wait for each other). The release
 * thread takes the durable entries from the head of the FIFO, unpacks their then events and
 * pushes them, in FIFO order, into the inbox, where it may block under backpressure.
 *
 * A write's ticket is its batch's; a barrier (no ops) takes the ticket of the module's last write
 * before it, so it is released right after that write, and at once if there is none.
 *
 * Invariants (under mu): tickets in the FIFO never decrease; `written` only grows; once `failed`
 * is set nothing more is pushed into the inbox but the one StoreFailed event that stops the node.
 */
#include "store_module.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/lock.h"
#include "mir/log.h"
#include "mir/storage.h"
#include "mir/store.pb-c.h"

#define STM_LOG "store-module"
/* Most then events pushed into the inbox at once (one write's events always go together): the
 * node lets each active thread overshoot its pause threshold by one list. */
#define STM_RELEASE_EVENTS_MAX 1024
#define STM_REASON_MAX 256

typedef struct stm_entry {
  uint64_t ticket;    /* released once the store has written this ticket */
  Mir__StoreWrite *w; /* owned; its ops already dropped: only the then events are left */
  struct stm_entry *next;
} stm_entry;

typedef struct stm {
  mir_store *store; /* borrowed */
  int cf;
  size_t pending_max;
  uint64_t last_ticket; /* dispatcher only: the module's latest write */

  mir_lock mu;       /* "store_pending" */
  pthread_cond_t cv; /* release thread: the head became durable, a failure, or stopping */
  pthread_t thread;
  bool started, stopping;
  mir_inbox *inbox;
  char id[MIR_MODULE_ID_MAX]; /* the module's own id, from the first event it applies */
  stm_entry *head, *tail;
  size_t pending;
  uint64_t written;  /* highest ticket the store reported written */
  bool store_failed; /* the store reported a failed write */
  bool failed;       /* nothing is released any more */

  /* Metrics (owned set, through ops.metrics; the store's set hangs below it). */
  mir_metrics *metrics;
  mir_counter *writes, *barriers, *ops, *bytes, *released;
  mir_gauge *pending_g;
} stm;

static void stm_entry_free(stm_entry *e) {
  if (e->w != NULL) protobuf_c_message_free_unpacked(&e->w->base, NULL);
  free(e);
}

/* ---- the release thread ---- */

/* The store's written callback, on its writer thread: record and signal, nothing else. */
static void stm_written(void *user, uint64_t ticket) {
  stm *m = user;
  bool failed = mir_store_status(m->store, NULL, 0) != MIR_OK;
  mir_lock_acquire(&m->mu);
  if (ticket > m->written) m->written = ticket;
  if (failed) m->store_failed = true;
  pthread_cond_signal(&m->cv);
  mir_lock_release(&m->mu);
}

/* Sends the module a StoreFailed event, so that its apply stops the node on the dispatcher.
 * reason is borrowed. Release thread, without mu. */
static void stm_report(stm *m, const char *id, const char *reason, bool bad_event) {
  Mir__StoreFailed *f = mir_xmalloc(sizeof(*f));
  mir__store_failed__init(f);
  f->reason = mir_xstrdup(reason);
  f->bad_event = bad_event;
  /* MIR_ESTOPPED: the node is stopping anyway; the event is freed. */
  (void)mir_inbox_push_one(m->inbox, mir_event_new(id, id, &f->base));
}

/* True if the release thread must report the store's failure: it needs the module's id to
 * address itself, which apply learns from the first event (Init, queued before start). */
static bool stm_failure_due_locked(const stm *m) {
  return m->store_failed && !m->failed && m->id[0] != '\0';
}

static bool stm_head_durable_locked(const stm *m) {
  return m->head != NULL && m->head->ticket <= m->written;
}

/* Unlinks the durable entries at the head of the FIFO, at most STM_RELEASE_EVENTS_MAX events'
 * worth (but at least one entry), as a list. Caller holds mu; the head is durable. */
static stm_entry *stm_take_durable_locked(stm *m) {
  stm_entry *first = m->head, *last = first;
  size_t events = first->w->n_then, n = 1;
  while (last->next != NULL && last->next->ticket <= m->written &&
         events + last->next->w->n_then <= STM_RELEASE_EVENTS_MAX) {
    last = last->next;
    events += last->w->n_then;
    n++;
  }
  m->head = last->next;
  if (m->head == NULL) m->tail = NULL;
  last->next = NULL;
  m->pending -= n;
  mir_gauge_set(m->pending_g, (int64_t)m->pending);
  return first;
}

/* Unpacks the then events of entries (a list, freed here) into out, in order. On a bad event
 * returns its error with detail (and out holds what came before it). */
static mir_err stm_unpack(stm_entry *entries, mir_event_list *out) {
  mir_err err = MIR_OK;
  for (stm_entry *e = entries, *next; e != NULL; e = next) {
    next = e->next;
    if (err == MIR_OK) err = mir_storage_release(e->w, out);
    stm_entry_free(e);
  }
  return err;
}

static void *stm_release_main(void *arg) {
  pthread_setname_np(pthread_self(), "mir-store-rel"); /* named in top, perf and debuggers */
  stm *m = arg;
  char id[MIR_MODULE_ID_MAX];
  mir_lock_acquire(&m->mu);
  for (;;) {
    while (!m->stopping && !m->failed && !stm_failure_due_locked(m) &&
           !stm_head_durable_locked(m)) {
      pthread_cond_wait(&m->cv, &m->mu.mu);
    }
    if (m->stopping || m->failed) break; /* failed: apply returned an error, the node stops */
    if (stm_failure_due_locked(m)) {
      /* Durable or not, nothing is released once a write failed: the node is about to stop. */
      m->failed = true;
      memcpy(id, m->id, sizeof(id));
      mir_lock_release(&m->mu);
      char reason[STM_REASON_MAX] = "unknown reason";
      (void)mir_store_status(m->store, reason, sizeof(reason));
      stm_report(m, id, reason, false);
      mir_lock_acquire(&m->mu);
      break;
    }
    stm_entry *entries = stm_take_durable_locked(m);
    memcpy(id, m->id, sizeof(id));
    mir_lock_release(&m->mu);

    mir_event_list out = MIR_EVENT_LIST_INIT;
    mir_err err = stm_unpack(entries, &out);
    if (err != MIR_OK) {
      char reason[STM_REASON_MAX];
      snprintf(reason, sizeof(reason), "cannot decode a then event: %s", mir_error_detail());
      mir_event_list_free(&out);
      mir_lock_acquire(&m->mu);
      m->failed = true;
      mir_lock_release(&m->mu);
      stm_report(m, id, reason, true);
      mir_lock_acquire(&m->mu);
      break;
    }
    size_t n = out.len;
    err = n > 0 ? mir_inbox_push(m->inbox, &out) : MIR_OK;
    mir_event_list_free(&out); /* left there on MIR_ESTOPPED */
    mir_lock_acquire(&m->mu);
    if (err != MIR_OK) break; /* the node is stopping; stop() joins us */
    mir_counter_add(m->released, n);
  }
  mir_lock_release(&m->mu);
  return NULL;
}

/* ---- apply ---- */

/* The error that stops the node after a failed write: the store's path and reason. */
static mir_err stm_write_failed(const stm *m, const char *reason) {
  return mir_error_set(MIR_EIO,
                       "store %s: a write failed (%s); the replica stops rather than vote without "
                       "durability",
                       mir_store_path(m->store), reason);
}

static mir_err stm_store_failed(const stm *m) {
  char reason[STM_REASON_MAX] = "unknown reason";
  mir_err err = mir_store_status(m->store, reason, sizeof(reason));
  return err == MIR_OK ? MIR_OK : stm_write_failed(m, reason);
}

/* Frees the ops of w, which the store's batch has copied: a write waiting for durability keeps
 * only its then events. */
static void stm_drop_ops(Mir__StoreWrite *w) {
  for (size_t i = 0; i < w->n_ops; i++) protobuf_c_message_free_unpacked(&w->ops[i]->base, NULL);
  free(w->ops);
  w->ops = NULL;
  w->n_ops = 0;
}

/* Submits the ops of w (borrowed, checked) as one batch; *ticket receives its ticket. */
static mir_err stm_submit(stm *m, const Mir__StoreWrite *w, uint64_t *ticket) {
  mir_store_batch *b = mir_store_batch_new(m->store);
  for (size_t i = 0; i < w->n_ops; i++) {
    const Mir__StoreOp *op = w->ops[i];
    switch (op->kind) {
      case MIR__STORE_OP__KIND__PUT:
        mir_store_batch_put(b, m->cf, op->key.data, op->key.len, op->value.data, op->value.len);
        break;
      case MIR__STORE_OP__KIND__DELETE:
        mir_store_batch_delete(b, m->cf, op->key.data, op->key.len);
        break;
      case MIR__STORE_OP__KIND__DELETE_RANGE:
        mir_store_batch_delete_range(b, m->cf, op->key.data, op->key.len, op->end.data,
                                     op->end.len);
        break;
      default:
        MIR_UNREACHABLE(); /* mir_storage_check refused it */
    }
  }
  /* Blocks only while the store holds more than its queue_bytes_max bytes not yet written: the
   * intended backpressure from the disk to the dispatcher, and through it to the inbox. It cannot
   * deadlock: the writer thread never waits for the dispatcher (stm_written only signals). */
  mir_err err = mir_store_submit(m->store, b, ticket);
  if (err == MIR_EIO) return stm_store_failed(m);
  return err; /* MIR_ESTOPPED (the store is closing) keeps the store's detail */
}

static mir_err stm_on_write(stm *m, mir_event *ev) {
  Mir__StoreWrite *w = (Mir__StoreWrite *)ev->payload;
  mir_err err = mir_storage_check(w);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s (a write from %s)", detail, ev->src);
  }
  err = stm_store_failed(m);
  if (err != MIR_OK) return err;
  mir_lock_acquire(&m->mu);
  size_t pending = m->pending;
  mir_lock_release(&m->mu);
  if (w->n_then > 0 && pending >= m->pending_max) {
    return mir_error_set(MIR_EFULL, "store module %s: more than %zu writes waiting for the disk",
                         ev->dest, m->pending_max);
  }
  size_t n_ops = w->n_ops, bytes = mir_storage_bytes(w);
  if (n_ops > 0) {
    err = stm_submit(m, w, &m->last_ticket);
    if (err != MIR_OK) return err;
  }
  ev->payload = NULL; /* the write is ours now */
  stm_drop_ops(w);
  stm_entry *e = NULL;
  if (w->n_then > 0) {
    e = mir_xcalloc(1, sizeof(*e));
    e->ticket = m->last_ticket;
    e->w = w;
  } else {
    protobuf_c_message_free_unpacked(&w->base, NULL);
  }
  mir_lock_acquire(&m->mu);
  mir_counter_inc(m->writes);
  if (n_ops == 0) mir_counter_inc(m->barriers);
  mir_counter_add(m->ops, n_ops);
  mir_counter_add(m->bytes, bytes);
  if (e != NULL) {
    if (m->tail != NULL) {
      m->tail->next = e;
    } else {
      m->head = e;
    }
    m->tail = e;
    m->pending++;
    mir_gauge_set(m->pending_g, (int64_t)m->pending);
    if (m->head == e) pthread_cond_signal(&m->cv); /* it may be durable already */
  }
  mir_lock_release(&m->mu);
  return MIR_OK;
}

static mir_err stm_on_failed(const stm *m, const mir_event *ev) {
  const Mir__StoreFailed *f = (const Mir__StoreFailed *)ev->payload;
  const char *reason = f->reason != NULL && f->reason[0] != '\0' ? f->reason : "unknown reason";
  if (f->bad_event) return mir_error_set(MIR_EPROTO, "store module %s: %s", ev->dest, reason);
  return stm_write_failed(m, reason);
}

static mir_err stm_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out; /* then events go through the inbox, once durable */
  stm *m = state;
  if (m->id[0] == '\0' && in->head != NULL) {
    size_t len = mir_module_id_top_len(in->head->dest);
    mir_lock_acquire(&m->mu);
    memcpy(m->id, in->head->dest, len); /* len < MIR_MODULE_ID_MAX: the id is valid */
    m->id[len] = '\0';
    pthread_cond_signal(&m->cv); /* a failure may be waiting to be reported */
    mir_lock_release(&m->mu);
  }
  MIR_EVENT_LIST_FOREACH(in, ev) {
    mir_err err = MIR_OK;
    if (mir_event_is(ev, &mir__store_write__descriptor)) {
      err = stm_on_write(m, ev);
    } else if (mir_event_is(ev, &mir__init__descriptor)) {
      err = MIR_OK;
    } else if (mir_event_is(ev, &mir__store_failed__descriptor)) {
      err = stm_on_failed(m, ev);
    } else {
      err = mir_error_set(MIR_EINVAL, "store module %s: unexpected event type %s from %s", ev->dest,
                          mir_event_type_name(ev), ev->src);
    }
    if (err != MIR_OK) {
      mir_lock_acquire(&m->mu);
      m->failed = true; /* nothing is released after an error */
      pthread_cond_signal(&m->cv);
      mir_lock_release(&m->mu);
      return err;
    }
  }
  return MIR_OK;
}

/* ---- lifecycle ---- */

static mir_err stm_start(void *state, mir_inbox *inbox) {
  stm *m = state;
  if (m->started) return mir_error_set(MIR_EINVAL, "store module: started twice");
  m->inbox = inbox;
  if (pthread_create(&m->thread, NULL, stm_release_main, m) != 0) {
    return mir_error_set(MIR_EIO, "store module: cannot create its release thread");
  }
  m->started = true;
  return MIR_OK;
}

static void stm_stop(void *state) {
  stm *m = state;
  mir_lock_acquire(&m->mu);
  m->stopping = true;
  pthread_cond_broadcast(&m->cv);
  mir_lock_release(&m->mu);
  if (m->started) {
    pthread_join(m->thread, NULL);
    m->started = false;
  }
  /* Events still waiting for the disk (or for a failed store) are never released. */
  mir_lock_acquire(&m->mu);
  for (stm_entry *e = m->head, *next; e != NULL; e = next) {
    next = e->next;
    stm_entry_free(e);
  }
  m->head = m->tail = NULL;
  m->pending = 0;
  mir_gauge_set(m->pending_g, 0);
  mir_lock_release(&m->mu);
}

static void stm_destroy(void *state) {
  stm *m = state;
  if (m == NULL) return;
  stm_stop(m);
  /* Returns once the writer is not inside stm_written: m can go. */
  mir_store_set_written_cb(m->store, NULL, NULL);
  pthread_cond_destroy(&m->cv);
  mir_lock_fini(&m->mu);
  mir_metrics_free(m->metrics); /* detaches the store's set, which the store frees */
  free(m);
}

static mir_metrics *stm_metrics(void *state) {
  return ((stm *)state)->metrics;
}

const mir_module_ops mir_store_module_ops = {
    .name = "store",
    .kind = MIR_MODULE_ACTIVE,
    .apply = stm_apply,
    .start = stm_start,
    .stop = stm_stop,
    .destroy = stm_destroy,
    .metrics = stm_metrics,
    .peer_messages = false,
};

/* Registers the module's metrics in a new set, with the store's set below it. */
static void stm_metrics_init(stm *m) {
  mir_metrics *s = m->metrics = mir_metrics_new("store");
  m->writes = mir_metrics_counter(s, "mir_store_module_writes_total",
                                  "StoreWrite events applied (barriers included).", NULL, NULL);
  m->barriers = mir_metrics_counter(s, "mir_store_module_barriers_total",
                                    "StoreWrite events without operations.", NULL, NULL);
  m->ops = mir_metrics_counter(s, "mir_store_module_ops_total",
                               "Puts, deletes and range deletes submitted.", NULL, NULL);
  m->bytes = mir_metrics_counter(s, "mir_store_module_bytes_total",
                                 "Key and value bytes submitted.", NULL, NULL);
  m->released =
      mir_metrics_counter(s, "mir_store_module_released_total",
                          "Follow-up events released once their write was durable.", NULL, NULL);
  m->pending_g = mir_metrics_gauge(s, "mir_store_module_pending",
                                   "Writes whose follow-up events wait for the disk.", NULL, NULL);
  mir_metrics_attach(s, mir_store_metrics(m->store));
}

mir_err mir_store_module_new(const mir_store_module_config *cfg, void **state) {
  if (cfg == NULL || cfg->store == NULL) {
    return mir_error_set(MIR_EINVAL, "store module: no store");
  }
  int cf = cfg->cf != NULL ? mir_store_cf(cfg->store, cfg->cf) : -1;
  if (cf < 0) {
    return mir_error_set(MIR_EINVAL, "store module: store %s has no column family '%.32s'",
                         mir_store_path(cfg->store), cfg->cf != NULL ? cfg->cf : "(null)");
  }
  stm *m = mir_xcalloc(1, sizeof(*m));
  m->store = cfg->store;
  m->cf = cf;
  m->pending_max = cfg->pending_max != 0 ? cfg->pending_max : MIR_STORE_MODULE_PENDING_MAX_DEFAULT;
  stm_metrics_init(m);
  mir_lock_init(&m->mu, m->metrics, "store_pending");
  pthread_cond_init(&m->cv, NULL);
  mir_store_set_written_cb(m->store, stm_written, m);
  /* Tickets written before the callback was set (by other writers of the store) count too. */
  uint64_t written = mir_store_written(m->store);
  mir_lock_acquire(&m->mu);
  if (written > m->written) m->written = written;
  mir_lock_release(&m->mu);
  *state = m;
  return MIR_OK;
}
