// A local cluster of real mir-replica processes for integration tests: keys and membership from
// mir-keygen, one configuration and data folder per replica in a fresh temporary folder, free
// ports on 127.0.0.1, logs per replica. The first start of each replica passes --new (its data
// folder holds no store yet); later starts resume from the data folder. Every process started is
// killed (SIGKILL) when the Cluster goes away; every wait is bounded.
#ifndef MIR_TESTS_CLUSTER_H
#define MIR_TESTS_CLUSTER_H

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mirtest {

struct ClusterOptions {
  size_t n = 4;
  std::string trantor_json = "";  // extra members of the "trantor" object, e.g. "\"x\": 1"
  std::string client_json = "";   // extra members of the "client" object
  bool store_sync = true;
  bool http = false;  // serve the HTTP endpoint (http_listen) on HttpAddr(i)
};

class Cluster {
 public:
  explicit Cluster(const ClusterOptions &o);
  ~Cluster();
  Cluster(const Cluster &) = delete;
  Cluster &operator=(const Cluster &) = delete;

  // Empty if the folder, keys and configurations were made; else what failed.
  const std::string &error() const { return error_; }
  size_t size() const { return opts_.n; }

  // Starts replica i: with --new the first time, resuming from its data folder afterwards.
  bool Start(size_t i);
  bool StartAll();
  // Starts replica i with exactly these flags (no --new added), its command line preceded by
  // prefix (e.g. {"/usr/bin/prlimit", "--fsize=...", "--"}).
  bool StartWith(size_t i, const std::vector<std::string> &flags,
                 const std::vector<std::string> &prefix = {});
  // SIGKILL and reap; true once the process is confirmed gone (reaped, and no process has its
  // pid any more).
  bool Kill(size_t i);
  // SIGTERM and wait up to timeout_ms; returns the exit status (-1 if it did not exit).
  int Stop(size_t i, int timeout_ms);
  // Waits up to timeout_ms for replica i to exit by itself: its exit status (128 + signal when a
  // signal ended it), or -1 if it is still running (it is left running).
  int WaitExit(size_t i, int timeout_ms);
  bool Running(size_t i) const { return pids_[i] > 0; }
  pid_t Pid(size_t i) const { return pids_[i]; }
  // Replica i's data folder, and its removal (the replica must not be running).
  std::string DataDir(size_t i) const;
  void WipeData(size_t i);

  std::string ClientAddr(size_t i) const;
  // Every replica's client address, comma-separated (mir-bench's --replicas).
  std::string ClientAddrs() const;
  std::string PeerAddr(size_t i) const;
  std::string HttpAddr(size_t i) const;
  std::string ConfigPath(size_t i) const;
  // The last `lines` lines of replica i's log (all runs).
  std::string LogTail(size_t i, size_t lines = 30) const;
  std::string Log(size_t i) const;
  // Waits until every running replica answers Status with every peer connected.
  bool WaitReady(int timeout_ms);
  // Keeps the folder after the test (for a failure's logs).
  void Keep() { keep_ = true; }
  const std::string &dir() const { return dir_; }

 private:
  bool MakeConfigs();
  ClusterOptions opts_;
  std::string dir_, error_;
  int base_port_ = 0;
  std::vector<pid_t> pids_;
  std::vector<bool> started_;  // started at least once: later starts resume (no --new)
  bool keep_ = false;
};

// The folder of the built programs (mir-replica, mir-keygen, mir-status).
std::string BinDir();

// Runs argv (argv[0] a path) to completion within timeout_ms, output to out_file (may be "").
// Returns the exit status, or -1 if it did not exit in time (then it is killed).
int RunProgram(const std::vector<std::string> &argv, const std::string &out_file, int timeout_ms);

// Starts argv in the background, output appended to out_file (may be ""); -1 if it cannot start.
pid_t StartProgram(const std::vector<std::string> &argv, const std::string &out_file);
// Waits up to timeout_ms for pid (started by StartProgram) to exit: its exit status, or -1 (then
// it is killed and reaped).
int WaitProgram(pid_t pid, int timeout_ms);

// Polls pred every 50 ms until it holds (true) or timeout_ms passes (false).
bool WaitFor(const std::function<bool()> &pred, int timeout_ms);

std::string ReadFile(const std::string &path);

}  // namespace mirtest

#endif
