/*
 * The seed runner behind mir-sim and the scenario tests: runs one named scenario for one seed,
 * and keeps the evidence of a failure.
 *
 * Runs are not recorded by default: recording costs more than simulating. When a run fails, the
 * runner runs the same seed again with every node's recorder on; determinism makes the second
 * run the same as the first, which the runner verifies by comparing the two trace hashes (a
 * mismatch is reported loudly: it means something read a clock, real randomness or a pointer).
 * The failing run's directory then holds one event log per node (for mir-cat) and failure.txt
 * with the seed, the violation and the one command that reproduces it. With keep_logs every run
 * is recorded and kept.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "sim_internal.h"

#define SCEN_DEFAULT_LOG_DIR "mir-sim-logs"
#define SCEN_DEFAULT_PROGRAM "build/bin/mir-sim"

/* Creates dir and its parents (like mkdir -p). */
static mir_err scen_mkdirs(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
    return mir_error_set(MIR_EINVAL, "path too long: %s", dir);
  }
  for (char *p = path + 1;; p++) {
    bool end = *p == '\0';
    if (*p == '/' || end) {
      *p = '\0';
      if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        return mir_error_set(MIR_EIO, "cannot create %s: %s", path, strerror(errno));
      }
      if (end) break;
      *p = '/';
    }
  }
  return MIR_OK;
}

/* Removes the event logs and failure note an earlier run left in dir. */
static void scen_clean_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  size_t suffix = strlen(".mirlog.zst");
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    bool log = len > suffix && strcmp(e->d_name + len - suffix, ".mirlog.zst") == 0;
    if (log || strcmp(e->d_name, "failure.txt") == 0) {
      char path[PATH_MAX];
      if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) unlink(path);
    }
  }
  closedir(d);
}

/* Keeps the run's counters in res->metrics (created if missing): attaching the simulator's set
 * below it and detaching with folding copies them, so they outlive the simulation. */
static void scen_keep_metrics(mir_sim *sim, mir_sim_result *res) {
  if (res->metrics == NULL) res->metrics = mir_metrics_new("sim");
  mir_metrics_attach(res->metrics, sim->metrics);
  mir_metrics_detach(sim->metrics, true);
}

/* Configures, sets up and runs sc for seed once; fills res. */
static mir_err scen_run_once(const mir_sim_scenario *sc, uint64_t seed, const char *record_dir,
                             FILE *trace, mir_sim_result *res) {
  mir_sim_config cfg;
  mir_sim_config_default(&cfg);
  cfg.seed = seed;
  cfg.record_dir = record_dir;
  cfg.trace = trace;
  void *state = NULL;
  mir_sim *sim = NULL;
  mir_err err = sc->configure(sc, &cfg, &state);
  if (err == MIR_OK) err = mir_sim_new(&cfg, &sim);
  if (err == MIR_OK && trace != NULL) {
    char classes[128];
    mir_sim_fault_classes_format(sc->faults, classes, sizeof classes);
    fprintf(trace, "scenario %s seed %llu faults %s\n", sc->name, (unsigned long long)seed,
            classes);
  }
  if (err == MIR_OK) err = sc->setup(sc, sim, state);
  if (err == MIR_OK) {
    mir_sim_run(sim);
    res->ok = !mir_sim_failed(sim);
    snprintf(res->failure, sizeof res->failure, "%s", mir_sim_failure(sim));
    res->now_ns = mir_sim_now(sim);
    res->trace_hash = mir_sim_trace_hash(sim);
    scen_keep_metrics(sim, res);
  }
  mir_sim_free(sim);
  if (sc->cleanup != NULL) sc->cleanup(state);
  return err;
}

static void scen_write_note(const mir_sim_scenario *sc, uint64_t seed, const mir_sim_result *res,
                            const char *program, const char *extra) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/failure.txt", res->log_path) >= (int)sizeof path) return;
  FILE *f = fopen(path, "w");
  if (f == NULL) return;
  fprintf(f,
          "scenario: %s\nseed: %llu\nfailure: %s\n%sreproduce: %s %s --seeds %llu..%llu "
          "--keep-logs\nsteps: %lld\nvirtual time: %llu ns\ntrace hash: %016llx\n",
          sc->name, (unsigned long long)seed, res->failure, extra, program, sc->name,
          (unsigned long long)seed, (unsigned long long)seed,
          (long long)mir_metrics_read(res->metrics, "mir_sim_steps_total", NULL),
          (unsigned long long)res->now_ns, (unsigned long long)res->trace_hash);
  fclose(f);
}

/* Runs the failing seed again with recording into dir; notes nondeterminism in extra. */
static mir_err scen_record_again(const mir_sim_scenario *sc, uint64_t seed, const char *dir,
                                 mir_sim_result *res, char *extra, size_t cap) {
  mir_sim_result again;
  memset(&again, 0, sizeof again);
  mir_err err = scen_run_once(sc, seed, dir, NULL, &again);
  if (err == MIR_OK && (again.trace_hash != res->trace_hash || again.ok != res->ok)) {
    snprintf(extra, cap,
             "NONDETERMINISM: the recorded re-run differs (trace hash %016llx, then %016llx%s)\n",
             (unsigned long long)res->trace_hash, (unsigned long long)again.trace_hash,
             again.ok ? ", and it passed" : "");
  }
  mir_sim_result_fini(&again);
  return err;
}

mir_err mir_sim_scenario_run(const mir_sim_scenario *sc, uint64_t seed,
                             const mir_sim_run_opts *opts, mir_sim_result *res) {
  mir_sim_run_opts none;
  memset(&none, 0, sizeof none);
  if (opts == NULL) opts = &none;
  const char *log_dir = opts->log_dir ? opts->log_dir : SCEN_DEFAULT_LOG_DIR;
  const char *program = opts->program ? opts->program : SCEN_DEFAULT_PROGRAM;
  memset(res, 0, sizeof *res);
  res->metrics = mir_metrics_new("sim");
  char dir[MIR_SIM_PATH_MAX], extra[256] = "";
  if (snprintf(dir, sizeof dir, "%s/%s-%llu", log_dir, sc->name, (unsigned long long)seed) >=
      (int)sizeof dir) {
    return mir_error_set(MIR_EINVAL, "log directory path too long");
  }
  mir_err err = MIR_OK;
  if (opts->keep_logs && (err = scen_mkdirs(dir)) != MIR_OK) return err;
  if (opts->keep_logs) scen_clean_dir(dir);
  err = scen_run_once(sc, seed, opts->keep_logs ? dir : NULL, opts->trace, res);
  if (err != MIR_OK || (res->ok && !opts->keep_logs)) return err;
  if (!opts->keep_logs) {
    if ((err = scen_mkdirs(dir)) != MIR_OK) return err;
    scen_clean_dir(dir);
    if ((err = scen_record_again(sc, seed, dir, res, extra, sizeof extra)) != MIR_OK) return err;
  }
  snprintf(res->log_path, sizeof res->log_path, "%s", dir);
  if (res->ok) return MIR_OK;
  scen_write_note(sc, seed, res, program, extra);
  if (opts->report != NULL) {
    fprintf(opts->report,
            "FAIL %s seed %llu: %s\n%s  logs: %s (read with mir-cat)\n"
            "  reproduce: %s %s --seeds %llu..%llu --keep-logs\n",
            sc->name, (unsigned long long)seed, res->failure, extra, dir, program, sc->name,
            (unsigned long long)seed, (unsigned long long)seed);
  }
  return MIR_OK;
}

void mir_sim_result_fini(mir_sim_result *res) {
  mir_metrics_free(res->metrics);
  memset(res, 0, sizeof *res);
}
