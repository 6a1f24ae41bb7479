/*
 * PBFT segment orderer: checking and adopting a NewView.
 *
 * A NewView(v) is adopted only after every check passed (Castro and Liskov, TOCS 2002, section
 * 4.4, and the gaps of the reference closed, its item 15): v is
 * above the own view (or equal to it while waiting for that NewView) and within the bounded
 * distance; it carries view changes of distinct members, each for exactly v, well formed, with
 * a strong quorum of weight; deciding every sn from exactly those view changes leaves none
 * undecided; the re-proposals are exactly the decided sns, in ascending order, each for view v
 * with the decided digest; and every signature verifies (one VerifyManyRequest). Only then does
 * the node enter v, take the re-proposals as preprepares of the primary, and replay the messages
 * of v it buffered. Free sns get fresh proposals from the primary afterwards.
 *
 * Any member may deliver a NewView: its content is a function of the signed view changes it
 * carries (the re-proposals are exactly what they decide, with certificates that hash to the
 * decided digests), so who relays it does not matter, and a correct node adopts one NewView per
 * view, so prepares only one digest per sn and view whichever it got. Members that adopted a
 * NewView relay it to peers that keep sending view changes for its view: a node that restarted in
 * the view change, or missed the NewView, gets it even when the primary is gone (crashed, or a
 * rejoining replica that does not vote); waiting for that primary would otherwise leave it stuck,
 * since the others, done with the view change, no longer send the view changes that would let it
 * time out.
 *
 * At most TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX signature checks are in flight, so a primary that
 * floods NewViews only delays itself; a check whose answer is lost is forgotten after a few
 * resend ticks; a correct primary resends its NewView to nodes that still send view changes.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "pbft_internal.h"

/* The view changes of nv: distinct member signers, well formed, all for nv's view, a strong
 * quorum of weight. */
static bool pbft_nv_view_changes_ok(const pbft *p, const Trantor__NewView *nv) {
  if (nv->n_view_changes == 0 || nv->n_view_changes > p->n) return false;
  bool seen[TRANTOR_MEMBERS_MAX] = {false};
  uint64_t w = 0;
  for (size_t a = 0; a < nv->n_view_changes; a++) {
    const Trantor__SignedViewChange *svc = nv->view_changes[a];
    size_t signer;
    if (!miri_pbft_signed_vc_ok(p, svc, &signer) || svc->view_change->view != nv->view ||
        seen[signer]) {
      return false;
    }
    seen[signer] = true;
    w += p->peers[signer].weight;
  }
  return w >= p->q.strong;
}

/* The re-proposals of nv are exactly what its view changes decide: every sn decided, one
 * preprepare per sn decided for a digest, ascending, for view nv->view, with that digest. */
static bool pbft_nv_reproposals_ok(const pbft *p, const Trantor__NewView *nv) {
  if (nv->n_preprepares > p->L) return false;
  pbft_decision *dec = mir_xcalloc(p->L, sizeof(*dec));
  bool ok = miri_pbft_decide(p, nv->view_changes, nv->n_view_changes, dec);
  size_t j = 0; /* next re-proposal of nv */
  for (size_t i = 0; ok && i < p->L; i++) {
    if (dec[i].kind != PBFT_DEC_DIGEST) continue;
    if (j >= nv->n_preprepares) {
      ok = false;
      break;
    }
    const Trantor__Preprepare *pp = nv->preprepares[j++];
    size_t slot;
    if (miri_pbft_check_preprepare(p, pp, &slot) != TRANTOR_PBFT_DROP_KINDS || slot != i ||
        pp->view != nv->view) {
      ok = false;
      break;
    }
    uint8_t d[PBFT_DIGEST];
    trantor_pbft_preprepare_digest(p->hash, pp->sn, pp->aborted, pp->cert.data, pp->cert.len, d);
    ok = memcmp(d, dec[i].digest, PBFT_DIGEST) == 0;
  }
  free(dec);
  return ok && j == nv->n_preprepares;
}

static Mir__SignedData *pbft_signed_data(const pbft *p, const Trantor__SignedViewChange *svc) {
  Mir__SignedData *it = mir_xmalloc(sizeof(*it));
  mir__signed_data__init(it);
  it->n_data = 1;
  it->data = mir_xmalloc(sizeof(*it->data));
  it->data[0].len = PBFT_DIGEST;
  it->data[0].data = mir_xmalloc(PBFT_DIGEST);
  trantor_pbft_view_change_hash(p->hash, svc->view_change, it->data[0].data);
  it->signature.len = svc->signature.len;
  it->signature.data = mir_xmemdup(svc->signature.data, svc->signature.len);
  it->node_id = mir_xstrdup(svc->signer);
  return it;
}

/* A free NewView check slot, or NULL. */
static pbft_check *pbft_free_check(pbft *p) {
  for (size_t k = 0; k < TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX; k++) {
    if (!p->nv_checks[k].used) return &p->nv_checks[k];
  }
  return NULL;
}

void miri_pbft_new_view_tick(pbft *p) {
  for (size_t k = 0; k < TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX; k++) {
    pbft_check *ck = &p->nv_checks[k];
    if (ck->used && p->ticks - ck->tick >= PBFT_ANSWER_TICKS) { /* lost: the primary resends */
      mir_dsl_dispose_context(p->dsl, ck->ctx);
      ck->used = false;
    }
  }
}

/* Asks crypto to verify every signature of nv (borrowed; copied into the context). */
static void pbft_nv_verify(pbft *p, const char *from, const Trantor__NewView *nv) {
  pbft_check *ck = pbft_free_check(p);
  if (ck == NULL) {
    miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BUSY, "NewView");
    return;
  }
  pbft_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->kind = PBFT_CTX_VERIFY_NV;
  c->view = nv->view;
  c->nv = (Trantor__NewView *)mir_message_clone(&nv->base);
  uint64_t id;
  if (!miri_pbft_store_ctx(p, c, &id)) {
    miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BUSY, "NewView");
    return;
  }
  *ck = (pbft_check){true, id, p->ticks};
  miri_pbft_ensure_resend_tick(p); /* a lost answer is noticed at a tick */
  Mir__VerifyManyRequest *req = mir_xmalloc(sizeof(*req));
  mir__verify_many_request__init(req);
  req->n_items = nv->n_view_changes;
  req->items = mir_xmalloc(req->n_items * sizeof(*req->items));
  for (size_t a = 0; a < req->n_items; a++)
    req->items[a] = pbft_signed_data(p, nv->view_changes[a]);
  req->origin = mir_dsl_origin_new(p->dsl, id);
  mir_dsl_emit_new(p->dsl, p->crypto, &req->base);
}

mir_err miri_pbft_on_new_view(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                              void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__NewView *nv = (const Trantor__NewView *)msg;
  mir_counter_inc(p->st.received); /* new view */
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, "NewView");
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, "NewView");
  uint64_t v = nv->view;
  if (v == 0 || v < p->view || (v == p->view && !p->in_vc)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_OLD_VIEW, "NewView");
  }
  if (v > TRANTOR_PBFT_VIEW_MAX || v - p->view > TRANTOR_PBFT_VIEWS_AHEAD_MAX) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_VIEW_AHEAD, "NewView");
  }
  if (!pbft_nv_view_changes_ok(p, nv) || !pbft_nv_reproposals_ok(p, nv)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_NEW_VIEW, "NewView");
  }
  pbft_nv_verify(p, from, nv);
  return MIR_OK;
}

/* Enters nv's view (checked completely) and takes its re-proposals. */
static void pbft_adopt(pbft *p, const Trantor__NewView *nv) {
  if (nv->view > p->view) { /* jumping ahead without an own view change for it */
    miri_pbft_reset_view_state(p);
    p->view = nv->view;
    if (p->my_vc != NULL) protobuf_c_message_free_unpacked(&p->my_vc->base, NULL);
    p->my_vc = NULL;
    p->vc_durable = false;
    if (p->sign_pending) mir_dsl_dispose_context(p->dsl, p->sign_ctx);
    p->sign_pending = false;
    miri_pbft_nvb_clear(&p->nvb);
    p->nv_durable = false;
    for (size_t i = 0; i < p->n; i++) p->peers[i].nv_resend = p->peers[i].vc_resend = false;
    p->view_timers_armed = false;
  }
  /* The view's timeouts (of the view change) stop; from the end of the batch they run again
   * while progress is expected, as in any view (its re-proposals are in flight). */
  p->view_timers_armed = false;
  p->arming++;
  p->in_vc = false;
  mir_counter_inc(p->st.new_views);
  if (p->adopted_nv != NULL) protobuf_c_message_free_unpacked(&p->adopted_nv->base, NULL);
  p->adopted_nv = (Trantor__NewView *)mir_message_clone(&nv->base);
  /* The view is adopted before any Prepare of it leaves: a restarted node neither goes back to a
   * lower view nor adopts a second NewView for this one. The NewView is kept with it, so that a
   * restarted node can still relay it (the primary recorded its own before sending it). */
  Mir__StoreWrite *w = mir_storage_write_new();
  miri_pbft_wal_view(p, w);
  if (!(p->nvb.sent && p->nvb.view == nv->view)) miri_pbft_wal_new_view(p, w, nv);
  miri_pbft_wal_emit(p, w);
  const char *primary = p->member_ids[miri_pbft_primary(p, p->view)];
  for (size_t j = 0; j < nv->n_preprepares; j++) {
    const Trantor__Preprepare *pp = nv->preprepares[j];
    size_t i = miri_pbft_slot_of(p, pp->sn);
    uint8_t d[PBFT_DIGEST];
    trantor_pbft_preprepare_digest(p->hash, pp->sn, pp->aborted, pp->cert.data, pp->cert.len, d);
    if (p->slots[i].delivered && memcmp(d, p->slots[i].c_digest, PBFT_DIGEST) != 0) {
      miri_pbft_drop(p, primary, TRANTOR_PBFT_DROP_CONFLICT, "re-proposal");
      continue;
    }
    miri_pbft_accept_preprepare(p, i, &pp->cert, pp->aborted, d);
  }
  miri_pbft_ensure_resend_tick(p);
  miri_pbft_replay_buffered(p);
}

mir_err miri_pbft_on_verify_many_result(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Mir__VerifyManyResult *res = (const Mir__VerifyManyResult *)ev->payload;
  pbft_ctx *c = miri_pbft_answer_ctx(p, res->origin, PBFT_CTX_VERIFY_NV);
  if (c == NULL) return MIR_OK;
  for (size_t k = 0; k < TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX; k++) {
    if (p->nv_checks[k].used && p->nv_checks[k].ctx == res->origin->context_id) {
      p->nv_checks[k].used = false;
    }
  }
  const char *primary = p->member_ids[miri_pbft_primary(p, c->view)];
  if (!res->all_ok || res->n_ok != c->nv->n_view_changes) {
    return miri_pbft_drop(p, primary, TRANTOR_PBFT_DROP_BAD_SIGNATURE, "NewView");
  }
  if (c->view < p->view || (c->view == p->view && !p->in_vc)) {
    mir_counter_inc(p->st.stale_answers); /* another NewView got there first */
    return MIR_OK;
  }
  pbft_adopt(p, c->nv);
  return MIR_OK;
}
