/*
 * The simulated store and the store module.
 *
 * The store is an in-memory key-value map owned by the simulation, one per node slot. It stands
 * for the disk: it lives outside the node, so a crash (which frees the node and every module)
 * keeps it, and a wiped restart clears it. A direct mir_sim_store_put is durable when the call
 * returns; there is no partial put, because a simulated crash happens between steps, never in
 * the middle of a module's apply.
 *
 * Keys are kept sorted (binary search, memmove on insert): stores in simulations hold at most a
 * few thousand keys, and sorted keys make iteration (mir_sim_store_at) deterministic. Counts and
 * bytes are bounded (MIR_SIM_STORE_KEYS_MAX, MIR_SIM_STORE_BYTES_MAX).
 *
 * The store module implements the store contract (mir/storage.h) over that map the way a real
 * disk behaves under group commit: a write is not durable when it is accepted but when a sync
 * covering it completes. Each node has one queue of unsynced writes (one disk, whatever the
 * number of store modules) in arrival order. When a batch leaves writes queued and no sync is in
 * flight, a sync starts covering all of them and completes after a delay drawn from the store
 * stream of the generator; writes arriving meanwhile wait for the next sync, which starts when
 * that one completes. Completion is a scheduled action tagged with the node's incarnation, like
 * a timer, so a sync started before a crash never completes. At completion the covered writes'
 * ops are applied in order, then their then events are injected in order.
 *
 * A crash decides the fate of every unsynced write, including those of the sync in flight:
 * usually all are lost; with probability torn_ppm a random prefix in FIFO order (whole writes:
 * a write is atomic, like a RocksDB WriteBatch) reached the disk before the power went, and is
 * applied, but never acknowledged: its then events are never released. This is what a protocol
 * must survive: after a restart the store may hold more than the node ever acted on, never less
 * than what it acted on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

typedef struct store_entry {
  uint8_t *key;
  size_t key_len;
  uint8_t *val;
  size_t val_len;
} store_entry;

struct mir_sim_store {
  store_entry *e;
  size_t len, cap;
  size_t bytes;
};

mir_sim_store *mir_sim_store_new(void) {
  return mir_xcalloc(1, sizeof(mir_sim_store));
}

void mir_sim_store_clear(mir_sim_store *st) {
  for (size_t i = 0; i < st->len; i++) {
    free(st->e[i].key);
    free(st->e[i].val);
  }
  st->len = 0;
  st->bytes = 0;
}

void mir_sim_store_free(mir_sim_store *st) {
  if (st == NULL) return;
  mir_sim_store_clear(st);
  free(st->e);
  free(st);
}

static int store_cmp(const store_entry *e, const void *key, size_t key_len) {
  size_t n = e->key_len < key_len ? e->key_len : key_len;
  int c = n ? memcmp(e->key, key, n) : 0;
  if (c != 0) return c;
  return e->key_len < key_len ? -1 : e->key_len > key_len ? 1 : 0;
}

/* Index of key, or of where it would go; *found tells which. */
static size_t store_find(const mir_sim_store *st, const void *key, size_t key_len, bool *found) {
  size_t lo = 0, hi = st->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = store_cmp(&st->e[mid], key, key_len);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *found = false;
  return lo;
}

mir_err mir_sim_store_put(mir_sim_store *st, const void *key, size_t key_len, const void *value,
                          size_t len) {
  bool found;
  size_t i = store_find(st, key, key_len, &found);
  size_t old = found ? st->e[i].key_len + st->e[i].val_len : 0;
  if (st->bytes - old + key_len + len > MIR_SIM_STORE_BYTES_MAX ||
      (!found && st->len >= MIR_SIM_STORE_KEYS_MAX)) {
    return mir_error_set(MIR_EFULL, "sim store: more than %d keys or %zu bytes",
                         MIR_SIM_STORE_KEYS_MAX, MIR_SIM_STORE_BYTES_MAX);
  }
  if (!found) {
    if (st->len == st->cap) {
      st->cap = st->cap ? st->cap * 2 : 16;
      st->e = mir_xrealloc(st->e, st->cap * sizeof *st->e);
    }
    memmove(&st->e[i + 1], &st->e[i], (st->len - i) * sizeof *st->e);
    st->len++;
    st->e[i].key = mir_xmalloc(key_len ? key_len : 1);
    if (key_len) memcpy(st->e[i].key, key, key_len);
    st->e[i].key_len = key_len;
  } else {
    free(st->e[i].val);
  }
  st->e[i].val = mir_xmalloc(len ? len : 1);
  if (len) memcpy(st->e[i].val, value, len);
  st->e[i].val_len = len;
  st->bytes = st->bytes - old + key_len + len;
  return MIR_OK;
}

bool mir_sim_store_get(const mir_sim_store *st, const void *key, size_t key_len, const void **value,
                       size_t *len) {
  bool found;
  size_t i = store_find(st, key, key_len, &found);
  if (!found) return false;
  if (value) *value = st->e[i].val;
  if (len) *len = st->e[i].val_len;
  return true;
}

bool mir_sim_store_delete(mir_sim_store *st, const void *key, size_t key_len) {
  bool found;
  size_t i = store_find(st, key, key_len, &found);
  if (!found) return false;
  st->bytes -= st->e[i].key_len + st->e[i].val_len;
  free(st->e[i].key);
  free(st->e[i].val);
  memmove(&st->e[i], &st->e[i + 1], (st->len - i - 1) * sizeof *st->e);
  st->len--;
  return true;
}

size_t mir_sim_store_delete_range(mir_sim_store *st, const void *begin, size_t blen,
                                  const void *end, size_t elen) {
  bool found;
  size_t lo = store_find(st, begin, blen, &found);
  size_t hi = store_find(st, end, elen, &found);
  if (hi <= lo) return 0; /* empty or inverted */
  for (size_t i = lo; i < hi; i++) {
    st->bytes -= st->e[i].key_len + st->e[i].val_len;
    free(st->e[i].key);
    free(st->e[i].val);
  }
  memmove(&st->e[lo], &st->e[hi], (st->len - hi) * sizeof *st->e);
  st->len -= hi - lo;
  return hi - lo;
}

size_t mir_sim_store_count(const mir_sim_store *st) {
  return st->len;
}

bool mir_sim_store_at(const mir_sim_store *st, size_t i, const uint8_t **key, size_t *klen,
                      const uint8_t **val, size_t *vlen) {
  if (i >= st->len) return false;
  if (key) *key = st->e[i].key;
  if (klen) *klen = st->e[i].key_len;
  if (val) *val = st->e[i].val;
  if (vlen) *vlen = st->e[i].val_len;
  return true;
}

mir_sim_store *mir_sim_node_store(mir_sim *sim, size_t node) {
  return node < sim->cfg.nodes ? sim->nodes[node].store : NULL;
}

/* ---- unsynced writes ---- */

/* Applies the ops of w (borrowed) to st in order. MIR_EFULL (detail set) past the store's
 * bounds; the write is then partly applied, which only a failed run ever sees. */
static mir_err store_apply_ops(mir_sim_store *st, const Mir__StoreWrite *w) {
  for (size_t i = 0; i < w->n_ops; i++) {
    const Mir__StoreOp *op = w->ops[i];
    switch (op->kind) {
      case MIR__STORE_OP__KIND__PUT: {
        mir_err err =
            mir_sim_store_put(st, op->key.data, op->key.len, op->value.data, op->value.len);
        if (err != MIR_OK) return err;
        break;
      }
      case MIR__STORE_OP__KIND__DELETE:
        mir_sim_store_delete(st, op->key.data, op->key.len);
        break;
      case MIR__STORE_OP__KIND__DELETE_RANGE:
        mir_sim_store_delete_range(st, op->key.data, op->key.len, op->end.data, op->end.len);
        break;
      default: /* mir_storage_check refused it when it was accepted */
        MIR_ASSERT(false);
    }
  }
  return MIR_OK;
}

static void store_write_free(miri_sim_write *qw) {
  protobuf_c_message_free_unpacked(&qw->w->base, NULL);
  mir_event_list_free(&qw->then);
}

/* Removes the first n unsynced writes of sn (their ops and events must have been taken care
 * of: applied and released, or lost). */
static void store_dequeue(miri_sim_node *sn, size_t n) {
  for (size_t k = 0; k < n; k++) {
    sn->writes_bytes -= sn->writes[k].bytes;
    store_write_free(&sn->writes[k]);
  }
  /* Not with nothing left to move: writes may still be NULL, and memmove takes no NULL. */
  if (sn->n_writes > n) {
    memmove(sn->writes, sn->writes + n, (sn->n_writes - n) * sizeof *sn->writes);
  }
  sn->n_writes -= n;
}

void miri_sim_store_drop(mir_sim *sim, size_t i) {
  miri_sim_node *sn = &sim->nodes[i];
  store_dequeue(sn, sn->n_writes);
  sn->sync_n = 0;
}

/* Starts a sync covering every queued write of node i, if none is in flight. */
static void store_sync_start(mir_sim *sim, size_t i) {
  miri_sim_node *sn = &sim->nodes[i];
  if (sn->sync_n != 0 || sn->n_writes == 0) return;
  const mir_sim_store_model *m = &sim->cfg.store;
  uint64_t delay = mir_sim_rng_range(&sim->store, m->sync_min_ns, m->sync_max_ns);
  sn->sync_n = sn->n_writes;
  miri_sim_action *a = miri_sim_action_new(MIRI_ACT_SYNC, sim->now_ns + delay);
  a->node = (uint32_t)i;
  a->incarnation = sn->incarnation;
  miri_sim_trace(sim, "sync n%zu x%zu start (%llu us)", i, sn->sync_n,
                 (unsigned long long)(delay / 1000));
  miri_sim_schedule(sim, a);
}

void miri_sim_store_sync_done(mir_sim *sim, miri_sim_action *a) {
  miri_sim_node *sn = &sim->nodes[a->node];
  size_t i = a->node;
  bool live = sn->mn != NULL && a->incarnation == sn->incarnation;
  miri_sim_action_free(a);
  if (!live) return; /* the crash already decided what this sync's writes became */
  MIR_ASSERT(sn->sync_n > 0 && sn->sync_n <= sn->n_writes);
  size_t n = sn->sync_n;
  mir_event_list released = MIR_EVENT_LIST_INIT;
  for (size_t k = 0; k < n; k++) {
    mir_err err = store_apply_ops(sn->store, sn->writes[k].w);
    if (err != MIR_OK) {
      char detail[256];
      snprintf(detail, sizeof detail, "%s", mir_error_detail());
      mir_event_list_free(&released);
      mir_sim_fail(sim, "node %zu stopped: sim store: %s", i, detail);
      return;
    }
    mir_event_list_concat(&released, &sn->writes[k].then);
  }
  store_dequeue(sn, n);
  sn->sync_n = 0;
  mir_counter_inc(sim->c.store_syncs);
  miri_sim_trace(sim, "synced n%zu x%zu, releasing %zu events", i, n, released.len);
  store_sync_start(sim, i);
  if (released.len > 0) miri_sim_inject(sim, i, &released);
}

void miri_sim_store_crash(mir_sim *sim, size_t i, char *buf, size_t cap) {
  miri_sim_node *sn = &sim->nodes[i];
  size_t n = sn->n_writes, kept = 0;
  bool torn = false;
  buf[0] = '\0';
  if (n == 0) return;
  if (mir_sim_rng_chance(&sim->store, sim->cfg.store.torn_ppm)) {
    torn = true;
    kept = (size_t)mir_sim_rng_range(&sim->store, 0, n);
  }
  for (size_t k = 0; k < kept; k++) {
    mir_err err = store_apply_ops(sn->store, sn->writes[k].w);
    if (err != MIR_OK) {
      char detail[256];
      snprintf(detail, sizeof detail, "%s", mir_error_detail());
      mir_sim_fail(sim, "node %zu: sim store at a torn crash: %s", i, detail);
      break;
    }
  }
  miri_sim_store_drop(sim, i);
  mir_counter_add(sim->c.store_lost, n - kept);
  mir_counter_add(sim->c.store_torn, kept);
  if (torn) {
    snprintf(buf, cap, ": %zu unsynced writes lost, %zu kept (torn)", n - kept, kept);
  } else {
    snprintf(buf, cap, ": %zu unsynced writes lost", n);
  }
}

/* ---- the store module ---- */

typedef struct store_module {
  mir_sim *sim;
  size_t node;
} store_module;

/* Queues the write of ev (its payload is taken over). With the planted bug release_early its
 * then events go to out at once. */
static mir_err store_accept(store_module *sm, mir_event *ev, mir_event_list *out) {
  miri_sim_node *sn = &sm->sim->nodes[sm->node];
  Mir__StoreWrite *w = (Mir__StoreWrite *)ev->payload;
  mir_err err = mir_storage_check(w);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", mir_error_detail());
    return mir_error_set(err, "sim store %s (from '%s'): %s", ev->dest, ev->src, detail);
  }
  size_t bytes = mir_storage_bytes(w);
  if (sn->n_writes >= MIR_SIM_STORE_PENDING_MAX ||
      bytes > MIR_SIM_STORE_BYTES_MAX - sn->writes_bytes) {
    return mir_error_set(MIR_EFULL, "sim store %s: more than %d writes or %zu bytes unsynced",
                         ev->dest, MIR_SIM_STORE_PENDING_MAX, MIR_SIM_STORE_BYTES_MAX);
  }
  mir_event_list then = MIR_EVENT_LIST_INIT;
  err = mir_storage_release(w, &then);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", mir_error_detail());
    mir_event_list_free(&then);
    return mir_error_set(err, "sim store %s: a then event from '%s' cannot be unpacked: %s",
                         ev->dest, ev->src, detail);
  }
  /* The packed copies of the then events are not needed any more: keep only the ops. */
  for (size_t k = 0; k < w->n_then; k++) protobuf_c_message_free_unpacked(&w->then[k]->base, NULL);
  free(w->then);
  w->then = NULL;
  w->n_then = 0;
  ev->payload = NULL;
  if (sn->n_writes == sn->cap_writes) {
    sn->cap_writes = sn->cap_writes ? sn->cap_writes * 2 : 16;
    sn->writes = mir_xrealloc(sn->writes, sn->cap_writes * sizeof *sn->writes);
  }
  miri_sim_write *qw = &sn->writes[sn->n_writes++];
  qw->w = w;
  mir_event_list_init(&qw->then);
  mir_event_list_concat(sm->sim->cfg.store.release_early ? out : &qw->then, &then);
  qw->bytes = bytes;
  sn->writes_bytes += bytes;
  mir_counter_inc(sm->sim->c.store_writes);
  return MIR_OK;
}

static mir_err store_module_apply(void *state, mir_event_list *in, mir_event_list *out) {
  store_module *sm = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) continue;
    if (!mir_event_is(ev, &mir__store_write__descriptor)) {
      return mir_error_set(MIR_EINVAL, "sim store %s: unexpected event type %s", ev->dest,
                           mir_event_type_name(ev));
    }
    mir_err err = store_accept(sm, ev, out);
    if (err != MIR_OK) return err;
  }
  /* Group commit: the whole batch goes into one sync if the disk is idle. */
  store_sync_start(sm->sim, sm->node);
  return MIR_OK;
}

static void store_module_destroy(void *state) {
  free(state);
}

static const mir_module_ops store_module_ops = {
    .name = "sim-store",
    .kind = MIR_MODULE_PASSIVE,
    .apply = store_module_apply,
    .destroy = store_module_destroy,
};

mir_err mir_sim_add_store(mir_sim *sim, size_t node, mir_node *mn, const char *id) {
  MIR_ASSERT(node < sim->cfg.nodes);
  store_module *sm = mir_xcalloc(1, sizeof *sm);
  sm->sim = sim;
  sm->node = node;
  return mir_node_add_module(mn, id, &store_module_ops, sm);
}
