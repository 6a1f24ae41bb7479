/*
 * Epoch layout arithmetic (layout.h).
 *
 * Buckets: segment i of epoch e serves b with (b + e) mod k == i, that is b = r + t*k with
 * r = (i - e mod k) mod k. Each bucket has exactly one residue, so exactly one segment per epoch
 * serves it (no two leaders propose the same transaction), and as e runs over k consecutive
 * epochs, r runs over every residue, so every leader serves every bucket once. The arithmetic is
 * done modulo k before adding so that large epochs cannot overflow.
 */
#include "layout.h"

#include "mir/assert.h"

uint64_t trantor_layout_sn(uint64_t first_sn, size_t k, size_t i, uint64_t j) {
  MIR_ASSERT(i < k);
  return first_sn + i + j * k;
}

bool trantor_layout_segment_of(uint64_t first_sn, size_t k, uint32_t s, uint64_t sn,
                               size_t *segment) {
  MIR_ASSERT(k >= 1 && s >= 1);
  if (sn < first_sn || sn - first_sn >= (uint64_t)k * s) return false;
  *segment = (size_t)((sn - first_sn) % k);
  return true;
}

/* The smallest bucket of segment i in epoch e: (i - e mod k) mod k. */
static uint64_t layout_first_bucket(uint64_t epoch, size_t k, size_t i) {
  MIR_ASSERT(i < k);
  uint64_t em = epoch % k;
  return (i + k - em) % k;
}

size_t trantor_layout_bucket_count(uint64_t epoch, size_t k, size_t i, uint32_t num_buckets) {
  uint64_t r = layout_first_bucket(epoch, k, i);
  if (r >= num_buckets) return 0;
  return (size_t)((num_buckets - 1 - r) / k + 1);
}

size_t trantor_layout_buckets(uint64_t epoch, size_t k, size_t i, uint32_t num_buckets,
                              uint32_t *out, size_t max) {
  size_t n = 0;
  for (uint64_t b = layout_first_bucket(epoch, k, i); b < num_buckets; b += k) {
    MIR_ASSERT(n < max);
    out[n++] = (uint32_t)b;
  }
  return n;
}
