/*
 * Client progress (clientprogress.h): per client a low watermark and a bitmap of the delivered
 * tx_nos above it.
 *
 * Clients live in an array sorted by id (binary search), so lookups cost O(log n) whatever ids
 * clients pick and serialisation needs no sort. A client's bitmap covers [base, base + 64 *
 * nwords) with base a multiple of 64 at most low_wm; it exists only while some number above the
 * watermark is delivered, and when the watermark moves past whole words they are shifted out.
 *
 * Invariants, per client: low_wm is not delivered; every set bit n satisfies low_wm < n <
 * low_wm + window; n_delivered is the number of set bits; bits == NULL iff n_delivered == 0.
 * Across clients: ids unique, 1..TRANTOR_CLIENT_ID_MAX bytes, strictly ascending; at most
 * clients_max of them; delivered_above is the sum of n_delivered.
 */
#include "clientprogress.h"

#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/trantor.h"

#define CP_WINDOW_MAX 1000000u

typedef struct cp_client {
  char *id;
  uint64_t low_wm;
  uint64_t base;  /* tx_no of bit 0 of bits[0]; a multiple of 64, <= low_wm */
  uint64_t *bits; /* delivered numbers above low_wm, or NULL when there are none */
  size_t nwords;
  uint64_t n_delivered;
} cp_client;

struct trantor_client_progress {
  uint64_t window;
  size_t clients_max;
  cp_client **clients; /* sorted by id */
  size_t n, cap;
  uint64_t delivered_above;
};

static bool cp_id_valid(const char *id) {
  if (id == NULL || id[0] == '\0') return false;
  return strnlen(id, TRANTOR_CLIENT_ID_MAX + 1) <= TRANTOR_CLIENT_ID_MAX;
}

/* Index of id, or of the position where it would be inserted; *found says which. */
static size_t cp_find(const trantor_client_progress *cp, const char *id, bool *found) {
  size_t lo = 0, hi = cp->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(cp->clients[mid]->id, id);
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

static const cp_client *cp_get(const trantor_client_progress *cp, const char *id) {
  bool found;
  size_t i = cp_find(cp, id, &found);
  return found ? cp->clients[i] : NULL;
}

static bool cp_bit(const cp_client *c, uint64_t n) {
  if (c->bits == NULL || n < c->base) return false;
  uint64_t idx = n - c->base;
  if (idx / 64 >= c->nwords) return false;
  return (c->bits[idx / 64] >> (idx % 64)) & 1u;
}

static void cp_client_free(cp_client *c) {
  if (c == NULL) return;
  free(c->id);
  free(c->bits);
  free(c);
}

mir_err trantor_client_progress_new(uint64_t window, size_t clients_max,
                                    trantor_client_progress **out) {
  if (window < 1 || window > CP_WINDOW_MAX) {
    return mir_error_set(MIR_EINVAL, "client progress: window must be 1..%u", CP_WINDOW_MAX);
  }
  if (clients_max == 0) clients_max = TRANTOR_CLIENTS_MAX_DEFAULT;
  if (clients_max > TRANTOR_CLIENTS_MAX_LIMIT) {
    return mir_error_set(MIR_EINVAL, "client progress: clients_max must be at most %u",
                         TRANTOR_CLIENTS_MAX_LIMIT);
  }
  trantor_client_progress *cp = mir_xcalloc(1, sizeof(*cp));
  cp->window = window;
  cp->clients_max = clients_max;
  *out = cp;
  return MIR_OK;
}

void trantor_client_progress_clear(trantor_client_progress *cp) {
  for (size_t i = 0; i < cp->n; i++) cp_client_free(cp->clients[i]);
  free(cp->clients);
  cp->clients = NULL;
  cp->n = cp->cap = 0;
  cp->delivered_above = 0;
}

void trantor_client_progress_free(trantor_client_progress *cp) {
  if (cp == NULL) return;
  trantor_client_progress_clear(cp);
  free(cp);
}

trantor_cp_status trantor_client_progress_check(const trantor_client_progress *cp,
                                                const char *client_id, uint64_t tx_no) {
  if (!cp_id_valid(client_id)) return TRANTOR_CP_INVALID;
  /* UINT64_MAX is never accepted, so that low_wm + 1 cannot wrap. */
  if (tx_no == UINT64_MAX) return TRANTOR_CP_OUT_OF_WINDOW;
  const cp_client *c = cp_get(cp, client_id);
  if (c == NULL) {
    if (cp->n >= cp->clients_max) return TRANTOR_CP_TOO_MANY_CLIENTS;
    return tx_no < cp->window ? TRANTOR_CP_NEW : TRANTOR_CP_OUT_OF_WINDOW;
  }
  if (tx_no < c->low_wm) return TRANTOR_CP_DELIVERED;
  if (tx_no - c->low_wm >= cp->window) return TRANTOR_CP_OUT_OF_WINDOW;
  return cp_bit(c, tx_no) ? TRANTOR_CP_DELIVERED : TRANTOR_CP_NEW;
}

/* Creates client id at position i of the sorted array (the caller checked the bound). */
static cp_client *cp_insert(trantor_client_progress *cp, size_t i, const char *id) {
  MIR_ASSERT(cp->n < cp->clients_max);
  if (cp->n == cp->cap) {
    size_t cap = cp->cap ? cp->cap * 2 : 16;
    if (cap > cp->clients_max) cap = cp->clients_max;
    cp->clients = mir_xrealloc(cp->clients, cap * sizeof(*cp->clients));
    cp->cap = cap;
  }
  cp_client *c = mir_xcalloc(1, sizeof(*c));
  c->id = mir_xstrdup(id);
  memmove(&cp->clients[i + 1], &cp->clients[i], (cp->n - i) * sizeof(*cp->clients));
  cp->clients[i] = c;
  cp->n++;
  return c;
}

/* Sets bit n (low_wm < n < low_wm + window, not yet set), growing the bitmap as needed. */
static void cp_set_bit(const trantor_client_progress *cp, cp_client *c, uint64_t n) {
  if (c->bits == NULL) c->base = c->low_wm - c->low_wm % 64;
  uint64_t idx = n - c->base;
  size_t need = (size_t)(idx / 64) + 1;
  if (need > c->nwords) {
    /* idx < 63 + window, so need never exceeds words_max. */
    size_t words_max = (size_t)((cp->window + 63) / 64) + 1;
    size_t cap = c->nwords * 2 > need ? c->nwords * 2 : need;
    if (cap > words_max) cap = words_max;
    MIR_ASSERT(need <= cap);
    c->bits = mir_xrealloc(c->bits, cap * sizeof(uint64_t));
    memset(&c->bits[c->nwords], 0, (cap - c->nwords) * sizeof(uint64_t));
    c->nwords = cap;
  }
  c->bits[idx / 64] |= UINT64_C(1) << (idx % 64);
  c->n_delivered++;
}

/* Moves low_wm over the delivered numbers that follow it and releases the words below it. */
static void cp_advance(trantor_client_progress *cp, cp_client *c) {
  while (c->n_delivered > 0 && cp_bit(c, c->low_wm)) {
    uint64_t idx = c->low_wm - c->base;
    c->bits[idx / 64] &= ~(UINT64_C(1) << (idx % 64));
    c->n_delivered--;
    cp->delivered_above--;
    c->low_wm++;
  }
  if (c->n_delivered == 0) {
    free(c->bits);
    c->bits = NULL;
    c->nwords = 0;
    return;
  }
  size_t drop = (size_t)((c->low_wm - c->base) / 64);
  if (drop == 0) return;
  MIR_ASSERT(drop < c->nwords); /* a set bit lies above low_wm */
  memmove(c->bits, &c->bits[drop], (c->nwords - drop) * sizeof(uint64_t));
  memset(&c->bits[c->nwords - drop], 0, drop * sizeof(uint64_t));
  c->base += (uint64_t)drop * 64;
}

bool trantor_client_progress_add(trantor_client_progress *cp, const char *client_id, uint64_t tx_no,
                                 trantor_cp_status *why) {
  trantor_cp_status s = trantor_client_progress_check(cp, client_id, tx_no);
  if (s != TRANTOR_CP_NEW) {
    if (why != NULL) *why = s;
    return false;
  }
  bool found;
  size_t i = cp_find(cp, client_id, &found);
  cp_client *c = found ? cp->clients[i] : cp_insert(cp, i, client_id);
  if (tx_no == c->low_wm) {
    c->low_wm++;
    cp_advance(cp, c);
  } else {
    cp_set_bit(cp, c, tx_no);
    cp->delivered_above++;
  }
  return true;
}

bool trantor_client_progress_contains(const trantor_client_progress *cp, const char *client_id,
                                      uint64_t tx_no) {
  if (!cp_id_valid(client_id)) return false;
  const cp_client *c = cp_get(cp, client_id);
  return c != NULL && (tx_no < c->low_wm || cp_bit(c, tx_no));
}

uint64_t trantor_client_progress_low_wm(const trantor_client_progress *cp, const char *client_id) {
  if (!cp_id_valid(client_id)) return 0;
  const cp_client *c = cp_get(cp, client_id);
  return c != NULL ? c->low_wm : 0;
}

size_t trantor_client_progress_clients(const trantor_client_progress *cp) {
  return cp->n;
}

uint64_t trantor_client_progress_delivered_above(const trantor_client_progress *cp) {
  return cp->delivered_above;
}

uint64_t trantor_client_progress_window(const trantor_client_progress *cp) {
  return cp->window;
}

size_t trantor_client_progress_clients_max(const trantor_client_progress *cp) {
  return cp->clients_max;
}

/* One client's watermark message (owned tree). */
static Trantor__ClientWatermark *cp_watermark_msg(const cp_client *c) {
  Trantor__ClientWatermark *w = mir_xmalloc(sizeof(*w));
  trantor__client_watermark__init(w);
  w->client_id = mir_xstrdup(c->id);
  w->low_wm = c->low_wm;
  if (c->n_delivered == 0) return w;
  w->delivered = mir_xmalloc((size_t)c->n_delivered * sizeof(uint64_t));
  for (size_t word = 0; word < c->nwords; word++) {
    for (unsigned b = 0; b < 64 && c->bits[word] != 0; b++) {
      if ((c->bits[word] >> b) & 1u) w->delivered[w->n_delivered++] = c->base + word * 64 + b;
    }
  }
  MIR_ASSERT(w->n_delivered == c->n_delivered);
  return w;
}

Trantor__ClientProgress *trantor_client_progress_to_msg(const trantor_client_progress *cp) {
  Trantor__ClientProgress *msg = mir_xmalloc(sizeof(*msg));
  trantor__client_progress__init(msg);
  if (cp->n == 0) return msg;
  msg->clients = mir_xmalloc(cp->n * sizeof(*msg->clients));
  for (size_t i = 0; i < cp->n; i++) msg->clients[i] = cp_watermark_msg(cp->clients[i]);
  msg->n_clients = cp->n;
  return msg;
}

/* Checks one watermark against the canonical form; i names it in the error. */
static mir_err cp_check_watermark(const trantor_client_progress *cp,
                                  const Trantor__ClientWatermark *w, const char *prev_id,
                                  size_t i) {
  if (w == NULL || !cp_id_valid(w->client_id)) {
    return mir_error_set(MIR_EPROTO, "client progress: clients[%zu]: invalid client id", i);
  }
  if (prev_id != NULL && strcmp(prev_id, w->client_id) >= 0) {
    return mir_error_set(MIR_EPROTO, "client progress: clients[%zu]: not sorted or duplicate", i);
  }
  if (w->low_wm == UINT64_MAX || w->n_delivered >= cp->window) {
    return mir_error_set(MIR_EPROTO, "client progress: clients[%zu]: watermark out of range", i);
  }
  for (size_t j = 0; j < w->n_delivered; j++) {
    uint64_t n = w->delivered[j];
    bool in_window = n > w->low_wm && n - w->low_wm < cp->window;
    if (!in_window || (j > 0 && w->delivered[j - 1] >= n)) {
      return mir_error_set(MIR_EPROTO,
                           "client progress: clients[%zu].delivered[%zu]: not ascending or "
                           "outside (low_wm, low_wm + window)",
                           i, j);
    }
  }
  return MIR_OK;
}

mir_err trantor_client_progress_load(trantor_client_progress *cp,
                                     const Trantor__ClientProgress *msg) {
  size_t n = msg != NULL ? msg->n_clients : 0;
  if (n > cp->clients_max) {
    return mir_error_set(MIR_EPROTO, "client progress: %zu clients, at most %zu", n,
                         cp->clients_max);
  }
  for (size_t i = 0; i < n; i++) {
    const char *prev = i > 0 ? msg->clients[i - 1]->client_id : NULL;
    mir_err err = cp_check_watermark(cp, msg->clients[i], prev, i);
    if (err != MIR_OK) return err;
  }
  trantor_client_progress_clear(cp);
  for (size_t i = 0; i < n; i++) {
    const Trantor__ClientWatermark *w = msg->clients[i];
    cp_client *c = cp_insert(cp, cp->n, w->client_id); /* sorted input: append */
    c->low_wm = w->low_wm;
    for (size_t j = 0; j < w->n_delivered; j++) cp_set_bit(cp, c, w->delivered[j]);
    cp->delivered_above += c->n_delivered;
  }
  return MIR_OK;
}

const char *trantor_cp_status_name(trantor_cp_status s) {
  switch (s) {
    case TRANTOR_CP_NEW:
      return "new";
    case TRANTOR_CP_DELIVERED:
      return "delivered";
    case TRANTOR_CP_OUT_OF_WINDOW:
      return "out of window";
    case TRANTOR_CP_TOO_MANY_CLIENTS:
      return "too many clients";
    case TRANTOR_CP_INVALID:
      return "invalid client id";
  }
  return "unknown";
}
