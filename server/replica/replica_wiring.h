/*
 * The edge modules' configurations as a replica derives them from its configuration file, shared
 * by mir-replica and the programs that run the same edges (mir-limit), so that they never drift.
 */
#ifndef MIR_REPLICA_WIRING_H
#define MIR_REPLICA_WIRING_H

#include "client_service.h"
#include "config.h"
#include "mir/membership.h"
#include "mir/net_grpc.h"

/* The peer transport's configuration: defaults, then cfg's addresses, TLS files and limits.
 * members (caller-provided, m->n entries) is filled with the membership's ids and addresses.
 * *out borrows from cfg, m and members. */
void mir_replica_net_config(const mir_replica_config *cfg, const mir_membership *m,
                            mir_net_member *members, mir_net_grpc_config *out);

/* The client service's configuration from cfg, with log (borrowed) as its ordered log; peers and
 * peers_user stay unset for the caller. *out borrows from cfg. */
void mir_replica_client_config(const mir_replica_config *cfg, mir_olog *log,
                               mir_client_service_config *out);

#endif
