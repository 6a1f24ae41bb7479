// Tests of submission batching (sdk/src/batch.h): when a batch leaves (count, bytes, delay), what
// it holds, and the queue bound.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "batch.h"
}

namespace {

struct Fixture {
  Fixture() {
    EXPECT_EQ(0, miri_cl_tickets_init(&t, 0, 16, 64, 1 << 20, 2));
    EXPECT_EQ(0, miri_cl_queue_init(&q, 16));
  }
  ~Fixture() {
    miri_cl_queue_fini(&q);
    miri_cl_tickets_fini(&t);
  }
  uint64_t Add(size_t len, int64_t now) {
    std::string s(len, 'd');
    uint64_t no = 0;
    EXPECT_EQ(MIR_CLIENT_OK, miri_cl_tickets_add(&t, s.data(), len, now, nullptr, nullptr, &no));
    EXPECT_TRUE(miri_cl_queue_push(&q, no, len, now));
    return no;
  }
  miri_cl_tickets t;
  miri_cl_queue q;
  miri_cl_batch_limits l{3, 100, 1000};
};

TEST(SdkBatch, LeavesByCountBytesOrDelay) {
  // A batch is due when it has max_txs transactions, max_bytes bytes, or its oldest waited
  // delay_ns; otherwise it waits, and its deadline is oldest + delay.
  Fixture f;
  EXPECT_FALSE(miri_cl_batch_due(&f.q, &f.l, 0));
  f.Add(10, 5);
  f.Add(10, 6);
  EXPECT_FALSE(miri_cl_batch_due(&f.q, &f.l, 500));
  EXPECT_EQ(miri_cl_batch_deadline(&f.q, &f.l), 1005);
  EXPECT_TRUE(miri_cl_batch_due(&f.q, &f.l, 1005));
  f.Add(10, 7);
  EXPECT_TRUE(miri_cl_batch_due(&f.q, &f.l, 7));  // count
  Fixture g;
  g.Add(100, 0);
  EXPECT_TRUE(miri_cl_batch_due(&g.q, &g.l, 0));  // bytes
}

TEST(SdkBatch, TakeRespectsTheLimitsAndSkipsResolved) {
  // take returns at most max_txs numbers and at most max_bytes bytes (but always one), in
  // order, dropping numbers resolved while queued.
  Fixture f;
  uint64_t a = f.Add(60, 0), b = f.Add(60, 0), c = f.Add(10, 0), d = f.Add(10, 0);
  (void)a;
  miri_cl_done done;
  std::string data(10, 'd');
  ASSERT_TRUE(miri_cl_tickets_commit(&f.t, c, reinterpret_cast<const uint8_t *>(data.data()), 10, 0,
                                     &done));
  uint64_t out[3];
  ASSERT_EQ(1u, miri_cl_batch_take(&f.q, &f.t, &f.l, out));  // 60 + 60 > 100
  EXPECT_EQ(out[0], a);
  ASSERT_EQ(2u, miri_cl_batch_take(&f.q, &f.t, &f.l, out));
  EXPECT_EQ(out[0], b);
  EXPECT_EQ(out[1], d);  // c was resolved
  EXPECT_EQ(0u, miri_cl_batch_take(&f.q, &f.t, &f.l, out));
  Fixture g;
  g.Add(500, 0);
  EXPECT_EQ(1u, miri_cl_batch_take(&g.q, &g.t, &g.l, out));  // one oversized still leaves
}

TEST(SdkBatch, TheQueueIsBounded) {
  // A queue of capacity 16 refuses a 17th number.
  Fixture f;
  for (uint64_t i = 0; i < 16; i++) EXPECT_TRUE(miri_cl_queue_push(&f.q, i, 1, 0));
  EXPECT_FALSE(miri_cl_queue_push(&f.q, 16, 1, 0));
  miri_cl_queue_clear(&f.q);
  EXPECT_TRUE(miri_cl_queue_push(&f.q, 16, 1, 0));
}

}  // namespace
