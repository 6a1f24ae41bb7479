// Tests of the agreement table (sdk/src/votes.h), the rule that decides what the SDK reports:
// an entry is handed out in sn order, once, only when `quorum` replicas voted identical bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "votes.h"
}

namespace {

struct Table {
  Table(uint32_t n, uint32_t quorum, uint32_t window = 16, uint64_t bytes = 1 << 20,
        uint64_t from = 0) {
    EXPECT_EQ(0, miri_cl_votes_init(&v, n, quorum, window, bytes, from));
  }
  ~Table() { miri_cl_votes_fini(&v); }
  miri_cl_vote_result Add(uint32_t r, uint64_t sn, const std::string &s) {
    return miri_cl_votes_add(&v, r, sn, reinterpret_cast<const uint8_t *>(s.data()), s.size());
  }
  // Pops every agreed entry; returns their contents.
  std::vector<std::string> Pop() {
    std::vector<std::string> out;
    miri_cl_blob *b;
    while ((b = miri_cl_votes_pop(&v)) != nullptr) {
      out.emplace_back(reinterpret_cast<const char *>(b->data), b->len);
      miri_cl_blob_unref(b);
    }
    return out;
  }
  miri_cl_votes v;
};

TEST(SdkVotes, AgreementNeedsQuorumIdenticalVotes) {
  // One vote (f = 1, quorum 2) reports nothing; a second identical vote reports the entry once.
  Table t(4, 2);
  EXPECT_EQ(MIRI_CL_VOTE_ADDED, t.Add(0, 0, "entry0"));
  EXPECT_TRUE(t.Pop().empty());
  EXPECT_EQ(MIRI_CL_VOTE_ADDED, t.Add(1, 0, "entry0"));
  EXPECT_EQ(t.Pop(), std::vector<std::string>{"entry0"});
  EXPECT_EQ(MIRI_CL_VOTE_DECIDED, t.Add(2, 0, "entry0"));
  EXPECT_TRUE(t.Pop().empty());
  EXPECT_EQ(t.v.frontier, 1u);
}

TEST(SdkVotes, ADifferentHashIsNotAVoteForTheEntry) {
  // A replica reporting other bytes (another log hash) does not count towards the honest
  // entry, and two different single votes agree on nothing.
  Table t(4, 2);
  t.Add(0, 0, "sn0-hashA");
  t.Add(3, 0, "sn0-hashB");
  EXPECT_TRUE(t.Pop().empty());
  t.Add(1, 0, "sn0-hashA");
  EXPECT_EQ(t.Pop(), std::vector<std::string>{"sn0-hashA"});
  EXPECT_EQ(t.v.dissent, 1u);  // the replica that voted hashB is counted
  t.Add(2, 0, "sn0-hashC");    // a late vote for other content is counted too
  t.Add(3, 0, "sn0-hashA");    // a late vote for the agreed content is not
  EXPECT_EQ(t.v.dissent, 2u);
}

TEST(SdkVotes, FFaultyReplicasCannotForgeAnEntry) {
  // With n = 7 (f = 2, quorum 3), two colluding replicas voting the same forged content never
  // reach agreement; the honest content does once three honest votes arrive.
  Table t(7, 3);
  t.Add(5, 0, "forged");
  t.Add(6, 0, "forged");
  t.Add(0, 0, "honest");
  t.Add(1, 0, "honest");
  EXPECT_TRUE(t.Pop().empty());
  t.Add(2, 0, "honest");
  EXPECT_EQ(t.Pop(), std::vector<std::string>{"honest"});
}

TEST(SdkVotes, OneVotePerReplicaAndSn) {
  // A replica voting twice for the same content counts once; a replica changing its vote is an
  // equivocation and its second vote is ignored.
  Table t(4, 2);
  EXPECT_EQ(MIRI_CL_VOTE_ADDED, t.Add(0, 0, "a"));
  EXPECT_EQ(MIRI_CL_VOTE_REPEATED, t.Add(0, 0, "a"));
  EXPECT_TRUE(t.Pop().empty());
  EXPECT_EQ(MIRI_CL_VOTE_ADDED, t.Add(1, 0, "b"));
  EXPECT_EQ(MIRI_CL_VOTE_CONFLICT, t.Add(1, 0, "a"));
  EXPECT_TRUE(t.Pop().empty());
  EXPECT_EQ(MIRI_CL_VOTE_ADDED, t.Add(2, 0, "a"));
  EXPECT_EQ(t.Pop(), std::vector<std::string>{"a"});
}

TEST(SdkVotes, EntriesLeaveInSnOrderOnly) {
  // An agreed sn 1 waits for sn 0; then both leave in order.
  Table t(4, 2);
  t.Add(0, 1, "one");
  t.Add(1, 1, "one");
  EXPECT_TRUE(t.Pop().empty());
  t.Add(2, 0, "zero");
  t.Add(3, 0, "zero");
  EXPECT_EQ(t.Pop(), (std::vector<std::string>{"zero", "one"}));
}

TEST(SdkVotes, TheWindowAndTheByteLimitBoundEachReplica) {
  // Votes beyond frontier + window are not kept, and a replica holding bytes_max bytes of votes
  // has no room until agreement releases them.
  Table t(4, 2, 4, 10);
  EXPECT_EQ(MIRI_CL_VOTE_AHEAD, t.Add(0, 4, "x"));
  EXPECT_TRUE(miri_cl_votes_room(&t.v, 0));
  t.Add(0, 0, "0123456789");
  EXPECT_FALSE(miri_cl_votes_room(&t.v, 0));
  t.Add(1, 0, "0123456789");
  t.Pop();
  EXPECT_TRUE(miri_cl_votes_room(&t.v, 0));
  Table w(4, 2, 4);
  for (uint64_t sn = 0; sn < 3; sn++) w.Add(0, sn, "v");
  EXPECT_TRUE(miri_cl_votes_room(&w.v, 0));  // its next sn (3) is inside the window
  w.Add(0, 3, "v");
  EXPECT_FALSE(miri_cl_votes_room(&w.v, 0));
  EXPECT_EQ(miri_cl_votes_resume_sn(&w.v, 0), 4u);
  EXPECT_EQ(miri_cl_votes_resume_sn(&w.v, 1), 0u);
}

TEST(SdkVotes, QuorumOfOneTrustsTheFirstVote) {
  // With quorum 1 (TRUST_ONE) the first vote decides.
  Table t(2, 1, 16, 1 << 20, 5);
  EXPECT_EQ(MIRI_CL_VOTE_DECIDED, t.Add(0, 4, "old"));
  t.Add(1, 5, "five");
  EXPECT_EQ(t.Pop(), std::vector<std::string>{"five"});
  EXPECT_TRUE(miri_cl_votes_waiting(&t.v) == false);
  t.Add(0, 7, "seven");
  EXPECT_TRUE(miri_cl_votes_waiting(&t.v));
}

}  // namespace
