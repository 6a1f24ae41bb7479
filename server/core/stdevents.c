/*
 * Constructors of the standard events (event.h). Each builds an owned payload tree with
 * malloc'd fields, so the generic free path (protobuf_c_message_free_unpacked) releases it.
 */
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/event.h"

/* Allocates and initialises a payload struct of type T with its protobuf-c init function. */
#define NEW_PAYLOAD(T, init, var)  \
  T *var = mir_xmalloc(sizeof(T)); \
  init(var)

mir_event *mir_event_init(const char *dest) {
  NEW_PAYLOAD(Mir__Init, mir__init__init, p);
  return mir_event_new(dest, NULL, &p->base);
}

mir_event *mir_event_send_message(const char *transport, const char *src, const char *const *dests,
                                  size_t n, const char *remote_dest, const ProtobufCMessage *msg) {
  NEW_PAYLOAD(Mir__SendMessage, mir__send_message__init, p);
  p->n_destinations = n;
  p->destinations = n ? mir_xmalloc(n * sizeof(char *)) : NULL;
  for (size_t i = 0; i < n; i++) p->destinations[i] = mir_xstrdup(dests[i]);
  p->msg = mir_message_pack(remote_dest, msg);
  return mir_event_new(transport, src, &p->base);
}

mir_event *mir_event_message_received(const char *from, Mir__PackedMessage *msg) {
  NEW_PAYLOAD(Mir__MessageReceived, mir__message_received__init, p);
  p->from = mir_xstrdup(from);
  p->msg = msg;
  return mir_event_new(msg->dest_module, NULL, &p->base);
}

/* Packs and frees every event of events into a new array (owned) of n PackedEvents. */
static Mir__PackedEvent **pack_list(mir_event_list *events, size_t *n) {
  *n = events->len;
  Mir__PackedEvent **arr = *n ? mir_xmalloc(*n * sizeof *arr) : NULL;
  for (size_t i = 0; i < *n; i++) {
    mir_event *ev = mir_event_list_pop(events);
    arr[i] = mir_xmalloc(sizeof **arr);
    mir__packed_event__init(arr[i]);
    mir_event_pack(ev, arr[i]);
    mir_event_free(ev);
  }
  return arr;
}

mir_event *mir_event_timer_delay(const char *timer, const char *src, mir_event_list *events,
                                 uint64_t delay_ms) {
  NEW_PAYLOAD(Mir__TimerDelay, mir__timer_delay__init, p);
  p->events = pack_list(events, &p->n_events);
  p->delay_ms = delay_ms;
  return mir_event_new(timer, src, &p->base);
}

mir_event *mir_event_timer_repeat(const char *timer, const char *src, mir_event_list *events,
                                  uint64_t period_ms, uint64_t retention_index) {
  NEW_PAYLOAD(Mir__TimerRepeat, mir__timer_repeat__init, p);
  p->events = pack_list(events, &p->n_events);
  p->period_ms = period_ms;
  p->retention_index = retention_index;
  return mir_event_new(timer, src, &p->base);
}

mir_event *mir_event_new_submodule(const char *factory, const char *src, const char *submodule_id,
                                   const ProtobufCMessage *params, uint64_t retention_index) {
  NEW_PAYLOAD(Mir__NewSubmodule, mir__new_submodule__init, p);
  p->submodule_id = mir_xstrdup(submodule_id);
  p->retention_index = retention_index;
  if (params != NULL) {
    p->params = mir_xmalloc(sizeof *p->params);
    mir__any_message__init(p->params);
    p->params->type = mir_xstrdup(params->descriptor->name);
    p->params->data.len = protobuf_c_message_get_packed_size(params);
    p->params->data.data = p->params->data.len ? mir_xmalloc(p->params->data.len) : NULL;
    if (p->params->data.len) protobuf_c_message_pack(params, p->params->data.data);
  }
  return mir_event_new(factory, src, &p->base);
}

mir_event *mir_event_garbage_collect(const char *dest, const char *src, uint64_t retention_index) {
  NEW_PAYLOAD(Mir__GarbageCollect, mir__garbage_collect__init, p);
  p->retention_index = retention_index;
  return mir_event_new(dest, src, &p->base);
}

mir_event *mir_event_test_string(const char *dest, const char *src, const char *value) {
  NEW_PAYLOAD(Mir__TestString, mir__test_string__init, p);
  p->value = mir_xstrdup(value);
  return mir_event_new(dest, src, &p->base);
}

mir_event *mir_event_test_uint64(const char *dest, const char *src, uint64_t value) {
  NEW_PAYLOAD(Mir__TestUint64, mir__test_uint64__init, p);
  p->value = value;
  return mir_event_new(dest, src, &p->base);
}
