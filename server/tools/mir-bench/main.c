/*
 * mir-bench: open-loop load on a Mir-C cluster through the SDK (libmirclient).
 *
 *   mir-bench --replicas host:port,... [--clients N] [--rate TX_PER_S] [--size BYTES]
 *             [--duration S] [--warmup S] [--drain S] [--json FILE] [--trust one]
 *             [--window N] [--batch-delay-us US] [--submit-replicas K] [--connect-timeout-ms MS]
 *             [--client-prefix NAME] [--record FILE] [--tls-ca FILE | --tls-dir DIR]
 *             [--metrics URL,...]
 *
 * Open loop: each client has a schedule of submit times (rate / clients per second, the clients
 * staggered evenly) and submits on time whatever the cluster does (waking at most once per
 * millisecond, client_main); a submission the SDK refuses
 * because the client's window is full is counted as refused, never retried, so an overloaded
 * cluster shows up as refusals and latency instead of a slower schedule. Latency runs from the
 * scheduled submit time to the moment the SDK learns the commit (f+1 replicas agree), so a
 * generator that falls behind cannot hide queueing (no coordinated omission).
 *
 * Phases: warm-up (scheduled, not measured), the measured duration, then a drain of at most
 * --drain seconds for outstanding transactions; then the clients close, which completes what is
 * left as not committed. A line of progress is printed every second; the summary and the optional
 * JSON report come last. Every phase is bounded, so the run is bounded in time.
 *
 * --record FILE writes, after the clients closed, one line per ticket the SDK took:
 * "<client id> <tx no> committed <sn>", "... rejected" or "... not-committed" (still pending at
 * the end: the SDK had it and it never committed); mir-logcheck compares it with the log.
 * --client-prefix names the clients <prefix>-0, <prefix>-1, ... (default bench-<pid>), so that a
 * checker can tell them apart; a client id must not be used by two runs.
 *
 * --metrics URL,... reads each replica's HTTP endpoint (http_listen; base URLs as `cluster.sh
 * status` prints them) before and after the run and reports per replica the CPU time per
 * committed transaction and the busiest modules, threads and locks (metrics.c, scrape.h).
 *
 * TLS: --tls-ca FILE trusts the replicas' CA; --tls-dir DIR (a cluster folder of cluster.sh or
 * mir-keygen) trusts DIR/ca.pem and gives every client a certificate for its own client id, issued
 * at start with DIR/ca.key (certs.c), for replicas that require client certificates.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "mir/grpc_tune.h"

struct bench_client {
  bench *b;
  uint32_t index;
  mir_client *c;
  pthread_t thread;
  int thread_started;
  double rate, offset;
  double *intended; /* scheduled submit time per ticket */
  uint8_t *outcome; /* per ticket: bench_outcome (written by on_done) */
  uint64_t *sn;     /* per ticket: the committed entry's sn */
  size_t cap;
  atomic_size_t tickets; /* tickets taken */
  uint8_t *payload;
  char id[MIR_CLIENT_ID_MAX + 1];
  /* A full window: the client thread sleeps on `room` until `done` reaches `wake_at` (no waiter:
   * UINT64_MAX). done and wake_at are sequentially consistent, so that of a waiter storing
   * wake_at then reading done, and on_done adding to done then reading wake_at, at least one
   * sees the other's write: no wake-up is lost. */
  pthread_mutex_t mu;
  pthread_cond_t room;
  atomic_uint_fast64_t done;    /* tickets resolved (on_done calls) */
  atomic_uint_fast64_t wake_at; /* wake the client thread when done reaches this */
};

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client whose window is full sleeps until 1/BENCH_REFILL_DIV of its transactions in flight
 * (at most BENCH_REFILL_MAX) are resolved, and at most BENCH_FULL_WAIT_MAX_S: one wake-up per many
 * commits, where looking again every millisecond cost the load generator (mir-bench's own
 * threads) half a core of the two at the peak, CPU the replicas did not get. */
#define BENCH_REFILL_DIV 8
/* The shortest sleep of a client thread between submissions (above: client_main). */
#define BENCH_TICK_S 0.001
#define BENCH_REFILL_MAX 64
#define BENCH_FULL_WAIT_MAX_S 0.05

static void sleep_until(double at) {
  struct timespec ts = {(time_t)at, (long)((at - floor(at)) * 1e9)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static void usage(FILE *f, const char *argv0) {
  fprintf(f,
          "usage: %s --replicas host:port,... [--clients N] [--rate TX_PER_S] [--size BYTES]\n"
          "          [--duration S] [--warmup S] [--drain S] [--json FILE] [--trust one]\n"
          "          [--window N] [--batch-delay-us US] [--submit-replicas K]\n"
          "          [--connect-timeout-ms MS] [--client-prefix NAME] [--record FILE]\n"
          "          [--tls-ca FILE | --tls-dir CLUSTER_DIR] [--metrics URL,...]\n",
          argv0);
}

/* --help: the usage and what the options do. */
static void help(const char *argv0) {
  usage(stdout, argv0);
  printf(
      "\nOpen-loop load through the SDK; prints throughput and submit-to-commit latency.\n"
      "  --replicas A,...        client API addresses of the replicas (required)\n"
      "  --clients N             SDK clients (default 4); --rate is shared among them\n"
      "  --rate TX_PER_S         offered transactions per second (default 1000)\n"
      "  --size BYTES            transaction size (default 256)\n"
      "  --duration S            measured seconds (default 10), after --warmup S (default 1);\n"
      "                          then at most --drain S (default 10) for outstanding commits\n"
      "  --json FILE             the report as JSON (with --metrics: replica_metrics)\n"
      "  --trust one|quorum      commits from one replica or f+1 agreeing (default quorum)\n"
      "  --window N, --batch-delay-us US, --submit-replicas K, --connect-timeout-ms MS\n"
      "                          SDK options (docs/SDK.md)\n"
      "  --client-prefix NAME    client ids NAME-0, NAME-1, ... (default bench-<pid>)\n"
      "  --record FILE           every ticket's outcome, for mir-logcheck\n"
      "  --tls-ca FILE           TLS to the client API, trusting this CA\n"
      "  --tls-dir DIR           TLS with client certificates issued by DIR/ca.key\n"
      "  --metrics URL,...       replicas' HTTP endpoints (http_listen), such as\n"
      "                          http://127.0.0.1:9100 (a trailing /metrics is accepted):\n"
      "                          /metrics and /debug/stats are read before and after the run,\n"
      "                          and per replica the report adds CPU seconds per committed\n"
      "                          transaction (the process's CPU time over the run divided by\n"
      "                          the transactions mir-bench saw committed), the 3 busiest\n"
      "                          modules (busy CPU time), the 3 busiest threads (CPU time) and\n"
      "                          the 3 most contended locks (time waited). A replica that\n"
      "                          cannot be read is reported; the run goes on.\n");
}

/* Parses a number in [lo, hi] from s; returns 0 or -1. */
static int parse_num(const char *name, const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "mir-bench: %s: expected a number in [%g, %g], got \"%s\"\n", name, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

/* --metrics: the URLs are checked by bench_metrics_init. */
static int parse_metrics(bench_opts *o, char *list) {
  for (char *t = strtok(list, ","); t != NULL; t = strtok(NULL, ",")) {
    if (o->n_metrics == BENCH_METRICS_MAX) {
      fprintf(stderr, "mir-bench: --metrics: at most %d URLs\n", BENCH_METRICS_MAX);
      return -1;
    }
    o->metrics[o->n_metrics++] = t;
  }
  return o->n_metrics > 0 ? 0 : -1;
}

static int parse_replicas(bench_opts *o, char *list) {
  for (char *t = strtok(list, ","); t != NULL; t = strtok(NULL, ",")) {
    if (o->n_replicas == MIR_CLIENT_REPLICAS_MAX) {
      fprintf(stderr, "mir-bench: --replicas: at most %d\n", MIR_CLIENT_REPLICAS_MAX);
      return -1;
    }
    o->replicas[o->n_replicas++] = t;
  }
  return o->n_replicas > 0 ? 0 : -1;
}

/* One option with its value; returns 0, or -1 for a bad value or an unknown option. */
static int parse_option(bench_opts *o, const char *name, char *val) {
  double v = 0;
  int rc = 0;
  if (strcmp(name, "--replicas") == 0) return parse_replicas(o, val);
  if (strcmp(name, "--metrics") == 0) return parse_metrics(o, val);
  if (strcmp(name, "--json") == 0) {
    o->json_path = val;
  } else if (strcmp(name, "--record") == 0) {
    o->record_path = val;
  } else if (strcmp(name, "--tls-ca") == 0) {
    o->tls_ca = val;
  } else if (strcmp(name, "--tls-dir") == 0) {
    o->tls_dir = val;
  } else if (strcmp(name, "--client-prefix") == 0) {
    if (val[0] == '\0' || strlen(val) > MIR_CLIENT_ID_MAX - 8 || strchr(val, ' ') != NULL) {
      fprintf(stderr, "mir-bench: --client-prefix: 1..%d bytes without spaces\n",
              MIR_CLIENT_ID_MAX - 8);
      return -1;
    }
    o->client_prefix = val;
  } else if (strcmp(name, "--trust") == 0) {
    o->trust_one = strcmp(val, "one") == 0;
    if (!o->trust_one && strcmp(val, "quorum") != 0) return -1;
  } else if (strcmp(name, "--clients") == 0 && (rc = parse_num(name, val, 1, 256, &v)) == 0) {
    o->clients = (uint32_t)v;
  } else if (strcmp(name, "--rate") == 0 && (rc = parse_num(name, val, 0.001, 1e7, &v)) == 0) {
    o->rate = v;
  } else if (strcmp(name, "--size") == 0 && (rc = parse_num(name, val, 0, 1 << 20, &v)) == 0) {
    o->size = (uint32_t)v;
  } else if (strcmp(name, "--duration") == 0 && (rc = parse_num(name, val, 0.1, 86400, &v)) == 0) {
    o->duration_s = v;
  } else if (strcmp(name, "--warmup") == 0 && (rc = parse_num(name, val, 0, 3600, &v)) == 0) {
    o->warmup_s = v;
  } else if (strcmp(name, "--drain") == 0 && (rc = parse_num(name, val, 0, 3600, &v)) == 0) {
    o->drain_s = v;
  } else if (strcmp(name, "--window") == 0 && (rc = parse_num(name, val, 1, 65536, &v)) == 0) {
    o->window = (uint32_t)v;
  } else if (strcmp(name, "--batch-delay-us") == 0 &&
             (rc = parse_num(name, val, 1, 1000000, &v)) == 0) {
    o->batch_delay_us = (uint32_t)v;
  } else if (strcmp(name, "--submit-replicas") == 0 &&
             (rc = parse_num(name, val, 1, MIR_CLIENT_REPLICAS_MAX, &v)) == 0) {
    o->submit_replicas = (uint32_t)v;
  } else if (strcmp(name, "--connect-timeout-ms") == 0 &&
             (rc = parse_num(name, val, 1, 3600000, &v)) == 0) {
    o->connect_timeout_ms = (uint32_t)v;
  } else if (rc == 0) {
    fprintf(stderr, "mir-bench: unknown option %s\n", name);
    return -1;
  }
  return rc;
}

static int parse_args(bench_opts *o, int argc, char **argv) {
  *o = (bench_opts){
      .clients = 4, .rate = 1000, .size = 256, .duration_s = 10, .warmup_s = 1, .drain_s = 10};
  for (int i = 1; i < argc; i += 2) { /* every option takes a value */
    if (i + 1 >= argc || parse_option(o, argv[i], argv[i + 1]) != 0) return -1;
  }
  if (o->n_replicas == 0) {
    fprintf(stderr, "mir-bench: --replicas is required\n");
    return -1;
  }
  if (o->tls_ca != NULL && o->tls_dir != NULL) {
    fprintf(stderr, "mir-bench: --tls-ca or --tls-dir, not both\n");
    return -1;
  }
  return 0;
}

/* ---- the clients ---- */

/* Records the outcome of ticket t (its slot is the client's alone: tickets count from 0). */
static void record_outcome(bench_client *bc, mir_client_ticket t, bench_outcome o, uint64_t sn) {
  if (t >= bc->cap) return;
  bc->outcome[t] = (uint8_t)o;
  bc->sn[t] = sn;
}

/* Counts a resolved ticket of bc and wakes its client thread if it waits for this many. */
static void client_resolved(bench_client *bc) {
  uint64_t done = atomic_fetch_add(&bc->done, 1) + 1;
  if (done >= atomic_load(&bc->wake_at)) {
    pthread_mutex_lock(&bc->mu);
    pthread_cond_signal(&bc->room);
    pthread_mutex_unlock(&bc->mu);
  }
}

/* The client thread of bc, its window full with `in_flight` tickets: sleeps until a share of them
 * is resolved, or until `until` (monotonic seconds). */
static void client_wait_room(bench_client *bc, uint64_t in_flight, double until) {
  uint64_t want = in_flight / BENCH_REFILL_DIV;
  if (want > BENCH_REFILL_MAX) want = BENCH_REFILL_MAX;
  if (want < 1) want = 1;
  double cap = bench_now() + BENCH_FULL_WAIT_MAX_S;
  if (until > cap) until = cap;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* the condition variable's clock */
  double left = until - bench_now();
  if (left < 0) left = 0;
  double abs_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + left;
  ts.tv_sec = (time_t)abs_s;
  ts.tv_nsec = (long)((abs_s - floor(abs_s)) * 1e9);
  pthread_mutex_lock(&bc->mu);
  uint64_t target = atomic_load(&bc->done) + want;
  atomic_store(&bc->wake_at, target);
  while (atomic_load(&bc->done) < target) {
    if (pthread_cond_timedwait(&bc->room, &bc->mu, &ts) == ETIMEDOUT) break;
  }
  atomic_store(&bc->wake_at, UINT64_MAX);
  pthread_mutex_unlock(&bc->mu);
}

static void on_done(mir_client *c, const mir_client_result *r, void *ud) {
  bench_client *bc = ud;
  bench *b = bc->b;
  (void)c;
  client_resolved(bc);
  if (r->status == MIR_CLIENT_ESTOPPED) {
    atomic_fetch_add(&b->stopped, 1);
    record_outcome(bc, r->ticket, BENCH_STOPPED, 0);
    return;
  }
  if (r->status != MIR_CLIENT_OK) {
    atomic_fetch_add(&b->rejected, 1);
    record_outcome(bc, r->ticket, BENCH_REJECTED, 0);
    return;
  }
  record_outcome(bc, r->ticket, BENCH_COMMITTED, r->sn);
  double now = bench_now();
  atomic_fetch_add(&b->committed, 1);
  if (now >= b->measure_from && now < b->measure_to) atomic_fetch_add(&b->committed_in_window, 1);
  double at = r->ticket < bc->cap ? bc->intended[r->ticket] : now;
  if (at >= b->measure_from && at < b->measure_to) {
    atomic_fetch_add(&b->measured_committed, 1);
    double us = (now - at) * 1e6;
    hist_record(&b->lat, us > 0 ? (uint64_t)us : 0);
  }
}

/* The schedule of one client: submission k at t0 + offset + k / rate, until the measured window
 * ends. */
static void *client_main(void *arg) {
  bench_client *bc = arg;
  bench *b = bc->b;
  size_t tickets = 0;
  double last_wake = 0;
  for (uint64_t k = 0;; k++) {
    double at = b->t0 + bc->offset + (double)k / bc->rate;
    if (at >= b->measure_to || tickets >= bc->cap) break;
    /* Instants that passed are submitted at once; otherwise the thread sleeps, but wakes at
     * most once per BENCH_TICK_S and then submits every instant that passed meanwhile. A sleep
     * per transaction (a timer and a wake-up each) cost the load generator more CPU than the
     * SDK itself at 16,000 tx/s. Latency is counted from the instant in the schedule, so a
     * submission made late by the tick is measured as late. */
    if (at > bench_now()) {
      double wake = last_wake + BENCH_TICK_S;
      sleep_until(at > wake ? at : wake);
      last_wake = bench_now();
    }
    /* Stamp the payload so that every transaction differs. */
    if (bc->b->o.size >= 8) memcpy(bc->payload, &k, 8);
    bc->intended[tickets] = at; /* read by on_done after the SDK lock orders the two */
    mir_client_ticket t = 0;
    int err = mir_client_submit(bc->c, bc->payload, b->o.size, on_done, bc, &t);
    if (err == MIR_CLIENT_OK) {
      tickets++;
      atomic_store(&bc->tickets, tickets);
      atomic_fetch_add(&b->submitted, 1);
    } else if (err == MIR_CLIENT_EFULL) {
      atomic_fetch_add(&b->refused, 1);
      /* The window is full, and only commits free it. Wait for room, and count the instants
       * of the schedule that passed meanwhile as refused too, instead of calling submit (the
       * SDK's lock, a timed sleep) at each: at ten times the peak that took 1.4 of the
       * machine's 2 cores, more than the four replicas together got. */
      client_wait_room(bc, tickets - atomic_load(&bc->done), b->measure_to);
      double until = bench_now();
      double last = b->measure_to < until ? b->measure_to : until;
      double passed = ceil((last - b->t0 - bc->offset) * bc->rate);
      if (passed > (double)(k + 1)) {
        uint64_t skip = (uint64_t)passed - (k + 1);
        atomic_fetch_add(&b->refused, skip);
        k += skip;
      }
    } else {
      fprintf(stderr, "mir-bench: client %u: submit: %s\n", bc->index, mir_client_errdetail());
      break;
    }
  }
  return NULL;
}

static int open_client(bench *b, bench_client *bc, uint32_t i) {
  if (b->o.client_prefix != NULL) {
    snprintf(bc->id, sizeof(bc->id), "%s-%u", b->o.client_prefix, i);
  } else {
    snprintf(bc->id, sizeof(bc->id), "bench-%d-%u", (int)getpid(), i);
  }
  mir_client_options opts;
  mir_client_options_init(&opts);
  opts.replicas = b->o.replicas;
  opts.n_replicas = b->o.n_replicas;
  opts.client_id = bc->id;
  opts.trust = b->o.trust_one ? MIR_CLIENT_TRUST_ONE : MIR_CLIENT_TRUST_QUORUM;
  opts.window = b->o.window;
  opts.batch_delay_us = b->o.batch_delay_us;
  opts.submit_replicas = b->o.submit_replicas;
  opts.connect_timeout_ms = b->o.connect_timeout_ms;
  opts.max_tx_bytes = b->o.size > 65536 ? b->o.size : 0;
  bc->b = b;
  bc->index = i;
  pthread_mutex_init(&bc->mu, NULL);
  pthread_cond_init(&bc->room, NULL);
  atomic_init(&bc->done, 0);
  atomic_init(&bc->wake_at, UINT64_MAX);
  bc->rate = b->o.rate / b->o.clients;
  bc->offset = (double)i / b->o.rate;
  bc->cap = (size_t)(bc->rate * (b->o.warmup_s + b->o.duration_s)) + 2;
  bc->intended = calloc(bc->cap, sizeof(double));
  bc->outcome = calloc(bc->cap, 1);
  bc->sn = calloc(bc->cap, sizeof(uint64_t));
  bc->payload = calloc(1, b->o.size + 8);
  if (bc->intended == NULL || bc->outcome == NULL || bc->sn == NULL || bc->payload == NULL) {
    fprintf(stderr, "mir-bench: out of memory\n");
    return -1;
  }
  memset(bc->payload, 'b', b->o.size);
  char cert[PATH_MAX] = "", key[PATH_MAX] = "";
  if (b->o.tls_dir != NULL) {
    if (bench_certs_issue(&b->certs, bc->id, cert, key, sizeof(cert)) != 0) return -1;
    opts.tls_ca_file = b->certs.ca_file;
    opts.tls_cert_file = cert;
    opts.tls_key_file = key;
  } else {
    opts.tls_ca_file = b->o.tls_ca;
  }
  int err = mir_client_open(&opts, &bc->c);
  if (cert[0] != '\0') bench_certs_forget(cert, key); /* read by open */
  if (err != MIR_CLIENT_OK) {
    fprintf(stderr, "mir-bench: cannot open client %u (%s): %s\n", i, mir_client_strerror(err),
            mir_client_errdetail());
    return -1;
  }
  return 0;
}

/* Writes the record file: every ticket of every client with its outcome. Returns 0, or -1 with
 * errno. Runs after every client closed, so no callback writes the outcomes any more. */
static int write_record(const bench *b, const char *path) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -1;
  static const char *const names[] = {"not-committed", "committed", "rejected", "not-committed"};
  for (uint32_t i = 0; i < b->o.clients; i++) {
    const bench_client *bc = &b->cl[i];
    size_t n = atomic_load(&bc->tickets);
    for (size_t t = 0; t < n && t < bc->cap; t++) {
      if (bc->outcome[t] == BENCH_COMMITTED) {
        fprintf(f, "%s %zu committed %" PRIu64 "\n", bc->id, t, bc->sn[t]);
      } else {
        fprintf(f, "%s %zu %s\n", bc->id, t, names[bc->outcome[t] & 3]);
      }
    }
  }
  int rc = ferror(f) ? -1 : 0;
  if (fclose(f) != 0) rc = -1;
  return rc;
}

/* ---- progress ---- */

static void record_second(bench *b, double t, uint64_t committed_before, double dt) {
  if (b->n_seconds == b->cap_seconds) {
    size_t cap = b->cap_seconds ? 2 * b->cap_seconds : 64;
    bench_second *p = realloc(b->seconds, cap * sizeof(*p));
    if (p == NULL) return;
    b->seconds = p;
    b->cap_seconds = cap;
  }
  bench_second *s = &b->seconds[b->n_seconds++];
  s->t = t;
  s->submitted = atomic_load(&b->submitted);
  s->committed = atomic_load(&b->committed);
  s->tx_s = (double)(s->committed - committed_before) / dt;
  s->p50_ms = hist_quantile_us(&b->lat, 0.5) / 1e3;
  printf("[%5.0fs] submitted %8" PRIu64 "  committed %8" PRIu64 "  %8.0f tx/s  p50 ", t,
         s->submitted, s->committed, s->tx_s);
  if (atomic_load(&b->lat.n) > 0) {
    printf("%.1f ms\n", s->p50_ms);
  } else {
    printf("-\n");
  }
  fflush(stdout);
}

/* Prints a line every second until the schedule ends and then until every submitted transaction
 * has an outcome or the drain time is up. */
static void progress(bench *b) {
  double next = b->t0 + 1, drain_end = b->measure_to + b->o.drain_s;
  uint64_t committed_before = 0;
  double last = b->t0;
  for (;;) {
    double now = bench_now();
    bool scheduling = now < b->measure_to;
    uint64_t done = atomic_load(&b->committed) + atomic_load(&b->rejected);
    if (!scheduling && (done >= atomic_load(&b->submitted) || now >= drain_end)) break;
    double wake = next;
    if (!scheduling && drain_end < wake) wake = drain_end;
    sleep_until(wake < b->measure_to && next > b->measure_to ? b->measure_to : wake);
    now = bench_now();
    if (now >= next) {
      record_second(b, next - b->t0, committed_before, now - last);
      committed_before = b->n_seconds > 0 ? b->seconds[b->n_seconds - 1].committed : 0;
      last = now;
      next += 1;
    }
  }
}

int main(int argc, char **argv) {
  (void)mir_grpc_tune_process(); /* before gRPC's first call and threads */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help(argv[0]);
      return 0;
    }
  }
  bench *b = calloc(1, sizeof(*b));
  if (b == NULL || parse_args(&b->o, argc, argv) != 0 || bench_metrics_init(b) != 0) {
    usage(stderr, argv[0]);
    if (b != NULL) bench_metrics_fini(b);
    free(b);
    return 2;
  }
  b->cl = calloc(b->o.clients, sizeof(*b->cl));
  int rc = b->cl != NULL ? 0 : 1;
  if (rc == 0 && b->o.tls_dir != NULL && bench_certs_init(&b->certs, b->o.tls_dir) != 0) rc = 1;
  for (uint32_t i = 0; rc == 0 && i < b->o.clients; i++) {
    rc = open_client(b, &b->cl[i], i) == 0 ? 0 : 1;
  }
  if (rc == 0) {
    printf(
        "mir-bench: %zu replicas, %u clients, %.0f tx/s offered, %u-byte transactions, "
        "%.1f s measured after %.1f s warm-up\n",
        b->o.n_replicas, b->o.clients, b->o.rate, b->o.size, b->o.duration_s, b->o.warmup_s);
    fflush(stdout);
    bench_metrics_before(b);
    b->t0 = bench_now() + 0.05;
    b->measure_from = b->t0 + b->o.warmup_s;
    b->measure_to = b->measure_from + b->o.duration_s;
    for (uint32_t i = 0; i < b->o.clients; i++) {
      b->cl[i].thread_started = pthread_create(&b->cl[i].thread, NULL, client_main, &b->cl[i]) == 0;
    }
    progress(b);
  }
  for (uint32_t i = 0; b->cl != NULL && i < b->o.clients; i++) {
    bench_client *bc = &b->cl[i];
    if (bc->thread_started) pthread_join(bc->thread, NULL);
    if (bc->c != NULL) {
      mir_client_stats st;
      mir_client_stats_get(bc->c, &st);
      b->sdk.requests_sent += st.requests_sent;
      b->sdk.reconnects += st.reconnects;
      b->sdk.failovers += st.failovers;
      b->sdk.resent += st.resent;
      b->sdk.refused += st.refused;
      b->sdk.backoffs += st.backoffs;
      b->sdk.bad_messages += st.bad_messages;
      b->sdk.conflicting_votes += st.conflicting_votes;
      b->sdk.lock_contended += st.lock_contended;
      b->sdk.lock_wait_ns += st.lock_wait_ns;
      mir_client_close(bc->c); /* completes what is left with ESTOPPED */
    }
  }
  if (rc == 0) {
    bench_metrics_after(b);
    bench_print_summary(b, b->o.duration_s);
    bench_print_metrics(b);
    if (b->o.json_path != NULL && bench_write_json(b, b->o.json_path) != 0) {
      fprintf(stderr, "mir-bench: %s: %s\n", b->o.json_path, strerror(errno));
      rc = 1;
    }
    if (b->o.record_path != NULL && write_record(b, b->o.record_path) != 0) {
      fprintf(stderr, "mir-bench: %s: %s\n", b->o.record_path, strerror(errno));
      rc = 1;
    }
  }
  for (uint32_t i = 0; b->cl != NULL && i < b->o.clients; i++) {
    free(b->cl[i].intended);
    pthread_cond_destroy(&b->cl[i].room);
    pthread_mutex_destroy(&b->cl[i].mu);
    free(b->cl[i].outcome);
    free(b->cl[i].sn);
    free(b->cl[i].payload);
  }
  free(b->cl);
  free(b->seconds);
  bench_certs_fini(&b->certs);
  bench_metrics_fini(b);
  free(b);
  return rc;
}
