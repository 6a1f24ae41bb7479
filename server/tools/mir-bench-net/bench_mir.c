/*
 * The transport measurement of mir-bench-net: two nodes in this process, each with a gRPC
 * transport ("net"); node 0 runs a source module, node 1 a sink. The source sends mir.TestString
 * messages (payload of msg_bytes bytes) to the sink's node, never more than `window` ahead of the
 * credits the sink returns (one credit message per CREDIT_EVERY messages received, over the
 * reverse stream), so the transport's queues stay below their bound and nothing is dropped. The
 * clock runs from the first send until the sink has received the last message.
 *
 * The source and sink are passive modules; their state belongs to this file (no destroy), and the
 * sink tells the main thread that it is done through a mutex and condition variable (benchmark
 * code, not protocol code).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "mir/alloc.h"
#include "mir/net_grpc.h"
#include "mir/node.h"

#define CREDIT_EVERY 1024

typedef struct src_state {
  uint64_t total, sent, window;
  char *payload;
} src_state;

typedef struct sink_state {
  uint64_t total, received, pending;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
} sink_state;

/* Emits up to n more messages for the sink. */
static void src_send(src_state *s, uint64_t n, mir_event_list *out) {
  const char *dest = "1";
  Mir__TestString m = MIR__TEST_STRING__INIT;
  m.value = s->payload;
  for (uint64_t i = 0; i < n && s->sent < s->total; i++, s->sent++) {
    mir_event_list_push(out, mir_event_send_message("net", "src", &dest, 1, "sink", &m.base));
  }
}

static mir_err src_apply(void *state, mir_event_list *in, mir_event_list *out) {
  src_state *s = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__test_uint64__descriptor)) { /* "go" from main */
      src_send(s, s->window, out);
    } else if (mir_event_is(ev, &mir__message_received__descriptor)) { /* a credit */
      const Mir__MessageReceived *mr = (const Mir__MessageReceived *)ev->payload;
      ProtobufCMessage *credit = NULL;
      if (mir_message_unpack(mr->msg, 0, &credit) != MIR_OK) continue;
      if (credit->descriptor == &mir__test_uint64__descriptor) {
        src_send(s, ((Mir__TestUint64 *)credit)->value, out);
      }
      protobuf_c_message_free_unpacked(credit, NULL);
    }
  }
  return MIR_OK;
}

static mir_err sink_apply(void *state, mir_event_list *in, mir_event_list *out) {
  sink_state *s = state;
  const char *dest = "0";
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (!mir_event_is(ev, &mir__message_received__descriptor)) continue;
    s->received++;
    s->pending++;
    if (s->pending >= CREDIT_EVERY || s->received == s->total) {
      Mir__TestUint64 credit = MIR__TEST_UINT64__INIT;
      credit.value = s->pending;
      mir_event_list_push(out,
                          mir_event_send_message("net", "sink", &dest, 1, "src", &credit.base));
      s->pending = 0;
    }
  }
  if (s->received >= s->total) {
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  return MIR_OK;
}

static const mir_module_ops src_ops = {
    "bench-src", MIR_MODULE_PASSIVE, src_apply, NULL, NULL, NULL, true, NULL};
static const mir_module_ops sink_ops = {
    "bench-sink", MIR_MODULE_PASSIVE, sink_apply, NULL, NULL, NULL, true, NULL};

/* TLS file names of replica i in the mir-keygen --tls layout. */
typedef struct tls_files {
  char ca[512], cert[512], key[512];
} tls_files;

/* Creates node id (0 or 1) with its transport and module; NULL on failure (printed). */
static mir_node *bench_node(const bench_params *p, int id, const char addrs[2][64],
                            const mir_module_ops *ops, void *state, mir_net_grpc **net_out) {
  const char *ids[2] = {"0", "1"};
  mir_net_member members[2] = {{"0", addrs[0]}, {"1", addrs[1]}};
  mir_net_grpc_config cfg;
  mir_net_grpc_config_default(&cfg);
  cfg.own_id = ids[id];
  cfg.listen_addr = addrs[id];
  cfg.members = members;
  cfg.n_members = 2;
  cfg.queue_max_msgs = 2 * p->window + CREDIT_EVERY;
  cfg.queue_max_bytes = (size_t)1 << 32;
  tls_files tf;
  if (p->tls_dir != NULL) {
    snprintf(tf.ca, sizeof tf.ca, "%s/ca.pem", p->tls_dir);
    snprintf(tf.cert, sizeof tf.cert, "%s/replica-%d.crt", p->tls_dir, id);
    snprintf(tf.key, sizeof tf.key, "%s/replica-%d.tls.key", p->tls_dir, id);
    cfg.tls_ca_file = tf.ca;
    cfg.tls_cert_file = tf.cert;
    cfg.tls_key_file = tf.key;
  } else {
    cfg.insecure = true;
  }
  mir_node *node = NULL;
  if (mir_net_grpc_new(&cfg, net_out) != MIR_OK) {
    fprintf(stderr, "mir-bench-net: transport %d: %s\n", id, mir_error_detail());
    return NULL;
  }
  if (mir_node_new(ids[id], NULL, &node) != MIR_OK ||
      mir_node_add_module(node, "net", &mir_net_grpc_ops, *net_out) != MIR_OK ||
      mir_node_add_module(node, id == 0 ? "src" : "sink", ops, state) != MIR_OK ||
      mir_node_start(node) != MIR_OK) {
    fprintf(stderr, "mir-bench-net: node %d: %s\n", id, mir_error_detail());
    mir_node_free(node);
    return NULL;
  }
  return node;
}

/* Waits (bounded by timeout_ms) until both streams are open. */
static bool bench_connected(mir_net_grpc *a, mir_net_grpc *b, uint64_t timeout_ms) {
  double end = bench_now() + (double)timeout_ms / 1000.0;
  while (bench_now() < end) {
    if (mir_metrics_read(mir_net_grpc_metrics(a), "mir_net_connected", "1") > 0 &&
        mir_metrics_read(mir_net_grpc_metrics(b), "mir_net_connected", "0") > 0) {
      return true;
    }
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  }
  return false;
}

/* Waits until the sink is done or the deadline (bench_now seconds) passes. */
static bool bench_wait_sink(sink_state *sink, double end) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double left = end - bench_now();
  ts.tv_sec += (time_t)left;
  ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&sink->mu);
  while (!sink->done) {
    if (pthread_cond_timedwait(&sink->cv, &sink->mu, &ts) != 0) break;
  }
  bool done = sink->done;
  pthread_mutex_unlock(&sink->mu);
  return done;
}

/* Starts both nodes and runs one measurement; the nodes are freed by the caller. */
static bool bench_mir_run(const bench_params *p, mir_node *nodes[2], src_state *src,
                          sink_state *sink, bench_result *r) {
  char addrs[2][64];
  snprintf(addrs[0], sizeof addrs[0], "127.0.0.1:%d", bench_free_port());
  snprintf(addrs[1], sizeof addrs[1], "127.0.0.1:%d", bench_free_port());
  mir_net_grpc *nets[2] = {NULL, NULL};
  nodes[0] = bench_node(p, 0, addrs, &src_ops, src, &nets[0]);
  nodes[1] = nodes[0] ? bench_node(p, 1, addrs, &sink_ops, sink, &nets[1]) : NULL;
  if (nodes[1] == NULL || !bench_connected(nets[0], nets[1], 10000)) {
    fprintf(stderr, "mir-bench-net: the two transports did not connect\n");
    return false;
  }
  double t0 = bench_now(), c0 = bench_cpu();
  mir_event_list go = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&go, mir_event_test_uint64("src", NULL, 1));
  mir_node_inject(nodes[0], &go);
  if (!bench_wait_sink(sink, t0 + (double)p->timeout_ms / 1000.0)) {
    fprintf(stderr, "mir-bench-net: transport run timed out\n");
    return false;
  }
  r->seconds = bench_now() - t0;
  r->cpu_seconds = bench_cpu() - c0;
  r->msgs = sink->received;
  r->frames =
      (uint64_t)mir_metrics_read(mir_net_grpc_metrics(nets[0]), "mir_net_frames_sent_total", "1");
  return true;
}

bool bench_mir(const bench_params *p, bench_result *r) {
  src_state src = {.total = p->count, .window = p->window};
  src.payload = mir_xmalloc(p->msg_bytes + 1);
  memset(src.payload, 'x', p->msg_bytes);
  src.payload[p->msg_bytes] = '\0';
  sink_state sink = {.total = p->count};
  pthread_mutex_init(&sink.mu, NULL);
  pthread_cond_init(&sink.cv, NULL);
  mir_node *nodes[2] = {NULL, NULL};
  bool ok = bench_mir_run(p, nodes, &src, &sink, r);
  mir_node_free(nodes[0]);
  mir_node_free(nodes[1]);
  pthread_mutex_destroy(&sink.mu);
  pthread_cond_destroy(&sink.cv);
  free(src.payload);
  return ok;
}
