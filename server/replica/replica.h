/*
 * A running replica: the node with Trantor, the gRPC transport ("net"), the crypto module
 * ("crypto"), the timer ("timer"), the client service ("client") and the ordered log as the
 * application, over a store in the data folder (docs/ARCHITECTURE.md, "Replica").
 *
 * Life cycle: mir_replica_new checks the data folder against the start mode, opens the store,
 * reads Trantor's write-ahead log back and builds everything (every error names the file or
 * component and the reason), mir_replica_start hands what the log holds to Trantor and starts the
 * node, mir_replica_run waits for a signal or a node failure while it reports what the replica is
 * doing, mir_replica_free stops and releases everything.
 *
 * Start modes. A replica must never vote with an empty store unless it is known never to have
 * voted: its votes live in the store, and one that forgot them could contradict them. So a missing
 * store is an error unless the operator says why it is missing: MIR_REPLICA_NEW (a replica of a
 * new cluster, which has never run) or MIR_REPLICA_REJOIN (the replica lost its data: it marks
 * its new log so that Trantor asks its peers first and votes only in epochs it cannot have voted
 * in before, docs/PROTOCOL.md "Rejoining"). Either mode with a store present is an error too.
 */
#ifndef MIR_REPLICA_REPLICA_H
#define MIR_REPLICA_REPLICA_H

#include <signal.h>

#include "config.h"
#include "mir/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mir_replica mir_replica;

typedef enum mir_replica_mode {
  MIR_REPLICA_RESUME = 0, /* the data folder holds the store of an earlier run (the default) */
  MIR_REPLICA_NEW,        /* no store yet: a replica of a new cluster (--new) */
  MIR_REPLICA_REJOIN      /* no store: the replica lost its data (--rejoin) */
} mir_replica_mode;

/* Builds the replica of cfg (borrowed; must outlive the replica), started in mode. MIR_EIO,
 * MIR_ECONFIG, MIR_ECRYPTO, MIR_EINVAL with detail: among them a data folder that does not fit
 * the mode (MIR_ECONFIG, saying which flag to use), and a damaged write-ahead log (MIR_EIO naming
 * the data folder, the record and the reason). *out is owned (free with mir_replica_free). */
mir_err mir_replica_new(const mir_replica_config *cfg, mir_replica_mode mode, mir_replica **out);

/* Checks what mir_replica_new would, short of opening the store and binding addresses: the
 * membership names cfg->id and the key file holds its key. Errors as mir_replica_new. */
mir_err mir_replica_check(const mir_replica_config *cfg);

/* Hands what the write-ahead log holds (if anything) to Trantor and starts the node. */
mir_err mir_replica_start(mir_replica *r);

/* Runs until one of `signals` (borrowed; blocked in every thread by the caller) arrives (MIR_OK)
 * or the node stops on an error (that error, detail set). Logs peers connecting and leaving and a
 * status line every status_period_ms (0: never). */
mir_err mir_replica_run(mir_replica *r, const sigset_t *signals, uint64_t status_period_ms);

/* Stops the node and frees everything. NULL is a no-op. */
void mir_replica_free(mir_replica *r);

#ifdef __cplusplus
}
#endif
#endif
