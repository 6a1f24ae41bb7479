// Tests of the metrics registry: registration, reading, aggregation per module, folding of a
// collected submodule into its factory, concurrent updates, the Prometheus text format, the node
// loop's metrics and named locks.
#include <gtest/gtest.h>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "mir/factory.h"
#include "mir/lock.h"
#include "mir/metrics.h"
#include "mir/node.h"
}

namespace {

std::string Prometheus(const mir_metrics *root) {
  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(root, &snap);
  char *buf = nullptr;
  size_t len = 0;
  mir_metrics_snapshot_prometheus(&snap, &buf, &len);
  std::string s(buf, len);
  free(buf);
  mir_metrics_snapshot_fini(&snap);
  return s;
}

// Registering the same name and label value twice gives the same cell; reads sum the subtree.
TEST(Metrics, RegisterAndRead) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_counter *a = mir_metrics_counter(root, "mir_x_total", "x", "reason", "a");
  mir_counter *a2 = mir_metrics_counter(root, "mir_x_total", "x", "reason", "a");
  mir_counter *b = mir_metrics_counter(root, "mir_x_total", "x", "reason", "b");
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  mir_counter_add(a, 5);
  mir_counter_inc(b);
  EXPECT_EQ(mir_metrics_read(root, "mir_x_total", "a"), 5);
  EXPECT_EQ(mir_metrics_read(root, "mir_x_total", nullptr), 6);
  EXPECT_EQ(mir_metrics_read(root, "mir_missing_total", nullptr), 0);
  // Another kind under a taken name gets a cell that is never reported.
  mir_gauge *clash = mir_metrics_gauge(root, "mir_x_total", "x", "reason", "a");
  mir_gauge_set(clash, 100);
  EXPECT_EQ(mir_metrics_read(root, "mir_x_total", "a"), 5);
  mir_metrics_free(root);
}

// A read below one child counts that child's subtree only (two modules with the same metric);
// the segment label key is accepted.
TEST(Metrics, ReadChildSeparatesModules) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_metrics *ord = mir_metrics_new("ordering"), *chk = mir_metrics_new("checkpoint");
  mir_metrics *sub = mir_metrics_new("ordering/1/0");
  mir_metrics_attach(root, ord);
  mir_metrics_attach(root, chk);
  mir_metrics_attach(ord, sub);
  mir_gauge_set(mir_metrics_gauge(ord, "mir_subs", "s", nullptr, nullptr), 4);
  mir_gauge_set(mir_metrics_gauge(chk, "mir_subs", "s", nullptr, nullptr), 1);
  mir_gauge_set(mir_metrics_gauge_max(sub, "mir_view", "v", "segment", "0"), 3);
  EXPECT_EQ(mir_metrics_read(root, "mir_subs", nullptr), 5);
  EXPECT_EQ(mir_metrics_read_child(root, "ordering", "mir_subs", nullptr), 4);
  EXPECT_EQ(mir_metrics_read_child(root, "checkpoint", "mir_subs", nullptr), 1);
  EXPECT_EQ(mir_metrics_read_child(root, "ordering", "mir_view", "0"), 3);
  EXPECT_EQ(mir_metrics_read_child(root, "missing", "mir_subs", nullptr), 0);
  mir_metrics_free(sub);
  mir_metrics_free(ord);
  mir_metrics_free(chk);
  mir_metrics_free(root);
}

// Gauges sum across instances, GAUGE_MAX takes the largest, and the module label is the set
// directly below the root.
TEST(Metrics, SnapshotAggregatesPerModule) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_metrics *mod = mir_metrics_new("ordering");
  mir_metrics *i1 = mir_metrics_new("ordering/1");
  mir_metrics *i2 = mir_metrics_new("ordering/2");
  mir_metrics_attach(root, mod);
  mir_metrics_attach(mod, i1);
  mir_metrics_attach(mod, i2);
  mir_gauge_set(mir_metrics_gauge(i1, "mir_q", "q", nullptr, nullptr), 3);
  mir_gauge_set(mir_metrics_gauge(i2, "mir_q", "q", nullptr, nullptr), 4);
  mir_gauge_set(mir_metrics_gauge_max(i1, "mir_view", "v", nullptr, nullptr), 7);
  mir_gauge_set(mir_metrics_gauge_max(i2, "mir_view", "v", nullptr, nullptr), 2);
  mir_counter_inc(mir_metrics_counter(root, "mir_top_total", "t", nullptr, nullptr));

  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(root, &snap);
  const mir_metric_sample *q = mir_metrics_snapshot_find(&snap, "mir_q", "ordering", nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->raw, 7);
  const mir_metric_sample *v = mir_metrics_snapshot_find(&snap, "mir_view", "ordering", nullptr);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->raw, 7);
  const mir_metric_sample *t = mir_metrics_snapshot_find(&snap, "mir_top_total", "", nullptr);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->raw, 1);
  EXPECT_EQ(snap.n, 3u);
  mir_metrics_snapshot_fini(&snap);
  EXPECT_EQ(mir_metrics_read(root, "mir_view", nullptr), 7);
  mir_metrics_free(i1);
  mir_metrics_free(i2);
  mir_metrics_free(mod);
  mir_metrics_free(root);
}

// Detaching with folding keeps counters and histograms in the parent; gauges go with the child.
TEST(Metrics, FoldOnDetach) {
  mir_metrics *parent = mir_metrics_new("f");
  mir_metrics *child = mir_metrics_new("f/1");
  mir_metrics_attach(parent, child);
  const uint64_t bounds[] = {10, 100};
  mir_counter_add(mir_metrics_counter(child, "mir_c_total", "c", "peer", "r1"), 9);
  mir_gauge_set(mir_metrics_gauge(child, "mir_g", "g", nullptr, nullptr), 5);
  mir_histogram *h = mir_metrics_histogram(child, "mir_h", "h", nullptr, nullptr, bounds, 2);
  mir_histogram_observe(h, 5);
  mir_histogram_observe(h, 50);
  mir_histogram_observe(h, 500);
  EXPECT_EQ(mir_metrics_read(parent, "mir_c_total", "r1"), 9);

  mir_metrics_detach(child, true);
  mir_metrics_free(child);
  EXPECT_EQ(mir_metrics_read(parent, "mir_c_total", "r1"), 9);
  EXPECT_EQ(mir_metrics_read(parent, "mir_g", nullptr), 0);
  EXPECT_EQ(mir_metrics_read(parent, "mir_h", nullptr), 3);

  // A second instance folds into the same cells.
  child = mir_metrics_new("f/2");
  mir_metrics_attach(parent, child);
  mir_counter_add(mir_metrics_counter(child, "mir_c_total", "c", "peer", "r1"), 1);
  mir_metrics_detach(child, true);
  mir_metrics_free(child);
  EXPECT_EQ(mir_metrics_read(parent, "mir_c_total", "r1"), 10);

  // Without folding the values go.
  child = mir_metrics_new("f/3");
  mir_metrics_attach(parent, child);
  mir_counter_add(mir_metrics_counter(child, "mir_c_total", "c", "peer", "r1"), 100);
  mir_metrics_free(child);
  EXPECT_EQ(mir_metrics_read(parent, "mir_c_total", "r1"), 10);
  mir_metrics_free(parent);
}

// Threads incrementing one counter lose no update.
TEST(Metrics, ConcurrentIncrements) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_counter *c = mir_metrics_counter(root, "mir_c_total", "c", nullptr, nullptr);
  const uint64_t bounds[] = {1};
  mir_histogram *h = mir_metrics_histogram(root, "mir_h", "h", nullptr, nullptr, bounds, 1);
  constexpr int kThreads = 4, kEach = 200000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; i++) {
        mir_counter_inc(c);
        mir_histogram_observe(h, static_cast<uint64_t>(i & 3));
      }
    });
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(mir_metrics_read(root, "mir_c_total", nullptr), int64_t{kThreads} * kEach);
  EXPECT_EQ(mir_metrics_read(root, "mir_h", nullptr), int64_t{kThreads} * kEach);
  mir_metrics_free(root);
}

// The text format: HELP and TYPE once per name, labels, seconds from nanoseconds, cumulative
// histogram buckets ending with +Inf, _sum and _count.
TEST(Metrics, PrometheusText) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_metrics *mod = mir_metrics_new("net");
  mir_metrics_attach(root, mod);
  mir_counter_add(mir_metrics_counter(mod, "mir_busy_seconds_total", "busy", nullptr, nullptr),
                  1500000000);
  mir_counter_add(mir_metrics_counter(mod, "mir_drops_total", "drops", "reason", "bad\"x"), 2);
  const uint64_t bounds[] = {1000000, 10000000};
  mir_histogram *h =
      mir_metrics_histogram(mod, "mir_lat_seconds", "lat", nullptr, nullptr, bounds, 2);
  mir_histogram_observe(h, 500000);
  mir_histogram_observe(h, 20000000);
  std::string s = Prometheus(root);
  EXPECT_NE(s.find("# TYPE mir_busy_seconds_total counter\n"), std::string::npos) << s;
  EXPECT_NE(s.find("mir_busy_seconds_total{module=\"net\"} 1.5\n"), std::string::npos) << s;
  EXPECT_NE(s.find("mir_drops_total{module=\"net\",reason=\"bad\\\"x\"} 2\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("mir_lat_seconds_bucket{module=\"net\",le=\"0.001\"} 1\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("mir_lat_seconds_bucket{module=\"net\",le=\"0.01\"} 1\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("mir_lat_seconds_bucket{module=\"net\",le=\"+Inf\"} 2\n"), std::string::npos)
      << s;
  EXPECT_NE(s.find("mir_lat_seconds_count{module=\"net\"} 2\n"), std::string::npos) << s;
  EXPECT_NE(s.find("mir_lat_seconds_sum{module=\"net\"} 0.0205"), std::string::npos) << s;
  mir_metrics_free(mod);
  mir_metrics_free(root);
}

// ---- a factory whose submodules count the events they apply ----

struct Sub {
  mir_metrics *set;
  mir_counter *seen;
};

mir_err sub_apply(void *state, mir_event_list *in, mir_event_list *) {
  auto *s = static_cast<Sub *>(state);
  mir_counter_add(s->seen, in->len);
  return MIR_OK;
}
void sub_destroy(void *state) {
  auto *s = static_cast<Sub *>(state);
  mir_metrics_free(s->set);
  delete s;
}
mir_metrics *sub_metrics(void *state) {
  return static_cast<Sub *>(state)->set;
}
const mir_module_ops sub_ops = {"sub",   MIR_MODULE_PASSIVE, sub_apply, nullptr,
                                nullptr, sub_destroy,        false,     sub_metrics};

mir_err gen(void *, const char *id, const ProtobufCMessage *, const mir_module_ops **ops,
            void **state) {
  auto *s = new Sub;
  s->set = mir_metrics_new(id);
  s->seen = mir_metrics_counter(s->set, "mir_sub_seen_total", "seen", nullptr, nullptr);
  *ops = &sub_ops;
  *state = s;
  return MIR_OK;
}

// A garbage-collected submodule's counters fold into the factory, so the node's totals do not
// go backwards, and the module label is the factory's id.
TEST(Metrics, FactoryFoldsCollectedSubmodules) {
  mir_node_config cfg;
  mir_node_config_default(&cfg);
  cfg.mode = MIR_NODE_MANUAL;
  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("n0", &cfg, &node), MIR_OK);
  mir_factory_params p;
  mir_factory_params_default(&p, gen, nullptr);
  mir_factory *f = nullptr;
  ASSERT_EQ(mir_factory_new("f", &p, &f), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "f", &mir_factory_ops, f), MIR_OK);
  ASSERT_EQ(mir_node_start(node), MIR_OK);
  mir_metrics *root = mir_node_metrics(node);

  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_new_submodule("f", "t", "f/1", nullptr, 1));
  mir_event_list_push(&in, mir_event_new_submodule("f", "t", "f/2", nullptr, 2));
  mir_event_list_push(&in, mir_event_test_uint64("f/1", "t", 1));
  mir_event_list_push(&in, mir_event_test_uint64("f/2", "t", 2));
  ASSERT_EQ(mir_node_inject(node, &in), MIR_OK);
  size_t applied = 1;
  while (applied > 0) ASSERT_EQ(mir_node_step(node, &applied), MIR_OK);
  // Init + one event each.
  EXPECT_EQ(mir_metrics_read(root, "mir_sub_seen_total", nullptr), 4);
  EXPECT_EQ(mir_metrics_read(root, "mir_factory_submodules", nullptr), 2);

  mir_event_list_push(&in, mir_event_garbage_collect("f", "t", 2));  // collects f/1
  ASSERT_EQ(mir_node_inject(node, &in), MIR_OK);
  applied = 1;
  while (applied > 0) ASSERT_EQ(mir_node_step(node, &applied), MIR_OK);
  EXPECT_EQ(mir_metrics_read(root, "mir_sub_seen_total", nullptr), 4);
  EXPECT_EQ(mir_metrics_read(root, "mir_factory_submodules", nullptr), 1);
  EXPECT_GE(mir_metrics_read(root, "mir_module_events_total", nullptr), 6);

  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(root, &snap);
  const mir_metric_sample *s = mir_metrics_snapshot_find(&snap, "mir_sub_seen_total", "f", nullptr);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->raw, 4);
  mir_metrics_snapshot_fini(&snap);
  mir_node_free(node);
}

// A contended acquisition is counted with its wait; an uncontended one is not.
TEST(Metrics, NamedLockCountsContention) {
  mir_metrics *root = mir_metrics_new("n0");
  mir_lock l;
  mir_lock_init(&l, root, "test");
  mir_lock_acquire(&l);
  mir_lock_release(&l);
  EXPECT_EQ(mir_metrics_read(root, "mir_lock_contended_total", "test"), 0);
  // The other thread tries while we hold the lock; retried in case it was scheduled too late.
  for (int attempt = 0; attempt < 10; attempt++) {
    std::atomic<bool> trying{false};
    mir_lock_acquire(&l);
    std::thread t([&] {
      trying = true;
      mir_lock_acquire(&l);
      mir_lock_release(&l);
    });
    while (!trying) usleep(1000);
    usleep(20000);
    mir_lock_release(&l);
    t.join();
    if (mir_metrics_read(root, "mir_lock_contended_total", "test") > 0) break;
  }
  EXPECT_GE(mir_metrics_read(root, "mir_lock_contended_total", "test"), 1);
  EXPECT_GT(mir_metrics_read(root, "mir_lock_wait_seconds_total", "test"), 0);
  mir_lock_fini(&l);
  mir_metrics_free(root);
}

}  // namespace
