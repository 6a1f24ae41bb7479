// Tests of the node loop: Init delivery, routing, FIFO order, batching, backpressure, errors,
// stopping, debug and manual modes, statistics.
#include <gtest/gtest.h>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/node.h"
}

namespace {

// Node n's metric called name (label value, or any), summed over its registry.
uint64_t node_read(mir_node *n, const char *name, const char *value = nullptr) {
  return static_cast<uint64_t>(mir_metrics_read(mir_node_metrics(n), name, value));
}

// The node loop's metric called name for module `module` of n.
uint64_t module_read(mir_node *n, const char *module, const char *name) {
  return static_cast<uint64_t>(mir_metrics_read_child(mir_node_metrics(n), module, name, nullptr));
}

// A passive module whose behaviour is a C++ callback; records what it saw.
struct Probe {
  std::string id;
  std::vector<std::string> types;  // payload type of every event applied, in order
  std::vector<std::string> dests;
  std::vector<uint64_t> values;  // TestUint64 values, in order
  size_t max_batch_seen = 0;
  size_t batches = 0;
  std::function<mir_err(Probe *, mir_event_list *, mir_event_list *)> on_batch;
};

mir_err probe_apply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *p = static_cast<Probe *>(state);
  p->batches++;
  if (in->len > p->max_batch_seen) p->max_batch_seen = in->len;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    p->types.push_back(mir_event_type_name(ev));
    p->dests.push_back(ev->dest);
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      p->values.push_back(reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value);
    }
  }
  return p->on_batch ? p->on_batch(p, in, out) : MIR_OK;
}

const mir_module_ops probe_ops = {
    "probe", MIR_MODULE_PASSIVE, probe_apply, nullptr, nullptr, nullptr, false, nullptr};

// An active module whose thread pushes `lists` lists of `per_list` TestUint64 events to `dest`.
struct Producer {
  std::string dest;
  size_t lists = 0;
  size_t per_list = 0;
  mir_inbox *inbox = nullptr;
  pthread_t thread{};
  bool started = false;
  std::atomic<size_t> pushed{0};
  std::atomic<int> last_err{MIR_OK};
};

void *producer_main(void *arg) {
  auto *p = static_cast<Producer *>(arg);
  uint64_t next = 0;
  for (size_t l = 0; l < p->lists; l++) {
    mir_event_list list = MIR_EVENT_LIST_INIT;
    for (size_t i = 0; i < p->per_list; i++) {
      mir_event_list_push(&list, mir_event_test_uint64(p->dest.c_str(), "producer", next++));
    }
    mir_err err = mir_inbox_push(p->inbox, &list);
    if (err != MIR_OK) {
      p->last_err = err;
      return nullptr;
    }
    p->pushed += p->per_list;
  }
  return nullptr;
}

mir_err producer_apply(void *, mir_event_list *, mir_event_list *) {
  return MIR_OK;
}
mir_err producer_start(void *state, mir_inbox *inbox) {
  auto *p = static_cast<Producer *>(state);
  p->inbox = inbox;
  p->started = pthread_create(&p->thread, nullptr, producer_main, p) == 0;
  return p->started ? MIR_OK : MIR_ENOMEM;
}
void producer_stop(void *state) {
  auto *p = static_cast<Producer *>(state);
  if (p->started) pthread_join(p->thread, nullptr);
  p->started = false;
}
const mir_module_ops producer_ops = {
    "producer",    MIR_MODULE_ACTIVE, producer_apply, producer_start,
    producer_stop, nullptr,           false,          nullptr};

mir_node *new_node(mir_node_mode mode, size_t max_batch = 512, size_t pause = 8192,
                   size_t resume = 6144) {
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.mode = mode;
  cfg.max_batch = max_batch;
  cfg.pause_threshold = pause;
  cfg.resume_threshold = resume;
  mir_node *n = nullptr;
  EXPECT_EQ(mir_node_new("n0", &cfg, &n), MIR_OK);
  return n;
}

// Runs a manual-mode node until no module has work left; returns events applied.
size_t drain(mir_node *n) {
  size_t total = 0, applied = 0;
  do {
    EXPECT_EQ(mir_node_step(n, &applied), MIR_OK);
    total += applied;
  } while (applied > 0);
  return total;
}

TEST(NodeConfig, RejectsInvalidValues) {
  // Invalid configurations are refused with a reason, valid defaults are accepted.
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  mir_node *n = nullptr;
  cfg.max_batch = 0;
  EXPECT_EQ(mir_node_new("x", &cfg, &n), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("max_batch"), std::string::npos);
  mir_node_config_default(&cfg);
  cfg.resume_threshold = cfg.pause_threshold + 1;
  EXPECT_EQ(mir_node_new("x", &cfg, &n), MIR_EINVAL);
  EXPECT_EQ(mir_node_new("", nullptr, &n), MIR_EINVAL);
  ASSERT_EQ(mir_node_new("x", nullptr, &n), MIR_OK);
  mir_node_free(n);
}

TEST(Node, RejectsBadModules) {
  // Duplicate ids, hierarchical top-level ids and incomplete ops tables are refused.
  mir_node *n = new_node(MIR_NODE_MANUAL);
  Probe a, b, c;
  EXPECT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  EXPECT_EQ(mir_node_add_module(n, "a", &probe_ops, &b), MIR_EEXIST);
  EXPECT_EQ(mir_node_add_module(n, "a/b", &probe_ops, &c), MIR_EINVAL);
  mir_module_ops no_apply = probe_ops;
  no_apply.apply = nullptr;
  EXPECT_EQ(mir_node_add_module(n, "c", &no_apply, &c), MIR_EINVAL);
  mir_node_free(n);
}

TEST(Node, DeliversInitToEveryModuleOnce) {
  // Every module receives exactly one Init, addressed to its own id, before anything else.
  mir_node *n = new_node(MIR_NODE_NORMAL);
  Probe a, b;
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "b", &probe_ops, &b), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  for (int i = 0; i < 200; i++) {
    if (module_read(n, "a", "mir_module_events_total") == 1 &&
        module_read(n, "b", "mir_module_events_total") == 1) {
      break;
    }
    usleep(5000);
  }
  EXPECT_EQ(mir_node_stop(n), MIR_OK);
  ASSERT_EQ(a.types, std::vector<std::string>{"mir.Init"});
  ASSERT_EQ(b.types, std::vector<std::string>{"mir.Init"});
  EXPECT_EQ(a.dests[0], "a");
  EXPECT_EQ(b.dests[0], "b");
  mir_node_free(n);
}

TEST(Node, RoutesOnFirstComponentAndDropsUnknown) {
  // Events go to the module named by the first component; unknown destinations are counted.
  mir_node *n = new_node(MIR_NODE_MANUAL);
  Probe a, b;
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "b", &probe_ops, &b), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_test_uint64("b/x/y", "a", 1));
  mir_event_list_push(&l, mir_event_test_uint64("nobody", "a", 2));
  mir_event_list_push(&l, mir_event_test_uint64("nobody/z", "a", 3));
  mir_event_list_push(&l, mir_event_test_uint64("a", "b", 4));
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  drain(n);
  EXPECT_EQ(a.values, std::vector<uint64_t>{4});
  EXPECT_EQ(b.values, std::vector<uint64_t>{1});
  EXPECT_EQ(b.dests.back(), "b/x/y");
  EXPECT_EQ(node_read(n, "mir_node_dropped_events_total", "unknown_module"), 2u);
  mir_node_free(n);
}

// A packed TestString message for dest, as a transport would hand it over from a peer.
mir_event *peer_message(const char *dest, const char *from) {
  Mir__TestString m = MIR__TEST_STRING__INIT;
  m.value = const_cast<char *>("hello");
  Mir__PackedMessage *pm = mir_message_pack(dest, &m.base);
  return mir_event_message_received(from, pm);
}

TEST(Node, PeerMessagesReachOnlyModulesThatTakeThem) {
  // A module whose ops say peer_messages gets a MessageReceived; any other module never sees one
  // (a peer could otherwise address the timer or crypto module and make it fail): the node drops
  // and counts it, keeps running (drain checks every step), and still delivers that module's
  // other events.
  mir_node *n = new_node(MIR_NODE_MANUAL);
  const mir_module_ops takes = {
      "probe", MIR_MODULE_PASSIVE, probe_apply, nullptr, nullptr, nullptr, true, nullptr};
  Probe proto, edge;
  edge.on_batch = [](Probe *, mir_event_list *in, mir_event_list *) -> mir_err {
    MIR_EVENT_LIST_FOREACH(in, ev) {
      if (mir_event_is(ev, &mir__message_received__descriptor)) {
        return (mir_err)mir_error_set(MIR_EINVAL, "unexpected MessageReceived");
      }
    }
    return MIR_OK;
  };
  ASSERT_EQ(mir_node_add_module(n, "proto", &takes, &proto), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "edge", &probe_ops, &edge), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, peer_message("proto/1", "peer"));
  mir_event_list_push(&l, peer_message("edge", "peer"));
  mir_event_list_push(&l, peer_message("edge/sub", "peer"));
  mir_event_list_push(&l, mir_event_test_uint64("edge", "proto", 7));
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  drain(n);
  EXPECT_EQ(std::count(proto.types.begin(), proto.types.end(), "mir.MessageReceived"), 1);
  EXPECT_EQ(std::count(edge.types.begin(), edge.types.end(), "mir.MessageReceived"), 0);
  EXPECT_EQ(edge.values, std::vector<uint64_t>{7});
  EXPECT_EQ(node_read(n, "mir_node_dropped_events_total", "stray_message"), 2u);
  EXPECT_EQ(node_read(n, "mir_node_dropped_events_total", "unknown_module"), 0u);
  mir_node_free(n);
}

TEST(Node, OutputsAreRoutedBetweenModules) {
  // A module's output reaches its destination: a chain a -> b -> c forwards every value.
  mir_node *n = new_node(MIR_NODE_MANUAL);
  Probe a, b, c;
  auto forward_to = [](const char *dest) {
    return [dest](Probe *p, mir_event_list *in, mir_event_list *out) {
      MIR_EVENT_LIST_FOREACH(in, ev) {
        if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
          uint64_t v = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
          mir_event_list_push(out, mir_event_test_uint64(dest, p->id.c_str(), v + 1));
        }
      }
      return MIR_OK;
    };
  };
  a.id = "a";
  b.id = "b";
  a.on_batch = forward_to("b");
  b.on_batch = forward_to("c");
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "b", &probe_ops, &b), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "c", &probe_ops, &c), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  for (uint64_t i = 0; i < 10; i++) mir_event_list_push(&l, mir_event_test_uint64("a", "", i * 10));
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  drain(n);
  std::vector<uint64_t> want;
  for (uint64_t i = 0; i < 10; i++) want.push_back(i * 10 + 2);
  EXPECT_EQ(c.values, want);
  mir_node_free(n);
}

TEST(Node, KeepsPerModuleFifoAndBatchBound) {
  // Events from an active module arrive in push order, never more than max_batch per apply.
  mir_node *n = new_node(MIR_NODE_NORMAL, /*max_batch=*/7);
  Probe sink;
  Producer prod;
  prod.dest = "sink";
  prod.lists = 300;
  prod.per_list = 33;
  ASSERT_EQ(mir_node_add_module(n, "sink", &probe_ops, &sink), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "prod", &producer_ops, &prod), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  const size_t want = prod.lists * prod.per_list;
  for (int i = 0; i < 2000; i++) {
    if (module_read(n, "sink", "mir_module_events_total") == want + 1) break;  // + Init
    usleep(5000);
  }
  EXPECT_EQ(mir_node_stop(n), MIR_OK);
  ASSERT_EQ(sink.values.size(), want);
  for (size_t i = 0; i < want; i++) ASSERT_EQ(sink.values[i], i) << "at " << i;
  EXPECT_LE(sink.max_batch_seen, 7u);
  EXPECT_EQ(sink.max_batch_seen, 7u);
  mir_node_free(n);
}

TEST(Node, BackpressureBoundsBufferedEvents) {
  // Two fast producers and a slow consumer: input is paused, and buffered events never exceed
  // the pause threshold plus one pushed list per active module.
  const size_t pause = 500, resume = 250, per_list = 40;
  mir_node *n = new_node(MIR_NODE_NORMAL, /*max_batch=*/16, pause, resume);
  Probe sink;
  sink.on_batch = [](Probe *, mir_event_list *, mir_event_list *) {
    usleep(200);  // slower than the producers
    return MIR_OK;
  };
  Producer p1, p2;
  for (Producer *p : {&p1, &p2}) {
    p->dest = "sink";
    p->lists = 100;
    p->per_list = per_list;
  }
  ASSERT_EQ(mir_node_add_module(n, "sink", &probe_ops, &sink), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "p1", &producer_ops, &p1), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "p2", &producer_ops, &p2), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  const size_t want = 2 * 100 * per_list + 1;
  for (int i = 0; i < 3000; i++) {
    if (module_read(n, "sink", "mir_module_events_total") == want) break;
    usleep(5000);
  }
  EXPECT_EQ(module_read(n, "sink", "mir_module_events_total"), want);
  EXPECT_GT(node_read(n, "mir_node_backpressure_pauses_total"), 0u)
      << "input was never paused: the test did not exercise backpressure";
  EXPECT_LE(node_read(n, "mir_node_buffered_events_max"), pause + 2 * per_list);
  EXPECT_EQ(mir_node_stop(n), MIR_OK);
  mir_node_free(n);
}

TEST(Node, StopReleasesBlockedProducers) {
  // A producer blocked by paused input returns MIR_ESTOPPED when the node stops; stop joins it.
  mir_node *n = new_node(MIR_NODE_NORMAL, 1, 10, 5);
  Probe sink;
  sink.on_batch = [](Probe *, mir_event_list *, mir_event_list *) {
    usleep(1000);
    return MIR_OK;
  };
  Producer prod;
  prod.dest = "sink";
  prod.lists = 1000000;  // bounded only by the stop
  prod.per_list = 50;
  ASSERT_EQ(mir_node_add_module(n, "sink", &probe_ops, &sink), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "prod", &producer_ops, &prod), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  for (int i = 0; i < 400 && prod.pushed < 100; i++) usleep(5000);
  EXPECT_EQ(mir_node_stop(n), MIR_OK);
  EXPECT_EQ(mir_node_stop(n), MIR_OK);  // idempotent
  EXPECT_EQ(prod.last_err, MIR_ESTOPPED);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_test_uint64("sink", "", 1));
  EXPECT_EQ(mir_node_inject(n, &l), MIR_ESTOPPED);
  mir_node_free(n);
}

TEST(Node, FirstModuleErrorStopsNode) {
  // A module error stops the node, is returned by wait and stop, and names the module.
  mir_node *n = new_node(MIR_NODE_NORMAL);
  Probe bad;
  bad.on_batch = [](Probe *, mir_event_list *in, mir_event_list *) {
    MIR_EVENT_LIST_FOREACH(in, ev) {
      if (mir_event_is(ev, &mir__test_string__descriptor)) {
        return (mir_err)mir_error_set(MIR_EPROTO, "refusing %s",
                                      reinterpret_cast<Mir__TestString *>(ev->payload)->value);
      }
    }
    return MIR_OK;
  };
  ASSERT_EQ(mir_node_add_module(n, "bad", &probe_ops, &bad), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  EXPECT_EQ(mir_node_wait(n, 50), MIR_ETIMEDOUT);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_test_string("bad", "", "boom"));
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  EXPECT_EQ(mir_node_wait(n, 10000), MIR_EPROTO);
  std::string msg = mir_node_last_error(n);
  EXPECT_NE(msg.find("bad"), std::string::npos) << msg;
  EXPECT_NE(msg.find("refusing boom"), std::string::npos) << msg;
  EXPECT_EQ(mir_node_stop(n), MIR_EPROTO);
  EXPECT_EQ(mir_node_stop(n), MIR_EPROTO);
  mir_node_free(n);
}

TEST(Node, DebugModeCapturesOutputsWithoutInit) {
  // In debug mode no Init is sent and outputs are returned instead of routed.
  mir_node *n = new_node(MIR_NODE_DEBUG);
  Probe a, b;
  a.on_batch = [](Probe *, mir_event_list *in, mir_event_list *out) {
    MIR_EVENT_LIST_FOREACH(in, ev) {
      mir_event_list_push(out, mir_event_test_uint64("b", "a", 9));
    }
    return MIR_OK;
  };
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "b", &probe_ops, &b), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_test_uint64("a", "", 1));
  mir_event_list_push(&in, mir_event_test_uint64("a", "", 2));
  ASSERT_EQ(mir_node_debug_apply(n, &in, &out), MIR_OK);
  EXPECT_EQ(a.types.size(), 2u);  // no Init
  EXPECT_TRUE(b.types.empty());   // outputs captured, not routed
  ASSERT_EQ(out.len, 2u);
  EXPECT_STREQ(out.head->dest, "b");
  mir_event_list_free(&out);
  mir_node_free(n);
}

TEST(Node, ManualStepRotatesFairly) {
  // mir_node_step applies one batch per call, rotating over modules with work.
  mir_node *n = new_node(MIR_NODE_MANUAL, /*max_batch=*/2);
  Probe a, b;
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n, "b", &probe_ops, &b), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  for (int i = 0; i < 5; i++) {
    mir_event_list_push(&l, mir_event_test_uint64("a", "", i));
    mir_event_list_push(&l, mir_event_test_uint64("b", "", i));
  }
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  size_t applied = 0;
  std::vector<size_t> a_batches;
  for (int step = 0; step < 6; step++) {
    ASSERT_EQ(mir_node_step(n, &applied), MIR_OK);
    a_batches.push_back(a.batches);
  }
  // Batches alternate between a and b: a's count rises every other step.
  EXPECT_EQ(a_batches, (std::vector<size_t>{1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(drain(n), 0u);  // everything was applied in those six steps
  mir_node_free(n);
}

TEST(Node, RegistryCountsEventsAndBatchesPerModule) {
  // The node loop counts applied events and batches per module in the registry and shows the
  // module's queue depth and the node's buffered events there.
  mir_node *n = new_node(MIR_NODE_MANUAL, 4);
  Probe a;
  ASSERT_EQ(mir_node_add_module(n, "a", &probe_ops, &a), MIR_OK);
  ASSERT_EQ(mir_node_start(n), MIR_OK);
  EXPECT_EQ(module_read(n, "a", "mir_module_queue_depth"), 1u);  // Init
  EXPECT_EQ(node_read(n, "mir_node_buffered_events"), 1u);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  for (int i = 0; i < 9; i++) mir_event_list_push(&l, mir_event_test_uint64("a", "", i));
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
  EXPECT_EQ(node_read(n, "mir_node_buffered_events"), 10u);
  drain(n);
  EXPECT_EQ(module_read(n, "a", "mir_module_events_total"), 10u);
  EXPECT_EQ(module_read(n, "a", "mir_module_batches_total"), 3u);  // 4 + 4 + 2
  EXPECT_EQ(module_read(n, "a", "mir_module_queue_depth"), 0u);
  EXPECT_EQ(node_read(n, "mir_node_buffered_events"), 0u);
  EXPECT_EQ(node_read(n, "mir_node_buffered_events_max"), 10u);
  mir_node_free(n);
}

}  // namespace
