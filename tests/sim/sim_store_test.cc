// Tests of the simulator's store module (mir_sim_add_store, the store contract of mir/storage.h
// with simulated syncs): then events only after the sync and in order, group commit, crashes
// that lose or tear unsynced writes, wipes, range deletes, iteration order, determinism, the
// TORN fault class, and the checker's rule for re-deliveries after a restart.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "sim_harness.h"

extern "C" {
#include "mir/storage.h"
}

using simtest::ms;
using simtest::Probe;
using simtest::World;

namespace {

// The harness world plus a store module "store" on every node.
mir_err store_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  mir_err err = simtest::world_build(user, sim, node, mn, restart);
  if (err == MIR_OK) err = mir_sim_add_store(sim, node, mn, "store");
  return err;
}

// A world config with the store module and a fixed sync time of sync_ns.
mir_sim_config store_config(World *w, size_t n, uint64_t seed, uint64_t sync_ns) {
  mir_sim_config cfg = simtest::world_config(w, n, seed);
  cfg.build = store_build;
  cfg.store.sync_min_ns = cfg.store.sync_max_ns = sync_ns;
  return cfg;
}

std::string key_of(uint64_t v) {
  return "k" + std::to_string(v);
}

// Emits a StoreWrite that puts key_of(v) = "v<v>" and releases TestUint64{v} to the probe.
void write_u64(uint64_t v, mir_event_list *out) {
  Mir__StoreWrite *w = mir_storage_write_new();
  std::string k = key_of(v), val = "v" + std::to_string(v);
  mir_storage_put(w, k.data(), k.size(), val.data(), val.size());
  mir_storage_then(w, mir_event_test_uint64("probe", "store", v));
  mir_event_list_push(out, mir_event_store_write("store", "probe", w));
}

bool has_key(mir_sim *sim, size_t node, const std::string &k) {
  return mir_sim_store_get(mir_sim_node_store(sim, node), k.data(), k.size(), nullptr, nullptr);
}

// Values of TestUint64 events fired at node's probe (released then events and timer firings).
std::vector<uint64_t> fired_values(const World &w, size_t node = 0) {
  std::vector<uint64_t> v;
  for (auto &f : w.fired) {
    if (f.node == node) v.push_back(f.value);
  }
  return v;
}

// The simulator's store counters and trace hash, read from its registry set.
struct StoreCounts {
  uint64_t store_writes, store_syncs, store_lost, store_torn, redeliveries, trace_hash;
};
StoreCounts stats_of(const mir_sim *sim) {
  return StoreCounts{simtest::sim_read(sim, "mir_sim_store_writes_total"),
                     simtest::sim_read(sim, "mir_sim_store_syncs_total"),
                     simtest::sim_read(sim, "mir_sim_store_writes_lost_total"),
                     simtest::sim_read(sim, "mir_sim_store_writes_torn_total"),
                     simtest::sim_read(sim, "mir_sim_redeliveries_total"),
                     mir_sim_trace_hash(sim)};
}

TEST(SimStoreModule, ConfigDefaultsAndChecks) {
  // Syncs take 200 us..2 ms by default and crashes do not tear; bad settings are refused.
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  EXPECT_EQ(cfg.store.sync_min_ns, 200u * 1000);
  EXPECT_EQ(cfg.store.sync_max_ns, 2 * MIR_SIM_NS_PER_MS);
  EXPECT_EQ(cfg.store.torn_ppm, 0u);
  World w;
  mir_sim *sim = nullptr;
  cfg = store_config(&w, 1, 1, ms(1));
  cfg.store.sync_min_ns = ms(2);
  EXPECT_EQ(mir_sim_new(&cfg, &sim), MIR_EINVAL);
  cfg = store_config(&w, 1, 1, ms(1));
  cfg.store.torn_ppm = MIR_SIM_PPM + 1;
  EXPECT_EQ(mir_sim_new(&cfg, &sim), MIR_EINVAL);
  EXPECT_EQ(sim, nullptr);
}

TEST(SimStoreModule, ThenEventsOnlyAfterTheSyncAndInOrder) {
  // Three writes of one batch are durable together after the sync time (1 ms): before it the
  // store is empty and nothing is released; then their events come out in write order, each
  // after its write is in the store.
  World w;
  std::vector<bool> durable_at_release;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 0) {
      for (uint64_t v = 1; v <= 3; v++) write_u64(v, out);
    }
  };
  w.on_event = [&](Probe *p, const mir_event *ev, mir_event_list *) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      uint64_t v = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
      durable_at_release.push_back(has_key(w.sim, p->node, key_of(v)));
    }
    return MIR_OK;
  };
  simtest::world_start(&w, store_config(&w, 1, 1, ms(1)));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1) - 1), MIR_OK);
  EXPECT_TRUE(w.fired.empty());
  EXPECT_EQ(mir_sim_store_count(mir_sim_node_store(w.sim, 0)), 0u);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  EXPECT_EQ(fired_values(w), (std::vector<uint64_t>{1, 2, 3}));
  for (auto &f : w.fired) EXPECT_EQ(f.at_ns, ms(1));
  EXPECT_EQ(durable_at_release, (std::vector<bool>{true, true, true}));
  EXPECT_EQ(mir_sim_store_count(mir_sim_node_store(w.sim, 0)), 3u);
  StoreCounts st = stats_of(w.sim);
  EXPECT_EQ(st.store_writes, 3u);
  EXPECT_EQ(st.store_syncs, 1u);
}

TEST(SimStoreModule, ReleaseEarlyIsAPlantedBug) {
  // With release_early the then events come out as the write is accepted, before it is in the
  // store; the write still becomes durable at its sync.
  World w;
  std::vector<bool> durable_at_release;
  w.on_init = [](Probe *, mir_event_list *out) { write_u64(1, out); };
  w.on_event = [&](Probe *p, const mir_event *ev, mir_event_list *) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      durable_at_release.push_back(has_key(w.sim, p->node, key_of(1)));
    }
    return MIR_OK;
  };
  mir_sim_config cfg = store_config(&w, 1, 1, ms(1));
  cfg.store.release_early = true;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  ASSERT_EQ(w.fired.size(), 1u);
  EXPECT_EQ(w.fired[0].at_ns, 0u);
  EXPECT_EQ(durable_at_release, (std::vector<bool>{false}));
  EXPECT_TRUE(has_key(w.sim, 0, key_of(1)));
}

TEST(SimStoreModule, SyncTimesAreDrawnFromTheConfiguredRange) {
  // With syncs of 1..5 ms, every write is released within that range after it was made, and the
  // delays vary.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    write_u64(100, out);
    for (uint64_t k = 1; k <= 20; k++) simtest::timer_u64(10 * k, k, out);
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) {
      uint64_t v = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
      if (v < 100) write_u64(100 + v, out);
    }
    return MIR_OK;
  };
  mir_sim_config cfg = store_config(&w, 1, 7, ms(1));
  cfg.store.sync_max_ns = ms(5);
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(500)), MIR_OK);
  std::set<uint64_t> delays;
  size_t released = 0;
  for (auto &f : w.fired) {
    if (f.value < 100) continue;
    released++;
    uint64_t made = (f.value - 100) * ms(10), delay = f.at_ns - made;
    EXPECT_GE(delay, ms(1)) << f.value;
    EXPECT_LE(delay, ms(5)) << f.value;
    delays.insert(delay);
  }
  EXPECT_EQ(released, 21u);
  EXPECT_GT(delays.size(), 5u);
}

TEST(SimStoreModule, GroupCommitWritesDuringASyncGoInTheNext) {
  // Syncs take 2 ms. Write 1 at 0 ms starts a sync; writes 2 and 3 at 1 ms wait for it and go
  // together in the next one (2..4 ms); write 4 at 3 ms waits for that one (4..6 ms).
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node != 0) return;
    write_u64(1, out);
    simtest::timer_u64(1, 1000, out);
    simtest::timer_u64(3, 3000, out);
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (!mir_event_is(ev, &mir__test_uint64__descriptor)) return MIR_OK;
    uint64_t v = reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value;
    if (v == 1000) {
      write_u64(2, out);
      write_u64(3, out);
    }
    if (v == 3000) write_u64(4, out);
    return MIR_OK;
  };
  simtest::world_start(&w, store_config(&w, 1, 1, ms(2)));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(20)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  std::vector<std::pair<uint64_t, uint64_t>> got;
  for (auto &f : w.fired) {
    if (f.value < 1000) got.push_back({f.value, f.at_ns});
  }
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{
                     {1, ms(2)}, {2, ms(4)}, {3, ms(4)}, {4, ms(6)}}));
  StoreCounts st = stats_of(w.sim);
  EXPECT_EQ(st.store_writes, 4u);
  EXPECT_EQ(st.store_syncs, 3u);
}

TEST(SimStoreModule, CrashLosesUnsyncedWritesAndReleasesNothing) {
  // Syncs take 10 ms. Writes 1..3 (in the sync) and 4 (queued behind it) are lost by a crash at
  // 5 ms: nothing of them reaches the store, none of their events is released. The node is back
  // at 6 ms and writes 9, whose sync must not complete early with the old incarnation's sync at
  // 10 ms: it completes at 16 ms.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->restart) {
      write_u64(9, out);
      return;
    }
    for (uint64_t v = 1; v <= 3; v++) write_u64(v, out);
    simtest::timer_u64(1, 1000, out);
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor) &&
        reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value == 1000) {
      write_u64(4, out);
    }
    return MIR_OK;
  };
  simtest::world_start(&w, store_config(&w, 1, 1, ms(10)));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(5)), MIR_OK);
  ASSERT_EQ(mir_sim_crash(w.sim, 0), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(6)), MIR_OK);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  std::vector<std::pair<uint64_t, uint64_t>> got;
  for (auto &f : w.fired) {
    if (f.value < 1000) got.push_back({f.value, f.at_ns});
  }
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{9, ms(16)}}));
  mir_sim_store *st = mir_sim_node_store(w.sim, 0);
  EXPECT_EQ(mir_sim_store_count(st), 1u);
  EXPECT_TRUE(has_key(w.sim, 0, key_of(9)));
  StoreCounts s = stats_of(w.sim);
  EXPECT_EQ(s.store_lost, 4u);
  EXPECT_EQ(s.store_torn, 0u);
  EXPECT_EQ(s.store_syncs, 1u);
}

// Runs one node that makes writes 0..7 (0..3 at 0 ms, in the first sync; 4..7 at 1 ms, queued)
// with 10 ms syncs and torn_ppm, and crashes it at 5 ms. Returns how many writes the store kept.
size_t torn_run(uint64_t seed, uint32_t torn_ppm, World &w) {
  w.on_init = [](Probe *, mir_event_list *out) {
    for (uint64_t v = 0; v < 4; v++) write_u64(v, out);
    simtest::timer_u64(1, 1000, out);
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor) &&
        reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value == 1000) {
      for (uint64_t v = 4; v < 8; v++) write_u64(v, out);
    }
    return MIR_OK;
  };
  mir_sim_config cfg = store_config(&w, 1, seed, ms(10));
  cfg.store.torn_ppm = torn_ppm;
  simtest::world_start(&w, cfg);
  EXPECT_EQ(mir_sim_run_until(w.sim, ms(5)), MIR_OK);
  EXPECT_EQ(mir_sim_crash(w.sim, 0), MIR_OK);
  EXPECT_EQ(mir_sim_run_until(w.sim, ms(50)), MIR_OK);
  return mir_sim_store_count(mir_sim_node_store(w.sim, 0));
}

TEST(SimStoreModule, TornCrashKeepsAPrefixOfTheUnsyncedWrites) {
  // With torn_ppm = 1e6 every crash keeps a random prefix (whole writes, FIFO order, across the
  // sync in flight and the queue behind it) of the 8 unsynced writes: exactly keys 0..kept-1.
  // Nothing is released. Over seeds the prefix length varies, and reaches into the queue.
  std::set<size_t> lengths;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    World w;
    size_t kept = torn_run(seed, MIR_SIM_PPM, w);
    EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
    ASSERT_LE(kept, 8u);
    for (uint64_t v = 0; v < 8; v++) {
      EXPECT_EQ(has_key(w.sim, 0, key_of(v)), v < kept) << "seed " << seed << " key " << v;
    }
    for (auto &f : w.fired) EXPECT_GE(f.value, 1000u) << "released a then event of a lost write";
    StoreCounts st = stats_of(w.sim);
    EXPECT_EQ(st.store_torn, kept);
    EXPECT_EQ(st.store_lost, 8 - kept);
    lengths.insert(kept);
  }
  EXPECT_GT(lengths.size(), 4u);
  EXPECT_GT(*lengths.rbegin(), 4u);  // some prefix took writes from behind the sync in flight
}

TEST(SimStoreModule, WithoutTornCrashesKeepNothing) {
  // torn_ppm = 0: every crash loses all 8 unsynced writes, whatever the seed.
  for (uint64_t seed = 1; seed <= 10; seed++) {
    World w;
    EXPECT_EQ(torn_run(seed, 0, w), 0u) << seed;
    EXPECT_EQ(stats_of(w.sim).store_lost, 8u);
  }
}

TEST(SimStoreModule, WipeClearsTheStoreAndEveryPendingWrite) {
  // Write 1 is synced (1 ms); writes 2, 3 are in a 10 ms sync when the node is restarted wiped
  // at 5 ms with torn crashes on: the store is empty afterwards, nothing of 2 or 3 is released,
  // and the node is faulty.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (!p->restart) write_u64(1, out);
  };
  uint64_t sync_ns = ms(1);
  mir_sim_config cfg = store_config(&w, 1, 3, sync_ns);
  cfg.store.sync_max_ns = ms(10);
  cfg.store.torn_ppm = MIR_SIM_PPM;
  simtest::world_start(&w, cfg);
  // Run until write 1 is durable, then queue writes 2 and 3 from outside.
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  ASSERT_TRUE(has_key(w.sim, 0, key_of(1)));
  mir_event_list l = MIR_EVENT_LIST_INIT;
  write_u64(2, &l);
  write_u64(3, &l);
  ASSERT_EQ(mir_sim_inject(w.sim, 0, &l), MIR_OK);
  bool progress = true;
  while (progress && stats_of(w.sim).store_writes < 3)
    ASSERT_EQ(mir_sim_step(w.sim, &progress), MIR_OK);
  ASSERT_EQ(stats_of(w.sim).store_writes, 3u);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, true), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  EXPECT_EQ(mir_sim_store_count(mir_sim_node_store(w.sim, 0)), 0u);
  EXPECT_EQ(fired_values(w), (std::vector<uint64_t>{1}));
  EXPECT_FALSE(mir_sim_node_correct(w.sim, 0));
  StoreCounts st = stats_of(w.sim);
  EXPECT_EQ(st.store_lost + st.store_torn, 2u);
}

TEST(SimStoreModule, DeletesAndRangeDeletesApplyAtTheSync) {
  // One write puts a..e; the next deletes [b, d) and e: after the sync the store holds a and d.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    Mir__StoreWrite *w1 = mir_storage_write_new();
    for (const char *k : {"a", "b", "bb", "c", "d", "e"}) mir_storage_put(w1, k, strlen(k), "x", 1);
    mir_event_list_push(out, mir_event_store_write("store", "probe", w1));
    Mir__StoreWrite *w2 = mir_storage_write_new();
    mir_storage_delete_range(w2, "b", 1, "d", 1);
    mir_storage_delete(w2, "e", 1);
    mir_storage_delete(w2, "zz", 2);  // absent: nothing to do
    mir_event_list_push(out, mir_event_store_write("store", "probe", w2));
  };
  simtest::world_start(&w, store_config(&w, 1, 1, ms(1)));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  mir_sim_store *st = mir_sim_node_store(w.sim, 0);
  std::vector<std::string> keys;
  const uint8_t *k;
  size_t klen;
  for (size_t i = 0; mir_sim_store_at(st, i, &k, &klen, nullptr, nullptr); i++) {
    keys.emplace_back(reinterpret_cast<const char *>(k), klen);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "d"}));
}

TEST(SimStore, DeleteRangeRemovesHalfOpenRanges) {
  // [begin, end) in bytewise order, a prefix before its extensions; empty and inverted ranges
  // remove nothing; the byte count follows (a value of the freed size fits again).
  mir_sim_store *st = mir_sim_store_new();
  for (const char *k : {"a", "b", "ba", "bz", "c", "d"}) {
    ASSERT_EQ(mir_sim_store_put(st, k, strlen(k), "v", 1), MIR_OK);
  }
  ASSERT_EQ(mir_sim_store_put(st, "b\0", 2, "v", 1), MIR_OK);
  EXPECT_EQ(mir_sim_store_delete_range(st, "c", 1, "b", 1), 0u);  // inverted
  EXPECT_EQ(mir_sim_store_delete_range(st, "b", 1, "b", 1), 0u);  // empty
  EXPECT_EQ(mir_sim_store_delete_range(st, "x", 1, "y", 1), 0u);  // past the end
  EXPECT_EQ(mir_sim_store_count(st), 7u);
  EXPECT_EQ(mir_sim_store_delete_range(st, "b", 1, "c", 1), 4u);  // b, b\0, ba, bz
  EXPECT_EQ(mir_sim_store_count(st), 3u);
  EXPECT_TRUE(mir_sim_store_get(st, "c", 1, nullptr, nullptr));  // end is exclusive
  EXPECT_TRUE(mir_sim_store_get(st, "a", 1, nullptr, nullptr));
  EXPECT_EQ(mir_sim_store_delete_range(st, "", 0, "zz", 2), 3u);  // everything
  EXPECT_EQ(mir_sim_store_count(st), 0u);
  std::vector<uint8_t> big(MIR_SIM_STORE_BYTES_MAX - 1);
  EXPECT_EQ(mir_sim_store_put(st, "k", 1, big.data(), big.size()), MIR_OK);
  mir_sim_store_free(st);
}

TEST(SimStore, IterationIsInKeyOrder) {
  // mir_sim_store_at walks the keys in bytewise order, whatever the insertion order, with their
  // values; past the count it returns false.
  mir_sim_store *st = mir_sim_store_new();
  std::vector<std::string> in = {"m", "a", "zz", "a\x01", "\xff", "b", "ab", "z"};
  for (auto &k : in) {
    std::string v = "v" + k;
    ASSERT_EQ(mir_sim_store_put(st, k.data(), k.size(), v.data(), v.size()), MIR_OK);
  }
  std::vector<std::string> want = in;
  std::sort(want.begin(), want.end(), [](const std::string &x, const std::string &y) {
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end(),
                                        [](char p, char q) { return (uint8_t)p < (uint8_t)q; });
  });
  std::vector<std::string> got;
  const uint8_t *k, *v;
  size_t klen, vlen;
  for (size_t i = 0; i < mir_sim_store_count(st); i++) {
    ASSERT_TRUE(mir_sim_store_at(st, i, &k, &klen, &v, &vlen));
    got.emplace_back(reinterpret_cast<const char *>(k), klen);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(v), vlen), "v" + got.back());
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.front(), "a");
  EXPECT_EQ(got.back(), "\xff");
  EXPECT_FALSE(mir_sim_store_at(st, in.size(), &k, &klen, &v, &vlen));
  mir_sim_store_free(st);
}

TEST(SimStoreModule, BadEventsStopTheNode) {
  // Another event type at the store module, or a write mir_storage_check refuses, stops the node
  // and fails the run with a message naming the problem.
  for (int c = 0; c < 2; c++) {
    World w;
    w.on_init = [c](Probe *, mir_event_list *out) {
      if (c == 0) {
        mir_event_list_push(out, mir_event_test_uint64("store", "probe", 1));
      } else {
        Mir__StoreWrite *wr = mir_storage_write_new();
        mir_storage_put(wr, "", 0, "v", 1);  // empty key
        mir_event_list_push(out, mir_event_store_write("store", "probe", wr));
      }
    };
    simtest::world_start(&w, store_config(&w, 1, 1, ms(1)));
    ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
    ASSERT_TRUE(mir_sim_failed(w.sim)) << c;
    std::string f = mir_sim_failure(w.sim);
    EXPECT_NE(f.find(c == 0 ? "TestUint64" : "key of 0 bytes"), std::string::npos) << f;
  }
}

// A two-node world where each node writes on a 3 ms repeat and node 1 crashes and restarts a few
// times with torn crashes; returns the trace and the stats.
std::pair<std::string, StoreCounts> store_traffic(uint64_t seed) {
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    mir_event_list evs = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&evs, mir_event_test_uint64("probe", "probe", 5000));
    mir_event_list_push(out, mir_event_timer_repeat("timer", "probe", &evs, 3, 0));
  };
  uint64_t next = 0;
  w.on_event = [&next](Probe *p, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor) &&
        reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value == 5000) {
      write_u64(++next, out);
      if (next % 2) write_u64(++next, out);
      simtest::send_u64(p->node, {1 - p->node}, next, out);
    }
    return MIR_OK;
  };
  char *buf = nullptr;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  mir_sim_config cfg = store_config(&w, 2, seed, ms(1));
  cfg.store.sync_max_ns = ms(8);
  cfg.store.torn_ppm = MIR_SIM_PPM / 2;
  cfg.trace = mem;
  simtest::world_start(&w, cfg);
  for (uint64_t t = 20; t <= 200; t += 20) {
    EXPECT_EQ(mir_sim_run_until(w.sim, ms(t)), MIR_OK);
    if ((t / 20) % 2) {
      EXPECT_EQ(mir_sim_crash(w.sim, 1), MIR_OK);
    } else {
      EXPECT_EQ(mir_sim_restart(w.sim, 1, false), MIR_OK);
    }
  }
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  StoreCounts st = stats_of(w.sim);
  mir_sim_free(w.sim);
  w.sim = nullptr;
  fclose(mem);
  std::string trace(buf, len);
  free(buf);
  return {trace, st};
}

TEST(SimStoreModule, SameSeedSameTraceWithAStoreInUse) {
  // Random sync times and torn crashes come from the seed: the same seed gives the same trace
  // and trace hash, another seed another.
  auto a = store_traffic(11), b = store_traffic(11), c = store_traffic(12);
  EXPECT_GT(a.second.store_syncs, 20u);
  EXPECT_GT(a.second.store_lost + a.second.store_torn, 0u);
  EXPECT_NE(a.first.find("unsynced writes lost"), std::string::npos);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second.trace_hash, b.second.trace_hash);
  EXPECT_NE(a.second.trace_hash, c.second.trace_hash);
  EXPECT_NE(a.first, c.first);
}

// ---- the TORN fault class ----

TEST(SimProfileTorn, TornClassSetsTornPpmAndLeavesTheOtherClassesAlone) {
  // TORN alone sets torn_ppm; in swarm mode the seed picks it for some seeds; and offering it
  // changes none of the other classes' picks or rates for any seed.
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  EXPECT_EQ(mir_sim_profile_apply(&cfg, MIR_SIM_FAULT_TORN, 1), (unsigned)MIR_SIM_FAULT_TORN);
  EXPECT_GT(cfg.store.torn_ppm, 0u);
  EXPECT_LE(cfg.store.torn_ppm, MIR_SIM_PPM);
  size_t torn = 0;
  for (uint64_t seed = 1; seed <= 200; seed++) {
    mir_sim_config x, y;
    mir_sim_config_default(&x);
    mir_sim_config_default(&y);
    unsigned cx = mir_sim_profile_apply(&x, 0xffu | MIR_SIM_FAULT_SWARM, seed);
    unsigned cy = mir_sim_profile_apply(&y, MIR_SIM_FAULT_ALL | MIR_SIM_FAULT_SWARM, seed);
    EXPECT_EQ(cx, cy & ~(unsigned)MIR_SIM_FAULT_TORN) << seed;
    EXPECT_EQ((cy & MIR_SIM_FAULT_TORN) != 0, y.store.torn_ppm > 0) << seed;
    y.store.torn_ppm = 0;
    EXPECT_EQ(memcmp(&x, &y, sizeof x), 0) << seed;
    torn += (cy & MIR_SIM_FAULT_TORN) != 0;
  }
  EXPECT_GT(torn, 50u);
  EXPECT_LT(torn, 150u);
  char buf[128];
  mir_sim_fault_classes_format(MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_TORN, buf, sizeof buf);
  EXPECT_STREQ(buf, "crash+torn");
}

// ---- re-deliveries after a restart ----

// A 2-node world (no store needed) where node 0 has delivered "a" at position 1 and then
// restarted with its store.
void delivered_then_restarted(World &w, bool unique_values) {
  mir_sim_config cfg = simtest::world_config(&w, 2, 1);
  cfg.checks.unique_values = unique_values;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  mir_sim_report_delivery(w.sim, 1, 1, "a", 1);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, false), MIR_OK);
}

TEST(SimCheckRedelivery, SameValueAfterARestartIsARedelivery) {
  // The restarted node delivers position 1 again with "a": counted as a re-delivery, no failure
  // (unique values on too); a third time in the same incarnation is a duplicate.
  World w;
  delivered_then_restarted(w, true);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  EXPECT_EQ(stats_of(w.sim).redeliveries, 1u);
  mir_sim_report_delivery(w.sim, 0, 2, "b", 1);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, false), MIR_OK);  // and again after a second restart
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  mir_sim_report_delivery(w.sim, 0, 2, "b", 1);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  EXPECT_EQ(stats_of(w.sim).redeliveries, 3u);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  ASSERT_TRUE(mir_sim_failed(w.sim));
  EXPECT_NE(std::string(mir_sim_failure(w.sim)).find("position 1 twice"), std::string::npos)
      << mir_sim_failure(w.sim);
}

TEST(SimCheckRedelivery, AnotherValueAfterARestartFails) {
  // The restarted node delivers "b" where it delivered "a": a failure naming the node, the
  // position, both values and the restart.
  World w;
  delivered_then_restarted(w, false);
  mir_sim_report_delivery(w.sim, 0, 1, "b", 1);
  ASSERT_TRUE(mir_sim_failed(w.sim));
  std::string f = mir_sim_failure(w.sim);
  EXPECT_NE(f.find("node 0"), std::string::npos) << f;
  EXPECT_NE(f.find("position 1"), std::string::npos) << f;
  EXPECT_NE(f.find("\"a\""), std::string::npos) << f;
  EXPECT_NE(f.find("\"b\""), std::string::npos) << f;
  EXPECT_NE(f.find("after a restart"), std::string::npos) << f;
  EXPECT_EQ(stats_of(w.sim).redeliveries, 0u);
}

TEST(SimCheckRedelivery, TwiceInOneIncarnationIsADuplicate) {
  // Without a restart in between, the same value at the same position is still a duplicate.
  World w;
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  ASSERT_TRUE(mir_sim_failed(w.sim));
  EXPECT_NE(std::string(mir_sim_failure(w.sim)).find("twice"), std::string::npos);
  EXPECT_EQ(stats_of(w.sim).redeliveries, 0u);
}

TEST(SimCheckRedelivery, WipedNodesStartFromScratch) {
  // A wiped node's earlier deliveries are forgotten (it is faulty and starts over): delivering
  // position 1 again is neither a duplicate nor a re-delivery.
  World w;
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, true), MIR_OK);
  EXPECT_EQ(mir_sim_delivered_count(w.sim, 0), 0u);
  mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  EXPECT_EQ(stats_of(w.sim).redeliveries, 0u);
  EXPECT_EQ(mir_sim_delivered_count(w.sim, 0), 1u);
}

}  // namespace
