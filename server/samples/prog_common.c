/*
 * Program plumbing for the samples (prog_common.h). The wait loop polls in steps of
 * PROG_POLL_MS: a flag set by a signal handler cannot wake a condition variable, and a step that
 * short keeps Ctrl-C responsive at no measurable cost. The loop is bounded by its deadline.
 */
#include "prog_common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mir/alloc.h"

#define PROG_POLL_MS 20

static volatile sig_atomic_t prog_stop_flag = 0;

static void prog_on_signal(int sig) {
  (void)sig;
  prog_stop_flag = 1;
}

void prog_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = prog_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

bool prog_interrupted(void) {
  return prog_stop_flag != 0;
}

bool prog_parse_duration(const char *s, uint64_t *ms) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > PROG_DURATION_S_MAX) return false;
  *ms = (uint64_t)(v * 1000.0);
  if (*ms == 0) *ms = 1;
  return true;
}

bool prog_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  if (s[0] == '-' || s[0] == '\0') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

mir_err prog_record(mir_node *node, const char *dir, const char *node_id, mir_recorder **out) {
  mir_recorder_config cfg;
  mir_recorder_config_default(&cfg);
  cfg.dir = dir;
  cfg.node_id = node_id;
  cfg.prefix = node_id;
  mir_err err = mir_recorder_new(&cfg, out);
  if (err != MIR_OK) return err;
  mir_interceptor icp;
  mir_recorder_interceptor(*out, &icp);
  mir_node_set_interceptor(node, &icp);
  return MIR_OK;
}

static void prog_sleep_ms(uint64_t ms) {
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL); /* an early return on a signal is fine: the caller polls */
}

mir_err prog_wait(mir_node *const *nodes, size_t n, uint64_t timeout_ms, bool (*done)(void *user),
                  void *user) {
  uint64_t deadline = mir_now_ns() + timeout_ms * 1000000ULL;
  for (;;) {
    if (done != NULL && done(user)) return MIR_OK;
    if (prog_interrupted()) return MIR_ESTOPPED;
    for (size_t i = 0; i < n; i++) {
      mir_err err = mir_node_wait(nodes[i], 1);
      if (err != MIR_ETIMEDOUT) {
        fprintf(stderr, "node %s stopped: %s %s\n", mir_node_id(nodes[i]), mir_strerror(err),
                mir_node_last_error(nodes[i]));
        return err != MIR_OK ? err : MIR_ESTOPPED;
      }
    }
    uint64_t now = mir_now_ns();
    if (now >= deadline) return MIR_ETIMEDOUT;
    uint64_t left_ms = (deadline - now) / 1000000ULL;
    prog_sleep_ms(left_ms < PROG_POLL_MS ? (left_ms ? left_ms : 1) : PROG_POLL_MS);
  }
}
