// Tests of the in-process transport (mir/net_local.h): per-pair FIFO order, self delivery,
// drops (unknown or stopped destination, full queue, malformed request) with their counters,
// queuing before start, wiring errors, and clean stop under load.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "mir/alloc.h"
#include "mir/net_local.h"
#include "mir/node.h"
#include "samples.h"
#include "samples_test_util.h"

using samples_test::eventually;
using samples_test::inject;

namespace {

// A node with two modules: "net" (the local transport) and "app" (a collector).
struct Peer {
  mir_node *node = nullptr;
  mir_local_transport *net = nullptr;  // owned by node
  mir_collector *app = nullptr;
};

void make_peer(mir_local_net *net, const char *id, Peer *p) {
  ASSERT_EQ(mir_node_new(id, nullptr, &p->node), MIR_OK);
  ASSERT_EQ(mir_local_net_transport_new(net, id, &p->net), MIR_OK);
  ASSERT_EQ(mir_node_add_module(p->node, "net", &mir_local_transport_ops, p->net), MIR_OK);
  ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, &p->app), MIR_OK);
  ASSERT_EQ(mir_node_add_module(p->node, "app", &mir_collector_ops, p->app), MIR_OK);
}

void free_peer(Peer *p) {
  mir_node_free(p->node);
  mir_collector_free(p->app);
  *p = Peer{};
}

// Asks p's transport to send TestUint64{value} to module "app" on each node of dests.
mir_event *send_u64(const std::vector<const char *> &dests, uint64_t value) {
  Mir__TestUint64 v = MIR__TEST_UINT64__INIT;
  v.value = value;
  return mir_event_send_message("net", "test", dests.data(), dests.size(), "app", &v.base);
}

// The messages p's collector received, in order, as (from, value).
std::vector<std::pair<std::string, uint64_t>> received(const Peer &p) {
  std::vector<std::pair<std::string, uint64_t>> out;
  size_t n = mir_collector_count(p.app, &mir__message_received__descriptor);
  for (size_t i = 0; i < n; i++) {
    auto *mr = reinterpret_cast<Mir__MessageReceived *>(
        mir_collector_get(p.app, &mir__message_received__descriptor, i, nullptr));
    ProtobufCMessage *m = nullptr;
    EXPECT_EQ(mir_message_unpack(mr->msg, 0, &m), MIR_OK);
    EXPECT_STREQ(mr->msg->dest_module, "app");
    out.emplace_back(mr->from, reinterpret_cast<Mir__TestUint64 *>(m)->value);
    protobuf_c_message_free_unpacked(m, nullptr);
    protobuf_c_message_free_unpacked(&mr->base, nullptr);
  }
  return out;
}

// A transport's metrics, read from its set in the registry.
struct LocalStats {
  uint64_t sent, dropped_unknown, dropped_stopped, dropped_full, dropped_invalid, delivered;
  uint64_t dropped_at_stop, queued, queued_max;
};
LocalStats stats_of(mir_local_transport *t) {
  const mir_metrics *m = mir_local_transport_ops.metrics(t);
  auto rd = [m](const char *name, const char *value = nullptr) {
    return static_cast<uint64_t>(mir_metrics_read(m, name, value));
  };
  const char *drops = "mir_net_messages_dropped_total";
  return LocalStats{rd("mir_net_messages_sent_total"),
                    rd(drops, "unknown_destination"),
                    rd(drops, "stopped"),
                    rd(drops, "queue_full"),
                    rd(drops, "invalid"),
                    rd("mir_net_messages_received_total"),
                    rd(drops, "at_stop"),
                    rd("mir_net_queue_depth"),
                    rd("mir_net_queue_depth_max")};
}
LocalStats stats_of(const Peer &p) {
  return stats_of(p.net);
}

class NetLocalTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(mir_local_net_new(nullptr, &net_), MIR_OK); }
  void TearDown() override {
    for (auto &p : peers_) free_peer(&p);
    mir_local_net_free(net_);
  }
  Peer &peer(const char *id) {
    peers_.emplace_back();
    make_peer(net_, id, &peers_.back());
    return peers_.back();
  }
  mir_local_net *net_ = nullptr;
  std::vector<Peer> peers_;
};

// Two senders each send thousands of messages to one receiver; each sender's messages arrive
// complete and in the order they were sent.
TEST_F(NetLocalTest, PerPairFifoOverManyMessages) {
  const uint64_t kPerSender = 3000;
  peers_.reserve(3);
  Peer &a = peer("a"), &b = peer("b"), &c = peer("c");
  for (Peer *p : {&a, &b, &c}) ASSERT_EQ(mir_node_start(p->node), MIR_OK);
  for (uint64_t i = 0; i < kPerSender; i++) {
    inject(a.node, send_u64({"b"}, i));
    inject(c.node, send_u64({"b"}, i));
  }
  ASSERT_TRUE(mir_collector_wait(b.app, &mir__message_received__descriptor, 2 * kPerSender, 30000));
  std::map<std::string, uint64_t> next;
  for (const auto &[from, value] : received(b)) {
    ASSERT_TRUE(from == "a" || from == "c") << from;
    ASSERT_EQ(value, next[from]) << "out of order from " << from;
    next[from]++;
  }
  EXPECT_EQ(next["a"], kPerSender);
  EXPECT_EQ(next["c"], kPerSender);
  EXPECT_EQ(stats_of(a).sent, kPerSender);
  EXPECT_EQ(stats_of(c).sent, kPerSender);
  // The delivery thread counts a batch after pushing it, so the counter may trail the collector.
  EXPECT_TRUE(eventually([&] { return stats_of(b).delivered == 2 * kPerSender; }));
}

// A node's messages to itself arrive through its own queue, marked as from itself, together with
// the copies for other destinations of the same request.
TEST_F(NetLocalTest, SelfDelivery) {
  peers_.reserve(2);
  Peer &a = peer("a"), &b = peer("b");
  for (Peer *p : {&a, &b}) ASSERT_EQ(mir_node_start(p->node), MIR_OK);
  inject(a.node, send_u64({"a", "b"}, 42));
  ASSERT_TRUE(mir_collector_wait(a.app, &mir__message_received__descriptor, 1, 20000));
  ASSERT_TRUE(mir_collector_wait(b.app, &mir__message_received__descriptor, 1, 20000));
  auto ra = received(a), rb = received(b);
  ASSERT_EQ(ra.size(), 1u);
  EXPECT_EQ(ra[0], std::make_pair(std::string("a"), uint64_t{42}));
  EXPECT_EQ(rb[0], std::make_pair(std::string("a"), uint64_t{42}));
  EXPECT_EQ(stats_of(a).sent, 2u);
  EXPECT_TRUE(eventually([&] { return stats_of(a).delivered == 1; }));
}

// apply() only queues, even for the sending node itself: nothing is emitted synchronously, the
// message waits in the queue of a transport that has not started, and freeing the transport
// drops it with a count.
TEST_F(NetLocalTest, SelfMessageIsQueuedNotEmittedByApply) {
  mir_local_transport *t;
  ASSERT_EQ(mir_local_net_transport_new(net_, "solo", &t), MIR_OK);
  mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, send_u64({"solo"}, 1));
  ASSERT_EQ(mir_local_transport_ops.apply(t, &in, &out), MIR_OK);
  EXPECT_EQ(out.len, 0u);
  LocalStats s = stats_of(t);
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(s.queued, 1u);
  mir_event_list_free(&in);
  mir_local_transport_free(t);
}

// A message to a node that is not attached is dropped and counted, and the sender goes on.
TEST_F(NetLocalTest, UnknownDestinationIsDroppedAndCounted) {
  peers_.reserve(2);
  Peer &a = peer("a"), &b = peer("b");
  for (Peer *p : {&a, &b}) ASSERT_EQ(mir_node_start(p->node), MIR_OK);
  inject(a.node, send_u64({"nobody"}, 1));
  inject(a.node, send_u64({"b"}, 2));
  ASSERT_TRUE(mir_collector_wait(b.app, &mir__message_received__descriptor, 1, 20000));
  EXPECT_EQ(received(b)[0].second, 2u);
  auto s = stats_of(a);
  EXPECT_EQ(s.dropped_unknown, 1u);
  EXPECT_EQ(s.sent, 1u);
  EXPECT_EQ(mir_node_wait(a.node, 1), MIR_ETIMEDOUT);  // still running
}

// A request naming an invalid destination module is dropped and counted, never asserted on.
TEST_F(NetLocalTest, MalformedRequestIsDroppedAndCounted) {
  peers_.reserve(1);
  Peer &a = peer("a");
  ASSERT_EQ(mir_node_start(a.node), MIR_OK);
  Mir__TestUint64 v = MIR__TEST_UINT64__INIT;
  const char *dests[] = {"a", "a"};
  inject(a.node, mir_event_send_message("net", "test", dests, 2, "bad//module", &v.base));
  inject(a.node, send_u64({"a"}, 3));
  ASSERT_TRUE(mir_collector_wait(a.app, &mir__message_received__descriptor, 1, 20000));
  EXPECT_EQ(stats_of(a).dropped_invalid, 2u);
  EXPECT_EQ(received(a)[0].second, 3u);
}

// Messages to a node whose transport stopped are dropped and counted.
TEST_F(NetLocalTest, StoppedDestinationIsDroppedAndCounted) {
  peers_.reserve(2);
  Peer &a = peer("a"), &b = peer("b");
  for (Peer *p : {&a, &b}) ASSERT_EQ(mir_node_start(p->node), MIR_OK);
  ASSERT_EQ(mir_node_stop(b.node), MIR_OK);
  inject(a.node, send_u64({"b"}, 1));
  ASSERT_TRUE(eventually([&] { return stats_of(a).dropped_stopped == 1; }));
  EXPECT_EQ(stats_of(a).sent, 0u);
  EXPECT_EQ(mir_collector_count(b.app, &mir__message_received__descriptor), 0u);
}

// Messages to a node that is attached but not started wait for it, up to the queue bound; the
// rest are dropped and counted; after the start the queued ones arrive in order.
TEST_F(NetLocalTest, QueueBoundAndDeliveryAfterStart) {
  mir_local_net_free(net_);
  mir_local_net_params params = {10};
  ASSERT_EQ(mir_local_net_new(&params, &net_), MIR_OK);
  peers_.reserve(2);
  Peer &a = peer("a"), &b = peer("b");
  ASSERT_EQ(mir_node_start(a.node), MIR_OK);
  for (uint64_t i = 0; i < 15; i++) inject(a.node, send_u64({"b"}, i));
  ASSERT_TRUE(eventually([&] { return stats_of(a).sent + stats_of(a).dropped_full == 15; }));
  EXPECT_EQ(stats_of(a).sent, 10u);
  EXPECT_EQ(stats_of(a).dropped_full, 5u);
  EXPECT_EQ(stats_of(b).queued, 10u);
  ASSERT_EQ(mir_node_start(b.node), MIR_OK);
  ASSERT_TRUE(mir_collector_wait(b.app, &mir__message_received__descriptor, 10, 20000));
  auto r = received(b);
  for (uint64_t i = 0; i < 10; i++) EXPECT_EQ(r[i].second, i);
  EXPECT_EQ(stats_of(b).queued_max, 10u);
}

// Anything but Init and SendMessage is a wiring error that stops the node with a message.
TEST_F(NetLocalTest, UnexpectedEventStopsTheNode) {
  peers_.reserve(1);
  Peer &a = peer("a");
  ASSERT_EQ(mir_node_start(a.node), MIR_OK);
  inject(a.node, mir_event_test_string("net", "test", "hello"));
  EXPECT_EQ(mir_node_wait(a.node, 20000), MIR_EINVAL);
  EXPECT_NE(std::string(mir_node_last_error(a.node)).find("unexpected event"), std::string::npos);
}

// A node id can be attached once, and must be a non-empty bounded string.
TEST_F(NetLocalTest, AttachRules) {
  mir_local_transport *t1 = nullptr, *t2 = nullptr;
  ASSERT_EQ(mir_local_net_transport_new(net_, "x", &t1), MIR_OK);
  EXPECT_EQ(mir_local_net_transport_new(net_, "x", &t2), MIR_EEXIST);
  EXPECT_EQ(mir_local_net_transport_new(net_, "", &t2), MIR_EINVAL);
  std::string long_id(MIR_MODULE_ID_MAX, 'x');
  EXPECT_EQ(mir_local_net_transport_new(net_, long_id.c_str(), &t2), MIR_EINVAL);
  mir_local_transport_free(t1);
  // Detached: the id can be used again.
  ASSERT_EQ(mir_local_net_transport_new(net_, "x", &t2), MIR_OK);
  mir_local_transport_free(t2);
}

// Stopping a receiver while a sender keeps sending loses nothing silently: every message the
// sender queued was either delivered into the receiver's inbox or counted as dropped at stop.
TEST_F(NetLocalTest, StopUnderLoadAccountsForEveryMessage) {
  peers_.reserve(2);
  Peer &a = peer("a"), &b = peer("b");
  for (Peer *p : {&a, &b}) ASSERT_EQ(mir_node_start(p->node), MIR_OK);
  for (uint64_t i = 0; i < 2000; i++) inject(a.node, send_u64({"b"}, i));
  ASSERT_TRUE(mir_collector_wait(b.app, &mir__message_received__descriptor, 1, 20000));
  ASSERT_EQ(mir_node_stop(b.node), MIR_OK);
  ASSERT_TRUE(eventually([&] {
    auto s = stats_of(a);
    return s.sent + s.dropped_stopped == 2000;
  }));
  ASSERT_EQ(mir_node_stop(a.node), MIR_OK);
  auto sa = stats_of(a), sb = stats_of(b);
  EXPECT_EQ(sa.sent + sa.dropped_stopped, 2000u);
  EXPECT_EQ(sa.sent, sb.delivered + sb.dropped_at_stop);
  EXPECT_EQ(sb.queued, 0u);
}

}  // namespace
