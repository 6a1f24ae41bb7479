/*
 * Checkpoint encodings and the certificate rule (checkpoint.h).
 *
 * The snapshot hash covers everything a node restores from a checkpoint: the epoch configuration
 * (epoch, first sn, length, membership), the leader policy, the client progress and the
 * application data, each as one length-prefixed part, so no two different snapshots share an
 * encoding. Messages are packed with protobuf-c, whose output is deterministic for a given
 * structure; a peer's structure with extra unknown fields packs differently, so it simply fails
 * signature verification.
 *
 * A certificate is valid when signers with a strong quorum of weight (docs/PROTOCOL.md, "Weighted
 * quorums") signed the digest: any two strong quorums share a correct node, and a correct node
 * signs only the state it computed itself, which is the same at every correct node.
 */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "trantor_common.h"

#define SNAP_TAG "snap"
#define CHKP_TAG "chkp"

mir_err trantor_snapshot_check(const Trantor__StateSnapshot *snap) {
  if (snap == NULL) return mir_error_set(MIR_EPROTO, "checkpoint: no snapshot");
  const Trantor__EpochConfig *ec = snap->epoch_config;
  if (ec == NULL) return mir_error_set(MIR_EPROTO, "checkpoint: no epoch config");
  if (ec->length == 0) return mir_error_set(MIR_EPROTO, "checkpoint: epoch of length 0");
  if (ec->first_sn > UINT64_MAX - ec->length) {
    return mir_error_set(MIR_EPROTO, "checkpoint: epoch end overflows");
  }
  if (trantor_membership_check(ec->membership) != MIR_OK) {
    return mir_error_set(MIR_EPROTO, "checkpoint: %s", mir_error_detail());
  }
  return MIR_OK;
}

/* Packs msg (borrowed, may be NULL) into a new buffer (owned; NULL when empty). */
static uint8_t *snap_pack(const ProtobufCMessage *msg, size_t *len) {
  *len = msg != NULL ? protobuf_c_message_get_packed_size(msg) : 0;
  if (*len == 0) return NULL;
  uint8_t *buf = mir_xmalloc(*len);
  size_t written = protobuf_c_message_pack(msg, buf);
  MIR_ASSERT(written == *len);
  return buf;
}

void trantor_snapshot_hash(const Trantor__StateSnapshot *snap, trantor_hash_fn hash,
                           uint8_t out[32]) {
  const Trantor__EpochConfig *ec = snap->epoch_config;
  MIR_ASSERT(ec != NULL && ec->membership != NULL); /* trantor_snapshot_check passed */
  size_t mlen, clen;
  uint8_t *mbytes = snap_pack(&ec->membership->base, &mlen);
  uint8_t *cbytes = snap_pack(snap->client_progress ? &snap->client_progress->base : NULL, &clen);
  trantor_hash_input in;
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, SNAP_TAG);
  trantor_hash_add_u64(&in, ec->epoch);
  trantor_hash_add_u64(&in, ec->first_sn);
  trantor_hash_add_u64(&in, ec->length);
  trantor_hash_add_bytes(&in, mbytes, mlen);
  trantor_hash_add_bytes(&in, snap->leader_policy.data, snap->leader_policy.len);
  trantor_hash_add_bytes(&in, cbytes, clen);
  trantor_hash_add_bytes(&in, snap->app_data.data, snap->app_data.len);
  trantor_hash_compute(&in, hash, out);
  free(mbytes);
  free(cbytes);
}

void trantor_checkpoint_digest(uint64_t epoch, uint64_t sn, const uint8_t snapshot_hash[32],
                               trantor_hash_fn hash, uint8_t out[32]) {
  trantor_hash_input in;
  trantor_hash_input_init(&in);
  trantor_hash_add_str(&in, CHKP_TAG);
  trantor_hash_add_u64(&in, epoch);
  trantor_hash_add_u64(&in, sn);
  trantor_hash_add_bytes(&in, snapshot_hash, 32);
  trantor_hash_compute(&in, hash, out);
}

/* Checks the certificate entries of chkp against signers; returns their total weight through
 * *weight. */
static mir_err chkp_cert_check(const Trantor__StableCheckpoint *chkp,
                               const Trantor__Membership *signers, uint64_t *weight) {
  if (chkp->n_cert == 0 || chkp->n_cert > signers->n_members) {
    return mir_error_set(MIR_EPROTO, "checkpoint: %zu signatures for %zu signers", chkp->n_cert,
                         signers->n_members);
  }
  uint64_t w = 0;
  for (size_t i = 0; i < chkp->n_cert; i++) {
    const Trantor__CheckpointSignature *s = chkp->cert[i];
    if (s == NULL || s->signer == NULL) return mir_error_set(MIR_EPROTO, "checkpoint: no signer");
    /* Sorted and unique, so one signer cannot be counted twice towards the quorum. */
    if (i > 0 && strcmp(chkp->cert[i - 1]->signer, s->signer) >= 0) {
      return mir_error_set(MIR_EPROTO, "checkpoint: signers not sorted or repeated");
    }
    uint64_t sw = trantor_member_weight(signers, s->signer);
    if (sw == 0) {
      return mir_error_set(MIR_EPROTO, "checkpoint: signer %.64s is not a member", s->signer);
    }
    if (s->signature.len == 0 || s->signature.len > TRANTOR_SIGNATURE_BYTES_MAX) {
      return mir_error_set(MIR_EPROTO, "checkpoint: signature of %zu bytes", s->signature.len);
    }
    w += sw; /* below 2^62 in all: a subset of a checked membership */
  }
  *weight = w;
  return MIR_OK;
}

mir_err trantor_stable_checkpoint_check(const Trantor__StableCheckpoint *chkp,
                                        const Trantor__Membership *signers, trantor_hash_fn hash,
                                        uint8_t digest[32]) {
  if (chkp == NULL) return mir_error_set(MIR_EPROTO, "checkpoint: missing");
  mir_err err = trantor_snapshot_check(chkp->snapshot);
  if (err != MIR_OK) return err;
  const Trantor__EpochConfig *ec = chkp->snapshot->epoch_config;
  if (ec->epoch == 0) return mir_error_set(MIR_EPROTO, "checkpoint: genesis has no certificate");
  if (chkp->sn != ec->first_sn) {
    return mir_error_set(MIR_EPROTO, "checkpoint: sn %llu is not the epoch's first sn %llu",
                         (unsigned long long)chkp->sn, (unsigned long long)ec->first_sn);
  }
  uint64_t weight = 0;
  err = chkp_cert_check(chkp, signers, &weight);
  if (err != MIR_OK) return err;
  trantor_quorum q;
  trantor_quorum_of(signers, &q);
  if (weight < q.strong) {
    return mir_error_set(MIR_EPROTO, "checkpoint: signers' weight %llu below the quorum %llu",
                         (unsigned long long)weight, (unsigned long long)q.strong);
  }
  uint8_t snap_hash[32];
  trantor_snapshot_hash(chkp->snapshot, hash, snap_hash);
  trantor_checkpoint_digest(ec->epoch, chkp->sn, snap_hash, hash, digest);
  return MIR_OK;
}
