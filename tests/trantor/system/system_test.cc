// End-to-end tests of Trantor's protocol modules wired by trantor_system_add_modules, run in the
// deterministic simulator with its transport, timer and fake crypto: four nodes order client
// transactions and agree on them, epochs advance with stable checkpoints and garbage collection,
// and a node cut off for several epochs catches up by state transfer. Configuration errors are
// refused.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "trantor/checkpoint/trantor_test_util.h"

extern "C" {
#include "mir/sim.h"
#include "trantor_system.h"
}

namespace {

const size_t kNodes = 4;
const size_t kTxs = 40;

// The application of one node: counts transactions, reports each one to the simulator's
// checkers at its position, and keeps a running hash as its state.
struct App {
  mir_sim *sim = nullptr;
  size_t node = 0;
  uint64_t txs = 0;
  uint64_t next_sn = 0;
  uint64_t epochs = 0;
  uint64_t last_epoch = 0;
  uint64_t checkpoints = 0;
  uint64_t last_checkpoint_epoch = 0;
  uint64_t restores = 0;
  std::string state = std::string(32, '\0');
};

mir_err app_apply(void *user, uint64_t sn, uint64_t epoch, Trantor__Tx *const *txs, size_t n) {
  (void)epoch;
  App *a = static_cast<App *>(user);
  for (size_t i = 0; i < n; i++) {
    mir_sim_report_delivery(a->sim, a->node, a->txs++, txs[i]->data.data, txs[i]->data.len);
    const uint8_t *parts[2] = {reinterpret_cast<const uint8_t *>(a->state.data()),
                               txs[i]->data.data};
    size_t lens[2] = {a->state.size(), txs[i]->data.len};
    uint8_t out[32];
    trantor_hash_reference(parts, lens, 2, out);
    a->state.assign(reinterpret_cast<char *>(out), 32);
  }
  a->next_sn = sn + 1;
  return MIR_OK;
}

// The state is the running hash followed by the transaction count.
mir_err app_snapshot(void *user, uint64_t epoch, uint64_t sn, uint8_t **data, size_t *len) {
  (void)epoch;
  (void)sn;
  App *a = static_cast<App *>(user);
  std::string s = a->state + std::to_string(a->txs);
  *data = static_cast<uint8_t *>(malloc(s.size()));
  memcpy(*data, s.data(), s.size());
  *len = s.size();
  return MIR_OK;
}

mir_err app_restore(void *user, const uint8_t *data, size_t len, uint64_t sn) {
  App *a = static_cast<App *>(user);
  if (len < 32) return MIR_EINVAL;
  a->state.assign(reinterpret_cast<const char *>(data), 32);
  a->txs = std::stoull(std::string(reinterpret_cast<const char *>(data) + 32, len - 32));
  a->next_sn = sn;
  a->restores++;
  return MIR_OK;
}

mir_err app_new_epoch(void *user, uint64_t epoch, uint64_t first_sn) {
  (void)first_sn;
  App *a = static_cast<App *>(user);
  a->epochs++;
  a->last_epoch = epoch;
  return MIR_OK;
}

mir_err app_checkpoint(void *user, const Trantor__StableCheckpoint *chkp) {
  App *a = static_cast<App *>(user);
  a->checkpoints++;
  a->last_checkpoint_epoch = chkp->snapshot->epoch_config->epoch;
  return MIR_OK;
}

// Everything the simulation's callbacks need.
struct Scenario {
  trantor_params params;
  Trantor__Membership *m = nullptr;
  App apps[kNodes];
  Scenario() {
    trantor_params_default(&params);
    params.segment_length = 4;
    params.num_buckets = 8;
    params.retained_epochs = 2;
    params.checkpoint_resend_ms = 200;
    m = tt::unit_membership({"0", "1", "2", "3"});
  }
  ~Scenario() { tt::free_msg(m); }
};

mir_err build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  (void)restart;
  Scenario *r = static_cast<Scenario *>(user);
  App *a = &r->apps[node];
  a->sim = sim;
  a->node = node;
  mir_err err = mir_sim_add_transport(sim, node, mn, "net");
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, "timer");
  if (err == MIR_OK) err = mir_sim_add_crypto(sim, node, mn, "crypto");
  if (err == MIR_OK) err = mir_sim_add_store(sim, node, mn, "store");
  if (err != MIR_OK) return err;
  trantor_app app = {};
  app.apply_batch = app_apply;
  app.snapshot = app_snapshot;
  app.restore = app_restore;
  app.new_epoch = app_new_epoch;
  app.checkpoint = app_checkpoint;
  app.user_data = a;
  trantor_system_config cfg = {};
  cfg.self_id = mir_sim_node_id(sim, node);
  cfg.membership = r->m;
  cfg.params = &r->params;
  cfg.hash = trantor_hash_reference;
  cfg.app = &app;
  return trantor_system_add_modules(mn, &cfg);
}

// A submission "tx-<k>" becomes transaction k of client "client" at the node's mempool.
mir_event *submit(void *user, mir_sim *sim, size_t node, const uint8_t *value, size_t len) {
  (void)user;
  (void)sim;
  (void)node;
  std::string v(reinterpret_cast<const char *>(value), len);
  auto *tx = static_cast<Trantor__Tx *>(mir_xmalloc(sizeof(Trantor__Tx)));
  trantor__tx__init(tx);
  tx->client_id = mir_xstrdup("client");
  tx->tx_no = std::stoull(v.substr(3));
  tx->data = tt::dup_bytes(v);
  auto *nt = static_cast<Trantor__NewTransactions *>(mir_xmalloc(sizeof(Trantor__NewTransactions)));
  trantor__new_transactions__init(nt);
  nt->n_txs = 1;
  nt->txs = static_cast<Trantor__Tx **>(mir_xmalloc(sizeof(Trantor__Tx *)));
  nt->txs[0] = tx;
  return mir_event_new("mempool", "client", &nt->base);
}

// A simulation of four Trantor nodes (owned) for seed, with every transaction submitted to every
// node, one every spacing_ms (the first second by default).
mir_sim *start(Scenario &r, uint64_t seed, unsigned faults = 0, uint64_t spacing_ms = 25) {
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = seed;
  if (faults != 0) {
    cfg.heal_ns = 3000 * MIR_SIM_NS_PER_MS;
    mir_sim_profile_apply(&cfg, faults, seed);
  }
  cfg.nodes = kNodes;
  cfg.build = build;
  cfg.submit = submit;
  cfg.user = &r;
  cfg.steps_max = 20000000;
  mir_sim *sim = nullptr;
  EXPECT_EQ(mir_sim_new(&cfg, &sim), MIR_OK) << mir_error_detail();
  if (sim == nullptr) return nullptr;
  for (size_t k = 0; k < kTxs; k++) {
    std::string v = "tx-" + std::to_string(k);
    for (size_t node = 0; node < kNodes; node++) {
      EXPECT_EQ(mir_sim_submit(sim, k * spacing_ms * MIR_SIM_NS_PER_MS, node, v.data(), v.size()),
                MIR_OK);
    }
  }
  return sim;
}

TEST(TrantorSystem, FourNodesOrderEveryTransactionAndAdvanceEpochs) {
  // Every submitted transaction is delivered once by every node in the same order (the
  // simulator's agreement and duplicate checks), epochs advance, checkpoints become stable and
  // old epochs are collected, and all applications end in the same state.
  for (uint64_t seed : {1, 2, 3}) {
    Scenario r;
    mir_sim *sim = start(r, seed);
    ASSERT_NE(sim, nullptr);
    ASSERT_EQ(mir_sim_run_until(sim, 8000 * MIR_SIM_NS_PER_MS), MIR_OK);
    EXPECT_FALSE(mir_sim_failed(sim)) << "seed " << seed << ": " << mir_sim_failure(sim);
    EXPECT_TRUE(mir_sim_all_delivered(sim)) << "seed " << seed;
    for (size_t i = 0; i < kNodes; i++) {
      EXPECT_EQ(r.apps[i].txs, kTxs) << "seed " << seed << " node " << i;
      EXPECT_GE(r.apps[i].last_epoch, 4u) << "seed " << seed << " node " << i;
      EXPECT_GE(r.apps[i].last_checkpoint_epoch, 3u) << "seed " << seed << " node " << i;
      EXPECT_EQ(r.apps[i].restores, 0u);
      EXPECT_EQ(r.apps[i].state, r.apps[0].state) << "seed " << seed << " node " << i;
    }
    mir_sim_free(sim);
  }
}

TEST(TrantorSystem, AgreementAndLivenessUnderLossDelayAndReordering) {
  // With messages dropped, duplicated, delayed and reordered for the first 3 s, nodes still agree
  // on every position, and once the network heals every transaction is delivered everywhere.
  for (uint64_t seed : {11, 12, 13, 14}) {
    Scenario r;
    mir_sim *sim = start(
        r, seed,
        MIR_SIM_FAULT_DELAY | MIR_SIM_FAULT_REORDER | MIR_SIM_FAULT_DROP | MIR_SIM_FAULT_DUPLICATE);
    ASSERT_NE(sim, nullptr);
    ASSERT_EQ(mir_sim_run_until(sim, 15000 * MIR_SIM_NS_PER_MS), MIR_OK);
    EXPECT_FALSE(mir_sim_failed(sim)) << "seed " << seed << ": " << mir_sim_failure(sim);
    EXPECT_TRUE(mir_sim_all_delivered(sim)) << "seed " << seed;
    for (size_t i = 0; i < kNodes; i++) {
      EXPECT_EQ(r.apps[i].txs, kTxs) << "seed " << seed << " node " << i;
    }
    mir_sim_free(sim);
  }
}

TEST(TrantorSystem, CutOffNodeCatchesUpByStateTransfer) {
  // Node 3 is partitioned away while the others run several epochs past its retained ones (the
  // load goes on for 3.5 s: an idle cluster starts no epochs); after the partition heals it
  // receives a stable checkpoint, restores it, and then delivers the rest of the log like everyone
  // else.
  Scenario r;
  mir_sim *sim = start(r, 7, 0, 3500 / kTxs);
  ASSERT_NE(sim, nullptr);
  ASSERT_EQ(mir_sim_partition(sim, uint64_t{1} << 3, false), MIR_OK);
  ASSERT_EQ(mir_sim_run_until(sim, 4000 * MIR_SIM_NS_PER_MS), MIR_OK);
  EXPECT_EQ(r.apps[3].txs, 0u);
  EXPECT_GE(r.apps[0].last_epoch, 5u);
  mir_sim_heal(sim);
  ASSERT_EQ(mir_sim_run_until(sim, 9000 * MIR_SIM_NS_PER_MS), MIR_OK);
  EXPECT_FALSE(mir_sim_failed(sim)) << mir_sim_failure(sim);
  EXPECT_GE(r.apps[3].restores, 1u);
  EXPECT_GE(r.apps[3].last_epoch, r.apps[0].last_epoch - 1);
  EXPECT_EQ(r.apps[3].txs, kTxs);
  mir_sim_free(sim);
}

TEST(TrantorSystem, InvalidConfigurationIsRefused) {
  // Missing fields, an own id outside the membership and invalid parameters are refused before
  // any module is added.
  Scenario r;
  mir_node *node = nullptr;
  mir_node_config nc;
  mir_node_config_default(&nc);
  nc.mode = MIR_NODE_MANUAL;
  ASSERT_EQ(mir_node_new("9", &nc, &node), MIR_OK);
  trantor_app app = {};
  trantor_system_config cfg = {};
  EXPECT_EQ(trantor_system_add_modules(node, &cfg), MIR_EINVAL);
  cfg.self_id = "9";
  cfg.membership = r.m;
  cfg.params = &r.params;
  cfg.hash = trantor_hash_reference;
  cfg.app = &app;
  EXPECT_EQ(trantor_system_add_modules(node, &cfg), MIR_EINVAL);  // not a member
  cfg.self_id = "0";
  r.params.num_buckets = 0;
  EXPECT_EQ(trantor_system_add_modules(node, &cfg), MIR_EINVAL);
  EXPECT_EQ(mir_node_module_count(node), 0u);
  mir_node_free(node);
}

}  // namespace
