/*
 * Internals of the replica shared by replica.c (construction, start, run) and replica_watch.c
 * (what the replica reports: view changes, peers, status lines). Not an interface.
 */
#ifndef MIR_REPLICA_REPLICA_INTERNAL_H
#define MIR_REPLICA_REPLICA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "client_service.h"
#include "http.h"
#include "mir/membership.h"
#include "mir/net_grpc.h"
#include "mir/node.h"
#include "mir_store.h"
#include "ordered_log.h"
#include "replica.h"

#define REP_LOG "replica"
#define REP_SEEN_MAX 64 /* view changes remembered, so that resends are not logged again */

typedef struct rep_seen {
  char module[MIR_MODULE_ID_MAX];
  int kind;
  uint64_t view;
} rep_seen;

struct mir_replica {
  const mir_replica_config *cfg; /* borrowed: outlives the replica */
  mir_membership *m;
  Trantor__Membership *tm;
  mir_replica_mode mode;
  mir_store *store;
  mir_olog *log;
  Trantor__Recovered *recovered; /* what the write-ahead log held; owned until injected (or NULL) */
  mir_node *node;
  mir_net_grpc *net;          /* owned by the node */
  mir_client_service *client; /* owned by the node */
  mir_http *http;             /* the HTTP endpoint (NULL when http_listen is unset) */
  /* the run loop's thread */
  bool *peer_up; /* per membership entry: last reported state */
  /* the dispatcher thread (the interceptor) */
  rep_seen seen[REP_SEEN_MAX];
  size_t seen_next;
};

/* replica.c: the replica's trantor_hash_fn (SHA-256 of the crypto seam). */
void miri_rep_hash(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[32]);

/* replica_watch.c (r borrowed in each) */
/* Installs the interceptor that reports view changes. */
void miri_rep_watch_install(mir_replica *r);
/* Logs peers that connected or went away since the last call. Run loop thread. */
void miri_rep_watch_peers(mir_replica *r);
/* Logs one line on the replica's position and traffic. Run loop thread. */
void miri_rep_log_status(mir_replica *r);
/* mir_client_peers_fn for the client service's Status. Any thread. */
size_t miri_rep_peers(void *user, mir_client_peer *out, size_t cap);

#endif
