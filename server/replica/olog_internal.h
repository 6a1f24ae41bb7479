/*
 * Internals of the ordered log shared by ordered_log.c (positions, the trantor_app callbacks,
 * reads) and olog_store.c (record encodings, reading and writing the store). Not an interface.
 */
#ifndef MIR_REPLICA_OLOG_INTERNAL_H
#define MIR_REPLICA_OLOG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.pb-c.h"
#include "mir/metrics.h"
#include "ordered_log.h"

#define OLOG_LOG "olog"

/* One recent delivery kept in memory: served without touching the store, and held until the
 * store has written it (ticket), so that a reader never misses an entry in both places. */
typedef struct olog_entry {
  uint64_t sn;
  uint64_t ticket; /* store ticket of the write that holds it */
  uint8_t hash[MIR_OLOG_HASH_BYTES];
  uint8_t *packed; /* owned: the packed Delivery */
  size_t len;
} olog_entry;

struct mir_olog {
  mir_olog_config cfg;
  mir_store *store;
  int cf_log, cf_batches;

  pthread_mutex_t mu;
  /* Under mu; written by the dispatcher thread only (and by open), read by any thread. The store
   * holds [base_sn, head) contiguously (the newest entries possibly still queued for its writer,
   * in the ring meanwhile); all of it is served and never replaced. */
  uint64_t base_sn;
  uint8_t base_hash[MIR_OLOG_HASH_BYTES]; /* log_hash(base_sn - 1) */
  uint64_t head;
  uint8_t head_hash[MIR_OLOG_HASH_BYTES];
  uint64_t epoch;
  bool have_chk;
  uint64_t chk_epoch, chk_sn;
  olog_entry *ring; /* entries [head - ring_n, head), oldest at ring_start */
  size_t ring_cap, ring_start, ring_n, ring_bytes;
  uint64_t appended, confirmed, restores;

  /* Dispatcher thread only: the protocol's position (next sn it delivers) and the chain there
   * (pos is also copied to pos_shared under mu, for the status). */
  bool pos_known;
  uint64_t pos;
  uint8_t pos_hash[MIR_OLOG_HASH_BYTES];
  uint64_t pos_shared;
  uint64_t epoch_logged_ns; /* when an epoch change was last logged at INFO */
  uint64_t epochs_unlogged; /* epoch changes since then */

  mir_olog_listener listener;
  void *listener_user;

  /* metrics ("app" below the node's root once the replica hangs it there) */
  mir_metrics *metrics;
  mir_counter *m_batches, *m_txs;
  mir_gauge *m_next_sn, *m_epoch;
};

/* ---- olog_store.c (every function: log borrowed) ---- */

/* Big-endian key of v. */
void miri_olog_key(uint8_t key[8], uint64_t v);

/* Reads the stored record of sn: its epoch and log hash (either may be NULL). MIR_ENOTFOUND,
 * MIR_EIO (also for an undecodable record). */
mir_err miri_olog_read_record(mir_olog *log, uint64_t sn, uint64_t *epoch,
                              uint8_t hash[MIR_OLOG_HASH_BYTES]);

/* Reads sn from the store and returns it as a packed Delivery (owned, free with free()).
 * MIR_ENOTFOUND, MIR_EIO. */
mir_err miri_olog_read_delivery(mir_olog *log, uint64_t sn, uint8_t **packed, size_t *len);

/* Packs a Delivery of (sn, epoch, txs borrowed, hash). Returns owned bytes (free with free()). */
uint8_t *miri_olog_pack_delivery(uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs, size_t n,
                                 const uint8_t hash[MIR_OLOG_HASH_BYTES], size_t *len);

/* Adds to b the records of one entry: "log" (the Delivery without transactions) and, if it has
 * any, "batches" (a packed trantor.Batch). */
void miri_olog_put_entry(mir_olog *log, mir_store_batch *b, uint64_t sn, uint64_t epoch,
                         Trantor__Tx *const *txs, size_t n,
                         const uint8_t hash[MIR_OLOG_HASH_BYTES]);

/* Adds to b the deletion of every entry in [from, to). */
void miri_olog_delete_entries(mir_olog *log, mir_store_batch *b, uint64_t from, uint64_t to);

/* Adds to b the log's base record (base_sn, base_hash). */
void miri_olog_put_base(mir_olog *log, mir_store_batch *b, uint64_t base_sn,
                        const uint8_t hash[MIR_OLOG_HASH_BYTES]);

/* Reads base and head from the store into log (at open). MIR_EIO. */
mir_err miri_olog_load(mir_olog *log);

/* Queues b (takes ownership). MIR_EIO with detail if the store failed. *ticket may be NULL. */
mir_err miri_olog_submit(mir_olog *log, mir_store_batch *b, uint64_t *ticket);

#endif
