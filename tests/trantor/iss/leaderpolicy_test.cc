// Tests of the leader selection policies: the simple policy lists every member by id; the
// blacklist policy puts suspected members last by the epoch of their last suspicion with ties
// broken by id, keeps a strong quorum by weight, and survives reconfiguration; the serialised
// form round-trips, is canonical, and its decoder refuses malformed bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "trantor/checkpoint/trantor_test_util.h"

extern "C" {
#include "leaderpolicy.h"
}

namespace {

// Owns a policy built over the given members.
struct Policy {
  trantor_leader_policy *p = nullptr;
  Policy(trantor_lp_kind kind, const std::vector<std::pair<std::string, uint64_t>> &members) {
    Trantor__Membership *m = tt::membership(members);
    EXPECT_EQ(trantor_lp_new(kind, m, &p), MIR_OK) << mir_error_detail();
    tt::free_msg(m);
  }
  explicit Policy(trantor_leader_policy *q) : p(q) {}
  Policy(const Policy &) = delete;
  Policy &operator=(const Policy &) = delete;
  ~Policy() { trantor_lp_free(p); }

  std::vector<std::string> leaders() const {
    const char *ids[TRANTOR_MEMBERS_MAX];
    size_t k = trantor_lp_leaders(p, ids, TRANTOR_MEMBERS_MAX);
    return std::vector<std::string>(ids, ids + k);
  }
  std::string bytes() const {
    uint8_t *b;
    size_t len;
    trantor_lp_to_bytes(p, &b, &len);
    std::string s(reinterpret_cast<char *>(b), len);
    free(b);
    return s;
  }
  void reconfigure(const std::vector<std::string> &ids) {
    Trantor__Membership *m = tt::unit_membership(ids);
    EXPECT_EQ(trantor_lp_reconfigure(p, m), MIR_OK);
    tt::free_msg(m);
  }
};

using L = std::vector<std::string>;
const std::vector<std::pair<std::string, uint64_t>> kFour = {
    {"1", 1}, {"2", 1}, {"3", 1}, {"4", 1}};

mir_err decode(const std::string &s, trantor_leader_policy **out) {
  return trantor_lp_from_bytes(reinterpret_cast<const uint8_t *>(s.data()), s.size(), out);
}

TEST(LeaderPolicySimple, AllMembersByIdAndSuspicionsIgnored) {
  // The simple policy returns every member sorted by id, whatever is suspected.
  Policy s(TRANTOR_LP_SIMPLE, {{"a", 1}, {"b", 5}, {"c", 1}});
  EXPECT_EQ(s.leaders(), (L{"a", "b", "c"}));
  trantor_lp_suspect(s.p, 3, "a");
  EXPECT_EQ(s.leaders(), (L{"a", "b", "c"}));
  s.reconfigure({"a", "d"});
  EXPECT_EQ(s.leaders(), (L{"a", "d"}));
}

TEST(LeaderPolicyBlacklist, OriginalScenario) {
  // The original's unit scenario: suspicions push members back, a strong quorum of leaders stays,
  // reconfiguration keeps the suspicions of members that remain.
  Policy b(TRANTOR_LP_BLACKLIST, kFour);
  EXPECT_EQ(b.leaders(), (L{"1", "2", "3", "4"}));
  trantor_lp_suspect(b.p, 1, "1");
  EXPECT_EQ(b.leaders(), (L{"2", "3", "4"}));
  trantor_lp_suspect(b.p, 2, "4");
  EXPECT_EQ(b.leaders(), (L{"2", "3", "1"}));  // 3 leaders needed for a strong quorum of 4
  b.reconfigure({"1", "5"});
  EXPECT_EQ(b.leaders(), (L{"5", "1"}));
  b.reconfigure({"1", "5", "6"});
  EXPECT_EQ(b.leaders(), (L{"5", "6"}));
}

TEST(LeaderPolicyBlacklist, TiesBrokenByIdWhateverTheOrderOfSuspicions) {
  // Members suspected in the same epoch are ordered by id, so two nodes that saw the suspicions
  // in different orders agree; an older suspicion comes before a newer one.
  const std::vector<std::pair<std::string, uint64_t>> seven = {
      {"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}, {"f", 1}, {"g", 1}};
  Policy x(TRANTOR_LP_BLACKLIST, seven), y(TRANTOR_LP_BLACKLIST, seven);
  trantor_lp_suspect(x.p, 4, "c");
  trantor_lp_suspect(x.p, 4, "b");
  trantor_lp_suspect(x.p, 2, "f");
  trantor_lp_suspect(y.p, 2, "f");
  trantor_lp_suspect(y.p, 4, "b");
  trantor_lp_suspect(y.p, 4, "c");
  // 7 members, strong quorum 5: n - suspected = 4 < 5, so the least recently suspected joins.
  EXPECT_EQ(x.leaders(), (L{"a", "d", "e", "g", "f"}));
  EXPECT_EQ(x.leaders(), y.leaders());
  EXPECT_EQ(x.bytes(), y.bytes());
  // A later suspicion moves f behind b and c, which then fill the quorum by id.
  trantor_lp_suspect(x.p, 5, "f");
  EXPECT_EQ(x.leaders(), (L{"a", "d", "e", "g", "b"}));
  // An older suspicion does not lower the recorded epoch.
  trantor_lp_suspect(x.p, 1, "f");
  EXPECT_EQ(x.leaders(), (L{"a", "d", "e", "g", "b"}));
}

TEST(LeaderPolicyBlacklist, StrongQuorumMinimumCountsWeight) {
  // The leaders always hold a strong quorum of weight: with a heavy member suspected, fewer
  // light members are not enough and the heavy one stays.
  Policy b(TRANTOR_LP_BLACKLIST, {{"a", 10}, {"b", 1}, {"c", 1}, {"d", 1}});
  // W = 13, f = 4, strong = 9: without a the others weigh 3.
  trantor_lp_suspect(b.p, 1, "a");
  EXPECT_EQ(b.leaders(), (L{"b", "c", "d", "a"}));
  Policy c(TRANTOR_LP_BLACKLIST, {{"a", 10}, {"b", 1}, {"c", 1}, {"d", 1}});
  trantor_lp_suspect(c.p, 1, "b");
  trantor_lp_suspect(c.p, 1, "c");
  trantor_lp_suspect(c.p, 1, "d");
  EXPECT_EQ(c.leaders(), (L{"a"}));  // a alone weighs 10 >= 9
  // Suspecting everyone still leaves a strong quorum, never an empty list.
  trantor_lp_suspect(c.p, 2, "a");
  EXPECT_EQ(c.leaders(), (L{"b", "c", "d", "a"}));
}

TEST(LeaderPolicyBlacklist, NonMembersAreIgnored) {
  // Suspecting a node outside the membership changes neither the leaders nor the bytes.
  Policy b(TRANTOR_LP_BLACKLIST, kFour);
  std::string before = b.bytes();
  trantor_lp_suspect(b.p, 3, "9");
  EXPECT_EQ(b.bytes(), before);
  EXPECT_EQ(b.leaders().size(), 4u);
}

TEST(LeaderPolicySerialisation, RoundTripIsExact) {
  // Decoding the bytes of a policy gives a policy with the same bytes, kind, membership and
  // leaders, for both kinds.
  Policy b(TRANTOR_LP_BLACKLIST, {{"n1", 3}, {"n2", 1}, {"n3", 7}});
  trantor_lp_suspect(b.p, 9, "n3");
  trantor_lp_suspect(b.p, 2, "n1");
  Policy s(TRANTOR_LP_SIMPLE, {{"x", 1}});
  for (Policy *p : {&b, &s}) {
    std::string bytes = p->bytes();
    trantor_leader_policy *q = nullptr;
    ASSERT_EQ(decode(bytes, &q), MIR_OK) << mir_error_detail();
    Policy back(q);
    EXPECT_EQ(back.bytes(), bytes);
    EXPECT_EQ(back.leaders(), p->leaders());
    EXPECT_EQ(trantor_lp_kind_of(back.p), trantor_lp_kind_of(p->p));
  }
  Trantor__Membership *m = tt::membership({{"n1", 3}, {"n2", 1}, {"n3", 7}});
  EXPECT_TRUE(trantor_lp_membership_equals(b.p, m));
  m->members[1]->weight = 2;
  EXPECT_FALSE(trantor_lp_membership_equals(b.p, m));
  tt::free_msg(m);
}

TEST(LeaderPolicySerialisation, MalformedBytesAreRefused) {
  // Truncation, trailing bytes, unknown kinds, empty ids, unsorted or duplicate ids, zero weights,
  // overflowing weights and non-canonical suspicion fields are all MIR_EPROTO.
  Policy b(TRANTOR_LP_BLACKLIST, {{"a", 1}, {"b", 1}});
  std::string good = b.bytes();
  trantor_leader_policy *q = nullptr;
  auto bad = [&](std::string s) {
    EXPECT_EQ(decode(s, &q), MIR_EPROTO);
    EXPECT_EQ(q, nullptr);
  };
  bad("");
  bad(good.substr(0, good.size() - 1));
  bad(good + "x");
  std::string s = good;
  s[0] = 7;  // kind
  bad(s);
  s = good;
  s[4] = 0;  // zero members
  bad(s);
  s = good;
  s[5] = 0;  // empty id
  bad(s);
  s = good;
  s[6] = 'b';  // ids "b", "b": duplicate
  bad(s);
  s = good;
  s[6] = 'c';  // "c" before "b": unsorted
  bad(s);
  // Member a: id at 6, weight at 7..14, flag at 15, epoch at 16..23.
  s = good;
  for (int i = 7; i < 15; i++) s[i] = 0;  // weight 0
  bad(s);
  s = good;
  s[7] = 0x40;  // weight 2^62
  bad(s);
  s = good;
  s[15] = 2;  // flag
  bad(s);
  s = good;
  s[23] = 1;  // epoch without the flag
  bad(s);
  Policy simple(TRANTOR_LP_SIMPLE, {{"a", 1}});
  s = simple.bytes();
  s[15] = 1;  // a simple policy has no suspicions
  bad(s);
  s[0] = 1;  // the same bytes as a blacklist policy are fine
  ASSERT_EQ(decode(s, &q), MIR_OK);
  trantor_lp_free(q);
}

TEST(LeaderPolicy, InvalidMembershipIsRefused) {
  // A policy needs a valid membership: unsorted ids are refused at creation and reconfiguration.
  Trantor__Membership *m = tt::unit_membership({"b", "a"});
  trantor_leader_policy *p = nullptr;
  EXPECT_EQ(trantor_lp_new(TRANTOR_LP_SIMPLE, m, &p), MIR_EINVAL);
  Policy ok(TRANTOR_LP_BLACKLIST, kFour);
  EXPECT_EQ(trantor_lp_reconfigure(ok.p, m), MIR_EINVAL);
  EXPECT_EQ(ok.leaders().size(), 4u);
  tt::free_msg(m);
}

}  // namespace
