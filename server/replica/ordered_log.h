/*
 * The ordered log: mir-replica's built-in application (docs/ARCHITECTURE.md, "Replica").
 *
 * Trantor delivers one batch of transactions per sequence number (sn), in order; the ordered log
 * stores each one in the store (column families "log" and "batches", keyed by sn) with its epoch
 * and a hash chaining the log (proto/api/api.proto, Delivery):
 *
 *   log_hash(sn) = H("log", log_hash(sn - 1), sn, epoch, packed Tx 1, ..., packed Tx n)
 *   log_hash(-1) = 32 zero bytes
 *
 * where H is the length-prefixed SHA-256 of trantor_hash_fn and integers are 8 bytes big-endian.
 * The application snapshot is the position and the chain: 8 bytes next_sn then log_hash(next_sn
 * - 1). Stable checkpoints are Trantor's to keep (its write-ahead log); the log only follows the
 * latest one in memory for its status.
 *
 * Delivered entries are final. Trantor's votes are durable before they are sent, so an sn that
 * was delivered is never decided otherwise, even after every replica restarted; the log therefore
 * serves every stored entry at once after a restart and never replaces one. After a restart
 * Trantor resumes from its last stable checkpoint and delivers the entries after it again; each
 * re-delivery is compared with the stored entry. A re-delivery with another hash, or a checkpoint
 * whose chain contradicts the stored entries, means the store or the cluster is not what this
 * replica wrote (a lost or corrupt disk, a bug): the node stops with an error naming the sn, both
 * hashes and the store, rather than rewrite history that clients may have seen committed.
 *
 * Retention. Entries older than retention_sns behind the newest are deleted in ranges; the oldest
 * kept is `retained_from_sn`. After a state transfer past the stored entries, the log restarts
 * at the checkpoint's sn (older entries are dropped, so the retained range has no gap).
 *
 * Threads. The trantor_app callbacks run on the node's dispatcher thread. mir_olog_read and
 * mir_olog_get_status are thread-safe. The listener is called on the dispatcher thread whenever
 * next_sn grows.
 */
#ifndef MIR_REPLICA_ORDERED_LOG_H
#define MIR_REPLICA_ORDERED_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/metrics.h"
#include "mir/trantor.h"
#include "mir_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_OLOG_HASH_BYTES 32
#define MIR_OLOG_SNAPSHOT_BYTES (8 + MIR_OLOG_HASH_BYTES)
#define MIR_OLOG_RETENTION_DEFAULT 1000000ull
#define MIR_OLOG_RETENTION_MIN 16ull
/* Largest stored record read back (the transactions of one sn). */
#define MIR_OLOG_RECORD_BYTES_MAX ((size_t)64 << 20)

/* The column families the ordered log uses; open the store with them. */
#define MIR_OLOG_N_CFS 2
extern const char *const mir_olog_cfs[MIR_OLOG_N_CFS];

typedef struct mir_olog_config {
  mir_store *store;       /* borrowed, opened with mir_olog_cfs; must outlive the log. NULL:
                             memory only (the limit pipeline): the log starts empty at the
                             genesis and keeps the newest cache_entries entries within
                             cache_bytes, older ones leave it as retention would delete them */
  trantor_hash_fn hash;   /* required, pure */
  uint64_t retention_sns; /* sns kept (default MIR_OLOG_RETENTION_DEFAULT, >= _MIN) */
  size_t cache_entries;   /* most recent deliveries kept in memory (default 4096) */
  size_t cache_bytes;     /* their encoded bytes at most (default 64 MiB) */
  uint64_t delete_every;  /* delete old entries once this many are past retention (1024) */
} mir_olog_config;

/* Fills cfg with the defaults (store and hash stay unset). */
void mir_olog_config_default(mir_olog_config *cfg);

typedef struct mir_olog mir_olog;

/* Opens the log over cfg->store: reads its position and chain. MIR_EINVAL for a bad config, MIR_EIO
 * for an unreadable or inconsistent store (detail names the problem). cfg is borrowed. *out is
 * owned (free with mir_olog_free, after the node that uses it stopped). */
mir_err mir_olog_open(const mir_olog_config *cfg, mir_olog **out);

/* Frees the log (NULL is a no-op). Its queued writes belong to the store, which completes them
 * when it closes; close the store after freeing the log. */
void mir_olog_free(mir_olog *log);

/* Fills app with the log's callbacks (user_data = log, borrowed: the log must outlive the node). */
void mir_olog_app(mir_olog *log, trantor_app *app);

typedef struct mir_olog_status {
  uint64_t next_sn;                         /* entries below are stored and served */
  uint8_t log_hash[MIR_OLOG_HASH_BYTES];    /* log_hash(next_sn - 1) */
  uint64_t epoch;                           /* the protocol's current epoch */
  uint64_t retained_from_sn;                /* the oldest entry kept */
  uint64_t protocol_sn;                     /* the next sn Trantor delivers (<= next_sn) */
  bool have_checkpoint;                     /* a stable checkpoint is known ... */
  uint64_t checkpoint_epoch, checkpoint_sn; /* ... this one, the latest */
  uint64_t appended;                        /* entries stored in this run */
  uint64_t confirmed;                       /* stored entries confirmed by a re-delivery */
  uint64_t restores;                        /* restore calls (boot and state transfer) */
} mir_olog_status;

/* Copies the log's position and counters. Thread-safe. */
void mir_olog_get_status(mir_olog *log, mir_olog_status *out);

/* The packed api.Delivery of sn. MIR_OK: *packed is owned (free with free()), *len its length.
 * MIR_ENOTFOUND: sn is below retained_from_sn (detail says so). MIR_EEOF: sn >= next_sn (not
 * delivered yet). MIR_EIO: the store failed. Thread-safe. */
mir_err mir_olog_read(mir_olog *log, uint64_t sn, uint8_t **packed, size_t *len);

/* Called on the dispatcher thread with the new next_sn each time it grows. */
typedef void (*mir_olog_listener)(void *user_data, uint64_t next_sn);

/* The log's metric set (delivered batches and transactions, next sn, epoch), named "app";
 * borrowed, valid until mir_olog_free. The replica hangs it below its node's root. */
mir_metrics *mir_olog_metrics(mir_olog *log);

/* Sets the listener (fn and user_data borrowed) before the node starts. */
void mir_olog_set_listener(mir_olog *log, mir_olog_listener fn, void *user_data);

/* Notes chkp (borrowed) as the latest stable checkpoint for the status, unless a later one is
 * known: the one the replica resumes from, before the node starts (later ones come through the
 * application's checkpoint callback). Thread-safe. */
void mir_olog_note_checkpoint(mir_olog *log, const Trantor__StableCheckpoint *chkp);

/* log_hash(sn) from prev = log_hash(sn - 1) (borrowed, 32 bytes) and the entry (txs borrowed). */
void mir_olog_hash(trantor_hash_fn hash, const uint8_t prev[MIR_OLOG_HASH_BYTES], uint64_t sn,
                   uint64_t epoch, Trantor__Tx *const *txs, size_t n,
                   uint8_t out[MIR_OLOG_HASH_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
