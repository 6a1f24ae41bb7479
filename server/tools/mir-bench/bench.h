/*
 * mir-bench internals: the latency histogram, the run's shared state and the report.
 */
#ifndef MIR_BENCH_H
#define MIR_BENCH_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/client.h"
#include "scrape.h"

/* ---- hist.c: a log-linear latency histogram in microseconds, lock-free to record ---- */

#define HIST_BUCKETS 2400 /* 1% wide buckets from 1 us to beyond 10^10 us */

typedef struct hist {
  atomic_ulong counts[HIST_BUCKETS];
  atomic_ulong n;
  atomic_ullong sum_us;
  atomic_ullong max_us;
} hist;

void hist_record(hist *h, uint64_t us);
/* The value (us, bucket upper bound; max exactly) below which a fraction q of samples lie. */
double hist_quantile_us(const hist *h, double q);

/* ---- certs.c: client certificates issued with a test cluster's CA (--tls-dir) ---- */

typedef struct bench_certs {
  char ca_file[PATH_MAX]; /* DIR/ca.pem, which the clients trust */
  char *ca_pem, *ca_key;  /* owned */
  char tmp[PATH_MAX];     /* private folder of the issued files ("" if none) */
} bench_certs;

/* Reads the CA of the cluster folder dir (borrowed) and makes the private folder. 0, or -1 after
 * saying why on stderr (nothing left to free). */
int bench_certs_init(bench_certs *bc, const char *dir);
/* Issues a certificate for client_id (borrowed) and writes it and its key into the private
 * folder; their paths go to cert_path and key_path (cap bytes each). 0, or -1 after saying why. */
int bench_certs_issue(bench_certs *bc, const char *client_id, char *cert_path, char *key_path,
                      size_t cap);
/* Deletes an issued pair once the client has read it (borrowed paths). */
void bench_certs_forget(const char *cert_path, const char *key_path);
/* Removes the private folder and frees the CA. */
void bench_certs_fini(bench_certs *bc);

/* ---- main.c: the run ---- */

#define BENCH_METRICS_MAX 64 /* --metrics URLs */

/* One replica read through --metrics: before the run, after it, and what changed. */
typedef struct bench_replica {
  const char *text; /* the URL as given (borrowed from argv) */
  scrape_url url;
  scrape_snapshot before; /* valid while have_before */
  bool have_before;
  bool ok; /* d holds the differences; else err says why not */
  scrape_delta d;
  char err[SCRAPE_ERR_MAX];
} bench_replica;

typedef struct bench_opts {
  const char *replicas[MIR_CLIENT_REPLICAS_MAX];
  size_t n_replicas;
  uint32_t clients;
  double rate; /* offered transactions per second, all clients together */
  uint32_t size;
  double duration_s, warmup_s, drain_s;
  const char *json_path;
  const char *record_path;   /* every ticket's outcome, for mir-logcheck (NULL: none) */
  const char *client_prefix; /* client ids <prefix>-<i> (NULL: bench-<pid>) */
  int trust_one;
  uint32_t window, batch_delay_us, submit_replicas;
  uint32_t connect_timeout_ms;
  const char *tls_ca;  /* TLS trusting this CA (NULL: plaintext, unless tls_dir) */
  const char *tls_dir; /* a cluster folder: TLS with client certificates issued by its CA */
  const char *metrics[BENCH_METRICS_MAX]; /* --metrics: replicas' HTTP base URLs (borrowed) */
  size_t n_metrics;
} bench_opts;

/* One per second of the run. */
typedef struct bench_second {
  double t;
  uint64_t submitted, committed;
  double tx_s, p50_ms;
} bench_second;

typedef struct bench_client bench_client;

typedef struct bench {
  bench_opts o;
  bench_client *cl;
  double t0;                       /* start of the schedule (monotonic seconds) */
  double measure_from, measure_to; /* the measured window of the schedule */
  atomic_ulong submitted, committed, rejected, refused, stopped;
  atomic_ulong committed_in_window; /* commits that happened inside the window */
  atomic_ulong measured_committed;  /* committed transactions scheduled inside the window */
  hist lat;                         /* their latencies */
  bench_second *seconds;
  size_t n_seconds, cap_seconds;
  mir_client_stats sdk; /* summed over clients at the end */
  bench_certs certs;    /* with --tls-dir */
  bench_replica *rm;    /* with --metrics: o.n_metrics of them (owned) */
} bench;

double bench_now(void);

/* What became of one ticket (the record file). */
typedef enum bench_outcome {
  BENCH_PENDING = 0, /* no outcome yet */
  BENCH_COMMITTED,
  BENCH_REJECTED, /* rejected, or its tx number committed with other data */
  BENCH_STOPPED   /* still pending when the client closed: not committed */
} bench_outcome;

/* ---- metrics.c: --metrics ---- */

/* Parses every --metrics URL into b->rm (allocated here). 0, or -1 after saying why on stderr. */
int bench_metrics_init(bench *b);
/* Reads every replica before the run; one that cannot be read is remembered as failed. */
void bench_metrics_before(bench *b);
/* Reads them again after the run and computes the differences with the commits counted. */
void bench_metrics_after(bench *b);
void bench_metrics_fini(bench *b);

/* ---- report.c ---- */
void bench_print_summary(const bench *b, double elapsed_s);
/* The per-replica lines of --metrics (nothing without it). */
void bench_print_metrics(const bench *b);
/* Writes the JSON report to path. Returns 0, or -1 with errno. */
int bench_write_json(const bench *b, const char *path);

#endif
