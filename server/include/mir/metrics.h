/*
 * The metrics registry: named counters, gauges and histograms that every part of a process reads
 * the same way (the replica's /metrics and /debug/stats, the simulator, the tests, mir-bench).
 *
 * A metric lives in a set (mir_metrics). Sets form a tree: a node has a root set; each of its
 * top-level modules gets a set named after its id, below which the module's own set (and a
 * factory's submodules' sets) hang. Whoever creates a module creates its set with it and keeps
 * the pointers that mir_metrics_counter and friends return; updating a metric through such a
 * pointer is one relaxed atomic operation (no lock, allocation or system call), safe from any
 * thread. Registering, attaching, detaching and reading take one process-wide lock: they happen
 * when modules are created or collected and when someone reads, never per event.
 *
 * When a submodule is garbage-collected, its set is detached with folding: its counters and
 * histograms are added into same-named metrics of the parent set, so totals never go backwards.
 * Gauges describe a live instance and are not folded.
 *
 * Labels. A metric has the label `module` (the top-level module id it sits under, given by the
 * tree) and at most one more, from a fixed list of keys: peer, reason, lock or segment (an ISS
 * segment index, at most one per replica: PBFT's view per segment). Values are chosen by code or
 * by the membership (never per transaction or per client), so the number of series is bounded;
 * a set holds at most MIR_METRICS_PER_SET_MAX metrics.
 *
 * Units. A metric whose name contains "_seconds" is kept in nanoseconds and exported in seconds
 * (so the hot path adds integers); every other value is exported as kept.
 */
#ifndef MIR_METRICS_H
#define MIR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_METRICS_PER_SET_MAX 256
#define MIR_METRIC_NAME_MAX 80
#define MIR_METRIC_LABEL_VALUE_MAX 48
#define MIR_HISTOGRAM_BOUNDS_MAX 16

typedef struct mir_metrics mir_metrics;

typedef enum mir_metric_kind {
  MIR_METRIC_COUNTER = 0,   /* only goes up; summed across instances */
  MIR_METRIC_GAUGE = 1,     /* a level; summed across instances (queue depths, subscribers) */
  MIR_METRIC_GAUGE_MAX = 2, /* a level; the largest across instances (epoch, view, next sn) */
  MIR_METRIC_HISTOGRAM = 3  /* counts per fixed bucket, plus the sum */
} mir_metric_kind;

/* The Prometheus type of a kind: "counter", "gauge" or "histogram" (static string). */
const char *mir_metric_kind_name(mir_metric_kind k);

/* The value cells. Fields are public so that updates inline to one atomic instruction; read them
 * only through the snapshot and read functions below. */
typedef struct mir_counter {
  uint64_t value;
} mir_counter;
typedef struct mir_gauge {
  int64_t value;
} mir_gauge;
typedef struct mir_histogram {
  size_t n_bounds;
  uint64_t bounds[MIR_HISTOGRAM_BOUNDS_MAX];     /* ascending upper bounds, raw unit */
  uint64_t counts[MIR_HISTOGRAM_BOUNDS_MAX + 1]; /* last: above every bound */
  uint64_t sum;
} mir_histogram;

static inline void mir_counter_add(mir_counter *c, uint64_t n) {
  __atomic_fetch_add(&c->value, n, __ATOMIC_RELAXED);
}
static inline void mir_counter_inc(mir_counter *c) {
  __atomic_fetch_add(&c->value, 1, __ATOMIC_RELAXED);
}
/* Adds n and returns the new value (for rate-limited logging of the event counted). */
static inline uint64_t mir_counter_add_fetch(mir_counter *c, uint64_t n) {
  return __atomic_add_fetch(&c->value, n, __ATOMIC_RELAXED);
}
static inline void mir_gauge_set(mir_gauge *g, int64_t v) {
  __atomic_store_n(&g->value, v, __ATOMIC_RELAXED);
}
static inline void mir_gauge_add(mir_gauge *g, int64_t d) {
  __atomic_fetch_add(&g->value, d, __ATOMIC_RELAXED);
}
/* Adds one observation of v (raw unit: nanoseconds for a *_seconds histogram). */
static inline void mir_histogram_observe(mir_histogram *h, uint64_t v) {
  size_t i = 0;
  while (i < h->n_bounds && v > h->bounds[i]) i++;
  __atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
}

/* Creates an empty, detached set. name (copied, up to MIR_MODULE_ID_MAX - 1 bytes) is what the
 * set is called once attached; a set attached directly below a root gives its metrics the module
 * label. Returns owned (free with mir_metrics_free). */
mir_metrics *mir_metrics_new(const char *name);

/* Detaches m (without folding), detaches its children (they become roots of their own) and frees
 * it with its metrics. Pointers returned for its metrics become invalid. NULL is a no-op. */
void mir_metrics_free(mir_metrics *m);

/* Hangs child (borrowed; the caller keeps ownership) below parent. A child already attached
 * elsewhere is moved. Both must stay alive until the child is detached or either is freed. */
void mir_metrics_attach(mir_metrics *parent, mir_metrics *child);

/* Detaches m from its parent. With fold, the counters and histograms of m and its descendants are
 * first added into same-named metrics of the parent (created there if missing), so their totals
 * survive m's destruction. No-op for a detached set. */
void mir_metrics_detach(mir_metrics *m, bool fold);

/* Registration. name (a Prometheus name with the mir_ prefix; copied) and help (borrowed, must be
 * a string that outlives the process's reads, normally a literal). label is NULL or one of
 * "peer", "reason", "lock", "segment" (borrowed literal); value is copied. Registering an existing
 * name and label value in the same set returns the same cell (help and kind of the first
 * registration stay). Never NULL: past MIR_METRICS_PER_SET_MAX metrics, or for a name registered
 * before with another kind, a cell that is updated but never reported is returned and a warning
 * logged. The returned pointer is valid until the set is freed. */
mir_counter *mir_metrics_counter(mir_metrics *m, const char *name, const char *help,
                                 const char *label, const char *value);
mir_gauge *mir_metrics_gauge(mir_metrics *m, const char *name, const char *help, const char *label,
                             const char *value);
mir_gauge *mir_metrics_gauge_max(mir_metrics *m, const char *name, const char *help,
                                 const char *label, const char *value);
/* bounds: n_bounds (1..MIR_HISTOGRAM_BOUNDS_MAX) ascending upper bounds in the raw unit, copied. */
mir_histogram *mir_metrics_histogram(mir_metrics *m, const char *name, const char *help,
                                     const char *label, const char *value, const uint64_t *bounds,
                                     size_t n_bounds);

/* ---- reading ---- */

/* Sum (or largest, for GAUGE_MAX) of the raw values of every metric called name in m and its
 * descendants whose extra label value equals value (NULL: any). Histograms give their count.
 * Returns 0 when nothing matches. Thread-safe. */
int64_t mir_metrics_read(const mir_metrics *m, const char *name, const char *value);

/* As mir_metrics_read, over the sets directly below m named child (a node's root: a module id)
 * and their descendants only. Thread-safe. */
int64_t mir_metrics_read_child(const mir_metrics *m, const char *child, const char *name,
                               const char *value);

/* One series of a snapshot: metrics of one name, module and label value, aggregated. */
typedef struct mir_metric_sample {
  char name[MIR_METRIC_NAME_MAX];
  const char *help; /* borrowed from the registration */
  mir_metric_kind kind;
  char module[64];   /* "" for metrics of the root set */
  const char *label; /* NULL, "peer", "reason", "lock" or "segment" */
  char label_value[MIR_METRIC_LABEL_VALUE_MAX];
  int64_t raw;  /* counter/gauge: raw value; histogram: count */
  double value; /* exported value (seconds for *_seconds names; the sum for a histogram) */
  size_t n_bounds;
  double bounds[MIR_HISTOGRAM_BOUNDS_MAX];           /* exported unit */
  uint64_t cumulative[MIR_HISTOGRAM_BOUNDS_MAX + 1]; /* counts up to each bound, then +Inf */
} mir_metric_sample;

typedef struct mir_metrics_snapshot {
  size_t n;
  mir_metric_sample *samples; /* sorted by name, module, label value */
} mir_metrics_snapshot;

/* Reads every metric below root into out, aggregating instances per (name, module, label value).
 * The module label is the name of the set directly below root that a metric sits under. out is
 * owned by the caller (release with mir_metrics_snapshot_fini). Thread-safe. */
void mir_metrics_snapshot_take(const mir_metrics *root, mir_metrics_snapshot *out);
void mir_metrics_snapshot_fini(mir_metrics_snapshot *snap);

/* The sample of name, module and label value (NULL module or value: the first of that name);
 * NULL if none. Borrowed from snap. */
const mir_metric_sample *mir_metrics_snapshot_find(const mir_metrics_snapshot *snap,
                                                   const char *name, const char *module,
                                                   const char *value);

/* Appends snap in the Prometheus text exposition format (version 0.0.4) to *buf (a malloc'd
 * string of *len bytes, NUL-terminated; NULL and 0 to start one). *buf is owned by the caller. */
void mir_metrics_snapshot_prometheus(const mir_metrics_snapshot *snap, char **buf, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
