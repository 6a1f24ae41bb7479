// Every named scenario over a fixed list of seeds (pingpong, BCB and the echo protocol under each
// fault class, Byzantine variants and swarm profiles), and the planted bug, which a checker must
// catch within a few seeds.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/sim.h"
}

namespace {

// Seeds per scenario: enough for hundreds of runs in total while the suite stays short; the
// Byzantine-leader echo runs go to their time budget and cost the most.
uint64_t seeds_for(const mir_sim_scenario *sc) {
  std::string name = sc->name;
  if (name == "echo-byz-equivocate") return 100;
  if (name.rfind("bcb-", 0) == 0) return 500;
  return 200;
}

std::vector<const char *> scenario_names() {
  size_t n = 0;
  const mir_sim_scenario *all = mir_sim_scenarios(&n);
  std::vector<const char *> names;
  for (size_t i = 0; i < n; i++) {
    // Trantor's scenarios have their own seed lists and checks (sim_trantor_test.cc).
    bool trantor = std::string(all[i].name).rfind("trantor-", 0) == 0;
    if (!all[i].expect_failure && !trantor) names.push_back(all[i].name);
  }
  return names;
}

class Scenario : public ::testing::TestWithParam<const char *> {};

TEST_P(Scenario, PassesFixedSeeds) {
  // The scenario passes every seed of its list; a failure prints its seed, its logs and the
  // command that reproduces it.
  const mir_sim_scenario *sc = mir_sim_scenario_find(GetParam());
  ASSERT_NE(sc, nullptr);
  mir_sim_run_opts opts{};
  opts.report = stdout;
  uint64_t n = seeds_for(sc), failed = 0, steps = 0;
  for (uint64_t seed = 1; seed <= n; seed++) {
    mir_sim_result res;
    ASSERT_EQ(mir_sim_scenario_run(sc, seed, &opts, &res), MIR_OK) << mir_error_detail();
    steps += static_cast<uint64_t>(mir_metrics_read(res.metrics, "mir_sim_steps_total", nullptr));
    if (!res.ok) {
      failed++;
      ADD_FAILURE() << sc->name << " seed " << seed << ": " << res.failure << " (logs and "
                    << "the command to reproduce it are printed above)";
    }
    mir_sim_result_fini(&res);
  }
  EXPECT_EQ(failed, 0u);
  EXPECT_GT(steps, n * 10);  // the scenario actually ran protocol steps
  printf("%s: %llu seeds, %llu failed, %llu steps\n", sc->name, (unsigned long long)n,
         (unsigned long long)failed, (unsigned long long)steps);
}

INSTANTIATE_TEST_SUITE_P(All, Scenario, ::testing::ValuesIn(scenario_names()),
                         [](const ::testing::TestParamInfo<const char *> &p) {
                           std::string s = p.param;
                           for (char &ch : s) {
                             if (ch == '-') ch = '_';
                           }
                           return s;
                         });

TEST(PlantedBug, QuorumOffByOneIsCaughtWithinTenSeeds) {
  // The echo protocol with a quorum of 2f instead of 2f + 1, against an equivocating leader,
  // violates agreement; the checker catches it within 10 seeds, while the correct quorum passes
  // the same seeds under the same leader.
  const mir_sim_scenario *bug = mir_sim_scenario_find("echo-bug");
  const mir_sim_scenario *good = mir_sim_scenario_find("echo-byz-equivocate");
  ASSERT_NE(bug, nullptr);
  ASSERT_NE(good, nullptr);
  ASSERT_TRUE(bug->expect_failure);
  mir_sim_run_opts opts{};
  uint64_t caught = 0;
  for (uint64_t seed = 1; seed <= 10 && caught == 0; seed++) {
    mir_sim_result res;
    ASSERT_EQ(mir_sim_scenario_run(bug, seed, &opts, &res), MIR_OK);
    if (!res.ok) {
      caught = seed;
      EXPECT_NE(std::string(res.failure).find("agreement"), std::string::npos) << res.failure;
      EXPECT_STRNE(res.log_path, "");  // the failing run kept its event logs
    }
    mir_sim_result_fini(&res);
    ASSERT_EQ(mir_sim_scenario_run(good, seed, &opts, &res), MIR_OK);
    EXPECT_TRUE(res.ok) << res.failure;
    mir_sim_result_fini(&res);
  }
  EXPECT_GT(caught, 0u) << "the planted bug went unnoticed for 10 seeds";
  printf("planted bug caught at seed %llu\n", (unsigned long long)caught);
}

}  // namespace
