/*
 * The outgoing side of the gRPC transport: one channel per peer, one long-lived client stream per
 * peer, one completion queue and one thread for all of them.
 *
 * A stream's life (miri_cstream): the client thread creates the call and starts two batches, the
 * initial metadata (carrying this node's id) together with RECV_INITIAL_METADATA, and the status.
 * The stream counts as open only when the server's initial metadata names the peer this channel
 * dials: a refused or failed stream ends with a status and no such metadata, so no message is
 * taken off the queue for a stream that was never accepted. While it is open, at most one frame is
 * in flight (gRPC allows one SEND_MESSAGE at a time); the next frame is packed from the queue when
 * the previous send completes, so messages that queue up meanwhile travel together. A frame gets
 * GRPC_WRITE_BUFFER_HINT when more messages are already waiting, which lets gRPC complete the send
 * at once and coalesce writes; the last frame of a burst goes without it and flushes. When the
 * status arrives the stream is over; the frame in flight, if any, fails and is counted as dropped
 * (never resent: at-most-once), and the stream is reopened after a backoff.
 *
 * Locks: everything about a peer's stream and queue is under peer->mu, taken by the client thread
 * and by apply() on the dispatcher (which starts a send itself when the stream is idle). The
 * send-side batches of a call are thereby serialised, as gRPC requires. client_mu (innermost,
 * taken under peer->mu) counts live stream contexts for stop().
 *
 * Invariants: a stream context is freed exactly when its batches in flight (pending) drop to zero,
 * which happens only after its status arrived; peer->out points to the peer's current stream until
 * its status arrives. After `stopping` is set no stream is opened and no send is started.
 */
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "net_internal.h"

struct miri_cstream {
  miri_peer *peer;
  grpc_call *call;
  miri_tag t_start, t_status, t_send;
  grpc_metadata md; /* this node's id */
  grpc_metadata_array imd, trailing;
  grpc_status_code status;
  grpc_slice details;
  const char *error_string;
  grpc_byte_buffer *send_bb; /* the frame in flight, or NULL */
  size_t send_msgs, send_msg_bytes, send_frame_bytes;
  int pending; /* batches in flight */
  bool ready;  /* the server accepted the stream */
  bool done;   /* the status arrived */
};

static gpr_timespec client_deadline_ms(uint64_t ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis((int64_t)ms, GPR_TIMESPAN));
}

static void client_live_add(mir_net_grpc *net, int delta) {
  pthread_mutex_lock(&net->client_mu);
  net->client_live = (size_t)((long)net->client_live + delta);
  if (net->client_live == 0) pthread_cond_broadcast(&net->client_cv);
  pthread_mutex_unlock(&net->client_mu);
}

static void client_batch(miri_cstream *cs, const grpc_op *ops, size_t n, miri_tag *tag) {
  cs->pending++;
  grpc_call_error e = grpc_call_start_batch(cs->call, ops, n, tag, NULL);
  MIR_ASSERT(e == GRPC_CALL_OK); /* one op of each type in flight: a failure is our bug */
}

/* Frees cs once no batch is in flight. Caller holds peer->mu. */
static void client_maybe_free_locked(miri_cstream *cs) {
  if (cs->pending > 0) return;
  MIR_ASSERT(cs->done && cs->peer->out != cs);
  grpc_call_unref(cs->call);
  grpc_metadata_array_destroy(&cs->imd);
  grpc_metadata_array_destroy(&cs->trailing);
  grpc_slice_unref(cs->details);
  if (cs->error_string != NULL) gpr_free((void *)cs->error_string);
  mir_net_grpc *net = cs->peer->net;
  free(cs);
  client_live_add(net, -1);
}

bool miri_client_connected_locked(const miri_peer *peer) {
  return peer->out != NULL && peer->out->ready && !peer->out->done;
}

/* ---- sending ---- */

void miri_client_kick_locked(miri_peer *peer) {
  mir_net_grpc *net = peer->net;
  miri_cstream *cs = peer->out;
  if (cs == NULL || !cs->ready || cs->done || cs->send_bb != NULL || peer->queue.len == 0 ||
      atomic_load(&net->stopping)) {
    miri_queue_gauges_locked(peer);
    return;
  }
  size_t frame_bytes = 0;
  size_t n = miri_frame_plan(&peer->queue, net->cfg.frame_max_msgs, net->cfg.frame_max_bytes,
                             &frame_bytes);
  grpc_slice slice = grpc_slice_malloc(frame_bytes);
  cs->send_msg_bytes = 0;
  miri_frame_write(&peer->queue, n, GRPC_SLICE_START_PTR(slice), frame_bytes, &cs->send_msg_bytes);
  cs->send_bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  cs->send_msgs = n;
  cs->send_frame_bytes = frame_bytes;
  miri_queue_gauges_locked(peer);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = cs->send_bb;
  if (peer->queue.len > 0) op.flags = GRPC_WRITE_BUFFER_HINT; /* more follows at once */
  client_batch(cs, &op, 1, &cs->t_send);
}

static void client_on_send(miri_tag *tag, bool ok) {
  miri_cstream *cs = tag->self;
  miri_peer *peer = cs->peer;
  mir_lock_acquire(&peer->mu);
  cs->pending--;
  grpc_byte_buffer_destroy(cs->send_bb);
  cs->send_bb = NULL;
  if (ok) {
    /* Messages last, so that a reader who sees them counted sees their frame too. */
    mir_counter_add(peer->mx.bytes_sent, cs->send_frame_bytes);
    mir_counter_inc(peer->mx.frames_sent);
    mir_counter_add(peer->mx.msgs_sent, cs->send_msgs);
    miri_client_kick_locked(peer);
  } else {
    /* The stream broke under this frame: it is lost, never resent. */
    mir_counter_add(peer->mx.msgs_dropped, cs->send_msgs);
    mir_counter_add(peer->net->dropped[MIRI_DROP_STREAM_BROKEN], cs->send_msgs);
  }
  client_maybe_free_locked(cs);
  mir_lock_release(&peer->mu);
}

/* ---- opening and closing ---- */

/* True if the server's initial metadata names the peer we dial. */
static bool client_accepted(const miri_cstream *cs) {
  const char *want = cs->peer->id;
  size_t want_len = strlen(want), key_len = strlen(MIR_NET_ID_METADATA);
  for (size_t i = 0; i < cs->imd.count; i++) {
    const grpc_metadata *e = &cs->imd.metadata[i];
    if (GRPC_SLICE_LENGTH(e->key) == key_len &&
        memcmp(GRPC_SLICE_START_PTR(e->key), MIR_NET_ID_METADATA, key_len) == 0) {
      return GRPC_SLICE_LENGTH(e->value) == want_len &&
             memcmp(GRPC_SLICE_START_PTR(e->value), want, want_len) == 0;
    }
  }
  return false;
}

static void client_on_start(miri_tag *tag, bool ok) {
  miri_cstream *cs = tag->self;
  miri_peer *peer = cs->peer;
  mir_net_grpc *net = peer->net;
  mir_lock_acquire(&peer->mu);
  cs->pending--;
  if (ok && !cs->done && client_accepted(cs)) {
    cs->ready = true;
    /* add_fetch: the first stream is the only one that is not a reconnect. */
    if (mir_counter_add_fetch(peer->mx.streams_opened, 1) > 1) mir_counter_inc(peer->mx.reconnects);
    mir_gauge_set(peer->mx.connected, 1);
    peer->backoff_ms = net->cfg.backoff_min_ms;
    mir_log(MIR_LOG_DEBUG, NET_LOG, "%s: stream to %s open", net->own_id, peer->id);
    miri_client_kick_locked(peer);
  } else if (ok && !cs->done && cs->imd.count > 0) {
    /* Something answered at that address, but not the peer (a wrong address in the membership):
     * the status handler counts the failure. */
    grpc_call_cancel_with_status(cs->call, GRPC_STATUS_FAILED_PRECONDITION,
                                 "the server is not the expected replica", NULL);
  }
  client_maybe_free_locked(cs);
  mir_lock_release(&peer->mu);
}

/* Logs why a stream ended (rate-limited per peer). Caller holds peer->mu. */
static void client_log_end(miri_cstream *cs) {
  miri_peer *peer = cs->peer;
  uint64_t skipped;
  if (atomic_load(&peer->net->stopping) || !miri_ratelimit_allow(&peer->fail_log, &skipped)) return;
  char *details = grpc_slice_to_c_string(cs->details);
  mir_log(cs->ready ? MIR_LOG_WARN : MIR_LOG_INFO, NET_LOG,
          "%s: stream to %s (%s) %s: status %d %s (%llu more)", peer->net->own_id, peer->id,
          peer->addr, cs->ready ? "closed" : "not accepted", (int)cs->status, details,
          (unsigned long long)skipped);
  gpr_free(details);
}

static void client_on_status(miri_tag *tag, bool ok) {
  miri_cstream *cs = tag->self;
  miri_peer *peer = cs->peer;
  mir_net_grpc *net = peer->net;
  (void)ok; /* a batch with RECV_STATUS_ON_CLIENT always succeeds; the status says why */
  mir_lock_acquire(&peer->mu);
  cs->pending--;
  cs->done = true;
  if (peer->out == cs) {
    peer->out = NULL;
    mir_gauge_set(peer->mx.connected, 0);
  }
  if (!cs->ready) mir_counter_inc(peer->mx.connect_failures);
  client_log_end(cs);
  /* Reopen soon after a working stream broke; back off while attempts keep failing. */
  if (cs->ready) peer->backoff_ms = net->cfg.backoff_min_ms;
  peer->next_attempt_ns = mir_now_ns() + (uint64_t)peer->backoff_ms * 1000000u;
  uint32_t next = peer->backoff_ms * 2;
  peer->backoff_ms = next > net->cfg.backoff_max_ms ? net->cfg.backoff_max_ms : next;
  client_maybe_free_locked(cs);
  mir_lock_release(&peer->mu);
}

/* Opens peer's stream. Caller holds peer->mu; peer->out is NULL. */
static void client_open_locked(miri_peer *peer) {
  mir_net_grpc *net = peer->net;
  miri_cstream *cs = mir_xcalloc(1, sizeof *cs);
  cs->peer = peer;
  cs->t_start = (miri_tag){client_on_start, cs};
  cs->t_status = (miri_tag){client_on_status, cs};
  cs->t_send = (miri_tag){client_on_send, cs};
  grpc_metadata_array_init(&cs->imd);
  grpc_metadata_array_init(&cs->trailing);
  cs->details = grpc_empty_slice();
  cs->md.key = grpc_slice_from_static_string(MIR_NET_ID_METADATA);
  cs->md.value = grpc_slice_from_static_string(net->own_id);
  /* No deadline: the stream lives as long as both ends do; keepalive detects a dead peer. */
  cs->call = grpc_channel_create_call(peer->channel, NULL, GRPC_PROPAGATE_DEFAULTS, net->client_cq,
                                      grpc_slice_from_static_string(MIR_NET_STREAM_METHOD), NULL,
                                      gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  MIR_ASSERT(cs->call != NULL);
  client_live_add(net, 1);
  peer->out = cs;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = 1;
  ops[0].data.send_initial_metadata.metadata = &cs->md;
  ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[1].data.recv_initial_metadata.recv_initial_metadata = &cs->imd;
  client_batch(cs, ops, 2, &cs->t_start);
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &cs->trailing;
  ops[0].data.recv_status_on_client.status = &cs->status;
  ops[0].data.recv_status_on_client.status_details = &cs->details;
  ops[0].data.recv_status_on_client.error_string = &cs->error_string;
  client_batch(cs, ops, 1, &cs->t_status);
}

/* Opens the streams that are due; returns the earliest time another one falls due. */
static uint64_t client_poll(mir_net_grpc *net, uint64_t now) {
  uint64_t next = now + (uint64_t)MIRI_CLIENT_TICK_MS * 1000000u;
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_peer *peer = &net->peers[i];
    if (peer->is_self) continue;
    mir_lock_acquire(&peer->mu);
    if (peer->out == NULL && !atomic_load(&net->stopping)) {
      if (now >= peer->next_attempt_ns) {
        client_open_locked(peer);
      } else if (peer->next_attempt_ns < next) {
        next = peer->next_attempt_ns;
      }
    }
    mir_lock_release(&peer->mu);
  }
  return next;
}

static void *client_main(void *arg) {
  mir_net_grpc *net = arg;
  pthread_setname_np(pthread_self(), "mir-net-client");
  uint64_t next_poll = 0;
  for (;;) {
    uint64_t now = mir_now_ns();
    if (now >= next_poll) next_poll = client_poll(net, now);
    uint64_t wait_ms = next_poll > now ? (next_poll - now + 999999u) / 1000000u : 0;
    grpc_event ev = grpc_completion_queue_next(net->client_cq, client_deadline_ms(wait_ms), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    miri_tag *tag = ev.tag;
    tag->fn(tag, ev.success != 0);
  }
  return NULL;
}

/* ---- lifecycle ---- */

/* Fills a (at least 12 entries) with the channel arguments for peer. uri is the buffer for the
 * expected server identity (TLS). */
static grpc_channel_args client_args(const mir_net_grpc *net, const miri_peer *peer, grpc_arg *a,
                                     char *uri, size_t uri_size) {
  size_t n = 0;
  int ka = (int)net->cfg.keepalive_ms;
  int bmin = (int)net->cfg.backoff_min_ms, bmax = (int)net->cfg.backoff_max_ms;
  int max_msg = (int)net->cfg.max_message_bytes;
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = max_msg}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = max_msg}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = ka}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = ka}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}};
  /* The channel's own reconnect delays follow ours. Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC
   * uses it as the connect timeout (default 20 s), and a short one fails slow handshakes. */
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, {.integer = bmin}};
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, {.integer = bmax}};
  /* Each transport keeps its own connections, even with several nodes in one process. */
  a[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, {.integer = 1}};
  if (!net->cfg.insecure) {
    /* The server must present the certificate of the replica we dial. */
    miri_replica_uri(peer->id, uri, uri_size);
    a[n++] = (grpc_arg){GRPC_ARG_STRING, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, {.string = uri}};
  }
  return (grpc_channel_args){n, a};
}

mir_err miri_client_start(mir_net_grpc *net) {
  net->client_cq = grpc_completion_queue_create_for_next(NULL);
  grpc_channel_credentials *creds = miri_channel_credentials(net);
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_peer *peer = &net->peers[i];
    if (peer->is_self) continue;
    grpc_arg a[12];
    char uri[MIR_NET_ID_MAX + 16];
    grpc_channel_args args = client_args(net, peer, a, uri, sizeof uri);
    peer->channel = grpc_channel_create(peer->addr, creds, &args);
    peer->backoff_ms = net->cfg.backoff_min_ms;
    peer->next_attempt_ns = 0;
  }
  grpc_channel_credentials_release(creds);
  if (pthread_create(&net->client_thread, NULL, client_main, net) != 0) {
    return mir_error_set(MIR_ENOMEM, "cannot create the transport's client thread");
  }
  net->client_thread_started = true;
  return MIR_OK;
}

void miri_client_stop(mir_net_grpc *net) {
  if (net->client_cq == NULL) return;
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_peer *peer = &net->peers[i];
    mir_lock_acquire(&peer->mu);
    if (peer->out != NULL) grpc_call_cancel(peer->out->call, NULL);
    mir_lock_release(&peer->mu);
  }
  if (net->client_thread_started) {
    /* The client thread keeps polling and frees each context after its last completion. */
    pthread_mutex_lock(&net->client_mu);
    while (net->client_live > 0) pthread_cond_wait(&net->client_cv, &net->client_mu);
    pthread_mutex_unlock(&net->client_mu);
  }
  for (size_t i = 0; i < net->n_peers; i++) {
    if (net->peers[i].channel != NULL) grpc_channel_destroy(net->peers[i].channel);
    net->peers[i].channel = NULL;
  }
  grpc_completion_queue_shutdown(net->client_cq);
  if (net->client_thread_started) {
    pthread_join(net->client_thread, NULL);
    net->client_thread_started = false;
  } else {
    while (
        grpc_completion_queue_next(net->client_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
        GRPC_QUEUE_SHUTDOWN) {
    }
  }
  grpc_completion_queue_destroy(net->client_cq);
  net->client_cq = NULL;
}
