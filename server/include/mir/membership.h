/*
 * The membership file: which replicas form the system, where they listen, their public keys and
 * voting weights. mir-keygen writes it; replicas, clients and tools read it.
 *
 *   {
 *     "scheme": "ed25519",                 optional: "ed25519" (default) or "ecdsa-p256"
 *     "replicas": [                        1 to MIR_MEMBERSHIP_MAX entries
 *       {"id": "0",                        1-63 characters of [A-Za-z0-9_.-], unique
 *        "address": "127.0.0.1:7000",      host:port, or [IPv6]:port; unique
 *        "public_key": "<base64>",         raw public key (crypto.h), or "hex:<hex digits>"
 *        "weight": 1}                      optional, 1 (default) to MIR_MEMBERSHIP_WEIGHT_MAX
 *     ]
 *   }
 *
 * Unknown fields are rejected, so that a misspelt field never silently takes its default. Every
 * error names the file, the field and the reason ("membership.json: replicas[2].weight: must be a
 * positive integer"); JSON syntax errors give line and column. Public keys are checked for the
 * scheme's length (and the uncompressed-point tag for ECDSA), and Ed25519 keys that encode a
 * point of small order (for which signatures can be made without a private key) are refused, but
 * keys stay raw bytes here: the crypto module validates the curve point when it builds its key
 * set. This library does not use BoringSSL.
 */
#ifndef MIR_MEMBERSHIP_H
#define MIR_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.h"
#include "mir/errors.h"
#include "mir/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIR_MEMBERSHIP_MAX 1024               /* most replicas */
#define MIR_MEMBERSHIP_FILE_MAX (4u << 20)    /* largest membership file, bytes */
#define MIR_MEMBERSHIP_WEIGHT_MAX 4294967295u /* largest weight of one replica */
#define MIR_HOST_MAX 254                      /* longest host name, with its NUL */

typedef struct mir_replica_info {
  char id[MIR_MODULE_ID_MAX];
  char address[MIR_HOST_MAX + 8]; /* as written: "host:port" or "[v6]:port" */
  char host[MIR_HOST_MAX];        /* without brackets */
  uint16_t port;
  uint8_t public_key[MIR_PUBLIC_KEY_MAX];
  size_t public_key_len;
  uint64_t weight;
} mir_replica_info;

typedef struct mir_membership {
  mir_sig_scheme scheme;
  size_t n;
  mir_replica_info *replicas; /* n entries, in file order (owned by the membership) */
  uint64_t total_weight;
} mir_membership;

/* Reads and validates the membership file at path (borrowed). MIR_EIO if it cannot be read,
 * MIR_ECONFIG if it is invalid; mir_error_detail() says where and why. *out is owned (free with
 * mir_membership_free). */
mir_err mir_membership_load(const char *path, mir_membership **out);

/* Validates membership JSON text (borrowed, len bytes, untrusted); name (borrowed) stands for the
 * file in error messages. Errors and *out as mir_membership_load. */
mir_err mir_membership_parse(const char *text, size_t len, const char *name, mir_membership **out);

/* Frees m. NULL is a no-op. */
void mir_membership_free(mir_membership *m);

/* The entry of replica id (borrowed from m), or NULL. */
const mir_replica_info *mir_membership_find(const mir_membership *m, const char *id);

/* Decodes standard base64 (with padding; no whitespace) of text (borrowed) into out (cap bytes).
 * Returns the decoded length, or -1 for malformed text or if it does not fit. */
long mir_base64_decode(const char *text, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
