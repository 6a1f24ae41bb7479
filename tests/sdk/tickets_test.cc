// Tests of the ticket table (sdk/src/tickets.h): numbering, the window, the rejection rule,
// commits with the same or other data, close, and what waiters learn.
#include <gtest/gtest.h>

#include <string>

extern "C" {
#include "tickets.h"
}

namespace {

struct Tickets {
  Tickets(uint64_t first = 0, uint32_t window = 4, uint64_t cap = 8, uint64_t bytes = 1 << 20,
          uint32_t quorum = 2) {
    EXPECT_EQ(0, miri_cl_tickets_init(&t, first, window, cap, bytes, quorum));
  }
  ~Tickets() { miri_cl_tickets_fini(&t); }
  int Add(const std::string &s, uint64_t *no) {
    return miri_cl_tickets_add(&t, s.data(), s.size(), 0, nullptr, nullptr, no);
  }
  miri_cl_tickets t;
};

TEST(SdkTickets, NumbersAreSequentialFromFirst) {
  // Tickets are numbered first, first+1, ... and unknown numbers are not found.
  Tickets k(10);
  uint64_t a = 0, b = 0;
  ASSERT_EQ(MIR_CLIENT_OK, k.Add("a", &a));
  ASSERT_EQ(MIR_CLIENT_OK, k.Add("b", &b));
  EXPECT_EQ(a, 10u);
  EXPECT_EQ(b, 11u);
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, miri_cl_tickets_lookup(&k.t, 10, nullptr));
  EXPECT_EQ(MIR_CLIENT_ENOTFOUND, miri_cl_tickets_lookup(&k.t, 9, nullptr));
  EXPECT_EQ(MIR_CLIENT_ENOTFOUND, miri_cl_tickets_lookup(&k.t, 12, nullptr));
}

TEST(SdkTickets, TheWindowAndByteLimitRefuseWithoutSideEffects) {
  // At most `window` tickets are unresolved, and at most bytes_max bytes are held; a refused add
  // changes nothing.
  Tickets k(0, 2, 8, 5);
  uint64_t no = 0;
  ASSERT_EQ(MIR_CLIENT_OK, k.Add("ab", &no));
  EXPECT_EQ(MIR_CLIENT_EFULL, k.Add("abcd", &no));  // 6 bytes > 5
  ASSERT_EQ(MIR_CLIENT_OK, k.Add("c", &no));
  EXPECT_EQ(MIR_CLIENT_EFULL, k.Add("d", &no));  // window
  EXPECT_EQ(k.t.next, 2u);
  miri_cl_done d;
  ASSERT_TRUE(miri_cl_tickets_commit(&k.t, 0, reinterpret_cast<const uint8_t *>("ab"), 2, 7, &d));
  ASSERT_EQ(MIR_CLIENT_OK, k.Add("d", &no));
  EXPECT_EQ(no, 2u);
}

TEST(SdkTickets, RejectionNeedsQuorumDistinctReplicas) {
  // One rejection (or the same replica twice) leaves the ticket pending; a second replica's
  // rejection resolves it with the first rejection's status and reason. Acceptances do not
  // count against it.
  Tickets k;
  uint64_t no = 0;
  k.Add("x", &no);
  miri_cl_done d;
  EXPECT_FALSE(miri_cl_tickets_answer(&k.t, no, 0, MIR_CLIENT_TX_ACCEPTED, "", &d));
  EXPECT_FALSE(miri_cl_tickets_answer(&k.t, no, 1, MIR_CLIENT_TX_TOO_LARGE, "too big", &d));
  EXPECT_FALSE(miri_cl_tickets_answer(&k.t, no, 1, MIR_CLIENT_TX_TOO_LARGE, "too big", &d));
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, miri_cl_tickets_lookup(&k.t, no, nullptr));
  EXPECT_TRUE(miri_cl_tickets_answer(&k.t, no, 2, MIR_CLIENT_TX_INVALID, "bad", &d));
  EXPECT_EQ(d.result.status, MIR_CLIENT_EREJECTED);
  EXPECT_EQ(d.result.tx_status, MIR_CLIENT_TX_TOO_LARGE);
  EXPECT_STREQ(d.result.reason, "too big");
  mir_client_result r;
  EXPECT_EQ(MIR_CLIENT_EREJECTED, miri_cl_tickets_lookup(&k.t, no, &r));
  EXPECT_STREQ(r.reason, "too big");
  EXPECT_FALSE(miri_cl_tickets_commit(&k.t, no, reinterpret_cast<const uint8_t *>("x"), 1, 1, &d));
}

TEST(SdkTickets, CommitWithOtherDataIsEexist) {
  // The agreed log holding this tx number with the same data commits it (with its sn); with
  // other data the outcome is EEXIST.
  Tickets k;
  uint64_t a = 0, b = 0;
  k.Add("mine", &a);
  k.Add("mine too", &b);
  miri_cl_done d;
  ASSERT_TRUE(
      miri_cl_tickets_commit(&k.t, a, reinterpret_cast<const uint8_t *>("mine"), 4, 42, &d));
  EXPECT_EQ(d.result.status, MIR_CLIENT_OK);
  EXPECT_EQ(d.result.sn, 42u);
  ASSERT_TRUE(
      miri_cl_tickets_commit(&k.t, b, reinterpret_cast<const uint8_t *>("theirs"), 6, 43, &d));
  EXPECT_EQ(d.result.status, MIR_CLIENT_EEXIST);
  EXPECT_EQ(k.t.unresolved, 0u);
  EXPECT_EQ(k.t.bytes, 0u);
}

TEST(SdkTickets, CloseResolvesEveryPendingTicketOnce) {
  // resolve_oldest completes pending tickets in order, skipping resolved ones, then stops.
  Tickets k;
  uint64_t no = 0;
  for (int i = 0; i < 3; i++) k.Add("p", &no);
  miri_cl_done d;
  miri_cl_tickets_commit(&k.t, 1, reinterpret_cast<const uint8_t *>("p"), 1, 0, &d);
  std::vector<uint64_t> closed;
  while (miri_cl_tickets_resolve_oldest(&k.t, MIR_CLIENT_ESTOPPED, &d)) {
    EXPECT_EQ(d.result.status, MIR_CLIENT_ESTOPPED);
    closed.push_back(d.result.ticket);
  }
  EXPECT_EQ(closed, (std::vector<uint64_t>{0, 2}));
}

TEST(SdkTickets, OutcomesAreForgottenAfterCapNumbers) {
  // An outcome stays readable until its slot is reused cap numbers later.
  Tickets k(0, 2, 4);
  miri_cl_done d;
  for (uint64_t i = 0; i < 6; i++) {
    uint64_t no = 0;
    ASSERT_EQ(MIR_CLIENT_OK, k.Add("z", &no));
    miri_cl_tickets_commit(&k.t, no, reinterpret_cast<const uint8_t *>("z"), 1, i, &d);
  }
  EXPECT_EQ(MIR_CLIENT_ENOTFOUND, miri_cl_tickets_lookup(&k.t, 1, nullptr));
  EXPECT_EQ(MIR_CLIENT_OK, miri_cl_tickets_lookup(&k.t, 2, nullptr));
}

}  // namespace
