// Tests of the timer module: delays fire after their delay and in deadline order, repeats fire
// until garbage-collected, stopping with pending timers frees them, and bad input is an error.
// Timing checks are lower bounds only (a timer must never fire early); waits are generous.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/node.h"
#include "mir/registry.h"
#include "mir/timer.h"
}

namespace {

constexpr auto kWait = std::chrono::seconds(20);

// A passive module that records the TestUint64 values it gets and when.
struct Sink {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> values;
  std::vector<uint64_t> at_ns;

  size_t Count(uint64_t v) {
    std::lock_guard<std::mutex> g(mu);
    size_t n = 0;
    for (uint64_t x : values) n += x == v;
    return n;
  }
  // Waits until pred(values) holds; false on timeout.
  template <class Pred>
  bool WaitFor(Pred pred) {
    std::unique_lock<std::mutex> g(mu);
    return cv.wait_for(g, kWait, [&] { return pred(values); });
  }
};

mir_err sink_apply(void *state, mir_event_list *in, mir_event_list *) {
  auto *s = static_cast<Sink *>(state);
  std::lock_guard<std::mutex> g(s->mu);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (!mir_event_is(ev, &mir__test_uint64__descriptor)) continue;
    s->values.push_back(reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value);
    s->at_ns.push_back(mir_now_ns());
  }
  s->cv.notify_all();
  return MIR_OK;
}

// The sink belongs to the test, so the node gets no destroy function for it.
const mir_module_ops sink_ops = {
    "sink", MIR_MODULE_PASSIVE, sink_apply, nullptr, nullptr, nullptr, false, nullptr};

// A list of TestUint64 events for the sink, one per value.
mir_event_list to_sink(std::vector<uint64_t> values) {
  mir_event_list l = MIR_EVENT_LIST_INIT;
  for (uint64_t v : values) mir_event_list_push(&l, mir_event_test_uint64("sink", "test", v));
  return l;
}

mir_event *delay(std::vector<uint64_t> values, uint64_t ms) {
  mir_event_list l = to_sink(values);
  return mir_event_timer_delay("timer", "test", &l, ms);
}

mir_event *repeat(std::vector<uint64_t> values, uint64_t ms, uint64_t retention) {
  mir_event_list l = to_sink(values);
  return mir_event_timer_repeat("timer", "test", &l, ms, retention);
}

class TimerNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    ASSERT_EQ(mir_timer_new(nullptr, &timer_), MIR_OK);
    ASSERT_EQ(mir_node_new("n0", nullptr, &node_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "timer", &mir_timer_ops, timer_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "sink", &sink_ops, &sink_), MIR_OK);
    ASSERT_EQ(mir_node_start(node_), MIR_OK);
  }
  void TearDown() override { mir_node_free(node_); }

  void Inject(std::vector<mir_event *> evs) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    for (mir_event *ev : evs) mir_event_list_push(&l, ev);
    ASSERT_EQ(mir_node_inject(node_, &l), MIR_OK);
  }

  // Polls the timer's pending count until it equals n; false on timeout.
  bool WaitPending(size_t n) {
    auto end = std::chrono::steady_clock::now() + kWait;
    while (mir_timer_pending(timer_) != n) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

  Sink sink_;
  mir_timer *timer_ = nullptr;  // owned by the node
  mir_node *node_ = nullptr;
};

TEST_F(TimerNodeTest, DelayFiresOnceAfterTheDelay) {
  // The nested events arrive, in order, no earlier than the delay after they were requested.
  uint64_t t0 = mir_now_ns();
  Inject({delay({1, 2}, 50)});
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) { return v.size() >= 2; }));
  std::lock_guard<std::mutex> g(sink_.mu);
  EXPECT_EQ(sink_.values, (std::vector<uint64_t>{1, 2}));
  EXPECT_GE(sink_.at_ns[0] - t0, 50u * 1000 * 1000);
  EXPECT_EQ(mir_timer_pending(timer_), 0u);
}

TEST_F(TimerNodeTest, DelaysFireInDeadlineOrder) {
  // A shorter delay set after a longer one fires first: the timer orders by deadline.
  Inject({delay({1}, 300), delay({2}, 0)});
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) { return v.size() >= 2; }));
  std::lock_guard<std::mutex> g(sink_.mu);
  EXPECT_EQ(sink_.values, (std::vector<uint64_t>{2, 1}));
}

TEST_F(TimerNodeTest, RepeatFiresUntilGarbageCollected) {
  // A repeat fires again and again, survives a collection at its own index, and stops for good
  // once the timer's retention index passes it.
  uint64_t t0 = mir_now_ns();
  Inject({repeat({7}, 10, 3)});
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) { return v.size() >= 3; }));
  {
    std::lock_guard<std::mutex> g(sink_.mu);
    EXPECT_GE(sink_.at_ns[0] - t0, 10u * 1000 * 1000);  // first one after a full period
  }

  // GarbageCollect(3) keeps the repeat (index 3 is not below 3). A marker sent through the timer
  // after it, then two more repetitions, prove it kept running.
  Inject({mir_event_garbage_collect("timer", "test", 3), delay({1000}, 0)});
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) {
    size_t after = 0;
    bool seen = false;
    for (uint64_t x : v) {
      if (seen && x == 7) after++;
      seen = seen || x == 1000;
    }
    return after >= 2;
  }));

  Inject({mir_event_garbage_collect("timer", "test", 4)});
  ASSERT_TRUE(WaitPending(0));
  // Repetitions pushed before the collection may still be on their way: the timer's thread
  // pushes in order, so once a marker sent now arrives, nothing older is left in flight.
  Inject({delay({2000}, 0)});
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) {
    for (uint64_t x : v) {
      if (x == 2000) return true;
    }
    return false;
  }));
  size_t fired = sink_.Count(7);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // twenty periods
  EXPECT_EQ(sink_.Count(7), fired);
  EXPECT_EQ(mir_timer_pending(timer_), 0u);
}

TEST_F(TimerNodeTest, StopWithPendingTimersFreesThem) {
  // Stopping the node while timers are pending (and a fast repeat is pushing) joins the thread
  // and frees every pending timer; AddressSanitizer reports any leak.
  Inject({delay({1}, 3600 * 1000), repeat({2}, 3600 * 1000, 0), repeat({3}, 1, 0)});
  ASSERT_TRUE(WaitPending(3));
  ASSERT_TRUE(sink_.WaitFor([](const std::vector<uint64_t> &v) { return v.size() >= 2; }));
  EXPECT_EQ(mir_node_stop(node_), MIR_OK);
  EXPECT_EQ(mir_timer_pending(timer_), 3u);
}

// Applies one event (takes ownership) straight to the timer, without a node or thread.
mir_err apply_one(mir_timer *t, mir_event *ev) {
  mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, ev);
  mir_err err = mir_timer_ops.apply(t, &in, &out);
  EXPECT_EQ(out.len, 0u);  // the timer's output only ever goes through the inbox
  mir_event_list_free(&in);
  mir_event_list_free(&out);
  return err;
}

TEST(TimerApplyTest, BadInputIsAnError) {
  // Unknown event types, a zero period, an over-long delay and a nested event of an unknown type
  // are errors with a detail; Init is accepted.
  mir_registry_add_framework();
  mir_timer *t = nullptr;
  ASSERT_EQ(mir_timer_new(nullptr, &t), MIR_OK);
  EXPECT_EQ(apply_one(t, mir_event_init("timer")), MIR_OK);
  EXPECT_EQ(apply_one(t, mir_event_test_string("timer", "t", "x")), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("mir.TestString"), std::string::npos);
  EXPECT_EQ(apply_one(t, repeat({1}, 0, 0)), MIR_EINVAL);
  EXPECT_EQ(apply_one(t, delay({1}, MIR_TIMER_DURATION_MS_MAX + 1)), MIR_EINVAL);

  mir_event *ev = delay({1, 2}, 10);
  auto *d = reinterpret_cast<Mir__TimerDelay *>(ev->payload);
  free(d->events[1]->type);
  d->events[1]->type = mir_xstrdup("nope.Unknown");
  EXPECT_EQ(apply_one(t, ev), MIR_ENOTFOUND);
  EXPECT_EQ(mir_timer_pending(t), 0u);
  mir_timer_free(t);
}

TEST(TimerApplyTest, PendingTimersAreBounded) {
  // Past pending_max, a new timer is refused with MIR_EFULL and a clear message.
  mir_registry_add_framework();
  mir_timer_params p = {2};
  mir_timer *t = nullptr;
  ASSERT_EQ(mir_timer_new(&p, &t), MIR_OK);
  EXPECT_EQ(apply_one(t, delay({1}, 1000)), MIR_OK);
  EXPECT_EQ(apply_one(t, repeat({2}, 1000, 0)), MIR_OK);
  EXPECT_EQ(apply_one(t, delay({3}, 1000)), MIR_EFULL);
  EXPECT_NE(std::string(mir_error_detail()).find("pending timers"), std::string::npos);
  EXPECT_EQ(mir_timer_pending(t), 2u);
  mir_timer_free(t);
}

TEST(TimerApplyTest, GarbageCollectCancelsOnlyOlderRepeats) {
  // GarbageCollect(r) frees the repeats below r at once, keeps delays and newer repeats, never
  // lowers the index, and a later repeat below the index is not even recorded.
  mir_registry_add_framework();
  mir_timer *t = nullptr;
  ASSERT_EQ(mir_timer_new(nullptr, &t), MIR_OK);
  EXPECT_EQ(apply_one(t, repeat({1}, 1000, 1)), MIR_OK);
  EXPECT_EQ(apply_one(t, repeat({2}, 1000, 2)), MIR_OK);
  EXPECT_EQ(apply_one(t, repeat({3}, 1000, 5)), MIR_OK);
  EXPECT_EQ(apply_one(t, delay({4}, 1000)), MIR_OK);
  EXPECT_EQ(apply_one(t, mir_event_garbage_collect("timer", "t", 3)), MIR_OK);
  EXPECT_EQ(mir_timer_pending(t), 2u);
  EXPECT_EQ(apply_one(t, mir_event_garbage_collect("timer", "t", 1)), MIR_OK);
  EXPECT_EQ(apply_one(t, repeat({5}, 1000, 2)), MIR_OK);
  EXPECT_EQ(mir_timer_pending(t), 2u);
  EXPECT_EQ(apply_one(t, repeat({6}, 1000, 3)), MIR_OK);
  EXPECT_EQ(mir_timer_pending(t), 3u);
  mir_timer_free(t);
}

}  // namespace
