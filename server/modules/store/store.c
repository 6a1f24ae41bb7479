/*
 * The store (mir_store.h): RocksDB behind a small C interface, with a writer thread for group
 * commit.
 *
 * A batch is our own list of operations (not a RocksDB write batch) so that the writer can merge
 * the operations of every queued batch into a single RocksDB write: one write-ahead-log append and
 * at most one fsync per group, however many callers submitted. Synchronous writes go through the
 * same queue and wait for their ticket, which keeps every write in submission order.
 *
 * Invariants (under mu): the queue holds batches with increasing tickets, all above `written`;
 * queued_bytes is the sum of their sizes; once `failed` is set no batch is written again and
 * every waiter and submitter gets MIR_EIO. The writer thread is the only one that calls
 * rocksdb_write. Reads go straight to RocksDB, which is thread-safe.
 *
 * Storage faults. RocksDB opens with point-in-time recovery of its write-ahead log, so a record
 * torn by a crash (and everything after it) is dropped and the database comes back as a prefix of
 * the writes, each whole; with paranoid checks and checksums verified on every read, a corrupt
 * file is an error (MIR_EIO, "the data is corrupt") instead of wrong data. A failed write is
 * never retried: RocksDB itself turns read-only after a failed write-ahead-log append or sync, and
 * a replica that cannot tell what reached the disk must stop rather than vote on top of it.
 */
#include "mir_store.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/lock.h"
#include "mir/log.h"

#define ST_LOG "store"
/* Column families a database may hold in all: ours, "default" and a few left by other versions. */
#define ST_CF_OPEN_MAX (MIR_STORE_CFS_MAX + 9)
/* Bound of RocksDB's own write-ahead log files (st_set_options). */
#define ST_MAX_TOTAL_WAL_BYTES ((uint64_t)64 << 20)

typedef enum st_kind { ST_PUT = 0, ST_DELETE = 1, ST_DELETE_RANGE = 2 } st_kind;

/* One operation; key and value (or range end) share one allocation. */
typedef struct st_op {
  st_kind kind;
  int cf;
  uint8_t *key;
  size_t klen;
  uint8_t *val; /* points into the key's allocation */
  size_t vlen;
} st_op;

struct mir_store_batch {
  mir_store *s;
  st_op *ops;
  size_t n, cap;
  size_t bytes;
  uint64_t ticket;
  mir_store_batch *next;
};

struct mir_store {
  char *path;
  mir_store_config cfg;
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_writeoptions_t *wopts;
  rocksdb_readoptions_t *ropts;
  rocksdb_column_family_handle_t *handles[ST_CF_OPEN_MAX];
  char names[ST_CF_OPEN_MAX][MIR_STORE_CF_NAME_MAX];
  size_t n_handles;

  mir_lock mu;               /* "store_queue" */
  pthread_cond_t work_cv;    /* writer: something queued, or stopping */
  pthread_cond_t space_cv;   /* submitters: the queue shrank */
  pthread_cond_t written_cv; /* waiters: `written` moved, or writing failed */
  pthread_t writer;
  bool writer_started, stopping;
  mir_store_batch *q_head, *q_tail;
  size_t queued_bytes;
  uint64_t next_ticket, written;
  bool failed;
  char failure[512];        /* "store <path>: write: <reason>" */
  char failure_reason[256]; /* RocksDB's reason alone */
  char inject[200];         /* test hook: the next group fails with this reason ("": off) */
  mir_store_written_fn written_fn;
  void *written_user;
  bool cb_running;      /* the writer is inside written_fn (called without mu) */
  pthread_cond_t cb_cv; /* mir_store_set_written_cb: the callback returned */

  /* Metrics (owned set, mir_store_metrics). */
  mir_metrics *metrics;
  mir_counter *submitted, *groups, *fsyncs, *sync_writes, *bytes, *waits;
  mir_gauge *queued_bytes_g;
  mir_histogram *fsync_seconds;
};

void mir_store_config_default(mir_store_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->sync = true;
  cfg->queue_bytes_max = (size_t)64 << 20;
  cfg->group_bytes_max = (size_t)8 << 20;
}

/* RocksDB reports damaged files as "Corruption: ..." (checksum mismatches, bad block handles,
 * truncated files): say it in our words too, since an operator must restore such a replica's data
 * rather than retry. */
static const char *st_corrupt_note(const char *reason) {
  return strncmp(reason, "Corruption", 10) == 0 ? "the data is corrupt: " : "";
}

/* Turns a RocksDB error string (owned, freed here) into MIR_EIO with the store's path. */
static mir_err st_fail(const char *path, const char *what, char *err) {
  const char *reason = err ? err : "unknown error";
  mir_err e =
      mir_error_set(MIR_EIO, "store %s: %s: %s%s", path, what, st_corrupt_note(reason), reason);
  free(err);
  return e;
}

/* ---- batches ---- */

mir_store_batch *mir_store_batch_new(mir_store *s) {
  mir_store_batch *b = mir_xcalloc(1, sizeof(*b));
  b->s = s;
  return b;
}

void mir_store_batch_free(mir_store_batch *b) {
  if (b == NULL) return;
  for (size_t i = 0; i < b->n; i++) free(b->ops[i].key);
  free(b->ops);
  free(b);
}

static void st_batch_add(mir_store_batch *b, st_kind kind, int cf, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  MIR_ASSERT(cf >= 0 && (size_t)cf < b->s->n_handles);
  MIR_ASSERT(klen <= MIR_STORE_KEY_BYTES_MAX && vlen <= MIR_STORE_VALUE_BYTES_MAX);
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 8;
    b->ops = mir_xrealloc(b->ops, b->cap * sizeof(*b->ops));
  }
  st_op *op = &b->ops[b->n++];
  op->kind = kind;
  op->cf = cf;
  op->key = mir_xmalloc(klen + vlen + 1);
  if (klen > 0) memcpy(op->key, key, klen);
  op->klen = klen;
  op->val = op->key + klen;
  if (vlen > 0) memcpy(op->val, val, vlen);
  op->vlen = vlen;
  b->bytes += klen + vlen;
}

void mir_store_batch_put(mir_store_batch *b, int cf, const void *key, size_t klen, const void *val,
                         size_t vlen) {
  st_batch_add(b, ST_PUT, cf, key, klen, val, vlen);
}

void mir_store_batch_delete(mir_store_batch *b, int cf, const void *key, size_t klen) {
  st_batch_add(b, ST_DELETE, cf, key, klen, NULL, 0);
}

void mir_store_batch_delete_range(mir_store_batch *b, int cf, const void *begin, size_t blen,
                                  const void *end, size_t elen) {
  MIR_ASSERT(elen <= MIR_STORE_KEY_BYTES_MAX);
  st_batch_add(b, ST_DELETE_RANGE, cf, begin, blen, end, elen);
}

size_t mir_store_batch_bytes(const mir_store_batch *b) {
  return b->bytes;
}

/* Adds the operations of b (borrowed) to the RocksDB batch wb. */
static void st_batch_apply(const mir_store *s, const mir_store_batch *b, rocksdb_writebatch_t *wb) {
  for (size_t i = 0; i < b->n; i++) {
    const st_op *op = &b->ops[i];
    rocksdb_column_family_handle_t *h = s->handles[op->cf];
    const char *k = (const char *)op->key, *v = (const char *)op->val;
    switch (op->kind) {
      case ST_PUT:
        rocksdb_writebatch_put_cf(wb, h, k, op->klen, v, op->vlen);
        break;
      case ST_DELETE:
        rocksdb_writebatch_delete_cf(wb, h, k, op->klen);
        break;
      case ST_DELETE_RANGE:
        rocksdb_writebatch_delete_range_cf(wb, h, k, op->klen, v, op->vlen);
        break;
    }
  }
}

/* ---- the writer thread ---- */

/* Takes queued batches from the head, at least one and at most group_bytes_max bytes in all,
 * as a list. Caller holds mu; the queue is not empty. */
static mir_store_batch *st_take_group(mir_store *s, size_t *bytes) {
  mir_store_batch *first = s->q_head, *last = first;
  size_t sum = first->bytes;
  while (last->next != NULL && sum + last->next->bytes <= s->cfg.group_bytes_max) {
    last = last->next;
    sum += last->bytes;
  }
  s->q_head = last->next;
  if (s->q_head == NULL) s->q_tail = NULL;
  last->next = NULL;
  *bytes = sum;
  return first;
}

/* Records why writing failed (reason borrowed). Writer thread, before `failed` is published. */
static void st_set_failure(mir_store *s, const char *reason) {
  snprintf(s->failure_reason, sizeof(s->failure_reason), "%s", reason);
  snprintf(s->failure, sizeof(s->failure), "store %s: write: %s%s", s->path,
           st_corrupt_note(reason), reason);
}

/* Writes a group (borrowed list) as one RocksDB write. inject (borrowed, may be empty) makes it
 * fail without writing, as RocksDB would on an I/O error. Returns false with s->failure set. */
static bool st_write_group(mir_store *s, const mir_store_batch *group, const char *inject) {
  if (inject[0] != '\0') {
    char reason[sizeof(s->inject) + 16];
    snprintf(reason, sizeof(reason), "IO error: %s", inject);
    st_set_failure(s, reason);
    return false;
  }
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  for (const mir_store_batch *b = group; b != NULL; b = b->next) st_batch_apply(s, b, wb);
  char *err = NULL;
  /* One clock pair per group: a synced group is one fsync, whose latency the histogram shows. */
  uint64_t t0 = mir_now_ns();
  rocksdb_write(s->db, s->wopts, wb, &err);
  uint64_t took = mir_now_ns() - t0;
  rocksdb_writebatch_destroy(wb);
  if (err == NULL && s->cfg.sync) {
    mir_counter_inc(s->fsyncs);
    mir_histogram_observe(s->fsync_seconds, took);
  }
  if (err == NULL) return true;
  st_set_failure(s, err);
  free(err);
  return false;
}

static void *st_writer_main(void *arg) {
  pthread_setname_np(pthread_self(), "mir-store"); /* named in top, perf and debuggers */
  mir_store *s = arg;
  mir_lock_acquire(&s->mu);
  for (;;) {
    while (s->q_head == NULL && !s->stopping) pthread_cond_wait(&s->work_cv, &s->mu.mu);
    if (s->q_head == NULL) break; /* stopping with nothing left */
    size_t bytes = 0;
    mir_store_batch *group = st_take_group(s, &bytes);
    bool failed = s->failed;
    char inject[sizeof(s->inject)];
    memcpy(inject, s->inject, sizeof(inject));
    s->inject[0] = '\0';
    mir_lock_release(&s->mu);
    bool ok = !failed && st_write_group(s, group, inject);
    uint64_t last = 0;
    for (mir_store_batch *b = group, *next; b != NULL; b = next) {
      next = b->next;
      last = b->ticket;
      mir_store_batch_free(b);
    }
    mir_lock_acquire(&s->mu);
    s->queued_bytes -= bytes;
    bool newly_failed = false;
    mir_gauge_set(s->queued_bytes_g, (int64_t)s->queued_bytes);
    if (ok) {
      s->written = last;
      mir_counter_inc(s->groups);
      mir_counter_add(s->bytes, bytes);
    } else if (!s->failed) {
      s->failed = newly_failed = true;
      mir_log(MIR_LOG_ERROR, ST_LOG, "%s", s->failure);
    }
    pthread_cond_broadcast(&s->space_cv);
    pthread_cond_broadcast(&s->written_cv);
    mir_store_written_fn fn = s->written_fn;
    void *user = s->written_user;
    if ((ok || newly_failed) && fn != NULL) {
      /* Called without mu so that the callback may read the store (mir_store_written,
       * mir_store_status); cb_running lets mir_store_set_written_cb wait for it to return. */
      uint64_t written = s->written;
      s->cb_running = true;
      mir_lock_release(&s->mu);
      fn(user, written);
      mir_lock_acquire(&s->mu);
      s->cb_running = false;
      pthread_cond_broadcast(&s->cb_cv);
    }
  }
  mir_lock_release(&s->mu);
  return NULL;
}

mir_err mir_store_submit(mir_store *s, mir_store_batch *b, uint64_t *ticket) {
  MIR_ASSERT(b != NULL && b->s == s);
  mir_lock_acquire(&s->mu);
  if (s->queued_bytes > s->cfg.queue_bytes_max && !s->failed && !s->stopping) {
    mir_counter_inc(s->waits);
  }
  while (s->queued_bytes > s->cfg.queue_bytes_max && !s->failed && !s->stopping) {
    pthread_cond_wait(&s->space_cv, &s->mu.mu);
  }
  mir_err err = MIR_OK;
  if (s->failed) {
    err = mir_error_set(MIR_EIO, "%s", s->failure);
  } else if (s->stopping) {
    err = mir_error_set(MIR_ESTOPPED, "store %s: closing", s->path);
  }
  if (err != MIR_OK) {
    mir_lock_release(&s->mu);
    mir_store_batch_free(b);
    return err;
  }
  b->ticket = ++s->next_ticket;
  if (ticket != NULL) *ticket = b->ticket;
  if (s->q_tail != NULL) {
    s->q_tail->next = b;
  } else {
    s->q_head = b;
  }
  s->q_tail = b;
  s->queued_bytes += b->bytes;
  mir_gauge_set(s->queued_bytes_g, (int64_t)s->queued_bytes);
  mir_counter_inc(s->submitted);
  pthread_cond_signal(&s->work_cv);
  mir_lock_release(&s->mu);
  return MIR_OK;
}

uint64_t mir_store_written(mir_store *s) {
  mir_lock_acquire(&s->mu);
  uint64_t w = s->written;
  mir_lock_release(&s->mu);
  return w;
}

mir_err mir_store_wait(mir_store *s, uint64_t ticket, uint64_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)(timeout_ms / 1000);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  mir_err err = MIR_OK;
  mir_lock_acquire(&s->mu);
  while (s->written < ticket && !s->failed) {
    if (timeout_ms == 0) {
      pthread_cond_wait(&s->written_cv, &s->mu.mu);
    } else if (pthread_cond_timedwait(&s->written_cv, &s->mu.mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  if (s->written >= ticket) {
    err = MIR_OK;
  } else if (s->failed) {
    err = mir_error_set(MIR_EIO, "%s", s->failure);
  } else {
    err = mir_error_set(MIR_ETIMEDOUT, "store %s: write %llu not done", s->path,
                        (unsigned long long)ticket);
  }
  mir_lock_release(&s->mu);
  return err;
}

mir_err mir_store_write(mir_store *s, mir_store_batch *b) {
  uint64_t ticket = 0;
  mir_err err = mir_store_submit(s, b, &ticket);
  if (err == MIR_OK) err = mir_store_wait(s, ticket, 0);
  mir_counter_inc(s->sync_writes);
  return err;
}

void mir_store_set_written_cb(mir_store *s, mir_store_written_fn fn, void *user_data) {
  mir_lock_acquire(&s->mu);
  s->written_fn = fn;
  s->written_user = user_data;
  /* The caller may free the old callback's data once we return: wait until it is not running. */
  while (s->cb_running) pthread_cond_wait(&s->cb_cv, &s->mu.mu);
  mir_lock_release(&s->mu);
}

mir_err mir_store_status(mir_store *s, char *reason, size_t reason_len) {
  mir_err err = MIR_OK;
  mir_lock_acquire(&s->mu);
  if (s->failed) {
    err = mir_error_set(MIR_EIO, "%s", s->failure);
    if (reason != NULL && reason_len > 0) snprintf(reason, reason_len, "%s", s->failure_reason);
  }
  mir_lock_release(&s->mu);
  return err;
}

void mir_store_fail_next_write(mir_store *s, const char *reason) {
  mir_lock_acquire(&s->mu);
  snprintf(s->inject, sizeof(s->inject), "%s",
           reason != NULL && reason[0] != '\0' ? reason : "injected failure");
  mir_lock_release(&s->mu);
}

mir_err mir_store_flush(mir_store *s) {
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(fo, 1);
  mir_err err = MIR_OK;
  for (size_t i = 0; err == MIR_OK && i < s->n_handles; i++) {
    char *rerr = NULL;
    rocksdb_flush_cf(s->db, fo, s->handles[i], &rerr);
    if (rerr != NULL) err = st_fail(s->path, "flush", rerr);
  }
  rocksdb_flushoptions_destroy(fo);
  return err;
}

mir_metrics *mir_store_metrics(mir_store *s) {
  return s->metrics;
}

/* Registers the store's metrics in a new set named "store_db". */
static void st_metrics_init(mir_store *s) {
  /* 100 us to 10 s: a local SSD syncs in well under a millisecond, a loaded disk in tens. */
  static const uint64_t fsync_bounds[] = {
      100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
      25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 10000000000ull};
  mir_metrics *m = s->metrics = mir_metrics_new("store_db");
  s->submitted = mir_metrics_counter(m, "mir_store_batches_submitted_total",
                                     "Write batches queued for the store's writer.", NULL, NULL);
  s->groups = mir_metrics_counter(
      m, "mir_store_writes_total",
      "Group writes made by the writer thread (one RocksDB write each).", NULL, NULL);
  s->fsyncs = mir_metrics_counter(m, "mir_store_fsyncs_total",
                                  "Synced group writes (one fsync of the write-ahead log each).",
                                  NULL, NULL);
  s->bytes = mir_metrics_counter(m, "mir_store_bytes_written_total", "Key and value bytes written.",
                                 NULL, NULL);
  s->sync_writes = mir_metrics_counter(m, "mir_store_sync_writes_total",
                                       "Writes made synchronously (mir_store_write).", NULL, NULL);
  s->waits = mir_metrics_counter(m, "mir_store_submit_waits_total",
                                 "Submits that blocked on the queue's byte bound.", NULL, NULL);
  s->queued_bytes_g = mir_metrics_gauge(m, "mir_store_queue_bytes",
                                        "Bytes waiting for the store's writer.", NULL, NULL);
  s->fsync_seconds = mir_metrics_histogram(
      m, "mir_store_fsync_seconds", "Time of a synced group write (RocksDB write with fsync).",
      NULL, NULL, fsync_bounds, sizeof fsync_bounds / sizeof fsync_bounds[0]);
}

/* ---- reads ---- */

int mir_store_cf(const mir_store *s, const char *name) {
  for (size_t i = 0; i < s->n_handles; i++) {
    if (strcmp(s->names[i], name) == 0) return (int)i;
  }
  return -1;
}

const char *mir_store_path(const mir_store *s) {
  return s->path;
}

mir_err mir_store_get(mir_store *s, int cf, const void *key, size_t klen, uint8_t **val,
                      size_t *vlen, size_t max_bytes) {
  MIR_ASSERT(cf >= 0 && (size_t)cf < s->n_handles);
  if (max_bytes == 0) max_bytes = MIR_STORE_VALUE_BYTES_MAX;
  char *err = NULL;
  rocksdb_pinnableslice_t *ps =
      rocksdb_get_pinned_cf(s->db, s->ropts, s->handles[cf], (const char *)key, klen, &err);
  if (err != NULL) return st_fail(s->path, "read", err);
  if (ps == NULL) return MIR_ENOTFOUND;
  size_t len = 0;
  const char *v = rocksdb_pinnableslice_value(ps, &len);
  mir_err res = MIR_OK;
  if (len > max_bytes) {
    res = mir_error_set(MIR_EPROTO, "store %s: value of %zu bytes above the bound of %zu", s->path,
                        len, max_bytes);
  } else {
    *val = len > 0 ? mir_xmemdup(v, len) : NULL;
    *vlen = len;
  }
  rocksdb_pinnableslice_destroy(ps);
  return res;
}

struct mir_store_iter {
  rocksdb_iterator_t *it;
  const char *path;
};

mir_store_iter *mir_store_iter_new(mir_store *s, int cf) {
  MIR_ASSERT(cf >= 0 && (size_t)cf < s->n_handles);
  mir_store_iter *it = mir_xcalloc(1, sizeof(*it));
  it->it = rocksdb_create_iterator_cf(s->db, s->ropts, s->handles[cf]);
  it->path = s->path;
  return it;
}

void mir_store_iter_free(mir_store_iter *it) {
  if (it == NULL) return;
  rocksdb_iter_destroy(it->it);
  free(it);
}

void mir_store_iter_seek(mir_store_iter *it, const void *key, size_t klen) {
  rocksdb_iter_seek(it->it, (const char *)key, klen);
}

void mir_store_iter_seek_for_prev(mir_store_iter *it, const void *key, size_t klen) {
  rocksdb_iter_seek_for_prev(it->it, (const char *)key, klen);
}

void mir_store_iter_seek_first(mir_store_iter *it) {
  rocksdb_iter_seek_to_first(it->it);
}

void mir_store_iter_seek_last(mir_store_iter *it) {
  rocksdb_iter_seek_to_last(it->it);
}

bool mir_store_iter_valid(const mir_store_iter *it) {
  return rocksdb_iter_valid(it->it) != 0;
}

void mir_store_iter_next(mir_store_iter *it) {
  rocksdb_iter_next(it->it);
}

void mir_store_iter_prev(mir_store_iter *it) {
  rocksdb_iter_prev(it->it);
}

const uint8_t *mir_store_iter_key(const mir_store_iter *it, size_t *len) {
  return (const uint8_t *)rocksdb_iter_key(it->it, len);
}

const uint8_t *mir_store_iter_value(const mir_store_iter *it, size_t *len) {
  return (const uint8_t *)rocksdb_iter_value(it->it, len);
}

mir_err mir_store_iter_status(const mir_store_iter *it) {
  char *err = NULL;
  rocksdb_iter_get_error(it->it, &err);
  return err != NULL ? st_fail(it->path, "iterate", err) : MIR_OK;
}

/* ---- open and close ---- */

static mir_err st_check_config(const mir_store_config *cfg) {
  if (cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0') {
    return mir_error_set(MIR_EINVAL, "store: no path");
  }
  if (cfg->n_cfs > MIR_STORE_CFS_MAX || (cfg->n_cfs > 0 && cfg->cfs == NULL)) {
    return mir_error_set(MIR_EINVAL, "store: at most %d column families", MIR_STORE_CFS_MAX);
  }
  for (size_t i = 0; i < cfg->n_cfs; i++) {
    size_t len = cfg->cfs[i] != NULL ? strlen(cfg->cfs[i]) : 0;
    if (len == 0 || len >= MIR_STORE_CF_NAME_MAX || strcmp(cfg->cfs[i], "default") == 0) {
      return mir_error_set(MIR_EINVAL, "store: invalid column family name");
    }
  }
  if (cfg->queue_bytes_max == 0 || cfg->group_bytes_max == 0) {
    return mir_error_set(MIR_EINVAL, "store: queue_bytes_max and group_bytes_max must be > 0");
  }
  return MIR_OK;
}

/* Adds name to the list of column families to open unless it is there already. */
static mir_err st_add_name(mir_store *s, const char *name) {
  if (mir_store_cf(s, name) >= 0) return MIR_OK;
  if (s->n_handles == ST_CF_OPEN_MAX || strlen(name) >= MIR_STORE_CF_NAME_MAX) {
    return mir_error_set(MIR_EIO, "store %s: unexpected column family '%.32s'", s->path, name);
  }
  snprintf(s->names[s->n_handles++], MIR_STORE_CF_NAME_MAX, "%s", name);
  return MIR_OK;
}

/* The column families to open: "default", the ones already in the database (RocksDB insists on
 * opening all of them), then the configured ones. */
static mir_err st_collect_names(mir_store *s) {
  mir_err err = st_add_name(s, "default");
  size_t n = 0;
  char *lerr = NULL;
  char **existing = rocksdb_list_column_families(s->opts, s->path, &n, &lerr);
  free(lerr); /* a database that does not exist yet has none */
  for (size_t i = 0; err == MIR_OK && existing != NULL && i < n; i++) {
    err = st_add_name(s, existing[i]);
  }
  if (existing != NULL) rocksdb_list_column_families_destroy(existing, n);
  for (size_t i = 0; err == MIR_OK && i < s->cfg.n_cfs; i++) err = st_add_name(s, s->cfg.cfs[i]);
  return err;
}

static void st_set_options(mir_store *s) {
  s->opts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(s->opts, 1);
  rocksdb_options_set_create_missing_column_families(s->opts, 1);
  rocksdb_options_increase_parallelism(s->opts, 2);
  rocksdb_options_set_max_open_files(s->opts, 512);
  rocksdb_options_set_keep_log_file_num(s->opts, 4);
  /* A write-ahead log file of RocksDB is deleted only once every column family with data in it
   * was flushed. A family written rarely (the small ones beside the ordered log) keeps its
   * memtable for a long time, and with it every log file since: a replica under load held 112 MB
   * of them after 40 s, growing towards RocksDB's default bound of four times all write buffers
   * (gigabytes). Past this size the oldest families are flushed, so the log files stay bounded. */
  rocksdb_options_set_max_total_wal_size(s->opts, ST_MAX_TOTAL_WAL_BYTES);
  /* RocksDB's own LOG file gets the option dump at open and fatal errors only. Every error that
   * matters to a replica reaches us as a status and is logged by us with RocksDB's reason. A
   * quieter LOG also survives a full disk: once an append to the LOG failed, this RocksDB
   * (built with its assertions) aborts the process at the next LOG line, which its error handler
   * writes right after a failed write at WARN level (tests/modules/store/store_faults_test.cc). */
  rocksdb_options_set_info_log_level(s->opts, 4 /* FATAL */);
  /* A crash can tear the last record of the write-ahead log. Point-in-time recovery replays the
   * log up to the first damaged record and drops the rest, so the database opens at a prefix of
   * the writes, each whole, in order: what mir_store_written promised is in it (it was synced),
   * and nothing after a hole is. (The default of this RocksDB version too; set so that it stays.)
   * The stricter absolute-consistency mode would refuse to open after any crash mid-write. */
  rocksdb_options_set_wal_recovery_mode(s->opts, rocksdb_point_in_time_recovery);
  /* Fail on damaged files (at open, and as a background error) instead of working around them. */
  rocksdb_options_set_paranoid_checks(s->opts, 1);
  s->wopts = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wopts, s->cfg.sync ? 1 : 0);
  s->ropts = rocksdb_readoptions_create();
  /* Every block read is checked against its checksum: a flipped bit is MIR_EIO, never a value. */
  rocksdb_readoptions_set_verify_checksums(s->ropts, 1);
}

static mir_err st_open_db(mir_store *s) {
  if (mkdir(s->path, 0700) != 0 && errno != EEXIST) {
    return mir_error_set(MIR_EIO, "store %s: cannot create the directory: %s", s->path,
                         strerror(errno));
  }
  mir_err err = st_collect_names(s);
  if (err != MIR_OK) return err;
  const char *names[ST_CF_OPEN_MAX];
  const rocksdb_options_t *cf_opts[ST_CF_OPEN_MAX];
  for (size_t i = 0; i < s->n_handles; i++) {
    names[i] = s->names[i];
    cf_opts[i] = s->opts;
  }
  char *rerr = NULL;
  s->db = rocksdb_open_column_families(s->opts, s->path, (int)s->n_handles, names, cf_opts,
                                       s->handles, &rerr);
  if (rerr != NULL) {
    s->db = NULL;
    return st_fail(s->path, "open", rerr);
  }
  return MIR_OK;
}

static void st_destroy(mir_store *s) {
  for (size_t i = 0; s->db != NULL && i < s->n_handles; i++) {
    rocksdb_column_family_handle_destroy(s->handles[i]);
  }
  if (s->db != NULL) rocksdb_close(s->db);
  if (s->opts != NULL) rocksdb_options_destroy(s->opts);
  if (s->wopts != NULL) rocksdb_writeoptions_destroy(s->wopts);
  if (s->ropts != NULL) rocksdb_readoptions_destroy(s->ropts);
  mir_lock_fini(&s->mu);
  mir_metrics_free(s->metrics);
  pthread_cond_destroy(&s->work_cv);
  pthread_cond_destroy(&s->space_cv);
  pthread_cond_destroy(&s->written_cv);
  pthread_cond_destroy(&s->cb_cv);
  free(s->path);
  free(s);
}

mir_err mir_store_open(const mir_store_config *cfg, mir_store **out) {
  mir_err err = st_check_config(cfg);
  if (err != MIR_OK) return err;
  mir_store *s = mir_xcalloc(1, sizeof(*s));
  s->cfg = *cfg;
  s->cfg.cfs = NULL; /* the names are copied into s->names */
  s->path = mir_xstrdup(cfg->path);
  st_metrics_init(s);
  mir_lock_init(&s->mu, s->metrics, "store_queue");
  pthread_cond_init(&s->work_cv, NULL);
  pthread_cond_init(&s->space_cv, NULL);
  pthread_cond_init(&s->written_cv, NULL);
  pthread_cond_init(&s->cb_cv, NULL);
  st_set_options(s);
  s->cfg.cfs = cfg->cfs;
  err = st_open_db(s);
  s->cfg.cfs = NULL;
  if (err == MIR_OK && pthread_create(&s->writer, NULL, st_writer_main, s) != 0) {
    err = mir_error_set(MIR_ENOMEM, "store %s: cannot start the writer thread", s->path);
  }
  if (err != MIR_OK) {
    st_destroy(s);
    return err;
  }
  s->writer_started = true;
  *out = s;
  return MIR_OK;
}

mir_err mir_store_close(mir_store *s) {
  if (s == NULL) return MIR_OK;
  mir_lock_acquire(&s->mu);
  s->stopping = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_cond_broadcast(&s->space_cv);
  mir_lock_release(&s->mu);
  if (s->writer_started) pthread_join(s->writer, NULL);
  mir_err err = s->failed ? mir_error_set(MIR_EIO, "%s", s->failure) : MIR_OK;
  st_destroy(s);
  return err;
}
