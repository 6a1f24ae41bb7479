/*
 * mir-bcb: Byzantine consistent broadcast among four nodes, "0" to "3", in one process. Leader "0"
 * broadcasts the --value string; every node prints what it delivered.
 *
 * Two modes:
 *  - in-process (the default): each node has the modules of mir_sample_add_modules(node, "bcb",
 *    id) (the keyless, NOT secure test signer "crypto" and the BCB module "bcb") and "net", the
 *    in-process transport (mir/net_local.h);
 *  - --grpc (builds with gRPC only): each node has the Ed25519 crypto module "crypto", the gRPC
 *    transport "net" on 127.0.0.1 and the same BCB module (bcb_grpc.h). The keys are generated
 *    for the run and the key sets built from a membership of the four public keys; the ports are
 *    chosen free (again, a few times, if one is taken meanwhile) or are --base-port to
 *    --base-port + 3. With --tls the transports use mutual TLS with certificates of a throwaway
 *    CA, written to a private temporary directory that is removed once the transports read them;
 *    without it they run in plaintext.
 * Every node also has "app", a collector whose callback prints the delivery. With --record DIR
 * every node records its event log in DIR with its node id as the file prefix (mir-cat --replay
 * bcb rebuilds the in-process wiring, so it reproduces only in-process recordings). The run ends
 * when every node delivered, after --duration seconds, or on Ctrl-C; the program exits 0 if every
 * node delivered the broadcast value.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/log.h"
#include "mir/net_local.h"
#include "prog_common.h"
#include "samples.h"
#ifdef MIR_BCB_GRPC
#include "bcb_grpc.h"
#endif

#define BCB_NODES MIR_SAMPLE_BCB_NODES
#define BCB_VALUE_DEFAULT "Hello from the leader"
#define BCB_PORT_MAX (65535 - BCB_NODES + 1) /* --base-port + 3 must be a port */
#define BCB_GRPC_ATTEMPTS 5                  /* sets of free ports tried before giving up */

static const char *const bcb_ids[BCB_NODES] = {"0", "1", "2", "3"};

typedef struct bcb_options {
  uint64_t duration_ms;
  const char *value;
  const char *record_dir;
  bool grpc;          /* gRPC transport and Ed25519 instead of in-process and the test signer */
  bool tls;           /* with grpc: mutual TLS instead of plaintext */
  uint64_t base_port; /* with grpc: ports base_port .. base_port + 3; 0: free ports */
} bcb_options;

typedef struct bcb_node {
  const char *id;
  mir_node *node;
  mir_collector *app;
  mir_recorder *rec;
} bcb_node;

static void bcb_usage(FILE *f) {
  fprintf(f,
          "usage: mir-bcb [--value STR] [--duration SECONDS] [--record DIR]\n"
          "           [--grpc [--tls] [--base-port PORT]]\n"
          "\n"
          "Runs the Byzantine consistent broadcast sample: nodes 0 to 3 in this process, node 0\n"
          "broadcasts a value, every node prints what it delivered. By default the nodes talk\n"
          "through the in-process transport and sign with the keyless test signer (NOT secure).\n"
          "\n"
          "  --value STR         the value node 0 broadcasts (default \"%s\")\n"
          "  --duration SECONDS  give up after this long (default 10; decimals allowed)\n"
          "  --record DIR        record each node's event log in DIR (files named after the node\n"
          "                      id; read them with mir-cat)\n"
          "  --grpc              run each node with the gRPC transport on 127.0.0.1 and the\n"
          "                      Ed25519 crypto module, with keys generated for this run%s\n"
          "  --tls               with --grpc: mutual TLS between the nodes (certificates of a\n"
          "                      throwaway CA) instead of plaintext\n"
          "  --base-port PORT    with --grpc: listen on PORT to PORT+3 (default: free ports)\n"
          "  --help              print this text\n"
          "\n"
          "Exits 0 if every node delivered the value, 1 otherwise, 2 on bad arguments.\n",
          BCB_VALUE_DEFAULT,
#ifdef MIR_BCB_GRPC
          ""
#else
          "\n                      (not in this build: it has no gRPC)"
#endif
  );
}

/* Checks the flags that only make sense with --grpc, and --grpc itself in a build without gRPC.
 * Returns 0 or -1 as bcb_parse. */
static int bcb_check_mode(const bcb_options *o) {
  if (!o->grpc && (o->tls || o->base_port != 0)) {
    fprintf(stderr, "mir-bcb: --tls and --base-port need --grpc\n");
    return -1;
  }
#ifndef MIR_BCB_GRPC
  if (o->grpc) {
    fprintf(stderr, "mir-bcb: --grpc is not available: this build has no gRPC (libgrpc-dev)\n");
    return -1;
  }
#endif
  return 0;
}

/* Returns 0 to run, 1 to exit 0 (--help), -1 on a bad argument. */
static int bcb_parse(int argc, char **argv, bcb_options *o) {
  memset(o, 0, sizeof(*o));
  o->duration_ms = 10000;
  o->value = BCB_VALUE_DEFAULT;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
    if (strcmp(a, "--grpc") == 0) {
      o->grpc = true;
      continue;
    }
    if (strcmp(a, "--tls") == 0) {
      o->tls = true;
      continue;
    }
    bool ok = v != NULL;
    if (strcmp(a, "--duration") == 0) {
      ok = ok && prog_parse_duration(v, &o->duration_ms);
    } else if (strcmp(a, "--value") == 0) {
      o->value = v;
      ok = ok && strlen(v) <= MIR_BCB_DATA_BYTES_MAX;
    } else if (strcmp(a, "--record") == 0) {
      o->record_dir = v;
    } else if (strcmp(a, "--base-port") == 0) {
      ok = ok && prog_parse_u64(v, 1, BCB_PORT_MAX, &o->base_port);
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "mir-bcb: bad or incomplete argument '%s'\n", a);
      return -1;
    }
    i++;
  }
  return bcb_check_mode(o);
}

/* Prints a delivery, on the node's dispatcher thread. */
static void bcb_print(void *user_data, const mir_event *ev) {
  const bcb_node *bn = user_data;
  if (!mir_event_is(ev, &samples__bcb__deliver__descriptor)) return;
  const Samples__Bcb__Deliver *d = (const Samples__Bcb__Deliver *)ev->payload;
  printf("node %s delivered: %.*s\n", bn->id, (int)d->data.len, (const char *)d->data.data);
}

/* Creates node bn->id with the collector "app"; the caller adds the other modules. */
static mir_err bcb_node_new(bcb_node *bn, const char *id) {
  bn->id = id;
  mir_err err = mir_node_new(id, NULL, &bn->node);
  if (err == MIR_OK) err = mir_collector_new(0, bcb_print, bn, &bn->app);
  if (err == MIR_OK)
    err = mir_node_add_module(bn->node, MIR_SAMPLE_APP, &mir_collector_ops, bn->app);
  return err;
}

/* The in-process wiring: the shared transport's endpoint "net", the test signer and BCB. */
static mir_err bcb_add_local(bcb_node *bn, mir_local_net *net) {
  mir_local_transport *t;
  mir_err err = mir_local_net_transport_new(net, bn->id, &t);
  if (err == MIR_OK)
    err = mir_node_add_module(bn->node, MIR_SAMPLE_NET, &mir_local_transport_ops, t);
  if (err == MIR_OK) err = mir_sample_add_modules(bn->node, "bcb", bn->id);
  return err;
}

/* Frees every node and what it kept, leaving the array zeroed. */
static void bcb_free_nodes(bcb_node *nodes) {
  for (size_t i = 0; i < BCB_NODES; i++) {
    mir_node_free(nodes[i].node);
    mir_collector_free(nodes[i].app);
    mir_recorder_free(nodes[i].rec);
  }
  memset(nodes, 0, BCB_NODES * sizeof(*nodes));
}

#ifdef MIR_BCB_GRPC
/* Makes a fresh Ed25519 key for every node and the membership listing their public keys at
 * 127.0.0.1 on ports. keys[i] are owned by the caller (free with mir_private_key_free). */
static mir_err bcb_grpc_keys(const uint16_t *ports, mir_private_key **keys, mir_membership **m) {
  mir_public_key *pubs[BCB_NODES] = {NULL};
  mir_err err = MIR_OK;
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK; i++) {
    err = mir_private_key_generate(MIR_SIG_ED25519, &keys[i]);
    if (err == MIR_OK) pubs[i] = mir_private_key_public(keys[i]);
  }
  if (err == MIR_OK)
    err = mir_bcb_grpc_membership_new((const mir_public_key *const *)pubs, ports, m);
  for (size_t i = 0; i < BCB_NODES; i++) mir_public_key_free(pubs[i]);
  return err;
}

/* One try at the gRPC wiring of every node on one set of ports (printed on success). */
static mir_err bcb_grpc_attempt(bcb_node *nodes, const bcb_options *o, const char *tls_dir) {
  uint16_t ports[BCB_NODES];
  mir_err err = MIR_OK;
  for (size_t i = 0; i < BCB_NODES; i++) ports[i] = (uint16_t)(o->base_port + i);
  if (o->base_port == 0) err = mir_bcb_grpc_free_ports(ports, BCB_NODES);
  mir_private_key *keys[BCB_NODES] = {NULL};
  mir_membership *m = NULL;
  if (err == MIR_OK) err = bcb_grpc_keys(ports, keys, &m);
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK; i++) {
    mir_keyset *ks = NULL;
    err = bcb_node_new(&nodes[i], bcb_ids[i]);
    if (err == MIR_OK) {
      /* Checks that the node's key is the one the membership lists; takes it, also on failure. */
      err = mir_keyset_from_membership(m, bcb_ids[i], keys[i], &ks);
      keys[i] = NULL;
    }
    mir_bcb_grpc_node_config nc = {
        .node_id = bcb_ids[i], .membership = m, .keys = ks, .tls_dir = tls_dir};
    if (err == MIR_OK) err = mir_bcb_grpc_add_modules(nodes[i].node, &nc, NULL);
  }
  for (size_t i = 0; i < BCB_NODES; i++) mir_private_key_free(keys[i]);
  mir_membership_free(m);
  if (err == MIR_OK) {
    printf("mir-bcb: gRPC on " MIR_BCB_GRPC_HOST " ports %u %u %u %u (%s), Ed25519 signatures\n",
           ports[0], ports[1], ports[2], ports[3], tls_dir != NULL ? "mutual TLS" : "plaintext");
  }
  return err;
}

/* Makes a private temporary directory (mode 0700) holding the run's TLS material. */
static mir_err bcb_tls_dir(char *dir, size_t cap) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, cap, "%s/mir-bcb-tls-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) {
    return mir_error_set(MIR_EIO, "mir-bcb: cannot make a directory %s for TLS files", dir);
  }
  mir_err err = mir_bcb_grpc_tls_write(dir);
  if (err != MIR_OK) mir_bcb_grpc_tls_remove(dir);
  return err;
}

/* The gRPC wiring, with fresh free ports again when one was taken between choosing and binding.
 * The TLS files are gone once this returns: the transports read them when they are created. */
static mir_err bcb_setup_grpc(bcb_node *nodes, const bcb_options *o) {
  char tls_dir[PATH_MAX] = "";
  mir_err err = o->tls ? bcb_tls_dir(tls_dir, sizeof tls_dir) : MIR_OK;
  for (int attempt = 1; err == MIR_OK; attempt++) {
    err = bcb_grpc_attempt(nodes, o, o->tls ? tls_dir : NULL);
    if (err != MIR_EIO || o->base_port != 0 || attempt == BCB_GRPC_ATTEMPTS) break;
    bcb_free_nodes(nodes);
    err = MIR_OK;
  }
  if (tls_dir[0] != '\0') mir_bcb_grpc_tls_remove(tls_dir);
  return err;
}
#endif

/* Creates every node with the modules of the chosen mode (net is NULL with --grpc), then the
 * recorders. */
static mir_err bcb_setup(bcb_node *nodes, mir_local_net *net, const bcb_options *o) {
  mir_err err = MIR_OK;
#ifdef MIR_BCB_GRPC
  if (o->grpc) err = bcb_setup_grpc(nodes, o);
#endif
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK && !o->grpc; i++) {
    err = bcb_node_new(&nodes[i], bcb_ids[i]);
    if (err == MIR_OK) err = bcb_add_local(&nodes[i], net);
  }
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK && o->record_dir != NULL; i++) {
    err = prog_record(nodes[i].node, o->record_dir, nodes[i].id, &nodes[i].rec);
  }
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
  printf("%s\n", ok ? "mir-bcb: ok (every node delivered the value)" : "mir-bcb: FAILED");
  return ok;
}

static bool bcb_run(bcb_node *nodes, mir_local_net *net, const bcb_options *o) {
  mir_err err = bcb_setup(nodes, net, o);
  mir_node *handles[BCB_NODES] = {NULL};
  for (size_t i = 0; i < BCB_NODES; i++) handles[i] = nodes[i].node;
  for (size_t i = 0; i < BCB_NODES && err == MIR_OK; i++) err = mir_node_start(nodes[i].node);
  if (err == MIR_OK) {
    mir_event_list req = MIR_EVENT_LIST_INIT;
    mir_event_list_push(
        &req, mir_bcb_broadcast_request(MIR_SAMPLE_BCB, NULL, o->value, strlen(o->value)));
    err = mir_node_inject(nodes[0].node, &req);
  }
  if (err != MIR_OK) {
    fprintf(stderr, "mir-bcb: setup failed: %s: %s\n", mir_strerror(err), mir_error_detail());
    bcb_stop(nodes);
    return false;
  }
  printf("node 0 broadcasts: %s\n", o->value);
  mir_err w = prog_wait(handles, BCB_NODES, o->duration_ms, bcb_all_delivered, nodes);
  if (w == MIR_ETIMEDOUT) printf("mir-bcb: time is up\n");
  if (w == MIR_ESTOPPED && prog_interrupted()) printf("mir-bcb: interrupted\n");
  /* The nodes stop one after another, so over gRPC the peers of the first ones log that their
   * streams closed; expected at the end of every run, such warnings would read like a failure. */
  mir_log_level level = mir_log_get_level();
  if (o->grpc && level >= MIR_LOG_INFO && level < MIR_LOG_ERROR) mir_log_set_level(MIR_LOG_ERROR);
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
  mir_local_net *net = NULL;
  if (!o.grpc && mir_local_net_new(NULL, &net) != MIR_OK) return 1;
  bcb_node nodes[BCB_NODES];
  memset(nodes, 0, sizeof(nodes));
  bool ok = bcb_run(nodes, net, &o);
  bcb_free_nodes(nodes);
  mir_local_net_free(net);
  return ok ? 0 : 1;
}
