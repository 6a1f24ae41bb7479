/*
 * The simulated store: an in-memory key-value map owned by the simulation, one per node slot.
 *
 * It stands for durable storage: it lives outside the node, so a crash (which frees the node and
 * every module) keeps it, and a wiped restart clears it. Writes are durable when the call
 * returns; there is no partial write, because a simulated crash happens between steps, never in
 * the middle of a module's apply.
 *
 * Keys are kept sorted (binary search, memmove on insert): stores in simulations hold at most a
 * few thousand keys, and sorted keys make any future iteration order deterministic. Counts and
 * bytes are bounded (MIR_SIM_STORE_KEYS_MAX, MIR_SIM_STORE_BYTES_MAX).
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
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

size_t mir_sim_store_count(const mir_sim_store *st) {
  return st->len;
}

mir_sim_store *mir_sim_node_store(mir_sim *sim, size_t node) {
  return node < sim->cfg.nodes ? sim->nodes[node].store : NULL;
}
