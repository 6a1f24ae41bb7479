// Tests of the batch fetcher: log order kept when availability answers out of order, aborted
// slots, deduplication with the client progress (across and within batches, same result in any
// answer order), NewEpoch / SnapshotRequest / CheckpointNotice passed in log order with the
// client progress in the SnapshotRequest, RestoreState, and the queue bound.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

extern "C" {
#include "batchfetcher.h"
#include "mir/alloc.h"
#include "mir/registry.h"
}

namespace {

struct Tx {
  std::string client;
  uint64_t no;
  std::string data;
};

std::string Pack(const std::vector<Tx> &txs) {
  std::vector<Trantor__Tx> store(txs.size());
  std::vector<Trantor__Tx *> ptrs;
  for (size_t i = 0; i < txs.size(); i++) {
    trantor__tx__init(&store[i]);
    store[i].client_id = const_cast<char *>(txs[i].client.c_str());
    store[i].tx_no = txs[i].no;
    store[i].data.len = txs[i].data.size();
    store[i].data.data = reinterpret_cast<uint8_t *>(const_cast<char *>(txs[i].data.data()));
    ptrs.push_back(&store[i]);
  }
  Trantor__Batch b = TRANTOR__BATCH__INIT;
  b.n_txs = ptrs.size();
  b.txs = ptrs.data();
  std::string out(trantor__batch__get_packed_size(&b), '\0');
  trantor__batch__pack(&b, reinterpret_cast<uint8_t *>(out.data()));
  return out;
}

// One line per output event, in order: "<dest> <what>".
std::string Describe(const mir_event *ev) {
  std::string d = std::string(ev->dest) + " ";
  if (mir_event_is(ev, &trantor__deliver_batch__descriptor)) {
    auto *db = reinterpret_cast<const Trantor__DeliverBatch *>(ev->payload);
    d += "DeliverBatch sn=" + std::to_string(db->sn) + " epoch=" + std::to_string(db->epoch);
    for (size_t i = 0; i < db->n_txs; i++) {
      d += " " + std::string(db->txs[i]->client_id) + "/" + std::to_string(db->txs[i]->tx_no);
    }
  } else if (mir_event_is(ev, &trantor__txs_delivered__descriptor)) {
    auto *td = reinterpret_cast<const Trantor__TxsDelivered *>(ev->payload);
    d += "TxsDelivered";
    for (size_t i = 0; i < td->n_txs; i++) {
      d += " " + std::string(td->txs[i]->client_id) + "/" + std::to_string(td->txs[i]->tx_no);
      if (td->txs[i]->data.len != 0) d += "(with data)";
    }
  } else if (mir_event_is(ev, &trantor__new_epoch__descriptor)) {
    d += "NewEpoch " +
         std::to_string(reinterpret_cast<const Trantor__NewEpoch *>(ev->payload)->epoch);
  } else if (mir_event_is(ev, &trantor__snapshot_request__descriptor)) {
    auto *sr = reinterpret_cast<const Trantor__SnapshotRequest *>(ev->payload);
    d += "SnapshotRequest " + std::to_string(sr->epoch) + " progress";
    if (sr->client_progress == nullptr) d += " none";
    for (size_t i = 0; sr->client_progress != nullptr && i < sr->client_progress->n_clients; i++) {
      d += " " + std::string(sr->client_progress->clients[i]->client_id) + "<" +
           std::to_string(sr->client_progress->clients[i]->low_wm);
    }
  } else {
    d += mir_event_type_name(ev);
  }
  return d;
}

using Lines = std::vector<std::string>;

class BatchFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    trantor_params_default(&params_);
    params_.client_window = 8;
    Create(0);
  }
  void TearDown() override {
    mir_dsl_free(bf_);
    for (mir_event *ev : requests_) mir_event_free(ev);
  }

  void Create(size_t queue_max) {
    mir_dsl_free(bf_);
    trantor_batchfetcher_config cfg = {};
    cfg.params = &params_;
    cfg.queue_max = queue_max;
    ASSERT_EQ(trantor_batchfetcher_new(&cfg, &bf_), MIR_OK);
  }

  // Applies ev (takes ownership). RequestTransactions outputs are held back, as a fake
  // availability that answers later; everything else is described into lines_.
  mir_err Apply(mir_event *ev) {
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, ev);
    mir_err err = mir_dsl_ops.apply(bf_, &in, &out);
    mir_event_list_free(&in);
    while (mir_event *o = mir_event_list_pop(&out)) {
      if (mir_event_is(o, &trantor__request_transactions__descriptor)) {
        EXPECT_STREQ(o->dest, "availability");
        requests_.push_back(o);
      } else {
        lines_.push_back(Describe(o));
        mir_event_free(o);
      }
    }
    return err;
  }

  mir_err DeliverCert(uint64_t sn, const std::vector<Tx> &txs, bool aborted = false) {
    auto *dc = static_cast<Trantor__DeliverCert *>(mir_xmalloc(sizeof(Trantor__DeliverCert)));
    trantor__deliver_cert__init(dc);
    dc->sn = sn;
    dc->epoch = sn / 10;
    dc->aborted = aborted;
    std::string cert = aborted ? "" : Pack(txs);
    dc->cert.len = cert.size();
    dc->cert.data = static_cast<uint8_t *>(mir_xmemdup(cert.data(), cert.size()));
    return Apply(mir_event_new("batchfetcher", "iss", &dc->base));
  }

  // Answers the i-th held RequestTransactions (in request order) by decoding its certificate,
  // as the batch-certificate availability does.
  mir_err Answer(size_t i) {
    EXPECT_LT(i, requests_.size());
    mir_event *req = requests_[i];
    requests_[i] = nullptr;
    auto *rt = reinterpret_cast<Trantor__RequestTransactions *>(req->payload);
    auto *pt = static_cast<Trantor__ProvideTransactions *>(
        mir_xmalloc(sizeof(Trantor__ProvideTransactions)));
    trantor__provide_transactions__init(pt);
    pt->batch = trantor__batch__unpack(nullptr, rt->cert.len, rt->cert.data);
    EXPECT_NE(pt->batch, nullptr);
    pt->origin = rt->origin;
    rt->origin = nullptr;
    mir_event_free(req);
    return Apply(mir_event_new("batchfetcher", "availability", &pt->base));
  }

  mir_err Pass(ProtobufCMessage *payload) {
    return Apply(mir_event_new("batchfetcher", "iss", payload));
  }

  ProtobufCMessage *NewEpoch(uint64_t epoch) {
    auto *ne = static_cast<Trantor__NewEpoch *>(mir_xmalloc(sizeof(Trantor__NewEpoch)));
    trantor__new_epoch__init(ne);
    ne->epoch = epoch;
    return &ne->base;
  }

  ProtobufCMessage *SnapshotRequest(uint64_t epoch) {
    auto *sr =
        static_cast<Trantor__SnapshotRequest *>(mir_xmalloc(sizeof(Trantor__SnapshotRequest)));
    trantor__snapshot_request__init(sr);
    sr->epoch = epoch;
    sr->reply_to = mir_xstrdup(("checkpoint/" + std::to_string(epoch)).c_str());
    return &sr->base;
  }

  // The batch fetcher's metrics, read from its set in the registry.
  struct BfStats {
    uint64_t queued, txs, stale, duplicates, out_of_window;
  };
  BfStats Stats() {
    const mir_metrics *m = mir_dsl_metrics(bf_);
    const char *drops = "mir_batchfetcher_transactions_dropped_total";
    return BfStats{
        static_cast<uint64_t>(mir_metrics_read(m, "mir_batchfetcher_queued", nullptr)),
        static_cast<uint64_t>(mir_metrics_read(m, "mir_batchfetcher_transactions_total", nullptr)),
        static_cast<uint64_t>(mir_metrics_read(m, "mir_batchfetcher_stale_answers_total", nullptr)),
        static_cast<uint64_t>(mir_metrics_read(m, drops, "duplicate")),
        static_cast<uint64_t>(mir_metrics_read(m, drops, "out_of_window"))};
  }

  trantor_params params_;
  mir_dsl *bf_ = nullptr;
  std::vector<mir_event *> requests_;
  Lines lines_;
};

TEST_F(BatchFetcherTest, KeepsLogOrderWhenAnswersComeBackOutOfOrder) {
  // Certificates of sn 0, 1, 2 answered in the order 2, 0, 1 are delivered as 0, 1, 2: nothing
  // is output until the head is answered, then everything ready behind it.
  ASSERT_EQ(DeliverCert(0, {{"a", 0, "x"}}), MIR_OK);
  ASSERT_EQ(DeliverCert(1, {{"b", 0, "x"}}), MIR_OK);
  ASSERT_EQ(DeliverCert(2, {{"c", 0, "x"}}), MIR_OK);
  ASSERT_EQ(requests_.size(), 3u);
  ASSERT_EQ(Answer(2), MIR_OK);
  EXPECT_TRUE(lines_.empty());
  ASSERT_EQ(Answer(0), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app DeliverBatch sn=0 epoch=0 a/0", "mempool TxsDelivered a/0"}));
  lines_.clear();
  ASSERT_EQ(Answer(1), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app DeliverBatch sn=1 epoch=0 b/0", "mempool TxsDelivered b/0",
                           "app DeliverBatch sn=2 epoch=0 c/0", "mempool TxsDelivered c/0"}));
  EXPECT_EQ(Stats().queued, 0u);
}

TEST_F(BatchFetcherTest, AbortedSlotIsEmptyButWaitsForItsTurn) {
  // An aborted sn needs no fetch and delivers an empty batch, but only after the sns before it.
  ASSERT_EQ(DeliverCert(0, {{"a", 0, "x"}}), MIR_OK);
  ASSERT_EQ(DeliverCert(1, {}, /*aborted=*/true), MIR_OK);
  EXPECT_EQ(requests_.size(), 1u);
  EXPECT_TRUE(lines_.empty());
  ASSERT_EQ(Answer(0), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app DeliverBatch sn=0 epoch=0 a/0", "mempool TxsDelivered a/0",
                           "app DeliverBatch sn=1 epoch=0"}));
}

TEST_F(BatchFetcherTest, TransactionDeliveredTwiceIsKeptOnlyTheFirstTime) {
  // The same (client, tx_no) in sn 0 and sn 1 (even with other data), or twice within one
  // batch, reaches the app once; the mempool hears only of the kept ones, without data.
  ASSERT_EQ(DeliverCert(0, {{"a", 0, "first"}, {"b", 0, "x"}}), MIR_OK);
  ASSERT_EQ(DeliverCert(1, {{"a", 0, "again"}, {"a", 1, "y"}, {"a", 1, "y"}}), MIR_OK);
  ASSERT_EQ(DeliverCert(2, {{"b", 0, "x"}}), MIR_OK);
  ASSERT_EQ(Answer(1), MIR_OK);
  ASSERT_EQ(Answer(2), MIR_OK);
  ASSERT_EQ(Answer(0), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app DeliverBatch sn=0 epoch=0 a/0 b/0", "mempool TxsDelivered a/0 b/0",
                           "app DeliverBatch sn=1 epoch=0 a/1", "mempool TxsDelivered a/1",
                           "app DeliverBatch sn=2 epoch=0"}));
  EXPECT_EQ(Stats().duplicates, 3u);
  EXPECT_EQ(Stats().txs, 3u);
}

TEST_F(BatchFetcherTest, DeduplicationIsTheSameInAnyAnswerOrder) {
  // Two fetchers fed the same log but answered in different orders give identical output, so
  // correct nodes agree on which duplicates are dropped.
  std::vector<std::vector<Tx>> log = {{{"a", 1, "x"}, {"b", 0, "x"}},
                                      {{"a", 0, "x"}, {"a", 1, "z"}},
                                      {{"b", 0, "y"}, {"a", 2, "x"}, {"c", 9, "x"}},
                                      {{"a", 2, "x"}, {"c", 3, "x"}}};
  std::vector<std::vector<size_t>> orders = {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}};
  std::vector<Lines> outputs;
  for (const auto &order : orders) {
    Create(0);
    for (mir_event *ev : requests_) mir_event_free(ev);
    requests_.clear();
    lines_.clear();
    for (size_t sn = 0; sn < log.size(); sn++) ASSERT_EQ(DeliverCert(sn, log[sn]), MIR_OK);
    for (size_t i : order) ASSERT_EQ(Answer(i), MIR_OK);
    outputs.push_back(lines_);
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
  EXPECT_EQ(outputs[0][4], "app DeliverBatch sn=2 epoch=0 a/2");  // c/9: out of the window
  EXPECT_EQ(Stats().out_of_window, 1u);
}

TEST_F(BatchFetcherTest, PassesNewEpochAndSnapshotRequestInLogOrder) {
  // NewEpoch and SnapshotRequest wait behind an unanswered certificate and come out in log
  // order: NewEpoch to app and mempool, SnapshotRequest to app with the client progress of every
  // earlier sn and none of the later ones.
  ASSERT_EQ(DeliverCert(9, {{"a", 0, "x"}, {"a", 1, "x"}}), MIR_OK);
  ASSERT_EQ(Pass(NewEpoch(1)), MIR_OK);
  ASSERT_EQ(Pass(SnapshotRequest(1)), MIR_OK);
  ASSERT_EQ(DeliverCert(10, {{"b", 0, "x"}}), MIR_OK);
  auto *cn =
      static_cast<Trantor__CheckpointNotice *>(mir_xmalloc(sizeof(Trantor__CheckpointNotice)));
  trantor__checkpoint_notice__init(cn);
  ASSERT_EQ(Pass(&cn->base), MIR_OK);
  EXPECT_TRUE(lines_.empty());
  ASSERT_EQ(Answer(1), MIR_OK);
  EXPECT_TRUE(lines_.empty());
  ASSERT_EQ(Answer(0), MIR_OK);
  EXPECT_EQ(lines_,
            (Lines{"app DeliverBatch sn=9 epoch=0 a/0 a/1", "mempool TxsDelivered a/0 a/1",
                   "mempool NewEpoch 1", "app NewEpoch 1", "app SnapshotRequest 1 progress a<2",
                   "app DeliverBatch sn=10 epoch=1 b/0", "mempool TxsDelivered b/0",
                   "app trantor.CheckpointNotice"}));
}

TEST_F(BatchFetcherTest, RestoreStateResetsProgressAndDiscardsTheQueue) {
  // RestoreState takes the checkpoint's client progress, drops what was queued (late answers
  // for it are stale) and goes to app and mempool at once; later deliveries dedup against the
  // restored progress.
  ASSERT_EQ(DeliverCert(0, {{"a", 0, "x"}}), MIR_OK);
  ASSERT_EQ(Pass(NewEpoch(1)), MIR_OK);

  Trantor__ClientWatermark wm = TRANTOR__CLIENT_WATERMARK__INIT;
  wm.client_id = const_cast<char *>("a");
  wm.low_wm = 5;
  Trantor__ClientWatermark *wms[] = {&wm};
  Trantor__ClientProgress cp = TRANTOR__CLIENT_PROGRESS__INIT;
  cp.n_clients = 1;
  cp.clients = wms;
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.client_progress = &cp;
  Trantor__StableCheckpoint chkp = TRANTOR__STABLE_CHECKPOINT__INIT;
  chkp.sn = 20;
  chkp.snapshot = &snap;
  Trantor__RestoreState rs = TRANTOR__RESTORE_STATE__INIT;
  rs.checkpoint = &chkp;
  ASSERT_EQ(Pass(mir_message_clone(&rs.base)), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app trantor.RestoreState", "mempool trantor.RestoreState"}));
  lines_.clear();
  EXPECT_EQ(Stats().queued, 0u);

  ASSERT_EQ(Answer(0), MIR_OK);  // for the discarded sn 0
  EXPECT_TRUE(lines_.empty());
  EXPECT_EQ(Stats().stale, 1u);
  ASSERT_EQ(DeliverCert(20, {{"a", 4, "x"}, {"a", 5, "x"}}), MIR_OK);
  ASSERT_EQ(Answer(1), MIR_OK);
  EXPECT_EQ(lines_, (Lines{"app DeliverBatch sn=20 epoch=2 a/5", "mempool TxsDelivered a/5"}));
}

TEST_F(BatchFetcherTest, InvalidProgressInARestoreIsAnError) {
  // A checkpoint whose client progress is not canonical cannot be installed: the node stops
  // with a message instead of deduplicating differently from the others.
  Trantor__ClientWatermark wm = TRANTOR__CLIENT_WATERMARK__INIT;
  wm.client_id = const_cast<char *>("a");
  wm.low_wm = 5;
  uint64_t delivered[] = {5};
  wm.n_delivered = 1;
  wm.delivered = delivered;
  Trantor__ClientWatermark *wms[] = {&wm};
  Trantor__ClientProgress cp = TRANTOR__CLIENT_PROGRESS__INIT;
  cp.n_clients = 1;
  cp.clients = wms;
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.client_progress = &cp;
  Trantor__StableCheckpoint chkp = TRANTOR__STABLE_CHECKPOINT__INIT;
  chkp.snapshot = &snap;
  Trantor__RestoreState rs = TRANTOR__RESTORE_STATE__INIT;
  rs.checkpoint = &chkp;
  EXPECT_EQ(Pass(mir_message_clone(&rs.base)), MIR_EPROTO);
  EXPECT_NE(std::string(mir_error_detail()).find("RestoreState"), std::string::npos);
}

TEST_F(BatchFetcherTest, QueueBoundStopsTheNodeInsteadOfGrowing) {
  // Past queue_max entries waiting for availability, the fetcher reports an error (the log is
  // never dropped in part) and memory stays bounded.
  Create(2);
  ASSERT_EQ(DeliverCert(0, {{"a", 0, "x"}}), MIR_OK);
  ASSERT_EQ(Pass(NewEpoch(1)), MIR_OK);
  EXPECT_EQ(DeliverCert(1, {{"a", 1, "x"}}), MIR_EFULL);
  EXPECT_NE(std::string(mir_error_detail()).find("queue_max"), std::string::npos);
}

TEST_F(BatchFetcherTest, ManyEntriesWrapAroundTheRing) {
  // Hundreds of entries, each block of ten answered in reverse order while the next block is
  // queued (so the ring wraps many times), still come out in log order.
  const size_t n = 300, block = 10;
  for (size_t sn = 0; sn < n + block; sn++) {
    if (sn < n) {
      ASSERT_EQ(DeliverCert(sn, {{"c" + std::to_string(sn % 7), sn / 7, "x"}}), MIR_OK);
    }
    if (sn % 50 == 49) {
      ASSERT_EQ(Pass(NewEpoch(sn)), MIR_OK);
    }
    if (sn % block == block - 1 && sn >= 2 * block - 1) {
      for (size_t i = sn - block; i + 2 * block > sn; i--) ASSERT_EQ(Answer(i), MIR_OK);
    }
  }
  std::vector<uint64_t> sns;
  for (const std::string &l : lines_) {
    if (l.rfind("app DeliverBatch sn=", 0) == 0) sns.push_back(std::stoull(l.substr(20)));
  }
  ASSERT_EQ(sns.size(), n);
  for (size_t i = 0; i < n; i++) EXPECT_EQ(sns[i], i);
  EXPECT_EQ(Stats().txs, n);
  EXPECT_EQ(Stats().queued, 0u);
}

}  // namespace
