/*
 * The batch fetcher (module id "batchfetcher", passive): turns the log that iss delivers into
 * transactions for the application, in log order, each transaction at most once.
 *
 * Events in (from iss unless stated), each appended to one queue in arrival (= log) order:
 *  - DeliverCert{sn, epoch, cert, aborted}: a placeholder; aborted fills it at once with no
 *    transactions, otherwise RequestTransactions{cert} goes to availability and the answer,
 *    ProvideTransactions (in any order between requests), fills it.
 *  - NewEpoch, SnapshotRequest, CheckpointNotice: queued as they are.
 * The queue is flushed from its head while the head is filled, so the output keeps the log
 * order whatever order the answers come back in. At output:
 *  - a certificate's transactions are deduplicated with the client progress (clientprogress.h):
 *    a transaction is kept iff it is newly delivered (in its client's window, not delivered
 *    before, also not earlier in the same batch); DeliverBatch{sn, epoch, kept txs} goes to app
 *    (also when nothing is kept) and, if any were kept, TxsDelivered{their (client_id, tx_no)} to
 *    the mempool;
 *  - NewEpoch goes to app and to the mempool (which makes earlier proposals proposable again
 *    only now, after the TxsDelivered of every earlier sn);
 *  - SnapshotRequest goes to app with client_progress set to the progress after every earlier
 *    sn; the app answers the checkpoint instance in reply_to with one Snapshot{epoch, app_data,
 *    client_progress}, so the checkpoint receives the application state and the client progress
 *    of the same point of the log in one event;
 *  - CheckpointNotice goes to app.
 * RestoreState{checkpoint} (after state transfer) is not queued: the client progress becomes the
 * checkpoint's, the queue is discarded (answers still on their way are recognised as stale and
 * dropped), and RestoreState goes on to app and to the mempool at once.
 *
 * Bounds: at most queue_max queued entries. iss delivers only decided sns, so the queue grows
 * only while availability is slow to answer; past the bound the node stops with an error rather
 * than dropping part of the log. Memory: queue_max entries of at most one batch each, plus the
 * client progress.
 */
#ifndef TRANTOR_BATCHFETCHER_H
#define TRANTOR_BATCHFETCHER_H

#include <stddef.h>
#include <stdint.h>

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRANTOR_BATCHFETCHER_ID "batchfetcher"
#define TRANTOR_BATCHFETCHER_QUEUE_MAX_DEFAULT 65536

typedef struct trantor_batchfetcher_config {
  const trantor_params *params; /* borrowed during the call (copied); must pass the check */
  const char *module_id;        /* NULL: TRANTOR_BATCHFETCHER_ID */
  const char *availability_id;  /* NULL: "availability" */
  const char *app_id;           /* NULL: "app" */
  const char *mempool_id;       /* NULL: "mempool" */
  size_t clients_max;           /* 0: TRANTOR_CLIENTS_MAX_DEFAULT; the same at every replica */
  size_t queue_max;             /* 0: the default */
} trantor_batchfetcher_config;

/* Creates the batch fetcher (a dsl; add it with mir_dsl_ops). cfg borrowed. MIR_EINVAL with
 * detail for an invalid configuration. *out is owned (free with mir_dsl_free, or hand it to
 * mir_node_add_module). */
mir_err trantor_batchfetcher_new(const trantor_batchfetcher_config *cfg, mir_dsl **out);

/* The batch fetcher registers its metrics in its dsl's set (mir_dsl_metrics): gauge
 * mir_batchfetcher_queued (set at the end of every batch); counters
 * mir_batchfetcher_batches_total, mir_batchfetcher_transactions_total,
 * mir_batchfetcher_stale_answers_total, mir_batchfetcher_restores_total and
 * mir_batchfetcher_transactions_dropped_total{reason="duplicate"|"out_of_window"|
 * "too_many_clients"|"invalid"}. */

#ifdef __cplusplus
}
#endif
#endif
