// Tests of the simulator's runtime: the generator, the virtual clock, the sim transport and timer,
// faults (drop, duplicate, reorder, partitions, crashes, clock speed), the store, the crypto fake,
// Byzantine filters, budgets and the checkers.
#include <algorithm>
#include <cstring>
#include <set>

#include "sim_harness.h"

using simtest::ms;
using simtest::Probe;
using simtest::World;

namespace {

// ---- the generator ----

TEST(SimRng, SameSeedSameStream) {
  // The same seed gives the same stream; another seed gives another.
  mir_sim_rng a, b, c;
  mir_sim_rng_init(&a, 42);
  mir_sim_rng_init(&b, 42);
  mir_sim_rng_init(&c, 43);
  bool differs = false;
  for (int i = 0; i < 1000; i++) {
    uint64_t x = mir_sim_rng_next(&a);
    EXPECT_EQ(x, mir_sim_rng_next(&b));
    differs = differs || x != mir_sim_rng_next(&c);
  }
  EXPECT_TRUE(differs);
}

TEST(SimRng, BoundedDrawsStayInRangeAndCoverIt) {
  // below(n) stays below n and hits every value; range is inclusive; chance honours 0 and 1e6.
  mir_sim_rng r;
  mir_sim_rng_init(&r, 0);
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 7000; i++) {
    uint64_t v = mir_sim_rng_below(&r, 7);
    ASSERT_LT(v, 7u);
    seen[v]++;
  }
  for (int s : seen) EXPECT_GT(s, 800);
  for (int i = 0; i < 1000; i++) {
    uint64_t v = mir_sim_rng_range(&r, 5, 6);
    ASSERT_TRUE(v == 5 || v == 6);
    EXPECT_FALSE(mir_sim_rng_chance(&r, 0));
    EXPECT_TRUE(mir_sim_rng_chance(&r, MIR_SIM_PPM));
  }
  EXPECT_NE(mir_sim_seed_derive(1, 1), mir_sim_seed_derive(1, 2));
  EXPECT_NE(mir_sim_seed_derive(1, 1), mir_sim_seed_derive(2, 1));
}

// ---- the virtual clock and the timer ----

TEST(SimClock, TimeMovesOnlyToScheduledActions) {
  // A 100 ms timer fires at exactly 100 ms of virtual time; running to 50 ms does not fire it
  // and leaves the clock at 50 ms.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 0) simtest::timer_u64(100, 7, out);
  };
  simtest::world_start(&w, simtest::world_config(&w, 1, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(50)), MIR_OK);
  EXPECT_EQ(mir_sim_now(w.sim), ms(50));
  EXPECT_TRUE(w.fired.empty());
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1000)), MIR_OK);
  ASSERT_EQ(w.fired.size(), 1u);
  EXPECT_EQ(w.fired[0].value, 7u);
  EXPECT_EQ(w.fired[0].at_ns, ms(100));
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
}

TEST(SimClock, ClockSpeedScalesTimers) {
  // A node whose clock runs at half speed (2e6 ppm) fires a 100 ms timer at 200 ms.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) { simtest::timer_u64(100, 1, out); };
  mir_sim_config cfg = simtest::world_config(&w, 1, 1);
  cfg.clock_min_ppm = cfg.clock_max_ppm = 2 * MIR_SIM_PPM;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1000)), MIR_OK);
  ASSERT_EQ(w.fired.size(), 1u);
  EXPECT_EQ(w.fired[0].at_ns, ms(200));
  EXPECT_EQ(mir_sim_node_clock_ppm(w.sim, 0), 2 * MIR_SIM_PPM);
}

TEST(SimClock, SkewedClocksFireEarlyOrLate) {
  // With clock speeds drawn from [0.5x, 2x] and jitter, nodes fire the same 100 ms timer at
  // different virtual times, all within the scaled bounds.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) { simtest::timer_u64(100, 1, out); };
  mir_sim_config cfg = simtest::world_config(&w, 8, 3);
  cfg.clock_min_ppm = MIR_SIM_PPM / 2;
  cfg.clock_max_ppm = 2 * MIR_SIM_PPM;
  cfg.timer_jitter_ppm = MIR_SIM_PPM / 10;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1000)), MIR_OK);
  ASSERT_EQ(w.fired.size(), 8u);
  std::set<uint64_t> times;
  for (auto &f : w.fired) {
    EXPECT_GE(f.at_ns, ms(45));
    EXPECT_LE(f.at_ns, ms(220));
    times.insert(f.at_ns);
  }
  EXPECT_GT(times.size(), 4u);
}

TEST(SimTimer, RepeatFiresEveryPeriodUntilGarbageCollected) {
  // A 10 ms repeat fires at 10, 20, 30 ms...; a GarbageCollect above its retention index at
  // 35 ms stops it.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    mir_event_list evs = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&evs, mir_event_test_uint64("probe", "probe", 1));
    mir_event_list_push(out, mir_event_timer_repeat("timer", "probe", &evs, 10, 3));
    simtest::timer_u64(35, 99, out);
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor) &&
        reinterpret_cast<Mir__TestUint64 *>(ev->payload)->value == 99) {
      mir_event_list_push(out, mir_event_garbage_collect("timer", "probe", 4));
    }
    return MIR_OK;
  };
  simtest::world_start(&w, simtest::world_config(&w, 1, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(200)), MIR_OK);
  std::vector<uint64_t> ticks;
  for (auto &f : w.fired) {
    if (f.value == 1) ticks.push_back(f.at_ns);
  }
  EXPECT_EQ(ticks, (std::vector<uint64_t>{ms(10), ms(20), ms(30)}));
}

TEST(SimTimer, BadRequestStopsTheRun) {
  // A repeat with period 0 is the requesting module's bug: the node stops and the run fails.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    mir_event_list evs = MIR_EVENT_LIST_INIT;
    mir_event_list_push(out, mir_event_timer_repeat("timer", "probe", &evs, 0, 0));
  };
  simtest::world_start(&w, simtest::world_config(&w, 1, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  EXPECT_TRUE(mir_sim_failed(w.sim));
  EXPECT_NE(std::string(mir_sim_failure(w.sim)).find("period"), std::string::npos);
}

// ---- the transport ----

// Node 0 sends 0..count-1 to node 1, one message per event, all at time 0.
void sender(World *w, uint64_t count) {
  w->on_init = [count](Probe *p, mir_event_list *out) {
    if (p->node != 0) return;
    for (uint64_t k = 0; k < count; k++) simtest::send_u64(0, {1}, k, out);
  };
}

TEST(SimNet, ZeroFaultsDeliversEverythingInOrder) {
  // Without faults, every message arrives once, in sending order, after the configured delay.
  World w;
  sender(&w, 50);
  mir_sim_config cfg = simtest::world_config(&w, 2, 5);
  cfg.net.delay_min_ns = ms(1);
  cfg.net.delay_max_ns = ms(9);
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  ASSERT_EQ(w.received.size(), 50u);
  for (uint64_t k = 0; k < 50; k++) {
    EXPECT_EQ(w.received[k].value, k);
    EXPECT_EQ(w.received[k].from, 0u);
    EXPECT_GE(w.received[k].at_ns, ms(1));
    EXPECT_LE(w.received[k].at_ns, ms(9));
  }
}

TEST(SimNet, ReorderLetsMessagesOvertake) {
  // With reordering on, wide delays make later messages arrive before earlier ones.
  World w;
  sender(&w, 50);
  mir_sim_config cfg = simtest::world_config(&w, 2, 5);
  cfg.net.delay_min_ns = ms(1);
  cfg.net.delay_max_ns = ms(50);
  cfg.net.reorder = true;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(200)), MIR_OK);
  ASSERT_EQ(w.received.size(), 50u);
  size_t inversions = 0;
  for (size_t k = 1; k < w.received.size(); k++) {
    inversions += w.received[k].value < w.received[k - 1].value;
  }
  EXPECT_GT(inversions, 5u);
}

TEST(SimNet, DropLosesMessagesOnlyBeforeHeal) {
  // With drop at 100% until heal_ns, messages sent before it are lost and those sent after arrive.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 0) {
      simtest::send_u64(0, {1}, 1, out);
      simtest::timer_u64(600, 0, out);
    }
  };
  w.on_event = [](Probe *p, const mir_event *ev, mir_event_list *out) {
    if (p->node == 0 && mir_event_is(ev, &mir__test_uint64__descriptor)) {
      simtest::send_u64(0, {1}, 2, out);
    }
    return MIR_OK;
  };
  mir_sim_config cfg = simtest::world_config(&w, 2, 1);
  cfg.net.drop_ppm = MIR_SIM_PPM;
  cfg.heal_ns = ms(500);
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1000)), MIR_OK);
  ASSERT_EQ(w.received.size(), 1u);
  EXPECT_EQ(w.received[0].value, 2u);
  EXPECT_EQ(simtest::sim_read(w.sim, "mir_sim_messages_lost_total", "dropped"), 1u);
}

TEST(SimNet, DuplicateDeliversTwice) {
  // With duplication at 100%, every message arrives twice.
  World w;
  sender(&w, 10);
  mir_sim_config cfg = simtest::world_config(&w, 2, 1);
  cfg.net.duplicate_ppm = MIR_SIM_PPM;
  cfg.heal_ns = ms(1000);
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  EXPECT_EQ(w.received.size(), 20u);
  for (uint64_t k = 0; k < 10; k++) {
    EXPECT_EQ(std::count_if(w.received.begin(), w.received.end(),
                            [k](const simtest::Received &r) { return r.value == k; }),
              2);
  }
}

TEST(SimNet, PartitionsBlockAndHeal) {
  // A two-way partition blocks both directions, a one-way one only its side's sends, and after
  // healing messages flow again. Messages in flight when the partition starts are lost too.
  World w;
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);  // nodes start
  auto send = [&](size_t from, size_t to, uint64_t v) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    simtest::send_u64(from, {to}, v, &l);
    ASSERT_EQ(mir_sim_inject(w.sim, from, &l), MIR_OK);
  };
  ASSERT_EQ(mir_sim_partition(w.sim, 0x1, false), MIR_OK);
  send(0, 1, 1);
  send(1, 0, 2);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(50)), MIR_OK);
  EXPECT_TRUE(w.received.empty());
  mir_sim_heal(w.sim);
  ASSERT_EQ(mir_sim_partition(w.sim, 0x1, true), MIR_OK);
  send(0, 1, 3);
  send(1, 0, 4);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  ASSERT_EQ(w.received.size(), 1u);
  EXPECT_EQ(w.received[0].value, 4u);
  send(0, 1, 5);  // in flight when the partition heals... and is re-blocked before arrival
  mir_sim_heal(w.sim);
  send(0, 1, 6);
  ASSERT_EQ(mir_sim_partition(w.sim, 0x2, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(150)), MIR_OK);
  EXPECT_EQ(w.received.size(), 1u);  // 5 blocked at sending, 6 blocked at arrival
  mir_sim_heal(w.sim);
  send(0, 1, 7);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(200)), MIR_OK);
  ASSERT_EQ(w.received.size(), 2u);
  EXPECT_EQ(w.received[1].value, 7u);
  EXPECT_EQ(mir_sim_partition(w.sim, 0x3, false), MIR_EINVAL);  // not a proper subset
}

TEST(SimNet, UnknownDestinationsAreCounted) {
  // A SendMessage naming a node that does not exist is counted and dropped, not an error.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    const char *bad[] = {"7", "x", "01"};
    Mir__TestUint64 m = MIR__TEST_UINT64__INIT;
    if (p->node == 0) {
      mir_event_list_push(out, mir_event_send_message("net", "probe", bad, 3, "probe", &m.base));
    }
  };
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  EXPECT_EQ(simtest::sim_read(w.sim, "mir_sim_messages_lost_total", "unknown_destination"), 3u);
  EXPECT_FALSE(mir_sim_failed(w.sim));
}

// ---- crashes, restarts and the store ----

TEST(SimCrash, CrashLosesInFlightStateAndTimers) {
  // A crashed node loses its timers and what arrives while it is down; after a restart it is
  // rebuilt (restart = true) and old timers stay dead while new ones fire.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 1) simtest::timer_u64(100, p->restart ? 2 : 1, out);
  };
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  ASSERT_EQ(mir_sim_crash(w.sim, 1), MIR_OK);
  EXPECT_FALSE(mir_sim_node_up(w.sim, 1));
  mir_event_list l = MIR_EVENT_LIST_INIT;
  simtest::send_u64(0, {1}, 9, &l);
  ASSERT_EQ(mir_sim_inject(w.sim, 0, &l), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(50)), MIR_OK);
  ASSERT_EQ(mir_sim_restart(w.sim, 1, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(500)), MIR_OK);
  EXPECT_TRUE(w.received.empty());  // the message arrived while node 1 was down
  ASSERT_EQ(w.fired.size(), 1u);
  EXPECT_EQ(w.fired[0].value, 2u);  // only the new incarnation's timer
  EXPECT_EQ(w.fired[0].at_ns, ms(150));
  EXPECT_EQ(w.boots[1], 2u);
  EXPECT_EQ(simtest::sim_read(w.sim, "mir_sim_messages_lost_total", "down"), 1u);
  EXPECT_EQ(simtest::sim_read(w.sim, "mir_sim_crashes_total"), 1u);
  EXPECT_EQ(simtest::sim_read(w.sim, "mir_sim_restarts_total"), 1u);
}

TEST(SimCrash, NodeMetricsSumEveryIncarnation) {
  // The simulator's per-node set keeps a crashed incarnation's counters (folded at the crash) and
  // adds the running one's, so a run's totals never go back; the running node's own tree holds
  // only what it applied itself.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 1) simtest::timer_u64(100, 1, out);
  };
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  const char *events = "mir_module_events_total";
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  int64_t first = mir_metrics_read(mir_sim_node_metrics(w.sim, 1), events, nullptr);
  EXPECT_GT(first, 0);
  ASSERT_EQ(mir_sim_crash(w.sim, 1), MIR_OK);
  EXPECT_EQ(mir_metrics_read(mir_sim_node_metrics(w.sim, 1), events, nullptr), first);
  ASSERT_EQ(mir_sim_restart(w.sim, 1, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(500)), MIR_OK);
  int64_t own = mir_metrics_read(mir_node_metrics(mir_sim_node(w.sim, 1)), events, nullptr);
  EXPECT_GT(own, 0);
  EXPECT_EQ(mir_metrics_read(mir_sim_node_metrics(w.sim, 1), events, nullptr), first + own);
}

TEST(SimCrash, RestartKeepsTheStoreAndWipeClearsIt) {
  // The store outlives a crash; a wiped restart clears it and marks the node faulty.
  World w;
  w.on_init = [&w](Probe *p, mir_event_list *) {
    mir_sim_store *st = mir_sim_node_store(w.sim, p->node);
    uint64_t boots = 0;
    const void *v;
    size_t len;
    if (mir_sim_store_get(st, "boots", 5, &v, &len)) memcpy(&boots, v, sizeof boots);
    boots++;
    ASSERT_EQ(mir_sim_store_put(st, "boots", 5, &boots, sizeof boots), MIR_OK);
  };
  simtest::world_start(&w, simtest::world_config(&w, 1, 1));
  auto boots = [&]() {
    const void *v;
    size_t len;
    uint64_t b = 0;
    if (mir_sim_store_get(mir_sim_node_store(w.sim, 0), "boots", 5, &v, &len)) {
      memcpy(&b, v, sizeof b);
    }
    return b;
  };
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);
  EXPECT_EQ(boots(), 1u);
  ASSERT_EQ(mir_sim_restart(w.sim, 0, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(2)), MIR_OK);
  EXPECT_EQ(boots(), 2u);
  EXPECT_TRUE(mir_sim_node_correct(w.sim, 0));
  ASSERT_EQ(mir_sim_restart(w.sim, 0, true), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(3)), MIR_OK);
  EXPECT_EQ(boots(), 1u);
  EXPECT_FALSE(mir_sim_node_correct(w.sim, 0));
}

TEST(SimStore, PutGetDeleteAndBounds) {
  // The store keeps binary keys, replaces values, deletes, and refuses values past its bound.
  mir_sim_store *st = mir_sim_store_new();
  ASSERT_EQ(mir_sim_store_put(st, "b", 1, "2", 1), MIR_OK);
  ASSERT_EQ(mir_sim_store_put(st, "a", 1, "1", 1), MIR_OK);
  ASSERT_EQ(mir_sim_store_put(st, "a\0x", 3, "3", 1), MIR_OK);
  ASSERT_EQ(mir_sim_store_put(st, "a", 1, "11", 2), MIR_OK);
  EXPECT_EQ(mir_sim_store_count(st), 3u);
  const void *v;
  size_t len;
  ASSERT_TRUE(mir_sim_store_get(st, "a", 1, &v, &len));
  EXPECT_EQ(std::string(static_cast<const char *>(v), len), "11");
  ASSERT_TRUE(mir_sim_store_get(st, "a\0x", 3, &v, &len));
  EXPECT_EQ(std::string(static_cast<const char *>(v), len), "3");
  EXPECT_TRUE(mir_sim_store_delete(st, "b", 1));
  EXPECT_FALSE(mir_sim_store_delete(st, "b", 1));
  EXPECT_FALSE(mir_sim_store_get(st, "b", 1, &v, &len));
  std::vector<uint8_t> big(MIR_SIM_STORE_BYTES_MAX);
  EXPECT_EQ(mir_sim_store_put(st, "c", 1, big.data(), big.size()), MIR_EFULL);
  mir_sim_store_clear(st);
  EXPECT_EQ(mir_sim_store_count(st), 0u);
  mir_sim_store_free(st);
}

// ---- crypto ----

// Node 0 signs "data", then asks to verify the signature as node 0 (ok), as node 1 (not ok),
// over other data (not ok), and all three at once.
void crypto_script(World *w) {
  w->on_init = [](Probe *p, mir_event_list *out) {
    if (p->node != 0) return;
    ProtobufCBinaryData part = {4, (uint8_t *)"data"};
    mir_event_list_push(out, mir_event_sign_request("crypto", "probe", &part, 1, 1));
  };
  w->on_event = [w](Probe *, const mir_event *ev, mir_event_list *out) {
    if (!mir_event_is(ev, &mir__sign_result__descriptor)) return MIR_OK;
    auto *r = reinterpret_cast<Mir__SignResult *>(ev->payload);
    ProtobufCBinaryData good = {4, (uint8_t *)"data"}, bad = {4, (uint8_t *)"date"};
    const uint8_t *sig = r->signature.data;
    size_t len = r->signature.len;
    mir_event_list_push(out,
                        mir_event_verify_request("crypto", "probe", &good, 1, sig, len, "0", 2));
    mir_event_list_push(out,
                        mir_event_verify_request("crypto", "probe", &good, 1, sig, len, "1", 3));
    mir_event_list_push(out,
                        mir_event_verify_request("crypto", "probe", &bad, 1, sig, len, "0", 4));
    (void)w;
    return MIR_OK;
  };
}

TEST(SimCrypto, FakeSignaturesBindSignerAndData) {
  // The fake signer's signature verifies for its node and data only.
  World w;
  crypto_script(&w);
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
  EXPECT_EQ(w.crypto_results,
            (std::vector<std::string>{"sign:64", "verify:1", "verify:0", "verify:0"}));
  uint8_t again[MIR_SIM_SIG_LEN];
  ProtobufCBinaryData part = {4, (uint8_t *)"data"};
  ASSERT_EQ(mir_sim_sign(w.sim, 0, &part, 1, again), MIR_OK);
  ASSERT_EQ(w.signatures.size(), 1u);
  EXPECT_EQ(std::vector<uint8_t>(again, again + MIR_SIM_SIG_LEN), w.signatures[0]);
}

TEST(SimCrypto, Ed25519IsDeterministicToo) {
  // With real Ed25519 keys derived from the seed, the same checks hold and two runs sign alike.
  std::vector<uint8_t> first;
  for (int run = 0; run < 2; run++) {
    World w;
    crypto_script(&w);
    mir_sim_config cfg = simtest::world_config(&w, 2, 1);
    cfg.crypto = MIR_SIM_CRYPTO_ED25519;
    simtest::world_start(&w, cfg);
    ASSERT_EQ(mir_sim_run_until(w.sim, ms(10)), MIR_OK);
    EXPECT_EQ(w.crypto_results,
              (std::vector<std::string>{"sign:64", "verify:1", "verify:0", "verify:0"}));
    ASSERT_EQ(w.signatures.size(), 1u);
    if (run == 0) first = w.signatures[0];
    EXPECT_EQ(first, w.signatures[0]);
  }
}

// ---- Byzantine filters ----

struct Rewrite {
  int calls = 0;
};

void rewrite_filter(void *user, mir_sim_byz *byz, size_t from, size_t to,
                    const Mir__PackedMessage *msg) {
  static_cast<Rewrite *>(user)->calls++;
  (void)from;
  // Equivocate: node 1 gets 100 + value, node 2 gets the message twice, nobody else anything.
  if (to == 1) {
    ProtobufCMessage *m = nullptr;
    ASSERT_EQ(mir_message_unpack(msg, 0, &m), MIR_OK);
    reinterpret_cast<Mir__TestUint64 *>(m)->value += 100;
    mir_sim_byz_send(byz, to, mir_message_pack(msg->dest_module, m), 0);
    protobuf_c_message_free_unpacked(m, nullptr);
  } else if (to == 2) {
    mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), 0);
    mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), ms(10));
  }
}

TEST(SimByz, FilterSeesEveryMessageAndDecidesWhatGoesOut) {
  // A Byzantine filter can send different messages to different peers, duplicate and drop.
  World w;
  w.on_init = [](Probe *p, mir_event_list *out) {
    if (p->node == 0) simtest::send_u64(0, {1, 2, 3}, 5, out);
  };
  Rewrite rw;
  simtest::world_start(&w, simtest::world_config(&w, 4, 1));
  mir_sim_set_byzantine(w.sim, 0, rewrite_filter, &rw);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(100)), MIR_OK);
  EXPECT_EQ(rw.calls, 3);
  std::multiset<std::pair<size_t, uint64_t>> got;
  for (auto &r : w.received) got.insert({r.node, r.value});
  EXPECT_EQ(got, (std::multiset<std::pair<size_t, uint64_t>>{{1, 105}, {2, 5}, {2, 5}}));
  EXPECT_FALSE(mir_sim_node_correct(w.sim, 0));
}

TEST(SimByz, GenericFilterCorruptsWithoutCrashingReceivers) {
  // The generic filter's corruption, replays, duplicates and drops reach the receiver, which
  // sees values that were never sent, values twice and values missing, yet the run stays healthy.
  World w;
  const uint64_t base = 1000000, count = 200;
  w.on_init = [&](Probe *p, mir_event_list *out) {
    if (p->node != 0) return;
    for (uint64_t k = 0; k < count; k++) simtest::send_u64(0, {1}, base + k, out);
  };
  mir_sim_byz_generic g{};
  g.corrupt_ppm = 500000;
  g.replay_ppm = 200000;
  g.drop_ppm = 100000;
  g.duplicate_ppm = 100000;
  simtest::world_start(&w, simtest::world_config(&w, 2, 9));
  mir_sim_set_byzantine(w.sim, 0, mir_sim_byz_generic_filter, &g);
  ASSERT_EQ(mir_sim_run_until(w.sim, ms(500)), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(w.sim)) << mir_sim_failure(w.sim);
  std::multiset<uint64_t> got;
  size_t foreign = 0;
  for (auto &r : w.received) {
    got.insert(r.value);
    foreign += r.value < base || r.value >= base + count;
  }
  size_t twice = 0, missing = 0;
  for (uint64_t k = 0; k < count; k++) {
    twice += got.count(base + k) > 1;
    missing += got.count(base + k) == 0;
  }
  EXPECT_GT(foreign, 0u);
  EXPECT_GT(twice, 0u);
  EXPECT_GT(missing, 0u);
  mir_sim_byz_generic_clear(&g);
}

// ---- budgets and checkers ----

TEST(SimBudget, LivelockExhaustsTheStepBudget) {
  // A module that keeps emitting events to itself never lets time pass: the step budget fails
  // the run instead of hanging.
  World w;
  w.on_init = [](Probe *, mir_event_list *out) {
    mir_event_list_push(out, mir_event_test_string("probe", "probe", "again"));
  };
  w.on_event = [](Probe *, const mir_event *ev, mir_event_list *out) {
    if (mir_event_is(ev, &mir__test_string__descriptor)) {
      mir_event_list_push(out, mir_event_test_string("probe", "probe", "again"));
    }
    return MIR_OK;
  };
  mir_sim_config cfg = simtest::world_config(&w, 1, 1);
  cfg.steps_max = 1000;
  simtest::world_start(&w, cfg);
  ASSERT_EQ(mir_sim_run(w.sim), MIR_OK);
  EXPECT_TRUE(mir_sim_failed(w.sim));
  EXPECT_NE(std::string(mir_sim_failure(w.sim)).find("step budget"), std::string::npos);
  EXPECT_EQ(mir_sim_now(w.sim), 0u);
}

TEST(SimCheck, AgreementAndDuplicatesAreCaughtAtOnce) {
  // Two correct nodes delivering different values at one position fail agreement; a node
  // delivering a position twice fails no-duplicates; Byzantine nodes are not checked.
  for (int c = 0; c < 3; c++) {
    World w;
    simtest::world_start(&w, simtest::world_config(&w, 3, 1));
    ASSERT_EQ(mir_sim_run_until(w.sim, ms(1)), MIR_OK);
    mir_sim_set_byzantine(w.sim, 2, nullptr, nullptr);
    mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
    mir_sim_report_delivery(w.sim, 2, 1, "evil", 4);  // Byzantine: ignored
    EXPECT_FALSE(mir_sim_failed(w.sim));
    if (c == 0) mir_sim_report_delivery(w.sim, 1, 1, "b", 1);
    if (c == 1) mir_sim_report_delivery(w.sim, 0, 1, "a", 1);
    if (c == 2) mir_sim_report_delivery(w.sim, 1, 1, "a", 1);
    EXPECT_EQ(mir_sim_failed(w.sim), c != 2) << c;
    const char *want = c == 0 ? "agreement" : c == 1 ? "no-duplicates" : "";
    EXPECT_NE(std::string(mir_sim_failure(w.sim)).find(want), std::string::npos);
  }
}

TEST(SimCheck, UndeliveredSubmissionFailsLiveness) {
  // A value submitted to a correct node that no node delivers fails validity/liveness at the
  // end of the run; once every correct node delivers it, the run ends early and passes.
  for (int deliver = 0; deliver < 2; deliver++) {
    World w;
    w.on_event = [&w, deliver](Probe *p, const mir_event *ev, mir_event_list *) {
      if (deliver && mir_event_is(ev, &mir__test_string__descriptor)) {
        const char *v = reinterpret_cast<Mir__TestString *>(ev->payload)->value;
        for (size_t i = 0; i < 2; i++) mir_sim_report_delivery(w.sim, i, 1, v, strlen(v));
      }
      (void)p;
      return MIR_OK;
    };
    mir_sim_config cfg = simtest::world_config(&w, 2, 1);
    cfg.checks.validity = true;
    cfg.checks.liveness_ns = ms(1000);
    cfg.submit = [](void *, mir_sim *, size_t, const uint8_t *value, size_t len) {
      std::string s(reinterpret_cast<const char *>(value), len);
      return mir_event_test_string("probe", nullptr, s.c_str());
    };
    simtest::world_start(&w, cfg);
    ASSERT_EQ(mir_sim_submit(w.sim, ms(5), 0, "v", 1), MIR_OK);
    ASSERT_EQ(mir_sim_run(w.sim), MIR_OK);
    EXPECT_EQ(mir_sim_failed(w.sim), deliver == 0);
    if (!deliver) {
      EXPECT_NE(std::string(mir_sim_failure(w.sim)).find("liveness"), std::string::npos);
      EXPECT_EQ(mir_sim_now(w.sim), ms(1000));
    } else {
      EXPECT_EQ(mir_sim_now(w.sim), ms(5));  // stopped as soon as everything was delivered
    }
  }
}

TEST(SimCheck, CustomCheckerRunsAfterBatchesAndAtTheEnd) {
  // A registered checker runs after batches (final = false) and once at the end (final = true),
  // and its mir_sim_fail stops the run.
  struct Counts {
    int steps = 0, finals = 0;
  } counts;
  World w;
  simtest::world_start(&w, simtest::world_config(&w, 2, 1));
  ASSERT_EQ(mir_sim_add_checker(
                w.sim,
                [](void *u, mir_sim *sim, bool final) {
                  auto *c = static_cast<Counts *>(u);
                  (final ? c->finals : c->steps)++;
                  if (final) mir_sim_fail(sim, "custom check");
                },
                &counts),
            MIR_OK);
  ASSERT_EQ(mir_sim_run(w.sim), MIR_OK);
  EXPECT_GT(counts.steps, 0);
  EXPECT_EQ(counts.finals, 1);
  EXPECT_STREQ(mir_sim_failure(w.sim), "custom check");
}

TEST(SimPlan, FaultPlanStaysBeforeHealAndRespectsTheBudget) {
  // The random plan schedules partitions and crash-restarts before heal_ns only, restarts every
  // crashed node, and wipes at most the faulty budget.
  for (uint64_t seed = 1; seed <= 30; seed++) {
    World w;
    mir_sim_config cfg = simtest::world_config(&w, 4, seed);
    cfg.heal_ns = ms(1000);
    simtest::world_start(&w, cfg);
    ASSERT_EQ(mir_sim_plan_faults(
                  w.sim, MIR_SIM_FAULT_PARTITION | MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE, 1),
              MIR_OK);
    ASSERT_EQ(mir_sim_run_until(w.sim, ms(1000)), MIR_OK);
    size_t wiped = 0;
    for (size_t i = 0; i < 4; i++) {
      EXPECT_TRUE(mir_sim_node_up(w.sim, i)) << "seed " << seed << " node " << i;
      wiped += !mir_sim_node_correct(w.sim, i);
    }
    EXPECT_LE(wiped, 1u);
    uint64_t crashes = simtest::sim_read(w.sim, "mir_sim_crashes_total");
    EXPECT_GE(simtest::sim_read(w.sim, "mir_sim_partitions_total"), 1u);
    EXPECT_GE(crashes, 1u);
    EXPECT_EQ(crashes, simtest::sim_read(w.sim, "mir_sim_restarts_total"));
  }
}

TEST(SimProfile, SwarmPicksDifferentFaultSetsPerSeed) {
  // The swarm profile draws a non-empty subset of the classes per seed; across seeds the subsets
  // differ, and each class sets its knobs.
  std::set<unsigned> picks;
  for (uint64_t seed = 1; seed <= 50; seed++) {
    mir_sim_config cfg;
    mir_sim_config_default(&cfg);
    unsigned c = mir_sim_profile_apply(&cfg, MIR_SIM_FAULT_ALL | MIR_SIM_FAULT_SWARM, seed);
    EXPECT_NE(c, 0u);
    EXPECT_EQ(c & ~MIR_SIM_FAULT_ALL, 0u);
    EXPECT_EQ((c & MIR_SIM_FAULT_DROP) != 0, cfg.net.drop_ppm > 0);
    EXPECT_EQ((c & MIR_SIM_FAULT_REORDER) != 0, cfg.net.reorder);
    picks.insert(c);
  }
  EXPECT_GT(picks.size(), 20u);
  char buf[128];
  mir_sim_fault_classes_format(MIR_SIM_FAULT_DROP | MIR_SIM_FAULT_CLOCK, buf, sizeof buf);
  EXPECT_STREQ(buf, "drop+clock");
}

}  // namespace
