/*
 * checkpoint/<e>: signs and collects the checkpoint of one epoch (checkpoint.h, docs/PROTOCOL.md
 * "Checkpoints").
 *
 * Life of an instance: Snapshot -> snapshot hash -> SignRequest -> own signature -> CheckpointMsg
 * to the other signers (again every resend_ms until stable) ; CheckpointMsg from a signer ->
 * ingress checks -> EpochProgress to ISS -> parked until the own hash is known -> hash compared
 * -> VerifyRequest -> signature counted ; strong quorum by weight -> CheckpointStable, once.
 *
 * Invariants:
 *  - each signer has one slot (peers[i]); a slot leaves PEER_NONE once and never returns, so a
 *    sender costs at most one verification however many messages it sends;
 *  - weight == the sum of the weights of slots in PEER_ACCEPTED (the own one included);
 *  - stable is set once, with snapshot present and weight >= the signers' strong quorum;
 *  - live contexts <= signers + 1 (one verification per slot, one signing).
 * Peer input never reaches an assertion: every field of a CheckpointMsg is checked first and a
 * bad message is dropped and counted.
 */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.pb-c.h"
#include "mir/log.h"
#include "mir/registry.h"
#include "mir/timer.h"
#include "trantor_common.h"
#include "wal.h"

#define CHKP_LOG "checkpoint"

typedef enum chkp_peer_state {
  PEER_NONE = 0,  /* nothing received yet */
  PEER_PARKED,    /* received before the own hash was known */
  PEER_VERIFYING, /* signature at the crypto module */
  PEER_ACCEPTED,  /* verified signature, counted */
  PEER_REJECTED,  /* wrong hash or bad signature: this sender is not heard again */
  PEER_LATE       /* arrived after the checkpoint became stable */
} chkp_peer_state;

typedef struct chkp_peer {
  chkp_peer_state state;
  uint8_t hash[32];        /* PARKED: the snapshot hash it sent */
  ProtobufCBinaryData sig; /* PARKED, VERIFYING, ACCEPTED: owned */
} chkp_peer;

typedef struct chkp {
  char id[MIR_MODULE_ID_MAX];
  char self[MIR_MODULE_ID_MAX];
  char iss[MIR_MODULE_ID_MAX], crypto[MIR_MODULE_ID_MAX];
  char net[MIR_MODULE_ID_MAX], timer[MIR_MODULE_ID_MAX];
  trantor_hash_fn hash;
  Trantor__CheckpointParams *params; /* owned copy */
  uint64_t epoch, sn;
  trantor_quorum q;                 /* of the signers */
  long self_index;                  /* among the signers, or -1 */
  chkp_peer *peers;                 /* one per signer, in signer order */
  int sign_marker;                  /* its address is the signing context */
  Trantor__StateSnapshot *snapshot; /* owned, once the Snapshot arrived */
  uint8_t snap_hash[32], digest[32];
  bool own_signed, stable;
  bool own_durable; /* the own signature is in the log: it may be sent (again) directly */
  bool passive;     /* a rejoining replica's instance: collects, never signs */
  char store[MIR_MODULE_ID_MAX];
  uint64_t weight;
  struct {
    mir_counter *dropped, *duplicates, *wrong_hash, *bad_signature; /* peer messages dropped */
    mir_counter *accepted, *stale, *stable;
  } stats; /* in the dsl's set (chkp_metrics_init) */
} chkp;

static void chkp_free(void *p) {
  chkp *c = p;
  if (c == NULL) return;
  for (size_t i = 0; c->peers != NULL && i < c->params->signers->n_members; i++) {
    free(c->peers[i].sig.data);
  }
  free(c->peers);
  if (c->snapshot != NULL) protobuf_c_message_free_unpacked(&c->snapshot->base, NULL);
  if (c->params != NULL) protobuf_c_message_free_unpacked(&c->params->base, NULL);
  free(c);
}

static const Trantor__Membership *chkp_signers(const chkp *c) {
  return c->params->signers;
}

static mir_err chkp_drop(chkp *c, const char *from, const char *why) {
  mir_counter_inc(c->stats.dropped);
  mir_log(MIR_LOG_DEBUG, CHKP_LOG, "%s: dropping CheckpointMsg from %.64s: %s", c->id, from, why);
  return MIR_OK;
}

/* ---- sending ---- */

/* The SendMessage of the own CheckpointMsg to every other signer (to = -1), or as an answer to
 * signer `to`, or NULL when there is nobody to send it to. Returns owned. */
static mir_event *chkp_own_msg_event(chkp *c, long to) {
  const Trantor__Membership *s = chkp_signers(c);
  const char **dests = mir_xmalloc(s->n_members * sizeof(*dests));
  size_t n = 0;
  for (size_t i = 0; i < s->n_members; i++) {
    if ((long)i != c->self_index && (to < 0 || (long)i == to)) dests[n++] = s->members[i]->id;
  }
  Trantor__CheckpointMsg msg = TRANTOR__CHECKPOINT_MSG__INIT;
  msg.epoch = c->epoch;
  msg.sn = c->sn;
  msg.snapshot_hash.data = c->snap_hash;
  msg.snapshot_hash.len = 32;
  msg.signature = c->peers[c->self_index].sig;
  msg.answer = to >= 0;
  mir_event *ev = n > 0 ? mir_event_send_message(c->net, c->id, dests, n, c->id, &msg.base) : NULL;
  free(dests);
  return ev;
}

/* Sends the own CheckpointMsg (durable) to every other signer, or to signer `to`. */
static void chkp_broadcast(mir_dsl *dsl, chkp *c, long to) {
  mir_event *ev = chkp_own_msg_event(c, to);
  if (ev != NULL) mir_dsl_emit(dsl, ev);
}

/* Builds the certificate of every accepted signature, sorted by signer (signers are sorted). */
static void chkp_fill_cert(const chkp *c, Trantor__StableCheckpoint *sc) {
  const Trantor__Membership *s = chkp_signers(c);
  sc->cert = mir_xcalloc(s->n_members, sizeof(*sc->cert));
  for (size_t i = 0; i < s->n_members; i++) {
    if (c->peers[i].state != PEER_ACCEPTED) continue;
    Trantor__CheckpointSignature *cs = mir_xmalloc(sizeof(*cs));
    trantor__checkpoint_signature__init(cs);
    cs->signer = mir_xstrdup(s->members[i]->id);
    cs->signature.len = c->peers[i].sig.len;
    cs->signature.data = mir_xmemdup(c->peers[i].sig.data, c->peers[i].sig.len);
    sc->cert[sc->n_cert++] = cs;
  }
  if (sc->n_cert == 0) {
    free(sc->cert);
    sc->cert = NULL;
  }
}

/* Emits CheckpointStable once the quorum is there (or at once for the genesis, epoch 0, whose
 * state every node starts from and which therefore needs no signatures). */
static void chkp_check_stable(mir_dsl *dsl, chkp *c) {
  if (c->stable || c->snapshot == NULL) return;
  if (c->epoch != 0 && c->weight < c->q.strong) return;
  c->stable = true;
  mir_counter_inc(c->stats.stable);
  Trantor__StableCheckpoint *sc = mir_xmalloc(sizeof(*sc));
  trantor__stable_checkpoint__init(sc);
  sc->sn = c->sn;
  sc->snapshot = (Trantor__StateSnapshot *)mir_message_clone(&c->snapshot->base);
  if (c->epoch != 0) chkp_fill_cert(c, sc);
  Trantor__CheckpointStable *ev = mir_xmalloc(sizeof(*ev));
  trantor__checkpoint_stable__init(ev);
  ev->checkpoint = sc;
  mir_dsl_emit_new(dsl, c->iss, &ev->base);
}

/* Asks the crypto module to verify peer i's signature over the digest. */
static mir_err chkp_request_verify(mir_dsl *dsl, chkp *c, size_t i) {
  uint64_t ctx;
  mir_err err = mir_dsl_store_context(dsl, &c->peers[i], NULL, &ctx);
  if (err != MIR_OK) return err; /* bounded by signers + 1 by construction */
  Mir__VerifyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_request__init(req);
  req->n_data = 1;
  req->data = mir_xmalloc(sizeof(*req->data));
  req->data[0].len = 32;
  req->data[0].data = mir_xmemdup(c->digest, 32);
  req->signature.len = c->peers[i].sig.len;
  req->signature.data = mir_xmemdup(c->peers[i].sig.data, c->peers[i].sig.len);
  req->node_id = mir_xstrdup(chkp_signers(c)->members[i]->id);
  req->origin = mir_dsl_origin_new(dsl, ctx);
  mir_dsl_emit_new(dsl, c->crypto, &req->base);
  c->peers[i].state = PEER_VERIFYING;
  return MIR_OK;
}

/* A parked message meets the own hash: a different hash is a different state, which a correct
 * signer never signs for this epoch, so the sender is not heard again. */
static mir_err chkp_examine(mir_dsl *dsl, chkp *c, size_t i) {
  chkp_peer *p = &c->peers[i];
  MIR_ASSERT(p->state == PEER_PARKED && c->snapshot != NULL);
  if (memcmp(p->hash, c->snap_hash, 32) != 0) {
    mir_counter_inc(c->stats.wrong_hash);
    p->state = PEER_REJECTED;
    free(p->sig.data);
    p->sig.data = NULL;
    p->sig.len = 0;
    return MIR_OK;
  }
  return chkp_request_verify(dsl, c, i);
}

/* ---- handlers ---- */

static void chkp_take_own(mir_dsl *dsl, chkp *c, const ProtobufCBinaryData *sig, bool durable);

/* Copies what the snapshot of this epoch holds: the application's data and client progress from
 * the Snapshot event, the epoch configuration and leader policy from the parameters. */
static Trantor__StateSnapshot *chkp_build_snapshot(const chkp *c, const Trantor__Snapshot *s) {
  Trantor__StateSnapshot *snap = mir_xmalloc(sizeof(*snap));
  trantor__state_snapshot__init(snap);
  snap->app_data.len = s->app_data.len;
  snap->app_data.data = mir_xmemdup(s->app_data.data, s->app_data.len);
  if (s->client_progress != NULL) {
    snap->client_progress = (Trantor__ClientProgress *)mir_message_clone(&s->client_progress->base);
  }
  snap->epoch_config = (Trantor__EpochConfig *)mir_message_clone(&c->params->epoch_config->base);
  snap->leader_policy.len = c->params->leader_policy.len;
  snap->leader_policy.data =
      mir_xmemdup(c->params->leader_policy.data, c->params->leader_policy.len);
  return snap;
}

static mir_err chkp_request_sign(mir_dsl *dsl, chkp *c) {
  uint64_t ctx;
  mir_err err = mir_dsl_store_context(dsl, &c->sign_marker, NULL, &ctx);
  if (err != MIR_OK) return err;
  Mir__SignRequest *req = mir_xmalloc(sizeof(*req));
  mir__sign_request__init(req);
  req->n_data = 1;
  req->data = mir_xmalloc(sizeof(*req->data));
  req->data[0].len = 32;
  req->data[0].data = mir_xmemdup(c->digest, 32);
  req->origin = mir_dsl_origin_new(dsl, ctx);
  mir_dsl_emit_new(dsl, c->crypto, &req->base);
  return MIR_OK;
}

static mir_err chkp_on_snapshot(mir_dsl *dsl, const mir_event *ev, void *user) {
  chkp *c = user;
  const Trantor__Snapshot *s = (const Trantor__Snapshot *)ev->payload;
  if (c->snapshot != NULL) {
    mir_counter_inc(c->stats.stale); /* the first snapshot of the epoch is the one signed */
    return MIR_OK;
  }
  if (s->epoch != c->epoch) {
    return mir_error_set(MIR_EINVAL, "%s: Snapshot for epoch %llu from %s", c->id,
                         (unsigned long long)s->epoch, ev->src);
  }
  c->snapshot = chkp_build_snapshot(c, s);
  trantor_snapshot_hash(c->snapshot, c->hash, c->snap_hash);
  trantor_checkpoint_digest(c->epoch, c->sn, c->snap_hash, c->hash, c->digest);
  mir_err err = MIR_OK;
  if (c->epoch != 0 && c->self_index >= 0 && !c->passive) {
    const Trantor__WalCheckpointSig *old = c->params->recovered;
    if (old == NULL) {
      err = chkp_request_sign(dsl, c);
    } else if (old->snapshot_hash.len != 32 || memcmp(old->snapshot_hash.data, c->snap_hash, 32)) {
      /* The log is the same after a restart, so the state must be: a correct replica never signs
       * two states for one epoch. */
      return mir_error_set(MIR_EIO,
                           "%s: the state at sn %llu differs from the one this replica signed "
                           "before its restart: its log or its application state diverged",
                           c->id, (unsigned long long)c->sn);
    } else {
      chkp_take_own(dsl, c, &old->signature, true);
    }
  }
  for (size_t i = 0; err == MIR_OK && i < chkp_signers(c)->n_members; i++) {
    if (c->peers[i].state == PEER_PARKED) err = chkp_examine(dsl, c, i);
  }
  if (err == MIR_OK) chkp_check_stable(dsl, c);
  return err;
}

static mir_err chkp_on_sign_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  chkp *c = user;
  const Mir__SignResult *res = (const Mir__SignResult *)ev->payload;
  void *ctx = res->origin != NULL ? mir_dsl_context(dsl, res->origin->context_id) : NULL;
  if (ctx != &c->sign_marker || c->own_signed || c->self_index < 0) {
    mir_counter_inc(c->stats.stale);
    return MIR_OK;
  }
  mir_dsl_dispose_context(dsl, res->origin->context_id);
  chkp_take_own(dsl, c, &res->signature, false);
  return MIR_OK;
}

/* Counts the own signature (borrowed) and sends it: recorded first unless it comes from the log
 * (durable), so that a restarted replica finds what it signed. */
static void chkp_take_own(mir_dsl *dsl, chkp *c, const ProtobufCBinaryData *sig, bool durable) {
  c->own_signed = true;
  chkp_peer *own = &c->peers[c->self_index];
  own->state = PEER_ACCEPTED;
  own->sig.len = sig->len;
  own->sig.data = mir_xmemdup(sig->data, sig->len);
  c->weight += chkp_signers(c)->members[c->self_index]->weight;
  c->own_durable = durable;
  if (durable) {
    chkp_broadcast(dsl, c, -1);
  } else {
    Trantor__WalCheckpointSig rec = TRANTOR__WAL_CHECKPOINT_SIG__INIT;
    rec.snapshot_hash = (ProtobufCBinaryData){32, c->snap_hash};
    rec.signature = own->sig;
    uint8_t key[TRANTOR_WAL_KEY_MAX];
    size_t klen = trantor_wal_instance_key(key, c->epoch, TRANTOR_WAL_CHECKPOINT_SEGMENT,
                                           TRANTOR_WAL_CHECKPOINT_SIG, 0, NULL);
    Mir__StoreWrite *w = mir_storage_write_new();
    trantor_wal_put(w, key, klen, &rec.base);
    mir_event *send = chkp_own_msg_event(c, -1);
    if (send != NULL) mir_storage_then(w, send);
    Trantor__CheckpointPersisted *done = mir_xmalloc(sizeof(*done));
    trantor__checkpoint_persisted__init(done);
    mir_storage_then(w, mir_event_new(c->id, c->store, &done->base));
    mir_dsl_emit(dsl, mir_event_store_write(c->store, c->id, w));
  }
  chkp_check_stable(dsl, c);
  if (!c->stable) {
    /* Messages can be lost while a peer is unreachable; re-send until stable (the repeat dies
     * with the epoch's retention index). */
    Trantor__CheckpointTick *tick = mir_xmalloc(sizeof(*tick));
    trantor__checkpoint_tick__init(tick);
    mir_event_list evs = MIR_EVENT_LIST_INIT;
    mir_event_list_push(&evs, mir_event_new(c->id, c->id, &tick->base));
    mir_dsl_emit(dsl,
                 mir_event_timer_repeat(c->timer, c->id, &evs, c->params->resend_ms, c->epoch));
  }
}

static mir_err chkp_on_persisted(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  (void)ev;
  chkp *c = user;
  c->own_durable = true;
  return MIR_OK;
}

static mir_err chkp_on_verify_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  chkp *c = user;
  const Mir__VerifyResult *res = (const Mir__VerifyResult *)ev->payload;
  chkp_peer *p = res->origin != NULL ? mir_dsl_context(dsl, res->origin->context_id) : NULL;
  size_t n = chkp_signers(c)->n_members;
  if (p == NULL || p < c->peers || p >= c->peers + n || p->state != PEER_VERIFYING) {
    mir_counter_inc(c->stats.stale);
    return MIR_OK;
  }
  mir_dsl_dispose_context(dsl, res->origin->context_id);
  size_t i = (size_t)(p - c->peers);
  const Trantor__Member *m = chkp_signers(c)->members[i];
  if (!res->ok || res->node_id == NULL || strcmp(res->node_id, m->id) != 0) {
    mir_counter_inc(c->stats.bad_signature);
    p->state = PEER_REJECTED;
    free(p->sig.data);
    p->sig.data = NULL;
    p->sig.len = 0;
    return MIR_OK;
  }
  p->state = PEER_ACCEPTED;
  mir_counter_inc(c->stats.accepted);
  c->weight += m->weight;
  chkp_check_stable(dsl, c);
  return MIR_OK;
}

static mir_err chkp_on_tick(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)ev;
  chkp *c = user;
  if (!c->stable && c->own_signed && c->own_durable) chkp_broadcast(dsl, c, -1);
  return MIR_OK;
}

/* Tells ISS that `from` reached this epoch (it signed its checkpoint): ISS pushes stable
 * checkpoints to members that lag too far behind. It is reported before the signature is
 * checked: a false claim only spares its sender a checkpoint push, which harms nobody else. */
static void chkp_epoch_progress(mir_dsl *dsl, chkp *c, const char *from) {
  Trantor__EpochProgress *ep = mir_xmalloc(sizeof(*ep));
  trantor__epoch_progress__init(ep);
  ep->node = mir_xstrdup(from);
  ep->epoch = c->epoch;
  mir_dsl_emit_new(dsl, c->iss, &ep->base);
}

static mir_err chkp_on_msg(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                           void *user) {
  chkp *c = user;
  const Trantor__CheckpointMsg *m = (const Trantor__CheckpointMsg *)msg;
  /* Only the previous epoch's members sign this checkpoint (docs/PROTOCOL.md, "Checkpoints"). */
  int i = trantor_member_index(chkp_signers(c), from);
  if (i < 0 || i == c->self_index) return chkp_drop(c, from, "not another signer");
  if (c->epoch == 0) return chkp_drop(c, from, "the genesis is not signed");
  if (m->epoch != c->epoch || m->sn != c->sn) return chkp_drop(c, from, "other epoch or sn");
  if (m->snapshot_hash.len != 32) return chkp_drop(c, from, "hash not 32 bytes");
  if (m->signature.len == 0 || m->signature.len > TRANTOR_SIGNATURE_BYTES_MAX) {
    return chkp_drop(c, from, "signature size");
  }
  chkp_peer *p = &c->peers[i];
  if (p->state != PEER_NONE) {
    mir_counter_inc(c->stats.duplicates);
    /* A signer that keeps sending is not stable yet (it restarted, or lost the own message):
     * it gets the own signature again, once per message it resends (answers are not answered,
     * and a stable instance does not resend, so two stable instances never ping-pong). */
    if (c->stable && c->own_durable && !m->answer &&
        memcmp(m->snapshot_hash.data, c->snap_hash, 32) == 0) {
      chkp_broadcast(dsl, c, i);
    }
    return MIR_OK;
  }
  chkp_epoch_progress(dsl, c, from);
  if (c->stable) {
    p->state = PEER_LATE; /* nothing left to collect, but the sender may need ours */
    if (c->own_durable && !m->answer && memcmp(m->snapshot_hash.data, c->snap_hash, 32) == 0) {
      chkp_broadcast(dsl, c, i);
    }
    return MIR_OK;
  }
  p->state = PEER_PARKED;
  memcpy(p->hash, m->snapshot_hash.data, 32);
  p->sig.len = m->signature.len;
  p->sig.data = mir_xmemdup(m->signature.data, m->signature.len);
  return c->snapshot != NULL ? chkp_examine(dsl, c, (size_t)i) : MIR_OK;
}

/* ---- construction ---- */

static mir_err chkp_check_params(const char *module_id, const Trantor__CheckpointParams *p,
                                 const trantor_checkpoint_config *cfg) {
  if (module_id == NULL || !mir_module_id_valid(module_id)) {
    return mir_error_set(MIR_EINVAL, "checkpoint: invalid module id");
  }
  if (cfg == NULL || cfg->self_id == NULL || cfg->hash == NULL ||
      strlen(cfg->self_id) >= MIR_MODULE_ID_MAX) {
    return mir_error_set(MIR_EINVAL, "%s: config needs self_id and hash", module_id);
  }
  if (p == NULL || p->epoch_config == NULL) {
    return mir_error_set(MIR_EINVAL, "%s: no epoch config", module_id);
  }
  if (trantor_membership_check(p->epoch_config->membership) != MIR_OK ||
      trantor_membership_check(p->signers) != MIR_OK) {
    return mir_error_set(MIR_EINVAL, "%s: %s", module_id, mir_error_detail());
  }
  if (p->resend_ms == 0 || p->resend_ms > MIR_TIMER_DURATION_MS_MAX) {
    return mir_error_set(MIR_EINVAL, "%s: resend_ms out of range", module_id);
  }
  if (p->store == NULL || !mir_module_id_valid(p->store)) {
    return mir_error_set(MIR_EINVAL, "%s: no valid store module id", module_id);
  }
  return MIR_OK;
}

static void chkp_copy_id(char dst[MIR_MODULE_ID_MAX], const char *src, const char *dflt) {
  const char *s = src != NULL ? src : dflt;
  MIR_ASSERT(mir_module_id_valid(s));
  strcpy(dst, s);
}

/* Registers the instance's metrics in set m (the dsl's); the checkpoint factory folds its
 * counters when the instance is collected. */
static void chkp_metrics_init(chkp *c, mir_metrics *m) {
  static const char drop_help[] =
      "Peers' checkpoint messages dropped, by reason (invalid: sender, epoch, sn or sizes; "
      "duplicate; wrong_hash: another snapshot; bad_signature).";
  const char *name = "mir_checkpoint_messages_dropped_total";
  c->stats.dropped = mir_metrics_counter(m, name, drop_help, "reason", "invalid");
  c->stats.duplicates = mir_metrics_counter(m, name, drop_help, "reason", "duplicate");
  c->stats.wrong_hash = mir_metrics_counter(m, name, drop_help, "reason", "wrong_hash");
  c->stats.bad_signature = mir_metrics_counter(m, name, drop_help, "reason", "bad_signature");
  c->stats.accepted = mir_metrics_counter(m, "mir_checkpoint_signatures_accepted_total",
                                          "Peers' checkpoint signatures verified.", NULL, NULL);
  c->stats.stale = mir_metrics_counter(m, "mir_checkpoint_stale_answers_total",
                                       "Responses or events with nothing left to do.", NULL, NULL);
  c->stats.stable =
      mir_metrics_counter(m, "mir_checkpoints_stable_total",
                          "Epoch checkpoints that became stable (a quorum signed).", NULL, NULL);
}

static mir_dsl *chkp_dsl_new(const char *module_id, chkp *c) {
  mir_dsl *dsl = mir_dsl_new(module_id, c);
  chkp_metrics_init(c, mir_dsl_metrics(dsl));
  mir_dsl_set_user_free(dsl, chkp_free);
  mir_dsl_set_message_bytes_max(dsl, TRANTOR_CHECKPOINT_MSG_BYTES_MAX);
  mir_dsl_set_contexts_max(dsl, chkp_signers(c)->n_members + 1);
  mir_err err = mir_dsl_upon_event(dsl, &trantor__snapshot__descriptor, chkp_on_snapshot);
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__sign_result__descriptor, chkp_on_sign_result);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__verify_result__descriptor, chkp_on_verify_result);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__checkpoint_tick__descriptor, chkp_on_tick);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_message(dsl, &trantor__checkpoint_msg__descriptor, chkp_on_msg);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__checkpoint_persisted__descriptor, chkp_on_persisted);
  }
  MIR_ASSERT(err == MIR_OK); /* a handful of registrations, far below the table bound */
  return dsl;
}

mir_err trantor_checkpoint_new(const char *module_id, const Trantor__CheckpointParams *params,
                               const trantor_checkpoint_config *cfg, const mir_module_ops **ops_out,
                               void **state_out) {
  mir_err err = chkp_check_params(module_id, params, cfg);
  if (err != MIR_OK) return err;
  trantor_checkpoint_register_types();
  chkp *c = mir_xcalloc(1, sizeof(*c));
  strcpy(c->id, module_id);
  strcpy(c->self, cfg->self_id);
  chkp_copy_id(c->iss, cfg->iss_id, "iss");
  chkp_copy_id(c->crypto, cfg->crypto_id, "crypto");
  chkp_copy_id(c->net, cfg->net_id, "net");
  chkp_copy_id(c->timer, cfg->timer_id, "timer");
  c->hash = cfg->hash;
  c->params = (Trantor__CheckpointParams *)mir_message_clone(&params->base);
  chkp_copy_id(c->store, params->store, "store");
  c->passive = params->passive;
  c->epoch = params->epoch_config->epoch;
  c->sn = params->epoch_config->first_sn;
  trantor_quorum_of(params->signers, &c->q);
  c->self_index = trantor_member_index(params->signers, cfg->self_id);
  c->peers = mir_xcalloc(params->signers->n_members, sizeof(*c->peers));
  *ops_out = &mir_dsl_ops;
  *state_out = chkp_dsl_new(module_id, c);
  return MIR_OK;
}

void trantor_checkpoint_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &trantor__checkpoint_params__descriptor,
      &trantor__checkpoint_tick__descriptor,
      &trantor__checkpoint_msg__descriptor,
      &trantor__checkpoint_persisted__descriptor,
  };
  mir_err err = mir_registry_add_all(types, sizeof(types) / sizeof(types[0]));
  MIR_ASSERT(err == MIR_OK); /* a few types, far below the registry's bound */
}
