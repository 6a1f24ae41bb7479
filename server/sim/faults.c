/*
 * Faults: partitions, crashes and restarts (now or scheduled), the random fault plan, and the
 * fault profiles that turn fault classes into network and clock settings.
 *
 * A crash frees the node: its queued events, its in-memory module state and its timers are gone
 * (timer actions of the old incarnation are discarded when they come due). Messages it already
 * sent stay on the wire; messages that arrive while it is down are lost. Its store stays with
 * the simulation, but the writes its store module had not synced yet are lost, or, when the
 * crash tears (torn_ppm), a prefix of them reached the store unacknowledged (store.c). A restart
 * rebuilds the node through the scenario's build callback with restart = true, and re-hands the
 * client submissions the node has not delivered (a client resubmits after a reconnect). A wiped
 * restart clears the store first: the node has forgotten what it promised, which in a Byzantine
 * fault model makes it faulty, so it counts against the faulty budget and drops out of the
 * correctness checks.
 *
 * The plan and the profiles draw from their own streams, so a seed fixes the faults whatever
 * the protocol does, and every random fault lies before heal_ns.
 */
#include <stdio.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

#define MS MIR_SIM_NS_PER_MS

mir_err mir_sim_crash(mir_sim *sim, size_t node) {
  if (node >= sim->cfg.nodes) return mir_error_set(MIR_EINVAL, "sim: no node %zu", node);
  miri_sim_node *sn = &sim->nodes[node];
  if (sn->mn == NULL) return MIR_OK;
  mir_metrics_detach(mir_node_metrics(sn->mn), true); /* the totals outlive the incarnation */
  mir_node_free(sn->mn);
  sn->mn = NULL;
  memset(sn->pending, 0, sizeof sn->pending);
  mir_counter_inc(sim->c.crashes);
  sim->dl_dirty = true;
  char note[96];
  miri_sim_store_crash(sim, node, note, sizeof note);
  miri_sim_trace(sim, "crash n%zu%s", node, note);
  return MIR_OK;
}

mir_err mir_sim_restart(mir_sim *sim, size_t node, bool wipe) {
  if (node >= sim->cfg.nodes || !sim->started) {
    return mir_error_set(MIR_EINVAL, "sim: cannot restart node %zu now", node);
  }
  miri_sim_node *sn = &sim->nodes[node];
  if (sn->mn != NULL) mir_sim_crash(sim, node);
  size_t cleared = 0;
  if (wipe) {
    cleared = mir_sim_store_count(sn->store);
    mir_sim_store_clear(sn->store);
    miri_sim_store_drop(sim, node); /* none left after the crash; a wipe leaves nothing at all */
    sn->wiped = true;
    miri_sim_forget_deliveries(sim, node);
  }
  if (wipe) {
    miri_sim_trace(sim, "restart n%zu wiped: store cleared (%zu key%s)", node, cleared,
                   cleared == 1 ? "" : "s");
  } else {
    miri_sim_trace(sim, "restart n%zu", node);
  }
  mir_err err = miri_sim_node_boot(sim, node, true);
  if (err != MIR_OK) {
    mir_sim_fail(sim, "node %zu: rebuild failed: %s: %s", node, mir_strerror(err),
                 mir_error_detail());
    return err;
  }
  mir_counter_inc(sim->c.restarts);
  sim->dl_dirty = true;
  miri_sim_resubmit(sim, node);
  return MIR_OK;
}

static uint64_t faults_all_mask(const mir_sim *sim) {
  return sim->cfg.nodes == 64 ? ~0ull : (1ull << sim->cfg.nodes) - 1;
}

mir_err mir_sim_partition(mir_sim *sim, uint64_t side, bool one_way) {
  uint64_t all = faults_all_mask(sim);
  if (side == 0 || (side & ~all) != 0 || side == all) {
    return mir_error_set(MIR_EINVAL, "sim: a partition side must be a non-empty proper subset");
  }
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    for (size_t j = 0; j < sim->cfg.nodes; j++) {
      bool a_i = (side >> i) & 1, a_j = (side >> j) & 1;
      if (a_i && !a_j) sim->nodes[i].blocked_to[j] = true;
      if (!one_way && !a_i && a_j) sim->nodes[i].blocked_to[j] = true;
    }
  }
  mir_counter_inc(sim->c.partitions);
  miri_sim_trace(sim, "partition side=%llx%s", (unsigned long long)side,
                 one_way ? " one-way" : " two-way");
  return MIR_OK;
}

void mir_sim_heal(mir_sim *sim) {
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    memset(sim->nodes[i].blocked_to, 0, sizeof sim->nodes[i].blocked_to);
  }
  miri_sim_trace(sim, "heal");
}

void miri_sim_fault_apply(mir_sim *sim, const mir_sim_fault *f) {
  switch (f->kind) {
    case MIR_SIM_PARTITION:
      mir_sim_partition(sim, f->side, f->one_way);
      break;
    case MIR_SIM_HEAL:
      mir_sim_heal(sim);
      break;
    case MIR_SIM_CRASH:
      mir_sim_crash(sim, f->node);
      break;
    case MIR_SIM_RESTART:
      mir_sim_restart(sim, f->node, f->wipe);
      break;
  }
}

mir_err mir_sim_schedule_fault(mir_sim *sim, const mir_sim_fault *fault) {
  uint64_t all = faults_all_mask(sim);
  bool bad = fault->at_ns < sim->now_ns || fault->kind > MIR_SIM_RESTART;
  if (fault->kind == MIR_SIM_PARTITION) {
    bad = bad || fault->side == 0 || (fault->side & ~all) != 0 || fault->side == all;
  }
  if (fault->kind == MIR_SIM_CRASH || fault->kind == MIR_SIM_RESTART) {
    bad = bad || fault->node >= sim->cfg.nodes;
  }
  if (bad) return mir_error_set(MIR_EINVAL, "sim: bad fault");
  miri_sim_action *a = miri_sim_action_new(MIRI_ACT_FAULT, fault->at_ns);
  a->fault = *fault;
  if (fault->at_ns > sim->last_fault_ns) sim->last_fault_ns = fault->at_ns;
  mir_err err = miri_sim_heap_push(&sim->heap, a);
  return err;
}

/* ---- the random plan ---- */

/* Schedules 1..3 partitions in consecutive windows of [0, heal). */
static mir_err plan_partitions(mir_sim *sim) {
  mir_sim_rng *r = &sim->plan;
  uint64_t heal = sim->cfg.heal_ns, all = faults_all_mask(sim);
  uint64_t k = mir_sim_rng_range(r, 1, 3), window = heal / k;
  mir_err err = MIR_OK;
  for (uint64_t j = 0; j < k && err == MIR_OK; j++) {
    mir_sim_fault p = {.kind = MIR_SIM_PARTITION};
    p.at_ns = j * window + mir_sim_rng_range(r, 0, window / 2);
    p.side = mir_sim_rng_range(r, 1, all - 1);
    p.one_way = mir_sim_rng_chance(r, MIR_SIM_PPM / 2);
    mir_sim_fault h = {.kind = MIR_SIM_HEAL};
    h.at_ns = p.at_ns + mir_sim_rng_range(r, window / 8, window / 2);
    err = mir_sim_schedule_fault(sim, &p);
    if (err == MIR_OK) err = mir_sim_schedule_fault(sim, &h);
  }
  return err;
}

/* Schedules up to 3 crash-restart windows on distinct correct nodes, within [0, heal). Wiped
 * restarts only while the faulty budget lasts. */
static mir_err plan_crashes(mir_sim *sim, unsigned mask, size_t budget) {
  mir_sim_rng *r = &sim->plan;
  uint64_t heal = sim->cfg.heal_ns;
  size_t faulty = 0;
  uint64_t used = 0;
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    if (!mir_sim_node_correct(sim, i)) faulty++, used |= 1ull << i;
  }
  uint64_t k = mir_sim_rng_range(r, 1, 3);
  mir_err err = MIR_OK;
  for (uint64_t j = 0; j < k && err == MIR_OK; j++) {
    size_t node = (size_t)mir_sim_rng_below(r, sim->cfg.nodes);
    bool wipe = (mask & MIR_SIM_FAULT_WIPE) && faulty < budget &&
                (!(mask & MIR_SIM_FAULT_CRASH) || mir_sim_rng_chance(r, MIR_SIM_PPM / 2));
    if ((used >> node) & 1 || (!wipe && !(mask & MIR_SIM_FAULT_CRASH))) continue;
    used |= 1ull << node;
    if (wipe) faulty++;
    mir_sim_fault c = {.kind = MIR_SIM_CRASH, .node = node};
    c.at_ns = mir_sim_rng_range(r, 0, heal * 3 / 4);
    mir_sim_fault s = {.kind = MIR_SIM_RESTART, .node = node, .wipe = wipe};
    s.at_ns = mir_sim_rng_range(r, c.at_ns + 1, heal - 1);
    err = mir_sim_schedule_fault(sim, &c);
    if (err == MIR_OK) err = mir_sim_schedule_fault(sim, &s);
  }
  return err;
}

mir_err mir_sim_plan_faults(mir_sim *sim, unsigned mask, size_t faulty_budget) {
  unsigned planned = mask & (MIR_SIM_FAULT_PARTITION | MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE);
  if (planned == 0) return MIR_OK;
  if (sim->cfg.heal_ns < 4 || sim->cfg.nodes < 2) {
    return mir_error_set(MIR_EINVAL, "sim: planned faults need heal_ns > 0 and 2 nodes or more");
  }
  mir_err err = MIR_OK;
  if (mask & MIR_SIM_FAULT_PARTITION) err = plan_partitions(sim);
  if (err == MIR_OK && (mask & (MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE))) {
    err = plan_crashes(sim, mask, faulty_budget);
  }
  return err;
}

/* ---- profiles ---- */

/* The first eight classes, whose swarm picks and rates come first in the profile stream. */
#define PROFILE_FIRST 0xffu

/* With MIR_SIM_FAULT_SWARM: each of the first eight classes of classes with probability 1/2, at
 * least one of them if there is any (TORN is drawn after the rates: profile_torn). */
static unsigned profile_swarm(mir_sim_rng *r, unsigned classes) {
  unsigned pool = classes & PROFILE_FIRST, sel = 0;
  if (pool == 0) return 0;
  for (unsigned bit = 1; bit <= PROFILE_FIRST; bit <<= 1) {
    if ((pool & bit) && mir_sim_rng_chance(r, MIR_SIM_PPM / 2)) sel |= bit;
  }
  while (sel == 0) {
    unsigned bit = 1u << mir_sim_rng_below(r, 8);
    if (pool & bit) sel = bit;
  }
  return sel;
}

/* TORN draws last from the profile stream, so that adding it to a seed's classes changes none
 * of the picks and rates of the others (scenarios that existed before it keep their runs). In
 * swarm mode it joins with probability 1/2, or always if it is the only class offered. */
static unsigned profile_torn(mir_sim_config *cfg, mir_sim_rng *r, unsigned offered, bool swarm,
                             unsigned sel) {
  if (!(offered & MIR_SIM_FAULT_TORN)) return sel;
  if (swarm && sel != 0 && !mir_sim_rng_chance(r, MIR_SIM_PPM / 2)) return sel;
  cfg->store.torn_ppm = (uint32_t)mir_sim_rng_range(r, MIR_SIM_PPM / 4, MIR_SIM_PPM * 3 / 4);
  return sel | MIR_SIM_FAULT_TORN;
}

unsigned mir_sim_profile_apply(mir_sim_config *cfg, unsigned classes, uint64_t seed) {
  mir_sim_rng r;
  mir_sim_rng_init(&r, mir_sim_seed_derive(seed, MIRI_SIM_STREAM_PROFILE));
  unsigned offered = classes;
  bool swarm = (classes & MIR_SIM_FAULT_SWARM) != 0;
  classes = swarm ? profile_swarm(&r, classes) : classes & ~(unsigned)MIR_SIM_FAULT_TORN;
  mir_sim_net *n = &cfg->net;
  if (classes & MIR_SIM_FAULT_DELAY) {
    n->delay_min_ns = mir_sim_rng_range(&r, 0, 2 * MS);
    n->delay_max_ns = mir_sim_rng_range(&r, 5 * MS, 50 * MS);
    n->tail_ppm = (uint32_t)mir_sim_rng_range(&r, 10000, 100000);
    n->tail_max_ns = mir_sim_rng_range(&r, 50 * MS, 500 * MS);
  }
  if (classes & MIR_SIM_FAULT_REORDER) {
    n->reorder = true;
    if (n->delay_max_ns < 20 * MS) n->delay_max_ns = 20 * MS;
  }
  if (classes & MIR_SIM_FAULT_DROP) n->drop_ppm = (uint32_t)mir_sim_rng_range(&r, 20000, 300000);
  if (classes & MIR_SIM_FAULT_DUPLICATE) {
    n->duplicate_ppm = (uint32_t)mir_sim_rng_range(&r, 20000, 300000);
  }
  if (classes & MIR_SIM_FAULT_CLOCK) {
    cfg->clock_min_ppm = (uint32_t)mir_sim_rng_range(&r, MIR_SIM_PPM / 2, MIR_SIM_PPM);
    cfg->clock_max_ppm = (uint32_t)mir_sim_rng_range(&r, MIR_SIM_PPM, 2 * MIR_SIM_PPM);
    cfg->timer_jitter_ppm = (uint32_t)mir_sim_rng_range(&r, 0, MIR_SIM_PPM / 5);
  }
  unsigned healing = MIR_SIM_FAULT_DROP | MIR_SIM_FAULT_DUPLICATE | MIR_SIM_FAULT_PARTITION |
                     MIR_SIM_FAULT_CRASH | MIR_SIM_FAULT_WIPE;
  if (classes & healing) cfg->heal_ns = mir_sim_rng_range(&r, 1000 * MS, 3000 * MS);
  return profile_torn(cfg, &r, offered, swarm, classes);
}

void mir_sim_fault_classes_format(unsigned mask, char *buf, size_t cap) {
  static const char *const names[] = {"delay", "reorder", "drop",  "duplicate", "partition",
                                      "crash", "wipe",    "clock", "swarm",     "torn"};
  size_t off = 0;
  buf[0] = '\0';
  for (unsigned b = 0; b < sizeof names / sizeof names[0]; b++) {
    if (!(mask & (1u << b))) continue;
    int w = snprintf(buf + off, cap - off, "%s%s", off ? "+" : "", names[b]);
    if (w < 0 || (size_t)w >= cap - off) return;
    off += (size_t)w;
  }
  if (off == 0) snprintf(buf, cap, "none");
}
