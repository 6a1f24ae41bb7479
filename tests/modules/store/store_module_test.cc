// Tests of the store module (server/modules/store/store_module.h) in a running node: then events
// arrive in the order of their writes and only once the write is durable; barriers; puts,
// deletes and range deletes in the configured column family; release under the node's
// backpressure; and the errors that stop the node: a bad write, an unexpected event, a then event
// that cannot be decoded, and a failing store (after which nothing is released).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "replica/test_dir.h"

extern "C" {
#include "mir/alloc.h"
#include "mir/node.h"
#include "mir/storage.h"
#include "store_module.h"
}

namespace {

const char *const kCfs[] = {"votes", "other"};

std::string Key(uint64_t i) {
  std::string k = "k";
  for (int b = 7; b >= 0; b--) k.push_back(static_cast<char>((i >> (8 * b)) & 0xff));
  return k;
}

// What the collector saw for one event: its value and what the store said when it arrived.
struct Seen {
  uint64_t value;
  uint64_t written;       // mir_store_written when the event was applied
  std::string key_value;  // the value of Key(value) in "votes" then ("<none>" if absent)
};

// A passive module that records every TestUint64 it gets, with the store's state at that moment.
struct Collector {
  mir_store *store = nullptr;
  int cf = -1;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Seen> seen;

  std::vector<Seen> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
  // Waits until n events arrived (or 20 s passed); returns how many did.
  size_t WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return seen.size() >= n; });
    return seen.size();
  }
};

std::string Get(mir_store *s, int cf, const std::string &key) {
  uint8_t *v = nullptr;
  size_t n = 0;
  mir_err err = mir_store_get(s, cf, key.data(), key.size(), &v, &n, 0);
  if (err != MIR_OK) return err == MIR_ENOTFOUND ? "<none>" : "<error>";
  std::string out(reinterpret_cast<char *>(v), n);
  free(v);
  return out;
}

mir_err collector_apply(void *state, mir_event_list *in, mir_event_list *) {
  auto *c = static_cast<Collector *>(state);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (!mir_event_is(ev, &mir__test_uint64__descriptor)) continue;
    uint64_t v = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
    Seen s{v, mir_store_written(c->store), Get(c->store, c->cf, Key(v))};
    std::lock_guard<std::mutex> lock(c->mu);
    c->seen.push_back(s);
    c->cv.notify_all();
  }
  return MIR_OK;
}

const mir_module_ops collector_ops = {
    "collector", MIR_MODULE_PASSIVE, collector_apply, nullptr, nullptr, nullptr, false, nullptr};

// A StoreWrite to "store" that puts Key(i) = value and releases TestUint64(i) to the collector.
mir_event *PutThen(uint64_t i, const std::string &value) {
  Mir__StoreWrite *w = mir_storage_write_new();
  std::string k = Key(i);
  mir_storage_put(w, k.data(), k.size(), value.data(), value.size());
  mir_storage_then(w, mir_event_test_uint64("collector", "store", i));
  return mir_event_store_write("store", "proto", w);
}

// A barrier: a StoreWrite without ops releasing TestUint64(i).
mir_event *Barrier(uint64_t i) {
  Mir__StoreWrite *w = mir_storage_write_new();
  mir_storage_then(w, mir_event_test_uint64("collector", "store", i));
  return mir_event_store_write("store", "proto", w);
}

void Inject(mir_node *n, mir_event *ev) {
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, ev);
  ASSERT_EQ(mir_node_inject(n, &l), MIR_OK);
}

// A store in a temporary folder and a normal-mode node with the store module ("store", writing
// to "votes") and a collector.
class StoreModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_store_config cfg;
    mir_store_config_default(&cfg);
    path_ = dir_.sub("db");
    cfg.path = path_.c_str();
    cfg.cfs = kCfs;
    cfg.n_cfs = 2;
    ASSERT_EQ(mir_store_open(&cfg, &store_), MIR_OK) << mir_error_detail();
    votes_ = mir_store_cf(store_, "votes");
    other_ = mir_store_cf(store_, "other");
    collector_.store = store_;
    collector_.cf = votes_;
  }
  void TearDown() override {
    mir_node_free(node_);  // before the store: the module borrows it
    if (store_ != nullptr) (void)mir_store_close(store_);
  }

  void StartNode(size_t pause = 8192, size_t resume = 6144) {
    mir_node_config nc;
    mir_node_config_default(&nc);
    nc.pause_threshold = pause;
    nc.resume_threshold = resume;
    ASSERT_EQ(mir_node_new("n0", &nc, &node_), MIR_OK);
    mir_store_module_config mc = {store_, "votes", 0};
    ASSERT_EQ(mir_store_module_new(&mc, &module_), MIR_OK) << mir_error_detail();
    ASSERT_EQ(mir_node_add_module(node_, "store", &mir_store_module_ops, module_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "collector", &collector_ops, &collector_), MIR_OK);
    ASSERT_EQ(mir_node_start(node_), MIR_OK);
  }

  // The module's metrics (the store's below them), as the node's registry reports them.
  struct StmStats {
    uint64_t writes, barriers, ops, bytes, released, pending, groups;
  };
  StmStats Stats() {
    const mir_metrics *m = mir_node_metrics(node_);
    auto rd = [m](const char *name) {
      return static_cast<uint64_t>(mir_metrics_read_child(m, "store", name, nullptr));
    };
    return StmStats{rd("mir_store_module_writes_total"),   rd("mir_store_module_barriers_total"),
                    rd("mir_store_module_ops_total"),      rd("mir_store_module_bytes_total"),
                    rd("mir_store_module_released_total"), rd("mir_store_module_pending"),
                    rd("mir_store_writes_total")};
  }

  reptest::TempDir dir_;
  std::string path_;
  mir_store *store_ = nullptr;
  int votes_ = -1, other_ = -1;
  Collector collector_;
  mir_node *node_ = nullptr;
  void *module_ = nullptr;
};

TEST_F(StoreModuleTest, ThenEventsFollowTheirDurableWritesInOrder) {
  // 300 writes of 32 KiB, each with a then event: every event arrives, in the order of the
  // writes, and when it arrives its write is already written and synced (the module is the
  // store's only writer, so write i has ticket i + 1) and its key reads back. The store merged
  // the writes into fewer group writes than writes, yet nothing was released early.
  StartNode();
  const size_t kWrites = 300;
  const std::string value(32 << 10, 'v');
  for (uint64_t i = 0; i < kWrites; i++) Inject(node_, PutThen(i, value + std::to_string(i)));
  ASSERT_EQ(collector_.WaitFor(kWrites), kWrites);
  std::vector<Seen> seen = collector_.Snapshot();
  for (uint64_t i = 0; i < kWrites; i++) {
    EXPECT_EQ(seen[i].value, i);
    EXPECT_GE(seen[i].written, i + 1) << "event " << i << " released before its write";
    EXPECT_EQ(seen[i].key_value, value + std::to_string(i));
  }
  StmStats st = Stats();
  EXPECT_EQ(st.writes, kWrites);
  EXPECT_EQ(st.ops, kWrites);
  EXPECT_EQ(st.barriers, 0u);
  EXPECT_EQ(st.released, kWrites);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_GE(st.bytes, kWrites * value.size());
  EXPECT_GE(st.groups, 1u);
  EXPECT_LE(st.groups, kWrites);
  std::printf("%zu writes in %llu group writes\n", kWrites,
              static_cast<unsigned long long>(st.groups));
  EXPECT_EQ(mir_node_stop(node_), MIR_OK);
}

TEST_F(StoreModuleTest, BarriersFollowEveryEarlierWrite) {
  // A barrier before any write is released at once; a barrier after writes (one of them without
  // then events) is released after them, in order, once they are durable.
  StartNode();
  Inject(node_, Barrier(100));
  Inject(node_, PutThen(0, "a"));
  Mir__StoreWrite *silent = mir_storage_write_new();
  std::string k1 = Key(1);
  mir_storage_put(silent, k1.data(), k1.size(), "b", 1);  // no then events
  Inject(node_, mir_event_store_write("store", "proto", silent));
  Inject(node_, Barrier(1));  // reads Key(1), which the silent write put
  Inject(node_, Barrier(101));
  Inject(node_, PutThen(2, "c"));
  Inject(node_, Barrier(2));
  ASSERT_EQ(collector_.WaitFor(6), 6u);
  std::vector<Seen> seen = collector_.Snapshot();
  std::vector<uint64_t> order;
  for (const Seen &s : seen) order.push_back(s.value);
  EXPECT_EQ(order, (std::vector<uint64_t>{100, 0, 1, 101, 2, 2}));
  EXPECT_EQ(seen[2].key_value, "b");  // the barrier came after the silent write was durable
  EXPECT_GE(seen[2].written, 2u);
  EXPECT_GE(seen[5].written, 3u);
  EXPECT_EQ(seen[5].key_value, "c");
  StmStats st = Stats();
  EXPECT_EQ(st.writes, 7u);
  EXPECT_EQ(st.barriers, 4u);
  EXPECT_EQ(st.ops, 3u);
  EXPECT_EQ(st.released, 6u);
  EXPECT_EQ(mir_node_stop(node_), MIR_OK);
}

TEST_F(StoreModuleTest, OpsLandInTheConfiguredColumnFamily) {
  // Puts, a delete and a range delete [c, e) go to "votes" only: the same keys in "other" and the
  // default family are untouched.
  for (const char *k : {"a", "b", "c", "d", "e", "f"}) {
    mir_store_batch *b = mir_store_batch_new(store_);
    mir_store_batch_put(b, other_, k, 1, "other", 5);
    ASSERT_EQ(mir_store_write(store_, b), MIR_OK);
  }
  StartNode();
  Mir__StoreWrite *w = mir_storage_write_new();
  for (const char *k : {"a", "b", "c", "d", "e", "f"}) mir_storage_put(w, k, 1, k, 1);
  Inject(node_, mir_event_store_write("store", "proto", w));
  w = mir_storage_write_new();
  mir_storage_delete(w, "b", 1);
  mir_storage_delete_range(w, "c", 1, "e", 1);
  mir_storage_then(w, mir_event_test_uint64("collector", "store", 7));
  Inject(node_, mir_event_store_write("store", "proto", w));
  ASSERT_EQ(collector_.WaitFor(1), 1u);
  std::string kept;
  mir_store_iter *it = mir_store_iter_new(store_, votes_);
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t n = 0;
    const uint8_t *k = mir_store_iter_key(it, &n);
    kept.append(reinterpret_cast<const char *>(k), n);
  }
  EXPECT_EQ(mir_store_iter_status(it), MIR_OK);
  mir_store_iter_free(it);
  EXPECT_EQ(kept, "aef");
  EXPECT_EQ(Get(store_, votes_, "e"), "e");
  for (const char *k : {"a", "b", "c", "d", "e", "f"}) {
    EXPECT_EQ(Get(store_, other_, k), "other") << k;
    EXPECT_EQ(Get(store_, MIR_STORE_CF_DEFAULT, k), "<none>") << k;
  }
  EXPECT_EQ(Stats().ops, 8u);  // six puts, a delete, a range delete
  EXPECT_EQ(mir_node_stop(node_), MIR_OK);
}

TEST_F(StoreModuleTest, ReleasesInOrderUnderBackpressure) {
  // With a node that pauses its input at 64 buffered events, 3000 writes release 3000 events in
  // order: the release thread blocks in the inbox and resumes, and never reorders.
  StartNode(64, 32);
  const uint64_t kWrites = 3000;
  mir_event_list l = MIR_EVENT_LIST_INIT;
  for (uint64_t i = 0; i < kWrites; i++) mir_event_list_push(&l, PutThen(i, "x"));
  ASSERT_EQ(mir_node_inject(node_, &l), MIR_OK);
  ASSERT_EQ(collector_.WaitFor(kWrites), kWrites);
  std::vector<Seen> seen = collector_.Snapshot();
  for (uint64_t i = 0; i < kWrites; i++) {
    ASSERT_EQ(seen[i].value, i);
    ASSERT_GE(seen[i].written, i + 1);
  }
  EXPECT_EQ(mir_node_stop(node_), MIR_OK);
}

TEST_F(StoreModuleTest, BadWriteStopsTheNode) {
  // A put with an empty key is a bug of the module that built it: the node stops with
  // MIR_EINVAL, naming the store module, the op and the sender; its then event never arrives.
  StartNode();
  Inject(node_, PutThen(0, "ok"));
  ASSERT_EQ(collector_.WaitFor(1), 1u);
  Mir__StoreWrite *w = mir_storage_write_new();
  mir_storage_put(w, "", 0, "v", 1);
  mir_storage_then(w, mir_event_test_uint64("collector", "store", 1));
  Inject(node_, mir_event_store_write("store", "proto", w));
  EXPECT_EQ(mir_node_wait(node_, 10000), MIR_EINVAL);
  std::string err = mir_node_last_error(node_);
  EXPECT_NE(err.find("module store (store) failed"), std::string::npos) << err;
  EXPECT_NE(err.find("key of 0 bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("from proto"), std::string::npos) << err;
  EXPECT_EQ(mir_node_stop(node_), MIR_EINVAL);
  EXPECT_EQ(collector_.Snapshot().size(), 1u);
}

TEST_F(StoreModuleTest, UnexpectedEventStopsTheNode) {
  // Anything but StoreWrite (and Init) is an error naming its type.
  StartNode();
  Inject(node_, mir_event_test_string("store", "proto", "hi"));
  EXPECT_EQ(mir_node_wait(node_, 10000), MIR_EINVAL);
  std::string err = mir_node_last_error(node_);
  EXPECT_NE(err.find("mir.TestString"), std::string::npos) << err;
}

TEST_F(StoreModuleTest, UndecodableThenEventStopsTheNode) {
  // A then event of an unknown type cannot be released: the release thread reports it and the
  // node stops with MIR_EPROTO naming the type; the write itself was made.
  StartNode();
  Mir__StoreWrite *w = mir_storage_write_new();
  std::string k = Key(5);
  mir_storage_put(w, k.data(), k.size(), "v", 1);
  auto *pe = static_cast<Mir__PackedEvent *>(mir_xmalloc(sizeof(Mir__PackedEvent)));
  mir__packed_event__init(pe);
  pe->dest = mir_xstrdup("collector");
  pe->src = mir_xstrdup("store");
  pe->type = mir_xstrdup("nowhere.Unknown");
  w->then = static_cast<Mir__PackedEvent **>(mir_xmalloc(sizeof(*w->then)));
  w->then[0] = pe;
  w->n_then = 1;
  Inject(node_, mir_event_store_write("store", "proto", w));
  EXPECT_EQ(mir_node_wait(node_, 10000), MIR_EPROTO);
  std::string err = mir_node_last_error(node_);
  EXPECT_NE(err.find("nowhere.Unknown"), std::string::npos) << err;
  EXPECT_EQ(Get(store_, votes_, k), "v");
  EXPECT_TRUE(collector_.Snapshot().empty());
}

TEST_F(StoreModuleTest, FailingStoreStopsTheNodeAndReleasesNothingMore) {
  // Ten writes are released. Then the store's next group write fails (the test hook: a failed
  // fsync cannot be caused for real here): the node stops with MIR_EIO naming the database path
  // and the reason, and none of the later writes' events, nor a barrier after them, arrives. The
  // store refuses every later write.
  StartNode();
  for (uint64_t i = 0; i < 10; i++) Inject(node_, PutThen(i, "before"));
  ASSERT_EQ(collector_.WaitFor(10), 10u);
  mir_store_fail_next_write(store_, "fsync failed (injected)");
  mir_event_list l = MIR_EVENT_LIST_INIT;  // in one go: the node may stop at the first of them
  for (uint64_t i = 10; i < 20; i++) mir_event_list_push(&l, PutThen(i, "after"));
  mir_event_list_push(&l, Barrier(99));
  ASSERT_EQ(mir_node_inject(node_, &l), MIR_OK);
  EXPECT_EQ(mir_node_wait(node_, 10000), MIR_EIO);
  std::string err = mir_node_last_error(node_);
  EXPECT_NE(err.find("store " + path_ + ": a write failed"), std::string::npos) << err;
  EXPECT_NE(err.find("fsync failed (injected)"), std::string::npos) << err;
  EXPECT_NE(err.find("rather than vote without durability"), std::string::npos) << err;
  EXPECT_EQ(mir_node_stop(node_), MIR_EIO);
  std::vector<Seen> seen = collector_.Snapshot();
  ASSERT_EQ(seen.size(), 10u);
  for (uint64_t i = 0; i < 10; i++) EXPECT_EQ(seen[i].value, i);
  EXPECT_EQ(Get(store_, votes_, Key(10)), "<none>");
  mir_store_batch *b = mir_store_batch_new(store_);
  mir_store_batch_put(b, votes_, "z", 1, "z", 1);
  EXPECT_EQ(mir_store_write(store_, b), MIR_EIO);
  mir_node_free(node_);  // frees the events still held
  node_ = nullptr;
  EXPECT_EQ(mir_store_close(store_), MIR_EIO);
  store_ = nullptr;
}

TEST_F(StoreModuleTest, StoreFailedByAnotherWriterStopsTheNode) {
  // Another writer of the same store hits a write error: the module stops the node (its release
  // thread learns it from the store, and apply refuses the next write), with MIR_EIO naming the
  // path and the reason, and releases nothing.
  StartNode();
  mir_store_fail_next_write(store_, "disk gone (injected)");
  mir_store_batch *b = mir_store_batch_new(store_);
  mir_store_batch_put(b, other_, "x", 1, "x", 1);
  EXPECT_EQ(mir_store_write(store_, b), MIR_EIO);
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, PutThen(0, "v"));
  mir_err inj = mir_node_inject(node_, &l);  // MIR_ESTOPPED if the module stopped the node first
  EXPECT_TRUE(inj == MIR_OK || inj == MIR_ESTOPPED) << mir_strerror(inj);
  EXPECT_EQ(mir_node_wait(node_, 10000), MIR_EIO);
  std::string err = mir_node_last_error(node_);
  EXPECT_NE(err.find(path_), std::string::npos) << err;
  EXPECT_NE(err.find("disk gone (injected)"), std::string::npos) << err;
  EXPECT_TRUE(collector_.Snapshot().empty());
}

TEST(StoreModule, RejectsBadConfigs) {
  // No store, or a column family the store did not open, is MIR_EINVAL with a reason.
  reptest::TempDir d;
  mir_store_config cfg;
  mir_store_config_default(&cfg);
  std::string path = d.sub("db");
  cfg.path = path.c_str();
  mir_store *s = nullptr;
  ASSERT_EQ(mir_store_open(&cfg, &s), MIR_OK);
  void *state = nullptr;
  mir_store_module_config mc = {nullptr, "votes", 0};
  EXPECT_EQ(mir_store_module_new(&mc, &state), MIR_EINVAL);
  mc.store = s;
  EXPECT_EQ(mir_store_module_new(&mc, &state), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("votes"), std::string::npos);
  mc.cf = "default";
  ASSERT_EQ(mir_store_module_new(&mc, &state), MIR_OK);
  mir_store_module_ops.destroy(state);
  EXPECT_EQ(mir_store_close(s), MIR_OK);
}

}  // namespace
