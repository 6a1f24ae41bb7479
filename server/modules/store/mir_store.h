/*
 * The store: a RocksDB database with named column families, point reads, ordered iteration, and
 * writes that are either synchronous or queued for a writer thread that merges everything queued
 * into one atomic write (group commit: one write, and with `sync` one fsync of the write-ahead
 * log, for many callers).
 *
 * Ordering. Writes become visible and durable in the order they were submitted: a synchronous
 * write waits for every queued write before it, and a queued write never overtakes another. So a
 * caller that writes "entry 7" and then "checkpoint covering entries < 8" never finds, after a
 * crash, the checkpoint without the entry.
 *
 * Durability. With sync (the default) a write is on disk when mir_store_write returns or, for a
 * queued write, when mir_store_written reaches its ticket. Without sync it survives a crash of
 * the process (the write-ahead log is in the operating system's cache) but not of the machine.
 *
 * Keys and values are byte strings; keys order bytewise (so big-endian integers order
 * numerically). Every error from RocksDB becomes MIR_EIO with its text in mir_error_detail(),
 * prefixed with the database path. This is the only code that includes RocksDB's header.
 *
 * Storage faults.
 *  - A crash (of the process or the machine) may tear the last record of RocksDB's write-ahead
 *    log. The database is opened with point-in-time recovery: the log is replayed up to the first
 *    damaged record and the rest is dropped, so after a crash the store holds a prefix of the
 *    submitted writes, each one whole (every write synced before the crash, with sync, is in it).
 *  - Damaged files are errors, never data: RocksDB runs with paranoid checks, and every read
 *    verifies block checksums. A corrupt file makes mir_store_open, a read or an iteration fail
 *    with MIR_EIO whose detail names the path and says "the data is corrupt", with RocksDB's
 *    reason.
 *  - A failed write (a full disk, a failed fsync, any error of RocksDB) fails the store for good:
 *    that write and every later one is refused with MIR_EIO naming the path and the reason, and
 *    mir_store_close reports it. Nothing is retried: after a failed sync nobody can tell what
 *    reached the disk, and RocksDB itself turns read-only.
 */
#ifndef MIR_STORE_H
#define MIR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_STORE_CFS_MAX 8                    /* column families besides "default" */
#define MIR_STORE_CF_NAME_MAX 32               /* bytes of a column family name, with the NUL */
#define MIR_STORE_KEY_BYTES_MAX 1024           /* longest key */
#define MIR_STORE_VALUE_BYTES_MAX (256u << 20) /* longest value written or read */

/* The column family every database has. */
#define MIR_STORE_CF_DEFAULT 0

typedef struct mir_store mir_store;

typedef struct mir_store_config {
  const char *path;       /* database directory, created if missing (required) */
  const char *const *cfs; /* column family names besides "default", opened or created (may be 0) */
  size_t n_cfs;
  bool sync;              /* fsync the write-ahead log at every write or group (default true) */
  size_t queue_bytes_max; /* queued writes in bytes before mir_store_submit blocks (64 MiB) */
  size_t group_bytes_max; /* most bytes merged into one group write (8 MiB) */
} mir_store_config;

/* Fills cfg with the defaults; path and the column families stay unset. */
void mir_store_config_default(mir_store_config *cfg);

/* Opens (creating if needed) the database and its column families, and starts the writer
 * thread. cfg is borrowed (copied). MIR_EINVAL for a bad config; MIR_EIO if RocksDB refuses
 * (another process holds the database, corrupt files, no permission). *out is owned (free with
 * mir_store_close). */
mir_err mir_store_open(const mir_store_config *cfg, mir_store **out);

/* Writes everything still queued, stops the writer thread and closes the database. Takes
 * ownership of s; NULL is a no-op. Returns the first write error, if any. */
mir_err mir_store_close(mir_store *s);

/* Index of column family name (borrowed) for the calls below, or -1 if it was not opened. */
int mir_store_cf(const mir_store *s, const char *name);

/* The path the store was opened at (borrowed, valid until close). */
const char *mir_store_path(const mir_store *s);

/* ---- reads (thread-safe; they see every write that mir_store_write returned from, and every
 *      queued write up to mir_store_written) ---- */

/* Reads the value of key (borrowed, klen bytes) in column family cf. MIR_ENOTFOUND if absent,
 * MIR_EPROTO if the value is longer than max_bytes (0: MIR_STORE_VALUE_BYTES_MAX), MIR_EIO. On
 * MIR_OK *val is owned (free with free(); NULL for an empty value) and *vlen its length. */
mir_err mir_store_get(mir_store *s, int cf, const void *key, size_t klen, uint8_t **val,
                      size_t *vlen, size_t max_bytes);

typedef struct mir_store_iter mir_store_iter;

/* An iterator over column family cf in key order, on a consistent view of the database at the
 * time of the call. Returns owned (free with mir_store_iter_free). Not thread-safe itself. */
mir_store_iter *mir_store_iter_new(mir_store *s, int cf);
void mir_store_iter_free(mir_store_iter *it);
/* Positions at the first key >= key (borrowed). */
void mir_store_iter_seek(mir_store_iter *it, const void *key, size_t klen);
/* Positions at the last key <= key (borrowed). */
void mir_store_iter_seek_for_prev(mir_store_iter *it, const void *key, size_t klen);
void mir_store_iter_seek_first(mir_store_iter *it);
void mir_store_iter_seek_last(mir_store_iter *it);
bool mir_store_iter_valid(const mir_store_iter *it);
void mir_store_iter_next(mir_store_iter *it);
void mir_store_iter_prev(mir_store_iter *it);
/* Key and value at the current position (borrowed, valid until the iterator moves or is freed).
 * Only while valid. */
const uint8_t *mir_store_iter_key(const mir_store_iter *it, size_t *len);
const uint8_t *mir_store_iter_value(const mir_store_iter *it, size_t *len);
/* MIR_OK, or MIR_EIO if iteration stopped on an error (detail set). */
mir_err mir_store_iter_status(const mir_store_iter *it);

/* ---- writes ---- */

typedef struct mir_store_batch mir_store_batch;

/* An empty batch of writes for s (borrowed). Returns owned (free with mir_store_batch_free, or
 * hand it to mir_store_write / mir_store_submit). */
mir_store_batch *mir_store_batch_new(mir_store *s);
void mir_store_batch_free(mir_store_batch *b);
/* Adds a put / delete / range delete ([begin, end)) to b. Keys and values are borrowed and
 * copied. Keys longer than MIR_STORE_KEY_BYTES_MAX and values longer than
 * MIR_STORE_VALUE_BYTES_MAX are programmer errors (asserted): callers bound them first. */
void mir_store_batch_put(mir_store_batch *b, int cf, const void *key, size_t klen, const void *val,
                         size_t vlen);
void mir_store_batch_delete(mir_store_batch *b, int cf, const void *key, size_t klen);
void mir_store_batch_delete_range(mir_store_batch *b, int cf, const void *begin, size_t blen,
                                  const void *end, size_t elen);
/* Bytes of keys and values in b. */
size_t mir_store_batch_bytes(const mir_store_batch *b);

/* Writes b (takes ownership) atomically after every queued write, and returns when it is written
 * (and synced, with sync). MIR_EIO on failure; a failed store refuses every later write. */
mir_err mir_store_write(mir_store *s, mir_store_batch *b);

/* Queues b (takes ownership) for the writer thread. Blocks while the queue holds more than
 * queue_bytes_max bytes. *ticket (may be NULL) receives b's number: tickets count up from 1 in
 * submission order. MIR_EIO if an earlier write failed (b is freed), MIR_ESTOPPED after close
 * began. */
mir_err mir_store_submit(mir_store *s, mir_store_batch *b, uint64_t *ticket);

/* The highest ticket whose batch is written (and synced, with sync): every lower one is too.
 * Thread-safe. */
uint64_t mir_store_written(mir_store *s);

/* Waits until ticket is written or timeout_ms passes (0: forever). MIR_OK, MIR_ETIMEDOUT, or
 * MIR_EIO if writing failed. */
mir_err mir_store_wait(mir_store *s, uint64_t ticket, uint64_t timeout_ms);

/* Called on the writer thread after each group write with the highest ticket written, and once
 * when writing fails (with the highest ticket written before the failure; mir_store_status then
 * returns MIR_EIO). It runs while the writer waits: it must not block, and must not call the
 * store's write functions (submit, write, close, set_written_cb); it may call mir_store_written
 * and mir_store_status. One callback per store. */
typedef void (*mir_store_written_fn)(void *user_data, uint64_t ticket);
/* Sets (fn NULL: clears) the callback; user_data is borrowed until the next call. Returns once
 * the previous callback is not running, so its user_data may be freed then. Thread-safe (but not
 * from inside the callback). */
void mir_store_set_written_cb(mir_store *s, mir_store_written_fn fn, void *user_data);

/* MIR_OK while the store can write; MIR_EIO once a write failed, with detail "store <path>: write:
 * <reason>", and RocksDB's reason alone copied (NUL-terminated, truncated) into reason (may be
 * NULL) of reason_len bytes. Never blocks. Thread-safe. */
mir_err mir_store_status(mir_store *s, char *reason, size_t reason_len);

/* Writes the memtables of every column family to table files (SST) and waits for it. Reads and
 * writes go on meanwhile. MIR_EIO on failure. Used by tests that need data in table files; a
 * store never needs it for durability (the write-ahead log gives that). */
mir_err mir_store_flush(mir_store *s);

/* Test hook: the next group write fails without writing anything, as if RocksDB had returned
 * "IO error: <reason>" (reason borrowed and copied; NULL: "injected failure"), and the store fails
 * as it would for a real write error. For faults a test cannot cause for real: a failed fsync
 * (a full disk can be made for real: tests/modules/store/store_faults_test.cc). Thread-safe. */
void mir_store_fail_next_write(mir_store *s, const char *reason);

/* The store's metric set (borrowed, valid until the store is closed), named "store_db": counters
 * mir_store_batches_submitted_total, mir_store_writes_total (group writes),
 * mir_store_fsyncs_total, mir_store_bytes_written_total, mir_store_sync_writes_total,
 * mir_store_submit_waits_total; gauge mir_store_queue_bytes; histogram mir_store_fsync_seconds
 * (each synced group write); the named lock "store_queue". The store module that writes to the
 * store hangs this set below its own, so a node reports it under that module. */
mir_metrics *mir_store_metrics(mir_store *s);

#ifdef __cplusplus
}
#endif
#endif
