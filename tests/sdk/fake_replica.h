/*
 * A scripted fake cluster for the SDK tests: n fake replicas serving the client API
 * (proto/api/api.proto: Submit, Subscribe, Status) with the gRPC C core server API on 127.0.0.1,
 * in the test process. They share one log: a transaction accepted by any honest replica is
 * ordered at once into a new entry (unless the cluster is held), and every replica's Subscribe
 * streams send the entries in sn order. Each replica can be scripted to misbehave (modes below),
 * stopped (every call cancelled, the port closed) and started again on the same port.
 */
#ifndef FAKE_REPLICA_H
#define FAKE_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fake_mode {
  FAKE_HONEST = 0,
  FAKE_REJECT,     /* Submit: every transaction TX_TOO_LARGE, reason "fake: too large" */
  FAKE_CENSOR,     /* Submit: ACCEPTED, but the transactions are dropped */
  FAKE_LIE_HASH,   /* Subscribe: every delivery with another log_hash */
  FAKE_LIE_DATA,   /* Subscribe: every transaction's data altered */
  FAKE_SILENT,     /* Submit: no answer; Subscribe: nothing sent */
  FAKE_GARBAGE,    /* Subscribe: undecodable messages; Submit: answers with no results */
  FAKE_EQUIVOCATE, /* Subscribe: every sn twice, the second time with another log_hash */
  FAKE_MUTE_LOG    /* Subscribe: nothing sent; Submit: honest */
} fake_mode;

typedef struct fake_cluster fake_cluster;

/* Starts n (1..16) fake replicas on ephemeral loopback ports. NULL on failure. */
fake_cluster *fake_cluster_new(uint32_t n);
/* The same, serving TLS with the PEM certificate chain and key given (copied). */
fake_cluster *fake_cluster_new_tls(uint32_t n, const char *cert_pem, const char *key_pem);
/* Stops every replica and frees the cluster. */
void fake_cluster_free(fake_cluster *fc);

/* "127.0.0.1:port" of replica i (valid until fake_cluster_free). */
const char *fake_addr(fake_cluster *fc, uint32_t i);
void fake_set_mode(fake_cluster *fc, uint32_t i, fake_mode mode);
/* While held, accepted transactions stay pending (no new entries); releasing orders them. */
void fake_set_hold(fake_cluster *fc, bool hold);
/* Forgets every pending transaction, as real replicas do when they all crash (their mempools are
 * not durable); the log stays. */
void fake_drop_pending(fake_cluster *fc);
/* The next `count` transactions any honest replica receives are answered MEMPOOL_FULL. */
void fake_set_full_budget(fake_cluster *fc, uint32_t count);
/* Each client's window of tx numbers, as replicas keep it (trantor.client_window): a transaction
 * whose tx_no is at or beyond the client's lowest tx number not yet in the log plus window is
 * answered OUT_OF_WINDOW (0: no window, the default). */
void fake_set_window(fake_cluster *fc, uint64_t window);
/* Whether Status reports that window as client_window (true by default; false: as a replica of a
 * version that did not report it, so the SDK learns the window from refusals only). */
void fake_set_report_window(fake_cluster *fc, bool report);
/* The back-pressure hint sent with MEMPOOL_FULL answers (SubmitResponse.retry_after_ms; 0: none,
 * the default). */
void fake_set_retry_after(fake_cluster *fc, uint32_t ms);
/* While set, every Subscribe is refused OUT_OF_RANGE with "mir-range: ahead", as a replica whose
 * log lags far behind from_sn does. */
void fake_set_refuse_ahead(fake_cluster *fc, bool refuse);

/* One Submit request a replica received: when (CLOCK_MONOTONIC ns), its transactions, and whether
 * any of them was answered MEMPOOL_FULL. */
typedef struct fake_request {
  int64_t at_ns;
  uint32_t n_txs;
  bool refused;
} fake_request;
/* Copies the first (up to) cap requests replica i received, in arrival order, into out; returns
 * how many it received in all (the first 4096 are kept). */
size_t fake_requests(fake_cluster *fc, uint32_t i, fake_request *out, size_t cap);
/* Subscribe with from_sn below sn ends with OUT_OF_RANGE (0: never). */
void fake_set_retained_from(fake_cluster *fc, uint64_t sn);
/* The same for replica i alone (as after a state transfer to a checkpoint at sn: the replica
 * holds nothing below it while its peers still do). */
void fake_set_replica_retained_from(fake_cluster *fc, uint32_t i, uint64_t sn);
/* Appends an entry with no transactions (moves the log forward). */
void fake_append_empty(fake_cluster *fc);

/* Stops replica i (its calls are cancelled, its port closes). */
void fake_stop(fake_cluster *fc, uint32_t i);
/* Starts replica i again on its port. Returns 0 or -1. */
int fake_start(fake_cluster *fc, uint32_t i);

uint64_t fake_log_size(fake_cluster *fc);
/* Copies the honest log_hash of sn into out (32 bytes). Returns 0, or -1 when sn is not in the log.
 */
int fake_log_hash(fake_cluster *fc, uint64_t sn, uint8_t out[32]);
/* Transactions replica i received on Submit streams (over all its incarnations). */
uint64_t fake_submitted(fake_cluster *fc, uint32_t i);
/* Subscribe streams replica i accepted. */
uint64_t fake_subscribes(fake_cluster *fc, uint32_t i);

#ifdef __cplusplus
}
#endif
#endif
