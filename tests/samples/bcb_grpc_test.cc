// Tests of the BCB sample over gRPC with Ed25519 signatures (bcb_grpc.h, what `bcb --grpc` runs):
// the four nodes, each with the gRPC transport on a free loopback port and the real crypto
// module, deliver the leader's value in plaintext and over mutual TLS; a node whose signing key is
// not the one the membership lists is refused at setup, and when it runs anyway its echo fails
// verification (with two such nodes no quorum forms and nobody delivers); Finals that a Byzantine
// leader sends over its authenticated stream with signatures over other data, by keys outside the
// membership, or with one tampered signature are rejected, and the honest value is still
// delivered afterwards.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "bcb_grpc.h"
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "samples.h"
#include "samples_test_util.h"

using samples_test::bytes_of;
using samples_test::eventually;
using samples_test::string_of;

namespace {

constexpr size_t kN = MIR_SAMPLE_BCB_NODES;
const char *const kIds[kN] = {"0", "1", "2", "3"};
const uint64_t kSeed = 0xbcb6;       // the members' keys
const uint64_t kRogueSeed = 0x6e6f;  // keys that are not in the membership
const uint64_t kWaitMs = 10000;      // a bound on a wait, not a timing claim

// The Ed25519 key of id under seed. Returns owned (free with mir_private_key_free).
mir_private_key *Key(uint64_t seed, const char *id) {
  uint8_t s[MIR_SIG_SEED_LEN];
  mir_crypto_pseudo_seed(seed, id, s);
  mir_private_key *key = nullptr;
  EXPECT_EQ(mir_private_key_from_seed(MIR_SIG_ED25519, s, &key), MIR_OK) << mir_error_detail();
  return key;
}

// The membership of the members' keys on ports. Returns owned (free with mir_membership_free).
mir_membership *Membership(const uint16_t *ports) {
  mir_public_key *pubs[kN];
  for (size_t i = 0; i < kN; i++) {
    mir_private_key *k = Key(kSeed, kIds[i]);
    pubs[i] = mir_private_key_public(k);
    mir_private_key_free(k);
  }
  mir_membership *m = nullptr;
  EXPECT_EQ(mir_bcb_grpc_membership_new(pubs, ports, &m), MIR_OK) << mir_error_detail();
  for (size_t i = 0; i < kN; i++) mir_public_key_free(pubs[i]);
  return m;
}

// A key set for id that signs with own (takes ownership) and knows the membership's public keys,
// without checking own against the membership: what a node with the wrong key would run.
mir_keyset *UncheckedKeyset(const mir_membership *m, const char *id, mir_private_key *own) {
  mir_keyset *ks = mir_keyset_new(id, own);
  for (size_t i = 0; i < m->n; i++) {
    mir_public_key *pub = nullptr;
    EXPECT_EQ(mir_public_key_from_bytes(MIR_SIG_ED25519, m->replicas[i].public_key,
                                        m->replicas[i].public_key_len, &pub),
              MIR_OK);
    EXPECT_EQ(mir_keyset_add(ks, m->replicas[i].id, pub), MIR_OK);
  }
  return ks;
}

// key's signature over what a BCB echo of data signs: [instance, "ECHO", data].
std::string EchoSig(const mir_private_key *key, const std::string &data) {
  std::string inst = MIR_SAMPLE_BCB_INSTANCE, tag = "ECHO";
  ProtobufCBinaryData parts[3] = {bytes_of(inst), bytes_of(tag), bytes_of(data)};
  uint8_t sig[MIR_SIGNATURE_LEN];
  size_t len = 0;
  EXPECT_EQ(mir_sign(key, parts, 3, sig, &len), MIR_OK);
  return std::string(reinterpret_cast<char *>(sig), len);
}

// The four sample nodes over gRPC on free loopback ports, started.
class Cluster {
 public:
  Cluster() = default;
  Cluster(const Cluster &) = delete;
  Cluster &operator=(const Cluster &) = delete;
  ~Cluster() {
    Free();
    if (!tls_dir_.empty()) mir_bcb_grpc_tls_remove(tls_dir_.c_str());
  }

  // Starts the nodes; those in rogue sign with a key that is not the membership's. Ports taken
  // between choosing and binding make it try again with new ones (bounded).
  bool Start(bool tls, const std::set<size_t> &rogue = {}) {
    if (tls && !MakeTls()) return false;
    for (int attempt = 0; attempt < 5; attempt++) {
      mir_err err = TryStart(rogue);
      if (err == MIR_OK) return true;
      Free();
      if (err != MIR_EIO) {
        ADD_FAILURE() << mir_strerror(err) << ": " << mir_error_detail();
        return false;
      }
    }
    ADD_FAILURE() << "no set of free ports could be bound";
    return false;
  }

  void Inject(size_t i, mir_event *ev) {
    mir_event_list l = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&l, ev);
    ASSERT_EQ(mir_node_inject(nodes_[i].node, &l), MIR_OK);
  }

  void Broadcast(const std::string &value) {
    Inject(0, mir_bcb_broadcast_request(MIR_SAMPLE_BCB, nullptr, value.data(), value.size()));
  }

  samples_test::BcbCounts Bcb(size_t i) const {
    return samples_test::bcb_counts(nodes_[i].mods.bcb);
  }

  // Node i's crypto counters, read from the node's registry under the module.
  struct CryptoCounts {
    uint64_t signed_count, verified_count, failed_count;
  };
  CryptoCounts Crypto(size_t i) const {
    const mir_metrics *m = mir_node_metrics(nodes_[i].node);
    auto rd = [m](const char *name) {
      return static_cast<uint64_t>(mir_metrics_read_child(m, "crypto", name, nullptr));
    };
    return CryptoCounts{rd("mir_crypto_signs_total"), rd("mir_crypto_verifies_total"),
                        rd("mir_crypto_verify_failures_total")};
  }

  // What node i's transport received from node `from` over the network.
  uint64_t ReceivedFrom(size_t i, const char *from) const {
    return static_cast<uint64_t>(mir_metrics_read(mir_net_grpc_metrics(nodes_[i].mods.net),
                                                  "mir_net_messages_received_total", from));
  }

  // The data of every Deliver node i made, in order.
  std::vector<std::string> Deliveries(size_t i) const {
    std::vector<std::string> out;
    size_t n = mir_collector_count(nodes_[i].app, &samples__bcb__deliver__descriptor);
    for (size_t k = 0; k < n; k++) {
      auto *d = reinterpret_cast<Samples__Bcb__Deliver *>(
          mir_collector_get(nodes_[i].app, &samples__bcb__deliver__descriptor, k, nullptr));
      out.push_back(string_of(d->data));
      protobuf_c_message_free_unpacked(&d->base, nullptr);
    }
    return out;
  }

  // True once every node's collector holds a Deliver.
  bool AllDelivered() const {
    for (size_t i = 0; i < kN; i++) {
      if (mir_collector_count(nodes_[i].app, &samples__bcb__deliver__descriptor) == 0) return false;
    }
    return true;
  }

  bool NodeRunning(size_t i) const { return mir_node_wait(nodes_[i].node, 1) == MIR_ETIMEDOUT; }

 private:
  struct Node {
    mir_node *node = nullptr;
    mir_collector *app = nullptr;
    mir_bcb_grpc_modules mods = {};
  };

  bool MakeTls() {
    std::string tmpl = ::testing::TempDir() + "mir-bcb-grpc-test-XXXXXX";
    if (mkdtemp(&tmpl[0]) == nullptr) return false;
    tls_dir_ = tmpl;
    mir_err err = mir_bcb_grpc_tls_write(tls_dir_.c_str());
    EXPECT_EQ(err, MIR_OK) << mir_error_detail();
    return err == MIR_OK;
  }

  mir_err TryStart(const std::set<size_t> &rogue) {
    uint16_t ports[kN];
    mir_err err = mir_bcb_grpc_free_ports(ports, kN);
    if (err != MIR_OK) return err;
    mir_membership *m = Membership(ports);
    if (m == nullptr) return MIR_ECONFIG;
    for (size_t i = 0; i < kN && err == MIR_OK; i++) err = AddNode(i, m, rogue.count(i) > 0);
    mir_membership_free(m);
    for (size_t i = 0; i < kN && err == MIR_OK; i++) err = mir_node_start(nodes_[i].node);
    return err;
  }

  mir_err AddNode(size_t i, const mir_membership *m, bool rogue) {
    Node &n = nodes_[i];
    mir_err err = mir_node_new(kIds[i], nullptr, &n.node);
    if (err == MIR_OK) err = mir_collector_new(0, nullptr, nullptr, &n.app);
    if (err == MIR_OK) err = mir_node_add_module(n.node, MIR_SAMPLE_APP, &mir_collector_ops, n.app);
    mir_keyset *ks = nullptr;
    if (err == MIR_OK && rogue) ks = UncheckedKeyset(m, kIds[i], Key(kRogueSeed, kIds[i]));
    if (err == MIR_OK && !rogue) {
      err = mir_keyset_from_membership(m, kIds[i], Key(kSeed, kIds[i]), &ks);
    }
    const char *tls = tls_dir_.empty() ? nullptr : tls_dir_.c_str();
    mir_bcb_grpc_node_config cfg = {kIds[i], m, ks, tls, 1};
    if (err == MIR_OK) err = mir_bcb_grpc_add_modules(n.node, &cfg, &n.mods);
    return err;
  }

  void Free() {
    for (Node &n : nodes_) {
      mir_node_free(n.node);
      mir_collector_free(n.app);
      n = Node();
    }
  }

  Node nodes_[kN];
  std::string tls_dir_;
};

// Every node delivers the value, exactly once; every echo was signed by the crypto module and
// verified by the leader; nodes 1 to 3 got the Start and the Final from node 0 over gRPC.
void ExpectHonestRun(Cluster *c, const std::string &value) {
  c->Broadcast(value);
  ASSERT_TRUE(eventually([&] { return c->AllDelivered(); }, kWaitMs));
  ASSERT_TRUE(eventually([&] { return c->Bcb(0).echoes_valid == kN; }, kWaitMs));
  EXPECT_EQ(c->Bcb(0).echoes_invalid, 0u);
  for (size_t i = 0; i < kN; i++) {
    EXPECT_EQ(c->Deliveries(i), std::vector<std::string>{value}) << i;
    EXPECT_EQ(c->Bcb(i).finals_rejected, 0u) << i;
    EXPECT_EQ(c->Crypto(i).signed_count, 1u) << i;
    EXPECT_EQ(c->Crypto(i).failed_count, 0u) << i;
    // The transport counts a frame after handing it to the node, so the count may lag a little.
    if (i > 0) {
      EXPECT_TRUE(eventually([&] { return c->ReceivedFrom(i, "0") >= 2; }, kWaitMs)) << i;
    }
  }
  // The leader checked the four echoes, every member the quorum of the Final.
  EXPECT_GE(c->Crypto(0).verified_count, kN + mir_bcb_quorum(kN));
}

TEST(BcbGrpc, FourNodesDeliverInPlaintextWithEd25519) {
  Cluster c;
  ASSERT_TRUE(c.Start(false));
  ExpectHonestRun(&c, "over gRPC, in plaintext");
}

TEST(BcbGrpc, FourNodesDeliverOverMutualTlsWithEd25519) {
  Cluster c;
  ASSERT_TRUE(c.Start(true));
  ExpectHonestRun(&c, "over gRPC, with mutual TLS");
}

// A node's private key must be the one the membership lists for it: mir_keyset_from_membership
// refuses another key naming the node, and the wiring refuses a key set made for another node.
TEST(BcbGrpc, KeyThatDoesNotMatchTheMembershipIsRefusedAtSetup) {
  const uint16_t ports[kN] = {1, 2, 3, 4};  // never bound here
  mir_membership *m = Membership(ports);
  ASSERT_NE(m, nullptr);
  mir_keyset *ks = nullptr;
  EXPECT_EQ(mir_keyset_from_membership(m, "3", Key(kRogueSeed, "3"), &ks), MIR_ECONFIG);
  EXPECT_STREQ(mir_error_detail(),
               "membership: the private key of 3 does not match its public key");
  EXPECT_EQ(ks, nullptr);

  mir_node *node = nullptr;
  ASSERT_EQ(mir_node_new("3", nullptr, &node), MIR_OK);
  ASSERT_EQ(mir_keyset_from_membership(m, "2", Key(kSeed, "2"), &ks), MIR_OK) << mir_error_detail();
  mir_bcb_grpc_node_config cfg = {"3", m, ks, nullptr, 1};
  EXPECT_EQ(mir_bcb_grpc_add_modules(node, &cfg, nullptr), MIR_EINVAL);
  EXPECT_NE(std::string(mir_error_detail()).find("own key set"), std::string::npos)
      << mir_error_detail();
  mir_node_free(node);
  mir_membership_free(m);
}

// Node 3 runs with a key that is not the membership's: its echo does not verify at the leader,
// and the three valid echoes still make a quorum, so every node (3 too) delivers.
TEST(BcbGrpc, EchoUnderAKeyOutsideTheMembershipFailsVerification) {
  Cluster c;
  ASSERT_TRUE(c.Start(false, {3}));
  c.Broadcast("three honest signers suffice");
  ASSERT_TRUE(eventually([&] { return c.AllDelivered(); }, kWaitMs));
  ASSERT_TRUE(eventually([&] { return c.Bcb(0).echoes_invalid == 1; }, kWaitMs));
  EXPECT_EQ(c.Bcb(0).echoes_valid, 3u);
  EXPECT_GE(c.Crypto(0).failed_count, 1u);
  for (size_t i = 0; i < kN; i++) {
    EXPECT_EQ(c.Deliveries(i), std::vector<std::string>{"three honest signers suffice"}) << i;
  }
}

// With nodes 2 and 3 on keys outside the membership only two echoes verify, one short of the
// quorum of three: once the leader has checked all four, no Final exists and nobody delivers.
TEST(BcbGrpc, WithoutAQuorumOfValidEchoesNobodyDelivers) {
  Cluster c;
  ASSERT_TRUE(c.Start(false, {2, 3}));
  c.Broadcast("never certified");
  ASSERT_TRUE(eventually([&] { return c.Bcb(0).echoes_invalid == 2 && c.Bcb(0).echoes_valid == 2; },
                         kWaitMs));
  for (size_t i = 0; i < kN; i++) {
    EXPECT_FALSE(c.Bcb(i).delivered) << i;
    EXPECT_TRUE(c.Deliveries(i).empty()) << i;
    EXPECT_TRUE(c.NodeRunning(i)) << i;
  }
}

// A Final for value `data` signed by signers 0, 1, 2 with sigs, sent by node 0's transport to
// nodes 1, 2 and 3 as a Byzantine leader would, over its authenticated streams.
mir_event *ForgedFinal(const std::string &data, const std::vector<std::string> &sigs) {
  static const char *const dests[] = {"1", "2", "3"};
  Samples__Bcb__FinalMessage fin = SAMPLES__BCB__FINAL_MESSAGE__INIT;
  std::vector<char *> signers = {const_cast<char *>("0"), const_cast<char *>("1"),
                                 const_cast<char *>("2")};
  std::vector<ProtobufCBinaryData> bins;
  for (const std::string &s : sigs) bins.push_back(bytes_of(s));
  fin.data = bytes_of(data);
  fin.n_signers = signers.size();
  fin.signers = signers.data();
  fin.n_signatures = bins.size();
  fin.signatures = bins.data();
  return mir_event_send_message(MIR_SAMPLE_NET, MIR_SAMPLE_BCB, dests, 3, MIR_SAMPLE_BCB,
                                &fin.base);
}

// Certificates for a value nobody echoed are rejected by every member with the real crypto
// module: the members' genuine signatures over another value, signatures by keys outside the
// membership, and genuine signatures over the forged value with one bit of one flipped. Nothing
// is delivered until the leader broadcasts honestly; then every node delivers that value only.
TEST(BcbGrpc, ForgedFinalsFromTheLeaderAreRejected) {
  Cluster c;
  ASSERT_TRUE(c.Start(true));
  const std::string forged = "forged", honest = "honest";
  std::vector<std::string> other_value, rogue_keys, tampered;
  for (size_t i = 0; i < 3; i++) {
    mir_private_key *member = Key(kSeed, kIds[i]), *rogue = Key(kRogueSeed, kIds[i]);
    other_value.push_back(EchoSig(member, honest));
    rogue_keys.push_back(EchoSig(rogue, forged));
    tampered.push_back(EchoSig(member, forged));
    mir_private_key_free(member);
    mir_private_key_free(rogue);
  }
  tampered[2][7] ^= 0x10;
  const std::vector<std::string> *forgeries[] = {&other_value, &rogue_keys, &tampered};
  for (uint64_t k = 0; k < 3; k++) {
    c.Inject(0, ForgedFinal(forged, *forgeries[k]));
    // One Final is verified at a time: wait for each verdict before sending the next.
    ASSERT_TRUE(eventually(
        [&] {
          for (size_t i = 1; i < kN; i++) {
            if (c.Bcb(i).finals_rejected != k + 1) return false;
          }
          return true;
        },
        kWaitMs))
        << "forgery " << k;
  }
  for (size_t i = 0; i < kN; i++) EXPECT_TRUE(c.Deliveries(i).empty()) << i;
  c.Broadcast(honest);
  ASSERT_TRUE(eventually([&] { return c.AllDelivered(); }, kWaitMs));
  for (size_t i = 0; i < kN; i++) {
    EXPECT_EQ(c.Deliveries(i), std::vector<std::string>{honest}) << i;
    EXPECT_EQ(c.Bcb(i).finals_rejected, i == 0 ? 0u : 3u) << i;
  }
}

}  // namespace
