/*
 * ISS: epochs, segments and the commit log (iss.h, docs/PROTOCOL.md "ISS").
 *
 * Epoch e starts at first_sn with the leaders the policy gives; segment i (leader L[i]) owns the
 * interleaved sns first_sn + i + j*k and proposes from the buckets b with (b + e) mod k == i
 * (layout.h). Each segment is a PBFT instance ordering/<e>/<i> created through the ordering
 * factory with retention index e. Instances decide sns out of order and report them with
 * SbDeliver; availability verifies each committed certificate (VerifyCert), and the commit log
 * hands the slots to the batch fetcher strictly in sn order as DeliverCert.
 * After the last sn of epoch e, ISS starts epoch e+1 at once (ordering never waits for the
 * checkpoint): it creates checkpoint/<e+1> and sends NewEpoch and SnapshotRequest through the
 * batch fetcher, so that they sit at their place in the log.
 *
 * Invariants:
 *  - cur.first_sn <= next_sn < cur.first_sn + cur.length while started; every sn below next_sn
 *    was delivered exactly once, in order;
 *  - log slots are filled only for sns >= next_sn, each reported by the instance that owns it;
 *    a slot is delivered only once availability has checked its certificate (limits and the
 *    segment's buckets), an invalid certificate being delivered as an empty slot;
 *  - suspicions of epoch e are recorded before epoch e+1's leaders are computed, and they depend
 *    only on the committed log, so every correct node computes the same leaders.
 * SbDeliver comes from local instances, but the checks are those of peer input anyway: an event
 * that does not fit is dropped and counted, never asserted on.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iss_internal.h"
#include "layout.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.pb-c.h"
#include "mir/log.h"
#include "mir/registry.h"
#include "mir/timer.h"
#include "trantor_common.h"
#include "wal.h"

/* ---- lifecycle ---- */

void miri_iss_epoch_clear(iss *s) {
  for (uint64_t i = 0; s->log != NULL && i < s->cur.length; i++) free(s->log[i].cert.data);
  free(s->log);
  s->log = NULL;
  free(s->seg_low);
  free(s->seg_needed);
  s->seg_low = s->seg_needed = NULL;
  for (size_t i = 0; s->leaders != NULL && i < s->cur.k; i++) free(s->leaders[i]);
  free(s->leaders);
  s->leaders = NULL;
}

static void iss_free(void *p) {
  iss *s = p;
  if (s == NULL) return;
  miri_iss_epoch_clear(s);
  if (s->recovered != NULL) protobuf_c_message_free_unpacked(&s->recovered->base, NULL);
  if (s->rejoin_best != NULL) protobuf_c_message_free_unpacked(&s->rejoin_best->base, NULL);
  free(s->rejoin_epoch);
  free(s->rejoin_asked);
  free(s->hist);
  free(s->node_epoch);
  free(s->transfer_pending);
  if (s->stable != NULL) protobuf_c_message_free_unpacked(&s->stable->base, NULL);
  if (s->membership != NULL) protobuf_c_message_free_unpacked(&s->membership->base, NULL);
  trantor_lp_free(s->policy);
  free(s);
}

/* ---- starting an epoch ---- */

/* The records the log held for PBFT instance (epoch, segment), or NULL (borrowed from s). */
static Trantor__PbftRecovered *iss_recovered_pbft(const iss *s, uint64_t epoch, size_t segment) {
  const Trantor__Recovered *r = s->recovered;
  for (size_t i = 0; r != NULL && i < r->n_instances; i++) {
    if (r->instances[i]->epoch == epoch && r->instances[i]->segment == segment) {
      return r->instances[i]->pbft;
    }
  }
  return NULL;
}

/* The own checkpoint signature the log held for epoch, or NULL (borrowed from s). */
static Trantor__WalCheckpointSig *iss_recovered_sig(const iss *s, uint64_t epoch) {
  const Trantor__Recovered *r = s->recovered;
  for (size_t i = 0; r != NULL && i < r->n_checkpoint_sigs; i++) {
    if (r->checkpoint_sigs[i]->epoch == epoch) return r->checkpoint_sigs[i]->sig;
  }
  return NULL;
}

/* Frees the recovered records once no epoch they belong to can start any more. */
static void iss_recovered_release(iss *s) {
  const Trantor__Recovered *r = s->recovered;
  if (r == NULL) return;
  for (size_t i = 0; i < r->n_instances; i++) {
    if (r->instances[i]->epoch > s->cur.nr) return;
  }
  for (size_t i = 0; i < r->n_checkpoint_sigs; i++) {
    if (r->checkpoint_sigs[i]->epoch > s->cur.nr) return;
  }
  protobuf_c_message_free_unpacked(&s->recovered->base, NULL);
  s->recovered = NULL;
}

/* Emits NewSubmodule for checkpoint/<nr>: signed by the previous epoch's members (with a static
 * membership, the same members; for the genesis, the epoch's own). */
static void iss_create_checkpoint(mir_dsl *dsl, iss *s) {
  Trantor__EpochConfig ec = TRANTOR__EPOCH_CONFIG__INIT;
  ec.epoch = s->cur.nr;
  ec.first_sn = s->cur.first_sn;
  ec.length = s->cur.length;
  ec.membership = s->membership;
  Trantor__CheckpointParams cp = TRANTOR__CHECKPOINT_PARAMS__INIT;
  cp.epoch_config = &ec;
  cp.signers = s->membership;
  trantor_lp_to_bytes(s->policy, &cp.leader_policy.data, &cp.leader_policy.len);
  cp.resend_ms = s->params.checkpoint_resend_ms;
  cp.store = s->store;
  cp.recovered = iss_recovered_sig(s, s->cur.nr);
  cp.passive = s->cur.nr < s->vote_floor;
  char sub[MIR_MODULE_ID_MAX];
  snprintf(sub, sizeof(sub), "%s/%" PRIu64, s->checkpoint, s->cur.nr);
  mir_dsl_emit(dsl, mir_event_new_submodule(s->checkpoint, s->id, sub, &cp.base, s->cur.nr));
  free(cp.leader_policy.data);
}

/* Emits NewEpoch then SnapshotRequest to the batch fetcher, which keeps them in log order: the
 * snapshot of epoch nr covers exactly the sns before first_sn. */
static void iss_announce_epoch(mir_dsl *dsl, iss *s) {
  Trantor__NewEpoch *ne = mir_xmalloc(sizeof(*ne));
  trantor__new_epoch__init(ne);
  ne->epoch = s->cur.nr;
  ne->first_sn = s->cur.first_sn;
  ne->length = s->cur.length;
  ne->membership = (Trantor__Membership *)mir_message_clone(&s->membership->base);
  ne->n_leaders = s->cur.k;
  ne->leaders = mir_xmalloc(s->cur.k * sizeof(*ne->leaders));
  for (size_t i = 0; i < s->cur.k; i++) ne->leaders[i] = mir_xstrdup(s->leaders[i]);
  mir_dsl_emit_new(dsl, s->batchfetcher, &ne->base);

  Trantor__SnapshotRequest *sr = mir_xmalloc(sizeof(*sr));
  trantor__snapshot_request__init(sr);
  sr->epoch = s->cur.nr;
  sr->sn = s->cur.first_sn;
  char reply_to[MIR_MODULE_ID_MAX];
  snprintf(reply_to, sizeof(reply_to), "%s/%" PRIu64, s->checkpoint, s->cur.nr);
  sr->reply_to = mir_xstrdup(reply_to);
  mir_dsl_emit_new(dsl, s->batchfetcher, &sr->base);
}

/* Emits NewSubmodule for ordering/<nr>/<i> with the segment's sns, buckets and timeouts. */
static void iss_create_segment(mir_dsl *dsl, iss *s, size_t i) {
  const trantor_params *pp = &s->params;
  Trantor__PbftParams p = TRANTOR__PBFT_PARAMS__INIT;
  p.epoch = s->cur.nr;
  p.segment = (uint32_t)i;
  p.leader = s->leaders[i];
  p.membership = s->membership;
  p.n_sns = pp->segment_length;
  p.sns = mir_xmalloc(p.n_sns * sizeof(*p.sns));
  for (uint64_t j = 0; j < p.n_sns; j++) {
    p.sns[j] = trantor_layout_sn(s->cur.first_sn, s->cur.k, i, j);
  }
  size_t nb = trantor_layout_bucket_count(s->cur.nr, s->cur.k, i, pp->num_buckets);
  p.buckets = nb > 0 ? mir_xmalloc(nb * sizeof(*p.buckets)) : NULL;
  p.n_buckets = trantor_layout_buckets(s->cur.nr, s->cur.k, i, pp->num_buckets, p.buckets, nb);
  p.view_change_sn_timeout_ms = pp->view_change_sn_timeout_ms;
  p.view_change_segment_timeout_ms = pp->view_change_segment_timeout_ms;
  p.done_resend_ms = pp->done_resend_ms;
  p.catch_up_delay_ms = pp->catch_up_delay_ms;
  p.view_change_resend_ms = pp->view_change_resend_ms;
  p.msg_buf_bytes = pp->msg_buf_bytes;
  p.max_cert_bytes = s->max_cert_bytes;
  p.store = s->store;
  p.active = s->active;
  p.recovered = iss_recovered_pbft(s, s->cur.nr, i);
  p.passive = s->cur.nr < s->vote_floor;
  if (p.recovered != NULL) mir_counter_inc(s->stats.recovered_instances);
  char sub[MIR_MODULE_ID_MAX];
  snprintf(sub, sizeof(sub), "%s/%" PRIu64 "/%zu", s->ordering, s->cur.nr, i);
  mir_dsl_emit(dsl, mir_event_new_submodule(s->ordering, s->id, sub, &p.base, s->cur.nr));
  free(p.sns);
  free(p.buckets);
}

mir_err miri_iss_start_epoch(mir_dsl *dsl, iss *s, uint64_t nr, uint64_t first_sn) {
  MIR_ASSERT(s->log == NULL && s->leaders == NULL);
  const char **ids = mir_xmalloc(s->membership->n_members * sizeof(*ids));
  size_t k = trantor_lp_leaders(s->policy, ids, s->membership->n_members);
  uint64_t length = (uint64_t)k * s->params.segment_length;
  if (first_sn > UINT64_MAX - length) {
    free(ids);
    return mir_error_set(MIR_EINVAL, "%s: sequence numbers exhausted at epoch %" PRIu64, s->id, nr);
  }
  s->leaders = mir_xmalloc(k * sizeof(*s->leaders));
  for (size_t i = 0; i < k; i++) s->leaders[i] = mir_xstrdup(ids[i]);
  free(ids);
  s->cur = (iss_epoch_info){.nr = nr, .first_sn = first_sn, .length = length, .k = k};
  s->log = mir_xcalloc(length, sizeof(*s->log));
  s->seg_low = mir_xcalloc(k, sizeof(*s->seg_low));
  s->seg_needed = mir_xcalloc(k, sizeof(*s->seg_needed));
  s->epoch_decided = false;
  s->idle_seen = false;
  s->next_sn = first_sn;
  mir_gauge_set(s->stats.epoch, (int64_t)nr);
  mir_gauge_set(s->stats.next_sn, (int64_t)first_sn);
  /* checkpoint/<nr> exists before the SnapshotRequest can come back to it as a Snapshot: the
   * checkpoint factory applies its events in the order they were routed. */
  iss_create_checkpoint(dsl, s);
  iss_announce_epoch(dsl, s);
  for (size_t i = 0; i < k; i++) iss_create_segment(dsl, s, i);
  iss_recovered_release(s);
  mir_log(MIR_LOG_DEBUG, ISS_LOG, "%s: epoch %" PRIu64 " starts at sn %" PRIu64 ", %zu leaders%s",
          s->self, nr, first_sn, k, nr < s->vote_floor ? " (passive: rejoining)" : "");
  return MIR_OK;
}

mir_err miri_iss_start_or_block(mir_dsl *dsl, iss *s, uint64_t nr, uint64_t first_sn) {
  if (nr > s->durable_epoch + s->params.epochs_ahead_max) {
    s->start_blocked = true;
    s->blocked_nr = nr;
    s->blocked_first = first_sn;
    mir_counter_inc(s->stats.blocked_starts);
    mir_log(MIR_LOG_DEBUG, ISS_LOG,
            "%s: epoch %" PRIu64 " waits for a durable checkpoint (latest: epoch %" PRIu64 ")",
            s->self, nr, s->durable_epoch);
    return MIR_OK;
  }
  s->start_blocked = false;
  return miri_iss_start_epoch(dsl, s, nr, first_sn);
}

/* Ends the current epoch (every sn delivered) and starts the next one right away. */
static mir_err iss_advance(mir_dsl *dsl, iss *s) {
  if (s->params.retained_epochs > 0) {
    if (s->n_hist == s->params.retained_epochs) {
      memmove(s->hist, s->hist + 1, (s->n_hist - 1) * sizeof(*s->hist));
      s->n_hist--;
    }
    s->hist[s->n_hist++] = s->cur;
  }
  uint64_t nr = s->cur.nr + 1, first = s->cur.first_sn + s->cur.length;
  miri_iss_epoch_clear(s);
  /* Suspicions of the finished epoch carry over; with a static membership the reconfiguration
   * keeps every member. */
  mir_err err = trantor_lp_reconfigure(s->policy, s->membership);
  if (err != MIR_OK) return err;
  return miri_iss_start_or_block(dsl, s, nr, first);
}

/* ---- the commit log ---- */

/* Delivers every consecutive ready slot from next_sn, and moves to the next epoch after the
 * last sn of the current one. */
static mir_err iss_deliver_ready(mir_dsl *dsl, iss *s) {
  while (s->next_sn - s->cur.first_sn < s->cur.length) {
    iss_slot *slot = &s->log[s->next_sn - s->cur.first_sn];
    if (slot->state != ISS_SLOT_READY) return MIR_OK;
    Trantor__DeliverCert *dc = mir_xmalloc(sizeof(*dc));
    trantor__deliver_cert__init(dc);
    dc->sn = s->next_sn;
    dc->epoch = s->cur.nr;
    dc->cert = slot->cert; /* ownership moves to the event */
    dc->aborted = slot->aborted;
    slot->cert.data = NULL;
    slot->cert.len = 0;
    mir_dsl_emit_new(dsl, s->batchfetcher, &dc->base);
    s->next_sn++;
    mir_gauge_set(s->stats.next_sn, (int64_t)s->next_sn);
    mir_counter_inc(s->stats.delivered);
    if (s->next_sn - s->cur.first_sn == s->cur.length) {
      mir_err err = iss_advance(dsl, s); /* the new epoch's log is empty: the loop ends */
      if (err != MIR_OK) return err;
    }
  }
  return MIR_OK;
}

/* The layout of epoch nr if it is the current one or a retained finished one, else NULL. */
static const iss_epoch_info *iss_epoch_lookup(const iss *s, uint64_t nr) {
  if (nr == s->cur.nr) return &s->cur;
  for (size_t i = 0; i < s->n_hist; i++) {
    if (s->hist[i].nr == nr) return &s->hist[i];
  }
  return NULL;
}

/* True if d was reported by the instance that owns its sn: the event's source must be
 * ordering/<epoch>/<segment> of a known epoch, and the sn must be one of that segment's. */
static bool iss_sbd_valid(const iss *s, const mir_event *ev, const Trantor__SbDeliver *d) {
  const iss_epoch_info *ep = iss_epoch_lookup(s, d->epoch);
  if (ep == NULL || d->segment >= ep->k) return false;
  char want[MIR_MODULE_ID_MAX];
  snprintf(want, sizeof(want), "%s/%" PRIu64 "/%" PRIu32, s->ordering, d->epoch, d->segment);
  if (strcmp(ev->src, want) != 0) return false;
  size_t seg;
  return trantor_layout_segment_of(ep->first_sn, ep->k, s->params.segment_length, d->sn, &seg) &&
         seg == d->segment;
}

/* Makes a slot deliverable as empty and blames its segment's leader: an aborted slot means the
 * leader did not get it ordered in view 0, an invalid certificate means it proposed one (both
 * feed the blacklist policy; every correct node sees the same slots, so the same suspicions). */
static void iss_slot_abort(iss *s, iss_slot *slot, size_t segment) {
  free(slot->cert.data);
  slot->cert.data = NULL;
  slot->cert.len = 0;
  slot->aborted = true;
  slot->state = ISS_SLOT_READY;
  trantor_lp_suspect(s->policy, s->cur.nr, s->leaders[segment]);
  mir_counter_inc(s->stats.suspicions);
}

/* Asks availability whether the certificate of sn respects the limits and the buckets of its
 * segment (docs/PROTOCOL.md, "Buckets"). The answer comes back with context id = sn, which is
 * unique across epochs, so no context needs storing. */
static void iss_request_verify(mir_dsl *dsl, iss *s, uint64_t sn, size_t segment,
                               const iss_slot *slot) {
  Trantor__VerifyCert *vc = mir_xmalloc(sizeof(*vc));
  trantor__verify_cert__init(vc);
  vc->cert.len = slot->cert.len;
  vc->cert.data = mir_xmemdup(slot->cert.data, slot->cert.len);
  vc->epoch = s->cur.nr;
  size_t nb = trantor_layout_bucket_count(s->cur.nr, s->cur.k, segment, s->params.num_buckets);
  vc->buckets = nb > 0 ? mir_xmalloc(nb * sizeof(*vc->buckets)) : NULL;
  vc->n_buckets =
      trantor_layout_buckets(s->cur.nr, s->cur.k, segment, s->params.num_buckets, vc->buckets, nb);
  vc->origin = mir_dsl_origin_new(dsl, sn);
  mir_dsl_emit_new(dsl, s->availability, &vc->base);
}

/* Every segment with an undecided sn below sn holds up the log up to there: it gets Needed{sn}
 * (once per increase): its primary proposes for those sns even with nothing to propose, and its
 * members expect them (docs/PROTOCOL.md, "Idle"). */
static void iss_need(mir_dsl *dsl, iss *s, uint64_t sn) {
  uint32_t seg_len = s->params.segment_length;
  for (size_t i = 0; i < s->cur.k; i++) {
    while (s->seg_low[i] < seg_len) {
      uint64_t low = trantor_layout_sn(s->cur.first_sn, s->cur.k, i, s->seg_low[i]);
      if (s->log[low - s->cur.first_sn].state == ISS_SLOT_EMPTY) break;
      s->seg_low[i]++;
    }
    if (s->seg_low[i] == seg_len || s->seg_needed[i] >= sn) continue;
    if (trantor_layout_sn(s->cur.first_sn, s->cur.k, i, s->seg_low[i]) >= sn) continue;
    s->seg_needed[i] = sn;
    Trantor__Needed *n = mir_xmalloc(sizeof(*n));
    trantor__needed__init(n);
    n->up_to_sn = sn;
    char sub[MIR_MODULE_ID_MAX];
    snprintf(sub, sizeof(sub), "%s/%" PRIu64 "/%zu", s->ordering, s->cur.nr, i);
    mir_dsl_emit_new(dsl, sub, &n->base);
  }
}

/* The slot of sn was just decided: the log waits for every sn below it. */
static void iss_gaps(mir_dsl *dsl, iss *s, uint64_t sn) {
  s->epoch_decided = true;
  iss_need(dsl, s, sn);
}

void miri_iss_idle_tick(mir_dsl *dsl, iss *s) {
  /* A begun epoch is finished once the node has been idle for a whole push period: its segments
   * fill their remaining sns (empty), so that every segment completes and sends Done, and a
   * replica that lags behind in it can catch up; the next epoch then stays empty and quiet. Not
   * at once: a cluster under a light load goes idle between transactions, and would otherwise
   * churn through an epoch of empty sns each time. */
  if (s->active || s->log == NULL || !s->epoch_decided) {
    s->idle_seen = false;
    return;
  }
  if (!s->idle_seen) {
    s->idle_seen = true;
    return;
  }
  iss_need(dsl, s, s->cur.first_sn + s->cur.length);
}

/* The mempool went from empty to holding transactions, or back: every segment of the current
 * epoch learns it (later epochs get it in their parameters). */
static mir_err iss_on_activity(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  s->active = ((const Trantor__Activity *)ev->payload)->active;
  if (s->active) s->idle_seen = false;
  for (size_t i = 0; s->log != NULL && i < s->cur.k; i++) {
    Trantor__Activity *a = mir_xmalloc(sizeof(*a));
    trantor__activity__init(a);
    a->active = s->active;
    char sub[MIR_MODULE_ID_MAX];
    snprintf(sub, sizeof(sub), "%s/%" PRIu64 "/%zu", s->ordering, s->cur.nr, i);
    mir_dsl_emit_new(dsl, sub, &a->base);
  }
  return MIR_OK;
}

static mir_err iss_on_sb_deliver(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  const Trantor__SbDeliver *d = (const Trantor__SbDeliver *)ev->payload;
  if (s->log == NULL || !iss_sbd_valid(s, ev, d)) {
    mir_counter_inc(s->stats.invalid_deliver);
    mir_log(MIR_LOG_DEBUG, ISS_LOG, "%s: dropping SbDeliver of sn %" PRIu64 " from %s", s->self,
            d->sn, ev->src);
    return MIR_OK;
  }
  if (d->epoch != s->cur.nr || d->sn < s->next_sn ||
      s->log[d->sn - s->cur.first_sn].state != ISS_SLOT_EMPTY) {
    mir_counter_inc(s->stats.duplicates); /* a finished epoch, or an sn already in the log */
    return MIR_OK;
  }
  iss_slot *slot = &s->log[d->sn - s->cur.first_sn];
  if (d->aborted) {
    iss_slot_abort(s, slot, d->segment);
    iss_gaps(dsl, s, d->sn);
    return iss_deliver_ready(dsl, s);
  }
  if (d->cert.len > s->max_cert_bytes) {
    /* PBFT enforces the same bound, so this is deterministic at every correct node. */
    mir_counter_inc(s->stats.oversized_certs);
    iss_slot_abort(s, slot, d->segment);
    iss_gaps(dsl, s, d->sn);
    return iss_deliver_ready(dsl, s);
  }
  slot->state = ISS_SLOT_VERIFYING;
  slot->cert.len = d->cert.len;
  slot->cert.data = mir_xmemdup(d->cert.data, d->cert.len);
  iss_request_verify(dsl, s, d->sn, d->segment, slot);
  iss_gaps(dsl, s, d->sn);
  return MIR_OK;
}

static mir_err iss_on_cert_verified(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  const Trantor__CertVerified *cv = (const Trantor__CertVerified *)ev->payload;
  const Mir__Origin *o = cv->origin;
  uint64_t sn = o != NULL ? o->context_id : 0;
  size_t segment;
  /* Only a verdict for a slot of the current epoch that waits for one counts: after a state
   * transfer, verdicts for the abandoned epoch find no such slot. */
  if (o == NULL || o->module == NULL || strcmp(o->module, s->id) != 0 || s->log == NULL ||
      !trantor_layout_segment_of(s->cur.first_sn, s->cur.k, s->params.segment_length, sn,
                                 &segment) ||
      s->log[sn - s->cur.first_sn].state != ISS_SLOT_VERIFYING) {
    mir_counter_inc(s->stats.stale_verdicts);
    return MIR_OK;
  }
  iss_slot *slot = &s->log[sn - s->cur.first_sn];
  if (cv->valid) {
    slot->state = ISS_SLOT_READY;
  } else {
    mir_counter_inc(s->stats.invalid_certs);
    mir_log(MIR_LOG_INFO, ISS_LOG, "%s: invalid certificate at sn %" PRIu64 " from leader %s: %s",
            s->self, sn, s->leaders[segment], cv->reason != NULL ? cv->reason : "");
    iss_slot_abort(s, slot, segment);
  }
  return iss_deliver_ready(dsl, s);
}

static mir_err iss_on_init(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)ev;
  iss *s = user;
  if (s->started) return mir_error_set(MIR_EINVAL, "%s: second Init", s->id);
  s->started = true;
  miri_iss_arm_push(dsl, s);
  /* The genesis starts at the end of this batch (iss_after_batch), so that a RestoreState the
   * embedding application queued before the node started, which arrives in this batch, can
   * replace it. */
  s->genesis_pending = true;
  return MIR_OK;
}

/* Writes the fingerprint of the membership and parameters into the log, once. */
static void iss_write_params(mir_dsl *dsl, iss *s) {
  if (s->params_written) return;
  s->params_written = true;
  uint8_t h[32];
  trantor_wal_params_hash(s->hash, s->membership, &s->params, h);
  Trantor__WalParams wp = TRANTOR__WAL_PARAMS__INIT;
  wp.hash = (ProtobufCBinaryData){sizeof h, h};
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = trantor_wal_params_key(key);
  Mir__StoreWrite *w = mir_storage_write_new();
  trantor_wal_put(w, key, klen, &wp.base);
  mir_dsl_emit(dsl, mir_event_store_write(s->store, s->id, w));
}

/* What the replica's write-ahead log held at start-up (a local event from the embedding
 * application, never a peer's message), in the batch of Init: the votes of every instance are
 * kept for when ISS creates it again, the stable checkpoint replaces the genesis. */
static mir_err iss_on_recovered(mir_dsl *dsl, const mir_event *ev, void *user) {
  iss *s = user;
  if (!s->genesis_pending || s->recovered != NULL) {
    return mir_error_set(MIR_EINVAL,
                         "%s: Recovered from %s after the start: it must be queued "
                         "before the node starts",
                         s->id, ev->src);
  }
  Trantor__Recovered *r = (Trantor__Recovered *)ev->payload;
  uint8_t h[32];
  trantor_wal_params_hash(s->hash, s->membership, &s->params, h);
  if (r->params_hash.len != 0) {
    if (r->params_hash.len != sizeof h || memcmp(r->params_hash.data, h, sizeof h) != 0) {
      return mir_error_set(MIR_ECONFIG,
                           "%s: the write-ahead log was written under another membership or "
                           "other Trantor parameters: a replica restarts with the ones it voted "
                           "with (or rejoins with its data removed)",
                           s->id);
    }
    s->params_written = true;
  }
  s->vote_floor = r->vote_floor;
  /* Keep the records: the instances take them when they are created. */
  s->recovered = (Trantor__Recovered *)mir_message_clone(&r->base);
  if (r->rejoin) return miri_iss_rejoin_start(dsl, s);
  if (r->checkpoint == NULL) return MIR_OK;
  mir_error_clear();
  if (miri_iss_install_local(dsl, s, r->checkpoint) != MIR_OK) {
    /* Only stable, verified checkpoints are written: one that does not fit means the log was not
     * written by this replica's configuration. */
    mir_counter_inc(s->stats.local_restores_rejected);
    char detail[256];
    snprintf(detail, sizeof detail, "%s", mir_error_detail());
    return mir_error_set(MIR_EIO, "%s: the stored checkpoint does not fit: %s", s->id, detail);
  }
  return MIR_OK;
}

/* Genesis: epoch 0 starts at sn 0 with the initial membership, unless a checkpoint replaced it. */
/* Sets the gauges that follow the state (after the other after-batch work). */
static mir_err iss_publish(mir_dsl *dsl, void *user) {
  (void)dsl;
  const iss *s = user;
  mir_gauge_set(s->stats.durable_epoch, (int64_t)s->durable_epoch);
  mir_gauge_set(s->stats.vote_floor, (int64_t)s->vote_floor);
  mir_gauge_set(s->stats.rejoining, s->rejoining);
  return MIR_OK;
}

/* Registers the module's metrics in set m (the dsl's). */
static void iss_metrics_init(iss *s, mir_metrics *m) {
  static const char sb_help[] =
      "Deliveries from PBFT instances ISS dropped, by reason "
      "(duplicate: an sn already in the log; invalid: wrong instance).";
  static const char empty_help[] =
      "Committed certificates delivered as empty batches, by reason "
      "(oversized, or invalid_cert: availability rejected it).";
  static const char chkp_help[] = "Peers' stable checkpoint messages ISS dropped, by reason.";
  iss_metrics *st = &s->stats;
  st->epoch = mir_metrics_gauge_max(m, "mir_iss_epoch", "ISS's current epoch.", NULL, NULL);
  st->next_sn = mir_metrics_gauge_max(m, "mir_iss_next_sn",
                                      "The next sequence number ISS delivers.", NULL, NULL);
  st->stable_epoch = mir_metrics_gauge_max(m, "mir_iss_stable_checkpoint_epoch",
                                           "Epoch of the last stable checkpoint.", NULL, NULL);
  st->gc_index = mir_metrics_gauge_max(m, "mir_iss_gc_epoch",
                                       "Highest retention index garbage-collected.", NULL, NULL);
  st->durable_epoch =
      mir_metrics_gauge_max(m, "mir_iss_durable_checkpoint_epoch",
                            "Epoch of the latest stable checkpoint known durable.", NULL, NULL);
  st->vote_floor = mir_metrics_gauge_max(
      m, "mir_iss_vote_floor_epoch", "No votes below this epoch (a rejoined replica).", NULL, NULL);
  st->rejoining = mir_metrics_gauge(
      m, "mir_iss_rejoining", "1 while the replica waits for its peers' checkpoints.", NULL, NULL);
  st->delivered = mir_metrics_counter(m, "mir_iss_delivered_total",
                                      "Sequence numbers ISS delivered in order.", NULL, NULL);
  st->duplicates =
      mir_metrics_counter(m, "mir_iss_sb_deliveries_dropped_total", sb_help, "reason", "duplicate");
  st->invalid_deliver =
      mir_metrics_counter(m, "mir_iss_sb_deliveries_dropped_total", sb_help, "reason", "invalid");
  st->oversized_certs =
      mir_metrics_counter(m, "mir_iss_empty_deliveries_total", empty_help, "reason", "oversized");
  st->invalid_certs = mir_metrics_counter(m, "mir_iss_empty_deliveries_total", empty_help, "reason",
                                          "invalid_cert");
  st->stale_verdicts = mir_metrics_counter(m, "mir_iss_stale_verdicts_total",
                                           "Certificate verdicts for no waiting slot.", NULL, NULL);
  st->suspicions =
      mir_metrics_counter(m, "mir_iss_suspicions_total",
                          "Aborted or invalid slots that suspected their leader.", NULL, NULL);
  st->pushes = mir_metrics_counter(m, "mir_iss_checkpoint_pushes_total",
                                   "Stable checkpoint messages sent to lagging peers.", NULL, NULL);
  st->transfer_dropped = mir_metrics_counter(m, "mir_iss_checkpoint_messages_dropped_total",
                                             chkp_help, "reason", "invalid");
  st->transfer_stale = mir_metrics_counter(m, "mir_iss_checkpoint_messages_dropped_total",
                                           chkp_help, "reason", "stale");
  st->transfer_busy = mir_metrics_counter(m, "mir_iss_checkpoint_messages_dropped_total", chkp_help,
                                          "reason", "busy");
  st->transfer_bad_sig = mir_metrics_counter(m, "mir_iss_checkpoint_messages_dropped_total",
                                             chkp_help, "reason", "bad_signature");
  st->transfers = mir_metrics_counter(m, "mir_iss_state_transfers_total",
                                      "Checkpoints installed by state transfer.", NULL, NULL);
  st->local_restores = mir_metrics_counter(m, "mir_iss_local_restores_total",
                                           "Stored checkpoints installed at start-up.", NULL, NULL);
  st->local_restores_rejected = mir_metrics_counter(
      m, "mir_iss_local_restores_rejected_total",
      "Stored checkpoints that did not fit at start-up (genesis instead).", NULL, NULL);
  st->recovered_instances = mir_metrics_counter(
      m, "mir_iss_recovered_instances_total",
      "PBFT instances created with their log records after a restart.", NULL, NULL);
  st->blocked_starts =
      mir_metrics_counter(m, "mir_iss_blocked_epoch_starts_total",
                          "Epochs that waited for a durable checkpoint.", NULL, NULL);
  st->rejoin_answers =
      mir_metrics_counter(m, "mir_iss_rejoin_answers_total", "Rejoin answers counted.", NULL, NULL);
}

static mir_err iss_after_batch(mir_dsl *dsl, void *user) {
  iss *s = user;
  if (!s->started) return MIR_OK;
  iss_write_params(dsl, s); /* once: the log's first record */
  if (!s->genesis_pending) return MIR_OK;
  s->genesis_pending = false;
  if (s->rejoining) return MIR_OK; /* iss_rejoin.c starts the first epoch */
  return miri_iss_start_epoch(dsl, s, 0, 0);
}

/* ---- construction ---- */

uint64_t trantor_iss_default_max_cert_bytes(const trantor_params *params) {
  /* Per transaction: a client id of at most TRANTOR_CLIENT_ID_MAX bytes, a tx number, and the
   * tags and length prefixes of the Tx and Batch framing, well below 128 bytes. */
  return params->max_batch_bytes + (uint64_t)params->max_batch_txs * 128 + 64;
}

void trantor_iss_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &trantor__pbft_params__descriptor,     &trantor__checkpoint_params__descriptor,
      &trantor__push_checkpoint__descriptor, &trantor__stable_checkpoint_msg__descriptor,
      &trantor__sb_deliver__descriptor,      &trantor__checkpoint_stable__descriptor,
      &trantor__epoch_progress__descriptor,  &trantor__deliver_cert__descriptor,
      &trantor__new_epoch__descriptor,       &trantor__snapshot_request__descriptor,
      &trantor__restore_state__descriptor,   &trantor__checkpoint_notice__descriptor,
      &trantor__recovered__descriptor,       &trantor__checkpoint_durable__descriptor,
      &trantor__rejoin_request__descriptor,  &trantor__rejoin_answer__descriptor,
      &trantor__activity__descriptor,        &trantor__needed__descriptor,
  };
  mir_err err = mir_registry_add_all(types, sizeof(types) / sizeof(types[0]));
  MIR_ASSERT(err == MIR_OK); /* a few types, far below the registry's bound */
}

/* Copies id (or dflt when NULL) into dst (room for max bytes); MIR_EINVAL unless a valid id of at
 * most max - 1 characters. */
static mir_err iss_copy_id(char *dst, const char *id, const char *dflt, size_t max) {
  const char *v = id != NULL ? id : dflt;
  if (!mir_module_id_valid(v) || strlen(v) >= max) {
    return mir_error_set(MIR_EINVAL, "iss: invalid module id '%.64s'", v);
  }
  strcpy(dst, v);
  return MIR_OK;
}

static mir_err iss_copy_ids(iss *s, const trantor_iss_config *cfg) {
  mir_err err = iss_copy_id(s->self, cfg->self_id, "", MIR_MODULE_ID_MAX);
  if (err == MIR_OK) err = iss_copy_id(s->id, cfg->module_id, "iss", MIR_MODULE_ID_MAX);
  if (err == MIR_OK) {
    err = iss_copy_id(s->ordering, cfg->ordering_id, "ordering", sizeof(s->ordering));
  }
  if (err == MIR_OK) {
    err = iss_copy_id(s->checkpoint, cfg->checkpoint_id, "checkpoint", sizeof(s->checkpoint));
  }
  if (err == MIR_OK) {
    err = iss_copy_id(s->batchfetcher, cfg->batchfetcher_id, "batchfetcher", MIR_MODULE_ID_MAX);
  }
  if (err == MIR_OK) err = iss_copy_id(s->timer, cfg->timer_id, "timer", MIR_MODULE_ID_MAX);
  if (err == MIR_OK) err = iss_copy_id(s->net, cfg->net_id, "net", MIR_MODULE_ID_MAX);
  if (err == MIR_OK) err = iss_copy_id(s->crypto, cfg->crypto_id, "crypto", MIR_MODULE_ID_MAX);
  if (err == MIR_OK) {
    err = iss_copy_id(s->availability, cfg->availability_id, "availability", MIR_MODULE_ID_MAX);
  }
  if (err == MIR_OK) err = iss_copy_id(s->store, cfg->store_id, "store", MIR_MODULE_ID_MAX);
  return err;
}

static mir_err iss_check_config(const trantor_iss_config *cfg) {
  if (cfg == NULL || cfg->self_id == NULL || cfg->params == NULL || cfg->hash == NULL) {
    return mir_error_set(MIR_EINVAL, "iss: config needs self_id, params and hash");
  }
  mir_err err = trantor_params_check(cfg->params);
  if (err != MIR_OK) return err;
  err = trantor_membership_check(cfg->membership);
  if (err != MIR_OK) return mir_error_set(MIR_EINVAL, "iss: %s", mir_error_detail());
  uint64_t push = cfg->push_period_ms;
  if (push > MIR_TIMER_DURATION_MS_MAX) return mir_error_set(MIR_EINVAL, "iss: push period");
  return MIR_OK;
}

static mir_dsl *iss_dsl_new(iss *s, size_t msg_bytes_max) {
  mir_dsl *dsl = mir_dsl_new(s->id, s);
  iss_metrics_init(s, mir_dsl_metrics(dsl));
  mir_dsl_set_user_free(dsl, iss_free);
  if (msg_bytes_max != 0) mir_dsl_set_message_bytes_max(dsl, msg_bytes_max);
  /* One state-transfer verification per member at most. */
  mir_dsl_set_contexts_max(dsl, s->membership->n_members);
  mir_err err = mir_dsl_upon_event(dsl, &mir__init__descriptor, iss_on_init);
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__sb_deliver__descriptor, iss_on_sb_deliver);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__cert_verified__descriptor, iss_on_cert_verified);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__checkpoint_stable__descriptor,
                             miri_iss_on_checkpoint_stable);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__epoch_progress__descriptor, miri_iss_on_epoch_progress);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__push_checkpoint__descriptor, miri_iss_on_push);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &mir__verify_many_result__descriptor, miri_iss_on_verify_many);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_message(dsl, &trantor__stable_checkpoint_msg__descriptor,
                               miri_iss_on_stable_checkpoint_msg);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__recovered__descriptor, iss_on_recovered);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_event(dsl, &trantor__checkpoint_durable__descriptor,
                             miri_iss_on_checkpoint_durable);
  }
  if (err == MIR_OK) err = mir_dsl_upon_event(dsl, &trantor__activity__descriptor, iss_on_activity);
  if (err == MIR_OK) {
    err =
        mir_dsl_upon_message(dsl, &trantor__rejoin_request__descriptor, miri_iss_on_rejoin_request);
  }
  if (err == MIR_OK) {
    err = mir_dsl_upon_message(dsl, &trantor__rejoin_answer__descriptor, miri_iss_on_rejoin_answer);
  }
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, iss_after_batch);
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, iss_publish);
  MIR_ASSERT(err == MIR_OK); /* a handful of registrations, far below the table bound */
  return dsl;
}

mir_err trantor_iss_new(const trantor_iss_config *cfg, const mir_module_ops **ops_out,
                        void **state_out) {
  mir_err err = iss_check_config(cfg);
  if (err != MIR_OK) return err;
  iss *s = mir_xcalloc(1, sizeof(*s));
  err = iss_copy_ids(s, cfg);
  if (err == MIR_OK) {
    err = trantor_lp_new(
        cfg->params->leader_policy_blacklist ? TRANTOR_LP_BLACKLIST : TRANTOR_LP_SIMPLE,
        cfg->membership, &s->policy);
  }
  if (err != MIR_OK) {
    iss_free(s);
    return err;
  }
  trantor_iss_register_types();
  s->params = *cfg->params;
  s->hash = cfg->hash;
  s->push_period_ms = cfg->push_period_ms ? cfg->push_period_ms : s->params.checkpoint_resend_ms;
  s->max_cert_bytes =
      cfg->max_cert_bytes ? cfg->max_cert_bytes : trantor_iss_default_max_cert_bytes(&s->params);
  s->membership = (Trantor__Membership *)mir_message_clone(&cfg->membership->base);
  s->hist = mir_xcalloc(s->params.retained_epochs, sizeof(*s->hist));
  s->node_epoch = mir_xcalloc(s->membership->n_members, sizeof(*s->node_epoch));
  s->transfer_pending = mir_xcalloc(s->membership->n_members, sizeof(*s->transfer_pending));
  s->rejoin_epoch = mir_xcalloc(s->membership->n_members, sizeof(*s->rejoin_epoch));
  s->rejoin_asked = mir_xcalloc(s->membership->n_members, sizeof(*s->rejoin_asked));
  *ops_out = &mir_dsl_ops;
  *state_out = iss_dsl_new(s, cfg->checkpoint_msg_bytes_max);
  return MIR_OK;
}
