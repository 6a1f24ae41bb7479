/*
 * The in-process transport (mir/net_local.h).
 *
 * A net is a table of endpoints, one per attached node, guarded by a read-write lock: senders
 * look destinations up under the read lock, attaching and detaching take the write lock, so an
 * endpoint is never freed while a sender is queuing into it. Each endpoint owns a bounded FIFO
 * of ready-made mir.MessageReceived events, guarded by its own mutex, and a delivery thread that
 * moves them into the node's inbox. The thread is the only party that may block (on the node's
 * backpressure); senders only ever take short locks, so apply() never waits for another node.
 *
 * Lock order: net->lock (read or write), then an endpoint's lock (the named lock
 * "net_local_queue"). Counters are registry cells (relaxed atomics) so that the sender's
 * dispatcher and the receiver's delivery thread update them without sharing a lock.
 *
 * Invariants: queue.len <= net->queue_max; an endpoint in state EP_STOPPED never gets a new
 * message; the delivery thread runs iff thread_started and it is joined before the endpoint is
 * detached or freed.
 */
#include "mir/net_local.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/lock.h"
#include "mir/log.h"

#define LOCAL_LOG "net-local"

typedef enum ep_state { EP_ATTACHED, EP_RUNNING, EP_STOPPED } ep_state;

struct mir_local_transport {
  mir_local_net *net;
  char node_id[MIR_MODULE_ID_MAX];

  mir_lock lock;        /* guards the fields down to thread_started */
  pthread_cond_t cv;    /* delivery thread: a message arrived or stop */
  mir_event_list queue; /* owned MessageReceived events, FIFO */
  size_t queued_max;
  ep_state state;
  mir_inbox *inbox;
  pthread_t thread;
  bool thread_started;

  /* Metrics (owned set, handed to the node through ops.metrics). The sending side counts in the
   * sender's set, the receiving side (delivered, dropped_at_stop, the queue) in the receiver's. */
  mir_metrics *metrics;
  mir_counter *sent, *delivered, *dropped_unknown, *dropped_stopped, *dropped_full,
      *dropped_invalid, *dropped_at_stop;
  mir_gauge *queue_depth, *queue_depth_max;
};

struct mir_local_net {
  pthread_rwlock_t lock;
  size_t queue_max;
  mir_local_transport *nodes[MIR_LOCAL_NET_NODES_MAX];
  size_t n_nodes;
};

mir_err mir_local_net_new(const mir_local_net_params *params, mir_local_net **out) {
  mir_local_net *net = mir_xcalloc(1, sizeof(*net));
  net->queue_max = params != NULL && params->queue_max != 0 ? params->queue_max
                                                            : MIR_LOCAL_NET_QUEUE_MAX_DEFAULT;
  pthread_rwlock_init(&net->lock, NULL);
  *out = net;
  return MIR_OK;
}

void mir_local_net_free(mir_local_net *net) {
  if (net == NULL) return;
  MIR_ASSERT(net->n_nodes == 0); /* transports point at their net */
  pthread_rwlock_destroy(&net->lock);
  free(net);
}

/* The endpoint attached as node_id, or NULL. Caller holds net->lock. */
static mir_local_transport *local_find(mir_local_net *net, const char *node_id) {
  for (size_t i = 0; i < net->n_nodes; i++) {
    if (strcmp(net->nodes[i]->node_id, node_id) == 0) return net->nodes[i];
  }
  return NULL;
}

/* Registers the transport's metrics in a new set. */
static void local_metrics_init(mir_local_transport *t) {
  static const char drop_help[] =
      "Messages the in-process transport dropped, by reason (unknown_destination, stopped: the "
      "destination's transport, queue_full, invalid: malformed SendMessage, at_stop: queued or "
      "refused when this transport stopped).";
  const char *drops = "mir_net_messages_dropped_total";
  mir_metrics *m = t->metrics = mir_metrics_new("net");
  t->sent =
      mir_metrics_counter(m, "mir_net_messages_sent_total",
                          "Messages queued for a destination (this node included).", NULL, NULL);
  t->delivered = mir_metrics_counter(m, "mir_net_messages_received_total",
                                     "Messages pushed into this node's inbox.", NULL, NULL);
  t->dropped_unknown = mir_metrics_counter(m, drops, drop_help, "reason", "unknown_destination");
  t->dropped_stopped = mir_metrics_counter(m, drops, drop_help, "reason", "stopped");
  t->dropped_full = mir_metrics_counter(m, drops, drop_help, "reason", "queue_full");
  t->dropped_invalid = mir_metrics_counter(m, drops, drop_help, "reason", "invalid");
  t->dropped_at_stop = mir_metrics_counter(m, drops, drop_help, "reason", "at_stop");
  t->queue_depth = mir_metrics_gauge(m, "mir_net_queue_depth",
                                     "Messages waiting in this node's receive queue.", NULL, NULL);
  t->queue_depth_max = mir_metrics_gauge_max(
      m, "mir_net_queue_depth_max", "Most messages ever waiting in the receive queue.", NULL, NULL);
}

mir_err mir_local_net_transport_new(mir_local_net *net, const char *node_id,
                                    mir_local_transport **out) {
  if (node_id == NULL || node_id[0] == '\0' || strlen(node_id) >= MIR_MODULE_ID_MAX) {
    return mir_error_set(MIR_EINVAL, "local net: node id must have 1 to %d characters",
                         MIR_MODULE_ID_MAX - 1);
  }
  mir_err err = MIR_OK;
  pthread_rwlock_wrlock(&net->lock);
  if (local_find(net, node_id) != NULL) {
    err = mir_error_set(MIR_EEXIST, "local net: node %s attached twice", node_id);
  } else if (net->n_nodes == MIR_LOCAL_NET_NODES_MAX) {
    err = mir_error_set(MIR_EFULL, "local net: more than %d nodes", MIR_LOCAL_NET_NODES_MAX);
  }
  if (err != MIR_OK) {
    pthread_rwlock_unlock(&net->lock);
    return err;
  }
  mir_local_transport *t = mir_xcalloc(1, sizeof(*t));
  t->net = net;
  strcpy(t->node_id, node_id);
  local_metrics_init(t);
  mir_lock_init(&t->lock, t->metrics, "net_local_queue");
  pthread_cond_init(&t->cv, NULL);
  mir_event_list_init(&t->queue);
  t->state = EP_ATTACHED;
  net->nodes[net->n_nodes++] = t;
  pthread_rwlock_unlock(&net->lock);
  *out = t;
  return MIR_OK;
}

/* ---- delivery ---- */

/* Moves queued messages into the node's inbox in batches of at most MIR_LOCAL_NET_PUSH_MAX,
 * until stop. The push blocks while the node has paused its input; a stopping node refuses it,
 * which frees the batch. */
static void *local_delivery_thread(void *arg) {
  pthread_setname_np(pthread_self(), "mir-net-local"); /* named in top, perf and debuggers */
  mir_local_transport *t = arg;
  mir_lock_acquire(&t->lock);
  for (;;) {
    while (t->queue.len == 0 && t->state == EP_RUNNING) pthread_cond_wait(&t->cv, &t->lock.mu);
    if (t->state != EP_RUNNING) break;
    mir_event_list batch = MIR_EVENT_LIST_INIT;
    mir_event_list_take_front(&t->queue, MIR_LOCAL_NET_PUSH_MAX, &batch);
    mir_gauge_set(t->queue_depth, (int64_t)t->queue.len);
    size_t n = batch.len;
    mir_lock_release(&t->lock);
    if (mir_inbox_push(t->inbox, &batch) == MIR_OK) {
      mir_counter_add(t->delivered, n);
    } else {
      mir_counter_add(t->dropped_at_stop, n);
    }
    mir_lock_acquire(&t->lock);
  }
  mir_lock_release(&t->lock);
  return NULL;
}

static mir_err local_start(void *state, mir_inbox *inbox) {
  mir_local_transport *t = state;
  mir_lock_acquire(&t->lock);
  MIR_ASSERT(t->state == EP_ATTACHED); /* a node starts its modules once */
  t->inbox = inbox;
  t->state = EP_RUNNING;
  int rc = pthread_create(&t->thread, NULL, local_delivery_thread, t);
  if (rc != 0) t->state = EP_STOPPED;
  t->thread_started = rc == 0;
  mir_lock_release(&t->lock);
  if (rc != 0) return mir_error_set(MIR_ENOMEM, "local net: cannot create the delivery thread");
  return MIR_OK;
}

/* Refuses new messages, joins the delivery thread and drops what is still queued. After this the
 * inbox is never touched again. Idempotent. */
static void local_stop(void *state) {
  mir_local_transport *t = state;
  mir_lock_acquire(&t->lock);
  t->state = EP_STOPPED;
  pthread_cond_broadcast(&t->cv);
  bool join = t->thread_started;
  t->thread_started = false;
  mir_lock_release(&t->lock);
  if (join) pthread_join(t->thread, NULL);
  mir_lock_acquire(&t->lock);
  mir_counter_add(t->dropped_at_stop, t->queue.len);
  mir_event_list_free(&t->queue);
  mir_gauge_set(t->queue_depth, 0);
  t->inbox = NULL;
  mir_lock_release(&t->lock);
}

void mir_local_transport_free(mir_local_transport *t) {
  if (t == NULL) return;
  local_stop(t);
  mir_local_net *net = t->net;
  pthread_rwlock_wrlock(&net->lock);
  for (size_t i = 0; i < net->n_nodes; i++) {
    if (net->nodes[i] == t) {
      net->nodes[i] = net->nodes[--net->n_nodes];
      break;
    }
  }
  pthread_rwlock_unlock(&net->lock);
  pthread_cond_destroy(&t->cv);
  mir_lock_fini(&t->lock);
  mir_metrics_free(t->metrics);
  free(t);
}

/* ---- sending ---- */

/* Returns an owned deep copy of pm (free with protobuf_c_message_free_unpacked). */
static Mir__PackedMessage *local_packed_clone(const Mir__PackedMessage *pm) {
  Mir__PackedMessage *c = mir_xmalloc(sizeof(*c));
  mir__packed_message__init(c);
  c->dest_module = mir_xstrdup(pm->dest_module);
  c->type = mir_xstrdup(pm->type != NULL ? pm->type : "");
  c->data.len = pm->data.len;
  c->data.data = mir_xmemdup(pm->data.data, pm->data.len);
  return c;
}

/* Queues a copy of pm from `from` on dest's queue, or counts why not. Caller holds net->lock. */
static void local_enqueue(mir_local_transport *from, mir_local_transport *dest,
                          const Mir__PackedMessage *pm) {
  if (dest == NULL) {
    mir_counter_inc(from->dropped_unknown);
    return;
  }
  mir_lock_acquire(&dest->lock);
  if (dest->state == EP_STOPPED) {
    mir_counter_inc(from->dropped_stopped);
  } else if (dest->queue.len >= from->net->queue_max) {
    mir_counter_inc(from->dropped_full);
  } else {
    mir_event_list_push(&dest->queue,
                        mir_event_message_received(from->node_id, local_packed_clone(pm)));
    mir_gauge_set(dest->queue_depth, (int64_t)dest->queue.len);
    if (dest->queue.len > dest->queued_max) {
      dest->queued_max = dest->queue.len;
      mir_gauge_set(dest->queue_depth_max, (int64_t)dest->queued_max);
    }
    mir_counter_inc(from->sent);
    pthread_cond_signal(&dest->cv);
  }
  mir_lock_release(&dest->lock);
}

/* Hands a SendMessage to every destination. A malformed one is produced by a local module, but it
 * is dropped and counted rather than allowed to reach mir_event_new's assertions. */
static void local_send(mir_local_transport *t, const Mir__SendMessage *sm) {
  const Mir__PackedMessage *pm = sm->msg;
  if (pm == NULL || pm->dest_module == NULL || !mir_module_id_valid(pm->dest_module)) {
    mir_counter_add(t->dropped_invalid, sm->n_destinations);
    mir_log(MIR_LOG_DEBUG, LOCAL_LOG, "node %s: dropping a malformed SendMessage", t->node_id);
    return;
  }
  pthread_rwlock_rdlock(&t->net->lock);
  for (size_t i = 0; i < sm->n_destinations; i++) {
    const char *d = sm->destinations[i];
    local_enqueue(t, d != NULL ? local_find(t->net, d) : NULL, pm);
  }
  pthread_rwlock_unlock(&t->net->lock);
}

static mir_err local_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_local_transport *t = state;
  (void)out;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__send_message__descriptor)) {
      local_send(t, (const Mir__SendMessage *)ev->payload);
    } else if (!mir_event_is(ev, &mir__init__descriptor)) {
      return mir_error_set(MIR_EINVAL, "local transport of node %s: unexpected event %s from %s",
                           t->node_id, mir_event_type_name(ev), ev->src);
    }
  }
  return MIR_OK;
}

static void local_destroy(void *state) {
  mir_local_transport_free(state);
}

static mir_metrics *local_metrics(void *state) {
  return ((mir_local_transport *)state)->metrics;
}

const mir_module_ops mir_local_transport_ops = {
    .name = "net-local",
    .kind = MIR_MODULE_ACTIVE,
    .apply = local_apply,
    .start = local_start,
    .stop = local_stop,
    .destroy = local_destroy,
    .metrics = local_metrics,
};
