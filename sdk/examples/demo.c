/*
 * mir-demo: a few seconds of a Mir-C cluster at work. One client submits transactions at a steady
 * rate while a subscription prints the ordered log as f+1 replicas agree on it; at the end the
 * program prints how many transactions were committed, the throughput, and the latency from
 * submit to commit.
 *
 *   mir-demo --replicas host:port,... [--seconds 5] [--rate 200] [--quiet] [--client-id ID]
 *            [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
 *
 * The client id defaults to demo-<pid>; a replica API that requires client certificates needs
 * --client-id to be the id the certificate names (mir-keygen --client ID). --tls-ca alone talks
 * TLS to the replicas; with --tls-cert and --tls-key it presents the client certificate too.
 *
 * Latencies are recorded by the done callback (on the SDK thread) into a preallocated array, so
 * the callback never blocks; main sorts them at the end.
 */
#define _POSIX_C_SOURCE 200809L /* getpid, nanosleep */

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mir/client.h"

#define MAX_REPLICAS 64
#define MAX_SAMPLES 1000000

typedef struct demo {
  double *lat_ms; /* one slot per ticket (ticket = index, first_tx_no is 0) */
  double *sent_s; /* submit time per ticket */
  size_t cap;
  atomic_ulong committed, failed, entries, printed_txs;
  int quiet;
} demo;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_done(mir_client *c, const mir_client_result *r, void *ud) {
  demo *d = ud;
  (void)c;
  if (r->status != MIR_CLIENT_OK) {
    atomic_fetch_add(&d->failed, 1);
    return;
  }
  if (r->ticket < d->cap) d->lat_ms[r->ticket] = (now_s() - d->sent_s[r->ticket]) * 1e3;
  atomic_fetch_add(&d->committed, 1);
}

static void on_entry(mir_client_sub *sub, int status, const mir_client_entry *e, void *ud) {
  demo *d = ud;
  (void)sub;
  if (e == NULL) {
    if (status != MIR_CLIENT_ESTOPPED)
      printf("subscription ended: %s\n", mir_client_strerror(status));
    return;
  }
  atomic_fetch_add(&d->entries, 1);
  atomic_fetch_add(&d->printed_txs, e->n_txs);
  if (d->quiet || e->n_txs == 0) return;
  printf("sn %-6" PRIu64 " %3zu txs  first: %s/%" PRIu64 " \"%.*s\"\n", e->sn, e->n_txs,
         e->txs[0].client_id, e->txs[0].tx_no, (int)(e->txs[0].len > 40 ? 40 : e->txs[0].len),
         (const char *)e->txs[0].data);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : (x > y ? 1 : 0);
}

static void report(demo *d, size_t submitted, double seconds) {
  size_t n = 0;
  for (size_t i = 0; i < submitted && i < d->cap; i++) {
    if (d->lat_ms[i] >= 0) d->lat_ms[n++] = d->lat_ms[i];
  }
  qsort(d->lat_ms, n, sizeof(double), cmp_double);
  printf("\nsubmitted %zu, committed %lu, failed %lu in %.1f s: %.0f tx/s; %lu entries seen\n",
         submitted, (unsigned long)atomic_load(&d->committed),
         (unsigned long)atomic_load(&d->failed), seconds,
         (double)atomic_load(&d->committed) / seconds, (unsigned long)atomic_load(&d->entries));
  if (n > 0) {
    printf("latency submit->commit: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           d->lat_ms[n / 2], d->lat_ms[(size_t)(n * 0.9)], d->lat_ms[(size_t)(n * 0.99)],
           d->lat_ms[n - 1]);
  }
}

/* Submits at `rate` per second for `seconds`, then waits up to 10 s for outcomes. */
static size_t run(mir_client *c, demo *d, double rate, double seconds) {
  double t0 = now_s();
  size_t i = 0;
  for (; i < d->cap; i++) {
    double at = t0 + (double)i / rate;
    if (at - t0 >= seconds) break;
    double wait = at - now_s();
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
    char data[64];
    int len = snprintf(data, sizeof(data), "demo transaction %zu", i);
    d->sent_s[i] = now_s();
    if (mir_client_submit(c, data, (size_t)len, on_done, d, NULL) != MIR_CLIENT_OK) {
      fprintf(stderr, "submit: %s\n", mir_client_errdetail());
      break;
    }
  }
  for (int k = 0; k < 1000 && atomic_load(&d->committed) + atomic_load(&d->failed) < i; k++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return i;
}

/* The command line: what main needs besides the demo's state. */
typedef struct demo_args {
  char *list;
  double seconds, rate;
  const char *client_id, *tls_ca, *tls_cert, *tls_key;
} demo_args;

/* Fills a from argv (borrowed, like every string it keeps); false for a usage error. */
static bool demo_parse(int argc, char **argv, demo_args *a, demo *d) {
  *a = (demo_args){.seconds = 5, .rate = 200};
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--quiet") == 0) {
      d->quiet = 1;
      continue;
    }
    if (v == NULL) return false;
    if (strcmp(argv[i], "--replicas") == 0)
      a->list = argv[i + 1];
    else if (strcmp(argv[i], "--seconds") == 0)
      a->seconds = atof(v);
    else if (strcmp(argv[i], "--rate") == 0)
      a->rate = atof(v);
    else if (strcmp(argv[i], "--client-id") == 0)
      a->client_id = v;
    else if (strcmp(argv[i], "--tls-ca") == 0)
      a->tls_ca = v;
    else if (strcmp(argv[i], "--tls-cert") == 0)
      a->tls_cert = v;
    else if (strcmp(argv[i], "--tls-key") == 0)
      a->tls_key = v;
    else
      return false;
    i++;
  }
  /* A client certificate goes with its key, and both with the CA that TLS needs. */
  bool cert_ok =
      (a->tls_cert == NULL) == (a->tls_key == NULL) && (a->tls_cert == NULL || a->tls_ca != NULL);
  return a->list != NULL && a->seconds > 0 && a->rate > 0 && cert_ok;
}

int main(int argc, char **argv) {
  demo d = {0};
  demo_args a;
  if (!demo_parse(argc, argv, &a, &d)) {
    fprintf(stderr,
            "usage: %s --replicas host:port,... [--seconds S] [--rate TX_PER_S] [--quiet]\n"
            "          [--client-id ID] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n",
            argv[0]);
    return 2;
  }
  char *list = a.list;
  double seconds = a.seconds, rate = a.rate;
  const char *replicas[MAX_REPLICAS];
  size_t n = 0;
  for (char *t = strtok(list, ","); t != NULL && n < MAX_REPLICAS; t = strtok(NULL, ",")) {
    replicas[n++] = t;
  }
  char client_id[65];
  snprintf(client_id, sizeof(client_id), "%s", a.client_id != NULL ? a.client_id : "");
  if (a.client_id == NULL) snprintf(client_id, sizeof(client_id), "demo-%d", (int)getpid());
  mir_client_options opts;
  mir_client_options_init(&opts);
  opts.replicas = replicas;
  opts.n_replicas = n;
  opts.client_id = client_id;
  opts.tls_ca_file = a.tls_ca;
  opts.tls_cert_file = a.tls_cert;
  opts.tls_key_file = a.tls_key;
  mir_client *c = NULL;
  int err = mir_client_open(&opts, &c);
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "mir-demo: %s: %s\n", mir_client_strerror(err), mir_client_errdetail());
    return 1;
  }
  d.cap = (size_t)(rate * seconds) + 1;
  if (d.cap > MAX_SAMPLES) d.cap = MAX_SAMPLES;
  d.lat_ms = malloc(d.cap * sizeof(double));
  d.sent_s = calloc(d.cap, sizeof(double));
  for (size_t i = 0; d.lat_ms != NULL && i < d.cap; i++) d.lat_ms[i] = -1;
  mir_client_sub *sub = NULL;
  if (d.lat_ms == NULL || d.sent_s == NULL ||
      mir_client_subscribe(c, MIR_CLIENT_FROM_NOW, on_entry, &d, &sub) != MIR_CLIENT_OK) {
    fprintf(stderr, "mir-demo: %s\n", mir_client_errdetail());
    mir_client_close(c);
    return 1;
  }
  printf("mir-demo: client %s, %zu replicas, %.0f tx/s for %.1f s\n", client_id, n, rate, seconds);
  double t0 = now_s();
  size_t submitted = run(c, &d, rate, seconds);
  double elapsed = now_s() - t0;
  mir_client_unsubscribe(sub);
  mir_client_close(c); /* outcomes still missing complete now, as failures */
  report(&d, submitted, elapsed);
  int ok = atomic_load(&d.committed) == submitted;
  free(d.lat_ms);
  free(d.sent_s);
  return ok ? 0 : 1;
}
