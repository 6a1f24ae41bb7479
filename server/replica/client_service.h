/*
 * The client service: the gRPC server of proto/api/api.proto ("/mir.api.Client/Submit",
 * "/mir.api.Client/Subscribe", "/mir.api.Client/Status") and the active module that connects it
 * to the node.
 *
 * Submit. Each request of a stream is decoded (bounded by max_request_bytes; undecodable bytes get
 * a SubmitResponse with `error` set, never a crash) and checked at ingress: at most
 * max_txs_per_request transactions; each with a valid client id (proto/api/api.proto: 1..64 bytes
 * of [A-Za-z0-9._:@-], checked on the wire), the same for the whole stream (the first
 * transaction's, or the client certificate's), and at most max_tx_bytes of data. Transactions that
 * pass go into the node as one trantor.NewTransactions with an origin naming this module; the
 * mempool's trantor.TxsAccepted comes back through the node to the module's apply, which completes
 * the request and writes its SubmitResponse (one TxResult per transaction, in order, with a reason
 * for every rejection). A stream has at most max_requests_in_flight requests at the mempool; a
 * request read beyond that, or one that would take the transaction bytes of all streams at the
 * mempool beyond max_bytes_in_flight, is answered at once, its transactions TX_MEMPOOL_FULL
 * ("busy"), and
 * every answer with TX_MEMPOOL_FULL carries the back-pressure hint retry_after_ms. The service
 * reads at most 2 * max_requests_in_flight requests ahead of the answers sent, which pushes back on
 * the client through HTTP/2 flow control; the node's own backpressure (a blocking inbox) does the
 * same. A request of more than max_request_bytes (up to twice that) is refused and the stream goes
 * on; gRPC ends a stream whose message is bigger (RESOURCE_EXHAUSTED).
 *
 * Subscribe(from_sn). A server stream of api.Delivery from the ordered log, from from_sn on, in
 * order, each sn once. One message is in flight per stream; the next is read from the log when
 * the previous one was accepted, so a subscriber costs one message of memory however far behind
 * it is. A from_sn below the retention window, or more than subscribe_ahead_max beyond the log's
 * next sn, is refused (OUT_OF_RANGE, trailing metadata "mir-range"); within that, a from_sn beyond
 * the log waits for it. Subscribers are admitted within max_subscribers in all,
 * max_subscribers_per_connection per connection and max_subscribers_per_client per client (the
 * certificate's id, else the filter's client_id), so that no one client holds every slot. A
 * subscriber whose position leaves the retention window ends with OUT_OF_RANGE; one that accepts
 * nothing for subscriber_stall_ms ends with RESOURCE_EXHAUSTED (its buffers are freed).
 *
 * Client certificates (tls_client_ca_file): every connection must present one signed by that CA
 * (the TLS handshake fails without), Submit and Subscribe calls whose certificate names no client
 * ("mir:client:<id>", checked with mir_tls_client_cert_check) are refused (UNAUTHENTICATED), and a
 * Submit stream takes only transactions of the certificate's client id.
 *
 * Status. id, epoch, next_sn, log_hash, retained_from_sn (from the ordered log) and the peers
 * (from the callback).
 *
 * Threads: one completion-queue thread for Submit, one for Subscribe, Status and unknown methods
 * (answered UNIMPLEMENTED), and one that feeds subscribers when the log grows. apply runs on the
 * node's dispatcher and never blocks; everything shared is under one mutex.
 */
#ifndef MIR_REPLICA_CLIENT_SERVICE_H
#define MIR_REPLICA_CLIENT_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mir/errors.h"
#include "mir/module.h"
#include "ordered_log.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_CLIENT_SERVICE_ID "client"
#define MIR_CLIENT_PEERS_MAX 256

typedef struct mir_client_peer {
  char id[64];
  bool connected;
} mir_client_peer;

/* Fills out (cap entries) with the replica's peers; returns how many. Any thread. */
typedef size_t (*mir_client_peers_fn)(void *user_data, mir_client_peer *out, size_t cap);

typedef struct mir_client_service_config {
  const char *own_id;               /* this replica's id, for Status (required) */
  const char *listen_addr;          /* "host:port"; port 0 picks a free one (required) */
  const char *module_id;            /* NULL: MIR_CLIENT_SERVICE_ID */
  const char *mempool_id;           /* NULL: "mempool" */
  mir_olog *log;                    /* borrowed, must outlive the service (required) */
  mir_replica_client_limits limits; /* every field > 0 */
  uint64_t max_tx_bytes;            /* the mempool's limit, checked at ingress too (> 0) */
  uint64_t client_window;           /* named in rejection reasons */
  const char *tls_cert_file;        /* both set: serve TLS; both NULL: plaintext */
  const char *tls_key_file;
  const char *tls_client_ca_file; /* with TLS: require client certificates signed by this CA;
                                     NULL: clients are not authenticated (logged as a warning) */
  mir_client_peers_fn peers;      /* may be NULL */
  void *peers_user;
} mir_client_service_config;

typedef struct mir_client_service mir_client_service;

/* Creates the service: checks cfg (borrowed, copied; MIR_EINVAL with detail), reads the TLS files
 * (MIR_EIO) and binds listen_addr (MIR_EIO). Nothing is served before the node starts the module.
 * *out is owned: free it with mir_client_service_free, or hand it to mir_node_add_module with
 * mir_client_service_ops (the node frees it; the pointer stays valid for the accessors until
 * mir_node_free). Registers the olog listener. */
mir_err mir_client_service_new(const mir_client_service_config *cfg, mir_client_service **out);

/* Stops (if started) and frees a service that was not handed to a node. NULL is a no-op. */
void mir_client_service_free(mir_client_service *svc);

/* The port the service listens on. */
int mir_client_service_port(const mir_client_service *svc);

/* The service's metric set (borrowed, valid until the service is freed; also its ops.metrics):
 * counters mir_client_requests_total, mir_client_requests_refused_total{reason="malformed"|
 * "busy"}, mir_client_transactions_accepted_total, mir_client_transactions_refused_total{reason=
 * "busy"|"ingress"|"duplicate"|"out_of_window"|"too_large"|"mempool_full"|"invalid"},
 * mir_client_submit_streams_total, mir_client_submit_streams_refused_total,
 * mir_client_subscribe_streams_total, mir_client_subscribe_streams_ended_total{reason="refused"|
 * "cut"}, mir_client_deliveries_total, mir_client_unauthenticated_calls_total,
 * mir_client_status_calls_total, mir_client_unknown_calls_total; gauges
 * mir_client_submit_streams and mir_client_subscribers (open now); the named lock "client_api". */
mir_metrics *mir_client_service_metrics(mir_client_service *svc);

/* The module: apply takes trantor.TxsAccepted (and ignores mir.Init); start serves; stop cancels
 * every call and joins the threads. State: the mir_client_service *. */
extern const mir_module_ops mir_client_service_ops;

#ifdef __cplusplus
}
#endif
#endif
