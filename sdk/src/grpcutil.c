/*
 * The gRPC seam of the SDK: channels (plaintext or TLS), call creation and accounting, byte
 * buffers to and from protobuf-c, and open's round of Status calls.
 *
 * Channel arguments: a bounded receive size (a replica cannot make us allocate more than
 * MIRI_CL_MAX_RECV_BYTES for one message) and a short reconnect backoff so that a restarted
 * replica is found again quickly. No keepalive is configured: a client keepalive shorter than the
 * server's permitted ping interval makes the server close the connection ("too_many_pings").
 *
 * The Status round (open only): one unary call per replica with WAIT_FOR_READY and a deadline of
 * connect_timeout_ms, so that replicas that are still starting are waited for; each answer is
 * validated and recorded under the client lock, and open reads the records.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

void miri_cl_callst_init(miri_cl_callst *st) {
  memset(st, 0, sizeof(*st));
  grpc_metadata_array_init(&st->imd);
  grpc_metadata_array_init(&st->trailing);
  st->details = grpc_empty_slice();
  st->status = GRPC_STATUS_UNKNOWN;
}

void miri_cl_callst_fini(miri_cl_callst *st) {
  grpc_metadata_array_destroy(&st->imd);
  grpc_metadata_array_destroy(&st->trailing);
  grpc_slice_unref(st->details);
  if (st->error_string != NULL) gpr_free((void *)st->error_string);
  st->error_string = NULL;
}

static const char *grpcutil_status_name(grpc_status_code code) {
  static const char *const names[] = {"OK",
                                      "CANCELLED",
                                      "UNKNOWN",
                                      "INVALID_ARGUMENT",
                                      "DEADLINE_EXCEEDED",
                                      "NOT_FOUND",
                                      "ALREADY_EXISTS",
                                      "PERMISSION_DENIED",
                                      "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION",
                                      "ABORTED",
                                      "OUT_OF_RANGE",
                                      "UNIMPLEMENTED",
                                      "INTERNAL",
                                      "UNAVAILABLE",
                                      "DATA_LOSS",
                                      "UNAUTHENTICATED"};
  if ((int)code < 0 || (int)code > 16) return "STATUS?";
  return names[code];
}

bool miri_cl_callst_md_is(const miri_cl_callst *st, const char *key, const char *value) {
  size_t klen = strlen(key), vlen = strlen(value);
  for (size_t i = 0; i < st->trailing.count; i++) {
    const grpc_metadata *m = &st->trailing.metadata[i];
    if (GRPC_SLICE_LENGTH(m->key) == klen && memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0 &&
        GRPC_SLICE_LENGTH(m->value) == vlen &&
        memcmp(GRPC_SLICE_START_PTR(m->value), value, vlen) == 0) {
      return true;
    }
  }
  return false;
}

void miri_cl_callst_text(const miri_cl_callst *st, char *buf, size_t len) {
  char *details = grpc_slice_to_c_string(st->details);
  snprintf(buf, len, "%s%s%s", grpcutil_status_name(st->status), details[0] ? ": " : "", details);
  gpr_free(details);
}

grpc_byte_buffer *miri_cl_pack(const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > (size_t)MIRI_CL_MAX_RECV_BYTES) return NULL;
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

bool miri_cl_flatten(grpc_byte_buffer *bb, grpc_slice *out) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return false;
  /* readall returns the one slice itself (a new reference) or a concatenation of several. */
  *out = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  return true;
}

void miri_cl_start_batch(grpc_call *call, const grpc_op *ops, size_t n, miri_cl_tag *tag,
                         int *pending) {
  (*pending)++;
  grpc_call_error e = grpc_call_start_batch(call, ops, n, tag, NULL);
  if (e != GRPC_CALL_OK) {
    /* Only a bug here can break the one-op-of-each-kind rule; stop loudly rather than hang. */
    fprintf(stderr, "libmirclient: grpc_call_start_batch: %s\n", grpc_call_error_to_string(e));
    abort();
  }
}

void miri_cl_start_recv_status(grpc_call *call, miri_cl_callst *st, miri_cl_tag *tag,
                               int *pending) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &st->trailing;
  op.data.recv_status_on_client.status = &st->status;
  op.data.recv_status_on_client.status_details = &st->details;
  op.data.recv_status_on_client.error_string = &st->error_string;
  miri_cl_start_batch(call, &op, 1, tag, pending);
}

grpc_call *miri_cl_call_new(miri_cl_replica *rep, const char *method, int64_t deadline_ms) {
  gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC);
  if (deadline_ms > 0) {
    deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(deadline_ms, GPR_TIMESPAN));
  }
  grpc_call *call =
      grpc_channel_create_call(rep->ch, NULL, GRPC_PROPAGATE_DEFAULTS, rep->c->cq,
                               grpc_slice_from_static_string(method), NULL, deadline, NULL);
  if (call != NULL) rep->c->live_calls++;
  return call;
}

void miri_cl_call_gone(mir_client *c) {
  c->live_calls--;
  if (c->live_calls == 0) pthread_cond_broadcast(&c->cv);
}

/* Reads a whole file (path borrowed) into a NUL-terminated string (returns owned: free). */
static char *grpcutil_slurp(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  char *buf = NULL;
  if (fseek(fp, 0, SEEK_END) == 0) {
    long n = ftell(fp);
    if (n >= 0 && n < (1 << 20) && fseek(fp, 0, SEEK_SET) == 0) {
      buf = malloc((size_t)n + 1);
      if (buf != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
      }
      if (buf != NULL) buf[n] = '\0';
    }
  }
  fclose(fp);
  return buf;
}

static int grpcutil_tls_creds(const mir_client_options *o, grpc_channel_credentials **out) {
  char *ca = grpcutil_slurp(o->tls_ca_file);
  if (ca == NULL)
    return miri_cl_fail(MIR_CLIENT_EINVAL, "cannot read tls_ca_file %s", o->tls_ca_file);
  char *cert = NULL, *key = NULL;
  if (o->tls_cert_file != NULL) {
    cert = grpcutil_slurp(o->tls_cert_file);
    key = grpcutil_slurp(o->tls_key_file);
    if (cert == NULL || key == NULL) {
      free(ca);
      free(cert);
      free(key);
      return miri_cl_fail(MIR_CLIENT_EINVAL, "cannot read tls_cert_file %s or tls_key_file %s",
                          o->tls_cert_file, o->tls_key_file);
    }
  }
  grpc_ssl_pem_key_cert_pair kp = {.private_key = key, .cert_chain = cert};
  *out = grpc_ssl_credentials_create(ca, cert != NULL ? &kp : NULL, NULL, NULL);
  free(ca); /* core copies the PEM strings */
  free(cert);
  free(key);
  return *out == NULL ? miri_cl_fail(MIR_CLIENT_EINVAL, "TLS credentials refused") : MIR_CLIENT_OK;
}

static void grpcutil_arg_int(grpc_arg *args, size_t *n, const char *key, int value) {
  args[*n].type = GRPC_ARG_INTEGER;
  args[*n].key = (char *)key;
  args[*n].value.integer = value;
  (*n)++;
}

int miri_cl_channels_create(mir_client *c) {
  const mir_client_options *o = &c->opts;
  grpc_channel_credentials *creds = NULL;
  if (o->tls_ca_file != NULL) {
    int err = grpcutil_tls_creds(o, &creds);
    if (err != MIR_CLIENT_OK) return err;
  } else {
    creds = grpc_insecure_credentials_create();
  }
  grpc_arg args[5];
  size_t n_args = 0;
  grpcutil_arg_int(args, &n_args, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, MIRI_CL_MAX_RECV_BYTES);
  grpcutil_arg_int(args, &n_args, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, (int)o->reconnect_min_ms);
  grpcutil_arg_int(args, &n_args, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, (int)o->reconnect_min_ms);
  grpcutil_arg_int(args, &n_args, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, (int)o->reconnect_max_ms);
  if (o->tls_server_name != NULL) {
    args[n_args].type = GRPC_ARG_STRING;
    args[n_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[n_args++].value.string = (char *)o->tls_server_name;
  }
  grpc_channel_args ca = {.num_args = n_args, .args = args};
  for (uint32_t i = 0; i < c->n; i++) {
    c->rep[i].ch = grpc_channel_create(c->rep[i].addr, creds, &ca);
  }
  grpc_channel_credentials_release(creds);
  return MIR_CLIENT_OK;
}

/* ---- the Status round ---- */

static void status_free(miri_cl_status_call *sc) {
  sc->c->status_calls[sc->replica] = NULL;
  grpc_call_unref(sc->call);
  miri_cl_callst_fini(&sc->st);
  if (sc->req_bb != NULL) grpc_byte_buffer_destroy(sc->req_bb);
  if (sc->resp_bb != NULL) grpc_byte_buffer_destroy(sc->resp_bb);
  miri_cl_call_gone(sc->c);
  free(sc);
}

/* Records one replica's answer; a reply that does not decode counts as a failure. */
static void status_on_done(miri_cl_tag *tag, bool ok) {
  miri_cl_status_call *sc = tag->self;
  mir_client *c = sc->c;
  (void)ok; /* a batch with RECV_STATUS_ON_CLIENT always succeeds; read the status */
  char why[160] = "";
  Mir__Api__StatusResponse *resp = NULL;
  grpc_slice s;
  if (sc->st.status == GRPC_STATUS_OK && sc->resp_bb != NULL && miri_cl_flatten(sc->resp_bb, &s)) {
    resp = mir__api__status_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
  }
  if (resp != NULL) {
    c->status_answered[sc->replica] = true;
    c->status_next_sn[sc->replica] = resp->next_sn;
    c->status_client_window[sc->replica] = resp->client_window;
    c->status_ok++;
    mir__api__status_response__free_unpacked(resp, NULL);
  } else {
    if (sc->st.status == GRPC_STATUS_OK) {
      snprintf(why, sizeof(why), "malformed StatusResponse");
      c->stats.bad_messages++;
    } else {
      miri_cl_callst_text(&sc->st, why, sizeof(why));
      grpc_connectivity_state cs = grpc_channel_check_connectivity_state(c->rep[sc->replica].ch, 0);
      if (cs == GRPC_CHANNEL_TRANSIENT_FAILURE || cs == GRPC_CHANNEL_CONNECTING) {
        size_t used = strlen(why);
        snprintf(why + used, sizeof(why) - used, " (cannot connect)");
      }
    }
    size_t used = strlen(c->status_error);
    snprintf(c->status_error + used, sizeof(c->status_error) - used, "%s%s: %s",
             used > 0 ? "; " : "", c->rep[sc->replica].addr, why);
  }
  c->status_done++;
  pthread_cond_broadcast(&c->cv);
  status_free(sc);
}

static void status_start_one(mir_client *c, uint32_t i) {
  miri_cl_status_call *sc = calloc(1, sizeof(*sc));
  Mir__Api__StatusRequest req = MIR__API__STATUS_REQUEST__INIT;
  if (sc != NULL) sc->req_bb = miri_cl_pack(&req.base);
  if (sc != NULL)
    sc->call =
        miri_cl_call_new(&c->rep[i], MIRI_CL_METHOD_STATUS, (int64_t)c->opts.connect_timeout_ms);
  if (sc == NULL || sc->req_bb == NULL || sc->call == NULL) {
    if (sc != NULL && sc->call != NULL) {
      grpc_call_unref(sc->call);
      miri_cl_call_gone(c);
    }
    if (sc != NULL && sc->req_bb != NULL) grpc_byte_buffer_destroy(sc->req_bb);
    free(sc);
    c->status_done++; /* counted as a failed answer */
    return;
  }
  sc->c = c;
  sc->replica = i;
  sc->tag = (miri_cl_tag){.fn = status_on_done, .self = sc};
  miri_cl_callst_init(&sc->st);
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = sc->req_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &sc->st.imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &sc->resp_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &sc->st.trailing;
  ops[5].data.recv_status_on_client.status = &sc->st.status;
  ops[5].data.recv_status_on_client.status_details = &sc->st.details;
  ops[5].data.recv_status_on_client.error_string = &sc->st.error_string;
  int pending = 0;
  c->status_calls[i] = sc;
  miri_cl_start_batch(sc->call, ops, 6, &sc->tag, &pending);
}

void miri_cl_status_round_start(mir_client *c) {
  for (uint32_t i = 0; i < c->n; i++) status_start_one(c, i);
}
