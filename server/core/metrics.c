/*
 * The metrics registry (metrics.h): sets of metric cells in a tree, folding on detach, snapshots
 * and the Prometheus text format.
 *
 * One process-wide mutex guards the tree's shape and every set's metric array. Cells are updated
 * without it (relaxed atomics) and read with atomic loads, so a reader sees each cell's value at
 * some instant during its read; a histogram's buckets and sum may be a few observations apart,
 * which Prometheus tolerates. The lock is taken when modules are created or collected and when
 * someone reads, never on the hot path.
 */
#include "mir/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"

typedef struct metric {
  char name[MIR_METRIC_NAME_MAX];
  const char *help;
  mir_metric_kind kind;
  const char *label;
  char value[MIR_METRIC_LABEL_VALUE_MAX];
  union {
    mir_counter c;
    mir_gauge g;
    mir_histogram h;
  } cell;
} metric;

struct mir_metrics {
  char name[64];
  mir_metrics *parent, *children, *next, *prev; /* siblings: doubly linked */
  metric **metrics;
  size_t n, cap;
  metric sink; /* returned past the bound or on a kind clash; never reported */
  bool sink_warned;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

mir_metrics *mir_metrics_new(const char *name) {
  mir_metrics *m = mir_xcalloc(1, sizeof *m);
  snprintf(m->name, sizeof m->name, "%s", name ? name : "");
  return m;
}

/* Unlinks m from its parent. Caller holds metrics_lock. */
static void metrics_unlink_locked(mir_metrics *m) {
  if (m->parent == NULL) return;
  if (m->prev) {
    m->prev->next = m->next;
  } else {
    m->parent->children = m->next;
  }
  if (m->next) m->next->prev = m->prev;
  m->parent = m->next = m->prev = NULL;
}

void mir_metrics_free(mir_metrics *m) {
  if (m == NULL) return;
  pthread_mutex_lock(&metrics_lock);
  metrics_unlink_locked(m);
  while (m->children) metrics_unlink_locked(m->children);
  pthread_mutex_unlock(&metrics_lock);
  for (size_t i = 0; i < m->n; i++) free(m->metrics[i]);
  free(m->metrics);
  free(m);
}

void mir_metrics_attach(mir_metrics *parent, mir_metrics *child) {
  MIR_ASSERT(parent != child);
  pthread_mutex_lock(&metrics_lock);
  metrics_unlink_locked(child);
  child->parent = parent;
  child->next = parent->children;
  if (parent->children) parent->children->prev = child;
  parent->children = child;
  pthread_mutex_unlock(&metrics_lock);
}

/* ---- registration ---- */

static bool metrics_label_ok(const char *label) {
  return label == NULL || strcmp(label, "peer") == 0 || strcmp(label, "reason") == 0 ||
         strcmp(label, "lock") == 0 || strcmp(label, "segment") == 0;
}

static metric *metrics_find_locked(const mir_metrics *m, const char *name, const char *value) {
  for (size_t i = 0; i < m->n; i++) {
    metric *x = m->metrics[i];
    if (strcmp(x->name, name) == 0 && strcmp(x->value, value ? value : "") == 0) return x;
  }
  return NULL;
}

static metric *metrics_sink_locked(mir_metrics *m, const char *name, const char *why) {
  if (!m->sink_warned) {
    m->sink_warned = true;
    mir_log(MIR_LOG_WARN, "metrics", "metric %.80s in set '%s' not reported: %s", name, m->name,
            why);
  }
  return &m->sink;
}

/* Finds or creates the metric; caller holds metrics_lock. */
static metric *metrics_get_locked(mir_metrics *m, const char *name, const char *help,
                                  mir_metric_kind kind, const char *label, const char *value) {
  MIR_ASSERT(name != NULL && strlen(name) < MIR_METRIC_NAME_MAX && metrics_label_ok(label));
  metric *x = metrics_find_locked(m, name, value);
  if (x != NULL) {
    return x->kind == kind ? x : metrics_sink_locked(m, name, "registered with another kind");
  }
  if (m->n == MIR_METRICS_PER_SET_MAX) return metrics_sink_locked(m, name, "set is full");
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 16;
    m->metrics = mir_xrealloc(m->metrics, m->cap * sizeof *m->metrics);
  }
  x = mir_xcalloc(1, sizeof *x);
  snprintf(x->name, sizeof x->name, "%s", name);
  x->help = help ? help : "";
  x->kind = kind;
  x->label = label;
  snprintf(x->value, sizeof x->value, "%s", (label && value) ? value : "");
  m->metrics[m->n++] = x;
  return x;
}

static metric *metrics_register(mir_metrics *m, const char *name, const char *help,
                                mir_metric_kind kind, const char *label, const char *value) {
  pthread_mutex_lock(&metrics_lock);
  metric *x = metrics_get_locked(m, name, help, kind, label, value);
  pthread_mutex_unlock(&metrics_lock);
  return x;
}

mir_counter *mir_metrics_counter(mir_metrics *m, const char *name, const char *help,
                                 const char *label, const char *value) {
  return &metrics_register(m, name, help, MIR_METRIC_COUNTER, label, value)->cell.c;
}

mir_gauge *mir_metrics_gauge(mir_metrics *m, const char *name, const char *help, const char *label,
                             const char *value) {
  return &metrics_register(m, name, help, MIR_METRIC_GAUGE, label, value)->cell.g;
}

mir_gauge *mir_metrics_gauge_max(mir_metrics *m, const char *name, const char *help,
                                 const char *label, const char *value) {
  return &metrics_register(m, name, help, MIR_METRIC_GAUGE_MAX, label, value)->cell.g;
}

mir_histogram *mir_metrics_histogram(mir_metrics *m, const char *name, const char *help,
                                     const char *label, const char *value, const uint64_t *bounds,
                                     size_t n_bounds) {
  MIR_ASSERT(n_bounds >= 1 && n_bounds <= MIR_HISTOGRAM_BOUNDS_MAX);
  for (size_t i = 1; i < n_bounds; i++) MIR_ASSERT(bounds[i - 1] < bounds[i]);
  pthread_mutex_lock(&metrics_lock);
  metric *x = metrics_get_locked(m, name, help, MIR_METRIC_HISTOGRAM, label, value);
  if (x != &m->sink && x->cell.h.n_bounds == 0) {
    x->cell.h.n_bounds = n_bounds;
    memcpy(x->cell.h.bounds, bounds, n_bounds * sizeof *bounds);
  }
  pthread_mutex_unlock(&metrics_lock);
  return &x->cell.h;
}

/* ---- folding ---- */

static uint64_t load_u64(const uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Adds the counters and histograms of src and its descendants into dst. Caller holds the lock. */
static void metrics_fold_locked(mir_metrics *dst, const mir_metrics *src) {
  for (size_t i = 0; i < src->n; i++) {
    const metric *x = src->metrics[i];
    if (x->kind != MIR_METRIC_COUNTER && x->kind != MIR_METRIC_HISTOGRAM) continue;
    metric *y = metrics_get_locked(dst, x->name, x->help, x->kind, x->label, x->value);
    if (y == &dst->sink) continue;
    if (x->kind == MIR_METRIC_COUNTER) {
      mir_counter_add(&y->cell.c, load_u64(&x->cell.c.value));
      continue;
    }
    if (y->cell.h.n_bounds == 0) {
      y->cell.h.n_bounds = x->cell.h.n_bounds;
      memcpy(y->cell.h.bounds, x->cell.h.bounds, sizeof y->cell.h.bounds);
    }
    if (y->cell.h.n_bounds != x->cell.h.n_bounds) continue; /* same name, other buckets: a bug */
    for (size_t b = 0; b <= x->cell.h.n_bounds; b++) {
      __atomic_fetch_add(&y->cell.h.counts[b], load_u64(&x->cell.h.counts[b]), __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&y->cell.h.sum, load_u64(&x->cell.h.sum), __ATOMIC_RELAXED);
  }
  for (const mir_metrics *c = src->children; c != NULL; c = c->next) metrics_fold_locked(dst, c);
}

void mir_metrics_detach(mir_metrics *m, bool fold) {
  pthread_mutex_lock(&metrics_lock);
  if (m->parent != NULL) {
    if (fold) metrics_fold_locked(m->parent, m);
    metrics_unlink_locked(m);
  }
  pthread_mutex_unlock(&metrics_lock);
}

/* ---- reading ---- */

static uint64_t hist_count(const mir_histogram *h) {
  uint64_t n = 0;
  for (size_t b = 0; b <= h->n_bounds; b++) n += load_u64(&h->counts[b]);
  return n;
}

static int64_t metric_raw(const metric *x) {
  switch (x->kind) {
    case MIR_METRIC_COUNTER:
      return (int64_t)load_u64(&x->cell.c.value);
    case MIR_METRIC_GAUGE:
    case MIR_METRIC_GAUGE_MAX:
      return __atomic_load_n(&x->cell.g.value, __ATOMIC_RELAXED);
    case MIR_METRIC_HISTOGRAM:
      return (int64_t)hist_count(&x->cell.h);
  }
  return 0;
}

static void metrics_read_locked(const mir_metrics *m, const char *name, const char *value,
                                bool *found, int64_t *acc) {
  for (size_t i = 0; i < m->n; i++) {
    const metric *x = m->metrics[i];
    if (strcmp(x->name, name) != 0 || (value != NULL && strcmp(x->value, value) != 0)) continue;
    int64_t v = metric_raw(x);
    if (x->kind == MIR_METRIC_GAUGE_MAX) {
      if (!*found || v > *acc) *acc = v;
    } else {
      *acc += v;
    }
    *found = true;
  }
  for (const mir_metrics *c = m->children; c != NULL; c = c->next) {
    metrics_read_locked(c, name, value, found, acc);
  }
}

int64_t mir_metrics_read(const mir_metrics *m, const char *name, const char *value) {
  bool found = false;
  int64_t acc = 0;
  pthread_mutex_lock(&metrics_lock);
  metrics_read_locked(m, name, value, &found, &acc);
  pthread_mutex_unlock(&metrics_lock);
  return acc;
}

int64_t mir_metrics_read_child(const mir_metrics *m, const char *child, const char *name,
                               const char *value) {
  bool found = false;
  int64_t acc = 0;
  pthread_mutex_lock(&metrics_lock);
  for (const mir_metrics *c = m->children; c != NULL; c = c->next) {
    if (strcmp(c->name, child) == 0) metrics_read_locked(c, name, value, &found, &acc);
  }
  pthread_mutex_unlock(&metrics_lock);
  return acc;
}

/* ---- snapshots ---- */

typedef struct snap_builder {
  mir_metric_sample *v;
  size_t n, cap;
} snap_builder;

static bool is_seconds(const char *name) {
  return strstr(name, "_seconds") != NULL;
}

static void snap_add(snap_builder *b, const metric *x, const char *module) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 64;
    b->v = mir_xrealloc(b->v, b->cap * sizeof *b->v);
  }
  mir_metric_sample *s = &b->v[b->n++];
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", x->name);
  s->help = x->help;
  s->kind = x->kind;
  snprintf(s->module, sizeof s->module, "%s", module);
  s->label = x->label;
  snprintf(s->label_value, sizeof s->label_value, "%s", x->value);
  s->raw = metric_raw(x);
  if (x->kind == MIR_METRIC_HISTOGRAM) {
    s->n_bounds = x->cell.h.n_bounds;
    for (size_t i = 0; i <= s->n_bounds; i++) {
      s->cumulative[i] = load_u64(&x->cell.h.counts[i]);
      if (i < s->n_bounds) s->bounds[i] = (double)x->cell.h.bounds[i];
    }
    s->value = (double)load_u64(&x->cell.h.sum);
  } else {
    s->value = (double)s->raw;
  }
}

static void snap_walk_locked(snap_builder *b, const mir_metrics *m, const char *module) {
  for (size_t i = 0; i < m->n; i++) snap_add(b, m->metrics[i], module);
  for (const mir_metrics *c = m->children; c != NULL; c = c->next) {
    snap_walk_locked(b, c, module[0] ? module : c->name);
  }
}

static int sample_cmp(const void *a, const void *b) {
  const mir_metric_sample *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c == 0) c = strcmp(x->module, y->module);
  if (c == 0) c = strcmp(x->label_value, y->label_value);
  return c;
}

/* Merges sample y into x (same name, module and label value). */
static void sample_merge(mir_metric_sample *x, const mir_metric_sample *y) {
  if (x->kind != y->kind) return;
  if (x->kind == MIR_METRIC_GAUGE_MAX) {
    if (y->raw > x->raw) x->raw = y->raw, x->value = y->value;
    return;
  }
  x->raw += y->raw;
  x->value += y->value;
  if (x->kind == MIR_METRIC_HISTOGRAM && x->n_bounds == y->n_bounds) {
    for (size_t i = 0; i <= x->n_bounds; i++) x->cumulative[i] += y->cumulative[i];
  }
}

/* Turns per-bucket counts into cumulative ones and raw units into exported ones. */
static void sample_finish(mir_metric_sample *s) {
  double scale = is_seconds(s->name) ? 1e-9 : 1.0;
  s->value *= scale;
  if (s->kind != MIR_METRIC_HISTOGRAM) return;
  for (size_t i = 0; i < s->n_bounds; i++) s->bounds[i] *= scale;
  for (size_t i = 1; i <= s->n_bounds; i++) s->cumulative[i] += s->cumulative[i - 1];
}

void mir_metrics_snapshot_take(const mir_metrics *root, mir_metrics_snapshot *out) {
  snap_builder b = {NULL, 0, 0};
  pthread_mutex_lock(&metrics_lock);
  snap_walk_locked(&b, root, "");
  pthread_mutex_unlock(&metrics_lock);
  if (b.n > 0) qsort(b.v, b.n, sizeof *b.v, sample_cmp);
  size_t w = 0;
  for (size_t r = 0; r < b.n; r++) {
    if (w > 0 && sample_cmp(&b.v[w - 1], &b.v[r]) == 0) {
      sample_merge(&b.v[w - 1], &b.v[r]);
    } else {
      if (w != r) b.v[w] = b.v[r];
      w++;
    }
  }
  for (size_t i = 0; i < w; i++) sample_finish(&b.v[i]);
  out->n = w;
  out->samples = b.v;
}

void mir_metrics_snapshot_fini(mir_metrics_snapshot *snap) {
  free(snap->samples);
  snap->samples = NULL;
  snap->n = 0;
}

const mir_metric_sample *mir_metrics_snapshot_find(const mir_metrics_snapshot *snap,
                                                   const char *name, const char *module,
                                                   const char *value) {
  for (size_t i = 0; i < snap->n; i++) {
    const mir_metric_sample *s = &snap->samples[i];
    if (strcmp(s->name, name) != 0) continue;
    if (module != NULL && strcmp(s->module, module) != 0) continue;
    if (value != NULL && strcmp(s->label_value, value) != 0) continue;
    return s;
  }
  return NULL;
}

/* ---- Prometheus text format ---- */

typedef struct text_buf {
  char **buf;
  size_t *len;
  size_t cap;
} text_buf;

static void tb_printf(text_buf *t, const char *fmt, ...) {
  for (;;) {
    size_t room = t->cap - *t->len;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*t->buf + *t->len, room, fmt, ap);
    va_end(ap);
    MIR_ASSERT(k >= 0);
    if ((size_t)k < room) {
      *t->len += (size_t)k;
      return;
    }
    t->cap = 2 * t->cap + (size_t)k + 1;
    *t->buf = mir_xrealloc(*t->buf, t->cap);
  }
}

/* Label values come from code and membership ids; escape what the format requires anyway. */
static void tb_label_value(text_buf *t, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') {
      tb_printf(t, "\\%c", *v);
    } else if (*v == '\n') {
      tb_printf(t, "\\n");
    } else {
      tb_printf(t, "%c", *v);
    }
  }
}

/* Writes {module="..",label=".."[,le=".."]} (or nothing when there is no label). */
static void tb_labels(text_buf *t, const mir_metric_sample *s, const char *le) {
  bool any = false;
  const char *keys[3] = {s->module[0] ? "module" : NULL, s->label, le ? "le" : NULL};
  const char *vals[3] = {s->module, s->label_value, le};
  for (int i = 0; i < 3; i++) {
    if (keys[i] == NULL) continue;
    tb_printf(t, "%s%s=\"", any ? "," : "{", keys[i]);
    tb_label_value(t, vals[i]);
    tb_printf(t, "\"");
    any = true;
  }
  if (any) tb_printf(t, "}");
}

const char *mir_metric_kind_name(mir_metric_kind k) {
  switch (k) {
    case MIR_METRIC_COUNTER:
      return "counter";
    case MIR_METRIC_HISTOGRAM:
      return "histogram";
    default:
      return "gauge";
  }
}

static void tb_sample(text_buf *t, const mir_metric_sample *s) {
  if (s->kind != MIR_METRIC_HISTOGRAM) {
    tb_printf(t, "%s", s->name);
    tb_labels(t, s, NULL);
    tb_printf(t, " %.17g\n", s->value);
    return;
  }
  for (size_t i = 0; i <= s->n_bounds; i++) {
    char le[40];
    if (i < s->n_bounds) {
      snprintf(le, sizeof le, "%.17g", s->bounds[i]);
    } else {
      snprintf(le, sizeof le, "+Inf");
    }
    tb_printf(t, "%s_bucket", s->name);
    tb_labels(t, s, le);
    tb_printf(t, " %llu\n", (unsigned long long)s->cumulative[i]);
  }
  tb_printf(t, "%s_sum", s->name);
  tb_labels(t, s, NULL);
  tb_printf(t, " %.17g\n%s_count", s->value, s->name);
  tb_labels(t, s, NULL);
  tb_printf(t, " %llu\n", (unsigned long long)s->raw);
}

void mir_metrics_snapshot_prometheus(const mir_metrics_snapshot *snap, char **buf, size_t *len) {
  text_buf t = {buf, len, *buf ? *len + 1 : 0};
  if (*buf == NULL) {
    t.cap = 4096;
    *buf = mir_xmalloc(t.cap);
    *len = 0;
  }
  (*buf)[*len] = '\0';
  for (size_t i = 0; i < snap->n; i++) {
    const mir_metric_sample *s = &snap->samples[i];
    if (i == 0 || strcmp(snap->samples[i - 1].name, s->name) != 0) {
      tb_printf(&t, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                mir_metric_kind_name(s->kind));
    }
    tb_sample(&t, s);
  }
}
