/*
 * Checkpoints of Trantor (docs/PROTOCOL.md, "Checkpoints").
 *
 * checkpoint/<e> instances live under the "checkpoint" factory, one per epoch, created by ISS
 * with CheckpointParams (retention index e). An instance waits for the Snapshot of its epoch
 * (application data and client progress, both in one event), hashes the state snapshot, signs
 * H("chkp", e, sn, snapshot hash) through the crypto module, sends CheckpointMsg to the other
 * signers until the checkpoint is stable, verifies theirs, reports EpochProgress for each sender
 * to ISS and, once a strong quorum (by weight, own signature included) signed, emits
 * CheckpointStable to ISS, once. Epoch 0's checkpoint is the genesis state: stable without
 * signatures.
 *
 * The same rule is used to verify a stable checkpoint received for state transfer
 * (trantor_stable_checkpoint_check): what creates a certificate is exactly what verifies one.
 */
#ifndef TRANTOR_CHECKPOINT_H
#define TRANTOR_CHECKPOINT_H

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

/* Longest signature accepted in a CheckpointMsg or a certificate. */
#define TRANTOR_SIGNATURE_BYTES_MAX 512
/* Largest CheckpointMsg decoded (hash, signature and a few integers). */
#define TRANTOR_CHECKPOINT_MSG_BYTES_MAX 2048

/* ---- encodings ---- */

/* Checks the structure of a snapshot that may come from a peer (borrowed): epoch config present
 * with a valid membership. MIR_EPROTO with detail otherwise. */
mir_err trantor_snapshot_check(const Trantor__StateSnapshot *snap);

/* The snapshot hash H("snap", epoch, first_sn, length, packed Membership, leader_policy, packed
 * ClientProgress, app_data) of a snapshot that passed trantor_snapshot_check (borrowed). A
 * missing client progress hashes as an empty one. */
void trantor_snapshot_hash(const Trantor__StateSnapshot *snap, trantor_hash_fn hash,
                           uint8_t out[32]);

/* What a checkpoint signature covers: H("chkp", epoch, sn, snapshot_hash). */
void trantor_checkpoint_digest(uint64_t epoch, uint64_t sn, const uint8_t snapshot_hash[32],
                               trantor_hash_fn hash, uint8_t out[32]);

/* Checks a stable checkpoint from a peer (borrowed) against the signers' membership (borrowed,
 * valid): a snapshot that passes trantor_snapshot_check, an epoch above 0, sn equal to the epoch's
 * first sn, a certificate sorted by signer with unique signers that are all members, signatures of
 * 1..TRANTOR_SIGNATURE_BYTES_MAX bytes, and a strong quorum of signers by weight. On success fills
 * digest (the signed data, for the caller to verify every signature through the crypto module).
 * MIR_EPROTO with detail otherwise. Signatures are not verified here. */
mir_err trantor_stable_checkpoint_check(const Trantor__StableCheckpoint *chkp,
                                        const Trantor__Membership *signers, trantor_hash_fn hash,
                                        uint8_t digest[32]);

/* ---- instances ---- */

typedef struct trantor_checkpoint_config {
  const char *self_id;   /* this node's id */
  trantor_hash_fn hash;  /* pure hash function (required) */
  const char *iss_id;    /* receives CheckpointStable and EpochProgress (NULL: "iss") */
  const char *crypto_id; /* serves SignRequest and VerifyRequest (NULL: "crypto") */
  const char *net_id;    /* transport (NULL: "net") */
  const char *timer_id;  /* timer (NULL: "timer") */
} trantor_checkpoint_config;

/* An instance registers its metrics in its dsl's set (mir_dsl_metrics of the state):
 * mir_checkpoint_messages_dropped_total{reason="invalid"|"duplicate"|"wrong_hash"|
 * "bad_signature"}, mir_checkpoint_signatures_accepted_total, mir_checkpoint_stale_answers_total
 * and mir_checkpoints_stable_total (1 once the instance's checkpoint is stable). */

/* Creates the instance module_id (borrowed, "checkpoint/<e>") for params (borrowed; copied:
 * epoch config with a valid membership, valid signers, resend_ms > 0) and cfg (borrowed; its
 * strings are copied). MIR_EINVAL with detail for invalid parameters. On success *ops_out is static
 * and *state_out is owned (a mir_dsl *; free with mir_dsl_free or hand both to a factory). */
mir_err trantor_checkpoint_new(const char *module_id, const Trantor__CheckpointParams *params,
                               const trantor_checkpoint_config *cfg, const mir_module_ops **ops_out,
                               void **state_out);

/* Creates the "checkpoint" factory module with id factory_id (borrowed, one component): its
 * generator accepts CheckpointParams and calls trantor_checkpoint_new with a copy of cfg
 * (borrowed; copied, so it need not outlive the call). msgbuf_bytes bounds the early-message
 * buffer (0: the factory default). On success *ops_out is static and *state_out is owned (hand
 * both to mir_node_add_module, whose destroy frees them). */
mir_err trantor_checkpoint_factory_new(const char *factory_id, const trantor_checkpoint_config *cfg,
                                       size_t msgbuf_bytes, const mir_module_ops **ops_out,
                                       void **state_out);

/* Registers the Trantor types the checkpoint module packs in nested events and parameters
 * (CheckpointParams, CheckpointTick) with the type registry. Idempotent. */
void trantor_checkpoint_register_types(void);

#ifdef __cplusplus
}
#endif
#endif
