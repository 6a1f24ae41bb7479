/*
 * Synchronous crypto for the simulator: the fake signer, the choice between it and real
 * Ed25519, and the hasher.
 *
 * The fake signature of node s over parts is SHA-256("mir-sim-sig", seed, s, parts...) followed
 * by SHA-256 of that first half: 64 bytes, like Ed25519's, computed and checked inline. It binds
 * the signer and the data, so protocols see forged or corrupted signatures fail exactly as with
 * real keys, at a fraction of the cost. Nobody but the simulator (and a Byzantine filter asking
 * mir_sim_sign for its own node) can make one, which models unforgeability in a test.
 *
 * Both variants are passive and answer every request in order in apply's output, the result
 * going to request.origin.module with the request's origin. A request without a valid origin is
 * the requesting module's bug and stops the node, as in the real module (mir/crypto.h).
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.h"
#include "mir/crypto.pb-c.h"
#include "mir/hasher.h"
#include "sim_internal.h"

#define FAKE_LABEL "mir-sim-sig"

typedef struct fake_crypto {
  mir_sim *sim;
  size_t node;
} fake_crypto;

/* Computes the fake signature of signer (an id) over parts into sig (MIR_SIM_SIG_LEN bytes). */
static void fake_sign(uint64_t seed, const char *signer, const ProtobufCBinaryData *parts, size_t n,
                      uint8_t *sig) {
  uint8_t seed_be[8];
  for (int i = 0; i < 8; i++) seed_be[i] = (uint8_t)(seed >> (56 - 8 * i));
  mir_hash_ctx c;
  mir_hash_init(&c);
  mir_hash_update_part(&c, FAKE_LABEL, strlen(FAKE_LABEL));
  mir_hash_update_part(&c, seed_be, sizeof seed_be);
  mir_hash_update_part(&c, signer, strlen(signer));
  for (size_t i = 0; i < n; i++) mir_hash_update_part(&c, parts[i].data, parts[i].len);
  mir_hash_final(&c, sig);
  mir_hash_init(&c);
  mir_hash_update_part(&c, sig, MIR_HASH_LEN);
  mir_hash_final(&c, sig + MIR_HASH_LEN);
}

static bool fake_verify(const mir_sim *sim, const char *signer, const ProtobufCBinaryData *parts,
                        size_t n, const ProtobufCBinaryData *sig) {
  if (signer == NULL || mir_sim_node_index(sim, signer) < 0 || sig->len != MIR_SIM_SIG_LEN) {
    return false;
  }
  uint8_t want[MIR_SIM_SIG_LEN];
  fake_sign(sim->cfg.seed, signer, parts, n, want);
  return memcmp(want, sig->data, MIR_SIM_SIG_LEN) == 0;
}

static mir_err fake_origin_check(const Mir__Origin *o, const mir_event *ev) {
  if (o == NULL || o->module == NULL || !mir_module_id_valid(o->module)) {
    return mir_error_set(MIR_EPROTO, "sim crypto: %s from '%s' has no valid origin",
                         mir_event_type_name(ev), ev->src);
  }
  return MIR_OK;
}

static mir_event *fake_on_sign(fake_crypto *fc, const mir_event *ev) {
  Mir__SignRequest *req = (Mir__SignRequest *)ev->payload;
  Mir__SignResult *res = mir_xmalloc(sizeof *res);
  mir__sign_result__init(res);
  res->signature.len = MIR_SIM_SIG_LEN;
  res->signature.data = mir_xmalloc(MIR_SIM_SIG_LEN);
  fake_sign(fc->sim->cfg.seed, fc->sim->nodes[fc->node].id, req->data, req->n_data,
            res->signature.data);
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

static mir_event *fake_on_verify(fake_crypto *fc, const mir_event *ev) {
  Mir__VerifyRequest *req = (Mir__VerifyRequest *)ev->payload;
  Mir__VerifyResult *res = mir_xmalloc(sizeof *res);
  mir__verify_result__init(res);
  res->ok = fake_verify(fc->sim, req->node_id, req->data, req->n_data, &req->signature);
  res->node_id = mir_xstrdup(req->node_id ? req->node_id : "");
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

static mir_event *fake_on_verify_many(fake_crypto *fc, const mir_event *ev) {
  Mir__VerifyManyRequest *req = (Mir__VerifyManyRequest *)ev->payload;
  Mir__VerifyManyResult *res = mir_xmalloc(sizeof *res);
  mir__verify_many_result__init(res);
  res->n_ok = req->n_items;
  res->ok = req->n_items ? mir_xcalloc(req->n_items, sizeof *res->ok) : NULL;
  res->all_ok = req->n_items <= MIR_CRYPTO_ITEMS_MAX;
  for (size_t i = 0; i < req->n_items; i++) {
    const Mir__SignedData *it = req->items[i];
    bool ok = req->n_items <= MIR_CRYPTO_ITEMS_MAX &&
              fake_verify(fc->sim, it->node_id, it->data, it->n_data, &it->signature);
    res->ok[i] = ok;
    if (!ok) res->all_ok = false;
  }
  res->origin = req->origin;
  req->origin = NULL;
  return mir_event_new(res->origin->module, ev->dest, &res->base);
}

static mir_err fake_apply(void *state, mir_event_list *in, mir_event_list *out) {
  fake_crypto *fc = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    mir_event *res = NULL;
    mir_err err = MIR_OK;
    if (mir_event_is(ev, &mir__init__descriptor)) continue;
    if (mir_event_is(ev, &mir__sign_request__descriptor)) {
      err = fake_origin_check(((Mir__SignRequest *)ev->payload)->origin, ev);
      if (err == MIR_OK) res = fake_on_sign(fc, ev);
    } else if (mir_event_is(ev, &mir__verify_request__descriptor)) {
      err = fake_origin_check(((Mir__VerifyRequest *)ev->payload)->origin, ev);
      if (err == MIR_OK) res = fake_on_verify(fc, ev);
    } else if (mir_event_is(ev, &mir__verify_many_request__descriptor)) {
      err = fake_origin_check(((Mir__VerifyManyRequest *)ev->payload)->origin, ev);
      if (err == MIR_OK) res = fake_on_verify_many(fc, ev);
    } else {
      err = mir_error_set(MIR_EINVAL, "sim crypto %s: unexpected event type %s", ev->dest,
                          mir_event_type_name(ev));
    }
    if (err != MIR_OK) return err;
    mir_event_list_push(out, res);
  }
  return MIR_OK;
}

static void fake_destroy(void *state) {
  free(state);
}

static const mir_module_ops fake_crypto_ops = {
    .name = "sim-crypto",
    .kind = MIR_MODULE_PASSIVE,
    .apply = fake_apply,
    .destroy = fake_destroy,
};

/* Builds the Ed25519 key set of node over every node id of the simulation. */
static mir_err sim_pseudo_keyset(mir_sim *sim, size_t node, mir_keyset **out) {
  const char *ids[MIR_SIM_NODES_MAX];
  for (size_t i = 0; i < sim->cfg.nodes; i++) ids[i] = sim->nodes[i].id;
  return mir_keyset_new_pseudo(MIR_SIG_ED25519, sim->cfg.seed, ids, sim->cfg.nodes,
                               sim->nodes[node].id, out);
}

mir_err mir_sim_add_crypto(mir_sim *sim, size_t node, mir_node *mn, const char *id) {
  MIR_ASSERT(node < sim->cfg.nodes);
  if (sim->cfg.crypto == MIR_SIM_CRYPTO_ED25519) {
    mir_keyset *ks = NULL;
    void *state = NULL;
    mir_err err = sim_pseudo_keyset(sim, node, &ks);
    if (err == MIR_OK) err = mir_crypto_sync_module_new(ks, &state);
    if (err != MIR_OK) return err;
    return mir_node_add_module(mn, id, &mir_crypto_sync_module_ops, state);
  }
  fake_crypto *fc = mir_xcalloc(1, sizeof *fc);
  fc->sim = sim;
  fc->node = node;
  return mir_node_add_module(mn, id, &fake_crypto_ops, fc);
}

mir_err mir_sim_add_hasher(mir_sim *sim, size_t node, mir_node *mn, const char *id) {
  MIR_ASSERT(node < sim->cfg.nodes);
  void *state = NULL;
  mir_err err = mir_hasher_module_new(&state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(mn, id, &mir_hasher_module_ops, state);
}

mir_err mir_sim_sign(mir_sim *sim, size_t signer, const ProtobufCBinaryData *parts, size_t n,
                     uint8_t *sig) {
  if (signer >= sim->cfg.nodes) return mir_error_set(MIR_EINVAL, "sim: no node %zu", signer);
  if (sim->cfg.crypto == MIR_SIM_CRYPTO_FAKE) {
    fake_sign(sim->cfg.seed, sim->nodes[signer].id, parts, n, sig);
    return MIR_OK;
  }
  mir_keyset *ks = NULL;
  mir_err err = sim_pseudo_keyset(sim, signer, &ks);
  size_t len = 0;
  if (err == MIR_OK) err = mir_keyset_sign(ks, parts, n, sig, &len);
  mir_keyset_free(ks);
  return err;
}
