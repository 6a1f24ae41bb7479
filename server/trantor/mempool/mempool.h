/*
 * The mempool (module id "mempool", passive): pending client transactions, per bucket, and the
 * batches cut from them (docs/PROTOCOL.md "Mempool, availability, batch fetcher").
 *
 * Events in:
 *  - NewTransactions{txs, origin}: each tx is checked (client id 1..TRANTOR_CLIENT_ID_MAX bytes,
 *    data at most max_tx_bytes, tx_no in [low_wm, low_wm + client_window) of the client's
 *    delivery progress, not pending nor delivered, room for it under mempool_max_txs and
 *    mempool_max_bytes) and stored at the end of its bucket; with an origin, TxsAccepted{one
 *    status per tx, in order, origin} goes to origin.module.
 *  - RequestBatch{epoch, buckets, origin}: NewBatch{batch, origin} to origin.module, cut oldest
 *    first from the fresh transactions of those buckets, with at most max_batch_txs transactions
 *    and max_batch_bytes data bytes. Answered at once if a full batch is there (count or bytes
 *    reached); otherwise the request waits until its buckets hold a full batch or
 *    batch_timeout_ms passed (a TimerDelay to the timer carrying BatchTimeout back to this
 *    module), then takes what is there, possibly nothing. A request of an epoch that is already
 *    over, or for no bucket, gets an empty batch at once; so does a request beyond the bound on
 *    waiting requests, which gets what is there instead of waiting, and a fill request (the log
 *    waits for the slot: RequestBatch.fill).
 *  - BatchTimeout{request_id}: from the timer, see above (stale ones are ignored).
 *  - NewEpoch{epoch}: must come from the batch fetcher, in log order (after the TxsDelivered of
 *    every earlier sn). Transactions proposed in earlier epochs and still pending were not
 *    ordered then, so they become proposable again, in arrival order.
 *  - TxsDelivered{txs}: from the batch fetcher: the transactions leave the mempool and the
 *    client watermarks advance.
 *  - RestoreState{checkpoint}: from the batch fetcher after state transfer: the client progress
 *    becomes the checkpoint's, transactions it covers leave, and the checkpoint's epoch is
 *    entered as by NewEpoch (proposals of earlier epochs become proposable again).
 *
 * Events out besides the answers: Activity{active} to iss after a batch in which the pool went
 * from empty to holding transactions (active) or back, so that segments propose while, and only
 * while, there is work (docs/PROTOCOL.md, "Idle").
 *
 * A transaction is proposed at most once per epoch: it leaves the fresh list when cut and
 * returns only when a NewEpoch shows that its epoch ended without ordering it. Requests of a
 * later epoch than the mempool's (iss runs ahead of the batch fetcher) are served from fresh
 * transactions only, so a transaction that may still be on its way to delivery is never proposed
 * twice. "Bytes" in every limit are transaction data bytes.
 *
 * Memory is bounded by mempool_max_bytes plus, per pending transaction, about 170 bytes and its
 * client id, plus the client progress (clientprogress.h) and requests_max waiting requests.
 */
#ifndef TRANTOR_MEMPOOL_H
#define TRANTOR_MEMPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRANTOR_MEMPOOL_ID "mempool"
#define TRANTOR_MEMPOOL_REQUESTS_MAX_DEFAULT 64

typedef struct trantor_mempool_config {
  const trantor_params *params; /* borrowed during the call (copied); must pass the check */
  const char *module_id;        /* NULL: TRANTOR_MEMPOOL_ID */
  const char *timer_id;         /* NULL: "timer" */
  const char *iss_id;           /* receives Activity (NULL: "iss") */
  size_t clients_max;           /* 0: TRANTOR_CLIENTS_MAX_DEFAULT; the batch fetcher's value */
  size_t requests_max;          /* waiting batch requests (0: the default) */
} trantor_mempool_config;

/* Creates the mempool module (a dsl; add it with mir_dsl_ops). cfg borrowed. MIR_EINVAL with
 * detail for an invalid configuration. *out is owned (free with mir_dsl_free, or hand it to
 * mir_node_add_module). Registers trantor.BatchTimeout with the type registry. */
mir_err trantor_mempool_new(const trantor_mempool_config *cfg, mir_dsl **out);

/* The mempool registers its metrics in its dsl's set (mir_dsl_metrics): gauges
 * mir_mempool_epoch, mir_mempool_pending_transactions, mir_mempool_pending_bytes,
 * mir_mempool_proposable_transactions, mir_mempool_waiting_requests, mir_mempool_clients (set at
 * the end of every batch); counters mir_mempool_transactions_accepted_total,
 * mir_mempool_transactions_refused_total{reason="duplicate"|"out_of_window"|"too_large"|
 * "mempool_full"|"invalid"}, mir_mempool_batches_total, mir_mempool_batched_transactions_total,
 * mir_mempool_empty_batches_total, mir_mempool_request_timeouts_total,
 * mir_mempool_request_overflows_total, mir_mempool_delivered_transactions_total,
 * mir_mempool_undeliverable_transactions_total; histogram mir_mempool_batch_transactions. */

#ifdef __cplusplus
}
#endif
#endif
