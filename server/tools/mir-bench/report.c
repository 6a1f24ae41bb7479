/*
 * mir-bench's report: the summary on stdout and the JSON file. Throughput counts the commits
 * that happened during the measured window, divided by its length; latency quantiles cover the
 * transactions scheduled inside the window that were committed.
 */
#include <stdio.h>

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
      "%llu reconnects, %llu fail-overs, %llu bad messages, %llu conflicting votes\n",
      (unsigned long long)b->sdk.requests_sent, (unsigned long long)b->sdk.resent,
      (unsigned long long)b->sdk.refused, (unsigned long long)b->sdk.backoffs,
      (unsigned long long)b->sdk.reconnects, (unsigned long long)b->sdk.failovers,
      (unsigned long long)b->sdk.bad_messages, (unsigned long long)b->sdk.conflicting_votes);
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
          "\"backoffs\": %llu, \"reconnects\": %llu, \"failovers\": %llu},\n",
          (unsigned long long)b->sdk.requests_sent, (unsigned long long)b->sdk.resent,
          (unsigned long long)b->sdk.refused, (unsigned long long)b->sdk.backoffs,
          (unsigned long long)b->sdk.reconnects, (unsigned long long)b->sdk.failovers);
  fprintf(f, "  \"throughput_tx_s\": %.3f,\n",
          (double)atomic_load(&b->committed_in_window) / b->o.duration_s);
  fprintf(f,
          "  \"latency_ms\": {\"count\": %lu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
          "\"max\": %.3f, \"mean\": %.3f},\n",
          n, hist_quantile_us(h, 0.5) / 1e3, hist_quantile_us(h, 0.9) / 1e3,
          hist_quantile_us(h, 0.99) / 1e3, hist_quantile_us(h, 1.0) / 1e3,
          n > 0 ? (double)atomic_load(&h->sum_us) / (double)n / 1e3 : 0.0);
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
