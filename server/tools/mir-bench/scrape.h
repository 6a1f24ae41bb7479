/*
 * mir-bench --metrics: reading a replica's HTTP endpoint (server/replica/http.c) before and after
 * a run, and what changed in between.
 *
 * Three layers, each usable alone (the unit tests drive them one by one):
 * - scrape_get: a small HTTP/1.1 GET client on a socket (loopback and LAN use, no TLS), bounded in
 *   time and in bytes;
 * - prom_parse: the Prometheus text format, bounded in line length and line count;
 * - scrape_read / scrape_delta_compute: a replica's /metrics and /debug/stats read into a
 *   snapshot, and two snapshots turned into CPU per committed transaction and the busiest
 *   modules, threads and locks.
 *
 * Everything a replica sends is untrusted input: a malformed or oversized answer is an error
 * with a message (which names the URL where the caller gave one), never a crash. Errors are
 * returned as -1 with the reason written into a caller's buffer: mir-bench links the SDK only,
 * not the framework's error type.
 */
#ifndef MIR_BENCH_SCRAPE_H
#define MIR_BENCH_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCRAPE_HOST_MAX 256
#define SCRAPE_PATH_MAX 256
#define SCRAPE_ERR_MAX 512
#define SCRAPE_HEADER_BYTES_MAX (16u << 10) /* status line and headers */
#define SCRAPE_BODY_BYTES_MAX (16u << 20)   /* a page; a replica's is tens of KiB */
#define SCRAPE_TIMEOUT_MS_DEFAULT 5000      /* per request: connect, send and read */
#define PROM_LINE_MAX 4096                  /* bytes per line, without the newline */
#define PROM_LINES_MAX 200000               /* lines per page */
#define PROM_LABELS_MAX 8                   /* labels per sample */
#define SCRAPE_THREADS_MAX 4096             /* threads in /debug/stats (the replica lists 512) */
#define SCRAPE_THREAD_NAME_MAX 32           /* Linux names have at most 15 bytes */
#define SCRAPE_TOP_N 3                      /* modules, threads and locks reported */

/* ---- URLs and the HTTP client ---- */

/* A base URL: http://host[:port][/prefix]. */
typedef struct scrape_url {
  char host[SCRAPE_HOST_MAX];   /* without brackets for an IPv6 literal */
  char port[8];                 /* "80" if none was given */
  char prefix[SCRAPE_PATH_MAX]; /* "" or "/..." without a trailing slash or "/metrics" */
} scrape_url;

/* Parses text (borrowed): "http://" may be left out, https is refused, a trailing "/" or
 * "/metrics" is dropped (so cluster.sh's metrics-urls can be passed as they are). 0, or -1 with
 * the reason in err (errcap bytes). */
int scrape_url_parse(const char *text, scrape_url *out, char *err, size_t errcap);

/* GET prefix+path from u (borrowed) with HTTP/1.1 and "Connection: close", within timeout_ms
 * overall. On 200 returns 0 and the body through *body (returns owned, NUL-terminated, free with
 * free()) and *len; a chunked body is decoded. Otherwise -1 and the reason in err: the connection
 * refused or timed out, a status other than 200 (with the first line of the body), a malformed
 * status line or header, a body beyond body_max bytes, or a truncated body. */
int scrape_get(const scrape_url *u, const char *path, int timeout_ms, size_t body_max, char **body,
               size_t *len, char *err, size_t errcap);

/* ---- the Prometheus text format ---- */

typedef struct prom_sample {
  const char *name; /* borrowed from the page */
  size_t n_labels;
  const char *keys[PROM_LABELS_MAX];   /* borrowed from the page */
  const char *values[PROM_LABELS_MAX]; /* unescaped; borrowed from the page */
  double value;                        /* NaN and infinities as written */
} prom_sample;

typedef struct prom_page {
  char *text;           /* owned: the parsed copy that names and labels point into */
  prom_sample *samples; /* owned */
  size_t n;
} prom_page;

/* Parses a page of len bytes (borrowed; need not be NUL-terminated) into out (free with
 * prom_page_fini, also after an error). Comment lines (# HELP, # TYPE, any other #) and empty
 * lines are skipped; a sample line is name[{k="v",...}] value [timestamp]. 0, or -1 with
 * "line N: what is wrong" in err. */
int prom_parse(const char *page, size_t len, prom_page *out, char *err, size_t errcap);
void prom_page_fini(prom_page *p);

/* The value of label key of s (borrowed), or NULL. */
const char *prom_label(const prom_sample *s, const char *key);

/* Sum of every sample called name whose label key equals value (key NULL: every sample of that
 * name). Returns how many samples matched; the sum goes to *sum (0 when none matched). */
size_t prom_sum(const prom_page *p, const char *name, const char *key, const char *value,
                double *sum);

/* ---- a replica's snapshot and what changed between two ---- */

typedef struct scrape_thread {
  int64_t tid;
  char name[SCRAPE_THREAD_NAME_MAX];
  double cpu_s;
} scrape_thread;

typedef struct scrape_snapshot {
  prom_page page;         /* /metrics */
  scrape_thread *threads; /* owned: /debug/stats "threads" */
  size_t n_threads;
  double at_s; /* monotonic seconds when /metrics was read */
} scrape_snapshot;

/* Reads /metrics and /debug/stats of u (borrowed) into out (free with scrape_snapshot_fini, also
 * after an error). 0, or -1 with the reason in err, naming the URL that failed. */
int scrape_read(const scrape_url *u, int timeout_ms, scrape_snapshot *out, char *err,
                size_t errcap);
void scrape_snapshot_fini(scrape_snapshot *s);

/* Parses the "threads" array of a /debug/stats body (json, len bytes, borrowed) into out. 0, or
 * -1 with the reason in err. */
int scrape_parse_threads(const char *json, size_t len, scrape_snapshot *out, char *err,
                         size_t errcap);

/* One row of a top list: a module, a thread or a lock. */
typedef struct scrape_top {
  char name[96];
  int64_t tid;    /* a thread's id; 0 for modules and locks */
  double seconds; /* busy time, CPU time or time waited */
  double count;   /* contended acquisitions (locks); 0 otherwise */
} scrape_top;

typedef struct scrape_delta {
  double interval_s;   /* between the two reads of /metrics */
  double cpu_s;        /* mir_process_cpu_seconds_total after - before */
  uint64_t committed;  /* what the caller counted committed in between */
  double cpu_s_per_tx; /* cpu_s / committed; NaN when nothing was committed */
  double delivered;    /* mir_delivered_transactions_total after - before; -1 if not exported */
  size_t n_modules, n_threads, n_locks; /* rows in the lists below (at most SCRAPE_TOP_N) */
  scrape_top modules[SCRAPE_TOP_N];     /* mir_module_busy_seconds_total, largest first */
  scrape_top threads[SCRAPE_TOP_N];     /* per-thread CPU time, largest first */
  scrape_top locks[SCRAPE_TOP_N];       /* mir_lock_wait_seconds_total by lock, largest first */
} scrape_delta;

/* What changed from before to after (both borrowed), with committed transactions in between.
 * Only rows that grew are listed. -1 with the reason in err if the process CPU series is missing
 * or a counter went backwards (the replica restarted in between). */
int scrape_delta_compute(const scrape_snapshot *before, const scrape_snapshot *after,
                         uint64_t committed, scrape_delta *out, char *err, size_t errcap);

#ifdef __cplusplus
}
#endif

#endif
