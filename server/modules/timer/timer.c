/*
 * The timer module: delays and repeats on one thread, a min-heap of deadlines and a condition
 * variable on the monotonic clock.
 *
 * apply() runs on the node's dispatcher: it unpacks the nested events (so that a bad nested event
 * is reported as the requesting module's error, right away) and adds an entry to the heap under
 * the mutex; it never waits for anything but that mutex, which no one holds across a blocking
 * call. The timer thread pops every due entry, collects their events into one list, and pushes
 * that list into the inbox with the mutex released, since the push blocks under backpressure.
 * A repeat is put back into the heap with its next deadline before its copies are pushed, so
 * GarbageCollect always finds every live repeat in the heap.
 *
 * Invariants (under mu): heap[0..len) is a min-heap on (deadline_ns, seq); len <= pending_max;
 * every repeat in the heap has retention >= the timer's retention; seq never repeats, so ties
 * between equal deadlines fire in the order the timers were set.
 */
#include "mir/timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"

#define TMR_LOG "timer"
#define TMR_NS_PER_MS 1000000ULL

typedef struct tmr_entry {
  uint64_t deadline_ns;
  uint64_t seq;
  uint64_t period_ns; /* 0: a one-shot delay */
  uint64_t retention; /* repeats only */
  mir_event_list events;
} tmr_entry;

struct mir_timer {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when the earliest deadline moves earlier or on stop */
  pthread_t thread;
  bool started;
  bool joined;
  bool stopping;
  mir_inbox *inbox;
  tmr_entry **heap;
  size_t len, cap;
  size_t pending_max;
  uint64_t seq;
  uint64_t retention;
};

static uint64_t tmr_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void tmr_entry_free(tmr_entry *e) {
  mir_event_list_free(&e->events);
  free(e);
}

/* ---- the min-heap ---- */

static bool tmr_before(const tmr_entry *a, const tmr_entry *b) {
  return a->deadline_ns < b->deadline_ns || (a->deadline_ns == b->deadline_ns && a->seq < b->seq);
}

static void tmr_heap_up(mir_timer *t, size_t i) {
  tmr_entry *e = t->heap[i];
  while (i > 0 && tmr_before(e, t->heap[(i - 1) / 2])) {
    t->heap[i] = t->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  t->heap[i] = e;
}

static void tmr_heap_down(mir_timer *t, size_t i) {
  tmr_entry *e = t->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->len) break;
    if (c + 1 < t->len && tmr_before(t->heap[c + 1], t->heap[c])) c++;
    if (!tmr_before(t->heap[c], e)) break;
    t->heap[i] = t->heap[c];
    i = c;
  }
  t->heap[i] = e;
}

static void tmr_heap_push(mir_timer *t, tmr_entry *e) {
  if (t->len == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    if (t->cap > t->pending_max) t->cap = t->pending_max;
    t->heap = mir_xrealloc(t->heap, t->cap * sizeof(*t->heap));
  }
  t->heap[t->len++] = e;
  tmr_heap_up(t, t->len - 1);
}

static tmr_entry *tmr_heap_pop(mir_timer *t) {
  tmr_entry *top = t->heap[0];
  t->heap[0] = t->heap[--t->len];
  if (t->len > 0) tmr_heap_down(t, 0);
  return top;
}

/* ---- the timer thread ---- */

/* Appends a deep copy of every event of src to dst: each repetition owns its own events. */
static void tmr_clone_events(const mir_event_list *src, mir_event_list *dst) {
  MIR_EVENT_LIST_FOREACH(src, ev) {
    mir_event_list_push(dst, mir_event_new(ev->dest, ev->src, mir_message_clone(ev->payload)));
  }
}

/* Moves the events of every entry due at `now` into due, rescheduling repeats. Under mu. */
static void tmr_collect_due(mir_timer *t, uint64_t now, mir_event_list *due) {
  while (t->len > 0 && t->heap[0]->deadline_ns <= now) {
    tmr_entry *e = tmr_heap_pop(t);
    if (e->period_ns == 0) {
      mir_event_list_concat(due, &e->events);
      tmr_entry_free(e);
      continue;
    }
    tmr_clone_events(&e->events, due);
    /* After a long stall (backpressure), skip the missed ticks instead of bursting them. */
    e->deadline_ns += e->period_ns;
    if (e->deadline_ns <= now) e->deadline_ns = now + e->period_ns;
    e->seq = t->seq++;
    tmr_heap_push(t, e);
  }
}

static void tmr_wait_until(mir_timer *t, uint64_t deadline_ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(deadline_ns / 1000000000ULL);
  ts.tv_nsec = (long)(deadline_ns % 1000000000ULL);
  pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static void *tmr_thread(void *arg) {
  pthread_setname_np(pthread_self(), "mir-timer"); /* named in top, perf and debuggers */
  mir_timer *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stopping) {
    if (t->len == 0) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    uint64_t now = tmr_now_ns();
    if (t->heap[0]->deadline_ns > now) {
      tmr_wait_until(t, t->heap[0]->deadline_ns);
      continue;
    }
    mir_event_list due = MIR_EVENT_LIST_INIT;
    tmr_collect_due(t, now, &due);
    pthread_mutex_unlock(&t->mu);
    mir_err err = due.len > 0 ? mir_inbox_push(t->inbox, &due) : MIR_OK;
    mir_event_list_free(&due);
    pthread_mutex_lock(&t->mu);
    if (err == MIR_ESTOPPED) break; /* the node is going away; stop() will join us */
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* ---- apply ---- */

/* Unpacks n nested events into out (owned). On failure out is left empty. */
static mir_err tmr_unpack(Mir__PackedEvent *const *pes, size_t n, mir_event_list *out) {
  for (size_t i = 0; i < n; i++) {
    mir_event *ev = NULL;
    mir_err err = mir_event_unpack(pes[i], &ev);
    if (err != MIR_OK) {
      mir_event_list_free(out);
      return mir_error_set(err, "timer: cannot unpack nested event %zu of type %s", i,
                           pes[i]->type != NULL ? pes[i]->type : "(null)");
    }
    mir_event_list_push(out, ev);
  }
  return MIR_OK;
}

/* Adds a timer firing events (takes ownership) after delay_ms, then every period_ms if that is
 * not 0. */
static mir_err tmr_add(mir_timer *t, mir_event_list *events, uint64_t delay_ms, uint64_t period_ms,
                       uint64_t retention) {
  tmr_entry *e = mir_xcalloc(1, sizeof(*e));
  mir_event_list_init(&e->events);
  mir_event_list_concat(&e->events, events);
  e->period_ns = period_ms * TMR_NS_PER_MS;
  e->retention = retention;
  pthread_mutex_lock(&t->mu);
  if (t->len >= t->pending_max) {
    pthread_mutex_unlock(&t->mu);
    tmr_entry_free(e);
    return mir_error_set(MIR_EFULL, "timer: more than %zu pending timers", t->pending_max);
  }
  if (period_ms != 0 && retention < t->retention) {
    pthread_mutex_unlock(&t->mu);
    tmr_entry_free(e); /* already garbage-collected: it would never fire */
    return MIR_OK;
  }
  e->deadline_ns = tmr_now_ns() + delay_ms * TMR_NS_PER_MS;
  e->seq = t->seq++;
  tmr_heap_push(t, e);
  if (t->heap[0] == e) pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return MIR_OK;
}

static mir_err tmr_check_duration(const char *what, uint64_t ms) {
  if (ms > MIR_TIMER_DURATION_MS_MAX) {
    return mir_error_set(MIR_EINVAL, "timer: %s of %llu ms is longer than the limit %llu ms", what,
                         (unsigned long long)ms, (unsigned long long)MIR_TIMER_DURATION_MS_MAX);
  }
  return MIR_OK;
}

static mir_err tmr_on_delay(mir_timer *t, const Mir__TimerDelay *d) {
  mir_err err = tmr_check_duration("delay", d->delay_ms);
  if (err != MIR_OK) return err;
  mir_event_list events = MIR_EVENT_LIST_INIT;
  err = tmr_unpack(d->events, d->n_events, &events);
  if (err != MIR_OK) return err;
  return tmr_add(t, &events, d->delay_ms, 0, 0);
}

static mir_err tmr_on_repeat(mir_timer *t, const Mir__TimerRepeat *r) {
  if (r->period_ms == 0) return mir_error_set(MIR_EINVAL, "timer: repeat with a period of 0 ms");
  mir_err err = tmr_check_duration("period", r->period_ms);
  if (err != MIR_OK) return err;
  mir_event_list events = MIR_EVENT_LIST_INIT;
  err = tmr_unpack(r->events, r->n_events, &events);
  if (err != MIR_OK) return err;
  return tmr_add(t, &events, r->period_ms, r->period_ms, r->retention_index);
}

/* Raises the retention index and frees the repeats that fell below it. */
static void tmr_on_gc(mir_timer *t, uint64_t r) {
  pthread_mutex_lock(&t->mu);
  if (r > t->retention) {
    t->retention = r;
    size_t kept = 0;
    for (size_t i = 0; i < t->len; i++) {
      tmr_entry *e = t->heap[i];
      if (e->period_ns != 0 && e->retention < r) {
        tmr_entry_free(e);
      } else {
        t->heap[kept++] = e;
      }
    }
    t->len = kept;
    for (size_t i = t->len / 2; i-- > 0;) tmr_heap_down(t, i);
  }
  pthread_mutex_unlock(&t->mu);
}

static mir_err tmr_apply_one(mir_timer *t, const mir_event *ev) {
  if (mir_event_is(ev, &mir__init__descriptor)) return MIR_OK;
  if (mir_event_is(ev, &mir__timer_delay__descriptor)) {
    return tmr_on_delay(t, (const Mir__TimerDelay *)ev->payload);
  }
  if (mir_event_is(ev, &mir__timer_repeat__descriptor)) {
    return tmr_on_repeat(t, (const Mir__TimerRepeat *)ev->payload);
  }
  if (mir_event_is(ev, &mir__garbage_collect__descriptor)) {
    tmr_on_gc(t, ((const Mir__GarbageCollect *)ev->payload)->retention_index);
    return MIR_OK;
  }
  return mir_error_set(MIR_EINVAL, "timer %s: unexpected event type %s", ev->dest,
                       mir_event_type_name(ev));
}

static mir_err tmr_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out; /* the timer's output goes through the inbox, later */
  mir_timer *t = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    mir_err err = tmr_apply_one(t, ev);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

/* ---- lifecycle ---- */

static mir_err tmr_start(void *state, mir_inbox *inbox) {
  mir_timer *t = state;
  if (t->started) return mir_error_set(MIR_EINVAL, "timer: started twice");
  t->inbox = inbox;
  if (pthread_create(&t->thread, NULL, tmr_thread, t) != 0) {
    return mir_error_set(MIR_EIO, "timer: cannot create its thread");
  }
  t->started = true;
  return MIR_OK;
}

static void tmr_stop(void *state) {
  mir_timer *t = state;
  pthread_mutex_lock(&t->mu);
  t->stopping = true;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  if (t->started && !t->joined) {
    pthread_join(t->thread, NULL);
    t->joined = true;
  }
}

static void tmr_destroy(void *state) {
  mir_timer_free(state);
}

const mir_module_ops mir_timer_ops = {
    .name = "timer",
    .kind = MIR_MODULE_ACTIVE,
    .apply = tmr_apply,
    .start = tmr_start,
    .stop = tmr_stop,
    .destroy = tmr_destroy,
};

mir_err mir_timer_new(const mir_timer_params *params, mir_timer **out) {
  mir_timer *t = mir_xcalloc(1, sizeof(*t));
  t->pending_max = params != NULL && params->pending_max != 0 ? params->pending_max
                                                              : MIR_TIMER_PENDING_MAX_DEFAULT;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return MIR_OK;
}

void mir_timer_free(mir_timer *t) {
  if (t == NULL) return;
  tmr_stop(t);
  for (size_t i = 0; i < t->len; i++) tmr_entry_free(t->heap[i]);
  free(t->heap);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

size_t mir_timer_pending(mir_timer *t) {
  pthread_mutex_lock(&t->mu);
  size_t n = t->len;
  pthread_mutex_unlock(&t->mu);
  return n;
}
