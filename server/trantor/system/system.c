/*
 * The wiring of Trantor's protocol modules (trantor_system.h).
 *
 * Module ids are the ones of docs/PROTOCOL.md; each module is told the ids of the modules it
 * talks to here, in one place. The ordering factory's generator builds PBFT instances with a
 * configuration copied into the factory's wrapper state, so that it lives exactly as long as the
 * factory. Every certificate bound comes from the availability implementation, so PBFT and ISS
 * accept exactly the certificates availability can produce.
 */
#include "trantor_system.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "batchfetcher.h"
#include "checkpoint.h"
#include "iss.h"
#include "mempool.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/factory.h"
#include "mir/registry.h"
#include "pbft.h"
#include "trantor_common.h"

#define SYS_ISS "iss"
#define SYS_ORDERING "ordering"
#define SYS_CHECKPOINT "checkpoint"

/* ---- the ordering factory ----
 *
 * PBFT instances are ordering/<epoch>/<segment> (docs/PROTOCOL.md): a factory whose submodule ids
 * have two components below it. */

/* The ids of the edge modules the caller provides. */
typedef struct sys_edges {
  const char *net, *crypto, *timer, *store;
} sys_edges;

typedef struct sys_ordering {
  trantor_pbft_config cfg; /* strings point into the arrays below */
  char self[MIR_MODULE_ID_MAX], iss[MIR_MODULE_ID_MAX], availability[MIR_MODULE_ID_MAX];
  char crypto[MIR_MODULE_ID_MAX], timer[MIR_MODULE_ID_MAX], net[MIR_MODULE_ID_MAX];
  char store[MIR_MODULE_ID_MAX];
} sys_ordering;

static mir_err sys_ordering_create(void *user_data, const char *submodule_id,
                                   const ProtobufCMessage *params, const mir_module_ops **ops_out,
                                   void **state_out) {
  const sys_ordering *so = user_data;
  if (params == NULL || params->descriptor != &trantor__pbft_params__descriptor) {
    return mir_error_set(MIR_EINVAL, "%s: NewSubmodule without PbftParams", submodule_id);
  }
  return trantor_pbft_new(submodule_id, (const Trantor__PbftParams *)params, &so->cfg, ops_out,
                          state_out);
}

/* The factory's generator context, owned by the factory module: freed with it. */
typedef struct sys_ordering_module {
  mir_factory *factory;
  sys_ordering ctx;
} sys_ordering_module;

static mir_err sys_ordering_apply(void *state, mir_event_list *in, mir_event_list *out) {
  return mir_factory_ops.apply(((sys_ordering_module *)state)->factory, in, out);
}

static void sys_ordering_destroy(void *state) {
  sys_ordering_module *m = state;
  mir_factory_free(m->factory);
  free(m);
}

/* The factory's set: its own metrics, the PBFT instances' below (folded when collected). */
static mir_metrics *sys_ordering_metrics(void *state) {
  return mir_factory_ops.metrics(((sys_ordering_module *)state)->factory);
}

static const mir_module_ops sys_ordering_ops = {
    .name = "ordering-factory",
    .kind = MIR_MODULE_PASSIVE,
    .apply = sys_ordering_apply,
    .destroy = sys_ordering_destroy,
    .metrics = sys_ordering_metrics,
    .peer_messages = true,
};

/* Copies src into dst (room for MIR_MODULE_ID_MAX bytes) and returns dst. The caller checked that
 * every id is valid, so it fits. */
static const char *sys_copy(char *dst, const char *src) {
  MIR_ASSERT(strlen(src) < MIR_MODULE_ID_MAX);
  strcpy(dst, src);
  return dst;
}

static mir_err sys_add_ordering(mir_node *node, const trantor_system_config *cfg,
                                const sys_edges *e) {
  sys_ordering_module *m = mir_xcalloc(1, sizeof(*m));
  sys_ordering *so = &m->ctx;
  so->cfg.self = sys_copy(so->self, cfg->self_id);
  so->cfg.hash = cfg->hash;
  so->cfg.iss = sys_copy(so->iss, SYS_ISS);
  so->cfg.availability = sys_copy(so->availability, TRANTOR_AVAILABILITY_ID);
  so->cfg.crypto = sys_copy(so->crypto, e->crypto);
  so->cfg.timer = sys_copy(so->timer, e->timer);
  so->cfg.net = sys_copy(so->net, e->net);
  so->cfg.store = sys_copy(so->store, e->store);
  mir_factory_params fp;
  mir_factory_params_default(&fp, sys_ordering_create, so);
  fp.id_depth = 2;
  if (cfg->factory_msgbuf_bytes != 0) fp.msgbuf_bytes = cfg->factory_msgbuf_bytes;
  mir_err err = mir_factory_new(SYS_ORDERING, &fp, &m->factory);
  if (err != MIR_OK) {
    free(m);
    return err;
  }
  return mir_node_add_module(node, SYS_ORDERING, &sys_ordering_ops, m);
}

/* ---- the other modules ---- */

static mir_err sys_add_iss(mir_node *node, const trantor_system_config *cfg, const sys_edges *e,
                           uint64_t cert_bytes_max) {
  trantor_iss_config ic = {0};
  ic.self_id = cfg->self_id;
  ic.membership = cfg->membership;
  ic.params = cfg->params;
  ic.hash = cfg->hash;
  ic.module_id = SYS_ISS;
  ic.ordering_id = SYS_ORDERING;
  ic.checkpoint_id = SYS_CHECKPOINT;
  ic.batchfetcher_id = TRANTOR_BATCHFETCHER_ID;
  ic.availability_id = TRANTOR_AVAILABILITY_ID;
  ic.timer_id = e->timer;
  ic.net_id = e->net;
  ic.crypto_id = e->crypto;
  ic.store_id = e->store;
  ic.max_cert_bytes = cert_bytes_max;
  ic.checkpoint_msg_bytes_max = cfg->checkpoint_msg_bytes_max;
  const mir_module_ops *ops;
  void *state;
  mir_err err = trantor_iss_new(&ic, &ops, &state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(node, SYS_ISS, ops, state);
}

static mir_err sys_add_checkpoint(mir_node *node, const trantor_system_config *cfg,
                                  const sys_edges *e) {
  trantor_checkpoint_config cc = {0};
  cc.self_id = cfg->self_id;
  cc.hash = cfg->hash;
  cc.iss_id = SYS_ISS;
  cc.crypto_id = e->crypto;
  cc.net_id = e->net;
  cc.timer_id = e->timer;
  const mir_module_ops *ops;
  void *state;
  mir_err err =
      trantor_checkpoint_factory_new(SYS_CHECKPOINT, &cc, cfg->factory_msgbuf_bytes, &ops, &state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(node, SYS_CHECKPOINT, ops, state);
}

/* mempool, availability, batchfetcher and app. */
static mir_err sys_add_data_path(mir_node *node, const trantor_system_config *cfg,
                                 const trantor_availability_impl *av, const char *timer) {
  trantor_mempool_config mc = {0};
  mc.params = cfg->params;
  mc.timer_id = timer;
  mc.clients_max = cfg->clients_max;
  mir_dsl *dsl = NULL;
  mir_err err = trantor_mempool_new(&mc, &dsl);
  if (err == MIR_OK) err = mir_node_add_module(node, TRANTOR_MEMPOOL_ID, &mir_dsl_ops, dsl);
  if (err != MIR_OK) return err;

  trantor_availability_config ac = {0};
  ac.params = cfg->params;
  const mir_module_ops *ops;
  void *state;
  err = av->create(&ac, &ops, &state);
  if (err == MIR_OK) err = mir_node_add_module(node, TRANTOR_AVAILABILITY_ID, ops, state);
  if (err != MIR_OK) return err;

  trantor_batchfetcher_config bc = {0};
  bc.params = cfg->params;
  bc.clients_max = cfg->clients_max;
  err = trantor_batchfetcher_new(&bc, &dsl);
  if (err == MIR_OK) err = mir_node_add_module(node, TRANTOR_BATCHFETCHER_ID, &mir_dsl_ops, dsl);
  if (err != MIR_OK) return err;

  trantor_app_config apc = {0};
  apc.app = cfg->app;
  err = trantor_app_module_new(&apc, &dsl);
  if (err == MIR_OK) err = mir_node_add_module(node, TRANTOR_APP_ID, &mir_dsl_ops, dsl);
  return err;
}

static mir_err sys_check(const trantor_system_config *cfg) {
  if (cfg == NULL || cfg->self_id == NULL || cfg->membership == NULL || cfg->params == NULL ||
      cfg->hash == NULL || cfg->app == NULL) {
    return mir_error_set(MIR_EINVAL,
                         "trantor system: self_id, membership, params, hash and app are required");
  }
  const char *ids[] = {cfg->self_id, cfg->net_id, cfg->crypto_id, cfg->timer_id, cfg->store_id};
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    if (ids[i] != NULL && !mir_module_id_valid(ids[i])) {
      return mir_error_set(MIR_EINVAL, "trantor system: invalid id '%.64s'", ids[i]);
    }
  }
  mir_err err = trantor_params_check(cfg->params);
  if (err != MIR_OK) return err;
  if (trantor_membership_check(cfg->membership) != MIR_OK) {
    return mir_error_set(MIR_EINVAL, "trantor system: %s", mir_error_detail());
  }
  /* Every PBFT instance counts its own node among the members. */
  if (trantor_member_index(cfg->membership, cfg->self_id) < 0) {
    return mir_error_set(MIR_EINVAL, "trantor system: %.64s is not a member", cfg->self_id);
  }
  return MIR_OK;
}

void trantor_system_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &trantor__tx__descriptor,
      &trantor__batch__descriptor,
      &trantor__member__descriptor,
      &trantor__membership__descriptor,
      &trantor__client_watermark__descriptor,
      &trantor__client_progress__descriptor,
      &trantor__new_transactions__descriptor,
      &trantor__txs_accepted__descriptor,
      &trantor__request_cert__descriptor,
      &trantor__new_cert__descriptor,
      &trantor__request_batch__descriptor,
      &trantor__new_batch__descriptor,
      &trantor__batch_timeout__descriptor,
      &trantor__verify_cert__descriptor,
      &trantor__cert_verified__descriptor,
      &trantor__request_transactions__descriptor,
      &trantor__provide_transactions__descriptor,
      &trantor__sb_deliver__descriptor,
      &trantor__deliver_cert__descriptor,
      &trantor__deliver_batch__descriptor,
      &trantor__new_epoch__descriptor,
      &trantor__txs_delivered__descriptor,
      &trantor__snapshot_request__descriptor,
      &trantor__snapshot__descriptor,
      &trantor__epoch_config__descriptor,
      &trantor__state_snapshot__descriptor,
      &trantor__checkpoint_signature__descriptor,
      &trantor__stable_checkpoint__descriptor,
      &trantor__checkpoint_stable__descriptor,
      &trantor__epoch_progress__descriptor,
      &trantor__checkpoint_msg__descriptor,
      &trantor__stable_checkpoint_msg__descriptor,
      &trantor__restore_state__descriptor,
      &trantor__checkpoint_notice__descriptor,
      &trantor__pbft_params__descriptor,
      &trantor__preprepare__descriptor,
      &trantor__prepare__descriptor,
      &trantor__commit__descriptor,
      &trantor__done__descriptor,
      &trantor__catch_up_request__descriptor,
      &trantor__catch_up_response__descriptor,
      &trantor__pset_entry__descriptor,
      &trantor__qset_entry__descriptor,
      &trantor__view_change__descriptor,
      &trantor__signed_view_change__descriptor,
      &trantor__new_view__descriptor,
      &trantor__preprepare_request__descriptor,
      &trantor__missing_preprepare__descriptor,
      &trantor__view_change_sn_timeout__descriptor,
      &trantor__view_change_seg_timeout__descriptor,
      &trantor__pbft_tick__descriptor,
      &trantor__checkpoint_params__descriptor,
      &trantor__push_checkpoint__descriptor,
      &trantor__checkpoint_tick__descriptor,
      &trantor__wal_view__descriptor,
      &trantor__wal_cert__descriptor,
      &trantor__wal_known__descriptor,
      &trantor__wal_slot__descriptor,
      &trantor__wal_checkpoint_sig__descriptor,
      &trantor__wal_floor__descriptor,
      &trantor__wal_params__descriptor,
      &trantor__pbft_recovered__descriptor,
      &trantor__recovered__descriptor,
      &trantor__checkpoint_durable__descriptor,
      &trantor__rejoin_request__descriptor,
      &trantor__rejoin_answer__descriptor,
      &trantor__pbft_persisted__descriptor,
      &trantor__checkpoint_persisted__descriptor,
      &trantor__activity__descriptor,
      &trantor__needed__descriptor,
  };
  mir_err err = mir_registry_add_all(types, sizeof(types) / sizeof(types[0]));
  MIR_ASSERT(err == MIR_OK); /* a fixed list far below the registry's bound */
}

mir_err trantor_system_add_modules(mir_node *node, const trantor_system_config *cfg) {
  mir_err err = sys_check(cfg);
  if (err != MIR_OK) return err;
  trantor_system_register_types();
  sys_edges e = {cfg->net_id != NULL ? cfg->net_id : "net",
                 cfg->crypto_id != NULL ? cfg->crypto_id : "crypto",
                 cfg->timer_id != NULL ? cfg->timer_id : "timer",
                 cfg->store_id != NULL ? cfg->store_id : "store"};
  const trantor_availability_impl *av =
      cfg->availability != NULL ? cfg->availability : &trantor_availability_batchcert;
  uint64_t cert_bytes_max = av->cert_bytes_max(cfg->params);
  err = sys_add_iss(node, cfg, &e, cert_bytes_max);
  if (err == MIR_OK) err = sys_add_ordering(node, cfg, &e);
  if (err == MIR_OK) err = sys_add_checkpoint(node, cfg, &e);
  if (err == MIR_OK) err = sys_add_data_path(node, cfg, av, e.timer);
  return err;
}
