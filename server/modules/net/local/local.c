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
 * Lock order: net->lock (read or write), then an endpoint's lock. Counters are atomics so that
 * the sender's dispatcher and the receiver's delivery thread update them without sharing a lock.
 *
 * Invariants: queue.len <= net->queue_max; an endpoint in state EP_STOPPED never gets a new
 * message; the delivery thread runs iff thread_started and it is joined before the endpoint is
 * detached or freed.
 */
#include "mir/net_local.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"

#define LOCAL_LOG "net-local"

typedef enum ep_state { EP_ATTACHED, EP_RUNNING, EP_STOPPED } ep_state;

struct mir_local_transport {
  mir_local_net *net;
  char node_id[MIR_MODULE_ID_MAX];

  pthread_mutex_t lock; /* guards the fields down to thread_started */
  pthread_cond_t cv;    /* delivery thread: a message arrived or stop */
  mir_event_list queue; /* owned MessageReceived events, FIFO */
  size_t queued_max;
  ep_state state;
  mir_inbox *inbox;
  pthread_t thread;
  bool thread_started;

  atomic_uint_fast64_t sent, delivered, dropped_unknown, dropped_stopped, dropped_full,
      dropped_invalid, dropped_at_stop;
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
  pthread_mutex_init(&t->lock, NULL);
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
  pthread_mutex_lock(&t->lock);
  for (;;) {
    while (t->queue.len == 0 && t->state == EP_RUNNING) pthread_cond_wait(&t->cv, &t->lock);
    if (t->state != EP_RUNNING) break;
    mir_event_list batch = MIR_EVENT_LIST_INIT;
    mir_event_list_take_front(&t->queue, MIR_LOCAL_NET_PUSH_MAX, &batch);
    size_t n = batch.len;
    pthread_mutex_unlock(&t->lock);
    if (mir_inbox_push(t->inbox, &batch) == MIR_OK) {
      atomic_fetch_add(&t->delivered, n);
    } else {
      atomic_fetch_add(&t->dropped_at_stop, n);
    }
    pthread_mutex_lock(&t->lock);
  }
  pthread_mutex_unlock(&t->lock);
  return NULL;
}

static mir_err local_start(void *state, mir_inbox *inbox) {
  mir_local_transport *t = state;
  pthread_mutex_lock(&t->lock);
  MIR_ASSERT(t->state == EP_ATTACHED); /* a node starts its modules once */
  t->inbox = inbox;
  t->state = EP_RUNNING;
  int rc = pthread_create(&t->thread, NULL, local_delivery_thread, t);
  if (rc != 0) t->state = EP_STOPPED;
  t->thread_started = rc == 0;
  pthread_mutex_unlock(&t->lock);
  if (rc != 0) return mir_error_set(MIR_ENOMEM, "local net: cannot create the delivery thread");
  return MIR_OK;
}

/* Refuses new messages, joins the delivery thread and drops what is still queued. After this the
 * inbox is never touched again. Idempotent. */
static void local_stop(void *state) {
  mir_local_transport *t = state;
  pthread_mutex_lock(&t->lock);
  t->state = EP_STOPPED;
  pthread_cond_broadcast(&t->cv);
  bool join = t->thread_started;
  t->thread_started = false;
  pthread_mutex_unlock(&t->lock);
  if (join) pthread_join(t->thread, NULL);
  pthread_mutex_lock(&t->lock);
  atomic_fetch_add(&t->dropped_at_stop, t->queue.len);
  mir_event_list_free(&t->queue);
  t->inbox = NULL;
  pthread_mutex_unlock(&t->lock);
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
  pthread_mutex_destroy(&t->lock);
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
    atomic_fetch_add(&from->dropped_unknown, 1);
    return;
  }
  pthread_mutex_lock(&dest->lock);
  if (dest->state == EP_STOPPED) {
    atomic_fetch_add(&from->dropped_stopped, 1);
  } else if (dest->queue.len >= from->net->queue_max) {
    atomic_fetch_add(&from->dropped_full, 1);
  } else {
    mir_event_list_push(&dest->queue,
                        mir_event_message_received(from->node_id, local_packed_clone(pm)));
    if (dest->queue.len > dest->queued_max) dest->queued_max = dest->queue.len;
    atomic_fetch_add(&from->sent, 1);
    pthread_cond_signal(&dest->cv);
  }
  pthread_mutex_unlock(&dest->lock);
}

/* Hands a SendMessage to every destination. A malformed one is produced by a local module, but it
 * is dropped and counted rather than allowed to reach mir_event_new's assertions. */
static void local_send(mir_local_transport *t, const Mir__SendMessage *sm) {
  const Mir__PackedMessage *pm = sm->msg;
  if (pm == NULL || pm->dest_module == NULL || !mir_module_id_valid(pm->dest_module)) {
    atomic_fetch_add(&t->dropped_invalid, sm->n_destinations);
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

const mir_module_ops mir_local_transport_ops = {
    .name = "net-local",
    .kind = MIR_MODULE_ACTIVE,
    .apply = local_apply,
    .start = local_start,
    .stop = local_stop,
    .destroy = local_destroy,
};

void mir_local_transport_get_stats(mir_local_transport *t, mir_local_transport_stats *out) {
  memset(out, 0, sizeof(*out));
  out->sent = atomic_load(&t->sent);
  out->dropped_unknown = atomic_load(&t->dropped_unknown);
  out->dropped_stopped = atomic_load(&t->dropped_stopped);
  out->dropped_full = atomic_load(&t->dropped_full);
  out->dropped_invalid = atomic_load(&t->dropped_invalid);
  out->delivered = atomic_load(&t->delivered);
  out->dropped_at_stop = atomic_load(&t->dropped_at_stop);
  pthread_mutex_lock(&t->lock);
  out->queued = t->queue.len;
  out->queued_max = t->queued_max;
  pthread_mutex_unlock(&t->lock);
}
