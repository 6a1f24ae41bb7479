/*
 * The node: module table, per-module FIFO queues, the inbox for active modules, and the
 * dispatcher loop (phases described in node.h).
 *
 * Threads and locks. The module queues, the round-robin cursor and every module's state belong
 * to the dispatcher (the node's thread in normal mode, the caller of mir_node_step in manual and
 * debug mode). Active modules' threads only touch the inbox. One mutex (node->lock) guards the
 * inbox, the buffered-event accounting, the pause flag, the lifecycle state and the counters
 * that other threads read; the dispatcher takes it once per batch.
 *
 * Backpressure. buffered = events in the inbox + events in module queues. A push that leaves
 * buffered above pause_threshold pauses input; pushers then block until the dispatcher has
 * brought buffered down to resume_threshold. Each active thread can therefore add at most one
 * list beyond the threshold, which bounds memory. Injected events and passive outputs are not
 * throttled: throttling the dispatcher's own output would deadlock it.
 */
#include "mir/node.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/lock.h"
#include "mir/log.h"
#include "mir/metrics.h"
#include "mir/registry.h"

#define NODE_UNKNOWN_LOGGED_MAX 32

typedef struct node_module {
  char id[MIR_MODULE_ID_MAX];
  size_t id_len;
  const mir_module_ops *ops;
  void *state;
  mir_event_list queue; /* dispatcher-owned */
  bool started;         /* active module whose start() succeeded */
  mir_metrics *set;     /* the node's set for this module, below the node's root */
  mir_counter *events, *batches, *busy_ns;
  mir_gauge *queued; /* published copy of queue.len */
} node_module;

struct mir_inbox {
  mir_node *node;
};

typedef enum node_state { NODE_CREATED, NODE_RUNNING, NODE_STOPPING, NODE_STOPPED } node_state;

struct mir_node {
  char *id;
  mir_node_config cfg;
  node_module modules[MIR_NODE_MODULES_MAX];
  size_t n_modules;
  mir_interceptor interceptor;
  struct mir_inbox inbox;

  mir_metrics *metrics; /* root of the node's metric tree */
  mir_lock lock;
  pthread_cond_t work_cv;    /* dispatcher: new input or stop */
  pthread_cond_t resume_cv;  /* pushers: input resumed or stop */
  pthread_cond_t exit_cv;    /* waiters: dispatcher exited */
  pthread_mutex_t stop_lock; /* serialises mir_node_stop */

  /* under lock */
  mir_event_list inbox_list;
  size_t queued_total; /* events in module queues (published by the dispatcher) */
  size_t buffered_max;
  bool paused;
  uint64_t paused_since_ns;
  node_state state;
  bool exited; /* dispatcher finished (error or stop) */
  mir_err exit_err;
  char last_error[512];

  /* dispatcher-owned */
  size_t rr;
  pthread_t thread;
  bool thread_started;
  char unknown_logged[NODE_UNKNOWN_LOGGED_MAX][MIR_MODULE_ID_MAX];
  size_t n_unknown_logged;
  char stray_logged[MIR_NODE_MODULES_MAX][MIR_MODULE_ID_MAX];
  size_t n_stray_logged;

  /* metrics of the root set; updated under lock, read by anyone */
  mir_counter *pauses, *paused_ns, *dropped_unknown, *dropped_stray;
  mir_gauge *inbox_depth, *buffered, *buffered_max_g;
};

/* Events node_route dropped, added to the node's counters under its lock. */
typedef struct node_drops {
  size_t unknown; /* no such module */
  size_t stray;   /* a peer message for a module that takes none */
} node_drops;

void mir_node_config_default(mir_node_config *cfg) {
  cfg->max_batch = 512;
  cfg->pause_threshold = 8192;
  cfg->resume_threshold = 6144;
  cfg->mode = MIR_NODE_NORMAL;
}

static mir_err node_config_check(const mir_node_config *cfg) {
  if (cfg->max_batch == 0) return mir_error_set(MIR_EINVAL, "node config: max_batch must be > 0");
  if (cfg->pause_threshold == 0) {
    return mir_error_set(MIR_EINVAL, "node config: pause_threshold must be > 0");
  }
  if (cfg->resume_threshold > cfg->pause_threshold) {
    return mir_error_set(MIR_EINVAL,
                         "node config: resume_threshold (%zu) exceeds pause_threshold (%zu)",
                         cfg->resume_threshold, cfg->pause_threshold);
  }
  if (cfg->mode > MIR_NODE_DEBUG) return mir_error_set(MIR_EINVAL, "node config: unknown mode");
  return MIR_OK;
}

/* Registers the node's own metrics in a new root set named after the node. */
static void node_metrics_init(mir_node *n) {
  mir_metrics *m = n->metrics = mir_metrics_new(n->id);
  n->pauses = mir_metrics_counter(m, "mir_node_backpressure_pauses_total",
                                  "Times the node paused its active modules' input.", NULL, NULL);
  n->paused_ns = mir_metrics_counter(m, "mir_node_backpressure_paused_seconds_total",
                                     "Time the node's active input was paused.", NULL, NULL);
  const char *drop_help = "Events the node dropped, by reason.";
  n->dropped_unknown = mir_metrics_counter(m, "mir_node_dropped_events_total", drop_help, "reason",
                                           "unknown_module");
  n->dropped_stray =
      mir_metrics_counter(m, "mir_node_dropped_events_total", drop_help, "reason", "stray_message");
  n->inbox_depth = mir_metrics_gauge(m, "mir_node_inbox_depth",
                                     "Events in the node's inbox, not yet routed.", NULL, NULL);
  n->buffered = mir_metrics_gauge(m, "mir_node_buffered_events",
                                  "Events in the inbox and the module queues.", NULL, NULL);
  n->buffered_max_g = mir_metrics_gauge_max(m, "mir_node_buffered_events_max",
                                            "High-water mark of buffered events.", NULL, NULL);
}

/* Registers the node loop's per-module metrics in a set named after the module, below the root,
 * and hangs the module's own set below that. */
static void node_module_metrics_init(mir_node *node, node_module *m) {
  mir_metrics *s = m->set = mir_metrics_new(m->id);
  mir_metrics_attach(node->metrics, s);
  m->events =
      mir_metrics_counter(s, "mir_module_events_total", "Events the module applied.", NULL, NULL);
  m->batches = mir_metrics_counter(s, "mir_module_batches_total",
                                   "Batches (apply calls) the module ran.", NULL, NULL);
  m->busy_ns = mir_metrics_counter(s, "mir_module_busy_seconds_total",
                                   "CPU time the dispatcher spent in the module's apply and the "
                                   "interceptor.",
                                   NULL, NULL);
  m->queued =
      mir_metrics_gauge(s, "mir_module_queue_depth", "Events queued for the module.", NULL, NULL);
  mir_metrics *own = m->ops->metrics != NULL ? m->ops->metrics(m->state) : NULL;
  if (own != NULL) mir_metrics_attach(s, own);
}

mir_metrics *mir_node_metrics(mir_node *node) {
  return node->metrics;
}

mir_err mir_node_new(const char *node_id, const mir_node_config *cfg, mir_node **out) {
  mir_node_config defaults;
  mir_node_config_default(&defaults);
  if (cfg == NULL) cfg = &defaults;
  mir_err err = node_config_check(cfg);
  if (err != MIR_OK) return err;
  if (node_id == NULL || node_id[0] == '\0' || strlen(node_id) >= MIR_MODULE_ID_MAX) {
    return mir_error_set(MIR_EINVAL, "node id must have 1 to %d characters", MIR_MODULE_ID_MAX - 1);
  }
  mir_registry_add_framework();
  mir_node *n = mir_xcalloc(1, sizeof *n);
  n->id = mir_xstrdup(node_id);
  n->cfg = *cfg;
  n->inbox.node = n;
  node_metrics_init(n);
  mir_lock_init(&n->lock, n->metrics, "node_inbox");
  pthread_mutex_init(&n->stop_lock, NULL);
  pthread_cond_init(&n->work_cv, NULL);
  pthread_cond_init(&n->resume_cv, NULL);
  pthread_cond_init(&n->exit_cv, NULL);
  n->state = NODE_CREATED;
  *out = n;
  return MIR_OK;
}

mir_err mir_node_add_module(mir_node *node, const char *id, const mir_module_ops *ops,
                            void *state) {
  mir_err err = MIR_OK;
  if (node->state != NODE_CREATED) {
    err = mir_error_set(MIR_EINVAL, "module %s added after start", id);
  } else if (!mir_module_id_valid(id) || strchr(id, '/') != NULL) {
    err = mir_error_set(MIR_EINVAL, "invalid top-level module id '%.64s'", id);
  } else if (ops == NULL || ops->apply == NULL ||
             (ops->kind == MIR_MODULE_ACTIVE && (ops->start == NULL || ops->stop == NULL))) {
    err = mir_error_set(MIR_EINVAL, "module %s: incomplete ops table", id);
  } else if (node->n_modules == MIR_NODE_MODULES_MAX) {
    err = mir_error_set(MIR_EFULL, "module %s: more than %d modules", id, MIR_NODE_MODULES_MAX);
  } else {
    for (size_t i = 0; i < node->n_modules; i++) {
      if (strcmp(node->modules[i].id, id) == 0) {
        err = mir_error_set(MIR_EEXIST, "module %s added twice", id);
      }
    }
  }
  if (err != MIR_OK) {
    if (ops != NULL && ops->destroy != NULL) ops->destroy(state);
    return err;
  }
  node_module *m = &node->modules[node->n_modules++];
  memset(m, 0, sizeof *m);
  strcpy(m->id, id);
  m->id_len = strlen(id);
  m->ops = ops;
  m->state = state;
  node_module_metrics_init(node, m);
  return MIR_OK;
}

void mir_node_set_interceptor(mir_node *node, const mir_interceptor *interceptor) {
  if (interceptor) {
    node->interceptor = *interceptor;
  } else {
    memset(&node->interceptor, 0, sizeof node->interceptor);
  }
}

const char *mir_node_id(const mir_node *node) {
  return node->id;
}
size_t mir_node_module_count(const mir_node *node) {
  return node->n_modules;
}
const char *mir_node_module_id(const mir_node *node, size_t i) {
  return i < node->n_modules ? node->modules[i].id : NULL;
}
size_t mir_node_module_queued(const mir_node *node, size_t i) {
  return i < node->n_modules ? node->modules[i].queue.len : 0;
}

const char *mir_node_last_error(const mir_node *node) {
  return node->last_error;
}

/* ---- routing ---- */

static node_module *node_find_module(mir_node *node, const char *dest) {
  size_t top = mir_module_id_top_len(dest);
  for (size_t i = 0; i < node->n_modules; i++) {
    node_module *m = &node->modules[i];
    if (m->id_len == top && memcmp(m->id, dest, top) == 0) return m;
  }
  return NULL;
}

/* Logs the first event for each unknown destination (up to a bound), so a misrouted protocol is
 * visible without a peer being able to flood the log. Dispatcher only. */
static void node_log_unknown(mir_node *node, const mir_event *ev) {
  for (size_t i = 0; i < node->n_unknown_logged; i++) {
    if (strcmp(node->unknown_logged[i], ev->dest) == 0) return;
  }
  if (node->n_unknown_logged == NODE_UNKNOWN_LOGGED_MAX) return;
  strcpy(node->unknown_logged[node->n_unknown_logged++], ev->dest);
  mir_log(
      MIR_LOG_WARN, node->id, "dropping %s for unknown module '%s' (from '%s'); logged once%s",
      mir_event_type_name(ev), ev->dest, ev->src,
      node->n_unknown_logged == NODE_UNKNOWN_LOGGED_MAX ? "; further destinations not logged" : "");
}

/* Logs the first peer message for each module that takes none (one line per module, so a peer
 * cannot flood the log). Dispatcher only. */
static void node_log_stray(mir_node *node, const node_module *m, const mir_event *ev) {
  for (size_t i = 0; i < node->n_stray_logged; i++) {
    if (strcmp(node->stray_logged[i], m->id) == 0) return;
  }
  if (node->n_stray_logged == MIR_NODE_MODULES_MAX) return;
  strcpy(node->stray_logged[node->n_stray_logged++], m->id);
  mir_log(MIR_LOG_WARN, node->id,
          "dropping a peer message for module '%s', which takes none (to '%s', from '%s'); logged "
          "once",
          m->id, ev->dest, ev->src);
}

/* Moves every event of list into its module's queue; frees and counts in *drops events for
 * unknown modules and peer messages for modules that take none. Dispatcher only. */
static void node_route(mir_node *node, mir_event_list *list, node_drops *drops) {
  mir_event *ev;
  while ((ev = mir_event_list_pop(list)) != NULL) {
    node_module *m = node_find_module(node, ev->dest);
    if (m == NULL) {
      node_log_unknown(node, ev);
      mir_event_free(ev);
      drops->unknown++;
    } else if (!m->ops->peer_messages && mir_event_is(ev, &mir__message_received__descriptor)) {
      node_log_stray(node, m, ev);
      mir_event_free(ev);
      drops->stray++;
    } else {
      mir_event_list_push(&m->queue, ev);
    }
  }
}

static void node_add_drops_locked(mir_node *node, const node_drops *drops) {
  if (drops->unknown) mir_counter_add(node->dropped_unknown, drops->unknown);
  if (drops->stray) mir_counter_add(node->dropped_stray, drops->stray);
}

/* ---- applying ---- */

/* Hands batch to the interceptor and the module; frees what the module left in batch. On error
 * records the node's exit error. Dispatcher only; called without node->lock. */
static mir_err node_apply(mir_node *node, node_module *m, mir_event_list *batch,
                          mir_event_list *out) {
  mir_err err = MIR_OK;
  mir_error_clear();
  if (node->interceptor.intercept != NULL) {
    err = node->interceptor.intercept(node->interceptor.user_data, node->id, m->id, batch);
    if (err != MIR_OK) {
      snprintf(node->last_error, sizeof node->last_error, "interceptor failed at module %s: %s: %s",
               m->id, mir_strerror(err), mir_error_detail());
    }
  }
  if (err == MIR_OK) {
    err = m->ops->apply(m->state, batch, out);
    if (err != MIR_OK) {
      snprintf(node->last_error, sizeof node->last_error, "module %s (%s) failed: %s: %s", m->id,
               m->ops->name ? m->ops->name : "?", mir_strerror(err), mir_error_detail());
    }
  }
  mir_event_list_free(batch);
  return err;
}

/* Picks the next module with queued events after the round-robin cursor; NULL if none. */
static node_module *node_next_ready(mir_node *node) {
  for (size_t k = 0; k < node->n_modules; k++) {
    size_t i = (node->rr + k) % node->n_modules;
    if (node->modules[i].queue.len > 0) {
      node->rr = i + 1;
      return &node->modules[i];
    }
  }
  return NULL;
}

/* Updates the buffered gauges and the high-water mark. Caller holds node->lock. */
static void node_note_buffered_locked(mir_node *node, size_t buffered) {
  if (buffered > node->buffered_max) {
    node->buffered_max = buffered;
    mir_gauge_set(node->buffered_max_g, (int64_t)buffered);
  }
  mir_gauge_set(node->buffered, (int64_t)buffered);
  mir_gauge_set(node->inbox_depth, (int64_t)node->inbox_list.len);
}

/* Publishes dispatcher-side counts and resumes input if buffered fell low enough. Caller holds
 * node->lock. */
static void node_publish_locked(mir_node *node) {
  size_t total = 0;
  for (size_t i = 0; i < node->n_modules; i++) {
    mir_gauge_set(node->modules[i].queued, (int64_t)node->modules[i].queue.len);
    total += node->modules[i].queue.len;
  }
  node->queued_total = total;
  size_t buffered = total + node->inbox_list.len;
  node_note_buffered_locked(node, buffered);
  if (node->paused && buffered <= node->cfg.resume_threshold) {
    node->paused = false;
    mir_counter_add(node->paused_ns, mir_now_ns() - node->paused_since_ns);
    pthread_cond_broadcast(&node->resume_cv);
  }
}

/* Records the first error and starts stopping. Caller holds node->lock. */
static void node_fail_locked(mir_node *node, mir_err err) {
  if (node->exit_err == MIR_OK) node->exit_err = err;
  if (node->state == NODE_RUNNING) node->state = NODE_STOPPING;
  pthread_cond_broadcast(&node->resume_cv);
  pthread_cond_broadcast(&node->work_cv);
}

/* CPU time of the calling thread. Busy time is CPU time, not elapsed time: on a machine with
 * more runnable threads than cores the dispatcher is often preempted inside apply, and elapsed
 * time would then charge a module for other threads' work (busy times summing to several times
 * the dispatcher's CPU time). One clock read per batch, not per event. */
static uint64_t node_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One dispatcher iteration without waiting: route the inbox, apply one batch (of `only`, or of
 * the next ready module in round-robin order), route the output. *applied = events applied.
 * Returns the module's error, or MIR_ESTOPPED once the node is no longer running. */
static mir_err node_iterate(mir_node *node, node_module *only, size_t *applied) {
  mir_event_list incoming = MIR_EVENT_LIST_INIT;
  mir_lock_acquire(&node->lock);
  /* The drained events are on their way to the queues: count them there now, or pushers would
   * see neither count and overshoot the pause threshold. */
  node->queued_total += node->inbox_list.len;
  mir_event_list_concat(&incoming, &node->inbox_list);
  mir_lock_release(&node->lock);

  node_drops drops = {0, 0};
  node_route(node, &incoming, &drops);
  node_module *m = only ? only : node_next_ready(node);
  mir_err err = MIR_OK;
  size_t n = 0;
  uint64_t busy = 0;
  if (m != NULL && m->queue.len > 0) {
    mir_event_list batch = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_take_front(&m->queue, node->cfg.max_batch, &batch);
    n = batch.len;
    uint64_t t0 = node_cpu_ns();
    err = node_apply(node, m, &batch, &out);
    busy = node_cpu_ns() - t0;
    if (err == MIR_OK) {
      node_route(node, &out, &drops);
    } else {
      mir_event_list_free(&out);
    }
  }

  mir_lock_acquire(&node->lock);
  node_add_drops_locked(node, &drops);
  if (n > 0) {
    mir_counter_add(m->events, n);
    mir_counter_inc(m->batches);
    mir_counter_add(m->busy_ns, busy);
  }
  if (err != MIR_OK) node_fail_locked(node, err);
  node_publish_locked(node);
  if (err == MIR_OK && node->state != NODE_RUNNING) err = MIR_ESTOPPED;
  mir_lock_release(&node->lock);
  *applied = n;
  return err;
}

static void *node_dispatcher(void *arg) {
  pthread_setname_np(pthread_self(), "mir-node"); /* named in top, perf and debuggers */
  mir_node *node = arg;
  for (;;) {
    size_t applied = 0;
    if (node_iterate(node, NULL, &applied) != MIR_OK) break;
    if (applied > 0) continue;
    mir_lock_acquire(&node->lock);
    /* Nothing was ready: sleep until input arrives or the node stops. */
    while (node->state == NODE_RUNNING && node->inbox_list.len == 0 && node->queued_total == 0) {
      pthread_cond_wait(&node->work_cv, &node->lock.mu);
    }
    bool stop = node->state != NODE_RUNNING;
    mir_lock_release(&node->lock);
    if (stop) break;
  }
  mir_lock_acquire(&node->lock);
  node->exited = true;
  pthread_cond_broadcast(&node->exit_cv);
  mir_lock_release(&node->lock);
  return NULL;
}

/* ---- lifecycle ---- */

/* Stops the active modules that were started, in reverse order. Caller is the stopper. */
static void node_stop_active(mir_node *node) {
  for (size_t i = node->n_modules; i-- > 0;) {
    node_module *m = &node->modules[i];
    if (m->started) {
      m->ops->stop(m->state);
      m->started = false;
    }
  }
}

mir_err mir_node_start(mir_node *node) {
  if (node->state != NODE_CREATED)
    return mir_error_set(MIR_EINVAL, "node %s started twice", node->id);
  if (node->n_modules == 0) return mir_error_set(MIR_EINVAL, "node %s has no modules", node->id);
  if (node->cfg.mode != MIR_NODE_DEBUG) {
    for (size_t i = 0; i < node->n_modules; i++) {
      mir_event_list_push(&node->modules[i].queue, mir_event_init(node->modules[i].id));
    }
  }
  mir_lock_acquire(&node->lock);
  node->state = NODE_RUNNING;
  node_publish_locked(node);
  mir_lock_release(&node->lock);
  if (node->cfg.mode != MIR_NODE_DEBUG) {
    for (size_t i = 0; i < node->n_modules; i++) {
      node_module *m = &node->modules[i];
      if (m->ops->kind != MIR_MODULE_ACTIVE) continue;
      mir_err err = m->ops->start(m->state, &node->inbox);
      if (err != MIR_OK) {
        snprintf(node->last_error, sizeof node->last_error, "module %s failed to start: %s: %s",
                 m->id, mir_strerror(err), mir_error_detail());
        mir_lock_acquire(&node->lock);
        node_fail_locked(node, err);
        mir_lock_release(&node->lock);
        node_stop_active(node);
        return err;
      }
      m->started = true;
    }
  }
  if (node->cfg.mode == MIR_NODE_NORMAL) {
    if (pthread_create(&node->thread, NULL, node_dispatcher, node) != 0) {
      mir_lock_acquire(&node->lock);
      node_fail_locked(node, MIR_ENOMEM);
      mir_lock_release(&node->lock);
      node_stop_active(node);
      return mir_error_set(MIR_ENOMEM, "cannot create the dispatcher thread");
    }
    node->thread_started = true;
  }
  return MIR_OK;
}

mir_err mir_node_inject(mir_node *node, mir_event_list *events) {
  mir_lock_acquire(&node->lock);
  if (node->state == NODE_STOPPING || node->state == NODE_STOPPED) {
    mir_lock_release(&node->lock);
    mir_event_list_free(events);
    return MIR_ESTOPPED;
  }
  mir_event_list_concat(&node->inbox_list, events);
  node_note_buffered_locked(node, node->inbox_list.len + node->queued_total);
  pthread_cond_signal(&node->work_cv);
  mir_lock_release(&node->lock);
  return MIR_OK;
}

/* Appends events to the inbox. Caller holds node->lock and has checked the state. */
static void inbox_append_locked(mir_node *node, mir_event_list *events) {
  mir_event_list_concat(&node->inbox_list, events);
  size_t buffered = node->inbox_list.len + node->queued_total;
  node_note_buffered_locked(node, buffered);
  if (buffered > node->cfg.pause_threshold && !node->paused) {
    node->paused = true;
    node->paused_since_ns = mir_now_ns();
    mir_counter_inc(node->pauses);
  }
  pthread_cond_signal(&node->work_cv);
}

mir_err mir_inbox_push(mir_inbox *inbox, mir_event_list *events) {
  mir_node *node = inbox->node;
  mir_lock_acquire(&node->lock);
  while (node->paused && node->state == NODE_RUNNING) {
    pthread_cond_wait(&node->resume_cv, &node->lock.mu);
  }
  if (node->state != NODE_RUNNING) {
    mir_lock_release(&node->lock);
    mir_event_list_free(events);
    return MIR_ESTOPPED;
  }
  inbox_append_locked(node, events);
  mir_lock_release(&node->lock);
  return MIR_OK;
}

mir_err mir_inbox_try_push(mir_inbox *inbox, mir_event_list *events) {
  mir_node *node = inbox->node;
  mir_err err = MIR_OK;
  mir_lock_acquire(&node->lock);
  if (node->state != NODE_RUNNING) {
    err = MIR_ESTOPPED;
  } else if (node->paused) {
    err = MIR_EFULL;
  } else {
    inbox_append_locked(node, events);
  }
  mir_lock_release(&node->lock);
  if (err == MIR_ESTOPPED) mir_event_list_free(events);
  return err;
}

mir_err mir_inbox_push_one(mir_inbox *inbox, mir_event *ev) {
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, ev);
  return mir_inbox_push(inbox, &l);
}

mir_err mir_node_wait(mir_node *node, uint64_t timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)(timeout_ms / 1000);
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  mir_lock_acquire(&node->lock);
  while (!node->exited && node->state != NODE_STOPPED) {
    if (timeout_ms == 0) {
      pthread_cond_wait(&node->exit_cv, &node->lock.mu);
    } else if (pthread_cond_timedwait(&node->exit_cv, &node->lock.mu, &deadline) != 0) {
      break;
    }
  }
  bool done = node->exited || node->state == NODE_STOPPED;
  mir_err err = done ? node->exit_err : MIR_ETIMEDOUT;
  mir_lock_release(&node->lock);
  return err;
}

mir_err mir_node_stop(mir_node *node) {
  pthread_mutex_lock(&node->stop_lock);
  mir_lock_acquire(&node->lock);
  if (node->state == NODE_RUNNING) node->state = NODE_STOPPING;
  pthread_cond_broadcast(&node->resume_cv);
  pthread_cond_broadcast(&node->work_cv);
  mir_lock_release(&node->lock);
  if (node->thread_started) {
    pthread_join(node->thread, NULL);
    node->thread_started = false;
  }
  node_stop_active(node);
  mir_lock_acquire(&node->lock);
  node->state = NODE_STOPPED;
  node->exited = true;
  pthread_cond_broadcast(&node->exit_cv);
  mir_err err = node->exit_err;
  mir_lock_release(&node->lock);
  pthread_mutex_unlock(&node->stop_lock);
  return err;
}

void mir_node_free(mir_node *node) {
  if (node == NULL) return;
  mir_node_stop(node);
  for (size_t i = 0; i < node->n_modules; i++) {
    node_module *m = &node->modules[i];
    mir_event_list_free(&m->queue);
    mir_metrics_free(m->set); /* detaches the module's own set before destroy frees it */
    if (m->ops->destroy != NULL) m->ops->destroy(m->state);
  }
  mir_event_list_free(&node->inbox_list);
  mir_lock_fini(&node->lock);
  mir_metrics_free(node->metrics);
  pthread_mutex_destroy(&node->stop_lock);
  pthread_cond_destroy(&node->work_cv);
  pthread_cond_destroy(&node->resume_cv);
  pthread_cond_destroy(&node->exit_cv);
  free(node->id);
  free(node);
}

/* ---- manual and debug modes ---- */

mir_err mir_node_step(mir_node *node, size_t *applied) {
  *applied = 0;
  if (node->cfg.mode != MIR_NODE_MANUAL)
    return mir_error_set(MIR_EINVAL, "mir_node_step needs manual mode");
  return node_iterate(node, NULL, applied);
}

mir_err mir_node_step_module(mir_node *node, size_t module_index, size_t *applied) {
  *applied = 0;
  if (node->cfg.mode != MIR_NODE_MANUAL || module_index >= node->n_modules) {
    return mir_error_set(MIR_EINVAL, "mir_node_step_module needs manual mode and a valid index");
  }
  return node_iterate(node, &node->modules[module_index], applied);
}

mir_err mir_node_debug_apply(mir_node *node, mir_event_list *in, mir_event_list *out) {
  if (node->cfg.mode != MIR_NODE_DEBUG || node->state != NODE_RUNNING) {
    mir_event_list_free(in);
    return mir_error_set(MIR_EINVAL, "mir_node_debug_apply needs a started debug-mode node");
  }
  node_drops drops = {0, 0};
  node_route(node, in, &drops);
  mir_err err = MIR_OK;
  node_module *m;
  while (err == MIR_OK && (m = node_next_ready(node)) != NULL) {
    mir_event_list batch = MIR_EVENT_LIST_INIT, produced = MIR_EVENT_LIST_INIT;
    mir_event_list_take_front(&m->queue, node->cfg.max_batch, &batch);
    size_t n = batch.len;
    err = node_apply(node, m, &batch, &produced);
    mir_event_list_concat(out, &produced);
    mir_counter_add(m->events, n);
    mir_counter_inc(m->batches);
  }
  mir_lock_acquire(&node->lock);
  node_add_drops_locked(node, &drops);
  if (err != MIR_OK) node_fail_locked(node, err);
  node_publish_locked(node);
  mir_lock_release(&node->lock);
  return err;
}
