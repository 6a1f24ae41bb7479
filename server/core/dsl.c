/*
 * The DSL runtime: handler tables, a batch loop, and a context store.
 *
 * Handlers are kept per payload type in registration order. A type table is an array of types
 * plus an open-addressing index keyed by descriptor address, so dispatching an event costs one
 * probe sequence whatever the number of registered types. Registration is only allowed outside
 * apply(), so the arrays a batch iterates over never move under it.
 *
 * Received messages are looked up by type name before they are decoded: a message of a type no
 * handler wants is dropped without spending a decode on it. Every way a peer's message can be
 * bad (no type, unknown type, unhandled type, bad bytes, too big) is a counted drop.
 *
 * Contexts live in a chained hash table keyed by id; ids come from a counter, never reused.
 * A context disposed inside apply() is marked and linked on the dispose list; the list is freed
 * after the after-batch checks, so every handler of the batch can still read it.
 *
 * Invariants: in_apply is true exactly while apply() runs; a context is on the dispose list iff
 * its `disposing` flag is set; ctx_len <= contexts_max; `out` holds the events emitted since the
 * last hand-out.
 */
#include "mir/dsl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "mir/registry.h"

#define DSL_LOG "dsl"

/* ---- handler tables ---- */

typedef union dsl_fn {
  mir_dsl_event_fn ev;
  mir_dsl_message_fn msg;
  mir_dsl_check_fn check;
} dsl_fn;

typedef struct dsl_fns {
  dsl_fn *fns;
  size_t n, cap;
} dsl_fns;

typedef struct dsl_type {
  const ProtobufCMessageDescriptor *desc;
  dsl_fns handlers;
} dsl_type;

typedef struct dsl_table {
  dsl_type *types;
  size_t n, cap;
  size_t *index; /* open addressing: 0 empty, else type position + 1 */
  size_t index_cap;
  size_t registrations;
} dsl_table;

static void dsl_fns_push(dsl_fns *v, dsl_fn fn) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4;
    v->fns = mir_xrealloc(v->fns, v->cap * sizeof(*v->fns));
  }
  v->fns[v->n++] = fn;
}

static size_t dsl_ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x;
}

static void dsl_index_put(size_t *index, size_t cap, const void *key, size_t pos) {
  size_t i = dsl_ptr_hash(key) & (cap - 1);
  while (index[i] != 0) i = (i + 1) & (cap - 1);
  index[i] = pos + 1;
}

static dsl_type *dsl_table_find(const dsl_table *t, const ProtobufCMessageDescriptor *desc) {
  if (t->index_cap == 0) return NULL;
  size_t i = dsl_ptr_hash(desc) & (t->index_cap - 1);
  while (t->index[i] != 0) {
    dsl_type *ty = &t->types[t->index[i] - 1];
    if (ty->desc == desc) return ty;
    i = (i + 1) & (t->index_cap - 1);
  }
  return NULL;
}

/* Adds fn for desc. The index is kept at most half full so probe sequences stay short. */
static mir_err dsl_table_add(dsl_table *t, const ProtobufCMessageDescriptor *desc, dsl_fn fn) {
  if (t->registrations >= MIR_DSL_HANDLERS_MAX) {
    return mir_error_set(MIR_EFULL, "dsl: more than %d handlers", MIR_DSL_HANDLERS_MAX);
  }
  dsl_type *ty = dsl_table_find(t, desc);
  if (ty == NULL) {
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 8;
      t->types = mir_xrealloc(t->types, t->cap * sizeof(*t->types));
    }
    if (2 * (t->n + 1) > t->index_cap) {
      size_t cap = t->index_cap ? t->index_cap * 2 : 16;
      free(t->index);
      t->index = mir_xcalloc(cap, sizeof(*t->index));
      t->index_cap = cap;
      for (size_t i = 0; i < t->n; i++) dsl_index_put(t->index, cap, t->types[i].desc, i);
    }
    ty = &t->types[t->n];
    memset(ty, 0, sizeof(*ty));
    ty->desc = desc;
    dsl_index_put(t->index, t->index_cap, desc, t->n);
    t->n++;
  }
  dsl_fns_push(&ty->handlers, fn);
  t->registrations++;
  return MIR_OK;
}

static void dsl_table_fini(dsl_table *t) {
  for (size_t i = 0; i < t->n; i++) free(t->types[i].handlers.fns);
  free(t->types);
  free(t->index);
}

/* ---- the dsl ---- */

typedef struct dsl_ctx dsl_ctx;
struct dsl_ctx {
  dsl_ctx *hnext;
  dsl_ctx *next_dispose;
  uint64_t id;
  void *ptr;
  void (*free_fn)(void *);
  bool disposing;
};

struct mir_dsl {
  char id[MIR_MODULE_ID_MAX];
  void *user;
  void (*user_free)(void *);
  size_t message_bytes_max;
  size_t contexts_max;
  dsl_table events;
  dsl_table messages;
  dsl_fns after_event;
  dsl_fns after_batch;
  mir_event_list out;
  dsl_ctx **ctx_buckets; /* a power of two */
  size_t ctx_nbuckets;
  size_t ctx_len;
  uint64_t next_ctx_id;
  dsl_ctx *dispose_head;
  bool in_apply;
  /* The module's metric set (owned): the runtime's own counters, and those the protocol
   * registers through mir_dsl_metrics. */
  mir_metrics *metrics;
  mir_counter *m_messages;
  mir_counter *m_unhandled;
  mir_counter *m_undecodable;
};

/* Registers the runtime's counters in a new set named after the module. */
static void dsl_metrics_init(mir_dsl *d) {
  static const char drop_help[] =
      "Peer messages the module dropped before any handler ran, by reason (no_handler: type "
      "unknown or without a handler; undecodable: bad bytes or too big).";
  mir_metrics *m = d->metrics = mir_metrics_new(d->id);
  d->m_messages = mir_metrics_counter(m, "mir_dsl_messages_total",
                                      "Peer messages decoded and handled.", NULL, NULL);
  d->m_unhandled =
      mir_metrics_counter(m, "mir_dsl_messages_dropped_total", drop_help, "reason", "no_handler");
  d->m_undecodable =
      mir_metrics_counter(m, "mir_dsl_messages_dropped_total", drop_help, "reason", "undecodable");
}

mir_dsl *mir_dsl_new(const char *module_id, void *user) {
  MIR_ASSERT(module_id != NULL && mir_module_id_valid(module_id));
  mir_dsl *d = mir_xcalloc(1, sizeof(*d));
  snprintf(d->id, sizeof(d->id), "%s", module_id);
  d->user = user;
  d->message_bytes_max = MIR_DSL_MESSAGE_BYTES_MAX_DEFAULT;
  d->contexts_max = MIR_DSL_CONTEXTS_MAX_DEFAULT;
  mir_event_list_init(&d->out);
  d->ctx_nbuckets = 16;
  d->ctx_buckets = mir_xcalloc(d->ctx_nbuckets, sizeof(*d->ctx_buckets));
  dsl_metrics_init(d);
  return d;
}

static void dsl_ctx_free(dsl_ctx *c) {
  if (c->free_fn != NULL) c->free_fn(c->ptr);
  free(c);
}

void mir_dsl_free(mir_dsl *d) {
  if (d == NULL) return;
  for (size_t i = 0; i < d->ctx_nbuckets; i++) {
    dsl_ctx *c = d->ctx_buckets[i];
    while (c != NULL) {
      dsl_ctx *next = c->hnext;
      dsl_ctx_free(c);
      c = next;
    }
  }
  free(d->ctx_buckets);
  dsl_table_fini(&d->events);
  dsl_table_fini(&d->messages);
  free(d->after_event.fns);
  free(d->after_batch.fns);
  mir_event_list_free(&d->out);
  if (d->user_free != NULL) d->user_free(d->user);
  mir_metrics_free(d->metrics); /* after the user's free, which may still count */
  free(d);
}

void mir_dsl_set_user_free(mir_dsl *d, void (*free_fn)(void *user)) {
  d->user_free = free_fn;
}

void mir_dsl_set_message_bytes_max(mir_dsl *d, size_t bytes) {
  d->message_bytes_max = bytes != 0 ? bytes : MIR_DSL_MESSAGE_BYTES_MAX_DEFAULT;
}

void mir_dsl_set_contexts_max(mir_dsl *d, size_t n) {
  d->contexts_max = n != 0 ? n : MIR_DSL_CONTEXTS_MAX_DEFAULT;
}

const char *mir_dsl_module_id(const mir_dsl *d) {
  return d->id;
}
void *mir_dsl_user(const mir_dsl *d) {
  return d->user;
}
mir_metrics *mir_dsl_metrics(const mir_dsl *d) {
  return d->metrics;
}

/* ---- registration ---- */

mir_err mir_dsl_upon_event(mir_dsl *d, const ProtobufCMessageDescriptor *type,
                           mir_dsl_event_fn fn) {
  MIR_ASSERT(!d->in_apply && type != NULL && fn != NULL);
  return dsl_table_add(&d->events, type, (dsl_fn){.ev = fn});
}

mir_err mir_dsl_upon_message(mir_dsl *d, const ProtobufCMessageDescriptor *msg_type,
                             mir_dsl_message_fn fn) {
  MIR_ASSERT(!d->in_apply && msg_type != NULL && fn != NULL);
  mir_err err = mir_registry_add(msg_type);
  if (err != MIR_OK) return err;
  return dsl_table_add(&d->messages, msg_type, (dsl_fn){.msg = fn});
}

static mir_err dsl_check_add(dsl_fns *v, mir_dsl_check_fn fn) {
  if (v->n >= MIR_DSL_HANDLERS_MAX) {
    return mir_error_set(MIR_EFULL, "dsl: more than %d condition checks", MIR_DSL_HANDLERS_MAX);
  }
  dsl_fns_push(v, (dsl_fn){.check = fn});
  return MIR_OK;
}

mir_err mir_dsl_after_event(mir_dsl *d, mir_dsl_check_fn fn) {
  MIR_ASSERT(!d->in_apply && fn != NULL);
  return dsl_check_add(&d->after_event, fn);
}

mir_err mir_dsl_after_batch(mir_dsl *d, mir_dsl_check_fn fn) {
  MIR_ASSERT(!d->in_apply && fn != NULL);
  return dsl_check_add(&d->after_batch, fn);
}

/* ---- emitting ---- */

void mir_dsl_emit(mir_dsl *d, mir_event *ev) {
  mir_event_list_push(&d->out, ev);
}

void mir_dsl_emit_new(mir_dsl *d, const char *dest, ProtobufCMessage *payload) {
  mir_event_list_push(&d->out, mir_event_new(dest, d->id, payload));
}

void mir_dsl_send(mir_dsl *d, const char *transport_id, const char *const *nodes, size_t n,
                  const char *remote_module, const ProtobufCMessage *msg) {
  mir_event_list_push(&d->out,
                      mir_event_send_message(transport_id, d->id, nodes, n, remote_module, msg));
}

void mir_dsl_take_emitted(mir_dsl *d, mir_event_list *out) {
  mir_event_list_concat(out, &d->out);
}

/* ---- contexts ---- */

static void dsl_ctx_grow(mir_dsl *d) {
  size_t nb = d->ctx_nbuckets * 2;
  dsl_ctx **b = mir_xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < d->ctx_nbuckets; i++) {
    dsl_ctx *c = d->ctx_buckets[i];
    while (c != NULL) {
      dsl_ctx *next = c->hnext;
      c->hnext = b[c->id & (nb - 1)];
      b[c->id & (nb - 1)] = c;
      c = next;
    }
  }
  free(d->ctx_buckets);
  d->ctx_buckets = b;
  d->ctx_nbuckets = nb;
}

mir_err mir_dsl_store_context(mir_dsl *d, void *ctx, void (*free_fn)(void *ctx), uint64_t *id_out) {
  if (d->ctx_len >= d->contexts_max) {
    if (free_fn != NULL) free_fn(ctx);
    return mir_error_set(MIR_EFULL, "module %s: more than %zu live contexts", d->id,
                         d->contexts_max);
  }
  if (d->ctx_len >= d->ctx_nbuckets) dsl_ctx_grow(d);
  dsl_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->id = d->next_ctx_id++;
  c->ptr = ctx;
  c->free_fn = free_fn;
  dsl_ctx **head = &d->ctx_buckets[c->id & (d->ctx_nbuckets - 1)];
  c->hnext = *head;
  *head = c;
  d->ctx_len++;
  *id_out = c->id;
  return MIR_OK;
}

/* Returns the link pointing at context id (the bucket head or a predecessor's hnext), whose
 * target is NULL if there is no such context. */
static dsl_ctx **dsl_ctx_slot(const mir_dsl *d, uint64_t id) {
  dsl_ctx **pp = &d->ctx_buckets[id & (d->ctx_nbuckets - 1)];
  while (*pp != NULL && (*pp)->id != id) pp = &(*pp)->hnext;
  return pp;
}

void *mir_dsl_context(const mir_dsl *d, uint64_t id) {
  dsl_ctx *c = *dsl_ctx_slot(d, id);
  return c != NULL ? c->ptr : NULL;
}

static void dsl_ctx_remove(mir_dsl *d, uint64_t id) {
  dsl_ctx **pp = dsl_ctx_slot(d, id);
  dsl_ctx *c = *pp;
  MIR_ASSERT(c != NULL);
  *pp = c->hnext;
  d->ctx_len--;
  dsl_ctx_free(c);
}

void mir_dsl_dispose_context(mir_dsl *d, uint64_t id) {
  dsl_ctx *c = *dsl_ctx_slot(d, id);
  if (c == NULL || c->disposing) return;
  if (!d->in_apply) {
    dsl_ctx_remove(d, id);
    return;
  }
  c->disposing = true;
  c->next_dispose = d->dispose_head;
  d->dispose_head = c;
}

static void dsl_dispose_pending(mir_dsl *d) {
  while (d->dispose_head != NULL) {
    dsl_ctx *c = d->dispose_head;
    d->dispose_head = c->next_dispose;
    dsl_ctx_remove(d, c->id);
  }
}

size_t mir_dsl_context_count(const mir_dsl *d) {
  return d->ctx_len;
}

void mir_dsl_fill_origin(const mir_dsl *d, uint64_t context_id, Mir__Origin *out) {
  out->module = mir_xstrdup(d->id);
  out->context_id = context_id;
}

Mir__Origin *mir_dsl_origin_new(const mir_dsl *d, uint64_t context_id) {
  Mir__Origin *o = mir_xmalloc(sizeof(*o));
  mir__origin__init(o);
  mir_dsl_fill_origin(d, context_id, o);
  return o;
}

/* ---- apply ---- */

static mir_err dsl_run_checks(mir_dsl *d, const dsl_fns *v) {
  for (size_t i = 0; i < v->n; i++) {
    mir_err err = v->fns[i].check(d, d->user);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

/* Drops a peer's message that cannot be handled: counted and logged, never an error. The type
 * name is the peer's, so the log bounds its length. */
static mir_err dsl_drop_message(mir_dsl *d, const char *from, const char *type,
                                mir_counter *counter, const char *why) {
  mir_counter_inc(counter);
  mir_log(MIR_LOG_DEBUG, DSL_LOG, "%s: dropping message of type %.64s from %.64s: %s", d->id,
          type != NULL ? type : "(none)", from, why);
  return MIR_OK;
}

/* Decodes the message of a mir.MessageReceived and runs its handlers. */
static mir_err dsl_on_message(mir_dsl *d, const Mir__MessageReceived *mr) {
  const char *from = mr->from != NULL ? mr->from : "";
  const Mir__PackedMessage *pm = mr->msg;
  if (pm == NULL || pm->type == NULL) {
    return dsl_drop_message(d, from, NULL, d->m_unhandled, "no message");
  }
  const ProtobufCMessageDescriptor *desc = mir_registry_find(pm->type);
  const dsl_type *ty = desc != NULL ? dsl_table_find(&d->messages, desc) : NULL;
  if (ty == NULL) {
    return dsl_drop_message(d, from, pm->type, d->m_unhandled, "no handler");
  }
  ProtobufCMessage *msg = NULL;
  if (mir_message_unpack(pm, d->message_bytes_max, &msg) != MIR_OK) {
    mir_error_clear();
    return dsl_drop_message(d, from, pm->type, d->m_undecodable, "cannot decode");
  }
  mir_counter_inc(d->m_messages);
  mir_err err = MIR_OK;
  for (size_t i = 0; i < ty->handlers.n && err == MIR_OK; i++) {
    err = ty->handlers.fns[i].msg(d, from, msg, d->user);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  return err;
}

static mir_err dsl_apply_event(mir_dsl *d, const mir_event *ev) {
  if (ev->payload == NULL) {
    return mir_error_set(MIR_EINVAL, "module %s: event without payload", d->id);
  }
  const dsl_type *ty = dsl_table_find(&d->events, ev->payload->descriptor);
  for (size_t i = 0; ty != NULL && i < ty->handlers.n; i++) {
    mir_err err = ty->handlers.fns[i].ev(d, ev, d->user);
    if (err != MIR_OK) return err;
  }
  if (mir_event_is(ev, &mir__message_received__descriptor)) {
    return dsl_on_message(d, (const Mir__MessageReceived *)ev->payload);
  }
  if (ty == NULL && !mir_event_is(ev, &mir__init__descriptor)) {
    return mir_error_set(MIR_EINVAL, "module %s: no handler for event type %s", d->id,
                         mir_event_type_name(ev));
  }
  return MIR_OK;
}

static mir_err dsl_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_dsl *d = state;
  MIR_ASSERT(!d->in_apply); /* handlers must not re-enter their own module */
  d->in_apply = true;
  mir_err err = MIR_OK;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    err = dsl_apply_event(d, ev);
    if (err == MIR_OK) err = dsl_run_checks(d, &d->after_event);
    if (err != MIR_OK) break;
  }
  if (err == MIR_OK) err = dsl_run_checks(d, &d->after_batch);
  d->in_apply = false;
  dsl_dispose_pending(d);
  mir_event_list_concat(out, &d->out);
  return err;
}

static void dsl_destroy(void *state) {
  mir_dsl_free(state);
}

static mir_metrics *dsl_metrics(void *state) {
  return ((mir_dsl *)state)->metrics;
}

const mir_module_ops mir_dsl_ops = {
    .name = "dsl",
    .kind = MIR_MODULE_PASSIVE,
    .apply = dsl_apply,
    .destroy = dsl_destroy,
    .metrics = dsl_metrics,
    .peer_messages = true,
};
