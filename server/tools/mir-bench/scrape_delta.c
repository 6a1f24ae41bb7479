/*
 * A replica's numbers before and after a mir-bench run (scrape.h): /metrics for the process's
 * CPU time, the modules' busy time, lock waits and delivered transactions; /debug/stats for the
 * CPU time of each thread (by thread id, so that two threads of one name stay apart).
 *
 * The names read are those the replica exports today: mir_process_cpu_seconds_total
 * (replica/http.c), mir_module_busy_seconds_total{module} (core/node.c),
 * mir_lock_wait_seconds_total{lock} and mir_lock_contended_total{lock} (core/lock.c) and
 * mir_delivered_transactions_total (replica/ordered_log.c). Only the first is required; the
 * lists are empty when a series is absent.
 *
 * Counters only grow while a process lives, so one that went backwards means the replica
 * restarted between the two reads; its differences would be meaningless, and the replica is
 * reported as such instead.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scrape.h"

#define DELTA_ROWS_MAX 1024 /* distinct modules or locks considered per replica */

static double scrape_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- reading ---- */

int scrape_parse_threads(const char *json, size_t len, scrape_snapshot *out, char *err,
                         size_t errcap) {
  json_error_t je;
  json_t *root = json_loadb(json, len, 0, &je);
  json_t *threads = root != NULL ? json_object_get(root, "threads") : NULL;
  int rc = -1;
  if (root == NULL) {
    snprintf(err, errcap, "not JSON (line %d: %s)", je.line, je.text);
  } else if (!json_is_array(threads)) {
    snprintf(err, errcap, "no \"threads\" array");
  } else if (json_array_size(threads) > SCRAPE_THREADS_MAX) {
    snprintf(err, errcap, "more than %d threads", SCRAPE_THREADS_MAX);
  } else {
    size_t n = json_array_size(threads);
    out->threads = calloc(n ? n : 1, sizeof(*out->threads));
    rc = out->threads != NULL ? 0 : -1;
    if (rc != 0) snprintf(err, errcap, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
      json_t *t = json_array_get(threads, i);
      json_t *tid = json_object_get(t, "tid"), *name = json_object_get(t, "name");
      json_t *cpu = json_object_get(t, "cpu_seconds");
      if (!json_is_integer(tid) || !json_is_string(name) || !json_is_number(cpu)) {
        snprintf(err, errcap, "thread %zu: expected tid, name and cpu_seconds", i);
        rc = -1;
        break;
      }
      scrape_thread *st = &out->threads[out->n_threads++];
      st->tid = json_integer_value(tid);
      snprintf(st->name, sizeof st->name, "%s", json_string_value(name));
      st->cpu_s = json_number_value(cpu);
    }
  }
  json_decref(root);
  return rc;
}

/* GETs path and hands the body to the caller (owned), with a URL-named error otherwise. */
static int scrape_fetch(const scrape_url *u, const char *path, int timeout_ms, char **body,
                        size_t *len, char *err, size_t errcap) {
  return scrape_get(u, path, timeout_ms, SCRAPE_BODY_BYTES_MAX, body, len, err, errcap);
}

/* Writes "http://host:port/prefix/path: " into err and returns how many bytes it took. */
static size_t scrape_url_prefix(const scrape_url *u, const char *path, char *err, size_t errcap) {
  bool v6 = strchr(u->host, ':') != NULL;
  int k = snprintf(err, errcap, "http://%s%s%s:%s%s%s: ", v6 ? "[" : "", u->host, v6 ? "]" : "",
                   u->port, u->prefix, path);
  return k < 0 ? 0 : ((size_t)k < errcap ? (size_t)k : errcap - 1);
}

int scrape_read(const scrape_url *u, int timeout_ms, scrape_snapshot *out, char *err,
                size_t errcap) {
  memset(out, 0, sizeof *out);
  char *body = NULL;
  size_t len = 0;
  out->at_s = scrape_now_s();
  if (scrape_fetch(u, "/metrics", timeout_ms, &body, &len, err, errcap) != 0) return -1;
  size_t k = scrape_url_prefix(u, "/metrics", err, errcap);
  int rc = prom_parse(body, len, &out->page, err + k, errcap - k);
  free(body);
  if (rc != 0) return -1;
  if (scrape_fetch(u, "/debug/stats", timeout_ms, &body, &len, err, errcap) != 0) return -1;
  k = scrape_url_prefix(u, "/debug/stats", err, errcap);
  rc = scrape_parse_threads(body, len, out, err + k, errcap - k);
  free(body);
  if (rc == 0) err[0] = '\0';
  return rc;
}

void scrape_snapshot_fini(scrape_snapshot *s) {
  prom_page_fini(&s->page);
  free(s->threads);
  s->threads = NULL;
  s->n_threads = 0;
}

/* ---- differences ---- */

/* Rows keyed by a label value, summed over the samples that carry it. */
typedef struct delta_rows {
  scrape_top rows[DELTA_ROWS_MAX];
  size_t n;
} delta_rows;

/* Adds sign * value to the row named key (created if new; keys beyond the bound are dropped:
 * a replica has tens of modules and locks, not a thousand). */
static void delta_add(delta_rows *r, const char *key, double seconds, double count) {
  size_t i = 0;
  while (i < r->n && strcmp(r->rows[i].name, key) != 0) i++;
  if (i == r->n) {
    if (r->n == DELTA_ROWS_MAX) return;
    memset(&r->rows[r->n], 0, sizeof r->rows[0]);
    snprintf(r->rows[r->n].name, sizeof r->rows[0].name, "%s", key);
    r->n++;
  }
  r->rows[i].seconds += seconds;
  r->rows[i].count += count;
}

/* Adds sign times every sample of name (with label key) of p to its row in r. */
static void delta_collect(delta_rows *r, const prom_page *p, const char *name, const char *key,
                          double sign, bool is_count) {
  for (size_t i = 0; i < p->n; i++) {
    const prom_sample *s = &p->samples[i];
    const char *v = strcmp(s->name, name) == 0 ? prom_label(s, key) : NULL;
    if (v == NULL || !isfinite(s->value)) continue;
    delta_add(r, v, is_count ? 0 : sign * s->value, is_count ? sign * s->value : 0);
  }
}

/* Copies the rows of r that grew, largest seconds first, at most SCRAPE_TOP_N. Returns how many;
 * -1 if one went backwards by more than rounding (a restart). */
static int delta_top(delta_rows *r, scrape_top *top) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->rows[i].seconds < -0.011 || r->rows[i].count < -0.5) return -1;
  }
  while (n < SCRAPE_TOP_N) {
    size_t best = r->n;
    for (size_t i = 0; i < r->n; i++) {
      if (r->rows[i].seconds > 0 && (best == r->n || r->rows[i].seconds > r->rows[best].seconds)) {
        best = i;
      }
    }
    if (best == r->n) break;
    top[n++] = r->rows[best];
    r->rows[best].seconds = 0; /* taken */
  }
  return (int)n;
}

/* The busiest threads: CPU time grown per thread id (a thread new since the first read counts
 * from zero; one that ended in between is not seen). */
static size_t delta_threads(const scrape_snapshot *before, const scrape_snapshot *after,
                            delta_rows *r) {
  r->n = 0;
  for (size_t i = 0; i < after->n_threads && r->n < DELTA_ROWS_MAX; i++) {
    const scrape_thread *t = &after->threads[i];
    double was = 0;
    for (size_t j = 0; j < before->n_threads; j++) {
      if (before->threads[j].tid == t->tid) was = before->threads[j].cpu_s;
    }
    scrape_top *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", t->name);
    row->tid = t->tid;
    row->seconds = t->cpu_s - was > 0 ? t->cpu_s - was : 0;
  }
  return r->n;
}

/* Busy modules and waited-for locks, after minus before, into out. 0 or -1 (a restart). */
static int delta_lists(const scrape_snapshot *before, const scrape_snapshot *after,
                       scrape_delta *out) {
  delta_rows *r = malloc(sizeof *r);
  if (r == NULL) return -1;
  r->n = 0;
  delta_collect(r, &after->page, "mir_module_busy_seconds_total", "module", 1, false);
  delta_collect(r, &before->page, "mir_module_busy_seconds_total", "module", -1, false);
  int n = delta_top(r, out->modules);
  out->n_modules = n > 0 ? (size_t)n : 0;
  int rc = n < 0 ? -1 : 0;
  r->n = 0;
  delta_collect(r, &after->page, "mir_lock_wait_seconds_total", "lock", 1, false);
  delta_collect(r, &before->page, "mir_lock_wait_seconds_total", "lock", -1, false);
  delta_collect(r, &after->page, "mir_lock_contended_total", "lock", 1, true);
  delta_collect(r, &before->page, "mir_lock_contended_total", "lock", -1, true);
  n = delta_top(r, out->locks);
  out->n_locks = n > 0 ? (size_t)n : 0;
  if (n < 0) rc = -1;
  delta_threads(before, after, r);
  n = delta_top(r, out->threads);
  out->n_threads = n > 0 ? (size_t)n : 0;
  free(r);
  return rc;
}

int scrape_delta_compute(const scrape_snapshot *before, const scrape_snapshot *after,
                         uint64_t committed, scrape_delta *out, char *err, size_t errcap) {
  memset(out, 0, sizeof *out);
  double cpu0 = 0, cpu1 = 0, tx0 = 0, tx1 = 0;
  if (prom_sum(&before->page, "mir_process_cpu_seconds_total", NULL, NULL, &cpu0) != 1 ||
      prom_sum(&after->page, "mir_process_cpu_seconds_total", NULL, NULL, &cpu1) != 1) {
    snprintf(err, errcap, "no single mir_process_cpu_seconds_total sample in /metrics");
    return -1;
  }
  out->interval_s = after->at_s - before->at_s;
  out->cpu_s = cpu1 - cpu0;
  out->committed = committed;
  out->cpu_s_per_tx = committed > 0 ? out->cpu_s / (double)committed : NAN;
  bool has_tx = prom_sum(&before->page, "mir_delivered_transactions_total", NULL, NULL, &tx0) > 0 &&
                prom_sum(&after->page, "mir_delivered_transactions_total", NULL, NULL, &tx1) > 0;
  out->delivered = has_tx ? tx1 - tx0 : -1;
  if (!isfinite(out->cpu_s) || out->cpu_s < 0 || (has_tx && out->delivered < 0) ||
      delta_lists(before, after, out) != 0) {
    snprintf(err, errcap,
             "a counter went backwards between the reads (did the replica restart during the "
             "run?)");
    return -1;
  }
  return 0;
}
