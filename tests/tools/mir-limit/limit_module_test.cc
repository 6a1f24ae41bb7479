// The limit pipeline's module (server/tools/mir-limit/limit.h) driven through its apply function,
// without a node: the sequencer keeps each transaction once however many servers forward it, a
// server answers at its ingress as Trantor's mempool would (duplicates, windows, back-pressure),
// the sequencer never numbers beyond what the slowest server acknowledged, a lost delivery stops
// a server, and peers' messages that do not belong are dropped and counted.
#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "limit.h"
#include "limit/limit.pb-c.h"
#include "mir/event.h"
#include "mir/metrics.h"
}

namespace {

const char *const kIds[] = {"0", "1", "2", "3"};

// The application: records what was applied.
struct Applied {
  std::vector<uint64_t> sns;
  std::vector<std::vector<std::pair<std::string, uint64_t>>> txs;
  static mir_err Apply(void *ud, uint64_t sn, uint64_t, Trantor__Tx *const *t, size_t n) {
    auto *a = static_cast<Applied *>(ud);
    a->sns.push_back(sn);
    a->txs.emplace_back();
    for (size_t i = 0; i < n; i++) a->txs.back().emplace_back(t[i]->client_id, t[i]->tx_no);
    return MIR_OK;
  }
};

// A transaction (owned, for a message under construction).
Trantor__Tx *Tx(const char *client, uint64_t no, size_t len = 8) {
  auto *tx = static_cast<Trantor__Tx *>(malloc(sizeof(Trantor__Tx)));
  trantor__tx__init(tx);
  tx->client_id = strdup(client);
  tx->tx_no = no;
  tx->data.len = len;
  tx->data.data = static_cast<uint8_t *>(calloc(1, len));
  return tx;
}

// What one apply call emitted: sends (destinations, decoded limit message) and TxsAccepted.
struct Out {
  struct Send {
    std::vector<std::string> dests;
    std::string type;
    ProtobufCMessage *msg = nullptr;  // owned
  };
  std::vector<Send> sends;
  std::vector<std::vector<int>> accepted;  // statuses of each TxsAccepted
  ~Out() {
    for (auto &s : sends) protobuf_c_message_free_unpacked(s.msg, nullptr);
  }
  template <class T>
  const T *Find(const ProtobufCMessageDescriptor *d, size_t nth = 0) const {
    for (auto &s : sends) {
      if (s.type == d->name && nth-- == 0) return reinterpret_cast<const T *>(s.msg);
    }
    return nullptr;
  }
  size_t Count(const ProtobufCMessageDescriptor *d) const {
    size_t n = 0;
    for (auto &s : sends) n += s.type == d->name;
    return n;
  }
};

class LimitModule : public ::testing::Test {
 protected:
  void Make(size_t self, uint64_t forward_max_txs = 1000, uint64_t sns_ahead_max = 64) {
    mir_limit_config c = {};
    c.ids = kIds;
    c.n = 4;
    c.self = self;
    c.app.apply_batch = Applied::Apply;
    c.app.user_data = &applied_;
    c.client_window = 16;
    c.max_tx_bytes = 1024;
    c.max_batch_txs = 100;
    c.max_batch_bytes = 1 << 20;
    c.forward_max_txs = forward_max_txs;
    c.forward_max_bytes = 1 << 20;
    c.sns_ahead_max = sns_ahead_max;
    c.bytes_ahead_max = 1 << 20;
    ASSERT_EQ(MIR_OK, mir_limit_new(&c, &state_));
  }
  void TearDown() override {
    if (state_ != nullptr) mir_limit_ops.destroy(state_);
  }
  // The module's counter called name (label value, or any), read from its metric set.
  uint64_t Read(const char *name, const char *value = nullptr) const {
    return static_cast<uint64_t>(mir_metrics_read(mir_limit_ops.metrics(state_), name, value));
  }
  // Applies the events (consumed) and decodes what came out into o.
  mir_err Apply(mir_event_list *in, Out *o) {
    mir_event_list out = MIR_EVENT_LIST_INIT;
    mir_err err = mir_limit_ops.apply(state_, in, &out);
    mir_event_list_free(in);
    MIR_EVENT_LIST_FOREACH(&out, ev) {
      if (mir_event_is(ev, &mir__send_message__descriptor)) {
        auto *sm = reinterpret_cast<Mir__SendMessage *>(ev->payload);
        Out::Send s;
        for (size_t i = 0; i < sm->n_destinations; i++) s.dests.push_back(sm->destinations[i]);
        s.type = sm->msg->type;
        const ProtobufCMessageDescriptor *ds[] = {
            &mir__limit__forward__descriptor, &mir__limit__deliver__descriptor,
            &mir__limit__consumed__descriptor, &mir__limit__ack__descriptor};
        for (auto *d : ds) {
          if (s.type == d->name) {
            s.msg = protobuf_c_message_unpack(d, nullptr, sm->msg->data.len, sm->msg->data.data);
          }
        }
        o->sends.push_back(std::move(s));
      } else if (mir_event_is(ev, &trantor__txs_accepted__descriptor)) {
        auto *acc = reinterpret_cast<Trantor__TxsAccepted *>(ev->payload);
        EXPECT_STREQ(ev->dest, "client");
        EXPECT_EQ(acc->origin->context_id, 7u);
        o->accepted.emplace_back(acc->status, acc->status + acc->n_status);
      }
    }
    mir_event_list_free(&out);
    return err;
  }
  static void Push(mir_event_list *l, const char *from, const ProtobufCMessage *msg) {
    mir_event_list_push(
        l, mir_event_message_received(from, mir_message_pack(MIR_LIMIT_MODULE_ID, msg)));
  }
  static void Forward(mir_event_list *l, const char *from, std::vector<Trantor__Tx *> txs) {
    Mir__Limit__Forward f = MIR__LIMIT__FORWARD__INIT;
    f.txs = txs.data();
    f.n_txs = txs.size();
    Push(l, from, &f.base);
    for (auto *t : txs) trantor__tx__free_unpacked(t, nullptr);
  }
  static void Deliver(mir_event_list *l, const char *from, uint64_t sn,
                      std::vector<Trantor__Tx *> txs) {
    Mir__Limit__Deliver d = MIR__LIMIT__DELIVER__INIT;
    d.sn = sn;
    d.txs = txs.data();
    d.n_txs = txs.size();
    Push(l, from, &d.base);
    for (auto *t : txs) trantor__tx__free_unpacked(t, nullptr);
  }
  static void Ack(mir_event_list *l, const char *from, uint64_t next_sn) {
    Mir__Limit__Ack a = MIR__LIMIT__ACK__INIT;
    a.next_sn = next_sn;
    Push(l, from, &a.base);
  }
  static void NewTxs(mir_event_list *l, std::vector<Trantor__Tx *> txs) {
    auto *nt = static_cast<Trantor__NewTransactions *>(malloc(sizeof(Trantor__NewTransactions)));
    trantor__new_transactions__init(nt);
    nt->n_txs = txs.size();
    nt->txs = static_cast<Trantor__Tx **>(calloc(txs.size() + 1, sizeof(Trantor__Tx *)));
    for (size_t i = 0; i < txs.size(); i++) nt->txs[i] = txs[i];
    nt->origin = static_cast<Mir__Origin *>(malloc(sizeof(Mir__Origin)));
    mir__origin__init(nt->origin);
    nt->origin->module = strdup("client");
    nt->origin->context_id = 7;
    mir_event_list_push(l, mir_event_new(MIR_LIMIT_MODULE_ID, "client", &nt->base));
  }
  Applied applied_;
  void *state_ = nullptr;
};

TEST_F(LimitModule, TheSequencerKeepsATransactionForwardedTwiceOnce) {
  // Servers 1 and 2 forward the same transaction (the SDK submits to several): the sequencer
  // numbers it once, sends the sn to the three others and counts the copy as consumed, which the
  // sn reports (no report of its own).
  Make(0);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Forward(&in, "1", {Tx("c", 0), Tx("c", 1)});
  Forward(&in, "2", {Tx("c", 0)});
  Out o;
  ASSERT_EQ(MIR_OK, Apply(&in, &o));
  ASSERT_EQ(applied_.sns, std::vector<uint64_t>({0}));
  EXPECT_EQ(applied_.txs[0].size(), 2u);
  auto *d = o.Find<Mir__Limit__Deliver>(&mir__limit__deliver__descriptor);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->sn, 0u);
  EXPECT_EQ(d->n_txs, 2u);
  EXPECT_EQ(o.sends[0].dests, std::vector<std::string>({"1", "2", "3"}));
  EXPECT_EQ(o.Count(&mir__limit__consumed__descriptor), 0u);
  const Mir__Limit__Consumed *c = d->consumed;
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->n_txs, 4u);
  EXPECT_EQ(c->txs[1], 2u);
  EXPECT_EQ(c->txs[2], 1u);
  EXPECT_EQ(Read("mir_limit_sequencer_transactions_total", "numbered"), 2u);
  EXPECT_EQ(Read("mir_limit_sequencer_transactions_total", "duplicate"), 1u);
}

TEST_F(LimitModule, AServerAnswersBusyBeyondWhatTheSequencerHasNotConsumed) {
  // With room for 2 forwarded transactions, the third is MEMPOOL_FULL; once the sequencer
  // reports both consumed, a new one is accepted and forwarded to it.
  Make(1, 2);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  NewTxs(&in, {Tx("c", 0), Tx("c", 1), Tx("c", 2)});
  Out o1;
  ASSERT_EQ(MIR_OK, Apply(&in, &o1));
  ASSERT_EQ(o1.accepted.size(), 1u);
  EXPECT_EQ(o1.accepted[0],
            std::vector<int>({TRANTOR__TX_STATUS__TX_ACCEPTED, TRANTOR__TX_STATUS__TX_ACCEPTED,
                              TRANTOR__TX_STATUS__TX_MEMPOOL_FULL}));
  auto *f = o1.Find<Mir__Limit__Forward>(&mir__limit__forward__descriptor);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->n_txs, 2u);
  EXPECT_EQ(o1.sends[0].dests, std::vector<std::string>({"0"}));

  uint64_t txs[4] = {0, 2, 0, 0}, bytes[4] = {0, 16, 0, 0};
  Mir__Limit__Consumed c = MIR__LIMIT__CONSUMED__INIT;
  c.txs = txs;
  c.n_txs = 4;
  c.bytes = bytes;
  c.n_bytes = 4;
  Push(&in, "0", &c.base);
  NewTxs(&in, {Tx("c", 2)});
  Out o2;
  ASSERT_EQ(MIR_OK, Apply(&in, &o2));
  ASSERT_EQ(o2.accepted.size(), 1u);
  EXPECT_EQ(o2.accepted[0], std::vector<int>({TRANTOR__TX_STATUS__TX_ACCEPTED}));
}

TEST_F(LimitModule, IngressAnswersDuplicateAndOutOfWindowAfterADelivery) {
  // Server 1 applies sn 0 from the sequencer (and acknowledges it: with 4 sns allowed ahead, an
  // Ack is due after each); then the delivered transaction is a DUPLICATE and one beyond the
  // client's window OUT_OF_WINDOW.
  Make(1, 1000, 4);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Deliver(&in, "0", 0, {Tx("c", 0)});
  Out o1;
  ASSERT_EQ(MIR_OK, Apply(&in, &o1));
  EXPECT_EQ(applied_.sns, std::vector<uint64_t>({0}));
  auto *a = o1.Find<Mir__Limit__Ack>(&mir__limit__ack__descriptor);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->next_sn, 1u);
  NewTxs(&in, {Tx("c", 0), Tx("c", 1 + 16), Tx("c", 1)});
  Out o2;
  ASSERT_EQ(MIR_OK, Apply(&in, &o2));
  ASSERT_EQ(o2.accepted.size(), 1u);
  EXPECT_EQ(o2.accepted[0], std::vector<int>({TRANTOR__TX_STATUS__TX_DUPLICATE,
                                              TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW,
                                              TRANTOR__TX_STATUS__TX_ACCEPTED}));
}

TEST_F(LimitModule, ALostDeliveryStopsTheServer) {
  // sn 1 arriving before sn 0 means a delivery was lost (the pipeline does not retransmit).
  Make(2);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Deliver(&in, "0", 1, {Tx("c", 0)});
  Out o;
  EXPECT_EQ(MIR_EPROTO, Apply(&in, &o));
  EXPECT_TRUE(applied_.sns.empty());
}

TEST_F(LimitModule, MessagesThatDoNotBelongAreDroppedAndCounted) {
  // A Deliver from a server that is not the sequencer, a Forward to a server that is not the
  // sequencer, and a message from outside the membership change nothing and are counted.
  Make(1);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Deliver(&in, "2", 0, {Tx("c", 0)});
  Forward(&in, "0", {Tx("c", 0)});
  Ack(&in, "9", 3);
  Out o;
  ASSERT_EQ(MIR_OK, Apply(&in, &o));
  EXPECT_TRUE(applied_.sns.empty());
  EXPECT_TRUE(o.sends.empty());
  EXPECT_EQ(Read("mir_limit_dropped_messages_total"), 3u);
}

TEST_F(LimitModule, TheSequencerWaitsForTheSlowestServersAcknowledgement) {
  // With one sn allowed beyond the slowest server, the second sn waits until all three others
  // acknowledged the first; two acknowledgements are not enough.
  Make(0, 1000, 1);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Forward(&in, "1", {Tx("c", 0)});
  Out o1;
  ASSERT_EQ(MIR_OK, Apply(&in, &o1));
  Forward(&in, "1", {Tx("c", 1)});
  Out o2;
  ASSERT_EQ(MIR_OK, Apply(&in, &o2));
  EXPECT_EQ(applied_.sns, std::vector<uint64_t>({0}));
  EXPECT_EQ(o2.Count(&mir__limit__deliver__descriptor), 0u);
  Ack(&in, "1", 1);
  Ack(&in, "2", 1);
  Out o3;
  ASSERT_EQ(MIR_OK, Apply(&in, &o3));
  EXPECT_EQ(applied_.sns, std::vector<uint64_t>({0}));
  Ack(&in, "3", 1);
  Out o4;
  ASSERT_EQ(MIR_OK, Apply(&in, &o4));
  EXPECT_EQ(applied_.sns, std::vector<uint64_t>({0, 1}));
  EXPECT_EQ(o4.Count(&mir__limit__deliver__descriptor), 1u);
}

TEST_F(LimitModule, ReportsAndAcknowledgementsTravelAloneOnlyWhenDue) {
  // Copies that are dropped are reported on their own only once a server's unreported count
  // reached half its bound (2 of 4); a server acknowledges after a quarter of the sequencer's
  // bound of sns (2 of 8), not after every sn.
  Make(0, 4);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  Forward(&in, "1", {Tx("c", 0)});
  Out o1;
  ASSERT_EQ(MIR_OK, Apply(&in, &o1));
  EXPECT_EQ(o1.Count(&mir__limit__deliver__descriptor), 1u);
  Forward(&in, "2", {Tx("c", 0)});
  Out o2;
  ASSERT_EQ(MIR_OK, Apply(&in, &o2));
  EXPECT_TRUE(o2.sends.empty());
  Forward(&in, "2", {Tx("c", 0)});
  Out o3;
  ASSERT_EQ(MIR_OK, Apply(&in, &o3));
  auto *c = o3.Find<Mir__Limit__Consumed>(&mir__limit__consumed__descriptor);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->txs[2], 2u);

  mir_limit_ops.destroy(state_);
  state_ = nullptr;
  Make(1, 1000, 8);
  Deliver(&in, "0", 0, {Tx("c", 0)});
  Out o4;
  ASSERT_EQ(MIR_OK, Apply(&in, &o4));
  EXPECT_EQ(o4.Count(&mir__limit__ack__descriptor), 0u);
  Deliver(&in, "0", 1, {Tx("c", 1)});
  Out o5;
  ASSERT_EQ(MIR_OK, Apply(&in, &o5));
  auto *a = o5.Find<Mir__Limit__Ack>(&mir__limit__ack__descriptor);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->next_sn, 2u);
}

}  // namespace
