/*
 * PBFT segment orderer: view changes, from the node's side and the new primary's.
 *
 * A node moving to view v (own timeout, or the join rule) forgets its per-view state, signs a
 * ViewChange with its P-set (per sn: the latest view it prepared in, with the digest) and Q-set
 * (per sn and digest: the latest view it preprepared it in), sends it to every member and resends
 * it every view_change_resend_ms until it adopts a NewView (Castro and Liskov, TOCS 2002,
 * section 4.4). View changes go to all members, not only the new primary, so that the join rule
 * works: a node that sees view changes of a weak quorum (by weight) for views above its own moves
 * to the smallest of them (OSDI 1999, section 4.5.2); a weak quorum holds a correct node, so
 * Byzantine nodes alone cannot push views forward.
 *
 * The primary of v verifies the signature of every view change for v it receives (one stored per
 * sender, the latest), and once the verified ones have a strong quorum of weight it decides every
 * sn (miri_pbft_decide): the digest prepared in the highest view that satisfies A1 and A2 must be
 * re-proposed; an sn with no P-set entry at a strong quorum is free (B). It fetches re-proposals
 * it does not hold from the nodes whose Q-sets show them (PreprepareRequest, answered by
 * MissingPreprepare, accepted only for an sn it asked for and only with the decided digest), then
 * sends NewView(v, view changes, re-proposals) to all. A node that still sends view changes for v
 * after that gets the NewView again at the next tick.
 *
 * Safety of the decision: if a digest d committed at sn in view v' (strong quorum prepared), any
 * strong quorum of view changes contains a correct node whose P-set entry for sn has a view
 * >= v'; A1 for another digest needs a strong quorum whose entries do not contradict it, which
 * forces a higher view, and A2 needs a correct node that preprepared it there, which only happens
 * for d (induction on views). B needs a strong quorum without any entry, impossible after a
 * commit. So a committed digest is always re-proposed.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "pbft_internal.h"

/* ---- the own view change ---- */

static int pbft_known_order(const pbft_known *a, const pbft_known *b) {
  if (a->view != b->view) return a->view < b->view ? -1 : 1;
  return memcmp(a->digest, b->digest, PBFT_DIGEST);
}

static Trantor__PSetEntry *pbft_pset_entry(const pbft_slot *s) {
  Trantor__PSetEntry *e = mir_xmalloc(sizeof(*e));
  trantor__pset_entry__init(e);
  e->sn = s->sn;
  e->view = s->p_view;
  e->digest.len = PBFT_DIGEST;
  e->digest.data = mir_xmemdup(s->p_digest, PBFT_DIGEST);
  return e;
}

/* Appends the Q-set entries of slot s, sorted by (view, digest), at q[*n]. */
static void pbft_qset_entries(const pbft_slot *s, Trantor__QSetEntry **q, size_t *n) {
  const pbft_known *sorted[TRANTOR_PBFT_KNOWN_PER_SN_MAX];
  size_t m = 0;
  for (size_t k = 0; k < s->n_known; k++) {
    if (!s->known[k].in_qset) continue;
    size_t j = m++; /* insertion sort of at most KNOWN_PER_SN_MAX entries */
    while (j > 0 && pbft_known_order(sorted[j - 1], &s->known[k]) > 0) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = &s->known[k];
  }
  for (size_t j = 0; j < m; j++) {
    Trantor__QSetEntry *e = mir_xmalloc(sizeof(*e));
    trantor__qset_entry__init(e);
    e->sn = s->sn;
    e->view = sorted[j]->view;
    e->digest.len = PBFT_DIGEST;
    e->digest.data = mir_xmemdup(sorted[j]->digest, PBFT_DIGEST);
    q[(*n)++] = e;
  }
}

/* The node's view change for the current view: an owned tree. */
static Trantor__ViewChange *pbft_build_view_change(const pbft *p) {
  Trantor__ViewChange *vc = mir_xmalloc(sizeof(*vc));
  trantor__view_change__init(vc);
  vc->view = p->view;
  size_t np = 0, nq = 0;
  for (size_t i = 0; i < p->L; i++) {
    np += p->slots[i].has_p ? 1 : 0;
    for (size_t k = 0; k < p->slots[i].n_known; k++) nq += p->slots[i].known[k].in_qset ? 1 : 0;
  }
  vc->pset = np ? mir_xmalloc(np * sizeof(*vc->pset)) : NULL;
  vc->qset = nq ? mir_xmalloc(nq * sizeof(*vc->qset)) : NULL;
  for (size_t i = 0; i < p->L; i++) {
    const pbft_slot *s = &p->slots[i];
    if (s->has_p) vc->pset[vc->n_pset++] = pbft_pset_entry(s);
    pbft_qset_entries(s, vc->qset, &vc->n_qset);
  }
  MIR_ASSERT(vc->n_pset == np && vc->n_qset == nq);
  return vc;
}

static void pbft_request_signature(pbft *p) {
  if (p->sign_pending) mir_dsl_dispose_context(p->dsl, p->sign_ctx); /* lost or outdated */
  p->sign_pending = false;
  pbft_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->kind = PBFT_CTX_SIGN_VC;
  c->view = p->view;
  c->vc = pbft_build_view_change(p);
  uint8_t h[PBFT_DIGEST];
  trantor_pbft_view_change_hash(p->hash, c->vc, h);
  uint64_t id;
  if (!miri_pbft_store_ctx(p, c, &id)) return; /* retried at the next tick */
  Mir__SignRequest *req = mir_xmalloc(sizeof(*req));
  mir__sign_request__init(req);
  req->n_data = 1;
  req->data = mir_xmalloc(sizeof(*req->data));
  req->data[0].len = PBFT_DIGEST;
  req->data[0].data = mir_xmemdup(h, PBFT_DIGEST);
  req->origin = mir_dsl_origin_new(p->dsl, id);
  mir_dsl_emit_new(p->dsl, p->crypto, &req->base);
  p->sign_pending = true;
  p->sign_ctx = id;
  p->sign_tick = p->ticks;
}

void miri_pbft_start_view_change(pbft *p, uint64_t v, bool join) {
  MIR_ASSERT(v > p->view && v <= TRANTOR_PBFT_VIEW_MAX);
  mir_counter_inc(p->st.view_changes);
  if (join) mir_counter_inc(p->st.joins);
  miri_pbft_reset_view_state(p);
  p->view = v;
  p->in_vc = true;
  if (p->my_vc != NULL) protobuf_c_message_free_unpacked(&p->my_vc->base, NULL);
  p->my_vc = NULL;
  p->vc_durable = false;
  miri_pbft_nvb_clear(&p->nvb);
  p->nv_durable = false;
  if (p->adopted_nv != NULL) protobuf_c_message_free_unpacked(&p->adopted_nv->base, NULL);
  p->adopted_nv = NULL;
  p->nv_dirty = true;
  for (size_t i = 0; i < p->n; i++) p->peers[i].nv_resend = p->peers[i].vc_resend = false;
  p->view_timers_armed = false;
  pbft_request_signature(p); /* disposes of the request of an older view */
  miri_pbft_ensure_resend_tick(p);
  miri_pbft_arm_on_vc_quorum(p);
}

void miri_pbft_resume_view_change(pbft *p) {
  MIR_ASSERT(p->in_vc);
  p->view_timers_armed = false;
  pbft_request_signature(p);
  miri_pbft_ensure_resend_tick(p);
  miri_pbft_arm_on_vc_quorum(p);
}

/* PBFT's first liveness rule (OSDI 1999, section 4.5.2): a node in a view change starts the
 * timeouts of its view (no NewView in time: the next view) only once a strong quorum, itself
 * included, has left the views below it. Alone, it waits in its view rather than moving on by
 * itself to ever higher views with ever longer timeouts: a node that enters an epoch before the
 * others times its instances out alone, and would otherwise be several views ahead when the
 * others start their view change, with neither side able to make the other join for a time that
 * grows exponentially.
 *
 * A peer whose latest view change is for a HIGHER view counts too: it has left this view's
 * predecessors as well, and only its latest view change is kept and resent. Counting only equal
 * views deadlocks: with one replica crashed, a correct one that reached view v + 1 (its view-v
 * quorum included the crashed replica's view change) resends only v + 1, while the two others
 * wait in view v for a quorum that can no longer form, too few to make anyone join v + 1
 * (simulator, trantor-4-crash-f seed 293). */
void miri_pbft_arm_on_vc_quorum(pbft *p) {
  if (!p->in_vc || p->view_timers_armed) return;
  uint64_t w = 0;
  for (size_t i = 0; i < p->n; i++) {
    const pbft_peer *pe = &p->peers[i];
    if (i == p->self || (pe->vc != NULL && pe->vc->view_change->view >= p->view)) w += pe->weight;
  }
  if (w < p->q.strong) return;
  miri_pbft_arm_view_timers(p);
}

mir_err miri_pbft_on_sign_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Mir__SignResult *res = (const Mir__SignResult *)ev->payload;
  pbft_ctx *c = miri_pbft_answer_ctx(p, res->origin, PBFT_CTX_SIGN_VC);
  if (c == NULL) return MIR_OK;
  if (c->view != p->view || !p->in_vc || p->my_vc != NULL) {
    mir_counter_inc(p->st.stale_answers);
    return MIR_OK;
  }
  p->sign_pending = false;
  if (res->signature.len == 0 || res->signature.len > TRANTOR_PBFT_SIGNATURE_BYTES_MAX) {
    return mir_error_set(MIR_EPROTO, "%s: crypto returned a signature of %zu bytes", p->mod_id,
                         res->signature.len);
  }
  Trantor__SignedViewChange *svc = mir_xmalloc(sizeof(*svc));
  trantor__signed_view_change__init(svc);
  svc->view_change = c->vc; /* moved out of the context */
  c->vc = NULL;
  svc->signer = mir_xstrdup(p->member_ids[p->self]);
  svc->signature.len = res->signature.len;
  svc->signature.data = mir_xmemdup(res->signature.data, res->signature.len);
  p->my_vc = svc;
  /* The view entered, then the ViewChange: a restarted node never acts in a lower view again.
   * Resends wait until the store says the record is durable. */
  Mir__StoreWrite *w = mir_storage_write_new();
  miri_pbft_wal_view(p, w);
  mir_storage_then(w, miri_pbft_send_all_event(p, &svc->base));
  mir_storage_then(w, miri_pbft_persisted_event(p, MIRI_PBFT_PERSISTED_VIEW_CHANGE));
  miri_pbft_wal_emit(p, w);
  return MIR_OK;
}

/* ---- view changes of others ---- */

/* Join rule (OSDI 1999, section 4.5.2): view changes of a weak quorum of other members for views
 * above the own one move this node to the smallest of those views. */
static void pbft_check_join(pbft *p) {
  uint64_t w = 0, min_v = UINT64_MAX;
  for (size_t i = 0; i < p->n; i++) {
    const pbft_peer *pe = &p->peers[i];
    if (i == p->self || pe->vc == NULL || pe->vc->view_change->view <= p->view) continue;
    w += pe->weight;
    if (pe->vc->view_change->view < min_v) min_v = pe->vc->view_change->view;
  }
  if (w >= p->q.weak) miri_pbft_start_view_change(p, min_v, true);
}

static void pbft_verify_vc(pbft *p, size_t i) {
  pbft_peer *pe = &p->peers[i];
  if (pe->vc_pending) mir_dsl_dispose_context(p->dsl, pe->vc_ctx); /* lost or replaced */
  pe->vc_pending = false;
  pbft_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->kind = PBFT_CTX_VERIFY_VC;
  c->view = pe->vc->view_change->view;
  c->peer = i;
  uint64_t id;
  if (!miri_pbft_store_ctx(p, c, &id)) {
    miri_pbft_drop(p, pe->id, TRANTOR_PBFT_DROP_BUSY, "SignedViewChange");
    protobuf_c_message_free_unpacked(&pe->vc->base, NULL);
    pe->vc = NULL; /* a later resend gets another chance */
    return;
  }
  Mir__VerifyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_request__init(req);
  req->n_data = 1;
  req->data = mir_xmalloc(sizeof(*req->data));
  req->data[0].len = PBFT_DIGEST;
  req->data[0].data = mir_xmemdup(pe->vc_hash, PBFT_DIGEST);
  req->signature.len = pe->vc->signature.len;
  req->signature.data = mir_xmemdup(pe->vc->signature.data, pe->vc->signature.len);
  req->node_id = mir_xstrdup(pe->id);
  req->origin = mir_dsl_origin_new(p->dsl, id);
  mir_dsl_emit_new(p->dsl, p->crypto, &req->base);
  pe->vc_pending = true;
  pe->vc_ctx = id;
  pe->vc_tick = p->ticks;
}

/* Stores the view change of member m (checked, for a view >= the own one). */
static void pbft_store_vc(pbft *p, size_t m, const Trantor__SignedViewChange *svc) {
  pbft_peer *pe = &p->peers[m];
  if (pe->vc != NULL) protobuf_c_message_free_unpacked(&pe->vc->base, NULL);
  pe->vc = (Trantor__SignedViewChange *)mir_message_clone(&svc->base);
  pe->vc_verified = false;
  trantor_pbft_view_change_hash(p->hash, pe->vc->view_change, pe->vc_hash);
  /* Only the primary of that view needs the signature: it forwards the view change. */
  if (miri_pbft_primary(p, pe->vc->view_change->view) == p->self) pbft_verify_vc(p, m);
}

mir_err miri_pbft_on_signed_vc(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                               void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__SignedViewChange *svc = (const Trantor__SignedViewChange *)msg;
  mir_counter_inc(p->st.received); /* view change */
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, "SignedViewChange");
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, "SignedViewChange");
  size_t signer;
  if (!miri_pbft_signed_vc_ok(p, svc, &signer) || signer != (size_t)m) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_MALFORMED, "SignedViewChange");
  }
  uint64_t v = svc->view_change->view;
  pbft_peer *pe = &p->peers[m];
  /* It asks for this view or a lower one: it missed the NewView that ended its view change, and
   * the NewView of this view (certified by its view changes) lets it catch up. A lower view is
   * never built again: left without it, the sender would wait there for good, and with a replica
   * passive the others may lack the quorum to reach it (simulator, trantor-4-swarm-restart seed
   * 9046 before this answer covered lower views). */
  if (v <= p->view && !p->in_vc && p->adopted_nv != NULL) pe->nv_resend = true;
  if (v < p->view) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_OLD_VIEW, "SignedViewChange");
  if (v - p->view > TRANTOR_PBFT_VIEWS_AHEAD_MAX) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_VIEW_AHEAD, "SignedViewChange");
  }
  if (p->in_vc && p->done) pe->vc_resend = true; /* it may still need this node's (below) */
  if (pe->vc != NULL && pe->vc->view_change->view >= v) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_DUPLICATE, "SignedViewChange");
  }
  pbft_store_vc(p, (size_t)m, svc);
  pbft_check_join(p);
  miri_pbft_arm_on_vc_quorum(p);
  return MIR_OK;
}

mir_err miri_pbft_on_verify_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Mir__VerifyResult *res = (const Mir__VerifyResult *)ev->payload;
  pbft_ctx *c = miri_pbft_answer_ctx(p, res->origin, PBFT_CTX_VERIFY_VC);
  if (c == NULL) return MIR_OK;
  pbft_peer *pe = &p->peers[c->peer];
  pe->vc_pending = false;
  if (pe->vc == NULL || pe->vc->view_change->view != c->view || pe->vc_verified) {
    mir_counter_inc(p->st.stale_answers); /* replaced by a later view change meanwhile */
    return MIR_OK;
  }
  if (!res->ok) {
    miri_pbft_drop(p, pe->id, TRANTOR_PBFT_DROP_BAD_SIGNATURE, "SignedViewChange");
    protobuf_c_message_free_unpacked(&pe->vc->base, NULL);
    pe->vc = NULL;
    return MIR_OK;
  }
  pe->vc_verified = true;
  p->nv_dirty = true;
  return MIR_OK;
}

/* ---- the decision (TOCS 2002, section 4.4) ---- */

/* A1: view changes of a strong quorum have no P-set entry for sn, or one of a lower view, or
 * exactly (view, digest). */
static bool pbft_a1(const pbft *p, Trantor__SignedViewChange *const *vcs, const uint64_t *w,
                    size_t n, uint64_t sn, uint64_t view, const uint8_t *digest) {
  uint64_t sum = 0;
  for (size_t a = 0; a < n; a++) {
    const Trantor__PSetEntry *e = miri_pbft_pset_find(vcs[a]->view_change, sn);
    if (e == NULL || e->view < view ||
        (e->view == view && memcmp(e->digest.data, digest, PBFT_DIGEST) == 0)) {
      sum += w[a];
    }
  }
  return sum >= p->q.strong;
}

/* A2: view changes of a weak quorum preprepared (sn, digest) in view >= `view`. */
static bool pbft_a2(const pbft *p, Trantor__SignedViewChange *const *vcs, const uint64_t *w,
                    size_t n, uint64_t sn, uint64_t view, const uint8_t *digest) {
  uint64_t sum = 0;
  for (size_t a = 0; a < n; a++) {
    uint64_t qv;
    if (miri_pbft_qset_view(vcs[a]->view_change, sn, digest, &qv) && qv >= view) sum += w[a];
  }
  return sum >= p->q.weak;
}

/* True if candidate (view, digest) ranks before the current choice: higher view, then the
 * smaller digest, so that the choice does not depend on the order of the view changes. */
static bool pbft_better(const pbft_decision *cur, uint64_t view, const uint8_t *digest) {
  if (cur->kind != PBFT_DEC_DIGEST) return true;
  if (view != cur->view) return view > cur->view;
  return memcmp(digest, cur->digest, PBFT_DIGEST) < 0;
}

static void pbft_decide_sn(const pbft *p, Trantor__SignedViewChange *const *vcs, const uint64_t *w,
                           size_t n, uint64_t sn, pbft_decision *out) {
  memset(out, 0, sizeof(*out));
  for (size_t a = 0; a < n; a++) {
    const Trantor__PSetEntry *e = miri_pbft_pset_find(vcs[a]->view_change, sn);
    if (e == NULL || !pbft_better(out, e->view, e->digest.data)) continue;
    if (pbft_a1(p, vcs, w, n, sn, e->view, e->digest.data) &&
        pbft_a2(p, vcs, w, n, sn, e->view, e->digest.data)) {
      out->kind = PBFT_DEC_DIGEST;
      out->view = e->view;
      memcpy(out->digest, e->digest.data, PBFT_DIGEST);
    }
  }
  if (out->kind == PBFT_DEC_DIGEST) return;
  uint64_t none = 0; /* B: nothing prepared at a strong quorum, so nothing committed */
  for (size_t a = 0; a < n; a++) {
    if (miri_pbft_pset_find(vcs[a]->view_change, sn) == NULL) none += w[a];
  }
  if (none >= p->q.strong) out->kind = PBFT_DEC_FREE;
}

bool miri_pbft_decide(const pbft *p, Trantor__SignedViewChange *const *vcs, size_t n_vcs,
                      pbft_decision *out) {
  MIR_ASSERT(n_vcs <= p->n);
  uint64_t w[TRANTOR_MEMBERS_MAX];
  for (size_t a = 0; a < n_vcs; a++)
    w[a] = trantor_member_weight(p->params->membership, vcs[a]->signer);
  bool all = true;
  for (size_t i = 0; i < p->L; i++) {
    pbft_decide_sn(p, vcs, w, n_vcs, p->slots[i].sn, &out[i]);
    all = all && out[i].kind != PBFT_DEC_UNDECIDED;
  }
  return all;
}

/* ---- the new primary ---- */

void miri_pbft_nvb_clear(pbft_nv_build *b) {
  for (size_t a = 0; a < b->n_vcs; a++) protobuf_c_message_free_unpacked(&b->vcs[a]->base, NULL);
  free(b->vcs);
  free(b->dec);
  if (b->nv != NULL) protobuf_c_message_free_unpacked(&b->nv->base, NULL);
  memset(b, 0, sizeof(*b));
}

/* Decides with the verified view changes for the current view once they have a strong quorum;
 * the set is frozen once every sn is decided. */
static bool pbft_try_decide(pbft *p) {
  Trantor__SignedViewChange *vcs[TRANTOR_MEMBERS_MAX];
  size_t n = 0;
  uint64_t w = 0;
  for (size_t i = 0; i < p->n; i++) {
    const pbft_peer *pe = &p->peers[i];
    if (pe->vc == NULL || !pe->vc_verified || pe->vc->view_change->view != p->view) continue;
    vcs[n++] = pe->vc;
    w += pe->weight;
  }
  if (w < p->q.strong) return false;
  pbft_decision *dec = mir_xcalloc(p->L, sizeof(*dec));
  if (!miri_pbft_decide(p, vcs, n, dec)) {
    free(dec); /* wait for more view changes */
    return false;
  }
  pbft_nv_build *b = &p->nvb;
  b->dec = dec;
  b->vcs = mir_xmalloc(n * sizeof(*b->vcs));
  for (size_t a = 0; a < n; a++) {
    b->vcs[a] = (Trantor__SignedViewChange *)mir_message_clone(&vcs[a]->base);
  }
  b->n_vcs = n;
  b->decided = true;
  return true;
}

/* Asks the holders of every re-proposal the primary lacks (all of them when `again`). Returns
 * true if nothing is missing. */
static bool pbft_fetch_missing(pbft *p, bool again) {
  pbft_nv_build *b = &p->nvb;
  bool complete = true;
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    if (b->dec[i].kind != PBFT_DEC_DIGEST || miri_pbft_known_find(s, b->dec[i].digest)) continue;
    complete = false;
    if (s->nv_requested && !again) continue;
    s->nv_requested = true;
    const char *holders[TRANTOR_MEMBERS_MAX];
    size_t nh = 0;
    for (size_t a = 0; a < b->n_vcs; a++) {
      uint64_t qv;
      if (miri_pbft_qset_view(b->vcs[a]->view_change, s->sn, b->dec[i].digest, &qv) &&
          qv >= b->dec[i].view && strcmp(b->vcs[a]->signer, p->member_ids[p->self]) != 0) {
        holders[nh++] = b->vcs[a]->signer;
      }
    }
    Trantor__PreprepareRequest r = TRANTOR__PREPREPARE_REQUEST__INIT;
    r.sn = s->sn;
    r.digest = (ProtobufCBinaryData){PBFT_DIGEST, b->dec[i].digest};
    if (nh > 0) mir_dsl_send(p->dsl, p->net, holders, nh, p->mod_id, &r.base);
  }
  return complete;
}

static void pbft_send_new_view(pbft *p) {
  pbft_nv_build *b = &p->nvb;
  Trantor__NewView *nv = mir_xmalloc(sizeof(*nv));
  trantor__new_view__init(nv);
  nv->view = p->view;
  nv->view_changes = b->vcs; /* moved: the NewView forwards exactly the deciding set */
  nv->n_view_changes = b->n_vcs;
  b->vcs = NULL;
  b->n_vcs = 0;
  size_t np = 0;
  for (size_t i = 0; i < p->L; i++) np += b->dec[i].kind == PBFT_DEC_DIGEST ? 1 : 0;
  nv->preprepares = np ? mir_xmalloc(np * sizeof(*nv->preprepares)) : NULL;
  for (size_t i = 0; i < p->L; i++) {
    if (b->dec[i].kind != PBFT_DEC_DIGEST) continue;
    const pbft_known *k = miri_pbft_known_find(&p->slots[i], b->dec[i].digest);
    MIR_ASSERT(k != NULL);
    nv->preprepares[nv->n_preprepares++] =
        miri_pbft_preprepare_new(p->slots[i].sn, p->view, k->aborted, &k->cert);
  }
  b->nv = nv;
  b->sent = true;
  /* Recorded before it leaves: a restarted primary resends this NewView, never another. */
  Mir__StoreWrite *w = mir_storage_write_new();
  miri_pbft_wal_new_view(p, w, nv);
  mir_storage_then(w, miri_pbft_send_all_event(p, &nv->base));
  mir_storage_then(w, miri_pbft_persisted_event(p, MIRI_PBFT_PERSISTED_NEW_VIEW));
  miri_pbft_wal_emit(p, w);
}

void miri_pbft_new_view_progress(pbft *p) {
  if (!p->in_vc || p->self != miri_pbft_primary(p, p->view)) return;
  pbft_nv_build *b = &p->nvb;
  if (b->view != p->view) {
    miri_pbft_nvb_clear(b);
    b->view = p->view;
  }
  if (b->sent) return;
  if (!b->decided) {
    if (!p->nv_dirty) return;
    p->nv_dirty = false;
    if (!pbft_try_decide(p)) return;
  }
  if (!pbft_fetch_missing(p, false)) return;
  pbft_send_new_view(p);
}

/* Asks again for the checks of view changes whose answers were lost. */
static void pbft_verify_lost(pbft *p) {
  for (size_t i = 0; i < p->n; i++) {
    const pbft_peer *pe = &p->peers[i];
    if (pe->vc != NULL && pe->vc_pending && p->ticks - pe->vc_tick >= PBFT_ANSWER_TICKS) {
      pbft_verify_vc(p, i);
    }
  }
}

/* The own view change goes to everyone at every tick, until the node committed every sn: then it
 * needs no new view itself, and sends it only to peers whose view changes show they are in one
 * too (their quorum may need it). Otherwise a node that caught up by Done while in a view change
 * nobody joined (the others went on in the view) would resend it for as long as the segment is
 * kept: for good in an idle cluster, whose epochs no longer advance. */
static void pbft_resend_own_view_change(pbft *p) {
  if (!p->in_vc || p->my_vc == NULL || !p->vc_durable) return;
  if (!p->done) {
    miri_pbft_send_all(p, &p->my_vc->base);
    return;
  }
  for (size_t i = 0; i < p->n; i++) {
    if (!p->peers[i].vc_resend) continue;
    p->peers[i].vc_resend = false;
    miri_pbft_send_to(p, i, &p->my_vc->base);
  }
}

void miri_pbft_view_change_tick(pbft *p) {
  pbft_resend_own_view_change(p);
  if (p->in_vc && p->my_vc == NULL &&
      (!p->sign_pending || p->ticks - p->sign_tick >= PBFT_ANSWER_TICKS)) {
    pbft_request_signature(p);
  }
  pbft_verify_lost(p);
  pbft_nv_build *b = &p->nvb;
  if (p->in_vc && b->view == p->view && b->decided && !b->sent) pbft_fetch_missing(p, true);
  /* The NewView to peers that missed it: the primary's own once it is durable, or the one this
   * node adopted (a relay needs no record: it says nothing of its own). */
  const Trantor__NewView *nv = NULL;
  if (b->sent && b->view == p->view && p->nv_durable) nv = b->nv;
  if (nv == NULL && !p->in_vc && p->adopted_nv != NULL) nv = p->adopted_nv;
  for (size_t i = 0; nv != NULL && i < p->n; i++) {
    if (!p->peers[i].nv_resend) continue;
    p->peers[i].nv_resend = false;
    miri_pbft_send_to(p, i, &nv->base);
  }
}

/* ---- fetching re-proposals ---- */

mir_err miri_pbft_on_preprepare_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                        void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__PreprepareRequest *r = (const Trantor__PreprepareRequest *)msg;
  const char *what = "PreprepareRequest";
  mir_counter_inc(p->st.received); /* preprepare request */
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, what);
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, what);
  size_t i = miri_pbft_slot_of(p, r->sn);
  if (i == PBFT_NONE) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_SN, what);
  if (!miri_pbft_digest_ok(&r->digest)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_DIGEST, what);
  }
  /* Only the primary this node waits for needs re-proposals. */
  if (!p->in_vc || (size_t)m != miri_pbft_primary(p, p->view)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  }
  const pbft_known *k = miri_pbft_known_find(&p->slots[i], r->digest.data);
  if (k == NULL) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  Trantor__MissingPreprepare mp = TRANTOR__MISSING_PREPREPARE__INIT;
  Trantor__Preprepare pp;
  miri_pbft_known_preprepare(k, r->sn, &pp);
  mp.preprepare = &pp;
  miri_pbft_send_to(p, (size_t)m, &mp.base);
  return MIR_OK;
}

mir_err miri_pbft_on_missing_preprepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                        void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__MissingPreprepare *mp = (const Trantor__MissingPreprepare *)msg;
  const char *what = "MissingPreprepare";
  mir_counter_inc(p->st.received); /* missing preprepare */
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, what);
  if (trantor_member_index(p->params->membership, from) < 0) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, what);
  }
  size_t i;
  trantor_pbft_drop bad = miri_pbft_check_preprepare(p, mp->preprepare, &i);
  if (bad != TRANTOR_PBFT_DROP_KINDS) return miri_pbft_drop(p, from, bad, what);
  const pbft_nv_build *b = &p->nvb;
  /* Accepted only while building the NewView of this view and for an sn it asked for (the
   * reference dereferenced missing state here: its item 16). */
  if (!p->in_vc || b->view != p->view || !b->decided || b->sent ||
      b->dec[i].kind != PBFT_DEC_DIGEST || !p->slots[i].nv_requested) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  }
  if (miri_pbft_known_find(&p->slots[i], b->dec[i].digest) != NULL) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_DUPLICATE, what);
  }
  const Trantor__Preprepare *pp = mp->preprepare;
  uint8_t d[PBFT_DIGEST];
  trantor_pbft_preprepare_digest(p->hash, pp->sn, pp->aborted, pp->cert.data, pp->cert.len, d);
  if (memcmp(d, b->dec[i].digest, PBFT_DIGEST) != 0) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  }
  if (miri_pbft_known_add(p, i, d, pp->aborted, &pp->cert, NULL) == NULL) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BUSY, what);
  }
  return MIR_OK;
}
