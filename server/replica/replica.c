/*
 * Assembling and running a replica (replica.h).
 *
 * Order of construction: membership, then the data folder (checked against the start mode), the
 * store, Trantor's write-ahead log read back, and the ordered log (they fail on bad files without
 * touching the network), then the node and its modules: crypto (the key must match the
 * membership), net (binds the peer address), timer, store (Trantor's write-ahead log: persist,
 * then send), client service (binds the client address), and Trantor's protocol modules with the
 * ordered log as the application. Everything added to the node belongs to it from then on;
 * mir_replica_free stops the node before freeing the log and closing the store, which the store
 * module, the application callbacks and the client service use.
 *
 * Crypto: the replica links mir_crypto_ossl, the OpenSSL 3 backend of the crypto seam, because
 * gRPC brings OpenSSL 3 into the process and BoringSSL cannot share a process with it
 * (server/modules/crypto/CMakeLists.txt). Both backends produce the same keys, signatures and
 * hashes, so replicas and tools built on either interoperate.
 *
 * One store, two writers: the store module writes Trantor's records into the column family "wal"
 * and the ordered log its entries into "log" and "batches". Both go through the store's one writer
 * thread, in submission order, so one group write and one fsync serve both.
 *
 * Restart: every record of "wal" is read back in key order and decoded (trantor_wal_recover:
 * checksums verified, a damaged record is an error naming it, never skipped); the result is
 * queued to ISS as a trantor.Recovered event before the node starts, so ISS takes it together
 * with its Init: it resumes from the log's stable checkpoint and hands every PBFT and checkpoint
 * instance its own votes (server/trantor/iss/iss.h). An empty log means the replica never voted
 * (Trantor's first record precedes every vote in the store's order): it starts at the genesis.
 */
#include "replica.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mir/alloc.h"
#include "mir/crypto.h"
#include "mir/hasher.h"
#include "mir/log.h"
#include "mir/node.h"
#include "mir/timer.h"
#include "replica_internal.h"
#include "replica_wiring.h"
#include "store_module.h"
#include "trantor_system.h"
#include "wal.h"

/* The column family of Trantor's write-ahead log, and the store module's id (the default of
 * trantor_system_config.store_id). */
#define REP_WAL_CF "wal"
#define REP_STORE_ID "store"
/* The ordered log's column family of stable checkpoints in versions before the write-ahead log. */
#define REP_OLD_CHECKPOINTS_CF "checkpoints"
/* Bounds on what the write-ahead log may hold when it is read back: records of a few epochs (the
 * ones below a durable stable checkpoint are deleted with it), each far below these. */
#define REP_WAL_RECORDS_MAX ((size_t)1 << 24)
#define REP_WAL_BYTES_MAX ((size_t)4 << 30)

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

/* The store's path in the data folder. */
static void rep_store_path(const mir_replica_config *c, char *buf, size_t len) {
  snprintf(buf, len, "%s/db", c->data_dir);
}

/* Whether the data folder holds a store: RocksDB writes CURRENT when it creates a database. */
static bool rep_store_exists(const mir_replica_config *c) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/db/CURRENT", c->data_dir);
  return access(path, F_OK) == 0;
}

/* Checks the data folder against the start mode (replica.h, "Start modes"). */
static mir_err rep_check_data_folder(const mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  bool exists = rep_store_exists(c);
  if (r->mode == MIR_REPLICA_RESUME && !exists) {
    return mir_error_set(MIR_ECONFIG,
                         "data folder %s holds no store (%s/db): start with --new if this replica "
                         "belongs to a new cluster and has never run, or with --rejoin if it "
                         "lost its data (it then catches up from its peers and votes only where "
                         "it cannot have voted before)",
                         c->data_dir, c->data_dir);
  }
  if (r->mode == MIR_REPLICA_NEW && exists) {
    return mir_error_set(MIR_ECONFIG,
                         "--new: data folder %s already holds a store: this replica has run "
                         "before; start it without --new to resume from its data",
                         c->data_dir);
  }
  if (r->mode == MIR_REPLICA_REJOIN && exists) {
    return mir_error_set(MIR_ECONFIG,
                         "--rejoin: data folder %s still holds a store: start without --rejoin "
                         "to resume from it (--rejoin is for a replica whose data was lost; a "
                         "damaged store must be removed first: %s/db)",
                         c->data_dir, c->data_dir);
  }
  return MIR_OK;
}

/* Marks the new, empty log of a rejoining replica (the 'J' record) with a synchronous write, so
 * that it exists before anything that could vote: ISS then asks its peers first. */
static mir_err rep_mark_rejoin(mir_replica *r, int cf) {
  Trantor__WalFloor marker = TRANTOR__WAL_FLOOR__INIT;
  size_t vlen = 0;
  uint8_t *val = trantor_wal_encode(&marker.base, &vlen);
  uint8_t key[TRANTOR_WAL_KEY_MAX];
  size_t klen = trantor_wal_rejoin_key(key);
  mir_store_batch *b = mir_store_batch_new(r->store);
  mir_store_batch_put(b, cf, key, klen, val, vlen);
  free(val);
  mir_err err = mir_store_write(r->store, b);
  if (err != MIR_OK) return err;
  mir_log(MIR_LOG_INFO, REP_LOG,
          "%s: --rejoin: marked the new log of %s; the replica asks its peers for their stable "
          "checkpoints before it votes",
          r->cfg->id, r->cfg->data_dir);
  return MIR_OK;
}

/* The error of a write-ahead log that cannot be read back: the replica must not vote on
 * guesswork, so it does not start. The detail names the record (trantor_wal_recover) or the
 * store's reason (a corrupt table file). */
static mir_err rep_wal_damaged(const mir_replica *r, mir_err err) {
  char detail[1024];
  const char *d = mir_error_detail();
  snprintf(detail, sizeof(detail), "%s%s",
           strncmp(d, "write-ahead log", 15) == 0 ? "" : "reading the write-ahead log: ", d);
  return mir_error_set(err,
                       "data folder %s: %s; the replica does not vote on a damaged log: restore "
                       "the data folder, or remove it and start with --rejoin",
                       r->cfg->data_dir, detail);
}

/* Reads every record of the write-ahead log in key order (copies, owned by *kvs_out: free each
 * key and the array). */
static mir_err rep_read_wal(mir_replica *r, int cf, trantor_wal_kv **kvs_out, size_t *n_out) {
  size_t n = 0, cap = 0, bytes = 0;
  trantor_wal_kv *kvs = NULL;
  mir_store_iter *it = mir_store_iter_new(r->store, cf);
  mir_err err = MIR_OK;
  for (mir_store_iter_seek_first(it); mir_store_iter_valid(it); mir_store_iter_next(it)) {
    size_t klen = 0, vlen = 0;
    const uint8_t *k = mir_store_iter_key(it, &klen);
    const uint8_t *v = mir_store_iter_value(it, &vlen);
    bytes += klen + vlen;
    if (n == REP_WAL_RECORDS_MAX || bytes > REP_WAL_BYTES_MAX) {
      err = mir_error_set(MIR_EIO, "more than %zu records or %zu bytes", REP_WAL_RECORDS_MAX,
                          REP_WAL_BYTES_MAX);
      break;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 256;
      kvs = mir_xrealloc(kvs, cap * sizeof(*kvs));
    }
    /* One allocation per record: the key, then the value. */
    uint8_t *copy = mir_xmalloc(klen + vlen + 1);
    memcpy(copy, k, klen);
    if (vlen > 0) memcpy(copy + klen, v, vlen);
    kvs[n++] = (trantor_wal_kv){.key = copy, .klen = klen, .val = copy + klen, .vlen = vlen};
  }
  if (err == MIR_OK) err = mir_store_iter_status(it);
  mir_store_iter_free(it);
  *kvs_out = kvs;
  *n_out = n;
  return err;
}

static void rep_free_kvs(trantor_wal_kv *kvs, size_t n) {
  for (size_t i = 0; i < n; i++) free((void *)kvs[i].key);
  free(kvs);
}

/* Logs what the write-ahead log held (one INFO line). */
static void rep_log_recovered(const mir_replica *r, size_t records) {
  const Trantor__Recovered *rec = r->recovered;
  char chk[96] = "none (the genesis)";
  if (rec->checkpoint != NULL && rec->checkpoint->snapshot != NULL &&
      rec->checkpoint->snapshot->epoch_config != NULL) {
    snprintf(chk, sizeof(chk), "epoch %" PRIu64 " at sn %" PRIu64,
             rec->checkpoint->snapshot->epoch_config->epoch, rec->checkpoint->sn);
  }
  size_t voted = 0;
  for (size_t i = 0; i < rec->n_instances; i++) {
    const Trantor__PbftRecovered *p = rec->instances[i]->pbft;
    if (p != NULL && (p->n_batches > 0 || p->n_prepared > 0 || p->n_proposed > 0 ||
                      p->n_committed > 0 || p->view != NULL || p->new_view != NULL)) {
      voted++;
    }
  }
  mir_log(MIR_LOG_INFO, REP_LOG,
          "%s: recovered the write-ahead log of %s: %zu records, stable checkpoint %s, %zu PBFT "
          "instances with votes, %zu own checkpoint signatures, vote floor epoch %" PRIu64
          ", rejoin %s",
          r->cfg->id, r->cfg->data_dir, records, chk, voted, rec->n_checkpoint_sigs,
          rec->vote_floor, rec->rejoin ? "pending (asks the peers before voting)" : "no");
}

/* Reads Trantor's write-ahead log back into r->recovered (NULL when the log is empty). */
static mir_err rep_recover(mir_replica *r) {
  int cf = mir_store_cf(r->store, REP_WAL_CF);
  mir_err err = MIR_OK;
  if (r->mode == MIR_REPLICA_REJOIN) err = rep_mark_rejoin(r, cf);
  if (err != MIR_OK) return err;
  trantor_wal_kv *kvs = NULL;
  size_t n = 0;
  err = rep_read_wal(r, cf, &kvs, &n);
  if (err == MIR_OK && n > 0) err = trantor_wal_recover(kvs, n, &r->recovered);
  rep_free_kvs(kvs, n);
  if (err != MIR_OK) return rep_wal_damaged(r, err);
  if (r->recovered == NULL) {
    mir_log(MIR_LOG_INFO, REP_LOG,
            "%s: the write-ahead log of %s is empty: starting at the genesis", r->cfg->id,
            r->cfg->data_dir);
    return MIR_OK;
  }
  rep_log_recovered(r, n);
  return MIR_OK;
}

static mir_err rep_open_store(mir_replica *r) {
  const mir_replica_config *c = r->cfg;
  mir_err err = rep_check_data_folder(r);
  if (err == MIR_OK) err = rep_mkdirs(c->data_dir);
  if (err != MIR_OK) return err;
  char path[4200];
  rep_store_path(c, path, sizeof(path));
  const char *cfs[MIR_OLOG_N_CFS + 1];
  for (size_t i = 0; i < MIR_OLOG_N_CFS; i++) cfs[i] = mir_olog_cfs[i];
  cfs[MIR_OLOG_N_CFS] = REP_WAL_CF;
  mir_store_config sc;
  mir_store_config_default(&sc);
  sc.path = path;
  sc.cfs = cfs;
  sc.n_cfs = MIR_OLOG_N_CFS + 1;
  sc.sync = c->store_sync;
  err = mir_store_open(&sc, &r->store);
  if (err == MIR_OK && mir_store_cf(r->store, REP_OLD_CHECKPOINTS_CF) >= 0) {
    /* The store opens every column family the database has: this one only a version before the
     * write-ahead log wrote, whose votes were never stored. */
    return mir_error_set(MIR_ECONFIG,
                         "store %s was written by an older version without the write-ahead log "
                         "(it cannot tell what this replica voted): remove %s and start with "
                         "--rejoin",
                         path, path);
  }
  if (err == MIR_OK) err = rep_recover(r);
  if (err != MIR_OK) return err;
  mir_olog_config lc;
  mir_olog_config_default(&lc);
  lc.store = r->store;
  lc.hash = miri_rep_hash;
  lc.retention_sns = c->retention_sns;
  err = mir_olog_open(&lc, &r->log);
  if (err == MIR_OK && r->recovered != NULL && r->recovered->checkpoint != NULL) {
    mir_olog_note_checkpoint(r->log, r->recovered->checkpoint);
  }
  return err;
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

static mir_err rep_add_net(mir_replica *r) {
  mir_net_member *members = mir_xcalloc(r->m->n, sizeof(*members));
  mir_net_grpc_config nc;
  mir_replica_net_config(r->cfg, r->m, members, &nc);
  mir_err err = mir_net_grpc_new(&nc, &r->net);
  free(members);
  if (err != MIR_OK) return err;
  return mir_node_add_module(r->node, "net", &mir_net_grpc_ops, r->net);
}

/* The store module that makes Trantor's records durable before what they record is sent. */
static mir_err rep_add_store(mir_replica *r) {
  mir_store_module_config sc = {.store = r->store, .cf = REP_WAL_CF};
  void *state = NULL;
  mir_err err = mir_store_module_new(&sc, &state);
  if (err != MIR_OK) return err;
  return mir_node_add_module(r->node, REP_STORE_ID, &mir_store_module_ops, state);
}

static mir_err rep_add_client(mir_replica *r) {
  mir_client_service_config cc;
  mir_replica_client_config(r->cfg, r->log, &cc);
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
  tc.store_id = REP_STORE_ID;
  return trantor_system_add_modules(r->node, &tc);
}

static mir_err rep_build_node(mir_replica *r) {
  mir_err err = mir_node_new(r->cfg->id, NULL, &r->node);
  if (err == MIR_OK) mir_metrics_attach(mir_node_metrics(r->node), mir_olog_metrics(r->log));
  if (err == MIR_OK) err = rep_add_crypto(r);
  if (err == MIR_OK) err = rep_add_net(r);
  if (err == MIR_OK) {
    mir_timer *timer = NULL;
    err = mir_timer_new(NULL, &timer);
    if (err == MIR_OK) err = mir_node_add_module(r->node, "timer", &mir_timer_ops, timer);
  }
  if (err == MIR_OK) err = rep_add_store(r);
  if (err == MIR_OK) err = rep_add_client(r);
  if (err == MIR_OK) err = rep_add_trantor(r);
  if (err == MIR_OK) miri_rep_watch_install(r);
  return err;
}

mir_err mir_replica_new(const mir_replica_config *cfg, mir_replica_mode mode, mir_replica **out) {
  mir_replica *r = mir_xcalloc(1, sizeof(*r));
  r->cfg = cfg;
  r->mode = mode;
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

/* Queues what the write-ahead log holds for ISS (before the node starts: ISS takes it with Init).
 */
static mir_err rep_inject_recovered(mir_replica *r) {
  if (r->recovered == NULL) return MIR_OK;
  mir_event_list evs = MIR_EVENT_LIST_INIT;
  mir_event_list_push(&evs, mir_event_new("iss", "replica", &r->recovered->base));
  r->recovered = NULL; /* the event owns it */
  return mir_node_inject(r->node, &evs);
}

/* Starts the HTTP endpoint if the configuration asks for one. */
static mir_err rep_start_http(mir_replica *r) {
  if (r->cfg->http_listen == NULL) return MIR_OK;
  mir_http_config hc = {.listen = r->cfg->http_listen,
                        .node_id = r->cfg->id,
                        .root = mir_node_metrics(r->node),
                        .profile_dir = r->cfg->data_dir};
  mir_err err = mir_http_start(&hc, &r->http);
  if (err != MIR_OK) {
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", mir_error_detail());
    return mir_error_set(err, "%s: %s", r->cfg->file ? r->cfg->file : "config", detail);
  }
  mir_log(MIR_LOG_INFO, REP_LOG,
          "%s: HTTP endpoint on %s (port %u): /metrics, /debug/stats, "
          "/debug/pprof/profile, /debug/pprof/heap",
          r->cfg->id, r->cfg->http_listen, (unsigned)mir_http_port(r->http));
  return MIR_OK;
}

mir_err mir_replica_start(mir_replica *r) {
  mir_err err = rep_inject_recovered(r);
  if (err == MIR_OK) err = rep_start_http(r);
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
  mir_http_stop(r->http); /* first: it reads the node's metrics */
  if (r->node != NULL) {
    mir_node_stop(r->node);
    mir_node_free(r->node);
  }
  mir_olog_free(r->log);
  mir_err err = mir_store_close(r->store);
  if (err != MIR_OK) mir_log(MIR_LOG_ERROR, REP_LOG, "closing the store: %s", mir_error_detail());
  if (r->recovered != NULL) protobuf_c_message_free_unpacked(&r->recovered->base, NULL);
  if (r->tm != NULL) trantor__membership__free_unpacked(r->tm, NULL);
  mir_membership_free(r->m);
  free(r->peer_up);
  free(r);
}
