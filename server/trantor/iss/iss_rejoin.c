/*
 * ISS: rejoining after the loss of the data (docs/PROTOCOL.md, "Rejoining").
 *
 * A replica that lost its write-ahead log may have voted before in epochs it no longer knows of;
 * voting there again could contradict those votes. So it votes in no epoch below a floor F it
 * derives from its peers, and follows the log up to F without voting: state transfer, then Done
 * and catch-up (passive PBFT and checkpoint instances).
 *
 * The floor. Every replica starts epoch e only with a durable stable checkpoint of epoch
 * e - K or later (K = epochs_ahead_max; iss.c). Say the lost replica last voted in epoch e_R:
 * it held a stable checkpoint of some epoch S >= e_R - K then, certified by signers with a strong
 * quorum of weight, of which those holding at least strong - f of weight are correct (the lost
 * replica counts as faulty). A correct signer signed S when it started epoch S, with a durable
 * checkpoint of at least S - K, and that one only grows. The rejoining replica asks every peer
 * for its stable checkpoint and waits for answers, with verified certificates, from peers
 * holding a strong quorum of weight (itself excluded). Those peers and the correct signers of S
 * hold together more than the total weight (2 strong - f > W), so one peer is in both: it
 * answers at least S - K. With M the highest verified answer, e_R <= S + K <= M + 2K, and
 * F = M + 2K + 1 is above every epoch the replica may have voted in. A Byzantine peer cannot
 * raise M beyond a real stable checkpoint (it needs a certificate), nor lower it (the answer of
 * the correct peer in both sets is among those taken); it can only stay silent, and peers of a
 * strong quorum of weight are enough.
 *
 * The floor is written to the log before any instance that may vote is created (same store, in
 * order), with the rejoin marker removed in the same write; a crash before that leaves the marker,
 * and the replica asks again. While rejoining, ISS starts no epoch and takes no state transfer.
 * Peers answer RejoinRequests at their next push tick, one answer per requester and tick.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "iss_internal.h"
#include "mir/alloc.h"
#include "mir/log.h"
#include "trantor_common.h"
#include "wal.h"

static void iss_rejoin_ask(mir_dsl *dsl, iss *s) {
  const Trantor__Membership *m = s->membership;
  const char **dests = mir_xmalloc(m->n_members * sizeof(*dests));
  size_t n = 0;
  for (size_t i = 0; i < m->n_members; i++) {
    if (strcmp(m->members[i]->id, s->self) != 0 && s->rejoin_epoch[i] == ISS_NONE) {
      dests[n++] = m->members[i]->id;
    }
  }
  Trantor__RejoinRequest req = TRANTOR__REJOIN_REQUEST__INIT;
  if (n > 0) mir_dsl_send(dsl, s->net, dests, n, s->id, &req.base);
  free(dests);
}

mir_err miri_iss_rejoin_start(mir_dsl *dsl, iss *s) {
  const Trantor__Membership *m = s->membership;
  trantor_quorum q;
  trantor_quorum_of(m, &q);
  uint64_t others = q.total - trantor_member_weight(m, s->self);
  if (others < q.strong) {
    return mir_error_set(MIR_ECONFIG,
                         "%s: the data was lost, and the other replicas hold too little weight to "
                         "tell which epochs this one may have voted in: it cannot rejoin",
                         s->id);
  }
  s->rejoining = true;
  for (size_t i = 0; i < m->n_members; i++) s->rejoin_epoch[i] = ISS_NONE;
  mir_log(MIR_LOG_INFO, ISS_LOG,
          "%s: rejoining after the loss of the data: asking the peers for their checkpoints",
          s->self);
  iss_rejoin_ask(dsl, s);
  return MIR_OK;
}

/* Writes the floor (removing the marker), then starts from the best checkpoint answered. */
static mir_err iss_rejoin_finish(mir_dsl *dsl, iss *s, uint64_t highest) {
  uint64_t k = s->params.epochs_ahead_max;
  s->vote_floor = highest + 2 * k + 1;
  s->rejoining = false;
  Trantor__WalFloor f = TRANTOR__WAL_FLOOR__INIT;
  f.epoch = s->vote_floor;
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  Mir__StoreWrite *w = mir_storage_write_new();
  trantor_wal_put(w, key, trantor_wal_floor_key(key), &f.base);
  mir_storage_delete(w, key, trantor_wal_rejoin_key(key));
  mir_dsl_emit(dsl, mir_event_store_write(s->store, s->id, w));
  mir_log(MIR_LOG_INFO, ISS_LOG,
          "%s: rejoining: the peers' highest stable checkpoint is of epoch %" PRIu64
          ": no votes below epoch %" PRIu64 "; following the log until then",
          s->self, highest, s->vote_floor);
  Trantor__StableCheckpoint *best = s->rejoin_best;
  s->rejoin_best = NULL;
  if (best != NULL) return miri_iss_install_foreign(dsl, s, best);
  s->genesis_pending = false;
  return miri_iss_start_epoch(dsl, s, 0, 0);
}

/* Finishes once peers of a strong quorum of weight answered. */
static mir_err iss_rejoin_check(mir_dsl *dsl, iss *s) {
  const Trantor__Membership *m = s->membership;
  trantor_quorum q;
  trantor_quorum_of(m, &q);
  uint64_t w = 0, highest = 0;
  for (size_t i = 0; i < m->n_members; i++) {
    if (s->rejoin_epoch[i] == ISS_NONE) continue;
    w += m->members[i]->weight;
    if (s->rejoin_epoch[i] > highest) highest = s->rejoin_epoch[i];
  }
  if (w < q.strong) return MIR_OK;
  return iss_rejoin_finish(dsl, s, highest);
}

mir_err miri_iss_rejoin_verified(mir_dsl *dsl, iss *s, size_t member,
                                 Trantor__StableCheckpoint *chkp) {
  if (chkp == NULL || !s->rejoining || s->rejoin_epoch[member] != ISS_NONE) {
    if (chkp != NULL) protobuf_c_message_free_unpacked(&chkp->base, NULL);
    return MIR_OK;
  }
  uint64_t e = chkp->snapshot->epoch_config->epoch;
  s->rejoin_epoch[member] = e;
  mir_counter_inc(s->stats.rejoin_answers);
  if (s->rejoin_best == NULL || e > s->rejoin_best->snapshot->epoch_config->epoch) {
    if (s->rejoin_best != NULL) protobuf_c_message_free_unpacked(&s->rejoin_best->base, NULL);
    s->rejoin_best = chkp;
  } else {
    protobuf_c_message_free_unpacked(&chkp->base, NULL);
  }
  return iss_rejoin_check(dsl, s);
}

mir_err miri_iss_on_rejoin_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                   void *user) {
  (void)dsl;
  (void)msg;
  iss *s = user;
  int i = trantor_member_index(s->membership, from);
  if (i < 0 || strcmp(from, s->self) == 0) {
    mir_counter_inc(s->stats.transfer_dropped);
    return MIR_OK;
  }
  s->rejoin_asked[i] = true; /* answered at the next push tick, once */
  return MIR_OK;
}

mir_err miri_iss_on_rejoin_answer(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                  void *user) {
  iss *s = user;
  const Trantor__RejoinAnswer *a = (const Trantor__RejoinAnswer *)msg;
  int i = trantor_member_index(s->membership, from);
  if (i < 0 || strcmp(from, s->self) == 0 || !s->rejoining || s->rejoin_epoch[i] != ISS_NONE ||
      s->transfer_pending[i]) {
    mir_counter_inc(s->stats.transfer_dropped);
    return MIR_OK;
  }
  if (a->epoch == 0) { /* the genesis needs no certificate, and says nothing beyond epoch 0 */
    if (a->checkpoint != NULL) {
      mir_counter_inc(s->stats.transfer_dropped);
      return MIR_OK;
    }
    s->rejoin_epoch[i] = 0;
    mir_counter_inc(s->stats.rejoin_answers);
    return iss_rejoin_check(dsl, s);
  }
  uint8_t digest[32];
  if (a->checkpoint == NULL || a->checkpoint->snapshot == NULL ||
      a->checkpoint->snapshot->epoch_config == NULL ||
      a->checkpoint->snapshot->epoch_config->epoch != a->epoch ||
      miri_iss_check_foreign(s, a->checkpoint, digest) != MIR_OK) {
    mir_counter_inc(s->stats.transfer_dropped);
    return MIR_OK;
  }
  Trantor__StableCheckpoint *copy =
      (Trantor__StableCheckpoint *)mir_message_clone(&a->checkpoint->base);
  return miri_iss_verify_foreign(dsl, s, (size_t)i, copy, digest, true);
}

void miri_iss_rejoin_tick(mir_dsl *dsl, iss *s) {
  const Trantor__Membership *m = s->membership;
  for (size_t i = 0; i < m->n_members; i++) {
    if (!s->rejoin_asked[i]) continue;
    s->rejoin_asked[i] = false;
    Trantor__RejoinAnswer a = TRANTOR__REJOIN_ANSWER__INIT;
    if (s->stable != NULL) {
      a.epoch = s->stable->snapshot->epoch_config->epoch;
      if (a.epoch > 0) a.checkpoint = s->stable;
    }
    const char *dest = m->members[i]->id;
    mir_dsl_send(dsl, s->net, &dest, 1, s->id, &a.base);
  }
  if (s->rejoining) iss_rejoin_ask(dsl, s);
}
