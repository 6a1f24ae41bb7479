/*
 * mir-limit: one server of the limit pipeline (limit.h; docs/PERFORMANCE.md, "Limit pipeline").
 *
 *   mir-limit --config FILE [--new] [--status-period-ms MS]
 *
 * It reads a replica's configuration file (the same file mir-replica takes: id, membership,
 * listen addresses, TLS, client and transport limits, trantor.client_window, max_tx_bytes and
 * the batch limits) and runs the replica's own client service, peer transport and ordered log
 * with the limit module in place of Trantor. So deploy/local/cluster.sh starts a limit cluster
 * with MIR_REPLICA_PROGRAM=mir-limit, and mir-bench drives it as it drives replicas.
 *
 * No disk: the ordered log runs without a store (ordered_log.h), keeping the newest
 * LIM_LOG_ENTRIES sns within LIM_LOG_BYTES in memory; a subscriber further behind is cut as one
 * behind a replica's retention would be. The configuration's data_dir and http_listen are not
 * used. --new is accepted (cluster.sh passes it) and means nothing here: every start is a new
 * pipeline.
 *
 * Signals as in mir-replica: SIGINT and SIGTERM are blocked in every thread and taken by the main
 * thread, which stops the node. Exit status: 0 after a clean shutdown, 1 when the pipeline fails
 * while running (a lost delivery), 2 for a usage or configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_service.h"
#include "config.h"
#include "limit.h"
#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/grpc_tune.h"
#include "mir/hasher.h"
#include "mir/log.h"
#include "mir/membership.h"
#include "mir/net_grpc.h"
#include "mir/node.h"
#include "ordered_log.h"
#include "replica_wiring.h"

#define MAIN_LOG "mir-limit"
#define LIM_LOG_ENTRIES 4096                /* sns the in-memory log keeps at most ... */
#define LIM_LOG_BYTES ((size_t)256 << 20)   /* ... in this many bytes */
#define LIM_FORWARD_MAX_TXS 65536ull        /* per server, at the sequencer */
#define LIM_FORWARD_MAX_BYTES (64ull << 20) /* ... their data bytes */
#define LIM_SNS_AHEAD_MAX 1024ull           /* below the transport's queue of 8192 messages */
#define LIM_BYTES_AHEAD_MAX (16ull << 20)   /* below its queue of 64 MiB */

typedef struct lim_server {
  const mir_replica_config *cfg;
  mir_membership *m;
  mir_olog *log;
  mir_node *node;
  mir_net_grpc *net; /* owned by the node once added */
} lim_server;

static void main_usage(FILE *f) {
  fprintf(f,
          "usage: mir-limit --config FILE [--new] [--status-period-ms MS]\n"
          "\n"
          "Runs one server of the limit pipeline: the replica's client API (Submit, Subscribe,\n"
          "Status), peer transport and ordered log, with no protocol: every server forwards\n"
          "what its clients submit to the membership's first member, which numbers it once\n"
          "and sends every numbered batch to every server. Nothing is signed, voted on or\n"
          "written to disk. FILE is a mir-replica configuration file (mir-replica --help);\n"
          "its data_dir and http_listen are not used.\n"
          "\n"
          "  --config FILE          the configuration file; required\n"
          "  --new                  accepted for cluster.sh; every start is a new pipeline\n"
          "  --status-period-ms MS  log a status line this often (default 10000; 0: never)\n"
          "  --help                 this text\n"
          "\n"
          "Exit status: 0 clean shutdown, 1 failure while running, 2 usage or configuration\n"
          "error.\n");
}

/* The ordered log's hash: the length-prefixed SHA-256 the replica uses (trantor_hash_fn). */
static void lim_hash(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[32]) {
  mir_hash_ctx ctx;
  mir_hash_init(&ctx);
  for (size_t i = 0; i < n; i++) mir_hash_update_part(&ctx, parts[i], lens[i]);
  mir_hash_final(&ctx, out);
}

/* ---- the log ---- */

/* The ordered log in memory only: no store, no disk. */
static mir_err lim_open_log(lim_server *s) {
  mir_olog_config lc;
  mir_olog_config_default(&lc);
  lc.store = NULL;
  lc.hash = lim_hash;
  lc.cache_entries = LIM_LOG_ENTRIES;
  lc.cache_bytes = LIM_LOG_BYTES;
  return mir_olog_open(&lc, &s->log);
}

/* ---- the node ---- */

/* The peers for Status: every other member and whether its stream is up. */
static size_t lim_peers(void *user, mir_client_peer *out, size_t cap) {
  lim_server *s = user;
  size_t n = 0;
  for (size_t i = 0; i < s->m->n && n < cap; i++) {
    const char *id = s->m->replicas[i].id;
    if (strcmp(id, s->cfg->id) == 0) continue;
    snprintf(out[n].id, sizeof(out[n].id), "%s", id);
    out[n++].connected =
        mir_metrics_read(mir_net_grpc_metrics(s->net), "mir_net_connected", id) > 0;
  }
  return n;
}

/* The peer transport, configured as the replica configures it. */
static mir_err lim_add_net(lim_server *s) {
  mir_net_member members[MIR_LIMIT_SERVERS_MAX];
  mir_net_grpc_config nc;
  mir_replica_net_config(s->cfg, s->m, members, &nc);
  mir_err err = mir_net_grpc_new(&nc, &s->net);
  if (err != MIR_OK) return err;
  return mir_node_add_module(s->node, "net", &mir_net_grpc_ops, s->net);
}

/* The replica's client service, configured as the replica configures it. */
static mir_err lim_add_client(lim_server *s) {
  mir_client_service_config cc;
  mir_replica_client_config(s->cfg, s->log, &cc);
  cc.peers = lim_peers;
  cc.peers_user = s;
  mir_client_service *svc = NULL;
  mir_err err = mir_client_service_new(&cc, &svc);
  if (err != MIR_OK) return err;
  return mir_node_add_module(s->node, MIR_CLIENT_SERVICE_ID, &mir_client_service_ops, svc);
}

static mir_err lim_add_limit(lim_server *s) {
  const mir_replica_config *c = s->cfg;
  const char *ids[MIR_LIMIT_SERVERS_MAX];
  mir_limit_config lc = {0};
  for (size_t i = 0; i < s->m->n; i++) {
    ids[i] = s->m->replicas[i].id;
    if (strcmp(ids[i], c->id) == 0) lc.self = i;
  }
  lc.ids = ids;
  lc.n = s->m->n;
  mir_olog_app(s->log, &lc.app);
  lc.client_window = c->trantor.client_window;
  lc.max_tx_bytes = c->trantor.max_tx_bytes;
  lc.max_batch_txs = c->trantor.max_batch_txs;
  lc.max_batch_bytes = c->trantor.max_batch_bytes;
  lc.forward_max_txs = LIM_FORWARD_MAX_TXS;
  lc.forward_max_bytes = LIM_FORWARD_MAX_BYTES;
  lc.sns_ahead_max = LIM_SNS_AHEAD_MAX;
  lc.bytes_ahead_max = LIM_BYTES_AHEAD_MAX;
  void *state = NULL;
  mir_err err = mir_limit_new(&lc, &state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(s->node, MIR_LIMIT_MODULE_ID, &mir_limit_ops, state);
}

static mir_err lim_build(lim_server *s) {
  const mir_replica_config *c = s->cfg;
  mir_err err = mir_membership_load(c->membership_file, &s->m);
  if (err != MIR_OK) return err;
  if (mir_membership_find(s->m, c->id) == NULL) {
    return mir_error_set(MIR_ECONFIG, "%s: id: %s is not in the membership %s", c->file, c->id,
                         c->membership_file);
  }
  if (s->m->n > MIR_LIMIT_SERVERS_MAX) {
    return mir_error_set(MIR_ECONFIG, "%s: more than %d servers", c->membership_file,
                         MIR_LIMIT_SERVERS_MAX);
  }
  err = lim_open_log(s);
  if (err == MIR_OK) err = mir_node_new(c->id, NULL, &s->node);
  if (err == MIR_OK) err = lim_add_net(s);
  if (err == MIR_OK) err = lim_add_client(s);
  if (err == MIR_OK) err = lim_add_limit(s);
  return err;
}

static void lim_free(lim_server *s) {
  if (s->node != NULL) {
    mir_node_stop(s->node);
    mir_node_free(s->node);
  }
  mir_olog_free(s->log);
  mir_membership_free(s->m);
}

/* Logs the position of the log. */
static void lim_log_status(lim_server *s) {
  mir_olog_status st;
  mir_olog_get_status(s->log, &st);
  mir_log(MIR_LOG_INFO, MAIN_LOG, "%s: next sn %" PRIu64 ", %" PRIu64 " sns applied in this run",
          s->cfg->id, st.next_sn, st.appended);
}

/* Runs until a signal or a failure of the node. */
static mir_err lim_run(lim_server *s, const sigset_t *signals, uint64_t status_period_ms) {
  uint64_t last_ns = 0, now_ns = 0;
  for (;;) {
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
    int sig = sigtimedwait(signals, NULL, &tick);
    if (sig > 0) {
      mir_log(MIR_LOG_INFO, MAIN_LOG, "%s: %s received: shutting down", s->cfg->id, strsignal(sig));
      return MIR_OK;
    }
    mir_err err = mir_node_wait(s->node, 1);
    if (err != MIR_ETIMEDOUT) {
      return mir_error_set(err != MIR_OK ? err : MIR_EMODULE, "the node stopped: %s",
                           mir_node_last_error(s->node));
    }
    now_ns += 500 * 1000000ull;
    if (status_period_ms > 0 && now_ns - last_ns >= status_period_ms * 1000000ull) {
      lim_log_status(s);
      last_ns = now_ns;
    }
  }
}

/* Fills the options from argv; returns 0 to go on, 1 for a usage error, 2 after --help. */
static int main_parse(int argc, char **argv, const char **config, long *status_period_ms) {
  static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                           {"new", no_argument, NULL, 'n'},
                                           {"status-period-ms", required_argument, NULL, 's'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 'c':
        *config = optarg;
        break;
      case 'n':
        break;
      case 's':
        errno = 0;
        *status_period_ms = strtol(optarg, &end, 10);
        if (errno != 0 || *end != '\0' || *status_period_ms < 0) return 1;
        break;
      case 'h':
        return 2;
      default:
        return 1;
    }
  }
  return optind == argc && *config != NULL ? 0 : 1;
}

static int main_run(const mir_replica_config *cfg, const sigset_t *signals, long period_ms) {
  lim_server s = {.cfg = cfg};
  mir_err err = lim_build(&s);
  if (err != MIR_OK) {
    fprintf(stderr, "mir-limit: %s\n", mir_error_detail());
    lim_free(&s);
    return 2;
  }
  err = mir_node_start(s.node);
  if (err == MIR_OK) {
    mir_log(MIR_LOG_INFO, MAIN_LOG, "%s: limit server of %zu (sequencer %s), clients on %s",
            cfg->id, s.m->n, s.m->replicas[0].id, cfg->client_listen);
    err = lim_run(&s, signals, (uint64_t)period_ms);
  }
  int status = 0;
  if (err != MIR_OK) {
    mir_log(MIR_LOG_ERROR, MAIN_LOG, "%s: %s", cfg->id, mir_error_detail());
    status = 1;
  }
  lim_free(&s);
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
  const char *config = NULL;
  long period_ms = 10000;
  int p = main_parse(argc, argv, &config, &period_ms);
  if (p != 0) {
    main_usage(p == 2 ? stdout : stderr);
    return p == 2 ? 0 : 2;
  }
  mir_replica_config cfg;
  if (mir_replica_config_load(config, &cfg) != MIR_OK) {
    fprintf(stderr, "mir-limit: %s\n", mir_error_detail());
    return 2;
  }
  if (cfg.log_level != NULL) mir_log_set_level(mir_log_level_parse(cfg.log_level));
  int status = main_run(&cfg, &signals, period_ms);
  mir_replica_config_fini(&cfg);
  return status;
}
