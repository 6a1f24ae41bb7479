// Tests of the pingpong sample: two nodes over the in-process transport exchange pings and pongs
// both ways with consecutive sequence numbers; in manual mode, the module's exact requests to the
// timer and the transport, and its handling of messages from nodes other than its peer; the
// wiring of mir_sample_add_modules.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mir/net_local.h"
#include "mir/node.h"
#include "mir/timer.h"
#include "samples.h"
#include "samples_test_util.h"

using samples_test::eventually;
using samples_test::free_sent;
using samples_test::inject;
using samples_test::inject_message;
using samples_test::inject_raw_message;
using samples_test::run_until_quiet;
using samples_test::sent_messages;

namespace {

struct Report {
  bool pong;
  std::string from;
  uint64_t seq;
};

std::vector<Report> reports(mir_collector *app) {
  std::vector<Report> out;
  size_t n = mir_collector_count(app, &samples__pingpong__report__descriptor);
  for (size_t i = 0; i < n; i++) {
    auto *r = reinterpret_cast<Samples__Pingpong__Report *>(
        mir_collector_get(app, &samples__pingpong__report__descriptor, i, nullptr));
    out.push_back({r->kind == SAMPLES__PINGPONG__REPORT__KIND__PONG, r->from, r->seq_nr});
    protobuf_c_message_free_unpacked(&r->base, nullptr);
  }
  return out;
}

// Checks that the reports of one kind are from `peer` and numbered 0, 1, 2, ... in order;
// returns how many there are.
uint64_t check_consecutive(const std::vector<Report> &rs, bool pong, const std::string &peer) {
  uint64_t next = 0;
  for (const auto &r : rs) {
    if (r.pong != pong) continue;
    EXPECT_EQ(r.from, peer);
    EXPECT_EQ(r.seq, next) << (pong ? "pong" : "ping") << " numbers are not consecutive";
    next++;
  }
  return next;
}

struct PingpongNode {
  mir_node *node = nullptr;
  mir_dsl *pp = nullptr;  // owned by node
  mir_collector *app = nullptr;
};

void make_pingpong_node(mir_local_net *net, const char *id, const char *peer, PingpongNode *n) {
  ASSERT_EQ(mir_node_new(id, nullptr, &n->node), MIR_OK);
  mir_local_transport *t;
  ASSERT_EQ(mir_local_net_transport_new(net, id, &t), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "net", &mir_local_transport_ops, t), MIR_OK);
  mir_timer *timer;
  ASSERT_EQ(mir_timer_new(nullptr, &timer), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "timer", &mir_timer_ops, timer), MIR_OK);
  ASSERT_EQ(mir_pingpong_new("pingpong", id, peer, "net", "timer", 5, "app", &n->pp), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "pingpong", &mir_dsl_ops, n->pp), MIR_OK);
  ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, &n->app), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "app", &mir_collector_ops, n->app), MIR_OK);
}

samples_test::PingpongCounts pp_stats(const PingpongNode &n) {
  return samples_test::pingpong_counts(n.pp);
}

// Both nodes send pings on their timers and answer each other's pings: each receives pings and
// pongs from the other, numbered 0, 1, 2, ... without gaps, and the counters agree.
TEST(PingpongTest, ExchangesPingsAndPongsBothWays) {
  mir_local_net *net;
  ASSERT_EQ(mir_local_net_new(nullptr, &net), MIR_OK);
  PingpongNode n[2];
  make_pingpong_node(net, "0", "1", &n[0]);
  make_pingpong_node(net, "1", "0", &n[1]);
  for (auto &x : n) ASSERT_EQ(mir_node_start(x.node), MIR_OK);
  EXPECT_TRUE(eventually(
      [&] { return pp_stats(n[0]).pongs_received >= 5 && pp_stats(n[1]).pongs_received >= 5; }));
  for (auto &x : n) EXPECT_EQ(mir_node_stop(x.node), MIR_OK) << mir_node_last_error(x.node);
  for (int i = 0; i < 2; i++) {
    auto rs = reports(n[i].app);
    std::string peer = i == 0 ? "1" : "0";
    auto s = pp_stats(n[i]);
    EXPECT_GE(s.pongs_received, 5u);
    EXPECT_EQ(check_consecutive(rs, true, peer), s.pongs_received);
    EXPECT_EQ(check_consecutive(rs, false, peer), s.pings_received);
    EXPECT_GT(s.pings_received, 0u);
    EXPECT_LE(s.pongs_received, s.pings_sent);
    EXPECT_EQ(s.dropped, 0u);
  }
  for (auto &x : n) {
    mir_node_free(x.node);
    mir_collector_free(x.app);
  }
  mir_local_net_free(net);
}

class PingpongManualTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_node_config cfg;
    mir_node_config_default(&cfg);
    cfg.mode = MIR_NODE_MANUAL;
    ASSERT_EQ(mir_node_new("0", &cfg, &node_), MIR_OK);
    for (auto *c : {&net_, &timer_, &app_})
      ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, c), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "net", &mir_collector_ops, net_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "timer", &mir_collector_ops, timer_), MIR_OK);
    ASSERT_EQ(mir_pingpong_new("pingpong", "0", "1", "net", "timer", 50, "app", &pp_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "pingpong", &mir_dsl_ops, pp_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "app", &mir_collector_ops, app_), MIR_OK);
    ASSERT_EQ(mir_node_start(node_), MIR_OK);
    run_until_quiet(node_);
  }
  void TearDown() override {
    mir_node_free(node_);
    for (auto *c : {net_, timer_, app_}) mir_collector_free(c);
  }
  samples_test::PingpongCounts stats() { return samples_test::pingpong_counts(pp_); }
  mir_node *node_ = nullptr;
  mir_dsl *pp_ = nullptr;
  mir_collector *net_ = nullptr, *timer_ = nullptr, *app_ = nullptr;
};

// On Init the module asks the timer to repeat a PingTime to itself every period, forever.
TEST_F(PingpongManualTest, InitAsksForARepeatingPingTime) {
  ASSERT_EQ(mir_collector_count(timer_, &mir__timer_repeat__descriptor), 1u);
  auto *tr = reinterpret_cast<Mir__TimerRepeat *>(
      mir_collector_get(timer_, &mir__timer_repeat__descriptor, 0, nullptr));
  EXPECT_EQ(tr->period_ms, 50u);
  EXPECT_EQ(tr->retention_index, 0u);
  ASSERT_EQ(tr->n_events, 1u);
  EXPECT_STREQ(tr->events[0]->dest, "pingpong");
  EXPECT_STREQ(tr->events[0]->type, "samples.pingpong.PingTime");
  protobuf_c_message_free_unpacked(&tr->base, nullptr);
}

// Each PingTime sends the next Ping, numbered from 0, to the peer's pingpong module.
TEST_F(PingpongManualTest, PingTimeSendsNumberedPings) {
  for (int i = 0; i < 3; i++) {
    auto *tick = static_cast<Samples__Pingpong__PingTime *>(
        mir_xmalloc(sizeof(Samples__Pingpong__PingTime)));
    samples__pingpong__ping_time__init(tick);
    inject(node_, mir_event_new("pingpong", "timer", &tick->base));
  }
  run_until_quiet(node_);
  auto sent = sent_messages(net_);
  ASSERT_EQ(sent.size(), 3u);
  for (uint64_t i = 0; i < 3; i++) {
    EXPECT_EQ(sent[i].dests, std::vector<std::string>{"1"});
    EXPECT_EQ(sent[i].remote_module, "pingpong");
    ASSERT_EQ(sent[i].msg->descriptor, &samples__pingpong__ping__descriptor);
    EXPECT_EQ(reinterpret_cast<Samples__Pingpong__Ping *>(sent[i].msg)->seq_nr, i);
  }
  free_sent(&sent);
  EXPECT_EQ(stats().pings_sent, 3u);
}

// A Ping from the peer is answered with a Pong of the same number and reported; a Pong is
// reported.
TEST_F(PingpongManualTest, AnswersThePeersPing) {
  Samples__Pingpong__Ping ping = SAMPLES__PINGPONG__PING__INIT;
  ping.seq_nr = 7;
  inject_message(node_, "1", "pingpong", &ping.base);
  Samples__Pingpong__Pong pong = SAMPLES__PINGPONG__PONG__INIT;
  pong.seq_nr = 4;
  inject_message(node_, "1", "pingpong", &pong.base);
  run_until_quiet(node_);
  auto sent = sent_messages(net_);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dests, std::vector<std::string>{"1"});
  ASSERT_EQ(sent[0].msg->descriptor, &samples__pingpong__pong__descriptor);
  EXPECT_EQ(reinterpret_cast<Samples__Pingpong__Pong *>(sent[0].msg)->seq_nr, 7u);
  free_sent(&sent);
  auto rs = reports(app_);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_FALSE(rs[0].pong);
  EXPECT_EQ(rs[0].seq, 7u);
  EXPECT_TRUE(rs[1].pong);
  EXPECT_EQ(rs[1].seq, 4u);
  EXPECT_EQ(stats().pings_received, 1u);
  EXPECT_EQ(stats().pongs_received, 1u);
}

// Pings and Pongs from a node other than the peer, and undecodable bytes, are dropped: no answer,
// no report, and the node keeps running.
TEST_F(PingpongManualTest, DropsMessagesFromStrangersAndGarbage) {
  Samples__Pingpong__Ping ping = SAMPLES__PINGPONG__PING__INIT;
  inject_message(node_, "5", "pingpong", &ping.base);
  Samples__Pingpong__Pong pong = SAMPLES__PINGPONG__PONG__INIT;
  inject_message(node_, "0", "pingpong", &pong.base);
  inject_raw_message(node_, "1", "pingpong", "samples.pingpong.Ping", "\xff\xff\xff");
  run_until_quiet(node_);
  EXPECT_EQ(mir_collector_count(net_, nullptr), 0u);
  EXPECT_EQ(mir_collector_count(app_, nullptr), 0u);
  EXPECT_EQ(stats().dropped, 2u);
  // The runtime's count, as the node's registry reports it under the module.
  EXPECT_EQ(mir_metrics_read_child(mir_node_metrics(node_), "pingpong",
                                   "mir_dsl_messages_dropped_total", "undecodable"),
            1);
  EXPECT_EQ(mir_node_wait(node_, 1), MIR_ETIMEDOUT);  // still running
}

// The constructor rejects bad ids and a zero period.
TEST(PingpongTest, ConstructorValidatesItsArguments) {
  mir_dsl *d = nullptr;
  EXPECT_EQ(mir_pingpong_new("bad//id", "0", "1", "net", "timer", 10, nullptr, &d), MIR_EINVAL);
  EXPECT_EQ(mir_pingpong_new("pp", "0", "0", "net", "timer", 10, nullptr, &d), MIR_EINVAL);
  EXPECT_EQ(mir_pingpong_new("pp", "", "1", "net", "timer", 10, nullptr, &d), MIR_EINVAL);
  EXPECT_EQ(mir_pingpong_new("pp", "0", "1", "net", "timer", 0, nullptr, &d), MIR_EINVAL);
  EXPECT_EQ(mir_pingpong_new("pp", "0", "1", "net", "timer", 10, "a//b", &d), MIR_EINVAL);
  ASSERT_EQ(mir_pingpong_new("pp", "0", "1", "net", "timer", 10, nullptr, &d), MIR_OK);
  mir_dsl_free(d);
}

// mir_sample_add_modules adds exactly the protocol modules of a sample for a known node id and
// refuses unknown samples and node ids.
TEST(SamplesTest, AddModulesWiresTheProtocolModules) {
  struct Case {
    const char *sample, *node_id;
    mir_err err;
    std::vector<std::string> modules;
  };
  const std::vector<Case> cases = {
      {"pingpong", "0", MIR_OK, {"pingpong"}},
      {"pingpong", "1", MIR_OK, {"pingpong"}},
      {"pingpong", "2", MIR_EINVAL, {}},
      {"bcb", "3", MIR_OK, {"crypto", "bcb"}},
      {"bcb", "4", MIR_EINVAL, {}},
      {"nope", "0", MIR_ENOTFOUND, {}},
  };
  for (const auto &c : cases) {
    mir_node *node;
    ASSERT_EQ(mir_node_new(c.node_id, nullptr, &node), MIR_OK);
    EXPECT_EQ(mir_sample_add_modules(node, c.sample, c.node_id), c.err) << c.sample << c.node_id;
    std::vector<std::string> got;
    for (size_t i = 0; i < mir_node_module_count(node); i++)
      got.push_back(mir_node_module_id(node, i));
    EXPECT_EQ(got, c.modules) << c.sample << " " << c.node_id;
    mir_node_free(node);
  }
}

}  // namespace
