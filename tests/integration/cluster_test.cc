// Integration tests of mir-replica: real processes on loopback, with TLS between replicas, keys
// from mir-keygen and the client API over gRPC. They show that four replicas order transactions
// from several clients identically, that a subscriber sees every committed transaction once and
// in order with a verifiable hash chain, that the cluster keeps committing while a replica is
// killed and that the replica catches up after a restart from its data folder, and that bad
// client input is rejected with a reason without losing anything committed. Every test ends by
// stopping the replicas with SIGTERM: each must exit cleanly (status 0, no sanitizer report).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "integration/api_client.h"
#include "integration/cluster.h"

using mirtest::Channel;
using mirtest::Cluster;
using mirtest::ClusterOptions;
using mirtest::SubmitStream;
using mirtest::Subscription;

namespace {

using Clock = std::chrono::steady_clock;
using TxKey = std::pair<std::string, uint64_t>;

// Send and delivery times of transactions, shared by the submitters and the observer.
struct Times {
  std::mutex mu;
  std::map<TxKey, Clock::time_point> sent;
  std::vector<double> latency_ms;
};

// Submits transactions of one client to some replicas, every transaction to each of them (as
// the SDK does, so that one faulty replica cannot censor it), with up to 16 requests in flight
// per stream. ok() is false on any rejection or broken stream, with why().
class Submitter {
 public:
  Submitter(const Cluster &c, std::string client, std::vector<size_t> replicas)
      : client_(std::move(client)) {
    for (size_t r : replicas) {
      chans_.emplace_back(new Channel(c.ClientAddr(r)));
      streams_.emplace_back(new SubmitStream(chans_.back()->get()));
    }
    outstanding_.assign(streams_.size(), 0);
  }
  void Submit(size_t count, size_t batch, Times *times) {
    for (size_t done = 0; done < count && ok_; done += batch) {
      std::vector<mirtest::Tx> txs;
      for (size_t k = 0; k < batch && done + k < count; k++) {
        uint64_t no = next_++;
        txs.push_back({client_, no, client_ + "/" + std::to_string(no) + std::string(64, 'x')});
        if (times != nullptr) {
          std::lock_guard<std::mutex> g(times->mu);
          times->sent[{client_, no}] = Clock::now();
        }
      }
      for (size_t s = 0; s < streams_.size() && ok_; s++) {
        if (!streams_[s]->Send(request_id_, txs)) Fail("send failed");
        if (++outstanding_[s] >= 16) Collect(s);
      }
      request_id_++;
    }
    for (size_t s = 0; s < streams_.size(); s++) {
      while (ok_ && outstanding_[s] > 0) Collect(s);
    }
  }
  bool ok() const { return ok_; }
  const std::string &why() const { return why_; }

 private:
  void Fail(const std::string &why) {
    if (ok_) why_ = client_ + ": " + why;
    ok_ = false;
  }
  void Collect(size_t s) {
    Mir__Api__SubmitResponse *r = nullptr;
    if (streams_[s]->Recv(&r, 30000) != 1) return Fail("no response");
    outstanding_[s]--;
    if (r->error[0] != '\0') Fail(std::string("error: ") + r->error);
    for (size_t i = 0; i < r->n_results; i++) {
      if (r->results[i]->status != TRANTOR__TX_STATUS__TX_ACCEPTED) {
        Fail(std::string("rejected: ") + r->results[i]->reason);
      }
    }
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  std::string client_, why_;
  std::vector<std::unique_ptr<Channel>> chans_;
  std::vector<std::unique_ptr<SubmitStream>> streams_;
  std::vector<size_t> outstanding_;
  uint64_t next_ = 0, request_id_ = 1;
  bool ok_ = true;
};

// Follows one replica's log from sn 0 and checks it: consecutive sns, a hash chain it recomputes,
// no transaction twice.
class Observer {
 public:
  explicit Observer(const std::string &addr) : ch_(addr), sub_(ch_.get(), 0, 300000) {}
  // Reads until `target` transactions were seen or timeout_ms passed.
  void Run(size_t target, int timeout_ms, Times *times) {
    auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (seen_count_.load() < target && Clock::now() < until && !broken_) {
      Mir__Api__Delivery *d = nullptr;
      int r = sub_.Next(&d, 1000);
      if (r < 0) broken_ = true;
      if (r != 1) continue;
      Check(d, times);
      mir__api__delivery__free_unpacked(d, nullptr);
    }
  }
  size_t seen() const { return seen_count_.load(); }
  std::string problems() const { return problems_; }
  uint64_t next_sn() const { return next_sn_; }
  std::string hash_at(uint64_t sn) const {
    auto it = hashes_.find(sn);
    return it == hashes_.end() ? "" : it->second;
  }
  bool saw(const TxKey &k) const { return seen_.count(k) > 0; }

 private:
  void Check(const Mir__Api__Delivery *d, Times *times) {
    if (d->sn != next_sn_) problems_ += "sn " + std::to_string(d->sn) + " out of order; ";
    std::string h = mirtest::LogHash(prev_, d->sn, d->epoch, d->txs, d->n_txs);
    std::string got(reinterpret_cast<const char *>(d->log_hash.data), d->log_hash.len);
    if (h != got) problems_ += "hash chain broken at sn " + std::to_string(d->sn) + "; ";
    prev_ = got;
    hashes_[d->sn] = got;
    next_sn_ = d->sn + 1;
    for (size_t i = 0; i < d->n_txs; i++) {
      TxKey k{d->txs[i]->client_id, d->txs[i]->tx_no};
      if (!seen_.insert(k).second) problems_ += "duplicate transaction; ";
      if (times != nullptr) {
        std::lock_guard<std::mutex> g(times->mu);
        auto it = times->sent.find(k);
        if (it != times->sent.end()) {
          times->latency_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
        }
      }
    }
    seen_count_ = seen_.size();
  }
  Channel ch_;
  Subscription sub_;
  uint64_t next_sn_ = 0;
  std::string prev_ = std::string(32, '\0');
  std::map<uint64_t, std::string> hashes_;
  std::set<TxKey> seen_;
  std::atomic<size_t> seen_count_{0};
  std::string problems_;
  bool broken_ = false;
};

// The log hash of sn at replica i (from a subscription), or "" if it does not come in time.
std::string HashAt(const Cluster &c, size_t i, uint64_t sn) {
  Channel ch(c.ClientAddr(i));
  Subscription sub(ch.get(), sn, 30000);
  Mir__Api__Delivery *d = nullptr;
  if (sub.Next(&d, 20000) != 1) return "";
  std::string h(reinterpret_cast<const char *>(d->log_hash.data), d->log_hash.len);
  bool right = d->sn == sn;
  mir__api__delivery__free_unpacked(d, nullptr);
  return right ? h : "";
}

Mir__Api__StatusResponse *StatusOf(const Cluster &c, size_t i) {
  Channel ch(c.ClientAddr(i));
  return mirtest::GetStatus(ch.get(), 2000);
}

// Stops every running replica with SIGTERM: each must exit with status 0 (a sanitizer's report
// makes it fail) and say so in its log.
void StopAllCleanly(Cluster &c) {
  for (size_t i = 0; i < c.size(); i++) {
    if (!c.Running(i)) continue;
    EXPECT_EQ(c.Stop(i, 30000), 0) << "replica " << i;
    std::string log = c.Log(i);
    EXPECT_NE(log.find(": stopped"), std::string::npos) << "replica " << i;
    EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << "replica " << i;
  }
}

// On a failed test: the tail of every log, and the folder is kept.
void DumpOnFailure(Cluster &c) {
  if (!::testing::Test::HasFailure()) return;
  c.Keep();
  for (size_t i = 0; i < c.size(); i++) {
    fprintf(stderr, "---- replica %zu ----\n%s\n", i, c.LogTail(i, 25).c_str());
  }
}

ClusterOptions DefaultOptions() {
  ClusterOptions o;
  // Test clients send thousands of numbers ahead; the SDK paces itself within the default 1024.
  o.trantor_json = "\"client_window\": 20000";
  return o;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

TEST(ReplicaCluster, FourReplicasOrderTenThousandTransactionsFromTwoClients) {
  // Two clients submit 5,000 transactions each, each to two replicas; a subscriber on replica 0
  // sees all 10,000 exactly once, at consecutive sns, with a hash chain it recomputes; every
  // replica then serves the same log hash at the last of those sns.
  Cluster c(DefaultOptions());
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  Times times;
  Observer obs(c.ClientAddr(0));
  auto t0 = Clock::now();
  std::thread watcher([&] { obs.Run(10000, 120000, &times); });
  Submitter a(c, "client-a", {0, 1}), b(c, "client-b", {2, 3});
  std::thread ta([&] { a.Submit(5000, 100, &times); });
  std::thread tb([&] { b.Submit(5000, 100, &times); });
  ta.join();
  tb.join();
  watcher.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(a.ok()) << a.why();
  EXPECT_TRUE(b.ok()) << b.why();
  EXPECT_EQ(obs.seen(), 10000u);
  EXPECT_EQ(obs.problems(), "");
  printf(
      "ordered %zu transactions in %.2f s (%.0f tx/s); latency submit->delivered p50 %.1f ms "
      "p99 %.1f ms; log at sn %llu\n",
      obs.seen(), secs, static_cast<double>(obs.seen()) / secs, Percentile(times.latency_ms, 0.5),
      Percentile(times.latency_ms, 0.99), static_cast<unsigned long long>(obs.next_sn()));
  uint64_t last = obs.next_sn() - 1;
  for (size_t i = 0; i < c.size(); i++) {
    EXPECT_EQ(mirtest::Hex(reinterpret_cast<const uint8_t *>(HashAt(c, i, last).data()), 32),
              mirtest::Hex(reinterpret_cast<const uint8_t *>(obs.hash_at(last).data()), 32))
        << "replica " << i << " at sn " << last;
  }
  StopAllCleanly(c);
  DumpOnFailure(c);
}

TEST(ReplicaCluster, KilledReplicaCatchesUpAfterRestart) {
  // With replica 3 killed by SIGKILL the other three keep committing; restarted with its data
  // folder, it recovers its write-ahead log (its last stable checkpoint and votes) and catches up
  // to the same log hash.
  Cluster c(DefaultOptions());
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  const size_t total = 1500;
  Observer obs(c.ClientAddr(0));
  std::thread watcher([&] { obs.Run(total, 90000, nullptr); });
  // Let a stable checkpoint cover some of it, then kill: client a submits until replica 3 is in
  // epoch 3 (epochs advance only under load), client b the rest.
  Submitter a(c, "client-a", {0, 1});
  size_t sent_a = 0;
  EXPECT_TRUE(mirtest::WaitFor(
      [&] {
        Mir__Api__StatusResponse *s = StatusOf(c, 3);
        bool past = s != nullptr && s->epoch >= 3;
        if (s != nullptr) mir__api__status_response__free_unpacked(s, nullptr);
        if (!past && sent_a < total - 500 && a.ok()) {
          a.Submit(100, 50, nullptr);
          sent_a += 100;
        }
        return past;
      },
      30000));
  EXPECT_TRUE(a.ok()) << a.why();
  EXPECT_TRUE(mirtest::WaitFor([&] { return obs.seen() >= sent_a; }, 30000));
  c.Kill(3);
  Submitter b(c, "client-b", {1, 2});
  b.Submit(total - sent_a, 50, nullptr);
  EXPECT_TRUE(b.ok()) << b.why();
  watcher.join();
  EXPECT_EQ(obs.seen(), total) << "the three others stopped committing";
  EXPECT_EQ(obs.problems(), "");
  Mir__Api__StatusResponse *s0 = StatusOf(c, 0);
  ASSERT_NE(s0, nullptr);
  uint64_t target = s0->next_sn;
  mir__api__status_response__free_unpacked(s0, nullptr);
  ASSERT_TRUE(c.Start(3));
  uint64_t n3 = 0;
  std::string h3;
  EXPECT_TRUE(mirtest::WaitFor(
      [&] {
        Mir__Api__StatusResponse *s = StatusOf(c, 3);
        if (s == nullptr) return false;
        n3 = s->next_sn;
        h3.assign(reinterpret_cast<const char *>(s->log_hash.data), s->log_hash.len);
        mir__api__status_response__free_unpacked(s, nullptr);
        return n3 >= target;
      },
      60000))
      << "replica 3 at sn " << n3 << ", wanted " << target;
  EXPECT_NE(c.Log(3).find("recovered the write-ahead log of " + c.DataDir(3)), std::string::npos);
  EXPECT_NE(c.Log(3).find("stable checkpoint epoch"), std::string::npos);
  ASSERT_GT(n3, 0u);
  EXPECT_EQ(mirtest::Hex(reinterpret_cast<const uint8_t *>(HashAt(c, 0, n3 - 1).data()), 32),
            mirtest::Hex(reinterpret_cast<const uint8_t *>(h3.data()), h3.size()));
  StopAllCleanly(c);
  DumpOnFailure(c);
}

// The statuses and reasons of one response (borrowed), as "status:reason" strings.
std::vector<std::string> Results(const Mir__Api__SubmitResponse *r) {
  std::vector<std::string> out;
  for (size_t i = 0; i < r->n_results; i++) {
    out.push_back(std::to_string(r->results[i]->status) + ":" + r->results[i]->reason);
  }
  return out;
}

// Sends one request on s and returns its response (owned) or nullptr.
Mir__Api__SubmitResponse *Ask(SubmitStream &s, uint64_t id, const std::vector<mirtest::Tx> &txs) {
  Mir__Api__SubmitResponse *r = nullptr;
  if (!s.Send(id, txs) || s.Recv(&r, 10000) != 1) return nullptr;
  return r;
}

// Writes junk to a TCP port and closes.
void SendJunk(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0) {
    std::mt19937 rng(7);
    std::string junk(4096, '\0');
    for (auto &ch : junk) ch = static_cast<char>(rng());
    ssize_t w = write(fd, junk.data(), junk.size());
    (void)w;
  }
  close(fd);
}

void ExpectReason(const std::vector<std::string> &got, size_t i, int status, const char *word) {
  ASSERT_GT(got.size(), i);
  EXPECT_EQ(got[i].substr(0, got[i].find(':')), std::to_string(status)) << got[i];
  EXPECT_NE(got[i].find(word), std::string::npos) << got[i];
}

void CheckRejections(SubmitStream &s) {
  auto *r = Ask(s, 1, {{"c", 0, "hello"}});
  ASSERT_NE(r, nullptr);
  ExpectReason(Results(r), 0, TRANTOR__TX_STATUS__TX_ACCEPTED, "");
  mir__api__submit_response__free_unpacked(r, nullptr);
  r = Ask(s, 2,
          {{"c", 0, "hello"},
           {"c", 1, std::string(2000, 'b')},
           {"other", 2, "x"},
           {"c", 100000, "far"},
           {"c", 3, "fine"}});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->request_id, 2u);
  auto got = Results(r);
  ExpectReason(got, 0, TRANTOR__TX_STATUS__TX_DUPLICATE, "duplicate");
  ExpectReason(got, 1, TRANTOR__TX_STATUS__TX_TOO_LARGE, "too large");
  ExpectReason(got, 2, TRANTOR__TX_STATUS__TX_INVALID, "client id differs");
  ExpectReason(got, 3, TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW, "window");
  ExpectReason(got, 4, TRANTOR__TX_STATUS__TX_ACCEPTED, "");
  mir__api__submit_response__free_unpacked(r, nullptr);
  r = Ask(s, 3, std::vector<mirtest::Tx>(9, {"c", 4, "a"}));
  ASSERT_NE(r, nullptr);
  EXPECT_NE(std::string(r->error).find("too many transactions"), std::string::npos) << r->error;
  mir__api__submit_response__free_unpacked(r, nullptr);
  ASSERT_TRUE(s.SendRaw("\xff\xff\xff\xff garbage that is no protobuf"));
  ASSERT_EQ(s.Recv(&r, 10000), 1);
  EXPECT_NE(std::string(r->error).find("malformed"), std::string::npos) << r->error;
  mir__api__submit_response__free_unpacked(r, nullptr);
}

TEST(ReplicaCluster, BadClientInputIsRejectedAndNothingCommittedIsLost) {
  // Duplicates, oversize transactions and requests, a foreign client id on a stream, tx numbers
  // outside the window, undecodable bytes, a bad Subscribe, an unknown method and TCP junk on
  // both ports are each rejected with a reason (a request over twice max_request_bytes ends its
  // stream); the replicas keep running, earlier transactions stay in the log, later ones commit.
  ClusterOptions o;
  o.trantor_json = "\"max_tx_bytes\": 1024";
  o.client_json = "\"max_txs_per_request\": 8, \"max_request_bytes\": 65536";
  Cluster c(o);
  ASSERT_EQ(c.error(), "");
  ASSERT_TRUE(c.StartAll());
  ASSERT_TRUE(c.WaitReady(30000));
  {
    Channel ch(c.ClientAddr(0));
    SubmitStream s(ch.get());
    CheckRejections(s);
    // Above max_request_bytes: refused, and the stream goes on; above twice that, gRPC ends it.
    ASSERT_TRUE(s.SendRaw(std::string(70000, 'z')));
    Mir__Api__SubmitResponse *r = nullptr;
    ASSERT_EQ(s.Recv(&r, 10000), 1);
    EXPECT_EQ(std::string(r->error), "request too large: 70000 bytes, at most 65536");
    mir__api__submit_response__free_unpacked(r, nullptr);
    s.SendRaw(std::string(2 * 65536 + 1, 'z'));
    EXPECT_EQ(s.Recv(&r, 10000), -1);
    EXPECT_TRUE(s.Finished(10000));
    EXPECT_EQ(s.status(), GRPC_STATUS_RESOURCE_EXHAUSTED) << s.details();
    std::string details;
    EXPECT_EQ(
        mirtest::UnaryRaw(ch.get(), "/mir.api.Client/Subscribe", "\xff\xff junk", 10000, &details),
        GRPC_STATUS_INVALID_ARGUMENT)
        << details;
    EXPECT_EQ(mirtest::UnaryRaw(ch.get(), "/mir.api.Client/Nope", "", 10000, &details),
              GRPC_STATUS_UNIMPLEMENTED);
  }
  for (size_t i = 0; i < c.size(); i++) {
    SendJunk(std::stoi(c.ClientAddr(i).substr(10)));
    SendJunk(std::stoi(c.PeerAddr(i).substr(10)));
  }
  Observer obs(c.ClientAddr(1));
  std::thread watcher([&] { obs.Run(102, 60000, nullptr); });
  Submitter good(c, "good", {0, 1});
  good.Submit(100, 5, nullptr);
  EXPECT_TRUE(good.ok()) << good.why();
  watcher.join();
  EXPECT_EQ(obs.seen(), 102u);  // c/0 and c/3 from before, and the 100 good ones
  EXPECT_TRUE(obs.saw({"c", 0}) && obs.saw({"c", 3}));
  EXPECT_EQ(obs.problems(), "");
  uint64_t last = obs.next_sn() - 1;
  for (size_t i = 0; i < c.size(); i++) {
    EXPECT_EQ(HashAt(c, i, last), obs.hash_at(last)) << "replica " << i;
  }
  StopAllCleanly(c);
  DumpOnFailure(c);
}

}  // namespace
