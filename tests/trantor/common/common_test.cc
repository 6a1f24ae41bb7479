// Tests of the shared Trantor helpers: quorums, membership validation, hashing, buckets, params.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "trantor_common.h"
void trantor_sha256_plain(const uint8_t *data, size_t len, uint8_t out[32]);
}

namespace {

std::string hex(const uint8_t *d, size_t n) {
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) s += std::string{digits[d[i] >> 4], digits[d[i] & 15]};
  return s;
}

// Builds a membership of the given (id, weight) pairs; the vectors keep the memory alive.
struct Members {
  std::vector<Trantor__Member> store;
  std::vector<Trantor__Member *> ptrs;
  std::vector<std::string> ids;
  Trantor__Membership m;
  Members(std::vector<std::pair<std::string, uint64_t>> list) {
    ids.reserve(list.size());
    store.resize(list.size());
    for (size_t i = 0; i < list.size(); i++) {
      ids.push_back(list[i].first);
      trantor__member__init(&store[i]);
      store[i].id = const_cast<char *>(ids.back().c_str());
      store[i].weight = list[i].second;
    }
    for (auto &s : store) ptrs.push_back(&s);
    trantor__membership__init(&m);
    m.n_members = ptrs.size();
    m.members = ptrs.data();
  }
};

TEST(Sha256, FipsVectors) {
  // The reference SHA-256 matches the FIPS 180 examples, so its derived constants are right.
  uint8_t out[32];
  trantor_sha256_plain(reinterpret_cast<const uint8_t *>("abc"), 3, out);
  EXPECT_EQ(hex(out, 32), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  trantor_sha256_plain(reinterpret_cast<const uint8_t *>(two), strlen(two), out);
  EXPECT_EQ(hex(out, 32), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  std::string million(1000000, 'a');
  trantor_sha256_plain(reinterpret_cast<const uint8_t *>(million.data()), million.size(), out);
  EXPECT_EQ(hex(out, 32), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Hash, ListsWithDifferentSplitsDiffer) {
  // Length prefixes make ["ab","c"] and ["a","bc"] hash differently, and equal lists alike.
  uint8_t h1[32], h2[32], h3[32];
  trantor_hash_input in;
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, "ab");
  trantor_hash_add_str(&in, "c");
  trantor_hash_compute(&in, trantor_hash_reference, h1);
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, "a");
  trantor_hash_add_str(&in, "bc");
  trantor_hash_compute(&in, trantor_hash_reference, h2);
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, "ab");
  trantor_hash_add_str(&in, "c");
  trantor_hash_compute(&in, trantor_hash_reference, h3);
  EXPECT_NE(hex(h1, 32), hex(h2, 32));
  EXPECT_EQ(hex(h1, 32), hex(h3, 32));
}

TEST(Quorum, UnitWeights) {
  // With unit weights the thresholds are the classic (strong, weak) = (2f+1, f+1) for n = 3f+1.
  struct {
    size_t n;
    uint64_t strong, weak;
  } cases[] = {{1, 1, 1}, {3, 2, 1}, {4, 3, 2}, {7, 5, 3}, {10, 7, 4}};
  for (auto c : cases) {
    std::vector<std::pair<std::string, uint64_t>> l;
    for (size_t i = 0; i < c.n; i++) l.push_back({std::to_string(i), 1});
    Members m(l);
    trantor_quorum q;
    trantor_quorum_of(&m.m, &q);
    EXPECT_EQ(q.strong, c.strong) << c.n;
    EXPECT_EQ(q.weak, c.weak) << c.n;
  }
}

TEST(Quorum, WeightedTwoStrongQuorumsIntersectInACorrectNode) {
  // For weights 1,2,4,8 any two strong quorums overlap by more than f of weight.
  Members m({{"a", 1}, {"b", 2}, {"c", 4}, {"d", 8}});
  trantor_quorum q;
  trantor_quorum_of(&m.m, &q);
  EXPECT_EQ(q.total, 15u);
  EXPECT_EQ(q.f, 4u);
  EXPECT_GT(2 * q.strong, q.total + q.f);
  EXPECT_EQ(trantor_member_weight(&m.m, "c"), 4u);
  EXPECT_EQ(trantor_member_index(&m.m, "d"), 3);
  EXPECT_EQ(trantor_member_index(&m.m, "e"), -1);
}

TEST(Membership, RejectsBadMemberships) {
  // Unsorted, duplicate, zero-weight, badly named and overweight memberships are refused.
  Members ok({{"0", 1}, {"1", 1}});
  EXPECT_EQ(trantor_membership_check(&ok.m), MIR_OK);
  Members unsorted({{"1", 1}, {"0", 1}});
  EXPECT_EQ(trantor_membership_check(&unsorted.m), MIR_EINVAL);
  Members dup({{"0", 1}, {"0", 1}});
  EXPECT_EQ(trantor_membership_check(&dup.m), MIR_EINVAL);
  Members zero({{"0", 0}});
  EXPECT_EQ(trantor_membership_check(&zero.m), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("weight"), std::string::npos);
  Members slash({{"a/b", 1}});
  EXPECT_EQ(trantor_membership_check(&slash.m), MIR_EINVAL);
  Members heavy({{"a", UINT64_C(1) << 61}, {"b", UINT64_C(1) << 61}});
  EXPECT_EQ(trantor_membership_check(&heavy.m), MIR_EINVAL);
  EXPECT_EQ(trantor_membership_check(nullptr), MIR_EINVAL);
}

TEST(Buckets, DeterministicAndSpread) {
  // A client always maps to the same bucket and 1000 clients use every one of 16 buckets.
  std::set<uint32_t> used;
  for (int i = 0; i < 1000; i++) {
    std::string c = "client-" + std::to_string(i);
    uint32_t b = trantor_bucket_of(c.c_str(), 16);
    EXPECT_EQ(b, trantor_bucket_of(c.c_str(), 16));
    EXPECT_LT(b, 16u);
    used.insert(b);
  }
  EXPECT_EQ(used.size(), 16u);
}

TEST(Params, DefaultsValidAndErrorsNameTheField) {
  // The defaults pass; a bad field is reported by name.
  trantor_params p;
  trantor_params_default(&p);
  EXPECT_EQ(trantor_params_check(&p), MIR_OK);
  p.batch_timeout_ms = p.view_change_sn_timeout_ms;
  EXPECT_EQ(trantor_params_check(&p), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("batch_timeout_ms"), std::string::npos);
  trantor_params_default(&p);
  p.segment_length = 0;
  EXPECT_EQ(trantor_params_check(&p), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("segment_length"), std::string::npos);
}

}  // namespace
