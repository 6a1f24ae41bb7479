// The Ansible playbooks (deploy/ansible/) against real hosts: five containers with sshd on a
// private Docker network of this test stand in for four replica machines and a client machine,
// and the replicas run in each of the three ways the playbooks know: r0 and r1 have systemd as
// process 1 (the replica runs as the unit mir-replica.service), r2 has sshd alone (the replica
// runs under start-stop-daemon), r3 has systemd and a Docker engine of its own (mir_service
// docker: the replica runs in a container of the project's image, which prepare.yml saves here
// and loads there). prepare.yml installs the install tree taken from the project's image on the
// others, keys.yml makes the keys on this machine, deploy.yml starts the cluster and the SDK on
// this machine commits through it; rolling-restart.yml restarts the replicas one at a time while
// a client keeps submitting, and every transaction of that client commits; keys.yml and
// deploy.yml run again report no change on any host, nor does prepare.yml on the container host
// (the image is not shipped again); a replica whose store is deleted is refused by deploy.yml
// until -e mir_rejoin=true, then rejoins by state transfer and reaches the others' log hash;
// bench.yml runs mir-bench on the client host and fetches its JSON report here; wipe.yml, once
// confirmed, removes the replicas' data and the container. Skipped where no Docker engine
// answers or ansible-playbook is missing.
#include <sys/stat.h>

#include <fstream>

#include "deploy_util.h"

namespace {

using deploy::Cmd;
using deploy::Result;
using deploy::Trim;

constexpr int kReplicas = 4;
constexpr const char *kHostImage = "mir-c-sshd:ctest";

// How a stand-in host runs: sshd alone, systemd as process 1, or systemd with a Docker engine.
enum class HostKind { kSshd, kSystemd, kDocker };

class Hosts {
 public:
  Hosts() : name_("mirta" + std::to_string(getpid())), dir_(deploy::TempDir("mir-ansible-test")) {}
  ~Hosts() {
    // -v: the Docker host's engine keeps its images in an anonymous volume.
    for (const auto &h : hosts_) Cmd({"docker", "rm", "-f", "-v", h}, 60000);
    Cmd({"docker", "network", "rm", name_}, 60000);
    if (!dir_.empty()) Cmd({"rm", "-rf", dir_}, 60000);
  }

  const std::string &Dir() const { return dir_; }

  // The network, the ssh key, and one container with sshd per entry of kinds; fills ips_.
  bool Start(const std::vector<HostKind> &kinds, std::string *why) {
    Result k = Cmd({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_ + "/id"}, 60000);
    if (k.rc != 0) return *why = "ssh-keygen: " + k.out, false;
    Result net = Cmd({"docker", "network", "create", name_}, 60000);
    if (net.rc != 0) return *why = "network: " + net.out, false;
    for (size_t i = 0; i < kinds.size(); i++) {
      std::string h = name_ + "-h" + std::to_string(i);
      std::vector<std::string> argv = {"docker",     "run", "-d",        "--name", h,
                                       "--hostname", h,     "--network", name_};
      if (kinds[i] != HostKind::kSshd) {
        // systemd as process 1: its runtime folders in memory, the cgroup tree to read.
        argv.insert(argv.end(), {"--tmpfs", "/run", "--tmpfs", "/run/lock", "-v",
                                 "/sys/fs/cgroup:/sys/fs/cgroup:ro"});
      }
      if (kinds[i] == HostKind::kDocker) {
        // An engine inside: what it needs to mount and set up networks, its storage apart.
        argv.insert(argv.end(), {"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
                                 "--security-opt", "seccomp=unconfined", "--security-opt",
                                 "apparmor=unconfined", "-v", "/var/lib/docker"});
      }
      argv.push_back(kHostImage);
      if (kinds[i] != HostKind::kSshd) argv.push_back("/sbin/init");
      Result r = Cmd(argv, 120000);
      if (r.rc != 0) return *why = "docker run: " + r.out, false;
      hosts_.push_back(h);
      Result cp = Cmd({"docker", "cp", dir_ + "/id.pub", h + ":/root/.ssh/authorized_keys"}, 60000);
      Result own =
          Cmd({"docker", "exec", h, "chown", "root:root", "/root/.ssh/authorized_keys"}, 60000);
      if (cp.rc != 0 || own.rc != 0) return *why = "key: " + cp.out + own.out, false;
      Result ip = Cmd({"docker", "inspect", "-f",
                       "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", h},
                      30000);
      ips_.push_back(Trim(ip.out));
    }
    // systemd hosts: up once systemd says so (sshd is one of its units).
    for (size_t i = 0; i < kinds.size(); i++) {
      if (kinds[i] == HostKind::kSshd) continue;
      std::string state;
      for (int t = 0; t < 90 && state != "running" && state != "degraded"; t++) {
        if (t > 0) sleep(1);
        state =
            Trim(Cmd({"docker", "exec", hosts_[i], "systemctl", "is-system-running"}, 30000).out);
      }
      if (state != "running" && state != "degraded") {
        return *why = hosts_[i] + ": systemd is " + state, false;
      }
    }
    return true;
  }

  // An inventory of the hosts: the first kReplicas replicas, the last one a client; the Docker
  // host runs its replica in the container mode.
  void WriteInventory(const std::vector<HostKind> &kinds) {
    std::ofstream f(dir_ + "/inventory.ini");
    f << "[replicas]\n";
    for (int i = 0; i < kReplicas; i++) {
      f << "r" << i << " ansible_host=" << ips_[i] << " mir_id=" << i
        << (kinds[i] == HostKind::kDocker ? " mir_service=docker" : "") << "\n";
    }
    f << "[clients]\nc0 ansible_host=" << ips_[kReplicas] << "\n";
    f << "[all:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n"
      << "ansible_ssh_private_key_file=" << dir_ << "/id\n"
      << "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
      << "mir_dist=" << dir_ << "/dist.tar.gz\nmir_keygen=" << MIR_BIN_DIR << "/mir-keygen\n"
      << "mir_state_dir=" << dir_ << "/state\nmir_bench_seconds=3\nmir_bench_rate=300\n"
      << "mir_image=" << deploy::kImage << "\n";
  }

  // Runs a playbook and prints how long it took (the test's time goes there).
  Result Playbook(const std::string &name, const std::vector<std::string> &extra = {}) {
    std::string pb = std::string(MIR_SOURCE_DIR) + "/deploy/ansible/";
    std::vector<std::string> argv = {"ansible-playbook", "-i", dir_ + "/inventory.ini", pb + name};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto t0 = std::chrono::steady_clock::now();
    Result r = Cmd(argv, 600000,
                   {"ANSIBLE_CONFIG=" + pb + "ansible.cfg", "ANSIBLE_NOCOLOR=1",
                    "ANSIBLE_LOCAL_TEMP=" + dir_ + "/ansible-tmp", "ANSIBLE_FORKS=5"});
    auto s =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0);
    std::cout << name << ": exit status " << r.rc << " after " << s.count() << " s\n";
    return r;
  }

  const std::string &Host(int i) const { return hosts_[i]; }

  // The replicas' positions, read with this machine's mir-status.
  std::vector<deploy::Position> Positions() const {
    std::vector<std::string> argv = {std::string(MIR_BIN_DIR) + "/mir-status", "--json",
                                     "--timeout-ms", "2000"};
    for (const auto &a : ClientAddrs()) argv.push_back(a);
    return deploy::ParseStatus(Cmd(argv, 60000).out);
  }

  std::vector<std::string> ClientAddrs() const {
    std::vector<std::string> a;
    for (int i = 0; i < kReplicas; i++) a.push_back(ips_[i] + ":9000");
    return a;
  }

 private:
  std::string name_, dir_;
  std::vector<std::string> hosts_, ips_;
};

// The hosts' image, built once (then from Docker's cache) with the image's runtime packages.
bool BuildHostImage(std::string *why) {
  Result pk =
      Cmd({"docker", "run", "--rm", deploy::kImage, "cat", "/usr/local/share/mir/runtime-packages"},
          120000);
  if (pk.rc != 0) return *why = pk.out, false;
  std::string packages = Trim(pk.out);
  for (char &ch : packages) ch = ch == '\n' ? ' ' : ch;
  std::string ctx = std::string(MIR_SOURCE_DIR) + "/tests/deploy";
  Result b = Cmd({"docker", "build", "-t", kHostImage, "-f", ctx + "/sshd-host.Dockerfile",
                  "--build-arg", "PACKAGES=" + packages, ctx},
                 1200000);
  if (b.rc != 0) *why = b.out;
  return b.rc == 0;
}

// The PLAY RECAP lines of a run, and whether each says changed=0.
bool NoChange(const std::string &out) {
  size_t at = out.find("PLAY RECAP");
  if (at == std::string::npos) return false;
  std::istringstream in(out.substr(at));
  std::string line;
  int hosts = 0;
  while (std::getline(in, line)) {
    if (line.find("ok=") == std::string::npos) continue;
    hosts++;
    if (line.find("changed=0 ") == std::string::npos) return false;
  }
  return hosts > 0;
}

// A client that submits one transaction every few milliseconds until told to stop (bounded in
// count and time), for load that runs across the rolling restart.
struct Load {
  std::atomic<bool> stop{false};
  long committed = 0;
  long expected = 0;
  std::string why;
  std::thread th;

  void Start(const std::vector<std::string> &addrs, const std::string &id) {
    th = std::thread([this, addrs, id] {
      long round = 0;
      auto end = std::chrono::steady_clock::now() + std::chrono::minutes(10);
      while (!stop && std::chrono::steady_clock::now() < end && round < 200) {
        std::string w;
        committed += deploy::CommitTxs(addrs, id + "-" + std::to_string(round), 50, 120000, &w);
        expected += 50;
        if (!w.empty() && why.empty()) why = w;
        round++;
      }
    });
  }
  void Finish() {
    stop = true;
    if (th.joinable()) th.join();
  }
};

TEST(Ansible, DeployRollingRestartIdempotenceAndBench) {
  std::string why;
  if (!deploy::DockerAnswers(&why)) GTEST_SKIP() << why;
  if (Cmd({"ansible-playbook", "--version"}, 60000).rc != 0) {
    GTEST_SKIP()
        << "ansible-playbook not found (scripts/install-deps.sh installs it where Docker is)";
  }
  std::string log;
  ASSERT_TRUE(deploy::BuildImage(&log)) << log;
  ASSERT_TRUE(BuildHostImage(&why)) << why;
  Hosts h;
  ASSERT_FALSE(h.Dir().empty());
  const std::vector<HostKind> kinds = {HostKind::kSystemd, HostKind::kSystemd, HostKind::kSshd,
                                       HostKind::kDocker, HostKind::kSshd};
  ASSERT_TRUE(h.Start(kinds, &why)) << why;
  h.WriteInventory(kinds);
  // The install tree deployed: the image's /usr/local, as `make dist` makes it from a build.
  Result dist =
      Cmd({"sh", "-c",
           std::string("docker run --rm ") + deploy::kImage +
               " tar -C /usr/local -czf - bin lib include share > " + h.Dir() + "/dist.tar.gz"},
          300000);
  ASSERT_EQ(dist.rc, 0) << dist.out;

  for (const char *pb : {"prepare.yml", "keys.yml", "deploy.yml", "status.yml"}) {
    Result r = h.Playbook(pb);
    ASSERT_EQ(r.rc, 0) << pb << ":\n" << r.out;
  }
  // Each replica runs the way its host asked for.
  Result unit = Cmd({"docker", "exec", h.Host(0), "systemctl", "is-active", "mir-replica"}, 30000);
  EXPECT_EQ(Trim(unit.out), "active") << unit.out;
  Result daemon = Cmd({"docker", "exec", h.Host(2), "cat", "/run/mir-replica.pid"}, 30000);
  EXPECT_EQ(daemon.rc, 0) << daemon.out;
  Result ctr = Cmd({"docker", "exec", h.Host(3), "docker", "inspect", "-f",
                    "{{.State.Running}} {{.Config.User}}", "mir-replica"},
                   30000);
  EXPECT_EQ(Trim(ctr.out).rfind("true ", 0), 0u) << ctr.out;
  EXPECT_NE(Trim(ctr.out), "true 0:0") << "the container runs as root";
  std::string pid = std::to_string(getpid());
  EXPECT_EQ(deploy::CommitTxs(h.ClientAddrs(), "ansible-" + pid + "-a", 1000, 180000, &why), 1000)
      << why;

  // A rolling restart under load: every transaction of the client commits.
  Load load;
  load.Start(h.ClientAddrs(), "ansible-" + pid + "-roll");
  Result roll = h.Playbook("rolling-restart.yml");
  load.Finish();
  EXPECT_EQ(roll.rc, 0) << roll.out;
  EXPECT_GT(load.expected, 0);
  EXPECT_EQ(load.committed, load.expected) << load.why;
  EXPECT_NE(roll.out.find("Caught up with the cluster"), std::string::npos);

  // Idempotence: making the keys and deploying what runs change nothing, on any host.
  for (const char *pb : {"keys.yml", "deploy.yml"}) {
    Result again = h.Playbook(pb);
    EXPECT_EQ(again.rc, 0) << pb << ":\n" << again.out;
    EXPECT_TRUE(NoChange(again.out)) << pb << ":\n" << again.out;
  }

  // The image goes to the container host once: prepare again ships and loads nothing.
  Result prep = h.Playbook("prepare.yml", {"--limit", "r3"});
  EXPECT_EQ(prep.rc, 0) << prep.out;
  EXPECT_TRUE(NoChange(prep.out)) << prep.out;

  // A replica that lost its store (here: r1, a systemd unit) is not started as new: deploy.yml
  // stops and asks for mir_rejoin, which starts it --rejoin; it catches up by state transfer.
  ASSERT_EQ(h.Playbook("stop.yml", {"--limit", "r1"}).rc, 0);
  ASSERT_EQ(Cmd({"docker", "exec", h.Host(1), "rm", "-rf", "/var/lib/mir/db"}, 60000).rc, 0);
  Result refused = h.Playbook("deploy.yml", {"--limit", "r1"});
  EXPECT_NE(refused.rc, 0);
  EXPECT_NE(refused.out.find("-e mir_rejoin=true"), std::string::npos) << refused.out;
  Result rejoin = h.Playbook("deploy.yml", {"--limit", "r1", "-e", "mir_rejoin=true"});
  ASSERT_EQ(rejoin.rc, 0) << rejoin.out;
  Result flags = Cmd(
      {"docker", "exec", h.Host(1), "journalctl", "-u", "mir-replica", "-o", "cat", "--no-pager"},
      30000);
  EXPECT_NE(flags.out.find("--rejoin: marked the new log"), std::string::npos) << flags.out;
  why.clear();
  EXPECT_EQ(deploy::CommitTxs(h.ClientAddrs(), "ansible-" + pid + "-r", 200, 180000, &why), 200)
      << why;
  std::vector<deploy::Position> ps;
  for (int t = 0; t < 120; t++) {
    ps = h.Positions();
    if (deploy::AllEqual(ps, kReplicas) && ps[0].next_sn > 0) break;
    sleep(1);
  }
  EXPECT_TRUE(deploy::AllEqual(ps, kReplicas)) << "replicas at different positions after rejoin";

  // The benchmark runs on the client host and its report comes back here.
  Result bench = h.Playbook("bench.yml");
  ASSERT_EQ(bench.rc, 0) << bench.out;
  Result reports = Cmd({"sh", "-c", "cat " + h.Dir() + "/state/bench/c0-*.json"}, 30000);
  EXPECT_EQ(reports.rc, 0) << reports.out;
  EXPECT_NE(reports.out.find("\"committed\""), std::string::npos) << reports.out;

  Result stop = h.Playbook("stop.yml");
  EXPECT_EQ(stop.rc, 0) << stop.out;
  // Wiping asks for its confirmation, then leaves no data folder behind.
  EXPECT_NE(h.Playbook("wipe.yml").rc, 0);
  Result wipe = h.Playbook("wipe.yml", {"-e", "mir_wipe=yes"});
  EXPECT_EQ(wipe.rc, 0) << wipe.out;
  EXPECT_NE(Cmd({"docker", "exec", h.Host(0), "test", "-e", "/var/lib/mir"}, 60000).rc, 0);
  EXPECT_NE(Cmd({"docker", "exec", h.Host(3), "docker", "inspect", "mir-replica"}, 60000).rc, 0);
}

}  // namespace
