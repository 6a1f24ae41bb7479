/*
 * The collector: a passive module that keeps the events sent to it, so that tests and sample
 * programs can see what protocol modules produced (deliveries, reports, or the SendMessage events
 * a stand-in transport receives) from another thread.
 *
 * apply() unlinks every event but mir.Init from its batch and appends it to a bounded array under
 * a mutex, then calls the optional callback; readers copy payloads out under the same mutex, so
 * nothing they hold points into the collector. Once events_max events are kept, further ones are
 * freed and counted. The node does not own the collector (the ops have no destroy): it outlives
 * the node so that results can be read after the node stopped.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mir/alloc.h"
#include "samples.h"

struct mir_collector {
  pthread_mutex_t lock;
  pthread_cond_t cv; /* waiters: an event was kept */
  mir_event **events;
  size_t n, cap, max;
  uint64_t dropped;
  mir_collector_fn fn;
  void *user_data;
};

mir_err mir_collector_new(size_t events_max, mir_collector_fn fn, void *user_data,
                          mir_collector **out) {
  mir_collector *c = mir_xcalloc(1, sizeof(*c));
  pthread_mutex_init(&c->lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &attr);
  pthread_condattr_destroy(&attr);
  c->max = events_max != 0 ? events_max : MIR_COLLECTOR_EVENTS_MAX_DEFAULT;
  c->fn = fn;
  c->user_data = user_data;
  *out = c;
  return MIR_OK;
}

void mir_collector_free(mir_collector *c) {
  if (c == NULL) return;
  for (size_t i = 0; i < c->n; i++) mir_event_free(c->events[i]);
  free(c->events);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

/* Keeps ev (takes ownership) if there is room; returns whether it was kept (else it is freed). */
static bool collector_keep(mir_collector *c, mir_event *ev) {
  pthread_mutex_lock(&c->lock);
  bool keep = c->n < c->max;
  if (keep) {
    if (c->n == c->cap) {
      c->cap = c->cap ? c->cap * 2 : 16;
      if (c->cap > c->max) c->cap = c->max;
      c->events = mir_xrealloc(c->events, c->cap * sizeof(*c->events));
    }
    c->events[c->n++] = ev;
    pthread_cond_broadcast(&c->cv);
  } else {
    c->dropped++;
  }
  pthread_mutex_unlock(&c->lock);
  if (!keep) mir_event_free(ev);
  return keep;
}

/* The callback runs after the event is stored, without the lock, so it may call the accessors.
 * The kept event is not freed before mir_collector_free, so it may still be read here. */
static mir_err collector_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_collector *c = state;
  (void)out;
  mir_event *prev = NULL, *ev = in->head;
  while (ev != NULL) {
    mir_event *next = ev->next;
    if (ev->payload == NULL || mir_event_is(ev, &mir__init__descriptor)) {
      prev = ev;
    } else {
      mir_event_list_unlink(in, prev, ev);
      if (collector_keep(c, ev) && c->fn != NULL) c->fn(c->user_data, ev);
    }
    ev = next;
  }
  return MIR_OK;
}

const mir_module_ops mir_collector_ops = {
    .name = "collector",
    .kind = MIR_MODULE_PASSIVE,
    .apply = collector_apply,
    .peer_messages = true,
};

/* Position of the i-th kept event of type (NULL: any), or SIZE_MAX. Caller holds the lock. */
static size_t collector_find(const mir_collector *c, const ProtobufCMessageDescriptor *type,
                             size_t i) {
  for (size_t k = 0; k < c->n; k++) {
    if (type != NULL && !mir_event_is(c->events[k], type)) continue;
    if (i-- == 0) return k;
  }
  return SIZE_MAX;
}

static size_t collector_count_locked(const mir_collector *c,
                                     const ProtobufCMessageDescriptor *type) {
  if (type == NULL) return c->n;
  size_t n = 0;
  for (size_t k = 0; k < c->n; k++) n += mir_event_is(c->events[k], type);
  return n;
}

size_t mir_collector_count(mir_collector *c, const ProtobufCMessageDescriptor *type) {
  pthread_mutex_lock(&c->lock);
  size_t n = collector_count_locked(c, type);
  pthread_mutex_unlock(&c->lock);
  return n;
}

ProtobufCMessage *mir_collector_get(mir_collector *c, const ProtobufCMessageDescriptor *type,
                                    size_t i, char src_out[MIR_MODULE_ID_MAX]) {
  ProtobufCMessage *copy = NULL;
  pthread_mutex_lock(&c->lock);
  size_t k = collector_find(c, type, i);
  if (k != SIZE_MAX) {
    copy = mir_message_clone(c->events[k]->payload);
    if (src_out != NULL) memcpy(src_out, c->events[k]->src, MIR_MODULE_ID_MAX);
  }
  pthread_mutex_unlock(&c->lock);
  return copy;
}

bool mir_collector_wait(mir_collector *c, const ProtobufCMessageDescriptor *type, size_t count,
                        uint64_t timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += (time_t)(timeout_ms / 1000);
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->lock);
  bool reached;
  while (!(reached = collector_count_locked(c, type) >= count)) {
    if (pthread_cond_timedwait(&c->cv, &c->lock, &deadline) != 0) {
      reached = collector_count_locked(c, type) >= count;
      break;
    }
  }
  pthread_mutex_unlock(&c->lock);
  return reached;
}

uint64_t mir_collector_dropped(mir_collector *c) {
  pthread_mutex_lock(&c->lock);
  uint64_t d = c->dropped;
  pthread_mutex_unlock(&c->lock);
  return d;
}
