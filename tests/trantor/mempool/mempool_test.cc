// Tests of the mempool module: admission and client windows, batches cut by count, bytes and
// timeout, bucket filtering, one proposal per epoch, re-proposal after NewEpoch, removal on
// delivery, restore, and the bounds on transactions, bytes, clients and waiting requests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "mempool.h"
#include "mir/alloc.h"
#include "mir/registry.h"
#include "pool.h"
#include "trantor_common.h"
}

namespace {

struct Tx {
  std::string client;
  uint64_t no;
  std::string data;
  bool operator==(const Tx &o) const { return client == o.client && no == o.no && data == o.data; }
};

std::ostream &operator<<(std::ostream &os, const Tx &t) {
  return os << "(" << t.client << "," << t.no << "," << t.data.size() << "B)";
}

// The k-th client id (of "cl-0", "cl-1", ...) whose bucket among n is b.
std::string Client(uint32_t b, int k = 0, uint32_t n = 4) {
  for (int i = 0;; i++) {
    std::string id = "cl-" + std::to_string(i);
    if (trantor_bucket_of(id.c_str(), n) == b && k-- == 0) return id;
  }
}

// Returns an owned Tx message.
Trantor__Tx *NewTx(const Tx &t) {
  auto *tx = static_cast<Trantor__Tx *>(mir_xmalloc(sizeof(Trantor__Tx)));
  trantor__tx__init(tx);
  tx->client_id = mir_xstrdup(t.client.c_str());
  tx->tx_no = t.no;
  tx->data.len = t.data.size();
  tx->data.data = static_cast<uint8_t *>(mir_xmemdup(t.data.data(), t.data.size()));
  return tx;
}

Mir__Origin *NewOrigin(const char *module, uint64_t ctx) {
  auto *o = static_cast<Mir__Origin *>(mir_xmalloc(sizeof(Mir__Origin)));
  mir__origin__init(o);
  o->module = mir_xstrdup(module);
  o->context_id = ctx;
  return o;
}

// A batch answer seen at the output: where it went and what it holds.
struct Answer {
  std::string dest;
  uint64_t ctx;
  std::vector<Tx> txs;
};

class MempoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mir_registry_add_framework();
    trantor_params_default(&params_);
    params_.num_buckets = 4;
    params_.max_batch_txs = 3;
    params_.max_batch_bytes = 100;
    params_.max_tx_bytes = 50;
    params_.client_window = 8;
    params_.mempool_max_txs = 10;
    params_.mempool_max_bytes = 200;
    params_.batch_timeout_ms = 50;
    Create();
  }
  void TearDown() override {
    mir_dsl_free(mp_);
    for (mir_event *ev : seen_) mir_event_free(ev);
  }

  void Create(size_t clients_max = 0, size_t requests_max = 0) {
    mir_dsl_free(mp_);
    mp_ = nullptr;
    trantor_mempool_config cfg = {};
    cfg.params = &params_;
    cfg.clients_max = clients_max;
    cfg.requests_max = requests_max;
    ASSERT_EQ(trantor_mempool_new(&cfg, &mp_), MIR_OK);
  }

  // Applies one event (takes ownership); outputs are kept for the helpers below.
  mir_err Apply(mir_event *ev) {
    mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&in, ev);
    mir_err err = mir_dsl_ops.apply(mp_, &in, &out);
    mir_event_list_free(&in);
    while (mir_event *o = mir_event_list_pop(&out)) seen_.push_back(o);
    return err;
  }

  // Removes and returns the outputs of type desc.
  std::vector<mir_event *> Take(const ProtobufCMessageDescriptor *desc) {
    std::vector<mir_event *> taken, rest;
    for (mir_event *ev : seen_) (mir_event_is(ev, desc) ? taken : rest).push_back(ev);
    seen_ = rest;
    return taken;
  }

  // Submits txs (with an origin unless told otherwise); returns the statuses answered.
  std::vector<int> Submit(const std::vector<Tx> &txs, bool with_origin = true) {
    auto *nt =
        static_cast<Trantor__NewTransactions *>(mir_xmalloc(sizeof(Trantor__NewTransactions)));
    trantor__new_transactions__init(nt);
    nt->txs = static_cast<Trantor__Tx **>(mir_xmalloc(txs.size() * sizeof(Trantor__Tx *) + 1));
    for (const Tx &t : txs) nt->txs[nt->n_txs++] = NewTx(t);
    if (with_origin) nt->origin = NewOrigin("client", 7);
    EXPECT_EQ(Apply(mir_event_new("mempool", "client", &nt->base)), MIR_OK);
    std::vector<int> status;
    for (mir_event *ev : Take(&trantor__txs_accepted__descriptor)) {
      auto *acc = reinterpret_cast<Trantor__TxsAccepted *>(ev->payload);
      EXPECT_STREQ(ev->dest, "client");
      EXPECT_EQ(acc->origin->context_id, 7u);
      for (size_t i = 0; i < acc->n_status; i++) status.push_back(acc->status[i]);
      mir_event_free(ev);
    }
    return status;
  }

  mir_err Request(uint64_t epoch, std::vector<uint32_t> buckets, uint64_t ctx, bool fill = false) {
    auto *rb = static_cast<Trantor__RequestBatch *>(mir_xmalloc(sizeof(Trantor__RequestBatch)));
    trantor__request_batch__init(rb);
    rb->epoch = epoch;
    rb->fill = fill;
    rb->n_buckets = buckets.size();
    rb->buckets = static_cast<uint32_t *>(mir_xmemdup(buckets.data(), buckets.size() * 4));
    rb->origin = NewOrigin("availability", ctx);
    return Apply(mir_event_new("mempool", "availability", &rb->base));
  }

  // Removes and returns the NewBatch answers, in output order.
  std::vector<Answer> Answers() {
    std::vector<Answer> out;
    for (mir_event *ev : Take(&trantor__new_batch__descriptor)) {
      auto *nb = reinterpret_cast<Trantor__NewBatch *>(ev->payload);
      Answer a{ev->dest, nb->origin->context_id, {}};
      for (size_t i = 0; i < nb->batch->n_txs; i++) {
        const Trantor__Tx *t = nb->batch->txs[i];
        a.txs.push_back({t->client_id, t->tx_no,
                         std::string(reinterpret_cast<char *>(t->data.data), t->data.len)});
      }
      out.push_back(a);
      mir_event_free(ev);
    }
    return out;
  }

  // Removes the timer requests and returns the events they carry, unpacked as the timer would.
  std::vector<mir_event *> Timers() {
    std::vector<mir_event *> fired;
    for (mir_event *ev : Take(&mir__timer_delay__descriptor)) {
      auto *td = reinterpret_cast<Mir__TimerDelay *>(ev->payload);
      EXPECT_STREQ(ev->dest, "timer");
      EXPECT_EQ(td->delay_ms, params_.batch_timeout_ms);
      for (size_t i = 0; i < td->n_events; i++) {
        mir_event *inner = nullptr;
        EXPECT_EQ(mir_event_unpack(td->events[i], &inner), MIR_OK);
        if (inner != nullptr) fired.push_back(inner);
      }
      mir_event_free(ev);
    }
    return fired;
  }

  mir_err NewEpoch(uint64_t epoch) {
    auto *ne = static_cast<Trantor__NewEpoch *>(mir_xmalloc(sizeof(Trantor__NewEpoch)));
    trantor__new_epoch__init(ne);
    ne->epoch = epoch;
    return Apply(mir_event_new("mempool", "batchfetcher", &ne->base));
  }

  mir_err Delivered(const std::vector<Tx> &txs) {
    auto *td = static_cast<Trantor__TxsDelivered *>(mir_xmalloc(sizeof(Trantor__TxsDelivered)));
    trantor__txs_delivered__init(td);
    td->txs = static_cast<Trantor__Tx **>(mir_xmalloc(txs.size() * sizeof(Trantor__Tx *) + 1));
    for (const Tx &t : txs) td->txs[td->n_txs++] = NewTx({t.client, t.no, ""});
    return Apply(mir_event_new("mempool", "batchfetcher", &td->base));
  }

  // Removes the Activity reports and returns their values, in output order (all go to iss).
  std::vector<bool> Activity() {
    std::vector<bool> out;
    for (mir_event *ev : Take(&trantor__activity__descriptor)) {
      EXPECT_STREQ(ev->dest, "iss");
      out.push_back(reinterpret_cast<Trantor__Activity *>(ev->payload)->active);
      mir_event_free(ev);
    }
    return out;
  }

  // The mempool's metrics, read from its set in the registry.
  struct MpStats {
    uint64_t epoch, pending_txs, pending_bytes, proposable_txs, accepted, timeouts;
    uint64_t empty_batches, delivered, batches, undeliverable, overflows, waiting_requests;
    uint64_t rejected[6];
  };
  MpStats Stats() {
    const mir_metrics *m = mir_dsl_metrics(mp_);
    auto rd = [m](const char *name, const char *value = nullptr) {
      return static_cast<uint64_t>(mir_metrics_read(m, name, value));
    };
    static const char *const refused[6] = {"",          "duplicate",    "out_of_window",
                                           "too_large", "mempool_full", "invalid"};
    MpStats s{};
    s.epoch = rd("mir_mempool_epoch");
    s.pending_txs = rd("mir_mempool_pending_transactions");
    s.pending_bytes = rd("mir_mempool_pending_bytes");
    s.proposable_txs = rd("mir_mempool_proposable_transactions");
    s.accepted = rd("mir_mempool_transactions_accepted_total");
    s.timeouts = rd("mir_mempool_request_timeouts_total");
    s.empty_batches = rd("mir_mempool_empty_batches_total");
    s.delivered = rd("mir_mempool_delivered_transactions_total");
    s.batches = rd("mir_mempool_batches_total");
    s.undeliverable = rd("mir_mempool_undeliverable_transactions_total");
    s.overflows = rd("mir_mempool_request_overflows_total");
    s.waiting_requests = rd("mir_mempool_waiting_requests");
    for (int i = 1; i < 6; i++)
      s.rejected[i] = rd("mir_mempool_transactions_refused_total", refused[i]);
    return s;
  }

  trantor_params params_;
  mir_dsl *mp_ = nullptr;
  std::vector<mir_event *> seen_;
};

const int OK = TRANTOR__TX_STATUS__TX_ACCEPTED;
const int DUP = TRANTOR__TX_STATUS__TX_DUPLICATE;
const int WINDOW = TRANTOR__TX_STATUS__TX_OUT_OF_WINDOW;
const int LARGE = TRANTOR__TX_STATUS__TX_TOO_LARGE;
const int FULL = TRANTOR__TX_STATUS__TX_MEMPOOL_FULL;
const int INVALID = TRANTOR__TX_STATUS__TX_INVALID;

TEST_F(MempoolTest, AdmissionGivesOneStatusPerTransactionInOrder) {
  // Each transaction gets its own status, in order: accepted, invalid ids, too large, duplicate
  // of a pending one, outside the client's window; without an origin nothing is answered.
  std::string a = Client(0);
  EXPECT_EQ(Submit({{a, 0, "x"},
                    {"", 1, "x"},
                    {std::string(65, 'c'), 0, "x"},
                    {a, 1, std::string(51, 'x')},
                    {a, 0, "other data, same identity"},
                    {a, 8, "x"},
                    {a, 7, "x"}}),
            (std::vector<int>{OK, INVALID, INVALID, LARGE, DUP, WINDOW, OK}));
  EXPECT_TRUE(Submit({{a, 2, "x"}}, false).empty());
  MpStats s = Stats();
  EXPECT_EQ(s.pending_txs, 3u);
  EXPECT_EQ(s.accepted, 3u);
  EXPECT_EQ(s.rejected[INVALID], 2u);
  EXPECT_EQ(s.rejected[WINDOW], 1u);
}

TEST_F(MempoolTest, FullBatchByCountIsAnsweredAtOnceOldestFirst) {
  // With max_batch_txs transactions pending, a request is answered at once, with the oldest
  // ones first across its buckets and without arming a timer.
  std::string a = Client(0), b = Client(1);
  Submit({{a, 0, "a0"}, {b, 0, "b0"}, {a, 1, "a1"}, {b, 1, "b1"}});
  ASSERT_EQ(Request(0, {0, 1}, 5), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].dest, "availability");
  EXPECT_EQ(ans[0].ctx, 5u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 0, "a0"}, {b, 0, "b0"}, {a, 1, "a1"}}));
  EXPECT_TRUE(Timers().empty());
}

TEST_F(MempoolTest, ActivityIsReportedOnlyWhenThePoolEmptiesOrFills) {
  // ISS learns when the pool goes from empty to holding transactions and back (its segments
  // propose and expect progress only then), once per change, not per transaction.
  std::string a = Client(0), b = Client(1);
  EXPECT_TRUE(Activity().empty());
  Submit({{a, 0, "a0"}});
  EXPECT_EQ(Activity(), std::vector<bool>{true});
  Submit({{b, 0, "b0"}, {a, 1, "a1"}});
  EXPECT_TRUE(Activity().empty());
  ASSERT_EQ(Delivered({{a, 0, ""}, {b, 0, ""}}), MIR_OK);
  EXPECT_TRUE(Activity().empty()); /* a1 is still pending */
  ASSERT_EQ(Delivered({{a, 1, ""}}), MIR_OK);
  EXPECT_EQ(Activity(), std::vector<bool>{false});
  Submit({{a, 0, "again"}}); /* delivered already: refused, the pool stays empty */
  EXPECT_TRUE(Activity().empty());
}

TEST_F(MempoolTest, FillRequestIsAnsweredAtOnceEvenEmpty) {
  // A fill request (the log waits for the slot) takes what is there without waiting for a full
  // batch or the timeout; with nothing of its buckets pending, an empty batch.
  std::string a = Client(2);
  ASSERT_EQ(Request(0, {2}, 1, true), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_TRUE(ans[0].txs.empty());
  EXPECT_TRUE(Timers().empty());
  Submit({{a, 0, "a0"}});
  ASSERT_EQ(Request(0, {2}, 2, true), MIR_OK);
  ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 0, "a0"}}));
  EXPECT_TRUE(Timers().empty());
}

TEST_F(MempoolTest, WaitingRequestIsAnsweredWhenTheBatchFillsUp) {
  // A request that finds no full batch waits (arming its timeout) and is answered as soon as
  // enough transactions of its buckets arrive (others do not count), without the timeout.
  std::string a = Client(2), other = Client(1);
  ASSERT_EQ(Request(0, {2}, 1), MIR_OK);
  EXPECT_TRUE(Answers().empty());
  std::vector<mir_event *> timers = Timers();
  EXPECT_EQ(timers.size(), 1u);
  Submit({{other, 0, "0"}, {other, 1, "1"}, {other, 2, "2"}});
  EXPECT_TRUE(Answers().empty());
  Submit({{a, 0, "0"}, {a, 1, "1"}});
  EXPECT_TRUE(Answers().empty());
  Submit({{a, 2, "2"}});
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs.size(), 3u);
  // Its timeout fires later and finds nothing to answer.
  for (mir_event *t : timers) ASSERT_EQ(Apply(t), MIR_OK);
  EXPECT_TRUE(Answers().empty());
  EXPECT_EQ(Stats().timeouts, 0u);
}

TEST_F(MempoolTest, FullBatchByBytes) {
  // Once the pending data reaches max_batch_bytes the request is answered with what fits.
  std::string a = Client(0);
  ASSERT_EQ(Request(0, {0}, 1), MIR_OK);
  Submit({{a, 0, std::string(40, 'a')}, {a, 1, std::string(40, 'b')}});
  EXPECT_TRUE(Answers().empty());
  Submit({{a, 2, std::string(40, 'c')}});
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  ASSERT_EQ(ans[0].txs.size(), 2u);
  EXPECT_EQ(ans[0].txs[1].data, std::string(40, 'b'));
  EXPECT_EQ(Stats().proposable_txs, 1u);
}

TEST_F(MempoolTest, SmallTransactionsFillABatchPastALargeOne) {
  // A transaction that does not fit the bytes left is passed over, not blocking smaller ones
  // behind it; it stays first in line for the next batch.
  std::string a = Client(0);
  Submit(
      {{a, 0, std::string(50, 'a')}, {a, 1, std::string(45, 'b')}, {a, 2, std::string(30, 'c')}});
  ASSERT_EQ(Request(0, {0}, 1), MIR_OK);  // 125 bytes pending: full
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs,
            (std::vector<Tx>{{a, 0, std::string(50, 'a')}, {a, 1, std::string(45, 'b')}}));
  Submit({{a, 3, std::string(40, 'd')}, {a, 4, std::string(10, 'e')}});
  ASSERT_EQ(Request(0, {0}, 2), MIR_OK);
  for (mir_event *t : Timers()) ASSERT_EQ(Apply(t), MIR_OK);
  ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 2, std::string(30, 'c')},
                                         {a, 3, std::string(40, 'd')},
                                         {a, 4, std::string(10, 'e')}}));
}

TEST_F(MempoolTest, TimeoutAnswersWithWhateverIsThere) {
  // When the timeout comes back through the timer, the request gets the transactions pending
  // (here one), or an empty batch if there are none.
  std::string a = Client(3);
  ASSERT_EQ(Request(0, {3}, 1), MIR_OK);
  Submit({{a, 0, "only"}});
  std::vector<mir_event *> timers = Timers();
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_TRUE(Answers().empty());
  ASSERT_EQ(Apply(timers[0]), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 0, "only"}}));

  ASSERT_EQ(Request(0, {3}, 2), MIR_OK);
  timers = Timers();
  ASSERT_EQ(timers.size(), 1u);
  ASSERT_EQ(Apply(timers[0]), MIR_OK);
  ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].ctx, 2u);
  EXPECT_TRUE(ans[0].txs.empty());
  EXPECT_EQ(Stats().timeouts, 2u);
  EXPECT_EQ(Stats().empty_batches, 1u);
}

TEST_F(MempoolTest, BatchHoldsOnlyTransactionsOfTheRequestedBuckets) {
  // A batch for buckets {1, 3} holds transactions of those buckets only, although the others
  // have more pending.
  for (uint32_t b = 0; b < 4; b++) Submit({{Client(b), 0, "x"}, {Client(b, 1), 0, "y"}});
  ASSERT_EQ(Request(0, {3, 1}, 1), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  ASSERT_EQ(ans[0].txs.size(), 3u);
  for (const Tx &t : ans[0].txs) {
    uint32_t b = trantor_bucket_of(t.client.c_str(), 4);
    EXPECT_TRUE(b == 1 || b == 3) << t;
  }
}

TEST_F(MempoolTest, TransactionIsNeverInTwoBatchesOfOneEpoch) {
  // Once cut for epoch 0, a transaction is in no other batch of epoch 0, nor of epoch 1 while
  // NewEpoch(1) has not come (it may still be on its way to delivery).
  std::string a = Client(0);
  Submit({{a, 0, "0"}, {a, 1, "1"}, {a, 2, "2"}});
  ASSERT_EQ(Request(0, {0}, 1), MIR_OK);
  ASSERT_EQ(Answers().size(), 1u);
  ASSERT_EQ(Request(0, {0}, 2), MIR_OK);
  ASSERT_EQ(Request(1, {0}, 3), MIR_OK);
  for (mir_event *t : Timers()) ASSERT_EQ(Apply(t), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 2u);
  EXPECT_TRUE(ans[0].txs.empty());
  EXPECT_TRUE(ans[1].txs.empty());
}

TEST_F(MempoolTest, ProposedButUndeliveredBecomeProposableAtNewEpoch) {
  // Transactions proposed in epoch 0 and not delivered are proposed again after NewEpoch(1), in
  // arrival order; delivered ones are not.
  std::string a = Client(1), b = Client(1, 1);
  Submit({{a, 0, "a0"}, {b, 0, "b0"}, {a, 1, "a1"}});
  ASSERT_EQ(Request(0, {1}, 1), MIR_OK);
  ASSERT_EQ(Answers().size(), 1u);
  Submit({{b, 1, "b1"}});
  ASSERT_EQ(Delivered({{b, 0, ""}}), MIR_OK);
  ASSERT_EQ(Request(1, {1}, 2), MIR_OK);  // waits: only b1 is proposable yet
  EXPECT_TRUE(Answers().empty());
  ASSERT_EQ(NewEpoch(1), MIR_OK);  // a0 and a1 come back: three, a full batch
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].ctx, 2u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 0, "a0"}, {a, 1, "a1"}, {b, 1, "b1"}}));
  EXPECT_EQ(Stats().epoch, 1u);
}

TEST_F(MempoolTest, RequestOfAnEndedEpochGetsAnEmptyBatchAtOnce) {
  // After NewEpoch(2), a request for epoch 1 and a waiting one of epoch 1 get empty batches:
  // their epoch is decided; a request for no bucket too.
  std::string a = Client(0);
  ASSERT_EQ(Request(1, {0}, 1), MIR_OK);
  Submit({{a, 0, "x"}});
  ASSERT_EQ(NewEpoch(2), MIR_OK);
  ASSERT_EQ(Request(1, {0}, 2), MIR_OK);
  ASSERT_EQ(Request(2, {}, 3), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 3u);
  for (const Answer &x : ans) EXPECT_TRUE(x.txs.empty());
  EXPECT_EQ(Stats().proposable_txs, 1u);
}

TEST_F(MempoolTest, DeliveryRemovesTransactionsAndMovesTheWindow) {
  // Delivered transactions leave the mempool for good (a resubmission is a duplicate), and the
  // client's window moves with its watermark.
  std::string a = Client(0);
  EXPECT_EQ(Submit({{a, 0, "0"}, {a, 8, "8"}}), (std::vector<int>{OK, WINDOW}));
  ASSERT_EQ(Delivered({{a, 0, ""}}), MIR_OK);
  EXPECT_EQ(Stats().pending_txs, 0u);
  EXPECT_EQ(Stats().delivered, 1u);
  EXPECT_EQ(Submit({{a, 0, "0"}, {a, 8, "8"}}), (std::vector<int>{DUP, OK}));
  ASSERT_EQ(Delivered({{a, 3, ""}}), MIR_OK);  // delivered without passing through here
  EXPECT_EQ(Submit({{a, 3, "3"}}), (std::vector<int>{DUP}));
}

TEST_F(MempoolTest, BoundsOnTransactionsAndBytesAnswerMempoolFull) {
  // At mempool_max_txs pending transactions, or when the data would pass mempool_max_bytes, new
  // transactions are refused as full; delivery makes room again. Memory never passes the bounds.
  std::vector<Tx> many;
  for (int i = 0; i < 11; i++) many.push_back({Client(i % 4, i / 4), 0, "x"});
  std::vector<int> st = Submit(many);
  EXPECT_EQ(std::vector<int>(st.begin(), st.begin() + 10), std::vector<int>(10, OK));
  EXPECT_EQ(st[10], FULL);
  ASSERT_EQ(Delivered({many[0], many[1], many[2], many[3], many[4], many[5], many[6], many[7],
                       many[8], many[9]}),
            MIR_OK);
  EXPECT_EQ(Stats().pending_txs, 0u);
  std::vector<int> big = Submit({{Client(0), 1, std::string(50, 'a')},
                                 {Client(1), 1, std::string(50, 'b')},
                                 {Client(2), 1, std::string(50, 'c')},
                                 {Client(3), 1, std::string(50, 'd')},
                                 {Client(0), 2, std::string(1, 'e')}});
  EXPECT_EQ(big, (std::vector<int>{OK, OK, OK, OK, FULL}));
  MpStats s = Stats();
  EXPECT_LE(s.pending_bytes, params_.mempool_max_bytes);
  EXPECT_LE(s.pending_txs, params_.mempool_max_txs);
  EXPECT_EQ(s.rejected[FULL], 2u);
}

TEST_F(MempoolTest, NewClientsBeyondTheClientBoundAreRefused) {
  // With the client progress at its bound, transactions of unknown clients are refused (they
  // could never be delivered), and pending ones of such clients are dropped.
  Create(/*clients_max=*/2);
  std::string a = Client(0), b = Client(1), c = Client(2);
  EXPECT_EQ(Submit({{a, 0, "a"}, {b, 0, "b"}, {c, 0, "c"}}), (std::vector<int>{OK, OK, OK}));
  ASSERT_EQ(Delivered({{a, 0, ""}, {b, 0, ""}}), MIR_OK);
  EXPECT_EQ(Stats().pending_txs, 0u);  // c's transaction can no longer be delivered
  EXPECT_EQ(Stats().undeliverable, 1u);
  EXPECT_EQ(Submit({{c, 1, "c"}, {a, 1, "a"}}), (std::vector<int>{FULL, OK}));
}

TEST_F(MempoolTest, TooManyWaitingRequestsAreAnsweredAtOnce) {
  // Beyond requests_max waiting requests, a request is answered at once with what is there
  // instead of waiting, so waiting state stays bounded.
  Create(0, /*requests_max=*/2);
  ASSERT_EQ(Request(0, {0}, 1), MIR_OK);
  ASSERT_EQ(Request(0, {1}, 2), MIR_OK);
  Submit({{Client(2), 0, "x"}});
  ASSERT_EQ(Request(0, {2}, 3), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].ctx, 3u);
  EXPECT_EQ(ans[0].txs.size(), 1u);
  EXPECT_EQ(Stats().overflows, 1u);
  EXPECT_EQ(Stats().waiting_requests, 2u);
}

TEST_F(MempoolTest, RestoreStateDropsDeliveredAndForgetsProposals) {
  // After a restore, transactions the checkpoint's progress covers leave, and proposals of
  // earlier epochs are proposable again.
  std::string a = Client(0);
  Submit({{a, 0, "0"}, {a, 1, "1"}, {a, 2, "2"}, {a, 3, "3"}});
  ASSERT_EQ(Request(0, {0}, 1), MIR_OK);  // 0, 1, 2 proposed in epoch 0
  ASSERT_EQ(Answers().size(), 1u);

  Trantor__ClientWatermark wm = TRANTOR__CLIENT_WATERMARK__INIT;
  wm.client_id = const_cast<char *>(a.c_str());
  wm.low_wm = 2;
  Trantor__ClientWatermark *wms[] = {&wm};
  Trantor__ClientProgress cp = TRANTOR__CLIENT_PROGRESS__INIT;
  cp.n_clients = 1;
  cp.clients = wms;
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = 3;
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.client_progress = &cp;
  snap.epoch_config = &ec;
  Trantor__StableCheckpoint chkp = TRANTOR__STABLE_CHECKPOINT__INIT;
  chkp.snapshot = &snap;
  Trantor__RestoreState rs = TRANTOR__RESTORE_STATE__INIT;
  rs.checkpoint = &chkp;
  ASSERT_EQ(Apply(mir_event_new("mempool", "batchfetcher", mir_message_clone(&rs.base))), MIR_OK);

  EXPECT_EQ(Stats().pending_txs, 2u);
  EXPECT_EQ(Stats().epoch, 3u);
  ASSERT_EQ(Request(3, {0}, 2), MIR_OK);
  for (mir_event *t : Timers()) ASSERT_EQ(Apply(t), MIR_OK);
  std::vector<Answer> ans = Answers();
  ASSERT_EQ(ans.size(), 1u);
  EXPECT_EQ(ans[0].txs, (std::vector<Tx>{{a, 2, "2"}, {a, 3, "3"}}));
  EXPECT_EQ(Submit({{a, 1, "1"}}), (std::vector<int>{DUP}));
}

TEST_F(MempoolTest, MalformedLocalRequestsAreWiringErrors) {
  // A RequestBatch for a bucket that does not exist, or without an origin, stops the node with
  // a message instead of being guessed at.
  EXPECT_EQ(Request(0, {4}, 1), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("bucket 4"), std::string::npos);
  auto *rb = static_cast<Trantor__RequestBatch *>(mir_xmalloc(sizeof(Trantor__RequestBatch)));
  trantor__request_batch__init(rb);
  EXPECT_EQ(Apply(mir_event_new("mempool", "availability", &rb->base)), MIR_EINVAL);
}

TEST_F(MempoolTest, RejectsInvalidConfiguration) {
  // Parameters that fail trantor_params_check are refused at creation.
  trantor_params bad = params_;
  bad.max_batch_txs = 0;
  trantor_mempool_config cfg = {};
  cfg.params = &bad;
  mir_dsl *d = nullptr;
  EXPECT_EQ(trantor_mempool_new(&cfg, &d), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("max_batch_txs"), std::string::npos);
  cfg.params = nullptr;
  EXPECT_EQ(trantor_mempool_new(&cfg, &d), MIR_EINVAL);
}

// Height of the index subtree at t, checking the AVL balance and order on the way.
int CheckedHeight(const trantor_pool_tx *t, int *violations) {
  if (t == nullptr) return 0;
  int l = CheckedHeight(t->left, violations), r = CheckedHeight(t->right, violations);
  if (l - r > 1 || r - l > 1 || t->height != 1 + std::max(l, r)) (*violations)++;
  if (t->left != nullptr && strcmp(t->left->client_id, t->client_id) == 0 &&
      t->left->tx_no >= t->tx_no) {
    (*violations)++;
  }
  return 1 + std::max(l, r);
}

TEST(MempoolPool, IndexStaysBalancedUnderAdversarialOrder) {
  // Keys inserted in descending order and removed in a scattered order keep the index balanced
  // (height within 1.45 log2 n) and every lookup right, so clients cannot slow it down.
  trantor_pool pool;
  trantor_pool_init(&pool, 2, nullptr, nullptr);
  const int n = 4096;
  for (int i = n - 1; i >= 0; i--) {
    Trantor__Tx *tx = NewTx({i % 2 ? "odd" : "even", static_cast<uint64_t>(i), "d"});
    trantor_pool_add(&pool, tx, static_cast<uint32_t>(i % 2));
    protobuf_c_message_free_unpacked(&tx->base, nullptr);
  }
  for (int i = 0; i < n; i += 3) {
    trantor_pool_tx *t = trantor_pool_find(&pool, i % 2 ? "odd" : "even", i);
    ASSERT_NE(t, nullptr);
    trantor_pool_remove(&pool, t);
  }
  int violations = 0;
  int h = CheckedHeight(pool.root, &violations);
  EXPECT_EQ(violations, 0);
  EXPECT_LE(h, 18);  // 1.45 * log2(2731)
  for (int i = 0; i < n; i++) {
    bool present = trantor_pool_find(&pool, i % 2 ? "odd" : "even", i) != nullptr;
    EXPECT_EQ(present, i % 3 != 0) << i;
  }
  EXPECT_EQ(pool.n_txs, static_cast<size_t>(n - (n + 2) / 3));
  trantor_pool_fini(&pool);
}

}  // namespace
