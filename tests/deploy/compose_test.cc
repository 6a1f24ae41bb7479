// The compose cluster (deploy/docker/compose.yml) as a user runs it, under its own project name:
// the keygen service and four replicas come up healthy (the health check talks TLS to the client
// API with the certificate keygen made for it); the client API refuses a client without a
// certificate; the SDK on this machine commits 10,000 transactions over TLS with client
// certificates that keygen issued into the "clients" volume, through the client ports published
// on 127.0.0.1, where the replicas' /metrics
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
  ComposeCluster(std::vector<std::string> compose, int port_base, const std::string &client_ids)
      : compose_(std::move(compose)), project_("mirct" + std::to_string(getpid())) {
    env_ = {std::string("MIR_IMAGE=") + deploy::kImage, "MIR_RESTART=no", "MIR_LOG=info",
            "MIR_CLIENT_IDS=" + client_ids};
    for (int i = 0; i < kReplicas; i++) {
      env_.push_back("MIR_CLIENT_PORT_" + std::to_string(i) + "=" + std::to_string(port_base + i));
      env_.push_back("MIR_HTTP_PORT_" + std::to_string(i) + "=" +
                     std::to_string(port_base + 100 + i));
      addrs_.push_back("127.0.0.1:" + std::to_string(port_base + i));
    }
    dir_ = deploy::TempDir("mir-compose-test");
  }
  ~ComposeCluster() {
    Compose({"down", "-v", "--remove-orphans", "-t", "30"}, 180000);
    if (!dir_.empty()) Cmd({"rm", "-rf", dir_}, 60000);
  }

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
  std::string Volume(const std::string &name) { return project_ + "_" + name; }
  const std::string &Project() const { return project_; }
  const std::string &Dir() const { return dir_; }
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
    std::vector<std::string> argv = {"docker",         "exec",   Container(via),
                                     "mir-entrypoint", "status", "--json"};
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
  std::string dir_;  // the test's own files (client certificates)
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
  std::string pid = std::to_string(getpid());
  std::string client = "compose-" + pid + "-";
  ComposeCluster c(compose, base, client + "a " + client + "b " + client + "c " + client + "d");
  ASSERT_FALSE(c.Dir().empty());

  Result up = c.Compose({"up", "-d"}, 600000);
  ASSERT_EQ(up.rc, 0) << up.out;
  ASSERT_TRUE(c.WaitHealthy(180, &why)) << why;
  // Each replica got only its own private key.
  Result keys = Cmd({"docker", "exec", c.Container(1), "ls", "/keys"}, 60000);
  EXPECT_NE(keys.out.find("replica-1.key"), std::string::npos) << keys.out;
  EXPECT_EQ(keys.out.find("replica-0.key"), std::string::npos) << keys.out;
  // No anonymous volume: the project's containers mount only volumes of the compose file.
  Result vols = Cmd({"sh", "-c",
                     "docker ps -aq --filter label=com.docker.compose.project=" + c.Project() +
                         " | xargs docker inspect -f '{{range .Mounts}}{{.Name}} {{end}}'"},
                    60000);
  std::istringstream vin(vols.out);
  int mounts = 0;
  for (std::string v; vin >> v; mounts++) {
    EXPECT_EQ(v.rfind(c.Volume(""), 0), 0u) << "volume " << v << " is not one of the project's";
  }
  EXPECT_GE(mounts, 2 * kReplicas + 3) << vols.out;

  // The client certificates keygen issued, copied out of the "clients" volume.
  std::string tls = c.Dir() + "/clients";
  Result copy =
      Cmd({"sh", "-c",
           "mkdir -p " + tls + " && docker run --rm -v " + c.Volume("clients") + ":/clients " +
               deploy::kImage + " tar -C /clients -cf - . | tar -C " + tls + " -xf -"},
          120000);
  ASSERT_EQ(copy.rc, 0) << copy.out;
  // The client API is TLS and wants a client certificate: plaintext and TLS without one fail,
  // the status client's certificate passes.
  std::string status = std::string(MIR_BIN_DIR) + "/mir-status";
  EXPECT_NE(Cmd({status, "--timeout-ms", "3000", c.Addrs()[0]}, 30000).rc, 0);
  EXPECT_NE(
      Cmd({status, "--timeout-ms", "3000", "--tls-ca", tls + "/ca.pem", c.Addrs()[0]}, 30000).rc,
      0);
  Result st =
      Cmd({status, "--timeout-ms", "3000", "--tls-ca", tls + "/ca.pem", "--tls-cert",
           tls + "/client-status.crt", "--tls-key", tls + "/client-status.key", c.Addrs()[0]},
          30000);
  EXPECT_EQ(st.rc, 0) << st.out;

  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), client + "a", 10000, 300000, &why, tls), 10000) << why;
  // The metrics endpoint is published on 127.0.0.1 too.
  Result metrics =
      Cmd({"curl", "-sf", "http://127.0.0.1:" + std::to_string(base + 100) + "/metrics"}, 60000);
  EXPECT_EQ(metrics.rc, 0) << metrics.out;
  EXPECT_NE(metrics.out.find("mir_process_resident_memory_bytes"), std::string::npos);

  // A crash: SIGKILL to replica 3; the other three go on committing.
  std::string victim = c.Container(3);
  ASSERT_EQ(Cmd({"docker", "kill", victim}, 60000).rc, 0);
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), client + "b", 1000, 180000, &why, tls), 1000) << why;
  Result start = Cmd({"docker", "start", victim}, 60000);
  ASSERT_EQ(start.rc, 0) << start.out;
  ASSERT_TRUE(c.WaitHealthy(120, &why)) << why;
  ASSERT_TRUE(c.WaitSamePosition(0, 120, &why)) << why;

  // A partition: replica 2 off the network while the others commit, then back.
  std::string cut = c.Container(2);
  ASSERT_EQ(Cmd({"docker", "network", "disconnect", c.Network(), cut}, 60000).rc, 0);
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), client + "c", 1000, 180000, &why, tls), 1000) << why;
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
  EXPECT_EQ(deploy::CommitTxs(c.Addrs(), client + "d", 1000, 180000, &why, tls), 1000) << why;
  ASSERT_TRUE(c.WaitSamePosition(0, 120, &why)) << why;
}

}  // namespace
