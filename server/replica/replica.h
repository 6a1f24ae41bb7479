/*
 * A running replica: the node with Trantor, the gRPC transport ("net"), the crypto module
 * ("crypto"), the timer ("timer"), the client service ("client") and the ordered log as the
 * application, over a store in the data folder (docs/ARCHITECTURE.md, "Replica").
 *
 * Life cycle: mir_replica_new builds everything (every error names the file or component and the
 * reason), mir_replica_start resumes from the last stable checkpoint in the store and starts the
 * node, mir_replica_run waits for a signal or a node failure while it reports what the replica is
 * doing, mir_replica_free stops and releases everything.
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

/* Builds the replica of cfg (borrowed; must outlive the replica). MIR_EIO, MIR_ECONFIG,
 * MIR_ECRYPTO, MIR_EINVAL with detail. *out is owned (free with mir_replica_free). */
mir_err mir_replica_new(const mir_replica_config *cfg, mir_replica **out);

/* Checks what mir_replica_new would, short of opening the store and binding addresses: the
 * membership names cfg->id and the key file holds its key. Errors as mir_replica_new. */
mir_err mir_replica_check(const mir_replica_config *cfg);

/* Hands the last stable checkpoint of the store (if any) to Trantor and starts the node. */
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
