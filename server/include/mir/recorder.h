/*
 * The event recorder: an interceptor that writes every batch a node applies to zstd-compressed
 * event-log files, for mir-cat to list, filter, print and replay.
 *
 * File format: a zstd stream of length-delimited records, each a protobuf unsigned varint length
 * followed by a packed mir.LogRecord {node_id, time_ns, events}. Files are named
 * DIR/<prefix>-<k>.mirlog.zst with k = 0, 1, 2, ... (an existing file of the same name is
 * overwritten). The compressed stream is flushed at every writer flush, so a file stays readable up
 * to its last flushed record even if the process dies; closing a file ends the zstd frame.
 *
 * Life cycle: mir_recorder_new opens file 0 (and, in asynchronous mode, starts the writer thread);
 * mir_recorder_interceptor hands out the interceptor to install with mir_node_set_interceptor;
 * after the node has stopped, mir_recorder_close drains and closes; mir_recorder_free releases.
 * Reading logs back: mir/eventlog.h.
 */
#ifndef MIR_RECORDER_H
#define MIR_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/event.h"
#include "mir/metrics.h"
#include "mir/node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound of the asynchronous queue, in records (one record per intercepted batch). */
#define MIR_RECORDER_QUEUE_RECORDS_DEFAULT 5000
/* Default bound of the asynchronous queue, in encoded bytes. */
#define MIR_RECORDER_QUEUE_BYTES_DEFAULT ((size_t)256 << 20)
/* Longest file prefix (without the terminating NUL). */
#define MIR_RECORDER_PREFIX_MAX 64

typedef struct mir_recorder mir_recorder;

/* Returns the time to stamp on a record, in nanoseconds. Called on the intercepting thread. */
typedef int64_t (*mir_recorder_time_fn)(void *user_data);

/* A predicate over one event (borrowed, valid until the call returns). Called on the
 * intercepting thread, in event order; must not block. */
typedef bool (*mir_recorder_event_pred)(void *user_data, const mir_event *ev);

typedef enum mir_recorder_rotation {
  MIR_RECORDER_ONE_FILE = 0, /* everything in <prefix>-0 (default) */
  MIR_RECORDER_EVERY_N = 1,  /* a new file after every rotate_every_events recorded events */
  MIR_RECORDER_PREDICATE = 2 /* a new file before each event satisfying rotate_pred */
} mir_recorder_rotation;

typedef struct mir_recorder_config {
  const char *dir;     /* directory of the files; created (mode 0700) if missing. Required. */
  const char *node_id; /* recorded in each record when the interceptor is given none. Required. */
  const char *prefix;  /* file name prefix, [A-Za-z0-9_.-]+ (NULL: node_id) */

  mir_recorder_time_fn time_fn; /* NULL: mir_now_ns() minus the recorder's creation time */
  void *time_user_data;

  mir_recorder_event_pred filter; /* NULL: record every event; else only those it accepts */
  void *filter_user_data;

  mir_recorder_rotation rotation;
  uint64_t rotate_every_events;        /* MIR_RECORDER_EVERY_N: events per file (> 0) */
  mir_recorder_event_pred rotate_pred; /* MIR_RECORDER_PREDICATE: required. A matching event
                                        * opens a new file unless the current one is still empty. */
  void *rotate_user_data;

  bool sync;            /* true: write and flush inside intercept, under a mutex, no thread;
                         * false: a writer thread that flushes whenever its queue runs empty and
                         * at least every MiB */
  size_t queue_records; /* async queue bound in records (0: MIR_RECORDER_QUEUE_RECORDS_DEFAULT) */
  size_t queue_bytes;   /* async queue bound in bytes (0: MIR_RECORDER_QUEUE_BYTES_DEFAULT); a
                         * record larger than the bound is still admitted into an empty queue */
  int zstd_level;       /* 1..19 (0: 3) */
  bool fsync;           /* also fsync the file at every flush (survives machine crashes) */
} mir_recorder_config;

/* Fills cfg (borrowed) with the defaults; dir and node_id stay NULL and must be set. */
void mir_recorder_config_default(mir_recorder_config *cfg);

/* Creates a recorder and opens its first file. cfg is borrowed (strings are copied; callbacks
 * and their user_data must stay valid until mir_recorder_free). MIR_EINVAL for an invalid config,
 * MIR_EIO if the directory or file cannot be created (detail in mir_error_detail()). *out is owned
 * (free with mir_recorder_free). */
mir_err mir_recorder_new(const mir_recorder_config *cfg, mir_recorder **out);

/* Fills out with the recorder's interceptor; rec is borrowed and must outlive every node that
 * uses it. Intercept packs the batch (borrowed) into records; in asynchronous mode it blocks while
 * the queue is full (backpressure on the node). It returns the writer's first error once writing
 * failed, and MIR_ESTOPPED after close. Several nodes may share one recorder. */
void mir_recorder_interceptor(mir_recorder *rec, mir_interceptor *out);

/* Writes every queued record, ends the current file's zstd frame, closes it and joins the writer
 * thread. rec is borrowed (still to be freed with mir_recorder_free). Call after every node using
 * the recorder has stopped. Idempotent: later calls return the same result. Returns the first
 * write error, or MIR_OK. After a write error the current file is left as it is (readable up to
 * its last successful flush). */
mir_err mir_recorder_close(mir_recorder *rec);

/* The recorder's metric set (borrowed, valid until mir_recorder_free), named "recorder":
 * counters mir_recorder_records_total, mir_recorder_events_total,
 * mir_recorder_events_filtered_total, mir_recorder_bytes_written_total, mir_recorder_waits_total;
 * gauges mir_recorder_files, mir_recorder_queue_depth, mir_recorder_queue_depth_max; the named
 * lock "recorder_queue". An embedding program may attach it below its node's root
 * (mir_metrics_attach) to report it with the node's metrics. */
mir_metrics *mir_recorder_metrics(mir_recorder *rec);

/* Path of file k; rec is borrowed. Returns owned (free with free()), or NULL if the path would
 * exceed PATH_MAX. */
char *mir_recorder_file_path(const mir_recorder *rec, uint64_t k);

/* Closes (if needed) and frees rec (takes ownership). NULL is a no-op. */
void mir_recorder_free(mir_recorder *rec);

#ifdef __cplusplus
}
#endif
#endif
