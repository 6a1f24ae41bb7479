/*
 * mir-bench's report: the summary on stdout and the JSON file. Throughput counts the commits
 * that happened during the measured window, divided by its length; latency quantiles cover the
 * transactions scheduled inside the window that were committed. With --metrics, one paragraph
 * per replica follows (metrics.c), and the JSON report carries the same as replica_metrics.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void bench_print_summary(const bench *b, double elapsed_s) {
  unsigned long submitted = atomic_load(&b->submitted), committed = atomic_load(&b->committed);
  unsigned long rejected = atomic_load(&b->rejected), refused = atomic_load(&b->refused);
  unsigned long stopped = atomic_load(&b->stopped);
  double tput = (double)atomic_load(&b->committed_in_window) / elapsed_s;
  const hist *h = &b->lat;
  unsigned long n = atomic_load(&h->n);
  printf(
      "\nsubmitted %lu, committed %lu, rejected %lu, refused (window full) %lu, "
      "not committed at the end %lu\n",
      submitted, committed, rejected, refused, stopped);
  printf("throughput: %.1f tx/s committed during the %.1f s measured\n", tput, elapsed_s);
  if (n > 0) {
    printf(
        "latency submit->commit over %lu transactions: p50 %.2f ms, p90 %.2f ms, "
        "p99 %.2f ms, max %.2f ms, mean %.2f ms\n",
        n, hist_quantile_us(h, 0.5) / 1e3, hist_quantile_us(h, 0.9) / 1e3,
        hist_quantile_us(h, 0.99) / 1e3, hist_quantile_us(h, 1.0) / 1e3,
        (double)atomic_load(&h->sum_us) / (double)n / 1e3);
  } else {
    printf("latency: no transaction of the measured window was committed\n");
  }
  printf(
      "sdk: %llu requests, %llu resent, %llu refused by busy replicas, %llu backoffs, "
      "%llu reconnects, %llu fail-overs, %llu bad messages, %llu conflicting votes; "
      "client lock %.3f s waited over %llu contended acquisitions\n",
      (unsigned long long)b->sdk.requests_sent, (unsigned long long)b->sdk.resent,
      (unsigned long long)b->sdk.refused, (unsigned long long)b->sdk.backoffs,
      (unsigned long long)b->sdk.reconnects, (unsigned long long)b->sdk.failovers,
      (unsigned long long)b->sdk.bad_messages, (unsigned long long)b->sdk.conflicting_votes,
      (double)b->sdk.lock_wait_ns / 1e9, (unsigned long long)b->sdk.lock_contended);
}

/* Prints one top list ("  busiest modules: a 1.2 s, b 0.3 s") or says there was none. */
static void report_top(const char *what, const scrape_top *t, size_t n, const char *none) {
  printf("  %s:", what);
  for (size_t i = 0; i < n; i++) {
    printf("%s %s", i ? "," : "", t[i].name);
    if (t[i].tid != 0) printf(" (tid %lld)", (long long)t[i].tid);
    printf(" %.3f s", t[i].seconds);
    if (t[i].count > 0) printf(" over %.0f waits", t[i].count);
  }
  printf("%s\n", n == 0 ? none : "");
}

void bench_print_metrics(const bench *b) {
  if (b->o.n_metrics == 0 || b->rm == NULL) return;
  printf("\nreplicas, from their /metrics and /debug/stats before and after the run:\n");
  for (size_t i = 0; i < b->o.n_metrics; i++) {
    const bench_replica *r = &b->rm[i];
    if (!r->ok) {
      printf("replica %s: not read: %s\n", r->text, r->err);
      continue;
    }
    const scrape_delta *d = &r->d;
    printf("replica %s: %.2f s CPU in %.1f s, ", r->text, d->cpu_s, d->interval_s);
    if (isfinite(d->cpu_s_per_tx)) {
      printf("%.1f us CPU per committed transaction", d->cpu_s_per_tx * 1e6);
    } else {
      printf("no transaction committed");
    }
    printf(" (%llu committed", (unsigned long long)d->committed);
    if (d->delivered >= 0) printf(", %.0f delivered by the replica", d->delivered);
    printf(")\n");
    report_top("busiest modules (busy CPU)", d->modules, d->n_modules, " none busy");
    report_top("busiest threads (CPU)", d->threads, d->n_threads, " none used CPU");
    report_top("most contended locks (time waited)", d->locks, d->n_locks, " none contended");
  }
}

/* A JSON number, or null where there is none (jansson refuses NaN). */
static json_t *report_real(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

static json_t *report_top_json(const scrape_top *t, size_t n, const char *key, const char *unit) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object();
    json_object_set_new(o, key, json_string(t[i].name));
    if (t[i].tid != 0) json_object_set_new(o, "tid", json_integer((json_int_t)t[i].tid));
    json_object_set_new(o, unit, json_real(t[i].seconds));
    if (strcmp(key, "lock") == 0) {
      json_object_set_new(o, "contended", json_integer((json_int_t)llround(t[i].count)));
    }
    json_array_append_new(a, o);
  }
  return a;
}

/* One replica of --metrics as a JSON object (returns owned). */
static json_t *report_replica_json(const bench_replica *r) {
  json_t *o = json_object();
  json_object_set_new(o, "url", json_string(r->text));
  json_object_set_new(o, "ok", json_boolean(r->ok));
  if (!r->ok) {
    json_object_set_new(o, "error", json_string(r->err));
    return o;
  }
  const scrape_delta *d = &r->d;
  json_object_set_new(o, "interval_s", json_real(d->interval_s));
  json_object_set_new(o, "cpu_seconds", json_real(d->cpu_s));
  json_object_set_new(o, "committed", json_integer((json_int_t)d->committed));
  json_object_set_new(
      o, "delivered",
      d->delivered >= 0 ? json_integer((json_int_t)llround(d->delivered)) : json_null());
  json_object_set_new(o, "cpu_seconds_per_tx", report_real(d->cpu_s_per_tx));
  json_object_set_new(o, "modules",
                      report_top_json(d->modules, d->n_modules, "module", "busy_seconds"));
  json_object_set_new(o, "threads",
                      report_top_json(d->threads, d->n_threads, "thread", "cpu_seconds"));
  json_object_set_new(o, "locks", report_top_json(d->locks, d->n_locks, "lock", "wait_seconds"));
  return o;
}

/* Writes "  \"replica_metrics\": [...],\n", one replica per line. */
static void report_metrics_json(const bench *b, FILE *f) {
  fprintf(f, "  \"replica_metrics\": [");
  for (size_t i = 0; b->rm != NULL && i < b->o.n_metrics; i++) {
    json_t *o = report_replica_json(&b->rm[i]);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    fprintf(f, "%s\n    %s", i ? "," : "", text != NULL ? text : "null");
    free(text);
    json_decref(o);
  }
  fprintf(f, "\n  ],\n");
}

int bench_write_json(const bench *b, const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  const hist *h = &b->lat;
  unsigned long n = atomic_load(&h->n);
  fprintf(f, "{\n  \"replicas\": %zu,\n  \"clients\": %u,\n  \"rate\": %.3f,\n  \"size\": %u,\n",
          b->o.n_replicas, b->o.clients, b->o.rate, b->o.size);
  fprintf(f, "  \"duration_s\": %.3f,\n  \"warmup_s\": %.3f,\n  \"trust\": \"%s\",\n",
          b->o.duration_s, b->o.warmup_s, b->o.trust_one ? "one" : "quorum");
  fprintf(f, "  \"submitted\": %lu,\n  \"committed\": %lu,\n  \"rejected\": %lu,\n",
          (unsigned long)atomic_load(&b->submitted), (unsigned long)atomic_load(&b->committed),
          (unsigned long)atomic_load(&b->rejected));
  fprintf(f, "  \"refused\": %lu,\n  \"not_committed\": %lu,\n",
          (unsigned long)atomic_load(&b->refused), (unsigned long)atomic_load(&b->stopped));
  fprintf(f,
          "  \"sdk\": {\"requests\": %llu, \"resent\": %llu, \"refused_busy\": %llu, "
          "\"backoffs\": %llu, \"reconnects\": %llu, \"failovers\": %llu, "
          "\"lock_contended\": %llu, \"lock_wait_seconds\": %.6f},\n",
          (unsigned long long)b->sdk.requests_sent, (unsigned long long)b->sdk.resent,
          (unsigned long long)b->sdk.refused, (unsigned long long)b->sdk.backoffs,
          (unsigned long long)b->sdk.reconnects, (unsigned long long)b->sdk.failovers,
          (unsigned long long)b->sdk.lock_contended, (double)b->sdk.lock_wait_ns / 1e9);
  fprintf(f, "  \"throughput_tx_s\": %.3f,\n",
          (double)atomic_load(&b->committed_in_window) / b->o.duration_s);
  fprintf(f,
          "  \"latency_ms\": {\"count\": %lu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
          "\"max\": %.3f, \"mean\": %.3f},\n",
          n, hist_quantile_us(h, 0.5) / 1e3, hist_quantile_us(h, 0.9) / 1e3,
          hist_quantile_us(h, 0.99) / 1e3, hist_quantile_us(h, 1.0) / 1e3,
          n > 0 ? (double)atomic_load(&h->sum_us) / (double)n / 1e3 : 0.0);
  report_metrics_json(b, f);
  fprintf(f, "  \"per_second\": [");
  for (size_t i = 0; i < b->n_seconds; i++) {
    const bench_second *s = &b->seconds[i];
    fprintf(f,
            "%s\n    {\"t\": %.0f, \"submitted\": %llu, \"committed\": %llu, \"tx_s\": %.1f, "
            "\"p50_ms\": %.3f}",
            i ? "," : "", s->t, (unsigned long long)s->submitted, (unsigned long long)s->committed,
            s->tx_s, s->p50_ms);
  }
  fprintf(f, "\n  ]\n}\n");
  return fclose(f) == 0 ? 0 : -1;
}
