/*
 * mir-bench --metrics URL,...: each replica's /metrics and /debug/stats are read once after the
 * clients opened and before the first submission, and once after the clients closed, so the
 * differences cover the whole run and nothing but it (warm-up and drain included); the
 * transactions committed in between are all those mir-bench saw committed. Reads go one replica
 * after the other and take milliseconds on loopback.
 *
 * A replica that cannot be read (refused, timed out, a malformed page, restarted during the run)
 * is reported with the reason; the run and the other replicas' figures are not affected.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

int bench_metrics_init(bench *b) {
  if (b->o.n_metrics == 0) return 0;
  b->rm = calloc(b->o.n_metrics, sizeof(*b->rm));
  if (b->rm == NULL) {
    fprintf(stderr, "mir-bench: out of memory\n");
    return -1;
  }
  for (size_t i = 0; i < b->o.n_metrics; i++) {
    bench_replica *r = &b->rm[i];
    r->text = b->o.metrics[i];
    if (scrape_url_parse(r->text, &r->url, r->err, sizeof r->err) != 0) {
      fprintf(stderr, "mir-bench: --metrics: %s\n", r->err);
      return -1;
    }
  }
  return 0;
}

void bench_metrics_before(bench *b) {
  for (size_t i = 0; b->rm != NULL && i < b->o.n_metrics; i++) {
    bench_replica *r = &b->rm[i];
    r->have_before =
        scrape_read(&r->url, SCRAPE_TIMEOUT_MS_DEFAULT, &r->before, r->err, sizeof r->err) == 0;
    if (!r->have_before) {
      scrape_snapshot_fini(&r->before);
      fprintf(stderr, "mir-bench: --metrics: before the run: %s\n", r->err);
    }
  }
}

void bench_metrics_after(bench *b) {
  uint64_t committed = atomic_load(&b->committed);
  for (size_t i = 0; b->rm != NULL && i < b->o.n_metrics; i++) {
    bench_replica *r = &b->rm[i];
    if (!r->have_before) continue;
    scrape_snapshot after;
    if (scrape_read(&r->url, SCRAPE_TIMEOUT_MS_DEFAULT, &after, r->err, sizeof r->err) == 0) {
      char why[SCRAPE_ERR_MAX];
      r->ok = scrape_delta_compute(&r->before, &after, committed, &r->d, why, sizeof why) == 0;
      if (!r->ok) snprintf(r->err, sizeof r->err, "%.200s: %.300s", r->text, why);
    }
    if (!r->ok) fprintf(stderr, "mir-bench: --metrics: after the run: %s\n", r->err);
    scrape_snapshot_fini(&after);
    scrape_snapshot_fini(&r->before);
    r->have_before = false;
  }
}

void bench_metrics_fini(bench *b) {
  for (size_t i = 0; b->rm != NULL && i < b->o.n_metrics; i++) {
    if (b->rm[i].have_before) scrape_snapshot_fini(&b->rm[i].before);
  }
  free(b->rm);
  b->rm = NULL;
}
