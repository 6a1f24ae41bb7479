/*
 * mir-pingpong: two nodes, "0" and "1", in one process over the in-process transport, pinging each
 * other on a timer for a while.
 *
 * Each node has four modules: "net" (mir/net_local.h), "timer", "pingpong" (samples.h) and "app",
 * a collector whose callback prints one line per Ping or Pong received. With --record DIR every
 * node records its event log in DIR with its node id as the file prefix, for mir-cat. The run ends
 * after --duration seconds or on Ctrl-C; the program then stops the nodes, closes the logs, prints
 * a summary and exits 0 if both nodes ran without error and received at least one Pong.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/net_local.h"
#include "mir/timer.h"
#include "prog_common.h"
#include "samples.h"

#define PP_NODES 2

typedef struct pp_options {
  uint64_t duration_ms;
  uint64_t period_ms;
  const char *record_dir;
} pp_options;

typedef struct pp_node {
  const char *id;
  mir_node *node;
  mir_dsl *pingpong; /* owned by node */
  mir_collector *app;
  mir_recorder *rec;
} pp_node;

static void pp_usage(FILE *f) {
  fprintf(f,
          "usage: mir-pingpong [--duration SECONDS] [--period-ms MS] [--record DIR]\n"
          "\n"
          "Runs the pingpong sample: nodes 0 and 1 in this process send each other a Ping every\n"
          "period and answer every Ping with a Pong.\n"
          "\n"
          "  --duration SECONDS  how long to run (default 5; decimals allowed)\n"
          "  --period-ms MS      ping period in milliseconds (default %d)\n"
          "  --record DIR        record each node's event log in DIR (files named after the node\n"
          "                      id; read them with mir-cat)\n"
          "  --help              print this text\n"
          "\n"
          "Exits 0 if both nodes received at least one Pong, 1 otherwise, 2 on bad arguments.\n",
          MIR_PINGPONG_PERIOD_MS_DEFAULT);
}

/* Returns 0 to run, 1 to exit 0 (--help), -1 on a bad argument. */
static int pp_parse(int argc, char **argv, pp_options *o) {
  o->duration_ms = 5000;
  o->period_ms = MIR_PINGPONG_PERIOD_MS_DEFAULT;
  o->record_dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
    bool ok = v != NULL;
    if (strcmp(a, "--duration") == 0) {
      ok = ok && prog_parse_duration(v, &o->duration_ms);
    } else if (strcmp(a, "--period-ms") == 0) {
      ok = ok && prog_parse_u64(v, 1, 3600 * 1000, &o->period_ms);
    } else if (strcmp(a, "--record") == 0) {
      o->record_dir = v;
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "mir-pingpong: bad or incomplete argument '%s'\n", a);
      return -1;
    }
    i++;
  }
  return 0;
}

/* Prints one line per Ping or Pong, on the node's dispatcher thread. */
static void pp_print(void *user_data, const mir_event *ev) {
  const pp_node *pn = user_data;
  if (!mir_event_is(ev, &samples__pingpong__report__descriptor)) return;
  const Samples__Pingpong__Report *r = (const Samples__Pingpong__Report *)ev->payload;
  printf("node %s: %s %" PRIu64 " from %s\n", pn->id,
         r->kind == SAMPLES__PINGPONG__REPORT__KIND__PONG ? "pong" : "ping", r->seq_nr, r->from);
}

static mir_err pp_add_modules(pp_node *pn, const char *peer, mir_local_net *net,
                              const pp_options *o) {
  mir_local_transport *t;
  mir_err err = mir_local_net_transport_new(net, pn->id, &t);
  if (err == MIR_OK)
    err = mir_node_add_module(pn->node, MIR_SAMPLE_NET, &mir_local_transport_ops, t);
  mir_timer *timer;
  if (err == MIR_OK) err = mir_timer_new(NULL, &timer);
  if (err == MIR_OK) err = mir_node_add_module(pn->node, MIR_SAMPLE_TIMER, &mir_timer_ops, timer);
  if (err == MIR_OK) {
    err = mir_pingpong_new(MIR_SAMPLE_PINGPONG, pn->id, peer, MIR_SAMPLE_NET, MIR_SAMPLE_TIMER,
                           o->period_ms, MIR_SAMPLE_APP, &pn->pingpong);
  }
  if (err == MIR_OK) {
    err = mir_node_add_module(pn->node, MIR_SAMPLE_PINGPONG, &mir_dsl_ops, pn->pingpong);
  }
  if (err == MIR_OK) err = mir_collector_new(0, pp_print, pn, &pn->app);
  if (err == MIR_OK)
    err = mir_node_add_module(pn->node, MIR_SAMPLE_APP, &mir_collector_ops, pn->app);
  if (err == MIR_OK && o->record_dir != NULL)
    err = prog_record(pn->node, o->record_dir, pn->id, &pn->rec);
  return err;
}

/* Stops every node and closes the logs; returns false if any of it failed. */
static bool pp_stop(pp_node *nodes) {
  bool ok = true;
  for (size_t i = 0; i < PP_NODES; i++) {
    if (nodes[i].node == NULL) continue;
    mir_err err = mir_node_stop(nodes[i].node);
    if (err != MIR_OK) {
      fprintf(stderr, "node %s failed: %s\n", nodes[i].id, mir_node_last_error(nodes[i].node));
      ok = false;
    }
  }
  for (size_t i = 0; i < PP_NODES; i++) {
    if (nodes[i].rec != NULL && mir_recorder_close(nodes[i].rec) != MIR_OK) {
      fprintf(stderr, "node %s: writing the event log failed\n", nodes[i].id);
      ok = false;
    }
  }
  return ok;
}

/* Prints the summary; returns true if every node received a Pong. */
static bool pp_summary(const pp_node *nodes) {
  bool ok = true;
  for (size_t i = 0; i < PP_NODES; i++) {
    const mir_metrics *m = mir_dsl_metrics(nodes[i].pingpong);
    int64_t pings_sent = mir_metrics_read(m, "mir_pingpong_pings_sent_total", NULL);
    int64_t pings_received = mir_metrics_read(m, "mir_pingpong_pings_received_total", NULL);
    int64_t pongs_received = mir_metrics_read(m, "mir_pingpong_pongs_received_total", NULL);
    printf("node %s: sent %" PRId64 " pings, received %" PRId64 " pings and %" PRId64 " pongs\n",
           nodes[i].id, pings_sent, pings_received, pongs_received);
    ok = ok && pongs_received > 0;
  }
  printf("%s\n", ok ? "mir-pingpong: ok" : "mir-pingpong: FAILED (a node received no pong)");
  return ok;
}

static void pp_free(pp_node *nodes, mir_local_net *net) {
  for (size_t i = 0; i < PP_NODES; i++) {
    mir_node_free(nodes[i].node);
    mir_collector_free(nodes[i].app);
    mir_recorder_free(nodes[i].rec);
  }
  mir_local_net_free(net);
}

static bool pp_run(pp_node *nodes, mir_local_net *net, const pp_options *o) {
  static const char *const ids[PP_NODES] = {"0", "1"};
  mir_err err = MIR_OK;
  for (size_t i = 0; i < PP_NODES && err == MIR_OK; i++) {
    nodes[i].id = ids[i];
    err = mir_node_new(ids[i], NULL, &nodes[i].node);
    if (err == MIR_OK) err = pp_add_modules(&nodes[i], ids[1 - i], net, o);
  }
  mir_node *handles[PP_NODES] = {NULL, NULL};
  for (size_t i = 0; i < PP_NODES && err == MIR_OK; i++) {
    handles[i] = nodes[i].node;
    err = mir_node_start(nodes[i].node);
  }
  if (err != MIR_OK) {
    fprintf(stderr, "mir-pingpong: setup failed: %s: %s\n", mir_strerror(err), mir_error_detail());
    pp_stop(nodes);
    return false;
  }
  mir_err w = prog_wait(handles, PP_NODES, o->duration_ms, NULL, NULL);
  if (w == MIR_ESTOPPED && prog_interrupted()) printf("mir-pingpong: interrupted\n");
  bool ok = pp_stop(nodes);
  return pp_summary(nodes) && ok;
}

int main(int argc, char **argv) {
  pp_options o;
  int p = pp_parse(argc, argv, &o);
  if (p != 0) {
    pp_usage(p > 0 ? stdout : stderr);
    return p > 0 ? 0 : 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  prog_install_signals();
  mir_local_net *net;
  if (mir_local_net_new(NULL, &net) != MIR_OK) return 1;
  pp_node nodes[PP_NODES];
  memset(nodes, 0, sizeof(nodes));
  bool ok = pp_run(nodes, net, &o);
  pp_free(nodes, net);
  return ok ? 0 : 1;
}
