// Tests of the availability module (certificate = packed batch): the RequestCert round trip
// through the mempool, VerifyCert on valid and invalid certificates, RequestTransactions, the
// bound on requests in flight, and the whole path in a manual-mode node with a real mempool.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "availability.h"
#include "mempool.h"
#include "mir/alloc.h"
#include "mir/node.h"
#include "mir/registry.h"
#include "trantor_common.h"
}

namespace {

struct Tx {
  std::string client;
  uint64_t no;
  std::string data;
};

// The k-th client id whose bucket among n is b.
std::string Client(uint32_t b, int k = 0, uint32_t n = 4) {
  for (int i = 0;; i++) {
    std::string id = "cl-" + std::to_string(i);
    if (trantor_bucket_of(id.c_str(), n) == b && k-- == 0) return id;
  }
}

// Returns an owned Batch of txs.
Trantor__Batch *NewBatch(const std::vector<Tx> &txs) {
  auto *b = static_cast<Trantor__Batch *>(mir_xmalloc(sizeof(Trantor__Batch)));
  trantor__batch__init(b);
  b->txs = static_cast<Trantor__Tx **>(mir_xmalloc(txs.size() * sizeof(Trantor__Tx *) + 1));
  for (const Tx &t : txs) {
    auto *tx = static_cast<Trantor__Tx *>(mir_xmalloc(sizeof(Trantor__Tx)));
    trantor__tx__init(tx);
    tx->client_id = mir_xstrdup(t.client.c_str());
    tx->tx_no = t.no;
    tx->data.len = t.data.size();
    tx->data.data = static_cast<uint8_t *>(mir_xmemdup(t.data.data(), t.data.size()));
    b->txs[b->n_txs++] = tx;
  }
  return b;
}

std::string Pack(const std::vector<Tx> &txs) {
  Trantor__Batch *b = NewBatch(txs);
  std::string out(trantor__batch__get_packed_size(b), '\0');
  trantor__batch__pack(b, reinterpret_cast<uint8_t *>(out.data()));
  protobuf_c_message_free_unpacked(&b->base, nullptr);
  return out;
}

ProtobufCBinaryData Bytes(const std::string &s) {
  return {s.size(), static_cast<uint8_t *>(mir_xmemdup(s.data(), s.size()))};
}

Mir__Origin *NewOrigin(const char *module, uint64_t ctx) {
  auto *o = static_cast<Mir__Origin *>(mir_xmalloc(sizeof(Mir__Origin)));
  mir__origin__init(o);
  o->module = mir_xstrdup(module);
  o->context_id = ctx;
  return o;
}

std::vector<uint32_t> Copy(const uint32_t *b, size_t n) {
  return std::vector<uint32_t>(b, b + n);
}

// A batch of one transaction of client a whose tx_no 1 is encoded as a two-byte varint.
std::string NonMinimal(const std::string &a) {
  std::string tx =
      std::string("\x0a", 1) + static_cast<char>(a.size()) + a + "\x10\x81" + std::string(1, '\0');
  return std::string("\x0a", 1) + static_cast<char>(tx.size()) + tx;
}

class AvailabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    trantor_params_default(&params_);
    params_.num_buckets = 4;
    params_.max_batch_txs = 3;
    params_.max_batch_bytes = 100;
    params_.max_tx_bytes = 50;
    Create(0);
  }
  void TearDown() override {
    if (ops_ != nullptr) ops_->destroy(state_);
    for (mir_event *ev : seen_) mir_event_free(ev);
  }

  void Create(size_t requests_max) {
    if (ops_ != nullptr) ops_->destroy(state_);
    trantor_availability_config cfg = {};
    cfg.params = &params_;
    cfg.requests_max = requests_max;
    ASSERT_EQ(trantor_availability_batchcert.create(&cfg, &ops_, &state_), MIR_OK);
  }

  mir_err Apply(mir_event *ev) {
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, ev);
    mir_err err = ops_->apply(state_, &in, &out);
    mir_event_list_free(&in);
    while (mir_event *o = mir_event_list_pop(&out)) seen_.push_back(o);
    return err;
  }

  // Removes and returns the only output, which must be of type desc.
  mir_event *Only(const ProtobufCMessageDescriptor *desc) {
    EXPECT_EQ(seen_.size(), 1u);
    if (seen_.size() != 1 || !mir_event_is(seen_[0], desc)) return nullptr;
    mir_event *ev = seen_[0];
    seen_.clear();
    return ev;
  }

  mir_err RequestCert(std::vector<uint32_t> buckets, uint64_t ctx) {
    auto *rc = static_cast<Trantor__RequestCert *>(mir_xmalloc(sizeof(Trantor__RequestCert)));
    trantor__request_cert__init(rc);
    rc->epoch = 2;
    rc->n_buckets = buckets.size();
    rc->buckets = static_cast<uint32_t *>(mir_xmemdup(buckets.data(), buckets.size() * 4));
    rc->origin = NewOrigin("ordering/2/1", ctx);
    return Apply(mir_event_new("availability", "ordering", &rc->base));
  }

  // Verifies cert for buckets; returns (valid, reason).
  std::pair<bool, std::string> Verify(const std::string &cert, std::vector<uint32_t> buckets) {
    auto *vc = static_cast<Trantor__VerifyCert *>(mir_xmalloc(sizeof(Trantor__VerifyCert)));
    trantor__verify_cert__init(vc);
    vc->cert = Bytes(cert);
    vc->n_buckets = buckets.size();
    vc->buckets = static_cast<uint32_t *>(mir_xmemdup(buckets.data(), buckets.size() * 4));
    vc->origin = NewOrigin("iss", 9);
    EXPECT_EQ(Apply(mir_event_new("availability", "iss", &vc->base)), MIR_OK);
    mir_event *ev = Only(&trantor__cert_verified__descriptor);
    if (ev == nullptr) return {false, "no answer"};
    auto *cv = reinterpret_cast<Trantor__CertVerified *>(ev->payload);
    EXPECT_STREQ(ev->dest, "iss");
    EXPECT_EQ(cv->origin->context_id, 9u);
    std::pair<bool, std::string> r{cv->valid, cv->reason};
    mir_event_free(ev);
    return r;
  }

  // The transactions RequestTransactions gives for cert.
  std::vector<std::string> Fetch(const std::string &cert) {
    auto *rt = static_cast<Trantor__RequestTransactions *>(
        mir_xmalloc(sizeof(Trantor__RequestTransactions)));
    trantor__request_transactions__init(rt);
    rt->cert = Bytes(cert);
    rt->origin = NewOrigin("batchfetcher", 4);
    EXPECT_EQ(Apply(mir_event_new("availability", "batchfetcher", &rt->base)), MIR_OK);
    std::vector<std::string> out;
    mir_event *ev = Only(&trantor__provide_transactions__descriptor);
    if (ev == nullptr) return out;
    auto *pt = reinterpret_cast<Trantor__ProvideTransactions *>(ev->payload);
    EXPECT_STREQ(ev->dest, "batchfetcher");
    EXPECT_EQ(pt->origin->context_id, 4u);
    for (size_t i = 0; i < pt->batch->n_txs; i++) {
      out.push_back(std::string(pt->batch->txs[i]->client_id) + "/" +
                    std::to_string(pt->batch->txs[i]->tx_no));
    }
    mir_event_free(ev);
    return out;
  }

  trantor_availability_stats Stats() {
    trantor_availability_stats s;
    trantor_availability_batchcert_stats(state_, &s);
    return s;
  }

  trantor_params params_;
  const mir_module_ops *ops_ = nullptr;
  void *state_ = nullptr;
  std::vector<mir_event *> seen_;
};

TEST_F(AvailabilityTest, CertificateRoundTripThroughTheMempool) {
  // RequestCert asks the mempool for a batch of the same epoch and buckets; the batch comes
  // back packed as the certificate to the original requester, and that certificate verifies and
  // yields the same transactions.
  ASSERT_EQ(RequestCert({1, 3}, 42), MIR_OK);
  mir_event *req = Only(&trantor__request_batch__descriptor);
  ASSERT_NE(req, nullptr);
  auto *rb = reinterpret_cast<Trantor__RequestBatch *>(req->payload);
  EXPECT_STREQ(req->dest, "mempool");
  EXPECT_EQ(rb->epoch, 2u);
  EXPECT_EQ(Copy(rb->buckets, rb->n_buckets), (std::vector<uint32_t>{1, 3}));
  EXPECT_STREQ(rb->origin->module, "availability");

  std::vector<Tx> txs = {{Client(1), 0, "one"}, {Client(3), 5, "three"}};
  auto *nb = static_cast<Trantor__NewBatch *>(mir_xmalloc(sizeof(Trantor__NewBatch)));
  trantor__new_batch__init(nb);
  nb->batch = NewBatch(txs);
  nb->origin = NewOrigin("availability", rb->origin->context_id);
  mir_event_free(req);
  ASSERT_EQ(Apply(mir_event_new("availability", "mempool", &nb->base)), MIR_OK);

  mir_event *ev = Only(&trantor__new_cert__descriptor);
  ASSERT_NE(ev, nullptr);
  auto *nc = reinterpret_cast<Trantor__NewCert *>(ev->payload);
  EXPECT_STREQ(ev->dest, "ordering/2/1");
  EXPECT_EQ(nc->origin->context_id, 42u);
  std::string cert(reinterpret_cast<char *>(nc->cert.data), nc->cert.len);
  mir_event_free(ev);
  EXPECT_EQ(cert, Pack(txs));
  EXPECT_EQ(cert.size() <= trantor_availability_batchcert.cert_bytes_max(&params_), true);
  EXPECT_EQ(Verify(cert, {1, 3}).first, true);
  EXPECT_EQ(Fetch(cert), (std::vector<std::string>{Client(1) + "/0", Client(3) + "/5"}));
  // The answer came once: a second NewBatch for the same context is stale.
  auto *again = static_cast<Trantor__NewBatch *>(mir_xmalloc(sizeof(Trantor__NewBatch)));
  trantor__new_batch__init(again);
  again->origin = NewOrigin("availability", 0);
  ASSERT_EQ(Apply(mir_event_new("availability", "mempool", &again->base)), MIR_OK);
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(Stats().stale, 1u);
}

TEST_F(AvailabilityTest, EmptyCertificateIsValid) {
  // The certificate of an empty batch (zero bytes) is valid for any buckets, even none.
  EXPECT_TRUE(Verify("", {}).first);
  EXPECT_TRUE(Verify("", {0}).first);
  EXPECT_TRUE(Fetch("").empty());
}

TEST_F(AvailabilityTest, VerifyCertRejectsBadCertificatesWithAReason) {
  // Garbage bytes, a transaction of another bucket, an oversized certificate, too many
  // transactions, too much data, a transaction twice, a bad client id and a non-canonical
  // encoding are each invalid, with a reason naming the problem.
  std::string a = Client(1), b = Client(2);
  struct Case {
    std::string cert;
    std::vector<uint32_t> buckets;
    std::string reason_part;
  } cases[] = {
      {"\xff\xff\xff\xff\xff", {1}, "does not decode"},
      {Pack({{a, 0, "x"}, {b, 0, "y"}}), {1, 3}, "bucket"},
      {std::string(trantor_availability_batchcert.cert_bytes_max(&params_) + 1, '\0'),
       {1},
       "bytes"},
      {Pack({{a, 0, "x"}, {a, 1, "x"}, {a, 2, "x"}, {a, 3, "x"}}), {1}, "transactions"},
      {Pack({{a, 0, std::string(50, 'x')}, {a, 1, std::string(50, 'x')}, {a, 2, "x"}}),
       {1},
       "data bytes"},
      {Pack({{a, 0, std::string(51, 'x')}}), {1}, "data bytes"},
      {Pack({{a, 7, "x"}, {a, 7, "y"}}), {1}, "twice"},
      {Pack({{"", 0, "x"}}), {1}, "client id"},
      {Pack({{a, 0, "x"}}) + std::string("\x58\x01", 2), {1}, "canonical"},
      {NonMinimal(a), {1}, "canonical"},
      {Pack({{a, 0, "x"}}), {}, "bucket"},
  };
  for (const Case &c : cases) {
    auto [valid, reason] = Verify(c.cert, c.buckets);
    EXPECT_FALSE(valid) << c.reason_part;
    EXPECT_NE(reason.find(c.reason_part), std::string::npos) << reason;
  }
  EXPECT_EQ(Stats().verified_invalid, sizeof(cases) / sizeof(cases[0]));
  EXPECT_TRUE(Verify(Pack({{a, 0, "x"}, {b, 0, "y"}}), {2, 1}).first);
}

TEST_F(AvailabilityTest, InvalidCertificateYieldsNoTransactions) {
  // RequestTransactions answers an undecodable or invalid certificate with an empty batch, the
  // same at every node, and counts it.
  EXPECT_TRUE(Fetch("\xff\xff\xff").empty());
  std::string a = Client(0);
  EXPECT_TRUE(Fetch(Pack({{a, 1, "x"}, {a, 1, "x"}})).empty());
  EXPECT_EQ(Fetch(Pack({{a, 1, "x"}})).size(), 1u);
  EXPECT_EQ(Stats().provided_invalid, 2u);
}

TEST_F(AvailabilityTest, RequestTransactionsTakesTheBatchItsVerifyCertDecoded) {
  // A certificate VerifyCert found valid is not decoded again for the RequestTransactions of the
  // same bytes: the answer is the same, from the batch kept. The batch is used once; an invalid
  // certificate is not kept (RequestTransactions, which checks no buckets, decodes it and finds
  // it valid); one never verified is decoded as before.
  using V = std::vector<std::string>;
  std::string a = Client(1), b = Client(3);
  std::string c1 = Pack({{a, 0, "x"}, {b, 2, "y"}});
  std::string c2 = Pack({{a, 1, "z"}});
  std::string c3 = Pack({{b, 9, "w"}});
  EXPECT_TRUE(Verify(c1, {1, 3}).first);
  EXPECT_FALSE(Verify(c2, {3}).first); /* bucket 1 not among them */
  EXPECT_EQ(Fetch(c1), (V{a + "/0", b + "/2"}));
  EXPECT_EQ(Stats().provided_cached, 1u);
  EXPECT_EQ(Fetch(c1), (V{a + "/0", b + "/2"}));
  EXPECT_EQ(Fetch(c2), (V{a + "/1"}));
  EXPECT_EQ(Fetch(c3), (V{b + "/9"}));
  EXPECT_EQ(Stats().provided_cached, 1u);
  EXPECT_EQ(Stats().provided, 4u);
}

TEST_F(AvailabilityTest, KeptBatchesAreBounded) {
  // 65 valid certificates verified, one more than the 64 batches kept (BC_CACHE_ENTRIES): the
  // oldest left and is decoded when asked for, the others are taken as kept, in any order.
  std::vector<std::string> certs;
  for (uint64_t i = 0; i < 65; i++) certs.push_back(Pack({{Client(1), i, "x"}}));
  for (const std::string &c : certs) EXPECT_TRUE(Verify(c, {1}).first);
  EXPECT_EQ(Fetch(certs[0]), (std::vector<std::string>{Client(1) + "/0"}));
  EXPECT_EQ(Stats().provided_cached, 0u);
  for (uint64_t i = 64; i >= 1; i--) {
    EXPECT_EQ(Fetch(certs[i]), (std::vector<std::string>{Client(1) + "/" + std::to_string(i)}));
  }
  EXPECT_EQ(Stats().provided_cached, 64u);
}

TEST_F(AvailabilityTest, RequestsBeyondTheBoundGetAnEmptyCertificate) {
  // With requests_max requests waiting for the mempool, a further RequestCert is answered at
  // once with the certificate of an empty batch instead of growing state.
  Create(1);
  ASSERT_EQ(RequestCert({0}, 1), MIR_OK);
  mir_event_free(Only(&trantor__request_batch__descriptor));
  ASSERT_EQ(RequestCert({0}, 2), MIR_OK);
  mir_event *ev = Only(&trantor__new_cert__descriptor);
  ASSERT_NE(ev, nullptr);
  auto *nc = reinterpret_cast<Trantor__NewCert *>(ev->payload);
  EXPECT_EQ(nc->origin->context_id, 2u);
  EXPECT_EQ(nc->cert.len, 0u);
  mir_event_free(ev);
  EXPECT_EQ(Stats().busy, 1u);
}

TEST_F(AvailabilityTest, MalformedLocalRequestsAreWiringErrors) {
  // A RequestCert for a bucket that does not exist stops the node with a message.
  EXPECT_EQ(RequestCert({4}, 1), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("bucket 4"), std::string::npos);
}

// ---- the path through a manual-mode node ----

// A passive module that keeps every event it gets.
struct Sink {
  std::vector<mir_event *> got;
  ~Sink() {
    for (mir_event *ev : got) mir_event_free(ev);
  }
};

mir_err sink_apply(void *state, mir_event_list *in, mir_event_list *) {
  auto *s = static_cast<Sink *>(state);
  while (mir_event *ev = mir_event_list_pop(in)) {
    if (!mir_event_is(ev, &mir__init__descriptor)) {
      s->got.push_back(ev);
    } else {
      mir_event_free(ev);
    }
  }
  return MIR_OK;
}

const mir_module_ops sink_ops = {
    "sink", MIR_MODULE_PASSIVE, sink_apply, nullptr, nullptr, nullptr, false, nullptr};

void Drain(mir_node *n) {
  size_t applied = 0;
  do {
    ASSERT_EQ(mir_node_step(n, &applied), MIR_OK);
  } while (applied > 0);
}

TEST(AvailabilityNode, OrderingGetsACertificateOfPendingTransactions) {
  // In a node with the real mempool, a segment's RequestCert comes back as NewCert holding the
  // pending transactions of its buckets; the timeout path goes through the timer module id.
  mir_registry_add_framework();
  trantor_params p;
  trantor_params_default(&p);
  p.num_buckets = 2;
  p.max_batch_txs = 2;
  mir_node_config nc;
  mir_node_config_default(&nc);
  nc.mode = MIR_NODE_MANUAL;
  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("n0", &nc, &node), MIR_OK);
  trantor_mempool_config mc = {};
  mc.params = &p;
  mir_dsl *mp = nullptr;
  ASSERT_EQ(trantor_mempool_new(&mc, &mp), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "mempool", &mir_dsl_ops, mp), MIR_OK);
  trantor_availability_config ac = {};
  ac.params = &p;
  const mir_module_ops *ops = nullptr;
  void *state = nullptr;
  ASSERT_EQ(trantor_availability_batchcert.create(&ac, &ops, &state), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "availability", ops, state), MIR_OK);
  Sink ordering, timer;
  ASSERT_EQ(mir_node_add_module(node, "ordering", &sink_ops, &ordering), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "timer", &sink_ops, &timer), MIR_OK);
  ASSERT_EQ(mir_node_start(node), MIR_OK);

  std::string a = Client(1, 0, 2), b = Client(1, 1, 2), c = Client(0, 0, 2);
  auto *nt = static_cast<Trantor__NewTransactions *>(mir_xmalloc(sizeof(Trantor__NewTransactions)));
  trantor__new_transactions__init(nt);
  Trantor__Batch *txs = NewBatch({{c, 0, "c"}, {a, 0, "a"}, {b, 0, "b"}});
  nt->txs = txs->txs;
  nt->n_txs = txs->n_txs;
  txs->txs = nullptr;
  txs->n_txs = 0;
  protobuf_c_message_free_unpacked(&txs->base, nullptr);
  auto *rc = static_cast<Trantor__RequestCert *>(mir_xmalloc(sizeof(Trantor__RequestCert)));
  trantor__request_cert__init(rc);
  rc->buckets = static_cast<uint32_t *>(mir_xmalloc(sizeof(uint32_t)));
  rc->buckets[0] = 1;
  rc->n_buckets = 1;
  rc->origin = NewOrigin("ordering/0/1", 3);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_new("mempool", "client", &nt->base));
  mir_event_list_push(&in, mir_event_new("availability", "ordering/0/1", &rc->base));
  ASSERT_EQ(mir_node_inject(node, &in), MIR_OK);
  Drain(node);

  ASSERT_EQ(ordering.got.size(), 1u);
  ASSERT_TRUE(mir_event_is(ordering.got[0], &trantor__new_cert__descriptor));
  auto *cert = reinterpret_cast<Trantor__NewCert *>(ordering.got[0]->payload);
  EXPECT_STREQ(ordering.got[0]->dest, "ordering/0/1");
  EXPECT_EQ(cert->origin->context_id, 3u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(cert->cert.data), cert->cert.len),
            Pack({{a, 0, "a"}, {b, 0, "b"}}));
  EXPECT_TRUE(timer.got.empty());  // a full batch: no timeout needed
  mir_node_free(node);
}

}  // namespace
