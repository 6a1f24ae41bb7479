/*
 * The "checkpoint" factory: a mir_factory whose generator builds checkpoint/<e> instances from
 * CheckpointParams (checkpoint.h).
 *
 * The factory's user data must outlive it, so the module state is a small wrapper that owns both
 * the factory and the copy of the configuration the generator reads; destroying the module frees
 * the factory first, then the configuration.
 */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/factory.h"

typedef struct chkp_factory {
  mir_factory *factory;
  trantor_checkpoint_config cfg; /* strings point into the arrays below */
  char self[MIR_MODULE_ID_MAX], iss[MIR_MODULE_ID_MAX], crypto[MIR_MODULE_ID_MAX];
  char net[MIR_MODULE_ID_MAX], timer[MIR_MODULE_ID_MAX];
} chkp_factory;

/* Copies src (or dflt when NULL) into dst and returns dst; MIR_EINVAL through *err if invalid. */
static const char *chkp_fac_copy(char dst[MIR_MODULE_ID_MAX], const char *src, const char *dflt,
                                 mir_err *err) {
  const char *s = src != NULL ? src : dflt;
  if (!mir_module_id_valid(s)) {
    *err = mir_error_set(MIR_EINVAL, "checkpoint factory: invalid id '%.64s'", s);
    return dst;
  }
  strcpy(dst, s);
  return dst;
}

static mir_err chkp_fac_create(void *user_data, const char *submodule_id,
                               const ProtobufCMessage *params, const mir_module_ops **ops_out,
                               void **state_out) {
  const chkp_factory *cf = user_data;
  if (params == NULL || params->descriptor != &trantor__checkpoint_params__descriptor) {
    return mir_error_set(MIR_EINVAL, "%s: NewSubmodule without CheckpointParams", submodule_id);
  }
  return trantor_checkpoint_new(submodule_id, (const Trantor__CheckpointParams *)params, &cf->cfg,
                                ops_out, state_out);
}

static mir_err chkp_fac_apply(void *state, mir_event_list *in, mir_event_list *out) {
  chkp_factory *cf = state;
  return mir_factory_ops.apply(cf->factory, in, out);
}

static void chkp_fac_destroy(void *state) {
  chkp_factory *cf = state;
  mir_factory_free(cf->factory);
  free(cf);
}

/* The factory's set: its own metrics, its instances' below (folded when they are collected). */
static mir_metrics *chkp_fac_metrics(void *state) {
  return mir_factory_ops.metrics(((chkp_factory *)state)->factory);
}

static const mir_module_ops chkp_factory_ops = {
    .name = "checkpoint-factory",
    .kind = MIR_MODULE_PASSIVE,
    .apply = chkp_fac_apply,
    .destroy = chkp_fac_destroy,
    .metrics = chkp_fac_metrics,
    .peer_messages = true,
};

mir_err trantor_checkpoint_factory_new(const char *factory_id, const trantor_checkpoint_config *cfg,
                                       size_t msgbuf_bytes, const mir_module_ops **ops_out,
                                       void **state_out) {
  if (cfg == NULL || cfg->self_id == NULL || cfg->hash == NULL) {
    return mir_error_set(MIR_EINVAL, "checkpoint factory: config needs self_id and hash");
  }
  chkp_factory *cf = mir_xcalloc(1, sizeof(*cf));
  mir_err err = MIR_OK;
  cf->cfg.self_id = chkp_fac_copy(cf->self, cfg->self_id, cfg->self_id, &err);
  cf->cfg.iss_id = chkp_fac_copy(cf->iss, cfg->iss_id, "iss", &err);
  cf->cfg.crypto_id = chkp_fac_copy(cf->crypto, cfg->crypto_id, "crypto", &err);
  cf->cfg.net_id = chkp_fac_copy(cf->net, cfg->net_id, "net", &err);
  cf->cfg.timer_id = chkp_fac_copy(cf->timer, cfg->timer_id, "timer", &err);
  cf->cfg.hash = cfg->hash;
  mir_factory_params fp;
  mir_factory_params_default(&fp, chkp_fac_create, cf);
  if (msgbuf_bytes != 0) fp.msgbuf_bytes = msgbuf_bytes;
  if (err == MIR_OK) err = mir_factory_new(factory_id, &fp, &cf->factory);
  if (err != MIR_OK) {
    free(cf);
    return err;
  }
  trantor_checkpoint_register_types();
  *ops_out = &chkp_factory_ops;
  *state_out = cf;
  return MIR_OK;
}
