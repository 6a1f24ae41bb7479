/*
 * Echo scenarios: four nodes run the echo protocol (echo.h) with the leader at node 0, a client
 * submits eight values to the leader at random times, and the checkers demand agreement, no
 * duplicates, and delivery of every value at every correct node once faults heal.
 *
 * Variants: a corrupting non-leader node (generic filter); an equivocating leader, whose filter
 * rewrites the value of every Propose and Echo it sends to one side of a random split of the
 * other nodes (per position); and the planted bug, the same equivocating leader against a
 * quorum of 2f instead of 2f + 1, which the agreement checker must catch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"
#include "mir/alloc.h"
#include "sc.h"

#define ECHO_NODES 4
#define ECHO_LEADER 0
#define ECHO_VALUES 8
#define ECHO_TICK_MS 30

typedef struct echo_run {
  unsigned classes; /* fault classes in effect */
  size_t quorum;
  mir_sim_byz_generic generic;
  uint64_t split[MIR_ECHO_POSITIONS_MAX + 1]; /* equivocation: nodes that get the other value */
} echo_run;

static bool echo_extract(void *user, const mir_event *ev, uint64_t *position, const uint8_t **value,
                         size_t *len) {
  (void)user;
  if (!mir_event_is(ev, &mirsim__echo__deliver__descriptor)) return false;
  const Mirsim__Echo__Deliver *d = (const Mirsim__Echo__Deliver *)ev->payload;
  *position = d->position;
  *value = d->value.data;
  *len = d->value.len;
  return true;
}

static mir_err echo_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  (void)restart;
  echo_run *run = user;
  mir_err err = mir_sim_add_transport(sim, node, mn, "net");
  if (err == MIR_OK) err = mir_sim_add_timer(sim, node, mn, "timer");
  if (err == MIR_OK) err = mir_sim_add_collector(sim, node, mn, "app", echo_extract, NULL);
  if (err != MIR_OK) return err;
  mir_echo_config ec = {
      .module_id = "echo",
      .transport_id = "net",
      .timer_id = "timer",
      .app_id = "app",
      .nodes = mir_sim_node_count(sim),
      .self = node,
      .leader = ECHO_LEADER,
      .quorum = run->quorum,
      .tick_ms = ECHO_TICK_MS,
      .store = mir_sim_node_store(sim, node),
  };
  mir_dsl *dsl = NULL;
  err = mir_echo_new(&ec, &dsl);
  if (err != MIR_OK) return err;
  return mir_node_add_module(mn, "echo", &mir_dsl_ops, dsl);
}

static mir_event *echo_submit_fn(void *user, mir_sim *sim, size_t node, const uint8_t *value,
                                 size_t len) {
  (void)user;
  (void)sim;
  (void)node;
  return mir_echo_submit("echo", value, len);
}

mir_err sc_echo_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state) {
  echo_run *run = mir_xcalloc(1, sizeof *run);
  *state = run;
  mir_err err = mir_echo_register_types();
  if (err != MIR_OK) return err;
  cfg->nodes = ECHO_NODES;
  run->classes = mir_sim_profile_apply(cfg, sc->faults, cfg->seed);
  run->quorum = mir_echo_quorum(ECHO_NODES) - (sc->variant == SC_BUG ? 1 : 0);
  /* A wiped leader has forgotten what it proposed and may order a value again: faulty, but not
   * unsafe. One value at two positions is a bug only while the leader keeps its store. */
  cfg->checks.unique_values = (run->classes & MIR_SIM_FAULT_WIPE) == 0;
  /* With a Byzantine leader nothing is required: the run goes to the budget, kept short. */
  bool byz_leader = sc->variant == SC_EQUIVOCATE || sc->variant == SC_BUG;
  cfg->checks.liveness_ns = (byz_leader ? 1000 : 3000) * MIR_SIM_NS_PER_MS;
  cfg->build = echo_build;
  cfg->submit = echo_submit_fn;
  cfg->user = run;
  return MIR_OK;
}

/* The equivocating leader: Propose and Echo messages to the nodes of this position's split
 * carry a different value; everything else passes unchanged. */
static void echo_equivocate(void *user, mir_sim_byz *byz, size_t from, size_t to,
                            const Mir__PackedMessage *msg) {
  (void)from;
  echo_run *run = user;
  ProtobufCMessage *m = NULL;
  bool ours = msg->type != NULL && (strcmp(msg->type, "mirsim.echo.Propose") == 0 ||
                                    strcmp(msg->type, "mirsim.echo.Echo") == 0);
  if (!ours || mir_message_unpack(msg, 0, &m) != MIR_OK) {
    mir_sim_byz_send(byz, to, mir_sim_packed_clone(msg), 0);
    return;
  }
  /* Propose and Echo have the same layout: position = 1, value = 2. */
  Mirsim__Echo__Echo *e = (Mirsim__Echo__Echo *)m;
  if (e->position <= MIR_ECHO_POSITIONS_MAX && e->position >= 1) {
    uint64_t *split = &run->split[e->position];
    if (*split == 0) *split = mir_sim_rng_range(mir_sim_byz_rng(byz), 1, 6) << 1;
    if ((*split >> to) & 1) {
      e->value.data = mir_xrealloc(e->value.data, e->value.len + 1);
      e->value.data[e->value.len++] = '~';
    }
  }
  mir_sim_byz_send(byz, to, mir_message_pack(msg->dest_module, m), 0);
  protobuf_c_message_free_unpacked(m, NULL);
}

mir_err sc_echo_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state) {
  echo_run *run = state;
  if (sc->variant == SC_CORRUPT) {
    sc_generic_byz(&run->generic);
    mir_sim_set_byzantine(sim, ECHO_NODES - 1, mir_sim_byz_generic_filter, &run->generic);
  } else if (sc->variant == SC_EQUIVOCATE || sc->variant == SC_BUG) {
    mir_sim_set_byzantine(sim, ECHO_LEADER, echo_equivocate, run);
  }
  mir_err err = mir_sim_plan_faults(sim, run->classes, (ECHO_NODES - 1) / 3);
  mir_sim_rng *r = mir_sim_scenario_rng(sim);
  uint64_t until = 500 * MIR_SIM_NS_PER_MS;
  for (int k = 0; k < ECHO_VALUES && err == MIR_OK; k++) {
    char value[64];
    int len = snprintf(value, sizeof value, "v%d-%llu", k, (unsigned long long)mir_sim_seed(sim));
    err = mir_sim_submit(sim, mir_sim_rng_range(r, 0, until), ECHO_LEADER, value, (size_t)len);
  }
  return err;
}

void sc_echo_cleanup(void *state) {
  echo_run *run = state;
  if (run == NULL) return;
  mir_sim_byz_generic_clear(&run->generic);
  free(run);
}
