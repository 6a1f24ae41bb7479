// Tests of checkpoint/<e> instances: several instances exchanging CheckpointMsg through a test
// harness with a fake crypto module become stable exactly once with a strong quorum by weight;
// the genesis needs no signatures; a single instance driven by hand drops messages from
// non-members, for other epochs, with a wrong hash or a bad signature, and duplicates; it re-sends
// until stable; its certificate passes the same rule state transfer uses; the snapshot hash covers
// every field; the factory builds instances from CheckpointParams.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "trantor/checkpoint/trantor_test_util.h"

extern "C" {
#include "checkpoint.h"
#include "mir/dsl.h"
#include "mir/factory.h"
#include "mir/registry.h"
#include "wal.h"
}

namespace {

const char kModule[] = "checkpoint/1";
const uint64_t kEpoch = 1, kFirstSn = 16, kLength = 16, kResendMs = 500;

// CheckpointParams of epoch `epoch` over m (borrowed), signed by m. Owned.
Trantor__CheckpointParams *make_params(const Trantor__Membership *m, uint64_t epoch = kEpoch) {
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = epoch;
  ec.first_sn = epoch == 0 ? 0 : kFirstSn;
  ec.length = kLength;
  ec.membership = const_cast<Trantor__Membership *>(m);
  Trantor__CheckpointParams p = TRANTOR__CHECKPOINT_PARAMS__INIT;
  p.epoch_config = &ec;
  p.signers = const_cast<Trantor__Membership *>(m);
  p.leader_policy = tt::bytes("policy-bytes");
  p.resend_ms = kResendMs;
  p.store = const_cast<char *>("store");
  return reinterpret_cast<Trantor__CheckpointParams *>(mir_message_clone(&p.base));
}

mir_event *snapshot_event(const char *dest, uint64_t epoch, const std::string &app) {
  auto *s = static_cast<Trantor__Snapshot *>(mir_xmalloc(sizeof(Trantor__Snapshot)));
  trantor__snapshot__init(s);
  s->epoch = epoch;
  s->app_data = tt::dup_bytes(app);
  s->client_progress =
      static_cast<Trantor__ClientProgress *>(mir_xmalloc(sizeof(Trantor__ClientProgress)));
  trantor__client_progress__init(s->client_progress);
  return mir_event_new(dest, "app", &s->base);
}

trantor_checkpoint_config config(const char *self) {
  trantor_checkpoint_config cfg = {};
  cfg.self_id = self;
  cfg.hash = trantor_hash_reference;
  return cfg;
}

// One node of the harness: its instance, its inbox, and what it sent to iss and the timer.
// One instance's metrics, read from its set in the registry.
struct ChkpStats {
  uint64_t dropped, duplicates, wrong_hash, bad_signature, accepted;
  bool stable;
};
ChkpStats chkp_stats(void *state) {
  const mir_metrics *m = mir_dsl_metrics(static_cast<mir_dsl *>(state));
  auto rd = [m](const char *name, const char *value = nullptr) {
    return static_cast<uint64_t>(mir_metrics_read(m, name, value));
  };
  const char *drops = "mir_checkpoint_messages_dropped_total";
  return ChkpStats{rd(drops, "invalid"),
                   rd(drops, "duplicate"),
                   rd(drops, "wrong_hash"),
                   rd(drops, "bad_signature"),
                   rd("mir_checkpoint_signatures_accepted_total"),
                   rd("mir_checkpoints_stable_total") != 0};
}

struct Node {
  std::string id;
  tt::Module mod;
  mir_event_list inbox = MIR_EVENT_LIST_INIT;
  tt::Events to_iss, to_timer;
  ~Node() { mir_event_list_free(&inbox); }
};

// Instances of kModule at every member, connected by a perfect network and fake crypto.
struct Net {
  Trantor__Membership *m;
  std::vector<std::unique_ptr<Node>> nodes;
  std::map<std::string, size_t> index;

  Net(const std::vector<std::pair<std::string, uint64_t>> &members, uint64_t epoch = kEpoch) {
    m = tt::membership(members);
    Trantor__CheckpointParams *p = make_params(m, epoch);
    for (const auto &mem : members) {
      auto n = std::make_unique<Node>();
      n->id = mem.first;
      trantor_checkpoint_config cfg = config(n->id.c_str());
      EXPECT_EQ(trantor_checkpoint_new(kModule, p, &cfg, &n->mod.ops, &n->mod.state), MIR_OK);
      index[n->id] = nodes.size();
      nodes.push_back(std::move(n));
    }
    tt::free_msg(p);
  }
  ~Net() { tt::free_msg(m); }

  Node &at(const std::string &id) { return *nodes[index.at(id)]; }

  void snapshot(const std::string &id, const std::string &app, uint64_t epoch = kEpoch) {
    mir_event_list_push(&at(id).inbox, snapshot_event(kModule, epoch, app));
  }

  // Routes one node's output: crypto answered locally, messages to the destinations' inboxes.
  void route(Node &n, tt::Events &out) {
    tt::answer_crypto(n.id.c_str(), out, &n.inbox);
    for (auto &d : tt::deliveries(n.id.c_str(), out)) {
      mir_event_list_push(&at(d.first).inbox, d.second);
    }
    mir_event_list l = out.take();
    while (mir_event *ev = mir_event_list_pop(&l)) {
      if (strcmp(ev->dest, kModule) == 0) {
        mir_event_list_push(&n.inbox, ev); /* released by the store: back to the instance */
      } else if (strcmp(ev->dest, "iss") == 0) {
        mir_event_list_push(&n.to_iss.list, ev);
      } else if (strcmp(ev->dest, "timer") == 0) {
        mir_event_list_push(&n.to_timer.list, ev);
      } else {
        EXPECT_TRUE(strcmp(ev->dest, "crypto") == 0 || strcmp(ev->dest, "net") == 0)
            << "unexpected destination " << ev->dest;
        mir_event_free(ev);
      }
    }
  }

  // Applies inboxes until every one is empty.
  void run() {
    for (bool busy = true; busy;) {
      busy = false;
      for (auto &n : nodes) {
        if (n->inbox.len == 0) continue;
        busy = true;
        tt::Events out;
        mir_event_list in = n->inbox;
        mir_event_list_init(&n->inbox);
        ASSERT_EQ(n->mod.apply(&in, out), MIR_OK) << mir_error_detail();
        route(*n, out);
      }
    }
  }

  size_t stable_count(const std::string &id) {
    return at(id).to_iss.count(&trantor__checkpoint_stable__descriptor);
  }
  ChkpStats stats(const std::string &id) { return chkp_stats(at(id).mod.state); }
};

const std::vector<std::pair<std::string, uint64_t>> kFour = {
    {"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};

TEST(Checkpoint, FourMembersEachBecomeStableExactlyOnce) {
  // With every member's snapshot, every instance collects a strong quorum and announces one
  // stable checkpoint, even when more signatures arrive afterwards.
  Net net(kFour);
  for (const char *id : {"a", "b", "c", "d"}) net.snapshot(id, "state");
  net.run();
  for (const char *id : {"a", "b", "c", "d"}) {
    EXPECT_EQ(net.stable_count(id), 1u) << id;
    EXPECT_TRUE(net.stats(id).stable);
    auto evs = net.at(id).to_iss.of(&trantor__checkpoint_stable__descriptor);
    ASSERT_EQ(evs.size(), 1u);
    const auto *sc = tt::payload<Trantor__CheckpointStable>(evs[0])->checkpoint;
    EXPECT_EQ(sc->sn, kFirstSn);
    EXPECT_GE(sc->n_cert, 3u);
    EXPECT_EQ(tt::str(sc->snapshot->app_data), "state");
    // Every peer that got in reported its progress once.
    EXPECT_EQ(net.at(id).to_iss.count(&trantor__epoch_progress__descriptor), 3u);
  }
}

TEST(Checkpoint, NotStableBelowStrongQuorum) {
  // Two of four signatures are below the strong quorum (3): nothing is announced until a third
  // member signs, whose messages were parked until its own snapshot arrived.
  Net net(kFour);
  net.snapshot("a", "state");
  net.snapshot("b", "state");
  net.run();
  EXPECT_EQ(net.stable_count("a"), 0u);
  EXPECT_EQ(net.stable_count("b"), 0u);
  EXPECT_EQ(net.stable_count("c"), 0u);
  net.snapshot("c", "state");
  net.run();
  EXPECT_EQ(net.stable_count("a"), 1u);
  EXPECT_EQ(net.stable_count("b"), 1u);
  EXPECT_EQ(net.stable_count("c"), 1u);
  // d has no snapshot of its own, so it has nothing to certify: it keeps the messages parked.
  EXPECT_EQ(net.stable_count("d"), 0u);
  EXPECT_EQ(net.stats("d").accepted, 0u);
}

TEST(Checkpoint, QuorumCountsWeightNotMembers) {
  // Weights 3,1,1,1 (W=6, strong quorum 4): a and b together are a quorum, b, c and d are not.
  std::vector<std::pair<std::string, uint64_t>> w = {{"a", 3}, {"b", 1}, {"c", 1}, {"d", 1}};
  Net low(w);
  for (const char *id : {"b", "c", "d"}) low.snapshot(id, "s");
  low.run();
  for (const char *id : {"b", "c", "d"}) EXPECT_EQ(low.stable_count(id), 0u) << id;
  Net high(w);
  for (const char *id : {"a", "b"}) high.snapshot(id, "s");
  high.run();
  EXPECT_EQ(high.stable_count("a"), 1u);
  EXPECT_EQ(high.stable_count("b"), 1u);
}

TEST(Checkpoint, DivergentStateIsNotCertified) {
  // A member whose state differs signs another hash: its signature never counts elsewhere, and
  // it cannot become stable with the others' signatures either.
  Net net(kFour);
  for (const char *id : {"a", "b", "c"}) net.snapshot(id, "state");
  net.snapshot("d", "other state");
  net.run();
  for (const char *id : {"a", "b", "c"}) {
    EXPECT_EQ(net.stable_count(id), 1u) << id;
    EXPECT_EQ(net.stats(id).accepted, 2u) << id;  // never d's signature
  }
  EXPECT_EQ(net.stable_count("d"), 0u);
  EXPECT_EQ(net.stats("d").wrong_hash, 3u);
}

TEST(Checkpoint, GenesisIsStableWithoutSignatures) {
  // Epoch 0's checkpoint is the common starting state: stable on its snapshot, with no signing
  // and no messages.
  Net net(kFour, 0);
  net.snapshot("a", "genesis", 0);
  net.run();
  ASSERT_EQ(net.stable_count("a"), 1u);
  auto evs = net.at("a").to_iss.of(&trantor__checkpoint_stable__descriptor);
  EXPECT_EQ(tt::payload<Trantor__CheckpointStable>(evs[0])->checkpoint->n_cert, 0u);
  EXPECT_EQ(net.at("a").to_timer.size(), 0u);
}

// One instance at node a, driven by hand with messages from the other members.
struct Single {
  Trantor__Membership *m = tt::membership(kFour);
  tt::Module mod;
  std::string digest, hash;

  // tweak changes the parameters before the instance is made (a recovered signature, passive).
  explicit Single(const std::function<void(Trantor__CheckpointParams *)> &tweak = nullptr) {
    Trantor__CheckpointParams *p = make_params(m);
    if (tweak) tweak(p);
    trantor_checkpoint_config cfg = config("a");
    EXPECT_EQ(trantor_checkpoint_new(kModule, p, &cfg, &mod.ops, &mod.state), MIR_OK);
    tt::free_msg(p);
  }
  ~Single() { tt::free_msg(m); }

  // Gives a its snapshot and answers its signing request; returns what it emitted after signing.
  void start(tt::Events &out) {
    tt::Events first;
    ASSERT_EQ(mod.apply_one(snapshot_event(kModule, kEpoch, "state"), first), MIR_OK);
    auto sign = first.of(&mir__sign_request__descriptor, "crypto");
    ASSERT_EQ(sign.size(), 1u);
    digest = tt::str(tt::payload<Mir__SignRequest>(sign[0])->data[0]);
    mir_event_list in = MIR_EVENT_LIST_INIT;
    tt::answer_crypto("a", first, &in);
    ASSERT_EQ(mod.apply(&in, out), MIR_OK);
    /* The store released the own message with its CheckpointPersisted: hand that back. */
    auto persisted = out.of(&trantor__checkpoint_persisted__descriptor, kModule);
    ASSERT_EQ(persisted.size(), 1u);
    tt::Events ignored;
    ASSERT_EQ(
        mod.apply_one(mir_event_new(kModule, "store", mir_message_clone(persisted[0]->payload)),
                      ignored),
        MIR_OK);
    auto sent = out.of(&mir__send_message__descriptor, "net");
    ASSERT_EQ(sent.size(), 1u);
    ProtobufCMessage *msg = tt::sent_message(sent[0]);
    hash = tt::str(reinterpret_cast<Trantor__CheckpointMsg *>(msg)->snapshot_hash);
    protobuf_c_message_free_unpacked(msg, nullptr);
  }

  // node's CheckpointMsg; sign_as signs it (a different node forges it).
  mir_event *msg_from(const char *node, const std::string &h, const char *sign_as,
                      uint64_t epoch = kEpoch, uint64_t sn = kFirstSn) {
    ProtobufCBinaryData part = tt::bytes(digest);
    std::string sig = tt::fake_sig(sign_as, &part, 1);
    Trantor__CheckpointMsg msg = TRANTOR__CHECKPOINT_MSG__INIT;
    msg.epoch = epoch;
    msg.sn = sn;
    msg.snapshot_hash = tt::bytes(h);
    msg.signature = tt::bytes(sig);
    return tt::received(kModule, node, &msg.base);
  }

  // Applies ev, answering crypto requests, and returns everything emitted.
  void feed(mir_event *ev, tt::Events &out) {
    tt::Events first;
    ASSERT_EQ(mod.apply_one(ev, first), MIR_OK);
    mir_event_list in = MIR_EVENT_LIST_INIT;
    tt::answer_crypto("a", first, &in);
    mir_event_list l = first.take();
    mir_event_list_concat(&out.list, &l);
    if (in.len > 0) {
      ASSERT_EQ(mod.apply(&in, out), MIR_OK);
    }
  }

  ChkpStats stats() { return chkp_stats(mod.state); }
};

TEST(CheckpointIngress, RejectsNonMemberWrongHashBadSignatureAndDuplicates) {
  // Each bad message is dropped and counted without touching the quorum; two valid peers then
  // complete it, and later messages change nothing.
  Single s;
  tt::Events out;
  s.start(out);
  std::string wrong(32, 'x');
  s.feed(s.msg_from("x", s.hash, "x"), out);                        // not a member
  s.feed(s.msg_from("b", s.hash, "b", kEpoch + 1), out);            // other epoch
  s.feed(s.msg_from("b", s.hash, "b", kEpoch, kFirstSn + 1), out);  // other sn
  s.feed(s.msg_from("b", wrong, "b"), out);                         // wrong hash
  s.feed(s.msg_from("c", s.hash, "d"), out);                        // c's message signed by d
  s.feed(s.msg_from("c", s.hash, "c"), out);                        // c again: not heard again
  s.feed(s.msg_from("b", s.hash, "b"), out);                        // b again, after a wrong hash
  ChkpStats st = s.stats();
  EXPECT_EQ(st.dropped, 3u);
  EXPECT_EQ(st.wrong_hash, 1u);
  EXPECT_EQ(st.bad_signature, 1u);
  EXPECT_EQ(st.duplicates, 2u);
  EXPECT_EQ(st.accepted, 0u);
  EXPECT_FALSE(st.stable);
  EXPECT_EQ(out.count(&trantor__checkpoint_stable__descriptor), 0u);

  s.feed(s.msg_from("d", s.hash, "d"), out);
  EXPECT_FALSE(s.stats().stable);  // a and d: 2 of 3
  EXPECT_EQ(out.count(&trantor__checkpoint_stable__descriptor), 0u);
  s.feed(s.msg_from("d", s.hash, "d"), out);  // duplicate of an accepted one
  EXPECT_EQ(s.stats().duplicates, 3u);
}

TEST(CheckpointIngress, MalformedFieldsAreDropped) {
  // A hash that is not 32 bytes and empty or oversized signatures are dropped at ingress.
  Single s;
  tt::Events out;
  s.start(out);
  s.feed(s.msg_from("b", "short", "b"), out);
  Trantor__CheckpointMsg msg = TRANTOR__CHECKPOINT_MSG__INIT;
  msg.epoch = kEpoch;
  msg.sn = kFirstSn;
  msg.snapshot_hash = tt::bytes(s.hash);
  s.feed(tt::received(kModule, "c", &msg.base), out);  // no signature
  std::string big(TRANTOR_SIGNATURE_BYTES_MAX + 1, 's');
  msg.signature = tt::bytes(big);
  s.feed(tt::received(kModule, "d", &msg.base), out);
  EXPECT_EQ(s.stats().dropped, 3u);
  EXPECT_EQ(out.count(&trantor__epoch_progress__descriptor), 0u);
}

TEST(CheckpointIngress, StableOnceAndCertificatePassesTheVerifierRule) {
  // With b and c the quorum is reached: one CheckpointStable, its certificate sorted by signer,
  // accepted by trantor_stable_checkpoint_check, and every signature verifies over its digest.
  Single s;
  tt::Events out;
  s.start(out);
  s.feed(s.msg_from("c", s.hash, "c"), out);
  s.feed(s.msg_from("b", s.hash, "b"), out);
  s.feed(s.msg_from("d", s.hash, "d"), out);
  auto evs = out.of(&trantor__checkpoint_stable__descriptor, "iss");
  ASSERT_EQ(evs.size(), 1u);
  const auto *sc = tt::payload<Trantor__CheckpointStable>(evs[0])->checkpoint;
  ASSERT_EQ(sc->n_cert, 3u);
  EXPECT_STREQ(sc->cert[0]->signer, "a");
  EXPECT_STREQ(sc->cert[1]->signer, "b");
  EXPECT_STREQ(sc->cert[2]->signer, "c");
  uint8_t digest[32];
  ASSERT_EQ(trantor_stable_checkpoint_check(sc, s.m, trantor_hash_reference, digest), MIR_OK)
      << mir_error_detail();
  EXPECT_EQ(std::string(reinterpret_cast<char *>(digest), 32), s.digest);
  ProtobufCBinaryData part = tt::bytes(s.digest);
  for (size_t i = 0; i < sc->n_cert; i++) {
    EXPECT_TRUE(tt::fake_ok(sc->cert[i]->signer, &part, 1, sc->cert[i]->signature));
  }
  EXPECT_EQ(s.stats().duplicates + s.stats().accepted, 2u);  // d came too late to matter
  EXPECT_EQ(out.count(&trantor__epoch_progress__descriptor, "iss"), 3u);
}

TEST(CheckpointIngress, ResendsOwnMessageUntilStable) {
  // After signing, a TimerRepeat with the epoch as retention index re-sends the CheckpointMsg to
  // the other signers; once stable a tick sends nothing.
  Single s;
  tt::Events out;
  s.start(out);
  auto timers = out.of(&mir__timer_repeat__descriptor, "timer");
  ASSERT_EQ(timers.size(), 1u);
  const auto *tr = tt::payload<Mir__TimerRepeat>(timers[0]);
  EXPECT_EQ(tr->period_ms, kResendMs);
  EXPECT_EQ(tr->retention_index, kEpoch);
  ASSERT_EQ(tr->n_events, 1u);
  EXPECT_STREQ(tr->events[0]->type, "trantor.CheckpointTick");
  EXPECT_STREQ(tr->events[0]->dest, kModule);
  auto sent = out.of(&mir__send_message__descriptor, "net");
  EXPECT_EQ(tt::destinations(sent[0]), (std::vector<std::string>{"b", "c", "d"}));

  auto tick = [] {
    auto *t = static_cast<Trantor__CheckpointTick *>(mir_xmalloc(sizeof(Trantor__CheckpointTick)));
    trantor__checkpoint_tick__init(t);
    return mir_event_new(kModule, kModule, &t->base);
  };
  tt::Events again;
  s.feed(tick(), again);
  EXPECT_EQ(again.count(&mir__send_message__descriptor, "net"), 1u);
  s.feed(s.msg_from("b", s.hash, "b"), again);
  s.feed(s.msg_from("c", s.hash, "c"), again);
  ASSERT_TRUE(s.stats().stable);
  tt::Events after;
  s.feed(tick(), after);
  EXPECT_EQ(after.size(), 0u);
}

TEST(CheckpointIngress, MessagesBeforeTheSnapshotWaitForIt) {
  // Messages that arrive before the own snapshot are parked (one per sender) and checked when
  // the own hash is known; progress is reported at once.
  Single s;
  tt::Events early;
  // The digest is only known after start; build the messages with the same state's digest by
  // running a second instance first.
  Single ref;
  tt::Events ignore;
  ref.start(ignore);
  s.digest = ref.digest;
  s.feed(s.msg_from("b", ref.hash, "b"), early);
  s.feed(s.msg_from("c", ref.hash, "c"), early);
  EXPECT_EQ(early.count(&mir__verify_request__descriptor), 0u);
  EXPECT_EQ(early.count(&trantor__epoch_progress__descriptor), 2u);
  // start() answers the signing and the two verifications the snapshot released together.
  tt::Events out;
  s.start(out);
  EXPECT_EQ(s.stats().accepted, 2u);
  EXPECT_EQ(out.count(&trantor__checkpoint_stable__descriptor), 1u);
}

TEST(CheckpointIngress, SnapshotOfAnotherEpochIsAnError) {
  // A Snapshot for another epoch is a wiring mistake between local modules and stops the node.
  Single s;
  tt::Events out;
  EXPECT_EQ(s.mod.apply_one(snapshot_event(kModule, kEpoch + 1, "x"), out), MIR_EINVAL);
}

// ---- durability ----

TEST(CheckpointDurability, OwnSignatureIsWrittenBeforeItLeaves) {
  // The own CheckpointMsg is a then event of the store write of the own signature: a restarted
  // replica finds what it signed before it could have sent it.
  Single s;
  tt::Events first;
  ASSERT_EQ(s.mod.apply_one(snapshot_event(kModule, kEpoch, "state"), first), MIR_OK);
  mir_event_list in = MIR_EVENT_LIST_INIT;
  tt::answer_crypto("a", first, &in);
  mir_event_list raw = MIR_EVENT_LIST_INIT;
  ASSERT_EQ(s.mod.ops->apply(s.mod.state, &in, &raw), MIR_OK);
  mir_event_list_free(&in);
  size_t writes = 0, direct_sends = 0;
  MIR_EVENT_LIST_FOREACH(&raw, ev) {
    if (mir_event_is(ev, &mir__send_message__descriptor)) direct_sends++;
    if (!mir_event_is(ev, &mir__store_write__descriptor)) continue;
    writes++;
    auto *w = tt::payload<Mir__StoreWrite>(ev);
    ASSERT_EQ(w->n_ops, 1u);
    uint8_t key[TRANTOR_WAL_KEY_MAX];
    size_t klen = trantor_wal_instance_key(key, kEpoch, TRANTOR_WAL_CHECKPOINT_SEGMENT,
                                           TRANTOR_WAL_CHECKPOINT_SIG, 0, nullptr);
    EXPECT_EQ(tt::str(w->ops[0]->key), std::string(reinterpret_cast<char *>(key), klen));
    ASSERT_EQ(w->n_then, 2u);
    EXPECT_STREQ(w->then[0]->type, "mir.SendMessage");
    EXPECT_STREQ(w->then[1]->type, "trantor.CheckpointPersisted");
  }
  EXPECT_EQ(writes, 1u);
  EXPECT_EQ(direct_sends, 0u);
  mir_event_list_free(&raw);
}

TEST(CheckpointDurability, RestartWithTheSameStateReusesTheSignature) {
  // After a restart the instance finds its own signature over the same snapshot hash: it sends
  // that one, without signing again and without writing it again.
  std::string hash, sig;
  {
    Single s;
    tt::Events out;
    s.start(out);
    hash = s.hash;
    auto sent = out.of(&mir__send_message__descriptor, "net");
    ProtobufCMessage *msg = tt::sent_message(sent[0]);
    sig = tt::str(reinterpret_cast<Trantor__CheckpointMsg *>(msg)->signature);
    protobuf_c_message_free_unpacked(msg, nullptr);
  }
  Single s([&](Trantor__CheckpointParams *p) {
    p->recovered =
        static_cast<Trantor__WalCheckpointSig *>(mir_xmalloc(sizeof(Trantor__WalCheckpointSig)));
    trantor__wal_checkpoint_sig__init(p->recovered);
    p->recovered->snapshot_hash = tt::dup_bytes(hash);
    p->recovered->signature = tt::dup_bytes(sig);
  });
  tt::Events out;
  ASSERT_EQ(s.mod.apply_one(snapshot_event(kModule, kEpoch, "state"), out), MIR_OK);
  EXPECT_EQ(out.count(&mir__sign_request__descriptor), 0u);
  EXPECT_EQ(out.writes, 0u);
  auto sent = out.of(&mir__send_message__descriptor, "net");
  ASSERT_EQ(sent.size(), 1u);
  ProtobufCMessage *msg = tt::sent_message(sent[0]);
  EXPECT_EQ(tt::str(reinterpret_cast<Trantor__CheckpointMsg *>(msg)->signature), sig);
  protobuf_c_message_free_unpacked(msg, nullptr);
}

TEST(CheckpointDurability, RestartWithAnotherStateStops) {
  // The same log gives the same state: a different one after a restart means a diverged log or
  // application, and the replica stops rather than sign a second state for the epoch.
  Single s([](Trantor__CheckpointParams *p) {
    p->recovered =
        static_cast<Trantor__WalCheckpointSig *>(mir_xmalloc(sizeof(Trantor__WalCheckpointSig)));
    trantor__wal_checkpoint_sig__init(p->recovered);
    p->recovered->snapshot_hash = tt::dup_bytes(std::string(32, 'h'));
    p->recovered->signature = tt::dup_bytes("sig");
  });
  tt::Events out;
  EXPECT_EQ(s.mod.apply_one(snapshot_event(kModule, kEpoch, "state"), out), MIR_EIO);
  EXPECT_NE(std::string(mir_error_detail()).find("differs from the one this replica signed"),
            std::string::npos)
      << mir_error_detail();
}

TEST(CheckpointDurability, PassiveInstanceCollectsButDoesNotSign) {
  // A rejoining replica's instance signs nothing, and still becomes stable with the signatures
  // of a strong quorum of others.
  Single s([](Trantor__CheckpointParams *p) { p->passive = true; });
  tt::Events out;
  ASSERT_EQ(s.mod.apply_one(snapshot_event(kModule, kEpoch, "state"), out), MIR_OK);
  EXPECT_EQ(out.count(&mir__sign_request__descriptor), 0u);
  EXPECT_EQ(out.count(&mir__send_message__descriptor), 0u);
  Single ref;  // the same state at a correct member, for the hash and the digest
  tt::Events ref_out;
  ref.start(ref_out);
  s.digest = ref.digest;
  s.feed(s.msg_from("b", ref.hash, "b"), out);
  s.feed(s.msg_from("c", ref.hash, "c"), out);
  EXPECT_FALSE(s.stats().stable);
  s.feed(s.msg_from("d", ref.hash, "d"), out);
  EXPECT_TRUE(s.stats().stable);
  EXPECT_EQ(out.count(&mir__send_message__descriptor), 0u);
}

TEST(CheckpointDurability, StableInstanceAnswersASignerThatAsksAgain) {
  // A signer that keeps sending (it restarted and lost what it collected) gets the own signature
  // back as an answer, once per message; answers are never answered.
  Single s;
  tt::Events out;
  s.start(out);
  s.feed(s.msg_from("b", s.hash, "b"), out);
  s.feed(s.msg_from("c", s.hash, "c"), out);
  ASSERT_TRUE(s.stats().stable);
  tt::Events again;
  s.feed(s.msg_from("b", s.hash, "b"), again);
  auto sent = again.of(&mir__send_message__descriptor, "net");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(tt::destinations(sent[0]), (std::vector<std::string>{"b"}));
  ProtobufCMessage *msg = tt::sent_message(sent[0]);
  EXPECT_TRUE(reinterpret_cast<Trantor__CheckpointMsg *>(msg)->answer);
  protobuf_c_message_free_unpacked(msg, nullptr);
  tt::Events none;
  ProtobufCBinaryData part = tt::bytes(s.digest);
  Trantor__CheckpointMsg ans = TRANTOR__CHECKPOINT_MSG__INIT;
  ans.epoch = kEpoch;
  ans.sn = kFirstSn;
  ans.snapshot_hash = tt::bytes(s.hash);
  std::string dsig = tt::fake_sig("d", &part, 1);
  ans.signature = tt::bytes(dsig);
  ans.answer = true;
  s.feed(tt::received(kModule, "d", &ans.base), none);
  s.feed(tt::received(kModule, "d", &ans.base), none);
  EXPECT_EQ(none.count(&mir__send_message__descriptor), 0u);
}

TEST(CheckpointEncoding, SnapshotHashCoversEveryField) {
  // Changing any part of the snapshot (epoch, first sn, length, membership, leader policy, client
  // progress, application data) changes its hash; a missing client progress equals an empty one.
  Trantor__Membership *m = tt::unit_membership({"a", "b", "c", "d"});
  Trantor__Membership *m2 = tt::unit_membership({"a", "b", "c", "e"});
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = 2;
  ec.first_sn = 32;
  ec.length = 16;
  ec.membership = m;
  Trantor__ClientWatermark cw = TRANTOR__CLIENT_WATERMARK__INIT;
  cw.client_id = const_cast<char *>("client");
  cw.low_wm = 5;
  Trantor__ClientWatermark *cws[] = {&cw};
  Trantor__ClientProgress cp = TRANTOR__CLIENT_PROGRESS__INIT;
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  snap.epoch_config = &ec;
  snap.app_data = tt::bytes("app");
  snap.leader_policy = tt::bytes("lp");
  ASSERT_EQ(trantor_snapshot_check(&snap), MIR_OK);
  auto h = [&] {
    uint8_t out[32];
    trantor_snapshot_hash(&snap, trantor_hash_reference, out);
    return std::string(reinterpret_cast<char *>(out), 32);
  };
  std::set<std::string> seen;
  std::string base = h();
  snap.client_progress = &cp;
  EXPECT_EQ(h(), base);  // empty client progress == none
  seen.insert(base);
  cp.n_clients = 1;
  cp.clients = cws;
  EXPECT_TRUE(seen.insert(h()).second);
  ec.epoch = 3;
  EXPECT_TRUE(seen.insert(h()).second);
  ec.first_sn = 33;
  EXPECT_TRUE(seen.insert(h()).second);
  ec.length = 17;
  EXPECT_TRUE(seen.insert(h()).second);
  ec.membership = m2;
  EXPECT_TRUE(seen.insert(h()).second);
  snap.leader_policy = tt::bytes("lq");
  EXPECT_TRUE(seen.insert(h()).second);
  snap.app_data = tt::bytes("apq");
  EXPECT_TRUE(seen.insert(h()).second);
  // Moving a byte between two parts changes the hash too (length prefixes).
  snap.leader_policy = tt::bytes("lqa");
  snap.app_data = tt::bytes("pq");
  EXPECT_TRUE(seen.insert(h()).second);
  tt::free_msg(m);
  tt::free_msg(m2);
}

TEST(CheckpointEncoding, SnapshotCheckRejectsMissingParts) {
  // No epoch config, a zero length or an invalid membership are structural errors.
  Trantor__StateSnapshot snap = TRANTOR__STATE_SNAPSHOT__INIT;
  EXPECT_EQ(trantor_snapshot_check(nullptr), MIR_EPROTO);
  EXPECT_EQ(trantor_snapshot_check(&snap), MIR_EPROTO);
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  snap.epoch_config = &ec;
  ec.length = 4;
  EXPECT_EQ(trantor_snapshot_check(&snap), MIR_EPROTO);  // no membership
  Trantor__Membership *m = tt::unit_membership({"b", "a"});
  ec.membership = m;
  EXPECT_EQ(trantor_snapshot_check(&snap), MIR_EPROTO);  // unsorted
  tt::free_msg(m);
}

TEST(CheckpointFactory, BuildsInstancesFromCheckpointParams) {
  // The factory creates checkpoint/<e> from a NewSubmodule carrying CheckpointParams, hands it
  // its Snapshot, and refuses parameters of another type.
  trantor_checkpoint_config cfg = config("a");
  tt::Module fac;
  ASSERT_EQ(trantor_checkpoint_factory_new("checkpoint", &cfg, 0, &fac.ops, &fac.state), MIR_OK);
  Trantor__Membership *m = tt::membership(kFour);
  Trantor__CheckpointParams *p = make_params(m, 0);
  tt::Events out;
  mir_event_list in = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&in,
                      mir_event_new_submodule("checkpoint", "iss", "checkpoint/0", &p->base, 0));
  mir_event_list_push(&in, snapshot_event("checkpoint/0", 0, "genesis"));
  ASSERT_EQ(fac.apply(&in, out), MIR_OK) << mir_error_detail();
  EXPECT_EQ(out.count(&trantor__checkpoint_stable__descriptor, "iss"), 1u);
  mir_registry_add(&trantor__membership__descriptor);  // decodable, but not CheckpointParams
  tt::Events out2;
  EXPECT_EQ(fac.apply_one(mir_event_new_submodule("checkpoint", "iss", "checkpoint/1", &m->base, 1),
                          out2),
            MIR_EINVAL);
  tt::free_msg(p);
  tt::free_msg(m);
}

TEST(CheckpointFactory, InvalidParamsAreRefused) {
  // Parameters without a valid signers' membership or with resend_ms 0 are refused.
  trantor_checkpoint_config cfg = config("a");
  Trantor__Membership *m = tt::membership(kFour);
  Trantor__CheckpointParams *p = make_params(m);
  const mir_module_ops *ops;
  void *state;
  p->resend_ms = 0;
  EXPECT_EQ(trantor_checkpoint_new(kModule, p, &cfg, &ops, &state), MIR_EINVAL);
  p->resend_ms = 1;
  Trantor__Membership *saved = p->signers;
  p->signers = nullptr;
  EXPECT_EQ(trantor_checkpoint_new(kModule, p, &cfg, &ops, &state), MIR_EINVAL);
  p->signers = saved;
  tt::free_msg(p);
  tt::free_msg(m);
}

}  // namespace
