/*
 * Events and event lists.
 *
 * An event is an envelope {dest, src, payload}. The payload is any protobuf-c message and its
 * descriptor is the event's type: protocols add event types by adding .proto messages, with no
 * central list to edit. Module ids are hierarchical ("ordering/3/1"); the node routes on the first
 * component.
 *
 * Ownership rules (they hold everywhere in libmir):
 *  - An event owns its payload. A payload is an "owned tree": every string, bytes buffer,
 *    repeated array and sub-message inside it was allocated with malloc (or is protobuf-c's static
 *    default), so protobuf_c_message_free_unpacked(payload, NULL) frees it. Messages produced by
 *    protobuf_c_message_unpack(desc, NULL, ...) are owned trees by construction.
 *  - An event list owns the events linked into it. Pushing an event into a list hands it over;
 *    popping returns ownership.
 *  - A module's apply() gets its input batch as a borrowed list: it may unlink events (or steal a
 *    payload by setting ev->payload to NULL) and then owns what it took; the node frees the rest
 *    after apply returns.
 */
#ifndef MIR_EVENT_H
#define MIR_EVENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/event.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest module id, including the terminating NUL. Ids from the network are checked with
 * mir_module_id_valid() at ingress, so this bound is never hit by peer input. */
#define MIR_MODULE_ID_MAX 64

typedef struct mir_event mir_event;
struct mir_event {
  mir_event *next;           /* link in the list that owns the event */
  ProtobufCMessage *payload; /* owned tree; NULL only after a module stole it */
  char dest[MIR_MODULE_ID_MAX];
  char src[MIR_MODULE_ID_MAX];
};

/* Creates an event. dest and src are copied (src may be NULL for ""); takes ownership of payload.
 * Both ids must be valid (mir_module_id_valid); this is asserted. Returns owned (free with
 * mir_event_free). */
mir_event *mir_event_new(const char *dest, const char *src, ProtobufCMessage *payload);

/* Frees ev and its payload. NULL is a no-op. */
void mir_event_free(mir_event *ev);

/* Returns true if ev's payload is of type desc. */
static inline bool mir_event_is(const mir_event *ev, const ProtobufCMessageDescriptor *desc) {
  return ev->payload != NULL && ev->payload->descriptor == desc;
}

/* The payload's full type name ("mir.Init"), or "(none)" if it was stolen. */
const char *mir_event_type_name(const mir_event *ev);

/* ---- module ids ---- */

/* True if id is non-empty, shorter than MIR_MODULE_ID_MAX, made of [A-Za-z0-9_.-] components
 * separated by single '/', with no empty component. id is borrowed. */
bool mir_module_id_valid(const char *id);

/* Length of the first component of id (up to the first '/' or the end). */
size_t mir_module_id_top_len(const char *id);

/* ---- event lists ---- */

typedef struct mir_event_list {
  mir_event *head;
  mir_event *tail;
  size_t len;
} mir_event_list;

#define MIR_EVENT_LIST_INIT \
  { NULL, NULL, 0 }

static inline void mir_event_list_init(mir_event_list *l) {
  l->head = l->tail = NULL;
  l->len = 0;
}

/* Appends ev (takes ownership). */
void mir_event_list_push(mir_event_list *l, mir_event *ev);
/* Removes and returns the first event (owned), or NULL if empty. */
mir_event *mir_event_list_pop(mir_event_list *l);
/* Moves every event of src to the end of dst; src is left empty. */
void mir_event_list_concat(mir_event_list *dst, mir_event_list *src);
/* Moves the first n events (or all, if fewer) of src to the end of front. */
void mir_event_list_take_front(mir_event_list *src, size_t n, mir_event_list *front);
/* Unlinks ev, whose predecessor in l is prev (NULL if ev is the head); returns ev (owned). */
mir_event *mir_event_list_unlink(mir_event_list *l, mir_event *prev, mir_event *ev);
/* Frees every event of l and leaves it empty. */
void mir_event_list_free(mir_event_list *l);

#define MIR_EVENT_LIST_FOREACH(list, ev) \
  for (mir_event *ev = (list)->head; ev != NULL; ev = ev->next)

/* ---- packing: nested events, messages on the wire, event logs ---- */

/* Fills out (an initialised, empty Mir__PackedEvent) with ev packed; out's fields become an owned
 * tree (free with protobuf_c_message_free_unpacked or mir_packed_event_clear). ev is borrowed. */
void mir_event_pack(const mir_event *ev, Mir__PackedEvent *out);
/* Frees the fields of a PackedEvent filled by mir_event_pack, leaving it initialised. */
void mir_packed_event_clear(Mir__PackedEvent *pe);

/* Decodes pe (borrowed) into a new event, resolving the type by name in the registry.
 * MIR_ENOTFOUND: unknown type; MIR_EPROTO: bad bytes or invalid module id. *out is owned. */
mir_err mir_event_unpack(const Mir__PackedEvent *pe, mir_event **out);

/* Packs msg (borrowed) for dest_module. Returns an owned tree (protobuf_c_message_free_unpacked).
 */
Mir__PackedMessage *mir_message_pack(const char *dest_module, const ProtobufCMessage *msg);

/* Decodes pm (borrowed); the type must be registered. max_bytes bounds the encoded size (0: no
 * bound beyond the transport's). *out is an owned tree. MIR_ENOTFOUND / MIR_EPROTO as above. */
mir_err mir_message_unpack(const Mir__PackedMessage *pm, size_t max_bytes, ProtobufCMessage **out);

/* Deep copy through pack and unpack. Returns an owned tree. */
ProtobufCMessage *mir_message_clone(const ProtobufCMessage *msg);

/* ---- standard events (all return owned events; string and message arguments are borrowed
 *      unless stated otherwise) ---- */

mir_event *mir_event_init(const char *dest);

/* To the transport module `transport`: send msg to the remote module remote_dest on each of the
 * n nodes in dests. msg is packed once here. */
mir_event *mir_event_send_message(const char *transport, const char *src, const char *const *dests,
                                  size_t n, const char *remote_dest, const ProtobufCMessage *msg);

/* As a transport produces it: msg (takes ownership) arrived from node `from`, for
 * msg->dest_module. */
mir_event *mir_event_message_received(const char *from, Mir__PackedMessage *msg);

/* To the timer `timer`: emit events (takes ownership; the list is left empty) after delay_ms. */
mir_event *mir_event_timer_delay(const char *timer, const char *src, mir_event_list *events,
                                 uint64_t delay_ms);
/* To the timer `timer`: emit events (takes ownership) every period_ms while retention_index holds.
 */
mir_event *mir_event_timer_repeat(const char *timer, const char *src, mir_event_list *events,
                                  uint64_t period_ms, uint64_t retention_index);

/* To a factory: create submodule_id with params (borrowed, may be NULL). */
mir_event *mir_event_new_submodule(const char *factory, const char *src, const char *submodule_id,
                                   const ProtobufCMessage *params, uint64_t retention_index);

mir_event *mir_event_garbage_collect(const char *dest, const char *src, uint64_t retention_index);

mir_event *mir_event_test_string(const char *dest, const char *src, const char *value);
mir_event *mir_event_test_uint64(const char *dest, const char *src, uint64_t value);

#ifdef __cplusplus
}
#endif
#endif
