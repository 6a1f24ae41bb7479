/*
 * Pingpong scenarios: the sample's two nodes ping each other every 100 ms (virtual) and answer
 * every Ping with a Pong.
 *
 * Pingpong delivers nothing in order, so its checks are its own: no phantom Pong (a Pong always
 * answers a Ping the node slot sent: its number is below the most Pings any incarnation of the
 * slot sent), and progress (every correct node that is up at the end, with a correct peer,
 * received a Pong after the faults healed and after its last restart). The Byzantine variant
 * makes node 1 a corrupting, replaying peer: node 0 must survive whatever arrives.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "samples.h"
#include "sc.h"

#define PP_NODES 2
#define PP_PERIOD_MS 100

typedef struct pp_run pp_run;

typedef struct pp_app {
  pp_run *run;
  size_t node;
} pp_app;

struct pp_run {
  unsigned classes;
  mir_sim_byz_generic generic;
  mir_sim *sim;
  pp_app app[PP_NODES];
  mir_dsl *module[PP_NODES];    /* the node's pingpong module while it is up */
  uint64_t boot_ns[PP_NODES];   /* last (re)start */
  uint64_t pings_max[PP_NODES]; /* most Pings any incarnation of the slot sent */
  uint64_t last_pong_ns[PP_NODES];
  bool pong_seen[PP_NODES];
};

/* Keeps the most Pings the slot ever sent. Called after every batch, so the count of an
 * incarnation is known before a crash takes its module away. */
static void pp_count_pings(pp_run *run, size_t i) {
  if (!mir_sim_node_up(run->sim, i) || run->module[i] == NULL) return;
  int64_t sent =
      mir_metrics_read(mir_dsl_metrics(run->module[i]), "mir_pingpong_pings_sent_total", NULL);
  if (sent > 0 && (uint64_t)sent > run->pings_max[i]) run->pings_max[i] = (uint64_t)sent;
}

/* The collector's extract: pingpong delivers nothing, but every Pong report is checked here. */
static bool pp_extract(void *user, const mir_event *ev, uint64_t *position, const uint8_t **value,
                       size_t *len) {
  (void)position;
  (void)value;
  (void)len;
  pp_app *a = user;
  pp_run *run = a->run;
  if (!mir_event_is(ev, &samples__pingpong__report__descriptor)) return false;
  const Samples__Pingpong__Report *r = (const Samples__Pingpong__Report *)ev->payload;
  /* A Byzantine node's own view is not checked (its filter mangled the Pings it sent). */
  if (r->kind != SAMPLES__PINGPONG__REPORT__KIND__PONG ||
      !mir_sim_node_correct(run->sim, a->node)) {
    return false;
  }
  pp_count_pings(run, a->node);
  /* A Byzantine peer may send any number: only a correct peer's Pongs must match Pings. */
  if (r->seq_nr >= run->pings_max[a->node] && mir_sim_node_correct(run->sim, 1 - a->node)) {
    mir_sim_fail(run->sim, "pingpong: node %zu got Pong %llu but never sent that Ping", a->node,
                 (unsigned long long)r->seq_nr);
  }
  run->last_pong_ns[a->node] = mir_sim_now(run->sim);
  run->pong_seen[a->node] = true;
  return false;
}

static mir_err pp_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  (void)restart;
  pp_run *run = user;
  run->sim = sim;
  run->boot_ns[node] = mir_sim_now(sim);
  run->app[node] = (pp_app){run, node};
  mir_err err = mir_sim_add_transport(sim, node, mn, MIR_SAMPLE_NET);
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, MIR_SAMPLE_TIMER);
  if (err == MIR_OK) {
    err = mir_sim_add_collector(sim, node, mn, MIR_SAMPLE_APP, pp_extract, &run->app[node]);
  }
  if (err != MIR_OK) return err;
  mir_dsl *dsl = NULL;
  err = mir_pingpong_new(MIR_SAMPLE_PINGPONG, mir_sim_node_id(sim, node),
                         mir_sim_node_id(sim, 1 - node), MIR_SAMPLE_NET, MIR_SAMPLE_TIMER,
                         PP_PERIOD_MS, MIR_SAMPLE_APP, &dsl);
  if (err != MIR_OK) return err;
  run->module[node] = dsl;
  return mir_node_add_module(mn, MIR_SAMPLE_PINGPONG, &mir_dsl_ops, dsl);
}

/* After every batch: count Pings. At the end, progress: a correct node with a correct peer
 * heard a Pong after the faults healed and after its last restart. */
static void pp_check(void *user, mir_sim *sim, bool final) {
  pp_run *run = user;
  if (!final) {
    for (size_t i = 0; i < PP_NODES; i++) pp_count_pings(run, i);
    return;
  }
  for (size_t i = 0; i < PP_NODES; i++) {
    if (!mir_sim_node_up(sim, i) || !mir_sim_node_correct(sim, i) ||
        !mir_sim_node_correct(sim, 1 - i)) {
      continue;
    }
    uint64_t since =
        run->boot_ns[i] > mir_sim_heal_ns(sim) ? run->boot_ns[i] : mir_sim_heal_ns(sim);
    if (!run->pong_seen[i] || run->last_pong_ns[i] <= since) {
      mir_sim_fail(sim, "pingpong: node %zu heard no Pong after %llu ns (faults healed, node up)",
                   i, (unsigned long long)since);
      return;
    }
  }
}

mir_err sc_pingpong_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state) {
  pp_run *run = mir_xcalloc(1, sizeof *run);
  *state = run;
  mir_err err = mir_samples_register_types();
  if (err != MIR_OK) return err;
  cfg->nodes = PP_NODES;
  run->classes = mir_sim_profile_apply(cfg, sc->faults, cfg->seed);
  cfg->checks.validity = false; /* no submissions: progress is pp_check's */
  cfg->checks.liveness_ns = 2000 * MIR_SIM_NS_PER_MS;
  cfg->build = pp_build;
  cfg->user = run;
  return MIR_OK;
}

mir_err sc_pingpong_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state) {
  pp_run *run = state;
  if (sc->variant == SC_CORRUPT) {
    sc_generic_byz(&run->generic);
    mir_sim_set_byzantine(sim, 1, mir_sim_byz_generic_filter, &run->generic);
  }
  mir_err err = mir_sim_add_checker(sim, pp_check, run);
  if (err == MIR_OK) err = mir_sim_plan_faults(sim, run->classes, 1);
  return err;
}

void sc_pingpong_cleanup(void *state) {
  pp_run *run = state;
  if (run == NULL) return;
  mir_sim_byz_generic_clear(&run->generic);
  free(run);
}
