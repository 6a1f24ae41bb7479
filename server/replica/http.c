/*
 * The replica's HTTP endpoint (http.h): libmicrohttpd with a thread per connection (at most
 * max_connections of them), one handler that answers each GET at once from a snapshot of the
 * registry and /proc, except the CPU profile, which holds its connection's thread for the
 * profile's duration (at most one at a time). A pool of threads was used before: a scrape that
 * arrived together with a profile request could be accepted by the pool thread that then took
 * the profile, and waited for the whole profile (seen by a test that polls /debug/stats while a
 * profile runs); with a thread of its own, no connection waits for another's handler.
 *
 * Nothing a client sends reaches an assertion or an allocation sized by it: the path is compared
 * with fixed strings, `seconds` is parsed into a bounded integer, and bodies are built from the
 * registry and /proc only.
 */
#include "http.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gperftools/profiler.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/log.h"

#define HTTP_LOG "http"
#define HTTP_PROFILE_FILE_MAX ((size_t)256 << 20)

struct mir_http {
  struct MHD_Daemon *d;
  char *node_id;
  char *profile_path;
  mir_metrics *root;
  uint16_t port;
  int profiling; /* 0 or 1, taken with an atomic exchange */
  int stopping;
};

/* ---- /proc ---- */

/* Reads a small /proc file into buf (NUL-terminated); false if it cannot be read. */
static bool http_read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return false;
  buf[n] = '\0';
  return true;
}

/* Fields of a stat line after the command (which may hold spaces and parentheses): utime and
 * stime in clock ticks, and the thread count. */
static bool http_parse_stat(const char *line, double *cpu_s, uint64_t *threads) {
  const char *p = strrchr(line, ')');
  if (p == NULL) return false;
  unsigned long long ut = 0, st = 0, nth = 0;
  /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
   * cstime priority nice num_threads */
  int k =
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %llu",
             &ut, &st, &nth);
  if (k != 3) return false;
  long hz = sysconf(_SC_CLK_TCK);
  *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
  if (threads) *threads = nth;
  return true;
}

mir_err mir_proc_stats_read(mir_proc_stats *out) {
  memset(out, 0, sizeof(*out));
  char buf[1024];
  if (!http_read_small("/proc/self/stat", buf, sizeof buf) ||
      !http_parse_stat(buf, &out->cpu_seconds, &out->threads)) {
    return mir_error_set(MIR_EIO, "cannot read /proc/self/stat");
  }
  unsigned long long size = 0, resident = 0;
  if (http_read_small("/proc/self/statm", buf, sizeof buf) &&
      sscanf(buf, "%llu %llu", &size, &resident) == 2) {
    out->rss_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
  }
  return MIR_OK;
}

size_t mir_thread_cpu_read(mir_thread_cpu *out, size_t cap) {
  DIR *dir = opendir("/proc/self/task");
  if (dir == NULL) return 0;
  size_t n = 0;
  struct dirent *e;
  while (n < cap && (e = readdir(dir)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
    mir_thread_cpu *t = &out[n];
    if (!http_read_small(path, buf, sizeof buf) || !http_parse_stat(buf, &t->cpu_seconds, NULL)) {
      continue; /* the thread ended meanwhile */
    }
    t->tid = atoi(e->d_name);
    snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
    if (!http_read_small(path, t->name, sizeof t->name)) snprintf(t->name, sizeof t->name, "?");
    t->name[strcspn(t->name, "\n")] = '\0';
    n++;
  }
  closedir(dir);
  return n;
}

/* ---- bodies ---- */

#define HTTP_THREADS_READ 512

/* Sums the CPU time of threads by name (bounded: names are set by our code and libraries). */
static size_t http_threads_by_name(mir_thread_cpu *ts, size_t n) {
  size_t w = 0;
  for (size_t r = 0; r < n; r++) {
    size_t j = 0;
    while (j < w && strcmp(ts[j].name, ts[r].name) != 0) j++;
    if (j < w) {
      ts[j].cpu_seconds += ts[r].cpu_seconds;
    } else {
      ts[w++] = ts[r];
    }
  }
  return w;
}

/* Appends printf output to a malloc'd text (buf, len, cap). */
static void http_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void http_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < *cap - *len) {
      *len += (size_t)k;
      return;
    }
    *cap = 2 * *cap + (size_t)(k > 0 ? k : 0) + 1;
    *buf = mir_xrealloc(*buf, *cap);
  }
}

static char *http_metrics_body(mir_http *h, size_t *len_out) {
  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(h->root, &snap);
  char *buf = NULL;
  size_t len = 0;
  mir_metrics_snapshot_prometheus(&snap, &buf, &len);
  mir_metrics_snapshot_fini(&snap);
  size_t cap = len + 1;
  mir_proc_stats ps;
  if (mir_proc_stats_read(&ps) == MIR_OK) {
    http_append(&buf, &len, &cap,
                "# HELP mir_process_cpu_seconds_total CPU time (user and system) of the process.\n"
                "# TYPE mir_process_cpu_seconds_total counter\nmir_process_cpu_seconds_total %.2f\n"
                "# HELP mir_process_resident_memory_bytes Resident memory of the process.\n"
                "# TYPE mir_process_resident_memory_bytes gauge\n"
                "mir_process_resident_memory_bytes %llu\n"
                "# HELP mir_process_threads Threads of the process.\n"
                "# TYPE mir_process_threads gauge\nmir_process_threads %llu\n",
                ps.cpu_seconds, (unsigned long long)ps.rss_bytes, (unsigned long long)ps.threads);
  }
  mir_thread_cpu *ts = mir_xcalloc(HTTP_THREADS_READ, sizeof(*ts));
  size_t n = http_threads_by_name(ts, mir_thread_cpu_read(ts, HTTP_THREADS_READ));
  http_append(&buf, &len, &cap,
              "# HELP mir_thread_cpu_seconds_total CPU time of the process's threads, by thread "
              "name.\n# TYPE mir_thread_cpu_seconds_total counter\n");
  for (size_t i = 0; i < n; i++) {
    /* Thread names are ours or a library's; keep only characters that need no escaping. */
    for (char *c = ts[i].name; *c; c++) {
      if (*c == '"' || *c == '\\') *c = '_';
    }
    http_append(&buf, &len, &cap, "mir_thread_cpu_seconds_total{thread=\"%s\"} %.2f\n", ts[i].name,
                ts[i].cpu_seconds);
  }
  free(ts);
  *len_out = len;
  return buf;
}

static json_t *http_sample_json(const mir_metric_sample *s) {
  json_t *o = json_pack("{s:s, s:s, s:s, s:f}", "name", s->name, "kind",
                        mir_metric_kind_name(s->kind), "module", s->module, "value", s->value);
  if (s->label != NULL) json_object_set_new(o, s->label, json_string(s->label_value));
  if (s->kind == MIR_METRIC_HISTOGRAM) {
    json_object_set_new(o, "count", json_integer(s->raw));
    json_t *b = json_array();
    for (size_t i = 0; i < s->n_bounds; i++) {
      json_array_append_new(
          b, json_pack("{s:f, s:I}", "le", s->bounds[i], "count", (json_int_t)s->cumulative[i]));
    }
    json_object_set_new(o, "buckets", b);
  }
  return o;
}

static char *http_stats_body(mir_http *h, size_t *len_out) {
  json_t *root = json_object();
  json_object_set_new(root, "node", json_string(h->node_id));
  json_object_set_new(root, "profiling",
                      json_boolean(__atomic_load_n(&h->profiling, __ATOMIC_ACQUIRE) != 0));
  mir_proc_stats ps;
  if (mir_proc_stats_read(&ps) == MIR_OK) {
    json_object_set_new(root, "process",
                        json_pack("{s:f, s:I, s:I}", "cpu_seconds", ps.cpu_seconds, "rss_bytes",
                                  (json_int_t)ps.rss_bytes, "threads", (json_int_t)ps.threads));
  }
  mir_thread_cpu *ts = mir_xcalloc(HTTP_THREADS_READ, sizeof(*ts));
  size_t n = mir_thread_cpu_read(ts, HTTP_THREADS_READ);
  json_t *threads = json_array();
  for (size_t i = 0; i < n; i++) {
    json_array_append_new(threads, json_pack("{s:i, s:s, s:f}", "tid", ts[i].tid, "name",
                                             ts[i].name, "cpu_seconds", ts[i].cpu_seconds));
  }
  free(ts);
  json_object_set_new(root, "threads", threads);
  mir_metrics_snapshot snap;
  mir_metrics_snapshot_take(h->root, &snap);
  json_t *metrics = json_array();
  for (size_t i = 0; i < snap.n; i++)
    json_array_append_new(metrics, http_sample_json(&snap.samples[i]));
  mir_metrics_snapshot_fini(&snap);
  json_object_set_new(root, "metrics", metrics);
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  *len_out = text ? strlen(text) : 0;
  return text;
}

/* ---- profiles ---- */

/* Parses seconds (borrowed, may be NULL: the default 30) into 1..MIR_HTTP_PROFILE_SECONDS_MAX. */
static bool http_parse_seconds(const char *s, unsigned *out) {
  if (s == NULL) {
    *out = 30;
    return true;
  }
  if (s[0] < '0' || s[0] > '9' || strlen(s) > 6) return false;
  char *end = NULL;
  unsigned long v = strtoul(s, &end, 10);
  if (*end != '\0' || v < 1 || v > MIR_HTTP_PROFILE_SECONDS_MAX) return false;
  *out = (unsigned)v;
  return true;
}

/* Reads the profile file whole (bounded); NULL if it cannot. */
static char *http_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      if (cap >= HTTP_PROFILE_FILE_MAX) break;
      cap = cap ? 2 * cap : 65536;
      buf = mir_xrealloc(buf, cap);
    }
    size_t k = fread(buf + n, 1, cap - n, f);
    if (k == 0) break;
    n += k;
  }
  fclose(f);
  *len = n;
  return buf;
}

/* Takes a CPU profile for `seconds` (the caller holds h->profiling). Returns the pprof file's
 * bytes (owned) or NULL with *why set. */
static char *http_cpu_profile(mir_http *h, unsigned seconds, size_t *len, const char **why) {
  if (!ProfilerStart(h->profile_path)) {
    *why = "the CPU profiler could not start (is CPUPROFILE set in the environment?)\n";
    return NULL;
  }
  mir_log(MIR_LOG_INFO, HTTP_LOG, "%s: taking a CPU profile for %u s", h->node_id, seconds);
  /* The profiler's SIGPROF can cut a sleep short (nanosleep is never restarted), so the
   * duration is kept by the monotonic clock, not by counting sleeps. */
  const uint64_t deadline = mir_now_ns() + (uint64_t)seconds * 1000000000u;
  for (uint64_t now = mir_now_ns();
       now < deadline && !__atomic_load_n(&h->stopping, __ATOMIC_RELAXED); now = mir_now_ns()) {
    uint64_t left_us = (deadline - now) / 1000;
    usleep((useconds_t)(left_us < 100000 ? left_us : 100000));
  }
  ProfilerStop();
  char *body = http_slurp(h->profile_path, len);
  unlink(h->profile_path);
  if (body == NULL) *why = "the profile file could not be read\n";
  return body;
}

typedef int (*http_heap_running_fn)(void);
typedef char *(*http_heap_get_fn)(void);

/* The heap profile of tcmalloc's heap profiler, found at run time so that the replica neither
 * links tcmalloc nor pays for it unless the operator starts it that way. */
static char *http_heap_profile(size_t *len) {
  http_heap_running_fn running = (http_heap_running_fn)dlsym(RTLD_DEFAULT, "IsHeapProfilerRunning");
  http_heap_get_fn get = (http_heap_get_fn)dlsym(RTLD_DEFAULT, "GetHeapProfile");
  if (running == NULL || get == NULL || !running()) return NULL;
  char *p = get();
  *len = p ? strlen(p) : 0;
  return p;
}

/* ---- the handler ---- */

static enum MHD_Result http_reply(struct MHD_Connection *c, unsigned status, const char *type,
                                  char *body, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result http_text(struct MHD_Connection *c, unsigned status, const char *text) {
  return http_reply(c, status, "text/plain; charset=utf-8", mir_xstrdup(text), strlen(text));
}

static enum MHD_Result http_profile(mir_http *h, struct MHD_Connection *c) {
  unsigned seconds = 0;
  const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
  if (!http_parse_seconds(arg, &seconds)) {
    return http_text(c, MHD_HTTP_BAD_REQUEST, "seconds must be an integer in 1..300\n");
  }
  if (__atomic_exchange_n(&h->profiling, 1, __ATOMIC_ACQ_REL) != 0) {
    return http_text(c, MHD_HTTP_CONFLICT, "a CPU profile is being taken; try again later\n");
  }
  size_t len = 0;
  const char *why = NULL;
  char *body = http_cpu_profile(h, seconds, &len, &why);
  __atomic_store_n(&h->profiling, 0, __ATOMIC_RELEASE);
  if (body == NULL) return http_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, why);
  return http_reply(c, MHD_HTTP_OK, "application/octet-stream", body, len);
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls) {
  (void)version, (void)upload_data, (void)con_cls;
  mir_http *h = cls;
  if (*upload_data_size != 0) {
    *upload_data_size = 0; /* a body is ignored; the method check below refuses it */
    return MHD_YES;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    return http_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
  }
  size_t len = 0;
  if (strcmp(url, "/metrics") == 0) {
    char *body = http_metrics_body(h, &len);
    return http_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
  }
  if (strcmp(url, "/debug/stats") == 0) {
    char *body = http_stats_body(h, &len);
    if (body == NULL) return http_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "encoding failed\n");
    return http_reply(c, MHD_HTTP_OK, "application/json", body, len);
  }
  if (strcmp(url, "/debug/pprof/profile") == 0) return http_profile(h, c);
  if (strcmp(url, "/debug/pprof/heap") == 0) {
    char *body = http_heap_profile(&len);
    if (body != NULL) return http_reply(c, MHD_HTTP_OK, "application/octet-stream", body, len);
    return http_text(c, MHD_HTTP_NOT_IMPLEMENTED,
                     "heap profiling is off: start mir-replica with LD_PRELOAD=libtcmalloc.so.4 "
                     "and HEAPPROFILE=<file prefix> (docs/OPERATIONS.md)\n");
  }
  return http_text(c, MHD_HTTP_NOT_FOUND,
                   "not found; try /metrics, /debug/stats, /debug/pprof/profile?seconds=N or "
                   "/debug/pprof/heap\n");
}

/* ---- life cycle ---- */

/* Resolves "host:port" (a numeric or named host; [v6] accepted) for listening. */
static mir_err http_resolve(const char *listen, struct addrinfo **out) {
  const char *colon = strrchr(listen, ':');
  if (colon == NULL || colon == listen) {
    return mir_error_set(MIR_ECONFIG, "http_listen: '%s' is not host:port", listen);
  }
  char host[256];
  size_t hl = (size_t)(colon - listen);
  if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
    listen++, hl -= 2;
  }
  if (hl >= sizeof host) return mir_error_set(MIR_ECONFIG, "http_listen: host name too long");
  memcpy(host, listen, hl);
  host[hl] = '\0';
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  int rc = getaddrinfo(host, colon + 1, &hints, out);
  if (rc != 0) {
    return mir_error_set(MIR_ECONFIG, "http_listen: cannot resolve '%s': %s", listen,
                         gai_strerror(rc));
  }
  return MIR_OK;
}

mir_err mir_http_start(const mir_http_config *cfg, mir_http **out) {
  struct addrinfo *ai = NULL;
  mir_err err = http_resolve(cfg->listen, &ai);
  if (err != MIR_OK) return err;
  mir_http *h = mir_xcalloc(1, sizeof(*h));
  h->node_id = mir_xstrdup(cfg->node_id ? cfg->node_id : "");
  h->root = cfg->root;
  size_t pl = strlen(cfg->profile_dir) + 32;
  h->profile_path = mir_xmalloc(pl);
  snprintf(h->profile_path, pl, "%s/cpu.prof.tmp", cfg->profile_dir);
  unsigned conns = cfg->max_connections ? cfg->max_connections : MIR_HTTP_CONNECTIONS_DEFAULT;
  if (conns > MIR_HTTP_CONNECTIONS_MAX) conns = MIR_HTTP_CONNECTIONS_MAX;
  unsigned flags =
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  h->d = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_CONNECTION_LIMIT, conns, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)MIR_HTTP_TIMEOUT_S_DEFAULT, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (h->d == NULL) {
    int e = errno;
    mir_http_stop(h);
    return mir_error_set(MIR_EIO, "http_listen: cannot listen on %s: %s", cfg->listen,
                         e ? strerror(e) : "libmicrohttpd refused");
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
  h->port = info ? info->port : 0;
  *out = h;
  return MIR_OK;
}

uint16_t mir_http_port(const mir_http *h) {
  return h->port;
}

void mir_http_stop(mir_http *h) {
  if (h == NULL) return;
  __atomic_store_n(&h->stopping, 1, __ATOMIC_RELAXED);
  if (h->d != NULL) MHD_stop_daemon(h->d);
  free(h->profile_path);
  free(h->node_id);
  free(h);
}
