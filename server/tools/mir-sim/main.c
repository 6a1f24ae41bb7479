/*
 * mir-sim: runs a named simulation scenario for a range of seeds and prints a summary.
 *
 *   mir-sim --list                      one scenario per line: name, then its description
 *   mir-sim NAME [--seeds A..B] [--keep-logs] [--log-dir DIR] [--verbose] [--fail-fast]
 *               [--stats]
 *
 * Exit status: 0 if every seed passed, 1 if any failed, 2 for a usage or setup error. A failing
 * seed prints its violation, where its event logs are kept and the command that reproduces it.
 * --verbose prints the full trace of every run to stdout; it is identical for identical seeds,
 * so two traces can be compared with diff. --stats adds the simulated throughput: deliveries the
 * nodes reported, per node, per second of virtual time (for a replicated log, transactions
 * delivered per replica per simulated second). The only real-clock reading is the progress line
 * on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/sim.h"

#define SIM_SEEDS_MAX 100000000ull /* seeds in one invocation */

typedef struct sim_args {
  const char *name;
  uint64_t first, last;
  bool keep_logs, verbose, fail_fast, list, stats;
  const char *log_dir;
} sim_args;

static void sim_usage(FILE *f, const char *prog) {
  fprintf(f,
          "usage: %s --list\n"
          "       %s NAME [--seeds A..B] [--keep-logs] [--log-dir DIR] [--verbose] "
          "[--fail-fast] [--stats]\n"
          "  --seeds A..B   seeds to run (default 1..100; a single number runs one seed)\n"
          "  --keep-logs    record every run and keep its event logs (default: failures only)\n"
          "  --log-dir DIR  where event logs go (default mir-sim-logs)\n"
          "  --verbose      print the full trace of every run (identical for identical seeds)\n"
          "  --fail-fast    stop at the first failing seed\n"
          "  --stats        also print deliveries per node per simulated second\n",
          prog, prog);
}

static bool sim_parse_u64(const char *s, uint64_t *out) {
  if (s[0] < '0' || s[0] > '9') return false;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

/* Parses "A..B" or "A". */
static bool sim_parse_seeds(const char *s, uint64_t *first, uint64_t *last) {
  const char *dots = strstr(s, "..");
  if (dots == NULL) {
    if (!sim_parse_u64(s, first)) return false;
    *last = *first;
    return true;
  }
  char a[32];
  size_t len = (size_t)(dots - s);
  if (len == 0 || len >= sizeof a) return false;
  memcpy(a, s, len);
  a[len] = '\0';
  return sim_parse_u64(a, first) && sim_parse_u64(dots + 2, last) && *first <= *last &&
         *last - *first < SIM_SEEDS_MAX;
}

static int sim_parse_args(int argc, char **argv, sim_args *a) {
  memset(a, 0, sizeof *a);
  a->first = 1;
  a->last = 100;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--list") == 0) {
      a->list = true;
    } else if (strcmp(arg, "--seeds") == 0 && i + 1 < argc) {
      if (!sim_parse_seeds(argv[++i], &a->first, &a->last)) {
        fprintf(stderr, "mir-sim: bad --seeds '%s' (A..B, A <= B)\n", argv[i]);
        return 2;
      }
    } else if (strcmp(arg, "--log-dir") == 0 && i + 1 < argc) {
      a->log_dir = argv[++i];
    } else if (strcmp(arg, "--keep-logs") == 0) {
      a->keep_logs = true;
    } else if (strcmp(arg, "--verbose") == 0) {
      a->verbose = true;
    } else if (strcmp(arg, "--fail-fast") == 0) {
      a->fail_fast = true;
    } else if (strcmp(arg, "--stats") == 0) {
      a->stats = true;
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      sim_usage(stdout, argv[0]);
      exit(0);
    } else if (arg[0] != '-' && a->name == NULL) {
      a->name = arg;
    } else {
      fprintf(stderr, "mir-sim: unexpected argument '%s'\n", arg);
      sim_usage(stderr, argv[0]);
      return 2;
    }
  }
  if (!a->list && a->name == NULL) {
    sim_usage(stderr, argv[0]);
    return 2;
  }
  return 0;
}

static void sim_list(void) {
  size_t n;
  const mir_sim_scenario *all = mir_sim_scenarios(&n);
  for (size_t i = 0; i < n; i++) printf("%s  %s\n", all[i].name, all[i].description);
}

typedef struct sim_totals {
  uint64_t runs, failed, steps, virtual_ns, messages;
  uint64_t first_failed;
  double per_node; /* deliveries per node, summed over the runs */
} sim_totals;

/* The number of nodes sc runs for seed: its configure step, undone at once (the run itself
 * happens inside mir_sim_scenario_run, which reports only the simulator's counters). */
static size_t sim_nodes_of(const mir_sim_scenario *sc, uint64_t seed) {
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = seed;
  void *state = NULL;
  size_t n = sc->configure(sc, &cfg, &state) == MIR_OK ? cfg.nodes : 0;
  if (sc->cleanup != NULL) sc->cleanup(state);
  return n;
}

/* The --stats line: deliveries per node per simulated second over every run. */
static void sim_print_stats(const char *name, const sim_totals *t) {
  double secs = (double)t->virtual_ns / 1e9;
  printf(
      "%s: throughput %.1f deliveries per node per simulated second (%.1f per node per run, "
      "%.3f s virtual per run)\n",
      name, secs > 0 ? t->per_node / secs : 0.0, t->per_node / (double)t->runs,
      secs / (double)t->runs);
}

/* Prints a progress line on stderr about once a second (the one real-clock reading). */
static void sim_progress(const char *name, const sim_totals *t, uint64_t total, uint64_t t0,
                         uint64_t *last_print) {
  uint64_t now = mir_now_ns();
  if (now - *last_print < 1000000000ull) return;
  *last_print = now;
  fprintf(stderr, "  %s: %" PRIu64 "/%" PRIu64 " seeds, %" PRIu64 " failed, %.1f s\n", name,
          t->runs, total, t->failed, (double)(now - t0) / 1e9);
}

/* A counter of a finished run, from the simulator's metrics it kept (mir_sim_metrics's names). */
static uint64_t sim_result_read(const mir_sim_result *res, const char *name) {
  int64_t v = mir_metrics_read(res->metrics, name, NULL);
  return v > 0 ? (uint64_t)v : 0;
}

/* Adds one finished run to the totals. */
static void sim_add_run(sim_totals *t, const mir_sim_scenario *sc, uint64_t seed, const sim_args *a,
                        const mir_sim_result *res) {
  t->runs++;
  t->steps += sim_result_read(res, "mir_sim_steps_total");
  t->virtual_ns += res->now_ns;
  t->messages += sim_result_read(res, "mir_sim_messages_sent_total");
  if (a->stats) {
    size_t nodes = sim_nodes_of(sc, seed);
    double deliveries = (double)sim_result_read(res, "mir_sim_deliveries_total");
    if (nodes > 0) t->per_node += deliveries / (double)nodes;
  }
  if (!res->ok && t->failed++ == 0) t->first_failed = seed;
}

static int sim_run_seeds(const mir_sim_scenario *sc, const sim_args *a, const char *prog) {
  mir_sim_run_opts opts = {
      .log_dir = a->log_dir,
      .program = prog,
      .keep_logs = a->keep_logs,
      .trace = a->verbose ? stdout : NULL,
      .report = stdout,
  };
  sim_totals t = {0};
  uint64_t total = a->last - a->first + 1, t0 = mir_now_ns(), last_print = t0;
  for (uint64_t seed = a->first;; seed++) {
    mir_sim_result res;
    mir_err err = mir_sim_scenario_run(sc, seed, &opts, &res);
    if (err != MIR_OK) {
      fprintf(stderr, "mir-sim: %s seed %" PRIu64 ": setup failed: %s: %s\n", sc->name, seed,
              mir_strerror(err), mir_error_detail());
      mir_sim_result_fini(&res);
      return 2;
    }
    sim_add_run(&t, sc, seed, a, &res);
    if (a->keep_logs && res.ok) printf("seed %" PRIu64 ": ok, logs in %s\n", seed, res.log_path);
    fflush(stdout);
    bool stop = (!res.ok && a->fail_fast) || seed == a->last;
    mir_sim_result_fini(&res);
    if (stop) break;
    sim_progress(sc->name, &t, total, t0, &last_print);
  }
  printf("%s: %" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 "), %" PRIu64 " passed, %" PRIu64
         " failed; avg %" PRIu64 " steps, %" PRIu64 " messages, %.3f s virtual%s\n",
         sc->name, t.runs, a->first, a->first + t.runs - 1, t.runs - t.failed, t.failed,
         t.steps / t.runs, t.messages / t.runs, (double)t.virtual_ns / 1e9 / (double)t.runs,
         sc->expect_failure ? " (planted bug: failures expected)" : "");
  if (t.failed > 0) printf("first failing seed: %" PRIu64 "\n", t.first_failed);
  if (a->stats) sim_print_stats(sc->name, &t);
  fflush(stdout);
  fprintf(stderr, "  %s: %.1f s wall\n", sc->name, (double)(mir_now_ns() - t0) / 1e9);
  return t.failed > 0 ? 1 : 0;
}

int main(int argc, char **argv) {
  sim_args a;
  int rc = sim_parse_args(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.list) {
    sim_list();
    return 0;
  }
  const mir_sim_scenario *sc = mir_sim_scenario_find(a.name);
  if (sc == NULL) {
    fprintf(stderr, "mir-sim: no scenario '%s' (mir-sim --list)\n", a.name);
    return 2;
  }
  return sim_run_seeds(sc, &a, argv[0]);
}
