// Tests of the BCB sample (Byzantine consistent broadcast with signed echoes) and of the test
// signer it uses: agreement among correct nodes over the in-process transport, with a correct
// leader and with an equivocating one; the leader's echo collection and a member's certificate
// check under forged, tampered and malformed messages injected as MessageReceived events.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "mir/crypto.pb-c.h"
#include "mir/net_local.h"
#include "mir/node.h"
#include "samples.h"
#include "samples_test_util.h"

using samples_test::bytes_of;
using samples_test::eventually;
using samples_test::free_sent;
using samples_test::inject;
using samples_test::inject_message;
using samples_test::inject_raw_message;
using samples_test::run_until_quiet;
using samples_test::sent_messages;
using samples_test::string_of;

namespace {

const char *const kNodes[] = {"0", "1", "2", "3"};
const char kInstance[] = "test-instance";

mir_bcb_config bcb_config(const char *self, const char *leader = "0") {
  mir_bcb_config cfg = {};
  cfg.module_id = "bcb";
  cfg.instance_id = kInstance;
  cfg.nodes = kNodes;
  cfg.n_nodes = 4;
  cfg.leader = leader;
  cfg.self = self;
  cfg.transport_id = "net";
  cfg.crypto_id = "crypto";
  cfg.consumer_id = "app";
  return cfg;
}

// node_id's test signature over what a BCB echo for data signs.
std::string echo_sig(const char *node_id, const std::string &data) {
  std::string tag = "ECHO";
  std::string inst = kInstance;
  ProtobufCBinaryData parts[3] = {bytes_of(inst), bytes_of(tag), bytes_of(data)};
  uint8_t sig[MIR_TEST_SIGNATURE_BYTES];
  mir_test_signature(node_id, parts, 3, sig);
  return std::string(reinterpret_cast<char *>(sig), sizeof(sig));
}

// The data of every Deliver a collector received, in order.
std::vector<std::string> deliveries(mir_collector *app) {
  std::vector<std::string> out;
  size_t n = mir_collector_count(app, &samples__bcb__deliver__descriptor);
  for (size_t i = 0; i < n; i++) {
    auto *d = reinterpret_cast<Samples__Bcb__Deliver *>(
        mir_collector_get(app, &samples__bcb__deliver__descriptor, i, nullptr));
    out.push_back(string_of(d->data));
    protobuf_c_message_free_unpacked(&d->base, nullptr);
  }
  return out;
}

// ---- the test signer ----

// A signature binds the node id and the exact parts: another node's id, changed data, or the
// same bytes split differently do not verify.
TEST(TestSignerTest, SignatureBindsNodeAndData) {
  std::string a = echo_sig("1", "value");
  EXPECT_EQ(a.size(), size_t{MIR_TEST_SIGNATURE_BYTES});
  EXPECT_EQ(a, echo_sig("1", "value"));  // deterministic
  EXPECT_NE(a, echo_sig("2", "value"));
  EXPECT_NE(a, echo_sig("1", "valuf"));
  std::string x = "ab", y = "c", xy = "abc", empty;
  ProtobufCBinaryData two[2] = {bytes_of(x), bytes_of(y)};
  ProtobufCBinaryData one_empty[2] = {bytes_of(xy), bytes_of(empty)};
  uint8_t s1[MIR_TEST_SIGNATURE_BYTES], s2[MIR_TEST_SIGNATURE_BYTES];
  mir_test_signature("1", two, 2, s1);
  mir_test_signature("1", one_empty, 2, s2);
  EXPECT_NE(0, memcmp(s1, s2, sizeof(s1)));
}

// The signer module answers sign and verify requests to the origin module with the origin's
// context id, accepting its own signature and rejecting another node's or a tampered one.
TEST(TestSignerTest, ModuleAnswersToTheOrigin) {
  mir_dsl *signer;
  ASSERT_EQ(mir_test_signer_new("crypto", "2", &signer), MIR_OK);
  std::string data = "payload", other = "pay1oad";
  std::string good = echo_sig("2", data);  // not an echo, but any parts will do
  auto origin = [](uint64_t id) {
    auto *o = static_cast<Mir__Origin *>(mir_xmalloc(sizeof(Mir__Origin)));
    mir__origin__init(o);
    o->module = mir_xstrdup("req");
    o->context_id = id;
    return o;
  };
  std::string tag = "ECHO", inst = kInstance;
  auto parts = [&](const std::string &d) {
    auto *p = static_cast<ProtobufCBinaryData *>(mir_xmalloc(3 * sizeof(ProtobufCBinaryData)));
    p[0] = {inst.size(), static_cast<uint8_t *>(mir_xmemdup(inst.data(), inst.size()))};
    p[1] = {tag.size(), static_cast<uint8_t *>(mir_xmemdup(tag.data(), tag.size()))};
    p[2] = {d.size(), static_cast<uint8_t *>(mir_xmemdup(d.data(), d.size()))};
    return p;
  };
  mir_event_list in = MIR_EVENT_LIST_INIT, out = MIR_EVENT_LIST_INIT;
  auto *sr = static_cast<Mir__SignRequest *>(mir_xmalloc(sizeof(Mir__SignRequest)));
  mir__sign_request__init(sr);
  sr->n_data = 3;
  sr->data = parts(data);
  sr->origin = origin(11);
  mir_event_list_push(&in, mir_event_new("crypto", "req", &sr->base));
  const char *who[] = {"2", "3", "2"};
  const std::string *what[] = {&data, &data, &other};
  for (int i = 0; i < 3; i++) {
    auto *vr = static_cast<Mir__VerifyRequest *>(mir_xmalloc(sizeof(Mir__VerifyRequest)));
    mir__verify_request__init(vr);
    vr->n_data = 3;
    vr->data = parts(*what[i]);
    vr->signature = {good.size(), static_cast<uint8_t *>(mir_xmemdup(good.data(), good.size()))};
    vr->node_id = mir_xstrdup(who[i]);
    vr->origin = origin(20 + i);
    mir_event_list_push(&in, mir_event_new("crypto", "req", &vr->base));
  }
  ASSERT_EQ(mir_dsl_ops.apply(signer, &in, &out), MIR_OK);
  ASSERT_EQ(out.len, 4u);
  mir_event *ev = out.head;
  ASSERT_TRUE(mir_event_is(ev, &mir__sign_result__descriptor));
  auto *res = reinterpret_cast<Mir__SignResult *>(ev->payload);
  EXPECT_STREQ(ev->dest, "req");
  EXPECT_EQ(res->origin->context_id, 11u);
  EXPECT_EQ(string_of(res->signature), good);
  const bool expect_ok[] = {true, false, false};
  for (int i = 0; i < 3; i++) {
    ev = ev->next;
    ASSERT_TRUE(mir_event_is(ev, &mir__verify_result__descriptor));
    auto *vr = reinterpret_cast<Mir__VerifyResult *>(ev->payload);
    EXPECT_EQ(vr->ok, expect_ok[i]) << i;
    EXPECT_EQ(vr->origin->context_id, uint64_t(20 + i));
    EXPECT_STREQ(vr->node_id, who[i]);
  }
  mir_event_list_free(&in);
  mir_event_list_free(&out);
  mir_dsl_free(signer);
}

// ---- agreement over the in-process transport ----

struct BcbNode {
  mir_node *node = nullptr;
  mir_dsl *bcb = nullptr;  // owned by node
  mir_collector *app = nullptr;
};

// Adds "crypto", "bcb" and "app" to n->node (created by the caller, with its transport).
void add_bcb_modules(const char *id, BcbNode *n) {
  mir_dsl *signer;
  ASSERT_EQ(mir_test_signer_new("crypto", id, &signer), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "crypto", &mir_dsl_ops, signer), MIR_OK);
  mir_bcb_config cfg = bcb_config(id);
  ASSERT_EQ(mir_bcb_new(&cfg, &n->bcb), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "bcb", &mir_dsl_ops, n->bcb), MIR_OK);
  ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, &n->app), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n->node, "app", &mir_collector_ops, n->app), MIR_OK);
}

samples_test::BcbCounts bcb_stats(const BcbNode &n) {
  return samples_test::bcb_counts(n.bcb);
}

// With a correct leader, all four nodes deliver the broadcast value, exactly once.
TEST(BcbTest, AllCorrectNodesDeliverTheSameValue) {
  mir_local_net *net;
  ASSERT_EQ(mir_local_net_new(nullptr, &net), MIR_OK);
  BcbNode n[4];
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ(mir_node_new(kNodes[i], nullptr, &n[i].node), MIR_OK);
    mir_local_transport *t;
    ASSERT_EQ(mir_local_net_transport_new(net, kNodes[i], &t), MIR_OK);
    ASSERT_EQ(mir_node_add_module(n[i].node, "net", &mir_local_transport_ops, t), MIR_OK);
    add_bcb_modules(kNodes[i], &n[i]);
  }
  for (auto &x : n) ASSERT_EQ(mir_node_start(x.node), MIR_OK);
  inject(n[0].node, mir_bcb_broadcast_request("bcb", nullptr, "the value", 9));
  for (auto &x : n) {
    EXPECT_TRUE(mir_collector_wait(x.app, &samples__bcb__deliver__descriptor, 1, 30000));
  }
  for (auto &x : n) EXPECT_EQ(mir_node_stop(x.node), MIR_OK) << mir_node_last_error(x.node);
  for (auto &x : n) {
    EXPECT_EQ(deliveries(x.app), std::vector<std::string>{"the value"});
    EXPECT_TRUE(bcb_stats(x).delivered);
    EXPECT_EQ(bcb_stats(x).dropped, 0u);
  }
  // The leader certified with a quorum; the last echo may arrive after everyone delivered.
  EXPECT_GE(bcb_stats(n[0]).echoes_valid, mir_bcb_quorum(4));
  EXPECT_LE(bcb_stats(n[0]).echoes_valid, 4u);
  EXPECT_EQ(bcb_stats(n[0]).echoes_invalid, 0u);
  for (auto &x : n) {
    mir_node_free(x.node);
    mir_collector_free(x.app);
  }
  mir_local_net_free(net);
}

// An equivocating leader: node 0 runs the leader's BCB module behind a filter that sends node 3
// a Start and a Final for a different value (the Final keeps the signatures over the original).
// Correct nodes never deliver different values: 1 and 2 deliver the original, node 3 rejects the
// certificate, and the leader finds node 3's echo invalid.
const char kEvilValue[] = "forged value";

// Rewrites the data of a Start or Final message (owned; replaced in place).
void replace_data(ProtobufCMessage *msg) {
  ProtobufCBinaryData *data = nullptr;
  if (msg->descriptor == &samples__bcb__start_message__descriptor) {
    data = &reinterpret_cast<Samples__Bcb__StartMessage *>(msg)->data;
  } else if (msg->descriptor == &samples__bcb__final_message__descriptor) {
    data = &reinterpret_cast<Samples__Bcb__FinalMessage *>(msg)->data;
  }
  if (data == nullptr) return;
  free(data->data);
  data->len = strlen(kEvilValue);
  data->data = static_cast<uint8_t *>(mir_xmemdup(kEvilValue, data->len));
}

// The filter "net" of the Byzantine node: forwards every SendMessage to "realnet", one
// destination at a time, with node 3's copy of Start and Final rewritten.
mir_err evil_on_send(mir_dsl *dsl, const mir_event *ev, void *) {
  auto *sm = reinterpret_cast<const Mir__SendMessage *>(ev->payload);
  ProtobufCMessage *msg = nullptr;
  if (mir_message_unpack(sm->msg, 0, &msg) != MIR_OK) return MIR_EPROTO;
  for (size_t i = 0; i < sm->n_destinations; i++) {
    const char *d = sm->destinations[i];
    ProtobufCMessage *copy = mir_message_clone(msg);
    if (strcmp(d, "3") == 0) replace_data(copy);
    mir_dsl_emit(dsl, mir_event_send_message("realnet", "net", &d, 1, sm->msg->dest_module, copy));
    protobuf_c_message_free_unpacked(copy, nullptr);
  }
  protobuf_c_message_free_unpacked(msg, nullptr);
  return MIR_OK;
}

TEST(BcbTest, EquivocatingLeaderNeverSplitsCorrectNodes) {
  mir_local_net *net;
  ASSERT_EQ(mir_local_net_new(nullptr, &net), MIR_OK);
  BcbNode n[4];
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ(mir_node_new(kNodes[i], nullptr, &n[i].node), MIR_OK);
    mir_local_transport *t;
    ASSERT_EQ(mir_local_net_transport_new(net, kNodes[i], &t), MIR_OK);
    const char *tid = i == 0 ? "realnet" : "net";
    ASSERT_EQ(mir_node_add_module(n[i].node, tid, &mir_local_transport_ops, t), MIR_OK);
    add_bcb_modules(kNodes[i], &n[i]);
  }
  mir_dsl *evil = mir_dsl_new("net", nullptr);
  ASSERT_EQ(mir_dsl_upon_event(evil, &mir__send_message__descriptor, evil_on_send), MIR_OK);
  ASSERT_EQ(mir_node_add_module(n[0].node, "net", &mir_dsl_ops, evil), MIR_OK);
  for (auto &x : n) ASSERT_EQ(mir_node_start(x.node), MIR_OK);
  inject(n[0].node, mir_bcb_broadcast_request("bcb", nullptr, "the value", 9));
  EXPECT_TRUE(mir_collector_wait(n[1].app, &samples__bcb__deliver__descriptor, 1, 30000));
  EXPECT_TRUE(mir_collector_wait(n[2].app, &samples__bcb__deliver__descriptor, 1, 30000));
  EXPECT_TRUE(eventually([&] { return bcb_stats(n[3]).finals_rejected == 1; }));
  // Node 3 echoed the forged value; the leader checks that echo against what it broadcast.
  EXPECT_TRUE(eventually([&] { return bcb_stats(n[0]).echoes_invalid == 1; }));
  for (auto &x : n) EXPECT_EQ(mir_node_stop(x.node), MIR_OK) << mir_node_last_error(x.node);
  std::set<std::string> values;
  for (int i = 1; i < 4; i++) {
    auto d = deliveries(n[i].app);
    EXPECT_LE(d.size(), 1u);
    values.insert(d.begin(), d.end());
  }
  EXPECT_EQ(values, std::set<std::string>{"the value"});
  EXPECT_TRUE(deliveries(n[3].app).empty());
  EXPECT_EQ(bcb_stats(n[0]).echoes_invalid, 1u);
  for (auto &x : n) {
    mir_node_free(x.node);
    mir_collector_free(x.app);
  }
  mir_local_net_free(net);
}

// ---- one node in manual mode, messages injected ----

class BcbManualTest : public ::testing::Test {
 protected:
  // Builds node `self` with "net" and "app" collectors, the test signer and BCB, and starts it.
  void Build(const char *self) {
    mir_node_config cfg;
    mir_node_config_default(&cfg);
    cfg.mode = MIR_NODE_MANUAL;
    ASSERT_EQ(mir_node_new(self, &cfg, &node_), MIR_OK);
    ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, &net_), MIR_OK);
    ASSERT_EQ(mir_collector_new(0, nullptr, nullptr, &app_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "net", &mir_collector_ops, net_), MIR_OK);
    mir_dsl *signer;
    ASSERT_EQ(mir_test_signer_new("crypto", self, &signer), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "crypto", &mir_dsl_ops, signer), MIR_OK);
    mir_bcb_config bc = bcb_config(self);
    ASSERT_EQ(mir_bcb_new(&bc, &bcb_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "bcb", &mir_dsl_ops, bcb_), MIR_OK);
    ASSERT_EQ(mir_node_add_module(node_, "app", &mir_collector_ops, app_), MIR_OK);
    ASSERT_EQ(mir_node_start(node_), MIR_OK);
    run_until_quiet(node_);
  }
  void TearDown() override {
    mir_node_free(node_);
    mir_collector_free(net_);
    mir_collector_free(app_);
  }
  samples_test::BcbCounts stats() { return samples_test::bcb_counts(bcb_); }
  void Echo(const char *from, const std::string &sig) {
    Samples__Bcb__EchoMessage m = SAMPLES__BCB__ECHO_MESSAGE__INIT;
    m.signature = bytes_of(sig);
    inject_message(node_, from, "bcb", &m.base);
  }
  void Final(const char *from, const std::string &data, std::vector<std::string> signers,
             std::vector<std::string> sigs) {
    std::vector<char *> s;
    std::vector<ProtobufCBinaryData> g;
    for (auto &x : signers) s.push_back(const_cast<char *>(x.c_str()));
    for (auto &x : sigs) g.push_back(bytes_of(x));
    Samples__Bcb__FinalMessage m = SAMPLES__BCB__FINAL_MESSAGE__INIT;
    m.data = bytes_of(data);
    m.n_signers = s.size();
    m.signers = s.data();
    m.n_signatures = g.size();
    m.signatures = g.data();
    inject_message(node_, from, "bcb", &m.base);
  }
  // Number of SendMessage events carrying a message of type t.
  size_t SentOfType(const ProtobufCMessageDescriptor *t) {
    auto sent = sent_messages(net_);
    size_t n = 0;
    for (auto &s : sent) n += s.msg != nullptr && s.msg->descriptor == t;
    free_sent(&sent);
    return n;
  }
  mir_node *node_ = nullptr;
  mir_dsl *bcb_ = nullptr;
  mir_collector *net_ = nullptr, *app_ = nullptr;
};

// The leader starts the broadcast, echoes its own Start, and with echoes from a quorum (itself,
// 1 and 2) sends one Final to all with the signers in membership order.
TEST_F(BcbManualTest, LeaderCertifiesWithAQuorumOfValidEchoes) {
  Build("0");
  inject(node_, mir_bcb_broadcast_request("bcb", nullptr, "v", 1));
  run_until_quiet(node_);
  ASSERT_EQ(SentOfType(&samples__bcb__start_message__descriptor), 1u);
  Samples__Bcb__StartMessage start = SAMPLES__BCB__START_MESSAGE__INIT;
  std::string v = "v";
  start.data = bytes_of(v);
  inject_message(node_, "0", "bcb", &start.base);
  run_until_quiet(node_);
  ASSERT_EQ(SentOfType(&samples__bcb__echo_message__descriptor), 1u);
  Echo("2", echo_sig("2", v));
  Echo("0", echo_sig("0", v));
  run_until_quiet(node_);
  EXPECT_EQ(SentOfType(&samples__bcb__final_message__descriptor), 0u);  // 2 of 3
  Echo("1", echo_sig("1", v));
  run_until_quiet(node_);
  auto sent = sent_messages(net_);
  ASSERT_EQ(sent.size(), 3u);
  ASSERT_EQ(sent[2].msg->descriptor, &samples__bcb__final_message__descriptor);
  EXPECT_EQ(sent[2].dests, (std::vector<std::string>{"0", "1", "2", "3"}));
  auto *fin = reinterpret_cast<Samples__Bcb__FinalMessage *>(sent[2].msg);
  ASSERT_EQ(fin->n_signers, 3u);
  EXPECT_STREQ(fin->signers[0], "0");
  EXPECT_STREQ(fin->signers[1], "1");
  EXPECT_STREQ(fin->signers[2], "2");
  EXPECT_EQ(string_of(fin->signatures[1]), echo_sig("1", v));
  free_sent(&sent);
  Echo("3", echo_sig("3", v));  // a late echo does not produce a second Final
  run_until_quiet(node_);
  EXPECT_EQ(SentOfType(&samples__bcb__final_message__descriptor), 1u);
}

// Forged echoes are not counted: another node's signature, a signature over other data, one from
// a non-member, an oversized one, and a second echo from the same member. With the leader's own
// echo and one valid echo, that is 2 of the 3 needed, so no Final is sent.
TEST_F(BcbManualTest, ForgedEchoesAreNotCounted) {
  Build("0");
  std::string v = "v";
  inject(node_, mir_bcb_broadcast_request("bcb", nullptr, v.data(), v.size()));
  Echo("0", echo_sig("0", v));
  Echo("1", echo_sig("2", v));       // node 2's signature, sent by node 1
  Echo("3", std::string(600, 'x'));  // oversized: dropped, node 3's echo slot stays open
  Echo("3", echo_sig("3", "w"));     // signed other data
  Echo("9", echo_sig("9", v));       // not a member
  Echo("1", echo_sig("1", v));       // valid, but node 1 already echoed
  Echo("2", echo_sig("2", v));       // valid
  inject_raw_message(node_, "2", "bcb", "samples.bcb.EchoMessage", "\x0a\x05");  // truncated
  run_until_quiet(node_);
  EXPECT_EQ(SentOfType(&samples__bcb__final_message__descriptor), 0u);
  auto s = stats();
  EXPECT_EQ(s.echoes_valid, 2u);
  EXPECT_EQ(s.echoes_invalid, 2u);
  EXPECT_EQ(s.dropped, 3u);
  EXPECT_EQ(mir_node_wait(node_, 1), MIR_ETIMEDOUT);  // still running
}

// A member accepts Start only from the leader, and echoes only the first one.
TEST_F(BcbManualTest, MemberEchoesTheLeadersFirstStartOnly) {
  Build("1");
  Samples__Bcb__StartMessage start = SAMPLES__BCB__START_MESSAGE__INIT;
  std::string a = "a", b = "b";
  start.data = bytes_of(a);
  inject_message(node_, "2", "bcb", &start.base);  // not the leader
  run_until_quiet(node_);
  EXPECT_EQ(SentOfType(&samples__bcb__echo_message__descriptor), 0u);
  EXPECT_EQ(stats().dropped, 1u);
  inject_message(node_, "0", "bcb", &start.base);
  start.data = bytes_of(b);
  inject_message(node_, "0", "bcb", &start.base);  // equivocation: ignored
  run_until_quiet(node_);
  auto sent = sent_messages(net_);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].dests, std::vector<std::string>{"0"});
  auto *echo = reinterpret_cast<Samples__Bcb__EchoMessage *>(sent[0].msg);
  EXPECT_EQ(string_of(echo->signature), echo_sig("1", a));
  free_sent(&sent);
  // Echoes sent to a non-leader are dropped.
  Echo("2", echo_sig("2", a));
  run_until_quiet(node_);
  EXPECT_EQ(stats().dropped, 2u);
}

// Forged or tampered Final certificates never lead to a delivery; a valid one delivers once.
TEST_F(BcbManualTest, ForgedFinalsAreRejectedAndValidOneDeliversOnce) {
  Build("1");
  std::string v = "v";
  std::string s0 = echo_sig("0", v), s1 = echo_sig("1", v), s2 = echo_sig("2", v);
  // Dropped at ingress: not from the leader, too few signers, a duplicate signer, a non-member
  // signer, mismatched counts, an empty signature, an oversized signature.
  Final("2", v, {"0", "1", "2"}, {s0, s1, s2});
  Final("0", v, {"0", "1"}, {s0, s1});
  Final("0", v, {"0", "0", "1"}, {s0, s0, s1});
  Final("0", v, {"0", "1", "7"}, {s0, s1, echo_sig("7", v)});
  Final("0", v, {"0", "1", "2"}, {s0, s1});
  Final("0", v, {"0", "1", "2"}, {s0, s1, ""});
  Final("0", v, {"0", "1", "2"}, {s0, s1, std::string(MIR_BCB_SIGNATURE_BYTES_MAX + 1, 's')});
  run_until_quiet(node_);
  EXPECT_EQ(stats().dropped, 7u);
  // Well formed but failing verification: data changed, a signature by the wrong node.
  Final("0", "w", {"0", "1", "2"}, {s0, s1, s2});
  run_until_quiet(node_);
  Final("0", v, {"0", "1", "2"}, {s0, s1, echo_sig("3", v)});
  run_until_quiet(node_);
  EXPECT_EQ(stats().finals_rejected, 2u);
  inject_raw_message(node_, "0", "bcb", "samples.bcb.FinalMessage", "\x12\xff");
  run_until_quiet(node_);
  EXPECT_TRUE(deliveries(app_).empty());
  EXPECT_FALSE(stats().delivered);
  Final("0", v, {"2", "0", "1"}, {s2, s0, s1});  // any order of signers is fine
  run_until_quiet(node_);
  Final("0", v, {"0", "1", "2"}, {s0, s1, s2});
  run_until_quiet(node_);
  EXPECT_EQ(deliveries(app_), std::vector<std::string>{"v"});
  EXPECT_TRUE(stats().delivered);
  EXPECT_EQ(mir_node_wait(node_, 1), MIR_ETIMEDOUT);  // still running
}

// A second Final arriving while the first is being verified is dropped, so a leader cannot pile
// up verification requests.
TEST_F(BcbManualTest, OneFinalVerificationAtATime) {
  Build("1");
  std::string v = "v";
  std::string s0 = echo_sig("0", v), s1 = echo_sig("1", v), s2 = echo_sig("2", v);
  Final("0", v, {"0", "1", "2"}, {s0, s1, s2});
  Final("0", v, {"0", "1", "2"}, {s0, s1, s2});
  run_until_quiet(node_);
  EXPECT_EQ(stats().dropped, 1u);
  EXPECT_EQ(deliveries(app_), std::vector<std::string>{"v"});
}

// A BroadcastRequest at a member that is not the leader is a wiring error: the node stops.
TEST_F(BcbManualTest, BroadcastRequestAtNonLeaderStopsTheNode) {
  Build("2");
  inject(node_, mir_bcb_broadcast_request("bcb", nullptr, "v", 1));
  size_t applied = 0;
  mir_err err = MIR_OK;
  for (int i = 0; i < 100 && err == MIR_OK; i++) err = mir_node_step(node_, &applied);
  EXPECT_EQ(err, MIR_EINVAL);
}

// Quorums are more than (N + f) / 2 echoes, f = (N - 1) / 3.
TEST(BcbTest, QuorumSizes) {
  EXPECT_EQ(mir_bcb_quorum(1), 1u);
  EXPECT_EQ(mir_bcb_quorum(3), 2u);
  EXPECT_EQ(mir_bcb_quorum(4), 3u);
  EXPECT_EQ(mir_bcb_quorum(7), 5u);
  EXPECT_EQ(mir_bcb_quorum(10), 7u);
}

// The constructor rejects configurations that would let the protocol misbehave.
TEST(BcbTest, ConfigValidation) {
  const char *dup[] = {"0", "1", "1", "3"};
  mir_dsl *d = nullptr;
  mir_bcb_config cfg = bcb_config("4");
  EXPECT_EQ(mir_bcb_new(&cfg, &d), MIR_EINVAL);  // self not a member
  cfg = bcb_config("1", "9");
  EXPECT_EQ(mir_bcb_new(&cfg, &d), MIR_EINVAL);  // leader not a member
  cfg = bcb_config("1");
  cfg.nodes = dup;
  EXPECT_EQ(mir_bcb_new(&cfg, &d), MIR_EINVAL);  // duplicate member
  cfg = bcb_config("1");
  cfg.n_nodes = 0;
  EXPECT_EQ(mir_bcb_new(&cfg, &d), MIR_EINVAL);
  cfg = bcb_config("1");
  cfg.crypto_id = "a//b";
  EXPECT_EQ(mir_bcb_new(&cfg, &d), MIR_EINVAL);
  cfg = bcb_config("1");
  ASSERT_EQ(mir_bcb_new(&cfg, &d), MIR_OK);
  mir_dsl_free(d);
}

}  // namespace
