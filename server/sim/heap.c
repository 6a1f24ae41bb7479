/*
 * The action heap and the uint64 map.
 *
 * The heap is a binary min-heap of scheduled actions ordered by (at_ns, seq). seq is assigned at
 * push time from a counter that never repeats, so actions due at the same virtual time leave the
 * heap in the order they were scheduled: ties never depend on memory addresses or heap shape,
 * which keeps runs reproducible. The heap is bounded (actions_max); a push past the bound is an
 * error the caller turns into a failed run.
 *
 * The map is open addressing with linear probing, grown at half load; the simulator uses it for
 * positions, value ids and value hashes, whose counts are bounded by the run's limits.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

/* ---- actions ---- */

miri_sim_action *miri_sim_action_new(miri_sim_act_kind kind, uint64_t at_ns) {
  miri_sim_action *a = mir_xcalloc(1, sizeof *a);
  a->kind = kind;
  a->at_ns = at_ns;
  mir_event_list_init(&a->events);
  return a;
}

void miri_sim_action_free(miri_sim_action *a) {
  if (a == NULL) return;
  mir_event_list_free(&a->events);
  if (a->msg != NULL) protobuf_c_message_free_unpacked(&a->msg->base, NULL);
  free(a);
}

/* ---- heap ---- */

void miri_sim_heap_init(miri_sim_heap *h, size_t max) {
  memset(h, 0, sizeof *h);
  h->max = max;
}

void miri_sim_heap_free(miri_sim_heap *h) {
  for (size_t i = 0; i < h->len; i++) miri_sim_action_free(h->items[i]);
  free(h->items);
  memset(h, 0, sizeof *h);
}

static bool heap_before(const miri_sim_action *a, const miri_sim_action *b) {
  return a->at_ns < b->at_ns || (a->at_ns == b->at_ns && a->seq < b->seq);
}

static void heap_up(miri_sim_heap *h, size_t i) {
  miri_sim_action *a = h->items[i];
  while (i > 0 && heap_before(a, h->items[(i - 1) / 2])) {
    h->items[i] = h->items[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->items[i] = a;
}

static void heap_down(miri_sim_heap *h, size_t i) {
  miri_sim_action *a = h->items[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->len) break;
    if (c + 1 < h->len && heap_before(h->items[c + 1], h->items[c])) c++;
    if (!heap_before(h->items[c], a)) break;
    h->items[i] = h->items[c];
    i = c;
  }
  h->items[i] = a;
}

mir_err miri_sim_heap_push(miri_sim_heap *h, miri_sim_action *a) {
  if (h->len >= h->max) {
    miri_sim_action_free(a);
    return mir_error_set(MIR_EFULL, "more than %zu scheduled actions", h->max);
  }
  if (h->len == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 256;
    h->items = mir_xrealloc(h->items, h->cap * sizeof *h->items);
  }
  a->seq = h->seq++;
  h->items[h->len++] = a;
  heap_up(h, h->len - 1);
  return MIR_OK;
}

miri_sim_action *miri_sim_heap_pop(miri_sim_heap *h) {
  if (h->len == 0) return NULL;
  miri_sim_action *top = h->items[0];
  h->items[0] = h->items[--h->len];
  if (h->len > 0) heap_down(h, 0);
  return top;
}

/* ---- map ---- */

void miri_sim_map_free(miri_sim_map *m) {
  free(m->keys);
  free(m->vals);
  free(m->used);
  memset(m, 0, sizeof *m);
}

void miri_sim_map_clear(miri_sim_map *m) {
  if (m->cap > 0) memset(m->used, 0, m->cap);
  m->len = 0;
}

static size_t map_slot(const miri_sim_map *m, uint64_t key) {
  size_t i = (size_t)(miri_sim_hash_u64(0, key) & (m->cap - 1));
  while (m->used[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  return i;
}

static void map_grow(miri_sim_map *m) {
  miri_sim_map old = *m;
  m->cap = old.cap ? old.cap * 2 : 64;
  m->keys = mir_xmalloc(m->cap * sizeof *m->keys);
  m->vals = mir_xmalloc(m->cap * sizeof *m->vals);
  m->used = mir_xcalloc(m->cap, 1);
  m->len = 0;
  for (size_t i = 0; i < old.cap; i++) {
    if (old.used[i]) miri_sim_map_put(m, old.keys[i], old.vals[i]);
  }
  free(old.keys);
  free(old.vals);
  free(old.used);
}

void miri_sim_map_put(miri_sim_map *m, uint64_t key, uint64_t val) {
  if (2 * (m->len + 1) > m->cap) map_grow(m);
  size_t i = map_slot(m, key);
  if (!m->used[i]) {
    m->used[i] = 1;
    m->keys[i] = key;
    m->len++;
  }
  m->vals[i] = val;
}

bool miri_sim_map_get(const miri_sim_map *m, uint64_t key, uint64_t *val) {
  if (m->cap == 0) return false;
  size_t i = map_slot(m, key);
  if (!m->used[i]) return false;
  if (val != NULL) *val = m->vals[i];
  return true;
}
