/*
 * A log-linear latency histogram: bucket i covers [1.01^i, 1.01^(i+1)) microseconds, so every
 * quantile is exact to 1%. Recording is a few atomic adds, safe from any number of SDK callback
 * threads at once; reading while recording gives a close, consistent-enough picture for the live
 * line, and an exact one once recording stopped.
 */
#include <math.h>

#include "bench.h"

static size_t hist_bucket(uint64_t us) {
  if (us <= 1) return 0;
  double i = log((double)us) / log(1.01);
  return i >= HIST_BUCKETS - 1 ? HIST_BUCKETS - 1 : (size_t)i;
}

void hist_record(hist *h, uint64_t us) {
  atomic_fetch_add(&h->counts[hist_bucket(us)], 1);
  atomic_fetch_add(&h->n, 1);
  atomic_fetch_add(&h->sum_us, us);
  unsigned long long max = atomic_load(&h->max_us);
  while (us > max && !atomic_compare_exchange_weak(&h->max_us, &max, us)) {
  }
}

double hist_quantile_us(const hist *h, double q) {
  unsigned long total = atomic_load(&h->n);
  if (total == 0) return 0;
  if (q >= 1.0) return (double)atomic_load(&h->max_us);
  unsigned long rank = (unsigned long)(q * (double)total), seen = 0;
  for (size_t i = 0; i < HIST_BUCKETS; i++) {
    seen += atomic_load(&h->counts[i]);
    if (seen > rank) {
      double upper = pow(1.01, (double)(i + 1));
      double max = (double)atomic_load(&h->max_us);
      return upper < max ? upper : max;
    }
  }
  return (double)atomic_load(&h->max_us);
}
