/*
 * The simulated timer: the events and semantics of mir/timer.h on a node's virtual clock.
 *
 * apply() unpacks the nested events right away (a bad nested event is the requesting module's
 * error, as with the real timer) and schedules a TIMER action tagged with the node's
 * incarnation: after a crash the node's timers are gone, so an action of an older incarnation
 * is discarded when it comes due. Each node's clock runs at its own speed (clock_ppm) and every
 * delay is also scaled by a random jitter, which is how a node's timers fire early or late
 * relative to its peers. Repeats fire first after one period, and are cancelled by
 * mir.GarbageCollect once their retention index falls below the node's; the check happens when
 * a repeat comes due, which is observably the same as removing it at once.
 */
#include <stdlib.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/timer.h"
#include "sim_internal.h"

typedef struct tmr_module {
  mir_sim *sim;
  size_t node;
} tmr_module;

/* Virtual nanoseconds that ms milliseconds take on node sn's clock, with jitter. The factor is
 * formed first (at most 100x clock times 2x jitter), so ms * factor fits in 64 bits for every
 * duration up to MIR_TIMER_DURATION_MS_MAX. */
static uint64_t tmr_scaled_ns(mir_sim *sim, const miri_sim_node *sn, uint64_t ms) {
  uint64_t jitter = sim->cfg.timer_jitter_ppm;
  uint64_t j = jitter ? mir_sim_rng_range(&sim->clock, MIR_SIM_PPM - jitter, MIR_SIM_PPM + jitter)
                      : MIR_SIM_PPM;
  uint64_t factor_ppm = (uint64_t)sn->clock_ppm * j / MIR_SIM_PPM;
  return ms * factor_ppm;
}

/* Schedules events (takes ownership) to fire on node after delay_ms (node's clock). */
static mir_err tmr_schedule(mir_sim *sim, size_t node, mir_event_list *events, uint64_t delay_ms,
                            uint64_t period_ms, uint64_t retention) {
  miri_sim_node *sn = &sim->nodes[node];
  if (sn->timers_pending >= sim->cfg.timers_max) {
    mir_event_list_free(events);
    return mir_error_set(MIR_EFULL, "sim timer: more than %zu pending timers", sim->cfg.timers_max);
  }
  miri_sim_action *a =
      miri_sim_action_new(MIRI_ACT_TIMER, sim->now_ns + tmr_scaled_ns(sim, sn, delay_ms));
  a->node = (uint32_t)node;
  a->incarnation = sn->incarnation;
  a->period_ms = period_ms;
  a->retention = retention;
  mir_event_list_concat(&a->events, events);
  sn->timers_pending++;
  miri_sim_schedule(sim, a);
  return MIR_OK;
}

static mir_err tmr_unpack(Mir__PackedEvent *const *pes, size_t n, mir_event_list *out) {
  for (size_t i = 0; i < n; i++) {
    mir_event *ev = NULL;
    mir_err err = mir_event_unpack(pes[i], &ev);
    if (err != MIR_OK) {
      mir_event_list_free(out);
      return mir_error_set(err, "sim timer: cannot unpack nested event %zu of type %s", i,
                           pes[i]->type != NULL ? pes[i]->type : "(null)");
    }
    mir_event_list_push(out, ev);
  }
  return MIR_OK;
}

static mir_err tmr_check_duration(const char *what, uint64_t ms) {
  if (ms > MIR_TIMER_DURATION_MS_MAX) {
    return mir_error_set(MIR_EINVAL, "sim timer: %s of %llu ms is longer than the limit", what,
                         (unsigned long long)ms);
  }
  return MIR_OK;
}

static mir_err tmr_apply_one(tmr_module *t, const mir_event *ev) {
  mir_event_list events = MIR_EVENT_LIST_INIT;
  mir_err err;
  if (mir_event_is(ev, &mir__init__descriptor)) return MIR_OK;
  if (mir_event_is(ev, &mir__timer_delay__descriptor)) {
    const Mir__TimerDelay *d = (const Mir__TimerDelay *)ev->payload;
    if ((err = tmr_check_duration("delay", d->delay_ms)) != MIR_OK) return err;
    if ((err = tmr_unpack(d->events, d->n_events, &events)) != MIR_OK) return err;
    return tmr_schedule(t->sim, t->node, &events, d->delay_ms, 0, 0);
  }
  if (mir_event_is(ev, &mir__timer_repeat__descriptor)) {
    const Mir__TimerRepeat *r = (const Mir__TimerRepeat *)ev->payload;
    if (r->period_ms == 0) return mir_error_set(MIR_EINVAL, "sim timer: repeat with period 0");
    if ((err = tmr_check_duration("period", r->period_ms)) != MIR_OK) return err;
    if (r->retention_index < t->sim->nodes[t->node].timer_retention) return MIR_OK;
    if ((err = tmr_unpack(r->events, r->n_events, &events)) != MIR_OK) return err;
    return tmr_schedule(t->sim, t->node, &events, r->period_ms, r->period_ms, r->retention_index);
  }
  if (mir_event_is(ev, &mir__garbage_collect__descriptor)) {
    uint64_t ri = ((const Mir__GarbageCollect *)ev->payload)->retention_index;
    miri_sim_node *sn = &t->sim->nodes[t->node];
    if (ri > sn->timer_retention) sn->timer_retention = ri;
    return MIR_OK;
  }
  return mir_error_set(MIR_EINVAL, "sim timer %s: unexpected event type %s", ev->dest,
                       mir_event_type_name(ev));
}

static mir_err tmr_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    mir_err err = tmr_apply_one(state, ev);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

static void tmr_destroy(void *state) {
  free(state);
}

static const mir_module_ops tmr_ops = {
    .name = "sim-timer",
    .kind = MIR_MODULE_PASSIVE,
    .apply = tmr_apply,
    .destroy = tmr_destroy,
};

mir_err mir_sim_add_timer(mir_sim *sim, size_t node, mir_node *mn, const char *id) {
  MIR_ASSERT(node < sim->cfg.nodes);
  tmr_module *t = mir_xcalloc(1, sizeof *t);
  t->sim = sim;
  t->node = node;
  return mir_node_add_module(mn, id, &tmr_ops, t);
}

/* Appends a deep copy of every event of src to dst. */
static void tmr_clone_events(const mir_event_list *src, mir_event_list *dst) {
  MIR_EVENT_LIST_FOREACH(src, ev) {
    mir_event_list_push(dst, mir_event_new(ev->dest, ev->src, mir_message_clone(ev->payload)));
  }
}

void miri_sim_timer_fire(mir_sim *sim, miri_sim_action *a) {
  miri_sim_node *sn = &sim->nodes[a->node];
  bool live = sn->mn != NULL && a->incarnation == sn->incarnation;
  if (live) sn->timers_pending--;
  if (!live || (a->period_ms != 0 && a->retention < sn->timer_retention)) {
    miri_sim_action_free(a);
    return;
  }
  mir_counter_inc(sim->c.timers);
  miri_sim_trace(sim, "timer n%u x%zu", a->node, a->events.len);
  mir_event_list fire = MIR_EVENT_LIST_INIT;
  if (a->period_ms == 0) {
    mir_event_list_concat(&fire, &a->events);
    miri_sim_action_free(a);
  } else {
    tmr_clone_events(&a->events, &fire);
    mir_event_list again = MIR_EVENT_LIST_INIT;
    mir_event_list_concat(&again, &a->events);
    tmr_schedule(sim, a->node, &again, a->period_ms, a->period_ms, a->retention);
    miri_sim_action_free(a);
  }
  miri_sim_inject(sim, sn->index, &fire);
}
