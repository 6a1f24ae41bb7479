// Trantor in the simulator: every trantor-* scenario passes a fixed list of seeds (agreement, no
// duplicates, validity after the faults heal, memory bounds, and each variant's own claim), and
// a run is deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/sim.h"
#include "sc_trantor.h"
}

namespace {

struct Outcome {
  bool ok = false;
  std::string failure;
  uint64_t now_ns = 0, trace_hash = 0, steps = 0, restarts = 0;  // the simulator's, at the end
  sc_trantor_report rep{};
};

// Runs scenario sc for seed the way the seed runner does, keeping the run's report.
Outcome run_one(const mir_sim_scenario *sc, uint64_t seed) {
  Outcome o;
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = seed;
  void *state = nullptr;
  mir_sim *sim = nullptr;
  mir_err err = sc->configure(sc, &cfg, &state);
  if (err == MIR_OK) err = mir_sim_new(&cfg, &sim);
  if (err == MIR_OK) err = sc->setup(sc, sim, state);
  EXPECT_EQ(err, MIR_OK) << sc->name << " seed " << seed << ": " << mir_error_detail();
  if (err == MIR_OK) {
    mir_sim_run(sim);
    o.ok = !mir_sim_failed(sim);
    o.failure = mir_sim_failure(sim);
    o.now_ns = mir_sim_now(sim);
    o.trace_hash = mir_sim_trace_hash(sim);
    o.steps = static_cast<uint64_t>(
        mir_metrics_read(mir_sim_metrics(sim), "mir_sim_steps_total", nullptr));
    o.restarts = static_cast<uint64_t>(
        mir_metrics_read(mir_sim_metrics(sim), "mir_sim_restarts_total", nullptr));
    sc_trantor_report_of(state, &o.rep);
  }
  mir_sim_free(sim);
  sc->cleanup(state);
  return o;
}

// Seeds per scenario: the whole file stays within about two minutes on two cores; the long run
// and the seven-replica runs cost the most.
uint64_t seeds_for(const std::string &name) {
  if (name == "trantor-4-long") return 3;
  if (name == "trantor-7-crash-f" || name == "trantor-7-crash-restart") return 15;
  if (name == "trantor-7") return 25;
  if (name == "trantor-4-partition-transfer") return 30;
  return 50;
}

std::vector<const char *> trantor_names() {
  size_t n = 0;
  const mir_sim_scenario *all = mir_sim_scenarios(&n);
  std::vector<const char *> names;
  for (size_t i = 0; i < n; i++) {
    bool trantor = std::string(all[i].name).rfind("trantor-", 0) == 0;
    if (trantor && !all[i].expect_failure) names.push_back(all[i].name);
  }
  return names;
}

// Sums over the seeds of one scenario.
struct Totals {
  uint64_t runs = 0, failed = 0, delivered = 0, virtual_ns = 0, view_changes = 0, new_views = 0;
  uint64_t transfers = 0, invalid_certs = 0, short_of_txs = 0, epoch_min = UINT64_MAX;
  sc_trantor_report max{};
};

void add(Totals &t, const Outcome &o) {
  t.runs++;
  t.delivered += o.rep.delivered_min;
  t.virtual_ns += o.now_ns;
  t.view_changes += o.rep.view_changes;
  t.new_views += o.rep.new_views;
  t.transfers += o.rep.transfers;
  t.invalid_certs += o.rep.invalid_certs;
  if (o.rep.delivered_min < o.rep.txs) t.short_of_txs++;
  if (o.rep.epoch_min < t.epoch_min) t.epoch_min = o.rep.epoch_min;
  t.max.ordering_max = std::max(t.max.ordering_max, o.rep.ordering_max);
  t.max.checkpoint_max = std::max(t.max.checkpoint_max, o.rep.checkpoint_max);
  t.max.epoch_lag_max = std::max(t.max.epoch_lag_max, o.rep.epoch_lag_max);
  t.max.mempool_max = std::max(t.max.mempool_max, o.rep.mempool_max);
  t.max.fetcher_max = std::max(t.max.fetcher_max, o.rep.fetcher_max);
  t.max.buffered_max = std::max(t.max.buffered_max, o.rep.buffered_max);
  t.max.samples += o.rep.samples;
}

void print(const char *name, const Totals &t) {
  double secs = static_cast<double>(t.virtual_ns) / 1e9;
  printf("%s: %" PRIu64 "/%" PRIu64 " seeds passed; %.0f tx/s simulated; view changes %" PRIu64
         ", new views %" PRIu64 ", transfers %" PRIu64 ", invalid certs %" PRIu64
         "; max live PBFT %" PRIu64 ", checkpoints %" PRIu64 ", epoch lag %" PRIu64
         ", mempool %" PRIu64 ", fetcher %" PRIu64 ", buffered %" PRIu64 "; epochs >= %" PRIu64
         "\n",
         name, t.runs - t.failed, t.runs, secs > 0 ? static_cast<double>(t.delivered) / secs : 0.0,
         t.view_changes, t.new_views, t.transfers, t.invalid_certs, t.max.ordering_max,
         t.max.checkpoint_max, t.max.epoch_lag_max, t.max.mempool_max, t.max.fetcher_max,
         t.max.buffered_max, t.epoch_min);
}

class TrantorScenario : public ::testing::TestWithParam<const char *> {};

TEST_P(TrantorScenario, PassesFixedSeeds) {
  // The scenario passes every seed of its list (a failing seed is run again by the seed runner,
  // which keeps its event logs and prints the command that reproduces it), and the variant shows
  // what it is about: every correct replica applied every transaction where liveness is expected,
  // the slow leader caused view changes, the equivocating leader made itself felt, the partitioned
  // replica caught up without a state transfer, the long run passed 100 epochs with its bounds
  // sampled throughout, crashing more than a third of the weight stopped the ordering, and a
  // replica cut off beyond the retained epochs came back by state transfer.
  std::string name = GetParam();
  const mir_sim_scenario *sc = mir_sim_scenario_find(name.c_str());
  ASSERT_NE(sc, nullptr);
  Totals t;
  for (uint64_t seed = 1; seed <= seeds_for(name); seed++) {
    Outcome o = run_one(sc, seed);
    add(t, o);
    if (!o.ok) {
      t.failed++;
      mir_sim_run_opts opts{};
      opts.report = stdout;
      mir_sim_result res;
      EXPECT_EQ(mir_sim_scenario_run(sc, seed, &opts, &res), MIR_OK);
      mir_sim_result_fini(&res);
      ADD_FAILURE() << name << " seed " << seed << ": " << o.failure;
      continue;
    }
    bool live = name != "trantor-4-weighted-majority-crash";
    if (live) {
      EXPECT_EQ(o.rep.delivered_min, o.rep.txs) << name << " seed " << seed;
    }
    if (name == "trantor-4-partition-rejoin") {
      EXPECT_EQ(o.rep.transfers, 0u) << "seed " << seed;
    }
    if (name == "trantor-4-partition-transfer") {
      EXPECT_GT(o.rep.transfers, 0u) << "seed " << seed;
    }
    if (name == "trantor-4-slow-leader") {
      EXPECT_GT(o.rep.view_changes, 0u) << "seed " << seed;
    }
    if (name.find("-restart") != std::string::npos) {
      EXPECT_GT(o.restarts, 0u) << "seed " << seed;
    }
    EXPECT_GT(o.rep.samples, 0u);
  }
  print(name.c_str(), t);
  EXPECT_EQ(t.failed, 0u);
  if (name == "trantor-4-slow-leader") {
    EXPECT_GT(t.new_views, 0u);
  }
  if (name == "trantor-4-equivocate") {
    EXPECT_GT(t.view_changes + t.invalid_certs, 0u);
  }
  if (name == "trantor-4-long") {
    EXPECT_GE(t.epoch_min, 100u);
    EXPECT_GE(t.max.samples, 100u);
  }
  if (name == "trantor-4-weighted-majority-crash") {
    EXPECT_EQ(t.short_of_txs, t.runs);
  }
}

INSTANTIATE_TEST_SUITE_P(All, TrantorScenario, ::testing::ValuesIn(trantor_names()),
                         [](const ::testing::TestParamInfo<const char *> &p) {
                           std::string s = p.param;
                           for (char &ch : s) {
                             if (ch == '-') ch = '_';
                           }
                           return s;
                         });

TEST(TrantorRegression, SeedsThatOnceFailedPass) {
  // Seeds that found a bug in a 1000-seed run (the fix names its seed); kept beyond the fixed
  // seed lists above so that the bug stays fixed.
  struct Case {
    const char *scenario;
    uint64_t seed;
  };
  for (Case c : {Case{"trantor-4-crash-f", 293},
                 // A late write of a retained epoch's instance after the checkpoint's write
                 // deleted that epoch: recovery read a preprepare without its batch.
                 Case{"trantor-4-crash-restart", 22}, Case{"trantor-4-crash-restart", 31},
                 // A replica one epoch behind, whose peers had restarted from a later checkpoint
                 // and kept no instance of its epoch: no Done quorum, and no state transfer
                 // pushed to it or taken by it (only two epochs ahead were).
                 Case{"trantor-4-swarm-restart", 12},
                 // A primary that restarted after sending its NewView but before adopting it,
                 // and a done node that stopped resending its Commits before the segment was
                 // stable: the view never completed.
                 Case{"trantor-4-swarm-restart", 66},
                 // A node that missed a NewView whose primary then rejoined without votes (a
                 // wipe): the members that had adopted it, one of them restarted since, did not
                 // relay it, and the others no longer sent the view changes that would have let
                 // the node time out.
                 Case{"trantor-4-swarm-restart", 103}, Case{"trantor-4-swarm-restart", 2050},
                 // A node left in view 1's view change while the others reached view 2: its
                 // view changes were dropped as old, nobody sent it view 2's NewView, and with
                 // one replica rejoining (passive) the segment never finished. The unit test
                 // PbftViewChange.NodeLeftInALowerViewChangeIsSentTheCurrentNewView pins it down;
                 // the seed failed on the code of that time.
                 Case{"trantor-4-swarm-restart", 9046}}) {
    const mir_sim_scenario *sc = mir_sim_scenario_find(c.scenario);
    ASSERT_NE(sc, nullptr) << c.scenario;
    Outcome o = run_one(sc, c.seed);
    EXPECT_TRUE(o.ok) << c.scenario << " seed " << c.seed << ": " << o.failure;
    EXPECT_EQ(o.rep.delivered_min, o.rep.txs) << c.scenario << " seed " << c.seed;
  }
}

// The first of seeds 1..10 at which the planted bug `bug` fails a safety check (a failure message
// must name one of `checks`), while `good`, its correct counterpart, passes every seed tried; 0 if
// the bug went unnoticed.
uint64_t first_caught(const char *bug_name, const char *good_name,
                      const std::vector<std::string> &checks) {
  const mir_sim_scenario *bug = mir_sim_scenario_find(bug_name);
  const mir_sim_scenario *good = mir_sim_scenario_find(good_name);
  EXPECT_TRUE(bug != nullptr && good != nullptr && bug->expect_failure);
  if (bug == nullptr || good == nullptr) return 0;
  for (uint64_t seed = 1; seed <= 10; seed++) {
    Outcome o = run_one(bug, seed);
    EXPECT_TRUE(run_one(good, seed).ok) << good_name << " seed " << seed;
    if (o.ok) continue;
    bool named = false;
    for (const auto &c : checks) named = named || o.failure.find(c) != std::string::npos;
    EXPECT_TRUE(named) << o.failure;
    printf("%s caught at seed %" PRIu64 ": %s\n", bug_name, seed, o.failure.c_str());
    return seed;
  }
  return 0;
}

TEST(TrantorPlantedBug, FPlusOneEquivocatorsAreCaughtWithinTenSeeds) {
  // Beyond the fault threshold (replicas 0 and 1 of 4 equivocate and vote both ways together)
  // two correct replicas commit different certificates, and the agreement check sees it within
  // 10 seeds, while a single equivocating leader passes the same seeds.
  EXPECT_GT(first_caught("trantor-4-bug-collude", "trantor-4-equivocate", {"agreement"}), 0u)
      << "f + 1 equivocators went unnoticed for 10 seeds";
}

TEST(TrantorPlantedBug, VotesSentBeforeTheyAreDurableAreCaughtWithinTenSeeds) {
  // A store that releases votes before their records are durable (on a slow disk, with crash
  // waves): replicas forget votes they cast, and an sn some replica delivered is decided again
  // with other content. The checkers see it within 10 seeds; the correct store passes the crash
  // waves of trantor-4-crash-restart on the same seeds.
  EXPECT_GT(first_caught("trantor-4-bug-unsynced", "trantor-4-crash-restart",
                         {"agreement", "no-duplicates"}),
            0u)
      << "votes released before durability went unnoticed for 10 seeds";
}

TEST(TrantorPlantedBug, OrderingWhileIdleIsCaughtWithinTenSeeds) {
  // The idle check itself: transactions that trickle in while it watches make the cluster order
  // batches, and the check says so; the same seeds without the trickle pass trantor-4-idle.
  EXPECT_GT(first_caught("trantor-4-idle-trickle", "trantor-4-idle", {"idle"}), 0u)
      << "batches ordered in the idle window went unnoticed for 10 seeds";
}

TEST(TrantorDeterminism, SameSeedSameRunNextSeedAnother) {
  // Two runs of one seed of the swarm scenario end with the same trace hash and report; the next
  // seed gives another schedule.
  const mir_sim_scenario *sc = mir_sim_scenario_find("trantor-4-swarm");
  ASSERT_NE(sc, nullptr);
  for (uint64_t seed : {3, 17}) {
    Outcome a = run_one(sc, seed), b = run_one(sc, seed), c = run_one(sc, seed + 1);
    EXPECT_EQ(a.trace_hash, b.trace_hash);
    EXPECT_EQ(a.steps, b.steps);
    EXPECT_EQ(a.rep.view_changes, b.rep.view_changes);
    EXPECT_EQ(a.rep.ordering_max, b.rep.ordering_max);
    EXPECT_NE(a.trace_hash, c.trace_hash);
  }
}

}  // namespace
