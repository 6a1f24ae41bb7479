/*
 * The timer: an active module that emits events later.
 *
 * Input events: mir.Init (nothing to do), mir.TimerDelay (emit the nested events once, after
 * delay_ms), mir.TimerRepeat (emit copies of the nested events every period_ms, the first time
 * after one period, for as long as the repeat's retention index is not below the timer's) and
 * mir.GarbageCollect (raise the timer's retention index; repeats below it are cancelled). Delays
 * cannot be cancelled: protocols ignore stale timeouts by checking their own state.
 *
 * One thread sleeps until the earliest deadline on the monotonic clock and pushes due events into
 * the node's inbox (blocking there under backpressure); apply() only records timers, so it never
 * blocks. The number of pending timers is bounded.
 */
#ifndef MIR_TIMER_H
#define MIR_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound on pending timers (delays not yet fired plus live repeats). */
#define MIR_TIMER_PENDING_MAX_DEFAULT 65536
/* Longest delay or period accepted, in milliseconds (about 30 days); longer ones are errors. */
#define MIR_TIMER_DURATION_MS_MAX ((uint64_t)30 * 24 * 3600 * 1000)

typedef struct mir_timer mir_timer;

typedef struct mir_timer_params {
  size_t pending_max; /* most pending timers (0: the default) */
} mir_timer_params;

/* Creates a timer module. params may be NULL for the defaults and is copied. *out is owned (free
 * with mir_timer_free, or hand it to mir_node_add_module with mir_timer_ops). */
mir_err mir_timer_new(const mir_timer_params *params, mir_timer **out);

/* Stops the thread if running and frees the timer and every pending timer. NULL is a no-op. */
void mir_timer_free(mir_timer *timer);

/* Number of pending timers now. timer is borrowed. Thread-safe. */
size_t mir_timer_pending(mir_timer *timer);

/* The ops of a timer; the state is the mir_timer * (static). */
extern const mir_module_ops mir_timer_ops;

#ifdef __cplusplus
}
#endif
#endif
