// Tests of the ISS module driven by hand: genesis creates the right submodules and announcements;
// the commit log delivers out-of-order decisions in sn order and ignores duplicates and reports
// that do not fit; epochs advance with rotated buckets and the blacklist policy reacts to aborted
// slots; a stable checkpoint leads to a notice and garbage collection; lagging members get the
// checkpoint pushed; a valid checkpoint ahead is installed and forged ones are rejected; what a
// replica's write-ahead log holds, queued with Init, replaces the genesis and goes to the
// instances; stable checkpoints are written, and epochs wait for a durable one; a replica that
// lost its data rejoins with a vote floor derived from its peers' checkpoints.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "trantor/checkpoint/trantor_test_util.h"

extern "C" {
#include "checkpoint.h"
#include "iss.h"
#include "leaderpolicy.h"
#include "wal.h"
}

namespace {

const uint32_t kSeg = 4;      // sns per segment
const uint32_t kBuckets = 8;  // transaction buckets
const uint64_t kPushMs = 700;
const std::vector<std::string> kIds = {"a", "b", "c", "d"};

// An ISS module at node `self` over members a..d.
// The ISS metrics the tests read (Iss::stats).
struct IssStats {
  uint64_t epoch = 0, next_sn = 0, stable_epoch = 0, durable_epoch = 0;
  bool rejoining = false;
  uint64_t duplicates = 0, invalid_deliver = 0, oversized_certs = 0, invalid_certs = 0;
  uint64_t stale_verdicts = 0, suspicions = 0, transfer_dropped = 0, transfer_stale = 0;
  uint64_t transfer_busy = 0, transfer_bad_sig = 0, transfers = 0, recovered_instances = 0;
  uint64_t blocked_starts = 0, local_restores = 0, vote_floor = 0;
};

struct Iss {
  Trantor__Membership *m = tt::unit_membership(kIds);
  trantor_params p;
  tt::Module mod;

  // The store's answers (CheckpointDurable) go back to iss at once; false keeps them in the
  // output, as a slow disk would.
  bool auto_durable = true;

  explicit Iss(const char *self = "a", bool blacklist = false, uint32_t ahead = 4) {
    trantor_params_default(&p);
    p.segment_length = kSeg;
    p.num_buckets = kBuckets;
    p.retained_epochs = 2;
    p.epochs_ahead_max = ahead;
    p.leader_policy_blacklist = blacklist ? 1 : 0;
    trantor_iss_config cfg = {};
    cfg.self_id = self;
    cfg.membership = m;
    cfg.params = &p;
    cfg.hash = trantor_hash_reference;
    cfg.push_period_ms = kPushMs;
    EXPECT_EQ(trantor_iss_new(&cfg, &mod.ops, &mod.state), MIR_OK) << mir_error_detail();
  }
  ~Iss() { tt::free_msg(m); }

  // Applies ev and answers every VerifyCert it leads to like availability would (a certificate
  // is invalid iff it starts with "bad"); everything emitted lands in out.
  void feed(mir_event *ev, tt::Events &out) {
    tt::Events step;
    ASSERT_EQ(mod.apply_one(ev, step), MIR_OK) << mir_error_detail();
    while (step.size() > 0) {
      mir_event_list answers = MIR_EVENT_LIST_INIT;
      for (const mir_event *vc : step.of(&trantor__verify_cert__descriptor, "availability")) {
        mir_event_list_push(&answers, verdict(vc));
      }
      for (const mir_event *d : step.of(&trantor__checkpoint_durable__descriptor, "iss")) {
        if (auto_durable) {
          mir_event_list_push(&answers,
                              mir_event_new("iss", d->src, mir_message_clone(d->payload)));
        }
      }
      mir_event_list l = step.take();
      mir_event_list_concat(&out.list, &l);
      out.stored.insert(out.stored.end(), step.stored.begin(), step.stored.end());
      out.writes += step.writes;
      step.stored.clear();
      step.writes = 0;
      if (answers.len > 0) {
        ASSERT_EQ(mod.apply(&answers, step), MIR_OK) << mir_error_detail();
      }
    }
  }
  // availability's answer to a VerifyCert event (borrowed).
  static mir_event *verdict(const mir_event *ev, bool force_invalid = false) {
    auto *vc = tt::payload<Trantor__VerifyCert>(ev);
    auto *cv = static_cast<Trantor__CertVerified *>(mir_xmalloc(sizeof(Trantor__CertVerified)));
    trantor__cert_verified__init(cv);
    cv->valid = !force_invalid && tt::str(vc->cert).rfind("bad", 0) != 0;
    cv->reason = mir_xstrdup(cv->valid ? "" : "test says so");
    cv->origin = reinterpret_cast<Mir__Origin *>(mir_message_clone(&vc->origin->base));
    return mir_event_new(vc->origin->module, "availability", &cv->base);
  }
  void init(tt::Events &out) { feed(mir_event_init("iss"), out); }
  // The module's metrics, read from its set in the registry.
  IssStats stats() {
    const mir_metrics *set = mir_dsl_metrics(static_cast<mir_dsl *>(mod.state));
    auto rd = [set](const char *name, const char *value = nullptr) {
      return static_cast<uint64_t>(mir_metrics_read(set, name, value));
    };
    IssStats s;
    s.epoch = rd("mir_iss_epoch");
    s.next_sn = rd("mir_iss_next_sn");
    s.stable_epoch = rd("mir_iss_stable_checkpoint_epoch");
    s.durable_epoch = rd("mir_iss_durable_checkpoint_epoch");
    s.rejoining = rd("mir_iss_rejoining") != 0;
    s.duplicates = rd("mir_iss_sb_deliveries_dropped_total", "duplicate");
    s.invalid_deliver = rd("mir_iss_sb_deliveries_dropped_total", "invalid");
    s.oversized_certs = rd("mir_iss_empty_deliveries_total", "oversized");
    s.invalid_certs = rd("mir_iss_empty_deliveries_total", "invalid_cert");
    s.stale_verdicts = rd("mir_iss_stale_verdicts_total");
    s.suspicions = rd("mir_iss_suspicions_total");
    s.transfer_dropped = rd("mir_iss_checkpoint_messages_dropped_total", "invalid");
    s.transfer_stale = rd("mir_iss_checkpoint_messages_dropped_total", "stale");
    s.transfer_busy = rd("mir_iss_checkpoint_messages_dropped_total", "busy");
    s.transfer_bad_sig = rd("mir_iss_checkpoint_messages_dropped_total", "bad_signature");
    s.transfers = rd("mir_iss_state_transfers_total");
    s.recovered_instances = rd("mir_iss_recovered_instances_total");
    s.blocked_starts = rd("mir_iss_blocked_epoch_starts_total");
    s.local_restores = rd("mir_iss_local_restores_total");
    s.vote_floor = rd("mir_iss_vote_floor_epoch");
    return s;
  }
};

std::string ordering_id(uint64_t e, uint32_t seg) {
  return "ordering/" + std::to_string(e) + "/" + std::to_string(seg);
}

// SbDeliver of sn from ordering/<e>/<seg> (or from src when given).
mir_event *sbd(uint64_t e, uint32_t seg, uint64_t sn, const std::string &cert, bool aborted = false,
               const char *src = nullptr) {
  auto *d = static_cast<Trantor__SbDeliver *>(mir_xmalloc(sizeof(Trantor__SbDeliver)));
  trantor__sb_deliver__init(d);
  d->epoch = e;
  d->segment = seg;
  d->sn = sn;
  d->cert = tt::dup_bytes(cert);
  d->aborted = aborted;
  d->leader = mir_xstrdup("?");
  std::string from = src != nullptr ? src : ordering_id(e, seg);
  return mir_event_new("iss", from.c_str(), &d->base);
}

std::string cert_of(uint64_t sn) {
  return "cert-" + std::to_string(sn);
}

// Delivers every sn of epoch e (first sn first, k segments) in reverse order.
void finish_epoch(Iss &iss, uint64_t e, uint64_t first, size_t k, tt::Events &out) {
  for (uint64_t sn = first + k * kSeg; sn-- > first;) {
    iss.feed(sbd(e, static_cast<uint32_t>((sn - first) % k), sn, cert_of(sn)), out);
  }
}

// The DeliverCert sns emitted, in order.
std::vector<uint64_t> delivered(const tt::Events &out) {
  std::vector<uint64_t> sns;
  for (auto *ev : out.of(&trantor__deliver_cert__descriptor, "batchfetcher")) {
    sns.push_back(tt::payload<Trantor__DeliverCert>(ev)->sn);
  }
  return sns;
}

// The parameters of a NewSubmodule event, decoded as T (owned).
template <typename T>
T *params_of(const mir_event *ev, const ProtobufCMessageDescriptor *desc) {
  auto *ns = tt::payload<Mir__NewSubmodule>(ev);
  EXPECT_STREQ(ns->params->type, desc->name);
  return reinterpret_cast<T *>(
      protobuf_c_message_unpack(desc, nullptr, ns->params->data.len, ns->params->data.data));
}

std::vector<std::string> submodules(const tt::Events &out, const char *factory) {
  std::vector<std::string> ids;
  for (auto *ev : out.of(&mir__new_submodule__descriptor, factory)) {
    ids.push_back(tt::payload<Mir__NewSubmodule>(ev)->submodule_id);
  }
  return ids;
}

TEST(Iss, GenesisCreatesEpochZero) {
  // Init starts epoch 0 at sn 0: checkpoint/0 signed by the initial members, NewEpoch and
  // SnapshotRequest in that order to the batch fetcher, one PBFT instance per leader with its
  // interleaved sns, its buckets and the timeouts of the params, and the push tick.
  Iss iss;
  tt::Events out;
  iss.init(out);
  EXPECT_EQ(out.types_to("batchfetcher"),
            (std::vector<std::string>{"trantor.NewEpoch", "trantor.SnapshotRequest"}));
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  EXPECT_EQ(ne->epoch, 0u);
  EXPECT_EQ(ne->first_sn, 0u);
  EXPECT_EQ(ne->length, 16u);
  ASSERT_EQ(ne->n_leaders, 4u);
  EXPECT_STREQ(ne->leaders[3], "d");
  auto *sr =
      tt::payload<Trantor__SnapshotRequest>(out.of(&trantor__snapshot_request__descriptor)[0]);
  EXPECT_EQ(sr->sn, 0u);
  EXPECT_STREQ(sr->reply_to, "checkpoint/0");

  auto chk = out.of(&mir__new_submodule__descriptor, "checkpoint");
  ASSERT_EQ(chk.size(), 1u);
  auto *cp = params_of<Trantor__CheckpointParams>(chk[0], &trantor__checkpoint_params__descriptor);
  EXPECT_EQ(cp->epoch_config->epoch, 0u);
  EXPECT_EQ(cp->epoch_config->length, 16u);
  EXPECT_EQ(cp->signers->n_members, 4u);
  EXPECT_EQ(cp->resend_ms, iss.p.checkpoint_resend_ms);
  EXPECT_GT(cp->leader_policy.len, 0u);
  tt::free_msg(cp);

  auto ord = out.of(&mir__new_submodule__descriptor, "ordering");
  ASSERT_EQ(ord.size(), 4u);
  for (uint32_t i = 0; i < 4; i++) {
    auto *ns = tt::payload<Mir__NewSubmodule>(ord[i]);
    EXPECT_EQ(std::string(ns->submodule_id), ordering_id(0, i));
    EXPECT_EQ(ns->retention_index, 0u);
    auto *pp = params_of<Trantor__PbftParams>(ord[i], &trantor__pbft_params__descriptor);
    EXPECT_EQ(pp->segment, i);
    EXPECT_EQ(std::string(pp->leader), kIds[i]);
    EXPECT_EQ(std::vector<uint64_t>(pp->sns, pp->sns + pp->n_sns),
              (std::vector<uint64_t>{i, i + 4, i + 8, i + 12}));
    EXPECT_EQ(std::vector<uint32_t>(pp->buckets, pp->buckets + pp->n_buckets),
              (std::vector<uint32_t>{i, i + 4}));
    EXPECT_EQ(pp->view_change_sn_timeout_ms, iss.p.view_change_sn_timeout_ms);
    EXPECT_EQ(pp->view_change_segment_timeout_ms, iss.p.view_change_segment_timeout_ms);
    EXPECT_EQ(pp->done_resend_ms, iss.p.done_resend_ms);
    EXPECT_EQ(pp->catch_up_delay_ms, iss.p.catch_up_delay_ms);
    EXPECT_EQ(pp->view_change_resend_ms, iss.p.view_change_resend_ms);
    EXPECT_EQ(pp->msg_buf_bytes, iss.p.msg_buf_bytes);
    EXPECT_EQ(pp->max_cert_bytes, trantor_iss_default_max_cert_bytes(&iss.p));
    EXPECT_EQ(pp->membership->n_members, 4u);
    tt::free_msg(pp);
  }
  auto timers = out.of(&mir__timer_repeat__descriptor, "timer");
  ASSERT_EQ(timers.size(), 1u);
  auto *tr = tt::payload<Mir__TimerRepeat>(timers[0]);
  EXPECT_EQ(tr->period_ms, kPushMs);
  EXPECT_EQ(tr->retention_index, 0u);
  EXPECT_STREQ(tr->events[0]->type, "trantor.PushCheckpoint");
  tt::Events again;
  EXPECT_EQ(iss.mod.apply_one(mir_event_init("iss"), again), MIR_EINVAL);  // a second Init
}

TEST(Iss, DeliversOutOfOrderDecisionsInSnOrder) {
  // Segments decide sns 2 and 1 before 0: nothing is delivered until sn 0, then 0, 1, 2 in
  // order with their certificates; aborted slots are delivered empty and flagged.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  iss.feed(sbd(0, 2, 2, cert_of(2)), out);
  iss.feed(sbd(0, 1, 1, "ignored", true), out);
  EXPECT_TRUE(delivered(out).empty());
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{0, 1, 2}));
  auto dcs = out.of(&trantor__deliver_cert__descriptor);
  EXPECT_EQ(tt::str(tt::payload<Trantor__DeliverCert>(dcs[0])->cert), cert_of(0));
  EXPECT_TRUE(tt::payload<Trantor__DeliverCert>(dcs[1])->aborted);
  EXPECT_EQ(tt::payload<Trantor__DeliverCert>(dcs[1])->cert.len, 0u);
  EXPECT_EQ(tt::str(tt::payload<Trantor__DeliverCert>(dcs[2])->cert), cert_of(2));
  EXPECT_EQ(iss.stats().next_sn, 3u);
}

TEST(Iss, IgnoresDuplicatesAndReportsThatDoNotFit) {
  // A second report of an sn (pending or delivered) is a duplicate; an sn reported by another
  // segment, a source that is not the reporting instance, a future epoch or an sn outside the
  // epoch are dropped; none of them is delivered.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  iss.feed(sbd(0, 1, 5, cert_of(5)), out);
  iss.feed(sbd(0, 1, 5, "other"), out);                            // pending duplicate
  iss.feed(sbd(0, 2, 5, cert_of(5)), out);                         // sn 5 is segment 1's
  iss.feed(sbd(0, 1, 9, cert_of(9), false, "ordering/0/2"), out);  // source is not segment 1
  iss.feed(sbd(0, 1, 9, cert_of(9), false, "mempool"), out);       // not an instance at all
  iss.feed(sbd(1, 1, 17, cert_of(17)), out);                       // epoch 1 has not started
  iss.feed(sbd(0, 0, 16, cert_of(16)), out);                       // beyond epoch 0
  iss.feed(sbd(0, 7, 7, cert_of(7)), out);                         // no segment 7
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);  // delivered duplicate
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{0}));
  IssStats st = iss.stats();
  EXPECT_EQ(st.duplicates, 2u);
  EXPECT_EQ(st.invalid_deliver, 6u);
  iss.feed(sbd(0, 3, 3, cert_of(3)), out);
  iss.feed(sbd(0, 2, 2, cert_of(2)), out);
  iss.feed(sbd(0, 1, 1, cert_of(1)), out);
  iss.feed(sbd(0, 0, 4, cert_of(4)), out);
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  auto dcs = out.of(&trantor__deliver_cert__descriptor);
  EXPECT_EQ(tt::str(tt::payload<Trantor__DeliverCert>(dcs[5])->cert), cert_of(5));  // the first
}

TEST(Iss, CertificatesAreVerifiedBeforeDelivery) {
  // A committed certificate goes to availability with its segment's buckets and is delivered
  // only after the verdict; verdicts arriving out of order still deliver in sn order.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  ASSERT_EQ(iss.mod.apply_one(sbd(0, 1, 1, cert_of(1)), out), MIR_OK);
  ASSERT_EQ(iss.mod.apply_one(sbd(0, 0, 0, cert_of(0)), out), MIR_OK);
  auto vcs = out.of(&trantor__verify_cert__descriptor, "availability");
  ASSERT_EQ(vcs.size(), 2u);
  auto *vc = tt::payload<Trantor__VerifyCert>(vcs[0]);
  EXPECT_EQ(tt::str(vc->cert), cert_of(1));
  EXPECT_EQ(vc->epoch, 0u);
  EXPECT_EQ(std::vector<uint32_t>(vc->buckets, vc->buckets + vc->n_buckets),
            (std::vector<uint32_t>{1, 5}));
  EXPECT_TRUE(delivered(out).empty());
  tt::Events after;
  ASSERT_EQ(iss.mod.apply_one(Iss::verdict(vcs[0]), after), MIR_OK);  // sn 1 first
  EXPECT_TRUE(delivered(after).empty());
  ASSERT_EQ(iss.mod.apply_one(Iss::verdict(vcs[1]), after), MIR_OK);
  EXPECT_EQ(delivered(after), (std::vector<uint64_t>{0, 1}));
  // A second verdict for a delivered sn is stale.
  ASSERT_EQ(iss.mod.apply_one(Iss::verdict(vcs[1]), after), MIR_OK);
  EXPECT_EQ(iss.stats().stale_verdicts, 1u);
  // A duplicate SbDeliver while the verdict is pending is ignored.
  tt::Events more;
  ASSERT_EQ(iss.mod.apply_one(sbd(0, 2, 2, cert_of(2)), more), MIR_OK);
  ASSERT_EQ(iss.mod.apply_one(sbd(0, 2, 2, cert_of(2)), more), MIR_OK);
  EXPECT_EQ(more.count(&trantor__verify_cert__descriptor), 1u);
  EXPECT_EQ(iss.stats().duplicates, 1u);
}

TEST(Iss, InvalidCertificateIsDeliveredEmptyAndSuspectsTheLeader) {
  // A certificate availability rejects (outside the segment's buckets, say) is delivered as an
  // empty aborted slot, and with the blacklist policy its leader is left out of the next epoch.
  Iss iss("a", true);
  tt::Events out;
  iss.init(out);
  out.clear();
  for (uint64_t sn = 0; sn < 16; sn++) {
    iss.feed(sbd(0, static_cast<uint32_t>(sn % 4), sn, sn == 6 ? "bad-cert" : cert_of(sn)), out);
  }
  auto dcs = out.of(&trantor__deliver_cert__descriptor);
  ASSERT_EQ(dcs.size(), 16u);
  EXPECT_TRUE(tt::payload<Trantor__DeliverCert>(dcs[6])->aborted);
  EXPECT_EQ(tt::payload<Trantor__DeliverCert>(dcs[6])->cert.len, 0u);
  EXPECT_FALSE(tt::payload<Trantor__DeliverCert>(dcs[5])->aborted);
  EXPECT_EQ(iss.stats().invalid_certs, 1u);
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  ASSERT_EQ(ne->n_leaders, 3u);
  EXPECT_STREQ(ne->leaders[2], "d");  // c (segment 2) is out
  EXPECT_STREQ(ne->leaders[1], "b");
}

TEST(Iss, OversizedCertificateIsDeliveredEmpty) {
  // A committed certificate above max_cert_bytes is delivered as an aborted slot everywhere.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  std::string big(trantor_iss_default_max_cert_bytes(&iss.p) + 1, 'x');
  iss.feed(sbd(0, 0, 0, big), out);
  auto dcs = out.of(&trantor__deliver_cert__descriptor);
  ASSERT_EQ(dcs.size(), 1u);
  EXPECT_TRUE(tt::payload<Trantor__DeliverCert>(dcs[0])->aborted);
  EXPECT_EQ(tt::payload<Trantor__DeliverCert>(dcs[0])->cert.len, 0u);
  EXPECT_EQ(iss.stats().oversized_certs, 1u);
}

TEST(Iss, AdvancesEpochsAndRotatesBuckets) {
  // After the last sn of epoch 0, epoch 1 starts at sn 16 at once: NewEpoch and SnapshotRequest
  // follow DeliverCert 15 on the batch fetcher's path, checkpoint/1 and ordering/1/* are created
  // with retention index 1, and segment i now serves the buckets b with (b + 1) mod 4 == i. A
  // late report from epoch 0 is a duplicate.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  finish_epoch(iss, 0, 0, 4, out);
  std::vector<std::string> path = out.types_to("batchfetcher");
  ASSERT_EQ(path.size(), 18u);
  EXPECT_EQ(path[15], "trantor.DeliverCert");
  EXPECT_EQ(path[16], "trantor.NewEpoch");
  EXPECT_EQ(path[17], "trantor.SnapshotRequest");
  std::vector<uint64_t> want(16);
  for (uint64_t i = 0; i < 16; i++) want[i] = i;
  EXPECT_EQ(delivered(out), want);
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  EXPECT_EQ(ne->epoch, 1u);
  EXPECT_EQ(ne->first_sn, 16u);
  auto *sr =
      tt::payload<Trantor__SnapshotRequest>(out.of(&trantor__snapshot_request__descriptor)[0]);
  EXPECT_EQ(sr->epoch, 1u);
  EXPECT_EQ(sr->sn, 16u);
  EXPECT_STREQ(sr->reply_to, "checkpoint/1");
  EXPECT_EQ(submodules(out, "checkpoint"), (std::vector<std::string>{"checkpoint/1"}));
  EXPECT_EQ(
      submodules(out, "ordering"),
      (std::vector<std::string>{"ordering/1/0", "ordering/1/1", "ordering/1/2", "ordering/1/3"}));
  auto ord = out.of(&mir__new_submodule__descriptor, "ordering");
  for (uint32_t i = 0; i < 4; i++) {
    EXPECT_EQ(tt::payload<Mir__NewSubmodule>(ord[i])->retention_index, 1u);
    auto *pp = params_of<Trantor__PbftParams>(ord[i], &trantor__pbft_params__descriptor);
    EXPECT_EQ(pp->sns[0], 16u + i);
    uint32_t first = (i + 3) % 4;  // (b + 1) mod 4 == i
    EXPECT_EQ(std::vector<uint32_t>(pp->buckets, pp->buckets + pp->n_buckets),
              (std::vector<uint32_t>{first, first + 4}));
    tt::free_msg(pp);
  }
  out.clear();
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  EXPECT_EQ(iss.stats().duplicates, 1u);
  EXPECT_EQ(iss.stats().epoch, 1u);
  iss.feed(sbd(1, 0, 16, cert_of(16)), out);
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{16}));
}

TEST(Iss, BlacklistDropsTheLeaderOfAnAbortedSlot) {
  // With the blacklist policy, an aborted slot of segment 1 suspects its leader b: epoch 1 has
  // the three leaders a, c, d (still a strong quorum), three segments and 12 sns.
  Iss iss("a", true);
  tt::Events out;
  iss.init(out);
  out.clear();
  for (uint64_t sn = 0; sn < 16; sn++) {
    iss.feed(sbd(0, static_cast<uint32_t>(sn % 4), sn, cert_of(sn), sn == 5), out);
  }
  EXPECT_EQ(iss.stats().suspicions, 1u);
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  EXPECT_EQ(ne->length, 12u);
  ASSERT_EQ(ne->n_leaders, 3u);
  EXPECT_STREQ(ne->leaders[0], "a");
  EXPECT_STREQ(ne->leaders[1], "c");
  EXPECT_STREQ(ne->leaders[2], "d");
  EXPECT_EQ(submodules(out, "ordering").size(), 3u);
  auto ord = out.of(&mir__new_submodule__descriptor, "ordering");
  auto *pp = params_of<Trantor__PbftParams>(ord[1], &trantor__pbft_params__descriptor);
  EXPECT_STREQ(pp->leader, "c");
  EXPECT_EQ(std::vector<uint64_t>(pp->sns, pp->sns + pp->n_sns),
            (std::vector<uint64_t>{17, 20, 23, 26}));
  tt::free_msg(pp);
  // The checkpoint of epoch 1 records the suspicion in its leader policy.
  auto *cp =
      params_of<Trantor__CheckpointParams>(out.of(&mir__new_submodule__descriptor, "checkpoint")[0],
                                           &trantor__checkpoint_params__descriptor);
  trantor_leader_policy *lp = nullptr;
  ASSERT_EQ(trantor_lp_from_bytes(cp->leader_policy.data, cp->leader_policy.len, &lp), MIR_OK);
  const char *ids[4];
  EXPECT_EQ(trantor_lp_leaders(lp, ids, 4), 3u);
  trantor_lp_free(lp);
  tt::free_msg(cp);
}

// A stable checkpoint of epoch e over m (borrowed) starting at first, signed by signers with the
// fake crypto, with a simple leader policy over m. Owned.
Trantor__StableCheckpoint *make_chkp(const Trantor__Membership *m, uint64_t e, uint64_t first,
                                     uint64_t length, const std::vector<std::string> &signers,
                                     const std::string &app = "app-state") {
  trantor_leader_policy *lp = nullptr;
  EXPECT_EQ(trantor_lp_new(TRANTOR_LP_SIMPLE, m, &lp), MIR_OK);
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = e;
  ec.first_sn = first;
  ec.length = length;
  ec.membership = const_cast<Trantor__Membership *>(m);
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.epoch_config = &ec;
  snap.app_data = tt::bytes(app);
  trantor_lp_to_bytes(lp, &snap.leader_policy.data, &snap.leader_policy.len);
  trantor_lp_free(lp);
  uint8_t h[32], digest[32];
  trantor_snapshot_hash(&snap, trantor_hash_reference, h);
  trantor_checkpoint_digest(e, first, h, trantor_hash_reference, digest);
  ProtobufCBinaryData part = {32, digest};
  std::vector<std::string> sigs;
  std::vector<Trantor__CheckpointSignature> store(signers.size());
  std::vector<Trantor__CheckpointSignature *> ptrs;
  for (const auto &s : signers) sigs.push_back(tt::fake_sig(s.c_str(), &part, 1));
  for (size_t i = 0; i < signers.size(); i++) {
    trantor__checkpoint_signature__init(&store[i]);
    store[i].signer = const_cast<char *>(signers[i].c_str());
    store[i].signature = tt::bytes(sigs[i]);
    ptrs.push_back(&store[i]);
  }
  Trantor__StableCheckpoint sc = TRANTOR__STABLE_CHECKPOINT__INIT;
  sc.sn = first;
  sc.snapshot = &snap;
  sc.n_cert = ptrs.size();
  sc.cert = ptrs.data();
  auto *out = reinterpret_cast<Trantor__StableCheckpoint *>(mir_message_clone(&sc.base));
  free(snap.leader_policy.data);
  return out;
}

mir_event *stable_event(const Trantor__StableCheckpoint *chkp) {
  auto *cs =
      static_cast<Trantor__CheckpointStable *>(mir_xmalloc(sizeof(Trantor__CheckpointStable)));
  trantor__checkpoint_stable__init(cs);
  cs->checkpoint = reinterpret_cast<Trantor__StableCheckpoint *>(mir_message_clone(&chkp->base));
  std::string src = "checkpoint/" + std::to_string(chkp->snapshot->epoch_config->epoch);
  return mir_event_new("iss", src.c_str(), &cs->base);
}

mir_event *progress_event(const char *node, uint64_t epoch) {
  auto *ep = static_cast<Trantor__EpochProgress *>(mir_xmalloc(sizeof(Trantor__EpochProgress)));
  trantor__epoch_progress__init(ep);
  ep->node = mir_xstrdup(node);
  ep->epoch = epoch;
  return mir_event_new("iss", "checkpoint/1", &ep->base);
}

mir_event *push_tick() {
  auto *t = static_cast<Trantor__PushCheckpoint *>(mir_xmalloc(sizeof(Trantor__PushCheckpoint)));
  trantor__push_checkpoint__init(t);
  return mir_event_new("iss", "iss", &t->base);
}

// ---- idle (docs/PROTOCOL.md, "Idle") ----

// The Needed{up_to_sn} events emitted, as (destination, up_to_sn), in order.
std::vector<std::pair<std::string, uint64_t>> needed_of(const tt::Events &out) {
  std::vector<std::pair<std::string, uint64_t>> v;
  for (auto *ev : out.of(&trantor__needed__descriptor)) {
    v.emplace_back(ev->dest, tt::payload<Trantor__Needed>(ev)->up_to_sn);
  }
  return v;
}

mir_event *activity_event(bool active) {
  auto *a = static_cast<Trantor__Activity *>(mir_xmalloc(sizeof(Trantor__Activity)));
  trantor__activity__init(a);
  a->active = active;
  return mir_event_new("iss", "mempool", &a->base);
}

TEST(IssIdle, ADecidedSnMakesTheSegmentsBelowItNeeded) {
  // Epoch 0 interleaves 4 segments (sn = 4 * j + segment). Segment 2 decides sn 6: sns 0 to 5
  // of every segment (its own sn 2 too) hold the log, so each segment learns that the log needs
  // its sns below 6, once. Decisions below that ask nothing more; one further up asks the
  // segments that still hold the log below it.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  iss.feed(sbd(0, 2, 6, cert_of(6)), out);
  using N = std::vector<std::pair<std::string, uint64_t>>;
  EXPECT_EQ(needed_of(out), (N{{ordering_id(0, 0), 6},
                               {ordering_id(0, 1), 6},
                               {ordering_id(0, 2), 6},
                               {ordering_id(0, 3), 6}}));
  out.clear();
  iss.feed(sbd(0, 2, 2, cert_of(2)), out);
  EXPECT_TRUE(needed_of(out).empty()); /* below what was asked already */
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  iss.feed(sbd(0, 1, 1, cert_of(1)), out);
  iss.feed(sbd(0, 3, 3, cert_of(3)), out);
  iss.feed(sbd(0, 0, 4, cert_of(4)), out);
  iss.feed(sbd(0, 1, 5, cert_of(5)), out);
  EXPECT_TRUE(needed_of(out).empty());
  iss.feed(sbd(0, 1, 9, cert_of(9)), out);
  EXPECT_EQ(needed_of(out), (N{{ordering_id(0, 0), 9}, {ordering_id(0, 3), 9}}));
}

TEST(IssIdle, ABegunEpochIsFinishedAfterAWholeIdlePushPeriod) {
  // Something was decided in epoch 0 and the mempool is empty: the first push tick only notes
  // the idleness, the second asks every unfinished segment for its sns up to the epoch's end.
  // Transactions arriving in between restart the wait; an epoch nothing was decided in is left
  // alone (idle and quiet).
  Iss iss;
  tt::Events out;
  iss.init(out);
  iss.feed(push_tick(), out);
  iss.feed(push_tick(), out);
  EXPECT_TRUE(needed_of(out).empty()); /* nothing begun */
  iss.feed(activity_event(true), out);
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  iss.feed(activity_event(false), out);
  out.clear();
  iss.feed(push_tick(), out);
  EXPECT_TRUE(needed_of(out).empty());
  iss.feed(activity_event(true), out);
  iss.feed(activity_event(false), out);
  iss.feed(push_tick(), out);
  EXPECT_TRUE(needed_of(out).empty()); /* the wait started again */
  iss.feed(push_tick(), out);
  using N = std::vector<std::pair<std::string, uint64_t>>;
  EXPECT_EQ(needed_of(out), (N{{ordering_id(0, 0), 16},
                               {ordering_id(0, 1), 16},
                               {ordering_id(0, 2), 16},
                               {ordering_id(0, 3), 16}}));
}

TEST(IssIdle, ActivityReachesTheCurrentSegmentsAndTheNextEpochsParameters) {
  // The mempool's Activity goes to every segment of the current epoch; the segments of the next
  // epoch start with it in their parameters.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  iss.feed(activity_event(true), out);
  auto acts = out.of(&trantor__activity__descriptor);
  ASSERT_EQ(acts.size(), 4u);
  for (uint32_t seg = 0; seg < 4; seg++) {
    EXPECT_EQ(acts[seg]->dest, ordering_id(0, seg));
    EXPECT_TRUE(tt::payload<Trantor__Activity>(acts[seg])->active);
  }
  out.clear();
  finish_epoch(iss, 0, 0, 4, out);
  auto subs = out.of(&mir__new_submodule__descriptor, "ordering");
  ASSERT_EQ(subs.size(), 4u);
  for (auto *ev : subs) {
    auto *pp = params_of<Trantor__PbftParams>(ev, &trantor__pbft_params__descriptor);
    EXPECT_TRUE(pp->active);
    tt::free_msg(pp);
  }
}

TEST(Iss, StableCheckpointNotifiesAndCollectsGarbage) {
  // The checkpoint of epoch 1 is only announced (1 - 2 retained epochs is not positive); that of
  // epoch 3 also garbage-collects epochs below 1 in ordering, checkpoint and the timer and
  // re-arms the push tick at that index; an older one afterwards is ignored.
  Iss iss;
  tt::Events out;
  iss.init(out);
  for (uint64_t e = 0; e < 3; e++) finish_epoch(iss, e, e * 16, 4, out);
  out.clear();
  Trantor__StableCheckpoint *c1 = make_chkp(iss.m, 1, 16, 16, {"a", "b", "c"});
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"a", "b", "c"});
  iss.feed(stable_event(c1), out);
  EXPECT_EQ(out.count(&trantor__checkpoint_notice__descriptor, "batchfetcher"), 1u);
  EXPECT_EQ(out.count(&mir__garbage_collect__descriptor), 0u);
  out.clear();
  iss.feed(stable_event(c3), out);
  EXPECT_EQ(out.count(&trantor__checkpoint_notice__descriptor, "batchfetcher"), 1u);
  for (const char *dest : {"ordering", "checkpoint", "timer"}) {
    auto gcs = out.of(&mir__garbage_collect__descriptor, dest);
    ASSERT_EQ(gcs.size(), 1u) << dest;
    EXPECT_EQ(tt::payload<Mir__GarbageCollect>(gcs[0])->retention_index, 1u);
  }
  EXPECT_EQ(out.types_to("timer"),
            (std::vector<std::string>{"mir.GarbageCollect", "mir.TimerRepeat"}));
  EXPECT_EQ(
      tt::payload<Mir__TimerRepeat>(out.of(&mir__timer_repeat__descriptor)[0])->retention_index,
      1u);
  EXPECT_EQ(iss.stats().stable_epoch, 3u);
  out.clear();
  Trantor__StableCheckpoint *c2 = make_chkp(iss.m, 2, 32, 16, {"a", "b", "c"});
  iss.feed(stable_event(c2), out);
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(iss.stats().stable_epoch, 3u);
  tt::free_msg(c1);
  tt::free_msg(c2);
  tt::free_msg(c3);
}

TEST(Iss, PushesStableCheckpointToLaggingMembers) {
  // With the checkpoint of epoch 3 stable, the push tick sends it to the members whose last
  // known epoch is more than 2 behind (c at 0 and d never heard of), not to b at 1 nor to itself.
  Iss iss;
  tt::Events out;
  iss.init(out);
  iss.feed(push_tick(), out);
  EXPECT_EQ(out.count(&mir__send_message__descriptor), 0u);  // nothing stable yet
  for (uint64_t e = 0; e < 3; e++) finish_epoch(iss, e, e * 16, 4, out);
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"a", "b", "c"});
  iss.feed(stable_event(c3), out);
  iss.feed(progress_event("b", 1), out);
  iss.feed(progress_event("c", 0), out);
  iss.feed(progress_event("zz", 9), out);  // not a member: ignored
  out.clear();
  iss.feed(push_tick(), out);
  auto sent = out.of(&mir__send_message__descriptor, "net");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(tt::destinations(sent[0]), (std::vector<std::string>{"c", "d"}));
  ProtobufCMessage *msg = tt::sent_message(sent[0]);
  auto *scm = reinterpret_cast<Trantor__StableCheckpointMsg *>(msg);
  EXPECT_EQ(scm->checkpoint->snapshot->epoch_config->epoch, 3u);
  protobuf_c_message_free_unpacked(msg, nullptr);
  out.clear();
  iss.feed(progress_event("c", 2), out);
  iss.feed(progress_event("d", 1), out);
  iss.feed(push_tick(), out);
  EXPECT_EQ(out.count(&mir__send_message__descriptor), 0u);
  tt::free_msg(c3);
}

mir_event *transfer_msg(const char *from, const Trantor__StableCheckpoint *chkp) {
  Trantor__StableCheckpointMsg msg = TRANTOR__STABLE_CHECKPOINT_MSG__INIT;
  msg.checkpoint = const_cast<Trantor__StableCheckpoint *>(chkp);
  return tt::received("iss", from, &msg.base);
}

// Feeds a StableCheckpointMsg and answers the verification; returns everything emitted.
void transfer(Iss &iss, const char *from, const Trantor__StableCheckpoint *chkp, tt::Events &out) {
  tt::Events first;
  iss.feed(transfer_msg(from, chkp), first);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  tt::answer_crypto("a", first, &in);
  mir_event_list l = first.take();
  mir_event_list_concat(&out.list, &l);
  if (in.len > 0) {
    ASSERT_EQ(iss.mod.apply(&in, out), MIR_OK) << mir_error_detail();
  }
}

TEST(IssStateTransfer, ValidCheckpointAheadIsInstalled) {
  // A node in epoch 0 gets epoch 3's checkpoint: after the signatures verify it restores the
  // state, garbage-collects below 3, starts epoch 3 at sn 48 and tells the application; reports
  // of epoch 0 no longer fit and epoch 3's sns are delivered.
  Iss iss;
  tt::Events out;
  iss.init(out);
  iss.feed(sbd(0, 1, 1, cert_of(1)), out);
  out.clear();
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  transfer(iss, "b", c3, out);
  EXPECT_EQ(out.count(&mir__verify_many_request__descriptor, "crypto"), 1u);
  EXPECT_EQ(out.types_to("batchfetcher"),
            (std::vector<std::string>{"trantor.RestoreState", "trantor.NewEpoch",
                                      "trantor.SnapshotRequest", "trantor.CheckpointNotice"}));
  auto *rs = tt::payload<Trantor__RestoreState>(out.of(&trantor__restore_state__descriptor)[0]);
  EXPECT_EQ(tt::str(rs->checkpoint->snapshot->app_data), "app-state");
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  EXPECT_EQ(ne->epoch, 3u);
  EXPECT_EQ(ne->first_sn, 48u);
  for (const char *dest : {"ordering", "checkpoint", "timer"}) {
    auto gcs = out.of(&mir__garbage_collect__descriptor, dest);
    ASSERT_EQ(gcs.size(), 1u) << dest;
    EXPECT_EQ(tt::payload<Mir__GarbageCollect>(gcs[0])->retention_index, 3u);
  }
  EXPECT_EQ(submodules(out, "ordering").front(), "ordering/3/0");
  EXPECT_EQ(submodules(out, "checkpoint"), (std::vector<std::string>{"checkpoint/3"}));
  IssStats st = iss.stats();
  EXPECT_EQ(st.transfers, 1u);
  EXPECT_EQ(st.epoch, 3u);
  EXPECT_EQ(st.stable_epoch, 3u);
  out.clear();
  iss.feed(sbd(0, 0, 0, cert_of(0)), out);
  EXPECT_EQ(iss.stats().invalid_deliver, 1u);
  iss.feed(sbd(3, 0, 48, cert_of(48)), out);
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{48}));
  // The same checkpoint again is no longer ahead.
  out.clear();
  transfer(iss, "c", c3, out);
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(iss.stats().transfer_stale, 1u);
  tt::free_msg(c3);
}

TEST(IssStateTransfer, ForgedCheckpointsAreRejected) {
  // Too few signers, a non-member or repeated signer, unsorted signers, a tampered state (its
  // recomputed hash no longer matches the signatures), a bad signature, a wrong epoch length,
  // another membership, a non-member sender and a checkpoint that is not ahead: nothing is
  // installed.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  std::vector<Trantor__StableCheckpoint *> cs;
  auto dropped = [&](Trantor__StableCheckpoint *c, const char *from = "b") {
    cs.push_back(c);
    transfer(iss, from, c, out);
  };
  dropped(make_chkp(iss.m, 3, 48, 16, {"b", "c"}));       // 2 < strong quorum 3
  dropped(make_chkp(iss.m, 3, 48, 16, {"b", "c", "x"}));  // x is not a member
  dropped(make_chkp(iss.m, 3, 48, 16, {"b", "b", "c"}));  // b twice
  dropped(make_chkp(iss.m, 3, 48, 16, {"c", "b", "d"}));  // not sorted
  dropped(make_chkp(iss.m, 3, 48, 12, {"b", "c", "d"}));  // 4 leaders need 16 sns
  Trantor__Membership *other = tt::unit_membership({"a", "b", "c", "e"});
  dropped(make_chkp(other, 3, 48, 16, {"b", "c", "e"}));  // another membership
  tt::free_msg(other);
  dropped(make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"}), "x");  // sender not a member
  Trantor__StableCheckpoint *wrong_sn = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  wrong_sn->sn = 47;
  dropped(wrong_sn);
  EXPECT_EQ(out.count(&mir__verify_many_request__descriptor), 0u);
  EXPECT_EQ(iss.stats().transfer_dropped, 8u);

  dropped(make_chkp(iss.m, 0, 0, 16, {"b", "c", "d"}));  // the genesis: not ahead
  EXPECT_EQ(iss.stats().transfer_stale, 1u);

  Trantor__StableCheckpoint *tampered = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  free(tampered->snapshot->app_data.data);
  tampered->snapshot->app_data = tt::dup_bytes("forged state");
  dropped(tampered);
  Trantor__StableCheckpoint *badsig = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  badsig->cert[1]->signature.data[0] ^= 1;
  dropped(badsig);
  EXPECT_EQ(out.count(&mir__verify_many_request__descriptor), 2u);
  EXPECT_EQ(iss.stats().transfer_bad_sig, 2u);
  EXPECT_EQ(out.count(&trantor__restore_state__descriptor), 0u);
  EXPECT_EQ(iss.stats().transfers, 0u);
  EXPECT_EQ(iss.stats().epoch, 0u);
  for (auto *c : cs) tt::free_msg(c);
}

TEST(IssStateTransfer, OneVerificationPerSender) {
  // While a sender's checkpoint is being verified, further ones from it are dropped as busy;
  // another sender is not blocked, and the first answer installs at most once.
  Iss iss;
  tt::Events out;
  iss.init(out);
  out.clear();
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  tt::Events pending;
  iss.feed(transfer_msg("b", c3), pending);
  iss.feed(transfer_msg("b", c3), pending);
  iss.feed(transfer_msg("c", c3), pending);
  EXPECT_EQ(iss.stats().transfer_busy, 1u);
  EXPECT_EQ(pending.count(&mir__verify_many_request__descriptor), 2u);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  tt::answer_crypto("a", pending, &in);
  ASSERT_EQ(iss.mod.apply(&in, out), MIR_OK);
  EXPECT_EQ(out.count(&trantor__restore_state__descriptor), 1u);
  EXPECT_EQ(iss.stats().transfers, 1u);
  EXPECT_EQ(iss.stats().transfer_stale, 1u);
  tt::free_msg(c3);
}

// What a restarted replica's write-ahead log holds: its stable checkpoint (may be NULL). Owned.
Trantor__Recovered *recovered(const Trantor__StableCheckpoint *chkp) {
  auto *r = static_cast<Trantor__Recovered *>(mir_xmalloc(sizeof(Trantor__Recovered)));
  trantor__recovered__init(r);
  if (chkp != nullptr) {
    r->checkpoint = reinterpret_cast<Trantor__StableCheckpoint *>(mir_message_clone(&chkp->base));
  }
  return r;
}

// Applies Init and Recovered(r, taken) in one batch, as the node does for an event injected
// before it starts; returns apply's result.
mir_err init_with(Iss &iss, Trantor__Recovered *r, tt::Events &out) {
  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_init("iss"));
  mir_event_list_push(&in, mir_event_new("iss", "replica", &r->base));
  return iss.mod.apply(&in, out);
}

TEST(IssRecovered, StoredCheckpointReplacesTheGenesis) {
  // A checkpoint queued with Init starts its epoch at its sn: no genesis instance is created, the
  // batch fetcher gets RestoreState before epoch 3's announcements, the signatures are not asked
  // for again, and the checkpoint is the stable one, durable already.
  Iss iss;
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  tt::Events out;
  ASSERT_EQ(init_with(iss, recovered(c3), out), MIR_OK) << mir_error_detail();
  EXPECT_EQ(submodules(out, "ordering").front(), "ordering/3/0");
  EXPECT_EQ(submodules(out, "ordering").size(), 4u);
  EXPECT_EQ(submodules(out, "checkpoint"), (std::vector<std::string>{"checkpoint/3"}));
  EXPECT_EQ(out.types_to("batchfetcher"),
            (std::vector<std::string>{"trantor.RestoreState", "trantor.NewEpoch",
                                      "trantor.SnapshotRequest", "trantor.CheckpointNotice"}));
  EXPECT_EQ(out.count(&mir__verify_many_request__descriptor), 0u);
  auto *ne = tt::payload<Trantor__NewEpoch>(out.of(&trantor__new_epoch__descriptor)[0]);
  EXPECT_EQ(ne->epoch, 3u);
  EXPECT_EQ(ne->first_sn, 48u);
  IssStats st = iss.stats();
  EXPECT_EQ(st.local_restores, 1u);
  EXPECT_EQ(st.transfers, 0u);
  EXPECT_EQ(st.epoch, 3u);
  EXPECT_EQ(st.next_sn, 48u);
  EXPECT_EQ(st.stable_epoch, 3u);
  EXPECT_EQ(st.durable_epoch, 3u);
  out.clear();
  iss.feed(sbd(3, 0, 48, cert_of(48)), out);
  EXPECT_EQ(delivered(out), (std::vector<uint64_t>{48}));
  tt::free_msg(c3);
}

TEST(IssRecovered, CheckpointThatDoesNotFitStopsTheNode) {
  // Only stable, verified checkpoints are written: one with too few signers, or made for another
  // membership, means the log is not this replica's, and the node stops instead of guessing.
  Trantor__Membership *other = tt::unit_membership({"a", "b", "c", "e"});
  for (int variant = 0; variant < 2; variant++) {
    Iss iss;
    Trantor__StableCheckpoint *c = variant == 0 ? make_chkp(iss.m, 3, 48, 16, {"b", "c"})
                                                : make_chkp(other, 3, 48, 16, {"b", "c", "e"});
    tt::Events out;
    EXPECT_EQ(init_with(iss, recovered(c), out), MIR_EIO) << variant;
    EXPECT_NE(std::string(mir_error_detail()).find("does not fit"), std::string::npos);
    tt::free_msg(c);
  }
  tt::free_msg(other);
}

TEST(IssRecovered, RecoveredAfterTheStartIsAnError) {
  // Records taken after an epoch started could not reach the instances they belong to.
  Iss iss;
  tt::Events out;
  iss.init(out);
  EXPECT_EQ(iss.mod.apply_one(mir_event_new("iss", "replica", &recovered(nullptr)->base), out),
            MIR_EINVAL);
}

TEST(IssRecovered, InstancesAreCreatedWithTheirRecords) {
  // The records of ordering/3/1 and of checkpoint/3's own signature travel in the parameters of
  // those instances; the other instances get none.
  Iss iss;
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  Trantor__Recovered *r = recovered(c3);
  r->n_instances = 1;
  r->instances =
      static_cast<Trantor__RecoveredInstance **>(mir_xmalloc(sizeof(Trantor__RecoveredInstance *)));
  auto *ri =
      static_cast<Trantor__RecoveredInstance *>(mir_xmalloc(sizeof(Trantor__RecoveredInstance)));
  trantor__recovered_instance__init(ri);
  ri->epoch = 3;
  ri->segment = 1;
  ri->pbft = static_cast<Trantor__PbftRecovered *>(mir_xmalloc(sizeof(Trantor__PbftRecovered)));
  trantor__pbft_recovered__init(ri->pbft);
  ri->pbft->view = static_cast<Trantor__WalView *>(mir_xmalloc(sizeof(Trantor__WalView)));
  trantor__wal_view__init(ri->pbft->view);
  ri->pbft->view->view = 2;
  r->instances[0] = ri;
  r->n_checkpoint_sigs = 1;
  r->checkpoint_sigs = static_cast<Trantor__RecoveredCheckpointSig **>(
      mir_xmalloc(sizeof(Trantor__RecoveredCheckpointSig *)));
  auto *cs = static_cast<Trantor__RecoveredCheckpointSig *>(
      mir_xmalloc(sizeof(Trantor__RecoveredCheckpointSig)));
  trantor__recovered_checkpoint_sig__init(cs);
  cs->epoch = 3;
  cs->sig =
      static_cast<Trantor__WalCheckpointSig *>(mir_xmalloc(sizeof(Trantor__WalCheckpointSig)));
  trantor__wal_checkpoint_sig__init(cs->sig);
  cs->sig->signature = tt::dup_bytes("own signature");
  r->checkpoint_sigs[0] = cs;
  tt::Events out;
  ASSERT_EQ(init_with(iss, r, out), MIR_OK) << mir_error_detail();
  auto subs = out.of(&mir__new_submodule__descriptor, "ordering");
  ASSERT_EQ(subs.size(), 4u);
  for (size_t i = 0; i < subs.size(); i++) {
    auto *pp = params_of<Trantor__PbftParams>(subs[i], &trantor__pbft_params__descriptor);
    EXPECT_EQ(pp->recovered != nullptr, i == 1) << i;
    if (i == 1) {
      EXPECT_EQ(pp->recovered->view->view, 2u);
    }
    EXPECT_STREQ(pp->store, "store");
    EXPECT_FALSE(pp->passive);
    tt::free_msg(pp);
  }
  auto chk = out.of(&mir__new_submodule__descriptor, "checkpoint");
  ASSERT_EQ(chk.size(), 1u);
  auto *cp = params_of<Trantor__CheckpointParams>(chk[0], &trantor__checkpoint_params__descriptor);
  ASSERT_NE(cp->recovered, nullptr);
  EXPECT_EQ(tt::str(cp->recovered->signature), "own signature");
  tt::free_msg(cp);
  EXPECT_EQ(iss.stats().recovered_instances, 1u);
  tt::free_msg(c3);
}

TEST(IssRecovered, LogOfOtherParametersIsRefused) {
  // Votes cast under one segment length mean nothing under another: the fingerprint of the
  // parameters in the log must match, and is written at the first start.
  Iss iss;
  tt::Events out;
  iss.init(out);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = trantor_wal_params_key(key);
  ASSERT_FALSE(out.stored.empty());
  EXPECT_EQ(out.stored.front(), std::string(reinterpret_cast<char *>(key), klen));
  Iss other;
  Trantor__Recovered *r = recovered(nullptr);
  uint8_t h[32];
  trantor_params changed = other.p;
  changed.segment_length = kSeg * 2;
  trantor_wal_params_hash(trantor_hash_reference, other.m, &changed, h);
  r->params_hash = tt::dup_bytes(std::string(reinterpret_cast<char *>(h), 32));
  tt::Events out2;
  EXPECT_EQ(init_with(other, r, out2), MIR_ECONFIG);
  Iss same;
  r = recovered(nullptr);
  trantor_wal_params_hash(trantor_hash_reference, same.m, &same.p, h);
  r->params_hash = tt::dup_bytes(std::string(reinterpret_cast<char *>(h), 32));
  tt::Events out3;
  EXPECT_EQ(init_with(same, r, out3), MIR_OK) << mir_error_detail();
  EXPECT_EQ(out3.writes, 0u) << "the fingerprint is there already";
}

TEST(IssDurability, StableCheckpointIsWrittenWithTheDeletionOfOlderRecords) {
  // The stable checkpoint goes to the store with a range deletion of every record of the epochs
  // below it, and the store's CheckpointDurable makes it the durable one.
  Iss iss;
  iss.auto_durable = false;
  tt::Events out;
  iss.init(out);
  out.clear();
  Trantor__StableCheckpoint *c1 = make_chkp(iss.m, 1, 16, 16, {"a", "b", "c"});
  iss.feed(stable_event(c1), out);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = trantor_wal_stable_key(key);
  std::string skey(reinterpret_cast<char *>(key), klen);
  ASSERT_EQ(out.stored.size(), 2u);
  EXPECT_EQ(out.stored[0], skey);
  klen = trantor_wal_instance_key(key, 0, 0, TRANTOR_WAL_VIEW, 0, nullptr);
  EXPECT_EQ(out.stored[1], std::string(reinterpret_cast<char *>(key), 9)) << "range from epoch 0";
  EXPECT_EQ(iss.stats().durable_epoch, 0u);
  auto d = out.of(&trantor__checkpoint_durable__descriptor, "iss");
  ASSERT_EQ(d.size(), 1u);
  tt::Events more;
  iss.feed(mir_event_new("iss", "store", mir_message_clone(d[0]->payload)), more);
  EXPECT_EQ(iss.stats().durable_epoch, 1u);
  tt::free_msg(c1);
}

TEST(IssDurability, AnEpochWaitsForADurableCheckpointCloseEnough) {
  // With epochs_ahead_max 1, epoch 2 starts only once the checkpoint of epoch 1 is durable.
  Iss iss("a", false, 1);
  iss.auto_durable = false;
  tt::Events out;
  iss.init(out);
  finish_epoch(iss, 0, 0, 4, out);
  EXPECT_EQ(iss.stats().epoch, 1u);
  out.clear();
  finish_epoch(iss, 1, 16, 4, out);
  EXPECT_EQ(submodules(out, "ordering").size(), 0u) << "epoch 2 is held back";
  EXPECT_EQ(iss.stats().blocked_starts, 1u);
  Trantor__StableCheckpoint *c1 = make_chkp(iss.m, 1, 16, 16, {"a", "b", "c"});
  iss.feed(stable_event(c1), out);
  EXPECT_EQ(submodules(out, "ordering").size(), 0u) << "stable is not durable";
  auto d = out.of(&trantor__checkpoint_durable__descriptor, "iss");
  ASSERT_EQ(d.size(), 1u);
  mir_event *durable = mir_event_new("iss", "store", mir_message_clone(d[0]->payload));
  out.clear();
  iss.feed(durable, out);
  EXPECT_EQ(submodules(out, "ordering").front(), "ordering/2/0");
  EXPECT_EQ(iss.stats().epoch, 2u);
  tt::free_msg(c1);
}

// Runs the push tick of iss.
void push_tick(Iss &iss, tt::Events &out) {
  auto *t = static_cast<Trantor__PushCheckpoint *>(mir_xmalloc(sizeof(Trantor__PushCheckpoint)));
  trantor__push_checkpoint__init(t);
  iss.feed(mir_event_new("iss", "iss", &t->base), out);
}

mir_event *rejoin_answer(const char *from, uint64_t epoch, const Trantor__StableCheckpoint *c) {
  Trantor__RejoinAnswer a = TRANTOR__REJOIN_ANSWER__INIT;
  a.epoch = epoch;
  a.checkpoint = const_cast<Trantor__StableCheckpoint *>(c);
  return tt::received("iss", from, &a.base);
}

TEST(IssRejoin, WipedReplicaWaitsForItsPeersThenVotesOnlyAboveTheFloor) {
  // A replica whose log says "rejoin" starts no epoch and asks its peers. b answers the genesis,
  // c a verified checkpoint of epoch 3, a forged answer of d does not count; once b, c and d (a
  // strong quorum without a) answered, the floor is 3 + 2 * 4 + 1 = 12: it is written (and the
  // marker removed), epoch 3 is installed, and its instances are passive.
  Iss iss;
  Trantor__Recovered *r = recovered(nullptr);
  r->rejoin = true;
  tt::Events out;
  ASSERT_EQ(init_with(iss, r, out), MIR_OK) << mir_error_detail();
  EXPECT_EQ(submodules(out, "ordering").size(), 0u);
  EXPECT_TRUE(iss.stats().rejoining);
  auto asks = out.of(&mir__send_message__descriptor, "net");
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(tt::destinations(asks[0]), (std::vector<std::string>{"b", "c", "d"}));
  Trantor__StableCheckpoint *c3 = make_chkp(iss.m, 3, 48, 16, {"b", "c", "d"});
  Trantor__StableCheckpoint *forged = make_chkp(iss.m, 9, 144, 16, {"b", "c", "d"});
  forged->cert[0]->signature.data[0] ^= 1;
  // A state transfer push is not taken while rejoining.
  out.clear();
  transfer(iss, "b", c3, out);
  EXPECT_EQ(out.count(&mir__verify_many_request__descriptor), 0u);
  out.clear();
  iss.feed(rejoin_answer("b", 0, nullptr), out);
  for (auto [from, c] :
       {std::pair<const char *, Trantor__StableCheckpoint *>{"c", c3}, {"d", forged}}) {
    tt::Events first;
    iss.feed(rejoin_answer(from, c->snapshot->epoch_config->epoch, c), first);
    mir_event_list in = MIR_EVENT_LIST_INIT;
    tt::answer_crypto("a", first, &in);
    ASSERT_EQ(iss.mod.apply(&in, out), MIR_OK) << mir_error_detail();
  }
  EXPECT_TRUE(iss.stats().rejoining) << "d's forged answer does not count";
  Trantor__StableCheckpoint *c2 = make_chkp(iss.m, 2, 32, 16, {"b", "c", "d"});
  tt::Events first;
  iss.feed(rejoin_answer("d", 2, c2), first);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  tt::answer_crypto("a", first, &in);
  out.clear();
  ASSERT_EQ(iss.mod.apply(&in, out), MIR_OK) << mir_error_detail();
  IssStats st = iss.stats();
  EXPECT_FALSE(st.rejoining);
  EXPECT_EQ(st.vote_floor, 12u);
  EXPECT_EQ(st.epoch, 3u);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  std::string fkey(reinterpret_cast<char *>(key), trantor_wal_floor_key(key));
  std::string jkey(reinterpret_cast<char *>(key), trantor_wal_rejoin_key(key));
  ASSERT_GE(out.stored.size(), 2u);
  EXPECT_EQ(out.stored[0], fkey);
  EXPECT_EQ(out.stored[1], jkey);
  auto subs = out.of(&mir__new_submodule__descriptor, "ordering");
  ASSERT_EQ(subs.size(), 4u);
  for (auto *ev : subs) {
    auto *pp = params_of<Trantor__PbftParams>(ev, &trantor__pbft_params__descriptor);
    EXPECT_TRUE(pp->passive);
    tt::free_msg(pp);
  }
  tt::free_msg(c2);
  tt::free_msg(c3);
  tt::free_msg(forged);
}

TEST(IssRejoin, PeersAnswerAtTheNextPushTickOnce) {
  // A RejoinRequest is answered at the next push tick with the last stable checkpoint, once.
  Iss iss;
  tt::Events out;
  iss.init(out);
  Trantor__StableCheckpoint *c1 = make_chkp(iss.m, 1, 16, 16, {"a", "b", "c"});
  iss.feed(stable_event(c1), out);
  Trantor__RejoinRequest req = TRANTOR__REJOIN_REQUEST__INIT;
  iss.feed(tt::received("iss", "c", &req.base), out);
  iss.feed(tt::received("iss", "c", &req.base), out);
  out.clear();
  push_tick(iss, out);
  int answers = 0;
  for (auto *ev : out.of(&mir__send_message__descriptor, "net")) {
    ProtobufCMessage *m = tt::sent_message(ev);
    if (m->descriptor == &trantor__rejoin_answer__descriptor) {
      answers++;
      EXPECT_EQ(tt::destinations(ev), (std::vector<std::string>{"c"}));
      EXPECT_EQ(reinterpret_cast<Trantor__RejoinAnswer *>(m)->epoch, 1u);
    }
    protobuf_c_message_free_unpacked(m, nullptr);
  }
  EXPECT_EQ(answers, 1);
  out.clear();
  push_tick(iss, out);
  EXPECT_EQ(out.count(&mir__send_message__descriptor, "net"), 0u);
  tt::free_msg(c1);
}

TEST(IssRejoin, ASingleReplicaCannotRejoin) {
  // Without peers holding a strong quorum there is nobody to learn the floor from.
  Trantor__Membership *one = tt::unit_membership({"a"});
  trantor_params p;
  trantor_params_default(&p);
  trantor_iss_config cfg = {};
  cfg.self_id = "a";
  cfg.membership = one;
  cfg.params = &p;
  cfg.hash = trantor_hash_reference;
  Iss iss;
  tt::Module alone;
  ASSERT_EQ(trantor_iss_new(&cfg, &alone.ops, &alone.state), MIR_OK);
  Trantor__Recovered *r = recovered(nullptr);
  r->rejoin = true;
  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in, mir_event_init("iss"));
  mir_event_list_push(&in, mir_event_new("iss", "replica", &r->base));
  tt::Events out;
  EXPECT_EQ(alone.apply(&in, out), MIR_ECONFIG);
  tt::free_msg(one);
}

TEST(Iss, InvalidConfigIsRefused) {
  // Missing fields, invalid params and an ordering factory id too long to name instances are
  // configuration errors.
  Trantor__Membership *m = tt::unit_membership(kIds);
  trantor_params p;
  trantor_params_default(&p);
  trantor_iss_config cfg = {};
  const mir_module_ops *ops;
  void *state;
  EXPECT_EQ(trantor_iss_new(&cfg, &ops, &state), MIR_EINVAL);
  cfg.self_id = "a";
  cfg.membership = m;
  cfg.params = &p;
  cfg.hash = trantor_hash_reference;
  cfg.ordering_id = "a-very-long-ordering-factory";
  EXPECT_EQ(trantor_iss_new(&cfg, &ops, &state), MIR_EINVAL);
  cfg.ordering_id = nullptr;
  p.segment_length = 0;
  EXPECT_EQ(trantor_iss_new(&cfg, &ops, &state), MIR_EINVAL);
  tt::free_msg(m);
}

}  // namespace
