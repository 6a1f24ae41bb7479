/*
 * ISS: stable checkpoints, garbage collection and state transfer (iss.h, docs/PROTOCOL.md "ISS"
 * and "Checkpoints").
 *
 * When checkpoint/<E> reports a stable checkpoint, ISS keeps it as the last stable one, tells the
 * application (CheckpointNotice through the batch fetcher) and garbage-collects everything of the
 * epochs below E - retained_epochs. Every push period it sends that checkpoint to the members
 * whose last known epoch (EpochProgress, fed by the checkpoint instances) lags more than
 * retained_epochs behind it.
 *
 * A node that receives a stable checkpoint ahead of its current epoch (peers push only to
 * members that PBFT's catch-up cannot bring along) checks it strictly before installing it:
 * structure; the epoch configuration is ours (the membership is static) with a leader policy
 * that decodes and gives exactly the epoch's length; signers are members of the epoch before,
 * unique, sorted, and hold a strong quorum of weight; the snapshot hash is recomputed from the
 * content; finally every signature is verified by the crypto module (VerifyManyRequest). A
 * strong quorum of valid signatures contains a correct node, which signed only the state it
 * computed itself, so the installed state is the one every correct node has at that sn.
 *
 * Invariants: at most one verification in flight per member (transfer_pending), so contexts and
 * the checkpoints they hold are bounded by the membership; gc_index only grows, and the push
 * repeat always carries the current gc_index as its retention index so that the timer's GC never
 * cancels it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "iss_internal.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.pb-c.h"
#include "mir/log.h"
#include "trantor_common.h"
#include "wal.h"

/* A state transfer whose signatures are at the crypto module. */
typedef struct iss_transfer {
  size_t member;                   /* index of the sender */
  bool rejoin;                     /* an answer to this replica's RejoinRequest */
  Trantor__StableCheckpoint *chkp; /* owned until installed */
} iss_transfer;

static void iss_transfer_free(void *p) {
  iss_transfer *t = p;
  if (t->chkp != NULL) protobuf_c_message_free_unpacked(&t->chkp->base, NULL);
  free(t);
}

/* ---- garbage collection and notices ---- */

void miri_iss_arm_push(mir_dsl *dsl, iss *s) {
  Trantor__PushCheckpoint *tick = mir_xmalloc(sizeof(*tick));
  trantor__push_checkpoint__init(tick);
  mir_event_list evs = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&evs, mir_event_new(s->id, s->id, &tick->base));
  mir_dsl_emit(dsl, mir_event_timer_repeat(s->timer, s->id, &evs, s->push_period_ms, s->gc_index));
}

/* Garbage-collects every epoch below index (retention indexes are epochs), once per index. */
static void iss_gc(mir_dsl *dsl, iss *s, uint64_t index) {
  if (index <= s->gc_index) return;
  s->gc_index = index;
  mir_gauge_set(s->stats.gc_index, (int64_t)index);
  mir_dsl_emit(dsl, mir_event_garbage_collect(s->ordering, s->id, index));
  mir_dsl_emit(dsl, mir_event_garbage_collect(s->checkpoint, s->id, index));
  mir_dsl_emit(dsl, mir_event_garbage_collect(s->timer, s->id, index));
  /* The timer just cancelled the previous push repeat (its index was lower). */
  miri_iss_arm_push(dsl, s);
  size_t keep = 0;
  for (size_t i = 0; i < s->n_hist; i++) {
    if (s->hist[i].nr >= index) s->hist[keep++] = s->hist[i];
  }
  s->n_hist = keep;
}

/* Sends a CheckpointNotice with a copy of chkp (borrowed) to the batch fetcher, which passes it
 * on to the application at its place in the log. */
static void iss_emit_notice(mir_dsl *dsl, iss *s, const Trantor__StableCheckpoint *chkp) {
  Trantor__CheckpointNotice *n = mir_xmalloc(sizeof(*n));
  trantor__checkpoint_notice__init(n);
  n->checkpoint = (Trantor__StableCheckpoint *)mir_message_clone(&chkp->base);
  mir_dsl_emit_new(dsl, s->batchfetcher, &n->base);
}

static void iss_set_stable(iss *s, Trantor__StableCheckpoint *chkp) {
  if (s->stable != NULL) protobuf_c_message_free_unpacked(&s->stable->base, NULL);
  s->stable = chkp;
  mir_gauge_set(s->stats.stable_epoch, (int64_t)chkp->snapshot->epoch_config->epoch);
}

static uint64_t iss_stable_epoch(const iss *s) {
  return s->stable->snapshot->epoch_config->epoch;
}

void miri_iss_persist_stable(mir_dsl *dsl, iss *s, const Trantor__StableCheckpoint *chkp) {
  uint64_t e = chkp->snapshot->epoch_config->epoch;
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = trantor_wal_stable_key(key);
  Mir__StoreWrite *w = mir_storage_write_new();
  trantor_wal_put(w, key, klen, &chkp->base);
  /* A restart starts at this checkpoint: nothing of the epochs below is needed any more, and
   * deleting it in the same atomic write never leaves a log with neither. */
  trantor_wal_delete_epochs_below(w, e);
  Trantor__CheckpointDurable *d = mir_xmalloc(sizeof(*d));
  trantor__checkpoint_durable__init(d);
  d->epoch = e;
  mir_storage_then(w, mir_event_new(s->id, s->store, &d->base));
  mir_dsl_emit(dsl, mir_event_store_write(s->store, s->id, w));
}

mir_err miri_iss_on_checkpoint_durable(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  const Trantor__CheckpointDurable *d = (const Trantor__CheckpointDurable *)ev->payload;
  if (d->epoch > s->durable_epoch) s->durable_epoch = d->epoch;
  if (s->start_blocked && s->blocked_nr <= s->durable_epoch + s->params.epochs_ahead_max) {
    return miri_iss_start_or_block(dsl, s, s->blocked_nr, s->blocked_first);
  }
  return MIR_OK;
}

mir_err miri_iss_on_checkpoint_stable(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  const Trantor__CheckpointStable *cs = (const Trantor__CheckpointStable *)ev->payload;
  const Trantor__StableCheckpoint *chkp = cs->checkpoint;
  if (chkp == NULL || trantor_snapshot_check(chkp->snapshot) != MIR_OK) {
    return mir_error_set(MIR_EINVAL, "%s: malformed CheckpointStable from %s", s->id, ev->src);
  }
  uint64_t e = chkp->snapshot->epoch_config->epoch;
  if (s->stable != NULL && e <= iss_stable_epoch(s)) return MIR_OK; /* superseded */
  iss_set_stable(s, (Trantor__StableCheckpoint *)mir_message_clone(&chkp->base));
  /* The genesis is every replica's starting point anyway: nothing to write. */
  if (e > 0) miri_iss_persist_stable(dsl, s, s->stable);
  iss_emit_notice(dsl, s, s->stable);
  if (e > s->params.retained_epochs) iss_gc(dsl, s, e - s->params.retained_epochs);
  return MIR_OK;
}

mir_err miri_iss_on_epoch_progress(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  iss *s = user;
  const Trantor__EpochProgress *ep = (const Trantor__EpochProgress *)ev->payload;
  int i = ep->node != NULL ? trantor_member_index(s->membership, ep->node) : -1;
  if (i >= 0 && ep->epoch > s->node_epoch[i]) s->node_epoch[i] = ep->epoch;
  return MIR_OK;
}

/* ---- state transfer: pushing ---- */

mir_err miri_iss_on_push(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)ev;
  iss *s = user;
  miri_iss_rejoin_tick(dsl, s);
  miri_iss_idle_tick(dsl, s);
  if (s->stable == NULL) return MIR_OK;
  uint64_t e = iss_stable_epoch(s);
  const Trantor__Membership *m = s->membership;
  const char **dests = mir_xmalloc(m->n_members * sizeof(*dests));
  size_t n = 0;
  for (size_t i = 0; i < m->n_members; i++) {
    /* Lagging by one or two epochs is PBFT catch-up's job; beyond the retained epochs the
     * instances the node needs are gone, so only a checkpoint can help it. The same holds for any
     * lag below this node's own garbage-collection index: after a restart from its checkpoint (or
     * a state transfer) this node keeps no instance below it, and a laggard that only some peers
     * can still serve might never find the weak quorum of Done it needs. */
    if (strcmp(m->members[i]->id, s->self) != 0 &&
        (s->node_epoch[i] + s->params.retained_epochs < e || s->node_epoch[i] < s->gc_index)) {
      dests[n++] = m->members[i]->id;
    }
  }
  if (n > 0) {
    Trantor__StableCheckpointMsg msg = TRANTOR__STABLE_CHECKPOINT_MSG__INIT;
    msg.checkpoint = s->stable;
    mir_dsl_send(dsl, s->net, dests, n, s->id, &msg.base);
    mir_counter_add(s->stats.pushes, n);
  }
  free(dests);
  return MIR_OK;
}

/* ---- state transfer: receiving ---- */

/* True if a and b (borrowed) list the same members with the same weights. */
static bool iss_membership_equal(const Trantor__Membership *a, const Trantor__Membership *b) {
  if (a->n_members != b->n_members) return false;
  for (size_t i = 0; i < a->n_members; i++) {
    if (strcmp(a->members[i]->id, b->members[i]->id) != 0 ||
        a->members[i]->weight != b->members[i]->weight) {
      return false;
    }
  }
  return true;
}

/* Checks that the epoch configuration of chkp (structure already checked) is one this node can
 * run: our membership, a leader policy of our kind over it, and a length that matches the
 * policy's leaders. */
static mir_err iss_transfer_check_config(const iss *s, const Trantor__StableCheckpoint *chkp) {
  const Trantor__StateSnapshot *snap = chkp->snapshot;
  const Trantor__EpochConfig *ec = snap->epoch_config;
  if (!iss_membership_equal(ec->membership, s->membership)) {
    return mir_error_set(MIR_EPROTO, "checkpoint: membership differs from ours");
  }
  trantor_leader_policy *lp = NULL;
  mir_err err = trantor_lp_from_bytes(snap->leader_policy.data, snap->leader_policy.len, &lp);
  if (err != MIR_OK) return err;
  const char **ids = mir_xmalloc(s->membership->n_members * sizeof(*ids));
  if (trantor_lp_kind_of(lp) != trantor_lp_kind_of(s->policy) ||
      !trantor_lp_membership_equals(lp, ec->membership)) {
    err = mir_error_set(MIR_EPROTO, "checkpoint: leader policy of another kind or membership");
  } else {
    size_t k = trantor_lp_leaders(lp, ids, s->membership->n_members);
    if (ec->length != (uint64_t)k * s->params.segment_length) {
      err = mir_error_set(MIR_EPROTO, "checkpoint: epoch length %" PRIu64 " for %zu leaders",
                          ec->length, k);
    }
  }
  free(ids);
  trantor_lp_free(lp);
  return err;
}

/* Builds the VerifyManyRequest for every signature of chkp (borrowed) over digest. */
static Mir__VerifyManyRequest *iss_verify_request(const Trantor__StableCheckpoint *chkp,
                                                  const uint8_t digest[32]) {
  Mir__VerifyManyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_many_request__init(req);
  req->n_items = chkp->n_cert;
  req->items = mir_xmalloc(chkp->n_cert * sizeof(*req->items));
  for (size_t i = 0; i < chkp->n_cert; i++) {
    Mir__SignedData *sd = mir_xmalloc(sizeof(*sd));
    mir__signed_data__init(sd);
    sd->n_data = 1;
    sd->data = mir_xmalloc(sizeof(*sd->data));
    sd->data[0].len = 32;
    sd->data[0].data = mir_xmemdup(digest, 32);
    sd->signature.len = chkp->cert[i]->signature.len;
    sd->signature.data = mir_xmemdup(chkp->cert[i]->signature.data, sd->signature.len);
    sd->node_id = mir_xstrdup(chkp->cert[i]->signer);
    req->items[i] = sd;
  }
  return req;
}

static mir_err iss_transfer_drop(iss *s, const char *from, const char *why) {
  mir_counter_inc(s->stats.transfer_dropped);
  mir_log(MIR_LOG_DEBUG, ISS_LOG, "%s: dropping StableCheckpointMsg from %.64s: %s", s->self, from,
          why);
  return MIR_OK;
}

mir_err miri_iss_check_foreign(const iss *s, const Trantor__StableCheckpoint *chkp,
                               uint8_t digest[32]) {
  if (chkp == NULL || chkp->snapshot == NULL || chkp->snapshot->epoch_config == NULL) {
    return mir_error_set(MIR_EPROTO, "no epoch config");
  }
  /* The signers of epoch e's checkpoint are the members of epoch e - 1: with a static membership,
   * ours. Never the checkpoint's own claim, which would let it certify itself. */
  if (trantor_stable_checkpoint_check(chkp, s->membership, s->hash, digest) != MIR_OK ||
      iss_transfer_check_config(s, chkp) != MIR_OK) {
    return MIR_EPROTO;
  }
  return MIR_OK;
}

mir_err miri_iss_verify_foreign(mir_dsl *dsl, iss *s, size_t member,
                                Trantor__StableCheckpoint *chkp, const uint8_t digest[32],
                                bool rejoin) {
  iss_transfer *t = mir_xcalloc(1, sizeof(*t));
  t->member = member;
  t->rejoin = rejoin;
  t->chkp = chkp;
  uint64_t ctx;
  mir_err err = mir_dsl_store_context(dsl, t, iss_transfer_free, &ctx);
  if (err != MIR_OK) return err; /* bounded by the membership through transfer_pending */
  Mir__VerifyManyRequest *req = iss_verify_request(chkp, digest);
  req->origin = mir_dsl_origin_new(dsl, ctx);
  mir_dsl_emit_new(dsl, s->crypto, &req->base);
  s->transfer_pending[member] = true;
  return MIR_OK;
}

mir_err miri_iss_on_stable_checkpoint_msg(mir_dsl *dsl, const char *from,
                                          const ProtobufCMessage *msg, void *user) {
  iss *s = user;
  const Trantor__StableCheckpoint *chkp = ((const Trantor__StableCheckpointMsg *)msg)->checkpoint;
  int i = trantor_member_index(s->membership, from);
  if (i < 0 || strcmp(from, s->self) == 0) return iss_transfer_drop(s, from, "not a peer");
  if (!s->started) return iss_transfer_drop(s, from, "not started");
  /* A rejoining replica must learn its vote floor first: it takes checkpoints as answers only. */
  if (s->rejoining) return iss_transfer_drop(s, from, "rejoining");
  if (chkp == NULL || chkp->snapshot == NULL || chkp->snapshot->epoch_config == NULL) {
    return iss_transfer_drop(s, from, "no epoch config");
  }
  uint64_t e = chkp->snapshot->epoch_config->epoch;
  if (e <= s->cur.nr) {
    mir_counter_inc(s->stats.transfer_stale); /* not ahead of this node */
    return MIR_OK;
  }
  if (s->transfer_pending[i]) {
    mir_counter_inc(s->stats.transfer_busy);
    return MIR_OK;
  }
  uint8_t digest[32];
  if (miri_iss_check_foreign(s, chkp, digest) != MIR_OK) {
    return iss_transfer_drop(s, from, mir_error_detail());
  }
  Trantor__StableCheckpoint *copy = (Trantor__StableCheckpoint *)mir_message_clone(&chkp->base);
  return miri_iss_verify_foreign(dsl, s, (size_t)i, copy, digest, false);
}

/* Installs a verified checkpoint (takes ownership): the application restores it, the commit log
 * and the epochs below it are dropped, and its epoch starts at its sn. local: read back from this
 * replica's store at start-up rather than received by state transfer. */
static mir_err iss_install(mir_dsl *dsl, iss *s, Trantor__StableCheckpoint *chkp, bool local) {
  const Trantor__StateSnapshot *snap = chkp->snapshot;
  trantor_leader_policy *lp = NULL;
  mir_err err = trantor_lp_from_bytes(snap->leader_policy.data, snap->leader_policy.len, &lp);
  MIR_ASSERT(err == MIR_OK); /* checked before verification, and the bytes did not change */
  trantor_lp_free(s->policy);
  s->policy = lp;
  miri_iss_epoch_clear(s);
  s->n_hist = 0;
  s->genesis_pending = false; /* this epoch replaces the genesis */
  s->start_blocked = false;
  uint64_t e = snap->epoch_config->epoch;
  iss_set_stable(s, chkp);
  if (local) {
    /* Read back from the log: durable already. */
    if (e > s->durable_epoch) s->durable_epoch = e;
  } else {
    miri_iss_persist_stable(dsl, s, chkp);
  }
  Trantor__RestoreState *rs = mir_xmalloc(sizeof(*rs));
  trantor__restore_state__init(rs);
  rs->checkpoint = (Trantor__StableCheckpoint *)mir_message_clone(&chkp->base);
  mir_dsl_emit_new(dsl, s->batchfetcher, &rs->base);
  /* Nothing below the installed epoch can be of use to this node any more. */
  iss_gc(dsl, s, e);
  err = miri_iss_start_epoch(dsl, s, e, chkp->sn);
  if (err != MIR_OK) return err;
  iss_emit_notice(dsl, s, s->stable);
  if (local) {
    mir_counter_inc(s->stats.local_restores);
  } else {
    mir_counter_inc(s->stats.transfers);
  }
  mir_log(MIR_LOG_INFO, ISS_LOG,
          "%s: installed the %s checkpoint of epoch %" PRIu64 " (sn %" PRIu64 ")", s->self,
          local ? "stored" : "transferred", e, chkp->sn);
  return MIR_OK;
}

mir_err miri_iss_install_local(mir_dsl *dsl, iss *s, const Trantor__StableCheckpoint *chkp) {
  uint8_t digest[32];
  if (chkp == NULL || chkp->snapshot == NULL || chkp->snapshot->epoch_config == NULL) {
    return mir_error_set(MIR_EPROTO, "no epoch config");
  }
  /* With a static membership the signers of every checkpoint are our members (as for state
   * transfer); the genesis needs no restoring. */
  if (trantor_stable_checkpoint_check(chkp, s->membership, s->hash, digest) != MIR_OK ||
      iss_transfer_check_config(s, chkp) != MIR_OK) {
    return MIR_EPROTO;
  }
  Trantor__StableCheckpoint *copy = (Trantor__StableCheckpoint *)mir_message_clone(&chkp->base);
  return iss_install(dsl, s, copy, true);
}

mir_err miri_iss_install_foreign(mir_dsl *dsl, iss *s, Trantor__StableCheckpoint *chkp) {
  return iss_install(dsl, s, chkp, false);
}

mir_err miri_iss_on_verify_many(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  const Mir__VerifyManyResult *res = (const Mir__VerifyManyResult *)ev->payload;
  iss_transfer *t = res->origin != NULL ? mir_dsl_context(dsl, res->origin->context_id) : NULL;
  if (t == NULL || t->chkp == NULL) return MIR_OK; /* stale response */
  mir_dsl_dispose_context(dsl, res->origin->context_id);
  s->transfer_pending[t->member] = false;
  bool ok = res->all_ok && res->n_ok == t->chkp->n_cert;
  for (size_t i = 0; ok && i < res->n_ok; i++) ok = res->ok[i];
  if (!ok) mir_counter_inc(s->stats.transfer_bad_sig);
  if (t->rejoin) {
    Trantor__StableCheckpoint *chkp = ok ? t->chkp : NULL;
    if (ok) t->chkp = NULL;
    return miri_iss_rejoin_verified(dsl, s, t->member, chkp);
  }
  if (!ok || s->rejoining) return MIR_OK;
  uint64_t e = t->chkp->snapshot->epoch_config->epoch;
  if (e <= s->cur.nr) {
    mir_counter_inc(s->stats.transfer_stale); /* this node got there meanwhile */
    return MIR_OK;
  }
  Trantor__StableCheckpoint *chkp = t->chkp;
  t->chkp = NULL;
  return iss_install(dsl, s, chkp, false);
}
