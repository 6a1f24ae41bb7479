// Tests of libmirclient (mir/client.h) against an in-process fake cluster (fake_replica.h) on
// 127.0.0.1: commits, where transactions are sent, the rejection rule, time-outs, close, failed
// calls that never call back, faulty replicas (lying, equivocating, garbage, silent), reconnect
// after replicas restart, fail-over when replicas stay down, subscriptions and their end, and
// back-pressure (a busy replica is left alone for its hint, and longer while it stays busy).
//
// Every wait is bounded (kWaitMs) and no test asserts a duration.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_replica.h"
#include "mir/client.h"

namespace {

constexpr int64_t kWaitMs = 60000;  // upper bound of every wait; never reached when things work

bool WaitUntil(const std::function<bool()> &pred, int64_t timeout_ms = kWaitMs) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// A fake cluster of n replicas and options pointing at it.
struct Cluster {
  explicit Cluster(uint32_t n, const char *cert = nullptr, const char *key = nullptr)
      : fc(fake_cluster_new_tls(n, cert, key)) {
    for (uint32_t i = 0; fc != nullptr && i < n; i++) addrs.push_back(fake_addr(fc, i));
    for (auto &a : addrs) ptrs.push_back(a.c_str());
  }
  ~Cluster() { fake_cluster_free(fc); }
  mir_client_options Options(const char *id) {
    mir_client_options o;
    mir_client_options_init(&o);
    o.replicas = ptrs.data();
    o.n_replicas = ptrs.size();
    o.client_id = id;
    o.connect_timeout_ms = 10000;
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 100;
    return o;
  }
  fake_cluster *fc;
  std::vector<std::string> addrs;
  std::vector<const char *> ptrs;
};

// A temporary folder with a CA (ca.pem), a server certificate for "localhost" signed by it
// (server.pem, server.key) and an unrelated CA (other-ca.pem), made with the openssl tool.
struct Certs {
  Certs() {
    char tmpl[] = "/tmp/mir-sdk-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir = tmpl;
    std::string d = dir;
    std::string cmd =
        "cd " + d + " && " +
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=test-ca -keyout ca.key -out ca.pem && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=other-ca -keyout other-ca.key -out other-ca.pem && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
        "-keyout server.key -out server.csr && "
        "printf 'subjectAltName=DNS:localhost\n' > ext.cnf && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile ext.cnf -out server.pem";
    ok = std::system((cmd + " > /dev/null 2>&1").c_str()) == 0;
  }
  ~Certs() {
    if (!dir.empty()) std::system(("rm -rf " + dir).c_str());
  }
  std::string Read(const char *name) const {
    std::ifstream in(dir + "/" + name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string Path(const char *name) const { return dir + "/" + name; }
  std::string dir;
  bool ok = false;
};

// Counts callbacks per outcome.
struct Outcomes {
  std::mutex mu;
  std::vector<mir_client_result> results;
  size_t Count() {
    std::lock_guard<std::mutex> l(mu);
    return results.size();
  }
  static void Cb(mir_client *, const mir_client_result *r, void *ud) {
    auto *o = static_cast<Outcomes *>(ud);
    std::lock_guard<std::mutex> l(o->mu);
    o->results.push_back(*r);
  }
};

mir_client_ticket Submit(mir_client *c, const std::string &data, Outcomes *out = nullptr) {
  mir_client_ticket t = 0;
  EXPECT_EQ(MIR_CLIENT_OK,
            mir_client_submit(c, data.data(), data.size(), out ? Outcomes::Cb : nullptr, out, &t))
      << mir_client_errdetail();
  return t;
}

uint64_t TotalSubmitted(fake_cluster *fc, uint32_t n) {
  uint64_t sum = 0;
  for (uint32_t i = 0; i < n; i++) sum += fake_submitted(fc, i);
  return sum;
}

TEST(SdkClient, SubmitCommitsEachTicketOnceWithItsSn) {
  // Transactions submitted to an honest cluster are committed; wait returns the entry's sn and
  // each done callback runs exactly once.
  Cluster cl(4);
  mir_client_options o = cl.Options("alice");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c)) << mir_client_errdetail();
  Outcomes out;
  std::vector<mir_client_ticket> tickets;
  for (int i = 0; i < 20; i++) tickets.push_back(Submit(c, "tx-" + std::to_string(i), &out));
  for (size_t i = 0; i < tickets.size(); i++) {
    EXPECT_EQ(tickets[i], i);
    mir_client_result r;
    ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, tickets[i], kWaitMs, &r)) << mir_client_errdetail();
    EXPECT_EQ(r.status, MIR_CLIENT_OK);
    EXPECT_EQ(r.ticket, tickets[i]);
    EXPECT_LT(r.sn, fake_log_size(cl.fc));
  }
  ASSERT_TRUE(WaitUntil([&] { return out.Count() == tickets.size(); }));
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.committed, 20u);
  EXPECT_EQ(st.unresolved, 0u);
  EXPECT_EQ(st.next_tx_no, 20u);
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_close(c));
  EXPECT_EQ(out.Count(), tickets.size());  // close found nothing left to complete
  for (auto &r : out.results) EXPECT_EQ(r.status, MIR_CLIENT_OK);
}

TEST(SdkClient, EachTransactionGoesToEveryReplicaByDefault) {
  // By default every transaction reaches all n replicas, once each.
  // (Held until all have them: the SDK skips sending what is already committed.)
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("bobby");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> tickets;
  for (int i = 0; i < 50; i++) tickets.push_back(Submit(c, "x"));
  ASSERT_TRUE(WaitUntil([&] { return TotalSubmitted(cl.fc, 4) >= 200; }));
  fake_set_hold(cl.fc, false);
  for (auto t : tickets) ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  for (uint32_t i = 0; i < 4; i++) EXPECT_EQ(fake_submitted(cl.fc, i), 50u);
  mir_client_close(c);
}

TEST(SdkClient, SubmitReplicasFPlusOneSendsEachTransactionToTwo) {
  // With submit_replicas = f+1 = 2 (n = 4) and no failures, every transaction reaches exactly
  // two replicas, always the same two.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("bob");
  o.submit_replicas = 2;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> tickets;
  for (int i = 0; i < 50; i++) tickets.push_back(Submit(c, "x"));
  ASSERT_TRUE(WaitUntil([&] { return TotalSubmitted(cl.fc, 4) >= 100; }));
  fake_set_hold(cl.fc, false);
  for (auto t : tickets) ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  EXPECT_EQ(TotalSubmitted(cl.fc, 4), 100u);
  uint32_t used = 0;
  for (uint32_t i = 0; i < 4; i++) used += fake_submitted(cl.fc, i) > 0 ? 1 : 0;
  EXPECT_EQ(used, 2u);
  mir_client_close(c);
}

TEST(SdkClient, FirstTxNoStartsTheNumbering) {
  // A client resumed with first_tx_no numbers its transactions from there.
  Cluster cl(1);
  mir_client_options o = cl.Options("resumed");
  o.first_tx_no = 100;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "a");
  EXPECT_EQ(t, 100u);
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  EXPECT_EQ(MIR_CLIENT_ENOTFOUND, mir_client_wait(c, 99, 0, nullptr));
  EXPECT_EQ(MIR_CLIENT_ENOTFOUND, mir_client_wait(c, 101, 0, nullptr));
  mir_client_close(c);
}

TEST(SdkClient, OneRejectionOfFourIsNotARejection) {
  // One replica (at most f) rejecting does not reject the transaction: it stays pending until
  // ordered, then commits.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  fake_set_mode(cl.fc, 0, FAKE_REJECT);
  mir_client_options o = cl.Options("carol");
  o.submit_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "payload");
  ASSERT_TRUE(WaitUntil([&] { return TotalSubmitted(cl.fc, 4) == 4; }));
  mir_client_stats st;
  ASSERT_TRUE(WaitUntil([&] {
    mir_client_stats_get(c, &st);
    return st.requests_sent >= 4;
  }));
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, mir_client_wait(c, t, 200, nullptr));
  fake_set_hold(cl.fc, false);
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_close(c);
}

TEST(SdkClient, FPlusOneRejectionsRejectWithTheReason) {
  // f+1 = 2 rejecting replicas reject the transaction, with the replicas' status and reason; the
  // callback sees the same outcome once.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  fake_set_mode(cl.fc, 1, FAKE_REJECT);
  fake_set_mode(cl.fc, 2, FAKE_REJECT);
  mir_client_options o = cl.Options("dave");
  o.submit_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Outcomes out;
  mir_client_ticket t = Submit(c, "payload", &out);
  mir_client_result r;
  ASSERT_EQ(MIR_CLIENT_EREJECTED, mir_client_wait(c, t, kWaitMs, &r));
  EXPECT_EQ(r.status, MIR_CLIENT_EREJECTED);
  EXPECT_EQ(r.tx_status, MIR_CLIENT_TX_TOO_LARGE);
  EXPECT_STREQ(r.reason, "fake: too large");
  ASSERT_TRUE(WaitUntil([&] { return out.Count() == 1; }));
  mir_client_close(c);
  ASSERT_EQ(out.Count(), 1u);
  EXPECT_EQ(out.results[0].status, MIR_CLIENT_EREJECTED);
}

TEST(SdkClient, TrustOneBelievesASingleRejection) {
  // With TRUST_ONE, one replica's rejection is enough.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  for (uint32_t i = 0; i < 4; i++) fake_set_mode(cl.fc, i, FAKE_REJECT);
  fake_set_mode(cl.fc, 3, FAKE_HONEST);
  mir_client_options o = cl.Options("erin");
  o.trust = MIR_CLIENT_TRUST_ONE;
  o.submit_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "payload");
  EXPECT_EQ(MIR_CLIENT_EREJECTED, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_close(c);
}

TEST(SdkClient, WaitTimesOutAndTheTicketStaysValid) {
  // A wait that times out leaves the transaction pending; a later wait sees it committed.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("frank");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "later");
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, mir_client_wait(c, t, 50, nullptr));
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, mir_client_wait(c, t, 0, nullptr));
  fake_set_hold(cl.fc, false);
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_close(c);
}

TEST(SdkClient, CloseCompletesPendingTicketsWithShutdown) {
  // close completes every pending ticket with ESTOPPED (callback once each) and makes a waiter
  // on another thread return ESTOPPED.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("grace");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Outcomes out;
  for (int i = 0; i < 5; i++) Submit(c, "pending", &out);
  std::atomic<int> waited{-1};
  std::atomic<bool> entered{false};
  std::thread waiter([&] {
    entered = true;
    waited = mir_client_wait(c, 2, -1, nullptr);
  });
  ASSERT_TRUE(WaitUntil([&] { return entered.load(); }));
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_close(c));
  waiter.join();
  EXPECT_EQ(waited.load(), MIR_CLIENT_ESTOPPED);
  ASSERT_EQ(out.Count(), 5u);
  for (auto &r : out.results) EXPECT_EQ(r.status, MIR_CLIENT_ESTOPPED);
}

TEST(SdkClient, FailedSubmitNeverCallsItsCallback) {
  // A submit that fails (too large, window full, closing) uses no tx number and never calls its
  // callback; only the accepted ones are completed at close.
  Cluster cl(4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("heidi");
  o.window = 4;
  o.max_tx_bytes = 16;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Outcomes ok, failed;
  std::string big(17, 'b');
  mir_client_ticket t = 77;
  EXPECT_EQ(MIR_CLIENT_EINVAL,
            mir_client_submit(c, big.data(), big.size(), Outcomes::Cb, &failed, &t));
  EXPECT_EQ(t, 77u);
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_submit(c, nullptr, 3, Outcomes::Cb, &failed, &t));
  for (int i = 0; i < 4; i++) Submit(c, "w", &ok);
  EXPECT_EQ(MIR_CLIENT_EFULL, mir_client_submit(c, "w", 1, Outcomes::Cb, &failed, &t));
  EXPECT_NE(std::string(mir_client_errdetail()).find("window 4"), std::string::npos);
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.next_tx_no, 4u);
  mir_client_close(c);
  EXPECT_EQ(ok.Count(), 4u);
  EXPECT_EQ(failed.Count(), 0u);
}

// Calls close and a blocking wait from inside a done callback.
struct Reentry {
  std::atomic<int> close_rc{-1}, wait_rc{-1}, poll_rc{-1};
  static void Cb(mir_client *c, const mir_client_result *r, void *ud) {
    auto *e = static_cast<Reentry *>(ud);
    e->close_rc = mir_client_close(c);
    e->wait_rc = mir_client_wait(c, r->ticket, 1000, nullptr);
    e->poll_rc = mir_client_wait(c, r->ticket, 0, nullptr);
  }
};

TEST(SdkClient, CloseAndBlockingWaitAreRefusedInCallbacks) {
  // Inside a callback, close and a blocking wait return EINVAL (they would deadlock); a wait
  // with timeout 0 works and sees the outcome.
  Cluster cl(1);
  mir_client_options o = cl.Options("ivan");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Reentry e;
  mir_client_ticket t = 0;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_submit(c, "r", 1, Reentry::Cb, &e, &t));
  ASSERT_TRUE(WaitUntil([&] { return e.poll_rc.load() != -1; }));
  EXPECT_EQ(e.close_rc.load(), MIR_CLIENT_EINVAL);
  EXPECT_EQ(e.wait_rc.load(), MIR_CLIENT_EINVAL);
  EXPECT_EQ(e.poll_rc.load(), MIR_CLIENT_OK);
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_close(c));
}

TEST(SdkClient, OpenFailsClearlyWhenReplicasAreUnreachable) {
  // With every replica down, open fails with EUNAVAILABLE and a detail naming the replicas.
  Cluster cl(4);
  for (uint32_t i = 0; i < 4; i++) fake_stop(cl.fc, i);
  mir_client_options o = cl.Options("judy");
  o.connect_timeout_ms = 300;
  mir_client *c = nullptr;
  EXPECT_EQ(MIR_CLIENT_EUNAVAILABLE, mir_client_open(&o, &c));
  EXPECT_EQ(c, nullptr);
  std::string detail = mir_client_errdetail();
  EXPECT_NE(detail.find("0 of 4 replicas"), std::string::npos) << detail;
  EXPECT_NE(detail.find(cl.addrs[0]), std::string::npos) << detail;
}

TEST(SdkClient, TlsConnectsOnlyWithTheRightCa) {
  // Against replicas serving TLS, a client trusting their CA (and naming the certificate's host
  // with tls_server_name) commits; one trusting another CA, or speaking plaintext, cannot open.
  Certs certs;
  ASSERT_TRUE(certs.ok) << "the openssl command line tool is needed to make test certificates";
  std::string cert = certs.Read("server.pem"), key = certs.Read("server.key");
  Cluster cl(4, cert.c_str(), key.c_str());
  std::string ca = certs.Path("ca.pem"), other = certs.Path("other-ca.pem");
  mir_client_options o = cl.Options("tls-client");
  o.tls_ca_file = ca.c_str();
  o.tls_server_name = "localhost";
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c)) << mir_client_errdetail();
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, Submit(c, "secret"), kWaitMs, nullptr));
  mir_client_close(c);
  o.tls_ca_file = other.c_str();
  o.connect_timeout_ms = 500;
  c = nullptr;
  EXPECT_EQ(MIR_CLIENT_EUNAVAILABLE, mir_client_open(&o, &c));
  EXPECT_EQ(c, nullptr);
  mir_client_options plain = cl.Options("plain-client");
  plain.connect_timeout_ms = 500;
  EXPECT_EQ(MIR_CLIENT_EUNAVAILABLE, mir_client_open(&plain, &c));
}

TEST(SdkClient, OptionsAreChecked) {
  // Bad options are refused with EINVAL before anything starts.
  Cluster cl(1);
  mir_client *c = nullptr;
  mir_client_options o = cl.Options("");
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  std::string long_id(MIR_CLIENT_ID_MAX + 1, 'x');
  o = cl.Options(long_id.c_str());
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  o = cl.Options("ok");
  o.n_replicas = 0;
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  o = cl.Options("ok");
  o.submit_replicas = 2;  // more than n
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  o = cl.Options("ok");
  o.tls_cert_file = "cert.pem";  // without key and CA
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  o = cl.Options("ok");
  o.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c));
  EXPECT_EQ(c, nullptr);
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(nullptr, &c));
}

TEST(SdkClient, MempoolFullIsRetried) {
  // MEMPOOL_FULL answers are transient: the SDK sends the transactions again and they commit.
  Cluster cl(1);
  fake_set_full_budget(cl.fc, 6);
  mir_client_options o = cl.Options("kate");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 3; i++) ts.push_back(Submit(c, "m" + std::to_string(i)));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  EXPECT_GT(fake_submitted(cl.fc, 0), 3u);
  mir_client_close(c);
}

TEST(SdkClient, OtherClientsWithTheSameTxNumbersDoNotResolveMyTickets) {
  // Two clients both number from 0; each ticket resolves from its own client's transaction
  // (a mix-up would report EEXIST, the data differ). Odd fake replicas ignore the client-id
  // filter and even ones honour it, so both paths vote together.
  Cluster cl(4);
  mir_client_options oa = cl.Options("client-a");
  mir_client_options ob = cl.Options("client-b");
  mir_client *a = nullptr, *b = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&oa, &a));
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&ob, &b));
  std::vector<mir_client_ticket> ta, tb;
  for (int i = 0; i < 10; i++) {
    ta.push_back(Submit(a, "from a " + std::to_string(i)));
    tb.push_back(Submit(b, "from b " + std::to_string(i)));
  }
  for (auto t : ta) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(a, t, kWaitMs, nullptr));
  for (auto t : tb) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(b, t, kWaitMs, nullptr));
  mir_client_close(a);
  mir_client_close(b);
}

TEST(SdkClient, AFaultyReplicaCannotFakeACommit) {
  // A replica that alters transaction data (one of n = 4) does not make a ticket resolve with
  // other data: commits are reported with the honest content.
  Cluster cl(4);
  fake_set_mode(cl.fc, 0, FAKE_LIE_DATA);
  mir_client_options o = cl.Options("liam");
  o.subscribe_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 10; i++) ts.push_back(Submit(c, "honest"));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_close(c);
}

TEST(SdkClient, GarbageLiesAndEquivocationAreCountedAndIgnored) {
  // A replica sending undecodable deliveries, one sending two versions of every sn (a protocol
  // violation on its stream) and one lying about log hashes are counted (bad_messages,
  // conflicting_votes) and do not stop commits.
  Cluster cl(10);  // f = 3: three faulty replicas
  fake_set_mode(cl.fc, 0, FAKE_GARBAGE);
  fake_set_mode(cl.fc, 1, FAKE_EQUIVOCATE);
  fake_set_mode(cl.fc, 2, FAKE_LIE_HASH);
  mir_client_options o = cl.Options("mia");
  o.subscribe_replicas = 10;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 10; i++) ts.push_back(Submit(c, "t" + std::to_string(i)));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_stats st;
  ASSERT_TRUE(WaitUntil([&] {
    mir_client_stats_get(c, &st);
    return st.bad_messages >= 2 && st.conflicting_votes > 0;
  })) << st.bad_messages
      << " " << st.conflicting_votes;
  mir_client_close(c);
}

TEST(SdkClient, AStreamThatRepeatsAnSnIsDropped) {
  // A replica that sends some sn twice on one stream (the second time with another hash) breaks
  // the stream's order: the SDK counts a bad message and drops the stream, and commits go on.
  Cluster cl(4);
  fake_set_mode(cl.fc, 1, FAKE_EQUIVOCATE);
  mir_client_options o = cl.Options("nico");
  o.subscribe_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "once");
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_stats st;
  ASSERT_TRUE(WaitUntil([&] {
    mir_client_stats_get(c, &st);
    return st.bad_messages > 0;
  }));
  mir_client_close(c);
}

TEST(SdkClient, ReconnectsAfterEveryReplicaRestarts) {
  // Transactions submitted while every replica is down are sent once they are back (the
  // streams reopen by themselves), and commit.
  Cluster cl(4);
  mir_client_options o = cl.Options("nina");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, Submit(c, "before"), kWaitMs, nullptr));
  for (uint32_t i = 0; i < 4; i++) fake_stop(cl.fc, i);
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 10; i++) ts.push_back(Submit(c, "during " + std::to_string(i)));
  EXPECT_EQ(MIR_CLIENT_ETIMEDOUT, mir_client_wait(c, ts[0], 100, nullptr));
  for (uint32_t i = 0; i < 4; i++) ASSERT_EQ(0, fake_start(cl.fc, i));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_GT(st.reconnects, 0u);
  mir_client_close(c);
}

TEST(SdkClient, AcceptedTransactionsAreSentAgainWhenEveryReplicaForgotThem) {
  // Every replica accepted the transactions, then all of them crashed before ordering them and
  // came back with empty mempools: the reopened streams carry every unresolved transaction
  // again, so all of them commit, each once.
  Cluster cl(4);
  mir_client_options o = cl.Options("olga");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  fake_set_hold(cl.fc, true);
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 20; i++) ts.push_back(Submit(c, "accepted " + std::to_string(i)));
  ASSERT_TRUE(WaitUntil([&] {
    for (uint32_t i = 0; i < 4; i++) {
      if (fake_submitted(cl.fc, i) < ts.size()) return false;
    }
    return true;
  }));
  uint64_t log_before = fake_log_size(cl.fc);
  for (uint32_t i = 0; i < 4; i++) fake_stop(cl.fc, i);
  fake_drop_pending(cl.fc);
  fake_set_hold(cl.fc, false);
  EXPECT_EQ(fake_log_size(cl.fc), log_before);  // nothing was ordered: all of it is gone
  for (uint32_t i = 0; i < 4; i++) ASSERT_EQ(0, fake_start(cl.fc, i));
  for (auto t : ts) {
    mir_client_result r;
    EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, &r));
    EXPECT_GE(r.sn, log_before);
  }
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_GE(st.resent, ts.size());
  EXPECT_EQ(st.committed, ts.size());
  mir_client_close(c);
}

TEST(SdkClient, FailsOverWhenTheSubmitReplicasStayDown) {
  // With a submit set of f+1 = 2, when both of its replicas stay down, others join the submit
  // and follow sets and the transactions commit through them.
  Cluster cl(4);
  mir_client_options o = cl.Options("oscar");
  o.submit_replicas = 2;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  fake_set_hold(cl.fc, true);
  mir_client_ticket probe = Submit(c, "probe");
  ASSERT_TRUE(WaitUntil([&] { return TotalSubmitted(cl.fc, 4) >= 2; }));
  fake_set_hold(cl.fc, false);
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, probe, kWaitMs, nullptr));
  std::vector<uint32_t> used;
  for (uint32_t i = 0; i < 4; i++) {
    if (fake_submitted(cl.fc, i) > 0) used.push_back(i);
  }
  ASSERT_EQ(used.size(), 2u);
  for (uint32_t i : used) fake_stop(cl.fc, i);
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 10; i++) ts.push_back(Submit(c, "after " + std::to_string(i)));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_GE(st.failovers, 2u);
  mir_client_close(c);
}

TEST(SdkClient, ASilentReplicaIsOutvoted) {
  // With one silent replica (f = 1) that neither answers submissions nor sends the log,
  // transactions commit through the others.
  Cluster cl(4);
  fake_set_mode(cl.fc, 2, FAKE_SILENT);
  mir_client_options o = cl.Options("pia");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 5; i++) ts.push_back(Submit(c, "s" + std::to_string(i)));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_close(c);
}

// The replica the SDK starts its submit and follow sets at (FNV-1a of the client id, mod n).
uint32_t StartIndex(const char *id, uint32_t n) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = id; *p; p++) h = (h ^ static_cast<uint8_t>(*p)) * 1099511628211ull;
  return static_cast<uint32_t>(h % n);
}

TEST(SdkClient, AStalledFollowedReplicaMakesTheClientFollowAnother) {
  // With TRUST_ONE the client follows one replica; when that one sends no log while a
  // transaction waits, the stall check adds another replica and the commit is learned from it.
  Cluster cl(4);
  const char *id = "stall-client";
  uint32_t start = StartIndex(id, 4);
  for (uint32_t i = 0; i < 4; i++) {
    if (i != (start + 1) % 4) fake_set_mode(cl.fc, i, FAKE_MUTE_LOG);
  }
  mir_client_options o = cl.Options(id);
  o.trust = MIR_CLIENT_TRUST_ONE;
  o.stall_ms = 100;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  mir_client_ticket t = Submit(c, "needs another follower");
  EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_GE(st.failovers, 1u);
  mir_client_close(c);
}

// Records subscription callbacks.
struct Sub {
  std::mutex mu;
  std::vector<uint64_t> sns;
  std::vector<std::string> data;
  std::vector<std::vector<uint8_t>> hashes;
  std::atomic<int> final_status{-1};
  std::atomic<int> calls{0};
  size_t unsubscribe_after = 0;  // 0: never from the callback
  static void Cb(mir_client_sub *s, int status, const mir_client_entry *e, void *ud) {
    auto *me = static_cast<Sub *>(ud);
    me->calls++;
    if (e == nullptr) {
      me->final_status = status;
      return;
    }
    std::lock_guard<std::mutex> l(me->mu);
    me->sns.push_back(e->sn);
    me->hashes.emplace_back(e->log_hash, e->log_hash + e->log_hash_len);
    for (size_t i = 0; i < e->n_txs; i++) {
      me->data.emplace_back(reinterpret_cast<const char *>(e->txs[i].data), e->txs[i].len);
    }
    if (me->unsubscribe_after != 0 && me->sns.size() == me->unsubscribe_after) {
      mir_client_unsubscribe(s);
    }
  }
  size_t Entries() {
    std::lock_guard<std::mutex> l(mu);
    return sns.size();
  }
};

TEST(SdkClient, SubscriptionReportsEveryEntryOnceInOrder) {
  // A subscription from 0 reports entries 0, 1, 2, ... exactly once, with the honest log hash
  // even though one replica lies about it, and sees every submitted transaction.
  Cluster cl(4);
  fake_set_mode(cl.fc, 3, FAKE_LIE_HASH);
  mir_client_options o = cl.Options("quinn");
  o.subscribe_replicas = 4;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 0, Sub::Cb, &sub, &h));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 30; i++) ts.push_back(Submit(c, "e" + std::to_string(i)));
  for (auto t : ts) ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  uint64_t n = fake_log_size(cl.fc);
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() == n; }));
  mir_client_unsubscribe(h);
  std::lock_guard<std::mutex> l(sub.mu);
  for (size_t i = 0; i < sub.sns.size(); i++) {
    EXPECT_EQ(sub.sns[i], i);
    uint8_t honest[32];
    ASSERT_EQ(0, fake_log_hash(cl.fc, i, honest));
    EXPECT_EQ(sub.hashes[i], std::vector<uint8_t>(honest, honest + 32));
  }
  EXPECT_EQ(sub.data.size(), 30u);
  EXPECT_EQ(sub.final_status.load(), -1);  // unsubscribed: no final call
  mir_client_close(c);
}

TEST(SdkClient, UnsubscribeFromTheCallbackStopsIt) {
  // A callback may unsubscribe its own subscription; it is then never called again.
  Cluster cl(1);
  for (int i = 0; i < 10; i++) fake_append_empty(cl.fc);
  mir_client_options o = cl.Options("rosa");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  sub.unsubscribe_after = 3;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 0, Sub::Cb, &sub, &h));
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() >= 3; }));
  for (int i = 0; i < 5; i++) fake_append_empty(cl.fc);
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, Submit(c, "more"), kWaitMs, nullptr));
  mir_client_close(c);
  EXPECT_EQ(sub.Entries(), 3u);
  EXPECT_EQ(sub.calls.load(), 3);
}

TEST(SdkClient, SubscriptionEndsWhenItsStartIsNoLongerRetained) {
  // Subscribing below what every replica retains ends the subscription with ENOTFOUND (one final
  // call); close then adds no second final call.
  Cluster cl(4);
  for (int i = 0; i < 10; i++) fake_append_empty(cl.fc);
  fake_set_retained_from(cl.fc, 5);
  mir_client_options o = cl.Options("sam");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 2, Sub::Cb, &sub, &h));
  ASSERT_TRUE(WaitUntil([&] { return sub.final_status.load() != -1; }));
  EXPECT_EQ(sub.final_status.load(), MIR_CLIENT_ENOTFOUND);
  mir_client_close(c);
  EXPECT_EQ(sub.calls.load(), 1);
}

TEST(SdkClient, SubscriptionReadsPastReplicasThatNoLongerHoldTheStart) {
  // Two of four replicas were brought forward by a state transfer and hold nothing below sn 5;
  // the two others hold the whole log. A subscription from 0 reads it all from those two: f + 1
  // replicas without the start do not mean that no f + 1 replicas can serve it.
  Cluster cl(4);
  for (int i = 0; i < 10; i++) fake_append_empty(cl.fc);
  fake_set_replica_retained_from(cl.fc, 0, 5);
  fake_set_replica_retained_from(cl.fc, 3, 5);
  // Followed from 2f + 1 = 3 replicas (the default), at least one of them without the start: it
  // says so, and the fourth replica joins, so both replicas without the start have answered
  // before the entries appended below can be delivered.
  mir_client_options o = cl.Options("ann");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 0, Sub::Cb, &sub, &h));
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() >= 10 || sub.final_status.load() != -1; }));
  ASSERT_TRUE(
      WaitUntil([&] { return fake_subscribes(cl.fc, 1) + fake_subscribes(cl.fc, 2) >= 2; }));
  for (int i = 0; i < 5; i++) fake_append_empty(cl.fc);
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, Submit(c, "after"), kWaitMs, nullptr));
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() >= 16 || sub.final_status.load() != -1; }));
  EXPECT_EQ(sub.final_status.load(), -1);
  EXPECT_EQ(sub.Entries(), 16u);
  mir_client_close(c);
}

TEST(SdkClient, CloseEndsSubscriptionsWithAFinalCall) {
  // A live subscription gets exactly one final callback with ESTOPPED at close.
  Cluster cl(1);
  mir_client_options o = cl.Options("tom");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, MIR_CLIENT_FROM_NOW, Sub::Cb, &sub, &h));
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_wait(c, Submit(c, "x"), kWaitMs, nullptr));
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() >= 1; }));
  mir_client_close(c);
  EXPECT_EQ(sub.final_status.load(), MIR_CLIENT_ESTOPPED);
  EXPECT_EQ(sub.calls.load(), static_cast<int>(sub.Entries()) + 1);
}

TEST(SdkClient, SubscribeRefusalsNeverCallBack) {
  // Invalid subscribe calls fail without ever calling the callback.
  Cluster cl(1);
  mir_client_options o = cl.Options("uma");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  Sub sub;
  mir_client_sub *h = nullptr;
  EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_subscribe(c, 0, nullptr, &sub, &h));
  std::vector<mir_client_sub *> subs(16);
  for (auto &s : subs) ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 0, Sub::Cb, &sub, &s));
  Sub refused;
  EXPECT_EQ(MIR_CLIENT_EFULL, mir_client_subscribe(c, 0, Sub::Cb, &refused, &h));
  for (auto s : subs) mir_client_unsubscribe(s);
  mir_client_close(c);
  EXPECT_EQ(refused.calls.load(), 0);
}

// ---- back-pressure ----

int64_t Ms(int64_t ns) {
  return ns / 1000000;
}

TEST(SdkClient, BackPressureWaitsForTheHintThenLongerWhileBusy) {
  // A replica refuses the first two requests (MEMPOOL_FULL, retry_after_ms 300): the SDK sends
  // the transactions again no sooner than 300 ms after the first refusal, and no sooner than
  // 600 ms after the second (the pause doubles while the replica stays busy); the stream stays
  // open (no reconnect) and everything commits. The refusals and pauses are counted.
  Cluster cl(1);
  fake_set_retry_after(cl.fc, 300);
  fake_set_full_budget(cl.fc, 10);  // two requests of five transactions
  mir_client_options o = cl.Options("busy-client");
  o.batch_delay_us = 50000;  // the five transactions leave in one request
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 5; i++) ts.push_back(Submit(c, "b" + std::to_string(i)));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  fake_request reqs[16];
  size_t n = fake_requests(cl.fc, 0, reqs, 16);
  ASSERT_EQ(n, 3u);
  EXPECT_TRUE(reqs[0].refused);
  EXPECT_TRUE(reqs[1].refused);
  EXPECT_FALSE(reqs[2].refused);
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(reqs[i].n_txs, 5u);
  EXPECT_GE(Ms(reqs[1].at_ns - reqs[0].at_ns), 300);
  EXPECT_GE(Ms(reqs[2].at_ns - reqs[1].at_ns), 600);
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.refused, 10u);
  EXPECT_EQ(st.backoffs, 2u);
  EXPECT_EQ(st.resent, 10u);
  EXPECT_EQ(st.reconnects, 0u);
  EXPECT_EQ(st.committed, 5u);
  mir_client_close(c);
}

TEST(SdkClient, BackPressureHintHoldsAcrossAReconnect) {
  // A replica that refused with retry_after_ms 800 restarts at once: the SDK reopens the stream
  // (a reconnect, because the stream failed) but sends nothing on it before the 800 ms passed;
  // the transactions, queued again on the new stream, then commit.
  Cluster cl(1);
  fake_set_retry_after(cl.fc, 800);
  fake_set_full_budget(cl.fc, 3);
  mir_client_options o = cl.Options("busy-restart");
  o.batch_delay_us = 50000;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 3; i++) ts.push_back(Submit(c, "r" + std::to_string(i)));
  fake_request reqs[16];
  ASSERT_TRUE(WaitUntil([&] { return fake_requests(cl.fc, 0, reqs, 16) >= 1; }));
  fake_stop(cl.fc, 0);
  ASSERT_EQ(0, fake_start(cl.fc, 0));
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  size_t n = fake_requests(cl.fc, 0, reqs, 16);
  ASSERT_GE(n, 2u);
  EXPECT_TRUE(reqs[0].refused);
  EXPECT_GE(Ms(reqs[1].at_ns - reqs[0].at_ns), 800);
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_GE(st.reconnects, 1u);
  EXPECT_EQ(st.backoffs, 1u);
  mir_client_close(c);
}

TEST(SdkClient, ASubscribeRefusedAsAheadDoesNotEndTheSubscription) {
  // Replicas that refuse a Subscribe with OUT_OF_RANGE and "mir-range: ahead" (their log lags far
  // behind) do not end the subscription as "no longer retained" (that takes "below", or no
  // metadata): it retries, and reports the entries once the replicas serve it.
  Cluster cl(4);
  mir_client_options o = cl.Options("ahead-client");
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  fake_set_refuse_ahead(cl.fc, true);
  Sub sub;
  mir_client_sub *h = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_subscribe(c, 0, Sub::Cb, &sub, &h));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // several refusals by each
  EXPECT_EQ(sub.final_status.load(), -1);
  fake_set_refuse_ahead(cl.fc, false);
  for (int i = 0; i < 3; i++) fake_append_empty(cl.fc);
  ASSERT_TRUE(WaitUntil([&] { return sub.Entries() >= 3; }));
  EXPECT_EQ(sub.final_status.load(), -1);
  mir_client_unsubscribe(h);
  mir_client_close(c);
}

TEST(SdkClient, ClientIdsOutsideTheAlphabetAreRefusedAtOpen) {
  // The SDK refuses a client id the replicas would reject (EINVAL at open, naming the rule).
  Cluster cl(1);
  mir_client *c = nullptr;
  for (const char *id : {"a b", "caf\xc3\xa9", "tab\t", "slash/id"}) {
    mir_client_options o = cl.Options(id);
    EXPECT_EQ(MIR_CLIENT_EINVAL, mir_client_open(&o, &c)) << id;
    EXPECT_NE(std::string(mir_client_errdetail()).find("[A-Za-z0-9._:@-]"), std::string::npos);
  }
  mir_client_options o = cl.Options("user@host:app_1.x-y");
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c)) << mir_client_errdetail();
  mir_client_close(c);
}

TEST(SdkClient, TheWindowIsNoLargerThanTheReplicasReport) {
  // Replicas whose Status reports a window of 4: a client opened with a window of 8 takes 4
  // unresolved transactions, then EFULL; nothing is refused OUT_OF_WINDOW or sent again, and
  // once the four commit the next four go.
  Cluster cl(4);
  fake_set_window(cl.fc, 4);
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("narrow");
  o.window = 8;
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 4; i++) ts.push_back(Submit(c, "n" + std::to_string(i)));
  mir_client_ticket t = 0;
  EXPECT_EQ(MIR_CLIENT_EFULL, mir_client_submit(c, "x", 1, nullptr, nullptr, &t));
  fake_set_hold(cl.fc, false);
  for (auto k : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, k, kWaitMs, nullptr));
  for (int i = 4; i < 8; i++) {
    EXPECT_EQ(MIR_CLIENT_OK,
              mir_client_wait(c, Submit(c, "n" + std::to_string(i)), kWaitMs, nullptr));
  }
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.resent, 0u);
  mir_client_close(c);
}

TEST(SdkClient, OutOfWindowWaitsUntilTheWindowCanHaveMoved) {
  // With a window of 8 at the SDK and 4 at the replica, transactions 4..7 are OUT_OF_WINDOW while
  // 0..3 are not ordered yet (the cluster holds them): the SDK sends them no more until 0..3
  // commit (its oldest unresolved moves), then once, and they commit.
  Cluster cl(1);
  fake_set_window(cl.fc, 4);
  fake_set_report_window(cl.fc, false);  // else the SDK takes a window of 4 at open
  fake_set_hold(cl.fc, true);
  mir_client_options o = cl.Options("window-client");
  o.window = 8;
  o.batch_delay_us = 50000;  // the eight leave in one request
  o.busy_max_ms = 60000;     // the fallback never fires here
  mir_client *c = nullptr;
  ASSERT_EQ(MIR_CLIENT_OK, mir_client_open(&o, &c));
  std::vector<mir_client_ticket> ts;
  for (int i = 0; i < 8; i++) ts.push_back(Submit(c, "w" + std::to_string(i)));
  ASSERT_TRUE(WaitUntil([&] { return fake_submitted(cl.fc, 0) >= 8; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(fake_submitted(cl.fc, 0), 8u);  // nothing sent again while the window stands
  fake_set_hold(cl.fc, false);
  for (auto t : ts) EXPECT_EQ(MIR_CLIENT_OK, mir_client_wait(c, t, kWaitMs, nullptr));
  EXPECT_EQ(fake_submitted(cl.fc, 0), 12u);
  mir_client_stats st;
  mir_client_stats_get(c, &st);
  EXPECT_EQ(st.resent, 4u);
  mir_client_close(c);
}

}  // namespace

namespace {

TEST(SdkProcess, TuneProcessSaysWhetherItSwitchedTheDetectionOff) {
  // mir_client_tune_process is mir_grpc_tune_process (tests/modules/net/grpc/grpc_tune_test.cc
  // checks its effect); here only what the SDK's function returns, in child processes since the
  // setting is process-wide.
  EXPECT_EXIT(
      {
        unsetenv("MIR_ABSL_DEADLOCK_DETECTION");
        std::exit(mir_client_tune_process() == 1 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("MIR_ABSL_DEADLOCK_DETECTION", "1", 1);
        std::exit(mir_client_tune_process() == 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
