/*
 * The gRPC peer transport module (mir/net_grpc.h): configuration, the module ops, delivery to
 * self, and statistics. The incoming side is in net_server.c, the outgoing side in net_client.c.
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
 * Locks: see net_internal.h. Here: peer->mu around each queue append and around the statistics
 * copy; self->mu with self_cv for the self thread; stats_mu for transport-wide counters.
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

void miri_stat_add(mir_net_grpc *net, uint64_t *counter, uint64_t n) {
  pthread_mutex_lock(&net->stats_mu);
  *counter += n;
  pthread_mutex_unlock(&net->stats_mu);
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
    pthread_mutex_init(&p->mu, NULL);
    miri_queue_init(&p->queue, cfg->queue_max_msgs, cfg->queue_max_bytes);
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
    pthread_mutex_destroy(&net->peers[i].mu);
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
  pthread_mutex_destroy(&net->stats_mu);
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
  pthread_mutex_init(&net->stats_mu, NULL);
  net_peers_init(net, cfg);
  net->st.members = net->n_peers;
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
  return n;
}

static void *net_self_main(void *arg) {
  mir_net_grpc *net = arg;
  pthread_setname_np(pthread_self(), "mir-net-self");
  miri_peer *self = net->self;
  pthread_mutex_lock(&self->mu);
  for (;;) {
    while (self->queue.len == 0 && !atomic_load(&net->stopping)) {
      pthread_cond_wait(&net->self_cv, &self->mu);
    }
    if (atomic_load(&net->stopping)) break;
    mir_event_list events = MIR_EVENT_LIST_INIT;
    uint64_t bytes = 0;
    size_t n = net_self_take_locked(net, &events, &bytes);
    pthread_mutex_unlock(&self->mu);
    mir_err err = mir_inbox_push(net->inbox, &events); /* may block: backpressure */
    pthread_mutex_lock(&self->mu);
    if (err != MIR_OK) break; /* the node is stopping */
    self->st.msgs_sent += n;
    self->st.msgs_received += n;
    self->st.bytes_sent += bytes;
    self->st.bytes_received += bytes;
  }
  pthread_mutex_unlock(&self->mu);
  return NULL;
}

/* ---- apply ---- */

/* Counts (and logs, rate-limited) a message dropped for peer. Caller holds peer->mu. */
static void net_drop_locked(mir_net_grpc *net, miri_peer *peer, size_t bytes, const char *why) {
  peer->st.msgs_dropped++;
  peer->st.bytes_dropped += bytes;
  uint64_t skipped;
  if (miri_ratelimit_allow(&peer->drop_log, &skipped)) {
    mir_log(MIR_LOG_WARN, NET_LOG, "%s: dropped a message to %s: %s (%llu more)", net->own_id,
            peer->id, why, (unsigned long long)skipped);
  }
}

/* Queues m (borrowed) for peer, or drops it at the queue's bound. */
static void net_enqueue(mir_net_grpc *net, miri_peer *peer, miri_msg *m, bool oversize) {
  pthread_mutex_lock(&peer->mu);
  if (oversize) {
    net_drop_locked(net, peer, m->len, "larger than max_message_bytes");
  } else if (!miri_queue_push(&peer->queue, miri_msg_ref(m))) {
    miri_msg_unref(m);
    net_drop_locked(net, peer, m->len, "send queue full");
  } else if (peer->is_self) {
    pthread_cond_signal(&net->self_cv);
  } else {
    miri_client_kick_locked(peer);
  }
  pthread_mutex_unlock(&peer->mu);
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
      miri_stat_add(net, &net->st.unknown_dest_dropped, 1);
      uint64_t skipped;
      if (miri_ratelimit_allow(&net->unknown_log, &skipped)) {
        mir_log(MIR_LOG_WARN, NET_LOG, "%s: dropped a message to unknown node %.64s (%llu more)",
                net->own_id, dest, (unsigned long long)skipped);
      }
      continue;
    }
    bool first = m == NULL;
    if (first) {
      m = miri_msg_encode(pm);
      oversize = miri_frame_entry_size(m->len) > net->cfg.max_message_bytes;
    }
    net_enqueue(net, peer, m, oversize);
    /* Counted once per message, after the peer's own drop counter, so that a reader who sees
     * this count also sees the peer's. */
    if (first && oversize) miri_stat_add(net, &net->st.oversize_dropped, 1);
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
    pthread_mutex_lock(&net->self->mu);
    pthread_cond_broadcast(&net->self_cv);
    pthread_mutex_unlock(&net->self->mu);
    pthread_join(net->self_thread, NULL);
    net->self_thread_started = false;
  }
  miri_client_stop(net);
  miri_server_stop(net);
  net->state = MIRI_STOPPED;
}

const mir_module_ops mir_net_grpc_ops = {
    .name = "net-grpc",
    .kind = MIR_MODULE_ACTIVE,
    .apply = net_apply,
    .start = net_start,
    .stop = net_stop,
    .destroy = net_destroy,
};

/* ---- statistics ---- */

mir_err mir_net_grpc_peer_stats_get(mir_net_grpc *net, const char *peer_id,
                                    mir_net_grpc_peer_stats *out) {
  miri_peer *peer = miri_peer_find(net, peer_id, strnlen(peer_id, MIR_NET_ID_MAX));
  if (peer == NULL) return mir_error_set(MIR_ENOTFOUND, "net: %.64s is not a member", peer_id);
  pthread_mutex_lock(&peer->mu);
  *out = peer->st;
  strcpy(out->id, peer->id);
  out->connected = miri_client_connected_locked(peer);
  out->incoming = peer->in != NULL;
  out->queued_msgs = peer->queue.len;
  out->queued_bytes = peer->queue.bytes;
  pthread_mutex_unlock(&peer->mu);
  return MIR_OK;
}

void mir_net_grpc_stats_get(mir_net_grpc *net, mir_net_grpc_stats *out) {
  pthread_mutex_lock(&net->stats_mu);
  *out = net->st;
  pthread_mutex_unlock(&net->stats_mu);
}
