// The limit pipeline end to end: four mir-limit servers started by deploy/local/cluster.sh
// (MIR_REPLICA_PROGRAM=mir-limit, the replicas' configurations: mutual TLS between servers,
// plaintext client API) on free ports of 127.0.0.1, driven through the SDK with its defaults
// (each transaction submitted to every server, commits on f+1 matching deliveries). Every process
// started here is stopped (cluster.sh clean, then SIGKILL of any pid left); every wait is bounded;
// no test asserts a duration.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mir/client.h"
#include "integration/ports.h"
#include "sdk/sdk_proc.h"

namespace {

constexpr int64_t kWaitMs = 60000;  // upper bound of every wait; never reached when things work
constexpr int kServers = 4;

std::string Bin(const char *name) {
  return std::string(MIR_BIN_DIR) + "/" + name;
}
std::string ClusterScript() {
  return std::string(MIR_SOURCE_DIR) + "/deploy/local/cluster.sh";
}

// Four mir-limit servers in a temporary folder, on ports that were free.
class LimitCluster {
 public:
  LimitCluster() {
    char tmpl[] = "/tmp/mir-limit-test-XXXXXX";
    dir_ = mkdtemp(tmpl) ? tmpl : "";
    // Peer, client and HTTP ports from one block of the tests' shared allocator (below the
    // ephemeral range, never another running test's).
    base_ = mirtest::FindPorts(3 * kServers);
    env_ = {"MIR_CLUSTER_DIR=" + dir_ + "/cluster",
            std::string("MIR_BIN_DIR=") + MIR_BIN_DIR,
            "MIR_PEER_BASE_PORT=" + std::to_string(base_),
            "MIR_CLIENT_BASE_PORT=" + std::to_string(base_ + kServers),
            "MIR_HTTP_BASE_PORT=" + std::to_string(base_ + 2 * kServers),
            "MIR_LOG=warn",
            "MIR_CLIENT_CERTS=0",
            "MIR_REPLICA_PROGRAM=mir-limit"};
  }
  ~LimitCluster() {
    std::string out;
    RunProgram({"/bin/bash", ClusterScript(), "clean"}, env_, 30000, &out);
    for (int i = 0; i < kServers; i++) {  // anything still alive gets SIGKILL
      pid_t pid = Pid(i);
      if (pid > 0) kill(pid, SIGKILL);
    }
    std::string rm;
    RunProgram({"/bin/rm", "-rf", dir_}, {}, 30000, &rm);
  }
  bool Start(std::string *out) {
    return !dir_.empty() && base_ != 0 &&
           RunProgram({"/bin/bash", ClusterScript(), "start", std::to_string(kServers)}, env_,
                      60000, out) == 0;
  }
  // cluster.sh status: one line per server with its last sn and log hash (mir-status).
  bool Status(std::string *out) {
    return RunProgram({"/bin/bash", ClusterScript(), "status"}, env_, 30000, out) == 0;
  }
  std::vector<std::string> Addresses() const {
    std::vector<std::string> a;
    std::ifstream in(dir_ + "/cluster/client-addresses");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) a.push_back(line);
    }
    return a;
  }
  pid_t Pid(int i) const {
    std::ifstream in(dir_ + "/cluster/pids/replica-" + std::to_string(i) + ".pid");
    long pid = 0;
    in >> pid;
    return static_cast<pid_t>(pid);
  }
  std::string Logs() const {
    std::string all;
    for (int i = 0; i < kServers; i++) {
      std::ifstream in(dir_ + "/cluster/logs/replica-" + std::to_string(i) + ".log");
      std::stringstream ss;
      ss << in.rdbuf();
      std::string s = ss.str();
      all += "--- server " + std::to_string(i) + " (last 2000 bytes)\n" +
             (s.size() > 2000 ? s.substr(s.size() - 2000) : s);
    }
    return all;
  }

 private:
  int base_ = 0;
  std::string dir_;
  std::vector<std::string> env_;
};

// Every transaction the subscription reports, by (client id, tx number), and the sns it saw.
struct Seen {
  std::mutex mu;
  std::map<std::pair<std::string, uint64_t>, int> count;
  std::vector<uint64_t> sns;
  size_t txs = 0;
  static void Cb(mir_client_sub *, int, const mir_client_entry *e, void *ud) {
    if (e == nullptr) return;
    auto *s = static_cast<Seen *>(ud);
    std::lock_guard<std::mutex> l(s->mu);
    s->sns.push_back(e->sn);
    for (size_t i = 0; i < e->n_txs; i++) {
      s->count[{e->txs[i].client_id, e->txs[i].tx_no}]++;
      s->txs++;
    }
  }
  size_t Txs() {
    std::lock_guard<std::mutex> l(mu);
    return txs;
  }
};

mir_client *Open(const std::vector<std::string> &addrs, const std::string &id) {
  std::vector<const char *> ptrs;
  for (auto &a : addrs) ptrs.push_back(a.c_str());
  mir_client_options o;
  mir_client_options_init(&o);
  o.replicas = ptrs.data();
  o.n_replicas = ptrs.size();
  o.client_id = id.c_str();
  o.connect_timeout_ms = 20000;
  mir_client *c = nullptr;
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c)) << mir_client_errdetail();
  return c;
}

TEST(LimitPipeline, ThreeThousandTransactionsCommitAndAreDeliveredOnce) {
  // Three clients submit 1,000 transactions of 256 bytes each, concurrently, to four limit
  // servers: every one commits (f+1 servers delivered it at the same sn and log hash), a
  // subscription from sn 0 sees each exactly once in consecutive sns and nothing else, and all
  // four servers end at the same sn with the same log hash.
  if (access(Bin("mir-limit").c_str(), X_OK) != 0) GTEST_SKIP() << "mir-limit not built";
  LimitCluster cl;
  std::string out;
  ASSERT_TRUE(cl.Start(&out)) << out << cl.Logs();
  std::vector<std::string> addrs = cl.Addresses();
  ASSERT_EQ(addrs.size(), static_cast<size_t>(kServers));
  mir_client *reader = Open(addrs, "limit-reader-" + std::to_string(getpid()));
  ASSERT_NE(reader, nullptr);
  Seen seen;
  mir_client_sub *sub = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(reader, 0, Seen::Cb, &seen, &sub));

  constexpr int kClients = 3, kPerClient = 1000;
  std::vector<std::string> ids;
  std::vector<std::thread> threads;
  std::vector<size_t> committed(kClients, 0);
  for (int k = 0; k < kClients; k++) {
    ids.push_back("limit-" + std::to_string(k) + "-" + std::to_string(getpid()));
  }
  for (int k = 0; k < kClients; k++) {
    threads.emplace_back([&, k] {
      mir_client *c = Open(addrs, ids[k]);
      if (c == nullptr) return;
      std::vector<mir_client_ticket> tickets;
      std::string data(256, static_cast<char>('a' + k));
      for (int i = 0; i < kPerClient; i++) {
        memcpy(&data[0], &i, sizeof(i));
        mir_client_ticket t = 0;
        int rc = mir_client_submit(c, data.data(), data.size(), nullptr, nullptr, &t);
        EXPECT_EQ(rc, MIR_CLIENT_OK) << mir_client_errdetail();
        if (rc != MIR_CLIENT_OK) break;
        tickets.push_back(t);
      }
      for (auto t : tickets) {
        int rc = mir_client_wait(c, t, kWaitMs, nullptr);
        EXPECT_EQ(rc, MIR_CLIENT_OK) << ids[k] << " ticket " << t << ": " << mir_client_errdetail();
        if (rc != MIR_CLIENT_OK) break;
        committed[k]++;
      }
      mir_client_stats st;
      mir_client_stats_get(c, &st);
      EXPECT_EQ(st.conflicting_votes, 0u);
      EXPECT_EQ(st.bad_messages, 0u);
      mir_client_close(c);
    });
  }
  for (auto &t : threads) t.join();
  for (int k = 0; k < kClients; k++) EXPECT_EQ(committed[k], static_cast<size_t>(kPerClient));

  size_t total = static_cast<size_t>(kClients) * kPerClient;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (seen.Txs() < total && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a late duplicate would show
  mir_client_unsubscribe(sub);
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.txs, total);
    EXPECT_EQ(seen.count.size(), total);
    for (int k = 0; k < kClients; k++) {
      for (uint64_t no = 0; no < static_cast<uint64_t>(kPerClient); no++) {
        auto it = seen.count.find({ids[k], no});
        EXPECT_TRUE(it != seen.count.end() && it->second == 1) << ids[k] << " tx " << no;
      }
    }
    ASSERT_FALSE(seen.sns.empty());
    EXPECT_EQ(seen.sns[0], 0u);
    for (size_t i = 1; i < seen.sns.size(); i++) EXPECT_EQ(seen.sns[i], seen.sns[i - 1] + 1);
  }
  mir_client_stats st;
  mir_client_stats_get(reader, &st);
  EXPECT_EQ(st.conflicting_votes, 0u);
  mir_client_close(reader);

  // Every server's log ends at the same sn with the same hash (the reader saw f+1 of them agree;
  // this sees all four).
  ASSERT_TRUE(cl.Status(&out)) << out;
  std::regex line("last_sn (\\d+)\\s+log_hash ([0-9a-f]{64})");
  std::set<std::string> heads;
  size_t lines = 0;
  for (std::sregex_iterator it(out.begin(), out.end(), line), e; it != e; ++it, lines++) {
    heads.insert((*it)[1].str() + " " + (*it)[2].str());
  }
  EXPECT_EQ(lines, static_cast<size_t>(kServers)) << out;
  EXPECT_EQ(heads.size(), 1u) << out;
}

}  // namespace
