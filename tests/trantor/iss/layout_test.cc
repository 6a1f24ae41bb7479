// Tests of the epoch layout: sequence numbers are interleaved among segments and every sn of an
// epoch belongs to exactly one segment; every bucket is served by exactly one segment per epoch,
// and over k consecutive epochs every segment serves every bucket.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

extern "C" {
#include "layout.h"
}

namespace {

TEST(Layout, SequenceNumbersAreInterleaved) {
  // With 4 segments of 4 sns from sn 16, segment 1 owns 17, 21, 25, 29, and segment_of inverts
  // the mapping for every sn of the epoch and refuses sns outside it.
  std::vector<uint64_t> seg1;
  for (uint64_t j = 0; j < 4; j++) seg1.push_back(trantor_layout_sn(16, 4, 1, j));
  EXPECT_EQ(seg1, (std::vector<uint64_t>{17, 21, 25, 29}));
  std::map<uint64_t, size_t> owner;
  for (size_t i = 0; i < 4; i++) {
    for (uint64_t j = 0; j < 4; j++) {
      uint64_t sn = trantor_layout_sn(16, 4, i, j);
      EXPECT_TRUE(owner.emplace(sn, i).second) << "sn " << sn << " owned twice";
    }
  }
  EXPECT_EQ(owner.size(), 16u);
  EXPECT_EQ(owner.begin()->first, 16u);
  EXPECT_EQ(owner.rbegin()->first, 31u);
  for (const auto &[sn, i] : owner) {
    size_t seg = 99;
    ASSERT_TRUE(trantor_layout_segment_of(16, 4, 4, sn, &seg));
    EXPECT_EQ(seg, i);
  }
  size_t seg;
  EXPECT_FALSE(trantor_layout_segment_of(16, 4, 4, 15, &seg));
  EXPECT_FALSE(trantor_layout_segment_of(16, 4, 4, 32, &seg));
  EXPECT_FALSE(trantor_layout_segment_of(UINT64_MAX - 2, 4, 4, 3, &seg));
}

// The buckets of every segment of epoch e (k segments, b buckets).
std::vector<std::vector<uint32_t>> buckets_of(uint64_t e, size_t k, uint32_t b) {
  std::vector<std::vector<uint32_t>> out(k);
  for (size_t i = 0; i < k; i++) {
    size_t n = trantor_layout_bucket_count(e, k, i, b);
    out[i].resize(n + 1);
    out[i].resize(trantor_layout_buckets(e, k, i, b, out[i].data(), n));
    EXPECT_EQ(out[i].size(), n);
  }
  return out;
}

TEST(Layout, EachBucketServedByExactlyOneSegmentPerEpoch) {
  // For several sizes and epochs (including huge ones), the segments' bucket sets partition
  // 0..B-1, and each bucket b of segment i satisfies (b + e) mod k == i.
  for (size_t k : {1, 3, 4, 7, 10}) {
    for (uint32_t b : {1u, 4u, 8u, 64u}) {
      for (uint64_t e : {uint64_t{0}, uint64_t{1}, uint64_t{5}, UINT64_MAX}) {
        std::set<uint32_t> seen;
        auto segs = buckets_of(e, k, b);
        for (size_t i = 0; i < k; i++) {
          for (uint32_t bucket : segs[i]) {
            EXPECT_LT(bucket, b);
            EXPECT_EQ((bucket % k + e % k) % k, i);
            EXPECT_TRUE(seen.insert(bucket).second) << "bucket " << bucket << " served twice";
          }
        }
        EXPECT_EQ(seen.size(), b) << "k=" << k << " b=" << b << " e=" << e;
      }
    }
  }
}

TEST(Layout, EverySegmentServesEveryBucketOverKEpochs) {
  // Over any k consecutive epochs, each segment index serves every bucket exactly once, so a
  // correct leader eventually proposes what a faulty one ignores.
  const size_t k = 4;
  const uint32_t b = 10;
  for (uint64_t start : {uint64_t{0}, uint64_t{3}, uint64_t{1000}}) {
    for (size_t i = 0; i < k; i++) {
      std::multiset<uint32_t> served;
      for (uint64_t e = start; e < start + k; e++) {
        auto segs = buckets_of(e, k, b);
        for (uint32_t bucket : segs[i]) served.insert(bucket);
      }
      EXPECT_EQ(served.size(), b);
      for (uint32_t bucket = 0; bucket < b; bucket++) EXPECT_EQ(served.count(bucket), 1u);
    }
  }
}

TEST(Layout, MoreSegmentsThanBucketsLeavesSomeIdle) {
  // With k > B, k - B segments of an epoch have no bucket, and the idle ones rotate.
  auto e0 = buckets_of(0, 5, 3);
  auto e1 = buckets_of(1, 5, 3);
  EXPECT_EQ(e0[0], (std::vector<uint32_t>{0}));
  EXPECT_TRUE(e0[3].empty());
  EXPECT_TRUE(e0[4].empty());
  EXPECT_EQ(e1[1], (std::vector<uint32_t>{0}));
  EXPECT_EQ(e1[3], (std::vector<uint32_t>{2}));
  EXPECT_TRUE(e1[0].empty());
  EXPECT_TRUE(e1[4].empty());
}

}  // namespace
