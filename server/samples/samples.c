/*
 * What the samples share: type registration and the per-node wiring that the sample programs use
 * and mir-cat --replay reproduces (mir_sample_add_modules).
 *
 * The wiring here must stay in step with pingpong_main.c and bcb_main.c: a replayed log only
 * matches its recording if the protocol modules are configured exactly as they were.
 */
#include <string.h>

#include "mir/alloc.h"
#include "mir/registry.h"
#include "samples.h"

mir_err mir_samples_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &samples__pingpong__ping_time__descriptor,    &samples__pingpong__ping__descriptor,
      &samples__pingpong__pong__descriptor,         &samples__pingpong__report__descriptor,
      &samples__bcb__broadcast_request__descriptor, &samples__bcb__deliver__descriptor,
      &samples__bcb__start_message__descriptor,     &samples__bcb__echo_message__descriptor,
      &samples__bcb__final_message__descriptor,
  };
  return mir_registry_add_all(types, sizeof(types) / sizeof(types[0]));
}

/* Adds a dsl module, which the node then owns (also on failure). */
static mir_err samples_add_dsl(mir_node *node, mir_dsl *dsl) {
  return mir_node_add_module(node, mir_dsl_module_id(dsl), &mir_dsl_ops, dsl);
}

static mir_err samples_add_pingpong(mir_node *node, const char *node_id) {
  const char *peer;
  if (strcmp(node_id, "0") == 0) {
    peer = "1";
  } else if (strcmp(node_id, "1") == 0) {
    peer = "0";
  } else {
    return mir_error_set(MIR_EINVAL, "pingpong has nodes 0 and 1, not '%.64s'", node_id);
  }
  mir_dsl *pp;
  mir_err err =
      mir_pingpong_new(MIR_SAMPLE_PINGPONG, node_id, peer, MIR_SAMPLE_NET, MIR_SAMPLE_TIMER,
                       MIR_PINGPONG_PERIOD_MS_DEFAULT, MIR_SAMPLE_APP, &pp);
  if (err != MIR_OK) return err;
  return samples_add_dsl(node, pp);
}

static const char *const samples_bcb_nodes[MIR_SAMPLE_BCB_NODES] = {"0", "1", "2", "3"};

static mir_err samples_bcb_member(const char *node_id) {
  for (size_t i = 0; i < MIR_SAMPLE_BCB_NODES; i++) {
    if (strcmp(samples_bcb_nodes[i], node_id) == 0) return MIR_OK;
  }
  return mir_error_set(MIR_EINVAL, "bcb has nodes 0 to 3, not '%.64s'", node_id);
}

mir_err mir_sample_add_bcb(mir_node *node, const char *node_id, mir_dsl **bcb_out) {
  if (node_id == NULL) return mir_error_set(MIR_EINVAL, "bcb: missing node id");
  mir_err err = mir_samples_register_types();
  if (err == MIR_OK) err = samples_bcb_member(node_id);
  if (err != MIR_OK) return err;
  mir_bcb_config cfg = {
      .module_id = MIR_SAMPLE_BCB,
      .instance_id = MIR_SAMPLE_BCB_INSTANCE,
      .nodes = samples_bcb_nodes,
      .n_nodes = MIR_SAMPLE_BCB_NODES,
      .leader = MIR_SAMPLE_BCB_LEADER,
      .self = node_id,
      .transport_id = MIR_SAMPLE_NET,
      .crypto_id = MIR_SAMPLE_CRYPTO,
      .consumer_id = MIR_SAMPLE_APP,
  };
  mir_dsl *bcb;
  err = mir_bcb_new(&cfg, &bcb);
  if (err == MIR_OK) err = samples_add_dsl(node, bcb);
  if (err == MIR_OK && bcb_out != NULL) *bcb_out = bcb;
  return err;
}

static mir_err samples_add_bcb(mir_node *node, const char *node_id) {
  mir_err err = samples_bcb_member(node_id);
  mir_dsl *signer;
  if (err == MIR_OK) err = mir_test_signer_new(MIR_SAMPLE_CRYPTO, node_id, &signer);
  if (err == MIR_OK) err = samples_add_dsl(node, signer);
  if (err != MIR_OK) return err;
  return mir_sample_add_bcb(node, node_id, NULL);
}

mir_err mir_sample_add_modules(mir_node *node, const char *sample, const char *node_id) {
  if (sample == NULL || node_id == NULL) return mir_error_set(MIR_EINVAL, "sample: missing name");
  mir_err err = mir_samples_register_types();
  if (err != MIR_OK) return err;
  if (strcmp(sample, "pingpong") == 0) return samples_add_pingpong(node, node_id);
  if (strcmp(sample, "bcb") == 0) return samples_add_bcb(node, node_id);
  return mir_error_set(MIR_ENOTFOUND, "unknown sample '%.64s' (pingpong, bcb)", sample);
}
