/*
 * The baseline of mir-bench-net: the least a gRPC C core program does to move the same messages.
 * A server (one completion queue, one thread) accepts one client-streaming call and counts the
 * messages it reads, one RECV_MESSAGE at a time; the client (this thread, its own completion
 * queue) sends `count` raw byte messages of msg_bytes bytes, one SEND_MESSAGE in flight, each
 * wrapping the same reference-counted slice (no copy, no encoding). With `hint`, every message but
 * the last carries GRPC_WRITE_BUFFER_HINT. Same channel arguments as the transport where they
 * matter (local subchannel pool; TLS with the same certificates when asked).
 *
 * Tags are small integers cast to pointers: there is one call on each side.
 */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define RAW_METHOD "/bench.Raw/Stream"

enum { T_NEW = 1, T_IMD, T_CLOSE, T_RECV, T_STATUS, T_SHUTDOWN, T_SEND, T_CSTATUS };
#define TAG(t) ((void *)(intptr_t)(t))

typedef struct raw_server {
  grpc_server *srv;
  grpc_completion_queue *cq;
  void *method;
  pthread_t thread;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *bb;
  int cancelled;
  uint64_t want;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t got; /* under mu */
} raw_server;

static void raw_batch(grpc_call *call, grpc_op_type type, void *data_ptr, void *tag) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = type;
  if (type == GRPC_OP_RECV_MESSAGE) op.data.recv_message.recv_message = data_ptr;
  if (type == GRPC_OP_RECV_CLOSE_ON_SERVER) op.data.recv_close_on_server.cancelled = data_ptr;
  if (type == GRPC_OP_SEND_STATUS_FROM_SERVER) op.data.send_status_from_server.status = 0;
  if (grpc_call_start_batch(call, &op, 1, tag, NULL) != GRPC_CALL_OK) abort();
}

/* Handles one server event; returns the number of batches it started minus the one that ended. */
static int raw_server_event(raw_server *s, intptr_t tag, bool ok) {
  switch (tag) {
    case T_NEW:
      if (!ok) return -1;
      raw_batch(s->call, GRPC_OP_SEND_INITIAL_METADATA, NULL, TAG(T_IMD));
      raw_batch(s->call, GRPC_OP_RECV_CLOSE_ON_SERVER, &s->cancelled, TAG(T_CLOSE));
      raw_batch(s->call, GRPC_OP_RECV_MESSAGE, &s->bb, TAG(T_RECV));
      return 2;
    case T_RECV:
      if (s->bb == NULL) { /* half-close (or failure): answer and stop reading */
        raw_batch(s->call, GRPC_OP_SEND_STATUS_FROM_SERVER, NULL, TAG(T_STATUS));
        return 0;
      }
      grpc_byte_buffer_destroy(s->bb);
      s->bb = NULL;
      pthread_mutex_lock(&s->mu);
      if (++s->got == s->want) pthread_cond_signal(&s->cv);
      pthread_mutex_unlock(&s->mu);
      raw_batch(s->call, GRPC_OP_RECV_MESSAGE, &s->bb, TAG(T_RECV));
      return 0;
    default:
      return -1;
  }
}

static void *raw_server_main(void *arg) {
  raw_server *s = arg;
  int pending = 1; /* the call request */
  bool shutdown_seen = false;
  while (pending > 0 || !shutdown_seen) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) break;
    if ((intptr_t)ev.tag == T_SHUTDOWN) {
      shutdown_seen = true;
      continue;
    }
    pending += raw_server_event(s, (intptr_t)ev.tag, ev.success != 0);
  }
  if (s->call != NULL) grpc_call_unref(s->call);
  return NULL;
}

/* Server credentials: TLS with replica 1's certificate, or plaintext. NULL on failure. */
static grpc_server_credentials *raw_server_creds(const bench_params *p) {
  if (p->tls_dir == NULL) return grpc_insecure_server_credentials_create();
  char *ca = bench_read_file(p->tls_dir, "ca.pem");
  char *cert = bench_read_file(p->tls_dir, "replica-1.crt");
  char *key = bench_read_file(p->tls_dir, "replica-1.tls.key");
  grpc_server_credentials *c = NULL;
  if (ca && cert && key) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    c = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
  }
  free(ca);
  free(cert);
  free(key);
  return c;
}

static grpc_channel_credentials *raw_channel_creds(const bench_params *p) {
  if (p->tls_dir == NULL) return grpc_insecure_credentials_create();
  char *ca = bench_read_file(p->tls_dir, "ca.pem");
  char *cert = bench_read_file(p->tls_dir, "replica-0.crt");
  char *key = bench_read_file(p->tls_dir, "replica-0.tls.key");
  grpc_channel_credentials *c = NULL;
  if (ca && cert && key) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    c = grpc_ssl_credentials_create(ca, &pair, NULL, NULL);
  }
  free(ca);
  free(cert);
  free(key);
  return c;
}

/* Creates, binds and starts the server and its thread; the port is returned, 0 on failure. */
static int raw_server_start(raw_server *s, const bench_params *p) {
  grpc_arg a = {GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = 64 << 20}};
  grpc_channel_args args = {1, &a};
  s->srv = grpc_server_create(&args, NULL);
  s->method = grpc_server_register_method(s->srv, RAW_METHOD, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->srv, s->cq, NULL);
  grpc_server_credentials *creds = raw_server_creds(p);
  int port = creds ? grpc_server_add_http2_port(s->srv, "127.0.0.1:0", creds) : 0;
  if (creds) grpc_server_credentials_release(creds);
  grpc_server_start(s->srv);
  grpc_metadata_array_init(&s->md);
  grpc_server_request_registered_call(s->srv, s->method, &s->call, &s->deadline, &s->md, NULL,
                                      s->cq, s->cq, TAG(T_NEW));
  pthread_create(&s->thread, NULL, raw_server_main, s);
  return port;
}

static void raw_server_stop(raw_server *s) {
  grpc_server_shutdown_and_notify(s->srv, s->cq, TAG(T_SHUTDOWN));
  grpc_server_cancel_all_calls(s->srv);
  pthread_join(s->thread, NULL);
  grpc_server_destroy(s->srv);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(s->cq);
  grpc_metadata_array_destroy(&s->md);
}

/* Waits for one event on the client queue; returns its tag (0 on timeout). */
static intptr_t raw_next(grpc_completion_queue *cq, double end, bool *ok) {
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis((int64_t)((end - bench_now()) * 1000.0), GPR_TIMESPAN));
  grpc_event ev = grpc_completion_queue_next(cq, dl, NULL);
  *ok = ev.success != 0;
  return ev.type == GRPC_OP_COMPLETE ? (intptr_t)ev.tag : 0;
}

/* Sends count messages on call, one in flight. False on a failed send or timeout. */
static bool raw_send_all(const bench_params *p, bool hint, grpc_call *call,
                         grpc_completion_queue *cq, double end) {
  grpc_slice payload = grpc_slice_malloc(p->msg_bytes);
  memset(GRPC_SLICE_START_PTR(payload), 'x', p->msg_bytes);
  bool ok = true;
  for (uint64_t i = 0; i < p->count && ok; i++) {
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&payload, 1);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (i == 0) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    if (hint && i + 1 < p->count) ops[n].flags = GRPC_WRITE_BUFFER_HINT;
    n++;
    if (grpc_call_start_batch(call, ops, n, TAG(T_SEND), NULL) != GRPC_CALL_OK) abort();
    intptr_t t;
    while ((t = raw_next(cq, end, &ok)) != T_SEND) {
      if (t == 0) {
        ok = false;
        break;
      }
    }
    grpc_byte_buffer_destroy(bb);
  }
  grpc_slice_unref(payload);
  return ok;
}

/* Waits until the server counted every message or end passes. */
static bool raw_wait_server(raw_server *s, double end) {
  pthread_mutex_lock(&s->mu);
  while (s->got < s->want && bench_now() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000L; /* re-check the deadline every 100 ms */
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  bool done = s->got >= s->want;
  pthread_mutex_unlock(&s->mu);
  return done;
}

/* Runs the client against the server at port and times it. */
static bool raw_client(const bench_params *p, bool hint, int port, raw_server *s, bench_result *r) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  grpc_arg a[2] = {
      {GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}},
      {GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = "mir:replica:1"}}};
  grpc_channel_args args = {p->tls_dir ? 2 : 1, a};
  grpc_channel_credentials *creds = raw_channel_creds(p);
  if (creds == NULL) return false;
  grpc_channel *ch = grpc_channel_create(target, creds, &args);
  grpc_channel_credentials_release(creds);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  double end = bench_now() + (double)p->timeout_ms / 1000.0;
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                             grpc_slice_from_static_string(RAW_METHOD), NULL,
                                             gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_metadata_array trailing;
  grpc_metadata_array_init(&trailing);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.status = &status;
  op.data.recv_status_on_client.status_details = &details;
  op.data.recv_status_on_client.trailing_metadata = &trailing;
  grpc_call_start_batch(call, &op, 1, TAG(T_CSTATUS), NULL);
  double t0 = bench_now(), c0 = bench_cpu();
  bool ok = raw_send_all(p, hint, call, cq, end) && raw_wait_server(s, end);
  r->seconds = bench_now() - t0;
  r->cpu_seconds = bench_cpu() - c0;
  r->msgs = r->frames = s->got;
  grpc_call_cancel(call, NULL);
  bool done;
  while (raw_next(cq, end + 10.0, &done) != T_CSTATUS) {
  }
  grpc_call_unref(call);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&trailing);
  grpc_channel_destroy(ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return ok;
}

bool bench_raw(const bench_params *p, bool hint, bench_result *r) {
  raw_server s;
  memset(&s, 0, sizeof s);
  s.want = p->count;
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  grpc_init();
  int port = raw_server_start(&s, p);
  bool ok = port > 0 && raw_client(p, hint, port, &s, r);
  if (port <= 0) fprintf(stderr, "mir-bench-net: raw server could not listen\n");
  raw_server_stop(&s);
  grpc_shutdown();
  pthread_mutex_destroy(&s.mu);
  pthread_cond_destroy(&s.cv);
  return ok;
}
