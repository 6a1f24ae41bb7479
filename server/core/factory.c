/*
 * The factory module: dynamic passive submodules "f/<name>" under a factory mounted as "f".
 *
 * apply() walks its batch once. An event for a submodule is moved to that submodule's pending
 * list; the submodules with pending events form a FIFO in the order of their first event, so the
 * output order depends only on the input (no hash-table order leaks out). An event addressed to
 * the factory itself first flushes every pending list (so that events before a NewSubmodule or a
 * GarbageCollect are applied before it), then takes effect. The batch ends with a final flush.
 *
 * Early messages: a mir.MessageReceived for a submodule that does not exist is kept in the
 * message buffer. Each message sits in two doubly linked FIFOs: its submodule's queue (replay
 * order) and its sender's queue (eviction order). Senders are kept in a max-heap by bytes used,
 * so "evict the oldest message of the sender using the most bytes" is O(log senders).
 *
 * Invariants:
 *  - msgbuf_used == sum of the charges of buffered messages <= params.msgbuf_bytes;
 *  - a sender or queue exists exactly while it holds at least one message;
 *  - every sender is in the heap at position heap_pos, and heap[i]->bytes >= its children's;
 *  - a submodule is on the pending FIFO exactly when its pending list is non-empty (queued);
 *  - pending lists are empty whenever an event addressed to the factory itself is handled.
 */
#include "mir/factory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "mir/metrics.h"
#include "mir/registry.h"

#define FAC_LOG "factory"
#define FAC_BUCKETS_MIN 16

/* ---- a small intrusive string-keyed hash map ---- */

/* Embedded as the first member of every mapped struct, so a node pointer converts back to its
 * struct. key points into the struct and lives as long as it. */
typedef struct fac_hnode fac_hnode;
struct fac_hnode {
  fac_hnode *hnext;
  const char *key;
  uint64_t hash;
};

typedef struct fac_map {
  fac_hnode **buckets;
  size_t nbuckets; /* a power of two */
  size_t len;
} fac_map;

/* FNV-1a: deterministic across runs, which keeps iteration order reproducible. */
static uint64_t fac_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s != '\0'; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
  return h;
}

static void fac_map_init(fac_map *m) {
  m->nbuckets = FAC_BUCKETS_MIN;
  m->buckets = mir_xcalloc(m->nbuckets, sizeof(*m->buckets));
  m->len = 0;
}

static fac_hnode *fac_map_find(const fac_map *m, const char *key) {
  uint64_t h = fac_hash(key);
  for (fac_hnode *n = m->buckets[h & (m->nbuckets - 1)]; n != NULL; n = n->hnext) {
    if (n->hash == h && strcmp(n->key, key) == 0) return n;
  }
  return NULL;
}

static void fac_map_grow(fac_map *m) {
  size_t nb = m->nbuckets * 2;
  fac_hnode **b = mir_xcalloc(nb, sizeof(*b));
  for (size_t i = 0; i < m->nbuckets; i++) {
    fac_hnode *n = m->buckets[i];
    while (n != NULL) {
      fac_hnode *next = n->hnext;
      n->hnext = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
      n = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

/* Inserts n, whose key is set and not yet in m. */
static void fac_map_insert(fac_map *m, fac_hnode *n) {
  if (m->len >= m->nbuckets) fac_map_grow(m);
  n->hash = fac_hash(n->key);
  fac_hnode **head = &m->buckets[n->hash & (m->nbuckets - 1)];
  n->hnext = *head;
  *head = n;
  m->len++;
}

static void fac_map_remove(fac_map *m, fac_hnode *n) {
  fac_hnode **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
  while (*pp != n) {
    MIR_ASSERT(*pp != NULL);
    pp = &(*pp)->hnext;
  }
  *pp = n->hnext;
  m->len--;
}

/* ---- types ---- */

typedef struct fac_sub fac_sub;
struct fac_sub {
  fac_hnode h; /* key: id */
  char id[MIR_MODULE_ID_MAX];
  const mir_module_ops *ops;
  void *state;
  uint64_t retention;
  mir_event_list pending;
  fac_sub *next_pending;
  bool queued;
  mir_metrics *set; /* the submodule's own set, hung below the factory's (borrowed) */
};

typedef struct fac_msg fac_msg;
typedef struct fac_sender fac_sender;
typedef struct fac_queue fac_queue;

struct fac_msg {
  mir_event *ev; /* owned mir.MessageReceived */
  size_t charge;
  fac_sender *sender;
  fac_queue *queue;
  fac_msg *q_prev, *q_next; /* in queue, oldest first */
  fac_msg *s_prev, *s_next; /* in sender, oldest first */
};

/* Early messages for one submodule that does not exist (yet). */
struct fac_queue {
  fac_hnode h; /* key: id */
  char id[MIR_MODULE_ID_MAX];
  fac_msg *head, *tail;
};

struct fac_sender {
  fac_hnode h; /* key: name */
  char *name;
  size_t bytes;
  size_t heap_pos;
  fac_msg *head, *tail;
};

struct mir_factory {
  char id[MIR_MODULE_ID_MAX];
  size_t id_len;
  mir_factory_params params;
  uint64_t retention;
  fac_map subs;
  fac_sub *pending_head, *pending_tail;
  fac_map queues;
  fac_map senders;
  fac_sender **heap; /* max-heap by bytes */
  size_t heap_len, heap_cap;
  size_t msgbuf_used, msgbuf_msgs;
  /* Own metrics; a collected submodule's counters fold into this set. */
  mir_metrics *metrics;
  mir_counter *buffered, *evicted, *dropped, *replayed;
  mir_gauge *submodules, *msgbuf_bytes, *msgbuf_count, *retention_g;
};

/* ---- the senders' max-heap ---- */

static void fac_heap_set(mir_factory *f, size_t i, fac_sender *s) {
  f->heap[i] = s;
  s->heap_pos = i;
}

static void fac_heap_up(mir_factory *f, size_t i) {
  fac_sender *s = f->heap[i];
  while (i > 0 && f->heap[(i - 1) / 2]->bytes < s->bytes) {
    fac_heap_set(f, i, f->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  fac_heap_set(f, i, s);
}

static void fac_heap_down(mir_factory *f, size_t i) {
  fac_sender *s = f->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= f->heap_len) break;
    if (c + 1 < f->heap_len && f->heap[c + 1]->bytes > f->heap[c]->bytes) c++;
    if (f->heap[c]->bytes <= s->bytes) break;
    fac_heap_set(f, i, f->heap[c]);
    i = c;
  }
  fac_heap_set(f, i, s);
}

static void fac_heap_push(mir_factory *f, fac_sender *s) {
  if (f->heap_len == f->heap_cap) {
    f->heap_cap = f->heap_cap ? f->heap_cap * 2 : 16;
    f->heap = mir_xrealloc(f->heap, f->heap_cap * sizeof(*f->heap));
  }
  fac_heap_set(f, f->heap_len++, s);
  fac_heap_up(f, s->heap_pos);
}

static void fac_heap_remove(mir_factory *f, fac_sender *s) {
  size_t i = s->heap_pos;
  MIR_ASSERT(i < f->heap_len && f->heap[i] == s);
  fac_sender *last = f->heap[--f->heap_len];
  if (last == s) return;
  fac_heap_set(f, i, last);
  fac_heap_up(f, i);
  fac_heap_down(f, last->heap_pos);
}

/* ---- the early-message buffer ---- */

static fac_sender *fac_sender_find(mir_factory *f, const char *name) {
  return (fac_sender *)fac_map_find(&f->senders, name);
}

static fac_sender *fac_sender_get(mir_factory *f, const char *name) {
  fac_sender *s = fac_sender_find(f, name);
  if (s != NULL) return s;
  s = mir_xcalloc(1, sizeof(*s));
  s->name = mir_xstrdup(name);
  s->h.key = s->name;
  fac_map_insert(&f->senders, &s->h);
  fac_heap_push(f, s);
  return s;
}

static fac_queue *fac_queue_get(mir_factory *f, const char *sub_id) {
  fac_queue *q = (fac_queue *)fac_map_find(&f->queues, sub_id);
  if (q != NULL) return q;
  q = mir_xcalloc(1, sizeof(*q));
  snprintf(q->id, sizeof(q->id), "%s", sub_id);
  q->h.key = q->id;
  fac_map_insert(&f->queues, &q->h);
  return q;
}

/* Unlinks m from its queue and sender, releasing either once empty. Returns m's event (owned)
 * and frees m. */
static mir_event *fac_msg_remove(mir_factory *f, fac_msg *m) {
  fac_queue *q = m->queue;
  fac_sender *s = m->sender;
  if (m->q_prev)
    m->q_prev->q_next = m->q_next;
  else
    q->head = m->q_next;
  if (m->q_next)
    m->q_next->q_prev = m->q_prev;
  else
    q->tail = m->q_prev;
  if (m->s_prev)
    m->s_prev->s_next = m->s_next;
  else
    s->head = m->s_next;
  if (m->s_next)
    m->s_next->s_prev = m->s_prev;
  else
    s->tail = m->s_prev;
  s->bytes -= m->charge;
  f->msgbuf_used -= m->charge;
  mir_gauge_set(f->msgbuf_bytes, (int64_t)f->msgbuf_used);
  f->msgbuf_msgs--;
  mir_gauge_set(f->msgbuf_count, (int64_t)f->msgbuf_msgs);
  if (s->head == NULL) {
    fac_heap_remove(f, s);
    fac_map_remove(&f->senders, &s->h);
    free(s->name);
    free(s);
  } else {
    fac_heap_down(f, s->heap_pos);
  }
  if (q->head == NULL) {
    fac_map_remove(&f->queues, &q->h);
    free(q);
  }
  mir_event *ev = m->ev;
  free(m);
  return ev;
}

static void fac_evict_oldest(mir_factory *f, fac_sender *s) {
  mir_log(MIR_LOG_DEBUG, FAC_LOG, "%s: buffer full, evicting a message from %s", f->id, s->name);
  mir_event_free(fac_msg_remove(f, s->head));
  mir_counter_inc(f->evicted);
}

static void fac_drop(mir_factory *f, mir_event *ev, const char *why) {
  mir_log(MIR_LOG_DEBUG, FAC_LOG, "%s: dropping %s for %s (%s)", f->id, mir_event_type_name(ev),
          ev->dest, why);
  mir_event_free(ev);
  mir_counter_inc(f->dropped);
}

/* Makes room for `charge` bytes from sender `from` by the fairness rule: evict from whoever uses
 * the most bytes, counting the new message to its sender; ties go against the newcomer. Returns
 * false if the new message itself has to go (its sender would be the biggest user and holds
 * nothing else to give up). */
static bool fac_msgbuf_make_room(mir_factory *f, const char *from, size_t charge) {
  while (f->msgbuf_used + charge > f->params.msgbuf_bytes) {
    MIR_ASSERT(f->heap_len > 0); /* used > 0 because charge <= bound */
    fac_sender *top = f->heap[0];
    fac_sender *own = fac_sender_find(f, from);
    size_t own_bytes = own != NULL ? own->bytes : 0;
    if (own_bytes + charge >= top->bytes) {
      if (own == NULL) return false;
      fac_evict_oldest(f, own);
    } else {
      fac_evict_oldest(f, top);
    }
  }
  return true;
}

/* Buffers ev (takes ownership), a mir.MessageReceived for the missing submodule sub_id. */
static void fac_msgbuf_add(mir_factory *f, const char *sub_id, mir_event *ev) {
  const Mir__MessageReceived *mr = (const Mir__MessageReceived *)ev->payload;
  const char *from = mr->from != NULL ? mr->from : "";
  size_t charge = protobuf_c_message_get_packed_size(ev->payload) + MIR_FACTORY_MSG_OVERHEAD;
  if (charge > f->params.msgbuf_bytes) {
    fac_drop(f, ev, "message larger than the early-message buffer");
    return;
  }
  if (!fac_msgbuf_make_room(f, from, charge)) {
    fac_drop(f, ev, "sender's fair share of the early-message buffer is used up");
    return;
  }
  fac_msg *m = mir_xcalloc(1, sizeof(*m));
  m->ev = ev;
  m->charge = charge;
  m->sender = fac_sender_get(f, from);
  m->queue = fac_queue_get(f, sub_id);
  m->q_prev = m->queue->tail;
  if (m->queue->tail)
    m->queue->tail->q_next = m;
  else
    m->queue->head = m;
  m->queue->tail = m;
  m->s_prev = m->sender->tail;
  if (m->sender->tail)
    m->sender->tail->s_next = m;
  else
    m->sender->head = m;
  m->sender->tail = m;
  m->sender->bytes += charge;
  fac_heap_up(f, m->sender->heap_pos);
  f->msgbuf_used += charge;
  mir_gauge_set(f->msgbuf_bytes, (int64_t)f->msgbuf_used);
  f->msgbuf_msgs++;
  mir_gauge_set(f->msgbuf_count, (int64_t)f->msgbuf_msgs);
  mir_counter_inc(f->buffered);
}

/* Moves every buffered message for sub_id, oldest first, to the end of out. */
static void fac_msgbuf_take(mir_factory *f, const char *sub_id, mir_event_list *out) {
  fac_queue *q = (fac_queue *)fac_map_find(&f->queues, sub_id);
  while (q != NULL) {
    bool last = q->head == q->tail;
    mir_event_list_push(out, fac_msg_remove(f, q->head));
    mir_counter_inc(f->replayed);
    if (last) q = NULL; /* fac_msg_remove freed it */
  }
}

/* ---- submodules ---- */

/* Frees sub; with fold its counters are added to the factory's first (garbage collection). */
static void fac_sub_free(fac_sub *sub, bool fold) {
  mir_event_list_free(&sub->pending);
  if (sub->set != NULL) mir_metrics_detach(sub->set, fold);
  if (sub->ops->destroy != NULL) sub->ops->destroy(sub->state);
  free(sub);
}

/* Applies in (takes ownership of its events) to sub, appending sub's output to out. A failure
 * is reported with the submodule's id in front of its detail. */
static mir_err fac_sub_apply(fac_sub *sub, mir_event_list *in, mir_event_list *out) {
  mir_err err = sub->ops->apply(sub->state, in, out);
  mir_event_list_free(in);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s: %s", sub->id, detail);
  }
  return MIR_OK;
}

/* Applies every submodule's pending events, in the order the submodules got their first one. */
static mir_err fac_flush(mir_factory *f, mir_event_list *out) {
  while (f->pending_head != NULL) {
    fac_sub *sub = f->pending_head;
    f->pending_head = sub->next_pending;
    if (f->pending_head == NULL) f->pending_tail = NULL;
    sub->next_pending = NULL;
    sub->queued = false;
    mir_event_list batch = sub->pending;
    mir_event_list_init(&sub->pending);
    mir_err err = fac_sub_apply(sub, &batch, out);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

static void fac_sub_enqueue(mir_factory *f, fac_sub *sub, mir_event *ev) {
  mir_event_list_push(&sub->pending, ev);
  if (sub->queued) return;
  sub->queued = true;
  if (f->pending_tail != NULL)
    f->pending_tail->next_pending = sub;
  else
    f->pending_head = sub;
  f->pending_tail = sub;
}

/* Length of the submodule id that dest (below the factory) falls under: the factory's id and
 * id_depth more components. 0 if dest has fewer components. */
static size_t fac_sub_id_len(const mir_factory *f, const char *dest) {
  size_t len = f->id_len;
  for (unsigned d = 0; d < f->params.id_depth; d++) {
    if (dest[len] != '/') return 0;
    len++;
    len += strcspn(dest + len, "/");
  }
  return len;
}

/* True if id is "<factory id>/<c1>/.../<c_depth>". */
static bool fac_own_sub_id(const mir_factory *f, const char *id) {
  if (!mir_module_id_valid(id) || strncmp(id, f->id, f->id_len) != 0) return false;
  size_t len = fac_sub_id_len(f, id);
  return len > 0 && id[len] == '\0';
}

/* Decodes a submodule's parameters. *out is NULL when none were given, else an owned tree. */
static mir_err fac_decode_params(const mir_factory *f, const Mir__AnyMessage *any,
                                 ProtobufCMessage **out) {
  *out = NULL;
  if (any == NULL || any->type == NULL || any->type[0] == '\0') return MIR_OK;
  const ProtobufCMessageDescriptor *desc = mir_registry_find(any->type);
  if (desc == NULL) {
    return mir_error_set(MIR_ENOTFOUND, "factory %s: parameter type %s is not registered", f->id,
                         any->type);
  }
  *out = protobuf_c_message_unpack(desc, NULL, any->data.len, any->data.data);
  if (*out == NULL) {
    return mir_error_set(MIR_EPROTO, "factory %s: cannot decode parameters of type %s", f->id,
                         any->type);
  }
  return MIR_OK;
}

/* Asks the generator for the submodule and registers it. *out is borrowed from f. */
static mir_err fac_create(mir_factory *f, const Mir__NewSubmodule *ns, fac_sub **out) {
  ProtobufCMessage *params = NULL;
  mir_err err = fac_decode_params(f, ns->params, &params);
  if (err != MIR_OK) return err;
  const mir_module_ops *ops = NULL;
  void *state = NULL;
  err = f->params.create(f->params.user_data, ns->submodule_id, params, &ops, &state);
  if (params != NULL) protobuf_c_message_free_unpacked(params, NULL);
  if (err != MIR_OK) return err;
  if (ops == NULL || ops->apply == NULL || ops->kind != MIR_MODULE_PASSIVE) {
    if (ops != NULL && ops->destroy != NULL) ops->destroy(state);
    return mir_error_set(MIR_EINVAL, "factory %s: generator gave no passive module for %s", f->id,
                         ns->submodule_id);
  }
  fac_sub *sub = mir_xcalloc(1, sizeof(*sub));
  snprintf(sub->id, sizeof(sub->id), "%s", ns->submodule_id);
  sub->h.key = sub->id;
  sub->ops = ops;
  sub->state = state;
  sub->retention = ns->retention_index;
  mir_event_list_init(&sub->pending);
  sub->set = ops->metrics != NULL ? ops->metrics(state) : NULL;
  if (sub->set != NULL) mir_metrics_attach(f->metrics, sub->set);
  fac_map_insert(&f->subs, &sub->h);
  mir_gauge_set(f->submodules, (int64_t)f->subs.len);
  *out = sub;
  return MIR_OK;
}

/* Handles mir.NewSubmodule: create, apply Init, then replay the early messages. */
static mir_err fac_on_new_submodule(mir_factory *f, const Mir__NewSubmodule *ns,
                                    mir_event_list *out) {
  const char *sid = ns->submodule_id != NULL ? ns->submodule_id : "";
  if (!fac_own_sub_id(f, sid)) {
    return mir_error_set(MIR_EINVAL, "factory %s: invalid submodule id '%s'", f->id, sid);
  }
  if (ns->retention_index < f->retention) {
    mir_log(MIR_LOG_INFO, FAC_LOG, "%s: not creating %s: retention index %llu is below %llu", f->id,
            sid, (unsigned long long)ns->retention_index, (unsigned long long)f->retention);
    return MIR_OK;
  }
  if (fac_map_find(&f->subs, sid) != NULL) {
    mir_log(MIR_LOG_WARN, FAC_LOG, "%s: submodule %s already exists", f->id, sid);
    return MIR_OK;
  }
  if (f->subs.len >= f->params.submodules_max) {
    return mir_error_set(MIR_EFULL, "factory %s: more than %zu submodules", f->id,
                         f->params.submodules_max);
  }
  fac_sub *sub = NULL;
  mir_err err = fac_create(f, ns, &sub);
  if (err != MIR_OK) return err;
  mir_event_list batch = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&batch, mir_event_init(sid));
  err = fac_sub_apply(sub, &batch, out);
  if (err != MIR_OK) return err;
  fac_msgbuf_take(f, sid, &batch);
  if (batch.len == 0) return MIR_OK;
  return fac_sub_apply(sub, &batch, out);
}

/* Handles mir.GarbageCollect: destroys every submodule registered below r. Monotonic. */
static void fac_on_gc(mir_factory *f, uint64_t r) {
  if (r <= f->retention) return;
  f->retention = r;
  mir_gauge_set(f->retention_g, (int64_t)r);
  for (size_t i = 0; i < f->subs.nbuckets; i++) {
    fac_hnode **pp = &f->subs.buckets[i];
    while (*pp != NULL) {
      fac_sub *sub = (fac_sub *)*pp;
      if (sub->retention >= r) {
        pp = &(*pp)->hnext;
        continue;
      }
      MIR_ASSERT(!sub->queued); /* flushed before any factory event */
      *pp = sub->h.hnext;
      f->subs.len--;
      fac_sub_free(sub, true);
    }
  }
  mir_gauge_set(f->submodules, (int64_t)f->subs.len);
}

/* ---- the module ---- */

static mir_err fac_apply_own(mir_factory *f, const mir_event *ev, mir_event_list *out) {
  if (mir_event_is(ev, &mir__init__descriptor)) return MIR_OK;
  if (mir_event_is(ev, &mir__new_submodule__descriptor)) {
    return fac_on_new_submodule(f, (const Mir__NewSubmodule *)ev->payload, out);
  }
  if (mir_event_is(ev, &mir__garbage_collect__descriptor)) {
    fac_on_gc(f, ((const Mir__GarbageCollect *)ev->payload)->retention_index);
    return MIR_OK;
  }
  if (mir_event_is(ev, &mir__message_received__descriptor)) {
    /* A peer addressed the factory itself, which takes no messages: its input, not our bug. */
    mir_log(MIR_LOG_DEBUG, FAC_LOG, "%s: dropping a peer message for the factory itself (from %s)",
            f->id, ev->src);
    mir_counter_inc(f->dropped);
    return MIR_OK;
  }
  return mir_error_set(MIR_EINVAL, "factory %s: unexpected event type %s", f->id,
                       mir_event_type_name(ev));
}

/* Routes ev (takes ownership), addressed below the factory, to its submodule's pending list,
 * the early-message buffer, or the drop counter. */
static void fac_route(mir_factory *f, mir_event *ev) {
  char sub_id[MIR_MODULE_ID_MAX];
  size_t len = fac_sub_id_len(f, ev->dest);
  if (len == 0) {
    fac_drop(f, ev, "destination names no submodule");
    return;
  }
  memcpy(sub_id, ev->dest, len);
  sub_id[len] = '\0';
  fac_sub *sub = (fac_sub *)fac_map_find(&f->subs, sub_id);
  if (sub != NULL) {
    fac_sub_enqueue(f, sub, ev);
  } else if (mir_event_is(ev, &mir__message_received__descriptor)) {
    fac_msgbuf_add(f, sub_id, ev);
  } else {
    fac_drop(f, ev, "no such submodule");
  }
}

static mir_err fac_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_factory *f = state;
  mir_event *prev = NULL;
  mir_event *ev = in->head;
  while (ev != NULL) {
    mir_event *next = ev->next;
    if (strncmp(ev->dest, f->id, f->id_len) != 0 ||
        (ev->dest[f->id_len] != '\0' && ev->dest[f->id_len] != '/')) {
      return mir_error_set(MIR_EINVAL, "factory %s: got an event for %s", f->id, ev->dest);
    }
    if (ev->dest[f->id_len] == '\0') {
      mir_err err = fac_flush(f, out);
      if (err == MIR_OK) err = fac_apply_own(f, ev, out);
      if (err != MIR_OK) return err;
      prev = ev;
    } else {
      fac_route(f, mir_event_list_unlink(in, prev, ev));
    }
    ev = next;
  }
  return fac_flush(f, out);
}

static void fac_destroy(void *state) {
  mir_factory_free(state);
}

static mir_metrics *fac_metrics(void *state) {
  return ((mir_factory *)state)->metrics;
}

/* Registers the factory's own metrics. */
static void fac_metrics_init(mir_factory *f) {
  mir_metrics *m = f->metrics = mir_metrics_new(f->id);
  const char *help =
      "Early peer messages for submodules that did not exist yet, by what became "
      "of them (buffered, evicted, dropped, replayed).";
  f->buffered =
      mir_metrics_counter(m, "mir_factory_early_messages_total", help, "reason", "buffered");
  f->evicted =
      mir_metrics_counter(m, "mir_factory_early_messages_total", help, "reason", "evicted");
  f->dropped =
      mir_metrics_counter(m, "mir_factory_early_messages_total", help, "reason", "dropped");
  f->replayed =
      mir_metrics_counter(m, "mir_factory_early_messages_total", help, "reason", "replayed");
  f->submodules =
      mir_metrics_gauge(m, "mir_factory_submodules", "Live submodules of the factory.", NULL, NULL);
  f->msgbuf_bytes = mir_metrics_gauge(m, "mir_factory_early_buffer_bytes",
                                      "Bytes charged to the early-message buffer.", NULL, NULL);
  f->msgbuf_count = mir_metrics_gauge(m, "mir_factory_early_buffer_messages",
                                      "Messages in the early-message buffer.", NULL, NULL);
  f->retention_g = mir_metrics_gauge_max(
      m, "mir_factory_retention_index",
      "The factory's retention index: submodules registered below it were collected.", NULL, NULL);
}

const mir_module_ops mir_factory_ops = {
    .name = "factory",
    .kind = MIR_MODULE_PASSIVE,
    .apply = fac_apply,
    .destroy = fac_destroy,
    .peer_messages = true,
    .metrics = fac_metrics,
};

void mir_factory_params_default(mir_factory_params *p, mir_factory_create_fn create,
                                void *user_data) {
  memset(p, 0, sizeof(*p));
  p->create = create;
  p->user_data = user_data;
  p->msgbuf_bytes = MIR_FACTORY_MSGBUF_BYTES_DEFAULT;
  p->submodules_max = MIR_FACTORY_SUBMODULES_MAX_DEFAULT;
}

mir_err mir_factory_new(const char *id, const mir_factory_params *params, mir_factory **out) {
  *out = NULL;
  if (id == NULL || !mir_module_id_valid(id) || strchr(id, '/') != NULL) {
    return mir_error_set(MIR_EINVAL, "factory: invalid module id '%s'", id ? id : "(null)");
  }
  if (params == NULL || params->create == NULL) {
    return mir_error_set(MIR_EINVAL, "factory %s: no create callback", id);
  }
  if (params->id_depth > MIR_FACTORY_ID_DEPTH_MAX) {
    return mir_error_set(MIR_EINVAL, "factory %s: id_depth %u exceeds %d", id, params->id_depth,
                         MIR_FACTORY_ID_DEPTH_MAX);
  }
  mir_factory *f = mir_xcalloc(1, sizeof(*f));
  snprintf(f->id, sizeof(f->id), "%s", id);
  f->id_len = strlen(f->id);
  f->params = *params;
  if (f->params.msgbuf_bytes == 0) f->params.msgbuf_bytes = MIR_FACTORY_MSGBUF_BYTES_DEFAULT;
  if (f->params.submodules_max == 0) f->params.submodules_max = MIR_FACTORY_SUBMODULES_MAX_DEFAULT;
  if (f->params.id_depth == 0) f->params.id_depth = 1;
  fac_map_init(&f->subs);
  fac_map_init(&f->queues);
  fac_map_init(&f->senders);
  fac_metrics_init(f);
  *out = f;
  return MIR_OK;
}

void mir_factory_free(mir_factory *f) {
  if (f == NULL) return;
  for (size_t i = 0; i < f->subs.nbuckets; i++) {
    fac_hnode *n = f->subs.buckets[i];
    while (n != NULL) {
      fac_hnode *next = n->hnext;
      fac_sub_free((fac_sub *)n, false);
      n = next;
    }
  }
  while (f->heap_len > 0) mir_event_free(fac_msg_remove(f, f->heap[0]->head));
  free(f->subs.buckets);
  free(f->queues.buckets);
  free(f->senders.buckets);
  free(f->heap);
  mir_metrics_free(f->metrics);
  free(f);
}
