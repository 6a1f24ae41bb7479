// Tests of the client service (server/replica/client_service.h) in one process: the service runs
// as the active module of a real node next to a fake mempool, over a real ordered log, and a test
// client talks to it over gRPC on loopback. They show that Submit answers every request in order
// with a reason for each rejection, that bad input gets an error (and too much of it ends the
// stream), that Subscribe streams the log from any retained sn and waits for more, that a slow
// subscriber is cut, and that Status, unknown methods, stream limits and shutdown behave; and the
// defences against heavy and hostile clients: a Subscribe from far beyond the log is refused,
// subscriber slots are limited per client and per connection, client ids are checked on the wire,
// an oversized request gets a refusal and its stream goes on, a busy stream or a full mempool
// answers with a retry hint, and with client certificates a client submits only under its own id.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/api_client.h"
#include "replica/test_dir.h"

extern "C" {
#include "client_service.h"
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/node.h"
#include "trantor_common.h"
}

namespace {

using mirtest::Channel;
using mirtest::SubmitStream;
using mirtest::Subscription;

// The fake mempool: data "full" is MEMPOOL_FULL, an odd tx_no OUT_OF_WINDOW, a repeated
// (client, tx_no) DUPLICATE, anything else ACCEPTED. Counts what it accepted. While `hold` is
// set it keeps its answers; a NewTransactions without an origin (Service::Release) sends them.
struct FakeMempool {
  std::set<std::pair<std::string, uint64_t>> seen;
  size_t accepted = 0;
  size_t unknown_fields = 0; /* in the transactions it was handed */
  std::atomic<bool> hold{false};
  std::vector<mir_event *> held;
};

mir_err MempoolApply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *m = static_cast<FakeMempool *>(state);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (!mir_event_is(ev, &trantor__new_transactions__descriptor)) continue;
    auto *nt = reinterpret_cast<const Trantor__NewTransactions *>(ev->payload);
    if (nt->origin == nullptr) {  // Release
      for (mir_event *h : m->held) mir_event_list_push(out, h);
      m->held.clear();
      continue;
    }
    auto *acc = static_cast<Trantor__TxsAccepted *>(mir_xmalloc(sizeof(Trantor__TxsAccepted)));
    trantor__txs_accepted__init(acc);
    acc->n_status = nt->n_txs;
    acc->status = static_cast<Trantor__TxStatus *>(mir_xcalloc(nt->n_txs + 1, sizeof(int)));
    for (size_t i = 0; i < nt->n_txs; i++) {
      const Trantor__Tx *tx = nt->txs[i];
      m->unknown_fields += tx->base.n_unknown_fields;
      std::string data(reinterpret_cast<const char *>(tx->data.data), tx->data.len);
      if (data == "full") {
        acc->status[i] = TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
      } else if (tx->tx_no % 2 == 1) {
        acc->status[i] = TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW;
      } else if (!m->seen.insert({tx->client_id, tx->tx_no}).second) {
        acc->status[i] = TRANTOR__TX_STATUS__TX_DUPLICATE;
      } else {
        acc->status[i] = TRANTOR__TX_STATUS__TX_ACCEPTED;
        m->accepted++;
      }
    }
    acc->origin = reinterpret_cast<Mir__Origin *>(mir_message_clone(&nt->origin->base));
    mir_event *answer = mir_event_new(nt->origin->module, "mempool", &acc->base);
    if (m->hold) {
      m->held.push_back(answer);
    } else {
      mir_event_list_push(out, answer);
    }
  }
  return MIR_OK;
}

void MempoolDestroy(void *state) {
  auto *m = static_cast<FakeMempool *>(state);
  for (mir_event *h : m->held) mir_event_free(h);
  delete m;
}

const mir_module_ops kMempoolOps = {"fake-mempool", MIR_MODULE_PASSIVE, MempoolApply, nullptr,
                                    nullptr,        MempoolDestroy,     false,        nullptr};

size_t Peers(void *user, mir_client_peer *out, size_t cap) {
  (void)user;
  if (cap < 2) return 0;
  snprintf(out[0].id, sizeof(out[0].id), "b");
  out[0].connected = true;
  snprintf(out[1].id, sizeof(out[1].id), "c");
  out[1].connected = false;
  return 2;
}

// TLS material made with the crypto seam in a folder: a cluster CA, the replica's certificate
// (replica "a" on 127.0.0.1), client certificates for "alice" and "bob", and a second CA with a
// client certificate for "alice" that the service does not trust.
struct Pki {
  std::string dir;
  std::string ca, ca_key, cert, key, other_ca, other_ca_key;
  std::map<std::string, std::pair<std::string, std::string>> clients; /* cert, key */
  explicit Pki(const std::string &folder) : dir(folder) {
    Make(&ca, &ca_key);
    Make(&other_ca, &other_ca_key);
    char *c = nullptr, *k = nullptr;
    EXPECT_EQ(mir_tls_cert_new(ca.c_str(), ca_key.c_str(), "a", "127.0.0.1", 2, &c, &k), MIR_OK);
    cert = c;
    key = k;
    free(c);
    free(k);
    for (const char *id : {"alice", "bob"}) Client(ca, ca_key, id, id);
    Client(other_ca, other_ca_key, "alice", "alice-other");
    Write("ca.pem", ca);
    Write("replica.crt", cert);
    Write("replica.key", key);
  }
  void Make(std::string *c, std::string *k) {
    char *cp = nullptr, *kp = nullptr;
    EXPECT_EQ(mir_tls_ca_new("test CA", 2, &cp, &kp), MIR_OK) << mir_error_detail();
    *c = cp;
    *k = kp;
    free(cp);
    free(kp);
  }
  void Client(const std::string &c, const std::string &k, const char *id, const char *name) {
    char *cp = nullptr, *kp = nullptr;
    EXPECT_EQ(mir_tls_client_cert_new(c.c_str(), k.c_str(), id, 2, &cp, &kp), MIR_OK)
        << mir_error_detail();
    clients[name] = {cp, kp};
    free(cp);
    free(kp);
  }
  void Write(const char *name, const std::string &text) { std::ofstream(dir + "/" + name) << text; }
  std::string Path(const char *name) const { return dir + "/" + name; }
  // A client's TLS settings: the CA and the certificate of `name` ("" for none).
  mirtest::Tls For(const std::string &name) const {
    mirtest::Tls t;
    t.ca = ca;
    if (!name.empty()) {
      t.cert = clients.at(name).first;
      t.key = clients.at(name).second;
    }
    return t;
  }
};

// A node with the client service and the fake mempool over an ordered log in a temp folder;
// with pki, it serves TLS and requires client certificates from pki's CA.
struct Service {
  reptest::TempDir dir;
  mir_store *store = nullptr;
  mir_olog *log = nullptr;
  trantor_app app;
  mir_node *node = nullptr;
  mir_client_service *svc = nullptr;
  FakeMempool *mempool = new FakeMempool;
  std::string addr;
  uint64_t next_sn = 0;
  std::string prev = std::string(32, '\0');

  explicit Service(mir_replica_client_limits limits = Limits(), uint64_t retention = 1000,
                   const Pki *pki = nullptr) {
    mir_store_config sc;
    mir_store_config_default(&sc);
    std::string p = dir.sub("db");
    sc.path = p.c_str();
    sc.cfs = mir_olog_cfs;
    sc.n_cfs = MIR_OLOG_N_CFS;
    sc.sync = false;
    EXPECT_EQ(mir_store_open(&sc, &store), MIR_OK) << mir_error_detail();
    mir_olog_config lc;
    mir_olog_config_default(&lc);
    lc.store = store;
    lc.hash = trantor_hash_reference;
    lc.retention_sns = retention;
    lc.delete_every = 4;
    EXPECT_EQ(mir_olog_open(&lc, &log), MIR_OK) << mir_error_detail();
    mir_olog_app(log, &app);
    mir_client_service_config cc = {};
    cc.own_id = "a";
    cc.listen_addr = "127.0.0.1:0";
    cc.log = log;
    cc.limits = limits;
    cc.max_tx_bytes = 100;
    cc.client_window = 64;
    cc.peers = Peers;
    std::string crt, key, ca;
    if (pki != nullptr) {
      crt = pki->Path("replica.crt");
      key = pki->Path("replica.key");
      ca = pki->Path("ca.pem");
      cc.tls_cert_file = crt.c_str();
      cc.tls_key_file = key.c_str();
      cc.tls_client_ca_file = ca.c_str();
    }
    EXPECT_EQ(mir_client_service_new(&cc, &svc), MIR_OK) << mir_error_detail();
    addr = "127.0.0.1:" + std::to_string(mir_client_service_port(svc));
    EXPECT_EQ(mir_node_new("a", nullptr, &node), MIR_OK);
    EXPECT_EQ(mir_node_add_module(node, "client", &mir_client_service_ops, svc), MIR_OK);
    EXPECT_EQ(mir_node_add_module(node, "mempool", &kMempoolOps, mempool), MIR_OK);
    EXPECT_EQ(mir_node_start(node), MIR_OK);
  }
  ~Service() {
    Stop();
    mir_olog_free(log);
    EXPECT_EQ(mir_store_close(store), MIR_OK);
  }
  void Stop() {
    if (node == nullptr) return;
    mir_node_stop(node);
    mir_node_free(node);
    node = nullptr;
  }
  static mir_replica_client_limits Limits() {
    mir_replica_client_limits l = {};
    l.max_request_bytes = 64 * 1024;
    l.max_txs_per_request = 16;
    l.max_submit_streams = 8;
    l.max_requests_in_flight = 4;
    l.max_bytes_in_flight = 1 << 20;
    l.max_subscribers = 4;
    l.subscriber_stall_ms = 30000;
    l.max_subscribers_per_client = 4;
    l.max_subscribers_per_connection = 4;
    l.subscribe_ahead_max = 1000;
    l.retry_after_ms = 250;
    return l;
  }
  // Appends n entries with `bytes` bytes of data each to the log.
  void Append(size_t n, size_t bytes = 8) {
    for (size_t k = 0; k < n; k++) {
      std::string data(bytes, static_cast<char>('a' + next_sn % 26));
      Trantor__Tx tx = TRANTOR__TX__INIT;
      tx.client_id = const_cast<char *>("w");
      tx.tx_no = next_sn;
      tx.data.data = reinterpret_cast<uint8_t *>(&data[0]);
      tx.data.len = data.size();
      Trantor__Tx *p = &tx;
      ASSERT_EQ(app.apply_batch(app.user_data, next_sn, 1, &p, 1), MIR_OK) << mir_error_detail();
      next_sn++;
    }
  }
  // Appends n entries of one transaction from each of clients "a" and "b".
  void AppendPairs(size_t n) {
    for (size_t k = 0; k < n; k++) {
      Trantor__Tx txs[2] = {TRANTOR__TX__INIT, TRANTOR__TX__INIT};
      Trantor__Tx *p[2] = {&txs[0], &txs[1]};
      txs[0].client_id = const_cast<char *>("a");
      txs[1].client_id = const_cast<char *>("b");
      for (Trantor__Tx &tx : txs) tx.tx_no = next_sn;
      ASSERT_EQ(app.apply_batch(app.user_data, next_sn, 1, p, 2), MIR_OK) << mir_error_detail();
      next_sn++;
    }
  }
  // The service's metrics, read from its set in the registry.
  struct CsStats {
    uint64_t malformed, open_subscribers, requests, requests_busy, submit_refused;
    uint64_t subscribers_cut, subscribers_refused, txs_accepted, txs_full, txs_rejected;
    uint64_t unauthenticated;
  };
  CsStats Stats() {
    const mir_metrics *m = mir_client_service_metrics(svc);
    auto rd = [m](const char *name, const char *value = nullptr) {
      return static_cast<uint64_t>(mir_metrics_read(m, name, value));
    };
    const char *refused = "mir_client_transactions_refused_total";
    CsStats s{};
    s.malformed = rd("mir_client_requests_refused_total", "malformed");
    s.requests_busy = rd("mir_client_requests_refused_total", "busy");
    s.open_subscribers = rd("mir_client_subscribers");
    s.requests = rd("mir_client_requests_total");
    s.submit_refused = rd("mir_client_submit_streams_refused_total");
    s.subscribers_cut = rd("mir_client_subscribe_streams_ended_total", "cut");
    s.subscribers_refused = rd("mir_client_subscribe_streams_ended_total", "refused");
    s.txs_accepted = rd("mir_client_transactions_accepted_total");
    s.txs_full = rd(refused, "mempool_full") + rd(refused, "busy");
    s.txs_rejected = rd(refused);
    s.unauthenticated = rd("mir_client_unauthenticated_calls_total");
    return s;
  }
  // Makes the fake mempool send the answers it holds.
  void Release() {
    auto *nt =
        static_cast<Trantor__NewTransactions *>(mir_xmalloc(sizeof(Trantor__NewTransactions)));
    trantor__new_transactions__init(nt);
    mir_event_list l;
    mir_event_list_init(&l);
    mir_event_list_push(&l, mir_event_new("mempool", "test", &nt->base));
    EXPECT_EQ(mir_node_inject(node, &l), MIR_OK);
  }
};

// Polls pred every 20 ms until it holds or timeout_ms passes.
template <typename F>
bool WaitFor(F pred, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<std::string> Statuses(const Mir__Api__SubmitResponse *r) {
  std::vector<std::string> out;
  for (size_t i = 0; i < r->n_results; i++) {
    out.push_back(std::to_string(r->results[i]->status) + " " + r->results[i]->reason);
  }
  return out;
}

TEST(ClientService, SubmitAnswersEveryRequestInOrderWithReasons) {
  // Eight pipelined requests (more than the four allowed at the mempool) are answered once each:
  // those the mempool took in request order, the others (read while four were at the mempool) at
  // once as "busy" with the retry hint. Ingress checks and the mempool's verdicts come back with
  // reasons, in transaction order.
  Service s;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  for (uint64_t id = 1; id <= 8; id++) {
    ASSERT_TRUE(st.Send(id, {{"cl", 2 * id, "ok"}}));
  }
  std::set<uint64_t> answered;
  uint64_t last_taken = 0;
  for (int i = 0; i < 8; i++) {
    Mir__Api__SubmitResponse *r = nullptr;
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_TRUE(answered.insert(r->request_id).second) << r->request_id;
    std::vector<std::string> got = Statuses(r);
    if (got == std::vector<std::string>{"0 "}) {
      EXPECT_GT(r->request_id, last_taken);
      last_taken = r->request_id;
      EXPECT_EQ(r->retry_after_ms, 0u);
    } else {
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].rfind("4 busy: 4 requests of this stream await the mempool", 0), 0u)
          << got[0];
      EXPECT_EQ(r->retry_after_ms, 250u);
    }
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  EXPECT_EQ(answered.size(), 8u);
  EXPECT_EQ(s.mempool->accepted + s.Stats().requests_busy, 8u);
  EXPECT_GE(s.mempool->accepted, 4u);
  ASSERT_TRUE(st.Send(9, {{"cl", 2, "ok"},
                          {"cl", 3, "odd"},
                          {"cl", 20, std::string(101, 'x')},
                          {"other", 22, "x"},
                          {"", 24, "x"},
                          {"cl", 26, "full"},
                          {"cl", 28, "ok"}}));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(st.Recv(&r), 1);
  auto got = Statuses(r);
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got[0].rfind("1 duplicate", 0), 0u) << got[0];
  EXPECT_EQ(got[1].rfind("2 outside the client's window", 0), 0u) << got[1];
  EXPECT_EQ(got[2], "3 too large: 101 bytes, at most 100");
  EXPECT_EQ(got[3], "5 client id differs from the stream's (cl)");
  EXPECT_EQ(got[4].rfind("5 invalid client id", 0), 0u) << got[4];
  EXPECT_EQ(got[5].rfind("4 the mempool is full", 0), 0u) << got[5];
  EXPECT_EQ(got[6], "0 ");
  mir__api__submit_response__free_unpacked(r, nullptr);
  ASSERT_TRUE(st.CloseSend());
  EXPECT_EQ(st.Recv(&r), -1);
  ASSERT_TRUE(st.Finished(5000));
  EXPECT_EQ(st.status(), GRPC_STATUS_OK);
  EXPECT_EQ(s.Stats().txs_accepted, s.mempool->accepted);
  EXPECT_EQ(s.Stats().txs_rejected, 6u + s.Stats().requests_busy);
}

TEST(ClientService, BadInputGetsAnErrorAndTooMuchEndsTheStream) {
  // Undecodable bytes and too many transactions get a response with `error`; a message above
  // max_request_bytes but within twice that gets one too ("request too large", with its
  // request_id), and the stream goes on; a bigger one ends the stream (RESOURCE_EXHAUSTED, refused
  // by gRPC before it is read); seventeen malformed requests end it with INVALID_ARGUMENT. The
  // service keeps serving other streams.
  Service s;
  Channel ch(s.addr);
  {
    SubmitStream st(ch.get());
    ASSERT_TRUE(st.SendRaw(std::string("\x0a\xff\xff\xff\xff\x0f", 6)));
    Mir__Api__SubmitResponse *r = nullptr;
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_NE(std::string(r->error).find("malformed request"), std::string::npos) << r->error;
    mir__api__submit_response__free_unpacked(r, nullptr);
    ASSERT_TRUE(st.Send(5, std::vector<mirtest::Tx>(17, {"cl", 0, ""})));
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, 5u);
    EXPECT_EQ(std::string(r->error), "too many transactions: 17, at most 16 per request");
    mir__api__submit_response__free_unpacked(r, nullptr);
    // Request 6: one transaction of 70,000 bytes, more than max_request_bytes (65,536).
    ASSERT_TRUE(st.Send(6, {{"cl", 0, std::string(70000, 'y')}}));
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, 6u);
    EXPECT_EQ(std::string(r->error).rfind("request too large: 700", 0), 0u) << r->error;
    EXPECT_NE(std::string(r->error).find(" bytes, at most 65536"), std::string::npos) << r->error;
    EXPECT_EQ(r->n_results, 0u);
    mir__api__submit_response__free_unpacked(r, nullptr);
    ASSERT_TRUE(st.SendRaw(std::string(70000, 'z')));  // too large, and not even a request
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, 0u);
    EXPECT_EQ(std::string(r->error), "request too large: 70000 bytes, at most 65536");
    mir__api__submit_response__free_unpacked(r, nullptr);
    ASSERT_TRUE(st.Send(7, {{"cl", 40, "x"}}));  // the stream goes on
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, 7u);
    EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
    mir__api__submit_response__free_unpacked(r, nullptr);
    st.SendRaw(std::string(2 * 65536 + 1, 'z'));
    EXPECT_EQ(st.Recv(&r), -1);
    ASSERT_TRUE(st.Finished(5000));
    EXPECT_EQ(st.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  }
  {
    SubmitStream st(ch.get());
    for (int i = 0; i < 17; i++) st.SendRaw("\xff");
    Mir__Api__SubmitResponse *r = nullptr;
    int got = 0;
    while (got < 20 && st.Recv(&r, 5000) == 1) {
      mir__api__submit_response__free_unpacked(r, nullptr);
      got++;
    }
    ASSERT_TRUE(st.Finished(5000));
    EXPECT_EQ(st.status(), GRPC_STATUS_INVALID_ARGUMENT) << st.details();
    EXPECT_LE(got, 17);
  }
  SubmitStream ok(ch.get());
  ASSERT_TRUE(ok.Send(1, {{"cl", 0, "x"}}));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(ok.Recv(&r), 1);
  EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_GE(s.Stats().malformed, 20u);
}

// Reads deliveries into sns until want of them arrived (bounded).
std::vector<uint64_t> Read(Subscription &sub, size_t want, int timeout_ms = 5000) {
  std::vector<uint64_t> sns;
  while (sns.size() < want) {
    Mir__Api__Delivery *d = nullptr;
    if (sub.Next(&d, timeout_ms) != 1) break;
    sns.push_back(d->sn);
    mir__api__delivery__free_unpacked(d, nullptr);
  }
  return sns;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t i = from; i < to; i++) v.push_back(i);
  return v;
}

TEST(ClientService, UnknownFieldsAreStrippedAndCannotBlowUpDecoding) {
  // A transaction with a field this version does not know is accepted and handed on without it;
  // a request of tens of thousands of unknown fields, within max_request_bytes but costing more
  // than the decode budget, is refused without being decoded in full.
  Service s;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  // SubmitRequest{request_id 3, txs [Tx{client_id "cl", tx_no 0, data "x", field 9 = 7}]}
  std::string tx = std::string(
      "\x0a\x02"
      "cl"
      "\x10\x00"
      "\x1a\x01"
      "x"
      "\x48\x07",
      11);
  std::string req = std::string("\x08\x03\x12", 3) + static_cast<char>(tx.size()) + tx;
  ASSERT_TRUE(st.SendRaw(req));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(st.Recv(&r), 1);
  EXPECT_EQ(r->request_id, 3u);
  EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.mempool->accepted, 1u);
  EXPECT_EQ(s.mempool->unknown_fields, 0u);
  std::string bomb;
  for (int i = 0; i < 30000; i++) bomb += std::string("\x78\x00", 2);  // field 15 = 0
  ASSERT_TRUE(st.SendRaw(std::string("\x08\x04", 2) + bomb));
  ASSERT_EQ(st.Recv(&r), 1);
  EXPECT_EQ(r->request_id, 4u);
  EXPECT_EQ(std::string(r->error), "malformed request: decodes to too much memory");
  mir__api__submit_response__free_unpacked(r, nullptr);
}

TEST(ClientService, SubscribeStreamsFromAnySnAndWaitsForMore) {
  // A subscriber from sn 10 gets 10..49 in order, then the entries appended later; one from
  // beyond the log waits until its sn arrives.
  Service s;
  s.Append(50);
  Channel ch(s.addr);
  Subscription from10(ch.get(), 10);
  Subscription ahead(ch.get(), 53);
  EXPECT_EQ(Read(from10, 40), Range(10, 50));
  Mir__Api__Delivery *d = nullptr;
  EXPECT_EQ(ahead.Next(&d, 300), 0);  // nothing yet
  s.Append(5);
  EXPECT_EQ(Read(from10, 5), Range(50, 55));
  EXPECT_EQ(Read(ahead, 2), Range(53, 55));
  EXPECT_EQ(s.Stats().open_subscribers, 2u);
}

TEST(ClientService, SubscriberWithAClientIdGetsOnlyThatClientsTransactions) {
  // Every entry still comes, with the whole entry's sn, epoch and log hash, but only the named
  // client's transactions; an unknown client gets empty entries; an over-long id is refused.
  Service s;
  s.AppendPairs(20);
  Channel ch(s.addr);
  Subscription all(ch.get(), 0);
  Subscription only_b(ch.get(), 0, 120000, "b");
  Subscription nobody(ch.get(), 0, 120000, "c");
  for (uint64_t sn = 0; sn < 20; sn++) {
    Mir__Api__Delivery *a = nullptr, *b = nullptr, *c = nullptr;
    ASSERT_EQ(all.Next(&a), 1);
    ASSERT_EQ(only_b.Next(&b), 1);
    ASSERT_EQ(nobody.Next(&c), 1);
    EXPECT_EQ(a->sn, sn);
    EXPECT_EQ(b->sn, sn);
    EXPECT_EQ(c->sn, sn);
    EXPECT_EQ(a->n_txs, 2u);
    ASSERT_EQ(b->n_txs, 1u);
    EXPECT_STREQ(b->txs[0]->client_id, "b");
    EXPECT_EQ(c->n_txs, 0u);
    EXPECT_EQ(b->epoch, a->epoch);
    EXPECT_EQ(mirtest::Hex(b->log_hash.data, b->log_hash.len),
              mirtest::Hex(a->log_hash.data, a->log_hash.len));
    EXPECT_EQ(mirtest::Hex(c->log_hash.data, c->log_hash.len),
              mirtest::Hex(a->log_hash.data, a->log_hash.len));
    for (Mir__Api__Delivery *d : {a, b, c}) mir__api__delivery__free_unpacked(d, nullptr);
  }
  std::string long_id(65, 'x');
  Subscription bad(ch.get(), 0, 120000, long_id.c_str());
  Mir__Api__Delivery *d = nullptr;
  EXPECT_EQ(bad.Next(&d), -1);
  EXPECT_EQ(bad.status(), GRPC_STATUS_INVALID_ARGUMENT);
}

TEST(ClientService, SubscribersOutsideRetentionAndBeyondTheLimitAreRefused) {
  // From an sn no longer retained: OUT_OF_RANGE naming the oldest; beyond max_subscribers:
  // RESOURCE_EXHAUSTED; an undecodable request: INVALID_ARGUMENT.
  mir_replica_client_limits l = Service::Limits();
  l.max_subscribers = 1;
  Service s(l, 16);
  s.Append(60);
  Channel ch(s.addr);
  Subscription old(ch.get(), 0);
  Mir__Api__Delivery *d = nullptr;
  EXPECT_EQ(old.Next(&d, 5000), -1);
  EXPECT_EQ(old.status(), GRPC_STATUS_OUT_OF_RANGE);
  EXPECT_NE(old.details().find("no longer retained"), std::string::npos) << old.details();
  Subscription first(ch.get(), 50);
  EXPECT_EQ(Read(first, 1), Range(50, 51));
  Subscription second(ch.get(), 50);
  EXPECT_EQ(second.Next(&d, 5000), -1);
  EXPECT_EQ(second.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  std::string details;
  EXPECT_EQ(mirtest::UnaryRaw(ch.get(), "/mir.api.Client/Subscribe", "\xff", 5000, &details),
            GRPC_STATUS_INVALID_ARGUMENT);
}

TEST(ClientService, SlowSubscriberIsCut) {
  // A subscriber that reads nothing while megabytes of entries wait stops accepting sends; after
  // subscriber_stall_ms it is cancelled with RESOURCE_EXHAUSTED instead of being buffered for.
  mir_replica_client_limits l = Service::Limits();
  l.subscriber_stall_ms = 300;
  Service s(l);
  s.Append(400, 64 * 1024);
  Channel ch(s.addr);
  Subscription sub(ch.get(), 0);
  Mir__Api__Delivery *d = nullptr;
  ASSERT_EQ(sub.Next(&d, 5000), 1);  // the stream is open
  mir__api__delivery__free_unpacked(d, nullptr);
  EXPECT_TRUE(WaitFor([&] { return s.Stats().subscribers_cut == 1; }, 10000));
  int r = 1;
  for (int i = 0; i < 1000 && r == 1; i++) {
    r = sub.Next(&d, 5000);
    if (r == 1) mir__api__delivery__free_unpacked(d, nullptr);
  }
  EXPECT_EQ(r, -1);
  EXPECT_EQ(sub.status(), GRPC_STATUS_RESOURCE_EXHAUSTED) << sub.details();
}

TEST(ClientService, StatusUnknownMethodsAndStreamLimits) {
  // Status names the replica, its position, chain and peers; an unknown method is UNIMPLEMENTED;
  // a Submit stream beyond max_submit_streams is refused.
  mir_replica_client_limits l = Service::Limits();
  l.max_submit_streams = 1;
  Service s(l);
  s.Append(3);
  Channel ch(s.addr);
  Mir__Api__StatusResponse *st = mirtest::GetStatus(ch.get());
  ASSERT_NE(st, nullptr);
  EXPECT_STREQ(st->id, "a");
  EXPECT_EQ(st->next_sn, 3u);
  EXPECT_EQ(st->epoch, 0u);
  EXPECT_EQ(st->log_hash.len, 32u);
  ASSERT_EQ(st->n_peers, 2u);
  EXPECT_TRUE(st->peers[0]->connected);
  EXPECT_FALSE(st->peers[1]->connected);
  mir__api__status_response__free_unpacked(st, nullptr);
  std::string details;
  EXPECT_EQ(mirtest::UnaryRaw(ch.get(), "/mir.api.Client/Nope", "", 5000, &details),
            GRPC_STATUS_UNIMPLEMENTED);
  EXPECT_NE(details.find("unknown method"), std::string::npos);
  SubmitStream one(ch.get());
  ASSERT_TRUE(one.Send(1, {{"cl", 0, "x"}}));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(one.Recv(&r), 1);
  mir__api__submit_response__free_unpacked(r, nullptr);
  SubmitStream two(ch.get());
  EXPECT_EQ(two.Recv(&r, 5000), -1);
  EXPECT_EQ(two.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.Stats().submit_refused, 1u);
}

TEST(ClientService, StopsWithStreamsOpen) {
  // Stopping the node while a Submit stream and subscribers are open ends their calls promptly.
  auto s = std::make_unique<Service>();
  s->Append(5);
  Channel ch(s->addr);
  SubmitStream st(ch.get());
  Subscription sub(ch.get(), 3);
  EXPECT_EQ(Read(sub, 2), Range(3, 5));
  ASSERT_TRUE(st.Send(1, {{"cl", 0, "x"}}));
  s->Stop();
  // A call's status comes after the messages already on their way: read them first.
  Mir__Api__SubmitResponse *r = nullptr;
  for (int i = 0; i < 10 && st.Recv(&r, 10000) == 1; i++) {
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  Mir__Api__Delivery *d = nullptr;
  for (int i = 0; i < 10 && sub.Next(&d, 10000) == 1; i++) {
    mir__api__delivery__free_unpacked(d, nullptr);
  }
  EXPECT_TRUE(st.Finished(10000));
  EXPECT_TRUE(sub.Finished(10000));
  EXPECT_NE(sub.status(), GRPC_STATUS_OK);
  s.reset();
}

// ---- heavy and hostile clients ----

// Protobuf encoding by hand, for bytes the generated code would not produce (a NUL in a string).
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  return out + static_cast<char>(v);
}

std::string LenField(unsigned field, const std::string &bytes) {
  return Varint(field << 3 | 2) + Varint(bytes.size()) + bytes;
}

std::string RawTx(const std::string &client_id, uint64_t tx_no, const std::string &data) {
  return LenField(1, client_id) + Varint(2 << 3) + Varint(tx_no) + LenField(3, data);
}

std::string RawRequest(uint64_t request_id, const std::vector<std::string> &txs) {
  std::string out = Varint(1 << 3) + Varint(request_id);
  for (const std::string &tx : txs) out += LenField(2, tx);
  return out;
}

TEST(ClientService, ClientIdsAreCheckedOnTheWire) {
  // A client id with a NUL inside, one that is not UTF-8, one of 65 bytes, one with a space, one
  // with a non-ASCII letter and an empty one are each rejected (TX_INVALID, "invalid client id");
  // in particular "ab\0cd" is not cut to "ab" and taken as "ab"'s. Every allowed character
  // passes. A SubscribeRequest whose client_id has a NUL or is not UTF-8 is refused.
  Service s;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  const std::string bad_ids[] = {
      std::string("ab\0cd", 5), "\xc3\x28", std::string(65, 'x'), "a b", "\xc3\xa9", ""};
  std::vector<std::string> txs;
  for (size_t i = 0; i < 6; i++) txs.push_back(RawTx(bad_ids[i], 2 * i, "x"));
  ASSERT_TRUE(st.SendRaw(RawRequest(1, txs)));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(st.Recv(&r), 1);
  std::vector<std::string> got = Statuses(r);
  ASSERT_EQ(got.size(), 6u);
  for (const std::string &g : got) {
    EXPECT_EQ(g, "5 invalid client id: it must be 1 to 64 bytes of [A-Za-z0-9._:@-]");
  }
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.mempool->accepted, 0u);
  // The stream's id is still free: "ab" takes it, and every allowed character passes as a client
  // id of its own stream.
  ASSERT_TRUE(st.SendRaw(RawRequest(2, {RawTx("ab", 20, "x"), RawTx(bad_ids[0], 22, "x")})));
  ASSERT_EQ(st.Recv(&r), 1);
  got = Statuses(r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "0 ");
  EXPECT_EQ(got[1].rfind("5 invalid client id", 0), 0u) << got[1];
  mir__api__submit_response__free_unpacked(r, nullptr);
  SubmitStream all(ch.get());
  std::string every = "azAZ09._-:@" + std::string(53, 'q');  // 64 bytes
  ASSERT_TRUE(all.Send(1, {{every, 0, "x"}}));
  ASSERT_EQ(all.Recv(&r), 1);
  EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.mempool->accepted, 2u);
  for (const std::string &id : {std::string("ab\0cd", 5), std::string("\xff\xfe")}) {
    std::string details;
    EXPECT_EQ(
        mirtest::UnaryRaw(ch.get(), "/mir.api.Client/Subscribe", LenField(2, id), 5000, &details),
        GRPC_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(details.find("invalid client_id"), std::string::npos) << details;
  }
}

TEST(ClientService, SubscribeFromFarBeyondTheLogIsRefused) {
  // With subscribe_ahead_max 10 and the log at next sn 40: from 50 waits, from 51 and from 2^63
  // are refused (OUT_OF_RANGE, "mir-range: ahead"), and from a pruned sn too ("mir-range:
  // below"). The bound moves with the log.
  mir_replica_client_limits l = Service::Limits();
  l.subscribe_ahead_max = 10;
  Service s(l, 16);
  s.Append(40);
  Channel ch(s.addr);
  Subscription waits(ch.get(), 50);
  Mir__Api__Delivery *d = nullptr;
  EXPECT_EQ(waits.Next(&d, 300), 0);
  for (uint64_t from : {uint64_t{51}, uint64_t{1} << 63}) {
    Subscription far(ch.get(), from);
    EXPECT_EQ(far.Next(&d, 5000), -1);
    EXPECT_EQ(far.status(), GRPC_STATUS_OUT_OF_RANGE);
    EXPECT_NE(far.details().find("beyond the log (next sn: 40)"), std::string::npos)
        << far.details();
    EXPECT_EQ(far.trailer("mir-range"), "ahead");
  }
  Subscription old(ch.get(), 0);
  EXPECT_EQ(old.Next(&d, 5000), -1);
  EXPECT_EQ(old.status(), GRPC_STATUS_OUT_OF_RANGE);
  EXPECT_EQ(old.trailer("mir-range"), "below");
  s.Append(11);
  Subscription later(ch.get(), 61);
  EXPECT_EQ(later.Next(&d, 300), 0);  // admitted (51 + 10), waiting
  EXPECT_EQ(Read(waits, 1, 5000), Range(50, 51));
  EXPECT_EQ(s.Stats().open_subscribers, 2u);
  EXPECT_EQ(s.Stats().subscribers_refused, 3u);
}

TEST(ClientService, SubscriberSlotsAreLimitedPerClientAndPerConnection) {
  // Eight slots, at most two per client id and three per connection: one connection cannot hold
  // more than three, one client id not more than two over any number of connections, and a
  // slot given back is free again.
  mir_replica_client_limits l = Service::Limits();
  l.max_subscribers = 8;
  l.max_subscribers_per_client = 2;
  l.max_subscribers_per_connection = 3;
  Service s(l);
  s.Append(1);
  Channel a(s.addr, nullptr, true), b(s.addr, nullptr, true);
  auto refused = [](Subscription &sub, const char *why) {
    Mir__Api__Delivery *d = nullptr;
    EXPECT_EQ(sub.Next(&d, 5000), -1);
    EXPECT_EQ(sub.status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
    EXPECT_NE(sub.details().find(why), std::string::npos) << sub.details();
  };
  auto a1 = std::make_unique<Subscription>(a.get(), 0, 120000, "x");
  Subscription a2(a.get(), 0, 120000, "x");
  EXPECT_EQ(Read(*a1, 1), Range(0, 1));
  EXPECT_EQ(Read(a2, 1), Range(0, 1));
  Subscription a3(a.get(), 0, 120000, "x");
  refused(a3, "too many subscribers for client x (at most 2)");
  Subscription a4(a.get(), 0, 120000, "y");
  EXPECT_EQ(Read(a4, 1), Range(0, 1));
  Subscription a5(a.get(), 0);
  refused(a5, "too many subscribers over this connection (at most 3)");
  Subscription b1(b.get(), 0, 120000, "x");
  refused(b1, "too many subscribers for client x");
  Subscription b2(b.get(), 0), b3(b.get(), 0, 120000, "y");
  EXPECT_EQ(Read(b2, 1), Range(0, 1));
  EXPECT_EQ(Read(b3, 1), Range(0, 1));
  EXPECT_EQ(s.Stats().open_subscribers, 5u);
  a1.reset();  // cancels: its slot comes back
  EXPECT_TRUE(WaitFor([&] { return s.Stats().open_subscribers == 4; }, 10000));
  Subscription a6(a.get(), 0, 120000, "x");
  EXPECT_EQ(Read(a6, 1), Range(0, 1));
}

TEST(ClientService, StreamEndReportsTheRequestsRead) {
  // After the client half-closes, the status is OK with "mir-requests": every request read,
  // malformed ones included; a client that sent more (a last message cut short, which gRPC drops
  // without telling the server) can tell.
  Service s;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  for (uint64_t id = 1; id <= 3; id++) ASSERT_TRUE(st.Send(id, {{"cl", 2 * id, "ok"}}));
  ASSERT_TRUE(st.SendRaw("\xff"));
  Mir__Api__SubmitResponse *r = nullptr;
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ(st.Recv(&r), 1);
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  ASSERT_TRUE(st.CloseSend());
  EXPECT_EQ(st.Recv(&r), -1);
  ASSERT_TRUE(st.Finished(5000));
  EXPECT_EQ(st.status(), GRPC_STATUS_OK);
  EXPECT_EQ(st.trailer("mir-requests"), "4");
}

TEST(ClientService, BusyStreamAndFullMempoolAnswerWithARetryHint) {
  // With four requests of a stream at the mempool (which holds its answers), the fifth and sixth
  // are answered at once: TX_MEMPOOL_FULL, "busy", retry_after_ms 250; the four are answered
  // when the mempool answers. A transaction the mempool finds no room for is TX_MEMPOOL_FULL
  // with the same hint; an answer without one has retry_after_ms 0.
  Service s;
  s.mempool->hold = true;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  for (uint64_t id = 1; id <= 6; id++) ASSERT_TRUE(st.Send(id, {{"cl", 2 * id, "ok"}}));
  Mir__Api__SubmitResponse *r = nullptr;
  for (uint64_t id = 5; id <= 6; id++) {
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, id);
    EXPECT_EQ(r->retry_after_ms, 250u);
    EXPECT_EQ(Statuses(r), std::vector<std::string>{
                               "4 busy: 4 requests of this stream await the mempool; retry after "
                               "250 ms"});
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  EXPECT_EQ(st.Recv(&r, 300), 0);  // the four wait for the mempool
  s.mempool->hold = false;
  s.Release();
  for (uint64_t id = 1; id <= 4; id++) {
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, id);
    EXPECT_EQ(r->retry_after_ms, 0u);
    EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
  ASSERT_TRUE(st.Send(7, {{"cl", 20, "full"}, {"cl", 22, "ok"}}));
  ASSERT_EQ(st.Recv(&r), 1);
  EXPECT_EQ(r->retry_after_ms, 250u);
  EXPECT_EQ(Statuses(r),
            (std::vector<std::string>{"4 the mempool is full; retry after 250 ms", "0 "}));
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.Stats().requests_busy, 2u);
  EXPECT_EQ(s.Stats().txs_full, 3u);
  EXPECT_EQ(s.mempool->accepted, 5u);
}

TEST(ClientService, TransactionBytesAtTheMempoolAreBoundedOverAllStreams) {
  // max_bytes_in_flight 1000: 800 bytes of one stream wait at the mempool (which holds its
  // answers); 300 more from another stream would pass the budget and are answered busy at once,
  // with the hint, though that stream has nothing in flight; once the mempool answers, the same
  // request is taken. A request alone may be larger than the budget.
  mir_replica_client_limits l = Service::Limits();
  l.max_bytes_in_flight = 1000;
  Service s(l);
  s.mempool->hold = true;
  Channel ch(s.addr);
  SubmitStream a(ch.get()), b(ch.get());
  const std::string d(100, 'x');
  std::vector<mirtest::Tx> eight, three;
  for (uint64_t n = 0; n < 8; n++) eight.push_back({"ca", 2 * n, d});  // even: the fake takes it
  for (uint64_t n = 0; n < 3; n++) three.push_back({"cb", 2 * n, d});
  ASSERT_TRUE(a.Send(1, eight));
  ASSERT_TRUE(WaitFor([&] { return s.Stats().requests == 1; }, 10000));
  ASSERT_TRUE(b.Send(1, three));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(b.Recv(&r), 1);
  EXPECT_EQ(r->retry_after_ms, 250u);
  EXPECT_EQ(Statuses(r), std::vector<std::string>(
                             3,
                             "4 busy: 800 bytes of client requests await the mempool; retry "
                             "after 250 ms"));
  mir__api__submit_response__free_unpacked(r, nullptr);
  s.mempool->hold = false;
  s.Release();
  ASSERT_EQ(a.Recv(&r), 1);
  EXPECT_EQ(Statuses(r), std::vector<std::string>(8, "0 "));
  mir__api__submit_response__free_unpacked(r, nullptr);
  std::vector<mirtest::Tx> twelve;
  for (uint64_t n = 0; n < 12; n++) twelve.push_back({"cb", 2 * n, d});
  ASSERT_TRUE(b.Send(2, twelve));  // 1,200 bytes alone: taken
  ASSERT_EQ(b.Recv(&r), 1);
  EXPECT_EQ(Statuses(r), std::vector<std::string>(12, "0 "));
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.Stats().requests_busy, 1u);
}

TEST(ClientService, ClientCertificatesBindTheClientId) {
  // With client certificates required: alice's certificate submits as alice and not as bob (not
  // even as the stream's first transaction); bob's submits as bob; a replica's certificate, from
  // the same CA but naming no client, is refused on Submit and Subscribe (UNAUTHENTICATED); a
  // connection without a certificate, or with one from another CA, fails its handshake. A
  // subscriber counts for its certificate's client, whatever client_id it filters by.
  reptest::TempDir tmp;
  Pki pki(tmp.path());
  mir_replica_client_limits l = Service::Limits();
  l.max_subscribers_per_client = 1;
  Service s(l, 1000, &pki);
  s.Append(2);
  mirtest::Tls alice = pki.For("alice"), bob = pki.For("bob"), none = pki.For("");
  mirtest::Tls other = pki.For("alice-other");
  mirtest::Tls replica = pki.For("");
  replica.cert = pki.cert;
  replica.key = pki.key;
  Channel ca(s.addr, &alice, true), cb(s.addr, &bob, true), cr(s.addr, &replica, true);
  SubmitStream sa(ca.get());
  ASSERT_TRUE(sa.Send(1, {{"alice", 0, "x"}, {"bob", 2, "x"}}));
  Mir__Api__SubmitResponse *r = nullptr;
  ASSERT_EQ(sa.Recv(&r), 1);
  EXPECT_EQ(Statuses(r),
            (std::vector<std::string>{"0 ", "5 client id differs from the certificate's (alice)"}));
  mir__api__submit_response__free_unpacked(r, nullptr);
  SubmitStream sa2(ca.get());
  ASSERT_TRUE(sa2.Send(1, {{"bob", 4, "x"}}));
  ASSERT_EQ(sa2.Recv(&r), 1);
  EXPECT_EQ(Statuses(r),
            std::vector<std::string>{"5 client id differs from the certificate's (alice)"});
  mir__api__submit_response__free_unpacked(r, nullptr);
  SubmitStream sb(cb.get());
  ASSERT_TRUE(sb.Send(1, {{"bob", 0, "x"}}));
  ASSERT_EQ(sb.Recv(&r), 1);
  EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
  mir__api__submit_response__free_unpacked(r, nullptr);
  EXPECT_EQ(s.mempool->accepted, 2u);
  SubmitStream sr(cr.get());
  EXPECT_EQ(sr.Recv(&r, 5000), -1);
  EXPECT_EQ(sr.status(), GRPC_STATUS_UNAUTHENTICATED);
  EXPECT_NE(sr.details().find("names no client"), std::string::npos) << sr.details();
  Subscription subr(cr.get(), 0);
  Mir__Api__Delivery *d = nullptr;
  EXPECT_EQ(subr.Next(&d, 5000), -1);
  EXPECT_EQ(subr.status(), GRPC_STATUS_UNAUTHENTICATED);
  EXPECT_GE(s.Stats().unauthenticated, 2u);
  // alice holds her one subscriber slot, also when she filters by bob's id.
  Subscription suba(ca.get(), 0, 120000, "bob");
  EXPECT_EQ(Read(suba, 2), Range(0, 2));
  Subscription suba2(ca.get(), 0);
  EXPECT_EQ(suba2.Next(&d, 5000), -1);
  EXPECT_NE(suba2.details().find("for client alice"), std::string::npos) << suba2.details();
  for (const mirtest::Tls *t : {&none, &other}) {
    Channel c(s.addr, t, true);
    grpc_status_code code = GRPC_STATUS_OK;
    EXPECT_EQ(mirtest::GetStatus(c.get(), 3000, &code), nullptr);
    EXPECT_EQ(code, GRPC_STATUS_UNAVAILABLE);
  }
}

}  // namespace
