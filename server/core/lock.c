/*
 * Named locks (lock.h). The wait is measured with the monotonic clock, only after a failed
 * try-lock, so the counters describe contention and nothing else.
 */
#include "mir/lock.h"

#include <string.h>

#include "mir/alloc.h"

void mir_lock_init(mir_lock *l, mir_metrics *m, const char *name) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  if (m == NULL) {
    l->contended = &l->own_contended;
    l->wait_ns = &l->own_wait_ns;
    return;
  }
  l->contended = mir_metrics_counter(m, "mir_lock_contended_total",
                                     "Acquisitions of the lock that found it held.", "lock", name);
  l->wait_ns =
      mir_metrics_counter(m, "mir_lock_wait_seconds_total",
                          "Time acquirers waited for the lock when it was held.", "lock", name);
}

void mir_lock_fini(mir_lock *l) {
  pthread_mutex_destroy(&l->mu);
}

void miri_lock_wait(mir_lock *l) {
  uint64_t t0 = mir_now_ns();
  pthread_mutex_lock(&l->mu);
  mir_counter_inc(l->contended);
  mir_counter_add(l->wait_ns, mir_now_ns() - t0);
}
