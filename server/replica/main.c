/*
 * mir-replica: one replica of a Trantor cluster (docs/OPERATIONS.md).
 *
 *   mir-replica --config FILE [--new | --rejoin] [--check] [--status-period-ms MS]
 *
 * SIGINT and SIGTERM are blocked in every thread before anything starts (gRPC's threads inherit
 * the mask) and taken with sigtimedwait by the main thread, which then stops the node and closes
 * the store: a clean shutdown never runs code in a signal handler. SIGXFSZ is ignored, so that a
 * file size limit (a full disk's stand-in) fails the write that reaches it, which the store reports
 * and the replica stops on, instead of killing the process without a word. Exit status: 0 after a
 * clean shutdown (or a successful --check), 1 when the replica fails while running, 2 for a usage
 * or configuration error, a data folder that does not fit --new / --rejoin, or a write-ahead log
 * that cannot be read back.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "mir/alloc.h"
#include "mir/grpc_tune.h"
#include "mir/log.h"
#include "replica.h"

#define MAIN_LOG "mir-replica"
#define MAIN_THREADS_WAIT_MS 5000

typedef struct main_opts {
  const char *config;
  bool check;
  mir_replica_mode mode;
  long status_period_ms;
} main_opts;

static void main_usage(FILE *f) {
  fprintf(f,
          "usage: mir-replica --config FILE [options]\n"
          "\n"
          "Runs one replica of a Trantor cluster: the peer transport, the client API\n"
          "(Submit, Subscribe, Status: proto/api/api.proto) and the ordered log, stored in the\n"
          "data folder. SIGINT or SIGTERM shut it down cleanly.\n"
          "\n"
          "  --config FILE          the configuration file (below); required\n"
          "  --new                  first start of a replica of a new cluster: the data folder\n"
          "                         must not hold a store yet (data_dir/db); the replica\n"
          "                         starts at the genesis\n"
          "  --rejoin               the replica lost its data (disk replaced, folder deleted):\n"
          "                         the data folder must not hold a store; the replica marks its\n"
          "                         new log, asks its peers for their stable checkpoints, catches\n"
          "                         up by state transfer and votes only in epochs where it\n"
          "                         cannot have voted before (docs/OPERATIONS.md)\n"
          "  --check                check the configuration, the membership and the key, then\n"
          "                         exit (0: fine) without opening the data folder or ports\n"
          "  --status-period-ms MS  log a status line this often (default 10000; 0: never)\n"
          "  --help                 this text\n"
          "\n"
          "Without --new or --rejoin the data folder must hold the store of an earlier run,\n"
          "which the replica resumes from: a replica never votes with an empty store unless\n"
          "told that it never voted.\n"
          "\n"
          "Environment: MIR_LOG=trace|debug|info|warn|error|off sets the log level (the\n"
          "configuration's log_level wins).\n"
          "\n"
          "Exit status: 0 clean shutdown, 1 failure while running (a full disk, a failed\n"
          "write, a log that contradicts the cluster: the log says why), 2 usage or\n"
          "configuration error, a data folder that does not fit --new or --rejoin, or a\n"
          "damaged write-ahead log.\n\n");
  mir_replica_config_help(f);
}

/* Sets the start mode once; false if another one was set already. */
static bool main_set_mode(main_opts *o, mir_replica_mode mode) {
  if (o->mode != MIR_REPLICA_RESUME && o->mode != mode) {
    fprintf(stderr, "mir-replica: --new and --rejoin exclude each other\n");
    return false;
  }
  o->mode = mode;
  return true;
}

/* Fills o from argv; returns 0 to go on, 1 for a usage error, 2 after --help. */
static int main_parse(int argc, char **argv, main_opts *o) {
  static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                           {"check", no_argument, NULL, 'k'},
                                           {"new", no_argument, NULL, 'n'},
                                           {"rejoin", no_argument, NULL, 'r'},
                                           {"status-period-ms", required_argument, NULL, 's'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  *o = (main_opts){.status_period_ms = 10000, .mode = MIR_REPLICA_RESUME};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 'c':
        o->config = optarg;
        break;
      case 'k':
        o->check = true;
        break;
      case 'n':
        if (!main_set_mode(o, MIR_REPLICA_NEW)) return 1;
        break;
      case 'r':
        if (!main_set_mode(o, MIR_REPLICA_REJOIN)) return 1;
        break;
      case 's':
        errno = 0;
        o->status_period_ms = strtol(optarg, &end, 10);
        if (errno != 0 || *end != '\0' || o->status_period_ms < 0) return 1;
        break;
      case 'h':
        return 2;
      default:
        return 1;
    }
  }
  return optind == argc && o->config != NULL ? 0 : 1;
}

/* The threads of this process that are still running, besides the calling one and RocksDB's
 * background threads (which RocksDB keeps for the life of the process); -1 without /proc. */
static int main_other_threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) return -1;
  int n = -1; /* the calling thread */
  for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char path[300], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/self/task/%.255s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      if (fgets(comm, sizeof(comm), f) == NULL) comm[0] = '\0';
      fclose(f);
    }
    if (strncmp(comm, "rocksdb:", 8) != 0) n++;
  }
  closedir(d);
  return n;
}

/* gRPC 1.51's last grpc_shutdown returns while some of its threads (timers, executors, the event
 * engine's pool) are still winding down; if the process exits meanwhile, OpenSSL's exit handler
 * frees what those threads still use. So wait for them, at most MAIN_THREADS_WAIT_MS. */
static void main_wait_for_threads(void) {
  for (int waited_ms = 0; waited_ms < MAIN_THREADS_WAIT_MS; waited_ms += 10) {
    if (main_other_threads() <= 0) return;
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
    nanosleep(&tick, NULL);
  }
  mir_log(MIR_LOG_WARN, MAIN_LOG, "%d threads still running at exit", main_other_threads());
}

/* Builds, starts and runs the replica until a signal; returns the exit status. */
static int main_run(const main_opts *o, const mir_replica_config *cfg, const sigset_t *signals) {
  mir_replica *r = NULL;
  mir_err err = o->check ? mir_replica_check(cfg) : mir_replica_new(cfg, o->mode, &r);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-replica: %s\n", mir_error_detail());
    return 2;
  }
  if (o->check) {
    printf("%s: configuration ok\n", cfg->file);
    return 0;
  }
  err = mir_replica_start(r);
  if (err == MIR_OK) err = mir_replica_run(r, signals, (uint64_t)o->status_period_ms);
  int status = 0;
  if (err != MIR_OK) {
    mir_log(MIR_LOG_ERROR, MAIN_LOG, "%s: %s", cfg->id, mir_error_detail());
    status = 1;
  }
  mir_replica_free(r);
  main_wait_for_threads();
  mir_log(MIR_LOG_INFO, MAIN_LOG, "%s: stopped", cfg->id);
  return status;
}

int main(int argc, char **argv) {
  (void)mir_grpc_tune_process(); /* before gRPC's first call and threads */
  /* Before any thread exists, so that every thread inherits the mask. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);

  main_opts o;
  int p = main_parse(argc, argv, &o);
  if (p != 0) {
    main_usage(p == 2 ? stdout : stderr);
    return p == 2 ? 0 : 2;
  }
  mir_replica_config cfg;
  if (mir_replica_config_load(o.config, &cfg) != MIR_OK) {
    fprintf(stderr, "mir-replica: %s\n", mir_error_detail());
    return 2;
  }
  if (cfg.log_level != NULL) mir_log_set_level(mir_log_level_parse(cfg.log_level));
  int status = main_run(&o, &cfg, &signals);
  mir_replica_config_fini(&cfg);
  return status;
}
