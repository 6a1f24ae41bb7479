// Tests of the PBFT segment orderer: the good case with unit and weighted quorums, view changes
// (crashed primary, prepared sns kept, missing preprepares fetched, the join rule, resends),
// Byzantine primaries that equivocate, catch-up through Done, ingress validation of garbage and
// forged messages, bounded buffers, timeouts doubling per view, and the configuration checks.
// A cluster of instances is driven by pbft_harness.h; timers only fire when a test says so, so
// nothing here depends on real time.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "pbft_harness.h"

namespace {

using pbft_test::Cluster;
using pbft_test::Options;

size_t L(const Cluster &c) {
  return c.params().n_sns;
}

std::vector<size_t> all_but(size_t n, size_t skip) {
  std::vector<size_t> v;
  for (size_t i = 0; i < n; i++) {
    if (i != skip) v.push_back(i);
  }
  return v;
}

// ---- message builders (owned trees, freed with pbft_test::free_msg) ----

ProtobufCBinaryData digest_bytes(size_t len, uint8_t fill) {
  return pbft_test::bytes_of(std::string(len, static_cast<char>(fill)));
}

Trantor__Prepare *make_prepare(uint64_t sn, uint64_t view, size_t digest_len = 32) {
  auto *m = static_cast<Trantor__Prepare *>(mir_xmalloc(sizeof(Trantor__Prepare)));
  trantor__prepare__init(m);
  m->sn = sn;
  m->view = view;
  m->digest = digest_bytes(digest_len, 7);
  return m;
}

Trantor__Preprepare *make_preprepare(uint64_t sn, uint64_t view, const std::string &cert) {
  auto *m = static_cast<Trantor__Preprepare *>(mir_xmalloc(sizeof(Trantor__Preprepare)));
  trantor__preprepare__init(m);
  m->sn = sn;
  m->view = view;
  m->cert = pbft_test::bytes_of(cert);
  return m;
}

// A view change of `signer` for view v with empty sets, signed by the fake signer; a corrupted
// signature when bad_sig.
Trantor__SignedViewChange *make_vc(const std::string &signer, uint64_t v, bool bad_sig = false) {
  auto *vc = static_cast<Trantor__ViewChange *>(mir_xmalloc(sizeof(Trantor__ViewChange)));
  trantor__view_change__init(vc);
  vc->view = v;
  uint8_t h[32];
  trantor_pbft_view_change_hash(trantor_hash_reference, vc, h);
  ProtobufCBinaryData part = {32, h};
  std::string sig = pbft_test::fake_sign(signer, &part, 1);
  if (bad_sig) sig[0] = static_cast<char>(sig[0] ^ 1);
  auto *svc =
      static_cast<Trantor__SignedViewChange *>(mir_xmalloc(sizeof(Trantor__SignedViewChange)));
  trantor__signed_view_change__init(svc);
  svc->view_change = vc;
  svc->signer = mir_xstrdup(signer.c_str());
  svc->signature = pbft_test::bytes_of(sig);
  return svc;
}

// A NewView for view v; takes ownership of the view changes and preprepares.
Trantor__NewView *make_nv(uint64_t v, std::vector<Trantor__SignedViewChange *> vcs,
                          std::vector<Trantor__Preprepare *> pps = {}) {
  auto *nv = static_cast<Trantor__NewView *>(mir_xmalloc(sizeof(Trantor__NewView)));
  trantor__new_view__init(nv);
  nv->view = v;
  nv->n_view_changes = vcs.size();
  nv->view_changes = static_cast<Trantor__SignedViewChange **>(
      mir_xmalloc((vcs.size() + 1) * sizeof(Trantor__SignedViewChange *)));
  for (size_t i = 0; i < vcs.size(); i++) nv->view_changes[i] = vcs[i];
  nv->n_preprepares = pps.size();
  nv->preprepares = static_cast<Trantor__Preprepare **>(
      mir_xmalloc((pps.size() + 1) * sizeof(Trantor__Preprepare *)));
  for (size_t i = 0; i < pps.size(); i++) nv->preprepares[i] = pps[i];
  return nv;
}

// Injects msg (takes ownership) into node `to` as if `from` sent it, and frees it.
void send_owned(Cluster &c, size_t to, const std::string &from, ProtobufCMessage *msg) {
  c.inject(to, from, msg);
  pbft_test::free_msg(msg);
}

bool is_type(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *d) {
  return m->descriptor == d;
}

// Rewrites the certificate of a Preprepare (owned tree) in place.
void set_cert(ProtobufCMessage *m, const std::string &cert) {
  auto *pp = reinterpret_cast<Trantor__Preprepare *>(m);
  free(pp->cert.data);
  pp->cert = pbft_test::bytes_of(cert);
}

// ---- the good case ----

TEST(PbftGoodCase, FourNodesCommitEverySnWithIdenticalCerts) {
  // With four correct nodes every sn is committed once at every node with the primary's
  // certificate, without a view change, and the segment checkpoint becomes stable.
  Cluster c(Options{});
  c.start();
  c.run();
  for (size_t i = 0; i < c.size(); i++) {
    EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
    pbft_test::PbftStats s = c.stats(i);
    EXPECT_EQ(s.committed, L(c));
    EXPECT_EQ(s.view_changes, 0u);
    EXPECT_EQ(s.dropped_total, 0u);
    EXPECT_TRUE(s.done);
    EXPECT_TRUE(s.stable);
  }
  c.expect_agreement({0, 1, 2, 3});
  EXPECT_EQ(c.stats(0).proposals, L(c));
  EXPECT_EQ(c.stats(1).proposals, 0u);
  std::set<std::string> certs;
  for (auto &d : c.node(2).delivered) {
    EXPECT_FALSE(d.second.aborted);
    EXPECT_EQ(d.second.cert.rfind("cert-n0-", 0), 0u);
    certs.insert(d.second.cert);
  }
  EXPECT_EQ(certs.size(), L(c)) << "every sn got its own certificate";
  EXPECT_EQ(c.apply_errors, 0);
}

TEST(PbftGoodCase, SingleNodeOrdersAlone) {
  // A membership of one node is its own strong quorum: it proposes, prepares, commits and
  // becomes stable alone.
  Options o;
  o.weights = {1};
  o.sns = {5, 6, 7};
  Cluster c(o);
  c.start();
  c.run();
  EXPECT_TRUE(c.all_delivered(0));
  EXPECT_TRUE(c.stats(0).stable);
}

TEST(PbftGoodCase, SevenWeightedNodesCommitWithTheHeaviestDown) {
  // Weights {3,1,1,2,1,1,1} (W=10, f=3, strong 7): losing the weight-3 node leaves exactly a
  // strong quorum, and the other six commit every sn.
  Options o;
  o.weights = {3, 1, 1, 2, 1, 1, 1};
  o.leader = 3;
  Cluster c(o);
  c.node(0).crashed = true;
  c.start();
  c.run();
  for (size_t i = 1; i < c.size(); i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  c.expect_agreement(all_but(7, 0));
  EXPECT_EQ(c.node(1).delivered.begin()->second.cert.rfind("cert-n3-", 0), 0u);
}

TEST(PbftGoodCase, WeightsNotHeadcountMakeQuorums) {
  // With weights {3,1,1,2,1,1,1}, five of seven nodes up (a unit-weight quorum) weigh only 6 < 7:
  // nothing may commit.
  Options o;
  o.weights = {3, 1, 1, 2, 1, 1, 1};
  o.leader = 3;
  Cluster c(o);
  c.node(0).crashed = true;
  c.node(1).crashed = true;
  c.start();
  c.run();
  for (size_t i = 2; i < c.size(); i++) EXPECT_TRUE(c.node(i).delivered.empty());
}

TEST(PbftGoodCase, SevenUnitNodesToleratesTwoCrashes) {
  // Seven unit-weight nodes (strong quorum 5) commit every sn with two backups down.
  Options o;
  o.weights = {1, 1, 1, 1, 1, 1, 1};
  o.leader = 2;
  Cluster c(o);
  c.node(5).crashed = true;
  c.node(6).crashed = true;
  c.start();
  c.run();
  for (size_t i = 0; i < 5; i++) EXPECT_TRUE(c.all_delivered(i));
  c.expect_agreement({0, 1, 2, 3, 4});
}

TEST(PbftGoodCase, ProposalsArePipelined) {
  // The primary proposes every sn without waiting for earlier ones to commit.
  Cluster c(Options{});
  c.set_filter([](size_t, size_t, ProtobufCMessage *m) {
    return !is_type(m, &trantor__commit__descriptor);
  });
  c.start();
  c.run();
  EXPECT_EQ(c.stats(0).proposals, L(c));
  EXPECT_TRUE(c.node(1).delivered.empty());
}

// A Prepare or Commit (owned) for sn in view 0 with the digest of cert.
ProtobufCMessage *make_vote(bool commit, uint64_t sn, const std::string &cert) {
  uint8_t d[32];
  trantor_pbft_preprepare_digest(trantor_hash_reference, sn, false,
                                 reinterpret_cast<const uint8_t *>(cert.data()), cert.size(), d);
  Trantor__Prepare *m = make_prepare(sn, 0);
  free(m->digest.data);
  m->digest = pbft_test::bytes_of(std::string(reinterpret_cast<char *>(d), 32));
  if (!commit) return &m->base;
  auto *c = static_cast<Trantor__Commit *>(mir_xmalloc(sizeof(Trantor__Commit)));
  trantor__commit__init(c);
  c->sn = m->sn;
  c->digest = m->digest;
  m->digest = ProtobufCBinaryData{0, nullptr};
  pbft_test::free_msg(&m->base);
  return &c->base;
}

TEST(PbftRules, PreparedNeedsAStrongQuorumOfPrepares) {
  // OSDI 1999, 4.2: a node sends its Commit only once the preprepare and Prepares of a strong
  // quorum (3 of 4, its own included) match; two are not enough.
  Cluster c(Options{});
  for (size_t i : {0, 2, 3}) c.node(i).crashed = true;
  c.start();
  c.run();
  send_owned(c, 1, "n0", &make_preprepare(0, 0, "A")->base);
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 1);
  send_owned(c, 1, "n2", make_vote(false, 0, "A"));  // n1 + n2: weight 2
  send_owned(c, 1, "n3", make_vote(false, 0, "B"));  // another digest does not count
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Commit"], 0);
  send_owned(c, 1, "n0", make_vote(false, 0, "A"));  // weight 3
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Commit"], 1);
}

TEST(PbftRules, CommittedNeedsAStrongQuorumOfCommits) {
  // OSDI 1999, 4.2: a prepared sn is delivered only with matching Commits of a strong quorum.
  Cluster c(Options{});
  for (size_t i : {0, 2, 3}) c.node(i).crashed = true;
  c.start();
  c.run();
  send_owned(c, 1, "n0", &make_preprepare(0, 0, "A")->base);
  send_owned(c, 1, "n0", make_vote(false, 0, "A"));
  send_owned(c, 1, "n2", make_vote(false, 0, "A"));
  send_owned(c, 1, "n0", make_vote(true, 0, "A"));  // with its own Commit: weight 2
  c.run();
  EXPECT_TRUE(c.node(1).delivered.empty());
  send_owned(c, 1, "n3", make_vote(true, 0, "A"));
  c.run();
  ASSERT_EQ(c.node(1).delivered.size(), 1u);
  EXPECT_EQ(c.node(1).delivered[0].cert, "A");
}

// ---- view changes ----

TEST(PbftViewChange, CrashedPrimaryIsReplacedAndFreeSnsGetRealCerts) {
  // A silent primary: the others time out, move to view 1, and its primary proposes every
  // (free) sn with fresh certificates, so nothing is lost or aborted.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.node(i).delivered.empty());
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
    pbft_test::PbftStats s = c.stats(i);
    EXPECT_EQ(s.view, 1u);
    EXPECT_FALSE(s.in_view_change);
    EXPECT_EQ(s.new_views, 1u);
  }
  c.expect_agreement({1, 2, 3});
  for (auto &d : c.node(3).delivered) {
    EXPECT_FALSE(d.second.aborted);
    EXPECT_EQ(d.second.cert.rfind("cert-n1-", 0), 0u) << d.second.cert;
  }
  // The sn timeout re-armed after each commit of view 1 is doubled.
  const auto &delays = c.node(2).sn_delays;
  ASSERT_GT(delays.size(), 2u);
  EXPECT_EQ(delays.front(), 100u);
  EXPECT_EQ(delays.back(), 200u);
}

TEST(PbftViewChange, PreparedSnsSurviveTheViewChange) {
  // Every sn prepared in view 0 but never committed (commits lost) is re-proposed by the new
  // primary with the same certificate (rules A1/A2) and then committed.
  Cluster c(Options{});
  c.set_filter([](size_t, size_t, ProtobufCMessage *m) {
    return !is_type(m, &trantor__commit__descriptor);
  });
  c.start();
  c.run();
  c.node(0).crashed = true;
  c.clear_filter();
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  for (size_t i = 1; i < 4; i++) {
    ASSERT_TRUE(c.all_delivered(i)) << c.node(i).id;
    for (size_t k = 0; k < L(c); k++) {
      EXPECT_EQ(c.node(i).delivered[c.params().sns[k]].cert, "cert-n0-" + std::to_string(k));
    }
  }
  EXPECT_EQ(c.stats(1).proposals, 0u) << "nothing was free";
}

TEST(PbftViewChange, NewPrimaryFetchesAPreprepareItMissed) {
  // The next primary never saw the preprepare of one sn that the others prepared; it asks the
  // holders for it (PreprepareRequest / MissingPreprepare), ignores an answer with another
  // digest, and sends its NewView once it has the right one.
  Options o;
  Cluster c(o);
  uint64_t target = o.sns[2];
  c.set_filter([target](size_t, size_t to, ProtobufCMessage *m) {
    if (is_type(m, &trantor__commit__descriptor)) return false;
    if (to == 1 && is_type(m, &trantor__preprepare__descriptor)) {
      return reinterpret_cast<Trantor__Preprepare *>(m)->sn != target;
    }
    return true;
  });
  c.start();
  c.run();
  c.node(0).crashed = true;
  c.set_filter([](size_t from, size_t, ProtobufCMessage *m) {  // n2 answers with a forgery
    if (from == 2 && is_type(m, &trantor__missing_preprepare__descriptor)) {
      set_cert(&reinterpret_cast<Trantor__MissingPreprepare *>(m)->preprepare->base, "forged");
    }
    return true;
  });
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  EXPECT_EQ(c.stats(1).dropped[TRANTOR_PBFT_DROP_UNSOLICITED], 1u) << "the forgery";
  for (size_t i = 1; i < 4; i++) {
    ASSERT_TRUE(c.all_delivered(i));
    EXPECT_EQ(c.node(i).delivered[target].cert, "cert-n0-2");
  }
  c.expect_agreement({1, 2, 3});
}

TEST(PbftViewChange, JoinRuleBringsInANodeWithoutATimeout) {
  // View changes of a weak quorum (n1, n2) make n3 join view 1 without its own timeout.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  c.fire_timeouts(1);
  c.fire_timeouts(2);
  c.run();
  EXPECT_EQ(c.stats(3).joins, 1u);
  for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.all_delivered(i));
  c.expect_agreement({1, 2, 3});
}

TEST(PbftViewChange, OneTimeoutAloneDoesNotMoveOthers) {
  // A single node's view change (below a weak quorum) moves nobody else.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  c.fire_timeouts(1);
  c.run();
  EXPECT_EQ(c.stats(1).view, 1u);
  EXPECT_EQ(c.stats(2).view, 0u);
  EXPECT_EQ(c.stats(3).view, 0u);
}

TEST(PbftViewChange, TimeoutsDoublePerView) {
  // The sn and segment timeouts of view v are the base values times 2^v; a timeout of a view
  // already left is ignored. n1, the primary of view 1, is down and n0's proposals are lost, so
  // view 0 and view 1 both end by timeouts and view 2 (primary n2) completes.
  Options o;
  Cluster c(o);
  c.node(1).crashed = true;
  c.set_filter([](size_t from, size_t, ProtobufCMessage *m) {
    return !(from == 0 && is_type(m, &trantor__preprepare__descriptor));
  });
  c.start();
  c.run();
  for (size_t i : {0, 2, 3}) c.fire_timeouts(i);
  c.run();
  for (size_t i : {0, 2, 3}) c.fire_timeouts(i);
  c.run();
  EXPECT_EQ(c.stats(2).view, 2u);
  for (size_t i : {0, 2, 3}) EXPECT_TRUE(c.all_delivered(i));
  c.expect_agreement({0, 2, 3});
  const auto &sn = c.node(2).sn_delays, &seg = c.node(2).seg_delays;
  ASSERT_GE(sn.size(), 3u);
  EXPECT_EQ(std::vector<uint64_t>(sn.begin(), sn.begin() + 3),
            (std::vector<uint64_t>{100, 200, 400}));
  // View 2's timeouts run twice: from the quorum of view changes, and again from its NewView.
  EXPECT_EQ(seg, (std::vector<uint64_t>{1000, 2000, 4000, 4000}));
  EXPECT_GE(c.stats(2).stale_answers, 2u) << "the second timeout of each view was stale";
}

TEST(PbftViewChange, ViewChangeAloneWaitsForAStrongQuorum) {
  // A node whose view change nobody shares (as when it enters an epoch before the others and
  // times out its instances alone) starts no timeout in its new view, so it stays in view 1
  // instead of climbing to ever higher views alone; when the others time out later they all
  // meet in view 1, whose timeouts then run, and the view change completes at once (PBFT's
  // liveness rule, OSDI 1999, section 4.5.2).
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  for (int k = 0; k < 3; k++) {
    c.fire_timeouts(1);
    c.run();
  }
  EXPECT_EQ(c.stats(1).view, 1u);
  EXPECT_EQ(c.stats(1).view_changes, 1u);
  EXPECT_EQ(c.node(1).sn_delays, (std::vector<uint64_t>{100})) << "no timeout of view 1 yet";
  c.fire_timeouts(2);
  c.fire_timeouts(3);
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_EQ(c.stats(i).view, 1u);
    EXPECT_FALSE(c.stats(i).in_view_change);
    EXPECT_TRUE(c.all_delivered(i));
  }
  ASSERT_GE(c.node(1).sn_delays.size(), 2u);
  EXPECT_EQ(c.node(1).sn_delays[1], 200u) << "view 1's timeout runs once the quorum is there";
  EXPECT_EQ(c.node(1).seg_delays, (std::vector<uint64_t>{1000, 2000, 2000}))
      << "view 1's timeouts: from the quorum of view changes, again from the NewView";
  c.expect_agreement({1, 2, 3});
}

TEST(PbftViewChange, LostNewViewIsSentAgain) {
  // A node that missed the NewView keeps resending its view change; the primary answers with
  // the NewView at its next tick.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.set_filter([](size_t, size_t to, ProtobufCMessage *m) {
    return !(to == 3 && is_type(m, &trantor__new_view__descriptor));
  });
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  EXPECT_TRUE(c.stats(3).in_view_change);
  c.clear_filter();
  c.fire_repeats(3);
  c.run();
  c.fire_repeats(1);
  c.run();
  EXPECT_FALSE(c.stats(3).in_view_change);
  EXPECT_TRUE(c.all_delivered(3));
  c.expect_agreement({1, 2, 3});
}

// ---- idle segments (docs/PROTOCOL.md, "Idle") ----

Trantor__Needed *needed(uint64_t up_to) {
  auto *n = static_cast<Trantor__Needed *>(mir_xmalloc(sizeof(Trantor__Needed)));
  trantor__needed__init(n);
  n->up_to_sn = up_to;
  return n;
}

Trantor__Activity *activity(bool active) {
  auto *a = static_cast<Trantor__Activity *>(mir_xmalloc(sizeof(Trantor__Activity)));
  trantor__activity__init(a);
  a->active = active;
  return a;
}

TEST(PbftIdle, IdleSegmentProposesNothingAndArmsNoTimeout) {
  // With empty mempools the primary asks for no certificate and nobody expects progress: no
  // timeout is armed, and none can start a view change.
  Options o;
  o.active = false;
  Cluster c(o);
  c.start();
  c.run();
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(c.node(i).cert_requests, 0) << i;
    EXPECT_EQ(c.pending_timeouts(i), 0u) << i;
    EXPECT_TRUE(c.node(i).delivered.empty());
  }
  for (int round = 0; round < 3; round++) {
    c.fire_all_repeats();
    c.run();
  }
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(c.stats(i).view_changes, 0u) << i;
}

TEST(PbftIdle, NeededSnsAreFilledAndTimedButNoMore) {
  // The log needs the sns below 8 (a later sn of another segment was decided): the primary fills
  // them at once with what it has (fill requests), every member times them, and they are
  // delivered; then the segment is idle again, and its pending timeouts are stale.
  Options o;
  o.active = false;
  Cluster c(o);
  c.start();
  c.run();
  for (size_t i = 0; i < 4; i++) c.from_iss(i, &needed(8)->base);
  c.run();
  /* Armed while sns 0 and 4 were awaited; they stay pending in the timer, stale now. */
  for (size_t i = 1; i < 4; i++) EXPECT_GT(c.pending_timeouts(i), 0u) << i;
  EXPECT_EQ(c.node(0).fill_requests, 2);
  EXPECT_EQ(c.node(0).cert_requests, 2);
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(c.node(i).delivered.size(), 2u) << i;
    c.fire_timeouts(i);
  }
  c.run();
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(c.stats(i).view_changes, 0u) << i;
  EXPECT_EQ(c.node(0).cert_requests, 2);
  // Transactions arrive: the segment proposes its remaining sns.
  for (size_t i = 0; i < 4; i++) c.from_iss(i, &activity(true)->base);
  c.run();
  for (size_t i = 0; i < 4; i++) EXPECT_TRUE(c.all_delivered(i)) << i;
  c.expect_agreement({0, 1, 2, 3});
}

TEST(PbftIdle, ActiveMembersTimeOutAnIdlePrimary) {
  // The members hold transactions but the primary proposes nothing (its mempool stays empty, or
  // it is faulty): the members expect progress and replace it by a view change, whose new
  // primary proposes.
  Cluster c(Options{});
  c.node(0).hold_certs = true;
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_GT(c.pending_timeouts(i), 0u) << i;
    c.fire_timeouts(i);
  }
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_EQ(c.stats(i).view, 1u) << i;
    EXPECT_TRUE(c.all_delivered(i)) << i;
  }
}

TEST(PbftTimeouts, SnTimeoutSuspectsOnlyASegmentThatHoldsUpTheLog) {
  // The primary proposes nothing. While no later sn of the epoch is decided (every segment is as
  // late as this one, as in a cluster that is slow as a whole), the sn timeouts start no view
  // change. Once iss decided a later sn (Needed), the segment holds up the log; a timeout armed
  // from then on that fires while it still does replaces the primary. Before this rule, a
  // saturated cluster suspected every leader at the start of every epoch (trantor-4-slow-disk).
  Cluster c(Options{});
  c.node(0).hold_certs = true;
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_GT(c.fire(i, &trantor__view_change_sn_timeout__descriptor), 0u) << i;
  }
  c.run();
  for (size_t i = 1; i < 4; i++) EXPECT_EQ(c.stats(i).view_changes, 0u) << i;
  for (size_t i = 0; i < 4; i++) c.from_iss(i, &needed(8)->base);
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_GT(c.fire(i, &trantor__view_change_sn_timeout__descriptor), 0u)
        << i << ": the Needed that began the holding armed an sn timeout";
  }
  c.run();
  for (size_t i = 1; i < 4; i++) {
    EXPECT_EQ(c.stats(i).view, 1u) << i;
    EXPECT_TRUE(c.all_delivered(i)) << i;
  }
}

TEST(PbftViewChange, NodeLeftInALowerViewChangeIsSentTheCurrentNewView) {
  // Node 3 was cut off while the others went through views 1 and 2; it then asks for view 1,
  // which nobody will build again. A member in view 2 answers with the NewView of view 2, and
  // node 3 enters it. Without that answer node 3 waits in view 1 for good, and with one replica
  // passive (rejoining) the segment never finishes (simulator, trantor-4-swarm-restart seed
  // 9046 before the fix: node 2 of a segment was in view 1's view change, node 0 done in view 2,
  // node 3 in view 3's view change).
  Cluster c(Options{});
  for (size_t i = 0; i < 4; i++) c.node(i).hold_certs = true; /* nothing is decided */
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *) { return from != 3 && to != 3; });
  c.start();
  c.run();
  for (uint64_t v = 1; v <= 2; v++) {
    for (size_t i = 0; i < 3; i++) c.fire_timeouts(i);
    c.run();
    for (size_t i = 0; i < 3; i++) ASSERT_EQ(c.stats(i).view, v) << i;
  }
  c.clear_filter();
  c.fire_timeouts(3);
  c.run();
  ASSERT_EQ(c.stats(3).view, 1u);
  ASSERT_TRUE(c.stats(3).in_view_change);
  for (int round = 0; round < 3 && c.stats(3).view < 2; round++) {
    c.fire_all_repeats();
    c.run();
  }
  EXPECT_EQ(c.stats(3).view, 2u);
  EXPECT_FALSE(c.stats(3).in_view_change);
}

TEST(PbftViewChange, LostCryptoAnswersAreRequestedAgain) {
  // A signature, view change checks and a NewView check whose answers never come back (an
  // overloaded crypto module drops requests) are asked for again after a few resend ticks, and
  // the view change completes.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.node(3).lose_sign = 1;         // its view change signature
  c.node(1).lose_verify = 2;       // the new primary's first two view change checks
  c.node(2).lose_verify_many = 5;  // more NewView checks than it keeps in flight
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  for (int tick = 0; tick < 20 && !(c.all_delivered(1) && c.all_delivered(2) && c.all_delivered(3));
       tick++) {
    c.fire_all_repeats();
    c.run();
  }
  for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  c.expect_agreement({1, 2, 3});
  EXPECT_EQ(c.node(3).lose_sign + c.node(1).lose_verify + c.node(2).lose_verify_many, 0)
      << "every loss happened";
}

TEST(PbftViewChange, EmptyMempoolGivesEmptyCertificatesNotAborts) {
  // When the new primary's availability has nothing to propose it answers with an empty
  // certificate: the sns are delivered empty, not aborted.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.node(1).empty_certs = true;
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  for (size_t i = 1; i < 4; i++) {
    ASSERT_TRUE(c.all_delivered(i));
    for (auto &d : c.node(i).delivered) {
      EXPECT_EQ(d.second.cert, "");
      EXPECT_FALSE(d.second.aborted);
    }
  }
}

TEST(PbftViewChange, CertificateArrivingAfterAViewChangeIsProposedLater) {
  // A certificate that arrives when its requester is no longer primary is kept and proposed
  // first the next time that node is primary (view 4 of four nodes), instead of being dropped.
  Cluster c(Options{});
  for (size_t i = 0; i < 4; i++) c.node(i).hold_certs = true;  // no primary gets a cert
  c.start();
  c.run();
  for (int round = 0; round < 4; round++) {
    for (size_t i = 0; i < 4; i++) c.fire_timeouts(i);
    c.run();
  }
  ASSERT_EQ(c.stats(0).view, 4u);
  EXPECT_EQ(c.stats(0).proposals, 0u);
  c.node(0).hold_certs = false;
  c.release_certs(0);  // the answer to n0's request of view 0
  c.run();
  for (size_t i = 0; i < 4; i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  EXPECT_EQ(c.node(1).delivered[c.params().sns[0]].cert, "cert-n0-0");
  c.expect_agreement({0, 1, 2, 3});
}

// ---- Byzantine primaries ----

TEST(PbftByzantine, EquivocationToOneNodeIsHealedByCatchUp) {
  // The primary sends n3 other certificates than the rest: n0..n2 commit theirs, n3 cannot
  // prepare its own and later catches up the committed ones, never a different one.
  Cluster c(Options{});
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *m) {
    if (from == 0 && to == 3 && is_type(m, &trantor__preprepare__descriptor)) {
      set_cert(m, "evil-" + std::to_string(reinterpret_cast<Trantor__Preprepare *>(m)->sn));
    }
    return true;
  });
  c.start();
  c.run();
  EXPECT_TRUE(c.node(3).delivered.empty());
  c.fire_all_repeats();  // Done resends; n3 learns the Done quorum
  c.run();
  c.fire_repeats(3);  // n3's catch-up tick
  c.run();
  EXPECT_TRUE(c.all_delivered(3));
  c.expect_agreement({0, 1, 2, 3});
  EXPECT_EQ(c.stats(3).caught_up, L(c));
}

TEST(PbftByzantine, EvenSplitEquivocationEndsInAViewChange) {
  // The primary splits the correct nodes 1/2 between two certificates per sn: nothing prepares,
  // the view changes, and the correct nodes agree on what view 1 decides.
  Cluster c(Options{});
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *m) {
    if (from == 0 && to >= 2 && is_type(m, &trantor__preprepare__descriptor)) set_cert(m, "B");
    return true;
  });
  c.start();
  c.run();
  for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.node(i).delivered.empty());
  for (size_t i = 1; i < 4; i++) c.fire_timeouts(i);
  c.run();
  for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  c.expect_agreement({1, 2, 3});
  // n1 re-proposed the batches it had preprepared in view 0 (nothing was prepared).
  EXPECT_EQ(c.node(2).delivered[c.params().sns[0]].cert, "cert-n0-0");
}

// A deterministic generator for the randomized test.
struct Lcg {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(s >> 33);
  }
};

TEST(PbftByzantine, RandomEquivocationLossAndReorderNeverBreakAgreement) {
  // Across seeds, a primary that sends random certificates to random nodes while 10% of all
  // messages are lost and events are reordered never makes two correct nodes deliver different
  // certificates; once losses stop, every correct node delivers every sn.
  for (uint64_t seed = 1; seed <= 40; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Cluster c(Options{});
    if (seed % 2 == 0) c.set_reorder_seed(seed);
    Lcg rng{seed};
    bool lossy = true;
    c.set_filter([&rng, &lossy](size_t from, size_t to, ProtobufCMessage *m) {
      if (from == 0 && is_type(m, &trantor__preprepare__descriptor) && rng.next() % 2 == 0) {
        set_cert(m, "evil-" + std::to_string(to % 2));
      }
      return !lossy || rng.next() % 10 != 0;
    });
    c.start();
    c.run();
    for (int round = 0; round < 12; round++) {
      if (round == 6) lossy = false;
      for (size_t i = 1; i < 4; i++) {
        c.fire_repeats(i);
        if (rng.next() % 2 == 0 || round >= 6) c.fire_timeouts(i);
      }
      c.run();
      c.expect_agreement({1, 2, 3});
    }
    for (size_t i = 1; i < 4; i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
    EXPECT_EQ(c.apply_errors, 0);
  }
}

// ---- catch-up ----

TEST(PbftCatchUp, LaggingNodeCatchesUpThroughDone) {
  // A node cut off during the whole segment learns the committed digests from a weak quorum of
  // identical Done messages and fetches every preprepare, without a view change.
  Cluster c(Options{});
  bool cut = true;
  c.set_filter([&cut](size_t from, size_t to, ProtobufCMessage *) {
    return !cut || (from != 3 && to != 3);
  });
  c.start();
  c.run();
  EXPECT_TRUE(c.node(3).delivered.empty());
  cut = false;
  c.fire_all_repeats();
  c.run();
  c.fire_repeats(3);
  c.run();
  EXPECT_TRUE(c.all_delivered(3));
  c.expect_agreement({0, 1, 2, 3});
  pbft_test::PbftStats s = c.stats(3);
  EXPECT_EQ(s.caught_up, L(c));
  EXPECT_EQ(s.view, 0u);
  EXPECT_TRUE(s.stable);
}

TEST(PbftCatchUp, ResponseWithAnotherDigestIsRejected) {
  // A catch-up response whose preprepare does not hash to the Done quorum's digest is dropped;
  // the next tick asks another member of the quorum (two of the three forge: whichever is asked
  // first, a forged response comes before the honest one).
  Cluster c(Options{});
  bool cut = true;
  c.set_filter([&cut](size_t from, size_t to, ProtobufCMessage *m) {
    if (is_type(m, &trantor__catch_up_response__descriptor) && from != 2) {
      auto *r = reinterpret_cast<Trantor__CatchUpResponse *>(m);
      set_cert(&r->preprepare->base, "forged");
    }
    return !cut || (from != 3 && to != 3);
  });
  c.start();
  c.run();
  cut = false;
  c.fire_all_repeats();
  c.run();
  for (int tick = 0; tick < 6 && !c.all_delivered(3); tick++) {
    c.fire_repeats(3);
    c.run();
  }
  EXPECT_TRUE(c.all_delivered(3));
  EXPECT_GE(c.stats(3).dropped[TRANTOR_PBFT_DROP_UNSOLICITED], 1u);
  c.expect_agreement({0, 1, 2, 3});
}

TEST(PbftCatchUp, DoneBelowAWeakQuorumIsNotTrusted) {
  // A single Done (one Byzantine member) does not fix what catch-up accepts: a response matching
  // its invented digest is dropped, nothing is delivered.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  auto *done = static_cast<Trantor__Done *>(mir_xmalloc(sizeof(Trantor__Done)));
  trantor__done__init(done);
  done->digests =
      static_cast<ProtobufCBinaryData *>(mir_xmalloc(L(c) * sizeof(ProtobufCBinaryData)));
  for (size_t k = 0; k < L(c); k++) {
    uint8_t d[32];
    trantor_pbft_preprepare_digest(trantor_hash_reference, c.params().sns[k], false,
                                   reinterpret_cast<const uint8_t *>("fake"), 4, d);
    done->digests[done->n_digests++] =
        pbft_test::bytes_of(std::string(reinterpret_cast<char *>(d), 32));
  }
  send_owned(c, 1, "n2", &done->base);
  c.run();
  c.fire_repeats(1);
  auto *cr = static_cast<Trantor__CatchUpResponse *>(mir_xmalloc(sizeof(Trantor__CatchUpResponse)));
  trantor__catch_up_response__init(cr);
  cr->preprepare = make_preprepare(0, 0, "fake");
  send_owned(c, 1, "n2", &cr->base);
  c.run();
  EXPECT_TRUE(c.node(1).delivered.empty());
  EXPECT_EQ(c.node(1).sent["trantor.CatchUpRequest"], 0);
}

// ---- segment checkpoint ----

TEST(PbftDone, StableSegmentIgnoresTimeouts) {
  // Once the segment checkpoint is stable, view-change timeouts do nothing.
  Cluster c(Options{});
  c.start();
  c.run();
  for (size_t i = 0; i < 4; i++) {
    ASSERT_TRUE(c.stats(i).stable);
    EXPECT_GT(c.fire_timeouts(i), 0u);
  }
  c.run();
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(c.stats(i).view_changes, 0u);
}

TEST(PbftDone, StableNeedsAStrongQuorumOfDone) {
  // The segment checkpoint is stable only with identical Done lists of a strong quorum: nodes
  // that see the Done of only two members (weight 2 < 3) stay unstable.
  Cluster c(Options{});
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *m) {
    return !(from >= 2 && from != to && is_type(m, &trantor__done__descriptor));
  });
  c.start();
  c.run();
  EXPECT_FALSE(c.stats(0).stable);
  EXPECT_FALSE(c.stats(1).stable);
  EXPECT_TRUE(c.stats(2).stable);  // n0, n1 and itself
  EXPECT_TRUE(c.stats(0).done);
}

TEST(PbftDone, CompleteNodeDoesNotStartAViewChangeItself) {
  // A node that committed every sn does not start a view change on its own timeouts, even while
  // its Done messages are lost and the checkpoint is not stable (the reference did).
  Cluster c(Options{});
  c.set_filter(
      [](size_t, size_t, ProtobufCMessage *m) { return !is_type(m, &trantor__done__descriptor); });
  c.start();
  c.run();
  for (size_t i = 0; i < 4; i++) {
    ASSERT_TRUE(c.stats(i).done);
    ASSERT_FALSE(c.stats(i).stable);
    c.fire_timeouts(i);
  }
  c.run();
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(c.stats(i).view_changes, 0u);
}

TEST(PbftDone, CompleteNodeInAViewChangeResendsItOnlyToPeersInOne) {
  // Node 3, cut off, times out alone and starts a view change nobody joins; healed, it catches up
  // through Done. Complete now, it stops resending its view change at every tick (in an idle
  // cluster the segment is kept for good, and so would the resends be), but sends it once to a
  // peer whose own view change shows it needs one.
  Cluster c(Options{});
  bool cut = true;
  size_t vcs_from_3 = 0, to_peer_1 = 0;
  c.set_filter([&](size_t from, size_t to, ProtobufCMessage *m) {
    if (from == 3 && is_type(m, &trantor__signed_view_change__descriptor)) {
      vcs_from_3++;
      if (to == 1) to_peer_1++;
    }
    return !cut || (from != 3 && to != 3);
  });
  c.start();
  c.run();
  c.fire_timeouts(3);
  c.run();
  ASSERT_TRUE(c.stats(3).in_view_change);
  cut = false;
  for (int round = 0; round < 3 && !c.all_delivered(3); round++) {
    c.fire_all_repeats();
    c.run();
  }
  ASSERT_TRUE(c.all_delivered(3));
  ASSERT_TRUE(c.stats(3).done);
  ASSERT_TRUE(c.stats(3).in_view_change);
  vcs_from_3 = to_peer_1 = 0;
  for (int round = 0; round < 3; round++) {
    c.fire_repeats(3);
    c.run();
  }
  EXPECT_EQ(vcs_from_3, 0u);
  send_owned(c, 3, "n1", &make_vc("n1", 1)->base);
  c.run();
  c.fire_repeats(3);
  c.run();
  c.fire_repeats(3);
  c.run();
  EXPECT_EQ(vcs_from_3, 1u);
  EXPECT_EQ(to_peer_1, 1u);
  c.expect_agreement({0, 1, 2, 3});
}

// ---- ingress validation ----

// Expects node i's drop counter for `reason` to have grown by `by` since `before`.
void expect_dropped(const Cluster &c, size_t i, const pbft_test::PbftStats &before,
                    trantor_pbft_drop reason, uint64_t by) {
  pbft_test::PbftStats now = c.stats(i);
  EXPECT_EQ(now.dropped[reason] - before.dropped[reason], by) << trantor_pbft_drop_name(reason);
}

TEST(PbftIngress, GarbageMessagesAreDroppedAndCounted) {
  // Messages from non-members, for sns outside the segment, with short digests, oversized
  // certificates, from a non-primary, far-future views, duplicate votes, a second preprepare for
  // an sn, undecodable bytes, bad Done lists, unsolicited answers and a view change signed by
  // someone else are all dropped and counted, and apply never fails.
  Cluster c(Options{});
  c.node(0).crashed = true;  // the primary is silent: node 1 stays idle in view 0
  c.start();
  c.run();
  pbft_test::PbftStats b = c.stats(1);
  send_owned(c, 1, "mallory", &make_prepare(0, 0)->base);
  send_owned(c, 1, "n2", &make_prepare(3, 0)->base);
  send_owned(c, 1, "n2", &make_prepare(0, 0, 31)->base);
  send_owned(c, 1, "n0", &make_preprepare(0, 0, std::string(2000, 'x'))->base);
  send_owned(c, 1, "n2", &make_preprepare(0, 0, "c")->base);
  send_owned(c, 1, "n2", &make_prepare(0, 1000)->base);
  send_owned(c, 1, "n3", &make_prepare(4, 0)->base);
  send_owned(c, 1, "n3", &make_prepare(4, 0)->base);
  send_owned(c, 1, "n0", &make_preprepare(8, 0, "first")->base);
  send_owned(c, 1, "n0", &make_preprepare(8, 0, "second")->base);  // equivocation
  send_owned(c, 1, "n2", &make_vc("n3", 1)->base);
  c.inject_raw(1, "n2", "trantor.Prepare", "\xff\xff\xff garbage");
  auto *done = static_cast<Trantor__Done *>(mir_xmalloc(sizeof(Trantor__Done)));
  trantor__done__init(done);
  done->n_digests = 1;
  done->digests = static_cast<ProtobufCBinaryData *>(mir_xmalloc(sizeof(ProtobufCBinaryData)));
  done->digests[0] = digest_bytes(32, 1);
  send_owned(c, 1, "n2", &done->base);
  auto *mp =
      static_cast<Trantor__MissingPreprepare *>(mir_xmalloc(sizeof(Trantor__MissingPreprepare)));
  trantor__missing_preprepare__init(mp);
  mp->preprepare = make_preprepare(0, 0, "c");
  send_owned(c, 1, "n2", &mp->base);
  auto *cr = static_cast<Trantor__CatchUpResponse *>(mir_xmalloc(sizeof(Trantor__CatchUpResponse)));
  trantor__catch_up_response__init(cr);
  cr->preprepare = make_preprepare(0, 0, "c");
  send_owned(c, 1, "n2", &cr->base);
  auto *cq = static_cast<Trantor__CatchUpRequest *>(mir_xmalloc(sizeof(Trantor__CatchUpRequest)));
  trantor__catch_up_request__init(cq);
  cq->sn = 0;
  cq->digest = digest_bytes(32, 2);
  send_owned(c, 1, "n2", &cq->base);
  auto *pr =
      static_cast<Trantor__PreprepareRequest *>(mir_xmalloc(sizeof(Trantor__PreprepareRequest)));
  trantor__preprepare_request__init(pr);
  pr->sn = 0;
  pr->digest = digest_bytes(32, 2);
  send_owned(c, 1, "n2", &pr->base);
  c.run();
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_NOT_MEMBER, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_BAD_SN, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_BAD_DIGEST, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_CERT_TOO_LARGE, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_NOT_PRIMARY, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_VIEW_AHEAD, 1);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_DUPLICATE, 2);
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_MALFORMED, 2);  // foreign signer, short Done
  EXPECT_EQ(c.stats(1).undecodable - b.undecodable, 1u) << "undecodable";
  expect_dropped(c, 1, b, TRANTOR_PBFT_DROP_UNSOLICITED, 4);
  EXPECT_EQ(c.stats(1).view, 0u);
  EXPECT_EQ(c.apply_errors, 0);
}

TEST(PbftIngress, ForgedNewViewsAreRejectedAndAValidOneAdopted) {
  // NewViews with too few view changes, a bad signature, a view change for another view, a
  // repeated signer, an undecided re-proposal or from a non-member are dropped; a complete and
  // correctly signed one is adopted, also when a member other than the primary relays it (its
  // content is what its signed view changes decide, whoever carries it).
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  pbft_test::PbftStats b = c.stats(2);
  send_owned(c, 2, "n1", &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1)})->base);
  send_owned(c, 2, "n1",
             &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n3", 1, true)})->base);
  send_owned(c, 2, "n1", &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n3", 2)})->base);
  send_owned(c, 2, "n1", &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n2", 1)})->base);
  send_owned(c, 2, "n1",
             &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n3", 1)},
                      {make_preprepare(0, 1, "x")})
                  ->base);
  send_owned(c, 2, "x", &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n3", 1)})->base);
  c.run();
  expect_dropped(c, 2, b, TRANTOR_PBFT_DROP_BAD_NEW_VIEW, 4);
  expect_dropped(c, 2, b, TRANTOR_PBFT_DROP_BAD_SIGNATURE, 1);
  expect_dropped(c, 2, b, TRANTOR_PBFT_DROP_NOT_MEMBER, 1);
  EXPECT_EQ(c.stats(2).view, 0u);
  send_owned(c, 2, "n3", &make_nv(1, {make_vc("n1", 1), make_vc("n2", 1), make_vc("n3", 1)})->base);
  c.run();
  EXPECT_EQ(c.stats(2).view, 1u);
  EXPECT_EQ(c.stats(2).new_views, 1u);
  EXPECT_EQ(c.apply_errors, 0);
}

TEST(PbftIngress, NewViewMustReproposeWhatWasPrepared) {
  // A NewView whose view changes show an sn prepared must carry exactly that preprepare; one
  // that leaves the sn out or changes its certificate is rejected.
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  uint8_t d[32];
  trantor_pbft_preprepare_digest(trantor_hash_reference, 0, false,
                                 reinterpret_cast<const uint8_t *>("good"), 4, d);
  auto vc_with = [&d](const std::string &signer) {
    Trantor__SignedViewChange *svc = make_vc(signer, 1);
    Trantor__ViewChange *vc = svc->view_change;
    auto *pe = static_cast<Trantor__PSetEntry *>(mir_xmalloc(sizeof(Trantor__PSetEntry)));
    trantor__pset_entry__init(pe);
    pe->sn = 0;
    pe->digest = pbft_test::bytes_of(std::string(reinterpret_cast<char *>(d), 32));
    auto *qe = static_cast<Trantor__QSetEntry *>(mir_xmalloc(sizeof(Trantor__QSetEntry)));
    trantor__qset_entry__init(qe);
    qe->sn = 0;
    qe->digest = pbft_test::bytes_of(std::string(reinterpret_cast<char *>(d), 32));
    vc->n_pset = 1;
    vc->pset = static_cast<Trantor__PSetEntry **>(mir_xmalloc(sizeof(pe)));
    vc->pset[0] = pe;
    vc->n_qset = 1;
    vc->qset = static_cast<Trantor__QSetEntry **>(mir_xmalloc(sizeof(qe)));
    vc->qset[0] = qe;
    uint8_t h[32];
    trantor_pbft_view_change_hash(trantor_hash_reference, vc, h);
    ProtobufCBinaryData part = {32, h};
    free(svc->signature.data);
    svc->signature = pbft_test::bytes_of(pbft_test::fake_sign(signer, &part, 1));
    return svc;
  };
  pbft_test::PbftStats b = c.stats(2);
  send_owned(c, 2, "n1", &make_nv(1, {vc_with("n1"), vc_with("n2"), vc_with("n3")})->base);
  send_owned(
      c, 2, "n1",
      &make_nv(1, {vc_with("n1"), vc_with("n2"), vc_with("n3")}, {make_preprepare(0, 1, "evil")})
           ->base);
  c.run();
  expect_dropped(c, 2, b, TRANTOR_PBFT_DROP_BAD_NEW_VIEW, 2);
  EXPECT_EQ(c.stats(2).view, 0u);
  send_owned(
      c, 2, "n1",
      &make_nv(1, {vc_with("n1"), vc_with("n2"), vc_with("n3")}, {make_preprepare(0, 1, "good")})
           ->base);
  c.run();
  EXPECT_EQ(c.stats(2).view, 1u);
  EXPECT_EQ(c.apply_errors, 0);
}

// A view change of signer for view v with the given P-set (sn 0 only) and Q-set entries
// (sn 0), signed by the fake signer. Entries are (view, cert) pairs; digests are computed.
Trantor__SignedViewChange *vc_entries(const std::string &signer, uint64_t v,
                                      std::vector<std::pair<uint64_t, std::string>> pset,
                                      std::vector<std::pair<uint64_t, std::string>> qset) {
  auto dig = [](const std::string &cert) {
    uint8_t d[32];
    trantor_pbft_preprepare_digest(trantor_hash_reference, 0, false,
                                   reinterpret_cast<const uint8_t *>(cert.data()), cert.size(), d);
    return pbft_test::bytes_of(std::string(reinterpret_cast<char *>(d), 32));
  };
  Trantor__SignedViewChange *svc = make_vc(signer, v);
  Trantor__ViewChange *vc = svc->view_change;
  vc->pset = static_cast<Trantor__PSetEntry **>(mir_xmalloc((pset.size() + 1) * sizeof(void *)));
  for (auto &e : pset) {
    auto *pe = static_cast<Trantor__PSetEntry *>(mir_xmalloc(sizeof(Trantor__PSetEntry)));
    trantor__pset_entry__init(pe);
    pe->view = e.first;
    pe->digest = dig(e.second);
    vc->pset[vc->n_pset++] = pe;
  }
  vc->qset = static_cast<Trantor__QSetEntry **>(mir_xmalloc((qset.size() + 1) * sizeof(void *)));
  for (auto &e : qset) {  // callers list them by ascending (view, digest)
    auto *qe = static_cast<Trantor__QSetEntry *>(mir_xmalloc(sizeof(Trantor__QSetEntry)));
    trantor__qset_entry__init(qe);
    qe->view = e.first;
    qe->digest = dig(e.second);
    vc->qset[vc->n_qset++] = qe;
  }
  uint8_t h[32];
  trantor_pbft_view_change_hash(trantor_hash_reference, vc, h);
  ProtobufCBinaryData part = {32, h};
  free(svc->signature.data);
  svc->signature = pbft_test::bytes_of(pbft_test::fake_sign(signer, &part, 1));
  return svc;
}

TEST(PbftRules, FabricatedPreparedEntryIsNotReproposed) {
  // Rule A2 (TOCS 2002, 4.4): a P-set entry that no weak quorum preprepared (here a Byzantine
  // node's invention) cannot be re-proposed, and rule B frees the sn only once a strong quorum
  // lacks an entry (with the fourth view change).
  Cluster c(Options{});
  c.node(0).crashed = true;
  c.start();
  c.run();
  pbft_test::PbftStats b = c.stats(2);
  send_owned(c, 2, "n1",
             &make_nv(1,
                      {vc_entries("n1", 1, {}, {}), vc_entries("n2", 1, {}, {}),
                       vc_entries("n3", 1, {{0, "X"}}, {{0, "X"}})},
                      {make_preprepare(0, 1, "X")})
                  ->base);
  // Nor is the sn free (rule B): only a weak quorum of these three lacks an entry for it.
  send_owned(c, 2, "n1",
             &make_nv(1, {vc_entries("n1", 1, {}, {}), vc_entries("n2", 1, {}, {}),
                          vc_entries("n3", 1, {{0, "X"}}, {{0, "X"}})})
                  ->base);
  c.run();
  expect_dropped(c, 2, b, TRANTOR_PBFT_DROP_BAD_NEW_VIEW, 2);
  send_owned(c, 2, "n1",
             &make_nv(1, {vc_entries("n0", 1, {}, {}), vc_entries("n1", 1, {}, {}),
                          vc_entries("n2", 1, {}, {}), vc_entries("n3", 1, {{0, "X"}}, {{0, "X"}})})
                  ->base);
  c.run();
  EXPECT_EQ(c.stats(2).view, 1u);
}

TEST(PbftRules, ContradictedLowerEntryIsNotReproposed) {
  // Rule A1 (TOCS 2002, 4.4): an entry prepared in view 0 is not re-proposed when a view change
  // of the deciding set prepared another digest in a later view; with nothing else deciding the
  // sn, a NewView that re-proposes it is rejected.
  Options o;
  o.leader = 2;  // primary of view 2 is n0
  Cluster c(o);
  c.start();
  c.run();
  pbft_test::PbftStats b = c.stats(3);
  send_owned(c, 3, "n0",
             &make_nv(2,
                      {vc_entries("n1", 2, {{1, "B"}}, {{1, "B"}}),
                       vc_entries("n2", 2, {{0, "A"}}, {{0, "A"}}),
                       vc_entries("n3", 2, {{0, "A"}}, {{0, "A"}})},
                      {make_preprepare(0, 2, "A")})
                  ->base);
  c.run();
  expect_dropped(c, 3, b, TRANTOR_PBFT_DROP_BAD_NEW_VIEW, 1);
  EXPECT_EQ(c.stats(3).new_views, 0u);
}

TEST(PbftIngress, FutureViewBufferIsBoundedPerSender) {
  // Messages for a later view wait in a per-sender buffer of msg_buf_bytes / (n - 1) bytes: a
  // flooding sender evicts only its own oldest messages.
  Options o;
  o.msg_buf_bytes = 3 * 600;
  Cluster c(o);
  c.node(0).crashed = true;
  c.start();
  c.run();
  auto *keep = make_prepare(4, 1);
  c.inject(1, "n3", &keep->base);
  pbft_test::free_msg(&keep->base);
  for (int k = 0; k < 100; k++) send_owned(c, 1, "n2", &make_prepare(0, 1)->base);
  c.run();
  pbft_test::PbftStats s = c.stats(1);
  EXPECT_LE(s.buffered_bytes, 2u * 600u);
  EXPECT_GT(s.dropped[TRANTOR_PBFT_DROP_BUFFER], 0u);
  EXPECT_GE(s.buffered_bytes, 100u) << "n3's message is still there";
}

// ---- durability: persist, then send; restarts ----

// The view changes node `i` sends, as decoded copies (the filter sees every message).
struct VcSpy {
  std::vector<Trantor__SignedViewChange *> vcs;
  ~VcSpy() {
    for (auto *v : vcs) pbft_test::free_msg(&v->base);
  }
};

TEST(PbftDurability, VotesLeaveOnlyOnceTheirRecordsAreDurable) {
  // A node whose disk has not written its records yet has sent nothing: its Prepares and
  // Commits leave when (and in the order that) the store releases them.
  Cluster c(Options{});
  c.node(1).hold_store = true;
  c.start();
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 0);
  EXPECT_EQ(c.node(1).sent["trantor.Commit"], 0);
  EXPECT_FALSE(c.node(1).held_writes.empty());
  // The other three hold a strong quorum: they commit without node 1.
  for (size_t i : {0u, 2u, 3u}) EXPECT_TRUE(c.all_delivered(i));
  c.node(1).hold_store = false;
  c.release_writes(1);
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], static_cast<int>(L(c)));
  EXPECT_TRUE(c.all_delivered(1));
  c.expect_agreement({0, 1, 2, 3});
}

TEST(PbftDurability, RestartedNodeNeverPreparesAnotherDigestInTheSameView) {
  // Node 1 prepared the primary's batch for sn 0 in view 0, then crashed and restarted. An
  // equivocating primary now offers another batch for sn 0 in view 0: the restarted node knows
  // its vote and refuses the second one, as it would have before the crash.
  Options o;
  o.sns = {0};
  Cluster c(o);
  c.set_filter([](size_t, size_t to, ProtobufCMessage *) { return to == 1; });
  c.start();
  c.run();
  ASSERT_EQ(c.node(1).sent["trantor.Prepare"], 1);
  ASSERT_TRUE(c.crash_and_restart(1));
  c.run();
  send_owned(c, 1, "n0", &make_preprepare(0, 0, "another batch")->base);
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 2) << "only its own Prepare, resent once";
  EXPECT_GE(c.stats(1).dropped[TRANTOR_PBFT_DROP_DUPLICATE], 1u);
  EXPECT_EQ(c.apply_errors, 0);
}

TEST(PbftDurability, UnsyncedVotesAreForgottenButWereNeverSent) {
  // A crash before the disk wrote the records loses them, and the votes they held back never
  // left: the restarted node may vote afresh without contradicting anything.
  Options o;
  o.sns = {0};
  Cluster c(o);
  c.node(1).hold_store = true;
  c.set_filter([](size_t, size_t to, ProtobufCMessage *) { return to == 1; });
  c.start();
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 0);
  ASSERT_TRUE(c.crash_and_restart(1));
  c.node(1).hold_store = false;
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 0) << "nothing durable, nothing resent";
  send_owned(c, 1, "n0", &make_preprepare(0, 0, "a batch")->base);
  c.run();
  EXPECT_EQ(c.node(1).sent["trantor.Prepare"], 1);
}

TEST(PbftDurability, WholeClusterRestartFinishesTheViewWithoutAViewChange) {
  // Every node prepared every sn, but no Commit got through; then all four crash together. They
  // come back in view 0 with their Prepares and P-set entries, resend their durable votes, and
  // commit the same batches without a view change.
  Cluster c(Options{});
  c.set_filter([](size_t, size_t, ProtobufCMessage *m) {
    return !is_type(m, &trantor__commit__descriptor);
  });
  c.start();
  c.run();
  for (size_t i = 0; i < c.size(); i++) EXPECT_TRUE(c.node(i).delivered.empty());
  c.clear_filter();
  for (size_t i = 0; i < c.size(); i++) ASSERT_TRUE(c.crash_and_restart(i));
  c.run();
  for (size_t i = 0; i < c.size(); i++) {
    EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
    EXPECT_EQ(c.stats(i).view, 0u);
    EXPECT_EQ(c.stats(i).view_changes, 0u);
  }
  c.expect_agreement({0, 1, 2, 3});
  EXPECT_EQ(c.node(0).certs_made, static_cast<int>(L(c))) << "no batch proposed twice";
}

TEST(PbftDurability, RestartedPrimaryResendsItsProposalsNeverNewOnes) {
  // The primary's Preprepares were lost on the way, then it crashed. After its restart it sends
  // the same Preprepares again: the batches it had proposed, not new ones for the same sns.
  Cluster c(Options{});
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *m) {
    return !(from == 0 && to != 0 && is_type(m, &trantor__preprepare__descriptor));
  });
  c.start();
  c.run();
  int made = c.node(0).certs_made;
  ASSERT_EQ(made, static_cast<int>(L(c)));
  c.clear_filter();
  ASSERT_TRUE(c.crash_and_restart(0));
  c.run();
  EXPECT_EQ(c.node(0).certs_made, made) << "no new certificate for a proposed sn";
  for (size_t i = 0; i < c.size(); i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  c.expect_agreement({0, 1, 2, 3});
  std::set<std::string> certs;
  for (auto &d : c.node(3).delivered) certs.insert(d.second.cert);
  for (int k = 0; k < made; k++) EXPECT_TRUE(certs.count("cert-n0-" + std::to_string(k)));
}

TEST(PbftDurability, PreparedEntriesSurviveARestartIntoTheViewChange) {
  // Node 1 prepared every sn (Commits lost), crashed and restarted; when the primary then fails,
  // node 1's view change still carries its P-set, so the new primary re-proposes those batches.
  Cluster c(Options{});
  c.set_filter([](size_t, size_t, ProtobufCMessage *m) {
    return !is_type(m, &trantor__commit__descriptor);
  });
  c.start();
  c.run();
  ASSERT_TRUE(c.crash_and_restart(1));
  c.run();
  auto *spy = new VcSpy();
  c.set_filter([spy](size_t from, size_t, ProtobufCMessage *m) {
    if (from == 0) return false; /* the primary is gone */
    if (from == 1 && is_type(m, &trantor__signed_view_change__descriptor)) {
      spy->vcs.push_back(reinterpret_cast<Trantor__SignedViewChange *>(mir_message_clone(m)));
    }
    return true;
  });
  for (size_t i = 1; i < c.size(); i++) c.fire_timeouts(i);
  c.run();
  ASSERT_FALSE(spy->vcs.empty());
  EXPECT_EQ(spy->vcs[0]->view_change->n_pset, L(c)) << "every prepared sn is in its P-set";
  for (size_t i = 1; i < c.size(); i++) {
    EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
    EXPECT_EQ(c.stats(i).view, 1u);
  }
  c.expect_agreement({1, 2, 3});
  for (auto &d : c.node(2).delivered) EXPECT_EQ(d.second.cert.rfind("cert-n0-", 0), 0u);
  delete spy;
}

// The primary of view 0 (node 0) is silent, nodes 1 to 3 move to view 1, and node 2 misses the
// NewView of node 1: it stays in the view change while the others adopt the view.
void miss_the_new_view_of_view_1(Cluster &c) {
  c.set_filter([](size_t from, size_t to, ProtobufCMessage *m) {
    return from != 0 && !(to == 2 && is_type(m, &trantor__new_view__descriptor));
  });
  c.start();
  c.run();
  for (size_t i = 1; i < c.size(); i++) c.fire_timeouts(i);
  c.run();
}

TEST(PbftDurability, ViewChangeInProgressResumesAfterARestart) {
  // A node that sent its view change for view 1 and crashed before the NewView came back comes
  // back in view 1, still in the view change: it never acts in view 0 again, and the view change
  // completes (the new primary resends its NewView to a node that keeps sending view changes).
  Cluster c(Options{});
  miss_the_new_view_of_view_1(c);
  ASSERT_TRUE(c.stats(2).in_view_change);
  ASSERT_TRUE(c.crash_and_restart(2));
  c.run();
  EXPECT_EQ(c.stats(2).view, 1u);
  EXPECT_TRUE(c.stats(2).in_view_change);
  c.set_filter([](size_t from, size_t, ProtobufCMessage *) { return from != 0; });
  for (int round = 0; round < 4 && !c.all_delivered(2); round++) {
    c.fire_all_repeats();
    c.run();
  }
  for (size_t i = 1; i < c.size(); i++) EXPECT_TRUE(c.all_delivered(i)) << c.node(i).id;
  c.expect_agreement({1, 2, 3});
  send_owned(c, 2, "n0", &make_preprepare(0, 0, "view 0 again")->base);
  c.run();
  EXPECT_GE(c.stats(2).dropped[TRANTOR_PBFT_DROP_OLD_VIEW], 1u);
}

TEST(PbftDurability, AdoptedNewViewIsRelayedEvenAfterARestart) {
  // Node 2 missed the NewView of view 1, whose primary (node 1) is then gone for good; node 3,
  // which adopted it and restarted since, relays it from its log to node 2, which keeps sending
  // its view change: node 2 enters view 1 without waiting for the primary.
  Cluster c(Options{});
  miss_the_new_view_of_view_1(c);
  ASSERT_EQ(c.stats(3).view, 1u);
  ASSERT_FALSE(c.stats(3).in_view_change);
  ASSERT_TRUE(c.stats(2).in_view_change);
  c.node(1).crashed = true;
  ASSERT_TRUE(c.crash_and_restart(3));
  c.run();
  c.set_filter([](size_t from, size_t, ProtobufCMessage *) { return from != 0; });
  for (int round = 0; round < 4 && c.stats(2).in_view_change; round++) {
    c.fire_all_repeats();
    c.run();
  }
  EXPECT_EQ(c.stats(2).view, 1u);
  EXPECT_FALSE(c.stats(2).in_view_change);
  EXPECT_EQ(c.stats(2).new_views, 1u);
}

TEST(PbftDurability, RestartedNodeRedeliversItsCommitsAtOnce) {
  // A node that committed every sn and restarts delivers them again from its records at Init,
  // without waiting for anyone.
  Cluster c(Options{});
  c.start();
  c.run();
  ASSERT_TRUE(c.all_delivered(2));
  std::map<uint64_t, pbft_test::Delivery> before = c.node(2).delivered;
  c.node(2).delivered.clear();
  c.set_filter([](size_t, size_t to, ProtobufCMessage *) { return to != 2; });
  ASSERT_TRUE(c.crash_and_restart(2));
  c.run();
  ASSERT_TRUE(c.all_delivered(2));
  for (auto &d : c.node(2).delivered) EXPECT_EQ(d.second.cert, before[d.first].cert);
  EXPECT_TRUE(c.stats(2).done);
}

TEST(PbftDurability, DamagedRecordsAreRefused) {
  // A record that fails its checksum, and a batch whose digest does not match, stop the restart
  // instead of being taken for votes the node never cast.
  Cluster c(Options{});
  c.start();
  c.run();
  auto &st = c.node(1).store;
  ASSERT_FALSE(st.empty());
  std::string key, original;
  for (auto &kv : st) {
    if (kv.first.size() == 14 + 8 + 32 && kv.first[13] == 'B') {
      key = kv.first;
      original = kv.second;
      break;
    }
  }
  ASSERT_FALSE(key.empty());
  st[key][1] ^= 0x20;  // inside the record: the checksum no longer matches
  EXPECT_FALSE(c.crash_and_restart(1));
  EXPECT_NE(std::string(mir_error_detail()).find("checksum"), std::string::npos)
      << mir_error_detail();
  // A well-formed batch record whose certificate is not the one its digest names.
  Trantor__WalCert other = TRANTOR__WAL_CERT__INIT;
  other.cert = {5, reinterpret_cast<uint8_t *>(const_cast<char *>("other"))};
  size_t vlen = 0;
  uint8_t *val = trantor_wal_encode(&other.base, &vlen);
  st[key] = std::string(reinterpret_cast<char *>(val), vlen);
  free(val);
  c.quiet_errors = true;
  EXPECT_TRUE(c.crash_and_restart(1));
  c.run();
  EXPECT_EQ(c.apply_errors, 1) << "Init refuses a batch that does not match its digest";
  EXPECT_NE(std::string(mir_error_detail()).find("does not match its digest"), std::string::npos)
      << mir_error_detail();
}

// ---- configuration ----

TEST(PbftConfig, BadParametersAreRejected) {
  // The constructor refuses parameters that would break its bounds: unknown self or leader,
  // unsorted sns, zero durations, no certificate size.
  Options o;
  Cluster c(o);
  Trantor__PbftParams p = c.params();
  trantor_pbft_config cfg = {
      "n1", trantor_hash_reference, "iss", "availability", "crypto", "timer", "net", "store"};
  const mir_module_ops *ops = nullptr;
  void *state = nullptr;
  cfg.self = "nobody";
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  cfg.self = "n1";
  p.leader = const_cast<char *>("nobody");
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  p = c.params();
  uint64_t unsorted[2] = {5, 5};
  p.sns = unsorted;
  p.n_sns = 2;
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  p = c.params();
  p.view_change_resend_ms = 0;
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  p = c.params();
  p.max_cert_bytes = 0;
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  p = c.params();
  cfg.store = nullptr; /* votes cannot be made durable: refused */
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_EINVAL);
  cfg.store = "store";
  EXPECT_EQ(trantor_pbft_new(pbft_test::kModule, &p, &cfg, &ops, &state), MIR_OK);
  ops->destroy(state);
}

}  // namespace
