/*
 * Allocation that aborts on exhaustion, the thread-local error detail that travels with a
 * mir_err, and the monotonic clock used by edges and tools.
 *
 * Aborting on out-of-memory is deliberate: a replica that fails an allocation halfway through a
 * state update cannot continue safely, and every size passed here is bounded by a configured
 * limit first, so exhaustion means the machine is misconfigured, not that a peer misbehaved.
 */
#include "mir/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Noreturn void alloc_die(size_t size) {
  fprintf(stderr, "mir: out of memory allocating %zu bytes\n", size);
  abort();
}

void *mir_xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (p == NULL) alloc_die(size);
  return p;
}

void *mir_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (p == NULL) alloc_die(count * size);
  return p;
}

void *mir_xrealloc(void *ptr, size_t size) {
  void *p = realloc(ptr, size ? size : 1);
  if (p == NULL) alloc_die(size);
  return p;
}

char *mir_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = mir_xmalloc(n);
  memcpy(p, s, n);
  return p;
}

void *mir_xmemdup(const void *data, size_t len) {
  if (len == 0) return NULL;
  void *p = mir_xmalloc(len);
  memcpy(p, data, len);
  return p;
}

/* One detail buffer per thread: the module that fails writes it, the node (same thread) reads it
 * right after apply returns, so no locking is needed. */
static _Thread_local char error_detail[512];

int mir_error_set(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_detail, sizeof error_detail, fmt, ap);
  va_end(ap);
  return code;
}

const char *mir_error_detail(void) {
  return error_detail;
}

void mir_error_clear(void) {
  error_detail[0] = '\0';
}

uint64_t mir_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
