/*
 * bcb: Byzantine consistent broadcast among four nodes, "0" to "3", in one process over the
 * in-process transport. Leader "0" broadcasts the --value string; every node prints what it
 * delivered.
 *
 * Each node has the modules of mir_sample_add_modules(node, "bcb", id) (the test signer "crypto"
 * and the BCB module "bcb"), plus "net" (mir/net_local.h) and "app", a collector whose callback
 * prints the delivery. With --record DIR every node records its event log in DIR with its node id
 * as the file prefix. The run ends when every node delivered, after --duration seconds, or on
 * Ctrl-C; the program exits 0 if every node delivered the broadcast value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/net_local.h"
#include "prog_common.h"
#include "samples.h"

#define BCB_NODES MIR_SAMPLE_BCB_NODES
#define BCB_VALUE_DEFAULT "Hello from the leader"

typedef struct bcb_options {
  uint64_t duration_ms;
  const char *value;
  const char *record_dir;
} bcb_options;

typedef struct bcb_node {
  const char *id;
  mir_node *node;
  mir_collector *app;
  mir_recorder *rec;
} bcb_node;

static void bcb_usage(FILE *f) {
  fprintf(f,
          "usage: bcb [--value STR] [--duration SECONDS] [--record DIR]\n"
          "\n"
          "Runs the Byzantine consistent broadcast sample: nodes 0 to 3 in this process, node 0\n"
          "broadcasts a value, every node prints what it delivered.\n"
          "\n"
          "  --value STR         the value node 0 broadcasts (default \"%s\")\n"
          "  --duration SECONDS  give up after this long (default 10; decimals allowed)\n"
          "  --record DIR        record each node's event log in DIR (files named after the node\n"
          "                      id; read them with mir-cat)\n"
          "  --help              print this text\n"
          "\n"
          "Exits 0 if every node delivered the value, 1 otherwise, 2 on bad arguments.\n",
          BCB_VALUE_DEFAULT);
}

/* Returns 0 to run, 1 to exit 0 (--help), -1 on a bad argument. */
static int bcb_parse(int argc, char **argv, bcb_options *o) {
  o->duration_ms = 10000;
  o->value = BCB_VALUE_DEFAULT;
  o->record_dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
    bool ok = v != NULL;
    if (strcmp(a, "--duration") == 0) {
      ok = ok && prog_parse_duration(v, &o->duration_ms);
    } else if (strcmp(a, "--value") == 0) {
      o->value = v;
      ok = ok && strlen(v) <= MIR_BCB_DATA_BYTES_MAX;
    } else if (strcmp(a, "--record") == 0) {
      o->record_dir = v;
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "bcb: bad or incomplete argument '%s'\n", a);
      return -1;
    }
    i++;
  }
  return 0;
}

/* Prints a delivery, on the node's dispatcher thread. */
static void bcb_print(void *user_data, const mir_event *ev) {
  const bcb_node *bn = user_data;
  if (!mir_event_is(ev, &samples__bcb__deliver__descriptor)) return;
  const Samples__Bcb__Deliver *d = (const Samples__Bcb__Deliver *)ev->payload;
  printf("node %s delivered: %.*s\n", bn->id, (int)d->data.len, (const char *)d->data.data);
}

static mir_err bcb_add_modules(bcb_node *bn, mir_local_net *net, const bcb_options *o) {
  mir_local_transport *t;
  mir_err err = mir_local_net_transport_new(net, bn->id, &t);
  if (err == MIR_OK)
    err = mir_node_add_module(bn->node, MIR_SAMPLE_NET, &mir_local_transport_ops, t);
  if (err == MIR_OK) err = mir_sample_add_modules(bn->node, "bcb", bn->id);
  if (err == MIR_OK) err = mir_collector_new(0, bcb_print, bn, &bn->app);
  if (err == MIR_OK)
    err = mir_node_add_module(bn->node, MIR_SAMPLE_APP, &mir_collector_ops, bn->app);
  if (err == MIR_OK && o->record_dir != NULL)
    err = prog_record(bn->node, o->record_dir, bn->id, &bn->rec);
  return err;
}

static bool bcb_all_delivered(void *user) {
  const bcb_node *nodes = user;
  for (size_t i = 0; i < BCB_NODES; i++) {
    if (mir_collector_count(nodes[i].app, &samples__bcb__deliver__descriptor) == 0) return false;
  }
  return true;
}

/* Stops every node and closes the logs; returns false if any of it failed. */
static bool bcb_stop(bcb_node *nodes) {
  bool ok = true;
  for (size_t i = 0; i < BCB_NODES; i++) {
    if (nodes[i].node != NULL && mir_node_stop(nodes[i].node) != MIR_OK) {
      fprintf(stderr, "node %s failed: %s\n", nodes[i].id, mir_node_last_error(nodes[i].node));
      ok = false;
    }
  }
  for (size_t i = 0; i < BCB_NODES; i++) {
    if (nodes[i].rec != NULL && mir_recorder_close(nodes[i].rec) != MIR_OK) {
      fprintf(stderr, "node %s: writing the event log failed\n", nodes[i].id);
      ok = false;
    }
  }
  return ok;
}

/* Prints what each node delivered; returns true if every node delivered exactly the value. */
static bool bcb_summary(const bcb_node *nodes, const char *value) {
  bool ok = true;
  size_t len = strlen(value);
  for (size_t i = 0; i < BCB_NODES; i++) {
    Samples__Bcb__Deliver *d = (Samples__Bcb__Deliver *)mir_collector_get(
        nodes[i].app, &samples__bcb__deliver__descriptor, 0, NULL);
    bool same =
        d != NULL && d->data.len == len && (len == 0 || memcmp(d->data.data, value, len) == 0);
    printf("node %s: %s\n", nodes[i].id,
           d == NULL ? "delivered nothing"
           : same    ? "delivered the value"
                     : "delivered ANOTHER value");
    ok = ok && same && mir_collector_count(nodes[i].app, &samples__bcb__deliver__descriptor) == 1;
    if (d != NULL) protobuf_c_message_free_unpacked(&d->base, NULL);
  }
  printf("%s\n", ok ? "bcb: ok (every node delivered the value)" : "bcb: FAILED");
  return ok;
}

static bool bcb_run(bcb_node *nodes, mir_local_net *net, const bcb_options *o) {
  static const char *const ids[BCB_NODES] = {"0", "1", "2", "3"};
  mir_err err = MIR_OK;
  mir_node *handles[BCB_NODES] = {NULL};
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK; i++) {
    nodes[i].id = ids[i];
    err = mir_node_new(ids[i], NULL, &nodes[i].node);
    handles[i] = nodes[i].node;
    if (err == MIR_OK) err = bcb_add_modules(&nodes[i], net, o);
  }
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK; i++) err = mir_node_start(nodes[i].node);
  if (err == MIR_OK) {
    mir_event_list req = MIR_EVENT_LIST_INIT;
    mir_event_list_push(
        &req, mir_bcb_broadcast_request(MIR_SAMPLE_BCB, NULL, o->value, strlen(o->value)));
    err = mir_node_inject(nodes[0].node, &req);
  }
  if (err != MIR_OK) {
    fprintf(stderr, "bcb: setup failed: %s: %s\n", mir_strerror(err), mir_error_detail());
    bcb_stop(nodes);
    return false;
  }
  printf("node 0 broadcasts: %s\n", o->value);
  mir_err w = prog_wait(handles, BCB_NODES, o->duration_ms, bcb_all_delivered, nodes);
  if (w == MIR_ETIMEDOUT) printf("bcb: time is up\n");
  if (w == MIR_ESTOPPED && prog_interrupted()) printf("bcb: interrupted\n");
  bool ok = bcb_stop(nodes);
  return bcb_summary(nodes, o->value) && ok;
}

int main(int argc, char **argv) {
  bcb_options o;
  int p = bcb_parse(argc, argv, &o);
  if (p != 0) {
    bcb_usage(p > 0 ? stdout : stderr);
    return p > 0 ? 0 : 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  prog_install_signals();
  mir_local_net *net;
  if (mir_local_net_new(NULL, &net) != MIR_OK) return 1;
  bcb_node nodes[BCB_NODES];
  memset(nodes, 0, sizeof(nodes));
  bool ok = bcb_run(nodes, net, &o);
  for (size_t i = 0; i < BCB_NODES; i++) {
    mir_node_free(nodes[i].node);
    mir_collector_free(nodes[i].app);
    mir_recorder_free(nodes[i].rec);
  }
  mir_local_net_free(net);
  return ok ? 0 : 1;
}
