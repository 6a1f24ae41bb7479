/*
 * mir-bench-crypto: operations per second of the crypto seam, single-threaded through the
 * library and through the crypto module's worker pool inside a running node.
 *
 * Library rows call mir_sign / mir_verify / mir_sha256 in a loop for a fixed time on the main
 * thread. Pool rows start a node with the active crypto module and a passive driver module that
 * keeps a window of requests in flight (a new request for every result), so they measure the
 * steady-state throughput of the whole path: dispatcher, queue, workers, inbox and back. Every
 * message is 256 bytes; verified signatures are valid, so every verification does full work.
 *
 * The same source is built once per crypto backend (mir-bench-crypto with BoringSSL,
 * mir-bench-crypto-ossl with OpenSSL 3); the first line of the output names the backend.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
#include "mir/node.h"

#ifndef MIR_BENCH_BACKEND
#define MIR_BENCH_BACKEND "unknown"
#endif

#define BENCH_MSG_BYTES 256
#define BENCH_MSGS 64 /* distinct pre-signed messages, reused in turn */

typedef struct bench_opts {
  double seconds;  /* per library row */
  size_t requests; /* per pool row */
  size_t window;   /* requests in flight in pool rows */
  size_t workers;  /* pool size (0: one per core) */
  size_t many;     /* items per VerifyManyRequest */
} bench_opts;

typedef struct bench_data {
  mir_keyset *keys; /* own id "0", knows "0" */
  uint8_t msgs[BENCH_MSGS][BENCH_MSG_BYTES];
  uint8_t sigs[BENCH_MSGS][MIR_SIGNATURE_LEN];
} bench_data;

/* Throughput by the wall clock, and CPU time per operation: the calling thread's for library
 * rows, the whole process's (dispatcher, workers, queue) for pool rows. CPU time per operation
 * stays meaningful when other processes share the machine; the wall-clock rate does not. */
typedef struct bench_result {
  double ops_per_s;
  double cpu_us_per_op;
} bench_result;

static uint64_t bench_cpu_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bench_result bench_rates(uint64_t ops, uint64_t wall_ns, uint64_t cpu_ns) {
  bench_result r = {(double)ops / ((double)wall_ns / 1e9), (double)cpu_ns / 1e3 / (double)ops};
  return r;
}

static void bench_row(const char *op, const char *scheme, const char *how, size_t threads,
                      bench_result r) {
  printf("| %-14s | %-10s | %-22s | %7zu | %12.0f | %10.2f | %12.0f |\n", op, scheme, how, threads,
         r.ops_per_s, r.cpu_us_per_op, 1e6 / r.cpu_us_per_op);
  fflush(stdout);
}

/* ---- library, one thread ---- */

static void bench_data_init(bench_data *d, mir_sig_scheme scheme) {
  const char *ids[] = {"0"};
  mir_err err = mir_keyset_new_pseudo(scheme, 1, ids, 1, "0", &d->keys);
  if (err != MIR_OK) abort();
  for (size_t i = 0; i < BENCH_MSGS; i++) {
    for (size_t b = 0; b < BENCH_MSG_BYTES; b++) d->msgs[i][b] = (uint8_t)(i * 31 + b);
    ProtobufCBinaryData part = {BENCH_MSG_BYTES, d->msgs[i]};
    size_t len = 0;
    if (mir_keyset_sign(d->keys, &part, 1, d->sigs[i], &len) != MIR_OK) abort();
  }
}

typedef enum bench_op { OP_SIGN, OP_VERIFY, OP_SHA256 } bench_op;

/* Runs op in a loop for `seconds` on the calling thread. */
static bench_result bench_library(const bench_data *d, bench_op op, double seconds) {
  const mir_public_key *pub = mir_keyset_find(d->keys, "0");
  uint64_t start = mir_now_ns(), deadline = start + (uint64_t)(seconds * 1e9), now = start;
  uint64_t cpu0 = bench_cpu_ns(CLOCK_THREAD_CPUTIME_ID);
  uint64_t n = 0;
  uint8_t out[MIR_SIGNATURE_LEN];
  size_t len = 0;
  while (now < deadline) {
    for (int k = 0; k < 64; k++, n++) {
      size_t i = n % BENCH_MSGS;
      ProtobufCBinaryData part = {BENCH_MSG_BYTES, (uint8_t *)d->msgs[i]};
      if (op == OP_SIGN) {
        mir_keyset_sign(d->keys, &part, 1, out, &len);
      } else if (op == OP_VERIFY) {
        if (mir_verify(pub, &part, 1, d->sigs[i], MIR_SIGNATURE_LEN) != MIR_OK) abort();
      } else {
        mir_sha256(d->msgs[i], BENCH_MSG_BYTES, out);
      }
    }
    now = mir_now_ns();
  }
  return bench_rates(n, now - start, bench_cpu_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0);
}

/* ---- the pool, through a node ---- */

typedef struct bench_driver {
  const bench_data *data;
  bench_op op; /* OP_SIGN or OP_VERIFY */
  size_t many; /* >0: VerifyManyRequests of this many items */
  size_t total, window, sent, done;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool finished;
} bench_driver;

/* A VerifyManyRequest of n valid items, owned. */
static mir_event *bench_many_request(const bench_data *d, size_t first, size_t n, uint64_t ctx) {
  Mir__VerifyManyRequest *req = mir_xmalloc(sizeof *req);
  mir__verify_many_request__init(req);
  req->n_items = n;
  req->items = mir_xcalloc(n, sizeof *req->items);
  for (size_t k = 0; k < n; k++) {
    size_t i = (first + k) % BENCH_MSGS;
    Mir__SignedData *sd = mir_xmalloc(sizeof *sd);
    mir__signed_data__init(sd);
    sd->n_data = 1;
    sd->data = mir_xmalloc(sizeof *sd->data);
    sd->data[0].len = BENCH_MSG_BYTES;
    sd->data[0].data = mir_xmemdup(d->msgs[i], BENCH_MSG_BYTES);
    sd->signature.len = MIR_SIGNATURE_LEN;
    sd->signature.data = mir_xmemdup(d->sigs[i], MIR_SIGNATURE_LEN);
    sd->node_id = mir_xstrdup("0");
    req->items[k] = sd;
  }
  req->origin = mir_xmalloc(sizeof *req->origin);
  mir__origin__init(req->origin);
  req->origin->module = mir_xstrdup("bench");
  req->origin->context_id = ctx;
  return mir_event_new("crypto", "bench", &req->base);
}

static void bench_send(bench_driver *b, mir_event_list *out) {
  size_t i = b->sent % BENCH_MSGS;
  ProtobufCBinaryData part = {BENCH_MSG_BYTES, (uint8_t *)b->data->msgs[i]};
  mir_event *ev;
  if (b->many > 0) {
    ev = bench_many_request(b->data, b->sent, b->many, b->sent);
  } else if (b->op == OP_SIGN) {
    ev = mir_event_sign_request("crypto", "bench", &part, 1, b->sent);
  } else {
    ev = mir_event_verify_request("crypto", "bench", &part, 1, b->data->sigs[i], MIR_SIGNATURE_LEN,
                                  "0", b->sent);
  }
  mir_event_list_push(out, ev);
  b->sent++;
}

static mir_err bench_apply(void *state, mir_event_list *in, mir_event_list *out) {
  bench_driver *b = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) {
      while (b->sent < b->window && b->sent < b->total) bench_send(b, out);
      continue;
    }
    if (mir_event_is(ev, &mir__verify_result__descriptor) &&
        !((Mir__VerifyResult *)ev->payload)->ok) {
      return mir_error_set(MIR_ECRYPTO, "bench: a valid signature did not verify");
    }
    b->done++;
    if (b->sent < b->total) bench_send(b, out);
  }
  if (b->done == b->total) {
    pthread_mutex_lock(&b->mu);
    b->finished = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
  return MIR_OK;
}

static const mir_module_ops bench_driver_ops = {
    .name = "bench", .kind = MIR_MODULE_PASSIVE, .apply = bench_apply};

/* Waits until the driver saw every result, or the node stopped on an error. */
static void bench_wait(bench_driver *b, mir_node *node) {
  pthread_mutex_lock(&b->mu);
  while (!b->finished) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    if (!b->finished && mir_node_wait(node, 1) != MIR_ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&b->mu);
}

/* Runs the requests of one pool row through a node with `workers` crypto workers; a VerifyMany
 * row counts items, not requests. */
static bench_result bench_pool(const bench_data *d, mir_sig_scheme scheme, bench_op op, size_t many,
                               const bench_opts *o, size_t workers) {
  bench_driver b = {.data = d, .op = op, .many = many, .window = o->window};
  b.total = many > 0 ? o->requests / many : o->requests;
  pthread_mutex_init(&b.mu, NULL);
  pthread_cond_init(&b.cv, NULL);
  mir_keyset *keys = NULL;
  const char *ids[] = {"0"};
  mir_crypto_config cfg;
  mir_crypto_config_default(&cfg);
  cfg.workers = workers;
  void *crypto = NULL;
  mir_node *node = NULL;
  if (mir_keyset_new_pseudo(scheme, 1, ids, 1, "0", &keys) != MIR_OK ||
      mir_crypto_module_new(keys, &cfg, &crypto) != MIR_OK ||
      mir_node_new("0", NULL, &node) != MIR_OK ||
      mir_node_add_module(node, "bench", &bench_driver_ops, &b) != MIR_OK ||
      mir_node_add_module(node, "crypto", &mir_crypto_module_ops, crypto) != MIR_OK) {
    fprintf(stderr, "mir-bench-crypto: setup failed: %s\n", mir_error_detail());
    exit(1);
  }
  uint64_t start = mir_now_ns(), cpu0 = bench_cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
  if (mir_node_start(node) != MIR_OK) exit(1);
  bench_wait(&b, node);
  uint64_t elapsed = mir_now_ns() - start, cpu = bench_cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  if (mir_node_stop(node) != MIR_OK) {
    fprintf(stderr, "mir-bench-crypto: %s\n", mir_node_last_error(node));
    exit(1);
  }
  mir_node_free(node);
  pthread_mutex_destroy(&b.mu);
  pthread_cond_destroy(&b.cv);
  return bench_rates(b.total * (many > 0 ? many : 1), elapsed, cpu);
}

/* ---- main ---- */

static void bench_usage(FILE *f) {
  fprintf(f,
          "usage: mir-bench-crypto[-ossl] [--seconds S] [--requests N] [--window W]\n"
          "                               [--workers K] [--many M]\n"
          "\n"
          "Prints operations per second of signing, verifying and SHA-256 on 256-byte messages:\n"
          "single-threaded through the library, and through the crypto module's worker pool\n"
          "inside a node with 1 worker and with K workers (default: one per core).\n"
          "mir-bench-crypto uses BoringSSL, mir-bench-crypto-ossl OpenSSL 3.\n"
          "\n"
          "  --seconds S    time per library row (default 1)\n"
          "  --requests N   signatures per pool row (default 20000)\n"
          "  --window W     requests in flight in pool rows (default 1024)\n"
          "  --workers K    pool size of the second pool rows (default: online cores)\n"
          "  --many M       items per VerifyManyRequest row (default 64)\n");
}

static bool bench_parse(int argc, char **argv, bench_opts *o) {
  static const struct option longopts[] = {{"seconds", required_argument, NULL, 's'},
                                           {"requests", required_argument, NULL, 'n'},
                                           {"window", required_argument, NULL, 'w'},
                                           {"workers", required_argument, NULL, 'k'},
                                           {"many", required_argument, NULL, 'm'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  *o = (bench_opts){.seconds = 1, .requests = 20000, .window = 1024, .workers = 0, .many = 64};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    long v = c == 's' || c == 'h' ? 0 : atol(optarg);
    switch (c) {
      case 's':
        o->seconds = atof(optarg);
        break;
      case 'n':
        o->requests = (size_t)v;
        break;
      case 'w':
        o->window = (size_t)v;
        break;
      case 'k':
        o->workers = (size_t)v;
        break;
      case 'm':
        o->many = (size_t)v;
        break;
      default:
        return false;
    }
  }
  if (o->workers == 0) o->workers = (size_t)sysconf(_SC_NPROCESSORS_ONLN);
  return optind == argc && o->seconds > 0 && o->seconds <= 600 && o->requests > 0 &&
         o->window > 0 && o->workers > 0 && o->workers <= MIR_CRYPTO_WORKERS_MAX && o->many > 0 &&
         o->many <= o->requests;
}

static void bench_scheme(mir_sig_scheme scheme, const bench_opts *o) {
  bench_data *d = mir_xcalloc(1, sizeof *d);
  bench_data_init(d, scheme);
  const char *name = mir_sig_scheme_name(scheme);
  bench_row("sign", name, "library", 1, bench_library(d, OP_SIGN, o->seconds));
  bench_row("verify", name, "library", 1, bench_library(d, OP_VERIFY, o->seconds));
  size_t pools[2] = {1, o->workers};
  for (size_t p = 0; p < (o->workers == 1 ? 1u : 2u); p++) {
    bench_row("sign", name, "pool (node)", pools[p],
              bench_pool(d, scheme, OP_SIGN, 0, o, pools[p]));
    bench_row("verify", name, "pool (node)", pools[p],
              bench_pool(d, scheme, OP_VERIFY, 0, o, pools[p]));
    char how[32];
    snprintf(how, sizeof how, "pool, VerifyMany x%zu", o->many);
    bench_row("verify", name, how, pools[p],
              bench_pool(d, scheme, OP_VERIFY, o->many, o, pools[p]));
  }
  mir_keyset_free(d->keys);
  free(d);
}

int main(int argc, char **argv) {
  bench_opts o;
  if (!bench_parse(argc, argv, &o)) {
    bench_usage(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  printf("crypto backend: %s\n\n", MIR_BENCH_BACKEND);
  printf("| %-14s | %-10s | %-22s | %7s | %12s | %10s | %12s |\n", "operation", "scheme", "path",
         "threads", "ops/s (wall)", "CPU us/op", "ops/CPU-s");
  printf("|%s|%s|%s|%s|%s|%s|%s|\n", "----------------", "------------", "------------------------",
         "---------", "--------------", "------------", "--------------");
  bench_data *d = mir_xcalloc(1, sizeof *d);
  bench_data_init(d, MIR_SIG_ED25519);
  bench_row("sha256 256 B", "-", "library", 1, bench_library(d, OP_SHA256, o.seconds));
  mir_keyset_free(d->keys);
  free(d);
  bench_scheme(MIR_SIG_ED25519, &o);
  bench_scheme(MIR_SIG_ECDSA_P256, &o);
  return 0;
}
