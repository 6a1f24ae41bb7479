/*
 * Assembling and running a replica (replica.h).
 *
 * Order of construction: membership, store and ordered log first (they fail on bad files without
 * touching the network), then the node and its modules: crypto (the key must match the
 * membership), net (binds the peer address), timer, client service (binds the client address),
 * and Trantor's protocol modules with the ordered log as the application. Everything added to the
 * node belongs to it from then on; mir_replica_free stops the node before freeing the log and
 * closing the store, which the application callbacks and the client service use.
 *
 * Crypto: the replica links mir_crypto_ossl, the OpenSSL 3 backend of the crypto seam, because
 * gRPC brings OpenSSL 3 into the process and BoringSSL cannot share a process with it
 * (server/modules/crypto/CMakeLists.txt). Both backends produce the same keys, signatures and
 * hashes, so replicas and tools built on either interoperate.
 *
 * Restart: if the store holds a stable checkpoint, it is handed to ISS as a trantor.RestoreState
 * event injected before the node starts, so ISS takes it together with its Init and starts the
 * checkpoint's epoch instead of the genesis (server/trantor/iss/iss.h).
 */
#include "replica.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
#include "mir/log.h"
#include "mir/node.h"
#include "mir/timer.h"
#include "replica_internal.h"
#include "trantor_system.h"

/* ---- files and folders ---- */

/* Creates path and its parents (mode 0700 for new folders). */
static mir_err rep_mkdirs(const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof(buf)) return mir_error_set(MIR_EINVAL, "%s: path too long", path);
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1;; p++) {
    bool end = *p == '\0';
    if (*p == '/' || end) {
      *p = '\0';
      if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
        return mir_error_set(MIR_EIO, "%s: cannot create: %s", buf, strerror(errno));
      }
      if (end) break;
      *p = '/';
    }
  }
  return MIR_OK;
}

static int rep_member_cmp(const void *a, const void *b) {
  return strcmp((*(Trantor__Member *const *)a)->id, (*(Trantor__Member *const *)b)->id);
}

/* Trantor's membership (sorted by id) from the loaded file. Returns owned. */
static Trantor__Membership *rep_trantor_membership(const mir_membership *m) {
  Trantor__Membership *tm = mir_xmalloc(sizeof(*tm));
  trantor__membership__init(tm);
  tm->n_members = m->n;
  tm->members = mir_xcalloc(m->n, sizeof(*tm->members));
  for (size_t i = 0; i < m->n; i++) {
    Trantor__Member *mm = mir_xmalloc(sizeof(*mm));
    trantor__member__init(mm);
    mm->id = mir_xstrdup(m->replicas[i].id);
    mm->weight = m->replicas[i].weight;
    tm->members[i] = mm;
  }
  qsort(tm->members, tm->n_members, sizeof(*tm->members), rep_member_cmp);
  return tm;
}

static mir_err rep_load_membership(mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  mir_err err = mir_membership_load(c->membership_file, &r->m);
  if (err != MIR_OK) return err;
  if (mir_membership_find(r->m, c->id) == NULL) {
    return mir_error_set(MIR_ECONFIG, "%s: id: replica %s is not in the membership %s", c->file,
                         c->id, c->membership_file);
  }
  if (r->m->n > MIR_NET_MEMBERS_MAX || r->m->n > TRANTOR_MEMBERS_MAX) {
    return mir_error_set(MIR_ECONFIG, "%s: more than %d replicas", c->membership_file,
                         TRANTOR_MEMBERS_MAX);
  }
  r->tm = rep_trantor_membership(r->m);
  return MIR_OK;
}

static mir_err rep_open_store(mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  mir_err err = rep_mkdirs(c->data_dir);
  if (err != MIR_OK) return err;
  char path[4200];
  snprintf(path, sizeof(path), "%s/db", c->data_dir);
  mir_store_config sc;
  mir_store_config_default(&sc);
  sc.path = path;
  sc.cfs = mir_olog_cfs;
  sc.n_cfs = MIR_OLOG_N_CFS;
  sc.sync = c->store_sync;
  err = mir_store_open(&sc, &r->store);
  if (err != MIR_OK) return err;
  mir_olog_config lc;
  mir_olog_config_default(&lc);
  lc.store = r->store;
  lc.hash = miri_rep_hash;
  lc.retention_sns = c->retention_sns;
  return mir_olog_open(&lc, &r->log);
}

/* ---- modules ---- */

void miri_rep_hash(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[32]) {
  mir_hash_ctx ctx;
  mir_hash_init(&ctx);
  for (size_t i = 0; i < n; i++) mir_hash_update_part(&ctx, parts[i], lens[i]);
  mir_hash_final(&ctx, out);
}

/* The crypto module's state for the replica's key (checked against the membership). */
static mir_err rep_crypto_state(const mir_replica *r, size_t workers, void **state) {
  mir_private_key *key = NULL;
  mir_err err = mir_private_key_load(r->cfg->key_file, &key);
  mir_keyset *keys = NULL;
  if (err == MIR_OK) err = mir_keyset_from_membership(r->m, r->cfg->id, key, &keys);
  if (err == MIR_OK) {
    mir_crypto_config cc;
    mir_crypto_config_default(&cc);
    cc.workers = workers;
    err = mir_crypto_module_new(keys, &cc, state); /* takes the key set */
  }
  if (err != MIR_OK) {
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s: key_file: %s", r->cfg->file, detail);
  }
  return MIR_OK;
}

static mir_err rep_add_crypto(mir_replica *r) {
  void *state = NULL;
  mir_err err = rep_crypto_state(r, r->cfg->crypto_workers, &state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(r->node, "crypto", &mir_crypto_module_ops, state);
}

static void rep_net_limits(const mir_replica_net_limits *l, mir_net_grpc_config *nc) {
  if (l->max_message_bytes) nc->max_message_bytes = l->max_message_bytes;
  if (l->queue_max_msgs) nc->queue_max_msgs = l->queue_max_msgs;
  if (l->queue_max_bytes) nc->queue_max_bytes = l->queue_max_bytes;
  if (l->backoff_min_ms) nc->backoff_min_ms = (uint32_t)l->backoff_min_ms;
  if (l->backoff_max_ms) nc->backoff_max_ms = (uint32_t)l->backoff_max_ms;
  if (l->keepalive_ms) nc->keepalive_ms = (uint32_t)l->keepalive_ms;
  if (nc->frame_max_bytes > nc->max_message_bytes) nc->frame_max_bytes = nc->max_message_bytes;
}

static mir_err rep_add_net(mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  mir_net_member *members = mir_xcalloc(r->m->n, sizeof(*members));
  for (size_t i = 0; i < r->m->n; i++) {
    members[i].id = r->m->replicas[i].id;
    members[i].addr = r->m->replicas[i].address;
  }
  mir_net_grpc_config nc;
  mir_net_grpc_config_default(&nc);
  nc.own_id = c->id;
  nc.listen_addr =
      c->peer_listen != NULL ? c->peer_listen : mir_membership_find(r->m, c->id)->address;
  nc.members = members;
  nc.n_members = r->m->n;
  nc.tls_ca_file = c->tls_ca_file;
  nc.tls_cert_file = c->tls_cert_file;
  nc.tls_key_file = c->tls_key_file;
  nc.insecure = c->insecure;
  rep_net_limits(&c->net, &nc);
  mir_err err = mir_net_grpc_new(&nc, &r->net);
  free(members);
  if (err != MIR_OK) return err;
  return mir_node_add_module(r->node, "net", &mir_net_grpc_ops, r->net);
}

static mir_err rep_add_client(mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  mir_client_service_config cc = {0};
  cc.own_id = c->id;
  cc.listen_addr = c->client_listen;
  cc.log = r->log;
  cc.limits = c->client;
  cc.max_tx_bytes = c->trantor.max_tx_bytes;
  cc.client_window = c->trantor.client_window;
  if (c->client_tls) {
    cc.tls_cert_file = c->tls_cert_file;
    cc.tls_key_file = c->tls_key_file;
  }
  cc.peers = miri_rep_peers;
  cc.peers_user = r;
  mir_err err = mir_client_service_new(&cc, &r->client);
  if (err != MIR_OK) return err;
  return mir_node_add_module(r->node, MIR_CLIENT_SERVICE_ID, &mir_client_service_ops, r->client);
}

static mir_err rep_add_trantor(mir_replica *r) {
  trantor_app app;
  mir_olog_app(r->log, &app);
  trantor_system_config tc = {0};
  tc.self_id = r->cfg->id;
  tc.membership = r->tm;
  tc.params = &r->cfg->trantor;
  tc.hash = miri_rep_hash;
  tc.app = &app;
  return trantor_system_add_modules(r->node, &tc);
}

static mir_err rep_build_node(mir_replica *r) {
  mir_err err = mir_node_new(r->cfg->id, NULL, &r->node);
  if (err == MIR_OK) err = rep_add_crypto(r);
  if (err == MIR_OK) err = rep_add_net(r);
  if (err == MIR_OK) {
    mir_timer *timer = NULL;
    err = mir_timer_new(NULL, &timer);
    if (err == MIR_OK) err = mir_node_add_module(r->node, "timer", &mir_timer_ops, timer);
  }
  if (err == MIR_OK) err = rep_add_client(r);
  if (err == MIR_OK) err = rep_add_trantor(r);
  if (err == MIR_OK) miri_rep_watch_install(r);
  return err;
}

mir_err mir_replica_new(const mir_replica_config *cfg, mir_replica **out) {
  mir_replica *r = mir_xcalloc(1, sizeof(*r));
  r->cfg = cfg;
  mir_err err = rep_load_membership(r);
  if (err == MIR_OK) err = rep_open_store(r);
  if (err == MIR_OK) err = rep_build_node(r);
  if (err != MIR_OK) {
    char detail[1024];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    mir_replica_free(r);
    return mir_error_set(err, "%s", detail);
  }
  *out = r;
  return MIR_OK;
}

mir_err mir_replica_check(const mir_replica_config *cfg) {
  mir_replica *r = mir_xcalloc(1, sizeof(*r));
  r->cfg = cfg;
  mir_err err = rep_load_membership(r);
  void *state = NULL;
  if (err == MIR_OK) err = rep_crypto_state(r, 1, &state);
  if (state != NULL) mir_crypto_module_ops.destroy(state);
  mir_replica_free(r);
  return err;
}

/* ---- start, run, free ---- */

/* Queues the store's last stable checkpoint for ISS (before the node starts). */
static mir_err rep_inject_checkpoint(mir_replica *r) {
  Trantor__StableCheckpoint *chkp = NULL;
  mir_err err = mir_olog_last_checkpoint(r->log, &chkp);
  if (err == MIR_ENOTFOUND) {
    mir_log(MIR_LOG_INFO, REP_LOG, "%s: no stable checkpoint stored: starting at the genesis",
            r->cfg->id);
    return MIR_OK;
  }
  if (err != MIR_OK) return err;
  mir_olog_status st;
  mir_olog_get_status(r->log, &st);
  mir_log(MIR_LOG_INFO, REP_LOG,
          "%s: resuming from the stable checkpoint of epoch %" PRIu64 " at sn %" PRIu64 " (%" PRIu64
          " stored entries beyond it are checked as they are delivered again)",
          r->cfg->id, chkp->snapshot->epoch_config->epoch, chkp->sn, st.stored_sn - st.next_sn);
  Trantor__RestoreState *rs = mir_xmalloc(sizeof(*rs));
  trantor__restore_state__init(rs);
  rs->checkpoint = chkp;
  mir_event_list evs = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&evs, mir_event_new("iss", "replica", &rs->base));
  return mir_node_inject(r->node, &evs);
}

mir_err mir_replica_start(mir_replica *r) {
  mir_err err = rep_inject_checkpoint(r);
  if (err == MIR_OK) err = mir_node_start(r->node);
  if (err == MIR_OK) {
    mir_log(
        MIR_LOG_INFO, REP_LOG, "%s: started: %zu replicas, peers on %s, clients on %s", r->cfg->id,
        r->m->n,
        r->cfg->peer_listen ? r->cfg->peer_listen : mir_membership_find(r->m, r->cfg->id)->address,
        r->cfg->client_listen);
  }
  return err;
}

mir_err mir_replica_run(mir_replica *r, const sigset_t *signals, uint64_t status_period_ms) {
  uint64_t last_status = mir_now_ns();
  for (;;) {
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
    int sig = sigtimedwait(signals, NULL, &tick);
    if (sig > 0) {
      mir_log(MIR_LOG_INFO, REP_LOG, "%s: %s received: shutting down", r->cfg->id, strsignal(sig));
      return MIR_OK;
    }
    mir_err err = mir_node_wait(r->node, 1);
    if (err != MIR_ETIMEDOUT) {
      return mir_error_set(err != MIR_OK ? err : MIR_EMODULE, "the node stopped: %s",
                           mir_node_last_error(r->node));
    }
    miri_rep_watch_peers(r);
    uint64_t now = mir_now_ns();
    if (status_period_ms > 0 && now - last_status >= status_period_ms * 1000000ull) {
      miri_rep_log_status(r);
      last_status = now;
    }
  }
}

void mir_replica_free(mir_replica *r) {
  if (r == NULL) return;
  if (r->node != NULL) {
    mir_node_stop(r->node);
    mir_node_free(r->node);
  }
  mir_olog_free(r->log);
  mir_err err = mir_store_close(r->store);
  if (err != MIR_OK) mir_log(MIR_LOG_ERROR, REP_LOG, "closing the store: %s", mir_error_detail());
  if (r->tm != NULL) trantor__membership__free_unpacked(r->tm, NULL);
  mir_membership_free(r->m);
  free(r->peer_up);
  free(r);
}
