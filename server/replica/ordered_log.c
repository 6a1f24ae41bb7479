/*
 * The ordered log (ordered_log.h): the trantor_app callbacks, the positions and the reads.
 *
 * Two positions move here. `pos` is where Trantor is (the next sn it delivers); the stored and
 * served entries are [base_sn, head). In normal operation both move together at every delivery.
 * After a restart, Trantor resumes from its last stable checkpoint while head may be further:
 * re-deliveries below head are compared with the stored entries (olog_redeliver), and one that
 * differs stops the node. State transfer past head restarts the stored log at the checkpoint
 * (olog_restart_at). Invariants: base_sn <= head; pos <= head once known; a stored entry never
 * changes; the ring holds the newest ring_n entries, each until the store has written it.
 *
 * Writes are queued to the store's writer (group commit), so the dispatcher never waits for a
 * disk; it waits only when the ring is full of entries the writer has not reached yet, which
 * bounds the memory the log may hold.
 *
 * Without a store (memory only, for the limit pipeline) the ring is the whole log: it holds
 * exactly [base_sn, head), and an entry that leaves it moves base_sn past it (its hash becomes
 * base_hash); retention is the ring's bounds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "olog_internal.h"

#define OLOG_NS_PER_S 1000000000ull

void mir_olog_config_default(mir_olog_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->retention_sns = MIR_OLOG_RETENTION_DEFAULT;
  cfg->cache_entries = 4096;
  cfg->cache_bytes = (size_t)64 << 20;
  cfg->delete_every = 1024;
}

void mir_olog_hash(trantor_hash_fn hash, const uint8_t prev[MIR_OLOG_HASH_BYTES], uint64_t sn,
                   uint64_t epoch, Trantor__Tx *const *txs, size_t n,
                   uint8_t out[MIR_OLOG_HASH_BYTES]) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += trantor__tx__get_packed_size(txs[i]);
  uint8_t *buf = mir_xmalloc(total > 0 ? total : 1);
  const uint8_t **parts = mir_xmalloc((n + 4) * sizeof(*parts));
  size_t *lens = mir_xmalloc((n + 4) * sizeof(*lens));
  uint8_t sn_be[8], epoch_be[8];
  miri_olog_key(sn_be, sn);
  miri_olog_key(epoch_be, epoch);
  parts[0] = (const uint8_t *)"log";
  lens[0] = 3;
  parts[1] = prev;
  lens[1] = MIR_OLOG_HASH_BYTES;
  parts[2] = sn_be;
  lens[2] = 8;
  parts[3] = epoch_be;
  lens[3] = 8;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    parts[4 + i] = buf + off;
    lens[4 + i] = trantor__tx__pack(txs[i], buf + off);
    off += lens[4 + i];
  }
  hash(parts, lens, n + 4, out);
  free(lens);
  free(parts);
  free(buf);
}

/* ---- the ring of recent entries (callers hold mu unless stated) ---- */

static olog_entry *olog_ring_at(mir_olog *log, size_t i) {
  return &log->ring[(log->ring_start + i) % log->ring_cap];
}

/* The ring entry of sn, or NULL. */
static olog_entry *olog_ring_find(mir_olog *log, uint64_t sn) {
  if (log->ring_n == 0 || sn >= log->head || sn < log->head - log->ring_n) return NULL;
  return olog_ring_at(log, (size_t)(log->ring_n - (log->head - sn)));
}

static void olog_ring_pop_front(mir_olog *log) {
  olog_entry *e = olog_ring_at(log, 0);
  log->ring_bytes -= e->len;
  free(e->packed);
  memset(e, 0, sizeof(*e));
  log->ring_start = (log->ring_start + 1) % log->ring_cap;
  log->ring_n--;
}

/* Drops the ring entries of sn >= from (the newest ones). */
static void olog_ring_truncate(mir_olog *log, uint64_t from) {
  while (log->ring_n > 0) {
    olog_entry *e = olog_ring_at(log, log->ring_n - 1);
    if (e->sn < from) break;
    log->ring_bytes -= e->len;
    free(e->packed);
    memset(e, 0, sizeof(*e));
    log->ring_n--;
  }
}

/* Makes room for one entry of len bytes: the oldest entries leave once the store wrote them.
 * Dispatcher thread, mu not held: it may wait for the store's writer. */
static void olog_ring_make_room(mir_olog *log, size_t len) {
  pthread_mutex_lock(&log->mu);
  while (log->ring_n > 0 &&
         (log->ring_n == log->ring_cap || log->ring_bytes + len > log->cfg.cache_bytes)) {
    uint64_t ticket = olog_ring_at(log, 0)->ticket;
    if (log->store == NULL) { /* memory only: the oldest entry leaves the log */
      log->base_sn = olog_ring_at(log, 0)->sn + 1;
      memcpy(log->base_hash, olog_ring_at(log, 0)->hash, MIR_OLOG_HASH_BYTES);
    } else if (ticket > mir_store_written(log->store)) {
      pthread_mutex_unlock(&log->mu);
      (void)mir_store_wait(log->store, ticket,
                           0); /* a failed store is reported at the next write */
      pthread_mutex_lock(&log->mu);
    }
    olog_ring_pop_front(log);
  }
  pthread_mutex_unlock(&log->mu);
}

/* ---- positions (dispatcher thread) ---- */

static void olog_notify(mir_olog *log, uint64_t next_sn) {
  if (log->listener != NULL) log->listener(log->listener_user, next_sn);
}

/* The stored hash of sn (base <= sn < head): from the ring, else from the store. */
static mir_err olog_stored_hash(mir_olog *log, uint64_t sn, uint8_t out[MIR_OLOG_HASH_BYTES]) {
  pthread_mutex_lock(&log->mu);
  olog_entry *e = olog_ring_find(log, sn);
  if (e != NULL) memcpy(out, e->hash, MIR_OLOG_HASH_BYTES);
  pthread_mutex_unlock(&log->mu);
  if (e != NULL) return MIR_OK;
  if (log->store == NULL) {
    return mir_error_set(MIR_ENOTFOUND, "ordered log: sn %" PRIu64 " is not in memory", sn);
  }
  return miri_olog_read_record(log, sn, NULL, out);
}

/* "3fa2...": the first bytes of a hash in hex, for messages (buf of at least 17 bytes). */
static const char *olog_hex(const uint8_t *h, char *buf) {
  for (int i = 0; i < 8; i++) snprintf(buf + 2 * i, 3, "%02x", h[i]);
  return buf;
}

/* The error for a delivery or a checkpoint that contradicts the stored log: the node stops
 * rather than rewrite entries that were served, and that clients may have seen committed. */
static mir_err olog_contradiction(mir_olog *log, const char *what, uint64_t sn, const uint8_t *got,
                                  const uint8_t *stored) {
  char g[17], st[17];
  return mir_error_set(MIR_EIO,
                       "ordered log: sn %" PRIu64
                       ": %s has log hash %s..., but %s holds %s... "
                       "for it: the cluster decided otherwise than this replica stored (a lost or "
                       "damaged data folder, or a bug); stopping instead of rewriting the log",
                       sn, what, olog_hex(got, g),
                       log->store != NULL ? mir_store_path(log->store) : "the memory",
                       olog_hex(stored, st));
}

/* Deletes the entries that fell out of the retention window, in ranges of delete_every, in b. */
static mir_err olog_retain(mir_olog *log, mir_store_batch *b, uint64_t head) {
  uint64_t keep = log->cfg.retention_sns;
  if (head - log->base_sn < keep + log->cfg.delete_every) return MIR_OK;
  uint64_t nb = head - keep;
  if (nb <= log->base_sn) return MIR_OK;
  uint8_t hash[MIR_OLOG_HASH_BYTES];
  mir_err err = olog_stored_hash(log, nb - 1, hash);
  if (err != MIR_OK) return err;
  miri_olog_delete_entries(log, b, log->base_sn, nb);
  miri_olog_put_base(log, b, nb, hash);
  pthread_mutex_lock(&log->mu);
  log->base_sn = nb;
  memcpy(log->base_hash, hash, MIR_OLOG_HASH_BYTES);
  pthread_mutex_unlock(&log->mu);
  return MIR_OK;
}

/* Stores a new entry at sn == head and serves it. */
static mir_err olog_append(mir_olog *log, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                           size_t n, const uint8_t h[MIR_OLOG_HASH_BYTES]) {
  size_t len = 0;
  uint8_t *packed = miri_olog_pack_delivery(sn, epoch, txs, n, h, &len);
  olog_ring_make_room(log, len);
  uint64_t ticket = 0;
  if (log->store != NULL) {
    mir_store_batch *b = mir_store_batch_new(log->store);
    miri_olog_put_entry(log, b, sn, epoch, txs, n, h);
    mir_err err = olog_retain(log, b, sn + 1);
    if (err == MIR_OK) {
      err = miri_olog_submit(log, b, &ticket);
    } else {
      mir_store_batch_free(b);
    }
    if (err != MIR_OK) {
      free(packed);
      return err;
    }
  }
  pthread_mutex_lock(&log->mu);
  olog_entry *e = olog_ring_at(log, log->ring_n++);
  *e = (olog_entry){.sn = sn, .ticket = ticket, .packed = packed, .len = len};
  memcpy(e->hash, h, MIR_OLOG_HASH_BYTES);
  log->ring_bytes += len;
  log->head = sn + 1;
  memcpy(log->head_hash, h, MIR_OLOG_HASH_BYTES);
  log->appended++;
  pthread_mutex_unlock(&log->mu);
  mir_counter_inc(log->m_batches);
  mir_counter_add(log->m_txs, n);
  mir_gauge_set(log->m_next_sn, (int64_t)(sn + 1));
  olog_notify(log, sn + 1);
  return MIR_OK;
}

/* Trantor delivers sn again (base <= sn < head), after a restart: it must be what is stored. */
static mir_err olog_redeliver(mir_olog *log, uint64_t sn, const uint8_t h[MIR_OLOG_HASH_BYTES]) {
  uint8_t stored[MIR_OLOG_HASH_BYTES];
  mir_err err = olog_stored_hash(log, sn, stored);
  if (err != MIR_OK) return err;
  if (memcmp(stored, h, MIR_OLOG_HASH_BYTES) != 0) {
    return olog_contradiction(log, "the delivery", sn, h, stored);
  }
  pthread_mutex_lock(&log->mu);
  log->confirmed++;
  pthread_mutex_unlock(&log->mu);
  return MIR_OK;
}

/* Restarts the stored log at sn with log_hash(sn - 1) = hash: a state transfer past what is
 * stored leaves a gap, and the retained range never has one. */
static mir_err olog_restart_at(mir_olog *log, uint64_t sn, const uint8_t *hash) {
  if (log->store != NULL) {
    mir_store_batch *b = mir_store_batch_new(log->store);
    miri_olog_delete_entries(log, b, log->base_sn, log->head);
    miri_olog_put_base(log, b, sn, hash);
    mir_err err = miri_olog_submit(log, b, NULL);
    if (err != MIR_OK) return err;
  }
  pthread_mutex_lock(&log->mu);
  olog_ring_truncate(log, 0);
  log->base_sn = log->head = sn;
  memcpy(log->base_hash, hash, MIR_OLOG_HASH_BYTES);
  memcpy(log->head_hash, hash, MIR_OLOG_HASH_BYTES);
  pthread_mutex_unlock(&log->mu);
  mir_log(MIR_LOG_INFO, OLOG_LOG, "the log restarts at sn %" PRIu64 " (state transfer)", sn);
  olog_notify(log, sn);
  return MIR_OK;
}

/* Moves the protocol's position to sn, with log_hash(sn - 1) = hash. */
static void olog_set_pos(mir_olog *log, uint64_t sn, const uint8_t *hash) {
  log->pos_known = true;
  log->pos = sn;
  memcpy(log->pos_hash, hash, MIR_OLOG_HASH_BYTES);
  pthread_mutex_lock(&log->mu);
  log->pos_shared = sn;
  pthread_mutex_unlock(&log->mu);
}

/* Checks that sn is the protocol's next position; at genesis (sn 0) the position starts. */
static mir_err olog_check_pos(mir_olog *log, uint64_t sn, const char *what) {
  if (!log->pos_known && sn == 0) {
    static const uint8_t zero[MIR_OLOG_HASH_BYTES];
    olog_set_pos(log, 0, zero);
  }
  if (!log->pos_known || sn != log->pos) {
    return mir_error_set(MIR_EINVAL, "ordered log: %s at sn %" PRIu64 ", expected %s%" PRIu64, what,
                         sn, log->pos_known ? "" : "genesis or a restore, not ",
                         log->pos_known ? log->pos : sn);
  }
  return MIR_OK;
}

/* ---- the trantor_app callbacks ---- */

static mir_err olog_apply(void *user, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs,
                          size_t n) {
  mir_olog *log = user;
  mir_err err = olog_check_pos(log, sn, "apply_batch");
  if (err != MIR_OK) return err;
  uint8_t h[MIR_OLOG_HASH_BYTES];
  mir_olog_hash(log->cfg.hash, log->pos_hash, sn, epoch, txs, n, h);
  MIR_ASSERT(sn <= log->head); /* pos never passes head: see the invariants */
  if (sn < log->base_sn) {
    /* Below what is retained: nothing to store; the chain must still meet the base. */
    if (sn + 1 == log->base_sn && memcmp(h, log->base_hash, MIR_OLOG_HASH_BYTES) != 0) {
      return olog_contradiction(log, "the delivery", sn, h, log->base_hash);
    }
  } else if (sn < log->head) {
    err = olog_redeliver(log, sn, h);
  } else {
    err = olog_append(log, sn, epoch, txs, n, h);
  }
  if (err != MIR_OK) return err;
  olog_set_pos(log, sn + 1, h);
  return MIR_OK;
}

static mir_err olog_snapshot(void *user, uint64_t epoch, uint64_t sn, uint8_t **data, size_t *len) {
  (void)epoch;
  mir_olog *log = user;
  mir_err err = olog_check_pos(log, sn, "snapshot");
  if (err != MIR_OK) return err;
  uint8_t *out = mir_xmalloc(MIR_OLOG_SNAPSHOT_BYTES);
  miri_olog_key(out, log->pos);
  memcpy(out + 8, log->pos_hash, MIR_OLOG_HASH_BYTES);
  *data = out;
  *len = MIR_OLOG_SNAPSHOT_BYTES;
  return MIR_OK;
}

/* Adopts position sn with chain hash (a checkpoint's), checking it against what is stored where
 * possible. */
static mir_err olog_adopt(mir_olog *log, uint64_t sn, const uint8_t *hash) {
  if (sn > log->head) return olog_restart_at(log, sn, hash);
  if (sn < log->base_sn) return MIR_OK; /* older than anything kept: checked at the base */
  uint8_t stored[MIR_OLOG_HASH_BYTES];
  if (sn == log->base_sn) {
    memcpy(stored, log->base_hash, MIR_OLOG_HASH_BYTES);
  } else {
    mir_err err = olog_stored_hash(log, sn - 1, stored);
    if (err != MIR_OK) return err;
  }
  if (memcmp(stored, hash, MIR_OLOG_HASH_BYTES) != 0) {
    /* The checkpoint's chain covers sn - 1 (sn == 0 has nothing below it, so never here). */
    return olog_contradiction(log, "the chain of a stable checkpoint", sn - 1, hash, stored);
  }
  return MIR_OK;
}

static mir_err olog_restore(void *user, const uint8_t *data, size_t len, uint64_t sn) {
  mir_olog *log = user;
  uint64_t next = 0;
  for (size_t i = 0; i < 8 && len == MIR_OLOG_SNAPSHOT_BYTES; i++) next = (next << 8) | data[i];
  if (len != MIR_OLOG_SNAPSHOT_BYTES || next != sn) {
    return mir_error_set(MIR_EINVAL,
                         "ordered log: restore at sn %" PRIu64
                         ": a snapshot of %zu "
                         "bytes for sn %" PRIu64 " is not one of ours",
                         sn, len, next);
  }
  mir_err err = olog_adopt(log, sn, data + 8);
  if (err != MIR_OK) return err;
  olog_set_pos(log, sn, data + 8);
  pthread_mutex_lock(&log->mu);
  log->restores++;
  pthread_mutex_unlock(&log->mu);
  mir_log(MIR_LOG_INFO, OLOG_LOG, "restored the position sn %" PRIu64 " from a checkpoint", sn);
  return MIR_OK;
}

static mir_err olog_new_epoch(void *user, uint64_t epoch, uint64_t first_sn) {
  mir_olog *log = user;
  if (!log->pos_known && first_sn == 0) (void)olog_check_pos(log, 0, "new_epoch");
  pthread_mutex_lock(&log->mu);
  log->epoch = epoch;
  pthread_mutex_unlock(&log->mu);
  mir_gauge_set(log->m_epoch, (int64_t)epoch);
  /* Under load epochs change many times a second: one INFO line a second at most. */
  uint64_t now = mir_now_ns();
  log->epochs_unlogged++;
  if (log->epoch_logged_ns == 0 || now - log->epoch_logged_ns >= OLOG_NS_PER_S) {
    mir_log(MIR_LOG_INFO, OLOG_LOG,
            "epoch %" PRIu64 " starts at sn %" PRIu64 " (%" PRIu64
            " epoch change%s since the last report)",
            epoch, first_sn, log->epochs_unlogged, log->epochs_unlogged == 1 ? "" : "s");
    log->epoch_logged_ns = now;
    log->epochs_unlogged = 0;
  } else {
    mir_log(MIR_LOG_DEBUG, OLOG_LOG, "epoch %" PRIu64 " starts at sn %" PRIu64, epoch, first_sn);
  }
  return MIR_OK;
}

/* Follows chkp (borrowed) as the latest stable checkpoint, unless a later one is known. */
static void olog_follow_checkpoint(mir_olog *log, uint64_t epoch, uint64_t sn) {
  pthread_mutex_lock(&log->mu);
  if (!log->have_chk || epoch > log->chk_epoch) {
    log->have_chk = true;
    log->chk_epoch = epoch;
    log->chk_sn = sn;
  }
  pthread_mutex_unlock(&log->mu);
}

/* Trantor keeps the stable checkpoint in its write-ahead log; the log only follows it. */
static mir_err olog_checkpoint(void *user, const Trantor__StableCheckpoint *chkp) {
  mir_olog *log = user;
  if (chkp->snapshot == NULL || chkp->snapshot->epoch_config == NULL) {
    return mir_error_set(MIR_EINVAL, "ordered log: a stable checkpoint without an epoch");
  }
  olog_follow_checkpoint(log, chkp->snapshot->epoch_config->epoch, chkp->sn);
  mir_log(MIR_LOG_DEBUG, OLOG_LOG, "stable checkpoint of epoch %" PRIu64 " at sn %" PRIu64,
          chkp->snapshot->epoch_config->epoch, chkp->sn);
  return MIR_OK;
}

void mir_olog_note_checkpoint(mir_olog *log, const Trantor__StableCheckpoint *chkp) {
  if (chkp->snapshot == NULL || chkp->snapshot->epoch_config == NULL) return;
  olog_follow_checkpoint(log, chkp->snapshot->epoch_config->epoch, chkp->sn);
}

void mir_olog_app(mir_olog *log, trantor_app *app) {
  memset(app, 0, sizeof(*app));
  app->apply_batch = olog_apply;
  app->snapshot = olog_snapshot;
  app->restore = olog_restore;
  app->new_epoch = olog_new_epoch;
  app->checkpoint = olog_checkpoint;
  app->user_data = log;
}

/* ---- reads (any thread) ---- */

mir_err mir_olog_read(mir_olog *log, uint64_t sn, uint8_t **packed, size_t *len) {
  pthread_mutex_lock(&log->mu);
  uint64_t base = log->base_sn, head = log->head;
  olog_entry *e = sn >= base && sn < head ? olog_ring_find(log, sn) : NULL;
  if (e != NULL) {
    *packed = mir_xmemdup(e->packed, e->len);
    *len = e->len;
  }
  pthread_mutex_unlock(&log->mu);
  if (e != NULL) return MIR_OK;
  if (sn >= head) return MIR_EEOF;
  /* Memory only: an sn of [base, head) that is not in the ring left it since the check above. */
  mir_err err = sn >= base && log->store != NULL ? miri_olog_read_delivery(log, sn, packed, len)
                                                 : MIR_ENOTFOUND;
  if (err == MIR_ENOTFOUND) {
    /* Below the base, or deleted by retention or a state transfer since the check above. */
    return mir_error_set(MIR_ENOTFOUND,
                         "sn %" PRIu64 " is no longer retained (oldest: %" PRIu64 ")", sn, base);
  }
  return err;
}

void mir_olog_get_status(mir_olog *log, mir_olog_status *out) {
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&log->mu);
  out->next_sn = log->head;
  memcpy(out->log_hash, log->head_hash, MIR_OLOG_HASH_BYTES);
  out->epoch = log->epoch;
  out->retained_from_sn = log->base_sn;
  out->protocol_sn = log->pos_shared;
  out->have_checkpoint = log->have_chk;
  out->checkpoint_epoch = log->chk_epoch;
  out->checkpoint_sn = log->chk_sn;
  out->appended = log->appended;
  out->confirmed = log->confirmed;
  out->restores = log->restores;
  pthread_mutex_unlock(&log->mu);
}

void mir_olog_set_listener(mir_olog *log, mir_olog_listener fn, void *user_data) {
  log->listener = fn;
  log->listener_user = user_data;
}

/* ---- open and free ---- */

static mir_err olog_check_config(const mir_olog_config *cfg) {
  if (cfg == NULL || cfg->hash == NULL) {
    return mir_error_set(MIR_EINVAL, "ordered log: hash is required");
  }
  if (cfg->retention_sns < MIR_OLOG_RETENTION_MIN || cfg->cache_entries == 0 ||
      cfg->cache_bytes == 0 || cfg->delete_every == 0) {
    return mir_error_set(MIR_EINVAL,
                         "ordered log: retention_sns must be at least %llu, and the "
                         "cache bounds and delete_every above 0",
                         (unsigned long long)MIR_OLOG_RETENTION_MIN);
  }
  for (size_t i = 0; cfg->store != NULL && i < MIR_OLOG_N_CFS; i++) {
    if (mir_store_cf(cfg->store, mir_olog_cfs[i]) < 0) {
      return mir_error_set(MIR_EINVAL, "ordered log: the store lacks the column family %s",
                           mir_olog_cfs[i]);
    }
  }
  return MIR_OK;
}

/* Registers the log's metrics in its own set, named "app". */
static void olog_metrics_init(mir_olog *log) {
  mir_metrics *m = log->metrics = mir_metrics_new("app");
  log->m_batches = mir_metrics_counter(
      m, "mir_delivered_batches_total",
      "Batches (sequence numbers) delivered and stored in the ordered log in this run.", NULL,
      NULL);
  log->m_txs = mir_metrics_counter(
      m, "mir_delivered_transactions_total",
      "Transactions delivered and stored in the ordered log in this run.", NULL, NULL);
  log->m_next_sn = mir_metrics_gauge_max(
      m, "mir_log_next_sn", "The next sequence number the ordered log stores.", NULL, NULL);
  log->m_epoch = mir_metrics_gauge_max(m, "mir_epoch", "The protocol's current epoch.", NULL, NULL);
}

mir_metrics *mir_olog_metrics(mir_olog *log) {
  return log->metrics;
}

mir_err mir_olog_open(const mir_olog_config *cfg, mir_olog **out) {
  mir_err err = olog_check_config(cfg);
  if (err != MIR_OK) return err;
  mir_olog *log = mir_xcalloc(1, sizeof(*log));
  log->cfg = *cfg;
  log->store = cfg->store;
  log->cf_log = cfg->store != NULL ? mir_store_cf(cfg->store, mir_olog_cfs[0]) : -1;
  log->cf_batches = cfg->store != NULL ? mir_store_cf(cfg->store, mir_olog_cfs[1]) : -1;
  log->ring_cap = cfg->cache_entries;
  log->ring = mir_xcalloc(log->ring_cap, sizeof(*log->ring));
  pthread_mutex_init(&log->mu, NULL);
  olog_metrics_init(log);
  if (cfg->store != NULL) err = miri_olog_load(log); /* memory only: empty, at the genesis */
  if (err != MIR_OK) {
    mir_olog_free(log);
    return err;
  }
  *out = log;
  return MIR_OK;
}

void mir_olog_free(mir_olog *log) {
  if (log == NULL) return;
  while (log->ring_n > 0) olog_ring_pop_front(log);
  free(log->ring);
  pthread_mutex_destroy(&log->mu);
  mir_metrics_free(log->metrics);
  free(log);
}
