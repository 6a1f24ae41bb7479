/*
 * The layout of an epoch (docs/PROTOCOL.md, "Epochs, segments, buckets"): which sequence numbers
 * each segment orders and which transaction buckets it proposes from. Pure arithmetic, shared by
 * ISS and its tests.
 *
 * With k leaders and segment length s, an epoch starting at first covers first .. first + k*s - 1;
 * segment i owns first + i + j*k for j < s (interleaved). In epoch e, segment i proposes from the
 * buckets b < num_buckets with (b + e) mod k == i.
 */
#ifndef TRANTOR_LAYOUT_H
#define TRANTOR_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The j-th sn (j < s) of segment i (i < k) of an epoch starting at first_sn. */
uint64_t trantor_layout_sn(uint64_t first_sn, size_t k, size_t i, uint64_t j);

/* If sn lies in the epoch [first_sn, first_sn + k*s), sets *segment to the segment owning it and
 * returns true; otherwise returns false. k >= 1 and s >= 1. */
bool trantor_layout_segment_of(uint64_t first_sn, size_t k, uint32_t s, uint64_t sn,
                               size_t *segment);

/* Number of buckets segment i (i < k) of epoch serves out of num_buckets. */
size_t trantor_layout_bucket_count(uint64_t epoch, size_t k, size_t i, uint32_t num_buckets);

/* Writes the buckets of segment i (i < k) of epoch, ascending, into out (room for max entries,
 * asserted to be enough: see trantor_layout_bucket_count) and returns how many. */
size_t trantor_layout_buckets(uint64_t epoch, size_t k, size_t i, uint32_t num_buckets,
                              uint32_t *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
