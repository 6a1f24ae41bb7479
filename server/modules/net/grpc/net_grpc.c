/*
 * The gRPC peer transport module (mir/net_grpc.h): configuration, the module ops, delivery to
 * self, and the registration of its metrics. The incoming side is in net_server.c, the outgoing
 * side in net_client.c.
 *
 * apply() runs on the node's dispatcher and never blocks: each SendMessage's message is encoded
 * once (miri_msg, shared by reference among its destinations) and appended to each destination's
 * bounded queue under that peer's mutex; when the peer's stream is idle apply starts the send
 * itself, otherwise the client thread continues from the send completion. Messages to self go to
 * the self peer's queue, which the self thread moves into the inbox (the dispatcher must never
 * push into its own node's inbox: it could block on itself).
 *
 * Lifecycle: new() checks the config, reads the TLS files, calls grpc_init() and binds the
 * listening port (so port 0 can be resolved before any node starts); start() starts the server,
 * the client and the self threads; stop() sets `stopping`, joins the self thread, then stops the
 * client side and the server side, each of which cancels its calls and waits until every call
 * context is freed before destroying gRPC objects; destroy() frees the rest and calls
 * grpc_shutdown(). stop() is also reached from destroy() for a module that was started, and a
 * module that was never started tears down its bound server without any thread.
 *
 * Locks: see net_internal.h. Here: peer->mu around each queue append; self->mu with self_cv for
 * the self thread. Counters are registry cells, updated without a lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir/alloc.h"
#include "mir/assert.h"
#include "mir/log.h"
#include "net_internal.h"

/* Upper bounds on the limits a config may ask for (each keeps memory or time bounded). */
#define NET_QUEUE_MSGS_MAX ((size_t)1 << 24)
#define NET_QUEUE_BYTES_MAX ((size_t)1 << 40)
#define NET_FRAME_MSGS_MAX ((size_t)1 << 20)
#define NET_BACKOFF_MS_MAX 3600000u
#define NET_KEEPALIVE_MS_MIN 100u
#define NET_KEEPALIVE_MS_MAX 86400000u

/* ---- small shared helpers ---- */

bool miri_ratelimit_allow(miri_ratelimit *rl, uint64_t *suppressed) {
  uint64_t now = mir_now_ns();
  uint64_t last = atomic_load(&rl->last_ns);
  if ((last != 0 && now - last < 1000000000u) ||
      !atomic_compare_exchange_strong(&rl->last_ns, &last, now)) {
    atomic_fetch_add(&rl->suppressed, 1);
    return false;
  }
  *suppressed = atomic_exchange(&rl->suppressed, 0);
  return true;
}

miri_peer *miri_peer_find(mir_net_grpc *net, const char *id, size_t len) {
  /* A linear scan: memberships are small (MIR_NET_MEMBERS_MAX) and ids short. */
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_peer *p = &net->peers[i];
    if (strlen(p->id) == len && memcmp(p->id, id, len) == 0) return p;
  }
  return NULL;
}

void miri_queue_gauges_locked(miri_peer *peer) {
  mir_gauge_set(peer->mx.queue_msgs, (int64_t)peer->queue.len);
  mir_gauge_set(peer->mx.queue_bytes, (int64_t)peer->queue.bytes);
}

/* ---- metrics ---- */

/* Registers peer's metrics in a new set named after it, below the transport's set. */
static void net_peer_metrics_init(mir_net_grpc *net, miri_peer *p) {
  miri_peer_metrics *x = &p->mx;
  mir_metrics *m = x->set = mir_metrics_new(p->id);
  mir_metrics_attach(net->metrics, m);
  const char *id = p->id;
#define NET_COUNTER(name, help) mir_metrics_counter(m, name, help, "peer", id)
#define NET_GAUGE(name, help) mir_metrics_gauge(m, name, help, "peer", id)
  x->msgs_sent = NET_COUNTER("mir_net_messages_sent_total",
                             "Messages sent to the peer (accepted by gRPC; to self: delivered).");
  x->bytes_sent = NET_COUNTER("mir_net_sent_bytes_total",
                              "Bytes of the frames sent to the peer (to self: of the messages).");
  x->frames_sent = NET_COUNTER("mir_net_frames_sent_total", "Frames sent to the peer.");
  x->msgs_received = NET_COUNTER("mir_net_messages_received_total",
                                 "Messages from the peer pushed into the node's inbox.");
  x->bytes_received = NET_COUNTER("mir_net_received_bytes_total",
                                  "Bytes of the frames received from the peer and delivered.");
  x->frames_received =
      NET_COUNTER("mir_net_frames_received_total", "Frames received from the peer and delivered.");
  x->msgs_dropped = NET_COUNTER("mir_net_peer_messages_dropped_total",
                                "Messages to the peer dropped (queue full, oversized, or in the "
                                "frame in flight when the stream broke).");
  x->streams_opened =
      NET_COUNTER("mir_net_streams_opened_total", "Outgoing streams the peer accepted.");
  x->reconnects = NET_COUNTER("mir_net_reconnects_total",
                              "Outgoing streams the peer accepted after the first.");
  x->connect_failures = NET_COUNTER("mir_net_connect_failures_total",
                                    "Outgoing stream attempts that ended before being accepted.");
  x->refused = NET_COUNTER("mir_net_peer_streams_refused_total",
                           "Incoming streams claiming the peer's id that were refused.");
  x->malformed = NET_COUNTER("mir_net_malformed_frames_total",
                             "Frames from the peer rejected as malformed (stream cancelled).");
  x->connected = NET_GAUGE("mir_net_connected", "1 while the outgoing stream to the peer is open.");
  x->incoming = NET_GAUGE("mir_net_incoming_connected",
                          "1 while an accepted incoming stream from the peer is open.");
  x->queue_msgs = NET_GAUGE("mir_net_send_queue_depth", "Messages waiting to be sent to the peer.");
  x->queue_bytes = NET_GAUGE("mir_net_send_queue_bytes",
                             "Encoded bytes of the messages waiting to be sent to the peer.");
#undef NET_COUNTER
#undef NET_GAUGE
}

/* Registers the transport-wide metrics in a new set "net". */
static void net_metrics_init(mir_net_grpc *net) {
  static const char drop_help[] =
      "Messages the gRPC transport dropped, by reason (queue_full, oversized, stream_broken: in "
      "the frame in flight when its stream broke, unknown_destination).";
  static const char *const drops[MIRI_DROP_N] = {"queue_full", "oversized", "stream_broken",
                                                 "unknown_destination"};
  static const char refuse_help[] =
      "Incoming peer streams refused, by reason (no_id, bad_id, not_member, own_id, "
      "certificate).";
  static const char *const refusals[MIRI_REFUSE_N] = {"no_id", "bad_id", "not_member", "own_id",
                                                      "certificate"};
  mir_metrics *m = net->metrics = mir_metrics_new("net");
  for (size_t i = 0; i < MIRI_DROP_N; i++) {
    net->dropped[i] =
        mir_metrics_counter(m, "mir_net_messages_dropped_total", drop_help, "reason", drops[i]);
  }
  for (size_t i = 0; i < MIRI_REFUSE_N; i++) {
    net->refused[i] =
        mir_metrics_counter(m, "mir_net_streams_refused_total", refuse_help, "reason", refusals[i]);
  }
  net->unknown_calls = mir_metrics_counter(
      m, "mir_net_unknown_calls_total",
      "Incoming calls to other methods than the peer stream (UNIMPLEMENTED).", NULL, NULL);
}

/* ---- configuration ---- */

void mir_net_grpc_config_default(mir_net_grpc_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_message_bytes = (size_t)4 << 20;
  cfg->queue_max_msgs = 8192;
  cfg->queue_max_bytes = (size_t)64 << 20;
  cfg->frame_max_msgs = 1024;
  cfg->frame_max_bytes = (size_t)1 << 20;
  cfg->backoff_min_ms = 100;
  cfg->backoff_max_ms = 1000;
  cfg->keepalive_ms = 10000;
}

static bool net_str_ok(const char *s, size_t max) {
  return s != NULL && s[0] && strnlen(s, max) < max;
}

static mir_err net_check_members(const mir_net_grpc_config *cfg) {
  if (cfg->members == NULL || cfg->n_members == 0 || cfg->n_members > MIR_NET_MEMBERS_MAX) {
    return mir_error_set(MIR_EINVAL, "net: the membership needs 1..%d members",
                         MIR_NET_MEMBERS_MAX);
  }
  bool self_found = false;
  for (size_t i = 0; i < cfg->n_members; i++) {
    const mir_net_member *m = &cfg->members[i];
    if (m->id == NULL || !miri_node_id_valid(m->id, strnlen(m->id, MIR_NET_ID_MAX))) {
      return mir_error_set(MIR_EINVAL, "net: member %zu has an invalid id", i);
    }
    bool self = strcmp(m->id, cfg->own_id) == 0;
    if (!self && !net_str_ok(m->addr, MIR_NET_ADDR_MAX)) {
      return mir_error_set(MIR_EINVAL, "net: member %s has no valid address", m->id);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->members[j].id, m->id) == 0) {
        return mir_error_set(MIR_EINVAL, "net: member %s is listed twice", m->id);
      }
    }
    self_found |= self;
  }
  if (!self_found) return mir_error_set(MIR_EINVAL, "net: own id %s is not a member", cfg->own_id);
  return MIR_OK;
}

static mir_err net_check_limits(const mir_net_grpc_config *cfg) {
  if (cfg->max_message_bytes < MIR_NET_MESSAGE_BYTES_MIN ||
      cfg->max_message_bytes > MIR_NET_MESSAGE_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL, "net: max_message_bytes must be in [%zu, %zu]",
                         MIR_NET_MESSAGE_BYTES_MIN, MIR_NET_MESSAGE_BYTES_MAX);
  }
  if (cfg->frame_max_bytes == 0 || cfg->frame_max_bytes > cfg->max_message_bytes ||
      cfg->frame_max_msgs == 0 || cfg->frame_max_msgs > NET_FRAME_MSGS_MAX) {
    return mir_error_set(MIR_EINVAL,
                         "net: frame_max_bytes must be in [1, max_message_bytes] and "
                         "frame_max_msgs in [1, %zu]",
                         NET_FRAME_MSGS_MAX);
  }
  if (cfg->queue_max_msgs == 0 || cfg->queue_max_msgs > NET_QUEUE_MSGS_MAX ||
      cfg->queue_max_bytes == 0 || cfg->queue_max_bytes > NET_QUEUE_BYTES_MAX) {
    return mir_error_set(MIR_EINVAL,
                         "net: queue bounds must be in [1, %zu] messages and "
                         "[1, %zu] bytes",
                         NET_QUEUE_MSGS_MAX, NET_QUEUE_BYTES_MAX);
  }
  if (cfg->backoff_min_ms == 0 || cfg->backoff_max_ms < cfg->backoff_min_ms ||
      cfg->backoff_max_ms > NET_BACKOFF_MS_MAX) {
    return mir_error_set(MIR_EINVAL, "net: backoff must satisfy 0 < min <= max <= %u ms",
                         NET_BACKOFF_MS_MAX);
  }
  if (cfg->keepalive_ms < NET_KEEPALIVE_MS_MIN || cfg->keepalive_ms > NET_KEEPALIVE_MS_MAX) {
    return mir_error_set(MIR_EINVAL, "net: keepalive_ms must be in [%u, %u]", NET_KEEPALIVE_MS_MIN,
                         NET_KEEPALIVE_MS_MAX);
  }
  return MIR_OK;
}

static mir_err net_check_config(const mir_net_grpc_config *cfg) {
  if (cfg == NULL || cfg->own_id == NULL ||
      !miri_node_id_valid(cfg->own_id, strnlen(cfg->own_id, MIR_NET_ID_MAX))) {
    return mir_error_set(MIR_EINVAL, "net: own_id is missing or invalid");
  }
  if (!net_str_ok(cfg->listen_addr, MIR_NET_ADDR_MAX)) {
    return mir_error_set(MIR_EINVAL, "net: listen_addr is missing or too long");
  }
  bool any_tls = cfg->tls_ca_file || cfg->tls_cert_file || cfg->tls_key_file;
  bool all_tls = cfg->tls_ca_file && cfg->tls_cert_file && cfg->tls_key_file;
  if (cfg->insecure ? any_tls : !all_tls) {
    return mir_error_set(MIR_EINVAL,
                         "net: give all three TLS files (tls_ca_file, tls_cert_file, "
                         "tls_key_file), or none with insecure = true");
  }
  mir_err err = net_check_members(cfg);
  return err != MIR_OK ? err : net_check_limits(cfg);
}

/* ---- creation and destruction ---- */

static void net_peers_init(mir_net_grpc *net, const mir_net_grpc_config *cfg) {
  net->n_peers = cfg->n_members;
  net->peers = mir_xcalloc(net->n_peers, sizeof *net->peers);
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_peer *p = &net->peers[i];
    p->net = net;
    p->index = i;
    strcpy(p->id, cfg->members[i].id); /* lengths checked by net_check_members */
    p->is_self = strcmp(p->id, cfg->own_id) == 0;
    if (!p->is_self) strcpy(p->addr, cfg->members[i].addr);
    if (p->is_self) net->self = p;
    mir_lock_init(&p->mu, net->metrics, "net_grpc_send_queue");
    miri_queue_init(&p->queue, cfg->queue_max_msgs, cfg->queue_max_bytes);
    net_peer_metrics_init(net, p);
  }
}

static void net_stop(void *state);

static void net_destroy(void *state) {
  mir_net_grpc *net = state;
  if (net == NULL) return;
  net_stop(net);
  miri_server_stop(net); /* a server that was bound but never started */
  for (size_t i = 0; i < net->n_peers; i++) {
    miri_queue_fini(&net->peers[i].queue);
    mir_lock_fini(&net->peers[i].mu);
    mir_metrics_free(net->peers[i].mx.set);
  }
  free(net->peers);
  free(net->tls_ca);
  free(net->tls_cert);
  free(net->tls_key);
  pthread_mutex_destroy(&net->server_mu);
  pthread_cond_destroy(&net->server_cv);
  pthread_mutex_destroy(&net->client_mu);
  pthread_cond_destroy(&net->client_cv);
  pthread_cond_destroy(&net->self_cv);
  mir_metrics_free(net->metrics);
  free(net);
  grpc_shutdown(); /* matches the grpc_init of mir_net_grpc_new */
}

void mir_net_grpc_free(mir_net_grpc *net) {
  net_destroy(net);
}

static mir_err net_read_tls(mir_net_grpc *net, const mir_net_grpc_config *cfg) {
  if (cfg->insecure) return MIR_OK;
  mir_err err = miri_read_pem(cfg->tls_ca_file, &net->tls_ca);
  if (err == MIR_OK) err = miri_read_pem(cfg->tls_cert_file, &net->tls_cert);
  if (err == MIR_OK) err = miri_read_pem(cfg->tls_key_file, &net->tls_key);
  return err;
}

mir_err mir_net_grpc_new(const mir_net_grpc_config *cfg, mir_net_grpc **out) {
  mir_err err = net_check_config(cfg);
  if (err != MIR_OK) return err;
  mir_net_grpc *net = mir_xcalloc(1, sizeof *net);
  net->cfg = *cfg;
  net->cfg.own_id = net->cfg.listen_addr = NULL;
  net->cfg.members = NULL;
  net->cfg.tls_ca_file = net->cfg.tls_cert_file = net->cfg.tls_key_file = NULL;
  strcpy(net->own_id, cfg->own_id);
  strcpy(net->listen_addr, cfg->listen_addr);
  atomic_init(&net->stopping, false);
  pthread_mutex_init(&net->server_mu, NULL);
  pthread_cond_init(&net->server_cv, NULL);
  pthread_mutex_init(&net->client_mu, NULL);
  pthread_cond_init(&net->client_cv, NULL);
  pthread_cond_init(&net->self_cv, NULL);
  net_metrics_init(net);
  net_peers_init(net, cfg);
  grpc_init(); /* before any failure path: net_destroy always calls grpc_shutdown */
  err = net_read_tls(net, cfg);
  if (err == MIR_OK) err = miri_server_create(net);
  if (err != MIR_OK) {
    char detail[256];
    snprintf(detail, sizeof detail, "%s", mir_error_detail());
    net_destroy(net);
    return mir_error_set(err, "%s", detail);
  }
  *out = net;
  return MIR_OK;
}

int mir_net_grpc_port(const mir_net_grpc *net) {
  return net->port;
}

/* ---- delivery to self ---- */

/* Moves up to MIRI_SELF_BATCH messages from the self queue into events. Caller holds self->mu. */
static size_t net_self_take_locked(mir_net_grpc *net, mir_event_list *events, uint64_t *bytes) {
  size_t n = 0;
  miri_msg *m;
  while (n < MIRI_SELF_BATCH && (m = miri_queue_pop(&net->self->queue)) != NULL) {
    Mir__PackedMessage *pm = mir__packed_message__unpack(NULL, m->len, m->data);
    MIR_ASSERT(pm != NULL); /* our own encoding of a message apply() checked */
    mir_event_list_push(events, mir_event_message_received(net->own_id, pm));
    *bytes += m->len;
    miri_msg_unref(m);
    n++;
  }
  miri_queue_gauges_locked(net->self);
  return n;
}

static void *net_self_main(void *arg) {
  mir_net_grpc *net = arg;
  pthread_setname_np(pthread_self(), "mir-net-self");
  miri_peer *self = net->self;
  mir_lock_acquire(&self->mu);
  for (;;) {
    while (self->queue.len == 0 && !atomic_load(&net->stopping)) {
      pthread_cond_wait(&net->self_cv, &self->mu.mu);
    }
    if (atomic_load(&net->stopping)) break;
    mir_event_list events = MIR_EVENT_LIST_INIT;
    uint64_t bytes = 0;
    size_t n = net_self_take_locked(net, &events, &bytes);
    mir_lock_release(&self->mu);
    mir_err err = mir_inbox_push(net->inbox, &events); /* may block: backpressure */
    mir_lock_acquire(&self->mu);
    if (err != MIR_OK) break; /* the node is stopping */
    /* Messages last, so that a reader who sees them counted sees their bytes too. */
    mir_counter_add(self->mx.bytes_sent, bytes);
    mir_counter_add(self->mx.bytes_received, bytes);
    mir_counter_add(self->mx.msgs_sent, n);
    mir_counter_add(self->mx.msgs_received, n);
  }
  mir_lock_release(&self->mu);
  return NULL;
}

/* ---- apply ---- */

/* Counts (and logs, rate-limited) a message dropped for peer. Caller holds peer->mu. */
static void net_drop_locked(mir_net_grpc *net, miri_peer *peer, miri_drop reason, const char *why) {
  mir_counter_inc(peer->mx.msgs_dropped);
  mir_counter_inc(net->dropped[reason]);
  uint64_t skipped;
  if (miri_ratelimit_allow(&peer->drop_log, &skipped)) {
    mir_log(MIR_LOG_WARN, NET_LOG, "%s: dropped a message to %s: %s (%llu more)", net->own_id,
            peer->id, why, (unsigned long long)skipped);
  }
}

/* Queues m (borrowed) for peer, or drops it at the queue's bound. */
static void net_enqueue(mir_net_grpc *net, miri_peer *peer, miri_msg *m, bool oversize) {
  mir_lock_acquire(&peer->mu);
  if (oversize) {
    net_drop_locked(net, peer, MIRI_DROP_OVERSIZED, "larger than max_message_bytes");
  } else if (!miri_queue_push(&peer->queue, miri_msg_ref(m))) {
    miri_msg_unref(m);
    net_drop_locked(net, peer, MIRI_DROP_QUEUE_FULL, "send queue full");
  } else if (peer->is_self) {
    miri_queue_gauges_locked(peer);
    pthread_cond_signal(&net->self_cv);
  } else {
    miri_client_kick_locked(peer); /* sets the gauges, whether it sends or not */
  }
  mir_lock_release(&peer->mu);
}

static mir_err net_send(mir_net_grpc *net, const Mir__SendMessage *sm) {
  const Mir__PackedMessage *pm = sm->msg;
  if (pm == NULL || !mir_module_id_valid(pm->dest_module) || pm->type == NULL ||
      pm->type[0] == '\0' || strnlen(pm->type, MIRI_TYPE_NAME_MAX) == MIRI_TYPE_NAME_MAX) {
    return mir_error_set(MIR_EINVAL, "net %s: SendMessage without a valid message", net->own_id);
  }
  miri_msg *m = NULL; /* encoded on first use, shared by every destination */
  bool oversize = false;
  for (size_t i = 0; i < sm->n_destinations; i++) {
    const char *dest = sm->destinations[i];
    miri_peer *peer = miri_peer_find(net, dest, strnlen(dest, MIR_NET_ID_MAX));
    if (peer == NULL) {
      mir_counter_inc(net->dropped[MIRI_DROP_UNKNOWN_DEST]);
      uint64_t skipped;
      if (miri_ratelimit_allow(&net->unknown_log, &skipped)) {
        mir_log(MIR_LOG_WARN, NET_LOG, "%s: dropped a message to unknown node %.64s (%llu more)",
                net->own_id, dest, (unsigned long long)skipped);
      }
      continue;
    }
    if (m == NULL) {
      m = miri_msg_encode(pm);
      oversize = miri_frame_entry_size(m->len) > net->cfg.max_message_bytes;
    }
    net_enqueue(net, peer, m, oversize);
  }
  miri_msg_unref(m);
  return MIR_OK;
}

static mir_err net_apply(void *state, mir_event_list *in, mir_event_list *out) {
  mir_net_grpc *net = state;
  (void)out;
  MIR_EVENT_LIST_FOREACH(in, ev) {
    if (mir_event_is(ev, &mir__init__descriptor)) continue;
    if (!mir_event_is(ev, &mir__send_message__descriptor)) {
      return mir_error_set(MIR_EINVAL, "net %s: unexpected event %s", net->own_id,
                           mir_event_type_name(ev));
    }
    mir_err err = net_send(net, (const Mir__SendMessage *)ev->payload);
    if (err != MIR_OK) return err;
  }
  return MIR_OK;
}

/* ---- start and stop ---- */

static mir_err net_start(void *state, mir_inbox *inbox) {
  mir_net_grpc *net = state;
  MIR_ASSERT(net->state == MIRI_CREATED);
  net->inbox = inbox;
  net->state = MIRI_RUNNING; /* from here on, stop (or destroy) undoes whatever started */
  mir_err err = miri_server_start(net);
  if (err == MIR_OK) err = miri_client_start(net);
  if (err == MIR_OK) {
    if (pthread_create(&net->self_thread, NULL, net_self_main, net) != 0) {
      err = mir_error_set(MIR_ENOMEM, "cannot create the transport's self thread");
    } else {
      net->self_thread_started = true;
    }
  }
  if (err != MIR_OK) net_stop(net);
  return err;
}

static void net_stop(void *state) {
  mir_net_grpc *net = state;
  if (net->state != MIRI_RUNNING) return;
  atomic_store(&net->stopping, true);
  if (net->self_thread_started) {
    mir_lock_acquire(&net->self->mu);
    pthread_cond_broadcast(&net->self_cv);
    mir_lock_release(&net->self->mu);
    pthread_join(net->self_thread, NULL);
    net->self_thread_started = false;
  }
  miri_client_stop(net);
  miri_server_stop(net);
  net->state = MIRI_STOPPED;
}

static mir_metrics *net_metrics(void *state) {
  return ((mir_net_grpc *)state)->metrics;
}

const mir_module_ops mir_net_grpc_ops = {
    .name = "net-grpc",
    .kind = MIR_MODULE_ACTIVE,
    .apply = net_apply,
    .start = net_start,
    .stop = net_stop,
    .destroy = net_destroy,
    .metrics = net_metrics,
};

/* ---- metrics ---- */

mir_metrics *mir_net_grpc_metrics(mir_net_grpc *net) {
  return net->metrics;
}
