/*
 * mir-bench-net: messages/s and MB/s of the gRPC peer transport between two nodes in this process
 * (node 0 sends, node 1 receives, over loopback), beside a raw gRPC C core stream moving the same
 * number of messages of the same size in the same run, and the ratio of the two. Each figure is
 * the median of --runs runs; the runs of the three kinds alternate so that machine noise spreads
 * over all of them.
 *
 *   mir-bench-net [--sizes 100,4096] [--count N] [--bytes-per-run B] [--runs R] [--window W]
 *                 [--tls DIR] [--timeout-ms MS] [--mir-only]
 *
 * --count fixes the messages per run; otherwise each size sends max(100000, B / size) messages
 * capped at 1,000,000 (B defaults to 800 MB).
 */
#include <grpc/grpc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "mir/grpc_tune.h"
#include "mir/log.h"

#define RUNS_MAX 15
#define SIZES_MAX 8

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
    port = ntohs(a.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

char *bench_read_file(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "mir-bench-net: cannot open %s\n", path);
    return NULL;
  }
  char *buf = malloc((1 << 20) + 1);
  size_t n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

typedef struct options {
  size_t sizes[SIZES_MAX];
  size_t n_sizes;
  uint64_t count, bytes_per_run;
  int runs;
  bool mir_only; /* skip the raw baselines (for profiling) */
  bench_params p;
} options;

static int usage(void) {
  fprintf(stderr,
          "usage: mir-bench-net [--sizes 100,4096] [--count N] [--bytes-per-run B] [--runs R]\n"
          "                     [--window W] [--tls DIR] [--timeout-ms MS]\n"
          "                     [--mir-only]\n");
  return 2;
}

static bool parse_sizes(const char *s, options *o) {
  o->n_sizes = 0;
  char *end;
  while (*s && o->n_sizes < SIZES_MAX) {
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || v == 0 || v > (64u << 20)) return false;
    o->sizes[o->n_sizes++] = v;
    s = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != '\0') return false;
  }
  return o->n_sizes > 0;
}

static bool parse_args(int argc, char **argv, options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--mir-only")) {
      o->mir_only = true;
      continue;
    }
    if (v == NULL) return false;
    if (!strcmp(a, "--sizes")) {
      if (!parse_sizes(v, o)) return false;
    } else if (!strcmp(a, "--count")) {
      o->count = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--bytes-per-run")) {
      o->bytes_per_run = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--runs")) {
      o->runs = atoi(v);
    } else if (!strcmp(a, "--window")) {
      o->p.window = strtoull(v, NULL, 10);
    } else if (!strcmp(a, "--tls")) {
      o->p.tls_dir = v;
    } else if (!strcmp(a, "--timeout-ms")) {
      o->p.timeout_ms = strtoull(v, NULL, 10);
    } else {
      return false;
    }
    i++;
  }
  return o->runs >= 1 && o->runs <= RUNS_MAX && o->p.window >= 1 && o->p.timeout_ms >= 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* Prints the medians of one size: wall-clock rate, throughput, process CPU per message, and for
 * the transport its ratios to the two raw rows (wall clock and CPU) and messages per frame. */
static void bench_print(const options *o, size_t size, double rate[3][RUNS_MAX],
                        double cpu_us[3][RUNS_MAX], double *per_frame) {
  const char *names[3] = {"raw gRPC, 1 msg/send", "raw gRPC, write hint", "mir transport"};
  double med[3], cpu[3];
  for (int k = 0; k < 3; k++) {
    med[k] = median(rate[k], o->runs);
    cpu[k] = median(cpu_us[k], o->runs);
  }
  for (int k = o->mir_only ? 2 : 0; k < 3; k++) {
    printf("%7zu  %-22s %10.0f %9.1f %10.2f", size, names[k], med[k], med[k] * (double)size / 1e6,
           cpu[k]);
    if (k == 2 && !o->mir_only) {
      printf("   x%.2f / x%.2f   x%.2f / x%.2f", med[2] / med[0], med[2] / med[1], cpu[0] / cpu[2],
             cpu[1] / cpu[2]);
    }
    if (k == 2) printf("   %.0f", median(per_frame, o->runs));
    printf("\n");
  }
  fflush(stdout);
}

/* Runs the three kinds `runs` times (interleaved) for one size and prints their medians. */
static bool bench_size(const options *o, size_t size) {
  bench_params p = o->p;
  p.msg_bytes = size;
  p.count = o->count;
  if (p.count == 0) {
    p.count = o->bytes_per_run / size;
    if (p.count < 100000) p.count = 100000;
    if (p.count > 1000000) p.count = 1000000;
  }
  double rate[3][RUNS_MAX], cpu_us[3][RUNS_MAX], per_frame[RUNS_MAX];
  for (int r = 0; r < o->runs; r++) {
    bench_result res[3] = {{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}};
    if ((!o->mir_only && (!bench_raw(&p, false, &res[0]) || !bench_raw(&p, true, &res[1]))) ||
        !bench_mir(&p, &res[2])) {
      return false;
    }
    for (int k = 0; k < 3; k++) {
      rate[k][r] = (double)res[k].msgs / res[k].seconds;
      cpu_us[k][r] = res[k].cpu_seconds * 1e6 / (double)res[k].msgs;
    }
    per_frame[r] = res[2].frames ? (double)res[2].msgs / (double)res[2].frames : 0;
  }
  bench_print(o, size, rate, cpu_us, per_frame);
  return true;
}

int main(int argc, char **argv) {
  (void)mir_grpc_tune_process(); /* both transports alike, before gRPC's first call */
  options o = {.sizes = {100, 4096}, .n_sizes = 2, .bytes_per_run = 800000000ull, .runs = 3};
  o.p.window = 16384;
  o.p.timeout_ms = 120000;
  if (!parse_args(argc, argv, &o)) return usage();
  mir_log_set_level(MIR_LOG_ERROR);
  printf("mir-bench-net: gRPC core %s, %ld CPUs, %s, median of %d runs, window %llu\n",
         grpc_version_string(), sysconf(_SC_NPROCESSORS_ONLN),
         o.p.tls_dir ? "mutual TLS" : "plaintext", o.runs, (unsigned long long)o.p.window);
  printf("%7s  %-22s %10s %9s %10s   %-15s   %-15s   %s\n", "bytes", "stream", "msgs/s", "MB/s",
         "CPU us/msg", "rate vs raw", "CPU vs raw", "msgs/frame");
  for (size_t i = 0; i < o.n_sizes; i++) {
    if (!bench_size(&o, o.sizes[i])) return 1;
  }
  return 0;
}
