/*
 * The BCB sample over gRPC with Ed25519 signatures: what `bcb --grpc` (bcb_main.c) wires for each
 * of its four nodes, shared with the tests (tests/samples/bcb_grpc_test.cc).
 *
 * Instead of the in-process transport and the keyless test signer, each node gets:
 *  - "crypto": the crypto module (mir/crypto.h, active variant) over a key set that holds the
 *    node's own Ed25519 key and the public key of every member, as the membership lists them;
 *  - "net": the gRPC transport (mir/net_grpc.h) listening on the node's membership address, with
 *    mutual TLS (certificates from mir_bcb_grpc_tls_write) or in plaintext (insecure mode);
 *  - "bcb": the BCB module exactly as the in-process sample configures it (mir_sample_add_bcb).
 * The BCB module's mir.SignRequest, mir.VerifyRequest and mir.VerifyManyRequest are the events the
 * crypto module serves, so nothing is adapted between them.
 *
 * Addresses are loopback only: the membership is built for 127.0.0.1 and a node refuses any other
 * host. Keys and certificates are made for one run and never meant to be kept.
 *
 * Linking: this library links gRPC and therefore the OpenSSL 3 crypto backend (mir_crypto_ossl);
 * a target that links it must not link mir_crypto (server/modules/crypto/CMakeLists.txt).
 */
#ifndef MIR_SAMPLES_BCB_GRPC_H
#define MIR_SAMPLES_BCB_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.h"
#include "mir/dsl.h"
#include "mir/errors.h"
#include "mir/membership.h"
#include "mir/net_grpc.h"
#include "mir/node.h"
#include "samples.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The only host the gRPC sample listens on and dials. */
#define MIR_BCB_GRPC_HOST "127.0.0.1"

/* Fills ports (n entries) with distinct loopback TCP ports that were free a moment ago (the
 * kernel's choice for port 0, all held at once so they differ). Another process may take one
 * before a transport binds it: callers then get MIR_EIO from mir_bcb_grpc_add_modules and try
 * again with new ports. MIR_EIO if no port could be had. */
mir_err mir_bcb_grpc_free_ports(uint16_t *ports, size_t n);

/* Builds the membership of the sample: nodes "0" .. "3" at 127.0.0.1:ports[i] with the Ed25519
 * public key pubs[i] (borrowed). The membership goes through mir_membership_parse, so it passes
 * the same checks as a membership file. *out is owned (free with mir_membership_free). MIR_EINVAL
 * for a key of another scheme, MIR_ECONFIG if the membership is refused. */
mir_err mir_bcb_grpc_membership_new(const mir_public_key *const pubs[MIR_SAMPLE_BCB_NODES],
                                    const uint16_t ports[MIR_SAMPLE_BCB_NODES],
                                    mir_membership **out);

/* Writes the TLS material of nodes "0" .. "3" into the existing directory dir (borrowed): a fresh
 * cluster CA certificate (ca.pem) and, per node, <id>.crt (URI SAN mir:replica:<id>, IP
 * 127.0.0.1, valid for one day) and its key <id>.key (mode 0600). The CA key is never written.
 * MIR_EIO or MIR_ECRYPTO with detail. */
mir_err mir_bcb_grpc_tls_write(const char *dir);

/* Removes what mir_bcb_grpc_tls_write wrote into dir (borrowed), then dir itself if it is empty.
 * Files that are missing are skipped. */
void mir_bcb_grpc_tls_remove(const char *dir);

typedef struct mir_bcb_grpc_node_config {
  const char *node_id;              /* "0" .. "3" */
  const mir_membership *membership; /* addresses and public keys (borrowed) */
  mir_keyset *keys;                 /* the node's key set (takes ownership, also on failure) */
  const char *tls_dir;              /* from mir_bcb_grpc_tls_write; NULL: plaintext (insecure) */
  size_t crypto_workers;            /* worker threads of the crypto module (0: 1) */
} mir_bcb_grpc_node_config;

/* The modules mir_bcb_grpc_add_modules added, all owned by the node (valid until mir_node_free). */
typedef struct mir_bcb_grpc_modules {
  mir_net_grpc *net; /* for mir_net_grpc_metrics and mir_net_grpc_port */
  void *crypto;      /* the crypto module's state */
  mir_dsl *bcb;      /* its counters: mir_dsl_metrics */
} mir_bcb_grpc_modules;

/* Adds "crypto", "net" and "bcb" of cfg->node_id to node (borrowed, not started), as described
 * at the top of this file; the caller adds the consumer "app". The transport binds its listen
 * address here. cfg is borrowed; cfg->keys is taken. out (may be NULL) receives the modules.
 * MIR_EINVAL if the node is not in the membership, the membership is not the sample's (nodes "0"
 * .. "3" on 127.0.0.1, Ed25519), or the key set's own id is another node's; MIR_EIO if the
 * address cannot be bound or a TLS file cannot be read; or an error of mir_node_add_module. */
mir_err mir_bcb_grpc_add_modules(mir_node *node, const mir_bcb_grpc_node_config *cfg,
                                 mir_bcb_grpc_modules *out);

#ifdef __cplusplus
}
#endif
#endif
