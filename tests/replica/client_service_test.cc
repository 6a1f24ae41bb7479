// Tests of the client service (server/replica/client_service.h) in one process: the service runs
// as the active module of a real node next to a fake mempool, over a real ordered log, and a test
// client talks to it over gRPC on loopback. They show that Submit answers every request in order
// with a reason for each rejection, that bad input gets an error (and too much of it ends the
// stream), that Subscribe streams the log from any retained sn and waits for more, that a slow
// subscriber is cut, and that Status, unknown methods, stream limits and shutdown behave.
#include <gtest/gtest.h>

#include <chrono>
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
#include "mir/node.h"
#include "trantor_common.h"
}

namespace {

using mirtest::Channel;
using mirtest::SubmitStream;
using mirtest::Subscription;

// The fake mempool: data "full" is MEMPOOL_FULL, an odd tx_no OUT_OF_WINDOW, a repeated
// (client, tx_no) DUPLICATE, anything else ACCEPTED. Counts what it accepted.
struct FakeMempool {
  std::set<std::pair<std::string, uint64_t>> seen;
  size_t accepted = 0;
  size_t unknown_fields = 0; /* in the transactions it was handed */
};

mir_err MempoolApply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *m = static_cast<FakeMempool *>(state);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (!mir_event_is(ev, &trantor__new_transactions__descriptor)) continue;
    auto *nt = reinterpret_cast<const Trantor__NewTransactions *>(ev->payload);
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
    mir_event_list_push(out, mir_event_new(nt->origin->module, "mempool", &acc->base));
  }
  return MIR_OK;
}

void MempoolDestroy(void *state) {
  delete static_cast<FakeMempool *>(state);
}

const mir_module_ops kMempoolOps = {"fake-mempool", MIR_MODULE_PASSIVE, MempoolApply, nullptr,
                                    nullptr,        MempoolDestroy,     false};

size_t Peers(void *user, mir_client_peer *out, size_t cap) {
  (void)user;
  if (cap < 2) return 0;
  snprintf(out[0].id, sizeof(out[0].id), "b");
  out[0].connected = true;
  snprintf(out[1].id, sizeof(out[1].id), "c");
  out[1].connected = false;
  return 2;
}

// A node with the client service and the fake mempool over an ordered log in a temp folder.
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

  explicit Service(mir_replica_client_limits limits = Limits(), uint64_t retention = 1000) {
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
    mir_replica_client_limits l;
    l.max_request_bytes = 64 * 1024;
    l.max_txs_per_request = 16;
    l.max_submit_streams = 8;
    l.max_requests_in_flight = 4;
    l.max_subscribers = 4;
    l.subscriber_stall_ms = 30000;
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
  mir_client_service_stats Stats() {
    mir_client_service_stats st;
    mir_client_service_get_stats(svc, &st);
    return st;
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
  // Eight pipelined requests (more than the four allowed in flight) are answered once each, in
  // order; ingress checks and the mempool's verdicts come back with reasons, in transaction order.
  Service s;
  Channel ch(s.addr);
  SubmitStream st(ch.get());
  for (uint64_t id = 1; id <= 8; id++) {
    ASSERT_TRUE(st.Send(id, {{"cl", 2 * id, "ok"}}));
  }
  for (uint64_t id = 1; id <= 8; id++) {
    Mir__Api__SubmitResponse *r = nullptr;
    ASSERT_EQ(st.Recv(&r), 1);
    EXPECT_EQ(r->request_id, id);
    EXPECT_EQ(Statuses(r), std::vector<std::string>{"0 "});
    mir__api__submit_response__free_unpacked(r, nullptr);
  }
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
  EXPECT_EQ(s.Stats().txs_accepted, 9u);
  EXPECT_EQ(s.Stats().txs_rejected, 6u);
}

TEST(ClientService, BadInputGetsAnErrorAndTooMuchEndsTheStream) {
  // Undecodable bytes and too many transactions get a response with `error`; a message above
  // max_request_bytes ends the stream (RESOURCE_EXHAUSTED); seventeen malformed requests end it
  // with INVALID_ARGUMENT. The service keeps serving other streams.
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
    ASSERT_TRUE(st.SendRaw(std::string(70000, 'z')));
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
  EXPECT_GE(s.Stats().malformed, 18u);
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

}  // namespace
