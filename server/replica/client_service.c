/*
 * The client service (client_service.h): the gRPC server, its threads and shutdown, the Status
 * method, the catch-all for unknown methods, and the node module.
 *
 * Threads: cq_submit carries the Submit method (its thread may block in the node's inbox, which is
 * how backpressure reaches clients, so nothing else shares it); cq_main carries Subscribe, Status
 * and unknown methods; the feeder thread (client_subscribe.c) sends deliveries when the log grows.
 *
 * Shutdown follows the order of the gRPC guide: under the mutex, mark stopping and ask the server
 * to shut down (no request is posted after that, so none can reach a destroyed server); cancel
 * every call; wait until every call object and outstanding request was released (`live` is zero)
 * and the shutdown notification arrived; destroy the server; shut the queues down, drain them and
 * join their threads.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_internal.h"
#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/crypto.h"
#include "mir/log.h"

#define CS_STOP_WAIT_MS 10000 /* how long stop waits for calls to be released */
#define CS_PEM_BYTES_MAX ((size_t)1 << 20)

/* ---- helpers ---- */

void miri_cs_tag_init(cs_tag *t, void (*fn)(cs_tag *, bool), void *self) {
  t->fn = fn;
  t->self = self;
}

uint64_t miri_cs_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

grpc_byte_buffer *miri_cs_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

bool miri_cs_flatten(grpc_byte_buffer *bb, size_t max, grpc_slice *out) {
  if (bb == NULL || grpc_byte_buffer_length(bb) > max) return false;
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return false;
  /* Messages arrive split into several slices now and then: always read them whole. */
  *out = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  return true;
}

size_t miri_cs_recv_max(const mir_replica_client_limits *limits) {
  uint64_t max = CS_RECV_FACTOR * limits->max_request_bytes;
  return max > INT32_MAX ? INT32_MAX : (size_t)max;
}

bool miri_cs_cert_identity(mir_client_service *svc, grpc_call *call, char *id, size_t cap,
                           char *why, size_t why_cap) {
  id[0] = '\0';
  grpc_auth_context *ctx = grpc_call_auth_context(call);
  const grpc_auth_property *p = NULL;
  grpc_auth_property_iterator it;
  if (ctx != NULL) {
    it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    p = grpc_auth_property_iterator_next(&it);
  }
  bool ok = false;
  if (p == NULL || p->value == NULL || p->value_length == 0 || p->value_length > CS_PEER_PEM_MAX) {
    snprintf(why, why_cap, "no client certificate");
  } else {
    /* The property is bytes with a length: NUL-terminate a bounded copy. */
    char *pem = mir_xmalloc(p->value_length + 1);
    memcpy(pem, p->value, p->value_length);
    pem[p->value_length] = '\0';
    ok = mir_tls_client_cert_check(svc->client_ca, pem, id, cap) == MIR_OK;
    if (!ok) snprintf(why, why_cap, "%s", mir_error_detail());
    free(pem);
  }
  if (ctx != NULL) grpc_auth_context_release(ctx);
  return ok;
}

void miri_cs_live_dec(mir_client_service *svc) {
  if (--svc->live == 0) pthread_cond_broadcast(&svc->cv);
}

static void *cs_cq_main(void *arg) {
  pthread_setname_np(pthread_self(), "mir-client-cq"); /* named in top, perf and debuggers */
  grpc_completion_queue *cq = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    cs_tag *t = ev.tag;
    t->fn(t, ev.success != 0);
  }
  return NULL;
}

/* ---- Status and unknown methods (unary: one batch, one completion) ---- */

static void cs_unary_request(mir_client_service *svc, bool unknown);

static void cs_unary_free(cs_unary *u) {
  if (u->req_buf != NULL) grpc_byte_buffer_destroy(u->req_buf);
  if (u->send_buf != NULL) grpc_byte_buffer_destroy(u->send_buf);
  grpc_slice_unref(u->status_details);
  grpc_metadata_array_destroy(&u->md);
  if (u->unknown) grpc_call_details_destroy(&u->details);
  if (u->call != NULL) grpc_call_unref(u->call);
  free(u);
}

static void cs_unary_on_done(cs_tag *t, bool ok) {
  (void)ok;
  cs_unary *u = t->self;
  mir_client_service *svc = u->svc;
  cs_unary_free(u);
  mir_lock_acquire(&svc->mu);
  miri_cs_live_dec(svc);
  mir_lock_release(&svc->mu);
}

/* The Status answer, packed. */
static grpc_byte_buffer *cs_status_response(mir_client_service *svc) {
  mir_olog_status st;
  mir_olog_get_status(svc->cfg.log, &st);
  Mir__Api__StatusResponse r = MIR__API__STATUS_RESPONSE__INIT;
  r.id = svc->own_id;
  r.epoch = st.epoch;
  r.next_sn = st.next_sn;
  r.log_hash.data = st.log_hash;
  r.log_hash.len = MIR_OLOG_HASH_BYTES;
  r.retained_from_sn = st.retained_from_sn;
  r.client_window = svc->cfg.client_window;
  mir_client_peer peers[MIR_CLIENT_PEERS_MAX];
  Mir__Api__PeerStatus ps[MIR_CLIENT_PEERS_MAX], *pp[MIR_CLIENT_PEERS_MAX];
  size_t n =
      svc->cfg.peers != NULL ? svc->cfg.peers(svc->cfg.peers_user, peers, MIR_CLIENT_PEERS_MAX) : 0;
  for (size_t i = 0; i < n && i < MIR_CLIENT_PEERS_MAX; i++) {
    mir__api__peer_status__init(&ps[i]);
    ps[i].id = peers[i].id;
    ps[i].connected = peers[i].connected;
    pp[i] = &ps[i];
  }
  r.n_peers = n < MIR_CLIENT_PEERS_MAX ? n : MIR_CLIENT_PEERS_MAX;
  r.peers = pp;
  return miri_cs_pack(&r.base);
}

static void cs_unary_on_new(cs_tag *t, bool ok) {
  cs_unary *u = t->self;
  mir_client_service *svc = u->svc;
  if (!ok) { /* the server is shutting down */
    cs_unary_free(u);
    mir_lock_acquire(&svc->mu);
    miri_cs_live_dec(svc);
    mir_lock_release(&svc->mu);
    return;
  }
  cs_unary_request(svc, u->unknown);
  grpc_op ops[4];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  grpc_status_code code = GRPC_STATUS_OK;
  if (u->unknown) {
    char *m = grpc_slice_to_c_string(u->details.method);
    char text[320];
    snprintf(text, sizeof(text), "unknown method %.256s", m);
    gpr_free(m);
    u->status_details = grpc_slice_from_copied_string(text);
    code = GRPC_STATUS_UNIMPLEMENTED;
  } else {
    u->send_buf = cs_status_response(svc);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = u->send_buf;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n++].data.send_status_from_server.status_details = u->unknown ? &u->status_details : NULL;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &u->cancelled;
  mir_lock_acquire(&svc->mu);
  if (u->unknown) {
    mir_counter_inc(svc->st.unknown_calls);
  } else {
    mir_counter_inc(svc->st.status_calls);
  }
  grpc_call_error e = grpc_call_start_batch(u->call, ops, n, &u->t_done, NULL);
  mir_lock_release(&svc->mu);
  if (e != GRPC_CALL_OK) cs_unary_on_done(&u->t_done, false);
}

/* Posts a request for the next Status call (or unknown-method call). */
static void cs_unary_request(mir_client_service *svc, bool unknown) {
  cs_unary *u = mir_xcalloc(1, sizeof(*u));
  u->svc = svc;
  u->unknown = unknown;
  u->status_details = grpc_empty_slice();
  grpc_metadata_array_init(&u->md);
  miri_cs_tag_init(&u->t_new, cs_unary_on_new, u);
  miri_cs_tag_init(&u->t_done, cs_unary_on_done, u);
  if (unknown) grpc_call_details_init(&u->details);
  mir_lock_acquire(&svc->mu);
  grpc_call_error e = GRPC_CALL_ERROR;
  if (!svc->stopping) {
    if (unknown) {
      e = grpc_server_request_call(svc->server, &u->call, &u->details, &u->md, svc->cq_main,
                                   svc->cq_main, &u->t_new);
    } else {
      e = grpc_server_request_registered_call(svc->server, svc->m_status, &u->call, &u->deadline,
                                              &u->md, &u->req_buf, svc->cq_main, svc->cq_main,
                                              &u->t_new);
    }
  }
  if (e == GRPC_CALL_OK) svc->live++;
  mir_lock_release(&svc->mu);
  if (e != GRPC_CALL_OK) cs_unary_free(u);
}

/* ---- the server ---- */

/* Reads a PEM file (at most CS_PEM_BYTES_MAX) into an owned string. */
static mir_err cs_read_pem(const char *path, char **out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return mir_error_set(MIR_EIO, "%s: cannot open", path);
  char *buf = mir_xmalloc(CS_PEM_BYTES_MAX + 1);
  size_t n = fread(buf, 1, CS_PEM_BYTES_MAX + 1, f);
  fclose(f);
  if (n == 0 || n > CS_PEM_BYTES_MAX) {
    free(buf);
    return mir_error_set(MIR_EIO, "%s: empty or larger than 1 MiB", path);
  }
  buf[n] = '\0';
  *out = buf;
  return MIR_OK;
}

static grpc_server_credentials *cs_credentials(mir_client_service *svc) {
  if (svc->tls_cert == NULL) return grpc_insecure_server_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {.private_key = svc->tls_key, .cert_chain = svc->tls_cert};
  if (svc->client_ca == NULL) return grpc_ssl_server_credentials_create(NULL, &pair, 1, 0, NULL);
  /* gRPC verifies the chain and validity during the handshake; which client the certificate
   * names is read per call (miri_cs_cert_identity). Core copies the PEM strings. */
  return grpc_ssl_server_credentials_create_ex(
      svc->client_ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
}

static mir_err cs_create_server(mir_client_service *svc) {
  grpc_arg args[6];
  const struct {
    const char *key;
    int value;
  } ints[] = {
      {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)miri_cs_recv_max(&svc->cfg.limits)},
      {GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1},
      {GRPC_ARG_KEEPALIVE_TIME_MS, 20000},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000},
      /* Clients that ping every few seconds are welcome: never GOAWAY them for it. */
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000},
      {GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0},
  };
  for (size_t i = 0; i < 6; i++) {
    args[i].type = GRPC_ARG_INTEGER;
    args[i].key = (char *)ints[i].key;
    args[i].value.integer = ints[i].value;
  }
  grpc_channel_args ca = {.num_args = 6, .args = args};
  svc->server = grpc_server_create(&ca, NULL);
  svc->m_submit =
      grpc_server_register_method(svc->server, CS_METHOD_SUBMIT, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  svc->m_subscribe = grpc_server_register_method(svc->server, CS_METHOD_SUBSCRIBE, NULL,
                                                 GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  svc->m_status = grpc_server_register_method(svc->server, CS_METHOD_STATUS, NULL,
                                              GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  svc->cq_submit = grpc_completion_queue_create_for_next(NULL);
  svc->cq_main = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(svc->server, svc->cq_submit, NULL);
  grpc_server_register_completion_queue(svc->server, svc->cq_main, NULL);
  grpc_server_credentials *cr = cs_credentials(svc);
  svc->port = grpc_server_add_http2_port(svc->server, svc->listen_addr, cr);
  grpc_server_credentials_release(cr);
  if (svc->port == 0) {
    return mir_error_set(MIR_EIO, "client service: cannot listen on %s", svc->listen_addr);
  }
  return MIR_OK;
}

static mir_err cs_check_config(const mir_client_service_config *c) {
  const mir_replica_client_limits *l = c != NULL ? &c->limits : NULL;
  if (c == NULL || c->own_id == NULL || c->listen_addr == NULL || c->log == NULL ||
      strlen(c->own_id) >= 64 || strlen(c->listen_addr) >= 256) {
    return mir_error_set(MIR_EINVAL, "client service: own_id, listen_addr and log are required");
  }
  if (l->max_request_bytes < 1024 || l->max_request_bytes > INT32_MAX ||
      l->max_txs_per_request == 0 || l->max_submit_streams == 0 || l->max_submit_streams > 65536 ||
      l->max_requests_in_flight == 0 || l->max_requests_in_flight > 65536 ||
      l->max_bytes_in_flight == 0 || l->max_subscribers == 0 || l->subscriber_stall_ms == 0 ||
      c->max_tx_bytes == 0 || l->max_subscribers_per_client == 0 ||
      l->max_subscribers_per_connection == 0 || l->retry_after_ms == 0 ||
      l->retry_after_ms > UINT32_MAX) {
    return mir_error_set(MIR_EINVAL, "client service: a limit is out of range");
  }
  if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
    return mir_error_set(MIR_EINVAL, "client service: TLS needs both a certificate and a key");
  }
  if (c->tls_client_ca_file != NULL && c->tls_cert_file == NULL) {
    return mir_error_set(MIR_EINVAL, "client service: client certificates need TLS");
  }
  const char *ids[] = {c->module_id != NULL ? c->module_id : MIR_CLIENT_SERVICE_ID,
                       c->mempool_id != NULL ? c->mempool_id : "mempool"};
  for (size_t i = 0; i < 2; i++) {
    if (!mir_module_id_valid(ids[i])) {
      return mir_error_set(MIR_EINVAL, "client service: invalid module id");
    }
  }
  return MIR_OK;
}

static void cs_on_log_grew(void *user, uint64_t next_sn) {
  mir_client_service *svc = user;
  mir_lock_acquire(&svc->mu);
  svc->log_next_sn = next_sn;
  svc->feed_signal = true;
  pthread_cond_broadcast(&svc->cv);
  mir_lock_release(&svc->mu);
}

/* Shuts a queue that no thread drains down, drains it and destroys it. */
static void cs_cq_discard(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

static void cs_free_state(mir_client_service *svc) {
  /* A server that never started may be destroyed at once; a started one was destroyed by stop,
   * whose threads also drained the queues. */
  if (svc->server != NULL) grpc_server_destroy(svc->server);
  if (svc->cq_submit != NULL && !svc->cqs_drained) cs_cq_discard(svc->cq_submit);
  if (svc->cq_main != NULL && !svc->cqs_drained) cs_cq_discard(svc->cq_main);
  if (svc->cqs_drained) {
    grpc_completion_queue_destroy(svc->cq_submit);
    grpc_completion_queue_destroy(svc->cq_main);
  }
  free(svc->tls_cert);
  free(svc->tls_key);
  free(svc->client_ca);
  free(svc->slots);
  mir_lock_fini(&svc->mu);
  pthread_cond_destroy(&svc->cv);
  mir_metrics_free(svc->metrics);
  free(svc);
  grpc_shutdown();
}

/* Registers the service's counters of streams and calls. */
static void cs_metrics_calls(mir_client_service *svc, mir_metrics *m) {
  static const char req_help[] =
      "Submit requests refused whole, by reason (malformed: did not decode or broke a request "
      "limit; busy: max_requests_in_flight or max_bytes_in_flight, answered with a hint).";
  static const char sub_help[] =
      "Subscribe streams refused (too many, or from_sn out of range) "
      "or cut (stalled, or out of the retention window).";
  svc->st.submit_streams = mir_metrics_counter(m, "mir_client_submit_streams_total",
                                               "Submit streams opened.", NULL, NULL);
  svc->st.submit_refused =
      mir_metrics_counter(m, "mir_client_submit_streams_refused_total",
                          "Submit streams refused: too many open.", NULL, NULL);
  svc->st.requests =
      mir_metrics_counter(m, "mir_client_requests_total", "Submit requests received.", NULL, NULL);
  svc->st.malformed =
      mir_metrics_counter(m, "mir_client_requests_refused_total", req_help, "reason", "malformed");
  svc->st.requests_busy =
      mir_metrics_counter(m, "mir_client_requests_refused_total", req_help, "reason", "busy");
  svc->st.unauthenticated =
      mir_metrics_counter(m, "mir_client_unauthenticated_calls_total",
                          "Calls refused: the client certificate names no client.", NULL, NULL);
  svc->st.subscribers = mir_metrics_counter(m, "mir_client_subscribe_streams_total",
                                            "Subscribe streams opened.", NULL, NULL);
  svc->st.subscribers_refused = mir_metrics_counter(m, "mir_client_subscribe_streams_ended_total",
                                                    sub_help, "reason", "refused");
  svc->st.subscribers_cut =
      mir_metrics_counter(m, "mir_client_subscribe_streams_ended_total", sub_help, "reason", "cut");
  svc->st.deliveries = mir_metrics_counter(m, "mir_client_deliveries_total",
                                           "Delivery messages sent to subscribers.", NULL, NULL);
  svc->st.status_calls =
      mir_metrics_counter(m, "mir_client_status_calls_total", "Status calls served.", NULL, NULL);
  svc->st.unknown_calls = mir_metrics_counter(m, "mir_client_unknown_calls_total",
                                              "Calls to unknown methods.", NULL, NULL);
  svc->st.open_submit_streams =
      mir_metrics_gauge(m, "mir_client_submit_streams", "Submit streams open now.", NULL, NULL);
  svc->st.open_subscribers =
      mir_metrics_gauge(m, "mir_client_subscribers", "Subscribe streams open now.", NULL, NULL);
}

/* Registers the service's metrics in a new set. */
static void cs_metrics_init(mir_client_service *svc) {
  static const char *const status_reason[CS_TX_STATUS_KINDS] = {
      NULL, "duplicate", "out_of_window", "too_large", "mempool_full", "invalid"};
  static const char tx_help[] =
      "Transactions refused, by reason (busy: the request was refused whole; ingress: failed "
      "the service's checks; the others: the mempool's verdict).";
  const char *refused = "mir_client_transactions_refused_total";
  mir_metrics *m = svc->metrics = mir_metrics_new(svc->module_id);
  cs_metrics_calls(svc, m);
  svc->st.txs_accepted = mir_metrics_counter(m, "mir_client_transactions_accepted_total",
                                             "Transactions the mempool accepted.", NULL, NULL);
  svc->st.refused_busy = mir_metrics_counter(m, refused, tx_help, "reason", "busy");
  svc->st.refused_ingress = mir_metrics_counter(m, refused, tx_help, "reason", "ingress");
  for (size_t i = 1; i < CS_TX_STATUS_KINDS; i++) {
    svc->st.refused[i] = mir_metrics_counter(m, refused, tx_help, "reason", status_reason[i]);
  }
}

mir_err mir_client_service_new(const mir_client_service_config *cfg, mir_client_service **out) {
  mir_err err = cs_check_config(cfg);
  if (err != MIR_OK) return err;
  grpc_init();
  mir_client_service *svc = mir_xcalloc(1, sizeof(*svc));
  svc->cfg = *cfg;
  snprintf(svc->own_id, sizeof(svc->own_id), "%s", cfg->own_id);
  snprintf(svc->module_id, sizeof(svc->module_id), "%s",
           cfg->module_id != NULL ? cfg->module_id : MIR_CLIENT_SERVICE_ID);
  snprintf(svc->mempool_id, sizeof(svc->mempool_id), "%s",
           cfg->mempool_id != NULL ? cfg->mempool_id : "mempool");
  snprintf(svc->listen_addr, sizeof(svc->listen_addr), "%s", cfg->listen_addr);
  svc->cfg.own_id = svc->cfg.listen_addr = svc->cfg.module_id = svc->cfg.mempool_id = NULL;
  svc->cfg.tls_cert_file = svc->cfg.tls_key_file = svc->cfg.tls_client_ca_file = NULL;
  cs_metrics_init(svc);
  mir_lock_init(&svc->mu, svc->metrics, "client_api");
  pthread_cond_init(&svc->cv, NULL);
  svc->slots = mir_xcalloc(cfg->limits.max_submit_streams, sizeof(*svc->slots));
  if (cfg->tls_cert_file != NULL) {
    err = cs_read_pem(cfg->tls_cert_file, &svc->tls_cert);
    if (err == MIR_OK) err = cs_read_pem(cfg->tls_key_file, &svc->tls_key);
  }
  if (err == MIR_OK && cfg->tls_client_ca_file != NULL) {
    err = cs_read_pem(cfg->tls_client_ca_file, &svc->client_ca);
  }
  if (err == MIR_OK) err = cs_create_server(svc);
  if (err != MIR_OK) {
    cs_free_state(svc);
    return err;
  }
  mir_olog_status st;
  mir_olog_get_status(cfg->log, &st);
  svc->log_next_sn = st.next_sn;
  mir_olog_set_listener(cfg->log, cs_on_log_grew, svc);
  *out = svc;
  return MIR_OK;
}

int mir_client_service_port(const mir_client_service *svc) {
  return svc->port;
}

mir_metrics *mir_client_service_metrics(mir_client_service *svc) {
  return svc->metrics;
}

/* ---- start and stop ---- */

static mir_err cs_start(void *state, mir_inbox *inbox) {
  mir_client_service *svc = state;
  svc->inbox = inbox;
  grpc_server_start(svc->server);
  mir_lock_acquire(&svc->mu);
  svc->started = true;
  mir_lock_release(&svc->mu);
  if (pthread_create(&svc->th_submit, NULL, cs_cq_main, svc->cq_submit) != 0 ||
      pthread_create(&svc->th_main, NULL, cs_cq_main, svc->cq_main) != 0 ||
      pthread_create(&svc->th_feed, NULL, miri_cs_feed_main, svc) != 0) {
    MIR_ASSERT(!"cannot create the client service's threads");
  }
  svc->threads_started = true;
  miri_cs_submit_request(svc);
  miri_cs_subscribe_request(svc);
  cs_unary_request(svc, false);
  cs_unary_request(svc, true);
  mir_log(MIR_LOG_INFO, CS_LOG, "%s: client API on %s (%s)", svc->own_id, svc->listen_addr,
          svc->client_ca != NULL  ? "TLS, client certificates required"
          : svc->tls_cert != NULL ? "TLS"
                                  : "plaintext");
  if (svc->client_ca == NULL) {
    mir_log(MIR_LOG_WARN, CS_LOG,
            "%s: clients are not authenticated: any client may submit under any client id, and "
            "so use up another client's tx numbers%s (client_tls and client.require_cert make "
            "each client prove its id; docs/OPERATIONS.md)",
            svc->own_id, svc->tls_cert == NULL ? "; the client API is plaintext" : "");
  }
  return MIR_OK;
}

static void cs_on_shutdown(cs_tag *t, bool ok) {
  (void)ok;
  mir_client_service *svc = t->self;
  mir_lock_acquire(&svc->mu);
  svc->shutdown_notified = true;
  pthread_cond_broadcast(&svc->cv);
  mir_lock_release(&svc->mu);
}

/* Waits until the shutdown notification came and every object was released, or the bound. */
static void cs_wait_released(mir_client_service *svc) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += CS_STOP_WAIT_MS / 1000;
  mir_lock_acquire(&svc->mu);
  while (!svc->shutdown_notified || svc->live > 0) {
    if (pthread_cond_timedwait(&svc->cv, &svc->mu.mu, &until) != 0) break;
  }
  if (svc->live > 0) {
    mir_log(MIR_LOG_WARN, CS_LOG, "%s: %zu calls still held at shutdown", svc->own_id, svc->live);
  }
  mir_lock_release(&svc->mu);
}

static void cs_stop(void *state) {
  mir_client_service *svc = state;
  mir_lock_acquire(&svc->mu);
  if (!svc->started || svc->stopping) {
    mir_lock_release(&svc->mu);
    return;
  }
  svc->stopping = true;
  miri_cs_tag_init(&svc->t_shutdown, cs_on_shutdown, svc);
  grpc_server_shutdown_and_notify(svc->server, svc->cq_main, &svc->t_shutdown);
  pthread_cond_broadcast(&svc->cv);
  mir_lock_release(&svc->mu);
  grpc_server_cancel_all_calls(svc->server);
  cs_wait_released(svc);
  pthread_join(svc->th_feed, NULL);
  grpc_server_destroy(svc->server);
  svc->server = NULL;
  grpc_completion_queue_shutdown(svc->cq_submit);
  grpc_completion_queue_shutdown(svc->cq_main);
  pthread_join(svc->th_submit, NULL);
  pthread_join(svc->th_main, NULL);
  svc->threads_started = false;
  svc->cqs_drained = true;
}

static void cs_destroy(void *state) {
  mir_client_service *svc = state;
  cs_stop(svc);
  cs_free_state(svc);
}

void mir_client_service_free(mir_client_service *svc) {
  if (svc != NULL) cs_destroy(svc);
}

static mir_err cs_apply(void *state, mir_event_list *in, mir_event_list *out) {
  (void)out;
  mir_client_service *svc = state;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &trantor__txs_accepted__descriptor)) {
      miri_cs_submit_answer(svc, (const Trantor__TxsAccepted *)ev->payload);
    } else if (!mir_event_is(ev, &mir__init__descriptor)) {
      return mir_error_set(MIR_EINVAL, "%s: unexpected event %s from %s", svc->module_id,
                           mir_event_type_name(ev), ev->src);
    }
  }
  return MIR_OK;
}

static mir_metrics *cs_metrics(void *state) {
  return ((mir_client_service *)state)->metrics;
}

const mir_module_ops mir_client_service_ops = {
    .name = "client-service",
    .kind = MIR_MODULE_ACTIVE,
    .apply = cs_apply,
    .start = cs_start,
    .stop = cs_stop,
    .destroy = cs_destroy,
    .metrics = cs_metrics,
};
