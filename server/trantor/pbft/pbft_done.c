/*
 * PBFT segment orderer: the segment checkpoint (Done) and catch-up.
 *
 * A node that committed every sn sends Done(digests, one per sn ascending) to all members and
 * repeats it every done_resend_ms to the members whose own Done has not come, while the epoch is
 * retained. Only the first Done of a sender
 * counts; senders are grouped by identical lists. A group with a weak quorum of weight contains a
 * correct node, so its digests are the committed ones (the checkpoint argument of OSDI 1999,
 * section 4.3, with a weak instead of a strong quorum since only availability is at stake): a
 * lagging node asks a member of that group for each missing sn (CatchUpRequest, every
 * catch_up_delay_ms, rotating through the group) and delivers a CatchUpResponse only if its
 * digest is the group's. A group with a strong quorum whose list equals the node's own, once the
 * node is done itself, makes the segment checkpoint stable, which silences the view-change
 * timeouts.
 *
 * Bounds: one Done per member, at most n groups of L digests; a request is answered only for a
 * committed sn with the asked digest, with one response.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "pbft_internal.h"

void miri_pbft_done_clear(pbft *p) {
  for (size_t g = 0; g < p->n_groups; g++) free(p->groups[g].digests);
  p->n_groups = 0;
}

/* True if group g lists exactly the digests this node committed (it must be done). */
static bool pbft_group_is_own(const pbft *p, size_t g) {
  for (size_t i = 0; i < p->L; i++) {
    if (memcmp(p->groups[g].digests + i * PBFT_DIGEST, p->slots[i].c_digest, PBFT_DIGEST) != 0) {
      return false;
    }
  }
  return true;
}

static void pbft_check_stable(pbft *p) {
  if (p->stable || !p->done) return;
  for (size_t g = 0; g < p->n_groups; g++) {
    if (p->groups[g].weight >= p->q.strong && pbft_group_is_own(p, g)) {
      p->stable = true;
      return;
    }
  }
}

/* The SendMessage of the node's Done to member `to`, or to every member when to is PBFT_NONE.
 * Returns owned. */
static mir_event *pbft_done_event(pbft *p, size_t to) {
  Trantor__Done d = TRANTOR__DONE__INIT;
  ProtobufCBinaryData *digests = mir_xmalloc(p->L * sizeof(*digests));
  for (size_t i = 0; i < p->L; i++) {
    digests[i] = (ProtobufCBinaryData){PBFT_DIGEST, p->slots[i].c_digest};
  }
  d.n_digests = p->L;
  d.digests = digests;
  mir_event *ev = to == PBFT_NONE ? miri_pbft_send_all_event(p, &d.base)
                                  : miri_pbft_send_to_event(p, to, &d.base);
  free(digests);
  return ev;
}

void miri_pbft_on_all_committed(pbft *p) {
  MIR_ASSERT(p->n_delivered == p->L && !p->done);
  p->done = true;
  /* Done says "I committed these", and peers stop resending theirs to a member whose Done came:
   * it leaves only once the commit records are durable (a barrier after them), so that a node
   * that restarts is done again, never a laggard its peers no longer help. */
  Mir__StoreWrite *w = mir_storage_write_new();
  mir_storage_then(w, pbft_done_event(p, PBFT_NONE));
  mir_storage_then(w, miri_pbft_persisted_event(p, MIRI_PBFT_PERSISTED_DONE));
  miri_pbft_wal_emit(p, w);
  miri_pbft_tick_repeat(p, TRANTOR_PBFT_TICK_DONE, p->params->done_resend_ms);
  pbft_check_stable(p);
}

void miri_pbft_done_tick(pbft *p) {
  /* Only members whose own Done has not come: once everyone's has, an idle segment is silent. A
   * member that sent its Done holds every digest durably, and can serve the others' catch-up. */
  if (!p->done_durable) return;
  for (size_t i = 0; i < p->n; i++) {
    if (i != p->self && !p->peers[i].has_done) mir_dsl_emit(p->dsl, pbft_done_event(p, i));
  }
}

/* The first group with a weak quorum fixes what catch-up accepts for every missing sn. */
static void pbft_start_catch_up(pbft *p, size_t g) {
  p->cu_group = g;
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    if (s->delivered) continue;
    s->has_cu = true;
    memcpy(s->cu_digest, p->groups[g].digests + i * PBFT_DIGEST, PBFT_DIGEST);
  }
  if (!p->done && !p->catch_up_started) {
    p->catch_up_started = true;
    miri_pbft_tick_repeat(p, TRANTOR_PBFT_TICK_CATCH_UP, p->params->catch_up_delay_ms);
  }
}

/* The group of the list d (checked), created if new. */
static size_t pbft_group_of(pbft *p, const Trantor__Done *d) {
  for (size_t g = 0; g < p->n_groups; g++) {
    bool same = true;
    for (size_t i = 0; same && i < p->L; i++) {
      same = memcmp(p->groups[g].digests + i * PBFT_DIGEST, d->digests[i].data, PBFT_DIGEST) == 0;
    }
    if (same) return g;
  }
  MIR_ASSERT(p->n_groups < p->n); /* one Done per member */
  pbft_done_group *grp = &p->groups[p->n_groups];
  grp->digests = mir_xmalloc(p->L * PBFT_DIGEST);
  for (size_t i = 0; i < p->L; i++) {
    memcpy(grp->digests + i * PBFT_DIGEST, d->digests[i].data, PBFT_DIGEST);
  }
  grp->weight = 0;
  return p->n_groups++;
}

mir_err miri_pbft_on_done(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__Done *d = (const Trantor__Done *)msg;
  mir_counter_inc(p->st.received); /* done */
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, "Done");
  if (d->n_digests != p->L) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_MALFORMED, "Done");
  for (size_t i = 0; i < p->L; i++) {
    if (!miri_pbft_digest_ok(&d->digests[i])) {
      return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_DIGEST, "Done");
    }
  }
  pbft_peer *pe = &p->peers[m];
  if (pe->has_done) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_DUPLICATE, "Done");
  size_t g = pbft_group_of(p, d);
  pe->has_done = true;
  pe->done_group = g;
  p->groups[g].weight += pe->weight;
  if (p->cu_group == PBFT_NONE && p->groups[g].weight >= p->q.weak) pbft_start_catch_up(p, g);
  pbft_check_stable(p);
  return MIR_OK;
}

void miri_pbft_catch_up_tick(pbft *p) {
  if (p->done || p->cu_group == PBFT_NONE) return;
  size_t members[TRANTOR_MEMBERS_MAX], k = 0;
  for (size_t i = 0; i < p->n; i++) {
    const pbft_peer *pe = &p->peers[i];
    if (i != p->self && pe->has_done && pe->done_group == p->cu_group) members[k++] = i;
  }
  if (k == 0) return;
  size_t to = members[p->cu_ticks++ % k]; /* rotate, so a silent group member cannot stall us */
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    if (s->delivered || !s->has_cu) continue;
    Trantor__CatchUpRequest r = TRANTOR__CATCH_UP_REQUEST__INIT;
    r.sn = s->sn;
    r.digest = (ProtobufCBinaryData){PBFT_DIGEST, s->cu_digest};
    miri_pbft_send_to(p, to, &r.base);
  }
}

mir_err miri_pbft_on_catch_up_request(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                      void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__CatchUpRequest *r = (const Trantor__CatchUpRequest *)msg;
  const char *what = "CatchUpRequest";
  mir_counter_inc(p->st.received); /* catch up request */
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, what);
  size_t i = miri_pbft_slot_of(p, r->sn);
  if (i == PBFT_NONE) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_SN, what);
  if (!miri_pbft_digest_ok(&r->digest)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_DIGEST, what);
  }
  pbft_slot *s = &p->slots[i];
  if (!s->delivered || memcmp(s->c_digest, r->digest.data, PBFT_DIGEST) != 0) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  }
  const pbft_known *k = miri_pbft_known_find(s, s->c_digest);
  MIR_ASSERT(k != NULL); /* the committed preprepare is pinned */
  Trantor__CatchUpResponse resp = TRANTOR__CATCH_UP_RESPONSE__INIT;
  Trantor__Preprepare pp;
  miri_pbft_known_preprepare(k, s->sn, &pp);
  resp.preprepare = &pp;
  miri_pbft_send_to(p, (size_t)m, &resp.base);
  return MIR_OK;
}

mir_err miri_pbft_on_catch_up_response(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                       void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__CatchUpResponse *r = (const Trantor__CatchUpResponse *)msg;
  const char *what = "CatchUpResponse";
  mir_counter_inc(p->st.received); /* catch up response */
  if (trantor_member_index(p->params->membership, from) < 0) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, what);
  }
  size_t i;
  trantor_pbft_drop bad = miri_pbft_check_preprepare(p, r->preprepare, &i);
  if (bad != TRANTOR_PBFT_DROP_KINDS) return miri_pbft_drop(p, from, bad, what);
  pbft_slot *s = &p->slots[i];
  if (s->delivered) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_DUPLICATE, what);
  if (!s->has_cu) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  const Trantor__Preprepare *pp = r->preprepare;
  uint8_t d[PBFT_DIGEST];
  trantor_pbft_preprepare_digest(p->hash, pp->sn, pp->aborted, pp->cert.data, pp->cert.len, d);
  if (memcmp(d, s->cu_digest, PBFT_DIGEST) != 0) { /* not what the Done quorum committed */
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_UNSOLICITED, what);
  }
  if (miri_pbft_known_add(p, i, d, pp->aborted, &pp->cert, NULL) == NULL) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BUSY, what);
  }
  mir_counter_inc(p->st.caught_up);
  miri_pbft_deliver(p, i, d);
  return MIR_OK;
}
