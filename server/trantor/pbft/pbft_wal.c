/*
 * PBFT segment orderer: persist, then send, and recovery after a restart (docs/PROTOCOL.md,
 * "Durability").
 *
 * What a correct node must never contradict after a crash, and the record that keeps it:
 *  - its Prepare for (sn, view, digest): the Q-set record K and the batch B behind it;
 *  - its Commit: the P-set record P (prepared in view, digest);
 *  - its Preprepare as primary: the proposal record R and the batch B;
 *  - its ViewChange for view v, and its Prepares after adopting NewView(v): the view record V,
 *    so that it never acts in a lower view again, and never adopts a second NewView for v;
 *  - its NewView as primary: record N, so that it never sends another one for the same view (a
 *    node that adopts a NewView records it too, with the view, so that it can relay it after a
 *    restart to peers still waiting for it).
 * Each such message is the `then` event of the store write holding its record, so it leaves the
 * node only once the record is durable; the instance's state may run ahead of the disk, because
 * nothing is said before the disk has it. Resends go directly only for what is known durable
 * (vc_durable, nv_durable, set by the store's PbftPersisted). Commits are recorded (C) without
 * holding anything back: a commit is a fact, and the record only saves a restarted node the
 * catch-up. Records of epochs below a durable stable checkpoint are deleted by iss.
 *
 * Recovery takes the records back at Init and checks them as if they came from a peer: sns in the
 * segment, digests that match their batches, a batch behind every P-set, proposal and commit
 * record, at most TRANTOR_PBFT_KNOWN_PER_SN_MAX batches per sn. The node then resends its durable
 * votes of the current view (a whole cluster that restarted can finish the view without a view
 * change), re-delivers its commits to iss, and resumes a view change it was in.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "pbft_internal.h"
#include "wal.h"

#define PBFT_LOG "pbft"

/* ---- writing ---- */

mir_event *miri_pbft_send_all_event(pbft *p, const ProtobufCMessage *msg) {
  return mir_event_send_message(p->net, p->mod_id, p->member_ids, p->n, p->mod_id, msg);
}

mir_event *miri_pbft_send_others_event(pbft *p, const ProtobufCMessage *msg) {
  if (p->n == 1) return NULL;
  const char *others[TRANTOR_MEMBERS_MAX];
  size_t k = 0;
  for (size_t i = 0; i < p->n; i++) {
    if (i != p->self) others[k++] = p->member_ids[i];
  }
  return mir_event_send_message(p->net, p->mod_id, others, k, p->mod_id, msg);
}

mir_event *miri_pbft_send_to_event(pbft *p, size_t to, const ProtobufCMessage *msg) {
  MIR_ASSERT(to < p->n);
  return mir_event_send_message(p->net, p->mod_id, &p->member_ids[to], 1, p->mod_id, msg);
}

static size_t pbft_key(const pbft *p, uint8_t *key, char kind, uint64_t sn, const uint8_t *d) {
  return trantor_wal_instance_key(key, p->params->epoch, p->params->segment, kind, sn, d);
}

void miri_pbft_wal_batch(pbft *p, Mir__StoreWrite *w, size_t i, pbft_known *k) {
  if (k->persisted) return;
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, TRANTOR_WAL_BATCH, p->slots[i].sn, k->digest);
  Trantor__WalCert c = TRANTOR__WAL_CERT__INIT;
  c.aborted = k->aborted;
  c.cert = k->cert;
  trantor_wal_put(w, key, klen, &c.base);
  k->persisted = true;
}

void miri_pbft_wal_known(pbft *p, Mir__StoreWrite *w, size_t i, const pbft_known *k) {
  MIR_ASSERT(k->persisted);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, TRANTOR_WAL_KNOWN, p->slots[i].sn, k->digest);
  Trantor__WalKnown r = TRANTOR__WAL_KNOWN__INIT;
  r.view = k->view;
  trantor_wal_put(w, key, klen, &r.base);
}

void miri_pbft_wal_forget(pbft *p, Mir__StoreWrite *w, size_t i, const uint8_t *digest) {
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, TRANTOR_WAL_BATCH, p->slots[i].sn, digest);
  mir_storage_delete(w, key, klen);
  klen = pbft_key(p, key, TRANTOR_WAL_KNOWN, p->slots[i].sn, digest);
  mir_storage_delete(w, key, klen);
}

void miri_pbft_wal_slot(pbft *p, Mir__StoreWrite *w, char kind, size_t i, uint64_t view,
                        const uint8_t *digest) {
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, kind, p->slots[i].sn, NULL);
  Trantor__WalSlot r = TRANTOR__WAL_SLOT__INIT;
  r.view = view;
  r.digest = (ProtobufCBinaryData){PBFT_DIGEST, (uint8_t *)digest};
  trantor_wal_put(w, key, klen, &r.base);
}

void miri_pbft_wal_view(pbft *p, Mir__StoreWrite *w) {
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, TRANTOR_WAL_VIEW, 0, NULL);
  Trantor__WalView r = TRANTOR__WAL_VIEW__INIT;
  r.view = p->view;
  r.in_view_change = p->in_vc;
  trantor_wal_put(w, key, klen, &r.base);
}

void miri_pbft_wal_new_view(pbft *p, Mir__StoreWrite *w, const Trantor__NewView *nv) {
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = pbft_key(p, key, TRANTOR_WAL_NEW_VIEW, 0, NULL);
  trantor_wal_put(w, key, klen, &nv->base);
}

void miri_pbft_wal_emit(pbft *p, Mir__StoreWrite *w) {
  mir_dsl_emit(p->dsl, mir_event_store_write(p->store, p->mod_id, w));
}

void miri_pbft_persist_send_all(pbft *p, Mir__StoreWrite *w, const ProtobufCMessage *msg) {
  mir_storage_then(w, miri_pbft_send_all_event(p, msg));
  miri_pbft_wal_emit(p, w);
}

mir_event *miri_pbft_persisted_event(pbft *p, uint32_t kind) {
  Trantor__PbftPersisted *m = mir_xmalloc(sizeof(*m));
  trantor__pbft_persisted__init(m);
  m->kind = kind;
  m->view = p->view;
  return mir_event_new(p->mod_id, p->store, &m->base);
}

mir_err miri_pbft_on_persisted(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__PbftPersisted *m = (const Trantor__PbftPersisted *)ev->payload;
  if (strcmp(ev->src, p->store) != 0 && strcmp(ev->src, p->mod_id) != 0) {
    mir_counter_inc(p->st.stale_answers);
    return MIR_OK;
  }
  if (m->kind == MIRI_PBFT_PERSISTED_VIEW_CHANGE && m->view == p->view && p->in_vc &&
      p->my_vc != NULL) {
    p->vc_durable = true;
  } else if (m->kind == MIRI_PBFT_PERSISTED_NEW_VIEW && p->nvb.sent && p->nvb.view == m->view) {
    p->nv_durable = true;
  } else if (m->kind == MIRI_PBFT_PERSISTED_DONE && p->done) {
    p->done_durable = true;
  } else {
    mir_counter_inc(p->st.stale_answers); /* the view moved on meanwhile */
  }
  return MIR_OK;
}

/* ---- recovery ---- */

static mir_err pbft_bad_record(const pbft *p, const char *what, uint64_t sn) {
  return mir_error_set(MIR_EIO,
                       "%s: write-ahead log: %s (sn %" PRIu64
                       "): the log is damaged or was written under other parameters",
                       p->mod_id, what, sn);
}

/* Takes back the batches: sn in the segment, digest = H(sn, aborted, cert), certificate within
 * the limit, at most KNOWN_PER_SN_MAX per sn. */
static mir_err pbft_recover_batches(pbft *p, const Trantor__PbftRecovered *r) {
  for (size_t b = 0; b < r->n_batches; b++) {
    const Trantor__PbftRecoveredBatch *rb = r->batches[b];
    size_t i = miri_pbft_slot_of(p, rb->sn);
    if (i == PBFT_NONE) return pbft_bad_record(p, "a batch outside the segment", rb->sn);
    uint8_t d[PBFT_DIGEST];
    trantor_pbft_preprepare_digest(p->hash, rb->sn, rb->aborted, rb->cert.data, rb->cert.len, d);
    if (rb->digest.len != PBFT_DIGEST || memcmp(d, rb->digest.data, PBFT_DIGEST) != 0 ||
        rb->cert.len > p->params->max_cert_bytes || (rb->aborted && rb->cert.len != 0)) {
      return pbft_bad_record(p, "a batch that does not match its digest or the limits", rb->sn);
    }
    pbft_slot *s = &p->slots[i];
    if (miri_pbft_known_find(s, d) != NULL) continue;
    if (s->n_known == TRANTOR_PBFT_KNOWN_PER_SN_MAX) {
      return pbft_bad_record(p, "more batches than an sn holds", rb->sn);
    }
    pbft_known *k = &s->known[s->n_known++];
    memset(k, 0, sizeof(*k));
    memcpy(k->digest, d, PBFT_DIGEST);
    k->aborted = rb->aborted;
    k->in_qset = rb->preprepared;
    k->view = rb->preprepared ? rb->preprepared_view : 0;
    k->persisted = true;
    k->cert.len = rb->cert.len;
    k->cert.data = mir_xmemdup(rb->cert.data, rb->cert.len);
  }
  return MIR_OK;
}

/* The slot of a P-set, proposal or commit record, which must name a batch held for it. */
static mir_err pbft_recovered_slot(pbft *p, const Trantor__PbftRecoveredSlot *rs, const char *what,
                                   size_t *slot) {
  size_t i = miri_pbft_slot_of(p, rs->sn);
  if (i == PBFT_NONE || rs->digest.len != PBFT_DIGEST ||
      miri_pbft_known_find(&p->slots[i], rs->digest.data) == NULL) {
    return pbft_bad_record(p, what, rs->sn);
  }
  *slot = i;
  return MIR_OK;
}

/* The P-set, the proposals of the current view and the commits. */
static mir_err pbft_recover_slots(pbft *p, const Trantor__PbftRecovered *r) {
  size_t i = 0;
  for (size_t k = 0; k < r->n_prepared; k++) {
    const Trantor__PbftRecoveredSlot *rs = r->prepared[k];
    mir_err err = pbft_recovered_slot(p, rs, "a P-set entry without its batch", &i);
    if (err != MIR_OK) return err;
    if (rs->view > p->view) return pbft_bad_record(p, "prepared in a view not entered", rs->sn);
    pbft_slot *s = &p->slots[i];
    s->has_p = true;
    s->p_view = rs->view;
    memcpy(s->p_digest, rs->digest.data, PBFT_DIGEST);
  }
  for (size_t k = 0; k < r->n_proposed; k++) {
    const Trantor__PbftRecoveredSlot *rs = r->proposed[k];
    mir_err err = pbft_recovered_slot(p, rs, "a proposal without its batch", &i);
    if (err != MIR_OK) return err;
    if (rs->view != p->view || p->in_vc || p->passive) continue;
    /* Its Preprepare of this view is durable: the same one goes out again, never another. */
    p->slots[i].proposed = true;
    Trantor__Preprepare pp;
    miri_pbft_known_preprepare(miri_pbft_known_find(&p->slots[i], rs->digest.data), rs->sn, &pp);
    pp.view = p->view;
    mir_event *to_others = miri_pbft_send_others_event(p, &pp.base);
    if (to_others != NULL) mir_dsl_emit(p->dsl, to_others);
  }
  for (size_t k = 0; k < r->n_committed; k++) {
    const Trantor__PbftRecoveredSlot *rs = r->committed[k];
    mir_err err = pbft_recovered_slot(p, rs, "a commit without its batch", &i);
    if (err != MIR_OK) return err;
    if (p->slots[i].delivered) return pbft_bad_record(p, "two commits", rs->sn);
    memcpy(p->slots[i].c_digest, rs->digest.data, PBFT_DIGEST);
    p->slots[i].delivered = true; /* re-delivered below, in sn order */
  }
  return MIR_OK;
}

/* The current view's per-slot state from the Q-set and P-set: a preprepare accepted in this
 * view, prepared in it. */
static void pbft_recover_view_state(pbft *p) {
  if (p->in_vc) return;
  for (size_t i = 0; i < p->L; i++) {
    pbft_slot *s = &p->slots[i];
    for (size_t k = 0; k < s->n_known; k++) {
      const pbft_known *e = &s->known[k];
      if (!e->in_qset || e->view != p->view) continue;
      s->has_pp = true;
      memcpy(s->pp_digest, e->digest, PBFT_DIGEST);
    }
    s->prepared = s->has_pp && s->has_p && s->p_view == p->view &&
                  memcmp(s->p_digest, s->pp_digest, PBFT_DIGEST) == 0;
  }
}

/* Resends what the node said durably in the current view: its Prepares and Commits. Peers drop
 * what they have (one vote per sender, sn and view). */
static void pbft_resend_votes(pbft *p) {
  for (size_t i = 0; i < p->L; i++) {
    const pbft_slot *s = &p->slots[i];
    if (s->has_pp) mir_dsl_emit(p->dsl, miri_pbft_vote_event(p, s, false));
    if (s->has_pp && s->prepared) mir_dsl_emit(p->dsl, miri_pbft_vote_event(p, s, true));
  }
}

/* Re-delivers the recorded commits to iss, in sn order. */
static void pbft_redeliver(pbft *p) {
  for (size_t i = 0; i < p->L; i++) {
    if (!p->slots[i].delivered) continue;
    p->slots[i].delivered = false;
    uint8_t d[PBFT_DIGEST];
    memcpy(d, p->slots[i].c_digest, PBFT_DIGEST);
    miri_pbft_deliver(p, i, d);
  }
}

mir_err miri_pbft_recover(pbft *p) {
  const Trantor__PbftRecovered *r = p->params->recovered;
  if (r == NULL) return MIR_OK;
  if (r->view != NULL) {
    if (r->view->view > TRANTOR_PBFT_VIEW_MAX) return pbft_bad_record(p, "a view too high", 0);
    p->view = r->view->view;
    p->in_vc = r->view->in_view_change;
  }
  mir_err err = pbft_recover_batches(p, r);
  if (err == MIR_OK) err = pbft_recover_slots(p, r);
  if (err != MIR_OK) return err;
  if (r->new_view != NULL && r->new_view->view == p->view && p->view > 0) {
    if (p->self == miri_pbft_primary(p, p->view)) { /* the NewView it sent */
      p->nvb.view = p->view;
      p->nvb.sent = true;
      p->nvb.nv = (Trantor__NewView *)mir_message_clone(&r->new_view->base);
      p->nv_durable = true;
    }
    if (!p->in_vc) { /* the NewView it adopted, to relay */
      p->adopted_nv = (Trantor__NewView *)mir_message_clone(&r->new_view->base);
    }
  }
  pbft_recover_view_state(p);
  mir_log(MIR_LOG_DEBUG, PBFT_LOG, "%s: recovered view %" PRIu64 "%s, %zu batches, %zu commits",
          p->mod_id, p->view, p->in_vc ? " (view change)" : "", r->n_batches, r->n_committed);
  pbft_redeliver(p);
  if (!p->passive) pbft_resend_votes(p);
  return MIR_OK;
}
