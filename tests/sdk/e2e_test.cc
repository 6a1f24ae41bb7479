// End-to-end tests of libmirclient against real mir-replica processes started with
// deploy/local/cluster.sh on 127.0.0.1 with client certificates required (MIR_CLIENT_CERTS=1:
// every client here presents one, issued with `cluster.sh client-cert`): a thousand transactions
// commit and appear exactly once in the agreed log, a client keeps committing after one of four
// replicas is killed, a client whose certificate names another client id gets every transaction
// rejected, and one without a certificate cannot connect. Skipped when mir-replica is not built.
// Every process started here is stopped (cluster.sh clean, then SIGKILL of any pid left), and every
// wait is bounded; no test asserts a duration.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/ports.h"
#include "mir/client.h"
#include "sdk_proc.h"

namespace {

constexpr int64_t kWaitMs = 60000;  // upper bound of every wait; never reached when things work

std::string Bin(const char *name) {
  return std::string(MIR_BIN_DIR) + "/" + name;
}
std::string ClusterScript() {
  return std::string(MIR_SOURCE_DIR) + "/deploy/local/cluster.sh";
}

bool Exists(const std::string &path) {
  return access(path.c_str(), X_OK) == 0;
}

// A cluster of n mir-replica processes in a temporary folder, on ports that were free.
class RealCluster {
 public:
  explicit RealCluster(int n) : n_(n) {
    char tmpl[] = "/tmp/mir-sdk-e2e-XXXXXX";
    dir_ = mkdtemp(tmpl) ? tmpl : "";
    // Peer, client and HTTP ports from one block of the tests' shared allocator: below the
    // ephemeral range, and never another running test's (a random base in 20000-60000 once met
    // an outgoing connection's port on the HTTP listener).
    peer_base_ = mirtest::FindPorts(3 * n);
    env_ = {"MIR_CLUSTER_DIR=" + dir_ + "/cluster",
            std::string("MIR_BIN_DIR=") + MIR_BIN_DIR,
            "MIR_PEER_BASE_PORT=" + std::to_string(peer_base_),
            "MIR_CLIENT_BASE_PORT=" + std::to_string(peer_base_ + n),
            "MIR_HTTP_BASE_PORT=" + std::to_string(peer_base_ + 2 * n),
            "MIR_LOG=warn",
            "MIR_CLIENT_CERTS=1"};
  }
  ~RealCluster() {
    std::string out;
    RunProgram({"/bin/bash", ClusterScript(), "clean"}, env_, 30000, &out);
    for (int i = 0; i < n_; i++) {  // anything still alive gets SIGKILL
      pid_t pid = Pid(i);
      if (pid > 0) kill(pid, SIGKILL);
    }
    std::string rm;
    RunProgram({"/bin/rm", "-rf", dir_}, {}, 30000, &rm);
  }
  bool Start(std::string *out) {
    return !dir_.empty() && peer_base_ != 0 &&
           RunProgram({"/bin/bash", ClusterScript(), "start", std::to_string(n_)}, env_, 60000,
                      out) == 0;
  }
  // Issues a client certificate for id with the cluster's CA (cluster.sh client-cert).
  bool ClientCert(const std::string &id, std::string *out) {
    return RunProgram({"/bin/bash", ClusterScript(), "client-cert", id}, env_, 30000, out) == 0;
  }
  std::string Path(const std::string &name) const { return dir_ + "/cluster/" + name; }
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
    for (int i = 0; i < n_; i++) {
      std::ifstream in(dir_ + "/cluster/logs/replica-" + std::to_string(i) + ".log");
      std::stringstream ss;
      ss << in.rdbuf();
      std::string s = ss.str();
      all += "--- replica " + std::to_string(i) + " (last 2000 bytes)\n" +
             (s.size() > 2000 ? s.substr(s.size() - 2000) : s);
    }
    return all;
  }

 private:
  int n_;
  int peer_base_ = 0;
  std::string dir_;
  std::vector<std::string> env_;
};

// Records every transaction of one client id the subscription reports, and the sns it saw.
struct Seen {
  std::mutex mu;
  std::string client_id;
  std::map<uint64_t, int> tx_count;
  std::vector<uint64_t> sns;
  static void Cb(mir_client_sub *, int, const mir_client_entry *e, void *ud) {
    if (e == nullptr) return;
    auto *s = static_cast<Seen *>(ud);
    std::lock_guard<std::mutex> l(s->mu);
    s->sns.push_back(e->sn);
    for (size_t i = 0; i < e->n_txs; i++) {
      if (s->client_id == e->txs[i].client_id) s->tx_count[e->txs[i].tx_no]++;
    }
  }
  size_t Distinct() {
    std::lock_guard<std::mutex> l(mu);
    return tx_count.size();
  }
};

class SdkE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Exists(Bin("mir-replica")) || !Exists(Bin("mir-keygen")) || !Exists(Bin("mir-status")) ||
        access(ClusterScript().c_str(), R_OK) != 0) {
      GTEST_SKIP() << "mir-replica, mir-keygen, mir-status or deploy/local/cluster.sh missing";
    }
  }
  // Opens a client with id, presenting a certificate for cert_id (id when empty; "-": none).
  mir_client *Open(RealCluster &cl, const std::string &id, std::string cert_id = "",
                   int *err = nullptr) {
    if (cert_id.empty()) cert_id = id;
    std::string out;
    if (cert_id != "-") {
      EXPECT_TRUE(cl.ClientCert(cert_id, &out)) << out;
    }
    ca_ = cl.Path("ca.pem");
    cert_ = cl.Path("client-" + cert_id + ".crt");
    key_ = cl.Path("client-" + cert_id + ".key");
    addrs_ = cl.Addresses();
    ptrs_.clear();
    for (auto &a : addrs_) ptrs_.push_back(a.c_str());
    mir_client_options o;
    mir_client_options_init(&o);
    o.replicas = ptrs_.data();
    o.n_replicas = ptrs_.size();
    o.client_id = id.c_str();
    o.connect_timeout_ms = err != nullptr ? 3000 : 20000;
    o.tls_ca_file = ca_.c_str();
    if (cert_id != "-") {
      o.tls_cert_file = cert_.c_str();
      o.tls_key_file = key_.c_str();
    }
    mir_client *c = nullptr;
    int rc = mir_client_open(&o, &c);
    if (err != nullptr) {
      *err = rc;
    } else {
      EXPECT_EQ(MIR_CLIENT_OK, rc) << mir_client_errdetail();
    }
    return c;
  }
  std::string ca_, cert_, key_;
  std::vector<std::string> addrs_;
  std::vector<const char *> ptrs_;
};

TEST_F(SdkE2e, AThousandTransactionsCommitOnFourReplicas) {
  // 1,000 transactions of 256 bytes submitted through the SDK to four real replicas all commit,
  // and a subscription started before them reports each exactly once, in increasing sn order.
  RealCluster cl(4);
  std::string out;
  ASSERT_TRUE(cl.Start(&out)) << out << cl.Logs();
  std::string id = "e2e-" + std::to_string(getpid());
  mir_client *c = Open(cl, id);
  ASSERT_NE(c, nullptr);
  Seen seen;
  seen.client_id = id;
  mir_client_sub *sub = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, MIR_CLIENT_FROM_NOW, Seen::Cb, &seen, &sub));
  std::vector<mir_client_ticket> tickets;
  std::string data(256, 'e');
  for (int i = 0; i < 1000; i++) {
    memcpy(&data[0], &i, sizeof(i));
    mir_client_ticket t = 0;
    ASSERT_EQ(MIR_CLIENT_OK, mir_client_submit(c, data.data(), data.size(), nullptr, nullptr, &t))
        << mir_client_errdetail();
    tickets.push_back(t);
  }
  size_t committed = 0;
  for (auto t : tickets) {
    int rc = mir_client_wait(c, t, kWaitMs, nullptr);
    EXPECT_EQ(rc, MIR_CLIENT_OK) << "ticket " << t << ": " << mir_client_errdetail();
    if (rc != MIR_CLIENT_OK) break;
    committed++;
  }
  EXPECT_EQ(committed, 1000u) << cl.Logs();
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (seen.Distinct() < 1000 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  mir_client_unsubscribe(sub);
  {
    std::lock_guard<std::mutex> l(seen.mu);
    EXPECT_EQ(seen.tx_count.size(), 1000u);
    for (auto &kv : seen.tx_count) EXPECT_EQ(kv.second, 1) << "tx " << kv.first;
    for (size_t i = 1; i < seen.sns.size(); i++) EXPECT_EQ(seen.sns[i], seen.sns[i - 1] + 1);
  }
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.committed, 1000u);
  EXPECT_EQ(st.bad_messages, 0u);
  EXPECT_EQ(st.conflicting_votes, 0u);
  mir_client_close(c);
}

TEST_F(SdkE2e, CommitsContinueAfterAReplicaIsKilled) {
  // With one of four replicas killed (f = 1), the client fails over by itself and every
  // transaction submitted before and after the kill commits.
  RealCluster cl(4);
  std::string out;
  ASSERT_TRUE(cl.Start(&out)) << out << cl.Logs();
  std::string id = "e2e-kill-" + std::to_string(getpid());
  mir_client *c = Open(cl, id);
  ASSERT_NE(c, nullptr);
  std::vector<mir_client_ticket> tickets;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 100; i++) {
      mir_client_ticket t = 0;
      ASSERT_EQ(MIR_CLIENT_OK, mir_client_submit(c, "k", 1, nullptr, nullptr, &t));
      tickets.push_back(t);
    }
    if (round == 0) {
      for (auto t : tickets) ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
      // Kill the first replica of the client's submit and follow sets (FNV-1a of the id, mod n).
      uint64_t h = 1469598103934665603ull;
      for (char ch : id) h = (h ^ static_cast<uint8_t>(ch)) * 1099511628211ull;
      pid_t pid = cl.Pid(static_cast<int>(h % 4));
      ASSERT_GT(pid, 0);
      kill(pid, SIGKILL);
    }
  }
  for (auto t : tickets) {
    EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr)) << "ticket " << t;
  }
  mir_client_close(c);
}

TEST_F(SdkE2e, ACertificateForOneClientIdCannotSubmitAsAnother) {
  // The replicas require client certificates: a client holding alice's certificate but calling
  // itself bob gets every transaction rejected by f+1 replicas, with the reason; alice's own
  // client commits; a client without a certificate cannot connect at all.
  RealCluster cl(4);
  std::string out;
  ASSERT_TRUE(cl.Start(&out)) << out << cl.Logs();
  std::string alice = "alice-" + std::to_string(getpid()), bob = "bob-" + std::to_string(getpid());
  mir_client *impostor = Open(cl, bob, alice);
  ASSERT_NE(impostor, nullptr);
  mir_client_ticket t = 0;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_submit(impostor, "x", 1, nullptr, nullptr, &t));
  mir_client_result r;
  EXPECT_EQ(MIR_CLIENT_EREJECTED, mir_client_wait(impostor, t, kWaitMs, &r));
  EXPECT_EQ(r.tx_status, MIR_CLIENT_TX_INVALID);
  EXPECT_EQ(std::string(r.reason), "client id differs from the certificate's (" + alice + ")");
  mir_client_close(impostor);
  mir_client *real = Open(cl, alice);
  ASSERT_NE(real, nullptr);
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_submit(real, "y", 1, nullptr, nullptr, &t));
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(real, t, kWaitMs, nullptr)) << mir_client_errdetail();
  mir_client_close(real);
  int err = MIR_CLIENT_OK;
  EXPECT_EQ(Open(cl, "nobody", "-", &err), nullptr);
  EXPECT_EQ(err, MIR_CLIENT_EUNAVAILABLE);
}

}  // namespace
