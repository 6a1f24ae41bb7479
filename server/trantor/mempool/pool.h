/*
 * The mempool's storage (internal): pending transactions, per bucket in arrival order, split into
 * the proposable ("fresh") ones and those proposed and not yet delivered, plus an index by
 * (client_id, tx_no). No events, no limits of its own: mempool.c checks the limits before adding.
 */
#ifndef TRANTOR_MEMPOOL_POOL_H
#define TRANTOR_MEMPOOL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trantor/trantor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most transactions a cut passes over because they do not fit in the bytes left: bounds the work
 * of one cut while still letting small transactions fill a batch past a large one. */
#define TRANTOR_POOL_SKIP_MAX 64

typedef struct trantor_pool_tx trantor_pool_tx;
struct trantor_pool_tx {
  char *client_id; /* owned */
  uint64_t tx_no;
  ProtobufCBinaryData data; /* owned */
  uint64_t seq;             /* arrival order, unique */
  uint64_t proposed_epoch;  /* valid while proposed */
  uint32_t bucket;
  bool proposed;
  trantor_pool_tx *prev, *next;  /* in its bucket's fresh or proposed list */
  trantor_pool_tx *left, *right; /* index */
  int height;
};

typedef struct trantor_pool_list {
  trantor_pool_tx *head, *tail;
  size_t n;
  uint64_t bytes;
} trantor_pool_list;

typedef struct trantor_pool_bucket {
  trantor_pool_list fresh;    /* proposable, ascending seq */
  trantor_pool_list proposed; /* proposed, not delivered (any order) */
} trantor_pool_bucket;

/* Called whenever a transaction enters (added = true) or leaves a fresh list; tx borrowed. */
typedef void (*trantor_pool_fresh_fn)(void *user, const trantor_pool_tx *tx, bool added);

typedef struct trantor_pool {
  uint32_t num_buckets;
  trantor_pool_bucket *buckets; /* num_buckets entries */
  trantor_pool_tx *root;        /* index by (client_id, tx_no) */
  uint64_t next_seq;
  size_t n_txs, n_fresh;
  uint64_t bytes;
  trantor_pool_fresh_fn on_fresh;
  void *user;
} trantor_pool;

/* Initialises an empty pool of num_buckets buckets (>= 1). on_fresh may be NULL; user borrowed. */
void trantor_pool_init(trantor_pool *p, uint32_t num_buckets, trantor_pool_fresh_fn on_fresh,
                       void *user);
/* Frees every transaction (without calling on_fresh) and the buckets. */
void trantor_pool_fini(trantor_pool *p);

/* The pending transaction (client_id, tx_no), borrowed, or NULL. */
trantor_pool_tx *trantor_pool_find(const trantor_pool *p, const char *client_id, uint64_t tx_no);

/* Adds a copy of tx (borrowed; not pending yet, bucket < num_buckets) at the end of its bucket's
 * fresh list. Returns the stored transaction (borrowed). */
trantor_pool_tx *trantor_pool_add(trantor_pool *p, const Trantor__Tx *tx, uint32_t bucket);

/* Removes tx (a pending transaction of p) and frees it. */
void trantor_pool_remove(trantor_pool *p, trantor_pool_tx *tx);

/* Cuts a batch for epoch from the fresh transactions of the n buckets (borrowed, each <
 * num_buckets, no duplicates): oldest first across the buckets, at most max_txs transactions and
 * max_bytes data bytes, skipping at most TRANTOR_POOL_SKIP_MAX that do not fit. The cut ones
 * become proposed in epoch. out (an initialised, empty Batch) receives owned copies. */
void trantor_pool_cut(trantor_pool *p, const uint32_t *buckets, size_t n, uint64_t epoch,
                      size_t max_txs, uint64_t max_bytes, Trantor__Batch *out);

/* Makes every transaction proposed in an epoch below `epoch` proposable again, in arrival order.
 * Returns how many moved. */
size_t trantor_pool_reopen(trantor_pool *p, uint64_t epoch);

/* Removes (and frees) every pending transaction for which pred(user, tx) is true. */
size_t trantor_pool_remove_if(trantor_pool *p, bool (*pred)(void *user, const trantor_pool_tx *tx),
                              void *user);

#ifdef __cplusplus
}
#endif
#endif
