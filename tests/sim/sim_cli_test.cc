// The shape scripts rely on: mir-sim --list prints one scenario per line, name first; a range
// with a failing seed exits non-zero and prints the seed and the reproduce command; --verbose
// prints the same trace for the same seed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <string>

namespace {

struct Output {
  int status;
  std::string out;
};

// Runs mir-sim with args (stdout captured, stderr discarded).
Output run(const std::string &args) {
  std::string cmd = std::string(MIR_SIM_BIN) + " " + args + " 2>/dev/null";
  FILE *p = popen(cmd.c_str(), "r");
  Output o{-1, ""};
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

TEST(MirSimCli, ListPrintsOneScenarioPerLineNameFirst) {
  // Every line of --list starts with a scenario name followed by its description.
  Output o = run("--list");
  ASSERT_EQ(o.status, 0);
  std::istringstream lines(o.out);
  std::string line;
  size_t n = 0;
  bool has_bug = false, has_bcb = false, has_pingpong = false;
  while (std::getline(lines, line)) {
    std::string name = line.substr(0, line.find(' '));
    ASSERT_FALSE(name.empty()) << line;
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"), std::string::npos)
        << line;
    EXPECT_GT(line.size(), name.size() + 2) << "no description: " << line;
    has_bug = has_bug || name == "echo-bug";
    has_bcb = has_bcb || name == "bcb-byz-equivocate";
    has_pingpong = has_pingpong || name == "pingpong-swarm";
    n++;
  }
  EXPECT_GE(n, 20u);
  EXPECT_TRUE(has_bug && has_bcb && has_pingpong);
}

TEST(MirSimCli, ExitStatusReflectsFailures) {
  // A passing range exits 0; a range with a failing seed exits 1 and prints the seed, the logs
  // and the one command that reproduces it; an unknown scenario exits 2.
  Output ok = run("echo-none --seeds 1..3 --log-dir mir-sim-logs/cli");
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("3 passed, 0 failed"), std::string::npos) << ok.out;
  Output bad = run("echo-bug --seeds 1..2 --log-dir mir-sim-logs/cli");
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("FAIL echo-bug seed 1: agreement"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("echo-bug --seeds 1..1 --keep-logs"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("mir-sim-logs/cli/echo-bug-1"), std::string::npos) << bad.out;
  EXPECT_EQ(run("no-such-scenario").status, 2);
  EXPECT_EQ(run("echo-none --seeds 5..2").status, 2);
}

TEST(MirSimCli, StatsPrintsTheSimulatedThroughput) {
  // --stats adds one line with the deliveries per node per simulated second: Trantor's four
  // replicas deliver each of the scenario's 400 transactions once; without --stats the line is
  // absent.
  Output o = run("trantor-4 --seeds 1..2 --stats");
  ASSERT_EQ(o.status, 0) << o.out;
  size_t at = o.out.find("trantor-4: throughput ");
  ASSERT_NE(at, std::string::npos) << o.out;
  double rate = std::stod(o.out.substr(at + std::string("trantor-4: throughput ").size()));
  EXPECT_GT(rate, 0.0);
  EXPECT_NE(o.out.find("(400.0 per node per run"), std::string::npos) << o.out;
  EXPECT_EQ(run("trantor-4 --seeds 1..1").out.find("throughput"), std::string::npos);
}

TEST(MirSimCli, VerboseTraceIsIdenticalForIdenticalSeeds) {
  // --verbose twice with one seed prints byte-identical output; another seed prints another.
  Output a = run("bcb-swarm --seeds 4..4 --verbose");
  Output b = run("bcb-swarm --seeds 4..4 --verbose");
  Output c = run("bcb-swarm --seeds 5..5 --verbose");
  ASSERT_EQ(a.status, 0);
  EXPECT_GT(a.out.size(), 1000u);
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

}  // namespace
