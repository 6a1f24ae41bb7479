// The integration-test cluster (cluster.h).
#include "integration/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "integration/api_client.h"
#include "integration/ports.h"

extern char **environ;

namespace mirtest {

namespace {

void RemoveTree(const std::string &dir) {
  RunProgram({"/bin/rm", "-rf", dir}, "", 30000);
}

pid_t Spawn(const std::vector<std::string> &argv, const std::string &out_file) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const char *out = out_file.empty() ? "/dev/null" : out_file.c_str();
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char *> args;
  for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits for pid up to timeout_ms: its exit status, or -1.
int Reap(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

std::string BinDir() {
  return MIR_BIN_DIR;
}

std::string ReadFile(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

pid_t StartProgram(const std::vector<std::string> &argv, const std::string &out_file) {
  return Spawn(argv, out_file);
}

int WaitProgram(pid_t pid, int timeout_ms) {
  int st = Reap(pid, timeout_ms);
  if (st == -1) {
    kill(pid, SIGKILL);
    Reap(pid, 5000);
  }
  return st;
}

int RunProgram(const std::vector<std::string> &argv, const std::string &out_file, int timeout_ms) {
  pid_t pid = Spawn(argv, out_file);
  if (pid < 0) return -1;
  int st = Reap(pid, timeout_ms);
  if (st == -1) {
    kill(pid, SIGKILL);
    Reap(pid, 5000);
  }
  return st;
}

bool WaitFor(const std::function<bool()> &pred, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Cluster::Cluster(const ClusterOptions &o) : opts_(o), pids_(o.n, -1), started_(o.n, false) {
  const char *tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/mir-cluster-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  dir_ = buf.data();
  base_port_ = FindPorts(static_cast<int>(3 * o.n));
  if (base_port_ == 0) {
    error_ = "no free ports";
    return;
  }
  int st = RunProgram({BinDir() + "/mir-keygen", "--n", std::to_string(o.n), "--out", dir_, "--tls",
                       "--base-port", std::to_string(base_port_)},
                      dir_ + "/keygen.log", 60000);
  if (st != 0) {
    error_ = "mir-keygen failed: " + ReadFile(dir_ + "/keygen.log");
    return;
  }
  if (!MakeConfigs()) error_ = "cannot write the configurations";
}

Cluster::~Cluster() {
  for (size_t i = 0; i < pids_.size(); i++) Kill(i);
  if (!keep_ && !dir_.empty()) RemoveTree(dir_);
  if (keep_) fprintf(stderr, "cluster folder kept: %s\n", dir_.c_str());
}

std::string Cluster::PeerAddr(size_t i) const {
  return "127.0.0.1:" + std::to_string(base_port_ + static_cast<int>(i));
}

std::string Cluster::ClientAddr(size_t i) const {
  return "127.0.0.1:" + std::to_string(base_port_ + static_cast<int>(opts_.n + i));
}

std::string Cluster::ClientAddrs() const {
  std::string out;
  for (size_t i = 0; i < opts_.n; i++) out += (i ? "," : "") + ClientAddr(i);
  return out;
}

std::string Cluster::HttpAddr(size_t i) const {
  return "127.0.0.1:" + std::to_string(base_port_ + static_cast<int>(2 * opts_.n + i));
}

std::string Cluster::ConfigPath(size_t i) const {
  return dir_ + "/replica-" + std::to_string(i) + ".json";
}

bool Cluster::MakeConfigs() {
  for (size_t i = 0; i < opts_.n; i++) {
    std::string id = std::to_string(i);
    std::ofstream f(ConfigPath(i));
    f << "{\"id\": \"" << id << "\", \"membership\": \"membership.json\", \"key_file\": \"replica-"
      << id << ".key\",\n \"tls\": {\"ca_file\": \"ca.pem\", \"cert_file\": \"replica-" << id
      << ".crt\", \"key_file\": \"replica-" << id << ".tls.key\"},\n \"client_listen\": \""
      << ClientAddr(i) << "\", \"data_dir\": \"data-" << id << "\","
      << (opts_.http ? " \"http_listen\": \"" + HttpAddr(i) + "\"," : std::string())
      << "\n \"store\": {\"sync\": " << (opts_.store_sync ? "true" : "false")
      << "},\n \"client\": {" << opts_.client_json << "},\n \"trantor\": {" << opts_.trantor_json
      << "}}\n";
    if (!f) return false;
  }
  return true;
}

bool Cluster::Start(size_t i) {
  if (pids_[i] > 0) return true;
  return StartWith(i, started_[i] ? std::vector<std::string>{} : std::vector<std::string>{"--new"});
}

bool Cluster::StartWith(size_t i, const std::vector<std::string> &flags,
                        const std::vector<std::string> &prefix) {
  if (pids_[i] > 0) return true;
  std::vector<std::string> argv = prefix;
  for (const auto &a : {BinDir() + "/mir-replica", std::string("--config"), ConfigPath(i),
                        std::string("--status-period-ms"), std::string("1000")}) {
    argv.push_back(a);
  }
  argv.insert(argv.end(), flags.begin(), flags.end());
  pids_[i] = Spawn(argv, dir_ + "/replica-" + std::to_string(i) + ".log");
  started_[i] = started_[i] || pids_[i] > 0;
  return pids_[i] > 0;
}

bool Cluster::StartAll() {
  bool ok = true;
  for (size_t i = 0; i < opts_.n; i++) ok = Start(i) && ok;
  return ok;
}

bool Cluster::Kill(size_t i) {
  if (pids_[i] <= 0) return true;
  pid_t pid = pids_[i];
  kill(pid, SIGKILL);
  bool reaped = Reap(pid, 10000) != -1;
  pids_[i] = -1;
  return reaped && kill(pid, 0) != 0 && errno == ESRCH;
}

int Cluster::WaitExit(size_t i, int timeout_ms) {
  if (pids_[i] <= 0) return -1;
  int st = Reap(pids_[i], timeout_ms);
  if (st != -1) pids_[i] = -1;
  return st;
}

std::string Cluster::DataDir(size_t i) const {
  return dir_ + "/data-" + std::to_string(i);
}

void Cluster::WipeData(size_t i) {
  RemoveTree(DataDir(i));
}

int Cluster::Stop(size_t i, int timeout_ms) {
  if (pids_[i] <= 0) return -1;
  kill(pids_[i], SIGTERM);
  int st = Reap(pids_[i], timeout_ms);
  if (st == -1) {
    Kill(i);
    return -1;
  }
  pids_[i] = -1;
  return st;
}

std::string Cluster::Log(size_t i) const {
  return ReadFile(dir_ + "/replica-" + std::to_string(i) + ".log");
}

std::string Cluster::LogTail(size_t i, size_t lines) const {
  std::string all = Log(i);
  size_t pos = all.size();
  for (size_t n = 0; n <= lines && pos > 0; n++) {
    size_t p = all.rfind('\n', pos - 1);
    if (p == std::string::npos) return all;
    pos = p;
  }
  return all.substr(pos);
}

bool Cluster::WaitReady(int timeout_ms) {
  std::vector<std::unique_ptr<Channel>> chans;
  for (size_t i = 0; i < opts_.n; i++) chans.emplace_back(new Channel(ClientAddr(i)));
  return WaitFor(
      [&] {
        for (size_t i = 0; i < opts_.n; i++) {
          if (!Running(i)) continue;
          Mir__Api__StatusResponse *s = GetStatus(chans[i]->get(), 1000);
          if (s == nullptr) return false;
          size_t up = 0;
          for (size_t k = 0; k < s->n_peers; k++) up += s->peers[k]->connected;
          size_t want = 0;
          for (size_t k = 0; k < opts_.n; k++) want += k != i && Running(k);
          mir__api__status_response__free_unpacked(s, nullptr);
          if (up < want) return false;
        }
        return true;
      },
      timeout_ms);
}

}  // namespace mirtest
