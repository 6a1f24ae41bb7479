/*
 * trantor_batch_valid (availability.h): the checks every certificate's batch must pass, whatever
 * the availability implementation. Pure; the batch is untrusted, so every field is checked before
 * use and the work is O(n log n) in the number of transactions, which is itself bounded first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "availability.h"
#include "mir/alloc.h"
#include "trantor_common.h"

static int bcheck_u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int bcheck_tx_cmp(const void *a, const void *b) {
  const Trantor__Tx *x = *(const Trantor__Tx *const *)a, *y = *(const Trantor__Tx *const *)b;
  int c = strcmp(x->client_id, y->client_id);
  if (c != 0) return c;
  return x->tx_no < y->tx_no ? -1 : x->tx_no > y->tx_no;
}

/* Checks each transaction on its own and the byte total. */
static bool bcheck_txs(const Trantor__Batch *batch, const trantor_params *p, char *reason,
                       size_t reason_len) {
  uint64_t total = 0;
  for (size_t i = 0; i < batch->n_txs; i++) {
    const Trantor__Tx *tx = batch->txs[i];
    if (tx == NULL || tx->client_id == NULL || tx->client_id[0] == '\0' ||
        strnlen(tx->client_id, TRANTOR_CLIENT_ID_MAX + 1) > TRANTOR_CLIENT_ID_MAX) {
      snprintf(reason, reason_len, "txs[%zu]: invalid client id", i);
      return false;
    }
    if (tx->data.len > p->max_tx_bytes) {
      snprintf(reason, reason_len, "txs[%zu]: %zu data bytes, at most %llu", i, tx->data.len,
               (unsigned long long)p->max_tx_bytes);
      return false;
    }
    total += tx->data.len;
    if (total > p->max_batch_bytes) {
      snprintf(reason, reason_len, "more than %llu data bytes",
               (unsigned long long)p->max_batch_bytes);
      return false;
    }
  }
  return true;
}

/* Checks that every transaction's bucket is among the n buckets. */
static bool bcheck_buckets(const Trantor__Batch *batch, const trantor_params *p,
                           const uint32_t *buckets, size_t n, char *reason, size_t reason_len) {
  uint32_t *sorted = NULL;
  if (n > 0) {
    sorted = mir_xmalloc(n * sizeof(uint32_t));
    memcpy(sorted, buckets, n * sizeof(uint32_t));
    qsort(sorted, n, sizeof(uint32_t), bcheck_u32_cmp);
  }
  bool ok = true;
  for (size_t i = 0; i < batch->n_txs && ok; i++) {
    uint32_t b = trantor_bucket_of(batch->txs[i]->client_id, p->num_buckets);
    if (n == 0 || bsearch(&b, sorted, n, sizeof(uint32_t), bcheck_u32_cmp) == NULL) {
      snprintf(reason, reason_len, "txs[%zu]: bucket %u is not one of the segment's", i, b);
      ok = false;
    }
  }
  free(sorted);
  return ok;
}

/* Checks that no (client_id, tx_no) appears twice: a correct mempool never cuts that. */
static bool bcheck_unique(const Trantor__Batch *batch, char *reason, size_t reason_len) {
  if (batch->n_txs < 2) return true;
  const Trantor__Tx **s = mir_xmalloc(batch->n_txs * sizeof(*s));
  memcpy(s, batch->txs, batch->n_txs * sizeof(*s));
  qsort(s, batch->n_txs, sizeof(*s), bcheck_tx_cmp);
  bool ok = true;
  for (size_t i = 1; i < batch->n_txs && ok; i++) {
    if (bcheck_tx_cmp(&s[i - 1], &s[i]) == 0) {
      snprintf(reason, reason_len, "transaction (%s, %llu) twice", s[i]->client_id,
               (unsigned long long)s[i]->tx_no);
      ok = false;
    }
  }
  free(s);
  return ok;
}

bool trantor_batch_valid(const Trantor__Batch *batch, const trantor_params *params,
                         bool check_buckets, const uint32_t *buckets, size_t n, char *reason,
                         size_t reason_len) {
  if (batch->n_txs > params->max_batch_txs) {
    snprintf(reason, reason_len, "%zu transactions, at most %u", batch->n_txs,
             params->max_batch_txs);
    return false;
  }
  if (!bcheck_txs(batch, params, reason, reason_len)) return false;
  if (check_buckets && !bcheck_buckets(batch, params, buckets, n, reason, reason_len)) {
    return false;
  }
  return bcheck_unique(batch, reason, reason_len);
}
