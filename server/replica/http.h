/*
 * The replica's HTTP endpoint (libmicrohttpd), on its own port (config field http_listen):
 *
 *   GET /metrics                       the metrics registry in the Prometheus text format, plus
 *                                      process CPU seconds, resident memory, threads and CPU
 *                                      seconds per thread name
 *   GET /debug/stats                   the same numbers as JSON, plus CPU time per thread
 *   GET /debug/pprof/profile?seconds=N a CPU profile of the whole process (gperftools, pprof
 *                                      format), N in 1..MIR_HTTP_PROFILE_SECONDS_MAX (default
 *                                      30); one at a time (409 while one is taken), 400 for a bad N
 *   GET /debug/pprof/heap              the heap profile, when the process runs with tcmalloc's
 *                                      heap profiler (LD_PRELOAD of libtcmalloc and HEAPPROFILE
 *                                      set, docs/OPERATIONS.md); 501 otherwise
 *
 * Anything else is 404, a method other than GET or HEAD 405. The server has its own threads, one
 * per connection within a connection limit, so scrapes never touch the node's threads, a profile
 * being taken holds up no other request, and a slow or malicious client holds at most one
 * connection slot (and its thread) until the time-out.
 */
#ifndef MIR_REPLICA_HTTP_H
#define MIR_REPLICA_HTTP_H

#include <stdint.h>

#include "mir/errors.h"
#include "mir/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_HTTP_PROFILE_SECONDS_MAX 300
#define MIR_HTTP_CONNECTIONS_DEFAULT 32
#define MIR_HTTP_CONNECTIONS_MAX 256
#define MIR_HTTP_TIMEOUT_S_DEFAULT 15

typedef struct mir_http mir_http;

typedef struct mir_http_config {
  const char *listen;       /* "host:port" (port 0: any free port); borrowed */
  const char *node_id;      /* for /debug/stats; borrowed */
  mir_metrics *root;        /* the registry to serve (borrowed; must outlive the server) */
  const char *profile_dir;  /* folder for the profile file while one is taken; borrowed */
  unsigned max_connections; /* 0: MIR_HTTP_CONNECTIONS_DEFAULT; at most ..._MAX (threads) */
} mir_http_config;

/* Binds cfg->listen and starts serving. The strings of cfg are copied. MIR_ECONFIG for an address
 * that does not resolve, MIR_EIO when it cannot be bound (detail says which and why). *out is
 * owned (free with mir_http_stop). */
mir_err mir_http_start(const mir_http_config *cfg, mir_http **out);

/* The port the server listens on (useful with port 0). */
uint16_t mir_http_port(const mir_http *h);

/* Stops the server (ends a profile being taken within ~100 ms), joins its threads and frees it.
 * NULL is a no-op. */
void mir_http_stop(mir_http *h);

/* The process's CPU seconds, resident bytes and thread count, from /proc. */
typedef struct mir_proc_stats {
  double cpu_seconds;
  uint64_t rss_bytes;
  uint64_t threads;
} mir_proc_stats;
mir_err mir_proc_stats_read(mir_proc_stats *out);

/* CPU seconds of one thread of this process. */
typedef struct mir_thread_cpu {
  int tid;
  char name[16];
  double cpu_seconds;
} mir_thread_cpu;

/* Fills out (up to cap entries) from /proc/self/task; returns how many were filled. */
size_t mir_thread_cpu_read(mir_thread_cpu *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
