/*
 * PBFT segment orderer: construction, plumbing (sending, timers, contexts, statistics) and the
 * local events (Init, timeouts, ticks).
 *
 * One instance orders the sns of one segment of one epoch (docs/PROTOCOL.md, "PBFT per
 * segment"). It follows PBFT (Castro and Liskov, OSDI 1999; TOCS 2002) with weighted quorums:
 * the good case in pbft_normal.c, view changes in pbft_vc.c and pbft_nv.c, the segment checkpoint
 * and catch-up in pbft_done.c, ingress checks and encodings in pbft_msg.c.
 *
 * Invariants kept across the files:
 *  - view only grows, and at most to TRANTOR_PBFT_VIEW_MAX; in_vc means "moved to view, waiting
 *    for its NewView"; no preprepare, prepare or commit is accepted for a view before its
 *    NewView was adopted (OSDI 1999, section 4.4).
 *  - an sn is delivered to iss at most once, and only with a digest committed by a strong
 *    quorum or certified by a weak quorum of identical Done lists.
 *  - everything allocated is bounded by the parameters (pbft_internal.h lists the bounds), and
 *    every peer message is checked before it changes state; invalid ones are dropped and counted.
 *  - timeouts are never cancelled: a timeout event names the view (and commit count) it was
 *    armed for and is ignored when the state moved on.
 */
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "mir/registry.h"
#include "mir/timer.h"
#include "pbft_internal.h"

#define PBFT_LOG "pbft"

static const char *const pbft_drop_names[TRANTOR_PBFT_DROP_KINDS] = {
    "not_member", "bad_sn",      "view_ahead", "old_view",     "bad_digest",    "cert_too_large",
    "duplicate",  "not_primary", "malformed",  "bad_new_view", "bad_signature", "unsolicited",
    "conflict",   "buffer",      "busy",       "passive"};

const char *trantor_pbft_drop_name(trantor_pbft_drop reason) {
  return (unsigned)reason < TRANTOR_PBFT_DROP_KINDS ? pbft_drop_names[reason] : "?";
}

/* ---- plumbing ---- */

mir_err miri_pbft_drop(pbft *p, const char *from, trantor_pbft_drop reason, const char *what) {
  MIR_ASSERT((unsigned)reason < TRANTOR_PBFT_DROP_KINDS);
  mir_counter_inc(p->st.dropped[reason]);
  mir_log(MIR_LOG_DEBUG, PBFT_LOG, "%s: dropping %s from %.64s: %s", p->mod_id, what, from,
          pbft_drop_names[reason]);
  return MIR_OK;
}

void miri_pbft_send_all(pbft *p, const ProtobufCMessage *msg) {
  mir_dsl_send(p->dsl, p->net, p->member_ids, p->n, p->mod_id, msg);
}

void miri_pbft_send_to(pbft *p, size_t to, const ProtobufCMessage *msg) {
  MIR_ASSERT(to < p->n);
  mir_dsl_send(p->dsl, p->net, &p->member_ids[to], 1, p->mod_id, msg);
}

void miri_pbft_timer_delay(pbft *p, ProtobufCMessage *payload, uint64_t delay_ms) {
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_new(p->mod_id, p->mod_id, payload));
  mir_dsl_emit(p->dsl, mir_event_timer_delay(p->timer, p->mod_id, &l, delay_ms));
}

void miri_pbft_tick_repeat(pbft *p, uint32_t kind, uint64_t period_ms) {
  Trantor__PbftTick *t = mir_xmalloc(sizeof(*t));
  trantor__pbft_tick__init(t);
  t->kind = kind;
  mir_event_list l = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&l, mir_event_new(p->mod_id, p->mod_id, &t->base));
  mir_dsl_emit(p->dsl,
               mir_event_timer_repeat(p->timer, p->mod_id, &l, period_ms, p->params->epoch));
}

/* base * 2^view, saturated at the longest delay the timer accepts: the doubling of PBFT
 * (OSDI 1999, section 4.5.2) without overflow in high views. */
static uint64_t pbft_timeout_ms(uint64_t base, uint64_t view) {
  if (view >= 63 || base > (MIR_TIMER_DURATION_MS_MAX >> view)) return MIR_TIMER_DURATION_MS_MAX;
  return base << view;
}

/* True if the segment holds up the log: one of its sns is undecided here while iss decided a later
 * sn of the epoch (Needed). Only then can this node tell a faulty primary from a slow cluster: in
 * a cluster that is slow as a whole (saturated cores or disks), every segment is late alike and
 * none holds up the others for long. */
static bool pbft_holding_up(const pbft *p) {
  for (size_t i = 0; i < p->L; i++) {
    if (!p->slots[i].delivered && p->slots[i].sn < p->needed_up_to) return true;
  }
  return false;
}

void miri_pbft_arm_sn_timer(pbft *p) {
  Trantor__ViewChangeSnTimeout *t = mir_xmalloc(sizeof(*t));
  trantor__view_change_sn_timeout__init(t);
  t->view = p->view;
  t->progress = p->progress;
  t->arming = p->arming;
  t->held = pbft_holding_up(p);
  miri_pbft_timer_delay(p, &t->base,
                        pbft_timeout_ms(p->params->view_change_sn_timeout_ms, p->view));
}

void miri_pbft_arm_view_timers(pbft *p) {
  p->arming++;
  p->view_timers_armed = true;
  miri_pbft_arm_sn_timer(p);
  Trantor__ViewChangeSegTimeout *t = mir_xmalloc(sizeof(*t));
  trantor__view_change_seg_timeout__init(t);
  t->view = p->view;
  t->arming = p->arming;
  miri_pbft_timer_delay(p, &t->base,
                        pbft_timeout_ms(p->params->view_change_segment_timeout_ms, p->view));
}

static void pbft_ctx_free(void *ptr) {
  pbft_ctx *c = ptr;
  if (c->vc != NULL) protobuf_c_message_free_unpacked(&c->vc->base, NULL);
  if (c->nv != NULL) protobuf_c_message_free_unpacked(&c->nv->base, NULL);
  free(c);
}

bool miri_pbft_store_ctx(pbft *p, pbft_ctx *c, uint64_t *id) {
  if (mir_dsl_store_context(p->dsl, c, pbft_ctx_free, id) != MIR_OK) {
    mir_error_clear(); /* the store freed c */
    return false;
  }
  return true;
}

pbft_ctx *miri_pbft_answer_ctx(pbft *p, const Mir__Origin *o, pbft_ctx_kind kind) {
  pbft_ctx *c = o != NULL ? mir_dsl_context(p->dsl, o->context_id) : NULL;
  if (c == NULL || c->kind != kind) {
    mir_counter_inc(p->st.stale_answers);
    return NULL;
  }
  mir_dsl_dispose_context(p->dsl, o->context_id);
  return c;
}

size_t miri_pbft_primary(const pbft *p, uint64_t v) {
  return (p->leader + (size_t)(v % p->n)) % p->n;
}

void miri_pbft_ensure_resend_tick(pbft *p) {
  if (p->resend_started) return;
  p->resend_started = true;
  miri_pbft_tick_repeat(p, TRANTOR_PBFT_TICK_RESEND, p->params->view_change_resend_ms);
}

/* ---- local events ---- */

/* Starts the instance: takes back what it persisted before a restart, then, unless it is
 * passive, resumes a view change it was in (its own view change is signed, recorded and sent
 * again) or proposes if it is the primary and there is work; the view's timeouts run from the
 * end of the batch while progress is expected. */
static mir_err pbft_on_init(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  (void)ev;
  pbft *p = user;
  mir_err err = miri_pbft_recover(p);
  if (err != MIR_OK || p->passive) return err;
  if (p->in_vc) {
    miri_pbft_resume_view_change(p);
    /* A primary that sent its NewView (durable) but had not adopted it yet: the same NewView
     * again, to everyone and to itself, which adopts it as the others did. */
    if (p->nvb.sent && p->nvb.view == p->view) miri_pbft_send_all(p, &p->nvb.nv->base);
    return MIR_OK;
  }
  miri_pbft_ensure_resend_tick(p); /* retransmissions of votes that wait too long */
  miri_pbft_propose(p);
  return MIR_OK;
}

/* True if this node expects the segment to make progress now: there is work in its mempool, a
 * proposal of this view is in flight, or the log awaits one of its sns. An idle segment needs no
 * timeout: its primary has nothing to propose, and waiting is not a fault. */
static bool pbft_expecting(const pbft *p) {
  if (p->active) return true;
  for (size_t i = 0; i < p->L; i++) {
    const pbft_slot *s = &p->slots[i];
    if (s->delivered) continue;
    if (s->has_pp || s->sn < p->needed_up_to) return true;
  }
  return false;
}

void miri_pbft_update_timers(pbft *p) {
  if (p->in_vc || p->passive || p->done || p->stable) return;
  bool expecting = pbft_expecting(p);
  if (expecting && !p->view_timers_armed) {
    miri_pbft_arm_view_timers(p);
  } else if (!expecting && p->view_timers_armed) {
    p->view_timers_armed = false;
    p->arming++; /* the pending timeouts are stale */
  }
}

static mir_err pbft_on_activity(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  p->active = ((const Trantor__Activity *)ev->payload)->active;
  return MIR_OK; /* proposals and timeouts follow at the end of the batch */
}

static mir_err pbft_on_needed(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  uint64_t up_to = ((const Trantor__Needed *)ev->payload)->up_to_sn;
  bool was_holding = pbft_holding_up(p);
  if (up_to > p->needed_up_to) p->needed_up_to = up_to;
  /* The segment begins to hold up the log: the sn timeout counts from now. Unarmed view timers
   * are armed at the end of the batch (the segment is now expected to progress). */
  if (!was_holding && p->view_timers_armed && !p->in_vc && !p->passive && !p->done && !p->stable &&
      pbft_holding_up(p)) {
    miri_pbft_arm_sn_timer(p);
  }
  return MIR_OK;
}

/* A timeout of the current view fired: start a view change, unless the segment needs none. A
 * node that committed every sn does not start one itself (its own log is complete; lagging
 * nodes catch up through Done), but still joins one that a weak quorum started. */
static void pbft_timeout_fired(pbft *p, const char *which, uint64_t base_ms) {
  if (p->stable || p->done || p->passive) {
    mir_counter_inc(p->st.stale_answers);
    return;
  }
  mir_log(MIR_LOG_INFO, PBFT_LOG,
          "%s: %s timeout (%llu ms in view %llu) with %zu of %zu sns committed", p->mod_id, which,
          (unsigned long long)pbft_timeout_ms(base_ms, p->view), (unsigned long long)p->view,
          p->n_delivered, p->L);
  if (p->view + 1 > TRANTOR_PBFT_VIEW_MAX) {
    mir_log(MIR_LOG_WARN, PBFT_LOG, "%s: view bound reached, no further view change", p->mod_id);
    return;
  }
  miri_pbft_start_view_change(p, p->view + 1, false);
}

static mir_err pbft_on_sn_timeout(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__ViewChangeSnTimeout *t = (const Trantor__ViewChangeSnTimeout *)ev->payload;
  /* Stale unless no slot was prepared or committed since it was armed in this view and arming. */
  if (t->view != p->view || t->progress != p->progress || t->arming != p->arming) {
    mir_counter_inc(p->st.stale_answers);
    return MIR_OK;
  }
  /* In the normal case the primary is suspected only if the segment held up the log for the
   * whole timeout: armed while holding up (progress, or the Needed that began the holding, armed
   * it) and still holding up, with no slot prepared or committed in between. A segment that is
   * merely as late as the others is not suspected (docs/PROTOCOL.md, "Timeouts"); the segment
   * timeout still bounds it. During a view change the timeout is the view change's own and fires as
   * armed. */
  if (!p->in_vc && !(t->held && pbft_holding_up(p))) {
    mir_counter_inc(p->st.stale_answers);
    return MIR_OK;
  }
  pbft_timeout_fired(p, "sn", p->params->view_change_sn_timeout_ms);
  return MIR_OK;
}

static mir_err pbft_on_seg_timeout(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__ViewChangeSegTimeout *t = (const Trantor__ViewChangeSegTimeout *)ev->payload;
  if (t->view != p->view || t->arming != p->arming) {
    mir_counter_inc(p->st.stale_answers);
    return MIR_OK;
  }
  pbft_timeout_fired(p, "segment", p->params->view_change_segment_timeout_ms);
  return MIR_OK;
}

static mir_err pbft_on_tick(mir_dsl *dsl, const mir_event *ev, void *user) {
  (void)dsl;
  pbft *p = user;
  const Trantor__PbftTick *t = (const Trantor__PbftTick *)ev->payload;
  if (t->kind == TRANTOR_PBFT_TICK_RESEND) {
    p->ticks++; /* the clock of resends and of answers taken as lost */
    miri_pbft_view_change_tick(p);
    miri_pbft_new_view_tick(p);
    miri_pbft_retransmit(p);
  } else if (t->kind == TRANTOR_PBFT_TICK_CATCH_UP) {
    miri_pbft_catch_up_tick(p);
  } else if (t->kind == TRANTOR_PBFT_TICK_DONE) {
    miri_pbft_done_tick(p);
  } else {
    mir_counter_inc(p->st.stale_answers);
  }
  return MIR_OK;
}

/* Sets the gauges from the state: a handful of relaxed stores per batch. */
static void pbft_publish(pbft *p) {
  uint64_t buffered = 0;
  for (size_t i = 0; i < p->n; i++) buffered += p->peers[i].buf_bytes;
  mir_gauge_set(p->st.view, (int64_t)p->view);
  mir_gauge_set(p->st.in_view_change, p->in_vc);
  mir_gauge_set(p->st.done, p->done);
  mir_gauge_set(p->st.stable, p->stable);
  mir_gauge_set(p->st.buffered_bytes, (int64_t)buffered);
}

/* After every batch: the primary makes whatever progress the batch allowed. */
static mir_err pbft_after_batch(mir_dsl *dsl, void *user) {
  (void)dsl;
  pbft *p = user;
  miri_pbft_new_view_progress(p);
  miri_pbft_propose(p);
  miri_pbft_update_timers(p);
  pbft_publish(p);
  return MIR_OK;
}

/* ---- construction ---- */

static bool pbft_id_ok(const char *id) {
  return id != NULL && mir_module_id_valid(id);
}

static mir_err pbft_check_durations(const Trantor__PbftParams *pp) {
  const uint64_t d[5] = {pp->view_change_sn_timeout_ms, pp->view_change_segment_timeout_ms,
                         pp->done_resend_ms, pp->catch_up_delay_ms, pp->view_change_resend_ms};
  static const char *const names[5] = {"view_change_sn_timeout_ms",
                                       "view_change_segment_timeout_ms", "done_resend_ms",
                                       "catch_up_delay_ms", "view_change_resend_ms"};
  for (int i = 0; i < 5; i++) {
    if (d[i] == 0 || d[i] > MIR_TIMER_DURATION_MS_MAX) {
      return mir_error_set(MIR_EINVAL, "pbft params: %s: must be 1..%llu", names[i],
                           (unsigned long long)MIR_TIMER_DURATION_MS_MAX);
    }
  }
  return MIR_OK;
}

static mir_err pbft_check_params(const Trantor__PbftParams *pp, const char *self) {
  mir_err err = trantor_membership_check(pp->membership);
  if (err != MIR_OK) return err;
  if (trantor_member_index(pp->membership, self) < 0) {
    return mir_error_set(MIR_EINVAL, "pbft params: own node %s is not a member", self);
  }
  if (pp->leader == NULL || trantor_member_index(pp->membership, pp->leader) < 0) {
    return mir_error_set(MIR_EINVAL, "pbft params: leader: not a member");
  }
  if (pp->n_sns == 0 || pp->n_sns > TRANTOR_PBFT_SNS_MAX) {
    return mir_error_set(MIR_EINVAL, "pbft params: sns: 1..%d needed", TRANTOR_PBFT_SNS_MAX);
  }
  for (size_t i = 1; i < pp->n_sns; i++) {
    if (pp->sns[i] <= pp->sns[i - 1]) {
      return mir_error_set(MIR_EINVAL, "pbft params: sns: not strictly ascending at %zu", i);
    }
  }
  if (pp->n_buckets > TRANTOR_PBFT_BUCKETS_MAX) {
    return mir_error_set(MIR_EINVAL, "pbft params: buckets: at most %d", TRANTOR_PBFT_BUCKETS_MAX);
  }
  if (pp->max_cert_bytes == 0 || pp->max_cert_bytes > TRANTOR_PBFT_CERT_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL, "pbft params: max_cert_bytes: must be 1..%u",
                         TRANTOR_PBFT_CERT_BYTES_MAX);
  }
  return pbft_check_durations(pp);
}

static mir_err pbft_check_args(const char *module_id, const Trantor__PbftParams *pp,
                               const trantor_pbft_config *cfg) {
  if (!pbft_id_ok(module_id)) return mir_error_set(MIR_EINVAL, "pbft: invalid module id");
  if (pp == NULL || cfg == NULL) return mir_error_set(MIR_EINVAL, "pbft: params and config needed");
  if (cfg->hash == NULL || cfg->self == NULL) {
    return mir_error_set(MIR_EINVAL, "pbft config: hash and self needed");
  }
  if (!pbft_id_ok(cfg->iss) || !pbft_id_ok(cfg->availability) || !pbft_id_ok(cfg->crypto) ||
      !pbft_id_ok(cfg->timer) || !pbft_id_ok(cfg->net) || !pbft_id_ok(cfg->store)) {
    return mir_error_set(MIR_EINVAL,
                         "pbft config: invalid module id of iss, availability, "
                         "crypto, timer, net or store");
  }
  return pbft_check_params(pp, cfg->self);
}

static void pbft_slot_free(pbft_slot *s) {
  for (size_t k = 0; k < s->n_known; k++) free(s->known[k].cert.data);
  free(s->prepares);
  free(s->commits);
}

static void pbft_free(void *ptr) {
  pbft *p = ptr;
  for (size_t i = 0; i < p->L; i++) pbft_slot_free(&p->slots[i]);
  for (size_t i = 0; i < p->n; i++) {
    miri_pbft_buffer_clear(p, i);
    if (p->peers[i].vc != NULL) protobuf_c_message_free_unpacked(&p->peers[i].vc->base, NULL);
  }
  if (p->my_vc != NULL) protobuf_c_message_free_unpacked(&p->my_vc->base, NULL);
  if (p->adopted_nv != NULL) protobuf_c_message_free_unpacked(&p->adopted_nv->base, NULL);
  miri_pbft_done_clear(p);
  miri_pbft_nvb_clear(&p->nvb);
  free(p->spare.data);
  free(p->groups);
  free(p->slots);
  free(p->peers);
  free(p->member_ids);
  protobuf_c_message_free_unpacked(&p->params->base, NULL);
  free(p);
}

/* Largest message an instance decodes: a NewView with n view changes (P- and Q-sets of every
 * sn) and a re-proposal for every sn, saturated at 1 GiB. */
static size_t pbft_message_bytes_max(const pbft *p) {
  const uint64_t cap = (uint64_t)1 << 30;
  uint64_t vc = (uint64_t)p->L * (1 + TRANTOR_PBFT_KNOWN_PER_SN_MAX) * 64 + 1024;
  uint64_t pps = (uint64_t)p->L * (p->params->max_cert_bytes + 64);
  uint64_t total = (uint64_t)p->n * vc + pps + 4096;
  if (total > cap) total = cap;
  return (size_t)(total < ((uint64_t)64 << 10) ? ((uint64_t)64 << 10) : total);
}

static void pbft_copy_id(char *dst, const char *src) {
  MIR_ASSERT(strlen(src) < MIR_MODULE_ID_MAX);
  strcpy(dst, src);
}

static pbft *pbft_state_new(const char *module_id, const Trantor__PbftParams *pp,
                            const trantor_pbft_config *cfg) {
  pbft *p = mir_xcalloc(1, sizeof(*p));
  p->params = (Trantor__PbftParams *)mir_message_clone(&pp->base);
  p->hash = cfg->hash;
  pbft_copy_id(p->mod_id, module_id);
  pbft_copy_id(p->iss, cfg->iss);
  pbft_copy_id(p->availability, cfg->availability);
  pbft_copy_id(p->crypto, cfg->crypto);
  pbft_copy_id(p->timer, cfg->timer);
  pbft_copy_id(p->net, cfg->net);
  pbft_copy_id(p->store, cfg->store);
  p->passive = p->params->passive;
  p->active = p->params->active;
  const Trantor__Membership *m = p->params->membership;
  p->n = m->n_members;
  p->self = (size_t)trantor_member_index(m, cfg->self);
  p->leader = (size_t)trantor_member_index(m, p->params->leader);
  trantor_quorum_of(m, &p->q);
  p->member_ids = mir_xcalloc(p->n, sizeof(*p->member_ids));
  p->peers = mir_xcalloc(p->n, sizeof(*p->peers));
  for (size_t i = 0; i < p->n; i++) {
    p->member_ids[i] = m->members[i]->id;
    p->peers[i].id = m->members[i]->id;
    p->peers[i].weight = m->members[i]->weight;
  }
  p->L = p->params->n_sns;
  p->slots = mir_xcalloc(p->L, sizeof(*p->slots));
  for (size_t i = 0; i < p->L; i++) p->slots[i].sn = p->params->sns[i];
  p->groups = mir_xcalloc(p->n, sizeof(*p->groups));
  p->cu_group = PBFT_NONE;
  uint64_t cap = p->params->msg_buf_bytes / (p->n > 1 ? p->n - 1 : 1);
  p->buf_cap = cap > SIZE_MAX ? SIZE_MAX : (size_t)cap;
  return p;
}

/* Registers the instance's metrics in set m (the dsl's). The segment label is the last component
 * of the module id (ordering/<epoch>/<segment>): one series per segment, as many as leaders. */
static void pbft_metrics_init(pbft *p, mir_metrics *m) {
  static const char drop_help[] = "PBFT peer messages (and late local answers) dropped, by reason.";
  pbft_metrics *st = &p->st;
  const char *slash = strrchr(p->mod_id, '/');
  const char *segment = slash != NULL ? slash + 1 : p->mod_id;
  st->received = mir_metrics_counter(m, "mir_pbft_messages_received_total",
                                     "PBFT peer messages decoded and handled.", NULL, NULL);
  for (size_t r = 0; r < TRANTOR_PBFT_DROP_KINDS; r++) {
    st->dropped[r] = mir_metrics_counter(m, "mir_pbft_dropped_messages_total", drop_help, "reason",
                                         pbft_drop_names[r]);
  }
  st->stale_answers = mir_metrics_counter(
      m, "mir_pbft_stale_answers_total",
      "Local answers (timers, crypto, certificates, writes) that no longer applied.", NULL, NULL);
  st->view_changes =
      mir_metrics_counter(m, "mir_pbft_view_changes_total",
                          "View changes started (own timeouts and joins).", NULL, NULL);
  st->joins = mir_metrics_counter(m, "mir_pbft_view_change_joins_total",
                                  "View changes joined on a weak quorum of others'.", NULL, NULL);
  st->new_views =
      mir_metrics_counter(m, "mir_pbft_new_views_total", "NewViews adopted.", NULL, NULL);
  st->proposals =
      mir_metrics_counter(m, "mir_pbft_proposals_total",
                          "Preprepares sent as primary (re-proposals excluded).", NULL, NULL);
  st->committed =
      mir_metrics_counter(m, "mir_pbft_committed_total",
                          "Sequence numbers committed and delivered to ISS.", NULL, NULL);
  st->caught_up =
      mir_metrics_counter(m, "mir_pbft_caught_up_total",
                          "Committed sequence numbers learned through catch-up.", NULL, NULL);
  st->view = mir_metrics_gauge_max(m, "mir_pbft_view", "Current PBFT view of the segment.",
                                   "segment", segment);
  st->in_view_change = mir_metrics_gauge(m, "mir_pbft_instances_in_view_change",
                                         "Live PBFT instances waiting for a NewView.", NULL, NULL);
  st->done = mir_metrics_gauge(m, "mir_pbft_instances_done",
                               "Live PBFT instances whose every sequence number is committed.",
                               NULL, NULL);
  st->stable =
      mir_metrics_gauge(m, "mir_pbft_instances_stable",
                        "Live PBFT instances whose segment checkpoint is stable.", NULL, NULL);
  st->buffered_bytes =
      mir_metrics_gauge(m, "mir_pbft_buffered_bytes",
                        "Bytes of future-view messages buffered by live instances.", NULL, NULL);
}

static mir_err pbft_register_types(void) {
  static const ProtobufCMessageDescriptor *const types[] = {
      &trantor__view_change_sn_timeout__descriptor,
      &trantor__view_change_seg_timeout__descriptor,
      &trantor__pbft_tick__descriptor,
      &trantor__sb_deliver__descriptor,
      &trantor__request_cert__descriptor,
      &trantor__new_cert__descriptor,
      &trantor__pbft_params__descriptor,
      &trantor__pbft_persisted__descriptor,
      &trantor__activity__descriptor,
      &trantor__needed__descriptor};
  return mir_registry_add_all(types, sizeof(types) / sizeof(types[0]));
}

static mir_err pbft_register_events(mir_dsl *dsl) {
  struct {
    const ProtobufCMessageDescriptor *d;
    mir_dsl_event_fn fn;
  } ev[] = {{&mir__init__descriptor, pbft_on_init},
            {&trantor__new_cert__descriptor, miri_pbft_on_new_cert},
            {&mir__sign_result__descriptor, miri_pbft_on_sign_result},
            {&mir__verify_result__descriptor, miri_pbft_on_verify_result},
            {&mir__verify_many_result__descriptor, miri_pbft_on_verify_many_result},
            {&trantor__view_change_sn_timeout__descriptor, pbft_on_sn_timeout},
            {&trantor__view_change_seg_timeout__descriptor, pbft_on_seg_timeout},
            {&trantor__pbft_tick__descriptor, pbft_on_tick},
            {&trantor__pbft_persisted__descriptor, miri_pbft_on_persisted},
            {&trantor__activity__descriptor, pbft_on_activity},
            {&trantor__needed__descriptor, pbft_on_needed}};
  mir_err err = MIR_OK;
  for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]) && err == MIR_OK; i++) {
    err = mir_dsl_upon_event(dsl, ev[i].d, ev[i].fn);
  }
  return err;
}

static mir_err pbft_register_messages(mir_dsl *dsl) {
  struct {
    const ProtobufCMessageDescriptor *d;
    mir_dsl_message_fn fn;
  } msg[] = {{&trantor__preprepare__descriptor, miri_pbft_on_preprepare},
             {&trantor__prepare__descriptor, miri_pbft_on_prepare},
             {&trantor__commit__descriptor, miri_pbft_on_commit},
             {&trantor__done__descriptor, miri_pbft_on_done},
             {&trantor__catch_up_request__descriptor, miri_pbft_on_catch_up_request},
             {&trantor__catch_up_response__descriptor, miri_pbft_on_catch_up_response},
             {&trantor__signed_view_change__descriptor, miri_pbft_on_signed_vc},
             {&trantor__new_view__descriptor, miri_pbft_on_new_view},
             {&trantor__preprepare_request__descriptor, miri_pbft_on_preprepare_request},
             {&trantor__missing_preprepare__descriptor, miri_pbft_on_missing_preprepare}};
  mir_err err = MIR_OK;
  for (size_t i = 0; i < sizeof(msg) / sizeof(msg[0]) && err == MIR_OK; i++) {
    err = mir_dsl_upon_message(dsl, msg[i].d, msg[i].fn);
  }
  if (err == MIR_OK) err = mir_dsl_after_batch(dsl, pbft_after_batch);
  return err;
}

mir_err trantor_pbft_new(const char *module_id, const Trantor__PbftParams *params,
                         const trantor_pbft_config *cfg, const mir_module_ops **ops, void **state) {
  mir_err err = pbft_check_args(module_id, params, cfg);
  if (err == MIR_OK) err = pbft_register_types();
  if (err != MIR_OK) return err;
  pbft *p = pbft_state_new(module_id, params, cfg);
  mir_dsl *dsl = mir_dsl_new(module_id, p);
  mir_dsl_set_user_free(dsl, pbft_free);
  p->dsl = dsl;
  pbft_metrics_init(p, mir_dsl_metrics(dsl));
  mir_dsl_set_message_bytes_max(dsl, pbft_message_bytes_max(p));
  /* Contexts: a view change check per member, the NewView checks, the own signature and the
   * certificate request; replaced requests are disposed, so this is never reached. */
  mir_dsl_set_contexts_max(dsl, p->n + TRANTOR_PBFT_NEW_VIEW_CHECKS_MAX + 16);
  err = pbft_register_events(dsl);
  if (err == MIR_OK) err = pbft_register_messages(dsl);
  if (err != MIR_OK) {
    mir_dsl_free(dsl);
    return err;
  }
  *ops = &mir_dsl_ops;
  *state = dsl;
  return MIR_OK;
}
