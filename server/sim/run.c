/*
 * The run loop: one step at a time, a budget on steps and on virtual time, and the stop
 * condition of a scenario run.
 *
 * A step is either one batch applied by one module of one node, or one due action. Jumping the
 * clock to the next action is not a step: the step budget counts work, so a protocol that keeps
 * producing events without ever letting time pass (a livelock) exhausts it and fails the run.
 */
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "sim_internal.h"

/* Collects the runnable (node, module) pairs into sim->cands; returns their count. Pairs are
 * listed in node then module order, so the choice below depends only on the generator. */
static size_t run_candidates(mir_sim *sim) {
  if (sim->cands == NULL) {
    sim->cands = mir_xmalloc(sizeof *sim->cands * MIR_SIM_NODES_MAX * MIR_NODE_MODULES_MAX);
  }
  size_t n = 0;
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    miri_sim_node *sn = &sim->nodes[i];
    if (sn->mn == NULL) continue;
    size_t mods = mir_node_module_count(sn->mn);
    for (size_t m = 0; m < mods; m++) {
      if (mir_node_module_queued(sn->mn, m) + sn->pending[m] > 0) {
        sim->cands[n++] = (uint32_t)(i << 16 | m);
      }
    }
  }
  return n;
}

/* Applies one batch of module m of node i. A module error stops the node, which is a bug in a
 * protocol (a peer must never be able to cause one), so it fails the run. */
static void run_step_module(mir_sim *sim, size_t i, size_t m) {
  miri_sim_node *sn = &sim->nodes[i];
  size_t applied = 0;
  mir_err err = mir_node_step_module(sn->mn, m, &applied);
  memset(sn->pending, 0, sizeof sn->pending);
  if (err != MIR_OK) {
    mir_sim_fail(sim, "node %zu stopped: %s", i, mir_node_last_error(sn->mn));
    return;
  }
  miri_sim_check_step(sim);
}

static void run_action(mir_sim *sim, miri_sim_action *a) {
  switch (a->kind) {
    case MIRI_ACT_DELIVER:
      miri_sim_net_deliver(sim, a);
      break;
    case MIRI_ACT_TIMER:
      miri_sim_timer_fire(sim, a);
      break;
    case MIRI_ACT_FAULT:
      miri_sim_fault_apply(sim, &a->fault);
      miri_sim_action_free(a);
      break;
    case MIRI_ACT_SUBMIT:
      miri_sim_submit_fire(sim, a->submission);
      miri_sim_action_free(a);
      break;
    case MIRI_ACT_SYNC:
      miri_sim_store_sync_done(sim, a);
      break;
  }
}

/* Starts the nodes on first use. Returns false if that failed (the run is then over). */
static bool run_ensure_started(mir_sim *sim) {
  if (sim->started) return !sim->over;
  sim->started = true;
  for (size_t i = 0; i < sim->cfg.nodes; i++) {
    mir_err err = miri_sim_node_boot(sim, i, false);
    if (err != MIR_OK) {
      mir_sim_fail(sim, "node %zu: build failed: %s: %s", i, mir_strerror(err), mir_error_detail());
      return false;
    }
  }
  return true;
}

/* One step, never moving time past until_ns. Returns false when nothing more can happen before
 * until_ns (or the run is over). */
static bool run_step_limited(mir_sim *sim, uint64_t until_ns) {
  if (!run_ensure_started(sim)) return false;
  if (sim->steps >= sim->cfg.steps_max) {
    mir_sim_fail(sim, "step budget of %llu steps exhausted (livelock?)",
                 (unsigned long long)sim->cfg.steps_max);
    return false;
  }
  size_t n = run_candidates(sim);
  const miri_sim_action *top = miri_sim_heap_top(&sim->heap);
  bool due = top != NULL && top->at_ns <= sim->now_ns;
  if (n == 0 && !due) {
    if (top == NULL || top->at_ns > until_ns) {
      if (until_ns != UINT64_MAX && until_ns > sim->now_ns) sim->now_ns = until_ns;
      return false;
    }
    sim->now_ns = top->at_ns; /* quiescent: jump to the next action */
    return true;
  }
  sim->steps++;
  mir_counter_inc(sim->c.steps);
  uint64_t r = mir_sim_rng_below(&sim->sched, n + (due ? 1 : 0));
  if (r == n) {
    run_action(sim, miri_sim_heap_pop(&sim->heap));
  } else {
    run_step_module(sim, sim->cands[r] >> 16, sim->cands[r] & 0xffff);
  }
  return !sim->over;
}

mir_err mir_sim_step(mir_sim *sim, bool *progress) {
  *progress = run_step_limited(sim, UINT64_MAX);
  return MIR_OK;
}

mir_err mir_sim_run_until(mir_sim *sim, uint64_t until_ns) {
  if (until_ns < sim->now_ns) return mir_error_set(MIR_EINVAL, "sim: run_until in the past");
  while (run_step_limited(sim, until_ns)) {
  }
  return MIR_OK;
}

/* True when a scenario run can stop early: the plan is over and everything required was
 * delivered everywhere. Runs without required submissions go on until the time budget. */
static bool run_done(mir_sim *sim) {
  if (!sim->cfg.checks.validity || sim->submits_due > 0 || sim->now_ns < sim->last_fault_ns) {
    return false;
  }
  bool any_required = false;
  for (size_t k = 0; k < sim->n_subs && !any_required; k++) {
    any_required = mir_sim_node_correct(sim, sim->subs[k].node);
  }
  return any_required && mir_sim_all_delivered(sim);
}

mir_err mir_sim_run(mir_sim *sim) {
  uint64_t budget = sim->cfg.heal_ns + sim->cfg.checks.liveness_ns;
  if (budget < sim->cfg.heal_ns) budget = UINT64_MAX;
  while (!sim->over && !run_done(sim)) {
    if (!run_step_limited(sim, budget)) break;
  }
  if (!sim->failed) miri_sim_check_final(sim);
  sim->over = true;
  miri_sim_trace(sim, "end steps=%llu batches=%lld hash=%016llx%s", (unsigned long long)sim->steps,
                 (long long)mir_metrics_read(sim->metrics, "mir_sim_batches_total", NULL),
                 (unsigned long long)sim->trace_hash, sim->failed ? " FAILED" : "");
  return MIR_OK;
}
