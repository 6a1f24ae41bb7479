/*
 * Events, event lists, packing, and the constructors of the standard events.
 *
 * Invariants: an event's dest is a valid module id; its src is a valid id or empty (events from
 * outside any module). Lists are singly linked with a tail pointer and an exact length, so
 * append, pop and concatenation are O(1) and batches are taken from the front in O(batch).
 * Every payload is an owned tree (see event.h), so freeing is protobuf_c_message_free_unpacked.
 */
#include "mir/event.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/registry.h"

static bool id_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool mir_module_id_valid(const char *id) {
  if (id == NULL || id[0] == '\0') return false;
  size_t i = 0;
  bool component_empty = true;
  for (; id[i] != '\0'; i++) {
    if (i + 1 >= MIR_MODULE_ID_MAX) return false;
    if (id[i] == '/') {
      if (component_empty) return false;
      component_empty = true;
    } else if (id_char_ok(id[i])) {
      component_empty = false;
    } else {
      return false;
    }
  }
  return !component_empty;
}

size_t mir_module_id_top_len(const char *id) {
  const char *slash = strchr(id, '/');
  return slash ? (size_t)(slash - id) : strlen(id);
}

mir_event *mir_event_new(const char *dest, const char *src, ProtobufCMessage *payload) {
  MIR_ASSERT(mir_module_id_valid(dest));
  MIR_ASSERT(src == NULL || src[0] == '\0' || mir_module_id_valid(src));
  MIR_ASSERT(payload != NULL);
  mir_event *ev = mir_xmalloc(sizeof *ev);
  ev->next = NULL;
  ev->payload = payload;
  strcpy(ev->dest, dest); /* length checked by mir_module_id_valid */
  if (src != NULL) {
    strcpy(ev->src, src);
  } else {
    ev->src[0] = '\0';
  }
  return ev;
}

void mir_event_free(mir_event *ev) {
  if (ev == NULL) return;
  if (ev->payload != NULL) protobuf_c_message_free_unpacked(ev->payload, NULL);
  free(ev);
}

const char *mir_event_type_name(const mir_event *ev) {
  return ev->payload ? ev->payload->descriptor->name : "(none)";
}

/* ---- lists ---- */

void mir_event_list_push(mir_event_list *l, mir_event *ev) {
  ev->next = NULL;
  if (l->tail) {
    l->tail->next = ev;
  } else {
    l->head = ev;
  }
  l->tail = ev;
  l->len++;
}

mir_event *mir_event_list_pop(mir_event_list *l) {
  mir_event *ev = l->head;
  if (ev == NULL) return NULL;
  l->head = ev->next;
  if (l->head == NULL) l->tail = NULL;
  l->len--;
  ev->next = NULL;
  return ev;
}

void mir_event_list_concat(mir_event_list *dst, mir_event_list *src) {
  if (src->head == NULL) return;
  if (dst->tail) {
    dst->tail->next = src->head;
  } else {
    dst->head = src->head;
  }
  dst->tail = src->tail;
  dst->len += src->len;
  mir_event_list_init(src);
}

void mir_event_list_take_front(mir_event_list *src, size_t n, mir_event_list *front) {
  if (n >= src->len) {
    mir_event_list_concat(front, src);
    return;
  }
  if (n == 0) return;
  mir_event *last = src->head;
  for (size_t i = 1; i < n; i++) last = last->next;
  mir_event_list part = {src->head, last, n};
  src->head = last->next;
  src->len -= n;
  last->next = NULL;
  mir_event_list_concat(front, &part);
}

mir_event *mir_event_list_unlink(mir_event_list *l, mir_event *prev, mir_event *ev) {
  MIR_ASSERT(prev ? prev->next == ev : l->head == ev);
  if (prev) {
    prev->next = ev->next;
  } else {
    l->head = ev->next;
  }
  if (l->tail == ev) l->tail = prev;
  l->len--;
  ev->next = NULL;
  return ev;
}

void mir_event_list_free(mir_event_list *l) {
  mir_event *ev = l->head;
  while (ev) {
    mir_event *next = ev->next;
    mir_event_free(ev);
    ev = next;
  }
  mir_event_list_init(l);
}

/* ---- packing ---- */

/* Packs msg into a new buffer (owned; NULL when the encoding is empty). */
static uint8_t *pack_bytes(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  if (*len == 0) return NULL;
  uint8_t *buf = mir_xmalloc(*len);
  size_t written = protobuf_c_message_pack(msg, buf);
  MIR_ASSERT(written == *len);
  return buf;
}

void mir_event_pack(const mir_event *ev, Mir__PackedEvent *out) {
  MIR_ASSERT(ev->payload != NULL);
  out->dest = mir_xstrdup(ev->dest);
  out->src = mir_xstrdup(ev->src);
  out->type = mir_xstrdup(ev->payload->descriptor->name);
  out->payload.data = pack_bytes(ev->payload, &out->payload.len);
}

static void free_string_field(char **s) {
  if (*s != NULL && *s != protobuf_c_empty_string) free(*s);
  *s = (char *)protobuf_c_empty_string;
}

void mir_packed_event_clear(Mir__PackedEvent *pe) {
  free_string_field(&pe->dest);
  free_string_field(&pe->src);
  free_string_field(&pe->type);
  free(pe->payload.data);
  pe->payload.data = NULL;
  pe->payload.len = 0;
}

mir_err mir_event_unpack(const Mir__PackedEvent *pe, mir_event **out) {
  const ProtobufCMessageDescriptor *desc = mir_registry_find(pe->type);
  if (desc == NULL) return mir_error_set(MIR_ENOTFOUND, "unknown event type '%.64s'", pe->type);
  if (!mir_module_id_valid(pe->dest) || (pe->src[0] != '\0' && !mir_module_id_valid(pe->src))) {
    return mir_error_set(MIR_EPROTO, "invalid module id in packed %s event", desc->name);
  }
  ProtobufCMessage *payload =
      protobuf_c_message_unpack(desc, NULL, pe->payload.len, pe->payload.data);
  if (payload == NULL) return mir_error_set(MIR_EPROTO, "cannot decode %s payload", desc->name);
  *out = mir_event_new(pe->dest, pe->src, payload);
  return MIR_OK;
}

Mir__PackedMessage *mir_message_pack(const char *dest_module, const ProtobufCMessage *msg) {
  Mir__PackedMessage *pm = mir_xmalloc(sizeof *pm);
  mir__packed_message__init(pm);
  pm->dest_module = mir_xstrdup(dest_module);
  pm->type = mir_xstrdup(msg->descriptor->name);
  pm->data.data = pack_bytes(msg, &pm->data.len);
  return pm;
}

mir_err mir_message_unpack(const Mir__PackedMessage *pm, size_t max_bytes, ProtobufCMessage **out) {
  const ProtobufCMessageDescriptor *desc = mir_registry_find(pm->type);
  if (desc == NULL) return mir_error_set(MIR_ENOTFOUND, "unknown message type '%.64s'", pm->type);
  if (max_bytes != 0 && pm->data.len > max_bytes) {
    return mir_error_set(MIR_EPROTO, "%s message of %zu bytes exceeds %zu", desc->name,
                         pm->data.len, max_bytes);
  }
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, pm->data.len, pm->data.data);
  if (msg == NULL) return mir_error_set(MIR_EPROTO, "cannot decode %s message", desc->name);
  *out = msg;
  return MIR_OK;
}

ProtobufCMessage *mir_message_clone(const ProtobufCMessage *msg) {
  size_t len;
  uint8_t *buf = pack_bytes(msg, &len);
  ProtobufCMessage *copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
  free(buf);
  MIR_ASSERT(copy != NULL); /* our own encoding always decodes */
  return copy;
}
