/*
 * Process-wide logger. Lines are formatted outside the lock and written under it, so concurrent
 * threads never interleave within a line. The level is an atomic so that the common "disabled"
 * check costs one load.
 */
#include "mir/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int log_level = -1; /* -1: not yet read from MIR_LOG */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static mir_log_sink log_sink;
static void *log_sink_user;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "off"};

mir_log_level mir_log_level_parse(const char *name) {
  for (int i = 0; i <= MIR_LOG_OFF; i++) {
    if (name != NULL && strcasecmp(name, level_names[i]) == 0) return (mir_log_level)i;
  }
  return MIR_LOG_INFO;
}

mir_log_level mir_log_get_level(void) {
  int level = atomic_load_explicit(&log_level, memory_order_relaxed);
  if (level < 0) {
    const char *env = getenv("MIR_LOG");
    level = env ? (int)mir_log_level_parse(env) : (int)MIR_LOG_INFO;
    atomic_store(&log_level, level);
  }
  return (mir_log_level)level;
}

void mir_log_set_level(mir_log_level level) {
  atomic_store(&log_level, (int)level);
}

void mir_log_set_sink(mir_log_sink sink, void *user_data) {
  pthread_mutex_lock(&log_lock);
  log_sink = sink;
  log_sink_user = user_data;
  pthread_mutex_unlock(&log_lock);
}

void mir_logv(mir_log_level level, const char *component, const char *fmt, va_list ap) {
  if (level < mir_log_get_level() || level >= MIR_LOG_OFF) return;
  char line[1024];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  int n =
      snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s %s: ", tm.tm_hour, tm.tm_min,
               tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], component ? component : "mir");
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  pthread_mutex_lock(&log_lock);
  if (log_sink != NULL) {
    log_sink(log_sink_user, level, line);
  } else {
    fprintf(stderr, "%s\n", line);
  }
  pthread_mutex_unlock(&log_lock);
}

void mir_log(mir_log_level level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mir_logv(level, component, fmt, ap);
  va_end(ap);
}
