/*
 * Fuzz target for mir-replica's configuration parser (server/replica/config.h) on arbitrary bytes,
 * as mir_replica_config_load would hand them over from a file.
 *
 * Invariants: either MIR_ECONFIG with a detail that starts with the file's name and an empty
 * config, or MIR_OK with a config that meets every rule the parser documents: the required fields
 * set, paths resolved against the folder, TLS files all or none and exactly one of TLS and
 * insecure, client limits within their bounds, Trantor's parameters consistent
 * (trantor_params_check). mir_replica_config_fini leaves it zeroed; no leak (AddressSanitizer).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mir/alloc.h"
#include "mir/assert.h"

#define FUZZ_NAME "fuzz.json"
#define FUZZ_DIR "/etc/mir"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_zeroed(const mir_replica_config *c) {
  static const mir_replica_config zero;
  return memcmp(c, &zero, sizeof(zero)) == 0;
}

/* A path field: absolute, or resolved against FUZZ_DIR. */
static void fuzz_check_path(const char *p) {
  MIR_ASSERT(p != NULL && p[0] == '/');
}

static void fuzz_check_valid(const mir_replica_config *c) {
  MIR_ASSERT(c->file != NULL && strcmp(c->file, FUZZ_NAME) == 0);
  MIR_ASSERT(c->id != NULL && c->id[0] != '\0' && strchr(c->id, '/') == NULL);
  fuzz_check_path(c->membership_file);
  fuzz_check_path(c->key_file);
  fuzz_check_path(c->data_dir);
  MIR_ASSERT(c->client_listen != NULL && strrchr(c->client_listen, ':') != NULL);
  int tls = (c->tls_ca_file != NULL) + (c->tls_cert_file != NULL) + (c->tls_key_file != NULL);
  MIR_ASSERT(tls == 0 || tls == 3);
  MIR_ASSERT((tls == 3) != c->insecure);
  MIR_ASSERT(!c->client_tls || tls == 3);
  if (tls == 3) {
    fuzz_check_path(c->tls_ca_file);
    fuzz_check_path(c->tls_cert_file);
    fuzz_check_path(c->tls_key_file);
  }
  const mir_replica_client_limits *l = &c->client;
  MIR_ASSERT(l->max_request_bytes >= 1024 && l->max_request_bytes <= 256u << 20);
  MIR_ASSERT(l->max_txs_per_request >= 1 && l->max_txs_per_request <= 1000000);
  MIR_ASSERT(l->max_submit_streams >= 1 && l->max_submit_streams <= 65536);
  MIR_ASSERT(l->max_requests_in_flight >= 1 && l->max_requests_in_flight <= 65536);
  MIR_ASSERT(l->max_bytes_in_flight >= 1024);
  MIR_ASSERT(l->max_subscribers >= 1 && l->max_subscribers <= 65536);
  MIR_ASSERT(l->subscriber_stall_ms >= 100);
  MIR_ASSERT(c->crypto_workers <= 256 && c->retention_sns >= 16);
  MIR_ASSERT(c->net.backoff_min_ms == 0 || c->net.backoff_max_ms == 0 ||
             c->net.backoff_min_ms <= c->net.backoff_max_ms);
  MIR_ASSERT(trantor_params_check(&c->trantor) == MIR_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mir_replica_config c;
  mir_err err = mir_replica_config_parse((const char *)data, size, FUZZ_NAME, FUZZ_DIR, &c);
  if (err != MIR_OK) {
    MIR_ASSERT(err == MIR_ECONFIG);
    const char *d = mir_error_detail();
    MIR_ASSERT(strncmp(d, FUZZ_NAME ":", strlen(FUZZ_NAME ":")) == 0);
    MIR_ASSERT(fuzz_zeroed(&c));
    return 0;
  }
  fuzz_check_valid(&c);
  mir_replica_config_fini(&c);
  MIR_ASSERT(fuzz_zeroed(&c));
  return 0;
}
