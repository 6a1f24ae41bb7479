/*
 * The ordered log's records in the store (olog_internal.h).
 *
 * Column families and keys (8-byte big-endian integers, so keys order like the numbers):
 *   "log"          sn    -> packed api.Delivery without transactions (sn, epoch, log_hash)
 *   "batches"      sn    -> packed trantor.Batch: the entry's transactions (absent if none)
 *   "default"      "olog.base" -> base_sn (8 bytes) || log_hash(base_sn - 1) (32 bytes)
 * The small "log" records let a restarted replica check its chain and find its head without
 * reading transactions. Every change that moves the base deletes the entries below it in the same
 * atomic write, so the stored entries are always exactly [base_sn, head).
 *
 * Everything read back is checked like untrusted input: a record that does not decode, or whose
 * sn does not match its key, is MIR_EIO (a corrupt store), never an assertion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/log.h"
#include "olog_internal.h"

#define OLOG_BASE_KEY "olog.base"

const char *const mir_olog_cfs[MIR_OLOG_N_CFS] = {"log", "batches"};

void miri_olog_key(uint8_t key[8], uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    key[i] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
}

static uint64_t olog_key_value(const uint8_t *key) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | key[i];
  return v;
}

static mir_err olog_corrupt(const mir_olog *log, const char *what, uint64_t sn) {
  return mir_error_set(MIR_EIO, "store %s: %s at %llu does not decode (corrupt store?)",
                       mir_store_path(log->store), what, (unsigned long long)sn);
}

mir_err miri_olog_read_record(mir_olog *log, uint64_t sn, uint64_t *epoch,
                              uint8_t hash[MIR_OLOG_HASH_BYTES]) {
  uint8_t key[8];
  miri_olog_key(key, sn);
  uint8_t *val = NULL;
  size_t len = 0;
  mir_err err = mir_store_get(log->store, log->cf_log, key, 8, &val, &len, 4096);
  if (err == MIR_EPROTO) return olog_corrupt(log, "log record", sn);
  if (err != MIR_OK) return err;
  Mir__Api__Delivery *d = mir__api__delivery__unpack(NULL, len, val);
  free(val);
  if (d == NULL || d->sn != sn || d->log_hash.len != MIR_OLOG_HASH_BYTES) {
    if (d != NULL) mir__api__delivery__free_unpacked(d, NULL);
    return olog_corrupt(log, "log record", sn);
  }
  if (epoch != NULL) *epoch = d->epoch;
  if (hash != NULL) memcpy(hash, d->log_hash.data, MIR_OLOG_HASH_BYTES);
  mir__api__delivery__free_unpacked(d, NULL);
  return MIR_OK;
}

uint8_t *miri_olog_pack_delivery(uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs, size_t n,
                                 const uint8_t hash[MIR_OLOG_HASH_BYTES], size_t *len) {
  Mir__Api__Delivery d = MIR__API__DELIVERY__INIT;
  d.sn = sn;
  d.epoch = epoch;
  d.n_txs = n;
  d.txs = (Trantor__Tx **)txs; /* packing only reads them */
  d.log_hash.data = (uint8_t *)hash;
  d.log_hash.len = MIR_OLOG_HASH_BYTES;
  *len = mir__api__delivery__get_packed_size(&d);
  uint8_t *out = mir_xmalloc(*len > 0 ? *len : 1);
  mir__api__delivery__pack(&d, out);
  return out;
}

/* Reads the transactions of sn into *batch (owned; NULL if the entry has none). */
static mir_err olog_read_batch(mir_olog *log, uint64_t sn, Trantor__Batch **batch) {
  uint8_t key[8];
  miri_olog_key(key, sn);
  uint8_t *val = NULL;
  size_t len = 0;
  *batch = NULL;
  mir_err err =
      mir_store_get(log->store, log->cf_batches, key, 8, &val, &len, MIR_OLOG_RECORD_BYTES_MAX);
  if (err == MIR_ENOTFOUND) return MIR_OK;
  if (err == MIR_EPROTO) return olog_corrupt(log, "batch", sn);
  if (err != MIR_OK) return err;
  *batch = trantor__batch__unpack(NULL, len, val);
  free(val);
  return *batch != NULL ? MIR_OK : olog_corrupt(log, "batch", sn);
}

mir_err miri_olog_read_delivery(mir_olog *log, uint64_t sn, uint8_t **packed, size_t *len) {
  uint64_t epoch = 0;
  uint8_t hash[MIR_OLOG_HASH_BYTES];
  mir_err err = miri_olog_read_record(log, sn, &epoch, hash);
  Trantor__Batch *batch = NULL;
  if (err == MIR_OK) err = olog_read_batch(log, sn, &batch);
  if (err != MIR_OK) return err;
  *packed = miri_olog_pack_delivery(sn, epoch, batch != NULL ? batch->txs : NULL,
                                    batch != NULL ? batch->n_txs : 0, hash, len);
  if (batch != NULL) trantor__batch__free_unpacked(batch, NULL);
  return MIR_OK;
}

void miri_olog_put_entry(mir_olog *log, mir_store_batch *b, uint64_t sn, uint64_t epoch,
                         Trantor__Tx *const *txs, size_t n,
                         const uint8_t hash[MIR_OLOG_HASH_BYTES]) {
  uint8_t key[8];
  miri_olog_key(key, sn);
  size_t len = 0;
  uint8_t *rec = miri_olog_pack_delivery(sn, epoch, NULL, 0, hash, &len);
  mir_store_batch_put(b, log->cf_log, key, 8, rec, len);
  free(rec);
  if (n == 0) return;
  Trantor__Batch batch = TRANTOR__BATCH__INIT;
  batch.n_txs = n;
  batch.txs = (Trantor__Tx **)txs; /* packing only reads them */
  len = trantor__batch__get_packed_size(&batch);
  uint8_t *packed = mir_xmalloc(len);
  trantor__batch__pack(&batch, packed);
  mir_store_batch_put(b, log->cf_batches, key, 8, packed, len);
  free(packed);
}

void miri_olog_delete_entries(mir_olog *log, mir_store_batch *b, uint64_t from, uint64_t to) {
  if (from >= to) return;
  uint8_t k1[8], k2[8];
  miri_olog_key(k1, from);
  miri_olog_key(k2, to);
  mir_store_batch_delete_range(b, log->cf_log, k1, 8, k2, 8);
  mir_store_batch_delete_range(b, log->cf_batches, k1, 8, k2, 8);
}

void miri_olog_put_base(mir_olog *log, mir_store_batch *b, uint64_t base_sn,
                        const uint8_t hash[MIR_OLOG_HASH_BYTES]) {
  (void)log; /* the base lives in the default column family, the same for every log */
  uint8_t val[8 + MIR_OLOG_HASH_BYTES];
  miri_olog_key(val, base_sn);
  memcpy(val + 8, hash, MIR_OLOG_HASH_BYTES);
  mir_store_batch_put(b, MIR_STORE_CF_DEFAULT, OLOG_BASE_KEY, strlen(OLOG_BASE_KEY), val,
                      sizeof(val));
}

mir_err miri_olog_submit(mir_olog *log, mir_store_batch *b, uint64_t *ticket) {
  mir_err err = mir_store_submit(log->store, b, ticket);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(MIR_EIO, "ordered log: %s", detail);
  }
  return MIR_OK;
}

/* ---- loading at open ---- */

static mir_err olog_load_base(mir_olog *log) {
  uint8_t *val = NULL;
  size_t len = 0;
  mir_err err = mir_store_get(log->store, MIR_STORE_CF_DEFAULT, OLOG_BASE_KEY,
                              strlen(OLOG_BASE_KEY), &val, &len, 64);
  if (err == MIR_ENOTFOUND) return MIR_OK; /* a new log: base 0, log_hash(-1) = zeros */
  if (err == MIR_OK && len != 8 + MIR_OLOG_HASH_BYTES) err = olog_corrupt(log, "base record", 0);
  if (err == MIR_EPROTO) err = olog_corrupt(log, "base record", 0);
  if (err == MIR_OK) {
    log->base_sn = olog_key_value(val);
    memcpy(log->base_hash, val + 8, MIR_OLOG_HASH_BYTES);
  }
  free(val);
  return err;
}

/* Finds the newest stored entry: head is one past it (base_sn if none). */
static mir_err olog_load_head(mir_olog *log) {
  log->head = log->base_sn;
  memcpy(log->head_hash, log->base_hash, MIR_OLOG_HASH_BYTES);
  mir_store_iter *it = mir_store_iter_new(log->store, log->cf_log);
  mir_store_iter_seek_last(it);
  mir_err err = mir_store_iter_status(it);
  uint64_t last = 0;
  bool found = false;
  if (err == MIR_OK && mir_store_iter_valid(it)) {
    size_t klen = 0;
    const uint8_t *k = mir_store_iter_key(it, &klen);
    if (klen != 8) err = olog_corrupt(log, "log key", 0);
    if (err == MIR_OK) last = olog_key_value(k);
    found = err == MIR_OK;
  }
  mir_store_iter_free(it);
  if (err != MIR_OK || !found) return err;
  if (last < log->base_sn || last == UINT64_MAX) return olog_corrupt(log, "log entry", last);
  err = miri_olog_read_record(log, last, &log->epoch, log->head_hash);
  if (err == MIR_OK) log->head = last + 1;
  return err;
}

mir_err miri_olog_load(mir_olog *log) {
  mir_err err = olog_load_base(log);
  if (err == MIR_OK) err = olog_load_head(log);
  if (err == MIR_OK && log->head == log->base_sn) {
    mir_log(MIR_LOG_INFO, OLOG_LOG, "opened %s: no entries stored, the next is sn %llu",
            mir_store_path(log->store), (unsigned long long)log->head);
  } else if (err == MIR_OK) {
    mir_log(MIR_LOG_INFO, OLOG_LOG, "opened %s: sns %llu to %llu stored",
            mir_store_path(log->store), (unsigned long long)log->base_sn,
            (unsigned long long)log->head - 1);
  }
  return err;
}
