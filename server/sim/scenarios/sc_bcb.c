/*
 * BCB scenarios: the sample's Byzantine consistent broadcast (server/samples, Reiter 1994) among
 * four nodes, leader node 0, one broadcast per run, the simulator's crypto module in place of the
 * sample's test signer.
 *
 * BCB has no retransmission and keeps nothing on disk, so under lossy faults (drop, partition,
 * crash) only safety is checked, and a crash is modelled as a wiped restart. Variants: a
 * corrupting member (generic filter), and an equivocating leader. The leader is then not the
 * sample's module but one written here to attack: it sends Start(A) to one side of a random
 * split and Start(B) to the other, signs both itself, gathers the echoes of each side and sends a
 * Final for every value that reaches a quorum of echoes to every node. With the sample's quorum
 * no two such certificates can exist, so agreement must hold.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/registry.h"
#include "samples.h"
#include "sc.h"

#define BCB_NODES MIR_SAMPLE_BCB_NODES
#define BCB_LEADER 0

typedef struct bcb_run {
  unsigned classes;
  mir_sim_byz_generic generic;
} bcb_run;

static const char *const bcb_ids[BCB_NODES] = {"0", "1", "2", "3"};

/* ---- the equivocating leader ---- */

typedef struct evil {
  mir_sim *sim;
  bool started;
  uint64_t side;                      /* members that get value B */
  ProtobufCBinaryData value[2];       /* A, B (owned) */
  ProtobufCBinaryData sig[BCB_NODES]; /* echo signature of each member (owned) */
  bool have[BCB_NODES], sent[2];
} evil;

static void evil_destroy(void *state) {
  evil *e = state;
  for (int v = 0; v < 2; v++) free(e->value[v].data);
  for (int i = 0; i < BCB_NODES; i++) free(e->sig[i].data);
  free(e);
}

static void evil_send(const char *to_id, const ProtobufCMessage *msg, mir_event_list *out) {
  mir_event_list_push(
      out, mir_event_send_message(MIR_SAMPLE_NET, MIR_SAMPLE_BCB, &to_id, 1, MIR_SAMPLE_BCB, msg));
}

/* Splits the members, signs both values itself and sends Start(A) or Start(B) to each. */
static mir_err evil_start(evil *e, const ProtobufCBinaryData *data, mir_event_list *out) {
  if (e->started) return MIR_OK;
  e->started = true;
  e->side = mir_sim_rng_range(mir_sim_scenario_rng(e->sim), 1, 6) << 1;
  e->value[0].data = mir_xmemdup(data->data, data->len);
  e->value[0].len = data->len;
  e->value[1].data = mir_xmalloc(data->len + 1);
  if (data->len) memcpy(e->value[1].data, data->data, data->len);
  e->value[1].data[data->len] = '!';
  e->value[1].len = data->len + 1;
  for (int i = 1; i < BCB_NODES; i++) {
    Samples__Bcb__StartMessage m = SAMPLES__BCB__START_MESSAGE__INIT;
    m.data = e->value[(e->side >> i) & 1];
    evil_send(bcb_ids[i], &m.base, out);
  }
  return MIR_OK;
}

/* Sends Final(value v) to everyone once a quorum of echoes for v (own signature included). */
static mir_err evil_try_final(evil *e, int v, mir_event_list *out) {
  const char *signers[BCB_NODES];
  ProtobufCBinaryData sigs[BCB_NODES];
  uint8_t own[MIR_SIM_SIG_LEN];
  ProtobufCBinaryData parts[3] = {
      {strlen(MIR_SAMPLE_BCB_INSTANCE), (uint8_t *)MIR_SAMPLE_BCB_INSTANCE},
      {4, (uint8_t *)"ECHO"},
      e->value[v]};
  mir_err err = mir_sim_sign(e->sim, BCB_LEADER, parts, 3, own);
  if (err != MIR_OK) return err;
  size_t n = 0;
  signers[n] = bcb_ids[BCB_LEADER];
  sigs[n++] = (ProtobufCBinaryData){MIR_SIM_SIG_LEN, own};
  for (int i = 1; i < BCB_NODES; i++) {
    if (e->have[i] && (int)((e->side >> i) & 1) == v) {
      signers[n] = bcb_ids[i];
      sigs[n++] = e->sig[i];
    }
  }
  if (e->sent[v] || n < mir_bcb_quorum(BCB_NODES)) return MIR_OK;
  e->sent[v] = true;
  Samples__Bcb__FinalMessage m = SAMPLES__BCB__FINAL_MESSAGE__INIT;
  m.data = e->value[v];
  m.n_signers = m.n_signatures = n;
  m.signers = (char **)signers;
  m.signatures = sigs;
  for (int i = 0; i < BCB_NODES; i++) evil_send(bcb_ids[i], &m.base, out);
  return MIR_OK;
}

static mir_err evil_on_message(evil *e, const Mir__MessageReceived *mr, mir_event_list *out) {
  int from = mir_sim_node_index(e->sim, mr->from);
  ProtobufCMessage *m = NULL;
  if (from <= 0 || mr->msg == NULL || mir_message_unpack(mr->msg, 0, &m) != MIR_OK) return MIR_OK;
  mir_err err = MIR_OK;
  if (m->descriptor == &samples__bcb__echo_message__descriptor && e->started && !e->have[from]) {
    const Samples__Bcb__EchoMessage *echo = (const Samples__Bcb__EchoMessage *)m;
    e->have[from] = true;
    e->sig[from].data = mir_xmemdup(echo->signature.data, echo->signature.len);
    e->sig[from].len = echo->signature.len;
    for (int v = 0; v < 2 && err == MIR_OK; v++) err = evil_try_final(e, v, out);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return err;
}

static mir_err evil_apply(void *state, mir_event_list *in, mir_event_list *out) {
  evil *e = state;
  mir_err err = MIR_OK;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &samples__bcb__broadcast_request__descriptor)) {
      err = evil_start(e, &((const Samples__Bcb__BroadcastRequest *)ev->payload)->data, out);
    } else if (mir_event_is(ev, &mir__message_received__descriptor)) {
      err = evil_on_message(e, (const Mir__MessageReceived *)ev->payload, out);
    }
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

static const mir_module_ops evil_ops = {
    .name = "bcb-equivocating-leader",
    .kind = MIR_MODULE_PASSIVE,
    .apply = evil_apply,
    .destroy = evil_destroy,
    .peer_messages = true,
};

/* ---- wiring ---- */

static bool bcb_extract(void *user, const mir_event *ev, uint64_t *position, const uint8_t **value,
                        size_t *len) {
  (void)user;
  if (!mir_event_is(ev, &samples__bcb__deliver__descriptor)) return false;
  const Samples__Bcb__Deliver *d = (const Samples__Bcb__Deliver *)ev->payload;
  *position = 0; /* one instance: one position */
  *value = d->data.data;
  *len = d->data.len;
  return true;
}

static mir_err bcb_add_protocol(mir_sim *sim, size_t node, mir_node *mn, int variant) {
  if (variant == SC_EQUIVOCATE && node == BCB_LEADER) {
    evil *e = mir_xcalloc(1, sizeof *e);
    e->sim = sim;
    return mir_node_add_module(mn, MIR_SAMPLE_BCB, &evil_ops, e);
  }
  mir_bcb_config bc = {
      .module_id = MIR_SAMPLE_BCB,
      .instance_id = MIR_SAMPLE_BCB_INSTANCE,
      .nodes = bcb_ids,
      .n_nodes = BCB_NODES,
      .leader = bcb_ids[BCB_LEADER],
      .self = bcb_ids[node],
      .transport_id = MIR_SAMPLE_NET,
      .crypto_id = MIR_SAMPLE_CRYPTO,
      .consumer_id = MIR_SAMPLE_APP,
  };
  mir_dsl *dsl = NULL;
  mir_err err = mir_bcb_new(&bc, &dsl);
  if (err != MIR_OK) return err;
  return mir_node_add_module(mn, MIR_SAMPLE_BCB, &mir_dsl_ops, dsl);
}

typedef struct bcb_user {
  bcb_run run;
  int variant;
} bcb_user;

static mir_err bcb_build(void *user, mir_sim *sim, size_t node, mir_node *mn, bool restart) {
  (void)restart;
  bcb_user *u = user;
  mir_err err = mir_sim_add_transport(sim, node, mn, MIR_SAMPLE_NET);
  if (err == MIR_OK) err = mir_sim_add_crypto(sim, node, mn, MIR_SAMPLE_CRYPTO);
  if (err == MIR_OK) {
    err = mir_sim_add_collector(sim, node, mn, MIR_SAMPLE_APP, bcb_extract, NULL);
  }
  if (err == MIR_OK) err = bcb_add_protocol(sim, node, mn, u->variant);
  return err;
}

static mir_event *bcb_submit_fn(void *user, mir_sim *sim, size_t node, const uint8_t *value,
                                size_t len) {
  (void)user;
  (void)sim;
  (void)node;
  return mir_bcb_broadcast_request(MIR_SAMPLE_BCB, NULL, value, len);
}

mir_err sc_bcb_configure(const mir_sim_scenario *sc, mir_sim_config *cfg, void **state) {
  bcb_user *u = mir_xcalloc(1, sizeof *u);
  *state = u;
  u->variant = sc->variant;
  mir_err err = mir_samples_register_types();
  if (err != MIR_OK) return err;
  cfg->nodes = BCB_NODES;
  u->run.classes = mir_sim_profile_apply(cfg, sc->faults, cfg->seed);
  /* BCB keeps nothing on disk: for it every restart forgets everything, which is a wipe. */
  if (u->run.classes & MIR_SIM_FAULT_CRASH) {
    u->run.classes = (u->run.classes & ~MIR_SIM_FAULT_CRASH) | MIR_SIM_FAULT_WIPE;
  }
  /* Without retransmission a lost message is lost for good: only safety can be checked. */
  cfg->checks.validity = (u->run.classes & SC_LOSSY) == 0;
  cfg->checks.liveness_ns = 2000 * MIR_SIM_NS_PER_MS;
  cfg->build = bcb_build;
  cfg->submit = bcb_submit_fn;
  cfg->user = u;
  return MIR_OK;
}

mir_err sc_bcb_setup(const mir_sim_scenario *sc, mir_sim *sim, void *state) {
  bcb_user *u = state;
  if (sc->variant == SC_CORRUPT) {
    sc_generic_byz(&u->run.generic);
    mir_sim_set_byzantine(sim, BCB_NODES - 1, mir_sim_byz_generic_filter, &u->run.generic);
  } else if (sc->variant == SC_EQUIVOCATE) {
    mir_sim_set_byzantine(sim, BCB_LEADER, NULL, NULL);
  }
  mir_err err = mir_sim_plan_faults(sim, u->run.classes, (BCB_NODES - 1) / 3);
  if (err != MIR_OK) return err;
  char value[64];
  int len = snprintf(value, sizeof value, "bcb-%llu", (unsigned long long)mir_sim_seed(sim));
  uint64_t at = mir_sim_rng_range(mir_sim_scenario_rng(sim), 0, 50 * MIR_SIM_NS_PER_MS);
  return mir_sim_submit(sim, at, BCB_LEADER, value, (size_t)len);
}

void sc_bcb_cleanup(void *state) {
  bcb_user *u = state;
  if (u == NULL) return;
  mir_sim_byz_generic_clear(&u->run.generic);
  free(u);
}
