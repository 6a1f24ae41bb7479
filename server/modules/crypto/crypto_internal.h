/*
 * Internal to the crypto seam (server/modules/crypto): the key structures behind the opaque
 * handles of crypto.h, and small file helpers. This is the only header of the project that
 * includes BoringSSL; it must never be included together with gRPC or OpenSSL headers.
 */
#ifndef MIRI_CRYPTO_INTERNAL_H
#define MIRI_CRYPTO_INTERNAL_H

#include <openssl/curve25519.h>
#include <openssl/ec_key.h>
#include <stddef.h>
#include <stdint.h>

#include "mir/crypto.h"
#include "mir/errors.h"
#include "requests.h"

/* Largest key or certificate file we read; anything bigger is not a key. */
#define MIRI_CRYPTO_FILE_MAX (64u * 1024u)

struct mir_private_key {
  mir_sig_scheme scheme;
  uint8_t ed[ED25519_PRIVATE_KEY_LEN]; /* Ed25519: seed || public key */
  EC_KEY *ec;                          /* ECDSA: the key with its public point */
  uint8_t pub[MIR_PUBLIC_KEY_MAX];     /* raw public key */
  size_t pub_len;
};

struct mir_public_key {
  mir_sig_scheme scheme;
  uint8_t raw[MIR_PUBLIC_KEY_MAX];
  size_t len;
  EC_KEY *ec; /* ECDSA: parsed once, so that verifying does not decode the point again */
};

/* Builds a private key around ec (takes ownership), filling the raw public key. NULL on failure.
 */
mir_private_key *miri_private_key_from_ec(EC_KEY *ec);

/* Builds an Ed25519 private key from its 32-byte seed (borrowed). Returns owned. */
mir_private_key *miri_private_key_from_ed25519_seed(const uint8_t *seed);

/* Clears BoringSSL's thread-local error queue and records detail "what: <library reason>".
 * Returns code, like mir_error_set. */
mir_err miri_crypto_error(mir_err code, const char *what);

/* Reads at most max bytes of path into an owned, NUL-terminated buffer (free with free()).
 * MIR_EIO (missing, unreadable) or MIR_EINVAL (larger than max), detail naming the file. */
mir_err miri_crypto_read_file(const char *path, size_t max, char **data, size_t *len);

/* Writes data to path with mode through a temporary file, fsync and rename. MIR_EIO with detail.
 */
mir_err miri_crypto_write_file(const char *path, const void *data, size_t len, unsigned mode);

#endif
