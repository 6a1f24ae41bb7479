// The compose cluster (deploy/docker/compose.yml) as a user runs it, under its own project name:
// the keygen service and four replicas come up healthy; the SDK on this machine commits 10,000
// transactions through the client ports published on 127.0.0.1, where the replicas' /metrics
// pages are published too; commits go on while one replica is killed (docker kill), and once it
// is started again it reaches the others' position with the same log hash; the same for a
// replica cut off the network (docker network disconnect) and connected again; docker stop
// (SIGTERM) ends a replica with exit status 0 and it resumes from its store. Skipped where no
// Docker engine or no compose answers.
#include "deploy_util.h"

namespace {

using deploy::Cmd;
using deploy::Result;
using deploy::Trim;

constexpr int kReplicas = 4;

class ComposeCluster {
 public:
  ComposeCluster(std::vector<std::string> compose, int port_base)
      : compose_(std::move(compose)), project_("mirct" + std::to_string(getpid())) {
    env_ = {std::string("MIR_IMAGE=") + deploy::kImage, "MIR_RESTART=no", "MIR_LOG=info"};
    for (int i = 0; i < kReplicas; i++) {
      env_.push_back("MIR_CLIENT_PORT_" + std::to_string(i) + "=" + std::to_string(port_base + i));
      env_.push_back("MIR_HTTP_PORT_" + std::to_string(i) + "=" +
                     std::to_string(port_base + 100 + i));
      addrs_.push_back("127.0.0.1:" + std::to_string(port_base + i));
    }
  }
  ~ComposeCluster() { Compose({"down", "-v", "--remove-orphans", "-t", "30"}, 180000); }

  Result Compose(const std::vector<std::string> &args, int timeout_ms) {
    std::vector<std::string> argv = compose_;
    argv.insert(argv.end(),
                {"-p", project_, "-f", std::string(MIR_SOURCE_DIR) + "/deploy/docker/compose.yml"});
    argv.insert(argv.end(), args.begin(), args.end());
    return Cmd(argv, timeout_ms, env_);
  }

  std::string Container(int i) {
    return Trim(Compose({"ps", "-q", "replica-" + std::to_string(i)}, 60000).out);
  }
  std::string Network() { return project_ + "_mir"; }
  const std::vector<std::string> &Addrs() const { return addrs_; }

  // Waits (bounded) until Docker reports every replica healthy.
  bool WaitHealthy(int timeout_s, std::string *why) {
    for (int t = 0; t < timeout_s; t++) {
      int healthy = 0;
      for (int i = 0; i < kReplicas; i++) {
        Result h =
            Cmd({"docker", "inspect", "-f", "{{.State.Health.Status}}", Container(i)}, 30000);
        healthy += Trim(h.out) == "healthy";
      }
      if (healthy == kReplicas) return true;
      sleep(1);
    }
    *why = Compose({"ps"}, 60000).out + Compose({"logs", "--tail", "20"}, 60000).out;
    return false;
  }

  // The replicas' positions, asked from inside the network (from replica `via`), so that a
  // replica whose published port went away with its network is still reached once back.
  std::vector<deploy::Position> Positions(int via) {
    std::vector<std::string> argv = {"docker", "exec",         Container(via), "mir-status",
                                     "--json", "--timeout-ms", "2000"};
    for (int i = 0; i < kReplicas; i++) argv.push_back("replica-" + std::to_string(i) + ":9000");
    return deploy::ParseStatus(Cmd(argv, 60000).out);
  }

  // Waits (bounded) until all replicas stand at the same position with the same log hash: an
  // idle cluster finishes its epoch and stops there (docs/OPERATIONS.md, "Status").
  bool WaitSamePosition(int via, int timeout_s, std::string *why) {
    std::vector<deploy::Position> ps;
    for (int t = 0; t < timeout_s; t++) {
      ps = Positions(via);
      if (deploy::AllEqual(ps, kReplicas) && ps[0].next_sn > 0) return true;
      sleep(1);
    }
    *why = "positions:";
    for (const auto &p : ps)
      *why += " " + p.addr + "=" + std::to_string(p.next_sn) + "/" + p.log_hash;
    *why += "\n" + Compose({"logs", "--tail", "30"}, 60000).out;
    return false;
  }

 private:
  std::vector<std::string> compose_;
  std::string project_;
  std::vector<std::string> env_;
  std::vector<std::string> addrs_;
};

// Four free loopback ports in a row for the published client APIs, and four more 100 above for
// the HTTP endpoints.
int FreePortBase() {
  for (int base = 21000 + (getpid() % 500) * 8; base < 60000; base += 8) {
    bool ok = true;
    for (int i = 0; i < kReplicas; i++) ok = ok && PortFree(base + i) && PortFree(base + 100 + i);
    if (ok) return base;
  }
  return 0;
}

// One cluster through every step of the list, in order (each step needs the previous).
TEST(Compose, ClusterCommitsThroughKillPartitionAndStop) {
  std::string why;
  if (!deploy::DockerAnswers(&why)) GTEST_SKIP() << why;
  std::vector<std::string> compose = deploy::ComposeCommand();
  if (compose.empty()) GTEST_SKIP() << "neither docker compose nor docker-compose runs";
  std::string log;
  ASSERT_TRUE(deploy::BuildImage(&log)) << log;
  int base = FreePortBase();
  ASSERT_GT(base, 0);
  ComposeCluster c(compose, base);

  Result up = c.Compose({"up", "-d"}, 600000);
  ASSERT_EQ(up.rc, 0) << up.out;
  ASSERT_TRUE(c.WaitHealthy(180, &why)) << why;
  // Each replica got only its own private key.
  Result keys = Cmd({"docker", "exec", c.Container(1), "ls", "/keys"}, 60000);
  EXPECT_NE(keys.out.find("replica-1.key"), std::string::npos) << keys.out;
  EXPECT_EQ(keys.out.find("replica-0.key"), std::string::npos) << keys.out;

  std::string pid = std::to_string(getpid());
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), "compose-" + pid + "-a", 10000, 300000, &why), 10000)
      << why;
  // The metrics endpoint is published on 127.0.0.1 too.
  Result metrics =
      Cmd({"curl", "-sf", "http://127.0.0.1:" + std::to_string(base + 100) + "/metrics"}, 60000);
  EXPECT_EQ(metrics.rc, 0) << metrics.out;
  EXPECT_NE(metrics.out.find("mir_process_resident_memory_bytes"), std::string::npos);

  // A crash: SIGKILL to replica 3; the other three go on committing.
  std::string victim = c.Container(3);
  ASSERT_EQ(Cmd({"docker", "kill", victim}, 60000).rc, 0);
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), "compose-" + pid + "-b", 1000, 180000, &why), 1000) << why;
  Result start = Cmd({"docker", "start", victim}, 60000);
  ASSERT_EQ(start.rc, 0) << start.out;
  ASSERT_TRUE(c.WaitHealthy(120, &why)) << why;
  ASSERT_TRUE(c.WaitSamePosition(0, 120, &why)) << why;

  // A partition: replica 2 off the network while the others commit, then back.
  std::string cut = c.Container(2);
  ASSERT_EQ(Cmd({"docker", "network", "disconnect", c.Network(), cut}, 60000).rc, 0);
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), "compose-" + pid + "-c", 1000, 180000, &why), 1000) << why;
  Result back =
      Cmd({"docker", "network", "connect", "--alias", "replica-2", c.Network(), cut}, 60000);
  ASSERT_EQ(back.rc, 0) << back.out;
  ASSERT_TRUE(c.WaitSamePosition(0, 180, &why)) << why;

  // A clean stop: SIGTERM ends the replica with exit status 0; it resumes from its store.
  std::string stopped = c.Container(1);
  ASSERT_EQ(Cmd({"docker", "stop", "-t", "30", stopped}, 120000).rc, 0);
  EXPECT_EQ(Trim(Cmd({"docker", "inspect", "-f", "{{.State.ExitCode}}", stopped}, 30000).out), "0");
  ASSERT_EQ(Cmd({"docker", "start", stopped}, 60000).rc, 0);
  ASSERT_TRUE(c.WaitHealthy(120, &why)) << why;
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), "compose-" + pid + "-d", 1000, 180000, &why), 1000) << why;
  ASSERT_TRUE(c.WaitSamePosition(0, 120, &why)) << why;
}

}  // namespace
