/*
 * The event recorder (mir/recorder.h): an interceptor that turns every batch into length-delimited
 * mir.LogRecord entries in zstd-compressed files, with filtering and file rotation.
 *
 * Intercept runs on the node's dispatcher thread and, under prod_mu, filters the batch, packs the
 * surviving events, decides where files rotate and encodes one or more records (a batch is split
 * where a new file starts and where a record would exceed MIR_LOG_RECORD_MAX, so every record stays
 * readable). Each encoded record carries a "new file before me" flag. In synchronous mode the
 * record is written right there; in asynchronous mode it goes to a queue bounded in records and
 * bytes, which a writer thread drains, flushing the zstd stream whenever the queue runs empty and
 * at least every REC_FLUSH_BYTES_MAX bytes.
 *
 * Invariants: records are written in the order intercept produced them (prod_mu serialises the
 * producers, the queue is FIFO and has one consumer); the file is touched only by the writer
 * thread (async) or under prod_mu (sync), and by close after the thread was joined; the first
 * write error is sticky: later intercepts return it and the writer discards what is still queued,
 * so producers blocked on a full queue always wake up. Lock order: prod_mu, then q_mu.
 */
#include "mir/recorder.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/eventlog.h"
#include "mir/lock.h"
#include "mir/log.h"
#include "mir/record.pb-c.h"
#include "rec_internal.h"

/* Room for the varint length in front of a record. */
#define REC_VARINT_MAX 10
/* The asynchronous writer flushes at least this often (record bytes), so that under a load that
 * never lets the queue run empty a crash still loses little. */
#define REC_FLUSH_BYTES_MAX ((size_t)1 << 20)
/* Room for the node id and time fields of a record beyond the node id's bytes. */
#define REC_HEADER_SLACK 32

/* One encoded record waiting to be written. */
typedef struct rec_item {
  struct rec_item *next;
  uint8_t *data; /* owned: varint length, then the packed LogRecord */
  size_t len;
  uint64_t events;
  bool new_file; /* start the next file before writing this record */
} rec_item;

struct mir_recorder {
  /* Configuration, immutable after new. */
  char *dir;
  char *node_id;
  char *prefix;
  mir_recorder_time_fn time_fn;
  void *time_user_data;
  mir_recorder_event_pred filter;
  void *filter_user_data;
  mir_recorder_rotation rotation;
  uint64_t rotate_every_events;
  mir_recorder_event_pred rotate_pred;
  void *rotate_user_data;
  bool sync;
  bool fsync;
  size_t queue_records_max;
  size_t queue_bytes_max;
  uint64_t start_ns;

  /* Producer side, under prod_mu (also guards the file in synchronous mode). */
  pthread_mutex_t prod_mu;
  uint64_t file_events; /* events assigned to the current file */
  bool closed;
  mir_err close_err;

  /* The file: writer thread (async), prod_mu (sync), close after join. */
  miri_log_file file;
  uint64_t file_index;
  size_t unflushed; /* record bytes written since the last flush */

  /* Queue, error and counters, under q_mu. */
  mir_lock q_mu; /* "recorder_queue" */
  pthread_cond_t q_nonempty;
  pthread_cond_t q_nonfull;
  rec_item *q_head;
  rec_item *q_tail;
  size_t q_bytes;
  bool q_stop;
  mir_err write_err;
  char write_err_detail[256];
  size_t queued, queued_max;
  uint64_t bytes_reported; /* of file.bytes_written, already added to m_bytes */

  /* Metrics (owned set, mir_recorder_metrics), updated under q_mu. */
  mir_metrics *metrics;
  mir_counter *m_records, *m_events, *m_filtered, *m_bytes, *m_waits;
  mir_gauge *m_files, *m_queued, *m_queued_max;

  pthread_t thread;
  bool thread_started;
};

/* Registers the recorder's metrics in a new set named "recorder". */
static void rec_metrics_init(mir_recorder *rec) {
  mir_metrics *m = rec->metrics = mir_metrics_new("recorder");
  rec->m_records = mir_metrics_counter(m, "mir_recorder_records_total",
                                       "Records handed to the compressor.", NULL, NULL);
  rec->m_events =
      mir_metrics_counter(m, "mir_recorder_events_total", "Events in those records.", NULL, NULL);
  rec->m_filtered = mir_metrics_counter(m, "mir_recorder_events_filtered_total",
                                        "Events the filter kept out of the log.", NULL, NULL);
  rec->m_bytes = mir_metrics_counter(m, "mir_recorder_bytes_written_total",
                                     "Compressed bytes written to files.", NULL, NULL);
  rec->m_waits = mir_metrics_counter(m, "mir_recorder_waits_total",
                                     "Times the interceptor blocked on a full queue.", NULL, NULL);
  rec->m_files = mir_metrics_gauge(m, "mir_recorder_files", "Files opened.", NULL, NULL);
  rec->m_queued = mir_metrics_gauge(m, "mir_recorder_queue_depth",
                                    "Records waiting for the writer thread.", NULL, NULL);
  rec->m_queued_max = mir_metrics_gauge_max(m, "mir_recorder_queue_depth_max",
                                            "Most records ever waiting at once.", NULL, NULL);
}

void mir_recorder_config_default(mir_recorder_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->rotation = MIR_RECORDER_ONE_FILE;
  cfg->queue_records = MIR_RECORDER_QUEUE_RECORDS_DEFAULT;
  cfg->queue_bytes = MIR_RECORDER_QUEUE_BYTES_DEFAULT;
  cfg->zstd_level = 3;
}

/* ---- configuration ---- */

static bool rec_prefix_valid(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > MIR_RECORDER_PREFIX_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

static mir_err rec_config_check(const mir_recorder_config *cfg) {
  if (cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0') {
    return mir_error_set(MIR_EINVAL, "recorder: dir is required");
  }
  if (cfg->node_id == NULL || cfg->node_id[0] == '\0') {
    return mir_error_set(MIR_EINVAL, "recorder: node_id is required");
  }
  const char *prefix = cfg->prefix != NULL ? cfg->prefix : cfg->node_id;
  if (!rec_prefix_valid(prefix)) {
    return mir_error_set(MIR_EINVAL, "recorder: file prefix '%s' must be 1-%d of [A-Za-z0-9_.-]",
                         prefix, MIR_RECORDER_PREFIX_MAX);
  }
  if (cfg->rotation == MIR_RECORDER_EVERY_N && cfg->rotate_every_events == 0) {
    return mir_error_set(MIR_EINVAL, "recorder: rotate_every_events must be > 0");
  }
  if (cfg->rotation == MIR_RECORDER_PREDICATE && cfg->rotate_pred == NULL) {
    return mir_error_set(MIR_EINVAL, "recorder: rotate_pred is required");
  }
  if (cfg->rotation != MIR_RECORDER_ONE_FILE && cfg->rotation != MIR_RECORDER_EVERY_N &&
      cfg->rotation != MIR_RECORDER_PREDICATE) {
    return mir_error_set(MIR_EINVAL, "recorder: unknown rotation policy %d", (int)cfg->rotation);
  }
  if (cfg->zstd_level < 0 || cfg->zstd_level > 19) {
    return mir_error_set(MIR_EINVAL, "recorder: zstd_level must be 1..19");
  }
  return MIR_OK;
}

char *mir_recorder_file_path(const mir_recorder *rec, uint64_t k) {
  char buf[PATH_MAX];
  int n = snprintf(buf, sizeof(buf), "%s/%s-%llu%s", rec->dir, rec->prefix, (unsigned long long)k,
                   MIR_LOG_FILE_SUFFIX);
  if (n < 0 || (size_t)n >= sizeof(buf)) return NULL;
  return mir_xstrdup(buf);
}

/* Closes the current file (if any) and opens file k. */
static mir_err rec_open_file(mir_recorder *rec, uint64_t k) {
  mir_err err = miri_log_file_close(&rec->file, rec->fsync);
  if (err != MIR_OK) return err;
  char *path = mir_recorder_file_path(rec, k);
  if (path == NULL) return mir_error_set(MIR_EINVAL, "recorder: file path too long");
  err = miri_log_file_open(&rec->file, path);
  free(path);
  if (err != MIR_OK) return err;
  rec->file_index = k;
  return MIR_OK;
}

/* ---- writing (writer thread, or prod_mu in synchronous mode) ---- */

/* Writes one record, first rotating if it asks for a new file; flushes when asked to or when
 * REC_FLUSH_BYTES_MAX bytes went unflushed. */
static mir_err rec_write_item(mir_recorder *rec, const rec_item *item, bool flush) {
  mir_err err = MIR_OK;
  if (item->new_file) {
    err = rec_open_file(rec, rec->file_index + 1);
    rec->unflushed = 0;
  }
  if (err == MIR_OK) err = miri_log_file_write(&rec->file, item->data, item->len);
  rec->unflushed += item->len;
  if (err == MIR_OK && (flush || rec->unflushed >= REC_FLUSH_BYTES_MAX)) {
    err = miri_log_file_flush(&rec->file, rec->fsync);
    rec->unflushed = 0;
  }
  return err;
}

/* Under q_mu: adds the bytes written since the last call to the counter. */
static void rec_note_bytes(mir_recorder *rec) {
  mir_counter_add(rec->m_bytes, rec->file.bytes_written - rec->bytes_reported);
  rec->bytes_reported = rec->file.bytes_written;
}

/* Under q_mu: accounts for a written record, or records the first error and wakes producers. */
static void rec_note_written(mir_recorder *rec, const rec_item *item, mir_err err) {
  if (err != MIR_OK) {
    if (rec->write_err == MIR_OK) {
      rec->write_err = err;
      snprintf(rec->write_err_detail, sizeof(rec->write_err_detail), "%s", mir_error_detail());
      mir_log(MIR_LOG_ERROR, "recorder", "%s", rec->write_err_detail);
    }
    pthread_cond_broadcast(&rec->q_nonfull);
    return;
  }
  mir_counter_inc(rec->m_records);
  mir_counter_add(rec->m_events, item->events);
  mir_gauge_set(rec->m_files, (int64_t)rec->file_index + 1);
  rec_note_bytes(rec);
}

/* Under q_mu: returns the sticky write error, with its detail set for the calling thread. */
static mir_err rec_sticky_error(mir_recorder *rec) {
  if (rec->write_err == MIR_OK) return MIR_OK;
  return mir_error_set(rec->write_err, "%s", rec->write_err_detail);
}

static void rec_item_free(rec_item *item) {
  if (item == NULL) return;
  free(item->data);
  free(item);
}

/* The asynchronous writer: pops one record at a time so that memory stays within the queue bound
 * plus the record in hand, and flushes whenever the queue runs empty. */
static void *rec_writer_main(void *arg) {
  pthread_setname_np(pthread_self(), "mir-recorder"); /* named in top, perf and debuggers */
  mir_recorder *rec = arg;
  mir_lock_acquire(&rec->q_mu);
  for (;;) {
    while (rec->q_head == NULL && !rec->q_stop) pthread_cond_wait(&rec->q_nonempty, &rec->q_mu.mu);
    rec_item *item = rec->q_head;
    if (item == NULL) break; /* stopping and drained */
    rec->q_head = item->next;
    if (rec->q_head == NULL) rec->q_tail = NULL;
    rec->queued--;
    mir_gauge_set(rec->m_queued, (int64_t)rec->queued);
    rec->q_bytes -= item->len;
    bool drained = rec->q_head == NULL;
    bool failed = rec->write_err != MIR_OK;
    pthread_cond_broadcast(&rec->q_nonfull);
    mir_lock_release(&rec->q_mu);

    mir_err err = failed ? MIR_OK : rec_write_item(rec, item, drained);

    mir_lock_acquire(&rec->q_mu);
    if (!failed) rec_note_written(rec, item, err);
    rec_item_free(item);
  }
  mir_lock_release(&rec->q_mu);
  return NULL;
}

/* Async mode: appends item (takes ownership), blocking while the queue is full. A record larger
 * than the byte bound is admitted into an empty queue, so no record can wait forever. */
static mir_err rec_enqueue(mir_recorder *rec, rec_item *item) {
  mir_lock_acquire(&rec->q_mu);
  bool waited = false;
  for (;;) {
    if (rec->write_err != MIR_OK || rec->q_stop) break;
    size_t n = rec->queued;
    bool full =
        n >= rec->queue_records_max || (n > 0 && rec->q_bytes + item->len > rec->queue_bytes_max);
    if (!full) break;
    if (!waited) mir_counter_inc(rec->m_waits);
    waited = true;
    pthread_cond_wait(&rec->q_nonfull, &rec->q_mu.mu);
  }
  mir_err err = rec_sticky_error(rec);
  if (err == MIR_OK && rec->q_stop) err = mir_error_set(MIR_ESTOPPED, "recorder: closed");
  if (err != MIR_OK) {
    mir_lock_release(&rec->q_mu);
    rec_item_free(item);
    return err;
  }
  if (rec->q_tail != NULL) {
    rec->q_tail->next = item;
  } else {
    rec->q_head = item;
  }
  rec->q_tail = item;
  rec->q_bytes += item->len;
  rec->queued++;
  mir_gauge_set(rec->m_queued, (int64_t)rec->queued);
  if (rec->queued > rec->queued_max) {
    rec->queued_max = rec->queued;
    mir_gauge_set(rec->m_queued_max, (int64_t)rec->queued_max);
  }
  pthread_cond_signal(&rec->q_nonempty);
  mir_lock_release(&rec->q_mu);
  return MIR_OK;
}

/* Hands an encoded record (takes ownership) to the writer: directly in synchronous mode. */
static mir_err rec_submit(mir_recorder *rec, rec_item *item) {
  if (!rec->sync) return rec_enqueue(rec, item);
  mir_err err = rec_write_item(rec, item, false);
  mir_lock_acquire(&rec->q_mu);
  rec_note_written(rec, item, err);
  err = rec_sticky_error(rec);
  mir_lock_release(&rec->q_mu);
  rec_item_free(item);
  return err;
}

/* ---- intercept: filter, pack, split, encode (under prod_mu) ---- */

/* The events of a batch being turned into records; pes[start, n) is the record being built. */
typedef struct rec_batch {
  const char *node_id;
  int64_t time_ns;
  Mir__PackedEvent *pes; /* owned array of cap packed events */
  Mir__PackedEvent **ptrs;
  size_t cap;
  size_t n;
  size_t start;
  size_t bytes;  /* encoded size of the events of the record being built */
  bool new_file; /* the record being built starts a new file */
} rec_batch;

/* Encodes pes[start, n) as one record and submits it; the packed events are cleared. */
static mir_err rec_emit(mir_recorder *rec, rec_batch *b) {
  if (b->n == b->start) return MIR_OK;
  Mir__LogRecord lr = MIR__LOG_RECORD__INIT;
  lr.node_id = (char *)b->node_id;
  lr.time_ns = b->time_ns;
  lr.n_events = b->n - b->start;
  lr.events = b->ptrs + b->start;
  size_t body = mir__log_record__get_packed_size(&lr);
  MIR_ASSERT(body <= MIR_LOG_RECORD_MAX); /* the split in rec_add_event guarantees it */
  rec_item *item = mir_xcalloc(1, sizeof(*item));
  item->data = mir_xmalloc(body + REC_VARINT_MAX);
  size_t hdr = miri_varint_put(item->data, body);
  size_t packed = mir__log_record__pack(&lr, item->data + hdr);
  MIR_ASSERT(packed == body);
  item->len = hdr + body;
  item->events = lr.n_events;
  item->new_file = b->new_file;
  for (size_t i = b->start; i < b->n; i++) mir_packed_event_clear(&b->pes[i]);
  b->start = b->n;
  b->bytes = 0;
  b->new_file = false;
  return rec_submit(rec, item);
}

/* Encoded size of a length-delimited field of len bytes with a one-byte tag. */
static size_t rec_field_size(size_t len) {
  uint8_t tmp[REC_VARINT_MAX];
  return 1 + miri_varint_put(tmp, len) + len;
}

static bool rec_should_rotate(mir_recorder *rec, const mir_event *ev) {
  switch (rec->rotation) {
    case MIR_RECORDER_EVERY_N:
      return rec->file_events >= rec->rotate_every_events;
    case MIR_RECORDER_PREDICATE:
      return rec->file_events > 0 && rec->rotate_pred(rec->rotate_user_data, ev);
    default:
      return false;
  }
}

/* Adds one event to the batch, first closing the record being built where a new file starts or
 * where the event would push the record past MIR_LOG_RECORD_MAX. */
static mir_err rec_add_event(mir_recorder *rec, rec_batch *b, const mir_event *ev) {
  bool rotate = rec_should_rotate(rec, ev);
  Mir__PackedEvent *pe = &b->pes[b->n];
  mir__packed_event__init(pe);
  mir_event_pack(ev, pe);
  size_t ev_bytes = rec_field_size(mir__packed_event__get_packed_size(pe));
  size_t room = MIR_LOG_RECORD_MAX - strlen(b->node_id) - REC_HEADER_SLACK;
  if (ev_bytes > room) {
    mir_packed_event_clear(pe);
    return mir_error_set(MIR_EFULL, "recorder: event %s of %zu bytes exceeds the record bound",
                         mir_event_type_name(ev), ev_bytes);
  }
  if (rotate || b->bytes + ev_bytes > room) {
    mir_err err = rec_emit(rec, b);
    if (err != MIR_OK) {
      mir_packed_event_clear(pe);
      return err;
    }
  }
  if (rotate) {
    b->new_file = true;
    rec->file_events = 0;
  }
  b->ptrs[b->n++] = pe;
  b->bytes += ev_bytes;
  rec->file_events++;
  return MIR_OK;
}

static mir_err rec_record_batch(mir_recorder *rec, const char *node_id,
                                const mir_event_list *batch) {
  rec_batch b = {0};
  b.node_id = node_id;
  b.time_ns = rec->time_fn != NULL ? rec->time_fn(rec->time_user_data)
                                   : (int64_t)(mir_now_ns() - rec->start_ns);
  b.cap = batch->len;
  b.pes = mir_xcalloc(b.cap > 0 ? b.cap : 1, sizeof(*b.pes));
  b.ptrs = mir_xcalloc(b.cap > 0 ? b.cap : 1, sizeof(*b.ptrs));
  uint64_t filtered = 0;
  mir_err err = MIR_OK;
  MIR_EVENT_LIST_FOREACH(batch, ev) {
    MIR_ASSERT(b.n < b.cap);
    if (rec->filter != NULL && !rec->filter(rec->filter_user_data, ev)) {
      filtered++;
      continue;
    }
    err = rec_add_event(rec, &b, ev);
    if (err != MIR_OK) break;
  }
  if (err == MIR_OK) err = rec_emit(rec, &b);
  bool flush_failed = false;
  if (err == MIR_OK && rec->sync) {
    err = miri_log_file_flush(&rec->file, rec->fsync);
    rec->unflushed = 0;
    flush_failed = err != MIR_OK;
  }
  for (size_t i = b.start; i < b.n; i++) mir_packed_event_clear(&b.pes[i]);
  free(b.pes);
  free(b.ptrs);
  mir_lock_acquire(&rec->q_mu);
  mir_counter_add(rec->m_filtered, filtered);
  if (flush_failed) rec_note_written(rec, NULL, err);
  mir_lock_release(&rec->q_mu);
  return err;
}

static mir_err rec_intercept(void *user_data, const char *node_id, const char *module_id,
                             const mir_event_list *batch) {
  (void)module_id;
  mir_recorder *rec = user_data;
  pthread_mutex_lock(&rec->prod_mu);
  mir_err err = MIR_OK;
  if (rec->closed) {
    err = mir_error_set(MIR_ESTOPPED, "recorder: closed");
  } else {
    mir_lock_acquire(&rec->q_mu);
    err = rec_sticky_error(rec);
    mir_lock_release(&rec->q_mu);
  }
  if (err == MIR_OK) err = rec_record_batch(rec, node_id != NULL ? node_id : rec->node_id, batch);
  pthread_mutex_unlock(&rec->prod_mu);
  return err;
}

void mir_recorder_interceptor(mir_recorder *rec, mir_interceptor *out) {
  out->intercept = rec_intercept;
  out->user_data = rec;
}

/* ---- life cycle ---- */

static void rec_copy_config(mir_recorder *rec, const mir_recorder_config *cfg) {
  rec->dir = mir_xstrdup(cfg->dir);
  rec->node_id = mir_xstrdup(cfg->node_id);
  rec->prefix = mir_xstrdup(cfg->prefix != NULL ? cfg->prefix : cfg->node_id);
  rec->time_fn = cfg->time_fn;
  rec->time_user_data = cfg->time_user_data;
  rec->filter = cfg->filter;
  rec->filter_user_data = cfg->filter_user_data;
  rec->rotation = cfg->rotation;
  rec->rotate_every_events = cfg->rotate_every_events;
  rec->rotate_pred = cfg->rotate_pred;
  rec->rotate_user_data = cfg->rotate_user_data;
  rec->sync = cfg->sync;
  rec->fsync = cfg->fsync;
  rec->queue_records_max =
      cfg->queue_records > 0 ? cfg->queue_records : MIR_RECORDER_QUEUE_RECORDS_DEFAULT;
  rec->queue_bytes_max = cfg->queue_bytes > 0 ? cfg->queue_bytes : MIR_RECORDER_QUEUE_BYTES_DEFAULT;
  rec->start_ns = mir_now_ns();
}

static void rec_destroy(mir_recorder *rec) {
  miri_log_file_fini(&rec->file);
  pthread_mutex_destroy(&rec->prod_mu);
  mir_lock_fini(&rec->q_mu);
  mir_metrics_free(rec->metrics);
  pthread_cond_destroy(&rec->q_nonempty);
  pthread_cond_destroy(&rec->q_nonfull);
  free(rec->dir);
  free(rec->node_id);
  free(rec->prefix);
  free(rec);
}

mir_err mir_recorder_new(const mir_recorder_config *cfg, mir_recorder **out) {
  *out = NULL;
  mir_err err = rec_config_check(cfg);
  if (err != MIR_OK) return err;
  mir_recorder *rec = mir_xcalloc(1, sizeof(*rec));
  rec_copy_config(rec, cfg);
  pthread_mutex_init(&rec->prod_mu, NULL);
  rec_metrics_init(rec);
  mir_lock_init(&rec->q_mu, rec->metrics, "recorder_queue");
  pthread_cond_init(&rec->q_nonempty, NULL);
  pthread_cond_init(&rec->q_nonfull, NULL);
  rec->file.fd = -1;
  err = miri_log_file_init(&rec->file, cfg->zstd_level > 0 ? cfg->zstd_level : 3);
  if (err == MIR_OK) err = miri_mkdir_p(rec->dir);
  if (err == MIR_OK) err = rec_open_file(rec, 0);
  if (err == MIR_OK) mir_gauge_set(rec->m_files, 1);
  if (err == MIR_OK && !rec->sync) {
    if (pthread_create(&rec->thread, NULL, rec_writer_main, rec) != 0) {
      err = mir_error_set(MIR_ENOMEM, "recorder: cannot start the writer thread");
    } else {
      rec->thread_started = true;
    }
  }
  if (err != MIR_OK) {
    rec_destroy(rec);
    return err;
  }
  *out = rec;
  return MIR_OK;
}

mir_err mir_recorder_close(mir_recorder *rec) {
  pthread_mutex_lock(&rec->prod_mu);
  if (rec->closed) {
    mir_err prev = rec->close_err;
    pthread_mutex_unlock(&rec->prod_mu);
    return prev;
  }
  rec->closed = true;
  if (rec->thread_started) {
    mir_lock_acquire(&rec->q_mu);
    rec->q_stop = true;
    pthread_cond_broadcast(&rec->q_nonempty);
    pthread_cond_broadcast(&rec->q_nonfull);
    mir_lock_release(&rec->q_mu);
    pthread_join(rec->thread, NULL);
    rec->thread_started = false;
  }
  mir_lock_acquire(&rec->q_mu);
  mir_err err = rec_sticky_error(rec);
  bool failed = err != MIR_OK;
  mir_lock_release(&rec->q_mu);
  /* After a write error the frame is abandoned as it is: the reader recovers what was flushed. */
  mir_err cerr = failed ? MIR_OK : miri_log_file_close(&rec->file, rec->fsync);
  mir_lock_acquire(&rec->q_mu);
  if (cerr != MIR_OK) rec_note_written(rec, NULL, cerr);
  rec_note_bytes(rec);
  err = rec_sticky_error(rec);
  mir_lock_release(&rec->q_mu);
  rec->close_err = err;
  pthread_mutex_unlock(&rec->prod_mu);
  return err;
}

mir_metrics *mir_recorder_metrics(mir_recorder *rec) {
  return rec->metrics;
}

void mir_recorder_free(mir_recorder *rec) {
  if (rec == NULL) return;
  mir_recorder_close(rec);
  rec_destroy(rec);
}
