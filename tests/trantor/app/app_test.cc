// Tests of the app module: callbacks in log order, the Snapshot answer with the client progress
// from the request, errors and log-order breaks stopping the node with a message, and the whole
// delivery path (batch fetcher, availability, app) in a manual-mode node.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "app.h"
#include "availability.h"
#include "batchfetcher.h"
#include "mir/alloc.h"
#include "mir/node.h"
#include "mir/registry.h"
}

namespace {

using Log = std::vector<std::string>;

// The application: records every call; fail_apply_at makes apply_batch fail at that sn.
struct FakeApp {
  Log calls;
  uint64_t fail_apply_at = UINT64_MAX;
  std::string state = "genesis";
};

FakeApp *A(void *u) {
  return static_cast<FakeApp *>(u);
}

mir_err fake_apply(void *u, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs, size_t n) {
  if (sn == A(u)->fail_apply_at) {
    return static_cast<mir_err>(mir_error_set(MIR_EIO, "disk on fire"));
  }
  std::string c = "apply " + std::to_string(sn) + "@" + std::to_string(epoch);
  for (size_t i = 0; i < n; i++) {
    c += " " + std::string(txs[i]->client_id) + "/" + std::to_string(txs[i]->tx_no);
    A(u)->state += "+" + std::string(reinterpret_cast<char *>(txs[i]->data.data), txs[i]->data.len);
  }
  A(u)->calls.push_back(c);
  return MIR_OK;
}

mir_err fake_snapshot(void *u, uint64_t epoch, uint64_t sn, uint8_t **data, size_t *len) {
  A(u)->calls.push_back("snapshot " + std::to_string(epoch) + " " + std::to_string(sn));
  *len = A(u)->state.size();
  *data = static_cast<uint8_t *>(mir_xmemdup(A(u)->state.data(), *len));
  return MIR_OK;
}

mir_err fake_restore(void *u, const uint8_t *data, size_t len, uint64_t sn) {
  A(u)->state.assign(reinterpret_cast<const char *>(data), len);
  A(u)->calls.push_back("restore " + A(u)->state + " " + std::to_string(sn));
  return MIR_OK;
}

mir_err fake_new_epoch(void *u, uint64_t epoch, uint64_t first_sn) {
  A(u)->calls.push_back("epoch " + std::to_string(epoch) + " " + std::to_string(first_sn));
  return MIR_OK;
}

mir_err fake_checkpoint(void *u, const Trantor__StableCheckpoint *c) {
  A(u)->calls.push_back("checkpoint " + std::to_string(c->sn));
  return MIR_OK;
}

trantor_app MakeApp(FakeApp *f) {
  trantor_app app = {};
  app.apply_batch = fake_apply;
  app.snapshot = fake_snapshot;
  app.restore = fake_restore;
  app.new_epoch = fake_new_epoch;
  app.checkpoint = fake_checkpoint;
  app.user_data = f;
  return app;
}

ProtobufCMessage *DeliverBatch(uint64_t sn, uint64_t epoch, std::vector<std::string> clients) {
  auto *db = static_cast<Trantor__DeliverBatch *>(mir_xmalloc(sizeof(Trantor__DeliverBatch)));
  trantor__deliver_batch__init(db);
  db->sn = sn;
  db->epoch = epoch;
  db->txs = static_cast<Trantor__Tx **>(mir_xmalloc(clients.size() * sizeof(Trantor__Tx *) + 1));
  for (const std::string &c : clients) {
    auto *tx = static_cast<Trantor__Tx *>(mir_xmalloc(sizeof(Trantor__Tx)));
    trantor__tx__init(tx);
    tx->client_id = mir_xstrdup(c.c_str());
    tx->data.data = static_cast<uint8_t *>(mir_xmemdup(c.data(), c.size()));
    tx->data.len = c.size();
    db->txs[db->n_txs++] = tx;
  }
  return &db->base;
}

ProtobufCMessage *NewEpoch(uint64_t epoch, uint64_t first_sn) {
  auto *ne = static_cast<Trantor__NewEpoch *>(mir_xmalloc(sizeof(Trantor__NewEpoch)));
  trantor__new_epoch__init(ne);
  ne->epoch = epoch;
  ne->first_sn = first_sn;
  return &ne->base;
}

ProtobufCMessage *SnapshotRequest(uint64_t epoch, uint64_t sn, bool with_progress) {
  auto *sr = static_cast<Trantor__SnapshotRequest *>(mir_xmalloc(sizeof(Trantor__SnapshotRequest)));
  trantor__snapshot_request__init(sr);
  sr->epoch = epoch;
  sr->sn = sn;
  sr->reply_to = mir_xstrdup(("checkpoint/" + std::to_string(epoch)).c_str());
  if (with_progress) {
    Trantor__ClientWatermark wm = TRANTOR__CLIENT_WATERMARK__INIT;
    wm.client_id = const_cast<char *>("alice");
    wm.low_wm = 3;
    Trantor__ClientWatermark *wms[] = {&wm};
    Trantor__ClientProgress cp = TRANTOR__CLIENT_PROGRESS__INIT;
    cp.n_clients = 1;
    cp.clients = wms;
    sr->client_progress = reinterpret_cast<Trantor__ClientProgress *>(mir_message_clone(&cp.base));
  }
  return &sr->base;
}

// A RestoreState (or, with notice, a CheckpointNotice) for a checkpoint at sn.
ProtobufCMessage *Checkpoint(uint64_t sn, const std::string &app_data, bool notice) {
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.app_data.data = reinterpret_cast<uint8_t *>(const_cast<char *>(app_data.data()));
  snap.app_data.len = app_data.size();
  Trantor__StableCheckpoint chkp = TRANTOR__STABLE_CHECKPOINT__INIT;
  chkp.sn = sn;
  chkp.snapshot = &snap;
  if (notice) {
    Trantor__CheckpointNotice cn = TRANTOR__CHECKPOINT_NOTICE__INIT;
    cn.checkpoint = &chkp;
    return mir_message_clone(&cn.base);
  }
  Trantor__RestoreState rs = TRANTOR__RESTORE_STATE__INIT;
  rs.checkpoint = &chkp;
  return mir_message_clone(&rs.base);
}

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    app_ = MakeApp(&fake_);
    trantor_app_config cfg = {&app_, nullptr};
    ASSERT_EQ(trantor_app_module_new(&cfg, &dsl_), MIR_OK);
  }
  void TearDown() override {
    mir_dsl_free(dsl_);
    for (mir_event *ev : out_) mir_event_free(ev);
  }
  mir_err Apply(ProtobufCMessage *payload) {
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, mir_event_new("app", "batchfetcher", payload));
    mir_err err = mir_dsl_ops.apply(dsl_, &in, &out);
    mir_event_list_free(&in);
    while (mir_event *o = mir_event_list_pop(&out)) out_.push_back(o);
    return err;
  }

  FakeApp fake_;
  trantor_app app_;
  mir_dsl *dsl_ = nullptr;
  std::vector<mir_event *> out_;
};

TEST_F(AppTest, CallsTheCallbacksInLogOrder) {
  // Restore, epochs, batches, snapshot and checkpoint notice reach the application in exactly
  // the order of the events, with their arguments.
  ASSERT_EQ(Apply(Checkpoint(0, "s0", false)), MIR_OK);
  ASSERT_EQ(Apply(NewEpoch(0, 0)), MIR_OK);
  ASSERT_EQ(Apply(DeliverBatch(0, 0, {"a", "b"})), MIR_OK);
  ASSERT_EQ(Apply(DeliverBatch(1, 0, {})), MIR_OK);
  ASSERT_EQ(Apply(NewEpoch(1, 2)), MIR_OK);
  ASSERT_EQ(Apply(SnapshotRequest(1, 2, true)), MIR_OK);
  ASSERT_EQ(Apply(Checkpoint(2, "s2", true)), MIR_OK);
  ASSERT_EQ(Apply(DeliverBatch(2, 1, {"c"})), MIR_OK);
  EXPECT_EQ(fake_.calls, (Log{"restore s0 0", "epoch 0 0", "apply 0@0 a/0 b/0", "apply 1@0",
                              "epoch 1 2", "snapshot 1 2", "checkpoint 2", "apply 2@1 c/0"}));
}

TEST_F(AppTest, SnapshotGoesToReplyToWithTheRequestsClientProgress) {
  // The Snapshot answer carries the epoch, the application's data and the client progress the
  // request brought; a request without one gets an empty progress.
  ASSERT_EQ(Apply(DeliverBatch(0, 0, {"x"})), MIR_OK);
  ASSERT_EQ(Apply(SnapshotRequest(1, 1, true)), MIR_OK);
  ASSERT_EQ(Apply(SnapshotRequest(2, 1, false)), MIR_OK);
  ASSERT_EQ(out_.size(), 2u);
  auto *s1 = reinterpret_cast<Trantor__Snapshot *>(out_[0]->payload);
  EXPECT_STREQ(out_[0]->dest, "checkpoint/1");
  EXPECT_STREQ(out_[0]->src, "app");
  EXPECT_EQ(s1->epoch, 1u);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(s1->app_data.data), s1->app_data.len),
            "genesis+x");
  ASSERT_NE(s1->client_progress, nullptr);
  ASSERT_EQ(s1->client_progress->n_clients, 1u);
  EXPECT_STREQ(s1->client_progress->clients[0]->client_id, "alice");
  EXPECT_EQ(s1->client_progress->clients[0]->low_wm, 3u);
  auto *s2 = reinterpret_cast<Trantor__Snapshot *>(out_[1]->payload);
  EXPECT_STREQ(out_[1]->dest, "checkpoint/2");
  ASSERT_NE(s2->client_progress, nullptr);
  EXPECT_EQ(s2->client_progress->n_clients, 0u);
}

TEST_F(AppTest, CallbackErrorStopsTheNodeWithAMessage) {
  // An error from apply_batch is the module's error, with the callback, the sn and the
  // application's own detail in the message.
  fake_.fail_apply_at = 3;
  ASSERT_EQ(Apply(DeliverBatch(2, 0, {})), MIR_OK);
  EXPECT_EQ(Apply(DeliverBatch(3, 0, {"a"})), MIR_EIO);
  std::string detail = mir_error_detail();
  EXPECT_NE(detail.find("apply_batch at sn 3"), std::string::npos) << detail;
  EXPECT_NE(detail.find("disk on fire"), std::string::npos) << detail;
}

TEST_F(AppTest, BreakInTheLogOrderIsAnError) {
  // A skipped sn, or a NewEpoch or SnapshotRequest that does not start at the next sn, means
  // the log order broke upstream: the node stops before the application diverges.
  ASSERT_EQ(Apply(DeliverBatch(0, 0, {})), MIR_OK);
  EXPECT_EQ(Apply(DeliverBatch(2, 0, {})), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("next sn is 1"), std::string::npos);
  EXPECT_EQ(Apply(NewEpoch(1, 5)), MIR_EINVAL);
  EXPECT_EQ(Apply(SnapshotRequest(1, 0, false)), MIR_EINVAL);
  EXPECT_EQ(fake_.calls, (Log{"apply 0@0"}));
  ASSERT_EQ(Apply(Checkpoint(7, "s7", false)), MIR_OK);  // state transfer: the log goes on at 7
  EXPECT_EQ(Apply(DeliverBatch(7, 3, {})), MIR_OK);
}

TEST(AppModule, RequiredCallbacksAreChecked) {
  // A module without apply_batch, snapshot or restore cannot be created.
  FakeApp f;
  trantor_app app = MakeApp(&f);
  app.snapshot = nullptr;
  trantor_app_config cfg = {&app, nullptr};
  mir_dsl *d = nullptr;
  EXPECT_EQ(trantor_app_module_new(&cfg, &d), MIR_EINVAL);
  app = MakeApp(&f);
  app.new_epoch = nullptr;
  app.checkpoint = nullptr;
  ASSERT_EQ(trantor_app_module_new(&cfg, &d), MIR_OK);
  mir_dsl_free(d);
}

// ---- the delivery path in a manual-mode node ----

struct Sink {
  std::vector<mir_event *> got;
  ~Sink() {
    for (mir_event *ev : got) mir_event_free(ev);
  }
};

mir_err sink_apply(void *state, mir_event_list *in, mir_event_list *) {
  while (mir_event *ev = mir_event_list_pop(in)) {
    if (mir_event_is(ev, &mir__init__descriptor)) {
      mir_event_free(ev);
    } else {
      static_cast<Sink *>(state)->got.push_back(ev);
    }
  }
  return MIR_OK;
}

const mir_module_ops sink_ops = {
    "sink", MIR_MODULE_PASSIVE, sink_apply, nullptr, nullptr, nullptr, false, nullptr};

std::string PackBatch(std::vector<std::pair<std::string, uint64_t>> txs) {
  std::vector<Trantor__Tx> store(txs.size());
  std::vector<Trantor__Tx *> ptrs;
  for (size_t i = 0; i < txs.size(); i++) {
    trantor__tx__init(&store[i]);
    store[i].client_id = const_cast<char *>(txs[i].first.c_str());
    store[i].tx_no = txs[i].second;
    store[i].data.data = reinterpret_cast<uint8_t *>(const_cast<char *>(txs[i].first.data()));
    store[i].data.len = txs[i].first.size();
    ptrs.push_back(&store[i]);
  }
  Trantor__Batch b = TRANTOR__BATCH__INIT;
  b.n_txs = ptrs.size();
  b.txs = ptrs.data();
  std::string out(trantor__batch__get_packed_size(&b), '\0');
  trantor__batch__pack(&b, reinterpret_cast<uint8_t *>(out.data()));
  return out;
}

mir_event *DeliverCert(uint64_t sn, uint64_t epoch, const std::string &cert) {
  auto *dc = static_cast<Trantor__DeliverCert *>(mir_xmalloc(sizeof(Trantor__DeliverCert)));
  trantor__deliver_cert__init(dc);
  dc->sn = sn;
  dc->epoch = epoch;
  dc->cert.len = cert.size();
  dc->cert.data = static_cast<uint8_t *>(mir_xmemdup(cert.data(), cert.size()));
  return mir_event_new("batchfetcher", "iss", &dc->base);
}

TEST(AppPipeline, LogFromIssReachesTheApplicationInOrderDeduplicated) {
  // In a node with the batch fetcher, the batch-certificate availability and the app module, the
  // log iss delivers reaches the application in order, each transaction once; the checkpoint
  // instance gets one Snapshot with the application data and the client progress of the same
  // point of the log, and the mempool hears of delivered transactions and the new epoch.
  mir_registry_add_framework();
  trantor_params p;
  trantor_params_default(&p);
  mir_node_config nc;
  mir_node_config_default(&nc);
  nc.mode = MIR_NODE_MANUAL;
  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("n0", &nc, &node), MIR_OK);
  trantor_batchfetcher_config bc = {};
  bc.params = &p;
  mir_dsl *bf = nullptr;
  ASSERT_EQ(trantor_batchfetcher_new(&bc, &bf), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "batchfetcher", &mir_dsl_ops, bf), MIR_OK);
  trantor_availability_config ac = {};
  ac.params = &p;
  const mir_module_ops *ops = nullptr;
  void *state = nullptr;
  ASSERT_EQ(trantor_availability_batchcert.create(&ac, &ops, &state), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "availability", ops, state), MIR_OK);
  FakeApp fake;
  trantor_app app = MakeApp(&fake);
  trantor_app_config cfg = {&app, nullptr};
  mir_dsl *appm = nullptr;
  ASSERT_EQ(trantor_app_module_new(&cfg, &appm), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "app", &mir_dsl_ops, appm), MIR_OK);
  Sink mempool, checkpoint;
  ASSERT_EQ(mir_node_add_module(node, "mempool", &sink_ops, &mempool), MIR_OK);
  ASSERT_EQ(mir_node_add_module(node, "checkpoint", &sink_ops, &checkpoint), MIR_OK);
  ASSERT_EQ(mir_node_start(node), MIR_OK);

  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_new("batchfetcher", "iss", NewEpoch(0, 0)));
  mir_event_list_push(&in, DeliverCert(0, 0, PackBatch({{"alice", 0}, {"bob", 0}})));
  mir_event_list_push(&in, DeliverCert(1, 0, PackBatch({{"alice", 0}, {"alice", 1}})));
  mir_event_list_push(&in, mir_event_new("batchfetcher", "iss", NewEpoch(1, 2)));
  mir_event_list_push(&in, mir_event_new("batchfetcher", "iss", SnapshotRequest(1, 2, false)));
  mir_event_list_push(&in, DeliverCert(2, 1, "\xff\xff"));  // undecodable: delivers nothing
  mir_event_list_push(&in, DeliverCert(3, 1, PackBatch({{"bob", 1}})));
  ASSERT_EQ(mir_node_inject(node, &in), MIR_OK);
  size_t applied = 0;
  do {
    ASSERT_EQ(mir_node_step(node, &applied), MIR_OK);
  } while (applied > 0);

  EXPECT_EQ(fake.calls, (Log{"epoch 0 0", "apply 0@0 alice/0 bob/0", "apply 1@0 alice/1",
                             "epoch 1 2", "snapshot 1 2", "apply 2@1", "apply 3@1 bob/1"}));
  ASSERT_EQ(checkpoint.got.size(), 1u);
  EXPECT_STREQ(checkpoint.got[0]->dest, "checkpoint/1");
  auto *snap = reinterpret_cast<Trantor__Snapshot *>(checkpoint.got[0]->payload);
  EXPECT_EQ(std::string(reinterpret_cast<char *>(snap->app_data.data), snap->app_data.len),
            "genesis+alice+bob+alice");
  ASSERT_EQ(snap->client_progress->n_clients, 2u);
  EXPECT_STREQ(snap->client_progress->clients[0]->client_id, "alice");
  EXPECT_EQ(snap->client_progress->clients[0]->low_wm, 2u);
  EXPECT_EQ(snap->client_progress->clients[1]->low_wm, 1u);  // bob/1 comes after the snapshot
  Log to_mempool;
  for (mir_event *ev : mempool.got) to_mempool.push_back(mir_event_type_name(ev));
  EXPECT_EQ(to_mempool, (Log{"trantor.NewEpoch", "trantor.TxsDelivered", "trantor.TxsDelivered",
                             "trantor.NewEpoch", "trantor.TxsDelivered"}));
  mir_node_free(node);
}

}  // namespace
