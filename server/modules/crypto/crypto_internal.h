/*
 * Internal to the BoringSSL backend of the crypto seam (mir_crypto): the key structures behind the
 * opaque handles of crypto.h. With crypto_common.h (which it includes) it is the backend's whole
 * internal interface. This is the only header of the project that includes BoringSSL; it must
 * never be included together with gRPC or OpenSSL headers, nor by the neutral sources or the
 * OpenSSL backend (openssl/ossl_internal.h plays its role there).
 */
#ifndef MIRI_CRYPTO_INTERNAL_H
#define MIRI_CRYPTO_INTERNAL_H

#include <openssl/curve25519.h>
#include <openssl/ec_key.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto_common.h"
#include "mir/crypto.h"
#include "mir/errors.h"

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

#endif
