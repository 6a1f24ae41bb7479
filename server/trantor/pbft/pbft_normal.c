/*
 * PBFT segment orderer: the good case (Castro and Liskov, OSDI 1999, section 4.2), proposals and
 * the future-view buffer.
 *
 * A preprepare of the current view from its primary, for an sn without one in this view, is
 * accepted and answered by a Prepare to all; a strong quorum (by weight) of Prepares matching the
 * accepted digest makes the slot prepared and the node sends a Commit; a strong quorum of
 * matching Commits on a prepared slot commits it, and the sn is delivered to iss the first time.
 * Only the first vote of a sender per sn and view counts (a later one, matching or not, is a
 * duplicate): a correct node votes once, so a Byzantine one gains nothing by voting twice.
 *
 * Proposals: the primary of an active view fills every sn of the view that has no preprepare,
 * first with a batch it holds for that sn (preprepared in an earlier view but not decided), then
 * with a certificate it already has, then by asking availability, one request at a time. There
 * is no propose timer; proposals are pipelined (no wait for commits).
 *
 * Messages of a later view, or of the current one before its NewView was adopted, wait in a
 * per-sender buffer bounded in bytes; the oldest ones are evicted first, so a flooding sender
 * only loses its own messages.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "pbft_internal.h"
#include "wal.h"

typedef enum pbft_when { PBFT_NOW = 0, PBFT_LATER, PBFT_OLD, PBFT_FAR } pbft_when;

/* When a message of view v can be handled. */
static pbft_when pbft_view_class(const pbft *p, uint64_t v) {
  if (v < p->view) return PBFT_OLD;
  if (v > TRANTOR_PBFT_VIEW_MAX || v - p->view > TRANTOR_PBFT_VIEWS_AHEAD_MAX) return PBFT_FAR;
  if (v > p->view || p->in_vc) return PBFT_LATER;
  return PBFT_NOW;
}

static mir_err pbft_drop_when(pbft *p, const char *from, pbft_when w, const char *what) {
  return miri_pbft_drop(
      p, from, w == PBFT_OLD ? TRANTOR_PBFT_DROP_OLD_VIEW : TRANTOR_PBFT_DROP_VIEW_AHEAD, what);
}

/* ---- held preprepares ---- */

pbft_known *miri_pbft_known_find(pbft_slot *s, const uint8_t *digest) {
  for (size_t k = 0; k < s->n_known; k++) {
    if (memcmp(s->known[k].digest, digest, PBFT_DIGEST) == 0) return &s->known[k];
  }
  return NULL;
}

void miri_pbft_known_preprepare(const pbft_known *k, uint64_t sn, Trantor__Preprepare *pp) {
  trantor__preprepare__init(pp);
  pp->sn = sn;
  pp->view = k->view;
  pp->aborted = k->aborted;
  pp->cert = k->cert;
}

/* A digest the slot still needs: its P-set entry, its committed one, this view's preprepare, or
 * a re-proposal of the NewView under construction. At most four, below KNOWN_PER_SN_MAX. */
static bool pbft_known_pinned(const pbft *p, size_t i, const uint8_t *d) {
  const pbft_slot *s = &p->slots[i];
  if (s->has_p && memcmp(s->p_digest, d, PBFT_DIGEST) == 0) return true;
  if (s->delivered && memcmp(s->c_digest, d, PBFT_DIGEST) == 0) return true;
  if (s->has_pp && memcmp(s->pp_digest, d, PBFT_DIGEST) == 0) return true;
  const pbft_nv_build *b = &p->nvb;
  return b->decided && b->dec[i].kind == PBFT_DEC_DIGEST &&
         memcmp(b->dec[i].digest, d, PBFT_DIGEST) == 0;
}

/* Index of the entry to replace: the unpinned one of the lowest view, or PBFT_NONE. */
static size_t pbft_known_victim(const pbft *p, size_t i) {
  const pbft_slot *s = &p->slots[i];
  size_t victim = PBFT_NONE;
  for (size_t k = 0; k < s->n_known; k++) {
    if (pbft_known_pinned(p, i, s->known[k].digest)) continue;
    if (victim == PBFT_NONE || s->known[k].view < s->known[victim].view) victim = k;
  }
  return victim;
}

pbft_known *miri_pbft_known_add(pbft *p, size_t i, const uint8_t *digest, bool aborted,
                                const ProtobufCBinaryData *cert, Mir__StoreWrite *w) {
  pbft_slot *s = &p->slots[i];
  pbft_known *k = miri_pbft_known_find(s, digest);
  if (k != NULL) return k;
  if (s->n_known < TRANTOR_PBFT_KNOWN_PER_SN_MAX) {
    k = &s->known[s->n_known++];
  } else {
    size_t v = pbft_known_victim(p, i);
    if (v == PBFT_NONE) return NULL;
    k = &s->known[v];
    if (k->persisted) { /* a restart must not find more batches than the slot holds */
      Mir__StoreWrite *own = w != NULL ? w : mir_storage_write_new();
      miri_pbft_wal_forget(p, own, i, k->digest);
      if (own != w) miri_pbft_wal_emit(p, own);
    }
    free(k->cert.data);
  }
  memset(k, 0, sizeof(*k));
  memcpy(k->digest, digest, PBFT_DIGEST);
  k->aborted = aborted;
  k->cert.len = cert->len;
  k->cert.data = mir_xmemdup(cert->data, cert->len);
  return k;
}

/* ---- votes ---- */

static pbft_vote *pbft_votes(pbft *p, pbft_slot *s, bool commit) {
  pbft_vote **v = commit ? &s->commits : &s->prepares;
  if (*v == NULL) *v = mir_xcalloc(p->n, sizeof(**v));
  return *v;
}

static uint64_t pbft_vote_weight(const pbft *p, const pbft_vote *v, const uint8_t *digest) {
  uint64_t w = 0;
  for (size_t m = 0; v != NULL && m < p->n; m++) {
    if (v[m].has && memcmp(v[m].digest, digest, PBFT_DIGEST) == 0) w += p->peers[m].weight;
  }
  return w;
}

mir_event *miri_pbft_vote_event(pbft *p, const pbft_slot *s, bool commit) {
  ProtobufCBinaryData d = {PBFT_DIGEST, (uint8_t *)s->pp_digest};
  if (commit) {
    Trantor__Commit c = TRANTOR__COMMIT__INIT;
    c.sn = s->sn;
    c.view = p->view;
    c.digest = d;
    return miri_pbft_send_all_event(p, &c.base);
  }
  Trantor__Prepare pr = TRANTOR__PREPARE__INIT;
  pr.sn = s->sn;
  pr.view = p->view;
  pr.digest = d;
  return miri_pbft_send_all_event(p, &pr.base);
}

/* Writes w (takes ownership), then sends the node's Prepare or Commit for slot s's preprepare
 * of the current view: the vote leaves only once what it commits the node to is durable. */
static void pbft_persist_vote(pbft *p, Mir__StoreWrite *w, const pbft_slot *s, bool commit) {
  mir_storage_then(w, miri_pbft_vote_event(p, s, commit));
  miri_pbft_wal_emit(p, w);
}

/* Moves slot i as far as its votes allow. Prepared: the preprepare and a strong quorum of
 * matching Prepares (OSDI 1999, section 4.2; the primary's own Prepare counts). Committed:
 * prepared and a strong quorum of matching Commits ("committed-local"). Two strong quorums share
 * more than f weight, so no two digests prepare for one sn and view. */
static void pbft_advance(pbft *p, size_t i) {
  pbft_slot *s = &p->slots[i];
  if (!s->has_pp) return;
  if (!s->prepared && pbft_vote_weight(p, s->prepares, s->pp_digest) >= p->q.strong) {
    s->prepared = true;
    s->vote_tick = p->ticks;
    s->has_p = true;
    s->p_view = p->view;
    memcpy(s->p_digest, s->pp_digest, PBFT_DIGEST);
    Mir__StoreWrite *w = mir_storage_write_new(); /* the P-set entry, then the Commit */
    miri_pbft_wal_slot(p, w, TRANTOR_WAL_PREPARED, i, s->p_view, s->p_digest);
    pbft_persist_vote(p, w, s, true);
    /* A strong quorum moved this slot, the primary's proposal with it: the sn timeout starts
     * over (a cluster that is slow as a whole still moves its slots through the phases). */
    p->progress++;
    if (!p->stable && !p->in_vc && p->view_timers_armed) miri_pbft_arm_sn_timer(p);
  }
  if (s->prepared && !s->committed &&
      pbft_vote_weight(p, s->commits, s->pp_digest) >= p->q.strong) {
    s->committed = true;
    s->vote_tick = p->ticks;
    if (!s->delivered) miri_pbft_deliver(p, i, s->pp_digest);
  }
}

void miri_pbft_deliver(pbft *p, size_t i, const uint8_t *digest) {
  pbft_slot *s = &p->slots[i];
  MIR_ASSERT(!s->delivered);
  s->delivered = true;
  memcpy(s->c_digest, digest, PBFT_DIGEST);
  pbft_known *k = miri_pbft_known_find(s, digest);
  MIR_ASSERT(k != NULL); /* callers hold the preprepare of what they deliver */
  /* Recorded so that a restart re-delivers it at once; nothing waits for this write. */
  Mir__StoreWrite *w = mir_storage_write_new();
  miri_pbft_wal_batch(p, w, i, k);
  miri_pbft_wal_slot(p, w, TRANTOR_WAL_COMMITTED, i, p->view, digest);
  miri_pbft_wal_emit(p, w);
  p->n_delivered++;
  p->progress++;
  mir_counter_inc(p->st.committed);
  Trantor__SbDeliver *d = mir_xmalloc(sizeof(*d));
  trantor__sb_deliver__init(d);
  d->epoch = p->params->epoch;
  d->segment = p->params->segment;
  d->sn = s->sn;
  d->cert.len = k->cert.len;
  d->cert.data = mir_xmemdup(k->cert.data, k->cert.len);
  d->aborted = k->aborted;
  d->leader = mir_xstrdup(p->params->leader);
  mir_dsl_emit_new(p->dsl, p->iss, &d->base);
  if (p->n_delivered == p->L) {
    miri_pbft_on_all_committed(p);
  } else if (!p->stable && p->view_timers_armed) {
    miri_pbft_arm_sn_timer(p); /* doubled per view, unlike the reference (its item 5) */
  }
}

/* Takes a preprepare of the current view for slot i, with cert (borrowed, copied) hashing to
 * digest (borrowed): the slot's preprepare of this view, a Q-set entry (TOCS 2002, section 4.4),
 * and their records (the batch, the entry) in w (borrowed). Returns the held entry (borrowed). */
static pbft_known *pbft_take_preprepare(pbft *p, size_t i, const ProtobufCBinaryData *cert,
                                        bool aborted, const uint8_t *digest, Mir__StoreWrite *w) {
  pbft_slot *s = &p->slots[i];
  MIR_ASSERT(!s->has_pp);
  s->has_pp = true;
  s->vote_tick = p->ticks;
  memcpy(s->pp_digest, digest, PBFT_DIGEST);
  pbft_known *k = miri_pbft_known_add(p, i, digest, aborted, cert, w);
  MIR_ASSERT(k != NULL); /* at most four pinned digests, so an entry is always free */
  k->in_qset = true;
  if (k->view < p->view) k->view = p->view;
  miri_pbft_wal_batch(p, w, i, k);
  miri_pbft_wal_known(p, w, i, k);
  return k;
}

void miri_pbft_accept_preprepare(pbft *p, size_t i, const ProtobufCBinaryData *cert, bool aborted,
                                 const uint8_t *digest) {
  Mir__StoreWrite *w =
      mir_storage_write_new(); /* the batch and the Q-set entry, then the Prepare */
  pbft_take_preprepare(p, i, cert, aborted, digest, w);
  pbft_persist_vote(p, w, &p->slots[i], false);
  pbft_advance(p, i);
}

/* ---- retransmission ---- */

void miri_pbft_retransmit(pbft *p) {
  if (p->passive || p->in_vc) return;
  bool primary = p->self == miri_pbft_primary(p, p->view);
  Mir__StoreWrite *w = NULL;
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    if (!s->has_pp || p->ticks < s->vote_tick + 2) continue;
    /* A committed slot still helps peers that missed Commits, until the segment checkpoint is
     * stable: from then on a strong quorum sent Done, and catch-up brings any laggard along. */
    if (s->committed && p->stable) continue;
    if (w == NULL) w = mir_storage_write_new();
    const pbft_known *k = primary && !s->committed ? miri_pbft_known_find(s, s->pp_digest) : NULL;
    if (k != NULL) {
      Trantor__Preprepare pp;
      miri_pbft_known_preprepare(k, s->sn, &pp);
      pp.view = p->view;
      mir_event *to_others = miri_pbft_send_others_event(p, &pp.base);
      if (to_others != NULL) mir_storage_then(w, to_others);
    }
    if (!s->committed) mir_storage_then(w, miri_pbft_vote_event(p, s, false));
    if (s->prepared) mir_storage_then(w, miri_pbft_vote_event(p, s, true));
    s->vote_tick = p->ticks;
  }
  if (w != NULL) miri_pbft_wal_emit(p, w);
}

/* ---- the future-view buffer ---- */

static void pbft_buffered_free(pbft_buffered *b) {
  protobuf_c_message_free_unpacked(b->msg, NULL);
  free(b);
}

void miri_pbft_buffer_clear(pbft *p, size_t i) {
  pbft_peer *pe = &p->peers[i];
  while (pe->buf_head != NULL) {
    pbft_buffered *b = pe->buf_head;
    pe->buf_head = b->next;
    pbft_buffered_free(b);
  }
  pe->buf_tail = NULL;
  pe->buf_bytes = 0;
}

static void pbft_buffer_append(pbft_peer *pe, pbft_buffered *b) {
  b->next = NULL;
  if (pe->buf_tail != NULL) {
    pe->buf_tail->next = b;
  } else {
    pe->buf_head = b;
  }
  pe->buf_tail = b;
  pe->buf_bytes += b->bytes;
}

/* Keeps msg (borrowed; copied) of sender i for view v, evicting i's oldest messages if needed. */
static mir_err pbft_buffer_push(pbft *p, size_t i, const ProtobufCMessage *msg, uint64_t v) {
  pbft_peer *pe = &p->peers[i];
  size_t bytes = protobuf_c_message_get_packed_size(msg) + TRANTOR_PBFT_MSG_OVERHEAD;
  if (bytes > p->buf_cap) return miri_pbft_drop(p, pe->id, TRANTOR_PBFT_DROP_BUFFER, "message");
  while (pe->buf_bytes + bytes > p->buf_cap) {
    pbft_buffered *old = pe->buf_head;
    pe->buf_head = old->next;
    if (pe->buf_head == NULL) pe->buf_tail = NULL;
    pe->buf_bytes -= old->bytes;
    pbft_buffered_free(old);
    miri_pbft_drop(p, pe->id, TRANTOR_PBFT_DROP_BUFFER, "buffered message");
  }
  pbft_buffered *b = mir_xmalloc(sizeof(*b));
  b->msg = mir_message_clone(msg);
  b->view = v;
  b->bytes = bytes;
  pbft_buffer_append(pe, b);
  return MIR_OK;
}

/* ---- preprepares ---- */

static void pbft_preprepare_now(pbft *p, size_t from, size_t i, const Trantor__Preprepare *pp) {
  const char *id = p->peers[from].id;
  MIR_ASSERT(from == miri_pbft_primary(p, p->view)); /* checked at ingress for this view */
  pbft_slot *s = &p->slots[i];
  if (s->has_pp) { /* one preprepare per sn and view: a second one is equivocation */
    miri_pbft_drop(p, id, TRANTOR_PBFT_DROP_DUPLICATE, "Preprepare");
    return;
  }
  uint8_t digest[PBFT_DIGEST];
  trantor_pbft_preprepare_digest(p->hash, pp->sn, pp->aborted, pp->cert.data, pp->cert.len, digest);
  if (s->delivered && memcmp(digest, s->c_digest, PBFT_DIGEST) != 0) {
    miri_pbft_drop(p, id, TRANTOR_PBFT_DROP_CONFLICT, "Preprepare");
    return;
  }
  miri_pbft_accept_preprepare(p, i, &pp->cert, pp->aborted, digest);
}

mir_err miri_pbft_on_preprepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                                void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__Preprepare *pp = (const Trantor__Preprepare *)msg;
  mir_counter_inc(p->st.received); /* preprepare */
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, "Preprepare");
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, "Preprepare");
  size_t i;
  trantor_pbft_drop bad = miri_pbft_check_preprepare(p, pp, &i);
  if (bad != TRANTOR_PBFT_DROP_KINDS) return miri_pbft_drop(p, from, bad, "Preprepare");
  pbft_when w = pbft_view_class(p, pp->view);
  if (w == PBFT_OLD || w == PBFT_FAR) return pbft_drop_when(p, from, w, "Preprepare");
  if ((size_t)m != miri_pbft_primary(p, pp->view)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_PRIMARY, "Preprepare");
  }
  if (w == PBFT_LATER) return pbft_buffer_push(p, (size_t)m, msg, pp->view);
  pbft_preprepare_now(p, (size_t)m, i, pp);
  return MIR_OK;
}

/* ---- prepares and commits ---- */

static void pbft_vote_now(pbft *p, size_t from, size_t i, const uint8_t *digest, bool commit) {
  pbft_slot *s = &p->slots[i];
  pbft_vote *v = pbft_votes(p, s, commit);
  if (v[from].has) {
    miri_pbft_drop(p, p->peers[from].id, TRANTOR_PBFT_DROP_DUPLICATE,
                   commit ? "Commit" : "Prepare");
    return;
  }
  v[from].has = true;
  memcpy(v[from].digest, digest, PBFT_DIGEST);
  pbft_advance(p, i);
}

static mir_err pbft_on_vote(pbft *p, const char *from, const ProtobufCMessage *msg, uint64_t sn,
                            uint64_t view, const ProtobufCBinaryData *digest, bool commit) {
  const char *what = commit ? "Commit" : "Prepare";
  if (p->passive) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_PASSIVE, what);
  int m = trantor_member_index(p->params->membership, from);
  if (m < 0) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_NOT_MEMBER, what);
  size_t i = miri_pbft_slot_of(p, sn);
  if (i == PBFT_NONE) return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_SN, what);
  if (!miri_pbft_digest_ok(digest)) {
    return miri_pbft_drop(p, from, TRANTOR_PBFT_DROP_BAD_DIGEST, what);
  }
  pbft_when w = pbft_view_class(p, view);
  if (w == PBFT_OLD || w == PBFT_FAR) return pbft_drop_when(p, from, w, what);
  if (w == PBFT_LATER) return pbft_buffer_push(p, (size_t)m, msg, view);
  pbft_vote_now(p, (size_t)m, i, digest->data, commit);
  return MIR_OK;
}

mir_err miri_pbft_on_prepare(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                             void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__Prepare *pr = (const Trantor__Prepare *)msg;
  mir_counter_inc(p->st.received); /* prepare */
  return pbft_on_vote(p, from, msg, pr->sn, pr->view, &pr->digest, false);
}

mir_err miri_pbft_on_commit(mir_dsl *dsl, const char *from, const ProtobufCMessage *msg,
                            void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__Commit *c = (const Trantor__Commit *)msg;
  mir_counter_inc(p->st.received); /* commit */
  return pbft_on_vote(p, from, msg, c->sn, c->view, &c->digest, true);
}

/* Handles a buffered message of sender i whose view is now active (checked at ingress). */
static void pbft_replay_one(pbft *p, size_t i, const ProtobufCMessage *msg) {
  if (msg->descriptor == &trantor__preprepare__descriptor) {
    const Trantor__Preprepare *pp = (const Trantor__Preprepare *)msg;
    pbft_preprepare_now(p, i, miri_pbft_slot_of(p, pp->sn), pp);
  } else if (msg->descriptor == &trantor__prepare__descriptor) {
    const Trantor__Prepare *pr = (const Trantor__Prepare *)msg;
    pbft_vote_now(p, i, miri_pbft_slot_of(p, pr->sn), pr->digest.data, false);
  } else {
    MIR_ASSERT(msg->descriptor == &trantor__commit__descriptor);
    const Trantor__Commit *c = (const Trantor__Commit *)msg;
    pbft_vote_now(p, i, miri_pbft_slot_of(p, c->sn), c->digest.data, true);
  }
}

mir_err miri_pbft_replay_buffered(pbft *p) {
  MIR_ASSERT(!p->in_vc);
  for (size_t i = 0; i < p->n; i++) {
    pbft_peer *pe = &p->peers[i];
    pbft_buffered *b = pe->buf_head;
    pe->buf_head = pe->buf_tail = NULL;
    pe->buf_bytes = 0;
    while (b != NULL) {
      pbft_buffered *next = b->next;
      if (b->view > p->view) {
        pbft_buffer_append(pe, b); /* still in the future: keep, in order */
        b = next;
        continue;
      }
      if (b->view == p->view) pbft_replay_one(p, i, b->msg);
      pbft_buffered_free(b);
      b = next;
    }
  }
  return MIR_OK;
}

void miri_pbft_reset_view_state(pbft *p) {
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    s->has_pp = s->proposed = s->prepared = s->committed = s->nv_requested = false;
    free(s->prepares);
    free(s->commits);
    s->prepares = s->commits = NULL;
  }
}

/* ---- proposals ---- */

/* Proposes cert (borrowed) for slot i in the current view. The primary takes its own proposal at
 * once: the batch, the proposal and its Q-set entry are one write, after which its Preprepare
 * goes to the others and its Prepare to everyone (one sync on the primary's path, not two), and a
 * restarted primary sends this Preprepare again, never another. */
static void pbft_send_proposal(pbft *p, size_t i, const ProtobufCBinaryData *cert, bool aborted) {
  pbft_slot *s = &p->slots[i];
  uint8_t digest[PBFT_DIGEST];
  trantor_pbft_preprepare_digest(p->hash, s->sn, aborted, cert->data, cert->len, digest);
  Mir__StoreWrite *w = mir_storage_write_new();
  pbft_known *k = pbft_take_preprepare(p, i, cert, aborted, digest, w);
  miri_pbft_wal_slot(p, w, TRANTOR_WAL_PROPOSED, i, p->view, digest);
  Trantor__Preprepare pp;
  miri_pbft_known_preprepare(k, s->sn, &pp);
  pp.view = p->view;
  mir_event *to_others = miri_pbft_send_others_event(p, &pp.base);
  if (to_others != NULL) mir_storage_then(w, to_others);
  pbft_persist_vote(p, w, s, false);
  s->proposed = true;
  mir_counter_inc(p->st.proposals);
  pbft_advance(p, i);
}

/* A batch the primary holds for slot i from an earlier view: what it committed, else the
 * latest non-empty batch it preprepared. NULL if none. */
static const pbft_known *pbft_held_batch(pbft_slot *s) {
  if (s->delivered) return miri_pbft_known_find(s, s->c_digest);
  const pbft_known *best = NULL;
  for (size_t k = 0; k < s->n_known; k++) {
    const pbft_known *e = &s->known[k];
    if (!e->in_qset || e->aborted || e->cert.len == 0) continue;
    if (best == NULL || e->view > best->view) best = e;
  }
  return best;
}

static void pbft_request_cert(pbft *p, bool fill) {
  pbft_ctx *c = mir_xcalloc(1, sizeof(*c));
  c->kind = PBFT_CTX_CERT;
  c->view = p->view;
  uint64_t id;
  if (!miri_pbft_store_ctx(p, c, &id)) return; /* retried after the next batch */
  Trantor__RequestCert *r = mir_xmalloc(sizeof(*r));
  trantor__request_cert__init(r);
  r->epoch = p->params->epoch;
  r->n_buckets = p->params->n_buckets;
  r->buckets = mir_xmemdup(p->params->buckets, r->n_buckets * sizeof(*r->buckets));
  r->origin = mir_dsl_origin_new(p->dsl, id);
  r->fill = fill;
  mir_dsl_emit_new(p->dsl, p->availability, &r->base);
  p->cert_pending = true;
}

void miri_pbft_propose(pbft *p) {
  if (p->passive || p->in_vc || p->self != miri_pbft_primary(p, p->view)) return;
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    if (s->has_pp || s->proposed) continue;
    const pbft_known *held = p->view > 0 ? pbft_held_batch(s) : NULL;
    if (held != NULL) {
      pbft_send_proposal(p, i, &held->cert, held->aborted);
    } else if (p->has_spare) {
      pbft_send_proposal(p, i, &p->spare, false);
      free(p->spare.data);
      p->spare = (ProtobufCBinaryData){0, NULL};
      p->has_spare = false;
    } else {
      /* A new batch only while there is work, or when the log awaits this sn (then at once, with
       * what the mempool holds): an idle cluster does not churn through empty batches. */
      bool needed = s->sn < p->needed_up_to;
      if (!p->cert_pending && (p->active || needed)) pbft_request_cert(p, needed);
      return; /* one request in flight; the answer continues the loop */
    }
  }
}

mir_err miri_pbft_on_new_cert(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__NewCert *nc = (const Trantor__NewCert *)ev->payload;
  if (miri_pbft_answer_ctx(p, nc->origin, PBFT_CTX_CERT) == NULL) return MIR_OK;
  p->cert_pending = false;
  if (nc->cert.len > p->params->max_cert_bytes) {
    return mir_error_set(MIR_EPROTO,
                         "%s: availability returned a certificate of %zu bytes, above "
                         "max_cert_bytes %llu",
                         p->mod_id, nc->cert.len, (unsigned long long)p->params->max_cert_bytes);
  }
  /* One request at a time and a spare is always used before asking again. */
  MIR_ASSERT(!p->has_spare);
  p->has_spare = true;
  p->spare.len = nc->cert.len;
  p->spare.data = mir_xmemdup(nc->cert.data, nc->cert.len);
  miri_pbft_propose(p); /* proposes now if still primary; else kept for a later view */
  return MIR_OK;
}
