/*
 * Trantor's protocol modules in one call (docs/PROTOCOL.md, "Modules of a node").
 *
 * trantor_system_add_modules adds to a node: iss, the ordering factory (PBFT instances
 * ordering/<e>/<i>), the checkpoint factory (checkpoint/<e>), mempool, availability, batchfetcher
 * and app. The edge modules (transport, crypto, timer, and the store that keeps the write-ahead
 * log: persist, then send) are the caller's: real ones in a replica, the simulator's in a
 * simulation; their ids are given in the configuration. A restarted node gets what its log
 * holds as a trantor.Recovered event queued to "iss" before it starts (trantor_wal_recover).
 */
#ifndef TRANTOR_SYSTEM_H
#define TRANTOR_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

#include "availability.h"
#include "mir/errors.h"
#include "mir/node.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trantor_system_config {
  const char *self_id;                   /* this node's id (required) */
  const Trantor__Membership *membership; /* epoch 0's membership (required, valid) */
  const trantor_params *params;          /* required, passes trantor_params_check */
  trantor_hash_fn hash;                  /* required, pure */
  const trantor_app *app;                /* the application's callbacks (required) */
  const char *net_id;                    /* transport (NULL: "net") */
  const char *crypto_id;                 /* crypto module (NULL: "crypto") */
  const char *timer_id;                  /* timer (NULL: "timer") */
  const char *store_id; /* store module of the write-ahead log, mir/storage.h (NULL: "store") */
  const trantor_availability_impl *availability; /* NULL: trantor_availability_batchcert */
  size_t clients_max;          /* client progress bound, the same at every replica (0: default) */
  size_t factory_msgbuf_bytes; /* early-message buffer of each factory (0: the default) */
  size_t checkpoint_msg_bytes_max; /* largest state-transfer message (0: the DSL default) */
} trantor_system_config;

/* Adds Trantor's protocol modules to node (borrowed; not started). cfg is borrowed during the call
 * (everything is copied; the application's user_data stays the application's). MIR_EINVAL with
 * detail for an invalid configuration, MIR_EEXIST if a module id is taken. On error some modules
 * may already have been added: the node is then only good for mir_node_free. */
mir_err trantor_system_add_modules(mir_node *node, const trantor_system_config *cfg);

/* Registers every Trantor type that travels nested in events, parameters or messages with the
 * type registry (idempotent); trantor_system_add_modules calls it. */
void trantor_system_register_types(void);

#ifdef __cplusplus
}
#endif
#endif
