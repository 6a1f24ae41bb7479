/*
 * Availability (module id "availability", passive): certificates that a batch can be retrieved.
 *
 * The interface, which every implementation answers (all requests carry a mir.Origin; the
 * answer goes to origin.module with the same origin):
 *  - RequestCert{epoch, buckets, origin} (from a segment primary) -> NewCert{cert, origin}: a
 *    certificate for a new batch of transactions from those buckets. The certificate is opaque to
 *    ordering and at most cert_bytes_max(params) bytes.
 *  - VerifyCert{cert, epoch, buckets, origin} (from iss) -> CertVerified{valid, reason, origin}:
 *    whether cert (untrusted bytes) is a valid certificate of a batch of those buckets within
 *    the transaction limits; reason says why not.
 *  - RequestTransactions{cert, origin} (from the batch fetcher) -> ProvideTransactions{batch,
 *    origin}: the transactions of a certificate that was ordered. Every correct node must answer
 *    the same for the same certificate; an invalid one yields an empty batch.
 * An implementation may talk to the mempool (RequestBatch / NewBatch) and to peers; each request
 * is answered exactly once (possibly late, possibly out of order between requests).
 *
 * Implementations are selected through a trantor_availability_impl, so that the system wiring
 * does not depend on one: the first, trantor_availability_batchcert, is purely local: the
 * certificate is the packed Trantor.Batch itself, so every node can verify and read it without
 * asking anyone. A later multisig collector (certificate = signatures of a weak quorum over a
 * batch digest; transactions fetched from the signers) provides another impl with the same events.
 */
#ifndef TRANTOR_AVAILABILITY_H
#define TRANTOR_AVAILABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/errors.h"
#include "mir/module.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TRANTOR_AVAILABILITY_ID "availability"
#define TRANTOR_AVAILABILITY_REQUESTS_MAX_DEFAULT 1024

typedef struct trantor_availability_config {
  const trantor_params *params; /* borrowed during the call (copied); must pass the check */
  const char *module_id;        /* NULL: TRANTOR_AVAILABILITY_ID */
  const char *mempool_id;       /* NULL: "mempool" */
  size_t requests_max;          /* certificate requests in flight (0: the default) */
} trantor_availability_config;

typedef struct trantor_availability_impl {
  const char *name;
  /* Creates the module: *ops (static) and *state (owned; ops->destroy frees it, or hand both to
   * mir_node_add_module). cfg borrowed. MIR_EINVAL with detail for a bad configuration. */
  mir_err (*create)(const trantor_availability_config *cfg, const mir_module_ops **ops,
                    void **state);
  /* The largest certificate this implementation produces under params (borrowed): ordering
   * rejects larger ones (PbftParams.max_cert_bytes). */
  uint64_t (*cert_bytes_max)(const trantor_params *params);
} trantor_availability_impl;

/* The certificate is the packed batch (batchcert.c). */
extern const trantor_availability_impl trantor_availability_batchcert;

/* ---- helpers shared by implementations (pure) ---- */

/* Checks a decoded batch (borrowed) against the transaction limits of params: at most
 * max_batch_txs transactions and max_batch_bytes data bytes, each with a client id of
 * 1..TRANTOR_CLIENT_ID_MAX bytes and at most max_tx_bytes of data, no (client_id, tx_no) twice,
 * and, if check_buckets, every transaction's bucket among the n buckets (borrowed; n = 0 allows
 * only an empty batch). On failure returns false with a reason in reason (reason_len bytes). */
bool trantor_batch_valid(const Trantor__Batch *batch, const trantor_params *params,
                         bool check_buckets, const uint32_t *buckets, size_t n, char *reason,
                         size_t reason_len);

typedef struct trantor_availability_stats {
  uint64_t certs;            /* NewCert answers */
  uint64_t certs_empty;      /* of which for an empty batch */
  uint64_t verified_valid;   /* VerifyCert answers */
  uint64_t verified_invalid; /* of which invalid */
  uint64_t provided;         /* ProvideTransactions answers */
  uint64_t provided_invalid; /* of which for an invalid certificate (empty batch) */
  uint64_t provided_cached;  /* of which from the batch its VerifyCert decoded (batchcert.c) */
  uint64_t busy;             /* RequestCert answered with an empty cert: too many in flight */
  uint64_t stale;            /* NewBatch with an unknown origin, dropped */
} trantor_availability_stats;

/* Counters of a module created by trantor_availability_batchcert (state borrowed), as of the end
 * of its last batch of events. Thread-safe. */
void trantor_availability_batchcert_stats(const void *state, trantor_availability_stats *out);

#ifdef __cplusplus
}
#endif
#endif
