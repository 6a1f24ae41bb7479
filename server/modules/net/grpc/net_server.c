/*
 * The incoming side of the gRPC transport: one gRPC server with one completion queue and one
 * thread. Every event of every incoming call is handled on that thread, so call contexts
 * (miri_sstream) need no lock; only peer->in (which the client side reads) is published under
 * peer->mu.
 *
 * A call's life: a request for the next call is always outstanding (one for the stream method,
 * one catch-all that answers other methods with UNIMPLEMENTED instead of leaving them hanging).
 * A new stream is authenticated (net_auth.c) before anything else. A refused stream gets
 * initial metadata and a status in one batch (gRPC 1.51 never sends a status without initial
 * metadata) and no message is read from it. An accepted stream gets initial metadata naming this
 * node, which tells the caller it may send; it supersedes an older stream from the same peer,
 * which is cancelled and whose frames still in flight are dropped (so a reconnect never reorders
 * messages). Exactly one RECV_MESSAGE is outstanding per stream; the next is posted only after the
 * previous frame went into the inbox, so a paused node stops reading and HTTP/2 flow control
 * pushes back on the sender. A frame that does not decode is counted and the stream is cancelled
 * with INVALID_ARGUMENT; frames larger than max_message_bytes are refused by gRPC itself.
 *
 * Invariants: a context is freed exactly when its count of batches in flight (pending) drops to
 * zero after its last batch; server_live counts every context, including the outstanding
 * requests, and the server is destroyed only once it is zero (a shutdown notification can arrive
 * before the application released its calls). No call is requested after server_shutdown is set:
 * both happen under server_mu.
 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "net_internal.h"

struct miri_sstream {
  mir_net_grpc *net;
  bool generic; /* the catch-all for unknown methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_call_details details; /* generic only */
  grpc_metadata_array md;
  grpc_metadata reply_md;
  grpc_slice status_details;
  grpc_byte_buffer *recv_bb;
  miri_tag t_new, t_imd, t_recv, t_close, t_status;
  int cancelled;
  int pending;      /* batches in flight */
  miri_peer *peer;  /* the authenticated sender, once accepted */
  bool superseded;  /* a newer stream from peer took over */
  bool status_sent; /* SEND_STATUS_FROM_SERVER was started */
};

static void server_request(mir_net_grpc *net, bool generic);

/* ---- helpers ---- */

static void server_batch(miri_sstream *s, const grpc_op *ops, size_t n, miri_tag *tag) {
  s->pending++;
  grpc_call_error e = grpc_call_start_batch(s->call, ops, n, tag, NULL);
  /* Every batch here follows the one-op-per-type rule, so an error is a bug of ours. */
  MIR_ASSERT(e == GRPC_CALL_OK);
}

static void server_live_add(mir_net_grpc *net, int delta) {
  pthread_mutex_lock(&net->server_mu);
  net->server_live = (size_t)((long)net->server_live + delta);
  if (net->server_live == 0) pthread_cond_broadcast(&net->server_cv);
  pthread_mutex_unlock(&net->server_mu);
}

static void server_free(miri_sstream *s) {
  grpc_metadata_array_destroy(&s->md);
  if (s->generic) grpc_call_details_destroy(&s->details);
  grpc_slice_unref(s->status_details);
  if (s->recv_bb != NULL) grpc_byte_buffer_destroy(s->recv_bb);
  mir_net_grpc *net = s->net;
  free(s);
  server_live_add(net, -1);
}

/* Frees s once no batch is in flight. */
static void server_maybe_free(miri_sstream *s) {
  if (s->pending > 0) return;
  if (s->peer != NULL) {
    mir_lock_acquire(&s->peer->mu);
    if (s->peer->in == s) {
      s->peer->in = NULL;
      mir_gauge_set(s->peer->mx.incoming, 0);
    }
    mir_lock_release(&s->peer->mu);
  }
  grpc_call_unref(s->call);
  server_free(s);
}

static void server_on_done(miri_tag *tag, bool ok) {
  miri_sstream *s = tag->self;
  (void)ok; /* the status and close ops report nothing useful through ok */
  s->pending--;
  server_maybe_free(s);
}

/* Ends s with status and details (static) and stops reading it. */
static void server_finish(miri_sstream *s, grpc_status_code status, const char *details,
                          bool with_imd) {
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (with_imd) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  s->status_details = grpc_slice_from_static_string(details);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = status;
  ops[n++].data.send_status_from_server.status_details = &s->status_details;
  if (with_imd) {
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &s->cancelled;
  }
  s->status_sent = true;
  server_batch(s, ops, n, &s->t_status);
}

/* ---- receiving frames ---- */

static void server_post_recv(miri_sstream *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv_bb;
  server_batch(s, &op, 1, &s->t_recv);
}

/* Copies bb into one contiguous slice (owned; a reference, without copying, when bb is already a
 * single slice, which is the common case). False if bb cannot be read. */
static bool server_flatten(grpc_byte_buffer *bb, grpc_slice *out) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return false;
  size_t total = grpc_byte_buffer_length(r.buffer_out);
  grpc_slice *first = NULL;
  if (grpc_byte_buffer_reader_peek(&r, &first) && GRPC_SLICE_LENGTH(*first) == total) {
    *out = grpc_slice_ref(*first);
  } else {
    grpc_byte_buffer_reader_destroy(&r);
    if (!grpc_byte_buffer_reader_init(&r, bb)) return false;
    *out = grpc_byte_buffer_reader_readall(&r);
  }
  grpc_byte_buffer_reader_destroy(&r);
  return true;
}

/* Counts and logs a malformed frame from s's peer and cancels the stream. */
static void server_reject(miri_sstream *s, const char *detail) {
  mir_net_grpc *net = s->net;
  mir_counter_inc(s->peer->mx.malformed);
  uint64_t skipped;
  if (miri_ratelimit_allow(&net->malformed_log, &skipped)) {
    mir_log(MIR_LOG_WARN, NET_LOG, "%s: malformed frame from %s, stream cancelled: %s (%llu more)",
            net->own_id, s->peer->id, detail, (unsigned long long)skipped);
  }
  grpc_call_cancel_with_status(s->call, GRPC_STATUS_INVALID_ARGUMENT, "malformed frame", NULL);
}

/* Decodes the frame in s->recv_bb (consumed) and pushes its messages into the inbox. Returns
 * true if the stream should go on. */
static bool server_deliver(miri_sstream *s) {
  mir_net_grpc *net = s->net;
  grpc_slice flat;
  bool flat_ok = server_flatten(s->recv_bb, &flat);
  grpc_byte_buffer_destroy(s->recv_bb);
  s->recv_bb = NULL;
  if (!flat_ok) {
    server_reject(s, "unreadable byte buffer");
    return false;
  }
  size_t len = GRPC_SLICE_LENGTH(flat);
  Mir__PackedMessage **msgs = NULL;
  size_t n = 0;
  mir_err err = MIR_EPROTO;
  if (len <= net->cfg.max_message_bytes) {
    err = miri_frame_decode(GRPC_SLICE_START_PTR(flat), len, net->cfg.frame_max_msgs, &msgs, &n);
  } else {
    mir_error_set(MIR_EPROTO, "frame of %zu bytes", len);
  }
  grpc_slice_unref(flat);
  if (err != MIR_OK) {
    server_reject(s, mir_error_detail());
    return false;
  }
  mir_event_list events = MIR_EVENT_LIST_INIT;
  for (size_t i = 0; i < n; i++) {
    mir_event_list_push(&events, mir_event_message_received(s->peer->id, msgs[i]));
  }
  free(msgs);
  if (mir_inbox_push(net->inbox, &events) != MIR_OK) return false; /* the node is stopping */
  mir_counter_add(s->peer->mx.bytes_received, len);
  mir_counter_inc(s->peer->mx.frames_received);
  mir_counter_add(s->peer->mx.msgs_received, n); /* last, as the sender counts */
  return true;
}

static void server_on_recv(miri_tag *tag, bool ok) {
  miri_sstream *s = tag->self;
  s->pending--;
  if (s->recv_bb == NULL) {
    /* The caller half-closed (answer OK) or the call ended (nothing to answer). */
    bool clean = ok && !grpc_call_failed_before_recv_message(s->call);
    if (clean && !s->status_sent && !s->superseded) server_finish(s, GRPC_STATUS_OK, "", false);
  } else if (s->superseded || atomic_load(&s->net->stopping)) {
    grpc_byte_buffer_destroy(s->recv_bb);
    s->recv_bb = NULL;
  } else if (server_deliver(s)) {
    server_post_recv(s);
  } else {
    grpc_call_cancel(s->call, NULL);
  }
  server_maybe_free(s);
}

/* ---- accepting and refusing ---- */

static void server_refuse(miri_sstream *s, miri_peer *claimed, grpc_status_code status,
                          miri_refusal reason, const char *why) {
  mir_net_grpc *net = s->net;
  if (claimed != NULL) mir_counter_inc(claimed->mx.refused);
  mir_counter_inc(net->refused[reason]);
  uint64_t skipped;
  if (miri_ratelimit_allow(&net->refuse_log, &skipped)) {
    char *from = grpc_call_get_peer(s->call);
    mir_log(MIR_LOG_WARN, NET_LOG, "%s: refused a stream from %s (claiming %s): %s (%llu more)",
            net->own_id, from, claimed ? claimed->id : "no member", why,
            (unsigned long long)skipped);
    gpr_free(from);
  }
  server_finish(s, status, why, true);
}

static void server_accept(miri_sstream *s, miri_peer *peer) {
  s->peer = peer;
  mir_lock_acquire(&peer->mu);
  miri_sstream *old = peer->in;
  peer->in = s;
  mir_gauge_set(peer->mx.incoming, 1);
  mir_lock_release(&peer->mu);
  if (old != NULL) {
    /* The sender reconnected: whatever the old stream still carries is dropped, not reordered. */
    old->superseded = true;
    grpc_call_cancel_with_status(old->call, GRPC_STATUS_ABORTED, "superseded by a newer stream",
                                 NULL);
  }
  s->reply_md.key = grpc_slice_from_static_string(MIR_NET_ID_METADATA);
  s->reply_md.value = grpc_slice_from_static_string(s->net->own_id);
  grpc_op ops[1];
  memset(ops, 0, sizeof ops);
  /* Never with a write-buffer hint: this flush is what tells the caller it may send. */
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = 1;
  ops[0].data.send_initial_metadata.metadata = &s->reply_md;
  server_batch(s, ops, 1, &s->t_imd);
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[0].data.recv_close_on_server.cancelled = &s->cancelled;
  server_batch(s, ops, 1, &s->t_close);
  server_post_recv(s);
  mir_log(MIR_LOG_DEBUG, NET_LOG, "%s: accepted a stream from %s", s->net->own_id, peer->id);
}

static void server_on_new(miri_tag *tag, bool ok) {
  miri_sstream *s = tag->self;
  mir_net_grpc *net = s->net;
  if (!ok) { /* the server is shutting down: the request itself ended */
    server_free(s);
    return;
  }
  server_request(net, s->generic);
  if (atomic_load(&net->stopping)) {
    grpc_call_cancel(s->call, NULL);
    server_maybe_free(s);
    return;
  }
  if (s->generic) {
    mir_counter_inc(net->unknown_calls);
    server_finish(s, GRPC_STATUS_UNIMPLEMENTED, "unknown method", true);
    return;
  }
  miri_peer *claimed = NULL;
  grpc_status_code status;
  miri_refusal reason = MIRI_REFUSE_NO_ID;
  const char *why = NULL;
  if (miri_authenticate(net, s->call, &s->md, &claimed, &status, &reason, &why)) {
    server_accept(s, claimed);
  } else {
    server_refuse(s, claimed, status, reason, why);
  }
}

/* Posts a request for the next call (of the stream method, or generic), unless shutting down. */
static void server_request(mir_net_grpc *net, bool generic) {
  miri_sstream *s = mir_xcalloc(1, sizeof *s);
  s->net = net;
  s->generic = generic;
  s->status_details = grpc_empty_slice();
  grpc_metadata_array_init(&s->md);
  if (generic) grpc_call_details_init(&s->details);
  s->t_new = (miri_tag){server_on_new, s};
  s->t_imd = (miri_tag){server_on_done, s};
  s->t_close = (miri_tag){server_on_done, s};
  s->t_status = (miri_tag){server_on_done, s};
  s->t_recv = (miri_tag){server_on_recv, s};
  pthread_mutex_lock(&net->server_mu);
  if (net->server_shutdown) {
    pthread_mutex_unlock(&net->server_mu);
    grpc_metadata_array_destroy(&s->md);
    if (generic) grpc_call_details_destroy(&s->details);
    free(s);
    return;
  }
  net->server_live++;
  grpc_call_error e;
  if (generic) {
    e = grpc_server_request_call(net->server, &s->call, &s->details, &s->md, net->server_cq,
                                 net->server_cq, &s->t_new);
  } else {
    e = grpc_server_request_registered_call(net->server, net->stream_method, &s->call, &s->deadline,
                                            &s->md, NULL, net->server_cq, net->server_cq,
                                            &s->t_new);
  }
  MIR_ASSERT(e == GRPC_CALL_OK);
  pthread_mutex_unlock(&net->server_mu);
}

/* ---- lifecycle ---- */

static void *server_main(void *arg) {
  mir_net_grpc *net = arg;
  pthread_setname_np(pthread_self(), "mir-net-server"); /* shown by debuggers and top */
  for (;;) {
    grpc_event ev =
        grpc_completion_queue_next(net->server_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    miri_tag *tag = ev.tag;
    tag->fn(tag, ev.success != 0);
  }
  return NULL;
}

static void server_on_shutdown(miri_tag *tag, bool ok) {
  mir_net_grpc *net = tag->self;
  (void)ok;
  pthread_mutex_lock(&net->server_mu);
  net->server_shutdown_done = true;
  pthread_cond_broadcast(&net->server_cv);
  pthread_mutex_unlock(&net->server_mu);
}

/* Fills args with the server's channel arguments (at most 8). */
static void server_args(const mir_net_grpc *net, grpc_arg *a, grpc_channel_args *args) {
  size_t n = 0;
  int ka = (int)net->cfg.keepalive_ms;
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER,
                      GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                      {.integer = (int)net->cfg.max_message_bytes}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = ka}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = ka}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}};
  /* Accept the callers' keepalive pings (the default minimum of 5 minutes would GOAWAY them). */
  a[n++] = (grpc_arg){
      GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, {.integer = ka / 2}};
  /* Two replicas on one port is a configuration error, not a load-balancing setup. */
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}};
  args->num_args = n;
  args->args = a;
}

mir_err miri_server_create(mir_net_grpc *net) {
  grpc_arg a[8];
  grpc_channel_args args;
  server_args(net, a, &args);
  net->server = grpc_server_create(&args, NULL);
  net->stream_method = grpc_server_register_method(net->server, MIR_NET_STREAM_METHOD, NULL,
                                                   GRPC_SRM_PAYLOAD_NONE, 0);
  net->server_cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(net->server, net->server_cq, NULL);
  net->shutdown_tag = (miri_tag){server_on_shutdown, net};
  grpc_server_credentials *creds = miri_server_credentials(net);
  net->port = grpc_server_add_http2_port(net->server, net->listen_addr, creds);
  grpc_server_credentials_release(creds);
  if (net->port == 0) {
    return mir_error_set(MIR_EIO, "cannot listen on %s (address in use or invalid)",
                         net->listen_addr);
  }
  return MIR_OK;
}

mir_err miri_server_start(mir_net_grpc *net) {
  grpc_server_start(net->server);
  server_request(net, false);
  server_request(net, true);
  if (pthread_create(&net->server_thread, NULL, server_main, net) != 0) {
    return mir_error_set(MIR_ENOMEM, "cannot create the transport's server thread");
  }
  net->server_thread_started = true;
  return MIR_OK;
}

/* Polls the completion queue on the calling thread until the shutdown tag came and every
 * context is freed (used when the server thread is not running). */
static void server_drain_inline(mir_net_grpc *net) {
  for (;;) {
    pthread_mutex_lock(&net->server_mu);
    bool done = net->server_shutdown_done && net->server_live == 0;
    pthread_mutex_unlock(&net->server_mu);
    if (done) return;
    grpc_event ev =
        grpc_completion_queue_next(net->server_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    miri_tag *tag = ev.tag;
    tag->fn(tag, ev.success != 0);
  }
}

void miri_server_stop(mir_net_grpc *net) {
  if (net->server == NULL) return;
  pthread_mutex_lock(&net->server_mu);
  net->server_shutdown = true;
  grpc_server_shutdown_and_notify(net->server, net->server_cq, &net->shutdown_tag);
  pthread_mutex_unlock(&net->server_mu);
  /* Peer streams never end by themselves: cancel them rather than wait for a grace period. */
  grpc_server_cancel_all_calls(net->server);
  if (net->server_thread_started) {
    pthread_mutex_lock(&net->server_mu);
    while (!net->server_shutdown_done || net->server_live > 0) {
      pthread_cond_wait(&net->server_cv, &net->server_mu);
    }
    pthread_mutex_unlock(&net->server_mu);
  } else {
    server_drain_inline(net);
  }
  grpc_server_destroy(net->server);
  net->server = NULL;
  grpc_completion_queue_shutdown(net->server_cq);
  if (net->server_thread_started) {
    pthread_join(net->server_thread, NULL);
    net->server_thread_started = false;
  } else {
    while (
        grpc_completion_queue_next(net->server_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
        GRPC_QUEUE_SHUTDOWN) {
    }
  }
  grpc_completion_queue_destroy(net->server_cq);
  net->server_cq = NULL;
}
