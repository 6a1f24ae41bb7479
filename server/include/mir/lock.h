/*
 * Named locks: a pthread mutex that counts how often it was contended and how long acquirers
 * waited, as metrics (metrics.h) of the set it was registered in:
 *   mir_lock_contended_total{lock="<name>"}     acquisitions that found the lock taken
 *   mir_lock_wait_seconds_total{lock="<name>"}  time those acquisitions waited
 * An acquisition first tries the lock; only when that fails does it read the clock and count, so
 * an uncontended lock costs one try-lock, as a plain mutex would.
 */
#ifndef MIR_LOCK_H
#define MIR_LOCK_H

#include <pthread.h>

#include "mir/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mir_lock {
  pthread_mutex_t mu; /* usable with pthread_cond_wait (a condition wait is not counted) */
  mir_counter *contended;
  mir_counter *wait_ns;
  mir_counter own_contended, own_wait_ns; /* used when registered in no set */
} mir_lock;

/* Initialises l; name (a short literal, borrowed) labels its metrics in set m (borrowed, may be
 * NULL: the counts stay in the lock). m must outlive the lock's use. */
void mir_lock_init(mir_lock *l, mir_metrics *m, const char *name);
void mir_lock_fini(mir_lock *l);

/* The slow path of mir_lock_acquire: blocks, then counts the wait. */
void miri_lock_wait(mir_lock *l);

static inline void mir_lock_acquire(mir_lock *l) {
  if (pthread_mutex_trylock(&l->mu) != 0) miri_lock_wait(l);
}
static inline void mir_lock_release(mir_lock *l) {
  pthread_mutex_unlock(&l->mu);
}

#ifdef __cplusplus
}
#endif
#endif
