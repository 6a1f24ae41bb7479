/*
 * Trantor scenarios (sc_trantor.h): 1, 4 or 7 replicas order the transactions of several clients
 * under the faults of each variant, and the checks are those of a state machine replication
 * system:
 *  - agreement: no two replicas apply different transactions at one position of the transaction
 *    log (the simulator checks correct replicas; a final check here extends it to the Byzantine
 *    ones, whose modules are honest);
 *  - no duplicates: no replica applies a position twice, nor one (client, tx_no) at two positions;
 *  - validity and liveness: every transaction submitted to a correct replica is applied by every
 *    correct replica that is up, within the liveness budget after the faults heal (a replica that
 *    catches up by state transfer has the transactions it skipped in its restored state, which
 *    must equal a correct replica's at that position: sc_trantor_node.c);
 *  - bounded memory: every SCT_SAMPLE_MS of virtual time the modules' statistics are read and
 *    fixed bounds enforced (live PBFT and checkpoint instances, epochs ahead of garbage
 *    collection, mempool and batch fetcher occupancy, events queued in the node), and pending
 *    timers are bounded by the simulator's timers_max, which stops the node that exceeds it;
 *  - the variant's own claim: the slow leader causes a view change, the replica cut off beyond
 *    the retained epochs comes back by state transfer, the long run passes 100 epochs.
 *
 * The workload: each transaction belongs to one of several clients (so that buckets, and with
 * them the segments that order them, spread over the leaders) and is submitted to every replica
 * within a few milliseconds, as a client sends a request to all replicas. Submission times are
 * spread evenly over the load period. With replicas holding more than a third of the weight
 * crashed nothing can be ordered any more: that run checks safety only. The planted bug puts
 * f + 1 Byzantine replicas against the protocol, which must break agreement (sc_trantor_byz.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "sc.h"
#include "sc_trantor.h"
#include "trantor_common.h"
#include "trantor_system.h"

#define MS MIR_SIM_NS_PER_MS

/* The fixed shape of each variant. */
typedef struct sct_shape {
  size_t nodes;
  bool weighted; /* weights 3, 2, 2, 1 instead of unit weights */
  size_t clients;
  size_t txs;       /* transactions, each submitted to every replica */
  uint64_t load_ms; /* submissions over [0, load_ms] */
  uint32_t segment_length;
  uint32_t retained_epochs;
  uint64_t batch_timeout_ms;
  uint64_t heal_ms;     /* planned faults end here (0: the profile's, or none) */
  uint64_t liveness_ms; /* budget after heal_ms */
} sct_shape;

static const sct_shape sct_shapes[SCT_V_COUNT] = {
    [SCT_V_1] = {1, false, 8, 400, 1000, 4, 2, 50, 0, 5000},
    [SCT_V_4] = {4, false, 8, 400, 1000, 4, 2, 50, 0, 10000},
    [SCT_V_7] = {7, false, 12, 280, 1000, 4, 2, 50, 0, 10000},
    [SCT_V_4_CRASH] = {4, false, 8, 400, 2000, 4, 2, 50, 2000, 15000},
    [SCT_V_7_CRASH] = {7, false, 12, 280, 2000, 4, 2, 50, 2000, 15000},
    [SCT_V_SLOW_LEADER] = {4, false, 8, 400, 2000, 4, 2, 50, 3000, 15000},
    [SCT_V_PARTITION] = {4, false, 8, 400, 2000, 4, 8, 50, 2000, 15000},
    [SCT_V_PARTITION_LONG] = {4, false, 8, 400, 6000, 4, 2, 50, 6000, 15000},
    [SCT_V_EQUIVOCATE] = {4, false, 8, 400, 2000, 4, 2, 50, 0, 15000},
    [SCT_V_CORRUPT] = {4, false, 8, 400, 2000, 4, 2, 50, 0, 15000},
    [SCT_V_COLLUDE] = {4, false, 8, 400, 1000, 4, 2, 50, 0, 3000},
    [SCT_V_WEIGHT_MINORITY] = {4, true, 8, 400, 2000, 4, 2, 50, 2000, 15000},
    [SCT_V_WEIGHT_MAJORITY] = {4, true, 8, 400, 2000, 4, 2, 50, 2000, 2000},
    [SCT_V_SWARM] = {4, false, 8, 400, 2000, 4, 2, 50, 0, 15000},
    [SCT_V_LONG] = {4, false, 8, 1000, 6000, 2, 2, 10, 0, 20000},
    [SCT_V_4_RESTART] = {4, false, 8, 400, 3000, 4, 2, 50, 3000, 20000},
    [SCT_V_7_RESTART] = {7, false, 12, 280, 3000, 4, 2, 50, 3000, 20000},
    [SCT_V_SWARM_RESTART] = {4, false, 8, 400, 3000, 4, 2, 50, 3000, 20000},
    [SCT_V_BUG_UNSYNCED] = {4, false, 8, 400, 3000, 4, 2, 50, 3000, 5000},
    [SCT_V_IDLE] = {4, false, 8, 400, 1000, 4, 2, 50, 0, 30000},
    [SCT_V_IDLE_TRICKLE] = {4, false, 8, 400, 1000, 4, 2, 50, 0, 30000},
    [SCT_V_SLOW_DISK] = {4, false, 8, 400, 2000, 4, 2, 50, 0, 20000},
};

static const uint64_t sct_weights_3221[4] = {3, 2, 2, 1};

/* The idle variant: the first half of the load over [0, load], the second from SCT_IDLE_RESUME_MS
 * on. Once every replica applied the first half, and SCT_IDLE_SETTLE_MS later (the begun epoch
 * is finished after a push period of idleness), the replicas must be quiet for SCT_IDLE_WINDOW_MS:
 * no batch ordered, no epoch started, no write to the store, and at most SCT_IDLE_MSGS_PER_S
 * messages per second over all replicas (what remains is checkpoint pushes, a few per second
 * per replica). The window must end before the second half comes. */
#define SCT_IDLE_RESUME_MS 10000
#define SCT_IDLE_SETTLE_MS 3000
#define SCT_IDLE_WINDOW_MS 2000
#define SCT_IDLE_MSGS_PER_S 100
/* The check of the check: SCT_IDLE_TRICKLE transactions of the second half, one every
 * SCT_IDLE_TRICKLE_MS from the end of the first half on, must make the idle check fail. */
#define SCT_IDLE_TRICKLE 24
#define SCT_IDLE_TRICKLE_MS 350

static bool sct_idle_variant(int variant) {
  return variant == SCT_V_IDLE || variant == SCT_V_IDLE_TRICKLE;
}

/* The slow-disk variant's sync times: each above a third of the 400 ms sn timeout. */
#define SCT_SLOW_SYNC_MIN_MS 100
#define SCT_SLOW_SYNC_MAX_MS 190

#define SCT_LONG_EPOCHS 100
#define SCT_LONG_HOLD_MS 8000 /* the long run goes on at least this long */
#define SCT_PARTITION_FROM_MS 300
#define SCT_PARTITION_MAX_MS 1000      /* within 8 retained epochs of about 250 ms */
#define SCT_PARTITION_LONG_MIN_MS 3000 /* beyond 2 retained epochs */
#define SCT_PARTITION_LONG_MAX_MS 5000

/* ---- configuration ---- */

static Trantor__Membership *sct_membership(size_t n, const uint64_t *weights) {
  Trantor__Membership *m = mir_xmalloc(sizeof *m);
  trantor__membership__init(m);
  m->n_members = n;
  m->members = mir_xmalloc(n * sizeof *m->members);
  for (size_t i = 0; i < n; i++) {
    Trantor__Member *mb = mir_xmalloc(sizeof *mb);
    trantor__member__init(mb);
    char id[24];
    snprintf(id, sizeof id, "%zu", i); /* ids below 10 sort like their indices */
    mb->id = mir_xstrdup(id);
    mb->weight = weights[i];
    m->members[i] = mb;
  }
  return m;
}

/* Trantor's parameters for a shape: short segments and timeouts, so that epochs, view changes
 * and checkpoints happen many times within a few simulated seconds. */
static void sct_params(const sct_shape *sh, trantor_params *p) {
  trantor_params_default(p);
  p->segment_length = sh->segment_length;
  p->num_buckets = 16;
  p->retained_epochs = sh->retained_epochs;
  p->batch_timeout_ms = sh->batch_timeout_ms;
  p->view_change_sn_timeout_ms = 400;
  p->view_change_segment_timeout_ms = 2000;
  p->done_resend_ms = 100;
  p->catch_up_delay_ms = 100;
  p->view_change_resend_ms = 200;
  p->checkpoint_resend_ms = 200;
}

/* The fault classes of the row, as the profile turns them into settings. A crash keeps the
 * store (Trantor's write-ahead log); a wipe loses it, and the replica rejoins. */
static void sct_apply_profile(const mir_sim_scenario *sc, sct_run *run, mir_sim_config *cfg) {
  run->classes = mir_sim_profile_apply(cfg, sc->faults, cfg->seed);
  switch (sc->variant) {
    case SCT_V_4_RESTART:
    case SCT_V_7_RESTART:
    case SCT_V_SWARM_RESTART:
      /* Disks whose syncs sometimes take as long as a whole round of votes: many writes are in
       * flight when a crash hits. */
      cfg->store.sync_max_ns = 10 * MS;
      break;
    case SCT_V_BUG_UNSYNCED:
      /* The planted bug: votes leave when written, not when durable, on a slow disk, so that
       * whole slots are decided on writes a crash then loses. */
      cfg->store.release_early = true;
      cfg->store.sync_min_ns = 5 * MS;
      cfg->store.sync_max_ns = 40 * MS;
      break;
    case SCT_V_SLOW_DISK:
      /* Every replica's syncs take longer than a third of the sn timeout, as on a machine whose
       * disk and cores are saturated: a slot needs three syncs in a row (the proposal, the
       * Prepare, the Commit), so the first commit of a segment comes after more than the sn
       * timeout, at every replica and for every leader alike. Nobody is faulty: a view change
       * here only costs throughput (under load it fed on itself: each one delayed the next
       * epoch, whose first commits then came even later). */
      cfg->store.sync_min_ns = SCT_SLOW_SYNC_MIN_MS * MS;
      cfg->store.sync_max_ns = SCT_SLOW_SYNC_MAX_MS * MS;
      break;
    default:
      break;
  }
}

mir_err sc_trantor_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state) {
  sct_run *run = mir_xcalloc(1, sizeof *run);
  *state = run;
  if (sc->variant < 0 || sc->variant >= SCT_V_COUNT) {
    return mir_error_set(MIR_EINVAL, "%s: unknown variant %d", sc->name, sc->variant);
  }
  trantor_system_register_types();
  const sct_shape *sh = &sct_shapes[sc->variant];
  run->variant = sc->variant;
  run->nodes = sh->nodes;
  for (size_t i = 0; i < sh->nodes; i++) run->weights[i] = sh->weighted ? sct_weights_3221[i] : 1;
  run->membership = sct_membership(sh->nodes, run->weights);
  sct_params(sh, &run->params);
  run->clients = sh->clients;
  run->txs = sh->txs;
  run->load_ns = sh->load_ms * MS;
  cfg->nodes = sh->nodes;
  sct_apply_profile(sc, run, cfg);
  if (sh->heal_ms != 0) cfg->heal_ns = sh->heal_ms * MS;
  cfg->checks.unique_values = true; /* one (client, tx_no) at two positions is a duplicate */
  cfg->checks.validity = sc->variant != SCT_V_WEIGHT_MAJORITY;
  cfg->checks.liveness_ns = sh->liveness_ms * MS;
  cfg->steps_max = 60000000;
  /* Pending timers per replica: a memory bound, enforced throughout (the simulator stops a replica
   * that exceeds it). Stale timeouts are never cancelled, so the count is the rate of armed
   * timeouts times their length: about 300 at most in the long run's short epochs. */
  cfg->timers_max = 512;
  cfg->build = sct_build;
  cfg->submit = sct_submit;
  cfg->user = run;
  return MIR_OK;
}

/* ---- faults ---- */

/* Crashes the nodes of mask for good, each at a random time in [from_ms, heal). */
static mir_err sct_crash_for_good(sct_run *run, mir_sim *sim, uint64_t mask, uint64_t from_ms) {
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  mir_err err = MIR_OK;
  for (size_t i = 0; i < run->nodes && err == MIR_OK; i++) {
    if (!((mask >> i) & 1)) continue;
    mir_sim_fault c = {.kind = MIR_SIM_CRASH, .node = i};
    c.at_ns = mir_sim_rng_range(r, from_ms * MS, mir_sim_heal_ns(sim) - 1);
    run->crash_ns[i] = c.at_ns;
    err = mir_sim_schedule_fault(sim, &c);
  }
  run->crashed = mask;
  return err;
}

/* Crash waves: several times before heal, a random set of replicas (any size, all of them about
 * one wave in three) crashes at one instant and each restarts with its store after its own
 * downtime; the next wave comes after the last restart of the previous one. */
#define SCT_WAVES_MIN 2
#define SCT_WAVES_MAX 6
#define SCT_DOWN_MAX_MS 400

static mir_err sct_crash_waves(sct_run *run, mir_sim *sim, uint64_t from_ms) {
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  uint64_t all = (1ull << run->nodes) - 1, heal = mir_sim_heal_ns(sim);
  uint64_t t = from_ms * MS;
  size_t waves = (size_t)mir_sim_rng_range(r, SCT_WAVES_MIN, SCT_WAVES_MAX);
  mir_err err = MIR_OK;
  for (size_t w = 0; w < waves && err == MIR_OK; w++) {
    uint64_t gap = (heal - t) / (waves - w + 1);
    if (gap < 2 * MS) break;
    t += mir_sim_rng_range(r, gap / 4, gap);
    uint64_t mask = mir_sim_rng_below(r, 3) == 0 ? all : mir_sim_rng_range(r, 1, all);
    uint64_t last = t;
    for (size_t i = 0; i < run->nodes && err == MIR_OK; i++) {
      if (!((mask >> i) & 1)) continue;
      mir_sim_fault c = {.kind = MIR_SIM_CRASH, .node = i, .at_ns = t};
      mir_sim_fault up = {.kind = MIR_SIM_RESTART, .node = i};
      up.at_ns = t + mir_sim_rng_range(r, 1 * MS, SCT_DOWN_MAX_MS * MS);
      if (up.at_ns > last) last = up.at_ns;
      err = mir_sim_schedule_fault(sim, &c);
      if (err == MIR_OK) err = mir_sim_schedule_fault(sim, &up);
    }
    run->waves++;
    t = last;
  }
  return err;
}

/* A random set of `count` distinct nodes. */
static uint64_t sct_pick(mir_sim_rng *r, size_t nodes, size_t count) {
  uint64_t mask = 0;
  for (size_t k = 0; k < count;) {
    uint64_t bit = 1ull << mir_sim_rng_below(r, nodes);
    if (!(mask & bit)) mask |= bit, k++;
  }
  return mask;
}

/* A random set of replicas holding more than a third of the weight, at least one left up. */
static uint64_t sct_pick_heavy(sct_run *run, mir_sim_rng *r) {
  trantor_quorum q;
  trantor_quorum_of(run->membership, &q);
  for (;;) {
    uint64_t mask = mir_sim_rng_range(r, 1, (1ull << run->nodes) - 2), w = 0;
    for (size_t i = 0; i < run->nodes; i++) w += (mask >> i) & 1 ? run->weights[i] : 0;
    if (3 * w > q.total) return mask;
  }
}

/* A random replica holding at most f of the weight (replica 0 holds 3 > f = 2). */
static uint64_t sct_pick_light(sct_run *run, mir_sim_rng *r) {
  trantor_quorum q;
  trantor_quorum_of(run->membership, &q);
  for (;;) {
    size_t i = (size_t)mir_sim_rng_below(r, run->nodes);
    if (run->weights[i] <= q.f) return 1ull << i;
  }
}

/* One replica cut off from the others for a while, then healed: either short enough that the
 * others still retain every epoch it missed, so it catches up through PBFT, or long enough that
 * they collected them, so that only a state transfer can bring it back. */
static mir_err sct_partition(sct_run *run, mir_sim *sim, bool beyond) {
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  run->special = (size_t)mir_sim_rng_below(r, run->nodes);
  mir_sim_fault p = {.kind = MIR_SIM_PARTITION, .side = 1ull << run->special};
  p.at_ns = mir_sim_rng_range(r, SCT_PARTITION_FROM_MS * MS, 2 * SCT_PARTITION_FROM_MS * MS);
  mir_sim_fault h = {.kind = MIR_SIM_HEAL};
  uint64_t min_ms = beyond ? SCT_PARTITION_LONG_MIN_MS : SCT_PARTITION_FROM_MS;
  uint64_t max_ms = beyond ? SCT_PARTITION_LONG_MAX_MS : SCT_PARTITION_MAX_MS;
  h.at_ns = p.at_ns + mir_sim_rng_range(r, min_ms * MS, max_ms * MS);
  mir_err err = mir_sim_schedule_fault(sim, &p);
  return err == MIR_OK ? mir_sim_schedule_fault(sim, &h) : err;
}

static mir_err sct_plan(sct_run *run, mir_sim *sim) {
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  size_t f = (run->nodes - 1) / 3;
  switch (run->variant) {
    case SCT_V_4_CRASH:
    case SCT_V_7_CRASH:
      return sct_crash_for_good(run, sim, sct_pick(r, run->nodes, f), 200);
    case SCT_V_WEIGHT_MINORITY:
      return sct_crash_for_good(run, sim, sct_pick_light(run, r), 200);
    case SCT_V_WEIGHT_MAJORITY:
      return sct_crash_for_good(run, sim, sct_pick_heavy(run, r), 300);
    case SCT_V_SLOW_LEADER:
    case SCT_V_EQUIVOCATE:
    case SCT_V_COLLUDE:
    case SCT_V_CORRUPT:
      /* Replica 0 leads segment 0 in every epoch; replica 3 leads the last one. */
      run->special = run->variant == SCT_V_CORRUPT ? run->nodes - 1 : 0;
      sct_byz_install(run, sim);
      return MIR_OK;
    case SCT_V_PARTITION:
    case SCT_V_PARTITION_LONG:
      return sct_partition(run, sim, run->variant == SCT_V_PARTITION_LONG);
    case SCT_V_4_RESTART:
    case SCT_V_7_RESTART:
    case SCT_V_BUG_UNSYNCED:
      return sct_crash_waves(run, sim, 100);
    case SCT_V_SWARM_RESTART: {
      mir_err err = mir_sim_plan_faults(sim, run->classes, f);
      return err == MIR_OK ? sct_crash_waves(run, sim, 100) : err;
    }
    case SCT_V_LONG: {
      /* Keeps the run going until the epochs are done: a run stops early only after its last
       * scheduled fault, and healing nothing is harmless. */
      mir_sim_fault hold = {.kind = MIR_SIM_HEAL, .at_ns = SCT_LONG_HOLD_MS * MS};
      run->epochs_min = SCT_LONG_EPOCHS;
      return mir_sim_schedule_fault(sim, &hold);
    }
    default:
      return run->nodes > 1 ? mir_sim_plan_faults(sim, run->classes, f) : MIR_OK;
  }
}

/* ---- workload ---- */

/* Every transaction, in client order, at evenly spread times, to every replica a few
 * milliseconds apart (the idle variants: in two bursts, the second to f + 1 replicas); not to a
 * replica that crashed for good already (a submission waits for a restart that never comes, which
 * would hold the run until its time budget). */
static mir_err sct_workload(sct_run *run, mir_sim *sim) {
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  uint64_t next[SCT_CLIENTS_MAX] = {0};
  mir_err err = MIR_OK;
  for (size_t k = 0; k < run->txs && err == MIR_OK; k++) {
    size_t c = (size_t)mir_sim_rng_below(r, run->clients);
    char value[48];
    size_t len = sct_tx_value(c, next[c]++, value, sizeof value);
    uint64_t at = run->load_ns * k / run->txs;
    uint64_t to = (1ull << run->nodes) - 1; /* the replicas it is submitted to */
    if (sct_idle_variant(run->variant)) {   /* two bursts */
      size_t half = run->txs / 2;
      at = k < half ? run->load_ns * k / half
                    : SCT_IDLE_RESUME_MS * MS + run->load_ns * (k - half) / (run->txs - half);
      if (run->variant == SCT_V_IDLE_TRICKLE && k >= half && k < half + SCT_IDLE_TRICKLE) {
        at = run->load_ns + (k - half + 1) * SCT_IDLE_TRICKLE_MS * MS;
      }
      /* The second half wakes the idle cluster as a client that submits to f + 1 replicas does
       * (the SDK's submit_replicas): segment leaders without it stay idle until needed. */
      if (k >= half) to = sct_pick(r, run->nodes, (run->nodes - 1) / 3 + 1);
    }
    for (size_t i = 0; i < run->nodes && err == MIR_OK; i++) {
      if (!((to >> i) & 1)) continue;
      uint64_t t = at + mir_sim_rng_range(r, 0, 3 * MS);
      if (((run->crashed >> i) & 1) && t >= run->crash_ns[i]) continue;
      err = mir_sim_submit(sim, t, i, value, len);
    }
  }
  run->rep.txs = run->txs;
  return err;
}

/* ---- checks ---- */

/* Every replica's transaction log, Byzantine ones included, agrees position by position with
 * the first replica that saw the position. */
static void sct_check_logs(sct_run *run, mir_sim *sim) {
  for (uint64_t p = 0; p < SCT_TXS_MAX; p++) {
    uint64_t ref = 0;
    size_t ref_node = 0;
    for (size_t i = 0; i < run->nodes; i++) {
      uint64_t v = run->apps[i].fp != NULL ? run->apps[i].fp[p] : 0;
      if (v == 0) continue;
      if (ref == 0) {
        ref = v, ref_node = i;
      } else if (v != ref) {
        mir_sim_fail(sim,
                     "agreement: replicas %zu and %zu applied different transactions at %" PRIu64,
                     ref_node, i, p);
        return;
      }
    }
  }
}

/* Completes the report with what the applications and the replicas' statistics say now. */
static void sct_finish_report(sct_run *run, mir_sim *sim) {
  sc_trantor_report *r = &run->rep;
  r->delivered_min = UINT64_MAX;
  r->epoch_min = UINT64_MAX;
  for (size_t i = 0; i < run->nodes; i++) {
    const sct_app *a = &run->apps[i];
    if (a->epoch > r->epoch_max) r->epoch_max = a->epoch;
    if (mir_sim_node_up(sim, i) && mir_sim_node_correct(sim, i)) {
      if (a->txs < r->delivered_min) r->delivered_min = a->txs;
      if (a->epoch < r->epoch_min) r->epoch_min = a->epoch;
    }
  }
  sct_count(run, sim, r);
  if (r->delivered_min == UINT64_MAX) r->delivered_min = 0;
  if (r->epoch_min == UINT64_MAX) r->epoch_min = 0;
}

/* A counter of the simulator's own (mir_sim_metrics). */
static uint64_t sct_sim_read(const mir_sim *sim, const char *name) {
  int64_t v = mir_metrics_read(mir_sim_metrics(sim), name, NULL);
  return v > 0 ? (uint64_t)v : 0;
}

/* The idle variant: marks what the replicas had done when the idle window begins, and fails the
 * run if they ordered, started an epoch or wrote anything within it, or exchanged more than a
 * trickle of messages. */
static void sct_check_idle(sct_run *run, mir_sim *sim) {
  uint64_t now = mir_sim_now(sim);
  if (run->idle_checked) return;
  if (now >= SCT_IDLE_RESUME_MS * MS) {
    run->idle_checked = true;
    mir_sim_fail(sim, "idle: the first half of the load was not ordered and settled by %.1f s",
                 SCT_IDLE_RESUME_MS / 1000.0);
    return;
  }
  if (run->idle_settled_ns == 0) {
    for (size_t i = 0; i < run->nodes; i++) {
      if (run->apps[i].txs < run->txs / 2) return;
    }
    run->idle_settled_ns = now;
  }
  if (!run->idle_marked && now >= run->idle_settled_ns + SCT_IDLE_SETTLE_MS * MS) {
    run->idle_marked = true;
    run->idle_from_ns = now;
    run->idle_sent = sct_sim_read(sim, "mir_sim_messages_sent_total");
    run->idle_writes = sct_sim_read(sim, "mir_sim_store_writes_total");
    for (size_t i = 0; i < run->nodes; i++) {
      run->idle_batches[i] = run->apps[i].batches;
      run->idle_epoch[i] = run->apps[i].epoch;
    }
    return;
  }
  if (!run->idle_marked || now < run->idle_from_ns + SCT_IDLE_WINDOW_MS * MS) return;
  run->idle_checked = true;
  uint64_t sent = sct_sim_read(sim, "mir_sim_messages_sent_total");
  uint64_t writes = sct_sim_read(sim, "mir_sim_store_writes_total");
  double secs = (double)(now - run->idle_from_ns) / 1e9;
  for (size_t i = 0; i < run->nodes; i++) {
    if (run->apps[i].batches != run->idle_batches[i] || run->apps[i].epoch != run->idle_epoch[i]) {
      mir_sim_fail(sim,
                   "idle: replica %zu ordered %" PRIu64 " batches and went from epoch %" PRIu64
                   " to %" PRIu64 " in %.1f s without transactions",
                   i, run->apps[i].batches - run->idle_batches[i], run->idle_epoch[i],
                   run->apps[i].epoch, secs);
      return;
    }
  }
  if (writes != run->idle_writes) {
    mir_sim_fail(sim, "idle: %" PRIu64 " store writes in %.1f s without transactions",
                 writes - run->idle_writes, secs);
  } else if ((double)(sent - run->idle_sent) > SCT_IDLE_MSGS_PER_S * secs) {
    mir_sim_fail(sim, "idle: %" PRIu64 " messages in %.1f s without transactions (at most %d/s)",
                 sent - run->idle_sent, secs, SCT_IDLE_MSGS_PER_S);
  }
}

/* The variant's own claims, at the end of a run that passed every other check. */
static void sct_check_claims(sct_run *run, mir_sim *sim) {
  const sc_trantor_report *r = &run->rep;
  if (run->variant == SCT_V_SLOW_LEADER && r->view_changes == 0) {
    mir_sim_fail(sim, "slow leader: no view change happened");
  }
  if (run->variant == SCT_V_SLOW_DISK && r->view_changes > 0) {
    mir_sim_fail(sim,
                 "slow disk: %" PRIu64
                 " view changes, and no replica is faulty (a uniformly slow "
                 "cluster suspected its correct leaders)",
                 r->view_changes);
  }
  if (run->variant == SCT_V_PARTITION_LONG && run->apps[run->special].restores == 0) {
    mir_sim_fail(sim, "partition: replica %zu caught up without a state transfer", run->special);
  }
  if (sct_idle_variant(run->variant) && !run->idle_checked) {
    mir_sim_fail(sim, "idle: the run ended before the idle window did");
  }
  if (r->epoch_min < run->epochs_min) {
    mir_sim_fail(sim, "long run: a correct replica reached epoch %" PRIu64 " only, not %" PRIu64,
                 r->epoch_min, run->epochs_min);
  }
}

static void sct_check(void *user, mir_sim *sim, bool final) {
  sct_run *run = user;
  uint64_t now = mir_sim_now(sim);
  if (!final && run->sampled_once && now - run->last_sample_ns < SCT_SAMPLE_MS * MS) return;
  run->sampled_once = true;
  run->last_sample_ns = now;
  sct_sample(run, sim);
  if (sct_idle_variant(run->variant) && !mir_sim_failed(sim)) sct_check_idle(run, sim);
  if (!final || mir_sim_failed(sim)) return;
  sct_check_logs(run, sim);
  sct_finish_report(run, sim);
  if (!mir_sim_failed(sim)) sct_check_claims(run, sim);
}

mir_err sc_trantor_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state) {
  (void)sc;
  sct_run *run = state;
  run->sim = sim;
  mir_err err = sct_plan(run, sim);
  if (err == MIR_OK) err = sct_workload(run, sim);
  if (err == MIR_OK) err = mir_sim_add_checker(sim, sct_check, run);
  return err;
}

void sc_trantor_cleanup(void *state) {
  sct_run *run = state;
  if (run == NULL) return;
  sct_byz_free(run);
  sct_nodes_free(run);
  if (run->membership != NULL) protobuf_c_message_free_unpacked(&run->membership->base, NULL);
  free(run);
}

void sc_trantor_report_of(const void *state, sc_trantor_report *out) {
  *out = ((const sct_run *)state)->rep;
}
