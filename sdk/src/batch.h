/*
 * Batching of submissions (internal, pure: no locks, no I/O, time passed in). Each replica the
 * client submits to has a queue of tx numbers waiting to be sent; a batch (one SubmitRequest)
 * leaves when it is full by count or bytes, or when its oldest transaction has waited `delay_ns`.
 * The queue holds at most `cap` numbers (the client window), so it cannot grow without bound.
 */
#ifndef MIRI_CL_BATCH_H
#define MIRI_CL_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tickets.h"

typedef struct miri_cl_batch_limits {
  uint32_t max_txs;
  uint64_t max_bytes;
  int64_t delay_ns;
} miri_cl_batch_limits;

typedef struct miri_cl_queue {
  uint64_t *items;
  uint32_t cap, head, count;
  uint64_t bytes;    /* data bytes of the queued transactions, as they were queued */
  int64_t oldest_ns; /* when the queue last went from empty to non-empty */
} miri_cl_queue;

/* Returns 0, or -1 when out of memory. */
int miri_cl_queue_init(miri_cl_queue *q, uint32_t cap);
void miri_cl_queue_fini(miri_cl_queue *q);
void miri_cl_queue_clear(miri_cl_queue *q);

/* Appends tx_no (len data bytes). Returns false, changing nothing, when the queue is full. */
bool miri_cl_queue_push(miri_cl_queue *q, uint64_t tx_no, size_t len, int64_t now_ns);

/* Takes the oldest queued number into *tx_no; false when the queue is empty. */
bool miri_cl_queue_pop(miri_cl_queue *q, uint64_t *tx_no);

/* Should a batch leave now? */
bool miri_cl_batch_due(const miri_cl_queue *q, const miri_cl_batch_limits *l, int64_t now_ns);

/* When the queue's batch becomes due by time (INT64_MAX when empty). */
int64_t miri_cl_batch_deadline(const miri_cl_queue *q, const miri_cl_batch_limits *l);

/* Takes the next batch off the queue into out (room for l->max_txs numbers): at most max_txs
 * numbers and, beyond the first, at most max_bytes data bytes. Numbers whose tickets are resolved
 * are dropped on the way. Returns the count (0 when nothing unresolved was queued). */
uint32_t miri_cl_batch_take(miri_cl_queue *q, miri_cl_tickets *t, const miri_cl_batch_limits *l,
                            uint64_t *out);

#endif
