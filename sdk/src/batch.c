/*
 * Batching of submissions (batch.h): a ring of tx numbers per replica and the rule for when a
 * batch leaves. Why a delay at all: a Submit stream completes sends almost at once, so without
 * one every transaction would travel alone at high rates; a short linger (1 ms by default)
 * amortises per-message costs on both ends at a latency cost far below the consensus round.
 */
#include "batch.h"

#include <stdlib.h>

int miri_cl_queue_init(miri_cl_queue *q, uint32_t cap) {
  q->items = calloc(cap, sizeof(*q->items));
  q->cap = cap;
  q->head = q->count = 0;
  q->bytes = 0;
  q->oldest_ns = 0;
  return q->items == NULL ? -1 : 0;
}

void miri_cl_queue_fini(miri_cl_queue *q) {
  free(q->items);
  q->items = NULL;
  q->cap = q->count = 0;
}

void miri_cl_queue_clear(miri_cl_queue *q) {
  q->head = q->count = 0;
  q->bytes = 0;
}

bool miri_cl_queue_push(miri_cl_queue *q, uint64_t tx_no, size_t len, int64_t now_ns) {
  if (q->count == q->cap) return false;
  if (q->count == 0) q->oldest_ns = now_ns;
  q->items[(q->head + q->count) % q->cap] = tx_no;
  q->count++;
  q->bytes += len;
  return true;
}

bool miri_cl_queue_pop(miri_cl_queue *q, uint64_t *tx_no) {
  if (q->count == 0) return false;
  *tx_no = q->items[q->head];
  q->head = (q->head + 1) % q->cap;
  if (--q->count == 0) q->bytes = 0;
  return true;
}

bool miri_cl_batch_due(const miri_cl_queue *q, const miri_cl_batch_limits *l, int64_t now_ns) {
  if (q->count == 0) return false;
  if (q->count >= l->max_txs || q->bytes >= l->max_bytes) return true;
  return now_ns - q->oldest_ns >= l->delay_ns;
}

int64_t miri_cl_batch_deadline(const miri_cl_queue *q, const miri_cl_batch_limits *l) {
  if (q->count == 0) return INT64_MAX;
  return q->oldest_ns + l->delay_ns;
}

uint32_t miri_cl_batch_take(miri_cl_queue *q, miri_cl_tickets *t, const miri_cl_batch_limits *l,
                            uint64_t *out) {
  uint32_t n = 0;
  uint64_t bytes = 0;
  while (q->count > 0 && n < l->max_txs) {
    uint64_t tx_no = q->items[q->head];
    miri_cl_ticket *s = miri_cl_tickets_pending(t, tx_no);
    size_t len = s != NULL ? s->len : 0;
    if (s != NULL && n > 0 && bytes + len > l->max_bytes) break;
    q->head = (q->head + 1) % q->cap;
    q->count--;
    /* The queued byte count may overstate after resolutions; it never goes below zero. */
    q->bytes = q->bytes >= len ? q->bytes - len : 0;
    if (s == NULL) continue; /* resolved while queued */
    out[n++] = tx_no;
    bytes += len;
  }
  if (q->count == 0) q->bytes = 0;
  return n;
}
