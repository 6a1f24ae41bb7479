/*
 * The limit pipeline's module (docs/PERFORMANCE.md, "Limit pipeline"): the data flow of a replica
 * with the protocol taken out, as a yardstick that no replication protocol on the same machine can
 * beat. It takes the place of Trantor's mempool (module id "mempool") beside the replica's own
 * client service, peer transport and ordered log, so clients, the SDK and mir-bench see the same
 * API, the same gRPC and protobuf code on every hop, and the same subscription stream.
 *
 * Data flow. A server answers each NewTransactions of its client service at once: a transaction
 * inside its client's window that this server has not seen delivered is ACCEPTED and forwarded to
 * the sequencer (the membership's first member); one delivered already is a DUPLICATE; one beyond
 * the window is OUT_OF_WINDOW; and MEMPOOL_FULL is the back-pressure answer (below), as Trantor's
 * mempool gives them (proto/api/api.proto). The sequencer keeps each (client id, tx number) once
 * (the SDK submits every transaction to f+1 servers) in arrival order and, at the end of each of
 * its rounds (one apply call of the node), cuts what it holds into sns of at most max_batch_txs
 * transactions and max_batch_bytes bytes, applies each to its own ordered log and sends it to every
 * other server, which applies it to its own. Every server's log is therefore the same, entry for
 * entry and hash for hash, so a client's f+1 matching deliveries are honest ones: each server
 * answers for what it really received and delivered. Nothing is signed, nothing is voted on.
 *
 * Limits. A server answers MEMPOOL_FULL while forward_max_txs transactions or forward_max_bytes
 * data bytes it forwarded are not yet consumed by the sequencer (numbered or dropped as duplicates;
 * the sequencer reports its counts on the last Deliver of each round, or alone when a server's
 * unreported count reached half its bound), so what waits at the sequencer is at most n times
 * that. The sequencer numbers at most sns_ahead_max sns, and bytes_ahead_max bytes, beyond what the
 * slowest server acknowledged (Ack, sent after a quarter of either), so the transport's bounded
 * queues never drop a delivery. A Deliver that does not carry the next sn (a message lost to a
 * broken stream: the pipeline does not retransmit) stops the server with an error naming both
 * sns.
 *
 * Peers: messages from ids outside the membership, of unknown types, that do not decode, or that
 * only the sequencer may send and another server sent, are dropped and counted; no peer value
 * reaches an assertion. The module is passive: apply runs on the node's dispatcher and only ever
 * emits events (to the transport, the client service) and calls the ordered log's callbacks.
 */
#ifndef MIR_LIMIT_H
#define MIR_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_LIMIT_SERVERS_MAX 64
#define MIR_LIMIT_MODULE_ID "mempool" /* where the client service sends NewTransactions */

typedef struct mir_limit_config {
  const char *const *ids;   /* the membership's ids in order (borrowed, copied); ids[0] sequences */
  size_t n;                 /* 1 .. MIR_LIMIT_SERVERS_MAX */
  size_t self;              /* this server's index in ids */
  const char *net_id;       /* the transport module (NULL: "net") */
  trantor_app app;          /* where delivered sns go (user_data borrowed: outlives the module) */
  uint64_t client_window;   /* tx numbers ahead of a client's first undelivered one (> 0) */
  uint64_t max_tx_bytes;    /* data bytes of one transaction (> 0) */
  uint32_t max_batch_txs;   /* transactions in one sn (> 0) */
  uint64_t max_batch_bytes; /* data bytes in one sn, and in one Forward message (> 0) */
  uint64_t forward_max_txs; /* per server: forwarded, not yet consumed by the sequencer (> 0) */
  uint64_t forward_max_bytes; /* ... their data bytes (> 0) */
  uint64_t sns_ahead_max;     /* sns the sequencer numbers beyond the slowest server (> 0) */
  uint64_t bytes_ahead_max;   /* ... and their data bytes (> 0) */
} mir_limit_config;

/* Creates the module's state from cfg (borrowed, copied). MIR_EINVAL with detail for a bad
 * config. *state is owned: hand it to mir_node_add_module(node, MIR_LIMIT_MODULE_ID,
 * &mir_limit_ops, state), which frees it. */
mir_err mir_limit_new(const mir_limit_config *cfg, void **state);

/* Passive; takes trantor.NewTransactions (with an origin), mir.MessageReceived and mir.Init. Its
 * counters are in its metric set (mir_limit_ops.metrics(state), below the node's set for the
 * module):
 * mir_limit_answers_total{reason="accepted"|"duplicate"|"out_of_window"|"full"|"invalid"},
 * mir_limit_forwarded_transactions_total (to the sequencer, itself included),
 * mir_limit_applied_sns_total and mir_limit_applied_transactions_total (to this server's ordered
 * log), mir_limit_sequencer_transactions_total{reason="numbered"|"duplicate"|"dropped"} (the
 * sequencer: kept once, dropped as a copy, invalid or no room) and
 * mir_limit_dropped_messages_total (peer messages, see the file comment). */
extern const mir_module_ops mir_limit_ops;

#ifdef __cplusplus
}
#endif
#endif
