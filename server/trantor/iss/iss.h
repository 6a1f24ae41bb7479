/*
 * ISS: epochs, segments, buckets, the leader policy, the commit log delivered in sn order,
 * garbage collection and state transfer (docs/PROTOCOL.md, "ISS").
 *
 * The module (id "iss") is a passive DSL module. Events in: mir.Init, trantor.SbDeliver (from
 * ordering/<e>/<i>), trantor.CertVerified (availability), trantor.CheckpointStable and
 * trantor.EpochProgress (from checkpoint/<e>), trantor.PushCheckpoint (its own timer tick),
 * mir.VerifyManyResult (crypto), trantor.CheckpointDurable (the store), the messages
 * trantor.StableCheckpointMsg, RejoinRequest and RejoinAnswer (from other nodes' iss), and
 * trantor.Recovered from the embedding application (below). Events out: VerifyCert to
 * availability for every committed certificate; DeliverCert, NewEpoch, SnapshotRequest,
 * RestoreState and CheckpointNotice to the batch fetcher (which keeps them in log order and
 * forwards what the application needs); NewSubmodule and GarbageCollect to the ordering and
 * checkpoint factories; GarbageCollect and TimerRepeat to the timer; SendMessage to the transport;
 * VerifyManyRequest to crypto; StoreWrite to the store.
 *
 * Restart (docs/PROTOCOL.md "Durability"). The genesis epoch starts at the end of the batch
 * holding mir.Init, not in the Init handler, so that a restarted replica can queue a
 * trantor.Recovered{what its write-ahead log holds} to "iss" before starting the node (with
 * mir_node_inject: injected events are routed right after Init, into the same batch). ISS then
 * checks that the log was written under the same membership and parameters, starts from the
 * log's stable checkpoint instead of the genesis (as after a state transfer, without verifying
 * the signatures again: only stable, verified checkpoints are written), and hands every PBFT and
 * checkpoint instance its own records when it creates it again. A log marked "rejoin" (the
 * replica lost its data) starts no epoch until its peers answered (iss_rejoin.c). A Recovered
 * event after the first epoch started is an error.
 *
 * Durability. A stable checkpoint is written through the store module with the deletion of every
 * record of the epochs below it; the store answers CheckpointDurable. Epoch e starts only once the
 * stable checkpoint of epoch e - epochs_ahead_max or later is durable, which bounds how far a
 * replica runs ahead of its checkpoints, and with it what a replica that lost its data may have
 * voted in before.
 */
#ifndef TRANTOR_ISS_H
#define TRANTOR_ISS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/module.h"
#include "mir/trantor.h"
#include "trantor/trantor.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest id of the ordering or checkpoint factory, so that "<id>/<epoch>/<segment>" always fits
 * in a module id. */
#define TRANTOR_ISS_FACTORY_ID_MAX 16

typedef struct trantor_iss_config {
  const char *self_id;                   /* this node's id (required) */
  const Trantor__Membership *membership; /* epoch 0's membership (required, valid) */
  const trantor_params *params;          /* required, passes trantor_params_check */
  trantor_hash_fn hash;                  /* required, pure */
  const char *module_id;                 /* NULL: "iss" */
  const char *ordering_id;               /* factory of PBFT instances (NULL: "ordering") */
  const char *checkpoint_id;             /* factory of checkpoint instances (NULL: "checkpoint") */
  const char *batchfetcher_id;           /* log-ordered output path (NULL: "batchfetcher") */
  const char *timer_id;                  /* NULL: "timer" */
  const char *net_id;                    /* NULL: "net" */
  const char *crypto_id;                 /* NULL: "crypto" */
  const char *availability_id;           /* answers VerifyCert (NULL: "availability") */
  const char *store_id;                  /* store module of the write-ahead log (NULL: "store") */
  uint64_t push_period_ms; /* state-transfer push period (0: params->checkpoint_resend_ms) */
  uint64_t max_cert_bytes; /* per certificate, passed to PBFT (0: derived from the params) */
  size_t checkpoint_msg_bytes_max; /* largest StableCheckpointMsg decoded (0: the DSL default) */
} trantor_iss_config;

/* The module registers its metrics in its dsl's set (mir_dsl_metrics of the state): gauges
 * mir_iss_epoch, mir_iss_next_sn, mir_iss_stable_checkpoint_epoch, mir_iss_gc_epoch,
 * mir_iss_durable_checkpoint_epoch, mir_iss_vote_floor_epoch, mir_iss_rejoining; counters
 * mir_iss_delivered_total, mir_iss_sb_deliveries_dropped_total{reason},
 * mir_iss_empty_deliveries_total {reason}, mir_iss_stale_verdicts_total, mir_iss_suspicions_total,
 * mir_iss_checkpoint_pushes_total, mir_iss_checkpoint_messages_dropped_total{reason},
 * mir_iss_state_transfers_total, mir_iss_local_restores_total,
 * mir_iss_local_restores_rejected_total, mir_iss_recovered_instances_total,
 * mir_iss_blocked_epoch_starts_total, mir_iss_rejoin_answers_total. */

/* Creates the ISS module from cfg (borrowed; everything is copied). MIR_EINVAL with detail for a
 * missing or invalid field. On success *ops_out is static and *state_out is owned (a mir_dsl *;
 * free with mir_dsl_free, or hand both to mir_node_add_module). */
mir_err trantor_iss_new(const trantor_iss_config *cfg, const mir_module_ops **ops_out,
                        void **state_out);

/* The largest certificate a segment may order under params (borrowed): a packed batch of
 * max_batch_txs transactions of at most max_batch_bytes of data, with room for each
 * transaction's client id and framing. */
uint64_t trantor_iss_default_max_cert_bytes(const trantor_params *params);

/* Registers the Trantor types ISS packs in nested events and parameters (PbftParams,
 * CheckpointParams, PushCheckpoint, StableCheckpointMsg) with the type registry. Idempotent. */
void trantor_iss_register_types(void);

#ifdef __cplusplus
}
#endif
#endif
