// Tests of the crypto and hasher modules inside a node: requests from a client module are
// answered through their origins by the active (worker pool) and passive variants; the pool
// serves many requests and splits VerifyMany; overflow, bad requests and stopping with work
// queued are handled.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
#include "mir/node.h"
}

namespace {

// A byte string viewing s, which must outlive the use (a named string or a literal).
ProtobufCBinaryData Part(const std::string &s) {
  ProtobufCBinaryData b;
  b.len = s.size();
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(s.data()));
  return b;
}
ProtobufCBinaryData Part(const char *literal) {
  ProtobufCBinaryData b;
  b.len = strlen(literal);
  b.data = reinterpret_cast<uint8_t *>(const_cast<char *>(literal));
  return b;
}

// What the client saw of one result event.
struct Result {
  std::string type, src, origin_module;
  uint64_t ctx = 0;
  bool ok = false, all_ok = false;
  std::string node_id;
  std::vector<uint8_t> sig;
  std::vector<bool> oks;
  std::vector<std::vector<uint8_t>> digests;
};

// A passive module that sends requests on Init (and in reaction to results) and records every
// result; the test thread waits on it.
struct Client {
  std::function<void(Client *, mir_event_list *)> on_init;
  std::function<void(Client *, const Result &, mir_event_list *)> on_result;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result> results;

  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    // A liveness bound, not a timing assertion: the work takes milliseconds.
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return results.size() >= n; });
  }
  std::vector<Result> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return results;
  }
};

Result Record(const mir_event *ev) {
  Result r;
  r.type = mir_event_type_name(ev);
  r.src = ev->src;
  const Mir__Origin *origin = nullptr;
  if (mir_event_is(ev, &mir__sign_result__descriptor)) {
    auto *p = reinterpret_cast<const Mir__SignResult *>(ev->payload);
    r.sig.assign(p->signature.data, p->signature.data + p->signature.len);
    origin = p->origin;
  } else if (mir_event_is(ev, &mir__verify_result__descriptor)) {
    auto *p = reinterpret_cast<const Mir__VerifyResult *>(ev->payload);
    r.ok = p->ok;
    r.node_id = p->node_id;
    origin = p->origin;
  } else if (mir_event_is(ev, &mir__verify_many_result__descriptor)) {
    auto *p = reinterpret_cast<const Mir__VerifyManyResult *>(ev->payload);
    for (size_t i = 0; i < p->n_ok; i++) r.oks.push_back(p->ok[i]);
    r.all_ok = p->all_ok;
    origin = p->origin;
  } else if (mir_event_is(ev, &mir__hash_result__descriptor)) {
    auto *p = reinterpret_cast<const Mir__HashResult *>(ev->payload);
    for (size_t i = 0; i < p->n_digests; i++) {
      r.digests.emplace_back(p->digests[i].data, p->digests[i].data + p->digests[i].len);
    }
    origin = p->origin;
  }
  if (origin != nullptr) {
    r.origin_module = origin->module;
    r.ctx = origin->context_id;
  }
  return r;
}

mir_err client_apply(void *state, mir_event_list *in, mir_event_list *out) {
  auto *c = static_cast<Client *>(state);
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) {
      if (c->on_init) c->on_init(c, out);
      continue;
    }
    Result r = Record(ev);
    if (c->on_result) c->on_result(c, r, out);
    std::lock_guard<std::mutex> lock(c->mu);
    c->results.push_back(r);
    c->cv.notify_all();
  }
  return MIR_OK;
}

const mir_module_ops client_ops = {
    "client", MIR_MODULE_PASSIVE, client_apply, nullptr, nullptr, nullptr, false, nullptr};

const char *kIds[] = {"0", "1", "2", "3"};

// Key set of node "0" over nodes 0..3, derived from a fixed seed.
mir_keyset *Keys(mir_sig_scheme scheme = MIR_SIG_ED25519, const char *own = "0") {
  mir_keyset *ks = nullptr;
  EXPECT_EQ(mir_keyset_new_pseudo(scheme, 99, kIds, 4, own, &ks), MIR_OK);
  return ks;
}

// Signature of node id over parts, made with an independent key set.
std::vector<uint8_t> SignAs(const char *id, const std::vector<ProtobufCBinaryData> &parts) {
  mir_keyset *ks = Keys(MIR_SIG_ED25519, id);
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t len = 0;
  EXPECT_EQ(mir_keyset_sign(ks, parts.data(), parts.size(), sig, &len), MIR_OK);
  mir_keyset_free(ks);
  return std::vector<uint8_t>(sig, sig + len);
}

// Builds a VerifyManyRequest to "crypto" from "client" with the given (data, sig, node) items.
struct Item {
  std::vector<std::string> data;
  std::vector<uint8_t> sig;
  std::string node;
};
mir_event *VerifyMany(const std::vector<Item> &items, uint64_t ctx) {
  auto *req = static_cast<Mir__VerifyManyRequest *>(mir_xmalloc(sizeof(Mir__VerifyManyRequest)));
  mir__verify_many_request__init(req);
  req->n_items = items.size();
  req->items = static_cast<Mir__SignedData **>(mir_xcalloc(items.size(), sizeof(void *)));
  for (size_t i = 0; i < items.size(); i++) {
    auto *sd = static_cast<Mir__SignedData *>(mir_xmalloc(sizeof(Mir__SignedData)));
    mir__signed_data__init(sd);
    sd->n_data = items[i].data.size();
    sd->data = static_cast<ProtobufCBinaryData *>(
        mir_xcalloc(sd->n_data ? sd->n_data : 1, sizeof(ProtobufCBinaryData)));
    for (size_t k = 0; k < sd->n_data; k++) {
      sd->data[k].len = items[i].data[k].size();
      sd->data[k].data =
          static_cast<uint8_t *>(mir_xmemdup(items[i].data[k].data(), items[i].data[k].size()));
    }
    sd->signature.len = items[i].sig.size();
    sd->signature.data =
        static_cast<uint8_t *>(mir_xmemdup(items[i].sig.data(), items[i].sig.size()));
    sd->node_id = mir_xstrdup(items[i].node.c_str());
    req->items[i] = sd;
  }
  req->origin = static_cast<Mir__Origin *>(mir_xmalloc(sizeof(Mir__Origin)));
  mir__origin__init(req->origin);
  req->origin->module = mir_xstrdup("client");
  req->origin->context_id = ctx;
  return mir_event_new("crypto", "client", &req->base);
}

// A node "0" with the client, the given crypto module and a hasher.
// The crypto module's metrics, read from its set in the registry (either variant).
struct CryptoStats {
  uint64_t signed_count, verified_count, failed_count, dropped_count, queued_max, workers;
};
CryptoStats crypto_stats(void *state) {
  const mir_metrics *m = mir_crypto_module_ops.metrics(state);
  auto rd = [m](const char *name) {
    return static_cast<uint64_t>(mir_metrics_read(m, name, nullptr));
  };
  return CryptoStats{rd("mir_crypto_signs_total"),           rd("mir_crypto_verifies_total"),
                     rd("mir_crypto_verify_failures_total"), rd("mir_crypto_shed_total"),
                     rd("mir_crypto_queue_depth_max"),       rd("mir_crypto_workers")};
}

struct TestNode {
  mir_node *node = nullptr;
  void *crypto_state = nullptr;

  TestNode(Client *client, const mir_module_ops *ops, void *crypto_state_in)
      : crypto_state(crypto_state_in) {
    EXPECT_EQ(mir_node_new("0", nullptr, &node), MIR_OK);
    void *hasher = nullptr;
    EXPECT_EQ(mir_hasher_module_new(&hasher), MIR_OK);
    EXPECT_EQ(mir_node_add_module(node, "client", &client_ops, client), MIR_OK);
    EXPECT_EQ(mir_node_add_module(node, "crypto", ops, crypto_state), MIR_OK);
    EXPECT_EQ(mir_node_add_module(node, "hasher", &mir_hasher_module_ops, hasher), MIR_OK);
  }
  ~TestNode() { mir_node_free(node); }
  CryptoStats Stats() { return crypto_stats(crypto_state); }
};

void *ActiveState(size_t workers, size_t queue_max = 65536, size_t chunk = 8) {
  mir_crypto_config cfg;
  mir_crypto_config_default(&cfg);
  cfg.workers = workers;
  cfg.queue_max = queue_max;
  cfg.verify_many_chunk = chunk;
  void *state = nullptr;
  EXPECT_EQ(mir_crypto_module_new(Keys(), &cfg, &state), MIR_OK);
  return state;
}

void *SyncState() {
  void *state = nullptr;
  EXPECT_EQ(mir_crypto_sync_module_new(Keys(), &state), MIR_OK);
  return state;
}

// The sign / verify / verify-many conversation of the origin tests: sign, then verify the
// signature as node 0 (ok), as node 1 (wrong node), tampered, and a VerifyMany of all three
// plus an unknown signer.
void SignThenVerify(Client *c) {
  static const std::string a = "ab", b = "c";
  c->on_init = [](Client *, mir_event_list *out) {
    std::vector<ProtobufCBinaryData> parts = {Part(a), Part(b)};
    mir_event_list_push(out, mir_event_sign_request("crypto", "client", parts.data(), 2, 1));
  };
  c->on_result = [](Client *, const Result &r, mir_event_list *out) {
    if (r.type != "mir.SignResult") return;
    std::vector<ProtobufCBinaryData> parts = {Part(a), Part(b)};
    std::vector<ProtobufCBinaryData> moved = {Part("a"), Part("bc")};
    const uint8_t *s = r.sig.data();
    size_t n = r.sig.size();
    mir_event_list_push(
        out, mir_event_verify_request("crypto", "client", parts.data(), 2, s, n, "0", 2));
    mir_event_list_push(
        out, mir_event_verify_request("crypto", "client", parts.data(), 2, s, n, "1", 3));
    mir_event_list_push(
        out, mir_event_verify_request("crypto", "client", moved.data(), 2, s, n, "0", 4));
    mir_event_list_push(out, VerifyMany({{{a, b}, r.sig, "0"},
                                         {{"a", "bc"}, r.sig, "0"},
                                         {{a, b}, r.sig, "1"},
                                         {{a, b}, r.sig, "stranger"}},
                                        5));
  };
}

void CheckSignThenVerify(Client *c) {
  ASSERT_TRUE(c->WaitFor(5));
  std::vector<Result> rs = c->Snapshot();
  ASSERT_EQ(rs.size(), 5u);
  std::vector<const Result *> by_ctx(6, nullptr);
  for (const Result &r : rs) {
    ASSERT_LT(r.ctx, 6u);
    by_ctx[r.ctx] = &r;
    EXPECT_EQ(r.origin_module, "client");
    EXPECT_EQ(r.src, "crypto");
  }
  for (int i = 1; i <= 5; i++) ASSERT_NE(by_ctx[i], nullptr) << i;
  EXPECT_EQ(by_ctx[1]->type, "mir.SignResult");
  EXPECT_EQ(by_ctx[1]->sig, SignAs("0", {Part("ab"), Part("c")}));
  EXPECT_TRUE(by_ctx[2]->ok);
  EXPECT_EQ(by_ctx[2]->node_id, "0");
  EXPECT_FALSE(by_ctx[3]->ok);
  EXPECT_EQ(by_ctx[3]->node_id, "1");
  EXPECT_FALSE(by_ctx[4]->ok);
  EXPECT_EQ(by_ctx[5]->type, "mir.VerifyManyResult");
  EXPECT_EQ(by_ctx[5]->oks, (std::vector<bool>{true, false, false, false}));
  EXPECT_FALSE(by_ctx[5]->all_ok);
}

}  // namespace

// The active module under a running node signs and verifies for a client module: every result
// reaches origin.module with the request's context id, and the verdicts are right.
TEST(CryptoModule, ActiveAnswersThroughOrigins) {
  Client client;
  SignThenVerify(&client);
  TestNode n(&client, &mir_crypto_module_ops, ActiveState(2));
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  CheckSignThenVerify(&client);
  EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
  CryptoStats s = n.Stats();
  EXPECT_EQ(s.signed_count, 1u);
  EXPECT_EQ(s.verified_count, 7u);
  EXPECT_EQ(s.failed_count, 5u);
  EXPECT_EQ(s.dropped_count, 0u);
}

// The passive variant gives the same answers, inline, with no worker threads.
TEST(CryptoModule, PassiveAnswersThroughOrigins) {
  Client client;
  SignThenVerify(&client);
  TestNode n(&client, &mir_crypto_sync_module_ops, SyncState());
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  CheckSignThenVerify(&client);
  EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
  EXPECT_EQ(n.Stats().workers, 0u);
}

// The passive variant is deterministic: in debug mode the same requests give byte-identical
// results in the same order, twice.
TEST(CryptoModule, PassiveIsDeterministic) {
  std::vector<std::string> runs;
  for (int run = 0; run < 2; run++) {
    mir_node_config cfg;
    mir_node_config_default(&cfg);
    cfg.mode = MIR_NODE_DEBUG;
    mir_node *node = nullptr;
    ASSERT_EQ(mir_node_new("0", &cfg, &node), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node, "crypto", &mir_crypto_sync_module_ops, SyncState()),
              MIR_OK);
    ASSERT_EQ(mir_node_start(node), MIR_OK);
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    for (uint64_t i = 0; i < 10; i++) {
      std::string d = "data " + std::to_string(i);
      std::vector<ProtobufCBinaryData> parts = {Part(d)};
      mir_event_list_push(&in, mir_event_sign_request("crypto", "client", parts.data(), 1, i));
    }
    ASSERT_EQ(mir_node_debug_apply(node, &in, &out), MIR_OK);
    std::string all;
    MIR_EVENT_LIST_FOREACH(&out, ev) {
      Result r = Record(ev);
      all += std::to_string(r.ctx) + ":" + std::string(r.sig.begin(), r.sig.end()) + "|";
    }
    EXPECT_EQ(out.len, 10u);
    mir_event_list_free(&out);
    mir_node_free(node);
    runs.push_back(all);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// Through a pool of four workers, 2000 verify requests (every third tampered) and a 1000-item
// VerifyMany split into 8-item chunks are all answered, each with the right verdict.
TEST(CryptoModule, WorkerPoolAnswersManyRequestsCorrectly) {
  static const size_t kSingles = 2000, kItems = 1000;
  Client client;
  client.on_init = [](Client *, mir_event_list *out) {
    std::vector<Item> items;
    for (size_t i = 0; i < kSingles; i++) {
      std::string d = "m" + std::to_string(i);
      std::vector<ProtobufCBinaryData> parts = {Part(d)};
      std::vector<uint8_t> sig = SignAs(kIds[i % 4], parts);
      if (i % 3 == 0) sig[5] ^= 0x20;
      mir_event_list_push(out, mir_event_verify_request("crypto", "client", parts.data(), 1,
                                                        sig.data(), sig.size(), kIds[i % 4], i));
      if (i < kItems) items.push_back({{d}, sig, kIds[i % 4]});
    }
    mir_event_list_push(out, VerifyMany(items, kSingles));
  };
  TestNode n(&client, &mir_crypto_module_ops, ActiveState(4));
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  ASSERT_TRUE(client.WaitFor(kSingles + 1));
  std::vector<Result> rs = client.Snapshot();
  std::vector<int> seen(kSingles + 1, 0);
  for (const Result &r : rs) {
    ASSERT_LE(r.ctx, kSingles);
    seen[r.ctx]++;
    if (r.ctx < kSingles) {
      EXPECT_EQ(r.ok, r.ctx % 3 != 0) << r.ctx;
    } else {
      ASSERT_EQ(r.oks.size(), kItems);
      for (size_t i = 0; i < kItems; i++) EXPECT_EQ(r.oks[i], i % 3 != 0) << i;
      EXPECT_FALSE(r.all_ok);
    }
  }
  for (size_t i = 0; i <= kSingles; i++) EXPECT_EQ(seen[i], 1) << i;
  EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
  CryptoStats s = n.Stats();
  EXPECT_EQ(s.verified_count, kSingles + kItems);
  EXPECT_EQ(s.dropped_count, 0u);
  EXPECT_GE(s.queued_max, 1u);
}

// A VerifyMany whose chunks cannot fit the bounded queue is dropped and counted, and the node
// keeps serving: a later request is still answered.
TEST(CryptoModule, FullQueueDropsAndCounts) {
  Client client;
  client.on_init = [](Client *, mir_event_list *out) {
    std::vector<Item> items(10, Item{{"x"}, std::vector<uint8_t>(64, 0), "0"});
    mir_event_list_push(out, VerifyMany(items, 1));  // 10 one-item chunks > 4 slots
    std::vector<ProtobufCBinaryData> parts = {Part("y")};
    mir_event_list_push(out, mir_event_sign_request("crypto", "client", parts.data(), 1, 2));
  };
  TestNode n(&client, &mir_crypto_module_ops, ActiveState(1, 4, 1));
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  ASSERT_TRUE(client.WaitFor(1));
  std::vector<Result> rs = client.Snapshot();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].ctx, 2u);
  EXPECT_EQ(rs[0].type, "mir.SignResult");
  EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
  EXPECT_EQ(n.Stats().dropped_count, 1u);
}

// An empty VerifyMany is answered with no verdicts and all_ok true, by both variants.
TEST(CryptoModule, EmptyVerifyManyIsAnswered) {
  for (bool active : {true, false}) {
    Client client;
    client.on_init = [](Client *, mir_event_list *out) {
      mir_event_list_push(out, VerifyMany({}, 9));
    };
    TestNode n(&client, active ? &mir_crypto_module_ops : &mir_crypto_sync_module_ops,
               active ? ActiveState(1) : SyncState());
    ASSERT_EQ(mir_node_start(n.node), MIR_OK);
    ASSERT_TRUE(client.WaitFor(1));
    Result r = client.Snapshot()[0];
    EXPECT_EQ(r.ctx, 9u);
    EXPECT_TRUE(r.oks.empty());
    EXPECT_TRUE(r.all_ok);
  }
}

// A VerifyMany with more than MIR_CRYPTO_ITEMS_MAX items (which a peer could cause through a
// careless protocol) is answered at once with every item failed, by both variants, and the
// node keeps running.
TEST(CryptoModule, OversizedVerifyManyFailsEveryItem) {
  for (bool active : {true, false}) {
    Client client;
    client.on_init = [](Client *, mir_event_list *out) {
      mir_event_list_push(out, VerifyMany(std::vector<Item>(MIR_CRYPTO_ITEMS_MAX + 1), 3));
    };
    TestNode n(&client, active ? &mir_crypto_module_ops : &mir_crypto_sync_module_ops,
               active ? ActiveState(1) : SyncState());
    ASSERT_EQ(mir_node_start(n.node), MIR_OK);
    ASSERT_TRUE(client.WaitFor(1));
    Result r = client.Snapshot()[0];
    EXPECT_EQ(r.ctx, 3u);
    ASSERT_EQ(r.oks.size(), MIR_CRYPTO_ITEMS_MAX + 1u);
    EXPECT_EQ(std::count(r.oks.begin(), r.oks.end(), true), 0);
    EXPECT_FALSE(r.all_ok);
    EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
    EXPECT_EQ(n.Stats().verified_count, 0u);
  }
}

// Requests the module cannot answer are the requester's bug and stop the node with a clear
// error: an unexpected event type, a request without origin, a sign request without own key.
TEST(CryptoModule, BadRequestsStopTheNode) {
  struct Case {
    std::function<mir_event *()> make;
    bool own_key;
    mir_err want;
  };
  std::vector<Case> cases = {
      {[] { return mir_event_test_string("crypto", "client", "hello"); }, true, MIR_EPROTO},
      {[] {
         std::vector<ProtobufCBinaryData> parts = {Part("z")};
         mir_event *ev = mir_event_sign_request("crypto", "client", parts.data(), 1, 1);
         auto *req = reinterpret_cast<Mir__SignRequest *>(ev->payload);
         protobuf_c_message_free_unpacked(&req->origin->base, nullptr);
         req->origin = nullptr;
         return ev;
       },
       true, MIR_EPROTO},
      {[] {
         std::vector<ProtobufCBinaryData> parts = {Part("z")};
         return mir_event_sign_request("crypto", "client", parts.data(), 1, 1);
       },
       false, MIR_EINVAL},
  };
  for (const Case &c : cases) {
    for (bool active : {true, false}) {
      Client client;
      client.on_init = [&c](Client *, mir_event_list *out) { mir_event_list_push(out, c.make()); };
      mir_keyset *keys = Keys(MIR_SIG_ED25519, c.own_key ? "0" : nullptr);
      void *state = nullptr;
      if (active)
        ASSERT_EQ(mir_crypto_module_new(keys, nullptr, &state), MIR_OK);
      else
        ASSERT_EQ(mir_crypto_sync_module_new(keys, &state), MIR_OK);
      TestNode n(&client, active ? &mir_crypto_module_ops : &mir_crypto_sync_module_ops, state);
      ASSERT_EQ(mir_node_start(n.node), MIR_OK);
      EXPECT_EQ(mir_node_wait(n.node, 120000), c.want);
      EXPECT_NE(std::string(mir_node_last_error(n.node)).find("crypto"), std::string::npos)
          << mir_node_last_error(n.node);
    }
  }
}

// Stopping a node while thousands of requests are still queued for one worker joins the worker
// promptly and frees every queued request (AddressSanitizer checks the latter).
TEST(CryptoModule, StopWithQueuedWork) {
  Client client;
  client.on_init = [](Client *, mir_event_list *out) {
    std::vector<ProtobufCBinaryData> parts = {Part("w")};
    for (uint64_t i = 0; i < 5000; i++) {
      mir_event_list_push(out, mir_event_sign_request("crypto", "client", parts.data(), 1, i));
    }
    mir_event_list_push(out, VerifyMany(std::vector<Item>(100, Item{{"w"}, {}, "1"}), 5000));
  };
  TestNode n(&client, &mir_crypto_module_ops, ActiveState(1));
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  ASSERT_TRUE(client.WaitFor(1));
  EXPECT_EQ(mir_node_stop(n.node), MIR_OK);
  CryptoStats s = n.Stats();
  EXPECT_EQ(s.workers, 0u);  // joined
  EXPECT_LE(client.Snapshot().size(), 5001u);
}

// A bad configuration is refused and the key set is freed with it.
TEST(CryptoModule, RejectsBadConfig) {
  mir_crypto_config cfg;
  mir_crypto_config_default(&cfg);
  cfg.queue_max = 0;
  void *state = nullptr;
  EXPECT_EQ(mir_crypto_module_new(Keys(), &cfg, &state), MIR_EINVAL);
  cfg.queue_max = 10;
  cfg.workers = MIR_CRYPTO_WORKERS_MAX + 1;
  EXPECT_EQ(mir_crypto_module_new(Keys(), &cfg, &state), MIR_EINVAL);
  EXPECT_EQ(state, nullptr);
}

// The hasher answers a two-item HashRequest through its origin with the digests of the library
// function, in order.
TEST(HasherModule, AnswersThroughOrigin) {
  Client client;
  client.on_init = [](Client *, mir_event_list *out) {
    std::vector<ProtobufCBinaryData> parts = {Part("ab"), Part("c")};
    mir_event *ev = mir_event_hash_request("hasher", "client", parts.data(), 2, 77);
    auto *req = reinterpret_cast<Mir__HashRequest *>(ev->payload);
    req->items = static_cast<Mir__HashData **>(mir_xrealloc(req->items, 2 * sizeof(void *)));
    req->items[1] = static_cast<Mir__HashData *>(mir_xmalloc(sizeof(Mir__HashData)));
    mir__hash_data__init(req->items[1]);
    req->n_items = 2;
    mir_event_list_push(out, ev);
  };
  TestNode n(&client, &mir_crypto_sync_module_ops, SyncState());
  ASSERT_EQ(mir_node_start(n.node), MIR_OK);
  ASSERT_TRUE(client.WaitFor(1));
  Result r = client.Snapshot()[0];
  EXPECT_EQ(r.type, "mir.HashResult");
  EXPECT_EQ(r.origin_module, "client");
  EXPECT_EQ(r.ctx, 77u);
  EXPECT_EQ(r.src, "hasher");
  ASSERT_EQ(r.digests.size(), 2u);
  std::vector<ProtobufCBinaryData> parts = {Part("ab"), Part("c")};
  uint8_t d0[MIR_HASH_LEN], d1[MIR_HASH_LEN];
  mir_hash_parts(parts.data(), 2, d0);
  mir_hash_parts(nullptr, 0, d1);
  EXPECT_EQ(r.digests[0], std::vector<uint8_t>(d0, d0 + MIR_HASH_LEN));
  EXPECT_EQ(r.digests[1], std::vector<uint8_t>(d1, d1 + MIR_HASH_LEN));
}
