/*
 * The configuration file of mir-replica (JSON; `mir-replica --help` prints the format).
 *
 * Every error names the file, the field and the reason: "replica.json: trantor.segment_length:
 * must be an integer in 1..4096"; a JSON syntax error gives line and column instead of the field
 * ("replica.json:3:17: ..."). Unknown fields are errors, so that a misspelt field never silently
 * takes its default. Relative paths are resolved against the folder of the configuration file.
 * Only the file itself is read here; the files it names (membership, keys, certificates) are
 * read by the replica when it starts, with errors naming them.
 */
#ifndef MIR_REPLICA_CONFIG_H
#define MIR_REPLICA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mir/errors.h"
#include "mir/trantor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_REPLICA_CONFIG_FILE_MAX ((size_t)1 << 20) /* largest configuration file */

/* The client API's limits (proto/api/api.proto documents each one and the refusal it causes). */
typedef struct mir_replica_client_limits {
  uint64_t max_request_bytes;      /* largest Submit request or message received */
  uint64_t max_txs_per_request;    /* transactions in one SubmitRequest */
  uint64_t max_submit_streams;     /* Submit streams open at once */
  uint64_t max_requests_in_flight; /* per Submit stream at the mempool; more: answered busy */
  uint64_t max_bytes_in_flight;    /* transaction bytes of all streams at the mempool; more: busy */
  uint64_t max_subscribers;        /* Subscribe streams open at once */
  uint64_t subscriber_stall_ms;    /* a subscriber that accepts nothing for this long is cut */
  uint64_t max_subscribers_per_client;     /* ... naming one client (certificate or client_id) */
  uint64_t max_subscribers_per_connection; /* ... over one connection (peer address and port) */
  uint64_t subscribe_ahead_max; /* a Subscribe from beyond next_sn + this is OUT_OF_RANGE (>= 0) */
  uint64_t retry_after_ms;      /* back-pressure hint in SubmitResponse.retry_after_ms */
} mir_replica_client_limits;

typedef struct mir_replica_net_limits {
  uint64_t max_message_bytes;
  uint64_t queue_max_msgs;
  uint64_t queue_max_bytes;
  uint64_t backoff_min_ms;
  uint64_t backoff_max_ms;
  uint64_t keepalive_ms;
} mir_replica_net_limits;

typedef struct mir_replica_config {
  char *file;            /* the configuration file, as given */
  char *id;              /* this replica's id in the membership */
  char *membership_file; /* paths: resolved, owned */
  char *key_file;
  char *tls_ca_file, *tls_cert_file, *tls_key_file; /* all set, or all NULL with insecure */
  bool insecure;
  char *peer_listen;        /* NULL: the membership's address of id */
  char *client_listen;      /* "host:port" of the client API */
  char *http_listen;        /* "host:port" of the HTTP endpoint; NULL: no endpoint */
  bool client_tls;          /* serve the client API over TLS with the replica's certificate */
  bool client_require_cert; /* clients must present a certificate naming their client id */
  char *client_ca_file;     /* the CA of client certificates (NULL: tls_ca_file) */
  char *data_dir;
  char *log_level; /* NULL: MIR_LOG or info */
  bool store_sync;
  uint64_t retention_sns;
  uint64_t crypto_workers; /* 0: one per core */
  mir_replica_client_limits client;
  mir_replica_net_limits net;
  trantor_params trantor;
} mir_replica_config;

/* Reads and checks the configuration file at path (borrowed). MIR_EIO if it cannot be read,
 * MIR_ECONFIG if it is invalid; mir_error_detail() says where and why. On MIR_OK *out owns its
 * strings (free with mir_replica_config_fini); on error *out is left empty. */
mir_err mir_replica_config_load(const char *path, mir_replica_config *out);

/* As mir_replica_config_load, from text (borrowed, len bytes); name stands for the file in
 * messages and relative paths are resolved against base_dir (borrowed; NULL: the current folder).
 */
mir_err mir_replica_config_parse(const char *text, size_t len, const char *name,
                                 const char *base_dir, mir_replica_config *out);

/* Frees the strings of c and leaves it zeroed. */
void mir_replica_config_fini(mir_replica_config *c);

/* Writes the documentation of every field to f. */
void mir_replica_config_help(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
